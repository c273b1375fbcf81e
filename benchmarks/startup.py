"""What clew adds to a process's start-up and exit, over bare OpenTelemetry and the floor.

    .venv/bin/python benchmarks/startup.py [--rounds 15] [--instructions] [--no-write]

Three variants of `python -c pass`, run in rotating order in each round after a warm-up round:
`python` alone (the interpreter's floor), bare `opentelemetry-instrument python` (every clew
instrumentor disabled, no exporter: OpenTelemetry's floor) and clew (defaults, a fresh
CLEW_HOME). For each: the median wall and CPU time (user + system, with children) and their
range; for clew, the median of the per-round differences to bare, wall and CPU, against the
target of +25 ms. Every clew run must have left its run span, ended with exit code 0.

`--instructions` adds the instructions the `python -c pass` process of each variant executes
under valgrind's callgrind (one run each, PYTHONHASHSEED=0): the steadiest figure on a
shared machine, where wall times move by tens of milliseconds between runs.

The breakdown runs one probe process, five times: under bare `opentelemetry-instrument`, it
does what OpenTelemetry's loader does for clew's one entry point (the dependency check of
clew's distribution, the loader's import), then what the loader does (each core
instrumentor's import and `instrument()`, the library hooks' post-import hooks), timed in
the main thread's CPU time; medians.

Writes its section of benchmarks/RESULTS.md (between its BEGIN/END markers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402 - benchmarks/run.py: the shared environment and reporting
    INSTRUMENT, PYTHON, _clean_environment, _the_run, baseline_environment, git_state, machine,
    write_results,
)

MARKER = "startup.py"
TARGET_MS = 25.0
VARIANTS = ("python", "bare", "clew")
BREAKDOWN_RUNS = 5
# Under bare opentelemetry-instrument: what OpenTelemetry's loader does for clew's entry point
# (its dependency check, the loader's import), then each core instrumentor the loader
# instruments, then the loader's own instrument() (the library hooks' post-import hooks),
# timed apart (main thread CPU time, ms). Prints one JSON object.
PROBE = """
import importlib, json, os, time
from importlib.metadata import entry_points
from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

# Bare OpenTelemetry has loaded nothing of clew's; nothing may be disabled by name here.
os.environ.pop("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", None)
(entry,) = [e for e in entry_points(group="opentelemetry_instrumentor")
            if e.value.startswith("clew.")]
times = {}
start = time.thread_time()
get_dist_dependency_conflicts(entry.dist)
checked = time.thread_time()
loader = entry.load()
loaded = time.thread_time()
times[entry.name + " (the loader)"] = [1e3 * (checked - start), 1e3 * (loaded - checked), 0.0]
from clew.instrumentation.package import _core
group = {e.name: e for e in entry_points(group="clew_instrumentor")}
for name in _core:  # the recording core comes with the first
    start = time.thread_time()
    instrumentor = group[name].load()
    imported = time.thread_time()
    instrumentor().instrument(skip_dep_check=True)
    times[name] = [0.0, 1e3 * (imported - start), 1e3 * (time.thread_time() - imported)]
start = time.thread_time()
loader().instrument(skip_dep_check=True)
waiting = 1e3 * (time.thread_time() - start)
times["library hooks (waiting for their libraries)"] = [0.0, 0.0, waiting]
print(json.dumps(times))
"""


def command(variant: str, code: str = "pass") -> list[str]:
    if variant == "python":
        return [PYTHON, "-c", code]
    return [INSTRUMENT, PYTHON, "-c", code]


def environment(variant: str, work: Path, home: Path) -> dict[str, str]:
    env = _clean_environment(work)
    if variant == "bare":
        env.update(baseline_environment())
    elif variant == "clew":
        env["CLEW_HOME"] = str(home)
    return env


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU time (user + system, the process and its children), in ms."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1e3, cpu * 1e3


def rounds(work: Path, count: int) -> tuple[dict[str, list[tuple[float, float]]], list[str]]:
    """Each round runs every variant, the order rotating by one each round; round 0 warms up."""
    times: dict[str, list[tuple[float, float]]] = {variant: [] for variant in VARIANTS}
    problems = []
    for index in range(count + 1):
        shift = index % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            home = work / f"home-{index}"
            measured = timed(command(variant), environment(variant, work, home), work)
            if index:
                times[variant].append(measured)
        try:
            run = _the_run(work / f"home-{index}")
            if run.status != "ok" or run.exit_code != 0:
                problems.append(f"round {index}: run span {run.status}, exit code {run.exit_code}")
        except AssertionError as error:
            problems.append(f"round {index}: {error}")
    return times, problems


def instructions(work: Path) -> dict[str, int]:
    """Instructions of each variant's `python -c pass` process under callgrind."""
    counts = {}
    for variant in VARIANTS:
        out = work / f"callgrind-{variant}"
        out.mkdir()
        env = {**environment(variant, work, out / "home"), "PYTHONHASHSEED": "0"}
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--trace-children=yes",
             f"--callgrind-out-file={out}/%p.out", *command(variant)],
            env=env, cwd=work, check=True, capture_output=True,
        )
        for path in out.glob("*.out"):
            text = path.read_text(errors="replace")
            if re.search(r"^cmd: .*python\S* -c pass$", text, re.MULTILINE):
                counts[variant] = int(re.search(r"^summary: (\d+)", text, re.MULTILINE).group(1))
    return counts


