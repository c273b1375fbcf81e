"""`clew report`: one self-contained HTML page of a program's metrics over its runs.

The page has no script and fetches nothing: each metric is an inline SVG chart of its final
value over the runs, oldest first (as `clew metrics`); a run where some cause changed against
the run before it is marked (a dashed line and a ring, its title listing the changes), and
each point links to that run's section further down: its command, code, status, what
changed, and its lineage one step each way (what it read, with digests, and what it wrote).
"""

from __future__ import annotations

import html
from typing import Any

from clew.exporter.store.lineage import OUTPUT_OPERATIONS
from clew.exporter.store.schema import SchemaOptions
from clew.semconv.uris import path_of_file_uri

from .diff import number_text
from .lineage import IDENTITY_SQL, Tables
from .metrics import Cause, Series, metrics_series
from .why import brief

# How many of a run's inputs and of its outputs its section lists (it says how many more).
LISTED = 25
_WIDTH, _HEIGHT, _MARGIN = 760, 220, 48

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
svg.metric { background: #fafafa; border: 1px solid #ddd; }
svg .line { fill: none; stroke: #3566a8; stroke-width: 2; }
svg .point { fill: #3566a8; } svg .changed { fill: none; stroke: #d0531f; stroke-width: 2; }
svg .mark { stroke: #d0531f; stroke-dasharray: 4 3; } svg text { font-size: 11px; fill: #555; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd;
  padding: 2px 6px; text-align: left; vertical-align: top; font-size: 13px; }
code { font-size: 12px; } section.run { border-top: 1px solid #ccc; margin-top: 1.5em; }
"""


def _name(cause: Cause) -> str:
    if cause.section in ("input", "config") and cause.name.startswith("file://"):
        uri, _, key = cause.name.partition(": ")
        return path_of_file_uri(uri) + (f": {key}" if key else "")
    return cause.name


def _changes(series: Series) -> list[list[str]]:
    """Per run, the causes that changed against the run before it, as text."""
    found: list[list[str]] = [[]]
    for before, after in zip(series.runs, series.runs[1:]):
        found.append([f"{c.section} {_name(c)}: {brief(old or '')} -> {brief(new or '')}"
                      for c, old, new in zip(series.causes, before.causes, after.causes)
                      if old != new])
    return found


def _chart(metric: str, series: Series, changes: list[list[str]]) -> str:
    points = [(i, run.metrics[metric]) for i, run in enumerate(series.runs)
              if metric in run.metrics]
    low = min(v for _, v in points)
    high = max(v for _, v in points)
    span = (high - low) or 1.0
    last = max(len(series.runs) - 1, 1)

    def x(i: int) -> float:
        return _MARGIN + (_WIDTH - 2 * _MARGIN) * i / last

    def y(v: float) -> float:
        return _HEIGHT - _MARGIN + (v - low) / span * (2 * _MARGIN - _HEIGHT)

    parts = [f'<svg class="metric" data-metric="{html.escape(metric)}" width="{_WIDTH}" '
             f'height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
             'xmlns="http://www.w3.org/2000/svg">',
             f'<text x="4" y="{_MARGIN - 8}">{high:.6g}</text>',
             f'<text x="4" y="{_HEIGHT - _MARGIN + 14}">{low:.6g}</text>',
             '<polyline class="line" points="'
             + " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in points) + '"/>']
    for i, value in points:
        run = series.runs[i]
        title = f"run {run.run_id[:12]} {run.start[:19]}: {metric} {number_text(value)}"
        if changes[i]:
            title += "\n" + "\n".join(changes[i])
            parts.append(f'<line class="mark" x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{_MARGIN / 2}" '
                         f'y2="{_HEIGHT - _MARGIN / 2}"/>')
        ring = (f'<circle class="changed" cx="{x(i):.1f}" cy="{y(value):.1f}" r="8"/>'
                if changes[i] else "")
        parts.append(f'<a class="run-link" href="#run-{run.run_id}"><g class="point-group">'
                     f'<title>{html.escape(title)}</title>{ring}<circle class="point" '
                     f'cx="{x(i):.1f}" cy="{y(value):.1f}" r="4"/></g></a>')
    parts.append("</svg>")
    return "".join(parts)


def _lineage(tables: Tables, runs: list[str]) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """Per run, up to LISTED of its inputs and of its outputs (URI, identity), and how many."""
    found: dict[str, dict[str, list[tuple[str, str]]]] = {
        run: {"read": [], "wrote": []} for run in runs}
    for run, kind, uri, identity in tables.rows(
        f"SELECT RunId, if(Operation = 'read', 'read', 'wrote') AS kind, Uri, any({IDENTITY_SQL}) "
        f"FROM {tables.io} WHERE RunId IN %(runs)s AND Operation IN %(operations)s "
        "GROUP BY RunId, kind, Uri ORDER BY RunId, kind, Uri",
        runs=runs, operations=["read", *OUTPUT_OPERATIONS],
    ):
        found[run][kind].append((uri, identity))
    return found


def _files(title: str, files: list[tuple[str, str]]) -> str:
    if not files:
        return f"<p>{title}: nothing recorded</p>"
    rows = "".join(f"<tr><td><code>{html.escape(_shown(uri))}</code></td>"
                   f"<td><code>{html.escape(identity)}</code></td></tr>"
                   for uri, identity in files[:LISTED])
    more = f"<p>and {len(files) - LISTED} more</p>" if len(files) > LISTED else ""
    return f"<p>{title} ({len(files)}):</p><table>{rows}</table>{more}"


def _shown(uri: str) -> str:
    return path_of_file_uri(uri) if uri.startswith("file://") else uri


def _run_section(place: int, run: Any, changes: list[str], io: dict[str, Any]) -> str:
    metrics = ", ".join(f"{html.escape(name)} {number_text(value)}"
                        for name, value in run.metrics.items())
    changed = ("<ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in changes) + "</ul>"
               if changes else "<p>nothing recorded changed against the run before</p>"
               if place else "<p>the first run</p>")
    return (f'<section class="run" id="run-{run.run_id}"><h3>run {place + 1}: '
            f"<code>{run.run_id}</code></h3>"
            f"<p>{html.escape(run.start)} · {html.escape(run.status)} · "
            f"<code>{html.escape(' '.join(run.command))}</code></p>"
            f"<p>metrics: {metrics}</p><p>changed:</p>{changed}"
            f"{_files('read', io['read'])}{_files('wrote', io['wrote'])}"
            f"<p>whole lineage: <code>clew lineage OUTPUT</code> or <code>clew export "
            f"OUTPUT --format html</code> for any of the files it wrote</p></section>")


def report(client: Any, *, program_name: str | None = None,
           options: SchemaOptions | None = None) -> str:
    """The page for a program's runs (default: the program of the newest run with
    metrics), as text.

    Raises:
        LookupError: no run of the program recorded metrics.
    """
    series = metrics_series(client, program_name=program_name, options=options)
    changes = _changes(series)
    io = _lineage(Tables(client, options), [run.run_id for run in series.runs])
    title = f"metrics of {series.program} over {len(series.runs)} runs"
    charts = "".join(f"<h2>{html.escape(metric)}</h2>{_chart(metric, series, changes)}"
                     for metric in series.metrics)
    rows = "".join(
        f'<tr><td><a href="#run-{run.run_id}">{i + 1}: {run.run_id[:12]}</a></td>'
        f"<td>{html.escape(run.start[:19])}</td>"
        + "".join(f"<td>{number_text(run.metrics[m]) if m in run.metrics else ''}</td>"
                  for m in series.metrics)
        + f"<td>{html.escape('; '.join(changes[i]))}</td></tr>"
        for i, run in enumerate(series.runs))
    head = "".join(f"<th>{html.escape(m)}</th>" for m in series.metrics)
    sections = "".join(_run_section(i, run, changes[i], io[run.run_id])
                       for i, run in enumerate(series.runs))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            "<p>Each point is a run's final value; a ring and a dashed line mark a run where "
            "a cause changed against the run before it (hover for the changes, click for "
            "the run).</p>"
            f"{charts}<h2>runs</h2><table><tr><th>run</th><th>start</th>{head}"
            f"<th>changed</th></tr>{rows}</table>{sections}</body></html>\n")
