"""What runs recorded of their metrics and config files, read from the store for the questions
that compare runs (`clew diff`, `clew metrics`, `clew why`)."""

from __future__ import annotations

from clew.exporter.store.lineage import CONFIG_TABLE, METRICS_TABLE
from clew.exporter.store.schema import SchemaOptions, qualified_name

from .lineage import Tables


def final_values(tables: Tables, runs: list[str], names: list[str] | None = None
                 ) -> dict[str, dict[str, float]]:
    """Each run's final value of each metric (of `names`, when given), by run id."""
    metrics = qualified_name(tables.options, METRICS_TABLE)
    where = "AND Name IN %(names)s" if names else ""
    found: dict[str, dict[str, float]] = {run: {} for run in runs}
    for run_id, name, value in tables.rows(
        f"SELECT RunId, Name, argMax(Value, (Step, Timestamp, Seq)) FROM {metrics} "
        f"WHERE RunId IN %(runs)s {where} GROUP BY RunId, Name ORDER BY Name",
        runs=runs, names=names or [],
    ):
        found[run_id][name] = value
    return found


def config_files(tables: Tables, runs: list[str]) -> set[str]:
    """The URIs of the config files the runs read whose keys were recorded."""
    config = qualified_name(tables.options, CONFIG_TABLE)
    return {uri for (uri,) in tables.rows(
        f"SELECT DISTINCT Uri FROM {config} WHERE RunId IN %(runs)s", runs=runs)}


def config_sql(options: SchemaOptions) -> str:
    """Per run of `%(runs)s`, config file and key: the value of the last version read."""
    config = qualified_name(options, CONFIG_TABLE)
    return (f"SELECT RunId, Uri, Key, argMax(Value, Timestamp) AS Value FROM {config} "
            "WHERE RunId IN %(runs)s GROUP BY RunId, Uri, Key")


def config_name(uri: str, key: str) -> str:
    """A config key's name as a cause: `URI: key` (a URI has no space: it splits at ": ")."""
    return f"{uri}: {key}"
