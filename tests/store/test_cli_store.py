"""`clew ingest`, `clew runs` and `clew sql` on a real embedded store.

Most commands run in-process through `clew.query.cli.main` with injected streams; the store
they open is closed after each test, so the tests that run `clew` as a subprocess never meet
a store this process still holds. Exit codes are the CLI's contract: 0 ok, 2 usage, 3 error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from clew.exporter.store import connection as store
from clew.exporter.spool_files import spool_directory
from clew.query.cli import ExitStatus, main
from clew.query.runs import Run

pytestmark = pytest.mark.integration

OTEL_INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
CLEW = Path(sys.executable).parent / "clew"


class Cli:
    """`clew ...` in-process against one CLEW_HOME; its store is closed after each test."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--home", str(self.home), *args], stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    def json(self, *args: str) -> dict:
        code, out, err = self(*args, "--format", "json")
        assert code == ExitStatus.OK, err
        return json.loads(out)

    def close(self) -> None:
        store.close(f"chdb://{self.home / 'db'}")


@pytest.fixture
def clew(module_home: Path) -> Iterator[Cli]:
    cli = Cli(module_home)
    yield cli
    cli.close()


@pytest.fixture
def fresh_clew(tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path / "home")
    yield cli
    cli.close()


def one_line_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("clew: "), err
    return lines[0]


# --- clew ingest -------------------------------------------------------------------------------


def spool_span_count(spool: Path) -> int:
    return sum(len(scope["spans"]) for path in spool.glob("*.jsonl")
               for line in path.read_text().splitlines()
               for resource in json.loads(line)["resourceSpans"]
               for scope in resource["scopeSpans"])


def test_clew_ingest_takes_only_what_is_new(pipeline_home, tmp_path):
    home = pipeline_home()
    cli = Cli(home)
    try:
        spans, files = spool_span_count(spool_directory(home)), len(
            list(spool_directory(home).glob("*.jsonl")))
        code, out, err = cli("ingest")
        assert (code, err) == (ExitStatus.OK, "")
        assert out.startswith(f"ingested {spans:,} spans from {files} spool files in ")
        again = cli.json("ingest")
        assert again.keys() == {"schema", "files", "lines", "spans", "corrupt", "torn",
                                "recovered_chunks", "seconds", "warnings"}
        assert (again["schema"], again["spans"], again["files"]) == (1, 0, 0)
    finally:
        cli.close()


# --- clew runs ---------------------------------------------------------------------------------


def test_clew_runs_json_lists_every_run_newest_first(clew, pipeline):
    found = clew.json("runs")
    assert found["schema"] == 1
    runs = found["runs"]
    assert [r["run_id"] for r in runs] == [r.run_id for r in reversed(pipeline.runs)]
    fields = {f.name for f in dataclasses.fields(Run)}
    for listed, run in zip(runs, reversed(pipeline.runs)):
        assert listed.keys() == fields
        assert listed["command"] == run.argv
        assert listed["status"] == ("failed" if run.exit_code else "ok")
        assert listed["exit_code"] == run.exit_code
        assert listed["error_type"] == ("RuntimeError" if run.exit_code else "")
        assert (listed["git_commit"], listed["git_branch"], listed["git_dirty"]) == (
            run.git_commit, "main", run.git_dirty)
        assert (listed["inputs"], listed["outputs"]) == (len(run.reads), len(run.writes))
        assert listed["cwd"] == str(pipeline.work) and listed["ranks"] == []
        start = dt.datetime.fromisoformat(listed["start"])
        assert start.utcoffset() == dt.timedelta(0)
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        assert (start - epoch) // dt.timedelta(microseconds=1) == run.start_ns // 1000
        assert dt.datetime.fromisoformat(listed["end"]) > start
        assert isinstance(listed["duration_s"], float) and listed["duration_s"] > 0


def test_clew_runs_table(clew, pipeline):
    code, out, err = clew("runs")
    assert (code, err) == (ExitStatus.OK, "")
    positions = [out.index(run.run_id[:7]) for run in reversed(pipeline.runs)]
    assert positions == sorted(positions)  # newest first
    assert "failed" in out and "(1)" in out


def _iso_between(earlier_ns: int, later_ns: int) -> str:
    middle = (earlier_ns + later_ns) // 2
    return dt.datetime.fromtimestamp(middle / 1e9, tz=dt.timezone.utc).isoformat()


