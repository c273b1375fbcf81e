"""A Mermaid flowchart (https://mermaid.js.org/syntax/flowchart.html), for Markdown that
renders it (GitHub, GitLab, many wikis): paste it into a ```` ```mermaid ```` block.

Runs are rectangles, artifacts stadiums (rounded), other kinds parallelograms; node ids are
`n0`, `n1`, ... with a `%% n0 = <clew id>` comment each. Edges go input -> run -> output,
labelled with kind and evidence, dotted (`-.->`) when the evidence is weak (`uri+time`).
Every label is quoted and any character outside a plain set is written as a Mermaid
entity code (`#34;`), so quotes, brackets, pipes and `<` in paths cannot break the chart.
"""

from __future__ import annotations

import re

from ..lineage import Graph
from ._common import ARTIFACT, RUN, WEAK_EVIDENCE
from .dot import edge_label, label

_PLAIN = re.compile(r"[A-Za-z0-9 .,:/_+@=~()\-…]")


def escape(text: str) -> str:
    """Label text for inside Mermaid's double quotes: newlines as `<br>`, anything not
    plainly safe as an entity code."""
    return "<br>".join(
        "".join(char if _PLAIN.fullmatch(char) else f"#{ord(char)};" for char in line)
        for line in text.split("\n")
    )


def export(graph: Graph) -> str:
    """The graph as a `flowchart LR`, raw data on the left, the root on the right."""
    ids = {node.id: f"n{index}" for index, node in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    classes: dict[str, list[str]] = {"run": [], "failed": [], "artifact": [], "root": []}
    for node in graph.nodes:
        key = ids[node.id]
        lines.append(f"  %% {key} = {' '.join(node.id.split())}")
        text = escape(label(node))
        if node.kind == RUN:
            lines.append(f'  {key}["{text}"]')
            classes["failed" if node.status == "failed" else "run"].append(key)
        elif node.kind == ARTIFACT:
            lines.append(f'  {key}(["{text}"])')
            classes["root" if node.id == graph.root else "artifact"].append(key)
        else:
            lines.append(f'  {key}[/"{text}"/]')
    for edge in graph.edges:
        if edge.source not in ids or edge.target not in ids:
            continue
        arrow = "-.->" if edge.evidence == WEAK_EVIDENCE else "-->"
        lines.append(
            f'  {ids[edge.source]} {arrow}|"{escape(edge_label(edge))}"| {ids[edge.target]}'
        )
    lines += [
        "  classDef run fill:#e8eefc,stroke:#3355aa",
        "  classDef failed fill:#fdecea,stroke:#c62828",
        "  classDef artifact fill:#f3f3f3,stroke:#777777",
        "  classDef root fill:#f3f3f3,stroke:#222222,stroke-width:3px",
    ]
    lines += [f"  class {','.join(keys)} {name}" for name, keys in classes.items() if keys]
    return "\n".join(lines) + "\n"
