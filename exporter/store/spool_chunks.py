"""The spool as ingest takes it: chunks of whole lines, and their conversion in Python.

A chunk is the whole lines of one spool file from an offset, up to about one insert's
bytes; a torn last line (its writer is mid-write, or died) is left for the next ingest.
`convert` turns a chunk's lines into rows with rows.py, each line on its own, so that a
line that does not convert is set aside (with where it was and why) and the others land.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import rows

TRACE_ID = rows.INSERT_COLUMNS.index("TraceId")
SPAN_ID = rows.INSERT_COLUMNS.index("SpanId")
_REASON_CHARS = 160
# A line does not convert when it is no JSON, no OTLP (a missing key, a list for an object),
# holds a value out of range, or nests deeper than the parsers recurse.
_LINE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, RecursionError)


@dataclass(frozen=True)
class BadLine:
    """A spool line that cannot be stored, where it starts in its file, and why."""

    offset: int
    raw: bytes
    reason: str


@dataclass(frozen=True)
class RawChunk:
    """Whole lines of a spool file, from `start` to `end` (the last byte is a newline)."""

    start: int
    end: int
    data: bytes

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """Each line's offset and bytes (without its newline), as the store reads them."""
        offset = self.start
        for line in self.data.split(b"\n")[:-1]:
            yield offset, line
            offset += len(line) + 1


@dataclass(frozen=True)
class Chunk:
    """A chunk's lines, converted by rows.py."""

    start: int
    end: int
    rows: list[tuple[Any, ...]]
    lines: list[tuple[int, int]]  # per line converted: its offset, where its rows end in `rows`
    corrupt: list[BadLine]

    @property
    def span_ids(self) -> list[tuple[str, str]]:
        return span_ids(self.rows)

    def line_rows(self, index: int) -> list[tuple[Any, ...]]:
        first = self.lines[index - 1][1] if index else 0
        return self.rows[first : self.lines[index][1]]


def span_ids(rows_: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
    return [(row[TRACE_ID], row[SPAN_ID]) for row in rows_]


def reason(error: BaseException) -> str:
    """Why a line was set aside, on one short line."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    text = f"{type(error).__name__}: {' '.join(str(error).split())}"
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


try:
    import orjson
except ImportError:  # a capture-only install: the CLI imports this module without the extra
    _loads = json.loads
else:

    def _loads(raw: bytes) -> Any:
        """One spool line, parsed. orjson (the `store` extra) is ~1.4x faster than json
        here; it refuses a few things json takes (NaN, which json.dumps writes for a NaN
        attribute; lone surrogates), so such a line gets json's verdict rather than being
        set aside."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return json.loads(raw)


def read_chunks(path: Path, offset: int, limit: int) -> Iterator[RawChunk]:
    """Chunks of whole lines from `offset`; stops before a torn last line."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        while True:
            # read(n) allocates n bytes first: a spool file (one per process) mostly holds
            # far less than a chunk, so ask for no more than it has.
            data = handle.read(max(0, min(limit, os.fstat(handle.fileno()).st_size - offset)))
            if not data:
                return
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) < limit:
                    return  # only a torn line remains
                # One line longer than the chunk size: read on to its end.
                rest = handle.readline()
                if not rest.endswith(b"\n"):
                    return
                data += rest
                cut = len(data) - 1
            else:
                handle.seek(offset + cut + 1)
                if cut + 1 < len(data):
                    data = data[: cut + 1]
            yield RawChunk(offset, offset + cut + 1, data)
            offset += cut + 1


def convert(chunk: RawChunk) -> Chunk:
    """The chunk's lines as rows, in Python; the lines that do not convert set aside."""
    converted: list[tuple[Any, ...]] = []
    lines: list[tuple[int, int]] = []
    corrupt: list[BadLine] = []
    position = chunk.start
    for raw in chunk.data.splitlines(keepends=True):
        try:
            line_rows = rows.spans_to_rows(_loads(raw))
        except _LINE_ERRORS as error:
            corrupt.append(BadLine(position, raw, reason(error)))
        else:
            converted += line_rows
            lines.append((position, len(converted)))
        position += len(raw)
    return Chunk(chunk.start, chunk.end, converted, lines, corrupt)


def read_line(path: Path, offset: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.readline()


def batches(offsets: dict[Path, int], limit: int) -> Iterator[list[tuple[Path, RawChunk]]]:
    """Chunks of the files from their offsets, gathered until they hold `limit` bytes: one
    insert per file would make most inserts tiny (one spool file per process)."""
    batch: list[tuple[Path, RawChunk]] = []
    size = 0
    for path, offset in offsets.items():
        for chunk in read_chunks(path, offset, limit):
            batch.append((path, chunk))
            size += chunk.end - chunk.start
            if size >= limit:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def converted(
    batches_: Iterator[list[tuple[Path, RawChunk]]]
) -> Iterator[list[tuple[Path, Chunk]]]:
    """`batches_`, each chunk converted in Python."""
    for batch in batches_:
        yield [(path, convert(chunk)) for path, chunk in batch]
