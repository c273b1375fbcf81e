"""The native-I/O library instrumentors in code, each the same way (STYLE.md, "For clew" 11):
a read recorded under the process span once the library is imported after `instrument()`,
nothing recorded when suppressed, and a failure inside clew's hook swallowed. Their
uninstrumented and error cases are in each library's own test module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clew.semconv import attributes as attr
from instrumentor_cases import io_spans, process_span
from library_cases import digest_of, library_case

# library: (its instrumentor and a `read()` of INPUT returning a row count, the rows)
LIBRARIES = {
    "pyarrow": ("""
from clew.instrumentation.pyarrow import PyarrowInstrumentor as Instrumentor
def read():
    import pyarrow.csv
    return pyarrow.csv.read_csv("in.csv").num_rows
""", 2),
    "polars": ("""
from clew.instrumentation.polars import PolarsInstrumentor as Instrumentor
def read():
    import polars
    return polars.read_csv("in.csv").height
""", 2),
    "duckdb": ("""
from clew.instrumentation.duckdb import DuckdbInstrumentor as Instrumentor
def read():
    import duckdb
    return duckdb.connect().execute("SELECT count(*) FROM read_csv('in.csv')").fetchone()[0]
""", 2),
}

pytestmark = pytest.mark.integration


@pytest.fixture(params=sorted(LIBRARIES))
def library(request, workdir: Path) -> tuple[str, int]:
    pytest.importorskip(request.param)
    (workdir / "in.csv").write_text("id,label\n1,a\n2,b\n")
    return LIBRARIES[request.param]


def test_instrumentor_records_a_read_under_the_process_span(library, base_env, workdir, spool):
    """Instrumented before the library is imported: patched at its import, never before."""
    prelude, rows = library

    outcome = library_case(prelude, """
        Instrumentor().instrument()
        imported_early = sorted(m for m in ("pyarrow", "polars", "duckdb") if m in sys.modules)
        finish(rows=read(), imported_early=imported_early)
        """, base_env, workdir)

    assert (outcome["rows"], outcome["imported_early"]) == (rows, [])
    (span,) = io_spans(outcome)
    assert span["attributes"][attr.PROVENANCE_ARTIFACTS_URI] == [spool.uri(workdir / "in.csv")]
    assert span["attributes"][attr.PROVENANCE_ARTIFACTS_DIGEST] == [digest_of(workdir / "in.csv")]
    assert span["parent"] == process_span(outcome)["span_id"]


def test_instrumentor_suppressed_records_nothing(library, base_env, workdir):
    prelude, rows = library

    outcome = library_case(prelude, """
        Instrumentor().instrument()
        with suppress_instrumentation():
            rows = read()
        finish(rows=rows)
        """, base_env, workdir)

    assert outcome["rows"] == rows
    assert io_spans(outcome) == []


def test_instrumentor_failing_hook_is_swallowed(library, base_env, workdir):
    """A failure inside clew's hook never reaches the program: its reads work, the failure is
    logged once and kept on the process span."""
    prelude, rows = library

    outcome = library_case(prelude, """
        Instrumentor().instrument()
        recorder = _lifecycle.get_recorder()
        def broken(path):
            raise RuntimeError("simulated capture bug")
        recorder.read = broken
        finish(rows=[read() for _ in range(3)])
        """, base_env, workdir)

    assert outcome["rows"] == [rows] * 3
    assert outcome["stderr"].count("simulated capture bug") == 1
    errors = process_span(outcome)["attributes"][attr.PROVENANCE_CAPTURE_ERRORS]
    assert any("simulated capture bug" in e for e in errors)
