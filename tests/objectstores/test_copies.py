"""A copy is an edge from its source to its destination: a run that copies an object (S3
CopyObject) read the source and wrote the destination, in `lineage`, `impact` and `check`,
whatever stamp the copy carried over from its source. Separate runs under
opentelemetry-instrument, against moto, as in the pipeline a user reported: the test set
uploaded with `upload_file`, copied server-side into the training prefix, read by glob with
s3fs.
"""

from __future__ import annotations

import pytest

from clew.query.cli import ExitStatus
from objectstore_helpers import check_run, s3_env, unique

pytestmark = pytest.mark.integration

UPLOAD = """
import sys, boto3
bucket = sys.argv[1]
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key="train/part-1.csv", Body=b"x,1\\n" * 100)
s3.upload_file("data/raw/holdout.csv", bucket, "test/holdout.csv")
"""
COPY = """
import sys, boto3
bucket = sys.argv[1]
boto3.client("s3").copy_object(Bucket=bucket, Key="train/part-2.csv",
                               CopySource={"Bucket": bucket, "Key": "test/holdout.csv"})
"""
TRAIN = """
import sys, s3fs
bucket = sys.argv[1]
fs = s3fs.S3FileSystem()
rows = 0
for path in sorted(fs.glob(f"{bucket}/train/*.csv")):
    with fs.open(path, "rb") as f:
        rows += f.read().count(b"\\n")
with fs.open(f"{bucket}/model.pt", "wb") as f:
    f.write(str(rows).encode())
"""


@pytest.fixture
def copied_test_set(run_plain, run_instrumented, workdir, moto_s3) -> tuple[str, dict[str, str]]:
    """The bucket, and the runs by name: upload, copy, train (object stamps on, so that the
    copy carries the uploader's stamp to the training data)."""
    bucket = unique("copied")
    env = {**s3_env(moto_s3), "CLEW_STAMP_OBJECTS": "1"}
    (workdir / "data" / "raw").mkdir(parents=True)
    (workdir / "data" / "raw" / "holdout.csv").write_bytes(b"secret,9\n" * 200)
    check_run(run_instrumented(UPLOAD, bucket, name="upload.py", env=env))
    check_run(run_instrumented(COPY, bucket, name="copy.py", env=env))
    check_run(run_instrumented(TRAIN, bucket, name="train.py", env=env))
    return bucket, env


def runs_by_program(clew_cli) -> dict[str, str]:
    return {run["command"][-2].rsplit("/", 1)[-1]: run["run_id"]
            for run in clew_cli("runs", "--format", "json").json()["runs"]}


def edges_into(graph: dict, uri: str, kind: str) -> set[tuple[str, str]]:
    """(other end, evidence) of the `kind` edges at the artifact nodes of `uri`."""
    ids = {n["id"] for n in graph["nodes"] if n["uri"] == uri}
    if kind == "wrote":
        return {(e["source"], e["evidence"]) for e in graph["edges"]
                if e["target"] in ids and e["kind"] == "wrote"}
    return {(e["target"], e["evidence"]) for e in graph["edges"]
            if e["source"] in ids and e["kind"] == "read"}


def test_lineage_goes_through_the_copy_run_to_the_test_object(copied_test_set, clew_cli):
    bucket, _ = copied_test_set
    runs = runs_by_program(clew_cli)
    result = clew_cli("lineage", f"s3://{bucket}/model.pt", "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    graph = result.json()
    # The copy, not the uploader whose stamp the copy carried, wrote the training object.
    assert edges_into(graph, f"s3://{bucket}/train/part-2.csv", "wrote") == {
        (runs["copy.py"], "etag")}
    assert edges_into(graph, f"s3://{bucket}/test/holdout.csv", "read") == {
        (runs["copy.py"], "etag")}
    assert edges_into(graph, f"s3://{bucket}/test/holdout.csv", "wrote") == {
        (runs["upload.py"], "etag")}
    assert edges_into(graph, f"s3://{bucket}/train/part-1.csv", "wrote") == {
        (runs["upload.py"], "stamp")}  # its own stamp, with the digest the read saw


def test_check_finds_the_copied_test_object_and_names_its_readers(copied_test_set, clew_cli,
                                                                  workdir, spool):
    bucket, _ = copied_test_set
    runs = runs_by_program(clew_cli)
    result = clew_cli("check", f"s3://{bucket}/model.pt", "--test", f"s3://{bucket}/test/",
                      "--format", "json")
    assert result.code == ExitStatus.CHECK_FAILED, result.out + result.err
    found = {(f["uri"], f["evidence"], tuple(f["read_by"])) for f in result.json()["findings"]}
    # The upload carries the local file's digest: the copy is found by content, and so is
    # the local file the test object was uploaded from.
    assert found == {
        (f"s3://{bucket}/test/holdout.csv", "uri", (runs["copy.py"],)),
        (f"s3://{bucket}/train/part-2.csv", "digest", (runs["train.py"],)),
        (spool.uri(workdir / "data" / "raw" / "holdout.csv"), "digest", (runs["upload.py"],)),
    }
    clean = clew_cli("check", f"s3://{bucket}/model.pt", "--test", f"s3://{bucket}/eval/")
    assert clean.code == ExitStatus.OK, clean.out + clean.err


def test_impact_of_the_test_object_reaches_the_model_through_the_copy(copied_test_set,
                                                                       clew_cli):
    bucket, _ = copied_test_set
    runs = runs_by_program(clew_cli)
    result = clew_cli("impact", f"s3://{bucket}/test/holdout.csv", "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    graph = result.json()
    assert {n["id"] for n in graph["nodes"] if n["kind"] == "run"} == {
        runs["copy.py"], runs["train.py"]}
    assert f"s3://{bucket}/model.pt" in {n["uri"] for n in graph["nodes"]}


def test_the_model_asked_by_uri_is_its_last_write_with_its_evidence_and_size(
    copied_test_set, clew_cli
):
    """Asked by URI alone, the model is what its last write left: the edge from the run that
    wrote it carries that record's digest, and the node its size."""
    bucket, _ = copied_test_set
    runs = runs_by_program(clew_cli)
    graph = clew_cli("lineage", f"s3://{bucket}/model.pt", "--format", "json").json()
    (root,) = [n for n in graph["nodes"] if n["id"] == graph["root"]]
    assert root["uri"] == f"s3://{bucket}/model.pt"
    assert root["digest"].startswith("blake3:") and root["etag"]
    assert root["size"] == len(b"300")  # the rows training counted
    assert edges_into(graph, root["uri"], "wrote") == {(runs["train.py"], "digest")}
