"""clew's OTLP JSON encoder gives exactly what OpenTelemetry's protobuf encoder gives."""

from __future__ import annotations

import base64
import json
import os

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as proto_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState,
    set_span_in_context,
)

from clew.exporter import otlp_encode
from clew.exporter.otlp_encode import encode_json, encode_spans
from clew.exporter.otlp_json import iter_spans


def _spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "clew-test", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("clew", "0.1.0")
    other = provider.get_tracer("other")
    root = tracer.start_span("run", attributes={"process.command_args": ["python", "t.py"]})
    parent = set_span_in_context(root)
    child = tracer.start_span(
        "read file",
        context=parent,
        kind=SpanKind.CLIENT,
        links=[Link(root.get_span_context(), {"why": "stamp"})],
        attributes={
            "provenance.artifacts.uri": ["file://h/a", "file://h/<b>&"],
            "provenance.artifacts.size": [1, 2**40],
            "flag": True,
            "ratio": 0.5,
            "empty": [],
            "bools": [True, False],
            "text": "naïve \u2603 \"quoted\"\n",
            "texts": ["é", "\U0001f600", "plain"],
            "mixed": [1, "one", True, 1.5],
            "negative": [-3, 0, 2**62],
        },
    )
    child.add_event("retry", {"attempt": 2})
    child.set_status(Status(StatusCode.ERROR, "boom"))
    child.end()
    other.start_span("x", context=parent).end()
    root.end()
    return exporter.get_finished_spans()


def _parse_otlp_json(line: str) -> ExportTraceServiceRequest:
    """Parse OTLP JSON with the official classes. OTLP JSON writes ids as hex where
    protobuf's JSON mapping expects base64, so ids are converted first, as receivers do."""
    data = json.loads(line)
    for resource_spans in data["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for item in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in item:
                            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()
    return json_format.Parse(json.dumps(data), ExportTraceServiceRequest())


def test_json_parses_with_the_official_proto_and_equals_the_proto_encoder():
    spans = _spans()
    parsed = _parse_otlp_json(json.dumps(encode_spans(spans)))
    expected = proto_encode(spans)
    # Compare span by span: grouping order of resources and scopes is not part of OTLP.
    ours = {s.span_id: s for rs in parsed.resource_spans for ss in rs.scope_spans for s in ss.spans}
    theirs = {
        s.span_id: s for rs in expected.resource_spans for ss in rs.scope_spans for s in ss.spans
    }
    assert ours.keys() == theirs.keys() and len(ours) == 3
    for span_id, span in theirs.items():
        assert ours[span_id] == span
    assert [rs.resource for rs in parsed.resource_spans] == [
        rs.resource for rs in expected.resource_spans
    ]
    assert sorted((ss.scope.name, ss.scope.version) for ss in parsed.resource_spans[0].scope_spans) == [
        ("clew", "0.1.0"),
        ("other", ""),
    ]


def test_ids_are_lowercase_hex_as_otlp_json_requires():
    encoded = encode_spans(_spans())
    span = encoded["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and span["traceId"] == span["traceId"].lower()
    int(span["traceId"], 16)
    assert len(span["spanId"]) == 16


def test_the_spool_text_is_the_mapping():
    """encode_json, the spool's fast path, writes what encode_spans maps, value for value."""
    spans = _spans()
    assert json.loads(encode_json(spans)) == encode_spans(spans)
    assert encode_json([]) == '{"resourceSpans":[]}'


@pytest.fixture(params=["C", "Python"])
def encoder(request, monkeypatch):
    """The attributes' text written in C (where it was built) and in Python."""
    if request.param == "C":
        if otlp_encode._attributes_text is None:
            pytest.skip("clew.exporter._attributes_text was not built")
    else:
        monkeypatch.setattr(otlp_encode, "_attributes_text", None)
    return request.param


def test_plain_strings_are_joined_and_any_other_array_is_not():
    plain_join, separator = otlp_encode._plain_join, otlp_encode._PLAIN_STRINGS_JOIN
    for plain in (["file://h/a b", "blake3:00"], ("x",), [""], ["a~!@#$%^&*()_+{}|:<>?'"]):
        assert plain_join(separator, plain) == separator.join(plain)
    escaped = [chr(c) for c in range(0x20)] + ['"', "\\", "\x7f", "\xe9", "\u2603", "\udce9"]
    for character in escaped:
        assert plain_join(separator, ["ok", f"a{character}b"]) is None, repr(character)

    class Name(str):
        pass

    for other in ([1, 2], ["a", 1], [True], [Name("a")], ["a", b"b"], [1.5]):
        assert plain_join(separator, other) is None


def test_the_spool_text_is_the_mappings_json_byte_for_byte(encoder):
    """The spool's lines did not change when its text path stopped going through the mapping:
    the same bytes as the mapping's compact JSON, for spans with every optional field (status
    message, events, links, a remote parent with a trace state) and without."""
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED),
                         trace_state=TraceState([("vendor", "v=1")]))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("clew").start_span(
        "write file", context=set_span_in_context(NonRecordingSpan(remote)),
        attributes={"provenance.io.count": 2, "file.path": "/d/\u00e9 \"x\"",
                    # arrays with nothing to escape, and with each thing JSON escapes
                    "plain": ["file://h/a b", "blake3:00"], "quote": ["a", 'q"'],
                    "backslash": ["a\\b"], "delete": ["\x7f"], "control": ["\x1f"]})
    span.set_status(Status(StatusCode.OK))
    span.end()
    spans = [*_spans(), *exporter.get_finished_spans()]
    assert encode_json(spans) == json.dumps(encode_spans(spans), separators=(",", ":"))


