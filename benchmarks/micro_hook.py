"""Per-event cost of clew's file hook, and what it is made of.

    .venv/bin/python benchmarks/micro_hook.py [--work DIR]

Each configuration runs in its own process, because an audit hook cannot be removed:
plain `python` (no hook), a no-op Python audit hook, and clew under `opentelemetry-instrument`
(its defaults; and again with a CLEW_INCLUDE glob). Each times `open(path, "rb").read()` of
a 16 KiB file from the page cache: the first open of a file (a new record: path resolution,
stat, blake3 of the file, a Record) and re-opens of files already recorded (the dedupe path:
stat, dict lookup, count). Then the pieces are timed one by one in this process, and the
per-record cost of turning records into spans and spool lines. Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = 2000
BATCHES = 7
SIZE = 16 << 10
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
INSTRUMENT = str(Path(PYTHON).parent / "opentelemetry-instrument")


def _make_files(root: Path) -> list[list[str]]:
    batches = []
    blob = os.urandom(SIZE)
    for b in range(BATCHES + 1):
        folder = root / f"batch{b}"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(FILES):
            path = folder / f"f{i:05d}.bin"
            path.write_bytes(blob[:-8] + i.to_bytes(8, "little"))
            paths.append(str(path))
        batches.append(paths)
    return batches


def _open_read(paths: list[str]) -> float:
    start = time.perf_counter_ns()
    for path in paths:
        with open(path, "rb") as handle:
            handle.read()
    return (time.perf_counter_ns() - start) / len(paths) / 1e3


def child(root: str, noop_hook: bool) -> None:
    """Runs in a process of its own: time first opens and re-opens, print JSON (us/op)."""
    if noop_hook:
        sys.addaudithook(lambda event, args: None)
    batches = [sorted(str(p) for p in (Path(root) / f"batch{b}").iterdir())
               for b in range(BATCHES + 1)]
    _open_read(batches[BATCHES])  # warm-up: code paths, worker start
    first = [_open_read(batches[b]) for b in range(BATCHES)]  # each file's first open
    again = [_open_read(batches[b % BATCHES]) for b in range(BATCHES * 2)]  # re-opens
    ignored = float("inf")
    for _ in range(5):
        audit_start = time.perf_counter_ns()
        for _ in range(20_000):
            sys.audit("clew.benchmark.ignored")
        ignored = min(ignored, (time.perf_counter_ns() - audit_start) / 20_000 / 1e3)
    print(json.dumps({"first": min(first), "again": min(again),
                      "ignored": ignored}))


def _run_child(root: Path, env: dict[str, str], instrumented: bool, noop: bool = False) -> dict:
    command = [PYTHON, __file__, "--child", str(root)] + (["--noop-hook"] if noop else [])
    if instrumented:
        command = [INSTRUMENT, *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _timeit(function, number: int = 20000, repeat: int = 5) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            function()
        best = min(best, (time.perf_counter_ns() - start) / number)
    return best / 1e3


def components(root: Path) -> list[tuple[str, float]]:
    """The hot path's pieces, timed alone (us per call, best of 5)."""
    from opentelemetry import context as otel_context

    from clew.instrumentation import _paths
    from clew.instrumentation._file_digests import hash_file, stat_key
    from clew.instrumentation._record_spans import Record

    path = str(root / "batch0" / "f00000.bin")
    key = stat_key(os.stat(path))
    home = root / "home"
    plain = _paths.PathFilter(home)
    os.environ["CLEW_INCLUDE"] = f"{root}/include-me/*"
    with_include = _paths.PathFilter(home)
    del os.environ["CLEW_INCLUDE"]
    key_suppress = otel_context._SUPPRESS_INSTRUMENTATION_KEY
    hook = lambda event, args: None  # noqa: E731
    data = open(path, "rb").read()  # noqa: SIM115
    import blake3

    return [
        ("no-op Python audit hook call (ignored event)", _timeit(lambda: hook("x", ()))),
        ("otel context get_value (suppression check)", _timeit(lambda: otel_context.get_value(key_suppress))),
        ("_paths.absolute(path)", _timeit(lambda: _paths.absolute(path))),
        ("PathFilter.wants(path), defaults", _timeit(lambda: plain.wants(path))),
        ("PathFilter.wants(path), one CLEW_INCLUDE glob", _timeit(lambda: with_include.wants(path))),
        ("os.stat(path)", _timeit(lambda: os.stat(path))),
        ("Record('read', path, key)", _timeit(lambda: Record("read", path, key))),
        ("blake3(16 KiB bytes).hexdigest()", _timeit(lambda: blake3.blake3(data).hexdigest())),
        ("hash_file(path): open, fstat, read, blake3, fstat, close", _timeit(lambda: hash_file(path, key), 5000)),
        ("open(path,'rb').read() without any hook", _timeit(lambda: open(path, "rb").read(), 5000)),  # noqa: SIM115
        ("_paths.file_uri(path) (at flush)", _timeit(lambda: _paths.file_uri(path))),
    ]


