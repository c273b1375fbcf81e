"""ProvenanceSpanProcessor never drops a span, whatever the load, and exports suppressed."""

from __future__ import annotations

import os
import threading
import time

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from clew.exporter.processor import ProvenanceSpanProcessor


class SlowExporter(SpanExporter):
    """Exports slowly, so producers outrun it and the queue fills."""

    def __init__(self, delay: float = 0.002) -> None:
        self.delay = delay
        self.names: list[str] = []
        self.suppressed: list[bool] = []
        self.shutdowns = 0

    def export(self, spans):
        time.sleep(self.delay)
        self.suppressed.append(
            bool(otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY))
        )
        self.names.extend(s.name for s in spans)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        self.shutdowns += 1


class FailingExporter(SpanExporter):
    def export(self, spans):
        raise RuntimeError("collector away")


def test_a_full_queue_applies_back_pressure_instead_of_dropping():
    exporter = SlowExporter()
    processor = ProvenanceSpanProcessor(exporter, schedule_delay=0.01, max_queue_size=64,
                                        max_export_batch_size=16)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")

    def produce(prefix: str) -> None:
        for i in range(3000):
            tracer.start_span(f"{prefix}{i}").end()

    threads = [threading.Thread(target=produce, args=(p,)) for p in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.force_flush()
    assert len(exporter.names) == 6000
    assert set(exporter.names) == {f"{p}{i}" for p in "ab" for i in range(3000)}


def test_exports_run_with_instrumentation_suppressed():
    exporter = SlowExporter(delay=0)
    processor = ProvenanceSpanProcessor(exporter, schedule_delay=0.01)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("x").end()
    provider.force_flush()
    assert exporter.suppressed and all(exporter.suppressed)


def test_a_failing_exporter_never_raises_into_the_host(caplog):
    provider = TracerProvider()
    provider.add_span_processor(ProvenanceSpanProcessor(FailingExporter(), schedule_delay=0.01))
    provider.get_tracer("t").start_span("x").end()
    assert provider.force_flush()
    assert "could not export 1 spans" in caplog.text


def test_shutdown_is_idempotent_and_flushes():
    exporter = SlowExporter(delay=0)
    processor = ProvenanceSpanProcessor(exporter, schedule_delay=10)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("last").end()
    processor.shutdown()
    processor.shutdown()
    assert exporter.names == ["last"] and exporter.shutdowns == 1


def test_a_forked_child_exports_only_its_own_spans(tmp_path):
    exporter = SlowExporter(delay=0)
    processor = ProvenanceSpanProcessor(exporter, schedule_delay=10)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    tracer.start_span("parent-queued").end()  # still queued at fork time
    out = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:
        try:
            tracer.start_span("child").end()
            provider.force_flush()
            out.write_text(",".join(exporter.names))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    provider.force_flush()
    assert out.read_text() == "child"
    assert exporter.names == ["parent-queued"]
