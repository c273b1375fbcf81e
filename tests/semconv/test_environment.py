"""Numeric settings: a bad value falls back to the default, with one warning however many
layers read it."""

from __future__ import annotations

import logging

from clew.semconv import environment
from clew.semconv.environment import CLEW_SPOOL_PENDING_MAX_BYTES, positive_number


def test_a_bad_number_falls_back_with_one_warning(monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv(CLEW_SPOOL_PENDING_MAX_BYTES, "lots")
    assert positive_number(CLEW_SPOOL_PENDING_MAX_BYTES, 5, int) == 5
    assert positive_number(CLEW_SPOOL_PENDING_MAX_BYTES, 5, int) == 5
    assert caplog.text.count("ignoring CLEW_SPOOL_PENDING_MAX_BYTES='lots' (not a number)") == 1
    monkeypatch.setenv(CLEW_SPOOL_PENDING_MAX_BYTES, "-3")
    assert positive_number(CLEW_SPOOL_PENDING_MAX_BYTES, 5, int) == 5
    assert "(must be positive); using 5" in caplog.text
    monkeypatch.setenv(environment.CLEW_FLUSH_INTERVAL, "0.25")
    assert positive_number(environment.CLEW_FLUSH_INTERVAL, 1.0, float) == 0.25
    monkeypatch.delenv(CLEW_SPOOL_PENDING_MAX_BYTES)
    assert positive_number(CLEW_SPOOL_PENDING_MAX_BYTES, 5, int) == 5


def test_metric_files_are_the_defaults_unless_set(monkeypatch):
    monkeypatch.delenv(environment.CLEW_METRIC_FILES, raising=False)
    assert environment.metric_files() == environment.DEFAULT_METRIC_FILES
    monkeypatch.setenv(environment.CLEW_METRIC_FILES, "scores.json, */eval/*.csv")
    assert environment.metric_files() == ("scores.json", "*/eval/*.csv")
    monkeypatch.setenv(environment.CLEW_METRIC_FILES, "0")
    assert environment.metric_files() == ()
