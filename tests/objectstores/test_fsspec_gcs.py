"""fsspec (s3fs, gcsfs, memory, local) and google-cloud-storage: one record per logical
operation, inner layers (aiobotocore, gcsfs's HTTP, Python's open) never recording again."""

from __future__ import annotations

import json

import blake3
import pytest

from clew.semconv import attributes as attr
from clew.semconv import spans as span_names

from objectstore_helpers import check_run, gcs_env, object_spans, only, s3_env, unique

pytestmark = pytest.mark.integration

FSSPEC_PROGRAM = """
import json, os, sys
import fsspec
protocol, root = sys.argv[1], sys.argv[2]
fs = fsspec.filesystem(protocol, **json.loads(sys.argv[3]))
if protocol == "s3":
    fs.mkdir(root)
    fs.call_s3("put_bucket_versioning", Bucket=root, VersioningConfiguration={"Status": "Enabled"})
elif protocol == "gs":
    fs.mkdir(root)
fs.pipe_file(f"{root}/piped.bin", b"p" * 1000)
data = fs.cat_file(f"{root}/piped.bin")
with fs.open(f"{root}/opened.bin", "wb") as f:
    f.write(b"o" * 3000)
with fs.open(f"{root}/opened.bin", "rb") as f:
    f.read()
with open("local.bin", "wb") as f:
    f.write(b"l" * 500)
fs.put("local.bin", f"{root}/put.bin")
fs.get(f"{root}/put.bin", "got.bin")
fs.cp(f"{root}/put.bin", f"{root}/copied.bin")
fs.mv(f"{root}/copied.bin", f"{root}/moved.bin")
fs.rm(f"{root}/moved.bin")
print(json.dumps({k: v for k, v in fs.info(f"{root}/opened.bin").items() if isinstance(v, (str, int))}))
"""


def _check_fsspec_records(spans, scheme, root, store_span):
    base = f"{scheme}://{root.strip('/')}"
    piped = only(spans, f"{base}/piped.bin", "write")
    assert piped.name == store_span["write"]
    assert piped.attributes[attr.PROVENANCE_ARTIFACT_SIZE] == 1000
    read = only(spans, f"{base}/piped.bin", "read")
    assert read.attributes[attr.PROVENANCE_ARTIFACT_DIGEST] == piped.attributes[attr.PROVENANCE_ARTIFACT_DIGEST]
    opened_write = only(spans, f"{base}/opened.bin", "write")
    assert opened_write.attributes[attr.PROVENANCE_ARTIFACT_SIZE] == 3000
    opened_read = only(spans, f"{base}/opened.bin", "read")
    assert opened_read.attributes[attr.PROVENANCE_IO_BYTES] == 3000
    assert opened_read.attributes[attr.PROVENANCE_ARTIFACT_DIGEST] == opened_write.attributes[attr.PROVENANCE_ARTIFACT_DIGEST]
    only(spans, f"{base}/put.bin", "write")
    assert only(spans, f"{base}/put.bin", "read").attributes[attr.PROVENANCE_IO_BYTES] == 500
    copy = only(spans, f"{base}/copied.bin", "copy")
    assert copy.attributes[attr.PROVENANCE_SOURCE_URI] == f"{base}/put.bin"
    rename = only(spans, f"{base}/moved.bin", "rename")
    assert rename.attributes[attr.PROVENANCE_SOURCE_URI] == f"{base}/copied.bin"
    only(spans, f"{base}/moved.bin", "delete")
    # mv is one rename: its inner copy and delete are not recorded again
    assert object_spans(spans, f"{base}/copied.bin", "delete") == []
    return piped, read, opened_write, opened_read


S3_SPANS = {"write": span_names.SPAN_WRITE_S3}
# Object stamps are opt-in; the tests of what a stamp links turn them on.
STAMP_OBJECTS = {"CLEW_STAMP_OBJECTS": "1"}
GCS_SPANS = {"write": span_names.SPAN_WRITE_GCS}


def test_s3fs_operations_are_one_record_each(run_instrumented, spool, moto_s3):
    bucket = unique("s3fs")
    result = run_instrumented(FSSPEC_PROGRAM, "s3", bucket, "{}",
                              env={**s3_env(moto_s3), **STAMP_OBJECTS})
    check_run(result)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    spans = spool.spans()
    piped, read, opened_write, opened_read = _check_fsspec_records(spans, "s3", bucket, S3_SPANS)
    assert opened_write.attributes[attr.PROVENANCE_ARTIFACT_VERSION] == info["VersionId"]
    assert opened_write.attributes[attr.PROVENANCE_ARTIFACT_ETAG] == info["ETag"]
    assert opened_read.attributes[attr.PROVENANCE_ARTIFACT_VERSION] == info["VersionId"]
    assert opened_write.attributes[attr.PROVENANCE_PRODUCER_STAMPED] is True
    # The stamp went into S3 through aiobotocore: the read links to the write.
    assert [link.span_id for link in opened_read.links] == [opened_write.span_id]
    assert [link.span_id for link in read.links] == [piped.span_id]
    # get streams the object through the program: hashed as it arrives, as boto3's download is.
    got = only(spans, f"s3://{bucket}/put.bin", "read")
    assert got.attributes[attr.PROVENANCE_ARTIFACT_DIGEST] == "blake3:" + blake3.blake3(b"l" * 500).hexdigest()


