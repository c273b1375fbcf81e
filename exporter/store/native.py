"""Rows as blocks of ClickHouse's Native format, for `client.raw_insert(..., fmt="Native")`.

`client.insert` makes these bytes on the inserting thread and, on its way, imports pandas and
numpy (to ask whether the rows are a DataFrame: ~0.2-0.5 s, before an ingest's first insert
can start). Here the rows are pivoted to columns by clickhouse-connect's C helper and cut into
blocks as `client.insert` cuts them; strings, numbers and times are written by its
serializers (C), while arrays, maps and LowCardinality columns, which it writes with a Python
loop over every value, are written with loops that run in C (`_write`). The bytes are
clickhouse-connect's, byte for byte (checked on the 100k benchmark spool at the same block
size), without the statement in front: 15-30 % less time than its serializer, and no pandas.
The attribute maps, Map(LowCardinality(String), String), are written in one C pass by
`_native_maps.c` where it is built (the same bytes).
(Writing `LowCardinality(String)` columns as plain `String`, for ClickHouse to convert as
it reads them, was measured and not taken: no cheaper in Python, dearer in chDB.)

The serializers are not clickhouse-connect's public API: `native_blocks` returns None when
they are missing, and the caller inserts with `client.insert` instead.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from itertools import accumulate, chain
from math import log
from typing import Any

try:
    from ._native_maps import write_string_maps as _write_string_maps
except ImportError:  # not built (no compiler at install): the maps are written in Python
    _write_string_maps = None

# Rows per block: about the ~2 MiB blocks clickhouse-connect cuts of clew's rows (~1 KiB
# each). One block of a whole batch (~28k rows) took 30 % longer to write: its columns no
# longer fit in the caches.
_BLOCK_ROWS = 2048
# The attribute maps' type, which _native_maps.c writes in one pass.
_STRING_MAP = "Map(LowCardinality(String), String)"
# Before a LowCardinality column's dictionary: the keys' size (0-3: 1-8 bytes), a dictionary
# that comes with this block (1 << 9) and holds every key (1 << 10).
_LOW_CARDINALITY_FLAGS = [((1 << 9) | (1 << 10) | size).to_bytes(8, "little") for size in range(4)]


class NativeBlocks:
    """Encodes rows for `column_names` of `table` (the store tells their types)."""

    def __init__(self, client: Any, table: str, column_names: Sequence[str]) -> None:
        from clickhouse_connect.datatypes.container import Array, Map
        from clickhouse_connect.driver.common import array_type, write_array, write_leb128
        from clickhouse_connect.driver.ctypes import data_conv

        self._leb128 = write_leb128
        self._pivot = data_conv.pivot  # rows to columns, in C where it is built
        self._map_columns = data_conv.build_map_columns
        self._array_type, self._write_array = array_type, write_array
        self._array_kind, self._map_kind = Array, Map
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
                kind.write_column_prefix(block)
                self._write(kind, column, block)
            blocks.append(block)
        return b"".join(blocks)

    def _write(self, kind: Any, column: Sequence[Any], block: bytearray) -> None:
        """The data of one column, as `kind.write_column_data` writes it. Arrays, maps and
        LowCardinality columns are written here with loops that run in C (map, accumulate,
        dict.fromkeys), where clickhouse-connect loops over each value in Python: they are
        most of clew's values (a span's attribute keys, and the events' and links' arrays)."""
        if not column:
            kind.write_column_data(column, block, self._context)
        elif isinstance(kind, self._array_kind):
            offsets = array("Q", accumulate(map(len, column)))
            if sys.byteorder == "big":
                offsets.byteswap()
            block += offsets.tobytes()
            self._write(kind.element_type, list(chain.from_iterable(column)), block)
        elif isinstance(kind, self._map_kind):
            if kind.name == _STRING_MAP and _write_string_maps is not None and \
                    _write_string_maps(column, block):
                return
            keys, values = self._map_columns(column, block)  # writes the offsets
            self._write(kind.key_type, keys, block)
            self._write(kind.value_type, values, block)
        elif kind.low_card and not kind.nullable:
            # The distinct values in the order first seen, then each value's position among
            # them: the dictionary and the keys clickhouse-connect builds, byte for byte.
            index = list(dict.fromkeys(column))
            position = dict(zip(index, range(len(index))))
            size = int(log(len(index), 2)) >> 3  # 1, 2, 4 or 8 bytes a key, as it chooses
            block += _LOW_CARDINALITY_FLAGS[size] + len(index).to_bytes(8, "little")
            kind._write_column_binary(index, block, self._context)
            block += len(column).to_bytes(8, "little")
            self._write_array(self._array_type(1 << size, False),
                              list(map(position.__getitem__, column)), block)
        else:
            kind.write_column_data(column, block, self._context)


def native_blocks(client: Any, table: str, column_names: Sequence[str]) -> NativeBlocks | None:
    """A `NativeBlocks`, or None when this clickhouse-connect lacks the serializers it uses."""
    try:
        return NativeBlocks(client, table, column_names)
    except (ImportError, AttributeError):
        return None
