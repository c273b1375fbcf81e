"""`clew lineage`, `clew impact`, `clew diff` and `clew check`: questions answered from the
store."""

from __future__ import annotations

import dataclasses

import click
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from ._commands_store import open_store
from ._output import CliContext, json_option, short_identity, shown_uri, write_json
from .checks import contamination, staleness
from .diff import CAUSES, RunDiff, diff
from .lineage import (GROUP_ABOVE, MAX_DEPTH, Edge, Graph, Node, RunNode, impact, lineage,
                      readers_label)


def _label(obj: CliContext, node: Node) -> str:
    if isinstance(node, RunNode):
        dirty = "+dirty" if node.git_dirty else ""
        git = f" git {node.git_commit[:10]}{dirty}" if node.git_commit else ""
        ranks = f" ranks {node.ranks[0]}-{node.ranks[-1]}" if len(node.ranks) > 1 else ""
        return (f"[bold]run {node.id[:12]}[/bold] {obj.command(node.command, 70)} "
                f"({node.status}){git}{ranks}")
    if node.files > 1:
        return f"{shown_uri(node.uri)} [dim]({node.files:,} files)[/dim]"
    digest = f" {node.digest[:19]}…" if node.digest else ""
    return f"{shown_uri(node.uri)}{digest}"


def _tree(obj: CliContext, graph: Graph, upstream: bool) -> Tree:
    """The graph as a tree from its root; a node already shown is not expanded again."""
    nodes = {node.id: node for node in graph.nodes}
    children: dict[str, list[tuple[str, Edge]]] = {}
    for edge in graph.edges:
        parent, child = (edge.target, edge.source) if upstream else (edge.source, edge.target)
        children.setdefault(parent, []).append((child, edge))
    tree = Tree(_label(obj, nodes[graph.root]))
    shown = {graph.root}

    def grow(branch: Tree, node_id: str) -> None:
        for child, edge in children.get(node_id, []):
            notes = " [yellow](by uri+time: weak)[/yellow]" if edge.evidence == "uri+time" else ""
            processes = readers_label(edge)
            if processes:
                notes += f" [dim](read by {escape(processes)})[/dim]"
            if child in shown:
                # e.g. a run that read what its own subprocess wrote
                branch.add(f"[dim]{_label(obj, nodes[child])} (shown above)[/dim]{notes}")
                continue
            shown.add(child)
            grow(branch.add(_label(obj, nodes[child]) + notes), child)

    grow(tree, graph.root)
    return tree


def _show(obj: CliContext, graph: Graph, fmt: str, upstream: bool) -> None:
    if fmt == "json":
        write_json({"root": graph.root, "nodes": [node.to_json() for node in graph.nodes],
                    "edges": graph.edges, "schema": graph.schema}, obj.stdout)
    else:
        obj.out.print(_tree(obj, graph, upstream))


_all_files = click.option(
    "--all-files", is_flag=True,
    help=f"Every file on its own, not one node per directory of more than {GROUP_ABOVE} that "
    "no other run wrote (lineage) or read (impact).")


@click.command("lineage")
@click.argument("artifact")
@click.option("--depth", type=click.IntRange(1, MAX_DEPTH), default=MAX_DEPTH,
              help="How many runs back to go.")
@_all_files
@json_option
@click.pass_obj
def lineage_command(obj: CliContext, artifact: str, depth: int, all_files: bool,
                    fmt: str) -> None:
    """What produced ARTIFACT (a path, URI or blake3 digest): the run that wrote it, what
    that run read, the runs that produced those inputs, back to raw data.

    Raw inputs (files no recorded run wrote) that a run read from one directory, when more
    than 50, show as that directory and their number; --all-files lists each one."""
    client, options = open_store(obj, quiet=fmt == "json")
    try:
        graph = lineage(client, artifact, options=options, depth=depth,
                        group_above=None if all_files else GROUP_ABOVE)
    except LookupError as error:
        raise click.UsageError(str(error)) from None
    _show(obj, graph, fmt, upstream=True)


@click.command("impact")
@click.argument("artifact")
@click.option("--depth", type=click.IntRange(1, MAX_DEPTH), default=MAX_DEPTH,
              help="How many runs forward to go.")
@_all_files
@json_option
@click.pass_obj
def impact_command(obj: CliContext, artifact: str, depth: int, all_files: bool,
                   fmt: str) -> None:
    """Everything downstream of ARTIFACT: the runs that read it, what they wrote, and on.

    Outputs that no recorded run read, when a run wrote more than 50 to one directory, show
    as that directory and their number; --all-files lists each one."""
    client, options = open_store(obj, quiet=fmt == "json")
    try:
        graph = impact(client, artifact, options=options, depth=depth,
                       group_above=None if all_files else GROUP_ABOVE)
    except LookupError as error:
        raise click.UsageError(str(error)) from None
    _show(obj, graph, fmt, upstream=False)


