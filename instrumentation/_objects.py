"""Object-store records: the one path S3 (botocore), GCS and every fsspec filesystem share.

A hook opens an `ObjectRecord` when an operation starts (`begin`) and hands it over when it is
done (`finish`). Reads and metadata look-ups of one object version are folded into one record
per process (ranged GETs of one download are one logical read, their bytes summed) and emitted
once quiet for a flush interval, reads of small objects batched into one span per prefix as
small file reads are (`_record_spans`); everything else becomes a span at the next flush.

Layers nest: s3fs runs over aiobotocore, gcsfs over its HTTP session. The outermost layer opens
the record and runs the inner call under OpenTelemetry's suppression with the record set as
`enclosing()`; an inner layer that sees it adds what it learns (version, ETag, checksums, the
producer stamp) to that record instead of making its own.
"""

from __future__ import annotations

import base64
import contextvars
import threading
import time
from collections.abc import Callable, Hashable

from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation
from opentelemetry.util.types import Attributes

from clew.semconv import attributes as attr
from clew.semconv import spans
from clew.semconv.uris import GCS, S3, object_uri

from . import _record_spans, _stamps, _stream_digests
from ._lifecycle import get_recorder, reset_in_forked_child
from ._record_spans import Record
from ._recorder import Recorder

_FOLDED = ("read", "list")  # one record per object version per process, counts summed
_SPAN_NAMES = {
    (S3, "read"): spans.SPAN_READ_S3, (S3, "write"): spans.SPAN_WRITE_S3,
    (S3, "copy"): spans.SPAN_COPY_S3, (S3, "delete"): spans.SPAN_DELETE_S3,
    (S3, "rename"): spans.SPAN_RENAME_S3, (S3, "list"): spans.SPAN_LIST_S3,
    (GCS, "read"): spans.SPAN_READ_GCS, (GCS, "write"): spans.SPAN_WRITE_GCS,
    (GCS, "copy"): spans.SPAN_COPY_GCS, (GCS, "delete"): spans.SPAN_DELETE_GCS,
    (GCS, "rename"): spans.SPAN_RENAME_GCS, (GCS, "list"): spans.SPAN_LIST_GCS,
}
_OTHER_SPAN_NAMES = {
    "read": spans.SPAN_READ_OBJECT, "write": spans.SPAN_WRITE_OBJECT,
    "copy": spans.SPAN_COPY_OBJECT, "delete": spans.SPAN_DELETE_OBJECT,
    "rename": spans.SPAN_RENAME_OBJECT, "list": spans.SPAN_LIST_OBJECT,
}
# Indexed by "is it S3": S3 objects carry the AWS semantic conventions' names.
_BUCKET = (attr.PROVENANCE_OBJECT_BUCKET, attr.AWS_S3_BUCKET)
_KEY = (attr.PROVENANCE_OBJECT_KEY, attr.AWS_S3_KEY)
_enclosing: contextvars.ContextVar[ObjectRecord | None] = contextvars.ContextVar(
    "clew_object_record", default=None
)


def _hex_checksum(algorithm: str, value: str) -> str | None:
    """A store's base64 checksum (S3 ChecksumCRC32, GCS md5Hash) as `<algorithm>:<hex>`."""
    try:
        return f"{algorithm}:{base64.b64decode(value, validate=True).hex()}"
    except ValueError:
        return None


