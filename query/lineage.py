"""Lineage in SQL: what produced an artifact, back to raw data, and what it fed downstream.

The graph is walked one level per query over `clew_io` (so the work stays in ClickHouse and
scales with it): from an artifact to the run that wrote it, from that run to what it read,
from each input to the run that produced it, and so on. A read is matched to its producing
write by the strongest evidence available: the same content digest ("digest"), else the same
URI written before the read ("uri+time", weak, and marked as such).

The result is a node-link graph, `--format json` schema 1:
`{"nodes": [{"id", "kind": "artifact"|"run", ...}], "edges": [{"source", "target",
"kind": "read"|"wrote", "evidence": "digest"|"uri+time"}]}`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import blake3

from clew.exporter.lineage import IO_TABLE, OUTPUT_OPERATIONS, RUNS_TABLE
from clew.exporter.schema import SchemaOptions, qualified_name

MAX_DEPTH = 50
_READ = "read"


@dataclass
class Node:
    """An artifact (one content version at one URI) or a run."""

    id: str
    kind: str
    uri: str = ""
    digest: str = ""
    command: list[str] = field(default_factory=list)
    start: str = ""
    status: str = ""
    git_commit: str = ""
    git_dirty: bool = False


@dataclass
class Edge:
    source: str
    target: str
    kind: str
    evidence: str


@dataclass
class Graph:
    """A lineage graph; `schema` versions the JSON form."""

    root: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    schema: int = 1

    def add_node(self, node: Node) -> None:
        if all(existing.id != node.id for existing in self.nodes):
            self.nodes.append(node)

    def add_edge(self, edge: Edge) -> None:
        if edge not in self.edges:
            self.edges.append(edge)


@dataclass(frozen=True)
class Artifact:
    """What the user named: a URI and/or a content digest."""

    uri: str
    digest: str

    @property
    def id(self) -> str:
        return f"{self.uri}@{self.digest}" if self.digest else self.uri


def resolve(name: str) -> Artifact:
    """A path, a URI or a digest, as an Artifact. A local file that exists is also hashed,
    so its lineage is that of the content it holds now."""
    if name.startswith(("blake3:", "sha256:")):
        return Artifact("", name.lower())
    if "://" in name:
        return Artifact(name, "")
    path = os.path.abspath(name)
    uri = f"file://{socket.gethostname()}{quote(path, safe='/:@!$&()*+,;=~-._')}"
    digest = ""
    if Path(path).is_file():
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(path)
        digest = "blake3:" + hasher.hexdigest()
    return Artifact(uri, digest)


class _Tables:
    def __init__(self, client: Any, options: SchemaOptions) -> None:
        self.client = client
        self.io = qualified_name(options, IO_TABLE)
        self.runs = qualified_name(options, RUNS_TABLE)

    def rows(self, sql: str, **parameters: Any) -> list[tuple]:
        return self.client.query(sql, parameters=parameters).result_rows

    def producers(self, artifacts: list[Artifact]) -> list[tuple[Artifact, str, str]]:
        """(artifact, run, evidence) for each artifact's latest producing
        write: by digest where the artifact has one, else by URI."""
        found = []
        digests = sorted({a.digest for a in artifacts if a.digest})
        by_digest = {}
        if digests:
            for digest, run in self.rows(
                f"SELECT Digest, argMax(RunId, Timestamp) FROM {self.io} "
                f"WHERE Operation IN {OUTPUT_OPERATIONS!r} AND Digest IN %(digests)s "
                "GROUP BY Digest",
                digests=digests,
            ):
                by_digest[digest] = run
        uris = sorted({a.uri for a in artifacts if a.uri and a.digest not in by_digest})
        by_uri = {}
        if uris:
            for uri, run in self.rows(
                f"SELECT Uri, argMax(RunId, Timestamp) FROM {self.io} "
                f"WHERE Operation IN {OUTPUT_OPERATIONS!r} AND Uri IN %(uris)s GROUP BY Uri",
                uris=uris,
            ):
                by_uri[uri] = run
        for artifact in artifacts:
            if artifact.digest in by_digest:
                found.append((artifact, by_digest[artifact.digest], "digest"))
            elif artifact.uri in by_uri:
                found.append((artifact, by_uri[artifact.uri], "uri+time"))
        return found

    def artifacts(self, runs: list[str], operations: tuple[str, ...]) -> dict[str, list[Artifact]]:
        """Per run, the distinct artifacts it did one of `operations` to."""
        result: dict[str, list[Artifact]] = {}
        if not runs:
            return result
        for run, uri, digest in self.rows(
            f"SELECT DISTINCT RunId, Uri, Digest FROM {self.io} "
            "WHERE RunId IN %(runs)s AND Operation IN %(operations)s ORDER BY Uri",
            runs=runs,
            operations=list(operations),
        ):
            result.setdefault(run, []).append(Artifact(uri, digest))
        return result

    def readers(self, artifacts: list[Artifact]) -> list[tuple[Artifact, str, str]]:
        """(artifact, run, evidence) for every run that read one of `artifacts`."""
        digests = sorted({a.digest for a in artifacts if a.digest})
        uris = sorted({a.uri for a in artifacts if a.uri and not a.digest})
        found = []
        for run, uri, digest in self.rows(
            f"SELECT DISTINCT RunId, Uri, Digest FROM {self.io} WHERE Operation = '{_READ}' "
            "AND (Digest IN %(digests)s OR Uri IN %(uris)s)",
            digests=digests or [""],
            uris=uris or [""],
        ):
            for artifact in artifacts:
                if artifact.digest and artifact.digest == digest:
                    found.append((artifact, run, "digest"))
                elif not artifact.digest and artifact.uri == uri:
                    found.append((artifact, run, "uri+time"))
        return found

    def run_nodes(self, runs: list[str]) -> list[Node]:
        return [
            Node(
                id=run, kind="run", command=list(command), start=str(start),
                status="failed" if status == "Error" or exit_code not in (0, -1) else "ok",
                git_commit=commit, git_dirty=bool(dirty),
            )
            for run, command, start, status, exit_code, commit, dirty in self.rows(
                f"SELECT RunId, Command, Start, StatusCode, ExitCode, GitCommit, GitDirty "
                f"FROM {self.runs} FINAL WHERE RunId IN %(runs)s",
                runs=runs,
            )
        ]


def _walk(tables: _Tables, target: Artifact, *, upstream: bool, depth: int) -> Graph:
    """Alternate artifact -> run -> artifact steps, one query a step, until nothing is new.

    Upstream an artifact's runs are its producers and a run's artifacts its inputs;
    downstream they are its readers and its outputs.
    """
    graph = Graph(root=target.id)
    graph.add_node(Node(id=target.id, kind="artifact", uri=target.uri, digest=target.digest))
    frontier = [target]
    seen_runs: set[str] = set()
    for _ in range(depth):
        links = tables.producers(frontier) if upstream else tables.readers(frontier)
        new_runs = sorted({run for _, run, _ in links} - seen_runs)
        for artifact, run, evidence in links:
            graph.add_edge(
                Edge(run, artifact.id, "wrote", evidence)
                if upstream
                else Edge(artifact.id, run, "read", evidence)
            )
        for node in tables.run_nodes(new_runs):
            graph.add_node(node)
        seen_runs.update(new_runs)
        frontier = []
        touched = tables.artifacts(new_runs, (_READ,) if upstream else OUTPUT_OPERATIONS)
        for run, artifacts in touched.items():
            for artifact in artifacts:
                graph.add_node(
                    Node(id=artifact.id, kind="artifact", uri=artifact.uri, digest=artifact.digest)
                )
                graph.add_edge(
                    Edge(artifact.id, run, "read", "digest" if artifact.digest else "uri+time")
                    if upstream
                    else Edge(run, artifact.id, "wrote", "digest")
                )
                frontier.append(artifact)
        if not frontier:
            break
    return graph


def lineage(
    client: Any,
    name: str,
    *,
    options: SchemaOptions | None = None,
    depth: int = MAX_DEPTH,
) -> Graph:
    """Everything upstream of the artifact `name` (a path, URI or digest), `depth` runs deep.

    Raises:
        LookupError: no run in the store wrote that artifact.
    """
    graph = _walk(_Tables(client, options or SchemaOptions()), resolve(name), upstream=True,
                  depth=depth)
    if not graph.edges:
        raise LookupError(f"no run in the store wrote {name}: `clew runs` lists what is recorded")
    return graph


def impact(
    client: Any,
    name: str,
    *,
    options: SchemaOptions | None = None,
    depth: int = MAX_DEPTH,
) -> Graph:
    """Everything downstream of the artifact `name`: the runs that read it (by content
    digest, or by URI when it has none), what they wrote, who read that, and so on."""
    return _walk(_Tables(client, options or SchemaOptions()), resolve(name), upstream=False,
                 depth=depth)
