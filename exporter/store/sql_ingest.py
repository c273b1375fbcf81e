"""One insert's spool lines converted and inserted by the embedded store itself.

The lines go into a temporary table as they are (RowBinary: a number and the bytes), one
`INSERT ... SELECT` (sql_rows.py) converts them into a second temporary table, and one more
moves the rows of every line that converted into otel_traces, whose views fill clew's
lineage tables. Python only splits lines and reads back, per line, how many spans it gave
and whether it converted: the lines that did not (rare: a value kind or a malformed line
sql_rows.py leaves to rows.py) are returned to ingest, which converts them in Python or
sets them aside, as it does every line for a ClickHouse server.

Why only for chDB: temporary tables live in a session, and clickhouse-connect's HTTP client
sends each statement on its own (a server behind a load balancer may even take them on
different nodes), while the embedded store is one session in this process. A server's CPU
is not the ingesting machine's either, so its Python conversion costs what it did.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from . import sql_rows
from .rows import INSERT_COLUMNS

_LINE_NUMBER = struct.Struct("<I")
# Rows of lines that converted, the only ones that reach otel_traces.
_CONVERTED = (f"Span AND Line NOT IN (SELECT Line FROM {sql_rows.STAGE_ROWS} "
              "WHERE NOT Converted)")


@dataclass(frozen=True)
class StagedLines:
    """What converting staged lines gave, per line in the order they were staged."""

    spans: list[int]  # spans of each line that converted (0 for one that did not)
    unconverted: list[int]  # numbers of the lines left to rows.py, in order
    runs: list[str]  # trace ids of the converted spans, distinct


def _varint(size: int) -> bytes:
    out = bytearray()
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out)


class Staging:
    """The temporary tables of one client's session, and the statements over them."""

    def __init__(self, client: Any, traces_table: str) -> None:
        self.client = client
        self.traces_table = traces_table
        for ddl in sql_rows.stage_ddl(traces_table):
            client.command(ddl)

    def convert(self, lines: list[bytes]) -> StagedLines:
        """Stage `lines` (each without its newline) and convert them."""
        self.clear()
        block = b"".join(part for number, line in enumerate(lines)
                         for part in (_LINE_NUMBER.pack(number), _varint(len(line)), line))
        self.client.raw_insert(sql_rows.STAGE_LINES, None, block, fmt="RowBinary")
        del block
        self.client.command(sql_rows.convert_sql())
        spans = [0] * len(lines)
        unconverted = []
        for number, count, converted in self.client.query(
            f"SELECT Line, countIf(Span), min(Converted) FROM {sql_rows.STAGE_ROWS} "
            "GROUP BY Line ORDER BY Line"
        ).result_rows:
            if converted:
                spans[number] = count
            else:
                unconverted.append(number)
        runs = [run for (run,) in self.client.query(
            f"SELECT DISTINCT TraceId FROM {sql_rows.STAGE_ROWS} WHERE {_CONVERTED}"
        ).result_rows]
        return StagedLines(spans, unconverted, runs)

    def insert(self) -> None:
        """The converted rows into otel_traces, in one statement (one insert, as clew's
        Python path makes one per batch)."""
        columns = ", ".join(f"`{column}`" for column in INSERT_COLUMNS)
        self.client.command(
            f"INSERT INTO {self.traces_table} ({columns}) SELECT {columns} "
            f"FROM {sql_rows.STAGE_ROWS} WHERE {_CONVERTED}")

    def span_ids(self) -> list[tuple[str, str]]:
        """(TraceId, SpanId) of the converted rows: what a failed insert may have left."""
        return [tuple(row) for row in self.client.query(
            f"SELECT TraceId, SpanId FROM {sql_rows.STAGE_ROWS} WHERE {_CONVERTED}"
        ).result_rows]

    def clear(self) -> None:
        for table in (sql_rows.STAGE_LINES, sql_rows.STAGE_ROWS):
            self.client.command(f"TRUNCATE TABLE {table}")
