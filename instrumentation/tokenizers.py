"""Records the local files Hugging Face tokenizers reads and writes.

tokenizers reads and writes its files in Rust, out of sight of the audit hook, so they are
recorded at its public Python entry points, each file one record with its blake3 digest:
`Tokenizer.from_file` (transformers' fast tokenizers load `tokenizer.json` with it) a read,
`Tokenizer.save` a write, `Tokenizer.train` a read of each of its training files, and a
model's `save` (`vocab.txt`, `vocab.json`, `merges.txt`, ...) a write of each file it saved.

Not recorded here: the models' own `from_file` and `read_file` (a vocabulary read into a
new model). tokenizers is patched when the program imports it, never imported by clew.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import ModuleType

from clew.instrumentation.package import _instruments_tokenizers

from . import _file_arguments as files
from ._file_arguments import argument, local_path, record_read, record_write
from ._instrumentor import ClewInstrumentor, recording
from ._recorder import Recorder


class TokenizersInstrumentor(ClewInstrumentor):
    """Instrumentor for tokenizers' native reads and writes of local files."""

    _instruments = _instruments_tokenizers

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        return {"tokenizers": self._patch_tokenizers}

    def _patch_tokenizers(self, module: ModuleType) -> None:
        tokenizer = module.Tokenizer
        self.wrap(tokenizer, "from_file", files.reads(self, "Tokenizer.from_file", 0, "path"))
        self.wrap(tokenizer, "save", files.writes(self, "Tokenizer.save", 0, "path"))
        self.wrap(tokenizer, "train", self._train)
        self.wrap(module.models.Model, "save", self._save_model)

    def _train(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202 - wrapt's signature
        if not recording() or not self.active:
            return wrapped(*args, **kwargs)
        self._record("Tokenizer.train", argument(args, kwargs, 0, "files"), record_read)
        return files.suppressing(wrapped, args, kwargs)

    def _save_model(self, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        if not recording() or not self.active:
            return wrapped(*args, **kwargs)
        saved = files.suppressing(wrapped, args, kwargs)
        self._record("Model.save", saved, record_write)
        return saved

    def _record(self, where: str, paths: object, action: Callable[[Recorder, str], None]) -> None:
        """Record `action` on each local file of `paths`, a list of paths (or one)."""
        def record(recorder: Recorder) -> None:
            items = (paths,) if isinstance(paths, (str, bytes, os.PathLike)) else paths or ()
            wants = recorder.filter.wants
            for item in items:
                path = local_path(item)
                if path is not None and wants(path):
                    action(recorder, path)

        self.record(where, record)
