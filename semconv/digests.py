"""How clew names content: `blake3:<64 hex digits>`.

Capture records the blake3 digest of what a program read or wrote under this name
(`provenance.artifact.digest`), the store matches reads to writes by it, and a user may name an
artifact by it (or by an object store's `sha256:<hex>` checksum). The prefix says which
function made the digest, so another can be added without two meaning the same text.
"""

from __future__ import annotations

BLAKE3_PREFIX = "blake3:"


def blake3_id(hex_digest: str) -> str:
    """The content id of a blake3 digest given in hex (`hasher.hexdigest()`)."""
    return BLAKE3_PREFIX + hex_digest
