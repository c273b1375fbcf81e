"""Metric files a run writes: which files are, and the metric points in one.

Which files count is a list of globs (`CLEW_METRIC_FILES`, by default
`environment.DEFAULT_METRIC_FILES`), matched on clew's worker when a write's content has
settled: a file that matches none costs that name check only. A matching file of at most
`environment.METRIC_FILE_MAX_BYTES` is read once per content version and parsed by its kind:

- JSON and YAML: every numeric leaf under its dotted path (`eval.accuracy`), no step; a
  document that is a list of records with a `step` or `epoch` key is a series (below), and
  one such record alone is that series' point at its step;
- transformers' `trainer_state.json`: its `log_history` as a series, and `best_metric`;
- CSV and TSV with a header: the last row's numeric cells, no step; with a `step` or `epoch`
  column (Lightning's `metrics.csv`), every row, as a series. A table whose first row holds a
  number has no header, so no names for its columns: no points;
- TensorBoard event files (`events.out.tfevents.*`): their scalars (`_tfevents`);
- MLflow's file store (`mlruns/<experiment>/<run>/metrics/<name>`): one metric per file, its
  `timestamp value step` lines, tied to the MLflow run.

In a series each record's `step` (else its integral `epoch`) is the step of its points, and
these index keys are not metrics themselves. Booleans, strings and non-finite numbers are not
metrics. A JSON or YAML document with more leaves than a file of the size cap can hold (YAML
aliases repeating nodes) gives no points.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import re
import struct
from collections.abc import Iterable, Iterator
from typing import Any

from clew.semconv import environment
from clew.semconv.attributes import ProvenanceMetricSourceValues as Source

from . import _structured_files, _tfevents
from ._metric_points import metric_value

Point = tuple[str, float, int]
"""(metric name, value, step; -1: none)."""

_INDEX_KEYS = ("step", "epoch")  # in this order of preference
_MLFLOW_METRIC = re.compile(r"/mlruns/[^/]+/([^/]+)/metrics/(.+)\Z", re.DOTALL)
_TFEVENTS_PREFIX = "events.out.tfevents."
_TRAINER_STATE = "trainer_state.json"
# A numeric leaf takes at least two bytes of JSON (`1,`): a document with more leaves than this
# repeats nodes through YAML aliases.
_MAX_DOCUMENT_POINTS = environment.METRIC_FILE_MAX_BYTES // 2


class MetricFiles:
    """Which paths are metric files, from globs: one without `/` is matched against the file's
    name, one with `/` against the end of its path."""

    def __init__(self, globs: Iterable[str]) -> None:
        names = [fnmatch.translate(g) for g in globs if "/" not in g]
        ends = ["(?s:.*/)" + fnmatch.translate(g) for g in globs if "/" in g]
        self._names = re.compile("|".join(names)) if names else None
        self._ends = re.compile("|".join(ends)) if ends else None

    def match(self, path: str) -> bool:
        names, ends = self._names, self._ends
        if names is not None and names.match(path, path.rfind("/") + 1):
            return True
        return ends is not None and ends.match(path) is not None


def points(path: str, data: bytes) -> tuple[str, str | None, list[Point]] | None:
    """(source, tracker run, points) of the metric file `path` holding `data`; None for a file
    of no kind clew reads metrics from, or one that does not parse."""
    name = path.rpartition("/")[2]
    try:
        if name.startswith(_TFEVENTS_PREFIX):
            return Source.TENSORBOARD.value, None, list(_tfevents.scalars(data))
        mlflow = _MLFLOW_METRIC.search(path)
        if mlflow is not None:
            return Source.FILE.value, f"mlflow:{mlflow.group(1)}", _mlflow_points(
                mlflow.group(2), data.decode("utf-8", "replace"))
        if name.endswith((".csv", ".tsv")):
            text = data.decode("utf-8-sig", "replace")
            return Source.FILE.value, None, _table_points(text, "\t" if name.endswith(".tsv") else ",")
        if name.endswith(_structured_files.JSON_SUFFIXES + _structured_files.YAML_SUFFIXES):
            document = _structured_files.parse(data, path)
            if name == _TRAINER_STATE and isinstance(document, dict):
                return Source.FILE.value, None, _bounded(_trainer_state_points(document))
            return Source.FILE.value, None, _bounded(_document_points(document))
    except (ValueError, IndexError, struct.error, RecursionError):
        return None  # a malformed file: the program's business
    return None


def _bounded(found: Iterable[Point]) -> list[Point]:
    """The points of a JSON or YAML document, at most as many as its file's size allows.

    YAML's aliases let a few kilobytes name a billion leaves (each alias repeats the whole
    node it names): such a document is refused before clew's worker walks it."""
    kept = list(itertools.islice(found, _MAX_DOCUMENT_POINTS + 1))
    if len(kept) > _MAX_DOCUMENT_POINTS:
        raise ValueError("more leaves than a metric file of the size cap can hold")
    return kept


