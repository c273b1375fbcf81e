"""Every query in docs/sql.md runs, and the lineage ones give the right answers.

The store holds the pipeline of conftest.py (prep, train, evaluate, a second prep on changed
data, a second train from a dirty tree, a failing run), recorded by real instrumented runs.
Each ```sql block is run as written with ClickHouse query parameters (`{name:Type}`) filled
from PARAMETERS; the expected rows come from the files on disk, not from clew. The column
tables of docs/sql.md must list exactly the columns the store has.
"""

from __future__ import annotations

import io
import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest

from clew.exporter.store import connection as store
from clew.exporter.store.ingest import ingest
from clew.exporter.store.lineage import (
    CONFIG_TABLE,
    IO_TABLE,
    METRICS_TABLE,
    LINKS_TABLE,
    OUTPUTS_TABLE,
    RUN_INPUTS_TABLE,
    RUN_IO_TABLE,
    RUNS_TABLE,
)
from clew.query.cli import ExitStatus, main
from clew_test_helpers import takes_xattrs

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
HOST = socket.gethostname()


def _queries() -> list[tuple[str, int, str]]:
    """(heading, index under that heading, SQL) of every ```sql block of the doc."""
    found: list[tuple[str, int, str]] = []
    heading, index, block = "", 0, None
    for line in DOC.read_text().splitlines(keepends=True):
        if block is not None:
            if line.rstrip() == "```":
                found.append((heading, index, "".join(block)))
                index, block = index + 1, None
            else:
                block.append(line)
        elif line.startswith(("## ", "### ")):
            heading, index = line.lstrip("#").strip(), 0
        elif line.rstrip() == "```sql":
            block = []
    return found


QUERIES = _queries()


@pytest.fixture(scope="module")
def doc_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of the store the doc's queries run against."""
    return f"chdb://{tmp_path_factory.mktemp('sqldoc') / 'db'}"


@pytest.fixture(scope="module")
def client(pipeline, doc_store) -> Iterator[Any]:
    client = store.connect(doc_store)
    ingest(client, pipeline.spool)
    yield client
    store.close(doc_store)


def _uri(pipeline, path: str) -> str:
    return f"file://{HOST}{pipeline.work}/{path}"


def _parameters(pipeline) -> dict[str, str]:
    evaluate = pipeline.run("evaluate-1")
    return {
        "run": pipeline.run("train-1").run_id,
        "run_a": pipeline.run("train-1").run_id,
        "run_b": pipeline.run("train-2").run_id,
        "uri": _uri(pipeline, "data/features.csv"),
        "digest": evaluate.reads[_uri(pipeline, "data/test/test.csv")],
        "script": "train.py",
        "output_digest": pipeline.run("prep-2").writes[_uri(pipeline, "data/features.csv")],
        "metric": "accuracy",
    }


def run(client: Any, sql: str, parameters: dict[str, str]) -> list[tuple]:
    # clickhouse-connect binds server-side only for {name:Type}; with no such parameter in
    # the SQL, passing any would make it format `%` in LIKE patterns client-side.
    bound = parameters if re.search(r"\{\w+:\w+\}", sql) else None
    return [tuple(row) for row in client.query(sql, parameters=bound).result_rows]


def test_the_doc_has_queries():
    headings = {heading for heading, _, _ in QUERIES}
    assert len(QUERIES) >= 15 and set(EXPECTED) <= {(h, i) for h, i, _ in QUERIES}, headings


@pytest.mark.parametrize(("heading", "index", "sql"), QUERIES,
                         ids=[f"{h}-{i}" for h, i, _ in QUERIES])
def test_every_query_runs(client, pipeline, heading, index, sql):
    parameters = _parameters(pipeline)
    used = set(re.findall(r"\{(\w+):\w+\}", sql))
    assert used <= parameters.keys(), f"document the parameters {used - parameters.keys()}"
    rows = run(client, sql, parameters)
    check = EXPECTED.get((heading, index))
    if check is not None:
        check(pipeline, rows)


def _with_literals(sql: str, parameters: dict[str, str]) -> str:
    """The query as the doc says to give it to `clew sql`: each {name:Type} a quoted literal."""
    return re.sub(r"\{(\w+):\w+\}", lambda found: f"'{parameters[found[1]]}'", sql)


@pytest.mark.parametrize(("heading", "index", "sql"), QUERIES,
                         ids=[f"{h}-{i}" for h, i, _ in QUERIES])
