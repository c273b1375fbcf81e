"""The instrumentors in code, with an SDK TracerProvider and an in-memory exporter:
span, hook failure, suppressed, uninstrumented, error passes through.

The recorder is one per process, with atexit and at-fork hooks, and an audit hook cannot be
removed: each case runs in a fresh interpreter (`python -c`), which prints its finished spans
as JSON for the test to check.
"""

from __future__ import annotations

import sys

from clew.semconv import attributes as attr
from clew.semconv import spans as span_names
from instrumentor_cases import digest as _digest
from instrumentor_cases import exec_spans as _exec_spans
from instrumentor_cases import io_spans as _io_spans
from instrumentor_cases import process_span as _process_span
from instrumentor_cases import run_case as _run_case


# -- FilesInstrumentor ------------------------------------------------------------------------


def test_files_instrumentor_records_reads_and_writes(base_env, workdir):
    """Instrumented: a read and a write, each with its digest, under the process span."""
    (workdir / "in.txt").write_text("input data")

    outcome = _run_case(
        """
        FilesInstrumentor().instrument()
        open("in.txt").read()
        with open("out.txt", "w") as handle:
            handle.write("output data")
        finish()
        """,
        base_env,
        workdir,
    )

    spans = _io_spans(outcome)
    process = _process_span(outcome)
    read = next(s for s in spans if s["name"] == span_names.SPAN_READ_FILE)
    assert read["attributes"][attr.PROVENANCE_ARTIFACTS_URI][0].endswith(str(workdir / "in.txt"))
    assert read["attributes"][attr.PROVENANCE_ARTIFACTS_DIGEST] == [_digest(b"input data")]
    write = next(s for s in spans if s["name"] == span_names.SPAN_WRITE_FILE)
    assert write["attributes"][attr.FILE_PATH] == str(workdir / "out.txt")
    assert write["attributes"][attr.PROVENANCE_ARTIFACT_DIGEST] == _digest(b"output data")
    assert {s["parent"] for s in spans} == {process["span_id"]}


def test_files_instrumentor_suppressed_records_nothing(base_env, workdir):
    """Inside suppress_instrumentation() nothing is recorded; afterwards recording goes on."""
    (workdir / "in.txt").write_text("input data")

    outcome = _run_case(
        """
        FilesInstrumentor().instrument()
        with suppress_instrumentation():
            open("in.txt").read()
            with open("out.txt", "w") as handle:
                handle.write("output data")
            os.listdir(".")
            os.remove("out.txt")
        open("after.txt", "w").write("after")
        finish()
        """,
        base_env,
        workdir,
    )

    paths = [s["attributes"].get(attr.FILE_PATH) for s in _io_spans(outcome)]
    assert paths == [str(workdir / "after.txt")]


def test_files_instrumentor_uninstrumented_records_nothing(base_env, workdir):
    """After uninstrument() the audit hook (which cannot be removed) records nothing;
    instrumenting again records again."""
    (workdir / "in.txt").write_text("input data")

    outcome = _run_case(
        """
        instrumentor = FilesInstrumentor()
        instrumentor.instrument()
        instrumentor.uninstrument()
        open("in.txt").read()
        open("out.txt", "w").write("output data")
        os.listdir(".")
        instrumentor.instrument()
        open("again.txt", "w").write("again")
        finish()
        """,
        base_env,
        workdir,
    )

    paths = [s["attributes"].get(attr.FILE_PATH) for s in _io_spans(outcome)]
    assert paths == [str(workdir / "again.txt")]


