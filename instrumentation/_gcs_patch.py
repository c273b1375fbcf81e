"""What gcs.py patches into google-cloud-storage, imported when the program imports it:
the wrappers that record Blob and Bucket operations."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from clew.semconv import environment

from . import _objects
from ._fsspec_support import follow, learn_details
from ._guard import guard
from ._lifecycle import get_recorder
from ._objects import GCS, ObjectRecord
from ._paths import absolute
from .gcs import UPLOAD_MODULES, _instrumentor

_BLOB_METHODS = {
    "download_as_bytes": "read", "download_to_file": "read", "download_to_filename": "read",
    "upload_from_string": "write", "upload_from_file": "write", "upload_from_filename": "write",
    "delete": "delete", "rewrite": "copy",
}
_BUCKET_METHODS = {"delete_blob": "delete", "copy_blob": "copy"}


def _arg(args: tuple, kwargs: dict, index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _begin(method: str, instance: Any, args: tuple, kwargs: dict) -> ObjectRecord | None:
    operation = _BLOB_METHODS.get(method) or _BUCKET_METHODS[method]
    if method == "delete_blob":
        bucket, name = instance.name, _arg(args, kwargs, 0, "blob_name")
    elif method == "copy_blob":
        source = _arg(args, kwargs, 0, "blob")
        destination = _arg(args, kwargs, 1, "destination_bucket")
        bucket = getattr(destination, "name", None)
        name = _arg(args, kwargs, 2, "new_name") or getattr(source, "name", None)
    else:
        bucket, name = instance.bucket.name, instance.name
    if not isinstance(bucket, str) or not isinstance(name, str):
        return None
    record = _objects.begin(operation, GCS, bucket, name, stamp=operation == "write")
    if method in ("copy_blob", "rewrite"):
        source = _arg(args, kwargs, 0, "blob" if method == "copy_blob" else "source")
        if getattr(source, "bucket", None) is not None:
            record.source = _objects.object_uri(GCS, source.bucket.name, source.name)
    if method == "upload_from_string":
        data = _arg(args, kwargs, 0, "data")
        data = data.encode("utf-8") if isinstance(data, str) else data
        if isinstance(data, (bytes, bytearray)):
            record.io_bytes = record.object_size = len(data)
            record.digest = _objects.digest_of(data)
    if operation == "write":
        _stamp(instance, record)
    return record


def _stamp(blob: Any, record: ObjectRecord) -> None:
    value = _objects.stamp_value(record)
    if value is not None:
        blob.metadata = {**(blob.metadata or {}), environment.STAMP_METADATA_KEY: value}


def _learn(record: ObjectRecord, blob: Any) -> None:
    """What the Blob holds after the call: set from the response, never fetched again."""
    properties = getattr(blob, "_properties", None)
    if isinstance(properties, dict) and properties.get("name") in (None, record.name):
        _learn_resource(record, properties)


def _learn_resource(record: ObjectRecord, resource: dict) -> None:
    size = resource.get("size")
    learn_details(record, {
        **resource, "size": int(size) if str(size).isdigit() else None,
        # A write's metadata is the program's own (and this write's stamp): not a producer.
        "metadata": resource.get("metadata") if record.operation == "read" else None,
    })


def _complete(method: str, record: ObjectRecord, result: Any, instance: Any, args: tuple,
              kwargs: dict) -> None:
    if method == "download_as_bytes" and isinstance(result, bytes):
        record.io_bytes = len(result)
        if _arg(args, kwargs, 1, "start") is None and _arg(args, kwargs, 2, "end") is None:
            record.object_size = len(result)
            record.digest = _objects.digest_of(result)
    local_name = {"download_to_filename": 0, "upload_from_filename": 0}.get(method)
    local = absolute(_arg(args, kwargs, local_name, "filename")) if local_name is not None else None
    if local is not None and os.path.isfile(local):
        record.io_bytes = os.path.getsize(local)
        if _arg(args, kwargs, 2, "start") is None and _arg(args, kwargs, 3, "end") is None:
            record.object_size = record.io_bytes
        recorder = get_recorder()
        # The local side ran suppressed: recorded here as the files instrumentor would.
        if recorder.filter.wants(local) and method == "download_to_filename":
            recorder.opened_for_write(local, keeps_content=False)
        elif recorder.filter.wants(local):
            recorder.read(local)
    blob = result if method in ("copy_blob",) else instance
    if method not in ("delete_blob", "delete"):
        _learn(record, blob)
    _objects.finish(record)


def _wrapper(method: str) -> Callable:
    where = f"gcs {method}"

    def wrapper(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
        if not _instrumentor.active or _objects.suppressed():
            return wrapped(*args, **kwargs)
        record = None
        with guard(where):
            record = _begin(method, instance, args, kwargs)
        if record is None:
            return wrapped(*args, **kwargs)
        with _objects.operation(record):
            try:
                result = wrapped(*args, **kwargs)
            except BaseException:
                _objects.abandon(record)
                raise
        with guard(where):
            _complete(method, record, result, instance, args, kwargs)
        return result

    return wrapper


def _download_headers(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
    """A download response's x-goog-meta-* headers carry the producer stamp."""
    result = wrapped(*args, **kwargs)
    record = _objects.enclosing()
    if _instrumentor.active and record is not None and record.operation == "read":
        with guard("gcs download headers"):
            headers = _arg(args, kwargs, 0, "response").headers
            record.learn(metadata={
                k[len("x-goog-meta-"):].lower(): v
                for k, v in headers.items() if k.lower().startswith("x-goog-meta-")
            })
    return result


