"""What programs that are not Python did with files, through clew's LD_PRELOAD library.

A child that is not an instrumented Python (cp, tar, a shell pipeline, a compiled tool) is
started with `_preload_shim` (C, `_preload_shim.c`) in LD_PRELOAD and a directory of its own,
one per exec span, in CLEW_PRELOAD_DIR. The library, inherited through fork and exec by every
process the child starts, notes each successful open, rename and unlink into a record file per
process image in that directory. When the child has ended (it was waited for, or at this
process's exit for a child never waited for), `ChildRecords.collect` turns the notes into
records the recording core identifies and emits like the file hook's own, as children of the
exec span, with the pid of the process that did the I/O. While the child runs, a background
thread (`tailing`) reads the notes as they come and hashes the files read meanwhile, so that
little is left to do when it ends.

Reads carry the (device, inode, size, mtime) the library saw on the opened descriptor: the
digest is taken from the file when clew collects, only if it is still that version (else the
record keeps stat identity). Writes are identified by the file as it is when collected: the
child has ended, so it is its final content. A write the library saw to be a whole copy of a
file the child read (cp's copy_file_range of all of it), still that version when collected,
takes the source's digest instead of being hashed again.
"""

from __future__ import annotations

import importlib.machinery
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.util.types import Attributes

from clew.semconv import attributes as attr
from clew.semconv import environment

from ._file_digests import StatKey
from ._record_spans import (
    BATCH_MAX_SIZE,
    SPAN_NAMES,
    FileBatch,
    Record,
    batch_attributes,
    directory_of,
    single_attributes,
)
from ._guard import guard
from ._lifecycle import reset_in_forked_child
from ._recorder import Recorder

if TYPE_CHECKING:
    import mmap

_logger = logging.getLogger(__name__)

_HEADER_BYTES = 40  # a record's fixed part (_preload_shim.c)
READ, WRITE, RENAME, DELETE = (ord(c) for c in "RWND")
_PRELOAD_VARIABLE = "LD_PRELOAD"
_BATCHED = ("read", "write")
# How often a running child's new notes are read: soon after it starts and while it keeps
# noting, seldom once it has gone quiet. A look at a quiet child costs a directory listing and
# a peek per record file (~50 us), and the GIL: ten times a second is ~0.1 % of a core. A
# busy child's notes are read while it runs, on the other core, rather than all once it has
# ended: `cp -r` of 10,000 files runs for ~0.1 s, and left all of its notes for its end when
# the first look came only then.
_TAIL_QUIET_INTERVAL = 0.1
_TAIL_BUSY_INTERVAL = 0.02
# The variables a child started through os.environ (os.system, os.spawn*) inherits.
CARRIED = (_PRELOAD_VARIABLE, environment.CLEW_PRELOAD_DIR)


def _find_library() -> str | None:
    """The built library next to this module (built by setup.py for this interpreter), when
    the reader of its records (`_preload_notes`, built beside it) was built too: imported
    here, as only a process that starts a child or watches native opens needs it."""
    global _read_notes, _stat_keys, _read_versions, _sort_notes
    try:
        from ._preload_notes import read, read_versions, sort_notes, stat_keys
    except ImportError:
        return None
    _read_notes, _stat_keys, _read_versions, _sort_notes = read, stat_keys, read_versions, sort_notes
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_preload_shim{suffix}"
        if candidate.is_file():
            return str(candidate)
    return None


_library: str | None = None
_looked = False
_read_notes: Callable[[mmap.mmap, int, dict], tuple[bytes, list, list, list, int]] | None = None
_stat_keys: Callable[[list[str]], list[StatKey | None]] | None = None
_read_versions: Callable[[list[str], list[StatKey]], list[bytes | None]] | None = None
_sort_notes: Callable[..., None] | None = None


def library() -> str | None:
    """The LD_PRELOAD library's path; None (with one warning) when it was not built."""
    global _library, _looked
    if not _looked:
        _looked = True
        _library = _find_library()
        if _library is None:
            _logger.warning(
                "clew: the LD_PRELOAD library was not built with this install (no C compiler?): "
                "programs that are not Python are recorded as opaque execs, and native code's "
                "opens inside Python are not recorded"
            )
    return _library