def _filters(pipeline) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (options, the runs they select, newest first)."""
    runs = {r.name: r for r in pipeline.runs}
    after_evaluate = _iso_between(runs["evaluate-1"].start_ns, runs["prep-2"].start_ns)
    after_train = _iso_between(runs["train-1"].start_ns, runs["evaluate-1"].start_ns)
    commit = pipeline.runs[0].git_commit
    everything = [r.name for r in reversed(pipeline.runs)]
    return {
        "command": (["--command", "train.py"], ["train-2", "train-1"]),
        "command-case-insensitive": (["--command", "EPOCHS 2"], ["train-2"]),
        "commit-prefix": (["--commit", commit[:7]], everything),
        "commit-upper-case": (["--commit", commit[:12].upper()], everything),
        "commit-unknown": (["--commit", "0000000"], []),
        "since": (["--since", after_evaluate], ["fail-1", "train-2", "prep-2"]),
        "until": (["--until", after_train], ["train-1", "prep-1"]),
        "since-until": (["--since", after_train, "--until", after_evaluate], ["evaluate-1"]),
        "since-and-command": (["--since", after_evaluate, "--command", "train"], ["train-2"]),
        "limit": (["--limit", "2"], ["fail-1", "train-2"]),
    }


FILTERS = ["command", "command-case-insensitive", "commit-prefix", "commit-upper-case",
           "commit-unknown", "since", "until", "since-until", "since-and-command", "limit"]


@pytest.mark.parametrize("name", FILTERS)
def test_clew_runs_filters(clew, pipeline, name):
    options, expected = _filters(pipeline)[name]
    ids = {r.run_id: r.name for r in pipeline.runs}
    found = clew.json("runs", *options)["runs"]
    assert [ids[r["run_id"]] for r in found] == expected


def test_clew_runs_rejects_a_bad_time(clew):
    code, _, err = clew("runs", "--since", "yesterday")
    assert code == ExitStatus.USAGE
    assert "'yesterday' is not a date or time" in one_line_error(err)


def test_time_filters_do_not_depend_on_the_time_zone(module_home, pipeline, run_clew):
    """`--since` in UTC, or naive in the local time zone, means the same instant whatever
    the zone of the machine (and of chDB, which takes the process's)."""
    runs = {r.name: r for r in pipeline.runs}
    since = _iso_between(runs["evaluate-1"].start_ns, runs["prep-2"].start_ns)
    new_york = dt.datetime.fromisoformat(since).astimezone(ZoneInfo("America/New_York"))
    for value in (since, new_york.replace(tzinfo=None).isoformat()):
        done = run_clew("runs", "--since", value, "--format", "json", home=module_home,
                        env={"TZ": "America/New_York"})
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)["runs"]
        assert [r["run_id"] for r in found] == [
            runs[name].run_id for name in ("fail-1", "train-2", "prep-2")]
        assert all(r["start"].endswith("+00:00") for r in found)


