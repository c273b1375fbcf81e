"""The files DuckDB's SQL reads and writes: real programs under opentelemetry-instrument, and
the instrumentor in code (STYLE.md, "For clew" 11).

Each program queries files the test made beforehand (outside clew); the test checks that
every file the program's SQL read or wrote is recorded exactly once, by the program's
process, with the blake3 digest of its content, and that nothing else is recorded for them.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import blake3
import pytest

from clew.semconv import attributes as attr
from instrumentor_cases import io_spans, process_span, run_case

duckdb = pytest.importorskip("duckdb")

pytestmark = pytest.mark.integration


def digest_of(path: Path) -> str:
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


def make_inputs(workdir: Path) -> None:
    (workdir / "shards").mkdir()
    con = duckdb.connect()
    for index in range(3):
        con.execute(f"COPY (SELECT range + {100 * index} AS id FROM range(10)) "
                    f"TO '{workdir}/shards/{index}.parquet' (FORMAT parquet)")
    con.execute(f"COPY (SELECT range AS id, 'r' || range AS label FROM range(5)) TO '{workdir}/in.csv'")
    con.close()


# name: (the program, the files it reads, the files it writes); "d/" is every file under d.
CASES = {
    "read_parquet of a glob, read_csv, COPY ... TO": ("""
        import duckdb
        con = duckdb.connect()
        (count,) = con.execute("SELECT count(*) FROM read_parquet('shards/*.parquet')").fetchone()
        assert count == 30
        con.execute("SELECT * FROM read_csv('in.csv')").fetchall()
        con.execute("COPY (SELECT * FROM range(3)) TO 'out.parquet' (FORMAT parquet)")
        con.execute("COPY (SELECT 1 AS x) TO 'out.csv'")
        con.close()
        """, ["shards/", "in.csv"], ["out.parquet", "out.csv"]),
    "module-level duckdb.sql and a lazy relation": ("""
        import duckdb
        relation = duckdb.sql("SELECT sum(id) FROM 'shards/*.parquet'")
        assert relation.fetchall() == [(3135,)]
        duckdb.execute("COPY (SELECT * FROM read_csv('in.csv')) TO 'out.parquet' (FORMAT parquet)")
        """, ["shards/", "in.csv"], ["out.parquet"]),
}


def files_named(workdir: Path, names: list[str]) -> list[Path]:
    found: list[Path] = []
    for name in names:
        path = workdir / name
        found.extend(sorted(p for p in path.rglob("*") if p.is_file()) if name.endswith("/") else [path])
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_file_is_one_record_with_its_digest(case, run_instrumented, spool, workdir):
    make_inputs(workdir)
    program, reads, writes = CASES[case]

    result = run_instrumented("import os\nprint(os.getpid())\n" + textwrap.dedent(program))

    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.split()[0])
    run = spool.run()
    expected = {("read", p) for p in files_named(workdir, reads)}
    expected |= {("write", p) for p in files_named(workdir, writes)}
    for operation, path in sorted(expected):
        access = spool.only(run, operation, path)
        assert (access.digest, access.count, access.pid) == (digest_of(path), 1, pid), path
    recorded = {(a.operation, a.uri) for a in run.accesses if a.uri.startswith(spool.uri(workdir))}
    assert recorded == {(operation, spool.uri(path)) for operation, path in expected}
    assert run.capture_errors == []


def test_a_program_using_duckdb_logging_itself_is_left_alone(run_instrumented, spool, workdir):
    """Once the program turns DuckDB's logging on itself, clew leaves its log alone."""
    make_inputs(workdir)

    result = run_instrumented("""
        import duckdb
        con = duckdb.connect()
        con.execute("CALL enable_logging('FileSystem', level := 'trace')")
        con.execute("SELECT count(*) FROM 'shards/*.parquet'").fetchall()
        print(con.execute("SELECT count(*) > 0 FROM duckdb_logs").fetchone()[0])
        """)

    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr


