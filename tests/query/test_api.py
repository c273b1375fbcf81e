"""The Python API `clew.query` declares: its names, their types and documentation, and the
example in docs/api.md, run as written over real recorded runs."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import clew.query

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BIN = Path(sys.executable).parent

PREPARE = """
open('features.csv', 'w').write(open('raw/data.csv').read().upper())
"""
TRAIN = """
import os
seen = [open('features.csv').read()]
seen += [open(os.path.join('train', name)).read() for name in sorted(os.listdir('train'))]
open('model.txt', 'w').write(str(len(''.join(seen))))
"""


def _example() -> str:
    text = DOC.read_text()
    block = text.split("<!-- BEGIN api-example", 1)[1].split("<!-- END api-example -->", 1)[0]
    return block.split("```python\n", 1)[1].split("```", 1)[0]


def test_every_public_name_resolves_documented_and_typed():
    for name in clew.query.__all__:
        value = getattr(clew.query, name)
        if callable(value):
            assert inspect.getdoc(value), f"{name} has no docstring"
        if inspect.isfunction(value):
            hints = typing.get_type_hints(value)
            assert "return" in hints, f"{name} has no return type"
            parameters = inspect.signature(value).parameters
            assert set(parameters) - {"options"} <= set(hints) | {
                p for p in parameters if parameters[p].kind is inspect.Parameter.VAR_KEYWORD
            }, f"{name} has an untyped parameter"
    assert sorted(dir(clew.query)) == sorted(clew.query.__all__)


def test_the_questions_are_functions_whatever_was_imported_first():
    """`lineage`, `diff` and `export` are module names too: the API's names for those
    questions stay the functions after the modules were imported directly."""
    code = ("import clew.query.lineage, clew.query.diff, clew.query.export\n"
            "from clew.query import diff_runs, export_graph, impact_graph, lineage_graph\n"
            "print([f.__name__ for f in (lineage_graph, impact_graph, diff_runs, export_graph)])"
            "\nprint(clew.query.lineage.Graph.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.split() == ["['lineage',", "'impact',", "'diff',", "'export']", "Graph"], (
        done.stderr)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        clew.query.fixes  # noqa: B018 - not part of the API


@pytest.mark.integration
def test_the_documented_example_runs(tmp_path: Path):
    work = tmp_path / "project"
    for folder in ("raw", "train", "test"):
        (work / folder).mkdir(parents=True)
    (work / "raw" / "data.csv").write_text("a,1\nb,2\n")
    (work / "train" / "part1.csv").write_text("x,1\n")
    (work / "test" / "holdout.csv").write_text("secret,9\n")
    (work / "prepare.py").write_text(PREPARE)
    (work / "train.py").write_text(TRAIN)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "CLEW_", "TRACEPARENT", "TRACESTATE"))}
    env["CLEW_HOME"] = str(work / ".clew")

    def run(*args: str) -> str:
        done = subprocess.run(list(args), cwd=work, env=env, capture_output=True, text=True,
                              timeout=180, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    instrument = str(BIN / "opentelemetry-instrument")
    run(instrument, sys.executable, "prepare.py")
    run(instrument, sys.executable, "train.py")
    shutil.copy(work / "test" / "holdout.csv", work / "train" / "part2.csv")
    run(instrument, sys.executable, "train.py")

    out = run(sys.executable, "-c", _example())

    runs = [line for line in out.splitlines() if re.match(r"[0-9a-f]{12} ok ", line)]
    assert len(runs) == 3, out
    assert re.search(r"^artifact file://\S+/raw/data\.csv$", out, re.M), out
    assert re.search(r"^run \S+ train\.py$", out, re.M), out
    assert "read digest" in out and re.search(r"^wrote (digest|stamp)$", out, re.M), out
    assert "3 runs used raw/data.csv" in out, out  # prepare.py, and train.py twice
    assert re.search(r"^test-data file://\S+/train/part2\.csv digest ", out, re.M), out
    assert "flowchart" in out, out
    assert re.search(r"^input added file://\S+/train/part2\.csv$", out, re.M), out
    assert '{"a": {"run_id": ' in out, out
