"""What the export formats share: a run's inputs and outputs, job names, times, URIs.

Everything here is a pure function of a `Graph`; nothing touches the store.
"""

from __future__ import annotations

import datetime as dt
import importlib
import shlex
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from urllib.parse import unquote, urlsplit

from ..lineage import ArtifactNode, Edge, Graph, Node, RunNode
from ..runs import program_arguments

EXTRA_HINT = "pip install 'clew[export]'"
# The URIs clew names itself by in the documents it writes (docs/cli.md, "Exports").
CLEW_URI = "https://clew.dev"
# Node and edge kinds the exports understand; others (a later "process" or "derived") are
# skipped by the interchange formats and drawn plainly by the pictures.
ARTIFACT = "artifact"
RUN = "run"
READ = "read"
WROTE = "wrote"
WEAK_EVIDENCE = "uri+time"


def require(module: str, package: str, fmt: str) -> ModuleType:
    """Import an optional dependency, or raise an ImportError naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"--format {fmt} needs the {package} package: {EXTRA_HINT}"
        ) from error


def clew_version() -> str:
    try:
        from importlib.metadata import version

        return version("clew")
    except Exception:  # noqa: BLE001 - an uninstalled checkout still exports
        return "0"


@dataclass
class RunIO:
    """One run with the artifacts it read and wrote (each with the edge's evidence)."""

    run: RunNode
    inputs: list[tuple[ArtifactNode, Edge]] = field(default_factory=list)
    outputs: list[tuple[ArtifactNode, Edge]] = field(default_factory=list)


def runs(graph: Graph) -> list[RunIO]:
    """The graph's runs in start order, each with its read and written artifacts."""
    nodes = {node.id: node for node in graph.nodes}
    by_run = {node.id: RunIO(node) for node in graph.nodes if node.kind == RUN}
    for edge in graph.edges:
        source, target = nodes.get(edge.source), nodes.get(edge.target)
        if source is None or target is None:
            continue
        if edge.kind == READ and target.id in by_run and source.kind == ARTIFACT:
            by_run[target.id].inputs.append((source, edge))
        elif edge.kind == WROTE and source.id in by_run and target.kind == ARTIFACT:
            by_run[source.id].outputs.append((target, edge))
    return sorted(by_run.values(), key=lambda io: (io.run.start, io.run.id))


def producer(graph: Graph) -> RunNode | None:
    """The run that wrote the graph's root, if the graph has one."""
    runs = {node.id: node for node in graph.nodes if isinstance(node, RunNode)}
    for edge in graph.edges:
        if edge.kind == WROTE and edge.target == graph.root and edge.source in runs:
            return runs[edge.source]
    return None


def job_name(command: list[str]) -> str:
    """A run's command as a job name: the interpreter dropped, the script's basename, then
    the arguments as given (`["/usr/bin/python3", "/p/train.py", "model.txt"]` ->
    `"train.py model.txt"`; `python -m pkg.mod x` -> `"-m pkg.mod x"`)."""
    return shlex.join(program_arguments(command)) or "unknown"


def run_uuid(run_id: str) -> str:
    """A run (trace) id as a UUID: the 32 hex digits of a trace id formatted as one, else a
    name-based UUID of whatever the id is."""
    try:
        return str(uuid.UUID(hex=run_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{CLEW_URI}/run/{run_id}"))


def parse_time(text: str) -> dt.datetime | None:
    """A time as the store gives it (ISO 8601 or `YYYY-MM-DD hh:mm:ss.fffffffff`, UTC when no
    offset is given), or None when empty or unreadable."""
    text = (text or "").strip()
    if not text:
        return None
    head, dot, fraction = text.partition(".")
    if dot:  # Python takes at most microseconds; the store has nanoseconds
        digits = len(fraction) - len(fraction.lstrip("0123456789"))
        fraction = fraction[:min(digits, 6)] + fraction[digits:]
        text = f"{head}.{fraction}" if fraction[:1].isdigit() else head + fraction
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.year <= 1970:  # the store's zero time: not recorded
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def iso_time(text: str) -> str:
    """RFC 3339 in UTC with a `Z` (what OpenLineage, PROV and SLSA all accept), or ""."""
    value = parse_time(text)
    if value is None:
        return ""
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def split_digest(digest: str) -> tuple[str, str]:
    """`"blake3:ab12"` -> `("blake3", "ab12")`; ("", "") when there is none."""
    algorithm, _, value = digest.partition(":")
    return (algorithm.lower(), value.lower()) if value else ("", "")


def local_path(uri: str) -> str:
    """The absolute path of a `file://` URI, "" for any other URI."""
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme == "file" else ""


def display_name(node: Node, width: int = 48) -> str:
    """A short label: a run's job name, an artifact's last two path segments."""
    if isinstance(node, RunNode):
        text = job_name(node.command)
    elif node.uri:
        parts = urlsplit(node.uri)
        segments = unquote(parts.path).strip("/").split("/")
        tail = "/".join(segments[-2:])
        if parts.scheme == "file":
            text = tail or node.uri
        else:
            text = f"{parts.scheme}://{parts.netloc}/{'…/' if len(segments) > 2 else ''}{tail}"
        if node.files > 1:
            text = f"{text}/ ({node.files:,} files)"
    elif node.digest:
        text = node.digest
    else:
        text = node.id
    return text if len(text) <= width else text[: width - 1] + "…"


def short_digest(digest: str) -> str:
    algorithm, value = split_digest(digest)
    return f"{algorithm}:{value[:12]}" if value else ""
