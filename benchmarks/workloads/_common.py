"""Helpers shared by the workload programs (kept tiny: it is imported under measurement)."""

from __future__ import annotations

import os
import random
import sys
import time

_PHASES = bool(os.environ.get("CLEW_BENCH_PHASES"))


def mark(name: str) -> None:
    """With CLEW_BENCH_PHASES set, tell run.py (on stderr, no file I/O) when a phase begins,
    so it can split wall time into start-up, the program's body, and exit."""
    if _PHASES:
        print(f"clew-bench-phase {name} {time.time():.6f}", file=sys.stderr, flush=True)


def small_files(root: str) -> list[str]:
    """Every file under root/<dir>/, in a stable order (the loader's index)."""
    paths = []
    for directory in sorted(os.listdir(root)):
        folder = os.path.join(root, directory)
        paths.extend(os.path.join(folder, name) for name in sorted(os.listdir(folder)))
    return paths


def shuffled(paths: list[str], seed: int) -> list[str]:
    """One epoch's order, as a shuffling data loader would visit the files."""
    order = list(paths)
    random.Random(seed).shuffle(order)
    return order
