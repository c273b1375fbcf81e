"""Instructions clew adds to a first open of a small file, against the floor, under callgrind.

    .venv/bin/python benchmarks/first_open.py [--no-write]

One program opens and reads 16 KiB files, each once, from the page cache; it runs twice per
variant, over 200 and over 1,200 files, under valgrind's callgrind (user-space instructions
of every thread of the process, PYTHONHASHSEED=0), and a first open costs the difference
divided by 1,000: start-up, exit and the listing cancel out. Instructions rather than time:
on a 2-core machine shared with other engineers times move by tens of percent between runs,
instruction counts by about one.

Variants: `plain` (python, the program alone); the floor of any content-addressed capture,
in the same program before each read: a stat, then the file opened, read whole, hashed with
blake3 (hex digest) and closed (`floor`), and, for a warm digest cache, a stat and a dict
look-up of its (dev, inode, size, mtime) (`floor, warm`); bare `opentelemetry-instrument`
(exporters none, clew's instrumentors disabled: what clew's figures are taken against); clew
with its defaults and a fresh CLEW_HOME (`clew`: every file hashed), and on a CLEW_HOME
whose digest cache knows every file (`clew, warm`), with a flush interval longer than the run, so that every record is
flushed at exit as one set of batches (on the worker's interval, how records fall into
batches depends on the wall clock). clew's figures are split by thread: the program's (the
audit hook, hashing, and the final flush at exit, which makes the spans) and clew's own (the
worker and exporter threads).

Instructions leave out the kernel: each variant also runs under `strace -f -c` over the same
two file counts, and the system calls it adds per first open are reported beside the
instructions (calls that only wait on another thread, futex and the like, are left out:
their number depends on timing). On a virtual machine a system call costs ~1-3 us, as much
as several thousand instructions.

Target (issue 17): clew's added instructions per first open <= 1.5 x the floor; warm,
<= 1.5 x the warm floor. Writes its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import INSTRUMENT, PYTHON, baseline_environment, git_state, machine, write_results  # noqa: E402

MARKER = "first_open.py"
TARGET = 1.5
SIZE = 16 << 10
FEW, MANY = 200, 1200
PROGRAM = """
import os, sys
import blake3
root, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
names = sorted(os.listdir(root))
known = {}
if mode == "floor-warm":
    for name in names:
        s = os.stat(os.path.join(root, name))
        known[(s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns)] = "blake3:" + "0" * 64
for name in names[:count]:
    path = os.path.join(root, name)
    if mode == "floor":
        size = os.stat(path).st_size
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        blake3.blake3(os.read(fd, size)).hexdigest()
        os.close(fd)
    elif mode == "floor-warm":
        s = os.stat(path)
        known.get((s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns))
    with open(path, "rb") as handle:
        handle.read()
