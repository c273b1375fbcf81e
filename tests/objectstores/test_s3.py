"""boto3/botocore against real S3 servers: one record per logical operation, with the
bucket, key, version, ETag and size the server gave, and producer links across runs."""

from __future__ import annotations

import json

import blake3
import pytest

from clew.semconv import attributes as attr
from clew.semconv import spans as span_names

from objectstore_helpers import check_run, object_spans, only, s3_env, unique

pytestmark = pytest.mark.integration

PROGRAM = """
import json, os, sys
import boto3
from boto3.s3.transfer import TransferConfig

bucket = sys.argv[1]
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
first = s3.put_object(Bucket=bucket, Key="data/a.bin", Body=b"first version")
second = s3.put_object(Bucket=bucket, Key="data/a.bin", Body=b"second version!")
old = s3.get_object(Bucket=bucket, Key="data/a.bin", VersionId=first["VersionId"])
old_body = old["Body"].read()
for start in (0, 5, 10):  # ranged reads of one version: one logical read
    s3.get_object(Bucket=bucket, Key="data/a.bin", Range=f"bytes={start}-{start + 4}")["Body"].read()
head = s3.head_object(Bucket=bucket, Key="data/a.bin")
s3.list_objects_v2(Bucket=bucket, Prefix="data/")
with open("big.bin", "wb") as f:
    f.write(os.urandom(6 << 20))
config = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
s3.upload_file("big.bin", bucket, "data/big.bin", Config=config)
big = s3.head_object(Bucket=bucket, Key="data/big.bin")
s3.download_file(bucket, "data/big.bin", "big.out", Config=config)
copy = s3.copy_object(Bucket=bucket, Key="data/copy.bin", CopySource={"Bucket": bucket, "Key": "data/a.bin"})
s3.put_object(Bucket=bucket, Key="data/gone.bin", Body=b"x")
s3.delete_object(Bucket=bucket, Key="data/gone.bin")
s3.put_object(Bucket=bucket, Key="data/gone2.bin", Body=b"y")
s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "data/gone2.bin"}]})
print(json.dumps({
    "first": [first["VersionId"], first["ETag"]], "second": [second["VersionId"], second["ETag"]],
    "head": [head["VersionId"], head["ETag"]], "big": [big["VersionId"], big["ETag"], big["ContentLength"]],
    "copy": [copy["VersionId"], copy["CopyObjectResult"]["ETag"]], "old_body": old_body.decode(),
}))
"""


# Object stamps are opt-in; the tests of what a stamp links turn them on.
STAMP_OBJECTS = {"CLEW_STAMP_OBJECTS": "1"}


