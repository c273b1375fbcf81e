"""Digests of large objects streamed in many chunks (hashed on clew's background hasher when a
chunk is large, in the reader otherwise): each equals blake3 of the object's bytes, however
the program reads (or writes) them, and a fork while hashing neither hangs nor mixes up
digests."""

from __future__ import annotations

import json
import random

import blake3
import pytest

from clew.semconv import attributes as attr

from objectstore_helpers import check_run, object_spans, only, s3_env, unique

pytestmark = pytest.mark.integration

SIZE = (12 << 20) + 12345  # many chunks of every size the readers below use, and a short last one

PROGRAM = """
import random, sys
import boto3, s3fs
from boto3.s3.transfer import TransferConfig

bucket, size = sys.argv[1], int(sys.argv[2])
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
keys = ["read", "chunks", "mixed", "fileobj", "s3fs-whole", "s3fs-chunks"]
for key in keys:
    s3.put_object(Bucket=bucket, Key=key, Body=random.Random(key).randbytes(size))
got = {}
got["read"] = s3.get_object(Bucket=bucket, Key="read")["Body"].read()
got["chunks"] = b"".join(s3.get_object(Bucket=bucket, Key="chunks")["Body"].iter_chunks(3 << 20))
# Small and large reads and a readinto (a buffer the program reuses) in one stream.
body = s3.get_object(Bucket=bucket, Key="mixed")["Body"]
parts = [body.read(100), body.read(5 << 20)]
buffer = bytearray(1 << 20)
count = body.readinto(buffer)
parts += [bytes(buffer[:count]), body.read(7), body.read()]
buffer[:] = bytes(len(buffer))  # reused after clew saw it: must not change the digest
got["mixed"] = b"".join(parts)
with open("fileobj.out", "wb") as out:  # one GET (below the threshold), 4 MiB reads
    s3.download_fileobj(bucket, "fileobj", out, Config=TransferConfig(multipart_threshold=64 << 20, io_chunksize=4 << 20))
got["fileobj"] = open("fileobj.out", "rb").read()
fs = s3fs.S3FileSystem()
with fs.open(f"{bucket}/s3fs-whole", "rb") as handle:
    got["s3fs-whole"] = handle.read()
with fs.open(f"{bucket}/s3fs-chunks", "rb", block_size=2 << 20) as handle:
    got["s3fs-chunks"] = b"".join(iter(lambda: handle.read(3 << 20), b""))
assert all(got[key] == random.Random(key).randbytes(size) for key in keys)
data = random.Random("s3fs-write").randbytes(size)
with fs.open(f"{bucket}/s3fs-write", "wb", block_size=5 << 20) as handle:  # a multipart upload
    for start in range(0, size, 3 << 20):
        handle.write(data[start:start + (3 << 20)])
print("ok")
"""


def expected(key: str, size: int = SIZE) -> str:
    return "blake3:" + blake3.blake3(random.Random(key).randbytes(size)).hexdigest()


def test_large_streamed_objects_get_the_digest_of_their_bytes(run_instrumented, spool, seaweedfs):
    bucket = unique("streamed")
    result = run_instrumented(PROGRAM, bucket, str(SIZE), env=s3_env(seaweedfs))
    check_run(result)
    assert result.stdout.strip() == "ok"
    spans = spool.spans()
    for key in ("read", "chunks", "mixed", "fileobj", "s3fs-whole", "s3fs-chunks"):
        read = only(spans, f"s3://{bucket}/{key}", "read")
        assert read.attributes.get(attr.PROVENANCE_ARTIFACT_DIGEST) == expected(key), key
        assert read.attributes[attr.PROVENANCE_ARTIFACT_SIZE] == SIZE
    write = only(spans, f"s3://{bucket}/s3fs-write", "write")
    assert write.attributes.get(attr.PROVENANCE_ARTIFACT_DIGEST) == expected("s3fs-write")


FORKING = """
import os, random, signal, sys, time
import boto3

bucket, size = sys.argv[1], int(sys.argv[2])
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
for key in ("parent", "child", "after"):
    s3.put_object(Bucket=bucket, Key=key, Body=random.Random(key).randbytes(size))
with open("parent.bin", "wb") as f:  # a large local file: hashed by clew's worker
    f.write(random.Random("local").randbytes(4 << 20))
open("parent.bin", "rb").read()
body = s3.get_object(Bucket=bucket, Key="parent")["Body"]
data = body.read(size // 2) + body.read()  # its last chunk is still hashing in the background


def forked(key):
    pid = os.fork()
    if pid == 0:
        with open("child.bin", "wb") as f:
            f.write(random.Random("child-local").randbytes(4 << 20))
        open("child.bin", "rb").read()
        s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        os._exit(0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hung"


print(forked("child"))  # during the parent's hashing
s3.get_object(Bucket=bucket, Key="after")["Body"].read()
print(forked("child"))  # after it (the same object again: one more record, in that child)
"""


