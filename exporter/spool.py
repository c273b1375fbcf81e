"""The spool: OTLP JSON Lines, one file per process, in `<CLEW_HOME>/spool/`.

Each line is one ExportTraceServiceRequest (TracesData) in OTLP's JSON encoding, as
OpenTelemetry's file exporter writes it, so the Collector's otlpjsonfile receiver reads it
too. A line is appended (O_APPEND) in one go, 64 KiB a write from a buffer reused line after
line: readers see whole lines or, while it is written or after a crash mid-write, one torn
last line that they skip (a write cut short by a full disk is cut back off by the writer
itself; the file is this process's alone, so no other writer's bytes come between). One file
per process means any number of processes, ranks or hosts on a shared filesystem write
without a server.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanContext, TraceFlags

from clew.semconv import attributes as attr
from clew.semconv import environment
from clew.semconv import spans as span_names

from .otlp_encode import AttributesText, encode_pieces, unicode_json
from .spool_files import SUFFIX, spool_directory

_ascii_into: Callable[[bytearray, list, int, int, int], tuple[int, int, int]] | None
_attributes_into: Callable[..., tuple[int, int, tuple[int, int, int]]] | None
try:  # a line's pieces copied to the file through one reused buffer, in C where it was built
    from ._line_chunks import ascii_into as _ascii_into
except ImportError:  # built without a compiler: joined and encoded in Python
    _ascii_into = None
try:  # a batched span's attributes written into that buffer by C (`AttributesText`)
    from ._attributes_text import attributes_into as _attributes_into
except ImportError:  # built without a compiler: made a str each as the line is encoded
    _attributes_into = None
# attributes_into's states: the piece written to its end; the buffer full; Python goes on.
_PIECE_WRITTEN, _BUFFER_FULL = 1, 2
_TEXT_START = (0, 0, 0)  # where attributes_into begins a piece's text

_logger = logging.getLogger(__name__)
_ids = RandomIdGenerator()
_PROCESS_SPANS = (span_names.SPAN_RUN, span_names.SPAN_PROCESS)
# Where a line's pieces are copied, a buffer at a time, on their way to the file: one, made at
# the first line and reused (`_line_bytes`), by one writer at a time; another (a thread, or a
# signal handler's flush on this one) joins its line in Python meanwhile.
_CHUNK_SIZE = 1 << 16
_chunk: bytearray | None = None
_chunk_lock = threading.Lock()


def _free_chunk_in_child() -> None:
    """A forked child's buffer is free: a thread of its parent's that held it is not there."""
    global _chunk_lock
    _chunk_lock = threading.Lock()


os.register_at_fork(after_in_child=_free_chunk_in_child)


class SpoolSpanExporter(SpanExporter):
    """Writes spans to this process's spool file. Never raises, and loses nothing silently.

    A write cut short (disk full, a file-size limit) is cut back off the file, so the spool
    keeps whole lines only. Its line waits in memory, with any before it, for the next export
    (at most `pending_max_bytes`, else CLEW_SPOOL_PENDING_MAX_BYTES, of them: past that the
    oldest are dropped). Spans dropped so, still unwritten at shutdown or impossible to
    encode are lost: counted, and reported at shutdown in one line on stderr and, if the
    spool takes it, a `spool loss` span under the process span. `export` reports success
    once the exporter has taken the spans, as it accounts for them itself.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        pending_max_bytes: int | None = None,
    ) -> None:
        self._directory = Path(directory) if directory is not None else None
        self._pending_max = (
            pending_max_bytes
            if pending_max_bytes is not None
            else environment.spool_pending_max_bytes()
        )
        self.path: Path | None = None
        self._start_in_this_process()

    def _start_in_this_process(self) -> None:
        # A forked child starts clean: its parent writes the parent's lines, and reports the
        # parent's losses, itself.
        self._pid = os.getpid()
        self._fd: int | None = None
        # (line's text pieces, spans in it), oldest first
        self._pending: deque[tuple[list, int]] = deque()
        self._torn = False  # a cut-short write could not be cut off: start the next line anew
        self.lost = 0
        self._last_error: BaseException | None = None
        self._anchor: ReadableSpan | None = None

    def _open(self) -> int:
        directory = self._directory or spool_directory()
        environment.ensure_home(directory.parent) if self._directory is None else None
        directory.mkdir(parents=True, exist_ok=True)
        # Time first, so a listing is in start order; pid and a random part, so no two
        # processes (on any host sharing the directory) ever share a file.
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{stamp}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        self.path = directory / name
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o644)
        return self._fd

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        if self._pid != os.getpid():
            self._start_in_this_process()
        rejected: list[ReadableSpan] = []
        try:
            line = encode_pieces(spans, rejected, "\n", deferred=_deferring())
        except Exception as error:  # noqa: BLE001 - export never raises
            self._lose(len(spans), error)
            return SpanExportResult.SUCCESS
        if rejected:
            self._lose(len(rejected), None)
            names = sorted({span.name for span in rejected})
            _logger.warning(
                "clew: %d spans (%s) could not be encoded and are left out; the rest of their "
                "batch is written",
                len(rejected),
                ", ".join(names),
            )
        # Where a loss record would go: under this process's span, the parent of its records.
        self._anchor = spans[-1]
        if len(rejected) < len(spans):
            self._pending.append((line, len(spans) - len(rejected)))
        self._write_pending()
        self._bound_pending()
        return SpanExportResult.SUCCESS

    def _write_pending(self) -> None:
        """Write the waiting lines, oldest first, until one fails."""
        try:
            fd = self._fd if self._fd is not None else self._open()
            while self._pending:
                self._write_line(fd, self._pending[0][0])
                self._pending.popleft()
        except OSError as error:
            self._last_error = error

    def _write_line(self, fd: int, line: list) -> None:
        """Write the line whose text is `line`'s pieces joined (ASCII)."""
        if self._torn:
            os.write(fd, b"\n")  # the fragment before becomes a line of its own, skipped
            self._torn = False
        end = os.fstat(fd).st_size  # where the line starts: the file is this process's alone
        written = 0
        chunks = _line_bytes(line)
        try:
            for data in chunks:
                done = 0
                while done < len(data):
                    count = os.write(fd, data[done:])
                    done += count
                    written += count
        except OSError:
            if written:
                self._cut_back(fd, end)
            raise
        finally:
            chunks.close()  # the reused buffer free again, even after an error

    def _cut_back(self, fd: int, end: int) -> None:
        """Remove the start of a line whose write was cut short: a reader would glue the
        next line to it, and lose both."""
        try:
            os.ftruncate(fd, end)
        except OSError:
            self._torn = True

    def _bound_pending(self) -> None:
        """Drop the oldest waiting lines past `pending_max_bytes`. Sized here, where lines wait
        (a write failed), not at every export."""
        if not self._pending:
            return
        sizes = deque(sum(map(len, line)) for line, _ in self._pending)  # ASCII: a byte each
        total = sum(sizes)
        while self._pending and total > self._pending_max:
            _, count = self._pending.popleft()
            total -= sizes.popleft()
            self._lose(count, self._last_error)

    def _lose(self, count: int, error: BaseException | None) -> None:
        self.lost += count
        if error is not None:
            self._last_error = error

    def _record_loss(self, message: str) -> None:
        """Put the loss in the spool itself, where the store shows it, if it can be written
        now (after the space came back); a failure here changes nothing."""
        anchor = self._anchor
        if anchor is None or self._fd is None:
            return
        now = time.time_ns()
        context = SpanContext(
            anchor.context.trace_id,
            _ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        record = ReadableSpan(
            name=span_names.SPAN_SPOOL_LOSS,
            context=context,
            parent=anchor.context if anchor.name in _PROCESS_SPANS else anchor.parent,
            resource=anchor.resource,
            attributes={
                attr.PROVENANCE_CAPTURE_LOST_SPANS: self.lost,
                attr.PROVENANCE_CAPTURE_ERRORS: (message,),
            },
            start_time=now,
            end_time=now,
            instrumentation_scope=anchor.instrumentation_scope,
        )
        try:
            self._write_line(self._fd, encode_pieces([record], None, "\n"))
        except Exception:  # noqa: BLE001 - stderr still says it
            pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._pid == os.getpid() and self._pending:
            self._write_pending()
        return not self._pending

    def shutdown(self) -> None:
        if self._pid != os.getpid():
            return  # a forked child that never exported: nothing of its own to close
        self.force_flush()
        if self._pending:
            self._lose(sum(count for _, count in self._pending), self._last_error)
            self._pending.clear()
        if self.lost:
            message = _loss_message(self.lost, self.path or self._directory, self._last_error)
            self._record_loss(message)
            try:
                sys.stderr.write(message + "\n")  # not logging: the host's may go anywhere
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass  # stderr closed or gone
            self.lost = 0
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd = None


def _deferring() -> bool:
    """Whether a line's batched spans leave their attributes to `_line_bytes` to write."""
    return _ascii_into is not None and _attributes_into is not None


def _line_bytes(pieces: list) -> Iterator[bytes | memoryview]:
    """The bytes of the line of `pieces` (`encode_pieces`), in order: a reused buffer's at a
    time where C copies them (each written before the next is asked for: the buffer is
    refilled), a span's `AttributesText` written into it by C, else, and from a piece C leaves
    on (one with a lone surrogate to rewrite, or not ASCII: its encoding raises, as the joined
    line's did), the join's bytes."""
    global _chunk
    index = offset = 0
    if _ascii_into is not None and _chunk_lock.acquire(blocking=False):
        try:
            if _chunk is None:
                _chunk = bytearray(_CHUNK_SIZE)
            view = memoryview(_chunk)
            filled = 0
            resume = _TEXT_START
            while index < len(pieces):
                index, offset, filled = _ascii_into(_chunk, pieces, index, offset, filled)
                if index < len(pieces) and filled < _CHUNK_SIZE:
                    piece = pieces[index]
                    if type(piece) is not AttributesText or _attributes_into is None:
                        break  # a piece C leaves to Python
                    state, size, resume = _attributes_into(_chunk, filled, piece.pairs, offset,
                                                           resume)
                    filled += size
                    if state == _PIECE_WRITTEN:
                        index, offset, resume = index + 1, 0, _TEXT_START
                        continue
                    offset += size
                    if state != _BUFFER_FULL:
                        break  # C left the rest of the piece to Python
                if filled:
                    yield view[:filled]  # full, or the line's end
                filled = 0
            if filled:
                yield view[:filled]
        finally:
            _chunk_lock.release()
    if index < len(pieces):
        # `offset` is within a piece C wrote in part, whose text before it has no escape to
        # rewrite (C stops at a lone surrogate), and Python writes as C did.
        yield unicode_json("".join(map(str, pieces[index:])))[offset:].encode("ascii")


def _loss_message(count: int, where: Path | None, error: BaseException | None) -> str:
    reason = f": {error}" if error is not None else ""
    place = f" to {where}" if where is not None else ""
    return (
        f"clew: {count} spans of provenance records could not be written{place} and are "
        f"lost{reason}"
    )
