"""polars' native reads, lazy scans and writes: real programs under opentelemetry-instrument,
and the instrumentor in code: uninstrumented and errors passing through (every library's
span, suppressed and hook-failure cases: test_lib_instrumentors.py).

Each program works on files the test made beforehand (outside clew); the test checks that
every file the program read or wrote is recorded exactly once, by the program's process,
with the blake3 digest of its content, and that nothing else is recorded for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from instrumentor_cases import io_spans
from library_cases import check_program, library_case

pl = pytest.importorskip("polars")

pytestmark = pytest.mark.integration


def make_inputs(workdir: Path) -> None:
    frame = pl.DataFrame({"id": list(range(20)), "label": [f"r{i}" for i in range(20)]})
    frame.write_parquet(workdir / "in.parquet")
    frame.write_csv(workdir / "in.csv")
    frame.write_ipc(workdir / "in.arrow")
    frame.write_ndjson(workdir / "in.jsonl")
    (workdir / "shards").mkdir()
    for index in range(3):
        frame.with_columns(pl.col("id") + 100 * index).write_parquet(workdir / "shards" / f"{index}.parquet")


# name: (the program, the files it reads, the files it writes); "d/" is every file under d.
CASES = {
    "read_* and write_*": ("""
        import polars as pl
        frame = pl.read_parquet("in.parquet")
        pl.read_csv("in.csv"); pl.read_ipc("in.arrow"); pl.read_ndjson("in.jsonl")
        frame.write_parquet("out.parquet"); frame.write_csv("out.csv")
        frame.write_ipc("out.arrow"); frame.write_ndjson("out.jsonl")
        """, ["in.parquet", "in.csv", "in.arrow", "in.jsonl"],
        ["out.parquet", "out.csv", "out.arrow", "out.jsonl"]),
    "read_parquet of a glob": ("""
        import polars as pl
        assert pl.read_parquet("shards/*.parquet").height == 60
        """, ["shards/"], []),
    "scan_* recorded when collected, sink_*": ("""
        import polars as pl
        never = pl.scan_csv("in.csv")  # made, never run: not read
        lazy = pl.scan_parquet("shards").filter(pl.col("id") > 5)
        assert lazy.collect().height == 54
        lazy.sink_parquet("sunk.parquet")  # runs the scan again
        pl.scan_ndjson("in.jsonl").sink_csv("sunk.csv")
        pl.scan_ipc("in.arrow").sink_ipc("sunk.arrow")
        pl.scan_parquet("in.parquet").sink_ndjson("sunk.jsonl")
        """, ["shards/", "in.jsonl", "in.arrow", "in.parquet"],
        ["sunk.parquet", "sunk.csv", "sunk.arrow", "sunk.jsonl"]),
    "collect_all and collect_async": ("""
        import asyncio
        import polars as pl
        csv, parquet = pl.scan_csv("in.csv"), pl.scan_parquet("in.parquet")
        assert [f.height for f in pl.collect_all(iter([csv, parquet.head(3)]))] == [20, 3]
        async def collect():
            return await pl.scan_ipc("in.arrow").collect_async()
        assert asyncio.run(collect()).height == 20
        """, ["in.csv", "in.parquet", "in.arrow"], []),
}
# Reads the program makes more than once (a scan run twice), by file.
COUNTS = {"scan_* recorded when collected, sink_*": {"shards/": 2}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_file_is_one_record_with_its_digest(case, run_instrumented, spool, workdir):
    make_inputs(workdir)
    program, reads, writes = CASES[case]

    check_program(run_instrumented, spool, workdir, program, reads, writes, COUNTS.get(case))


# -- the instrumentor in code ------------------------------------------------------------------

POLARS = """
from clew.instrumentation.polars import PolarsInstrumentor
def read():
    import polars as pl
    return pl.read_parquet("in.parquet").height
"""


def test_instrumentor_uninstrumented_restores_polars(base_env, workdir):
    make_inputs(workdir)

    outcome = library_case(POLARS, """
        import polars as pl
        originals = lambda: (pl.read_parquet, pl.scan_csv, pl.DataFrame.write_csv,
                             pl.LazyFrame.collect, pl.LazyFrame.sink_parquet)
        before = originals()
        instrumentor = PolarsInstrumentor()
        instrumentor.instrument()
        patched = [a is not b for a, b in zip(originals(), before)]
        instrumentor.uninstrument()
        restored = originals() == before
        read()
        finish(patched=patched, restored=restored)
        """, base_env, workdir)

    assert outcome["patched"] == [True] * 5
    assert outcome["restored"] is True
    assert io_spans(outcome) == []


def test_instrumentor_passes_polars_errors_through(base_env, workdir):
    (workdir / "not.parquet").write_text("not parquet")

    outcome = library_case(POLARS, """
        import polars as pl
        calls = {
            "missing": lambda: pl.read_parquet("missing.parquet"),
            "corrupt": lambda: pl.read_parquet("not.parquet"),
            "scan": lambda: pl.scan_csv("missing.csv").collect(),
            "write": lambda: pl.DataFrame({"a": [1]}).write_csv("no-such-dir/out.csv"),
        }
        before = {name: failure(call) for name, call in calls.items()}
        PolarsInstrumentor().instrument()
        after = {name: failure(call) for name, call in calls.items()}
        finish(before=before, after=after)
        """, base_env, workdir)

    assert outcome["after"] == outcome["before"]
    assert outcome["before"]["missing"][0] == "FileNotFoundError"
    assert all(outcome["before"][name] is not None for name in outcome["before"])


