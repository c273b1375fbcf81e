"""`clew sql` without --write reads the store's tables and nothing else.

Each statement runs through the installed `clew` program against a real embedded store filled
by the recorded pipeline. A refused statement exits 3 with one line naming what it refused,
and the file it aimed at is unchanged and was not read (its content is not in the output).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SECRET = "the-secret-line-clew-must-not-show"


@pytest.fixture
def sql(module_home, run_clew):
    """`sql(statement, *options)`: `clew sql STATEMENT` as a subprocess (the first ingests
    the pipeline's spool)."""

    def run(statement: str, *options: str) -> subprocess.CompletedProcess:
        return run_clew("sql", statement, *options, home=module_home)

    return run


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A file the statements aim at: they must neither read nor change it."""
    path = tmp_path / "target.txt"
    path.write_text(SECRET + "\n")
    return path


# Statements that must be refused, with a word the one-line error must contain. `{target}` is
# the file's absolute path.
REFUSED = {
    "file read": ("SELECT * FROM file('{target}', 'LineAsString')", "file()"),
    "file read, upper case keywords": ("select * from FILE('{target}', 'LineAsString')",
                                       "FILE()"),
    "file scalar": ("SELECT file('{target}')", "file()"),
    "insert into function file": (
        "INSERT INTO FUNCTION file('{target}', 'LineAsString') SELECT 'forged'", "INSERT"),
    "into outfile": ("SELECT 'forged' INTO OUTFILE '{target}' APPEND", "INTO OUTFILE"),
    "url": ("SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')", "url()"),
    "s3": ("SELECT * FROM s3('http://127.0.0.1:9/bucket/key', 'LineAsString')", "s3()"),
    "remote": ("SELECT * FROM remote('127.0.0.1:9', system.one)", "remote()"),
    "executable": (f"SELECT * FROM executable('echo {SECRET}', 'LineAsString', 'x String')",
                   "executable()"),
    "system": ("SYSTEM STOP MERGES", "SYSTEM"),
    "kill": ("KILL QUERY WHERE 1", "KILL"),
    "set readonly": ("SET readonly = 0", "SET"),
    "settings in the query": ("SELECT count() FROM clew_runs SETTINGS readonly = 0",
                              "SETTINGS"),
    "settings in a subquery": (
        "SELECT * FROM (SELECT count() FROM clew_runs SETTINGS readonly = 0)", "SETTINGS"),
    "cte hiding a table function": (
        "WITH t AS (SELECT * FROM file('{target}', 'LineAsString')) SELECT * FROM t",
        "file()"),
    "subquery hiding a table function": (
        "SELECT count() FROM clew_runs WHERE RunId IN "
        "(SELECT line FROM file('{target}', 'LineAsString'))", "file()"),
    "view hiding a table function": (
        "SELECT * FROM view(SELECT * FROM file('{target}', 'LineAsString'))", "file()"),
    "describe a table function": ("DESCRIBE file('{target}', 'LineAsString')", "file()"),
    "explain an insert": (
        "EXPLAIN INSERT INTO FUNCTION file('{target}', 'LineAsString') SELECT 'forged'",
        "not a read"),
    "an alias hiding file()": ("SELECT file('{target}') AS `a)b`", "file()"),
    "a line break in a name forging the parsed tree": (
        "SELECT 1 AS `x\nSelectWithUnionQuery`, 'forged' INTO OUTFILE '{target}' APPEND",
        "escapes"),
    "another database": ("SELECT * FROM system.processes", "system.processes"),
    "another database in IN": ("SELECT 1 WHERE 'x' IN system.one", "system.one"),
    "show processlist": ("SHOW PROCESSLIST", "SHOW PROCESSLIST"),
    "drop": ("DROP TABLE clew_io", "DROP"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_a_statement_that_reaches_outside_is_refused(sql, target, name):
    statement, says = REFUSED[name]
    done = sql(statement.format(target=target))
    assert done.returncode == 3, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("clew: error: "), done.stderr
    assert says in lines[0] and "--write" in lines[0], lines[0]
    assert SECRET not in done.stdout + done.stderr
    assert target.read_text() == SECRET + "\n"


@pytest.mark.parametrize("statement", [
    "SELECT 1; SELECT * FROM file('{target}', 'LineAsString')",
    "SELECT 1 /* harmless */ ; /* then */ INSERT INTO FUNCTION file('{target}', "
    "'LineAsString') SELECT 'forged'",
])
def test_a_second_statement_is_refused_before_any_runs(sql, target, statement):
    """chDB would run both, the first without the read-only setting."""
    done = sql(statement.format(target=target))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("clew: clew sql runs one statement, and this does not parse "
                                  "as one: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Multi-statements are not allowed" in done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert target.read_text() == SECRET + "\n"


def test_a_refused_statement_names_what_to_do(sql, target):
    done = sql(f"SELECT * FROM file('{target}', 'LineAsString')")
    assert done.stderr == ("clew: error: table function file() reaches outside the store's "
                           "tables: clew sql runs only with --write\n")


@pytest.mark.parametrize("statement", [
    "SELECT count() AS n FROM clew_runs FINAL",
    "select count() as n from default.otel_traces -- a comment ; with a semicolon",
    "WITH r AS (SELECT RunId FROM clew_runs FINAL) SELECT count() AS n FROM r",
    "SELECT count() AS n FROM clew_io WHERE RunId IN (SELECT RunId FROM clew_runs)",
    "SELECT count() AS n FROM numbers(3)",
    "SELECT sum(number) AS n FROM view(SELECT number FROM numbers(3))",
    "SHOW TABLES",
    "DESCRIBE TABLE clew_io",
    "EXISTS TABLE clew_io",
    "EXPLAIN SELECT count() FROM clew_io",
    "SELECT 'file(''/etc/passwd'')' AS n",
    "SELECT count() AS n FROM clew_runs;",
])
def test_reads_of_the_store_still_run(sql, statement):
    done = sql(statement, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"]


def test_write_runs_the_statement_as_given(sql, target):
    """--write is the owner's statement: it may reach files (docs/security.md)."""
    done = sql(f"INSERT INTO FUNCTION file('{target}', 'LineAsString') SELECT 'added'",
               "--write")
    assert done.returncode == 0, done.stderr
    assert target.read_text() == SECRET + "\nadded\n"
