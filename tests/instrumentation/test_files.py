"""Local file capture: real programs under opentelemetry-instrument.

Each test runs one program with its own CLEW_HOME and checks the spool the way a user would:
the file was recorded once, with the operation, the blake3 digest of its content and a count.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from clew.semconv import attributes as attr
from clew.semconv import spans as span_names
from clew_test_helpers import assert_succeeded, digest_of

pytestmark = pytest.mark.integration


def file_digest(path: Path) -> str:
    return digest_of(path.read_bytes())


def _csv_bytes() -> bytes:
    return b"id,label,value\n1,cat,0.5\n2,dog,1.5\n3,cat,2.5\n"


# One case per API: (input name, how the test makes it, program that reads it and writes
# `output`, output name). The input is made outside clew, so its read is the only record of it.
API_CASES = {
    "builtins.open": (
        "in.txt",
        lambda: b"raw text input\n" * 50,
        """
        with open("in.txt", "rb") as handle:
            data = handle.read()
        with open("out.txt", "w") as handle:
            handle.write(data.decode().upper())
        print(len(data))
        """,
        "out.txt",
    ),
    "io.open": (
        "in.txt",
        lambda: b"io.open input\n" * 20,
        """
        import io
        with io.open("in.txt", "r", encoding="utf-8") as handle:
            text = handle.read()
        with io.open("out.txt", "wb") as handle:
            handle.write(text[::-1].encode())
        print(len(text))
        """,
        "out.txt",
    ),
    "os.open": (
        "in.bin",
        lambda: bytes(range(256)) * 16,
        """
        import os
        fd = os.open("in.bin", os.O_RDONLY)
        data = os.read(fd, 1 << 20)
        os.close(fd)
        fd = os.open("out.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data[::-1])
        os.close(fd)
        print(len(data))
        """,
        "out.bin",
    ),
    "pathlib": (
        "in.txt",
        lambda: b"pathlib input\n",
        """
        from pathlib import Path
        text = Path("in.txt").read_text()
        Path("out.txt").write_text(text * 3)
        with Path("in.txt").open("rb") as handle:
            handle.read()
        print(len(text))
        """,
        "out.txt",
    ),
    "numpy": (
        "in.npy",
        lambda: _npy_bytes(),
        """
        import numpy as np
        array = np.load("in.npy")
        np.save("out.npy", array * 2)
        print(array.sum())
        """,
        "out.npy",
    ),
    "pickle": (
        "in.pkl",
        lambda: pickle.dumps({"weights": list(range(100)), "name": "model"}),
        """
        import pickle
        with open("in.pkl", "rb") as handle:
            state = pickle.load(handle)
        state["epoch"] = 1
        with open("out.pkl", "wb") as handle:
            pickle.dump(state, handle)
        print(state["name"])
        """,
        "out.pkl",
    ),
    "pandas": (
        "in.csv",
        _csv_bytes,
        """
        import pandas as pd
        frame = pd.read_csv("in.csv")
        frame.groupby("label").value.sum().to_csv("out.csv")
        print(len(frame))
        """,
        "out.csv",
    ),
}


def _npy_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.arange(1000, dtype=np.float32).reshape(100, 10))
    return buffer.getvalue()


@pytest.mark.parametrize("api", sorted(API_CASES))
def test_read_and_written_files_have_their_blake3_digest(api, run_instrumented, spool, workdir):
    """A file read and a file written through `api` are each recorded once, with the blake3
    digest of their content, content identity and size."""
    in_name, make_input, program, out_name = API_CASES[api]
    data = make_input()
    (workdir / in_name).write_bytes(data)

    result = run_instrumented(program)

    assert_succeeded(result)
    run = spool.run()
    read = spool.only(run, "read", workdir / in_name)
    assert read.digest == digest_of(data)
    assert read.identity == "content"
    assert read.size == len(data)
    written = spool.only(run, "write", workdir / out_name)
    assert written.digest == file_digest(workdir / out_name)
    assert written.identity == "content"
    assert written.size == (workdir / out_name).stat().st_size


def test_repeated_reads_are_one_record_with_a_count(run_instrumented, spool, workdir):
    """Seven opens of one unchanged file, through three APIs, make one record counting 7."""
    (workdir / "config.yaml").write_text("lr: 0.1\n")

    result = run_instrumented(
        """
        import os
        from pathlib import Path
        for _ in range(5):
            with open("config.yaml") as handle:
                handle.read()
        Path("config.yaml").read_text()
        os.close(os.open("config.yaml", os.O_RDONLY))
        """
    )

    assert_succeeded(result)
    read = spool.only(spool.run(), "read", workdir / "config.yaml")
    assert read.count == 7
    assert read.digest == file_digest(workdir / "config.yaml")


def test_file_written_in_several_steps_has_the_digest_of_its_final_content(
    run_instrumented, spool, workdir
):
    """Written, flushed, appended twice: one write record, digest of the final bytes."""
    result = run_instrumented(
        """
        import os
        with open("model.bin", "wb") as handle:
            handle.write(b"header|")
            handle.flush()
            handle.write(b"layer1|")
        with open("model.bin", "ab") as handle:
            handle.write(b"layer2|")
        fd = os.open("model.bin", os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"footer")
        os.close(fd)
        """
    )

    assert_succeeded(result)
    final = b"header|layer1|layer2|footer"
    assert (workdir / "model.bin").read_bytes() == final
    written = spool.only(spool.run(), "write", workdir / "model.bin")
    assert written.digest == digest_of(final)
    assert written.size == len(final)


def test_file_rewritten_after_it_settled_ends_with_its_final_content(
    run_instrumented, spool, workdir
):
    """A file that sat unchanged for several flushes, then was rewritten: each content version
    is recorded once, and the latest record is the final content."""
    result = run_instrumented(
        """
        import time
        with open("checkpoint.txt", "w") as handle:
            handle.write("epoch 1")
        time.sleep(1.0)  # ten flushes: long enough to settle and be recorded
        with open("checkpoint.txt", "w") as handle:
            handle.write("epoch 2, a longer checkpoint")
        """,
        env={"CLEW_FLUSH_INTERVAL": "0.1"},
    )

    assert_succeeded(result)
    writes = sorted(
        (
            s
            for s in spool.spans()
            if s.name == span_names.SPAN_WRITE_FILE
            and s.attributes[attr.PROVENANCE_ARTIFACT_URI] == spool.uri(workdir / "checkpoint.txt")
        ),
        key=lambda s: s.end_ns,
    )
    digests = [s.attributes.get(attr.PROVENANCE_ARTIFACT_DIGEST) for s in writes]
    assert digests == [digest_of(b"epoch 1"), digest_of(b"epoch 2, a longer checkpoint")]


# Small files are hashed as they are opened; larger ones by a background hasher, which must
# not lose a file's identity when the program changes it right after reading it.
LARGE = 3 << 20


def _large_content(seed: int) -> bytes:
    return bytes([seed % 251]) * LARGE + f"file {seed}".encode()


def test_file_read_then_overwritten_keeps_the_digest_of_what_was_read(
    run_instrumented, spool, workdir
):
    """Read a file and overwrite it at once: the read record still names the content that
    was read, the write record the new content."""
    for i in range(4):
        (workdir / f"state{i}.bin").write_bytes(_large_content(i))
    (workdir / "small.json").write_text('{"step": 1}')

    result = run_instrumented(
        """
        import time
        for name in ["small.json"] + [f"state{i}.bin" for i in range(4)]:
            time.sleep(0.1)  # the background hasher is idle when the read comes
            with open(name, "rb") as handle:
                data = handle.read()
            with open(name, "wb") as handle:
                handle.write(data[::-1])
        """
    )

    assert_succeeded(result)
    run = spool.run()
    originals = {"small.json": b'{"step": 1}'} | {
        f"state{i}.bin": _large_content(i) for i in range(4)
    }
    for name, original in originals.items():
        path = workdir / name
        assert spool.only(run, "read", path).digest == digest_of(original), name
        assert spool.only(run, "write", path).digest == file_digest(path), name


def test_excluded_paths_are_not_recorded(run_instrumented, spool, workdir, clew_home):
    """The interpreter's standard library and site-packages, /proc, /sys, /dev, __pycache__ and
    clew's own home are not recorded; the program's data next to them is."""
    import wrapt

    (workdir / "__pycache__").mkdir()
    (workdir / "__pycache__" / "m.pyc").write_bytes(b"\0" * 16)
    (workdir / "data.txt").write_text("data")
    clew_home.mkdir()
    (clew_home / "notes.txt").write_text("clew's own file")

    result = run_instrumented(
        f"""
        import os
        site_file = {wrapt.__file__!r}
        for path in (site_file, os.__file__, "/proc/self/status", "/proc/self/maps",
                     "__pycache__/m.pyc",
                     os.path.join(os.environ["CLEW_HOME"], "notes.txt"), "data.txt"):
            with open(path, "rb") as handle:
                handle.read()
        with open("/dev/null", "wb") as handle:
            handle.write(b"discarded")
        os.listdir("/proc/self")
        if os.path.isdir("/sys/class"):
            os.listdir("/sys/class")
        """
    )

    assert_succeeded(result)
    run = spool.run()
    recorded = sorted({a.uri for a in run.accesses})
    assert recorded == [spool.uri(workdir / "data.txt")]


def test_fifo_is_never_read_by_clew(run_instrumented, spool, workdir):
    """clew never opens FIFOs, sockets or devices: a program using a FIFO runs as usual and
    the FIFO has no record."""
    result = run_instrumented(
        """
        import os
        os.mkfifo("pipe")
        reader = os.open("pipe", os.O_RDONLY | os.O_NONBLOCK)
        with open("pipe", "wb") as writer:
            writer.write(b"through the pipe")
        print(os.read(reader, 100).decode())
        os.close(reader)
        """,
        timeout=30,
    )

    assert_succeeded(result)
    assert result.stdout == "through the pipe\n"
    run = spool.run()
    assert not [a for a in run.accesses if a.uri == spool.uri(workdir / "pipe")]


def test_clew_exclude_globs_leave_matching_files_out(run_instrumented, spool, workdir):
    """CLEW_EXCLUDE globs (comma-separated) are not recorded; other files still are."""
    (workdir / "scratch").mkdir()
    for name in ("scratch/a.txt", "b.tmp", "keep.txt"):
        (workdir / name).write_text(name)

    result = run_instrumented(
        """
        for name in ("scratch/a.txt", "b.tmp", "keep.txt"):
            open(name).read()
        """,
        env={"CLEW_EXCLUDE": "*/scratch/*, *.tmp"},
    )

    assert_succeeded(result)
    assert spool.run().uris("read") == [spool.uri(workdir / "keep.txt")]


def test_clew_include_globs_win_over_default_exclusions(run_instrumented, spool, workdir):
    """A CLEW_INCLUDE glob records a site-packages file that is excluded by default."""
    import wrapt

    site_file = Path(wrapt.__file__)

    result = run_instrumented(
        f"""
        open({str(site_file)!r}, "rb").read()
        open("data.txt", "w").write("data")
        """,
        env={"CLEW_INCLUDE": "*/wrapt/__init__.py"},
    )

    assert_succeeded(result)
    read = spool.only(spool.run(), "read", site_file)
    assert read.digest == file_digest(site_file)


def test_hashing_off_gives_stat_identity(run_instrumented, spool, workdir):
    """CLEW_HASH=0: files are recorded with stat identity (size, mtime) and no digest."""
    (workdir / "in.txt").write_text("input")

    result = run_instrumented(
        """
        open("in.txt").read()
        open("out.txt", "w").write("output!")
        """,
        env={"CLEW_HASH": "0"},
    )

    assert_succeeded(result)
    run = spool.run()
    for operation, name, size in (("read", "in.txt", 5), ("write", "out.txt", 7)):
        access = spool.only(run, operation, workdir / name)
        assert access.identity == "stat"
        assert access.digest is None
        assert access.size == size


def test_atomic_write_is_one_write_record_at_the_final_name(run_instrumented, spool, workdir):
    """Write a temporary file and os.replace it into place: one write at the final name with
    the final digest, nothing recorded for the temporary name."""
    (workdir / "model.pt").write_bytes(b"the previous model")

    result = run_instrumented(
        """
        import os
        with open("model.pt.tmp", "wb") as handle:
            handle.write(b"weights ")
            handle.write(b"and biases")
        os.replace("model.pt.tmp", "model.pt")
        """
    )

    assert_succeeded(result)
    run = spool.run()
    written = spool.only(run, "write", workdir / "model.pt")
    assert written.digest == digest_of(b"weights and biases")
    assert not [a for a in run.accesses if a.uri == spool.uri(workdir / "model.pt.tmp")]
    assert not [a for a in run.accesses if a.operation == "rename"]


def test_directory_written_and_renamed_into_place_records_each_file_at_its_final_name(
    run_instrumented, spool, workdir
):
    """Write files into a temporary directory and rename the directory into place (as
    datasets builds its cache): one write per file at its final name, with its digest;
    nothing recorded under the temporary directory."""
    result = run_instrumented(
        """
        import os
        os.makedirs("build.incomplete/part")
        with open("build.incomplete/a.arrow", "wb") as handle:
            handle.write(b"first shard")
        with open("build.incomplete/part/b.json", "wb") as handle:
            handle.write(b"{}")
        os.rename("build.incomplete", "build")
        """
    )

    assert_succeeded(result)
    run = spool.run()
    for name, content in (("a.arrow", b"first shard"), ("part/b.json", b"{}")):
        assert spool.only(run, "write", workdir / "build" / name).digest == digest_of(content)
    temporary = spool.uri(workdir / "build.incomplete")
    assert not [a for a in run.accesses if a.uri.startswith(temporary)]
    assert not [a for a in run.accesses if a.operation == "rename"]


def test_renamed_input_is_a_rename_record_from_its_source(run_instrumented, spool, workdir):
    """Moving a file the program did not write: a rename record at the destination whose
    source is the old name, with the digest of the (unchanged) content."""
    (workdir / "inbox.csv").write_bytes(_csv_bytes())

    result = run_instrumented(
        """
        import os
        os.makedirs("done")
        os.rename("inbox.csv", "done/inbox.csv")
        """
    )

    assert_succeeded(result)
    renamed = spool.only(spool.run(), "rename", workdir / "done" / "inbox.csv")
    assert renamed.source_uri == spool.uri(workdir / "inbox.csv")
    assert renamed.digest == digest_of(_csv_bytes())


def test_file_read_then_moved_keeps_the_digest_of_what_was_read(run_instrumented, spool, workdir):
    """Read an input and move it away at once: the read record still has its digest."""
    (workdir / "batch.csv").write_bytes(_large_content(7))

    result = run_instrumented(
        """
        import os, time
        time.sleep(0.1)  # the background hasher is idle when the read comes
        open("batch.csv", "rb").read()
        os.makedirs("processed")
        os.replace("batch.csv", "processed/batch.csv")
        """
    )

    assert_succeeded(result)
    read = spool.only(spool.run(), "read", workdir / "batch.csv")
    assert read.digest == digest_of(_large_content(7))


@pytest.mark.parametrize("function", ["copy", "copy2", "copyfile"])
def test_shutil_copy_is_a_copy_record_from_its_source(function, run_instrumented, spool, workdir):
    """shutil's copies give a copy record at the destination whose provenance.source.uri is
    the source (a derive edge), with the copied content's digest."""
    (workdir / "raw.csv").write_bytes(_csv_bytes())

    result = run_instrumented(
        f"""
        import shutil
        shutil.{function}("raw.csv", "copy.csv")
        """
    )

    assert_succeeded(result)
    run = spool.run()
    copied = spool.only(run, "copy", workdir / "copy.csv")
    assert copied.source_uri == spool.uri(workdir / "raw.csv")
    assert copied.digest == digest_of(_csv_bytes())
    copy_span = next(s for s in spool.spans() if s.name == span_names.SPAN_COPY_FILE)
    assert copy_span.attributes[attr.PROVENANCE_SOURCE_URI] == spool.uri(workdir / "raw.csv")


def test_deleted_files_are_recorded_with_the_digest_of_what_was_deleted(
    run_instrumented, spool, workdir
):
    """os.remove, os.unlink and Path.unlink of inputs; a scratch file written and deleted
    by the program: each a delete record naming the content it removed."""
    for name in ("a.txt", "b.txt", "c.txt"):
        (workdir / name).write_text(f"content of {name}")
    (workdir / "large.bin").write_bytes(_large_content(3))

    result = run_instrumented(
        """
        import os, time
        from pathlib import Path
        time.sleep(0.1)  # the background hasher is idle when the read comes
        open("large.bin", "rb").read()
        os.remove("large.bin")
        open("a.txt").read()
        os.remove("a.txt")
        open("b.txt").read()
        os.unlink("b.txt")
        open("c.txt").read()
        Path("c.txt").unlink()
        with open("scratch.bin", "wb") as handle:
            handle.write(b"temporary")
        os.remove("scratch.bin")
        """
    )

    assert_succeeded(result)
    run = spool.run()
    for name in ("a.txt", "b.txt", "c.txt"):
        content = f"content of {name}".encode()
        assert spool.only(run, "read", workdir / name).digest == digest_of(content)
        assert spool.only(run, "delete", workdir / name).digest == digest_of(content)
    assert spool.only(run, "read", workdir / "large.bin").digest == digest_of(_large_content(3))
    assert spool.only(run, "delete", workdir / "large.bin").digest == digest_of(_large_content(3))
    assert spool.only(run, "write", workdir / "scratch.bin").digest == digest_of(b"temporary")
    assert spool.only(run, "delete", workdir / "scratch.bin").digest == digest_of(b"temporary")


def test_rmtree_records_each_deleted_file_at_its_own_path(run_instrumented, spool, workdir):
    """shutil.rmtree deletes relative to directory descriptors: every file is recorded at
    its real path, and a same-named file in the working directory is not touched."""
    (workdir / "tree" / "sub").mkdir(parents=True)
    (workdir / "tree" / "a.txt").write_text("tree a")
    (workdir / "tree" / "sub" / "b.txt").write_text("tree b")
    (workdir / "a.txt").write_text("not deleted")
    (workdir / "b.txt").write_text("not deleted either")

    result = run_instrumented(
        """
        import shutil
        shutil.rmtree("tree")
        """
    )

    assert_succeeded(result)
    assert (workdir / "a.txt").exists() and (workdir / "b.txt").exists()
    run = spool.run()
    assert sorted(a.uri for a in run.accesses if a.operation == "delete") == sorted(
        [spool.uri(workdir / "tree" / "a.txt"), spool.uri(workdir / "tree" / "sub" / "b.txt")]
    )


def test_directory_listings_are_recorded(run_instrumented, spool, workdir):
    """os.listdir, os.scandir, Path.iterdir, glob and os.walk record the directory listed,
    once per directory with a count."""
    for name in ("d1", "d2", "d3", "d4", "d5/inner"):
        (workdir / name).mkdir(parents=True)
        (workdir / name / "f.txt").write_text(name)

    result = run_instrumented(
        """
        import glob, os
        from pathlib import Path
        os.listdir("d1")
        os.listdir("d1")
        with os.scandir("d2") as entries:
            list(entries)
        list(Path("d3").iterdir())
        glob.glob("d4/*.txt")
        list(os.walk("d5"))
        os.listdir()
        """
    )

    assert_succeeded(result)
    run = spool.run()
    listed = {a.uri: a for a in run.accesses if a.operation == "list"}
    expected = [workdir / d for d in ("d1", "d2", "d3", "d4", "d5", "d5/inner")] + [workdir]
    for directory in expected:
        assert spool.uri(directory) in listed, (directory, sorted(listed))
    assert listed[spool.uri(workdir / "d1")].count == 2
    assert not run.uris("read"), "listing a directory reads none of its files"


def test_rerun_takes_digests_from_the_persistent_cache(run_instrumented, spool, workdir):
    """A second run hashes nothing: digests come from the cache keyed by (device, inode,
    size, mtime_ns). Shown by changing the bytes in place while keeping that key: the
    second run still reports the first content's digest, and the cache did not grow."""
    data = workdir / "data.bin"
    data.write_bytes(b"A" * 4096)
    program = 'open("data.bin", "rb").read()'

    first = run_instrumented(program)
    assert first.returncode == 0, first.stderr
    cache = spool.home / "cache"
    cached = {p.name: p.read_bytes() for p in cache.iterdir()}
    assert cached, "the first run fills the digest cache"

    stat = data.stat()
    with open(data, "r+b") as handle:  # same inode, same size
        handle.write(b"B" * 4096)
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime
    second = run_instrumented(program)

    assert second.returncode == 0, second.stderr
    digests = {r.run_id: spool.only(r, "read", data).digest for r in spool.runs()}
    assert set(digests.values()) == {digest_of(b"A" * 4096)}
    assert len(digests) == 2
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == cached


@pytest.mark.xfail(
    strict=True,
    reason="a read of a file whose record was already flushed (after the flush interval, "
    "e.g. the next epoch) is neither counted nor re-emitted: the count stays at the reads "
    "made before the first flush",
)
def test_reads_across_flush_intervals_are_all_counted(run_instrumented, spool, workdir):
    (workdir / "shard.bin").write_bytes(b"epoch data")

    result = run_instrumented(
        """
        import time
        for epoch in range(3):
            open("shard.bin", "rb").read()
            time.sleep(0.3)
        """,
        env={"CLEW_FLUSH_INTERVAL": "0.1"},
    )

    assert_succeeded(result)
    reads = spool.accesses(spool.run(), "read", workdir / "shard.bin")
    assert sum(a.count for a in reads) == 3