def test_query_commands_ingest_the_spool_first(fresh_clew, tmp_path, clean_env):
    work = tmp_path / "work"
    work.mkdir()
    (work / "in.txt").write_text("data\n")
    env = clean_env(fresh_clew.home)
    for script in ("open('in.txt').read()", "open('out.txt', 'w').write('x')"):
        (tmp_path / "prog.py").write_text(script)
        done = subprocess.run([str(OTEL_INSTRUMENT), sys.executable, str(tmp_path / "prog.py")],
                              cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        if script.startswith("open('in"):
            # no `clew ingest`: `clew runs` takes the new spool lines itself
            (listed,) = fresh_clew.json("runs")["runs"]
            assert (listed["inputs"], listed["outputs"]) == (1, 0)
    # and so does `clew sql`, for the second run
    found = fresh_clew.json("sql", "SELECT Operation, Uri FROM clew_io ORDER BY Operation")
    assert [row["Operation"] for row in found["rows"]] == ["read", "write"]
    assert len(fresh_clew.json("runs")["runs"]) == 2


def test_no_ingest_queries_the_store_as_it_is(pipeline_home):
    """`--no-ingest` is for a store the Collector fills from the same runs: the spool is left
    alone by query commands, while `clew ingest` still ingests."""
    cli = Cli(pipeline_home())
    try:
        assert cli.json("--no-ingest", "runs") == {"schema": 1, "runs": []}
        found = cli.json("--no-ingest", "sql", "SELECT count() AS n FROM otel_traces")
        assert found["rows"] == [{"n": 0}]
        assert cli.json("--no-ingest", "ingest")["spans"] > 0
        assert len(cli.json("--no-ingest", "runs")["runs"]) > 0
    finally:
        cli.close()


def test_clew_runs_of_an_empty_home(fresh_clew):
    assert fresh_clew.json("runs") == {"schema": 1, "runs": []}


# --- clew sql ----------------------------------------------------------------------------------


def test_clew_sql_json_shape(clew, pipeline):
    found = clew.json("sql", "SELECT RunId, ExitCode FROM clew_runs FINAL ORDER BY Start")
    assert found["schema"] == 1 and found["columns"] == ["RunId", "ExitCode"]
    assert found["rows"] == [{"RunId": r.run_id, "ExitCode": r.exit_code} for r in pipeline.runs]


def test_clew_sql_table(clew, pipeline):
    code, out, _ = clew("sql", "SELECT count() AS runs FROM clew_runs", "--format", "table")
    assert code == ExitStatus.OK and "runs" in out and str(len(pipeline.runs)) in out


@pytest.mark.parametrize("statement", [
    "DROP TABLE clew_io",
    "INSERT INTO clew_runs (RunId) VALUES ('forged')",
    "TRUNCATE TABLE otel_traces",
    "CREATE TABLE notes (x String) ENGINE = MergeTree ORDER BY x",
])
def test_clew_sql_is_read_only_by_default(clew, statement):
    code, _, err = clew("sql", statement)
    assert code == ExitStatus.ERROR
    assert one_line_error(err).startswith("clew: error: ")
    assert clew.json("sql", "SELECT count() AS n FROM clew_runs WHERE RunId = 'forged'")[
        "rows"] == [{"n": 0}]
    assert clew.json("sql", "EXISTS TABLE clew_io")["rows"][0] == {"result": 1}


def test_clew_sql_write_allows_changes(fresh_clew):
    for statement in ("CREATE TABLE notes (x String) ENGINE = MergeTree ORDER BY x",
                      "INSERT INTO notes VALUES ('hello')"):
        code, _, err = fresh_clew("sql", "--write", statement)
        assert (code, err) == (ExitStatus.OK, "")
    assert fresh_clew.json("sql", "SELECT x FROM notes")["rows"] == [{"x": "hello"}]
    code, _, err = fresh_clew("sql", "--write", "DROP TABLE notes")
    assert (code, err) == (ExitStatus.OK, "")


SAME_PROCESS = """
import sys
from clew.query.cli import main
def clew(*args):
    assert main(["--home", sys.argv[1], *args]) == 0, args
clew("sql", "--write", "CREATE TABLE notes (x UInt64) ENGINE = MergeTree ORDER BY x")
clew("sql", "--write", "INSERT INTO notes SELECT number FROM numbers(10)")
clew("runs")
clew("sql", "--write", "DELETE FROM notes WHERE x < 5")
clew("sql", "SELECT count() FROM notes")
"""


def test_a_read_only_command_leaves_the_store_writable_for_the_same_process(tmp_path, clean_env):
    """Read-only commands pause the embedded engine's merges while they run. A DELETE waits
    for its mutation, which paused merges would hold back for ever: after `clew runs`, one
    in the same process still completes. (A child process, so a hang fails this test
    instead of stopping the suite.)"""
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, "-c", SAME_PROCESS, str(home)], capture_output=True,
                          text=True, env=clean_env(home), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1] == "5", done.stdout  # tsv: piped


def test_clew_sql_reports_a_bad_query_on_one_line(clew):
    code, _, err = clew("sql", "SELECT nope FROM clew_runs")
    assert code == ExitStatus.ERROR and "nope" in one_line_error(err)


# --- the store URL and a store another process holds ---------------------------------------


@pytest.mark.parametrize(("url", "says"), [
    ("mysql://db.example.com/x", "is not supported"),
    ("chdb://relative/db", "needs an absolute path"),
    ("http://alice:s3cret@ch.example.com:8123/db", "CLEW_STORE_PASSWORD"),
    ("http:///db", "has no host"),
])
def test_a_bad_store_url_is_a_usage_error(fresh_clew, url, says):
    for args, env in ((["--store", url], {}), ([], {"CLEW_STORE": url})):
        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            code = main(["--home", str(fresh_clew.home), *args, "runs"], stdout=out, stderr=err)
        assert code == ExitStatus.USAGE
        line = one_line_error(err.getvalue())
        assert says in line and "s3cret" not in line and out.getvalue() == ""


HOLDER = """
import sys, time
from clew.exporter.store.connection import connect
connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.readline()  # hold the store until told to let go
"""


@contextmanager
def held_store(home: Path, clean_env) -> Iterator[subprocess.Popen]:
    """Another process holding the embedded store of `home` open, until its stdin gets a
    line (or the block ends)."""
    url = f"chdb://{home / 'db'}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=clean_env(home))
    try:
        assert holder.stdout.readline() == "holding\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()


def holder_line(holder: subprocess.Popen) -> str:
    """The holder's pid and command line as clew names them (newlines folded)."""
    return f"pid {holder.pid}: {sys.executable} -c import sys, time from clew.exporter.store.connection "


