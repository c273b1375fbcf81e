"""`clew metrics`, `clew why`, `clew diff` (config keys, metric deltas) and `clew report` over
eight real runs of one training script.

The script reads one data file and a JSON config, imports a helper module, takes `--lr`, and
writes its accuracy (which depends on the data file alone) to metrics.json. Between runs the
learning rate, the data file, a config key and the helper module change, one at a time,
except once, when the data file and the config key change in the same run:

    run 1  baseline               run 5  helper module
    run 2  --lr 0.1 -> 0.2        run 6  data file + optimizer.momentum   (accuracy jumps)
    run 3  data file (jumps)      run 7  --lr 0.2 -> 0.3
    run 4  optimizer.momentum     run 8  helper module

Nothing in the script knows of clew: the metric file it writes and the config file it reads
are captured as they are (`metrics` and `config` spans), then ingested into the real store and
asked about through the CLI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from clew.query.cli import ExitStatus
from clew.semconv import environment
from clew_test_helpers import clean_environment, file_uri, invoke_clew

pytestmark = pytest.mark.integration

OTEL_INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")

TRAIN = """
import json, sys
import helper

lr = float(sys.argv[sys.argv.index("--lr") + 1])
rows = open("data/train.csv").read().splitlines()
config = json.load(open("configs/train.json"))
accuracy = helper.score(rows)
with open("metrics.json", "w") as out:
    json.dump({"accuracy": accuracy, "epochs": config["epochs"]}, out)