class ChildRecord(Record):
    """A record of what a process started by this one did: under its exec span, with its pid."""

    __slots__ = ("pid", "parent", "copy_of")

    def __init__(self, operation: str, path: str, key: StatKey | None, pid: int,
                 parent: Context) -> None:
        Record.__init__(self, operation, path, key)  # not super(): 20,000 of these for cp -r
        self.pid = pid
        self.parent = parent
        # The version of the file this one is a whole copy of: its content, so its digest.
        self.copy_of: StatKey | None = None

    def batch_key(self) -> Hashable | None:
        # Writes of small files are batched too, unlike the file hook's: `cp -r` of a tree
        # writes as many files as it reads, and a span each costs clew more than the copy
        # (docs/architecture.md). A batch carries no producer stamp on its files.
        key = self.key  # not `self.size`: called once per record at every flush
        if self.operation in _BATCHED and (key[2] if key is not None else 0) < BATCH_MAX_SIZE:
            return self.pid, self.operation, directory_of(self.path)
        return None

    @staticmethod
    def batch_span(records: list[Record], pid: int) -> tuple[str, Attributes]:
        first: ChildRecord = records[0]  # type: ignore[assignment]
        attributes = dict(batch_attributes(directory_of(first.path), records, first.pid))
        attributes[attr.PROVENANCE_IO_OPERATION] = first.operation
        return SPAN_NAMES[first.operation], attributes

    def span_attributes(self, pid: int) -> Attributes:
        return single_attributes(self, self.pid)


class ChildBatch(FileBatch):
    """Small files of one directory that one process image of a child read, or wrote: one
    batched span under its exec span, with its pid (`FileBatch`: no object per file)."""

    __slots__ = ("pid", "parent", "at", "hashed_to")

    def __init__(self, operation: str, directory: str, pid: int, parent: Context) -> None:
        FileBatch.__init__(self, operation, directory)
        self.pid, self.parent = pid, parent
        self.at: dict[str, int] = {}  # a file read's index, by path
        self.hashed_to = 0  # files before it were handed to the hasher

    def part(self, start: int, end: int) -> ChildBatch:
        part: ChildBatch = FileBatch.part(self, start, end)  # type: ignore[assignment]
        part.pid, part.parent, part.at, part.hashed_to = self.pid, self.parent, {}, 0
        return part

    def file_record(self, index: int) -> Record:
        record = ChildRecord(self.operation, self.paths[index], self.keys[index], self.pid,
                             self.parent)
        record.digest, record.count = self.digests[index], self.counts[index]
        if self.identities:
            record.identity = self.identities[index]
        record.first_ns, record.last_ns = self.first_ns, self.last_ns
        return record

    def span_attributes(self, pid: int) -> Attributes:
        return FileBatch.span_attributes(self, self.pid)