def _cell_number(cell: str) -> float | None:
    try:
        number = float(cell)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _step(value: Any) -> int:
    """An index key's value as a step: an integral number, else -1."""
    number = metric_value(value) if not isinstance(value, str) else _cell_number(value)
    return int(number) if number is not None and number.is_integer() else -1


def _document_points(document: Any) -> Iterator[Point]:
    if isinstance(document, list) and document and all(isinstance(r, dict) for r in document):
        yield from _series_points(document)
    elif isinstance(document, dict) and any(key in document for key in _INDEX_KEYS):
        # One record a run rewrites as it goes ({"step": 300, "loss": 0.2}): its points are
        # at that step, and the step itself is no metric.
        yield from _series_points([document])
    elif isinstance(document, dict):
        for name, leaf in _structured_files.leaves(document):
            number = metric_value(leaf)
            if number is not None:
                yield name, number, -1


def _series_points(records: list[dict]) -> Iterator[Point]:
    """The points of a list of records, each record's step its `step` or `epoch` key."""
    for record in records:
        index = next((record[key] for key in _INDEX_KEYS if key in record), None)
        step = _step(index) if index is not None else -1
        for key, value in record.items():
            if key in _INDEX_KEYS:
                continue
            for name, leaf in _structured_files.leaves(value, str(key)):
                number = metric_value(leaf)
                if number is not None:
                    yield name, number, step


def _trainer_state_points(state: dict) -> Iterator[Point]:
    history = state.get("log_history")
    if isinstance(history, list):
        yield from _series_points([r for r in history if isinstance(r, dict)])
    best = metric_value(state.get("best_metric"))
    if best is not None:
        yield "best_metric", best, _step(state.get("global_step", -1))


def _table_points(text: str, delimiter: str) -> list[Point]:
    import csv  # when a table is first parsed: every observed process loads this module
    import io

    try:
        rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]
    except csv.Error:  # a field over csv's size limit: not a table of metrics
        return []
    if len(rows) < 2:
        return []
    header = [column.strip() for column in rows[0]]
    if any(_cell_number(column) is not None for column in header):
        return []  # no header (its first row holds numbers): no names for the columns
    lowered = [column.lower() for column in header]
    index = next((lowered.index(key) for key in _INDEX_KEYS if key in lowered), None)
    skipped = {i for i, column in enumerate(lowered) if column in _INDEX_KEYS}
    body = rows[1:] if index is not None else rows[-1:]
    found = []
    for row in body:
        step = _step(row[index]) if index is not None and index < len(row) else -1
        for column, cell in enumerate(row[: len(header)]):
            if column in skipped or not cell:
                continue
            number = _cell_number(cell)
            if number is not None:
                found.append((header[column], number, step))
    return found


def _mlflow_points(name: str, text: str) -> list[Point]:
    """An MLflow file-store metric file: `timestamp value step` a line (older stores: no
    step)."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        number = _cell_number(fields[1])
        if number is not None:
            found.append((name, number, _step(fields[2]) if len(fields) > 2 else -1))
    return found
