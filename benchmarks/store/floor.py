"""clew's ingest against its floor: chDB inserting the same rows, already converted.

The floor is what any ingest into these tables must pay: chDB's own insert of the spool's
rows into otel_traces with the Collector's and clew's materialized views. The spool that
store/run.py makes (`synth.py`, reused under `--work`) is converted once by clew's own
code (`ingest._batches`, the chunks of 64 MiB of spool that one of clew's inserts takes, and
`rows.spans_to_rows`), and each chunk's rows are written by chDB in its Native format, one
file per insert. Native because it is chDB's own block format, and the one clew's insert
already hands it: clickhouse-connect serializes the rows to Native, writes them to a file and
runs `INSERT ... FROM INFILE ... FORMAT Native` (its chDB backend); the floor runs the same
statements on files that are already there, so the difference is exactly clew's work.
(clew makes the Native bytes in its conversion thread, `ingest._Encoder`, and hands them to
chDB the same way; its own ingest also makes its first and last batches smaller, so that less
of it runs without conversion and insert overlapping: the floor keeps the four full batches,
the fewest inserts.)

Then, alternating and each in a fresh process and a fresh store: the floor (`prepare_store`,
then one `INSERT INTO otel_traces (...) FROM INFILE 'chunk-N.native' FORMAT Native` per
chunk) and `ingest(client, spool)` (store/run.py's ingest task: what `clew ingest` runs).
Both are timed from before the tables are created to the end; clew's time also holds its
ingest log and the links it keeps at the end (links.py), which the floor does not do.
Then, unless `--no-profile`, one more ingest runs under py-spy (every thread): where its
time goes.

Usage (the results go between this benchmark's markers in benchmarks/RESULTS.md):

    .venv/bin/pip install py-spy                                  # once, for the profile
    .venv/bin/python benchmarks/store/floor.py                   # 100k spool, 9 pairs, profile: ~5 min
    .venv/bin/python benchmarks/store/floor.py --pairs 3 --no-write --no-profile
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as store  # noqa: E402 - benchmarks/store/run.py: the spool, the ingest task
from results import RESULTS, write_section  # noqa: E402 - benchmarks/results.py

MARKER = "store/floor.py"
TARGET = 0.8


def _child(task: str, **arguments: Any) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", task, json.dumps(arguments)],
        capture_output=True, text=True, env=store._env(), check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{task} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def task_native(home: str) -> dict[str, Any]:
    """The spool's rows, converted by clew once, one Native file per insert clew makes."""
    from clew.exporter.spool_files import spool_sizes
    from clew.exporter.store.connection import connect
    from clew.exporter.store.ingest import CHUNK_BYTES, _batches, prepare_store
    from clew.exporter.store.rows import INSERT_COLUMNS

    spool, out = Path(home) / "spool", Path(home) / "native"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    db = Path(home) / "native-db"
    shutil.rmtree(db, ignore_errors=True)
    client = connect(f"chdb://{db}")
    prepare_store(client)  # for the column types, as the tables declare them
    columns = ", ".join(f"`{c}`" for c in INSERT_COLUMNS)
    client.command(f"CREATE TABLE scratch ENGINE = Memory AS SELECT {columns} "
                   "FROM otel_traces LIMIT 0")
    offsets = {spool / name: 0 for name in spool_sizes(spool)}
    spans = 0
    files = []
    for number, batch in enumerate(_batches(offsets, CHUNK_BYTES)):
        block = [row for _, chunk in batch for row in chunk.rows]
        client.insert("scratch", block, column_names=INSERT_COLUMNS)
        path = out / f"chunk-{number:03d}.native"
        client.command(f"INSERT INTO FUNCTION file('{path}', 'Native') SELECT * FROM scratch")
        client.command("TRUNCATE TABLE scratch")
        spans += len(block)
        files.append(str(path))
    client.close()
    shutil.rmtree(db, ignore_errors=True)
    return {"spans": spans, "files": files,
            "bytes": sum(Path(f).stat().st_size for f in files)}