def breakdown(work: Path) -> dict[str, list[float]]:
    """Per clew entry point: medians of [dependency check, import, instrument] in ms."""
    env = environment("bare", work, work / "probe-home")
    runs = []
    for _ in range(BREAKDOWN_RUNS):
        done = subprocess.run(command("bare", PROBE), env=env, cwd=work, check=True,
                              capture_output=True, text=True)
        runs.append(json.loads(done.stdout.splitlines()[-1]))
    return {name: [statistics.median(run[name][part] for run in runs) for part in range(3)]
            for name in runs[0]}


def _range(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}"


def report(args: argparse.Namespace, took: float, loads: tuple[float, float],
           times: dict[str, list[tuple[float, float]]], problems: list[str],
           counts: dict[str, int], parts: dict[str, list[float]]) -> str:
    info = machine()
    lines = [
        f"## .venv/bin/python benchmarks/startup.py --rounds {args.rounds}"
        + (" --instructions" if args.instructions else ""),
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min)",
        f"- machine: nproc {info['nproc']}, {info['cpu']}, RAM {info['ram']}, {info['python']}, "
        f"Linux {info['kernel']}; load average (1 min) before / after: {loads[0]:.2f} / {loads[1]:.2f} "
        "(a 2-core machine shared with other engineers)",
        f"- clew commit measured: {git_state()}",
        f"- python: `python -c pass`; bare: `{' '.join(f'{k}={v}' for k, v in baseline_environment().items())} "
        "opentelemetry-instrument python -c pass`; clew: `CLEW_HOME=<fresh dir> opentelemetry-instrument "
        f"python -c pass`; {args.rounds} rounds after a warm-up round, each running the three in "
        "rotating order; bytecode cached for all three",
        "",
        "| variant | median wall (range) | median CPU, user+sys (range) |"
        + (" instructions of the `python -c pass` process |" if counts else ""),
        "|---|---|---|" + ("---|" if counts else ""),
    ]
    for variant in VARIANTS:
        walls = [t[0] for t in times[variant]]
        cpus = [t[1] for t in times[variant]]
        row = (f"| {variant} | {statistics.median(walls):.0f} ms ({_range(walls)}) | "
               f"{statistics.median(cpus):.0f} ms ({_range(cpus)}) |")
        if counts:
            row += f" {counts.get(variant, 0) / 1e6:,.0f} M |"
        lines.append(row)
    wall_deltas = [c[0] - b[0] for b, c in zip(times["bare"], times["clew"])]
    cpu_deltas = [c[1] - b[1] for b, c in zip(times["bare"], times["clew"])]
    wall_delta, cpu_delta = statistics.median(wall_deltas), statistics.median(cpu_deltas)
    verdict = "pass" if wall_delta <= TARGET_MS else "**FAIL**"
    lines += [
        "",
        "| clew over bare | median of per-round differences (range) | target | result | records check |",
        "|---|---|---|---|---|",
        f"| wall | {wall_delta:+.0f} ms ({min(wall_deltas):+.0f} to {max(wall_deltas):+.0f}) "
        f"| <= +{TARGET_MS:.0f} ms | {verdict} | {'; '.join(problems) or 'ok'} |",
        f"| CPU | {cpu_delta:+.0f} ms ({min(cpu_deltas):+.0f} to {max(cpu_deltas):+.0f}) | | | |",
    ]
    if counts and "bare" in counts and "clew" in counts:
        extra = counts["clew"] - counts["bare"]
        lines.append(f"| instructions | {extra / 1e6:+,.0f} M ({100 * extra / counts['bare']:+.1f} %) | | | |")
    if parts:
        totals = [sum(p[i] for p in parts.values()) for i in range(3)]
        lines += [
            "",
            "Where clew's start-up goes, per instrumentor, as OpenTelemetry's and clew's loaders run it "
            f"(main thread CPU ms, medians of {BREAKDOWN_RUNS} probe processes; the first import "
            "brings the recording core, the first `instrument()` makes the recorder and its "
            "process span; exit, the run span's flush and its background thread come on top):",
            "",
            "| instrumentor | dependency check of clew's distribution | import | instrument() |",
            "|---|---|---|---|",
            *(f"| {name} | {p[0]:.2f} | {p[1]:.2f} | {p[2]:.2f} |" for name, p in parts.items()),
            f"| all {len(parts)} | {totals[0]:.1f} | {totals[1]:.1f} | {totals[2]:.1f} |",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (>= 9)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions under valgrind's callgrind (about a minute)")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        sys.exit("error: --instructions needs valgrind")
    start, load_before = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="clew-startup-bench-") as scratch:
        work = Path(scratch).resolve()
        times, problems = rounds(work, args.rounds)
        parts = breakdown(work)
        counts = instructions(work) if args.instructions else {}
    section = report(args, time.monotonic() - start, (load_before, os.getloadavg()[0]),
                     times, problems, counts, parts)
    print(section)
    if not args.no_write:
        write_results(section, MARKER)


if __name__ == "__main__":
    main()
