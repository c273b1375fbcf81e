"""Lineage, impact and diff latency on a store of 10M spans and 1,000 runs.

Targets: `clew lineage` of a model over 10M spans and 1,000 runs in < 1 s; `clew diff` of
two runs of 100,000 inputs each in < 2 s.

The store (built once under `--work`, then reused; 25 GB of spool, 7 GB of store, about
50 min here: 21 min to generate, 27 to ingest): `synth.py --spans 10000000 --runs 1000 --lanes 100 --diff-inputs 100000`,
ingested by clew's own ingest in a child process (`run.py`'s ingest task). With 100 lanes
the 1,000 runs form 100 pipelines of 10 runs, each reading what the previous run of its
pipeline published (besides 1-2 of 40 shared datasets), so the model (an output of the last
run) has a lineage 10 runs deep. `--diff-inputs` adds two runs of one program that read
100,000 files each, 1 % changed, 1 % removed and 1 % added from the first to the second,
rewrite the same 100 outputs and differ in one argument. Everything passes through
otel_traces and clew's materialized views as in a real ingest.

Each API measurement runs in a fresh process that opens the store (chDB: one process per
store): cold = the first call in that process (chDB's caches empty, the OS page cache as
earlier runs left it), warm = the median of the next REPEAT calls. Every `client.query` is
timed, so the section shows which statements take the time. The CLI is timed end to end
(`clew --home H lineage URI --format json`, stdout to /dev/null): Python start-up, chDB
open, the no-op spool check, the walk and the JSON. A call still running after `--timeout`
seconds is killed and reported as such (with the queries it had finished), and a failed or
killed call is not repeated.

`--module PATH` also measures a modified copy of `query/lineage.py` (API and CLI), e.g.
the fix suggested in RESULTS.md. `--home DIR` measures another synth.py home (made with
`--lanes` and `--diff-inputs`, ingested into DIR/db), for a quick look.

Usage (writes between this benchmark's markers in benchmarks/RESULTS.md):

    .venv/bin/python benchmarks/store/lineage.py   # ~30 min + the store
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib.util
import json
import os
import re
import resource
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
import run as store  # run.py's helpers: child env, machine line, RESULTS.md

SPANS, RUNS, LANES, DIFF_INPUTS = 10_000_000, 1000, 100, 100_000
REPEAT = 3
MARKER = "store/lineage.py"
# Run with a module override: the CLI with a copy of query/lineage.py in its place.
_CLI_WITH_MODULE = """import importlib.util, sys
spec = importlib.util.spec_from_file_location("clew.query.lineage", sys.argv.pop(1))
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
from clew.query.cli import entry_point
sys.exit(entry_point())
"""


# --- child processes -------------------------------------------------------------------------


def _label(sql: str) -> str:
    """A short name for one of lineage.py's or diff.py's statements."""
    known = (
        (r"clew_runs FINAL WHERE RunId IN", "run nodes (clew_runs, clew_run_io)"),
        (r"clew_links FINAL", "kept candidates and marks (clew_links)"),
        (r"clew_run_inputs FINAL", "kept inputs per directory (clew_run_inputs)"),
        (r"SELECT RunId, replaceRegexpOne", "inputs or outputs per directory, grouped now"),
        (r"count\(\) > 0 FROM .*Inserted >=", "any write newer than the kept candidates?"),
        (r"Inserted >=", "inputs matched to newer writes"),
        (r"sipHash64\(Digest\) IN \(SELECT DigestKey", "inputs matched to every write"),
        (r"max\(Size\)", "outputs that were read, by value"),
        (r"SELECT DISTINCT RunId, toUnixTimestamp64Nano.* DigestKey IN", "writes by digest"),
        (r"SELECT DISTINCT RunId, toUnixTimestamp64Nano.* Uri IN", "writes by URI"),
        (r"max\(ProducerRunId\)", "reads of artifacts (readers)"),
        (r"groupUniqArrayIf", "inputs/outputs compared (GROUP BY Uri)"),
        (r"SELECT DISTINCT Uri", "URIs of both runs"),
        (r"clew_runs FINAL WHERE RunId =", "run row (clew_runs)"),
        (r"startsWith\(RunId", "run id prefix"),
    )
    flat = " ".join(sql.split()).replace("`", "")
    for pattern, name in known:
        if re.search(pattern, flat):
            return name
    return flat[:48]


def _timed(client: Any, log: Path) -> list[dict[str, Any]]:
    """Time every `client.query` (statement, rows, values bound) into a list, and append
    each to `log` as it finishes, so a killed call still leaves its profile."""
    calls: list[dict[str, Any]] = []
    query = client.query

    def timed(sql: str, *args: Any, **kwargs: Any) -> Any:
        parameters = kwargs.get("parameters") or {}
        call = {"label": _label(sql), "rows": 0,
                "values": sum(len(v) for v in parameters.values() if isinstance(v, list))}
        started = time.perf_counter()
        try:
            result = query(sql, *args, **kwargs)
            call["rows"] = len(result.result_rows)  # fetched here (then cached): counts as SQL
        except Exception:
            call["label"] += " (raised)"
            raise
        finally:
            call["seconds"] = time.perf_counter() - started
            calls.append(call)
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(call) + "\n")
        return result

    client.query = timed
    return calls


def _done(log: str, seconds: float) -> None:
    """Tell the parent a call finished (it kills a child whose call runs too long)."""
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"done": seconds}) + "\n")


def _module(path: str | None) -> Any:
    if not path:
        from clew.query import lineage
        return lineage
    spec = importlib.util.spec_from_file_location("clew.query._lineage_variant", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _shape(graph: Any, upstream: bool) -> dict[str, Any]:
    """Nodes, edges, runs, and how many runs deep the graph goes from its root (shortest
    directed path, counted in runs)."""
    step: dict[str, list[str]] = {}
    for edge in graph.edges:
        here, there = (edge.target, edge.source) if upstream else (edge.source, edge.target)
        step.setdefault(here, []).append(there)
    runs = {node.id for node in graph.nodes if node.kind == "run"}
    depth, frontier, seen, level = 0, [graph.root], {graph.root}, 0
    while frontier:
        level += 1
        following = []
        for node in frontier:
            for other in step.get(node, ()):
                if other not in seen:
                    seen.add(other)
                    following.append(other)
                    if other in runs:
                        depth = max(depth, (level + 1) // 2)
        frontier = following
    return {"nodes": len(graph.nodes), "edges": len(graph.edges), "runs": len(runs),
            "depth": depth}


def task_graph(db: str, walk: str, key: str, module: str | None, log: str) -> dict[str, Any]:
    """`lineage` or `impact` of `key`: the first call, then REPEAT more."""
    from clew.exporter.store.connection import connect

    lineage = _module(module)
    client = connect(f"chdb://{db}")
    calls = _timed(client, Path(log))
    # "lineage --all-files": every raw input its own node, as `clew lineage --all-files`
    name, *flags = walk.split()
    function = getattr(lineage, name)
    if "--all-files" in flags:
        function = functools.partial(function, group_above=None)
    answer: dict[str, Any] = {"times": []}
    for attempt in range(REPEAT + 1):
        calls.clear()
        started = time.perf_counter()
        try:
            graph = function(client, key)
        except Exception as error:  # noqa: BLE001 (the call's failure is the result)
            answer["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
            answer["error_after"] = time.perf_counter() - started
            answer["calls"] = list(calls)
            break
        seconds = time.perf_counter() - started
        _done(log, seconds)
        if attempt == 0:
            answer.update(first=seconds, first_calls=list(calls),
                          **_shape(graph, walk.startswith("lineage")))
        else:
            answer["times"].append(seconds)
            answer["calls"] = list(calls)
    answer["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return answer


def task_diff(db: str, run_a: str, run_b: str, expected: dict[str, int],
              log: str) -> dict[str, Any]:
    """`diff(b, a)`, first call and REPEAT more; the changes checked against `expected`."""
    from clew.exporter.store.connection import connect
    from clew.query.diff import diff

    client = connect(f"chdb://{db}")
    calls = _timed(client, Path(log))
    answer: dict[str, Any] = {"times": []}
    for attempt in range(REPEAT + 1):
        calls.clear()
        started = time.perf_counter()
        result = diff(client, run_b, run_a)
        seconds = time.perf_counter() - started
        _done(log, seconds)
        found = Counter(change.section for change in result.changes)
        kinds = Counter(f"{c.section} {c.kind}" for c in result.changes)
        # the benchmark's own check: the known answer, or no timing at all
        assert dict(found) == expected, (found, expected)
        third = expected["input"] // 3
        assert [kinds[f"input {k}"] for k in ("added", "removed", "changed")] == [third] * 3, kinds
        if attempt == 0:
            answer.update(first=seconds, first_calls=list(calls), changes=dict(kinds))
        else:
            answer["times"].append(seconds)
            answer["calls"] = list(calls)
    return answer


def task_dataset(db: str, run: str, log: str) -> dict[str, Any]:
    """A raw dataset file the run `run` read (the first by URI), and how many runs read it."""
    from clew.exporter.store.connection import connect

    client = connect(f"chdb://{db}")
    ((uri,),) = client.query(
        "SELECT min(Uri) FROM clew_io WHERE RunId = %(run)s AND Operation = 'read' "
        "AND Uri LIKE 'file://%%/data/dataset-%%/shard-%%'", parameters={"run": run}).result_rows
    ((readers,),) = client.query("SELECT uniqExact(RunId) FROM clew_io WHERE Uri = %(uri)s",
                                 parameters={"uri": uri}).result_rows
    return {"uri": uri, "readers": readers}


TASKS = {"graph": task_graph, "diff": task_diff, "dataset": task_dataset}


# --- the benchmark ---------------------------------------------------------------------------


def _child(work: Path, task: str, timeout: float, **arguments: Any) -> dict[str, Any]:
    """Run `task` in a fresh interpreter; its answer, or, if one of its calls ran longer
    than `timeout` seconds and it was killed, the calls it had finished."""
    log = work / "calls.jsonl"
    log.unlink(missing_ok=True)
    log.touch()
    command = [sys.executable, __file__, "--child", task,
               json.dumps({**arguments, "log": str(log)})]
    loads = os.getloadavg()[0]
    with open(work / "child.out", "w+") as out, open(work / "child.err", "w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=store._env())
        last, done = time.perf_counter(), 0
        while child.poll() is None:
            time.sleep(0.5)
            lines = [json.loads(line) for line in log.read_text().splitlines()]
            if sum("done" in line for line in lines) > done:
                last, done = time.perf_counter(), sum("done" in line for line in lines)
            elif time.perf_counter() - last > timeout:
                child.kill()
                child.wait()
                since = max((i + 1 for i, line in enumerate(lines) if "done" in line), default=0)
                return {"timeout": timeout, "load": (loads, os.getloadavg()[0]),
                        "completed": [line["done"] for line in lines if "done" in line],
                        "calls": lines[since:]}  # those of the call that was killed
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(f"{task} failed:\n{err.read()[-4000:]}")
        return {**json.loads(out.read().strip().splitlines()[-1]),
                "load": (loads, os.getloadavg()[0])}


def _cli(home: Path, arguments: list[str], module: str | None, timeout: float,
         repeat: int) -> dict[str, Any]:
    """`clew --home HOME ...` end to end: the first call, then `repeat` more; stdout to
    /dev/null (a big graph is hundreds of MB of JSON)."""
    program = ([sys.executable, "-c", _CLI_WITH_MODULE, module] if module
               else [str(store.BIN / "clew")])
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        try:
            done = subprocess.run([*program, "--home", str(home), *arguments],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  env=store._env(), timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"timeout": timeout, "times": times}
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1][:160],
                    "error_after": time.perf_counter() - started, "times": times}
        times.append(time.perf_counter() - started)
    return {"first": times[0], "times": times[1:]}


def build(work: Path) -> tuple[Path, dict[str, Any]]:
    """The store: generated and ingested unless `work` holds it already."""
    home = work / f"10m-{RUNS}"
    summary_path = home / "synth.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    made = (summary.get("spans", 0) >= SPANS, summary.get("runs"), summary.get("lanes"),
            summary.get("diff", {}).get("inputs"))
    if made != (True, RUNS, LANES, DIFF_INPUTS):
        shutil.rmtree(home, ignore_errors=True)
        print(f"generating {SPANS:,} spans in {RUNS} runs under {home} (~20 min) ...", flush=True)
        subprocess.run([sys.executable, str(HERE / "synth.py"), "--spans", str(SPANS),
                        "--runs", str(RUNS), "--lanes", str(LANES), "--diff-inputs",
                        str(DIFF_INPUTS), "--home", str(home)],
                       check=True, stdout=subprocess.DEVNULL, env=store._env())
        summary = json.loads(summary_path.read_text())
    ingested = home / "ingested.json"
    if not ingested.exists():
        print("ingesting (~30 min) ...", flush=True)
        made = store._child("ingest", home=str(home))
        assert made["spans"] == summary["spans"], (made, summary["spans"])
        ingested.write_text(json.dumps(made, indent=1))
    else:
        print(f"reusing the store in {home}", flush=True)
    return home, _described(home, summary)


def _described(home: Path, summary: dict[str, Any]) -> dict[str, Any]:
    ingested = home / "ingested.json"
    return {**summary, "disk": store._child("disk", db=str(home / "db")),
            "ingest": json.loads(ingested.read_text()) if ingested.exists() else None}


def measure(work: Path, home: Path, summary: dict[str, Any], modules: list[str | None],
            only: set[str], timeout: float) -> dict[str, Any]:
    db = str(home / "db")
    found: dict[str, Any] = {"graphs": [], "diff": None}
    dataset = _child(work, "dataset", timeout, db=db, run=summary["model_run_id"])
    found["dataset"] = dataset
    keys = {"lineage": summary["model_uri"], "lineage --all-files": summary["model_uri"],
            "impact": dataset["uri"]}
    for module in modules if "lineage" in only else []:
        for walk, key in keys.items():
            print(f"{walk} {key} ({module or 'query/lineage.py'}) ...", flush=True)
            api = _child(work, "graph", timeout, db=db, walk=walk, key=key, module=module)
            cli = None
            if "first" in api and "error" not in api:
                cli = _cli(home, [*walk.split(), key, "--format", "json"], module, timeout,
                           REPEAT)
            found["graphs"].append({"walk": walk, "key": key, "module": module, "api": api,
                                    "cli": cli})
            print("   ", _brief(api), _brief(cli or {}), flush=True)
    if "diff" in only:
        pair = summary["diff"]
        print("diff ...", flush=True)
        api = _child(work, "diff", timeout, db=db, run_a=pair["run_a"], run_b=pair["run_b"],
                     expected=pair["expected"])
        cli = _cli(home, ["diff", pair["run_a"], pair["run_b"], "--format", "json"], None,
                   timeout, REPEAT)
        found["diff"] = {"api": api, "cli": cli, **pair}
        print("   ", _brief(api), _brief(cli), flush=True)
    return found


def _brief(item: dict[str, Any]) -> str:
    if "timeout" in item:
        return f"killed after {item['timeout']:.0f} s"
    if "error" in item:
        return f"{item['error']} after {item['error_after']:.1f} s"
    if "first" not in item:
        return "-"
    return f"first {item['first']:.2f} s, then {[round(t, 2) for t in item['times']]}"


# --- the report ------------------------------------------------------------------------------


def _timing(item: dict[str, Any] | None) -> tuple[str, str]:
    """(cold, warm median with min-max) cells."""
    if item is None:
        return "not run", "not run"
    if "timeout" in item:
        killed = f"**killed: a call ran over {item['timeout']:.0f} s**"
        if item.get("completed"):
            return store._s(item["completed"][0]), killed
        return killed, "-"
    if "error" in item:
        return f"**failed after {store._s(item['error_after'])}**", "-"
    times = item["times"]
    return (store._s(item["first"]),
            f"{store._s(statistics.median(times))} ({store._s(min(times))}-"
            f"{store._s(max(times))})")


def _profile(calls: list[dict[str, Any]], total: float | None) -> list[str]:
    """Rows of a per-statement table, and the rest (Python) if the total is known."""
    by: dict[str, list[float]] = {}
    for call in calls:
        entry = by.setdefault(call["label"], [0, 0.0, 0, 0])
        entry[0] += 1
        entry[1] += call["seconds"]
        entry[2] += call["rows"]
        entry[3] = max(entry[3], call["values"])
    rows = [f"| {label} | {n} | {store._s(seconds)} | {rows:,} | {values:,} |"
            for label, (n, seconds, rows, values) in sorted(by.items(), key=lambda i: -i[1][1])]
    sql = sum(call["seconds"] for call in calls)
    if total is not None:
        rows.append(f"| *the rest: Python* | | {store._s(total - sql)} "
                    "| | |")
    return rows


def report(store_summary: dict[str, Any], found: dict[str, Any], command: str,
           started: dt.datetime, took: float, loads: list[float]) -> str:
    ingest, disk = store_summary["ingest"], store_summary["disk"]
    on_disk = sum(t["on_disk"] for t in disk.values())
    took_ingest = f" in {ingest['ingest_s'] / 60:.0f} min" if ingest else ""
    lanes = store_summary["lanes"]
    per_lane = store_summary["runs"] // lanes
    out = [
        f"## {command}",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min)",
        f"- machine: {store._machine()}",
        f"- clew commit measured: {store._commit()}",
        f"- load average (1 min) over the measurements: {min(loads):.2f}-{max(loads):.2f} "
        "(2 cores; a benchmark call itself uses about 1-2: above ~2 means other work ran)",
        f"- store: `synth.py --spans N --runs {store_summary['runs']} --lanes {lanes} --diff-inputs "
        f"{store_summary['diff']['inputs']}` (seed {store_summary['seed']}), ingested with "
        f"clew's ingest{took_ingest}: {disk['otel_traces']['rows']:,} spans, "
        f"{disk['clew_io']['rows']:,} I/O records (clew_io rows), "
        f"{disk['clew_runs']['rows']:,} runs ({store_summary['runs']:,} in {lanes} pipelines "
        f"of {per_lane}, plus the diff pair), {store._mb(on_disk)} on disk",
        f"- API: the call in a fresh process that has opened the store; cold = its first call, "
        f"warm = median (min-max) of the {REPEAT} calls after it. CLI: `clew --home H ...` end "
        f"to end, first call, then median of {REPEAT}. SQL = time in `client.query` including "
        "fetching the rows into Python",
    ]
    if found["graphs"]:
        out += _graph_tables(store_summary, found, per_lane)
    if found["diff"]:
        out += _diff_tables(found["diff"])
    return "\n".join(out)


def _graph_tables(store_summary: dict[str, Any], found: dict[str, Any],
                  per_lane: int) -> list[str]:
    out = [
        "",
        f"Lineage and impact (target: lineage < 1 s). Model: `{store_summary['model_uri']}` "
        f"(an output of the last run of a {per_lane}-run pipeline); dataset: "
        f"`{found['dataset']['uri']}` (a raw file of one of the 40 datasets, read by "
        f"{found['dataset']['readers']} runs, the model's run among them). Graph "
        "sizes from the first call; depth = runs on the shortest path from the root to the "
        "farthest run.",
        "",
        "| code | call | graph: nodes / edges / runs / depth | API cold | API warm | CLI cold "
        "| CLI warm | SQL (statements) | peak RSS | target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for item in found["graphs"]:
        api, cli = item["api"], item["cli"]
        code = f"`{Path(item['module']).name}`" if item["module"] else "query/lineage.py"
        shape = (f"{api['nodes']:,} / {api['edges']:,} / {api['runs']:,} / {api['depth']}"
                 if "nodes" in api else "-")
        calls = api.get("first_calls") or api.get("calls") or []
        sql = f"{store._s(sum(c['seconds'] for c in calls))} ({len(calls)})"
        cold, warm = _timing(api)
        cli_cold, cli_warm = _timing(cli)
        if "error" in api:
            cold += f": {api['error']}"
        rss = f"{api['peak_rss_mb']:,.0f} MB" if "peak_rss_mb" in api else "-"
        ok = "first" in api and "error" not in api and statistics.median(api["times"]) < 1
        target = "pass" if ok else "**FAIL**"
        if item["walk"] != "lineage":
            target = "(no target)"
        out.append(f"| {code} | {item['walk']} | {shape} | {cold} | {warm} | {cli_cold} "
                   f"| {cli_warm} | {sql} | {rss} | {target} |")
    for item in found["graphs"]:
        api = item["api"]
        code = Path(item["module"]).name if item["module"] else "query/lineage.py"
        calls, total = api.get("first_calls"), api.get("first")
        if calls is None:  # failed, or killed: the process's whole life, connect included
            calls, total = api.get("calls", []), api.get("error_after", api.get("timeout"))
        what = ("first call" if "first" in api else
                f"until it failed after {store._s(total)}" if "error" in api else
                f"what had finished when it was killed at {api['timeout']:.0f} s")
        out += ["", f"Where the time goes: {item['walk']}, {code}, {what}:", "",
                "| statement | count | time | rows fetched | most values bound in one |",
                "|---|---|---|---|---|", *_profile(calls, total)]
    return out


def _diff_tables(diff: dict[str, Any]) -> list[str]:
    api, cli = diff["api"], diff["cli"]
    cold, warm = _timing(api)
    cli_cold, cli_warm = _timing(cli)
    changes = ", ".join(f"{n:,} {kind}" for kind, n in sorted(api["changes"].items()))
    ok = statistics.median(api["times"]) < 2 and statistics.median(cli["times"]) < 2
    return [
        "",
        f"Diff (target < 2 s): `diff(client, B, A)` / `clew --home H diff A B --format json`, "
        f"runs {diff['run_a'][:12]} and {diff['run_b'][:12]} of {diff['inputs']:,} inputs "
        "each; the changes are checked against the known answer on every call.",
        "",
        "| API cold | API warm | CLI cold | CLI warm | changes found (= expected) | target |",
        "|---|---|---|---|---|---|",
        f"| {cold} | {warm} | {cli_cold} | {cli_warm} | {changes} "
        f"| {'pass' if ok else '**FAIL**'} |",
        "",
        "Where the time goes: diff, first call:",
        "",
        "| statement | count | time | rows fetched | most values bound in one |",
        "|---|---|---|---|---|",
        *_profile(api["first_calls"], api["first"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/clew-bench"),
                        help="where the store is built and kept (~40 GB)")
    parser.add_argument("--home", type=Path,
                        help="measure this synth.py home instead (ingested into HOME/db)")
    parser.add_argument("--module", action="append", default=[],
                        help="also measure this copy of query/lineage.py (repeatable)")
    parser.add_argument("--only", default="lineage,diff", help="lineage, diff or both")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds before a call is killed (600)")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    started, clock = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    if args.home:
        home = args.home.absolute()
        summary = _described(home, json.loads((home / "synth.json").read_text()))
    else:
        home, summary = build(work)
    loads = [os.getloadavg()[0]]
    modules = [None, *(str(Path(m).absolute()) for m in args.module)]
    found = measure(work, home, summary, modules, set(args.only.split(",")), args.timeout)
    (work / "lineage-measured.json").write_text(json.dumps(found, indent=1, default=str))
    for item in [*found["graphs"], found["diff"] or {}]:
        loads += list(item.get("api", {}).get("load", ()))
    loads.append(os.getloadavg()[0])
    command = ".venv/bin/python benchmarks/store/lineage.py " + " ".join(sys.argv[1:])
    section = report(summary, found, command.strip(), started, time.perf_counter() - clock,
                     loads)
    print(section)
    if not args.no_write:
        store.write_section(section, MARKER)
        print(f"\nwritten to {store.RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(TASKS[sys.argv[2]](**json.loads(sys.argv[3]))))
    else:
        main()
