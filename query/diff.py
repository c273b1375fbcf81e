"""`clew diff`: what changed between two runs, and which of the changes could matter.

Changes are split into causes (inputs, config keys, code, packages, arguments, environment)
and effects (outputs, metrics, outcome), so "which change mattered" starts from a short list.
Inputs and outputs are compared in SQL over `clew_io` (one GROUP BY over both runs' records,
returning only the URIs that differ); config files key by key from `clew_config` (a config
file whose keys were recorded is compared by its keys, `URI: optimizer.lr`, instead of as one
input; a config file of the run's own, read instead of the other run's, is compared with
it); metrics by their final values from `clew_metrics`; the rest from the two rows of
`clew_runs`.

`--format json` schema 1: `{"schema": 1, "a": RUN, "b": RUN, "changes": [{"section", "kind",
"name", "before", "after", "note"}], "chosen"}` where section is one of SECTIONS and kind
"added", "removed" or "changed". A config change's name is `URI: key` and its values are
JSON (`0.01`, `"adam"`); a metric's values are its final values as numbers' shortest text
and its note the delta (`+0.31`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clew.exporter.store.lineage import OUTPUT_OPERATIONS
from clew.exporter.store.schema import SchemaOptions

from ._observed import config_values, final_values
from ._relations import outputs_sql
from .lineage import IDENTITY_SQL, Tables
from .runs import iso_utc, program_arguments, resolve_run, run_status

CAUSES = ("input", "config", "code", "package", "argument", "environment")
EFFECTS = ("output", "metric", "outcome")
SECTIONS = CAUSES + EFFECTS
# How far back `clew diff` looks for the previous run of the same program.
_CANDIDATES = 1000
_RUN_COLUMNS = (
    "RunId, Start, Command, StatusCode, ExitCode, GitCommit, GitBranch, "
    "DiffFiles, CodeFiles, CodeDigests, Packages, Host, Runtime, Cwd, "
    "toUnixTimestamp64Nano(Start) AS StartNs"
)


@dataclass
class Change:
    """One difference; `before`/`after` are "" for an added/removed item; `note` says what
    else a reader should know of it."""

    section: str
    kind: str
    name: str
    before: str = ""
    after: str = ""
    note: str = ""


@dataclass
class RunSummary:
    run_id: str
    start: str
    command: list[str]


@dataclass
class RunDiff:
    a: RunSummary
    b: RunSummary
    changes: list[Change] = field(default_factory=list)
    # Set when no run was named and the newest run is the first of its program: which run
    # is compared instead, and why.
    chosen: str = ""
    schema: int = 1

    def causes(self) -> list[Change]:
        return [c for c in self.changes if c.section in CAUSES]


def program(command: list[str]) -> str:
    """What makes two runs "the same command": the script or module a Python interpreter
    ran (`python train.py --lr 1` and `python train.py --lr 2` are one program), else the
    executable's name."""
    arguments = program_arguments(command)
    return " ".join(arguments[:2] if arguments[:1] == ["-m"] else arguments[:1])


def _compare(section: str, before: dict[str, str], after: dict[str, str]) -> list[Change]:
    changes = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        kind = "added" if old is None else "removed" if new is None else "changed"
        changes.append(Change(section, kind, name, old or "", new or ""))
    return changes


# A word that is a value even though it starts with "-": a negative number (`--shift -1`).
_NUMBER = re.compile(r"-\.?\d[\d.e+-]*")


def _is_option(word: str) -> bool:
    return word.startswith("-") and word != "-" and not _NUMBER.fullmatch(word)


def arguments_by_name(command: list[str]) -> dict[str, str]:
    """The program's arguments by name, as `clew diff` compares them: each option with its
    value (`--lr 0.1` and `--lr=0.1` alike; a word after an option is its value unless it is
    an option itself; a repeated option has its values space-separated), a flag with ""
    (present or absent), and each positional argument as `positional N`, by its place among
    the positionals, so that an option added before it does not shift it."""
    arguments = program_arguments(command)
    words = arguments[2 if arguments[:1] == ["-m"] else 1:]
    named: dict[str, list[str]] = {}
    positionals: list[str] = []
    at = 0
    while at < len(words):
        word = words[at]
        at += 1
        if word == "--":  # the end of options: the rest are positional
            positionals += words[at:]
            break
        if not _is_option(word):
            positionals.append(word)
            continue
        name, equals, value = word.partition("=")
        if not equals and at < len(words) and not _is_option(words[at]):
            value = words[at]
            at += 1
        named.setdefault(name, []).append(value)
    found = {name: " ".join(value for value in values if value) for name, values in named.items()}
    found.update({f"positional {n}": word for n, word in enumerate(positionals, 1)})
    return found


def _run_row(tables: Tables, run_id: str) -> dict[str, Any]:
    (row,) = tables.client.query(
        f"SELECT {_RUN_COLUMNS} FROM {tables.runs} FINAL WHERE RunId = %(run)s",
        parameters={"run": run_id},
    ).named_results()
    return row


