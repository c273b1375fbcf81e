"""clew_links and clew_run_inputs: ingest keeps each run's candidate inputs and its inputs
per directory, and lineage is the same whatever order the runs' records reach the store in,
and whether or not they were kept.

Real programs under opentelemetry-instrument; their spool files are ingested one at a time
in the order each test chooses. The copy between the two runs is made without clew, so the
reader's input is linked to its producer by content digest alone (another name).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from clew.exporter.store import connection as store
from clew.exporter.store.ingest import ingest
from clew.exporter.store import links
from clew.exporter.store.links import unlink_runs
from clew.exporter.store.schema import SchemaOptions
from clew.exporter.spool_files import spool_directory
from clew.query.lineage import impact, lineage

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(work, home, spool file of the producer, spool file of the reader)."""
    work = tmp_path_factory.mktemp("links")
    home = work / ".clew"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "CLEW_", "TRACEPARENT", "TRACESTATE"))}
    env["CLEW_HOME"] = str(home)
    (work / "make.py").write_text("open('made.csv', 'w').write('a,1\\nb,2\\n')\n")
    (work / "use.py").write_text("open('model.txt', 'w').write(open('copied.csv').read()[::-1])\n")
    spool = spool_directory(home)

    def run(script: str) -> Path:
        before = set(spool.glob("*")) if spool.exists() else set()
        done = subprocess.run([str(BIN / "opentelemetry-instrument"), sys.executable, script],
                              cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        (new,) = [p for p in spool.glob("*") if p not in before and p.is_file()]
        return new

    made = run("make.py")
    shutil.copy(work / "made.csv", work / "copied.csv")
    used = run("use.py")
    return work, home, made, used


@pytest.fixture
def client(store_url):
    return store.connect(store_url)


def _upstream(client, work: Path) -> set[tuple[str, str]]:
    """(command's script, artifact's file name) of every `wrote` edge of model.txt's lineage."""
    graph = lineage(client, str(work / "model.txt"))
    nodes = {node.id: node for node in graph.nodes}
    return {(nodes[e.source].command[-1], nodes[e.target].uri.rsplit("/", 1)[-1])
            for e in graph.edges if e.kind == "wrote"}


EXPECTED = {("use.py", "model.txt"), ("make.py", "copied.csv")}


def _downstream(client, work: Path) -> set[tuple[str, str]]:
    """(artifact's file name, command's script) of every `read` edge of made.csv's impact."""
    graph = impact(client, str(work / "made.csv"))
    nodes = {node.id: node for node in graph.nodes}
    return {(nodes[e.source].uri.rsplit("/", 1)[-1], nodes[e.target].command[-1])
            for e in graph.edges if e.kind == "read"}


# make.py's own output read by use.py under another name (by digest)
EXPECTED_DOWNSTREAM = {("made.csv", "use.py")}


def test_ingest_links_each_run_and_keeps_its_candidates(client, runs):
    work, home, made, used = runs
    ingest(client, spool_directory(home), files=[made, used])
    marks = client.query("SELECT count() FROM clew_links FINAL WHERE Uri = ''").result_rows
    candidates = client.query("SELECT Uri FROM clew_links FINAL WHERE Uri != ''").result_rows
    assert marks == [(2,)]
    assert [uri.rsplit("/", 1)[-1] for (uri,) in candidates] == ["copied.csv"]
    with _without_full_matching(client):
        assert _upstream(client, work) == EXPECTED
    every_read = "clew_io WHERE Operation = 'read' AND Digest IN (SELECT"
    with _without_full_matching(client, every_read):
        assert _downstream(client, work) == EXPECTED_DOWNSTREAM


def test_a_producer_ingested_after_its_reader_is_found(client, runs):
    """The reader is linked before its producer's records arrive: the walk matches its
    inputs against the writes that arrived since."""
    work, home, made, used = runs
    ingest(client, spool_directory(home), files=[used])
    assert client.query("SELECT count() FROM clew_links FINAL WHERE Uri != ''").result_rows == [
        (0,)]
    ingest(client, spool_directory(home), files=[made])
    with _without_full_matching(client):
        assert _upstream(client, work) == EXPECTED
    assert _downstream(client, work) == EXPECTED_DOWNSTREAM  # use.py's reads searched again


def test_runs_nobody_linked_are_matched_in_full(client, runs):
    """Spans a Collector wrote never pass through clew's ingest: nothing kept, and the
    same lineage graph, node for node."""
    work, home, made, used = runs
    ingest(client, spool_directory(home), files=[made, used])
    kept = [walk(client, str(work / name)) for walk, name in WALKS]
    client.command("TRUNCATE TABLE clew_links")
    client.command("TRUNCATE TABLE clew_run_inputs")
    matched = [walk(client, str(work / name)) for walk, name in WALKS]
    assert _upstream(client, work) == EXPECTED
    assert _downstream(client, work) == EXPECTED_DOWNSTREAM
    for before, after in zip(kept, matched):
        assert sorted(map(repr, after.nodes)) == sorted(map(repr, before.nodes))
        assert set(after.edges) == set(before.edges)


WALKS = [(lineage, "model.txt"), (impact, "made.csv")]


class _without_full_matching:
    """Fail any statement that matches a run's inputs against every write (or, given, that
    holds `forbidden`): a linked run must not need it. (A check of which SQL runs, not a
    stand-in for the store.)"""

    def __init__(self, client, forbidden: str = "WHERE DigestKey IN (SELECT sipHash64(Digest)"
                 ) -> None:
        self.client = client
        self.query = client.query
        self.forbidden = forbidden

    def __enter__(self) -> None:
        def query(sql: str, *args, **kwargs):
            assert self.forbidden not in sql.replace("`", ""), sql
            return self.query(sql, *args, **kwargs)

        self.client.query = query

    def __exit__(self, *exc) -> None:
        self.client.query = self.query


def test_runs_an_ingest_left_unlinked_are_matched_in_full(client, runs):
    """An ingest marks the runs it brings records of as unlinked until it links them at its
    end: killed in between, it leaves what is kept out of date, and the walk must not use
    it (here: nothing kept for the runs' inputs at all)."""
    work, home, made, used = runs
    ingest(client, spool_directory(home), files=[made, used])
    kept = [walk(client, str(work / name)) for walk, name in WALKS]
    ids = [run for (run,) in client.query("SELECT DISTINCT RunId FROM clew_runs").result_rows]
    unlink_runs(client, SchemaOptions(), ids)
    client.command("TRUNCATE TABLE clew_run_inputs")
    client.command("DELETE FROM clew_links WHERE Uri != ''")
    for before, walk_name in zip(kept, WALKS):
        after = walk_name[0](client, str(work / walk_name[1]))
        assert sorted(map(repr, after.nodes)) == sorted(map(repr, before.nodes))
        assert set(after.edges) == set(before.edges)


def test_a_bulk_link_in_many_statements_keeps_what_one_statement_keeps(client, runs,
                                                                       monkeypatch):
    """A bulk ingest links its runs in statements sized by their reads: how they are cut
    changes nothing kept."""
    work, home, made, used = runs
    ingest(client, spool_directory(home), files=[made, used])

    def kept() -> tuple[list, list]:
        return (client.query("SELECT RunId, Uri, Digest, Version, ETag, Size, ProducerRunId, "
                             "Timestamp FROM clew_links FINAL WHERE Uri != '' ORDER BY ALL"
                             ).result_rows,
                client.query("SELECT * FROM clew_run_inputs FINAL ORDER BY ALL").result_rows)

    in_one = kept()
    assert in_one[0] and in_one[1]
    client.command("TRUNCATE TABLE clew_links")
    client.command("TRUNCATE TABLE clew_run_inputs")
    monkeypatch.setattr(links, "_COUNT_READS_ABOVE", 0)
    monkeypatch.setattr(links, "_READS_PER_STATEMENT", 1)
    run_ids = sorted({run for (run, *_) in in_one[1]})
    assert [batch for batch, _ in links._batches_by_reads(client, SchemaOptions(), run_ids)] == [
        [r] for r in run_ids]
    links.link_all(client, SchemaOptions())
    assert kept() == in_one
    with _without_full_matching(client):
        assert _upstream(client, work) == EXPECTED


def test_candidates_matched_against_every_write_are_those_matched_against_the_runs_reads(
        client, runs):
    """A bulk link matches the reads against every write when the store holds fewer writes
    than the reads: the candidates are the same as when they are matched against only the
    writes of what the runs read."""
    work, home, made, used = runs
    ingest(client, spool_directory(home), files=[made, used])
    run_ids = [run for (run,) in client.query("SELECT DISTINCT RunId FROM clew_io").result_rows]

    def candidates(every_write: bool) -> list:
        select = links.candidates_sql(SchemaOptions(), every_write=every_write)
        return client.query(f"SELECT * FROM ({select}) ORDER BY ALL",
                            parameters={"runs": run_ids}).result_rows

    assert candidates(True) == candidates(False)
    assert any(uri.endswith("/copied.csv") for _, uri, *_ in candidates(True))


def _cut(line: bytes) -> tuple[bytes, bytes]:
    """One spool line as two: its first span (the reader's: its write), and the rest."""
    document = json.loads(line)
    (resource,) = document["resourceSpans"]
    (scope,) = resource["scopeSpans"]
    spans = scope["spans"]
    assert len(spans) > 1

    def holding(part: list) -> bytes:
        return json.dumps({"resourceSpans": [{**resource, "scopeSpans": [
            {**scope, "spans": part}]}]}).encode() + b"\n"

    return holding(spans[:1]), holding(spans[1:])


def test_inputs_kept_while_the_ingest_goes_on_are_those_kept_at_its_end(client, runs, tmp_path):
    """An ingest keeps a run's inputs per directory as soon as a batch brings none of its
    records, and again at its end when more came after: here the reader's spool line is cut
    in two around the producer's, one line a batch. What it keeps is what linking every run
    at once keeps."""
    work, home, made, used = runs
    spool = tmp_path / "spool"
    spool.mkdir()
    first, last = _cut(used.read_bytes())
    (spool / f"a{used.suffix}").write_bytes(first)
    shutil.copy(made, spool / f"b{made.suffix}")
    (spool / f"c{used.suffix}").write_bytes(last)
    ingest(client, spool, files=sorted(spool.iterdir()), chunk_bytes=1)

    def kept() -> tuple[list, list]:
        return (client.query("SELECT RunId, Uri, Digest, Version, ETag, Size, ProducerRunId, "
                             "Timestamp FROM clew_links FINAL WHERE Uri != '' ORDER BY ALL"
                             ).result_rows,
                client.query("SELECT * FROM clew_run_inputs FINAL ORDER BY ALL").result_rows)

    during = kept()
    assert any(items and items[0][0].endswith("/copied.csv") for *_, items, _, _ in during[1])
    client.command("TRUNCATE TABLE clew_links")
    client.command("TRUNCATE TABLE clew_run_inputs")
    links.link_all(client, SchemaOptions())
    assert kept() == during
    with _without_full_matching(client):
        assert _upstream(client, work) == EXPECTED
