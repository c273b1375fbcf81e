"""Records the local files DuckDB's SQL reads and writes (`read_parquet`, `read_csv`,
`FROM 'data/*.parquet'`, `COPY ... TO`, `COPY ... FROM`, attached database files, ...).

DuckDB reports the files a query touched itself: its FileSystem log (DuckDB >= 1.3) has an
entry for each read and write, with the path, after globs and directories were expanded and
partitions pruned. clew turns that log on for each database the program connects to (from a
cursor of its own, never through the program's connection, whose pending result stays as it
was), and after each `execute` and `executemany` (of a connection or the module), before
`close()`, and at exit reads the new entries and empties the log. `sql` and `query` make
relations, which read when their rows are fetched: their files are recorded at the
connection's next `execute`, its close, or exit. Each file read is one read record with its
whole-file digest; each file written is one write record, digested once its content settles.

Limits: reads of several relations between two `execute`s make one record per file. Once the
program configures DuckDB's logging or reads `duckdb_logs` itself, clew leaves that
connection's log alone and records nothing more from it (emptying the log would change what
the program sees). Remote files (httpfs, S3) are left to the object stores' hooks.

duckdb is patched when the program imports it, never imported by clew.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from clew.instrumentation.package import _instruments_duckdb

from ._file_arguments import record_paths, record_read, record_write
from ._instrumentor import ClewInstrumentor, inner_layers_suppressed, recording
from ._paths import absolute
from ._recorder import Recorder

_STATEMENTS = ("execute", "executemany", "sql", "query")
# Statements that run at once; `sql` and `query` return relations that run when fetched,
# binding (which reads files' metadata) and fetching in two steps of one logical read.
_EXECUTING = ("execute", "executemany")
_LOG_TYPE = "FileSystem"
# The log entries clew turns into records: each file once per operation.
_HARVEST = (
    "SELECT DISTINCT message->>'path', message->>'op' FROM duckdb_logs "
    f"WHERE type = '{_LOG_TYPE}' AND message->>'op' IN ('READ', 'WRITE') "
    "AND message->>'fs' = 'LocalFileSystem'"
)
_ACTIONS = {"READ": record_read, "WRITE": record_write}


def _about_logging(query: object) -> bool:
    """Whether a statement turns DuckDB's logging on or off, or reads or empties its log."""
    return isinstance(query, str) and ("logging" in query.lower() or "duckdb_logs" in query.lower())


class DuckdbInstrumentor(ClewInstrumentor):
    """Instrumentor for the files DuckDB's queries read and write."""

    _instruments = _instruments_duckdb

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        return {"duckdb": self._patch_duckdb}

    def _start(self, **kwargs: Any) -> None:
        # Connections seen, by id: (a weak reference, whether clew reads its log).
        self._connections: dict[int, tuple[weakref.ref, bool]] = {}
        self.recorder.on_close.append(self._harvest_all)

    def _stop(self) -> None:
        if self._harvest_all in self.recorder.on_close:
            self.recorder.on_close.remove(self._harvest_all)

    def _patch_duckdb(self, duckdb: ModuleType) -> None:
        connection = duckdb.DuckDBPyConnection
        for name in _STATEMENTS:
            self.wrap(connection, name, self._statement)
            if callable(getattr(duckdb, name, None)):
                self.wrap(duckdb, name, self._module_statement)
        self.wrap(connection, "close", self._close)
        self.wrap(duckdb, "connect", self._connect)

    def _connect(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's
        connection = wrapped(*args, **kwargs)
        if recording():
            self.record("duckdb connect", lambda recorder: self._watched(connection))
        return connection

    def _statement(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        return self._run(instance, wrapped, args, kwargs)

    def _module_statement(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        import duckdb

        connection = kwargs.get("connection") or duckdb.default_connection()
        return self._run(connection, wrapped, args, kwargs)

    def _close(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        if recording():
            self._harvest(instance)
        self._connections.pop(id(instance), None)  # nothing left to read at exit
        return wrapped(*args, **kwargs)

    def _run(self, connection: Any, wrapped: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if not recording():
            return wrapped(*args, **kwargs)
        if _about_logging(args[0] if args else kwargs.get("query")):
            # The program configures or reads DuckDB's log itself: what is logged so far is
            # recorded, and from now on its log is its own.
            self._harvest(connection)
            self._connections[id(connection)] = (weakref.ref(connection), False)
            return wrapped(*args, **kwargs)
        self.record("duckdb logging", lambda recorder: self._watched(connection))
        if wrapped.__name__ not in _EXECUTING:
            return wrapped(*args, **kwargs)  # a relation: read when fetched, harvested later
        try:
            return wrapped(*args, **kwargs)
        finally:
            self._harvest(connection)  # a failed statement may have read files first

    def _watched(self, connection: Any) -> bool:
        """Whether clew reads this connection's database log, turning it on the first time."""
        known = self._connections.get(id(connection))
        if known is not None and known[0]() is connection:
            return known[1]
        with inner_layers_suppressed():
            cursor = connection.cursor()
            try:
                enabled, types = cursor.execute(
                    "SELECT current_setting('enable_logging'), current_setting('enabled_log_types')"
                ).fetchone()
                # On already: clew's (another connection to this database), or the program's.
                watched = not enabled or types == _LOG_TYPE
                if not enabled:
                    cursor.execute(f"CALL enable_logging('{_LOG_TYPE}')")
            finally:
                cursor.close()
        self._connections[id(connection)] = (weakref.ref(connection), watched)
        return watched

    def _harvest(self, connection: Any) -> None:
        """Record the files the log names, and empty it; failures are noted, never raised."""
        def harvest(recorder: Recorder) -> None:
            if not self._watched(connection):
                return
            with inner_layers_suppressed():
                cursor = connection.cursor()
                try:
                    entries = cursor.execute(_HARVEST).fetchall()
                    if entries:
                        cursor.execute("CALL truncate_duckdb_logs()")
                finally:
                    cursor.close()
            for path, operation in entries:
                found = absolute(path)
                if found is not None:
                    record_paths(self, "duckdb", (found,), _ACTIONS[operation])

        self.record("duckdb log", harvest)

    def _harvest_all(self) -> None:
        for reference, watched in list(self._connections.values()):
            connection = reference()
            if connection is not None and watched:
                self._harvest(connection)
