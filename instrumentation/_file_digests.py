"""Content digests of local files, memoised across runs.

The cache is keyed by (device, inode, size, mtime_ns): a file whose key is unchanged is the
same content, so a re-run hashes nothing. It is one append-only text file shared by every
process; whole lines are appended with O_APPEND writes of whole lines, which concurrent
processes on a local filesystem do not interleave.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

import blake3

from clew.semconv.digests import BLAKE3_PREFIX, blake3_id

StatKey = tuple[int, int, int, int]
_T = TypeVar("_T")

_cache_lines_into: Callable[[bytearray, list, int], tuple[int, int]] | None
try:  # the cache's new lines written in C where it was built (~5k instructions a line less)
    from ._read_batches import cache_lines_into as _cache_lines_into
except ImportError:  # built without a compiler, or not on Linux
    _cache_lines_into = None
_add_lines: Callable[[bytes, int, int, dict, dict], tuple[dict, dict, int]] | None
try:  # the cache file's lines parsed in C where it was built (~35 -> ~10 ms for 20,000 lines)
    from ._digest_cache_text import add_lines as _add_lines
except ImportError:  # built without a compiler
    _add_lines = None

_LARGE = 1 << 20  # below this, one read() of the whole file
# A large file is read into one buffer of this size, again and again: ~27 ms of CPU to read
# and hash 64 MiB here, against ~37 ms for 8 MiB reads into new bytes objects (each a fresh
# mapping, faulted in page by page, then unmapped: system time) (docs/architecture.md).
_CHUNK = 1 << 20
_CACHE_FILENAME = "digests-v1.txt"
# The cache file is read in pieces of this size: it grows run after run, and one read of it
# whole would hold all of it in memory at once.
_LOAD_CHUNK = 1 << 20
# A cache file larger than this is rewritten at the next save with only the entries kept in
# memory (at most 2 x MEMORY_ENTRIES, ~7 MB): every process that reads a file loads the whole
# file, and appended to run after run, it would grow without end.
_REWRITE_BYTES = 32 << 20
# Digests kept in memory: between this many and twice as many. An entry costs ~350 bytes, and
# a program that reads a million files would hold them all (and the whole file, loaded). A file
# whose entry was dropped is hashed again, ~7 us for a small one.
MEMORY_ENTRIES = 1 << 15


def stat_key(result: os.stat_result) -> StatKey:
    """The identity of one content version of a file, as far as stat can tell."""
    return (result.st_dev, result.st_ino, result.st_size, result.st_mtime_ns)


def hash_file(path: str, expected: StatKey) -> str | None:
    """blake3 digest of a regular file, or None when it is not the version `expected` names.

    The descriptor is checked after hashing (and, for a large file, before): if the file was
    another version when opened, or changed meanwhile, the digest would describe content
    nobody read, so none is returned. Whether the path still names this inode afterwards does
    not matter: the digest is that of the version `expected` names, whatever the path holds
    now. Small files are read through a bare descriptor in one read of exactly their size (no
    file object: ~4 us less a file; a larger read buffer costs ~0.6 us more, and a file that
    grows is caught by the check anyway).
    """
    return _of_version(path, expected, _hash)


def read_version(path: str, expected: StatKey) -> bytes | None:
    """The whole content of a small regular file, or None when it is not the version
    `expected` names (checked after the read, as `hash_file` does): for the metric and
    config files clew parses, whose parse must describe the content the record names."""
    return _of_version(path, expected, _read_whole)


def _of_version(path: str, expected: StatKey, work: Callable[[int, int], _T | None]) -> _T | None:
    """`work(fd, size)` on the file at `path`, if it is a regular file of the version
    `expected` names after the work; else None.

    A small file is checked after its one read only: a file that was another version when
    opened, or changed during the read, differs from `expected` then too (another inode, or
    its mtime moved), and a check before as well cost a system call on every first read of
    a data loader's files. A large one is checked before too, so that nothing is read in vain
    (nor forever: /dev/zero). O_NONBLOCK: should the path have become a FIFO or a device
    since it was stat-ed, neither the open nor a read waits on it (no effect on a regular
    file); the check refuses what was read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError):
        return None
    try:
        if expected[2] >= _LARGE and not _is_version(os.fstat(fd), expected):
            return None
        result = work(fd, expected[2])
        if result is None or not _is_version(os.fstat(fd), expected):
            return None
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return result


def _is_version(result: os.stat_result, expected: StatKey) -> bool:
    # Field by field, not stat_key(result) == expected: this runs in the hook for every
    # small file read first, and the tuple and the call cost more than the comparisons.
    return (result.st_ino == expected[1] and result.st_mtime_ns == expected[3]
            and result.st_size == expected[2] and result.st_dev == expected[0]
            and stat.S_ISREG(result.st_mode))


def _read_whole(fd: int, size: int) -> bytes | None:
    data = os.read(fd, size)
    return data if len(data) == size else None  # a short read (a network filesystem)


