"""Native code inside the Python process (CLEW_NATIVE, on by default): a shared library no hook names,
compiled here and loaded with ctypes, and sqlite3's own C opens of a database file, are
recorded with blake3 digests, once; Python's `open` is not doubled; the interpreter's imports
are not recorded; what the native calls return (values, errno) is unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clew.instrumentation import _preload
from clew.semconv import environment
from clew_test_helpers import digest_of

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("gcc") is None, reason="the test compiles a C library"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="GOT patching is Linux's"),
]

# Copies with C stdio in, a bare open() out; reports a failed open's errno.
LIBRARY_SOURCE = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int copy_file(const char *source, const char *destination) {
    FILE *in = fopen(source, "rb");
    if (in == NULL)
        return -1;
    int out = open(destination, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        fclose(in);
        return -2;
    }
    char buffer[4096];
    size_t got;
    while ((got = fread(buffer, 1, sizeof buffer, in)) > 0)
        if (write(out, buffer, got) != (ssize_t)got)
            return -3;
    fclose(in);
    close(out);
    return 0;
}

int errno_of_open(const char *path) {
    errno = 0;
    int fd = open(path, O_RDONLY);
    return fd < 0 ? errno : 0;
}
"""

PROGRAM = """
import ctypes, sqlite3, sys
library = ctypes.CDLL(sys.argv[1])
print("copy", library.copy_file(b"in.bin", b"out.bin"))
print("copy again", library.copy_file(b"in.bin", b"out.bin"))
print("errno", library.errno_of_open(b"missing.bin"))
with open("python.txt", "w") as handle:  # Python's open: the files hook's, not doubled
    handle.write("from python")
print(open("python.txt").read())
connection = sqlite3.connect("data.db")
connection.execute("create table t (x)")
connection.execute("insert into t values (42)")
connection.commit()
connection.close()
import json, decimal  # imports: the interpreter's own opens
"""


@pytest.fixture
def library(tmp_path: Path) -> Path:
    source = tmp_path / "copier.c"
    source.write_text(LIBRARY_SOURCE)
    built = tmp_path / "libcopier.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(built), str(source)], check=True)
    return built


def test_native_reads_and_writes_are_recorded_once(
    run_instrumented, run_plain, spool, workdir, library, tmp_path
):
    """The C library's fopen read and open write: one record each with the content's digest
    (two calls count on one record); sqlite3's database file written by its C code; Python's
    own open recorded once; no import of the interpreter's recorded; output unchanged."""
    data = bytes(range(256)) * 64
    (workdir / "in.bin").write_bytes(data)
    result = run_instrumented(PROGRAM, str(library))  # the default
    assert result.returncode == 0, result.stderr
    run = spool.run()

    read = spool.only(run, "read", workdir / "in.bin")
    assert read.digest == digest_of(data)
    written = spool.only(run, "write", workdir / "out.bin")
    assert written.digest == digest_of(data)
    assert spool.only(run, "write", workdir / "python.txt").digest == digest_of(b"from python")
    assert spool.only(run, "read", workdir / "python.txt").digest == digest_of(b"from python")
    database = spool.only(run, "write", workdir / "data.db")
    assert database.digest == digest_of((workdir / "data.db").read_bytes())
    assert not spool.accesses(run, "read", workdir / "missing.bin")
    # Only the program's own files: nothing of the interpreter, site-packages or the library.
    recorded = {a.uri for a in run.accesses}
    assert recorded <= {spool.uri(workdir / n) for n in
                        ("in.bin", "out.bin", "python.txt", "data.db", "data.db-journal")} | {
        spool.uri(library.parent / "prog.py")}, recorded

    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    (plain_dir / "in.bin").write_bytes(data)
    plain = run_plain(PROGRAM, str(library), cwd=plain_dir)
    assert result.stdout == plain.stdout
    assert "errno 2" in result.stdout


def test_native_opens_are_not_recorded_when_turned_off(run_instrumented, spool, workdir,
                                                        library):
    """With CLEW_NATIVE=0 native code's opens stay unrecorded; Python's are recorded."""
    (workdir / "in.bin").write_bytes(b"native")
    result = run_instrumented(PROGRAM, str(library), env={environment.CLEW_NATIVE: "0"})
    assert result.returncode == 0, result.stderr
    run = spool.run()
    assert not spool.accesses(run, "read", workdir / "in.bin")
    assert not spool.accesses(run, "write", workdir / "out.bin")
    assert spool.only(run, "write", workdir / "python.txt").digest == digest_of(b"from python")


def test_off_in_a_python_the_library_was_preloaded_into(run_instrumented, spool, workdir,
                                                        library):
    """An instrumented Python that a traced shell started has clew's library preloaded: its
    wrappers come first for the interpreter too, so native opens stay off there, quietly,
    and Python's own opens are recorded once, by the audit hook."""
    (workdir / "in.bin").write_bytes(b"native")
    result = run_instrumented(PROGRAM, str(library), env={"LD_PRELOAD": _preload.library()})
    assert result.returncode == 0, result.stderr
    run = spool.run()
    assert run.capture_errors == []
    assert not spool.accesses(run, "read", workdir / "in.bin")
    assert spool.only(run, "write", workdir / "python.txt").digest == digest_of(b"from python")
    assert spool.only(run, "read", workdir / "python.txt").digest == digest_of(b"from python")
