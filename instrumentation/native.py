"""Records the files native code inside this Python process opens: a C, C++ or Rust library
that no clew hook names (image, audio, model-format and index readers, sqlite3, ...).

On by default; `CLEW_NATIVE=0` turns it off (docs/architecture.md, "Native opens inside
Python"). clew loads its interposition library (`_preload_shim.c`, the one it
preloads into non-Python children) into this process with ctypes, and redirects the loaded
shared objects' calls to libc's open, openat, creat, fopen, freopen, rename and unlink
families to that library's wrappers by rewriting their global offset table entries
(`_preload_got.c`), as memray installs its hooks: no LD_PRELOAD, no restart. Objects loaded
later are patched after each extension module's import and each ctypes load, and at every
flush (a library a native library loads by itself is seen from then on). The interpreter
itself (the python executable, libpython) is left alone: Python's own opens, imports
included, are the files hook's, so a Python `open` is never recorded twice.

The wrappers call libc first and note only a call that succeeded, leaving its return value
and errno as they were; paths in the places clew never records (the interpreter's trees,
site-packages, /proc, /sys, /dev, clew's home) are dropped in native code. At each flush
the recorder turns the new notes into records like the files hook's (digests, batching,
exclusions): a read of a file version a hook recorded already, or a write of a file a hook
watches, adds nothing, so a file a library hook reports is recorded once.

Not recorded: calls native code makes without going through an imported symbol (a
statically linked libc, raw system calls as Go does, io_uring), through function addresses
copied into data before clew patched (sqlite's unlink), reads of empty files (sqlite and
others open a new file read-write before writing it), and anything on platforms other than
Linux on x86-64 or aarch64.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
from typing import Any

from clew.instrumentation.package import _instruments
from clew.semconv import environment

from . import _preload, _preload_images
from ._file_digests import StatKey
from ._instrumentor import ClewInstrumentor
from ._record_spans import Record
from ._recorder import Recorder


class _Notes:
    """This process's record files, turned into records at each flush."""

    def __init__(self, recorder: Recorder, library: ctypes.CDLL) -> None:
        self.recorder = recorder
        self.active = True
        self.directory = (
            recorder.settings.home / environment.PRELOAD_DIRNAME / f"in-process-{os.getpid()}"
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        prefixes = [os.fsencode(p) for p in recorder.filter.excluded_prefixes]
        self._prefixes = (ctypes.c_char_p * len(prefixes))(*prefixes)
        self._start = library.clew_native_start
        self._start.argtypes = (ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int)
        self._files: dict[str, _File] = {}
        self._pid = os.getpid()

    def patch(self) -> int:
        """Redirect the calls of the objects loaded since last time (all, the first time):
        1 when they are, 0 when they cannot be, -1 when the library was preloaded."""
        return self._start(os.fsencode(self.directory), self._prefixes, len(self._prefixes))

    def collect(self, final: bool) -> list[Record]:
        """A recorder source: hands the notes made since the last flush to the recorder."""
        if not self.active:
            return []
        self.patch()
        pid = os.getpid()
        if pid != self._pid:  # a forked child: its files are its own, named by its pid
            self._pid, self._files = pid, {}
        # os.listdir, not Path.glob: glob compiles its pattern at each flush (~0.4 ms).
        prefix = f"{pid}-"
        try:
            names = sorted(
                name for name in os.listdir(self.directory)
                if name.startswith(prefix) and name.endswith(".rec")
            )
        except OSError:
            names = []
        for name in names:
            path = self.directory / name
            file = self._files.get(name)
            if file is None:
                file = self._files[name] = _File(self)
            _preload.read_new(path, file, self.recorder.filter.wants, {})
            if final:
                path.unlink(missing_ok=True)
        if final:
            try:
                self.directory.rmdir()  # unless a forked child still has files in it
            except OSError:
                pass
        return []

    def note(self, operation: int, key: StatKey | None, path: str, second: str | None) -> None:
        # A write's note has no key: the file as it was opened for writing is nobody's input.
        recorder = self.recorder
        if operation == _preload_images.READ:
            if key is not None and key[2] > 0:
                recorder.native_read(path, key)
        elif operation == _preload_images.WRITE:
            recorder.native_write(path)
        elif operation == _preload_images.RENAME:
            if second is None:  # moved in from a place clew does not record
                recorder.native_write(path)
            else:
                recorder.renamed(second, path)
        elif operation == _preload_images.DELETE:
            recorder.native_delete(path, key)


class _File:
    """One record file, read a little further at each flush."""

    __slots__ = ("read_to", "note")

    def __init__(self, notes: _Notes) -> None:
        self.read_to = 0
        self.note = notes.note


class NativeInstrumentor(ClewInstrumentor):
    """Instrumentor for native code's file opens inside this process (CLEW_NATIVE)."""

    _instruments = _instruments
    _notes: _Notes | None = None

    def _start(self, **kwargs: Any) -> None:
        if self._notes is None:
            self._notes = self._begin(self.recorder)
        if self._notes is not None:
            self._notes.active = True
            self.wrap(importlib.machinery.ExtensionFileLoader, "create_module", self._loaded)

    @staticmethod
    def _begin(recorder: Recorder) -> _Notes | None:
        shim = _preload.library() if recorder.settings.native else None
        if shim is None:
            return None
        try:
            notes = _Notes(recorder, ctypes.CDLL(shim))
            patched = notes.patch()
            if patched == 0:
                raise OSError("no record file, or this platform's objects cannot be patched")
        except (OSError, AttributeError) as error:
            recorder.failed("native opens", error)
            return None
        if patched < 0:
            # Preloaded by a non-Python parent (an instrumented Python a traced shell
            # started): its wrappers would see the interpreter's own opens too. Off here.
            notes.directory.rmdir()
            return None
        recorder.sources.append(notes.collect)
        return notes

    def _patches(self) -> dict:
        return {"ctypes": self._patch_ctypes} if self._notes is not None else {}

    def _patch_ctypes(self, module: Any) -> None:
        self.wrap(module.CDLL, "__init__", self._loaded)

    def _loaded(self, wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        """After an extension module or a ctypes library is loaded: patch it, and what it
        brought with it, before the program calls into it."""
        result = wrapped(*args, **kwargs)
        notes = self._notes
        if notes is not None and notes.active:
            self.record("patching native code", lambda recorder: notes.patch())
        return result

    def _stop(self) -> None:
        # The redirected calls stay (undoing them under running native code is not safe):
        # their notes are no longer turned into records.
        if self._notes is not None:
            self._notes.active = False
