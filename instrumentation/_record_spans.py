"""The records hooks collect, and how they become spans.

Small reads are the bulk of a data loader's I/O and a span each would cost more than the
read itself, so they are batched: one "read file" span per directory per flush, its
attributes parallel arrays (object stores batch their small reads the same way, per prefix:
`_objects`). Writes, large reads and every other operation get a span each.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Hashable, Iterable
from typing import Any, NamedTuple

from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext
from opentelemetry.util.types import Attributes

from clew.semconv import attributes as attr
from clew.semconv import spans
from clew.semconv.environment import STAMP_XATTR
from clew.semconv.uris import file_uri, file_uri_prefix, quote_uri_path, uri_of_name

from . import _stamps
from ._file_digests import StatKey

_read_batches: Any
try:  # a flush's per-record work on small file reads, in C where it was built
    from . import _read_batches
except ImportError:  # built without a compiler, or not on Linux
    _read_batches = None
_STAMP_NAME = STAMP_XATTR.encode()

BATCH_MAX_SIZE = 1 << 20  # reads of files at least this large get a span of their own
BATCH_MAX_RECORDS = 512  # keeps one span well under OTLP's usual 4 MiB message limit

SPAN_NAMES = {
    "read": spans.SPAN_READ_FILE,
    "write": spans.SPAN_WRITE_FILE,
    "delete": spans.SPAN_DELETE_FILE,
    "rename": spans.SPAN_RENAME_FILE,
    "copy": spans.SPAN_COPY_FILE,
    "list": spans.SPAN_LIST_DIRECTORY,
}


class Record:
    """One operation on one content version of one file, within one process.

    Object stores and non-Python children subclass it (`_objects.ObjectRecord`,
    `_preload_images.ChildRecord`): a record names its span, gives its attributes and its links, may
    name the span it goes under, and may carry a span started early (a write whose span id is
    stamped on the artifact before the span ends).
    """

    __slots__ = (
        "operation", "path", "key", "count", "first_ns", "last_ns", "digest", "identity", "source",
        "producer", "unstamped",
    )
    span: Span | None = None
    # The span the record's span goes under; None: the process span of the recording process.
    # A program clew's LD_PRELOAD library watched has its records under its exec span.
    parent: Context | None = None
    # The file version this one is a whole copy of (a non-Python child's copy): same digest.
    copy_of: StatKey | None = None
    # A FileBatch: many files in one record, identified file by file.
    batched = False

    def __init__(self, operation: str, path: str, key: StatKey | None = None) -> None:
        now = time.time_ns()
        self.operation = operation
        self.path = path
        self.key = key
        self.count = 1
        self.first_ns = now
        self.last_ns = now
        self.digest: str | None = None
        self.identity = "stat" if key is not None else "none"
        self.source: str | None = None
        # The producer stamp found on the content: (producer span, its digest).
        self.producer: tuple[SpanContext, str | None] | None = None
        # True when the hook that read this version found no stamp on it (the C audit hook
        # asks the descriptor it hashed from): the flush need not ask again by path.
        self.unstamped = False

    @property
    def size(self) -> int | None:
        return self.key[2] if self.key is not None else None

    def batch_key(self) -> Hashable | None:
        """Records with equal keys (and of one class) share a batched span; None: this record
        gets a span of its own."""
        if self.operation == "read" and (self.size or 0) < BATCH_MAX_SIZE:
            return directory_of(self.path)
        return None

    @staticmethod
    def batch_span(records: list[Record], pid: int) -> tuple[str, Attributes]:
        """Name and attributes of the span of one batch (records of one `batch_key`)."""
        return spans.SPAN_READ_FILE, batch_attributes(directory_of(records[0].path), records, pid)

    def span_name(self) -> str:
        return SPAN_NAMES[self.operation]

    def span_attributes(self, pid: int) -> Attributes:
        return single_attributes(self, pid)

    def uri(self) -> str:
        return file_uri(self.path)

    def file_links(self) -> list[Link]:
        """Span links to the producers of the content of the record's file(s)."""
        return links((self,))


