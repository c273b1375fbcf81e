"""Generate clew's semantic-convention modules and reference page from the YAML registry.

The YAML files in ``semconv/registry/`` are the only source of clew's vocabulary. This script
reads them and renders the Jinja2 templates in ``semconv/templates/`` into:

* ``semconv/attributes.py``: one constant per attribute and one ``...Values`` enum per enum
  attribute;
* ``semconv/spans.py``: one ``SPAN_...`` constant per span name;
* ``docs/semconv.md``: the human-readable reference.

Usage::

    python -m clew.semconv.generate            # rewrite the generated files
    python -m clew.semconv.generate --check    # exit 1, naming stale files, without writing
    python semconv/generate.py                 # same, from a checkout without installing

The registry uses OpenTelemetry's semantic-conventions YAML format. Entries with ``id:`` are
defined by clew; entries with ``ref:`` that no clew file defines are OpenTelemetry's own
attributes, which get a constant too so that instrumentation never spells an attribute by hand.
Span names live in ``annotations.clew.span_names`` of ``type: span`` groups, a mapping from a key
(which names the constant) to the span name.
"""

from __future__ import annotations

import argparse
import enum
import json
import re
import sys
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

_HERE = Path(__file__).resolve().parent
REGISTRY_DIR = _HERE / "registry"
TEMPLATES_DIR = _HERE / "templates"
# The checkout root: generated files are paths relative to it.
DEFAULT_ROOT = _HERE.parent
REGENERATE_COMMAND = "python -m clew.semconv.generate"
LINE_LENGTH = 100
# Template name -> output path relative to the root.
OUTPUTS: dict[str, str] = {
    "attributes.py.j2": "semconv/attributes.py",
    "spans.py.j2": "semconv/spans.py",
    "semconv.md.j2": "docs/semconv.md",
}
OTEL_REGISTRY_URL = "https://opentelemetry.io/docs/specs/semconv/registry/attributes/"

# Types of OpenTelemetry's YAML format; `template[...]` types are not used by clew.
_SCALAR_TYPES = frozenset({"string", "int", "double", "boolean", "any"})
_ARRAY_TYPES = frozenset(f"{name}[]" for name in ("string", "int", "double", "boolean"))


class ExitStatus(enum.IntEnum):
    """Exit codes of :func:`main`."""

    OK = 0
    STALE = 1
    ERROR = 2


@dataclass(frozen=True)
class Member:
    """One value of an enum attribute."""

    id: str
    value: str | int | float
    brief: str
    stability: str

    @property
    def const_name(self) -> str:
        """Name of the enum member in Python, e.g. ``READ``."""
        return upper_snake(self.id)


@dataclass(frozen=True)
class Attribute:
    """One attribute, either defined by clew or referenced from OpenTelemetry."""

    id: str
    brief: str
    type: str = ""
    stability: str = ""
    note: str = ""
    examples: tuple[Any, ...] = ()
    members: tuple[Member, ...] = ()
    external: bool = False

    @property
    def const_name(self) -> str:
        """Name of the constant in ``attributes.py``, e.g. ``PROVENANCE_IO_OPERATION``."""
        return upper_snake(self.id)

    @property
    def enum_class(self) -> str:
        """Name of the ``Enum`` class of an enum attribute, or ``""``."""
        return camel_case(self.id) + "Values" if self.members else ""

    @property
    def otel_url(self) -> str:
        """OpenTelemetry's registry page for the attribute's namespace."""
        return f"{OTEL_REGISTRY_URL}{self.id.split('.', 1)[0]}/"


@dataclass(frozen=True)
class SpanName:
    """One span name from ``annotations.clew.span_names``."""

    key: str
    name: str
    group_id: str

    @property
    def const_name(self) -> str:
        """Name of the constant in ``spans.py``, e.g. ``SPAN_READ_FILE``."""
        return "SPAN_" + upper_snake(self.key)


@dataclass(frozen=True)
class Group:
    """One group of the registry, in file order."""

    id: str
    type: str
    brief: str
    display_name: str
    stability: str
    span_kind: str
    attributes: tuple[Attribute, ...]
    span_names: tuple[SpanName, ...]


@dataclass(frozen=True)
class Registry:
    """Everything the templates need."""

    files: tuple[str, ...]
    groups: tuple[Group, ...]
    # One entry per constant, in order of first appearance.
    attributes: tuple[Attribute, ...]
    spans: tuple[SpanName, ...]

    @property
    def enums(self) -> tuple[Attribute, ...]:
        """The clew-defined attributes that have an enum class."""
        return tuple(attr for attr in self.attributes if attr.members)


def upper_snake(identifier: str) -> str:
    """``provenance.io.operation`` -> ``PROVENANCE_IO_OPERATION``."""
    return re.sub(r"[^0-9A-Za-z]+", "_", identifier).strip("_").upper()


def camel_case(identifier: str) -> str:
    """``provenance.io.operation`` -> ``ProvenanceIoOperation``."""
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", identifier) if part)


