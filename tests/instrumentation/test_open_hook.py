"""The file audit hook, both of it: the C hook (`_open_hook.c`, when built) and the Python one
(`files._audit`, its fallback), fed the same audit events in this process.

Each test hands the events a program's opens make to the hook, then flushes the recorder and
checks what was recorded, as test_recorder_unit does; the files are real and really hashed.
The C hook is not added to this process's audit hooks: it is called directly, with what
`files` gives it when it installs it. End-to-end runs with the real hook are test_files.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanContext, TraceFlags
from test_recorder_unit import Capture, _digest

from clew.instrumentation import _recorder, _stamps, files
from clew.instrumentation._clew_io import clew_io
from clew.instrumentation._record_spans import Record
from clew.semconv import attributes as attr
from clew.semconv import environment

Hook = Callable[[str, tuple], None]
READ = os.O_RDONLY | os.O_CLOEXEC


@pytest.fixture
def capture(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Capture:
    """A recorder to an in-memory exporter; looking for producer stamps when a test asks for
    it (parametrized indirectly with True)."""
    for name in ("TRACEPARENT", "TRACESTATE", environment.CLEW_RUN_ID):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(environment.CLEW_EXCLUDE, "*.skip")
    return Capture(tmp_path / "home", stamp=getattr(request, "param", False))


@pytest.fixture(params=["c", "python"])
def hook(request: pytest.FixtureRequest, capture: Capture,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Hook]:
    """The hook under test, recording to `capture`'s recorder."""
    files._resolved.clear()
    files._HOOK.recorder = capture.recorder
    if request.param == "python":
        # All of it in Python: Recorder.read too, which otherwise takes the C read.
        monkeypatch.setattr(_recorder, "_read_in_c", None)
        yield files._audit
    else:
        if files._open_hook is None:
            pytest.skip("the C hook was not built")
        files._configure_hook_in_c()
        files._open_hook.attach(capture.recorder, capture.recorder.filter.prefixes_only())
        yield files._open_hook.audit
        files._open_hook.attach(None, None)
    files._HOOK.recorder = None
    files._resolved.clear()


def read_counts(capture: Capture, name: Callable[[str], str] = lambda uri: uri.rsplit("/", 1)[1],
                ) -> dict[str, tuple[str | None, int]]:
    """File name (or `name(uri)`) -> (digest, opens counted) of every read recorded, after a
    flush."""
    capture.recorder.flush()
    found: dict[str, tuple[str | None, int]] = {}
    for span in capture.exporter.get_finished_spans():
        attributes = span.attributes or {}
        if attributes.get(attr.PROVENANCE_IO_OPERATION) != "read":
            continue
        uris = attributes[attr.PROVENANCE_ARTIFACTS_URI]
        counts = attributes.get(attr.PROVENANCE_ARTIFACTS_COUNT) or [1] * len(uris)
        for uri, digest, count in zip(uris, attributes[attr.PROVENANCE_ARTIFACTS_DIGEST], counts):
            found[name(uri)] = (digest or None, count)
    return found


