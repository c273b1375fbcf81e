"""Builds clew's compiled parts, the LD_PRELOAD library and small CPython extensions; everything
else is declared in pyproject.toml.

The library is plain C against libc (no Python API, no libpython): it is loaded into programs
that are not Python. It is built as an extension only so that `pip install` and wheels compile
it with the machine's compiler. Its records are read back in the Python process by a small
CPython extension (`_preload_notes`). `optional` lets an install without a compiler go on, and
capture then falls back to recording such programs as opaque execs.

More small extensions, optional too, each with a Python path doing the same without it, slower:
the file audit hook's hot path (`_open_hook`; else instrumentation/files.py), a flush's
per-record loops (`_read_batches`), the imported modules' files for the process span
(`_module_files`), the digest cache file's reader (`_digest_cache_text`), the spool
encoder's attributes (`_attributes_text`) and its line's copy to the file (`_line_chunks`),
and the ingest's rows and Native attribute maps (`_span_rows`, `_native_maps`).
"""

import sys

from setuptools import Extension, setup


def optional(name: str, *sources: str, depends: tuple[str, ...] = (),
             flags: tuple[str, ...] = (), **more: list[str]) -> Extension:
    """clew.`name`, built where a compiler is: `optional`, so an install without one goes on
    and clew takes the slower way that does without it."""
    return Extension(f"clew.{name}", sources=list(sources), depends=list(depends),
                     extra_compile_args=["-O2", "-Wall", *flags], optional=True, **more)


# What only Linux has: LD_PRELOAD, and the xattrs the hook and the flush ask for.
linux = [
    optional("instrumentation._preload_shim", "instrumentation/_preload_shim.c",
             "instrumentation/_preload_copies.c", "instrumentation/_preload_got.c",
             depends=("instrumentation/_preload_shim.h", "instrumentation/_preload_got.h"),
             flags=("-fvisibility=default",), libraries=["dl"]),
    optional("instrumentation._preload_notes", "instrumentation/_preload_notes.c",
             "instrumentation/_preload_sort.c", depends=("instrumentation/_preload_sort.h",)),
    optional("instrumentation._open_hook", "instrumentation/_open_hook.c",
             "instrumentation/_open_hook_read.c", "instrumentation/_open_hook_hash.c",
             "instrumentation/_open_hook_record.c",
             depends=("instrumentation/_open_hook.h", "instrumentation/_xattr_names.h"),
             flags=("-fvisibility=hidden",)),
    # A flush's per-record work on small file reads (instrumentation/_record_spans.py).
    optional("instrumentation._read_batches", "instrumentation/_read_batches.c",
             "instrumentation/_read_stamps.c", "instrumentation/_flush_plan.c",
             depends=("instrumentation/_read_batches.h", "instrumentation/_xattr_names.h"),
             flags=("-fvisibility=hidden",)),
]
everywhere = [
    # The process span's code files, read from sys.modules without copying a forked child's
    # pages (instrumentation/_imported.py).
    optional("instrumentation._module_files", "instrumentation/_module_files.c"),
    # The digest cache file read into memory (instrumentation/_file_digests.py).
    optional("instrumentation._digest_cache_text", "instrumentation/_digest_cache_text.c"),
    # The spool encoder's attributes as text (exporter/otlp_encode.py).
    optional("exporter._attributes_text", "exporter/_attributes_text.c",
             "exporter/_attributes_writer.c", depends=("exporter/_attributes_text.h",),
             flags=("-O3", "-fvisibility=hidden")),
    # A spool line's pieces copied to the file through one reused buffer (exporter/spool.py).
    optional("exporter._line_chunks", "exporter/_line_chunks.c"),
    # The ingest's spans to rows (exporter/store/rows.py).
    optional("exporter.store._span_rows", "exporter/store/_span_rows.c",
             "exporter/store/_span_values.c", depends=("exporter/store/_span_rows.h",),
             flags=("-fvisibility=hidden",)),
    # The attribute maps of the ingest's Native blocks (exporter/store/native.py).
    optional("exporter.store._native_maps", "exporter/store/_native_maps.c"),
]

setup(ext_modules=(linux if sys.platform.startswith("linux") else []) + everywhere)
