"""The files DuckDB's SQL reads and writes: real programs under opentelemetry-instrument, and
the instrumentor in code: uninstrumented and errors passing through (the span, suppressed
and hook-failure cases of every library are in test_lib_instrumentors.py).

Each program queries files the test made beforehand (outside clew); the test checks that
every file the program's SQL read or wrote is recorded exactly once, by the program's
process, with the blake3 digest of its content, and that nothing else is recorded for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from instrumentor_cases import io_spans
from library_cases import check_program, library_case

duckdb = pytest.importorskip("duckdb")

pytestmark = pytest.mark.integration


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


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_file_is_one_record_with_its_digest(case, run_instrumented, spool, workdir):
    make_inputs(workdir)
    program, reads, writes = CASES[case]

    check_program(run_instrumented, spool, workdir, program, reads, writes)


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


def test_instrumentor_uninstrumented_restores_duckdb(base_env, workdir):
    make_inputs(workdir)

    outcome = library_case(DUCKDB, """
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
    outcome = library_case(DUCKDB, """
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


