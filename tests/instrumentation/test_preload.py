"""Programs that are not Python: what cp, tar, gzip, mv, rm, sort, a shell pipeline and a
compiled tool read, write, rename and delete is recorded under their exec span, through clew's
LD_PRELOAD library, with digests; what they do is unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from clew.query.cli import ExitStatus
from clew.semconv import attributes as attr
from clew.semconv import environment
from clew.semconv import spans as span_names
from clew_test_helpers import digest_of

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("gcc") is None, reason="the test compiles a C program"),
]


@dataclass(frozen=True)
class Io:
    """One I/O record as the spool holds it, with the span it hangs under."""

    operation: str
    uri: str
    digest: str | None
    identity: str
    pid: int
    parent_span_id: str
    source_uri: str | None = None


def io_records(spans) -> list[Io]:  # noqa: ANN001
    """Every I/O record of the spool, batched spans exploded into one per file."""
    records = []
    for span in spans:
        a = span.attributes
        operation = a.get(attr.PROVENANCE_IO_OPERATION)
        if operation is None:
            continue
        uris = a.get(attr.PROVENANCE_ARTIFACTS_URI)
        if uris is None:
            records.append(Io(operation, a[attr.PROVENANCE_ARTIFACT_URI],
                              a.get(attr.PROVENANCE_ARTIFACT_DIGEST),
                              a[attr.PROVENANCE_ARTIFACT_IDENTITY], a[attr.PROCESS_PID],
                              span.parent_span_id, a.get(attr.PROVENANCE_SOURCE_URI)))
            continue
        identities = a.get(attr.PROVENANCE_ARTIFACTS_IDENTITY) or (
            [a[attr.PROVENANCE_ARTIFACT_IDENTITY]] * len(uris))
        for uri, digest, identity in zip(uris, a[attr.PROVENANCE_ARTIFACTS_DIGEST], identities):
            records.append(Io(operation, uri, digest or None, identity, a[attr.PROCESS_PID],
                              span.parent_span_id))
    return records


def exec_spans(spans) -> list:  # noqa: ANN001
    return [s for s in spans if s.name == span_names.SPAN_EXEC]


def exec_of(spans, command: list[str]):  # noqa: ANN001, ANN201
    found = [s for s in exec_spans(spans) if s.attributes[attr.PROCESS_COMMAND_ARGS] == command]
    assert len(found) == 1, [s.attributes[attr.PROCESS_COMMAND_ARGS] for s in exec_spans(spans)]
    return found[0]


def under(records: list[Io], span) -> list[tuple[str, str, str | None]]:  # noqa: ANN001
    """(operation, uri, digest) of the records under one exec span, sorted."""
    return sorted((r.operation, r.uri, r.digest) for r in records
                  if r.parent_span_id == span.span_id)


def child_run(result, spool, command: list[str]):  # noqa: ANN001, ANN201
    """A successful run's spans, the exec span of `command`, and the records under it."""
    assert result.returncode == 0, result.stderr
    spans = spool.spans()
    span = exec_of(spans, command)
    return spans, span, under(io_records(spans), span)


# Each command's output and exit code is printed, so an instrumented run can be compared with
# a plain one.
COREUTILS = """
import subprocess, sys
open("r.txt").read()  # read here first: the digest of what rm removes is known
for command in [
    ["cp", "a.csv", "b.csv"],
    ["cp", "-r", "d", "d2"],
    ["tar", "czf", "t.tgz", "d"],
    ["gzip", "-k", "g.txt"],
    ["mv", "m1.txt", "m2.txt"],
    ["rm", "r.txt"],
    ["sort", "-o", "s.txt", "u.txt"],
    ["cat", "a.csv"],
    ["cat", "missing.txt"],
]:
    done = subprocess.run(command, capture_output=True, text=True)
    print(command, done.returncode, repr(done.stdout), repr(done.stderr))
"""


