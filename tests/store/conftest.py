"""Fixtures for the ClickHouse store tests: embedded chDB stores and a real recorded pipeline.

chDB allows one process per store directory, and one open store path per process: every
test gets its own store under its tmp_path and closes it at teardown (`clew.exporter.store.connection`
caches clients, so a store the in-process CLI opened is closed too).

`pipeline` runs a small ML pipeline once per session under `opentelemetry-instrument`, in a
git work tree, and remembers what each run should have recorded (digests of the files as
they were when the run touched them). Tests copy its spool into a fresh CLEW_HOME
(`pipeline_home`) and ingest it into their own store, so no test sees another's store.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clew.exporter.store import connection as store
from clew.exporter.spool_files import spool_directory
from clew.query.spool import spool_runs
from clew.semconv import environment
from clew_test_helpers import clean_environment, digest_of, file_uri

BIN = Path(sys.executable).parent
OTEL_INSTRUMENT = BIN / "opentelemetry-instrument"
CLEW = BIN / "clew"
TIMEOUT = 120.0


def _clean_env(home: Path) -> dict[str, str]:
    """os.environ without OTEL_*/CLEW_* settings, with CLEW_HOME set to `home`."""
    return {**clean_environment(), environment.CLEW_HOME: str(home)}


def _run_clew(*args: str, home: Path, env: dict[str, str] | None = None,
             timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """`clew ARGS` as a subprocess with CLEW_HOME=`home`."""
    return subprocess.run(
        [str(CLEW), *args], env={**_clean_env(home), **(env or {})}, capture_output=True,
        text=True, timeout=timeout,
    )


@pytest.fixture
def clean_env() -> Callable[[Path], dict[str, str]]:
    """`clean_env(home)`: the caller's environment without OTEL_*/CLEW_*, CLEW_HOME=home."""
    return _clean_env


@pytest.fixture
def run_clew() -> Callable[..., subprocess.CompletedProcess]:
    """`run_clew(*args, home=..., env=...)`: `clew ARGS` as a subprocess."""
    return _run_clew


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    """A fresh embedded store for this test, closed (in this process) at teardown."""
    url = f"chdb://{tmp_path / 'db'}"
    yield url
    store.close(url)


@dataclass
class Run:
    """One run of the pipeline and what it must have recorded."""

    name: str
    argv: list[str]
    exit_code: int
    reads: dict[str, str]  # URI -> blake3 digest of the content the run read
    writes: dict[str, str]  # URI -> digest of the content the run wrote
    records: list[tuple[str, str, str, int, int]]  # (operation, URI, digest, size, count)
    git_commit: str
    git_dirty: bool
    run_id: str = ""
    start_ns: int = 0


@dataclass
class Pipeline:
    """A recorded pipeline: its spool (under `home`), its work tree and its runs in order."""

    home: Path
    work: Path
    runs: list[Run] = field(default_factory=list)

    def run(self, name: str) -> Run:
        """The run called `name` (e.g. "train-1")."""
        return next(r for r in self.runs if r.name == name)

    @property
    def spool(self) -> Path:
        return spool_directory(self.home)


FEATURES_PY = '''
def scale(text):
    """The project's own module: its file and digest are part of the run's code."""
    return text.upper()
'''

PREP_PY = '''
import subprocess, sys
raw = open("data/raw/a.csv").read() + open("data/raw/leak.csv").read()
# b.csv is read by a child process, which joins this run's trace
subprocess.run([sys.executable, "-c", "open('data/raw/b.csv').read()"], check=True)
raw += open("data/raw/b.csv").read()
with open("data/features.csv", "w") as out:
    out.write(raw)
'''

TRAIN_PY = '''
import os, sys
import features
epochs = int(sys.argv[sys.argv.index("--epochs") + 1])
text = open("data/features.csv").read()
labels = open("data/aux/labels.csv").read()   # a copy of the test set: contamination
os.makedirs("models", exist_ok=True)
with open("models/model.bin", "w") as out:
    out.write(features.scale(text) * epochs + labels)
'''

EVALUATE_PY = '''
model = open("models/model.bin").read()
test = open("data/test/test.csv").read()
test = open("data/test/test.csv").read()   # read twice: one record, count 2
with open("metrics.json", "w") as out:
    out.write('{"accuracy": %d}' % (len(model) % 97))
'''

FAIL_PY = '''
open("data/raw/a.csv").read()
raise RuntimeError("boom")
'''

TEST_CSV = "id,label\n1,cat\n2,dog\n"


def _git(work: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=clew", "-c", "user.email=clew@example.com", *args],
        cwd=work, check=True, capture_output=True, text=True,
    ).stdout.strip()


