"""OTLP JSON -> otel_traces rows inside ClickHouse: the spool's bytes parsed by the store's C++.

`rows.spans_to_rows` converts a spool line in Python; here the same conversion is one
`INSERT ... SELECT` that reads the lines from a staging table, parses each once with
`JSONExtract` into nested tuples, and writes one row per span into a second staging table,
with the line it came from and whether the line converted. Every value is encoded as
`rows.py` encodes it (its docstring says how); where that would take more than a few string
functions (a double, a key-value list, bytes, a base64 id, an escape in a string other than
`\\"` and `\\\\`, a JSON null, an enum written as a float...), the line is not converted
here at all: it is marked, and ingest hands it to `rows.spans_to_rows`, which converts it or
sets it aside as before. So a line converted here gives exactly the rows `rows.py` gives
(tests/store/test_sql_rows.py checks both on a realistic spool and on lines of every kind),
and clew's own lines, whose values are strings, ints, bools and arrays of strings or ints,
are all converted here.
"""

from __future__ import annotations

from typing import Final

from .rows import INSERT_COLUMNS

STAGE_LINES: Final = "clew_ingest_lines"

# What JSONExtract reads of a line. Strings the Collector's columns take verbatim are
# Nullable so that a missing key and a JSON null (a line for rows.py) differ; ints that OTLP
# JSON may write as a string or a number are read as their text; enums as Int64 or String.
# arrayValue is a Variant of one type so that a missing one is NULL: an empty list is "[]".
_LIST = "Tuple(values Array(Tuple(stringValue Nullable(String), intValue Nullable(String))))"
_VALUE = ("Tuple(stringValue Nullable(String), intValue Nullable(String), "
          f"boolValue Nullable(Bool), arrayValue Variant({_LIST}))")
_ATTRIBUTES = f"Array(Tuple(key String, value {_VALUE}))"
_ENUM = "Variant(Int64, String)"
_SPAN = (
    "Tuple(traceId Nullable(String), spanId Nullable(String), parentSpanId Nullable(String), "
    "traceState Nullable(String), name Nullable(String), kind " + _ENUM + ", "
    "startTimeUnixNano Nullable(String), endTimeUnixNano Nullable(String), "
    f"attributes {_ATTRIBUTES}, "
    "events Array(Tuple(timeUnixNano Nullable(String), name Nullable(String), "
    f"attributes {_ATTRIBUTES})), "
    "links Array(Tuple(traceId Nullable(String), spanId Nullable(String), "
    f"traceState Nullable(String), attributes {_ATTRIBUTES})), "
    f"status Tuple(code {_ENUM}, message Nullable(String)))"
)
_REQUEST = (
    f"Tuple(resourceSpans Array(Tuple(resource Tuple(attributes {_ATTRIBUTES}), "
    "scopeSpans Array(Tuple(scope Tuple(name Nullable(String), version Nullable(String)), "
    f"spans Array({_SPAN}))))))"
)

