"""Zero configuration, and provenance still spooled when opentelemetry-distro is installed too."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clew.query.cli import main
from clew.query.spool import spool_runs

BIN = Path(sys.executable).parent
PROGRAM = "open('data.txt').read()\nprint('ok')\n"


@pytest.fixture(scope="session")
def otel_distro_path(tmp_path_factory) -> Path:
    """opentelemetry-distro installed into its own directory, to put on PYTHONPATH."""
    target = tmp_path_factory.mktemp("otel-distro")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         "opentelemetry-distro~=0.66b0"],
        check=True,
    )
    return target


def _run(tmp_path: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "data.txt").write_text("hello")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "CLEW_", "TRACEPARENT", "TRACESTATE"))}
    env.update(CLEW_HOME=str(tmp_path / ".clew"), **extra_env)
    return subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, "prog.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def _read_uris(tmp_path: Path) -> list[str]:
    runs = spool_runs(tmp_path / ".clew")
    return [uri for run in runs for uri in run.uris("read")]


@pytest.mark.integration
def test_no_settings_spools_and_prints_nothing_extra(tmp_path):
    result = _run(tmp_path, {})
    assert result.returncode == 0 and result.stdout == "ok\n"
    assert result.stderr == ""
    assert _read_uris(tmp_path) == [f"file://{os.uname().nodename}{tmp_path}/data.txt"]


@pytest.mark.integration
def test_provenance_is_spooled_when_opentelemetry_distro_is_installed_too(tmp_path, otel_distro_path):
    # Whichever distro loads first (opentelemetry-distro, first on the path, does here, and
    # sends OTLP to a collector that is not running: its own choice), the spool still gets
    # the records, and the program's output and exit code are its own.
    result = _run(tmp_path, {"PYTHONPATH": str(otel_distro_path),
                             "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                             "OTEL_EXPORTER_OTLP_TIMEOUT": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert len(_read_uris(tmp_path)) == 1


@pytest.mark.integration
def test_otel_python_distro_clew_makes_clew_win(tmp_path, otel_distro_path):
    result = _run(
        tmp_path,
        {"PYTHONPATH": str(otel_distro_path), "OTEL_PYTHON_DISTRO": "clew",
         "OTEL_PYTHON_CONFIGURATOR": "clew"},
    )
    # OpenTelemetry itself notes the configurator it skipped; nothing else is said.
    assert result.returncode == 0
    assert [line for line in result.stderr.splitlines() if "not loaded" not in line] == []
    assert len(_read_uris(tmp_path)) == 1


@pytest.mark.integration
def test_doctor_warns_about_a_second_distro(tmp_path, otel_distro_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "TRACEPARENT", "TRACESTATE"))}
    env["PYTHONPATH"] = str(otel_distro_path)
    result = subprocess.run(
        [str(BIN / "clew"), "--home", str(tmp_path), "doctor"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0
    assert "another OpenTelemetry distro is installed (distro)" in result.stdout
    assert "OTEL_PYTHON_DISTRO=clew" in result.stdout


def test_doctor_in_process_reports_hooks_and_spool(tmp_path, monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    out = io.StringIO()
    assert main(["--home", str(tmp_path), "doctor", "--format", "json"], stdout=out) == 0
    assert '"clew_files (clew.instrumentation.files:FilesInstrumentor)"' in out.getvalue()
    assert str(tmp_path / "spool") in out.getvalue()
