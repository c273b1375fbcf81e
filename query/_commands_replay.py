"""`clew replay`: send a stored run over OTLP/HTTP to Jaeger, Tempo or a Collector."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from ._commands_store import open_store
from ._output import CliContext, json_option, write_json
from .runs import resolve_run

_PROGRESS_MIN_SPANS = 5000  # below this a replay is too quick for a bar to help


class _Bar:
    """replay's progress callback: a bar on stderr, shown only for a large run."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Progress | None = None
        self._task: Any = None

    def __call__(self, sent: int, total: int) -> None:
        if self._progress is None:
            if total < _PROGRESS_MIN_SPANS:
                return
            columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn())
            self._progress = Progress(*columns, console=self._console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task("replaying spans", total=total)
        self._progress.update(self._task, completed=sent)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _headers(values: tuple[str, ...]) -> dict[str, str]:
    headers = {}
    for value in values:
        key, equals, text = value.partition("=")
        if not equals or not key.strip():
            # The value may be a secret: name only the key, or nothing.
            raise click.BadParameter("give each header as KEY=VALUE", param_hint="'--header'")
        headers[key.strip()] = text
    return headers


@click.command("replay")
@click.argument("run")
@click.option("--endpoint", required=True, metavar="URL",
              help="OTLP/HTTP receiver, e.g. http://localhost:4318 (Jaeger, Tempo, a "
              "Collector); /v1/traces is added unless the URL ends with it.")
@click.option("--header", "header_values", multiple=True, metavar="KEY=VALUE",
              help="HTTP header for every request, e.g. 'Authorization=Bearer ...' "
              "(repeatable; never printed).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, metavar="SECONDS", help="How long to wait for each request.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000,
              show_default=True, help="Spans per request.")
@json_option
@click.pass_obj
def replay_command(obj: CliContext, run: str, endpoint: str, header_values: tuple[str, ...],
                   timeout: float, batch_size: int, fmt: str) -> None:
    """Send the spans of RUN (a run id, or its first 6 or more digits) over OTLP/HTTP, to
    look at the run in Jaeger, Tempo or anything that receives OTLP. Attribute types are
    put back (ints, booleans, arrays); see docs/jaeger-tempo.md. Only OTLP/HTTP (protobuf)
    is spoken, not gRPC."""
    # Imported here: it needs opentelemetry-proto (the store extra), the CLI itself does not.
    from .replay import replay, traces_url

    headers = _headers(header_values)
    url = traces_url(endpoint)  # a malformed endpoint is a usage error before the store opens
    client, options = open_store(obj, quiet=fmt == "json")
    try:
        run_id = resolve_run(client, run, options=options)
    except LookupError as error:
        raise click.UsageError(str(error)) from None
    bar = _Bar(obj.err)
    try:
        sent = replay(client, run_id, endpoint, options=options, headers=headers,
                      timeout=timeout, batch_size=batch_size,
                      progress=None if fmt == "json" else bar)
    finally:
        bar.close()
    shown = url.split("?", 1)[0]
    if fmt == "json":
        write_json({"schema": 1, "run_id": run_id, "spans": sent, "endpoint": shown},
                   obj.stdout)
    else:
        obj.out.print(f"sent {sent:,} spans of run {run_id} to {shown}")
