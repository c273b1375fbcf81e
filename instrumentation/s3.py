"""Records S3 object operations made through botocore (boto3, s3transfer, aiobotocore).

Hooks botocore's event system on every session the program creates, so every client is
covered without touching boto3: `provide-client-params.s3` opens a record (and, with
CLEW_STAMP_OBJECTS, stamps a write's metadata before the request is built), `after-call.s3`
completes it from the response.

Recorded, one record per logical operation: GetObject (ranged GETs of one object version in
one process fold into one read, bytes summed: a download_file is one read), PutObject,
multipart uploads (CreateMultipartUpload..CompleteMultipartUpload is one write: upload_file),
CopyObject and UploadPartCopy (a copy from source to destination), DeleteObject(s);
HeadObject and listings as metadata access ("list"). Each carries aws.s3.bucket, aws.s3.key,
the VersionId, ETag, size, the checksums S3 returned, and the endpoint's host and port. A
GetObject body read whole from start to end gets a blake3 digest as it streams.

Under an outer layer (s3fs over aiobotocore) nothing is recorded here: what the response
tells (version, ETag, producer stamp) is added to the outer layer's record instead, and a
whole GET's body is hashed for that record here, on the event loop's thread, as it arrives.

botocore is patched when the program imports it, never imported by clew.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from opentelemetry.instrumentation.utils import unwrap

from ._instrumentor import ClewInstrumentor, deferred

_instruments = ("botocore >= 1.20",)


class S3Instrumentor(ClewInstrumentor):
    """Instrumentor for S3 through botocore's event system. Uninstrumented, the handlers
    already on live sessions do nothing (`active`)."""

    _instruments = _instruments

    def _patches(self) -> dict[str, Callable[[Any], None]]:
        return {"botocore.session": deferred("clew.instrumentation._s3_patch", "patch")}

    def _stop(self) -> None:
        module = sys.modules.get("botocore.session")
        if module is not None:
            unwrap(module.Session, "_register_builtin_handlers")


_instrumentor = S3Instrumentor()
