"""`clew export`: OpenLineage, PROV-JSON, in-toto/SLSA, DOT, Mermaid and HTML.

Each format is checked twice: on a small hand-built graph (every case the formats must
handle: S3/GCS/local names, a failed run, weak evidence, labels with quotes, brackets and
`</script>`), and on a real two-stage pipeline recorded under opentelemetry-instrument and
exported through the CLI. Validation is offline:

- openlineage: every event against a JSON Schema of the OpenLineage 2-0-2 RunEvent and of
  each facet it carries, looked up by the event's own `schemaURL`/`_schemaURL` in a
  `referencing` registry (the client package ships no schema files, so the schema below
  restates the spec's rules; unknown schema URLs fail rather than go to the network);
- prov: a round trip through `prov.model.ProvDocument.deserialize`, counting records;
- slsa: parsed into the in-toto attestation protobufs (`Statement`, SLSA `Provenance` v1),
  which reject unknown fields, wrong types and malformed timestamps, plus the package's own
  `Statement.validate()` and a JSON Schema of the fields SLSA v1 requires;
- dot/mermaid: structure (every node and edge, escaping, weak edges dashed), and `dot`
  itself when it is installed;
- html: the page rendered by headless Chromium; the DOM after its script ran must hold
  one `<g class="node">` per node, and a screenshot is saved (its path is printed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import blake3
import pytest

from clew.query.cli import ExitStatus
from clew.query.export import FORMATS, export
from clew.query.export.openlineage import dataset_name, job_name
from clew.query.lineage import ArtifactNode, Edge, Graph, Node, RunNode
from clew_test_helpers import invoke_clew

BIN = Path(sys.executable).parent
HOST = "file://host1"
# A canonical (percent-encoded) URI whose path, as labels show it, is `we"ird [1] </script>|y.csv`.
WEIRD = f"{HOST}/p/we%22ird%20%5B1%5D%20%3C/script%3E%7Cy.csv"


def hand_graph() -> Graph:
    """model.txt <- train (reads features, an S3 object by version, a weird name by uri+time)
    <- features.csv <- prepare (reads raw data and a GCS object) <- gs object <- failed fetch."""
    graph = Graph(root=f"{HOST}/p/model.txt@blake3:" + "d" * 64)
    fetch = RunNode(id="a" * 32, command=["/usr/bin/python3", "fetch.py"],
                    start="2026-11-26 10:00:00.123456789", end="2026-11-26 10:00:01",
                    status="failed", host="host1")
    prepare = RunNode(id="b" * 32, command=["python", "-u", "/p/prepare.py"],
                      start="2026-11-26 10:01:00", end="2026-11-26 10:01:02", status="ok",
                      git_commit="c" * 40, git_branch="main", host="host1")
    train = RunNode(id="0123456789abcdef0123456789abcdef",
                    command=["python", "train.py", "model.txt"], start="2026-11-26 10:02:00",
                    status="ok", git_commit="e" * 40, git_dirty=True, host="host1")
    gcs = ArtifactNode(id="gs://bkt/a/b.csv@blake3:" + "1" * 64, uri="gs://bkt/a/b.csv",
                       digest="blake3:" + "1" * 64, version="1700000000")
    raw = ArtifactNode(id=f"{HOST}/p/raw/data.csv@blake3:" + "2" * 64,
                       uri=f"{HOST}/p/raw/data.csv", digest="blake3:" + "2" * 64, size=10)
    features = ArtifactNode(id=f"{HOST}/p/features.csv@blake3:" + "3" * 64,
                            uri=f"{HOST}/p/features.csv", digest="blake3:" + "3" * 64)
    s3 = ArtifactNode(id="s3://bucket/dir/train.parquet", uri="s3://bucket/dir/train.parquet",
                      version="v1", etag='"9b2cf535"')
    weird = ArtifactNode(id=WEIRD, uri=WEIRD)
    model = ArtifactNode(id=graph.root, uri=f"{HOST}/p/model.txt",
                         digest="blake3:" + "d" * 64)
    for node in (model, train, features, s3, weird, prepare, raw, gcs, fetch):
        graph.add_node(node)
    for edge in ((train.id, model.id, "wrote", "digest"),
                 (features.id, train.id, "read", "digest"),
                 (s3.id, train.id, "read", "version"),
                 (weird.id, train.id, "read", "uri+time"),
                 (prepare.id, features.id, "wrote", "digest"),
                 (raw.id, prepare.id, "read", "digest"),
                 (gcs.id, prepare.id, "read", "digest"),
                 (fetch.id, gcs.id, "wrote", "digest")):
        graph.add_edge(Edge(*edge))
    return graph


def kinds(graph: Graph, kind: str) -> list[Node]:
    return [node for node in graph.nodes if node.kind == kind]


# --- OpenLineage ------------------------------------------------------------------------

OL_CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
_FACETS = "https://openlineage.io/spec/facets"


def _facet_schema(kind: str, properties: dict, required: list[str]) -> dict:
    return {"allOf": [{"$ref": f"{OL_CORE}#/$defs/{kind}"},
                      {"type": "object", "properties": properties, "required": required}]}


def openlineage_registry():
    """The OpenLineage 2-0-2 core schema and the facets clew writes, keyed by schema URL."""
    from referencing import Registry, Resource
    from referencing.exceptions import NoSuchResource

    string = {"type": "string"}
    date_time = {"type": "string", "format": "date-time"}
    uri = {"type": "string", "format": "uri"}

    def facets(kind: str) -> dict:
        return {"type": "object", "additionalProperties": {"$ref": f"#/$defs/{kind}"}}

    core = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": OL_CORE,
        "$defs": {
            "BaseEvent": {"type": "object", "required": ["eventTime", "producer", "schemaURL"],
                          "properties": {"eventTime": date_time, "producer": uri,
                                         "schemaURL": uri}},
            "RunEvent": {"allOf": [{"$ref": "#/$defs/BaseEvent"}, {
                "type": "object", "required": ["run", "job"],
                "properties": {
                    "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL",
                                           "OTHER"]},
                    "run": {"$ref": "#/$defs/Run"}, "job": {"$ref": "#/$defs/Job"},
                    "inputs": {"type": "array", "items": {"$ref": "#/$defs/InputDataset"}},
                    "outputs": {"type": "array", "items": {"$ref": "#/$defs/OutputDataset"}},
                }}]},
            "Run": {"type": "object", "required": ["runId"],
                    "properties": {"runId": {"type": "string", "format": "uuid"},
                                   "facets": facets("RunFacet")}},
            "Job": {"type": "object", "required": ["namespace", "name"],
                    "properties": {"namespace": string, "name": string,
                                   "facets": facets("JobFacet")}},
            "Dataset": {"type": "object", "required": ["namespace", "name"],
                        "properties": {"namespace": string, "name": string,
                                       "facets": facets("DatasetFacet")}},
            "InputDataset": {"allOf": [{"$ref": "#/$defs/Dataset"}, {
                "type": "object", "properties": {"inputFacets": facets("InputDatasetFacet")}}]},
            "OutputDataset": {"allOf": [{"$ref": "#/$defs/Dataset"}, {
                "type": "object", "properties": {"outputFacets": facets("OutputDatasetFacet")}}]},
            "BaseFacet": {"type": "object", "required": ["_producer", "_schemaURL"],
                          "properties": {"_producer": uri, "_schemaURL": uri}},
            **{kind: {"allOf": [{"$ref": "#/$defs/BaseFacet"}]}
               for kind in ("RunFacet", "JobFacet", "DatasetFacet", "InputDatasetFacet",
                            "OutputDatasetFacet")},
        },
    }
    facet_schemas = {
        "1-0-1/NominalTimeRunFacet.json": ("NominalTimeRunFacet", _facet_schema(
            "RunFacet", {"nominalStartTime": date_time, "nominalEndTime": date_time},
            ["nominalStartTime"])),
        "1-1-1/ProcessingEngineRunFacet.json": ("ProcessingEngineRunFacet", _facet_schema(
            "RunFacet", {"version": string, "name": string}, ["version"])),
        "1-0-0/TagsRunFacet.json": ("TagsRunFacet", _facet_schema(
            "RunFacet", {"tags": {"type": "array", "items": {
                "type": "object", "required": ["key", "value"],
                "properties": {"key": string, "value": string, "source": string}}}}, [])),
        "1-0-1/DatasetVersionDatasetFacet.json": ("DatasetVersionDatasetFacet", _facet_schema(
            "DatasetFacet", {"datasetVersion": string}, ["datasetVersion"])),
    }
    resources = [(OL_CORE, Resource.from_contents(core))]
    for path, (name, schema) in facet_schemas.items():
        url = f"{_FACETS}/{path}"
        resources.append((url, Resource.from_contents(
            {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": url,
             "$defs": {name: schema}})))

    def offline(uri: str):
        raise NoSuchResource(ref=uri)  # never the network

    return Registry(retrieve=offline).with_resources(resources)


def format_checker():
    from jsonschema import FormatChecker

    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        return "T" in value and dt.datetime.fromisoformat(value.replace("Z", "+00:00")) \
            .tzinfo is not None

    @checker.checks("uri", raises=ValueError)
    def _uri(value: object) -> bool:
        return not isinstance(value, str) or bool(re.match(r"^[a-z][a-z0-9+.-]*:\S+$", value))

    return checker


def validate_openlineage(text: str) -> list[dict]:
    """Every line an event valid against the schema its schemaURL names, and every facet
    against its own _schemaURL's; returns the events."""
    from jsonschema import Draft202012Validator

    registry = openlineage_registry()
    checker = format_checker()

    def check(instance: dict, schema_url: str) -> None:
        Draft202012Validator({"$ref": schema_url}, registry=registry,
                             format_checker=checker).validate(instance)

    def facets(value: object) -> None:
        if isinstance(value, dict):
            if "_schemaURL" in value:
                check(value, value["_schemaURL"])
            for item in value.values():
                facets(item)
        elif isinstance(value, list):
            for item in value:
                facets(item)

    assert text.endswith("\n")
    events = [json.loads(line) for line in text.splitlines()]
    for event in events:
        assert event["schemaURL"] == f"{OL_CORE}#/$defs/RunEvent"
        check(event, event["schemaURL"])
        facets(event)
    return events


