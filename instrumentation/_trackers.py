"""What the hooks on metric-logging calls share (MLflow, W&B, TensorBoard, transformers): the
values a program logs as metric points, and clew's run id for the trackers' side of the link
between a clew run and a tracker's run.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping

from opentelemetry import trace

from ._lifecycle import get_recorder
from ._metrics import record_metric

CLEW_RUN_ID_KEY = "clew.run_id"
"""The MLflow run tag and the W&B run config key that name the clew run."""


def clew_run_id() -> str | None:
    """This process's run id (its trace id, as `provenance.run.id` has it); None while the
    process does not know its run yet (a torchrun agent before its rendezvous)."""
    ids = get_recorder().process.ids()
    return trace.format_trace_id(ids[0]) if ids else None


def scalar(value: object) -> object:
    """A one-element tensor or array (torch, numpy, jax) as its Python number, which is what
    the trackers log for it; anything else as it is."""
    if isinstance(value, numbers.Number):
        return value
    numel = getattr(value, "numel", None)  # torch's count of elements; numpy's is `size`
    count = numel() if callable(numel) else getattr(value, "size", None)
    item = getattr(value, "item", None)
    return item() if count == 1 and callable(item) else value


def leaves(data: Mapping, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted name, value) of each leaf of a mapping whose values may be mappings. Not
    `_structured_files.leaves`, which walks into lists as a file's document has them: a list
    a program logs to a tracker is one value (a histogram, a table), not a metric per item."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from leaves(value, f"{name}.")
        else:
            yield name, scalar(value)


def record_points(
    source: str, data: Mapping, step: object, tracker_run: str | None = None
) -> None:
    """Record each numeric leaf of `data` as a point of `source` at `step` (non-numeric
    values, media and tables among them, are no metrics and are skipped)."""
    step = scalar(step)
    for name, value in leaves(data):
        record_metric(source, name, value, step, tracker_run=tracker_run)  # type: ignore[arg-type]
