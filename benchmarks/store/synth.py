"""A synthetic clew spool: N spans across R runs, shaped like what clew writes.

Every line is made the way clew's own exporter makes it: SDK `ReadableSpan`s encoded by
`clew.exporter.otlp_encode.encode_spans` and dumped with the same `json.dumps` call as
`clew.exporter.spool.SpoolSpanExporter`, so the bytes are a real spool's bytes (one file per
process, at most 512 spans a line, named `<UTC start>-<host>-<pid>-<random>.jsonl`).

The attributes follow clew's instrumentation (`instrumentation/_record_spans.py`,
`instrumentation/_process_span.py`): a "run" root span per run with git state, packages and code
files; a "process" span per traced child and per rank (ranks carry `provenance.rank` and
friends as resource attributes); "exec" spans for the programs a process starts; a span per
write, large read, copy, rename, delete and directory listing; and batched "read file"
spans carrying 1 to 512 records as parallel `provenance.artifacts.*` arrays.

So that lineage lookups have answers, URIs and digests are shared the way a team's runs
share them: runs read the same datasets (stable URIs and digests), later runs read what
earlier runs wrote (pipelines), some paths are overwritten by many runs (`latest.pt`), and
everything else a run writes is its own.

By default a run reads from the outputs that any of the last ~200-300 runs published, so
lineage is wide and shallow: a run's producers are most of the runs before it. `--lanes L`
makes it deep and narrow instead: run i belongs to pipeline i % L and reads (besides
datasets) only what the previous run of its pipeline published, so the lineage of the last
run's output is a chain of runs/L runs (`lineage.py` measures it).

`--diff-inputs N` adds two runs of one program that read N dataset files each, 1 % of them
changed, 1 % removed and 1 % added from the first run to the second, write the same 100
output paths with new contents, and differ in one argument: a `clew diff` with a known answer
(written to the summary's "diff").

Usage:
    python benchmarks/store/synth.py --spans 1000000 --runs 1000 --home /tmp/clew-synth-1m

`--home` is a CLEW_HOME: the spool goes to `<home>/spool/` and a summary (counts, bytes,
seconds, and sample URIs and digests for lookups) to `<home>/synth.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from clew.exporter.otlp_encode import encode_spans
from clew.exporter.spool_files import SUFFIX
from clew.semconv import attributes as attr
from clew.semconv import spans as names

LINE_SPANS = 512  # the BatchSpanProcessor's max_export_batch_size: spans per spool line
BATCH_MAX_RECORDS = 512  # instrumentation/_record_spans.py: records per batched read span
SCOPE = InstrumentationScope("clew", "0.1.0")
SAMPLED = TraceFlags(TraceFlags.SAMPLED)
HOSTS = [f"gpu-node-{i:02d}" for i in range(1, 9)] + ["laptop-ana", "laptop-ben"]
USERS = ["ana", "ben", "chen", "dmitri", "eva"]
SCRIPTS = ["train.py", "preprocess.py", "evaluate.py", "finetune.py", "export.py"]
PACKAGES = [f"package-{i:03d}=={i % 7}.{i % 13}.{i % 5}" for i in range(240)]
DAY_NS = 86_400 * 10**9

# Share of a run's I/O spans by kind (the rest of its spans are run/process/exec spans).
# Writes dominate span counts because each one is a span; reads dominate records because
# small reads are batched up to 512 to a span.
IO_MIX = {
    "write": 0.70,
    "batched_read": 0.06,
    "large_read": 0.15,
    "rename": 0.03,
    "copy": 0.02,
    "delete": 0.02,
    "list": 0.02,
}
# For comparison: the same spool without batched reads, every span one record.
MIXES = {"realistic": IO_MIX, "singles": {**IO_MIX, "batched_read": 0.0}}


def _digest(*parts: Any) -> str:
    """A stable, realistic-looking content digest for the content named by `parts`."""
    key = "\0".join(map(str, parts)).encode()
    return "blake3:" + hashlib.blake2b(key, digest_size=32).hexdigest()


@dataclass
class Dataset:
    """A shared dataset: directories of small files many runs read (stable URIs, digests)."""

    name: str
    host: str
    files: int
    per_directory: int = 1000

    def path(self, index: int) -> str:
        return f"/data/{self.name}/shard-{index // self.per_directory:05d}/{index:08d}.bin"

    def directory(self, index: int) -> str:
        return f"/data/{self.name}/shard-{index // self.per_directory:05d}"

    def size(self, index: int) -> int:
        return 2_000 + (index * 7919) % 200_000

    def digest(self, index: int) -> str:
        return _digest(self.name, index)


@dataclass
class World:
    """What runs share: datasets, published outputs of earlier runs, overwritten paths."""

    datasets: list[Dataset]
    commits: list[str]
    published: list[tuple[str, str, int]] = field(default_factory=list)  # uri, digest, size
    mutable: list[str] = field(default_factory=list)


def make_world(rng: random.Random) -> World:
    datasets = [
        Dataset(f"dataset-{i:02d}", rng.choice(HOSTS[:4]), rng.choice((5_000, 20_000, 100_000)))
        for i in range(40)
    ]
    commits = [f"{rng.getrandbits(160):040x}" for _ in range(60)]
    world = World(datasets, commits)
    world.mutable = [f"/work/shared/models/{m}/latest.pt" for m in ("resnet", "bert", "gbm")]
    return world


def file_uri(host: str, path: str) -> str:
    # instrumentation/_paths.py: file://<host><absolute path>; synthetic paths need no quoting
    return f"file://{host}{path}"


class Process:
    """One synthetic process: its resource, its spans, and a clock inside its lifetime."""

    def __init__(self, gen: Generator, host: str, pid: int, start: int, end: int,
                 rank: tuple[int, int, int, int] | None) -> None:
        self.gen = gen
        self.host = host
        self.pid = pid
        self.start = start
        self.end = end
        attributes: dict[str, Any] = {
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.version": "1.45.2",
            "service.instance.id": str(uuid.UUID(int=gen.rng.getrandbits(128), version=4)),
            "service.name": "clew",
            "telemetry.auto.version": "0.66b2",
        }
        if rank is not None:
            attributes[attr.PROVENANCE_RANK] = rank[0]
            attributes[attr.PROVENANCE_LOCAL_RANK] = rank[1]
            attributes[attr.PROVENANCE_WORLD_SIZE] = rank[2]
            attributes[attr.PROVENANCE_NODE_RANK] = rank[3]
        self.resource = Resource(attributes)
        self.spans: list[ReadableSpan] = []

    def at(self) -> tuple[int, int]:
        """A start and end time inside the process's lifetime."""
        rng = self.gen.rng
        start = rng.randint(self.start, max(self.start, self.end - 1_000_000))
        return start, min(self.end, start + rng.randint(20_000, 50_000_000))


