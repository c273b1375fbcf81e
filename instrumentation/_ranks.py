"""Where a process sits in a distributed run, read from its launcher's environment.

Two separate questions are answered, because the launcher that numbers the ranks is not
always the one that identifies the launch: under `srun torchrun`, torchrun numbers the
training ranks (RANK) while SLURM's job and step identify the launch.

- The placement (rank, local rank, world size, node rank): the innermost launcher that sets
  per-rank variables wins — torchrun and the RANK/WORLD_SIZE convention (DeepSpeed,
  Accelerate, Lightning), then Open MPI, PMIx, MPICH/Hydra, and SLURM last.
- The launch identity: values every rank of one launch sees, on every node, and that tell it
  from other launches. The outermost launcher wins, SLURM first, since its job and step ids
  are unique by SLURM's guarantee; MASTER_ADDR/MASTER_PORT and rendezvous ids are heuristic,
  as a later launch may repeat them (docs/distributed.md).

Reading the environment costs microseconds and imports nothing: this runs in every
instrumented process at start-up.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clew.semconv import attributes as attr

LauncherName = attr.ProvenanceLauncherNameValues
JoinedBy = attr.ProvenanceRunJoinedByValues

# Open MPI 4 (ORTE) gives every rank a random per-job key for its PSM transports; Open MPI 5
# (PRRTE) renamed the prefix. Either is the same on every node and new on every launch.
_OMPI_JOB_KEYS = (
    "OMPI_MCA_orte_precondition_transports",
    "OMPI_MCA_prte_precondition_transports",
    "OMPI_MCA_ess_base_jobid",
    "OMPI_MCA_orte_hnp_uri",
)


@dataclass(frozen=True)
class Placement:
    """This process's place in a distributed run, and what identifies the launch."""

    launcher: str | None = None
    rank: int | None = None
    local_rank: int | None = None
    world_size: int | None = None
    node_rank: int | None = None
    # The launcher's own name for the run (torchrun's rendezvous id, SLURM job.step); users
    # reuse it, so it never identifies a run alone.
    run_id: str | None = None
    # Values every rank of this launch sees and other launches do not (or, when `joined_by`
    # is heuristic, rarely do); empty when the launcher offers none.
    identity: tuple[str, ...] = ()
    joined_by: str | None = None

    @property
    def distributed(self) -> bool:
        return self.launcher is not None

    def resource_attributes(self) -> dict[str, str | int]:
        """The placement as resource attributes (semconv names), without unknown values."""
        values = {
            attr.PROVENANCE_RANK: self.rank,
            attr.PROVENANCE_LOCAL_RANK: self.local_rank,
            attr.PROVENANCE_WORLD_SIZE: self.world_size,
            attr.PROVENANCE_NODE_RANK: self.node_rank,
            attr.PROVENANCE_LAUNCHER_NAME: self.launcher,
            attr.PROVENANCE_LAUNCHER_RUN_ID: self.run_id,
        }
        return {key: value for key, value in values.items() if value is not None}


def _int(environ: Mapping[str, str], *names: str) -> int | None:
    """The first of `names` that holds an integer; a malformed value counts as absent."""
    for name in names:
        raw = environ.get(name)
        if raw is None:
            continue
        try:
            return int(raw.strip())
        except ValueError:
            continue
    return None


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return None


# -- placement ------------------------------------------------------------------------------


