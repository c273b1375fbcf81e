"""Act on SIGTERM from a thread of clew's own, while the main thread is stuck in native code.

Python runs a signal handler on the main thread, between bytecodes. A rank blocked in an
MPI or NCCL collective when its launcher terminates it (because another rank failed) never
gets there: the launcher's SIGKILL follows, and the rank's last records and its process span
would be lost. Python's C-level handler also writes the signal's number to the wakeup fd
(`signal.set_wakeup_fd`) at once, whatever the main thread does: a thread reading that fd
can flush and then end the process by the signal, as the default action would have.

The wakeup fd is one per process. asyncio takes it for `loop.add_signal_handler`; then this
watch goes quiet and the main-thread handler alone remains, as before. One taken already
(clew installs at start-up, so by a sitecustomize or a library imported earlier) is left
alone. A forked child inherits the pipe but not the thread, and would wake its parent's
watcher: it stops watching until `watch` is called in it again.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from collections.abc import Callable

from ._guard import guard, log


_lock = threading.Lock()
_pid: int | None = None  # the process whose watcher thread runs
_read_fd: int | None = None
_write_fd: int | None = None
_callbacks: dict[int, Callable[[int], None]] = {}


def watch(signum: int, callback: Callable[[int], None]) -> bool:
    """Call `callback(signum)` on a watcher thread whenever `signum` arrives and a Python
    handler is installed for it. Main thread only; False when the wakeup fd is taken."""
    global _pid, _read_fd, _write_fd
    if threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        _callbacks[signum] = callback
        if _pid == os.getpid():
            return True
        read_fd, write_fd = os.pipe()  # not inherited by exec'd children (O_CLOEXEC)
        os.set_blocking(write_fd, False)  # the C handler must never block
        try:
            previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (ValueError, OSError):
            previous = None
        if previous != -1:
            if previous is not None:
                signal.set_wakeup_fd(previous)  # someone else's: theirs to keep
            os.close(read_fd)
            os.close(write_fd)
            return False
        _pid, _read_fd, _write_fd = os.getpid(), read_fd, write_fd
    threading.Thread(target=_run, args=(read_fd,), name="clew-signals", daemon=True).start()
    return True


def _run(read_fd: int) -> None:
    while True:
        try:
            data = os.read(read_fd, 512)
        except OSError:
            return
        if not data:
            return
        for signum in set(data):
            callback = _callbacks.get(signum)
            if callback is None or _pid != os.getpid():
                continue
            with guard(f"handling signal {signum}", log):
                callback(signum)


def default_disposition(signum: int) -> bool:
    """Give `signum` its default action from any thread (Python's `signal.signal` works only on
    the main thread). False when libc cannot be reached."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.signal.restype = ctypes.c_void_p
        libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
        return libc.signal(signum, None) != ctypes.c_void_p(-1).value
    except (OSError, AttributeError):
        return False


def after_fork_in_child() -> None:
    """In a forked child: the parent's watcher thread and pipe are not this process's."""
    global _pid, _read_fd, _write_fd
    if _pid is None:
        return
    _pid = None
    try:
        current = signal.set_wakeup_fd(-1)
        if current != _write_fd:
            signal.set_wakeup_fd(current)  # not ours (asyncio's): put it back
    except (ValueError, OSError):
        pass
    for fd in (_read_fd, _write_fd):
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    _read_fd = _write_fd = None
    _callbacks.clear()