class ObjectRecord(Record):
    """One logical operation on one object (or prefix, for a listing)."""

    __slots__ = (
        "store", "bucket", "name", "endpoint", "version", "etag", "checksums", "io_bytes",
        "object_size", "copy_source", "stamped", "pending", "span",
    )

    def __init__(self, operation: str, store: str, bucket: str, name: str) -> None:
        super().__init__(operation, object_uri(store, bucket, name))
        self.store, self.bucket, self.name = store, bucket, name
        self.endpoint: tuple[str, int | None] | None = None  # host and port, never userinfo
        self.version: str | None = None
        self.etag: str | None = None
        self.checksums: dict[str, str] = {}  # algorithm -> the store's base64 value
        self.io_bytes = 0
        self.object_size: int | None = None
        self.copy_source: str | None = None  # S3 "bucket/key" (aws.s3.copy_source)
        self.stamped = False
        self.pending: set = set()  # SequentialReadDigests still hashing into this record's digest
        self.span = None

    @property
    def size(self) -> int | None:
        return self.object_size

    def batch_key(self) -> Hashable | None:
        # Reads of small objects, per prefix and endpoint, as small file reads are batched
        # per directory: a job reading millions of objects would otherwise send millions of
        # spans, and building them costs the recorder 2.5 times its CPU (benchmarks/RESULTS.md).
        if self.operation == "read" and (self.object_size or 0) < _record_spans.BATCH_MAX_SIZE:
            return self.store, self.bucket, self.name.rpartition("/")[0], self.endpoint
        return None

    @staticmethod
    def batch_span(records: list[ObjectRecord], pid: int) -> tuple[str, Attributes]:
        first = records[0]
        attributes: dict = {
            attr.PROVENANCE_IO_OPERATION: "read",
            attr.PROVENANCE_OBJECT_STORE: first.store,
            _BUCKET[first.store == S3]: first.bucket,
            **_record_spans.artifact_arrays(
                [r.path for r in records],
                [r.digest or "" for r in records],
                [-1 if r.object_size is None else r.object_size for r in records],
                [r._identity() for r in records],
                [r.count for r in records],
            ),
            attr.PROVENANCE_ARTIFACTS_BYTES: [r.io_bytes for r in records],
            attr.PROCESS_PID: pid,
        }
        optional = {
            attr.PROVENANCE_ARTIFACTS_VERSION: [r.version or "" for r in records],
            attr.PROVENANCE_ARTIFACTS_ETAG: [r.etag or "" for r in records],
            attr.PROVENANCE_ARTIFACTS_CHECKSUMS: [",".join(r.checksum_values()) for r in records],
        }
        attributes.update((key, values) for key, values in optional.items() if any(values))
        attributes.update(first._endpoint_attributes())
        return first.span_name(), attributes

    def uri(self) -> str:
        return self.path

    def span_name(self) -> str:
        return _SPAN_NAMES.get((self.store, self.operation)) or _OTHER_SPAN_NAMES[self.operation]

    def digest_coming(self, besides: SequentialReadDigest | None = None) -> bool:
        """Whether this record has its digest, or a SequentialReadDigest other than `besides` is
        computing it: an inner layer (aiobotocore under s3fs) hashing the bytes as they arrive."""
        return self.digest is not None or any(d is not besides for d in self.pending)

    def matches(self, bucket: str, name: str) -> bool:
        return self.bucket == bucket and self.name == name

    def add_checksum(self, algorithm: str, value: object) -> None:
        """Keep a checksum the store gave in base64 (decoded when the span is built, off the
        program's thread); the first answer for an algorithm stands."""
        if isinstance(value, str) and value:
            self.checksums.setdefault(algorithm, value)

    def checksum_values(self) -> list[str]:
        """The checksums as `<algorithm>:<hex>`, sorted, leaving out any that is not base64."""
        return sorted(filter(None, (_hex_checksum(a, v) for a, v in self.checksums.items())))

    def learn(self, *, version: object = None, etag: object = None, size: object = None,
              metadata: object = None) -> None:
        """Take what a response says about the object; a later answer does not overwrite an
        earlier one (the first response describes the version this operation used)."""
        # "null": S3's version of an unversioned object; 0: no GCS generation (yet).
        if version not in (None, "", "null", "0", 0) and self.version is None:
            self.version = str(version)
        if isinstance(etag, str) and etag and self.etag is None:
            # GCS quotes the ETag header but not the JSON field; S3 quotes both.
            self.etag = etag.strip('"') if self.store == GCS else etag
        if isinstance(size, int) and self.object_size is None:
            self.object_size = size
        if self.operation == "read" and self.producer is None:
            self.producer = _stamps.from_metadata(metadata)

    def span_attributes(self, pid: int) -> Attributes:
        attributes: dict = {
            attr.PROVENANCE_IO_OPERATION: self.operation,
            attr.PROVENANCE_ARTIFACT_URI: self.path,
            attr.PROVENANCE_OBJECT_STORE: self.store,
            attr.PROVENANCE_ARTIFACT_IDENTITY: self._identity(),
            attr.PROVENANCE_IO_COUNT: self.count,
            attr.PROCESS_PID: pid,
        }
        is_s3 = self.store == S3
        attributes[_BUCKET[is_s3]] = self.bucket
        attributes[_KEY[is_s3]] = self.name
        optional = {
            attr.PROVENANCE_ARTIFACT_SIZE: self.object_size,
            attr.PROVENANCE_ARTIFACT_VERSION: self.version,
            attr.PROVENANCE_ARTIFACT_ETAG: self.etag,
            attr.PROVENANCE_ARTIFACT_DIGEST: self.digest,
            attr.PROVENANCE_IO_BYTES: self.io_bytes or None,
            attr.PROVENANCE_SOURCE_URI: self.source,
            attr.AWS_S3_COPY_SOURCE: self.copy_source,
            attr.PROVENANCE_PRODUCER_STAMPED: self.stamped or None,
        }
        attributes.update((key, value) for key, value in optional.items() if value is not None)
        checksums = self.checksum_values()
        if checksums:
            attributes[attr.PROVENANCE_ARTIFACT_CHECKSUMS] = checksums
        attributes.update(self._endpoint_attributes())
        if self.producer is not None:
            attributes.update(_stamps.producer_attributes(*self.producer))
        return attributes

    def _endpoint_attributes(self) -> dict:
        if self.endpoint is None:
            return {}
        host, port = self.endpoint
        if port is None:
            return {attr.SERVER_ADDRESS: host}
        return {attr.SERVER_ADDRESS: host, attr.SERVER_PORT: port}

    def _identity(self) -> str:
        # The store's own immutable name for the content first, then its ETag,
        # then a digest of the bytes that passed through this process.
        if self.version:
            return "version"
        if self.etag:
            return "etag"
        return "content" if self.digest else "none"

    def fold(self, other: ObjectRecord) -> None:
        """Add a later request for the same object version to this record."""
        self.count += other.count
        self.io_bytes += other.io_bytes
        self.last_ns = max(self.last_ns, other.last_ns)
        self.object_size = self.object_size if self.object_size is not None else other.object_size
        self.etag = self.etag or other.etag
        self.digest = self.digest or other.digest
        self.producer = self.producer or other.producer
        for algorithm, value in other.checksums.items():
            self.checksums.setdefault(algorithm, value)


