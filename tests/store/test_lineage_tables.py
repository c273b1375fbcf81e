"""clew's lineage tables (clew_io, clew_runs, clew_run_io), filled by views from otel_traces.

Two sources fill them and must fill them the same way:

* a real pipeline recorded under `opentelemetry-instrument` and ingested from its spool;
  every expected value comes from the files on disk (blake3 digests, sizes) and the git
  work tree, never from clew's own reader;
* rows inserted the way an OpenTelemetry Collector's ClickHouse exporter writes them: the 22
  INSERT columns, attribute values as pdata's AsString makes them (JSON arrays with Go's
  escapes, ints as decimal strings) and the old `SPAN_KIND_*`/`STATUS_CODE_*` names;
* rows as rotel's ClickHouse exporter writes them (arrays as OTLP JSON objects).
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from clew.exporter.store import connection as store
from clew.exporter.store.ingest import ingest
from clew.exporter.store.lineage import LINEAGE_VERSION, create_lineage_tables
from clew.exporter.store.rows import INSERT_COLUMNS
from clew.exporter.store.schema import SchemaOptions, create_schema
from clew.exporter.spool_files import spool_directory
from clew.query.runs import list_runs

pytestmark = pytest.mark.integration

HOST = socket.gethostname()


@pytest.fixture(scope="module")
def client(pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A store holding the pipeline, ingested from a copy of its spool."""
    root = tmp_path_factory.mktemp("lineage")
    url = f"chdb://{root / 'db'}"
    client = store.connect(url)
    result = ingest(client, pipeline.spool)
    assert result.corrupt == 0 and result.torn == 0
    yield client
    store.close(url)


def rows(client: Any, sql: str, **parameters: Any) -> list[tuple]:
    return client.query(sql, parameters=parameters).result_rows


# --- clew_io ---------------------------------------------------------------------------


def test_clew_io_has_one_row_per_artifact_per_record(client, pipeline):
    for run in pipeline.runs:
        found = rows(client, "SELECT Operation, Uri, Digest, Size, Count FROM clew_io "
                             "WHERE RunId = %(run)s", run=run.run_id)
        assert Counter(found) == Counter(run.records), run.name


def test_batched_read_spans_are_exploded_into_one_row_per_file(client, pipeline):
    prep = pipeline.run("prep-1")
    by_span = rows(client, """
        SELECT SpanId, groupArray(Uri), any(Pid), any(Identity) FROM clew_io
        WHERE RunId = %(run)s AND Operation = 'read' GROUP BY SpanId""", run=prep.run_id)
    batched = [uris for _, uris, _, _ in by_span if len(uris) > 1]
    raw = pipeline.work / "data/raw"
    # prep.py's own reads of data/raw/ come as one span; its child's read of b.csv as another
    assert [sorted(b) for b in batched] == [
        sorted(f"file://{HOST}{raw}/{name}" for name in ("a.csv", "b.csv", "leak.csv"))
    ]
    assert len({pid for _, _, pid, _ in by_span}) == 2  # the parent and its child process
    assert {identity for *_, identity in by_span} == {"content"}
    # the span behind them carries the arrays, as JSON strings
    span_id = next(s for s, uris, _, _ in by_span if len(uris) > 1)
    (attributes,) = rows(client, "SELECT SpanAttributes FROM otel_traces WHERE SpanId = "
                                 "%(span)s", span=span_id)[0]
    assert sorted(json.loads(attributes["provenance.artifacts.uri"])) == sorted(batched[0])


def test_clew_io_columns_say_who_and_when(client, pipeline):
    run = pipeline.run("train-1")
    found = rows(client, """
        SELECT io.Pid, io.Rank, io.Worker, io.ServiceName, io.Timestamp >= r.Start,
               io.Timestamp <= r.End, io.Version, io.ETag, io.SourceUri
        FROM clew_io AS io JOIN clew_runs AS r ON r.RunId = io.RunId
        WHERE io.RunId = %(run)s""", run=run.run_id)
    assert len(found) == len(run.records)
    for pid, rank, worker, service, after_start, before_end, version, etag, source in found:
        assert pid > 0 and rank == -1 and worker == -1 and service != ""
        assert after_start and before_end
        assert (version, etag, source) == ("", "", "")  # local files have none


