"""Records the metrics a program logs to MLflow, and links each MLflow run with the clew run.

Every metric MLflow logs goes through `MlflowClient.log_metric` (what `mlflow.log_metric`
calls) or `MlflowClient.log_batch` (`mlflow.log_metrics`, autologging), so these two are
wrapped: each point is recorded with source `mlflow`, the step MLflow stores for it (0 when
none is given), and the tracker run `mlflow:<run_id>` that names the MLflow run.

The other way: a run MLflow starts (`mlflow.start_run`, also when it resumes a run, and
`MlflowClient.create_run`) gets the tag `clew.run_id`, the id of the clew run that started it,
unless the program sets that tag itself; and clew names the run (`record_tracker_run`), so a
run that logs no metric is found from the clew run too. A point MLflow refuses (its call
raises) is not recorded. MLflow is patched when the program imports it, never imported by
clew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

from clew.instrumentation.package import _instruments_any_mlflow
from clew.semconv import attributes as attr

from ._file_arguments import argument
from ._guard import guard
from ._instrumentor import ClewInstrumentor, recording
from ._metrics import record_metric, record_tracker_run
from ._trackers import CLEW_RUN_ID_KEY, clew_run_id, scalar

SOURCE = attr.ProvenanceMetricSourceValues.MLFLOW.value


def tracker_run(run_id: object) -> str:
    """How clew names an MLflow run: `mlflow:<run_id>`."""
    return f"{SOURCE}:{run_id}"


def _with_clew_tag(args: tuple, kwargs: dict, position: int) -> tuple[tuple, dict]:
    """The call's arguments with `clew.run_id` added to its `tags` (at `position` or by
    keyword), unless the program gave that tag."""
    with guard("tagging an MLflow run"):
        tags = argument(args, kwargs, position, "tags")
        run_id = clew_run_id()
        if run_id is None or (isinstance(tags, Mapping) and CLEW_RUN_ID_KEY in tags):
            return args, kwargs
        tagged = {**(tags if isinstance(tags, Mapping) else {}), CLEW_RUN_ID_KEY: run_id}
        if len(args) > position:
            return (*args[:position], tagged, *args[position + 1:]), kwargs
        return args, {**kwargs, "tags": tagged}
    return args, kwargs


class MlflowInstrumentor(ClewInstrumentor):
    """Instrumentor for the metrics a program logs to MLflow and its runs' `clew.run_id` tag."""

    _instruments_any = _instruments_any_mlflow

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        # `mlflow.start_run` is the fluent module's function, bound in `mlflow` too.
        return {
            "mlflow.tracking.client": self._patch_client,
            "mlflow.tracking.fluent": self._patch_start_run,
            "mlflow": self._patch_start_run,
        }

    def _patch_client(self, module: ModuleType) -> None:
        client = module.MlflowClient
        self.wrap(client, "log_metric", self._log_metric)
        self.wrap(client, "log_batch", self._log_batch)
        self.wrap(client, "create_run", self._tagging(2))

    def _patch_start_run(self, module: ModuleType) -> None:
        if hasattr(module, "start_run"):
            self.wrap(module, "start_run", self._tagging(5))

    def _tagging(self, position: int) -> Callable:
        """A wrapper adding `clew.run_id` to the `tags` argument at `position`, and naming the
        run it returns on clew's side."""
        def wrapper(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
            if not recording() or not self.active:
                return wrapped(*args, **kwargs)
            args, kwargs = _with_clew_tag(args, kwargs, position)
            run = wrapped(*args, **kwargs)
            with guard("naming an MLflow run"):
                record_tracker_run(SOURCE, tracker_run(run.info.run_id))
            return run

        return wrapper

    def _log_metric(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        result = wrapped(*args, **kwargs)
        if recording() and self.active:
            with guard("MlflowClient.log_metric"):
                run = tracker_run(argument(args, kwargs, 0, "run_id"))
                key, value = argument(args, kwargs, 1, "key"), argument(args, kwargs, 2, "value")
                step = scalar(argument(args, kwargs, 4, "step")) or 0
                record_metric(SOURCE, key, scalar(value), step, tracker_run=run)  # type: ignore[arg-type]
        return result

    def _log_batch(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        result = wrapped(*args, **kwargs)
        if recording() and self.active:
            with guard("MlflowClient.log_batch"):
                run = tracker_run(argument(args, kwargs, 0, "run_id"))
                for metric in argument(args, kwargs, 1, "metrics") or ():
                    record_metric(SOURCE, metric.key, scalar(metric.value), scalar(metric.step) or 0,
                                  tracker_run=run)
        return result
