"""Keep secrets out of recorded command lines and URIs.

A provenance record outlives the run and is shared widely, so anything that looks like a
credential is replaced before it is recorded, never after.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "REDACTED"

# Option names whose value is a secret: --password, --api-key, --token, AWS_SECRET_ACCESS_KEY=...
_SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credential"
    r"|auth|session[-_]?key|signature|sig)$",
    re.IGNORECASE,
)
_ASSIGNMENT = re.compile(r"^(-{0,2}[A-Za-z_][\w.-]*)=(.*)$", re.DOTALL)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name.lstrip("-").replace(".", "_")))


def redact_uri(uri: str) -> str:
    """Drop userinfo and the query string of a URL (signatures and tokens live there)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return REDACTED
    if not parts.scheme or not parts.netloc:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, query, parts.fragment))


def _redact_urls(text: str) -> str:
    if "://" not in text:
        return text
    return _URL.sub(lambda match: redact_uri(match.group(0)), text)


def redact_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    """Return a copy of `argv` with secret option values, credentials in URLs and signed
    query strings replaced by REDACTED."""
    redacted: list[str] = []
    secret_next = False
    for raw in argv:
        arg = raw if isinstance(raw, str) else str(raw)
        if secret_next:
            redacted.append(REDACTED)
            secret_next = False
            continue
        assignment = _ASSIGNMENT.match(arg)
        if assignment and _is_secret_name(assignment.group(1)):
            redacted.append(f"{assignment.group(1)}={REDACTED}")
            continue
        if arg.startswith("-") and _is_secret_name(arg):
            redacted.append(arg)
            secret_next = True
            continue
        redacted.append(_redact_urls(arg))
    return redacted


def redact_command(command: str) -> str:
    """Redact a shell command line (os.system) word by word, keeping its spacing simple."""
    return " ".join(redact_argv(command.split()))
