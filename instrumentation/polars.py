"""Records the local files polars reads and writes in its native (Rust) code.

- `read_parquet`, `read_csv`, `read_ipc`, `read_ipc_stream`, `read_ndjson`: every file the
  source names (a path, a directory, a glob or a list, expanded as polars expands it), read
  once each with its whole-file digest;
- `scan_parquet`, `scan_csv`, `scan_ipc`, `scan_ndjson`: nothing when the scan is made; its
  files are recorded as read each time a query plan holding the scan is run
  (`LazyFrame.collect`, `collect_async`, `sink_*`, `collect_all`), and never when it is not;
- `DataFrame.write_parquet`, `write_csv`, `write_ipc`, `write_ipc_stream`, `write_ndjson`,
  and `LazyFrame.sink_parquet`, `sink_csv`, `sink_ipc`, `sink_ndjson` to a path: the file
  written, digested once its content settles.

Not recorded here: file objects and bytes (Python's open recorded the file, if any), cloud
URIs and `storage_options` (remote), and partitioned writes (`partition_by`, `PartitionBy`).
A scan is recorded with all its files even when hive partition pruning or a slice skips some.

polars is patched when the program imports it, never imported by clew.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

from clew.instrumentation.package import _instruments_polars

from . import _file_arguments as files
from ._file_arguments import argument, local_path, record_paths, record_read, record_write
from ._instrumentor import ClewInstrumentor, inner_layers_suppressed, recording
from ._paths import absolute

_FORMATS = ("parquet", "csv", "ipc", "ndjson")
_READS = (*(f"read_{f}" for f in _FORMATS), "read_ipc_stream")
_SCANS = tuple(f"scan_{f}" for f in _FORMATS)
_WRITES = (*(f"write_{f}" for f in _FORMATS), "write_ipc_stream")
_SINKS = tuple(f"sink_{f}" for f in _FORMATS)
_SCAN = "SCAN ["  # how a plan's text shows a scan, before its files
_MAX_SCANS = 100_000


def _scans_in(plan: str) -> Iterator[str]:
    """The file lists of the scans in a plan's text, each from its first file to the end of
    its line: `Parquet SCAN [a.parquet, ... 3 other sources]`."""
    start = plan.find(_SCAN)
    while start >= 0:
        start += len(_SCAN)
        end = plan.find("\n", start)
        yield plan[start:] if end < 0 else plan[start:end]
        start = plan.find(_SCAN, start)


def _local_source(args: tuple, kwargs: dict) -> object | None:
    """The call's `source` when it names local files only (str, PathLike or a list of them,
    no `storage_options`); None otherwise."""
    source = argument(args, kwargs, 0, "source")
    if kwargs.get("storage_options"):
        return None
    items = source if isinstance(source, (list, tuple)) else (source,)
    if not items or any(local_path(item) is None for item in items):
        return None
    return source


def _expanded(source: object, glob: bool) -> list[str]:
    """The files a source names, as polars itself expands directories and globs (each as
    polars prints it in a plan, relative names staying relative)."""
    from polars.io._expand_paths import _expand_paths  # already imported with polars

    with inner_layers_suppressed():
        frame = _expand_paths(source, glob=glob).collect()
    return frame.get_column(frame.columns[0]).to_list()


class PolarsInstrumentor(ClewInstrumentor):
    """Instrumentor for polars' native reads, lazy scans and writes of local files."""

    _instruments = _instruments_polars

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        return {"polars": self._patch_polars}

    def _start(self, **kwargs: Any) -> None:
        # The files of each scan made, by the first as polars names it in a plan's text.
        self._scans: dict[str, list[str]] = {}

    def _patch_polars(self, polars: ModuleType) -> None:
        for name in _READS:
            self.wrap(polars, name, self._read)
        for name in _SCANS:
            self.wrap(polars, name, self._scan)
        for name in _WRITES:
            self.wrap(polars.DataFrame, name, files.writes(self, f"polars.{name}", 0, "file"))
        for name in _SINKS:
            self.wrap(polars.LazyFrame, name, self._sink)
        for name in ("collect", "collect_async"):
            self.wrap(polars.LazyFrame, name, self._collect)
        for name in ("collect_all", "collect_all_async"):
            if hasattr(polars, name):
                self.wrap(polars, name, self._collect_all)

    def _read(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's
        source = _local_source(args, kwargs) if recording() else None
        if source is None:
            return wrapped(*args, **kwargs)
        self.record("polars read", lambda recorder: self._record_reads(source, kwargs))
        with inner_layers_suppressed():
            return wrapped(*args, **kwargs)

    def _record_reads(self, source: object, kwargs: dict) -> None:
        found = _expanded(source, kwargs.get("glob", True))
        record_paths(self, "polars read", filter(None, map(absolute, found)), record_read)

    def _scan(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        source = _local_source(args, kwargs) if recording() else None
        frame = wrapped(*args, **kwargs)
        if source is not None:
            self.record("polars scan", lambda recorder: self._remember_scan(source, kwargs))
        return frame

    def _remember_scan(self, source: object, kwargs: dict) -> None:
        found = _expanded(source, kwargs.get("glob", True))
        if not found:
            return
        if len(self._scans) >= _MAX_SCANS:
            # Bounded memory for programs that make a scan per file: the oldest scan is
            # forgotten, and the process span says so.
            forgotten = next(iter(self._scans))
            del self._scans[forgotten]
            error = RuntimeError(f"too many scans, {forgotten} forgotten")
            self.recorder.failed("polars scan", error)
        self._scans[found[0]] = [p for p in map(absolute, found) if p is not None]

    def _record_scans_run(self, frame: Any) -> None:
        """Record the files of every scan the plan of `frame` holds."""
        if not self._scans:
            return
        for listed in _scans_in(frame._ldf.describe_plan()):
            paths = self._scans.get(listed.partition(", ")[0].partition("]")[0])
            if paths is None:  # a first file whose name holds ", " or "]"
                paths = next((p for f, p in self._scans.items() if listed.startswith(f)), [])
            record_paths(self, "polars collect", paths, record_read)

    def _collect(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        if not recording():
            return wrapped(*args, **kwargs)
        self.record("polars collect", lambda recorder: self._record_scans_run(instance))
        with inner_layers_suppressed():
            return wrapped(*args, **kwargs)

    def _collect_all(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        if not recording():
            return wrapped(*args, **kwargs)
        frames = list(argument(args, kwargs, 0, "lazy_frames") or ())  # may be an iterator
        self.record("polars collect", lambda recorder: [self._record_scans_run(f) for f in frames])
        if args:
            args = (frames, *args[1:])
        else:
            kwargs = {**kwargs, "lazy_frames": frames}
        with inner_layers_suppressed():
            return wrapped(*args, **kwargs)

    def _sink(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        if not recording():
            return wrapped(*args, **kwargs)
        self.record("polars sink", lambda recorder: self._record_scans_run(instance))
        path = local_path(argument(args, kwargs, 0, "path"))
        if path is not None and not kwargs.get("storage_options"):
            record_paths(self, "polars sink", (path,), record_write)
        with inner_layers_suppressed():
            return wrapped(*args, **kwargs)
