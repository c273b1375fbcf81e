"""Ingest of the spool into ClickHouse: incremental, idempotent, exactly once.

Spool files only grow, and their names are unique across processes and hosts, so the store
remembers, per file, the byte ranges it has taken (table `clew_ingest_log`). Each chunk of
whole lines is logged as pending, inserted in one block, then logged as done. After a crash
(even kill -9) the next ingest deletes whatever of a pending chunk reached the store and
inserts the chunk again, so every span, and every lineage row derived from it, lands exactly
once. A torn last line (its writer is mid-write, or died) is left for the next
ingest. A line that cannot be stored (it does not parse, is not OTLP, or the store refuses
its rows) is set aside in `spool/quarantine/`, counted and named in a warning, and every
other line lands: when the store refuses an insert, its halves are inserted on their own,
down to the lines it refuses.

Speed (benchmarks/store/, RESULTS.md): one spool file per process means thousands of small
files, so chunks of many files go into one insert (each insert costs parts in every table
and view); lines are parsed with orjson, with the cyclic garbage collector paused; and the
next insert's rows are converted in a thread while ClickHouse inserts the current ones.
"""

from __future__ import annotations

import gc
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from . import rows
from .native import NativeBlocks, native_blocks
from .lineage import IO_TABLE, OUTPUTS_TABLE, create_lineage_tables
from .connection import embedded_client, second_handle
from .links import link_all, link_runs, list_runs, unlink_runs
from .schema import SchemaOptions, create_schema, qualified_name
from ..spool_files import spool_sizes

LOG_TABLE = "clew_ingest_log"
QUARANTINE_DIRNAME = "quarantine"
# Bigger inserts make fewer parts to write and merge: 64 MiB took ~15 % less CPU than 16 MiB
# on a 1M-span spool, for ~300 MB more peak memory (docs/architecture.md).
CHUNK_BYTES = 64 << 20
# Each batch after the first at most this many times the one before, up to CHUNK_BYTES: a
# batch's conversion runs beside the previous batch's insert, and a 64 MiB conversion took
# longer than the first (16 MiB) insert, the inserting thread idle meanwhile.
_GROWTH = 2
_LOG_COLUMNS = ["File", "Start", "End", "Spans", "Done"]
_TRACE_ID = rows.INSERT_COLUMNS.index("TraceId")
_SPAN_ID = rows.INSERT_COLUMNS.index("SpanId")
_IDS_PER_QUERY = 2000  # ~60 bytes each as SQL text: ~120 KiB a statement
_WARNED_LINES = 20  # lines set aside that one ingest names; a summary says how many more
_REASON_CHARS = 160
# A line does not convert when it is no JSON, no OTLP (a missing key, a list for an object),
# holds a value out of range, or nests deeper than the parsers recurse.
_LINE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, RecursionError)
# The comment before each line set aside; older ones end after the offset.
_QUARANTINED = re.compile(rb"^# offset (\d+)[,\n]", re.MULTILINE)


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
class _BadLine:
    """A spool line that cannot be stored, where it starts in its file, and why."""

    offset: int
    raw: bytes
    reason: str


@dataclass(frozen=True)
class _Chunk:
    start: int
    end: int
    rows: list[tuple[Any, ...]]
    lines: list[tuple[int, int]]  # per line converted: its offset, where its rows end in `rows`
    corrupt: list[_BadLine]

    @property
    def span_ids(self) -> list[tuple[str, str]]:
        return _span_ids(self.rows)

    def line_rows(self, index: int) -> list[tuple[Any, ...]]:
        first = self.lines[index - 1][1] if index else 0
        return self.rows[first : self.lines[index][1]]