class _Image:
    """The records of one process image (one program between exec and exit).

    Reads and writes of small files, nearly every note (20,000 for `cp -r` of 10,000 files),
    go into a batch per directory (`ChildBatch`), not a record each; others get a record each.
    """

    def __init__(self, pid: int, parent: Context) -> None:
        self.pid, self.parent = pid, parent
        self.read_to = 0  # how far its record file was read
        self.read_batches: dict[str, ChildBatch] = {}  # by directory
        self.reads: dict[tuple[str, StatKey], ChildRecord] = {}  # large, or a path's 2nd version
        self.unhashed: list[ChildRecord] = []  # new reads of `reads`, while the child runs
        self.writes: dict[str, int] = {}  # open for writing, content not yet known: count
        self.written_ns = [0, 0]  # when its first and last writes were noted
        self.done: list[ChildRecord] = []

    def record(self, operation: str, path: str, key: StatKey | None) -> ChildRecord:
        return ChildRecord(operation, path, key, self.pid, self.parent)

    def note(self, operation: int, key: StatKey | None, path: str, second: str | None) -> None:
        if operation == READ:
            if key[2] < BATCH_MAX_SIZE:  # type: ignore[index] - a read's key is never None
                directory = path.rpartition("/")[0] or "/"  # directory_of, in line
                batch = self.read_batches.get(directory) or self._new_read_batch(directory)
                index = batch.at.get(path)
                if index is None:
                    batch.at[path] = len(batch.paths)
                    batch.paths.append(path)
                    batch.keys.append(key)
                    batch.digests.append(None)
                    batch.counts.append(1)
                    return
                if batch.keys[index] == key:
                    batch.counts[index] += 1
                    return
            # A large file, or another version of a file read (a batch holds a path once).
            version = path, key
            record = self.reads.get(version)
            if record is None:
                self.reads[version] = record = self.record("read", path, key)
                self.unhashed.append(record)
            else:
                record.count += 1
        elif operation == WRITE:
            count = self.writes.get(path)
            self.writes[path] = 1 if count is None else count + 1
        elif operation == RENAME:
            count = self.writes.pop(second, None) if second else None
            if count is not None:
                # A temporary file written and renamed into place (rsync, atomic saves): the
                # content is recorded once, at its final name.
                self.done.append(self.written(path, key, count))
            elif second:
                record = self.record("rename", path, key)
                record.source = second
                self.done.append(record)
            else:  # moved in from a place clew does not record
                self.done.append(self.record("write", path, key))
        elif operation == DELETE:
            count = self.writes.pop(path, None)
            if count is not None:  # written, then removed: its last content, by stat
                self.done.append(self.written(path, key, count))
            self.done.append(self.record("delete", path, key))

    def notes(self, operations: bytes, keys: list, paths: list, seconds: list,
              wanted: Callable[[str], bool], *, in_c: bool = True) -> None:
        """`note` each note `wanted` accepts (a second path it does not accept as None); the
        small reads and the writes sorted in C where it was built (`in_c`)."""
        if in_c and _sort_notes is not None:
            _sort_notes(operations, keys, paths, seconds, wanted, BATCH_MAX_SIZE,
                        self.read_batches, self._new_read_batch, self.writes, self.note)
            return
        note_each(self, operations, keys, paths, seconds, wanted)

    def _new_read_batch(self, directory: str) -> ChildBatch:
        batch = self.read_batches[directory] = ChildBatch("read", directory, self.pid,
                                                          self.parent)
        return batch

    def written(self, path: str, key: StatKey | None, count: int) -> ChildRecord:
        record = self.record("write", path, key)
        record.count = count
        return record

    def noted(self, now: int) -> None:
        """The notes read at `now`: the times of the batches they added to."""
        for batch in self.read_batches.values():
            if batch.hashed_to < len(batch.paths) and batch.last_ns < now:
                batch.last_ns = now
        if self.writes:
            self.written_ns = [self.written_ns[0] or now, now]

    def unhashed_reads(self) -> tuple[list[tuple[str, StatKey]], list[tuple[ChildBatch, int, int]],
                                      list[ChildRecord]]:
        """The versions read since the last call, in order: the batches' new files (batch,
        from, to), then the records'."""
        versions: list[tuple[str, StatKey]] = []
        parts = []
        for batch in self.read_batches.values():
            start, end = batch.hashed_to, len(batch.paths)
            if start < end:
                versions += zip(batch.paths[start:end], batch.keys[start:end])  # type: ignore[arg-type]
                parts.append((batch, start, end))
                batch.hashed_to = end
        records, self.unhashed = self.unhashed, []
        versions += [(record.path, record.key) for record in records]  # type: ignore[misc]
        return versions, parts, records

    def records(self, copies: dict[StatKey, StatKey]) -> list[Record]:
        """The image's records; `copies` maps each whole copy's key to its source's."""
        paths = list(self.writes)
        keys = _stat_keys(paths)  # type: ignore[misc]
        first_ns, last_ns = self.written_ns
        write_batches: dict[str, ChildBatch] = {}
        large: list[ChildRecord] = []
        counts = self.writes
        for path, key in zip(paths, keys):
            # Only while it is the very version the copy left (key equal): else it changed.
            copy_of = copies.get(key) if key else None
            if key is not None and key[2] >= BATCH_MAX_SIZE:
                record = self.written(path, key, counts[path])
                record.copy_of = copy_of
                large.append(record)
                continue
            directory = path.rpartition("/")[0] or "/"
            batch = write_batches.get(directory)
            if batch is None:
                batch = write_batches[directory] = ChildBatch(
                    "write", directory, self.pid, self.parent
                )
                batch.copies = []
                if first_ns:
                    batch.first_ns, batch.last_ns = first_ns, last_ns
            batch.paths.append(path)
            batch.keys.append(key)
            batch.digests.append(None)
            batch.counts.append(counts[path])
            batch.copies.append(copy_of)  # type: ignore[union-attr]
        return [
            *(part for batch in self.read_batches.values() for part in batch.split()),
            *self.reads.values(), *self.done, *large,
            *(part for batch in write_batches.values() for part in batch.split()),
        ]


