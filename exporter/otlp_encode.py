"""ReadableSpan -> OTLP JSON (ExportTraceServiceRequest), written for the spool's hot path.

OpenTelemetry's own JSON encoder (opentelemetry-exporter-otlp-json-common) builds a typed
object per value and then a dict; for clew's batched spans, whose attributes are arrays of
hundreds of URIs and digests, that took 170 ms per 20,000 records here, on the GIL, while
the host runs. This builds the same JSON mapping directly (about 3x faster). The output is
checked against the official protobuf classes in tests/exporter/test_otlp_encode.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from opentelemetry.trace.status import StatusCode

# Enum numbers from opentelemetry/proto/trace/v1/trace.proto.
_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_STATUS = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200


def _value(value: Any) -> dict[str, Any]:
    # bool before int: bool is an int subclass. OTLP JSON carries 64-bit ints as strings.
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        if value and all(type(v) is str for v in value):
            return {"arrayValue": {"values": [{"stringValue": v} for v in value]}}
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _attributes(value)}}
    return {"stringValue": str(value)}


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not attributes:
        return []
    return [{"key": key, "value": _value(value)} for key, value in attributes.items()]


def _flags(context: Any) -> int:
    """SpanFlags as OpenTelemetry's encoders write them: whether the parent was remote."""
    if context is not None and context.is_remote:
        return _FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE
    return _FLAGS_HAS_IS_REMOTE


def _span(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    encoded: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "name": span.name,
        "kind": _KIND.get(span.kind, 0),
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": _attributes(span.attributes),
        "flags": _flags(span.parent),
        "status": {"code": _STATUS.get(span.status.status_code, 0)},
    }
    if context.trace_state:
        encoded["traceState"] = context.trace_state.to_header()
    if span.parent is not None:
        encoded["parentSpanId"] = f"{span.parent.span_id:016x}"
    if span.status.description:
        encoded["status"]["message"] = span.status.description
    if span.events:
        encoded["events"] = [
            {
                "timeUnixNano": str(event.timestamp),
                "name": event.name,
                "attributes": _attributes(event.attributes),
            }
            for event in span.events
        ]
    if span.links:
        encoded["links"] = [
            {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
                "attributes": _attributes(link.attributes),
                "flags": _flags(link.context),
                **(
                    {"traceState": link.context.trace_state.to_header()}
                    if link.context.trace_state
                    else {}
                ),
            }
            for link in span.links
        ]
    return encoded


def encode_spans(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """One ExportTraceServiceRequest in OTLP JSON form, grouped by resource and scope."""
    by_resource: dict[int, tuple[Any, dict[tuple[str, str, str], list[dict[str, Any]]]]] = {}
    for span in spans:
        resource = span.resource
        _, scopes = by_resource.setdefault(id(resource), (resource, {}))
        scope = span.instrumentation_scope
        key = (scope.name, scope.version or "", scope.schema_url or "") if scope else ("", "", "")
        scopes.setdefault(key, []).append(_span(span))
    resource_spans = []
    for resource, scopes in by_resource.values():
        scope_spans = []
        for (name, version, schema_url), encoded in scopes.items():
            scope: dict[str, Any] = {"name": name}
            if version:
                scope["version"] = version
            entry: dict[str, Any] = {"scope": scope, "spans": encoded}
            if schema_url:
                entry["schemaUrl"] = schema_url
            scope_spans.append(entry)
        entry = {
            "resource": {"attributes": _attributes(resource.attributes)},
            "scopeSpans": scope_spans,
        }
        if resource.schema_url:
            entry["schemaUrl"] = resource.schema_url
        resource_spans.append(entry)
    return {"resourceSpans": resource_spans}
