"""`clew export`: an artifact's lineage in another tool's format."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click

from clew.semconv.uris import file_uri

from ._commands_store import open_store
from ._output import CliContext
from .export import FORMATS, export
from .lineage import GROUP_ABOVE, MAX_DEPTH, lineage


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], check=False, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _repository() -> str:
    """The repository the working directory is in: its `origin` remote when that is a URL
    (without credentials), else `file://HOST/<top level>`; "" outside a repository."""
    top = _git("rev-parse", "--show-toplevel")
    if not top:
        return ""
    remote = urlsplit(_git("config", "--get", "remote.origin.url"))
    if remote.scheme in ("https", "http", "ssh", "git") and remote.hostname:
        netloc = remote.hostname + (f":{remote.port}" if remote.port else "")
        if remote.scheme == "ssh" and remote.username:
            netloc = f"{remote.username}@{netloc}"  # ssh's user is no secret; https's may be
        return urlunsplit((remote.scheme, netloc, remote.path, "", ""))
    return file_uri(top)


@click.command("export")
@click.argument("artifact")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), required=True,
              help="The output format (described above).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE instead of standard output.")
@click.option("--depth", type=click.IntRange(1, MAX_DEPTH), default=MAX_DEPTH,
              help="How many runs back to go.")
@click.option("--repository", metavar="URL",
              help="slsa: the source repository the git commits are in (default: the "
              "working directory's origin remote, else its path).")
@click.pass_obj
def export_command(obj: CliContext, artifact: str, fmt: str, output: Path | None, depth: int,
                   repository: str | None) -> None:
    """Export the lineage of ARTIFACT (a path, URI or blake3 digest), as `clew lineage`
    finds it, in another tool's format:

    \b
      openlineage  OpenLineage RunEvents (spec 2-0-2), JSON Lines: one COMPLETE or FAIL
                   event per run; job namespace "clew", job name the command without
                   the interpreter ("train.py model.txt"), runId the trace id as a UUID
      prov         W3C PROV-JSON: artifacts are entities, runs activities, with used,
                   wasGeneratedBy and wasDerivedFrom
      slsa         in-toto Statement v1 with a SLSA provenance v1 predicate: subject the
                   artifact (blake3, and sha256 when the file is here), the command of
                   the run that wrote it, every upstream input and the git commit
      dot          Graphviz DOT text (pipe into `dot -Tsvg`)
      mermaid      a Mermaid flowchart, for Markdown
      html         one self-contained page drawing the graph (no network needed)

    The drawings (dot, mermaid, html) show the raw inputs a run read from one directory,
    when more than 50, as one node; the other formats list every input.

    openlineage and prov need `pip install 'clew[export]'`. Details: docs/cli.md.
    """
    client, options = open_store(obj, quiet=True)
    try:
        # The formats other tools take in record every input; the drawings group raw ones.
        group_above = GROUP_ABOVE if fmt in ("dot", "mermaid", "html") else None
        graph = lineage(client, artifact, options=options, depth=depth, group_above=group_above)
    except LookupError as error:
        raise click.UsageError(str(error)) from None
    settings = {}
    if fmt == "slsa":
        settings["repository"] = _repository() if repository is None else repository
    text = export(graph, fmt, **settings)
    if output is None:
        obj.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        obj.err.print(f"wrote {fmt} to {output}")
