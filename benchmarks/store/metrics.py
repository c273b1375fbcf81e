"""`clew why` and `clew metrics` over 1,000 runs of one program with 20 metrics.

Target: each answers in < 1 s on the embedded store.

The store is made fresh under `--work`: `otel_traces` rows as the Collector (and clew's
ingest) writes them, inserted in one block, so that clew's materialized views fill
clew_runs, clew_io, clew_metrics and clew_config as in a real ingest. Each run of `train.py`
has a root span (its command with `--lr`, 120 installed packages, 3 imported source files
and their digests, git state), a batched read of 12 files (the training data file among
them), a config span of 10 keys (of configs/train.yaml) and a metrics span of 20 metrics
with 10 steps each (200 points). Across the 1,000 runs the learning rate changes every 50
runs, the data file every 100, a config key every 70 and a helper module every 130; the
metrics move with the data file, plus noise.

The CLI is timed end to end, as a user runs it (`clew --home HOME --store chdb://... why
metric_00 --format json`, stdout to /dev/null: Python start-up, imports, chDB open, the
ingest check of an empty spool, the answer, the JSON), beside `clew runs --limit 1`, the
floor of any command (start-up, the store's opening, one small query): one warm-up round,
then CLI_REPEAT rounds of the three commands in turn (so load changes hit them alike),
each reported as its median and range, with the median over the rounds of its excess over
the floor in the same round, and the load average over the rounds. The API call
(`why_moved`, `metrics_series`) in one process, the median of REPEAT calls.

Usage (writes between this benchmark's markers in benchmarks/RESULTS.md):

    .venv/bin/python benchmarks/store/metrics.py   # about a minute
    # the same rounds also timing an earlier commit's clew, each command right after ours:
    git worktree add --detach /tmp/base/clew REV
    .venv/bin/python benchmarks/store/metrics.py --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from results import git_state, write_section  # noqa: E402

from clew.exporter.store import connection as store  # noqa: E402
from clew.exporter.store.ingest import prepare_store  # noqa: E402
from clew.exporter.store.rows import INSERT_COLUMNS  # noqa: E402
from clew.exporter.store.schema import SchemaOptions  # noqa: E402

MARKER = "store-metrics"
RUNS, METRICS, STEPS, REPEAT, CLI_REPEAT = 1000, 20, 10, 5, 7
T0 = 1_796_000_000_000_000_000
HOST = "gpu-node-01"
WORK = "/srv/project"
PACKAGES = [f"package-{i:03d}=={i % 7}.{i % 13}.{i % 5}" for i in range(120)]
CLEW = Path(sys.executable).with_name("clew")
COMMANDS = (("why", "metric_00"), ("metrics",), ("runs", "--limit", "1"))


def _json(values: list) -> str:
    return json.dumps(values, separators=(",", ":"))


def _digest(*parts: Any) -> str:
    return "blake3:" + f"{abs(hash(parts)):016x}" * 4


def _row(trace: str, span: str, parent: str, name: str, at: int, attributes: dict) -> list:
    return [at, trace, span, parent, "", name, "Internal", "trainer", {"host.name": HOST},
            "clew", "0.1.0", dict(sorted(attributes.items())), 1_000_000_000, "Unset", "",
            [], [], [], [], [], [], []]


def rows(rng: random.Random) -> list[list]:
    """The spans of RUNS runs, as otel_traces rows."""
    found = []
    files = [f"file://{HOST}{WORK}/data/shared/{n:02d}.csv" for n in range(11)]
    for run in range(RUNS):
        trace, root = f"{run + 1:032x}", f"{run + 1:016x}"
        at = T0 + run * 600 * 10**9
        lr, data, momentum, helper = run // 50, run // 100, run // 70, run // 130
        found.append(_row(trace, root, "", "run", at, {
            "provenance.process.role": "run", "process.pid": str(1000 + run),
            "process.command_args": _json(["python", "train.py", "--lr", f"0.{lr + 1:03d}"]),
            "process.exit.code": "0", "host.name": HOST, "process.working_directory": WORK,
            "vcs.ref.head.revision": "a" * 40, "vcs.ref.head.name": "main",
            "provenance.env.packages": _json(PACKAGES),
            "provenance.code.files": _json(["train.py", "model.py", "helper.py"]),
            "provenance.code.digests": _json([_digest("train"), _digest("model"),
                                              _digest("helper", helper)]),
        }))
        uris = [*files, f"file://{HOST}{WORK}/data/train.csv",
                f"file://{HOST}{WORK}/configs/train.yaml"]
        digests = [_digest(uri) for uri in files] + [_digest("data", data),
                                                     _digest("config", momentum)]
        found.append(_row(trace, f"{run + 1:08x}00000001", root, "read file", at + 1000, {
            "provenance.io.operation": "read", "process.pid": str(1000 + run),
            "provenance.artifacts.uri": _json(uris), "provenance.artifacts.digest": _json(digests),
            "provenance.artifacts.size": _json([100] * len(uris)),
            "provenance.artifact.identity": "content", "provenance.io.count": str(len(uris)),
        }))
        keys = [f"model.layer{n}" for n in range(8)] + ["optimizer.momentum", "optimizer.name"]
        values = ["64"] * 8 + [f"0.{9 - momentum % 9}", '"sgd"']
        found.append(_row(trace, f"{run + 1:08x}00000002", root, "config", at + 2000, {
            "provenance.artifact.uri": uris[-1], "provenance.artifact.digest": digests[-1],
            "provenance.config.key": _json(keys), "provenance.config.value": _json(values),
        }))
        names, points, steps = [], [], []
        for metric in range(METRICS):
            level = 0.5 + 0.02 * data + metric * 0.01
            for step in range(STEPS):
                names.append(f"metric_{metric:02d}")
                points.append(round(level - 0.1 / (step + 1) + rng.gauss(0, 1e-5), 6))
                steps.append(step)
        found.append(_row(trace, f"{run + 1:08x}00000003", root, "metrics", at + 3000, {
            "process.pid": str(1000 + run), "provenance.metric.source": "file",
            "provenance.artifact.uri": f"file://{HOST}{WORK}/metrics.json",
            "provenance.metrics.name": _json(names), "provenance.metrics.value": _json(points),
            "provenance.metrics.step": _json(steps),
        }))
    return found


def _cli(home: Path, url: str, source: Path | None, *args: str) -> float:
    """Seconds for one `clew` command, end to end (`source`: a directory whose `clew`
    checkout runs instead of the installed one)."""
    env = {**os.environ, "PYTHONPATH": str(source)} if source else None
    began = time.perf_counter()
    subprocess.run([str(CLEW), "--home", str(home), "--store", url, *args, "--format", "json"],
                   stdout=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - began


def cli_rounds(home: Path, url: str, baseline: Path | None
               ) -> tuple[dict[tuple[str, str], list[float]], list[float]]:
    """Each command's CLI_REPEAT times (by version, "" or "baseline", and command), taken
    in rounds of every command of every version in turn after one warm-up round (the OS
    page cache), and the 1-minute load average at each round."""
    sources = {"": None, **({"baseline": baseline} if baseline else {})}
    times: dict[tuple[str, str], list[float]] = {
        (version, " ".join(command)): [] for version in sources for command in COMMANDS}
    loads = []
    for round_ in range(CLI_REPEAT + 1):
        for command in COMMANDS:
            for version, source in sources.items():
                seconds = _cli(home, url, source, *command)
                if round_:
                    times[version, " ".join(command)].append(seconds)
        loads.append(os.getloadavg()[0])
    return times, loads[1:]


def _cli_row(name: str, found: list[float], floor: list[float]) -> str:
    over = ("floor" if found is floor
            else f"+{statistics.median(t - f for t, f in zip(found, floor)):.3f}")
    return (f"| {name} (CLI, end to end) | {statistics.median(found):.3f} | "
            f"{min(found):.3f}-{max(found):.3f} | {over} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/clew-bench-metrics"))
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also time, in the same rounds, the clew checkout in DIR/clew "
                        "(`git worktree add --detach DIR/clew REV`) against its own floor")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    url = f"chdb://{args.work / 'db'}"
    client = store.connect(url)
    prepare_store(client, SchemaOptions())
    generated = rows(random.Random(16))
    began = time.perf_counter()
    client.insert("otel_traces", generated, column_names=list(INSERT_COLUMNS))
    insert = time.perf_counter() - began
    points = client.query("SELECT count() FROM clew_metrics").result_rows[0][0]

    from clew.query import metrics_series, why_moved

    api = {}
    for name, call in (("why_moved(client, 'metric_00')", lambda: why_moved(client, "metric_00")),
                       ("metrics_series(client)", lambda: metrics_series(client))):
        times = []
        for _ in range(REPEAT):
            began = time.perf_counter()
            call()
            times.append(time.perf_counter() - began)
        api[name] = statistics.median(times)
    answer = why_moved(client, "metric_00")
    store.close(url)
    baseline = ""
    if args.baseline:
        baseline = subprocess.run(["git", "-C", str(args.baseline / "clew"), "rev-parse",
                                   "--short", "HEAD"], capture_output=True, text=True,
                                  check=True).stdout.strip()

    home = args.work / "home"  # an empty spool: every run is in the store
    (home / "spool").mkdir(parents=True)
    times, loads = cli_rounds(home, url, args.baseline)
    floors = {version: times[version, "runs --limit 1"] for version, _ in times}

    lines = [
        "## `clew why` and `clew metrics` over 1,000 runs with 20 metrics",
        "",
        f"{git_state()}; `.venv/bin/python benchmarks/store/metrics.py`. {RUNS} runs of one "
        f"program, {METRICS} metrics of {STEPS} steps each ({points:,} points in clew_metrics), "
        f"{len(generated):,} spans inserted as otel_traces rows in {insert:.2f} s; "
        f"{len(answer.history)} causes vary across the runs. Target: < 1 s each, end to end. "
        f"CLI: {CLI_REPEAT} rounds of the three commands in turn"
        + (f" (each at once again at {baseline})" if baseline else "")
        + " after a warm-up round, as a "
        "user runs them (`clew --home HOME --store chdb://... COMMAND --format json`, an empty "
        f"spool to check); load average {min(loads):.1f}-{max(loads):.1f} over the rounds on "
        f"{os.cpu_count()} cores (the CLI figures move with it: the `clew runs` floor, taken "
        f"in the same rounds, is the yardstick). API: median of {REPEAT} calls.",
        "",
        "| what | median s | min-max s | over the `clew runs --limit 1` floor (median of rounds) |",
        "|---|---|---|---|",
        *(_cli_row(f"`clew {name} --format json`" + (f" at {version} {baseline}" if version
                                                      else ""), found, floors[version])
          for (version, name), found in times.items()),
        *(f"| `{name}` (API, store open) | {seconds:.3f} | | |" for name, seconds in api.items()),
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section(section, MARKER)


if __name__ == "__main__":
    main()
