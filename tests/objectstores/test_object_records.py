"""Object records built by hand: their URIs and checksums, as the spans give them."""

from __future__ import annotations

import base64
from urllib.parse import quote, unquote

import pytest

from clew.instrumentation._objects import ObjectRecord
from clew.semconv import attributes as attr
from clew.semconv.uris import GCS, S3, object_uri

NAMES = ["data/a.bin", "shards/00001-of-00100.tfrecord", "a b/c%d.csv", "x?y#z", "ünï/cødé",
         "k=v;w,(1)*~!$&'@:+", "", "a//b/", "tab\there", "<script>"]


@pytest.mark.parametrize("name", NAMES)
def test_an_object_uri_is_its_bucket_and_name_percent_encoded(name):
    uri = object_uri(S3, "bucket", name)
    path = f"bucket/{name}" if name else "bucket"
    assert uri == "s3://" + quote(path, safe="/:@!$&()*+,;=~-._")
    assert unquote(uri.removeprefix("s3://")) == path
    assert object_uri(GCS, "bucket", name).startswith("gs://bucket")


def test_checksums_are_decoded_once_and_the_first_answer_stands():
    record = ObjectRecord("read", S3, "b", "k")
    crc = base64.b64encode(bytes.fromhex("0a0b0c0d")).decode()
    record.add_checksum("crc32", crc)
    record.add_checksum("crc32", base64.b64encode(b"\x00" * 4).decode())  # a later response
    record.add_checksum("sha256", "not base64!")
    record.add_checksum("md5", None)
    attributes = record.span_attributes(pid=1)
    assert attributes[attr.PROVENANCE_ARTIFACT_CHECKSUMS] == ["crc32:0a0b0c0d"]
