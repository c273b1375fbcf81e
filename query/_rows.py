"""`clew sql`'s rows as the text formats people pipe ClickHouse results in: TSV, CSV and
JSON lines, each value whole and exact (the table is for reading, `--format json` is the
versioned document)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import IO, Any

from ._output import write_json

# ClickHouse's TabSeparated escapes, so that each row is one line and each value one field.
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                              "\0": "\\0", "\b": "\\b", "\f": "\\f"})
_NULL = "\\N"  # ClickHouse's NULL in TSV and CSV


def _text(value: Any) -> str:
    """A value as ClickHouse writes it in TSV and CSV (a time as `--format json` writes it:
    2026-11-26 15:43:28.123456); arrays, tuples and maps as JSON."""
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _tsv(names: Sequence[str], rows: Sequence[Sequence[Any]], stream: IO[str]) -> None:
    for line in (names, *([_text(value) for value in row] for row in rows)):
        stream.write("\t".join(field.translate(_TSV_ESCAPES) for field in line) + "\n")


def _csv(names: Sequence[str], rows: Sequence[Sequence[Any]], stream: IO[str]) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([_text(value) for value in row] for row in rows)


def _jsonl(names: Sequence[str], rows: Sequence[Sequence[Any]], stream: IO[str]) -> None:
    for row in rows:
        write_json(dict(zip(names, row)), stream, indent=False)


# tsv and csv with a first line of column names (ClickHouse's TSVWithNames, CSVWithNames).
_WRITERS = {"tsv": _tsv, "csv": _csv, "jsonl": _jsonl}
ROW_FORMATS = tuple(_WRITERS)


def write_rows(fmt: str, names: Sequence[str], rows: Sequence[Sequence[Any]],
               stream: IO[str]) -> None:
    """`rows` in `fmt`, one of ROW_FORMATS."""
    _WRITERS[fmt](names, rows, stream)