def _make_inputs(workdir: Path) -> dict[str, bytes]:
    contents = {
        "a.csv": b"x,y\n1,2\n",
        "d/f1": b"one\n",
        "d/f2": b"two\n",
        "g.txt": b"gzip me\n" * 10,
        "m1.txt": b"moved\n",
        "r.txt": b"removed\n",
        "u.txt": b"b\nc\na\n",
    }
    for name, data in contents.items():
        (workdir / name).parent.mkdir(exist_ok=True)
        (workdir / name).write_bytes(data)
    return contents


def test_coreutils_record_their_files_under_their_exec(
    run_instrumented, run_plain, spool, workdir, tmp_path
):
    """cp, cp -r, tar czf, gzip, mv, rm and sort: each read, write, rename and delete is one
    record with the blake3 digest of the content, under that command's exec span, with the
    pid that did it; a failed open is no read; output and exit codes are as without clew."""
    contents = _make_inputs(workdir)
    result = run_instrumented(COREUTILS)
    assert result.returncode == 0, result.stderr
    spans = spool.spans()
    records = io_records(spans)
    uri = spool.uri

    cp = exec_of(spans, ["cp", "a.csv", "b.csv"])
    assert under(records, cp) == [
        ("read", uri(workdir / "a.csv"), digest_of(contents["a.csv"])),
        ("write", uri(workdir / "b.csv"), digest_of(contents["a.csv"])),
    ]
    assert {r.pid for r in records if r.parent_span_id == cp.span_id} == {
        cp.attributes[attr.PROCESS_PID]}
    assert cp.attributes[attr.PROVENANCE_EXEC_TRACED] is True

    tree = [(f"d/{n}", f"d2/{n}") for n in ("f1", "f2")]
    assert under(records, exec_of(spans, ["cp", "-r", "d", "d2"])) == sorted(
        [("read", uri(workdir / a), digest_of(contents[a])) for a, _ in tree]
        + [("write", uri(workdir / b), digest_of(contents[a])) for a, b in tree]
    )
    assert under(records, exec_of(spans, ["tar", "czf", "t.tgz", "d"])) == sorted(
        [("read", uri(workdir / a), digest_of(contents[a])) for a, _ in tree]
        + [("write", uri(workdir / "t.tgz"), digest_of((workdir / "t.tgz").read_bytes()))]
    )
    assert under(records, exec_of(spans, ["gzip", "-k", "g.txt"])) == [
        ("read", uri(workdir / "g.txt"), digest_of(contents["g.txt"])),
        ("write", uri(workdir / "g.txt.gz"), digest_of((workdir / "g.txt.gz").read_bytes())),
    ]
    mv = exec_of(spans, ["mv", "m1.txt", "m2.txt"])
    assert under(records, mv) == [("rename", uri(workdir / "m2.txt"), digest_of(b"moved\n"))]
    assert [r.source_uri for r in records if r.parent_span_id == mv.span_id] == [
        uri(workdir / "m1.txt")]
    assert under(records, exec_of(spans, ["rm", "r.txt"])) == [
        ("delete", uri(workdir / "r.txt"), digest_of(contents["r.txt"]))]
    assert under(records, exec_of(spans, ["sort", "-o", "s.txt", "u.txt"])) == [
        ("read", uri(workdir / "u.txt"), digest_of(contents["u.txt"])),
        ("write", uri(workdir / "s.txt"), digest_of(b"a\nb\nc\n")),
    ]
    failing = exec_of(spans, ["cat", "missing.txt"])
    assert failing.attributes[attr.PROCESS_EXIT_CODE] == 1
    assert under(records, failing) == []  # its failed open is not a read
    # The parent's own read of r.txt, under its process span, is not doubled by the children.
    assert len([r for r in records if r.uri == uri(workdir / "r.txt")]) == 2

    # What each command printed and returned, as without clew.
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    _make_inputs(plain_dir)
    plain = run_plain(COREUTILS, cwd=plain_dir)
    assert result.stdout == plain.stdout
    assert (workdir / "s.txt").read_bytes() == (plain_dir / "s.txt").read_bytes()


