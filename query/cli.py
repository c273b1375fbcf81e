"""The `clew` command: a thin layer over clew.query's Python API.

Exit status: 0 ok, 1 a check found a problem, 2 bad usage, 3 an error. Errors print as one
line on stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import enum
import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import IO

import click

from clew.exporter.store.connection import DEFAULT_WAIT, holds_embedded
from clew.semconv import environment

from ._output import CliContext, PrintableConsole, printable

# Each command's module, imported when that command runs (or `--help` lists it): `clew runs`
# need not import what lineage, export or doctor use.
_COMMANDS = {
    "doctor": "_commands_local:doctor", "spool": "_commands_local:spool",
    "ingest": "_commands_store:ingest", "runs": "_commands_store:runs",
    "sql": "_commands_store:sql", "lineage": "_commands_lineage:lineage_command",
    "impact": "_commands_lineage:impact_command", "diff": "_commands_lineage:diff_command",
    "check": "_commands_lineage:check_command", "replay": "_commands_replay:replay_command",
    "export": "_commands_export:export_command",
    "metrics": "_commands_metrics:metrics_command", "why": "_commands_metrics:why_command",
    "report": "_commands_metrics:report_command",
}


class ExitStatus(enum.IntEnum):
    """`clew`'s exit codes, a documented contract for scripts and CI."""

    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    ERROR = 3


class _Commands(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attribute = _COMMANDS[name].split(":")
        return getattr(importlib.import_module(f".{module}", __package__), attribute)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="clew's directory (default: $CLEW_HOME, else .clew at the git root or here).",
)
@click.option(
    "--store",
    envvar=environment.CLEW_STORE,
    metavar="URL",
    help="ClickHouse store: chdb:///abs/path (default: <home>/db) or "
    "http(s)://user@host:8123/db with the password in CLEW_STORE_PASSWORD.",
)
@click.option(
    "--wait",
    envvar=environment.CLEW_STORE_WAIT,
    type=click.FloatRange(min=0),
    default=DEFAULT_WAIT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for an embedded store another process holds ($CLEW_STORE_WAIT).",
)
@click.option(
    "--no-ingest",
    is_flag=True,
    help="Query the store as it is, without ingesting the spool first (for a store the "
    "Collector fills from the same runs over OTLP, where ingesting would add them twice).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="clew")
@click.pass_context
def cli(
    ctx: click.Context,
    home: Path | None,
    store: str | None,
    wait: float,
    no_ingest: bool,
    debug: bool,
) -> None:
    """clew: provenance of ML runs, from what the program actually did.

    Record a run with `opentelemetry-instrument python train.py`, then ask about it here.
    """
    streams = ctx.obj
    ctx.obj = CliContext(
        home=(home.absolute() if home else environment.resolve_home()),
        store=store,
        out=PrintableConsole(file=streams["stdout"], soft_wrap=True),
        err=PrintableConsole(file=streams["stderr"], soft_wrap=True),
        stdout=streams["stdout"],
        wait=wait,
        ingest=not no_ingest,
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
        # Without standalone mode, click returns (not raises) the code of ctx.exit(n).
        code = cli.main(
            args=argv,
            prog_name="clew",
            standalone_mode=False,
            obj={"stdout": stdout, "stderr": stderr},
        )
        if isinstance(code, int) and code:
            return code
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except (click.UsageError, ValueError) as error:
        message = error.format_message() if isinstance(error, click.UsageError) else str(error)
        stderr.write(f"clew: {printable(message)}\n")
        return ExitStatus.USAGE
    except click.Abort:
        stderr.write("clew: aborted\n")
        return ExitStatus.ERROR
    except Exception as error:  # noqa: BLE001 - one handler for every failure
        if debug:
            traceback.print_exc(file=stderr)
        stderr.write(f"clew: error: {printable(str(error))}\n")
        return ExitStatus.ERROR
    return ExitStatus.OK


def entry_point() -> None:
    """Console-script entry: exit with main()'s status."""
    status = main()
    if holds_embedded():
        # Skip chDB's engine teardown (0.1-0.2 s at every exit, a tenth of `clew runs`):
        # every statement has returned, so its parts are on disk, and ClickHouse starts
        # cleanly after any stop (tests/store kill an ingest with SIGKILL).
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):  # a closed pipe, no stream at all
                pass
        os._exit(status)
    sys.exit(status)
