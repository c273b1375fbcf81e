"""clew's Native blocks (exporter/store/native.py) store the rows `client.insert` stores, and an
ingest without them (a clickhouse-connect lacking its serializers) stores the same spans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from clew.exporter.store import connection as store
from clew.exporter.store import ingest as ingest_module
from clew.exporter.store.native import NativeBlocks
from clew.exporter.store.rows import INSERT_COLUMNS, spans_to_rows
from clew.exporter.store.schema import SchemaOptions, create_schema

pytestmark = pytest.mark.integration

T0 = 1_790_000_000_123_456_789  # nanoseconds that a float or a datetime would round


def request(trace: int, spans: int) -> dict[str, Any]:
    """An OTLP JSON request of `spans` spans: maps, non-ASCII text, events and links on some,
    and thousands of distinct attribute keys."""
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "träner"}}]},
        "scopeSpans": [{"scope": {"name": "clew", "version": "1"}, "spans": [
            {
                "traceId": f"{trace:032x}", "spanId": f"{i + 1:016x}",
                "parentSpanId": "" if i % 7 else f"{i + 2:016x}",
                "name": ("read file", "write file", "run")[i % 3], "kind": i % 4,
                "startTimeUnixNano": str(T0 + i), "endTimeUnixNano": str(T0 + 3 * i + 1),
                "status": {"code": i % 3, "message": "boom ✗" if i % 3 == 2 else ""},
                "attributes": [
                    {"key": "provenance.artifact.uri", "value": {"stringValue": f"file://h/é/{i}"}},
                    {"key": "provenance.artifact.size", "value": {"intValue": str(i * 1000)}},
                    {"key": "provenance.artifacts.size", "value": {"arrayValue": {"values": [
                        {"intValue": str(n)} for n in range(i % 5)]}}},
                    # a key of its own: more distinct keys than one byte numbers
                    {"key": f"tag.{i}", "value": {"boolValue": True}},
                ][: 1 + i % 4],
                "events": [{"timeUnixNano": str(T0 + i + 1), "name": "exception",
                            "attributes": [{"key": "exception.type",
                                            "value": {"stringValue": "OSError"}}]}]
                if i % 11 == 0 else [],
                "links": [{"traceId": f"{trace + 1:032x}", "spanId": f"{i + 9:016x}",
                           "attributes": [{"key": "n", "value": {"intValue": str(i)}}]}]
                if i % 13 == 0 else [],
            }
            for i in range(spans)
        ]}],
    }]}


READ_BACK = """
SELECT toUnixTimestamp64Nano(Timestamp), * EXCEPT Timestamp,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp)
FROM {database}.otel_traces ORDER BY SpanId
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    chdb = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path / 'store'}")
    yield chdb
    chdb.close()


def test_native_blocks_store_what_client_insert_stores(client):
    # more rows than one block holds, so that blocks follow one another
    rows = spans_to_rows(request(1, 5000))
    for database in ("inserted", "native"):
        create_schema(client, SchemaOptions(database=database))
    client.insert("inserted.otel_traces", rows, column_names=INSERT_COLUMNS)
    blocks = NativeBlocks(client, "native.otel_traces", INSERT_COLUMNS)
    client.raw_insert("native.otel_traces", INSERT_COLUMNS, insert_block=blocks.encode(rows),
                      fmt="Native")

    stored = client.query(READ_BACK.format(database="native")).result_rows
    assert len(stored) == 5000
    assert stored == client.query(READ_BACK.format(database="inserted")).result_rows
    assert stored[0][0] == T0  # nanoseconds kept
    assert blocks.encode([]) is None


def write_spool(spool: Path) -> set[tuple[str, str]]:
    """Three spool files of a few lines; returns (TraceId, SpanId) of every span."""
    spool.mkdir(parents=True)
    ids = set()
    for number in range(3):
        with open(spool / f"20260101T000000-host-{number}-{number:08x}.jsonl", "wb") as handle:
            for line in range(4):
                sent = request(10 * number + line + 1, 40)
                handle.write(json.dumps(sent).encode() + b"\n")
                spans = sent["resourceSpans"][0]["scopeSpans"][0]["spans"]
                ids.update((span["traceId"], span["spanId"]) for span in spans)
    return ids


def test_without_the_native_serializers_ingest_stores_the_same_spans(tmp_path, monkeypatch,
                                                                    store_url):
    spool = tmp_path / "spool"
    expected = write_spool(spool)
    monkeypatch.setattr(ingest_module, "native_blocks", lambda *arguments: None)
    client = store.connect(store_url)

    result = ingest_module.ingest(client, spool, chunk_bytes=20_000)  # several batches
    assert result.spans == len(expected) and result.corrupt == 0
    stored = client.query("SELECT TraceId, SpanId FROM otel_traces").result_rows
    assert sorted(map(tuple, stored)) == sorted(expected)
    pending = client.query(
        f"SELECT count() FROM (SELECT File, Start FROM {ingest_module.LOG_TABLE} "
        "GROUP BY File, Start HAVING max(Done) = 0)").result_rows[0][0]
    assert pending == 0
    assert ingest_module.ingest(client, spool).spans == 0


def test_attribute_maps_written_in_c_are_the_bytes_python_writes(client, monkeypatch):
    from clew.exporter.store import native

    write_string_maps = pytest.importorskip("clew.exporter.store._native_maps").write_string_maps
    create_schema(client, SchemaOptions(database="native"))
    blocks = NativeBlocks(client, "native.otel_traces", INSERT_COLUMNS)
    rows = spans_to_rows(request(1, 5000))  # 1,250 distinct keys: positions of 2 bytes
    attributes = INSERT_COLUMNS.index("SpanAttributes")
    unusual = [
        # a block whose maps are all empty (declined: Python writes it)
        [row[:attributes] + ({},) + row[attributes + 1:] for row in rows[:10]],
        # positions of 4 bytes, non-ASCII and empty keys and values
        [rows[0][:attributes] + ({**{f"k{n}": "v" * (n % 3) for n in range(70_000)},
                                  "": "", "é\U0001f600": "ü\n"},) + rows[0][attributes + 1:]],
    ]
    in_c = [blocks.encode(part) for part in (rows, *unusual)]
    monkeypatch.setattr(native, "_write_string_maps", None)
    assert [blocks.encode(part) for part in (rows, *unusual)] == in_c

    written = bytearray()
    assert write_string_maps([{"b": "1", "a": "2"}, {}, {"b": ""}], written) is True
    assert written == bytes.fromhex(
        "0200000000000000" "0200000000000000" "0300000000000000"  # offsets
        "0006000000000000" "0200000000000000" "0162" "0161"  # dictionary: b, a
        "0300000000000000" "000100"  # positions
        "0131" "0132" "00")  # values
    # what C declines leaves the block as it was
    for column in ([{}, {}], [{"a": "\ud800"}], [{"a": 1}], [{1: "a"}], ["a=b"]):
        block = bytearray(b"x")
        assert write_string_maps(column, block) is False and block == b"x"