def test_openlineage_one_event_per_run_named_by_the_spec():
    graph = hand_graph()
    events = validate_openlineage(export(graph, "openlineage"))
    by_job = {event["job"]["name"]: event for event in events}
    assert sorted(by_job) == ["fetch.py", "prepare.py", "train.py model.txt"]
    assert {event["job"]["namespace"] for event in events} == {"clew"}
    train = by_job["train.py model.txt"]
    assert train["run"]["runId"] == "01234567-89ab-cdef-0123-456789abcdef"
    assert train["eventType"] == "COMPLETE"
    assert train["eventTime"] == "2026-11-26T10:02:00.000000Z"  # no end: the start
    assert {(d["namespace"], d["name"]) for d in train["inputs"]} == {
        ("file://host1", "/p/features.csv"), ("s3://bucket", "dir/train.parquet"),
        ("file://host1", '/p/we"ird [1] </script>|y.csv')}
    assert [(d["namespace"], d["name"]) for d in train["outputs"]] == [
        ("file://host1", "/p/model.txt")]
    assert train["outputs"][0]["facets"]["version"]["datasetVersion"] == "blake3:" + "d" * 64
    tags = {t["key"]: t["value"] for t in train["run"]["facets"]["tags"]["tags"]}
    assert tags["git.commit"] == "e" * 40 and tags["git.dirty"] == "true"
    prepare = by_job["prepare.py"]
    assert ("gs://bkt", "a/b.csv") in {(d["namespace"], d["name"]) for d in prepare["inputs"]}
    assert prepare["eventTime"] == "2026-11-26T10:01:02.000000Z"  # the end
    assert by_job["fetch.py"]["eventType"] == "FAIL"