def _require(entry: dict[str, Any], key: str, where: str) -> Any:
    if key not in entry or entry[key] in (None, ""):
        raise ValueError(f"{where}: missing `{key}`")
    return entry[key]


def _parse_type(raw: Any, where: str) -> tuple[str, tuple[Member, ...]]:
    """Return the type name and, for an enum, its members."""
    if isinstance(raw, str):
        if raw not in _SCALAR_TYPES | _ARRAY_TYPES:
            raise ValueError(f"{where}: unknown type {raw!r}")
        return raw, ()
    if not isinstance(raw, dict) or not raw.get("members"):
        raise ValueError(f"{where}: `type` must be a type name or a mapping with `members`")
    members = []
    for entry in raw["members"]:
        member_where = f"{where} member {entry.get('id')!r}"
        members.append(
            Member(
                id=str(_require(entry, "id", member_where)),
                value=_require(entry, "value", member_where),
                brief=str(_require(entry, "brief", member_where)).strip(),
                stability=str(_require(entry, "stability", member_where)),
            )
        )
    kinds = {type(member.value) for member in members}
    if len(kinds) != 1 or not kinds <= {str, int, float}:
        raise ValueError(f"{where}: enum values must all be strings, all ints or all doubles")
    base = {str: "string", int: "int", float: "double"}[kinds.pop()]
    return base, tuple(members)


def _parse_definition(entry: dict[str, Any], where: str) -> Attribute:
    type_name, members = _parse_type(_require(entry, "type", where), where)
    examples = entry.get("examples")
    if examples is None:
        examples = []
    # A lone example may be written without the list around it.
    elif not isinstance(examples, list) or (
        type_name.endswith("[]") and examples and not isinstance(examples[0], list)
    ):
        examples = [examples]
    return Attribute(
        id=str(entry["id"]),
        brief=str(_require(entry, "brief", where)).strip(),
        type=type_name,
        stability=str(_require(entry, "stability", where)),
        note=str(entry.get("note") or "").strip(),
        examples=tuple(examples),
        members=members,
    )


def _load_groups(directory: Path) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    files = sorted(path for path in directory.iterdir() if path.suffix in (".yaml", ".yml"))
    if not files:
        raise ValueError(f"{directory}: no YAML files")
    groups: list[tuple[str, dict[str, Any]]] = []
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
            raise ValueError(f"{path.name}: expected a top-level `groups:` list")
        groups.extend((path.name, group) for group in data["groups"])
    return [path.name for path in files], groups


def load_registry(directory: Path = REGISTRY_DIR) -> Registry:
    """Read and validate every YAML file in ``directory``.

    Args:
        directory: The folder holding the registry YAML files.

    Returns:
        The parsed registry.

    Raises:
        ValueError: If the YAML is not in the expected format, an attribute is defined twice, or
            two generated names collide.
    """
    files, raw_groups = _load_groups(directory)

    # Definitions first, so that a `ref:` may point at an attribute defined further down.
    defined: dict[str, Attribute] = {}
    for filename, group in raw_groups:
        for entry in group.get("attributes") or ():
            if "id" in entry:
                where = f"{filename}: {group.get('id')}: {entry['id']}"
                if entry["id"] in defined:
                    raise ValueError(f"{where}: attribute defined twice")
                defined[entry["id"]] = _parse_definition(entry, where)

    groups: list[Group] = []
    constants: dict[str, Attribute] = {}
    spans: list[SpanName] = []
    for filename, group in raw_groups:
        group_id = str(_require(group, "id", filename))
        where = f"{filename}: {group_id}"
        attributes = []
        for entry in group.get("attributes") or ():
            if ("id" in entry) == ("ref" in entry):
                raise ValueError(f"{where}: each attribute needs exactly one of `id` or `ref`")
            attr_id = entry.get("id") or entry["ref"]
            attr = defined.get(attr_id) or Attribute(
                id=attr_id, brief=f"Defined by OpenTelemetry: {attr_id}.", external=True
            )
            constants.setdefault(attr.id, attr)
            attributes.append(attr)
        names = ((group.get("annotations") or {}).get("clew") or {}).get("span_names") or {}
        group_spans = tuple(SpanName(str(key), str(name), group_id) for key, name in names.items())
        spans.extend(group_spans)
        groups.append(
            Group(
                id=group_id,
                type=str(_require(group, "type", where)),
                brief=str(_require(group, "brief", where)).strip(),
                display_name=str(group.get("display_name") or group_id),
                stability=str(group.get("stability") or ""),
                span_kind=str(group.get("span_kind") or ""),
                attributes=tuple(attributes),
                span_names=group_spans,
            )
        )

    registry = Registry(tuple(files), tuple(groups), tuple(constants.values()), tuple(spans))
    _check_names(registry)
    return registry


def _duplicates(values: Iterable[str]) -> list[str]:
    return sorted(value for value, count in Counter(values).items() if count > 1)


