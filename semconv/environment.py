"""clew's environment variables, how each is read, and where its files live.

Hand-written, not generated: these are the settings every layer reads (capture, spool,
store, CLI), so they live with the rest of the shared vocabulary, each one named and
parsed here only. A bad value falls back to the default with a warning, as OpenTelemetry's
own settings do: a typo in an environment variable must not stop a training job.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final, TypeVar

_logger = logging.getLogger(__name__)
_Number = TypeVar("_Number", int, float)
_warned: set[tuple[str, str]] = set()

CLEW_HOME: Final = "CLEW_HOME"
"""Directory for the spool, the digest cache and the embedded store. Default: `.clew` at the
git root of the working directory, else in the working directory."""

CLEW_HASH: Final = "CLEW_HASH"
"""`1` (default) to take blake3 content digests of local files, `0` for stat identity only."""

CLEW_HASH_MAX_BYTES: Final = "CLEW_HASH_MAX_BYTES"
"""Files larger than this many bytes get stat identity instead of a digest. Default 4 GiB."""

CLEW_INCLUDE: Final = "CLEW_INCLUDE"
"""Comma-separated globs of paths to record even when a default rule excludes them."""

CLEW_EXCLUDE: Final = "CLEW_EXCLUDE"
"""Comma-separated globs of paths never to record, added to the defaults."""

CLEW_FLUSH_INTERVAL: Final = "CLEW_FLUSH_INTERVAL"
"""Seconds between flushes of records to the exporters. Default 1.0; a crash loses at most
about this much."""

CLEW_STORE: Final = "CLEW_STORE"
"""The store `clew` commands and the ClickHouse exporter use: `chdb://<directory>` (embedded;
default `<CLEW_HOME>/db`) or `http(s)://user@host:8123/db` (a ClickHouse server)."""

CLEW_STORE_PASSWORD: Final = "CLEW_STORE_PASSWORD"
"""The password of a ClickHouse server store: kept out of `CLEW_STORE`, so no URL clew prints
or logs carries it."""

CLEW_STORE_WAIT: Final = "CLEW_STORE_WAIT"
"""Seconds a `clew` command waits for an embedded store another process holds (also
`clew --wait`; the command line parses it). Default 30."""

CLEW_SPOOL_PENDING_MAX_BYTES: Final = "CLEW_SPOOL_PENDING_MAX_BYTES"
"""Bytes of spool lines that could not be written (disk full, a file-size limit) kept in
memory for the next try. Default 64 MiB; past it the oldest are dropped, counted and
reported at exit."""

CLEW_REDACT: Final = "CLEW_REDACT"
"""Comma-separated names whose values clew redacts, added to its own (password, token, key,
...): option, variable, header, query-parameter or JSON-key names such as `db-url`, or a
single-letter option such as `-a`. docs/security.md gives the rules."""

CLEW_REDACT_KEEP: Final = "CLEW_REDACT_KEEP"
"""Comma-separated names whose values clew records although they look secret, e.g.
`sort-key` or `-p` (for programs where `-p` is never a password)."""

CLEW_RUN_ID: Final = "CLEW_RUN_ID"
"""Set by clew in children's environment: the trace id of the run they belong to."""

CLEW_STAMP: Final = "CLEW_STAMP"
"""`1` (default) to stamp local files a run writes with their producer (a user xattr) and to
look for stamps on local reads; `0` to do neither, and to write no object stamps either.
Stamps that an object store returns are still read."""

CLEW_STAMP_OBJECTS: Final = "CLEW_STAMP_OBJECTS"
"""`1` to also stamp S3 and GCS writes with their producer, in the object's user metadata;
`0` (default): clew never writes into a user's objects or their metadata (a program sees that
metadata: HEAD and `metadata()` would return the stamp). Lineage across runs then rests on
digests, object versions and ETags."""

CLEW_PRELOAD: Final = "CLEW_PRELOAD"
"""`1` (default) to load clew's LD_PRELOAD library into the programs a run starts that are not
an instrumented Python (cp, tar, a shell pipeline, a compiled tool), so their file reads,
writes, renames and deletes are recorded under their exec span; `0` to leave them opaque."""

CLEW_NATIVE: Final = "CLEW_NATIVE"
"""`1` (default) to also record the files native code inside the Python process opens (a C,
C++ or Rust library no clew hook names), by redirecting the loaded libraries' calls to libc's
open family to clew's wrappers; `0` to leave them unrecorded (docs/architecture.md)."""

CLEW_METRIC_FILES: Final = "CLEW_METRIC_FILES"
"""Comma-separated globs of the files a run writes that clew reads metrics from, in place of
`DEFAULT_METRIC_FILES`; `0` for none. A glob without `/` matches the file's name, one with `/`
the end of its path. Files over `METRIC_FILE_MAX_BYTES` are not read."""

CLEW_PRELOAD_DIR: Final = "CLEW_PRELOAD_DIR"
"""Set by clew in such a program's environment: where its LD_PRELOAD library writes its records
(read by the process that started the program)."""

STAMP_METADATA_KEY: Final = "clew-producer"
"""Object metadata key of the producer stamp (S3 `x-amz-meta-clew-producer`, GCS metadata).
Its value: the producer span as a W3C traceparent, then a space and the content digest when
the producer knew it."""

