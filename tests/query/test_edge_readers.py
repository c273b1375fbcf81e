"""A read edge of `clew lineage` and `clew impact` names the process that made the read.

A plain single-process program under opentelemetry-instrument reads a file and writes
another: the edge from the input to the run names that program's pid (no rank, no
DataLoader worker), in the JSON and in the text tree, upstream and downstream. DataLoader
workers and torchrun ranks are in tests/distributed (test_dataloader.py, test_torchrun.py).
"""

from __future__ import annotations

import pytest

from clew.query.cli import ExitStatus

pytestmark = pytest.mark.integration

PROGRAM = """
import os
print(os.getpid(), flush=True)
rows = open("features.csv").read().splitlines()
open("model.txt", "w").write(str(len(rows)))
"""


@pytest.fixture
def run_pid(run_instrumented, workdir) -> int:
    (workdir / "features.csv").write_text("a,1\nb,2\n")
    result = run_instrumented(PROGRAM, name="train.py")
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[0])


def _read_edges(document: dict) -> list[dict]:
    inputs = {n["id"] for n in document["nodes"] if n["uri"].endswith("/features.csv")}
    return [e for e in document["edges"] if e["kind"] == "read" and e["source"] in inputs]


@pytest.mark.parametrize("command", ["lineage", "impact"])
def test_the_read_edge_names_the_reading_process(run_pid, clew_cli, command):
    artifact = "model.txt" if command == "lineage" else "features.csv"
    shown = clew_cli(command, artifact, "--format", "json")
    assert shown.code == ExitStatus.OK, shown.err
    (edge,) = _read_edges(shown.json())
    assert edge["readers"] == [{"pid": run_pid, "rank": None, "worker": None}]
    assert edge["reader_count"] == 1
    text = clew_cli(command, artifact)
    assert text.code == ExitStatus.OK, text.err
    assert f"(read by pid {run_pid})" in text.out, text.out


def test_a_written_edge_names_no_reader(run_pid, clew_cli):
    document = clew_cli("lineage", "model.txt", "--format", "json").json()
    (wrote,) = [e for e in document["edges"] if e["kind"] == "wrote"]
    assert (wrote["readers"], wrote["reader_count"]) == ([], 0)
