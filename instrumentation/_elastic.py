"""A torchrun agent joins its run's trace at rendezvous, and labels itself with its node.

One agent per node (`torchrun --nnodes 2`), each started on its own: nothing they share
before the rendezvous tells one launch from the next, as users reuse rendezvous ids and
leave them at their default. So an agent's span waits (`_joining`), and once the
rendezvous is complete each agent proposes its own ids in the rendezvous store with an
atomic compare-and-set: the first proposal stands, every agent reads it, and its proposer
is the run's root while the others join as its peers. The store's keys are scoped by torch
to this rendezvous and round, so a later launch, even with the same id, never sees them.
The ranks then inherit TRACEPARENT from their agent as any instrumented child does.
"""

from __future__ import annotations

from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from clew.semconv import attributes as attr

from ._guard import guard
from ._lifecycle import get_recorder
from ._process_span import ProcessSpan, remote_context
from .resource import update_resource

_Role = attr.ProvenanceProcessRoleValues
_JoinedBy = attr.ProvenanceRunJoinedByValues
STORE_KEY = "clew.run"  # in torch's PrefixStore for this rendezvous round
_active = False
# The run's (trace id, root span id) once agreed: proposed again in later rounds, so that a
# node joining an elastic run then adopts it if the agents already in the run come first.
_agreed: tuple[int, int] | None = None


def _format(ids: tuple[int, int]) -> str:
    return f"{ids[0]:032x}-{ids[1]:016x}"


def _parse(value: bytes | str) -> tuple[int, int]:
    text = value.decode("ascii") if isinstance(value, bytes) else value
    trace_id, span_id = text.strip().split("-")
    return int(trace_id, 16), int(span_id, 16)


def agree(store: Any, proposal: tuple[int, int]) -> tuple[int, int]:
    """The ids of the first agent to propose, through the rendezvous store."""
    return _parse(store.compare_set(STORE_KEY, "", _format(proposal)))


def _join_at_rendezvous(process: ProcessSpan, store: Any) -> None:
    global _agreed
    proposal = process.ids()
    if proposal is None:
        return
    winner = _agreed = agree(store, proposal)
    joined_by = _JoinedBy.RENDEZVOUS.value
    if winner == proposal:
        placed = process.adopt(_Role.RUN.value, None, root_ids=winner, joined_by=joined_by)
    else:
        placed = process.adopt(
            _Role.PEER.value, remote_context(*winner), root_ids=None, joined_by=joined_by
        )
    if not placed and winner != proposal:
        # Something made this agent start its span before the rendezvous: its node's
        # records stay in a trace of their own. Said on the span, never silently.
        raise RuntimeError(
            f"the agent's span started before the rendezvous; the run's trace is "
            f"{winner[0]:032x}, this node's {proposal[0]:032x}"
        )


def _after_rendezvous(agent: Any, worker_group: Any) -> None:
    recorder = get_recorder()
    process = recorder.process
    spec = worker_group.spec
    update_resource(
        {
            attr.PROVENANCE_NODE_RANK: int(worker_group.group_rank),
            attr.PROVENANCE_LAUNCHER_NAME: attr.ProvenanceLauncherNameValues.TORCHELASTIC.value,
            attr.PROVENANCE_LAUNCHER_RUN_ID: str(spec.rdzv_handler.get_run_id()),
        }
    )
    # Only an agent that found no trace at start (no TRACEPARENT, no SLURM or MPI identity)
    # is a parentless run without `joined_by`; on a later round (a restart) it has one and
    # keeps its trace.
    if process.joined_by is None and process.role == _Role.RUN.value and not process.has_parent:
        if int(worker_group.group_world_size) > 1:
            _join_at_rendezvous(process, worker_group.store)
    elif _agreed is not None:
        agree(worker_group.store, _agreed)
    process.context()  # started now: the ranks inherit it


def _rendezvous(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
    result = wrapped(*args, **kwargs)
    if _active:
        worker_group = args[0] if args else kwargs.get("worker_group")
        with guard("torchrun rendezvous"):
            _after_rendezvous(instance, worker_group)
    return result


def patch(module: Any) -> None:
    """Post-import hook for torch.distributed.elastic.agent.server.api."""
    global _active
    _active = True
    agent = module.SimpleElasticAgent
    if not isinstance(agent.__dict__.get("_rendezvous"), wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(agent, "_rendezvous", _rendezvous)


def unpatch(module: Any) -> None:
    global _active
    _active = False
    unwrap(module.SimpleElasticAgent, "_rendezvous")
