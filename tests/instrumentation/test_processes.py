"""Subprocesses and forks: one program's whole process
tree is one trace, and every Python process in it records its own I/O.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from clew.semconv import attributes as attr
from clew.semconv import spans as span_names
from clew_test_helpers import assert_succeeded, digest_of

pytestmark = pytest.mark.integration


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _single(items: list, what: str):
    assert len(items) == 1, f"expected one {what}, found {items}"
    return items[0]


def test_subprocess_tree_is_one_trace(run_instrumented, spool, workdir, scripts):
    """A Python child (subprocess.run), its Python grandchild, a failing child, a non-Python
    child and an os.system shell command: one run, one trace; each Python process's reads
    recorded under its own pid; every exec span with its exit code; the shell's cat recorded
    through clew's LD_PRELOAD library under its exec span; each child's process span under
    the exec span that started it."""
    for name in ("parent_in.txt", "child_in.txt", "grandchild_in.txt", "shell_in.txt"):
        (workdir / name).write_text(f"input {name}")
    grandchild = _write(
        scripts,
        "grandchild.py",
        """
        import os
        open("grandchild_in.txt").read()
        with open("grandchild_out.txt", "w") as handle:
            handle.write("made by the grandchild")
        print("grandchild", os.getpid())
        """,
    )
    child = _write(
        scripts,
        "child.py",
        f"""
        import os, subprocess, sys
        open("child_in.txt").read()
        print("child", os.getpid(), flush=True)
        subprocess.run([sys.executable, {str(grandchild)!r}], check=True)
        """,
    )

    result = run_instrumented(
        f"""
        import os, subprocess, sys
        open("parent_in.txt").read()
        print("parent", os.getpid(), flush=True)
        subprocess.run([sys.executable, {str(child)!r}], check=True)
        subprocess.run([sys.executable, "-c", "import sys; sys.exit(4)"])
        subprocess.run(["sh", "-c", "exit 7"])
        os.system("cat shell_in.txt > /dev/null")
        """
    )

    assert_succeeded(result)
    pids = {line.split()[0]: int(line.split()[1]) for line in result.stdout.splitlines()}
    assert set(pids) == {"parent", "child", "grandchild"}
    run = spool.run()

    # Each Python process's I/O, recorded by that process.
    for who in ("parent", "child", "grandchild"):
        read = spool.only(run, "read", workdir / f"{who}_in.txt")
        assert read.pid == pids[who]
        assert read.digest == digest_of(f"input {who}_in.txt".encode())
    written = spool.only(run, "write", workdir / "grandchild_out.txt")
    assert (written.pid, written.digest) == (pids["grandchild"], digest_of(b"made by the grandchild"))
    # The shell's cat, not a Python: its read recorded by clew's LD_PRELOAD library.
    cat_read = spool.only(run, "read", workdir / "shell_in.txt")
    assert cat_read.digest == digest_of(b"input shell_in.txt")
    assert cat_read.pid not in pids.values()

    # Every started program, with its exit code and whether it records its own I/O.
    by_pid = {e.pid: e for e in run.execs}
    assert by_pid[pids["child"]].exit_code == 0 and by_pid[pids["child"]].traced
    assert by_pid[pids["grandchild"]].exit_code == 0 and by_pid[pids["grandchild"]].traced
    failing = _single([e for e in run.execs if e.command[-1:] == ["import sys; sys.exit(4)"]], "exec")
    assert failing.exit_code == 4 and failing.traced
    shell = _single([e for e in run.execs if e.command == ["sh", "-c", "exit 7"]], "exec")
    assert shell.exit_code == 7 and shell.traced  # the library was loaded into it
    system = _single([e for e in run.execs if e.api == "os.system"], "os.system exec")
    assert system.command[-1] == "cat shell_in.txt > /dev/null"
    assert system.exit_code == 0 and system.traced

    # One trace; each child's process span hangs under the exec span that started it.
    spans = spool.spans()
    assert {s.trace_id for s in spans} == {run.run_id}
    execs = {s.attributes.get(attr.PROCESS_PID): s for s in spans if s.name == span_names.SPAN_EXEC}
    processes = {
        s.attributes[attr.PROCESS_PID]: s
        for s in spans
        if s.name in (span_names.SPAN_RUN, span_names.SPAN_PROCESS)
    }
    python_pids = set(pids.values()) | {failing.pid}
    assert set(processes) == python_pids, "one process span per Python process"
    root = processes[pids["parent"]]
    assert root.name == span_names.SPAN_RUN and not root.parent_span_id
    assert processes[pids["child"]].parent_span_id == execs[pids["child"]].span_id
    assert execs[pids["child"]].parent_span_id == root.span_id
    assert processes[pids["grandchild"]].parent_span_id == execs[pids["grandchild"]].span_id
    assert execs[pids["grandchild"]].parent_span_id == processes[pids["child"]].span_id
    failing_span = next(s for s in execs.values() if s.attributes.get(attr.PROCESS_EXIT_CODE) == 4)
    assert failing_span.status_code == "Error"
    # Every I/O record hangs under the process span of the Python process that did it, or
    # under the exec span of the program that is not Python (the shell's cat).
    system_span = next(
        s for s in execs.values() if s.attributes.get(attr.PROVENANCE_EXEC_API) == "os.system"
    )
    for span in spans:
        if attr.PROVENANCE_IO_OPERATION in span.attributes:
            owner = processes.get(span.attributes[attr.PROCESS_PID], system_span)
            assert span.parent_span_id == owner.span_id, span.name


POOL_PROGRAM = """
import json, multiprocessing, os, sys

