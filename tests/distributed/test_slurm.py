"""A SLURM step simulated on one machine: two processes started independently, each
with the variables srun gives a task (SLURM_JOB_ID, SLURM_STEP_ID, SLURM_PROCID, ...), as if
on two nodes.

Both tasks of a step find one trace from the job and step ids: task 0 is the run's root,
task 1 a peer under it. The same step running the program a second time (`srun bash -c
"python train.py; python train.py"`) is a second trace, told apart by each task's count of
the runs it started; so is another step. When task 1 fails, task 0's records are whole.
"""

from __future__ import annotations

import random

import pytest
from distributed_support import (
    OTEL_INSTRUMENT,
    PYTHON,
    Finished,
    Observed,
    Scenario,
    assert_each_read_recorded_once,
    finish,
    make_files,
    said_reads,
)

from clew.semconv import attributes as attr

pytestmark = pytest.mark.integration

SHARDS = 6
PROGRAM = """
import os, sys
rank, size = int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"])
paths = sorted(os.path.abspath(os.path.join("data", n)) for n in os.listdir("data"))
for path in paths[rank::size]:
    with open(path, "rb") as handle:
        handle.read()
    # One write per line: lines of concurrent processes never interleave.
    os.write(1, f"READ {rank} {os.getpid()} {path}\\n".encode())
if sys.argv[1:] == ["fail"] and rank == 1:
    raise RuntimeError("task 1 gives up")
"""


def _task_env(scenario: Scenario, job: str, step: str, task: int) -> dict[str, str]:
    return scenario.env(
        SLURM_CLUSTER_NAME="test",
        SLURM_JOB_ID=job,
        SLURM_STEP_ID=step,
        SLURM_PROCID=str(task),
        SLURM_LOCALID="0",
        SLURM_NODEID=str(task),
        SLURM_NTASKS="2",
        SLURM_STEP_NUM_TASKS="2",
    )


def _step(scenario: Scenario, program: str, job: str, step: str, *args: str) -> list[Finished]:
    tasks = [
        scenario.start([OTEL_INSTRUMENT, PYTHON, program, *args], _task_env(scenario, job, step, t))
        for t in (0, 1)
    ]
    return [finish(task) for task in tasks]


@pytest.fixture(scope="module")
def launches(scenario: Scenario) -> tuple[list[list[Finished]], Observed]:
    make_files(scenario.workdir / "data", SHARDS)
    program = scenario.script(PROGRAM, "train.py")
    job = str(random.randrange(10**6, 10**7))  # as a real cluster would, never reused
    done = [
        _step(scenario, program, job, "0"),
        _step(scenario, program, job, "0"),  # the same step runs the program again
        _step(scenario, program, job, "1", "fail"),
    ]
    for tasks in done[:2]:
        for task in tasks:
            task.check()
    assert [t.returncode for t in done[2]] == [0, 1]
    return done, scenario.observed()


def _said(tasks: list[Finished]) -> set[tuple[int | str, ...]]:
    return said_reads(*(task.stdout for task in tasks))


def test_three_launches_three_traces(launches):
    done, observed = launches
    traces = {observed.run_of_reads(_said(tasks)).trace_id for tasks in done}
    assert len(traces) == 3
    assert len(observed.runs) == 3, observed.summary()


@pytest.mark.parametrize("launch", [0, 1, 2], ids=["step", "step-again", "task-fails"])
def test_task_zero_is_the_root_and_task_one_its_peer(launches, launch):
    done, observed = launches
    run = observed.run_of_reads(_said(done[launch]))
    root, peer = sorted(run.processes, key=lambda p: p.rank)
    assert (root.rank, root.role, peer.rank, peer.role) == (0, "run", 1, "peer")
    assert root.span.parent_span_id == ""
    assert peer.span.parent_span_id == root.span.span_id
    for process in (root, peer):
        assert process.span.attributes[attr.PROVENANCE_RUN_JOINED_BY] == "launcher"
        resource = process.span.resource
        assert resource[attr.PROVENANCE_LAUNCHER_NAME] == "slurm"
        assert resource[attr.PROVENANCE_NODE_RANK] == process.rank
        assert resource[attr.PROVENANCE_WORLD_SIZE] == 2


@pytest.mark.parametrize("launch", [0, 1, 2], ids=["step", "step-again", "task-fails"])
def test_each_file_recorded_once_under_its_rank(launches, launch):
    done, observed = launches
    assert_each_read_recorded_once(observed, _said(done[launch]), SHARDS)


def test_failed_task_shows_the_error(launches):
    done, observed = launches
    run = observed.run_of_reads(_said(done[2]))
    by_rank = {p.rank: p for p in run.processes}
    assert by_rank[1].exit_code == 1 and by_rank[1].span.status_code == "Error"
    assert by_rank[1].span.attributes[attr.ERROR_TYPE] == "RuntimeError"
    assert by_rank[0].exit_code == 0
