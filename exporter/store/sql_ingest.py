"""One insert's spool lines converted and inserted by the embedded store itself.

The lines go into a temporary table as they are (RowBinary: a number and the bytes). One
query (sql_rows.check_sql) reads back, per line, whether chDB may take it by its text, and
the trace ids of its spans (its runs, and how many spans it has); one `INSERT ... SELECT`
(sql_rows.insert_sql) then converts those lines into otel_traces, whose views fill clew's
lineage tables. The lines left (a value kind or a malformed line that only rows.py converts
exactly, or sets aside) go back to ingest, which converts them in Python, as it does every
line for a ClickHouse server. A value that only rows.py converts exactly, found while
inserting, fails the insert: ingest then deletes what landed and converts the whole batch
in Python (never so for clew's own lines: their values are strings, ints, bools and lists of
strings or ints).

Why only for chDB: a temporary table lives in a session, and clickhouse-connect's HTTP
client sends each statement on its own (a server behind a load balancer may even take them
on different nodes), while the embedded store is one session in this process. A server's
CPU is not the ingesting machine's either, so its Python conversion costs what it did.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from . import sql_rows

_LINE_NUMBER = struct.Struct("<I")
# Staged in blocks of this many lines (~2 MB of spool), not one: the statements over the
# table then run on every core, a block to a thread.
_BLOCK_LINES = 16
_BLOCKS = {"max_insert_block_size": _BLOCK_LINES, "min_insert_block_size_rows": _BLOCK_LINES,
           "min_insert_block_size_bytes": 0}


@dataclass(frozen=True)
class StagedLines:
    """What chDB makes of staged lines, per line in the order they were staged."""

    spans: list[int]  # spans of each line it converts (0 for one it leaves)
    unconverted: list[int]  # numbers of the lines it leaves to rows.py, in order
    runs: set[str]  # trace ids of the spans it converts


def _varint(size: int) -> bytes:
    out = bytearray()
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out)


class Staging:
    """The staging table of one client's session, and the statements over it."""

    def __init__(self, client: Any, traces_table: str) -> None:
        self.client = client
        self.traces_table = traces_table
        client.command(sql_rows.stage_ddl())

    def stage(self, lines: list[bytes]) -> StagedLines:
        """Stage `lines` (each without its newline); what chDB makes of them."""
        self.clear()
        block = b"".join(part for number, line in enumerate(lines)
                         for part in (_LINE_NUMBER.pack(number), _varint(len(line)), line))
        self.client.raw_insert(sql_rows.STAGE_LINES, None, block, fmt="RowBinary",
                               settings=_BLOCKS)
        del block
        spans = [0] * len(lines)
        unconverted = []
        runs: set[str] = set()
        for number, text_ok, trace_ids in self.client.query(sql_rows.check_sql()).result_rows:
            if text_ok:
                spans[number] = len(trace_ids)
                runs.update(trace_ids)
            else:
                unconverted.append(number)
        # as rows.py writes a trace id (its hex checked by the insert)
        runs = {"" if run.strip("0") == "" else run.lower() for run in runs}
        return StagedLines(spans, unconverted, runs)

    def insert(self, staged: StagedLines) -> None:
        """The lines chDB takes into otel_traces, in one statement (one insert, as clew's
        Python path makes one per batch)."""
        self.client.command(sql_rows.insert_sql(self.traces_table, staged.unconverted))

    def clear(self) -> None:
        self.client.command(f"TRUNCATE TABLE {sql_rows.STAGE_LINES}")
