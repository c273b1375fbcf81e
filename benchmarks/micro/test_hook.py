"""Per-event cost of clew's file hook, and what it is made of: `open(path, "rb").read()` of a
16 KiB file from the page cache, first open (a new record) and re-open (a file already
recorded), in a process of each configuration; then the hot path's pieces, timed alone.

    .venv/bin/python -m pytest benchmarks/micro/test_hook.py

Each configuration runs in a process of its own, because an audit hook cannot be removed and
clew's recorder is one per process: plain `python` (no hook), bare `opentelemetry-instrument`
(exporters none, clew's instrumentors disabled), a no-op Python audit hook, clew's defaults,
clew again on the same CLEW_HOME (a warm digest cache) and clew with a CLEW_INCLUDE glob.
The process waits on a pipe; each pytest-benchmark round asks it for one batch (2,000 first
opens of files it never opened, 2,000 re-opens, or 20,000 audit events clew ignores) and
waits for the answer, so a round is the batch plus one pipe round trip (tens of us against
tens of ms). The files live outside the checkout, under /var/tmp.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FILES = 2000  # opens per round
ROUNDS = 7
SIZE = 16 << 10
AUDIT_EVENTS = 20_000
PYTHON = sys.executable
INSTRUMENT = str(Path(PYTHON).parent / "opentelemetry-instrument")
CONFIGURATIONS = ["plain", "bare opentelemetry-instrument", "no-op audit hook", "clew defaults",
                  "clew, warm digest cache", "clew + CLEW_INCLUDE glob"]


def _open_all(paths: list[str]) -> None:
    for path in paths:
        _read(path)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def serve(root: str, noop_hook: bool) -> None:
    """The measured process: answers each command on stdin with one line on stdout."""
    if noop_hook:
        sys.addaudithook(lambda event, args: None)
    # listed before any round: a listing is an event clew records
    batches = [sorted(str(f) for f in folder.iterdir())
               for folder in sorted(Path(root).glob("batch*"))]
    fresh = iter(batches)
    opened: list[list[str]] = []
    reopened = 0
    for line in sys.stdin:
        command = line.strip()
        if command == "first":
            opened.append(next(fresh))
            _open_all(opened[-1])
        elif command == "again":
            _open_all(opened[reopened % len(opened)])
            reopened += 1
        elif command == "ignored":
            for _ in range(AUDIT_EVENTS):
                sys.audit("clew.benchmark.ignored")
        print("done", flush=True)


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    """Enough batches of distinct files for every first-open round and its warm-up."""
    where = Path(tempfile.mkdtemp(prefix="clew-micro-", dir="/var/tmp"))
    blob = os.urandom(SIZE)
    for batch in range(ROUNDS + 1):
        folder = where / f"batch{batch}"
        folder.mkdir()
        for index in range(FILES):
            (folder / f"f{index:05d}.bin").write_bytes(blob[:-8] + index.to_bytes(8, "little"))
    yield where
    shutil.rmtree(where, ignore_errors=True)


def _environment(configuration: str, root: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLEW_"))}
    env.pop("PYTHONPATH", None)
    command = [PYTHON, __file__, str(root)]
    if configuration == "plain":
        return command, env
    if configuration == "no-op audit hook":
        return [*command, "--noop-hook"], env
    if configuration == "bare opentelemetry-instrument":
        sys.path.append(str(Path(__file__).resolve().parent.parent))
        from run import baseline_environment  # benchmarks/run.py: the bare floor

        return [INSTRUMENT, *command], {**env, **baseline_environment(),
                                        "CLEW_HOME": str(root / "home-bare")}
    home = root / ("home-include" if "INCLUDE" in configuration else "home")
    env["CLEW_HOME"] = str(home)
    if "INCLUDE" in configuration:
        env["CLEW_INCLUDE"] = f"{root}/*"
    return [INSTRUMENT, *command], env


@pytest.fixture(scope="module", params=CONFIGURATIONS)
def process(request: pytest.FixtureRequest, root: Path) -> Iterator[subprocess.Popen]:
    """One measured process per configuration; the warm one follows clew's defaults on the
    same CLEW_HOME, after that process has exited and saved its digests."""
    command, env = _environment(request.param, root)
    child = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    yield child
    child.stdin.close()
    assert child.wait(60) == 0


def _ask(child: subprocess.Popen, command: str) -> None:
    child.stdin.write(command + "\n")
    child.stdin.flush()
    assert child.stdout.readline() == "done\n"


def _label(request: pytest.FixtureRequest, what: str) -> str:
    return f"{what}: {request.node.callspec.params['process']}"


def test_first_open(process: subprocess.Popen, per_call,  # noqa: ANN001
                    request: pytest.FixtureRequest) -> None:
    per_call(_label(request, "first open (a new record)"), lambda: _ask(process, "first"),
             calls=FILES, rounds=ROUNDS)


def test_reopen(process: subprocess.Popen, per_call,  # noqa: ANN001
                request: pytest.FixtureRequest) -> None:
    per_call(_label(request, "re-open (already recorded)"), lambda: _ask(process, "again"),
             calls=FILES, rounds=ROUNDS)


def test_ignored_audit_event(process: subprocess.Popen, per_call,  # noqa: ANN001
                             request: pytest.FixtureRequest) -> None:
    per_call(_label(request, "an audit event clew ignores"), lambda: _ask(process, "ignored"),
             calls=AUDIT_EVENTS, rounds=ROUNDS)


# -- the pieces, in this process --------------------------------------------------------------


PIECES = [
    "OpenTelemetry context look-up (the suppression check)",
    "the path made absolute",
    "path filter, defaults",
    "path filter, one CLEW_INCLUDE glob",
    "os.stat(path)",
    "a read record made",
    "blake3 of 16 KiB of bytes",
    "a small file hashed (open, fstat, read, blake3, fstat, close)",
    "open(path, 'rb').read() without any hook",
    "the file's URI (at flush)",
    "is it a config file: its suffix checked (per read, at flush)",
    "is it a metric file: its name matched (per settled write)",
]


@pytest.fixture(scope="module")
def pieces(root: Path) -> dict[str, Callable[[], object]]:
    """The steps of a first open through clew's file hook, each a call on one 16 KiB file."""
    import blake3
    from opentelemetry import context as otel_context

    from clew.instrumentation import _config_files, _metric_files, _paths
    from clew.semconv import environment
    from clew.semconv.uris import file_uri
    from clew.instrumentation._file_digests import hash_file, stat_key
    from clew.instrumentation._record_spans import Record

    sample = str(root / "batch0" / "f00000.bin")
    key = stat_key(os.stat(sample))
    defaults = _paths.PathFilter(root / "home-pieces")
    os.environ["CLEW_INCLUDE"] = f"{root}/include-me/*"
    try:
        with_include = _paths.PathFilter(root / "home-pieces")
    finally:
        del os.environ["CLEW_INCLUDE"]
    suppress = otel_context._SUPPRESS_INSTRUMENTATION_KEY
    metric_files = _metric_files.MetricFiles(environment.DEFAULT_METRIC_FILES)
    data = _read(sample)
    functions = [
        lambda: otel_context.get_value(suppress),
        lambda: _paths.absolute(sample),
        lambda: defaults.wants(sample),
        lambda: with_include.wants(sample),
        lambda: os.stat(sample),
        lambda: Record("read", sample, key),
        lambda: blake3.blake3(data).hexdigest(),
        lambda: hash_file(sample, key),
        lambda: _read(sample),
        lambda: file_uri(sample),
        lambda: sample.endswith(_config_files.SUFFIXES),
        lambda: metric_files.match(sample),
    ]
    return dict(zip(PIECES, functions, strict=True))


