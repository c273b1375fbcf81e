"""Ingest of the spool into ClickHouse: incremental, idempotent, exactly once.

Spool files only grow, and their names are unique across processes and hosts, so the store
remembers, per file, the byte ranges it has taken (table `clew_ingest_log`). Each chunk of
whole lines is logged as pending, inserted in one block, then logged as done. After a crash
(even kill -9) the next ingest deletes whatever of a pending chunk reached the store and
inserts the chunk again, so every span, and every lineage row derived from it, lands exactly
once. A torn last line (its writer is mid-write, or died) is left for the next
ingest; a line that does not parse is set aside in `spool/quarantine/` and counted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import rows
from .lineage import IO_TABLE, create_lineage_tables
from .schema import SchemaOptions, create_schema, qualified_name
from .spool import spool_files

_logger = logging.getLogger(__name__)

LOG_TABLE = "clew_ingest_log"
QUARANTINE_DIRNAME = "quarantine"
CHUNK_BYTES = 16 << 20
_TRACE_ID = rows.INSERT_COLUMNS.index("TraceId")
_SPAN_ID = rows.INSERT_COLUMNS.index("SpanId")
_IDS_PER_QUERY = 2000  # ~60 bytes each as SQL text: ~120 KiB a statement


@dataclass
class IngestResult:
    """What one ingest did."""

    files: int = 0
    lines: int = 0
    spans: int = 0
    corrupt: int = 0
    torn: int = 0
    recovered_chunks: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def spans_per_second(self) -> float:
        return self.spans / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Chunk:
    start: int
    end: int
    lines: int
    rows: list[tuple[Any, ...]]
    corrupt: list[tuple[int, bytes]]

    @property
    def span_ids(self) -> list[tuple[str, str]]:
        return [(row[_TRACE_ID], row[_SPAN_ID]) for row in self.rows]


def _log_ddl(options: SchemaOptions) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified_name(options, LOG_TABLE)} "
        "(File String, Start UInt64, End UInt64, Spans UInt64, Done UInt8, "
        "At DateTime64(3) DEFAULT now64(3)) ENGINE = MergeTree ORDER BY (File, Start)"
    )


def _read_chunks(path: Path, offset: int, limit: int) -> Iterator[_Chunk]:
    """Chunks of whole lines from `offset`; stops before a torn last line."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        while True:
            data = handle.read(limit)
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
            converted: list[tuple[Any, ...]] = []
            corrupt: list[tuple[int, bytes]] = []
            lines = 0
            position = offset
            for raw in data[: cut + 1].splitlines(keepends=True):
                try:
                    line_rows = rows.spans_to_rows(json.loads(raw))
                except (ValueError, TypeError, KeyError, AttributeError):
                    corrupt.append((position, raw))
                else:
                    converted += line_rows
                    lines += 1
                position += len(raw)
            yield _Chunk(offset, offset + cut + 1, lines, converted, corrupt)
            offset += cut + 1


