"""The store, opened for questions from Python as every `clew` command opens it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clew.exporter.spool_files import spool_directory
from clew.exporter.store import connection
from clew.exporter.store.ingest import ingest as ingest_spool
from clew.exporter.store.ingest import prepare_store
from clew.exporter.store.schema import SchemaOptions


def connect(
    url: str | None = None,
    *,
    home: Path | None = None,
    ingest: bool = True,
    wait: float = connection.DEFAULT_WAIT,
) -> Any:
    """A clickhouse-connect client of the store at `url`, its tables made, and what the spool
    holds that the store does not ingested first (`ingest=False`: left in the spool).

    Args:
        url: `chdb:///abs/path` (embedded) or `http(s)://user@host:8123/database`; default
            `CLEW_STORE`, else the embedded store under clew's home. A server's password
            comes from `CLEW_STORE_PASSWORD`, never from the URL.
        home: clew's home (default `CLEW_HOME`, else `~/.clew`): where the spool and the
            default store are.
        ingest: Ingest the spool under `home` first, as `clew` does unless `--no-ingest`.
        wait: Seconds to wait for an embedded store another process holds.

    The tables are in the URL's database: pass `options=SchemaOptions(database=...)` to the
    questions when it is not `default`. `close(url)` releases an embedded store.

    Raises:
        ValueError: a malformed URL, or one with a password in it.
        StoreBusy: another process held the embedded store for `wait` seconds.
        ImportError: the `store` extra is not installed.
    """
    url = url or connection.default_url(home)
    options = SchemaOptions(database=connection.parse_url(url).database)
    client = connection.connect(url, wait=wait)
    if ingest:
        ingest_spool(client, spool_directory(home), options=options)
    else:
        prepare_store(client, options)
    return client

