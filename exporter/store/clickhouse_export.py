"""Direct export from the instrumented process into a ClickHouse store.

`OTEL_TRACES_EXPORTER=clickhouse` with `CLEW_STORE=http://user@host:8123/db`. Every batch is
first written to this process's spool file, exactly as the `clew` exporter writes it, and
then the new lines are ingested into the store with the same exactly-once protocol as
`clew ingest`. When the server is away, the spans simply wait in the spool: the exporter
tries again later, and a `clew ingest` run anywhere sends what is left, each span once.
Batching comes from the span processor, on its own thread, so the host never waits on the
network. It needs the `store` extra (clickhouse-connect) in the training environment.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from .ingest import ingest, prepare_store
from .schema import SchemaOptions
from ..spool import SpoolSpanExporter
from .connection import connect, default_url, parse_url

_logger = logging.getLogger(__name__)

RETRY_INTERVAL = 30.0


class ClickHouseSpanExporter(SpoolSpanExporter):
    """Spools every batch, then moves the new spool lines into the ClickHouse store."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        url: str | None = None,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        super().__init__(directory)
        self._url = url or default_url()
        # The tables live in the URL's database, as for `clew ingest --store URL`.
        self._options = SchemaOptions(database=parse_url(self._url).database)
        self._retry_interval = retry_interval
        self._client: Any = None
        self._client_pid: int | None = None
        self._next_attempt = 0.0
        self._failures = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        if result is SpanExportResult.SUCCESS:
            self._send()
        return result

    def _send(self, *, final: bool = False) -> None:
        if self.path is None or (not final and time.monotonic() < self._next_attempt):
            return
        try:
            if self._client is None or self._client_pid != os.getpid():
                # A client never crosses a fork: a child opens its own.
                self._client = connect(self._url, wait=0)
                self._client_pid = os.getpid()
                prepare_store(self._client, self._options)
            ingest(
                self._client,
                self.path.parent,
                files=[self.path],
                options=self._options,
                prepare=False,
            )
        except Exception as error:  # noqa: BLE001 - the spool holds the spans; never raise
            self._client = None
            self._next_attempt = time.monotonic() + self._retry_interval
            self._failures += 1
            if self._failures == 1:
                _logger.warning(
                    "clew: the ClickHouse store is unreachable (%s); spans wait in %s "
                    "and `clew ingest` sends them later",
                    error,
                    self.path.parent,
                )

    def shutdown(self) -> None:
        self._send(final=True)
        super().shutdown()