def _diff_table(result: RunDiff) -> Table:
    table = Table(title=f"from run {result.a.run_id[:12]} ({result.a.start[:19]}) "
                        f"to run {result.b.run_id[:12]} ({result.b.start[:19]})",
                  title_justify="left")
    for column in ("", "what", "change", "name", "before", "after"):
        table.add_column(column, overflow="fold")
    for change in sorted(result.changes, key=lambda c: c.section not in CAUSES):
        role = "cause" if change.section in CAUSES else "effect"
        name, values = escape(change.name), (change.before, change.after)
        if change.section in ("input", "output"):  # an artifact
            name = shown_uri(change.name)
        if change.section == "config":  # URI: key
            uri, key = change.name.split(": ", 1)
            name = f"{shown_uri(uri)}: {escape(key)}"
        if change.section in ("input", "output", "code"):  # digests, versions, commits
            values = tuple(short_identity(value) for value in values)
        if change.section == "metric" and change.note:  # the delta
            values = (values[0], f"{values[1]} ({change.note})")
        table.add_row(role, change.section, change.kind, name, *map(escape, values))
    return table


@click.command("diff")
@click.argument("runs", nargs=-1, metavar="[RUN_A] [RUN_B]")
@json_option
@click.pass_obj
def diff_command(obj: CliContext, runs: tuple[str, ...], fmt: str) -> None:
    """What changed between two runs (ids or unique prefixes, from `clew runs`): inputs
    added, removed or changed, code, packages, arguments and environment (the causes), then
    outputs and outcome (the effects).

    With one RUN, against the previous run of the same program; with none, the newest run
    against its previous one."""
    if len(runs) > 2:
        raise click.UsageError("give at most two runs: clew diff [RUN_A] [RUN_B]")
    client, options = open_store(obj, quiet=fmt == "json")
    run_a = runs[0] if len(runs) == 2 else None
    run_b = runs[-1] if runs else None
    try:
        result = diff(client, run_b, run_a, options=options)
    except LookupError as error:
        raise click.UsageError(str(error)) from None
    if result.chosen and fmt != "json":
        obj.err.print(result.chosen, markup=False, highlight=False)
    if fmt == "json":
        write_json(dataclasses.asdict(result), obj.stdout)
    elif result.changes:
        obj.out.print(_diff_table(result))
        noted: dict[str, list[str]] = {}  # one line per note, naming what it is about
        for change in result.changes:
            if change.note and change.section != "metric":
                noted.setdefault(change.note, []).append(change.name)
        for note, names in noted.items():
            obj.out.print(f"{' and '.join(names)} changed, but {note}", markup=False,
                          highlight=False)
    else:
        obj.out.print(f"no difference between run {result.a.run_id[:12]} and run "
                      f"{result.b.run_id[:12]}")


@click.command("check")
@click.argument("model")
@click.option("--test", "tests", multiple=True, metavar="PATH_OR_URI",
              help="Test data (files or directories); repeatable.")
@click.option("--stale", is_flag=True, help="Also flag inputs whose content changed since.")
@json_option
@click.pass_context
def check_command(ctx: click.Context, model: str, tests: tuple[str, ...], stale: bool,
                  fmt: str) -> None:
    """Was MODEL, or anything upstream of it, trained on the test set (by location and by
    content digest)? With --stale: are its inputs still what it was built from? Exits 1 on
    a finding, so CI can gate on it."""
    if not tests and not stale:
        raise click.UsageError("say what to check: --test PATH (repeatable) and/or --stale")
    obj: CliContext = ctx.obj
    client, options = open_store(obj, quiet=fmt == "json")
    try:
        findings = contamination(client, model, list(tests), options=options) if tests else []
        if stale:
            findings += staleness(client, model, options=options)
    except (LookupError, FileNotFoundError) as error:
        raise click.UsageError(str(error)) from None
    if fmt == "json":
        write_json({"schema": 1, "model": model, "ok": not findings,
                    "findings": [dataclasses.asdict(f) for f in findings]}, obj.stdout)
    elif findings:
        for finding in findings:
            obj.out.print(f"[red]{finding.kind}[/red] {shown_uri(finding.uri)} "
                          f"({finding.evidence}): {finding.detail}")
    else:
        obj.out.print(f"[green]ok[/green]: nothing upstream of {model} is test data"
                      + (" and no input changed" if stale else ""))
    if findings:
        ctx.exit(1)
