"""The digest cache's lines, written at each flush: the same bytes in the file in C (where it
was built) and in Python, for any key a stat can give (a file from before 1970 has a negative mtime; an
inode number may use all 64 bits)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clew.instrumentation import _file_digests
from clew.instrumentation._file_digests import DigestCache, cache_lines, write_cache_lines

DIGEST = "blake3:" + "c" * 64
KEYS = [
    (64768, 1_000_123, 16384, 1_764_170_000_123_456_789),
    (0, 0, 0, 0),
    (1, 2, 3, -86_400_000_000_001),  # before 1970
    (2**63 - 1, -(2**63), 7, 9),
    (5, 2**64 - 1, 11, 13),  # beyond a signed 64-bit int
]


def _written(tmp_path: Path, entries: list, in_c: bool) -> bytes:
    path = tmp_path / f"lines-{in_c}-{len(entries)}"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC)
    try:
        write_cache_lines(fd, entries, in_c=in_c)
    finally:
        os.close(fd)
    return path.read_bytes()


@pytest.mark.parametrize("in_c", [True, False], ids=["in C", "in Python"])
def test_lines_are_the_keys_and_digests(tmp_path: Path, in_c: bool) -> None:
    if in_c and _file_digests._cache_lines_into is None:
        pytest.skip("clew.instrumentation._read_batches was not built")
    entries = [item for key in KEYS for item in (key, DIGEST)]
    expected = "".join(f"{d} {i} {s} {m} {DIGEST}\n" for d, i, s, m in KEYS).encode()
    assert _written(tmp_path, entries, in_c) == expected
    for key in KEYS:  # one at a time too: a key C leaves to Python, alone
        line = " ".join(map(str, (*key, DIGEST))) + "\n"
        assert _written(tmp_path, [key, DIGEST], in_c) == line.encode()
    assert _written(tmp_path, [], in_c) == b""
    with pytest.raises(UnicodeEncodeError):  # what no digest is: refused, as before
        _written(tmp_path, [KEYS[0], "blake3:é"], in_c)


def test_c_writes_the_bytes_python_writes_across_its_buffer(tmp_path: Path) -> None:
    """More lines than C's buffer holds, a key C leaves to Python among them and a digest
    longer than the buffer: the file is the same bytes in C and in Python."""
    if _file_digests._cache_lines_into is None:
        pytest.skip("clew.instrumentation._read_batches was not built")
    entries: list = []
    for index in range(3_000):
        key = KEYS[4] if index == 1_234 else (64768, 1_000_000 + index, 16384, 1_764_170_000 + index)
        entries += [key, DIGEST if index != 2_000 else "blake3:" + "e" * 70_000]
    assert len(_written(tmp_path, entries, True)) > 2 * _file_digests._LINES_BUFFER_SIZE
    assert _written(tmp_path, entries, True) == _written(tmp_path, entries, False) == cache_lines(entries)


def test_saved_entries_are_found_by_the_next_process(tmp_path: Path) -> None:
    cache = DigestCache(tmp_path)
    for key in KEYS:
        cache.put(key, DIGEST)
    cache.save()
    again = DigestCache(tmp_path)
    assert [again.get(key) for key in KEYS] == [DIGEST] * len(KEYS)


def test_known_digests_are_remembered_or_a_whole_copys_source(tmp_path: Path) -> None:
    """`known` and `put_all` (a child's batch at once): a version's own digest, else that of
    the version it is a whole copy of, then remembered for it too (and saved); None when
    neither is known."""
    cache = DigestCache(tmp_path)
    source, copy, other, remembered = KEYS[0], KEYS[1], KEYS[2], KEYS[3]
    cache.put(source, DIGEST)
    cache.put(remembered, "blake3:" + "d" * 64)
    assert cache.known([copy, other, remembered], [source, None, source]) == [
        DIGEST, None, "blake3:" + "d" * 64,
    ]
    assert cache.known([other], None) == [None]
    cache.put_all([other, KEYS[4]], [DIGEST, None])  # a file that could not be hashed: None
    assert cache.known([other, KEYS[4]], None) == [DIGEST, None]
    cache.save()
    again = DigestCache(tmp_path)
    assert [again.get(copy), again.get(other), again.get(KEYS[4])] == [DIGEST, DIGEST, None]