PIPELINE = """
import subprocess
subprocess.run(["bash", "-c", "cat a.csv | gzip > b.gz"], check=True)
"""


def test_shell_pipeline_is_recorded_and_lineage_reaches_its_input(
    run_instrumented, spool, workdir, clew_cli
):
    """bash -c "cat a.csv | gzip > b.gz": cat's read and the redirection's write recorded under
    the shell's exec span, by the pipeline's processes; after ingest, `clew lineage b.gz`
    reaches a.csv."""
    (workdir / "a.csv").write_bytes(b"x,y\n1,2\n" * 100)
    result = run_instrumented(PIPELINE)
    assert result.returncode == 0, result.stderr
    spans = spool.spans()
    shell = exec_of(spans, ["bash", "-c", "cat a.csv | gzip > b.gz"])
    records = io_records(spans)
    assert under(records, shell) == [
        ("read", spool.uri(workdir / "a.csv"), digest_of(b"x,y\n1,2\n" * 100)),
        ("write", spool.uri(workdir / "b.gz"), digest_of((workdir / "b.gz").read_bytes())),
    ]
    # cat and the shell's child that became gzip, not the shell itself, did the I/O.
    pids = {r.pid for r in records if r.parent_span_id == shell.span_id}
    assert shell.attributes[attr.PROCESS_PID] not in pids and len(pids) == 2

    assert clew_cli("ingest").code == ExitStatus.OK
    lineage = clew_cli("lineage", "b.gz", "--format", "json")
    assert lineage.code == ExitStatus.OK, lineage.err
    graph = lineage.json()
    nodes = {node["id"]: node for node in graph["nodes"]}
    inputs = {nodes[e["source"]]["uri"] for e in graph["edges"] if e["kind"] == "read"}
    assert spool.uri(workdir / "a.csv") in inputs


C_TOOL = r"""
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char buffer[256];
    int in = open(argv[1], O_RDONLY);
    if (in < 0) { perror(argv[1]); return 3; }
    ssize_t got = read(in, buffer, sizeof buffer);
    close(in);
    FILE *out = fopen("out.tmp", "w");
    fwrite(buffer, 1, got, out);
    fclose(out);
    rename("out.tmp", argv[2]);
    printf("copied %zd\n", got);
    fflush(stdout);
    if (argc > 3) raise(SIGKILL);
    return 0;
}
"""

C_PROGRAM = """
import subprocess, sys
tool = sys.argv[1]
for command in [[tool, "in.bin", "out.bin"], [tool, "in.bin", "killed.bin", "die"],
                [tool, "absent.bin", "never.bin"]]:
    done = subprocess.run(command, capture_output=True, text=True)
    print(done.returncode, repr(done.stdout))
"""


def test_compiled_program_including_one_killed_by_a_signal(run_instrumented, spool, workdir,
                                                           tmp_path):
    """A C program compiled here reads with open(), writes with fopen() to a temporary file
    and renames it into place: one read and one write at the final name. The same program
    killed by SIGKILL right after keeps its records; one that fails to open reads nothing."""
    tool = tmp_path / "tool"
    source = tmp_path / "tool.c"
    source.write_text(C_TOOL)
    subprocess.run(["gcc", "-o", str(tool), str(source)], check=True)
    (workdir / "in.bin").write_bytes(b"native bytes")
    result = run_instrumented(C_PROGRAM, str(tool))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["0 'copied 12\\n'", "-9 'copied 12\\n'", "3 ''"]
    spans = spool.spans()
    records = io_records(spans)
    expected = digest_of(b"native bytes")
    for name, extra in (("out.bin", []), ("killed.bin", ["die"])):
        span = exec_of(spans, [str(tool), "in.bin", name, *extra])
        assert under(records, span) == [
            ("read", spool.uri(workdir / "in.bin"), expected),
            ("write", spool.uri(workdir / name), expected),
        ]
    killed = exec_of(spans, [str(tool), "in.bin", "killed.bin", "die"])
    assert killed.attributes[attr.PROCESS_EXIT_CODE] == -9
    failed = exec_of(spans, [str(tool), "absent.bin", "never.bin"])
    assert under(records, failed) == []


