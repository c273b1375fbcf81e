"""Ingest of the spool into real chDB: one row per span, exactly once, whatever happens.

A second ingest adds no row; a kill -9
half-way and another ingest give each span exactly once (a real SIGKILL of an ingesting
process, and the crash window between "rows inserted" and "chunk marked done" built by hand);
a torn last line waits for the next ingest; a corrupt line is set aside and counted; only new
bytes are read. Spans are counted from the spool's raw JSON, not through clew's reader.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from clew.exporter.store import connection as store
from clew.exporter.store.ingest import LOG_TABLE, QUARANTINE_DIRNAME, ingest
from clew.exporter.store.rows import INSERT_COLUMNS, spans_to_rows
from clew.exporter.spool_files import spool_directory

pytestmark = pytest.mark.integration

T0 = 1_790_000_000_000_000_000


def span_line(trace: int, first: int, count: int) -> bytes:
    """One spool line (an OTLP JSON export request) of `count` "write file" spans."""
    trace_id = f"{trace:032x}"
    spans = [
        {
            "traceId": trace_id, "spanId": f"{first + i + 1:016x}", "parentSpanId": "",
            "name": "write file", "kind": 1,
            "startTimeUnixNano": str(T0 + first + i), "endTimeUnixNano": str(T0 + first + i + 9),
            "attributes": [
                {"key": "provenance.io.operation", "value": {"stringValue": "write"}},
                {"key": "provenance.artifact.uri",
                 "value": {"stringValue": f"file://h/out/{trace}/{first + i}.bin"}},
                {"key": "provenance.artifact.size", "value": {"intValue": str(i)}},
            ],
        }
        for i in range(count)
    ]
    request = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "synthetic"}}]},
        "scopeSpans": [{"scope": {"name": "clew"}, "spans": spans}],
    }]}
    return json.dumps(request, separators=(",", ":")).encode() + b"\n"


def spool_file(spool: Path, number: int) -> Path:
    spool.mkdir(parents=True, exist_ok=True)
    return spool / f"20260101T000000-host-{1000 + number}-{number:08x}.jsonl"


def write_spool(spool: Path, files: int, lines: int, spans_per_line: int) -> int:
    """A synthetic spool; returns its number of spans."""
    for number in range(files):
        with open(spool_file(spool, number), "wb") as handle:
            for line in range(lines):
                handle.write(span_line(number + 1, line * spans_per_line, spans_per_line))
    return files * lines * spans_per_line


def spool_ids(spool: Path) -> Counter:
    """(TraceId, SpanId) of every span of every whole line, from the raw JSON."""
    ids: Counter = Counter()
    for path in sorted(spool.glob("*.jsonl")):
        for raw in path.read_bytes().splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                continue
            try:
                request = json.loads(raw)
            except ValueError:
                continue
            for resource in request["resourceSpans"]:
                for scope in resource["scopeSpans"]:
                    ids.update((s["traceId"], s["spanId"]) for s in scope["spans"])
    return ids


def stored_ids(client: Any) -> Counter:
    result = client.query("SELECT TraceId, SpanId FROM otel_traces").result_rows
    return Counter(map(tuple, result))


def count(client: Any, sql: str) -> int:
    return client.query(sql).result_rows[0][0]


# --- a real spool --------------------------------------------------------------------------


def test_one_row_per_span_and_a_second_ingest_adds_none(pipeline_home, store_url):
    spool = spool_directory(pipeline_home())
    expected = spool_ids(spool)
    assert len(expected) > 20 and max(expected.values()) == 1
    client = store.connect(store_url)

    first = ingest(client, spool)
    assert stored_ids(client) == expected
    assert (first.spans, first.files, first.corrupt, first.torn) == (
        len(expected), len(list(spool.glob("*.jsonl"))), 0, 0)
    io_rows = count(client, "SELECT count() FROM clew_io")

    second = ingest(client, spool)
    assert (second.spans, second.lines, second.files) == (0, 0, 0)
    assert stored_ids(client) == expected
    assert count(client, "SELECT count() FROM clew_io") == io_rows
    assert count(client, "SELECT count() FROM clew_runs") == count(
        client, "SELECT count() FROM otel_traces WHERE SpanName = 'run'")


def test_ingest_reads_only_new_bytes(tmp_path, store_url):
    spool = tmp_path / "spool"
    growing, untouched = spool_file(spool, 1), spool_file(spool, 2)
    growing.write_bytes(span_line(1, 0, 3))
    untouched.write_bytes(span_line(2, 0, 4))
    client = store.connect(store_url)
    assert ingest(client, spool).spans == 7

    first_size = growing.stat().st_size
    with open(growing, "ab") as handle:
        handle.write(span_line(1, 3, 5))
    calls: list[tuple[int, int]] = []
    again = ingest(client, spool, progress=lambda done, total: calls.append((done, total)))
    assert (again.spans, again.files, again.lines) == (5, 1, 1)
    assert stored_ids(client) == spool_ids(spool)
    added = growing.stat().st_size - first_size
    # only the appended bytes were read, then the one run they belong to was linked
    assert calls == [(added, added), (-1, 1)]
    chunks = client.query(f"SELECT File, Start, End FROM {LOG_TABLE} WHERE Done = 1 "
                          "ORDER BY File, Start").result_rows
    assert chunks == [(growing.name, 0, first_size), (growing.name, first_size,
                       growing.stat().st_size), (untouched.name, 0, untouched.stat().st_size)]


def test_a_torn_last_line_waits_for_the_next_ingest(pipeline, tmp_path, store_url):
    real = next(p for p in sorted(pipeline.spool.glob("*.jsonl")))
    whole, *_ = real.read_bytes().splitlines(keepends=True)
    spans_in_line = sum(spool_ids_of_line(whole).values())
    spool = tmp_path / "spool"
    target = spool_file(spool, 1)
    target.write_bytes(span_line(1, 0, 2) + whole[: len(whole) // 2])
    client = store.connect(store_url)

    first = ingest(client, spool)
    assert (first.spans, first.torn, first.corrupt) == (2, 1, 0)
    assert not (spool / QUARANTINE_DIRNAME).exists()

    again = ingest(client, spool)  # still torn: nothing new, nothing set aside
    assert (again.spans, again.torn, again.corrupt) == (0, 1, 0)

    with open(target, "ab") as handle:
        handle.write(whole[len(whole) // 2:])
    finished = ingest(client, spool)
    assert (finished.spans, finished.torn, finished.corrupt) == (spans_in_line, 0, 0)
    assert stored_ids(client) == spool_ids(spool)
    assert max(stored_ids(client).values()) == 1


def spool_ids_of_line(raw: bytes) -> Counter:
    request = json.loads(raw)
    return Counter((s["traceId"], s["spanId"]) for r in request["resourceSpans"]
                   for sc in r["scopeSpans"] for s in sc["spans"])


def test_a_corrupt_line_is_set_aside_counted_and_later_lines_still_arrive(tmp_path, store_url):
    spool = tmp_path / "spool"
    target = spool_file(spool, 1)
    not_json = b'{"resourceSpans": [{"scopeSpans": oops\n'
    bad_id = (b'{"resourceSpans":[{"scopeSpans":[{"spans":'
              b'[{"traceId":"not hex","spanId":"x"}]}]}]}\n')
    before = span_line(1, 0, 2)
    target.write_bytes(before + not_json + span_line(1, 2, 3) + bad_id + span_line(1, 5, 1))
    client = store.connect(store_url)

    result = ingest(client, spool)
    assert (result.spans, result.lines, result.corrupt) == (6, 3, 2)
    quarantine = spool / QUARANTINE_DIRNAME / target.name
    not_json_reason = "JSONDecodeError: Expecting value: line 1 column 35 (char 34)"
    bad_id_reason = "ValueError: not a trace or span id: 'not hex'"
    assert result.warnings == [
        f"spool file {target}, line 2: {not_json_reason}; set aside in {quarantine}",
        f"spool file {target}, line 4: {bad_id_reason}; set aside in {quarantine}",
    ]
    set_aside = quarantine.read_bytes()
    offset_bad = len(before) + len(not_json) + len(span_line(1, 2, 3))
    assert set_aside == (f"# offset {len(before)}, line 2: {not_json_reason}\n".encode()
                         + not_json
                         + f"# offset {offset_bad}, line 4: {bad_id_reason}\n".encode()
                         + bad_id)
    good = spool_ids_of_line(before) + spool_ids_of_line(span_line(1, 2, 3)) + spool_ids_of_line(
        span_line(1, 5, 1))
    assert stored_ids(client) == good and len(good) == 6

    again = ingest(client, spool)  # counted once, set aside once
    assert (again.spans, again.corrupt, again.warnings) == (0, 0, [])
    assert quarantine.read_bytes() == set_aside


def test_many_bad_lines_are_each_set_aside_and_the_warnings_end_in_a_count(tmp_path,
                                                                          store_url):
    spool = tmp_path / "spool"
    target = spool_file(spool, 1)
    bad = [b'{"resourceSpans": %d}\n' % number for number in range(1, 26)]
    target.write_bytes(b"".join(span_line(1, 2 * n, 2) + line for n, line in enumerate(bad)))

    result = ingest(store.connect(store_url), spool)

    assert (result.spans, result.corrupt) == (50, 25)
    quarantine = spool / QUARANTINE_DIRNAME
    named = [f"spool file {target}, line {2 * n + 2}: TypeError: 'int' object is not "
             f"iterable; set aside in {quarantine / target.name}" for n in range(20)]
    assert result.warnings == [*named, f"and 5 more spool lines set aside in {quarantine}"]
    assert (quarantine / target.name).read_bytes().splitlines(keepends=True)[1::2] == bad


# --- crashes ---------------------------------------------------------------------------------

INGEST_SCRIPT = """
import sys
from pathlib import Path
from clew.exporter.store.connection import connect
from clew.exporter.store.ingest import ingest

