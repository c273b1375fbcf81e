"""What a DataLoader worker spends in clew at exit, per record, against the floor (issue 17,
target 5).

Usage: `.venv/bin/python benchmarks/distributed/worker_exit.py [--runs N] [--no-write]`.

A non-persistent DataLoader worker exits at the end of each epoch, and the main process joins
it before the epoch is over: what clew does in the worker's exit (`_lifecycle.close`: the
records still pending made into spans, the process span ended, the spool written) is on the
epoch's critical path. The program here (this file, run with `--epoch`) reads FILES files of
16 KiB (page cache) through a DataLoader(batch_size=64, num_workers=2, fork) once, under
`opentelemetry-instrument` with a fresh CLEW_HOME, from the checkout (a project with its
virtualenv inside it). In each worker it times clew's exit from the
inside: `_lifecycle.close` wrapped (wall and the main thread's CPU time), with its parts
(the recorder's final flush, which makes the spans; the process span's end; the export, which
encodes and writes). After clew is done, still in the worker, the floor is measured: the bytes
clew appended to the worker's spool file at exit, written again to a file of their own in one
O_APPEND write (what any capture must do at least: its records' bytes reach a file before the
process is gone). The runner reads each worker's spool lines written at exit to count the
records in them.

Variants: `clew` (defaults: the recorder flushes every second, so the records of the last
second are left at exit) and `clew, all at exit` (CLEW_FLUSH_INTERVAL=3600: every record of
the epoch is flushed at exit, the per-record cost with the fixed part spread thin). N runs of
each, alternating, after one warm-up; medians over every worker of every run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = Path(sys.executable).parent
WORK = ROOT / "benchmarks" / ".work" / "worker_exit"
FILES = 12_000
sys.path.insert(0, str(HERE))
from run import SIZE, prepare  # noqa: E402 - benchmarks/distributed/run.py: the data files
MARKER = "distributed/worker_exit.py"
VARIANTS = {"clew": {}, "clew, all at exit": {"CLEW_FLUSH_INTERVAL": "3600"}}
_SETTINGS = ("OTEL_", "CLEW_", "TRACEPARENT", "TRACESTATE", "PYTHONPATH", "RANK", "WORLD_SIZE",
             "LOCAL_RANK", "MASTER_", "TORCHELASTIC_", "SLURM_", "OMPI_", "PMIX_")


# -- the program, in the instrumented process and its workers ---------------------------------

def _time_exit(report: str) -> None:
    """In a DataLoader worker: wrap clew's exit so that it reports its times and the floor."""
    from clew.exporter.processor import active_processors
    from clew.instrumentation import _lifecycle

    original = _lifecycle.close
    parts: dict[str, float] = {}

    def timed(name: str, function):  # noqa: ANN001, ANN202
        """`function`, its CPU time (this thread's: clew's exit runs on the main thread)
        added to parts[name]."""
        def call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            began = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                parts[name] = parts.get(name, 0.0) + time.thread_time() - began
        return call

    def close(exit_code, exception=None):  # noqa: ANN001, ANN202
        recorder = _lifecycle.current_recorder()
        spool = Path(os.environ["CLEW_HOME"]) / "spool"
        mine = f"-{os.getpid()}-"
        before = {p: p.stat().st_size for p in spool.glob("*.jsonl") if mine in p.name}
        if recorder is not None:
            recorder.flush = timed("spans", recorder.flush)
            recorder.process.end = timed("process span", recorder.process.end)
            recorder._code_files = timed("code files", recorder._code_files)
        for processor in active_processors():
            processor.force_flush = timed("export", processor.force_flush)
        wall, cpu = time.perf_counter(), time.thread_time()
        original(exit_code, exception)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        files = [p for p in spool.glob("*.jsonl") if mine in p.name]
        written = b"".join(_tail(p, before.get(p, 0)) for p in files)
        floor_wall, floor_cpu = _floor(written, Path(report).with_suffix(f".{os.getpid()}"))
        line = json.dumps({
            "pid": os.getpid(), "wall_s": wall, "cpu_s": cpu, "parts": parts,
            "spool": [str(p) for p in files], "offsets": {str(p): before.get(p, 0) for p in files},
            "bytes": len(written), "floor_wall_s": floor_wall, "floor_cpu_s": floor_cpu,
        })
        fd = os.open(report, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, (line + "\n").encode())
        os.close(fd)

    _lifecycle.close = close