def test_a_read_is_recorded_once_with_its_digest_and_its_opens_counted(
        hook: Hook, capture: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.bin").write_bytes(b"a" * 5000)
    (tmp_path / "é.txt").write_bytes(b"accented")
    monkeypatch.chdir(tmp_path)
    hook("open", (str(tmp_path / "a.bin"), "r", READ))
    hook("open", ("a.bin", "r", READ))  # relative: the same file
    hook("open", (b"a.bin", "r", READ))
    hook("open", (tmp_path / "é.txt", "r", READ))
    assert read_counts(capture) == {"a.bin": (_digest(b"a" * 5000), 3),
                                    "%C3%A9.txt": (_digest(b"accented"), 1)}


def test_a_relative_name_is_resolved_in_the_directory_of_the_time(
        hook: Hook, capture: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "data.txt").write_text(name)
    monkeypatch.chdir(tmp_path / "one")
    hook("open", ("data.txt", "r", READ))
    os.chdir(tmp_path / "two")
    hook("os.chdir", (str(tmp_path / "two"),))
    hook("open", ("data.txt", "r", READ))
    capture.recorder.flush()
    paths = sorted(path for span in capture.exporter.get_finished_spans()
                   for path in (span.attributes or {}).get(attr.PROVENANCE_ARTIFACTS_URI, ()))
    assert [p.rsplit("/", 2)[1:] for p in paths] == [["one", "data.txt"], ["two", "data.txt"]]


def test_names_with_dots_are_recorded_as_their_normal_path(
        hook: Hook, capture: Capture, tmp_path: Path) -> None:
    for directory in (".venv", "..data", "sub"):
        (tmp_path / directory).mkdir()
    for name in (".venv/.hidden.txt", "..data/a.txt", "sub/b.txt"):
        (tmp_path / name).write_text(name)
    base = str(tmp_path)
    for given in (f"{base}/.venv/.hidden.txt", f"{base}/..data/a.txt", f"{base}/sub/./b.txt",
                  f"{base}/sub/../sub/b.txt", f"{base}//sub/b.txt"):
        hook("open", (given, "r", READ))
    counts = read_counts(capture, lambda uri: uri.split(tmp_path.name, 1)[1])
    assert {name: count for name, (_, count) in counts.items()} == {
        "/.venv/.hidden.txt": 1, "/..data/a.txt": 1, "/sub/b.txt": 3}


def test_what_clew_leaves_alone_is_not_recorded(hook: Hook, capture: Capture,
                                                tmp_path: Path) -> None:
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "home").mkdir(exist_ok=True)
    for name in ("__pycache__/m.pyc", "home/own.txt", "data.skip", "kept.txt"):
        (tmp_path / name).write_text(name)
    os.mkfifo(tmp_path / "pipe")
    for name in ("__pycache__/m.pyc", "home/own.txt", "data.skip", "pipe", "kept.txt"):
        hook("open", (str(tmp_path / name), "r", READ))
    hook("open", (7, "r", READ))  # a descriptor
    assert list(read_counts(capture)) == ["kept.txt"]