def test_gcsfs_operations_are_one_record_each(run_instrumented, spool, fake_gcs):
    bucket = unique("gcsfs")
    options = json.dumps({"token": "anon", "project": "test"})
    result = run_instrumented(FSSPEC_PROGRAM, "gs", bucket, options,
                              env={**gcs_env(fake_gcs), **STAMP_OBJECTS})
    check_run(result)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    spans = spool.spans()
    piped, read, opened_write, opened_read = _check_fsspec_records(spans, "gs", bucket, GCS_SPANS)
    assert opened_read.attributes[attr.PROVENANCE_ARTIFACT_VERSION] == str(info["generation"])
    assert opened_read.attributes[attr.PROVENANCE_ARTIFACT_ETAG] == info["etag"].strip('"')
    assert any(c.startswith("md5:") for c in opened_read.attributes[attr.PROVENANCE_ARTIFACT_CHECKSUMS])
    assert [link.span_id for link in read.links] == [piped.span_id]


def test_memory_and_local_filesystems(run_instrumented, spool, workdir):
    result = run_instrumented(FSSPEC_PROGRAM, "memory", "/mem", "{}")
    check_run(result)
    _check_fsspec_records(spool.spans(), "memory", "/mem", {"write": span_names.SPAN_WRITE_OBJECT})
    local = """
import fsspec
fs = fsspec.filesystem("file")
fs.pipe_file("a.txt", b"abc")
fs.cat_file("a.txt")
"""
    check_run(run_instrumented(local, name="local.py"))
    run = spool.runs()[0]
    # Left to the files instrumentor: one write and one read, not two of each.
    assert len(spool.accesses(run, "write", workdir / "a.txt")) == 1
    assert len(spool.accesses(run, "read", workdir / "a.txt")) == 1


GCS_PROGRAM = """
import json, sys
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
client = storage.Client(project="test", credentials=AnonymousCredentials())
bucket = client.create_bucket(sys.argv[1])
blob = bucket.blob("model.bin")
blob.upload_from_string(b"weights")
got = bucket.blob("model.bin").download_as_bytes()
with open("local.bin", "wb") as f:
    f.write(b"local")
bucket.blob("up.bin").upload_from_filename("local.bin")
bucket.blob("up.bin").download_to_filename("down.bin")
bucket.copy_blob(bucket.blob("up.bin"), bucket, "copy.bin")
bucket.blob("copy.bin").delete()
with bucket.blob("w.bin").open("wb") as f:
    f.write(b"w" * 100)
print(json.dumps([blob.generation, blob.etag, blob.md5_hash, blob.crc32c]))
"""


def test_google_cloud_storage_operations(run_instrumented, spool, fake_gcs):
    bucket = unique("gcs")
    result = run_instrumented(GCS_PROGRAM, bucket, env={**gcs_env(fake_gcs), **STAMP_OBJECTS})
    check_run(result)
    generation, etag, md5, crc32c = json.loads(result.stdout.strip().splitlines()[-1])
    spans = spool.spans()
    write = only(spans, f"gs://{bucket}/model.bin", "write")
    read = only(spans, f"gs://{bucket}/model.bin", "read")
    for span in (write, read):
        assert span.attributes[attr.PROVENANCE_OBJECT_BUCKET] == bucket
        assert span.attributes[attr.PROVENANCE_OBJECT_KEY] == "model.bin"
        assert span.attributes[attr.PROVENANCE_ARTIFACT_VERSION] == str(generation)
        assert span.attributes[attr.PROVENANCE_ARTIFACT_ETAG] == etag.strip('"')
        assert span.attributes[attr.PROVENANCE_ARTIFACT_SIZE] == len(b"weights")
        assert f"md5:{__import__('base64').b64decode(md5).hex()}" in span.attributes[attr.PROVENANCE_ARTIFACT_CHECKSUMS]
    assert read.attributes[attr.PROVENANCE_ARTIFACT_DIGEST] == write.attributes[attr.PROVENANCE_ARTIFACT_DIGEST]
    assert [link.span_id for link in read.links] == [write.span_id]
    only(spans, f"gs://{bucket}/up.bin", "write")
    assert only(spans, f"gs://{bucket}/up.bin", "read").attributes[attr.PROVENANCE_ARTIFACT_SIZE] == 5
    copy = only(spans, f"gs://{bucket}/copy.bin", "copy")
    assert copy.attributes[attr.PROVENANCE_SOURCE_URI] == f"gs://{bucket}/up.bin"
    only(spans, f"gs://{bucket}/copy.bin", "delete")
    opened = only(spans, f"gs://{bucket}/w.bin", "write").attributes
    assert opened[attr.PROVENANCE_ARTIFACT_SIZE] == 100
    # open("wb"): the digest of what passed, the generation from the upload's last response
    assert opened[attr.PROVENANCE_ARTIFACT_DIGEST] == "blake3:" + blake3.blake3(b"w" * 100).hexdigest()
    assert int(opened[attr.PROVENANCE_ARTIFACT_VERSION]) > 0
    assert opened[attr.PROVENANCE_PRODUCER_STAMPED] is True


