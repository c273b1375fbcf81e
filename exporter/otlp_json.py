"""Reading OTLP JSON (the spool's lines) back into flat, typed spans."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

_KINDS = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
_STATUS = {0: "Unset", 1: "Ok", 2: "Error"}
# Where a time is kept in ns since the epoch, ClickHouse's DateTime64(9) ends: 2262, at 2**63 ns.
TIME_LIMIT = 1 << 63


def unix_nano(raw: Any) -> int:
    """An OTLP JSON time, in ns since the epoch; ValueError outside what DateTime64(9)
    holds (OTLP's fixed64 is never negative, and the column ends in 2262, at 2**63 ns)."""
    value = int(raw)
    if not 0 <= value < TIME_LIMIT:
        raise ValueError(f"time out of range: {value}")
    return value


def decode_value(value: dict[str, Any]) -> Any:
    """An OTLP AnyValue in JSON form as a Python value (ints arrive as strings in JSON)."""
    if not value:
        return None
    kind, raw = next(iter(value.items()))
    if kind == "stringValue":
        return raw
    if kind == "intValue":
        return int(raw)
    if kind == "boolValue":
        return bool(raw)
    if kind == "doubleValue":
        return float(raw)
    if kind == "bytesValue":
        return base64.b64decode(raw)
    if kind == "arrayValue":
        return [decode_value(v) for v in raw.get("values", [])]
    if kind == "kvlistValue":
        return decode_attributes(raw.get("values", []))
    return None


def decode_attributes(pairs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """OTLP KeyValue list -> dict."""
    return {pair["key"]: decode_value(pair.get("value", {})) for pair in pairs}


def _hex_id(raw: str | None) -> str:
    """Span and trace ids: lowercase hex in OTLP JSON; tolerate base64 from protobuf's
    generic JSON mapping."""
    if not raw:
        return ""
    try:
        int(raw, 16)
        return raw.lower()
    except ValueError:
        return base64.b64decode(raw).hex()


@dataclass
class Link:
    trace_id: str
    span_id: str
    trace_state: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Event:
    time_ns: int
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Span:
    """One span with its resource and scope, values decoded."""

    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status_code: str
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    events: list[Event]
    links: list[Link]


def iter_spans(traces_data: dict[str, Any]) -> Iterator[Span]:
    """Every span of one TracesData / ExportTraceServiceRequest in JSON form.

    Raises ValueError, TypeError, KeyError, AttributeError or RecursionError on what is not
    OTLP JSON (as `rows.spans_to_rows` does); an absent list may also be null.
    """
    for resource_spans in traces_data.get("resourceSpans") or []:
        resource = decode_attributes(
            (resource_spans.get("resource") or {}).get("attributes") or [])
        for scope_spans in resource_spans.get("scopeSpans") or []:
            scope = scope_spans.get("scope") or {}
            for raw in scope_spans.get("spans") or []:
                status = raw.get("status") or {}
                yield Span(
                    trace_id=_hex_id(raw.get("traceId")),
                    span_id=_hex_id(raw.get("spanId")),
                    parent_span_id=_hex_id(raw.get("parentSpanId")),
                    trace_state=raw.get("traceState", ""),
                    name=raw.get("name", ""),
                    kind=_KINDS.get(int(raw.get("kind", 0)), "Unspecified"),
                    start_ns=unix_nano(raw.get("startTimeUnixNano", 0)),
                    end_ns=unix_nano(raw.get("endTimeUnixNano", 0)),
                    status_code=_STATUS.get(int(status.get("code", 0)), "Unset"),
                    status_message=status.get("message", ""),
                    attributes=decode_attributes(raw.get("attributes") or []),
                    resource=resource,
                    scope_name=scope.get("name", ""),
                    scope_version=scope.get("version", ""),
                    events=[
                        Event(
                            unix_nano(e.get("timeUnixNano", 0)),
                            e.get("name", ""),
                            decode_attributes(e.get("attributes") or []),
                        )
                        for e in raw.get("events") or []
                    ],
                    links=[
                        Link(
                            _hex_id(link.get("traceId")),
                            _hex_id(link.get("spanId")),
                            link.get("traceState", ""),
                            decode_attributes(link.get("attributes") or []),
                        )
                        for link in raw.get("links") or []
                    ],
                )
