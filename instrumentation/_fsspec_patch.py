"""What fsspec.py patches into fsspec, imported when the program imports fsspec: the
wrappers that record each filesystem's operations."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from clew.semconv.redaction import redact_uri

from . import _fsspec_support, _objects
from ._guard import guard
from ._lifecycle import get_recorder
from ._objects import GCS, S3, ObjectRecord
from ._paths import absolute
from .fsspec import _instrumentor

# Operation of each wrapped method, for its sync and async (`_`-prefixed) spelling.
_OPERATIONS = {
    "cat_file": "read", "pipe_file": "write", "get_file": "read", "put_file": "write",
    "cp_file": "copy", "rm_file": "delete", "rm": "delete", "mv": "rename",
}
_ASYNC = {f"_{name}": operation for name, operation in _OPERATIONS.items()}
_SYNC_ONLY = {"_rm": "delete"}  # memory's sync helper under rm
_patched: list[tuple[type, str]] = []


def _store(fs: Any) -> str:
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return {"s3a": S3, "gs": GCS, "gcs": GCS}.get(protocol, protocol)


def _local(cls: type) -> bool:
    """LocalFileSystem and its kin, by protocol: its module may be half-imported here."""
    protocol = getattr(cls, "protocol", ())
    return "file" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,))


def _skipped(fs: Any) -> bool:
    """Pass straight through: not active, an outer layer records, or a local filesystem."""
    return not _instrumentor.active or _objects.suppressed() or _local(type(fs))


def begin(fs: Any, operation: str, path: object, *, stamp: bool = False) -> ObjectRecord | None:
    """A record for `path` on `fs`, or None for a path clew cannot name."""
    if not isinstance(path, str):
        return None
    stripped = fs._strip_protocol(path)
    if isinstance(stripped, list):
        return None
    store = _store(fs)
    scheme, url, rest = stripped.partition("://")
    if url:  # a URL filesystem (http): the URL names the object, without its credentials
        store, stripped = scheme, redact_uri(stripped).partition("://")[2]
    name = stripped.lstrip("/").partition("?versionId=")[0]
    bucket, _, key = name.partition("/")
    return _objects.begin(operation, store, bucket, key, stamp=stamp)


def _arg(args: tuple, kwargs: dict, index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _whole(args: tuple, kwargs: dict) -> bool:
    return _arg(args, kwargs, 1, "start") is None and _arg(args, kwargs, 2, "end") is None


def _to_expand(method: str, args: tuple, kwargs: dict) -> tuple[Any, bool] | None:
    """The (path, recursive) an rm of a glob or a tree must expand to name what it deletes."""
    if method != "rm":
        return None
    path, recursive = _arg(args, kwargs, 0, "path"), bool(_arg(args, kwargs, 1, "recursive"))
    paths = [path] if isinstance(path, str) else path if isinstance(path, list) else []
    if recursive or any(any(c in p for c in "*?[") for p in paths if isinstance(p, str)):
        return path, recursive
    return None


def _records(fs: Any, method: str, args: tuple, kwargs: dict,
             expanded: list[str] | None = None) -> list[ObjectRecord]:
    """Open the records of a call of `method` (its name without a leading underscore)."""
    operation = _OPERATIONS[method]
    if method == "rm":
        paths = expanded if expanded is not None else _arg(args, kwargs, 0, "path")
        paths = [paths] if isinstance(paths, str) else list(paths or [])
        return [r for r in (begin(fs, "delete", p) for p in paths) if r is not None]
    remote = _arg(args, kwargs, 1, "rpath") if method == "put_file" else args[0] if args else (
        kwargs.get("path") or kwargs.get("path1") or kwargs.get("rpath")
    )
    if method in ("cp_file", "mv"):
        remote = _arg(args, kwargs, 1, "path2")
    record = begin(fs, operation, remote, stamp=operation == "write")
    if record is None:
        return []
    if method in ("cp_file", "mv"):
        source = begin(fs, "list", _arg(args, kwargs, 0, "path1"))
        record.source = source.path if source is not None else None
    if method == "pipe_file":
        value = _arg(args, kwargs, 1, "value")
        if isinstance(value, (bytes, bytearray, memoryview)):
            record.io_bytes = record.object_size = len(value)
            record.digest = _objects.digest_of(value)
    if method == "put_file":
        local = _arg(args, kwargs, 0, "lpath")
        try:
            record.io_bytes = record.object_size = os.path.getsize(local)
        except (OSError, TypeError):
            pass
    if record.store == GCS and operation == "write":
        _fsspec_support.stamp_gcs_kwargs(record, kwargs)
    return [record]


def _complete(method: str, records: list[ObjectRecord], result: Any, args: tuple,
              kwargs: dict, fs: Any) -> None:
    """The call returned: fill in what its result tells, hand the records over, and record
    the local side of a get/put as the files instrumentor would have."""
    if method == "cat_file" and isinstance(result, (bytes, bytearray)):
        record = records[0]
        record.io_bytes = len(result)
        if _whole(args, kwargs):
            record.object_size = len(result)
            if not record.digest_coming():
                record.digest = _objects.digest_of(result)
    recorder = get_recorder()
    if method == "get_file":
        local = absolute(_arg(args, kwargs, 1, "lpath"))
        if local is not None and os.path.isfile(local):
            records[0].io_bytes = records[0].object_size = os.path.getsize(local)
            if recorder.filter.wants(local):
                recorder.opened_for_write(local, keeps_content=False)
    if method == "put_file":
        local = absolute(_arg(args, kwargs, 0, "lpath"))
        if local is not None and recorder.filter.wants(local):
            recorder.read(local)
    for record in records:
        _objects.finish(record)


def _fail(records: list[ObjectRecord]) -> None:
    for record in records:
        _objects.abandon(record)


def _sync_wrapper(method: str) -> Callable:
    where = f"fsspec {method}"

    def wrapper(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
        if _skipped(instance):
            return wrapped(*args, **kwargs)
        records = None
        with guard(where):
            expand, expanded = _to_expand(method, args, kwargs), None
            if expand is not None:
                with _objects.operation(None):
                    expanded = instance.expand_path(expand[0], recursive=expand[1])
            records = _records(instance, method, args, kwargs, expanded)
        if records is None:
            return wrapped(*args, **kwargs)
        with _objects.operation(records[0] if len(records) == 1 else None):
            try:
                result = wrapped(*args, **kwargs)
            except BaseException:
                _fail(records)
                raise
        with guard(where):
            _complete(method, records, result, args, kwargs, instance)
        return result

    return wrapper


def _async_wrapper(method: str) -> Callable:
    where = f"fsspec {method}"

    async def run(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        records = None
        with guard(where):
            expand, expanded = _to_expand(method, args, kwargs), None
            if expand is not None:
                with _objects.operation(None):
                    expanded = await instance._expand_path(expand[0], recursive=expand[1])
            records = _records(instance, method, args, kwargs, expanded)
        if records is None:
            return await wrapped(*args, **kwargs)
        with _objects.operation(records[0] if len(records) == 1 else None):
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException:
                _fail(records)
                raise
        with guard(where):
            _complete(method, records, result, args, kwargs, instance)
        return result

    def wrapper(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
        if _skipped(instance):
            return wrapped(*args, **kwargs)
        return run(wrapped, instance, args, kwargs)

    return wrapper


def _mv(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
    """mv is a copy and a delete inside fsspec: one rename record, from source to target."""
    if _skipped(instance):
        return wrapped(*args, **kwargs)
    record = begin(instance, "rename", _arg(args, kwargs, 1, "path2"))
    source = begin(instance, "list", _arg(args, kwargs, 0, "path1"))
    if record is None or source is None or record.path == source.path:
        return wrapped(*args, **kwargs)
    record.source = source.path
    with _objects.operation(record):
        try:
            result = wrapped(*args, **kwargs)
        except BaseException:
            _objects.abandon(record)
            raise
    _objects.finish(record)
    return result


def _open(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
    mode = _arg(args, kwargs, 1, "mode") or "rb"
    # Text mode reopens in binary through this same method: that inner call records.
    if _skipped(instance) or "b" not in mode:
        return wrapped(*args, **kwargs)
    operation = "read" if "r" in mode and "+" not in mode else "write"
    record = begin(instance, operation, _arg(args, kwargs, 0, "path"), stamp=operation == "write")
    if record is None:
        return wrapped(*args, **kwargs)
    if record.store == GCS and operation == "write":
        _fsspec_support.stamp_gcs_kwargs(record, kwargs)
    with _objects.operation(record):
        try:
            file = wrapped(*args, **kwargs)
        except BaseException:
            _objects.abandon(record)
            raise
    with guard("fsspec open"):
        _fsspec_support.follow(file, record, mode)
    return file


def _gcs_request(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
    """gcsfs's one HTTP entry point: its responses fill in the enclosing record."""
    record = _objects.enclosing()
    if not _instrumentor.active or record is None:
        return wrapped(*args, **kwargs)
    return _learning(wrapped(*args, **kwargs), record)


