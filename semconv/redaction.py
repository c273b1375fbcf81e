"""Keep secrets out of everything clew records or prints: command lines, URLs, error text.

A provenance record outlives the run and is shared widely, so anything that looks like a
credential is replaced by REDACTED before it is recorded or printed, never after. One policy
(docs/security.md, "Redaction") serves every caller:

- A *name* means a secret when its last word is one of `_SECRET_WORDS` (`--secret-key`,
  `db.password`, `X-Amz-Signature`, `apiKey`), when it ends in one of `_SECRET_SUFFIXES`
  (`PGPASSWORD`), or when it ends in a name listed in CLEW_REDACT. CLEW_REDACT_KEEP lists
  names whose values are kept although they match (`--sort-key`).
- Names are looked for as options (`--name=v`, `--name v`, `-name v`), assignments
  (`NAME=v`, `+db.password=v`), headers (`Authorization: Bearer v`), query parameters, and
  keys in JSON, Python or YAML text (`{"password": "v"}`, `password: v`).
- A single-letter option has no name to judge; its letter is a secret when listed in
  `_SHORT_SECRETS` or CLEW_REDACT (`-p`). Because `-p` is a port for ssh, docker and psql,
  a value that is a port or a port mapping (`2222`, `8080:80`) is kept.
- URL userinfo (`https://user:pw@host`) becomes REDACTED in text, and is dropped from a URL
  recorded as an identifier (a git remote), so one repository has one URL.
- Shell strings (`sh -c "..."`, os.system) are split with shlex and each word is redacted as
  an argument; unbalanced quoting falls back to the text rules.
- A key or metric name (`redact_key`) has the secrets the text rules find in it, and the
  well-known credentials' forms below, replaced: a mapping may be keyed by connection URLs.
- A value on its own (a config file's leaf) is a secret when the text rules would change it
  (a URL with userinfo, `Bearer v`, `password=v` inside it) or when it has the form of a
  well-known credential (`_CREDENTIAL`: cloud and API access keys and tokens, JWTs, private
  keys).

Every public function catches its own failures and then returns REDACTED for what it could
not judge: redaction runs at start-up and on every subprocess, and must never stop a program.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from clew.semconv import environment

__all__ = ["REDACTED", "is_secret_name", "is_secret_value", "redact_argv", "redact_command",
           "redact_key", "redact_text", "redact_uri"]

REDACTED = "REDACTED"
_T = TypeVar("_T")

_logger = logging.getLogger(__name__)

# A name whose last word is one of these names a secret: `--secret-key`, `HF_TOKEN`.
_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "pass", "passphrase", "secret", "token", "key", "apikey",
    "auth", "authorization", "credential", "credentials", "bearer", "signature", "sig",
    "cookie",
})
# Long enough not to end an innocent word, so also caught inside one: `PGPASSWORD`, `apikey`.
_SECRET_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token", "apikey",
                    "accesskey", "privatekey", "secretkey", "credential", "credentials")
# Single-letter options whose value is a secret (mysql, sshpass, mongo: `-p PASSWORD`).
_SHORT_SECRETS = frozenset({"p"})
# Programs whose `-p` is a flag or a value that is no secret (`mkdir -p out`, `cp -p`,
# `pytest -p no:cacheprovider`, `scp -p`): their next word is kept. Any other program's `-p`
# value is hidden, since a password is the costlier mistake.
_SHORT_KEPT_BY = frozenset({
    "mkdir", "cp", "install", "tar", "cpio", "rsync", "patch", "ls", "diff", "git", "scp",
    "sftp", "ssh", "unzip", "xargs", "read", "ps", "pgrep", "pkill", "nc", "pytest",
    "py.test",
})
_PYTHONS = re.compile(r"^python[\d.]*$")
_OPERATOR = re.compile(r"^[;&|()]+$")
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})
# shlex builds each word a character at a time (quadratic in a word's length): longer shell
# lines get the text rules, which find the same options and pairs without the words.
_SHLEX_LIMIT = 16384

_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
# `--password=v`, `PASSWORD=v`, `+db.password=v`, `Authorization: Bearer v` as one argument.
_WHOLE_PAIR = re.compile(r"^([-+~]{0,2}[A-Za-z_][\w.\-]*)(=|:\s*)(.+)$", re.DOTALL)
# A quoted value, or one whose quote is never closed (a broken shell line): the rest of it.
_QUOTED = r""""(?:[^"\\]|\\.)*"|'[^']*'|["'].*"""
_AUTH_SCHEME = r"(?:(?:Bearer|Basic|Token|Digest)\s+)?"
_UNQUOTED_VALUE = r"""[^\s,;&"'}\]\)]+"""
# A key and its value inside text: JSON, Python dicts, YAML, query strings, DSNs. `:` before
# `//` is a URL's scheme, not a key.
_PAIR = re.compile(
    rf"""(?<![\w.\-])(["']?)(-{{0,2}}[A-Za-z_][\w.\-]*)\1(\s*=\s*|\s*:(?!//)\s*)"""
    rf"""({_QUOTED}|{_AUTH_SCHEME}{_UNQUOTED_VALUE})""",
    re.IGNORECASE,
)
# An option and its value inside text: a shell line, or an argv list in an error message.
_OPTION = re.compile(
    rf"""(?<![\w-])(["']?)(--?[A-Za-z][\w.\-]*)\1(\s*,\s*|\s+)({_QUOTED}|[^\s,"'\]\)]+)"""
)
_USERINFO = re.compile(r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]*://)([^\s/?#]*)@")
_BARE_AUTH = re.compile(r"\b(Bearer|Basic)\s+(?!REDACTED)[^\s\"',;]+")
# Values that are credentials by their form alone: AWS access key ids, GitHub, GitLab, Hugging
# Face, OpenAI-style, Slack and Google API tokens, JSON Web Tokens, PEM private keys.
_CREDENTIAL = re.compile(
    r"\b(?:A(?:KIA|SIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}"
    r"|glpat-[\w-]{20,}|hf_[A-Za-z0-9]{30,}|sk-[\w-]{20,}|xox[abprs]-[\w-]{10,}"
    r"|AIza[\w-]{35}|eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]*)"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
_LONG_OPTION = re.compile(r"^[a-z][a-z\-]*$")
_PORT = re.compile(r"^(?:[\w.\-\[\]:]*:)?\d{1,5}(?:/(?:tcp|udp))?$")


@dataclass(frozen=True)
class _Policy:
    extra: tuple[str, ...]  # normalised names from CLEW_REDACT
    keep: frozenset[str]  # normalised names from CLEW_REDACT_KEEP
    short: frozenset[str]  # single letters whose value is a secret
    hints: re.Pattern[str]  # lowercase text that every secret this policy finds contains


def _never_raises(
    fallback: Callable[[], _T],
) -> Callable[[Callable[[Any], _T]], Callable[[Any], _T]]:
    """Run a public function at the boundary: any failure inside gives `fallback()`, never an
    exception, because redaction runs in every program's start-up and on every subprocess."""

    def guard(function: Callable[[Any], _T]) -> Callable[[Any], _T]:
        @functools.wraps(function)
        def guarded(value: Any) -> _T:
            try:
                return function(value)
            except Exception as error:  # noqa: BLE001 - never harm the host
                _logger.debug("clew: redaction failed: %s", type(error).__name__)
                return fallback()

        return guarded

    return guard


def _normalised(name: str) -> str:
    """`--Secret-Key`, `SECRET_KEY`, `secretKey` -> `secret_key`."""
    spaced = _CAMEL.sub(r"\1_\2", name.lstrip("-+~"))
    return "_".join(word for word in _WORD_SPLIT.split(spaced.lower()) if word)


def _short_letter(entry: str) -> str | None:
    """`-p` -> `p`: an entry naming a single-letter option."""
    return entry[1] if len(entry) == 2 and entry[0] == "-" and entry[1].isalpha() else None


@functools.lru_cache(maxsize=1)
def _policy() -> _Policy:
    extra = environment.names(environment.CLEW_REDACT)
    keep = environment.names(environment.CLEW_REDACT_KEEP)
    kept_letters = {letter for letter in map(_short_letter, keep) if letter}
    short = (_SHORT_SECRETS | {letter for letter in map(_short_letter, extra) if letter})
    extra_names = tuple(filter(None, (_normalised(e) for e in extra if not _short_letter(e))))
    letters = short - kept_letters
    # The cheap gate in front of the rules below: every text that holds a secret they find
    # holds one of these ("pass" in "passwd", "key" in "apikey", "@" in userinfo, "-p"
    # before a short option's value). Literals on lowercased text: no IGNORECASE, which
    # makes the search several times slower.
    hints = (
        "pass", "pwd", "secret", "token", "key", "auth", "credential", "bearer", "basic",
        "sig", "cookie", "@", *(n.rpartition("_")[2] for n in extra_names),
        *(f"-{letter.lower()}" for letter in letters),
    )
    return _Policy(
        extra=extra_names,
        keep=frozenset(n for n in map(_normalised, keep) if n),
        short=frozenset(letters),
        hints=re.compile("|".join(map(re.escape, hints))),
    )


def _may_hold_secret(text: str) -> bool:
    return _policy().hints.search(text.lower()) is not None


@functools.lru_cache(maxsize=4096)
@_never_raises(lambda: True)  # when in doubt, it is a secret
def is_secret_name(name: str) -> bool:
    """Whether an option, variable, header, parameter or key of this name holds a secret."""
    normalised = _normalised(name)
    if not normalised:
        return False
    policy = _policy()
    if normalised in policy.keep:
        return False
    joined = normalised.replace("_", "")
    return (
        normalised.rpartition("_")[2] in _SECRET_WORDS
        or joined.endswith(_SECRET_SUFFIXES)
        or any(normalised == n or normalised.endswith("_" + n) for n in policy.extra)
    )


def _secret_option(option: str, value: str, program: str = "") -> bool:
    """Whether `value` given to `option` (`--password`, `-p`) is a secret. A value that is
    itself a long option means `option` was a flag (`--no-auth --verbose`)."""
    if len(option) == 2 and option[0] == "-":
        return (option[1] in _policy().short and program not in _SHORT_KEPT_BY
                and not (_PORT.match(value) or value[:1] == "-"))
    return value[:2] != "--" and is_secret_name(option)


def _attached_secret(argument: str, program: str) -> bool:
    """`-pSECRET` (mysql's spelling); not `-p8080` (a port) nor `-project` (a single-dash
    long option, all lowercase)."""
    return (
        len(argument) > 2 and argument[0] == "-" and argument[1] in _policy().short
        and program not in _SHORT_KEPT_BY
        and not _PORT.match(argument[2:]) and not _LONG_OPTION.match(argument[2:])
    )


def _hidden(value: str) -> str:
    """REDACTED in place of `value`, in the same quotes."""
    quote = value[:1]
    return f"{quote}{REDACTED}{quote}" if quote in ("'", '"') and len(value) > 1 else REDACTED


def _scan(text: str, pattern: re.Pattern[str], secret: Callable[[str, str], bool]) -> str:
    """Replace the value (last group) of every match whose name (second group) `secret`
    judges a secret. A match that is not one is rescanned from its value on, so a secret
    nested in it (`url=https://h/?sig=...`) is still found."""
    pieces: list[str] = []
    position = 0
    match = pattern.search(text)
    while match is not None:
        value_start = match.start(4)
        if secret(match.group(2), match.group(4)):
            pieces.append(text[position:value_start])
            pieces.append(_hidden(match.group(4)))
            position = match.end(4)
            match = pattern.search(text, position)
        else:
            match = pattern.search(text, max(value_start, match.start() + 1))
    pieces.append(text[position:])
    return "".join(pieces)


def _redact_text(text: str) -> str:
    if not _may_hold_secret(text):
        return text
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _scan(text, _PAIR, lambda name, _value: is_secret_name(name))
    text = _scan(text, _OPTION, _secret_option)
    return _BARE_AUTH.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


@_never_raises(lambda: REDACTED)
def redact_text(text: str) -> str:
    """Free text (an error message, a JSON argument, a line of code) with every secret value
    it shows replaced by REDACTED."""
    return _redact_text(text)


@functools.lru_cache(maxsize=4096)  # the names of a run's metrics repeat at every step
@_never_raises(lambda: REDACTED)
def redact_key(key: str) -> str:
    """A key or a metric's name (a config file's dotted key, a name a program logs a value
    under) with any secret it holds replaced by REDACTED: a mapping keyed by connection URLs
    or by tokens names its entries by their secrets."""
    return _CREDENTIAL.sub(REDACTED, _redact_text(key))


@_never_raises(lambda: True)  # when in doubt, it is a secret
def is_secret_value(text: str) -> bool:
    """Whether a value seen without a name to judge it by (a config file's leaf) is or holds
    a secret: one the text rules find, or a well-known credential's form."""
    return _redact_text(text) != text or _CREDENTIAL.search(text) is not None


def _redact_argument(argument: str, program: str) -> str:
    if _attached_secret(argument, program):
        return argument[:2] + REDACTED
    whole = _WHOLE_PAIR.match(argument)
    if whole and is_secret_name(whole.group(1)):
        return f"{whole.group(1)}{whole.group(2)}{REDACTED}"
    return _redact_text(argument)


def _is_shell(program: str) -> bool:
    return os.path.basename(program) in _SHELLS


def _redact_argv(argv: list[str]) -> list[str]:
    redacted: list[str] = []
    option: str | None = None  # the previous argument, when it may take a secret value
    command_next = False  # the previous argument was a shell's -c
    shell = bool(argv) and _is_shell(argv[0])
    program = ""  # whose options these are: a `-p` value is judged by its program
    program_next = True  # the first word, or the first after `;`, `&&`, `|` in a shell line
    for index, argument in enumerate(argv):
        if program_next:
            program = os.path.basename(argument)
            program_next = "=" in argument  # `VAR=v cmd`: the command comes next
        elif _OPERATOR.match(argument):
            program_next = True
        elif index and argv[index - 1] == "-m" and _PYTHONS.match(program):
            program = argument  # `python -m pytest`: pytest's options
        if option is not None and _secret_option(option, argument, program):
            redacted.append(REDACTED)
            option = None
            continue
        option = None
        if command_next:
            redacted.append(_redact_command(argument))
            command_next = False
            continue
        if shell and index > 0 and argument[:1] == "-" and argument[1:2] != "-" and (
            "c" in argument[1:]
        ):
            command_next = True
        elif argument[:1] == "-" and "=" not in argument:
            option = argument
        redacted.append(_redact_argument(argument, program))
    return redacted


@_never_raises(lambda: [REDACTED])
def redact_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    """A copy of `argv` with every secret replaced by REDACTED: option values, assignments,
    headers, URL userinfo and signatures, keys in JSON, and the words of a shell's `-c`."""
    return _redact_argv([a if isinstance(a, str) else os.fsdecode(a) for a in argv])


def _split_shell(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _redact_command(command: str) -> str:
    if len(command) > _SHLEX_LIMIT:
        return _redact_text(command)
    try:
        words = _split_shell(command)
    except ValueError:  # unbalanced quotes: shlex cannot tell words apart
        return _redact_text(command)
    redacted = _redact_argv(words)
    changed = [(word, new) for word, new in zip(words, redacted) if word != new]
    if all(word in command for word, _ in changed):
        # Keep the line as written (its quoting, `&&`, redirections), secrets replaced.
        # Each word was judged with its program and neighbours; a text pass over the line
        # would judge `-p` without its program and take `;` into a value.
        for word, new in changed:
            command = command.replace(word, new)
        return command
    return shlex.join(redacted)  # a secret was quoted or escaped: show the words instead


@_never_raises(lambda: REDACTED)
def redact_command(command: str) -> str:
    """A shell command line (os.system, `sh -c`) with each of its words redacted."""
    return _redact_command(command)


@_never_raises(lambda: REDACTED)
def redact_uri(uri: str) -> str:
    """A URL recorded as an identifier (a git remote): its userinfo dropped, secret query
    parameters redacted, the rest as it was. Never parses the port, which may be anything."""
    start = uri.find("://")
    if start >= 0:
        start += 3
        end = next((i for i, c in enumerate(uri[start:], start) if c in "/?#"), len(uri))
        uri = uri[:start] + uri[start:end].rpartition("@")[2] + uri[end:]
    return _redact_text(uri)