@pytest.mark.parametrize("piece", PIECES)
def test_piece_of_a_first_open(per_call, pieces: dict, piece: str) -> None:  # noqa: ANN001
    per_call(piece, pieces[piece])


RECORDS = 20_000


def _recorder_with_records(root: Path):  # noqa: ANN202
    """A recorder holding RECORDS identified reads of real files (emitting a read looks for a
    producer stamp on the file, which costs more on a path that does not exist), and the
    processor and spool exporter its spans go to."""
    from opentelemetry.sdk.trace import TracerProvider

    from clew.exporter.processor import ProvenanceSpanProcessor
    from clew.exporter.spool import SpoolSpanExporter
    from clew.instrumentation._process_span import ProcessSpan
    from clew.instrumentation._recorder import Recorder
    from clew.instrumentation._record_spans import Record
    from clew.instrumentation._settings import Settings

    provider = TracerProvider()
    exporter = SpoolSpanExporter(Path(tempfile.mkdtemp(dir=root)) / "spool")
    processor = ProvenanceSpanProcessor(exporter, schedule_delay=3600, max_queue_size=1 << 20,
                                        max_export_batch_size=1 << 20)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    settings = Settings(home=root / "home-emit", hashing=True, hash_max_bytes=1 << 32,
                        flush_interval=3600)
    recorder = Recorder(tracer, settings, ProcessSpan(tracer, "fork", None))
    paths = sorted(str(p) for p in root.glob("batch*/f*.bin"))
    for i in range(RECORDS):
        record = Record("read", paths[i % len(paths)],
                        (64768, 1000000 + i, SIZE, 1764170000000000000 + i))
        record.digest = "blake3:" + f"{i:064x}"
        record.identity = "content"
        recorder._ready.append(record)
    return recorder, processor


def test_record_to_batched_span(per_call, root: Path) -> None:  # noqa: ANN001
    held = []

    def setup() -> tuple[tuple, dict]:
        held.append(_recorder_with_records(root))
        return (), {}

    per_call("a record into its batched span (per record)",
             lambda: held[-1][0]._emit_ready(), calls=RECORDS, rounds=3, setup=setup)
    for _recorder, processor in held:
        processor.shutdown()


def test_span_to_spool_line(per_call, root: Path) -> None:  # noqa: ANN001
    held = []

    def setup() -> tuple[tuple, dict]:
        recorder, processor = _recorder_with_records(root)
        recorder._emit_ready()
        held.append(processor)
        return (), {}

    per_call("its span encoded and written to the spool (per record)",
             lambda: held[-1].force_flush(), calls=RECORDS, rounds=3, setup=setup)
    for processor in held:
        processor.shutdown()


if __name__ == "__main__":
    serve(sys.argv[1], "--noop-hook" in sys.argv[2:])