def progress(done, total):
    print(done, total, flush=True)

ingest(connect(sys.argv[1]), Path(sys.argv[2]), progress=progress, chunk_bytes=int(sys.argv[3]))
print("finished", flush=True)
"""


def _ingest_and_kill(url: str, spool: Path, chunks: int, delay: float) -> bool:
    """Start an ingest in another process; SIGKILL it `delay` s after its `chunks`-th chunk.
    True when it was killed before it finished."""
    process = subprocess.Popen(
        [sys.executable, "-c", INGEST_SCRIPT, url, str(spool), str(16 << 10)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for _ in range(chunks):
            line = process.stdout.readline()
            assert line and line != "finished\n", f"ingest ended early: {process.stderr.read()}"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        return process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def test_kill_9_mid_ingest_then_ingest_again_gives_each_span_once(tmp_path, store_url):
    spool = tmp_path / "spool"
    total = write_spool(spool, files=3, lines=60, spans_per_line=20)  # ~1.8 MB, ~110 chunks
    rng = random.Random(3)
    done_before = 0
    for kill_after in (3, 15, 30):
        # the store is not open in this process while another process ingests into it
        assert _ingest_and_kill(store_url, spool, kill_after, rng.uniform(0.0, 0.03))
        client = store.connect(store_url)
        done = count(client, f"SELECT count() FROM {LOG_TABLE} WHERE Done = 1")
        stored = count(client, "SELECT count() FROM otel_traces")
        assert done_before < done and stored < total  # it was killed half-way, after progress
        done_before = done
        store.close(store_url)

    client = store.connect(store_url)
    ingest(client, spool)
    assert stored_ids(client) == spool_ids(spool)
    assert len(stored_ids(client)) == total and max(stored_ids(client).values()) == 1
    # and so are the lineage rows derived from them, though a kill can land between the
    # commits of otel_traces and of each view
    assert count(client, "SELECT count() FROM clew_io") == total
    assert count(client, "SELECT uniqExact(RunId, SpanId) FROM clew_io") == total
    assert count(client, "SELECT uniqMerge(Records) FROM clew_run_io") == total
    assert count(client, "SELECT uniqMerge(Outputs) FROM clew_run_io") == total
    assert ingest(client, spool).spans == 0


def _crashed_chunk(client: Any, spool: Path, spans: int, inserted: slice) -> Path:
    """A spool file of one chunk whose ingest crashed after logging it pending and inserting
    `inserted` of its rows, as a killed `take` leaves it."""
    ingest(client, spool)  # creates the tables (the spool is empty)
    target = spool_file(spool, 1)
    lines = [span_line(1, start, 500) for start in range(0, spans, 500)]
    target.write_bytes(b"".join(lines))
    rows: list = []
    for line in lines:
        spans_to_rows(json.loads(line), rows)
    client.insert(LOG_TABLE, [[target.name, 0, target.stat().st_size, len(rows), 0]],
                  column_names=["File", "Start", "End", "Spans", "Done"])
    if rows[inserted]:
        client.insert("otel_traces", rows[inserted], column_names=list(INSERT_COLUMNS))
    return target


# Enough spans that their ids, written into one SQL statement, exceed ClickHouse's default
# max_query_size (256 KiB): a default 16 MiB chunk holds tens of thousands of spans.
CRASHED_SPANS = 8000


@pytest.mark.parametrize("inserted", [slice(None), slice(0, CRASHED_SPANS // 2), slice(0, 0)],
                         ids=["all-rows-in", "half-the-rows-in", "no-row-in"])
def test_rows_inserted_but_not_marked_done_are_not_inserted_twice(
    tmp_path, store_url, inserted
):
    spool = tmp_path / "spool"
    client = store.connect(store_url)
    _crashed_chunk(client, spool, CRASHED_SPANS, inserted)

    result = ingest(client, spool)
    assert result.recovered_chunks == 1
    assert result.spans == CRASHED_SPANS  # taken again from scratch
    assert stored_ids(client) == spool_ids(spool)
    assert len(stored_ids(client)) == CRASHED_SPANS and max(stored_ids(client).values()) == 1
    # the views fired once per span, not once per attempt
    assert count(client, "SELECT count() FROM clew_io") == CRASHED_SPANS
    assert count(client, "SELECT uniqMerge(Records) FROM clew_run_io") == CRASHED_SPANS
    again = ingest(client, spool)
    assert (again.spans, again.recovered_chunks) == (0, 0)
