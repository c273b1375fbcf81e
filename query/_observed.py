"""What runs recorded of their metrics and config files, read from the store for the questions
that compare runs (`clew diff`, `clew metrics`, `clew why`)."""

from __future__ import annotations

from clew.exporter.store.lineage import CONFIG_TABLE, METRICS_TABLE
from clew.exporter.store.schema import qualified_name
from clew.semconv import attributes as attr
from clew.semconv import spans

from .lineage import Tables


def final_values(tables: Tables, runs: list[str], names: list[str] | None = None
                 ) -> dict[str, dict[str, float]]:
    """Each run's final value of each metric (of `names`, when given), by run id."""
    metrics = qualified_name(tables.options, METRICS_TABLE)
    where = "AND Name IN %(names)s" if names else ""
    found: dict[str, dict[str, float]] = {run: {} for run in runs}
    # Aggregated in the table's order (Name, RunId, ...): a third of the time of a hash
    # aggregation over 200,000 points (1,000 runs of 20 metrics of 10 steps).
    for run_id, name, value in tables.rows(
        f"SELECT RunId, Name, argMax(Value, (Step, Timestamp, Seq)) FROM {metrics} "
        f"WHERE RunId IN %(runs)s {where} GROUP BY Name, RunId ORDER BY Name "
        "SETTINGS optimize_aggregation_in_order = 1",
        runs=runs, names=names or [],
    ):
        found[run_id][name] = value
    return found


def tracker_runs(tables: Tables, runs: list[str]) -> dict[str, list[str]]:
    """Each run's tracker runs (`mlflow:<run_id>`, `wandb:<path>`), by run id. Read from the
    `metrics` spans themselves: a tracker run that logged no metric is named by a span with no
    points, which leaves no row in clew_metrics."""
    traces = qualified_name(tables.options, tables.options.traces_table)
    found: dict[str, list[str]] = {run: [] for run in runs}
    for run_id, tracker in tables.rows(
        f"SELECT DISTINCT TraceId, SpanAttributes[%(key)s] AS Tracker FROM {traces} "
        "WHERE SpanName = %(span)s AND TraceId IN %(runs)s AND Tracker != '' "
        "ORDER BY TraceId, Tracker",
        key=attr.PROVENANCE_TRACKER_RUN, span=spans.SPAN_METRICS, runs=runs,
    ):
        found[run_id].append(tracker)
    return found


def config_name(uri: str, key: str) -> str:
    """A config key's name as a cause: `URI: key` (a URI has no space: it splits at ": ")."""
    return f"{uri}: {key}"


def _slots(files: dict[str, set[str]], runs: list[str]) -> dict[str, str]:
    """The name each config file's keys are compared under: its own URI; but when some runs
    read config files that not every run read and none read more than one of those (a run
    given a config file of its own, `--config experiments/lr-0.1.json`), those files count
    as one config, named by the one the newest of them read."""
    named = {uri: uri for found in files.values() for uri in found}
    every = set.intersection(*(files.get(run, set()) for run in runs))
    swapped = [files.get(run, set()) - every for run in runs]
    if all(len(found) <= 1 for found in swapped) and len(set().union(*swapped)) > 1:
        newest = next(next(iter(found)) for found in reversed(swapped) if found)
        named.update({uri: newest for found in swapped for uri in found})
    return named


def config_values(tables: Tables, runs: list[str]
                  ) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Each run's config keys by name (`config_name`), the value of the last version of the
    file it read; and the name each config file's keys go by (see `_slots`)."""
    config = qualified_name(tables.options, CONFIG_TABLE)
    rows = tables.rows(
        f"SELECT RunId, Uri, Key, argMax(Value, Timestamp) FROM {config} "
        "WHERE RunId IN %(runs)s GROUP BY RunId, Uri, Key", runs=runs)
    files: dict[str, set[str]] = {}
    for run, uri, _, _ in rows:
        files.setdefault(run, set()).add(uri)
    slots = _slots(files, runs)
    values: dict[str, dict[str, str]] = {run: {} for run in runs}
    for run, uri, key, value in rows:
        values[run][config_name(slots[uri], key)] = value
    return values, slots
