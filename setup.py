"""Builds clew's LD_PRELOAD library and the reader of its records; everything else is
declared in pyproject.toml.

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

extensions = [
    Extension(
        "clew.instrumentation._preload_shim",
        sources=["instrumentation/_preload_shim.c", "instrumentation/_preload_copies.c",
                 "instrumentation/_preload_got.c"],
        depends=["instrumentation/_preload_shim.h", "instrumentation/_preload_got.h"],
        extra_compile_args=["-O2", "-fvisibility=default", "-Wall"],
        libraries=["dl"],
        optional=True,
    ),
    Extension(
        "clew.instrumentation._preload_notes",
        sources=["instrumentation/_preload_notes.c", "instrumentation/_preload_sort.c"],
        depends=["instrumentation/_preload_sort.h"],
        extra_compile_args=["-O2", "-Wall"],
        optional=True,
    ),
    Extension(
        "clew.instrumentation._open_hook",
        sources=["instrumentation/_open_hook.c", "instrumentation/_open_hook_read.c",
                 "instrumentation/_open_hook_record.c"],
        depends=["instrumentation/_open_hook.h", "instrumentation/_xattr_names.h"],
        extra_compile_args=["-O2", "-Wall", "-fvisibility=hidden"],
        optional=True,
    ),
    # A flush's per-record work on small file reads (instrumentation/_record_spans.py falls
    # back to Python without it).
    Extension(
        "clew.instrumentation._read_batches",
        sources=["instrumentation/_read_batches.c", "instrumentation/_read_stamps.c",
                 "instrumentation/_flush_plan.c"],
        depends=["instrumentation/_read_batches.h", "instrumentation/_xattr_names.h"],
        extra_compile_args=["-O2", "-Wall", "-fvisibility=hidden"],
        optional=True,
    ),
] if sys.platform.startswith("linux") else []
# The process span's code files, read from sys.modules without copying a forked child's pages
# (instrumentation/_imported.py falls back to Python without it).
extensions.append(
    Extension(
        "clew.instrumentation._module_files",
        sources=["instrumentation/_module_files.c"],
        extra_compile_args=["-O2", "-Wall"],
        optional=True,
    )
)

# The digest cache file read into memory (instrumentation/_file_digests.py falls back to
# Python without it).
extensions.append(
    Extension(
        "clew.instrumentation._digest_cache_text",
        sources=["instrumentation/_digest_cache_text.c"],
        extra_compile_args=["-O2", "-Wall"],
        optional=True,
    )
)

# The spool encoder's attributes as text (exporter/otlp_encode.py falls back to Python
# without it).
extensions.append(
    Extension(
        "clew.exporter._attributes_text",
        sources=["exporter/_attributes_text.c"],
        extra_compile_args=["-O3", "-Wall"],
        optional=True,
    )
)

# The ingest's spans to rows (exporter/store/rows.py falls back to Python without it).
extensions.append(
    Extension(
        "clew.exporter.store._span_rows",
        sources=["exporter/store/_span_rows.c", "exporter/store/_span_values.c"],
        depends=["exporter/store/_span_rows.h"],
        extra_compile_args=["-O2", "-Wall", "-fvisibility=hidden"],
        optional=True,
    )
)

# The attribute maps of the ingest's Native blocks (exporter/store/native.py writes them in
# Python without it).
extensions.append(
    Extension(
        "clew.exporter.store._native_maps",
        sources=["exporter/store/_native_maps.c"],
        extra_compile_args=["-O2", "-Wall"],
        optional=True,
    )
)

# A spool line's pieces copied to the file through one reused buffer (exporter/spool.py joins
# and encodes them in Python without it).
extensions.append(
    Extension(
        "clew.exporter._line_chunks",
        sources=["exporter/_line_chunks.c"],
        extra_compile_args=["-O2", "-Wall"],
        optional=True,
    )
)

setup(ext_modules=extensions)
