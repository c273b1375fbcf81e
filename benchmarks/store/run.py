"""The ClickHouse store benchmark: ingest rate, bytes on disk, `clew runs` and lookup latency.

For each size it makes a synthetic spool (`synth.py`, kept under `--work` and reused), ingests
it into a fresh embedded store with clew's own `ingest` (in a child process, as `clew ingest`
would), reads the store's size from `system.parts`, and times `list_runs`, `clew runs` end to
end, and the two artifact lookups (clew_io rows for one URI, for one digest).

The 10M-span store is not ingested from a 10M-span spool (that spool would be ~25 GB and its
Python ingest ~10 min here): it is the 1M store copied and multiplied inside ClickHouse,
nine `INSERT ... SELECT` copies with new trace and span ids (the run ids inside attribute
values rewritten to match) and timestamps moved 11 days further back each; the lineage
views fire on those inserts as on any other.

`--phases` also runs a single-threaded, instrumented copy of the ingest loop that times each
step (read, json parse, spans_to_rows, clickhouse-connect's insert serialization, chDB's
insert with and without clew's lineage views).

Usage (the results go between this benchmark's markers in benchmarks/RESULTS.md):

    .venv/bin/python benchmarks/store/run.py                        # everything: ~20 min
    .venv/bin/python benchmarks/store/run.py --sizes 100k --no-write  # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
ROOT = BENCH.parent
sys.path.append(str(BENCH))
from results import RESULTS, write_section  # noqa: E402 - benchmarks/results.py
MARKER = "store/run.py"
BIN = Path(sys.executable).parent
SIZES = {
    "100k": (100_000, "realistic"),
    "1m": (1_000_000, "realistic"),
    "1m-singles": (1_000_000, "singles"),
    "10m": (10_000_000, "realistic"),  # made from 1m, see the module docstring
}
RUNS = 1000
COPIES = 10
SHIFT_DAYS = 11
REPEAT = 5


# --- child processes: each opens the store itself (chDB: one process per store) -----------


def _child(task: str, **arguments: Any) -> dict[str, Any]:
    """Run `task` of this script in a fresh interpreter; its JSON answer."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", task, json.dumps(arguments)],
        capture_output=True, text=True, env=_env(), check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{task} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("CLEW_", "OTEL_"))}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _count(client: Any, sql: str) -> int:
    return client.query(sql).result_rows[0][0]


