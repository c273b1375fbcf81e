"""Records the local files a program reads, writes, renames, copies, deletes and lists.

CPython's audit hooks see every Python-level open — builtins.open, io.open, os.open,
pathlib, and everything built on them (numpy, pickle, pandas, torch.save/load) — as well as
os.rename/os.replace, shutil's copies, os.remove/os.unlink, os.listdir and os.scandir.

Recorded: one record per distinct (file, content version) per process, repeated opens
counted on it, with a blake3 content digest. Not recorded: the import system's own reads,
the interpreter's standard library and site-packages, /proc, /sys, /dev, the operating
system's files (/etc, /usr/share, /usr/lib, /lib), clew's files, and
I/O that native code does without going through Python (see the README's coverage table).

Audit hooks cannot be removed once added, so `uninstrument()` turns the hook into a no-op.

The hook is C (`_open_hook.c`) when that extension was built: every event of the process goes
through it, and a plain read-only open is handled there; it calls the functions here for the
rest. Without the extension, `_audit` below is the hook, and does the same.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context

import blake3

from clew.instrumentation.package import _instruments
from clew.semconv.digests import BLAKE3_PREFIX
from clew.semconv.environment import STAMP_XATTR

from ._clew_io import clew_io
from ._instrumentor import ClewInstrumentor
from ._paths import absolute
from ._record_spans import Record
from . import _file_digests, _recorder
from ._recorder import Recorder

try:
    from . import _open_hook
except ImportError:  # not built (no compiler at install): the Python hook does it all
    _open_hook = None

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR
# The audit hook reads OpenTelemetry's suppression flag itself rather than calling
# is_instrumentation_enabled(): it runs on every open the program makes, and one look-up of
# the key that suppress_instrumentation() sets costs a fraction of that function's two. With
# OpenTelemetry's default runtime context, the current context is read from its context
# variable directly: one C call in place of get_value's three Python ones (~3,000
# instructions an open); with any other, through get_current().
_SUPPRESS_KEY = otel_context._SUPPRESS_INSTRUMENTATION_KEY
_context_variable = getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)
_current_context = (_context_variable.get if isinstance(_context_variable, ContextVar)
                    else otel_context.get_current)
_getframe = sys._getframe
# linecache and tokenize read source for tracebacks; importlib.metadata lists sys.path
# entries when anything asks for installed distributions or entry points.
_INTERPRETER_READERS = ("/linecache.py", "/tokenize.py", "/importlib/metadata/__init__.py")
# Frozen modules that open and list files for the interpreter itself. Not every frozen
# module does: os.walk runs in <frozen os> on the program's behalf.
_IMPORT_SYSTEM = ("<frozen importlib", "<frozen zipimport", "<frozen runpy", "<frozen site")


class _Hook:
    """Where the audit hook routes the few events clew handles: this process's recorder."""

    def __init__(self) -> None:
        self.recorder: Recorder | None = None
        self.handlers: dict[str, Callable[[Recorder, tuple], None]] = {
            "open": _on_open,
            "os.rename": _on_rename,
            "shutil.copyfile": _on_copy,
            "os.remove": _on_remove,
            "os.listdir": _on_list,
            "os.scandir": _on_list,
            "os.chdir": _on_chdir,
        }


def _audit(event: str, args: tuple) -> None:
    """The audit hook. It runs on every audit event of the process (imports, compiles,
    opens), so the common case, an event clew ignores, is one dict lookup; and it is a plain
    function, which the interpreter calls in half the time of an object's __call__."""
    handler = _handler_for(event)
    if handler is None:
        return
    recorder = _HOOK.recorder
    if recorder is None or clew_io.active or _current_context().get(_SUPPRESS_KEY):
        return
    # A bare try rather than `guard`: a try costs nothing until it raises, and entering a
    # context manager would cost every recorded open.
    try:
        handler(recorder, args)
    except Exception as error:  # noqa: BLE001 - never harm the host
        recorder.failed(f"file hook {event}", error)


# Resolving a path (absolute, normalised, filtered) costs more than the stat that follows;
# data loaders open the same relative paths again and again, so the answer is memoised per
# path as the program spelled it, and forgotten when the working directory changes. An entry
# costs ~250 bytes: the memo starts over past this many (unbounded, it holds 50 MB at 200,000 files).
_resolved: dict[object, str | None] = {}
_RESOLVED_MAX = 1 << 14
_UNRESOLVED = object()


def _recorded_path(recorder: Recorder, raw: object) -> str | None:
    """The absolute path clew records for a path the program gave, or None when clew leaves
    that path alone (its filter, or no path at all)."""
    # .get, not [raw]: a first open misses, and a raised KeyError costs more than the look-up.
    try:
        path = _resolved.get(raw, _UNRESOLVED)
    except TypeError:  # an unhashable path-like
        path = _UNRESOLVED
    if path is not _UNRESOLVED:
        return path
    path = absolute(raw)
    if path is not None and not recorder.filter.wants(path):
        path = None
    if type(raw) in (str, bytes):
        if len(_resolved) >= _RESOLVED_MAX:
            _resolved.clear()
        _resolved[raw] = path
    return path


def _on_chdir(recorder: Recorder, args: tuple) -> None:
    _resolved.clear()


