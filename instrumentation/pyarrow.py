"""Records the local files pyarrow reads and writes in its native code.

Arrow's C++ opens files itself, out of sight of the audit hook, so reads and writes are
recorded at pyarrow's public Python entry points, each one a record of the whole file (with
its blake3 digest) however many row groups, batches or pages are read:

- Parquet: `read_table` and `ParquetDataset` (the files of the dataset), `ParquetFile`
  (so `read_metadata`, `read_schema`), `write_table`/`ParquetWriter`, `write_to_dataset`;
- `pyarrow.dataset`: `dataset()` records the files it found as read when it is made (its
  scans run in compiled code that cannot be wrapped: a dataset made and never scanned is
  still recorded, and every file of it, whatever a filter later skips), `write_dataset` the
  files it wrote (through its `file_visitor`, the user's own called as before);
- Feather and IPC: `feather.read_table`/`read_feather`/`write_feather`, `ipc.open_file`,
  `open_stream`, `new_file`, `new_stream` and their reader and writer classes;
- CSV and JSON: `csv.read_csv`, `open_csv`, `write_csv`, `CSVWriter`; `json.read_json`,
  `open_json`; ORC: `orc.read_table`, `ORCFile`, `orc.write_table`, `ORCWriter`;
- `memory_map`, `create_memory_map`, `OSFile`, `input_stream`, `output_stream` given a path.

Not recorded here: a file object (Python's open already recorded it), a remote filesystem or
URI (fsspec's and the object stores' hooks record those), `pyarrow.fs.LocalFileSystem`'s own
`open_*` methods (compiled methods of a compiled class: they cannot be wrapped), and files a
write deletes (`existing_data_behavior="delete_matching"`).

pyarrow is patched when the program imports each of its modules, never imported by clew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from clew.instrumentation.package import _instruments_pyarrow

from . import _file_arguments as files
from ._file_arguments import (
    argument, local_filesystem, local_path, record_paths, record_read, record_write, suppressing,
)
from ._instrumentor import ClewInstrumentor, recording
from ._paths import absolute

# (attribute, position and keyword of the path) of what each module reads and writes.
_READS: dict[str, tuple[tuple[str, int, str], ...]] = {
    "pyarrow.parquet.core": (("ParquetFile.__init__", 0, "source"),),
    "pyarrow.feather": (("read_table", 0, "source"), ("read_feather", 0, "source")),
    "pyarrow.ipc": (
        ("RecordBatchFileReader.__init__", 0, "source"),
        ("RecordBatchStreamReader.__init__", 0, "source"),
    ),
    "pyarrow.csv": (("read_csv", 0, "input_file"), ("open_csv", 0, "input_file")),
    "pyarrow.json": (("read_json", 0, "input_file"), ("open_json", 0, "input_file")),
    "pyarrow.orc": (("ORCFile.__init__", 0, "source"), ("read_table", 0, "source")),
    "pyarrow": (("input_stream", 0, "source"),),
}
_WRITES: dict[str, tuple[tuple[str, int, str], ...]] = {
    "pyarrow.parquet.core": (("ParquetWriter.__init__", 0, "where"),),
    "pyarrow.feather": (("write_feather", 1, "dest"),),
    "pyarrow.ipc": (
        ("RecordBatchFileWriter.__init__", 0, "sink"),
        ("RecordBatchStreamWriter.__init__", 0, "sink"),
    ),
    "pyarrow.csv": (("write_csv", 1, "output_file"), ("CSVWriter", 0, "sink")),
    "pyarrow.orc": (("ORCWriter.__init__", 0, "where"), ("write_table", 1, "where")),
    "pyarrow": (("output_stream", 0, "source"), ("create_memory_map", 0, "path")),
}
# (attribute, position and keyword of the path, of the mode) of what opens in a mode.
_OPENS = {"pyarrow": (("memory_map", 0, "path", 1, "mode"), ("OSFile", 0, "path", 1, "mode"))}


def _local_source(source: object, filesystem: object) -> bool:
    """Whether a dataset's source names local files only."""
    if not local_filesystem(filesystem):
        return False
    items = source if isinstance(source, (list, tuple)) else (source,)
    return bool(items) and all(local_path(item) is not None for item in items)


