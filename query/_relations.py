"""The relations over clew_io that questions read and ingest does not keep: what a run left
in place as its outputs, and the per-directory listing of what it read or wrote.

What ingest keeps for the walk (a run's candidate inputs, its reads per directory) is made by
`clew.exporter.store.links` with the same SQL the walk runs for a run ingest did not link, so
that both give one answer; this module builds on those.
"""

from __future__ import annotations

from clew.exporter.store.lineage import IO_TABLE, OUTPUT_OPERATIONS
from clew.exporter.store.links import listing_sql, reads_sql
from clew.exporter.store.schema import SchemaOptions, qualified_name


def outputs_sql(options: SchemaOptions) -> str:
    """A relation of clew_io's columns holding what the runs `%(runs)s` wrote, copied or
    renamed into place and left there: a URI the run deleted after its last write to it
    (`tempfile`'s probe that `import torch` writes, a scratch file) is no output of the
    run; its records stay in clew_io."""
    io = qualified_name(options, IO_TABLE)
    written = f"{OUTPUT_OPERATIONS!r}"
    return (
        f"(SELECT * FROM {io} WHERE RunId IN %(runs)s AND Operation IN {written} "
        f"AND (RunId, Uri) NOT IN (SELECT RunId, Uri FROM {io} WHERE RunId IN %(runs)s "
        f"AND Uri IN (SELECT Uri FROM {io} WHERE RunId IN %(runs)s AND Operation = 'delete') "
        f"GROUP BY RunId, Uri HAVING maxIf(Timestamp, Operation = 'delete') "
        f">= maxIf(Timestamp, Operation IN {written})))"
    )


def artifacts_sql(options: SchemaOptions, group_above: int | None, *, written: bool = False
                  ) -> str:
    """`listing_sql` of what the runs `%(runs)s` read (`written`: wrote, as `outputs_sql`),
    per run and directory."""
    return listing_sql(outputs_sql(options) if written else reads_sql(options), group_above)
