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


@pytest.mark.parametrize("chunk", [1 << 20, 37], ids=["whole", "lines across reads"])
def test_the_file_loads_the_same_in_c_and_in_python(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """The cache file as C reads it (where it was built) holds the same entries, in the same
    generations and order, as Python's line-by-line reading: on the lines the cache writes,
    and on what it does not (numbers C leaves to Python, garbage, a torn last line)."""
    if _file_digests._add_lines is None:
        pytest.skip("clew.instrumentation._digest_cache_text was not built")
    monkeypatch.setattr(_file_digests, "MEMORY_ENTRIES", 7)  # generations turn over
    monkeypatch.setattr(_file_digests, "_LOAD_CHUNK", chunk)
    written = cache_lines([item for key in KEYS for item in (key, DIGEST)])
    written += cache_lines([item for n in range(20) for item in ((1, n, 2, 3), f"blake3:{n}")])
    odd = [
        b"1 2 3 4 blake3:again\n",  # a key seen before: the later digest wins
        b"+5 1_0 007 -0 blake3:signs\n",  # what int() takes and the cache never writes
        b"1\t2  3 4 blake3:spaces\r\n",
        b"9 9 9 9 blake3:\xe9t\xe9\n",  # not ASCII: decoded with replacement
        b"1 2 3 blake3:four-fields\n", b"x 2 3 4 blake3:not-a-number\n", b"\n", b"-\n",
        b"12345678901234567890123 1 1 1 blake3:long\n",  # beyond 64 bits
        b"3 3 3 3 blake3:torn",  # its writer crashed: no newline
    ]
    stop = _file_digests._add_lines(written, 0, 7, {}, {})[2]
    assert stop == written.index(b"\n%d " % KEYS[3][0]) + 1  # C reads what the cache writes
    (tmp_path / "digests-v1.txt").write_bytes(written + b"".join(odd))
    in_c = DigestCache(tmp_path)._load(in_c=True)
    in_python = DigestCache(tmp_path)._load(in_c=False)
    assert list(in_c.new.items()) == list(in_python.new.items())
    assert list(in_c.old.items()) == list(in_python.old.items())
    loaded = {**in_python.old, **in_python.new}
    assert loaded[(9, 9, 9, 9)] == "blake3:\ufffdt\ufffd"
    assert loaded[(1, 2, 3, 4)] == "blake3:spaces" and loaded[(5, 10, 7, 0)] == "blake3:signs"
    assert (3, 3, 3, 3) not in loaded and in_python.old  # the generations turned over


def test_a_cache_file_grown_too_large_keeps_only_what_memory_keeps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Appended to run after run, the file would grow without end, and every process that
    reads a file loads all of it: past _REWRITE_BYTES, the next save replaces it with the
    entries kept in memory (the newest, the new ones among them)."""
    monkeypatch.setattr(_file_digests, "MEMORY_ENTRIES", 10)
    path = tmp_path / "digests-v1.txt"
    path.write_bytes(cache_lines([x for n in range(100) for x in ((1, n, 2, 3), f"blake3:{n}")]))
    monkeypatch.setattr(_file_digests, "_REWRITE_BYTES", 1000)
    cache = DigestCache(tmp_path)
    assert cache.get((1, 99, 2, 3)) == "blake3:99"
    assert cache.get((1, 0, 2, 3)) is None  # one of the oldest: not kept in memory
    cache.put(KEYS[0], DIGEST)
    cache.save()
    rewritten = path.read_bytes()
    assert len(rewritten) < 1000 and list(tmp_path.iterdir()) == [path]  # no temporary left
    again = DigestCache(tmp_path)
    assert again.get(KEYS[0]) == DIGEST and again.get((1, 99, 2, 3)) == "blake3:99"
    again.put(KEYS[1], DIGEST)  # below the size now: appended to, as usual
    again.save()
    assert path.read_bytes() == rewritten + cache_lines([KEYS[1], DIGEST])