"""
VARIANTS = ["plain", "floor", "floor, warm", "bare", "clew", "clew, warm"]
# System calls that wait on another thread rather than do work: their count depends on timing.
WAITS = {"futex", "sched_yield", "nanosleep", "clock_nanosleep", "poll", "select", "epoll_wait"}


def _environment(variant: str, work: Path, run: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLEW_"))}
    env.pop("PYTHONPATH", None)
    env["PYTHONHASHSEED"] = "0"
    if variant in ("plain", "floor", "floor, warm"):
        return [PYTHON], env
    if variant == "bare":
        return [INSTRUMENT, PYTHON], {**env, **baseline_environment()}
    home = work / ("warm-home" if variant == "clew, warm" else f"home-{run}")
    # Every record flushed at exit: with flushes on the worker's interval, how the records
    # fall into batches depends on the wall clock, and the count on it by ~5 %.
    return [INSTRUMENT, PYTHON], {**env, "CLEW_HOME": str(home), "CLEW_FLUSH_INTERVAL": "3600"}


def _mode(variant: str) -> str:
    return {"floor": "floor", "floor, warm": "floor-warm"}.get(variant, "read")


def count(variant: str, files: int, work: Path, data: Path) -> dict[str, int]:
    """Instructions of each thread of the measured process (the python running the program;
    threads numbered in order of creation, 1 the main one)."""
    run = f"{variant.replace(', ', '-')}-{files}"
    out = work / f"callgrind-{run}"
    out.mkdir()
    prefix, env = _environment(variant, work, run)
    subprocess.run(
        ["valgrind", "--tool=callgrind", "--trace-children=yes", "--separate-threads=yes",
         f"--callgrind-out-file={out}/%p.out", *prefix, "-c", PROGRAM, str(data), str(files),
         _mode(variant)],
        env=env, cwd=work, check=True, capture_output=True,
    )
    threads: dict[str, int] = {}
    for path in out.glob("*.out-*"):
        text = path.read_text(errors="replace")
        if not re.search(r"^cmd: .*python\S* -c ", text, re.MULTILINE):
            continue
        thread = path.name.rsplit("-", 1)[1]
        threads[thread] = int(re.search(r"^summary: (\d+)", text, re.MULTILINE).group(1))
    return threads


def per_open(variant: str, work: Path, data: Path) -> dict[str, float]:
    """Instructions per first open, by thread: (MANY files - FEW files) / (MANY - FEW)."""
    with ThreadPoolExecutor(2) as pool:
        few, many = pool.map(lambda n: count(variant, n, work, data), (FEW, MANY))
    return {t: (many.get(t, 0) - few.get(t, 0)) / (MANY - FEW) for t in sorted(set(few) | set(many))}


def system_calls(variant: str, files: int, work: Path, data: Path) -> Counter[str]:
    """System calls of the measured process and its threads by name, under strace -f -c."""
    run = f"strace-{variant.replace(', ', '-')}-{files}"
    out = work / f"{run}.txt"
    prefix, env = _environment(variant, work, run)
    subprocess.run(["strace", "-f", "-c", "-o", str(out), *prefix, "-c", PROGRAM, str(data),
                    str(files), _mode(variant)], env=env, cwd=work, check=True, capture_output=True)
    calls: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        fields = line.split()  # % time, seconds, usecs/call, calls, [errors], name
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] not in WAITS | {"total"}:
            calls[fields[-1]] = int(fields[3])
    return calls


def calls_per_open(variant: str, work: Path, data: Path) -> Counter[str]:
    """System calls per first open, by name, as `per_open` counts instructions."""
    few, many = (system_calls(variant, n, work, data) for n in (FEW, MANY))
    return Counter({name: (many[name] - few[name]) / (MANY - FEW) for name in many | few})


def _added_calls(calls: dict[str, Counter[str]], variant: str, base: str) -> str:
    added = {name: calls[variant][name] - calls[base][name] for name in calls[variant] | calls[base]}
    shown = ", ".join(f"{name} {count:+.1f}" for name, count in
                      sorted(added.items(), key=lambda item: -abs(item[1])) if abs(count) >= 0.05)
    return f"{sum(added.values()):+.1f} ({shown or 'none'})"


def make_files(data: Path) -> None:
    data.mkdir()
    blob = os.urandom(SIZE)
    for index in range(MANY):
        (data / f"f{index:05d}.bin").write_bytes(blob[:-8] + index.to_bytes(8, "little"))


def report(took: float, loads: tuple[float, float], results: dict[str, dict[str, float]],
           calls: dict[str, Counter[str]] | None) -> str:
    total = {variant: sum(threads.values()) for variant, threads in results.items()}
    program = total["plain"]
    floor, warm_floor = total["floor"] - program, total["floor, warm"] - program
    rows = []
    for variant, against, floor_of in (("clew", floor, "floor"), ("clew, warm", warm_floor, "floor, warm")):
        threads = results[variant]
        main = threads.get("01", 0) - results["bare"].get("01", 0)
        others = total[variant] - total["bare"] - main
        added = total[variant] - total["bare"]
        ratio = added / against
        rows.append(
            f"| {variant} | {added / 1000:.1f}k | {main / 1000:.1f}k / {others / 1000:.1f}k "
            f"| {floor_of}: {against / 1000:.1f}k | {ratio:.2f} | <= {TARGET} "
            f"| {'pass' if ratio <= TARGET else '**FAIL**'} |"
        )
    info = machine()
    return "\n".join([
        "## .venv/bin/python benchmarks/first_open.py",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min)",
        f"- machine: nproc {info['nproc']}, {info['cpu']}, {info['python']}, Linux {info['kernel']}; "
        f"load average (1 min) before / after: {loads[0]:.2f} / {loads[1]:.2f} (instruction "
        "counts do not depend on it)",
        f"- clew commit measured: {git_state()}",
        f"- what: user-space instructions per first open of a 16 KiB file under callgrind, "
        f"({MANY:,} files - {FEW} files) / {MANY - FEW:,}, every thread of the process; "
        f"the program's own open and read (plain): {program / 1000:.1f}k, under bare "
        f"opentelemetry-instrument: {(total['bare']) / 1000:.1f}k",
        f"- floor: a stat, open, read, blake3 hex digest and close of the file, "
        f"{floor / 1000:.1f}k; warm: a stat and a dict look-up of its key, {warm_floor / 1000:.1f}k",
        *([] if calls is None else [
            f"- system calls per first open (`strace -f -c`, every thread, waits on another "
            f"thread left out): the program's own {sum(calls['plain'].values()):.1f}; added by "
            f"the floor {_added_calls(calls, 'floor', 'plain')}, the warm floor "
            f"{_added_calls(calls, 'floor, warm', 'plain')}; added by clew over bare "
            f"{_added_calls(calls, 'clew', 'bare')}, warm {_added_calls(calls, 'clew, warm', 'bare')}",
        ]),
        "",
        "| variant | clew's added instructions per first open | program's thread / clew's threads "
        "| floor | added / floor | target | result |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("error: this benchmark needs valgrind (apt-get install valgrind)")
    start, load_before = dt.datetime.now(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="clew-first-open-", dir="/var/tmp") as scratch:
        work = Path(scratch).resolve()
        data = work / "data"
        make_files(data)
        # the warm digest cache: a run of clew over every file, before any count
        prefix, env = _environment("clew", work, "warm")
        env["CLEW_HOME"] = str(work / "warm-home")
        subprocess.run([*prefix, "-c", PROGRAM, str(data), str(MANY), "read"], env=env,
                       cwd=work, check=True)
        results = {variant: per_open(variant, work, data) for variant in VARIANTS}
        calls = None
        if shutil.which("strace") is not None:
            calls = {variant: calls_per_open(variant, work, data) for variant in VARIANTS}
        else:
            print("note: strace not found (apt-get install strace): system calls not counted")
    took = (dt.datetime.now() - start).total_seconds()
    section = report(took, (load_before, os.getloadavg()[0]), results, calls)
    print(section)
    if not args.no_write:
        write_results(section, MARKER)


if __name__ == "__main__":
    main()