def test_every_query_runs_through_read_only_clew_sql(client, doc_store, pipeline, heading,
                                                    index, sql):
    """`clew sql` without --write accepts every documented query and gives the same rows."""
    parameters = _parameters(pipeline)
    out, err = io.StringIO(), io.StringIO()
    code = main(["--store", doc_store, "--no-ingest", "sql",
                 _with_literals(sql, parameters), "--format", "json"], stdout=out, stderr=err)
    assert code == ExitStatus.OK, err.getvalue()
    assert len(json.loads(out.getvalue())["rows"]) == len(run(client, sql, parameters))


# --- what the key queries must answer ------------------------------------------------------


def _ids(pipeline, *names: str) -> list[str]:
    return [pipeline.run(name).run_id for name in names]


def _newest_first(pipeline, rows):
    assert [r[0] for r in rows] == [r.run_id for r in reversed(pipeline.runs)]


def _counts(pipeline, rows):
    assert [(r[0], r[3], r[4]) for r in rows] == [
        (run.run_id, len(run.reads), len(run.writes)) for run in reversed(pipeline.runs)]


def _failed(pipeline, rows):
    assert [(r[0], r[3], r[4]) for r in rows] == [
        (pipeline.run("fail-1").run_id, 1, "RuntimeError")]


def _read(pipeline, rows):
    train = pipeline.run("train-1")
    expected = sorted((uri, digest, size, "content", count)
                      for op, uri, digest, size, count in train.records if op == "read")
    assert rows == expected


def _wrote(pipeline, rows):
    train = pipeline.run("train-1")
    assert rows == [(op, uri, digest, size, "")
                    for op, uri, digest, size, _ in train.records if op == "write"]


def _stamped_producers(pipeline, rows):
    """train-1 read features.csv as the prep run before it wrote it, and found its stamp."""
    train, features = pipeline.run("train-1"), _uri(pipeline, "data/features.csv")
    if not takes_xattrs(pipeline.work):
        assert rows == []
        return
    (producer,) = [run.run_id for run in pipeline.runs
                   if run.writes.get(features) == train.reads[features]]
    assert [(r[0], r[1], r[2]) for r in rows if r[0] == features] == [
        (features, producer, "write")]


def _readers_of_uri(pipeline, rows):
    features = _uri(pipeline, "data/features.csv")
    assert [(r[0], r[3]) for r in rows] == [
        (pipeline.run(name).run_id, pipeline.run(name).reads[features])
        for name in ("train-2", "train-1")]


def _readers_of_digest(pipeline, rows):
    labels, test = _uri(pipeline, "data/aux/labels.csv"), _uri(pipeline, "data/test/test.csv")
    assert [(r[0], r[1]) for r in rows] == [
        (pipeline.run("train-1").run_id, labels), (pipeline.run("evaluate-1").run_id, test),
        (pipeline.run("train-2").run_id, labels)]


def _writers_of_digest(pipeline, rows):
    digest = _parameters(pipeline)["output_digest"]
    expected = [(run.run_id, "write", uri) for run in pipeline.runs
                for uri, written in run.writes.items() if written == digest]
    assert expected and [tuple(r[:3]) for r in rows] == expected


def _producer(pipeline, rows):
    prep = pipeline.run("prep-2")
    features = _uri(pipeline, "data/features.csv")
    assert rows == sorted((prep.run_id, prep.writes[features], uri, digest)
                          for uri, digest in prep.reads.items())


def _downstream(pipeline, rows):
    model = _uri(pipeline, "models/model.bin")
    assert rows == [(model, pipeline.run("evaluate-1").run_id, model)]


def _changed_later(pipeline, rows):
    features = _uri(pipeline, "data/features.csv")
    before = pipeline.run("train-1").reads[features]
    after = pipeline.run("prep-2").writes[features]
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (features, before, after, "write", pipeline.run("prep-2").run_id),
        (features, before, after, "read", pipeline.run("train-2").run_id),
    ]


def _contaminated(pipeline, rows):
    labels, test = _uri(pipeline, "data/aux/labels.csv"), _uri(pipeline, "data/test/test.csv")
    assert rows == [(labels, test, pipeline.run("train-1").reads[labels])]


def _contaminated_runs(pipeline, rows):
    labels, test = _uri(pipeline, "data/aux/labels.csv"), _uri(pipeline, "data/test/test.csv")
    assert [(r[0], r[2], r[3]) for r in rows] == [
        (run_id, labels, test) for run_id in _ids(pipeline, "train-1", "train-2")]


def _code(pipeline, rows):
    source = (pipeline.work / "features.py").read_bytes()
    assert ("features.py", "blake3:" + blake3.blake3(source).hexdigest()) in rows


def _git_state(pipeline, rows):
    train = pipeline.run("train-1")
    assert rows == [(train.git_commit, "main", 0, "", [], "")]