def task_floor(home: str, files: list[str]) -> dict[str, Any]:
    """chDB inserting the Native files into a fresh store with clew's tables and views."""
    from clew.exporter.store.connection import connect
    from clew.exporter.store.ingest import prepare_store
    from clew.exporter.store.rows import INSERT_COLUMNS

    db = Path(home) / "db"
    shutil.rmtree(db, ignore_errors=True)
    client = connect(f"chdb://{db}")
    columns = ", ".join(f"`{c}`" for c in INSERT_COLUMNS)
    cpu = store._cpu()
    started = time.perf_counter()
    prepare_store(client)
    for path in files:
        client.command(f"INSERT INTO otel_traces ({columns}) FROM INFILE '{path}' FORMAT Native")
    seconds = time.perf_counter() - started
    cpu = store._cpu() - cpu
    return {"ingest_s": seconds, "cpu_s": cpu,
            "rows": store._count(client, "SELECT count() FROM otel_traces"),
            "io_rows": store._count(client, "SELECT count() FROM clew_io"),
            "runs": store._count(client, "SELECT count() FROM clew_runs FINAL")}


TASKS = {"native": task_native, "floor": task_floor}


def profile(home: Path, out: Path) -> dict[str, Any]:
    """One ingest under py-spy (every thread, 200 samples/s): samples per phase and the
    functions that hold them."""
    raw = out / "ingest.pyspy"
    subprocess.run(
        [str(store.BIN / "py-spy"), "record", "--threads", "--rate", "200", "--format", "raw",
         "--output", str(raw), "--", sys.executable, str(HERE / "run.py"), "--child", "ingest",
         json.dumps({"home": str(home)})],
        check=True, capture_output=True, env=store._env())
    phases: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        phases[_phase(frames)] += int(count)
        leaves[frames[-1]] += int(count)
    return {"phases": dict(phases), "leaves": dict(leaves.most_common(15))}


# The first frame, from the top of a stack, that says which step of the ingest a sample is in.
_PHASES = (
    ("_read_chunks", "_loads", "parse (orjson)"),
    ("_read_chunks", "spans_to_rows", "convert (rows.spans_to_rows)"),
    ("_read_chunks", "", "read and split lines"),
    ("_batches", "", "read and split lines"),
    ("_insert", "query", "chDB engine: insert into otel_traces and views"),
    ("_insert", "", "clickhouse-connect: rows to Native"),
    ("native", "", "clickhouse-connect: rows to Native"),  # _Encoder, in the conversion thread
    ("link", "", "links kept at the end (links.py)"),
    ("prepare_store", "", "create tables"),
    ("_unlink", "", "unlink runs, ingest log"),
    ("_log", "", "unlink runs, ingest log"),
)


def _phase(frames: list[str]) -> str:
    # py-spy names a method by its class too (`_Ingester._insert`)
    names = [frame.split(" (")[0].rsplit(".", 1)[-1] for frame in frames]
    for outer, inner, phase in _PHASES:
        if outer in names:
            rest = names[names.index(outer):]
            if not inner or inner in rest:
                return phase
    if any("clew-ingest" in frame or "_worker" in frame for frame in frames[:3]):
        return "conversion thread, waiting"
    return "other: start-up, imports, removing the last store (mostly before the timed part)"


