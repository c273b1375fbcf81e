"""Records GCS object operations made through google-cloud-storage.

Wrapped: Blob.download_as_bytes (and so download_as_text/_string), download_to_file,
download_to_filename, upload_from_string, upload_from_file, upload_from_filename,
open in write mode (recorded when the writer closes, digested as the bytes pass, its
generation and checksums taken from the upload's last response; a reader's chunked downloads
fold into one read), Blob.delete, Bucket.delete_blob, Bucket.copy_blob and Blob.rewrite (copies).
Each record carries the object's generation, ETag, md5Hash and crc32c as the Blob knows them
after the call (the download and upload responses set them: no extra request), the bytes, and
a blake3 digest of a whole download_as_bytes or upload_from_string.

With CLEW_STAMP_OBJECTS, uploads stamp the producer into the blob's metadata before they are
sent (by default the program's metadata is left as it set it); a download that finds a stamp
(in metadata the Blob already holds, or the x-goog-meta-* headers of the download response)
links to the producer.

google-cloud-storage is patched when the program imports it, never imported by clew.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ._instrumentor import ClewInstrumentor, deferred

_instruments = ("google-cloud-storage >= 2.0",)
# Where the resumable upload behind Blob.open("wb") lives: google-cloud-storage 3 vendors it.
UPLOAD_MODULES = ("google.cloud.storage._media.requests.upload",
                  "google.resumable_media.requests.upload")
_PATCH = "clew.instrumentation._gcs_patch"


class GcsInstrumentor(ClewInstrumentor):
    """Instrumentor for google-cloud-storage's Blob and Bucket."""

    _instruments = _instruments

    def _patches(self) -> dict[str, Callable[[Any], None]]:
        return {
            "google.cloud.storage.blob": deferred(_PATCH, "patch"),
            "google.cloud.storage.bucket": deferred(_PATCH, "patch_bucket"),
            **{module: deferred(_PATCH, "patch_upload") for module in UPLOAD_MODULES},
        }

    def _stop(self) -> None:
        patched = sys.modules.get(_PATCH)
        if patched is not None:  # else nothing was patched
            patched.unpatch()


_instrumentor = GcsInstrumentor()
