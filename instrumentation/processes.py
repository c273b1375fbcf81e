"""Records every program the observed process starts, and passes the trace on to it.

Wrapped: subprocess.Popen (so run, call, check_call, check_output), os.system, os.execv and
os.execve (every os.exec* ends there), os.spawnv/spawnve/spawnvp/spawnvpe (every os.spawn*),
os.posix_spawn and os.posix_spawnp. Each start gives an "exec" span with the redacted argv,
the working directory, the exit code and the duration. The child's environment gets
TRACEPARENT/TRACESTATE (OpenTelemetry's environment-variable carrier), so an instrumented
Python child joins the trace under that span. Any other child gets clew's LD_PRELOAD library
(`_preload`), which notes the files it and its own children read, write, rename and delete:
recorded under the exec span when the child has ended. A child the library cannot see into (a
statically linked program, or with CLEW_PRELOAD=0) is opaque — what it read and wrote is
unknown — and its span says so (`provenance.exec.traced` false).
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
import traceback
import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
)

from clew.instrumentation.package import _instruments
from clew.semconv import attributes as attr
from clew.semconv import environment, spans
from clew.semconv.redaction import redact_argv, redact_text

from . import _preload
from ._guard import guard
from ._instrumentor import ClewInstrumentor
from ._lifecycle import close as close_recording
from ._lifecycle import get_recorder, reset_in_forked_child
from ._process_span import child_environment

_CARRIED = ("TRACEPARENT", "TRACESTATE", environment.CLEW_RUN_ID, *_preload.CARRIED)
_PYTHON_NAME = re.compile(r"^(python|pypy)[0-9.]*$")
_SITECUSTOMIZE_DIR = "opentelemetry/instrumentation/auto_instrumentation"
_POPEN_SIGNATURE = inspect.signature(subprocess.Popen.__init__)

_OS_WRAPPED = (
    "system", "execv", "execve", "spawnv", "spawnve", "spawnvp", "spawnvpe",
    "posix_spawn", "posix_spawnp",
)


def _suppressed() -> bool:
    return not is_instrumentation_enabled()


def _is_python(program: str, search_path: str | None) -> bool:
    found = shutil.which(program, path=search_path) if os.sep not in program else program
    if not found:
        return False
    name = os.path.basename(found)
    if _PYTHON_NAME.match(name) or os.path.realpath(found) == os.path.realpath(sys.executable):
        return True
    try:
        with open(found, "rb") as handle:  # a console script: look at its shebang
            first = handle.readline(256)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def _traced(argv: list[str], env: Mapping[str, str]) -> bool:
    """Will this child record its own I/O? Only an instrumented Python does."""
    if not argv or _SITECUSTOMIZE_DIR not in env.get("PYTHONPATH", ""):
        return False
    program = argv[0]
    if os.path.basename(program) in ("sh", "bash", "dash") and len(argv) > 2 and argv[1] == "-c":
        words = argv[2].split()
        program = words[0] if words else ""
    return _is_python(program, env.get("PATH"))


class _Exec:
    """One started program: its span and the environment that carries the span on."""

    def __init__(self, api: str, argv: list[str], cwd: str | None) -> None:
        recorder = get_recorder()
        current = trace.get_current_span()
        parent = (
            otel_context.get_current()
            if current.get_span_context().is_valid and current.is_recording()
            else recorder.process.context()
        )
        self.span = recorder._tracer.start_span(
            spans.SPAN_EXEC,
            context=parent,
            attributes={
                attr.PROVENANCE_EXEC_API: api,
                attr.PROCESS_COMMAND_ARGS: redact_argv(argv),
                attr.PROCESS_WORKING_DIRECTORY: os.path.abspath(cwd or os.getcwd()),
                attr.PROCESS_PARENT_PID: os.getpid(),
            },
        )
        self.context = trace.set_span_in_context(self.span, otel_context.Context())
        self.argv = argv
        self.pid: int | None = None
        self.children: _preload.ChildRecords | None = None  # when the child gets the library

    def environment(
        self, base: Mapping[str, str] | None, *, watched: bool = True
    ) -> dict[str, str]:
        """A copy of `base` (default: os.environ) that carries this span to the child, and
        unless the child is an instrumented Python (or not `watched`: it replaces this
        process, and nobody would collect its records), loads clew's LD_PRELOAD library."""
        env = child_environment(self.context, dict(os.environ if base is None else base))
        with suppress_instrumentation():  # looking at the program's shebang is clew's read
            traced = _traced(self.argv, env)
            if not traced and watched:
                self._watch(env)
        self.span.set_attribute(attr.PROVENANCE_EXEC_TRACED, traced)
        return env

    def _watch(self, env: dict[str, str]) -> None:
        recorder = get_recorder()
        shim = _preload.library() if recorder.settings.preload else None
        if shim is None:
            return
        children = _preload.ChildRecords(
            recorder.settings.home, self.span.get_span_context().span_id, self.context
        )
        try:
            children.prepare(env, shim)
        except OSError as error:
            recorder.failed("preparing a child's LD_PRELOAD", error)
            return
        self.children = children
        _preload.tailing.watch(children, recorder)

    def _collect(self) -> None:
        """Record what the child did, from its LD_PRELOAD records (once)."""
        children, self.children = self.children, None
        if children is None:
            return
        _preload.tailing.forget(children)
        recorder = get_recorder()
        with guard("recording a child's I/O", recorder.failed):
            if children.collect(recorder, self.pid):
                self.span.set_attribute(attr.PROVENANCE_EXEC_TRACED, True)

    def started(self, pid: int) -> None:
        self.pid = pid
        self.span.set_attribute(attr.PROCESS_PID, pid)

    def failed(self, error: BaseException) -> None:
        self._collect()  # nothing ran; the directory goes
        # The message and traceback may show the command line (a missing program's path).
        stacktrace = "".join(traceback.format_exception(error))
        self.span.record_exception(error, attributes={
            EXCEPTION_MESSAGE: redact_text(str(error)),
            EXCEPTION_STACKTRACE: redact_text(stacktrace),
        })
        self.span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__qualname__))
        self.span.end()

    def ended(self, exit_code: int | None) -> None:
        """The span ends; the child's records are collected now when it has exited (an exit
        code), else at this process's exit (it may still be running)."""
        if exit_code is not None:
            self._collect()
        elif self.children is not None:
            _uncollected.append(self)
        if exit_code is not None:
            self.span.set_attribute(attr.PROCESS_EXIT_CODE, exit_code)
            if exit_code != 0:
                self.span.set_status(trace.Status(trace.StatusCode.ERROR, f"exit code {exit_code}"))
        self.span.end()


