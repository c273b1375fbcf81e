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
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from clew.instrumentation.package import _instruments_torch

from ._guard import guard
from ._instrumentor import ClewInstrumentor, deferred, recording
from ._lifecycle import get_recorder
from ._paths import absolute

# Submodules patched when the program imports them, and the clew module with their `patch`
# and `unpatch`, itself imported then.
_SUBMODULE_HOOKS = {
    "torch.utils.data._utils.worker": "clew.instrumentation._dataloader",
    "torch.distributed.elastic.agent.server.api": "clew.instrumentation._elastic",
}


def _save(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
    result = wrapped(*args, **kwargs)
    if not recording():
        return result
    destination = args[1] if len(args) > 1 else kwargs.get("f")
    if isinstance(destination, (str, bytes, os.PathLike)):
        recorder = get_recorder()
        with guard("torch.save", recorder.failed):
            path = absolute(destination)
            if path is not None and recorder.filter.wants(path):
                recorder.opened_for_write(path, keeps_content=False)
    return result


class TorchInstrumentor(ClewInstrumentor):
    """Instrumentor for torch.save's native file writes, DataLoader workers and torchrun
    agents."""

    _instruments = _instruments_torch

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        return {
            "torch": self._patch_torch,
            **{name: deferred(hook, "patch") for name, hook in _SUBMODULE_HOOKS.items()},
        }

    def _patch_torch(self, torch: Any) -> None:
        self.wrap(torch, "save", _save)
        serialization = sys.modules.get("torch.serialization")
        if serialization is not None:
            self.wrap(serialization, "save", _save)

    def _stop(self) -> None:
        for name, hook in _SUBMODULE_HOOKS.items():
            module, patched = sys.modules.get(name), sys.modules.get(hook)
            if module is not None and patched is not None:  # else nothing was patched
                patched.unpatch(module)
