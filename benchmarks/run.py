"""clew's overhead benchmarks: each workload under clew's defaults against the same workload
under bare `opentelemetry-instrument` with every exporter set to none.

    .venv/bin/python benchmarks/run.py [--runs N] [--only a,b,...]

Data is prepared once under benchmarks/.work/ (gitignored). For each workload the baseline
and clew runs alternate (ABBA order), after one untimed warm-up of each; the wall time of
the whole `opentelemetry-instrument python workload.py` process is measured and the median
of each is compared. Every clew run is checked against what it must have recorded (URIs,
digests, counts, exec spans), and every baseline run must have recorded nothing, so a fast
but broken capture cannot pass. Results are printed as a markdown table and written into
benchmarks/RESULTS.md, replacing this benchmark's section (a run of some workloads writes a
section with their rows alone).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import blake3
from results import RESULTS, git_state
from results import write_section as write_results

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORKLOADS = BENCH / "workloads"
PYTHON = sys.executable
INSTRUMENT = str(Path(PYTHON).parent / "opentelemetry-instrument")

KIB, MIB = 1 << 10, 1 << 20
SMALL_DIRS, SMALL_PER_DIR, SMALL_SIZE = 20, 1000, 16 * KIB  # (a), (b), (e)
LARGE_COUNT, LARGE_SIZE = 4, 256 * MIB  # (c)
MIXED_SMALL_DIRS, MIXED_SMALL_PER_DIR = 3, 1000  # (f)
MIXED_LARGE_SIZE = 64 * MIB
CSV_ROWS = 100_000
NUMPY_TARGET_S = 0.0005
DATA_VERSION = 1

BASELINE_ENV = {
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "clew_files,clew_processes",
}

TARGETS = {"a": 1.5, "b": 1.05, "c": 1.10, "d": 1.2, "e": 1.2, "f": 1.15, "startup": 25.0}
ORDER = ["a", "b", "c", "d", "e", "f", "startup"]


# -- data -----------------------------------------------------------------------------------


def _digest(path: Path) -> str:
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(str(path))
    return "blake3:" + hasher.hexdigest()


def _write_random(path: Path, size: int, rng) -> None:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        left = size
        while left:
            count = min(left, 64 * MIB)
            handle.write(rng.bytes(count))
            left -= count


def _small_tree(root: Path, dirs: int, per_dir: int, rng) -> None:  # noqa: ANN001
    for d in range(dirs):
        folder = root / f"class{d:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        blob = rng.bytes(per_dir * SMALL_SIZE)
        for i in range(per_dir):
            (folder / f"sample{i:05d}.bin").write_bytes(blob[i * SMALL_SIZE : (i + 1) * SMALL_SIZE])


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def prepare(work: Path, recalibrate: bool) -> dict:
    """Create the data once (idempotent) and return the manifest: paths and digests."""
    import numpy as np

    data = work / "data"
    manifest_path = work / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") == DATA_VERSION and all(
            Path(p).exists() for p in list(manifest["digests"])[:: 997]
        ):
            if recalibrate or "numpy_iterations" not in manifest:
                manifest.update(calibrate())
                manifest_path.write_text(json.dumps(manifest))
            return manifest
    print(f"preparing data under {data} (once) ...", flush=True)
    shutil.rmtree(data, ignore_errors=True)
    rng = np.random.default_rng(20261126)
    _small_tree(data / "small", SMALL_DIRS, SMALL_PER_DIR, rng)
    for i in range(LARGE_COUNT):
        _write_random(data / "large" / f"large{i}.bin", LARGE_SIZE, rng)
    mixed = data / "mixed"
    _small_tree(mixed / "small", MIXED_SMALL_DIRS, MIXED_SMALL_PER_DIR, rng)
    for i in range(2):
        _write_random(mixed / f"large{i}.bin", MIXED_LARGE_SIZE, rng)
    with open(mixed / "table.csv", "w") as handle:
        handle.write("id,a,b,c,d,label\n")
        values = rng.normal(size=(CSV_ROWS, 4))
        labels = rng.integers(0, 10, size=CSV_ROWS)
        for i in range(CSV_ROWS):
            a, b, c, d = values[i]
            handle.write(f"{i},{a:.6f},{b:.6f},{c:.6f},{d:.6f},{labels[i]}\n")
    os.sync()
    manifest = {
        "version": DATA_VERSION,
        "digests": {str(p): _digest(p) for p in _all_files(data)},
    }
    manifest.update(calibrate())
    manifest_path.write_text(json.dumps(manifest))
    return manifest


def calibrate() -> dict:
    """Pick the number of transform rounds that makes (b)'s numpy work ~0.5 ms per file."""
    sys.path.insert(0, str(WORKLOADS))
    try:
        from b_small_reads_numpy import transform
    finally:
        sys.path.pop(0)
    data = os.urandom(SMALL_SIZE)

    def per_file(iterations: int) -> float:
        best = float("inf")
        for _ in range(7):
            start = time.perf_counter()
            for _ in range(200):
                transform(data, iterations)
            best = min(best, (time.perf_counter() - start) / 200)
        return best

    fixed = per_file(0)
    per_round = (per_file(40) - fixed) / 40
    iterations = max(1, round((NUMPY_TARGET_S - fixed) / per_round))
    measured = per_file(iterations)
    print(f"numpy work calibrated: {iterations} rounds = {measured * 1e3:.3f} ms per file")
    return {"numpy_iterations": iterations, "numpy_ms_per_file": round(measured * 1e3, 4)}