class _environ_carrying:  # noqa: N801 - used as a context manager, reads like one
    """Temporarily make os.environ carry a span, for calls that inherit the environment."""

    def __init__(self, started: _Exec) -> None:
        self._started = started
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        self._saved = {name: os.environ.get(name) for name in _CARRIED}
        os.environ.update(self._started.environment(None))

    def __exit__(self, *exc_info: object) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start(api: str, argv: Any, cwd: Any = None) -> _Exec | None:
    """Start an exec span, or None when suppressed or when clew itself fails."""
    if _suppressed():
        return None
    with guard(api):
        if isinstance(argv, (str, bytes, os.PathLike)):
            argv = [argv]
        return _Exec(api, [os.fsdecode(a) for a in argv], os.fsdecode(cwd) if cwd else None)
    return None


# -- subprocess.Popen ---------------------------------------------------------------------------


def _popen_init(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt signature
    bound = None
    started = None
    if not _suppressed():
        preparing = guard("subprocess.Popen")
        with preparing:
            bound = _POPEN_SIGNATURE.bind(instance, *args, **kwargs)
            arguments = bound.arguments
            command = arguments["args"]
            if arguments.get("shell"):
                shell = os.fsdecode(command) if isinstance(command, (str, bytes)) else " ".join(
                    os.fsdecode(c) for c in command
                )
                argv: Any = ["/bin/sh", "-c", shell]
            else:
                argv = command
            started = _start("subprocess.Popen", argv, arguments.get("cwd"))
            if started is not None:
                env = arguments.get("env")
                arguments["env"] = started.environment(env)
        if preparing.failed_here:
            bound, started = None, None
    if started is None or bound is None:
        return wrapped(*args, **kwargs)
    call_args, call_kwargs = bound.args[1:], bound.kwargs
    try:
        result = wrapped(*call_args, **call_kwargs)
    except BaseException as error:
        started.failed(error)
        raise
    started.started(instance.pid)
    instance._clew_exec = started
    _open_execs.add(instance)
    return result


def _popen_settled(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt signature
    result = wrapped(*args, **kwargs)
    if instance.returncode is not None:
        started = instance.__dict__.pop("_clew_exec", None)
        if started is not None:
            _open_execs.discard(instance)
            started.ended(instance.returncode)
    return result


_open_execs: weakref.WeakSet = weakref.WeakSet()
# A forked child holds copies of its parent's running children; they are not its own.
reset_in_forked_child(_open_execs.clear)


_uncollected: list[_Exec] = []  # children whose exit this process never saw
reset_in_forked_child(_uncollected.clear)


def _end_running_children() -> None:
    """At exit, children still running end their spans without an exit code, and what every
    child never waited for did so far is recorded."""
    for instance in list(_open_execs):
        started = instance.__dict__.pop("_clew_exec", None)
        if started is not None:
            started.ended(None)
    _open_execs.clear()
    while _uncollected:
        _uncollected.pop()._collect()


# -- os ----------------------------------------------------------------------------------------


def _system(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
    command = args[0] if args else kwargs.get("command", "")
    started = _start("os.system", ["/bin/sh", "-c", os.fsdecode(command)])
    if started is None:
        return wrapped(*args, **kwargs)
    with _environ_carrying(started):
        status = wrapped(*args, **kwargs)
    started.ended(os.waitstatus_to_exitcode(status) if status >= 0 else None)
    return status


def _exec(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
    """os.execv/os.execve: the process is replaced, so everything is flushed first."""
    path, argv = args[0], args[1]
    started = _start(f"os.{wrapped.__name__}", argv or [path])
    if started is not None:
        started.span.set_attribute(attr.PROVENANCE_EXEC_REPLACED, True)
        try:
            if len(args) > 2:
                args = (path, argv, started.environment(args[2], watched=False))
            else:
                os.environ.update(started.environment(None, watched=False))
        finally:
            started.ended(None)
    close_recording(None)
    return wrapped(*args, **kwargs)


def _spawn(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
    mode, file, argv = args[0], args[1], args[2]
    started = _start(f"os.{wrapped.__name__}", argv or [file])
    if started is None:
        return wrapped(*args, **kwargs)
    with suppress_instrumentation():
        try:
            if len(args) > 3:  # the *ve variants take an explicit environment
                result = wrapped(mode, file, argv, started.environment(args[3]), **kwargs)
            else:
                with _environ_carrying(started):
                    result = wrapped(*args, **kwargs)
        except BaseException as error:
            started.failed(error)
            raise
    if mode == os.P_WAIT:
        started.ended(result)
    else:
        started.started(result)
        started.ended(None)
    return result


def _posix_spawn(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
    path, argv = args[0], args[1]
    env = args[2] if len(args) > 2 else kwargs.pop("env")
    started = _start(f"os.{wrapped.__name__}", argv or [path])
    if started is None:
        return wrapped(path, argv, env, *args[3:], **kwargs)
    try:
        pid = wrapped(path, argv, started.environment(env), *args[3:], **kwargs)
    except BaseException as error:
        started.failed(error)
        raise
    started.started(pid)
    started.ended(None)
    return pid


_OS_WRAPPERS = {
    "system": _system,
    "execv": _exec,
    "execve": _exec,
    "spawnv": _spawn,
    "spawnve": _spawn,
    "spawnvp": _spawn,
    "spawnvpe": _spawn,
    "posix_spawn": _posix_spawn,
    "posix_spawnp": _posix_spawn,
}


class ProcessesInstrumentor(ClewInstrumentor):
    """Instrumentor for subprocess, os.system, os.exec*, os.spawn* and os.posix_spawn*."""

    _instruments = _instruments

    def _start(self, **kwargs: Any) -> None:
        self.recorder.on_close.append(_end_running_children)
        self.wrap(subprocess.Popen, "__init__", _popen_init)
        self.wrap(subprocess.Popen, "wait", _popen_settled)
        self.wrap(subprocess.Popen, "poll", _popen_settled)
        for name, wrapper in _OS_WRAPPERS.items():
            if hasattr(os, name):
                self.wrap(os, name, wrapper)

    def _stop(self) -> None:
        recorder = self.recorder
        if _end_running_children in recorder.on_close:
            recorder.on_close.remove(_end_running_children)