def test_openlineage_schema_check_rejects_a_broken_event():
    from jsonschema import ValidationError

    (line, *_) = export(hand_graph(), "openlineage").splitlines()
    event = json.loads(line)
    event["run"]["runId"] = "not-a-uuid"
    with pytest.raises(ValidationError):
        validate_openlineage(json.dumps(event) + "\n")
    event = json.loads(line)
    del event["outputs"][0]["facets"]["version"]["datasetVersion"]
    with pytest.raises(ValidationError):
        validate_openlineage(json.dumps(event) + "\n")


@pytest.mark.parametrize(("uri", "expected"), [
    ("file://host1/data/x%20y.csv", ("file://host1", "/data/x y.csv")),
    ("s3://bucket/a/b.parquet", ("s3://bucket", "a/b.parquet")),
    ("gs://bucket/o", ("gs://bucket", "o")),
    ("hdfs://nn:8020/p/q", ("hdfs://nn:8020", "/p/q")),
    ("memory://x/y", ("memory://x", "/y")),
])
def test_openlineage_dataset_naming(uri, expected):
    assert dataset_name(uri) == expected


@pytest.mark.parametrize(("command", "name"), [
    (["/usr/bin/python3.11", "/work/p/train.py", "--lr", "3e-4"], "train.py --lr 3e-4"),
    (["python", "-u", "-X", "dev", "prep.py"], "prep.py"),
    (["python", "-m", "pkg.train", "out dir"], "-m pkg.train 'out dir'"),
    (["torchrun", "--nproc-per-node=2", "train.py"], "torchrun --nproc-per-node=2 train.py"),
    ([], "unknown"),
])
def test_job_name_is_the_command_without_the_interpreter(command, name):
    assert job_name(command) == name


