"""Where every benchmark's figures go: its own section of benchmarks/RESULTS.md.

A section sits between `<!-- BEGIN marker -->` and `<!-- END marker -->`; a script's run
replaces its section and nothing else, or appends it when the file has none yet.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
ROOT = RESULTS.parent.parent


def write_section(section: str, marker: str) -> None:
    """`section` (markdown, without the markers) between `marker`'s BEGIN/END comments."""
    begin, end = f"<!-- BEGIN {marker} -->", f"<!-- END {marker} -->"
    block = f"{begin}\n{section.strip(chr(10))}\n{end}"
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# clew benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _match: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text, encoding="utf-8")


def git_state() -> str:
    """The commit measured, and whether clew's code had uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "instrumentation", "exporter", "query", "semconv")
    return commit + (" with uncommitted changes to clew's code" if dirty else " (clew's code clean)")
