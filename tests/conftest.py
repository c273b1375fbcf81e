"""Shared fixtures: run real programs under `opentelemetry-instrument` and read what clew spooled.

Every test gets its own temporary directory, working directory and CLEW_HOME, and an
environment cleaned of the caller's OTEL_* and CLEW_* settings, so what a test sees is what
`opentelemetry-instrument python prog.py` does with no settings at all. The spool is read
back only through clew's own reader (`clew.exporter.spool.read_spool`,
`clew.exporter.otlp_json.iter_spans`, `clew.query.spool.spool_runs`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clew.exporter.otlp_json import Span, iter_spans
from clew.exporter.spool_files import SpoolLine, SpoolProblems, read_spool, spool_directory
from clew.query.spool import Access, SpoolRun, spool_runs
from clew.semconv import environment
from clew.semconv import spans as span_names
from clew_test_helpers import CliResult, clean_environment, file_uri, invoke_clew, wait_for_writers

# The launcher installed next to this interpreter (the venv's), else the one on PATH.
OTEL_INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")
if not OTEL_INSTRUMENT.exists():
    OTEL_INSTRUMENT = Path(shutil.which("opentelemetry-instrument") or OTEL_INSTRUMENT)
TIMEOUT = 120.0


@dataclass
class Spool:
    """What clew wrote under one CLEW_HOME, read back through clew's own reader."""

    home: Path

    @property
    def directory(self) -> Path:
        return spool_directory(self.home)

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("*.jsonl")) if self.directory.is_dir() else []

    def lines(self) -> list[SpoolLine]:
        problems = SpoolProblems(corrupt=[], torn=[])
        lines = list(read_spool(self.directory, problems))
        assert not problems.corrupt, f"corrupt spool lines: {problems.corrupt}"
        assert not problems.torn, f"torn spool lines after the program ended: {problems.torn}"
        return lines

    def spans(self) -> list[Span]:
        return [span for line in self.lines() for span in iter_spans(line.data)]

    def run_span(self) -> Span:
        """The one run span (the root process's span) in the spool."""
        found = [s for s in self.spans() if s.name == span_names.SPAN_RUN]
        assert len(found) == 1, found
        return found[0]

    def runs(self) -> list[SpoolRun]:
        return spool_runs(self.home)

    def run(self) -> SpoolRun:
        """The one run in the spool (every process of a program joins one trace)."""
        runs = self.runs()
        summary = [(r.run_id, r.command, r.status) for r in runs]
        assert len(runs) == 1, f"expected one run (one trace) in the spool, found {summary}"
        return runs[0]

    @staticmethod
    def uri(path: str | os.PathLike[str]) -> str:
        return file_uri(path)

    @staticmethod
    def accesses(run: SpoolRun, operation: str, path: str | os.PathLike[str]) -> list[Access]:
        """The run's records of one operation on one local file."""
        uri = file_uri(path)
        return [a for a in run.accesses if a.operation == operation and a.uri == uri]

    @staticmethod
    def only(run: SpoolRun, operation: str, path: str | os.PathLike[str]) -> Access:
        """The single record of one operation on one file (one record per file version)."""
        found = Spool.accesses(run, operation, path)
        recorded = [(a.operation, a.uri) for a in run.accesses]
        assert len(found) == 1, (
            f"expected one {operation} record of {path}, found {found}; the run has "
            f"{len(recorded)} records: {recorded[:20]}{' ...' if len(recorded) > 20 else ''}"
        )
        return found[0]

    def text(self) -> str:
        """Every spool file's raw text, for checks that something never appears anywhere."""
        return "".join(path.read_text(encoding="utf-8") for path in self.files())

    def wait_for_writers(self, timeout: float = 15.0) -> None:
        """Wait until every process that has a spool file here has exited."""
        wait_for_writers(self.directory, timeout)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The programs' working directory (resolved: it is what os.getcwd() reports)."""
    directory = tmp_path / "work"
    directory.mkdir()
    return directory.resolve()


