"""A file a run creates and deletes (the 4-byte probe `import torch` makes `tempfile` write in
the temp directory, a scratch file) and multiprocessing's own socket files are no outputs of
the run: not in `clew impact` or `clew lineage`, not an output of `clew diff`. Their records
stay in the spool. Real programs under opentelemetry-instrument (torch, a forkserver pool).
"""

from __future__ import annotations

import pytest

from clew.query.cli import ExitStatus

pytestmark = pytest.mark.integration

TRAIN = """
import multiprocessing, os, sys
import torch


def square(x):
    return x * x


if __name__ == "__main__":
    data = open("data.txt").read()
    with open("scratch.tmp", "w") as f:
        f.write("half-done")
    os.remove("scratch.tmp")
    with multiprocessing.get_context("forkserver").Pool(1) as pool:
        total = sum(pool.map(square, [1, 2, 3]))
    torch.save({"total": total, "lr": float(sys.argv[1])}, "model.pt")
"""


@pytest.fixture
def two_runs(run_instrumented, workdir, spool):
    (workdir / "data.txt").write_text("1,2,3\n")
    for lr in ("0.1", "0.2"):
        result = run_instrumented(TRAIN, lr, name="train.py")
        assert result.returncode == 0, result.stderr
    return spool


def test_files_made_and_removed_in_the_run_are_not_its_outputs(two_runs, workdir, clew_cli):
    # What the programs did is in the spool: the scratch file's write, the sockets' removal.
    run = two_runs.runs()[0]
    assert two_runs.accesses(run, "write", workdir / "scratch.tmp")
    assert any("/pymp-" in a.uri for a in run.accesses if a.operation == "delete")

    result = clew_cli("impact", "data.txt", "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    written = {e["target"] for e in result.json()["edges"] if e["kind"] == "wrote"}
    uris = {n["uri"] for n in result.json()["nodes"] if n["id"] in written}
    assert uris == {two_runs.uri(workdir / "model.pt")}


def test_diff_of_two_torch_runs_shows_no_transient_output(two_runs, clew_cli):
    result = clew_cli("diff", "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    outputs = [c for c in result.json()["changes"] if c["section"] == "output"]
    assert [c["name"].rsplit("/", 1)[-1] for c in outputs] == ["model.pt"]
