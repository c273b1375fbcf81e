"""clew's capture settings, read once from the environment.

Bad values fall back to the defaults with a warning, as OpenTelemetry's own settings do:
a typo in an environment variable must not stop a training job.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from clew.semconv import environment

_logger = logging.getLogger(__name__)

DEFAULT_HASH_MAX_BYTES = 4 << 30
DEFAULT_FLUSH_INTERVAL = 1.0


def _flag(variable: str) -> bool:
    return os.environ.get(variable, "1").strip().lower() not in ("0", "false", "no", "off")


def _number(variable: str, default: float, kind: type) -> float:
    raw = os.environ.get(variable)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw)
    except ValueError:
        _logger.warning("clew: ignoring %s=%r (not a number); using %s", variable, raw, default)
        return default
    if value <= 0:
        _logger.warning("clew: ignoring %s=%r (must be positive); using %s", variable, raw, default)
        return default
    return value


@dataclass(frozen=True)
class Settings:
    """What the recorder needs to know about its environment."""

    home: Path
    hashing: bool
    hash_max_bytes: int
    flush_interval: float
    stamp: bool = True  # write producer stamps, and look for them on local reads

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(
            home=environment.resolve_home(),
            hashing=_flag(environment.CLEW_HASH),
            hash_max_bytes=int(
                _number(environment.CLEW_HASH_MAX_BYTES, DEFAULT_HASH_MAX_BYTES, int)
            ),
            flush_interval=float(
                _number(environment.CLEW_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL, float)
            ),
            stamp=_flag(environment.CLEW_STAMP),
        )
