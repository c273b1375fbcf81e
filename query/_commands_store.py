"""`clew ingest`, `clew runs` and `clew sql`: the ClickHouse store."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from clew.exporter.store.ingest import IngestResult, prepare_store
from clew.exporter.store.ingest import ingest as ingest_spool
from clew.exporter.spool_files import spool_directory, spool_sizes
from clew.exporter.store.schema import SchemaOptions
from clew.exporter.store.connection import close, connect, default_url, is_open, parse_url

from ._output import CliContext, json_option, write_json
from ._rows import ROW_FORMATS, write_rows
from ._sql_policy import READ_ONLY_SETTINGS, read_only_statement
from .runs import list_runs

_PROGRESS_MIN_BYTES = 8 << 20  # below this an ingest is too quick for a bar to help


def _open(
    obj: CliContext, *, quiet: bool = True, always_ingest: bool = False, writes: bool = False
) -> tuple[Any, SchemaOptions, IngestResult]:
    """Connect to the store and ingest what the spool holds that the store does not
    (unless `--no-ingest`, which `clew ingest` itself ignores). `writes`: the command
    changes the store itself."""
    url = obj.store or default_url(obj.home)
    parsed = parse_url(url)
    client = connect(url, wait=obj.wait, on_wait=lambda holder: obj.err.print(
        f"waiting for the store, held by {holder}", markup=False, highlight=False))
    # The tables live in the URL's database (`default` in an embedded store).
    options = SchemaOptions(database=parsed.database)
    if not (obj.ingest or always_ingest):
        prepare_store(client, options)
        result = IngestResult()
    else:
        result = _ingest(obj, client, options, quiet=quiet)
    if parsed.embedded and not (writes or always_ingest or result.spans):
        _pause_merges(client)
    return client, options, result


def _pause_merges(client: Any) -> None:
    """Stop the embedded engine's background merges while this command only reads. chDB
    starts merging a store's parts when it opens it; a merge of hundreds of MB takes longer
    than a query command lives, so it would be cut off at exit, every time, after taking a
    core from the answer (`clew runs` at 10M spans: list_runs 0.22 s instead of 0.3-0.5 s).
    Processes that ingest leave them on, and the command's end starts them again (for
    callers that go on in the same process)."""
    command = click.get_current_context(silent=True)
    if command is None:
        return  # called outside a command: nothing would start them again
    client.command("SYSTEM STOP MERGES")

    def restart() -> None:
        if not is_open(client):
            return  # `clew sql` closed it after a refused statement: its engine is gone
        client.command("SYSTEM START MERGES")

    command.call_on_close(restart)


def _ingest(obj: CliContext, client: Any, options: SchemaOptions, *, quiet: bool) -> IngestResult:
    spool = spool_directory(obj.home)
    if quiet or sum(spool_sizes(spool).values()) < _PROGRESS_MIN_BYTES:
        result = ingest_spool(client, spool, options=options)
    else:
        # Only a large ingest shows a bar: every other command skips importing it.
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        columns = (*Progress.get_default_columns()[:2], BarColumn(), DownloadColumn(),
                   TimeRemainingColumn())
        with Progress(*columns, console=obj.err, transient=True) as progress:
            task = progress.add_task("ingesting the spool", total=None)

            def advance(done: int, total: int) -> None:
                if done < 0:  # the ingest's last step: `total` runs linked for lineage
                    progress.update(task, description=f"linking {total:,} runs for lineage")
                else:
                    progress.update(task, completed=done, total=total)

            result = ingest_spool(client, spool, options=options, progress=advance)
    for warning in result.warnings:
        obj.err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    return result


def open_store(obj: CliContext, *, quiet: bool = True) -> tuple[Any, SchemaOptions]:
    """The store, with the pending spool ingested first (unless `--no-ingest`)."""
    client, options, _ = _open(obj, quiet=quiet)
    return client, options


@click.command()
@json_option
@click.pass_obj
def ingest(obj: CliContext, fmt: str) -> None:
    """Ingest the spool into the ClickHouse store (only what is new; safe to repeat)."""
    _, _, result = _open(obj, quiet=fmt == "json", always_ingest=True)
    if fmt == "json":
        write_json({"schema": 1, **dataclasses.asdict(result)}, obj.stdout)
        return
    obj.out.print(
        f"ingested {result.spans:,} spans from {result.files} spool files in "
        f"{result.seconds:.2f}s ({result.spans_per_second:,.0f} spans/s)"
        + (f"; {result.corrupt} lines set aside" if result.corrupt else "")
        + (f"; {result.torn} files end in a line still being written" if result.torn else "")
    )


def _datetime(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date or time like 2026-11-26 or "
                                 "2026-11-26T14:00") from None
    return parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)


@click.command()
@click.option("--command", "command", metavar="TEXT", help="Only runs whose command line "
              "contains TEXT (case-insensitive).")
@click.option("--since", metavar="TIME", help="Only runs started at or after TIME (ISO 8601).")
@click.option("--until", metavar="TIME", help="Only runs started at or before TIME.")
@click.option("--commit", metavar="SHA", help="Only runs of this git commit (a prefix is enough).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@json_option
@click.pass_obj
def runs(obj: CliContext, command: str | None, since: str | None, until: str | None,
         commit: str | None, limit: int, fmt: str) -> None:
    """List runs in the store, newest first (the spool is ingested first)."""
    client, options, _ = _open(obj, quiet=fmt == "json")
    found = list_runs(client, options=options, command=command, since=_datetime(since),
                      until=_datetime(until), commit=commit, limit=limit)
    if fmt == "json":
        write_json({"schema": 1, "runs": [dataclasses.asdict(r) for r in found]}, obj.stdout)
        return
    table = Table(title=f"runs in {obj.store or default_url(obj.home)}")
    for column in ("run", "started (UTC)", "duration", "status", "command", "git",
                   "in", "out"):
        table.add_column(column)
    for run in found:
        status = run.status if run.exit_code is None else f"{run.status} ({run.exit_code})"
        git = (run.git_commit[:10] + ("+dirty" if run.git_dirty else "")) if run.git_commit else ""
        table.add_row(run.run_id[:12], run.start[:19].replace("T", " "),
                      f"{run.duration_s:.2f}s", status, obj.command(run.command, 50), git,
                      str(run.inputs), str(run.outputs))
    obj.out.print(table)


@click.command()
@click.argument("query")
@click.option("--write", is_flag=True, help="Allow statements that change the store.")
@click.option("--format", "fmt", type=click.Choice(["table", *ROW_FORMATS, "json"]),
              help="table (the default on a terminal), tsv (the default elsewhere), csv and "
              "tsv with a first line of column names, jsonl (an object per row), or json: the "
              "documented, versioned schema (docs/cli.md).")
@click.pass_obj
def sql(obj: CliContext, query: str, write: bool, fmt: str | None) -> None:
    """Run SQL against the store. Without --write: one SELECT, WITH, SHOW, DESCRIBE, EXISTS
    or EXPLAIN that reads only the store's tables (no files, URLs, other servers or
    databases, settings); see docs/security.md. --write runs QUERY as given. Tables:
    otel_traces, clew_io, clew_runs, clew_run_io; see docs/sql.md."""
    client, options, _ = _open(obj, quiet=True, writes=write)
    try:
        if write:
            result = client.query(query)
        else:
            statement = read_only_statement(client, query, database=options.database)
            result = client.query(statement, settings=READ_ONLY_SETTINGS)
    except Exception:
        if not write:
            # chDB's session stays read-only after a refused statement (the driver's SET that
            # restores the setting is refused too): drop the client so the next use in this
            # process opens the store afresh.
            close(obj.store or default_url(obj.home))
        raise
    names = list(result.column_names)
    # As clickhouse-client: a table for a person at a terminal, tab-separated for a pipe.
    fmt = fmt or ("table" if obj.out.is_terminal else "tsv")
    if fmt == "json":
        write_json({"schema": 1, "columns": names,
                    "rows": [dict(zip(names, row)) for row in result.result_rows]}, obj.stdout)
    elif fmt in ROW_FORMATS:
        write_rows(fmt, names, result.result_rows, obj.stdout)
    else:
        table = Table()
        for name in names:
            table.add_column(name)
        for row in result.result_rows:
            table.add_row(*(escape(str(value)) for value in row))  # `[red]` in a value is text
        obj.out.print(table)
