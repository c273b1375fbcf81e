"""clew's memory on a program that opens very many distinct files.

    .venv/bin/python benchmarks/memory.py [--files N] [--no-write]

N distinct small files (default 1,000,000, in directories of 1,000) are made once under
benchmarks/.work/memory/ (gitignored). One program opens and reads each of them, run under
bare `opentelemetry-instrument` (every exporter none, clew's instrumentors disabled, as
benchmarks/run.py's baseline) and under clew's defaults. Reported: each run's peak RSS
(ru_maxrss of the process) and clew's growth over the bare run, and the check that every
record arrived: the spool names N distinct file URIs. The result is written into
benchmarks/RESULTS.md, replacing this benchmark's section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import run  # benchmarks/run.py: its baseline, environment and reporting

from clew.exporter.otlp_json import iter_spans
from clew.exporter.spool_files import read_spool, spool_directory
from clew.semconv import attributes as attr

PER_DIRECTORY = 1000
TARGET_GROWTH_MIB = 64

PROGRAM = """
import sys
root, files, per_directory = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for number in range(files):
    with open(f"{root}/{number // per_directory:05d}/{number % per_directory:04d}", "rb") as f:
        f.read()
"""


def prepare(root: Path, files: int) -> None:
    """`files` distinct files of a few bytes each, made once (without clew); the program
    reads the first `files` of however many there are."""
    marker = root / f".complete-{files}"
    if marker.exists():
        return
    for number in range(files):
        directory, index = divmod(number, PER_DIRECTORY)
        if index == 0:
            (root / f"{directory:05d}").mkdir(parents=True, exist_ok=True)
        fd = os.open(root / f"{directory:05d}" / f"{index:04d}", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"%d" % number)
        os.close(fd)
    marker.touch()


def measure(env: dict[str, str], root: Path, files: int, cwd: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one run of the program."""
    command = [run.INSTRUMENT, run.PYTHON, "-c", PROGRAM, str(root), str(files), str(PER_DIRECTORY)]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=cwd)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the program failed with exit code {process.returncode}")
    return usage.ru_maxrss / 1024, time.monotonic() - started


def distinct_uris(home: Path) -> int:
    """Distinct file URIs of the read records in the spool under `home`."""
    uris: set[str] = set()
    for line in read_spool(spool_directory(home)):
        for span in iter_spans(line.data):
            if span.attributes.get(attr.PROVENANCE_IO_OPERATION) != "read":
                continue
            uris.update(span.attributes.get(attr.PROVENANCE_ARTIFACTS_URI)
                        or [span.attributes.get(attr.PROVENANCE_ARTIFACT_URI)])
    return len(uris)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000, help="distinct files to open")
    parser.add_argument("--work", type=Path, default=run.BENCH / ".work" / "memory")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    if args.files < 1:
        parser.error("--files must be at least 1")
    began = time.monotonic()
    root = args.work / "files"
    prepare(root, args.files)
    base = run._clean_environment(args.work)
    bare_rss, bare_s = measure({**base, **run.baseline_environment()}, root, args.files, args.work)
    home = args.work / "clew-home"
    shutil.rmtree(home, ignore_errors=True)
    clew_env = {**base, "CLEW_HOME": str(home)}
    clew_rss, clew_s = measure(clew_env, root, args.files, args.work)
    found = distinct_uris(home)
    growth = clew_rss - bare_rss
    passed = growth <= TARGET_GROWTH_MIB and found == args.files
    spec = run.machine()
    command = "benchmarks/memory.py" + (f" --files {args.files}" if args.files != 1_000_000 else "")
    section = "\n".join([
        f"## .venv/bin/python {command}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"(took {(time.monotonic() - began) / 60:.0f} min)",
        f"- machine: nproc {spec['nproc']}, {spec['cpu']}, RAM {spec['ram']}, {spec['python']}, "
        f"Linux {spec['kernel']}",
        f"- clew commit measured: {run.git_state()}",
        f"- one program opens and reads {args.files:,} distinct files of a few bytes; peak RSS "
        "is ru_maxrss of the `opentelemetry-instrument python -c PROGRAM` process; bare: "
        "benchmarks/run.py's baseline (exporters none, clew's instrumentors disabled)",
        "",
        "| files | bare peak RSS | clew peak RSS | growth | target | records in the spool | "
        "wall bare / clew | result |",
        "|---|---|---|---|---|---|---|---|",
        f"| {args.files:,} | {bare_rss:.1f} MiB | {clew_rss:.1f} MiB | {growth:+.1f} MiB | "
        f"<= {TARGET_GROWTH_MIB} MiB | {found:,} distinct URIs of {args.files:,} | "
        f"{bare_s:.1f} / {clew_s:.1f} s | {'pass' if passed else '**FAIL**'} |",
    ])
    print(section)
    if not args.no_write:
        run.write_results(section, "memory")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
