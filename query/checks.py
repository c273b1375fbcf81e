"""`clew check`: was a model trained on the test set, and is it stale?

Both checks walk the model's lineage (query/lineage.py) and compare what was read upstream
with the files as they are now:

- test-set contamination: an upstream input whose content digest equals a test file's (so a
  test file copied or renamed into the training data is caught), or whose URI is a test file
  or lies under a test directory;
- staleness: an upstream local input whose current content differs from the content the
  model was built from (or that no longer exists); an upstream input elsewhere (an object)
  whose URI the store shows holding other content after it was last seen as the input
  (overwritten between the run that read it and a later reader or writer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clew.exporter.schema import SchemaOptions
from clew.instrumentation._paths import file_uri, path_of_file_uri

from .lineage import IDENTITY_SQL, Artifact, Graph, Tables, lineage, resolve


@dataclass
class Finding:
    """One problem: `kind` is "test-data" or "stale"."""

    kind: str
    uri: str
    digest: str
    # "digest", "uri" (contamination); "content changed", "missing", "overwritten" (stale)
    evidence: str
    detail: str


def _inputs(graph: Graph) -> list[Artifact]:
    """Every artifact version some run upstream read."""
    read = {edge.source for edge in graph.edges if edge.kind == "read"}
    return sorted(
        {Artifact(n.uri, n.digest, n.version, n.etag, n.size) for n in graph.nodes if n.id in read},
        key=lambda a: (a.uri, a.digest),
    )


def _test_files(paths: list[str], tables: Tables) -> dict[str, str]:
    """URI -> digest of every test file: local files (or the files under a directory) as
    they are now; objects (a URI, or a prefix of URIs) by the digests the store recorded
    for them, from any run that read or wrote them."""
    files: dict[str, str] = {}
    for name in paths:
        if "://" in name:
            files[name] = ""
            prefix = name.rstrip("/") + "/"
            for uri, digest in tables.rows(
                f"SELECT DISTINCT Uri, Digest FROM {tables.io} WHERE Digest != '' "
                "AND (Uri = %(uri)s OR startsWith(Uri, %(prefix)s))",
                uri=name, prefix=prefix,
            ):
                files[uri] = digest
            continue
        root = Path(name)
        if not root.exists():
            raise FileNotFoundError(f"test path {name} does not exist")
        candidates = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in candidates:
            artifact = resolve(str(path))
            files[artifact.uri] = artifact.digest
    return files


def contamination(
    client: Any, model: str, tests: list[str], *, options: SchemaOptions | None = None
) -> list[Finding]:
    """Upstream inputs of `model` that are test data, by content digest or by location."""
    test_files = _test_files(tests, Tables(client, options))
    by_digest = {digest: uri for uri, digest in test_files.items() if digest}
    prefixes = tuple(
        (t if "://" in t else resolve(os.path.abspath(t)).uri).rstrip("/") + "/" for t in tests
    )
    findings = []
    for artifact in _inputs(lineage(client, model, options=options, group_above=None)):
        uri, digest = artifact.uri, artifact.digest
        if uri in test_files or uri.startswith(prefixes):
            findings.append(Finding("test-data", uri, digest, "uri", "a test file itself"))
        elif digest and digest in by_digest:
            findings.append(Finding("test-data", uri, digest, "digest",
                                    f"same content as test file {by_digest[digest]}"))
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
    inputs = _inputs(lineage(client, model, options=options, group_above=None))
    here = file_uri("/")
    local = [a for a in inputs if a.uri.startswith(here) and a.digest]
    findings = [f for f in map(_changed_on_disk, local) if f is not None]
    elsewhere = [a for a in inputs if not a.uri.startswith(here)]
    return findings + _overwritten(client, options, elsewhere)
