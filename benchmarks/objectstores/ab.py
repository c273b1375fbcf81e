"""Where the small-object overhead goes: A/B measurements against one SeaweedFS.

Usage, from the checkout (each prints its figures; RESULTS.md quotes them with the command):

    .venv/bin/python benchmarks/objectstores/ab.py hooks [--rounds 40]
    .venv/bin/python benchmarks/objectstores/ab.py venvs A_VENV B_VENV [--runs 11] [--client s3fs]
    .venv/bin/python benchmarks/objectstores/ab.py cpu A_VENV B_VENV [--runs 7]
    .venv/bin/python benchmarks/objectstores/ab.py threads VENV [--rounds 3]

`hooks`: one process under opentelemetry-instrument with clew's defaults reads 100 objects of
64 KiB per batch, alternating batches with clew's botocore hooks on and off
(`clew.instrumentation.s3._instrumentor.active`); prints the medians per GET of the reading thread's CPU
time and of wall time, on and off. Set CLEW_HASH=0 to see the share of the digest.

`venvs`: `workload.py CLIENT small` (run.py's small workload, boto3 unless --client), in turn plain (A_VENV,
clew's hooks disabled) and clew from A_VENV and from B_VENV (e.g. a clean clone's venv and a
checkout carrying a change), a fresh CLEW_HOME each run; prints each clew's median ratio to
plain. Noise on this machine is about +-0.01 in that ratio.

`cpu`: the same workload's 1,000 GETs, plain and with clew from A_VENV and B_VENV, each
timed inside the program for wall time, the reading thread's CPU and the CPU of the process's
other threads (clew's recorder and exporter) over the reads; prints the medians. Set
OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=clew_botocore to see what clew costs a program whose
I/O it does not record.

`threads`: s3fs, in one process with VENV's clew, batches of 1,000 reads of 64 KiB with
clew's fsspec and botocore hooks off and on in turn; prints the CPU per object (user and
system, from /proc) that clew adds to the reading thread and to s3fs's event-loop thread.
Steadier than wall-time ratios on a busy machine: run it once for each of two installs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run

HOOKS = """
import statistics, sys, time
import boto3
from clew.instrumentation import s3 as hooks

client = boto3.client("s3")
keys = [f"small/{i:04d}.bin" for i in range(100)]
client.head_bucket(Bucket="bench")

def batch():
    cpu, wall = time.thread_time(), time.perf_counter()
    for key in keys:
        client.get_object(Bucket="bench", Key=key)["Body"].read()
    return (time.thread_time() - cpu) / len(keys), (time.perf_counter() - wall) / len(keys)

on, off = [], []
for _ in range(int(sys.argv[1])):
    hooks._instrumentor.active = False
    off.append(batch())
    hooks._instrumentor.active = True
    on.append(batch())
for index, name in ((0, "reading thread's CPU"), (1, "wall")):
    a, b = (statistics.median(x[index] for x in runs) for runs in (off, on))
    print(f"{name} per GET: off {a * 1e6:.0f} us, on {b * 1e6:.0f} us, clew +{(b - a) * 1e6:.1f} us")
"""


CPU = """
import time
import boto3
client = boto3.client("s3")
client.head_bucket(Bucket="bench")
wall, cpu, process = time.perf_counter(), time.thread_time(), time.process_time()
for i in range(1000):
    client.get_object(Bucket="bench", Key=f"small/{i:04d}.bin")["Body"].read()
wall, cpu, process = time.perf_counter() - wall, time.thread_time() - cpu, time.process_time() - process
print(wall, cpu, process - cpu)
"""


THREADS = """
import os, statistics, sys, threading
import s3fs
from clew.instrumentation import fsspec, s3

def cpu():
    names = {t.native_id: t.name for t in threading.enumerate()}
    found = {}
    for tid in os.listdir("/proc/self/task"):
        fields = open(f"/proc/self/task/{tid}/stat").read().rpartition(")")[2].split()
        found[names.get(int(tid))] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found

fs = s3fs.S3FileSystem()
fs.ls("bench")
added = {"MainThread": [], "fsspecIO": []}
for _ in range(int(sys.argv[1])):
    used = {}
    for active in (False, True):
        fsspec._instrumentor.active = s3._instrumentor.active = active
        before = cpu()
        for i in range(1000):
            with fs.open(f"bench/small/{i:04d}.bin", "rb") as handle:
                handle.read()
        used[active] = {name: cpu()[name] - before[name] for name in added}
    for name in added:
        added[name].append((used[True][name] - used[False][name]) * 1000)
