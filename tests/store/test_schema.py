"""The Collector's otel_traces schema, created in real chDB and read back from system tables.

Every expected value here is written out from the Collector's own DDL, not from clew's, so a
drift between the two fails. Each test uses its own database in one chDB store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest

from clew.exporter.store.lineage import lineage_ddl
from clew.exporter.store.schema import (
    SchemaOptions,
    create_schema,
    schema_ddl,
    supports_text_indexes,
    trace_id_ts_table_ddl,
    trace_id_ts_view_ddl,
    traces_table_ddl,
)

MAP = "Map(LowCardinality(String), String)"
ZSTD = "CODEC(ZSTD(1))"

# (name, type, codec, default_kind) in table order, as the Collector's exporter creates them.
DOCUMENTED_COLUMNS = [
    ("Timestamp", "DateTime64(9)", "CODEC(Delta(8), ZSTD(1))", ""),
    ("TraceId", "String", ZSTD, ""),
    ("SpanId", "String", ZSTD, ""),
    ("ParentSpanId", "String", ZSTD, ""),
    ("TraceState", "String", ZSTD, ""),
    ("SpanName", "LowCardinality(String)", ZSTD, ""),
    ("SpanKind", "LowCardinality(String)", ZSTD, ""),
    ("ServiceName", "LowCardinality(String)", ZSTD, ""),
    ("ResourceAttributes", MAP, ZSTD, ""),
    ("ScopeName", "String", ZSTD, ""),
    ("ScopeVersion", "String", ZSTD, ""),
    ("SpanAttributes", MAP, ZSTD, ""),
    ("Duration", "UInt64", "CODEC(T64, ZSTD(1))", ""),
    ("StatusCode", "LowCardinality(String)", ZSTD, ""),
    ("StatusMessage", "String", ZSTD, ""),
    ("Events.Timestamp", "Array(DateTime64(9))", ZSTD, ""),
    ("Events.Name", "Array(LowCardinality(String))", ZSTD, ""),
    ("Events.Attributes", f"Array({MAP})", ZSTD, ""),
    ("Links.TraceId", "Array(String)", ZSTD, ""),
    ("Links.SpanId", "Array(String)", ZSTD, ""),
    ("Links.TraceState", "Array(String)", ZSTD, ""),
    ("Links.Attributes", f"Array({MAP})", ZSTD, ""),
    ("ResourceAttributeItems", "Array(String)", "", "ALIAS"),
    ("SpanAttributeItems", "Array(String)", "", "ALIAS"),
]

ARRAY_TEXT = "text(tokenizer = 'array')"
# ClickHouse reports an index on an ALIAS column by the alias's expression: 'k=v' items.
RESOURCE_ITEMS = (
    "arrayMap(kv -> concat(kv.1, '=', kv.2), "
    "CAST(ResourceAttributes, 'Array(Tuple(String, String))'))"
)
SPAN_ITEMS = (
    "arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(SpanAttributes, 'Array(Tuple(String, String))'))"
)
COMMON_INDEXES = [
    ("idx_duration", "minmax", "Duration"),
    ("idx_lower_span_name", "tokenbf_v1(32768, 3, 0)", "lower(SpanName)"),
]

# The otel_traces of the Collector's exporter before ScopeName/ScopeVersion, the Items
# aliases, the T64 codec and PRIMARY KEY: a table clew must use as it finds it.
OLDER_COLLECTOR_TABLE = """
CREATE TABLE {db}.otel_traces (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration Int64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (Timestamp DateTime64(9), Name LowCardinality(String),
                   Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    Links Nested (TraceId String, SpanId String, TraceState String,
                  Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toUnixTimestamp(Timestamp), TraceId)
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1
"""


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("schema-store")


@pytest.fixture(scope="module")
def client(store_path: Path) -> Iterator[object]:
    """One chDB store for the module (chDB allows one store path per process at a time)."""
    store = clickhouse_connect.get_client(dsn=f"chdb://{store_path}")
    yield store
    store.close()


def _columns(client, database: str, table: str) -> list[tuple[str, str, str, str]]:
    return [
        tuple(row)
        for row in client.query(
            "SELECT name, type, compression_codec, default_kind FROM system.columns "
            "WHERE database = {db:String} AND table = {table:String} ORDER BY position",
            parameters={"db": database, "table": table},
        ).result_rows
    ]


def _indexes(client, database: str, table: str) -> list[tuple[str, str, str]]:
    return [
        tuple(row)
        for row in client.query(
            "SELECT name, type_full, expr FROM system.data_skipping_indices "
            "WHERE database = {db:String} AND table = {table:String}",
            parameters={"db": database, "table": table},
        ).result_rows
    ]


def _table(client, database: str, table: str) -> dict[str, str]:
    rows = client.query(
        "SELECT engine, partition_key, sorting_key, primary_key, as_select, create_table_query "
        "FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        parameters={"db": database, "table": table},
    ).named_results()
    found = list(rows)
    assert len(found) == 1, f"{database}.{table} does not exist"
    return found[0]


def _tables(client, database: str) -> list[str]:
    return sorted(
        row[0]
        for row in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
    )


def test_traces_table_has_exactly_the_documented_columns(client):
    create_schema(client, SchemaOptions(database="columns"))
    assert _columns(client, "columns", "otel_traces") == DOCUMENTED_COLUMNS


def test_traces_table_engine_keys_and_settings(client):
    create_schema(client, SchemaOptions(database="keys", ttl_days=7))
    table = _table(client, "keys", "otel_traces")
    assert table["engine"] == "MergeTree"
    assert table["partition_key"] == "toDate(Timestamp)"
    assert table["primary_key"] == "ServiceName, SpanName, toDateTime(Timestamp)"
    assert table["sorting_key"] == "ServiceName, SpanName, toDateTime(Timestamp), Timestamp"
    query = table["create_table_query"]
    assert "TTL toDateTime(Timestamp) + toIntervalDay(7)" in query
    assert "SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1" in query


def test_a_server_of_26_2_or_later_gets_text_indexes(client):
    create_schema(client, SchemaOptions(database="text_indexes"))
    assert client.command("SELECT version()").startswith("26.")  # chDB 26.9
    assert sorted(_indexes(client, "text_indexes", "otel_traces")) == sorted(
        [
            ("idx_trace_id", ARRAY_TEXT, "TraceId"),
            ("idx_res_attr_key", ARRAY_TEXT, "mapKeys(ResourceAttributes)"),
            ("idx_res_attr_items", ARRAY_TEXT, RESOURCE_ITEMS),
            ("idx_span_attr_key", ARRAY_TEXT, "mapKeys(SpanAttributes)"),
            ("idx_span_attr_items", ARRAY_TEXT, SPAN_ITEMS),
            *COMMON_INDEXES,
        ]
    )


def test_text_indexes_are_created_when_the_session_has_them_switched_off(client, store_path):
    # Servers between 26.2 and the release that turned the text index on by default. A
    # second client on the same store has a session of its own.
    store = clickhouse_connect.get_client(
        dsn=f"chdb://{store_path}", settings={"enable_full_text_index": 0}
    )
    try:
        create_schema(store, SchemaOptions(database="switched_off"))
        types = {name: kind for name, kind, _ in _indexes(store, "switched_off", "otel_traces")}
        assert types["idx_trace_id"] == ARRAY_TEXT
    finally:
        store.close()


def test_bloom_filter_variant_for_older_servers_runs(client):
    options = SchemaOptions(database="blooms")
    for statement in schema_ddl(options, text_indexes=False):
        client.command(statement)
    assert sorted(_indexes(client, "blooms", "otel_traces")) == sorted(
        [
            ("idx_trace_id", "bloom_filter(0.001)", "TraceId"),
            ("idx_res_attr_key", "bloom_filter(0.01)", "mapKeys(ResourceAttributes)"),
            ("idx_res_attr_value", "bloom_filter(0.01)", "mapValues(ResourceAttributes)"),
            ("idx_span_attr_key", "bloom_filter(0.01)", "mapKeys(SpanAttributes)"),
            ("idx_span_attr_value", "bloom_filter(0.01)", "mapValues(SpanAttributes)"),
            *COMMON_INDEXES,
        ]
    )
    assert _columns(client, "blooms", "otel_traces") == DOCUMENTED_COLUMNS


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("26.2.1.1", True),
        ("26.9.2.1", True),
        ("27.1", True),
        ("26.1.3.52", False),
        ("25.12.1.649", False),
        ("24.8.14.39", False),
        ("not a version", False),
    ],
)
def test_text_indexes_from_version_26_2(version, expected):
    assert supports_text_indexes(version) is expected


def test_trace_id_ts_table_and_view(client):
    create_schema(client, SchemaOptions(database="lookup", ttl_days=3))
    assert _columns(client, "lookup", "otel_traces_trace_id_ts") == [
        ("TraceId", "String", ZSTD, ""),
        ("Start", "SimpleAggregateFunction(min, DateTime)", ZSTD, ""),
        ("End", "SimpleAggregateFunction(max, DateTime)", ZSTD, ""),
    ]
    table = _table(client, "lookup", "otel_traces_trace_id_ts")
    assert table["engine"] == "AggregatingMergeTree"
    assert table["partition_key"] == "toStartOfWeek(Start)"
    assert table["sorting_key"] == "(TraceId)"  # the Collector writes ORDER BY (TraceId)
    assert "TTL toDateTime(Start) + toIntervalDay(3)" in table["create_table_query"]
    view = _table(client, "lookup", "otel_traces_trace_id_ts_mv")
    assert view["engine"] == "MaterializedView"
    assert view["as_select"] == (
        "SELECT TraceId, min(toDateTime(Timestamp)) AS Start, max(toDateTime(Timestamp)) AS End "
        "FROM lookup.otel_traces WHERE TraceId != '' GROUP BY TraceId"
    )
    assert "TO lookup.otel_traces_trace_id_ts" in view["create_table_query"]


def test_table_names_derive_from_the_traces_table(client):
    create_schema(client, SchemaOptions(database="named", traces_table="clew_spans"))
    assert _tables(client, "named") == [
        "clew_spans",
        "clew_spans_trace_id_ts",
        "clew_spans_trace_id_ts_mv",
    ]
    assert "FROM named.clew_spans " in _table(client, "named", "clew_spans_trace_id_ts_mv")[
        "as_select"
    ]


def test_creating_twice_changes_nothing(client):
    options = SchemaOptions(database="twice")
    create_schema(client, options)
    client.command(
        "INSERT INTO twice.otel_traces (Timestamp, TraceId, SpanName) "
        "VALUES (toDateTime64('2024-01-02 03:04:05.123456789', 9), 'ab', 'run')"
    )
    before = [_columns(client, "twice", name) for name in _tables(client, "twice")]
    create_schema(client, options)
    assert [_columns(client, "twice", name) for name in _tables(client, "twice")] == before
    assert client.command("SELECT count() FROM twice.otel_traces") == 1
    assert client.command("SELECT count() FROM twice.otel_traces_trace_id_ts") == 1


def test_an_older_collector_table_is_used_as_it_is(client):
    client.command("CREATE DATABASE older")
    client.command(OLDER_COLLECTOR_TABLE.format(db="older"))
    columns = _columns(client, "older", "otel_traces")
    query = _table(client, "older", "otel_traces")["create_table_query"]

    create_schema(client, SchemaOptions(database="older"))

    assert _columns(client, "older", "otel_traces") == columns
    assert ("Duration", "Int64", ZSTD, "") in columns
    assert "SpanAttributeItems" not in {name for name, *_ in columns}
    assert _table(client, "older", "otel_traces")["create_table_query"] == query
    # What was missing is added beside it, and fills from the old table.
    assert _tables(client, "older") == [
        "otel_traces",
        "otel_traces_trace_id_ts",
        "otel_traces_trace_id_ts_mv",
    ]
    client.command(
        "INSERT INTO older.otel_traces (Timestamp, TraceId) "
        "VALUES (toDateTime64('2024-01-02 03:04:05', 9), 'cd')"
    )
    assert client.command("SELECT count() FROM older.otel_traces_trace_id_ts") == 1


def test_create_false_creates_nothing(client):
    options = SchemaOptions(database="untouched", create=False)
    assert schema_ddl(options, text_indexes=True) == []
    create_schema(client, options)
    assert client.command("SELECT count() FROM system.databases WHERE name = 'untouched'") == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("database", ""),
        ("database", "otel; DROP TABLE x"),
        ("database", "a.b"),
        ("traces_table", "spans`"),
        ("traces_table", "with space"),
        ("traces_table", "-leading-dash"),
        ("traces_table", "x" * 129),
        ("cluster", "c'1"),
        ("cluster", ""),
        ("ttl_days", 0),
        ("ttl_days", -3),
        ("ttl_days", True),
        ("ttl_days", "7"),
    ],
)
def test_bad_options_raise_value_error_naming_the_option(option, value):
    with pytest.raises(ValueError, match=f"SchemaOptions.{option}"):
        SchemaOptions(**{option: value})


def test_names_with_dashes_are_quoted():
    options = SchemaOptions(database="otel-prod", traces_table="clew-spans")
    assert "CREATE TABLE IF NOT EXISTS `otel-prod`.`clew-spans`" in traces_table_ddl(
        options, text_indexes=True
    )
    assert "FROM `otel-prod`.`clew-spans`" in trace_id_ts_view_ddl(options)


def test_cluster_ddl_uses_on_cluster_and_replicated_engines():
    options = SchemaOptions(database="otel", cluster="prod", ttl_days=30)
    database, traces, lookup, view = schema_ddl(options, text_indexes=True)
    assert database == "CREATE DATABASE IF NOT EXISTS `otel` ON CLUSTER `prod`"
    assert traces.startswith("CREATE TABLE IF NOT EXISTS `otel`.`otel_traces` ON CLUSTER `prod`\n")
    assert "\nENGINE = ReplicatedMergeTree()\n" in traces
    assert "\nTTL toDateTime(Timestamp) + toIntervalDay(30)\n" in traces
    assert lookup == trace_id_ts_table_ddl(options)
    assert lookup.startswith(
        "CREATE TABLE IF NOT EXISTS `otel`.`otel_traces_trace_id_ts` ON CLUSTER `prod`\n"
    )
    assert "\nENGINE = ReplicatedAggregatingMergeTree()\n" in lookup
    assert "\nTTL toDateTime(Start) + toIntervalDay(30)\n" in lookup
    assert view.startswith(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`otel_traces_trace_id_ts_mv` "
        "ON CLUSTER `prod`\nTO `otel`.`otel_traces_trace_id_ts`\n"
    )


def test_lineage_tables_follow_the_cluster_and_ttl_options():
    options = SchemaOptions(database="otel", cluster="prod", ttl_days=30)
    statements = lineage_ddl(options)
    (io, io_view, runs, runs_view, incomplete_runs_view, run_io, run_io_view, outputs,
     outputs_view, metrics, metrics_view, config, config_view, links, run_inputs) = statements
    for statement in statements:
        assert " ON CLUSTER `prod` " in statement.split("\n", 1)[0]
    assert "ENGINE = ReplicatedMergeTree()" in io
    assert "\nTTL toDateTime(Timestamp) + toIntervalDay(30)\n" in io
    assert "ENGINE = ReplicatedReplacingMergeTree(Precedence)" in runs
    assert "\nTTL toDateTime(Start) + toIntervalDay(30)\n" in runs
    # per-run aggregates have no time to expire by: a run's counts outlive its spans
    assert "ENGINE = ReplicatedAggregatingMergeTree()" in run_io and "TTL" not in run_io
    assert "ENGINE = ReplicatedMergeTree()" in outputs
    assert "\nTTL toDateTime(Timestamp) + toIntervalDay(30)\n" in outputs
    for points in (metrics, config):  # a run's metrics and configs expire with its spans
        assert "ENGINE = ReplicatedMergeTree()" in points
        assert "\nTTL toDateTime(Timestamp) + toIntervalDay(30)\n" in points
    assert "ENGINE = ReplicatedReplacingMergeTree()" in links
    assert "\nTTL toDateTime(Timestamp) + toIntervalDay(30)\n" in links
    assert "ENGINE = ReplicatedReplacingMergeTree()" in run_inputs and "TTL" not in run_inputs
    for statement in lineage_ddl(SchemaOptions()):
        assert "ON CLUSTER" not in statement and "Replicated" not in statement
        assert "TTL" not in statement


def test_without_a_cluster_there_is_no_on_cluster():
    for statement in schema_ddl(SchemaOptions(), text_indexes=False):
        assert "ON CLUSTER" not in statement
        assert "Replicated" not in statement
        assert "TTL" not in statement