# A line rows.py would treat differently from plain JSON extraction, found in its text:
# a value kind converted only in Python; a JSON null; a boolValue or intValue of another
# JSON type or form; an escape other than \" and \\ (control characters, \u escapes, lone
# surrogates: Python's json and ClickHouse differ on some, and orjson re-escapes them).
# Inside a JSON string a quote is escaped, so these only match the JSON's own structure.
# Not checked (a regex each key would cost 0.2 s per 100k spans): a string field (a name,
# a key, a stringValue) holding a number, a bool or an object, which is no OTLP: rows.py
# fails on it and sets the line aside, chDB stores the value's JSON text.
_PYTHON_ONLY = (
    r'"(?:doubleValue|kvlistValue|bytesValue)"|:null'
    r'|"boolValue":[^tf]'
    # an escape (after a run of escaped backslashes) that is not \" or \\
    r'|(?:^|[^\\])(?:\\\\)*\\[^"\\]'
    # an int that is not a string of decimal digits as Python's str(int) writes them
    r'|"intValue":(?:[^"]|"-0|"-[^1-9]|"[^-0-9]|"0[0-9]|"-?[0-9]+[^0-9"])'
    # a list or an object where OTLP has the other, or a list's first item not an object
    r'|"(?:resourceSpans|scopeSpans|spans|attributes|events|links|values)":[^\[]'
    r'|"(?:resource|scope|status|value|arrayValue)":[^{]|\[[^{\]]'
    # an attribute whose value comes before its key (or that has none: rows.py refuses it)
    r'|\{"value":'
)
_TIME_LIMIT = 1 << 63  # otlp_json.TIME_LIMIT: where DateTime64(9) ends
_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
_STATUS = ("Unset", "Ok", "Error")


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _enum(names: tuple[str, ...], proto: str) -> tuple[str, str]:
    """(the name, whether rows.py gives the same) for an enum read as `_ENUM`: its number
    (0 when missing), or its protobuf name (`SPAN_KIND_SERVER`)."""
    numbers = "[" + ", ".join(_quote(n) for n in names) + "]"
    protos = "[" + ", ".join(_quote(f"{proto}_{n.upper()}") for n in names) + "]"
    name = (f"multiIf(isNull(e), {numbers}[1], variantType(e) = 'Int64', "
            f"if(variantElement(e, 'Int64') BETWEEN 0 AND {len(names) - 1}, "
            f"arrayElement({numbers}, toUInt64(variantElement(e, 'Int64')) + 1), ''), "
            f"arrayElement({numbers}, indexOf({protos}, variantElement(e, 'String'))))")
    same = f"(isNull(e) OR variantType(e) = 'Int64' OR has({protos}, variantElement(e, 'String')))"
    return name, same


_KIND_NAME, _KIND_OK = _enum(_KINDS, "SPAN_KIND")
_STATUS_NAME, _STATUS_OK = _enum(_STATUS, "STATUS_CODE")


def _functions() -> str:
    """WITH-clause lambdas: each value, id and time as rows.py writes it, and whether
    rows.py gives the same (else the line goes to rows.py)."""
    # A value is a list when it has no stringValue (which rows.py takes first) and has an
    # arrayValue; lists are few, so they are set apart and only they pay for their JSON
    # (ClickHouse computes every branch of an `if` over a whole column).
    as_list = (
        "v -> if(arrayAll(x -> isNotNull(x.1), clew_items(v)), "
        # strings: compact JSON, then Go's escapes for HTML and line separators
        "replaceAll(replaceAll(replaceAll(replaceAll(replaceAll("
        "concat('[', arrayStringConcat(arrayMap(x -> concat('\"', "
        "replaceAll(replaceAll(assumeNotNull(x.1), '\\\\', '\\\\\\\\'), '\"', '\\\\\"'), '\"'), "
        "clew_items(v)), ','), ']'), "
        "'<', '\\\\u003c'), '>', '\\\\u003e'), '&', '\\\\u0026'), "
        "'\u2028', '\\\\u2028'), '\u2029', '\\\\u2029'), "
        # ints, checked decimal by the line's text
        "concat('[', arrayStringConcat(arrayMap(x -> assumeNotNull(x.2), clew_items(v)), ','), ']'))"
    )
    return ", ".join([
        f"v -> variantElement(v.4, {_quote(_LIST)}).1 AS clew_items",
        "v -> isNull(v.1) AND isNotNull(v.4) AS clew_is_list",
        "v -> coalesce(v.1, v.2, if(v.3, 'true', 'false')) AS clew_scalar",
        f"{as_list} AS clew_list",
        # rows.py's value: the first of stringValue, or the one kind there is
        "v -> isNotNull(v.1) OR (isNotNull(v.2) + isNotNull(v.3)) = 1 AS clew_scalar_ok",
        "v -> isNull(v.2) AND isNull(v.3) AND (arrayAll(x -> isNotNull(x.1), clew_items(v)) "
        "OR arrayAll(x -> isNotNull(x.2), clew_items(v))) AS clew_list_ok",
        # Keys sorted bytewise, values as strings; a duplicate key goes to rows.py.
        "a -> CAST(arraySort(arrayConcat("
        "arrayMap(p -> (p.1, clew_scalar(p.2)), arrayFilter(p -> NOT clew_is_list(p.2), a)), "
        "arrayMap(p -> (p.1, clew_list(p.2)), arrayFilter(p -> clew_is_list(p.2), a)))), "
        "'Map(String, String)') AS clew_map",
        "a -> arrayAll(p -> clew_scalar_ok(p.2), arrayFilter(p -> NOT clew_is_list(p.2), a)) "
        "AND arrayAll(p -> clew_list_ok(p.2), arrayFilter(p -> clew_is_list(p.2), a)) "
        "AND arrayUniq(arrayMap(p -> p.1, a)) = length(a) AS clew_map_ok",
        "(i, zeros) -> if(lower(ifNull(i, '')) = zeros, '', lower(ifNull(i, ''))) AS clew_id",
        # 32 or 16 hex digits (a UUID's text without dashes, which parses faster than a
        # regex matches), or none
        "i -> length(ifNull(i, '')) IN (0, 32) AND (ifNull(i, '') = '' "
        "OR isNotNull(toUUIDOrNull(ifNull(i, '')))) AS clew_id32_ok",
        "i -> length(ifNull(i, '')) IN (0, 16) AND (ifNull(i, '') = '' "
        "OR isNotNull(toUUIDOrNull(concat(ifNull(i, ''), ifNull(i, ''))))) AS clew_id16_ok",
        "t -> toUInt64OrZero(ifNull(t, '0')) AS clew_time",
        # digits (or a `+` first, which int() takes too) that DateTime64(9) holds
        f"t -> isNull(t) OR (length(t) <= 19 AND ifNull(toUInt64OrNull(t), {_TIME_LIMIT}) "
        f"< {_TIME_LIMIT}) AS clew_time_ok",
        f"e -> {_KIND_NAME} AS clew_kind",
        f"e -> {_KIND_OK} AS clew_kind_ok",
        f"e -> {_STATUS_NAME} AS clew_status",
        f"e -> {_STATUS_OK} AS clew_status_ok",
    ])