PYTHON_CHILDREN = """
import subprocess, sys
subprocess.run([sys.executable, "-c", "open('p.txt').read()"], check=True)
subprocess.run(["bash", "-c", sys.executable + " -c \\"open('p.txt').read()\\""], check=True)
"""


def test_instrumented_python_children_are_not_recorded_twice(run_instrumented, spool, workdir):
    """A Python child records its own reads; one started by a shell too; the library loaded
    into the shell stays quiet in it: one read record per Python process."""
    (workdir / "p.txt").write_text("python input")
    result = run_instrumented(PYTHON_CHILDREN)
    assert result.returncode == 0, result.stderr
    reads = [r for r in io_records(spool.spans()) if r.uri == spool.uri(workdir / "p.txt")]
    assert len(reads) == 2 and len({r.pid for r in reads}) == 2, reads


STATIC_AND_OFF = """
import subprocess, sys
subprocess.run([sys.argv[1], "in.bin"], check=True)
subprocess.run(["cp", "in.bin", "copy.bin"], check=True)
"""

STATIC_CAT = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    FILE *in = fopen(argv[1], "r");
    return in == NULL;
}
"""


def test_static_programs_and_the_setting_leave_children_opaque(run_instrumented, spool, workdir,
                                                               tmp_path):
    """A statically linked program never loads the library: its exec is opaque, as before.
    With CLEW_PRELOAD=0 no child gets the library: cp is opaque too."""
    tool, source = tmp_path / "static", tmp_path / "static.c"
    source.write_text(STATIC_CAT)
    built = subprocess.run(["gcc", "-static", "-o", str(tool), str(source)], check=False)
    if built.returncode != 0:
        pytest.skip("no static libc to link a static program with")
    (workdir / "in.bin").write_bytes(b"static")
    result = run_instrumented(STATIC_AND_OFF, str(tool))
    assert result.returncode == 0, result.stderr
    spans = spool.spans()
    static = exec_of(spans, [str(tool), "in.bin"])
    assert static.attributes[attr.PROVENANCE_EXEC_TRACED] is False
    assert under(io_records(spans), static) == []
    assert exec_of(spans, ["cp", "in.bin", "copy.bin"]).attributes[attr.PROVENANCE_EXEC_TRACED]

    for path in spool.files():
        path.unlink()
    result = run_instrumented(STATIC_AND_OFF, str(tool), env={environment.CLEW_PRELOAD: "0"})
    assert result.returncode == 0, result.stderr
    spans = spool.spans()
    cp = exec_of(spans, ["cp", "in.bin", "copy.bin"])
    assert cp.attributes[attr.PROVENANCE_EXEC_TRACED] is False
    assert under(io_records(spans), cp) == []


CHANGED_SINCE = """
import subprocess
subprocess.run(["bash", "-c", "cat a.txt > /dev/null; echo more >> a.txt"], check=True)
"""


def test_a_file_changed_since_the_child_read_it_keeps_stat_identity(run_instrumented, spool,
                                                                   workdir):
    """cat reads a.txt, then the shell appends to it: the read's digest is that of what cat
    read when clew hashed the file before the append (it reads a running child's notes as they
    come), else it cannot be taken from the file any more and the read says stat identity (no
    digest); never the digest of what the shell left, which the write has."""
    (workdir / "a.txt").write_text("first\n")
    result = run_instrumented(CHANGED_SINCE)
    assert result.returncode == 0, result.stderr
    records = [r for r in io_records(spool.spans()) if r.uri == spool.uri(workdir / "a.txt")]
    read = next(r for r in records if r.operation == "read")
    write = next(r for r in records if r.operation == "write")
    assert (read.identity, read.digest) in {("stat", None), ("content", digest_of(b"first\n"))}
    assert (write.identity, write.digest) == ("content", digest_of(b"first\nmore\n"))


NOT_BUILT = """
import subprocess
from clew.instrumentation import _preload
# The library missing from the install cannot be produced under a shared install: its lookup
# is made to find nothing, as on a machine without a C compiler.
_preload._find_library = lambda: None
for _ in range(2):
    done = subprocess.run(["cat", "a.txt"], capture_output=True, text=True)
    print(done.returncode, done.stdout.strip())
