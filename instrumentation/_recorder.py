"""The recording core every capture source shares.

Hooks call the cheap methods (`read`, `opened_for_write`, `renamed`, ...) on the host's
threads: a stat, a dict lookup, an append. A background worker gives each new record its
identity (digest from the persistent cache, else blake3 of the file, read from the page cache
while the host goes on) and, every flush interval, turns finished records into spans. Files
opened for writing are watched by stat until their content settles, so a write's digest is
that of its final content.
"""

from __future__ import annotations

import itertools
import logging
import operator
import os
import stat
from stat import S_ISREG
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from clew.semconv import attributes as attr
from clew.semconv import environment
from clew.semconv import spans
from clew.semconv.redaction import redact_text

from . import _config_files, _ended_spans, _metric_points, _record_spans, _stamps, _stream_digests
from ._clew_io import clew_io
from ._file_digests import (
    DigestCache,
    StatKey,
    content_digest,
    hash_file,
    read_version,
    stat_key,
)
from ._guard import guard, log
from ._imported import module_sources, remember_walk
from ._paths import PathFilter, is_project_source, project_root
from ._process_span import ProcessSpan
from ._record_spans import Record
from ._settings import Settings

try:  # Recorder.read in C (_open_hook_read.c), once files.py has configured that extension
    from ._open_hook import read as _read_in_c
except ImportError:
    _read_in_c = None

if TYPE_CHECKING:
    from ._metric_files import MetricFiles

_logger = logging.getLogger(__name__)

# Bounds memory on programs that touch millions of files: past this many distinct reads the
# dedupe table starts over (later re-reads make a second record; none is lost). An entry
# holds its record, ~600 bytes.
_MAX_TRACKED = 1 << 15
# Records that finish faster than this many per flush interval are emitted as soon as this
# many are waiting: the records, and the spans made of them, would otherwise all be held
# until the next flush (a loader opening 100,000 small files a second would hold ~100 MB).
_SPILL_RECORDS = 4096
# The worker is woken by new records at most once in this long (see _work).
_GATHER = 0.02
SYNC_HASH_MAX_BYTES = 1 << 20
# A non-Python child's reads are hashed ahead (`hash_ahead`) this many bytes of small files at
# a time, read in one call; a file this large or larger is read and hashed by itself, in chunks.
_AHEAD_BATCH_BYTES = 4 << 20
# A writer stamps its file at a flush once the write settled, within a few flush intervals of
# its last change: a read's stamp is looked for again at the flush unless the version read
# had not changed for this long (or this many flush intervals, if longer) when it was read.
STAMP_SETTLED_SECONDS, STAMP_SETTLED_FLUSHES = 60.0, 10
_STAMPED_OPERATIONS = ("write", "copy", "rename")  # file records whose span stamps the file
# Config contents kept for the worker at once (each under 64 KiB): a program rewrites a few
# configs it read, within one flush.
_MAX_KEPT_CONFIGS = 16


_STOP_TIMEOUT = 60.0
_FIRST_NS, _LAST_NS = operator.attrgetter("first_ns"), operator.attrgetter("last_ns")


class _Watch:
    """A file this process opened for writing, followed until its content settles."""

    __slots__ = ("record", "seen", "emitted", "quiet")

    def __init__(self, record: Record, emitted: StatKey | None) -> None:
        self.record = record
        self.seen: StatKey | None = None  # stat key at the previous flush
        self.emitted = emitted  # stat key of the last version recorded
        self.quiet = 0  # flushes since it last changed


class Clock:
    """Where the recorder reads the time: the wall clock for its records' times, a monotonic
    clock for its flush schedule. A test passes one it moves by hand. The system's clocks
    themselves, not functions calling them: the hooks read the wall clock on every re-open."""

    time_ns = staticmethod(time.time_ns)
    monotonic = staticmethod(time.monotonic)


def _export_now() -> None:
    """Have the tracer provider's processors export the spans ended so far."""
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if callable(force_flush):
        force_flush()


def _stat_regular(path: str) -> os.stat_result | None:
    """stat() a path, None unless it is a regular file: clew never reads sockets, FIFOs or
    devices."""
    try:
        result = os.stat(path)
    except (OSError, ValueError):
        return None
    return result if stat.S_ISREG(result.st_mode) else None


