"""The base every clew instrumentor is built on: `ClewInstrumentor`.

It does what each instrumentor would otherwise repeat: takes this process's recorder (made
with the `tracer_provider` given to `instrument()`, else the global one), keeps its on/off
state on the instance, patches a library when the program first imports it (never importing
it itself), and removes every wrapper it put in place at `uninstrument()`.

A hook for a new library is a module in this package with a subclass::

    from . import _file_arguments as files
    from ._instrumentor import ClewInstrumentor
    from clew.instrumentation.package import _instruments_parquetlib


    class ParquetlibInstrumentor(ClewInstrumentor):
        '''Instrumentor for parquetlib's native reads and writes.'''

        _instruments = _instruments_parquetlib  # ("parquetlib >= 2",): data only, package.py

        def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
            # Each runs when the program imports its module (at once if it already has).
            return {"parquetlib.io": self._patch_io}

        def _patch_io(self, module: ModuleType) -> None:
            # wrapt wrappers, removed at uninstrument(). `files.reads`/`writes`/`opens` find
            # the path among the arguments (position, keyword) and record a read or a write.
            self.wrap(module, "load", files.reads(self, "parquetlib.load", 0, "path"))
            self.wrap(module.Writer, "__init__", files.writes(self, "parquetlib.Writer", 0, "path"))

plus data-only lines in package.py (its `_instruments`, and the modules its `_patches`
names in `_patched_modules`, whose import loads the hook), a `clew_instrumentor` entry point
in pyproject.toml (loaded by loader.py), a name in `__init__`'s `_LAZY`, and a test module like
tests/instrumentation/test_lib_arrow.py (`library_cases.check_program` checks a program's
exact records) with the library added to test_lib_instrumentors.py.

A wrapper of its own (see pyarrow.py's datasets, duckdb.py's log) follows the same rules:
call straight through when `recording()` is False (suppressed, or under an outer layer);
record only what is local (`_file_arguments.local_path`, `local_filesystem`), leaving file
objects, remote URIs and filesystems to the hooks that see their I/O; record through the
recorder (`read`, `opened_for_write`, ...; `_file_arguments.record_paths`), which gives
each file its identity, digest, batching and exclusions, inside `self.record(...)`, which
notes clew's own failures and never raises; run the call under `inner_layers_suppressed()`
when the hook records it, so the Python opens and other hooks under it add nothing; let
the call's result and exceptions pass through unchanged. A file read in pieces is one
`recorder.read` of it: the record carries the whole file's digest.

A hook with much code of its own (s3.py, gcs.py, fsspec.py, torch.py) keeps it in a module of
its own that `deferred(...)` imports when the patch runs: every process loads each hook's
instrumentor, only a process that imports the library loads what patches it.

A patch whose library is installed in a version `_instruments` does not name is not applied,
and the process span says so among its capture errors.

`instrument()` without the library installed does nothing (OpenTelemetry's dependency check);
under `opentelemetry-instrument` the patch simply never runs, as the module is never imported.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any

import wrapt
from opentelemetry.instrumentation.dependencies import DependencyConflict, get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import (
    is_instrumentation_enabled,
    suppress_instrumentation,
    unwrap,
)

from ._guard import guard
from ._lifecycle import get_recorder
from ._recorder import Recorder

Wrapper = Callable[[Callable[..., Any], Any, tuple, dict], Any]
"""wrapt's wrapper signature: (wrapped, instance, args, kwargs)."""


def deferred(module: str, name: str) -> Callable[[ModuleType], None]:
    """The patch `name` of the clew module `module`, imported when the patch runs (when the
    program imports the library), not when the instrumentor loads."""

    def patch(target: ModuleType) -> None:
        getattr(importlib.import_module(module), name)(target)

    return patch


def recording() -> bool:
    """False inside `suppress_instrumentation()` or an outer layer's operation."""
    return is_instrumentation_enabled()


def inner_layers_suppressed() -> AbstractContextManager[None]:
    """Run a wrapped call as one operation: the layers under it (Python's open seen by the
    files hook, another library's hook) record nothing of their own."""
    return suppress_instrumentation()