def test_a_store_held_by_another_process_names_it(tmp_path, run_clew, clean_env):
    home = tmp_path / "home"
    url = f"chdb://{home / 'db'}"
    with held_store(home, clean_env) as holder:
        for args, env in ((["--wait", "0.5"], {}), ([], {"CLEW_STORE_WAIT": "0.5"})):
            started = time.monotonic()
            done = run_clew(*args, "runs", home=home, env=env, timeout=60)
            waited = time.monotonic() - started
            assert done.returncode == ExitStatus.ERROR
            # one line: no waiting message for so short a wait, none of chDB's lock errors
            line = one_line_error(done.stderr)
            assert line.startswith(f"clew: error: the store {url} is in use by pid "
                                   f"{holder.pid} ({sys.executable} -c import sys, time ")
            assert 0.5 <= waited < 30
    # once it is gone, the store opens at once
    done = run_clew("--wait", "0", "runs", "--format", "json", home=home)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"schema": 1, "runs": []}


def test_a_command_waits_for_a_held_store_says_so_once_then_answers(tmp_path, clean_env):
    home = tmp_path / "home"
    with held_store(home, clean_env) as holder:
        waiting = subprocess.Popen([str(CLEW), "runs", "--format", "json"],
                                   env=clean_env(home), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            said = waiting.stderr.readline()
            assert said.startswith(f"waiting for the store, held by {holder_line(holder)}")
            holder.stdin.write("let go\n")
            holder.stdin.flush()
            out, err = waiting.communicate(timeout=60)
        finally:
            waiting.kill()
            waiting.wait()
    assert (waiting.returncode, err) == (ExitStatus.OK, "")  # nothing after the one line
    assert json.loads(out) == {"schema": 1, "runs": []}


def test_the_databases_named_by_a_server_url_hold_the_tables(pipeline, pipeline_home, tmp_path,
                                                             monkeypatch):
    """`--store http://user@host:8123/analytics`: clew makes, fills and reads its tables in
    `analytics`. There is no ClickHouse server here: an embedded store stands in for it."""
    from clew.query import _commands_store

    stand_in = f"chdb://{tmp_path / 'server'}"
    opened: list[tuple[str, float]] = []

    def connect(url: str, *, wait: float, on_wait: object) -> object:
        opened.append((url, wait))
        return store.connect(stand_in)

    monkeypatch.setattr(_commands_store, "connect", connect)
    cli = Cli(pipeline_home())
    url = "http://alice@ch.example.com:8123/analytics"
    try:
        found = cli.json("--store", url, "--wait", "2", "runs")["runs"]
        assert [r["run_id"] for r in found] == [r.run_id for r in reversed(pipeline.runs)]
        assert opened == [(url, 2.0)]
        client = store.connect(stand_in)
        tables = client.query("SELECT database, name FROM system.tables WHERE name IN "
                              "('otel_traces', 'clew_runs', 'clew_io', 'clew_ingest_log')")
        assert sorted(tables.result_rows) == [("analytics", "clew_ingest_log"),
                                              ("analytics", "clew_io"),
                                              ("analytics", "clew_runs"),
                                              ("analytics", "otel_traces")]
    finally:
        store.close(stand_in)


def test_each_clew_process_leaves_the_store_whole_for_the_next(pipeline, pipeline_home, run_clew,
                                                              clean_env):
    """`clew` skips chDB's teardown at exit: what one process ingested, the next one reads, and
    its output is complete whether it goes to a file or into a pipe closed early."""
    home = pipeline_home()
    done = run_clew("ingest", "--format", "json", home=home)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["spans"] > 0
    listed = run_clew("--no-ingest", "runs", "--format", "json", home=home)
    assert listed.returncode == 0, listed.stderr
    assert sorted(r["run_id"] for r in json.loads(listed.stdout)["runs"]) == sorted(
        r.run_id for r in pipeline.runs)
    # A second ingest in a third process finds nothing new: the log written before the
    # first one's abrupt exit is whole.
    again = run_clew("ingest", "--format", "json", home=home)
    assert json.loads(again.stdout)["spans"] == 0, again.stdout
    clew = Path(sys.executable).parent / "clew"
    piped = subprocess.run(f"{shlex.quote(str(clew))} sql 'SELECT number FROM numbers(100000)' "
                           "| head -n 3", shell=True, capture_output=True, text=True,
                           env=clean_env(home), timeout=120)
    assert len(piped.stdout.splitlines()) == 3 and "Traceback" not in piped.stderr


def test_every_command_is_found_by_its_name():
    """Commands are imported when listed or run: each name leads to the command of that name."""
    import click

    from clew.query.cli import cli

    context = click.Context(cli)
    names = cli.list_commands(context)
    assert {"ingest", "runs", "sql", "lineage", "impact", "diff", "check", "export"} <= set(names)
    for name in names:
        assert cli.get_command(context, name).name == name
    assert cli.get_command(context, "nosuch") is None
