"""What `clew` writes to a pipe: every value whole, on one line (a table off a terminal has no
80 columns to fit), digests in one short style in the table and whole in JSON, and `clew
sql`'s text formats, parsed back to exactly what `--format json` holds."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clew.query.cli import ExitStatus

pytestmark = pytest.mark.integration

CLEW = Path(sys.executable).parent / "clew"
# A path under the working directory longer than a terminal is wide.
FEATURES = ("experiments/2026-12-06-baseline-with-augmentation-and-a-longer-name/"
            "features/train-split-0001/features.npy")
SCALING = "def scale(x):\n    return x * {factor}\n"
TRAIN = f"""
import os, sys
import numpy as np
sys.path.insert(0, os.getcwd())  # the project's own module, next to the data
import scaling
np.save('model.npy', scaling.scale(np.load({FEATURES!r})))
"""
DIGEST = re.compile(r"blake3:[0-9a-f]{64}")


def piped(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`clew ARGS` as a user runs it in a pipeline: stdout is a pipe, not a terminal."""
    done = subprocess.run([str(CLEW), *args], cwd=workdir, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == ExitStatus.OK, done.stderr
    return done


@pytest.fixture
def two_runs(workdir, run_instrumented):
    """Two runs of one training program: the features and the project's scaling code
    changed in between."""
    import numpy as np

    (workdir / FEATURES).parent.mkdir(parents=True)
    for factor in (2, 3):
        np.save(workdir / FEATURES, np.arange(10) * factor)
        (workdir / "scaling.py").write_text(SCALING.format(factor=factor))
        done = run_instrumented(TRAIN)
        assert done.returncode == 0, done.stderr
    return workdir


def test_piped_diff_has_each_path_whole_on_one_line(two_runs, base_env, clew_cli):
    out = piped(two_runs, base_env, "diff").stdout
    (row,) = [line for line in out.splitlines() if "features.npy" in line]  # `| grep`
    assert f"│ {FEATURES} │" in row and "│ input" in row and "│ changed" in row
    # One style of digest in the table, code rows included: `clew lineage`'s 12 digits.
    (code,) = [line for line in out.splitlines() if "source: scaling.py" in line]
    assert len(re.findall(r"blake3:[0-9a-f]{12}…", code)) == 2, code
    assert not DIGEST.search(out), out
    # JSON keeps them whole.
    document = clew_cli("diff", "--format", "json").json()
    (source,) = [c for c in document["changes"] if c["name"] == "source: scaling.py"]
    assert DIGEST.fullmatch(source["before"]) and DIGEST.fullmatch(source["after"])


QUERY = ("SELECT Uri, Operation, 'a\\ttab, a \"quote\"\\nand a line' AS text, [1, 2] AS numbers, "
         "NULL AS nothing FROM clew_io WHERE endsWith(Uri, 'features.npy') ORDER BY RunId")


def test_piped_sql_is_tab_separated_with_every_value_whole(two_runs, base_env, clew_cli):
    expected = clew_cli("sql", QUERY, "--format", "json").json()
    assert len(expected["rows"]) == 2 and len(expected["rows"][0]["Uri"]) > 100

    lines = piped(two_runs, base_env, "sql", QUERY).stdout.splitlines()
    assert lines[0].split("\t") == expected["columns"]
    assert [line.split("\t")[0] for line in lines[1:]] == [
        row["Uri"] for row in expected["rows"]]
    # Asked for, the table in a pipe cuts nothing either.
    table = piped(two_runs, base_env, "sql", QUERY, "--format", "table").stdout
    for row in expected["rows"]:
        assert f"│ {row['Uri']} │" in table, table


def _unescape_tsv(field: str) -> str:
    escapes = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "0": "\0", "b": "\b", "f": "\f"}
    return re.sub(r"\\(.)", lambda found: escapes[found[1]], field)


def _typed(names: list[str], fields: list[str]) -> dict:
    """A row of text fields as `--format json` holds it: NULL as None, arrays as JSON."""
    row = dict(zip(names, fields))
    row["numbers"] = json.loads(row["numbers"])
    row["nothing"] = None if row["nothing"] == "\\N" else row["nothing"]
    return row


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_sql_text_formats_parse_back_exactly(fmt, two_runs, clew_cli):
    expected = clew_cli("sql", QUERY, "--format", "json").json()
    done = clew_cli("sql", QUERY, "--format", fmt)
    assert done.code == ExitStatus.OK, done.err
    if fmt == "jsonl":
        rows = [json.loads(line) for line in done.out.splitlines()]
    else:
        if fmt == "tsv":
            assert len(done.out.splitlines()) == 1 + len(expected["rows"])  # a row, a line
            table = [[_unescape_tsv(field) for field in line.split("\t")]
                     for line in done.out.splitlines()]
        else:
            table = list(csv.reader(io.StringIO(done.out)))
        assert table[0] == expected["columns"]
        rows = [_typed(table[0], fields) for fields in table[1:]]
    assert rows == expected["rows"]
