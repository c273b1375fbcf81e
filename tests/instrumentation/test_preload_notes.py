"""The reader of the LD_PRELOAD library's record files (`_preload_notes.c`): records laid out
as `_preload_shim.c` writes them come back as notes with their names decoded as os.fsdecode
does and normalised, whole copies go into the copies map, and reading stops where the written
part ends, to go on from there next time. The files a child wrote are identified by stat, as
they are once it has ended.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

reader = pytest.importorskip("clew.instrumentation._preload_notes", reason="not built")

# u32 length, u8 operation, 3 pad, u64 dev, u64 ino, i64 size, i64 mtime (_preload_shim.c)
HEADER = struct.Struct("=IB3xQQqq")


def notes(data: bytes | bytearray, offset: int, copies: dict) -> tuple[list, int]:
    """What `read` found, one (operation, key, path, second path) per record, and where it
    stopped."""
    operations, keys, paths, seconds, offset = reader.read(data, offset, copies)
    return list(zip(operations, keys, paths, seconds)), offset


def record(operation: str, key: tuple[int, int, int, int], *names: bytes) -> bytes:
    """One record as the library appends it: names NUL-terminated, the whole 8-byte aligned."""
    body = b"".join(name + b"\0" for name in names)
    length = (HEADER.size + len(body) + 7) // 8 * 8
    return HEADER.pack(length, ord(operation), *key) + body.ljust(length - HEADER.size, b"\0")


def test_notes_come_back_decoded_normalised_and_copies_apart() -> None:
    key = (2049, 77, 1024, 1_796_620_091_835_099_321)
    data = b"".join([
        record("R", key, b"/data/in/../train.csv"),
        record("W", (2049, 78, 0, 5), b"/out//\xff\xfe.bin"),
        record("N", (2049, 78, 9, 6), b"/out/final.bin", b"/out/.final.bin.XyZ12"),
        record("N", (2049, 79, 9, 7), b"/out/moved.bin", b""),
        record("D", (2049, 80, 3, 8), b"/tmp/gone/"),
        record("C", (2049, 81, 1024, 9), b"2049 77 1024 1796620091835099321"),
        record("C", (2049, 82, 4096, 9), b"2049 77 1024 1796620091835099321"),  # sizes differ
        record("C", (2049, 83, 1024, 9), b"not a key"),
    ])
    copies: dict = {}
    found, offset = notes(data, 0, copies)
    assert found == [
        (ord("R"), key, "/data/train.csv", None),
        (ord("W"), None, "/out/\udcff\udcfe.bin", None),  # identified once written
        (ord("N"), (2049, 78, 9, 6), "/out/final.bin", "/out/.final.bin.XyZ12"),
        (ord("N"), (2049, 79, 9, 7), "/out/moved.bin", None),
        (ord("D"), (2049, 80, 3, 8), "/tmp/gone", None),
    ]
    assert copies == {(2049, 81, 1024, 9): key}
    assert offset == len(data)


def test_reading_stops_where_the_written_part_ends_and_goes_on_from_there() -> None:
    first = record("R", (1, 2, 3, 4), b"/a.txt")
    second = record("W", (1, 5, 0, 6), b"/b.txt")
    # The second record reserved but not finished: its operation byte, stored last, still 0.
    unfinished = second[:4] + b"\0" + second[5:]
    mapping = bytearray(first + unfinished + bytes(4096))
    found, offset = notes(mapping, 0, {})
    assert found == [(ord("R"), (1, 2, 3, 4), "/a.txt", None)] and offset == len(first)
    mapping[offset : offset + len(second)] = second
    found, offset = notes(mapping, offset, {})
    assert found == [(ord("W"), None, "/b.txt", None)]
    assert offset == len(first) + len(second)


def test_written_files_are_identified_as_they_are_now(tmp_path: Path) -> None:
    written = tmp_path / "out.bin"
    written.write_bytes(b"x" * 10)
    (tmp_path / "link").symlink_to(written)
    (tmp_path / "folder").mkdir()
    found = os.stat(written)
    key = (found.st_dev, found.st_ino, 10, found.st_mtime_ns)
    paths = [str(written), str(tmp_path / "link"), str(tmp_path / "folder"),
             str(tmp_path / "gone"), str(tmp_path / "\udcff.bin")]
    assert reader.stat_keys(paths) == [key, key, None, None, None]
    assert reader.stat_keys([]) == []


def test_read_files_come_back_whole_only_at_the_version_their_key_names(tmp_path: Path) -> None:
    kept, changed = tmp_path / "kept.bin", tmp_path / "changed.bin"
    kept.write_bytes(b"abc" * 1000)
    changed.write_bytes(b"old")
    keys = reader.stat_keys([str(kept), str(changed)])
    changed.write_bytes(b"new content")
    paths = [str(kept), str(changed), str(tmp_path / "gone"), str(tmp_path)]
    contents = reader.read_versions(paths, [*keys, keys[0], keys[0]])
    assert contents == [b"abc" * 1000, None, None, None]
    assert reader.read_versions([], []) == []


@pytest.mark.parametrize("enabled", [True, False], ids=["collector on", "collector off"])
def test_the_programs_collector_is_left_as_it_was(tmp_path: Path, enabled: bool) -> None:
    """The reader and `stat_keys` hold the collector's automatic passes off while they make
    keys (and around the one call into Python, a name to normalise, turn it back as it was):
    after, it is on or off as the program had it, and the keys are not tracked."""
    import gc

    (tmp_path / "a").write_bytes(b"x")
    data = b"".join([
        record("R", (1, 2, 3, 4), b"/data/in/../train.csv"),  # normalised: calls abspath
        record("R", (1, 5, 3, 4), b"/data/test.csv"),
    ])
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        found, _ = notes(data, 0, {})
        assert gc.isenabled() is enabled
        (key,) = reader.stat_keys([str(tmp_path / "a")])
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert [path for _, _, path, _ in found] == ["/data/train.csv", "/data/test.csv"]
    assert not any(gc.is_tracked(k) for _, k, _, _ in found) and not gc.is_tracked(key)