def task_ingest(home: str) -> dict[str, Any]:
    from clew.exporter.store.ingest import ingest
    from clew.exporter.store.connection import connect

    db = Path(home) / "db"
    shutil.rmtree(db, ignore_errors=True)
    started = time.perf_counter()
    client = connect(f"chdb://{db}")
    opened = time.perf_counter() - started
    cpu = _cpu()
    result = ingest(client, Path(home) / "spool")
    cpu = _cpu() - cpu
    return {
        "connect_s": opened,
        "ingest_s": result.seconds,
        "cpu_s": cpu,
        "spans": result.spans,
        "files": result.files,
        "corrupt": result.corrupt,
        "rows": _count(client, "SELECT count() FROM otel_traces"),
        "io_rows": _count(client, "SELECT count() FROM clew_io"),
        "runs": _count(client, "SELECT count() FROM clew_runs FINAL"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def task_multiply(db: str, copies: int) -> dict[str, Any]:
    """Copies 1..copies-1 of the spans that are there, with new ids, earlier in time."""
    from clew.exporter.store.rows import INSERT_COLUMNS
    from clew.exporter.store.connection import connect

    client = connect(f"chdb://{db}")
    first = client.query("SELECT toUnixTimestamp64Nano(min(Timestamp)) FROM otel_traces")
    first_ns = first.result_rows[0][0]
    columns = ", ".join(f"`{c}`" for c in INSERT_COLUMNS)
    seconds = []
    for copy in range(1, copies):
        new_trace = f"lower(hex(MD5(concat(TraceId, '/{copy}'))))"

        def new_span(column: str, copy: int = copy) -> str:
            digest = f"MD5(concat({column}, '/', TraceId, '/{copy}'))"
            return f"if({column} = '', '', lower(hex(substring({digest}, 1, 8))))"

        shift = copy * SHIFT_DAYS * 86_400 * 10**9
        select = {
            "Timestamp": f"fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) - {shift})",
            "TraceId": new_trace,
            "SpanId": new_span("SpanId"),
            "ParentSpanId": new_span("ParentSpanId"),
            # the run id (provenance.run.id, the run's output paths) follows the trace id
            "SpanAttributes": f"mapApply((k, v) -> (k, replaceAll(v, TraceId, {new_trace})), "
                              "SpanAttributes)",
        }
        expressions = ", ".join(select.get(c, f"`{c}`") for c in INSERT_COLUMNS)
        started = time.perf_counter()
        client.command(
            f"INSERT INTO otel_traces ({columns}) SELECT {expressions} FROM otel_traces "
            f"WHERE Timestamp >= fromUnixTimestamp64Nano(toInt64({first_ns}))"
        )
        seconds.append(time.perf_counter() - started)
    return {
        "seconds": seconds,
        "rows": _count(client, "SELECT count() FROM otel_traces"),
        "io_rows": _count(client, "SELECT count() FROM clew_io"),
        "runs": _count(client, "SELECT count() FROM clew_runs FINAL"),
        "distinct_spans": _count(client, "SELECT uniqExact(TraceId, SpanId) FROM otel_traces"),
    }


def task_disk(db: str) -> dict[str, Any]:
    from clew.exporter.store.connection import connect

    client = connect(f"chdb://{db}")
    tables = client.query(
        "SELECT table, count(), sum(rows), sum(data_compressed_bytes), "
        "sum(data_uncompressed_bytes), sum(bytes_on_disk) FROM system.parts "
        "WHERE active AND database = 'default' GROUP BY table ORDER BY table"
    ).result_rows
    return {
        name: {"parts": parts, "rows": rows, "compressed": compressed,
               "uncompressed": uncompressed, "on_disk": on_disk}
        for name, parts, rows, compressed, uncompressed, on_disk in tables
    }


def task_latency(db: str, uri: str, digest: str) -> dict[str, Any]:
    from clew.exporter.store.connection import connect
    from clew.query.runs import list_runs

    client = connect(f"chdb://{db}")

    def timed(call: Any) -> tuple[float, Any]:
        started = time.perf_counter()
        value = call()
        return time.perf_counter() - started, value

    lookups = {
        "uri": ("SELECT * FROM clew_io WHERE Uri = %(key)s ORDER BY Timestamp", uri),
        "digest": ("SELECT * FROM clew_io WHERE Digest = %(key)s ORDER BY Timestamp", digest),
    }
    answer: dict[str, Any] = {}
    first, runs = timed(lambda: list_runs(client))
    answer["list_runs"] = {"first": first, "times": [timed(lambda: list_runs(client))[0]
                                                     for _ in range(REPEAT)], "rows": len(runs)}
    for name, (sql, key) in lookups.items():
        def query(sql: str = sql, key: str = key) -> list[Any]:
            return client.query(sql, parameters={"key": key}).result_rows

        first, rows = timed(query)
        answer[name] = {"first": first, "times": [timed(query)[0] for _ in range(REPEAT)],
                        "rows": len(rows)}
    return answer


def task_phases(home: str, views: bool) -> dict[str, Any]:
    """The ingest's steps, one thread, timed: where the time goes."""
    from clickhouse_connect.driver._backend import chdb_backend

    from clew.exporter.store import ingest as ingest_module
    from clew.exporter.store import rows
    from clew.exporter.store.ingest import CHUNK_BYTES, prepare_store
    from clew.exporter.spool_files import spool_files
    from clew.exporter.store.connection import connect

    spent: Counter[str] = Counter()
    run = chdb_backend.ChdbBackend._run

    def engine(self: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return run(self, sql, *args, **kwargs)
        finally:
            spent["engine"] += time.perf_counter() - started

    chdb_backend.ChdbBackend._run = engine  # type: ignore[method-assign]
    db = Path(home) / "phases-db"
    shutil.rmtree(db, ignore_errors=True)
    client = connect(f"chdb://{db}")
    prepare_store(client)
    if not views:
        for view in ("clew_io_mv", "clew_runs_mv", "clew_run_io_mv"):
            client.command(f"DROP VIEW {view}")
    client.insert("clew_ingest_log", [["warm-up", 0, 0, 0, 1]],
                  column_names=["File", "Start", "End", "Spans", "Done"])  # import costs
    spent.clear()
    spans = 0
    block: list[tuple[Any, ...]] = []
    size = 0
    gc.disable()

    def insert() -> None:
        started, before = time.perf_counter(), spent["engine"]
        client.insert("otel_traces", block, column_names=rows.INSERT_COLUMNS)
        spent["insert (serialization)"] += time.perf_counter() - started - (
            spent["engine"] - before)
        block.clear()

    total = time.perf_counter()
    for path in spool_files(Path(home) / "spool"):
        started = time.perf_counter()
        data = path.read_bytes()
        lines = data.splitlines()
        spent["read"] += time.perf_counter() - started
        for raw in lines:
            started = time.perf_counter()
            request = ingest_module._loads(raw)
            parsed = time.perf_counter()
            rows.spans_to_rows(request, block)
            spent["parse"] += parsed - started
            spent["spans_to_rows"] += time.perf_counter() - parsed
        size += len(data)
        if size >= CHUNK_BYTES:
            spans += len(block)
            insert()
            size = 0
    spans += len(block)
    insert()
    spent["engine (insert into otel_traces and its views)"] = spent.pop("engine")
    spent["total"] = time.perf_counter() - total
    client.close()
    shutil.rmtree(db, ignore_errors=True)
    return {"spans": spans, "seconds": dict(spent)}


TASKS = {"ingest": task_ingest, "multiply": task_multiply, "disk": task_disk,
         "latency": task_latency, "phases": task_phases}


# --- the benchmark ------------------------------------------------------------------------


def generate(work: Path, size: str) -> tuple[Path, dict[str, Any]]:
    """The spool for `size` under `work`, generated unless it is there already."""
    spans, mix = SIZES[size]
    home = work / size
    summary_path = home / "synth.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if (summary["spans"], summary["runs"], summary.get("mix")) == (spans, RUNS, mix):
            print(f"{size}: reusing the spool in {home}", flush=True)
            return home, summary
    shutil.rmtree(home, ignore_errors=True)
    print(f"{size}: generating {spans:,} spans ...", flush=True)
    subprocess.run([sys.executable, str(HERE / "synth.py"), "--spans", str(spans), "--runs",
                    str(RUNS), "--mix", mix, "--home", str(home)], check=True,
                   stdout=subprocess.DEVNULL, env=_env())
    return home, json.loads(summary_path.read_text())


def multiply(work: Path, source: Path) -> tuple[Path, dict[str, Any]]:
    """The 10M store: the 1M store copied, then multiplied in ClickHouse."""
    home = work / "10m"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    # the 1M spool, all of it ingested (the ingest log comes with the store): `clew runs`
    # then checks the same 2,700 files for new lines as it would in real use
    (home / "spool").symlink_to(source / "spool")
    print("10m: copying the 1m store and multiplying it in ClickHouse ...", flush=True)
    shutil.copytree(source / "db", home / "db", symlinks=True)  # the engine links tables relatively
    made = _child("multiply", db=str(home / "db"), copies=COPIES)
    summary = json.loads((source / "synth.json").read_text())
    summary.update(spans=made["rows"], records=made["io_rows"], runs=made["runs"], bytes=0)
    return home, {**summary, "multiply": made}


def clew_cli(home: Path, *arguments: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / "clew"), "--home", str(home), *arguments], check=True,
                   capture_output=True, env=_env())
    return time.perf_counter() - started


def measure(home: Path, summary: dict[str, Any], ingest_runs: int) -> dict[str, Any]:
    found: dict[str, Any] = {"summary": summary}
    if "multiply" not in summary:
        runs = []
        for attempt in range(ingest_runs):
            print(f"  ingest {attempt + 1}/{ingest_runs} ...", flush=True)
            runs.append(_child("ingest", home=str(home)))
            print("   ", {k: round(v, 2) if isinstance(v, float) else v
                          for k, v in runs[-1].items()}, flush=True)
        found["ingest"] = runs
    db = str(home / "db")
    found["disk"] = _child("disk", db=db)
    found["latency"] = _child("latency", db=db, uri=summary["sample_uri"],
                              digest=summary["sample_digest"])
    clew_cli(home, "runs")  # warm the page cache once, as after any earlier use
    found["cli_runs"] = [clew_cli(home, "runs") for _ in range(REPEAT)]
    lookup = f"SELECT count() FROM clew_io WHERE Uri = '{summary['sample_uri']}'"
    found["cli_sql_uri"] = [clew_cli(home, "sql", lookup) for _ in range(REPEAT)]
    return found


# --- the report -----------------------------------------------------------------------------


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(f"{name} {metadata.version(name)}"
                         for name in ("chdb", "chdb-core", "clickhouse-connect", "orjson"))
    return (f"nproc {len(os.sched_getaffinity(0))}, {cpu}, RAM {ram:.1f} GiB, "
            f"CPython {platform.python_version()}, Linux {platform.release()}; {versions}")


def _commit() -> str:
    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True,
                              text=True, check=False).stdout.strip()

    dirty = git("status", "--porcelain", "--", "exporter", "query")
    return git("rev-parse", "--short", "HEAD") + (
        " with uncommitted changes to exporter/ or query/" if dirty else "")


