"""Re-send a stored run over OTLP/HTTP, to look at it in Jaeger, Tempo or a Collector.

`replay` reads every span of one run (one trace id) from `otel_traces`, rebuilds OTLP
`ExportTraceServiceRequest`s from the rows (`rows_to_request`, the inverse of
`clew.exporter.store.rows.spans_to_rows`) and POSTs them as protobuf to `{endpoint}/v1/traces`, a
batch of spans per request. Only OTLP/HTTP is spoken; Jaeger, Tempo and the Collector all
receive it (port 4318 by default).

What comes back is what the table keeps: ids, names, kinds, start and end times to the
nanosecond, status, attributes, events and links, each span under its resource (resource
attributes and service name) and instrumentation scope (name and version). Schema URLs,
span flags and dropped-item counts are not stored, so they are not sent.

Attribute values: `otel_traces` keeps every value as a string, so types are put
back by one rule:

1. The attributes clew records whose type is not string (`_TYPES`: ints such as
   `process.pid` and `provenance.artifact.size`, booleans such as `provenance.vcs.dirty`,
   arrays such as `provenance.artifacts.uri` and `process.command_args`, with the types of
   semconv/registry/provenance.yaml and of OpenTelemetry's conventions) get that type back.
2. Every other attribute of clew's vocabulary (`clew.semconv.attributes`) stays a string.
3. Any other attribute becomes an array when its text is a JSON array of scalars (pdata's
   `["a","b"]`, or rotel's `{"values":[...]}`); otherwise it stays a string. Numbers and
   booleans of attributes clew does not know are not guessed: `"007"` may be a string.

Array elements take their JSON types (string, bool, int, double). A value that does not
parse as its type (an int attribute holding `abc`) is sent as the string it is.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from clew.exporter.otlp_json import decode_value
from clew.exporter.store.schema import SchemaOptions, qualified_name
from clew.semconv.redaction import redact_text
from clew.semconv import attributes as attr

try:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "clew replay needs opentelemetry-proto: pip install 'clew[store]'"
    ) from error

DEFAULT_BATCH_SIZE: Final = 1000
"""Spans per OTLP request: well under the 4 MiB that gRPC receivers accept by default."""

_TYPES: Final[Mapping[str, str]] = {
    # OpenTelemetry's attributes that clew records (OpenTelemetry semantic conventions).
    attr.FILE_SIZE: "int",
    attr.SERVER_PORT: "int",
    attr.PROCESS_PID: "int",
    attr.PROCESS_PARENT_PID: "int",
    attr.PROCESS_EXIT_CODE: "int",
    attr.PROCESS_COMMAND_ARGS: "string[]",
    # clew's own, as semconv/registry/provenance.yaml types them (a test keeps them equal).
    attr.PROVENANCE_VCS_DIRTY: "boolean",
    attr.PROVENANCE_VCS_DIFF_FILES: "string[]",
    attr.PROVENANCE_ENV_PACKAGES: "string[]",
    attr.PROVENANCE_CODE_FILES: "string[]",
    attr.PROVENANCE_CODE_DIGESTS: "string[]",
    attr.PROVENANCE_IO_COUNT: "int",
    attr.PROVENANCE_ARTIFACT_SIZE: "int",
    attr.PROVENANCE_ARTIFACT_MTIME: "int",
    attr.PROVENANCE_IO_BYTES: "int",
    attr.PROVENANCE_ARTIFACT_CHECKSUMS: "string[]",
    attr.PROVENANCE_ARTIFACTS_URI: "string[]",
    attr.PROVENANCE_ARTIFACTS_DIGEST: "string[]",
    attr.PROVENANCE_ARTIFACTS_SIZE: "int[]",
    attr.PROVENANCE_ARTIFACTS_IDENTITY: "string[]",
    attr.PROVENANCE_ARTIFACTS_COUNT: "int[]",
    attr.PROVENANCE_ARTIFACTS_VERSION: "string[]",
    attr.PROVENANCE_ARTIFACTS_ETAG: "string[]",
    attr.PROVENANCE_ARTIFACTS_CHECKSUMS: "string[]",
    attr.PROVENANCE_ARTIFACTS_BYTES: "int[]",
    attr.PROVENANCE_PRODUCER_STAMPED: "boolean",
    attr.PROVENANCE_RANK: "int",
    attr.PROVENANCE_LOCAL_RANK: "int",
    attr.PROVENANCE_WORLD_SIZE: "int",
    attr.PROVENANCE_NODE_RANK: "int",
    attr.PROVENANCE_WORKER_ID: "int",
    attr.PROVENANCE_EXEC_TRACED: "boolean",
    attr.PROVENANCE_EXEC_REPLACED: "boolean",
    attr.PROVENANCE_CAPTURE_ERRORS: "string[]",
    attr.PROVENANCE_CAPTURE_LOST_SPANS: "int",
    attr.PROVENANCE_METRICS_NAME: "string[]",
    attr.PROVENANCE_METRICS_VALUE: "double[]",
    attr.PROVENANCE_METRICS_STEP: "int[]",
    attr.PROVENANCE_METRICS_LEFT_OUT: "int",
    attr.PROVENANCE_CONFIG_KEY: "string[]",
    attr.PROVENANCE_CONFIG_VALUE: "string[]",
}
"""Attributes clew records whose type is not string; the rest of its vocabulary is strings."""

_STRINGS: Final = frozenset(
    value for name, value in vars(attr).items() if name.isupper() and isinstance(value, str)
) - _TYPES.keys()

# Both spellings the table holds: pdata's names and the older proto enum names.
_KINDS: Final = {
    "Unspecified": 0, "Internal": 1, "Server": 2, "Client": 3, "Producer": 4, "Consumer": 5,
    "SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
}
_STATUS: Final = {"Unset": 0, "Ok": 1, "Error": 2, "STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1,
                  "STATUS_CODE_ERROR": 2}
_NO_SPAN: Final = bytes(8)
_NO_TRACE: Final = bytes(16)
# OTLP/HTTP's retryable answers (the OTLP specification), tried this many times in all.
_RETRYABLE: Final = frozenset({429, 502, 503, 504})
_ATTEMPTS: Final = 3


def _scalar(value: Any) -> AnyValue:
    # bool before int: bool is an int subclass. An int beyond int64 raises ValueError.
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def _array(text: str) -> list[Any] | None:
    """The scalars of an array attribute's text, or None when it is not one."""
    try:
        if text.startswith("["):
            items = json.loads(text)
        elif text.startswith('{"values":'):  # rotel writes the OTLP JSON of the ArrayValue
            items = decode_value({"arrayValue": json.loads(text)})
        else:
            return None
    except (ValueError, TypeError, AttributeError, KeyError):
        return None
    if isinstance(items, list) and all(isinstance(i, (str, int, float)) for i in items):
        return items
    return None