def parse(data: mmap.mmap, image, wanted,  # noqa: ANN001 - an _Image or like; PathFilter.wants
          copies: dict[StatKey, StatKey]) -> None:
    """Hand the records of `data` from where the image's last read stopped (`read_to`) to its
    `note` (operation, stat key, path, second path), those `wanted` accepts; whole copies go
    into `copies` (the copy's key -> its source's)."""
    # Read in C (_preload_notes.c): 20,000 notes for `cp -r` of 10,000 files.
    operations, keys, paths, seconds, image.read_to = _read_notes(  # type: ignore[misc]
        data, image.read_to, copies
    )
    notes = getattr(image, "notes", None)
    if notes is not None:
        notes(operations, keys, paths, seconds, wanted)
    else:
        note_each(image, operations, keys, paths, seconds, wanted)


def note_each(image, operations: bytes, keys: list, paths: list, seconds: list,  # noqa: ANN001
              wanted: Callable[[str], bool]) -> None:
    """Hand `image.note` each note `wanted` accepts (a second path it does not, as None)."""
    note = image.note
    for operation, key, path, second in zip(operations, keys, paths, seconds):
        if wanted(path):
            note(operation, key, path, second if second is None or wanted(second) else None)


def read_new(path: Path, image, wanted,  # noqa: ANN001 - as parse's
             copies: dict[StatKey, StatKey]) -> bool:
    """`parse` what the record file `path` holds beyond `image.read_to`; False when it holds
    nothing new."""
    with open(path, "rb") as handle:
        fd = handle.fileno()
        # The first touch of a page of the mapping the library has not written costs ~2 ms
        # (the kernel maps the file's holes around it): a file with no new record, as at
        # most flushes and at the exit of a process whose native code opened nothing, is
        # only peeked at (its next record's operation byte, written last, still 0).
        peek = os.pread(fd, _HEADER_BYTES, image.read_to)
        if len(peek) == _HEADER_BYTES and peek[4] == 0:
            return False
        import mmap  # here: only a process with new notes needs it (~0.2 ms of start-up)

        # Mapped, not read: the file is sparse and mostly its unused zero tail.
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as data:
            parse(data, image, wanted, copies)
    return True


def _image_order(name: str) -> tuple[int, int]:
    _, created, chunk = name[: -len(".rec")].split("-")
    return int(created), int(chunk)


