"""`clew metrics`, `clew why` and `clew report`: metrics over a program's runs and what moved
them."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ._commands_store import open_store
from ._output import CliContext, json_option, short_identity, shown_uri, write_json
from .diff import number_text
from .metrics import Cause, Series, metrics_series
from .why import WhyAnswer, why


def cause_text(cause: Cause) -> str:
    """A cause as the tables name it (rich markup escaped): a file by its path from here."""
    if cause.section == "input":
        return shown_uri(cause.name)
    if cause.section == "config":
        uri, key = cause.name.split(": ", 1)
        return f"{shown_uri(uri)}: {escape(key)}"
    return escape(cause.name)


def _plain(cause: Cause) -> str:
    """A cause as the sentences name it (printed without markup)."""
    return f"{cause.section} {Text.from_markup(cause_text(cause)).plain}"


def _value(cause: Cause, value: str | None) -> str:
    if value is None:
        return "-"
    return escape(short_identity(value) if cause.section in ("input", "code") else value)


def _series_table(series: Series) -> Table:
    table = Table(title=f"{len(series.runs)} runs of {escape(series.program)}, oldest first",
                  title_justify="left")
    for column in ("run", "start", "status", *series.metrics):
        table.add_column(escape(column), overflow="fold")
    for cause in series.causes:
        table.add_column(f"{cause.section}: {cause_text(cause)}", overflow="fold")
    trackers = any(run.trackers for run in series.runs)
    if trackers:
        table.add_column("tracker runs", overflow="fold")
    for run in series.runs:
        metrics = [number_text(run.metrics[m]) if m in run.metrics else "-"
                   for m in series.metrics]
        table.add_row(run.run_id[:12], run.start[:19], run.status, *metrics,
                      *(_value(c, v) for c, v in zip(series.causes, run.causes)),
                      *([escape(", ".join(run.trackers)) or "-"] if trackers else []))
    return table


@click.command("metrics")
@click.option("--program", "program_name", metavar="PROGRAM",
              help="The program: its script (train.py) or module (-m pkg.train), as `clew "
              "runs` shows it (default: that of the newest run with metrics).")
@click.option("--name", "names", multiple=True, metavar="METRIC",
              help="Only this metric (repeatable; default: every metric).")
@json_option
@click.pass_obj
def metrics_command(obj: CliContext, program_name: str | None, names: tuple[str, ...],
                    fmt: str) -> None:
    """A program's runs with their final metric values and the causes that vary across
    them: input contents, config keys, code, packages, arguments, environment.

    A metric's final value is its point with the highest step (the last observed among
    equal steps). Metrics come from the metric files a run wrote and the trackers it logged
    to (docs/semconv.md); a cause that is the same in every run is not shown.

    \b
    Examples:
      clew metrics                          the program of the newest run with metrics
      clew metrics --program train.py --name accuracy --name loss
      clew metrics --format json            schema in docs/cli.md"""
    client, options = open_store(obj, quiet=fmt == "json")
    try:
        series = metrics_series(client, program_name=program_name, names=list(names) or None,
                                options=options)
    except LookupError as error:
        raise click.UsageError(str(error)) from None
    if fmt == "json":
        write_json(series.to_json(), obj.stdout)
    else:
        obj.out.print(_series_table(series))


def _causes_table(answer: WhyAnswer) -> Table:
    table = Table(title="what changed, most likely cause first", title_justify="left")
    for column in ("", "cause", "before", "after", "evidence"):
        table.add_column(column, overflow="fold")
    for place, ranked in enumerate(answer.causes, 1):
        cause = Cause(ranked.section, ranked.name)
        table.add_row(str(place), f"{cause.section} {cause_text(cause)}", _value(cause, ranked.before or None),
                      _value(cause, ranked.after or None), ranked.evidence)
    return table


def _history_table(answer: WhyAnswer) -> Table:
    table = Table(title=f"each varying cause over the {len(answer.series)} runs of "
                        f"{escape(answer.program)}", title_justify="left")
    for column in ("cause", "changed in", f"{escape(answer.metric)} moved"):
        table.add_column(column, overflow="fold")
    for history in answer.history:
        runs = ", ".join(f"{c.run_id[:8]} ({c.delta:+.4g}{' moved' if c.moved else ''})"
                         for c in history.changes)
        cause = Cause(history.section, history.name)
        table.add_row(f"{cause.section} {cause_text(cause)}", runs, history.moved)
    return table


@click.command("why")
@click.argument("metric")
@click.argument("run", required=False)
@click.option("--tolerance", type=click.FloatRange(min=0), metavar="DELTA",
              help="A |delta| above this moved the metric (default: three times its noise, "
              "the median |delta| between runs where nothing recorded changed, and at "
              "least 0.1 % of its median value).")
@json_option
@click.pass_obj
def why_command(obj: CliContext, metric: str, run: str | None, tolerance: float | None,
                fmt: str) -> None:
    """Why METRIC moved in RUN (default: the newest run that recorded it): its move against
    the previous run of the same program and every cause that changed between them, ranked
    by what the program's other runs say of each; then, over all those runs, where each
    varying cause changed and whether METRIC moved there. Causes that always changed
    together are named as confounded, causes whose changes never moved METRIC too, and the
    answer says when the data cannot separate two causes.

    Ranks: supported (its other changes all moved METRIC), mixed (some did), untested (it
    never changed elsewhere), contradicted (its other changes never moved METRIC).

    \b
    Examples:
      clew why accuracy              the newest run with accuracy, against the one before
      clew why val.loss 4bf92f       that run (an id prefix from `clew runs`)
      clew why accuracy --tolerance 0.01 --format json"""
    client, options = open_store(obj, quiet=fmt == "json")
    try:
        answer = why(client, metric, run, tolerance=tolerance, options=options)
    except LookupError as error:
        raise click.UsageError(str(error)) from None
    if fmt == "json":
        write_json(answer.to_json(), obj.stdout)
        return
    sentences = answer.sentences(_plain)
    obj.out.print(sentences[0], markup=False, highlight=False)
    if answer.causes:
        obj.out.print(_causes_table(answer))
    if answer.history:
        obj.out.print(_history_table(answer))
    for sentence in sentences[1:]:
        obj.out.print(f"- {sentence}", markup=False, highlight=False)


@click.command("report")
@click.option("--program", "program_name", metavar="PROGRAM",
              help="The program (default: that of the newest run with metrics).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("clew-report.html"), show_default=True,
              help="Where to write the page.")
@click.pass_obj
def report_command(obj: CliContext, program_name: str | None, output: Path) -> None:
    """One self-contained HTML page (no external assets): each metric of a program over its
    runs, the changes at each run marked, and each run's inputs, outputs and code."""
    from .report import report

    client, options = open_store(obj)
    try:
        page = report(client, program_name=program_name, options=options)
    except LookupError as error:
        raise click.UsageError(str(error)) from None
    output.write_text(page, encoding="utf-8")
    obj.err.print(f"wrote {output}", markup=False, highlight=False)
