"""Micro-benchmarks under pytest-benchmark; each module's figures become its section of
benchmarks/RESULTS.md.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m pytest benchmarks/micro                      # measure, write the sections
    .venv/bin/python -m pytest benchmarks/micro --benchmark-disable  # they run; writes nothing

A test times its code through the `per_call` fixture, which hands it to pytest-benchmark and
keeps the best and the median round, per call, for its module's table. The best round is the
figure to read on a shared machine: the others' work only ever adds to a round.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent.parent))
from results import git_state, write_section  # noqa: E402 - benchmarks/results.py


@dataclass
class Row:
    label: str
    best_us: float
    median_us: float
    rounds: int


# module file name -> (its docstring's first paragraph, its rows in the order measured)
ROWS: dict[str, tuple[str, list[Row]]] = {}


@pytest.fixture
def per_call(benchmark, request: pytest.FixtureRequest) -> Callable[..., None]:  # noqa: ANN001
    """`per_call(label, function, calls=1, rounds=None, setup=None)`: time `function` with
    pytest-benchmark; `calls` is how many calls of the measured operation one call of
    `function` makes (a batch), so the table shows microseconds per operation. With `rounds`
    the rounds are fixed (pedantic mode, after one warm-up round), else pytest-benchmark
    calibrates them."""

    def measure(label: str, function: Callable[[], object], calls: int = 1,
                rounds: int | None = None, setup: Callable[[], object] | None = None) -> None:
        if rounds is None:
            benchmark(function)
        else:
            benchmark.pedantic(function, setup=setup, rounds=rounds, warmup_rounds=1)
        if benchmark.disabled:
            return
        stats = benchmark.stats
        what = (request.module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        ROWS.setdefault(request.node.path.name, (what, []))[1].append(
            Row(label, stats["min"] / calls * 1e6, stats["median"] / calls * 1e6, stats["rounds"])
        )

    return measure


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "unknown")
    return (f"nproc {len(os.sched_getaffinity(0))}, {cpu}, "
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"Linux {platform.release()}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Each module that measured and passed writes its section; a failed run writes none."""
    if exitstatus != 0 or not ROWS:
        return
    for module, (what, rows) in ROWS.items():
        write_section(_section(module, what, rows), f"micro/{module}")


def _section(module: str, what: str, rows: list[Row]) -> str:
    return "\n".join([
        f"## .venv/bin/python -m pytest benchmarks/micro/{module}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- clew commit measured: {git_state()}",
        f"- machine: {_machine()}; load average (1 min) at the end: {os.getloadavg()[0]:.2f} "
        "(a 2-core machine shared with other engineers)",
        f"- what: {what}",
        "- pytest-benchmark rounds; best and median round, divided by the operations a round makes",
        "",
        "| measure | best (us per operation) | median (us) | rounds |",
        "|---|---|---|---|",
        *(f"| {row.label} | {row.best_us:.2f} | {row.median_us:.2f} | {row.rounds} |"
          for row in rows),
    ])
