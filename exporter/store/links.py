"""clew_links and clew_run_inputs: per run, the inputs that a recorded run may have produced,
and what the run read, per directory.

Matching a run's inputs against every write in the store reads the whole of `clew_outputs`
(8 bytes a write: 40-100 ms at 7.5M writes) however few inputs have a producer, and a lineage
walk would pay that for each run on its path. `clew ingest` pays it once, at its end, for the
runs it brought records of, and keeps the answer here; the walk then reads a run's candidates
by its id, and matches them against only the writes that arrived after they were computed.

A candidate is a read that carries a producer stamp, or whose URI or content digest some run
wrote: a superset of the reads that have a producer (the write may come after the read), from
which lineage picks by evidence. A row with an empty Uri marks a run as linked, at its
Timestamp, even when none of its inputs has a candidate producer; a mark at time 0 says that
the run has records newer than what is kept (an ingest under way, or one that crashed). Runs
without a mark (their spans came from a Collector or from clew's direct export) are matched
against every write as the walk reaches them.

The walk also lists each run's inputs, grouping the directories it read more than
GROUP_ABOVE files from: a GROUP BY over all the run's reads (50 ms for 80,000), kept in
`clew_run_inputs`. That depends on the run's own reads alone, so `clew ingest` keeps it
(`list_runs`) as soon as a batch brings none of a run's records, during the ingest, and at
its end only for the runs still to list; the run's mark, written with its candidates at the
end, is what says that both are current.
"""

from __future__ import annotations

from collections.abc import Callable, Set as AbstractSet
from typing import Any

from .lineage import (
    IO_TABLE,
    LINKS_TABLE,
    OUTPUTS_TABLE,
    RUN_INPUTS_TABLE,
    RUN_IO_TABLE,
)
from .schema import SchemaOptions, qualified_name

# Each statement scans clew_io (keyed by URI, not run) and holds its runs' reads in sets:
# fewer, larger statements for a bulk ingest (1,000 runs of the 1M-span benchmark: 15 s in
# batches of 50 runs, 9 s in batches of ~1M reads; docs/architecture.md), as large as a
# memory budget of about 250 bytes a read allows, and few enough runs that the statement
# stays under max_query_size (256 KiB).
_COUNT_READS_ABOVE = 50  # up to this many runs: one statement, without counting reads first
_READS_PER_STATEMENT = 1_000_000
_MAX_RUNS_PER_STATEMENT = 1_000
_COLUMNS = "RunId, Uri, Digest, Version, ETag, Size, ProducerRunId, Timestamp"
# A run's inputs from one directory, when more than this, are one node of a lineage graph.
GROUP_ABOVE = 50
# What a run copied or renamed it also read: the source, with the identities the copy record
# carries (a copy holds the source's content; an object's version is the destination's own).
COPY_OPERATIONS = ("copy", "rename")
# The processes that made a group of clew_io rows, each (Rank, Worker, Pid) (-1: no rank, no
# DataLoader worker; 0: no pid), in that order; lineage names at most MAX_READERS of them on
# an edge, with their number.
PROCESSES_SQL = "arraySort(groupUniqArray((Rank, Worker, Pid)))"
MAX_READERS = 16


def reads_sql(options: SchemaOptions) -> str:
    """A relation of clew_io's columns holding every read: the read records, and the source
    of each copy or rename as read by the run that copied it, so that lineage, impact and
    check follow a copy from its source to its destination through the copying run."""
    io = qualified_name(options, IO_TABLE)
    # The copies are selected in a subquery: a WHERE beside the REPLACE would see its aliases.
    return (
        f"(SELECT * FROM {io} WHERE Operation = 'read' UNION ALL "
        f"SELECT * REPLACE (SourceUri AS Uri, 'read' AS Operation, '' AS Version, "
        f"'' AS ProducerRunId, '' AS ProducerSpanId) FROM (SELECT * FROM {io} "
        f"WHERE Operation IN {COPY_OPERATIONS!r} AND SourceUri != ''))"
    )


