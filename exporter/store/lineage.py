"""clew's lineage tables, filled by materialized views from otel_traces.

They derive from the Collector's table alone, so they fill the same whether rows come from
clew's ingest or from an OpenTelemetry Collector writing clew's spans:

- `clew_io`: one row per I/O record (batched spans exploded back into one row per artifact),
  with the process that did it (pid, rank, DataLoader worker), ordered by URI and indexed by
  digest and run, for lineage lookups.
- `clew_runs`: one row per run, from its root span; until that arrives (it never does when
  the run was killed with SIGKILL), from the run's other clew spans, with no status or exit
  code and `StatusCode` empty.
- `clew_run_io`: per run, the distinct inputs and outputs, the I/O records and the ranks seen,
  aggregated from `clew_io` as it fills. Every aggregate is a distinct count or a set, so a
  row that reaches it twice (an ingest recovering from a crash inserts a chunk again) counts
  once.
- `clew_outputs`: the writes, copies and renames of `clew_io` again (reads are about 90 % of
  it), keyed by a 64-bit hash of the digest: "which run wrote this content" reads 8 bytes a
  write for a large set of digests and finds a few in the primary key.
- `clew_metrics`: one row per metric point of the runs' `metrics` spans (their parallel arrays
  of names, values and steps exploded), for "what did this run score" and "how did a metric
  move over a program's runs".
- `clew_config`: one row per key of each config file a run read (the `config` spans' parallel
  arrays of dotted keys and JSON-encoded values), for key-level config changes.
- `clew_links`, `clew_run_inputs`: per run, the inputs some run may have produced, and its
  inputs per directory with the processes that read them; filled by clew's ingest
  (links.py), not by views, and rebuilt with the others.

Attribute values are read the way the Collector writes them (ints as decimal strings, arrays
as JSON; rotel's OTLP JSON arrays too), and both span-kind and status spellings are accepted.
Every name below is a semconv constant: the SQL is built from them, never from hand-spelled
strings.

The tables are derived data: each carries `LINEAGE_VERSION` in its comment, and a store whose
tables are of another version has them dropped, recreated and filled again from otel_traces.
Tables created in a database whose otel_traces already holds spans (a Collector filled it
before clew was pointed at it) are filled from those spans the same way.
"""

from __future__ import annotations

from typing import Any

from clew.semconv import attributes as attr
from clew.semconv import spans

from .schema import SchemaOptions, engine, on_cluster, qualified_name, ttl

IO_TABLE = "clew_io"
RUNS_TABLE = "clew_runs"
RUN_IO_TABLE = "clew_run_io"
OUTPUTS_TABLE = "clew_outputs"
METRICS_TABLE = "clew_metrics"
CONFIG_TABLE = "clew_config"
# Filled by clew's ingest, not by views: see links.py.
LINKS_TABLE = "clew_links"
RUN_INPUTS_TABLE = "clew_run_inputs"
ROLE_RUN = "run"
# Bump when a lineage table or view changes shape: stores of another version are rebuilt.
LINEAGE_VERSION = 11
# clew_runs keeps, of a run's rows, the one with the largest `Precedence`: its root span's,
# else the one from the earliest other spans (each insert block's give one row).
_ROOT_PRECEDENCE = "toUInt64(18446744073709551615)"
_STARTED_PRECEDENCE = "toUInt64(9223372036854775807 - toUnixTimestamp64Nano(min(Timestamp)))"
# Fills clew_runs from the runs' other spans, alongside clew_runs_mv.
_INCOMPLETE_RUNS_VIEW = f"{RUNS_TABLE}_incomplete_mv"
_COMMENT = f"clew lineage {LINEAGE_VERSION}"
OUTPUT_OPERATIONS = ("write", "copy", "rename")
# Collector exporters before 2024-08 wrote the proto enum names; clew_runs holds
# pdata's names either way, so `StatusCode = 'Error'` finds failed runs from any writer.
_OLD_STATUS_NAMES = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]
_STATUS_NAMES = ["Unset", "Ok", "Error"]
# In creation order: the views of the last two read the first table.
_TABLES = (IO_TABLE, RUNS_TABLE, RUN_IO_TABLE, OUTPUTS_TABLE)
# Filled by views from otel_traces, each on its own.
_SPAN_TABLES = (METRICS_TABLE, CONFIG_TABLE)
_ALL_TABLES = (*_TABLES, *_SPAN_TABLES, LINKS_TABLE, RUN_INPUTS_TABLE)


