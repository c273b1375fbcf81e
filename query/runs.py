"""Runs in the store: the `clew runs` table and its filters, answered in SQL."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

from clew.exporter.store.lineage import RUN_IO_TABLE, RUNS_TABLE
from clew.exporter.store.schema import SchemaOptions, qualified_name


@dataclass
class Run:
    """One run, as `clew runs --format json` reports it (schema version 1)."""

    run_id: str
    start: str
    end: str
    duration_s: float
    command: list[str]
    status: str  # "ok", "failed", or "incomplete" when its root span never arrived
    exit_code: int | None
    error_type: str
    git_commit: str
    git_branch: str
    git_dirty: bool
    host: str
    cwd: str
    inputs: int
    outputs: int
    ranks: list[int]


def _utc(value: dt.datetime) -> dt.datetime:
    """`value` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def iso_utc(value: dt.datetime) -> str:
    """A time from the store in ISO 8601, UTC. The driver hands back times in the
    session's time zone (the local one, for chDB)."""
    return _utc(value).isoformat()


def program_arguments(command: list[str]) -> list[str]:
    """The command without its Python interpreter and the interpreter's own flags, the
    program by its basename: `["/usr/bin/python3", "-u", "/p/train.py", "x"]` ->
    `["train.py", "x"]`; `python -m pkg.mod x` -> `["-m", "pkg.mod", "x"]`; `python -c CODE`
    -> `["-c"]` (the program text is no name)."""
    argv = list(command)
    if argv and os.path.basename(argv[0]).startswith(("python", "pypy")):
        argv = argv[1:]
        while argv and argv[0].startswith("-") and argv[0] not in ("-m", "-c"):
            # interpreter flags (-u, -O, -X dev ...) say nothing of the program
            argv = argv[2:] if argv[0] in ("-X", "-W") else argv[1:]
    if not argv or argv[0] == "-m":
        return argv
    if argv[0] == "-c":
        return ["-c"]
    return [os.path.basename(argv[0]), *argv[1:]]


def run_status(status_code: str, exit_code: int) -> str:
    """"failed" for an error status or a non-zero exit code (-1: none recorded), "incomplete"
    for a run known only from spans other than its root (no status at all: it was killed
    with SIGKILL, or is still running), else "ok"."""
    if not status_code:
        return "incomplete"
    return "failed" if status_code == "Error" or exit_code not in (0, -1) else "ok"


def _ns(value: dt.datetime) -> int:
    """Nanoseconds since the epoch. Times go into SQL as numbers: a bound datetime would be
    written as a string without its time zone or fraction of a second, which the server
    reads in its own time zone."""
    delta = _utc(value) - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def list_runs(
    client: Any,
    *,
    options: SchemaOptions | None = None,
    command: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    commit: str | None = None,
    limit: int = 50,
) -> list[Run]:
    """Runs newest first. `command` matches a substring of the command line, `commit` a
    prefix of the git commit; `since`/`until` bound the start time (naive means UTC)."""
    options = options or SchemaOptions()
    where = ["1"]
    parameters: dict[str, Any] = {"limit": limit}
    if command:
        where.append("positionCaseInsensitive(arrayStringConcat(Command, ' '), %(command)s) > 0")
        parameters["command"] = command
    if commit:
        where.append("startsWith(GitCommit, %(commit)s)")
        parameters["commit"] = commit.lower()
    if since:
        where.append("Start >= fromUnixTimestamp64Nano(toInt64(%(since)s))")
        parameters["since"] = _ns(since)
    if until:
        where.append("Start <= fromUnixTimestamp64Nano(toInt64(%(until)s))")
        parameters["until"] = _ns(until)
    # The counts are merged for the listed runs only, not for every run in the store.
    sql = f"""
WITH listed AS (
    SELECT RunId, Start, End, Command, StatusCode, ExitCode, ErrorType, GitCommit, GitBranch,
           GitDirty, Host, Cwd
    FROM {qualified_name(options, RUNS_TABLE)} FINAL WHERE {' AND '.join(where)}
    ORDER BY Start DESC LIMIT %(limit)s)
SELECT r.RunId, r.Start, r.End, r.Command, r.StatusCode, r.ExitCode, r.ErrorType,
       r.GitCommit, r.GitBranch, r.GitDirty, r.Host, r.Cwd,
       io.Inputs, io.Outputs, io.Ranks
FROM listed AS r
LEFT JOIN (
    SELECT RunId, uniqMerge(Inputs) AS Inputs, uniqMerge(Outputs) AS Outputs,
           groupUniqArrayArray(Ranks) AS Ranks
    FROM {qualified_name(options, RUN_IO_TABLE)}
    WHERE RunId IN (SELECT RunId FROM listed) GROUP BY RunId
) AS io ON io.RunId = r.RunId
ORDER BY r.Start DESC"""
    runs = []
    for row in client.query(sql, parameters=parameters).result_rows:
        (run_id, start, end, cmd, status, exit_code, error_type, git_commit, git_branch,
         git_dirty, host, cwd, inputs, outputs, ranks) = row
        runs.append(
            Run(
                run_id=run_id,
                start=iso_utc(start),
                end=iso_utc(end),
                duration_s=round((end - start).total_seconds(), 3),
                command=list(cmd),
                status=run_status(status, exit_code),
                exit_code=None if exit_code == -1 else exit_code,
                error_type=error_type,
                git_commit=git_commit,
                git_branch=git_branch,
                git_dirty=bool(git_dirty),
                host=host,
                cwd=cwd,
                inputs=int(inputs or 0),
                outputs=int(outputs or 0),
                ranks=sorted(r for r in (ranks or []) if r >= 0),
            )
        )
    return runs


def resolve_run(client: Any, prefix: str, *, options: SchemaOptions | None = None) -> str:
    """The id of the one run in the store whose id starts with `prefix`.

    Args:
        client: A clickhouse-connect client.
        prefix: A run id (a trace id, 32 hex digits) or its first 6 or more digits, as
            `clew runs` shows them; case is ignored.
        options: Where the tables are.

    Returns:
        The full run id, 32 lowercase hex digits.

    Raises:
        ValueError: `prefix` is not 6 to 32 hex digits.
        LookupError: No run, or more than one, starts with `prefix`. Messages are one line
            and say that `clew runs` lists the runs.
    """
    options = options or SchemaOptions()
    wanted = prefix.strip().lower()
    if not 6 <= len(wanted) <= 32 or any(c not in "0123456789abcdef" for c in wanted):
        raise ValueError(f"{prefix!r} is not a run id: give at least 6 of its hex digits "
                         "(`clew runs` lists the runs)")
    found = [row[0] for row in client.query(
        f"SELECT DISTINCT RunId FROM {qualified_name(options, RUNS_TABLE)} "
        "WHERE startsWith(RunId, %(prefix)s) ORDER BY RunId LIMIT 3",
        parameters={"prefix": wanted},
    ).result_rows]
    if not found:
        raise LookupError(f"no run in the store starts with {wanted} (`clew runs` lists them)")
    if len(found) > 1:
        some = ", ".join(run[:12] for run in found[:2]) + (", ..." if len(found) > 2 else "")
        raise LookupError(f"{wanted} is the start of more than one run ({some}): give more "
                          "digits (`clew runs` lists them)")
    return found[0]