def _check_names(registry: Registry) -> None:
    """Refuse names that would shadow each other or are not valid Python."""
    checks = {
        "attribute constant": [attr.const_name for attr in registry.attributes]
        + [attr.enum_class for attr in registry.enums],
        "span constant": [span.const_name for span in registry.spans],
        "span name": [span.name for span in registry.spans],
    }
    for attr in registry.enums:
        checks[f"{attr.enum_class} member"] = [member.const_name for member in attr.members]
        checks[f"{attr.enum_class} value"] = [str(member.value) for member in attr.members]
    for kind, names in checks.items():
        if clashes := _duplicates(names):
            raise ValueError(f"generated {kind} names collide: {', '.join(clashes)}")
        # Span names and enum values are data, not Python names.
        is_python_name = not kind.endswith(("span name", "value"))
        if is_python_name and (bad := [name for name in names if not name.isidentifier()]):
            raise ValueError(f"not valid Python names for {kind}: {', '.join(bad)}")


# --- Jinja2 filters -----------------------------------------------------------------------------


def _py_literal(value: Any) -> str:
    """A Python literal; JSON's string syntax is valid Python and always uses double quotes."""
    if isinstance(value, bool):
        return repr(value)
    return json.dumps(value)


def _docstring(text: str, indent: int = 0) -> str:
    """A docstring statement wrapped to ``LINE_LENGTH`` columns at ``indent`` spaces."""
    # Escaped so that a brief cannot end the string early or smuggle in an escape sequence.
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    pad = " " * indent
    one_line = f'{pad}"""{text}"""'
    if indent and "\n" not in text and len(one_line) <= LINE_LENGTH and not text.endswith('"'):
        return one_line
    paragraphs = [
        textwrap.fill(
            paragraph,
            width=LINE_LENGTH,
            initial_indent=pad,
            subsequent_indent=pad,
            break_long_words=False,
            break_on_hyphens=False,
        )
        for paragraph in re.split(r"\n\s*\n", text.strip())
    ]
    body = f"\n{pad}\n".join(paragraphs)
    # OpenTelemetry's generated modules put a constant's docstring on its own lines.
    return f'{pad}"""\n{body}\n{pad}"""'


def _md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _md_code(value: Any) -> str:
    """Inline code for a value; arrays are shown as JSON."""
    text = value if isinstance(value, str) else json.dumps(value)
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return _md_cell(f"{fence}{pad}{text}{pad}{fence}")


def _md_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return "#" + re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(
        py=_py_literal, docstring=_docstring, md=_md_cell, md_code=_md_code, anchor=_md_anchor
    )
    return env


def render(registry: Registry) -> dict[str, str]:
    """Render every output.

    Args:
        registry: The parsed registry.

    Returns:
        The text of each generated file, keyed by its path relative to the root.
    """
    env = _environment()
    context = {"registry": registry, "command": REGENERATE_COMMAND}
    return {path: env.get_template(name).render(context) for name, path in OUTPUTS.items()}


def stale_files(outputs: dict[str, str], root: Path) -> list[str]:
    """The outputs whose file under ``root`` is missing or differs."""
    stale = []
    for relative, text in outputs.items():
        path = root / relative
        if not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            stale.append(relative)
    return stale


def write_files(outputs: dict[str, str], root: Path) -> list[str]:
    """Write the stale outputs under ``root`` and return their paths."""
    written = stale_files(outputs, root)
    for relative in written:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        # Bytes, so that the files are identical on every platform.
        path.write_bytes(outputs[relative].encode("utf-8"))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the files, or with ``--check`` report the stale ones.

    Args:
        argv: Command-line arguments without the program name; ``sys.argv[1:]`` if None.

    Returns:
        An :class:`ExitStatus`: ``OK``, ``STALE`` when ``--check`` finds a stale file, or
        ``ERROR`` when the registry is invalid.
    """
    parser = argparse.ArgumentParser(
        prog=REGENERATE_COMMAND, description=__doc__.split("\n\n", 1)[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="report stale files and exit 1, without writing"
    )
    parser.add_argument(
        "--root",
        type=Path,
        help=f"directory the output paths are relative to (default: the checkout, {DEFAULT_ROOT})",
    )
    args = parser.parse_args(argv)
    if args.root is None:
        # An installed (non-editable) clew has no docs/ beside it: refuse to write into
        # site-packages.
        if not (DEFAULT_ROOT / "pyproject.toml").is_file():
            parser.error(f"{DEFAULT_ROOT} is not a clew checkout; pass --root")
        args.root = DEFAULT_ROOT

    try:
        outputs = render(load_registry())
    except (ValueError, yaml.YAMLError, jinja2.TemplateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitStatus.ERROR

    if args.check:
        stale = stale_files(outputs, args.root)
        for relative in stale:
            print(f"{relative} is stale; run `{REGENERATE_COMMAND}`", file=sys.stderr)
        return ExitStatus.STALE if stale else ExitStatus.OK
    for relative in write_files(outputs, args.root):
        print(f"wrote {relative}")
    return ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main())
