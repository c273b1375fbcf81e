"""File names with control characters and rich markup print as visible text in every human
format, and exactly in JSON.

A real program under opentelemetry-instrument reads a file and writes files whose names hold
a newline, an escape sequence, a carriage return, a tab and rich markup, and takes them as
arguments (so its command line holds them too); it runs twice, on changed input, so `clew
diff` has them to show.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from clew.query.cli import ExitStatus

pytestmark = pytest.mark.integration

OTEL_INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"

INPUT = "in\nput.csv"
OUTPUTS = ["\x1b[31mred.txt", "new\nline.txt", "carriage\rreturn.txt", "tab\there.txt",
           "[red]markup.txt"]
# How each name shows in a human format: escapes, and markup as the text it is.
SHOWN = {"\x1b[31mred.txt": "\\x1b[31mred.txt", "new\nline.txt": "new\\nline.txt",
         "carriage\rreturn.txt": "carriage\\rreturn.txt", "tab\there.txt": "tab\\there.txt",
         "[red]markup.txt": "[red]markup.txt", INPUT: "in\\nput.csv"}
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # all but the lines' own newline

PROGRAM = """
import sys
data = open(sys.argv[1]).read()
for name in sys.argv[2:]:
    with open(name, "w") as out:
        out.write(data)
"""


@pytest.fixture
def runs(base_env, workdir, clew_cli, monkeypatch):
    """Two runs of the program, the input changed in between; their run ids, oldest first.
    The program sits in the working directory and is named by a short relative path, so the
    names come early in its command line, within what `clew runs` shows of it."""
    monkeypatch.setenv("COLUMNS", "1000")  # rich's width: no name is folded or cut
    (workdir / "p.py").write_text(PROGRAM)
    for content in ("first\n", "second\n"):
        (workdir / INPUT).write_text(content)
        done = subprocess.run([str(OTEL_INSTRUMENT), sys.executable, "p.py", INPUT, *OUTPUTS],
                              cwd=workdir, env=base_env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
    listed = clew_cli("runs", "--format", "json")
    assert listed.code == ExitStatus.OK, listed.err
    return [run["run_id"] for run in reversed(json.loads(listed.out)["runs"])]


def assert_printable(out: str, *names: str) -> None:
    assert not RAW_CONTROL.search(out), repr(out)
    for name in names:
        assert SHOWN[name] in out, (name, out)


def test_lineage_tree_shows_names_escaped(runs, workdir, clew_cli):
    done = clew_cli("lineage", str(workdir / "new\nline.txt"))
    assert done.code == ExitStatus.OK, done.err
    assert_printable(done.out, "new\nline.txt", INPUT)
    # one line per node: the run, what it wrote, what it read
    assert len(done.out.splitlines()) == 3, done.out


def test_impact_tree_shows_names_escaped(runs, workdir, clew_cli):
    done = clew_cli("impact", str(workdir / INPUT))
    assert done.code == ExitStatus.OK, done.err
    assert_printable(done.out, INPUT, *OUTPUTS)


def test_runs_and_spool_tables_show_commands_escaped(runs, clew_cli):
    for args in (("runs",), ("spool",)):
        done = clew_cli(*args)
        assert done.code == ExitStatus.OK, done.err
        assert_printable(done.out, INPUT)
        assert len(done.out.splitlines()) == 7, done.out  # title, 3 rules, head, 2 runs
    one = clew_cli("spool", runs[0])
    assert one.code == ExitStatus.OK, one.err
    assert_printable(one.out, INPUT, *OUTPUTS)


def test_diff_shows_names_escaped(runs, clew_cli):
    done = clew_cli("diff", *runs)
    assert done.code == ExitStatus.OK, done.err
    assert_printable(done.out, INPUT, *OUTPUTS)


def test_an_error_naming_a_path_is_one_escaped_line(runs, workdir, clew_cli):
    done = clew_cli("lineage", str(workdir / "never\nwritten\x1b[2J.txt"))
    assert done.code == ExitStatus.USAGE
    assert done.err.count("\n") == 1 and not RAW_CONTROL.search(done.err), repr(done.err)
    assert "never\\nwritten\\x1b[2J.txt" in done.err


def test_sql_table_shows_values_escaped(runs, clew_cli):
    done = clew_cli("sql", "SELECT arrayStringConcat(Command, ' ') AS command FROM clew_runs",
                    "--format", "table")
    assert done.code == ExitStatus.OK, done.err
    assert_printable(done.out, INPUT, *OUTPUTS)


def test_json_keeps_the_exact_names(runs, workdir, clew_cli):
    graph = json.loads(clew_cli("impact", str(workdir / INPUT), "--format", "json").out)
    paths = {unquote(node["uri"]).rsplit("/", 1)[-1] for node in graph["nodes"]
             if node["kind"] == "artifact"}
    assert paths == {INPUT, *OUTPUTS}
    listed = json.loads(clew_cli("runs", "--format", "json").out)["runs"]
    assert [run["command"][-len(OUTPUTS) - 1:] for run in listed] == [[INPUT, *OUTPUTS]] * 2