"""


def test_without_the_library_children_are_opaque_with_one_warning(run_instrumented, spool,
                                                                   workdir):
    (workdir / "a.txt").write_text("content")
    # CLEW_NATIVE=0: native opens would look the library up at start-up, before the program
    # makes the lookup find nothing.
    result = run_instrumented(NOT_BUILT, env={environment.CLEW_NATIVE: "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["0 content", "0 content"]
    assert result.stderr.count("LD_PRELOAD library was not built") == 1, result.stderr
    spans = spool.spans()
    assert [s.attributes[attr.PROVENANCE_EXEC_TRACED] for s in exec_spans(spans)] == [False] * 2
    assert not [r for r in io_records(spans) if r.uri == spool.uri(workdir / "a.txt")]


NEVER_WAITED = """
import os, shutil
pid = os.posix_spawn(shutil.which("cp"), ["cp", "a.txt", "b.txt"], os.environ)
os.waitpid(pid, 0)  # not through subprocess: clew never sees this child end
"""


def test_a_child_never_waited_for_is_collected_at_exit(run_instrumented, spool, workdir):
    """os.posix_spawn's span ends at once; what the child did is recorded when the parent
    exits, under that span."""
    (workdir / "a.txt").write_text("spawned")
    _, _, records = child_run(run_instrumented(NEVER_WAITED), spool, ["cp", "a.txt", "b.txt"])
    assert records == [
        ("read", spool.uri(workdir / "a.txt"), digest_of(b"spawned")),
        ("write", spool.uri(workdir / "b.txt"), digest_of(b"spawned")),
    ]


C_COPIER = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
/* copier SOURCE DESTINATION whole|half|patched: copy_file_range of all of SOURCE, of its first
 * half, or of all of it and then one byte overwritten in place (same size). */
int main(int argc, char **argv) {
    int in = open(argv[1], O_RDONLY), out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0) return 3;
    off_t size = lseek(in, 0, SEEK_END);
    lseek(in, 0, SEEK_SET);
    size_t wanted = strcmp(argv[3], "half") == 0 ? (size_t)size / 2 : (size_t)size;
    while (wanted > 0) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, wanted, 0);
        if (n <= 0) return 4;
        wanted -= (size_t)n;
    }
    if (strcmp(argv[3], "patched") == 0 && pwrite(out, "X", 1, 0) != 1) return 5;
    close(out);
    close(in);
    return 0;
}
"""

COPIES = """
import subprocess, sys
copier = sys.argv[1]
for command in [["cp", "src.bin", "cp.bin"], [copier, "src.bin", "whole.bin", "whole"],
                [copier, "src.bin", "half.bin", "half"],
                [copier, "src.bin", "patched.bin", "patched"]]:
    print(subprocess.run(command).returncode)
"""