class _Tracker:
    """This process's folded reads and listings, until they go quiet."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.lock = threading.Lock()
        self.open: dict[tuple, ObjectRecord] = {}
        recorder.sources.append(self.drain)

    def fold(self, record: ObjectRecord) -> ObjectRecord:
        key = (record.operation, record.path, record.version or record.etag)
        with self.lock:
            existing = self.open.get(key)
            if existing is None:
                self.open[key] = record
                return record
            existing.fold(record)
            return existing

    def drain(self, final: bool) -> list[ObjectRecord]:
        quiet_before = time.time_ns() - int(self.recorder.settings.flush_interval * 1e9)
        with self.lock:
            done = [
                key for key, record in self.open.items()
                if final or (not record.pending and record.last_ns <= quiet_before)
            ]
            return [self.open.pop(key) for key in done]

    def after_fork_in_child(self) -> None:
        # The parent's records: it emits them itself. Its lock may have been held by
        # another thread at the fork. Reset here rather than checked on every fold.
        self.lock = threading.Lock()
        self.open = {}


_tracker: _Tracker | None = None
_tracker_lock = threading.Lock()


def _get_tracker() -> _Tracker:
    global _tracker
    recorder = get_recorder()
    if _tracker is None or _tracker.recorder is not recorder:
        with _tracker_lock:
            if _tracker is None or _tracker.recorder is not recorder:
                _tracker = _Tracker(recorder)
    return _tracker


def _after_fork_in_child() -> None:
    if _tracker is not None:
        _tracker.after_fork_in_child()


reset_in_forked_child(_after_fork_in_child)


def begin(operation: str, store: str, bucket: str, name: str, *,
          endpoint: tuple[str, int | None] | None = None, stamp: bool = False) -> ObjectRecord:
    """Open a record. `stamp` starts its span now, so a write can carry the span's id, when
    object stamps are opted in (CLEW_STAMP_OBJECTS): by default nothing is written into
    the object's metadata, and `stamp_value` gives None."""
    record = ObjectRecord(operation, store, bucket, name)
    record.endpoint = endpoint
    if stamp and get_recorder().settings.stamp_objects:
        record.span = get_recorder().start_span(record.span_name(), record.first_ns)
    return record


def stamp_value(record: ObjectRecord) -> str | None:
    """The producer stamp a write puts in the object's metadata, marking the record stamped."""
    if record.span is None:
        return None
    record.stamped = True
    return _stamps.encode(record.span.get_span_context(), record.digest)