class FileBatch(Record):
    """Small files of one directory, all read or all written, as one record and one batched
    span: their paths, keys, digests, counts as parallel lists, no object per file. A
    non-Python child's (`_preload_images.ChildBatch`): `cp -r` of a tree is one file record per file
    otherwise, and the objects cost more than the rest of the recording in Python.

    Each path is in it once, at most `BATCH_MAX_RECORDS` of them (`split`). `path` is the
    directory; the recorder fills `digests` where hashing is on (`Recorder._identify_batch`),
    then `identities`; `producers` holds the stamps found on files read, by path.
    """

    __slots__ = ("paths", "keys", "digests", "counts", "copies", "identities", "producers")
    batched = True

    def __init__(self, operation: str, directory: str) -> None:
        Record.__init__(self, operation, directory)
        self.paths: list[str] = []
        self.keys: list[StatKey | None] = []
        self.digests: list[str | None] = []
        self.counts: list[int] = []
        # Writes: the version each file is a whole copy of, or None (see Record.copy_of).
        self.copies: list[StatKey | None] | None = None
        self.identities: list[str] = []
        self.producers: dict[str, tuple[SpanContext, str | None]] = {}

    def batch_key(self) -> Hashable | None:
        return None  # batched already

    def part(self, start: int, end: int) -> FileBatch:
        """A batch of the files at [start, end), with this one's times (a subclass that
        carries more copies it too)."""
        part = self.__class__.__new__(self.__class__)
        Record.__init__(part, self.operation, self.path)
        part.first_ns, part.last_ns = self.first_ns, self.last_ns
        part.paths, part.keys = self.paths[start:end], self.keys[start:end]
        part.digests, part.counts = self.digests[start:end], self.counts[start:end]
        part.copies = self.copies[start:end] if self.copies is not None else None
        part.identities, part.producers = self.identities[start:end], {}
        return part

    def split(self) -> list[FileBatch]:
        """This batch as batches of at most `BATCH_MAX_RECORDS` files."""
        if len(self.paths) <= BATCH_MAX_RECORDS:
            return [self]
        return [self.part(start, start + BATCH_MAX_RECORDS)
                for start in range(0, len(self.paths), BATCH_MAX_RECORDS)]

    def new_record(self, path: str, key: StatKey | None) -> Record:
        """A record of this batch's operation on one of its files (a subclass's record)."""
        return Record(self.operation, path, key)

    def file_record(self, index: int) -> Record:
        """A record of the file at `index` alone (a config read, a metric file written)."""
        record = self.new_record(self.paths[index], self.keys[index])
        record.digest, record.count = self.digests[index], self.counts[index]
        record.identity = self.identities[index] if self.identities else record.identity
        record.first_ns, record.last_ns = self.first_ns, self.last_ns
        return record

    def find_stamps(self, *, in_c: bool = True) -> None:
        """`producers`: the stamps on the files read, as `find_stamps` finds a record's."""
        paths = self.paths
        if in_c and _read_batches is not None:
            paths = _read_batches.stamp_candidates(paths, _STAMP_NAME)
        read_stamp = _stamps.read_file
        for path in paths:
            producer = read_stamp(path)
            if producer is not None:
                self.producers[path] = producer

    def file_links(self) -> list[Link]:
        return [_stamps.link(*producer, file_uri(path)) for path, producer in self.producers.items()]

    def span_attributes(self, pid: int, *, in_c: bool = True) -> Attributes:
        directory = self.path
        cut = len(directory.rstrip("/")) + 1  # files of "/x" are in "/"
        prefix = file_uri_prefix(directory)
        if in_c and _read_batches is not None:
            uris = _read_batches.uris(self.paths, cut, prefix, quote_uri_path)
        else:
            uris = [uri_of_name(prefix, path[cut:]) for path in self.paths]
        return {
            attr.PROVENANCE_IO_OPERATION: self.operation,
            attr.FILE_DIRECTORY: directory,
            **artifact_arrays(
                uris, [digest or "" for digest in self.digests],
                [key[2] if key is not None else 0 for key in self.keys], self.identities,
                self.counts,
            ),
            attr.PROCESS_PID: pid,
        }


def links(records: Iterable[Record]) -> list[Link]:
    """Span links to the producers of the records' content, where a stamp named one."""
    return [_stamps.link(*r.producer, r.uri()) for r in records if r.producer is not None]


