"""A two-node run simulated on one machine: two torchrun agents, `--nnodes 2
--node-rank 0/1`, one rendezvous endpoint on 127.0.0.1, each started as its own
`opentelemetry-instrument torchrun` with no TRACEPARENT between them.

The agents agree on one trace at rendezvous (docs/distributed.md): both agents, both ranks
and every read are in it, under the right node and rank. The same launch again, with the
same --rdzv-id and endpoint, is another trace; so is a launch with the static rendezvous
and the default run id ("none"). In a fourth, the rank on node 1 fails: both nodes show
it, and the rank on node 0 keeps its records.
"""

from __future__ import annotations

import pytest
from distributed_support import (
    OTEL_INSTRUMENT,
    TORCHRUN,
    Finished,
    Observed,
    Scenario,
    assert_each_read_recorded_once,
    finish,
    make_files,
    said_reads,
)

from clew.semconv import attributes as attr
from clew_test_helpers import free_port

pytestmark = pytest.mark.integration

SHARDS = 6
TRAIN = """
import os, sys
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
paths = sorted(os.path.abspath(os.path.join("data", n)) for n in os.listdir("data"))
for path in paths[rank::world]:
    with open(path, "rb") as handle:
        handle.read()
    # One write per line: lines of concurrent processes never interleave.
    os.write(1, f"READ {rank} {os.getpid()} {path}\\n".encode())
if sys.argv[1:] == ["fail"] and rank == 1:
    raise RuntimeError("rank 1 gives up")
dist.barrier()
dist.destroy_process_group()
"""


def _two_agents(
    scenario: Scenario, script: str, rendezvous: list[str], *args: str
) -> list[Finished]:
    agents = [
        scenario.start(
            [OTEL_INSTRUMENT, TORCHRUN, "--nnodes", "2", "--node-rank", str(node),
             "--nproc-per-node", "1", *rendezvous, script, *args]
        )
        for node in (0, 1)
    ]
    return [finish(agent) for agent in agents]


def _static(port: int) -> list[str]:
    return ["--master-addr", "127.0.0.1", "--master-port", str(port)]


def _c10d(port: int) -> list[str]:
    return ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "job"]


@pytest.fixture(scope="module")
def launches(scenario: Scenario) -> tuple[list[list[Finished]], Observed]:
    make_files(scenario.workdir / "data", SHARDS)
    script = scenario.script(TRAIN, "train.py")
    port = free_port()
    done = [
        _two_agents(scenario, script, _c10d(port)),
        _two_agents(scenario, script, _c10d(port)),  # the same id and endpoint, reused
        _two_agents(scenario, script, _static(free_port())),  # the default run id, "none"
        _two_agents(scenario, script, _c10d(free_port()), "fail"),
    ]
    for agents in done[:3]:
        for agent in agents:
            agent.check()
    return done, scenario.observed()


def _said(agents: list[Finished]) -> set[tuple[int | str, ...]]:
    return said_reads(*(agent.stdout for agent in agents))


def test_each_launch_is_one_trace_and_launches_differ(launches):
    done, observed = launches
    traces = [observed.run_of_reads(_said(agents)).trace_id for agents in done]
    assert len(set(traces)) == 4, traces
    assert len(observed.runs) == 4, observed.summary()


@pytest.mark.parametrize("launch", [0, 1, 2], ids=["c10d", "c10d-reused-id", "static"])
def test_both_nodes_agents_and_ranks_in_the_trace(launches, launch):
    done, observed = launches
    said = _said(done[launch])
    run = observed.run_of_reads(said)
    agents = [p for p in run.processes if TORCHRUN in p.command]
    assert sorted(p.role for p in agents) == ["peer", "run"], [(p.pid, p.role) for p in agents]
    assert len(run.roots) == 1
    peer = next(p for p in agents if p.role == "peer")
    assert peer.span.parent_span_id == run.roots[0].span_id
    assert peer.span.attributes[attr.PROVENANCE_RUN_JOINED_BY] == "rendezvous"
    assert sorted(p.span.resource[attr.PROVENANCE_NODE_RANK] for p in agents) == [0, 1]
    ranks = sorted(
        (p.rank, p.span.resource[attr.PROVENANCE_NODE_RANK]) for p in run.processes
        if p.role == "exec"
    )
    assert ranks == [(0, 0), (1, 1)]


@pytest.mark.parametrize("launch", [0, 1, 2, 3], ids=["c10d", "c10d-reused-id", "static", "fail"])
def test_each_file_recorded_once_under_its_rank(launches, launch):
    done, observed = launches
    assert_each_read_recorded_once(observed, _said(done[launch]), SHARDS)


def test_failed_rank_shows_on_both_nodes_and_the_other_rank_is_whole(launches):
    done, observed = launches
    agents = done[3]
    assert all(agent.returncode == 1 for agent in agents), [a.stderr[-2000:] for a in agents]
    run = observed.run_of_reads(_said(agents))  # every rank's reads are there (test above)
    ranks = {p.rank: p for p in run.processes if p.role == "exec"}
    assert ranks[1].exit_code == 1 and ranks[1].span.status_code == "Error"
    assert ranks[1].span.attributes[attr.ERROR_TYPE] == "RuntimeError"
    assert ranks[0].exit_code not in (None, 0)  # its barrier failed with its peer gone
    agent_spans = [p for p in run.processes if TORCHRUN in p.command]
    assert sorted(p.exit_code for p in agent_spans) == [1, 1]
    # Each agent's exec span of its rank: rank 1's exit code 1, rank 0's failure too.
    codes = [
        s.attributes[attr.PROCESS_EXIT_CODE] for s in run.execs
        if s.attributes.get(attr.PROVENANCE_EXEC_TRACED)
    ]
    assert len(codes) == 2 and 1 in codes and 0 not in codes, codes
