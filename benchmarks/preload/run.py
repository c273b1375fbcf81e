"""What clew's LD_PRELOAD library costs programs that are not Python, run as children.

    .venv/bin/python benchmarks/preload/run.py [--pairs N] [--no-write]

Two workloads, each a Python program under `opentelemetry-instrument` that runs one child:
`tar czf` of 1,000 files of 4 KiB, and `cp -r` of 10,000 files of 1 KiB. Each is run bare
(OpenTelemetry with clew's hooks disabled and every exporter set to none, as benchmarks/run.py's
baseline) and under clew's defaults (the child's every read and write recorded, with digests),
alternating which goes first, a fresh CLEW_HOME and output directory per run, after one
untimed warm-up of each. Data, outputs and CLEW_HOME live in the temporary directory, outside
any git work tree (cp's on tmpfs, /dev/shm, when there is one), removed at the end. The median of the clew/bare ratios of the pairs is compared with the
target (<= 1.25). Every clew run is checked: one write record with the right digest per file
the child wrote. The floor is what any recording with digests must cost at least: after each
bare run, a stat and a blake3 of every file the child read and wrote, timed here and added to
that run's time. CPU times (user+sys of the program and its child; the floor's adds the
stat-and-blake3's) are reported beside, the steadier measure on a shared machine. The table
goes into benchmarks/RESULTS.md, replacing its previous section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import blake3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import run as main_run  # noqa: E402 - benchmarks/run.py: the baseline, machine, RESULTS.md

# Outside any git work tree, as a user's data directory may be: clew's start-up cost in a
# checkout (git state, gathered in the background) is benchmarks/run.py's "startup" workload,
# not this one's.
WORK = Path(tempfile.gettempdir()) / "clew-preload-bench"
# cp -r runs on tmpfs where there is one: creating 10,000 files on this machine's disk, shared
# with other sessions, took 5-15 s from run to run, which drowned what clew adds (CPU, a few
# stats). It is reached through a symlink, as clew (rightly) records nothing under /dev. tar
# stays on disk: it opens its inputs relative to a directory descriptor, which the library
# resolves (/proc/self/fd) to the real path, under /dev.
SHM = Path("/dev/shm/clew-preload-bench")
TMPFS_LINK = WORK / "tmpfs"
TARGET = 1.25
PROGRAM = """
import subprocess, sys
subprocess.run(sys.argv[1:], check=True)
"""
WORKLOADS = {  # name: (title, files, bytes each, on tmpfs)
    "tar": ("`tar czf` of 1,000 files of 4 KiB", 1000, 4096, False),
    "cp": ("`cp -r` of 10,000 files of 1 KiB", 10000, 1024, True),
}


def workdir(on_tmpfs: bool) -> Path:
    if on_tmpfs and SHM.parent.is_dir():
        if not TMPFS_LINK.is_symlink():
            SHM.mkdir(exist_ok=True)
            TMPFS_LINK.parent.mkdir(parents=True, exist_ok=True)
            TMPFS_LINK.symlink_to(SHM)
        return TMPFS_LINK
    WORK.mkdir(parents=True, exist_ok=True)
    return WORK


def prepare(name: str, count: int, size: int, work: Path) -> Path:
    source = work / f"{name}-source"
    if source.is_dir() and len(list(source.iterdir())) == count:
        return source
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for i in range(count):
        (source / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    return source


def command(name: str, source: Path, out: Path) -> list[str]:
    if name == "tar":
        return ["tar", "czf", str(out / "archive.tgz"), "-C", str(source.parent), source.name]
    return ["cp", "-r", str(source), str(out / "copy")]


def stat_and_hash(directories: list[Path]) -> tuple[float, float]:
    """Seconds (wall, CPU) to stat and blake3 every file under `directories` (their contents
    cached), the leanest way Python has: a descriptor, one read of the whole file."""
    start, start_cpu = time.perf_counter(), time.process_time()
    pending = [str(d) for d in directories]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                size = os.stat(entry.path).st_size
                fd = os.open(entry.path, os.O_RDONLY)
                try:
                    blake3.blake3(os.read(fd, size)).hexdigest()
                finally:
                    os.close(fd)
    return time.perf_counter() - start, time.process_time() - start_cpu


def once(
    name: str, source: Path, script: Path, clew: bool
) -> tuple[float, float, float, float, list[str]]:
    """Wall and CPU time (user+sys of the program and its child) of one run, the floor's
    stat-and-hash wall and CPU time (bare runs only), and the problems its check found (clew
    runs only)."""
    scratch = Path(tempfile.mkdtemp(dir=source.parent))
    out = scratch / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLEW_"))}
    env["CLEW_HOME"] = str(scratch / "home")
    if not clew:
        env.update(main_run.BASELINE_ENV)
    argv = [main_run.INSTRUMENT, sys.executable, str(script), *command(name, source, out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=scratch, check=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    problems = check(name, source, out, scratch / "home") if clew else []
    hashing, hashing_cpu = (0.0, 0.0) if clew else stat_and_hash([source, out])
    shutil.rmtree(scratch)
    return elapsed, cpu, hashing, hashing_cpu, problems


def check(name: str, source: Path, out: Path, home: Path) -> list[str]:
    from clew.query.spool import spool_runs

    (run,) = spool_runs(home)
    writes = {a.uri.rsplit("/", 1)[1]: a.digest for a in run.accesses if a.operation == "write"}
    reads = [a for a in run.accesses if a.operation == "read"]
    if name == "tar":
        expected = {"archive.tgz": out / "archive.tgz"}
    else:
        expected = {p.name: p for p in (out / "copy").iterdir()}
    problems = []
    for file_name, path in expected.items():
        digest = "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()
        if writes.get(file_name) != digest:
            problems.append(f"{file_name}: recorded {writes.get(file_name)}, is {digest}")
    if len(reads) != len(list(source.iterdir())) or not all(a.digest for a in reads):
        problems.append(f"{len(reads)} reads recorded, not all with digests")
    return problems[:5]


def measure(name: str, pairs: int) -> dict:
    title, count, size, on_tmpfs = WORKLOADS[name]
    work = workdir(on_tmpfs)
    source = prepare(name, count, size, work)
    script = work / "program.py"
    script.write_text(PROGRAM)
    once(name, source, script, clew=False)
    once(name, source, script, clew=True)
    bare, clew, ratios, floors, problems = [], [], [], [], []
    bare_cpu, clew_cpu, floors_cpu = [], [], []
    for pair in range(pairs):
        order = (False, True) if pair % 2 == 0 else (True, False)
        times, cpus, hashing, hashing_cpu = {}, {}, 0.0, 0.0
        for variant in order:
            times[variant], cpus[variant], spent, spent_cpu, found = once(
                name, source, script, clew=variant
            )
            hashing += spent
            hashing_cpu += spent_cpu
            problems += found
        print(f"{name} pair {pair + 1}: bare {times[False]:.3f} s ({cpus[False]:.3f} CPU), "
              f"clew {times[True]:.3f} s ({cpus[True]:.3f} CPU)", file=sys.stderr, flush=True)
        bare.append(times[False])
        clew.append(times[True])
        ratios.append(times[True] / times[False])
        floors.append((times[False] + hashing) / times[False])
        bare_cpu.append(cpus[False])
        clew_cpu.append(cpus[True])
        floors_cpu.append(cpus[False] + hashing_cpu)
    where = f"{work} -> {SHM} (tmpfs)" if work.is_symlink() else str(work)
    return {"title": title, "bare": bare, "clew": clew, "ratio": statistics.median(ratios),
            "floor": statistics.median(floors), "problems": problems, "where": where,
            "bare_cpu": bare_cpu, "clew_cpu": clew_cpu, "floor_cpu": floors_cpu}


def report(results: dict[str, dict], pairs: int, began: float) -> str:
    info = main_run.machine()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=main_run.ROOT, check=False).stdout.strip()
    lines = [
        "## .venv/bin/python benchmarks/preload/run.py",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"(took {(time.monotonic() - began) / 60:.0f} min), commit {commit}",
        f"- machine: nproc {info['nproc']}, {info['cpu']}, RAM {info['ram']}, {info['python']}, "
        f"Linux {info['kernel']}, {info['packages']}",
        f"- load average (1 min) at the end: {os.getloadavg()[0]:.2f} "
        "(a 2-core machine shared with other sessions)",
        "- each: `opentelemetry-instrument python program.py CHILD...` (the program runs the "
        "child with subprocess.run); bare = clew's hooks disabled, exporters none; clew = "
        "defaults (LD_PRELOAD library, digests of every file read and written, spool)",
        f"- {pairs} pairs, alternating which runs first, after one warm-up of each; median of "
        "the per-pair ratios; data, outputs and a fresh CLEW_HOME per run (cold digest cache) "
        "under: " + "; ".join(f"{name} {r['where']}" for name, r in results.items()),
        "- floor = (bare + a stat and a blake3, in this Python process, of every file the child "
        "read and wrote) / bare, per pair, median: what recording with digests costs at least",
        "- CPU = user+sys of the program and its child (getrusage), medians; the floor's adds "
        "the stat-and-blake3's CPU time to the bare run's",
        "",
        "| workload | bare median | clew median | clew / bare (median of pairs) | floor / bare "
        "| target | result | CPU bare / floor / clew | records check |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results.values():
        verdict = "ok" if result["ratio"] <= TARGET else "**FAIL**"
        checked = "ok" if not result["problems"] else "; ".join(result["problems"][:3])
        lines.append(
            f"| {result['title']} | {statistics.median(result['bare']):.3f} s "
            f"| {statistics.median(result['clew']):.3f} s | {result['ratio']:.3f} "
            f"| {result['floor']:.3f} | <= {TARGET} | {verdict} "
            f"| {statistics.median(result['bare_cpu']):.3f} / "
            f"{statistics.median(result['floor_cpu']):.3f} / "
            f"{statistics.median(result['clew_cpu']):.3f} s | {checked} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=9, help="timed pairs per workload (>= 9)")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    if args.pairs < 9:
        parser.error("--pairs must be at least 9")
    began = time.monotonic()
    try:
        results = {name: measure(name, args.pairs) for name in WORKLOADS}
    finally:
        if TMPFS_LINK.is_symlink():
            shutil.rmtree(SHM)
        shutil.rmtree(WORK, ignore_errors=True)
    section = report(results, args.pairs, began)
    print(section)
    if not args.no_write:
        main_run.write_results(section, "preload/run.py")


if __name__ == "__main__":
    main()
