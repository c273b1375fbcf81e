"""The metric points a process produced, held until the recorder's next flush makes them spans.

Points come in groups: one per (source, metric file URI, tracker run). Each group's points
become `metrics` spans (parallel arrays of names, values and steps, in the order observed)
at the recorder's flushes and at exit. Memory and span size are bounded per metric name of a
group: its first `HEAD_POINTS` points go out as they come; later ones are thinned evenly
(every point, then every second, fourth, ... as they accumulate, at most `TAIL_POINTS`
kept), and the last one is always kept; those go out at exit. A metric logged at every step
of a long run thus keeps its start, an even sample of the rest, and its final value; the
span says how many points were left out (`provenance.metrics.left_out`), so a thinned series
is never mistaken for the whole.

A tracker run the program starts is `announce`d: a span with no points names it at the
next flush, so the runs of a clew run that log no metric are named too.

A metric's name is recorded with any secret in it replaced (`redaction.redact_key`): a
program may log values under names built from connection URLs.

A metric file's points replace the group's instead (`replace`): each parse is of the whole
file as it now is. A parse that begins with the points of the file's last emitted parse (a
file appended to, or rewritten with its old rows first: Lightning's `metrics.csv`, an event
file) adds only the points after them, so a long run's growing file is not emitted again at
each of its versions; any other parse (a `metrics.json` rewritten each epoch) is emitted
whole, its newer points the final ones.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Iterator

from opentelemetry.util.types import Attributes

from clew.semconv import attributes as attr
from clew.semconv.redaction import redact_key

HEAD_POINTS = 500
# Odd, so the point whose arrival fills the tail survives the halving that follows.
TAIL_POINTS = 499
MAX_POINTS_PER_NAME = HEAD_POINTS + TAIL_POINTS + 1  # documented in docs/semconv.md
SPAN_MAX_POINTS = 4096  # keeps one span well under OTLP's usual 4 MiB message limit

GroupKey = tuple[str, str | None, str | None]
"""(source, metric file URI or None, tracker run or None)."""

_Point = tuple[int, str, float, int]  # (order of arrival, name, value, step; -1: no step)


def metric_value(value: object) -> float | None:
    """`value` as a float when it is a finite real number (numpy's scalars included); None for
    anything else: bools, strings, NaN and infinities are no metric values."""
    kind = type(value)
    if kind is not float and kind is not int:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a double
        return None
    return number if math.isfinite(number) else None


class _Series:
    """The points of one metric name of one group beyond its first HEAD_POINTS."""

    __slots__ = ("count", "stride", "tail", "last")

    def __init__(self) -> None:
        self.count = 0  # points of this name seen, kept or not
        self.stride = 1  # a tail point is kept when its index past the head divides by this
        self.tail: list[_Point] = []
        self.last: _Point | None = None  # the latest point, when the stride skipped it

    def keep(self, point: _Point) -> None:
        index = self.count - HEAD_POINTS
        if index % self.stride:
            self.last = point
            return
        self.last = None
        self.tail.append(point)
        if len(self.tail) == TAIL_POINTS:
            # Every kept index was a multiple of stride: halving keeps the multiples of twice it.
            del self.tail[1::2]
            self.stride *= 2

    def take_tail(self) -> tuple[list[_Point], int]:
        """The tail points kept, and how many past the head were left out."""
        points = self.tail + ([self.last] if self.last is not None else [])
        self.tail, self.last = [], None
        return points, max(self.count - HEAD_POINTS, 0) - len(points)


_Parse = tuple[int, int]  # a metric file's parse: (its number of points, the hash of them all)


class _Group:
    __slots__ = ("pending", "series", "first_ns", "last_ns", "unnamed", "left_out", "parsed",
                 "emitted")

    def __init__(self) -> None:
        self.unnamed = False  # a tracker run announced, not yet named by a span
        self.left_out = 0  # points the bound left out, not yet said on a span
        self.parsed: _Parse | None = None  # the metric file parse the pending points are of
        self.emitted: _Parse | None = None  # the last parse whose points went out
        self.pending: list[_Point] = []
        self.series: dict[str, _Series] = {}
        self.first_ns = 0  # when the first pending point came
        self.last_ns = 0


class MetricPoints:
    """The buffer: hooks `add` on the host's threads (an append under a lock), the recorder
    `take`s at each flush. A forked child's recorder makes a new one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[GroupKey, _Group] = {}
        self._arrivals = 0

    def add(self, key: GroupKey, name: str, value: float, step: int, now_ns: int) -> None:
        """One point, as observed."""
        with self._lock:
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group()
            series = group.series.get(name)
            if series is None:
                series = group.series[name] = _Series()
            point = (self._arrivals, name, value, step)
            self._arrivals += 1
            if series.count < HEAD_POINTS:
                group.pending.append(point)
            else:
                series.keep(point)
            series.count += 1
            if not group.first_ns:
                group.first_ns = now_ns
            group.last_ns = now_ns

    def announce(self, key: GroupKey, now_ns: int) -> None:
        """A tracker run started: the next `take` names it by a span, points or none (a run
        that logs no metric is named too); a group seen before needs no naming."""
        with self._lock:
            if key not in self._groups:
                group = self._groups[key] = _Group()
                group.unnamed = True
                group.first_ns = group.last_ns = now_ns

    def replace(self, key: GroupKey, points: list[tuple[str, float, int]], now_ns: int) -> None:
        """The group's points are now these (a metric file parsed whole), less those of the
        last emitted parse when they begin with them; thinned evenly to MAX_POINTS_PER_NAME
        per name; points of an earlier parse not yet emitted are dropped."""
        by_name: dict[str, list[_Point]] = {}
        with self._lock:
            previous = self._groups.get(key)
            emitted = previous.emitted if previous is not None else None
            start = 0
            if emitted is not None and len(points) >= emitted[0] and (
                    hash(tuple(points[: emitted[0]])) == emitted[1]):
                start = emitted[0]
            for name, value, step in points[start:]:
                by_name.setdefault(name, []).append((self._arrivals, name, value, step))
                self._arrivals += 1
            group = self._groups[key] = _Group()
            kept = [point for series in by_name.values() for point in _thinned(series)]
            group.pending = sorted(kept)
            group.left_out = sum(map(len, by_name.values())) - len(kept)
            group.parsed, group.emitted = (len(points), hash(tuple(points))), emitted
            group.first_ns = group.last_ns = now_ns

    def take(self, *, final: bool) -> list[tuple[GroupKey, int, int, list[_Point], int]]:
        """(group, first time, last time, points in arrival order, points left out) of each
        group with points to emit; at exit (`final`) the thinned tails too."""
        taken = []
        with self._lock:
            for key, group in self._groups.items():
                points = group.pending
                if final:
                    tails = []
                    for series in group.series.values():
                        tail, left_out = series.take_tail()
                        tails += tail
                        group.left_out += left_out
                    if tails:
                        points = sorted(points + tails)
                if points or group.unnamed:
                    # Only thinned tail points waiting: they span up to the last point.
                    taken.append((key, group.first_ns or group.last_ns, group.last_ns, points,
                                  group.left_out))
                    group.left_out = 0
                group.pending, group.first_ns, group.unnamed = [], 0, False
                if group.parsed is not None:
                    group.emitted, group.parsed = group.parsed, None
        return taken


def _thinned(points: list[_Point]) -> list[_Point]:
    """At most MAX_POINTS_PER_NAME of `points`, evenly spaced, the first and last kept."""
    count = len(points)
    if count <= MAX_POINTS_PER_NAME:
        return points
    last = MAX_POINTS_PER_NAME - 1
    return [points[i * (count - 1) // last] for i in range(MAX_POINTS_PER_NAME)]


def span_attributes(key: GroupKey, points: list[_Point], pid: int, left_out: int = 0
                    ) -> Iterator[Attributes]:
    """The attributes of the `metrics` spans of one group's points, SPAN_MAX_POINTS a span
    (one span with empty arrays for a tracker run with no points yet); the first says how
    many points the bound left out, if any."""
    source, uri, tracker_run = key
    for start in range(0, max(len(points), 1), SPAN_MAX_POINTS):
        chunk = points[start : start + SPAN_MAX_POINTS]
        attributes: dict = {attr.PROVENANCE_METRIC_SOURCE: source}
        if uri is not None:
            attributes[attr.PROVENANCE_ARTIFACT_URI] = uri
        if tracker_run is not None:
            attributes[attr.PROVENANCE_TRACKER_RUN] = tracker_run
        attributes[attr.PROVENANCE_METRICS_NAME] = [redact_key(p[1]) for p in chunk]
        attributes[attr.PROVENANCE_METRICS_VALUE] = [p[2] for p in chunk]
        attributes[attr.PROVENANCE_METRICS_STEP] = [p[3] for p in chunk]
        if left_out and not start:
            attributes[attr.PROVENANCE_METRICS_LEFT_OUT] = left_out
        attributes[attr.PROCESS_PID] = pid
        yield attributes
