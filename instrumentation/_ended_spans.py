"""Batched spans handed, ended, straight to the tracer provider's span processors.

`Tracer.start_span` copies every attribute value through the SDK's BoundedAttributes, one
Python call per element of every array: for a batched "read file" span (five arrays of up to
512 entries) that was ~40 % of the flush's cost per record (docs/architecture.md). clew makes
those arrays itself, of str and int only, so `end_span` makes the very span the SDK would,
a `ReadableSpan` with the arrays as tuples (what BoundedAttributes stores), and gives it to
the processors' `on_end`, without the per-element copy.

It does so only where the result is the same as the SDK's, and otherwise takes the public
path (`start_span` then `end`). The direct path needs (private SDK API, each looked up and
checked; anything missing or different means the public path):
- an SDK `Tracer` that is enabled, with its `span_processor` a multi-processor of the SDK
  whose `_span_processors` all have the SDK's empty `on_start` and `_on_ending` (those are
  handed the writable span, which this path never makes; a processor that does something
  there gets the public path);
- span limits that change nothing here: no value length limit, room for every attribute;
- no links (their attributes go through BoundedAttributes too; rare: a stamp's producer);
- attribute values the SDK stores as they are: str, int, float, bool scalars, and lists or
  tuples of those.
The sampler is asked as `start_span` asks it, and its decision, trace state and attributes
are the span's; the tracer's own metrics see the span start and end.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    Tracer,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

_MULTI_PROCESSORS = (SynchronousMultiSpanProcessor, ConcurrentMultiSpanProcessor)
# The SDK's processors' hooks that do nothing; clew's own processor inherits SpanProcessor's.
_EMPTY_HOOKS = frozenset(
    getattr(processor, hook, None)
    for processor in (SpanProcessor, SimpleSpanProcessor, BatchSpanProcessor)
    for hook in ("on_start", "_on_ending")
) - {None}
_SCALARS = frozenset((str, int, float, bool))
_ARRAYS = (list, tuple)


def _scalar_tuple_in_python(value: list | tuple) -> tuple | None:
    """`value` as a tuple if its elements are all of `_SCALARS`, else None."""
    return tuple(value) if _SCALARS.issuperset(map(type, value)) else None


try:  # the same in C where it was built: per element, a call and a set look-up in Python
    from ._read_batches import scalar_tuple as _scalar_tuple
except ImportError:  # built without a compiler, or not on Linux
    _scalar_tuple = _scalar_tuple_in_python
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_RANDOM_TRACE_ID = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)


def end_span(
    tracer: trace.Tracer, name: str, context: Context, start: int, end: int,
    attributes: dict, links: Sequence[Link],
) -> None:
    """End an INTERNAL span of `name` under `context`, from `start` to `end`: what
    `tracer.start_span(...)` then `.end(end_time=end)` would do, directly where it can."""
    stored = None if links else _direct_attributes(tracer, attributes)
    if stored is None:
        span = tracer.start_span(
            name, context=context, start_time=start, attributes=attributes, links=links
        )
        span.end(end_time=end)
        return
    _end_direct(tracer, name, context, start, end, attributes, stored)  # type: ignore[arg-type]


def _direct_attributes(tracer: trace.Tracer, attributes: dict) -> dict | None:
    """The attributes as the SDK would store them, when the direct path gives the SDK's
    span (see the module's docstring); None: take the public path."""
    if type(tracer) is not Tracer:
        return None
    is_enabled = getattr(tracer, "_is_enabled", None)
    if is_enabled is None or not is_enabled():
        return None
    processor = tracer.span_processor
    if type(processor) not in _MULTI_PROCESSORS:
        return None
    processors = getattr(processor, "_span_processors", None)
    if processors is None:
        return None
    for each in processors:
        kind = type(each)
        if getattr(kind, "on_start", None) not in _EMPTY_HOOKS or getattr(
                kind, "_on_ending", None) not in _EMPTY_HOOKS:
            return None
    limits = getattr(tracer, "_span_limits", None)
    if limits is None or limits.max_span_attribute_length is not None or (
            limits.max_span_attributes is not None
            and len(attributes) > limits.max_span_attributes):
        return None
    stored = {}
    for key, value in attributes.items():
        kind = type(value)
        if kind in _ARRAYS:
            value = _scalar_tuple(value)
            if value is None:
                return None
        elif kind not in _SCALARS:
            return None
        if type(key) is not str or not key:
            return None
        stored[key] = value
    return stored


def _end_direct(
    tracer: Tracer, name: str, context: Context, start: int, end: int, attributes: dict,
    stored: dict,
) -> None:
    """`Tracer.start_span` and `Span.end` of the SDK for a span with no links, its
    attributes `stored` already as BoundedAttributes would keep them."""
    parent: SpanContext | None = trace.get_current_span(context).get_span_context()
    ids = tracer.id_generator
    if parent is None or not parent.is_valid:
        parent = None
        trace_id = ids.generate_trace_id()
        random_trace_id = ids.is_trace_id_random()
    else:
        trace_id = parent.trace_id
        random_trace_id = getattr(parent.trace_flags, "random_trace_id", False)
    sampled = tracer.sampler.should_sample(context, trace_id, name, SpanKind.INTERNAL,
                                           attributes, ())
    decision = sampled.decision
    flags = _SAMPLED if decision.is_sampled() else _NOT_SAMPLED
    if random_trace_id:
        flags = TraceFlags(flags | _RANDOM_TRACE_ID)
    span_context = SpanContext(trace_id, ids.generate_span_id(), is_remote=False,
                               trace_flags=flags, trace_state=sampled.trace_state)
    metrics = getattr(tracer, "_tracer_metrics", None)
    record_end = metrics.start_span(parent, decision) if metrics is not None else None
    if not decision.is_recording():
        return  # a NonRecordingSpan: its end reaches no processor
    if sampled.attributes != attributes:  # a sampler that set attributes of its own
        stored = BoundedAttributes(tracer._span_limits.max_span_attributes, sampled.attributes,
                                   immutable=True, max_value_len=None)
    span = ReadableSpan(
        name=name, context=span_context, parent=parent, resource=tracer.resource,
        attributes=stored, kind=SpanKind.INTERNAL,
        instrumentation_info=tracer.instrumentation_info, start_time=start, end_time=end,
        instrumentation_scope=getattr(tracer, "_instrumentation_scope", None),
    )
    if record_end is not None:
        record_end()
    tracer.span_processor.on_end(span)
