"""Where clew's spans go: the spool, the SDK wiring that never drops a span, and (with the
`store` extra) ClickHouse."""

from .processor import ProvenanceSpanProcessor
from .spool import SpoolSpanExporter, read_spool, spool_directory

__all__ = ["ProvenanceSpanProcessor", "SpoolSpanExporter", "read_spool", "spool_directory"]