def test_lookups_by_digest_and_by_uri(client, pipeline):
    test_csv = f"file://{HOST}{pipeline.work}/data/test/test.csv"
    evaluate, train = pipeline.run("evaluate-1"), pipeline.run("train-1")
    same_content = rows(client, "SELECT DISTINCT RunId, Uri FROM clew_io WHERE Digest = "
                                "%(d)s ORDER BY Uri", d=evaluate.reads[test_csv])
    labels = f"file://{HOST}{pipeline.work}/data/aux/labels.csv"
    assert {(r, u) for r, u in same_content} == {
        (evaluate.run_id, test_csv),
        (train.run_id, labels),
        (pipeline.run("train-2").run_id, labels),
    }


# --- clew_runs and clew_run_io ---------------------------------------------------------


def test_clew_runs_has_one_row_per_run(client, pipeline):
    # not FINAL: prep.py's child process joined the run without adding a row
    assert rows(client, "SELECT count(), uniqExact(RunId) FROM clew_runs") == [
        (len(pipeline.runs), len(pipeline.runs))
    ]
    for run in pipeline.runs:
        found = rows(client, """
            SELECT Command, ExitCode, StatusCode, ErrorType, GitCommit, GitBranch, GitDirty,
                   GitDiffDigest != '', Host, Cwd, End > Start, ServiceName
            FROM clew_runs WHERE RunId = %(run)s""", run=run.run_id)
        assert found == [(
            run.argv, run.exit_code, "Error" if run.exit_code else "Unset",
            "RuntimeError" if run.exit_code else "", run.git_commit, "main", run.git_dirty,
            run.git_dirty, HOST, str(pipeline.work), True, "clew",
        )], run.name


def test_clew_run_io_counts_inputs_outputs_and_records(client, pipeline):
    for run in pipeline.runs:
        found = rows(client, """
            SELECT uniqMerge(Inputs), uniqMerge(Outputs), uniqMerge(Records),
                   groupUniqArrayArray(Ranks)
            FROM clew_run_io WHERE RunId = %(run)s GROUP BY RunId""", run=run.run_id)
        assert found == [(len(run.reads), len(run.writes), len(run.records), [-1])], run.name


def test_list_runs_reads_the_tables(client, pipeline):
    found = list_runs(client)
    assert [r.run_id for r in found] == [r.run_id for r in reversed(pipeline.runs)]
    by_id = {r.run_id: r for r in found}
    for run in pipeline.runs:
        listed = by_id[run.run_id]
        assert listed.command == run.argv
        assert listed.status == ("failed" if run.exit_code else "ok")
        assert listed.exit_code == run.exit_code
        assert (listed.inputs, listed.outputs) == (len(run.reads), len(run.writes))
        assert (listed.git_commit, listed.git_dirty) == (run.git_commit, run.git_dirty)
        assert listed.ranks == []


# --- the same spans, written by clew's ingest and by a Collector -------------------------

TRACE = "5b8efff798038103d269b633813fc60c"
RUN_SPAN, READ_SPAN, WRITE_SPAN = "eee19b7ec3c1b174", "eee19b7ec3c1b175", "eee19b7ec3c1b176"
T0 = 1_790_000_000_123_456_789  # ns: the nanoseconds must survive
URIS = ["file://h/data/a&b.csv", "file://h/data/<c>.csv"]
DIGESTS = ["blake3:" + "1" * 64, "blake3:" + "2" * 64]
ARGV = ["python", "train.py", "--lr", "0.5"]


def _kv(key: str, value: Any) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, list):
        return {"key": key, "value": {"arrayValue": {"values": [_kv("", v)["value"]
                                                                 for v in value]}}}
    return {"key": key, "value": {"stringValue": value}}


