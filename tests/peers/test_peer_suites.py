"""s3fs's and fsspec's own test suites pass and fail alike with and without clew.

CI runs (a few minutes) a selection of the s3fs suite that covers what clew could change:
object metadata (xattrs), appends, puts, copies, pipes, cat and info; and every fsspec
abstract test on the local and memory filesystems. The whole s3fs suite (~6 min a run on 2
cores) is marked slow, with the other full-scale runs:

    make test PYTEST_MARKERS=slow

The s3fs suite starts moto on 127.0.0.1:5555 and :5556 itself: the two runs take turns, and
the tests of this file run on one xdist worker (`make test` distributes whole files), so no
other run of the suite overlaps them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clew.semconv import attributes as attr

pytestmark = [pytest.mark.integration, pytest.mark.peers]

S3FS_SELECTION = "xattr or metadata or append or put or copy or pipe or cat or info"
# Tests of the selection that must pass plainly, so that an equal comparison means something.
S3FS_WITNESSES = ("test_xattr", "test_append")


@pytest.mark.parametrize("tests", [
    pytest.param(["s3fs/tests/test_s3fs.py", "-k", S3FS_SELECTION], id="selection"),
    pytest.param(["s3fs/tests"], id="whole", marks=pytest.mark.slow),
])
def test_s3fs_suite_sees_no_difference_under_clew(s3fs_source: Path, run_suite, spool,
                                                  tests: list[str]):
    plain = run_suite(s3fs_source, *tests, instrumented=False)
    for witness in S3FS_WITNESSES:
        assert plain.outcomes.get(f"s3fs.tests.test_s3fs::{witness}") == "passed", plain.output
    clew = run_suite(s3fs_source, *tests, instrumented=True)
    assert not plain.differences(clew), plain.differences(clew) + "\n" + clew.output
    # clew did record the suite's S3 traffic: the runs compared the same code with and without it.
    assert any(s.attributes.get(attr.PROVENANCE_OBJECT_STORE) == "s3" for s in spool.spans())


def test_fsspec_abstract_suite_sees_no_difference_under_clew(fsspec_backends: Path, run_suite,
                                                             spool):
    plain = run_suite(fsspec_backends, "test_fsspec_backends.py", instrumented=False)
    assert list(plain.outcomes.values()).count("passed") > 100, plain.output
    clew = run_suite(fsspec_backends, "test_fsspec_backends.py", instrumented=True)
    assert not plain.differences(clew), plain.differences(clew) + "\n" + clew.output
    assert any(s.attributes.get(attr.PROVENANCE_OBJECT_STORE) == "memory" for s in spool.spans())
