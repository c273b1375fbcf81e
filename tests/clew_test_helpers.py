"""Helpers the tests share, beyond fixtures (imported by name: tests/ has no packages).

`invoke_clew` runs the `clew` CLI in-process as a user would after their runs;
`takes_xattrs` says whether clew's producer stamps can live on local files here;
`clean_environment` is the environment every program under test starts from; `file_uri` and
`digest_of` are what clew should record for a local file; `wait_for_writers` waits out the
processes still writing a spool.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import blake3

# Settings of the caller that would change what a program under test records or where.
_INHERITED_SETTINGS = ("OTEL_", "CLEW_")
_INHERITED_NAMES = ("TRACEPARENT", "TRACESTATE", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONWARNINGS")


def clean_environment(
    prefixes: tuple[str, ...] = (), names: tuple[str, ...] = ()
) -> dict[str, str]:
    """os.environ without anything that configures OpenTelemetry, clew or the interpreter,
    nor the variables that start with `prefixes` or are named in `names`."""
    prefixes = _INHERITED_SETTINGS + prefixes
    names = _INHERITED_NAMES + names
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(prefixes) and name not in names
    }


def file_uri(path: str | os.PathLike[str]) -> str:
    """The canonical URI clew gives a local file: `file://<host>/<absolute path>`."""
    return f"file://{socket.gethostname()}{quote(os.path.abspath(path), safe='/:@!$&()*+,;=~-._')}"


def digest_of(data: bytes) -> str:
    """The content digest clew should record for `data`."""
    return "blake3:" + blake3.blake3(data).hexdigest()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_succeeded(result: Any) -> None:
    """`result` (a CompletedProcess) exited 0; its output is the message if not."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def wait_for_writers(directory: Path, timeout: float = 15.0) -> None:
    """Wait until every process that has a spool file in `directory` has exited.

    Helper processes (multiprocessing's forkserver and resource tracker, DataLoader
    workers) outlive the program by a moment and flush when they see it gone.
    """
    deadline = time.monotonic() + timeout
    for path in sorted(directory.glob("*.jsonl")) if directory.is_dir() else []:
        pid = _writer_pid(path)
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _writer_pid(path: Path) -> int | None:
    # Spool files are named <time>-<host>-<pid>-<random>.jsonl; the host may contain dashes.
    parts = path.stem.split("-")
    try:
        return int(parts[-2])
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; its spool writes are done.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def takes_xattrs(directory: Path) -> bool:
    """Whether files in `directory` take user xattrs (clew's producer stamps on local files)."""
    probe = directory / ".xattr-probe"
    probe.write_text("")
    try:
        os.setxattr(probe, "user.probe", b"1")
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


@dataclass
class CliResult:
    """What one `clew ...` command returned and printed."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def invoke_clew(home: Path, workdir: Path, *args: str) -> CliResult:
    """Run `clew --home HOME ARGS` in-process in `workdir`, as a user would after their
    runs, and release the embedded store after."""
    from clew.exporter.store import connection as store
    from clew.query.cli import main

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        code = main(["--home", str(home), *args], stdout=out, stderr=err)
    finally:
        os.chdir(cwd)
        store.close(f"chdb://{home / 'db'}")
    return CliResult(code, out.getvalue(), err.getvalue())
