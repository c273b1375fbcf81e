"""Wrappers for library entry points that are given a file's path and open it in native code.

`reads` and `writes` make a wrapt wrapper that finds the path among the call's arguments,
records the read (or the write, whose content the recorder digests once it settles) through
the recorder like a Python open, and runs the call as one operation: the layers under it
(Python's open, another hook) record nothing of their own. A call given anything else (a file
object, a buffer, a remote URI, a `filesystem` other than the local one) passes straight
through, for the layer that does the I/O to record.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from ._instrumentor import ClewInstrumentor, Wrapper, inner_layers_suppressed, recording
from ._paths import absolute
from ._recorder import Recorder

def local_path(value: object) -> str | None:
    """The absolute local path `value` names (str, bytes, PathLike or a file:// URI); None
    for anything else: a file object, a buffer, an object-store or other URI."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    elif not isinstance(value, str):
        if not isinstance(value, os.PathLike):
            return None
        value = os.fspath(value)
        if isinstance(value, bytes):
            value = os.fsdecode(value)
    if "://" in value:
        if not value.startswith("file://"):
            return None
        value = value[len("file://"):]
        if not value.startswith("/"):  # file://host/path
            value = "/" + value.partition("/")[2]
    return absolute(value)


def local_filesystem(filesystem: object) -> bool:
    """Whether a `filesystem` argument (pyarrow's, polars', ...) leaves paths local: none
    given, or pyarrow's LocalFileSystem. Any other is a remote store's, whose own hooks
    (fsspec, the object stores) record the call."""
    return filesystem is None or getattr(filesystem, "type_name", None) == "local"


def argument(args: tuple, kwargs: dict, position: int, keyword: str) -> object:
    """The call's argument at `position` or named `keyword`; None when not given."""
    if len(args) > position:
        return args[position]
    return kwargs.get(keyword)


def record_paths(
    instrumentor: ClewInstrumentor, where: str, paths: Iterable[str],
    action: Callable[[Recorder, str], None],
) -> None:
    """Record `action` on each wanted path of `paths` (absolute, local)."""
    def record(recorder: Recorder) -> None:
        wants = recorder.filter.wants
        for path in paths:
            if wants(path):
                action(recorder, path)

    instrumentor.record(where, record)


def record_read(recorder: Recorder, path: str) -> None:
    recorder.read(path)


def record_write(recorder: Recorder, path: str) -> None:
    """A write that replaces the file's content; the recorder digests it once it settles."""
    recorder.opened_for_write(path, keeps_content=False)


def _append(recorder: Recorder, path: str) -> None:
    recorder.opened_for_write(path, keeps_content=True)


def _update(recorder: Recorder, path: str) -> None:
    recorder.read(path)
    recorder.opened_for_write(path, keeps_content=True)


# What opening a file in a mode records, for APIs with Python's modes ("rb", "w", "r+", ...).
_MODE_ACTIONS = {"r": record_read, "w": record_write, "a": _append, "x": record_write}


def mode_action(mode: object) -> Callable[[Recorder, str], None]:
    """The recording of an open in `mode`: a read, a write, an append, or "+" both."""
    text = mode if isinstance(mode, str) else "r"
    if "+" in text:
        return _update
    return next((_MODE_ACTIONS[c] for c in text if c in _MODE_ACTIONS), record_read)


def _path_wrapper(
    instrumentor: ClewInstrumentor, where: str, position: int, keyword: str,
    action: Callable[[tuple, dict], Callable[[Recorder, str], None]],
) -> Wrapper:
    def wrapper(wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
        # Not active: a wrapper `uninstrument()` could not remove, as a module bound it by
        # name at import (`from safetensors import safe_open`).
        if not recording() or not instrumentor.active:
            return wrapped(*args, **kwargs)
        path = local_path(argument(args, kwargs, position, keyword))
        if path is None or not local_filesystem(kwargs.get("filesystem")):
            return wrapped(*args, **kwargs)
        record_paths(instrumentor, where, (path,), action(args, kwargs))
        with inner_layers_suppressed():
            return wrapped(*args, **kwargs)

    return wrapper


def reads(instrumentor: ClewInstrumentor, where: str, position: int, keyword: str) -> Wrapper:
    """A wrapper recording a read of the local file named by argument `position`/`keyword`."""
    return _path_wrapper(instrumentor, where, position, keyword, lambda args, kwargs: record_read)


def writes(instrumentor: ClewInstrumentor, where: str, position: int, keyword: str) -> Wrapper:
    """A wrapper recording a write of the local file named by argument `position`/`keyword`."""
    return _path_wrapper(instrumentor, where, position, keyword, lambda args, kwargs: record_write)


def opens(
    instrumentor: ClewInstrumentor, where: str, position: int, keyword: str,
    mode_position: int, mode_keyword: str, default_mode: str = "r",
) -> Wrapper:
    """A wrapper recording an open of the named local file in the mode the call gives."""
    def action(args: tuple, kwargs: dict) -> Callable[[Recorder, str], None]:
        mode = argument(args, kwargs, mode_position, mode_keyword)
        return mode_action(default_mode if mode is None else mode)

    return _path_wrapper(instrumentor, where, position, keyword, action)


def suppressing(wrapped: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Call `wrapped` as one operation whose inner layers record nothing."""
    with inner_layers_suppressed():
        return wrapped(*args, **kwargs)