# What must hold of a span `s` (its events, links) for rows.py to agree.
_SPAN_CHECKS: Final = (
    "clew_id32_ok(s.1)", "clew_id16_ok(s.2)", "clew_id16_ok(s.3)",
    "clew_kind_ok(s.6)", "clew_time_ok(s.7)", "clew_time_ok(s.8)",
    "clew_map_ok(s.9)",
    "(empty(s.10) OR arrayAll(e -> clew_time_ok(e.1) AND clew_map_ok(e.3), s.10))",
    "(empty(s.11) OR arrayAll(l -> clew_id32_ok(l.1) AND clew_id16_ok(l.2) AND clew_map_ok(l.4), s.11))",
    "clew_status_ok(s.12.1)",
)


def _columns() -> dict[str, str]:
    zeros32, zeros16 = _quote("0" * 32), _quote("0" * 16)
    return {
        "Timestamp": "fromUnixTimestamp64Nano(toInt64(clew_time(s.7)))",
        "TraceId": f"clew_id(s.1, {zeros32})",
        "SpanId": f"clew_id(s.2, {zeros16})",
        "ParentSpanId": f"clew_id(s.3, {zeros16})",
        "TraceState": "ifNull(s.4, '')",
        "SpanName": "ifNull(s.5, '')",
        "SpanKind": "clew_kind(s.6)",
        "ServiceName": "resource['service.name']",
        "ResourceAttributes": "resource",
        "ScopeName": "ifNull(scope_name, '')",
        "ScopeVersion": "ifNull(scope_version, '')",
        "SpanAttributes": "clew_map(s.9)",
        "Duration": "if(clew_time(s.8) > clew_time(s.7), clew_time(s.8) - clew_time(s.7), 0)",
        "StatusCode": "clew_status(s.12.1)",
        "StatusMessage": "ifNull(s.12.2, '')",
        "Events.Timestamp": "if(empty(s.10), [], arrayMap(e -> fromUnixTimestamp64Nano(toInt64(clew_time(e.1))), s.10))",
        "Events.Name": "if(empty(s.10), [], arrayMap(e -> ifNull(e.2, ''), s.10))",
        "Events.Attributes": "if(empty(s.10), [], arrayMap(e -> clew_map(e.3), s.10))",
        "Links.TraceId": f"if(empty(s.11), [], arrayMap(l -> clew_id(l.1, {zeros32}), s.11))",
        "Links.SpanId": f"if(empty(s.11), [], arrayMap(l -> clew_id(l.2, {zeros16}), s.11))",
        "Links.TraceState": "if(empty(s.11), [], arrayMap(l -> ifNull(l.3, ''), s.11))",
        "Links.Attributes": "if(empty(s.11), [], arrayMap(l -> clew_map(l.4), s.11))",
    }