def single_attributes(record: Record, pid: int) -> Attributes:
    """Attributes of a span that carries one record."""
    attributes: dict = {
        attr.PROVENANCE_IO_OPERATION: record.operation,
        attr.PROVENANCE_ARTIFACT_URI: file_uri(record.path),
        attr.FILE_PATH: record.path,
        attr.PROVENANCE_ARTIFACT_IDENTITY: record.identity,
        attr.PROVENANCE_IO_COUNT: record.count,
        attr.PROCESS_PID: pid,
    }
    if record.key is not None:
        attributes[attr.PROVENANCE_ARTIFACT_SIZE] = record.key[2]
        attributes[attr.PROVENANCE_ARTIFACT_MTIME] = record.key[3]
    if record.digest:
        attributes[attr.PROVENANCE_ARTIFACT_DIGEST] = record.digest
    if record.source:
        attributes[attr.PROVENANCE_SOURCE_URI] = file_uri(record.source)
    if record.producer is not None:
        attributes.update(_stamps.producer_attributes(*record.producer))
    return attributes


def find_stamps(reads: list[Record], *, in_c: bool = True) -> bool:
    """Set each file read's `producer` to the stamp on its file (`_stamps.read_file`), from
    C where it was built (`in_c`): one listxattr each, the stamp itself read only where the
    file lists it. A read the hook found `unstamped` has none: not asked again. True if a
    stamp was found."""
    if in_c and _read_batches is not None:
        reads = _read_batches.stamp_candidates(reads, _STAMP_NAME)
    read_stamp = _stamps.read_file
    found = False
    for record in reads:
        record.producer = None if record.unstamped else read_stamp(record.path)
        found = found or record.producer is not None
    return found


def batch_attributes(directory: str, records: list[Record], pid: int, *,
                     in_c: bool = True) -> Attributes:
    """Attributes of a batched "read file" span: parallel arrays, one entry per record,
    made in C where it was built (`in_c`)."""
    return read_batch_attributes(directory, *_arrays(directory, records, in_c=in_c), pid)


def read_batch_attributes(directory: str, uris: list[str], digests: list[str], sizes: list[int],
                          identities: list[str], counts: list[int], pid: int) -> Attributes:
    """Attributes of a batched "read file" span of files in `directory`, from its arrays."""
    return {
        attr.PROVENANCE_IO_OPERATION: "read",
        attr.FILE_DIRECTORY: directory,
        **artifact_arrays(uris, digests, sizes, identities, counts),
        attr.PROCESS_PID: pid,
    }


def _arrays(directory: str, records: list[Record], *, in_c: bool
            ) -> tuple[list[str], list[str], list[int], list[str], list[int]]:
    """A batch's URIs, digests, sizes, identities and counts."""
    cut = len(directory.rstrip("/")) + 1  # records of "/x" are in "/"
    prefix = file_uri_prefix(directory)
    if in_c and _read_batches is not None:
        return _read_batches.arrays(records, cut, prefix, quote_uri_path)
    return ([uri_of_name(prefix, r.path[cut:]) for r in records],
            [r.digest or "" for r in records],
            [r.key[2] if r.key is not None else 0 for r in records],
            [r.identity for r in records],
            [r.count for r in records])


def artifact_arrays(
    uris: list[str], digests: list[str], sizes: list[int], identities: list[str],
    counts: list[int],
) -> dict:
    """The `provenance.artifacts.*` arrays every batched span has, parallel to `uris`.

    Arrays that would say nothing are left out, as they are most of a span's size and cost:
    the identities when every record has the same one (given once, as the scalar the
    lineage tables and spool readers fall back to), the counts when every record's is 1.
    """
    arrays: dict = {
        attr.PROVENANCE_ARTIFACTS_URI: uris,
        attr.PROVENANCE_ARTIFACTS_DIGEST: digests,
        attr.PROVENANCE_ARTIFACTS_SIZE: sizes,
    }
    if identities.count(identities[0]) == len(identities):
        arrays[attr.PROVENANCE_ARTIFACT_IDENTITY] = identities[0]
    else:
        arrays[attr.PROVENANCE_ARTIFACTS_IDENTITY] = identities
    if counts.count(1) != len(counts):
        arrays[attr.PROVENANCE_ARTIFACTS_COUNT] = counts
    arrays[attr.PROVENANCE_IO_COUNT] = sum(counts)
    return arrays


def directory_of(path: str) -> str:
    """os.path.dirname of a normalised absolute path, at a third of its cost."""
    return path.rpartition("/")[0] or "/"


