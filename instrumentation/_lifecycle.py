"""One recorder per process, and every way a process can end made to flush it.

Normal exit runs atexit (after an uncaught exception too, which the interpreter leaves in
sys.last_value); a forked child ends with os._exit (multiprocessing's fork and forkserver
workers do) where atexit never runs; SIGTERM's default action kills without atexit; os.exec*
replaces the process. Each of these flushes the recorder first and then behaves exactly as it
would have.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from opentelemetry import trace

from clew.instrumentation.version import __version__

from . import _ranks, _signal_watch, _stream_digests
from ._guard import guard, log, report_to
from ._joining import join_run
from ._process_span import ProcessSpan
from ._recorder import Recorder
from ._settings import Settings

_recorder: Recorder | None = None
# The tracer provider given to the instrumentor that made the recorder; None: the global one,
# which the recorder flushes itself at close.
_provider: trace.TracerProvider | None = None
_lock = threading.Lock()
_exit_code: int | None = None
_real_exit = sys.exit
_real_os_exit = os._exit
# A SIGTERM that arrived while this process was flushing: it is acted on when the flush ends.
_closing = False
_deferred_signal: int | None = None
# One flush at a time: a SIGTERM is handled on the main thread or on the signal watcher's
# (_signal_watch), whichever gets there first; the other waits, then the process ends.
_close_lock = threading.RLock()
# Set where a library's own SIGTERM handler exits quietly when its parent terminates the
# process (torch's DataLoader workers): says whether this SIGTERM is such a one.
_quiet_sigterm: Callable[[], bool] | None = None


def get_recorder(tracer_provider: trace.TracerProvider | None = None) -> Recorder:
    """This process's recorder, created (with its process span) on first call: its spans go
    to `tracer_provider`, else to the global provider. One recorder serves every
    instrumentor, so the first call's provider is the process's."""
    global _recorder
    if _recorder is None:
        with _lock:
            if _recorder is None:
                _recorder = _create(tracer_provider)
    return _recorder


def current_recorder() -> Recorder | None:
    """The recorder if one exists, without creating it."""
    return _recorder


def _create(tracer_provider: trace.TracerProvider | None) -> Recorder:
    global _provider
    _provider = tracer_provider
    tracer = trace.get_tracer("clew", __version__, tracer_provider=tracer_provider)
    membership = join_run(tracer)
    process = ProcessSpan(
        tracer,
        membership.role,
        membership.parent,
        root_ids=membership.root_ids,
        joined_by=membership.joined_by,
        deferred=membership.deferred,
    )
    recorder = Recorder(tracer, Settings.from_environment(), process)
    if not membership.deferred:
        process.context()  # the root span exists before any child can be started
    process.gather_in_background(os.getcwd())
    atexit.register(_at_exit)
    sys.exit = _exit  # type: ignore[assignment]
    os._exit = _os_exit  # type: ignore[assignment]
    _install_sigterm_handler()
    return recorder


def _report(where: str, error: BaseException) -> None:
    """Where `guard` sends a failure that names no recorder: this process's, made if need
    be, so the failure reaches the process span."""
    get_recorder().failed(where, error)


report_to(_report)


def close(exit_code: int | None, exception: BaseException | None = None) -> None:
    """Flush and end this process's recording (idempotent)."""
    global _closing
    recorder = _recorder
    if recorder is None:
        return
    if not recorder.owned_here:
        # A forked child signalled before its at-fork reset finished (Pool.terminate does
        # this to a worker it has just started): flushing would write the parent's records
        # and end the parent's span in this child's spool file.
        return
    with _close_lock:
        _closing = True
        try:
            with guard("flushing at exit", log):
                recorder.close(exit_code=exit_code, exception=exception)
        finally:
            _closing = False
        _flush_provider()
    if _deferred_signal is not None:
        _end_by(_deferred_signal)


def _flush_provider() -> None:
    """Export what the recorder ended to a provider given to `instrument()`."""
    force_flush = getattr(_provider, "force_flush", None)
    if callable(force_flush) and _provider is not trace.get_tracer_provider():
        with guard("flushing the tracer provider", log):
            force_flush()


