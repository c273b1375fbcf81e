"""The span of one process: the run's root span, or a process that joined the run.

Everything cheap is known at start; git state and installed packages are gathered on a
background thread (they cost tens of milliseconds) and the digests of the project's own
imported sources at exit, when it is known which were imported.
"""

from __future__ import annotations

import getpass
import os
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.propagators._envcarrier import EnvironmentGetter, EnvironmentSetter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from clew.semconv import attributes as attr
from clew.semconv import environment, spans
from clew.semconv.redaction import redact_argv, redact_text

from ._git import git_attributes

_PROPAGATOR = TraceContextTextMapPropagator()
_Role = attr.ProvenanceProcessRoleValues
# Roles that start a process tree of their own: a peer on another node may have another
# checkout or other packages than the run's root.
_GATHERING_ROLES = (_Role.RUN.value, _Role.PEER.value)
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


def remote_context(trace_id: int, span_id: int) -> Context:
    """A context whose parent is the span (trace_id, span_id) of another process."""
    parent = SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    return trace.set_span_in_context(NonRecordingSpan(parent), Context())


class _PinnedIds:
    """A tracer's id generator that hands out chosen ids once, on the thread that pinned them.

    OpenTelemetry has no way to start a span with given ids, and the root span of a run whose
    ranks start independently must have the ids every rank derives for it, so that theirs
    can name it as parent (docs/distributed.md). Every other span gets the wrapped
    generator's ids.
    """

    def __init__(self, wrapped: object) -> None:
        self.wrapped = wrapped
        self._pinned = threading.local()

    def pin(self, ids: tuple[int, int] | None) -> None:
        self._pinned.ids = ids

    def generate_trace_id(self) -> int:
        ids = getattr(self._pinned, "ids", None)
        return ids[0] if ids else self.wrapped.generate_trace_id()  # type: ignore[attr-defined]

    def generate_span_id(self) -> int:
        ids = getattr(self._pinned, "ids", None)
        if ids:
            self._pinned.ids = None
            return ids[1]
        return self.wrapped.generate_span_id()  # type: ignore[attr-defined]

    def is_trace_id_random(self) -> bool:
        is_random = getattr(self.wrapped, "is_trace_id_random", None)
        return bool(is_random()) if callable(is_random) else False


def _start_root(
    tracer: trace.Tracer, ids: tuple[int, int], name: str, start_ns: int, attributes: dict
) -> trace.Span:
    """Start a root span with exactly `ids`; under a tracer that cannot (not the SDK's), a span
    in the same trace whose parent is the span the ids name."""
    generator = getattr(tracer, "id_generator", None)
    if generator is None:
        context = remote_context(*ids)
        return tracer.start_span(name, context=context, start_time=start_ns, attributes=attributes)
    if not isinstance(generator, _PinnedIds):
        generator = _PinnedIds(generator)
        tracer.id_generator = generator  # type: ignore[attr-defined]
    generator.pin(ids)
    try:
        return tracer.start_span(
            name, context=Context(), start_time=start_ns, attributes=attributes
        )
    finally:
        generator.pin(None)


def new_ids(tracer: trace.Tracer) -> tuple[int, int]:
    """Fresh (trace id, span id) from the tracer's own generator, for a span started later."""
    generator = getattr(tracer, "id_generator", None)
    if generator is not None:
        return generator.generate_trace_id(), generator.generate_span_id()
    return random.getrandbits(128) or 1, random.getrandbits(64) or 1


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
    """`name==version` of every installed distribution, from the metadata folders' names:
    reading each METADATA file through importlib.metadata takes 40-80 ms for 136 packages
    (benchmarks/RESULTS.md), this under a millisecond. Names are PEP 503-normalised."""
    packages = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                stem = name[: -len(".dist-info")]
            elif name.endswith(".egg-info"):
                stem = name[: -len(".egg-info")].split("-py")[0]
            else:
                continue
            project, _, version = stem.partition("-")
            if project and version:
                packages.add(f"{re.sub(r'[-_.]+', '-', project).lower()}=={version}")
    return sorted(packages)