class ClewInstrumentor(BaseInstrumentor):
    """An OpenTelemetry instrumentor recording through this process's clew recorder.

    Subclasses set `_instruments`, return their import-time patches from `_patches`, and may
    override `_start` and `_stop` for what is not a wrapper (an audit hook, a callback).
    OpenTelemetry makes each instrumentor class a singleton, so this instance's state is the
    process's.
    """

    _instruments: tuple[str, ...] = ()
    _instruments_any: tuple[str, ...] = ()
    """Libraries any one of which is enough (one library under two distribution names, as
    `mlflow` and `mlflow-skinny`), as OpenTelemetry's own instrumentors declare them."""
    _unsupported: str | None = None  # why the installed library is not patched; "": it is
    active = False
    """Between `instrument()` and `uninstrument()`: wrappers that cannot be removed (handlers
    on a library's live objects) do nothing when it is False."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return self._instruments

    def _check_dependency_conflicts(self) -> DependencyConflict | None:
        return get_dependency_conflicts(self._instruments, self._instruments_any or None)

    @property
    def recorder(self) -> Recorder:
        return get_recorder()

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        """Module name -> its patch, run when the program imports that module."""
        return {}

    def _start(self, **kwargs: Any) -> None:
        """Anything `instrument()` does besides the import-time patches."""

    def _stop(self) -> None:
        """Anything `uninstrument()` undoes besides the wrappers."""

    def _instrument(self, **kwargs: Any) -> None:
        get_recorder(kwargs.get("tracer_provider"))
        self.active = True
        if not hasattr(self, "_wrapped"):
            # Here, not in __init__: OpenTelemetry runs __init__ again on the singleton at
            # every `Instrumentor()`, which would forget the wrappers to remove.
            self._wrapped: list[tuple[Any, str]] = []
            self._hooked: set[str] = set()
        self._start(**kwargs)
        for name, patch in self._patches().items():
            self._when_imported(name, patch)

    def _uninstrument(self, **kwargs: Any) -> None:
        self.active = False
        self._stop()
        while self._wrapped:
            owner, name = self._wrapped.pop()
            unwrap(owner, name)

    def _when_imported(self, name: str, patch: Callable[[ModuleType], None]) -> None:
        def hook(module: ModuleType) -> None:
            # Not after uninstrument() (the program imported it later), nor on a version
            # this instrumentor does not support.
            if not self.active or not self._supported():
                return
            with guard(f"patching {name}", self.recorder.failed):
                patch(module)

        if name not in self._hooked:
            self._hooked.add(name)
            # Runs at once if the module is imported already, else when it is.
            wrapt.register_post_import_hook(hook, name)
        elif name in sys.modules:
            hook(sys.modules[name])  # instrumented again: the earlier hook has run
        # else: the hook registered earlier is still waiting for the import

    def _supported(self) -> bool:
        """Whether the installed library is a version `_instruments` (or `_instruments_any`)
        names; when not, the process span says so once. Answered once: the lookup costs a
        millisecond or two."""
        if self._unsupported is None:
            try:
                conflict = self._check_dependency_conflicts()
            except Exception as error:  # noqa: BLE001 - never harm the host
                conflict = error
            self._unsupported = "" if conflict is None else f"not patched: {conflict}"
            if conflict is not None:
                self.recorder.failed(type(self).__name__, RuntimeError(self._unsupported))
        return not self._unsupported

    def wrap(self, owner: Any, name: str, wrapper: Wrapper) -> None:
        """Wrap `owner.name` with `wrapper` (wrapt), undone by `uninstrument()`; an attribute
        wrapped already (the same class reached through two modules) is left as it is."""
        current = vars(owner).get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if isinstance(current, wrapt.ObjectProxy):
            return
        wrapt.wrap_function_wrapper(owner, name, wrapper)
        self._wrapped.append((owner, name))

    def record(self, where: str, action: Callable[[Recorder], None]) -> None:
        """Run `action` with the recorder; a failure in it is noted, never raised."""
        recorder = self.recorder
        with guard(where, recorder.failed):
            action(recorder)