def _attribute(name: str) -> str:
    return f"SpanAttributes['{name}']"


def _json_array(value: str, kind: str) -> str:
    """An array attribute as Array(`kind`) (String, Int64 or Float64), from either string form it
    takes: pdata's AsString, `["a","b"]` (the Collector, clew), or the OTLP JSON of the
    ArrayValue, `{"values":[{"stringValue":"a"}]}` (rotel's ClickHouse exporter)."""
    if kind == "String":
        item = "JSONExtractString(x, 'stringValue')"
    elif kind == "Float64":
        item = "toFloat64OrZero(trim(BOTH '\"' FROM JSONExtractRaw(x, 'doubleValue')))"
    else:
        # intValue is a JSON string in OTLP JSON ("32"), a number from some encoders (32)
        item = "toInt64OrDefault(trim(BOTH '\"' FROM JSONExtractRaw(x, 'intValue')), toInt64(-1))"
    otlp = f"arrayMap(x -> {item}, JSONExtractArrayRaw({value}, 'values'))"
    return f"if(startsWith({value}, '{{'), {otlp}, JSONExtract({value}, 'Array({kind})'))"


def _array(batched: str, single: str, kind: str, default: str) -> str:
    """The batched span's JSON array, or the single span's value as a one-element array. A
    batched span may leave an array out (its identities when they are all the same, its
    counts when all are 1): then it is empty, and the row takes the column's default."""
    if kind == "String":
        one = f"[{_attribute(single)}]"
    else:
        one = f"[toInt64OrDefault({_attribute(single)}, toInt64({default}))]"
    return (
        f"if(mapContains(SpanAttributes, '{batched}'), "
        f"{_json_array(_attribute(batched), kind)}, "
        f"if(mapContains(SpanAttributes, '{attr.PROVENANCE_ARTIFACTS_URI}'), "
        f"emptyArray{kind}(), {one}))"
    )


def _link(column: str) -> str:
    """`column` of the span link to the producer of this row's artifact: clew names the
    artifact in each link's attributes, so one batched span can link many producers.

    Empty unless the stamp agrees with the read: copies carry stamps along (`shutil.copy2`
    copies xattrs, S3 CopyObject the metadata), and a stamp on content other than what its
    producer wrote names the wrong run. So the stamp's digest must equal the digest the read
    saw; a stamp or a read without a digest (a ranged read, hashing off) proves nothing, and
    the read is matched by version, ETag or place and time instead."""
    uris = f"arrayMap(a -> a['{attr.PROVENANCE_ARTIFACT_URI}'], `Links.Attributes`)"
    position = f"indexOf({uris}, Uri)"
    stamped = f"arrayElement(`Links.Attributes`, {position})['{attr.PROVENANCE_PRODUCER_DIGEST}']"
    producer = f"arrayElement(`Links.{column}`, {position})"
    return f"if(Digest != '' AND {stamped} = Digest, {producer}, '')"


