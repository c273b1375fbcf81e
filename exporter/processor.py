"""A span processor that never drops a span.

OpenTelemetry's BatchSpanProcessor drops the oldest span when its queue is full: fine for
telemetry, not for provenance. This one batches the same way, but when its queue is full the
producer waits for the exporter thread to catch up (bounded memory, nothing lost). Exports
run with instrumentation suppressed, so the exporter's own I/O is never recorded.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque

from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from clew.semconv import environment

_logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE_SIZE = 8192
DEFAULT_MAX_EXPORT_BATCH_SIZE = 512

_instances: weakref.WeakSet[ProvenanceSpanProcessor] = weakref.WeakSet()


def active_processors() -> list[ProvenanceSpanProcessor]:
    """Every live ProvenanceSpanProcessor of this process."""
    return [processor for processor in _instances if not processor.is_shut_down]


class ProvenanceSpanProcessor(SpanProcessor):
    """Batches ended spans to `exporter`; applies back-pressure instead of dropping."""

    def __init__(
        self,
        exporter: SpanExporter,
        schedule_delay: float | None = None,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        max_export_batch_size: int = DEFAULT_MAX_EXPORT_BATCH_SIZE,
    ) -> None:
        if max_queue_size < 1 or max_export_batch_size < 1:
            raise ValueError("max_queue_size and max_export_batch_size must be positive")
        self.exporter = exporter
        self._delay = schedule_delay if schedule_delay is not None else environment.flush_interval()
        self._max_queue = max_queue_size
        self._batch = max_export_batch_size
        self._failed_spans = 0
        self.is_shut_down = False
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        _instances.add(self)

    def _reset(self) -> None:
        # After a fork the queue holds the parent's spans (the parent exports them) and the
        # worker thread does not exist: start clean.
        self._queue: deque[ReadableSpan] = deque()
        self._condition = threading.Condition(threading.Lock())
        self._export_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._pid = os.getpid()

    def on_end(self, span: ReadableSpan) -> None:
        if self.is_shut_down or not span.context.trace_flags.sampled:
            return
        with self._condition:
            worker = self._worker
            if worker is None or not worker.is_alive():
                worker = self._start_worker()
            while worker is not None and len(self._queue) >= self._max_queue and worker.is_alive():
                self._condition.notify_all()
                self._condition.wait(0.1)
            self._queue.append(span)
            full = len(self._queue) >= self._batch
            if full:
                self._condition.notify_all()
        if full and worker is None:
            self._export_queued()  # no worker to take the batch: export it here

    def _start_worker(self) -> threading.Thread | None:
        """The export thread, started; None in the atexit handlers (clew's final flush among
        them), which the main thread runs once it has finished and every non-daemon thread
        with it: a thread started then would only wait to be stopped, as what ends at exit
        is exported by the `force_flush` and `shutdown` that follow (~1 ms of every
        process's exit). Other threads still running after the main one get the worker."""
        main = threading.main_thread()
        if threading.current_thread() is main and not main.is_alive():
            return None
        self._worker = threading.Thread(target=self._work, name="clew-export", daemon=True)
        self._worker.start()
        return self._worker

    def _work(self) -> None:
        while not self.is_shut_down:
            with self._condition:
                if len(self._queue) < self._batch:
                    self._condition.wait(self._delay)
            self._export_queued()

    def _export_queued(self) -> None:
        with self._export_lock:
            while True:
                with self._condition:
                    if not self._queue:
                        self._condition.notify_all()
                        return
                    count = min(self._batch, len(self._queue))
                    batch = [self._queue.popleft() for _ in range(count)]
                    self._condition.notify_all()
                self._export(batch)

    def _export(self, batch: list[ReadableSpan]) -> None:
        with suppress_instrumentation():
            try:
                result = self.exporter.export(batch)
            except Exception as error:  # noqa: BLE001 - an exporter must not break the host
                _logger.warning("clew: %s failed: %r", type(self.exporter).__name__, error)
                result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self._failed_spans += len(batch)
            _logger.warning(
                "clew: %s could not export %d spans (%d so far); they are lost",
                type(self.exporter).__name__,
                len(batch),
                self._failed_spans,
            )

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued, on the calling thread."""
        if self.is_shut_down:
            return True
        self._export_queued()
        return True

    def shutdown(self) -> None:
        if self.is_shut_down:
            return
        self.force_flush()
        self.is_shut_down = True
        with self._condition:
            self._condition.notify_all()
        self.exporter.shutdown()
