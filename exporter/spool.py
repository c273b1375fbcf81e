"""The spool: OTLP JSON Lines, one file per process, in `<CLEW_HOME>/spool/`.

Each line is one ExportTraceServiceRequest (TracesData) in OTLP's JSON encoding, as
OpenTelemetry's file exporter writes it, so the Collector's otlpjsonfile receiver reads it
too. A line is written with a single O_APPEND write: readers see whole lines or, after a
crash mid-write, one torn last line that they skip (a write cut short by a full disk is cut
back off by the writer itself). One file per process means any number of processes, ranks
or hosts on a shared filesystem write without a server.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanContext, TraceFlags

from clew.semconv import attributes as attr
from clew.semconv import environment
from clew.semconv import spans as span_names

from .otlp_encode import encode_json
from .spool_files import SUFFIX, spool_directory

_logger = logging.getLogger(__name__)
_ids = RandomIdGenerator()
_PROCESS_SPANS = (span_names.SPAN_RUN, span_names.SPAN_PROCESS)


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
        self._pending: deque[tuple[bytes, int]] = deque()  # (line, spans in it), oldest first
        self._pending_bytes = 0
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
            line = encode_json(spans, rejected, "\n").encode("ascii")
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
            self._pending_bytes += len(line)
        self._write_pending()
        self._bound_pending()
        return SpanExportResult.SUCCESS

    def _write_pending(self) -> None:
        """Write the waiting lines, oldest first, until one fails."""
        try:
            fd = self._fd if self._fd is not None else self._open()
            while self._pending:
                line, _ = self._pending[0]
                self._write_line(fd, line)
                self._pending.popleft()
                self._pending_bytes -= len(line)
        except OSError as error:
            self._last_error = error

    def _write_line(self, fd: int, line: bytes) -> None:
        if self._torn:
            os.write(fd, b"\n")  # the fragment before becomes a line of its own, skipped
            self._torn = False
        end = os.fstat(fd).st_size  # where the line starts: the file is this process's alone
        data = memoryview(line)
        written = 0
        try:
            while written < len(data):
                written += os.write(fd, data[written:])
        except OSError:
            if written:
                self._cut_back(fd, end)
            raise

    def _cut_back(self, fd: int, end: int) -> None:
        """Remove the start of a line whose write was cut short: a reader would glue the
        next line to it, and lose both."""
        try:
            os.ftruncate(fd, end)
        except OSError:
            self._torn = True

    def _bound_pending(self) -> None:
        while self._pending_bytes > self._pending_max:
            line, count = self._pending.popleft()
            self._pending_bytes -= len(line)
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
            self._write_line(self._fd, (encode_json([record]) + "\n").encode("ascii"))
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
            self._pending_bytes = 0
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


def _loss_message(count: int, where: Path | None, error: BaseException | None) -> str:
    reason = f": {error}" if error is not None else ""
    place = f" to {where}" if where is not None else ""
    return (
        f"clew: {count} spans of provenance records could not be written{place} and are "
        f"lost{reason}"
    )
