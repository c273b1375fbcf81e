"""What the fsspec instrumentor does to an open file, and what it learns from gcsfs.

An fsspec file is followed by replacing a few methods on that one object (read, write,
flush, close) until it closes: its class, and every other file, stay untouched. The file's
own calls to `self.read`/`self.flush` (readinto, readline, a write that fills a block) reach
the replacements, so the store's requests run as part of the file's record.
"""

from __future__ import annotations

import json
from typing import Any

from clew.semconv import environment

from . import _objects, _stream_digests
from ._objects import GCS, ObjectRecord

_JSON_MAX = 1 << 16  # an object resource is a few KiB; never parse a downloaded body


def stamp_gcs_kwargs(record: ObjectRecord, kwargs: dict) -> None:
    """gcsfs writes take `metadata=`: the stamp rides along with the program's own."""
    value = _objects.stamp_value(record)
    if value is not None:
        kwargs["metadata"] = {**(kwargs.get("metadata") or {}), environment.STAMP_METADATA_KEY: value}


def learn_details(record: ObjectRecord, details: object) -> None:
    """Version, ETag, size, checksums and stamp from an fsspec info dict (s3fs: VersionId,
    ETag; gcsfs: generation, etag, md5Hash, crc32c, metadata)."""
    if not isinstance(details, dict):
        return
    record.learn(
        version=details.get("VersionId") or details.get("generation"),
        etag=details.get("ETag") or details.get("etag"),
        size=details.get("size"),
        metadata=details.get("metadata"),
    )
    record.add_checksum("md5", details.get("md5Hash"))
    record.add_checksum("crc32c", details.get("crc32c"))


def follow(file: Any, record: ObjectRecord, mode: str) -> None:
    """Record `file`'s operation when it closes; digest what passes in order."""
    if "r" in mode and "+" not in mode:
        # Already fetched when the file opened (no request here): never the `details`
        # property, which gcsfs would fetch.
        learn_details(record, vars(file).get("details") or vars(file).get("_details"))
        _follow_read(file, record)
    else:
        _follow_write(file, record, append="a" in mode)


def _follow_read(file: Any, record: ObjectRecord) -> None:
    size = record.object_size if record.object_size is not None else getattr(file, "size", None)
    digest = _objects.SequentialReadDigest(record, size if isinstance(size, int) else None)
    read, close, tell = file.read, file.close, file.tell

    def reading(*args: Any, **kwargs: Any) -> Any:
        position = tell()
        with _objects.operation(record):
            data = read(*args, **kwargs)
        record.io_bytes += len(data)
        if digest.following and record.digest_coming(besides=digest):
            digest.close()  # the inner layer hashes these bytes
        digest.update(position, data)
        return data

    def closing() -> None:
        restore()  # a second close is the file's own
        digest.close()
        try:
            with _objects.operation(record):
                return close()
        finally:
            _objects.finish(record)

    restore = _objects.replace_methods(file, read=reading, close=closing)


def _follow_write(file: Any, record: ObjectRecord, *, append: bool) -> None:
    limit = _objects.hash_max_bytes()
    stream = _stream_digests.Stream() if limit is not None and not append else None
    write, flush, close = file.write, file.flush, file.close

    def writing(data: Any) -> Any:
        nonlocal stream
        written = write(data)
        record.io_bytes += len(data)
        if stream is not None:
            stream.update(data)
            if record.io_bytes > limit:  # type: ignore[operator]
                stream.cancel()
                stream = None
        return written

    def flushing(*args: Any, **kwargs: Any) -> Any:
        with _objects.operation(record):
            return flush(*args, **kwargs)

    def closing() -> None:
        if stream is not None:
            record.digest = stream.result()  # a small object's PUT carries it
        if not append:
            record.object_size = record.io_bytes
        if record.store == GCS and isinstance(getattr(file, "metadata", None), dict):
            stamp_gcs_kwargs(record, vars(file))  # with the digest, for an upload at close
        restore()  # a second close is the file's own
        with _objects.operation(record):
            try:
                result = close()
            except BaseException:
                _objects.abandon(record)
                raise
        record.learn(version=getattr(file, "version_id", None) or getattr(file, "generation", None))
        _objects.finish(record)
        return result

    restore = _objects.replace_methods(file, write=writing, flush=flushing, close=closing)


def learn_gcs_response(record: ObjectRecord, headers: Any, contents: object) -> None:
    """What a gcsfs response says about the object of the enclosing record: a media
    download's x-goog-* headers, or an object resource (JSON) from info or an upload."""
    if record.store != GCS:
        return
    if isinstance(contents, bytes) and 0 < len(contents) <= _JSON_MAX and contents[:1] == b"{":
        try:
            resource = json.loads(contents)
        except ValueError:
            resource = None
        if isinstance(resource, dict) and record.matches(resource.get("bucket"), resource.get("name")):
            size = resource.get("size")
            learn_details(record, {**resource, "size": int(size) if str(size).isdigit() else None})
            return
    if headers is None or record.operation != "read" or "x-goog-generation" not in headers:
        return
    metadata = {
        key[len("x-goog-meta-"):].lower(): value
        for key, value in headers.items()
        if key.lower().startswith("x-goog-meta-")
    }
    hashes = dict(
        part.strip().split("=", 1) for part in headers.get("x-goog-hash", "").split(",") if "=" in part
    )
    learn_details(record, {
        "generation": headers.get("x-goog-generation"),
        "etag": headers.get("etag"),
        "metadata": metadata,
        "md5Hash": hashes.get("md5"),
        "crc32c": hashes.get("crc32c"),
    })
