"""What the spool holds, run by run, without a database."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from clew.exporter.otlp_json import Span, iter_spans
from clew.exporter.spool_files import SpoolProblems, read_spool, spool_directory
from clew.semconv import attributes as attr
from clew.semconv import spans as span_names


@dataclass
class Access:
    """One record of one operation on one artifact by one process."""

    operation: str
    uri: str
    digest: str | None
    identity: str
    size: int | None
    count: int
    pid: int | None
    source_uri: str | None = None


@dataclass
class Exec:
    """One program started by a process of the run."""

    command: list[str]
    exit_code: int | None
    traced: bool
    api: str
    pid: int | None


# The role a DataLoader worker is shown with, whether forked or spawned.
DATALOADER_WORKER = "dataloader-worker"


@dataclass
class Process:
    """One process of the run; a DataLoader worker has its `worker_id`."""

    pid: int | None
    role: str
    command: list[str]
    exit_code: int | None
    start_ns: int
    end_ns: int | None
    worker_id: int | None = None


@dataclass
class SpoolRun:
    """A run as the spool records it: its root span, processes, I/O and subprocesses."""

    run_id: str
    command: list[str]
    start_ns: int
    end_ns: int | None
    exit_code: int | None
    status: str  # "ok", "failed", or "incomplete" when the root span never arrived
    host: str | None = None
    cwd: str | None = None
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    git_diff_files: list[str] = field(default_factory=list)
    code_files: list[str] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    accesses: list[Access] = field(default_factory=list)
    execs: list[Exec] = field(default_factory=list)
    capture_errors: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        if self.end_ns is None:
            return None
        return (self.end_ns - self.start_ns) / 1e9

    def uris(self, operation: str) -> list[str]:
        """Distinct artifact URIs for one operation, sorted."""
        return sorted({a.uri for a in self.accesses if a.operation == operation})


def _accesses(span: Span) -> list[Access]:
    a = span.attributes
    operation = a.get(attr.PROVENANCE_IO_OPERATION)
    if operation is None:
        return []
    pid = a.get(attr.PROCESS_PID)
    uris = a.get(attr.PROVENANCE_ARTIFACTS_URI)
    if uris is not None:
        digests = a.get(attr.PROVENANCE_ARTIFACTS_DIGEST) or [""] * len(uris)
        sizes = a.get(attr.PROVENANCE_ARTIFACTS_SIZE) or [None] * len(uris)
        # A batch leaves out its identities when all are the same (given once, as a scalar)
        # and its counts when all are 1.
        shared = a.get(attr.PROVENANCE_ARTIFACT_IDENTITY, "none")
        identities = a.get(attr.PROVENANCE_ARTIFACTS_IDENTITY) or [shared] * len(uris)
        counts = a.get(attr.PROVENANCE_ARTIFACTS_COUNT) or [1] * len(uris)
        return [
            Access(operation, uri, digest or None, identity, size, count, pid)
            for uri, digest, size, identity, count in zip(uris, digests, sizes, identities, counts)
        ]
    return [
        Access(
            operation,
            a.get(attr.PROVENANCE_ARTIFACT_URI, ""),
            a.get(attr.PROVENANCE_ARTIFACT_DIGEST),
            a.get(attr.PROVENANCE_ARTIFACT_IDENTITY, "none"),
            a.get(attr.PROVENANCE_ARTIFACT_SIZE),
            a.get(attr.PROVENANCE_IO_COUNT, 1),
            pid,
            a.get(attr.PROVENANCE_SOURCE_URI),
        )
    ]


def _run_from_spans(run_id: str, spans: list[Span]) -> SpoolRun:
    root = next((s for s in spans if s.name == span_names.SPAN_RUN), None)
    start = min(s.start_ns for s in spans)
    run = SpoolRun(
        run_id=run_id,
        command=[],
        start_ns=root.start_ns if root else start,
        end_ns=root.end_ns if root else None,
        exit_code=None,
        status="incomplete",
    )
    if root is not None:
        a = root.attributes
        run.command = list(a.get(attr.PROCESS_COMMAND_ARGS, []))
        run.exit_code = a.get(attr.PROCESS_EXIT_CODE)
        run.status = "failed" if root.status_code == "Error" or run.exit_code else "ok"
        run.host = a.get(attr.HOST_NAME)
        run.cwd = a.get(attr.PROCESS_WORKING_DIRECTORY)
        run.git_commit = a.get(attr.VCS_REF_HEAD_REVISION)
        run.git_branch = a.get(attr.VCS_REF_HEAD_NAME)
        run.git_dirty = a.get(attr.PROVENANCE_VCS_DIRTY)
        run.git_diff_files = list(a.get(attr.PROVENANCE_VCS_DIFF_FILES, []))
        run.code_files = list(a.get(attr.PROVENANCE_CODE_FILES, []))
    for span in sorted(spans, key=lambda s: s.start_ns):
        a = span.attributes
        if span.name in (span_names.SPAN_RUN, span_names.SPAN_PROCESS):
            worker = a.get(attr.PROVENANCE_WORKER_ID)
            run.processes.append(
                Process(
                    a.get(attr.PROCESS_PID),
                    DATALOADER_WORKER if worker is not None
                    else a.get(attr.PROVENANCE_PROCESS_ROLE, ""),
                    list(a.get(attr.PROCESS_COMMAND_ARGS, [])),
                    a.get(attr.PROCESS_EXIT_CODE),
                    span.start_ns,
                    span.end_ns,
                    worker,
                )
            )
            run.capture_errors += list(a.get(attr.PROVENANCE_CAPTURE_ERRORS, []))
        elif span.name == span_names.SPAN_EXEC:
            run.execs.append(
                Exec(
                    list(a.get(attr.PROCESS_COMMAND_ARGS, [])),
                    a.get(attr.PROCESS_EXIT_CODE),
                    bool(a.get(attr.PROVENANCE_EXEC_TRACED, False)),
                    a.get(attr.PROVENANCE_EXEC_API, ""),
                    a.get(attr.PROCESS_PID),
                )
            )
        elif span.name == span_names.SPAN_SPOOL_LOSS:
            run.capture_errors += list(a.get(attr.PROVENANCE_CAPTURE_ERRORS, []))
        else:
            run.accesses += _accesses(span)
    return run


def spool_runs(home: Path | None = None, problems: SpoolProblems | None = None) -> list[SpoolRun]:
    """Every run found in the spool under `home`, newest first. A line that is JSON but no
    OTLP (a time out of range, a null for an object) is skipped and noted as corrupt, as
    an ingest sets it aside."""
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for line in read_spool(spool_directory(home), problems):
        try:
            spans = list(iter_spans(line.data))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            if problems is not None:
                problems.corrupt.append((line.path, line.offset))
            continue
        for span in spans:
            by_trace[span.trace_id].append(span)
    runs = [_run_from_spans(trace_id, spans) for trace_id, spans in by_trace.items()]
    return sorted(runs, key=lambda r: r.start_ns, reverse=True)
