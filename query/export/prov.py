"""W3C PROV-JSON (https://www.w3.org/submissions/prov-json/), written with the `prov` package.

- artifacts are entities `artifact:<percent-encoded node id>` (`prov:type` `clew:Artifact`)
  with `clew:uri`, `clew:digest`, `clew:version`, `clew:etag` and `clew:size` when known;
- runs are activities `run:<run id>` (`prov:type` `clew:Run`) with `prov:startTime`,
  `prov:endTime` and `clew:command`, `clew:status`, `clew:gitCommit`, `clew:gitBranch`,
  `clew:gitDirty`, `clew:host`;
- a `read` edge is `used` (run used artifact), a `wrote` edge `wasGeneratedBy`, both with
  `clew:evidence`; and each output of a run `wasDerivedFrom` each of its inputs, with the
  run as the derivation's activity.

Namespaces: `clew` = https://clew.dev/ns/prov#, `artifact` = urn:clew:artifact:,
`run` = urn:clew:run:.
"""

from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import quote

from ..lineage import ArtifactNode, Graph, RunNode
from ._common import (
    ARTIFACT,
    CLEW_URI,
    display_name,
    job_name,
    parse_time,
    require,
    runs,
)

NAMESPACES = {
    "clew": f"{CLEW_URI}/ns/prov#",
    "artifact": "urn:clew:artifact:",
    "run": "urn:clew:run:",
}
_FMT = "prov"


def _artifact_id(node: ArtifactNode) -> str:
    return "artifact:" + quote(node.id, safe="/@._-~")


def _artifact_attributes(node: ArtifactNode) -> dict[str, Any]:
    attributes: dict[str, Any] = {"prov:type": "clew:Artifact",
                                  "prov:label": display_name(node, width=200)}
    for key, value in (("clew:uri", node.uri), ("clew:digest", node.digest),
                       ("clew:version", node.version), ("clew:etag", node.etag)):
        if value:
            attributes[key] = value
    if node.size >= 0:
        attributes["clew:size"] = node.size
    return attributes


def _run_attributes(node: RunNode) -> dict[str, Any]:
    attributes: dict[str, Any] = {"prov:type": "clew:Run",
                                  "prov:label": job_name(node.command)}
    for key, value in (("clew:command", shlex.join(node.command)),
                       ("clew:status", node.status), ("clew:gitCommit", node.git_commit),
                       ("clew:gitBranch", node.git_branch), ("clew:host", node.host)):
        if value:
            attributes[key] = value
    if node.git_commit:
        attributes["clew:gitDirty"] = node.git_dirty
    return attributes


def document(graph: Graph) -> Any:
    """The graph as a `prov.model.ProvDocument`."""
    model = require("prov.model", "prov", _FMT)
    doc = model.ProvDocument()
    for prefix, uri in NAMESPACES.items():
        doc.add_namespace(prefix, uri)
    for node in graph.nodes:
        if node.kind == ARTIFACT:
            doc.entity(_artifact_id(node), _artifact_attributes(node))
    for io in runs(graph):
        run_id = f"run:{io.run.id}"
        doc.activity(run_id, parse_time(io.run.start), parse_time(io.run.end),
                     _run_attributes(io.run))
        for node, edge in io.inputs:
            doc.used(run_id, _artifact_id(node), None, None, {"clew:evidence": edge.evidence})
        for node, edge in io.outputs:
            doc.wasGeneratedBy(_artifact_id(node), run_id, None, None,
                               {"clew:evidence": edge.evidence})
        derived = {(_artifact_id(out), _artifact_id(source))
                   for out, _ in io.outputs for source, _ in io.inputs}
        for generated, used in sorted(derived):
            doc.wasDerivedFrom(generated, used, run_id)
    return doc


def export(graph: Graph) -> str:
    """The graph as a PROV-JSON document."""
    return document(graph).serialize(format="json", indent=2) + "\n"