def candidates_sql(options: SchemaOptions, *, written_since: bool = False,
                   every_write: bool = False) -> str:
    """SELECT _COLUMNS (the last three as MaxSize, Producer, LastRead): the candidate inputs
    of the runs `%(runs)s`, one row per distinct artifact version read. With
    `written_since`, only those that match a write that reached the store at or after
    `%(since)s` (ns since the epoch). Writes are matched in clew_outputs, which holds
    exactly clew_io's writes, copies and renames: smaller to read than clew_io.

    The same rows either way, `every_write` or not: with it, the reads are matched against
    the URIs and digests of every write; without it, only against the writes of what the
    runs read, which reads the runs' reads twice more to find them. So `every_write` when the
    store holds fewer writes than the runs' reads (a bulk ingest: its whole store)."""
    outputs = qualified_name(options, OUTPUTS_TABLE)
    reads = f"FROM {reads_sql(options)} WHERE RunId IN %(runs)s"
    if written_since:
        recent = f"FROM {outputs} WHERE Inserted >= fromUnixTimestamp64Nano(%(since)s)"
        match = (f"Uri IN (SELECT Uri {recent}) "
                 f"OR (Digest != '' AND sipHash64(Digest) IN (SELECT DigestKey {recent}))")
    elif every_write:
        match = (f"ProducerRunId != '' OR Uri IN (SELECT Uri FROM {outputs}) "
                 f"OR (Digest != '' AND sipHash64(Digest) IN (SELECT DigestKey FROM {outputs}))")
    else:
        match = (f"ProducerRunId != '' "
                 f"OR Uri IN (SELECT Uri FROM {outputs} WHERE Uri IN (SELECT Uri {reads})) "
                 f"OR (Digest != '' AND sipHash64(Digest) IN (SELECT DigestKey FROM {outputs} "
                 f"WHERE DigestKey IN (SELECT sipHash64(Digest) {reads} AND Digest != '')))")
    return (
        "SELECT RunId, Uri, Digest, Version, ETag, max(Size) AS MaxSize, "
        f"max(ProducerRunId) AS Producer, max(Timestamp) AS LastRead {reads} AND ({match}) "
        "GROUP BY RunId, Uri, Digest, Version, ETag"
    )


def listing_sql(relation: str, group_above: int | None) -> str:
    """SELECT RunId, Dir, Files, Bytes, Strength, Items, Readers, ReaderCount: per run of
    `%(runs)s` and directory, how many distinct artifact versions `relation` (a relation of
    clew_io's columns) holds there, their total size, the weakest identity any carries (0 URI
    only, 1 ETag, 2 version, 3 digest), when there are at most `group_above` (None: always),
    each (Uri, Digest, Version, ETag, Size), and the processes that made them there
    (PROCESSES_SQL's, at most MAX_READERS) and their number. Not per artifact: that costs a
    GROUP BY of every read (2-4 times the time), and most directories are read by one
    process."""
    # groupUniqArray's cap is a literal: one more than a small directory can hold
    every, capped = ("1", "groupUniqArray") if group_above is None else (
        f"Files <= {int(group_above)}", f"groupUniqArray({int(group_above) + 1})")
    return (
        "SELECT RunId, replaceRegexpOne(Uri, '[^/]*$', '') AS Dir, "
        "uniqExact(Uri, Digest, Version, ETag) AS Files, "
        "arraySum(x -> greatest(x.2, 0), groupUniqArray((Uri, Size))) AS Bytes, "
        "min(multiIf(Digest != '', 3, Version != '', 2, ETag != '', 1, 0)) AS Strength, "
        f"if({every}, {capped}((Uri, Digest, Version, ETag, Size)), []) AS Items, "
        f"arraySlice({PROCESSES_SQL} AS Processes, 1, {MAX_READERS}) AS Readers, "
        "length(Processes) AS ReaderCount "
        f"FROM {relation} WHERE RunId IN %(runs)s "
        "GROUP BY RunId, Dir"
    )


