"""Records what a program reads and writes through fsspec, for every filesystem.

Hooked at the fsspec layer, so s3fs, gcsfs, memory, http and any other backend are covered:
`open` in read, write and append modes (recorded when the file closes), `cat_file`/`cat`,
`pipe_file`/`pipe`, `get`/`put` (the remote object; the local file is recorded as the files
instrumentor would), `cp`/`copy`, `mv`, `rm`. Each filesystem class gets its own overrides of
these wrapped when it is defined (or, for classes defined before instrumentation, at once);
async filesystems are wrapped at their coroutines (`_cat_file`, ...), which their sync methods,
bulk methods and `cat` of many paths all reach.

One logical operation makes one record: the inner layers (aiobotocore under s3fs, gcsfs's HTTP
session, fsspec's own nested calls) run suppressed and add what their responses say (version,
ETag, checksums, producer stamp) to this layer's record; versions and ETags an open file
already knows (S3File.details, GCSFile.details) are used as they are, with no extra request.
A file read from its start to its end, and every whole `cat_file`/`pipe_file`, gets a blake3
digest of the bytes in passing. Under s3fs the botocore layer computes it, hashing a whole
GET's body as it arrives (so a short read of an object s3fs fetched whole has it too), and
this layer leaves it to that. The local filesystem is left to the files instrumentor, whose
audit hooks see every one of its operations (with digests, xattr stamps and settling).

fsspec is patched when the program imports it, never imported by clew.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ._instrumentor import ClewInstrumentor, deferred

_instruments = ("fsspec >= 2023.1.0",)
_PATCH = "clew.instrumentation._fsspec_patch"


class FsspecInstrumentor(ClewInstrumentor):
    """Instrumentor for every fsspec filesystem."""

    _instruments = _instruments

    def _patches(self) -> dict[str, Callable[[Any], None]]:
        return {"fsspec": deferred(_PATCH, "patch"), "gcsfs.core": deferred(_PATCH, "patch_gcsfs")}

    def _stop(self) -> None:
        patched = sys.modules.get(_PATCH)
        if patched is not None:  # else nothing was patched
            patched.unpatch()


_instrumentor = FsspecInstrumentor()
