"""SIGTERM while the main thread is stuck in native code: a rank
blocked in a collective when its launcher terminates it, because another rank failed.

Python runs signal handlers on the main thread between bytecodes, which a thread blocked in
C never reaches; clew's signal watcher (`_signal_watch`) flushes from a thread of its own
and then ends the process by the signal, as without clew. The stand-in for the collective
is a second lock of a pthread mutex through ctypes: it releases the GIL, as mpi4py and
torch's collectives do, and no signal interrupts it.
"""

from __future__ import annotations

import signal

import pytest

pytestmark = pytest.mark.integration

WAIT = 60
STUCK = """
import ctypes
open("a.txt").read()
with open("partial.txt", "w") as handle:
    handle.write("written before the signal")
libc = ctypes.CDLL(None)
mutex = ctypes.create_string_buffer(64)  # zeroed: PTHREAD_MUTEX_INITIALIZER on Linux
libc.pthread_mutex_lock(mutex)
print("ready", flush=True)
libc.pthread_mutex_lock(mutex)  # never returns
print("not reached")
"""


def test_sigterm_in_native_code_flushes_and_dies_by_sigterm(
    start_instrumented, spool, workdir, base_env
):
    # The watcher serves ranks of a distributed run (they block in collectives); the
    # generic RANK/WORLD_SIZE convention makes this program one.
    base_env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    (workdir / "a.txt").write_text("input")
    plain = start_instrumented(STUCK, instrumented=False)
    assert plain.stdout.readline() == "ready\n"
    plain.send_signal(signal.SIGTERM)
    assert plain.wait(WAIT) == -signal.SIGTERM

    process = start_instrumented(STUCK)
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)

    assert process.wait(WAIT) == -signal.SIGTERM
    run = spool.run()
    assert run.uris("read") == [spool.uri(workdir / "a.txt")]
    assert spool.only(run, "write", workdir / "partial.txt").digest is not None
    assert run.exit_code == 128 + signal.SIGTERM
    assert run.status == "failed"


def test_a_program_with_its_own_handler_is_left_to_it(start_instrumented, spool, workdir):
    """The watcher acts only while clew's handler is the one installed."""
    (workdir / "a.txt").write_text("input")
    program = """
        import signal, time
        handled = []
        signal.signal(signal.SIGTERM, lambda signum, frame: handled.append(signum))
        open("a.txt").read()
        print("ready", flush=True)
        while not handled:
            time.sleep(0.01)
        print("handled", flush=True)
        """
    process = start_instrumented(program)
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    assert process.wait(WAIT) == 0
    assert process.stdout.read() == "handled\n"
    assert spool.run().exit_code == 0
