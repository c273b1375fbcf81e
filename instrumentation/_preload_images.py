"""The records of one process image of a non-Python child, from its notes (`_preload.py`
reads them; `_preload_notes.c` decodes them).

Reads and writes of small files are nearly every note (20,000 for `cp -r` of 10,000 files):
they go into a batch per directory (`ChildBatch`, parallel lists from the notes to the batched
span, sorted in C by `_preload_sort.c` where it was built), not a record object each, which
cost more than the rest of the recording in Python (docs/architecture.md). Every other note
(a rename, a delete, a large read) is a `ChildRecord`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from opentelemetry.context import Context
from opentelemetry.util.types import Attributes

from clew.semconv import attributes as attr

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

READ, WRITE, RENAME, DELETE = (ord(c) for c in "RWND")
_BATCHED = ("read", "write")
# _preload_notes.sort_notes and .stat_keys (C), or like them
SortNotes = Callable[..., None]
StatKeys = Callable[[list[str]], list["StatKey | None"]]
BatchWrites = Callable[..., list[int]]  # _preload_notes.batch_writes (C)


class ChildRecord(Record):
    """A record of what a process started by this one did: under its exec span, with its pid."""

    __slots__ = ("pid", "parent", "copy_of")

    def __init__(self, operation: str, path: str, key: StatKey | None, pid: int,
                 parent: Context) -> None:
        Record.__init__(self, operation, path, key)  # not super(): one per file at times
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

    def new_record(self, path: str, key: StatKey | None) -> Record:
        return ChildRecord(self.operation, path, key, self.pid, self.parent)

    def span_attributes(self, pid: int) -> Attributes:
        return FileBatch.span_attributes(self, self.pid)


class ProcessImage:
    """The records of one process image (one program between exec and exit).

    Reads and writes of small files, nearly every note (20,000 for `cp -r` of 10,000 files),
    go into a batch per directory (`ChildBatch`), not a record each; others get a record each.
    """

    def __init__(self, pid: int, parent: Context, excluded: tuple[str, ...] | None = None) -> None:
        self.pid, self.parent = pid, parent
        # PathFilter.prefixes_only(): what `wanted` excludes, when prefixes alone decide (C
        # then checks them itself, not calling `wanted` for each of 20,000 notes).
        self.excluded = excluded
        self.read_to = 0  # how far its record file was read
        self.read_batches: dict[str, ChildBatch] = {}  # by directory
        self.reads: dict[tuple[str, StatKey], ChildRecord] = {}  # large, or a path's 2nd version
        self.unhashed: list[ChildRecord] = []  # new reads of `reads`, while the child runs
        self.writes: dict[str, int] = {}  # open for writing, content not yet known: count
        self.write_batches: dict[str, ChildBatch] = {}  # by directory, once the child ended
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
              wanted: Callable[[str], bool], sort: SortNotes | None) -> None:
        """`note` each note `wanted` accepts (a second path it does not accept as None); the
        small reads and the writes sorted by `sort` (C's) where it was built."""
        if sort is not None:
            sort(operations, keys, paths, seconds, self.excluded, wanted, BATCH_MAX_SIZE,
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

    def unhashed_reads(self) -> tuple[list[str], list[StatKey], list[tuple[ChildBatch, int, int]],
                                      list[ChildRecord]]:
        """The versions read since the last call (paths, keys), in order: the batches' new
        files (batch, from, to), then the records'."""
        paths: list[str] = []
        keys: list[StatKey] = []
        parts = []
        for batch in self.read_batches.values():
            start, end = batch.hashed_to, len(batch.paths)
            if start < end:
                paths += batch.paths[start:end]
                keys += batch.keys[start:end]  # type: ignore[arg-type]
                parts.append((batch, start, end))
                batch.hashed_to = end
        records, self.unhashed = self.unhashed, []
        paths += [record.path for record in records]
        keys += [record.key for record in records]  # type: ignore[misc]
        return paths, keys, parts, records

    def records(self, copies: dict[StatKey, StatKey], stat_keys: StatKeys,
                batch_writes: BatchWrites | None) -> list[Record]:
        """The image's records; `copies` maps each whole copy's key to its source's. The files
        written are identified by `stat_keys` as they are now (the child has ended), and put
        into batches by `batch_writes` (C's) where it was built."""
        paths = list(self.writes)
        keys = stat_keys(paths)
        if batch_writes is not None:
            large = batch_writes(paths, keys, self.writes, copies, BATCH_MAX_SIZE,
                                 self.write_batches, self._new_write_batch)
        else:
            large = self._batch_writes(paths, keys, copies)
        singles = []
        for index in large:
            record = self.written(paths[index], keys[index], self.writes[paths[index]])
            record.copy_of = copies.get(keys[index])  # type: ignore[arg-type]
            singles.append(record)
        return [
            *(part for batch in self.read_batches.values() for part in batch.split()),
            *self.reads.values(), *self.done, *singles,
            *(part for batch in self.write_batches.values() for part in batch.split()),
        ]

    def _batch_writes(self, paths: list[str], keys: list[StatKey | None],
                      copies: dict[StatKey, StatKey]) -> list[int]:
        """`batch_writes` (_preload_sort.c) in Python: each file written into its directory's
        batch, the indexes of the large ones (a record each) returned."""
        large = []
        for index, (path, key) in enumerate(zip(paths, keys)):
            if key is not None and key[2] >= BATCH_MAX_SIZE:
                large.append(index)
                continue
            directory = path.rpartition("/")[0] or "/"
            batch = self.write_batches.get(directory) or self._new_write_batch(directory)
            batch.paths.append(path)
            batch.keys.append(key)
            batch.digests.append(None)
            batch.counts.append(self.writes[path])
            # Only while it is the very version the copy left (key equal): else it changed.
            batch.copies.append(copies.get(key) if key else None)  # type: ignore[union-attr]
        return large

    def _new_write_batch(self, directory: str) -> ChildBatch:
        batch = self.write_batches[directory] = ChildBatch("write", directory, self.pid,
                                                           self.parent)
        batch.copies = []
        first_ns, last_ns = self.written_ns
        if first_ns:
            batch.first_ns, batch.last_ns = first_ns, last_ns
        return batch


def note_each(image, operations: bytes, keys: list, paths: list, seconds: list,  # noqa: ANN001
              wanted: Callable[[str], bool]) -> None:
    """Hand `image.note` each note `wanted` accepts (a second path it does not, as None)."""
    note = image.note
    for operation, key, path, second in zip(operations, keys, paths, seconds):
        if wanted(path):
            note(operation, key, path, second if second is None or wanted(second) else None)