# --- PROV -------------------------------------------------------------------------------

def prov_counts(text: str) -> tuple[int, int, dict[str, int]]:
    import prov.model as pm

    document = pm.ProvDocument.deserialize(content=text, format="json")
    relations: dict[str, int] = {}
    for record in document.get_records(pm.ProvRelation):
        relations[type(record).__name__] = relations.get(type(record).__name__, 0) + 1
    return (len(list(document.get_records(pm.ProvEntity))),
            len(list(document.get_records(pm.ProvActivity))), relations)


def test_prov_round_trips_with_one_record_per_node_and_edge():
    graph = hand_graph()
    text = export(graph, "prov")
    entities, activities, relations = prov_counts(text)
    assert entities == len(kinds(graph, "artifact"))
    assert activities == len(kinds(graph, "run"))
    reads = sum(e.kind == "read" for e in graph.edges)
    writes = sum(e.kind == "wrote" for e in graph.edges)
    # per run, each output derives from each input: train 1x3, prepare 1x2, fetch 1x0
    assert relations == {"ProvUsage": reads, "ProvGeneration": writes, "ProvDerivation": 5}
    document = json.loads(text)
    (train,) = [a for key, a in document["activity"].items() if key.startswith("run:0123")]
    assert train["clew:gitCommit"] == "e" * 40
    assert train["clew:command"] == "python train.py model.txt"
    weak = [u for u in document["used"].values() if u["clew:evidence"] == "uri+time"]
    assert len(weak) == 1


# --- in-toto / SLSA ---------------------------------------------------------------------