def _io_select(source: str) -> str:
    """One row per artifact of every I/O span. The arrays are parsed once per span and joined
    side by side, each resized to the URIs' length (a batch leaves out arrays that would say
    nothing: the missing entries take the column's default); indexing them after a join of
    positions instead parsed every array again for each of a batch's rows."""
    uris = _array(attr.PROVENANCE_ARTIFACTS_URI, attr.PROVENANCE_ARTIFACT_URI, "String", "''")

    def parallel(batched: str, single: str, kind: str, default: str) -> str:
        return f"arrayResize({_array(batched, single, kind, default)}, length({uris}), {default})"

    shared_identity = _attribute(attr.PROVENANCE_ARTIFACT_IDENTITY)
    return f"""
SELECT
    TraceId AS RunId,
    SpanId,
    ParentSpanId,
    Timestamp,
    ServiceName,
    toUInt32OrZero({_attribute(attr.PROCESS_PID)}) AS Pid,
    toInt32OrDefault(ResourceAttributes['{attr.PROVENANCE_RANK}'], toInt32(-1)) AS Rank,
    toInt32OrDefault(ResourceAttributes['{attr.PROVENANCE_WORKER_ID}'], toInt32(-1)) AS Worker,
    {_attribute(attr.PROVENANCE_IO_OPERATION)} AS Operation,
    Uri,
    Digest,
    Version,
    ETag,
    Size,
    Identity,
    toUInt64(item_count) AS Count,
    {_attribute(attr.PROVENANCE_SOURCE_URI)} AS SourceUri,
    Bytes,
    {_link('TraceId')} AS ProducerRunId,
    {_link('SpanId')} AS ProducerSpanId
FROM {source}
ARRAY JOIN
    {uris} AS Uri,
    {parallel(attr.PROVENANCE_ARTIFACTS_DIGEST, attr.PROVENANCE_ARTIFACT_DIGEST, "String", "''")} AS Digest,
    {parallel(attr.PROVENANCE_ARTIFACTS_VERSION, attr.PROVENANCE_ARTIFACT_VERSION, "String", "''")} AS Version,
    {parallel(attr.PROVENANCE_ARTIFACTS_ETAG, attr.PROVENANCE_ARTIFACT_ETAG, "String", "''")} AS ETag,
    {parallel(attr.PROVENANCE_ARTIFACTS_SIZE, attr.PROVENANCE_ARTIFACT_SIZE, "Int64", "-1")} AS Size,
    {parallel(attr.PROVENANCE_ARTIFACTS_IDENTITY, attr.PROVENANCE_ARTIFACT_IDENTITY, "String", shared_identity)} AS Identity,
    {parallel(attr.PROVENANCE_ARTIFACTS_COUNT, attr.PROVENANCE_IO_COUNT, "Int64", "1")} AS item_count,
    {parallel(attr.PROVENANCE_ARTIFACTS_BYTES, attr.PROVENANCE_IO_BYTES, "Int64", "-1")} AS Bytes
WHERE {_attribute(attr.PROVENANCE_IO_OPERATION)} != ''"""


def _runs_select(source: str) -> str:
    """One row per run, from its root span."""
    return f"""
SELECT
    TraceId AS RunId,
    Timestamp AS Start,
    fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) + Duration) AS End,
    ServiceName,
    {_json_array(_attribute(attr.PROCESS_COMMAND_ARGS), "String")} AS Command,
    transform(toString(StatusCode), {_OLD_STATUS_NAMES!r}, {_STATUS_NAMES!r}, toString(StatusCode))
        AS StatusCode,
    toInt64OrDefault({_attribute(attr.PROCESS_EXIT_CODE)}, toInt64(-1)) AS ExitCode,
    {_attribute(attr.ERROR_TYPE)} AS ErrorType,
    {_attribute(attr.VCS_REF_HEAD_REVISION)} AS GitCommit,
    {_attribute(attr.VCS_REF_HEAD_NAME)} AS GitBranch,
    {_attribute(attr.PROVENANCE_VCS_DIRTY)} = 'true' AS GitDirty,
    {_attribute(attr.PROVENANCE_VCS_DIFF_DIGEST)} AS GitDiffDigest,
    {_attribute(attr.HOST_NAME)} AS Host,
    {_attribute(attr.PROCESS_WORKING_DIRECTORY)} AS Cwd,
    trim(concat({_attribute(attr.PROCESS_RUNTIME_NAME)}, ' ',
                {_attribute(attr.PROCESS_RUNTIME_VERSION)})) AS Runtime,
    {_json_array(_attribute(attr.PROVENANCE_ENV_PACKAGES), "String")} AS Packages,
    {_json_array(_attribute(attr.PROVENANCE_CODE_FILES), "String")} AS CodeFiles,
    {_json_array(_attribute(attr.PROVENANCE_CODE_DIGESTS), "String")} AS CodeDigests,
    {_json_array(_attribute(attr.PROVENANCE_VCS_DIFF_FILES), "String")} AS DiffFiles,
    {_ROOT_PRECEDENCE} AS Precedence
FROM {source}
WHERE {_is_root_span()}"""


def _is_root_span() -> str:
    return (f"SpanName = '{spans.SPAN_RUN}' "
            f"AND {_attribute(attr.PROVENANCE_PROCESS_ROLE)} = '{ROLE_RUN}'")