def _placement(environ: Mapping[str, str]) -> Placement | None:
    rank = _int(environ, "RANK")
    if rank is not None and "TORCHELASTIC_RUN_ID" in environ:
        return Placement(
            launcher=LauncherName.TORCHELASTIC.value,
            rank=rank,
            local_rank=_int(environ, "LOCAL_RANK"),
            world_size=_int(environ, "WORLD_SIZE"),
            node_rank=_int(environ, "GROUP_RANK", "NODE_RANK"),
            run_id=environ["TORCHELASTIC_RUN_ID"],
        )
    if rank is not None and _int(environ, "WORLD_SIZE") is not None:
        return Placement(
            launcher=LauncherName.ENV.value,
            rank=rank,
            local_rank=_int(environ, "LOCAL_RANK"),
            world_size=_int(environ, "WORLD_SIZE"),
            node_rank=_int(environ, "NODE_RANK", "GROUP_RANK"),
        )
    rank = _int(environ, "OMPI_COMM_WORLD_RANK")
    if rank is not None:
        return Placement(
            launcher=LauncherName.OPENMPI.value,
            rank=rank,
            local_rank=_int(environ, "OMPI_COMM_WORLD_LOCAL_RANK"),
            world_size=_int(environ, "OMPI_COMM_WORLD_SIZE"),
            # OMPI_COMM_WORLD_NODE_RANK is a rank within the node, not the node's index,
            # which Open MPI does not put in the environment.
            run_id=_first(environ, "OMPI_MCA_ess_base_jobid", "PMIX_NAMESPACE"),
        )
    rank = _int(environ, "PMIX_RANK")
    if rank is not None and "SLURM_PROCID" not in environ:
        return Placement(
            launcher=LauncherName.PMIX.value,
            rank=rank,
            run_id=environ.get("PMIX_NAMESPACE"),
        )
    rank = _int(environ, "PMI_RANK")
    if rank is not None:
        return Placement(
            launcher=LauncherName.MPICH.value,
            rank=rank,
            local_rank=_int(environ, "MPI_LOCALRANKID", "PMI_LOCAL_RANK"),
            world_size=_int(environ, "PMI_SIZE"),
        )
    slurm = _slurm_step(environ)
    rank = _int(environ, "SLURM_PROCID")
    if slurm is not None and rank is not None:
        return Placement(
            launcher=LauncherName.SLURM.value,
            rank=rank,
            local_rank=_int(environ, "SLURM_LOCALID"),
            world_size=_int(environ, "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS"),
            node_rank=_int(environ, "SLURM_NODEID"),
            run_id=f"{slurm[0]}.{slurm[1]}",
        )
    return None


def _slurm_step(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(job id, step id) of an srun step. A batch script's own step is no distributed launch:
    it has no step id, and its SLURM_NTASKS counts the allocation, not its processes."""
    job = _first(environ, "SLURM_JOB_ID", "SLURM_JOBID")
    step = _first(environ, "SLURM_STEP_ID", "SLURM_STEPID")
    if job is None or step is None:
        return None
    return job, step


# -- launch identity ------------------------------------------------------------------------


def _identity(environ: Mapping[str, str], placement: Placement) -> tuple[tuple[str, ...], str]:
    """(identity, how certain it is) of the launch, outermost launcher first."""
    slurm = _slurm_step(environ)
    if slurm is not None:
        # Job ids are unique within a cluster; a requeued job keeps its id and counts restarts.
        return (
            "slurm",
            environ.get("SLURM_CLUSTER_NAME", ""),
            *slurm,
            environ.get("SLURM_RESTART_COUNT", "0"),
            environ.get("SLURM_JOB_START_TIME", ""),
        ), JoinedBy.LAUNCHER.value
    ompi = tuple(environ.get(name, "") for name in _OMPI_JOB_KEYS)
    if any(ompi[:2]):
        return ("openmpi", *ompi), JoinedBy.LAUNCHER.value
    if any(ompi[2:]):
        return ("openmpi", *ompi), JoinedBy.HEURISTIC.value
    namespace = environ.get("PMIX_NAMESPACE")
    if namespace:
        return ("pmix", namespace), JoinedBy.HEURISTIC.value
    master = (environ.get("MASTER_ADDR", ""), environ.get("MASTER_PORT", ""))
    if placement.launcher == LauncherName.TORCHELASTIC.value:
        return ("torchelastic", placement.run_id or "", *master), JoinedBy.HEURISTIC.value
    if placement.launcher == LauncherName.ENV.value and all(master):
        return ("env", *master, str(placement.world_size)), JoinedBy.HEURISTIC.value
    return (), ""


def detect(environ: Mapping[str, str] | None = None) -> Placement:
    """This process's placement and launch identity; an empty Placement outside a
    distributed launch."""
    environ = os.environ if environ is None else environ
    placement = _placement(environ)
    if placement is None:
        return Placement()
    identity, joined_by = _identity(environ, placement)
    return Placement(
        launcher=placement.launcher,
        rank=placement.rank,
        local_rank=placement.local_rank,
        world_size=placement.world_size,
        node_rank=placement.node_rank,
        run_id=placement.run_id,
        identity=identity,
        joined_by=joined_by or None,
    )


# -- the torchrun agent ---------------------------------------------------------------------

_AGENT_MODULES = ("torch.distributed.run", "torch.distributed.launch")


def is_elastic_agent(argv: Sequence[str] | None = None) -> bool:
    """Whether this process is a torchrun agent (`torchrun ...` or `python -m
    torch.distributed.run ...`): it launches ranks and is none itself."""
    argv = list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)
    for index, word in enumerate(argv[:-1]):
        if word == "-m" and argv[index + 1] in _AGENT_MODULES:
            return True
    return any(os.path.basename(word) == "torchrun" for word in argv[:2])