class Recorder:
    """Collects this process's records and emits them as spans under its process span.

    Everything it needs comes in as arguments: the tracer its spans go to, the settings, the
    process span, the clock; the lifecycle module makes the process's one recorder and wires
    it to exit, fork and signals. With `background=False` no worker thread starts: the caller
    turns the worker's wheel itself (`step`, `flush`), as the unit tests do."""

    def __init__(
        self,
        tracer: trace.Tracer,
        settings: Settings,
        process: ProcessSpan,
        *,
        clock: Clock | None = None,
        background: bool = True,
    ) -> None:
        self._tracer = tracer
        self._clock = clock or Clock()
        self._time_ns = self._clock.time_ns  # bound once: the hooks' dedupe path calls it
        self._background = background
        self.settings = settings
        self.process = process
        self.filter = PathFilter(settings.home)
        # Made at the first settled write (_is_metric_file): its module and compiled globs
        # cost ~1 ms, which a process that writes no file need not pay at start-up.
        self._metric_files: MetricFiles | None = None
        self._root = project_root()
        # CPython deletes __main__.__file__ once the script has run, before atexit: the
        # script is remembered now, while sys.argv[0] still names it.
        script = sys.argv[0] if sys.argv else ""
        self._main_script = os.path.abspath(script) if script.endswith(".py") else None
        self._cache = DigestCache(settings.home / environment.CACHE_DIRNAME)
        # Reads of files up to this size are hashed in the hook (-1: none are).
        self._hash_in_hook_max = (
            min(SYNC_HASH_MAX_BYTES - 1, settings.hash_max_bytes) if settings.hashing else -1
        )
        # The C audit hook asks a file it hashes for a producer stamp when the version read
        # has not changed for this long (ns; -1: stamps off): its answer then stands for the
        # flush (_open_hook_read.c).
        self._stamp_settled_ns = (
            int(max(STAMP_SETTLED_SECONDS, STAMP_SETTLED_FLUSHES * settings.flush_interval) * 1e9)
            if settings.stamp else -1
        )
        self.errors: list[str] = []
        self._error_kinds: set[str] = set()
        self._reset_state()
        self._work_lock = threading.Lock()
        self._closed = False
        self.on_close: list[Callable[[], None]] = []
        # Other record sources (object stores) asked at each flush for their finished
        # records; `final` at exit. Each is fork-aware itself.
        self.sources: list[Callable[[bool], list[Record]]] = []

    def _reset_state(self) -> None:
        self._reads: dict[StatKey, Record] = {}
        self._listings: dict[str, Record] = {}
        self._watches: dict[str, _Watch] = {}
        self._settled: dict[str, _Watch] = {}
        self._new: deque[Record] = deque()
        self._ready: deque[Record] = deque()
        self.metrics = _metric_points.MetricPoints()
        # Config file versions parsed, as (path, digest); the files, and how many per directory.
        self._configs: set[tuple[str, object]] = set()
        self._config_paths: set[str] = set()
        self._config_directories: dict[str, int] = {}
        # The content of config files read, kept when the program changed them before the
        # worker parsed them (a config read, then written back resolved).
        self._config_contents: dict[StatKey, bytes] = {}
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()  # set by a first new record, and at close
        self._stopping = threading.Event()
        self._next_flush = self._clock.monotonic() + self.settings.flush_interval
        # Last: until this process's own state is in place, the state is its parent's.
        self._pid = os.getpid()

    @property
    def owned_here(self) -> bool:
        """False in a forked child until its at-fork reset has finished: the records and the
        process span are still its parent's, which flushes them itself."""
        return self._pid == os.getpid()

    # -- failures are recorded, never raised -------------------------------------------------

    def failed(self, where: str, error: BaseException) -> None:
        """Note a failure inside clew: logged once per kind, kept on the process span."""
        kind = f"{where}: {type(error).__name__}"
        if kind not in self._error_kinds:
            self._error_kinds.add(kind)
            _logger.warning(
                "clew: %s failed: %s (the program goes on)", where, redact_text(repr(error))
            )
        if len(self.errors) < 100:
            self.errors.append(f"{kind}: {error}"[:500])

    # -- hot path: called from the host's threads ----------------------------------------------

    def _queue(self, record: Record) -> None:
        new = self._new
        new.append(record)
        if len(new) == 1:
            # The worker sleeps until there is work. Polling instead (every 20 ms) costs a
            # program that opens no file 1-2 % of its time in GIL hand-offs (docs/architecture.md).
            # Two threads appending at once may both miss the 1: those records wait for
            # the next flush instead, never longer.
            self._wake.set()
        if self._worker is None:
            self._start_worker()

    def read(self, path: str) -> None:
        """The program opened `path` for reading."""
        # The library hooks' reads (a pyarrow dataset's thousands of files) take the C audit
        # hook's read when it is configured: the stat, dedupe and small-file hash without
        # the interpreter (docs/architecture.md); this Python path otherwise.
        if _read_in_c is not None and _read_in_c(self, path):
            return
        try:
            result = os.stat(path)
        except (OSError, ValueError):
            return
        if not S_ISREG(result.st_mode):
            return  # sockets, FIFOs and devices are never read by clew
        key = (result.st_dev, result.st_ino, result.st_size, result.st_mtime_ns)
        record = self._reads.get(key)
        if record is not None:
            record.count += 1
            record.last_ns = self._time_ns()
            return
        # `_identify` of a new small read, here on the host's thread: hashing a small file
        # costs ~7 us; handing it to the worker thread costs the host more, in GIL hand-offs
        # (docs/architecture.md). The page cache is warm for the host's own read right after.
        if key[2] > self._hash_in_hook_max:
            self.first_read(path, key, None, False)
        else:
            self.first_read(path, key, self._digest_here(path, key), True)

    def first_read(self, path: str, key: StatKey, digest: str | None, hashed: bool) -> None:
        """Record a first read of version `key` of `path`: with its `digest` when it was
        `hashed` on the host's thread (None: the file changed under the hash), else for the
        worker to identify. `read` comes here; the C audit hook (_open_hook.c) does the same
        in C, and comes here for the rarer cases."""
        record = self._reads.get(key)
        if record is not None:  # another thread recorded this version while this one hashed
            record.count += 1
            record.last_ns = self._time_ns()
            return
        if len(self._reads) >= _MAX_TRACKED:
            self._reads = {}
        record = self._reads[key] = Record("read", path, key)
        if not hashed:
            self._queue(record)
            return
        if digest is not None:
            record.digest = digest
            record.identity = "content"
        ready = self._ready
        ready.append(record)
        if len(ready) == _SPILL_RECORDS:
            # Two threads appending at once may both miss it: the records then wait for
            # the next flush, as before.
            self._wake.set()
        if self._worker is None:
            self._start_worker()

    def recorded_all(self, records: list[Record]) -> None:
        """Records another capture source made after the fact (a non-Python child's, from its
        LD_PRELOAD records): identified by the worker like the hooks' own."""
        if records:
            self._new.extend(records)
            self._wake.set()
            if self._worker is None:
                self._start_worker()

    # -- native code's opens, seen after the fact (instrumentation/native.py) -----------------

    def native_read(self, path: str, key: StatKey) -> None:
        """Native code in this process read version `key` of `path`: nothing new when this
        version was recorded already (a library hook reported the same operation), nor when
        this process is writing the file (a read-write open of its own output)."""
        if key in self._reads or path in self._watches:
            return
        if len(self._reads) >= _MAX_TRACKED:
            self._reads = {}
        self._reads[key] = record = Record("read", path, key)
        self._queue(record)

    def native_write(self, path: str) -> None:
        """Native code in this process opened `path` for writing: recorded when its content
        settles, unless a hook watches it already."""
        if path in self._watches or path in self._settled:
            return
        self._watches[path] = _Watch(Record("write", path), None)
        if self._worker is None:
            self._start_worker()

    def native_delete(self, path: str, key: StatKey) -> None:
        """Native code in this process removed `path`, last at version `key`."""
        watch = self._watches.pop(path, None) or self._settled.pop(path, None)
        if watch is not None and watch.seen is None:
            return  # made and removed between two flushes: a temporary file, no data
        self._queue(Record("delete", path, key))

    def metric(self, key: _metric_points.GroupKey, name: str, value: float, step: int) -> None:
        """One metric point (`_metrics.record_metric`): a `metrics` span at the next flush."""
        self.metrics.add(key, name, value, step, self._time_ns())
        if self._worker is None:
            self._start_worker()

    def tracker_run(self, key: _metric_points.GroupKey) -> None:
        """A tracker run started (`_metrics.record_tracker_run`): named by a `metrics` span at
        the next flush, even if no point is logged to it."""
        self.metrics.announce(key, self._time_ns())
        if self._worker is None:
            self._start_worker()

    def finished(self, record: Record) -> None:
        """A record complete as it is (an object-store operation): a span at the next flush."""
        self._ready.append(record)
        if self._worker is None:
            self._start_worker()

    def start_span(self, name: str, start_ns: int) -> trace.Span:
        """Start a record's span before the record is complete, under the process span: a
        write stamps this span's id on the artifact before the write is sent."""
        return self._tracer.start_span(name, context=self.process.context(), start_time=start_ns)

    def _digest_now(self, path: str, key: StatKey) -> str | None:
        """blake3 of `path` at version `key`, on the calling thread: for a small file the
        program is about to read, and for content it is about to remove, move or overwrite,
        which the background hasher would find gone."""
        if not self.settings.hashing or key[2] > self.settings.hash_max_bytes:
            return None
        return self._digest_here(path, key)

    def _digest_here(self, path: str, key: StatKey) -> str | None:
        """`_content_digest` on the calling thread, its I/O marked as clew's own (the hooks
        ignore it); the caller has checked that hashing is on and the size within its limit."""
        clew_io.active = True
        try:
            return self._content_digest(path, key)
        finally:
            clew_io.active = False

    def hash_ahead(self, paths: list[str], keys: list[StatKey],
                   read_versions: Callable[[list[str], list[StatKey]], list[bytes | None]],
                   *, large: bool = True) -> list[str | None]:
        """The digests of file versions (`paths`, `keys` parallel) a non-Python child read,
        hashed into the digest cache ahead of their records, while the child still runs. Those
        not remembered are read by `read_versions` (the contents of the versions the keys
        name, else None), a batch of small files at a time, and hashed here; larger ones as
        the worker would, or not at all (None, left to the worker) unless `large`."""
        if not self.settings.hashing:
            return [None] * len(paths)
        limit = self.settings.hash_max_bytes
        digests = self._cache.known(keys, None)
        batch: list[int] = []
        batch_bytes = 0
        for index, key in enumerate(keys):
            size = key[2]
            if size > limit:
                digests[index] = None  # past the limit: not a digest, even a remembered one
                continue
            if digests[index] is not None:
                continue
            if size >= _AHEAD_BATCH_BYTES:
                if large:
                    digests[index] = self._digest_here(paths[index], key)
                continue
            batch.append(index)
            batch_bytes += size
            if batch_bytes >= _AHEAD_BATCH_BYTES:
                self._hash_batch(paths, keys, batch, digests, read_versions)
                batch, batch_bytes = [], 0
        if batch:
            self._hash_batch(paths, keys, batch, digests, read_versions)
        return digests

    def _hash_batch(self, paths: list[str], keys: list[StatKey], batch: list[int],
                    digests: list[str | None],
                    read_versions: Callable[[list[str], list[StatKey]], list[bytes | None]],
                    ) -> None:
        """Hash the versions at `batch`'s indexes into `digests` and the digest cache."""
        if len(batch) == len(keys):  # all of them, as for a child's small files
            batch_paths, batch_keys = paths, keys
        else:
            batch_paths = [paths[index] for index in batch]
            batch_keys = [keys[index] for index in batch]
        contents = read_versions(batch_paths, batch_keys)
        hashed = [content_digest(content) if content is not None else None for content in contents]
        for index, digest in zip(batch, hashed):
            digests[index] = digest
        self._cache.put_all(batch_keys, hashed)

    def file_digest(self, path: str) -> str | None:
        """blake3 of the regular file `path` as it is now, remembered or hashed on the
        calling thread (None with hashing off, or past its size limit): for content the
        program sends elsewhere whole, such as a local file it uploads."""
        result = _stat_regular(path)
        return None if result is None else self._digest_now(path, stat_key(result))

    def _before_change(self, path: str, key: StatKey | None = None) -> str | None:
        """`path` is about to be removed, moved or overwritten: a read of its current content
        still waiting for the background hasher gets its digest now. Returns the digest of
        that content when this process read it."""
        if not self._reads:
            return None
        if key is None:
            result = _stat_regular(path)
            if result is None:
                return None
            key = stat_key(result)
        record = self._reads.get(key)
        if record is None:
            return None
        if not record.digest:
            record.digest = self._digest_now(path, key)
            if record.digest:
                record.identity = "content"
        if path.endswith(_config_files.SUFFIXES):
            self._keep_config_content(record)
        return record.digest

    def _keep_config_content(self, record: Record) -> None:
        """A config file this process read is about to change: keep the content it read for
        its `config` span, unless parsed already (the worker would find that content gone)."""
        key = record.key
        if (key is None or key[2] >= _config_files.MAX_BYTES
                or (record.path, record.digest or key) in self._configs
                or len(self._config_contents) >= _MAX_KEPT_CONFIGS):
            return
        data = self._read_version(record.path, key)
        if data is not None:
            self._config_contents[key] = data

    def opened_for_write(self, path: str, *, keeps_content: bool) -> None:
        """The program opened `path` for writing; `keeps_content` when not truncating."""
        watch = self._watches.get(path) or self._settled.pop(path, None)
        if watch is not None:
            watch.record.count += 1
            watch.record.last_ns = self._time_ns()
            watch.quiet = 0
            self._watches[path] = watch
            return
        if not keeps_content:
            self._before_change(path)  # about to be truncated
        before = _stat_regular(path) if keeps_content else None
        emitted = stat_key(before) if before is not None else None
        self._watches[path] = _Watch(Record("write", path), emitted)
        if self._worker is None:
            self._start_worker()

    def opened_for_update(self, path: str) -> None:
        """The program opened `path` to change it in place (h5py's "r+" and "a"): its current
        content is read, digested now as the change may come before the background hasher,
        and what it holds once it settles is written."""
        self.read(path)
        self._before_change(path)
        self.opened_for_write(path, keeps_content=True)

    def renamed(self, source: str, destination: str) -> None:
        """`source` is about to be renamed to `destination`."""
        if os.path.isdir(source):
            self._directory_renamed(source, destination)
            return
        self._before_change(source)  # its content leaves the path a pending read names
        self._before_change(destination)  # replaced, if it exists
        watch = self._watches.pop(source, None) or self._settled.pop(source, None)
        if watch is not None and watch.emitted is None:
            # A temporary file written and renamed into place (the atomic-save pattern):
            # the content this process produced is recorded once, at its final name.
            watch.record.path = destination
            self._watches[destination] = watch
            return
        record = Record("rename", destination)
        record.source = source
        self._watches[destination] = _Watch(record, None)
        if self._worker is None:
            self._start_worker()

    def _directory_renamed(self, source: str, destination: str) -> None:
        """A directory is about to be renamed: the files this process is writing in it are
        followed to their new names. Files written into a temporary directory renamed into
        place as a whole (datasets' `.incomplete` build directories) are recorded once, at
        their final names, as a single file renamed into place is."""
        prefix = source.rstrip("/") + "/"
        moving = [path for path in (*self._watches, *self._settled) if path.startswith(prefix)]
        for path in moving:
            self.renamed(path, destination.rstrip("/") + "/" + path[len(prefix):])

    def copied(self, source: str, destination: str) -> None:
        """shutil is about to copy `source` to `destination`: a derive edge."""
        record = Record("copy", destination)
        record.source = source
        self._watches[destination] = _Watch(record, None)
        if self._worker is None:
            self._start_worker()

    def deleted(self, path: str) -> None:
        """`path` is about to be removed."""
        watch = self._watches.pop(path, None) or self._settled.pop(path, None)
        try:
            result = os.lstat(path)
        except (OSError, ValueError):
            return
        key = stat_key(result)
        record = Record("delete", path, key)
        record.digest = self._before_change(path, key)
        if watch is not None and watch.emitted != key:
            # Written here, then removed before it settled: its content is hashed now, as
            # it is the last moment it can be read.
            watch.record.key = key
            watch.record.digest = self._digest_now(path, key)
            record.digest = record.digest or watch.record.digest
            self._queue(watch.record)
        self._queue(record)

    def listed(self, path: str) -> None:
        """The program listed the directory `path`."""
        record = self._listings.get(path)
        if record is not None:
            record.count += 1
            return
        if not os.path.isdir(path):
            return  # the listing will fail (import hooks list made-up sys.path entries)
        self._listings[path] = record = Record("list", path)
        self._queue(record)

    # -- worker ---------------------------------------------------------------------------------

    def _start_worker(self) -> None:
        if self._closed or not self._background:
            return
        worker = threading.Thread(target=self._work, name="clew-recorder", daemon=True)
        self._worker = worker
        worker.start()

    def _work(self) -> None:
        with suppress_instrumentation():  # clew's own reads and writes are never recorded
            self._work_until_stopped()

    def _work_until_stopped(self) -> None:
        clock = self._clock
        self._next_flush = clock.monotonic() + self.settings.flush_interval
        woken = 0.0  # when a first new record last woke this thread
        while not self._stopping.is_set():
            busy = False
            with guard("recorder", self.failed):
                busy = self.step()
            if busy:
                continue
            # At most one wake by new records per _GATHER: a program opening thousands of
            # files a second has them identified in batches, not with a GIL hand-off each.
            pause = woken + _GATHER - clock.monotonic()
            if pause > 0 and self._stopping.wait(pause):
                break
            if self._wake.wait(max(self._next_flush - clock.monotonic(), _GATHER)):
                self._wake.clear()
                woken = clock.monotonic()

    def step(self) -> bool:
        """One turn of the worker: identify new records (a bounded batch), and once the flush
        interval has passed emit the finished records and the writes that settled; earlier
        when `_SPILL_RECORDS` are waiting. True when it identified any (more may wait)."""
        with self._work_lock:
            if self._stopping.is_set():
                return False
            busy = self._identify_new(limit=256)
            emitted = False
            # A torchrun agent's records wait for its run's trace to be agreed.
            if not self.process.waiting:
                if self._clock.monotonic() >= self._next_flush:
                    self._collect(final=False)
                    emitted = self._emit_ready()
                    emitted = self._emit_metrics(final=False) or emitted
                    self._next_flush = self._clock.monotonic() + self.settings.flush_interval
                elif len(self._ready) >= _SPILL_RECORDS:
                    # Not a flush: watched writes settle over whole flush intervals.
                    emitted = self._emit_ready()
        if emitted:
            # Out of the lock, so the hooks' `_before_change` never waits on an export; and
            # now, not on the span processor's own schedule, so a SIGKILL loses at most one
            # flush interval of records.
            _export_now()
        return busy

    def _identify(self, record: Record) -> None:
        if record.batched:
            self._identify_batch(record)  # type: ignore[arg-type]
            return
        key = record.key
        if key is None or record.operation in ("list",):
            self._ready.append(record)
            return
        # A digest may be known already: taken on the host's thread just before the file was
        # removed, moved or overwritten (`_before_change`), when hashing it now would fail.
        if record.operation == "delete":
            record.digest = record.digest or self._cache.get(key)
        elif self.settings.hashing and key[2] <= self.settings.hash_max_bytes:
            digest = record.digest or self._content_digest(record.path, key, record.copy_of)
            # Not `record.digest = digest`: the host may have set it while this hash ran and
            # found the file changing (`_before_change`).
            record.digest = digest or record.digest
        record.identity = "content" if record.digest else "stat"
        self._ready.append(record)
        if record.operation in _STAMPED_OPERATIONS and self._is_metric_file(record.path):
            with guard("reading a metric file", self.failed):
                self._metric_file_written(record)

    def _identify_batch(self, batch: _record_spans.FileBatch) -> None:
        """`_identify` of every file of a batch: a digest where the file has none yet (a
        child's read hashed ahead has one, a whole copy takes its source's)."""
        digests, paths, keys, copies = batch.digests, batch.paths, batch.keys, batch.copies
        if self.settings.hashing:
            limit = self.settings.hash_max_bytes
            unknown = [index for index, (digest, key) in enumerate(zip(digests, keys))
                       if digest is None and key is not None and key[2] <= limit]
            known = self._cache.known(
                [keys[index] for index in unknown],  # type: ignore[misc]
                [copies[index] for index in unknown] if copies is not None else None,
            )
            for index, digest in zip(unknown, known):
                key = keys[index]
                assert key is not None  # `unknown` holds keyed files only
                digests[index] = digest or self._content_digest(paths[index], key)
        batch.identities = [
            "content" if digest else "none" if key is None else "stat"
            for digest, key in zip(digests, keys)
        ]
        self._ready.append(batch)
        if batch.operation in _STAMPED_OPERATIONS:
            for index, path in enumerate(paths):
                if self._is_metric_file(path):
                    with guard("reading a metric file", self.failed):
                        self._metric_file_written(batch.file_record(index))

    def _is_metric_file(self, path: str) -> bool:
        matcher = self._metric_files
        if matcher is None:
            from ._metric_files import MetricFiles

            matcher = self._metric_files = MetricFiles(self.settings.metric_files)
        return matcher.match(path)

    def _content_digest(self, path: str, key: StatKey, copy_of: StatKey | None = None) -> str | None:
        """The digest of the file version `key` names: remembered, that of the version it is a
        whole copy of (`copy_of`) when that one was hashed, or hashed; then remembered."""
        digest = self._cache.get(key)
        if digest is None:  # a remembered one is not put again: one look-up, not three
            digest = (copy_of is not None and self._cache.get(copy_of)) or hash_file(path, key)
            if digest is not None:
                self._cache.put(key, digest)
        return digest

    def _identify_new(self, limit: int | None = None) -> bool:
        done = 0
        while self._new and (limit is None or done < limit):
            self._identify(self._new.popleft())
            done += 1
        return done > 0

    def _collect(self, *, final: bool) -> None:
        # Sources first: one that reports after the fact (native code's opens) hands the
        # recorder reads to identify and writes to watch, which the lines after see.
        for source in self.sources:
            self._ready.extend(source(final))
        self._identify_new()
        self._check_watches(final=final)

    def _check_watches(self, *, final: bool) -> None:
        """Record writes whose content settled (unchanged over one flush), or all at exit."""
        watches = list(self._watches.items())
        if final:
            watches += list(self._settled.items())
        for path, watch in watches:
            result = _stat_regular(watch.record.path)
            if result is None:
                if final and watch.record.operation != "write" and watch.emitted is None:
                    continue  # a copy or rename that failed: nothing was produced
                continue
            key = stat_key(result)
            if key != watch.emitted and (final or key == watch.seen):
                record = watch.record
                emitted = Record(record.operation, record.path, key)
                emitted.count, emitted.source = record.count, record.source
                emitted.first_ns, emitted.last_ns = record.first_ns, self._time_ns()
                self._identify(emitted)
                watch.emitted = key
                watch.quiet = 0
            elif key == watch.seen:
                watch.quiet += 1
                if watch.quiet >= 3 and not final:
                    # Settled and recorded: stop stat-ing it every flush; a reopen or the
                    # final check at exit picks up any later change.
                    self._settled[path] = self._watches.pop(path)
            watch.seen = key

    def _emit_ready(self) -> bool:
        """End a span for every finished record; True if there were any."""
        if not self._ready:
            self._cache.save()
            return False
        ready = self._ready
        records: list[Record] = []
        while ready:  # the hooks append while this takes them: one popleft each, never a clear
            # popleft called from C, not a comprehension's loop: ~50 us less for 1,900 records
            records += itertools.starmap(ready.popleft, itertools.repeat((), len(ready)))
        plan = None
        with guard("sorting records into spans", self.failed):
            plan = _record_spans.plan_flush(records, _config_files.SUFFIXES)
        if plan is None:  # the records were taken: each gets a span of its own, never lost
            reads = [r for r in records if r.operation == "read" and r.key is not None]
            plan = _record_spans.FlushPlan(reads, [], records, [], False)
        batches = [r for r in plan.singles if r.batched and r.operation == "read"]
        linked = plan.linked
        if self.settings.stamp:
            # Here, on the worker, not in the hook: one listxattr per file read (~1 us).
            linked = _record_spans.find_stamps(plan.reads) or linked
            for batch in batches:
                batch.find_stamps()  # type: ignore[attr-defined]
        configs = plan.configs + [
            batch.file_record(index)  # type: ignore[attr-defined]
            for batch in batches
            for index, path in enumerate(batch.paths)  # type: ignore[attr-defined]
            if path.endswith(_config_files.SUFFIXES)
        ]
        parent = self.process.context()
        pid = os.getpid()
        for item in itertools.chain(plan.singles, plan.batches):
            with guard("recording a span", self.failed):  # one bad record never takes its flush
                if type(item) is tuple:
                    self._emit_read_batch(item, parent, pid, linked)
                else:
                    self._emit(item, parent, pid)  # type: ignore[arg-type]
        for record in configs:
            with guard("recording a config", self.failed):
                self._emit_config(record, parent, pid)
        self._cache.save()
        return True

    def _emit_config(self, record: Record, parent: otel_context.Context, pid: int) -> None:
        """End the `config` span of a config file read, once per content version."""
        key = record.key
        kept = self._config_contents.pop(key, None) if key is not None else None
        seen = (record.path, record.digest or key)
        if key is None or key[2] >= _config_files.MAX_BYTES or seen in self._configs:
            return
        # Bounded: a loader reading thousands of small JSON files (data, not configs) has
        # only the first few files of each directory, and versions of the process, parsed.
        # A file counts once in its directory, whatever its versions: a sweep rewriting and
        # reading one config per trial has every trial's config.
        if len(self._configs) >= _config_files.MAX_FILES:
            return
        if record.path not in self._config_paths:
            directory = _record_spans.directory_of(record.path)
            tried = self._config_directories.get(directory, 0)
            if tried >= _config_files.MAX_PER_DIRECTORY:
                return
            self._config_directories[directory] = tried + 1
            self._config_paths.add(record.path)
        self._configs.add(seen)
        data = kept if kept is not None else self._read_version(record.path, key)
        parsed = _config_files.entries(record.path, data) if data is not None else None
        if parsed is None:
            return
        attributes: dict = {attr.PROVENANCE_ARTIFACT_URI: record.uri()}
        if record.digest:
            attributes[attr.PROVENANCE_ARTIFACT_DIGEST] = record.digest
        attributes[attr.PROVENANCE_CONFIG_KEY], attributes[attr.PROVENANCE_CONFIG_VALUE] = parsed
        attributes[attr.PROCESS_PID] = pid
        span = self._tracer.start_span(
            spans.SPAN_CONFIG, context=record.parent or parent, start_time=record.first_ns,
            attributes=attributes,
        )
        span.end(end_time=record.first_ns)

    def _metric_file_written(self, record: Record) -> None:
        """A metric file's new content settled: its points replace those of its last version."""
        key = record.key
        if key is None or key[2] > environment.METRIC_FILE_MAX_BYTES:
            return
        from . import _metric_files  # loaded with the matcher, at the first write

        data = self._read_version(record.path, key)
        parsed = _metric_files.points(record.path, data) if data is not None else None
        if parsed is not None:
            source, tracker_run, points = parsed
            self.metrics.replace((source, record.uri(), tracker_run), points, self._time_ns())

    @staticmethod
    def _read_version(path: str, key: StatKey) -> bytes | None:
        """The content of version `key` of a small file, read as clew's own I/O."""
        clew_io.active = True
        try:
            return read_version(path, key)
        finally:
            clew_io.active = False

    def _emit(self, item: Record | list[Record], parent: otel_context.Context, pid: int) -> None:
        """End the span of one record, or of one batch of records."""
        first = item[0] if isinstance(item, list) else item
        if first.parent is not None:  # a non-Python child's record: under its exec span
            parent = first.parent
        # A batch (of records, or a FileBatch) has nothing to stamp and no span to set later:
        # ended without the SDK's copy of every array element, where that makes the same
        # span (_ended_spans).
        if isinstance(item, list):
            name, attributes = first.batch_span(item, pid)
            start, end = min(map(_FIRST_NS, item)), max(map(_LAST_NS, item))
            links = _record_spans.links(item)
        elif item.batched and item.span is None:
            name, attributes = item.span_name(), item.span_attributes(pid)
            start, end, links = item.first_ns, item.last_ns, item.file_links()
        else:
            self._emit_record(item, parent, pid)
            return
        _ended_spans.end_span(self._tracer, name, parent, start, max(end, start), attributes,
                              links)

    def _emit_read_batch(self, batch: _record_spans.ReadBatch, parent: otel_context.Context,
                         pid: int, linked: bool) -> None:
        """End the span of a batch of plain file reads (`_record_spans.plan_flush`); `linked`:
        some read of the flush has a producer to link to."""
        records, directory, uris, digests, sizes, identities, counts, start, end = batch
        attributes = _record_spans.read_batch_attributes(directory, uris, digests, sizes,
                                                         identities, counts, pid)
        links = _record_spans.links(records) if linked else []
        _ended_spans.end_span(self._tracer, spans.SPAN_READ_FILE, parent, start, max(end, start),
                              attributes, links)

    def _emit_record(self, item: Record, parent: otel_context.Context, pid: int) -> None:
        """End the span of one record, started now or when its write was stamped."""
        span = item.span
        if span is None:
            span = self._tracer.start_span(
                item.span_name(), context=parent, start_time=item.first_ns,
                attributes=item.span_attributes(pid), links=item.file_links(),
            )
        else:
            span.set_attributes(item.span_attributes(pid))
        if item.key is not None:
            self._stamp_file(item, span)
        span.end(end_time=max(item.last_ns, item.first_ns))

    def _emit_metrics(self, *, final: bool) -> bool:
        """End the `metrics` spans of the points added since the last flush (at exit, the
        thinned points held back too); True if there were any."""
        taken = self.metrics.take(final=final)
        if not taken:
            return False  # an idle fork's process span is never started
        parent = self.process.context()
        pid = os.getpid()
        for key, start, end, points, left_out in taken:
            with guard("recording metrics", self.failed):
                for attributes in _metric_points.span_attributes(key, points, pid, left_out):
                    span = self._tracer.start_span(
                        spans.SPAN_METRICS, context=parent, start_time=start, attributes=attributes
                    )
                    span.end(end_time=max(end, start))
        return True

    def _stamp_file(self, record: Record, span: trace.Span) -> None:
        """Stamp a local file this process produced with the span that records it."""
        if not self.settings.stamp or record.operation not in _STAMPED_OPERATIONS:
            return
        value = _stamps.encode(span.get_span_context(), record.digest)
        if _stamps.stamp_file(record.path, record.key, value):
            span.set_attribute(attr.PROVENANCE_PRODUCER_STAMPED, True)

    # -- lifecycle ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Emit everything recorded so far (identifying it on the calling thread)."""
        with self._work_lock, suppress_instrumentation():
            self._identify_new()
            self._collect(final=True)
            self._emit_ready()
            self._emit_metrics(final=True)

    def close(self, *, exit_code: int | None, exception: BaseException | None = None) -> None:
        """Flush every record and end the process span; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(_STOP_TIMEOUT)
        for callback in self.on_close:
            with guard("closing", self.failed):
                callback()
        with guard("closing", self.failed):
            _stream_digests.finish_all()  # streamed digests still on the background hasher
        with guard("final flush", self.failed):
            self.flush()
        with guard("ending the process span", log):  # the errors went with it: logged
            self.process.end(
                exit_code=exit_code,
                exception=exception,
                code_files=self._code_files,
                errors=self.errors,
            )
        _export_now()

    def _code_excluded(self) -> tuple[str, ...]:
        # Without CLEW_INCLUDE globs, the filter's excluded directories hold no code file.
        return () if self.filter.includes else self.filter.excluded_prefixes

    def _code_files(self, *, save: bool = True) -> tuple[list[str], list[str]]:
        """The project's own source files that were imported, with their digests."""
        files: list[str] = []
        digests: list[str] = []
        root = self._root
        paths = module_sources(root, self._code_excluded())
        if self._main_script:
            paths.add(self._main_script)
        for path in sorted(paths):
            if not is_project_source(path, root, self.filter):
                continue
            result = _stat_regular(path)
            if result is None:
                continue
            digest = self._content_digest(path, stat_key(result))
            files.append(os.path.relpath(path, root))
            digests.append(digest or "")
        if save:
            self._cache.save()
        return files, digests

    def before_fork(self) -> None:
        """Walk sys.modules and digest the imported project sources before a fork, unless
        nothing was imported since the last time: a child (a DataLoader worker) then walks
        only what it imports itself at exit, and finds the digests in the cache it inherits,
        instead of paying for both in its exit, on the epoch's critical path. The parent's
        unsaved cache entries are its own to save (`DigestCache.after_fork_in_child`)."""
        if self._closed or not remember_walk(self._root, self._code_excluded()):
            return
        with suppress_instrumentation():  # the code files' reads are clew's own
            self._code_files(save=False)

    def after_fork_in_child(self, process: ProcessSpan) -> None:
        """Start over in a forked child: its records are its own, its spool file too."""
        self._work_lock = threading.Lock()
        self._cache.after_fork_in_child()
        self.process = process
        self.errors = []
        self._closed = False
        self._reset_state()  # last, as it marks the state as this process's