def finish(record: ObjectRecord) -> ObjectRecord:
    """The operation succeeded: fold reads and listings, queue everything else. Returns the
    record that carries it (for a read, possibly an earlier one it was folded into)."""
    record.last_ns = time.time_ns()
    if record.operation in _FOLDED:
        return _get_tracker().fold(record)
    get_recorder().finished(record)
    return record


def abandon(record: ObjectRecord) -> None:
    """The operation failed: nothing was produced. A started span is dropped unended."""
    record.span = None


def enclosing() -> ObjectRecord | None:
    """The record of the outer layer's operation, while an inner layer runs it."""
    return _enclosing.get()


def suppressed() -> bool:
    return not is_instrumentation_enabled()


class operation:  # noqa: N801 - used as a function: `with operation(record):`
    """Run an inner call as part of `record`: inner layers add to it and record nothing.

    A class rather than a @contextmanager generator: an fsspec read enters it several times
    (open, each read, close), and this costs half as much each time."""

    __slots__ = ("record", "token", "suppressing")

    def __init__(self, record: ObjectRecord | None) -> None:
        self.record = record

    def __enter__(self) -> None:
        self.token = _enclosing.set(self.record)
        self.suppressing = suppress_instrumentation()
        self.suppressing.__enter__()

    def __exit__(self, *exc_info: object) -> None:
        self.suppressing.__exit__(None, None, None)
        _enclosing.reset(self.token)


def replace_methods(target: object, **replacements: Callable) -> Callable[[], None]:
    """Put `replacements` in place of methods of one object (its class, and every other
    instance, untouched); returns what puts the class's own methods back.

    Call that once the object is done with: a replacement holds the object's own bound
    method, so until then the object is in a reference cycle, which only the garbage
    collector frees. Left in place, every file a program read lived (with its buffers) until
    a collection, and the collections that causes cost a program reading small objects
    through s3fs about 1 % (benchmarks/RESULTS.md)."""
    for name, replacement in replacements.items():
        setattr(target, name, replacement)

    def restore() -> None:
        attributes = vars(target)
        for name, replacement in replacements.items():
            if attributes.get(name) is replacement:
                del attributes[name]
        replacements.clear()  # the replacements refer to this function: a cycle of their own

    return restore


def hash_max_bytes() -> int | None:
    """The largest object to digest while it streams; None when hashing is off."""
    settings = get_recorder().settings
    return settings.hash_max_bytes if settings.hashing else None


def digest_of(data: bytes | bytearray | memoryview) -> str | None:
    """blake3 of bytes the program already holds (a whole object read or written)."""
    limit = hash_max_bytes()
    if limit is None or len(data) > limit:
        return None
    return _stream_digests.digest(data)


class SequentialReadDigest:
    """blake3 of an object read sequentially from offset 0 to its end, as it passes; given
    up at the first read out of order (a seek, a ranged reader). An object read in one small
    chunk (a whole GET body) is hashed there and then; otherwise the chunks feed a
    `_stream_digests.Stream`, which hashes large ones on the background hasher. The record waits in
    `pending` until its digest is set, so it is never emitted before (unless the process
    ends first)."""

    __slots__ = ("record", "position", "stream", "size", "following")

    def __init__(self, record: ObjectRecord, size: int | None) -> None:
        self.record = record
        self.position = 0
        self.size = size
        self.stream: _stream_digests.Stream | None = None  # from the first chunk short of the end
        limit = hash_max_bytes()
        self.following = limit is not None and size is not None and size <= limit
        if self.following:
            record.pending.add(self)  # set.add: atomic under the GIL, no lock to fork with

    def update(self, offset: int, data: bytes | memoryview) -> None:
        if not self.following:
            return
        if offset != self.position:
            self.close()
            return
        end = offset + len(data)
        stream = self.stream
        if stream is None:
            if end == self.size and _stream_digests.small(data):
                self.following = False
                self._done(_stream_digests.digest_here(data))
                return
            stream = self.stream = _stream_digests.Stream()
        stream.update(data)
        self.position = end
        if end == self.size:
            self.following, self.stream = False, None  # the digest's callback ends `pending`
            stream.finish(self._done)

    def _done(self, digest: str | None) -> None:
        if digest is not None:
            self.record.digest = digest
        self.record.pending.discard(self)

    def close(self) -> None:
        """Stop following the stream (at its end, or when it is abandoned)."""
        if self.following:
            self.following = False
            if self.stream is not None:
                self.stream.cancel()
                self.stream = None
            self.record.pending.discard(self)
