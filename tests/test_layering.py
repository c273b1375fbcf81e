"""The packages' dependencies point one way, and no module imports itself in a circle.

The rule (docs/architecture.md, "Layers"), lowest layer first:

    clew.semconv              the shared contracts: vocabulary, settings, URIs, digests, redaction
    clew.instrumentation      capture, in the observed program
    clew.exporter             the spool and the SDK wiring, in the observed program
    clew.exporter.store       the ClickHouse store: schema, ingest, lineage tables
    clew.query                questions and the CLI

A module may import its own layer and the layers listed as below it in `ALLOWED`, and of
another layer only public modules (no `_`-prefixed module): capture and the exporter are
siblings that meet only in semconv, so the observed program never loads a database client,
and nothing below the query layer knows the questions asked of it.

Imports are read from the source with `ast`, at any depth (inside functions too, which run
later but still make a cycle); imports under `if TYPE_CHECKING:` are for type checkers only
and count for the direction, not for cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"semconv": "clew.semconv", "instrumentation": "clew.instrumentation",
           "exporter": "clew.exporter", "query": "clew.query"}
ALLOWED = {
    "clew.semconv": set(),
    "clew.instrumentation": {"clew.semconv"},
    "clew.exporter": {"clew.semconv"},
    "clew.exporter.store": {"clew.semconv", "clew.exporter"},
    "clew.query": {"clew.semconv", "clew.exporter", "clew.exporter.store"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _layer(module: str) -> str:
    return max((layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")),
               key=len)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported clew module, line, runs) for every import in `module`'s source."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    package = module if _is_package(module) else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def add(name: str, line: int, runs: bool) -> None:
        while name and name not in MODULES:  # `from pkg.mod import function`
            name = name.rpartition(".")[0]
        if name:
            found.append((name, line, runs))

    def visit(node: ast.AST, runs: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                for part in child.body:
                    visit_one(part, False)
                for part in child.orelse:
                    visit_one(part, runs)
                continue
            visit_one(child, runs)

    def visit_one(node: ast.AST, runs: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno, runs)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:
                # `from pkg import mod` imports the module; `from pkg import name`, pkg
                candidate = f"{base}.{alias.name}"
                add(candidate if candidate in MODULES else base, node.lineno, runs)
        else:
            visit(node, runs)

    visit(tree, True)
    return found


IMPORTS = {module: _imports(module) for module in MODULES}


def test_the_rule_covers_every_module():
    """Every module of the four folders is in a layer the rule names (a new folder or
    subpackage is placed in the rule, not left out of it)."""
    assert {_layer(module) for module in MODULES} == set(ALLOWED)
    assert len(MODULES) > 50  # the scan found the source, not an empty folder


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_point_down_the_layers(layer):
    wrong = []
    for module in (m for m in MODULES if _layer(m) == layer):
        for imported, line, _ in IMPORTS[module]:
            target = _layer(imported)
            if target == layer:
                continue
            if target not in ALLOWED[layer]:
                wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {imported}")
            elif any(part.startswith("_") and part != "__init__"
                     for part in imported[len(target):].split(".")):
                wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports the "
                             f"private {imported}")
    assert not wrong, "\n".join(dict.fromkeys(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, or of one that imports
    itself (Tarjan's algorithm, iterative: the graph has hundreds of modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def test_no_import_cycles():
    """No module reaches itself through imports, counting the imports inside functions.
    A package's `__init__` is not an edge of the module that imports from the package's
    submodules: Python runs it first whichever submodule is asked for."""
    graph = {module: {imported for imported, _, runs in IMPORTS[module]
                      if runs and imported != module
                      and not (_is_package(imported) and module.startswith(imported + "."))}
             for module in MODULES}
    assert _cycles(graph) == []


def test_the_checks_find_what_they_look_for():
    """The cycle finder finds a cycle, and the import reader sees an import inside a
    function and a relative one (so the tests above can fail)."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
    recorded = {name for name, _, _ in IMPORTS["clew.query.cli"]}
    assert "clew.query._output" in recorded
    assert "clew.query.replay" in {name for name, _, _ in IMPORTS["clew.query._commands_replay"]}
