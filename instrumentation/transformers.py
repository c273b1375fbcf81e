"""Records the metrics a transformers `Trainer` logs.

`Trainer.log` is where every logging and evaluation step's values pass (`loss`,
`learning_rate`, `grad_norm`, `eval_*`, `train_runtime`, ..., and the `epoch` it adds), on
their way to `trainer_state.json` and the reporting callbacks; it is wrapped, and each
numeric value of its logs is recorded with source `transformers` at the trainer's
`state.global_step`. A value the callbacks also send to a tracker (MLflow, W&B, TensorBoard)
is recorded by that tracker's hook too, under its own source. transformers is patched when
the program imports its trainer, never imported by clew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

from clew.instrumentation.package import _instruments_transformers

from ._file_arguments import argument
from ._guard import guard
from ._instrumentor import ClewInstrumentor, recording
from ._trackers import record_points

SOURCE = "transformers"


class TransformersInstrumentor(ClewInstrumentor):
    """Instrumentor for the metrics a transformers Trainer logs."""

    _instruments = _instruments_transformers

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        return {"transformers.trainer": self._patch_trainer}

    def _patch_trainer(self, module: ModuleType) -> None:
        self.wrap(module.Trainer, "log", self._log)

    def _log(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
        result = wrapped(*args, **kwargs)
        if recording() and self.active:
            with guard("Trainer.log"):
                # After the call: the logs as Trainer.log completed them (the epoch added).
                logs = argument(args, kwargs, 0, "logs")
                if isinstance(logs, Mapping):
                    record_points(SOURCE, logs, instance.state.global_step)
        return result
