"""clew's capture settings, read once from the environment.

Bad values fall back to the defaults with a warning, as OpenTelemetry's own settings do:
a typo in an environment variable must not stop a training job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from clew.semconv import environment


DEFAULT_HASH_MAX_BYTES = 4 << 30
DEFAULT_FLUSH_INTERVAL = 1.0


def _flag(variable: str, default: str = "1") -> bool:
    return os.environ.get(variable, default).strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """What the recorder needs to know about its environment."""

    home: Path
    hashing: bool
    hash_max_bytes: int
    flush_interval: float
    stamp: bool = True  # stamp local files, and look for stamps on local reads
    stamp_objects: bool = False  # stamp S3 and GCS objects (their user metadata): opt-in
    preload: bool = True  # record what non-Python children do, through the LD_PRELOAD library
    native: bool = True  # record native code's opens in this process (GOT patching)

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(
            home=environment.resolve_home(),
            hashing=_flag(environment.CLEW_HASH),
            hash_max_bytes=environment.positive_number(
                environment.CLEW_HASH_MAX_BYTES, DEFAULT_HASH_MAX_BYTES, int
            ),
            flush_interval=environment.positive_number(
                environment.CLEW_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL, float
            ),
            stamp=_flag(environment.CLEW_STAMP),
            # CLEW_STAMP=0 turns every stamp off, these included.
            stamp_objects=(_flag(environment.CLEW_STAMP)
                           and _flag(environment.CLEW_STAMP_OBJECTS, default="0")),
            preload=_flag(environment.CLEW_PRELOAD),
            native=_flag(environment.CLEW_NATIVE, default="1"),
        )
