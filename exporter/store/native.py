"""Rows as one block of ClickHouse's Native format, for `client.raw_insert(..., fmt="Native")`.

`client.insert` builds the same bytes on the inserting thread and, on its way, imports pandas
and numpy (to ask whether the rows are a DataFrame: ~0.3 s, before an ingest's first insert
can start). Here the columns are written by clickhouse-connect's own serializers for their
types, pivoted from rows by its C helper and cut into blocks as `client.insert` does: the
same bytes, without the statement in front, so the same rows reach the tables.
(Writing `LowCardinality(String)` columns as plain `String`, for ClickHouse to convert as
it reads them, was measured and not taken: no cheaper in Python, dearer in chDB.)

The serializers are not clickhouse-connect's public API: `native_blocks` returns None when
they are missing, and the caller inserts with `client.insert` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Rows per block: about the ~2 MiB blocks clickhouse-connect cuts of clew's rows (~1 KiB
# each). One block of a whole batch (~28k rows) took 30 % longer to write: its columns no
# longer fit in the caches.
_BLOCK_ROWS = 2048


class NativeBlocks:
    """Encodes rows for `column_names` of `table` (the store tells their types)."""

    def __init__(self, client: Any, table: str, column_names: Sequence[str]) -> None:
        from clickhouse_connect.driver.common import write_leb128
        from clickhouse_connect.driver.ctypes import data_conv

        self._leb128 = write_leb128
        self._pivot = data_conv.pivot  # rows to columns, in C where it is built
        # The context carries what the serializers read (string encoding, time zone); it never
        # holds rows, so nothing here checks them for a DataFrame.
        self._context = client.create_insert_context(table, column_names=list(column_names))
        self._types = list(self._context.column_types)
        self._headers = []
        for name, kind in zip(column_names, self._types):
            header = bytearray()
            for text in (name.encode(), kind.insert_name.encode()):
                write_leb128(len(text), header)
                header += text
            self._headers.append(bytes(header))

    def encode(self, rows: Sequence[Sequence[Any]]) -> bytes | None:
        """`rows` (tuples in the column order) as Native blocks; None when there are none.
        Raises what a serializer raises for a value its type cannot hold."""
        if not rows:
            return None
        blocks = []
        for first in range(0, len(rows), _BLOCK_ROWS):
            last = min(first + _BLOCK_ROWS, len(rows))
            block = bytearray()
            self._leb128(len(self._headers), block)
            self._leb128(last - first, block)
            for header, kind, column in zip(self._headers, self._types,
                                            self._pivot(rows, first, last)):
                block += header
                kind.write_column(column, block, self._context)
            blocks.append(block)
        return b"".join(blocks)


def native_blocks(client: Any, table: str, column_names: Sequence[str]) -> NativeBlocks | None:
    """A `NativeBlocks`, or None when this clickhouse-connect lacks the serializers it uses."""
    try:
        return NativeBlocks(client, table, column_names)
    except (ImportError, AttributeError):
        return None