STAMP_XATTR: Final = "user.clew.producer"
"""Extended attribute holding the producer stamp of a local file (same value format)."""

RESOURCE_DETECTOR: Final = "clew"
"""Name of clew's OpenTelemetry resource detector (the distributed-run placement: rank,
node, launcher), which clew's distro adds to OTEL_EXPERIMENTAL_RESOURCE_DETECTORS."""

DEFAULT_METRIC_FILES: Final = (
    "metrics*.json", "metrics*.yaml", "metrics*.yml", "metrics*.csv", "metrics*.tsv",
    "*results*.json", "trainer_state.json", "events.out.tfevents.*", "mlruns/*/*/metrics/*",
)
"""The metric files clew reads by default: metrics files in JSON, YAML, CSV or TSV (Lightning's
`metrics.csv` among them), results files (transformers' `all_results.json`,
`eval_results.json`), a transformers Trainer's `trainer_state.json`, TensorBoard event files and
the metric files of MLflow's file store."""
METRIC_FILE_MAX_BYTES: Final = 1 << 20

INSTRUMENTOR_GROUP: Final = "clew_instrumentor"
"""Entry point group of clew's instrumentors (files, processes, native opens and the library
hooks), which its one OpenTelemetry instrumentor, `clew`, loads (instrumentation/loader.py
says why)."""

DEFAULT_HASH_MAX_BYTES: Final = 4 << 30
DEFAULT_FLUSH_INTERVAL: Final = 1.0
DEFAULT_SPOOL_PENDING_MAX_BYTES: Final = 64 << 20

HOME_DIRNAME: Final = ".clew"
SPOOL_DIRNAME: Final = "spool"
CACHE_DIRNAME: Final = "cache"
PRELOAD_DIRNAME: Final = "preload"


def flag(variable: str, default: bool = True) -> bool:
    """Whether the switch `variable` is on: anything but 0, false, no or off is."""
    raw = os.environ.get(variable)
    if raw is None:
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


def names(variable: str) -> tuple[str, ...]:
    """The comma-separated entries of `variable`, blanks dropped."""
    return tuple(entry.strip() for entry in os.environ.get(variable, "").split(",") if entry.strip())


def metric_files() -> tuple[str, ...]:
    """`CLEW_METRIC_FILES`: the globs of the metric files, the defaults when unset."""
    if os.environ.get(CLEW_METRIC_FILES) is None:
        return DEFAULT_METRIC_FILES
    if not flag(CLEW_METRIC_FILES):
        return ()
    return names(CLEW_METRIC_FILES)


def flush_interval() -> float:
    """`CLEW_FLUSH_INTERVAL`: the recorder's flush schedule and the span processor's."""
    return positive_number(CLEW_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL, float)


def hash_max_bytes() -> int:
    """`CLEW_HASH_MAX_BYTES`."""
    return positive_number(CLEW_HASH_MAX_BYTES, DEFAULT_HASH_MAX_BYTES, int)


def spool_pending_max_bytes() -> int:
    """`CLEW_SPOOL_PENDING_MAX_BYTES`."""
    return positive_number(CLEW_SPOOL_PENDING_MAX_BYTES, DEFAULT_SPOOL_PENDING_MAX_BYTES, int)


def store_url(home: Path | None = None) -> str:
    """`CLEW_STORE`, else the embedded store under clew's home (`home`, else resolved)."""
    configured = os.environ.get(CLEW_STORE)
    if configured:
        return configured
    return f"chdb://{(home or resolve_home()) / 'db'}"


def positive_number(variable: str, default: _Number, kind: type[_Number]) -> _Number:
    """The positive `kind` in `variable`, else `default`: a bad value falls back with a
    warning, as OpenTelemetry's own settings do (a typo must not stop a training job)."""
    raw = os.environ.get(variable)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw)
    except ValueError:
        problem = "not a number"
    else:
        if value > 0:
            return value
        problem = "must be positive"
    if (variable, raw) not in _warned:  # several layers read one setting: one warning
        _warned.add((variable, raw))
        _logger.warning("clew: ignoring %s=%r (%s); using %s", variable, raw, problem, default)
    return default


def resolve_home(cwd: str | os.PathLike[str] | None = None) -> Path:
    """Return clew's home directory, without creating it.

    `CLEW_HOME` wins; otherwise `.clew` at the root of the git work tree that holds `cwd`,
    found by walking up to a `.git` entry (no git process: this runs at start-up), else
    `.clew` in `cwd` itself.
    """
    configured = os.environ.get(CLEW_HOME)
    if configured:
        return Path(configured).expanduser().absolute()
    start = Path(cwd if cwd is not None else os.getcwd()).absolute()
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory / HOME_DIRNAME
    return start / HOME_DIRNAME


def ensure_home(home: Path) -> Path:
    """Create `home` if needed, with a .gitignore that keeps it out of git."""
    home.mkdir(parents=True, exist_ok=True)
    ignore = home / ".gitignore"
    if not ignore.exists():
        try:
            with open(ignore, "x", encoding="utf-8") as handle:
                handle.write("# clew's spool, caches and store: not source\n*\n")
        except FileExistsError:
            pass  # another process of the run made it first
    return home
