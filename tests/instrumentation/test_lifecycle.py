"""Every way a program ends flushes its records and then ends exactly as it would have:
SIGTERM, SIGINT, and a signal during the final flush.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from clew.semconv import attributes as attr

pytestmark = pytest.mark.integration

WAIT = 60

SLEEPER = """
import time
for name in ("a.txt", "b.txt"):
    open(name).read()
with open("partial.txt", "w") as handle:
    handle.write("written before the signal")
# On one line, so the traceback names the same line wherever the signal lands.
print("ready", flush=True); time.sleep(60)
print("not reached")
"""


def _prepare(workdir) -> None:
    for name in ("a.txt", "b.txt"):
        (workdir / name).write_text(f"input {name}")


def _wait_ready(process) -> None:
    line = process.stdout.readline()
    assert line == "ready\n", (line, process.stderr.read() if process.poll() is not None else "")
    # Let the program reach its sleep, so the signal interrupts the same line every time.
    time.sleep(0.2)


def test_sigterm_flushes_records_and_still_dies_by_sigterm(start_instrumented, spool, workdir):
    """SIGTERM to a program that read and wrote files: its records reach the spool, and it
    dies by SIGTERM (returncode -15) as it would without clew."""
    _prepare(workdir)
    plain = start_instrumented(SLEEPER, instrumented=False)
    _wait_ready(plain)
    plain.send_signal(signal.SIGTERM)
    assert plain.wait(WAIT) == -signal.SIGTERM

    process = start_instrumented(SLEEPER)
    _wait_ready(process)
    process.send_signal(signal.SIGTERM)

    assert process.wait(WAIT) == -signal.SIGTERM
    assert process.stdout.read() == plain.stdout.read() == ""
    assert process.stderr.read() == plain.stderr.read() == ""
    run = spool.run()
    assert run.uris("read") == sorted(spool.uri(workdir / n) for n in ("a.txt", "b.txt"))
    assert spool.only(run, "write", workdir / "partial.txt").digest is not None
    assert run.exit_code == 128 + signal.SIGTERM
    assert run.status == "failed"


def test_program_with_its_own_sigterm_handler_keeps_it(start_instrumented, spool, workdir):
    """A program that handles SIGTERM itself (graceful shutdown) behaves exactly as before;
    its records and its own exit code are recorded."""
    _prepare(workdir)
    program = """
        import signal, sys, time
        def shutdown(signum, frame):
            print("graceful shutdown", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, shutdown)
        open("a.txt").read()
        print("ready", flush=True)
        time.sleep(60)
        """
    process = start_instrumented(program)
    _wait_ready(process)
    process.send_signal(signal.SIGTERM)

    assert process.wait(WAIT) == 0
    assert process.stdout.read() == "graceful shutdown\n"
    run = spool.run()
    assert run.uris("read") == [spool.uri(workdir / "a.txt")]
    assert (run.exit_code, run.status) == (0, "ok")


def test_sigint_raises_keyboardinterrupt_as_usual_and_flushes(start_instrumented, spool, workdir):
    """SIGINT: KeyboardInterrupt, the same traceback and the same exit (death by SIGINT) as
    without clew; the records reach the spool and the run says it was interrupted."""
    _prepare(workdir)
    plain = start_instrumented(SLEEPER, instrumented=False)
    _wait_ready(plain)
    plain.send_signal(signal.SIGINT)
    plain_code = plain.wait(WAIT)

    process = start_instrumented(SLEEPER)
    _wait_ready(process)
    process.send_signal(signal.SIGINT)

    assert process.wait(WAIT) == plain_code == -signal.SIGINT
    plain_err, err = plain.stderr.read(), process.stderr.read()
    assert err.splitlines()[-1] == "KeyboardInterrupt"
    assert err == plain_err
    assert process.stdout.read() == plain.stdout.read() == ""
    run = spool.run()
    assert run.uris("read") == sorted(spool.uri(workdir / n) for n in ("a.txt", "b.txt"))
    root = spool.run_span()
    assert root.attributes[attr.ERROR_TYPE] == "KeyboardInterrupt"
    assert run.exit_code == 128 + signal.SIGINT
    assert run.status == "failed"


def test_caught_keyboardinterrupt_is_the_programs_business(start_instrumented, spool, workdir):
    """A program that catches KeyboardInterrupt and exits cleanly does so under clew too."""
    _prepare(workdir)
    program = """
        import time
        open("a.txt").read()
        print("ready", flush=True)
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            print("stopped early")
        """
    process = start_instrumented(program)
    _wait_ready(process)
    process.send_signal(signal.SIGINT)

    assert process.wait(WAIT) == 0
    assert process.stdout.read() == "stopped early\n"
    assert process.stderr.read() == ""
    run = spool.run()
    assert (run.exit_code, run.status) == (0, "ok")
    assert run.uris("read") == [spool.uri(workdir / "a.txt")]


def test_sigterm_during_the_final_flush_loses_nothing(run_instrumented, spool, workdir):
    """A forked worker that read 20,000 files exits with os._exit and is sent SIGTERM while
    it flushes them (what Pool.terminate does to a worker that is finishing): every record
    still reaches the spool."""
    data = workdir / "data"
    data.mkdir()
    for i in range(20_000):
        fd = os.open(data / f"{i}.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, str(i).encode())
        os.close(fd)

    result = run_instrumented(
        """
        import os, signal, time
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            for i in range(20_000):
                with open(f"data/{i}.txt") as handle:
                    handle.read()
            os.write(w, b"x")
            os._exit(0)
        os.read(r, 1)
        time.sleep(0.02)  # the child is flushing its records now
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        print(pid)
        """
    )

    assert result.returncode == 0, result.stderr
    child = int(result.stdout)
    run = spool.run()
    reads = [a for a in run.accesses if a.operation == "read"]
    assert len({a.uri for a in reads}) == 20_000
    assert {a.pid for a in reads} == {child}
