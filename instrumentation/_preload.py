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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation

from clew.semconv import environment

from ._file_digests import StatKey
from ._guard import guard
from ._lifecycle import reset_in_forked_child
from ._preload_images import ProcessImage, note_each
from ._recorder import Recorder

if TYPE_CHECKING:
    import mmap

_logger = logging.getLogger(__name__)

_HEADER_BYTES = 40  # a record's fixed part (_preload_shim.c)
_PRELOAD_VARIABLE = "LD_PRELOAD"
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
    global _read_notes, _stat_keys, _read_versions, _sort_notes, _batch_writes
    try:
        from ._preload_notes import batch_writes, read, read_versions, sort_notes, stat_keys
    except ImportError:
        return None
    _read_notes, _stat_keys, _read_versions = read, stat_keys, read_versions
    _sort_notes, _batch_writes = sort_notes, batch_writes
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
_batch_writes: Callable[..., list[int]] | None = None


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


def parse(data: mmap.mmap, image, wanted,  # noqa: ANN001 - an ProcessImage or like; PathFilter.wants
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
        notes(operations, keys, paths, seconds, wanted, _sort_notes)
    else:
        note_each(image, operations, keys, paths, seconds, wanted)


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
        self._images: dict[str, ProcessImage] = {}  # by record file name
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
                image = self._images[path.name] = ProcessImage(
                    pid, self.parent, recorder.filter.prefixes_only()
                )
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
            paths, keys, parts, records = image.unhashed_reads()
            if not paths:
                continue
            digests = recorder.hash_ahead(paths, keys, _read_versions, large=large)  # type: ignore[arg-type]
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
            [record for name in names for record in self._images[name].records(self._copies, _stat_keys, _batch_writes)]
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