def test_a_fork_while_hashing_does_not_hang(run_instrumented, spool, seaweedfs):
    bucket = unique("forkhash")
    result = run_instrumented(FORKING, bucket, str(SIZE), env=s3_env(seaweedfs))
    check_run(result)
    assert result.stdout.split() == ["0", "0"]
    spans = spool.spans()
    for key in ("parent", "after"):
        read = only(spans, f"s3://{bucket}/{key}", "read")
        assert read.attributes.get(attr.PROVENANCE_ARTIFACT_DIGEST) == expected(key)
    children = object_spans(spans, f"s3://{bucket}/child", "read")
    assert len(children) == 2  # one per child, each with its own bytes' digest
    assert {s.attributes.get(attr.PROVENANCE_ARTIFACT_DIGEST) for s in children} == {expected("child")}


FREED = """
import gc, json, sys, weakref
import boto3, fsspec, s3fs

gc.disable()  # what stays alive now is held by a reference, not waiting for a collection
bucket = sys.argv[1]
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key="a.bin", Body=b"a" * 5000)
followed = {}
body = s3.get_object(Bucket=bucket, Key="a.bin")["Body"]
body.read()
followed["boto3 body read whole"] = weakref.ref(body)
body = s3.get_object(Bucket=bucket, Key="a.bin")["Body"]
body.read(10)
body.close()
followed["boto3 body closed early"] = weakref.ref(body)
del body
for protocol, root in (("s3", bucket), ("memory", "/mem")):
    fs = fsspec.filesystem(protocol)
    with fs.open(f"{root}/b.bin", "wb") as handle:
        handle.write(b"b" * 5000)
    followed[f"{protocol} file written"] = weakref.ref(handle)
    with fs.open(f"{root}/b.bin", "rb") as handle:
        handle.read()
    followed[f"{protocol} file read"] = weakref.ref(handle)
    del handle
print(json.dumps(sorted(name for name, ref in followed.items() if ref() is not None)))
"""


def test_followed_files_and_bodies_are_freed_when_the_program_lets_go(
    run_instrumented, run_plain, spool, moto_s3
):
    """clew replaces a few methods on each file and body it follows; those replacements hold
    the object's own methods. Kept after close, that cycle left every file, with its buffers,
    to the garbage collector, and a program reading many small objects paid for the extra
    collections."""
    plain = run_plain(FREED, unique("freed"), env=s3_env(moto_s3))
    check_run(plain)
    bucket = unique("freed")
    result = run_instrumented(FREED, bucket, env=s3_env(moto_s3))
    check_run(result)
    # The memory filesystem keeps the file it wrote, and opens that same one to read.
    assert json.loads(result.stdout) == json.loads(plain.stdout) == ["memory file read", "memory file written"]
    spans = spool.spans()
    for uri in (f"s3://{bucket}/b.bin", "memory://mem/b.bin"):
        written = only(spans, uri, "write").attributes[attr.PROVENANCE_ARTIFACT_DIGEST]
        assert only(spans, uri, "read").attributes[attr.PROVENANCE_ARTIFACT_DIGEST] == written
    assert only(spans, f"s3://{bucket}/a.bin", "read").attributes[attr.PROVENANCE_IO_COUNT] == 2


def test_s3fs_bytes_are_hashed_as_they_arrive_even_when_the_program_reads_part(
    run_instrumented, spool, moto_s3
):
    """Under s3fs, aiobotocore's body is hashed on the event loop's thread as it arrives. s3fs
    fetches a small object whole even for a short read, so that read has the object's digest
    too; a ranged fetch of part of a larger object gives none."""
    bucket = unique("arrive")
    program = """
import sys
import boto3, s3fs
bucket = sys.argv[1]
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key="small", Body=bytes(range(256)) * 20)
s3.put_object(Bucket=bucket, Key="large", Body=bytes(range(256)) * 8192)
fs = s3fs.S3FileSystem()
with fs.open(f"{bucket}/small", "rb") as handle:
    assert handle.read(100) == bytes(range(100))
with fs.open(f"{bucket}/large", "rb", block_size=1 << 20) as handle:
    handle.read(100)
"""
    check_run(run_instrumented(program, bucket, env=s3_env(moto_s3)))
    spans = spool.spans()
    small = only(spans, f"s3://{bucket}/small", "read").attributes
    assert small[attr.PROVENANCE_ARTIFACT_DIGEST] == "blake3:" + blake3.blake3(bytes(range(256)) * 20).hexdigest()
    large = only(spans, f"s3://{bucket}/large", "read").attributes
    assert attr.PROVENANCE_ARTIFACT_DIGEST not in large
    assert large[attr.PROVENANCE_ARTIFACT_SIZE] == 256 * 8192