class ChildRecords:
    """The record directory of one exec span, and its collection into records."""

    def __init__(self, home: Path, span_id: int, parent: Context) -> None:
        self.directory = home / environment.PRELOAD_DIRNAME / f"{span_id:016x}"
        self.parent = parent
        self._images: dict[str, _Image] = {}  # by record file name
        self._copies: dict[StatKey, StatKey] = {}  # across images: a forked child may close one
        self._reading = threading.Lock()  # the tailing thread's reads, and the final one
        self._collected = False

    def prepare(self, env: dict[str, str], shim: str) -> None:
        """Make the directory and have `env` load the library into the child."""
        self.directory.mkdir(parents=True, exist_ok=True)
        inherited = env.get(_PRELOAD_VARIABLE, "")
        # The loader takes the list split by spaces or colons; clew's first, so its
        # wrappers see the program's calls before another preloaded library's.
        others = [p for p in inherited.replace(":", " ").split() if p != shim]
        env[_PRELOAD_VARIABLE] = " ".join([shim, *others])
        env[environment.CLEW_PRELOAD_DIR] = str(self.directory)

    def _read(self, recorder: Recorder, *, final: bool) -> bool:
        """Note what the record files hold beyond what was read before; False when they
        held nothing new."""
        try:
            files = list(self.directory.glob("*.rec"))
        except OSError:
            return False
        found = False
        for path in files:
            image = self._images.get(path.name)
            if image is None:
                pid = int(path.name.split("-", 1)[0])
                image = self._images[path.name] = _Image(pid, self.parent)
            try:
                if read_new(path, image, recorder.filter.wants, self._copies):
                    image.noted(time.time_ns())
                    found = True
            except (OSError, ValueError) as error:  # ValueError: an empty file cannot be mapped
                if final:  # while the child runs, the library may be making the file
                    recorder.failed("reading a child's records", error)
        return found

    def _hash_reads(self, recorder: Recorder, *, large: bool) -> None:
        """Hash the files read since the last time, as versions the child saw (in batches:
        `Recorder.hash_ahead`); large ones too if `large`, else they are left to the worker."""
        for image in self._images.values():
            versions, parts, records = image.unhashed_reads()
            if not versions:
                continue
            digests = recorder.hash_ahead(versions, _read_versions, large=large)  # type: ignore[arg-type]
            at = 0
            for batch, start, end in parts:
                batch.digests[start:end] = digests[at : at + end - start]
                at += end - start
            for record, digest in zip(records, digests[at:]):
                record.digest = digest

    def read_running(self, recorder: Recorder) -> bool:
        """While the child runs: note its new records, and hash the files it read meanwhile
        (while they are in the page cache, and while clew would otherwise wait). False when
        there was nothing new."""
        if not self._reading.acquire(blocking=False):
            return False  # being collected
        try:
            if self._collected:
                return False
            found = self._read(recorder, final=False)
            self._hash_reads(recorder, large=True)
            return found
        finally:
            self._reading.release()

    def collect(self, recorder: Recorder, child_pid: int | None) -> bool:
        """Hand the records to `recorder` and remove the directory. True when `child_pid`
        loaded the library (it was not statically linked, nor set-uid)."""
        with self._reading:
            self._collected = True
            self._read(recorder, final=True)
            # The small reads the tail had not hashed yet, here rather than on the recorder's
            # worker: a batch read in C without the GIL costs the program less than a file at
            # a time in Python, with the GIL handed back and forth (~3 us a small file, not
            # ~5-7). A large file is left to the worker: the program is waiting on this thread.
            self._hash_reads(recorder, large=False)
        # Files are named <pid>-<ns>-<n>.rec: by creation time, then chunk, approximates the
        # order in which the processes ran.
        names = sorted(self._images, key=_image_order)
        pids = {self._images[name].pid for name in names}
        # os.system's child has no known pid: any process of it that loaded the library
        loaded = child_pid in pids if child_pid is not None else bool(names)
        recorder.recorded_all(
            [record for name in names for record in self._images[name].records(self._copies)]
        )
        shutil.rmtree(self.directory, ignore_errors=True)
        return loaded


class _Tailing:
    """One background thread that reads the records of every child running with the library,
    while it runs; it stops when none is left, and starts again with the next one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[ChildRecords, Recorder] = {}
        self._thread: threading.Thread | None = None

    def watch(self, children: ChildRecords, recorder: Recorder) -> None:
        with self._lock:
            self._running[children] = recorder
            if self._thread is None:
                self._thread = threading.Thread(target=self._tail, name="clew-children",
                                                daemon=True)
                self._thread.start()

    def forget(self, children: ChildRecords) -> None:
        with self._lock:
            self._running.pop(children, None)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._running.clear()
        self._thread = None

    def _tail(self) -> None:
        with suppress_instrumentation():  # reading the notes is clew's own I/O
            pause = _TAIL_BUSY_INTERVAL  # a child has just started
            while True:
                time.sleep(pause)
                with self._lock:
                    running = list(self._running.items())
                    if not running:
                        self._thread = None
                        return
                busy = False
                for children, recorder in running:
                    with guard("reading a running child's records", recorder.failed):
                        busy = children.read_running(recorder) or busy
                pause = _TAIL_BUSY_INTERVAL if busy else _TAIL_QUIET_INTERVAL


tailing = _Tailing()
reset_in_forked_child(tailing.after_fork_in_child)
