"""What s3.py patches into botocore, imported when the program imports botocore.session:
the event handlers that open and complete S3 object records."""

from __future__ import annotations

import inspect
import os
import threading
from typing import Any
from urllib.parse import urlsplit

import wrapt

from clew.semconv import environment

from . import _objects
from ._guard import guard
from ._lifecycle import get_recorder
from ._objects import S3, ObjectRecord
from .s3 import _instrumentor

_UNIQUE = "clew-s3"
_CONTEXT_KEY = "clew_object_records"
_CHECKSUMS = {
    "ChecksumCRC32": "crc32", "ChecksumCRC32C": "crc32c", "ChecksumCRC64NVME": "crc64nvme",
    "ChecksumSHA1": "sha1", "ChecksumSHA256": "sha256",
}
_LISTINGS = ("ListObjects", "ListObjectsV2", "ListObjectVersions")
_STAMPED = ("PutObject", "CreateMultipartUpload")
# Under an outer layer's record: the responses that describe the object that record is about
# (a HEAD before a write describes the old version; a part's ETag is not the object's).
_DESCRIBES = {
    "read": ("GetObject", "HeadObject"), "list": ("HeadObject",),
    "write": ("PutObject", "CompleteMultipartUpload"), "copy": ("CopyObject",),
    "rename": ("CopyObject",),
}
# Multipart uploads under way in this process: UploadId -> the write being assembled.
_uploads: dict[str, ObjectRecord] = {}
_uploads_lock = threading.Lock()


def _stamp(record: ObjectRecord, params: dict) -> None:
    value = _objects.stamp_value(record)
    if value is not None:
        # A copy: the program's own dict stays as it was.
        params["Metadata"] = {**(params.get("Metadata") or {}), environment.STAMP_METADATA_KEY: value}


def _body_size(body: object) -> int | None:
    try:
        return len(body)  # type: ignore[arg-type]  # bytes, s3transfer's ReadFileChunk
    except TypeError:
        return None


def _copy_source(source: object) -> tuple[str, str, str | None] | None:
    """CopySource as bucket, key, version: a dict, or "bucket/key?versionId=..."."""
    if isinstance(source, dict):
        bucket, key = source.get("Bucket"), source.get("Key")
        version = source.get("VersionId")
    elif isinstance(source, str):
        path, _, query = source.lstrip("/").partition("?versionId=")
        bucket, _, key = path.partition("/")
        version = query or None
    else:
        return None
    return (bucket, key, version) if bucket and key else None


def _open_records(operation: str, params: dict) -> list[ObjectRecord]:
    """The records an S3 operation about to be sent makes (none for other operations)."""
    bucket, key = params.get("Bucket"), params.get("Key")
    if not isinstance(bucket, str):
        return []
    if operation in _LISTINGS:
        return [_objects.begin("list", S3, bucket, params.get("Prefix") or "")]
    if operation == "DeleteObjects":
        objects = (params.get("Delete") or {}).get("Objects") or []
        return [_objects.begin("delete", S3, bucket, o["Key"]) for o in objects if "Key" in o]
    if not isinstance(key, str):
        return []
    if operation in ("GetObject", "HeadObject", "DeleteObject"):
        kind = {"GetObject": "read", "HeadObject": "list", "DeleteObject": "delete"}[operation]
        record = _objects.begin(kind, S3, bucket, key)
        record.version = params.get("VersionId")
        return [record]
    if operation in _STAMPED:
        record = _objects.begin("write", S3, bucket, key, stamp=True)
        body = params.get("Body")
        size = _body_size(body) if body is not None else 0
        if isinstance(body, (bytes, bytearray)):
            record.digest = _objects.digest_of(body)
        elif operation == "PutObject":
            path = _whole_file(body, size)
            if path is not None:
                record.digest = get_recorder().file_digest(path)
        if operation == "PutObject" and size is not None:
            record.io_bytes = record.object_size = size
        _stamp(record, params)
        return [record]
    if operation == "CopyObject":
        record = _objects.begin("copy", S3, bucket, key, stamp=True)
        _set_source(record, params.get("CopySource"))
        if params.get("MetadataDirective") == "REPLACE":
            _stamp(record, params)  # else S3 copies the source's metadata, its stamp too
        return [record]
    return []


# How deep s3transfer wraps the file it uploads: ReadFileChunk, then InterruptReader.
_FILE_WRAPPERS = 2


def _whole_file(body: object, size: int | None) -> str | None:
    """The local file a PutObject body sends whole, or None: s3transfer's ReadFileChunk
    (upload_file, upload_fileobj of an open file) from byte 0 for the file's full size,
    around an InterruptReader around the file."""
    if getattr(body, "_start_byte", None) != 0:
        return None
    inner, name = body, None
    for _ in range(_FILE_WRAPPERS):
        inner = getattr(inner, "_fileobj", None)
        name = getattr(inner, "name", None)
        if isinstance(name, str):
            break
    if not isinstance(name, str):
        return None
    try:
        return name if size == os.stat(name).st_size else None
    except (OSError, ValueError):
        return None


