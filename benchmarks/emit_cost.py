"""Instructions per record from a finished `Record` to its bytes in the spool (issue 17).

    .venv/bin/python benchmarks/emit_cost.py [--no-write]

What the recorder does at every flush, and at exit, with each record: `Recorder._emit_ready`
(its producer stamp looked for, grouped into batches, the spans' attributes, OpenTelemetry's
span made and ended) and the span processor's export (`encode_json`, the spool's write). A
program holds N identified records of real files (16 KiB by their keys, one listxattr each
on a real path) in a recorder wired to clew's span processor and spool exporter, emits and
exports them once; it runs under valgrind's callgrind with N = 2,000 and N = 12,000 records,
and once more each without the emit and export, so the per-record figure is
((emit 12,000 - emit 2,000) - (made only 12,000 - made only 2,000)) / 10,000: user-space
instructions of the whole process, start-up and the records' making cancel out. Two kinds:
small-file reads of six directories (batched: one span per directory per 512 records) and
writes (a span each; not stamped, so no setxattr). User-space instructions leave out the kernel's side of listxattr and
write. Writes its section of benchmarks/RESULTS.md.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PYTHON, git_state, machine, write_results  # noqa: E402

MARKER = "emit_cost.py"
FEW, MANY = 2_000, 12_000
DIRECTORIES = 6
KINDS = {"read": "small-file reads (batched spans)", "write": "writes (a span each)"}


def program(root: str, count: int, kind: str, emit: bool) -> None:
    """In the measured process: `count` records of `kind`, emitted and exported if `emit`."""
    from opentelemetry.sdk.trace import TracerProvider

    from clew.exporter.processor import ProvenanceSpanProcessor
    from clew.exporter.spool import SpoolSpanExporter
    from clew.instrumentation._process_span import ProcessSpan
    from clew.instrumentation._record_spans import Record
    from clew.instrumentation._recorder import Recorder
    from clew.instrumentation._settings import Settings

    base = Path(root)
    provider = TracerProvider()
    processor = ProvenanceSpanProcessor(
        SpoolSpanExporter(Path(tempfile.mkdtemp(dir=base)) / "spool"), schedule_delay=3600,
        max_queue_size=1 << 20, max_export_batch_size=1 << 20,
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("clew")
    settings = Settings(home=base / "home", hashing=True, hash_max_bytes=1 << 32,
                        flush_interval=3600, stamp=kind == "read")
    recorder = Recorder(tracer, settings, ProcessSpan(tracer, "fork", None), background=False)
    paths = sorted(str(p) for p in base.glob("data/*/*.bin"))
    for index in range(count):
        record = Record(kind, paths[index], (64768, 1_000_000 + index, 16384,
                                             1_764_170_000_000_000_000 + index))
        record.digest = f"blake3:{index:064x}"
        record.identity = "content"
        recorder._ready.append(record)
    if emit:
        recorder._emit_ready()
        processor.force_flush()


def make_files(root: Path) -> None:
    for directory in range(DIRECTORIES):
        folder = root / "data" / f"dir{directory}"
        folder.mkdir(parents=True)
        for index in range(MANY // DIRECTORIES):
            (folder / f"sample{index:05d}.bin").write_bytes(b"x")


def instructions(root: Path, count: int, kind: str, emit: bool) -> int:
    out = root / f"callgrind-{kind}-{count}-{emit}.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLEW_"))}
    env["PYTHONHASHSEED"] = "0"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", PYTHON, __file__,
         "--program", str(root), str(count), kind, "emit" if emit else "make"],
        env=env, check=True, capture_output=True,
    )
    return int(re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE).group(1))


def per_record(root: Path, kind: str) -> float:
    runs = [(count, emit) for emit in (True, False) for count in (FEW, MANY)]
    with ThreadPoolExecutor(2) as pool:
        few, many, few_made, many_made = pool.map(
            lambda run: instructions(root, run[0], kind, run[1]), runs)
    return ((many - few) - (many_made - few_made)) / (MANY - FEW)


def report(took: float, load: float, results: dict[str, float]) -> str:
    info = machine()
    return "\n".join([
        "## .venv/bin/python benchmarks/emit_cost.py",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min)",
        f"- machine: nproc {info['nproc']}, {info['cpu']}, {info['python']}, Linux "
        f"{info['kernel']}; load average (1 min) at the end: {load:.2f} (instruction counts do "
        "not depend on it)",
        f"- clew commit measured: {git_state()}",
        f"- what: user-space instructions per record from a finished record to its bytes in the "
        f"spool (`Recorder._emit_ready` and the span processor's export), callgrind, "
        f"({MANY:,} - {FEW:,} records) / {MANY - FEW:,}, less the records' making",
        "",
        "| records | instructions per record |",
        "|---|---|",
        *(f"| {KINDS[kind]} | {value / 1000:.1f}k |" for kind, value in results.items()),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--program", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.program:
        root, count, kind, mode = args.program
        program(root, int(count), kind, mode == "emit")
        return
    if shutil.which("valgrind") is None:
        sys.exit("error: this benchmark needs valgrind (apt-get install valgrind)")
    start = dt.datetime.now()
    with tempfile.TemporaryDirectory(prefix="clew-emit-cost-", dir="/var/tmp") as scratch:
        root = Path(scratch).resolve()
        make_files(root)
        results = {kind: per_record(root, kind) for kind in KINDS}
    section = report((dt.datetime.now() - start).total_seconds(), os.getloadavg()[0], results)
    print(section)
    if not args.no_write:
        write_results(section, MARKER)


if __name__ == "__main__":
    main()
