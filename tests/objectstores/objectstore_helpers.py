"""Helpers shared by the object-store tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import replace
from urllib.parse import unquote

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
    """The object-store records, one span each, optionally of one URI and operation. A batched
    read span stands for each of its objects (`per_object`)."""
    return [
        s for span in spans if attr.PROVENANCE_OBJECT_STORE in span.attributes
        for s in per_object(span)
        if (uri is None or s.attributes.get(attr.PROVENANCE_ARTIFACT_URI) == uri)
        and (operation is None or s.attributes.get(attr.PROVENANCE_IO_OPERATION) == operation)
    ]


# A batched read's arrays, by the attribute a span of its own gives the same value in, with
# the entry that means "none" (left out of the per-object span).
_PER_OBJECT = {
    attr.PROVENANCE_ARTIFACTS_URI: (attr.PROVENANCE_ARTIFACT_URI, None),
    attr.PROVENANCE_ARTIFACTS_DIGEST: (attr.PROVENANCE_ARTIFACT_DIGEST, ""),
    attr.PROVENANCE_ARTIFACTS_SIZE: (attr.PROVENANCE_ARTIFACT_SIZE, -1),
    attr.PROVENANCE_ARTIFACTS_IDENTITY: (attr.PROVENANCE_ARTIFACT_IDENTITY, None),
    attr.PROVENANCE_ARTIFACTS_COUNT: (attr.PROVENANCE_IO_COUNT, None),
    attr.PROVENANCE_ARTIFACTS_VERSION: (attr.PROVENANCE_ARTIFACT_VERSION, ""),
    attr.PROVENANCE_ARTIFACTS_ETAG: (attr.PROVENANCE_ARTIFACT_ETAG, ""),
    attr.PROVENANCE_ARTIFACTS_CHECKSUMS: (attr.PROVENANCE_ARTIFACT_CHECKSUMS, ""),
    attr.PROVENANCE_ARTIFACTS_BYTES: (attr.PROVENANCE_IO_BYTES, 0),
}


def per_object(span: Span) -> list[Span]:
    """A span of one object as is; a batched read as one span per object, each with the
    attributes a span of its own would have, its key taken from its URI, and only the link to
    its own producer (whose trace id, span id and digest become its producer attributes)."""
    if attr.PROVENANCE_ARTIFACTS_URI not in span.attributes:
        return [span]
    shared = {k: v for k, v in span.attributes.items() if k not in _PER_OBJECT}
    shared[attr.PROVENANCE_IO_COUNT] = 1
    entries = []
    for index, uri in enumerate(span.attributes[attr.PROVENANCE_ARTIFACTS_URI]):
        attributes = dict(shared)
        for batched, (single, none) in _PER_OBJECT.items():
            values = span.attributes.get(batched)
            if values is not None and values[index] != none:
                value = values[index]
                attributes[single] = value.split(",") if single == attr.PROVENANCE_ARTIFACT_CHECKSUMS else value
        bucket_key = attr.AWS_S3_KEY if attr.AWS_S3_BUCKET in attributes else attr.PROVENANCE_OBJECT_KEY
        attributes[bucket_key] = unquote(uri.split("://", 1)[1].split("/", 1)[1])
        links = [link for link in span.links if link.attributes.get(attr.PROVENANCE_ARTIFACT_URI) == uri]
        for link in links:
            attributes[attr.PROVENANCE_PRODUCER_TRACE_ID] = link.trace_id
            attributes[attr.PROVENANCE_PRODUCER_SPAN_ID] = link.span_id
            if attr.PROVENANCE_PRODUCER_DIGEST in link.attributes:
                attributes[attr.PROVENANCE_PRODUCER_DIGEST] = link.attributes[attr.PROVENANCE_PRODUCER_DIGEST]
        entries.append(replace(span, attributes=attributes, links=links))
    return entries


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