SLSA_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["_type", "subject", "predicateType", "predicate"],
    "additionalProperties": False,
    "properties": {
        "_type": {"const": "https://in-toto.io/Statement/v1"},
        "predicateType": {"const": "https://slsa.dev/provenance/v1"},
        "subject": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/subject"}},
        "predicate": {
            "type": "object", "required": ["buildDefinition", "runDetails"],
            "additionalProperties": False,
            "properties": {
                "buildDefinition": {
                    "type": "object", "required": ["buildType", "externalParameters"],
                    "additionalProperties": False,
                    "properties": {
                        "buildType": {"type": "string", "format": "uri"},
                        "externalParameters": {"type": "object", "minProperties": 1},
                        "internalParameters": {"type": "object"},
                        "resolvedDependencies": {"type": "array",
                                                 "items": {"$ref": "#/$defs/descriptor"}},
                    }},
                "runDetails": {
                    "type": "object", "required": ["builder"], "additionalProperties": False,
                    "properties": {
                        "builder": {"type": "object", "required": ["id"],
                                    "properties": {"id": {"type": "string", "format": "uri"}}},
                        "metadata": {"type": "object", "additionalProperties": False,
                                     "properties": {
                                         "invocationId": {"type": "string"},
                                         "startedOn": {"type": "string", "format": "date-time"},
                                         "finishedOn": {"type": "string", "format": "date-time"},
                                     }},
                    }},
            }},
    },
    "$defs": {
        "digest": {"type": "object", "minProperties": 1,
                   "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]+$"}},
        "descriptor": {
            "type": "object", "anyOf": [{"required": ["uri"]}, {"required": ["digest"]},
                                        {"required": ["name"]}],
            "properties": {"uri": {"type": "string", "format": "uri"},
                           "digest": {"$ref": "#/$defs/digest"}, "name": {"type": "string"},
                           "annotations": {"type": "object"}}},
        "subject": {"allOf": [{"$ref": "#/$defs/descriptor"}, {"required": ["digest"]}]},
    },
}


def validate_slsa(text: str) -> dict:
    """The statement parsed into the in-toto protobufs and checked by their validators and
    by SLSA_SCHEMA; returns it."""
    from google.protobuf.json_format import ParseDict
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement
    from jsonschema import Draft202012Validator

    document = json.loads(text)
    Draft202012Validator(SLSA_SCHEMA, format_checker=format_checker()).validate(document)
    proto = ParseDict(document, statement_pb2.Statement())  # unknown fields raise ParseError
    Statement.copy_from_pb(proto).validate()
    ParseDict(document["predicate"], provenance_pb2.Provenance())
    return document


def test_slsa_statement_for_the_model():
    graph = hand_graph()
    document = validate_slsa(export(graph, "slsa", repository="https://example.org/p.git"))
    (subject,) = document["subject"]
    assert subject == {"name": f"{HOST}/p/model.txt", "digest": {"blake3": "d" * 64}}
    build = document["predicate"]["buildDefinition"]
    assert build["buildType"] == "https://clew.dev/run/v1"
    assert build["externalParameters"] == {"command": ["python", "train.py", "model.txt"]}
    dependencies = build["resolvedDependencies"]
    inputs = {d["uri"]: d for d in dependencies if "gitCommit" not in d.get("digest", {})}
    assert set(inputs) == {n.uri for n in kinds(graph, "artifact")} - {f"{HOST}/p/model.txt"}
    assert inputs[f"{HOST}/p/raw/data.csv"]["digest"] == {"blake3": "2" * 64}
    assert inputs["s3://bucket/dir/train.parquet"]["annotations"]["version"] == "v1"
    sources = [d for d in dependencies if "gitCommit" in d.get("digest", {})]
    # the writer's commit first, then the other runs'
    assert [s["digest"]["gitCommit"] for s in sources] == ["e" * 40, "c" * 40]
    assert {s["uri"] for s in sources} == {"git+https://example.org/p.git"}
    metadata = document["predicate"]["runDetails"]["metadata"]
    assert metadata == {"invocationId": "0123456789abcdef0123456789abcdef",
                        "startedOn": "2026-11-26T10:02:00.000000Z"}


