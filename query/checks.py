"""`clew check`: was a model trained on the test set, and is it stale?

Both checks walk the model's lineage (query/lineage.py) and compare what was read upstream
with the files as they are now:

- test-set contamination: an upstream input whose content digest equals a test file's (so a
  test file copied or renamed into the training data is caught), or whose URI is a test file
  or lies under a test directory;
- staleness: an upstream local input whose current content differs from the content the
  model was built from (or that no longer exists).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from clew.exporter.schema import SchemaOptions

from .lineage import Graph, lineage, resolve


@dataclass
class Finding:
    """One problem: `kind` is "test-data" or "stale"."""

    kind: str
    uri: str
    digest: str
    evidence: str  # "digest", "uri" (contamination) or "content changed", "missing" (stale)
    detail: str


def _inputs(graph: Graph) -> list[tuple[str, str]]:
    """(uri, digest) of every artifact some run upstream read."""
    read = {edge.source for edge in graph.edges if edge.kind == "read"}
    return sorted({(n.uri, n.digest) for n in graph.nodes if n.id in read})


def _test_files(paths: list[str]) -> dict[str, str]:
    """URI -> digest of every file under the given test paths (files or directories)."""
    files: dict[str, str] = {}
    for name in paths:
        if "://" in name:
            files[name] = ""
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
    test_files = _test_files(tests)
    by_digest = {digest: uri for uri, digest in test_files.items() if digest}
    prefixes = tuple(
        resolve(os.path.abspath(t)).uri.rstrip("/") + "/" for t in tests if "://" not in t
    )
    findings = []
    for uri, digest in _inputs(lineage(client, model, options=options)):
        if uri in test_files or uri.startswith(prefixes):
            findings.append(Finding("test-data", uri, digest, "uri", "a test file itself"))
        elif digest and digest in by_digest:
            findings.append(Finding("test-data", uri, digest, "digest",
                                    f"same content as test file {by_digest[digest]}"))
    return findings


def staleness(client: Any, model: str, *, options: SchemaOptions | None = None) -> list[Finding]:
    """Upstream local inputs of `model` whose content is no longer what the model was built
    from."""
    findings = []
    for uri, digest in _inputs(lineage(client, model, options=options)):
        if not uri.startswith("file://") or not digest:
            continue
        path = "/" + unquote(uri.split("/", 3)[3])
        if not os.path.isfile(path):
            findings.append(Finding("stale", uri, digest, "missing", "the input is gone"))
            continue
        now = resolve(path).digest
        if now != digest:
            findings.append(Finding("stale", uri, digest, "content changed", f"now {now}"))
    return findings