def _spans(exit_code: int | None, status: int) -> list[dict]:
    run_attributes = {
        "provenance.process.role": "run", "process.pid": 4242, "process.command_args": ARGV,
        "process.working_directory": "/srv/job", "host.name": "gpu-7",
        "vcs.ref.head.revision": "a" * 40, "vcs.ref.head.name": "main",
        "provenance.vcs.dirty": True, "provenance.vcs.diff.digest": "blake3:" + "3" * 64,
        "error.type": "KeyError",
    }
    if exit_code is not None:
        run_attributes["process.exit.code"] = exit_code
    read_attributes = {
        "provenance.io.operation": "read", "process.pid": 4242,
        "provenance.artifacts.uri": URIS, "provenance.artifacts.digest": DIGESTS,
        "provenance.artifacts.size": [10, 20], "provenance.artifacts.identity":
        ["content", "content"], "provenance.artifacts.count": [1, 3],
        "provenance.io.count": 4,
    }
    write_attributes = {
        "provenance.io.operation": "write", "process.pid": 4242,
        "provenance.artifact.uri": "s3://bucket/model.pt", "provenance.artifact.digest":
        "sha256:" + "4" * 64, "provenance.artifact.size": 30, "provenance.artifact.version":
        "v7", "provenance.artifact.etag": '"abc"', "provenance.artifact.identity": "version",
        "provenance.io.count": 1,
    }

    def span(span_id, parent, name, offset, attributes, status_code=0):
        return {
            "traceId": TRACE, "spanId": span_id, "parentSpanId": parent, "name": name,
            "kind": 1, "startTimeUnixNano": str(T0 + offset),
            "endTimeUnixNano": str(T0 + offset + 5_000_000_000),
            "attributes": [_kv(k, v) for k, v in attributes.items()],
            "status": {"code": status_code} if status_code else {},
        }

    return [
        span(RUN_SPAN, "", "run", 0, run_attributes, status),
        span(READ_SPAN, RUN_SPAN, "read file", 1000, read_attributes),
        span(WRITE_SPAN, RUN_SPAN, "write s3", 2000, write_attributes),
    ]


# A DataLoader worker of rank 1.
RESOURCE = {"service.name": "trainer", "provenance.rank": 1, "provenance.worker.id": 3,
            "host.name": "gpu-7"}


def _request(exit_code: int | None, status: int) -> dict:
    return {"resourceSpans": [{
        "resource": {"attributes": [_kv(k, v) for k, v in RESOURCE.items()]},
        "scopeSpans": [{"scope": {"name": "clew", "version": "0.1.0"},
                        "spans": _spans(exit_code, status)}],
    }]}


def _collector_rows(exit_code: int | None, status_name: str) -> list[list]:
    """The spans as the Collector's exporter inserts them: pdata AsString values (compact
    JSON arrays, Go's \\u0026 and \\u003c escapes, decimal ints, `true`), sorted maps, the
    old enum names, DateTime64 as nanoseconds."""
    resource = {"host.name": "gpu-7", "provenance.rank": "1", "provenance.worker.id": "3",
                "service.name": "trainer"}

    def row(span_id, parent, name, offset, attributes, status="STATUS_CODE_UNSET"):
        return [T0 + offset, TRACE, span_id, parent, "", name, "SPAN_KIND_INTERNAL", "trainer",
                resource, "clew", "0.1.0", dict(sorted(attributes.items())), 5_000_000_000,
                status, "", [], [], [], [], [], [], []]

    run = {
        "error.type": "KeyError", "host.name": "gpu-7",
        "process.command_args": '["python","train.py","--lr","0.5"]', "process.pid": "4242",
        "process.working_directory": "/srv/job", "provenance.process.role": "run",
        "provenance.vcs.diff.digest": "blake3:" + "3" * 64, "provenance.vcs.dirty": "true",
        "vcs.ref.head.name": "main", "vcs.ref.head.revision": "a" * 40,
    }
    if exit_code is not None:
        run["process.exit.code"] = str(exit_code)
    read = {
        "process.pid": "4242", "provenance.io.operation": "read", "provenance.io.count": "4",
        "provenance.artifacts.uri": '["file://h/data/a\\u0026b.csv","file://h/data/\\u003cc\\u003e.csv"]',
        "provenance.artifacts.digest": json.dumps(DIGESTS, separators=(",", ":")),
        "provenance.artifacts.size": "[10,20]", "provenance.artifacts.count": "[1,3]",
        "provenance.artifacts.identity": '["content","content"]',
    }
    write = {
        "process.pid": "4242", "provenance.io.operation": "write", "provenance.io.count": "1",
        "provenance.artifact.uri": "s3://bucket/model.pt",
        "provenance.artifact.digest": "sha256:" + "4" * 64, "provenance.artifact.size": "30",
        "provenance.artifact.version": "v7", "provenance.artifact.etag": '"abc"',
        "provenance.artifact.identity": "version",
    }
    return [
        row(RUN_SPAN, "", "run", 0, run, status_name),
        row(READ_SPAN, RUN_SPAN, "read file", 1000, read),
        row(WRITE_SPAN, RUN_SPAN, "write s3", 2000, write),
    ]


