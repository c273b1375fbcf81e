"""The C converter of spool lines to rows (`_span_rows.c`) against Python's
(`rows.python_spans_to_rows`): the same rows for every line it takes, and the lines it
declines are the unusual ones, which Python converts or refuses."""

from __future__ import annotations

import copy

import pytest

from clew.exporter.store import rows

c_rows = pytest.importorskip("clew.exporter.store._span_rows").spans_to_rows

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


def _request(span: dict, resource: list | None = None, scope: dict | None = None) -> dict:
    return {"resourceSpans": [{
        "resource": {"attributes": resource if resource is not None else [
            {"key": "service.name", "value": {"stringValue": "trainer"}}]},
        "scopeSpans": [{"scope": scope if scope is not None else {"name": "clew", "version": "1"},
                        "spans": [span]}]}]}  # fmt: skip


def _span(**fields) -> dict:
    span = {"traceId": TRACE, "spanId": SPAN, "name": "read", "kind": 1,
            "startTimeUnixNano": "1700000000123456789", "endTimeUnixNano": "1700000001000000000",
            "attributes": [{"key": "file.path", "value": {"stringValue": "/data/x"}}]}
    span.update(fields)
    return {key: value for key, value in span.items() if value is not None}


def _attributes(*values: dict) -> list[dict]:
    return [{"key": f"k{index:02d}", "value": value} for index, value in enumerate(values)]


