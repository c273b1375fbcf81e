"""Records the scalars a program logs to TensorBoard.

`SummaryWriter.add_scalar` and `add_scalars`, torch's (`torch.utils.tensorboard`) and
tensorboardX's, are wrapped: each value is recorded with source `tensorboard` at the call's
`global_step` (0 when not given, the step the event file then has) under its tag;
`add_scalars(main_tag, {tag: value})` under `main_tag/tag`. A call that raises records
nothing. The event files the writer writes are recorded as files by the files hook (and
their scalars read again by the recorder, under their file's URI). TensorBoard's writers are
patched when the program imports them, never imported by clew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

from clew.instrumentation.package import _instruments_any_tensorboard
from clew.semconv import attributes as attr

from ._file_arguments import argument
from ._guard import guard
from ._instrumentor import ClewInstrumentor, recording
from ._trackers import record_points

SOURCE = attr.ProvenanceMetricSourceValues.TENSORBOARD.value


def _step(args: tuple, kwargs: dict) -> object:
    """The call's `global_step`; 0 when not given, as the event file records it."""
    step = argument(args, kwargs, 2, "global_step")
    return 0 if step is None else step


class TensorboardInstrumentor(ClewInstrumentor):
    """Instrumentor for the scalars a program logs with TensorBoard's SummaryWriter."""

    _instruments_any = _instruments_any_tensorboard

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        return {"torch.utils.tensorboard.writer": self._patch_writer, "tensorboardX.writer": self._patch_writer}

    def _patch_writer(self, module: ModuleType) -> None:
        self.wrap(module.SummaryWriter, "add_scalar", self._add_scalar)
        self.wrap(module.SummaryWriter, "add_scalars", self._add_scalars)

    def _add_scalar(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
        result = wrapped(*args, **kwargs)
        if recording() and self.active:
            with guard("SummaryWriter.add_scalar"):
                point = {argument(args, kwargs, 0, "tag"): argument(args, kwargs, 1, "scalar_value")}
                record_points(SOURCE, point, _step(args, kwargs))
        return result

    def _add_scalars(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        result = wrapped(*args, **kwargs)
        if recording() and self.active:
            with guard("SummaryWriter.add_scalars"):
                main_tag = argument(args, kwargs, 0, "main_tag")
                values = argument(args, kwargs, 1, "tag_scalar_dict")
                points = {f"{main_tag}/{tag}": value for tag, value in values.items()}
                record_points(SOURCE, points, _step(args, kwargs))
        return result
