"""Metric points from the hooks, into this process's recorder.

The tracker hooks (MLflow, W&B, TensorBoard, transformers) call `record_metric` on the
program's threads for each value the program logs; the recorder emits the points as
`metrics` spans at its flushes and at exit (`_metric_points`).
"""

from __future__ import annotations

import math
import numbers

from ._guard import guard
from ._lifecycle import get_recorder


def record_metric(source: str, name: str, value: float, step: int | None = None, *,
                  uri: str | None = None, tracker_run: str | None = None) -> None:
    """Record one point of metric `name` from `source` (a `provenance.metric.source` value).

    A value that is not a finite real number is skipped (a bool is no metric); a step that is
    not an integer counts as none. Never raises into the program."""
    with guard("recording a metric"):
        number = _finite(value)
        if number is None or not isinstance(name, str):
            return
        if isinstance(step, numbers.Integral) and not isinstance(step, bool):
            step_number = int(step)
        else:
            step_number = -1
        get_recorder().metric((source, uri, tracker_run), name, number, step_number)


def _finite(value: object) -> float | None:
    """`value` as a float when it is a finite real number (numpy's scalars included)."""
    kind = type(value)
    if kind is not float and kind is not int:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a double
        return None
    return number if math.isfinite(number) else None