def _same_program(pipeline, rows):
    assert [(r[0], r[2], r[4]) for r in rows] == [
        (pipeline.run("train-1").run_id, ["--epochs", "1"], 0),
        (pipeline.run("train-2").run_id, ["--epochs", "2"], 1),
    ]
    assert sorted(rows[0][7]) == sorted(pipeline.run("train-1").reads.items())


def _side_by_side(pipeline, rows):
    features, labels = _uri(pipeline, "data/features.csv"), _uri(pipeline, "data/aux/labels.csv")
    one, two = pipeline.run("train-1"), pipeline.run("train-2")
    assert rows == [(features, one.reads[features], two.reads[features], 0),
                    (labels, one.reads[labels], two.reads[labels], 1)]


def _spans(pipeline, rows):
    assert rows[0][1] == "run" and rows[0][3] == ""
    names = sorted(r[1] for r in rows)
    assert names == sorted(["run", "read file", "read file", "write file"]), names


EXPECTED: dict[tuple[str, int], Callable[[Any, list[tuple]], None]] = {
    ("Runs, newest first", 0): _newest_first,
    ("Runs with their input and output counts", 0): _counts,
    ("Failed runs", 0): _failed,
    ("Everything a run read, with digests", 0): _read,
    ("Everything a run wrote", 0): _wrote,
    ("Which runs read a file (by URI)", 0): _readers_of_uri,
    ("Which runs read this content (by digest), under any name", 0): _readers_of_digest,
    ("Which run wrote a file, and what it read (one hop upstream)", 0): _producer,
    ("Which runs wrote this content (by digest), under any name", 0): _writers_of_digest,
    ("Which runs used what a run wrote (one hop downstream)", 0): _downstream,
    ("Inputs of a run that changed afterwards", 0): _changed_later,
    ("Test-set contamination by content", 0): _contaminated,
    ("Test-set contamination by content", 1): _contaminated_runs,
    ("What produced a run's inputs, by producer stamp", 0): _stamped_producers,
    ("The code a run used and its git state", 0): _code,
    ("The code a run used and its git state", 1): _git_state,
    ("Runs of the same program, compared", 0): _same_program,
    ("Runs of the same program, compared", 1): _side_by_side,
    ("All the spans of a run", 0): _spans,
}


def test_reads_by_several_processes_are_one_row_with_their_count(client, pipeline):
    """"Everything a run read" for prep-1: b.csv, read by prep.py and by its child, is one
    row of two reads."""
    (sql,) = [q for h, _, q in QUERIES if h == "Everything a run read, with digests"]
    prep = pipeline.run("prep-1")
    rows = run(client, sql, {**_parameters(pipeline), "run": prep.run_id})
    b_csv = _uri(pipeline, "data/raw/b.csv")
    assert [(r[0], r[4]) for r in rows] == sorted(
        (uri, 2 if uri == b_csv else 1) for uri in prep.reads)


# --- the column tables --------------------------------------------------------------------


def _documented_columns(table: str) -> list[tuple[str, str]]:
    text = DOC.read_text()
    section = text.split(f"### {table}", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| (\w+) \| ([^|]+) \| ", section, flags=re.M)
    return [(name, kind.strip()) for name, kind in rows if name != "Column"]


@pytest.mark.parametrize("table", [IO_TABLE, RUNS_TABLE, RUN_IO_TABLE, OUTPUTS_TABLE,
                                   METRICS_TABLE, CONFIG_TABLE, LINKS_TABLE, RUN_INPUTS_TABLE])
def test_the_doc_lists_every_column(client, table):
    actual = client.query(
        "SELECT name, type FROM system.columns WHERE database = 'default' AND table = "
        "%(table)s ORDER BY position", parameters={"table": table}).result_rows
    assert _documented_columns(table) == [tuple(row) for row in actual]


def test_the_metric_queries_answer_for_the_evaluation(client, pipeline):
    """evaluate.py wrote metrics.json once (captured as its metrics): its final accuracy is
    the file's, per run and over the program's runs."""
    accuracy = json.loads((pipeline.work / "metrics.json").read_text())["accuracy"]
    evaluation = pipeline.run("evaluate-1").run_id
    parameters = {**_parameters(pipeline), "run": evaluation, "script": "evaluate.py"}
    (final,) = [q for h, _, q in QUERIES if h == "A run's metrics: the final value of each"]
    assert [r[:2] for r in run(client, final, parameters)] == [("accuracy", accuracy)]
    over_runs, curve = [q for h, _, q in QUERIES if h == "A metric over a program's runs"]
    assert [(r[0], r[3]) for r in run(client, over_runs, parameters)] == [(evaluation, accuracy)]
    assert [r[:2] for r in run(client, curve, parameters)] == [(-1, accuracy)]
