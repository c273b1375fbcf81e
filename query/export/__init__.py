"""Lineage graphs in other tools' formats: `clew export ARTIFACT --format FORMAT`.

Each format is one small module with one pure function `export(graph, **options) -> str`
over a `clew.query.lineage.Graph`; none of them touches the store. The registry below maps
a format's name to that function and imports its module (and the module its third-party
package) only when the format is used, so `clew` starts fast and the capture side never
imports them.

| format | what | needs |
|---|---|---|
| `openlineage` | OpenLineage RunEvents (spec 2-0-2), JSON Lines, one per run | `clew[export]` |
| `prov` | W3C PROV-JSON | `clew[export]` |
| `slsa` | in-toto Statement v1 with a SLSA provenance v1 predicate for the root | nothing |
| `dot` | Graphviz DOT text | nothing |
| `mermaid` | Mermaid flowchart text | nothing |
| `html` | one self-contained HTML page drawing the graph as SVG | nothing |

Example:
    >>> from clew.query.export import export
    >>> text = export(graph, "dot")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..lineage import Graph

__all__ = ["FORMATS", "export"]


class _Lazy:
    """A format's `export` function, imported on first call from `module:function`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, graph: Graph, **options: Any) -> str:
        module, _, function = self.path.partition(":")
        return getattr(importlib.import_module(module), function)(graph, **options)

    def __repr__(self) -> str:
        return f"<export {self.path}>"


FORMATS: dict[str, Callable[..., str]] = {
    name: _Lazy(f"{__name__}.{name}:export")
    for name in ("openlineage", "prov", "slsa", "dot", "mermaid", "html")
}
"""Format name -> `export(graph, **options) -> str`."""


def export(graph: Graph, fmt: str, **options: Any) -> str:
    """`graph` as text in the format `fmt` (a key of FORMATS).

    Args:
        graph: a lineage graph, as `clew.query.lineage.lineage` returns it.
        fmt: the format's name.
        **options: passed to the format (`slsa` takes `repository` and `hash_local_files`;
            `html` takes `title`).

    Raises:
        ValueError: an unknown format.
        ImportError: the format's package is missing (names `pip install 'clew[export]'`).
    """
    try:
        function = FORMATS[fmt]
    except KeyError:
        raise ValueError(
            f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}"
        ) from None
    return function(graph, **options)
