"""Lineage in SQL: what produced an artifact, back to raw data, and what it fed downstream.

The graph is walked one level per query over `clew_io` (so the work stays in ClickHouse and
scales with it): from an artifact to the run that wrote it, from that run to what it read,
from each input to the run that produced it, and so on. A copy or rename is an edge too: the
copying run read the source and wrote the destination. A read is matched to its producing
write by the strongest evidence available, named on the edge. The last recorded write or
copy to the read's URI before the read is its producer unless their identities disagree,
whatever stamp the object carries (copies carry stamps along); its evidence is the strongest
identity both records carry:

- "stamp": the read found that run's stamp on the artifact (its xattr, or object metadata
  where object stamps are on) with the digest the read saw (with no recorded write to the
  URI, a stamp alone names the producer);
- "digest", "version", "etag": the same content digest, object version, ETag; with no
  agreeing write to the URI, the last write before the read of the same content digest
  anywhere, or of the same version or ETag at that URI;
- "uri+time": the last write of the same URI before the read, no identity shared (weak, and
  marked as such).

Upstream, the inputs of a run that no run produced (raw data) are many: a training run reads
a dataset of 100,000 files. A directory from which a run read more than `GROUP_ABOVE` of them
is one node (`files` says how many it stands for), unless the caller asks for every file.

A read edge names the processes of the reading run that made it (pid, rank, DataLoader
worker, from clew_io's rows of the read). The run's listing (kept in clew_run_inputs) has
them per directory: a directory one process read from names it on each of its files; the
reads of other directories, and downstream ones, are looked up by URI, one query a level.

The result is a node-link graph, `--format json` schema 1:
`{"nodes": [{"id", "kind": "artifact"|"run", ...}], "edges": [{"source", "target",
"kind": "read"|"wrote", "evidence": "stamp"|"digest"|"version"|"etag"|"uri+time",
"readers": [{"pid", "rank", "worker"}], "reader_count"}]}`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import blake3
from clew.exporter.store.lineage import (
    IO_TABLE,
    LINKS_TABLE,
    OUTPUT_OPERATIONS,
    OUTPUTS_TABLE,
    RUN_INPUTS_TABLE,
    RUN_IO_TABLE,
    RUNS_TABLE,
)
from clew.exporter.store.links import (
    GROUP_ABOVE,
    MAX_READERS,
    PROCESSES_SQL,
    candidates_sql,
    reads_sql,
)
from clew.exporter.store.schema import SchemaOptions, qualified_name
from clew.semconv.uris import file_uri

from ._relations import artifacts_sql, outputs_sql
from .runs import iso_utc, run_status

MAX_DEPTH = 50
# Values bound into one statement: a digest list is bound twice (hash and value), and chDB
# refuses SQL text over 256 KiB (max_query_size).
_CHUNK = 1000
# The evidence a read record's identity gives, by `inputs`' Strength (0: none but the URI).
_STRENGTHS = ("uri+time", "etag", "version", "digest")
# What identifies an artifact's content in a clew_io row, strongest first, as one string:
# the SQL twin of `Artifact.identity`.
IDENTITY_SQL = (
    "multiIf(Digest != '', Digest, Version != '', concat('version:', Version), "
    "ETag != '', concat('etag:', ETag), concat('size:', toString(Size)))"
)


@dataclass
class ArtifactNode:
    """One content version at one URI: `uri`, `digest`, `version`, `etag` and `size` (-1:
    unknown). With `files` > 1 it is a directory (`uri` ends in "/") standing for that many
    raw inputs read from it by one run, and `size` is their total."""

    id: str
    uri: str = ""
    digest: str = ""
    version: str = ""
    etag: str = ""
    size: int = -1
    files: int = 1
    kind: ClassVar[str] = "artifact"

    def to_json(self) -> dict[str, Any]:
        """The node in `--format json` schema 1."""
        # Field by field: a graph can hold 200,000 artifacts, and `dataclasses.asdict` costs
        # several times as much.
        return {"id": self.id, "kind": self.kind, "uri": self.uri, "digest": self.digest,
                "version": self.version, "etag": self.etag, "size": self.size, **_EMPTY_RUN,
                "files": self.files}


@dataclass
class RunNode:
    """A recorded run: the command, times and status, the code (git state, files that differ
    from the commit, the project's imported source files and their digests), the
    environment (host, runtime, installed packages) and the ranks of a distributed run."""

    id: str
    command: list[str] = field(default_factory=list)
    start: str = ""
    end: str = ""
    status: str = ""
    git_commit: str = ""
    git_branch: str = ""
    git_dirty: bool = False
    host: str = ""
    diff_files: list[str] = field(default_factory=list)
    code_files: list[str] = field(default_factory=list)
    code_digests: list[str] = field(default_factory=list)
    runtime: str = ""
    packages: list[str] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    kind: ClassVar[str] = "run"

    def to_json(self) -> dict[str, Any]:
        """The node in `--format json` schema 1."""
        own = dataclasses.asdict(self)
        del own["id"]
        return {"id": self.id, "kind": self.kind, **_EMPTY_ARTIFACT, **own,
                "files": _NO_FILES}


# A node of a lineage graph: an artifact or a run (`kind` says which).
Node = ArtifactNode | RunNode


def _empty_fields(node: Node) -> dict[str, Any]:
    """The fields of an empty node of `node`'s kind but `id`, lists as (immutable) tuples."""
    return {name: tuple(value) if isinstance(value, list) else value
            for name, value in dataclasses.asdict(node).items() if name != "id"}


# Schema 1 has one list of nodes, each with the fields of both kinds (artifact, run, then
# `files`), those of the other kind empty: shared by every node's JSON form.
_EMPTY_RUN = _empty_fields(RunNode(""))
_EMPTY_ARTIFACT = _empty_fields(ArtifactNode(""))
_NO_FILES = _EMPTY_ARTIFACT.pop("files")


@dataclass(frozen=True)
class Reader:
    """A process that made a read: its pid, its distributed rank and its DataLoader worker
    id, each where the records have it (None otherwise)."""

    pid: int | None
    rank: int | None
    worker: int | None

    @property
    def label(self) -> str:
        """"rank 1, DataLoader worker 0, pid 4242", of what is known."""
        parts = []
        if self.rank is not None:
            parts.append(f"rank {self.rank}")
        if self.worker is not None:
            parts.append(f"DataLoader worker {self.worker}")
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Edge:
    """A run read an artifact (`source` the artifact's id, `target` the run's) or wrote one
    (`source` the run's). A read names the reading run's processes that made it, at most
    MAX_READERS of them in order of rank, worker and pid, and `reader_count`, how many did
    (0: the records name none)."""

    source: str
    target: str
    kind: str
    evidence: str
    readers: tuple[Reader, ...] = field(default=(), compare=False)
    reader_count: int = field(default=0, compare=False)


# The processes of one group of reads (PROCESSES_SQL's (Rank, Worker, Pid) tuples), and how
# many there are (more than listed when the store listed at most MAX_READERS).
_Processes = tuple[list[tuple[int, int, int]], int]
# A read as a run made it: (run, URI, digest, version, ETag).
_ReadKey = tuple[str, str, str, str, str]


def _read_edge(source: str, run: str, evidence: str, groups: Iterable[_Processes]) -> Edge:
    """The edge of `run`'s read of `source`, naming the processes of `groups` (one for each
    read record it stands for)."""
    groups = list(groups)
    union = sorted({process for processes, _ in groups for process in processes})
    # exact when each group is listed whole; else each one's unlisted processes count too
    count = len(union) + sum(total - len(processes) for processes, total in groups)
    readers = tuple(Reader(pid or None, rank if rank >= 0 else None,
                           worker if worker >= 0 else None)
                    for rank, worker, pid in union[:MAX_READERS])
    return Edge(source, run, "read", evidence, readers, count)


def readers_label(edge: Edge) -> str:
    """The processes that made a read: "rank 1, DataLoader worker 0, pid 4242; rank 1,
    DataLoader worker 1, pid 4243 and 3 more"; "" when the records name none."""
    shown = "; ".join(label for label in (r.label for r in edge.readers) if label)
    more = edge.reader_count - len(edge.readers)
    return shown + (f" and {more} more" if shown and more > 0 else "")


@dataclass
class Graph:
    """A lineage graph of artifact and run nodes; `schema` versions the JSON form, in which
    each node is its `to_json()`."""

    root: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    schema: int = 1

    def __post_init__(self) -> None:
        # Not fields: `dataclasses.asdict` leaves them out.
        self._node_ids = {node.id for node in self.nodes}
        self._edge_set = set(self.edges)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._node_ids

    def add_node(self, node: Node) -> None:
        if node.id not in self._node_ids:
            self._node_ids.add(node.id)
            self.nodes.append(node)

    def add_edge(self, edge: Edge) -> None:
        if edge not in self._edge_set:
            self._edge_set.add(edge)
            self.edges.append(edge)


@dataclass(frozen=True)
class Artifact:
    """One version of an artifact: what the user named (a URI and/or a content digest), or
    what a run read or wrote, with the identities the record carries.

    `producer` is the run a producer stamp on it named (reads) or the run that wrote it
    (writes); `time` is when it was read or written, in ns (0: now, as the user names it).
    """

    uri: str
    digest: str = ""
    version: str = ""
    etag: str = ""
    size: int = -1
    producer: str = ""
    time: int = 0

    @property
    def id(self) -> str:
        if self.digest:
            return f"{self.uri}@{self.digest}"
        if self.version:
            return f"{self.uri}?version={self.version}"
        if self.etag:
            return f"{self.uri}#etag={self.etag}"
        return self.uri

    @property
    def identity(self) -> str:
        """What identifies this content, as IDENTITY_SQL spells it."""
        if self.digest:
            return self.digest
        if self.version:
            return f"version:{self.version}"
        return f"etag:{self.etag}" if self.etag else f"size:{self.size}"

    @property
    def evidence(self) -> str:
        """The strongest identity the record itself carries."""
        for kind, value in (("digest", self.digest), ("version", self.version),
                            ("etag", self.etag)):
            if value:
                return kind
        return "uri+time"

    def node(self) -> ArtifactNode:
        return ArtifactNode(id=self.id, uri=self.uri, digest=self.digest,
                            version=self.version, etag=self.etag, size=self.size)


def resolve(name: str) -> Artifact:
    """A path, a URI or a digest, as an Artifact. A local file that exists is also hashed,
    so its lineage is that of the content it holds now."""
    if name.startswith(("blake3:", "sha256:")):
        return Artifact("", name.lower())
    if "://" in name:
        return Artifact(name, "")
    path = os.path.abspath(name)
    uri = file_uri(path)
    digest = ""
    if Path(path).is_file():
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(path)
        digest = "blake3:" + hasher.hexdigest()
    return Artifact(uri, digest)


@dataclass
class _Listing:
    """What one run read or wrote: its artifacts, its directories of many (each with the
    weakest evidence among them), and, for reads, the processes that read each, by node id
    (an artifact's: one entry for each of its read records' identities)."""

    artifacts: list[Artifact] = field(default_factory=list)
    groups: list[tuple[ArtifactNode, str]] = field(default_factory=list)
    processes: dict[str, list[_Processes]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Write:
    run: str
    time: int
    uri: str
    digest: str
    version: str
    etag: str


def _latest(writes: list[_Write], before: int) -> _Write | None:
    """The last of `writes` at or before `before` (0: any time)."""
    eligible = [w for w in writes if not before or w.time <= before]
    return max(eligible, key=lambda w: w.time, default=None)


class Tables:
    """clew's lineage tables in one store, by their qualified names, and a query helper."""

    def __init__(self, client: Any, options: SchemaOptions | None = None) -> None:
        options = options or SchemaOptions()
        self.client = client
        self.io = qualified_name(options, IO_TABLE)
        self.runs = qualified_name(options, RUNS_TABLE)
        self.run_io = qualified_name(options, RUN_IO_TABLE)
        self.outputs = qualified_name(options, OUTPUTS_TABLE)
        self.links = qualified_name(options, LINKS_TABLE)
        self.run_inputs = qualified_name(options, RUN_INPUTS_TABLE)
        self.reads = reads_sql(options)
        self.options = options

    def rows(self, sql: str, **parameters: Any) -> list[tuple]:
        return self.client.query(sql, parameters=parameters).result_rows


class _Walk:
    """The steps of a lineage walk over `tables`, one query each."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def _among(self, column: str, values: list[str], runs: list[str] | None,
               operations: tuple[str, ...], name: str = "values") -> tuple[str, dict[str, Any]]:
        """`column IN ...`: the values themselves, or, for a frontier that is what `runs` did
        `operations` to, a subquery, so that a run's 100,000 inputs are neither written into
        the SQL text (max_query_size is 256 KiB) nor parsed again."""
        if runs is None:
            return f"{column} IN %({name})s", {name: values or [""]}
        return (f"{column} IN (SELECT {column} FROM {self.tables.io} WHERE RunId IN %(runs)s "
                f"AND Operation IN %(operations)s AND {column} != '')",
                {"runs": runs, "operations": list(operations)})

    def _writes(self, column: str, values: list[str]) -> list[_Write]:
        """The writes of any of `values` (digests or URIs), a chunk of values a statement.
        Each table is ordered by the column looked up: clew_io by Uri, clew_outputs (the
        writes alone) by a 64-bit hash of Digest, a tenth of the bytes to scan."""
        if column == "Digest":
            table = self.tables.outputs
            where = "DigestKey IN (SELECT sipHash64(arrayJoin(%(values)s))) AND Digest IN %(values)s"
        else:
            table, where = self.tables.io, "Uri IN %(values)s"
        return [
            _Write(*row)
            for start in range(0, len(values), _CHUNK)
            for row in self.tables.rows(
                f"SELECT DISTINCT RunId, toUnixTimestamp64Nano(Timestamp), Uri, Digest, Version, "
                f"ETag FROM {table} WHERE Operation IN {OUTPUT_OPERATIONS!r} AND {where}",
                values=values[start:start + _CHUNK],
            )
        ]

    def producers(self, artifacts: list[Artifact]) -> list[tuple[Artifact, str, str]]:
        """(artifact, run, evidence) for the run that produced each artifact. The last
        recorded write or copy to its URI before the read put there what was read, unless
        their identities disagree: it wins over a producer stamp (copies carry stamps along)
        and over the same content written elsewhere, with the strongest identity they share
        as evidence ("stamp" when the stamp names that run). Failing that, a stamp with no
        recorded write to its URI; then the last write before the read of the same content
        digest, of the same object version, of the same ETag, of the same URI."""
        by_digest: dict[str, list[_Write]] = {}
        for write in self._writes("Digest", sorted({a.digest for a in artifacts if a.digest})):
            by_digest.setdefault(write.digest, []).append(write)
        by_uri: dict[str, list[_Write]] = {}
        for write in self._writes("Uri", sorted({a.uri for a in artifacts if a.uri})):
            by_uri.setdefault(write.uri, []).append(write)
        found = []
        for artifact in artifacts:
            same_uri = by_uri.get(artifact.uri, [])
            last = _latest(same_uri, artifact.time)
            if artifact.producer and (last is None or last.run == artifact.producer):
                found.append((artifact, artifact.producer, "stamp"))
                continue
            agreed = _agreement(last, artifact) if last is not None else ""
            if agreed:
                found.append((artifact, last.run, agreed))
                continue
            candidates = (
                ("digest", by_digest.get(artifact.digest, []) if artifact.digest else []),
                ("version", [w for w in same_uri if artifact.version
                             and w.version == artifact.version]),
                ("etag", [w for w in same_uri if artifact.etag and w.etag == artifact.etag]),
            )
            for evidence, writes in candidates:
                write = _latest(writes, artifact.time)
                if write is not None:
                    found.append((artifact, write.run, evidence))
                    break
        return found

    def as_written(self, target: Artifact) -> Artifact:
        """`target` with the identities and size of its last recorded write (of its digest,
        when it has one): asked by URI alone, an object is the content last written there,
        and its producer's edge carries the strongest evidence that write's record holds."""
        if not target.uri:
            return target
        rows = self.tables.rows(
            f"SELECT Digest, Version, ETag, Size FROM {self.tables.io} WHERE Uri = %(uri)s "
            f"AND Operation IN {OUTPUT_OPERATIONS!r} AND (%(digest)s = '' OR Digest = %(digest)s) "
            "ORDER BY Timestamp DESC LIMIT 1", uri=target.uri, digest=target.digest)
        if not rows:
            return target
        digest, version, etag, size = rows[0]
        return Artifact(target.uri, target.digest or digest, version, etag, size)

    def produced_inputs(self, runs: list[str]) -> tuple[dict[str, list[Artifact]], set[str]]:
        """What `runs` read that a run may have produced: it carries a producer stamp, or its
        URI or content digest was written by some run. A superset (the write may come after
        the read, or differ in content): `producers` decides. The rest is raw data.

        A run that clew's ingest linked has these kept in clew_links, to which only the
        writes that reached the store since can add; any other is matched in full.
        Returns them per run, and the runs that were linked."""
        rows: dict[tuple, tuple] = {}
        linked_at: dict[str, int] = {}
        for row in self.tables.rows(
            f"SELECT RunId, Uri, Digest, Version, ETag, Size, ProducerRunId, "
            f"toUnixTimestamp64Nano(Timestamp) FROM {self.tables.links} FINAL "
            "WHERE RunId IN %(runs)s",
            runs=runs,
        ):
            if row[1]:
                rows[row[:5]] = row
            elif row[7]:  # a mark at 0: newer records than what is kept
                linked_at[row[0]] = row[7]
        unlinked = [run for run in runs if run not in linked_at]
        if unlinked:
            rows = {key: row for key, row in rows.items() if row[0] in linked_at}
            rows.update((row[:5], row) for row in self._candidates(runs=unlinked))
        since = min(linked_at.values(), default=0)
        if linked_at and self.tables.rows(
            f"SELECT count() > 0 FROM {self.tables.outputs} "
            "WHERE Inserted >= fromUnixTimestamp64Nano(%(since)s)", since=since
        )[0][0]:
            rows.update((row[:5], row) for row in self._candidates(
                written_since=True, runs=sorted(linked_at), since=since))
        found: dict[str, list[Artifact]] = {}
        for row in rows.values():
            found.setdefault(row[0], []).append(Artifact(*row[1:]))
        return found, set(linked_at)

    def _candidates(self, written_since: bool = False, **parameters: Any) -> list[tuple]:
        return self.tables.rows(
            "SELECT RunId, Uri, Digest, Version, ETag, MaxSize, Producer, "
            "toUnixTimestamp64Nano(LastRead) "
            f"FROM ({candidates_sql(self.tables.options, written_since=written_since)})",
            **parameters,
        )

    def listing(self, runs: list[str], group_above: int | None, *, written: bool = False,
                linked: frozenset[str] = frozenset()) -> dict[str, _Listing]:
        """Per run, what it read (`written`: wrote): one Artifact per distinct artifact
        version, except that those in a directory with more than `group_above` of them are
        one ArtifactNode, with the weakest evidence any of them carries; for reads, the
        processes that made each. The inputs of the `linked` runs are kept in clew_run_inputs."""
        kept = sorted(linked) if group_above == GROUP_ABOVE and not written else []
        rows = self.tables.rows(
            f"SELECT RunId, Dir, Files, Bytes, Strength, Items, Readers, ReaderCount "
            f"FROM {self.tables.run_inputs} FINAL "
            "WHERE RunId IN %(runs)s", runs=kept) if kept else []
        rest = [run for run in runs if run not in kept]
        if rest:
            rows += self.tables.rows(
                artifacts_sql(self.tables.options, group_above, written=written), runs=rest)
        role = "written" if written else "read"
        result: dict[str, _Listing] = {}
        # the reads of a directory several processes read from, to look up one by one
        shared: dict[_ReadKey, str] = {}
        for run, directory, count, size, weakest, items, readers, reader_count in sorted(
                rows, key=lambda r: r[:2]):
            listed = result.setdefault(run, _Listing())
            for item in items:
                # what a run wrote names it as its producer
                artifact = Artifact(*item, producer=run if written else "")
                listed.artifacts.append(artifact)
                if reader_count == 1:  # that process read each of them
                    listed.processes.setdefault(artifact.id, []).append((readers, 1))
                else:
                    shared[(run, *item[:4])] = artifact.id
            if not items:
                group = ArtifactNode(id=f"{directory}?{role}-by={run}", uri=directory,
                                     size=size, files=count)
                listed.groups.append((group, _STRENGTHS[weakest]))
                listed.processes[group.id] = [(readers, reader_count)]
        if not written:
            for key, processes in self.processes(set(shared)).items():
                result[key[0]].processes.setdefault(shared[key], []).append(processes)
        return result

    def processes(self, keys: set[_ReadKey]) -> dict[_ReadKey, _Processes]:
        """The processes that made each of the reads `keys` name: looked up by URI, or, for
        more URIs than one statement binds, by their directories (a scan of the runs'
        reads there, cheaper than many lookups by URI)."""
        uris = sorted({key[1] for key in keys})
        column, values = "Uri", uris
        if len(uris) > _CHUNK:
            column = "replaceRegexpOne(Uri, '[^/]*$', '')"
            values = sorted({uri[:uri.rfind("/") + 1] for uri in uris})
        found: dict[_ReadKey, _Processes] = {}
        for start in range(0, len(values), _CHUNK):
            for *key, processes in self.tables.rows(
                f"SELECT RunId, Uri, Digest, Version, ETag, {PROCESSES_SQL} "
                f"FROM {self.tables.reads} WHERE RunId IN %(runs)s AND {column} IN %(values)s "
                "GROUP BY RunId, Uri, Digest, Version, ETag",
                runs=sorted({key[0] for key in keys}), values=values[start:start + _CHUNK],
            ):
                if tuple(key) in keys:
                    found[tuple(key)] = (processes, len(processes))
        return found

    def _written_among(self, runs: list[str], rows: list[tuple]) -> list[Artifact]:
        """What `runs` wrote that has the URI or digest of one of the read `rows`."""
        uris = sorted({row[1] for row in rows})
        digests = sorted({row[2] for row in rows if row[2]})
        found: dict[tuple, Artifact] = {}
        for column, values in (("Uri", uris), ("Digest", digests)):
            for start in range(0, len(values), _CHUNK):
                for run, uri, digest, version, etag, size, time in self.tables.rows(
                    f"SELECT RunId, Uri, Digest, Version, ETag, max(Size), "
                    f"max(toUnixTimestamp64Nano(Timestamp)) "
                    f"FROM {outputs_sql(self.tables.options)} WHERE {column} IN %(values)s "
                    "GROUP BY RunId, Uri, Digest, Version, ETag",
                    runs=runs, values=values[start:start + _CHUNK],
                ):
                    found[(run, uri, digest, version, etag)] = Artifact(
                        uri, digest, version, etag, size, run, time)
        return list(found.values())

    def _reads(self, wheres: list[tuple[str, dict[str, Any]]], runs: list[str] | None
               ) -> list[tuple]:
        """The distinct reads each of `wheres` selects. When `runs` wrote what is looked
        for and were all linked, the readers linked after them have those reads among
        their kept candidates (small, and read whole); only the other runs' reads are
        searched in clew_io."""
        select = ("SELECT RunId, Uri, Digest, Version, ETag, max(ProducerRunId), "
                  "max(toUnixTimestamp64Nano(Timestamp))")
        group = "GROUP BY RunId, Uri, Digest, Version, ETag"
        fresh = ""
        if runs is not None:
            ((linked, since),) = self.tables.rows(
                f"SELECT count(), toUnixTimestamp64Nano(max(Timestamp)) FROM {self.tables.links} "
                "FINAL WHERE Uri = '' AND Timestamp > 0 AND RunId IN %(runs)s", runs=runs)
            if linked == len(runs):
                fresh = (f"(SELECT RunId FROM {self.tables.links} FINAL WHERE Uri = '' "
                         f"AND Timestamp >= fromUnixTimestamp64Nano({int(since)}))")
        stale = 1
        if fresh:
            ((stale,),) = self.tables.rows(f"SELECT count() FROM (SELECT DISTINCT RunId FROM "
                                    f"{self.tables.run_io}) WHERE RunId NOT IN {fresh}")
        rows: dict[tuple, None] = {}
        for where, bound in wheres:
            if fresh:
                rows.update(dict.fromkeys(self.tables.rows(
                    f"{select} FROM {self.tables.links} FINAL WHERE Uri != '' AND RunId IN {fresh} "
                    f"AND {where} {group}", **bound)))
            if not stale:
                continue
            # One statement per key, not one with OR: the OR keeps ClickHouse from using
            # the primary key (Uri) for the URI half (at 10M spans 2.8 s, against 0.15 s +
            # 1.4 s). A group's rows share its Uri and Digest: one both find is one row.
            others = f"RunId NOT IN {fresh} AND " if fresh else ""
            rows.update(dict.fromkeys(self.tables.rows(
                f"{select} FROM {self.tables.reads} WHERE {others}{where} {group}", **bound)))
        return list(rows)

    def readers(self, artifacts: list[Artifact], runs: list[str] | None = None
                ) -> list[tuple[Artifact, str, str, _ReadKey]]:
        """(artifact, run, evidence, read) for every run that read one of `artifacts` (as
        written by its producer): the read names the producer in its stamp, or has the same
        content digest, object version or ETag, or, for an artifact with none of these, the
        same URI at or after the write. With `runs`, the artifacts are everything these runs
        wrote (`artifacts` is not used): only what some run read is fetched."""
        digests = sorted({a.digest for a in artifacts if a.digest})
        uris = sorted({a.uri for a in artifacts if a.uri})
        by_uri = self._among("Uri", uris, runs, OUTPUT_OPERATIONS, "uris")
        by_digest = self._among("Digest", digests, runs, OUTPUT_OPERATIONS, "digests")
        rows = self._reads([by_uri] + ([by_digest] if digests or runs else []), runs)
        if runs is not None:
            artifacts = self._written_among(runs, rows) if rows else []
        # Every kind of evidence needs the same digest or the same URI: look only there.
        index: dict[tuple[str, str], list[int]] = {}
        for position, artifact in enumerate(artifacts):
            if artifact.digest:
                index.setdefault(("digest", artifact.digest), []).append(position)
            index.setdefault(("uri", artifact.uri), []).append(position)
        found = []
        for run, uri, digest, version, etag, producer, time in rows:
            read = Artifact(uri, digest, version, etag, producer=producer, time=time)
            candidates = set(index.get(("uri", uri), ()))
            if digest:
                candidates.update(index.get(("digest", digest), ()))
            for position in sorted(candidates):
                artifact = artifacts[position]
                evidence = _read_of(artifact, read)
                if evidence:
                    found.append((artifact, run, evidence, (run, uri, digest, version, etag)))
        return found

    def run_nodes(self, runs: list[str]) -> list[RunNode]:
        if not runs:
            return []
        nodes = {
            run: RunNode(
                id=run, command=list(command), start=iso_utc(start),
                end=iso_utc(end), status=run_status(status, exit_code),
                git_commit=commit, git_branch=branch, git_dirty=bool(dirty), host=host,
                diff_files=list(diff_files), code_files=list(code_files),
                code_digests=list(code_digests), runtime=runtime, packages=list(packages),
                ranks=sorted(r for r in ranks if r >= 0),
            )
            for (run, command, start, end, status, exit_code, commit, branch, dirty, host,
                 diff_files, code_files, code_digests, runtime, packages, ranks)
            in self.tables.rows(
                f"SELECT r.RunId, Command, Start, End, StatusCode, ExitCode, GitCommit, "
                f"GitBranch, GitDirty, Host, DiffFiles, CodeFiles, CodeDigests, Runtime, "
                f"Packages, io.Ranks FROM (SELECT * FROM {self.tables.runs} FINAL "
                f"WHERE RunId IN %(runs)s) AS r LEFT JOIN (SELECT RunId, "
                f"groupUniqArrayArray(Ranks) AS Ranks FROM {self.tables.run_io} "
                f"WHERE RunId IN %(runs)s GROUP BY RunId) AS io ON io.RunId = r.RunId",
                runs=runs,
            )
        }
        # A stamp can name a run whose root span is not in this store (yet): still a node.
        return [nodes.get(run, RunNode(id=run, status="unknown")) for run in runs]


def _agreement(write: _Write, read: Artifact) -> str:
    """The strongest identity `write` and `read` both carry when none of those they both
    carry differs ("uri+time" when they share none), else ""."""
    shared = [(kind, written, seen) for kind, written, seen in (
        ("digest", write.digest, read.digest), ("version", write.version, read.version),
        ("etag", write.etag, read.etag)) if written and seen]
    if any(written != seen for _, written, seen in shared):
        return ""
    return shared[0][0] if shared else "uri+time"


def _read_of(written: Artifact, read: Artifact) -> str:
    """The evidence that `read` read the content `written` describes, or ""."""
    if written.producer and read.producer == written.producer and read.uri == written.uri:
        return "stamp"
    if written.digest:
        return "digest" if read.digest == written.digest else ""
    if read.uri != written.uri or (written.time and read.time < written.time):
        return ""
    if written.version:
        return "version" if read.version == written.version else ""
    if written.etag:
        return "etag" if read.etag == written.etag else ""
    return "uri+time"


def _upstream(walk: _Walk, target: Artifact, depth: int, group_above: int | None) -> Graph:
    """From an artifact to the run that wrote it, to what that run read, to the runs that
    produced those inputs, and so on: one level of runs per few queries. Only the inputs
    that may have a producer are looked up; the raw ones are listed (or grouped) only."""
    graph = Graph(root=target.id)
    graph.add_node(target.node())
    frontier = [target]
    seen_runs: set[str] = set()
    looked_up: set[Artifact] = {target}
    for _ in range(depth):
        links = walk.producers(frontier)
        for artifact, run, evidence in links:
            graph.add_edge(Edge(run, artifact.id, "wrote", evidence))
        new_runs = _add_runs(walk, graph, {run for _, run, _ in links}, seen_runs)
        if not new_runs:
            break
        candidates, linked = walk.produced_inputs(new_runs)
        listing = walk.listing(new_runs, group_above, linked=frozenset(linked))
        _add_processes(walk, listing, candidates)
        for run in new_runs:
            _add_listing(graph, run, listing.get(run, _Listing()), candidates.get(run, []),
                         upstream=True)
        frontier = [a for run in new_runs for a in candidates.get(run, [])
                    if a not in looked_up]
        looked_up.update(frontier)
        if not frontier:
            break
    return graph


def _downstream(walk: _Walk, target: Artifact, depth: int, group_above: int | None
                ) -> Graph:
    """From an artifact to the runs that read it, to what they wrote, to the runs that
    read that, and so on: one level of runs per few queries. Only the outputs that some run
    read are looked up; the others are listed (or grouped) only."""
    graph = Graph(root=target.id)
    graph.add_node(target.node())
    seen_runs: set[str] = set()
    runs: list[str] | None = None  # after the first level: the runs whose outputs are next
    for level in range(depth + 1):
        links = walk.readers([target], runs) if level < depth else []
        if runs:
            read: dict[str, list[Artifact]] = {}
            for artifact, *_ in links:
                read.setdefault(artifact.producer, []).append(artifact)
            listing = walk.listing(runs, group_above, written=True)
            for run in runs:
                _add_listing(graph, run, listing.get(run, _Listing()), read.get(run, []),
                             upstream=False)
        processes = walk.processes({key for *_, key in links})
        edges: dict[tuple[Artifact, str, str], list[_Processes]] = {}
        for artifact, run, evidence, key in links:
            edges.setdefault((artifact, run, evidence), []).append(processes.get(key, ([], 0)))
        for (artifact, run, evidence), groups in edges.items():
            _add_artifact(graph, artifact, _read_edge(artifact.id, run, evidence, groups))
        runs = _add_runs(walk, graph, {link[1] for link in links}, seen_runs)
        if not runs:
            break
    return graph


def _add_runs(walk: _Walk, graph: Graph, linked: set[str], seen: set[str]) -> list[str]:
    """The runs `linked` not `seen` before, added to the graph (and to `seen`)."""
    runs = sorted(linked - seen)
    seen.update(runs)
    for node in walk.run_nodes(runs):
        graph.add_node(node)
    return runs


def _add_processes(walk: _Walk, listing: dict[str, _Listing],
                   candidates: dict[str, list[Artifact]]) -> None:
    """The processes that read the `candidates` (the inputs on the walk's path) that the
    listing does not name on their own (they are among a directory's many), added to it."""
    keys = {(run, a.uri, a.digest, a.version, a.etag): a.id
            for run, artifacts in candidates.items() for a in artifacts
            if a.id not in listing.get(run, _Listing()).processes}
    for key, processes in walk.processes(set(keys)).items():
        listing.setdefault(key[0], _Listing()).processes.setdefault(keys[key], []).append(
            processes)


def _add_listing(graph: Graph, run: str, listing: _Listing, on_path: list[Artifact], *,
                 upstream: bool) -> None:
    """What `run` read (`upstream`, with the processes that read it) or wrote, as nodes and
    edges: its artifacts, and its directories of many; an artifact on the walk's path (it
    has a producer, or a reader) stands on its own, out of its directory's count."""
    def edge(node_id: str, evidence: str) -> Edge:
        if upstream:
            return _read_edge(node_id, run, evidence, listing.processes.get(node_id, []))
        return Edge(run, node_id, "wrote", evidence)

    for artifact in listing.artifacts:
        _add_artifact(graph, artifact, edge(artifact.id, artifact.evidence))
    for group, evidence in listing.groups:
        inside = [a for a in on_path
                  if a.uri.startswith(group.uri) and "/" not in a.uri[len(group.uri):]]
        group.files -= len(inside)
        group.size -= sum(max(a.size, 0) for a in inside)
        graph.add_node(group)
        graph.add_edge(edge(group.id, evidence))
        for artifact in inside:
            _add_artifact(graph, artifact, edge(artifact.id, artifact.evidence))


def _add_artifact(graph: Graph, artifact: Artifact, edge: Edge) -> None:
    if artifact.id not in graph:  # a node costs ~10 us: make new ones only
        graph.add_node(artifact.node())
    graph.add_edge(edge)


def lineage(
    client: Any,
    name: str,
    *,
    options: SchemaOptions | None = None,
    depth: int = MAX_DEPTH,
    group_above: int | None = GROUP_ABOVE,
) -> Graph:
    """Everything upstream of the artifact `name` (a path, URI or digest), `depth` runs deep.
    The raw inputs a run read from one directory, when more than `group_above` (None: never),
    are one node.

    Raises:
        LookupError: no run in the store wrote that artifact.
    """
    walk = _Walk(Tables(client, options))
    graph = _upstream(walk, walk.as_written(resolve(name)), depth, group_above)
    if not graph.edges:
        raise LookupError(f"no run in the store wrote {name}: `clew runs` lists what is recorded")
    return graph


def impact(
    client: Any,
    name: str,
    *,
    options: SchemaOptions | None = None,
    depth: int = MAX_DEPTH,
    group_above: int | None = GROUP_ABOVE,
) -> Graph:
    """Everything downstream of the artifact `name`: the runs that read it (by content
    digest, or by URI when it has none), what they wrote, who read that, and so on. The
    outputs a run wrote to one directory that no run read, when more than `group_above`
    (None: never), are one node.

    Raises:
        LookupError: no run in the store read or wrote that artifact (one that a run wrote
            and none read has an empty impact, not an unknown one).
    """
    walk = _Walk(Tables(client, options))
    target = resolve(name)
    graph = _downstream(walk, target, depth, group_above)
    if not graph.edges and not walk.producers([target]):
        raise LookupError(
            f"no run in the store read or wrote {name}: `clew runs` lists what is recorded")
    return graph
