"""OTLP JSON -> the Collector's otel_traces rows, for the ingest hot path.

One spool line (an ExportTraceServiceRequest in OTLP JSON) becomes one row per span in the
22 columns the Collector's ClickHouse exporter inserts (`INSERT_COLUMNS`), every value
encoded as the Collector encodes it (pdata's AsString), so rows written by clew and by
a Collector are interchangeable:

* attribute values become strings as pdata's `Value.AsString` makes them: bools
  `true`/`false`, ints in decimal, doubles as Go's encoding/json writes them (`100`, `0.5`,
  `1.5e-7`, `1e+21`), bytes in base64, arrays and maps as compact JSON with sorted keys and
  `<`, `>`, `&` escaped as `\\u003c`, `\\u003e`, `\\u0026`;
* attribute maps are ordered by key (bytewise), trace and span ids are lowercase hex (''
  for an all-zero id, so a root span's parent is ''), span kinds and status codes are
  pdata's names (`Internal`, `Error`, ...);
* timestamps stay integers of nanoseconds: clickhouse-connect writes an int into a
  DateTime64(9) column exactly, while a Python datetime would drop the nanoseconds.

The output is a list of row tuples for `client.insert(table, rows,
column_names=INSERT_COLUMNS)`: building one tuple per span is faster here than appending to
22 column lists, and clickhouse-connect pivots rows to columns in C. This works straight
from the JSON dicts rather than through `otlp_json.iter_spans`, whose decoded values have
lost what the encoding needs (an int from a double, a list's element types). Where it is
built, `_span_rows.c` makes the same rows in C and leaves the lines of unusual shape to
`python_spans_to_rows`.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from operator import itemgetter
from typing import Any, Final

from ..otlp_json import TIME_LIMIT, unix_nano

try:
    from ._span_rows import spans_to_rows as _c_spans_to_rows
except ImportError:  # not built (no compiler at install): Python converts every line
    _c_spans_to_rows = None

INSERT_COLUMNS: Final = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)
"""The columns the Collector names in its INSERT, in its order; rows follow this order."""

# pdata's SpanKind.String() and StatusCode.String(); OTLP JSON may carry the enum as its
# number or, from protobuf's generic JSON mapping, as its proto name. Unknown values give ''.
_KINDS: Final = {
    0: "Unspecified",
    1: "Internal",
    2: "Server",
    3: "Client",
    4: "Producer",
    5: "Consumer",
    "SPAN_KIND_UNSPECIFIED": "Unspecified",
    "SPAN_KIND_INTERNAL": "Internal",
    "SPAN_KIND_SERVER": "Server",
    "SPAN_KIND_CLIENT": "Client",
    "SPAN_KIND_PRODUCER": "Producer",
    "SPAN_KIND_CONSUMER": "Consumer",
}
_STATUS: Final = {
    0: "Unset",
    1: "Ok",
    2: "Error",
    "STATUS_CODE_UNSET": "Unset",
    "STATUS_CODE_OK": "Ok",
    "STATUS_CODE_ERROR": "Error",
}

_ZERO_TRACE_ID: Final = "0" * 32
_ZERO_SPAN_ID: Final = "0" * 16
_NO_VALUE: Final[Mapping[str, Any]] = {}
_by_key = itemgetter("key")
_string_value = itemgetter("stringValue")
_int_value = itemgetter("intValue")
# Ints, comma-separated, each as str(int(x)) writes it (no sign but a minus, no leading zero,
# no "-0").
_PLAIN_INTS: Final = re.compile(r"(?:0|-?[1-9][0-9]{0,18})(?:,(?:0|-?[1-9][0-9]{0,18}))*")

# Compact JSON for lists of strings in C; Go's extra escapes are applied afterwards. orjson
# (the `store` extra) writes what json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# writes (checked for every code point), ~1.5x faster; it raises TypeError on a lone
# surrogate, which then takes the general path below.
try:
    import orjson
except ImportError:  # a capture-only install: the CLI imports this module without the extra
    _json_strings = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
else:

    def _json_strings(strings: list[str]) -> str:
        return orjson.dumps(strings).decode()
_json_string = json.encoder.encode_basestring  # type: ignore[attr-defined]

# Characters Go's encoding/json escapes that Python's does not (HTML safety, and the two
# JavaScript line terminators). They can only occur inside JSON strings.
_GO_ESCAPES: Final = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


class _Unsupported(ValueError):
    """A NaN or infinity inside an array or map: Go's json.Marshal fails on it."""


def format_double(value: float) -> str:
    """A double as pdata's AsString writes it (Go encoding/json's float format).

    Shortest round-trip digits; plain notation for 1e-6 <= |x| < 1e21 (100.0 -> `100`),
    e-notation outside with an unpadded exponent (`1.5e-7`, `1e+21`).
    """
    text = repr(value)
    magnitude = abs(value)
    if magnitude == 0 or 1e-6 <= magnitude < 1e21:
        if "e" in text:
            # Python's repr switches to e-notation from 1e16 and below 1e-4; the digits
            # are the same shortest ones, so only the notation changes.
            return format(Decimal(text), "f")
        return text.removesuffix(".0")
    # Both write at least two exponent digits; Go then trims e-07 to e-7.
    return text.replace("e-0", "e-")


