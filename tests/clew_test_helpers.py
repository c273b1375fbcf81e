"""Helpers the tests share, beyond fixtures (imported by name: tests/ has no packages).

`invoke_clew` runs the `clew` CLI in-process as a user would after their runs;
`takes_xattrs` says whether clew's producer stamps can live on local files here.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
