"""`clew metrics`: a program's runs with their final metric values and the causes that vary
across them (like `dvc exp show`, from the runs as observed).

A metric's final value in a run is its point with the highest step; among points of one step
(and points with no step, -1), the last observed (span start, then place in the span).

A run's causes are what `clew diff` compares, each as one name and value: the content of
each input (by URI), each key of each config file it read (replacing the config file itself as
an input; config files that only some runs read, one each, count as one config), the code
(git commit and branch, uncommitted files, each imported source file's digest), each
installed package's version, each argument, and the environment. Only the
causes whose value is not the same in every run of the series are kept: a series of 1,000
runs carries what changed, not 1,000 copies of what did not.

`--format json` schema 1: `{"schema": 1, "program", "metrics": [NAME], "causes": [{"section",
"name"}], "runs": [{"run_id", "start", "status", "command", "metrics": {NAME: VALUE},
"causes": [VALUE or null], "trackers": [TRACKER_RUN]}]}`, runs oldest first; each run's
`causes` is parallel to the top-level list (null: the run had no such input, key, file or
argument); `trackers` names the MLflow and W&B runs it logged to (`mlflow:<run_id>`,
`wandb:<entity>/<project>/<run_id>`), whose side holds the tag or config key `clew.run_id`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from clew.exporter.store.lineage import METRICS_TABLE
from clew.exporter.store.schema import SchemaOptions, qualified_name

from ._observed import config_values, final_values, tracker_runs
from .diff import CAUSES, ROW_SECTIONS, data_files, program
from .lineage import IDENTITY_SQL, Tables
from .runs import iso_utc, resolve_run, run_status

# Run rows read for a series: what `row_causes` needs.
_RUN_COLUMNS = (
    "RunId, Start, Command, StatusCode, ExitCode, GitCommit, GitBranch, DiffFiles, CodeFiles, "
    "CodeDigests, Packages, Host, Runtime, Cwd"
)


@dataclass(frozen=True, order=True)
class Cause:
    """What may have moved a metric: `section` one of `clew diff`'s causes ("input",
    "config", "code", "package", "argument", "environment") and its `name` there (a URI, `URI:
    key`, `--lr`, a package name...)."""

    section: str
    name: str


@dataclass
class SeriesRun:
    """One run of the series: its final metric values, its value of each varying cause
    (the series' `causes`, in order; None when the run had none), and the tracker runs it
    logged to (`mlflow:<run_id>`, `wandb:<path>`), to look it up there."""

    run_id: str
    start: str
    status: str
    command: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    causes: list[str | None] = field(default_factory=list)
    trackers: list[str] = field(default_factory=list)


@dataclass
class Series:
    """A program's runs that recorded metrics, oldest first, and the causes that vary across
    them. `clew metrics --format json` is its `to_json()`."""

    program: str
    metrics: list[str]
    causes: list[Cause]
    runs: list[SeriesRun]
    schema: int = 1

    def to_json(self) -> dict[str, Any]:
        """The series in `--format json` schema 1."""
        return {"schema": self.schema, "program": self.program, "metrics": self.metrics,
                "causes": [{"section": c.section, "name": c.name} for c in self.causes],
                "runs": [{"run_id": r.run_id, "start": r.start, "status": r.status,
                          "command": r.command, "metrics": r.metrics, "causes": r.causes,
                          "trackers": r.trackers}
                         for r in self.runs]}


def _matches(wanted: str, name: str) -> bool:
    """`--program` as given (`train.py`, `-m pkg.train`) or as a path to the script."""
    return wanted in (name, os.path.basename(wanted))


def _run_rows(tables: Tables, metrics: str, names: list[str]) -> list[dict[str, Any]]:
    """The runs that recorded any of `names` (all metrics when empty), oldest first: their
    ids and commands (the rest of the row is read for one program's runs alone)."""
    where = "WHERE Name IN %(names)s" if names else ""
    return list(tables.client.query(
        f"SELECT RunId, Command FROM {tables.runs} FINAL WHERE RunId IN "
        f"(SELECT DISTINCT RunId FROM {metrics} {where}) ORDER BY Start, RunId",
        parameters={"names": names},
    ).named_results())


def _full_rows(tables: Tables, runs: list[str]) -> list[dict[str, Any]]:
    """The `clew_runs` rows of `runs`, oldest first."""
    return list(tables.client.query(
        f"SELECT {_RUN_COLUMNS} FROM {tables.runs} FINAL WHERE RunId IN %(runs)s "
        "ORDER BY Start, RunId", parameters={"runs": runs},
    ).named_results())


def _varying_inputs(tables: Tables, runs: list[str], skip: set[str]
                    ) -> dict[Cause, dict[str, str]]:
    """The inputs whose content is not the same in every run (or that not every run read),
    with each run's identity of it, in one GROUP BY; the URIs in `skip` are left out."""
    found: dict[Cause, dict[str, str]] = {}
    for uri, values in tables.rows(
        f"SELECT Uri, groupArray((RunId, identity)) FROM (SELECT RunId, Uri, "
        f"arrayStringConcat(arraySort(groupUniqArray({IDENTITY_SQL})), ' ') AS identity "
        f"FROM {tables.io} WHERE RunId IN %(runs)s AND Operation = 'read' GROUP BY RunId, Uri) "
        "GROUP BY Uri HAVING uniqExact(identity) > 1 OR count() < %(count)s",
        runs=runs, count=len(runs),
    ):
        if uri not in skip:
            found[Cause("input", uri)] = dict(values)
    return found


def _config(tables: Tables, runs: list[str]
            ) -> tuple[set[str], dict[Cause, dict[str, str]]]:
    """The config files the runs read whose keys were recorded, and the keys whose value is
    not the same in every run, with each run's value."""
    values, slots = config_values(tables, runs)
    by_name: dict[str, dict[str, str]] = {}
    for run, named in values.items():
        for name, value in named.items():
            by_name.setdefault(name, {})[run] = value
    return set(slots), {Cause("config", name): found for name, found in by_name.items()
                        if len(found) < len(runs) or len(set(found.values())) > 1}


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _varying_in_rows(rows: list[dict[str, Any]], data: set[str]
                     ) -> dict[Cause, list[str | None]]:
    """The causes the runs' `clew_runs` rows hold that are not the same in every run. Each
    section's values are made once per distinct content of its fields (1,000 runs of one
    program mostly share their 200 packages), and a section whose fields are the same in
    every run is skipped."""
    values: dict[Cause, list[str | None]] = {}
    for section, fields, values_of in ROW_SECTIONS:
        keys = [tuple(_frozen(row[name]) for name in fields) for row in rows]
        first = {key: place for place, key in reversed(list(enumerate(keys)))}
        if len(first) == 1:
            continue
        named = {key: values_of(rows[place], data) for key, place in first.items()}
        for name in sorted({name for found in named.values() for name in found}):
            by_key = {key: found.get(name) for key, found in named.items()}
            if len(set(by_key.values())) > 1:
                values[Cause(section, name)] = [by_key[key] for key in keys]
    return values


def varying_causes(tables: Tables, rows: list[dict[str, Any]]
                   ) -> dict[Cause, list[str | None]]:
    """Each cause whose value is not the same across the runs `rows` (oldest first), with
    its value in each run (None: absent), in `clew diff`'s order of sections."""
    runs = [row["RunId"] for row in rows]
    data = data_files(tables, sorted({p for row in rows for p in row["DiffFiles"]}), *runs)
    values = _varying_in_rows(rows, data)
    files, by_key = _config(tables, runs)
    by_run = {**_varying_inputs(tables, runs, files), **by_key}
    for cause, by_id in by_run.items():
        values[cause] = [by_id.get(run) for run in runs]
    order = {section: place for place, section in enumerate(CAUSES)}
    return dict(sorted(values.items(),
                       key=lambda item: (order[item[0].section], item[0].name)))


def program_runs(tables: Tables, *, program_name: str | None = None,
                 names: list[str] | None = None, run: str | None = None
                 ) -> tuple[str, list[dict[str, Any]]]:
    """The program (given, else that of `run`, else that of the newest run with metrics)
    and its runs that recorded any of `names` (any metric when none), oldest first.

    Raises:
        LookupError: no run recorded such metrics, or none of that program did.
    """
    rows = _run_rows(tables, qualified_name(tables.options, METRICS_TABLE), names or [])
    what = f"the metric {', '.join(names)}" if names else "metrics"
    if not rows:
        raise LookupError(f"no run in the store recorded {what} (`clew runs` lists the runs)")
    if run is not None:
        chosen = next((row for row in rows if row["RunId"] == run), None)
        if chosen is None:
            raise LookupError(f"run {run[:12]} recorded no {what}")
        program_name = program(list(chosen["Command"]))
    elif program_name is None:
        program_name = program(list(rows[-1]["Command"]))
    found = [r for r in rows if _matches(program_name, program(list(r["Command"])))]
    if not found:
        known = sorted({program(list(r["Command"])) for r in rows})
        raise LookupError(f"no run of {program_name} recorded {what}; programs with "
                          f"metrics: {', '.join(known)}")
    return program(list(found[-1]["Command"])), _full_rows(tables, [r["RunId"] for r in found])


def metrics_series(
    client: Any,
    *,
    program_name: str | None = None,
    names: list[str] | None = None,
    run: str | None = None,
    options: SchemaOptions | None = None,
) -> Series:
    """The runs of a program (default: that of the newest run with metrics; `run`: that
    run's) with their final values of the metrics `names` (default: all), oldest first, and
    the causes that vary across them.

    Raises:
        LookupError: no run recorded such metrics, or none of that program did.
    """
    tables = Tables(client, options)
    if run is not None:
        run = resolve_run(client, run, options=options)
    name, rows = program_runs(tables, program_name=program_name, names=names, run=run)
    run_ids = [row["RunId"] for row in rows]
    values = final_values(tables, run_ids, names)
    causes = varying_causes(tables, rows)
    trackers = tracker_runs(tables, run_ids)
    return Series(
        program=name,
        metrics=sorted({metric for found in values.values() for metric in found}),
        causes=list(causes),
        runs=[SeriesRun(row["RunId"], iso_utc(row["Start"]),
                        run_status(row["StatusCode"], row["ExitCode"]), list(row["Command"]),
                        values[row["RunId"]], [series[place] for series in causes.values()],
                        trackers[row["RunId"]])
              for place, row in enumerate(rows)],
    )