class _Ingester:
    def __init__(self, client: Any, options: SchemaOptions, spool: Path) -> None:
        self.client = client
        self.options = options
        self.table = qualified_name(options, options.traces_table)
        self.log_table = qualified_name(options, LOG_TABLE)
        self.io_table = qualified_name(options, IO_TABLE)
        self.quarantine = spool / QUARANTINE_DIRNAME

    def state(
        self, names: list[str] | None
    ) -> tuple[dict[str, int], dict[str, list[tuple[int, int]]]]:
        """Per file: the end of what is done, and the chunks left pending by a crash."""
        where = "WHERE File IN %(names)s" if names is not None else ""
        result = self.client.query(
            f"SELECT File, Start, End, max(Done) FROM {self.log_table} {where} "
            "GROUP BY File, Start, End",
            parameters={"names": names or [""]},
        )
        done: dict[str, int] = {}
        pending: dict[str, list[tuple[int, int]]] = {}
        for name, start, end, finished in result.result_rows:
            if finished:
                done[name] = max(done.get(name, 0), end)
            else:
                pending.setdefault(name, []).append((start, end))
        for name, chunks in pending.items():
            pending[name] = [c for c in chunks if c[1] > done.get(name, 0)]
        return done, pending

    def _log(self, name: str, chunk: _Chunk, spans: int, done: int) -> None:
        self.client.insert(
            self.log_table,
            [[name, chunk.start, chunk.end, spans, done]],
            column_names=["File", "Start", "End", "Spans", "Done"],
        )

    def _insert(self, chunk: _Chunk) -> int:
        if chunk.rows:
            self.client.insert(self.table, chunk.rows, column_names=rows.INSERT_COLUMNS)
        return len(chunk.rows)

    def _set_aside(self, name: str, chunk: _Chunk) -> None:
        self.quarantine.mkdir(parents=True, exist_ok=True)
        with open(self.quarantine / name, "ab") as handle:
            for position, raw in chunk.corrupt:
                handle.write(f"# offset {position}\n".encode() + raw.rstrip(b"\n") + b"\n")

    def take(self, name: str, chunk: _Chunk, result: IngestResult) -> None:
        spans = len(chunk.rows)
        self._log(name, chunk, spans, 0)
        if chunk.corrupt:
            self._set_aside(name, chunk)
            result.corrupt += len(chunk.corrupt)
        result.spans += self._insert(chunk)
        result.lines += chunk.lines
        self._log(name, chunk, spans, 1)

    def recover(self, path: Path, start: int, end: int, result: IngestResult) -> None:
        """Finish a chunk a crashed ingest left pending, without duplicating a span.

        A kill can land between the commits of the tables one insert writes: the chunk's
        rows may be in otel_traces, in any subset of the views derived from it, or nowhere.
        So the chunk is taken again from scratch: its spans are deleted where a second copy
        would count twice (otel_traces and clew_io), then inserted, which runs every view
        again; the other lineage tables are idempotent (issue 3).
        """
        chunk = next(_read_chunks(path, start, end - start), None)
        if chunk is None or chunk.end != end:
            raise RuntimeError(f"{path.name}: pending chunk {start}-{end} no longer matches")
        ids = chunk.span_ids
        for table, columns in ((self.table, "TraceId, SpanId"), (self.io_table, "RunId, SpanId")):
            self._delete(table, columns, ids)
        result.spans += self._insert(chunk)
        result.lines += chunk.lines
        self._log(path.name, chunk, len(ids), 1)
        result.recovered_chunks += 1

    def _delete(self, table: str, columns: str, ids: list[tuple[str, str]]) -> None:
        """Delete the rows whose (`columns`) are among `ids`, if there are any. The ids are
        written into the statements, so they go in batches that stay below ClickHouse's
        max_query_size (256 KiB by default; a 16 MiB chunk holds tens of thousands)."""
        for first in range(0, len(ids), _IDS_PER_QUERY):
            batch = {"ids": ids[first : first + _IDS_PER_QUERY]}
            where = f"WHERE ({columns}) IN %(ids)s"
            found = self.client.query(f"SELECT count() FROM {table} {where}", parameters=batch)
            if found.result_rows[0][0]:
                self.client.command(f"DELETE FROM {table} {where}", parameters=batch)


def prepare_store(client: Any, options: SchemaOptions | None = None) -> None:
    """Create the Collector's tables, clew's lineage tables and the ingest log (idempotent)."""
    options = options or SchemaOptions()
    create_schema(client, options)
    create_lineage_tables(client, options)
    client.command(_log_ddl(options))


def ingest(
    client: Any,
    spool: Path,
    *,
    files: list[Path] | None = None,
    options: SchemaOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    prepare: bool = True,
) -> IngestResult:
    """Ingest everything new in the spool directory `spool` into the store behind `client`.

    Args:
        client: A clickhouse-connect client (see `clew.exporter.store.connect`).
        spool: The spool directory; corrupt lines are set aside under it.
        files: Only these spool files (default: every file in `spool`).
        options: Where the tables are.
        progress: Called as `progress(done_bytes, total_bytes)` after each chunk.
        chunk_bytes: How much of a file one insert takes.
        prepare: Create the tables first; pass False when this client already did.
    """
    options = options or SchemaOptions()
    started = time.perf_counter()
    if prepare:
        prepare_store(client, options)
    ingester = _Ingester(client, options, spool)
    done, pending = ingester.state([p.name for p in files] if files is not None else None)
    result = IngestResult()
    files = spool_files(spool) if files is None else files
    sizes = {path: path.stat().st_size for path in files}
    total = sum(max(0, size - done.get(path.name, 0)) for path, size in sizes.items())
    taken = 0
    for path in files:
        offset = done.get(path.name, 0)
        for start, end in sorted(pending.get(path.name, [])):
            ingester.recover(path, start, end, result)
            offset = max(offset, end)
        if sizes[path] <= offset:
            continue
        result.files += 1
        reached = offset
        for chunk in _read_chunks(path, offset, chunk_bytes):
            ingester.take(path.name, chunk, result)
            taken += chunk.end - chunk.start
            reached = chunk.end
            if progress is not None:
                progress(taken, total)
        if reached < sizes[path]:
            result.torn += 1
    if result.corrupt:
        message = (
            f"{result.corrupt} corrupt spool lines set aside in {ingester.quarantine}"
        )
        result.warnings.append(message)
        _logger.warning("clew: %s", message)
    result.seconds = time.perf_counter() - started
    return result
