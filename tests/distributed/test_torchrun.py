"""`opentelemetry-instrument torchrun --nproc-per-node 2`: the agent is instrumented,
its ranks inherit TRACEPARENT from their exec spans, and each rank's DataLoader workers
(fork, num_workers=2) record under the rank with their worker id.

Two launches with the same --rdzv-id: the first trains (each rank reads its own shard, rank
0 writes a checkpoint), the second fails in rank 1 after reading its shard. Every file a
worker says it read must be recorded once, by that worker, under its rank; the failure must
show on the failed rank, its exec span and the agent, and rank 0's records stay whole. A
third launch instruments only the ranks (`torchrun --no-python opentelemetry-instrument
python ...`): they meet by torchrun's variables, rank 0 the root and rank 1 its peer.
"""

from __future__ import annotations

import pytest
from distributed_support import (
    OTEL_INSTRUMENT,
    PYTHON,
    TORCHRUN,
    Run,
    Scenario,
    make_files,
    said_reads,
)

from clew.semconv import attributes as attr
from clew_test_helpers import file_uri, invoke_clew

pytestmark = pytest.mark.integration

SHARDS = 12
TRAIN = """
import os, sys
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset


class Files(Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        with open(self.paths[index], "rb") as handle:
            size = len(handle.read())
        worker = torch.utils.data.get_worker_info().id
        # One write per line: lines of concurrent processes never interleave.
        line = f"READ {os.environ['RANK']} {worker} {os.getpid()} {self.paths[index]}\\n"
        os.write(1, line.encode())
        return size


dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
paths = sorted(os.path.abspath(os.path.join("data", n)) for n in os.listdir("data"))
total = 0
for batch in DataLoader(Files(paths[rank::world]), batch_size=2, num_workers=2):
    total += int(batch.sum())
if sys.argv[1:] == ["fail"] and rank == 1:
    raise RuntimeError("rank 1 gives up")
dist.barrier()
if rank == 0:
    torch.save({"total": total}, "checkpoint.pt")
dist.barrier()
dist.destroy_process_group()
"""


def _launch(scenario: Scenario, script: str, *args: str):
    command = [OTEL_INSTRUMENT, TORCHRUN, "--nproc-per-node", "2", "--rdzv-id", "reused"]
    return scenario.run([*command, script, *args])


@pytest.fixture(scope="module")
def launches(scenario: Scenario):
    make_files(scenario.workdir / "data", SHARDS)
    script = scenario.script(TRAIN, "train.py")
    first = _launch(scenario, script).check()
    second = _launch(scenario, script, "fail")
    assert second.returncode != 0, second.stderr[-3000:]
    ranks_only = scenario.run(
        [TORCHRUN, "--nproc-per-node", "2", "--no-python", OTEL_INSTRUMENT, PYTHON, script]
    ).check()
    observed = scenario.observed()
    return first, second, observed, ranks_only


def _assert_recorded_as_said(run: Run, said: set) -> None:
    recorded = {(a.rank, a.worker, a.pid, a.uri) for a in run.accesses() if a.uri.endswith(".bin")}
    assert said <= recorded, f"said but not recorded: {sorted(said - recorded)[:5]}"
    assert not run.duplicates(), run.duplicates()


def test_two_launches_two_traces(launches):
    first, second, observed, _ = launches
    said_first, said_second = said_reads(first.stdout), said_reads(second.stdout)
    assert len({uri for *_, uri in said_first}) == SHARDS
    assert observed.run_of_reads(said_first).trace_id != observed.run_of_reads(said_second).trace_id
    assert len(observed.runs) == 3, observed.summary()


