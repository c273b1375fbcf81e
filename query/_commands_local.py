"""`clew doctor` and `clew spool`: what is installed and what the spool holds, no database."""

from __future__ import annotations

import dataclasses

import click
from rich.markup import escape
from rich.table import Table

from clew.exporter.spool_files import SpoolProblems
from clew.semconv import environment

from ._output import CliContext, format_time, json_option, write_json
from .doctor import diagnose
from .spool import SpoolRun, spool_runs

@click.command()
@json_option
@click.pass_obj
def doctor(obj: CliContext, fmt: str) -> None:
    """Check the installation: version, hooks, where records go, conflicts."""
    report = diagnose(obj.home)
    if fmt == "json":
        write_json({"schema": 1, **dataclasses.asdict(report)}, obj.stdout)
        return
    table = Table(show_header=False, box=None)
    for label, value in [
        ("clew", report.version),
        ("python", report.python),
        ("home", report.home),
        ("spool", f"{report.spool} ({report.spool_files} files, {report.spool_bytes:,} bytes)"),
        ("store", report.store),
        ("traces exporter", report.traces_exporter),
        ("hooks", ", ".join(report.hooks) or "none"),
        ("distros", ", ".join(report.distros)),
        ("configurators", ", ".join(report.configurators)),
    ]:
        table.add_row(f"[bold]{label}[/bold]", value)
    obj.out.print(table)
    for warning in report.warnings:
        obj.out.print(f"[yellow]warning:[/yellow] {warning}")
    if not report.warnings:
        obj.out.print("[green]no problems found[/green]")


def _print_runs(obj: CliContext, runs: list[SpoolRun]) -> None:
    table = Table(title=f"runs in {obj.home / environment.SPOOL_DIRNAME}")
    for column in ("run", "started", "duration", "status", "command", "read", "wrote", "execs"):
        table.add_column(column)
    for run in runs:
        duration = f"{run.duration_s:.2f}s" if run.duration_s is not None else "?"
        status = run.status if run.exit_code is None else f"{run.status} ({run.exit_code})"
        table.add_row(
            run.run_id[:12],
            format_time(run.start_ns),
            duration,
            status,
            obj.command(run.command),
            str(len(run.uris("read"))),
            str(len({a.uri for a in run.accesses if a.operation in ("write", "copy", "rename")})),
            str(len(run.execs)),
        )
    obj.out.print(table)


def _print_run(obj: CliContext, run: SpoolRun) -> None:
    obj.out.print(f"[bold]run {run.run_id}[/bold]  {run.status}  exit={run.exit_code}")
    obj.out.print(f"command: {escape(' '.join(run.command))}")
    obj.out.print(f"started: {format_time(run.start_ns)}  host: {escape(run.host)}  "
                  f"cwd: {escape(run.cwd)}")
    if run.git_commit:
        dirty = f" dirty: {escape(', '.join(run.git_diff_files))}" if run.git_dirty else " clean"
        obj.out.print(f"git: {run.git_commit[:12]} ({escape(run.git_branch)}){dirty}")
    table = Table(title="artifacts")
    for column in ("operation", "uri", "digest", "size", "count", "pid"):
        # A URI cut with "…" loses the file name: long ones wrap instead.
        table.add_column(column, overflow="fold" if column == "uri" else "ellipsis")
    for a in sorted(run.accesses, key=lambda a: (a.operation, a.uri)):
        digest = a.digest[:20] + "…" if a.digest else f"({a.identity})"
        uri = a.uri if not a.source_uri else f"{a.source_uri} -> {a.uri}"
        size = "" if a.size is None else str(a.size)
        table.add_row(a.operation, escape(uri), digest, size, str(a.count), str(a.pid))
    obj.out.print(table)
    for e in run.execs:
        kind = "traced" if e.traced else "opaque"
        obj.out.print(f"exec ({kind}, exit={e.exit_code}): {obj.command(e.command, 100)}")
    for error in run.capture_errors:
        obj.out.print(f"[yellow]capture error:[/yellow] {error}")


@click.command()
@click.argument("run_id", required=False)
@json_option
@click.pass_obj
def spool(obj: CliContext, run_id: str | None, fmt: str) -> None:
    """Show what the spool captured: every run, or one RUN_ID (a prefix is enough)."""
    problems = SpoolProblems(corrupt=[], torn=[])
    runs = spool_runs(obj.home, problems)
    if run_id:
        runs = [r for r in runs if r.run_id.startswith(run_id.lower())]
        if not runs:
            raise click.UsageError(f"no run {run_id!r} in the spool; `clew spool` lists them")
    if fmt == "json":
        write_json({"schema": 1, "runs": [dataclasses.asdict(r) for r in runs]}, obj.stdout)
    elif run_id:
        for run in runs:
            _print_run(obj, run)
    else:
        _print_runs(obj, runs)
    if problems.corrupt:
        obj.err.print(
            f"[yellow]warning:[/yellow] {len(problems.corrupt)} corrupt spool lines skipped"
        )