def _previous(tables: Tables, run: dict[str, Any]) -> str:
    """The newest run of the same program that started before `run`."""
    for run_id, command in tables.rows(
        f"SELECT RunId, Command FROM {tables.runs} FINAL "
        "WHERE toUnixTimestamp64Nano(Start) < %(start)s AND RunId != %(run)s "
        "ORDER BY Start DESC LIMIT %(limit)s",
        start=run["StartNs"], run=run["RunId"], limit=_CANDIDATES,
    ):
        if program(list(command)) == program(list(run["Command"])):
            return run_id
    raise LookupError(
        f"no earlier run of {program(list(run['Command']))} to compare run "
        f"{run['RunId'][:12]} with: name both runs (`clew runs` lists them)"
    )


def _newest_pair(tables: Tables) -> tuple[str, str, str]:
    """The newest run that has an earlier run of its program, that earlier run, and,
    when the newest run of all is the first of its program, a sentence saying so."""
    found = tables.rows(f"SELECT RunId, Command FROM {tables.runs} FINAL "
                      "ORDER BY Start DESC LIMIT %(limit)s", limit=_CANDIDATES)
    if not found:
        raise LookupError("the store holds no runs yet: run a program under "
                          "opentelemetry-instrument first")
    places: dict[str, list[int]] = {}  # each program's runs, newest first
    for place, (_, command) in enumerate(found):
        places.setdefault(program(list(command)), []).append(place)
    newest_id, newest_command = found[0]
    repeated = [runs for runs in places.values() if len(runs) > 1]
    if not repeated:
        raise LookupError(
            f"no earlier run of {program(list(newest_command))} to compare run "
            f"{newest_id[:12]} with, nor of any other program: name both runs "
            "(`clew runs` lists them)")
    b, a = min(repeated)[:2]  # the program whose newest run is the newest
    chosen = "" if b == 0 else (
        f"the newest run, {newest_id[:12]}, is the first run of "
        f"{program(list(newest_command))}: comparing run {found[b][0][:12]}, the newest "
        f"run of {program(list(found[b][1]))}, with its previous run")
    return found[b][0], found[a][0], chosen


def data_files(tables: Tables, paths: list[str], *runs: str) -> set[str]:
    """Those of `paths` (relative to the checkout) that the runs read or wrote."""
    if not paths:
        return set()
    return {path for (path,) in tables.rows(
        f"SELECT DISTINCT path FROM {tables.io} ARRAY JOIN %(paths)s AS path "
        "WHERE RunId IN %(runs)s AND endsWith(Uri, concat('/', path))",
        paths=paths, runs=list(runs))}


def _artifacts(tables: Tables, a: str, b: str, section: str, operations: tuple[str, ...]
               ) -> list[Change]:
    """The URIs whose content differs between the two runs' records, in one GROUP BY.
    Outputs are what each run left in place: a file it wrote and deleted again (a
    scratch file, `tempfile`'s probe) is no output to compare."""
    records = outputs_sql(tables.options) if section == "output" else tables.io
    changes = []
    for uri, before, after in tables.rows(
        f"SELECT Uri, arrayStringConcat(arraySort(groupUniqArrayIf(identity, RunId = %(a)s)), "
        f"' ') AS before, arrayStringConcat(arraySort(groupUniqArrayIf(identity, "
        f"RunId = %(b)s)), ' ') AS after "
        f"FROM (SELECT RunId, Uri, {IDENTITY_SQL} AS identity FROM {records} "
        "WHERE RunId IN (%(a)s, %(b)s) AND Operation IN %(operations)s) "
        "GROUP BY Uri HAVING before != after ORDER BY Uri",
        a=a, b=b, runs=[a, b], operations=list(operations),
    ):
        kind = "added" if not before else "removed" if not after else "changed"
        changes.append(Change(section, kind, uri, before, after))
    return changes


# What names a version of the code without being code.
_GIT_LABELS = ("git commit", "git branch")


def _git(run: dict[str, Any], data_files: set[str]) -> dict[str, str]:
    values = dict(zip(_GIT_LABELS, (run["GitCommit"], run["GitBranch"])))
    # A file that became (or stopped being) different from the commit is named, unless a
    # run read or wrote it: then it is data, and its change is already an input or output.
    for path in run["DiffFiles"]:
        if path not in data_files:
            values[f"uncommitted: {path}"] = "differs from the commit"
    for path, digest in zip(run["CodeFiles"], run["CodeDigests"]):
        values[f"source: {path}"] = digest
    return {name: value for name, value in values.items() if value}


def _own_code_unchanged(a: dict[str, Any], b: dict[str, Any], code: list[Change]) -> bool:
    """Whether the only code changes are the git commit or branch, while both runs recorded
    their source files (which were then the same, with the same digests)."""
    return bool(code and a["CodeFiles"] and b["CodeFiles"]
                and all(change.name in _GIT_LABELS for change in code))


def _named(run: dict[str, Any]) -> dict[str, str]:
    return {"program": program(list(run["Command"])), **arguments_by_name(list(run["Command"]))}


