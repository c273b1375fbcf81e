"""One OpenTelemetry entry point for all of clew's instrumentors: `clew`.

`opentelemetry-instrument` checks the dependencies of an instrumentor's distribution before
it loads each `opentelemetry_instrumentor` entry point: it reads and parses clew's package
metadata twice, ~0.4 ms, in every process and for every entry point. clew's instrumentors
(files, processes, native opens, and the library hooks: torch, the object stores, the
native-I/O libraries, the metric trackers) are therefore entry points of clew's own group,
`clew_instrumentor`, which this one instrumentor loads: one check for all of them. Each stays
an instrumentor of its own, with its `_instruments` (a library hook's checked when the
program imports the library) and its name, which OTEL_PYTHON_DISABLED_INSTRUMENTATIONS
disables as it would an OpenTelemetry entry point; `clew_libraries` there disables every
library hook, `clew` everything.

The core instrumentors (`package._core`) are instrumented at once, in order. A library
hook's code is loaded, and the hook instrumented, when the program imports one of the modules
it patches (`package._patched_modules`): until then only a post-import hook waits for each,
so a process that imports none of these libraries pays for none of their hooks' modules
(~3 ms of start-up for the fourteen). The hook then registers its patches, which run at once
for the modules already imported. While another of its modules is still being imported (it
imported this one), the hook waits for that module's own post-import hook: patched now, that
module would be patched half-made.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS,
)
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
# OpenTelemetry's own entry point listing, cached from its loader's pass over the installed
# distributions: importlib.metadata would list them all again, a few ms.
from opentelemetry.util._importlib_metadata import EntryPoint, entry_points

from clew.instrumentation.package import _core, _patched_modules
from clew.semconv import environment

_logger = logging.getLogger(__name__)

LIBRARY_HOOKS = "clew_libraries"
"""The name that disables every library hook at once."""


class ClewInstrumentors(BaseInstrumentor):
    """Instruments each instrumentor of the `clew_instrumentor` entry points not disabled by
    name: the core ones at once, a library hook when the program imports its library."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        if not hasattr(self, "_loaded"):
            # Here, not in __init__: OpenTelemetry runs __init__ again on the singleton at
            # every `ClewInstrumentors()`.
            self._loaded: dict[str, BaseInstrumentor] = {}
            self._waiting: set[tuple[str, str]] = set()
            self._lock = threading.RLock()
        self._active = True
        self._kwargs = {**kwargs, "skip_dep_check": True}
        disabled = set(environment.names(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS))
        found = {entry_point.name: entry_point
                 for entry_point in entry_points(group=environment.INSTRUMENTOR_GROUP)}
        for name in _core:
            if name in found and name not in disabled:
                self._load(found[name])
        if LIBRARY_HOOKS in disabled:
            return
        for name, entry_point in found.items():
            if name in disabled or name in _core:
                continue
            modules = _patched_modules.get(name)
            if not modules:
                self._load(entry_point)
            for module in modules or ():
                self._when_imported(entry_point, module)

    def _when_imported(self, entry_point: EntryPoint, module: str) -> None:
        if (entry_point.name, module) not in self._waiting:
            self._waiting.add((entry_point.name, module))
            # Runs at once if the module is imported already, else when it is.
            wrapt.register_post_import_hook(
                lambda imported: self._load(entry_point, imported.__name__), module
            )
        elif module in sys.modules:
            self._load(entry_point)  # instrumented again: the earlier hook has run

    def _load(self, entry_point: EntryPoint, imported: str | None = None) -> None:
        """Load and instrument one instrumentor, once (again after `uninstrument()`);
        `imported`: the module whose import (its code has just run) called this."""
        with self._lock:
            if not self._active:
                return
            # As OpenTelemetry's loader does for its entry points: one that fails to load is
            # skipped, the others load; a library's version is checked when its patches run
            # (ClewInstrumentor._supported).
            try:
                instrumentor = self._loaded.get(entry_point.name)
                if instrumentor is None:
                    instrumentor = self._loaded[entry_point.name] = entry_point.load()()
                if instrumentor.is_instrumented_by_opentelemetry:
                    return
                if imported is None or not _importing(instrumentor, imported):
                    instrumentor.instrument(**self._kwargs)
            except Exception:  # noqa: BLE001 - never harm the host
                _logger.exception("clew: instrumenting %s failed, skipping it", entry_point.name)

    def _uninstrument(self, **kwargs: Any) -> None:
        with self._lock:
            self._active = False
            for instrumentor in reversed(list(self._loaded.values())):
                if instrumentor.is_instrumented_by_opentelemetry:
                    instrumentor.uninstrument(**kwargs)


def _importing(instrumentor: BaseInstrumentor, imported: str) -> bool:
    """Whether a module the instrumentor patches, other than `imported`, is in sys.modules but
    still running its code."""
    patches = getattr(instrumentor, "_patches", None)
    for name in patches() if callable(patches) else ():
        if name == imported:
            continue
        spec = getattr(sys.modules.get(name), "__spec__", None)
        # importlib marks a module's spec while the module's code runs.
        if getattr(spec, "_initializing", False):
            return True
    return False