def test_one_trace_holds_agent_ranks_and_workers(launches):
    first, _, observed, _ = launches
    run = observed.run_of_reads(said_reads(first.stdout))
    assert len(run.roots) == 1, "one run span: the agent's"
    agent = run.process(run.roots[0].attributes[attr.PROCESS_PID])
    assert agent.role == "run" and TORCHRUN in agent.command
    ranks = sorted((p.rank, p.role) for p in run.processes if p.role == "exec")
    assert ranks == [(0, "exec"), (1, "exec")]
    workers = sorted(
        (p.rank, p.span.attributes[attr.PROVENANCE_WORKER_ID])
        for p in run.processes
        if p.role == "fork"
    )
    assert workers == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for process in run.processes:
        if process.role != "run":  # the agent is no rank
            assert process.span.resource[attr.PROVENANCE_WORLD_SIZE] == 2


def test_each_file_recorded_once_under_its_rank_and_worker(launches):
    first, _, observed, _ = launches
    said = said_reads(first.stdout)
    run = observed.run_of_reads(said)
    _assert_recorded_as_said(run, said)
    for rank, _worker, _pid, uri in said:
        index = int(uri.rsplit("-", 1)[1].split(".")[0])
        assert index % 2 == rank, f"{uri} belongs to rank {index % 2}'s shard"


def test_rank_zero_writes_the_checkpoint(launches, scenario):
    first, _, observed, ranks_only = launches
    run = observed.run_of_reads(said_reads(first.stdout))
    checkpoint = file_uri(scenario.workdir / "checkpoint.pt")
    writes = [a for a in run.accesses("write") if a.uri == checkpoint]
    assert len(writes) == 1, writes
    assert writes[0].rank == 0 and writes[0].worker is None
    assert run.process(writes[0].pid).role == "exec"
    # its lineage names, on each shard's read, the rank and worker that read it
    shown = invoke_clew(scenario.home, scenario.workdir, "lineage", "checkpoint.pt",
                        "--format", "json")
    assert shown.code == 0, shown.err
    document = shown.json()
    (producer,) = [e["source"] for e in document["edges"] if e["target"] == document["root"]]
    (said,) = [said for said in map(said_reads, (first.stdout, ranks_only.stdout))
               if observed.run_of_reads(said).trace_id == producer]
    readers = {e["source"].split("@")[0]: [(r["rank"], r["worker"], r["pid"])
                                           for r in e["readers"]]
               for e in document["edges"] if e["kind"] == "read" and e["target"] == producer}
    assert {uri: readers.get(uri) for *_, uri in said} == {
        uri: [(rank, worker, pid)] for rank, worker, pid, uri in said}


def test_failed_rank_shows_and_the_others_stay_whole(launches):
    _, second, observed, _ = launches
    said = said_reads(second.stdout)
    assert {rank for rank, *_ in said} == {0, 1}
    run = observed.run_of_reads(said)
    _assert_recorded_as_said(run, said)  # rank 0, ended by its peer's failure, is whole

    failed = [p for p in run.processes if p.rank == 1 and p.role == "exec"]
    assert len(failed) == 1 and failed[0].exit_code == 1
    assert failed[0].span.status_code == "Error"
    assert failed[0].span.attributes[attr.ERROR_TYPE] == "RuntimeError"
    exec_codes = sorted(s.attributes.get(attr.PROCESS_EXIT_CODE) for s in run.execs
                        if s.attributes.get(attr.PROVENANCE_EXEC_TRACED))
    assert 1 in exec_codes, exec_codes  # the agent saw rank 1 exit with 1
    agent = run.roots[0]
    assert agent.attributes[attr.PROCESS_EXIT_CODE] == second.returncode == 1
    assert agent.status_code == "Error"


def test_ranks_of_an_uninstrumented_agent_meet_by_its_variables(launches):
    *_, observed, ranks_only = launches
    said = said_reads(ranks_only.stdout)
    run = observed.run_of_reads(said)
    _assert_recorded_as_said(run, said)
    by_rank = {p.rank: p for p in run.processes if p.role in ("run", "peer")}
    assert (by_rank[0].role, by_rank[1].role) == ("run", "peer")
    assert by_rank[1].span.parent_span_id == by_rank[0].span.span_id
    assert by_rank[1].span.attributes[attr.PROVENANCE_RUN_JOINED_BY] == "heuristic"
    assert not any(TORCHRUN in p.command for p in run.processes)  # the agent is not recorded
