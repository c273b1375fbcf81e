"""Batched "read file" spans: their parallel arrays, and the ones left out when they would say
nothing (every identity the same, every count 1), read back the same through the spool
reader (clew_io's view reads them the same: tests/store/test_lineage_tables.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from clew.exporter.spool import SpoolSpanExporter
from clew.exporter.spool_files import spool_directory
from clew.instrumentation import _record_spans
from clew.instrumentation._record_spans import Record, directory_of
from clew.query.spool import spool_runs
from clew.semconv import attributes as attr
from clew.semconv.uris import file_uri

PID = 4242


@pytest.fixture(params=[True, False], ids=["in C", "in Python"])
def batch_attributes(request):
    """`batch_attributes` made in C (where it was built) and in Python: the same spans."""
    if request.param and _record_spans._read_batches is None:
        pytest.skip("clew.instrumentation._read_batches was not built")

    def made(directory: str, records: list[Record], pid: int) -> dict:
        return _record_spans.batch_attributes(directory, records, pid, in_c=request.param)

    return made


def _record(path: str, *, identity: str = "content", count: int = 1) -> Record:
    record = Record("read", path, (1, hash(path) & 0xFFFF, 10, 7))
    record.digest = "blake3:" + "a" * 64 if identity == "content" else None
    record.identity, record.count = identity, count
    return record


@pytest.fixture
def read_back(tmp_path: Path):
    """Spool a "read file" span with these attributes; what the spool reader makes of it."""

    def spool_and_read(attributes: dict) -> list[tuple]:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(SpoolSpanExporter(spool_directory(tmp_path))))
        provider.get_tracer("test").start_span("read file", attributes=attributes).end()
        provider.shutdown()
        (run,) = spool_runs(tmp_path)
        return [(a.uri, a.digest, a.identity, a.size, a.count) for a in run.accesses]

    return spool_and_read


def test_uniform_batch_leaves_out_identities_and_counts(read_back, batch_attributes):
    paths = ["/data/a.bin", "/data/b c.bin", "/data/é%.bin"]
    attributes = batch_attributes("/data", [_record(p) for p in paths], PID)
    assert attributes[attr.PROVENANCE_ARTIFACTS_URI] == [file_uri(p) for p in paths]
    assert attributes[attr.PROVENANCE_ARTIFACT_IDENTITY] == "content"
    assert attr.PROVENANCE_ARTIFACTS_IDENTITY not in attributes
    assert attr.PROVENANCE_ARTIFACTS_COUNT not in attributes
    assert attributes[attr.PROVENANCE_IO_COUNT] == 3
    assert read_back(attributes) == [
        (file_uri(p), "blake3:" + "a" * 64, "content", 10, 1) for p in paths
    ]


def test_mixed_batch_keeps_its_arrays(read_back, batch_attributes):
    records = [_record("/data/a"), _record("/data/b", identity="stat", count=3)]
    attributes = batch_attributes("/data", records, PID)
    assert attributes[attr.PROVENANCE_ARTIFACTS_IDENTITY] == ["content", "stat"]
    assert attributes[attr.PROVENANCE_ARTIFACTS_COUNT] == [1, 3]
    assert attr.PROVENANCE_ARTIFACT_IDENTITY not in attributes
    assert attributes[attr.PROVENANCE_IO_COUNT] == 4
    assert read_back(attributes) == [
        (file_uri("/data/a"), "blake3:" + "a" * 64, "content", 10, 1),
        (file_uri("/data/b"), None, "stat", 10, 3),
    ]


def test_files_in_the_root_directory(batch_attributes):
    assert directory_of("/a.bin") == "/"
    assert directory_of("/x/y/a.bin") == "/x/y"
    attributes = batch_attributes("/", [_record("/a.bin"), _record("/b c")], PID)
    assert attributes[attr.PROVENANCE_ARTIFACTS_URI] == [file_uri("/a.bin"), file_uri("/b c")]


def test_names_that_need_quoting_have_the_uris_of_single_files(batch_attributes):
    # Spaces, percent signs, non-ASCII and undecodable bytes (lone surrogates, as os.fsdecode
    # gives them), in the name and in the directory; a record without a stat key has size 0.
    for directory in ("/data", "/dätä 1", "/raw\udcff"):
        names = ["plain-1.bin", "b c", "é%.bin", "bad\udce9name", "a+b=c~d@e", "q?x#y"]
        records = [_record(f"{directory}/{name}") for name in names]
        records.append(Record("read", f"{directory}/no-key"))
        attributes = batch_attributes(directory, records, PID)
        assert attributes[attr.PROVENANCE_ARTIFACTS_URI] == [file_uri(r.path) for r in records]
        assert attributes[attr.PROVENANCE_ARTIFACTS_SIZE] == [10] * len(names) + [0]
        assert attributes[attr.PROVENANCE_ARTIFACTS_DIGEST] == ["blake3:" + "a" * 64] * len(names) + [""]
        assert attributes[attr.PROVENANCE_ARTIFACTS_IDENTITY] == ["content"] * len(names) + ["none"]


SUFFIXES = (".json", ".yaml", ".cfg")


def _flush_records() -> list:
    """A flush's records of every kind: small reads in three directories and the root (one
    path read twice, a config, non-ASCII and undecodable names, an unkeyed read), a large read,
    a write, object-store reads (a class of their own), more small reads than one batch holds."""
    from clew.instrumentation._objects import ObjectRecord

    large = Record("read", "/data/big.bin", (1, 2, _record_spans.BATCH_MAX_SIZE, 3))
    write = Record("write", "/data/out.json", (1, 3, 10, 3))
    small = [_record(p) for p in ("/data/a", "/other/b.yaml", "/data/c", "/d", "/data/a",
                                  "/dätä/é%.bin", "/raw\udcff/bad\udce9name.json")]
    for index, record in enumerate(small):
        record.first_ns, record.last_ns = 1_000 + index * 7 % 5, 2_000 - index * 3 % 4
    small[2].identity, small[2].count = "stat", 3
    unkeyed = Record("read", "/data/e")  # no stat key: batched all the same
    objects = [ObjectRecord("read", "s3", "bucket", name) for name in ("p/x", "p/y", "q/z")]
    records = [small[0], large, small[1], write, *objects, small[2], small[3], unkeyed, small[4],
               small[5], small[6]]
    return records + [_record(f"/many/{index}") for index in range(_record_spans.BATCH_MAX_RECORDS + 3)]


@pytest.mark.parametrize("in_c", [True, False], ids=["in C", "in Python"])
def test_records_sorted_into_spans(in_c: bool):
    if in_c and _record_spans._read_batches is None:
        pytest.skip("clew.instrumentation._read_batches was not built")
    records = _flush_records()
    small0, large, small1, write, *objects = records[:7]
    small2, small3, unkeyed, small4, small5, small6 = records[7:13]
    many = records[13:]

    plan = _record_spans.plan_flush(records, SUFFIXES, in_c=in_c)

    assert plan.reads == [r for r in records if r.operation == "read" and r.key is not None]
    assert plan.configs == [small1, small6]
    assert plan.singles == [large, write]
    assert [b if type(b) is list else b[0] for b in plan.batches] == [
        [small0, small2, unkeyed], [small4],  # a path once per batch
        [small1], objects[:2], [objects[2]], [small3], [small5], [small6],
        many[:_record_spans.BATCH_MAX_RECORDS], many[_record_spans.BATCH_MAX_RECORDS:],
    ]
    first = plan.batches[0]
    assert first[1] == "/data"
    assert first[2:] == (
        [file_uri(r.path) for r in first[0]], ["blake3:" + "a" * 64] * 2 + [""], [10, 10, 0],
        ["content", "stat", "none"], [1, 3, 1],
        min(r.first_ns for r in first[0]), max(r.last_ns for r in first[0]),
    )
    assert not plan.linked


def test_a_flush_plan_is_the_same_in_c_and_in_python():
    if _record_spans._read_batches is None:
        pytest.skip("clew.instrumentation._read_batches was not built")
    records = _flush_records()
    records[-1].producer = ("a producer", None)
    in_c = _record_spans.plan_flush(records, SUFFIXES)
    assert in_c == _record_spans.plan_flush(records, SUFFIXES, in_c=False)
    assert in_c.linked