def test_slsa_adds_sha256_only_while_the_file_holds_that_content(tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 1000)
    uri = f"file://{socket.gethostname()}{quote(str(model))}"
    digest = blake3.blake3(model.read_bytes()).hexdigest()
    graph = Graph(root=f"{uri}@blake3:{digest}")
    graph.add_node(ArtifactNode(id=graph.root, uri=uri, digest=f"blake3:{digest}"))
    graph.add_node(RunNode(id="f" * 32, command=["python", "train.py"]))
    graph.add_edge(Edge("f" * 32, graph.root, "wrote", "digest"))
    (subject,) = validate_slsa(export(graph, "slsa"))["subject"]
    assert subject["digest"] == {"blake3": digest,
                                 "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    model.write_bytes(b"retrained")
    (subject,) = validate_slsa(export(graph, "slsa"))["subject"]
    assert subject["digest"] == {"blake3": digest}


def test_slsa_validation_rejects_an_unknown_field():
    from google.protobuf.json_format import ParseError

    document = json.loads(export(hand_graph(), "slsa"))
    document["predicate"]["buildDefinition"]["resolvedDependencies"][0]["sha"] = "x"
    with pytest.raises(ParseError):
        validate_slsa(json.dumps(document))


# --- DOT and Mermaid --------------------------------------------------------------------

def dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_dot_has_every_node_and_edge_escaped():
    graph = hand_graph()
    text = export(graph, "dot")
    assert text.startswith("digraph lineage {") and text.rstrip().endswith("}")
    for node in graph.nodes:
        (line,) = [x for x in text.splitlines() if x.strip().startswith(dot_quote(node.id) + " [")]
        assert ("shape=box" if node.kind == "run" else "shape=ellipse") in line
    assert '\\"ird [1] </script>|y.csv' in text  # the quote escaped, nothing else needed
    for edge in graph.edges:
        (line,) = [x for x in text.splitlines()
                   if x.strip().startswith(f"{dot_quote(edge.source)} -> {dot_quote(edge.target)}")]
        assert f'label="{edge.kind} ({edge.evidence})"' in line
        assert ("style=dashed" in line) == (edge.evidence == "uri+time")
    # Every quoted string closes: an even number of unescaped quotes on each line.
    for line in text.splitlines():
        assert len(re.findall(r'(?<!\\)"', line.replace("\\\\", ""))) % 2 == 0, line
    if shutil.which("dot"):
        done = subprocess.run(["dot", "-Tsvg"], input=text, check=False, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr


def test_mermaid_has_every_node_and_edge_escaped():
    graph = hand_graph()
    text = export(graph, "mermaid")
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    ids = dict(re.findall(r"^  %% (n\d+) = (.*)$", text, flags=re.MULTILINE))
    assert sorted(ids.values()) == sorted(node.id for node in graph.nodes)
    key = {value: name for name, value in ids.items()}
    shapes = dict(re.findall(r'^  (n\d+)(\[|\(\[)"', text, flags=re.MULTILINE))
    for node in graph.nodes:
        assert shapes[key[node.id]] == ("[" if node.kind == "run" else "([")
    for edge in graph.edges:
        arrow = "-.->" if edge.evidence == "uri+time" else "-->"
        assert f'  {key[edge.source]} {arrow}|"{edge.kind} ({edge.evidence})"| ' \
               f"{key[edge.target]}" in lines
    # Inside a label nothing can end it early: no quote, bracket or pipe survives.
    for label in re.findall(r'"(.*?)"', "\n".join(x for x in lines if "%%" not in x)):
        assert not set(label.replace("<br>", "\n")) & set('"[]|<>{}'), label
    assert "we#34;ird #91;1#93; #60;/script#62;#124;y.csv" in text
    assert f"class {key['a' * 32]} failed" in text


@dataclasses.dataclass
class ProcessNode(RunNode):
    """A node of a kind the exports do not know."""

    kind: ClassVar[str] = "process"


def test_unknown_kinds_are_skipped_or_drawn_plainly():
    graph = hand_graph()
    graph.add_node(ProcessNode(id="p1", command=["worker"]))
    graph.add_edge(Edge("p1", "0123456789abcdef0123456789abcdef", "derived", "stamp"))
    graph.add_edge(Edge(f"{HOST}/p/features.csv@blake3:" + "3" * 64, graph.root, "derived", ""))
    assert len(validate_openlineage(export(graph, "openlineage"))) == 3
    assert prov_counts(export(graph, "prov"))[:2] == (6, 3)
    validate_slsa(export(graph, "slsa"))
    assert '"p1" [label=' in export(graph, "dot") and "shape=note" in export(graph, "dot")
    assert '[/"worker' in export(graph, "mermaid")
    assert '"kind": "process"' in export(graph, "html")


def test_registry_errors():
    assert set(FORMATS) == {"openlineage", "prov", "slsa", "dot", "mermaid", "html"}
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export(hand_graph(), "xml")


def test_a_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "openlineage.client.event_v2", None)
    monkeypatch.setitem(sys.modules, "prov.model", None)
    for fmt in ("openlineage", "prov"):
        with pytest.raises(ImportError, match=re.escape("pip install 'clew[export]'")):
            export(hand_graph(), fmt)


# --- HTML in a real browser -------------------------------------------------------------

def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no chromium on PATH (`make test` installs Debian's chromium package)")


def render(page: Path, out: Path) -> tuple[str, Path]:
    """The DOM after the page's script ran, and a screenshot of it."""
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={out / 'profile'}", "--window-size=1400,900"]
    url = page.resolve().as_uri()
    screenshot = out / f"{page.stem}.png"
    dom = subprocess.run([*flags, "--dump-dom", url], check=False, capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = subprocess.run([*flags, f"--screenshot={screenshot}", url], check=False,
                          capture_output=True,
                          text=True, timeout=120)
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
    print(f"\nscreenshot of {page.name}: {screenshot}")
    return dom.stdout, screenshot


def check_page(text: str, graph: Graph, out: Path, name: str) -> str:
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)  # nothing fetched
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    page = out / f"{name}.html"
    page.write_text(text, encoding="utf-8")
    dom, _ = render(page, out)
    assert 'id="error"' not in dom, dom[dom.find('id="error"'):][:2000]
    assert f'data-rendered="{len(graph.nodes)}"' in dom
    assert dom.count('<g class="node"') == len(graph.nodes)
    assert dom.count('<g class="edge"') == len(graph.edges)
    weak = re.findall(r'<g class="edge"[^>]*data-weak="true"', dom)
    assert len(weak) == sum(e.evidence == "uri+time" for e in graph.edges)
    return dom


def test_html_draws_every_node_in_a_browser(tmp_path):
    graph = hand_graph()
    dom = check_page(export(graph, "html"), graph, tmp_path, "hand")
    # the details panel shows the root at first
    assert "<th>digest</th><td>blake3:" + "d" * 64 in dom
    assert "<title>lineage of p/model.txt</title>" in dom


# --- the CLI on a real pipeline ---------------------------------------------------------

PREPARE = """
rows = open('raw/data.csv').read().splitlines()
open('features.csv', 'w').write('\\n'.join(r.upper() for r in rows))
"""
TRAIN = """
import sys
open(sys.argv[1], 'w').write(str(len(open('features.csv').read())))
"""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    work = tmp_path_factory.mktemp("export")
    home = work / ".clew"
    (work / "raw").mkdir()
    (work / "raw" / "data.csv").write_text("a,1\nb,2\n")
    (work / "prepare.py").write_text(PREPARE)
    (work / "train.py").write_text(TRAIN)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "CLEW_", "TRACEPARENT", "TRACESTATE", "GIT_"))}
    env["CLEW_HOME"] = str(home)
    commit = ""
    if shutil.which("git"):  # a commit to see in the provenance
        (work / ".gitignore").write_text(".clew/\n")
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
        for args in (["init", "-q"], ["add", "prepare.py", "train.py", ".gitignore"],
                     ["commit", "-q", "-m", "pipeline"]):
            subprocess.run([*git, *args], cwd=work, env=env, check=True, capture_output=True)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, env=env, check=True,
                                capture_output=True, text=True).stdout.strip()
    for args in (["prepare.py"], ["train.py", "model.txt"]):
        done = subprocess.run([str(BIN / "opentelemetry-instrument"), sys.executable, *args],
                              cwd=work, env=env, check=False, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
    return work, home, commit


def clew(pipeline, *args: str) -> tuple[int, str, str]:
    work, home, _ = pipeline
    result = invoke_clew(home, work, *args)
    return result.code, result.out, result.err


def exported(pipeline, fmt: str) -> str:
    code, out, err = clew(pipeline, "export", "model.txt", "--format", fmt)
    assert code == ExitStatus.OK, err
    return out


def node_of(document: dict) -> Node:
    """A node from its JSON form: the fields of its kind."""
    cls = RunNode if document["kind"] == "run" else ArtifactNode
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in document.items() if key in names})


