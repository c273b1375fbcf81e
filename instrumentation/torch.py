"""Records torch.save to a path, DataLoader workers' ids, and torchrun agents' rendezvous.

PyTorch's C++ writer opens the destination itself, out of sight of the audit hook, so the
write is recorded here, at torch.save's Python entry point. torch.load, and torch.save to a
file object, go through Python's open and are recorded by the files instrumentor.

DataLoader workers label their records with their worker id and flush however they end
(`_dataloader`); a torchrun agent of a multi-node run agrees on the run's trace with the
other nodes' agents at rendezvous (`_elastic`, docs/distributed.md).

torch is patched when the program imports it, never imported by clew: importing torch costs
a second, and most programs that have it installed don't use it in every process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap

from . import _dataloader, _elastic
from ._lifecycle import get_recorder
from ._paths import absolute

_instruments = ("torch >= 1.13",)
# Submodules patched when the program imports them, with their patch and unpatch.
_SUBMODULE_HOOKS = {
    "torch.utils.data._utils.worker": (_dataloader.patch, _dataloader.unpatch),
    "torch.distributed.elastic.agent.server.api": (_elastic.patch, _elastic.unpatch),
}
_active = False


def _save(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
    result = wrapped(*args, **kwargs)
    if not _active or otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY):
        return result
    destination = args[1] if len(args) > 1 else kwargs.get("f")
    if isinstance(destination, (str, bytes, os.PathLike)):
        recorder = get_recorder()
        try:
            path = absolute(destination)
            if path is not None and recorder.filter.wants(path):
                recorder.opened_for_write(path, keeps_content=False)
        except Exception as error:  # noqa: BLE001 - never harm the host
            recorder.failed("torch.save", error)
    return result


def _patch(torch: Any) -> None:
    if not isinstance(getattr(torch, "save", None), wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(torch, "save", _save)
    serialization = sys.modules.get("torch.serialization")
    if serialization is not None and not isinstance(serialization.save, wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(serialization, "save", _save)


class TorchInstrumentor(BaseInstrumentor):
    """Instrumentor for torch.save's native file writes, DataLoader workers and torchrun
    agents."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        global _active
        _active = True
        get_recorder()
        wrapt.register_post_import_hook(_patch, "torch")
        for name, (patch, _unpatch) in _SUBMODULE_HOOKS.items():
            wrapt.register_post_import_hook(patch, name)

    def _uninstrument(self, **kwargs: Any) -> None:
        global _active
        _active = False
        torch = sys.modules.get("torch")
        if torch is not None:
            unwrap(torch, "save")
            serialization = sys.modules.get("torch.serialization")
            if serialization is not None:
                unwrap(serialization, "save")
        for name, (_patch_module, unpatch) in _SUBMODULE_HOOKS.items():
            module = sys.modules.get(name)
            if module is not None:
                unpatch(module)
