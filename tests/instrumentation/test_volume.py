"""No provenance record is dropped under load: a program makes 200,000 records as fast as it
can and every one is in the spool.

Each test runs at two scales: a smaller one, which the default `make test` (CI)
runs, and the full one, marked slow (`make test PYTEST_MARKERS=slow`). Most of the full
scale's time is making and deleting its files.
"""

from __future__ import annotations

import os
import shutil

import pytest

from clew.semconv import environment

pytestmark = pytest.mark.integration

FILES_PER_DIRECTORY = 1000


def at_scales(ci: int, full: int) -> pytest.MarkDecorator:
    """Parametrize `scale` with the scale CI runs and the full one, marked slow."""
    return pytest.mark.parametrize("scale", [ci, pytest.param(full, marks=pytest.mark.slow)])


@pytest.fixture
def many_files(workdir, scale):
    """`scale` distinct small files, 1,000 a directory, made outside clew."""
    data = workdir / "data"
    for d in range(scale // FILES_PER_DIRECTORY):
        directory = data / f"{d:03d}"
        directory.mkdir(parents=True)
        for i in range(FILES_PER_DIRECTORY):
            fd = os.open(directory / f"{i:04d}.bin", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"%d/%d" % (d, i))
            os.close(fd)
    yield data
    shutil.rmtree(data, ignore_errors=True)  # don't leave up to 200,000 files in the temp dir


@at_scales(10_000, 20_000)
def test_reads_faster_than_the_flush_interval_are_spilled_and_all_arrive(
    workdir, run_instrumented, spool, scale
):
    """Many distinct files read with an hour-long flush interval: the records are not held
    until exit (they reach the spool in several writes while the program runs, which is what
    bounds clew's memory), and every one arrives. Both scales are more than twice the
    recorder's spill size (4,096 records)."""
    data = workdir / "spill"
    data.mkdir()
    for i in range(scale):
        (data / f"{i:05d}.bin").write_bytes(b"%d" % i)
    result = run_instrumented(
        f"""
        for i in range({scale}):
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
    assert len(uris) == scale
    assert all(a.digest for a in reads if a.uri.startswith(prefix))
    assert len(spool.lines()) > 2, "the records were spilled before exit, not all held"


@at_scales(20_000, 200_000)
def test_every_read_of_many_files_reaches_the_spool(many_files, run_instrumented, spool, scale):
    """Distinct files read in a tight loop: one read record a file in the spool, each with a
    content digest."""
    result = run_instrumented(
        f"""
        for d in range({scale // FILES_PER_DIRECTORY}):
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
    assert len(uris) == scale
    assert all(uri.startswith(prefix) for uri in uris)
    assert len(reads) == scale, "one record per file"
    assert all(a.digest and a.identity == "content" for a in reads)
