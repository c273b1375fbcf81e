"""How a process finds the trace of its run (docs/distributed.md).

In order:

1. TRACEPARENT from an instrumented parent (a subprocess, a spawned worker, a rank of an
   instrumented torchrun agent): the process joins that trace. Certain.
2. A launch identity from the launcher's environment (SLURM job and step, the Open MPI job,
   a PMIx namespace, torchrun's or MASTER_ADDR/PORT): every rank derives the same trace id
   and root span id by hashing it, with the number of runs this rank has already started
   under that identity (a claim file on the node), so that `srun bash -c "python a.py;
   python b.py"` gives two runs. Rank 0's span is the root and has exactly those ids; the
   other ranks are peers under it.
3. A torchrun agent with none of these: its span waits for the rendezvous, where the agents
   of every node agree on one agent's ids through the rendezvous store (`_elastic`).
4. Otherwise a run of its own.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from opentelemetry import trace
from opentelemetry.context import Context

from clew.semconv import attributes as attr

from . import _ranks
from ._clew_io import clew_io
from ._process_span import inherited_context, new_ids, remote_context

_logger = logging.getLogger(__name__)

_Role = attr.ProvenanceProcessRoleValues
_JoinedBy = attr.ProvenanceRunJoinedByValues
_CLAIMS_DIRNAME = "clew-launches"
_MAX_CLAIMS = 10_000


class RunMembership(NamedTuple):
    """Where this process's span goes: its role, parent, ids, and how that was decided.
    (A NamedTuple: cheaper to define at start-up than a frozen dataclass.)"""

    role: str
    parent: Context | None
    root_ids: tuple[int, int] | None = None
    joined_by: str | None = None
    # A torchrun agent: the span starts at rendezvous, when the run's trace is agreed.
    deferred: bool = False


def derive_ids(identity: Sequence[str], sequence: int) -> tuple[int, int]:
    """The (trace id, root span id) every rank of one launch computes alike."""
    import hashlib  # only ranks of a launch get here: OpenSSL's loading is ~1 ms of start-up

    digest = hashlib.blake2b(digest_size=24, person=b"clew-run")
    digest.update("\x1f".join(identity).encode("utf-8", "surrogateescape"))
    digest.update(f"\x1e{sequence}".encode())
    raw = digest.digest()
    return int.from_bytes(raw[:16], "big") or 1, int.from_bytes(raw[16:], "big") or 1


def claim(identity: Sequence[str], rank: int, directory: str | None = None) -> int:
    """How many runs this rank started under `identity` before this one, counted by claim
    files in a node-local directory (the temp directory, per user). Creating a file with
    O_EXCL is atomic, so two processes never get the same number. 0 when nothing can be
    written there: sequential runs of one task may then share a trace."""
    import hashlib

    key = hashlib.blake2b("\x1f".join(identity).encode("utf-8", "surrogateescape"), digest_size=12)
    clew_io.active = True  # clew's own files, not the program's
    try:
        base = directory or os.path.join(tempfile.gettempdir(), f"{_CLAIMS_DIRNAME}-{os.getuid()}")
        os.makedirs(base, mode=0o700, exist_ok=True)
        for sequence in range(_MAX_CLAIMS):
            path = os.path.join(base, f"{key.hexdigest()}-{rank}-{sequence}")
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                continue
            return sequence
    except OSError as error:
        _logger.warning("clew: cannot count this rank's runs (%r); assuming the first", error)
    finally:
        clew_io.active = False
    return 0


def join_run(
    tracer: trace.Tracer,
    environ: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
) -> RunMembership:
    """Decide where this process's span goes."""
    placement = _ranks.detect(environ)
    parent, from_clew = inherited_context()
    if parent is not None:
        if from_clew:
            return RunMembership(_Role.EXEC.value, parent, joined_by=_JoinedBy.TRACEPARENT.value)
        # Someone else's trace (a CI job's, a workflow engine's): each rank of a run under it
        # is that run's, and only rank 0 is the run itself.
        if placement.rank:
            return RunMembership(_Role.PEER.value, parent, joined_by=_JoinedBy.TRACEPARENT.value)
        return RunMembership(_Role.RUN.value, parent)
    if placement.identity and placement.rank is not None:
        ids = derive_ids(placement.identity, claim(placement.identity, placement.rank))
        if placement.rank == 0:
            return RunMembership(_Role.RUN.value, None, root_ids=ids, joined_by=placement.joined_by)
        return RunMembership(_Role.PEER.value, remote_context(*ids), joined_by=placement.joined_by)
    if _ranks.is_elastic_agent(argv):
        return RunMembership(_Role.RUN.value, None, root_ids=new_ids(tracer), deferred=True)
    return RunMembership(_Role.RUN.value, None)