def _rotel_rows(exit_code: int | None, status_name: str) -> list[list]:
    """The spans as rotel's ClickHouse exporter (0.0.1-alpha10) inserts them: the Collector's
    columns and names, but array values as the OTLP JSON of the ArrayValue, and attribute
    maps in the order the spans carried them."""

    def otlp(values: list) -> str:
        kind = "stringValue" if isinstance(values[0], str) else "intValue"
        items = [{kind: value if kind == "stringValue" else str(value)} for value in values]
        return json.dumps({"values": items}, separators=(",", ":"))

    rows = _collector_rows(exit_code, status_name)
    for row in rows:
        row[6] = "Internal"
        row[13] = row[13].removeprefix("STATUS_CODE_").capitalize()
        attributes = row[11]
        for name, values in (("process.command_args", ARGV), ("provenance.artifacts.uri", URIS),
                             ("provenance.artifacts.digest", DIGESTS),
                             ("provenance.artifacts.size", [10, 20]),
                             ("provenance.artifacts.count", [1, 3]),
                             ("provenance.artifacts.identity", ["content", "content"])):
            if name in attributes:
                attributes[name] = otlp(values)
        row[11] = dict(reversed(list(attributes.items())))
    return rows


IO_COLUMNS = ("RunId, SpanId, ParentSpanId, toUnixTimestamp64Nano(Timestamp), ServiceName, "
              "Pid, Rank, Worker, Operation, Uri, Digest, Version, ETag, Size, Identity, Count, "
              "SourceUri")
RUN_COLUMNS = ("RunId, toUnixTimestamp64Nano(Start), toUnixTimestamp64Nano(End), ServiceName, "
               "Command, StatusCode, ExitCode, ErrorType, GitCommit, GitBranch, GitDirty, "
               "GitDiffDigest, Host, Cwd")

EXPECTED_IO = [
    (TRACE, READ_SPAN, RUN_SPAN, T0 + 1000, "trainer", 4242, 1, 3, "read", URIS[0], DIGESTS[0],
     "", "", 10, "content", 1, ""),
    (TRACE, READ_SPAN, RUN_SPAN, T0 + 1000, "trainer", 4242, 1, 3, "read", URIS[1], DIGESTS[1],
     "", "", 20, "content", 3, ""),
    (TRACE, WRITE_SPAN, RUN_SPAN, T0 + 2000, "trainer", 4242, 1, 3, "write",
     "s3://bucket/model.pt", "sha256:" + "4" * 64, "v7", '"abc"', 30, "version", 1, ""),
]


def _expected_run(exit_code: int, status: str) -> tuple:
    return (TRACE, T0, T0 + 5_000_000_000, "trainer", ARGV, status, exit_code, "KeyError",
            "a" * 40, "main", 1, "blake3:" + "3" * 64, "gpu-7", "/srv/job")


