"""What a user sees of a captured run: `clew spool`, `clew spool
RUN --format json` and `clew doctor`, run in-process through `clew.query.cli.main` with
injected streams, on a spool written by a real instrumented program.
"""

from __future__ import annotations

import io
import json

import blake3
import pytest

from clew.query.cli import ExitStatus, main
from clew.semconv import environment

PROGRAM = """
import os, subprocess, sys
open("raw.csv").read()
with open("features.csv", "w") as handle:
    handle.write("x,y\\n1,2\\n")
subprocess.run([sys.executable, "-c", "open('raw.csv').read()"], check=True)
os.system("true")
"""


OTEL_SETTINGS = ("OTEL_TRACES_EXPORTER", "OTEL_PYTHON_DISTRO", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def recorded(run_instrumented, spool, workdir, monkeypatch):
    """A spool holding one run of PROGRAM; the CLI sees this test's CLEW_HOME only."""
    (workdir / "raw.csv").write_text("a,b\n1,2\n")
    # Without clew's LD_PRELOAD library the shell is an opaque exec, as the CLI shows it.
    result = run_instrumented(PROGRAM, env={environment.CLEW_PRELOAD: "0"})
    assert result.returncode == 0, result.stderr
    for name in OTEL_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLEW_HOME", str(spool.home))
    # A wide terminal: these tests check what the tables say, not how rich fits them.
    monkeypatch.setenv("COLUMNS", "250")
    return spool.run()


@pytest.mark.integration
def test_clew_spool_lists_the_run(recorded):
    """`clew spool`: the run's id, status with exit code, and its counts of files read,
    files written and programs started."""
    code, out, err = _cli("spool")

    assert code == ExitStatus.OK, err
    assert recorded.run_id[:8] in out
    assert "ok (0)" in out
    row = next(line for line in out.splitlines() if recorded.run_id[:8] in line)
    # read: raw.csv (once per process, one URI); wrote: features.csv; execs: python, sh
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells[-3:] == ["1", "1", "2"], row


@pytest.mark.integration
def test_clew_spool_run_as_json(recorded, workdir):
    """`clew spool RUN --format json` (a prefix of the id is enough) gives the run with
    every access and exec, digests included."""
    code, out, err = _cli("spool", recorded.run_id[:10], "--format", "json")

    assert code == ExitStatus.OK, err
    document = json.loads(out)
    assert document["schema"] == 1
    (run,) = document["runs"]
    assert run["run_id"] == recorded.run_id
    assert (run["exit_code"], run["status"]) == (0, "ok")
    expected_write = "blake3:" + blake3.blake3((workdir / "features.csv").read_bytes()).hexdigest()
    writes = [a for a in run["accesses"] if a["operation"] == "write"]
    assert [a["digest"] for a in writes] == [expected_write]
    reads = [a for a in run["accesses"] if a["operation"] == "read"]
    assert len(reads) == 2 and len({a["pid"] for a in reads}) == 2
    assert sorted(e["traced"] for e in run["execs"]) == [False, True]
    assert len(run["processes"]) == 2


@pytest.mark.integration
def test_clew_spool_run_table_shows_artifacts(recorded, spool, monkeypatch):
    """`clew spool --home HOME RUN` prints the run's artifacts and the programs it started."""
    monkeypatch.delenv("CLEW_HOME")
    code, out, err = _cli("--home", str(spool.home), "spool", recorded.run_id)

    assert code == ExitStatus.OK, err
    assert recorded.run_id in out
    assert "features.csv" in out and "raw.csv" in out
    assert "exec (opaque, exit=0)" in out and "exec (traced, exit=0)" in out


@pytest.mark.integration
def test_clew_spool_unknown_run_is_a_usage_error(recorded):
    code, out, err = _cli("spool", "ffffffffffff")

    assert code == ExitStatus.USAGE
    assert "no run 'ffffffffffff'" in err
    assert out == ""


def test_clew_spool_of_an_empty_home_lists_nothing(tmp_path):
    code, out, err = _cli("--home", str(tmp_path / "empty"), "spool", "--format", "json")

    assert code == ExitStatus.OK, err
    assert json.loads(out) == {"schema": 1, "runs": []}


def test_clew_doctor_reports_hooks_and_spool(tmp_path, monkeypatch):
    """`clew doctor`: version, both capture hooks, the spool's location, no problems."""
    for name in OTEL_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLEW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")

    code, out, err = _cli("doctor", "--format", "json")

    assert code == ExitStatus.OK, err
    report = json.loads(out)
    assert report["spool"] == str(tmp_path / "home" / "spool")
    assert any(hook.startswith("clew_files ") for hook in report["hooks"])
    assert any(hook.startswith("clew_processes ") for hook in report["hooks"])
    assert "clew" in report["distros"] and "clew" in report["configurators"]
    traces_warnings = [w for w in report["warnings"] if "OTEL_TRACES_EXPORTER" in w]
    assert not traces_warnings

    code, out, err = _cli("doctor")
    assert code == ExitStatus.OK, err
    assert str(tmp_path / "home" / "spool") in out
    assert "clew_files" in out and "clew_processes" in out


@pytest.mark.parametrize(
    ("exporters", "warned"), [("otlp", True), ("console,otlp", True), ("clew,otlp", False)]
)
def test_clew_doctor_warns_when_traces_exporter_leaves_out_clew(
    exporters, warned, tmp_path, monkeypatch
):
    """OTEL_TRACES_EXPORTER without `clew` means no provenance in the spool: doctor says so."""
    monkeypatch.setenv("CLEW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", exporters)
    monkeypatch.setenv("COLUMNS", "250")

    code, out, err = _cli("doctor")

    assert code == ExitStatus.OK, err
    assert (f"OTEL_TRACES_EXPORTER={exporters} leaves out the spool" in out) is warned


def _column(table_text: str, index: int) -> list[str]:
    """The cells of one column of a rich box table, a cell's wrapped lines joined."""
    cells: list[str] = []
    for line in table_text.splitlines():
        parts = line.split("│")
        if len(parts) < index + 2:
            continue
        first, cell = parts[1].strip(), parts[index + 1].strip()
        if first:
            cells.append(cell)
        elif cells:
            cells[-1] += cell
    return cells


@pytest.mark.integration
def test_clew_spool_run_shows_whole_uris_at_80_columns(recorded, spool, workdir, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = _cli("spool", recorded.run_id)

    assert code == ExitStatus.OK, err
    uris = _column(out, 1)
    assert spool.uri(workdir / "features.csv") in uris
