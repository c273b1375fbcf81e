"""Lineage across runs through S3: a read is matched to the run that wrote the object by the
strongest evidence the records carry — the producer stamp (opt-in for objects, and only with
the digest the read saw), the content digest, the object version, the ETag — and
`check --stale` flags an object overwritten after a model was built from it. Separate runs under opentelemetry-instrument, against moto.
"""

from __future__ import annotations

import pytest

from clew.query.cli import ExitStatus
from objectstore_helpers import check_run, s3_env, unique

pytestmark = pytest.mark.integration

WRITER = """
import sys, boto3
bucket, versioned, body = sys.argv[1], sys.argv[2] == "versioned", sys.argv[3].encode()
s3 = boto3.client("s3")
if not any(b["Name"] == bucket for b in s3.list_buckets()["Buckets"]):
    s3.create_bucket(Bucket=bucket)
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket,
                                 VersioningConfiguration={"Status": "Enabled"})
s3.put_object(Bucket=bucket, Key="features.bin", Body=body)
"""
# A ranged read never sees the whole object: no digest, only the store's identities.
READER = """
import sys, boto3
bucket, whole = sys.argv[1], sys.argv[2] == "whole"
s3 = boto3.client("s3")
extra = {} if whole else {"Range": "bytes=0-3"}
data = s3.get_object(Bucket=bucket, Key="features.bin", **extra)["Body"].read()
open("model.txt", "w").write(str(len(data)))
"""