# (exit code or None, OTLP status code, the Collector's old name, the name clew_runs shows,
# what `clew runs` says)
STATUS_CASES = {
    "error": (2, 2, "STATUS_CODE_ERROR", "Error", "failed"),
    "killed": (None, 2, "STATUS_CODE_ERROR", "Error", "failed"),  # no exit code, still failed
    "ok": (0, 1, "STATUS_CODE_OK", "Ok", "ok"),
    "unset": (0, 0, "STATUS_CODE_UNSET", "Unset", "ok"),
}
WRITERS = ("via_clew", "via_collector", "via_rotel")


@pytest.mark.parametrize("case", STATUS_CASES)
def test_collector_rows_fill_the_tables_as_clews_ingest_does(client, tmp_path, case):
    exit_code, otlp_status, old_name, status, verdict = STATUS_CASES[case]
    # Each case in its own databases of the module's store (one chDB path at a time).
    via_clew, via_collector, via_rotel = (SchemaOptions(database=f"{way}_{case}")
                                          for way in WRITERS)
    # clew's way: a spool line, ingested
    spool = spool_directory(tmp_path / "home")
    spool.mkdir(parents=True)
    (spool / "20260101T000000-gpu-7-4242-0123abcd.jsonl").write_text(
        json.dumps(_request(exit_code, otlp_status)) + "\n")
    assert ingest(client, spool, options=via_clew).spans == 3
    # the Collector's way: its 22 columns, its string forms, the old enum names
    create_schema(client, via_collector)
    create_lineage_tables(client, via_collector)
    client.insert(f"{via_collector.database}.otel_traces", _collector_rows(exit_code, old_name),
                  column_names=list(INSERT_COLUMNS))
    # rotel's way: the same columns, its own string form of arrays, the current names
    create_schema(client, via_rotel)
    create_lineage_tables(client, via_rotel)
    client.insert(f"{via_rotel.database}.otel_traces", _rotel_rows(exit_code, status),
                  column_names=list(INSERT_COLUMNS))

    expected_exit = -1 if exit_code is None else exit_code
    for database in (via_clew.database, via_collector.database, via_rotel.database):
        io = rows(client, f"SELECT {IO_COLUMNS} FROM {database}.clew_io ORDER BY SpanId, Uri")
        assert sorted(io) == sorted(EXPECTED_IO), database
        found = rows(client, f"SELECT {RUN_COLUMNS} FROM {database}.clew_runs")
        assert found == [_expected_run(expected_exit, status)], database
        counts = rows(client, f"SELECT uniqMerge(Inputs), uniqMerge(Outputs), uniqMerge(Records), "
                              f"groupUniqArrayArray(Ranks) FROM {database}.clew_run_io")
        assert counts == [(2, 1, 3, [1])], database
        (listed,) = list_runs(client, options=SchemaOptions(database=database))
        assert (listed.status, listed.exit_code, listed.ranks) == (verdict, exit_code, [1])
        assert (listed.inputs, listed.outputs, listed.command) == (2, 1, ARGV)
    # and the trace itself reads the same from both, old names aside
    spans = "SELECT SpanId, SpanName, StatusCode, SpanKind FROM {}.otel_traces ORDER BY SpanId"
    clew_spans = rows(client, spans.format(via_clew.database))
    collector_spans = rows(client, spans.format(via_collector.database))
    assert [s[:2] for s in clew_spans] == [s[:2] for s in collector_spans]
    assert {s[3] for s in clew_spans} == {"Internal"}
    assert {s[3] for s in collector_spans} == {"SPAN_KIND_INTERNAL"}


