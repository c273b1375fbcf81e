"""blake3 of bytes as a program streams them, large chunks hashed off the reading thread.

Every capture source that digests a stream in passing (botocore bodies, s3transfer downloads,
fsspec files read or written) feeds a `Stream`. Hashing 256 MiB takes ~50 ms of one core
here; on the reading thread that adds to every large object the program reads (boto3
reading 2 x 256 MiB from SeaweedFS: x1.16, benchmarks/RESULTS.md). Chunks of at least `_BACKGROUND_MIN` bytes that
nobody can change (`bytes`) go instead to one background thread, which hashes them in order
while the program goes on: blake3 releases the GIL while it hashes. Small chunks, the hot path
of small objects, are hashed on the calling thread as before, unless earlier chunks of the same
stream are still waiting (order is kept); a buffer the program may reuse (readinto's bytearray
or memoryview) is hashed on the calling thread once the stream's earlier chunks are done.

blake3 is single-threaded here and in `_file_digests`: `max_threads=AUTO` runs on rayon's global
pool, whose threads a forked child does not have, so a child that hashes with AUTO after its
parent did hangs forever (DataLoader workers fork). The background thread, its lock and its
queue start over in a forked child; streams begun in the parent give up there. The queue holds
at most `_QUEUE_MAX_BYTES` (or one larger chunk); a reader that finds it full waits.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import blake3

from clew.semconv.digests import blake3_id

from ._guard import guard

_BACKGROUND_MIN = 1 << 20  # smaller chunks: hashing (~0.2 ms a MiB) costs less than a hand-off
_QUEUE_MAX_BYTES = 256 << 20
_WAIT = 60.0  # longest a reader waits for the background thread before giving up the digest

Done = Callable[[str | None], None]


def digest(data: bytes | bytearray | memoryview) -> str:
    """`blake3:<hex>` of bytes held whole, on the calling thread."""
    return blake3_id(blake3.blake3(data).hexdigest())


def small(data: bytes | bytearray | memoryview) -> bool:
    """Whether a chunk is hashed on the calling thread rather than handed off."""
    return len(data) < _BACKGROUND_MIN


def digest_here(data: bytes | bytearray | memoryview) -> str | None:
    """`digest`, for a hook: a failure is recorded and gives None, never raises."""
    with guard("hashing"):
        return digest(data)
    return None


class _Worker:
    """The one background hashing thread of this process and its bounded queue."""

    def __init__(self) -> None:
        self.changed = threading.Condition(threading.Lock())
        self.jobs: deque[tuple[Stream, bytes | None, Done | None]] = deque()
        self.queued_bytes = 0
        self.unfinished = 0  # jobs queued or being hashed
        self.thread: threading.Thread | None = None
        self.closed = False

    def submit(self, stream: Stream, data: bytes | None, done: Done | None = None) -> bool:
        """Queue a chunk (or the stream's end); False when the thread cannot take it."""
        size = len(data) if data is not None else 0
        with self.changed:
            while self.queued_bytes and self.queued_bytes + size > _QUEUE_MAX_BYTES:
                if self.closed or not self.changed.wait(_WAIT):
                    return False
            if self.closed:
                return False
            if self.thread is None:
                thread = threading.Thread(target=self._run, name="clew-hasher", daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # at interpreter shutdown: the readers hash from now on
                    self.closed = True
                    return False
                self.thread = thread
            self.jobs.append((stream, data, done))
            self.queued_bytes += size
            self.unfinished += 1
            stream.queued += 1
            self.changed.notify_all()
        return True

    def _run(self) -> None:
        while True:
            with self.changed:
                while not self.jobs:
                    self.changed.wait()
                stream, data, done = self.jobs.popleft()
            try:
                stream.run(data, done)
            finally:
                with self.changed:
                    self.queued_bytes -= len(data) if data is not None else 0
                    self.unfinished -= 1
                    stream.queued -= 1
                    self.changed.notify_all()

    def wait(self, stream: Stream | None = None, timeout: float = _WAIT) -> bool:
        """Wait until `stream`'s queued chunks (or all, given None) are hashed."""
        with self.changed:
            return self.changed.wait_for(
                lambda: not (stream.queued if stream is not None else self.unfinished), timeout
            )

    def close(self, timeout: float) -> None:
        """Hash what is queued, then take no more: later chunks are hashed by their reader
        (at exit the background thread may be frozen before it could run again)."""
        self.wait(timeout=timeout)
        with self.changed:
            self.closed = True
            self.changed.notify_all()


_worker = _Worker()


def after_fork_in_child() -> None:
    """In a forked child: a new worker; the parent's thread is not here."""
    global _worker
    _worker = _Worker()  # the parent's thread is not here; its lock may have been held



def finish_all(timeout: float = _WAIT) -> None:
    """At exit, before the last records are emitted: finish the digests under way."""
    _worker.close(timeout)


class Stream:
    """blake3 of one stream, fed in order with `update` and ended with `finish`."""

    __slots__ = ("hasher", "queued", "failed", "worker")

    def __init__(self) -> None:
        self.hasher = blake3.blake3()
        self.queued = 0  # chunks on the background thread's queue or being hashed
        self.failed = False
        self.worker = _worker

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Add the next chunk. Never raises: a failure leaves the stream without a digest."""
        if self.failed or not self._here():
            return
        with guard("hashing") as attempt:
            large = type(data) is bytes and (self.queued or len(data) >= _BACKGROUND_MIN)
            if large and self.worker.submit(self, data):
                return
            if self.queued and not self.worker.wait(self):
                self.failed = True  # earlier chunks not hashed in time: no digest, never a wrong one
                return
            self.hasher.update(data)
        if attempt.failed_here:
            self.failed = True

    def finish(self, done: Done) -> None:
        """Call `done` with the digest of every chunk (None if there is none) once all are
        hashed: now, or on the background thread after the last queued chunk."""
        if not self._here():
            self.run(None, done)  # failed: reports None
            return
        with guard("hashing") as attempt:
            if self.queued and self.worker.submit(self, None, done):
                return
            if self.queued and not self.worker.wait(self):
                self.failed = True
        if attempt.failed_here:
            self.failed = True
        self.run(None, done)

    def result(self) -> str | None:
        """The digest of every chunk, on the calling thread once the queued ones are hashed
        (None if there is none): for a write, whose digest goes out with its upload."""
        found: list[str | None] = []
        if self._here() and self.queued and not self.worker.wait(self):
            self.failed = True
        self.run(None, found.append)
        return found[0] if found else None

    def cancel(self) -> None:
        """The stream was abandoned: its queued chunks need no hashing."""
        self.failed = True

    def run(self, data: bytes | None, done: Done | None) -> None:
        """Hash a chunk and/or report the digest (on whichever thread's turn it is)."""
        with guard("hashing") as attempt:
            if data is not None and not self.failed:
                self.hasher.update(data)
            if done is not None:
                done(None if self.failed else blake3_id(self.hasher.hexdigest()))
        if attempt.failed_here:
            self.failed = True

    def _here(self) -> bool:
        # Begun in this process? A forked child's copy of a parent's stream misses the chunks
        # on the parent's queue, and its hasher may be locked by the parent's thread.
        if self.worker is _worker:
            return True
        self.failed = True
        return False
