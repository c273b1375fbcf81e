"""A failure inside clew, such as a digest that cannot be made, is reported and swallowed,
never the program's."""

from __future__ import annotations

import pytest

from clew.instrumentation import _guard, _lifecycle, _stream_digests


@pytest.fixture
def failures():
    """What `guard` reports while the test runs, as (where, error)."""
    seen: list[tuple[str, BaseException]] = []
    previous = _guard._report
    _guard.report_to(lambda where, error: seen.append((where, error)))
    yield seen
    _guard.report_to(previous)


def test_the_lifecycle_module_hands_guard_its_recorder():
    """Failures that name no recorder reach this process's recorder through the function the
    lifecycle module sets (the recorder imports what guards, so that cannot import it)."""
    assert _guard._report is _lifecycle._report


def test_a_chunk_that_cannot_be_hashed_is_reported_and_leaves_no_digest(failures):
    stream = _stream_digests.Stream()
    stream.update("text, not bytes")  # type: ignore[arg-type]

    assert stream.result() is None
    assert [where for where, _ in failures] == ["hashing"]
    assert isinstance(failures[0][1], TypeError)


def test_the_program_s_own_interrupt_passes_through(failures):
    with pytest.raises(KeyboardInterrupt), _guard.guard("hook"):
        raise KeyboardInterrupt

    assert failures == []


def test_without_a_recorder_a_failure_is_logged_redacted(caplog):
    previous = _guard._report
    _guard.report_to(None)
    try:
        with _guard.guard("hashing"):
            raise ValueError("https://user:hunter2@example.com/data")
    finally:
        _guard.report_to(previous)

    assert "clew: hashing failed" in caplog.text
    assert "hunter2" not in caplog.text