def _exit_status(code: object) -> int:
    """What the interpreter turns a SystemExit code into."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def _exit(status: object = None) -> None:
    global _exit_code
    _exit_code = _exit_status(status)
    _real_exit(status)


def _at_exit() -> None:
    code, exception = _exit_code, None
    if code is None:
        # An uncaught exception: the interpreter stores it in sys.last_value before it runs
        # sys.excepthook, whoever installed that (rich, IPython and CLIs replace it), so
        # this sees every one. Wrapping sys.excepthook would miss those, and would make the
        # traceback's reads of source files look like the program's.
        last = getattr(sys, "last_value", None)
        if isinstance(last, BaseException) and not isinstance(last, SystemExit):
            # Python exits with 130 after an uncaught KeyboardInterrupt (SIGINT), else 1.
            code = 130 if isinstance(last, KeyboardInterrupt) else 1
            exception = last
    close(code if code is not None else 0, exception)


def _os_exit(status: int) -> None:
    close(status)
    _real_os_exit(status)


_fork_resets: list[Callable[[], None]] = [
    _signal_watch.after_fork_in_child,
    _stream_digests.after_fork_in_child,
]


def reset_in_forked_child(reset: Callable[[], None]) -> None:
    """Run `reset` in every forked child, before the recorder's own reset: for module state
    that holds the parent's threads, locks, descriptors or children. Every fork handler of
    the capture goes through here, so the order of the resets is this list's."""
    _fork_resets.append(reset)


def _after_fork_in_child() -> None:
    for reset in _fork_resets:
        with guard("resetting after fork", log):
            reset()
    recorder = _recorder
    if recorder is None:
        return
    global _exit_code, _closing, _deferred_signal, _quiet_sigterm, _close_lock
    _exit_code, _closing, _deferred_signal, _quiet_sigterm = None, False, None, None
    _close_lock = threading.RLock()  # the parent's may have been held by another thread
    parent = recorder.process.context() if recorder.process.started else None
    process = ProcessSpan(recorder._tracer, "fork", parent, time.time_ns())
    recorder.after_fork_in_child(process)


def _before_fork() -> None:
    recorder = _recorder
    if recorder is not None and recorder.owned_here:
        with guard("preparing a fork", log):
            recorder.before_fork()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _install_sigterm_handler() -> None:
    """Flush on SIGTERM when the program left it at its default (to die): then die the same
    way, by the same signal. A program with its own handler keeps it untouched."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        return
    if _ranks.detect().rank is not None:
        # Only ranks of a distributed run: they block in collectives (native code, where no
        # Python handler runs). A process that forks from a thread (multiprocessing.Pool
        # repopulating) can hand a child's SIGTERM to the watcher before the child's at-fork
        # reset runs, so ordinary programs keep to the Python handler.
        _signal_watch.watch(signal.SIGTERM, _on_sigterm_watched)


def take_sigterm(quiet: Callable[[], bool]) -> None:
    """Flush on SIGTERM in a process whose library put a C handler in place of the default
    one, which ends the process without a flush: torch's DataLoader worker `_exit(0)`s when
    its parent terminates it (at exit with persistent workers, or a loop left early), and
    dies by the signal otherwise. After the flush the process ends the same way, exiting
    with status 0 when `quiet()` says the parent sent the signal. Main thread only."""
    global _quiet_sigterm
    if threading.current_thread() is not threading.main_thread():
        return
    _quiet_sigterm = quiet
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        _quiet_sigterm = None
        return
    _signal_watch.watch(signal.SIGTERM, _on_sigterm_watched)


def _is_quiet(signum: int) -> bool:
    try:
        return signum == signal.SIGTERM and _quiet_sigterm is not None and _quiet_sigterm()
    # Not `guard`: this runs in a signal handler, where logging could wait forever on a lock
    # the interrupted thread holds.
    except Exception:  # noqa: BLE001 - never harm the host
        return False


def _on_sigterm(signum: int, frame: object) -> None:
    global _deferred_signal
    if _closing:
        # The signal interrupted a flush under way (at exit, in os._exit, or a Pool worker
        # finishing just as Pool.terminate signals it): dying here would lose that flush,
        # so `close` dies by this signal when the flush is done.
        _deferred_signal = signum
        return
    close(0 if _is_quiet(signum) else 128 + signum)
    _end_by(signum)


def _on_sigterm_watched(signum: int) -> None:
    """SIGTERM seen on the watcher thread: the main thread may be stuck in native code (a
    collective waiting for a rank that died) and never run `_on_sigterm`."""
    if signal.getsignal(signum) is not _on_sigterm:
        return  # the program has its own handler now: SIGTERM is its business
    close(0 if _is_quiet(signum) else 128 + signum)
    _end_by(signum)


def _end_by(signum: int) -> None:
    if _is_quiet(signum):
        _real_os_exit(0)
    _die_by(signum)


def _die_by(signum: int) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signum, signal.SIG_DFL)
    elif not _signal_watch.default_disposition(signum):
        _real_os_exit(128 + signum)  # the nearest a thread can come to dying by the signal
    os.kill(os.getpid(), signum)