def _span_with(attributes, name="read file"):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("clew").start_span(name, attributes=attributes).end()
    (span,) = exporter.get_finished_spans()
    return span


def test_names_that_are_not_utf8_are_written_as_valid_unicode(encoder):
    """Python holds the bytes of a name that is not UTF-8 as lone surrogates (os.fsdecode):
    each such byte is written as the text \\xNN, so the line is Unicode that protobuf parses,
    and characters beyond the BMP (written as surrogate pairs) are kept as they are."""
    name = os.fsdecode(b"/data/\xff\xfe.bin")
    span = _span_with({
        "file.path": name,
        "process.command_args": ["python", os.fsdecode(b"--tag=\xfc"), "\U0001f600", "\\udcff"],
        "lone": "a\ud800b",
    })
    text = encode_json([span])
    assert text.isascii()
    request = _parse_otlp_json(text)  # refuses text that is not valid Unicode
    assert len(request.resource_spans[0].scope_spans[0].spans) == 1
    assert json.loads(text) == encode_spans([span])
    (encoded,) = iter_spans(json.loads(text))
    assert encoded.attributes == {
        "file.path": "/data/\\xff\\xfe.bin",
        "process.command_args": ["python", "--tag=\\xfc", "\U0001f600", "\\udcff"],
        "lone": "a\\ud800b",
    }


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this value")


def test_a_span_that_cannot_be_encoded_is_set_aside_alone():
    """The SDK only lets str, bool, int, float and their sequences into attributes, so the
    unencodable value is put straight into a finished span here: a fault nothing else makes."""
    good = _span_with({"n": 1}, name="before")
    bad = _span_with({"n": 2}, name="broken")
    bad._attributes = {"value": _Unprintable()}
    after = _span_with({"n": 3}, name="after")
    rejected = []
    data = json.loads(encode_json([good, bad, after], rejected))
    assert [s.name for s in iter_spans(data)] == ["before", "after"]
    assert rejected == [bad]


def test_nan_and_infinity_are_spelled_as_otlp_json_spells_them(encoder):
    span = _span_with({"loss": float("nan"), "up": float("inf"), "down": float("-inf")})
    text = encode_json([span])
    (parsed,) = _parse_otlp_json(text).resource_spans[0].scope_spans[0].spans
    values = {kv.key: kv.value.double_value for kv in parsed.attributes}
    assert values["up"] == float("inf") and values["down"] == float("-inf")
    assert values["loss"] != values["loss"]  # NaN
    assert json.loads(text) == encode_spans([span])


# Every character class the encoder escapes differently: each ASCII and Latin-1 character,
# the BMP, beyond it (a surrogate pair), a byte of an undecodable name, another lone surrogate.
_EVERY_KIND_OF_CHARACTER = "".join(map(chr, range(0x100))) + "\u2603\uffff\U0001f600\udce9\ud800"


class _Name(str):
    pass


class _Count(int):
    pass


@pytest.mark.parametrize("attributes", [
    pytest.param({"provenance.artifacts.uri": ("file://h/d/a", "file://h/d/b%20c"),
                  "provenance.artifacts.digest": ("blake3:" + "0" * 64, ""),
                  "provenance.artifacts.size": (0, 16384), "process.pid": 7,
                  "provenance.io.operation": "read"}, id="a batched read"),
    pytest.param({"text": _EVERY_KIND_OF_CHARACTER, "texts": [_EVERY_KIND_OF_CHARACTER, ""],
                  # (the mapping form leaves a key's lone surrogates as they are)
                  _EVERY_KIND_OF_CHARACTER[:-2]: 1}, id="characters"),
    pytest.param({"ints": (0, -1, 2**63 - 1, -2**63), "int": -2**63, "big": 2**63,
                  "small": -2**63 - 1, "bigs": [1, 2**64]}, id="ints to 64 bits and beyond"),
    pytest.param({"bools": (True, False), "bool": False, "empty": (),
                  "mixed": [1, "one", True, 1.5], "float": -2.5,
                  "floats": [0.1, -0.0, 1e300, 5e-324, 1.0, float("nan"), float("inf"),
                             float("-inf")]}, id="bools, floats, empty, mixed"),
    pytest.param({"name": _Name("a")}, id="a str subclass"),
    pytest.param({"names": ["a", _Name("b")], "count": _Count(3)}, id="subclasses in arrays"),
    pytest.param({"nested": [[1]], "none": None, "mapping": {"a": [1]}}, id="what no SDK lets in"),
])
def test_every_value_is_written_as_the_mapping_writes_it(encoder, attributes):
    """What C writes, and what it leaves to Python (a bigger int, a subclass, a mapping), is
    the mapping's compact JSON byte for byte. The values are put straight into a finished span,
    as the spool gets them from clew's direct path (tuples) and as no SDK check would let some
    of them in."""
    span = _span_with({"n": 1})
    span._attributes = attributes
    assert encode_json([span]) == json.dumps(encode_spans([span]), separators=(",", ":"))


def test_c_writes_the_values_of_clews_spans():
    """The C writer takes every attribute value clew's spans carry (else the test above would
    compare Python with itself) and declines only what it cannot write as Python does."""
    if otlp_encode._attributes_text is None:
        pytest.skip("clew.exporter._attributes_text was not built")
    text = otlp_encode._attributes_text
    assert text({"uris": ("file://h/a",), "sizes": (2**63 - 1, -2**63),
                 "s": _EVERY_KIND_OF_CHARACTER, "b": [True], "f": [0.5], "e": []}) is not None
    for declined in ({"n": 2**63}, {"n": [-2**63 - 1]}, {"s": _Name("a")}, {"m": {"a": 1}},
                     {"s": [[1]]}, {"n": None}, {1: "a"}):
        assert text(declined) is None, declined
