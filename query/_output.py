"""What every `clew` command shares: the streams it writes to and how values print."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import click
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from clew.semconv.digests import BLAKE3_PREFIX
from clew.semconv.uris import file_uri


@dataclasses.dataclass
class CliContext:
    """What the `clew` group hands its commands."""

    home: Path
    store: str | None
    out: Console
    err: Console
    stdout: IO[str]
    wait: float = 30.0  # seconds to wait for an embedded store another process holds
    ingest: bool = True  # query commands ingest the pending spool first

    def command(self, argv: list[str], width: int = 60) -> str:
        """A command line for a table or tree (square brackets in it stay text): cut at
        `width` on a terminal, whole off one, where a pipe or file gets every value."""
        text = " ".join(argv)
        if len(text) > width and self.out.is_terminal:
            text = text[: width - 1] + "…"
        return escape(text)


# C0 and C1 control characters, the bidirectional overrides, which would reorder the text a
# terminal shows, and lone surrogates (bytes of a name that is not UTF-8), which no stream
# can encode.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """`text` with each control character written as its escape (`\\n`, `\\x1b`): a file
    name with a newline or an escape sequence shows as one line and cannot drive the
    terminal. JSON output keeps names as they are."""
    if text.isprintable():  # the common case, without a regex (a tree has 100,000s of labels)
        return text
    return _UNPRINTABLE.sub(lambda found: _NAMED.get(found[0]) or _escape(found[0]), text)


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# The width of a console that is not a terminal: wider than any line clew prints.
_UNBOUNDED = 1 << 20


class PrintableConsole(Console):
    """A rich Console that escapes control characters in every string it renders: printed
    text, table cells and titles, tree labels. Everything human-readable that clew writes
    goes through one of these (the error line of cli.py through `printable`).

    Off a terminal (a pipe, a file) it has no width to fit: rich would render at 80
    columns, folding a long path over two lines or cutting a value with "…", so that
    `clew diff | grep PATH` finds nothing. There, every line is as long as its values."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not self.is_terminal and "width" not in options:
            self.width = _UNBOUNDED

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(printable(text), **options)


def format_time(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


def write_json(value: Any, stream: IO[str], *, indent: bool = True) -> None:
    """`value` as JSON, indented or on one line; dataclasses as objects of their fields."""
    spaces = 2 if indent else None
    try:
        import orjson  # the store extra; writing a 200,000-node graph: benchmarks/RESULTS.md
    except ImportError:
        stream.write(json.dumps(value, indent=spaces, default=_plain) + "\n")
        return
    # Datetimes through `str` as the json module writes them; orjson refuses integers wider
    # than 64 bits (ClickHouse's UInt128), which the json module writes.
    option = (orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
              | orjson.OPT_PASSTHROUGH_DATETIME | (orjson.OPT_INDENT_2 if indent else 0))
    try:
        stream.write(orjson.dumps(value, option=option, default=str).decode())
    except orjson.JSONEncodeError:
        stream.write(json.dumps(value, indent=spaces, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def shown_uri(uri: str) -> str:
    """A file URI of this host as the path a user would type from here (relative under the
    current directory); any other URI as it is; for rich output. JSON keeps the URIs."""
    local = file_uri("/")
    if not uri.startswith(local):
        return escape(uri)
    path = unquote(uri[len(local) - 1:])
    relative = os.path.relpath(path) + ("/" if path.endswith("/") else "")  # a directory
    # rich reads `[red]` in a file name as markup, and `[/]` as an error.
    return escape(path if relative.startswith("..") else relative)


def json_option(function: Any) -> Any:
    """The `--format table|json` option every query command has."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json"]),
        default="table",
        help="json: the documented, versioned schema (docs/cli.md).",
    )(function)


# A git commit (SHA-1 or SHA-256) as `clew runs` shows it (10 digits), a digest as `clew
# lineage` (12).
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def short_identity(identity: str) -> str:
    """Digests and commits in one short style, each of several space-separated ones (JSON
    has them whole); other identities (versions, ETags, sizes) and values as they are."""
    return " ".join(word[:19] + "…" if word.startswith(BLAKE3_PREFIX) and len(word) > 20
                    else word[:10] if _COMMIT.fullmatch(word) else word
                    for word in identity.split(" "))
