"""The capture settings the recorder runs with, read once from the environment
(`clew.semconv.environment` names and parses every one)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from clew.semconv import environment


class Settings(NamedTuple):
    """What the recorder needs to know about its environment.

    A NamedTuple, not a frozen dataclass: every instrumented process defines this class at
    start-up, and a dataclass's generated methods cost ~1 ms there (benchmarks/startup.py)."""

    home: Path
    hashing: bool
    hash_max_bytes: int
    flush_interval: float
    stamp: bool = True  # stamp local files, and look for stamps on local reads
    stamp_objects: bool = False  # stamp S3 and GCS objects (their user metadata): opt-in
    preload: bool = True  # record what non-Python children do, through the LD_PRELOAD library
    native: bool = True  # record native code's opens in this process (GOT patching)
    metric_files: tuple[str, ...] = environment.DEFAULT_METRIC_FILES  # globs of metric files

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(
            home=environment.resolve_home(),
            hashing=environment.flag(environment.CLEW_HASH),
            hash_max_bytes=environment.hash_max_bytes(),
            flush_interval=environment.flush_interval(),
            stamp=environment.flag(environment.CLEW_STAMP),
            # CLEW_STAMP=0 turns every stamp off, these included.
            stamp_objects=(environment.flag(environment.CLEW_STAMP)
                           and environment.flag(environment.CLEW_STAMP_OBJECTS, default=False)),
            preload=environment.flag(environment.CLEW_PRELOAD),
            native=environment.flag(environment.CLEW_NATIVE),
            metric_files=environment.metric_files(),
        )