def _dataset_files(dataset: object) -> list[str]:
    """The local files of a FileSystemDataset (none for in-memory or remote datasets)."""
    if not local_filesystem(getattr(dataset, "filesystem", False)):
        return []
    return [p for p in map(absolute, getattr(dataset, "files", ())) if p is not None]


class PyarrowInstrumentor(ClewInstrumentor):
    """Instrumentor for pyarrow's native reads and writes of local files."""

    _instruments = _instruments_pyarrow

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        patches: dict[str, Callable[[ModuleType], None]] = {
            name: self._patch_module for name in {*_READS, *_WRITES, *_OPENS}
        }
        patches["pyarrow.dataset"] = self._patch_dataset
        return patches

    def _patch_module(self, module: ModuleType) -> None:
        name = module.__name__
        for attribute, position, keyword in _READS.get(name, ()):
            wrapper = files.reads(self, f"{name}.{attribute}", position, keyword)
            self._wrap_attribute(module, attribute, wrapper)
        for attribute, position, keyword in _WRITES.get(name, ()):
            wrapper = files.writes(self, f"{name}.{attribute}", position, keyword)
            self._wrap_attribute(module, attribute, wrapper)
        for attribute, *arguments in _OPENS.get(name, ()):
            wrapper = files.opens(self, f"{name}.{attribute}", *arguments)
            self._wrap_attribute(module, attribute, wrapper)
        if name == "pyarrow.parquet.core":
            self.wrap(module.ParquetDataset, "__init__", self._parquet_dataset)

    def _wrap_attribute(self, module: ModuleType, attribute: str, wrapper: Any) -> None:
        owner_name, _, name = attribute.rpartition(".")
        if getattr(module, owner_name or name, None) is None:
            return  # not in this pyarrow version
        self.wrap(getattr(module, owner_name) if owner_name else module, name, wrapper)
        if module.__name__ == "pyarrow" and not owner_name:
            # Also where pyarrow's Python modules find it (`pyarrow.lib`).
            self.wrap(module.lib, name, wrapper)

    def _patch_dataset(self, module: ModuleType) -> None:
        self.wrap(module, "dataset", self._dataset)
        self.wrap(module, "write_dataset", self._write_dataset)

    def _parquet_dataset(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        source = argument(args, kwargs, 0, "path_or_paths")
        if not recording() or not _local_source(source, argument(args, kwargs, 1, "filesystem")):
            return wrapped(*args, **kwargs)
        result = suppressing(wrapped, args, kwargs)
        self._record_reads("pyarrow.parquet.ParquetDataset", getattr(instance, "_dataset", None))
        return result

    def _dataset(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        source = argument(args, kwargs, 0, "source")
        if not recording() or not _local_source(source, argument(args, kwargs, 3, "filesystem")):
            return wrapped(*args, **kwargs)
        dataset = suppressing(wrapped, args, kwargs)
        self._record_reads("pyarrow.dataset.dataset", dataset)
        return dataset

    def _record_reads(self, where: str, dataset: object) -> None:
        record_paths(self, where, _dataset_files(dataset), record_read)

    def _write_dataset(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        base_dir = argument(args, kwargs, 1, "base_dir")
        filesystem = kwargs.get("filesystem")
        if not recording() or local_path(base_dir) is None or not local_filesystem(filesystem):
            return wrapped(*args, **kwargs)
        visitor = kwargs.get("file_visitor")

        def recording_visitor(written_file: Any) -> None:
            path = absolute(written_file.path)
            if path is not None:
                record_paths(self, "pyarrow.dataset.write_dataset", (path,), record_write)
            if visitor is not None:
                visitor(written_file)

        return suppressing(wrapped, args, {**kwargs, "file_visitor": recording_visitor})
