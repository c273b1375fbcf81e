"""The recorder's state machine, in this process: what a sequence of hook calls and flushes
becomes as spans.

The recorder is built as the lifecycle module builds it, but with an in-memory span exporter,
a clock the test moves, and no worker thread: each `tick` is one turn of the worker after a
flush interval. The files are real and really hashed. What only a real process shows (the
audit hook, exit, fork, signals) is tested end to end in the other capture tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clew.instrumentation._process_span import ProcessSpan
from clew.instrumentation import _record_spans, _recorder
from clew.instrumentation._recorder import Recorder
from clew.instrumentation._settings import Settings
from clew.semconv import attributes as attr
from clew.semconv import environment

INTERVAL = 1.0


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.wall_ns = 1_760_000_000_000_000_000
        self.seconds = 100.0

    def time_ns(self) -> int:
        return self.wall_ns

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.wall_ns += int(seconds * 1e9)


class Capture:
    """A recorder wired to an in-memory exporter, and what it exported."""

    def __init__(self, home: Path, *, stamp: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        tracer = provider.get_tracer("test")
        settings = Settings(
            home=home, hashing=True, hash_max_bytes=1 << 30, flush_interval=INTERVAL, stamp=stamp
        )
        self.clock = FakeClock()
        self.recorder = Recorder(
            tracer, settings, ProcessSpan(tracer, "fork", None), clock=self.clock, background=False
        )

    def tick(self) -> None:
        """One flush interval passes, and the worker takes its turn."""
        self.clock.advance(INTERVAL)
        while self.recorder.step():
            pass

    def settle(self) -> None:
        """Two flush intervals pass: time for a finished write's content to settle."""
        self.tick()
        self.tick()

    def write(self, path: Path, content: bytes) -> None:
        """The program opens `path` for writing, truncating it, and writes `content`."""
        self.recorder.opened_for_write(str(path), keeps_content=False)
        path.write_bytes(content)

    def records(self) -> list[tuple[str, str, str | None]]:
        """(operation, file name, digest) of every record exported so far, batched or not."""
        found = []
        for span in self.exporter.get_finished_spans():
            found.extend(_records_of(span))
        return found


def _records_of(span: ReadableSpan) -> list[tuple[str, str, str | None]]:
    attributes = span.attributes or {}
    operation = attributes.get(attr.PROVENANCE_IO_OPERATION)
    if operation is None:
        return []  # the process span
    if attr.PROVENANCE_ARTIFACTS_URI in attributes:
        uris = attributes[attr.PROVENANCE_ARTIFACTS_URI]
        digests = attributes[attr.PROVENANCE_ARTIFACTS_DIGEST]
        return [(operation, uri.rsplit("/", 1)[1], digest or None)
                for uri, digest in zip(uris, digests)]
    path = attributes[attr.FILE_PATH]
    return [(operation, os.path.basename(path), attributes.get(attr.PROVENANCE_ARTIFACT_DIGEST))]


def _digest(content: bytes) -> str:
    return "blake3:" + blake3.blake3(content).hexdigest()


@pytest.fixture
def capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Capture:
    # The process span, once started, puts its context in os.environ for the children a
    # program starts: put this process's environment back after the test.
    for name in ("TRACEPARENT", "TRACESTATE", environment.CLEW_RUN_ID):
        monkeypatch.delenv(name, raising=False)
    return Capture(tmp_path / "home")


def test_a_write_is_recorded_once_its_content_settles(capture: Capture, tmp_path: Path) -> None:
    """A file being written is recorded when it has been unchanged over a flush interval,
    with the digest of that content, not of what it held while it was written."""
    out = tmp_path / "model.bin"
    capture.write(out, b"half")
    capture.tick()
    assert capture.records() == []
    with open(out, "ab") as handle:
        handle.write(b" and the rest")
    capture.tick()  # changed since the last flush: not settled
    assert capture.records() == []
    capture.tick()
    assert capture.records() == [("write", "model.bin", _digest(b"half and the rest"))]
    capture.tick()
    assert len(capture.records()) == 1  # unchanged: not recorded again


