"""What recording native code's opens inside the Python process (CLEW_NATIVE=1) costs.

    .venv/bin/python benchmarks/native/run.py [--pairs N] [--opens N] [--no-write]

Per native open: a C library compiled here (gcc) and loaded with ctypes times, in C
(clock_gettime around the loop), N open+close pairs of three paths: a file of the program's
(recorded), a file in site-packages (excluded in native code) and a missing file; and N
fopen+fclose of the program's file. Run in three processes under `opentelemetry-instrument`:
bare (clew's hooks disabled, exporters none, as benchmarks/run.py's baseline), clew with
CLEW_NATIVE=0, and clew with CLEW_NATIVE=1 (its default); each process's CPU time (user + system, including
clew's collection of the notes at exit) is reported too. Start-up: `python -c pass` under
clew with CLEW_NATIVE=0 and =1, alternating, after a warm-up pair; medians. The section goes
into benchmarks/RESULTS.md, replacing its previous one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from run import (  # noqa: E402 - benchmarks/run.py: the shared environment and reporting
    INSTRUMENT, PYTHON, _clean_environment, baseline_environment, git_state, machine,
    write_results,
)

_spec = importlib.util.spec_from_file_location("libs_run", HERE.parent / "libs" / "run.py")
libs_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(libs_run)  # type: ignore[union-attr]
timed, medians = libs_run.timed, libs_run._medians  # noqa: SLF001 - the shared timing

MARKER = "native/run.py"
LIBRARY_SOURCE = r"""
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

long long opens(const char *path, int count) {
    long long start = now();
    for (int i = 0; i < count; i++) {
        int fd = open(path, O_RDONLY);
        if (fd >= 0)
            close(fd);
    }
    return now() - start;
}

long long fopens(const char *path, int count) {
    long long start = now();
    for (int i = 0; i < count; i++) {
        FILE *stream = fopen(path, "r");
        if (stream != NULL)
            fclose(stream);
    }
    return now() - start;
}
"""
PROGRAM = """
import ctypes, sys
library = ctypes.CDLL(sys.argv[1])
library.opens.restype = library.fopens.restype = ctypes.c_longlong
count = int(sys.argv[2])
for name, function, path in [("open, recorded file", library.opens, sys.argv[3]),
                             ("open, site-packages file", library.opens, sys.argv[4]),
                             ("open, missing file", library.opens, sys.argv[5]),
                             ("fopen, recorded file", library.fopens, sys.argv[3])]:
    function(path.encode(), 1000)  # warm-up
    print(name, function(path.encode(), count) / count)
"""
VARIANTS = ("bare", "clew, CLEW_NATIVE=0", "clew, CLEW_NATIVE=1 (default)")


def build(work: Path) -> Path:
    built = work / "libopens.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-x", "c", "-", "-o", str(built)],
                   input=LIBRARY_SOURCE, text=True, check=True)
    return built


def per_open(work: Path, opens: int) -> dict[str, tuple[dict[str, float], float]]:
    """Variant -> (ns per call of each case, process CPU seconds)."""
    library = build(work)
    data = work / "data.bin"
    data.write_bytes(b"x" * 4096)
    excluded = Path(sysconfig.get_paths()["purelib"]) / "blake3" / "__init__.py"
    if not excluded.is_file():
        excluded = Path(sysconfig.get_paths()["stdlib"]) / "os.py"
    base_env = _clean_environment(work)
    envs = {
        "bare": {**base_env, **baseline_environment()},
        VARIANTS[1]: {**base_env, "CLEW_HOME": str(work / "home-clew"), "CLEW_NATIVE": "0"},
        VARIANTS[2]: {**base_env, "CLEW_HOME": str(work / "home-native"), "CLEW_NATIVE": "1"},
    }
    command = [INSTRUMENT, PYTHON, "-c", PROGRAM, str(library), str(opens), str(data),
               str(excluded), str(work / "missing.bin")]
    results = {}
    for name, env in envs.items():
        before = os.times()
        done = subprocess.run(command, env=env, cwd=work, check=True, capture_output=True,
                              text=True)
        after = os.times()
        cpu = (after.children_user - before.children_user) + (
            after.children_system - before.children_system)
        cases = dict(line.rsplit(" ", 1) for line in done.stdout.splitlines())
        results[name] = ({case: float(ns) for case, ns in cases.items()}, cpu)
    return results


def startup(work: Path, pairs: int) -> tuple[list, list]:
    base_env = {**_clean_environment(work), "OTEL_TRACES_EXPORTER": "none"}
    command = [INSTRUMENT, PYTHON, "-c", "pass"]
    off, on = [], []
    for index in range(pairs + 1):  # the first pair warms up
        home = {"CLEW_HOME": str(work / f"startup-{index}")}
        on_time = timed(command, {**base_env, **home, "CLEW_NATIVE": "1"}, work)
        off_time = timed(command, {**base_env, **home, "CLEW_NATIVE": "0"}, work)
        if index:
            on.append(on_time)
            off.append(off_time)
    return off, on


def report(args: argparse.Namespace, took: float, opened: dict, started: tuple) -> str:
    info = machine()
    cases = list(opened["bare"][0])
    lines = [
        f"## .venv/bin/python benchmarks/native/run.py --pairs {args.pairs} --opens {args.opens}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min), "
        f"commit {git_state()}",
        f"- machine: nproc {info['nproc']}, {info['cpu']}, {info['python']}, Linux "
        f"{info['kernel']}; load average (1 min) {os.getloadavg()[0]:.2f} at the end",
        f"- per call: {args.opens:,} calls timed in C inside one process per variant; bare = "
        "clew's hooks disabled, exporters none; process CPU includes clew's start-up and exit",
        "",
        "| variant | " + " | ".join(f"{c} (ns)" for c in cases) + " | process CPU |",
        "|---|" + "---|" * (len(cases) + 1),
    ]
    for variant in VARIANTS:
        ns, cpu = opened[variant]
        lines.append(f"| {variant} | " + " | ".join(f"{ns[c]:.0f}" for c in cases)
                     + f" | {cpu:.2f} s |")
    (off_wall, off_cpu), (on_wall, on_cpu) = map(medians, started)
    lines += [
        "",
        f"`python -c pass` under clew ({args.pairs} pairs): CLEW_NATIVE=0 {off_wall * 1e3:.0f} ms "
        f"wall, {off_cpu * 1e3:.0f} ms CPU; CLEW_NATIVE=1 {on_wall * 1e3:.0f} ms wall, "
        f"{on_cpu * 1e3:.0f} ms CPU ({(on_cpu - off_cpu) * 1e3:+.0f} ms CPU).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=11, help="start-up pairs")
    parser.add_argument("--opens", type=int, default=200_000, help="calls timed per case")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clew-native-bench-") as scratch:
        work = Path(scratch).resolve()
        measured = per_open(work, args.opens), startup(work, args.pairs)
    section = report(args, time.monotonic() - start, *measured)
    print(section)
    if not args.no_write:
        write_results(section, MARKER)


if __name__ == "__main__":
    main()