def _set_source(record: ObjectRecord, source: object) -> None:
    parsed = _copy_source(source)
    if parsed is not None:
        record.operation = "copy"
        record.source = _objects.object_uri(S3, parsed[0], parsed[1])
        record.copy_source = f"{parsed[0]}/{parsed[1]}"


def _add_part(operation: str, params: dict) -> None:
    """UploadPart / UploadPartCopy: the bytes (and source) join their upload's record."""
    with _uploads_lock:
        record = _uploads.get(params.get("UploadId"))
        if record is None:
            return
        size = _body_size(params.get("Body"))
        record.io_bytes += size or 0
        if operation == "UploadPartCopy":
            _set_source(record, params.get("CopySource"))


def _before_request(params: dict, model: Any, context: dict, **kwargs: Any) -> None:
    if not _instrumentor.active:
        return
    with guard("s3 request"):
        operation = model.name
        outer = _objects.enclosing()
        if outer is not None or _objects.suppressed():
            if outer is not None and outer.matches(params.get("Bucket"), params.get("Key")):
                if operation in _DESCRIBES.get(outer.operation, ()):
                    context[_CONTEXT_KEY] = outer
                if operation in _STAMPED and outer.operation == "write":
                    _stamp(outer, params)
            return
        if operation in ("UploadPart", "UploadPartCopy"):
            _add_part(operation, params)
            return
        if operation in ("CompleteMultipartUpload", "AbortMultipartUpload"):
            with _uploads_lock:
                record = _uploads.pop(params.get("UploadId"), None)
            if record is not None and operation == "CompleteMultipartUpload":
                context[_CONTEXT_KEY] = [record]
            elif record is not None:
                _objects.abandon(record)
            return
        records = _open_records(operation, params)
        if records:
            context[_CONTEXT_KEY] = records


def _learn(record: ObjectRecord, parsed: dict, operation: str) -> None:
    result = parsed.get("CopyObjectResult") or {}
    record.learn(
        version=parsed.get("VersionId"),
        etag=parsed.get("ETag") or result.get("ETag"),
        size=_object_size(parsed) if operation in ("GetObject", "HeadObject") else None,
        metadata=parsed.get("Metadata"),
    )
    for field, algorithm in _CHECKSUMS.items():
        value = parsed.get(field) or result.get(field)
        if value:  # most responses carry one checksum or none
            record.add_checksum(algorithm, value)


def _object_size(parsed: dict) -> int | None:
    """The whole object's size: from Content-Range on a ranged GET, else Content-Length."""
    content_range = parsed.get("ContentRange")
    if isinstance(content_range, str) and "/" in content_range:
        total = content_range.rpartition("/")[2]
        return int(total) if total.isdigit() else None
    return parsed.get("ContentLength")


# Endpoints by "scheme://netloc": a client sends every request to one or a few, and parsing
# each response's URL costs more than the rest of recording a small GET.
_endpoints: dict[str, tuple[str, int | None] | None] = {}


def _endpoint(http_response: Any) -> tuple[str, int | None] | None:
    try:
        url = http_response.url
        end = url.find("/", url.find("//") + 2)  # the path's start, after "scheme://netloc"
        origin = url if end < 0 else url[:end]
        if origin not in _endpoints:
            parts = urlsplit(origin)
            if len(_endpoints) >= 64:
                _endpoints.clear()
            _endpoints[origin] = (parts.hostname, parts.port) if parts.hostname else None
        return _endpoints[origin]  # host and port, never userinfo
    except (AttributeError, TypeError, ValueError):
        return None


def _after_call(http_response: Any, parsed: dict, model: Any, context: dict, **kwargs: Any) -> None:
    held = context.pop(_CONTEXT_KEY, None)
    if held is None or not _instrumentor.active:
        return
    with guard("s3 response"):
        operation = model.name
        if isinstance(held, ObjectRecord):  # the outer layer's record: add to it
            if http_response.status_code < 300:
                _learn(held, parsed, operation)
                if operation == "GetObject" and held.operation == "read":
                    _hash_for_outer(held, parsed)
            return
        if http_response.status_code >= 300:
            for record in held:
                _objects.abandon(record)
            return
        endpoint = _endpoint(http_response)
        for record in held:
            record.endpoint = endpoint
        if operation == "DeleteObjects":
            _finish_deletes(held, parsed)
            return
        record = held[0]
        _learn(record, parsed, operation)
        if operation == "CreateMultipartUpload":
            with _uploads_lock:
                _uploads[parsed.get("UploadId")] = record
            return
        if operation == "GetObject":
            record.io_bytes = parsed.get("ContentLength") or 0
        elif operation == "CompleteMultipartUpload" and record.operation == "write":
            record.object_size = record.io_bytes  # the parts' bytes
        carrier = _objects.finish(record)
        if operation == "GetObject" and _whole(parsed, carrier.object_size):
            digest = _objects.SequentialReadDigest(carrier, carrier.object_size)
            _follow_body(parsed.get("Body"), digest)


