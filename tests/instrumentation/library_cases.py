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
    """Each file `names` names, with the name naming it: "d/" names every file under d."""
    found: dict[Path, str] = {}
    for name in names:
        path = workdir / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if name.endswith("/") else [path]
        found.update((item, name) for item in files)
    return found


def check_program(
    run_instrumented: Callable, spool, workdir: Path, program: str, reads: list[str],  # noqa: ANN001
    writes: list[str], counts: Mapping[str, int] | None = None,
) -> None:
    """Run `program` under opentelemetry-instrument and check its records: one read of each
    file of `reads` (`counts` read records for a name read more than once), one write of each
    of `writes`, each with its digest and the program's pid, and no other record."""
    result = run_instrumented("import os\nprint(os.getpid())\n" + textwrap.dedent(program))

    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.split()[0])
    run = spool.run()
    counts = counts or {}
    expected = {("read", p): counts.get(n, 1) for p, n in files_named(workdir, reads).items()}
    expected |= {("write", p): 1 for p in files_named(workdir, writes)}
    assert len(expected) >= len(reads) + len(writes), "a file the test names does not exist"
    for (operation, path), count in sorted(expected.items()):
        access = spool.only(run, operation, path)
        assert (access.digest, access.count, access.pid) == (digest_of(path), count, pid), path
    recorded = {(a.operation, a.uri) for a in run.accesses if a.uri.startswith(spool.uri(workdir))}
    assert recorded == {(operation, spool.uri(path)) for operation, path in expected}
    assert run.capture_errors == []


def library_case(prelude: str, body: str, base_env: dict, workdir: Path) -> dict:
    """`run_case` of `body` after a library's own `prelude` (its instrumentor, a `read()`)."""
    return run_case(prelude + textwrap.dedent(body), base_env, workdir)
