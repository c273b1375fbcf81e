"""Records the local safetensors files a program reads and writes.

safetensors opens and memory-maps its files in Rust, out of sight of the audit hook, so
reads and writes are recorded at its public Python entry points, each one a record of the
whole file with its blake3 digest, however few of its tensors are read:

- `safe_open` (the read of every loader, transformers' `from_pretrained` among them) and
  `serialize_file` (the write under every `save_file`);
- `load_file` and `save_file` of each framework module (`safetensors.torch`, `numpy`, `flax`,
  `tensorflow`, `paddle`, `mlx`), and torch's `load_model` and `save_model`.

Not recorded here: `load` and `save`, which work on bytes in memory (the file those bytes
came from or go to is Python's open, recorded by the files instrumentor).

safetensors is patched when the program imports each of its modules, never imported by clew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

from clew.instrumentation.package import _instruments_safetensors

from . import _file_arguments as files
from ._instrumentor import ClewInstrumentor

# (attribute, position and keyword of the path) of what each module reads and writes.
_FRAMEWORKS = ("torch", "numpy", "flax", "tensorflow", "paddle", "mlx")
_READS: dict[str, tuple[tuple[str, int, str], ...]] = {
    "safetensors": (("safe_open", 0, "filename"),),
    **{f"safetensors.{name}": (("load_file", 0, "filename"),) for name in _FRAMEWORKS},
}
_READS["safetensors.torch"] += (("load_model", 1, "filename"),)
_WRITES: dict[str, tuple[tuple[str, int, str], ...]] = {
    "safetensors": (("serialize_file", 1, "filename"),),
    **{f"safetensors.{name}": (("save_file", 1, "filename"),) for name in _FRAMEWORKS},
}
_WRITES["safetensors.torch"] += (("save_model", 1, "filename"),)


class SafetensorsInstrumentor(ClewInstrumentor):
    """Instrumentor for safetensors' native reads and writes of local files."""

    _instruments = _instruments_safetensors

    def _patches(self) -> Mapping[str, Callable[[ModuleType], None]]:
        return {name: self._patch_module for name in _READS}

    def _patch_module(self, module: ModuleType) -> None:
        name = module.__name__
        for attribute, position, keyword in _READS[name]:
            if hasattr(module, attribute):
                self.wrap(module, attribute, files.reads(self, f"{name}.{attribute}", position, keyword))
        for attribute, position, keyword in _WRITES[name]:
            if hasattr(module, attribute):
                self.wrap(module, attribute, files.writes(self, f"{name}.{attribute}", position, keyword))