for name, label in (("MainThread", "the reading thread"), ("fsspecIO", "s3fs's loop thread")):
    print(f"clew adds to {label}: median {statistics.median(added[name]):.0f} us per object; "
          f"rounds {', '.join(f'{x:.0f}' for x in added[name])}")
"""


def threads(endpoint: str, root: Path, venv: Path, rounds: int) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "opentelemetry-instrument"), str(venv / "bin" / "python"), "-c", THREADS, str(rounds)],
        env=run._env(endpoint, CLEW_HOME=str(root / "threads")), capture_output=True, text=True, check=True,
    )
    print(done.stdout, end="")


def cpu(endpoint: str, root: Path, a: Path, b: Path, runs: int) -> None:
    disabled = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    variants = {"plain": (a, run.PLAIN),
                "A": (a, {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled}),
                "B": (b, {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled})}
    found: dict[str, list[list[float]]] = {name: [] for name in variants}
    for index in range(runs):
        for name, (venv, extra) in variants.items():
            done = subprocess.run(
                [str(venv / "bin" / "opentelemetry-instrument"), str(venv / "bin" / "python"), "-c", CPU],
                env=run._env(endpoint, CLEW_HOME=str(root / f"cpu-{name}{index}"), **extra),
                capture_output=True, text=True, check=True,
            )
            found[name].append([float(x) for x in done.stdout.split()])
    for name, (venv, _) in variants.items():
        wall, reader, others = (max(statistics.median(r[i] for r in found[name]) * 1000, 0.0)
                                for i in range(3))
        print(f"{name} ({venv}): wall {wall:.0f} ms, reading thread {reader:.0f} ms, other threads {others:.0f} ms")


def hooks(endpoint: str, root: Path, rounds: int) -> None:
    done = subprocess.run(
        [str(run.BIN / "opentelemetry-instrument"), sys.executable, "-c", HOOKS, str(rounds)],
        env=run._env(endpoint, CLEW_HOME=str(root / "home"),
                     **{k: v for k, v in os.environ.items() if k == "CLEW_HASH"}),
        capture_output=True, text=True, check=True,
    )
    print(done.stdout, end="")


def venvs(endpoint: str, root: Path, a: Path, b: Path, runs: int, client: str) -> None:
    variants = {"plain": (a, False), "A": (a, True), "B": (b, True)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for name, (venv, clew) in variants.items():  # one warm-up each
        run._time(endpoint, client, "small", "bench", clew, root / f"warm-{name}", venv / "bin")
    for index in range(runs):
        order = ["plain", "A", "B"] if index % 2 else ["plain", "B", "A"]
        for name in order:
            venv, clew = variants[name]
            times[name].append(run._time(endpoint, client, "small", "bench", clew,
                                         root / f"{name}{index}", venv / "bin"))
    plain = statistics.median(times["plain"])
    for name in ("A", "B"):
        print(f"{name} ({variants[name][0]}): clew / plain {statistics.median(times[name]) / plain:.3f}; "
              f"runs {', '.join(f'{t:.3f}' for t in times[name])}")
    print(f"plain: median {plain:.3f} s; runs {', '.join(f'{t:.3f}' for t in times['plain'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    hooks_parser = commands.add_parser("hooks")
    hooks_parser.add_argument("--rounds", type=int, default=40)
    venvs_parser = commands.add_parser("venvs")
    venvs_parser.add_argument("a", type=Path)
    venvs_parser.add_argument("b", type=Path)
    venvs_parser.add_argument("--runs", type=int, default=11)
    venvs_parser.add_argument("--client", choices=("boto3", "s3fs"), default="boto3")
    cpu_parser = commands.add_parser("cpu")
    cpu_parser.add_argument("a", type=Path)
    cpu_parser.add_argument("b", type=Path)
    cpu_parser.add_argument("--runs", type=int, default=7)
    threads_parser = commands.add_parser("threads")
    threads_parser.add_argument("venv", type=Path)
    threads_parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="clew-bench-s3-ab-") as tmp:
        root = Path(tmp)
        process, endpoint = run._start_seaweedfs(root)
        try:
            run._upload(endpoint, "bench", large=False)
            if options.command == "hooks":
                hooks(endpoint, root, options.rounds)
            elif options.command == "threads":
                threads(endpoint, root, options.venv.absolute(), options.rounds)
            elif options.command == "cpu":
                cpu(endpoint, root, options.a.absolute(), options.b.absolute(), options.runs)
            else:
                venvs(endpoint, root, options.a.absolute(), options.b.absolute(), options.runs,
                      options.client)
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    print(f"took {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
