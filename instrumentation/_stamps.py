"""Producer stamps: the span that wrote an artifact, kept with the artifact itself.

A write puts its span (a W3C traceparent) and, when known, the content digest into the
artifact's metadata: a user extended attribute on a local file, and, only when opted in with
CLEW_STAMP_OBJECTS (a program sees its objects' metadata), S3 user metadata or GCS metadata.
A later read, in any run, finds the stamp and links its span to the producer's.

Copies carry stamps along (`shutil.copy2` copies xattrs, S3 CopyObject the metadata), so a
stamp is evidence only for content it agrees with: the lineage tables credit the producer
only when the stamp's digest equals the digest the read saw (`clew.exporter.store.lineage`).

The value is one string, the same in every store: ``00-<trace id>-<span id>-01`` followed by a
space and ``<algorithm>:<hex>`` when the digest is known.
"""

from __future__ import annotations

import errno
import os

from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, TraceFlags

from clew.semconv import attributes as attr
from clew.semconv import environment

from ._file_digests import StatKey, stat_key

_MAX_VALUE = 200  # a stamp is ~55 characters, ~130 with a digest; anything longer is not ours
# Devices whose filesystem refused a user xattr: not tried again in this process.
_no_xattrs: set[int] = set()


def encode(span_context: SpanContext, digest: str | None = None) -> str:
    """The stamp of a write made by the span `span_context`."""
    value = (
        f"00-{trace.format_trace_id(span_context.trace_id)}"
        f"-{trace.format_span_id(span_context.span_id)}-01"
    )
    return f"{value} {digest}" if digest else value


def decode(value: object) -> tuple[SpanContext, str | None] | None:
    """The producer span and digest of a stamp, or None for anything that is not one."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str) or len(value) > _MAX_VALUE:
        return None
    parent, _, digest = value.strip().partition(" ")
    parts = parent.split("-")
    if len(parts) != 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id = int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags.SAMPLED)
    return context, (digest or None)


def from_metadata(metadata: object) -> tuple[SpanContext, str | None] | None:
    """The stamp in an object's user metadata (S3 `Metadata`, GCS `metadata`), if any."""
    if not isinstance(metadata, dict):
        return None
    value = metadata.get(environment.STAMP_METADATA_KEY)
    return decode(value) if value is not None else None


def producer_attributes(producer: SpanContext, digest: str | None) -> dict:
    """The attributes a read records for the stamp it found."""
    attributes = {
        attr.PROVENANCE_PRODUCER_TRACE_ID: trace.format_trace_id(producer.trace_id),
        attr.PROVENANCE_PRODUCER_SPAN_ID: trace.format_span_id(producer.span_id),
    }
    if digest:
        attributes[attr.PROVENANCE_PRODUCER_DIGEST] = digest
    return attributes


def link(producer: SpanContext, digest: str | None, uri: str) -> Link:
    """A span link to the producer of the artifact `uri` (named, as a batch links many),
    with the digest its stamp gave."""
    attributes = {attr.PROVENANCE_ARTIFACT_URI: uri}
    if digest:
        attributes[attr.PROVENANCE_PRODUCER_DIGEST] = digest
    return Link(producer, attributes)


def read_file(path: str) -> tuple[SpanContext, str | None] | None:
    """The stamp on a local file, if it has one. listxattr first: it answers a file without
    xattrs (nearly all) in one call, without the exception a missing getxattr raises."""
    try:
        if environment.STAMP_XATTR not in os.listxattr(path):
            return None
        return decode(os.getxattr(path, environment.STAMP_XATTR))
    except (OSError, ValueError, AttributeError):  # AttributeError: no xattrs on this OS
        return None


def stamp_file(path: str, key: StatKey | None, value: str) -> bool:
    """Stamp a local file written by this process, if it still holds the content recorded
    (`key`); False where the filesystem has no user xattrs. Setting an xattr changes ctime
    only, so the file's stat identity (and its digest cache entry) stays valid."""
    if key is None or key[0] in _no_xattrs:
        return False
    try:
        if stat_key(os.stat(path)) != key:
            return False  # rewritten since: this span did not produce what is there now
        os.setxattr(path, environment.STAMP_XATTR, value.encode("ascii"))
    except AttributeError:
        return False
    except OSError as error:
        if error.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EROFS):
            _no_xattrs.add(key[0])  # this filesystem has no user xattrs: don't ask again
        return False
    return True