# Every way a program writes a GCS object, with its own metadata; prints what the server holds.
GCS_WRITES = """
import json, sys
import gcsfs
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
own = {"owner": "team-a"}
client = storage.Client(project="test", credentials=AnonymousCredentials())
bucket = client.create_bucket(sys.argv[1])
blob = bucket.blob("string.bin")
blob.metadata = own
blob.upload_from_string(b"s")
bucket.blob("plain.bin").upload_from_string(b"p")
with open("local.bin", "wb") as f:
    f.write(b"local")
blob = bucket.blob("file.bin")
blob.metadata = own
blob.upload_from_filename("local.bin")
blob = bucket.blob("opened.bin")
blob.metadata = own
with blob.open("wb") as f:
    f.write(b"o" * 100)
fs = gcsfs.GCSFileSystem(token="anon", project="test")
fs.pipe_file(f"{sys.argv[1]}/gcsfs-pipe.bin", b"g", metadata=own)
with fs.open(f"{sys.argv[1]}/gcsfs-open.bin", "wb", metadata=own) as f:
    f.write(b"h")
names = ["string.bin", "plain.bin", "file.bin", "opened.bin", "gcsfs-pipe.bin", "gcsfs-open.bin"]
print(json.dumps({n: client.bucket(sys.argv[1]).get_blob(n).metadata for n in names}))
print(json.dumps(own))
"""
GCS_PROGRAMS_METADATA = {
    "string.bin": {"owner": "team-a"}, "plain.bin": None, "file.bin": {"owner": "team-a"},
    "opened.bin": {"owner": "team-a"}, "gcsfs-pipe.bin": {"owner": "team-a"},
    "gcsfs-open.bin": {"owner": "team-a"},
}


@pytest.mark.parametrize("stamp_objects", ["0", "1"])
def test_gcs_writes_leave_the_objects_metadata_as_the_program_set_it(run_instrumented, fake_gcs,
                                                                      stamp_objects):
    """By default clew writes nothing into a GCS object's metadata; with CLEW_STAMP_OBJECTS=1
    every write carries the stamp beside the program's own metadata."""
    bucket = unique("gcsmeta")
    result = run_instrumented(GCS_WRITES, bucket,
                              env={**gcs_env(fake_gcs), "CLEW_STAMP_OBJECTS": stamp_objects})
    check_run(result)
    held, own = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert own == {"owner": "team-a"}
    if stamp_objects == "0":
        assert held == GCS_PROGRAMS_METADATA
        return
    assert all("clew-producer" in (found or {}) for found in held.values()), held
    assert {name: {k: v for k, v in found.items() if k != "clew-producer"} or None
            for name, found in held.items()} == GCS_PROGRAMS_METADATA


def test_gcs_read_in_a_later_run_links_to_its_writer(run_instrumented, spool, fake_gcs):
    bucket = unique("gcslink")
    writer = """
import sys
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
client = storage.Client(project="test", credentials=AnonymousCredentials())
client.create_bucket(sys.argv[1]).blob("data.csv").upload_from_string(b"a,b\\n1,2\\n")
"""
    reader = """
import os, sys
import gcsfs
fs = gcsfs.GCSFileSystem(token="anon", project="test")
fs.cat_file(f"{sys.argv[1]}/data.csv")
"""
    env = {**gcs_env(fake_gcs), **STAMP_OBJECTS}
    check_run(run_instrumented(writer, bucket, env=env, name="writer.py"))
    check_run(run_instrumented(reader, bucket, env=env, name="reader.py"))
    spans = spool.spans()
    write = only(spans, f"gs://{bucket}/data.csv", "write")
    read = only(spans, f"gs://{bucket}/data.csv", "read")
    assert read.trace_id != write.trace_id
    assert [(link.trace_id, link.span_id) for link in read.links] == [(write.trace_id, write.span_id)]


def test_local_file_read_in_a_later_run_links_to_its_writer(run_instrumented, spool, workdir):
    check_run(run_instrumented("open('model.pt', 'wb').write(b'weights')\n", name="writer.py"))
    check_run(run_instrumented("open('model.pt', 'rb').read()\n", name="reader.py"))
    spans = spool.spans()
    uri = spool.uri(workdir / "model.pt")
    write = next(s for s in spans if s.name == span_names.SPAN_WRITE_FILE
                 and s.attributes.get(attr.PROVENANCE_ARTIFACT_URI) == uri)
    assert write.attributes[attr.PROVENANCE_PRODUCER_STAMPED] is True
    read = next(s for s in spans if s.name == span_names.SPAN_READ_FILE
                and uri in s.attributes.get(attr.PROVENANCE_ARTIFACTS_URI, []))
    assert [(link.trace_id, link.span_id) for link in read.links] == [(write.trace_id, write.span_id)]
    assert read.links[0].attributes[attr.PROVENANCE_ARTIFACT_URI] == uri