def _incomplete_runs_select(source: str) -> str:
    """One row per run whose root span is not among `source`'s (an insert block's) spans,
    from its other spans: what is known of a run whose root span has not arrived. Its
    command is that of its first span's resource (clew's resource detector puts it there).
    A run whose spans come in one block with its root (clew's ingest of a finished run) gets
    no such row. Only clew's I/O and process spans count, so the other traces a Collector
    writes into the same table make no runs."""
    return f"""
SELECT
    TraceId AS RunId,
    min(Timestamp) AS Start,
    fromUnixTimestamp64Nano(max(toUnixTimestamp64Nano(Timestamp) + Duration)) AS End,
    any(ServiceName) AS ServiceName,
    {_json_array(f"argMin(ResourceAttributes['{attr.PROCESS_COMMAND_ARGS}'], Timestamp)",
                 "String")} AS Command,
    '' AS StatusCode,
    toInt64(-1) AS ExitCode,
    '' AS ErrorType,
    '' AS GitCommit,
    '' AS GitBranch,
    0 AS GitDirty,
    '' AS GitDiffDigest,
    any(ResourceAttributes['{attr.HOST_NAME}']) AS Host,
    '' AS Cwd,
    '' AS Runtime,
    emptyArrayString() AS Packages,
    emptyArrayString() AS CodeFiles,
    emptyArrayString() AS CodeDigests,
    emptyArrayString() AS DiffFiles,
    {_STARTED_PRECEDENCE} AS Precedence
FROM {source}
WHERE {_attribute(attr.PROVENANCE_IO_OPERATION)} != ''
    OR {_attribute(attr.PROVENANCE_PROCESS_ROLE)} != ''
GROUP BY TraceId
HAVING countIf({_is_root_span()}) = 0"""


def _pid() -> str:
    """The span's `process.pid`, else its resource's."""
    return (f"toUInt32OrZero(if(mapContains(SpanAttributes, '{attr.PROCESS_PID}'), "
            f"{_attribute(attr.PROCESS_PID)}, ResourceAttributes['{attr.PROCESS_PID}']))")


def _metrics_select(source: str) -> str:
    """One row per point of every `metrics` span: its parallel arrays of names, values and
    steps joined side by side (a shorter array is padded: a missing value is NaN, a missing
    step -1), `Seq` the point's place in them."""
    names = _json_array(_attribute(attr.PROVENANCE_METRICS_NAME), "String")
    values = _json_array(_attribute(attr.PROVENANCE_METRICS_VALUE), "Float64")
    steps = _json_array(_attribute(attr.PROVENANCE_METRICS_STEP), "Int64")
    return f"""
SELECT
    TraceId AS RunId,
    Timestamp,
    {_pid()} AS Pid,
    {_attribute(attr.PROVENANCE_METRIC_SOURCE)} AS Source,
    {_attribute(attr.PROVENANCE_ARTIFACT_URI)} AS Uri,
    {_attribute(attr.PROVENANCE_TRACKER_RUN)} AS TrackerRun,
    Name,
    Value,
    Step,
    toUInt32(position - 1) AS Seq
FROM {source}
ARRAY JOIN
    {names} AS Name,
    arrayResize({values}, length({names}), nan) AS Value,
    arrayResize({steps}, length({names}), toInt64(-1)) AS Step,
    arrayEnumerate({names}) AS position
WHERE SpanName = '{spans.SPAN_METRICS}'"""


def _config_select(source: str) -> str:
    """One row per key of every `config` span (its parallel arrays of keys and values)."""
    keys = _json_array(_attribute(attr.PROVENANCE_CONFIG_KEY), "String")
    values = _json_array(_attribute(attr.PROVENANCE_CONFIG_VALUE), "String")
    return f"""
SELECT
    TraceId AS RunId,
    Timestamp,
    {_attribute(attr.PROVENANCE_ARTIFACT_URI)} AS Uri,
    {_attribute(attr.PROVENANCE_ARTIFACT_DIGEST)} AS Digest,
    Key,
    Value
FROM {source}
ARRAY JOIN
    {keys} AS Key,
    arrayResize({values}, length({keys}), '') AS Value
WHERE SpanName = '{spans.SPAN_CONFIG}'"""


# Each table filled straight from otel_traces by a view of its own: its SELECT.
_SPAN_SELECTS = {METRICS_TABLE: _metrics_select, CONFIG_TABLE: _config_select}


