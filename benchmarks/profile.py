"""Profile one benchmark workload under clew (or the baseline) with py-spy, and summarise.

    .venv/bin/pip install py-spy            # once
    .venv/bin/python benchmarks/profile.py a [--baseline] [--rate 250] [--idle] [--native]

Runs the workload exactly as run.py does (same data, environment and working directory;
the data must have been prepared by run.py) but as `python workload.py` with
opentelemetry-instrument's sitecustomize on PYTHONPATH, which is what opentelemetry-instrument
execs, so py-spy samples the real process. Prints samples per thread, then the functions
with the most inclusive and self samples. The raw collapsed stacks are kept under
benchmarks/.work/profiles/ (flamegraph.pl or speedscope read them).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import run  # benchmarks/run.py

import opentelemetry.instrumentation.auto_instrumentation as auto


def summarise(raw: Path, top: int) -> str:
    threads: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[tuple[str, str]] = collections.Counter()
    own: collections.Counter[tuple[str, str]] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        frames = stack.split(";")
        # with --subprocesses, stacks start with one "process ..." frame per level
        at = next((i for i, f in enumerate(frames) if f.startswith("thread ")), 0)
        thread = re.sub(r"thread \(\d+\):? ?", "", frames[at]) or "unnamed"
        thread = re.sub(r"-\d+(_\d+)?$", "-N", thread)
        if at >= 2:
            thread = f"child {thread}"
        names = [re.sub(r":\d+\)", ")", f) for f in frames[at + 1 :] if not f.startswith("0x")]
        total += samples
        threads[thread] += samples
        for name in set(names):
            inclusive[(thread, name)] += samples
        if names:
            own[(thread, names[-1])] += samples
    out = [f"{total} samples"]
    out += [f"  {n:7d} {100 * n / total:5.1f}%  thread {t}" for t, n in threads.most_common()]
    skip = ("<frozen", "threading.py", "_call_with_frames_removed")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        out.append(f"-- {title}")
        shown = 0
        for (thread, name), n in counter.most_common():
            if any(s in name for s in skip):
                continue
            out.append(f"  {n:7d} {100 * n / total:5.1f}%  [{thread}] {name}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=[k for k in run.ORDER if k != "e"] + ["e"])
    parser.add_argument("--baseline", action="store_true", help="profile the baseline instead")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--idle", action="store_true", help="also sample idle (waiting) threads")
    parser.add_argument("--native", action="store_true", help="include native frames")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--work", type=Path, default=run.BENCH / ".work")
    args = parser.parse_args()

    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        sys.exit(f"py-spy not found: {py_spy} (.venv/bin/pip install py-spy)")
    work = args.work.resolve()
    manifest = run.prepare(work, recalibrate=False)
    runner = run.Runner(work, manifest)
    workload = run.workloads(work)[args.workload]
    out = work / "out" / "profile" if workload.out_dir else None
    if out is not None:
        shutil.rmtree(out, ignore_errors=True)
    command = runner.command(workload, out)[1:]  # drop opentelemetry-instrument
    home = work / "homes" / f"profile-{args.workload}"
    if args.baseline:
        env, _ = runner.baseline_env()
    elif workload.warm_home:
        home = work / "homes" / "e-warm"
        if not (home / "cache").exists():
            runner.run(runner.command(workload, None), runner.clew_env(home))
        shutil.rmtree(home / "spool", ignore_errors=True)
        env = runner.clew_env(home)
    else:
        shutil.rmtree(home, ignore_errors=True)
        env = runner.clew_env(home)
    env.pop("CLEW_BENCH_PHASES", None)
    # what opentelemetry-instrument does before it execs the program
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(auto.__file__), str(runner.cwd)])
    profiles = work / "profiles"
    profiles.mkdir(exist_ok=True)
    raw = profiles / f"{args.workload}-{'baseline' if args.baseline else 'clew'}.raw"
    spy = [str(py_spy), "record", "-r", str(args.rate), "--threads", "-f", "raw", "-o", str(raw)]
    spy += ["--subprocesses"] if args.workload in ("d", "f") else []
    spy += ["--idle"] if args.idle else []
    spy += ["--native"] if args.native else []
    subprocess.run([*spy, "--", *command], env=env, cwd=runner.cwd, check=True,
                   stdout=subprocess.DEVNULL)
    print(summarise(raw, args.top))
    print(f"\nraw stacks: {raw}")


if __name__ == "__main__":
    main()
