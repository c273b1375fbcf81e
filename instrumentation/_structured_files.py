"""The small structured files clew reads as data: JSON, YAML, TOML and INI documents, and their
leaves under dotted paths (`optimizer.lr`, list items by index: `layers.0`).

Metric files a run writes and config files it reads are parsed here, on clew's worker thread.
YAML is parsed only when the program has imported PyYAML itself (as a program reading or
writing YAML with it, or with OmegaConf or Hydra, has): clew never imports a library into the
program.
A document that does not parse is None: the file is the program's business, not an error of
clew's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

# The other parsers (tomllib, configparser, PyYAML) are imported when a file of their kind is
# first parsed: every observed process loads this module, few read a TOML or INI file.

JSON_SUFFIXES = (".json",)
YAML_SUFFIXES = (".yaml", ".yml")
TOML_SUFFIXES = (".toml",)
INI_SUFFIXES = (".ini", ".cfg")
SUFFIXES = JSON_SUFFIXES + YAML_SUFFIXES + TOML_SUFFIXES + INI_SUFFIXES
_MAX_DEPTH = 64  # deeper nesting is left as one leaf: no real config or metrics file has it


def parse(data: bytes, path: str) -> Any | None:
    """The document in `data`, by the suffix of `path` (one of SUFFIXES); None when it does
    not parse or is of no known kind."""
    try:
        text = data.decode("utf-8-sig")
        if path.endswith(JSON_SUFFIXES):
            return json.loads(text)
        if path.endswith(YAML_SUFFIXES):
            return _yaml(text)
        if path.endswith(TOML_SUFFIXES):
            import tomllib

            return tomllib.loads(text)
        if path.endswith(INI_SUFFIXES):
            return _ini(text)
    except Exception:  # noqa: BLE001 - whatever a malformed file makes its parser raise
        return None
    return None


def _yaml(text: str) -> Any | None:
    yaml = sys.modules.get("yaml")
    if yaml is None:
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader


def _ini(text: str) -> dict[str, dict[str, str]]:
    """An INI file as {section: {option: value}}; the DEFAULT section's options once, under
    DEFAULT, not repeated in every section that inherits them."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign] # keep the keys' case
    parser.read_string(text)
    defaults = dict(parser.defaults())
    document: dict[str, dict[str, str]] = {"DEFAULT": defaults} if defaults else {}
    for section in parser.sections():
        document[section] = {
            option: value for option, value in parser.items(section, raw=True)
            if defaults.get(option) != value
        }
    return document


def leaves(value: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every leaf of a document, in document order; an empty
    mapping or list is a leaf."""
    if isinstance(value, dict) and value and depth < _MAX_DEPTH:
        for key, item in value.items():
            yield from leaves(item, f"{prefix}.{key}" if prefix else str(key), depth + 1)
    elif isinstance(value, list) and value and depth < _MAX_DEPTH:
        for index, item in enumerate(value):
            yield from leaves(item, f"{prefix}.{index}" if prefix else str(index), depth + 1)
    else:
        yield prefix, value