# -- running --------------------------------------------------------------------------------


@dataclass
class Workload:
    key: str
    title: str
    argv: Callable[[Path, dict], list[str]]  # program arguments after `python`
    check: Callable[[Path, dict, Path | None], list[str]]  # (clew home, manifest, out) -> problems
    out_dir: bool = False  # gets a fresh output directory per run
    warm_home: bool = False  # (e): reuses one CLEW_HOME whose digest cache a previous run filled


@dataclass
class Result:
    key: str
    title: str
    baseline: list[float] = field(default_factory=list)
    clew: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # per variant: (start-up, body, exit) seconds of each timed run, from the phase marks
    phases: dict[str, list[tuple[float, float, float]]] = field(
        default_factory=lambda: {"baseline": [], "clew": []}
    )
    # per variant: CPU seconds (user + sys) of the process and its children, per timed run
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"baseline": [], "clew": []})
    load: list[float] = field(default_factory=list)  # 1-minute load average, before each pair

    def phase_medians(self, variant: str) -> tuple[float, float, float] | None:
        rows = self.phases[variant]
        if not rows:
            return None
        return tuple(statistics.median(r[i] for r in rows) for i in range(3))  # type: ignore[return-value]

    @property
    def base_median(self) -> float:
        return statistics.median(self.baseline)

    @property
    def clew_median(self) -> float:
        return statistics.median(self.clew)

    @property
    def value(self) -> float:
        if self.key == "startup":
            return (self.clew_median - self.base_median) * 1e3
        return self.clew_median / self.base_median

    @property
    def passed(self) -> bool:
        return not self.problems and self.value <= TARGETS[self.key]


