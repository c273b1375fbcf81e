"""A torch DataLoader with num_workers=2 over a file dataset, in a rank (RANK=0,
WORLD_SIZE=1, as DeepSpeed or Accelerate set them): each worker's reads are recorded once,
under the rank and with the worker's id, and reach the spool however the worker ends.

Workers are forked, spawned or forked by a forkserver (multiprocessing_context), with and
without persistent_workers. Persistent workers outlive the loop and are terminated by their
parent at exit, which torch's own SIGTERM handler turns into an immediate `_exit(0)`: they
must flush first and still exit quietly. A worker killed with SIGKILL cannot flush; the run
then fails, and the other worker's records and the main process's are whole. `clew impact`
of a data file names, on each run's read of it, the worker (id and pid) that read it.
"""

from __future__ import annotations

import pytest
from distributed_support import (
    OTEL_INSTRUMENT,
    PYTHON,
    Finished,
    Observed,
    Scenario,
    make_files,
    said_reads,
)

from clew.semconv import attributes as attr
from clew_test_helpers import file_uri, invoke_clew

pytestmark = pytest.mark.integration

FILES = 16
PROGRAM = """
import os, signal, sys, time
import torch
from torch.utils.data import DataLoader, Dataset


class Files(Dataset):
    def __init__(self, paths, kill):
        self.paths, self.kill = paths, kill

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        with open(self.paths[index], "rb") as handle:
            size = len(handle.read())
        worker = torch.utils.data.get_worker_info().id
        # One write per line: lines of concurrent processes never interleave.
        os.write(1, f"READ {worker} {os.getpid()} {self.paths[index]}\\n".encode())
        if self.kill and worker == 0:
            open("worker0.read", "w").close()
        if self.kill and worker == 1:
            while not os.path.exists("worker0.read"):  # so that worker 0 has records
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGKILL)
        return size


if __name__ == "__main__":
    context, persistent = sys.argv[1], sys.argv[2] == "persistent"
    kill = sys.argv[3:] == ["kill"]
    paths = sorted(os.path.abspath(os.path.join("data", n)) for n in os.listdir("data"))
    loader = DataLoader(
        Files(paths, kill),
        batch_size=2,
        num_workers=2,
        multiprocessing_context=None if context == "fork" else context,
        persistent_workers=persistent,
    )
    for epoch in range(2 if persistent else 1):
        total = sum(int(batch.sum()) for batch in loader)
    print("DONE", total, flush=True)
"""
MODES = [
    ("fork", "transient"),
    ("fork", "persistent"),
    ("spawn", "transient"),
    ("spawn", "persistent"),
    ("forkserver", "transient"),
    ("forkserver", "persistent"),
]
IDS = [f"{context}-{lifetime}" for context, lifetime in MODES]


@pytest.fixture(scope="module")
def launches(scenario: Scenario) -> tuple[dict[tuple[str, ...], Finished], Observed]:
    make_files(scenario.workdir / "data", FILES)
    program = scenario.script(PROGRAM, "load.py")
    env = scenario.env(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    done = {
        mode: scenario.run([OTEL_INSTRUMENT, PYTHON, program, *mode], env)
        for mode in [*MODES, ("fork", "transient", "kill")]
    }
    return done, scenario.observed()


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_program_unchanged(launches, mode):
    done, _ = launches
    finished = done[mode].check()
    assert "DONE" in finished.stdout
    assert "killed by signal" not in finished.stderr, finished.stderr[-2000:]


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_each_read_recorded_once_under_rank_and_worker(launches, mode):
    done, observed = launches
    said = said_reads(done[mode].stdout)
    assert len({uri for *_, uri in said}) == FILES, done[mode].stdout
    run = observed.run_of_reads(said)
    recorded = {
        (a.worker, a.pid, a.uri) for a in run.accesses() if a.uri.endswith(".bin") and a.rank == 0
    }
    assert said <= recorded, f"said but not recorded: {sorted(said - recorded)[:4]}"
    assert not run.duplicates(), run.duplicates()


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_workers_are_processes_of_the_run(launches, mode):
    done, observed = launches
    said = said_reads(done[mode].stdout)
    run = observed.run_of_reads(said)
    assert len(observed.runs) == len(done), observed.summary()  # one trace per program
    workers = {pid: worker for worker, pid, _ in said}
    assert sorted(set(workers.values())) == [0, 1]
    expected_role = "exec" if mode[0] == "spawn" else "fork"
    for pid, worker in workers.items():
        process = run.process(pid)
        assert process.role == expected_role
        assert process.span.attributes[attr.PROVENANCE_WORKER_ID] == worker
        assert process.exit_code == 0


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_clew_spool_labels_each_worker_with_its_id(launches, scenario, mode):
    done, observed = launches
    said = said_reads(done[mode].stdout)
    run = observed.run_of_reads(said)
    result = invoke_clew(scenario.home, scenario.workdir, "spool", run.trace_id, "--format",
                         "json")
    assert result.code == 0, result.err
    (shown,) = result.json()["runs"]
    workers = {p["pid"]: (p["role"], p["worker_id"]) for p in shown["processes"]
               if p["worker_id"] is not None}
    assert workers == {pid: ("dataloader-worker", worker) for worker, pid, _ in said}


def test_killed_worker_fails_the_run_and_the_rest_is_whole(launches):
    done, observed = launches
    finished = done[("fork", "transient", "kill")]
    assert finished.returncode == 1
    said = said_reads(finished.stdout)
    survivor = {entry for entry in said if entry[0] == 0}
    run = observed.run_of_reads(survivor)
    recorded = {(a.worker, a.pid, a.uri) for a in run.accesses() if a.uri.endswith(".bin")}
    assert survivor and survivor <= recorded, sorted(survivor - recorded)[:4]
    assert len(run.roots) == 1
    root = run.roots[0]
    assert root.status_code == "Error" and root.attributes[attr.PROCESS_EXIT_CODE] == 1
    assert root.attributes[attr.ERROR_TYPE] == "RuntimeError"
    # torch says "killed by signal" or "exited unexpectedly", as its checks race.
    assert "DataLoader worker" in root.attributes[attr.PROVENANCE_EXCEPTION_MESSAGE]


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_impact_names_the_worker_that_read_the_file(launches, scenario, mode):
    done, observed = launches
    said = said_reads(done[mode].stdout)
    run = observed.run_of_reads(said)
    path = sorted((scenario.workdir / "data").iterdir())[0]
    # a persistent worker reads the file again in the second epoch: the same process
    expected = [{"pid": pid, "rank": 0, "worker": worker}
                for worker, pid, uri in sorted(said) if uri == file_uri(path)]
    shown = invoke_clew(scenario.home, scenario.workdir, "impact", str(path), "--format",
                        "json")
    assert shown.code == 0, shown.err
    (edge,) = [e for e in shown.json()["edges"] if e["kind"] == "read"
               and e["target"] == run.trace_id]
    assert (edge["readers"], edge["reader_count"]) == (expected, 1), edge
    text = invoke_clew(scenario.home, scenario.workdir, "impact", str(path))
    (reader,) = expected
    assert (f"read by rank 0, DataLoader worker {reader['worker']}, pid {reader['pid']}"
            in text.out), text.out