def _from_interpreter() -> bool:
    """Whether the audited call comes from the interpreter's own machinery (see
    `_is_interpreter_code`)."""
    try:
        caller = _getframe(3).f_code.co_filename
    except ValueError:
        return True
    return _is_interpreter_code(caller)


def _is_interpreter_code(filename: str | None) -> bool:
    """Whether code of `filename` is the interpreter's own machinery: the import system
    (frozen importlib), linecache reading source for a traceback; None, no Python frame at
    all: the main script being opened."""
    return (filename is None or filename.startswith(_IMPORT_SYSTEM)
            or filename.endswith(_INTERPRETER_READERS))


def _from_dir_fd(raw: object, dir_fd: object) -> object:
    """A path the program gave relative to an open directory (`dir_fd`, as shutil.rmtree's
    descriptor-based walk does) made absolute, since resolving it against the working
    directory would name another file. `raw` itself without a dir_fd (-1); None when the
    directory cannot be known."""
    if not isinstance(dir_fd, int) or dir_fd < 0:
        return raw
    try:
        text = os.fsdecode(raw)  # type: ignore[arg-type]
    except TypeError:
        return None
    if os.path.isabs(text):
        return text
    try:
        directory = os.readlink(f"/proc/self/fd/{dir_fd}")  # Linux; elsewhere unknown
    except OSError:
        return None
    return os.path.join(directory, text)


def _on_open(recorder: Recorder, args: tuple) -> None:
    raw, _mode, flags = args
    path = _recorded_path(recorder, raw)
    if path is None:
        return
    # Only source files need the (costlier) look at who opens them.
    if path.endswith(".py") and _from_interpreter():
        return
    if not flags & _WRITE_FLAGS:
        recorder.read(path)
        return
    _opened_for_write(recorder, path, flags)


def _opened_for_write(recorder: Recorder, path: str, flags: int) -> None:
    """An open with write access (the C hook's too): "r+" reads the existing content."""
    keeps_content = not flags & os.O_TRUNC
    if flags & os.O_RDWR and keeps_content:
        recorder.read(path)
    recorder.opened_for_write(path, keeps_content=keeps_content)


def _on_rename(recorder: Recorder, args: tuple) -> None:
    # os.rename's audit arguments: (src, dst, src_dir_fd, dst_dir_fd)
    raw_source, raw_destination = _from_dir_fd(args[0], args[2]), _from_dir_fd(args[1], args[3])
    source = _recorded_path(recorder, raw_source) if raw_source is not None else None
    destination = _recorded_path(recorder, raw_destination) if raw_destination is not None else None
    if source is not None and destination is not None:
        recorder.renamed(source, destination)
    elif destination is not None:
        recorder.opened_for_write(destination, keeps_content=False)


def _on_copy(recorder: Recorder, args: tuple) -> None:
    destination = _recorded_path(recorder, args[1])
    source = absolute(args[0])
    if destination is not None and source is not None:
        recorder.copied(source, destination)


def _on_remove(recorder: Recorder, args: tuple) -> None:
    raw = _from_dir_fd(args[0], args[1])  # os.remove's audit arguments: (path, dir_fd)
    path = _recorded_path(recorder, raw) if raw is not None else None
    if path is not None:
        recorder.deleted(path)


def _on_list(recorder: Recorder, args: tuple) -> None:
    raw = args[0] if args and args[0] is not None else "."
    path = _recorded_path(recorder, raw)
    if path is not None and not _from_interpreter():
        recorder.listed(path)


_HOOK = _Hook()
_handler_for = _HOOK.handlers.get
_hook_added = False
_hook_in_c = False


class FilesInstrumentor(ClewInstrumentor):
    """Instrumentor for local file I/O through CPython's audit hooks."""

    _instruments = _instruments

    def _start(self, **kwargs: Any) -> None:
        global _hook_added, _hook_in_c
        _HOOK.recorder = self.recorder
        if not _hook_added:  # an audit hook is the interpreter's, for good
            _hook_in_c = _install_hook_in_c()
            if not _hook_in_c:
                sys.addaudithook(_audit)
            _hook_added = True
        if _hook_in_c:
            _open_hook.attach(self.recorder, self.recorder.filter.prefixes_only())

    def _stop(self) -> None:
        _HOOK.recorder = None
        if _hook_in_c:
            _open_hook.attach(None, None)


def _install_hook_in_c() -> bool:
    """Add the C audit hook; False when it was not built or another audit hook refused it."""
    if _open_hook is None:
        return False
    _configure_hook_in_c()
    return _open_hook.install()


def _configure_hook_in_c() -> None:
    """Give the C hook the functions and objects here it works with."""
    _open_hook.configure(
        hook=_audit,
        events=tuple(event for event in _HOOK.handlers if event != "open"),
        resolved=_resolved,
        recorded_path=_recorded_path,
        interpreter_code=_is_interpreter_code,
        opened_for_write=_opened_for_write,
        clew_io=clew_io,
        context_variable=_context_variable,
        current_context=_current_context,
        suppress_key=_SUPPRESS_KEY,
        blake3=blake3.blake3,
        prefix=BLAKE3_PREFIX,
        record=Record,
        digest_cache=_file_digests.DigestCache,
        memo=_file_digests._Memo,
        max_tracked=_recorder._MAX_TRACKED,
        spill_records=_recorder._SPILL_RECORDS,
        stamp_name=STAMP_XATTR.encode(),
    )
