"""clew's OpenTelemetry resource detector: where this process sits in a distributed run.

Registered as the `clew` entry point of the `opentelemetry_resource_detector` group, which
clew's distro adds to OTEL_EXPERIMENTAL_RESOURCE_DETECTORS (ahead of the user's own, so
theirs and OTEL_RESOURCE_ATTRIBUTES win on a conflict). The resource it detects carries
`host.name`, `process.command_args` (redacted, as on the process span: it names the run of
records whose process span never arrived, the process killed with SIGKILL) and, under a
launcher (torchrun, SLURM, Open MPI, PMIx, MPICH, the RANK /
WORLD_SIZE convention), `provenance.rank`, `provenance.local_rank`,
`provenance.world_size`, `provenance.node_rank`, `provenance.launcher.name` and
`provenance.launcher.run_id`. Every span of the process carries them, so a record names its
rank without a span attribute of its own.

Some of a process's place is learnt after start-up: a DataLoader worker learns its worker id
when its loop starts, a torchrun agent its node rank at rendezvous. `update_resource` adds
those to the running provider's resource.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource, ResourceDetector

from clew.semconv import attributes as attr

from . import _ranks
from ._process_span import command_args

_logger = logging.getLogger(__name__)


def placement_attributes(placement: _ranks.Placement, *, agent: bool) -> dict[str, str | int]:
    """The resource attributes of a placement. A torchrun agent is no rank: under srun its
    SLURM task id numbers nodes, so it keeps only the node rank and the launcher."""
    attributes = placement.resource_attributes()
    if agent:
        for name in (attr.PROVENANCE_RANK, attr.PROVENANCE_LOCAL_RANK, attr.PROVENANCE_WORLD_SIZE):
            attributes.pop(name, None)
    return attributes


class ClewResourceDetector(ResourceDetector):
    """Detects the host and the distributed-run placement from the launcher's environment."""

    def detect(self) -> Resource:
        attributes: dict[str, str | int | list[str]] = {
            attr.HOST_NAME: socket.gethostname(),
            attr.PROCESS_COMMAND_ARGS: command_args(),
        }
        attributes.update(placement_attributes(_ranks.detect(), agent=_ranks.is_elastic_agent()))
        return Resource(attributes)


def update_resource(attributes: Mapping[str, str | int]) -> bool:
    """Merge `attributes` into the running tracer provider's resource, for spans started from
    now on. False when the provider cannot (not the SDK's, or an SDK without the method).

    OpenTelemetry has no public way to refine a provider's resource; the SDK (1.45) refreshes
    it itself after a fork through `_update_resource`, which this reuses for what a process
    learns about itself after start-up.
    """
    provider = trace.get_tracer_provider()
    update = getattr(provider, "_update_resource", None)
    if not callable(update):
        _logger.debug("clew: the tracer provider cannot update its resource: %r", provider)
        return False
    update(Resource(dict(attributes)))
    return True