def _record_pipeline(root: Path) -> Pipeline:
    work, home = root / "work", root / "home"
    for directory in ("data/raw", "data/test", "data/aux"):
        (work / directory).mkdir(parents=True)
    for name, text in (("features.py", FEATURES_PY), ("prep.py", PREP_PY),
                       ("train.py", TRAIN_PY), ("evaluate.py", EVALUATE_PY),
                       ("fail.py", FAIL_PY), (".gitignore", "data/\nmodels/\nmetrics.json\n")):
        (work / name).write_text(textwrap.dedent(text).lstrip("\n"))
    data = work / "data"
    (data / "raw/a.csv").write_text("x,y\n1,2\n")
    (data / "raw/b.csv").write_text("x,y\n3,4\n5,6\n")
    (data / "raw/leak.csv").write_text("x,y\n7,8\n")
    (data / "test/test.csv").write_text(TEST_CSV)
    (data / "aux/labels.csv").write_text(TEST_CSV)
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "pipeline")
    commit = _git(work, "rev-parse", "HEAD")
    pipeline = Pipeline(home=home, work=work)
    # One flush at exit: the tests count the reads of each batched span, which a flush
    # between two reads (a slow child start on a loaded machine) would split.
    env = {**_clean_env(home), environment.CLEW_FLUSH_INTERVAL: "3600"}

    def state(operation: str, path: str, count: int = 1) -> tuple[str, str, str, int, int]:
        file = work / path
        return (operation, file_uri(file), digest_of(file.read_bytes()), file.stat().st_size, count)

    def run(name: str, script: str, *args: str, reads: list[str], writes: list[str],
            exit_code: int = 0, dirty: bool = False, counts: dict[str, int] | None = None
            ) -> None:
        """Run `script` instrumented. Each entry of `reads` is one record (a path listed
        twice is read by two processes); `counts` gives reads repeated in one process."""
        records = [state("read", p, (counts or {}).get(p, 1)) for p in reads]
        argv = [sys.executable, script, *args]
        done = subprocess.run([str(OTEL_INSTRUMENT), *argv], cwd=work, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == exit_code, f"{name}: {done.returncode}\n{done.stderr}"
        records += [state("write", p) for p in writes]
        pipeline.runs.append(Run(
            name, argv, exit_code,
            reads={r[1]: r[2] for r in records if r[0] == "read"},
            writes={r[1]: r[2] for r in records if r[0] == "write"},
            records=records, git_commit=commit, git_dirty=dirty,
        ))

    raw = ["data/raw/a.csv", "data/raw/leak.csv", "data/raw/b.csv", "data/raw/b.csv"]
    run("prep-1", "prep.py", reads=raw, writes=["data/features.csv"])
    run("train-1", "train.py", "--epochs", "1",
        reads=["data/features.csv", "data/aux/labels.csv"], writes=["models/model.bin"])
    run("evaluate-1", "evaluate.py", reads=["models/model.bin", "data/test/test.csv"],
        writes=["metrics.json"], counts={"data/test/test.csv": 2})
    # New raw data and an uncommitted change to train.py: features.csv gets a new digest
    # (so train-1's input "changed later"), and train-2 runs from a dirty tree.
    (data / "raw/a.csv").write_text("x,y\n1,2\n9,9\n")
    run("prep-2", "prep.py", reads=raw, writes=["data/features.csv"])
    (work / "train.py").write_text(textwrap.dedent(TRAIN_PY).lstrip("\n") + "# tuned\n")
    run("train-2", "train.py", "--epochs", "2",
        reads=["data/features.csv", "data/aux/labels.csv"], writes=["models/model.bin"],
        dirty=True)
    run("fail-1", "fail.py", reads=["data/raw/a.csv"], writes=[], exit_code=1, dirty=True)

    recorded = sorted(spool_runs(home), key=lambda r: r.start_ns)
    assert len(recorded) == len(pipeline.runs), [r.command for r in recorded]
    for expected, found in zip(pipeline.runs, recorded):
        assert found.command == expected.argv, (found.command, expected.argv)
        expected.run_id, expected.start_ns = found.run_id, found.start_ns
    return pipeline


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The pipeline, recorded once per session. Treat it as read-only: copy its spool."""
    return _record_pipeline(tmp_path_factory.mktemp("pipeline").resolve())


@pytest.fixture(scope="module")
def module_home(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLEW_HOME holding a copy of the pipeline's spool, shared by a module's tests that
    only read the store."""
    home = tmp_path_factory.mktemp("cli") / "home"
    shutil.copytree(pipeline.spool, spool_directory(home))
    return home


@pytest.fixture
def pipeline_home(pipeline: Pipeline, tmp_path: Path) -> Callable[[], Path]:
    """`pipeline_home()`: a fresh CLEW_HOME holding a copy of the pipeline's spool."""

    def copy() -> Path:
        home = tmp_path / "home"
        shutil.copytree(pipeline.spool, spool_directory(home))
        return home

    return copy
