"""pyarrow's native reads and writes, and pandas through its engines: real programs under
opentelemetry-instrument, and the instrumentor in code: uninstrumented and errors passing
through (every library's span, suppressed and hook-failure cases: test_lib_instrumentors.py).

Each program works on files the test made beforehand (outside clew); the test checks that
every file the program read or wrote is recorded exactly once, by the program's process,
with the blake3 digest of its content, and that nothing else is recorded for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clew.semconv import attributes as attr
from instrumentor_cases import io_spans, process_span
from library_cases import check_program, library_case

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

pytestmark = pytest.mark.integration


def table(rows: int = 30, offset: int = 0):
    return pa.table({
        "id": list(range(offset, offset + rows)),
        "label": [f"row-{i}" for i in range(offset, offset + rows)],
        "part": [i % 2 for i in range(offset, offset + rows)],
    })


def make_parquet(workdir: Path) -> None:
    pq.write_table(table(), workdir / "in.parquet", row_group_size=10)  # three row groups


def make_shards(workdir: Path) -> None:
    (workdir / "shards").mkdir()
    for index in range(3):
        pq.write_table(table(offset=100 * index), workdir / "shards" / f"{index}.parquet")


def make_arrow_files(workdir: Path) -> None:
    import pyarrow.feather as feather

    feather.write_feather(table(), workdir / "in.feather")
    with pa.OSFile(str(workdir / "in.arrow"), "wb") as sink, pa.ipc.new_file(sink, table().schema) as w:
        w.write_table(table())
    with pa.OSFile(str(workdir / "in.stream"), "wb") as sink, pa.ipc.new_stream(sink, table().schema) as w:
        w.write_table(table())


def make_text_files(workdir: Path) -> None:
    (workdir / "in.csv").write_text("id,label\n1,a\n2,b\n")
    (workdir / "in.jsonl").write_text('{"id": 1}\n{"id": 2}\n')
    (workdir / "in.bin").write_bytes(b"raw bytes " * 100)
    (workdir / "in.txt").write_bytes(b"streamed in")


def make_streamed_inputs(workdir: Path) -> None:
    import pyarrow.orc as orc

    make_text_files(workdir)
    orc.write_table(table(), str(workdir / "in.orc"))


def no_input(workdir: Path) -> None:
    return None


# name: (make the inputs, the program, the files it reads, the files it writes). Names
# ending in "/" are directories: every file under them.
CASES = {
    "parquet read_table, write_table": (make_parquet, """
        import pyarrow.parquet as pq
        pq.write_table(pq.read_table("in.parquet"), "out.parquet")
        """, ["in.parquet"], ["out.parquet"]),
    "ParquetFile read by row group": (make_parquet, """
        import pyarrow.parquet as pq
        reader = pq.ParquetFile("in.parquet")
        [reader.read_row_group(i) for i in range(reader.num_row_groups)]
        pq.read_metadata("in.parquet")
        """, ["in.parquet"], []),
    "ParquetWriter in row groups": (no_input, """
        import pyarrow as pa, pyarrow.parquet as pq
        table = pa.table({"x": list(range(30))})
        with pq.ParquetWriter("out.parquet", table.schema) as writer:
            for start in range(0, 30, 10):
                writer.write_table(table.slice(start, 10))
        """, [], ["out.parquet"]),
    "ParquetDataset and read_table of a directory": (make_shards, """
        import pyarrow.parquet as pq
        pq.ParquetDataset("shards").read()
        """, ["shards/"], []),
    "pyarrow.dataset scan and write_dataset": (make_shards, """
        import pyarrow.dataset as ds
        dataset = ds.dataset("shards", format="parquet")
        table = dataset.to_table(filter=ds.field("id") > 5)
        seen = []
        ds.write_dataset(table, "written", format="parquet", partitioning=["part"],
                         file_visitor=lambda f: seen.append(f.path))
        assert len(seen) == 2, seen
        """, ["shards/"], ["written/"]),
    "write_to_dataset": (no_input, """
        import pyarrow as pa, pyarrow.parquet as pq
        pq.write_to_dataset(pa.table({"x": [1, 2, 3], "k": ["a", "b", "a"]}), "out",
                            partition_cols=["k"])
        """, [], ["out/"]),
    "feather and IPC files and streams": (make_arrow_files, """
        import pyarrow as pa, pyarrow.feather as feather
        table = feather.read_table("in.feather")
        feather.write_feather(table, "out.feather")
        pa.ipc.open_file("in.arrow").read_all()
        pa.ipc.open_stream("in.stream").read_all()
        with pa.ipc.new_file("out.arrow", table.schema) as writer:
            writer.write_table(table)
        with pa.ipc.new_stream("out.stream", table.schema) as writer:
            writer.write_table(table)
        """, ["in.feather", "in.arrow", "in.stream"],
        ["out.feather", "out.arrow", "out.stream"]),
    "csv, json, memory_map, OSFile and streams": (make_text_files, """
        import pyarrow as pa, pyarrow.csv as csv, pyarrow.json as json
        table = csv.read_csv("in.csv")
        csv.write_csv(table, "out.csv")
        json.read_json("in.jsonl")
        with pa.memory_map("in.bin") as mapped:
            mapped.read(10); mapped.seek(500); mapped.read()
        with pa.OSFile("out.bin", "wb") as sink:
            sink.write(b"native write")
        with pa.input_stream("in.txt") as stream:
            stream.read()
        with pa.output_stream("out.txt") as stream:
            stream.write(b"streamed")
        """, ["in.csv", "in.jsonl", "in.bin", "in.txt"], ["out.csv", "out.bin", "out.txt"]),
    "open_csv, open_json, CSVWriter, create_memory_map, ORC": (make_streamed_inputs, """
        import pyarrow as pa, pyarrow.csv as csv, pyarrow.json as json, pyarrow.orc as orc
        table = csv.open_csv("in.csv").read_all()
        json.open_json("in.jsonl").read_all()
        with csv.CSVWriter("out.csv", table.schema) as writer:
            writer.write_table(table)
        with pa.create_memory_map("out.bin", 64) as mapped:
            mapped.write(b"mapped")
        orc.write_table(orc.ORCFile("in.orc").read(), "out.orc")
        """, ["in.csv", "in.jsonl", "in.orc"], ["out.csv", "out.bin", "out.orc"]),
    "pandas through pyarrow": (make_parquet, """
        import pandas as pd
        frame = pd.read_parquet("in.parquet")
        frame.to_parquet("out.parquet")
        frame.to_feather("out.feather")
        pd.read_feather("out.feather")
        frame.to_parquet("parts", partition_cols=["part"])
        pd.read_parquet("parts")
        frame.to_orc("out.orc")
        pd.read_orc("out.orc")
        """, ["in.parquet", "out.feather", "parts/", "out.orc"],
        ["out.parquet", "out.feather", "parts/", "out.orc"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_file_is_one_record_with_its_digest(case, run_instrumented, spool, workdir):
    make_inputs, program, reads, writes = CASES[case]
    make_inputs(workdir)

    check_program(run_instrumented, spool, workdir, program, reads, writes)


# -- the instrumentor in code ------------------------------------------------------------------

ARROW = """
from clew.instrumentation.pyarrow import PyarrowInstrumentor
def read():
    import pyarrow.parquet as pq
    return pq.read_table("in.parquet").num_rows
