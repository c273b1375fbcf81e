"""The operating system's files that libraries read on a program's behalf (timezone data
pandas and zoneinfo read, /etc/os-release) are no inputs of the run in `clew lineage`, as
the standard library is not; CLEW_INCLUDE brings them back. A real pandas program under
opentelemetry-instrument.
"""

from __future__ import annotations

import pytest

from clew.query.cli import ExitStatus

pytestmark = pytest.mark.integration

PROGRAM = """
import platform
import pandas as pd
frame = pd.read_csv("events.csv", parse_dates=["t"])
local = frame["t"].dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
platform.freedesktop_os_release()
local.to_frame().to_csv("local.csv")
"""


@pytest.mark.parametrize(("include", "system_inputs"), [
    ("", set()),
    ("/usr/share/zoneinfo/*", {"/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/Europe/Paris"}),
])
def test_system_files_are_no_inputs_unless_included(
    run_instrumented, workdir, spool, clew_cli, include, system_inputs
):
    (workdir / "events.csv").write_text("t,v\n2024-01-01T10:00,1\n")
    env = {"CLEW_INCLUDE": include} if include else {}
    result = run_instrumented(PROGRAM, name="tz.py", env=env)
    assert result.returncode == 0, result.stderr

    lineage = clew_cli("lineage", "local.csv", "--format", "json")
    assert lineage.code == ExitStatus.OK, lineage.err
    graph = lineage.json()
    read = {e["source"] for e in graph["edges"] if e["kind"] == "read"}
    inputs = {n["uri"] for n in graph["nodes"] if n["id"] in read}
    assert inputs == {spool.uri(workdir / "events.csv")} | {
        spool.uri(path) for path in system_inputs}