def test_a_batch_without_identities_or_counts_fills_the_same_rows(client, tmp_path):
    """clew leaves a batch's identities out when they are all the same (giving the one as a
    scalar) and its counts when all are 1: its rows are those of the full arrays."""
    common = {
        "provenance.io.operation": "read", "process.pid": 4242, "provenance.io.count": 2,
        "provenance.artifacts.uri": URIS, "provenance.artifacts.digest": DIGESTS,
        "provenance.artifacts.size": [10, 20],
    }
    forms = {
        "full": {**common, "provenance.artifacts.identity": ["stat", "stat"],
                 "provenance.artifacts.count": [1, 1]},
        "compact": {**common, "provenance.artifact.identity": "stat"},
    }
    found = {}
    for form, attributes in forms.items():
        options = SchemaOptions(database=f"batch_{form}")
        spool = spool_directory(tmp_path / form)
        spool.mkdir(parents=True)
        span = {"traceId": TRACE, "spanId": READ_SPAN, "name": "read file", "kind": 1,
                "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 1),
                "attributes": [_kv(k, v) for k, v in attributes.items()]}
        request = {"resourceSpans": [{"resource": {"attributes": []},
                                      "scopeSpans": [{"scope": {"name": "clew"},
                                                      "spans": [span]}]}]}
        (spool / "20260101T000000-h-1-0123abcd.jsonl").write_text(json.dumps(request) + "\n")
        assert ingest(client, spool, options=options).spans == 1
        found[form] = rows(client, f"SELECT Uri, Digest, Size, Identity, Count "
                                   f"FROM {options.database}.clew_io ORDER BY Uri")
    expected = sorted([(URIS[0], DIGESTS[0], 10, "stat", 1), (URIS[1], DIGESTS[1], 20, "stat", 1)])
    assert found == {"full": expected, "compact": expected}


@pytest.mark.parametrize("form", ["collector", "rotel"])
def test_a_batched_object_read_gives_each_object_its_version_etag_bytes_and_producer(
    client, form
):
    """A batched "read s3" span as a Collector (pdata AsString JSON arrays) or rotel (OTLP
    JSON ArrayValues) writes it: each object's row takes its own entry of every array, and the
    producer of the link that names its URI when the link's stamped digest is the one the read
    saw; a stamp on other content (copies carry stamps along) names no producer."""
    uris = ["s3://b/shards/0.bin", "s3://b/shards/1.bin"]
    arrays = {
        "provenance.artifacts.uri": uris, "provenance.artifacts.digest": DIGESTS[:2],
        "provenance.artifacts.size": [7, -1], "provenance.artifacts.version": ["v1", ""],
        "provenance.artifacts.etag": ['"e0"', '"e1"'], "provenance.artifacts.bytes": [7, 3],
        "provenance.artifacts.checksums": ["crc32:0a0b0c0d", ""],
    }

    def encode(values: list) -> str:
        if form == "collector":
            return json.dumps(values, separators=(",", ":"))
        kind = "stringValue" if isinstance(values[0], str) else "intValue"
        return json.dumps({"values": [{kind: v if kind == "stringValue" else str(v)} for v in values]})

    attributes = {
        "process.pid": "4242", "provenance.io.operation": "read", "provenance.io.count": "2",
        "provenance.object.store": "s3", "aws.s3.bucket": "b",
        "provenance.artifact.identity": "etag", **{k: encode(v) for k, v in arrays.items()},
    }
    producer_trace, producer_span = "9" * 32, "8" * 16
    row = [T0, TRACE, READ_SPAN, RUN_SPAN, "", "read s3", "SPAN_KIND_INTERNAL", "trainer", {},
           "clew", "0.1.0", dict(sorted(attributes.items())), 1, "STATUS_CODE_UNSET", "",
           [], [], [], [producer_trace] * 2, [producer_span] * 2, [""] * 2,
           [{"provenance.artifact.uri": uris[0], "provenance.producer.digest": DIGESTS[0]},
            {"provenance.artifact.uri": uris[1], "provenance.producer.digest": "blake3:" + "0" * 64}]]
    options = SchemaOptions(database=f"object_batch_{form}")
    database = options.database
    create_schema(client, options)
    create_lineage_tables(client, options)
    client.insert(f"{database}.otel_traces", [row], column_names=list(INSERT_COLUMNS))
    found = rows(client, f"SELECT Uri, Digest, Size, Version, ETag, Bytes, Identity, "
                         f"ProducerRunId, ProducerSpanId FROM {database}.clew_io ORDER BY Uri")
    assert found == [
        (uris[0], DIGESTS[0], 7, "v1", '"e0"', 7, "etag", producer_trace, producer_span),
        (uris[1], DIGESTS[1], -1, "", '"e1"', 3, "etag", "", ""),
    ]


