"""A run killed with SIGKILL: nothing in it can flush, so what reaches the spool is what the
last flush wrote. Its records are there one flush interval (`CLEW_FLUSH_INTERVAL`, 1 s by
default) after the I/O, and the run is listed by `clew runs` and `clew spool` without an exit
code, although its root span never arrived.
"""

from __future__ import annotations

import signal
import sys
import time

import pytest

from clew.semconv.environment import DEFAULT_FLUSH_INTERVAL

pytestmark = pytest.mark.integration

# What the process needs beyond the flush interval to write the spool: a real margin, not a
# second interval (records used to wait for the span processor's schedule too).
MARGIN = 0.5

KILLED = """
import time
with open("input.txt") as handle:
    handle.read()
print("read", flush=True); time.sleep(60)
"""


def test_a_killed_run_keeps_its_records_and_is_listed(
    start_instrumented, scripts, workdir, spool, clew_cli
):
    (workdir / "input.txt").write_text("the input")
    process = start_instrumented(KILLED)
    line = process.stdout.readline()
    assert line == "read\n", process.stderr.read() if process.poll() is not None else line
    time.sleep(DEFAULT_FLUSH_INTERVAL + MARGIN)
    process.send_signal(signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL

    run = spool.run()
    assert spool.only(run, "read", workdir / "input.txt").digest
    assert (run.status, run.exit_code, run.end_ns) == ("incomplete", None, None)

    for command in ("spool", "runs"):
        result = clew_cli(command, "--format", "json")
        assert (result.code, result.err) == (0, ""), command
        [listed] = result.json()["runs"]
        assert (listed["run_id"], listed["status"], listed["exit_code"]) == (
            run.run_id, "incomplete", None), command
    assert listed["inputs"] == 1  # `clew runs` counts what the store holds of the run
    assert listed["command"] == [sys.executable, str(scripts / "prog.py")]