# -- the instrumentor in code ------------------------------------------------------------------

DUCKDB = """
from clew.instrumentation.duckdb import DuckdbInstrumentor
def query():
    import duckdb
    con = duckdb.connect()
    return con.execute("SELECT count(*) FROM read_csv('in.csv')").fetchone()[0]
"""


def duckdb_case(body: str, base_env: dict, workdir: Path) -> dict:
    return run_case(DUCKDB + textwrap.dedent(body), base_env, workdir)


def test_instrumentor_records_a_read_under_the_process_span(base_env, workdir, spool):
    make_inputs(workdir)

    outcome = duckdb_case("""
        DuckdbInstrumentor().instrument()
        imported_early = "duckdb" in sys.modules
        finish(rows=query(), imported_early=imported_early)
        """, base_env, workdir)

    assert (outcome["rows"], outcome["imported_early"]) == (5, False)
    (span,) = io_spans(outcome)
    assert span["attributes"][attr.PROVENANCE_ARTIFACTS_URI] == [spool.uri(workdir / "in.csv")]
    assert span["attributes"][attr.PROVENANCE_ARTIFACTS_DIGEST] == [digest_of(workdir / "in.csv")]
    assert span["parent"] == process_span(outcome)["span_id"]


def test_instrumentor_suppressed_records_nothing(base_env, workdir):
    make_inputs(workdir)

    outcome = duckdb_case("""
        DuckdbInstrumentor().instrument()
        with suppress_instrumentation():
            rows = query()
        finish(rows=rows)
        """, base_env, workdir)

    assert outcome["rows"] == 5
    assert io_spans(outcome) == []


def test_instrumentor_uninstrumented_restores_duckdb(base_env, workdir):
    make_inputs(workdir)

    outcome = duckdb_case("""
        import duckdb
        originals = lambda: (duckdb.connect, duckdb.sql, duckdb.DuckDBPyConnection.execute,
                             duckdb.DuckDBPyConnection.close)
        before = originals()
        instrumentor = DuckdbInstrumentor()
        instrumentor.instrument()
        patched = [a is not b for a, b in zip(originals(), before)]
        instrumentor.uninstrument()
        restored = originals() == before
        query()
        finish(patched=patched, restored=restored)
        """, base_env, workdir)

    assert outcome["patched"] == [True] * 4
    assert outcome["restored"] is True
    assert io_spans(outcome) == []


def test_instrumentor_passes_duckdbs_errors_through(base_env, workdir):
    outcome = duckdb_case("""
        import duckdb
        con = duckdb.connect()
        calls = {
            "missing": lambda: con.execute("SELECT * FROM read_parquet('missing.parquet')"),
            "syntax": lambda: con.execute("SELEC 1"),
            "module": lambda: duckdb.sql("SELECT * FROM 'missing.csv'"),
        }
        before = {name: failure(call) for name, call in calls.items()}
        DuckdbInstrumentor().instrument()
        after = {name: failure(call) for name, call in calls.items()}
        finish(before=before, after=after)
        """, base_env, workdir)

    assert outcome["after"] == outcome["before"]
    assert outcome["before"]["missing"][0] == "IOException"
    assert outcome["before"]["syntax"][0] == "ParserException"


def test_instrumentor_failing_hook_is_swallowed(base_env, workdir):
    make_inputs(workdir)

    outcome = duckdb_case("""
        DuckdbInstrumentor().instrument()
        recorder = _lifecycle.get_recorder()
        def broken(path):
            raise RuntimeError("simulated capture bug")
        recorder.read = broken
        finish(rows=[query() for _ in range(3)])
        """, base_env, workdir)

    assert outcome["rows"] == [5] * 3
    assert outcome["stderr"].count("simulated capture bug") == 1
    errors = process_span(outcome)["attributes"][attr.PROVENANCE_CAPTURE_ERRORS]
    assert any("simulated capture bug" in e for e in errors)