def attribute_value(key: str, text: str) -> AnyValue:
    """The typed AnyValue of one stored attribute, by the rule in the module docstring."""
    kind = _TYPES.get(key)
    if kind is None and key in _STRINGS:
        return AnyValue(string_value=text)
    try:
        if kind is None or kind.endswith("[]"):
            items = _array(text)
            if items is not None:
                return AnyValue(array_value=ArrayValue(values=[_scalar(i) for i in items]))
        elif kind == "int":
            return AnyValue(int_value=int(text))
        elif kind == "double":
            return AnyValue(double_value=float(text))
        elif kind == "boolean" and text in ("true", "false"):
            return AnyValue(bool_value=text == "true")
    except ValueError:
        pass
    return AnyValue(string_value=text)


def _key_values(attributes: Mapping[str, str]) -> list[KeyValue]:
    return [KeyValue(key=key, value=attribute_value(key, text)) for key, text in
            attributes.items()]


def _span(row: Sequence[Any]) -> Span:
    (start, trace_id, span_id, parent_id, trace_state, name, kind, _service, _resource,
     _scope, _version, attributes, duration, status, status_message, event_times,
     event_names, event_attributes, link_trace_ids, link_span_ids, link_states,
     link_attributes) = row
    span = Span(
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent_id),
        trace_state=trace_state,
        name=name,
        kind=_KINDS.get(kind, 0),
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration,
        attributes=_key_values(attributes),
        status=Status(code=_STATUS.get(status, 0), message=status_message),
    )
    for time_ns, event_name, attributes in zip(event_times, event_names, event_attributes):
        span.events.add(time_unix_nano=time_ns, name=event_name,
                        attributes=_key_values(attributes))
    for link_trace, link_span, state, attributes in zip(link_trace_ids, link_span_ids,
                                                        link_states, link_attributes):
        # '' is an all-zero id in the table; a link always carries both ids.
        span.links.add(trace_id=bytes.fromhex(link_trace) or _NO_TRACE,
                       span_id=bytes.fromhex(link_span) or _NO_SPAN, trace_state=state,
                       attributes=_key_values(attributes))
    return span