def test_files_instrumentor_passes_the_hosts_errors_through(base_env, workdir):
    """Opening a missing file or a directory raises exactly what it raises without clew,
    and nothing is recorded for it."""
    (workdir / "directory").mkdir()

    outcome = _run_case(
        """
        calls = {
            "missing": lambda: open("missing.txt"),
            "directory": lambda: open("directory"),
            "os.open": lambda: os.open("missing.bin", os.O_RDONLY),
            "remove": lambda: os.remove("missing.txt"),
            "listdir": lambda: os.listdir("no-such-directory"),
        }
        before = {name: failure(call) for name, call in calls.items()}
        FilesInstrumentor().instrument()
        after = {name: failure(call) for name, call in calls.items()}
        finish(before=before, after=after)
        """,
        base_env,
        workdir,
    )

    assert outcome["after"] == outcome["before"]
    assert outcome["before"]["missing"][:2] == ["FileNotFoundError", 2]
    assert outcome["before"]["directory"][0] == "IsADirectoryError"
    assert _io_spans(outcome) == []


def test_files_instrumentor_failing_hook_is_swallowed(base_env, workdir):
    """A failure inside clew's hook never reaches the program: the open works, the failure
    is logged once and kept on the process span."""
    (workdir / "in.txt").write_text("input data")

    outcome = _run_case(
        """
        FilesInstrumentor().instrument()
        recorder = _lifecycle.get_recorder()
        def broken(path, key):
            raise RuntimeError("simulated capture bug")
        # What both the C hook and the Python one call on a first read of a small file
        # while the digest cache is not loaded yet (a broken one never loads).
        recorder._digest_here = broken
        texts = [open("in.txt").read() for _ in range(3)]
        finish(texts=texts)
        """,
        base_env,
        workdir,
    )

    assert outcome["texts"] == ["input data"] * 3
    assert outcome["stderr"].count("simulated capture bug") == 1
    errors = _process_span(outcome)["attributes"][attr.PROVENANCE_CAPTURE_ERRORS]
    assert any("simulated capture bug" in e for e in errors)


# -- ProcessesInstrumentor --------------------------------------------------------------------


def test_processes_instrumentor_records_exec_spans(base_env, workdir):
    """subprocess.run and os.system give exec spans with argv, exit code and API, under the
    process span; the program sees the same results."""
    outcome = _run_case(
        """
        ProcessesInstrumentor().instrument()
        completed = subprocess.run([sys.executable, "-c", "import sys; sys.exit(2)"])
        output = subprocess.check_output(["echo", "hello"], text=True)
        status = os.system("exit 3")
        finish(returncode=completed.returncode, output=output, status=status)
        """,
        base_env,
        workdir,
    )

    assert (outcome["returncode"], outcome["output"], outcome["status"]) == (2, "hello\n", 3 << 8)
    spans = _exec_spans(outcome)
    by_args = {tuple(s["attributes"][attr.PROCESS_COMMAND_ARGS]): s for s in spans}
    python = by_args[(sys.executable, "-c", "import sys; sys.exit(2)")]
    assert python["attributes"][attr.PROCESS_EXIT_CODE] == 2
    assert python["attributes"][attr.PROVENANCE_EXEC_API] == "subprocess.Popen"
    assert python["status"] == "ERROR"
    echo = by_args[("echo", "hello")]
    assert echo["attributes"][attr.PROCESS_EXIT_CODE] == 0
    # Not Python, but dynamically linked: clew's LD_PRELOAD library recorded its I/O.
    assert echo["attributes"][attr.PROVENANCE_EXEC_TRACED] is True
    system = by_args[("/bin/sh", "-c", "exit 3")]
    assert system["attributes"][attr.PROCESS_EXIT_CODE] == 3
    assert system["attributes"][attr.PROVENANCE_EXEC_API] == "os.system"
    assert {s["parent"] for s in spans} == {_process_span(outcome)["span_id"]}


def test_processes_instrumentor_suppressed_records_nothing(base_env, workdir):
    outcome = _run_case(
        """
        ProcessesInstrumentor().instrument()
        with suppress_instrumentation():
            subprocess.run(["true"])
            os.system("true")
        subprocess.run(["echo", "after"], stdout=subprocess.DEVNULL)
        finish()
        """,
        base_env,
        workdir,
    )

    commands = [s["attributes"][attr.PROCESS_COMMAND_ARGS] for s in _exec_spans(outcome)]
    assert commands == [["echo", "after"]]