def report(found: dict[str, Any], command: str, started: dt.datetime, took: float,
           loads: tuple[tuple[float, ...], ...]) -> str:
    summary, native = found["summary"], found["native"]
    pairs = found["pairs"]
    floor_s = [p["floor"]["ingest_s"] for p in pairs]
    clew_s = [p["clew"]["ingest_s"] for p in pairs]
    ratios = [f / c for f, c in zip(floor_s, clew_s)]
    ratio = statistics.median(ratios)
    spans = summary["spans"]
    cpu_floor = statistics.median(p["floor"]["cpu_s"] for p in pairs)
    cpu_clew = statistics.median(p["clew"]["cpu_s"] for p in pairs)
    out = [
        f"## {command}",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min)",
        f"- machine: {store._machine()}",
        f"- clew commit measured: {store._commit()}",
        f"- load average (1, 5 min) before / after: {loads[0][0]:.2f}, {loads[0][1]:.2f} / "
        f"{loads[1][0]:.2f}, {loads[1][1]:.2f}, on 2 cores shared with other engineers' work",
        f"- spool: `{found['size']}` of store/run.py ({spans:,} spans, {summary['records']:,} I/O "
        f"records, {summary['files']:,} files, {store._mb(summary['bytes'])}); rows: converted "
        f"once by clew (`ingest._batches`, `rows.spans_to_rows`) into {len(native['files'])} "
        f"Native files, one per insert clew makes ({store._mb(native['bytes'])})",
        "- floor: a fresh `chdb://` store, `prepare_store`, then `INSERT INTO otel_traces (...) "
        "FROM INFILE 'chunk-N.native' FORMAT Native` per file (the statement clickhouse-connect's "
        "chDB backend runs for clew's inserts); clew: `ingest(client, spool)` into a fresh "
        "store, as `clew ingest` runs it (ingest log and kept links included); each in its own "
        f"process, alternating ({len(pairs)} pairs, the order swapped every pair); CPU: user+sys "
        "of that process, chDB's threads included",
        "",
        "| | seconds (median, min-max) | spans/s | CPU (median) |",
        "|---|---|---|---|",
        f"| floor: chDB inserts the Native rows | {statistics.median(floor_s):.2f} s "
        f"({min(floor_s):.2f}-{max(floor_s):.2f}) | {spans / statistics.median(floor_s):,.0f} "
        f"| {cpu_floor:.1f} s |",
        f"| clew ingest of the spool | {statistics.median(clew_s):.2f} s "
        f"({min(clew_s):.2f}-{max(clew_s):.2f}) | {spans / statistics.median(clew_s):,.0f} "
        f"| {cpu_clew:.1f} s |",
        "",
        f"clew / floor, rate (floor seconds / clew seconds, per pair, median): **{ratio:.2f}** "
        f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)}); CPU: floor / clew "
        f"{cpu_floor / cpu_clew:.2f}. Target >= {TARGET}: "
        f"{'pass' if ratio >= TARGET else '**FAIL**'}.",
    ]
    if "profile" in found:
        phases = found["profile"]["phases"]
        total = sum(phases.values())
        out += [
            "",
            "Where one more clew ingest's time goes (py-spy, every thread, 200 samples/s: a "
            "sample of each thread that runs; the conversion thread overlaps the main "
            "thread's insert):",
            "",
            "| step | samples | share |",
            "|---|---|---|",
        ]
        for phase, count in sorted(phases.items(), key=lambda item: -item[1]):
            out.append(f"| {phase} | {count:,} | {count / total:.0%} |")
        out += ["", "The functions the samples end in (most first): " + "; ".join(
            f"`{name}` {count:,}" for name, count in found["profile"]["leaves"].items()) + "."]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="100k", choices=[s for s in store.SIZES if s != "10m"])
    parser.add_argument("--pairs", type=int, default=9, help="alternating floor/clew pairs")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--work", type=Path, default=store.BENCH / ".work" / "store")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    started, clock, load_before = dt.datetime.now(dt.timezone.utc), time.perf_counter(), os.getloadavg()
    args.work = args.work.absolute()
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.no_profile and not (store.BIN / "py-spy").exists():
        parser.error(f"the profile needs py-spy: {store.BIN / 'pip'} install py-spy "
                     "(or pass --no-profile)")
    home, summary = store.generate(args.work, args.size)
    print("converting the spool to Native files ...", flush=True)
    native = _child("native", home=str(home))
    found: dict[str, Any] = {"size": args.size, "summary": summary, "native": native,
                             "pairs": []}
    for number in range(args.pairs):
        pair: dict[str, Any] = {}
        order = ("floor", "clew") if number % 2 == 0 else ("clew", "floor")
        for which in order:
            if which == "floor":
                pair["floor"] = _child("floor", home=str(home), files=native["files"])
            else:
                pair["clew"] = store._child("ingest", home=str(home))
            measured = pair[which]
            assert (measured["rows"], measured["io_rows"]) == (summary["spans"],
                                                                summary["records"]), measured
        print(f"  pair {number + 1}/{args.pairs}: floor {pair['floor']['ingest_s']:.2f} s, "
              f"clew {pair['clew']['ingest_s']:.2f} s", flush=True)
        found["pairs"].append(pair)
    if not args.no_profile:
        print("profiling one ingest ...", flush=True)
        found["profile"] = profile(home, args.work)
    (args.work / "floor.json").write_text(json.dumps(found, indent=1))
    command = ".venv/bin/python benchmarks/store/floor.py " + " ".join(sys.argv[1:])
    section = report(found, command.strip(), started, time.perf_counter() - clock,
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