"""


def test_instrumentor_uninstrumented_restores_pyarrow(base_env, workdir):
    """uninstrument() puts pyarrow's own functions back and records nothing; instrumenting
    again, with pyarrow imported, patches it at once."""
    make_parquet(workdir)

    outcome = library_case(ARROW, """
        import pyarrow as pa, pyarrow.parquet as pq, pyarrow.dataset as ds
        originals = lambda: (pq.ParquetFile.__init__, pq.ParquetDataset.__init__, ds.dataset,
                             pa.memory_map, pa.OSFile, pa.lib.input_stream)
        before = originals()
        instrumentor = PyarrowInstrumentor()
        instrumentor.instrument()
        patched = [a is not b for a, b in zip(originals(), before)]
        instrumentor.uninstrument()
        restored = originals() == before
        read()
        instrumentor.instrument()
        read()
        finish(patched=patched, restored=restored)
        """, base_env, workdir)

    assert outcome["patched"] == [True] * 6
    assert outcome["restored"] is True
    (span,) = io_spans(outcome)
    assert span["attributes"][attr.PROVENANCE_IO_COUNT] == 1  # the read after instrumenting again


def test_instrumentor_passes_pyarrows_errors_through(base_env, workdir):
    """A missing file and a file that is not Parquet raise exactly what they raise without
    clew; the missing file is not recorded."""
    (workdir / "not.parquet").write_text("not parquet")

    outcome = library_case(ARROW, """
        import pyarrow as pa, pyarrow.parquet as pq, pyarrow.dataset as ds
        calls = {
            "missing": lambda: pq.read_table("missing.parquet"),
            "corrupt": lambda: pq.ParquetFile("not.parquet"),
            "memory_map": lambda: pa.memory_map("missing.bin"),
            "dataset": lambda: ds.dataset("missing-dir", format="parquet"),
        }
        before = {name: failure(call) for name, call in calls.items()}
        PyarrowInstrumentor().instrument()
        after = {name: failure(call) for name, call in calls.items()}
        finish(before=before, after=after)
        """, base_env, workdir)

    assert outcome["after"] == outcome["before"]
    assert outcome["before"]["missing"][0] == "FileNotFoundError"
    assert outcome["before"]["corrupt"][0] == "ArrowInvalid"
    uris = [u for s in io_spans(outcome) for u in s["attributes"][attr.PROVENANCE_ARTIFACTS_URI]]
    assert [u.rpartition("/")[2] for u in uris] == ["not.parquet"]  # opened, then refused


def test_unsupported_pyarrow_is_left_unpatched_and_said_so(base_env, workdir):
    """A pyarrow version `_instruments` does not name is not patched when the program imports
    it; the process span says why, among its capture errors. (`instrument()` in code refuses
    at once; opentelemetry-instrument skips that check, as here.)"""
    make_parquet(workdir)

    outcome = library_case(ARROW, """
        class Future(PyarrowInstrumentor):
            _instruments = ("pyarrow >= 999",)
        Future().instrument(skip_dep_check=True)
        import pyarrow.parquet as pq
        original = type(pq.ParquetFile.__init__).__name__
        finish(rows=read(), original=original)
        """, base_env, workdir)

    assert (outcome["rows"], outcome["original"]) == (30, "function")
    assert io_spans(outcome) == []
    errors = process_span(outcome)["attributes"][attr.PROVENANCE_CAPTURE_ERRORS]
    assert any("pyarrow >= 999" in e for e in errors)


def test_a_program_that_never_imports_pyarrow_does_not_import_it(run_instrumented):
    result = run_instrumented("""
        import sys
        print(sorted(m for m in ("pyarrow", "polars", "duckdb", "pandas") if m in sys.modules))
        """)

    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr
