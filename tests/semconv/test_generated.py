"""Checks that the generated semconv files match the YAML registry and follow its rules.

The YAML in ``semconv/registry/`` is the only source of clew's vocabulary:
these tests fail when a generated file is stale, when a ``ref:`` names an attribute OpenTelemetry
does not define, when clew defines an attribute outside ``provenance.``, or when two generated
names collide.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from collections import Counter
from itertools import pairwise
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SEMCONV_DIR = ROOT / "semconv"
REGENERATE = "python -m clew.semconv.generate"


def _load_by_path(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    # Registered before running, because dataclasses look their module up in sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _load_generator() -> ModuleType:
    # Installed (editable) projects import it by name; a bare checkout falls back to the file.
    try:
        from clew.semconv import generate
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("clew"):
            raise
        return _load_by_path("_clew_semconv_generate", SEMCONV_DIR / "generate.py")
    return generate


generate = _load_generator()


@pytest.fixture(scope="module")
def registry():
    """The registry as the generator reads it."""
    return generate.load_registry()


def _raw_attribute_entries() -> list[dict]:
    """Every attribute entry of every group, read straight from the YAML."""
    entries = []
    for path in sorted(generate.REGISTRY_DIR.glob("*.y*ml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            entries.extend(group.get("attributes") or ())
    return entries


# --- (a) the committed files are what the registry generates ---------------------------------


def test_generated_files_are_up_to_date(tmp_path: Path) -> None:
    """(a) Regenerating gives byte-identical files to the committed ones."""
    assert generate.main(["--root", str(tmp_path)]) == 0

    stale = [
        relative
        for relative in generate.OUTPUTS.values()
        if not (ROOT / relative).is_file()
        or (ROOT / relative).read_bytes() != (tmp_path / relative).read_bytes()
    ]
    message = f"generated files are stale: {', '.join(stale)}; run `{REGENERATE}` and commit them"
    assert not stale, message


def test_check_reports_stale_file_without_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--check`` names the stale file, exits 1 and leaves it alone."""
    assert generate.main(["--root", str(tmp_path)]) == 0
    capsys.readouterr()
    assert generate.main(["--check", "--root", str(tmp_path)]) == 0

    stale = tmp_path / "semconv" / "spans.py"
    stale.write_text("# edited by hand\n", encoding="utf-8")
    assert generate.main(["--check", "--root", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert "semconv/spans.py is stale" in err
    assert REGENERATE in err
    assert "attributes.py" not in err
    assert stale.read_text(encoding="utf-8") == "# edited by hand\n"


def test_generation_is_deterministic(registry) -> None:
    """Two renders of the registry are identical."""
    assert generate.render(registry) == generate.render(generate.load_registry())


# --- (b) every ref: is one of OpenTelemetry's attributes ---------------------------------------


def _otel_attribute_names() -> dict[str, bool]:
    """Map each attribute name in opentelemetry-semantic-conventions to "has a live definition".

    Modules are parsed, not imported: there are hundreds of them and only the values matter.
    """
    spec = importlib.util.find_spec("opentelemetry.semconv")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("opentelemetry-semantic-conventions is missing; install the `test` extra")
    package = Path(next(iter(spec.submodule_search_locations)))
    modules = sorted(package.glob("attributes/*.py")) + sorted(
        package.glob("_incubating/attributes/*.py")
    )
    assert modules, f"no attribute modules under {package}"

    names: dict[str, bool] = {}
    for path in modules:
        body = ast.parse(path.read_text(encoding="utf-8")).body
        for statement, following in pairwise([*body, None]):
            value = statement.value if isinstance(statement, (ast.Assign, ast.AnnAssign)) else None
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                continue
            doc = ""
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                doc = str(following.value.value).strip()
            # "Deprecated: Replaced by x" marks a dead attribute; the incubating copies of stable
            # attributes say "Deprecated in favor of stable ...", which is not.
            live = not doc.startswith("Deprecated:")
            names[value.value] = names.get(value.value, False) or live
    return names


def test_refs_exist_in_opentelemetry(registry) -> None:
    """(b) Every ``ref:`` is a live attribute of opentelemetry-semantic-conventions."""
    otel = _otel_attribute_names()
    refs = sorted(
        {entry["ref"] for entry in _raw_attribute_entries() if "ref" in entry}
        - {entry["id"] for entry in _raw_attribute_entries() if "id" in entry}
    )
    assert refs, "expected the registry to reuse OpenTelemetry attributes"
    assert refs == sorted(attr.id for attr in registry.attributes if attr.external)

    unknown = [ref for ref in refs if ref not in otel]
    assert not unknown, f"refs not defined by OpenTelemetry: {', '.join(unknown)}"
    deprecated = [ref for ref in refs if not otel[ref]]
    assert not deprecated, f"refs deprecated by OpenTelemetry: {', '.join(deprecated)}"


# --- (c) clew's own attributes are namespaced ---------------------------------------------------


def test_clew_attributes_start_with_provenance() -> None:
    """(c) Every attribute clew defines is in the ``provenance.`` namespace."""
    ids = [str(entry["id"]) for entry in _raw_attribute_entries() if "id" in entry]
    assert ids
    outside = [attr_id for attr_id in ids if not attr_id.startswith("provenance.")]
    assert not outside, f"clew attributes must start with `provenance.`: {', '.join(outside)}"


# --- (d) no generated name collides -------------------------------------------------------------


def _module_names(path: Path) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Top-level constant names, their string values, and each class's member names."""
    names: list[str] = []
    values: list[str] = []
    classes: dict[str, list[str]] = {}
    for statement in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names.append(statement.target.id)
            assert isinstance(statement.value, ast.Constant)
            values.append(statement.value.value)
        elif isinstance(statement, ast.ClassDef):
            names.append(statement.name)
            classes[statement.name] = [
                target.id
                for member in statement.body
                if isinstance(member, ast.Assign)
                for target in member.targets
                if isinstance(target, ast.Name)
            ]
    return names, values, classes


def _repeated(items: list[str]) -> list[str]:
    return sorted(item for item, count in Counter(items).items() if count > 1)


def test_no_generated_names_collide() -> None:
    """(d) No generated constant, class, member or value appears twice."""
    attr_names, attr_values, enums = _module_names(SEMCONV_DIR / "attributes.py")
    span_names, span_values, _ = _module_names(SEMCONV_DIR / "spans.py")

    assert attr_names and span_names
    assert not _repeated(attr_names), "attributes.py defines a name twice"
    assert not _repeated(attr_values), "two constants in attributes.py name the same attribute"
    assert not _repeated(span_names), "spans.py defines a name twice"
    assert not _repeated(span_values), "two constants in spans.py name the same span"
    assert not set(attr_names) & set(span_names), "a name is both an attribute and a span constant"
    for class_name, members in enums.items():
        assert members, f"{class_name} has no members"
        assert not _repeated(members), f"{class_name} defines a member twice"


def test_generator_refuses_colliding_ids(tmp_path: Path) -> None:
    """Ids that map to the same constant are an error, not a silent overwrite."""
    (tmp_path / "clash.yaml").write_text(
        textwrap.dedent("""\
            groups:
              - id: registry.provenance.clash
                type: attribute_group
                brief: Two ids that both become PROVENANCE_A_B.
                attributes:
                  - {id: provenance.a.b, type: string, brief: One., stability: development}
                  - {id: provenance.a_b, type: string, brief: Two., stability: development}
            """),
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="collide: PROVENANCE_A_B"):
        generate.load_registry(tmp_path)


# --- the names other packages rely on -----------------------------------------------------------


def test_generated_names_follow_the_naming_rule(registry) -> None:
    """The names other packages import exist and carry the registry's values."""
    attributes = _load_by_path("_clew_semconv_attributes", SEMCONV_DIR / "attributes.py")
    spans = _load_by_path("_clew_semconv_spans", SEMCONV_DIR / "spans.py")

    assert attributes.PROVENANCE_IO_OPERATION == "provenance.io.operation"
    assert attributes.FILE_PATH == "file.path"
    assert attributes.ProvenanceIoOperationValues.READ.value == "read"
    assert attributes.ProvenanceArtifactIdentityValues.NONE.value == "none"
    assert spans.SPAN_READ_FILE == "read file"
    assert spans.SPAN_LIST_DIRECTORY == "list directory"
    assert (spans.SPAN_RUN, spans.SPAN_PROCESS, spans.SPAN_EXEC) == ("run", "process", "exec")
    for attr in registry.attributes:
        assert getattr(attributes, attr.const_name) == attr.id
    for span in registry.spans:
        assert getattr(spans, span.const_name) == span.name


def test_generated_modules_import_light() -> None:
    """Importing the generated modules pulls in neither YAML nor Jinja2."""
    # Instrumentation imports these while the host program starts; the generator's YAML and
    # Jinja2 dependencies must not come along.
    code = textwrap.dedent(f"""\
        import importlib.util, sys
        for name in ("__init__", "attributes", "spans"):
            path = {str(SEMCONV_DIR)!r} + "/" + name + ".py"
            spec = importlib.util.spec_from_file_location("_probe_" + name, path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        heavy = sorted({{"yaml", "jinja2"}} & set(sys.modules))
        assert not heavy, heavy
        """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