def _span_ids(rows_: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
    return [(row[_TRACE_ID], row[_SPAN_ID]) for row in rows_]


def _runs(batch: list[tuple[Path, _Chunk]]) -> set[str]:
    """The runs (trace ids) the batch brings records of."""
    return {row[_TRACE_ID] for _, chunk in batch for row in chunk.rows}


def _reason(error: BaseException) -> str:
    """Why a line was set aside, on one short line."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    text = f"{type(error).__name__}: {' '.join(str(error).split())}"
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


_T = TypeVar("_T")


try:
    import orjson
except ImportError:  # a capture-only install: the CLI imports this module without the extra

    def _loads(raw: bytes | memoryview) -> Any:
        return json.loads(bytes(raw))  # json takes no memoryview
else:

    def _loads(raw: bytes | memoryview) -> Any:
        """One spool line, parsed. orjson (the `store` extra) is ~1.4x faster than json
        here; it refuses a few things json takes (NaN, which json.dumps writes for a NaN
        attribute; lone surrogates), so such a line gets json's verdict rather than being
        set aside."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return json.loads(bytes(raw))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. Converting a chunk makes millions of small
    containers that all live until the insert; the collector would scan them over and over
    (a third of the ingest's time), though they hold no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _ahead(items: Iterator[_T]) -> Iterator[Iterator[_T]]:
    """`items`, each next one made in a thread while the caller uses this one, and the first
    from the start of the block, before the caller asks for it.

    Converting lines to rows is Python, inserting them is ClickHouse, which releases the GIL
    (chDB's engine, or the HTTP client waiting for a server): on two cores the two overlap.
    Only one item is made ahead, so at most two inserts' rows are in memory.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="clew-ingest") as pool:
        yield _made_ahead(pool, pool.submit(next, items, None), items)


def _made_ahead(pool: ThreadPoolExecutor, upcoming: Future[_T | None],
                items: Iterator[_T]) -> Iterator[_T]:
    while (item := upcoming.result()) is not None:
        upcoming = pool.submit(next, items, None)
        yield item


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
            converted: list[tuple[Any, ...]] = []
            lines: list[tuple[int, int]] = []
            corrupt: list[_BadLine] = []
            # Lines as views of the chunk, split at b"\n" (as the line numbers count them):
            # slicing the chunk and its lines would copy its bytes twice (orjson takes a view).
            view = memoryview(data)
            start = 0
            while start <= cut:
                stop = data.index(b"\n", start) + 1
                raw = view[start:stop]
                try:
                    line_rows = rows.spans_to_rows(_loads(raw))
                except _LINE_ERRORS as error:
                    corrupt.append(_BadLine(offset + start, bytes(raw), _reason(error)))
                else:
                    converted += line_rows
                    lines.append((offset + start, len(converted)))
                start = stop
            yield _Chunk(offset, offset + cut + 1, converted, lines, corrupt)
            offset += cut + 1


def _drop(batch: list[tuple[Path, _Chunk]]) -> None:
    """Empty the batch, one chunk at a time: freeing a chunk's rows is one call in C that
    holds the GIL throughout, and the inserting thread may take it between two."""
    while batch:
        del batch[-1]


def _read_line(path: Path, offset: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.readline()


def _batches(
    offsets: dict[Path, int], limit: int, total: int | None = None
) -> Iterator[list[tuple[Path, _Chunk]]]:
    """Chunks of the files from their offsets, gathered until they hold `limit` bytes: one
    insert per file would make most inserts tiny (one spool file per process).

    Given the `total` bytes to take, the first and the last batch hold about a quarter of
    `limit`: the first insert waits for the first batch's conversion, and nothing is
    converted beside the last insert, so a small batch at either end leaves less of the
    ingest without the conversion and the insert overlapping. In between, each batch is at
    most _GROWTH times the one before, so that its conversion, beside that one's insert,
    does not keep the next insert waiting (docs/architecture.md)."""
    batch: list[tuple[Path, _Chunk]] = []
    size = taken = 0
    end = limit // 4
    target = limit if total is None or total <= limit else end
    for path, offset in offsets.items():
        for chunk in _read_chunks(path, offset, limit):
            batch.append((path, chunk))
            size += chunk.end - chunk.start
            if size >= target:
                yield batch
                taken += size
                grown = min(limit, int(size * _GROWTH))
                batch, size = [], 0
                left = (total or 0) - taken
                # Before the end, the last full batch gives up its last quarter.
                target = left - end if end < left - end < grown else grown
    if batch:
        yield batch


def _native_rows(blocks: NativeBlocks | None,
                 batch: list[tuple[Path, "_Chunk"]]) -> bytes | None:
    """The batch's rows as one Native block, made in the conversion thread: serializing is
    Python, so made there it overlaps the previous batch's insert instead of delaying this
    one's (docs/architecture.md, Ingest). None without `blocks`, when it has no rows, or when
    a value does not serialize (the insert then takes the rows themselves, and finds the
    line)."""
    if blocks is None:
        return None
    try:
        return blocks.encode([row for _, chunk in batch for row in chunk.rows])
    except Exception:  # noqa: BLE001 - whatever a serializer raises; _insert names the line
        return None


def _converted(ingester: "_Ingester", blocks: NativeBlocks | None,
               batch: list[tuple[Path, "_Chunk"]]) -> tuple[list[tuple[Path, "_Chunk"]], set[str],
                                                              bytes | None, bool]:
    """In the conversion thread, a converted batch as the inserting thread takes it: the runs
    it brings records of (found once, for its marks, its insert and the listing before it),
    its Native block, and whether it is booked already (`_Ingester.book_ahead`)."""
    runs = _runs(batch)
    return batch, runs, _native_rows(blocks, batch), ingester.book_ahead(batch, runs)


class _Lister:
    """Keeps the inputs per directory of runs (`links.list_runs`) as the ingest goes. Into
    an embedded store, in a thread of its own on a second chDB handle: chDB runs the two
    handles' statements at once, so the listing after an insert runs beside the next insert
    (and the last one beside the candidates at the end) instead of between them on the
    inserting thread (docs/architecture.md, Ingest). Into a server, at once."""

    def __init__(self, client: Any, options: SchemaOptions) -> None:
        self.client = client
        self.options = options
        self._pool = (ThreadPoolExecutor(1, thread_name_prefix="clew-list")
                      if embedded_client(client) else None)
        self._handle: Any = None  # opened by the thread, at its first listing
        self._pending: list[Future[None]] = []

    def list(self, runs: list[str]) -> None:
        """Keep the inputs per directory of `runs`, whose records are all in the store."""
        if not runs:
            return
        if self._pool is None:
            list_runs(self.client, self.options, runs)
        else:
            self._pending.append(self._pool.submit(self._list, runs))

    def _list(self, runs: list[str]) -> None:
        if self._handle is None:
            self._handle = second_handle(self.client)
        list_runs(self._handle, self.options, runs)

    def wait(self) -> None:
        """Until every listing asked for is kept; raises what one of them raised."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        if self._handle is not None:
            self._handle.close()


def _prepared(ingester: "_Ingester", prepare: bool, *, native: bool) -> NativeBlocks | None:
    """Create the tables (when `prepare`), then, when `native`, the writer of Native blocks
    for their column types (None: the rows go through clickhouse-connect's insert)."""
    if prepare:
        prepare_store(ingester.client, ingester.options)
    return native_blocks(ingester.client, ingester.table, rows.INSERT_COLUMNS) if native else None


class _Ingester:
    def __init__(self, client: Any, options: SchemaOptions, spool: Path) -> None:
        self.client = client
        self.options = options
        self.table = qualified_name(options, options.traces_table)
        self.log_table = qualified_name(options, LOG_TABLE)
        self.io_table = qualified_name(options, IO_TABLE)
        self.outputs_table = qualified_name(options, OUTPUTS_TABLE)
        self.touched: set[str] = set()  # runs this ingest brought records of
        # those whose inputs per directory were kept since their last records (links.py)
        self.listed: set[str] = set()
        self.quarantine = spool / QUARANTINE_DIRNAME
        self._lister = _Lister(client, options)
        self._counted: dict[Path, tuple[int, int]] = {}  # per file: an offset, lines before it
        self._finished: list[list[Any]] = []  # done entries of inserted batches, not yet logged
        self._finished_lock = threading.Lock()  # the conversion thread logs them too
        # Into an embedded store, the conversion thread's own handle: it logs and marks each
        # batch it converts (`book_ahead`) beside the insert before (None: not opened yet).
        self._booker: Any = None

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

    def logged(self) -> bool:
        """Whether the store has an ingest log (a store not yet prepared has none)."""
        return bool(int(self.client.command(f"EXISTS TABLE {self.log_table}")))

    def _log(self, batch: list[tuple[Path, _Chunk]], client: Any) -> None:
        """Log the batch's chunks pending, in one insert with the done entries of the batches
        inserted since the last write: one write of the log per insert, not two. A kill
        before it leaves those batches pending, which the next ingest takes again, as it
        would between two writes."""
        with self._finished_lock:
            finished, self._finished = self._finished, []
        entries = [*finished, *([path.name, chunk.start, chunk.end, len(chunk.rows), 0]
                                for path, chunk in batch)]
        if entries:
            if self._log_blocks is not None:
                client.raw_insert(self.log_table, _LOG_COLUMNS, fmt="Native",
                                  insert_block=self._log_blocks.encode(entries))
            else:
                client.insert(self.log_table, entries, column_names=_LOG_COLUMNS)

    @cached_property
    def _log_blocks(self) -> NativeBlocks | None:
        # Made at the first write of the log: an ingest with nothing new asks for no types.
        return native_blocks(self.client, self.log_table, _LOG_COLUMNS)

    def finish(self) -> None:
        """Log done what was inserted last (its entries wait for a later batch's)."""
        self._log([], self.client)

    def _book(self, batch: list[tuple[Path, _Chunk]], runs: set[str], client: Any) -> None:
        """Before the batch's insert: mark the `runs` it brings records of as not linked, then
        log its chunks pending (`_log`). The marks come before the chunks can be logged
        done: what clew_links keeps for those runs is out of date until `link` (at the end
        of the ingest) has run, and a crash before then leaves them matched in full."""
        unlink_runs(client, self.options, sorted(runs))
        self._log(batch, client)

    def book_ahead(self, batch: list[tuple[Path, _Chunk]], runs: set[str]) -> bool:
        """In the conversion thread, once the batch is converted: `_book` it on a handle of
        its own, beside the insert of the batch before, instead of on the inserting thread
        between two inserts (an embedded store; ~0.03-0.05 s a batch). Whether it did: a
        server's client is not shared between threads, and `take` books the batch there."""
        if not embedded_client(self.client):
            return False
        if self._booker is None:
            self._booker = second_handle(self.client)
        self._book(batch, runs, self._booker)
        return True

    def _insert(
        self, batch: list[tuple[Path, _Chunk]], native: bytes | None
    ) -> tuple[int, list[tuple[Path, _BadLine]]]:
        """Insert the batch's rows in one block (`native`: already encoded by `_native_rows`);
        returns the rows inserted and the lines the store refused, which are left out.

        A refused insert is taken apart: what of it landed is deleted (a view can fail
        after the table took its rows), then each half is inserted on its own, down to
        single lines. So a bad line costs a few inserts, and the usual insert stays one.
        """
        refused: list[tuple[Path, _BadLine]] = []
        if native is not None:
            # The rows themselves, and the lines, are needed only if the store refuses the
            # bytes (listing them took ~0.035 s a 64 MiB batch, between two inserts).
            try:
                self.client.raw_insert(self.table, rows.INSERT_COLUMNS, insert_block=native,
                                       fmt="Native")
                return sum(len(chunk.rows) for _, chunk in batch), refused
            except Exception:  # noqa: BLE001 - whatever the driver or store refuses
                if not self._answers():
                    raise  # the store failed, not these rows
                # taken apart below, from the whole batch's rows, with what landed deleted
                self._delete_spans(_span_ids([row for _, chunk in batch for row in chunk.rows]))
        parts = [[(path, chunk, index) for path, chunk in batch
                  for index in range(len(chunk.lines))]]
        inserted = 0
        while parts:
            part = parts.pop()
            block = [row for _, chunk, index in part for row in chunk.line_rows(index)]
            try:
                if block:
                    self.client.insert(self.table, block, column_names=rows.INSERT_COLUMNS)
                inserted += len(block)
            except Exception as error:  # noqa: BLE001 - whatever the driver or store refuses
                if not self._answers():
                    raise  # the store failed, not these rows
                self._delete_spans(_span_ids(block))
                if len(part) > 1:
                    half = len(part) // 2
                    parts += [part[half:], part[:half]]
                else:
                    path, chunk, index = part[0]
                    offset = chunk.lines[index][0]
                    refused.append(
                        (path, _BadLine(offset, _read_line(path, offset), _reason(error))))
            finally:
                # clickhouse-connect's insert context keeps the block in a reference cycle,
                # which only the (paused) collector would free: emptied, its rows go with
                # their chunks.
                block.clear()
        return inserted, refused

    def _answers(self) -> bool:
        """Whether the store still answers: a refused insert is then about its rows."""
        try:
            self.client.command("SELECT 1")
        except Exception:  # noqa: BLE001 - any failure means the store is gone
            return False
        return True

    def _line_number(self, path: Path, offset: int) -> int:
        """The number of the line at `offset` of `path`, counted only for lines set aside
        (a chunk does not know how many lines come before it)."""
        at, before = self._counted.get(path, (0, 0))
        if offset < at:
            at, before = 0, 0
        with open(path, "rb") as handle:
            handle.seek(at)
            while at < offset and (block := handle.read(min(offset - at, 1 << 20))):
                before += block.count(b"\n")
                at += len(block)
        self._counted[path] = (offset, before)
        return before + 1

    def _set_aside(self, path: Path, bad: list[_BadLine], result: IngestResult) -> None:
        """Copy bad lines to the quarantine file of their spool file, each after a comment
        saying where it was and why, count them and warn. A line already there (set aside
        before a crash left its chunk pending) is not copied or counted again."""
        if not bad:
            return
        target = self.quarantine / path.name
        try:
            there = {int(offset) for offset in _QUARANTINED.findall(target.read_bytes())}
        except FileNotFoundError:
            there = set()
        new = [line for line in bad if line.offset not in there]
        if not new:
            return
        self.quarantine.mkdir(parents=True, exist_ok=True)
        with open(target, "ab") as handle:
            for line in new:
                number = self._line_number(path, line.offset)
                handle.write(f"# offset {line.offset}, line {number}: {line.reason}\n".encode()
                             + line.raw.rstrip(b"\n") + b"\n")
                result.corrupt += 1
                if result.corrupt <= _WARNED_LINES:
                    result.warnings.append(
                        f"spool file {path}, line {number}: {line.reason}; set aside in {target}")

    def take(self, batch: list[tuple[Path, _Chunk]], runs: set[str], result: IngestResult,
             native: bytes | None = None, booked: bool = False) -> None:
        """Insert chunks of one or more files, bringing records of `runs`, in one block
        (`native`: its rows encoded by `_native_rows`), each logged pending (`_book`, unless
        `booked` by `book_ahead`), then done (with a later batch's entries, or `finish`)."""
        if not booked:
            self._book(batch, runs, self.client)
        for path, chunk in batch:
            self._set_aside(path, chunk.corrupt, result)
        inserted, refused = self._insert(batch, native)
        for path, line in refused:
            self._set_aside(path, [line], result)
        result.spans += inserted
        result.lines += sum(len(chunk.lines) for _, chunk in batch) - len(refused)
        self.listed -= runs  # more records: listed again (`list_complete`, `link`)
        self.touched.update(runs)
        with self._finished_lock:
            self._finished += ([path.name, chunk.start, chunk.end, len(chunk.rows), 1]
                               for path, chunk in batch)

    def list_complete(self, following: set[str]) -> None:
        """Keep the inputs per directory of the runs inserted so far that are not among the
        `following` batch's runs (converted, not inserted), beside its insert.

        The spool holds a file per process, taken oldest first, so a run's files are close
        together: a run the next batch brings none of is most likely complete. Its listing
        runs beside the next insert instead of on the critical path at the end, and the
        last batch's runs are all that is left for the end (a run that gets more records
        later is listed again, `take`)."""
        done = sorted(self.touched - following - self.listed)
        self._lister.list(done)
        self.listed.update(done)

    def link(self) -> None:
        """Keep the candidate inputs of every run this ingest brought records of, beside the
        inputs per directory of those not listed since their last records."""
        self._lister.list(sorted(self.touched - self.listed))
        link_runs(self.client, self.options, sorted(self.touched), listed=self.touched,
                  wait_listed=self._lister.wait)

    def close(self) -> None:
        """Wait for the listings under way, and close the lister's and the booker's handles."""
        self._lister.close()
        if self._booker is not None:
            self._booker.close()

    def recover(self, path: Path, start: int, end: int, result: IngestResult) -> None:
        """Finish a chunk a crashed ingest left pending, without duplicating a span.

        A kill can land between the commits of the tables one insert writes: the chunk's
        rows may be in otel_traces, in any subset of the views derived from it, or nowhere.
        So the chunk is taken again from scratch: its spans are deleted where a second copy
        would count twice (otel_traces, clew_io, clew_outputs), then inserted, which runs
        every view again; the other lineage tables are idempotent.
        """
        chunk = next(_read_chunks(path, start, end - start), None)
        if chunk is None or chunk.end != end:
            raise RuntimeError(f"{path.name}: pending chunk {start}-{end} no longer matches")
        self._delete_spans(chunk.span_ids)
        batch = [(path, chunk)]
        self.take(batch, _runs(batch), result)
        result.recovered_chunks += 1

    def _delete_spans(self, ids: list[tuple[str, str]]) -> None:
        """Delete these spans where a second copy would count twice."""
        for table, columns in ((self.table, "TraceId, SpanId"), (self.io_table, "RunId, SpanId"),
                               (self.outputs_table, "RunId, SpanId")):
            self._delete(table, columns, ids)

    def _delete(self, table: str, columns: str, ids: list[tuple[str, str]]) -> None:
        """Delete the rows whose (`columns`) are among `ids`, if there are any. The ids are
        written into the statements, so they go in batches that stay below ClickHouse's
        max_query_size (256 KiB by default; a 64 MiB chunk holds tens of thousands)."""
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
    if create_lineage_tables(client, options):
        link_all(client, options)
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
        client: A clickhouse-connect client (see `clew.exporter.store.connection.connect`).
        spool: The spool directory; lines that cannot be stored are set aside under it
            (`quarantine/`), each named in the result's warnings.
        files: Only these spool files (default: every file in `spool`).
        options: Where the tables are.
        progress: Called as `progress(done_bytes, total_bytes)` after each insert, then
            `progress(-1, runs)` before the runs it brought are linked (see links.py).
        chunk_bytes: About how much of the spool one insert takes.
        prepare: Create the tables first; pass False when this client already did.
    """
    options = options or SchemaOptions()
    started = time.perf_counter()
    with closing(_Ingester(client, options, spool)) as ingester, \
            ThreadPoolExecutor(1, thread_name_prefix="clew-aside") as aside:
        result = IngestResult()
        # By name: most of a large spool is done, and needs no Path of its own.
        chosen = {path.name: path for path in files} if files is not None else {}
        sizes = spool_sizes(spool) if files is None else {
            name: path.stat().st_size for name, path in chosen.items()}
        # An empty spool (every query command, once its runs are in) needs no look at the log;
        # a store without one (it is about to be prepared) has nothing of the spool.
        done, pending = (ingester.state([p.name for p in files] if files is not None else None)
                         if sizes and (not prepare or ingester.logged()) else ({}, {}))
        total = sum(max(0, size - done.get(name, 0)) for name, size in sizes.items())
        reached: dict[Path, int] = {}  # per file with new bytes: where its whole lines end
        left: list[tuple[Path, int, int]] = []  # the chunks a crash left pending
        for name, size in sizes.items():
            offset = done.get(name, 0)
            if size <= offset and name not in pending:
                continue
            path = chosen.get(name) or spool / name
            for start, end in sorted(pending.get(name, [])):
                left.append((path, start, end))
                offset = max(offset, end)
            if size > offset:
                reached[path] = offset
        result.files = len({path.name for path, _, _ in left} | {path.name for path in reached})
        # The tables are made in a thread (`aside`), beside the first batch's conversion,
        # which waits for them only to write its rows in their types; the main thread waits
        # for them before its first statement. A server that takes compressed inserts gets
        # them from clickhouse-connect's own insert, compressed; the embedded store reads the
        # Native bytes made ahead.
        prepared = aside.submit(_prepared, ingester, prepare, native=bool(reached) and not
                                getattr(client, "write_compression", None))
        taken = 0
        try:
            # _batches runs in another thread: it gets its own copy of the offsets
            batches = _batches(dict(reached), chunk_bytes, total)
            with _collector_paused(), _ahead(
                    _converted(ingester, prepared.result(), batch)
                    for batch in batches) as converted:
                prepared.result()
                for path, start, end in left:
                    ingester.recover(path, start, end, result)
                upcoming = next(converted, None)
                while upcoming is not None:
                    batch, runs, native, booked = upcoming
                    ingester.take(batch, runs, result, native, booked)
                    taken += sum(chunk.end - chunk.start for _, chunk in batch)
                    if progress is not None:
                        progress(taken, total)
                    for path, chunk in batch:
                        reached[path] = chunk.end
                    # The next batch is converted by the end of this insert, mostly: its
                    # runs say which of those inserted so far to list beside its insert.
                    upcoming = next(converted, None)
                    ingester.list_complete(upcoming[1] if upcoming is not None else set())
                    # Freeing a batch's rows takes ~0.03-0.05 s (64 MiB): done in the thread
                    # that made the tables, beside the next insert.
                    aside.submit(_drop, batch)
                    del batch, chunk
        finally:
            ingester.finish()
        if progress is not None and ingester.touched:
            progress(-1, len(ingester.touched))
        ingester.link()
        result.torn = sum(1 for path, end in reached.items() if end < sizes[path.name])
        if result.corrupt > _WARNED_LINES:
            result.warnings.append(f"and {result.corrupt - _WARNED_LINES} more spool lines set "
                                   f"aside in {ingester.quarantine}")
    result.seconds = time.perf_counter() - started
    return result