def test_processes_instrumentor_uninstrumented_records_nothing(base_env, workdir):
    """uninstrument() restores subprocess and os: no exec spans, and the originals are back."""
    outcome = _run_case(
        """
        original = (subprocess.Popen.__init__, os.system, os.execv, os.posix_spawn)
        instrumentor = ProcessesInstrumentor()
        instrumentor.instrument()
        wrapped = subprocess.Popen.__init__ is not original[0]
        instrumentor.uninstrument()
        restored = (subprocess.Popen.__init__, os.system, os.execv, os.posix_spawn) == original
        subprocess.run(["true"])
        os.system("true")
        finish(wrapped=wrapped, restored=restored)
        """,
        base_env,
        workdir,
    )

    assert outcome["wrapped"] and outcome["restored"]
    assert _exec_spans(outcome) == []


def test_processes_instrumentor_passes_the_hosts_errors_through(base_env, workdir):
    """A missing program raises FileNotFoundError and a failing check_call raises
    CalledProcessError, exactly as without clew; the exec spans record the failures."""
    outcome = _run_case(
        """
        calls = {
            "missing": lambda: subprocess.run(["/nonexistent/program", "--flag"]),
            "check_call": lambda: subprocess.check_call(["false"]),
            "bad cwd": lambda: subprocess.run(["true"], cwd="/nonexistent/dir"),
        }
        before = {name: failure(call) for name, call in calls.items()}
        ProcessesInstrumentor().instrument()
        after = {name: failure(call) for name, call in calls.items()}
        finish(before=before, after=after)
        """,
        base_env,
        workdir,
    )

    assert outcome["after"] == outcome["before"]
    assert outcome["before"]["missing"][:3] == ["FileNotFoundError", 2, "/nonexistent/program"]
    assert outcome["before"]["check_call"][0] == "CalledProcessError"
    by_args = {tuple(s["attributes"][attr.PROCESS_COMMAND_ARGS]): s for s in _exec_spans(outcome)}
    missing = by_args[("/nonexistent/program", "--flag")]
    assert missing["status"] == "ERROR"
    assert "exception" in missing["events"]
    failed = by_args[("false",)]
    assert failed["attributes"][attr.PROCESS_EXIT_CODE] == 1
    assert failed["status"] == "ERROR"


def test_processes_instrumentor_failing_hook_is_swallowed(base_env, workdir):
    """A failure inside clew's subprocess wrapper never reaches the program: the child runs
    as usual and the failure is kept on the process span."""
    outcome = _run_case(
        """
        from clew.instrumentation import processes
        ProcessesInstrumentor().instrument()
        class Broken:
            def __init__(self, *args, **kwargs):
                raise RuntimeError("simulated capture bug")
        processes._Exec = Broken
        completed = subprocess.run(["echo", "still runs"], capture_output=True, text=True)
        finish(stdout=completed.stdout, returncode=completed.returncode)
        """,
        base_env,
        workdir,
    )

    assert (outcome["stdout"], outcome["returncode"]) == ("still runs\n", 0)
    assert _exec_spans(outcome) == []
    errors = _process_span(outcome)["attributes"][attr.PROVENANCE_CAPTURE_ERRORS]
    assert any("simulated capture bug" in e for e in errors)


# -- the shared base --------------------------------------------------------------------------


def test_instrumentor_honours_the_tracer_provider_given(base_env, workdir):
    """instrument(tracer_provider=...) sends the records and the process span to that
    provider, not to the global one, and flushes it at the end."""
    (workdir / "in.txt").write_text("input data")

    outcome = _run_case(
        """
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        given_exporter = InMemorySpanExporter()
        given = TracerProvider()
        given.add_span_processor(BatchSpanProcessor(given_exporter))
        FilesInstrumentor().instrument(tracer_provider=given)
        open("in.txt").read()
        _lifecycle.close(0)
        finish(given=[s.name for s in given_exporter.get_finished_spans()])
        """,
        base_env,
        workdir,
    )

    assert outcome["spans"] == []
    assert sorted(outcome["given"]) == sorted([span_names.SPAN_READ_FILE, span_names.SPAN_RUN])