def lineage_ddl(options: SchemaOptions) -> list[str]:
    """CREATE statements for clew's lineage tables and their views, in order."""
    traces = qualified_name(options, options.traces_table)
    io, runs, run_io, outputs = (qualified_name(options, t) for t in _TABLES)
    io_mv, runs_mv, run_io_mv, outputs_mv = (qualified_name(options, f"{t}_mv") for t in _TABLES)
    links, run_inputs = (qualified_name(options, t) for t in (LINKS_TABLE, RUN_INPUTS_TABLE))
    metrics, config = (qualified_name(options, t) for t in _SPAN_TABLES)
    metrics_mv, config_mv = (qualified_name(options, f"{t}_mv") for t in _SPAN_TABLES)
    cluster = on_cluster(options)
    return [
        f"""CREATE TABLE IF NOT EXISTS {io}{cluster} (
    RunId String,
    SpanId String,
    ParentSpanId String,
    Timestamp DateTime64(9),
    ServiceName LowCardinality(String),
    Pid UInt32,
    Rank Int32,
    Worker Int32,
    Operation LowCardinality(String),
    Uri String,
    Digest String,
    Version String,
    ETag String,
    Size Int64,
    Identity LowCardinality(String),
    Count UInt64,
    SourceUri String,
    Bytes Int64,
    ProducerRunId String,
    ProducerSpanId String,
    INDEX idx_digest Digest TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_run RunId TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE = {engine(options, "MergeTree")} ORDER BY (Uri, Timestamp)
{ttl(options, "Timestamp")}COMMENT '{_COMMENT}'""",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {io_mv}{cluster} TO {io} AS {_io_select(traces)}",
        f"""CREATE TABLE IF NOT EXISTS {runs}{cluster} (
    RunId String,
    Start DateTime64(9),
    End DateTime64(9),
    ServiceName LowCardinality(String),
    Command Array(String),
    StatusCode LowCardinality(String),
    ExitCode Int64,
    ErrorType String,
    GitCommit String,
    GitBranch String,
    GitDirty UInt8,
    GitDiffDigest String,
    Host String,
    Cwd String,
    Runtime String,
    Packages Array(String),
    CodeFiles Array(String),
    CodeDigests Array(String),
    DiffFiles Array(String),
    Precedence UInt64
) ENGINE = {engine(options, "ReplacingMergeTree", "Precedence")} ORDER BY RunId
{ttl(options, "Start")}COMMENT '{_COMMENT}'""",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {runs_mv}{cluster} TO {runs} AS "
        f"{_runs_select(traces)}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS "
        f"{qualified_name(options, _INCOMPLETE_RUNS_VIEW)}{cluster} TO {runs} AS "
        f"{_incomplete_runs_select(traces)}",
        f"""CREATE TABLE IF NOT EXISTS {run_io}{cluster} (
    RunId String,
    Inputs AggregateFunction(uniq, String),
    Outputs AggregateFunction(uniq, String),
    Records AggregateFunction(uniq, String, String),
    Ranks SimpleAggregateFunction(groupUniqArrayArray, Array(Int32))
) ENGINE = {engine(options, "AggregatingMergeTree")} ORDER BY RunId
SETTINGS index_granularity = 16
COMMENT '{_COMMENT}'""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {run_io_mv}{cluster} TO {run_io} AS
SELECT
    RunId,
    uniqStateIf(Uri, Operation = 'read') AS Inputs,
    uniqStateIf(Uri, Operation IN {OUTPUT_OPERATIONS!r}) AS Outputs,
    uniqState(SpanId, Uri) AS Records,
    groupUniqArray(Rank) AS Ranks
FROM {io}
GROUP BY RunId""",
        f"""CREATE TABLE IF NOT EXISTS {outputs}{cluster} (
    DigestKey UInt64,
    RunId String,
    SpanId String,
    Timestamp DateTime64(9),
    Operation LowCardinality(String),
    Uri String,
    Digest String,
    Version String,
    ETag String,
    Inserted DateTime64(9)
) ENGINE = {engine(options, "MergeTree")} ORDER BY (DigestKey, Timestamp)
{ttl(options, "Timestamp")}COMMENT '{_COMMENT}'""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {outputs_mv}{cluster} TO {outputs} AS
SELECT sipHash64(Digest) AS DigestKey, RunId, SpanId, Timestamp, Operation, Uri, Digest,
    Version, ETag, now64(9) AS Inserted
FROM {io}
WHERE Operation IN {OUTPUT_OPERATIONS!r}""",
        f"""CREATE TABLE IF NOT EXISTS {metrics}{cluster} (
    RunId String,
    Timestamp DateTime64(9),
    Pid UInt32,
    Source LowCardinality(String),
    Uri String,
    TrackerRun String,
    Name String,
    Value Float64,
    Step Int64,
    Seq UInt32,
    INDEX idx_run RunId TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE = {engine(options, "MergeTree")} ORDER BY (Name, RunId, Timestamp, Seq)
{ttl(options, "Timestamp")}COMMENT '{_COMMENT}'""",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {metrics_mv}{cluster} TO {metrics} AS "
        f"{_metrics_select(traces)}",
        f"""CREATE TABLE IF NOT EXISTS {config}{cluster} (
    RunId String,
    Timestamp DateTime64(9),
    Uri String,
    Digest String,
    Key String,
    Value String
) ENGINE = {engine(options, "MergeTree")} ORDER BY (RunId, Uri, Key, Timestamp)
{ttl(options, "Timestamp")}COMMENT '{_COMMENT}'""",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {config_mv}{cluster} TO {config} AS "
        f"{_config_select(traces)}",
        f"""CREATE TABLE IF NOT EXISTS {links}{cluster} (
    RunId String,
    Uri String,
    Digest String,
    Version String,
    ETag String,
    Size Int64,
    ProducerRunId String,
    Timestamp DateTime64(9)
) ENGINE = {engine(options, "ReplacingMergeTree")} ORDER BY (RunId, Uri, Digest, Version, ETag)
{ttl(options, "Timestamp")}COMMENT '{_COMMENT}'""",
        f"""CREATE TABLE IF NOT EXISTS {run_inputs}{cluster} (
    RunId String,
    Dir String,
    Files UInt64,
    Bytes Int64,
    Strength UInt8,
    Items Array(Tuple(String, String, String, String, Int64)),
    Readers Array(Tuple(Int32, Int32, UInt32)),
    ReaderCount UInt64
) ENGINE = {engine(options, "ReplacingMergeTree")} ORDER BY (RunId, Dir)
COMMENT '{_COMMENT}'""",
    ]


