"""OTLP JSON -> Collector rows: every value encoded by hand as the Collector encodes it
(pdata's AsString), inserted into chDB and read back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import clickhouse_connect
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clew.exporter.otlp_encode import encode_spans
from clew.exporter.store.rows import (
    INSERT_COLUMNS,
    as_string,
    attributes_map,
    format_double,
    spans_to_rows,
)
from clew.exporter.store.schema import SchemaOptions, create_schema

TRACE = "5b8efff798038103d269b633813fc60c"

# One spool line as a hand-written ExportTraceServiceRequest: a root span that failed,
# with events and a link and an attribute of every AnyValue type; its child, whose enums
# are spelled the protobuf way; and, under a resource without service.name, a span whose
# trace id is all zero.
LINE = r"""
{"resourceSpans": [
  {"resource": {"attributes": [
     {"key": "service.name", "value": {"stringValue": "trainer"}},
     {"key": "process.pid", "value": {"intValue": "4242"}},
     {"key": "host.name", "value": {"stringValue": "gpu-01"}},
     {"key": "process.command_args", "value": {"arrayValue": {"values": [
        {"stringValue": "python"}, {"stringValue": "train.py"}, {"stringValue": "--x=<1>&y"}]}}}]},
   "scopeSpans": [{"scope": {"name": "clew.files", "version": "0.1.0"}, "spans": [
     {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
      "traceState": "vendor=a", "name": "run", "kind": 2,
      "startTimeUnixNano": "1700000000123456789", "endTimeUnixNano": "1700000001123456790",
      "status": {"code": 2, "message": "exit 3"},
      "attributes": [
        {"key": "s", "value": {"stringValue": "text"}},
        {"key": "b_true", "value": {"boolValue": true}},
        {"key": "b_false", "value": {"boolValue": false}},
        {"key": "i", "value": {"intValue": "-42"}},
        {"key": "d_100", "value": {"doubleValue": 100.0}},
        {"key": "d_half", "value": {"doubleValue": 0.5}},
        {"key": "d_small", "value": {"doubleValue": 1.5e-7}},
        {"key": "d_huge", "value": {"doubleValue": 1e21}},
        {"key": "raw", "value": {"bytesValue": "AAEC/w=="}},
        {"key": "mixed", "value": {"arrayValue": {"values": [
           {"stringValue": "a"}, {"intValue": "1"}, {"doubleValue": 2.5}, {"boolValue": false},
           {"doubleValue": 3.0}, {}, {"kvlistValue": {"values": [
              {"key": "x", "value": {"stringValue": "y"}}]}}]}}},
        {"key": "kv", "value": {"kvlistValue": {"values": [
           {"key": "z", "value": {"intValue": "1"}},
           {"key": "a", "value": {"stringValue": "<b>"}},
           {"key": "m", "value": {"arrayValue": {"values": [{"doubleValue": 1e-7}]}}}]}}},
        {"key": "\u00e9t\u00e9", "value": {"stringValue": "summer"}},
        {"key": "Zeta", "value": {"stringValue": "upper case sorts first"}},
        {"key": "empty"}],
      "events": [
        {"timeUnixNano": "1700000000500000001", "name": "exception", "attributes": [
           {"key": "exception.type", "value": {"stringValue": "ValueError"}},
           {"key": "exception.message", "value": {"stringValue": "bad"}}]},
        {"timeUnixNano": "1700000000600000000", "name": "checkpoint"}],
      "links": [
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
         "traceState": "congo=t61rcWkgMzE",
         "attributes": [{"key": "link.kind", "value": {"stringValue": "previous"}}]}]},
     {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "00f067aa0ba902b7",
      "parentSpanId": "eee19b7ec3c1b174", "name": "read file", "kind": "SPAN_KIND_CLIENT",
      "startTimeUnixNano": "1700000002000000000", "endTimeUnixNano": "1700000002000000500",
      "status": {"code": "STATUS_CODE_OK"},
      "attributes": [
        {"key": "provenance.uri", "value": {"stringValue": "file://h/x"}},
        {"key": "provenance.size", "value": {"intValue": 12}}]}]}]},
  {"resource": {"attributes": [
     {"key": "telemetry.sdk.language", "value": {"stringValue": "python"}}]},
   "scopeSpans": [{"scope": {}, "spans": [
     {"traceId": "00000000000000000000000000000000", "spanId": "1111111111111111",
      "parentSpanId": "0000000000000000", "name": "orphan", "kind": 1,
      "startTimeUnixNano": "1700000100000000000", "endTimeUnixNano": "1700000100000000000",
      "status": {}}]}]}
]}
"""

RESOURCE = {
    "host.name": "gpu-01",
    "process.command_args": '["python","train.py","--x=\\u003c1\\u003e\\u0026y"]',
    "process.pid": "4242",
    "service.name": "trainer",
}

# The three rows, in INSERT_COLUMNS order, worked out by hand.
EXPECTED = [
    (
        1700000000123456789,
        TRACE,
        "eee19b7ec3c1b174",
        "",
        "vendor=a",
        "run",
        "Server",
        "trainer",
        RESOURCE,
        "clew.files",
        "0.1.0",
        {
            "Zeta": "upper case sorts first",
            "b_false": "false",
            "b_true": "true",
            "d_100": "100",
            "d_half": "0.5",
            "d_huge": "1e+21",
            "d_small": "1.5e-7",
            "empty": "",
            "i": "-42",
            "kv": '{"a":"\\u003cb\\u003e","m":[1e-7],"z":1}',
            "mixed": '["a",1,2.5,false,3,null,{"x":"y"}]',
            "raw": "AAEC/w==",
            "s": "text",
            "\u00e9t\u00e9": "summer",
        },
        1000000001,
        "Error",
        "exit 3",
        [1700000000500000001, 1700000000600000000],
        ["exception", "checkpoint"],
        [{"exception.message": "bad", "exception.type": "ValueError"}, {}],
        ["0af7651916cd43dd8448eb211c80319c"],
        ["b7ad6b7169203331"],
        ["congo=t61rcWkgMzE"],
        [{"link.kind": "previous"}],
    ),
    (
        1700000002000000000,
        TRACE,
        "00f067aa0ba902b7",
        "eee19b7ec3c1b174",
        "",
        "read file",
        "Client",
        "trainer",
        RESOURCE,
        "clew.files",
        "0.1.0",
        {"provenance.size": "12", "provenance.uri": "file://h/x"},
        500,
        "Ok",
        "",
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    ),
    (
        1700000100000000000,
        "",
        "1111111111111111",
        "",
        "",
        "orphan",
        "Internal",
        "",
        {"telemetry.sdk.language": "python"},
        "",
        "",
        {},
        0,
        "Unset",
        "",
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    ),
]

# How the rows come back: nanosecond timestamps through toUnixTimestamp64Nano.
READ_BACK = """
SELECT toUnixTimestamp64Nano(Timestamp), TraceId, SpanId, ParentSpanId, TraceState, SpanName,
    SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes,
    Duration, StatusCode, StatusMessage,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Events.Name, Events.Attributes,
    Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes
FROM rows.otel_traces ORDER BY Timestamp
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A chDB store with the schema in database `rows` and LINE inserted."""
    path = tmp_path_factory.mktemp("rows-store")
    store = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    create_schema(store, SchemaOptions(database="rows"))
    store.insert("rows.otel_traces", spans_to_rows(json.loads(LINE)), column_names=INSERT_COLUMNS)
    yield store
    store.close()


def test_insert_columns_are_the_collectors_22():
    assert INSERT_COLUMNS == (
        "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName",
        "SpanKind", "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion",
        "SpanAttributes", "Duration", "StatusCode", "StatusMessage", "Events.Timestamp",
        "Events.Name", "Events.Attributes", "Links.TraceId", "Links.SpanId",
        "Links.TraceState", "Links.Attributes",
    )  # fmt: skip


def test_rows_equal_the_hand_computed_rows():
    rows = spans_to_rows(json.loads(LINE))
    assert [tuple(_lists(value) for value in row) for row in rows] == EXPECTED
    # Maps in bytewise key order, not only equal as dicts.
    assert [list(row[11]) for row in rows] == [list(row[11]) for row in EXPECTED]
    assert list(rows[0][8]) == sorted(RESOURCE)


def test_rows_read_back_from_chdb_equal_the_expected(client):
    assert [tuple(row) for row in client.query(READ_BACK).result_rows] == EXPECTED


def test_maps_are_stored_in_key_order_and_items_aliases_are_k_equals_v(client):
    keys, items, resource_items = client.query(
        "SELECT mapKeys(SpanAttributes), SpanAttributeItems, ResourceAttributeItems "
        "FROM rows.otel_traces WHERE SpanName = 'read file'"
    ).result_rows[0]
    assert keys == ["provenance.size", "provenance.uri"]
    assert items == ["provenance.size=12", "provenance.uri=file://h/x"]
    assert resource_items == [
        "host.name=gpu-01",
        'process.command_args=["python","train.py","--x=\\u003c1\\u003e\\u0026y"]',
        "process.pid=4242",
        "service.name=trainer",
    ]


def test_the_trace_id_lookup_view_fills(client):
    rows = client.query(
        "SELECT TraceId, toUnixTimestamp(min(Start)), toUnixTimestamp(max(End)) "
        "FROM rows.otel_traces_trace_id_ts GROUP BY TraceId"
    ).result_rows
    # Whole seconds of the earliest and latest span start; the all-zero trace is left out.
    assert [tuple(row) for row in rows] == [(TRACE, 1700000000, 1700000002)]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (100.0, "100"),
        (0.5, "0.5"),
        (1.5e-7, "1.5e-7"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e16, "10000000000000000"),
        (1.5e-5, "0.000015"),
        (1e-6, "0.000001"),
        (9.99e-7, "9.99e-7"),
        (0.0, "0"),
        (-0.0, "-0"),
        (-2.5e-10, "-2.5e-10"),
        (0.1 + 0.2, "0.30000000000000004"),
        (123456789.125, "123456789.125"),
        (5e-324, "5e-324"),
        (1e-100, "1e-100"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_doubles_are_formatted_as_go_encoding_json_does(value, text):
    assert format_double(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"stringValue": "a<b"}, "a<b"),  # only JSON gets Go's HTML escapes
        ({"intValue": 7}, "7"),
        ({"intValue": "-9223372036854775808"}, "-9223372036854775808"),
        ({"doubleValue": "NaN"}, "json: unsupported value: NaN"),
        ({"doubleValue": "Infinity"}, "json: unsupported value: +Inf"),
        ({"doubleValue": "-Infinity"}, "json: unsupported value: -Inf"),
        ({"doubleValue": 3}, "3"),
        ({"bytesValue": ""}, ""),
        ({"bytesValue": "AAEC_w"}, "AAEC/w=="),  # URL-safe, unpadded: re-encoded
        ({}, ""),
        ({"arrayValue": {}}, "[]"),
        ({"kvlistValue": {}}, "{}"),
        ({"arrayValue": {"values": [{"doubleValue": "NaN"}]}}, ""),  # json.Marshal fails
        # arrays of ints, as written and as they must be normalised (a sign, leading zeros,
        # "-0", a JSON number, more digits than an int64, a mix with other kinds)
        ({"arrayValue": {"values": [{"intValue": "0"}, {"intValue": "-12"},
                                    {"intValue": "9223372036854775807"}]}},
         "[0,-12,9223372036854775807]"),
        ({"arrayValue": {"values": [{"intValue": "+1"}, {"intValue": "007"}, {"intValue": "-0"},
                                    {"intValue": 5}, {"intValue": "1" + "0" * 25}]}},
         "[1,7,0,5,1" + "0" * 25 + "]"),
        ({"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "2"}, {"intValue": "03"}]}},
         '[1,"2",3]'),
        ({"arrayValue": {"values": [{"bytesValue": "AQ=="}, {"bytesValue": ""}]}}, '["AQ==",null]'),
        (
            {"arrayValue": {"values": [{"stringValue": "\u2028\n\x01\"\\é"}]}},
            '["\\u2028\\n\\u0001\\"\\\\é"]',
        ),
        (
            {"kvlistValue": {"values": [
                {"key": "k", "value": {"intValue": "1"}},
                {"key": "k", "value": {"intValue": "2"}},
                {"key": "&", "value": {"arrayValue": {"values": []}}}]}},
            '{"\\u0026":[],"k":2}',
        ),
    ],
)  # fmt: skip
def test_values_are_strings_as_pdata_as_string_gives_them(value, text):
    assert as_string(value) == text


def test_duplicate_keys_keep_the_last_value():
    pairs = [
        {"key": "b", "value": {"stringValue": "1"}},
        {"key": "a", "value": {"intValue": "2"}},
        {"key": "b", "value": {"stringValue": "3"}},
    ]
    assert list(attributes_map(pairs).items()) == [("a", "2"), ("b", "3")]


def test_ids_in_protobufs_base64_json_become_hex():
    request = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "W47/95gDgQPSabYzgT/GDA==", "spanId": "7uGbfsPBsXQ=",
        "startTimeUnixNano": "2", "endTimeUnixNano": "1"}]}]}]}  # fmt: skip
    (row,) = spans_to_rows(request)
    assert row[1:4] == (TRACE, "eee19b7ec3c1b174", "")
    assert row[12] == 0  # a span that ends before it starts has no negative duration


def test_a_malformed_id_raises_value_error():
    request = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not an id!"}]}]}]}
    with pytest.raises(ValueError, match="not a trace or span id"):
        spans_to_rows(request)


def test_lines_accumulate_into_one_batch():
    rows = spans_to_rows(json.loads(LINE))
    assert spans_to_rows(json.loads(LINE), rows) is rows
    assert len(rows) == 6 and {len(row) for row in rows} == {len(INSERT_COLUMNS)}
    assert spans_to_rows({}) == []


def _lists(value):
    # Empty Events and Links are a shared empty tuple in the rows; compare them as lists.
    return list(value) if isinstance(value, tuple) else value


def test_spans_from_clews_own_encoder():
    provider = TracerProvider(resource=Resource.create({"service.name": "demo"}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    attributes = {"n": 7, "x": 0.5, "f": 100.0, "ok": True, "uris": ["a<b", "c"], "w": [1.0, 2]}
    with provider.get_tracer("clew.test", "1.2").start_as_current_span("run", attributes=attributes):
        pass
    (row,) = spans_to_rows(json.loads(json.dumps(encode_spans(exporter.get_finished_spans()))))
    assert row[5:8] == ("run", "Internal", "demo")
    assert row[9:12] == ("clew.test", "1.2", {
        "f": "100", "n": "7", "ok": "true", "uris": '["a\\u003cb","c"]', "w": "[1,2]", "x": "0.5"
    })  # fmt: skip
    assert row[13] == "Unset" and row[3] == "" and len(row[1]) == 32 and row[12] > 0