def lineage_graph(pipeline) -> Graph:
    code, out, err = clew(pipeline, "lineage", "model.txt", "--format", "json")
    assert code == ExitStatus.OK, err
    document = json.loads(out)
    return Graph(root=document["root"], nodes=[node_of(n) for n in document["nodes"]],
                 edges=[Edge(**e) for e in document["edges"]])


pipeline_test = pytest.mark.integration


@pipeline_test
def test_cli_openlineage_of_a_real_pipeline(pipeline):
    work, _, _ = pipeline
    events = validate_openlineage(exported(pipeline, "openlineage"))
    assert sorted(e["job"]["name"] for e in events) == ["prepare.py", "train.py model.txt"]
    assert {e["eventType"] for e in events} == {"COMPLETE"}
    (train,) = [e for e in events if e["job"]["name"] == "train.py model.txt"]
    assert [(d["namespace"], d["name"]) for d in train["outputs"]] == [
        (f"file://{socket.gethostname()}", str(work / "model.txt"))]
    assert [d["name"] for d in train["inputs"]] == [str(work / "features.csv")]
    graph = lineage_graph(pipeline)
    assert {e["run"]["runId"].replace("-", "") for e in events} == {
        n.id for n in kinds(graph, "run")}


@pipeline_test
def test_cli_prov_of_a_real_pipeline(pipeline):
    graph = lineage_graph(pipeline)
    entities, activities, relations = prov_counts(exported(pipeline, "prov"))
    assert (entities, activities) == (len(kinds(graph, "artifact")), len(kinds(graph, "run")))
    assert relations["ProvUsage"] + relations["ProvGeneration"] == len(graph.edges)
    assert relations["ProvDerivation"] == 2  # features <- raw data, model <- features


