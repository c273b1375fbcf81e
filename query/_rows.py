"""`clew sql`'s rows as the text formats people pipe ClickHouse results in: TSV, CSV and
JSON lines, each value whole and exact (the table is for reading, `--format json` is the
versioned document)."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Sequence
from typing import IO, Any

from ._output import write_json

ROW_FORMATS = ("tsv", "csv", "jsonl")

# ClickHouse's TabSeparated escapes, so that each row is one line and each value one field.
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                              "\0": "\\0", "\b": "\\b", "\f": "\\f"})
_NULL = "\\N"  # ClickHouse's NULL in TSV and CSV


def _text(value: Any) -> str:
    """A value as ClickHouse writes it in TSV and CSV; arrays, tuples and maps as JSON."""
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def write_rows(fmt: str, names: Sequence[str], rows: Sequence[Sequence[Any]],
               stream: IO[str]) -> None:
    """`rows` in one of ROW_FORMATS: tsv and csv with a first line of column names (as
    ClickHouse's TSVWithNames and CSVWithNames), jsonl one object per row."""
    if fmt == "jsonl":
        for row in rows:
            write_json(dict(zip(names, row)), stream, indent=False)
    elif fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_text(value) for value in row] for row in rows)
    elif fmt == "tsv":
        for line in (names, *([_text(value) for value in row] for row in rows)):
            stream.write("\t".join(field.translate(_TSV_ESCAPES) for field in line) + "\n")
    else:
        raise ValueError(f"unknown row format {fmt!r}: one of {', '.join(ROW_FORMATS)}")
