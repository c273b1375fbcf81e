"""`clew diff` and `clew check --stale` over real runs.

Each scenario runs a small training program twice (or more) under opentelemetry-instrument,
changing one thing in between, and checks that `clew diff --format json` names that change
among its causes and nothing else, and what lineage and `check --stale` say about it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from clew.query.cli import ExitStatus

pytestmark = pytest.mark.integration

OTEL_INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"

TRAIN = """
import os, sys
import yaml  # clew parses a YAML config only in a program that imported PyYAML
config = open('config.yaml').read()
yaml.safe_load(config)
data = ''.join(open(os.path.join('data', n)).read() for n in sorted(os.listdir('data')))
open(sys.argv[1], 'w').write(f'{len(config)} {len(data)} {sys.argv[2:]}')
"""
PREPARE = """
import sys
open('features.csv', 'w').write(open('raw.csv').read().upper() + sys.argv[1])
"""
FIT = """
import sys
open(sys.argv[1], 'w').write(str(len(open('features.csv').read())))
"""
EVALUATE = """
import sys
open(sys.argv[2], 'w').write(str(len(open(sys.argv[1]).read()) > 0))
"""


def causes(document: dict) -> list[tuple[str, str, str]]:
    """(section, kind, name) of every cause in a diff, names of files shortened to the
    part under the working directory."""
    return [
        (c["section"], c["kind"], c["name"].rsplit("/work/", 1)[-1])
        for c in document["changes"]
        if c["section"] in ("input", "config", "code", "package", "argument", "environment")
    ]


def run_ids(clew_cli) -> list[str]:
    """Run ids, oldest first."""
    result = clew_cli("runs", "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    return [r["run_id"] for r in reversed(result.json()["runs"])]


@pytest.fixture
def training(workdir: Path) -> Path:
    (workdir / "data").mkdir()
    for name in ("a.csv", "b.csv"):
        (workdir / "data" / name).write_text(f"{name},1\n")
    (workdir / "config.yaml").write_text("lr: 0.1\n")
    return workdir


def test_one_changed_input_file_is_the_only_cause(training, run_instrumented, clew_cli):
    assert run_instrumented(TRAIN, "model.txt").returncode == 0
    (training / "data" / "b.csv").write_text("b.csv,22\n")
    assert run_instrumented(TRAIN, "model.txt").returncode == 0

    result = clew_cli("diff", "--format", "json")  # newest run against the previous one
    assert result.code == ExitStatus.OK, result.err
    document = result.json()
    assert document["schema"] == 1
    assert causes(document) == [("input", "changed", "data/b.csv")]
    outputs = [c for c in document["changes"] if c["section"] == "output"]
    assert [c["name"].rsplit("/", 1)[-1] for c in outputs] == ["model.txt"]


def test_one_argument_is_the_only_cause(training, run_instrumented, clew_cli):
    assert run_instrumented(TRAIN, "model.txt", "--epochs", "3").returncode == 0
    assert run_instrumented(TRAIN, "model.txt", "--epochs", "4").returncode == 0
    first, second = run_ids(clew_cli)

    document = clew_cli("diff", first[:8], second[:8], "--format", "json").json()
    ((section, kind, _),) = causes(document)
    assert (section, kind) == ("argument", "changed")
    (change,) = [c for c in document["changes"] if c["section"] == "argument"]
    assert (change["before"], change["after"]) == ("3", "4")
    assert document["a"]["run_id"] == first and document["b"]["run_id"] == second


def test_one_package_version_is_the_only_cause(training, run_instrumented, clew_cli, tmp_path):
    packages = tmp_path / "site"
    (packages / "featurize-1.0.dist-info").mkdir(parents=True)
    env = {"PYTHONPATH": str(packages)}
    assert run_instrumented(TRAIN, "model.txt", env=env).returncode == 0
    (packages / "featurize-1.0.dist-info").rename(packages / "featurize-1.1.dist-info")
    assert run_instrumented(TRAIN, "model.txt", env=env).returncode == 0

    document = clew_cli("diff", "--format", "json").json()
    assert causes(document) == [("package", "changed", "featurize")]
    (change,) = [c for c in document["changes"] if c["section"] == "package"]
    assert (change["before"], change["after"]) == ("1.0", "1.1")


def test_an_uncommitted_config_change_is_named_and_nothing_else(
    training, run_instrumented, clew_cli
):
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                       cwd=training, check=True, capture_output=True)

    git("init", "-q")
    git("add", "config.yaml")
    git("commit", "-q", "-m", "config")
    assert run_instrumented(TRAIN, "model.txt").returncode == 0
    (training / "config.yaml").write_text("lr: 0.3\n")  # edited, never committed
    assert run_instrumented(TRAIN, "model.txt").returncode == 0

    diff = clew_cli("diff", "--format", "json").json()
    # the config file's keys were recorded: it is compared key by key
    assert causes(diff) == [("config", "changed", "config.yaml: lr")]
    (change,) = [c for c in diff["changes"] if c["section"] == "config"]
    assert (change["before"], change["after"]) == ("0.1", "0.3")

    lineage = clew_cli("lineage", "model.txt", "--format", "json").json()
    (run,) = [n for n in lineage["nodes"] if n["kind"] == "run"]
    assert run["git_dirty"] is True and len(run["git_commit"]) == 40
    assert "config.yaml" in run["diff_files"]
    assert run["runtime"].startswith("cpython 3.") and run["packages"]
    (config,) = [n for n in lineage["nodes"] if n["uri"].endswith("/config.yaml")]
    assert config["digest"].startswith("blake3:")


def test_overwritten_input_each_model_names_what_it_read(workdir, run_instrumented, clew_cli):
    (workdir / "raw.csv").write_text("a,1\n")
    assert run_instrumented(PREPARE, "v1", name="prepare.py").returncode == 0
    assert run_instrumented(FIT, "old-model.txt", name="fit.py").returncode == 0
    # the preprocessing step runs again and overwrites features.csv
    assert run_instrumented(PREPARE, "version-two", name="prepare.py").returncode == 0
    assert run_instrumented(FIT, "new-model.txt", name="fit.py").returncode == 0
    prepare_1, _, prepare_2, _ = run_ids(clew_cli)

    def features(model: str) -> tuple[str, set[str]]:
        document = clew_cli("lineage", model, "--format", "json").json()
        (node,) = [n for n in document["nodes"] if n["uri"].endswith("/features.csv")]
        producers = {e["source"] for e in document["edges"] if e["target"] == node["id"]}
        return node["digest"], producers

    old_digest, old_producers = features("old-model.txt")
    new_digest, new_producers = features("new-model.txt")
    assert old_digest != new_digest
    assert old_producers == {prepare_1} and new_producers == {prepare_2}

    stale = clew_cli("check", "old-model.txt", "--stale", "--format", "json")
    assert stale.code == ExitStatus.CHECK_FAILED, stale.err
    (finding,) = stale.json()["findings"]
    assert finding["uri"].endswith("/features.csv") and finding["digest"] == old_digest
    fresh = clew_cli("check", "new-model.txt", "--stale")
    assert fresh.code == ExitStatus.OK, fresh.out + fresh.err


def test_diff_of_a_first_run_says_there_is_nothing_to_compare(training, run_instrumented,
                                                              clew_cli):
    assert run_instrumented(TRAIN, "model.txt").returncode == 0
    result = clew_cli("diff")
    assert result.code == ExitStatus.USAGE
    assert "no earlier run of prog.py" in result.err


def test_arguments_are_named_by_their_options(training, run_instrumented, clew_cli):
    assert run_instrumented(TRAIN, "model.txt", "--lr", "0.05", "--epochs", "3").returncode == 0
    # --epochs=3 is the same option and value as --epochs 3; --verbose is a flag.
    assert run_instrumented(TRAIN, "model-2.txt", "--lr", "0.2", "--epochs=3",
                            "--verbose").returncode == 0

    document = clew_cli("diff", "--format", "json").json()
    arguments = [(c["kind"], c["name"], c["before"], c["after"])
                 for c in document["changes"] if c["section"] == "argument"]
    assert sorted(arguments) == [("added", "--verbose", "", ""),
                                 ("changed", "--lr", "0.05", "0.2"),
                                 ("changed", "positional 1", "model.txt", "model-2.txt")]
    table = clew_cli("diff").out
    assert re.search(r"│ argument │ changed +│ --lr +│ 0\.05 +│ 0\.2 +│", table), table
    assert re.search(r"│ argument │ added +│ --verbose +│", table), table
    assert "argv[" not in table


def test_diff_without_runs_skips_a_newest_run_that_is_the_first_of_its_program(
    training, run_instrumented, clew_cli
):
    assert run_instrumented(TRAIN, "model.txt", "--epochs", "3").returncode == 0
    assert run_instrumented(TRAIN, "model.txt", "--epochs", "4").returncode == 0
    assert run_instrumented(EVALUATE, "model.txt", "score.txt", name="evaluate.py"
                            ).returncode == 0
    first, second, evaluation = run_ids(clew_cli)

    result = clew_cli("diff")
    assert result.code == ExitStatus.OK, result.err
    assert result.err == (f"the newest run, {evaluation[:12]}, is the first run of evaluate.py: "
                          f"comparing run {second[:12]}, the newest run of prog.py, with its "
                          "previous run\n")
    assert f"from run {first[:12]}" in result.out and f"to run {second[:12]}" in result.out
    document = clew_cli("diff", "--format", "json").json()
    assert (document["a"]["run_id"], document["b"]["run_id"]) == (first, second)
    assert document["chosen"] == result.err.rstrip("\n")
    # Naming the newest run still says it has nothing to compare with.
    named = clew_cli("diff", evaluation[:12])
    assert named.code == ExitStatus.USAGE and "no earlier run of evaluate.py" in named.err


PIPELINE_PREPARE = """
import sys
open('features.csv', 'w').write(open('raw.csv').read().upper())
"""
PIPELINE_TRAIN = """
import sys
open('model.txt', 'w').write(str(len(open('features.csv').read())))
"""


def test_a_commit_of_another_programs_code_ranks_below_the_changed_input(
    workdir, base_env, clew_cli
):
    """A pipeline in one git repository: a commit changes only prepare.py. train.py's diff
    names the input and the argument that changed first, then the new commit, which it says
    left train.py's own code unchanged."""
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                       cwd=workdir, check=True, capture_output=True)

    def run(script: str, *args: str) -> None:
        done = subprocess.run([str(OTEL_INSTRUMENT), sys.executable, script, *args], cwd=workdir,
                              env=base_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    (workdir / "raw.csv").write_text("a,1\n")
    (workdir / "prepare.py").write_text(PIPELINE_PREPARE)
    (workdir / "train.py").write_text(PIPELINE_TRAIN)
    (workdir / ".gitignore").write_text("*.csv\nmodel.txt\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "pipeline")
    run("prepare.py")
    run("train.py", "--epochs", "1")
    (workdir / "prepare.py").write_text(PIPELINE_PREPARE.replace(".upper()", " * 2"))
    git("commit", "-q", "-am", "prepare: twice the rows")
    run("prepare.py")
    run("train.py", "--epochs", "2")

    document = clew_cli("diff", "--format", "json").json()
    assert [c["command"][-3] for c in (document["a"], document["b"])] == ["train.py"] * 2
    assert causes(document) == [("input", "changed", "features.csv"),
                                ("argument", "changed", "--epochs"),
                                ("code", "changed", "git commit")]
    (commit,) = [c for c in document["changes"] if c["name"] == "git commit"]
    assert len(commit["before"]) == len(commit["after"]) == 40
    assert commit["note"] == ("train.py's own code is unchanged: every source file it "
                              "imported has the same content")
    lines = clew_cli("diff").out.splitlines()
    (input_row,) = [n for n, line in enumerate(lines) if "features.csv" in line]
    (argument_row,) = [n for n, line in enumerate(lines) if "--epochs" in line]
    (commit_row,) = [n for n, line in enumerate(lines) if "git commit" in line and "│" in line]
    assert input_row < argument_row < commit_row
    assert lines[-1] == f"git commit changed, but {commit['note']}"
    # The commit shows as `clew runs` shows commits; JSON keeps all 40 digits.
    assert re.search(rf"│ {commit['before'][:10]} +│ {commit['after'][:10]} +│$",
                     lines[commit_row]), lines[commit_row]


SWAPPED = """
import json, sys
config = json.load(open(sys.argv[sys.argv.index("--settings") + 1]))
open("model.txt", "w").write(str(config["lr"] * config["epochs"]))
"""


def test_a_config_file_of_its_own_is_compared_key_by_key(workdir, run_instrumented, clew_cli):
    """The second run is given another config file (`--settings experiments/lr.json`): its
    keys are compared with those of the file the first run read, named by the new file."""
    (workdir / "config.json").write_text('{"lr": 0.5, "epochs": 3}')
    (workdir / "experiments").mkdir()
    (workdir / "experiments" / "lr.json").write_text('{"lr": 0.1, "epochs": 3}')
    assert run_instrumented(SWAPPED, "--settings", "config.json").returncode == 0
    assert run_instrumented(SWAPPED, "--settings", "experiments/lr.json").returncode == 0
    document = clew_cli("diff", "--format", "json").json()
    assert causes(document) == [("config", "changed", "experiments/lr.json: lr"),
                                ("argument", "changed", "--settings")]
    (change,) = [c for c in document["changes"] if c["section"] == "config"]
    assert (change["before"], change["after"]) == ("0.5", "0.1")
