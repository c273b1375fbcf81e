"""`clew why METRIC [RUN]`: why a metric moved, from the runs of one program.

The series is the program's runs that recorded the metric, oldest first, each with the
metric's final value (as `clew metrics`) and its value of each cause that varies across them
(as `clew diff` compares causes: inputs, config keys, code, packages, arguments,
environment). Between consecutive runs (a step) the metric moves by a delta, and some causes
change.

**Moved.** A step moved the metric when |delta| is above the tolerance: the one given, else
the larger of three times the metric's noise (the median |delta| over the steps where no
recorded cause changed) and 0.1 % of the median |value| over the series. With no such steps
the noise is 0. A move at a step where nothing recorded changed is unexplained (a seed, a
cause clew does not see).

**The run's move.** The run (default: the newest with the metric) against the previous run of
the series: its delta, and every cause that changed between them, ranked by what the other
steps say of each: `supported` (each of its other changes moved the metric), `mixed` (some
did), `untested` (it never changed elsewhere), `contradicted` (its other changes never moved
it). Two causes that changed together here and never apart cannot be separated by the data:
the answer says so.

**The series.** For each varying cause, the steps where it changed, with the delta and
whether the metric moved at each, and what else changed there; `moved` is "always", "never"
or "sometimes". Causes that changed at exactly the same steps are `confounded`.

`--format json` schema 1: `{"schema": 1, "metric", "program", "tolerance", "tolerance_from":
"given"|"noise"|"relative", "run": POINT, "previous": POINT|null, "delta", "moved", "causes":
[{"section", "name", "before", "after", "evidence", "changes", "moves", "note"}], "series":
[{"run_id", "start", "value", "delta", "moved", "changed": [CAUSE]}], "history":
[{"section", "name", "moved", "changes": [{"run_id", "before", "after", "delta", "moved",
"with": [CAUSE]}]}], "confounded": [[CAUSE]], "never_moved": [CAUSE], "unexplained":
[{"run_id", "delta"}], "summary": [SENTENCE]}`, where POINT is `{"run_id", "start", "value"}`
and CAUSE `{"section", "name"}`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from clew.exporter.store.schema import SchemaOptions
from clew.semconv.digests import BLAKE3_PREFIX
from clew.semconv.uris import path_of_file_uri

from ._observed import final_values
from .diff import number_text
from .lineage import Tables
from .metrics import Cause, program_runs, varying_causes
from .runs import iso_utc, resolve_run

# Below three times the noise a delta is noise; a metric with no noise needs 0.1 % of its
# typical size to have moved.
NOISE_FACTOR = 3.0
RELATIVE_TOLERANCE = 1e-3
# Evidence for a cause of the run's move, most telling first.
EVIDENCE = ("supported", "mixed", "untested", "contradicted")


@dataclass
class Point:
    run_id: str
    start: str
    value: float


@dataclass
class RankedCause:
    """A cause that changed between the previous run and the run, with what the series'
    other steps say of it: it changed there `changes` times and the metric moved `moves`."""

    section: str
    name: str
    before: str
    after: str
    evidence: str
    changes: int
    moves: int
    note: str = ""


@dataclass
class Step:
    """A run of the series against the one before it (the first: delta None)."""

    run_id: str
    start: str
    value: float
    delta: float | None
    moved: bool | None
    changed: list[Cause] = field(default_factory=list)


@dataclass
class CauseChange:
    run_id: str
    before: str | None
    after: str | None
    delta: float
    moved: bool
    with_: list[Cause] = field(default_factory=list)


@dataclass
class History:
    """One varying cause over the series: where it changed; `moved` "always", "never" or
    "sometimes"."""

    section: str
    name: str
    moved: str
    changes: list[CauseChange]


@dataclass
class WhyAnswer:
    metric: str
    program: str
    tolerance: float
    tolerance_from: str
    run: Point
    previous: Point | None
    delta: float | None
    moved: bool | None
    causes: list[RankedCause]
    series: list[Step]
    history: list[History]
    confounded: list[list[Cause]]
    never_moved: list[Cause]
    unexplained: list[tuple[str, float]]
    schema: int = 1

    def sentences(self, label: Callable[[Cause], str] | None = None) -> list[str]:
        """The answer in plain sentences, causes named by `label` (default: section and
        name, a file by its path)."""
        return _sentences(self, label or cause_label)

    def to_json(self) -> dict[str, Any]:
        """The answer in `--format json` schema 1."""
        def cause(c: Cause) -> dict[str, str]:
            return {"section": c.section, "name": c.name}

        return {
            "schema": self.schema, "metric": self.metric, "program": self.program,
            "tolerance": self.tolerance, "tolerance_from": self.tolerance_from,
            "run": asdict(self.run), "previous": self.previous and asdict(self.previous),
            "delta": self.delta, "moved": self.moved,
            "causes": [asdict(c) for c in self.causes],
            "series": [{"run_id": s.run_id, "start": s.start, "value": s.value,
                        "delta": s.delta, "moved": s.moved,
                        "changed": [cause(c) for c in s.changed]} for s in self.series],
            "history": [{"section": h.section, "name": h.name, "moved": h.moved,
                         "changes": [{"run_id": c.run_id, "before": c.before,
                                      "after": c.after, "delta": c.delta, "moved": c.moved,
                                      "with": [cause(w) for w in c.with_]}
                                     for c in h.changes]} for h in self.history],
            "confounded": [[cause(c) for c in group] for group in self.confounded],
            "never_moved": [cause(c) for c in self.never_moved],
            "unexplained": [{"run_id": run, "delta": delta} for run, delta in self.unexplained],
            "summary": self.sentences(),
        }


def cause_label(cause: Cause) -> str:
    """A cause as the sentences name it: its section and name, a local file by its path."""
    name = cause.name
    if cause.section in ("input", "config") and name.startswith("file://"):
        uri, _, key = name.partition(": ")
        name = path_of_file_uri(uri) + (f": {key}" if key else "")
    return f"{cause.section} {name}"


def _tolerance(values: list[float], quiet: list[float], given: float | None
               ) -> tuple[float, str]:
    if given is not None:
        return given, "given"
    noise = NOISE_FACTOR * statistics.median(quiet) if quiet else 0.0
    relative = RELATIVE_TOLERANCE * statistics.median(abs(v) for v in values)
    return (noise, "noise") if noise > relative else (relative, "relative")


def _steps(rows: list[dict[str, Any]], values: list[float],
           causes: dict[Cause, list[str | None]], given: float | None
           ) -> tuple[list[Step], float, str]:
    changed = [[c for c, series in causes.items() if series[i] != series[i - 1]] if i else []
               for i in range(len(rows))]
    quiet = [abs(values[i] - values[i - 1]) for i in range(1, len(rows)) if not changed[i]]
    tolerance, source = _tolerance(values, quiet, given)
    steps = []
    for i, row in enumerate(rows):
        delta = values[i] - values[i - 1] if i else None
        steps.append(Step(row["RunId"], iso_utc(row["Start"]), values[i], delta,
                          None if delta is None else abs(delta) > tolerance, changed[i]))
    return steps, tolerance, source


def _history(steps: list[Step], causes: dict[Cause, list[str | None]]) -> list[History]:
    found = []
    for cause, series in causes.items():
        changes = [CauseChange(step.run_id, series[i - 1], series[i], step.delta or 0.0,
                               bool(step.moved), [c for c in step.changed if c != cause])
                   for i, step in enumerate(steps) if cause in step.changed]
        moves = sum(change.moved for change in changes)
        moved = "never" if not moves else "always" if moves == len(changes) else "sometimes"
        found.append(History(cause.section, cause.name, moved, changes))
    return found


def _confounded(steps: list[Step], causes: list[Cause]) -> list[list[Cause]]:
    """Causes (two or more) that changed at exactly the same steps."""
    groups: dict[tuple[str, ...], list[Cause]] = {}
    for cause in causes:
        at = tuple(step.run_id for step in steps if cause in step.changed)
        groups.setdefault(at, []).append(cause)
    return [group for group in groups.values() if len(group) > 1]


def _ranked(steps: list[Step], causes: dict[Cause, list[str | None]], place: int,
            confounded: list[list[Cause]]) -> list[RankedCause]:
    """The causes that changed at `step`, most likely first, each with what the series'
    other steps say of it."""
    step = steps[place]
    ranked = []
    for cause in step.changed:
        others = [s for s in steps if s is not step and cause in s.changed]
        moves = sum(bool(s.moved) for s in others)
        evidence = ("untested" if not others else "supported" if moves == len(others)
                    else "contradicted" if not moves else "mixed")
        together = next((g for g in confounded if cause in g), [])
        note = ""
        if together:
            note = ("always changed together with "
                    + ", ".join(cause_label(c) for c in together if c != cause)
                    + ": the data cannot separate them")
        elif others:
            note = (f"changed in {len(others)} other run{'s' * (len(others) > 1)} of the "
                    f"series; the metric moved at {moves} of them")
        series = causes[cause]
        ranked.append(RankedCause(cause.section, cause.name, series[place - 1] or "",
                                  series[place] or "", evidence, len(others), moves, note))
    ranked.sort(key=lambda c: (EVIDENCE.index(c.evidence), -c.moves, c.changes - c.moves))
    return ranked


def why(
    client: Any,
    metric: str,
    run: str | None = None,
    *,
    tolerance: float | None = None,
    options: SchemaOptions | None = None,
) -> WhyAnswer:
    """Why `metric` moved in `run` (an id or unique prefix; default: the newest run that
    recorded it), against the previous run of its program, and what the program's other runs
    say of each cause. `tolerance`: the |delta| above which the metric moved (default: from
    its noise, see the module's documentation).

    Raises:
        LookupError: no run recorded the metric, or `run` did not.
    """
    tables = Tables(client, options)
    if run is not None:
        run = resolve_run(client, run, options=options)
    program, rows = program_runs(tables, names=[metric], run=run)
    ids = [row["RunId"] for row in rows]
    by_run = final_values(tables, ids, [metric])
    values = [by_run[run_id][metric] for run_id in ids]
    causes = varying_causes(tables, rows)
    steps, limit, source = _steps(rows, values, causes, tolerance)
    place = ids.index(run) if run is not None else len(ids) - 1
    step = steps[place]
    history = _history(steps, causes)
    confounded = _confounded(steps, list(causes))
    previous = steps[place - 1] if place else None
    return WhyAnswer(
        metric=metric, program=program, tolerance=limit, tolerance_from=source,
        run=Point(step.run_id, step.start, step.value),
        previous=previous and Point(previous.run_id, previous.start, previous.value),
        delta=step.delta, moved=step.moved,
        causes=_ranked(steps, causes, place, confounded) if previous else [],
        series=steps, history=history, confounded=confounded,
        never_moved=[Cause(h.section, h.name) for h in history if h.moved == "never"],
        unexplained=[(s.run_id, s.delta) for s in steps
                     if s.moved and not s.changed and s.delta is not None],
    )


def _sentences(answer: WhyAnswer, label: Callable[[Cause], str]) -> list[str]:
    metric, run = answer.metric, answer.run
    said = []
    if answer.previous is None:
        said.append(f"run {run.run_id[:12]} is the first run of {answer.program} with "
                    f"{metric} ({number_text(run.value)}): there is nothing to compare it with")
    else:
        delta = answer.delta or 0.0
        move = (f"moved by {'+' if delta > 0 else ''}{delta:.6g}" if answer.moved
                else f"did not move ({'+' if delta > 0 else ''}{delta:.6g}, within "
                     f"{answer.tolerance:.3g})")
        said.append(f"{metric} {move} in run {run.run_id[:12]} "
                    f"({number_text(answer.previous.value)} -> {number_text(run.value)}) "
                    f"against run {answer.previous.run_id[:12]}, the previous run of "
                    f"{answer.program}")
        if not answer.causes:
            said.append("no recorded cause changed between them"
                        + (": the move is unexplained (a seed, or a cause clew does not see)"
                           if answer.moved else ""))
        for cause in answer.causes:
            said.append(f"{label(Cause(cause.section, cause.name))} changed "
                        f"({brief(cause.before)} -> {brief(cause.after)}): "
                        f"{_evidence_text(cause, metric)}")
        if answer.moved:
            said += _separation(answer, label)
    for history in answer.history:
        runs = ", ".join(c.run_id[:12] for c in history.changes)
        said.append(f"{label(Cause(history.section, history.name))} changed in "
                    f"{len(history.changes)} run{'s' * (len(history.changes) > 1)} ({runs}): "
                    + {"always": f"{metric} moved every time",
                       "never": f"{metric} never moved",
                       "sometimes": f"{metric} moved at "
                       f"{sum(c.moved for c in history.changes)} of them"}[history.moved])
    for step in answer.series:
        if step.moved and len(step.changed) > 1:
            said.append(f"in run {step.run_id[:12]} {metric} moved while "
                        f"{' and '.join(label(c) for c in step.changed)} changed together: "
                        "that run alone cannot separate them (confounded there)")
    for group in answer.confounded:
        said.append(f"{' and '.join(label(c) for c in group)} always changed together: the "
                    "data cannot separate them")
    for run_id, delta in answer.unexplained:
        said.append(f"{metric} moved by {delta:+.6g} in run {run_id[:12]} with no recorded "
                    "cause changed")
    return said


def brief(value: str) -> str:
    """A value for a sentence: a digest by its first 12 hex digits, nothing as "absent"."""
    if value.startswith(BLAKE3_PREFIX) and len(value) > 20:
        return value[:len(BLAKE3_PREFIX) + 12] + "…"
    return value or "absent"


def _evidence_text(cause: RankedCause, metric: str) -> str:
    if cause.evidence == "untested":
        return "it changed in no other run of the series"
    if cause.evidence == "supported":
        times = "the other time" if cause.changes == 1 else f"each of the {cause.changes} other times"
        return f"{metric} moved {times} it changed"
    if cause.evidence == "contradicted":
        return f"its {cause.changes} other change{'s' * (cause.changes > 1)} never moved {metric}"
    return f"{metric} moved at {cause.moves} of its {cause.changes} other changes"


def _separation(answer: WhyAnswer, label: Callable[[Cause], str]) -> list[str]:
    """Whether the data tells apart the causes of the run's move."""
    if len(answer.causes) < 2:
        return []
    names = [label(Cause(c.section, c.name)) for c in answer.causes]
    likely = [n for n, c in zip(names, answer.causes) if c.evidence in ("supported", "mixed")]
    open_ = [n for n, c in zip(names, answer.causes) if c.evidence == "untested"]
    if len(likely) == 1 and not open_:
        return [f"the move points to {likely[0]}: the other causes that changed with it did "
                "not move the metric elsewhere"]
    if len(likely) + len(open_) > 1:
        return [f"the data cannot separate {' and '.join(likely + open_)}: they changed "
                "together here, and the other runs do not tell them apart"]
    return []
