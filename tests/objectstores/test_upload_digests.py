"""A single-part upload of a whole local file (boto3 `upload_file` of a small file, and
`upload_fileobj` of a file opened for it) carries that file's blake3 digest, the one the
local read of it has; so the object's writer is found by content. A real program under
opentelemetry-instrument against moto.
"""

from __future__ import annotations

import blake3
import pytest

from clew.semconv import attributes as attr
from objectstore_helpers import check_run, only, s3_env, unique

pytestmark = pytest.mark.integration

UPLOAD = """
import sys, boto3
bucket = sys.argv[1]
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
s3.upload_file("holdout.csv", bucket, "test/holdout.csv")
with open("other.csv", "rb") as handle:
    s3.upload_fileobj(handle, bucket, "test/other.csv")
"""


def test_an_upload_of_a_whole_small_file_carries_its_digest(run_instrumented, spool, workdir,
                                                            moto_s3):
    files = {"holdout.csv": b"secret,9\n" * 230, "other.csv": b"other,1\n" * 10}  # ~2 KB
    for name, content in files.items():
        (workdir / name).write_bytes(content)
    bucket = unique("upload")
    check_run(run_instrumented(UPLOAD, bucket, name="upload.py", env=s3_env(moto_s3)))

    spans = spool.spans()
    for name, content in files.items():
        expected = "blake3:" + blake3.blake3(content).hexdigest()
        write = only(spans, f"s3://{bucket}/test/{name}", "write").attributes
        assert write[attr.PROVENANCE_ARTIFACT_DIGEST] == expected, name
        assert write[attr.PROVENANCE_ARTIFACT_ETAG]
        run = spool.run()
        assert spool.only(run, "read", workdir / name).digest == expected
