"""No provenance record is dropped under load: a program makes
200,000 records as fast as it can and every one is in the spool.
"""

from __future__ import annotations

import os
import shutil

import pytest

from clew.semconv import environment

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


SPILLED_FILES = 20_000


@pytest.mark.slow
def test_reads_faster_than_the_flush_interval_are_spilled_and_all_arrive(
    workdir, run_instrumented, spool
):
    """20,000 distinct files read with an hour-long flush interval: the records are not held
    until exit (they reach the spool in several writes while the program runs, which is what
    bounds clew's memory), and every one arrives."""
    data = workdir / "spill"
    data.mkdir()
    for i in range(SPILLED_FILES):
        (data / f"{i:05d}.bin").write_bytes(b"%d" % i)
    result = run_instrumented(
        f"""
        for i in range({SPILLED_FILES}):
            with open(f"spill/{{i:05d}}.bin", "rb") as handle:
                handle.read()
        print("done")
        """,
        env={environment.CLEW_FLUSH_INTERVAL: "3600"},
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    reads = [a for a in spool.run().accesses if a.operation == "read"]
    prefix = spool.uri(data) + "/"
    uris = {a.uri for a in reads if a.uri.startswith(prefix)}
    assert len(uris) == SPILLED_FILES
    assert all(a.digest for a in reads if a.uri.startswith(prefix))
    assert len(spool.lines()) > 2, "the records were spilled before exit, not all held"


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
