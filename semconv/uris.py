"""How clew names an artifact: the URIs every layer writes, stores and looks up.

A local file is `file://<host>/<absolute path>`, percent-encoded as the bytes of its name on
disk; an object is `s3://bucket/key`, `gs://bucket/object` or `<protocol>://bucket/name` (other
fsspec stores). Capture writes these URIs into `provenance.artifact.uri`; the store keys its
tables by them; a lineage question turns the path a user names into the same URI. One module
makes them so that the three agree byte for byte.
"""

from __future__ import annotations

import re
import socket
import sys
from urllib.parse import quote, unquote

# The object stores clew records by name (fsspec's other protocols are their own scheme).
S3, GCS = "s3", "gcs"

_HOST = socket.gethostname()
_URI_SAFE = "/:@!$&()*+,;=~-._"
# Characters quote() would encode with _URI_SAFE: most names have none, and a search is a
# fraction of quote()'s cost.
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9/:@!$&()*+,;=~\-._]").search

# A name that is not valid in the filesystem's encoding reaches Python with its undecodable
# bytes as lone surrogates (os.fsdecode): quoted as os.fsencode would encode them, the URI
# holds the name's real bytes, percent-encoded, where strict UTF-8 would raise.
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def quote_uri_path(text: str) -> str:
    """`text` percent-encoded for a URI's path, as the bytes os.fsencode gives; never raises."""
    try:
        return quote(text, safe=_URI_SAFE, encoding=_FS_ENCODING, errors=_FS_ERRORS)
    except UnicodeEncodeError:
        # A lone surrogate no OS name decodes to (a str made in the program, an object key
        # in memory): its UTF-16 code unit, UTF-8 encoded, so the URI still names it.
        return quote(text, safe=_URI_SAFE, errors="surrogatepass")


def file_uri(path: str) -> str:
    """`file://<host>/<absolute path>`, percent-encoded where a URI needs it: the path's
    bytes on disk, so `path_of_file_uri` gives back the very path."""
    return f"file://{_HOST}{quote_uri_path(path)}"


def path_of_file_uri(uri: str) -> str:
    """The local path a `file_uri` names (its host is not checked), as os.fsdecode gives it:
    a name that is not valid UTF-8 comes back with its real bytes."""
    path = "/" + uri.split("/", 3)[3] if uri.count("/") >= 3 else "/"
    return unquote(path, encoding=_FS_ENCODING, errors=_FS_ERRORS)


def file_uri_prefix(directory: str) -> str:
    """`file_uri(directory)` ending in one "/": a name in the directory goes after it."""
    return file_uri(directory).rstrip("/") + "/"


def uri_of_name(prefix: str, name: str) -> str:
    """The URI of `name` (a path relative to the directory of `prefix`, a `file_uri_prefix`)."""
    return prefix + (quote_uri_path(name) if _NEEDS_QUOTING(name) else name)


def object_uri(store: str, bucket: str, name: str) -> str:
    """`s3://bucket/key`, `gs://bucket/object`, or `<protocol>://bucket/name` (fsspec)."""
    scheme = "gs" if store == GCS else store
    path = f"{bucket}/{name}" if name else bucket
    # Most keys need no escaping; checking costs a third of quote() on every GET.
    return f"{scheme}://{path if not _NEEDS_QUOTING(path) else quote_uri_path(path)}"