@pytest.fixture
def clew_home(tmp_path: Path) -> Path:
    """This test's CLEW_HOME, outside the working directory."""
    return (tmp_path / "clew-home").resolve()


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    """Where test programs are written: outside the working directory, so they are not data."""
    directory = tmp_path / "scripts"
    directory.mkdir()
    return directory.resolve()


@pytest.fixture
def spool(clew_home: Path) -> Spool:
    return Spool(clew_home)


@pytest.fixture
def base_env(clew_home: Path) -> dict[str, str]:
    """The environment every program runs with: clean, plus this test's CLEW_HOME."""
    env = clean_environment()
    env[environment.CLEW_HOME] = str(clew_home)
    return env


def write_script(directory: Path, script_text: str, name: str = "prog.py") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(script_text).lstrip("\n"), encoding="utf-8")
    return path


RunFunction = Callable[..., subprocess.CompletedProcess]


def _runner(
    instrumented: bool, scripts: Path, workdir: Path, base_env: dict[str, str]
) -> RunFunction:
    def run(
        script_text: str,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        name: str = "prog.py",
        timeout: float = TIMEOUT,
    ) -> subprocess.CompletedProcess:
        script = write_script(scripts, script_text, name)
        command = [sys.executable, str(script), *args]
        if instrumented:
            command.insert(0, str(OTEL_INSTRUMENT))
        return subprocess.run(
            command,
            cwd=cwd or workdir,
            env={**base_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,  # the exit code is what many tests look at
        )

    return run


@pytest.fixture
def run_instrumented(scripts: Path, workdir: Path, base_env: dict[str, str]) -> RunFunction:
    """`run_instrumented(script_text, *args, env=..., cwd=...)`: run the dedented script as
    `opentelemetry-instrument python prog.py ARGS` in the working directory, with no other
    setting than this test's CLEW_HOME (and `env`), and return the CompletedProcess."""
    return _runner(True, scripts, workdir, base_env)


@pytest.fixture
def run_plain(scripts: Path, workdir: Path, base_env: dict[str, str]) -> RunFunction:
    """The same as run_instrumented, as plain `python prog.py ARGS`: the control."""
    return _runner(False, scripts, workdir, base_env)


@pytest.fixture
def start_instrumented(
    scripts: Path, workdir: Path, base_env: dict[str, str]
) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start a program (instrumented unless `instrumented=False`) and return its Popen; for
    tests that signal it. The process is killed at teardown if still running."""
    started: list[subprocess.Popen] = []

    def start(
        script_text: str, *args: str, instrumented: bool = True, name: str = "prog.py"
    ) -> subprocess.Popen:
        script = write_script(scripts, script_text, name)
        command = [sys.executable, str(script), *args]
        if instrumented:
            command.insert(0, str(OTEL_INSTRUMENT))
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=base_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def clew_cli(clew_home: Path, workdir: Path) -> Callable[..., CliResult]:
    """`clew_cli(*args)`: `invoke_clew` with this test's CLEW_HOME and working directory."""
    return lambda *args: invoke_clew(clew_home, workdir, *args)



# `make test` runs the tests on two xdist workers with `--dist loadfile`: each test file is one
# unit of work, so that its module-scoped launches and servers run once, on one worker. The
# files that take longest (as measured with --durations) start first: with
# `--no-loadscope-reorder` xdist hands files out in this order, so that the workers finish
# together rather than one waiting for the other's last long file.
_LONGEST_FIRST = ("peers/", "distributed/test_dataloader.py",
                  "objectstores/test_contamination_matrix.py", "distributed/test_two_nodes.py",
                  "test_examples.py", "store/test_ingest.py", "distributed/test_torchrun.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def started_at(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0].removeprefix("tests/")
        return next((i for i, p in enumerate(_LONGEST_FIRST) if path.startswith(p)),
                    len(_LONGEST_FIRST))

    items.sort(key=started_at)