def link_runs(client: Any, options: SchemaOptions, runs: list[str], *,
              listed: AbstractSet[str] = frozenset(),
              wait_listed: Callable[[], object] = lambda: None) -> None:
    """Compute and keep the candidate inputs of `runs` and their inputs per directory,
    replacing what was kept for them; of the runs in `listed`, `list_runs` keeps the inputs
    per directory elsewhere (after their last records arrived, or in another thread, which
    `wait_listed` waits for before any run is marked), and they are not computed here."""
    if not runs:
        return
    links = qualified_name(options, LINKS_TABLE)
    # The time is taken before any candidates are computed (a write that lands meanwhile is
    # newer, so the walk matches it again) and each mark written after its runs' candidates
    # (a run whose candidates did not all make it is not marked, and is matched in full).
    # One time for all: every write in the store before it was there for every run.
    ((at, writes),) = client.query(
        "SELECT toUnixTimestamp64Nano(now64(9)), "
        f"(SELECT count() FROM {qualified_name(options, OUTPUTS_TABLE)})").result_rows
    for batch, reads in _batches_by_reads(client, options, runs):
        select = candidates_sql(options, every_write=reads is not None and writes < reads)
        client.command(f"INSERT INTO {links} ({_COLUMNS}) {select}", parameters={"runs": batch})
        _list(client, options, [run for run in batch if run not in listed])
        wait_listed()
        _mark(client, links, batch, at)


def list_runs(client: Any, options: SchemaOptions, runs: list[str]) -> None:
    """Keep the inputs per directory of `runs`, whose records are all in the store, ahead of
    `link_runs` (given them as `listed`). Unlike candidates, they depend on the runs' own
    reads alone, not on writes still to come; a run counts as linked only once `link_runs`
    marks it, so a crash in between leaves it matched in full."""
    for batch, _ in _batches_by_reads(client, options, runs):
        _list(client, options, batch)


def _list(client: Any, options: SchemaOptions, runs: list[str]) -> None:
    """The inputs per directory of `runs`, replacing what was kept for them (a directory a
    run no longer reads from cannot happen: its reads only accumulate)."""
    if runs:
        client.command(f"INSERT INTO {qualified_name(options, RUN_INPUTS_TABLE)} "
                       f"{listing_sql(reads_sql(options), GROUP_ABOVE)}",
                       parameters={"runs": runs})


def unlink_runs(client: Any, options: SchemaOptions, runs: list[str]) -> None:
    """Mark `runs` as not linked (a mark at time 0), until `link_runs` marks them again."""
    links = qualified_name(options, LINKS_TABLE)
    for first in range(0, len(runs), _MAX_RUNS_PER_STATEMENT):
        _mark(client, links, runs[first:first + _MAX_RUNS_PER_STATEMENT], 0)


def _batches_by_reads(client: Any, options: SchemaOptions,
                      runs: list[str]) -> list[tuple[list[str], int | None]]:
    """`runs` in order, in batches of at most _READS_PER_STATEMENT reads (or one run), each
    with its number of reads (None: not counted, for a few runs)."""
    if len(runs) <= _COUNT_READS_ABOVE:
        return [(runs, None)] if runs else []
    reads: dict[str, int] = {}
    for first in range(0, len(runs), _MAX_RUNS_PER_STATEMENT):
        reads.update(client.query(
            f"SELECT RunId, count() FROM {qualified_name(options, IO_TABLE)} "
            "WHERE RunId IN %(runs)s AND Operation = 'read' GROUP BY RunId",
            parameters={"runs": runs[first:first + _MAX_RUNS_PER_STATEMENT]},
        ).result_rows)
    batches: list[tuple[list[str], int | None]] = []
    batch: list[str] = []
    held = 0
    for run in runs:
        count = reads.get(run, 0)
        if batch and (held + count > _READS_PER_STATEMENT or len(batch) >= _MAX_RUNS_PER_STATEMENT):
            batches.append((batch, held))
            batch, held = [], 0
        batch.append(run)
        held += count
    return [*batches, (batch, held)]


def _mark(client: Any, links: str, runs: list[str], at: int) -> None:
    """The rows that say `runs` were linked at `at` (ns; 0: not linked now)."""
    client.command(f"INSERT INTO {links} (RunId, Uri, Timestamp) SELECT arrayJoin(%(runs)s), "
                   "'', fromUnixTimestamp64Nano(%(at)s)", parameters={"runs": runs, "at": at})


def link_all(client: Any, options: SchemaOptions) -> None:
    """Link every run the store holds (after the lineage tables were filled anew)."""
    runs = [run for (run,) in client.query(
        f"SELECT DISTINCT RunId FROM {qualified_name(options, RUN_IO_TABLE)} ORDER BY RunId"
    ).result_rows]
    link_runs(client, options, runs)
