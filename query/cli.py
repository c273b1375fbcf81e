"""The `clew` command: a thin layer over clew.query's Python API.

Exit status: 0 ok, 1 a check found a problem, 2 bad usage, 3 an error. Errors print as one
line on stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import sys
import traceback
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.table import Table

from clew.exporter.spool import SpoolProblems
from clew.semconv import environment

from .doctor import diagnose
from .spool import SpoolRun, spool_runs


class ExitStatus(enum.IntEnum):
    """`clew`'s exit codes, a documented contract for scripts and CI."""

    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    ERROR = 3


@dataclasses.dataclass
class _Context:
    home: Path
    out: Console
    err: Console
    stdout: IO[str]


def _time(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


def _json(value: Any, stream: IO[str]) -> None:
    stream.write(json.dumps(value, indent=2, default=str) + "\n")


def _command(argv: list[str], width: int = 60) -> str:
    text = " ".join(argv)
    return text if len(text) <= width else text[: width - 1] + "…"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="clew's directory (default: $CLEW_HOME, else .clew at the git root or here).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="clew")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, debug: bool) -> None:
    """clew: provenance of ML runs, from what the program actually did.

    Record a run with `opentelemetry-instrument python train.py`, then ask about it here.
    """
    streams = ctx.obj
    ctx.obj = _Context(
        home=(home.absolute() if home else environment.resolve_home()),
        out=Console(file=streams["stdout"], soft_wrap=True),
        err=Console(file=streams["stderr"], soft_wrap=True),
        stdout=streams["stdout"],
    )


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def doctor(obj: _Context, fmt: str) -> None:
    """Check the installation: version, hooks, where records go, conflicts."""
    report = diagnose(obj.home)
    if fmt == "json":
        _json(dataclasses.asdict(report), obj.stdout)
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


def _print_runs(obj: _Context, runs: list[SpoolRun]) -> None:
    table = Table(title=f"runs in {obj.home / environment.SPOOL_DIRNAME}")
    for column in ("run", "started", "duration", "status", "command", "read", "wrote", "execs"):
        table.add_column(column)
    for run in runs:
        duration = f"{run.duration_s:.2f}s" if run.duration_s is not None else "?"
        status = run.status if run.exit_code is None else f"{run.status} ({run.exit_code})"
        table.add_row(
            run.run_id[:12],
            _time(run.start_ns),
            duration,
            status,
            _command(run.command),
            str(len(run.uris("read"))),
            str(len({a.uri for a in run.accesses if a.operation in ("write", "copy", "rename")})),
            str(len(run.execs)),
        )
    obj.out.print(table)


def _print_run(obj: _Context, run: SpoolRun) -> None:
    obj.out.print(f"[bold]run {run.run_id}[/bold]  {run.status}  exit={run.exit_code}")
    obj.out.print(f"command: {' '.join(run.command)}")
    obj.out.print(f"started: {_time(run.start_ns)}  host: {run.host}  cwd: {run.cwd}")
    if run.git_commit:
        dirty = f" dirty: {', '.join(run.git_diff_files)}" if run.git_dirty else " clean"
        obj.out.print(f"git: {run.git_commit[:12]} ({run.git_branch}){dirty}")
    table = Table(title="artifacts")
    for column in ("operation", "uri", "digest", "size", "count", "pid"):
        table.add_column(column)
    for a in sorted(run.accesses, key=lambda a: (a.operation, a.uri)):
        digest = a.digest[:20] + "…" if a.digest else f"({a.identity})"
        uri = a.uri if not a.source_uri else f"{a.source_uri} -> {a.uri}"
        table.add_row(a.operation, uri, digest, "" if a.size is None else str(a.size), str(a.count), str(a.pid))
    obj.out.print(table)
    for e in run.execs:
        kind = "traced" if e.traced else "opaque"
        obj.out.print(f"exec ({kind}, exit={e.exit_code}): {_command(e.command, 100)}")
    for error in run.capture_errors:
        obj.out.print(f"[yellow]capture error:[/yellow] {error}")


@cli.command()
@click.argument("run_id", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def spool(obj: _Context, run_id: str | None, fmt: str) -> None:
    """Show what the spool captured: every run, or one RUN_ID (a prefix is enough)."""
    problems = SpoolProblems(corrupt=[], torn=[])
    runs = spool_runs(obj.home, problems)
    if run_id:
        runs = [r for r in runs if r.run_id.startswith(run_id.lower())]
        if not runs:
            raise click.UsageError(f"no run {run_id!r} in the spool; `clew spool` lists them")
    if fmt == "json":
        _json([dataclasses.asdict(r) for r in runs], obj.stdout)
    elif run_id:
        for run in runs:
            _print_run(obj, run)
    else:
        _print_runs(obj, runs)
    if problems.corrupt:
        obj.err.print(
            f"[yellow]warning:[/yellow] {len(problems.corrupt)} corrupt spool lines skipped"
        )


def main(
    args: list[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the CLI; returns an ExitStatus. Streams can be injected (tests run it in-process)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv
    try:
        cli.main(
            args=argv,
            prog_name="clew",
            standalone_mode=False,
            obj={"stdout": stdout, "stderr": stderr},
        )
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.UsageError as error:
        stderr.write(f"clew: {error.format_message()}\n")
        return ExitStatus.USAGE
    except click.Abort:
        stderr.write("clew: aborted\n")
        return ExitStatus.ERROR
    except Exception as error:  # noqa: BLE001 - one handler for every failure
        if debug:
            traceback.print_exc(file=stderr)
        stderr.write(f"clew: error: {error}\n")
        return ExitStatus.ERROR
    return ExitStatus.OK


def entry_point() -> None:
    """Console-script entry: exit with main()'s status."""
    sys.exit(main())
