"""A child's notes sorted into an image's batches (`_preload_images.ProcessImage.notes`: in C,
`_preload_sort.c`, and in Python where it was not built), and the batched spans they make
(`_record_spans.FileBatch`): small reads by directory, each file once with its count; writes
counted by path until the child has ended; everything else a record of its own, in the order
the notes came (a delete after a write, a temporary file renamed into place).
"""

from __future__ import annotations

import pytest
from opentelemetry.context import Context

from clew.instrumentation import _preload, _preload_images, _record_spans
from clew.semconv import attributes as attr
from clew.semconv.uris import file_uri

pytest.importorskip("clew.instrumentation._preload_notes", reason="not built")
_preload.library()  # loads the C reader and sorter (_preload._sort_notes)

R, W, N, D = (_preload_images.READ, _preload_images.WRITE, _preload_images.RENAME,
              _preload_images.DELETE)
SMALL = (1, 10, 100, 7)
BIG = (1, 11, 5 << 20, 7)


def key(inode: int, size: int = 100, mtime: int = 7) -> tuple[int, int, int, int]:
    return (1, inode, size, mtime)


NOTES = [  # (operation, key, path, second path)
    (R, key(1), "/data/a/x.bin", None),
    (R, key(2), "/data/a/y.bin", None),
    (R, key(1), "/data/a/x.bin", None),  # the same version again: counted
    (R, key(3), "/data/b/z.bin", None),
    (R, key(4), "/x.bin", None),  # in the root directory
    (R, key(1, mtime=8), "/data/a/x.bin", None),  # another version: a record of its own
    (R, BIG, "/data/a/big.bin", None),  # large: a record of its own
    (R, key(5), "/excluded/q.bin", None),
    (W, None, "/out/c.bin", None),
    (W, None, "/out/c.bin", None),
    (W, None, "/out/gone.bin", None),
    (D, key(6), "/out/gone.bin", None),  # written, then removed
    (W, None, "/out/gone.bin", None),  # and written again: a new write
    (W, None, "/out/.t.XyZ", None),
    (N, key(7), "/out/t.bin", "/out/.t.XyZ"),  # written and renamed into place
    (N, key(8), "/out/in.bin", "/excluded/from.bin"),  # moved in from an excluded place
]


def sorted_image(in_c: bool, excluded: tuple[str, ...] | None = None,
                 ) -> _preload_images.ProcessImage:
    image = _preload_images.ProcessImage(42, Context(), excluded)
    operations = bytes(note[0] for note in NOTES)
    keys, paths, seconds = ([note[i] for note in NOTES] for i in (1, 2, 3))
    prefixes = excluded or ("/excluded/",)  # a filter's, and its prefixes when they decide
    image.notes(operations, keys, paths, seconds, lambda p: not p.startswith(prefixes),
                _preload._sort_notes if in_c else None)
    return image


def summary(image: _preload_images.ProcessImage) -> dict:
    return {
        "batches": {d: (b.paths, b.keys, b.counts, b.digests)
                    for d, b in image.read_batches.items()},
        "reads": [(r.path, r.key, r.count) for r in image.reads.values()],
        "writes": image.writes,
        "done": [(r.operation, r.path, r.key, r.count, r.source) for r in image.done],
    }


@pytest.mark.parametrize(("in_c", "excluded"), [(True, None), (True, ("/excluded/",)),
                                                (False, None), (False, ("/excluded/",))],
                         ids=["C", "C with prefixes", "Python", "Python with prefixes"])
def test_notes_sorted_into_batches_and_records_in_their_order(
        in_c: bool, excluded: tuple[str, ...] | None) -> None:
    """The same whether the filter is called for each path or its prefixes checked in C."""
    assert summary(sorted_image(in_c, excluded)) == {
        "batches": {
            "/data/a": (["/data/a/x.bin", "/data/a/y.bin"], [key(1), key(2)], [2, 1],
                        [None, None]),
            "/data/b": (["/data/b/z.bin"], [key(3)], [1], [None]),
            "/": (["/x.bin"], [key(4)], [1], [None]),
        },
        "reads": [("/data/a/x.bin", key(1, mtime=8), 1), ("/data/a/big.bin", BIG, 1)],
        "writes": {"/out/c.bin": 2, "/out/gone.bin": 1},
        "done": [
            ("write", "/out/gone.bin", key(6), 1, None),
            ("delete", "/out/gone.bin", key(6), 1, None),
            ("write", "/out/t.bin", key(7), 1, None),
            ("write", "/out/in.bin", key(8), 1, None),
        ],
    }


def test_c_and_python_sort_alike() -> None:
    assert summary(sorted_image(True)) == summary(sorted_image(False))
    assert summary(sorted_image(True, ("/excluded/", "/data/b/"))) == summary(
        sorted_image(False, ("/excluded/", "/data/b/"))) != summary(sorted_image(True))


def batch(count: int) -> _preload_images.ChildBatch:
    made = _preload_images.ChildBatch("read", "/d ir", 42, Context())
    made.paths = [f"/d ir/f {i}.bin" for i in range(count)]
    made.keys = [key(i) for i in range(count)]
    made.digests = [f"blake3:{i:064x}" if i % 2 else None for i in range(count)]
    made.counts = [1 + i % 3 for i in range(count)]
    made.identities = ["content" if i % 2 else "stat" for i in range(count)]
    return made