# A batch of plain file reads (`Record`s of one directory) as `plan_flush` gives it: its
# records, directory, the span's arrays (URIs, digests, sizes, identities, counts), and its
# records' first `first_ns` and last `last_ns`.
ReadBatch = tuple[list[Record], str, list[str], list[str], list[int], list[str], list[int], int, int]


class FlushPlan(NamedTuple):
    """A flush's records sorted into spans (`plan_flush`)."""

    reads: list[Record]  # file reads (a stat key): their producer stamps are looked for
    configs: list[Record]  # those of them whose path has a config file's suffix
    singles: list[Record]  # records that get a span of their own, in order
    # Then the batches: lists of records of one class and `batch_key` (other than `Record`),
    # or batches of plain reads with their arrays; each with a path at most once and at most
    # `BATCH_MAX_RECORDS` records.
    batches: list[list[Record] | ReadBatch]
    linked: bool  # some record of a ReadBatch has a producer already


def plan_flush(records: list[Record], suffixes: tuple[str, ...], *, in_c: bool = True) -> FlushPlan:
    """The records of one flush sorted into spans, in one C pass where it was built (`in_c`):
    a loop per record over thousands of small reads is most of a flush.

    A path appears once per batch: a span's links name their artifact by URI, so two versions
    of one object (or file) read in one flush go to two batches."""
    if in_c and _read_batches is not None:
        return FlushPlan(*_read_batches.plan(records, BATCH_MAX_SIZE, BATCH_MAX_RECORDS,
                                              suffixes, file_uri_prefix, quote_uri_path))
    reads = [r for r in records if r.operation == "read" and r.key is not None]
    configs = [r for r in reads if r.path.endswith(suffixes)]
    singles, groups = _grouped(records)
    batches: list[list[Record] | ReadBatch] = []
    linked = False
    for (kind, key), group in groups.items():
        # Checked per group, not per record: a path read twice in one flush is rare, and
        # tracking repeats record by record cost as much as the rest of the grouping.
        parts = [group] if len({r.path for r in group}) == len(group) else _by_repeat(group)
        for part in parts:
            for start in range(0, len(part), BATCH_MAX_RECORDS):
                batch = part[start : start + BATCH_MAX_RECORDS]
                if kind is Record:
                    linked = linked or any(r.producer is not None for r in batch)
                    batches.append(_read_batch(key, batch))  # type: ignore[arg-type]
                else:
                    batches.append(batch)
    return FlushPlan(reads, configs, singles, batches, linked)


def _read_batch(directory: str, records: list[Record]) -> ReadBatch:
    """The ReadBatch of plain reads `records` in `directory`, in Python."""
    uris, digests, sizes, identities, counts = _arrays(directory, records, in_c=False)
    return (records, directory, uris, digests, sizes, identities, counts,
            min(r.first_ns for r in records), max(r.last_ns for r in records))


def _grouped(records: list[Record]) -> tuple[list[Record], dict[tuple[type, Hashable], list[Record]]]:
    """The records that get a span of their own, and the others by class and batch key."""
    singles: list[Record] = []
    groups: dict[tuple[type, Hashable], list[Record]] = {}
    for record in records:
        if type(record) is Record:
            # `Record.batch_key` in line (a file read's is its directory): this loop runs once
            # per record, and the method call with its `size` was a third of it.
            stat = record.key
            if record.operation == "read" and (stat is None or stat[2] < BATCH_MAX_SIZE):
                key: Hashable | None = record.path.rpartition("/")[0] or "/"
            else:
                key = None
        else:
            key = record.batch_key()
        if key is None:
            singles.append(record)
            continue
        group = groups.get((type(record), key))
        if group is None:
            groups[type(record), key] = [record]
        else:
            group.append(record)
    return singles, groups


def _by_repeat(group: list[Record]) -> list[list[Record]]:
    """`group` split so that each part holds a path once: a path's first record in the first
    part, its second in the second, and so on."""
    parts: list[list[Record]] = []
    seen: dict[str, int] = defaultdict(int)
    for record in group:
        repeat = seen[record.path]
        seen[record.path] = repeat + 1
        if repeat == len(parts):
            parts.append([])
        parts[repeat].append(record)
    return parts


if _read_batches is not None:
    _read_batches.configure(Record)  # its slots read directly by the C passes