def _hash(fd: int, size: int) -> str | None:
    if size >= _LARGE:
        # Read in chunks, never mmap: the host may truncate the file while we hash, and a
        # mapped page past the new end raises SIGBUS, which kills the whole process. A
        # short read is caught by the stat check after. One thread: blake3's AUTO pool hangs
        # a forked child that hashes after its parent did (see _stream_digests).
        hasher = blake3.blake3()
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        while count := os.readv(fd, [buffer]):
            hasher.update(view[:count])
        return blake3_id(hasher.hexdigest())
    data = os.read(fd, size)  # not _read_whole: a call fewer in the hook
    return None if len(data) != size else BLAKE3_PREFIX + blake3.blake3(data).hexdigest()


def content_digest(data: bytes) -> str:
    """The digest of a small file's whole content, read by the caller (`hash_file`'s)."""
    return BLAKE3_PREFIX + blake3.blake3(data).hexdigest()


def cache_lines(entries: list[StatKey | str]) -> bytes:
    """The digest cache file's lines of `entries` (keys and their digests, alternately):
    "dev ino size mtime digest", in Python."""
    lines = [f"{dev} {ino} {size} {mtime} {digest}\n"
             for (dev, ino, size, mtime), digest in zip(entries[::2], entries[1::2])]
    return "".join(lines).encode("ascii")


# Where C writes the lines, a buffer at a time, before they go to the file: one, made at the
# first save and reused, not new bytes per save (each page of a new buffer was a page fault in
# a forked worker's exit, ~3 us on this VM, ~100 of them for a DataLoader worker's ~1,900
# lines); by one writer at a time, another (a thread, or a signal handler's flush on this
# one) writes its lines in Python meanwhile.
_LINES_BUFFER_SIZE = 1 << 16
_lines_buffer: bytearray | None = None
_lines_buffer_lock = threading.Lock()


def _free_lines_buffer_in_child() -> None:
    """A forked child's buffer is free: a thread of its parent's that held it is not there."""
    global _lines_buffer_lock
    _lines_buffer_lock = threading.Lock()


os.register_at_fork(after_in_child=_free_lines_buffer_in_child)


def write_cache_lines(fd: int, entries: list[StatKey | str], *, in_c: bool = True) -> None:
    """Append the cache lines of `entries` to `fd`, whole lines in each write: written by C
    into a reused buffer where it was built (`in_c`), by `cache_lines` for what C leaves."""
    global _lines_buffer
    done = 0
    if in_c and _cache_lines_into is not None and _lines_buffer_lock.acquire(blocking=False):
        try:
            if _lines_buffer is None:
                _lines_buffer = bytearray(_LINES_BUFFER_SIZE)
            view = memoryview(_lines_buffer)
            while done < len(entries) - 1:
                done, size = _cache_lines_into(_lines_buffer, entries, done)
                if not size:
                    break  # an entry C leaves to Python
                _write_whole(fd, view[:size])
        finally:
            _lines_buffer_lock.release()
    if done < len(entries) - 1:
        _write_whole(fd, cache_lines(entries[done:]))


def _write_whole(fd: int, data: bytes | memoryview) -> None:
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])


