"""`clew doctor`: is capture set up, where do records go, and what could get in the way."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from clew.exporter.spool_files import spool_directory, spool_files
from clew.semconv.redaction import redact_text
from clew.semconv import environment

_OTEL_DISTRO = "OTEL_PYTHON_DISTRO"
_OTEL_CONFIGURATOR = "OTEL_PYTHON_CONFIGURATOR"


@dataclass
class Report:
    """What doctor found. `warnings` are problems a user should act on."""

    version: str
    python: str
    home: str
    spool: str
    spool_files: int
    spool_bytes: int
    store: str
    hooks: list[str]
    distros: list[str]
    configurators: list[str]
    traces_exporter: str
    warnings: list[str] = field(default_factory=list)


def _entry_point_names(group: str) -> list[str]:
    return sorted({ep.name for ep in metadata.entry_points(group=group)})


def diagnose(home: Path | None = None) -> Report:
    """Look at the installation and environment the way `opentelemetry-instrument` will."""
    home = home or environment.resolve_home()
    spool = spool_directory(home)
    files = spool_files(spool)
    hooks = [
        f"{ep.name} ({ep.value})"
        for group in ("opentelemetry_instrumentor", environment.INSTRUMENTOR_GROUP)
        for ep in metadata.entry_points(group=group)
        if ep.value.startswith("clew.")
    ]
    report = Report(
        version=metadata.version("clew"),
        python=sys.version.split()[0],
        home=str(home),
        spool=str(spool),
        spool_files=len(files),
        spool_bytes=sum(f.stat().st_size for f in files),
        store=redact_text(environment.store_url(home)),
        hooks=sorted(hooks),
        distros=_entry_point_names("opentelemetry_distro"),
        configurators=_entry_point_names("opentelemetry_configurator"),
        traces_exporter=os.environ.get("OTEL_TRACES_EXPORTER", "clew (default)"),
    )
    others = [d for d in report.distros if d != "clew"]
    if others and os.environ.get(_OTEL_DISTRO) != "clew":
        report.warnings.append(
            f"another OpenTelemetry distro is installed ({', '.join(others)}); whichever loads "
            f"first wins. Set {_OTEL_DISTRO}=clew and {_OTEL_CONFIGURATOR}=clew to make clew's "
            "defaults certain (provenance is still spooled either way)."
        )
    if not hooks:
        report.warnings.append("no clew instrumentors are registered: reinstall clew")
    exporters = os.environ.get("OTEL_TRACES_EXPORTER")
    if exporters is not None and "clew" not in [e.strip() for e in exporters.split(",")]:
        report.warnings.append(
            f"OTEL_TRACES_EXPORTER={exporters} leaves out the spool: add 'clew' to keep "
            "provenance locally (e.g. OTEL_TRACES_EXPORTER=clew,otlp)"
        )
    disabled = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    for name in ("clew", "clew_files", "clew_processes", "*"):
        if name in [d.strip() for d in disabled.split(",")]:
            report.warnings.append(f"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS turns off {name}")
    return report