def test_a_settled_write_changed_later_is_recorded_again(capture: Capture, tmp_path: Path) -> None:
    out = tmp_path / "log.txt"
    capture.write(out, b"one")
    capture.settle()
    capture.recorder.opened_for_write(str(out), keeps_content=True)
    with open(out, "ab") as handle:
        handle.write(b" two")
    capture.settle()
    assert capture.records() == [
        ("write", "log.txt", _digest(b"one")),
        ("write", "log.txt", _digest(b"one two")),
    ]


def test_a_write_still_changing_at_exit_is_recorded_as_it_ends(capture: Capture,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "last.bin"
    capture.write(out, b"final")
    capture.recorder.flush()
    assert capture.records() == [("write", "last.bin", _digest(b"final"))]


def test_a_file_written_and_renamed_into_place_is_one_write_at_its_final_name(
    capture: Capture, tmp_path: Path
) -> None:
    """The atomic-save pattern: the temporary name never appears."""
    temporary, final = tmp_path / "ckpt.tmp", tmp_path / "ckpt.pt"
    capture.write(temporary, b"weights")
    capture.recorder.renamed(str(temporary), str(final))
    os.rename(temporary, final)
    capture.settle()
    assert capture.records() == [("write", "ckpt.pt", _digest(b"weights"))]


def test_a_rename_of_a_file_written_elsewhere_is_a_rename(capture: Capture,
                                                         tmp_path: Path) -> None:
    source, destination = tmp_path / "a.csv", tmp_path / "b.csv"
    source.write_bytes(b"x,y\n")
    capture.recorder.renamed(str(source), str(destination))
    os.rename(source, destination)
    capture.settle()
    [span] = [s for s in capture.exporter.get_finished_spans()
              if (s.attributes or {}).get(attr.PROVENANCE_IO_OPERATION) == "rename"]
    assert span.attributes[attr.FILE_PATH] == str(destination)
    assert span.attributes[attr.PROVENANCE_SOURCE_URI].endswith("/a.csv")
    assert span.attributes[attr.PROVENANCE_ARTIFACT_DIGEST] == _digest(b"x,y\n")


def test_files_written_in_a_directory_renamed_into_place_follow_it(capture: Capture,
                                                                   tmp_path: Path) -> None:
    building, built = tmp_path / "data.incomplete", tmp_path / "data"
    building.mkdir()
    capture.write(building / "part-0", b"rows")
    capture.recorder.renamed(str(building), str(built))
    os.rename(building, built)
    capture.settle()
    assert capture.records() == [("write", "part-0", _digest(b"rows"))]
    [span] = capture.exporter.get_finished_spans()
    assert span.attributes[attr.FILE_PATH] == str(built / "part-0")


def test_a_file_deleted_before_it_settled_keeps_the_digest_of_what_it_held(
    capture: Capture, tmp_path: Path
) -> None:
    """Written and removed between two flushes: the content is hashed at the delete, the
    last moment it can be read, and both operations are recorded with it."""
    out = tmp_path / "scratch.bin"
    capture.write(out, b"short-lived")
    capture.recorder.deleted(str(out))
    out.unlink()
    capture.tick()
    assert sorted(capture.records()) == [
        ("delete", "scratch.bin", _digest(b"short-lived")),
        ("write", "scratch.bin", _digest(b"short-lived")),
    ]


def test_a_read_after_a_write_has_the_digest_the_write_recorded(capture: Capture,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "features.parquet"
    capture.write(path, b"columns")
    capture.settle()
    capture.recorder.read(str(path))
    capture.tick()
    assert capture.records() == [
        ("write", "features.parquet", _digest(b"columns")),
        ("read", "features.parquet", _digest(b"columns")),
    ]


def test_a_large_read_overwritten_before_it_was_hashed_keeps_the_content_read(
    capture: Capture, tmp_path: Path
) -> None:
    """A large file's read is hashed by the worker, later; if the program overwrites the
    file first, the recorder hashes the old content just before it goes."""
    path = tmp_path / "shard.bin"
    before = b"a" * (2 << 20)
    path.write_bytes(before)
    capture.recorder.read(str(path))
    capture.write(path, b"b" * 10)
    capture.settle()
    assert capture.records() == [
        ("read", "shard.bin", _digest(before)),
        ("write", "shard.bin", _digest(b"b" * 10)),
    ]


def test_repeated_reads_of_one_version_are_one_record(capture: Capture, tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"tokens")
    for _ in range(5):
        capture.recorder.read(str(path))
    capture.tick()
    [span] = capture.exporter.get_finished_spans()
    assert span.attributes[attr.PROVENANCE_IO_COUNT] == 5
    assert capture.records() == [("read", "vocab.txt", _digest(b"tokens"))]


def test_small_reads_of_one_directory_share_spans_of_at_most_a_batch(
    capture: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_record_spans, "BATCH_MAX_RECORDS", 4)  # the mechanism, on a few files
    folder = tmp_path / "images"
    folder.mkdir()
    count = 4 + 3
    for index in range(count):
        path = folder / f"{index:04d}.jpg"
        path.write_bytes(index.to_bytes(4, "little"))
        capture.recorder.read(str(path))
    capture.tick()
    spans = capture.exporter.get_finished_spans()
    assert [len(_records_of(span)) for span in spans] == [4, 3]
    records = capture.records()
    assert records[5] == ("read", "0005.jpg", _digest((5).to_bytes(4, "little")))
    assert len({name for _, name, _ in records}) == count


def test_a_fault_sorting_a_flush_into_spans_costs_no_record(
    capture: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault cannot be produced from outside (plan_flush takes any record the hooks make),
    # so it is injected: the flush's records, already taken from the queue, must still reach
    # spans (one each) with their digests, and the fault must be reported, not raised.
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(_record_spans, "plan_flush", broken)
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        path = folder / f"{index}.jpg"
        path.write_bytes(bytes([index]))
        capture.recorder.read(str(path))
    capture.tick()
    assert sorted(capture.records()) == [
        ("read", f"{index}.jpg", _digest(bytes([index]))) for index in range(3)]
    assert any("sorting records into spans" in error for error in capture.recorder.errors)


def test_many_finished_records_are_emitted_before_the_flush_interval(
    capture: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records waiting past a bound are emitted at the worker's next turn, not held (with
    their spans) until the flush."""
    monkeypatch.setattr(_recorder, "_SPILL_RECORDS", 8)  # the mechanism, on a few files
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(8 - 1):
        path = folder / f"{index}"
        path.write_bytes(b"")
        capture.recorder.read(str(path))
    capture.recorder.step()
    assert capture.records() == []  # below the bound, no interval passed: held
    last = folder / "last"
    last.write_bytes(b"")
    capture.recorder.read(str(last))
    capture.recorder.step()
    assert len(capture.records()) == 8


def test_a_childs_reads_hashed_ahead_have_the_digests_of_the_versions_it_read(
    capture: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-Python child's reads, hashed while it runs: small files a batch at a time, read by
    the C reader, a larger one by itself (or left to the worker when asked); a file changed
    since the child read it has no digest; digests taken once are remembered."""
    reader = pytest.importorskip("clew.instrumentation._preload_notes", reason="not built")
    monkeypatch.setattr(_recorder, "_AHEAD_BATCH_BYTES", 64)  # the batching, on small files
    contents = {"a": b"a" * 30, "b": b"b" * 30, "c": b"c" * 30, "large": b"L" * 100,
                "changed": b"before"}
    paths = {name: tmp_path / name for name in contents}
    for name, content in contents.items():
        paths[name].write_bytes(content)
    names = [str(paths[name]) for name in contents]
    keys = reader.stat_keys(names)
    paths["changed"].write_bytes(b"after, longer")
    batches: list[int] = []

    def read_versions(names: list[str], keys: list) -> list[bytes | None]:
        batches.append(len(names))
        return reader.read_versions(names, keys)

    digests = capture.recorder.hash_ahead(names, keys, read_versions)
    assert digests == [_digest(contents[name]) for name in ("a", "b", "c", "large")] + [None]
    assert batches == [3, 1]  # a, b and c fill one batch; "changed" is tried in the next
    assert capture.recorder.hash_ahead(names[:4], keys[:4], read_versions) == digests[:4]
    assert batches == [3, 1]  # remembered: nothing read again
    other = tmp_path / "other large"
    other.write_bytes(b"O" * 100)
    (key,) = reader.stat_keys([str(other)])
    assert capture.recorder.hash_ahead([str(other)], [key], read_versions, large=False) == [None]
    assert capture.recorder.hash_ahead([str(other)], [key], read_versions) == [_digest(b"O" * 100)]