async def _learning(call: Any, record: ObjectRecord) -> Any:
    result = await call
    with guard("gcsfs response"):
        _fsspec_support.learn_gcs_response(record, result[1], result[3])
    return result


def patch_gcsfs(module: Any) -> None:
    cls = module.GCSFileSystem
    if not isinstance(cls.__dict__.get("_request"), wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(cls, "_request", _gcs_request)
        _patched.append((cls, "_request"))


def _patch_class(cls: type) -> None:
    """Wrap the operations `cls` itself defines (its parents are patched on their own)."""
    if cls.__module__ == "fsspec.spec" or _local(cls):
        return  # the base's sync defaults are mirrored by async filesystems: left as they are
    for name, value in list(vars(cls).items()):
        if isinstance(value, wrapt.ObjectProxy):
            continue
        if name in _ASYNC and inspect.iscoroutinefunction(value):
            wrapper = _async_wrapper(name[1:])
        elif (name in _OPERATIONS or name in _SYNC_ONLY) and inspect.isfunction(value) and not (
            inspect.iscoroutinefunction(value)
        ):
            wrapper = _sync_wrapper(name.lstrip("_"))  # memory's sync `_rm` is an rm
        else:
            continue
        wrapt.wrap_function_wrapper(cls, name, wrapper)
        _patched.append((cls, name))


def _subclass_hook(cls: type, **kwargs: Any) -> None:
    """Runs as each filesystem class is defined, inside the program's import."""
    if not _instrumentor.active:
        return
    with guard("fsspec class"):
        _patch_class(cls)


def patch(module: Any) -> None:
    from fsspec.spec import AbstractFileSystem

    if not isinstance(AbstractFileSystem.__dict__.get("open"), wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(AbstractFileSystem, "open", _open)
        wrapt.wrap_function_wrapper(AbstractFileSystem, "mv", _mv)
    AbstractFileSystem.__init_subclass__ = classmethod(_subclass_hook)  # type: ignore[assignment]
    pending = list(AbstractFileSystem.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        _patch_class(cls)


def unpatch() -> None:
    spec = sys.modules.get("fsspec.spec")
    if spec is None:
        return
    base = spec.AbstractFileSystem
    unwrap(base, "open")
    unwrap(base, "mv")
    if "__init_subclass__" in vars(base):
        del base.__init_subclass__
    while _patched:
        cls, name = _patched.pop()
        unwrap(cls, name)
