"""`clew check`: was a model trained on the test set, and is it stale?

Both checks walk the model's lineage (query/lineage.py) and compare what was read upstream
with the files as they are now:

- test-set contamination: an upstream input whose content digest (or, for objects, ETag)
  equals a test file's (so a test file copied or renamed into the training data is caught),
  or whose URI is a test file or lies under a test directory (a test file a run copied is an
  input of that run, so a recorded copy is caught whatever its content); each finding names
  the runs that read it and their processes (rank, DataLoader worker, pid);
- staleness: an upstream local input whose current content differs from the content the
  model was built from (or that no longer exists); an upstream input elsewhere (an object)
  whose URI the store shows holding other content after it was last seen as the input
  (overwritten between the run that read it and a later reader or writer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clew.exporter.store.schema import SchemaOptions
from clew.semconv.uris import file_uri, path_of_file_uri

from .lineage import (
    IDENTITY_SQL,
    Artifact,
    Edge,
    Graph,
    Tables,
    lineage,
    readers_label,
    resolve,
)


@dataclass
class Finding:
    """One problem: `kind` is "test-data" or "stale"; `read_by` the runs that read it."""

    kind: str
    uri: str
    digest: str
    # "digest", "etag", "uri" (contamination); "content changed", "missing", "overwritten"
    evidence: str
    detail: str
    read_by: list[str] = field(default_factory=list)


def _inputs(graph: Graph) -> dict[Artifact, list[Edge]]:
    """Every artifact version some run upstream read, with its reads (by run)."""
    reads: dict[str, list[Edge]] = {}
    for edge in graph.edges:
        if edge.kind == "read":
            reads.setdefault(edge.source, []).append(edge)
    found: dict[Artifact, list[Edge]] = {}
    for node in graph.nodes:
        if node.id in reads:
            artifact = Artifact(node.uri, node.digest, node.version, node.etag, node.size)
            found.setdefault(artifact, []).extend(reads[node.id])
    return {artifact: sorted(edges, key=lambda edge: edge.target)
            for artifact, edges in sorted(found.items(),
                                          key=lambda item: (item[0].uri, item[0].digest))}


def _read_by(reads: list[Edge]) -> str:
    """The runs of `reads`, each with the processes that read: "run 1a2b3c4d5e6f (rank 1,
    DataLoader worker 0, pid 4242)", as the records have them."""
    named = []
    for edge in reads:
        processes = readers_label(edge)
        named.append(f"run {edge.target[:12]}" + (f" ({processes})" if processes else ""))
    return "read by " + ", ".join(named)


@dataclass
class _TestSet:
    """The test files' URIs, and which test file has each content digest and ETag."""

    uris: set[str] = field(default_factory=set)
    digest: dict[str, str] = field(default_factory=dict)
    etag: dict[str, str] = field(default_factory=dict)

    def add(self, uri: str, digest: str, etag: str = "") -> None:
        self.uris.add(uri)
        if digest:
            self.digest[digest] = uri
        if etag:
            self.etag[etag] = uri


def _test_files(paths: list[str], tables: Tables) -> _TestSet:
    """Every test file: local files (or the files under a directory) as they are now;
    objects (a URI, or a prefix of URIs) by the identities the store recorded for them, from
    any run that read, wrote or copied them."""
    found = _TestSet()
    for name in paths:
        if "://" in name:
            found.add(name, "")
            prefix = name.rstrip("/") + "/"
            for uri, digest, etag in tables.rows(
                # every record at the URI, and copies' sources (a copy's own identities)
                f"SELECT DISTINCT Uri, Digest, ETag FROM (SELECT Uri, Digest, ETag FROM "
                f"{tables.io} UNION ALL SELECT Uri, Digest, ETag FROM {tables.reads}) "
                "WHERE (Digest != '' OR ETag != '') "
                "AND (Uri = %(uri)s OR startsWith(Uri, %(prefix)s))",
                uri=name, prefix=prefix,
            ):
                found.add(uri, digest, etag)
            continue
        root = Path(name)
        if not root.exists():
            raise FileNotFoundError(f"test path {name} does not exist")
        candidates = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in candidates:
            artifact = resolve(str(path))
            found.add(artifact.uri, artifact.digest)
    return found


