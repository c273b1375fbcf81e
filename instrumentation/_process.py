"""The span of one process: the run's root span, or a process that joined the run.

Everything cheap is known at start; git state and installed packages are gathered on a
background thread (they cost tens of milliseconds) and the digests of the project's own
imported sources at exit, when it is known which were imported.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from importlib import metadata

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators._envcarrier import EnvironmentGetter, EnvironmentSetter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from clew.semconv import attributes as attr
from clew.semconv import environment, spans

from ._git import git_attributes
from ._redact import redact_argv

_PROPAGATOR = TraceContextTextMapPropagator()
_BACKGROUND_TIMEOUT = 15.0


def inherited_context() -> tuple[Context | None, bool]:
    """The context in TRACEPARENT (env-carrier spec), and whether it came from a clew run."""
    if "TRACEPARENT" not in os.environ:
        return None, False
    extracted = _PROPAGATOR.extract(os.environ, getter=EnvironmentGetter())
    parent = trace.get_current_span(extracted).get_span_context()
    if not parent.is_valid:
        return None, False
    from_clew = os.environ.get(environment.CLEW_RUN_ID) == trace.format_trace_id(parent.trace_id)
    return extracted, from_clew


def child_environment(span_context: Context, base: dict[str, str]) -> dict[str, str]:
    """`base` plus TRACEPARENT/TRACESTATE for `span_context` and the run id."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=span_context, setter=EnvironmentSetter())
    span = trace.get_current_span(span_context).get_span_context()
    base.pop("TRACESTATE", None)
    base.update(carrier)
    base[environment.CLEW_RUN_ID] = trace.format_trace_id(span.trace_id)
    return base


def _installed_packages() -> list[str]:
    packages = set()
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            packages.add(f"{name}=={dist.version}")
    return sorted(packages, key=str.lower)


def _start_attributes(role: str) -> dict:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {
        attr.PROVENANCE_PROCESS_ROLE: role,
        attr.PROCESS_PID: os.getpid(),
        attr.PROCESS_PARENT_PID: os.getppid(),
        attr.PROCESS_COMMAND_ARGS: redact_argv(list(getattr(sys, "orig_argv", sys.argv))),
        attr.PROCESS_EXECUTABLE_PATH: sys.executable,
        attr.PROCESS_WORKING_DIRECTORY: os.getcwd(),
        attr.PROCESS_OWNER: user,
        attr.PROCESS_RUNTIME_NAME: sys.implementation.name,
        attr.PROCESS_RUNTIME_VERSION: ".".join(map(str, sys.version_info[:3])),
        attr.HOST_NAME: socket.gethostname(),
    }


class ProcessSpan:
    """The span of this process, started on first use so an idle fork costs nothing."""

    def __init__(
        self,
        tracer: trace.Tracer,
        role: str,
        parent: Context | None,
        start_ns: int | None = None,
    ) -> None:
        self._tracer = tracer
        self.role = role
        self._parent = parent
        self._start_ns = start_ns or time.time_ns()
        self._span: trace.Span | None = None
        self._context: Context | None = None
        self._lock = threading.Lock()
        self._background: dict = {}
        self._background_thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._span is not None

    def context(self) -> Context:
        """The context whose current span is this process's span, starting it if needed."""
        if self._context is None:
            with self._lock:
                if self._context is None:
                    self._start()
        return self._context  # type: ignore[return-value]

    def _start(self) -> None:
        name = spans.SPAN_RUN if self.role == "run" else spans.SPAN_PROCESS
        span = self._tracer.start_span(
            name,
            context=self._parent or Context(),
            start_time=self._start_ns,
            attributes=_start_attributes(self.role),
        )
        run_id = trace.format_trace_id(span.get_span_context().trace_id)
        span.set_attribute(attr.PROVENANCE_RUN_ID, run_id)
        self._span = span
        self._context = trace.set_span_in_context(span, Context())
        # Every child, however it is started (multiprocessing spawn goes straight to
        # _posixsubprocess), inherits os.environ: make it carry this span.
        child_environment(self._context, os.environ)  # type: ignore[arg-type]

    def gather_in_background(self, cwd: str) -> None:
        """Collect git state and installed packages without delaying start-up."""
        if self.role != "run":
            return

        def gather() -> None:
            token = otel_context.attach(
                otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
            )
            try:
                self._background.update(git_attributes(cwd))
                self._background[attr.PROVENANCE_ENV_PACKAGES] = _installed_packages()
            except Exception as error:  # noqa: BLE001 - never harm the host
                self._background["error"] = repr(error)
            finally:
                otel_context.detach(token)

        self._background_thread = threading.Thread(target=gather, name="clew-run-info", daemon=True)
        self._background_thread.start()

    def end(
        self,
        *,
        exit_code: int | None,
        exception: BaseException | None,
        code_files: Callable[[], tuple[list[str], list[str]]] | None,
        errors: list[str],
    ) -> None:
        """End the span with what is known at exit. Idempotent."""
        if self._span is None:
            if self.role == "fork" and exception is None and not errors:
                return  # an idle forked child: nothing happened worth a span
            self.context()
        span, self._span = self._span, None
        if span is None:
            return
        if self._background_thread is not None:
            self._background_thread.join(_BACKGROUND_TIMEOUT)
        background = dict(self._background)
        error = background.pop("error", None)
        if error:
            errors = [*errors, f"run info: {error}"]
        span.set_attributes(background)
        if code_files is not None:
            files, digests = code_files()
            span.set_attribute(attr.PROVENANCE_CODE_FILES, files)
            span.set_attribute(attr.PROVENANCE_CODE_DIGESTS, digests)
        if exit_code is not None:
            span.set_attribute(attr.PROCESS_EXIT_CODE, exit_code)
        if exception is not None:
            span.set_attribute(attr.ERROR_TYPE, type(exception).__qualname__)
            span.set_attribute(attr.PROVENANCE_EXCEPTION_MESSAGE, str(exception)[:4096])
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exception).__qualname__))
        elif exit_code:
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"exit code {exit_code}"))
        if errors:
            span.set_attribute(attr.PROVENANCE_CAPTURE_ERRORS, errors[:100])
        span.end()