def test_tables_made_after_the_spans_are_filled_from_them(client):
    """A Collector wrote spans before clew was pointed at its database: making the lineage
    tables fills them from otel_traces (docs/deploy.md), once."""
    options = SchemaOptions(database="backfill")
    create_schema(client, options)
    client.insert("backfill.otel_traces", _collector_rows(2, "STATUS_CODE_ERROR"),
                  column_names=list(INSERT_COLUMNS))
    create_lineage_tables(client, options)
    create_lineage_tables(client, options)  # a second time changes nothing
    _assert_filled_once(client, "backfill")


def test_tables_of_another_version_are_rebuilt_from_the_spans(client):
    """An upgrade that changes the lineage tables' shape drops and refills them."""
    options = SchemaOptions(database="rebuild")
    create_schema(client, options)
    create_lineage_tables(client, options)
    client.insert("rebuild.otel_traces", _collector_rows(2, "STATUS_CODE_ERROR"),
                  column_names=list(INSERT_COLUMNS))
    # what an older clew made: another version, missing a column, holding a stray row
    client.command("DROP VIEW rebuild.clew_io_mv")
    client.command("ALTER TABLE rebuild.clew_io DROP COLUMN ProducerRunId")
    client.command("ALTER TABLE rebuild.clew_io MODIFY COMMENT 'clew lineage 1'")
    client.command("INSERT INTO rebuild.clew_io (RunId, Uri) VALUES ('stray', 'file://x/y')")
    create_lineage_tables(client, options)
    _assert_filled_once(client, "rebuild")
    assert rows(client, "SELECT comment FROM system.tables WHERE database = 'rebuild' "
                        "AND name = 'clew_io'") == [(f"clew lineage {LINEAGE_VERSION}",)]


def _assert_filled_once(client: Any, database: str) -> None:
    io = rows(client, f"SELECT {IO_COLUMNS} FROM {database}.clew_io")
    assert sorted(io) == sorted(EXPECTED_IO)
    assert rows(client, f"SELECT {RUN_COLUMNS} FROM {database}.clew_runs") == [
        _expected_run(2, "Error")]
    assert rows(client, "SELECT uniqMerge(Inputs), uniqMerge(Outputs), uniqMerge(Records) "
                        f"FROM {database}.clew_run_io") == [(2, 1, 3)]
    # the writes again, keyed by their digest's hash for "which run wrote this content"
    assert rows(client, "SELECT DigestKey = sipHash64(Digest), RunId, "
                        "toUnixTimestamp64Nano(Timestamp), Operation, Uri, Digest, Version, ETag "
                        f"FROM {database}.clew_outputs") == [
        (1, TRACE, T0 + 2000, "write", "s3://bucket/model.pt", "sha256:" + "4" * 64, "v7",
         '"abc"')]


def test_lineage_tables_with_a_ttl_are_made_and_filled(client):
    """ttl_days reaches the lineage tables too (what a Collector's `ttl` option does to its
    own), and they are still filled through their views."""
    options = SchemaOptions(database="ttl", ttl_days=3650)  # T0 is in 2026
    create_schema(client, options)
    create_lineage_tables(client, options)
    expiring = rows(client, "SELECT name FROM system.tables WHERE database = 'ttl' "
                            "AND create_table_query LIKE '%TTL toDateTime(%' ORDER BY name")
    assert expiring == [("clew_config",), ("clew_io",), ("clew_links",), ("clew_metrics",),
                        ("clew_outputs",), ("clew_runs",), ("otel_traces",),
                        ("otel_traces_trace_id_ts",)]
    client.insert("ttl.otel_traces", _collector_rows(0, "STATUS_CODE_UNSET"),
                  column_names=list(INSERT_COLUMNS))
    assert rows(client, "SELECT count() FROM ttl.clew_io") == [(len(EXPECTED_IO),)]
