"""What the native-I/O library hooks cost: a pyarrow.dataset scan, and start-up.

    .venv/bin/python benchmarks/libs/run.py [--pairs 9] [--files 2000] [--no-write]

`scan`: `pyarrow.dataset.dataset(dir, format="parquet").to_table()` over 2,000 small Parquet
files (made once in a temporary directory, outside the checkout, which an editable install
excludes), timed as the whole `opentelemetry-instrument python` process: bare (every clew
instrumentor disabled, no exporter) and clew (defaults, a fresh CLEW_HOME), alternating,
after one warm-up of each; the median of the per-pair ratios. Every clew run must have
recorded each file once, with its blake3 digest. Target <= 1.10.

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
from pathlib import Path

import blake3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from run import (  # noqa: E402 - benchmarks/run.py: the shared environment and reporting
    INSTRUMENT, PYTHON, _check_reads, _clean_environment, _the_run, baseline_environment,
    clew_instrumentors, git_state, machine, write_results,
)

MARKER = "libs/run.py"
TARGET = 1.10
LIBRARY_HOOKS = ("clew_pyarrow", "clew_polars", "clew_duckdb")
SCAN = """
import sys
import pyarrow.dataset as ds
table = ds.dataset(sys.argv[1], format="parquet").to_table()
assert table.num_rows == int(sys.argv[2]), table.num_rows
"""


def make_files(directory: Path, count: int) -> dict[str, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    digests = {}
    for index in range(count):
        path = directory / f"part-{index:05d}.parquet"
        pq.write_table(pa.table({"id": list(range(index, index + 10)), "v": [0.5] * 10}), path)
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


def scan(work: Path, pairs: int, count: int) -> tuple[Times, Times, list[str]]:
    data = work / "data"
    data.mkdir()
    digests = make_files(data, count)
    base_env = _clean_environment(work)
    bare = {**base_env, **baseline_environment()}
    command = [INSTRUMENT, PYTHON, "-c", SCAN, str(data), str(10 * count)]
    problems: list[str] = []
    bare_times, clew_times = [], []
    for index in range(pairs + 1):  # the first pair warms up
        home = work / f"home-{index}"
        clew_time = timed(command, {**base_env, "CLEW_HOME": str(home)}, work)
        bare_time = timed(command, bare, work)
        problems += _check_reads(_the_run(home), digests, 1)
        if index:
            clew_times.append(clew_time)
            bare_times.append(bare_time)
    return bare_times, clew_times, sorted(set(problems))


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


def report(args: argparse.Namespace, took: float, scanned: tuple, started: tuple) -> str:
    bare, clew, problems = scanned
    ratios = [c[0] / b[0] for b, c in zip(bare, clew)]
    ratio = statistics.median(ratios)
    (bare_wall, bare_cpu), (clew_wall, clew_cpu) = _medians(bare), _medians(clew)
    (without_wall, without_cpu), (with_wall, with_cpu) = map(_medians, started)
    info = machine()
    return "\n".join([
        f"## .venv/bin/python benchmarks/libs/run.py --pairs {args.pairs} --files {args.files}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min)",
        f"- machine: nproc {info['nproc']}, {info['cpu']}, RAM {info['ram']}, {info['python']}, "
        f"Linux {info['kernel']}; load average (1 min) {os.getloadavg()[0]:.2f} at the end "
        "(a 2-core machine shared with other engineers: wall times are noisy, CPU times steadier)",
        f"- clew commit measured: {git_state()}",
        f"- bare: `{' '.join(f'{k}={v}' for k, v in baseline_environment().items())} "
        "opentelemetry-instrument python -c SCAN DIR`; clew: `CLEW_HOME=<fresh dir> "
        "opentelemetry-instrument python -c SCAN DIR`, alternating, after a warm-up pair",
        "",
        "| workload | bare / clew median wall | clew / bare wall (median of pairs) | target | result "
        "| bare / clew median CPU (user+sys) | records check |",
        "|---|---|---|---|---|---|---|",
        f"| `pyarrow.dataset` scan of {args.files:,} small Parquet files ({args.pairs} pairs) | "
        f"{bare_wall:.3f} / {clew_wall:.3f} s | {ratio:.2f} (pairs {min(ratios):.2f}-{max(ratios):.2f}) "
        f"| <= {TARGET:.2f} | {'pass' if ratio <= TARGET else '**FAIL**'} | "
        f"{bare_cpu:.3f} / {clew_cpu:.3f} s (x{clew_cpu / bare_cpu:.2f}) | {'; '.join(problems) or 'ok'} |",
        f"| `python -c pass` under clew, without / with the library hooks "
        f"(`OTEL_PYTHON_DISABLED_INSTRUMENTATIONS={','.join(LIBRARY_HOOKS)}`; {args.pairs} pairs) | "
        f"{without_wall * 1e3:.0f} / {with_wall * 1e3:.0f} ms | {(with_wall - without_wall) * 1e3:+.0f} ms "
        f"| no change | | {without_cpu * 1e3:.0f} / {with_cpu * 1e3:.0f} ms ({(with_cpu - without_cpu) * 1e3:+.0f}) | |",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=9, help="timed pairs of each (>= 9)")
    parser.add_argument("--files", type=int, default=2000, help="Parquet files scanned")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    missing = set(LIBRARY_HOOKS[:1]) - set(clew_instrumentors())
    if missing:
        sys.exit(f"error: {missing} not installed: run `.venv/bin/pip install -e .` first")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clew-libs-bench-") as scratch:
        work = Path(scratch).resolve()
        scanned = scan(work, args.pairs, args.files)
        started = startup(work, args.pairs)
    section = report(args, time.monotonic() - start, scanned, started)
    print(section)
    if not args.no_write:
        write_results(section, MARKER)


if __name__ == "__main__":
    main()
