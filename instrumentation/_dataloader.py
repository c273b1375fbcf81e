"""torch DataLoader workers: their records carry their worker id, and reach the spool however
the worker ends.

A worker is a fork of its rank (inheriting the rank's resource and recorder, reset at
fork), or with multiprocessing_context="spawn"/"forkserver" a fresh instrumented interpreter
that inherits the rank's TRACEPARENT and launcher variables. Either way it runs
`torch.utils.data._utils.worker._worker_loop`, wrapped here to add `provenance.worker.id` to
the process's resource and process span before the loop reads anything.

A worker whose loop ends leaves through os._exit (fork, forkserver) or sys.exit (spawn),
which flush already. One its parent terminates (at exit with persistent_workers, or a loop
left early) gets SIGTERM, which torch's C handler turns into `_exit(0)` at once: after torch
installs it, SIGTERM is taken back to flush first and then exit the same way.

The wrapper is a plain function with the original's module and name, not a wrapt proxy:
spawn pickles the worker's target by reference, and the child finds this wrapper there.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

from clew.semconv import attributes as attr

from ._guard import guard
from ._lifecycle import get_recorder, take_sigterm
from .resource import update_resource

_MARK = "_clew_wrapped"
_active = False
# In a worker, the pid of the process that started it (torch's handler exits quietly on a
# SIGTERM from it); None elsewhere.
_worker_parent: int | None = None


def _joined_as_worker(signature: inspect.Signature, args: tuple, kwargs: dict) -> None:
    global _worker_parent
    _worker_parent = os.getppid()
    worker_id = signature.bind(*args, **kwargs).arguments.get("worker_id")
    if not isinstance(worker_id, int):
        return
    labels = {attr.PROVENANCE_WORKER_ID: worker_id}
    update_resource(labels)
    get_recorder().process.annotate(labels)


def _wrap_loop(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def _worker_loop(*args: Any, **kwargs: Any) -> Any:
        if _active:
            with guard("DataLoader worker"):
                _joined_as_worker(signature, args, kwargs)
        return original(*args, **kwargs)

    setattr(_worker_loop, _MARK, True)
    return _worker_loop


def _parent_sent_it() -> bool:
    # torch's handler compares the sender with getppid(); Python's handlers are not told the
    # sender, so a parent still alive stands for it (docs/distributed.md).
    return _worker_parent is not None and os.getppid() == _worker_parent


def _wrap_signal_setup(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _set_worker_signal_handlers(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if _active and _worker_parent is not None:
            take_sigterm(_parent_sent_it)
        return result

    setattr(_set_worker_signal_handlers, _MARK, True)
    return _set_worker_signal_handlers


def patch(module: Any) -> None:
    """Post-import hook for torch.utils.data._utils.worker."""
    global _active
    _active = True
    if not getattr(module._worker_loop, _MARK, False):
        module._worker_loop = _wrap_loop(module._worker_loop)
    handling = module.signal_handling
    if not getattr(handling._set_worker_signal_handlers, _MARK, False):
        handling._set_worker_signal_handlers = _wrap_signal_setup(
            handling._set_worker_signal_handlers
        )


def unpatch(module: Any) -> None:
    global _active
    _active = False
    patched = ((module, "_worker_loop"), (module.signal_handling, "_set_worker_signal_handlers"))
    for owner, name in patched:
        current = getattr(owner, name)
        if getattr(current, _MARK, False):
            setattr(owner, name, current.__wrapped__)
