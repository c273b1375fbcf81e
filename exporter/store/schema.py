"""The ClickHouse schema clew shares with the OpenTelemetry Collector's ClickHouse exporter.

clew writes spans into the very tables the Collector's `clickhouseexporter` creates
(docs/architecture.md), so one database holds clew's spans and everything else a
Collector sends, and Grafana's ClickHouse plugin shows them as traces:

* `<traces_table>` (default `otel_traces`), the Map variant, with the Collector's codecs,
  Nested Events and Links, the two `...AttributeItems` ALIAS columns and its skip indexes
  (text indexes on servers >= 26.2, bloom filters below);
* `<traces_table>_trace_id_ts`, one row per trace id with its first and last start second,
  filled by the materialized view `<traces_table>_trace_id_ts_mv`.

The DDL functions are pure (they only render SQL); `create_schema` runs them, idempotently:
every statement is `CREATE ... IF NOT EXISTS`, so a table that already exists, whichever
Collector version made it, is used as it is and never altered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

# Names clew accepts for a database, table or cluster: what the Collector's configs, Grafana's
# datasource settings and hand-written SQL all carry safely. Everything is backquoted as well.
_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}")

# ClickHouse made the text index generally available in 26.2; the Collector switches its
# indexes over from that version on, and so does clew.
TEXT_INDEX_MIN_VERSION: Final = (26, 2)

# The settings that gate the text index: `allow_experimental_full_text_index` on the
# releases that introduced it, `enable_full_text_index` (of which the former is an alias)
# since. Both default to 1 on chDB 26.9; create_schema turns on whichever a server has off.
_TEXT_INDEX_SETTINGS: Final = ("enable_full_text_index", "allow_experimental_full_text_index")

_COLUMNS: Final = """\
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), \
CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), \
CAST(SpanAttributes, 'Array(Tuple(String, String))')),
"""

_TEXT_INDEXES: Final = """\
    INDEX idx_trace_id TraceId TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_items ResourceAttributeItems TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_items SpanAttributeItems TYPE text(tokenizer = 'array'),
"""

_BLOOM_INDEXES: Final = """\
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
"""

_COMMON_INDEXES: Final = """\
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
"""


@dataclass(frozen=True)
class SchemaOptions:
    """Where the tables live and how they are made: the Collector exporter's options.

    Attributes:
        database: The database holding the tables; created if missing.
        traces_table: The spans table. The trace-id lookup table and its view take their
            names from it as the Collector does: `<traces_table>_trace_id_ts` and
            `<traces_table>_trace_id_ts_mv`.
        cluster: A cluster name: every statement runs `ON CLUSTER` it and the tables use
            the Replicated engines (with the server's default replica path and name).
        ttl_days: Drop partitions older than this many days; None keeps spans forever.
        create: False creates nothing: the tables are someone else's to make.

    Raises:
        ValueError: A name is not a plain ClickHouse name, or ttl_days is not a positive
            integer; the message names the option.
    """

    database: str = "default"
    traces_table: str = "otel_traces"
    cluster: str | None = None
    ttl_days: int | None = None
    create: bool = True

    def __post_init__(self) -> None:
        _check_name("database", self.database)
        _check_name("traces_table", self.traces_table)
        if self.cluster is not None:
            _check_name("cluster", self.cluster)
        ttl = self.ttl_days
        # bool is an int subclass; True days is a mistake, not a TTL.
        if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0):
            raise ValueError(
                f"SchemaOptions.ttl_days must be a positive integer or None, not {ttl!r}"
            )

    @property
    def trace_id_ts_table(self) -> str:
        """The trace-id lookup table's name."""
        return f"{self.traces_table}_trace_id_ts"

    @property
    def trace_id_ts_view(self) -> str:
        """The materialized view's name that fills the lookup table."""
        return f"{self.traces_table}_trace_id_ts_mv"


def _check_name(option: str, name: Any) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"SchemaOptions.{option} must be 1-128 letters, digits, '_' or '-' "
            f"(not starting with '-'), not {name!r}"
        )


