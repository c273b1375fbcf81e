"""clew_metrics and clew_config, filled by views from otel_traces rows as a Collector (pdata
AsString: JSON arrays, Go's number format) or rotel (OTLP JSON ArrayValues) writes them, and
refilled from otel_traces when an older store is opened. What clew's own ingest writes is
checked end to end in tests/query/test_metrics.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from clew.exporter.store import connection as store
from clew.exporter.store.lineage import LINEAGE_VERSION, create_lineage_tables
from clew.exporter.store.rows import INSERT_COLUMNS
from clew.exporter.store.schema import SchemaOptions, create_schema

pytestmark = pytest.mark.integration

TRACE, RUN_SPAN = "1" * 32, "2" * 16
T0 = 1_796_000_000_000_000_000
NAMES = ["loss", "loss", "accuracy"]
VALUES = [0.5, 0.25, 1e-07]
STEPS = [0, 1, -1]
KEYS = ["optimizer.lr", "optimizer.name", "layers.0"]
SETTINGS = ["0.01", '"adam"', "64"]
CONFIG_URI, METRICS_URI = "file://h/job/configs/train.yaml", "file://h/job/metrics.json"
DIGEST = "blake3:" + "c" * 64


@pytest.fixture
def client(tmp_path) -> Iterator[Any]:
    url = f"chdb://{tmp_path / 'db'}"
    yield store.connect(url)
    store.close(url)


def _encode(values: list, form: str) -> str:
    if form == "collector":  # pdata AsString: Go's encoding/json (1e-07, 0.5, 64)
        return json.dumps(values, separators=(",", ":"))
    kind = ("stringValue" if isinstance(values[0], str) else "doubleValue"
            if isinstance(values[0], float) else "intValue")
    return json.dumps({"values": [{kind: v if kind != "intValue" else str(v)} for v in values]})


def _rows(form: str) -> list[list]:
    metrics = {
        "process.pid": "4242", "provenance.metric.source": "file",
        "provenance.artifact.uri": METRICS_URI,
        "provenance.metrics.name": _encode(NAMES, form),
        "provenance.metrics.value": _encode(VALUES, form),
        "provenance.metrics.step": _encode(STEPS, form),
    }
    tracked = {"process.pid": "4242", "provenance.metric.source": "mlflow",
               "provenance.tracker.run": "mlflow:abc", "provenance.metrics.name": _encode(["f1"], form),
               "provenance.metrics.value": _encode([0.75], form),
               "provenance.metrics.step": _encode([3], form)}
    config = {"provenance.artifact.uri": CONFIG_URI, "provenance.artifact.digest": DIGEST,
              "provenance.config.key": _encode(KEYS, form),
              "provenance.config.value": _encode(SETTINGS, form)}

    def row(span_id: str, name: str, offset: int, attributes: dict) -> list:
        return [T0 + offset, TRACE, span_id, RUN_SPAN, "", name, "SPAN_KIND_INTERNAL", "trainer",
                {}, "clew", "0.1.0", dict(sorted(attributes.items())), 1, "STATUS_CODE_UNSET",
                "", [], [], [], [], [], [], []]

    return [row("3" * 16, "metrics", 1000, metrics), row("4" * 16, "metrics", 2000, tracked),
            row("5" * 16, "config", 500, config)]


EXPECTED_METRICS = [
    (TRACE, T0 + 1000, 4242, "file", METRICS_URI, "", "loss", 0.5, 0, 0),
    (TRACE, T0 + 1000, 4242, "file", METRICS_URI, "", "loss", 0.25, 1, 1),
    (TRACE, T0 + 1000, 4242, "file", METRICS_URI, "", "accuracy", 1e-07, -1, 2),
    (TRACE, T0 + 2000, 4242, "mlflow", "", "mlflow:abc", "f1", 0.75, 3, 0),
]
EXPECTED_CONFIG = [(TRACE, T0 + 500, CONFIG_URI, DIGEST, key, value)
                   for key, value in zip(KEYS, SETTINGS)]


def _filled(client: Any, database: str) -> tuple[list, list]:
    metrics = client.query(
        "SELECT RunId, toUnixTimestamp64Nano(Timestamp), Pid, Source, Uri, TrackerRun, Name, "
        f"Value, Step, Seq FROM {database}.clew_metrics ORDER BY Timestamp, Seq").result_rows
    config = client.query(
        "SELECT RunId, toUnixTimestamp64Nano(Timestamp), Uri, Digest, Key, Value "
        f"FROM {database}.clew_config ORDER BY Key").result_rows
    return [tuple(r) for r in metrics], [tuple(r) for r in config]


@pytest.mark.parametrize("form", ["collector", "rotel"])
def test_metric_and_config_spans_become_one_row_per_point_and_key(client, form):
    options = SchemaOptions(database=f"metrics_{form}")
    create_schema(client, options)
    create_lineage_tables(client, options)
    client.insert(f"{options.database}.otel_traces", _rows(form),
                  column_names=list(INSERT_COLUMNS))
    metrics, config = _filled(client, options.database)
    assert metrics == EXPECTED_METRICS
    assert config == sorted(EXPECTED_CONFIG, key=lambda r: r[4])


def test_an_older_store_gets_the_tables_filled_from_its_spans(client):
    """A store made before these tables (another LINEAGE_VERSION) has them made and filled
    from what otel_traces already holds."""
    options = SchemaOptions(database="older")
    create_schema(client, options)
    create_lineage_tables(client, options)
    client.insert("older.otel_traces", _rows("collector"), column_names=list(INSERT_COLUMNS))
    client.command("DROP VIEW older.clew_metrics_mv")
    client.command("DROP TABLE older.clew_metrics")
    client.command("DROP VIEW older.clew_config_mv")
    client.command("DROP TABLE older.clew_config")
    client.command("ALTER TABLE older.clew_io MODIFY COMMENT 'clew lineage 10'")
    assert create_lineage_tables(client, options)
    metrics, config = _filled(client, "older")
    assert metrics == EXPECTED_METRICS and len(config) == 3
    assert client.query("SELECT comment FROM system.tables WHERE database = 'older' AND name "
                        "= 'clew_metrics'").result_rows == [(f"clew lineage {LINEAGE_VERSION}",)]
