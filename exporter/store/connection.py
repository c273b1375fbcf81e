"""The ClickHouse store: embedded chDB or a server, one code path through clickhouse-connect.

A store is named by a URL:

- ``chdb:///abs/path`` — embedded ClickHouse (chDB) in a directory; the default is
  ``chdb://<CLEW_HOME>/db``. chDB allows one process per directory at a time, so opening a
  store another process holds waits a bounded time and then says which process holds it.
- ``http(s)://user@host:8123/database`` — a ClickHouse server or cluster. The password comes
  from ``CLEW_STORE_PASSWORD``, never from the URL, so it is never printed or logged.

This is the only module that imports clickhouse-connect (the `store` extra).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from clew.semconv.redaction import is_secret_name, redact_argv, redact_text
from clew.semconv import environment

DEFAULT_WAIT = 30.0
# A wait this short goes unannounced: a store held that briefly is no news.
_ANNOUNCE_AFTER = 1.0
_EXTRA_HINT = "pip install 'clew[store]'"


class StoreError(Exception):
    """The root of clew.exporter's store errors."""


class StoreBusy(StoreError):
    """Another process holds the embedded store."""


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL. `str()` never shows a password (there is none to show)."""

    scheme: str
    path: Path | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    database: str = "default"

    @property
    def embedded(self) -> bool:
        return self.scheme == "chdb"

    def __str__(self) -> str:
        if self.embedded:
            return f"chdb://{self.path}"
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}/{self.database}"


def default_url(home: Path | None = None) -> str:
    """`CLEW_STORE`, else the embedded store under clew's home."""
    return environment.store_url(home)


def _carries_password(parts: SplitResult) -> bool:
    """A password in the URL: after the user name (also percent-encoded, `user%3Apw@`), or
    as a query parameter such as `?password=`."""
    if parts.password is not None or ":" in unquote(parts.username or ""):
        return True
    return any(is_secret_name(name) for name, _ in parse_qsl(parts.query, keep_blank_values=True))


