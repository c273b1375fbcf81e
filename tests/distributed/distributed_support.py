"""Helpers for the distributed-run tests: real launchers on CPU, and what they
spooled. The `scenario` fixture (conftest.py) gives each test module a `Scenario`.

Each scenario module runs its launches once (module scope) in its own directory and
CLEW_HOME, with an environment cleaned of OpenTelemetry and clew settings and of every
launcher variable of the caller (a test session inside a SLURM job or under torchrun must
not leak its ranks into the programs under test). The spool is read back only through
clew's own reader, and `Observed` regroups its spans by trace and by process: the process
spans, and every read and write with the pid, rank and worker id of the process that
recorded it (the rank and worker from the span's resource, as the ClickHouse tables read
them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from clew.exporter.otlp_json import Span, iter_spans
from clew.exporter.spool_files import SpoolProblems, read_spool, spool_directory
from clew.semconv import attributes as attr
from clew.semconv import environment
from clew.semconv import spans as span_names
from clew_test_helpers import clean_environment, file_uri, wait_for_writers

BIN = Path(sys.executable).parent
OTEL_INSTRUMENT = str(BIN / "opentelemetry-instrument")
TORCHRUN = str(BIN / "torchrun")
PYTHON = sys.executable
TIMEOUT = 120.0

_LAUNCHER_PREFIXES = ("SLURM_", "OMPI_", "PMIX_", "PMI_", "TORCHELASTIC_")
_LAUNCHER_NAMES = (
    "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK",
    "MASTER_ADDR", "MASTER_PORT",
)
# What the test programs print for each file they read, one write per line so that lines
# of concurrent processes never interleave: `READ <rank and/or worker id> <pid> <path>`.
_READ_LINE = re.compile(r"^READ ((?:\d+ )+)(\S+)$", re.MULTILINE)


def clean_env(home: Path) -> dict[str, str]:
    """os.environ without OpenTelemetry, clew or launcher settings, with CLEW_HOME = home."""
    env = clean_environment(_LAUNCHER_PREFIXES, _LAUNCHER_NAMES)
    env[environment.CLEW_HOME] = str(home)
    env["OMP_NUM_THREADS"] = "1"  # two cores: torch's intra-op threads only contend
    return env


def make_files(directory: Path, count: int, size: int = 64) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"shard-{index:03d}.bin"
        path.write_bytes(bytes([index % 251]) * size)
        paths.append(path)
    return paths


@dataclass
class Scenario:
    """A directory to run launches in, its CLEW_HOME and its environment."""

    root: Path

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def home(self) -> Path:
        return self.root / "clew-home"

    @property
    def scripts(self) -> Path:
        return self.root / "scripts"

    def env(self, **extra: str) -> dict[str, str]:
        return {**clean_env(self.home), **extra}

    def script(self, text: str, name: str) -> str:
        self.scripts.mkdir(parents=True, exist_ok=True)
        path = self.scripts / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return str(path)

    def start(self, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            command,
            cwd=self.workdir,
            env=env or self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, command: list[str], env: dict[str, str] | None = None) -> Finished:
        return finish(self.start(command, env))

    def observed(self) -> Observed:
        wait_for_writers(spool_directory(self.home))
        return Observed.read(self.home)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Finished:
        assert self.returncode == 0, f"exit {self.returncode}\n{self.stdout}\n{self.stderr[-4000:]}"
        return self


def finish(process: subprocess.Popen) -> Finished:
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(f"timed out:\n{stdout}\n{stderr[-4000:]}") from None
    return Finished(process.returncode, stdout, stderr)


def said_reads(*outputs: str) -> set[tuple[int | str, ...]]:
    """What the programs said they read: (rank and/or worker id, pid, uri) for each
    `READ ...` line of `outputs`."""
    return {
        (*map(int, numbers.split()), file_uri(path))
        for output in outputs
        for numbers, path in _READ_LINE.findall(output)
    }


def assert_each_read_recorded_once(observed: Observed, said: set[tuple[int | str, ...]],
                                   files: int) -> None:
    """The programs said they read `files` files (`said_reads`: rank, pid, uri), and the one
    trace of their processes holds those reads and no other, each once, under that rank and pid."""
    assert len(said) == files
    run = observed.run_of_reads(said)
    recorded = {(a.rank, a.pid, a.uri) for a in run.accesses() if a.uri.endswith(".bin")}
    assert recorded == said
    assert not run.duplicates()


# -- what the spool holds ---------------------------------------------------------------------


@dataclass
class Process:
    """One process of a run, from its process span."""

    span: Span

    @property
    def pid(self) -> int:
        return self.span.attributes[attr.PROCESS_PID]

    @property
    def role(self) -> str:
        return self.span.attributes[attr.PROVENANCE_PROCESS_ROLE]

    @property
    def rank(self) -> int | None:
        return self.span.resource.get(attr.PROVENANCE_RANK)

    @property
    def exit_code(self) -> int | None:
        return self.span.attributes.get(attr.PROCESS_EXIT_CODE)

    @property
    def command(self) -> list[str]:
        return list(self.span.attributes.get(attr.PROCESS_COMMAND_ARGS, []))


@dataclass(frozen=True)
class Access:
    """One record of one file by one process, with where that process sits."""

    operation: str
    uri: str
    pid: int
    rank: int | None
    worker: int | None
    node: int | None


@dataclass
class Run:
    """Everything recorded in one trace."""

    trace_id: str
    spans: list[Span] = field(default_factory=list)

    @property
    def processes(self) -> list[Process]:
        names = (span_names.SPAN_RUN, span_names.SPAN_PROCESS)
        return [Process(s) for s in self.spans if s.name in names]

    @property
    def roots(self) -> list[Span]:
        return [s for s in self.spans if s.name == span_names.SPAN_RUN]

    @property
    def execs(self) -> list[Span]:
        return [s for s in self.spans if s.name == span_names.SPAN_EXEC]

    def process(self, pid: int) -> Process:
        found = [p for p in self.processes if p.pid == pid]
        assert len(found) == 1, f"expected one process span for pid {pid}, found {len(found)}"
        return found[0]

    def accesses(self, operation: str = "read") -> list[Access]:
        found = []
        for span in self.spans:
            a = span.attributes
            if a.get(attr.PROVENANCE_IO_OPERATION) != operation:
                continue
            uris = a.get(attr.PROVENANCE_ARTIFACTS_URI) or [a.get(attr.PROVENANCE_ARTIFACT_URI)]
            r = span.resource
            for uri in uris:
                found.append(
                    Access(
                        operation,
                        uri,
                        a[attr.PROCESS_PID],
                        r.get(attr.PROVENANCE_RANK),
                        r.get(attr.PROVENANCE_WORKER_ID),
                        r.get(attr.PROVENANCE_NODE_RANK),
                    )
                )
        return found

    def readers(self, uris: list[str]) -> dict[str, list[Access]]:
        """For each of `uris`, the records of it being read."""
        by_uri: dict[str, list[Access]] = defaultdict(list)
        for access in self.accesses("read"):
            if access.uri in uris:
                by_uri[access.uri].append(access)
        return {uri: by_uri.get(uri, []) for uri in uris}

    def duplicates(self) -> list[tuple[str, int]]:
        """(uri, pid) read twice or more: each process records each file version once."""
        counts = Counter((a.uri, a.pid) for a in self.accesses("read"))
        return [key for key, count in counts.items() if count > 1]


@dataclass
class Observed:
    runs: dict[str, Run]

    @classmethod
    def read(cls, home: Path) -> Observed:
        problems = SpoolProblems(corrupt=[], torn=[])
        runs: dict[str, Run] = {}
        for line in read_spool(spool_directory(home), problems):
            for span in iter_spans(line.data):
                runs.setdefault(span.trace_id, Run(span.trace_id)).spans.append(span)
        assert not problems.corrupt and not problems.torn, problems
        return cls(runs)

    def only(self) -> Run:
        assert len(self.runs) == 1, f"expected one trace, found {self.summary()}"
        return next(iter(self.runs.values()))

    def run_of(self, pids: set[int]) -> Run:
        """The one trace holding the reads of processes `pids` (one launch's processes)."""
        traces = {
            trace_id
            for trace_id, run in self.runs.items()
            if any(access.pid in pids for access in run.accesses())
        }
        assert len(traces) == 1, f"one launch's reads spread over traces {traces}"
        return self.runs[traces.pop()]

    def run_of_reads(self, said: set[tuple[int | str, ...]]) -> Run:
        """The one trace holding the reads the programs said they made (`said_reads`)."""
        return self.run_of({entry[-2] for entry in said})

    def summary(self) -> list[tuple[str, list[tuple[str, int, str]]]]:
        return [
            (t, [(p.span.name, p.pid, p.role) for p in r.processes]) for t, r in self.runs.items()
        ]


def has(program: str) -> bool:
    return shutil.which(program) is not None