@pipeline_test
def test_cli_slsa_of_a_real_pipeline(pipeline):
    work, _, commit = pipeline
    document = validate_slsa(exported(pipeline, "slsa"))
    model = (work / "model.txt").read_bytes()
    (subject,) = document["subject"]
    assert subject["name"].endswith("/model.txt")
    assert subject["digest"] == {"blake3": blake3.blake3(model).hexdigest(),
                                 "sha256": hashlib.sha256(model).hexdigest()}
    build = document["predicate"]["buildDefinition"]
    assert build["externalParameters"]["command"][-2:] == [str(work / "train.py"), "model.txt"] \
        or build["externalParameters"]["command"][-2:] == ["train.py", "model.txt"]
    uris = {d.get("uri", "") for d in build["resolvedDependencies"]}
    assert any(u.endswith("/features.csv") for u in uris)
    assert any(u.endswith("/raw/data.csv") for u in uris)
    if commit:
        (source,) = [d for d in build["resolvedDependencies"] if "gitCommit" in d["digest"]]
        assert source["digest"]["gitCommit"] == commit
        assert source["uri"] == f"git+file://{socket.gethostname()}{quote(str(work))}"


@pipeline_test
def test_cli_pictures_of_a_real_pipeline(pipeline, tmp_path):
    graph = lineage_graph(pipeline)
    dot = exported(pipeline, "dot")
    mermaid = exported(pipeline, "mermaid")
    for node in graph.nodes:
        assert dot_quote(node.id) in dot and f"= {node.id}" in mermaid
    assert dot.count(" -> ") == len(graph.edges)
    assert mermaid.count("-->|") + mermaid.count("-.->|") == len(graph.edges)
    output = tmp_path / "lineage.html"
    code, out, err = clew(pipeline, "export", "model.txt", "--format", "html", "-o", str(output))
    assert code == ExitStatus.OK and out == "", err
    check_page(output.read_text(encoding="utf-8"), graph, tmp_path, "pipeline")


@pipeline_test
def test_cli_unknown_artifact_and_format(pipeline):
    code, _, err = clew(pipeline, "export", "nothing-wrote-this.bin", "--format", "dot")
    assert code == ExitStatus.USAGE and "no run in the store wrote" in err
    code, _, err = clew(pipeline, "export", "model.txt", "--format", "xml")
    assert code == ExitStatus.USAGE and "'xml' is not one of" in err
