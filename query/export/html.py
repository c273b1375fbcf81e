"""One self-contained HTML page that draws the graph as SVG: open it in any browser, offline.

The page (`_page.html`, package data) holds its own CSS and a small script, no library and
no network request; the graph is embedded as JSON. The script lays the graph out in columns
by distance from the root (raw data on the left, the exported artifact on the right), runs
as boxes and artifacts as ellipses, edges labelled with kind and evidence and dashed when
weak (`uri+time`), with a legend; hovering over a node highlights its edges and shows its
details (URI, digest, command, times, git commit, host), clicking keeps them shown.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from importlib import resources

from ..lineage import Graph
from ._common import clew_version, display_name
from .dot import label

_TEMPLATE = "_page.html"


def _script_json(value: object) -> str:
    """JSON that cannot end its <script> element or open a comment inside it."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def export(graph: Graph, *, title: str = "") -> str:
    """The page, as text.

    Args:
        graph: a lineage graph.
        title: the page's heading; default `lineage of <the root's name>`.
    """
    nodes = {node.id: node for node in graph.nodes}
    root = nodes.get(graph.root)
    heading = title or f"lineage of {display_name(root, width=80) if root else graph.root}"
    data = {
        "schema": graph.schema,
        "root": graph.root,
        "nodes": [{**node.to_json(), "label": label(node),
                   "name": display_name(node)} for node in graph.nodes],
        "edges": [dataclasses.asdict(edge) for edge in graph.edges],
    }
    values = {"TITLE": html.escape(heading), "VERSION": html.escape(clew_version()),
              "DATA": _script_json(data)}
    page = resources.files(__package__).joinpath(_TEMPLATE).read_text(encoding="utf-8")
    # One pass, so a placeholder inside the graph's own text is never replaced.
    return re.sub(r"\{\{(TITLE|VERSION|DATA)\}\}", lambda match: values[match[1]], page)
