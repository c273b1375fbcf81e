"""Records the local HDF5 files a program opens with h5py.

The HDF5 C library opens files itself, out of sight of the audit hook, so `h5py.File` is
recorded when it opens a path, by its mode: "r" a read; "w", "w-" and "x" a write; "r+" and
"a" (read and write in place) a read of the content it had, digested at the open before
anything changes it, and a write. A write is recorded as a Python file opened for writing
is: with the digest of the content the file settles to, at its close or at the program's
exit at the latest, so a file never closed is recorded too.

Not recorded here: a file object given to `File` (Python's open recorded it), and the
in-memory "core" driver's files without a backing store (nothing is written to disk).

h5py is patched when the program imports it, never imported by clew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

from clew.instrumentation.package import _instruments_h5py

from ._file_arguments import argument, local_path, record_paths, record_read, record_write
from ._instrumentor import ClewInstrumentor, inner_layers_suppressed, recording
from ._recorder import Recorder


def _update(recorder: Recorder, path: str) -> None:
    recorder.opened_for_update(path)


# What opening a file in each of h5py's modes records.
_MODE_ACTIONS: dict[str, Callable[[Recorder, str], None]] = {
    "r": record_read, "r+": _update, "a": _update, "w": record_write, "w-": record_write,
    "x": record_write,
}


class H5pyInstrumentor(ClewInstrumentor):
    """Instrumentor for the HDF5 files h5py opens by path."""

    _instruments = _instruments_h5py

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        return {"h5py._hl.files": self._patch_files}

    def _patch_files(self, module: ModuleType) -> None:
        self.wrap(module.File, "__init__", self._open)

    def _open(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
        if not recording() or not self.active:
            return wrapped(*args, **kwargs)
        path = local_path(argument(args, kwargs, 0, "name"))
        action = _MODE_ACTIONS.get(argument(args, kwargs, 1, "mode") or "r")
        if path is None or action is None:  # a file object, an HDF5 id; a mode h5py refuses
            return wrapped(*args, **kwargs)
        if argument(args, kwargs, 2, "driver") == "core" and not kwargs.get("backing_store", True):
            action = record_read if action is not record_write else None  # memory only
        if action is not None:
            record_paths(self, "h5py.File", (path,), action)
        with inner_layers_suppressed():
            return wrapped(*args, **kwargs)
