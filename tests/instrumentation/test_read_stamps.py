"""A flush finds the producer stamps on the files it read (`_record_spans.find_stamps`), in C
where it was built and in Python: the stamp of every stamped file, None for every other one,
whatever else the file's xattrs hold."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from opentelemetry.trace import SpanContext, TraceFlags

from clew.instrumentation import _record_spans, _stamps
from clew.instrumentation._record_spans import Record
from clew.semconv.environment import STAMP_XATTR

PRODUCER = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags.SAMPLED)
DIGEST = "blake3:" + "b" * 64


@pytest.fixture(params=[True, False], ids=["in C", "in Python"])
def in_c(request) -> bool:
    if request.param and _record_spans._read_batches is None:
        pytest.skip("clew.instrumentation._read_batches was not built")
    return request.param


def test_stamps_found_on_stamped_files_only(tmp_path: Path, in_c: bool) -> None:
    files = {name: tmp_path / name for name in
             ("stamped", "plain", "other xattr", "many xattrs", "not a stamp", "link",
              "stamped é")}
    for path in files.values():
        if path.name != "link":
            path.write_bytes(b"x")
    try:
        os.setxattr(files["stamped"], STAMP_XATTR, _stamps.encode(PRODUCER, DIGEST).encode())
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    os.setxattr(files["stamped é"], STAMP_XATTR, _stamps.encode(PRODUCER, DIGEST).encode())
    os.setxattr(files["other xattr"], "user.other", b"1")
    os.setxattr(files["not a stamp"], STAMP_XATTR, b"not a traceparent")
    os.setxattr(files["many xattrs"], STAMP_XATTR, _stamps.encode(PRODUCER).encode())
    # As many names as the filesystem holds (past C's 4 KiB listxattr buffer where it can:
    # then Python reads the list in full), the stamp among them.
    for index in range(100):
        try:
            os.setxattr(files["many xattrs"], f"user.filler-{index:03d}-{'n' * 40}", b"")
        except OSError:
            break
    files["link"].symlink_to(files["stamped"])  # the stamp of the file it points to
    records = [Record("read", str(path), (1, 2, 1, 3)) for path in files.values()]
    records += [Record("read", str(tmp_path / "gone"), (1, 2, 1, 3)),
                Record("read", "/nul\0in name", (1, 2, 1, 3))]
    for record in records:
        record.producer = (PRODUCER, "left over")  # every read's producer is set anew

    _record_spans.find_stamps(records, in_c=in_c)

    found = {Path(r.path).name: r.producer for r in records}
    assert found == {
        "stamped": (PRODUCER, DIGEST), "plain": None, "other xattr": None,
        "many xattrs": (PRODUCER, None), "not a stamp": None, "link": (PRODUCER, DIGEST),
        "gone": None, "nul\0in name": None, "stamped é": (PRODUCER, DIGEST),
    }


def test_a_read_the_hook_found_unstamped_is_not_asked_again(tmp_path: Path, in_c: bool) -> None:
    """The C audit hook asks a settled file it hashed for its stamp (`Record.unstamped`): its
    answer stands, the flush reads no stamp for it, whatever the path carries by then."""
    path = tmp_path / "stamped"
    path.write_bytes(b"x")
    try:
        os.setxattr(path, STAMP_XATTR, _stamps.encode(PRODUCER, DIGEST).encode())
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    asked, answered = (Record("read", str(path), (1, 2, 1, 3)) for _ in range(2))
    answered.unstamped = True
    answered.producer = (PRODUCER, "left over")

    _record_spans.find_stamps([asked, answered], in_c=in_c)

    assert (asked.producer, answered.producer) == ((PRODUCER, DIGEST), None)
