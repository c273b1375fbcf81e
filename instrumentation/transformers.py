"""Records the metrics a transformers `Trainer` logs.

`Trainer.log` is where every logging and evaluation step's values pass (`loss`,
`learning_rate`, `grad_norm`, `eval_*`, `train_runtime`, ..., and the `epoch` it adds), on
their way to the trainer's log history (`trainer_state.json`) and the reporting callbacks;
it is wrapped, and each numeric value of the history entry it adds is recorded with source
`transformers` at that entry's step, the trainer's `state.global_step`, by the world's first
process of a distributed run. A value the callbacks also send to a tracker (MLflow, W&B, TensorBoard)
is recorded by that tracker's hook too, under its own source. transformers is patched when
the program imports its trainer, never imported by clew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

from clew.instrumentation.package import _instruments_transformers
from clew.semconv import attributes as attr

from ._guard import guard
from ._instrumentor import ClewInstrumentor, recording
from ._trackers import record_points

SOURCE = attr.ProvenanceMetricSourceValues.TRANSFORMERS.value


class TransformersInstrumentor(ClewInstrumentor):
    """Instrumentor for the metrics a transformers Trainer logs."""

    _instruments = _instruments_transformers

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        return {"transformers.trainer": self._patch_trainer}

    def _patch_trainer(self, module: ModuleType) -> None:
        self.wrap(module.Trainer, "log", self._log)

    def _log(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
        if not recording() or not self.active:
            return wrapped(*args, **kwargs)
        history = getattr(getattr(instance, "state", None), "log_history", None)
        logged = len(history) if isinstance(history, list) else None
        result = wrapped(*args, **kwargs)
        with guard("Trainer.log"):
            # The entry this call added to the log history: its logs as Trainer.log completed
            # them (the epoch added) and before the callbacks saw them (the progress callback
            # pops `total_flos` from the logs), with the step. In the world's first process
            # only, like the reporting callbacks and the state file: every rank logs the same
            # (gathered) values.
            if logged is not None and len(history) > logged and instance.state.is_world_process_zero:
                entry = dict(history[-1])
                step = entry.pop("step", instance.state.global_step)
                record_points(SOURCE, entry, step)
        return result