def _s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _mb(value: float) -> str:
    return f"{value / 1e6:,.0f} MB" if value < 1e9 else f"{value / 1e9:,.2f} GB"


def report(found: dict[str, dict[str, Any]], phases: dict[str, Any] | None, command: str,
           started: dt.datetime, took: float, loads: tuple[tuple[float, ...], ...]) -> str:
    out = [
        f"## {command}",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min)",
        f"- machine: {_machine()}",
        f"- clew commit measured: {_commit()}",
        f"- load average (1, 5 min) before / after: {loads[0][0]:.2f}, {loads[0][1]:.2f} / "
        f"{loads[1][0]:.2f}, {loads[1][1]:.2f}. Two cores shared with other engineers' tests: "
        "wall times are noisy, CPU time (user+sys of the ingesting process, chDB's threads "
        "included) is steadier",
        f"- spool: `.venv/bin/python benchmarks/store/synth.py --spans N --runs {RUNS} "
        "--home DIR [--mix singles]` (seed 1); each ingest into a fresh "
        "`chdb://DIR/db` with `clew.exporter.store.ingest.ingest(client, DIR/spool)` (defaults: "
        "64 MiB per insert), in its own process; rate = spans / `IngestResult.seconds` "
        "(schema creation included, opening chDB not)",
        f"- 10M: the 1M store copied and multiplied x{COPIES} inside ClickHouse "
        "(`INSERT INTO otel_traces SELECT` with new ids, lineage views firing), not ingested "
        "from a spool; its spool would be ~25 GB and take ~13 min to generate here "
        "(1M: 2.5 GB, see the generate column)",
        f"- latencies: median of {REPEAT} after one first call, in one process that opened the "
        "store (`list_runs(client)`, 50 newest runs; lookups: `SELECT * FROM clew_io WHERE "
        "Uri = ...` / `WHERE Digest = ...` for a dataset file the middle run read and the "
        "digest of an earlier run's output it read); `clew runs` and `clew sql` end to end: "
        f"`.venv/bin/clew --home DIR runs` (median of {REPEAT}, after one warm-up), which "
        "starts Python, opens chDB, checks the spool for new lines (none) and prints the table",
        "",
        "| spool | spans | I/O records | runs | spool size | generate | ingest (median, min-max) "
        "| spans/s | records/s | CPU | peak RSS | target >= 100k spans/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, item in found.items():
        summary = item["summary"]
        if "ingest" in item:
            runs = item["ingest"]
            secs = [r["ingest_s"] for r in runs]
            median = statistics.median(secs)
            middle = sorted(runs, key=lambda r: r["ingest_s"])[len(runs) // 2]
            assert all(r["spans"] == summary["spans"] and r["io_rows"] == summary["records"]
                       for r in runs), runs
            spans_s = summary["spans"] / median
            out.append(
                f"| {size} | {summary['spans']:,} | {summary['records']:,} | {summary['runs']:,} "
                f"| {_mb(summary['bytes'])} | {summary['seconds']:.0f} s "
                f"| {median:.1f} s ({min(secs):.1f}-{max(secs):.1f}, {len(secs)} runs) "
                f"| {spans_s:,.0f} | {summary['records'] / median:,.0f} "
                f"| {middle['cpu_s']:.0f} s | {middle['peak_rss_mb']:,.0f} MB "
                f"| {'pass' if spans_s >= 100_000 else '**FAIL**'} |")
        else:
            made = summary["multiply"]
            secs = sum(made["seconds"])
            out.append(
                f"| {size} (1m x{COPIES}) | {summary['spans']:,} | {summary['records']:,} "
                f"| {summary['runs']:,} | - | - | {secs:.0f} s for {COPIES - 1} copies in "
                f"ClickHouse | {(made['rows'] * (COPIES - 1) / COPIES) / secs:,.0f} (INSERT SELECT, "
                "no Python) | - | - | - | - |")
    out += [
        "",
        "Bytes on disk (`system.parts`, active parts as the ingest left them, before any "
        "`OPTIMIZE`): `data_compressed_bytes` (the columns) and `bytes_on_disk` (columns, "
        "marks and skip indexes: otel_traces' text indexes are most of the difference) of "
        "otel_traces per span and of clew_io per I/O record; all = `bytes_on_disk` of every "
        "table (the lineage tables and the ingest log too) per span.",
        "",
        "| store | otel_traces per span: compressed / on disk | clew_io per record: compressed "
        "/ on disk | clew_io per span | all tables per span | uncompressed per span: "
        "otel_traces / clew_io | parts (otel_traces, clew_io) |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, item in found.items():
        disk = item["disk"]
        traces, io = disk["otel_traces"], disk["clew_io"]
        spans = traces["rows"]
        every = sum(t["on_disk"] for t in disk.values())
        out.append(
            f"| {size} | {traces['compressed'] / spans:,.0f} B / {traces['on_disk'] / spans:,.0f} B "
            f"| {io['compressed'] / io['rows']:,.0f} B / {io['on_disk'] / io['rows']:,.0f} B "
            f"| {io['on_disk'] / spans:,.0f} B | {every / spans:,.0f} B "
            f"| {traces['uncompressed'] / spans:,.0f} B / {io['uncompressed'] / spans:,.0f} B "
            f"| {traces['parts']}, {io['parts']} |")
    out += [
        "",
        f"Latency (target < 1 s each; median of {REPEAT}, first call in brackets):",
        "",
        "| store | `list_runs` | `clew runs` end to end | clew_io by URI (rows) "
        "| clew_io by digest (rows) | `clew sql` URI lookup end to end | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, item in found.items():
        latency = item["latency"]
        cells, worst = [], 0.0
        for name in ("list_runs", "uri", "digest"):
            median = statistics.median(latency[name]["times"])
            worst = max(worst, median)
            rows = f" ({latency[name]['rows']:,} rows)" if name != "list_runs" else ""
            cells.append(f"{_s(median)} [{_s(latency[name]['first'])}]{rows}")
        cli = statistics.median(item["cli_runs"])
        sql = statistics.median(item["cli_sql_uri"])
        worst = max(worst, cli)
        out.append(f"| {size} | {cells[0]} | {_s(cli)} ({_s(min(item['cli_runs']))}-"
                   f"{_s(max(item['cli_runs']))}) | {cells[1]} | {cells[2]} | {_s(sql)} "
                   f"| {'pass' if worst < 1 else '**FAIL**'} |")
    if phases:
        out += [
            "",
            f"Where the ingest's time goes ({phases['size']} spool, `--phases`: the ingest's "
            "steps in one thread, no overlap, each timed; the real ingest converts the next "
            "insert's rows in a thread while chDB inserts):",
            "",
            "| step | with clew's lineage views | without them (otel_traces and the Collector's "
            "trace-id view only) |",
            "|---|---|---|",
        ]
        with_views, without = (phases[k]["seconds"] for k in ("views", "no_views"))
        for step in with_views:
            out.append(f"| {step} | {with_views[step]:.1f} s | {without.get(step, 0):.1f} s |")
        out.append(f"| spans/s, single thread | {phases['views']['spans'] / with_views['total']:,.0f} "
                   f"| {phases['no_views']['spans'] / without['total']:,.0f} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k,1m,1m-singles,10m",
                        help=f"comma-separated, of {', '.join(SIZES)} (10m needs 1m)")
    parser.add_argument("--ingest-runs", type=int, default=3, help="ingests of each spool")
    parser.add_argument("--phases", default="1m", help="spool for the step timing, or none")
    parser.add_argument("--work", type=Path, default=BENCH / ".work" / "store",
                        help="spools and stores (1M: ~3.5 GB, 10M store: ~6 GB more)")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if unknown := set(sizes) - set(SIZES):
        parser.error(f"unknown sizes: {sorted(unknown)}")
    if "10m" in sizes and "1m" not in sizes:
        parser.error("10m is made from the 1m store: give 1m too")
    started, clock, load_before = dt.datetime.now(dt.timezone.utc), time.perf_counter(), os.getloadavg()
    args.work = args.work.absolute()  # chdb:// URLs need absolute paths
    args.work.mkdir(parents=True, exist_ok=True)
    found: dict[str, dict[str, Any]] = {}
    for size in sizes:
        if size == "10m":
            home, summary = multiply(args.work, args.work / "1m")
            found[size] = measure(home, summary, 0)
        else:
            home, summary = generate(args.work, size)
            found[size] = measure(home, summary, args.ingest_runs)
        # every measurement, for a closer look than the report's medians
        (args.work / "measured.json").write_text(json.dumps(found, indent=1, default=str))
    phases = None
    if args.phases != "none":
        home, _ = generate(args.work, args.phases)
        print(f"phases on {args.phases} ...", flush=True)
        phases = {"size": args.phases,
                  "views": _child("phases", home=str(home), views=True),
                  "no_views": _child("phases", home=str(home), views=False)}
    command = ".venv/bin/python benchmarks/store/run.py " + " ".join(sys.argv[1:])
    section = report(found, phases, command.strip(), started, time.perf_counter() - clock,
                     (load_before, os.getloadavg()))
    print(section)
    if not args.no_write:
        write_section(section, MARKER)
        print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(TASKS[sys.argv[2]](**json.loads(sys.argv[3]))))
    else:
        main()