def quote_identifier(name: str) -> str:
    """`name` backquoted for ClickHouse SQL, with backslashes and backquotes escaped."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def qualified_name(options: SchemaOptions, table: str) -> str:
    """`database`.`table`, quoted."""
    return f"{quote_identifier(options.database)}.{quote_identifier(table)}"


def supports_text_indexes(version: str) -> bool:
    """Whether a server of this `SELECT version()` gets text indexes rather than blooms."""
    parts = re.match(r"(\d+)\.(\d+)", version.strip())
    return parts is not None and (int(parts[1]), int(parts[2])) >= TEXT_INDEX_MIN_VERSION


def on_cluster(options: SchemaOptions) -> str:
    """` ON CLUSTER name` when the options name a cluster, else nothing."""
    return f" ON CLUSTER {quote_identifier(options.cluster)}" if options.cluster else ""


def engine(options: SchemaOptions, family: str, *arguments: str) -> str:
    """The table engine of `family` with the engine's own `arguments` (a ReplacingMergeTree's
    version column), Replicated on a cluster."""
    # No path arguments: a Replicated engine then takes the server's default_replica_path
    # and default_replica_name, which is what ON CLUSTER deployments configure.
    return f"{'Replicated' if options.cluster else ''}{family}({', '.join(arguments)})"


def ttl(options: SchemaOptions, column: str) -> str:
    """The TTL clause (with its newline) dropping rows `ttl_days` after `column`."""
    if not options.ttl_days:
        return ""
    return f"TTL toDateTime({column}) + toIntervalDay({options.ttl_days})\n"


def database_ddl(options: SchemaOptions) -> str:
    """CREATE DATABASE IF NOT EXISTS for `options.database`."""
    name = quote_identifier(options.database)
    return f"CREATE DATABASE IF NOT EXISTS {name}{on_cluster(options)}"


def traces_table_ddl(options: SchemaOptions, *, text_indexes: bool) -> str:
    """CREATE TABLE IF NOT EXISTS for the spans table, exactly as the Collector makes it.

    Args:
        options: Names, cluster and TTL.
        text_indexes: Text indexes (`text(tokenizer = 'array')`) on TraceId, the attribute
            keys and the Items aliases, for servers >= 26.2; else the bloom filters.
    """
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified_name(options, options.traces_table)}"
        f"{on_cluster(options)}\n(\n"
        + _COLUMNS
        + (_TEXT_INDEXES if text_indexes else _BLOOM_INDEXES)
        + _COMMON_INDEXES
        + f")\nENGINE = {engine(options, 'MergeTree')}\n"
        "PARTITION BY toDate(Timestamp)\n"
        "PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))\n"
        "ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)\n"
        + ttl(options, "Timestamp")
        + "SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"
    )


def trace_id_ts_table_ddl(options: SchemaOptions) -> str:
    """CREATE TABLE IF NOT EXISTS for `<traces_table>_trace_id_ts`.

    Its rows are partial until merges: readers take min(Start) and max(End) per TraceId.
    """
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified_name(options, options.trace_id_ts_table)}"
        f"{on_cluster(options)}\n(\n"
        "    TraceId String CODEC(ZSTD(1)),\n"
        "    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),\n"
        "    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))\n"
        f")\nENGINE = {engine(options, 'AggregatingMergeTree')}\n"
        "PARTITION BY toStartOfWeek(Start)\n"
        "ORDER BY (TraceId)\n"
        + ttl(options, "Start")
        + "SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"
    )


def trace_id_ts_view_ddl(options: SchemaOptions) -> str:
    """CREATE MATERIALIZED VIEW IF NOT EXISTS for `<traces_table>_trace_id_ts_mv`."""
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS "
        f"{qualified_name(options, options.trace_id_ts_view)}{on_cluster(options)}\n"
        f"TO {qualified_name(options, options.trace_id_ts_table)}\n"
        "AS SELECT\n"
        "    TraceId,\n"
        "    min(toDateTime(Timestamp)) AS Start,\n"
        "    max(toDateTime(Timestamp)) AS End\n"
        f"FROM {qualified_name(options, options.traces_table)}\n"
        "WHERE TraceId != ''\n"
        "GROUP BY TraceId"
    )


def schema_ddl(options: SchemaOptions, *, text_indexes: bool) -> list[str]:
    """Every statement create_schema runs, in order (none when `options.create` is False)."""
    if not options.create:
        return []
    return [
        database_ddl(options),
        traces_table_ddl(options, text_indexes=text_indexes),
        trace_id_ts_table_ddl(options),
        trace_id_ts_view_ddl(options),
    ]


def _created(client: Any, options: SchemaOptions) -> bool:
    """Whether the three already exist here: one query instead of five that would change
    nothing (every query command prepares the store). A cluster's other nodes may still
    lack them, so there the statements always run. An upgrade step for existing tables
    added to create_schema must come before this check."""
    if options.cluster:
        return False
    wanted = [options.traces_table, options.trace_id_ts_table, options.trace_id_ts_view]
    ((found,),) = client.query(
        "SELECT count() FROM system.tables WHERE database = %(database)s AND name IN %(names)s",
        parameters={"database": options.database, "names": wanted},
    ).result_rows
    return found == len(wanted)


def create_schema(client: Any, options: SchemaOptions | None = None) -> None:
    """Create the database, the spans table, the lookup table and its view if missing.

    Idempotent: tables that exist, from any Collector version, are left as they are. The
    index flavour follows the server's `SELECT version()`. Concurrent creators can race on
    CREATE (ClickHouse's DDL is not transactional): run it once per store, not per writer.

    Args:
        client: A clickhouse-connect client (`clickhouse_connect.get_client(...)`).
        options: Names, cluster, TTL; `create=False` makes this a no-op.
    """
    options = options or SchemaOptions()
    if not options.create or _created(client, options):
        return
    names = ", ".join(f"'{name}'" for name in _TEXT_INDEX_SETTINGS)
    version, disabled = client.query(
        f"SELECT version(), groupArrayIf(name, value = '0') FROM system.settings "
        f"WHERE name IN ({names})"
    ).result_rows[0]
    text_indexes = supports_text_indexes(version)
    # Only settings this server has and keeps off, so an older or newer server never sees
    # a setting it does not know.
    settings = {name: 1 for name in disabled} if text_indexes else {}
    for statement in schema_ddl(options, text_indexes=text_indexes):
        client.command(statement, settings=settings or None)
