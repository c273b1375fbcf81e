"""ReadableSpan -> OTLP JSON (ExportTraceServiceRequest), written for the spool's hot path.

OpenTelemetry's own JSON encoder (opentelemetry-exporter-otlp-json-common) builds a typed
object per value and then a dict; for clew's batched spans, whose attributes are arrays of
hundreds of URIs and digests, that takes 170 ms per 20,000 records here, on the GIL, while
the host runs. `encode_spans` builds the same JSON mapping directly (about 3x faster), and
`encode_json`, what the spool writes, goes further: a span's attributes, whose arrays of
strings and ints are nearly all of a batched span, become text in one C call
(`_attributes_text.c`; the same text in Python without it or for a value it declines), never
a dict per value. The mapping is checked against the official protobuf classes, and the
text against the mapping, in tests/exporter/test_otlp_encode.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
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
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}

# Python carries the bytes of a name that is not valid UTF-8 (a file, an argument, the working
# directory, a variable) as lone surrogates: os.fsdecode's surrogateescape. json escapes them,
# but the text is then no Unicode: protobuf, the Collector and the store refuse the line. Such
# a byte is written as the four characters `\xNN` (Python's backslashreplace of the bytes), any
# other lone surrogate as `\uDNNN`; a file's URI has the exact bytes (percent-encoded). Found
# as escapes in the JSON text (which is ASCII), in one pass, read in step: a backslash is
# always the start of one escape.
_ESCAPE = re.compile(r"\\(?:ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}|ud[89a-f][0-9a-f]{2}|.)")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate_as_text(match: re.Match[str]) -> str:
    escape = match.group()
    if len(escape) != 6:
        return escape  # a surrogate pair (a character beyond the BMP), or not a \\u escape
    code = int(escape[2:], 16)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\\\x{code - 0xDC00:02x}"
    return "\\" + escape


def unicode_json(text: str) -> str:
    """JSON text (ensure_ascii) with every lone surrogate in its strings written as text."""
    # A backslash is found with memchr (~0.05 ms per 4 MB line); a search for "\\ud" takes
    # 60 times longer, so it runs only on lines with escapes at all.
    if "\\" not in text or "\\ud" not in text:
        return text
    return _ESCAPE.sub(_lone_surrogate_as_text, text)


def unicode_text(text: str) -> str:
    """`text` as valid Unicode: lone surrogates written as `unicode_json` writes them."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return json.loads(unicode_json(_quote(text)))


def _value(value: Any) -> dict[str, Any]:
    # bool before int: bool is an int subclass. OTLP JSON carries 64-bit ints as strings.
    if isinstance(value, str):
        return {"stringValue": unicode_text(value)}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        # JSON has no NaN or infinity: OTLP JSON (protobuf's mapping) spells them as strings.
        return {"doubleValue": value if math.isfinite(value) else _NON_FINITE[repr(value)]}
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        if value and all(type(v) is str for v in value):
            return {"arrayValue": {"values": [{"stringValue": unicode_text(v)} for v in value]}}
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


def _span_fields(span: ReadableSpan) -> dict[str, Any]:
    """A span's JSON mapping without its attributes (the arrays are where the cost is)."""
    context = span.get_span_context()
    encoded: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "name": span.name,
        "kind": _KIND.get(span.kind, 0),
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
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


# JSON string literal of a str, exactly as json.dumps writes it (ensure_ascii), in C.
_quote = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_STRINGS_JOIN = '},{"stringValue":'
_PLAIN_STRINGS_JOIN = '"},{"stringValue":"'
_INTS_JOIN = '"},{"intValue":"'
_STR, _INT = {str}, {int}


# Every byte JSON escapes in ASCII text (control characters, DEL: not printable; '"' and
# '\\') translated to '"', every other byte to itself.
_TO_QUOTE = bytes(0x22 if c < 0x20 or c in (0x22, 0x5C, 0x7F) else c for c in range(256))


def _plain_join(separator: str, value: list | tuple) -> str | None:
    """`separator.join(value)` when every item is a str with nothing JSON escapes (URIs,
    digests), else None; `separator` has no byte JSON escapes but its quotes. Checked on the
    joined text: its bytes translated by one table, its quotes counted."""
    if set(map(type, value)) != _STR:
        return None
    joined = separator.join(value)
    if not joined.isascii():
        return None
    quotes = joined.encode("ascii").translate(_TO_QUOTE).count(b'"')
    return joined if quotes == separator.count('"') * (len(value) - 1) else None