def _tail(path: Path, offset: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read()


def _floor(data: bytes, scratch: Path) -> tuple[float, float]:
    """The floor: `data` written to a new file in one O_APPEND write, and closed."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fd = os.open(scratch, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    view, done = memoryview(data), 0
    while done < len(data):
        done += os.write(fd, view[done:])
    os.close(fd)
    return time.perf_counter() - wall, time.thread_time() - cpu


def epoch(data: str, report: str) -> None:
    """One epoch over the files of `data` through a DataLoader with two workers."""
    from epoch import Files  # the distributed epoch's dataset: each item a file read whole
    from torch.utils.data import DataLoader

    paths = sorted(os.path.join(data, name) for name in os.listdir(data))
    loader = DataLoader(Files(paths), batch_size=64, num_workers=2,
                        worker_init_fn=lambda _worker: _time_exit(report))
    began = time.perf_counter()
    total = sum(int(batch.sum()) for batch in loader)
    print(json.dumps({"epoch_s": time.perf_counter() - began, "bytes": total}), flush=True)


# -- the runner ---------------------------------------------------------------------------

def _records(path: Path, offset: int) -> int:
    """Records in the spool lines of `path` from `offset`: a batched span's per-file arrays
    count one each, any other span with an artifact one."""
    from clew.exporter.otlp_json import iter_spans
    from clew.semconv import attributes as attr

    count = 0
    for line in _tail(path, offset).splitlines():
        for span in iter_spans(json.loads(line)):
            uris = span.attributes.get(attr.PROVENANCE_ARTIFACTS_URI)
            if uris is not None:
                count += len(uris)
            elif attr.PROVENANCE_ARTIFACT_URI in span.attributes:
                count += 1
    return count


def run(variant: str, data: Path, scratch: Path) -> list[dict]:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=scratch))
    report = home / "exits.jsonl"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_SETTINGS) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(OMP_NUM_THREADS="1", CLEW_HOME=str(home), PYTHONPYCACHEPREFIX=str(WORK / "pycache"),
               **VARIANTS[variant])
    command = [str(BIN / "opentelemetry-instrument"), sys.executable, __file__, "--epoch",
               str(data), str(report)]
    # Run from the checkout: the project, its virtualenv inside it, as is common.
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{variant} run failed:\n{done.stderr[-4000:]}")
    epoch_s = json.loads(done.stdout.strip().splitlines()[-1])["epoch_s"]
    exits = [json.loads(line) for line in report.read_text().splitlines()]
    if len(exits) != 2:
        raise SystemExit(f"{variant}: {len(exits)} worker exits reported, not 2")
    for exit_ in exits:
        exit_["records"] = sum(_records(Path(p), exit_["offsets"][p]) for p in exit_["spool"])
        exit_["epoch_s"] = epoch_s
    shutil.rmtree(home, ignore_errors=True)
    return exits


def report(results: dict[str, list[dict]], runs: int, took: float, loads: tuple) -> str:
    rows = []
    for variant, exits in results.items():
        def median(value) -> float:  # noqa: ANN001 - over the workers of every run
            return statistics.median(value(e) for e in exits)

        def per_record(seconds: float, e: dict) -> float:
            return seconds / max(e["records"], 1) * 1e6

        records = median(lambda e: per_record(e["parts"].get("spans", 0.0)
                                               + e["parts"].get("export", 0.0), e))
        floor = median(lambda e: per_record(e["floor_cpu_s"], e))
        part = {name: median(lambda e: e["parts"].get(name, 0.0) * 1e3)  # noqa: B023
                for name in ("spans", "export", "process span", "code files")}
        rows.append(
            f"| {variant} | {median(lambda e: e['records']):.0f} "
            f"| {median(lambda e: e['wall_s'] * 1e3):.1f} / {median(lambda e: e['cpu_s'] * 1e3):.1f} ms "
            f"| {part['spans']:.1f} / {part['export']:.1f} / {part['process span']:.1f} "
            f"({part['code files']:.1f}) ms | {records:.2f} | {floor:.3f} | {records / floor:.0f} "
            f"| {median(lambda e: per_record(e['cpu_s'], e)):.2f} "
            f"| {median(lambda e: e['epoch_s']):.3f} s |"
        )
    return "\n".join([
        f"## .venv/bin/python benchmarks/distributed/worker_exit.py --runs {runs}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min)",
        f"- clew commit measured: {_git_state()}",
        f"- load average (1 min) before / after: {loads[0]:.2f} / {loads[1]:.2f} (a 2-core "
        "machine shared with other sessions: wall times move with it, CPU times less)",
        f"- workload: {FILES:,} files of {SIZE // 1024} KiB (page cache) read once through a "
        "DataLoader(batch_size=64, num_workers=2, fork) under `opentelemetry-instrument`, a "
        "fresh CLEW_HOME per run; timed inside each worker: clew's exit (`_lifecycle.close`, "
        "wall and CPU of the exiting thread) and its parts (CPU): the final flush making the "
        "spans, the export encoding and writing them, the process span's end (of which its "
        "code files); after it the floor, the bytes clew appended to the worker's spool at "
        "exit written to a file of their own in one write (CPU)",
        f"- runs: {runs} of each variant, alternating, after one warm-up of each; medians over "
        "the workers of every run (two per run); records at exit: those in the worker's spool "
        "lines written at exit (a worker's recorder emits on its own once 4,096 wait)",
        "",
        "| variant | records at exit | clew's exit, wall / CPU | CPU of spans / export / "
        "process span (its code files) | records' CPU per record at exit (spans + export), "
        "us | floor per record, us | records / floor | whole exit's CPU per record, us "
        "| epoch (main process) |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])


def _git_state() -> str:
    sys.path.append(str(ROOT / "benchmarks"))
    from results import git_state

    return git_state()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md alone")
    parser.add_argument("--epoch", nargs=2, metavar=("DATA", "REPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epoch:
        epoch(*args.epoch)
        return
    started, load_before = time.monotonic(), os.getloadavg()[0]
    data = prepare(WORK / "data", FILES)
    results: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="clew-worker-exit-") as scratch:
        for variant in VARIANTS:  # warm-up, untimed
            run(variant, data, Path(scratch))
        for index in range(args.runs):
            order = list(VARIANTS) if index % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                exits = run(variant, data, Path(scratch))
                results[variant] += exits
                print(f"{variant:18} " + "  ".join(
                    f"{e['records']} records {e['wall_s'] * 1e3:.1f} ms" for e in exits), flush=True)
    section = report(results, args.runs, time.monotonic() - started, (load_before, os.getloadavg()[0]))
    print(section)
    if not args.no_write:
        sys.path.append(str(ROOT / "benchmarks"))
        from results import write_section

        write_section(section, MARKER)


if __name__ == "__main__":
    main()
