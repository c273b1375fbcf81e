"""OpenLineage RunEvents (spec 2-0-2, as the `openlineage-python` client writes them).

One event per run, JSON Lines: the run's final state only (`COMPLETE`, or `FAIL` for a
failed run), at the run's end time (its start when the end is unknown), since the run is
over by the time anything is exported. The mapping:

- job: namespace `clew`, name the run's command line without the interpreter (the
  script's basename and its arguments: `train.py model.txt`, `-m pkg.train --lr 3`);
- run: `runId` the run's 32-hex trace id written as a UUID; facets `nominalTime` (start and
  end), `processing_engine` (clew and its version) and `tags` (git commit, branch, dirty
  state, host, clew's run id) when known;
- inputs: the artifacts with a `read` edge into the run; outputs: those it `wrote`;
  named per the OpenLineage naming spec: `file://HOST/p` -> namespace `file://HOST`, name
  `/p`; `s3://bucket/key` -> `s3://bucket` and `key`; `gs://bucket/key` -> `gs://bucket`
  and `key`; any other URI -> `scheme://authority` and its path. A content digest (or an
  object version or ETag) becomes the dataset's `version` facet.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import unquote, urlsplit

from ..lineage import ArtifactNode, Graph
from ._common import (
    CLEW_URI,
    clew_version,
    iso_time,
    job_name,
    require,
    run_uuid,
    runs,
)

__all__ = ["JOB_NAMESPACE", "dataset_name", "export", "job_name"]

JOB_NAMESPACE = "clew"
_FMT = "openlineage"


def dataset_name(uri: str) -> tuple[str, str]:
    """(namespace, name) of an artifact URI under the OpenLineage naming spec."""
    parts = urlsplit(uri)
    if not parts.scheme:
        return "file", uri
    path = unquote(parts.path)
    if parts.scheme in ("s3", "gs", "s3a", "gcs"):
        return f"{parts.scheme}://{parts.netloc}", path.lstrip("/")
    return f"{parts.scheme}://{parts.netloc}", path or "/"


def _version(node: ArtifactNode) -> str:
    return node.digest or node.version or node.etag


def export(graph: Graph) -> str:
    """The graph's runs as OpenLineage RunEvents, one JSON object a line."""
    event_v2 = require("openlineage.client.event_v2", "openlineage-python", _FMT)
    facet_v2 = require("openlineage.client.facet_v2", "openlineage-python", _FMT)
    serde = require("openlineage.client.serde", "openlineage-python", _FMT)
    producer = f"{CLEW_URI}/clew/{clew_version()}"

    def datasets(kind: Any, nodes: list[ArtifactNode]) -> list[Any]:
        result = []
        for node in nodes:
            namespace, name = dataset_name(node.uri) if node.uri else ("clew", node.id)
            facets = {}
            if _version(node):
                facets["version"] = facet_v2.dataset_version_dataset.DatasetVersionDatasetFacet(
                    datasetVersion=_version(node), producer=producer)
            result.append(kind(namespace=namespace, name=name, facets=facets))
        return result

    lines = []
    for io in runs(graph):
        run = io.run
        start, end = iso_time(run.start), iso_time(run.end)
        facets: dict[str, Any] = {
            "processing_engine": facet_v2.processing_engine_run.ProcessingEngineRunFacet(
                name="clew", version=clew_version(), producer=producer),
        }
        if start:
            facets["nominalTime"] = facet_v2.nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=start, nominalEndTime=end or None, producer=producer)
        tags = [("clew.run_id", run.id), ("git.commit", run.git_commit),
                ("git.branch", run.git_branch), ("host", run.host)]
        if run.git_commit:
            tags.append(("git.dirty", "true" if run.git_dirty else "false"))
        facets["tags"] = facet_v2.tags_run.TagsRunFacet(
            tags=[facet_v2.tags_run.TagsRunFacetFields(key=k, value=v, source="clew")
                  for k, v in tags if v],
            producer=producer)
        event = event_v2.RunEvent(
            eventType=event_v2.RunState.FAIL if run.status == "failed"
            else event_v2.RunState.COMPLETE,
            eventTime=end or start or dt.datetime.now(dt.timezone.utc).isoformat(),
            run=event_v2.Run(runId=run_uuid(run.id), facets=facets),
            job=event_v2.Job(namespace=JOB_NAMESPACE, name=job_name(run.command)),
            inputs=datasets(event_v2.InputDataset, [node for node, _ in io.inputs]),
            outputs=datasets(event_v2.OutputDataset, [node for node, _ in io.outputs]),
            producer=producer,
        )
        lines.append(serde.Serde.to_json(event))
    return "".join(line + "\n" for line in lines)