@pytest.mark.parametrize("in_c", [True, False], ids=["C", "Python"])
def test_a_batch_span_has_the_arrays_of_its_files(in_c: bool) -> None:
    attributes = _record_spans.FileBatch.span_attributes(batch(3), 42, in_c=in_c)
    # as a file's own span names it (its host, its name quoted)
    assert attributes[attr.PROVENANCE_ARTIFACTS_URI] == [file_uri(f"/d ir/f {i}.bin") for i in range(3)]
    assert attributes[attr.PROVENANCE_ARTIFACTS_URI][0].endswith("/d%20ir/f%200.bin")
    assert attributes[attr.PROVENANCE_ARTIFACTS_DIGEST] == ["", f"blake3:{1:064x}", ""]
    assert attributes[attr.PROVENANCE_ARTIFACTS_SIZE] == [100, 100, 100]
    assert attributes[attr.PROVENANCE_ARTIFACTS_IDENTITY] == ["stat", "content", "stat"]
    assert attributes[attr.PROVENANCE_ARTIFACTS_COUNT] == [1, 2, 3]
    assert attributes[attr.PROVENANCE_IO_COUNT] == 6
    assert attributes[attr.FILE_DIRECTORY] == "/d ir"
    assert attributes[attr.PROCESS_PID] == 42


def test_a_batch_splits_into_spans_of_at_most_the_batch_limit() -> None:
    whole = batch(_record_spans.BATCH_MAX_RECORDS * 2 + 1)
    parts = whole.split()
    assert [len(part.paths) for part in parts] == [_record_spans.BATCH_MAX_RECORDS] * 2 + [1]
    assert [p for part in parts for p in part.paths] == whole.paths
    assert [c for part in parts for c in part.counts] == whole.counts
    assert all(part.pid == 42 and part.parent is whole.parent for part in parts)


@pytest.mark.parametrize("in_c", [True, False], ids=["C", "Python"])
def test_a_batch_finds_the_stamps_of_its_files_and_links_them(tmp_path, in_c: bool) -> None:
    import os

    from opentelemetry.trace import SpanContext, TraceFlags

    from clew.instrumentation import _stamps
    from clew.semconv.environment import STAMP_XATTR

    producer = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags.SAMPLED)
    stamped, plain = tmp_path / "stamped.bin", tmp_path / "plain.bin"
    stamped.write_bytes(b"s")
    plain.write_bytes(b"p")
    try:
        os.setxattr(stamped, STAMP_XATTR, _stamps.encode(producer).encode())
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    made = _preload_images.ChildBatch("read", str(tmp_path), 42, Context())
    made.paths = [str(plain), str(stamped), str(tmp_path / "gone.bin")]
    made.find_stamps(in_c=in_c)
    assert list(made.producers) == [str(stamped)]
    (link,) = made.file_links()
    assert link.context.span_id == 0x5678
    assert link.attributes[attr.PROVENANCE_ARTIFACT_URI] == file_uri(str(stamped))


@pytest.mark.parametrize("in_c", [True, False], ids=["C", "Python"])
def test_written_files_batched_as_they_are_once_the_child_ended(tmp_path, in_c: bool) -> None:
    """Each file written into its directory's batch with its key now, its count and the
    version it is a whole copy of (only while still that version); a large one, and a file
    gone since, as the reads: the large one a record of its own, the gone one keyless."""
    import os

    (tmp_path / "d").mkdir()
    small, other, large = tmp_path / "d" / "small.bin", tmp_path / "other.bin", tmp_path / "big.bin"
    small.write_bytes(b"s" * 10)
    other.write_bytes(b"o")
    large.write_bytes(b"b" * _record_spans.BATCH_MAX_SIZE)
    image = _preload_images.ProcessImage(42, Context())
    paths = [str(small), str(other), str(large), str(tmp_path / "d" / "gone.bin")]
    for path in paths + [str(small)]:
        image.note(W, None, path, None)

    def key(path):
        result = os.stat(path)
        return (result.st_dev, result.st_ino, result.st_size, result.st_mtime_ns)

    source = (1, 2, 10, 3)
    copies = {key(small): source}
    records = image.records(copies, _preload._stat_keys,
                            _preload._batch_writes if in_c else None)
    batches = {r.path: (r.paths, r.keys, r.counts, r.copies) for r in records if r.batched}
    assert batches == {
        str(tmp_path / "d"): ([str(small), paths[3]], [key(small), None], [2, 1], [source, None]),
        str(tmp_path): ([str(other)], [key(other)], [1], [None]),
    }
    singles = [(r.operation, r.path, r.key, r.count) for r in records if not r.batched]
    assert singles == [("write", str(large), key(large), 1)]


def test_excluded_prefixes_checked_in_c_as_startswith() -> None:
    """The prefixes compared as bytes where path and prefix are one byte a character, else as
    str: a path shorter than a prefix, one equal to it, Latin-1 and undecodable names
    (os.fsdecode's surrogates) and a prefix of wider characters decide as startswith does."""
    paths = ["/ex", "/excluded/", "/excluded/q.bin", "/excludedx.bin", "/données/é.bin",
             "/donn\udcc3\udca9es/a.bin", "/data/\u20ac/a.bin", "/data/a.bin"]
    prefixes = ("/excluded/", "/données/", "/donn\udcc3", "/data/\u20ac/")
    found = {}
    for in_c in (True, False):
        image = _preload_images.ProcessImage(42, Context(), prefixes)
        image.notes(bytes([R] * len(paths)), [key(i) for i in range(len(paths))], paths,
                    [None] * len(paths), lambda p: not p.startswith(prefixes),
                    _preload._sort_notes if in_c else None)
        found[in_c] = sorted(p for b in image.read_batches.values() for p in b.paths)
    kept = sorted(p for p in paths if not p.startswith(prefixes))
    assert found[True] == found[False] == kept == ["/data/a.bin", "/ex", "/excludedx.bin"]
