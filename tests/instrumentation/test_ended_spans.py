"""Batched spans ended straight to the span processors (`_ended_spans`) are the spans the
SDK's `start_span` makes: every processor of the provider (clew's spool and one the user
added) gets the same span, the spool the same bytes, and the sampler has its say."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import SpanContext, TraceFlags, get_current_span

from clew.exporter.processor import ProvenanceSpanProcessor
from clew.exporter.spool import SpoolSpanExporter
from clew.instrumentation import _ended_spans
from clew.instrumentation._process_span import ProcessSpan
from clew.instrumentation._record_spans import Record
from clew.instrumentation._recorder import Recorder
from clew.instrumentation._settings import Settings
from clew.semconv import attributes as attr

# A value length limit no value reaches: the SDK's spans are the same, but `end_span` must
# take the public path, as it would with any limit.
PATHS = {"direct": None, "public": SpanLimits(max_span_attribute_length=1 << 30)}


class CountingIds(IdGenerator):
    """Ids that repeat from run to run, so two runs' spool bytes can be compared."""

    def __init__(self) -> None:
        self.last = 0

    def generate_span_id(self) -> int:
        self.last += 1
        return self.last

    def generate_trace_id(self) -> int:
        self.last += 1
        return self.last << 64


class StartWatcher(SpanProcessor):
    """A user's processor that looks at spans as they start (BaggageSpanProcessor does)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span, parent_context=None) -> None:
        self.started.append(span.name)


class NotingSampler(Sampler):
    """Samples every span and adds an attribute of its own, as a sampler may."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None,
                      links=None, trace_state=None) -> SamplingResult:
        state = get_current_span(parent_context).get_span_context().trace_state
        return SamplingResult(Decision.RECORD_AND_SAMPLE,
                              {**(attributes or {}), "sampler.note": "kept"}, state)

    def get_description(self) -> str:
        return "NotingSampler"


def _records(root: Path) -> list[Record]:
    """Reads in two directories, one with mixed identities and counts, and one batch whose
    file a stamp says another span produced (a link)."""
    records = []
    for index in range(40):
        path = root / f"dir{index % 2}" / f"f{index}.bin"
        record = Record("read", str(path), (7, 1000 + index, 16384, 1_700_000_000_000_000_000))
        record.first_ns = record.last_ns = 1_760_000_000_000_000_000 + index
        record.digest = f"blake3:{index:064x}" if index % 5 else None
        record.identity = "content" if record.digest else "stat"
        record.count = 1 + index % 3
        records.append(record)
    linked = Record("read", str(root / "made" / "out.bin"), (7, 9, 3, 5))
    linked.first_ns = linked.last_ns = 1_760_000_000_000_000_100
    linked.producer = (SpanContext(0xAB << 64, 0xCD, False, TraceFlags(1)), "blake3:" + "e" * 64)
    return records + [linked]


def _emit(tmp_path: Path, path: str, *, sampler=None, extra: SpanProcessor | None = None):
    """Records emitted by a recorder on a provider with clew's spool processor and a user's
    in-memory one; the spool's bytes and the user's spans."""
    # Resource.create, as the SDK's own set-up does: it loads concurrent.futures' thread
    # module before the provider registers its at-fork handler, which in a forked child
    # would otherwise wait on that module's lock before the module's own handler frees it
    # (a later test's fork hung so).
    provider = TracerProvider(
        resource=Resource.create({"service.name": "loader"}), id_generator=CountingIds(),
        span_limits=PATHS[path], **({"sampler": sampler} if sampler else {}),
    )
    spool = tmp_path / path / "spool"
    processor = ProvenanceSpanProcessor(SpoolSpanExporter(spool), schedule_delay=3600)
    memory = InMemorySpanExporter()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    if extra is not None:
        provider.add_span_processor(extra)
    tracer = provider.get_tracer("clew", "1.0")
    settings = Settings(home=tmp_path / path / "home", hashing=True, hash_max_bytes=1 << 30,
                        flush_interval=3600, stamp=False)
    recorder = Recorder(tracer, settings, ProcessSpan(tracer, "fork", None), background=False)
    for record in _records(tmp_path):
        recorder.finished(record)
    recorder.flush()
    processor.force_flush()
    written = b"".join(p.read_bytes() for p in sorted(spool.glob("*")))
    provider.shutdown()
    return tracer, written, memory.get_finished_spans()