def contamination(
    client: Any, model: str, tests: list[str], *, options: SchemaOptions | None = None
) -> list[Finding]:
    """Upstream inputs of `model` that are test data, by content digest, by ETag or by
    location."""
    tables = Tables(client, options)
    test_set = _test_files(tests, tables)
    prefixes = tuple(
        (t if "://" in t else resolve(os.path.abspath(t)).uri).rstrip("/") + "/" for t in tests
    )
    findings = []
    graph = lineage(client, model, options=options, group_above=None)
    for artifact, reads in _inputs(graph).items():
        uri, digest = artifact.uri, artifact.digest
        runs = sorted({edge.target for edge in reads})
        read_by = _read_by(reads)
        if uri in test_set.uris or uri.startswith(prefixes):
            findings.append(Finding("test-data", uri, digest, "uri",
                                    f"a test file itself, {read_by}", runs))
            continue
        for evidence, value, same in (("digest", digest, test_set.digest),
                                      ("etag", artifact.etag, test_set.etag)):
            if value and value in same:
                findings.append(Finding(
                    "test-data", uri, digest, evidence,
                    f"same content as test file {same[value]}, {read_by}", runs))
                break
    return findings


def _changed_on_disk(artifact: Artifact) -> Finding | None:
    path = path_of_file_uri(artifact.uri)
    if not os.path.isfile(path):
        return Finding("stale", artifact.uri, artifact.digest, "missing", "the input is gone")
    now = resolve(path).digest
    if now != artifact.digest:
        return Finding("stale", artifact.uri, artifact.digest, "content changed", f"now {now}")
    return None


def _overwritten(client: Any, options: SchemaOptions, inputs: list[Artifact]) -> list[Finding]:
    """Inputs whose URI the store later saw holding other content, in one query."""
    if not inputs:
        return []
    sightings: dict[str, dict[str, tuple[int, str]]] = {}
    tables = Tables(client, options)
    for uri, identity, last, run in tables.rows(
        f"SELECT Uri, identity, max(time), argMax(RunId, time) FROM (SELECT Uri, RunId, "
        f"{IDENTITY_SQL} AS identity, toUnixTimestamp64Nano(Timestamp) AS time "
        f"FROM {tables.io} WHERE Uri IN %(uris)s) GROUP BY Uri, identity",
        uris=sorted({a.uri for a in inputs}),
    ):
        sightings.setdefault(uri, {})[identity] = (last, run)
    findings = []
    for artifact in inputs:
        seen = sightings.get(artifact.uri, {})
        last_seen = seen.get(artifact.identity, (0, ""))[0]
        later = [(time, identity, run) for identity, (time, run) in seen.items()
                 if identity != artifact.identity and time > last_seen]
        if later:
            _, identity, run = max(later)
            findings.append(Finding("stale", artifact.uri, artifact.digest, "overwritten",
                                    f"later seen as {identity} by run {run[:12]}"))
    return findings


def staleness(client: Any, model: str, *, options: SchemaOptions | None = None) -> list[Finding]:
    """Upstream inputs of `model` whose content is no longer what the model was built from:
    local files by their content now, other artifacts by what the store saw after."""
    options = options or SchemaOptions()
    inputs = list(_inputs(lineage(client, model, options=options, group_above=None)))
    here = file_uri("/")
    local = [a for a in inputs if a.uri.startswith(here) and a.digest]
    findings = [f for f in map(_changed_on_disk, local) if f is not None]
    elsewhere = [a for a in inputs if not a.uri.startswith(here)]
    return findings + _overwritten(client, options, elsewhere)
