"""Nothing else about the program changes: the same stdout,
stderr and exit code as plain `python prog.py`, and no messages about collectors.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

# Messages OpenTelemetry prints when an OTLP exporter finds no collector.
COLLECTOR_NOISE = ("collector", "Failed to export", "Transient error", "Exception while exporting")

PROGRAMS = {
    "prints-and-raises": """
        import sys
        print("to stdout")
        print("to stderr", file=sys.stderr)
        sys.stdout.write("no newline")
        raise ValueError("the program's own error")
        """,
    "exits-3": """
        import sys
        print("about to exit")
        print("warning: giving up", file=sys.stderr)
        sys.exit(3)
        """,
    "exception-chain-and-warning": """
        import warnings
        warnings.warn("careful with that axe")
        try:
            {}["missing"]
        except KeyError as error:
            raise RuntimeError("lookup failed") from error
        """,
    "files-and-subprocesses": """
        import os, subprocess, sys
        with open("out.txt", "w") as handle:
            handle.write("data")
        print(open("out.txt").read(), flush=True)
        subprocess.run([sys.executable, "-c", "import sys; print('child out'); "
                        "print('child err', file=sys.stderr)"], check=True)
        sys.stdout.flush()
        os.system("echo shell out; echo shell err >&2; exit 2")
        code = subprocess.call([sys.executable, "-c", "raise SystemExit(5)"])
        print("child exit", code)
        """,
    "fork-and-pool": """
        import multiprocessing, os
        def square(x):
            return x * x
        if __name__ == "__main__":
            pid = os.fork()
            if pid == 0:
                print("in the fork", flush=True)
                os._exit(7)
            print("fork exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                print(pool.map(square, range(5)))
        """,
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_output_and_exit_code_are_identical_with_and_without_clew(
    name, run_instrumented, run_plain, spool
):
    """Same stdout, same stderr, same exit code as plain python; a run is recorded."""
    plain = run_plain(PROGRAMS[name])
    instrumented = run_instrumented(PROGRAMS[name])

    assert instrumented.stdout == plain.stdout
    assert instrumented.stderr == plain.stderr
    assert instrumented.returncode == plain.returncode
    for noise in COLLECTOR_NOISE:
        assert noise not in instrumented.stderr
    spool.wait_for_writers()
    assert spool.run().exit_code is not None