def test_clew_s_own_io_and_suppressed_opens_are_not_recorded(hook: Hook, capture: Capture,
                                                             tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    with suppress_instrumentation():
        hook("open", (str(tmp_path / "a.txt"), "r", READ))
    clew_io.active = True
    try:
        hook("open", (str(tmp_path / "a.txt"), "r", READ))
    finally:
        clew_io.active = False
    assert read_counts(capture) == {}


def test_a_detached_hook_records_nothing(hook: Hook, capture: Capture, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    files._HOOK.recorder = None
    if files._open_hook is not None:
        files._open_hook.attach(None, None)
    hook("open", (str(tmp_path / "a.txt"), "r", READ))
    assert read_counts(capture) == {}


def test_source_read_by_the_interpreter_s_machinery_is_not_the_program_s(
        hook: Hook, capture: Capture, tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("x = 1\n")
    (tmp_path / "other.py").write_text("y = 2\n")
    # Code whose file name is linecache's, as a traceback's source lookup runs.
    code = compile("hook('open', (path, 'r', flags))", "/usr/lib/python3/linecache.py", "exec")
    exec(code, {"hook": hook, "path": str(tmp_path / "mod.py"), "flags": READ})
    hook("open", (str(tmp_path / "other.py"), "r", READ))
    assert list(read_counts(capture)) == ["other.py"]


def test_a_known_version_takes_its_digest_from_the_cache(hook: Hook, capture: Capture,
                                                         tmp_path: Path) -> None:
    """A file version the digest cache knows is not hashed again: its remembered digest is
    the one recorded (a made-up one here, to tell the two apart)."""
    path = tmp_path / "known.bin"
    path.write_bytes(b"k" * 100)
    fresh = tmp_path / "fresh.bin"
    fresh.write_bytes(b"f" * 100)
    s = path.stat()
    remembered = "blake3:" + "0" * 64
    cache = tmp_path / "home" / environment.CACHE_DIRNAME
    cache.mkdir(parents=True)
    (cache / "digests-v1.txt").write_text(
        f"{s.st_dev} {s.st_ino} {s.st_size} {s.st_mtime_ns} {remembered}\n")
    hook("open", (str(path), "r", READ))
    hook("open", (str(fresh), "r", READ))
    assert read_counts(capture) == {"known.bin": (remembered, 1),
                                    "fresh.bin": (_digest(b"f" * 100), 1)}


def test_a_large_read_is_hashed_by_the_worker(hook: Hook, capture: Capture,
                                              tmp_path: Path) -> None:
    content = os.urandom(3 << 20)
    (tmp_path / "large.bin").write_bytes(content)
    hook("open", (str(tmp_path / "large.bin"), "r", READ))
    capture.recorder.flush()
    span = next(s for s in capture.exporter.get_finished_spans()
                if (s.attributes or {}).get(attr.FILE_PATH) == str(tmp_path / "large.bin"))
    assert span.attributes[attr.PROVENANCE_ARTIFACT_DIGEST] == _digest(content)


def test_opens_for_writing_record_the_write_and_an_update_s_read(
        hook: Hook, capture: Capture, tmp_path: Path) -> None:
    (tmp_path / "log.txt").write_text("before\n")
    hook("open", (str(tmp_path / "log.txt"), "r+", os.O_RDWR))
    with open(tmp_path / "log.txt", "a") as handle:
        handle.write("after\n")
    hook("open", (str(tmp_path / "out.txt"), "w", os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
    (tmp_path / "out.txt").write_text("out")
    capture.settle()
    capture.recorder.flush()
    assert sorted(capture.records()) == [
        ("read", "log.txt", _digest(b"before\n")),
        ("write", "log.txt", _digest(b"before\nafter\n")),
        ("write", "out.txt", _digest(b"out")),
    ]


class _BrokenPath:
    def __fspath__(self) -> str:
        raise ValueError("no path today")


def test_a_failure_is_recorded_and_the_program_goes_on(hook: Hook, capture: Capture) -> None:
    hook("open", (_BrokenPath(), "r", READ))
    assert capture.recorder.errors == ["file hook open: ValueError: no path today"]


def test_other_events_reach_their_handlers(hook: Hook, capture: Capture, tmp_path: Path) -> None:
    (tmp_path / "gone.txt").write_text("gone")
    hook("open", (str(tmp_path / "gone.txt"), "r", READ))
    hook("os.remove", (str(tmp_path / "gone.txt"), -1))
    (tmp_path / "gone.txt").unlink()
    hook("compile", (b"x = 1", "<string>"))  # an event clew does not handle
    (tmp_path / "listed").mkdir()
    for directory in (str(tmp_path / "listed"), str(tmp_path / "home" / "spool"), "/usr/lib/x"):
        hook("os.listdir", (directory,))  # in clew's home and /usr/lib: left alone
    capture.recorder.flush()
    assert sorted(capture.records()) == [("delete", "gone.txt", _digest(b"gone")),
                                         ("list", "listed", None),
                                         ("read", "gone.txt", _digest(b"gone"))]


def test_an_open_event_of_another_shape_is_a_recorded_failure(hook: Hook,
                                                              capture: Capture) -> None:
    hook("open", ("made-up.txt",))  # sys.audit("open", ...) by hand
    assert capture.recorder.errors == [
        "file hook open: ValueError: not enough values to unpack (expected 3, got 1)"]


@pytest.fixture(params=["c", "python"])
def read(request: pytest.FixtureRequest, capture: Capture,
         monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Recorder.read as the library hooks call it: through the C read when that extension
    is built and configured, else all in Python."""
    if request.param == "python":
        monkeypatch.setattr(_recorder, "_read_in_c", None)
    elif files._open_hook is None:
        pytest.skip("the C hook was not built")
    else:
        files._configure_hook_in_c()
        assert _recorder._read_in_c is files._open_hook.read
    return capture.recorder.read


def test_a_library_hook_s_reads_are_recorded_alike_in_c_and_in_python(
        read: Callable[[str], None], capture: Capture, tmp_path: Path) -> None:
    """What a library hook reports (pyarrow's dataset files): each version once, with its
    digest and its opens counted; a large file hashed by the worker; what is not a regular
    file, or not there, not recorded."""
    small, large = tmp_path / "small.parquet", tmp_path / "large.bin"
    small.write_bytes(b"s" * 100)
    content = os.urandom(3 << 20)
    large.write_bytes(content)
    read(str(small))
    read(str(small))
    read(str(tmp_path / "missing.parquet"))
    read(str(tmp_path))
    assert read_counts(capture) == {"small.parquet": (_digest(b"s" * 100), 2)}
    read(str(large))
    capture.recorder.flush()
    assert sorted(capture.records()) == [("read", "large.bin", _digest(content)),
                                         ("read", "small.parquet", _digest(b"s" * 100))]


def test_a_first_read_s_record_is_the_same_made_in_c_or_in_python(
        read: Callable[[str], None], capture: Capture, tmp_path: Path) -> None:
    """The C read makes a first read's `Record` without calling the class: every slot as
    `Record("read", path, key)` and the digest's stores give it, its times now's."""
    path = tmp_path / "small.bin"
    path.write_bytes(b"r" * 100)
    before = time.time_ns()
    read(str(path))
    after = time.time_ns()
    (record,) = capture.recorder._ready
    assert type(record) is Record
    assert before <= record.first_ns == record.last_ns <= after
    info = path.stat()
    assert {name: getattr(record, name) for name in Record.__slots__ if "_ns" not in name} == {
        "operation": "read", "path": str(path),
        "key": (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns), "count": 1,
        "digest": _digest(b"r" * 100), "identity": "content", "source": None, "producer": None,
        "unstamped": record.unstamped,
    }
    assert record.unstamped in (True, False)


def test_a_new_digest_is_put_in_the_cache_alike_in_c_or_in_python(
        read: Callable[[str], None], capture: Capture, tmp_path: Path) -> None:
    """The C read puts a new digest in the digest cache itself, as DigestCache.put does: in
    its newer generation and, key then digest, in the entries to save; when that generation
    is full, put() rotates the generations (the C read hands it to that method)."""
    paths = [tmp_path / f"put-{index}.bin" for index in range(3)]
    for index, path in enumerate(paths):
        path.write_bytes(bytes([index]) * 100)
    cache = capture.recorder._cache
    read(str(paths[0]))
    entries = cache._entries
    assert entries is not None
    entries.size = 2  # two fit in the newer generation: the third rotates it
    read(str(paths[1]))
    read(str(paths[2]))
    keys = [record.key for record in capture.recorder._ready]
    digests = [_digest(bytes([index]) * 100) for index in range(3)]
    assert cache._unsaved == [keys[0], digests[0], keys[1], digests[1], keys[2], digests[2]]
    assert cache._entries is entries
    assert entries.old == {keys[0]: digests[0], keys[1]: digests[1]}
    assert entries.new == {keys[2]: digests[2]}


def test_a_repeated_read_is_counted_and_timed_alike_in_c_or_in_python(
        read: Callable[[str], None], capture: Capture, tmp_path: Path) -> None:
    """A re-open moves its record's count and last time: in C, straight in the record's
    slots with the system clock when the recorder reads time.time_ns; otherwise (a clock of
    its own, a record of another class) through the attributes and the recorder's clock, as
    Python does."""
    path = tmp_path / "again.bin"
    path.write_bytes(b"g" * 100)
    own_clock = capture.recorder._time_ns  # Capture's, moved by hand
    capture.recorder._time_ns = time.time_ns
    read(str(path))
    (record,) = capture.recorder._ready
    first = record.first_ns
    before = time.time_ns()
    read(str(path))
    read(str(path))
    after = time.time_ns()
    assert (record.count, record.first_ns) == (3, first)
    assert before <= record.last_ns <= after
    capture.recorder._time_ns = own_clock  # a clock of its own: asked, not the system's
    read(str(path))
    assert (record.count, record.last_ns) == (4, own_clock())

    class Counted(Record):
        __slots__ = ()

    other = Counted("read", str(path), record.key)
    capture.recorder._reads[record.key] = other
    capture.recorder._time_ns = time.time_ns
    read(str(path))
    assert (record.count, other.count) == (4, 2)
    assert other.first_ns <= other.last_ns


@pytest.fixture(params=[True, False], ids=["settled", "fresh"])
def stamping(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files that count as settled when read (their stamp looked for by the C hook, on the
    descriptor it hashed from), or as fresh (looked for at the flush, as every read of the
    Python hook's), as the test's files really are."""
    if request.param:
        monkeypatch.setattr(_recorder, "STAMP_SETTLED_SECONDS", 0.0)
        monkeypatch.setattr(_recorder, "STAMP_SETTLED_FLUSHES", 0)


PRODUCER = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags.SAMPLED)
PRODUCED = "blake3:" + "b" * 64


def producers(capture: Capture) -> dict[str, tuple[int, str | None]]:
    """File name -> (producer span id, digest) of every read's link to its producer."""
    capture.recorder.flush()
    return {link.attributes[attr.PROVENANCE_ARTIFACT_URI].rsplit("/", 1)[1]:
            (link.context.span_id, link.attributes.get(attr.PROVENANCE_PRODUCER_DIGEST))
            for span in capture.exporter.get_finished_spans() for link in span.links}


def stamp(path: Path) -> None:
    try:
        os.setxattr(path, environment.STAMP_XATTR, _stamps.encode(PRODUCER, PRODUCED).encode())
    except OSError:
        pytest.skip("this filesystem has no user xattrs")


@pytest.mark.parametrize("capture", [True], indirect=True, ids=["stamps"])
def test_producer_stamps_are_found_on_the_files_read(stamping: None, hook: Hook,
                                                     capture: Capture, tmp_path: Path) -> None:
    """A read links to the producer its file's stamp names, whoever looked for it; a file
    without a stamp, or with other xattrs only, links to none. The first read loads the
    digest cache, in Python: the C hook hashes from the second on."""
    names = ("first.bin", "stamped.bin", "plain.bin", "other-xattr.bin")
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    stamp(tmp_path / "stamped.bin")
    os.setxattr(tmp_path / "other-xattr.bin", "user.other", b"1")
    for name in names:
        hook("open", (str(tmp_path / name), "r", READ))
    assert producers(capture) == {"stamped.bin": (0x5678, PRODUCED)}
    assert set(read_counts(capture)) == set(names)


@pytest.mark.parametrize("capture", [True], indirect=True, ids=["stamps"])
def test_a_fresh_file_s_stamp_set_after_the_read_is_found_at_the_flush(
        hook: Hook, capture: Capture, tmp_path: Path) -> None:
    """A writer stamps its file at its flush, after the write: a file read just after it was
    written may get its stamp before the reader's flush, which still finds it."""
    for name in ("first.bin", "written.bin"):
        (tmp_path / name).write_bytes(name.encode())
        hook("open", (str(tmp_path / name), "r", READ))
    stamp(tmp_path / "written.bin")
    assert producers(capture) == {"written.bin": (0x5678, PRODUCED)}