def work(name):
    with open(name) as handle:
        return os.getpid(), handle.read()

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    pool = context.Pool(2)
    results = pool.map(work, [f"shard{i}.txt" for i in range(8)], chunksize=1)
    pool.close()
    pool.join()
    print(json.dumps({"parent": os.getpid(), "workers": sorted({pid for pid, _ in results})}))
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_pool_workers_record_their_reads(
    method, run_instrumented, spool, workdir
):
    """Pool workers (fork, spawn and forkserver start methods) record what they read, each
    under its own pid, in the run's trace."""
    for i in range(8):
        (workdir / f"shard{i}.txt").write_text(f"shard {i}")

    result = run_instrumented(POOL_PROGRAM, method)

    assert_succeeded(result)
    pids = json.loads(result.stdout)
    spool.wait_for_writers()
    run = spool.run()
    for i in range(8):
        read = spool.only(run, "read", workdir / f"shard{i}.txt")
        assert read.digest == digest_of(f"shard {i}".encode())
        assert read.pid in pids["workers"], (read.pid, pids)
    assert {s.trace_id for s in spool.spans()} == {run.run_id}


def test_pool_terminated_by_its_context_manager_still_records_worker_reads(
    run_instrumented, spool, workdir
):
    """`with Pool() as pool:` ends its workers with SIGTERM (Pool.terminate): they flush
    before they die."""
    for i in range(6):
        (workdir / f"shard{i}.txt").write_text(f"shard {i}")

    result = run_instrumented(
        """
        import multiprocessing, os

        def work(name):
            with open(name) as handle:
                return os.getpid(), handle.read()

        if __name__ == "__main__":
            with multiprocessing.get_context("fork").Pool(2) as pool:
                results = pool.map(work, [f"shard{i}.txt" for i in range(6)], chunksize=1)
            print(sorted({pid for pid, _ in results}))
        """
    )

    assert_succeeded(result)
    spool.wait_for_writers()
    run = spool.run()
    workers = set(json.loads(result.stdout))
    for i in range(6):
        assert spool.only(run, "read", workdir / f"shard{i}.txt").pid in workers


def test_forked_child_records_its_io_through_os_exit(run_instrumented, spool, workdir):
    """os.fork() then os._exit() in the child (no atexit): the child's read and write are
    recorded under its pid, in a "fork" process span under the run span."""
    (workdir / "forked_in.txt").write_text("read in the fork")

    result = run_instrumented(
        """
        import os
        pid = os.fork()
        if pid == 0:
            open("forked_in.txt").read()
            with open("forked_out.txt", "w") as handle:
                handle.write("written in the fork")
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(pid, os.waitstatus_to_exitcode(status))
        """
    )

    assert_succeeded(result)
    child_pid, child_status = map(int, result.stdout.split())
    assert child_status == 0
    run = spool.run()
    read = spool.only(run, "read", workdir / "forked_in.txt")
    assert (read.pid, read.digest) == (child_pid, digest_of(b"read in the fork"))
    written = spool.only(run, "write", workdir / "forked_out.txt")
    assert (written.pid, written.digest) == (child_pid, digest_of(b"written in the fork"))
    spans = spool.spans()
    root = _single([s for s in spans if s.name == span_names.SPAN_RUN], "run span")
    fork = _single(
        [s for s in spans if s.attributes.get(attr.PROVENANCE_PROCESS_ROLE) == "fork"],
        "fork process span",
    )
    assert fork.attributes[attr.PROCESS_PID] == child_pid
    assert fork.parent_span_id == root.span_id
    assert fork.trace_id == root.trace_id
    assert fork.attributes[attr.PROCESS_EXIT_CODE] == 0


