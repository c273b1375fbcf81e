"""Instrumented/plain ratio of a 2-rank torchrun epoch over 10,000 files of 16 KiB, with a
DataLoader of 2 workers in each rank (target <= 1.10).

Usage: `.venv/bin/python benchmarks/distributed/run.py [--runs N]` from the checkout. The data
is written once under benchmarks/.work/distributed/ (gitignored, 160 MiB) and read once before
timing, so every run reads from the page cache. Each run launches

    plain:      torchrun --nproc-per-node 2 benchmarks/distributed/epoch.py DATA
    clew:       opentelemetry-instrument torchrun ... (clew's defaults, a fresh CLEW_HOME)
    clew-warm:  the same with a CLEW_HOME whose digest cache knows the files (a later
                epoch or a re-run: nothing is hashed), its spool emptied before each run

in turn (the order rotating), N runs each after one untimed warm-up of each. The ratio that
the target applies to is the epoch's, cold cache: from a barrier before the loop to one after
it, the slowest rank (torch's import and process start-up would otherwise dilute it). The
warm-cache epoch and the whole launch's wall time are reported next to it. Every clew run
is checked: one trace, each of the 10,000 files read exactly once, by a DataLoader worker,
under a rank and a worker id. The medians are written as a section of benchmarks/RESULTS.md,
between the markers below.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.append(str(ROOT / "benchmarks"))
from results import git_state, write_section  # noqa: E402 - benchmarks/results.py
BIN = Path(sys.executable).parent
WORK = ROOT / "benchmarks" / ".work" / "distributed"
FILES, SIZE = 10_000, 16 * 1024
TARGET = 1.10
_SETTINGS = ("OTEL_", "CLEW_", "TRACEPARENT", "TRACESTATE", "PYTHONPATH", "RANK", "WORLD_SIZE",
             "LOCAL_RANK", "MASTER_", "TORCHELASTIC_", "SLURM_", "OMPI_", "PMIX_")


def prepare(data: Path = WORK / "data", files: int = FILES) -> Path:
    """`files` files of SIZE random bytes in `data` (made once, then reused), read into the
    page cache."""
    existing = list(data.glob("*.bin")) if data.is_dir() else []
    if len(existing) != files or any(p.stat().st_size != SIZE for p in existing[:: 499]):
        print(f"writing {files} files of {SIZE} bytes under {data} (once) ...", flush=True)
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        blob = os.urandom(files * SIZE)
        for index in range(files):
            (data / f"sample{index:05d}.bin").write_bytes(blob[index * SIZE:(index + 1) * SIZE])
    for path in data.iterdir():  # into the page cache
        path.read_bytes()
    return data


def _env(home: Path | None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(_SETTINGS) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["OMP_NUM_THREADS"] = "1"
    # Bytecode cached as in a normal setup (some sandboxes set PYTHONDONTWRITEBYTECODE, which
    # recompiles clew's editable sources in every process), for both variants alike.
    env["PYTHONPYCACHEPREFIX"] = str(WORK / "pycache")
    if home is not None:
        env["CLEW_HOME"] = str(home)
    return env


VARIANTS = ("plain", "clew", "clew-warm")


def _launch(variant: str, data: Path, scratch: Path) -> dict:
    command = [str(BIN / "torchrun"), "--nproc-per-node", "2", str(HERE / "epoch.py"), str(data)]
    home = None
    if variant == "clew":
        home = Path(tempfile.mkdtemp(prefix="home-", dir=scratch))
    elif variant == "clew-warm":
        home = scratch / "warm-home"
        shutil.rmtree(home / "spool", ignore_errors=True)
    if home is not None:
        command.insert(0, str(BIN / "opentelemetry-instrument"))
    started, launched = time.perf_counter(), time.time()
    done = subprocess.run(command, env=_env(home), cwd=scratch, capture_output=True, text=True)
    wall, exited = time.perf_counter() - started, time.time()
    if done.returncode != 0:
        raise SystemExit(f"{variant} run failed:\n{done.stderr[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures.update(
        wall_s=wall,
        startup_s=figures["began"] - launched,  # launch to the epoch's first barrier
        shutdown_s=exited - figures["ended"],  # the epoch's last barrier to torchrun's exit
        check=_check(home, data) if home else "ok",
    )
    if variant == "clew":
        shutil.rmtree(home, ignore_errors=True)
    return figures


def _check(home: Path, data: Path) -> str:
    """What a clew run must have recorded: every file once, by a worker under a rank."""
    sys.path.insert(0, str(ROOT))
    from clew.exporter.otlp_json import iter_spans
    from clew.exporter.spool_files import read_spool, spool_directory
    from clew.semconv import attributes as attr

    time.sleep(0.2)  # DataLoader workers outlive torchrun's exit by a moment
    traces, reads, placed = set(), Counter(), 0
    prefix = f"{data.resolve()}/"
    for line in read_spool(spool_directory(home)):
        for span in iter_spans(line.data):
            traces.add(span.trace_id)
            uris = span.attributes.get(attr.PROVENANCE_ARTIFACTS_URI) or []
            for uri in uris:
                if prefix in uri:
                    reads[(uri, span.attributes[attr.PROCESS_PID])] += 1
                    r = span.resource
                    placed += attr.PROVENANCE_RANK in r and attr.PROVENANCE_WORKER_ID in r
    problems = []
    if len(traces) != 1:
        problems.append(f"{len(traces)} traces")
    if len({uri for uri, _ in reads}) != FILES:
        problems.append(f"{len({uri for uri, _ in reads})}/{FILES} files recorded")
    if any(count != 1 for count in reads.values()):
        problems.append("a file recorded twice by one process")
    if placed != sum(reads.values()):
        problems.append(f"{sum(reads.values()) - placed} reads without rank and worker id")
    return "; ".join(problems) or "ok"


def _load() -> float:
    return os.getloadavg()[0]


def _machine() -> str:
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    return (
        f"nproc {len(os.sched_getaffinity(0))}, {cpu}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"Linux {platform.release()}, torch {version('torch')}, "
        f"opentelemetry-sdk {version('opentelemetry-sdk')}"
    )


def _row(name: str, plain: list[float], clew: list[float], target: bool) -> str:
    p, c = statistics.median(plain), statistics.median(clew)
    ratio = c / p
    verdict = ("pass" if ratio <= TARGET else "**FAIL**") if target else "(reported)"
    spread = (
        f"{', '.join(f'{v:.3f}' for v in plain)} / {', '.join(f'{v:.3f}' for v in clew)}"
    )
    limit = f"<= {TARGET:.2f}" if target else ""
    return f"| {name} | {p:.3f} s | {c:.3f} s | {ratio:.3f} | {limit} | {verdict} | {spread} |"


def _write(results: dict[str, list[dict]], runs: int, took: float, loads: tuple) -> str:
    checks = sorted({r["check"] for r in results["clew"] + results["clew-warm"]})
    lines = [
        f"## .venv/bin/python benchmarks/distributed/run.py --runs {runs}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min)",
        f"- clew commit measured: {git_state()}",
        f"- machine: {_machine()}",
        f"- load average (1 min) before / after: {loads[0]:.2f} / {loads[1]:.2f} (a 2-core "
        "machine shared with other sessions: noisy)",
        f"- workload: `torchrun --nproc-per-node 2 benchmarks/distributed/epoch.py` over "
        f"{FILES:,} files of {SIZE // 1024} KiB (page cache), each rank reading its half "
        "through a DataLoader(batch_size=64, num_workers=2, fork)",
        "- plain: `torchrun ...`; clew: `opentelemetry-instrument torchrun ...` with clew's "
        "defaults and a fresh CLEW_HOME per run (cold digest cache: every file hashed); "
        "clew-warm: the same with a CLEW_HOME whose digest cache knows the files (as for a "
        "later epoch's workers or a re-run), spool emptied before each run",
        f"- runs: {runs} of each, in turn with the order rotating, after one warm-up of each; "
        "medians; bytecode cached (PYTHONPYCACHEPREFIX=benchmarks/.work/distributed/pycache, "
        "PYTHONDONTWRITEBYTECODE unset) for every variant",
        f"- records check of every clew run: {', '.join(checks)}",
        "",
        "| measure | plain median | clew median | clew / plain | target | result | "
        "plain runs / clew runs (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    def series(variant: str, key: str) -> list[float]:
        return [r[key] for r in results[variant]]

    lines.append(_row("epoch (slowest rank, barrier to barrier)", series("plain", "epoch_s"),
                      series("clew", "epoch_s"), True))
    lines.append(_row("epoch, warm digest cache", series("plain", "epoch_s"),
                      series("clew-warm", "epoch_s"), False))
    lines.append(_row("whole launch (torchrun start to exit)", series("plain", "wall_s"),
                      series("clew", "wall_s"), False))
    lines.append(_row("of which start-up (launch to the epoch)", series("plain", "startup_s"),
                      series("clew", "startup_s"), False))
    lines.append(_row("of which shutdown (epoch end to exit)", series("plain", "shutdown_s"),
                      series("clew", "shutdown_s"), False))
    section = "\n".join(lines)
    write_section(section, "distributed/run.py")
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md alone")
    args = parser.parse_args()
    started, load_before = time.monotonic(), _load()
    data = prepare()
    results: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="clew-bench-") as scratch:
        for variant in VARIANTS:  # warm-up, untimed (and clew-warm's cache filled)
            _launch(variant, data, Path(scratch))
        for index in range(args.runs):
            shift = index % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                figures = _launch(variant, data, Path(scratch))
                results[variant].append(figures)
                print(f"{variant:9} epoch {figures['epoch_s']:.3f} s  launch "
                      f"{figures['wall_s']:.3f} s  {figures['check']}", flush=True)
    loads = (load_before, _load())
    took = time.monotonic() - started
    if args.no_write:
        medians = {v: statistics.median(r["epoch_s"] for r in results[v]) for v in VARIANTS}
        print("epoch medians:", ", ".join(f"{v} {m:.3f} s" for v, m in medians.items()))
        return
    print(_write(results, args.runs, took, loads))


if __name__ == "__main__":
    main()