def producer_evidence(clew_cli, bucket: str) -> tuple[str, str]:
    """(evidence, producing run) of the edge into the object, in the model's lineage."""
    result = clew_cli("lineage", "model.txt", "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    graph = result.json()
    (node,) = [n for n in graph["nodes"] if n["uri"] == f"s3://{bucket}/features.bin"]
    ((evidence, run),) = {(e["evidence"], e["source"]) for e in graph["edges"]
                          if e["target"] == node["id"] and e["kind"] == "wrote"}
    return evidence, run


@pytest.mark.parametrize(
    ("stamp_objects", "versioned", "read", "expected"),
    [
        ("1", "versioned", "whole", "stamp"),
        # A ranged read has no digest to hold the stamp's against: the stamp proves nothing.
        ("1", "versioned", "ranged", "version"),
        ("0", "plain", "whole", "digest"),
        ("0", "versioned", "ranged", "version"),
        ("0", "plain", "ranged", "etag"),
    ],
)
def test_a_read_is_linked_to_its_writer_by_the_strongest_evidence(
    run_instrumented, clew_cli, moto_s3, stamp_objects, versioned, read, expected
):
    bucket = unique("lineage")
    env = {**s3_env(moto_s3), "CLEW_STAMP_OBJECTS": stamp_objects}
    check_run(run_instrumented(WRITER, bucket, versioned, "first", name="writer.py", env=env))
    # A second write of other content, and the reader after it reads that one.
    check_run(run_instrumented(WRITER, bucket, versioned, "second!", name="writer.py", env=env))
    check_run(run_instrumented(READER, bucket, read, name="reader.py", env=env))

    runs = clew_cli("runs", "--format", "json").json()["runs"]
    second_writer = runs[1]["run_id"]  # newest first: reader, second writer, first writer
    assert producer_evidence(clew_cli, bucket) == (expected, second_writer)


def test_a_stamp_on_content_its_producer_did_not_write_is_not_evidence(
    run_plain, run_instrumented, clew_cli, moto_s3
):
    """A tool that rewrites an object keeping its metadata carries the stamp over to content
    the stamp's producer never wrote: the read is not credited to that producer."""
    bucket = unique("restamped")
    env = {**s3_env(moto_s3), "CLEW_STAMP_OBJECTS": "1"}
    check_run(run_instrumented(WRITER, bucket, "plain", "first", name="writer.py", env=env))
    rewrite = """
import sys, boto3
s3 = boto3.client("s3")
bucket = sys.argv[1]
kept = s3.head_object(Bucket=bucket, Key="features.bin")["Metadata"]
assert "clew-producer" in kept, kept
s3.put_object(Bucket=bucket, Key="features.bin", Body=b"other bytes", Metadata=kept)
"""
    check_run(run_plain(rewrite, bucket, name="rewrite.py", env=env))  # not recorded
    check_run(run_instrumented(READER, bucket, "whole", name="reader.py", env=env))

    result = clew_cli("lineage", "model.txt", "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    graph = result.json()
    (node,) = [n for n in graph["nodes"] if n["uri"] == f"s3://{bucket}/features.bin"]
    assert [e for e in graph["edges"] if e["target"] == node["id"]] == []  # raw data
    assert len([n for n in graph["nodes"] if n["kind"] == "run"]) == 1  # the reader alone


def test_an_object_overwritten_after_the_model_read_it_is_stale(run_instrumented, clew_cli,
                                                                 moto_s3):
    bucket = unique("stale")
    env = s3_env(moto_s3)
    check_run(run_instrumented(WRITER, bucket, "versioned", "first", name="writer.py", env=env))
    check_run(run_instrumented(READER, bucket, "ranged", name="reader.py", env=env))
    fresh = clew_cli("check", "model.txt", "--stale")
    assert fresh.code == ExitStatus.OK, fresh.out + fresh.err

    check_run(run_instrumented(WRITER, bucket, "versioned", "again", name="writer.py", env=env))
    stale = clew_cli("check", "model.txt", "--stale", "--format", "json")
    assert stale.code == ExitStatus.CHECK_FAILED, stale.err
    (finding,) = stale.json()["findings"]
    assert finding["uri"] == f"s3://{bucket}/features.bin"
    assert finding["evidence"] == "overwritten"


def test_a_test_object_copied_into_the_training_data_is_found_by_digest(
    run_instrumented, clew_cli, moto_s3
):
    """The test set lives in S3; someone copied one test object under train/. The store
    knows the test object's digest from the evaluation run that read it."""
    bucket = unique("contamination")
    env = s3_env(moto_s3)
    setup = """
import sys, boto3
s3 = boto3.client("s3")
s3.create_bucket(Bucket=sys.argv[1])
s3.put_object(Bucket=sys.argv[1], Key="test/holdout.csv", Body=b"secret,9\\n")
s3.put_object(Bucket=sys.argv[1], Key="train/part1.csv", Body=b"x,1\\n")
s3.put_object(Bucket=sys.argv[1], Key="train/part2.csv", Body=b"secret,9\\n")
"""
    evaluate = """
import sys, boto3
boto3.client("s3").get_object(Bucket=sys.argv[1], Key="test/holdout.csv")["Body"].read()
"""
    train = """
import sys, boto3
s3 = boto3.client("s3")
keys = sys.argv[2:]
data = b"".join(s3.get_object(Bucket=sys.argv[1], Key=k)["Body"].read() for k in keys)
open("model.txt", "w").write(str(len(data)))
"""
    check_run(run_instrumented(setup, bucket, name="setup.py", env=env))
    check_run(run_instrumented(evaluate, bucket, name="evaluate.py", env=env))
    check_run(run_instrumented(train, bucket, "train/part1.csv", name="train.py", env=env))
    clean = clew_cli("check", "model.txt", "--test", f"s3://{bucket}/test/")
    assert clean.code == ExitStatus.OK, clean.out + clean.err

    check_run(run_instrumented(train, bucket, "train/part1.csv", "train/part2.csv",
                               name="train.py", env=env))
    found = clew_cli("check", "model.txt", "--test", f"s3://{bucket}/test/", "--format", "json")
    assert found.code == ExitStatus.CHECK_FAILED, found.err
    (finding,) = found.json()["findings"]
    assert finding["uri"] == f"s3://{bucket}/train/part2.csv"
    assert finding["evidence"] == "digest"
    trainer = clew_cli("runs", "--format", "json").json()["runs"][0]["run_id"]
    assert finding["read_by"] == [trainer]
    assert finding["detail"].startswith(
        f"same content as test file s3://{bucket}/test/holdout.csv, read by run {trainer[:12]} "
        "(pid "), finding["detail"]


def test_a_stamp_does_not_outrank_a_later_recorded_write_to_the_same_uri(
    run_instrumented, clew_cli, moto_s3
):
    """A recorded run copies an object by GET and PUT, carrying its metadata (the first
    writer's stamp) along, without stamping objects itself: the copy is that run's, not the
    first writer's, though the stamp and the digest agree."""
    bucket = unique("carried")
    env = s3_env(moto_s3)
    check_run(run_instrumented(WRITER, bucket, "plain", "payload", name="writer.py",
                               env={**env, "CLEW_STAMP_OBJECTS": "1"}))
    carry = """
import sys, boto3
s3 = boto3.client("s3")
source = s3.get_object(Bucket=sys.argv[1], Key="features.bin")
assert "clew-producer" in source["Metadata"], source["Metadata"]
s3.put_object(Bucket=sys.argv[1], Key="copy.bin", Body=source["Body"].read(),
              Metadata=source["Metadata"])
"""
    check_run(run_instrumented(carry, bucket, name="carry.py", env=env))
    reader = """
import sys, boto3
data = boto3.client("s3").get_object(Bucket=sys.argv[1], Key="copy.bin")["Body"].read()
open("model.txt", "w").write(str(len(data)))
"""
    check_run(run_instrumented(reader, bucket, name="reader.py", env=env))

    runs = clew_cli("runs", "--format", "json").json()["runs"]
    carrier = runs[1]["run_id"]  # newest first: reader, carrier, writer
    result = clew_cli("lineage", "model.txt", "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    graph = result.json()
    (node,) = [n for n in graph["nodes"] if n["uri"] == f"s3://{bucket}/copy.bin"]
    assert {(e["source"], e["evidence"]) for e in graph["edges"]
            if e["target"] == node["id"] and e["kind"] == "wrote"} == {(carrier, "digest")}
