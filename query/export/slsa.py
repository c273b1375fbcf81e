"""An in-toto Statement v1 with a SLSA provenance v1 predicate for the graph's root (the model).

https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md and
https://slsa.dev/spec/v1.0/provenance. The statement is unsigned: sign it (wrap it in a
DSSE envelope) with the tool your pipeline already uses, e.g. `cosign attest-blob`.

- `subject`: the root, named by its URI (its digest when it has none), with digest
  `{"blake3": hex}`, plus `"sha256"` when the file is on this host and still holds that
  content (it is read again to compute both);
- `buildDefinition.buildType`: `https://clew.dev/run/v1` (a run recorded by clew);
  `externalParameters`: `{"command": argv}` of the run that wrote the root;
  `internalParameters`: that run's host, git branch and dirty flag, when known;
  `resolvedDependencies`: every artifact read anywhere upstream (`uri`, `digest`
  `{"blake3": hex}`, annotations `version`/`etag`/`evidence`), then the source: each git
  commit the upstream runs ran at, `{"uri": "git+<repository>", "digest": {"gitCommit": sha}}`;
- `runDetails.builder.id`: `https://clew.dev/recorder/v1`, `builder.version.clew` clew's
  version; `metadata.invocationId` the run id, `startedOn`/`finishedOn` its start and end.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import blake3

from ..lineage import ArtifactNode, Graph
from ._common import (
    CLEW_URI,
    READ,
    clew_version,
    iso_time,
    local_path,
    producer,
    runs,
    split_digest,
)

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = f"{CLEW_URI}/run/v1"
BUILDER_ID = f"{CLEW_URI}/recorder/v1"
_CHUNK = 1 << 20


def _digest_set(digest: str) -> dict[str, str]:
    algorithm, value = split_digest(digest)
    return {algorithm: value} if value else {}


def _local_digests(uri: str) -> dict[str, str]:
    """blake3 and sha256 of the file a `file://` URI on this host names, {} if none."""
    host = urlsplit(uri).netloc
    path = local_path(uri)
    if not path or host not in ("", "localhost", socket.gethostname()):
        return {}
    if not Path(path).is_file():
        return {}
    b3 = blake3.blake3()
    sha = hashlib.sha256()
    with open(path, "rb") as stream:  # chunked reads: a file truncated meanwhile is no crash
        while chunk := stream.read(_CHUNK):
            b3.update(chunk)
            sha.update(chunk)
    return {"blake3": b3.hexdigest(), "sha256": sha.hexdigest()}


def _subject(root: ArtifactNode, hash_local_files: bool) -> dict[str, Any]:
    digest = _digest_set(root.digest)
    if not digest:
        raise ValueError(
            f"no content digest is known for {root.uri or root.id}: an in-toto subject needs "
            "one (name the artifact by a local path that exists, or by its digest)"
        )
    if hash_local_files and root.uri:
        local = _local_digests(root.uri)
        # Only while the file still holds the content the lineage is about.
        if local and all(local.get(k) == v for k, v in digest.items()):
            digest = {**digest, **local}
    return {"name": root.uri or root.digest, "digest": digest}


def _dependencies(graph: Graph, repository: str) -> list[dict[str, Any]]:
    nodes = {node.id: node for node in graph.nodes}
    inputs: dict[str, tuple[ArtifactNode, str]] = {}
    for edge in graph.edges:
        if edge.kind == READ and edge.source in nodes and edge.source not in inputs:
            inputs[edge.source] = (nodes[edge.source], edge.evidence)
    result = []
    for node, evidence in sorted(inputs.values(), key=lambda item: (item[0].uri, item[0].id)):
        descriptor: dict[str, Any] = {}
        if node.uri:
            descriptor["uri"] = node.uri
        if node.digest:
            descriptor["digest"] = _digest_set(node.digest)
        if not descriptor:
            descriptor["name"] = node.id
        annotations = {k: v for k, v in (("version", node.version), ("etag", node.etag),
                                         ("evidence", evidence)) if v}
        if annotations:
            descriptor["annotations"] = annotations
        result.append(descriptor)
    writer = producer(graph)
    commits = [writer.git_commit] if writer and writer.git_commit else []
    commits += [io.run.git_commit for io in runs(graph) if io.run.git_commit]
    for commit in dict.fromkeys(commits):
        source: dict[str, Any] = {"digest": {"gitCommit": commit}}
        if repository:
            source["uri"] = repository if repository.startswith("git+") else f"git+{repository}"
        else:
            source["name"] = "source"
        result.append(source)
    return result


def statement(graph: Graph, *, repository: str = "", hash_local_files: bool = True) -> dict:
    """The statement as a dict (`export` writes it as JSON).

    Args:
        graph: an upstream lineage graph; its root is the subject.
        repository: the source repository (`git+https://...`, or a path), for the git
            commits' URIs; without it they carry only their digest.
        hash_local_files: add the subject's sha256 when it is a file on this host.

    Raises:
        ValueError: the root has no content digest, or no run in the graph wrote it.
    """
    nodes = {node.id: node for node in graph.nodes}
    root = nodes[graph.root]
    writer = producer(graph)
    if writer is None:
        raise ValueError(f"no run in the graph wrote {root.uri or root.id}")
    internal = {k: v for k, v in (("host", writer.host), ("gitBranch", writer.git_branch))
                if v}
    if writer.git_commit:
        internal["gitDirty"] = writer.git_dirty
    metadata: dict[str, Any] = {"invocationId": writer.id}
    for key, value in (("startedOn", iso_time(writer.start)),
                       ("finishedOn", iso_time(writer.end))):
        if value:
            metadata[key] = value
    build_definition: dict[str, Any] = {
        "buildType": BUILD_TYPE,
        "externalParameters": {"command": list(writer.command)},
        "resolvedDependencies": _dependencies(graph, repository),
    }
    if internal:
        build_definition["internalParameters"] = internal
    return {
        "_type": STATEMENT_TYPE,
        "subject": [_subject(root, hash_local_files)],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": build_definition,
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"clew": clew_version()}},
                "metadata": metadata,
            },
        },
    }


def export(graph: Graph, *, repository: str = "", hash_local_files: bool = True) -> str:
    """The in-toto statement as JSON (see `statement`)."""
    return json.dumps(statement(graph, repository=repository,
                                hash_local_files=hash_local_files), indent=2) + "\n"