def test_a_whole_copy_has_its_content_digest_and_a_partial_or_changed_one_too(
        run_instrumented, spool, workdir, tmp_path):
    """A copy made whole by copy_file_range (cp's way, and a compiled program's) is recorded
    with the digest of its content, which is its source's; a copy of half the source, and a
    whole copy overwritten in place before it was closed, with the digest of what they hold."""
    copier = tmp_path / "copier"
    (tmp_path / "copier.c").write_text(C_COPIER)
    subprocess.run(["gcc", "-o", str(copier), str(tmp_path / "copier.c")], check=True)
    source = bytes(range(256)) * 64
    (workdir / "src.bin").write_bytes(source)
    result = run_instrumented(COPIES, str(copier))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0"] * 4
    written = {r.uri: r.digest for r in io_records(spool.spans()) if r.operation == "write"}
    contents = {name: (workdir / name).read_bytes()
                for name in ("cp.bin", "whole.bin", "half.bin", "patched.bin")}
    assert contents["cp.bin"] == contents["whole.bin"] == source
    assert contents["half.bin"] == source[: len(source) // 2]
    assert contents["patched.bin"] == b"X" + source[1:]
    assert written == {spool.uri(workdir / name): digest_of(data)
                       for name, data in contents.items()}


SLOW_SHELL = ["sh", "-c", "read x < a.txt; sleep 1; read y < b.txt; read z < a.txt"]
SLOW_CHILD = f"""
import subprocess
subprocess.run({SLOW_SHELL!r}, check=True)
"""


def test_a_child_read_while_it_runs_is_recorded_once_per_file(run_instrumented, spool, workdir):
    """A shell that reads a file, waits long enough for clew to read its notes while it runs,
    then reads another and the first again: each file recorded once, with its digest, and
    the first counted twice (what was read mid-run is neither lost nor noted again)."""
    (workdir / "a.txt").write_text("first\n")
    (workdir / "b.txt").write_text("second\n")
    spans, shell, records = child_run(run_instrumented(SLOW_CHILD), spool, SLOW_SHELL)
    assert records == [
        ("read", spool.uri(workdir / "a.txt"), digest_of(b"first\n")),
        ("read", spool.uri(workdir / "b.txt"), digest_of(b"second\n")),
    ]
    reads = [s for s in spans if s.parent_span_id == shell.span_id
             and s.attributes.get(attr.PROVENANCE_IO_OPERATION) == "read"]
    assert sum(s.attributes[attr.PROVENANCE_IO_COUNT] for s in reads) == 3


def test_a_childs_batched_reads_keep_their_config_spans_and_producer_links(
        run_instrumented, spool, workdir):
    """`cp -r` of a directory holding a config file and a file another run produced (its
    stamp): the config file read gets its config span and the stamped file its link to its
    producer, under cp's exec span, as the file hook's reads do."""
    import os

    from clew.instrumentation import _stamps
    from opentelemetry.trace import SpanContext, TraceFlags

    (workdir / "d").mkdir()
    (workdir / "d" / "params.json").write_text('{"lr": 0.5}')
    stamped = workdir / "d" / "made.bin"
    stamped.write_bytes(b"made elsewhere\n")
    producer = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags.SAMPLED)
    try:
        os.setxattr(stamped, environment.STAMP_XATTR, _stamps.encode(producer).encode())
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    command = ["cp", "-r", "d", "d2"]
    program = f"import subprocess\nsubprocess.run({command!r}, check=True)\n"
    spans, cp, records = child_run(run_instrumented(program), spool, command)
    assert ("read", spool.uri(workdir / "d" / "made.bin"), digest_of(b"made elsewhere\n")) \
        in records
    configs = [s for s in spans if s.name == span_names.SPAN_CONFIG]
    assert [(c.attributes[attr.PROVENANCE_ARTIFACT_URI], c.parent_span_id) for c in configs] \
        == [(spool.uri(workdir / "d" / "params.json"), cp.span_id)]
    assert dict(zip(configs[0].attributes[attr.PROVENANCE_CONFIG_KEY],
                    configs[0].attributes[attr.PROVENANCE_CONFIG_VALUE])) == {"lr": "0.5"}
    links = [(link.span_id, link.attributes[attr.PROVENANCE_ARTIFACT_URI])
             for s in spans if s.parent_span_id == cp.span_id for link in s.links]
    assert links == [(f"{0x5678:016x}", spool.uri(stamped))]
