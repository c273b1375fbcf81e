"""Metric points from the hooks, into this process's recorder.

The tracker hooks (MLflow, W&B, TensorBoard, transformers) call `record_metric` on the
program's threads for each value the program logs; the recorder emits the points as
`metrics` spans at its flushes and at exit (`_metric_points`). The MLflow and W&B hooks also
name each run the program starts (`record_tracker_run`), so a run that logs nothing is named.
"""

from __future__ import annotations

import numbers

from ._guard import guard
from ._lifecycle import get_recorder
from ._metric_points import metric_value


def record_metric(source: str, name: str, value: float, step: int | None = None, *,
                  uri: str | None = None, tracker_run: str | None = None) -> None:
    """Record one point of metric `name` from `source` (a `provenance.metric.source` value).

    A value that is not a finite real number is skipped (a bool is no metric); a step that is
    not an integer counts as none. Never raises into the program."""
    with guard("recording a metric"):
        number = metric_value(value)
        if number is None or not isinstance(name, str):
            return
        if isinstance(step, numbers.Integral) and not isinstance(step, bool):
            step_number = int(step)
        else:
            step_number = -1
        get_recorder().metric((source, uri, tracker_run), name, number, step_number)


def record_tracker_run(source: str, tracker_run: str) -> None:
    """Name the tracker run `tracker_run` (`mlflow:<run_id>`, ...) the program started or
    resumed, by a `metrics` span of `source` at the next flush, whether or not it logs a
    metric. Never raises into the program."""
    with guard("recording a tracker run"):
        get_recorder().tracker_run((source, None, tracker_run))