def emit_cost(root: Path) -> list[tuple[str, float]]:
    """Per record: batched spans built from 20,000 read records, then encoded to the spool."""
    from opentelemetry.sdk.trace import TracerProvider

    from clew.exporter.processor import ProvenanceSpanProcessor
    from clew.exporter.spool import SpoolSpanExporter
    from clew.instrumentation._process_span import ProcessSpan
    from clew.instrumentation._recorder import Recorder
    from clew.instrumentation._record_spans import Record
    from clew.instrumentation._settings import Settings

    count = 20000
    provider = TracerProvider()
    exporter = SpoolSpanExporter(root / "spool")
    processor = ProvenanceSpanProcessor(exporter, schedule_delay=3600, max_queue_size=1 << 20,
                                        max_export_batch_size=1 << 20)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    settings = Settings(home=root / "home", hashing=True, hash_max_bytes=1 << 32,
                        flush_interval=3600)
    recorder = Recorder(tracer, settings, ProcessSpan(tracer, "fork", None))
    # Real files (the batches made for the hook timings): emitting a read looks for a
    # producer stamp on the file (listxattr), which costs more on a path that does not exist.
    paths = sorted(str(p) for p in root.glob("batch*/f*.bin"))
    records = []
    for i in range(count):
        record = Record("read", paths[i % len(paths)],
                        (64768, 1000000 + i, SIZE, 1764170000000000000 + i))
        record.digest = "blake3:" + f"{i:064x}"
        record.identity = "content"
        records.append(record)
    recorder._ready.extend(records)
    start = time.perf_counter_ns()
    recorder._emit_ready()
    emitted = (time.perf_counter_ns() - start) / count / 1e3
    queued = len(processor._queue)
    start = time.perf_counter_ns()
    processor.force_flush()
    exported = (time.perf_counter_ns() - start) / count / 1e3
    size = exporter.path.stat().st_size if exporter.path else 0
    processor.shutdown()
    return [
        (f"build batched spans ({queued} spans for {count} records), per record", emitted),
        (f"encode + write to the spool ({size / count:.0f} bytes per record), per record", exported),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--noop-hook", action="store_true")
    parser.add_argument("--work", type=Path, default=HERE / ".work")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.noop_hook)
        return

    # Outside the repository: in an editable install clew's filter ignores the repo.
    root = Path(tempfile.mkdtemp(prefix="clew-micro-", dir="/var/tmp"))
    try:
        _make_files(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLEW_"))}
        env.pop("PYTHONPATH", None)
        clew_env = {**env, "CLEW_HOME": str(root / "home")}
        include_env = {**env, "CLEW_HOME": str(root / "home2"),
                       "CLEW_INCLUDE": f"{root}/*"}
        base_env = {**env, "CLEW_HOME": str(root / "home0"), "OTEL_TRACES_EXPORTER": "none",
                    "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
                    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "clew_files,clew_processes"}
        rows = [
            ("plain python, no hook", _run_child(root, env, False)),
            ("baseline: opentelemetry-instrument, exporters none", _run_child(root, base_env, True)),
            ("a no-op Python audit hook", _run_child(root, env, False, noop=True)),
            ("clew defaults", _run_child(root, clew_env, True)),
            ("clew, warm digest cache (2nd run, same CLEW_HOME)", _run_child(root, clew_env, True)),
            ("clew + CLEW_INCLUDE glob", _run_child(root, include_env, True)),
        ]
        none = rows[0][1]
        out = [
            "### Per-event cost of the file hook (micro-benchmark)",
            "",
            f"`open(path, 'rb').read()` of a 16 KiB file from the page cache, us per call "
            f"(best of {BATCHES} batches of {FILES} files: the machine is shared; first open = a new record, "
            "re-open = a file already recorded). Each configuration in its own process. "
            "`.venv/bin/python benchmarks/micro_hook.py`",
            "",
            "| configuration | first open | re-open | hook cost, first | hook cost, re-open | "
            "an ignored audit event |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in rows:
            out.append(
                f"| {name} | {r['first']:.1f} | {r['again']:.1f} | "
                f"{r['first'] - none['first']:+.1f} | {r['again'] - none['again']:+.1f} | "
                f"{r['ignored']:.2f} |"
            )
        out += ["", "The pieces, timed alone in one process (us per call, best of 5):", "",
                "| piece | us |", "|---|---|"]
        out += [f"| {name} | {value:.2f} |" for name, value in components(root)]
        out += [f"| {name} | {value:.2f} |" for name, value in emit_cost(root)]
        print("\n".join(out))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