def _value_pieces(value: Any, pieces: list[str]) -> None:
    """`_value(value)` as JSON text appended to `pieces`, fast for the types clew's spans
    carry. Pieces, joined once per span: a batched span's arrays are most of its bytes, and
    each `+` on the way to the line copied them all again."""
    kind = type(value)
    if kind is str:
        pieces += ['{"stringValue":', _quote(value), "}"]
        return
    if kind is int:
        pieces += ['{"intValue":"', str(value), '"}']
        return
    if (kind is tuple or kind is list) and value:
        plain = _plain_join(_PLAIN_STRINGS_JOIN, value)
        if plain is not None:
            # Strings with nothing for JSON to escape: quoted here, not string by string.
            pieces += ['{"arrayValue":{"values":[{"stringValue":"', plain, '"}]}}']
            return
        kinds = set(map(type, value))  # exact types: a bool is no int here
        if kinds == _STR:
            pieces += ['{"arrayValue":{"values":[{"stringValue":',
                       _STRINGS_JOIN.join(map(_quote, value)), "}]}}"]
            return
        if kinds == _INT:
            pieces += ['{"arrayValue":{"values":[{"intValue":"',
                       _INTS_JOIN.join(map(str, value)), '"}]}}']
            return
    pieces.append(_dumps(_value(value)))


# `{"key":<key>,"value":` of the attribute keys seen, as the few keys clew writes recur in
# every span; bounded, as other instrumentations' keys may not be few.
_KEY_HEADS: dict[str, str] = {}
_KEY_HEADS_MAX = 4096


def _key_head(key: str) -> str:
    head = _KEY_HEADS.get(key)
    if head is None:
        head = '{"key":' + _quote(key) + ',"value":'
        if len(_KEY_HEADS) < _KEY_HEADS_MAX:
            _KEY_HEADS[key] = head
    return head


_attributes_text: Callable[..., str | list | None] | None
try:  # the attributes' whole text in C where it was built: ~3k instructions less a batched read
    from ._attributes_text import attributes_text as _attributes_text
except ImportError:  # built without a compiler
    _attributes_text = None
# A span whose attributes have an array of this many values has them written by the spool
# straight into its buffer (`AttributesText`); smaller ones cost less as a str.
DEFER_ITEMS = 64


class AttributesText:
    """A piece of a line (`encode_pieces(deferred=True)`): a span's attributes, whose text the
    spool's writer has C write into the buffer it reuses, never made into a str of its own
    (`_attributes_text.c`). `str()` of it is the text, for every other use."""

    __slots__ = ("attributes", "pairs")

    def __init__(self, attributes: Mapping[str, Any], pairs: list) -> None:
        self.attributes = attributes
        self.pairs = pairs  # its (key, value) pairs, each checked to be written in C

    def __str__(self) -> str:
        pieces: list[str] = []
        _attributes_pieces(self.attributes, pieces)
        return "".join(pieces)

    def __len__(self) -> int:
        return len(str(self))


def _attributes_pieces(attributes: Mapping[str, Any] | None, pieces: list,
                       deferred: bool = False) -> None:
    """The attributes' JSON array appended to `pieces` (see `_value_pieces`): written by C in
    one piece where it was built and writes every value (`_attributes_text.c`); `deferred`,
    a batched span's as an `AttributesText`."""
    if not attributes:
        pieces.append("[]")
        return
    if _attributes_text is not None:
        text = _attributes_text(attributes, DEFER_ITEMS if deferred else 0)
        if type(text) is list:
            pieces.append(AttributesText(attributes, text))
            return
        if text is not None:
            pieces.append(text)
            return
    separator = "["
    for key, value in attributes.items():
        # The scalars most attributes are in line: a call per attribute was a third of a
        # single-record span's encoding.
        kind = type(value)
        if kind is str:
            pieces += [separator, _key_head(key), '{"stringValue":', _quote(value), "}}"]
        elif kind is int:
            pieces += [separator, _key_head(key), '{"intValue":"', str(value), '"}}']
        else:
            pieces += [separator, _key_head(key)]
            _value_pieces(value, pieces)
            pieces.append("}")
        separator = ","
    pieces.append("]")


# json.dumps(value, separators=...) makes a JSONEncoder per call, which cost more than
# encoding a span's few fields: one, made once.
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _span_pieces(span: ReadableSpan, deferred: bool = False) -> list:
    """One span as pieces of JSON text, exactly as `_dumps(_span(span))` writes it: the fields
    every span has written directly (a dict and its encoding per span cost as much as a batched
    span's arrays of 512 files), events and links (rare) through the mapping form. Pieces, not
    their join: the line's join copies them once, a span's own join copied its arrays again."""
    context = span.get_span_context()
    parent = span.parent
    status = span.status
    # `_flags(span.parent)` in line: called once per span.
    flags = _FLAGS_HAS_IS_REMOTE | (_FLAGS_IS_REMOTE if parent is not None and parent.is_remote else 0)
    text = (
        f'{{"traceId":"{context.trace_id:032x}","spanId":"{context.span_id:016x}",'
        f'"name":{_quote(span.name)},"kind":{_KIND.get(span.kind, 0)},'
        f'"startTimeUnixNano":"{span.start_time or 0}","endTimeUnixNano":"{span.end_time or 0}",'
        f'"flags":{flags},"status":{{"code":{_STATUS.get(status.status_code, 0)}'
    )
    if status.description:
        text += ',"message":' + _quote(status.description)
    text += "}"
    if context.trace_state:
        text += ',"traceState":' + _quote(context.trace_state.to_header())
    if parent is not None:
        text += f',"parentSpanId":"{parent.span_id:016x}"'
    if span.events or span.links:
        fields = _span_fields(span)
        for name in ("events", "links"):
            if name in fields:
                text += f',"{name}":' + _dumps(fields[name])
    pieces: list = [text, ',"attributes":']
    _attributes_pieces(span.attributes, pieces, deferred)
    pieces.append("}")
    return pieces