def _clean_environment(work: Path) -> dict[str, str]:
    """The caller's environment without OpenTelemetry or clew settings that would skew runs.

    Bytecode is cached as in a normal setup (PYTHONDONTWRITEBYTECODE, set in some sandboxes,
    would recompile clew's editable sources in every process: ~6 ms each here), under
    <work>/pycache so nothing is written next to the sources.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLEW_"))}
    for name in ("TRACEPARENT", "TRACESTATE", "PYTHONPATH", "PYTHONSTARTUP",
                 "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def clew_instrumentors() -> list[str]:
    """Every OpenTelemetry instrumentor clew installs, and the library hooks it loads (the
    baseline disables them all)."""
    from importlib.metadata import entry_points

    from clew.semconv.environment import INSTRUMENTOR_GROUP

    names = {"clew_files", "clew_processes"}
    for group in ("opentelemetry_instrumentor", INSTRUMENTOR_GROUP):
        for entry_point in entry_points(group=group):
            if entry_point.value.startswith("clew."):
                names.add(entry_point.name)
    return sorted(names)


def baseline_environment() -> dict[str, str]:
    return {**BASELINE_ENV, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ",".join(clew_instrumentors())}


_PROBE = """
import sys, threading
from opentelemetry import trace
provider = trace.get_tracer_provider()
processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
print(sorted(m for m in sys.modules if m.startswith("clew")))
print([type(p).__name__ for p in processors])
print(sorted(t.name for t in threading.enumerate()))
"""


def probe_baseline(env: dict[str, str], cwd: Path) -> tuple[str, list[str]]:
    """What the baseline really loads; problems if any of clew's capture is active in it."""
    done = subprocess.run([INSTRUMENT, PYTHON, "-c", _PROBE], env=env, cwd=cwd,
                          capture_output=True, text=True, check=True)
    modules, processors, threads = done.stdout.splitlines()[:3]
    problems = []
    # clew's resource detector (clew.instrumentation.resource) loads with the SDK even with
    # every instrumentor disabled; the capture is the recorder.
    if "clew.instrumentation._recorder" in modules:
        problems.append(f"baseline imports clew's capture: {modules}")
    if processors != "[]":
        problems.append(f"baseline has span processors: {processors}")
    if threads != "['MainThread']":
        problems.append(f"baseline runs threads: {threads}")
    return (f"clew modules {modules}, span processors {processors}, threads {threads}",
            problems)


def _include_globs(work: Path) -> str | None:
    """CLEW_INCLUDE needed for clew to record the benchmark's files at all, or None: when
    clew's default path filter leaves out the work directory (a checkout under an excluded
    prefix). The include glob costs one fnmatch per event (benchmarks/micro/test_hook.py).
    """
    from clew.instrumentation._paths import PathFilter

    probe = str(work / "data" / "small" / "probe")
    saved = os.environ.pop("CLEW_INCLUDE", None)
    try:
        wanted = PathFilter(work / "homes" / "probe").wants(probe)
    finally:
        if saved is not None:
            os.environ["CLEW_INCLUDE"] = saved
    return None if wanted else f"{work}/data/*,{work}/out/*"


