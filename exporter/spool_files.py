"""The spool's files as its readers see them: where the spool is, which files it holds and
how big they are, and their whole lines (`spool.py` writes them). Readers import this
module, not the writer's: a query command need not import OpenTelemetry's SDK."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clew.semconv import environment

SUFFIX = ".jsonl"


def spool_directory(home: Path | None = None) -> Path:
    """`<home>/spool`, home defaulting to clew's resolved home."""
    return (home or environment.resolve_home()) / environment.SPOOL_DIRNAME


@dataclass(frozen=True)
class SpoolLine:
    """One parsed line of a spool file."""

    path: Path
    offset: int
    data: dict


@dataclass
class SpoolProblems:
    """Lines a reader could not use: corrupt ones, and a torn last line still being written."""

    corrupt: list[tuple[Path, int]]
    torn: list[Path]


def spool_files(directory: Path) -> list[Path]:
    """The spool's files, oldest first."""
    return [directory / name for name in spool_sizes(directory)]


def spool_sizes(directory: Path) -> dict[str, int]:
    """The spool's files by name, oldest first, with their sizes now."""
    found: dict[str, int] = {}
    try:
        # scandir: a spool holds one file per process, thousands of them, and every query
        # command lists it; DirEntry gives the type without a stat and the size with one.
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith(SUFFIX) and entry.is_file():
                    try:
                        found[entry.name] = entry.stat().st_size
                    except FileNotFoundError:
                        continue  # removed since the listing (`clew spool` pruning, a user)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return dict(sorted(found.items()))


def read_spool(directory: Path, problems: SpoolProblems | None = None) -> Iterator[SpoolLine]:
    """Yield every whole, valid line of every spool file.

    A last line without its newline is being written (or its writer crashed): it is skipped
    and noted as torn. A line that does not parse (or nests deeper than the parser
    recurses) is skipped and noted as corrupt.
    """
    for path in spool_files(directory):
        offset = 0
        with open(path, "rb") as handle:
            for raw in handle:
                start = offset
                offset += len(raw)
                if not raw.endswith(b"\n"):
                    if problems is not None:
                        problems.torn.append(path)
                    break
                try:
                    data = json.loads(raw)
                except (ValueError, RecursionError):
                    if problems is not None:
                        problems.corrupt.append((path, start))
                    continue
                if isinstance(data, dict):
                    yield SpoolLine(path, start, data)
                elif problems is not None:
                    problems.corrupt.append((path, start))