def _span_pieces_deferred(span: ReadableSpan) -> list:
    """`_span_pieces(span, True)`: a call per span, where a partial's keyword cost ~0.5 us."""
    return _span_pieces(span, True)


def _span(span: ReadableSpan) -> dict[str, Any]:
    return {**_span_fields(span), "attributes": _attributes(span.attributes)}


def _grouped(
    spans: Sequence[ReadableSpan],
    encode: Callable[[ReadableSpan], Any],
    rejected: list[ReadableSpan] | None,
) -> dict[int, tuple[Any, dict[tuple[str, str, str], list[Any]]]]:
    """Each span encoded, grouped by resource and then by instrumentation scope. A span that
    cannot be encoded goes to `rejected` (when given) and its batch goes on without it."""
    by_resource: dict[int, tuple[Any, dict[tuple[str, str, str], list[Any]]]] = {}
    for span in spans:
        try:
            encoded = encode(span)
        except Exception:  # noqa: BLE001 - a value no encoder expected, set aside alone
            if rejected is None:
                raise
            rejected.append(span)
            continue
        resource = span.resource
        _, scopes = by_resource.setdefault(id(resource), (resource, {}))
        scope = span.instrumentation_scope
        key = (scope.name, scope.version or "", scope.schema_url or "") if scope else ("", "", "")
        scopes.setdefault(key, []).append(encoded)
    return by_resource


def _scope(name: str, version: str) -> dict[str, Any]:
    return {"name": name, "version": version} if version else {"name": name}


def encode_json(
    spans: Sequence[ReadableSpan], rejected: list[ReadableSpan] | None = None, end: str = ""
) -> str:
    """`encode_spans` as one line of JSON text (ASCII), followed by `end`.

    Spans that cannot be encoded are appended to `rejected` and left out (with no list given,
    the first one raises)."""
    return unicode_json("".join(encode_pieces(spans, rejected, end)))


def encode_pieces(
    spans: Sequence[ReadableSpan], rejected: list[ReadableSpan] | None = None, end: str = "",
    *, deferred: bool = False,
) -> list:
    """The pieces of `encode_json`'s text, the spool's hot path: the line is their join with
    its lone surrogates rewritten (`unicode_json`). The spool copies them to its file through
    a buffer it reuses, never joined into one str (a line is hundreds of KB, and each page of
    new memory a page fault in a forked worker). `deferred`: a batched span's attributes are
    an `AttributesText`, its text written into that buffer by C; every other piece is a str.

    No JSON escape spans two pieces: a piece with no `\\ud` is its own part of the line."""
    out: list = ['{"resourceSpans":[']
    encode = _span_pieces_deferred if deferred else _span_pieces
    for r, (resource, scopes) in enumerate(_grouped(spans, encode, rejected).values()):
        out.append(',{"resource":{"attributes":' if r else '{"resource":{"attributes":')
        _attributes_pieces(resource.attributes, out)
        out.append('},"scopeSpans":[')
        for s, ((name, version, schema_url), encoded) in enumerate(scopes.items()):
            out += [',{"scope":' if s else '{"scope":', _dumps(_scope(name, version))]
            if schema_url:
                out += [',"schemaUrl":', _quote(schema_url)]
            out.append(',"spans":[')
            for index, pieces in enumerate(encoded):
                if index:
                    out.append(",")
                out += pieces
            out.append("]}")
        out.append("]")
        if resource.schema_url:
            out += [',"schemaUrl":', _quote(resource.schema_url)]
        out.append("}")
    out += ["]}", end]
    return out


def encode_spans(
    spans: Sequence[ReadableSpan], rejected: list[ReadableSpan] | None = None
) -> dict[str, Any]:
    """One ExportTraceServiceRequest in OTLP JSON form, grouped by resource and scope."""
    resource_spans = []
    for resource, scopes in _grouped(spans, _span, rejected).values():
        scope_spans = []
        for (name, version, schema_url), encoded in scopes.items():
            entry: dict[str, Any] = {"scope": _scope(name, version), "spans": encoded}
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
