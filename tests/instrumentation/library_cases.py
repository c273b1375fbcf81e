"""What the native-I/O library tests share: running a program that reads and writes files the
test made, and checking that each file is recorded exactly once, by the program's process,
with the blake3 digest of its content, and that nothing else is recorded under the test's
working directory.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import blake3

from instrumentor_cases import run_case


def digest_of(path: Path) -> str:
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


def files_named(workdir: Path, names: list[str]) -> dict[Path, str]:
    """Each file `names` names, with the name naming it: "d/" names every file under d, a
    glob ("cache/**/*.arrow") the files it matches."""
    found: dict[Path, str] = {}
    for name in names:
        path = workdir / name
        if "*" in name:
            files = sorted(p for p in workdir.glob(name) if p.is_file())
        else:
            files = sorted(p for p in path.rglob("*") if p.is_file()) if name.endswith("/") else [path]
        found.update((item, name) for item in files)
    return found


def check_program(
    run_instrumented: Callable, spool, workdir: Path, program: str, reads: list[str],  # noqa: ANN001
    writes: list[str], counts: Mapping[str, int] | None = None, *,
    env: Mapping[str, str] | None = None, any_count: bool = False,
) -> None:
    """Run `program` under opentelemetry-instrument and check its records: one read of each
    file of `reads` (`counts` read records for a name read more than once; `any_count`: the
    library opens its files several times, one record whatever its count), one write of each
    of `writes`, each with its digest (a read: of the content the file had before the run,
    if it had one) and the program's pid, and no other record but directory listings."""
    before = {path: digest_of(path) for path in workdir.rglob("*") if path.is_file()}
    result = run_instrumented("import os\nprint(os.getpid())\n" + textwrap.dedent(program), env=env)

    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.split()[0])
    run = spool.run()
    counts = counts or {}
    expected = {("read", p): counts.get(n, 1) for p, n in files_named(workdir, reads).items()}
    expected |= {("write", p): 1 for p in files_named(workdir, writes)}
    assert len(expected) >= len(reads) + len(writes), "a file the test names does not exist"
    for (operation, path), count in sorted(expected.items()):
        access = spool.only(run, operation, path)
        digest = (operation == "read" and before.get(path)) or digest_of(path)
        count = access.count if any_count else count
        assert (access.digest, access.count, access.pid) == (digest, count, pid), (operation, path)
    recorded = {
        (a.operation, a.uri) for a in run.accesses
        if a.uri.startswith(spool.uri(workdir)) and a.operation != "list"
    }
    assert recorded == {(operation, spool.uri(path)) for operation, path in expected}
    assert run.capture_errors == []


def library_case(prelude: str, body: str, base_env: dict, workdir: Path) -> dict:
    """`run_case` of `body` after a library's own `prelude` (its instrumentor, a `read()`)."""
    return run_case(prelude + textwrap.dedent(body), base_env, workdir)