class Runner:
    def __init__(self, work: Path, manifest: dict) -> None:
        self.work = work
        self.manifest = manifest
        self.env = {**_clean_environment(work), "CLEW_BENCH_PHASES": "1"}
        self.baseline = baseline_environment()
        self.include = _include_globs(work)
        self.cwd = work / "cwd"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.homes = work / "homes"
        shutil.rmtree(self.homes, ignore_errors=True)
        self.homes.mkdir(parents=True)
        self.counter = 0

    def _fresh(self, name: str) -> Path:
        self.counter += 1
        return self.homes / f"{name}-{self.counter}"

    def command(self, workload: Workload, out: Path | None) -> list[str]:
        args = workload.argv(self.work, self.manifest)
        if out is not None:
            args = [*args, str(out)]
        return [INSTRUMENT, PYTHON, *args]

    def run(self, command: list[str], env: dict[str, str]) -> tuple[float, str, tuple | None]:
        """Run one program; return its wall time, stdout and (start-up, body, exit) phases.
        The CPU time it used (with its children) is left in self.last_cpu."""
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall_start = time.time()
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=self.cwd, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        wall_end = wall_start + elapsed
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        marks, other = {}, []
        for line in done.stderr.splitlines():
            if line.startswith("clew-bench-phase "):
                _, name, stamp = line.split()
                marks[name] = float(stamp)
            elif line.strip():
                other.append(line)
        if other:
            print(f"  stderr from {Path(command[2]).name}: {chr(10).join(other)[:500]}")
        phases = None
        if "body" in marks and "end" in marks:
            phases = (marks["body"] - wall_start, marks["end"] - marks["body"],
                      wall_end - marks["end"])
        return elapsed, done.stdout, phases

    def baseline_env(self) -> tuple[dict[str, str], Path]:
        home = self._fresh("baseline")
        return {**self.env, **self.baseline, "CLEW_HOME": str(home)}, home

    def clew_env(self, home: Path) -> dict[str, str]:
        env = {**self.env, "CLEW_HOME": str(home)}
        if self.include:
            env["CLEW_INCLUDE"] = self.include
        return env

    def measure(self, workload: Workload, runs: int) -> Result:
        result = Result(workload.key, workload.title)
        outputs: dict[str, set[str]] = {"baseline": set(), "clew": set()}
        warm_home = self.homes / "e-warm"
        if workload.warm_home:
            # "a previous run": fills the digest cache that every timed run then reuses
            shutil.rmtree(warm_home, ignore_errors=True)
            self.run(self.command(workload, None), self.clew_env(warm_home))
            result.notes.append("cache warmed by one untimed clew run of (a) into the same CLEW_HOME")

        def one(variant: str, timed: bool) -> None:
            out = None
            if workload.out_dir:
                out = self.work / "out" / variant
                shutil.rmtree(out, ignore_errors=True)
            command = self.command(workload, out)
            if variant == "baseline":
                env, home = self.baseline_env()
                elapsed, stdout, phases = self.run(command, env)
                if home.exists():
                    result.problems.append(f"baseline wrote {home}: it is not the bare floor")
            else:
                if workload.warm_home:
                    home = warm_home
                    shutil.rmtree(home / "spool", ignore_errors=True)
                    cache = home / "cache" / "digests-v1.txt"
                    cache_before = cache.stat().st_size if cache.exists() else 0
                else:
                    home = self._fresh(workload.key)
                elapsed, stdout, phases = self.run(command, self.clew_env(home))
                problems = workload.check(home, self.manifest, out)
                if workload.warm_home:
                    grown = (cache.stat().st_size if cache.exists() else 0) - cache_before
                    if grown:
                        problems.append(f"warm run grew the digest cache by {grown} bytes")
                for problem in problems:
                    if problem.startswith("warning: "):
                        result.notes.append(problem[len("warning: "):])
                    elif problem not in result.problems:
                        result.problems.append(problem)
                if not workload.warm_home:
                    shutil.rmtree(home, ignore_errors=True)
            outputs[variant].add(stdout)
            if timed:
                getattr(result, variant).append(elapsed)
                result.cpu[variant].append(self.last_cpu)
                if phases is not None:
                    result.phases[variant].append(phases)

        one("baseline", False)  # warm-up: page cache, bytecode, first-run effects
        one("clew", False)
        for i in range(runs):
            result.load.append(os.getloadavg()[0])
            order = ("baseline", "clew") if i % 2 == 0 else ("clew", "baseline")
            for variant in order:
                one(variant, True)
        if outputs["baseline"] != outputs["clew"] or len(outputs["clew"]) != 1:
            result.problems.append(f"program output differs: {outputs}")
        return result


# -- checks: what each clew run must have recorded ------------------------------------------


def _the_run(home: Path):  # noqa: ANN202
    from clew.query.spool import spool_runs

    runs = spool_runs(home)
    if len(runs) != 1:
        raise AssertionError(f"expected 1 run in the spool, found {len(runs)}")
    return runs[0]


def _uri(path: str) -> str:
    from clew.semconv.uris import file_uri

    return file_uri(path)


def _check_reads(run, expected: dict[str, str], count: int | None) -> list[str]:  # noqa: ANN001
    """Every expected path read, with its blake3 digest (and `count` opens when given)."""
    problems = []
    by_uri: dict[str, list] = {}
    for access in run.accesses:
        if access.operation == "read":
            by_uri.setdefault(access.uri, []).append(access)
    missing = wrong = miscounted = 0
    for path, digest in expected.items():
        accesses = by_uri.get(_uri(path))
        if not accesses:
            missing += 1
            continue
        if any(a.digest != digest for a in accesses):
            wrong += 1
        if count is not None and sum(a.count for a in accesses) != count:
            miscounted += 1
    if missing:
        problems.append(f"{missing}/{len(expected)} files read but not recorded")
    if wrong:
        problems.append(f"{wrong}/{len(expected)} reads recorded without the right digest")
    if miscounted:
        problems.append(
            f"warning: {miscounted}/{len(expected)} files with an open count != {count} "
            "(counts after a record's first flush are lost)"
        )
    if run.exit_code != 0:
        problems.append(f"run span exit code {run.exit_code}")
    if run.capture_errors:
        problems.append(f"capture errors: {run.capture_errors[:3]}")
    return problems


def _subset(manifest: dict, prefix: Path) -> dict[str, str]:
    start = str(prefix) + "/"
    return {p: d for p, d in manifest["digests"].items() if p.startswith(start)}


