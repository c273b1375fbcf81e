"""What the native-I/O library hooks cost: a pyarrow.dataset scan, a datasets map, start-up.

    .venv/bin/python benchmarks/libs/run.py [--pairs 9] [--files 2000] [--no-write]
        [--workloads scan,map,startup]

`scan`: `pyarrow.dataset.dataset(dir, format="parquet").to_table()` over 2,000 small Parquet
files (made once in a temporary directory, outside the checkout, which an editable install
excludes), timed as the whole `opentelemetry-instrument python` process: bare (every clew
instrumentor disabled, no exporter) and clew (defaults, a fresh CLEW_HOME), alternating,
after one warm-up of each; the median of the per-pair ratios. Every clew run must have
recorded each file once, with its blake3 digest. Target <= 1.10.

`map`: Hugging Face datasets' `load_dataset("parquet", data_dir=DIR, cache_dir=C)` of a local
Parquet dataset (20 files of 2,500 rows), then `.map` of a Python function over its 50,000
rows, each run with a fresh cache directory (so each builds and writes its Arrow cache),
timed the same way. Every clew run must have recorded each Parquet file read, with its
digest. Target <= 1.05.

`start-up`: `python -c pass` under clew's defaults, with and without the library hooks
(`OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` naming them), alternating; medians.

Writes its section of benchmarks/RESULTS.md (between its BEGIN/END markers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import blake3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from run import (  # noqa: E402 - benchmarks/run.py: the shared environment and reporting
    INSTRUMENT, PYTHON, _check_reads, _clean_environment, _the_run, baseline_environment,
    clew_instrumentors, git_state, machine, write_results,
)

MARKER = "libs/run.py"
TARGET = 1.10
MAP_TARGET = 1.05
MAP_FILES, MAP_ROWS = 20, 2500
LIBRARY_HOOKS = (
    "clew_pyarrow", "clew_polars", "clew_duckdb", "clew_safetensors", "clew_h5py", "clew_tokenizers",
)
WORKLOADS = ("scan", "map", "startup")
SCAN = """
import sys
import pyarrow.dataset as ds
table = ds.dataset(sys.argv[1], format="parquet").to_table()
assert table.num_rows == int(sys.argv[2]), table.num_rows
"""
MAP = """
import sys
from datasets import load_dataset
dataset = load_dataset("parquet", data_dir=sys.argv[1], cache_dir=sys.argv[3])["train"]
mapped = dataset.map(lambda row: {"score": row["v"] * 2 + len(row["label"])})
assert mapped.num_rows == int(sys.argv[2]), mapped.num_rows
"""


def make_files(directory: Path, count: int, rows: int = 10) -> dict[str, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir()
    digests = {}
    for index in range(count):
        path = directory / f"part-{index:05d}.parquet"
        ids = list(range(index * rows, (index + 1) * rows))
        columns = {"id": ids, "v": [0.5] * rows}
        if rows > 10:
            columns["label"] = [f"row-{i}" for i in ids]
        pq.write_table(pa.table(columns), path)
        digests[str(path)] = "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()
    return digests


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the process and its children) of one run:
    the CPU time is the steadier of the two on a loaded machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


Times = list[tuple[float, float]]  # (wall, CPU) of each run


class Alternated(NamedTuple):
    """The timed runs of each variant, in the order they ran, and what the checks found."""

    bare: Times
    clew: Times
    problems: list[str]
    floor: Times  # empty unless a floor command was given


def alternate(
    work: Path, name: str, pairs: int, command: Callable[[str], list[str]],
    digests: dict[str, str], count: int | None, env: dict[str, str] | None = None,
    floor: Callable[[str], list[str]] | None = None,
) -> Alternated:
    """Time `command(run name)` bare and under clew, alternating, after a warm-up pair; each
    clew run must have read every file of `digests` with its digest (`count` opens). With
    `floor`, a third command is timed in each round too, in the bare environment: the program
    doing by itself what any capture must do at least."""
    base_env = {**_clean_environment(work), **(env or {})}
    bare = {**base_env, **baseline_environment()}
    measured = Alternated([], [], [], [])
    problems: list[str] = []
    for index in range(pairs + 1):  # the first pair warms up
        home = work / f"{name}-home-{index}"
        clew_time = timed(command(f"{name}-clew-{index}"), {**base_env, "CLEW_HOME": str(home)}, work)
        bare_time = timed(command(f"{name}-bare-{index}"), bare, work)
        floor_time = timed(floor(f"{name}-floor-{index}"), bare, work) if floor else None
        problems += _check_reads(_the_run(home), digests, count)
        if index:
            measured.clew.append(clew_time)
            measured.bare.append(bare_time)
            if floor_time is not None:
                measured.floor.append(floor_time)
    measured.problems.extend(sorted(set(problems)))
    return measured


def scan(work: Path, pairs: int, count: int) -> Alternated:
    data = work / "data"
    digests = make_files(data, count)
    command = [INSTRUMENT, PYTHON, "-c", SCAN, str(data), str(10 * count)]
    return alternate(work, "scan", pairs, lambda run: command, digests, 1)


def datasets_map(work: Path, pairs: int) -> Alternated:
    data = work / "map-data"
    digests = make_files(data, MAP_FILES, MAP_ROWS)
    rows = str(MAP_FILES * MAP_ROWS)

    def command(run: str) -> list[str]:
        return [INSTRUMENT, PYTHON, "-c", MAP, str(data), rows, str(work / run / "cache")]

    # datasets opens a Parquet file more than once (its schema, then its rows): any count.
    # No network; no progress bars (terminal output, timed in neither variant's favour).
    quiet = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    return alternate(work, "map", pairs, command, digests, None, quiet)


def startup(work: Path, pairs: int) -> tuple[Times, Times]:
    base_env = {**_clean_environment(work), "OTEL_TRACES_EXPORTER": "none"}
    without = {**base_env, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ",".join(LIBRARY_HOOKS)}
    command = [INSTRUMENT, PYTHON, "-c", "pass"]
    with_times, without_times = [], []
    for index in range(pairs + 1):
        home = {"CLEW_HOME": str(work / f"startup-{index}")}
        with_time = timed(command, {**base_env, **home}, work)
        without_time = timed(command, {**without, **home}, work)
        if index:
            with_times.append(with_time)
            without_times.append(without_time)
    return without_times, with_times


def _medians(times: Times) -> tuple[float, float]:
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def ratio_row(label: str, target: float, measured: Alternated) -> str:
    """A table row: bare and clew medians, the median of the per-pair wall ratios, CPU."""
    bare, clew, problems = measured.bare, measured.clew, measured.problems
    ratios = [c[0] / b[0] for b, c in zip(bare, clew)]
    ratio = statistics.median(ratios)
    (bare_wall, bare_cpu), (clew_wall, clew_cpu) = _medians(bare), _medians(clew)
    return (
        f"| {label} | {bare_wall:.3f} / {clew_wall:.3f} s | {ratio:.2f} "
        f"(pairs {min(ratios):.2f}-{max(ratios):.2f}) | <= {target:.2f} | "
        f"{'pass' if ratio <= target else '**FAIL**'} | "
        f"{bare_cpu:.3f} / {clew_cpu:.3f} s (x{clew_cpu / bare_cpu:.2f}) | {'; '.join(problems) or 'ok'} |"
    )


def report(args: argparse.Namespace, took: float, measured: dict[str, tuple]) -> str:
    info = machine()
    rows = []
    if "scan" in measured:
        label = f"`pyarrow.dataset` scan of {args.files:,} small Parquet files ({args.pairs} pairs)"
        rows.append(ratio_row(label, TARGET, measured["scan"]))
    if "map" in measured:
        label = (f"datasets `load_dataset` + `.map` over a local Parquet dataset ({MAP_FILES} "
                 f"files, {MAP_FILES * MAP_ROWS:,} rows; {args.pairs} pairs)")
        rows.append(ratio_row(label, MAP_TARGET, measured["map"]))
    if "startup" in measured:
        (without_wall, without_cpu), (with_wall, with_cpu) = map(_medians, measured["startup"])
        rows.append(
            f"| `python -c pass` under clew, without / with the library hooks "
            f"(`OTEL_PYTHON_DISABLED_INSTRUMENTATIONS={','.join(LIBRARY_HOOKS)}`; {args.pairs} pairs) | "
            f"{without_wall * 1e3:.0f} / {with_wall * 1e3:.0f} ms | {(with_wall - without_wall) * 1e3:+.0f} ms "
            f"| no change | | {without_cpu * 1e3:.0f} / {with_cpu * 1e3:.0f} ms ({(with_cpu - without_cpu) * 1e3:+.0f}) | |"
        )
    return "\n".join([
        f"## .venv/bin/python benchmarks/libs/run.py --pairs {args.pairs} --files {args.files} "
        f"--workloads {','.join(measured)}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min)",
        f"- machine: nproc {info['nproc']}, {info['cpu']}, RAM {info['ram']}, {info['python']}, "
        f"Linux {info['kernel']}; load average (1 min) {os.getloadavg()[0]:.2f} at the end "
        "(a 2-core machine shared with other engineers: wall times are noisy, CPU times steadier)",
        f"- clew commit measured: {git_state()}",
        f"- bare: `{' '.join(f'{k}={v}' for k, v in baseline_environment().items())} "
        "opentelemetry-instrument python -c WORKLOAD ARGS`; clew: `CLEW_HOME=<fresh dir> "
        "opentelemetry-instrument python -c WORKLOAD ARGS`, alternating, after a warm-up pair",
        "",
        "| workload | bare / clew median wall | clew / bare wall (median of pairs) | target | result "
        "| bare / clew median CPU (user+sys) | records check |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=9, help="timed pairs of each (>= 9)")
    parser.add_argument("--files", type=int, default=2000, help="Parquet files scanned")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    workloads = [name for name in args.workloads.split(",") if name]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown or not workloads:
        sys.exit(f"error: --workloads takes names among {', '.join(WORKLOADS)}, not {args.workloads!r}")
    missing = set(LIBRARY_HOOKS[:1]) - set(clew_instrumentors())
    if missing:
        sys.exit(f"error: {missing} not installed: run `.venv/bin/pip install -e .` first")
    start = time.monotonic()
    measure = {
        "scan": lambda work: scan(work, args.pairs, args.files),
        "map": lambda work: datasets_map(work, args.pairs),
        "startup": lambda work: startup(work, args.pairs),
    }
    with tempfile.TemporaryDirectory(prefix="clew-libs-bench-") as scratch:
        work = Path(scratch).resolve()
        measured = {name: measure[name](work) for name in WORKLOADS if name in workloads}
    section = report(args, time.monotonic() - start, measured)
    print(section)
    if not args.no_write:
        full = list(measured) == list(WORKLOADS)
        write_results(section, MARKER if full else f"{MARKER} {','.join(measured)}")


if __name__ == "__main__":
    main()
