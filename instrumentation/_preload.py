"""What programs that are not Python did with files, through clew's LD_PRELOAD library.

A child that is not an instrumented Python (cp, tar, a shell pipeline, a compiled tool) is
started with `_preload_shim` (C, `_preload_shim.c`) in LD_PRELOAD and a directory of its own,
one per exec span, in CLEW_PRELOAD_DIR. The library, inherited through fork and exec by every
process the child starts, notes each successful open, rename and unlink into a record file per
process image in that directory. When the child has ended (it was waited for, or at this
process's exit for a child never waited for), `ChildRecords.collect` turns the notes into
records the recording core identifies and emits like the file hook's own, as children of the
exec span, with the pid of the process that did the I/O.

Reads carry the (device, inode, size, mtime) the library saw on the opened descriptor: the
digest is taken from the file when clew collects, only if it is still that version (else the
record keeps stat identity). Writes are identified by the file as it is when collected: the
child has ended, so it is its final content.
"""

from __future__ import annotations

import importlib.machinery
import logging
import mmap
import os
import shutil
import stat
import struct
from collections.abc import Hashable
from pathlib import Path

from opentelemetry.context import Context
from opentelemetry.util.types import Attributes

from clew.semconv import attributes as attr
from clew.semconv import environment

from ._digests import StatKey, stat_key
from ._paths import absolute
from ._records import (
    BATCH_MAX_SIZE,
    SPAN_NAMES,
    Record,
    batch_attributes,
    directory_of,
    single_attributes,
)
from ._recorder import Recorder

_logger = logging.getLogger(__name__)

_HEADER = struct.Struct("=IB3xQQqq")  # the C library's record header (_preload_shim.c)
_READ, _WRITE, _RENAME, _DELETE = (ord(c) for c in "RWND")
_PRELOAD_VARIABLE = "LD_PRELOAD"
_BATCHED = ("read", "write")
# The variables a child started through os.environ (os.system, os.spawn*) inherits.
CARRIED = (_PRELOAD_VARIABLE, environment.CLEW_PRELOAD_DIR)


def _find_library() -> str | None:
    """The built library next to this module (built by setup.py for this interpreter)."""
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_preload_shim{suffix}"
        if candidate.is_file():
            return str(candidate)
    return None


_library: str | None = None
_looked = False


def library() -> str | None:
    """The LD_PRELOAD library's path; None (with one warning) when it was not built."""
    global _library, _looked
    if not _looked:
        _looked = True
        _library = _find_library()
        if _library is None:
            _logger.warning(
                "clew: the LD_PRELOAD library was not built with this install (no C compiler?): "
                "programs that are not Python are recorded as opaque execs"
            )
    return _library


class ChildRecord(Record):
    """A record of what a process started by this one did: under its exec span, with its pid."""

    __slots__ = ("pid", "parent")

    def __init__(self, operation: str, path: str, key: StatKey | None, pid: int,
                 parent: Context) -> None:
        super().__init__(operation, path, key)
        self.pid = pid
        self.parent = parent

    def batch_key(self) -> Hashable | None:
        # Writes of small files are batched too, unlike the file hook's: `cp -r` of a tree
        # writes as many files as it reads, and a span each cost clew more than the copy
        # (docs/architecture.md). A batch carries no producer stamp on its files.
        if self.operation in _BATCHED and (self.size or 0) < BATCH_MAX_SIZE:
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


def _key_now(path: str) -> StatKey | None:
    try:
        result = os.stat(path)
    except (OSError, ValueError):
        return None
    return stat_key(result) if stat.S_ISREG(result.st_mode) else None


