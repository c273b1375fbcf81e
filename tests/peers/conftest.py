"""Third-party test suites, run twice: plain, and under `opentelemetry-instrument` (clew).

clew must not change what a program sees, and the best witness is other projects' own tests
of the libraries clew hooks. The s3fs suite comes from its sdist (the wheel has no tests), at
the version installed here (pinned by the test extra), downloaded once with `pip download`
into `.cache/peers/` at the repository root (ignored by git). fsspec's sdist ships only
`fsspec/tests/abstract/`, which its wheel installs too: those run from the installed package,
against s3fs (s3fs's own derived tests) and fsspec's local and memory filesystems.

Each run is a pytest subprocess writing a JUnit XML report; the outcome of every test is
compared between the two runs.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "peers"
# The whole s3fs suite takes ~6 min a run on 2 cores: longer than the other tests together.
SUITE_TIMEOUT = 1800.0


def _sdist(project: str, version: str) -> Path:
    """The sdist of `project` at `version`, downloaded once into CACHE."""
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"{project}-{version}.tar.gz"
    if not archive.exists():
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
             "--no-deps", "--no-binary", ":all:", f"{project}=={version}", "-d", str(CACHE)],
            capture_output=True, text=True, timeout=900, check=False,
        )
        assert result.returncode == 0, (
            f"pip download {project}=={version} failed:\n{result.stderr[-3000:]}")
    return archive


def _unpacked(project: str) -> Path:
    """The installed `project`'s sdist, unpacked in CACHE, with a pytest.ini of its own so
    that runs inside it use no configuration of clew's."""
    version = importlib.metadata.version(project)
    root = CACHE / f"{project}-{version}"
    if not (root / "pytest.ini").exists():
        shutil.rmtree(root, ignore_errors=True)
        with tarfile.open(_sdist(project, version)) as archive:
            archive.extractall(CACHE, filter="data")
        (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def s3fs_source() -> Path:
    """The unpacked s3fs sdist (its tests are in s3fs/tests/)."""
    return _unpacked("s3fs")


@pytest.fixture(scope="session")
def fsspec_backends(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding fsspec's abstract tests bound to its local and memory filesystems."""
    root = tmp_path_factory.mktemp("fsspec-suite")
    shutil.copy(Path(__file__).with_name("fsspec_backends.py"), root / "test_fsspec_backends.py")
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    return root


@dataclass
class SuiteRun:
    """One pytest run of a suite: each test's outcome, and the end of its output."""

    outcomes: dict[str, str]
    output: str

    def differences(self, other: SuiteRun) -> str:
        """Every test whose outcome differs in `other`, a line each: "test: this -> other"."""
        tests = sorted(set(self.outcomes) | set(other.outcomes))
        return "\n".join(
            f"{test}: {self.outcomes.get(test, 'not run')} -> {other.outcomes.get(test, 'not run')}"
            for test in tests if self.outcomes.get(test) != other.outcomes.get(test)
        )


def _outcomes(report: Path) -> dict[str, str]:
    """test id -> passed, failed, error or skipped (xfail included), from a JUnit XML report."""
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        test = f"{case.get('classname')}::{case.get('name')}"
        outcomes[test] = {"failure": "failed"}.get(kinds[0], kinds[0]) if kinds else "passed"
    return outcomes


@pytest.fixture
def run_suite(tmp_path: Path, base_env: dict[str, str]) -> Callable[..., SuiteRun]:
    """`run_suite(root, *pytest_args, instrumented=...)`: pytest in `root`, in a subprocess
    with the clean environment every test program gets, under opentelemetry-instrument or
    not; returns each test's outcome."""

    def run(root: Path, *args: str, instrumented: bool) -> SuiteRun:
        name = "clew" if instrumented else "plain"
        report = tmp_path / f"{name}.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={report}", *args]
        if instrumented:
            command.insert(0, str(Path(sys.executable).with_name("opentelemetry-instrument")))
        result = subprocess.run(command, cwd=root, env=base_env, capture_output=True,
                                text=True, timeout=SUITE_TIMEOUT, check=False)
        output = result.stdout[-3000:] + result.stderr[-3000:]
        assert report.exists(), f"the {name} run wrote no report:\n{output}"
        return SuiteRun(_outcomes(report), output)

    return run
