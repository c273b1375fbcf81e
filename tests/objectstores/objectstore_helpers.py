"""Helpers shared by the object-store tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import os
import subprocess
import time

from clew.exporter.otlp_json import Span
from clew.semconv import attributes as attr

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "clew-test",
    "AWS_SECRET_ACCESS_KEY": "clew-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def s3_env(endpoint: str) -> dict[str, str]:
    return {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}


def gcs_env(endpoint: str) -> dict[str, str]:
    return {"STORAGE_EMULATOR_HOST": endpoint, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


def object_spans(spans: list[Span], uri: str | None = None, operation: str | None = None) -> list[Span]:
    """The object-store records (one span each), optionally of one URI and operation."""
    return [
        s for s in spans
        if attr.PROVENANCE_OBJECT_STORE in s.attributes
        and (uri is None or s.attributes.get(attr.PROVENANCE_ARTIFACT_URI) == uri)
        and (operation is None or s.attributes.get(attr.PROVENANCE_IO_OPERATION) == operation)
    ]


def only(spans: list[Span], uri: str, operation: str) -> Span:
    found = object_spans(spans, uri, operation)
    summary = sorted(
        (s.attributes.get(attr.PROVENANCE_IO_OPERATION), s.attributes.get(attr.PROVENANCE_ARTIFACT_URI))
        for s in object_spans(spans)
    )
    assert len(found) == 1, f"expected one {operation} of {uri}, found {len(found)}; all: {summary}"
    return found[0]


def check_run(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"program failed:\n{result.stdout}\n{result.stderr}"
    assert "clew:" not in result.stderr, f"clew reported a failure:\n{result.stderr}"


def unique(name: str) -> str:
    """A bucket name no other test (or earlier session on a shared server) uses."""
    return f"{name}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
