"""No provenance record is dropped under load (issue 2, "How we will know"): a program makes
200,000 records as fast as it can and every one is in the spool.
"""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.integration

DIRECTORIES = 200
FILES_PER_DIRECTORY = 1000
RECORDS = DIRECTORIES * FILES_PER_DIRECTORY


@pytest.fixture
def many_files(workdir):
    """200,000 distinct small files in 200 directories, made outside clew."""
    data = workdir / "data"
    for d in range(DIRECTORIES):
        directory = data / f"{d:03d}"
        directory.mkdir(parents=True)
        for i in range(FILES_PER_DIRECTORY):
            fd = os.open(directory / f"{i:04d}.bin", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"%d/%d" % (d, i))
            os.close(fd)
    yield data
    shutil.rmtree(data, ignore_errors=True)  # don't leave 200,000 files in the temp dir


def test_200000_reads_all_reach_the_spool(many_files, run_instrumented, spool):
    """200,000 distinct files read in a tight loop: 200,000 distinct read records in the
    spool, each with a content digest."""
    result = run_instrumented(
        f"""
        for d in range({DIRECTORIES}):
            for i in range({FILES_PER_DIRECTORY}):
                with open(f"data/{{d:03d}}/{{i:04d}}.bin", "rb") as handle:
                    handle.read()
        print("done")
        """,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    run = spool.run()
    reads = [a for a in run.accesses if a.operation == "read"]
    uris = {a.uri for a in reads}
    prefix = spool.uri(many_files) + "/"
    assert len(uris) == RECORDS
    assert all(uri.startswith(prefix) for uri in uris)
    assert len(reads) == RECORDS, "one record per file"
    assert all(a.digest and a.identity == "content" for a in reads)