def _installed_version(client: Any, options: SchemaOptions) -> str | None:
    """The comment of the installed `clew_io`, or None when there is none."""
    rows = client.query(
        "SELECT comment FROM system.tables WHERE database = %(database)s AND name = %(table)s",
        parameters={"database": options.database, "table": IO_TABLE},
    ).result_rows
    return rows[0][0] if rows else None


def create_lineage_tables(client: Any, options: SchemaOptions) -> bool:
    """Create the lineage tables and views (idempotent); rebuild those of another version,
    and fill new ones from the spans otel_traces already holds. True if it made them (then
    `links.link_all` fills clew_links)."""
    if not options.create:
        return False
    installed = _installed_version(client, options)
    if installed == _COMMENT:
        return False
    if installed is not None:
        # Views first, so no insert lands in a table about to go.
        cluster = on_cluster(options)
        views = (*(table + "_mv" for table in (*reversed(_TABLES), *_SPAN_TABLES)),
                 _INCOMPLETE_RUNS_VIEW)
        for view in views:
            client.command(f"DROP VIEW IF EXISTS {qualified_name(options, view)}{cluster}")
        for table in reversed(_ALL_TABLES):
            client.command(f"DROP TABLE IF EXISTS {qualified_name(options, table)}{cluster}")
    for statement in lineage_ddl(options):
        client.command(statement)
    traces = qualified_name(options, options.traces_table)
    # clew_run_io and clew_outputs fill from these inserts through their own views.
    client.command(f"INSERT INTO {qualified_name(options, IO_TABLE)} {_io_select(traces)}")
    runs = qualified_name(options, RUNS_TABLE)
    client.command(f"INSERT INTO {runs} {_incomplete_runs_select(traces)}")
    client.command(f"INSERT INTO {runs} {_runs_select(traces)}")
    for table, select in _SPAN_SELECTS.items():
        client.command(f"INSERT INTO {qualified_name(options, table)} {select(traces)}")
    return True