def rows_to_request(rows: Iterable[Sequence[Any]]) -> ExportTraceServiceRequest:
    """One ExportTraceServiceRequest holding these otel_traces rows, grouped by resource and
    scope: the inverse of `clew.exporter.store.rows.spans_to_rows`.

    Args:
        rows: Tuples in `clew.exporter.store.rows.INSERT_COLUMNS` order with timestamps as ints of
            nanoseconds, as `spans_to_rows` makes them and `replay` reads them.

    Returns:
        The request. Spans of one resource (its attributes and ServiceName, which becomes
        `service.name` if the attributes lack it) share one ResourceSpans, and spans of one
        scope within it one ScopeSpans; spans keep the rows' order within their scope.
        Attribute values are typed by the rule in the module docstring.
    """
    resources: dict[tuple[Any, ...], dict[tuple[str, str], list[Span]]] = {}
    for row in rows:
        service, resource, scope_name, scope_version = row[7], row[8], row[9], row[10]
        key = (service, *sorted(resource.items()))
        scopes = resources.setdefault(key, {})
        scopes.setdefault((scope_name, scope_version), []).append(_span(row))
    request = ExportTraceServiceRequest()
    for (service, *items), scopes in resources.items():
        resource = dict(items)
        if service and attr.SERVICE_NAME not in resource:
            resource[attr.SERVICE_NAME] = service
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(_key_values(resource))
        for (scope_name, scope_version), spans in scopes.items():
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = scope_name
            scope_spans.scope.version = scope_version
            scope_spans.spans.extend(spans)
    return request


def traces_url(endpoint: str) -> str:
    """The URL to POST traces to: `endpoint` with `/v1/traces` added, unless it ends so.

    Raises:
        ValueError: Not an http(s) URL, or it holds a user name or password (send those in a
            header, which is never printed).
    """
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"OTLP endpoint {redact_text(endpoint)!r} is not an http(s) URL like "
                         "http://localhost:4318")
    if parts.username is not None or parts.password is not None:
        raise ValueError("put credentials for the OTLP endpoint in a header "
                         "(--header Authorization=...), not in its URL")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/traces"):
        path += "/v1/traces"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _shown(url: str) -> str:
    """A URL for messages: without its query string, which may hold a token."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _one_line(body: bytes, limit: int = 200) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wait(retry_after: str | None, attempt: int) -> float:
    try:
        return min(float(retry_after or ""), 30.0)
    except ValueError:
        return float(2**attempt)


def _post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> None:
    """POST one request; raise ConnectionError or OSError with a one-line message."""
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={**headers, "Content-Type": "application/x-protobuf"},
    )
    for attempt in range(_ATTEMPTS):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer, content_type = response.read(), response.headers.get("Content-Type", "")
            break
        except urllib.error.HTTPError as error:
            if error.code in _RETRYABLE and attempt + 1 < _ATTEMPTS:
                time.sleep(_wait(error.headers.get("Retry-After"), attempt))
                continue
            # The body is a protobuf google.rpc.Status or text; only text is worth showing.
            detail = "" if "protobuf" in (error.headers.get("Content-Type") or "") else (
                _one_line(error.read()))
            raise OSError(f"{_shown(url)} answered {error.code} {error.reason}"
                          + (f": {detail}" if detail else "")) from None
        except urllib.error.URLError as error:
            raise ConnectionError(f"cannot reach {_shown(url)}: {error.reason}") from None
        except OSError as error:  # a timeout or reset while reading the answer
            raise ConnectionError(f"cannot reach {_shown(url)}: {error}") from None
    if answer and "protobuf" in content_type:
        partial = ExportTraceServiceResponse.FromString(answer).partial_success
        if partial.rejected_spans:
            raise OSError(f"{_shown(url)} rejected {partial.rejected_spans} spans: "
                          f"{_one_line(partial.error_message.encode()) or 'no reason given'}")


def _where(options: SchemaOptions) -> str:
    # The trace's first and last second from the Collector's lookup table (as Grafana does)
    # narrow the read to the partitions that hold it; a trace the table lacks is read whole.
    lookup = qualified_name(options, options.trace_id_ts_table)
    return f"""