class Generator:
    """Runs, their processes and spans, written to the spool as they are made."""

    def __init__(self, seed: int, spool: Path, mix: dict[str, float], lanes: int = 0) -> None:
        self.rng = random.Random(seed)
        self.mix = mix
        self.lanes = lanes
        # with lanes: what the previous run of each lane published, and what the run being
        # made published so far; `upstream` None: read from the world's recent outputs
        self.lane_outputs: dict[int, list[tuple[str, str, int]]] = {}
        self.upstream: list[tuple[str, str, int]] | None = None
        self.run_outputs: list[tuple[str, str, int]] = []
        self.last_run: tuple[str, list[tuple[str, str, int]]] = ("", [])
        self.world = make_world(self.rng)
        self.spool = spool
        self.spans = 0
        self.records = 0
        self.lines = 0
        self.files = 0
        self.bytes = 0
        self.samples: dict[str, Any] = {}
        self.sampling = False  # while generating the run whose URI and digest run.py looks up

    def sample(self, key: str, value: str) -> None:
        if self.sampling and key not in self.samples:
            self.samples[key] = value

    # ids and spans

    def span_id(self) -> int:
        return self.rng.getrandbits(64) or 1

    def span(self, process: Process, name: str, trace_id: int, parent: SpanContext | None,
             attributes: dict[str, Any], start: int, end: int,
             status: Status | None = None, span_id: int | None = None) -> SpanContext:
        context = SpanContext(trace_id, span_id or self.span_id(), False, SAMPLED)
        process.spans.append(ReadableSpan(
            name, context, parent, process.resource, attributes, kind=SpanKind.INTERNAL,
            status=status or Status(StatusCode.UNSET), start_time=start, end_time=end,
            instrumentation_scope=SCOPE,
        ))
        return context

    def write_process(self, process: Process) -> None:
        """The process's spool file: its spans in end order, at most 512 a line."""
        spans = sorted(process.spans, key=lambda s: s.end_time)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(process.start / 1e9))
        name = f"{stamp}-{process.host}-{process.pid}-{self.rng.getrandbits(32):08x}{SUFFIX}"
        with open(self.spool / name, "w", encoding="utf-8") as handle:
            for at in range(0, len(spans), LINE_SPANS):
                # The very call SpoolSpanExporter.export makes.
                line = json.dumps(encode_spans(spans[at:at + LINE_SPANS]), separators=(",", ":"))
                handle.write(line + "\n")
                self.bytes += len(line) + 1
                self.lines += 1
        self.files += 1
        self.spans += len(spans)

    # what a process does

    def process_attributes(self, role: str, process: Process, parent_pid: int, argv: list[str],
                           user: str, trace_id: int) -> dict[str, Any]:
        return {
            attr.PROVENANCE_PROCESS_ROLE: role,
            attr.PROCESS_PID: process.pid,
            attr.PROCESS_PARENT_PID: parent_pid,
            attr.PROCESS_COMMAND_ARGS: argv,
            attr.PROCESS_EXECUTABLE_PATH: "/opt/venv/bin/python",
            attr.PROCESS_WORKING_DIRECTORY: f"/home/{user}/project",
            attr.PROCESS_OWNER: user,
            attr.PROCESS_RUNTIME_NAME: "cpython",
            attr.PROCESS_RUNTIME_VERSION: "3.11.7",
            attr.HOST_NAME: process.host,
            attr.PROVENANCE_RUN_ID: f"{trace_id:032x}",
        }

    def io_spans(self, process: Process, trace_id: int, parent: SpanContext, count: int,
                 run_dir: str, datasets: list[Dataset], epochs: int) -> None:
        """`count` I/O spans of the mix IO_MIX."""
        rng = self.rng
        kinds = rng.choices(list(self.mix), list(self.mix.values()), k=count)
        cursor = {d.name: rng.randrange(d.files) for d in datasets}
        written: list[tuple[str, str, int]] = []
        for serial, kind in enumerate(kinds):
            start, end = process.at()
            if kind == "batched_read":
                dataset = rng.choice(datasets)
                # tens to 512 records, log-uniform; one in ten batches is a small tail (1-9)
                size = rng.randint(1, 9) if rng.random() < 0.1 else int(
                    math.exp(rng.uniform(math.log(10), math.log(BATCH_MAX_RECORDS + 1))))
                first = cursor[dataset.name]
                # a batch is per directory: stop at the directory's end
                first = min(first, dataset.files - 1)
                last = min(first + size, (first // dataset.per_directory + 1) * dataset.per_directory,
                           dataset.files)
                indexes = range(first, last)
                self.sample("uri", file_uri(dataset.host, dataset.path(first)))
                cursor[dataset.name] = last if last < dataset.files else 0
                self.batched_read(process, trace_id, parent, dataset, indexes, epochs, start, end)
                continue
            if kind == "large_read":
                source = self.world.published[-2000:] if self.upstream is None else self.upstream
                if source and rng.random() < 0.6:
                    uri, digest, size = rng.choice(source)
                    self.sample("digest", digest)
                else:
                    dataset = rng.choice(datasets)
                    part = rng.randrange(64)
                    path = f"/data/{dataset.name}/packed/part-{part:03d}.tar"
                    uri = file_uri(dataset.host, path)
                    digest, size = _digest(dataset.name, "packed", part), (1 << 30) + part
                self.sample("uri", uri)  # when the run has no batched read first
                self.single(process, trace_id, parent, "read", uri, digest, size, start, end,
                            count=epochs)
                continue
            if kind == "write":
                if rng.random() < 0.02:
                    path = rng.choice(self.world.mutable)
                else:
                    path = f"{run_dir}/out/{serial // 500:03d}/item-{serial:06d}.npy"
                uri = file_uri(process.host, path)
                digest = _digest(uri, trace_id, serial)
                size = rng.randint(100, 50_000_000)
                self.single(process, trace_id, parent, "write", uri, digest, size, start, end)
                written.append((uri, digest, size))
                continue
            # rename, copy, delete, list: one record each, on this run's own files
            path = f"{run_dir}/tmp/{serial:06d}.part"
            uri = file_uri(process.host, path)
            if kind == "list":
                self.single(process, trace_id, parent, "list", file_uri(process.host, run_dir),
                            None, None, start, end, identity="none")
            elif kind == "delete":
                self.single(process, trace_id, parent, "delete", uri, None, None, start, end,
                            identity="none")
            else:
                source = uri
                target = f"{run_dir}/final/{serial:06d}.bin"
                digest = _digest(uri, trace_id, serial)
                self.single(process, trace_id, parent, kind, file_uri(process.host, target),
                            digest, rng.randint(100, 10_000_000), start, end, source=source)
        # a few outputs become inputs of later runs (pipelines)
        if written:
            chosen = rng.sample(written, min(len(written), 5))
            self.world.published.extend(chosen)
            self.run_outputs.extend(chosen)

    def batched_read(self, process: Process, trace_id: int, parent: SpanContext,
                     dataset: Dataset, indexes: range, epochs: int, start: int,
                     end: int) -> None:
        """One batched "read file" span: the records of `indexes`, one directory's files."""
        counts = [epochs] * len(indexes)
        self.span(process, names.SPAN_READ_FILE, trace_id, parent, {
            attr.PROVENANCE_IO_OPERATION: "read",
            attr.FILE_DIRECTORY: dataset.directory(indexes[0]),
            attr.PROVENANCE_ARTIFACTS_URI: [
                file_uri(dataset.host, dataset.path(i)) for i in indexes],
            attr.PROVENANCE_ARTIFACTS_DIGEST: [dataset.digest(i) for i in indexes],
            attr.PROVENANCE_ARTIFACTS_SIZE: [dataset.size(i) for i in indexes],
            attr.PROVENANCE_ARTIFACTS_IDENTITY: ["content"] * len(indexes),
            attr.PROVENANCE_ARTIFACTS_COUNT: counts,
            attr.PROVENANCE_IO_COUNT: sum(counts),
            attr.PROCESS_PID: process.pid,
        }, start, end)
        self.records += len(indexes)

    def single(self, process: Process, trace_id: int, parent: SpanContext, operation: str,
               uri: str, digest: str | None, size: int | None, start: int, end: int, *,
               count: int = 1, identity: str = "content", source: str | None = None) -> None:
        """A span of one record, with single_attributes' keys in their order."""
        path = uri.split("/", 3)[3]
        attributes: dict[str, Any] = {
            attr.PROVENANCE_IO_OPERATION: operation,
            attr.PROVENANCE_ARTIFACT_URI: uri,
            attr.FILE_PATH: "/" + path,
            attr.PROVENANCE_ARTIFACT_IDENTITY: identity,
            attr.PROVENANCE_IO_COUNT: count,
            attr.PROCESS_PID: process.pid,
        }
        if size is not None:
            attributes[attr.PROVENANCE_ARTIFACT_SIZE] = size
            attributes[attr.PROVENANCE_ARTIFACT_MTIME] = start - 1_000_000
        if digest:
            attributes[attr.PROVENANCE_ARTIFACT_DIGEST] = digest
        if source:
            attributes[attr.PROVENANCE_SOURCE_URI] = source
        self.span(process, SPAN_NAMES[operation], trace_id, parent, attributes, start, end)
        self.records += 1

    def exec_span(self, process: Process, trace_id: int, parent: SpanContext, argv: list[str],
                  child_pid: int, traced: bool, start: int, end: int,
                  span_id: int | None = None) -> SpanContext:
        return self.span(process, names.SPAN_EXEC, trace_id, parent, {
            attr.PROVENANCE_EXEC_API: "subprocess.Popen",
            attr.PROCESS_COMMAND_ARGS: argv,
            attr.PROCESS_WORKING_DIRECTORY: process.gen.rng.choice(("/tmp", "/home/ana/project")),
            attr.PROCESS_PARENT_PID: process.pid,
            attr.PROVENANCE_EXEC_TRACED: traced,
            attr.PROCESS_PID: child_pid,
            attr.PROCESS_EXIT_CODE: 0,
        }, start, end, span_id=span_id)

    # a run

    def run(self, index: int, budget: int, start: int) -> None:
        rng = self.rng
        trace_id = rng.getrandbits(128) or 1
        if self.lanes:
            self.upstream = self.lane_outputs.get(index % self.lanes, [])
        self.run_outputs = []
        host = rng.choice(HOSTS)
        user = rng.choice(USERS)
        script = SCRIPTS[index % len(SCRIPTS)]
        duration = int(rng.uniform(10, 7200) * 1e9)
        end = start + duration
        run_dir = f"/work/exp/{user}/{trace_id:032x}"
        datasets = rng.sample(self.world.datasets, rng.randint(1, 2))
        epochs = rng.choice((1, 1, 2, 3, 10))
        failed = rng.random() < 0.05
        main = Process(self, host, rng.randint(1000, 4_000_000), start, end, None)
        run_span_id = self.span_id()
        run_context = SpanContext(trace_id, run_span_id, False, SAMPLED)
        argv = ["/opt/venv/bin/python", script, "--config", f"configs/{script[:-3]}-{index % 17}.yaml"]

        # children: ranks of a distributed run, or a few traced subprocesses
        world_size = rng.choice((2, 4, 8)) if rng.random() < 0.25 else 0
        children = world_size or rng.choice((0, 0, 1, 2))
        untraced = rng.randint(0, 2)
        if 1 + 2 * children + untraced > budget:  # a tiny run: no children
            world_size = children = 0
            untraced = min(untraced, budget - 1)
        overhead = 1 + 2 * children + untraced
        io_budget = max(0, budget - overhead)
        shares = [io_budget // (children + 1)] * (children + 1)
        shares[0] += io_budget - sum(shares)
        processes = [main]
        for child in range(children):
            exec_start = rng.randint(start, start + duration // 10)
            child_pid = main.pid + 1 + child
            rank = (child, child % 8, world_size, child // 8) if world_size else None
            process = Process(self, host, child_pid, exec_start + 50_000_000, end - 1_000_000, rank)
            child_argv = (["/opt/venv/bin/python", script, f"--local-rank={child % 8}"]
                          if world_size else ["/opt/venv/bin/python", "prepare_shard.py", str(child)])
            exec_context = self.exec_span(main, trace_id, run_context, child_argv, child_pid, True,
                                          exec_start, end - 500_000)
            remote = SpanContext(trace_id, exec_context.span_id, True, SAMPLED)
            child_context = self.span(process, names.SPAN_PROCESS, trace_id, remote, {
                **self.process_attributes("exec", process, main.pid, child_argv, user, trace_id),
                attr.PROVENANCE_CODE_FILES: [],
                attr.PROVENANCE_CODE_DIGESTS: [],
                attr.PROCESS_EXIT_CODE: 0,
            }, process.start, process.end)
            self.io_spans(process, trace_id, child_context, shares[child + 1], run_dir, datasets,
                          epochs)
            processes.append(process)
        for _ in range(untraced):
            at = rng.randint(start, end - 10_000_000)
            self.exec_span(main, trace_id, run_context, ["git", "rev-parse", "HEAD"],
                           rng.randint(1000, 4_000_000), False, at, at + 4_000_000)
        self.io_spans(main, trace_id, run_context, shares[0], run_dir, datasets, epochs)

        # the run span, with what the background thread gathered and the exit state
        commit = rng.choice(self.world.commits)
        dirty = rng.random() < 0.3
        parent_pid = rng.randint(1000, 4_000_000)
        branch = rng.choice(("main", "main", "exp/lr-sweep", "fix/loader"))
        diff_files = [f"src/module_{i}.py" for i in range(rng.randint(1, 6))] if dirty else []
        packages = PACKAGES[: rng.randint(60, 240)]
        code = [f"/home/{user}/project/src/module_{i}.py" for i in range(rng.randint(3, 20))]
        self.run_span(main, trace_id, run_span_id, parent_pid, argv, user, commit, branch,
                      diff_files, packages, code, failed, start, end)
        for process in processes:
            self.write_process(process)
        if self.sampling:
            self.samples["run_id"] = f"{trace_id:032x}"
        if self.lanes:
            self.lane_outputs[index % self.lanes] = self.run_outputs
        self.last_run = (f"{trace_id:032x}", self.run_outputs)

    def run_span(self, main: Process, trace_id: int, span_id: int, parent_pid: int,
                 argv: list[str], user: str, commit: str, branch: str, diff_files: list[str],
                 packages: list[str], code: list[str], failed: bool, start: int,
                 end: int) -> None:
        """The run's root span: the process, git state, packages, code files, exit state."""
        attributes = self.process_attributes("run", main, parent_pid, argv, user, trace_id)
        attributes[attr.VCS_REF_HEAD_REVISION] = commit
        attributes[attr.VCS_REF_HEAD_NAME] = branch
        attributes[attr.VCS_REPOSITORY_URL_FULL] = "https://github.com/example/models.git"
        attributes[attr.PROVENANCE_VCS_DIRTY] = bool(diff_files)
        if diff_files:
            attributes[attr.PROVENANCE_VCS_DIFF_DIGEST] = _digest("diff", trace_id)
            attributes[attr.PROVENANCE_VCS_DIFF_FILES] = diff_files
        attributes[attr.PROVENANCE_ENV_PACKAGES] = packages
        attributes[attr.PROVENANCE_CODE_FILES] = code
        attributes[attr.PROVENANCE_CODE_DIGESTS] = [_digest(commit, f) for f in code]
        attributes[attr.PROCESS_EXIT_CODE] = 1 if failed else 0
        status = None
        if failed:
            attributes[attr.ERROR_TYPE] = "RuntimeError"
            attributes[attr.PROVENANCE_EXCEPTION_MESSAGE] = "CUDA out of memory"
            status = Status(StatusCode.ERROR, "RuntimeError")
        self.span(main, names.SPAN_RUN, trace_id, None, attributes, start, end, status,
                  span_id=span_id)


SPAN_NAMES = {
    "read": names.SPAN_READ_FILE,
    "write": names.SPAN_WRITE_FILE,
    "delete": names.SPAN_DELETE_FILE,
    "rename": names.SPAN_RENAME_FILE,
    "copy": names.SPAN_COPY_FILE,
    "list": names.SPAN_LIST_DIRECTORY,
}


def budgets(rng: random.Random, spans: int, runs: int) -> list[int]:
    """Spans per run: log-normal sizes (a few big runs, many small ones) summing to `spans`."""
    weights = [rng.lognormvariate(0, 1.0) for _ in range(runs)]
    scale = spans / sum(weights)
    sizes = [max(3, int(w * scale)) for w in weights]
    sizes[sizes.index(max(sizes))] += spans - sum(sizes)
    return sizes


def generate(home: Path, spans: int, runs: int, days: float, seed: int,
             mix: str = "realistic", end: int | None = None, lanes: int = 0,
             diff_inputs: int = 0) -> dict[str, Any]:
    spool = home / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    if any(spool.glob(f"*{SUFFIX}")):
        raise SystemExit(f"{spool} already holds spool files: use a fresh --home")
    started = time.perf_counter()
    generator = Generator(seed, spool, MIXES[mix], lanes)
    end = end or (time.time_ns() // DAY_NS) * DAY_NS
    first = end - int(days * DAY_NS)
    starts = sorted(generator.rng.randint(first, end - 8000 * 10**9) for _ in range(runs))
    sizes = budgets(generator.rng, spans, runs)
    report_every = max(1, runs // 20)
    for index, (start, size) in enumerate(zip(starts, sizes)):
        generator.sampling = index == runs // 2
        generator.run(index, size, start)
        if (index + 1) % report_every == 0:
            rate = generator.spans / (time.perf_counter() - started)
            print(f"  {index + 1}/{runs} runs, {generator.spans:,} spans, "
                  f"{generator.bytes / 1e9:.2f} GB, {rate:,.0f} spans/s", file=sys.stderr)
    extra: dict[str, Any] = {}
    if lanes:
        # a lineage key: an output of the last run, which the last `runs / lanes` runs of
        # its lane built on one after the other
        run_id, outputs = generator.last_run
        extra.update(lanes=lanes, model_run_id=run_id, model_uri=outputs[0][0],
                     model_digest=outputs[0][1])
    if diff_inputs:
        from synth_diff import diff_pair  # a module of its own: it imports this one

        extra["diff"] = diff_pair(generator, diff_inputs, end - 3 * DAY_NS)
    summary = {
        "spans": generator.spans,
        "records": generator.records,
        "runs": runs,
        "files": generator.files,
        "lines": generator.lines,
        "bytes": generator.bytes,
        "seconds": round(time.perf_counter() - started, 1),
        "seed": seed,
        "days": days,
        "mix": mix,
        **extra,
        # lookup keys, from the middle run: a dataset file it read (other runs read it too),
        # and the digest of an earlier run's output it read
        **{f"sample_{key}": value for key, value in generator.samples.items()},
    }
    (home / "synth.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, required=True, help="spans to write, e.g. 1000000")
    parser.add_argument("--runs", type=int, default=1000, help="runs they belong to (1000)")
    parser.add_argument("--home", type=Path, required=True, help="a fresh CLEW_HOME")
    parser.add_argument("--days", type=float, default=10.0, help="runs spread over (10) days")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mix", choices=sorted(MIXES), default="realistic",
                        help="realistic (default), or singles: no batched reads")
    parser.add_argument("--lanes", type=int, default=0,
                        help="pipelines: a run reads only its lane's previous run's outputs")
    parser.add_argument("--diff-inputs", type=int, default=0,
                        help="add two runs of N inputs each for `clew diff` (see above)")
    args = parser.parse_args(argv)
    summary = generate(args.home.absolute(), args.spans, args.runs, args.days, args.seed,
                       args.mix, lanes=args.lanes, diff_inputs=args.diff_inputs)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