class _Image:
    """The records of one process image (one program between exec and exit)."""

    def __init__(self, pid: int, parent: Context) -> None:
        self.pid, self.parent = pid, parent
        self.reads: dict[tuple[str, StatKey], ChildRecord] = {}
        self.writes: dict[str, ChildRecord] = {}  # open for writing, content not yet known
        self.done: list[ChildRecord] = []

    def record(self, operation: str, path: str, key: StatKey | None) -> ChildRecord:
        return ChildRecord(operation, path, key, self.pid, self.parent)

    def note(self, operation: int, key: StatKey, path: str, second: str | None) -> None:
        if operation == _READ:
            record = self.reads.get((path, key))
            if record is None:
                self.reads[path, key] = self.record("read", path, key)
            else:
                record.count += 1
        elif operation == _WRITE:
            record = self.writes.get(path)
            if record is None:
                self.writes[path] = self.record("write", path, None)
            else:
                record.count += 1
        elif operation == _RENAME:
            written = self.writes.pop(second, None) if second else None
            if written is not None:
                # A temporary file written and renamed into place (rsync, atomic saves): the
                # content is recorded once, at its final name.
                written.path, written.key = path, key
                self.done.append(written)
            elif second:
                record = self.record("rename", path, key)
                record.source = second
                self.done.append(record)
            else:  # moved in from a place clew does not record
                self.done.append(self.record("write", path, key))
        elif operation == _DELETE:
            written = self.writes.pop(path, None)
            if written is not None:  # written, then removed: its last content, by stat
                written.key = key
                self.done.append(written)
            self.done.append(self.record("delete", path, key))

    def records(self) -> list[ChildRecord]:
        for path, record in self.writes.items():
            record.key = _key_now(path)
            record.identity = "stat" if record.key else "none"
        return [*self.reads.values(), *self.done, *self.writes.values()]


def _parse(data: mmap.mmap, image: _Image, wanted) -> None:  # noqa: ANN001 - PathFilter.wants
    offset, end = 0, len(data) - _HEADER.size
    while offset <= end:
        length, operation, dev, ino, size, mtime = _HEADER.unpack_from(data, offset)
        if operation == 0 or length < _HEADER.size or offset + length > len(data):
            break  # the unused rest of the file, or a record its process died writing
        names = data[offset + _HEADER.size : offset + length].split(b"\0")
        offset += length
        path = absolute(os.fsdecode(names[0]))  # normalised: the library does not
        second = absolute(os.fsdecode(names[1])) if len(names) > 2 and names[1] else None
        if path is None or not wanted(path):
            continue
        if second is not None and not wanted(second):
            second = None
        image.note(operation, (dev, ino, size, mtime), path, second)


def _image_order(path: Path) -> tuple[int, int]:
    # Files are named <pid>-<ns>-<n>.rec: by creation time, then chunk, approximates the
    # order in which the processes ran.
    _, created, chunk = path.stem.split("-")
    return int(created), int(chunk)


class ChildRecords:
    """The record directory of one exec span, and its collection into records."""

    def __init__(self, home: Path, span_id: int, parent: Context) -> None:
        self.directory = home / environment.PRELOAD_DIRNAME / f"{span_id:016x}"
        self.parent = parent

    def prepare(self, env: dict[str, str], shim: str) -> None:
        """Make the directory and have `env` load the library into the child."""
        self.directory.mkdir(parents=True, exist_ok=True)
        inherited = env.get(_PRELOAD_VARIABLE, "")
        # The loader takes the list split by spaces or colons; clew's first, so its
        # wrappers see the program's calls before another preloaded library's.
        others = [p for p in inherited.replace(":", " ").split() if p != shim]
        env[_PRELOAD_VARIABLE] = " ".join([shim, *others])
        env[environment.CLEW_PRELOAD_DIR] = str(self.directory)

    def collect(self, recorder: Recorder, child_pid: int | None) -> bool:
        """Hand the records to `recorder` and remove the directory. True when `child_pid`
        loaded the library (it was not statically linked, nor set-uid)."""
        try:
            files = sorted(self.directory.glob("*.rec"), key=_image_order)
        except OSError:
            return False
        # os.system's child has no known pid: any process of it that loaded the library
        loaded = child_pid is None and bool(files)
        images: list[_Image] = []
        for path in files:
            pid = int(path.name.split("-", 1)[0])
            loaded = loaded or pid == child_pid
            image = _Image(pid, self.parent)
            try:
                # Mapped, not read: the file is sparse and mostly its unused zero tail.
                with open(path, "rb") as handle, mmap.mmap(
                    handle.fileno(), 0, access=mmap.ACCESS_READ
                ) as data:
                    _parse(data, image, recorder.filter.wants)
            except (OSError, ValueError) as error:  # ValueError: an empty file cannot be mapped
                recorder.failed("reading a child's records", error)
                continue
            images.append(image)
        for image in images:
            for record in image.records():
                recorder.recorded(record)
        shutil.rmtree(self.directory, ignore_errors=True)
        return loaded
