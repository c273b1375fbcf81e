"""Config files a run reads: which reads are, and their keys and values as a `config` span
records them.

A read is a config when its file's name ends in a config suffix (JSON, YAML, TOML, INI: a
`str.endswith` on clew's worker, nothing for other reads), it is under `MAX_BYTES`, and its
document is a non-empty mapping of at most `MAX_KEYS` leaves: a list, or a mapping with more
leaves, is data, not a config. At most `MAX_FILES` file versions are parsed per process, and
`MAX_PER_DIRECTORY` files per directory (each with all its versions), so a loader reading
many small JSON files pays for few.
Each leaf's value is recorded as JSON; a value the redaction policy judges secret, by any
part of its key (a part under a plural secret name too: `secrets.db`) or by itself, is
recorded as `"REDACTED"`; a secret inside a key (a mapping
keyed by connection URLs) is replaced in the key.
"""

from __future__ import annotations

import json
from typing import Any

from clew.semconv.redaction import REDACTED, is_secret_name, is_secret_value, redact_key

from . import _structured_files

SUFFIXES = _structured_files.SUFFIXES
MAX_BYTES = 64 << 10
MAX_KEYS = 2000
MAX_FILES = 1024
MAX_PER_DIRECTORY = 32
_REDACTED_JSON = json.dumps(REDACTED)


def entries(path: str, data: bytes) -> tuple[list[str], list[str]] | None:
    """(keys, JSON values) of the config file `path` holding `data`; None when it is not one."""
    document = _structured_files.parse(data, path)
    if not isinstance(document, dict) or not document:
        return None
    keys: list[str] = []
    values: list[str] = []
    for key, value in _structured_files.leaves(document):
        if len(keys) == MAX_KEYS:
            return None
        keys.append(redact_key(key))
        values.append(_encoded(key, value))
    return keys, values


def _encoded(key: str, value: Any) -> str:
    if _secret_key(key):
        return _REDACTED_JSON
    encoded = json.dumps(value, ensure_ascii=False, default=str)  # a TOML date: as text
    return _REDACTED_JSON if is_secret_value(value if isinstance(value, str) else encoded) else encoded


def _secret_key(key: str) -> bool:
    """Whether a dotted key names a secret by one of its parts: a part the redaction policy
    names secret, or a mapping or list under the plural of one (`secrets.db`,
    `api_keys.0`: the policy judges single names, and `passwords` is none). A leaf's own
    plural is not judged so: `max_tokens` is a count."""
    parts = key.split(".")
    last = len(parts) - 1
    return any(
        is_secret_name(part) or (index < last and part.endswith("s") and is_secret_name(part[:-1]))
        for index, part in enumerate(parts) if not part.isdigit()
    )