def command_args() -> list[str]:
    """This process's command line as the interpreter got it, redacted."""
    return redact_argv(list(getattr(sys, "orig_argv", sys.argv)))


def _start_attributes(role: str) -> dict:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {
        attr.PROVENANCE_PROCESS_ROLE: role,
        attr.PROCESS_PID: os.getpid(),
        attr.PROCESS_PARENT_PID: os.getppid(),
        attr.PROCESS_COMMAND_ARGS: command_args(),
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
        *,
        root_ids: tuple[int, int] | None = None,
        joined_by: str | None = None,
        deferred: bool = False,
    ) -> None:
        self._tracer = tracer
        self.role = role
        self._parent = parent
        self._start_ns = start_ns or time.time_ns()
        # The ids this span must have, when it is the root of a run whose other processes
        # derive them or agree on them (docs/distributed.md); None for the tracer's own.
        self._root_ids = root_ids
        self.joined_by = joined_by
        # A torchrun agent's span waits for the rendezvous, where its trace is agreed
        # (_elastic); until then the recorder holds its records instead of starting it.
        self._deferred = deferred
        self._annotations: dict = {}
        self._span: trace.Span | None = None
        self._context: Context | None = None
        self._lock = threading.Lock()
        self._background: dict = {}
        self._background_thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._span is not None

    @property
    def waiting(self) -> bool:
        """Whether the span waits for its run's trace to be known (see `deferred`)."""
        return self._deferred and self._context is None

    @property
    def has_parent(self) -> bool:
        return self._parent is not None

    def ids(self) -> tuple[int, int] | None:
        """(trace id, span id) of this span once started, else the ids it will start with."""
        if self._context is not None:
            span_context = trace.get_current_span(self._context).get_span_context()
            return span_context.trace_id, span_context.span_id
        return self._root_ids

    def adopt(
        self,
        role: str,
        parent: Context | None,
        *,
        root_ids: tuple[int, int] | None,
        joined_by: str | None,
    ) -> bool:
        """Place this span in the run the process learnt it belongs to (a torchrun agent,
        at rendezvous). False when too late: the span started already."""
        with self._lock:
            if self._context is not None:
                return False
            self.role, self._parent = role, parent
            self._root_ids, self.joined_by = root_ids, joined_by
            return True

    def annotate(self, attributes: dict) -> None:
        """Attributes the process learnt about itself after start (a DataLoader worker's id)."""
        with self._lock:
            self._annotations.update(attributes)
            span = self._span
        if span is not None:
            span.set_attributes(attributes)

    def context(self) -> Context:
        """The context whose current span is this process's span, starting it if needed."""
        if self._context is None:
            with self._lock:
                if self._context is None:
                    self._start()
        return self._context  # type: ignore[return-value]

    def _start(self) -> None:
        name = spans.SPAN_RUN if self.role == "run" else spans.SPAN_PROCESS
        attributes = {**_start_attributes(self.role), **self._annotations}
        if self.joined_by:
            attributes[attr.PROVENANCE_RUN_JOINED_BY] = self.joined_by
        if self._root_ids is not None and self._parent is None:
            span = _start_root(self._tracer, self._root_ids, name, self._start_ns, attributes)
        else:
            span = self._tracer.start_span(
                name,
                context=self._parent or Context(),
                start_time=self._start_ns,
                attributes=attributes,
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
        if self.role not in _GATHERING_ROLES:
            return  # a child of a process of this run shares its checkout and packages

        def gather() -> None:
            with suppress_instrumentation():  # git and the metadata reads are clew's own
                try:
                    self._background.update(git_attributes(cwd))
                    self._background[attr.PROVENANCE_ENV_PACKAGES] = _installed_packages()
                except Exception as error:  # noqa: BLE001 - never harm the host
                    self._background["error"] = repr(error)

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
            span.set_attribute(
                attr.PROVENANCE_EXCEPTION_MESSAGE, redact_text(str(exception)[:4096])
            )
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exception).__qualname__))
        elif exit_code:
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"exit code {exit_code}"))
        if errors:
            redacted = [redact_text(message) for message in errors[:100]]
            span.set_attribute(attr.PROVENANCE_CAPTURE_ERRORS, redacted)
        span.end()
