"""One OpenTelemetry entry point for every library hook: `clew_libraries`.

`opentelemetry-instrument` checks the dependencies of an instrumentor's distribution before
it loads each `opentelemetry_instrumentor` entry point: it reads and parses clew's package
metadata twice, ~0.4 ms, in every process and for every entry point. The library hooks
(torch, the object stores, the native-I/O libraries) are therefore entry points of clew's
own group, `clew_instrumentor`, which this instrumentor loads: one check for all of them.
Each hook stays an instrumentor of its own, with its `_instruments` (checked when the
program imports the library) and its name, which OTEL_PYTHON_DISABLED_INSTRUMENTATIONS
disables as it would an OpenTelemetry entry point.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS,
)
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
# OpenTelemetry's own entry point listing, cached from its loader's pass over the installed
# distributions: importlib.metadata would list them all again, a few ms.
from opentelemetry.util._importlib_metadata import entry_points

from clew.semconv import environment

_logger = logging.getLogger(__name__)


class LibrariesInstrumentor(BaseInstrumentor):
    """Instruments each hook of the `clew_instrumentor` entry points not disabled by name."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        disabled = environment.names(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS)
        self._hooks: list[BaseInstrumentor] = []
        for entry_point in entry_points(group=environment.INSTRUMENTOR_GROUP):
            if entry_point.name in disabled:
                continue
            # As OpenTelemetry's loader does for its entry points: a hook that fails to
            # load is skipped, the others load; the library's version is checked when the
            # program imports it (ClewInstrumentor._supported).
            try:
                hook = entry_point.load()()
                hook.instrument(**{**kwargs, "skip_dep_check": True})
            except Exception:  # noqa: BLE001 - never harm the host
                _logger.exception("clew: instrumenting %s failed, skipping it", entry_point.name)
                continue
            self._hooks.append(hook)

    def _uninstrument(self, **kwargs: Any) -> None:
        while self._hooks:
            self._hooks.pop().uninstrument(**kwargs)