"""
HELPER = "def score(rows):\n    return round(len(rows) / 10, 3)\n"
CONFIG = {"optimizer": {"name": "sgd", "momentum": 0.9}, "epochs": 3}


@dataclass
class Scenario:
    work: Path
    home: Path
    runs: list[str]  # run ids, oldest first

    def clew(self, *args: str):
        return invoke_clew(self.home, self.work, *args)

    def uri(self, path: str) -> str:
        return file_uri(self.work / path)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("why")
    work, home = root / "work", root / "home"
    code = work  # the project: its code beside its data, as `cd project; python train.py`
    for directory in (work / "data", work / "configs"):
        directory.mkdir(parents=True)
    (code / "train.py").write_text(TRAIN)
    env = {**clean_environment(), environment.CLEW_HOME: str(home)}

    def data(rows: int) -> None:
        (work / "data" / "train.csv").write_text("".join(f"{n},x\n" for n in range(rows)))

    def config(momentum: float) -> None:
        settings = {**CONFIG, "optimizer": {**CONFIG["optimizer"], "momentum": momentum}}
        (work / "configs" / "train.json").write_text(json.dumps(settings, indent=1))

    def helper(version: int) -> None:
        (code / "helper.py").write_text(f"# version {version}\n{HELPER}")

    lr = ["0.1"]
    changes = [
        lambda: (data(3), config(0.9), helper(1)),
        lambda: lr.append("0.2"),
        lambda: data(5),
        lambda: config(0.8),
        lambda: helper(2),
        lambda: (data(8), config(0.7)),
        lambda: lr.append("0.3"),
        lambda: helper(3),
    ]
    for change in changes:
        change()
        done = subprocess.run([str(OTEL_INSTRUMENT), sys.executable, str(code / "train.py"),
                               "--lr", lr[-1]], cwd=work, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    listed = invoke_clew(home, work, "runs", "--format", "json").json()["runs"]
    return Scenario(work, home, [run["run_id"] for run in reversed(listed)])


def named(causes: list[dict]) -> set[tuple[str, str]]:
    return {(c["section"], c["name"]) for c in causes}


def test_metrics_lists_each_run_with_its_final_values_and_varying_causes(scenario):
    result = scenario.clew("metrics", "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    document = result.json()
    assert document["schema"] == 1 and document["program"] == "train.py"
    assert document["metrics"] == ["accuracy", "epochs"]
    assert [r["run_id"] for r in document["runs"]] == scenario.runs
    assert [r["metrics"]["accuracy"] for r in document["runs"]] == [
        0.3, 0.3, 0.5, 0.5, 0.5, 0.8, 0.8, 0.8]
    causes = [(c["section"], c["name"]) for c in document["causes"]]
    momentum = ("config", f"{scenario.uri('configs/train.json')}: optimizer.momentum")
    assert {("input", scenario.uri("data/train.csv")), momentum, ("argument", "--lr"),
            ("code", "source: helper.py")} <= set(causes)
    # a config file whose keys were recorded is compared by its keys, not as one input
    assert ("input", scenario.uri("configs/train.json")) not in causes
    column = causes.index(momentum)
    assert [r["causes"][column] for r in document["runs"]] == [
        "0.9", "0.9", "0.9", "0.8", "0.8", "0.7", "0.7", "0.7"]
    lr = causes.index(("argument", "--lr"))
    assert [r["causes"][lr] for r in document["runs"]] == ["0.1"] + ["0.2"] * 5 + [
        "0.3"] * 2

    table = scenario.clew("metrics", "--name", "accuracy")
    assert table.code == ExitStatus.OK, table.err
    assert "8 runs of train.py" in table.out and "epochs" not in table.out
    assert "optimizer.momentum" in table.out and "--lr" in table.out


def test_why_names_the_data_file_the_idle_causes_and_the_confounded_run(scenario):
    result = scenario.clew("why", "accuracy", "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    answer = result.json()
    assert answer["schema"] == 1 and answer["metric"] == "accuracy"
    assert answer["run"]["run_id"] == scenario.runs[-1]  # the newest run with the metric
    assert answer["previous"]["run_id"] == scenario.runs[-2] and answer["moved"] is False
    data = ("input", scenario.uri("data/train.csv"))
    momentum = ("config", f"{scenario.uri('configs/train.json')}: optimizer.momentum")
    history = {(h["section"], h["name"]): h for h in answer["history"]}
    assert history[data]["moved"] == "always"
    assert [c["run_id"] for c in history[data]["changes"]] == [scenario.runs[2],
                                                               scenario.runs[5]]
    assert history[("argument", "--lr")]["moved"] == "never"
    assert history[momentum]["moved"] == "sometimes"
    never = named(answer["never_moved"])
    assert {("argument", "--lr"), ("code", "source: helper.py")} <= never and data not in never
    # run 6: the data file and the config key changed together, and accuracy moved
    step = answer["series"][5]
    assert step["moved"] is True and {data, momentum} <= named(step["changed"])
    assert any("confounded there" in s and "data/train.csv" in s and "optimizer.momentum" in s
               for s in answer["summary"])
    assert [s["moved"] for s in answer["series"]] == [
        None, False, True, False, False, True, False, False]

    text = scenario.clew("why", "accuracy")
    assert text.code == ExitStatus.OK, text.err
    assert "did not move" in text.out and "accuracy never moved" in text.out


def test_why_in_the_confounded_run_ranks_the_data_file_first(scenario):
    result = scenario.clew("why", "accuracy", scenario.runs[5][:10], "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    answer = result.json()
    assert answer["moved"] is True and answer["delta"] == pytest.approx(0.3)
    first, *rest = answer["causes"]
    assert (first["section"], first["name"], first["evidence"]) == (
        "input", scenario.uri("data/train.csv"), "supported")
    (momentum,) = [c for c in rest if c["section"] == "config"]
    assert momentum["name"].endswith(": optimizer.momentum")
    assert (momentum["before"], momentum["after"], momentum["evidence"]) == (
        "0.8", "0.7", "contradicted")
    assert any(s.startswith("the move points to input") and "data/train.csv" in s
               for s in answer["summary"])


def test_why_says_when_a_metric_was_never_recorded(scenario):
    result = scenario.clew("why", "f1")
    assert result.code == ExitStatus.USAGE
    assert "no run in the store recorded the metric f1" in result.err


def test_diff_names_config_keys_and_metric_deltas(scenario):
    runs = scenario.runs
    document = scenario.clew("diff", runs[2], runs[3], "--format", "json").json()
    config = [c for c in document["changes"] if c["section"] == "config"]
    assert [(c["name"], c["before"], c["after"]) for c in config] == [
        (f"{scenario.uri('configs/train.json')}: optimizer.momentum", "0.9", "0.8")]
    assert not [c for c in document["changes"]
                if c["section"] == "input" and c["name"].endswith("train.json")]
    assert not [c for c in document["changes"] if c["section"] == "metric"]

    document = scenario.clew("diff", runs[1], runs[2], "--format", "json").json()
    (metric,) = [c for c in document["changes"] if c["section"] == "metric"]
    assert (metric["name"], metric["before"], metric["after"], metric["note"]) == (
        "accuracy", "0.3", "0.5", "+0.2")
    table = scenario.clew("diff", runs[2], runs[3])
    assert re.search(r"configs/train\.json: optimizer\.momentum.*0\.9.*0\.8", table.out)


# --- the report in a real browser ---------------------------------------------------------

def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no chromium on PATH (`make test` installs Debian's chromium package)")


def test_report_draws_each_metric_over_the_runs_in_a_browser(scenario, tmp_path):
    page = tmp_path / "report.html"
    result = scenario.clew("report", "-o", str(page))
    assert result.code == ExitStatus.OK, result.err
    text = page.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)  # nothing fetched
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120, env={**os.environ})
    assert dom.returncode == 0, dom.stderr[-2000:]
    charts = re.findall(r'<svg class="metric" data-metric="(\w+)"', dom.stdout)
    assert charts == ["accuracy", "epochs"]
    # every run a point in each chart, linked to the run's section; the runs where a cause
    # changed (all but the first) ringed
    assert dom.stdout.count('class="point"') == 2 * 8
    assert dom.stdout.count('class="changed"') == 2 * 7
    for run in scenario.runs:
        assert f'id="run-{run}"' in dom.stdout and f'href="#run-{run}"' in dom.stdout
    assert "optimizer.momentum: 0.8 -&gt; 0.7" in dom.stdout
    assert "data/train.csv" in dom.stdout


NOISY = """
import json, os
rows = open("train.csv").read().splitlines()
# what clew does not see: the environment stands for a seed or nondeterministic hardware
accuracy = len(rows) / 10 + float(os.environ.get("JITTER", 0)) + float(os.environ.get("BOOST", 0))
json.dump({"accuracy": accuracy}, open("metrics.json", "w"))
"""


def test_moves_are_told_from_noise_and_a_move_with_no_recorded_cause_is_unexplained(
    workdir, run_instrumented, clew_cli
):
    """The metric jitters between runs where nothing recorded changed (noise 0.001-0.002),
    jumps when the data file changes, and jumps once more for a reason clew does not see."""
    settings = [(5, "0"), (5, "0.002"), (5, "0.001"), (8, "0.001"), (8, "0.003"), (8, "0.003")]
    for place, (rows, jitter) in enumerate(settings):
        (workdir / "train.csv").write_text("".join(f"{n}\n" for n in range(rows)))
        env = {"JITTER": jitter, **({"BOOST": "0.2"} if place == 5 else {})}
        assert run_instrumented(NOISY, env=env).returncode == 0
    answer = clew_cli("why", "accuracy", "--format", "json").json()
    # three times the median |delta| between runs where no recorded cause changed
    assert answer["tolerance_from"] == "noise"
    assert answer["tolerance"] == pytest.approx(3 * 0.002)
    assert [s["moved"] for s in answer["series"]] == [None, False, False, True, False, True]
    assert answer["moved"] is True and answer["causes"] == []
    assert [u["run_id"] for u in answer["unexplained"]] == [answer["run"]["run_id"]]
    assert any("unexplained" in s for s in answer["summary"])
    (data,) = answer["history"]
    assert data["name"] == file_uri(workdir / "train.csv") and data["moved"] == "always"

    given = clew_cli("why", "accuracy", "--tolerance", "0.5", "--format", "json").json()
    assert given["tolerance_from"] == "given" and given["moved"] is False