def stage_ddl() -> str:
    """The staging table: temporary (this session's, never in the store's schema), in
    memory (it holds one insert's lines at a time)."""
    return (f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE_LINES} (Line UInt32, Text String) "
            "ENGINE = Memory")


def _requests(where: str = "") -> str:
    return (f"SELECT Line, JSONExtract(Text, {_quote(_REQUEST)}) AS request "
            f"FROM {STAGE_LINES} {where}")


# Just enough of a line to count its spans and name their runs.
_TRACE_IDS = ("Tuple(resourceSpans Array(Tuple(scopeSpans Array(Tuple("
              "spans Array(Tuple(traceId Nullable(String))))))))")
# What insert_sql raises when a value is one only rows.py converts exactly.
REFUSED = "clew: a value for rows.py"


def check_sql() -> str:
    """Per staged line: its number, whether chDB can take it by its text (see
    `_PYTHON_ONLY`), and, if so, the trace id of each of its spans, as JSON has it."""
    text_ok = (
        "startsWith(Text, '{') AND isValidUTF8(Text) AND position(Text, '\\r') = 0 "
        f"AND isValidJSON(Text) AND NOT match(Text, {_quote(_PYTHON_ONLY)})"
    )
    trace_ids = (f"arrayFlatten(arrayMap(r -> arrayFlatten(arrayMap(c -> arrayMap(s -> "
                 f"ifNull(s.1, ''), c.1), r.1)), JSONExtract(Text, {_quote(_TRACE_IDS)}).1))")
    return (f"SELECT Line, {text_ok} AS text_ok, if(text_ok, {trace_ids}, []) "
            f"FROM {STAGE_LINES} ORDER BY Line")


def insert_sql(traces_table: str, skipped: list[int]) -> str:
    """The staged lines but `skipped` (by number) into `traces_table`, one row per span;
    raises `REFUSED` (and may have inserted part of the rows) if a value of one of them is
    one that only rows.py converts exactly.

    Each level of the request is unnested in its own subquery, which passes on only what
    the next one needs: an ARRAY JOIN copies the columns beside it to every row it makes."""
    names = ", ".join(f"`{c}`" for c in INSERT_COLUMNS)
    values = ", ".join(f"{expression} AS `{column}`"
                       for column, expression in _columns().items())
    where = f"WHERE Line NOT IN ({', '.join(map(str, skipped))})" if skipped else ""
    with_functions = f"WITH {_functions()} "
    resources = (
        f"{with_functions}SELECT clew_map_ok(r.1.1) AS resource_ok, "
        f"clew_map(r.1.1) AS resource, r.2 AS scopes "
        f"FROM ({_requests(where)}) ARRAY JOIN request.1 AS r"
    )
    scopes = (
        "SELECT resource_ok, resource, c.1.1 AS scope_name, c.1.2 AS scope_version, "
        f"c.2 AS spans FROM ({resources}) ARRAY JOIN scopes AS c"
    )
    checks = " AND ".join(("resource_ok", *_SPAN_CHECKS))
    return (
        f"INSERT INTO {traces_table} ({names}) {with_functions}"
        f"SELECT {values} FROM ({scopes}) ARRAY JOIN spans AS s "
        f"WHERE throwIf(NOT ({checks}), {_quote(REFUSED)}) = 0"
    )
