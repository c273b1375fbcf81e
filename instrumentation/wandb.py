"""Records the metrics a program logs to Weights & Biases, and links each W&B run with the clew
run.

`wandb.log` is the running run's `Run.log`, so `Run.log` is wrapped: each numeric value it
logs is recorded with source `wandb` (a nested dict's values under dotted names, `train.loss`;
images, tables and other media are no metrics), at the step given, else the run's current
step, with the tracker run `wandb:<entity>/<project>/<run_id>` (the run's path: an offline
run without an entity is `wandb:<project>/<run_id>`). A call that raises records nothing, nor
one whose step is before the run's current step (W&B drops its values). Values logged with
`commit=False` share the step of the next call, as in W&B.

The other way: `wandb.init` puts `clew.run_id`, the id of the clew run, into the config of
the run it starts or resumes, unless the config the program gives it has that key, and clew
names the run (`record_tracker_run`), so a run that logs nothing is found from the clew run
too. W&B is
patched when the program imports it, never imported by clew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

from clew.instrumentation.package import _instruments_wandb
from clew.semconv import attributes as attr

from ._file_arguments import argument
from ._guard import guard
from ._instrumentor import ClewInstrumentor, recording
from ._metrics import record_tracker_run
from ._trackers import CLEW_RUN_ID_KEY, clew_run_id, record_points, scalar

SOURCE = attr.ProvenanceMetricSourceValues.WANDB.value


def tracker_run(run: object) -> str:
    """How clew names a W&B run: `wandb:` and the run's path."""
    return f"{SOURCE}:{run.path}"  # type: ignore[attr-defined]


class WandbInstrumentor(ClewInstrumentor):
    """Instrumentor for the metrics a program logs to W&B and its runs' `clew.run_id`."""

    _instruments = _instruments_wandb

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        return {"wandb.sdk.wandb_run": self._patch_run, "wandb": self._patch_init}

    def _patch_run(self, module: ModuleType) -> None:
        self.wrap(module.Run, "log", self._log)

    def _patch_init(self, module: ModuleType) -> None:
        self.wrap(module, "init", self._init)

    def _init(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
        run = wrapped(*args, **kwargs)
        if recording() and self.active:
            with guard("tagging a W&B run"):
                given = argument(args, kwargs, 7, "config")
                run_id = clew_run_id()
                if run_id is not None and not (isinstance(given, Mapping) and CLEW_RUN_ID_KEY in given):
                    # A resumed run is named by the clew run that resumed it.
                    run.config.update({CLEW_RUN_ID_KEY: run_id}, allow_val_change=True)
            with guard("naming a W&B run"):
                record_tracker_run(SOURCE, tracker_run(run))
        return run

    def _log(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        if not recording() or not self.active:
            return wrapped(*args, **kwargs)
        # The step this call logs at, read before the call moves it on: the run's client-side
        # step counter (`_local_step`; `_step` in older releases), as `run.step` asks W&B's
        # service process and waits for its answer.
        step = None
        kept = True
        with guard("wandb.log"):
            current = getattr(instance, "_local_step", None)
            if current is None:
                current = getattr(instance, "_step", None)
            step = argument(args, kwargs, 1, "step")
            if step is None:
                step = current
            elif current is not None:
                # W&B drops the values of a step before its current one (with a warning):
                # the run never has them, so neither does clew's record of the run.
                kept = not scalar(step) < current
        result = wrapped(*args, **kwargs)
        if kept:
            with guard("wandb.log"):
                data = argument(args, kwargs, 0, "data")
                if isinstance(data, Mapping):
                    record_points(SOURCE, data, step, tracker_run(instance))
        return result
