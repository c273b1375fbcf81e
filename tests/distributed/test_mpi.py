"""`mpirun -n 2` with mpi4py: mpirun is no Python program, so the ranks are the
first instrumented processes and find their run from Open MPI's identity of the job.

Rank 0 is the run's root span and rank 1 a peer under it, in one trace; a second mpirun is
another trace; `opentelemetry-instrument` outside mpirun or inside it gives the same. In a
third launch rank 1 fails after reading its shard and mpirun terminates rank 0, blocked in a
barrier, in native code where Python cannot run a signal handler: rank 0's records are whole
(flushed by clew's signal watcher) and rank 1's failure is on its span.
"""

from __future__ import annotations

import signal

import pytest
from distributed_support import (
    OTEL_INSTRUMENT,
    PYTHON,
    Observed,
    Scenario,
    assert_each_read_recorded_once,
    has,
    make_files,
    said_reads,
)

from clew.semconv import attributes as attr

pytest.importorskip("mpi4py")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has("mpirun"), reason="Open MPI's mpirun is not installed"),
]

SHARDS = 6
PROGRAM = """
import os, sys
from mpi4py import MPI

world = MPI.COMM_WORLD
rank, size = world.Get_rank(), world.Get_size()
paths = sorted(os.path.abspath(os.path.join("data", n)) for n in os.listdir("data"))
for path in paths[rank::size]:
    with open(path, "rb") as handle:
        handle.read()
    # One write per line: lines of concurrent processes never interleave.
    os.write(1, f"READ {rank} {os.getpid()} {path}\\n".encode())
if sys.argv[1:] == ["fail"] and rank == 1:
    raise RuntimeError("rank 1 gives up")
world.Barrier()
"""
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "2"]


@pytest.fixture(scope="module")
def launches(scenario: Scenario) -> tuple[list[str], Observed]:
    make_files(scenario.workdir / "data", SHARDS)
    program = scenario.script(PROGRAM, "ranks.py")
    outputs = [
        scenario.run([OTEL_INSTRUMENT, *MPIRUN, PYTHON, program]).check().stdout,
        scenario.run([*MPIRUN, OTEL_INSTRUMENT, PYTHON, program]).check().stdout,
    ]
    # `-m mpi4py` aborts the job on an uncaught exception (else rank 1 would wait in
    # MPI_Finalize for rank 0, which waits in the barrier, for ever).
    failed = scenario.run([OTEL_INSTRUMENT, *MPIRUN, PYTHON, "-m", "mpi4py", program, "fail"])
    assert failed.returncode != 0
    return [*outputs, failed.stdout], scenario.observed()


def test_two_launches_two_traces(launches):
    outputs, observed = launches
    traces = {observed.run_of_reads(said_reads(stdout)).trace_id for stdout in outputs}
    assert len(traces) == 3
    assert len(observed.runs) == 3, observed.summary()


@pytest.mark.parametrize("launch", [0, 1], ids=["outside", "inside"])
def test_rank_zero_is_the_root_and_rank_one_its_peer(launches, launch):
    outputs, observed = launches
    run = observed.run_of_reads(said_reads(outputs[launch]))
    processes = sorted(run.processes, key=lambda p: p.rank)
    assert [(p.rank, p.role) for p in processes] == [(0, "run"), (1, "peer")]
    root, peer = processes
    assert root.span.parent_span_id == ""
    assert peer.span.parent_span_id == root.span.span_id
    assert peer.span.attributes[attr.PROVENANCE_RUN_JOINED_BY] == "launcher"
    for process in processes:
        resource = process.span.resource
        assert resource[attr.PROVENANCE_WORLD_SIZE] == 2
        assert resource[attr.PROVENANCE_LAUNCHER_NAME] == "openmpi"
        assert resource[attr.PROVENANCE_LOCAL_RANK] == process.rank


@pytest.mark.parametrize("launch", [0, 1, 2], ids=["outside", "inside", "rank-fails"])
def test_each_file_recorded_once_under_its_rank(launches, launch):
    outputs, observed = launches
    assert_each_read_recorded_once(observed, said_reads(outputs[launch]), SHARDS)


def test_failed_rank_shows_the_error_and_rank_zero_was_flushed(launches):
    outputs, observed = launches
    run = observed.run_of_reads(said_reads(outputs[2]))
    by_rank = {p.rank: p for p in run.processes}
    assert by_rank[1].exit_code == 1
    assert by_rank[1].span.attributes[attr.ERROR_TYPE] == "RuntimeError"
    assert by_rank[1].span.status_code == "Error"
    # Rank 0 did not fail: mpirun terminated it, and it flushed before it died.
    assert by_rank[0].exit_code == 128 + signal.SIGTERM