def test_exec_of_a_missing_program_raises_as_usual_and_is_recorded(run_instrumented, spool):
    """subprocess.run of a program that does not exist raises FileNotFoundError exactly as
    without clew; the exec span records the failure."""
    result = run_instrumented(
        """
        import subprocess
        try:
            subprocess.run(["/nonexistent/tool", "--flag"])
        except FileNotFoundError as error:
            print(type(error).__name__, error.errno, error.filename)
        """
    )

    assert_succeeded(result)
    assert result.stdout == "FileNotFoundError 2 /nonexistent/tool\n"
    spans = spool.spans()
    exec_span = _single([s for s in spans if s.name == span_names.SPAN_EXEC], "exec span")
    assert exec_span.status_code == "Error"
    assert list(exec_span.attributes[attr.PROCESS_COMMAND_ARGS]) == ["/nonexistent/tool", "--flag"]


def test_child_environment_carries_traceparent(run_instrumented, spool):
    """The child gets TRACEPARENT for the exec span (the OpenTelemetry env-carrier spec),
    even when the program passes its own env= mapping."""
    result = run_instrumented(
        """
        import os, subprocess, sys
        code = "import os; print(os.environ.get('TRACEPARENT'))"
        subprocess.run([sys.executable, "-S", "-c", code], env={"PATH": os.environ["PATH"]})
        """
    )

    assert_succeeded(result)
    traceparent = result.stdout.strip()
    version, trace_id, span_id, flags = traceparent.split("-")
    exec_span = _single([s for s in spool.spans() if s.name == span_names.SPAN_EXEC], "exec")
    assert (version, trace_id, span_id) == ("00", exec_span.trace_id, exec_span.span_id)
    assert int(flags, 16) & 1, "sampled"


def test_every_way_to_start_a_python_child_joins_the_trace(run_instrumented, spool, workdir):
    """os.spawnv, os.posix_spawn, a shell=True command and os.system starting Python: each
    gives an exec span, and each child records its own read in the same trace."""
    names = ["spawnv", "posix_spawn", "shell", "system"]
    for name in names:
        (workdir / f"{name}.txt").write_text(f"read by {name}")

    result = run_instrumented(
        """
        import os, subprocess, sys
        def reader(name):
            return f"open('{name}.txt').read()"
        os.spawnv(os.P_WAIT, sys.executable, [sys.executable, "-c", reader("spawnv")])
        pid = os.posix_spawn(sys.executable, [sys.executable, "-c", reader("posix_spawn")],
                             os.environ)
        os.waitpid(pid, 0)
        subprocess.check_call(f'{sys.executable} -c "{reader("shell")}"', shell=True)
        os.system(f'{sys.executable} -c "{reader("system")}"')
        """
    )

    assert result.returncode == 0, result.stderr
    run = spool.run()
    for name in names:
        read = spool.only(run, "read", workdir / f"{name}.txt")
        assert read.digest == digest_of(f"read by {name}".encode()), name
    apis = sorted(e.api for e in run.execs)
    assert apis == ["os.posix_spawn", "os.spawnv", "os.system", "subprocess.Popen"]
    assert all(e.traced for e in run.execs), run.execs


def test_exec_replaces_the_process_after_flushing(run_instrumented, spool, workdir):
    """os.execv: what the program did before is flushed, and the new program joins the run
    and records its own I/O."""
    (workdir / "before.txt").write_text("read before exec")
    (workdir / "after.txt").write_text("read after exec")

    result = run_instrumented(
        """
        import os, sys
        open("before.txt").read()
        os.execv(sys.executable, [sys.executable, "-c", "open('after.txt').read()"])
        """
    )

    assert result.returncode == 0, result.stderr
    run = spool.run()
    before = spool.only(run, "read", workdir / "before.txt")
    after = spool.only(run, "read", workdir / "after.txt")
    assert before.digest == digest_of(b"read before exec")
    assert after.digest == digest_of(b"read after exec")
    exec_record = _single(run.execs, "exec")
    assert exec_record.api == "os.execv"
    exec_span = _single([s for s in spool.spans() if s.name == span_names.SPAN_EXEC], "exec")
    assert exec_span.attributes[attr.PROVENANCE_EXEC_REPLACED] is True