# Lines the C converter takes: its rows must be Python's.
TAKEN = {
    "usual": _request(_span()),
    "non-ASCII and escapes": _request(_span(name="lecture \u00e9\u4e2d\U0001f600", attributes=[
        {"key": "\u00e9t\u00e9", "value": {"stringValue": "a\"b\\c\n\u2028<&>\x00"}},
        {"key": "e", "value": {"stringValue": "\U0001f600"}}])),
    "ints": _request(_span(attributes=_attributes(
        {"intValue": "0"}, {"intValue": "-42"}, {"intValue": "9223372036854775807"},
        {"intValue": "-9223372036854775808"}, {"intValue": "123456789012345678901234567890"},
        {"intValue": "007"}, {"intValue": "-0"}, {"intValue": "+5"}, {"intValue": " 5"},
        {"intValue": 17}, {"intValue": 2**70}, {"intValue": "1_000"}))),
    "bools, doubles, bytes, empty": _request(_span(attributes=_attributes(
        {"boolValue": True}, {"boolValue": False}, {"boolValue": 1}, {"doubleValue": 100.0},
        {"doubleValue": 1.5e-7}, {"doubleValue": "NaN"}, {"doubleValue": 3},
        {"bytesValue": "AAEC_w"}, {"bytesValue": ""}, {}, {"intValue": "1", "boolValue": True}))),
    "arrays and maps": _request(_span(attributes=_attributes(
        {"arrayValue": {"values": [{"stringValue": "s3://b/<k>"}, {"stringValue": "\u00e9"}]}},
        {"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "007"}]}},
        {"arrayValue": {"values": [{"doubleValue": "NaN"}]}}, {"arrayValue": {}},
        # long strings (checked 16 bytes a step) with a character to escape anywhere
        *({"arrayValue": {"values": [{"stringValue": "s3://bucket/" + "k" * at + char + "/x"},
                                     {"stringValue": "p" * 40}]}}
          for char in '<>&"\\\x7f\x01\n\u00e9' for at in (0, 5, 17, 31, 40)),
        {"kvlistValue": {"values": [{"key": "z", "value": {"intValue": "1"}},
                                    {"key": "a", "value": {"boolValue": False}}]}}))),
    "keys out of order, duplicated": _request(_span(attributes=[
        {"key": "b", "value": {"stringValue": "1"}}, {"key": "a", "value": {"intValue": "2"}},
        {"key": "\u00e9", "value": {"stringValue": "3"}}, {"key": "b", "value": {"stringValue": "4"}},
        {"key": "", "value": {"stringValue": "5"}}, {"key": "B", "value": {"stringValue": "6"}}])),
    "ids: uppercase, zero, missing": _request(_span(
        traceId=TRACE.upper(), spanId="0" * 16, parentSpanId="EEE19B7EC3C1B174")),
    "no ids, no times, no name, no attributes": _request(_span(
        traceId=None, spanId=None, startTimeUnixNano=None, endTimeUnixNano=None, name=None,
        kind=None, attributes=None)),
    "times as numbers, ending first": _request(_span(
        startTimeUnixNano=1700000000000000001, endTimeUnixNano=1700000000.0, parentSpanId="")),
    "kinds and statuses by name, unknown": _request(_span(
        kind="SPAN_KIND_CLIENT", status={"code": "STATUS_CODE_ERROR", "message": "exit 3"})),
    "unknown kind and status": _request(_span(kind=9, status={"code": 7})),
    "status empty or null": {"resourceSpans": [{"scopeSpans": [{"spans": [
        _span(status={}), {**_span(), "status": None}, _span(status={"message": "m"})]}]}]},
    "events and links": _request(_span(
        events=[{"timeUnixNano": "1700000000500000000", "name": "retry",
                 "attributes": _attributes({"intValue": "3"}, {"stringValue": "\u00e9"})},
                {"timeUnixNano": 5}, {}],
        links=[{"traceId": TRACE.upper(), "spanId": SPAN, "traceState": "v=1",
                "attributes": _attributes({"boolValue": True})},
               {}, {"traceId": "0" * 32, "spanId": "0" * 16}])),
    "empty events and links": _request(_span(events=[], links=[])),
    "no resource, no scope": {"resourceSpans": [{"scopeSpans": [{"spans": [_span()]}]}]},
    "resource without service.name, scope without version": _request(
        _span(), resource=[{"key": "host.name", "value": {"stringValue": "gpu"}}],
        scope={"name": "x"}),
    "empty lists and objects": {"resourceSpans": [
        {}, {"resource": {}, "scopeSpans": []}, {"scopeSpans": [{}, {"spans": []}]}]},
    "no resourceSpans": {},
    "scope name not a string": _request(_span(), scope={"name": 5, "version": None}),
}

def _nested(depth: int) -> dict:
    value = {"stringValue": "x"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    return value


# Lines the C converter declines (Python's path converts them, or refuses them).
DECLINED = {
    "ids in base64": _request(_span(traceId="W47/95gDgQPSabYzgT/GDA==", spanId="7uGbfsPBsXQ=")),
    "an id that is no id": _request(_span(traceId="not an id!")),
    "an id of non-hex": _request(_span(spanId="eee19b7ec3c1b17g")),
    "a time out of range": _request(_span(startTimeUnixNano=str(2**63))),
    "a negative time": _request(_span(endTimeUnixNano="-1")),
    "a time that is no int": _request(_span(startTimeUnixNano="soon")),
    "a pair without a value": _request(_span(attributes=[{"key": "a"}])),
    "a null value": _request(_span(attributes=[{"key": "a", "value": None}])),
    "a string value that is no string": _request(_span(attributes=_attributes(
        {"stringValue": 5}))),
    "a key that is no string": _request(_span(attributes=[{"key": 1, "value": {}}])),
    "an unhashable kind": _request(_span(kind=[1])),
    "a span that is no object": _request([1]),
    "spans that are no list": {"resourceSpans": [{"scopeSpans": [{"spans": {"a": 1}}]}]},
    "an event time out of range": _request(_span(events=[{"timeUnixNano": str(2**64)}])),
    "a link id that is no id": _request(_span(links=[{"traceId": "x"}])),
    "a value nested too deeply": _request(_span(attributes=_attributes(_nested(5000)))),
    "an int that is no int": _request(_span(attributes=_attributes({"intValue": "-"}))),
    "a double that is no number": _request(_span(attributes=_attributes(
        {"doubleValue": "many"}))),
    "a request that is no object": [1, 2],
    "many attributes": _request(_span(attributes=_attributes(*[{"intValue": "1"}] * 300))),
}


def _python(request):
    try:
        return rows.python_spans_to_rows(request)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        return type(error)


@pytest.mark.parametrize("name", TAKEN)
def test_c_rows_equal_pythons(name):
    request = TAKEN[name]
    made = c_rows(request, rows._KINDS, rows._STATUS, rows.as_string)
    assert made is not None, "declined"
    assert made == _python(request)
    assert [tuple(map(type, row)) for row in made] == [
        tuple(map(type, row)) for row in _python(request)]
    assert rows.spans_to_rows(request) == made


@pytest.mark.parametrize("name", DECLINED)
def test_unusual_lines_are_declined_and_python_decides(name):
    request = DECLINED[name]
    assert c_rows(request, rows._KINDS, rows._STATUS, rows.as_string) is None
    expected = _python(request)
    if isinstance(expected, type):
        with pytest.raises(expected):
            rows.spans_to_rows(request)
    else:
        assert rows.spans_to_rows(request) == expected


def test_rows_extend_the_list_given():
    given = rows.spans_to_rows(TAKEN["usual"])
    assert rows.spans_to_rows(TAKEN["events and links"], given) is given and len(given) == 2


def test_a_line_is_not_changed_by_converting_it():
    request = TAKEN["events and links"]
    before = copy.deepcopy(request)
    c_rows(request, rows._KINDS, rows._STATUS, rows.as_string)
    assert request == before
