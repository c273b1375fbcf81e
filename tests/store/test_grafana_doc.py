"""docs/deploy.md's Grafana provisioning example is one the ClickHouse data source plugin
(grafana-clickhouse-datasource) takes: its `otelVersion` is one of the plugin's schema
versions, not a menu name (`1.2.9` leaves the trace view without the OTel column map), and
every key is a field of the plugin's configuration type.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
# The `version` values of the plugin's OTel schema versions (src/otel.ts, plugin 4.20);
# "latest" resolves to the newest.
OTEL_VERSIONS = {"latest", "1.30.0", "1.29.0"}
# Fields of the plugin's CHConfig, CHTracesConfig and CHSecureConfig (src/types/config.ts).
JSON_DATA = {"version", "host", "port", "protocol", "secure", "path", "tlsSkipVerify",
             "tlsAuth", "tlsAuthWithCACert", "username", "defaultDatabase", "defaultTable",
             "dialTimeout", "queryTimeout", "validateSql", "logs", "traces", "customSettings",
             "enableSecureSocksProxy"}
TRACES = {"defaultDatabase", "defaultTable", "otelEnabled", "otelVersion", "traceIdColumn",
          "spanIdColumn", "operationNameColumn", "parentSpanIdColumn", "serviceNameColumn",
          "durationColumn", "durationUnit", "startTimeColumn", "tagsColumn", "serviceTagsColumn"}
SECURE = {"password", "tlsCACert", "tlsClientCert", "tlsClientKey"}


def _grafana_example() -> dict:
    section = DOC.read_text().split("## Grafana", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    return yaml.safe_load(block)


def test_the_grafana_example_is_a_configuration_the_plugin_takes():
    (source,) = _grafana_example()["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    json_data = source["jsonData"]
    assert set(json_data) <= JSON_DATA, set(json_data) - JSON_DATA
    assert set(json_data["traces"]) <= TRACES, set(json_data["traces"]) - TRACES
    assert set(source["secureJsonData"]) <= SECURE
    assert json_data["protocol"] in ("http", "native") and isinstance(json_data["port"], int)
    traces = json_data["traces"]
    assert traces["otelEnabled"] is True and traces["otelVersion"] in OTEL_VERSIONS
    assert traces["defaultTable"] == "otel_traces"
