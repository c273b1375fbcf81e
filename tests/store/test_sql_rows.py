"""chDB's conversion of spool lines (sql_rows.py) against rows.py's: the same rows.

One spool, ingested twice into one embedded store: into `default` by `ingest` as it runs for
chDB (the lines converted by chDB itself, the lines it leaves by rows.py), and into `ref` as
it runs for a ClickHouse server (every line through rows.py, the reference). Every column of
otel_traces and every lineage table must hold the same rows in both, and the same lines must
be set aside. The spool is a real pipeline's, plus lines of every kind chDB must convert
exactly or leave to rows.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from clew.exporter.spool_files import spool_directory
from clew.exporter.store import connection as store
from clew.exporter.store import ingest as ingest_module
from clew.exporter.store.ingest import LOG_TABLE, QUARANTINE_DIRNAME, ingest
from clew.exporter.store.schema import SchemaOptions
from clew.exporter.store.sql_ingest import Staging

from test_ingest import span_line
from test_rows import LINE as EVERY_VALUE_KIND

pytestmark = pytest.mark.integration

T0 = 1_790_000_000_000_000_000
TRACE = "5b8efff798038103d269b633813fc60c"


def _span(span_id: str, attributes: str, **fields: Any) -> dict[str, Any]:
    span = {"traceId": TRACE, "spanId": span_id, "name": "write file", "kind": 1,
            "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 5),
            "attributes": json.loads(attributes)}
    span.update(fields)
    return span


def _line(*spans: dict[str, Any], resource: str = '[{"key":"service.name",'
          '"value":{"stringValue":"s"}}]') -> bytes:
    request = {"resourceSpans": [{"resource": {"attributes": json.loads(resource)},
                                  "scopeSpans": [{"scope": {"name": "clew"}, "spans": list(spans)}]}]}
    return json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


# Lines chDB converts, each a case of rows.py's encoding.
CONVERTED = [
    # lists of strings with what JSON and Go escape, raw UTF-8 and U+2028; of ints; empty
    _line(_span("0000000000000001", '[{"key":"a","value":{"arrayValue":{"values":['
                '{"stringValue":"x\\"y\\\\z"},{"stringValue":"<b>&amp;\u2028\u00e9\U0001F600"}]}}},'
                '{"key":"n","value":{"arrayValue":{"values":[{"intValue":"-3"},{"intValue":"0"}]}}},'
                '{"key":"e","value":{"arrayValue":{"values":[]}}},'
                '{"key":"B","value":{"boolValue":false}},{"key":"t","value":{"boolValue":true}},'
                '{"key":"\u00e9","value":{"stringValue":""}}]')),
    # upper-case ids, a zero parent, enums by name, a status, events, a clock step back
    _line(_span("00000000000000AB", "[]", parentSpanId="0000000000000000",
                kind="SPAN_KIND_PRODUCER", status={"code": "STATUS_CODE_ERROR", "message": "m"},
                endTimeUnixNano=str(T0 - 9), traceState="k=v",
                events=[{"timeUnixNano": str(T0 + 1), "name": "e",
                         "attributes": json.loads('[{"key":"k","value":{"intValue":"7"}}]')},
                        {"name": "no time"}]),
          _span("0000000000000003", "[]", kind=9, status={"code": 1}), resource="[]"),
    # an all-zero trace id, a missing trace id, no scope, a span with no attributes at all
    b'{"resourceSpans":[{"resource":{},"scopeSpans":[{"spans":[{"traceId":"'
    + b"0" * 32 + b'","spanId":"0000000000000004"},{"spanId":"0000000000000005"}]}]}]}\n',
    # a time as a JSON number
    _line(_span("0000000000000006", "[]", startTimeUnixNano=T0)),
]
# Lines chDB leaves to rows.py by their text: a double, an int not as Python writes it, an
# escape other than \" and \\; and lines rows.py sets aside: no JSON, no OTLP, doubles.
LEFT_BY_TEXT = [
    _line(_span("0000000000000007", '[{"key":"d","value":{"doubleValue":0.1}}]')),
    _line(_span("0000000000000008", '[{"key":"i","value":{"intValue":"007"}}]')),
    _line(_span("0000000000000009", '[{"key":"k","value":{"stringValue":"a\\nb"}}]')),
    b'{"resourceSpans": [\n',
    b'{"resourceSpans": 5}\n',
    EVERY_VALUE_KIND.replace("\n", "").encode() + b"\n",
]
# Lines whose values chDB finds only rows.py converts exactly while inserting (its insert
# fails and the batch goes to rows.py): a base64 id, a key twice, a value with no kind, a
# list of a string and an int; and lines rows.py sets aside: an id that is no id, a time
# out of range.
REFUSED_IN_INSERT = [
    _line(_span("AAAAAAAAAAo=", "[]")),
    _line(_span("000000000000000b", '[{"key":"k","value":{"stringValue":"1"}},'
                '{"key":"k","value":{"stringValue":"2"}}]')),
    _line(_span("000000000000000c", '[{"key":"k","value":{}}]')),
    _line(_span("000000000000000d", '[{"key":"k","value":{"arrayValue":{"values":['
                '{"stringValue":"a"},{"intValue":"1"}]}}}]')),
    _line(_span("not an id", "[]")),
    _line(_span("000000000000000e", "[]", endTimeUnixNano=str(1 << 63))),
]
EDGE_FILE = "20260101T000000-host-1-00000001.jsonl"

# Columns that say when a row was written, not what it holds.
_SKIPPED_COLUMNS = {"clew_links": ["Timestamp"], "clew_outputs": ["Inserted"]}
# The trace id lookup keeps, per insert, each trace's first start and last end: an insert
# taken again after a failure adds a row with the same times.
_TRACE_TIMES = "SELECT TraceId, min(Start), max(End) FROM {} GROUP BY TraceId"


def _tables(client: Any, database: str) -> list[str]:
    return sorted(name for (name,) in client.query(
        "SELECT name FROM system.tables WHERE database = %(db)s AND engine NOT LIKE '%%View'",
        parameters={"db": database}).result_rows)


def _difference(client: Any, table: str) -> tuple[int, int]:
    """Rows of `table` in one database and not in the other, both ways."""
    skipped = _SKIPPED_COLUMNS.get(table, [])
    columns = ", ".join(f"`{name}`" for (name,) in client.query(
        "SELECT name FROM system.columns WHERE database = 'default' AND table = %(t)s",
        parameters={"t": table}).result_rows if name not in skipped)
    if table.endswith("_trace_id_ts"):
        one, other = (_TRACE_TIMES.format(f"{db}.`{table}`") for db in ("default", "ref"))
    else:
        one, other = (f"SELECT {columns} FROM {db}.`{table}`" for db in ("default", "ref"))
    return tuple(client.query(f"SELECT count() FROM ({a} EXCEPT ALL {b})").result_rows[0][0]
                 for a, b in ((one, other), (other, one)))


@pytest.mark.parametrize("chunk_bytes", [1, 64 << 20], ids=["a-line-an-insert", "one-insert"])
def test_chdb_converts_every_line_as_rows_py_does(pipeline_home, tmp_path, monkeypatch,
                                                 chunk_bytes):
    spool = spool_directory(pipeline_home())
    (spool / EDGE_FILE).write_bytes(b"".join(CONVERTED + LEFT_BY_TEXT + REFUSED_IN_INSERT))
    reference = tmp_path / "reference-spool"
    reference.mkdir()
    for path in spool.glob("*.jsonl"):
        (reference / path.name).write_bytes(path.read_bytes())
    url = f"chdb://{tmp_path / 'db'}"
    client = store.connect(url)
    try:
        in_chdb = ingest(client, spool, chunk_bytes=chunk_bytes)
        with monkeypatch.context() as patch:  # a server's path: every line through rows.py
            patch.setattr(ingest_module, "is_embedded", lambda client: False)
            by_python = ingest(client, reference, options=SchemaOptions(database="ref"),
                               chunk_bytes=chunk_bytes)

        assert in_chdb.spans > 20 and (in_chdb.spans, in_chdb.lines, in_chdb.corrupt) == (
            by_python.spans, by_python.lines, by_python.corrupt)
        assert in_chdb.corrupt == 4
        assert in_chdb.warnings == [w.replace(str(reference), str(spool))
                                    for w in by_python.warnings]
        assert ((spool / QUARANTINE_DIRNAME / EDGE_FILE).read_bytes()
                == (reference / QUARANTINE_DIRNAME / EDGE_FILE).read_bytes())
        tables = _tables(client, "default")
        assert tables == _tables(client, "ref") and "otel_traces" in tables
        tables.remove(LOG_TABLE)  # how the ingest went, compared below
        assert {table: _difference(client, table) for table in tables} == {
            table: (0, 0) for table in tables}
        done = "SELECT File, Start, End FROM {}.clew_ingest_log WHERE Done = 1 ORDER BY ALL"
        assert (client.query(done.format("default")).result_rows
                == client.query(done.format("ref")).result_rows)
    finally:
        store.close(url)


def test_chdb_takes_the_pipelines_lines_and_leaves_only_what_rows_py_must_convert(
        pipeline_home, tmp_path):
    """Which lines chDB converts: all of a real pipeline's, and the edge cases it can."""
    spool = spool_directory(pipeline_home())
    pipeline_lines = [line for path in sorted(spool.glob("*.jsonl"))
                      for line in path.read_bytes().splitlines()]
    edge = [line.rstrip(b"\n") for line in CONVERTED + LEFT_BY_TEXT + REFUSED_IN_INSERT]
    url = f"chdb://{tmp_path / 'db'}"
    client = store.connect(url)
    try:
        staging = Staging(client, "otel_traces")
        staged = staging.stage(pipeline_lines + edge)
        # a run's metrics are doubles, which only rows.py writes as Go does
        with_doubles = [n for n, line in enumerate(pipeline_lines) if b'"doubleValue"' in line]
        first_left = len(pipeline_lines) + len(CONVERTED)
        assert staged.unconverted == with_doubles + list(
            range(first_left, first_left + len(LEFT_BY_TEXT)))
        assert len(with_doubles) < len(pipeline_lines) / 4
        assert sum(staged.spans[:len(pipeline_lines)]) > 20
        assert TRACE in staged.runs and "" in staged.runs  # the all-zero trace id
    finally:
        store.close(url)


def test_a_line_chdb_refuses_while_inserting_goes_through_rows_py_with_its_batch(
        tmp_path):
    """A value only rows.py converts exactly, found inside chDB's insert, fails it: what
    landed is deleted and the batch is converted by rows.py, each span once."""
    spool = tmp_path / "spool"
    spool.mkdir()
    before, after = span_line(1, 0, 200), span_line(1, 200, 200)  # write records
    refused = _line(_span("0000000000000fff", "[]", traceId="x" * 32))  # no hex
    (spool / "20260101T000000-host-1-00000001.jsonl").write_bytes(before + refused + after)
    url = f"chdb://{tmp_path / 'db'}"
    client = store.connect(url)
    try:
        result = ingest(client, spool)
        assert (result.spans, result.lines, result.corrupt) == (400, 2, 1)
        assert client.query("SELECT count(), uniqExact(SpanId) FROM otel_traces"
                            ).result_rows == [(400, 400)]
        assert client.query("SELECT count() FROM clew_io").result_rows == [(400,)]
    finally:
        store.close(url)