def _fields(span) -> tuple:
    return (span.name, span.context, span.parent, dict(span.attributes),
            [(link.context, dict(link.attributes)) for link in span.links], span.start_time,
            span.end_time, span.resource.attributes, span.instrumentation_scope, span.kind,
            span.status.status_code, span.events, span.dropped_attributes)


def test_both_paths_give_every_processor_the_same_spans_and_the_spool_the_same_bytes(tmp_path):
    tracer, direct_bytes, direct_spans = _emit(tmp_path, "direct")
    assert _ended_spans._direct_attributes(tracer, {"a": ["x"]}) is not None
    tracer, public_bytes, public_spans = _emit(tmp_path, "public")
    assert _ended_spans._direct_attributes(tracer, {"a": ["x"]}) is None

    assert [s.name for s in direct_spans] == ["read file"] * 3
    sizes = sorted(len(s.attributes[attr.PROVENANCE_ARTIFACTS_URI]) for s in direct_spans)
    assert sizes == [1, 20, 20]
    assert [_fields(s) for s in direct_spans] == [_fields(s) for s in public_spans]
    assert direct_bytes.count(b"\n") == 1
    assert direct_bytes == public_bytes


def test_a_processor_that_acts_at_start_sees_the_spans_start(tmp_path):
    watcher = StartWatcher()
    tracer, _, spans = _emit(tmp_path, "direct", extra=watcher)
    assert _ended_spans._direct_attributes(tracer, {"a": ["x"]}) is None
    assert watcher.started == ["process"] + ["read file"] * 3
    assert len(spans) == 3


@pytest.mark.parametrize("path", PATHS)
def test_spans_under_an_unsampled_process_span_reach_no_processor(tmp_path, path):
    _, written, spans = _emit(tmp_path, path, sampler=ParentBased(ALWAYS_OFF))
    assert spans == ()
    assert written == b""


def test_a_samplers_own_attributes_are_the_spans_on_both_paths(tmp_path):
    _, direct_bytes, direct_spans = _emit(tmp_path, "direct", sampler=NotingSampler())
    _, public_bytes, public_spans = _emit(tmp_path, "public", sampler=NotingSampler())
    assert [s.attributes["sampler.note"] for s in direct_spans] == ["kept"] * 3
    assert [_fields(s) for s in direct_spans] == [_fields(s) for s in public_spans]
    assert direct_bytes == public_bytes


@pytest.mark.parametrize("in_c", [True, False], ids=["C check", "Python check"])
def test_values_the_sdk_would_change_take_the_public_path(monkeypatch, in_c):
    if in_c and _ended_spans._scalar_tuple is _ended_spans._scalar_tuple_in_python:
        pytest.skip("clew.instrumentation._read_batches was not built")
    if not in_c:
        monkeypatch.setattr(_ended_spans, "_scalar_tuple", _ended_spans._scalar_tuple_in_python)
    tracer = TracerProvider().get_tracer("clew")
    kept = {"a": ("x", 1), "b": 2.5, "c": True, "d": ["y", 2, 0.5, False], "e": []}
    assert _ended_spans._direct_attributes(tracer, kept) == {**kept, "d": ("y", 2, 0.5, False),
                                                             "e": ()}
    for odd in ({"a": [b"x"]}, {"a": None}, {"a": [["x"]]}, {"": "x"}, {"a": {"b": 1}},
                {"a": ["x", None]}, {"a": [type("Name", (str,), {})("x")]}):
        assert _ended_spans._direct_attributes(tracer, odd) is None, odd
