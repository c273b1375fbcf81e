"""A digest or a content is only ever that of the version a record names
(`_file_digests.hash_file`, `read_version`): a file that is another version by the time it is
read gives none, whatever it became."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest

from clew.instrumentation._file_digests import hash_file, read_version, stat_key

SMALL, LARGE = b"small file\n" * 10, os.urandom((1 << 20) + 5)


@pytest.fixture(params=[SMALL, LARGE], ids=["small", "large"])
def content(request: pytest.FixtureRequest) -> bytes:
    return request.param


def test_the_version_named_is_hashed_and_read(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    key = stat_key(path.stat())
    assert hash_file(str(path), key) == "blake3:" + blake3.blake3(content).hexdigest()
    assert read_version(str(path), key) == content


def test_a_file_rewritten_since_gives_nothing(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    key = stat_key(path.stat())
    path.write_bytes(content[::-1])  # the same size, in place
    os.utime(path, ns=(key[3] + 1_000_000, key[3] + 1_000_000))  # mtime moved, as a write does
    assert hash_file(str(path), key) is None
    assert read_version(str(path), key) is None


def test_a_file_replaced_since_gives_nothing(tmp_path: Path, content: bytes) -> None:
    """Another inode at the path, even of the same size and mtime."""
    path, other = tmp_path / "data.bin", tmp_path / "other.bin"
    path.write_bytes(content)
    key = stat_key(path.stat())
    other.write_bytes(content)
    os.utime(other, ns=(key[3], key[3]))
    os.replace(other, path)
    assert hash_file(str(path), key) is None


def test_a_fifo_in_its_place_gives_nothing_without_waiting(tmp_path: Path) -> None:
    """No writer ever opens it: a blocking open or read would hang the program."""
    path = tmp_path / "data.bin"
    path.write_bytes(SMALL)
    key = stat_key(path.stat())
    path.unlink()
    os.mkfifo(path)
    assert hash_file(str(path), key) is None
    assert read_version(str(path), key) is None