@pytest.fixture(params=["moto_s3", "seaweedfs"])
def s3_endpoint(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


def test_each_boto3_operation_is_one_record(run_instrumented, spool, s3_endpoint):
    bucket = unique("ops")
    result = run_instrumented(PROGRAM, bucket, env={**s3_env(s3_endpoint), **STAMP_OBJECTS})
    check_run(result)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    spans = spool.spans()
    uri = f"s3://{bucket}/data/a.bin"

    writes = object_spans(spans, uri, "write")
    assert len(writes) == 2
    assert {(w.attributes[attr.PROVENANCE_ARTIFACT_VERSION], w.attributes[attr.PROVENANCE_ARTIFACT_ETAG])
            for w in writes} == {tuple(seen["first"]), tuple(seen["second"])}
    for write in writes:
        assert write.name == span_names.SPAN_WRITE_S3
        assert write.attributes[attr.AWS_S3_BUCKET] == bucket
        assert write.attributes[attr.AWS_S3_KEY] == "data/a.bin"
        assert write.attributes[attr.PROVENANCE_PRODUCER_STAMPED] is True
        assert write.attributes[attr.PROVENANCE_ARTIFACT_DIGEST].startswith("blake3:")

    reads = object_spans(spans, uri, "read")
    by_version = {r.attributes[attr.PROVENANCE_ARTIFACT_VERSION]: r for r in reads}
    assert len(reads) == 2 and set(by_version) == {seen["first"][0], seen["second"][0]}
    old = by_version[seen["first"][0]]  # the version actually read, not the latest
    assert old.attributes[attr.PROVENANCE_ARTIFACT_SIZE] == len("first version")
    assert old.attributes[attr.PROVENANCE_ARTIFACT_ETAG] == seen["first"][1]
    assert old.attributes[attr.PROVENANCE_ARTIFACT_IDENTITY] == "version"
    assert old.attributes[attr.PROVENANCE_ARTIFACT_DIGEST].startswith("blake3:")
    ranged = by_version[seen["second"][0]]
    assert ranged.attributes[attr.PROVENANCE_IO_COUNT] == 3
    assert ranged.attributes[attr.PROVENANCE_IO_BYTES] == 15
    assert ranged.attributes[attr.PROVENANCE_ARTIFACT_SIZE] == len("second version!")
    assert attr.PROVENANCE_ARTIFACT_DIGEST not in ranged.attributes  # never fetched again
    # Each read links to the write that produced its version, in this same run.
    write_of = {w.attributes[attr.PROVENANCE_ARTIFACT_VERSION]: w for w in writes}
    for version, read in by_version.items():
        assert [(link.trace_id, link.span_id) for link in read.links] == [
            (write_of[version].trace_id, write_of[version].span_id)
        ]

    metadata = object_spans(spans, uri, "list")
    assert len(metadata) == 1 and metadata[0].name == span_names.SPAN_LIST_S3
    assert only(spans, f"s3://{bucket}/data/", "list").attributes[attr.AWS_S3_KEY] == "data/"

    big_uri = f"s3://{bucket}/data/big.bin"
    upload = only(spans, big_uri, "write")  # multipart: one write
    assert upload.attributes[attr.PROVENANCE_ARTIFACT_VERSION] == seen["big"][0]
    assert upload.attributes[attr.PROVENANCE_ARTIFACT_ETAG] == seen["big"][1]
    assert upload.attributes[attr.PROVENANCE_ARTIFACT_SIZE] == seen["big"][2] == 6 << 20
    download = only(spans, big_uri, "read")  # s3transfer's GETs: one read
    assert download.attributes[attr.PROVENANCE_IO_BYTES] == 6 << 20
    assert download.attributes[attr.PROVENANCE_ARTIFACT_VERSION] == seen["big"][0]
    assert [link.span_id for link in download.links] == [upload.span_id]

    copy = only(spans, f"s3://{bucket}/data/copy.bin", "copy")
    assert copy.attributes[attr.PROVENANCE_SOURCE_URI] == uri
    assert copy.attributes[attr.AWS_S3_COPY_SOURCE] == f"{bucket}/data/a.bin"
    assert copy.attributes[attr.PROVENANCE_ARTIFACT_VERSION] == seen["copy"][0]
    assert copy.attributes[attr.PROVENANCE_ARTIFACT_ETAG] == seen["copy"][1]
    only(spans, f"s3://{bucket}/data/gone.bin", "delete")
    only(spans, f"s3://{bucket}/data/gone2.bin", "delete")

    endpoint = s3_endpoint.split("://")[1]
    assert all(
        f"{s.attributes[attr.SERVER_ADDRESS]}:{s.attributes[attr.SERVER_PORT]}" == endpoint
        for s in object_spans(spans)
    )
    assert "clew-test-secret" not in spool.text()


READER = """
import sys
import boto3
print(boto3.client("s3").get_object(Bucket=sys.argv[1], Key="model.bin")["Body"].read())
"""


def test_a_later_run_links_to_the_run_that_wrote_the_object(run_instrumented, spool, seaweedfs):
    bucket = unique("lineage")
    writer = """
import sys
import boto3
s3 = boto3.client("s3")
s3.create_bucket(Bucket=sys.argv[1])
s3.put_object(Bucket=sys.argv[1], Key="model.bin", Body=b"weights")
"""
    env = {**s3_env(seaweedfs), **STAMP_OBJECTS}
    check_run(run_instrumented(writer, bucket, env=env, name="writer.py"))
    check_run(run_instrumented(READER, bucket, env=env, name="reader.py"))
    spans = spool.spans()
    write = only(spans, f"s3://{bucket}/model.bin", "write")
    read = only(spans, f"s3://{bucket}/model.bin", "read")
    assert read.trace_id != write.trace_id  # two runs
    assert [(link.trace_id, link.span_id) for link in read.links] == [(write.trace_id, write.span_id)]
    assert read.attributes[attr.PROVENANCE_PRODUCER_TRACE_ID] == write.trace_id
    assert read.attributes[attr.PROVENANCE_PRODUCER_DIGEST] == write.attributes[attr.PROVENANCE_ARTIFACT_DIGEST]


SHARDS = """
import json, sys
import boto3
bucket = sys.argv[1]
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
puts = [s3.put_object(Bucket=bucket, Key=f"shards/{i}.bin", Body=b"shard %d" % i) for i in range(3)]
puts.append(s3.put_object(Bucket=bucket, Key="shards/0.bin", Body=b"shard 0, again"))
for i in range(3):
    s3.get_object(Bucket=bucket, Key=f"shards/{i}.bin")["Body"].read()
s3.get_object(Bucket=bucket, Key="shards/0.bin", VersionId=puts[0]["VersionId"])["Body"].read()
print(json.dumps([[p["VersionId"], p["ETag"]] for p in puts]))
"""


def test_small_object_reads_share_a_span_and_the_store_has_a_row_for_each(
    run_instrumented, spool, clew_cli, moto_s3
):
    """Reads of small objects are batched like small file reads: one span per prefix, its
    arrays parallel. Two versions of one key read in one flush go to two spans (a link names
    its object by URI), and clew_io has each read with its own version, ETag, bytes and
    producer."""
    bucket = unique("shards")
    result = run_instrumented(SHARDS, bucket, env={**s3_env(moto_s3), **STAMP_OBJECTS})
    check_run(result)
    puts = json.loads(result.stdout)
    spans = spool.spans()
    batches = [s for s in spans if s.name == span_names.SPAN_READ_S3]
    assert sorted(len(s.attributes[attr.PROVENANCE_ARTIFACTS_URI]) for s in batches) == [1, 3]
    assert all(s.attributes[attr.AWS_S3_BUCKET] == bucket for s in batches)

    # The write spans, by the (key, version) they wrote: each read must link to its own.
    writes = {(w.attributes[attr.AWS_S3_KEY], w.attributes[attr.PROVENANCE_ARTIFACT_VERSION]): w
              for w in object_spans(spans, operation="write")}
    expected = sorted(
        (f"s3://{bucket}/shards/{key}.bin", version, etag, len(body), writes[f"shards/{key}.bin", version].span_id)
        for key, (version, etag), body in (
            (0, puts[3], b"shard 0, again"), (1, puts[1], b"shard 1"), (2, puts[2], b"shard 2"),
            (0, puts[0], b"shard 0"),
        )
    )
    found = clew_cli("sql", "--format", "json", "SELECT Uri, Version, ETag, Bytes, ProducerSpanId "
                     "FROM clew_io WHERE Operation = 'read' ORDER BY Uri, Version")
    assert found.code == 0, found.err
    assert sorted(tuple(row.values()) for row in found.json()["rows"]) == expected


def test_aiobotocore_used_directly_reads_its_bytes(run_instrumented, spool, moto_s3):
    """aiobotocore's body is a StreamingBody whose read is a coroutine: clew's replacement is a
    coroutine too (a sync one raised TypeError in the program), and hashes the bytes."""
    bucket = unique("aio")
    program = """
import asyncio, sys
from aiobotocore.session import get_session

async def main(bucket):
    async with get_session().create_client("s3") as s3:
        await s3.create_bucket(Bucket=bucket)
        await s3.put_object(Bucket=bucket, Key="k", Body=b"async bytes")
        response = await s3.get_object(Bucket=bucket, Key="k")
        async with response["Body"] as body:
            print((await body.read()).decode())

asyncio.run(main(sys.argv[1]))
"""
    result = run_instrumented(program, bucket, env=s3_env(moto_s3))
    check_run(result)
    assert result.stdout.strip() == "async bytes"
    read = only(spool.spans(), f"s3://{bucket}/k", "read")
    assert read.attributes[attr.PROVENANCE_ARTIFACT_SIZE] == len(b"async bytes")
    assert read.attributes[attr.PROVENANCE_ARTIFACT_DIGEST] == "blake3:" + blake3.blake3(b"async bytes").hexdigest()


# Every way a program writes an object, each with the metadata the program gave it (or none);
# it prints what HEAD returns for each, and its own Metadata dict after the calls.
WRITES = """
import json, sys
import boto3, s3fs
from boto3.s3.transfer import TransferConfig
bucket = sys.argv[1]
own = {"owner": "team-a"}
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key="put-own", Body=b"x", Metadata=own)
s3.put_object(Bucket=bucket, Key="put", Body=b"x")
with open("big.bin", "wb") as f:
    f.write(b"b" * (6 << 20))
config = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
s3.upload_file("big.bin", bucket, "upload", ExtraArgs={"Metadata": own}, Config=config)
s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "put"})
s3.copy_object(Bucket=bucket, Key="copy-replace", CopySource={"Bucket": bucket, "Key": "put"},
               MetadataDirective="REPLACE", Metadata=own)
fs = s3fs.S3FileSystem()
fs.pipe(f"{bucket}/s3fs-pipe", b"y")
with fs.open(f"{bucket}/s3fs-open", "wb") as f:
    f.write(b"z")
fs.pipe(f"{bucket}/s3fs-xattr", b"w")
fs.setxattr(f"{bucket}/s3fs-xattr", owner="team-a")
keys = ["put-own", "put", "upload", "copy", "copy-replace", "s3fs-pipe", "s3fs-open", "s3fs-xattr"]
print(json.dumps({key: s3.head_object(Bucket=bucket, Key=key)["Metadata"] for key in keys}))
print(json.dumps(own))
"""
# What HEAD returns for each when nothing but the program wrote into the metadata.
PROGRAMS_METADATA = {
    "put-own": {"owner": "team-a"}, "put": {}, "upload": {"owner": "team-a"}, "copy": {},
    "copy-replace": {"owner": "team-a"}, "s3fs-pipe": {}, "s3fs-open": {},
    "s3fs-xattr": {"owner": "team-a"},
}


def test_writes_leave_the_objects_metadata_as_the_program_set_it(run_instrumented, spool,
                                                                  s3_endpoint):
    """A program sees its objects' metadata (s3fs's own tests fail when it changes): by
    default clew writes nothing into it, whichever way the object was written."""
    bucket = unique("metadata")
    result = run_instrumented(WRITES, bucket, env=s3_env(s3_endpoint))
    check_run(result)
    heads, own = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert heads == PROGRAMS_METADATA
    assert own == {"owner": "team-a"}
    writes = [s for s in object_spans(spool.spans()) if s.attributes[attr.PROVENANCE_IO_OPERATION]
              in ("write", "copy")]
    assert len(writes) >= len(PROGRAMS_METADATA)  # recorded all the same
    assert not [s for s in writes if attr.PROVENANCE_PRODUCER_STAMPED in s.attributes]


@pytest.mark.parametrize(("settings", "stamped"), [
    ({"CLEW_STAMP_OBJECTS": "1"}, True),
    ({"CLEW_STAMP_OBJECTS": "1", "CLEW_STAMP": "0"}, False),  # CLEW_STAMP=0: no stamp at all
])
def test_object_stamps_are_opt_in(run_instrumented, moto_s3, settings, stamped):
    bucket = unique("stamped")
    result = run_instrumented(WRITES, bucket, env={**s3_env(moto_s3), **settings})
    check_run(result)
    heads, own = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert own == {"owner": "team-a"}  # the stamp went into a copy of the program's dict
    if not stamped:
        assert heads == PROGRAMS_METADATA
        return
    # Every write carries the stamp beside the program's own metadata; the plain copy too,
    # as S3 copies the source's metadata (its stamp included).
    assert {key: {k: v for k, v in found.items() if k != "clew-producer"}
            for key, found in heads.items()} == PROGRAMS_METADATA
    assert all("clew-producer" in found for found in heads.values()), heads


def test_suppressed_disabled_and_failing_calls(run_instrumented, spool, moto_s3):
    bucket = unique("edge")
    program = """
import sys
import boto3
from opentelemetry.instrumentation.utils import suppress_instrumentation
s3 = boto3.client("s3")
s3.create_bucket(Bucket=sys.argv[1])
with suppress_instrumentation():
    s3.put_object(Bucket=sys.argv[1], Key="quiet", Body=b"q")
try:
    s3.get_object(Bucket=sys.argv[1], Key="missing")
except s3.exceptions.NoSuchKey as error:
    print(type(error).__name__)
"""
    result = run_instrumented(program, bucket, env=s3_env(moto_s3))
    check_run(result)
    assert result.stdout.strip() == "NoSuchKey"  # the program's error, unchanged
    assert object_spans(spool.spans(), f"s3://{bucket}/quiet") == []
    assert object_spans(spool.spans(), f"s3://{bucket}/missing") == []


def test_uninstrumented_records_nothing(run_instrumented, spool, moto_s3):
    bucket = unique("off")
    program = """
import sys
import boto3
s3 = boto3.client("s3")
s3.create_bucket(Bucket=sys.argv[1])
s3.put_object(Bucket=sys.argv[1], Key="k", Body=b"v")
"""
    env = {**s3_env(moto_s3), "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "clew_botocore"}
    check_run(run_instrumented(program, bucket, env=env))
    assert object_spans(spool.spans()) == []