def _double_as_string(raw: Any) -> str:
    value = float(raw)  # OTLP JSON: a number, or "NaN" / "Infinity" / "-Infinity"
    if math.isfinite(value):
        return format_double(value)
    spelled = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return f"json: unsupported value: {spelled}"


def _bytes_as_string(raw: str) -> str:
    # Re-encoded so that unpadded or URL-safe input comes out as Go's StdEncoding does.
    return base64.b64encode(base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_")).decode()


def as_string(value: Mapping[str, Any]) -> str:
    """An OTLP JSON AnyValue as pdata's `Value.AsString` gives it ('' for an empty value)."""
    if "stringValue" in value:
        return value["stringValue"]
    for kind, raw in value.items():
        if kind == "intValue":
            return str(int(raw))
        if kind == "boolValue":
            return "true" if raw else "false"
        if kind == "doubleValue":
            return _double_as_string(raw)
        if kind == "arrayValue" or kind == "kvlistValue":
            try:
                text = _json(value)
            except _Unsupported:
                return ""  # json.Marshal's error leaves AsString an empty string
            return _go_escape(text)
        if kind == "bytesValue":
            return _bytes_as_string(raw)
    return ""


def _go_escape(text: str) -> str:
    for char, escaped in _GO_ESCAPES:
        if char in text:
            text = text.replace(char, escaped)
    return text


def _json(value: Mapping[str, Any]) -> str:
    """An AnyValue as json.Marshal(value.AsRaw()) writes it, before Go's extra escapes."""
    if "stringValue" in value:
        return _json_string(value["stringValue"])
    for kind, raw in value.items():
        if kind == "arrayValue":
            items = raw.get("values") or ()
            # map() walks the items in C: no Python frame per item of a batched span's arrays
            try:
                # clew's arrays are mostly URIs and digests: all strings, encoded in C...
                return _json_strings(list(map(_string_value, items)))
            except (KeyError, TypeError):
                pass
            try:
                # ... or sizes and counts: all ints, mostly written as str(int) writes them,
                # which then stay as they are (the pattern stops short of the digits where
                # int() would refuse them).
                text = ",".join(map(_int_value, items))
                if _PLAIN_INTS.fullmatch(text):
                    return f"[{text}]"
            except (KeyError, TypeError):
                pass
            try:
                return "[" + ",".join(map(str, map(int, map(_int_value, items)))) + "]"
            except (KeyError, TypeError, ValueError):
                return "[" + ",".join(_json(item) for item in items) + "]"
        if kind == "kvlistValue":
            # A Go map: the last of duplicate keys wins, keys come out sorted.
            values = raw.get("values") or ()
            pairs = {pair["key"]: pair.get("value") or _NO_VALUE for pair in values}
            members = (f"{_json_string(key)}:{_json(pairs[key])}" for key in sorted(pairs))
            return "{" + ",".join(members) + "}"
        if kind == "intValue":
            return str(int(raw))
        if kind == "boolValue":
            return "true" if raw else "false"
        if kind == "doubleValue":
            number = float(raw)
            if not math.isfinite(number):
                raise _Unsupported(raw)
            return format_double(number)
        if kind == "bytesValue":
            # AsRaw copies bytes into a nil slice when empty, which json.Marshal writes null.
            return f'"{_bytes_as_string(raw)}"' if raw else "null"
    return "null"


def attributes_map(pairs: Any) -> dict[str, str]:
    """An OTLP KeyValue list as the Collector's Map(String, String): keys sorted bytewise,
    values AsString. Of duplicate keys (invalid OTLP) the last wins."""
    if not pairs:
        return {}
    # Sorting the pairs first builds the dict once, in order; str order is code point
    # order, which is UTF-8 byte order. The stable sort keeps the last duplicate last.
    try:
        return {
            pair["key"]: value["stringValue"] if "stringValue" in value else as_string(value)
            for pair in sorted(pairs, key=_by_key)
            for value in (pair["value"],)
        }
    except KeyError:
        # A pair without a value (allowed: an empty AnyValue) or a malformed one.
        return {
            pair["key"]: as_string(pair.get("value") or _NO_VALUE)
            for pair in sorted(pairs, key=_by_key)
        }


def _id(raw: str, hex_length: int, zero: str) -> str:
    """A trace or span id as lowercase hex, '' when all zero. Anything else that is not
    `hex_length` hex digits (or their bytes in base64) raises ValueError, as the Collector
    refuses such a request: an id that is no id would join nothing, or the wrong run."""
    if len(raw) != hex_length:
        # protobuf's generic JSON mapping writes ids as base64 (24 or 12 characters)
        try:
            decoded = base64.b64decode(raw, validate=True)
        except ValueError as error:  # not base64, or characters beyond ASCII
            raise ValueError(f"not a trace or span id: {raw!r:.80}") from error
        if len(decoded) * 2 != hex_length:
            raise ValueError(f"not a trace or span id: {raw!r:.80}")
        raw = decoded.hex()
    else:
        # fromhex takes spaces between bytes, but 16 bytes from 32 characters leave no room
        try:
            valid = len(bytes.fromhex(raw)) * 2 == hex_length
        except ValueError:
            valid = False
        if not valid:
            raise ValueError(f"not a trace or span id: {raw!r}")
        raw = raw.lower()
    return "" if raw == zero else raw


def spans_to_rows(
    request: Mapping[str, Any], rows: list[tuple[Any, ...]] | None = None
) -> list[tuple[Any, ...]]:
    """Append one row per span of an OTLP JSON ExportTraceServiceRequest to `rows`.

    Args:
        request: One spool line, parsed: `{"resourceSpans": [...]}`.
        rows: Rows to extend, so that many lines batch into one insert; a new list when None.

    Returns:
        The rows: tuples in INSERT_COLUMNS order, for `client.insert(table, rows,
        column_names=INSERT_COLUMNS)` (clickhouse-connect pivots rows to columns in C).
        Timestamps are ints of nanoseconds since the epoch. Empty Events and Links arrays are
        a shared empty tuple, and spans of one resource share its attribute dict: treat
        rows as read-only.

    Raises:
        ValueError, TypeError, KeyError, AttributeError: The request is not OTLP JSON (a
            malformed id, a timestamp out of range, a malformed attribute). `rows` may then
            hold part of it: convert into a fresh list to set a bad line aside cleanly.
        RecursionError: An attribute value nested too deeply (likewise).
    """
    if _c_spans_to_rows is not None:
        made = _c_spans_to_rows(request, _KINDS, _STATUS, as_string)
        if made is not None:
            if rows is None:
                return made
            rows += made
            return rows
    return python_spans_to_rows(request, rows)


def python_spans_to_rows(
    request: Mapping[str, Any], rows: list[tuple[Any, ...]] | None = None
) -> list[tuple[Any, ...]]:
    """`spans_to_rows` in Python: every line where the C converter (`_span_rows.c`) is not
    built, and the lines it declines (anything but the usual shape)."""
    if rows is None:
        rows = []
    append = rows.append
    for resource_spans in request.get("resourceSpans") or ():
        resource = attributes_map((resource_spans.get("resource") or _NO_VALUE).get("attributes"))
        service = resource.get("service.name", "")
        for scope_spans in resource_spans.get("scopeSpans") or ():
            scope = scope_spans.get("scope") or _NO_VALUE
            scope_name = scope.get("name", "")
            scope_version = scope.get("version", "")
            trace_ids: dict[str, str] = {}  # a request's spans mostly share one trace
            for span in scope_spans.get("spans") or ():
                raw = span.get("traceId") or ""
                trace_id = trace_ids.get(raw)
                if trace_id is None:
                    trace_id = trace_ids[raw] = _id(raw, 32, _ZERO_TRACE_ID) if raw else ""
                raw = span.get("spanId")
                span_id = _id(raw, 16, _ZERO_SPAN_ID) if raw else ""
                raw = span.get("parentSpanId")
                parent_id = _id(raw, 16, _ZERO_SPAN_ID) if raw else ""
                start = int(span.get("startTimeUnixNano", 0))
                end = int(span.get("endTimeUnixNano", 0))
                if not (0 <= start < TIME_LIMIT and 0 <= end < TIME_LIMIT):  # unix_nano, inline
                    raise ValueError(f"span time out of range: {start} to {end}")
                status = span.get("status") or _NO_VALUE
                events = span.get("events")
                if events:
                    event_times = [unix_nano(event.get("timeUnixNano", 0)) for event in events]
                    event_names = [event.get("name", "") for event in events]
                    event_attributes = [
                        attributes_map(event.get("attributes")) for event in events
                    ]
                else:
                    event_times = event_names = event_attributes = ()
                links = span.get("links")
                if links:
                    link_trace_ids = [
                        _id(link.get("traceId") or _ZERO_TRACE_ID, 32, _ZERO_TRACE_ID)
                        for link in links
                    ]
                    link_span_ids = [
                        _id(link.get("spanId") or _ZERO_SPAN_ID, 16, _ZERO_SPAN_ID)
                        for link in links
                    ]
                    link_states = [link.get("traceState", "") for link in links]
                    link_attributes = [attributes_map(link.get("attributes")) for link in links]
                else:
                    link_trace_ids = link_span_ids = link_states = link_attributes = ()
                append(
                    (
                        start,
                        trace_id,
                        span_id,
                        parent_id,
                        span.get("traceState", ""),
                        span.get("name", ""),
                        _KINDS.get(span.get("kind", 0), ""),
                        service,
                        resource,
                        scope_name,
                        scope_version,
                        attributes_map(span.get("attributes")),
                        # UInt64 cannot hold a negative duration (a clock step): clamp to 0.
                        end - start if end > start else 0,
                        _STATUS.get(status.get("code", 0), ""),
                        status.get("message", ""),
                        event_times,
                        event_names,
                        event_attributes,
                        link_trace_ids,
                        link_span_ids,
                        link_states,
                        link_attributes,
                    )
                )
    return rows