def _packages(run: dict[str, Any]) -> dict[str, str]:
    return dict(p.partition("==")[::2] for p in run["Packages"])


def _environment(run: dict[str, Any]) -> dict[str, str]:
    return {"host": run["Host"], "runtime": run["Runtime"], "working directory": run["Cwd"]}


# The causes a `clew_runs` row holds (inputs and config keys are in their own tables), per
# section: the row's fields they depend on, and their values by name (`data` as for `_git`).
ROW_SECTIONS: tuple[tuple[str, tuple[str, ...],
                          Callable[[dict[str, Any], set[str]], dict[str, str]]], ...] = (
    ("code", ("GitCommit", "GitBranch", "DiffFiles", "CodeFiles", "CodeDigests"), _git),
    ("package", ("Packages",), lambda run, data: _packages(run)),
    ("argument", ("Command",), lambda run, data: _named(run)),
    ("environment", ("Host", "Runtime", "Cwd"), lambda run, data: _environment(run)),
)


def _config(tables: Tables, a: str, b: str) -> tuple[list[Change], dict[str, str]]:
    """The config keys that differ between the runs, and the name each config file's keys
    go by (the config files are compared by key instead of as inputs)."""
    values, slots = config_values(tables, [a, b])
    return _compare("config", values[a], values[b]), slots


def _by_key(inputs: list[Change], config: list[Change], slots: dict[str, str]) -> list[Change]:
    """The input changes and the config key changes, a config file's own input change
    replaced by its key changes; a config file whose keys and values all stayed the same
    keeps its input change, noted as a change of formatting or comments alone."""
    changed = {change.name.split(": ", 1)[0] for change in config}
    kept = []
    for change in inputs:
        if slots.get(change.name) in changed:
            continue
        if change.name in slots:
            change.note = "its keys and values are the same: only formatting or comments changed"
        kept.append(change)
    return kept + config


def number_text(value: float) -> str:
    """A metric value as its shortest text, a whole number without ".0"."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _metrics(tables: Tables, a: str, b: str) -> list[Change]:
    """The metrics whose final value differs, each with its delta as the note."""
    values = final_values(tables, [a, b])
    changes = _compare("metric", {k: number_text(v) for k, v in values[a].items()},
                       {k: number_text(v) for k, v in values[b].items()})
    for change in changes:
        if change.kind == "changed":
            delta = values[b][change.name] - values[a][change.name]
            change.note = f"{'+' if delta > 0 else ''}{delta:.6g}"
    return changes


def _outcome(run: dict[str, Any]) -> dict[str, str]:
    exit_code = "" if run["ExitCode"] == -1 else f" (exit code {run['ExitCode']})"
    return {"status": run_status(run["StatusCode"], run["ExitCode"]) + exit_code}


def diff(
    client: Any,
    run_b: str | None = None,
    run_a: str | None = None,
    *,
    options: SchemaOptions | None = None,
) -> RunDiff:
    """What changed from run `run_a` to run `run_b` (ids or unique prefixes). Without
    `run_a`, against the previous run of the same program; without either, the newest run
    against its previous one.

    Raises:
        LookupError: a run is unknown or ambiguous, or there is no previous run to compare.
    """
    tables = Tables(client, options)
    chosen = ""
    if run_b is None:
        run_b, run_a, chosen = _newest_pair(tables)
    b = _run_row(tables, resolve_run(client, run_b, options=options))
    a = _run_row(tables, resolve_run(client, run_a, options=options) if run_a
                 else _previous(tables, b))
    data = data_files(tables, sorted({*a["DiffFiles"], *b["DiffFiles"]}), a["RunId"],
                       b["RunId"])
    by_section = {section: _compare(section, values_of(a, data), values_of(b, data))
                  for section, _, values_of in ROW_SECTIONS}
    code = by_section.pop("code")
    others = [change for changes in by_section.values() for change in changes]
    if _own_code_unchanged(a, b, code):
        # A commit of other code (another step of the pipeline, say): it names a new
        # version without this program's code having changed, so it comes last of the causes.
        for change in code:
            change.note = (f"{program(list(b['Command']))}'s own code is unchanged: every "
                           "source file it imported has the same content")
        causes = others + code
    else:
        causes = code + others
    config, slots = _config(tables, a["RunId"], b["RunId"])
    inputs = _by_key(_artifacts(tables, a["RunId"], b["RunId"], "input", ("read",)), config,
                     slots)
    return RunDiff(
        a=RunSummary(a["RunId"], iso_utc(a["Start"]), list(a["Command"])),
        b=RunSummary(b["RunId"], iso_utc(b["Start"]), list(b["Command"])),
        changes=(inputs + causes
                 + _artifacts(tables, a["RunId"], b["RunId"], "output", OUTPUT_OPERATIONS)
                 + _metrics(tables, a["RunId"], b["RunId"])
                 + _compare("outcome", _outcome(a), _outcome(b))),
        chosen=chosen,
    )