WITH (SELECT (min(Start), max(End)) FROM {lookup} WHERE TraceId = %(run)s) AS bounds
SELECT {{columns}}
FROM {qualified_name(options, options.traces_table)}
WHERE TraceId = %(run)s
  AND (bounds.2 = toDateTime(0) OR Timestamp BETWEEN bounds.1 AND bounds.2 + 1)"""


# INSERT_COLUMNS, with times as ints of nanoseconds and enum names as plain strings.
_COLUMNS: Final = """toUnixTimestamp64Nano(Timestamp), TraceId, SpanId, ParentSpanId,
    TraceState, toString(SpanName), toString(SpanKind), toString(ServiceName),
    ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
    toString(StatusCode), StatusMessage,
    arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`), `Events.Name`,
    `Events.Attributes`, `Links.TraceId`, `Links.SpanId`, `Links.TraceState`,
    `Links.Attributes`"""


def _batches(blocks: Iterable[Sequence[Sequence[Any]]], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for block in blocks:
        for row in block:
            batch.append(row)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def replay(
    client: Any,
    run_id: str,
    endpoint: str,
    *,
    options: SchemaOptions | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Send every span of a stored run to an OTLP/HTTP endpoint.

    Spans are read oldest first, each span once (a row stored twice is sent once), and
    POSTed as protobuf, `batch_size` spans per request. A batch the endpoint answers with
    429, 502, 503 or 504 is tried again (three tries in all, after Retry-After or 1 s, 2 s).

    Args:
        client: A clickhouse-connect client (`clew.exporter.store.connection.connect`).
        run_id: The run's trace id, 32 hex digits (`clew.query.runs.resolve_run` finds it
            from a prefix).
        endpoint: The OTLP/HTTP base URL (`http://localhost:4318`); `/v1/traces` is added
            unless the URL ends with it already.
        options: Where the tables are.
        headers: HTTP headers for every request (e.g. `Authorization`).
        timeout: Seconds to wait for the endpoint, per request.
        batch_size: Spans per request.
        progress: Called as `progress(sent, total)` before the first request and after each.

    Returns:
        The number of spans sent.

    Raises:
        ValueError: `run_id`, `endpoint` or `batch_size` is malformed.
        LookupError: The store holds no span of the run.
        ConnectionError: The endpoint cannot be reached (refused, timed out, reset).
        OSError: The endpoint answered with a status other than 2xx, or rejected spans.
            Batches sent before stay sent.
    """
    options = options or SchemaOptions()
    run = run_id.lower()
    if len(run) != 32 or any(c not in "0123456789abcdef" for c in run):
        raise ValueError(f"{run_id!r} is not a run id (32 hex digits)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    url = traces_url(endpoint)
    sql, parameters = _where(options), {"run": run}
    total = client.query(sql.format(columns="uniqExact(SpanId)"),
                         parameters=parameters).result_rows[0][0]
    if not total:
        raise LookupError(f"the store holds no span of run {run}")
    if progress:
        progress(0, total)
    sent = 0
    query = sql.format(columns=_COLUMNS) + "\nORDER BY Timestamp, SpanId\nLIMIT 1 BY SpanId"
    with client.query_row_block_stream(query, parameters=parameters) as blocks:
        for rows in _batches(blocks, batch_size):
            _post(url, rows_to_request(rows).SerializeToString(), headers or {}, timeout)
            sent += len(rows)
            if progress:
                progress(sent, total)
    return sent
