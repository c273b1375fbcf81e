"""Questions about runs, for Python: what the `clew` CLI answers, as objects.

    from clew.query import connect, lineage_graph

    client = connect()                         # CLEW_STORE, else the store under CLEW_HOME
    graph = lineage_graph(client, "model.pt")  # what produced model.pt, back to raw data
    for node in graph.nodes:                   # an ArtifactNode or a RunNode
        print(node.kind, node.id)

Every question takes the client `connect` returns and answers with plain dataclasses, whose
`dataclasses.asdict` is the `--format json` form of the matching command (a graph's nodes:
their `to_json()`). docs/api.md
describes them. Names not listed in `__all__` (the modules' `_`-prefixed helpers, the SQL)
are not part of the API and change without notice. The questions whose modules share their
command's name (`lineage`, `diff`, `export`, `metrics`, `why`, `report`) are
`lineage_graph`, `diff_runs`, `export_graph`, `metrics_series`, `why_moved` and
`metrics_report` here: a package attribute named like one of its modules would be the module
or the function depending on what was imported first.

Nothing is imported until it is used, so `clew` starts as fast with this API as without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clew.exporter.store.connection import StoreBusy, close
    from clew.exporter.store.schema import SchemaOptions

    from .checks import Finding, contamination, staleness
    from .connection import connect
    from .diff import Change, RunDiff, RunSummary
    from .diff import diff as diff_runs
    from .export import FORMATS
    from .export import export as export_graph
    from .lineage import GROUP_ABOVE, MAX_DEPTH, ArtifactNode, Edge, Graph, RunNode
    from .lineage import impact as impact_graph
    from .lineage import lineage as lineage_graph
    from .metrics import Cause, Series, SeriesRun, metrics_series
    from .report import report as metrics_report
    from .runs import Run, list_runs, resolve_run
    from .why import CauseChange, History, Point, RankedCause, Step, WhyAnswer
    from .why import why as why_moved

# Each public name: the module that defines it, and its name there.
_SOURCES = {
    "connect": (".connection", "connect"),
    "close": ("clew.exporter.store.connection", "close"),
    "StoreBusy": ("clew.exporter.store.connection", "StoreBusy"),
    "SchemaOptions": ("clew.exporter.store.schema", "SchemaOptions"),
    "list_runs": (".runs", "list_runs"),
    "resolve_run": (".runs", "resolve_run"),
    "Run": (".runs", "Run"),
    "lineage_graph": (".lineage", "lineage"),
    "impact_graph": (".lineage", "impact"),
    "Graph": (".lineage", "Graph"),
    "ArtifactNode": (".lineage", "ArtifactNode"),
    "RunNode": (".lineage", "RunNode"),
    "Edge": (".lineage", "Edge"),
    "GROUP_ABOVE": (".lineage", "GROUP_ABOVE"),
    "MAX_DEPTH": (".lineage", "MAX_DEPTH"),
    "diff_runs": (".diff", "diff"),
    "RunDiff": (".diff", "RunDiff"),
    "RunSummary": (".diff", "RunSummary"),
    "Change": (".diff", "Change"),
    "contamination": (".checks", "contamination"),
    "staleness": (".checks", "staleness"),
    "Finding": (".checks", "Finding"),
    "export_graph": (".export", "export"),
    "FORMATS": (".export", "FORMATS"),
    "metrics_series": (".metrics", "metrics_series"),
    "Series": (".metrics", "Series"),
    "SeriesRun": (".metrics", "SeriesRun"),
    "Cause": (".metrics", "Cause"),
    "why_moved": (".why", "why"),
    "WhyAnswer": (".why", "WhyAnswer"),
    "RankedCause": (".why", "RankedCause"),
    "Step": (".why", "Step"),
    "History": (".why", "History"),
    "CauseChange": (".why", "CauseChange"),
    "Point": (".why", "Point"),
    "metrics_report": (".report", "report"),
}

__all__ = list(_SOURCES)


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _SOURCES[name]
    return getattr(importlib.import_module(module, __name__), attribute)


def __dir__() -> list[str]:
    return sorted(__all__)
