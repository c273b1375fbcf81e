"""`clew check --test` through native-I/O libraries and a non-Python child.

Someone copies the test file with `cp` (run from a Python program: the copy is a child that
is not Python) into a directory of Parquet training shards; a later run loads the shards
with polars (or, separately, Hugging Face datasets) and writes a model with safetensors.
`clew check` must name the test file itself: found by following the model's lineage back
through the run whose `cp` child read it, not only by the copy's content digest. A model
trained before the copy is the clean control.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from clew.query.cli import ExitStatus

pa = pytest.importorskip("pyarrow")
pytest.importorskip("safetensors")

pytestmark = pytest.mark.integration

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}

COPY = """
import subprocess
subprocess.run(["cp", "test/test.parquet", "train/part-2.parquet"], check=True)
"""

# Each loader reads every shard under train/ and writes the model named by argv[1].
LOADERS = {
    "polars": """
        import sys
        import numpy as np
        import polars as pl
        from safetensors.numpy import save_file
        rows = pl.read_parquet("train/*.parquet")
        save_file({"w": rows["x"].to_numpy().astype(np.float32)}, sys.argv[1])
        """,
    "datasets": """
        import sys
        import numpy as np
        from datasets import load_dataset
        from safetensors.numpy import save_file
        rows = load_dataset("parquet", data_files="train/*.parquet", cache_dir="cache")["train"]
        save_file({"w": np.array(rows["x"], dtype=np.float32)}, sys.argv[1])
        """,
}


def make_shards(workdir: Path) -> None:
    import pyarrow.parquet as pq

    (workdir / "train").mkdir()
    (workdir / "test").mkdir()
    for index in range(2):
        shard = workdir / "train" / f"part-{index}.parquet"
        pq.write_table(pa.table({"x": [index, index + 1]}), shard)
    pq.write_table(pa.table({"x": [99, 98]}), workdir / "test" / "test.parquet")


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_test_file_copied_by_cp_into_the_shards_is_found_by_lineage(
    loader, run_instrumented, workdir, clew_cli
):
    pytest.importorskip(loader)
    make_shards(workdir)
    program = textwrap.dedent(LOADERS[loader])
    for script, args in ((program, ["clean.safetensors"]), (COPY, []),
                         (program, ["model.safetensors"])):
        done = run_instrumented(script, *args, env=OFFLINE, timeout=300)
        assert done.returncode == 0, done.stderr
    assert clew_cli("ingest").code == ExitStatus.OK

    found = clew_cli("check", "model.safetensors", "--test", "test/test.parquet")
    assert found.code == ExitStatus.CHECK_FAILED, found.err
    # What the user reads: the test file itself, reached by the model's lineage through the
    # run whose cp child read it (its location: "uri"), besides the copy in the shards, caught
    # by its content ("digest"). Without cp's records only the second would be found.
    assert [line.split(" (")[0] for line in found.out.splitlines()] == [
        "test-data test/test.parquet", "test-data train/part-2.parquet"], found.out
    report = clew_cli("check", "model.safetensors", "--test", "test/test.parquet",
                      "--format", "json").json()
    assert [(f["uri"].split("/work/")[-1], f["evidence"]) for f in report["findings"]] == [
        ("test/test.parquet", "uri"), ("train/part-2.parquet", "digest")]

    clean = clew_cli("check", "clean.safetensors", "--test", "test/test.parquet")
    assert clean.code == ExitStatus.OK, clean.out + clean.err
    assert "nothing upstream of clean.safetensors is test data" in clean.out