def check_small(work: Path) -> Callable:
    def check(home: Path, manifest: dict, out: Path | None) -> list[str]:
        return _check_reads(_the_run(home), _subset(manifest, work / "data" / "small"), 2)

    return check


def check_large(work: Path) -> Callable:
    def check(home: Path, manifest: dict, out: Path | None) -> list[str]:
        return _check_reads(_the_run(home), _subset(manifest, work / "data" / "large"), 1)

    return check


def check_subprocesses(home: Path, manifest: dict, out: Path | None) -> list[str]:
    run = _the_run(home)
    problems = []
    good = [e for e in run.execs if e.exit_code == 0 and e.traced and e.pid]
    if len(good) != 50:
        problems.append(f"{len(good)}/50 exec spans with exit code 0, traced, pid")
    children = [p for p in run.processes if p.role == "exec"]
    if len(children) != 50:
        problems.append(f"{len(children)}/50 child processes joined the run's trace")
    return problems


def check_mixed(work: Path) -> Callable:
    def check(home: Path, manifest: dict, out: Path | None) -> list[str]:
        run = _the_run(home)
        mixed = work / "data" / "mixed"
        small = _subset(manifest, mixed / "small")
        expected = {**small}
        for name in ("large0.bin", "large1.bin", "table.csv"):
            expected[str(mixed / name)] = manifest["digests"][str(mixed / name)]
        problems = _check_reads(run, expected, None)
        # the child read the CSV and 200 small files in its own process
        pids = {a.pid for a in run.accesses if a.uri == _uri(str(mixed / "table.csv"))}
        if len(pids) != 2:
            problems.append(f"table.csv read by {len(pids)} processes, expected 2")
        assert out is not None
        writes = {a.uri: a for a in run.accesses if a.operation == "write"}
        for name in ("features.npy", "model.pkl", "metrics.json", "child_summary.json"):
            access = writes.get(_uri(str(out / name)))
            if access is None:
                problems.append(f"write of {name} not recorded")
            elif access.digest != _digest(out / name):
                problems.append(f"write of {name} recorded with digest {access.digest}")
        if len(run.execs) != 1 or not run.execs[0].traced or run.execs[0].exit_code != 0:
            problems.append(f"expected 1 traced exec span with exit code 0: {run.execs}")
        if len(run.processes) != 2:
            problems.append(f"expected the run and its child, found {len(run.processes)}")
        return problems

    return check


def check_startup(home: Path, manifest: dict, out: Path | None) -> list[str]:
    run = _the_run(home)
    return [] if run.status == "ok" and run.exit_code == 0 else [f"run span: {run.status}"]


def workloads(work: Path) -> dict[str, Workload]:
    data = work / "data"
    w = WORKLOADS
    small = str(data / "small")
    return {
        "a": Workload("a", "20,000 x 16 KiB read in two passes, no compute",
                      lambda _w, _m: [str(w / "a_small_reads.py"), small], check_small(work)),
        "b": Workload("b", "(a) with ~0.5 ms of numpy work per file",
                      lambda _w, m: [str(w / "b_small_reads_numpy.py"), small,
                                     str(m["numpy_iterations"])], check_small(work)),
        "c": Workload("c", "4 x 256 MiB read fully",
                      lambda _w, _m: [str(w / "c_large_reads.py"),
                                      *(str(data / "large" / f"large{i}.bin")
                                        for i in range(LARGE_COUNT))], check_large(work)),
        "d": Workload("d", "50 `python -c pass` subprocesses",
                      lambda _w, _m: [str(w / "d_subprocesses.py"), "50"], check_subprocesses),
        "e": Workload("e", "(a) again with a warm digest cache",
                      lambda _w, _m: [str(w / "a_small_reads.py"), small], check_small(work),
                      warm_home=True),
        "f": Workload("f", "mixed: 3,000 small + 2 x 64 MiB + CSV (pandas), 3 outputs, "
                      "1 Python subprocess with its own I/O",
                      lambda _w, _m: [str(w / "f_mixed.py"), str(data / "mixed")],
                      check_mixed(work), out_dir=True),
        "startup": Workload("startup", "start-up: `python -c pass`",
                            lambda _w, _m: ["-c", "pass"], check_startup),
    }


# -- reporting ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", handle.read()).group(1))
    from importlib.metadata import version

    packages = ", ".join(
        f"{name} {version(name)}"
        for name in ("opentelemetry-sdk", "opentelemetry-instrumentation", "blake3", "numpy",
                     "pandas")
    )
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": f"{mem_kb / (1 << 20):.1f} GiB",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "kernel": platform.release(),
        "packages": packages,
    }


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s"


def _summarise(notes: list[str]) -> list[str]:
    """Notes that differ only in their leading count ("12/20000 files ...") become one, with
    the range of counts over the runs."""
    grouped: dict[str, list[int]] = {}
    plain: list[str] = []
    for note in notes:
        match = re.match(r"^(\d+)(/\d+ .*)$", note)
        if match:
            grouped.setdefault(match.group(2), []).append(int(match.group(1)))
        elif note not in plain:
            plain.append(note)
    for rest, counts in grouped.items():
        low, high = min(counts), max(counts)
        span = f"{low}" if low == high else f"{low}-{high}"
        plain.append(f"{span}{rest}, in {len(counts)} of the clew runs")
    return plain


def table(results: list[Result]) -> str:
    lines = [
        "| workload | baseline median | clew median | clew / baseline | target | result | "
        "spread (min-max) baseline / clew | records check |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.key == "startup":
            base, clew = f"{r.base_median * 1e3:.0f} ms", f"{r.clew_median * 1e3:.0f} ms"
            value, target = f"+{r.value:.0f} ms", f"<= +{TARGETS[r.key]:.0f} ms"
            spread = (f"{min(r.baseline) * 1e3:.0f}-{max(r.baseline) * 1e3:.0f} / "
                      f"{min(r.clew) * 1e3:.0f}-{max(r.clew) * 1e3:.0f} ms")
        else:
            base, clew = _fmt_s(r.base_median), _fmt_s(r.clew_median)
            value, target = f"{r.value:.2f}", f"<= {TARGETS[r.key]:.2f}"
            spread = (f"{min(r.baseline):.2f}-{max(r.baseline):.2f} / "
                      f"{min(r.clew):.2f}-{max(r.clew):.2f} s")
        verdict = "pass" if r.passed else "**FAIL**"
        check = "ok" if not r.problems else "; ".join(r.problems)
        notes = _summarise(r.notes)
        if notes:
            check += " (" + "; ".join(notes[:2]) + (f"; +{len(notes) - 2} more" if len(notes) > 2 else "") + ")"
        label = f"({r.key}) {r.title}" if r.key != "startup" else r.title
        lines.append(
            f"| {label} | {base} | {clew} | {value} | {target} | {verdict} | {spread} | {check} |"
        )
    return "\n".join(lines)


def phase_table(results: list[Result]) -> str:
    lines = [
        "Where the wall time goes (medians; start-up = process start until the workload's "
        "main() begins, including its imports; exit = main() returned until the process is gone):",
        "",
        "| workload | start-up baseline / clew | body baseline / clew | exit baseline / clew | "
        "CPU time (user+sys, with children) baseline / clew | load avg (1 min) min-max |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        base, clew = r.phase_medians("baseline"), r.phase_medians("clew")
        cells = (
            [f"{b * 1e3:.0f} / {c * 1e3:.0f} ms ({(c - b) * 1e3:+.0f})" for b, c in zip(base, clew)]
            if base is not None and clew is not None
            else ["", "", ""]
        )
        cpu_base, cpu_clew = statistics.median(r.cpu["baseline"]), statistics.median(r.cpu["clew"])
        cells.append(f"{cpu_base:.2f} / {cpu_clew:.2f} s (x{cpu_clew / cpu_base:.2f})")
        cells.append(f"{min(r.load):.1f}-{max(r.load):.1f}")
        label = f"({r.key})" if r.key != "startup" else "start-up"
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines) if len(lines) > 4 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each variant (>= 5)")
    parser.add_argument("--only", default=",".join(ORDER), help="comma-separated: a,b,c,d,e,f,startup")
    parser.add_argument("--work", type=Path, default=BENCH / ".work", help="data and scratch")
    parser.add_argument("--recalibrate", action="store_true", help="re-time the numpy work")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    selected = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = set(selected) - set(ORDER)
    if unknown:
        parser.error(f"unknown workloads: {sorted(unknown)}")
    selected = [k for k in ORDER if k in selected]
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    if args.runs < 5:
        print(f"note: --runs {args.runs}: the benchmarks call for the median of at least 5 runs")
    command = ".venv/bin/python benchmarks/run.py"
    if args.runs != 5:
        command += f" --runs {args.runs}"
    if args.only != ",".join(ORDER):
        command += f" --only {','.join(selected)}"
    if args.work.resolve() != (BENCH / ".work").resolve():
        command += f" --work {args.work}"
    started = dt.datetime.now().astimezone()
    load_before = os.getloadavg()

    manifest = prepare(work, args.recalibrate)
    runner = Runner(work, manifest)
    baseline_env, _ = runner.baseline_env()
    loaded, baseline_problems = probe_baseline(baseline_env, runner.cwd)
    print(f"baseline loads: {loaded}")
    if baseline_problems:
        sys.exit(f"the baseline is not OpenTelemetry's floor: {baseline_problems}")
    if runner.include:
        print(f"note: clew excludes {work} by default here; CLEW_INCLUDE={runner.include}")
    all_workloads = workloads(work)
    results = []
    for key in selected:
        workload = all_workloads[key]
        print(f"[{key}] {workload.title}: {args.runs} x baseline / clew ...", flush=True)
        result = runner.measure(workload, args.runs)
        results.append(result)
        print(f"    baseline {[round(x, 3) for x in result.baseline]}")
        print(f"    clew     {[round(x, 3) for x in result.clew]}")
        print(f"    -> {result.value:.3f} {'PASS' if result.passed else 'FAIL'} "
              f"{result.problems or ''}", flush=True)
    shutil.rmtree(runner.homes, ignore_errors=True)

    load_after = os.getloadavg()

    info = machine()
    report = table(results)
    phases = phase_table(results)
    if phases:
        report += "\n\n" + phases
    print()
    print(report)
    lines = [
        f"## {command}",
        "",
        f"- date: {started:%Y-%m-%d %H:%M %Z} (took {(dt.datetime.now().astimezone() - started).seconds // 60} min)",
        f"- machine: nproc {info['nproc']}, {info['cpu']}, RAM {info['ram']}, "
        f"{info['python']}, Linux {info['kernel']}",
        f"- packages: {info['packages']}",
        f"- clew commit measured: {git_state()}",
        f"- load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        "(other engineers share this 2-core machine: numbers are noisy)",
        f"- runs: {args.runs} timed runs of each variant, alternating, after one warm-up of each; "
        "wall time of the whole `opentelemetry-instrument python ...` process; median",
        "- baseline: `OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none "
        f"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS={runner.baseline['OTEL_PYTHON_DISABLED_INSTRUMENTATIONS']} "
        ".venv/bin/opentelemetry-instrument .venv/bin/python workload.py`; clew: `CLEW_HOME=<fresh dir> .venv/bin/opentelemetry-instrument "
        ".venv/bin/python workload.py` ((e): one CLEW_HOME warmed by a previous run, spool emptied "
        "between runs, cache kept)",
        "- bytecode cached (PYTHONPYCACHEPREFIX=benchmarks/.work/pycache, PYTHONDONTWRITEBYTECODE "
        "unset) for both variants, as in a normal setup",
        f"- baseline: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS={runner.baseline['OTEL_PYTHON_DISABLED_INSTRUMENTATIONS']}"
        f" (every clew instrumentor); checked before the runs: {loaded}",
        f"- numpy work in (b): {manifest['numpy_iterations']} rounds, "
        f"{manifest['numpy_ms_per_file']} ms per file (calibrated)",
    ]
    if runner.include:
        lines.append(
            f"- CLEW_INCLUDE=`{runner.include}` was set for clew runs: clew's default filter "
            "leaves out the work directory here"
        )
    lines += ["", report]
    if not args.no_write:
        write_results("\n".join(lines), "run.py")
        print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