def parse_url(url: str) -> StoreURL:
    """Parse and check a store URL; ValueError says what is wrong and how to write it.
    Messages show the URL redacted: it may hold the password it is refused for."""
    shown = redact_text(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(
            f"store URL {shown!r} is not a valid URL: use chdb:///abs/path or "
            "http(s)://user@host:8123/db"
        ) from None
    if _carries_password(parts):
        raise ValueError("store URL must not contain a password: put it in CLEW_STORE_PASSWORD")
    if parts.scheme == "chdb":
        raw = unquote(parts.netloc + parts.path)
        if not raw.startswith("/"):
            raise ValueError(
                f"store URL {shown!r}: chdb needs an absolute path, e.g. chdb:///data/db"
            )
        return StoreURL("chdb", path=Path(raw))
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(
                f"store URL {shown!r} has no host, e.g. http://default@localhost:8123/"
            )
        database = parts.path.strip("/") or "default"
        return StoreURL(
            parts.scheme,
            host=parts.hostname,
            port=port or (8443 if parts.scheme == "https" else 8123),
            username=unquote(parts.username) if parts.username else None,
            database=database,
        )
    raise ValueError(
        f"store URL {shown!r} is not supported: use chdb:///abs/path or http(s)://user@host:8123/db"
    )


class _RaisedAnyway(logging.Filter):
    """Drops the driver's log of a value it cannot serialize: it logs the traceback, then
    raises the same error to the caller (an ingest sets the line aside and names it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Error serializing column")


def _import_driver() -> Any:
    try:
        import clickhouse_connect
    except ImportError as error:
        raise ImportError(f"the ClickHouse store needs clickhouse-connect: {_EXTRA_HINT}") from error
    transform = logging.getLogger("clickhouse_connect.driver.transform")
    if not any(isinstance(f, _RaisedAnyway) for f in transform.filters):
        transform.addFilter(_RaisedAnyway())
    return clickhouse_connect


def _import_chdb_without_arrow() -> None:
    """Import chDB's connection layer with pyarrow hidden. That layer imports pyarrow (and
    with it numpy), 0.08-0.15 s of a clew command's start-up, for the Arrow results it can
    return; clickhouse-connect reads Native results and never asks for them. Without
    pyarrow, chDB serves every other format and refuses only Arrow ones, in this process:
    so only a clew command asks for this (see `connect`). pyarrow stays importable for
    everything else."""
    if "pyarrow" in sys.modules or "chdb.state" in sys.modules:
        return
    sys.modules["pyarrow"] = None  # type: ignore[assignment]  # `import pyarrow` raises ImportError
    try:
        importlib.import_module("chdb.state")
    except ImportError:
        pass  # the driver's import says what is missing
    finally:
        del sys.modules["pyarrow"]


@contextmanager
def _engine_output(capture: bool) -> Iterator[list[bytes]]:
    """What is written to file descriptor 2 inside the block, when `capture`. chDB's engine
    writes an error there itself (not through Python) each time it finds its directory
    locked: waiting for a held store would print one every attempt. The caller drops or
    replays the capture. The redirection is process-wide (a thread's writes, a child started
    meanwhile), so only a clew command asks for it, never an observed program."""
    if not capture:
        yield [b""]
        return
    captured: list[bytes] = []
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read())


def _holder(path: Path) -> tuple[str, str] | None:
    """The process that holds an embedded store (its pid and command line), from
    ClickHouse's status file."""
    try:
        status = (path / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("PID:"):
            pid = line.split(":", 1)[1].strip()
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            except OSError:
                return None  # that process is gone: the lock is stale
            command = " ".join(redact_argv([os.fsdecode(word) for word in argv]))
            # One line: the message is a CLI error line, and `python -c` scripts hold newlines.
            return pid, " ".join(command.split())[:120]
    return None


_clients: dict[str, Any] = {}


def connect(
    url: str | StoreURL | None = None,
    *,
    wait: float = DEFAULT_WAIT,
    on_wait: Callable[[str], None] | None = None,
) -> Any:
    """A clickhouse-connect client for the store at `url` (default: `default_url()`).

    Embedded stores are opened once per process and shared. When another process holds an
    embedded store, retry for up to `wait` seconds, then raise StoreBusy naming it.

    `on_wait` is for a clew command, which reports the wait itself: it is called once with
    the holder (`pid N: CMD`) when the wait has lasted a second, and the engine's own lock
    errors on stderr are left out (see `_engine_output`); chDB is opened without importing
    pyarrow (see `_import_chdb_without_arrow`).
    """
    parsed = url if isinstance(url, StoreURL) else parse_url(url or default_url())
    key = str(parsed)
    if key in _clients:
        return _clients[key]
    driver = _import_driver()
    if not parsed.embedded:
        client = driver.get_client(
            host=parsed.host,
            port=parsed.port,
            username=parsed.username or "default",
            password=os.environ.get(environment.CLEW_STORE_PASSWORD, ""),
            database=parsed.database,
            secure=parsed.scheme == "https",
        )
        _clients[key] = client
        return client
    assert parsed.path is not None
    if on_wait is not None:
        _import_chdb_without_arrow()
    parsed.path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    announced = False
    while True:
        try:
            with _engine_output(capture=on_wait is not None) as engine_output:
                client = driver.get_client(dsn=f"chdb://{parsed.path}")
            break
        except Exception as error:  # noqa: BLE001 - chDB reports a held lock generically
            holder = _holder(parsed.path)
            if holder is None:
                os.write(2, engine_output[0])  # not the lock: what the engine said may help
                raise StoreError(f"cannot open the store {parsed}: {error}") from error
            pid, command = holder
            waited = time.monotonic() - started
            if waited >= wait:
                raise StoreBusy(
                    f"the store {parsed} is in use by pid {pid} ({command}); wait for it to "
                    f"finish, or point CLEW_STORE elsewhere"
                ) from error
            if on_wait is not None and not announced and waited >= _ANNOUNCE_AFTER:
                on_wait(f"pid {pid}: {command}")
                announced = True
            time.sleep(0.25)
    os.write(2, engine_output[0])
    _clients[key] = client
    return client


def embedded_client(client: Any) -> bool:
    """Whether `client` is a client of an embedded (chDB) store."""
    uri = getattr(client, "uri", None)
    return isinstance(uri, str) and uri.startswith("chdb://")


def second_handle(client: Any) -> Any:
    """Another client of the embedded store that `client` has open, on a chDB handle of its
    own, for statements that should run beside `client`'s: chDB runs two handles'
    statements at once, and one handle's one after another. Close it when done."""
    return _import_driver().get_client(dsn=client.uri, database=client.database)


def is_open(client: Any) -> bool:
    """Whether `client` is one `connect` returned and `close` has not closed."""
    return any(held is client for held in _clients.values())


def holds_embedded() -> bool:
    """Whether this process has an embedded store open."""
    return any(key.startswith("chdb:") for key in _clients)


def close(url: str | StoreURL | None = None) -> None:
    """Release a store opened by `connect` (so another process may open it)."""
    parsed = url if isinstance(url, StoreURL) else parse_url(url or default_url())
    client = _clients.pop(str(parsed), None)
    if client is not None:
        client.close()