def _hash_for_outer(record: ObjectRecord, parsed: dict) -> None:
    """Hash a whole GET's body where its bytes arrive (s3fs's event loop) for the outer
    layer's read, which leaves the digest to this (`ObjectRecord.digest_coming`); not when
    the object's size changed since the outer layer learned it (replaced between HEAD and GET)."""
    size = _object_size(parsed)
    if size == record.object_size and _whole(parsed, size):
        _follow_body(parsed.get("Body"), _objects.SequentialReadDigest(record, size))


def _finish_deletes(records: list[ObjectRecord], parsed: dict) -> None:
    deleted = {d.get("Key"): d for d in parsed.get("Deleted") or []}
    for record in records:
        result = deleted.get(record.name)
        if result is None:
            _objects.abandon(record)  # in Errors: not deleted
            continue
        record.learn(version=result.get("VersionId"))
        _objects.finish(record)


def _whole(parsed: dict, size: int | None) -> bool:
    """Whether this GET returns the object from its first byte to its last."""
    content_range = parsed.get("ContentRange")
    if not content_range:
        return True
    return isinstance(content_range, str) and content_range.startswith(f"bytes 0-{(size or 0) - 1}/")


def _follow_body(body: Any, digest: _objects.SequentialReadDigest) -> None:
    """Hash a StreamingBody as the program reads it: its read and readinto are replaced on
    this one object (iter_chunks and iteration call them), so the bytes are hashed once, in
    passing, never fetched again. An aiobotocore body's read is a coroutine: its
    replacements are coroutines too, so the bytes are hashed on the event loop's thread as
    they arrive (under s3fs, a third of what hashing them on the reading thread cost)."""
    asynchronous = _async_body(body)
    if asynchronous is None or not digest.following:
        digest.close()
        return
    read, readinto, close = body.read, body.readinto, body.close

    def passed(chunk: bytes | memoryview) -> None:
        digest.update(digest.position, chunk)
        if not len(chunk):
            digest.close()  # end of stream short of the size: no digest
        if not digest.following:
            restore()

    if asynchronous:
        async def hashing_read(amt: int | None = None) -> bytes:
            data = await read(amt)
            passed(data)
            return data

        async def hashing_readinto(buffer: Any) -> int:
            count = await readinto(buffer)
            passed(memoryview(buffer)[:count])
            return count
    else:
        def hashing_read(amt: int | None = None) -> bytes:  # type: ignore[misc]
            data = read(amt)
            passed(data)
            return data

        def hashing_readinto(buffer: Any) -> int:  # type: ignore[misc]
            count = readinto(buffer)
            passed(memoryview(buffer)[:count])
            return count

    def closing() -> None:  # aiobotocore's aclose calls it too
        restore()
        digest.close()
        close()

    restore = _objects.replace_methods(body, read=hashing_read, readinto=hashing_readinto, close=closing)


_ASYNC_BODIES: dict[type, bool | None] = {}


def _async_body(body: object) -> bool | None:
    """Whether `body`, a botocore StreamingBody, is read with coroutines (aiobotocore's);
    None for anything else. Answered once a type."""
    kind = type(body)
    if kind not in _ASYNC_BODIES:
        import botocore.response  # already imported: the program is running botocore

        _ASYNC_BODIES[kind] = (
            inspect.iscoroutinefunction(getattr(kind, "read", None))
            if issubclass(kind, botocore.response.StreamingBody) else None
        )
    return _ASYNC_BODIES[kind]


def _after_call_error(context: dict, **kwargs: Any) -> None:
    held = context.pop(_CONTEXT_KEY, None)
    if isinstance(held, list):
        for record in held:
            _objects.abandon(record)


def _register(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
    result = wrapped(*args, **kwargs)
    events = args[0] if args else kwargs.get("events")
    with guard("s3 hooks"):
        # provide-client-params: before botocore's own handlers turn a bytes Body into a file.
        events.register("provide-client-params.s3", _before_request, unique_id=f"{_UNIQUE}-before")
        events.register("after-call.s3", _after_call, unique_id=f"{_UNIQUE}-after")
        events.register("after-call-error.s3", _after_call_error, unique_id=f"{_UNIQUE}-error")
    return result


def patch(module: Any) -> None:
    session = module.Session
    if not isinstance(session.__dict__.get("_register_builtin_handlers"), wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(session, "_register_builtin_handlers", _register)
