"""The spool: OTLP JSON Lines, one file per process, in `<CLEW_HOME>/spool/`.

Each line is one ExportTraceServiceRequest (TracesData) in OTLP's JSON encoding, as
OpenTelemetry's file exporter writes it, so the Collector's otlpjsonfile receiver reads it
too. A line is written with a single O_APPEND write: readers see whole lines or, after a
crash mid-write, one torn last line that they skip. One file per process means any number
of processes, ranks or hosts on a shared filesystem write without a server.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from clew.semconv import environment

from .otlp_encode import encode_json

_logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"


def spool_directory(home: Path | None = None) -> Path:
    """`<home>/spool`, home defaulting to clew's resolved home."""
    return (home or environment.resolve_home()) / environment.SPOOL_DIRNAME


class SpoolSpanExporter(SpanExporter):
    """Writes spans to this process's spool file. Never raises; reports failure."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self._directory = Path(directory) if directory is not None else None
        self._fd: int | None = None
        self._pid: int | None = None
        self.path: Path | None = None

    def _open(self) -> int:
        directory = self._directory or spool_directory()
        environment.ensure_home(directory.parent) if self._directory is None else None
        directory.mkdir(parents=True, exist_ok=True)
        # Time first, so a listing is in start order; pid and a random part, so no two
        # processes (on any host sharing the directory) ever share a file.
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{stamp}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        self.path = directory / name
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o644)
        self._pid = os.getpid()
        return self._fd

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            fd = self._fd if self._pid == os.getpid() else self._open()
            data = (encode_json(spans) + "\n").encode("utf-8")
            while data:
                written = os.write(fd, data)
                data = data[written:]
        except Exception as error:  # noqa: BLE001 - export never raises
            _logger.warning("clew: writing %d spans to the spool failed: %r", len(spans), error)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is written through; nothing is buffered here

    def shutdown(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd = None


@dataclass(frozen=True)
class SpoolLine:
    """One parsed line of a spool file."""

    path: Path
    offset: int
    data: dict


@dataclass
class SpoolProblems:
    """Lines a reader could not use: corrupt ones, and a torn last line still being written."""

    corrupt: list[tuple[Path, int]]
    torn: list[Path]


def spool_files(directory: Path) -> list[Path]:
    """The spool's files, oldest first."""
    return [directory / name for name in spool_sizes(directory)]


def spool_sizes(directory: Path) -> dict[str, int]:
    """The spool's files by name, oldest first, with their sizes now."""
    found: dict[str, int] = {}
    try:
        # scandir: a spool holds one file per process, thousands of them, and every query
        # command lists it; DirEntry gives the type without a stat and the size with one.
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith(SUFFIX) and entry.is_file():
                    try:
                        found[entry.name] = entry.stat().st_size
                    except FileNotFoundError:
                        continue  # removed since the listing (`clew spool` pruning, a user)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return dict(sorted(found.items()))


def read_spool(directory: Path, problems: SpoolProblems | None = None) -> Iterator[SpoolLine]:
    """Yield every whole, valid line of every spool file.

    A last line without its newline is being written (or its writer crashed): it is skipped
    and noted as torn. A line that does not parse is skipped and noted as corrupt.
    """
    for path in spool_files(directory):
        offset = 0
        with open(path, "rb") as handle:
            for raw in handle:
                start = offset
                offset += len(raw)
                if not raw.endswith(b"\n"):
                    if problems is not None:
                        problems.torn.append(path)
                    break
                try:
                    data = json.loads(raw)
                except ValueError:
                    if problems is not None:
                        problems.corrupt.append((path, start))
                    continue
                if isinstance(data, dict):
                    yield SpoolLine(path, start, data)
                elif problems is not None:
                    problems.corrupt.append((path, start))