def _open(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
    """open("wb"): one write, recorded when the writer closes, digested as it is written."""
    mode = _arg(args, kwargs, 0, "mode") or "r"
    if not _instrumentor.active or _objects.suppressed() or "w" not in mode:
        return wrapped(*args, **kwargs)
    record = _objects.begin("write", GCS, instance.bucket.name, instance.name, stamp=True)
    _stamp(instance, record)
    writer = wrapped(*args, **kwargs)
    follow(getattr(writer, "buffer", writer), record, "wb")  # text mode wraps the BlobWriter
    return writer


def _upload_response(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
    """The response to the last chunk of a resumable upload (a BlobWriter's) is the object's
    resource: its generation, ETag and checksums, which the Blob itself never learns."""
    response = wrapped(*args, **kwargs)
    record = _objects.enclosing()
    if _instrumentor.active and record is not None and record.operation == "write" and instance.finished:
        with guard("gcs upload response"):
            resource = response.json()
            if isinstance(resource, dict) and record.matches(resource.get("bucket"),
                                                             resource.get("name")):
                _learn_resource(record, resource)
    return response


def patch(module: Any) -> None:
    blob_cls = module.Blob
    if isinstance(blob_cls.__dict__.get("download_as_bytes"), wrapt.ObjectProxy):
        return
    for name in _BLOB_METHODS:
        wrapt.wrap_function_wrapper(blob_cls, name, _wrapper(name))
    wrapt.wrap_function_wrapper(blob_cls, "open", _open)
    wrapt.wrap_function_wrapper(blob_cls, "_extract_headers_from_download", _download_headers)


def patch_upload(module: Any) -> None:
    upload_cls = module.ResumableUpload
    if not isinstance(upload_cls.__dict__.get("transmit_next_chunk"), wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(upload_cls, "transmit_next_chunk", _upload_response)


def patch_bucket(module: Any) -> None:
    bucket_cls = module.Bucket
    if not isinstance(bucket_cls.__dict__.get("copy_blob"), wrapt.ObjectProxy):
        for name in _BUCKET_METHODS:
            wrapt.wrap_function_wrapper(bucket_cls, name, _wrapper(name))


def unpatch() -> None:
    blob = sys.modules.get("google.cloud.storage.blob")
    if blob is not None:
        for name in (*_BLOB_METHODS, "open", "_extract_headers_from_download"):
            unwrap(blob.Blob, name)
    bucket = sys.modules.get("google.cloud.storage.bucket")
    if bucket is not None:
        for name in _BUCKET_METHODS:
            unwrap(bucket.Bucket, name)
    for module in filter(None, map(sys.modules.get, UPLOAD_MODULES)):
        unwrap(module.ResumableUpload, "transmit_next_chunk")