class _Memo:
    """A map that keeps its most recently used entries only: two generations of at most
    `size` entries, the older dropped whole when the newer fills (a hit in the older moves
    the entry to the newer). Cheaper in the hook than a true LRU, and as bounded."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.new: dict[StatKey, str] = {}
        self.old: dict[StatKey, str] = {}

    def promoted(self, key: StatKey) -> str | None:
        """The entry of `key` in the older generation, moved to the newer; None if absent."""
        value = self.old.pop(key, None)
        if value is not None:
            self[key] = value
        return value

    def __setitem__(self, key: StatKey, value: str) -> None:
        if len(self.new) >= self.size:
            self.old, self.new = self.new, {}
        self.new[key] = value


def _add_line(entries: _Memo, line: bytes) -> None:
    """One line of the cache file stored in `entries`, unless it is not a whole line of five
    fields whose first four are integers."""
    fields = line.split()
    # A last line without its newline is torn (its writer crashed): left out.
    if len(fields) != 5 or not line.endswith(b"\n"):
        return
    try:
        key = (int(fields[0]), int(fields[1]), int(fields[2]), int(fields[3]))
    except ValueError:
        return
    entries[key] = fields[4].decode("ascii", "replace")


def _add_text(handle: BinaryIO, entries: _Memo, add_lines: Callable[..., tuple]) -> None:
    """The cache file's lines stored in `entries` as `_add_line` stores them: by `add_lines`
    (C), but for a line not of the form the cache writes, which `_add_line` reads."""
    tail = b""
    while chunk := handle.read(_LOAD_CHUNK):
        text = tail + chunk if tail else chunk
        start = 0
        while True:
            entries.old, entries.new, start = add_lines(
                text, start, entries.size, entries.old, entries.new)
            end = text.find(b"\n", start)
            if end < 0:
                break
            _add_line(entries, text[start:end + 1])
            start = end + 1
        tail = text[start:]
    # A tail left at the end has no newline: a torn line, left out as `_add_line` would.


class DigestCache:
    """Persistent (device, inode, size, mtime_ns) -> digest map under `<home>/cache/`, of
    which the most recently used entries are kept in memory.

    The C audit hook (_open_hook.c) looks a first read up itself, as `get` does, in
    `_entries.new`, and leaves the rest (not loaded yet, an older generation) to `get`."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / _CACHE_FILENAME
        self._directory = directory
        self._entries: _Memo | None = None
        # Formatted only at save, on clew's worker: put() runs in the host's file hook.
        # Keys and digests alternately, not a (key, digest) tuple each: a child's 10,000 files
        # made as many tuples, tracked by the collector until a collection, whose
        # allocations set off ~30 young collections (with _preload_notes.c's keys, a full one).
        # Extended by one call, an entry is never split by save() on another thread.
        self._unsaved: list[StatKey | str] = []
        self._oversized = False  # the file loaded was past _REWRITE_BYTES

    def _load(self, *, in_c: bool = True) -> _Memo:
        """The newest entries of the cache file (it keeps growing, run after run), its lines
        parsed in C where it was built (`in_c`), else line by line in Python."""
        entries = _Memo(MEMORY_ENTRIES)
        try:
            handle = open(self._path, "rb")
        except FileNotFoundError:
            return entries
        with handle:
            self._oversized = os.fstat(handle.fileno()).st_size > _REWRITE_BYTES
            if in_c and _add_lines is not None:
                _add_text(handle, entries, _add_lines)
            else:
                for line in handle:
                    _add_line(entries, line)
        return entries

    def get(self, key: StatKey) -> str | None:
        """The digest recorded for `key`, loading the cache file on first use."""
        entries = self._entries
        if entries is None:
            entries = self._entries = self._load()
        # The newer generation first, in line: the hook asks on every first open.
        value = entries.new.get(key)
        if value is None and entries.old:
            value = entries.promoted(key)
        return value

    def known(self, keys: list[StatKey], sources: list[StatKey | None] | None,
              ) -> list[str | None]:
        """`get` of each of `keys`, or where it has none that of its source (`sources`, parallel:
        the version each is a whole copy of, or None), then `put` for it: a batch of a
        child's files in one call, not three calls a file (`cp -r` writes 10,000)."""
        entries = self._entries
        if entries is None:
            entries = self._entries = self._load()
        new, promoted = entries.new, entries.promoted
        found: list[str | None] = []
        for key, source in zip(keys, sources or [None] * len(keys)):
            digest = new.get(key)
            if digest is None:
                digest = promoted(key) if entries.old else None
                if digest is None and source is not None:
                    digest = new.get(source) or (promoted(source) if entries.old else None)
                    if digest is not None:
                        entries[key] = digest
                        self._unsaved.extend((key, digest))
            found.append(digest)
        return found

    def put_all(self, keys: list[StatKey], digests: list[str | None]) -> None:
        """`put` of each key with its digest (a None left out): a batch at once."""
        if self._entries is None:
            self._entries = self._load()
        entries, unsaved = self._entries, self._unsaved
        for key, digest in zip(keys, digests):
            if digest is not None:
                entries[key] = digest
                unsaved += key, digest

    def put(self, key: StatKey, digest: str) -> None:
        """Remember the digest of a key `get` did not know; it reaches the file at the next
        `save`. (Two threads hashing one file at once may both put it: a line twice in the
        file, which loading takes as one.)"""
        if self._entries is None:
            self._entries = self._load()
        self._entries[key] = digest
        self._unsaved.extend((key, digest))

    def after_fork_in_child(self) -> None:
        """A forked child keeps the entries it inherited but not its parent's unsaved ones:
        the parent saves those itself, and rewrites the file if it is too large."""
        self._unsaved = []
        self._oversized = False

    def save(self) -> None:
        """Append new entries to the cache file, whole lines in each write."""
        # Swap the list out first: the host's threads may put() while this writes.
        unsaved, self._unsaved = self._unsaved, []
        if self._oversized and self._entries is not None and self._rewrite(self._entries):
            return
        if not unsaved:
            return
        self._directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            write_cache_lines(fd, unsaved)
        finally:
            os.close(fd)

    def _rewrite(self, entries: _Memo) -> bool:
        """Replace the cache file with `entries` (which hold every unsaved entry still kept):
        True if it was. Lines another process appends to the old file meanwhile are lost,
        which costs that file a hash at its next first read, never a wrong digest."""
        self._oversized = False
        # list() of each generation at once: a host thread's put() may add to it meanwhile.
        kept = [item for generation in (entries.old, entries.new)
                for pair in list(generation.items()) for item in pair]
        temporary = self._path.with_name(f"{_CACHE_FILENAME}.{os.getpid()}.new")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                write_cache_lines(fd, kept)
            finally:
                os.close(fd)
            os.replace(temporary, self._path)
        except OSError:  # a full disk, say: the new entries are appended as usual instead
            temporary.unlink(missing_ok=True)
            return False
        return True
