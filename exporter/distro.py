"""clew's OpenTelemetry distro and configurator: `opentelemetry-instrument` with no settings
records provenance into the spool.

The distro only sets defaults, so every OTEL_* variable still means what OpenTelemetry says:
traces go to the spool (`OTEL_TRACES_EXPORTER=clew`; `clew,otlp` adds OTLP), metrics and logs
are off unless asked for, and clew's resource detector (a process's rank and node) joins the
detectors the user chose. The configurator is OpenTelemetry's own, with one change: each
exporter sits behind a ProvenanceSpanProcessor, which never drops a span.
"""

from __future__ import annotations

import logging
import os

from opentelemetry import trace
from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPERIMENTAL_RESOURCE_DETECTORS,
    OTEL_SERVICE_NAME,
)
from opentelemetry.sdk.trace import TracerProvider

from clew.semconv import environment

from .processor import ProvenanceSpanProcessor, active_processors
from .spool import SpoolSpanExporter

_logger = logging.getLogger(__name__)

SERVICE_NAME = "clew"


class ClewDistro(BaseDistro):
    """Defaults that make provenance capture work with no configuration."""

    def _configure(self, **kwargs: object) -> None:
        os.environ.setdefault(OTEL_TRACES_EXPORTER, "clew")
        os.environ.setdefault(OTEL_METRICS_EXPORTER, "none")
        os.environ.setdefault(OTEL_LOGS_EXPORTER, "none")
        os.environ.setdefault(OTEL_SERVICE_NAME, SERVICE_NAME)
        os.environ[OTEL_EXPERIMENTAL_RESOURCE_DETECTORS] = with_clew_detector(
            os.environ.get(OTEL_EXPERIMENTAL_RESOURCE_DETECTORS, "")
        )
        # Resolved once by the first process and inherited, so a child that changes
        # directory still writes into the run's spool and cache.
        os.environ[environment.CLEW_HOME] = str(environment.resolve_home())


def with_clew_detector(configured: str) -> str:
    """OTEL_EXPERIMENTAL_RESOURCE_DETECTORS with clew's detector (ranks, node, launcher) in it.

    It goes first: Resource.create merges detectors in order, later ones winning, so the
    user's own detectors and OTEL_RESOURCE_ATTRIBUTES (the `otel` detector, always last
    unless placed) override it. `*` already means every registered detector.
    """
    names = [name.strip() for name in configured.split(",") if name.strip()]
    if environment.RESOURCE_DETECTOR in names or "*" in names:
        return ",".join(names)
    return ",".join([environment.RESOURCE_DETECTOR, *names])


class ClewConfigurator(_OTelSDKConfigurator):
    """OpenTelemetry's SDK configurator with clew's non-dropping span processor."""

    configured = False

    def _configure(self, **kwargs: object) -> None:
        kwargs.setdefault("export_span_processor", ProvenanceSpanProcessor)
        super()._configure(**kwargs)
        ClewConfigurator.configured = True


def ensure_spool() -> None:
    """Make sure provenance reaches the spool even when another distro configured the SDK.

    Runs as an `opentelemetry_pre_instrument` hook, after whichever configurator won and
    before any instrumentor. With clew's configurator, OTEL_TRACES_EXPORTER is respected as
    the user wrote it. Otherwise (opentelemetry-distro won, or nothing configured the SDK) a
    spool processor is added to the provider, or a provider is created for it.
    """
    if ClewConfigurator.configured:
        return
    if any(isinstance(p.exporter, SpoolSpanExporter) for p in active_processors()):
        return
    os.environ.setdefault(environment.CLEW_HOME, str(environment.resolve_home()))
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(ProvenanceSpanProcessor(SpoolSpanExporter()))
    _logger.debug("clew: added the spool to a tracer provider configured elsewhere")
