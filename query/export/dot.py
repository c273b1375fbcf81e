"""Graphviz DOT: `clew export model.pt --format dot | dot -Tsvg > lineage.svg`.

Runs are boxes (red outline when failed), artifacts ellipses (the root bold), other kinds
plain notes; edges run in data-flow order (input -> run -> output), labelled with their
kind and evidence, dashed when the evidence is weak (`uri+time`). Every node has a tooltip
with its full URI, digest, command or git commit.
"""

from __future__ import annotations

from ..lineage import Edge, Graph, Node, RunNode
from ._common import ARTIFACT, RUN, WEAK_EVIDENCE, display_name, short_digest


def quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as `\\n`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'


def label(node: Node) -> str:
    """A node's label lines (shared with the Mermaid and HTML exports)."""
    if node.kind == RUN:
        status = f" ({node.status})" if node.status else ""
        lines = [display_name(node), f"run {node.id[:12]}{status}"]
        if node.git_commit:
            lines.append(f"git {node.git_commit[:10]}{'+dirty' if node.git_dirty else ''}")
        return "\n".join(lines)
    if node.kind != ARTIFACT:
        return f"{display_name(node)}\n{node.kind} {node.id[:12]}"
    lines = [display_name(node)]
    if node.digest:
        lines.append(short_digest(node.digest))
    elif node.version or node.etag:
        lines.append(f"version {node.version}" if node.version else f"etag {node.etag}")
    return "\n".join(lines)


def tooltip(node: Node) -> str:
    if isinstance(node, RunNode):
        fields = [
            ("id", node.id), ("command", " ".join(node.command)), ("start", node.start),
            ("end", node.end), ("status", node.status), ("git", node.git_commit),
            ("branch", node.git_branch), ("host", node.host),
        ]
    else:
        fields = [("id", node.id), ("uri", node.uri), ("digest", node.digest),
                  ("version", node.version), ("etag", node.etag)]
    return "\n".join(f"{key}: {value}" for key, value in fields if value)


def edge_label(edge: Edge) -> str:
    return f"{edge.kind} ({edge.evidence})" if edge.evidence else edge.kind


def export(graph: Graph) -> str:
    """The graph as a DOT digraph, left (raw data) to right (the root)."""
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for node in graph.nodes:
        attributes = [f"label={quote(label(node))}", f"tooltip={quote(tooltip(node))}"]
        if node.kind == RUN:
            attributes += ["shape=box", 'style="rounded,filled"', 'fillcolor="#e8eefc"']
            if node.status == "failed":
                attributes.append('color="#c62828"')
        elif node.kind == ARTIFACT:
            attributes += ["shape=ellipse", 'style=filled', 'fillcolor="#f3f3f3"']
            if node.id == graph.root:
                attributes.append("penwidth=2")
        else:
            attributes.append("shape=note")
        lines.append(f"  {quote(node.id)} [{', '.join(attributes)}];")
    for edge in graph.edges:
        attributes = [f"label={quote(edge_label(edge))}"]
        if edge.evidence == WEAK_EVIDENCE:
            attributes += ["style=dashed", 'color="#b26a00"']
        lines.append(f"  {quote(edge.source)} -> {quote(edge.target)} [{', '.join(attributes)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
