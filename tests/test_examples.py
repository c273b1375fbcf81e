"""The demo pipeline (examples/pipeline, what `make demo` runs) still works and still shows
what it claims: run in a copy outside the repository, its own checks must all pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clew_test_helpers import clean_environment

pytest.importorskip("numpy")

PIPELINE = Path(__file__).resolve().parent.parent / "examples" / "pipeline"
OUTPUTS = {"data", "features", "models", "metrics.json", ".clew", "__pycache__"}


@pytest.mark.integration
@pytest.mark.parametrize("where", ["copy", "in_repo"])
def test_demo_pipeline_captures_what_it_shows(tmp_path: Path, where: str) -> None:
    """`copy`: the pipeline as a user's own project would be, outside clew's checkout.
    `in_repo`: exactly what `make demo` runs, inside the checkout that clew is installed from
    in editable mode (clew must leave out its own package, not the whole checkout)."""
    if where == "copy":
        copy = tmp_path / "pipeline"
        shutil.copytree(
            PIPELINE, copy, ignore=lambda _dir, names: [n for n in names if n in OUTPUTS]
        )
    else:
        copy = PIPELINE
    result = subprocess.run(
        [sys.executable, str(copy / "demo.py")],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for step in ("make_data.py", "train.py", "evaluate.py"):
        assert f"$ opentelemetry-instrument python {step}" in out
    assert "$ clew spool" in out
    assert "\n  NO " not in out, out
    assert out.count("\n  ok ") >= 5, out
    # it ends with the questions: lineage back to the raw data, the diff of the two training
    # runs naming the new config file, why the training accuracy moved, and a clean
    # contamination check
    questions = out.split("$ clew lineage models/model.npz", 1)[-1]
    assert "data/raw/customers.csv" in questions.split("$ clew diff", 1)[0]
    assert "experiments/lr-0.1.json" in questions.split("$ clew diff", 1)[1]
    # why the training accuracy moved: the config key and the argument that changed
    why = questions.split("$ clew why train_accuracy", 1)[1].split("$ clew check", 1)[0]
    assert "experiments/lr-0.1.json: learning_rate" in why and "argument --config" in why
    assert "the data cannot separate" in why
    assert "ok: nothing upstream of models/model.npz is test data" in questions
    assert (copy / "metrics.json").is_file()
    assert list((copy / ".clew" / "spool").glob("*.jsonl"))
