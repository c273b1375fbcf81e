/*
 * A read-only open recorded, for clew's C audit hook (_open_hook.c): Recorder.read in C.
 *
 * The stat, the (dev, inode, size, mtime_ns) key, the dedupe table (a repeat counted on its
 * record), the digest cache's newer generation and, on a miss, the file hashed
 * (_open_hook_hash.c). A new record is made as `Record("read", path, key)` would be
 * (_open_hook_record.c) and queued as `Recorder.first_read` does; that method is called for
 * the rarer cases, `Recorder._digest_here` when the cache is not loaded or may hold the key in
 * its older generation; a new digest is put in the cache as `DigestCache.put` does
 * (put_here), by that method when the newer generation is full.
 *
 * It reads these attributes of the Python side, which keeps them for it: the recorder's
 * `_reads`, `_ready`, `_cache`, `_hash_in_hook_max`, `_stamp_settled_ns` (for a file hashed
 * here), `_time_ns`, `_wake`, `_worker`; the digest cache's `_entries` and `_unsaved`, its
 * entries' `new` and `old` generations and `size`; a record's `count` and `last_ns`.
 */
#include "_open_hook.h"

#include <sys/stat.h>

static Py_ssize_t max_tracked;   /* _recorder._MAX_TRACKED: the dedupe table's bound */
static Py_ssize_t spill_records; /* _recorder._SPILL_RECORDS: ready records that wake the worker */
static PyObject *cache_type;     /* _file_digests.DigestCache: its put() done here (put_here) */
static PyObject *memo_type;      /* _file_digests._Memo: the cache's entries */

static PyObject *s_reads, *s_cache, *s_entries, *s_new, *s_old, *s_hash_in_hook_max, *s_time_ns,
    *s_count, *s_last_ns, *s_first_read, *s_put, *s_digest_here, *s_append,
    *s_ready, *s_wake, *s_set, *s_worker, *s_start_worker, *s_stamp_settled_ns, *s_size,
    *s_unsaved;
PyObject *open_hook_one;

int open_hook_read_init(void) {
    const struct hook_name names[] = {
        {&s_reads, "_reads"}, {&s_cache, "_cache"}, {&s_entries, "_entries"}, {&s_new, "new"},
        {&s_old, "old"}, {&s_hash_in_hook_max, "_hash_in_hook_max"}, {&s_time_ns, "_time_ns"},
        {&s_count, "count"}, {&s_last_ns, "last_ns"}, {&s_first_read, "first_read"},
        {&s_put, "put"}, {&s_digest_here, "_digest_here"},
        {&s_append, "append"}, {&s_ready, "_ready"}, {&s_wake, "_wake"}, {&s_set, "set"},
        {&s_worker, "_worker"}, {&s_start_worker, "_start_worker"},
        {&s_stamp_settled_ns, "_stamp_settled_ns"}, {&s_size, "size"},
        {&s_unsaved, "_unsaved"},
    };
    if (intern_names(names, sizeof(names) / sizeof(names[0])) < 0)
        return -1;
    if (open_hook_one == NULL && (open_hook_one = PyLong_FromLong(1)) == NULL)
        return -1;
    return 0;
}

int open_hook_read_configure(PyObject *blake3, PyObject *prefix, PyObject *record,
                             PyObject *digest_cache, PyObject *memo, Py_ssize_t tracked,
                             Py_ssize_t spill, const char *stamp) {
    if (open_hook_record_configure(record) < 0 || open_hook_hash_configure(blake3, prefix, stamp) < 0)
        return -1;
    if (!PyType_Check(digest_cache) || !PyType_Check(memo)) {
        PyErr_SetString(PyExc_TypeError, "the digest cache's classes are not classes");
        return -1;
    }
    Py_INCREF(digest_cache);
    Py_INCREF(memo);
    cache_type = digest_cache;
    memo_type = memo;
    max_tracked = tracked;
    spill_records = spill;
    return 0;
}

/* (st_dev, st_ino, st_size, st_mtime_ns), as os.stat gives them: `_file_digests.stat_key`.
 * Untracked by the garbage collector, as CPython untracks a tuple of numbers at its first
 * collection: the dedupe table holds thousands. */
static PyObject *stat_key(const struct stat *st) {
    long long mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    PyObject *key = PyTuple_New(4);
    if (key == NULL)
        return NULL;
    PyObject *fields[] = {PyLong_FromUnsignedLongLong((unsigned long long)st->st_dev),
                          PyLong_FromUnsignedLongLong((unsigned long long)st->st_ino),
                          PyLong_FromLongLong((long long)st->st_size),
                          PyLong_FromLongLong(mtime_ns)};
    for (int i = 0; i < 4; i++) {
        if (fields[i] == NULL) {
            for (int j = i + 1; j < 4; j++)
                Py_XDECREF(fields[j]);
            Py_DECREF(key);
            return NULL;
        }
        PyTuple_SET_ITEM(key, i, fields[i]);
    }
    PyObject_GC_UnTrack(key);
    return key;
}

/* The key's hash is computed once for the dedupe table's and the cache's look-ups and this
 * store: a tuple does not keep its hash, ~230 instructions each time. Python 3.13 no longer
 * exports the store by known hash. */
static int store(PyObject *table, PyObject *key, PyObject *value, Py_hash_t hash) {
#if PY_VERSION_HEX < 0x030D0000
    return _PyDict_SetItem_KnownHash(table, key, value, hash);
#else
    (void)hash;
    return PyDict_SetItem(table, key, value);
#endif
}

/* The int attribute `name` of `owner` in `*value`: 0, or -1 with an exception set. */
static int long_attribute(PyObject *owner, PyObject *name, long long *value) {
    PyObject *number = PyObject_GetAttr(owner, name);
    if (number == NULL)
        return -1;
    *value = PyLong_AsLongLong(number);
    Py_DECREF(number);
    return *value == -1 && PyErr_Occurred() ? -1 : 0;
}

/* The digest cache's answer for `key`, looked up as DigestCache.get does when the answer is
 * in memory: a new reference to the digest, to None (not known: hash it), or NULL with
 * `*ask_python` set when Python must answer (the cache not loaded yet, or an entry possibly
 * in its older generation, which a hit moves). NULL without it: an error. */
static PyObject *cached_digest(PyObject *cache, PyObject *key, Py_hash_t hash, int *ask_python) {
    PyObject *entries = PyObject_GetAttr(cache, s_entries);
    if (entries == NULL)
        return NULL;
    PyObject *digest = NULL, *newer = NULL, *older = NULL;
    if (entries == Py_None)
        goto python;
    newer = PyObject_GetAttr(entries, s_new);
    if (newer == NULL || !PyDict_Check(newer))
        goto failed_or_python;
    digest = _PyDict_GetItem_KnownHash(newer, key, hash);
    if (digest != NULL) {
        Py_INCREF(digest);
        goto done;
    }
    if (PyErr_Occurred())
        goto done;
    older = PyObject_GetAttr(entries, s_old);
    if (older == NULL || !PyDict_Check(older) || PyDict_GET_SIZE(older) > 0)
        goto failed_or_python;
    digest = Py_None;
    Py_INCREF(digest);
    goto done;
failed_or_python:
    if (PyErr_Occurred())
        goto done;
python:
    *ask_python = 1;
done:
    Py_XDECREF(older);
    Py_XDECREF(newer);
    Py_DECREF(entries);
    return digest;
}

/* DigestCache.put(key, digest) without its two Python frames (~3k instructions of each cold
 * first open), when the cache and its entries are exactly DigestCache and _Memo and the newer
 * generation has room (else _Memo rotates them: Python does it). As put(): the entry in the
 * newer generation, then key and digest added to the unsaved ones in one step, so that a
 * save() on the worker never splits them. 1 done, 0 for Python to do it, -1 on error. */
static int put_here(PyObject *cache, PyObject *key, Py_hash_t hash, PyObject *digest) {
    if (!Py_IS_TYPE(cache, (PyTypeObject *)cache_type))
        return 0;
    PyObject *entries = PyObject_GetAttr(cache, s_entries);
    if (entries == NULL)
        return -1;
    PyObject *newer = NULL, *unsaved = NULL, *pair = NULL;
    long long size;
    int result = -1;
    if (!Py_IS_TYPE(entries, (PyTypeObject *)memo_type)) {
        result = 0;
        goto done;
    }
    if (long_attribute(entries, s_size, &size) < 0 ||
        (newer = PyObject_GetAttr(entries, s_new)) == NULL ||
        (unsaved = PyObject_GetAttr(cache, s_unsaved)) == NULL)
        goto done;
    if (!PyDict_CheckExact(newer) || !PyList_CheckExact(unsaved) ||
        PyDict_GET_SIZE(newer) >= size) {
        result = 0;
        goto done;
    }
    if ((pair = PyTuple_Pack(2, key, digest)) == NULL || store(newer, key, digest, hash) < 0 ||
        PyList_SetSlice(unsaved, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, pair) < 0)
        goto done;
    result = 1;
done:
    Py_XDECREF(pair);
    Py_XDECREF(unsaved);
    Py_XDECREF(newer);
    Py_DECREF(entries);
    return result;
}

/* The digest of a first read of a small file, as `Recorder._content_digest` finds it: from
 * the cache, else hashed and put in the cache. A new reference (None: no digest), or NULL.
 * `*others_ran` is set when other threads may have run meanwhile (the GIL released for the
 * read, or Python code run); `*unstamped` when the file was read here and carries no
 * producer stamp (open_hook_hash_small). The recorder's `_stamp_settled_ns` is read for a file hashed
 * here only: a cache hit has no descriptor to ask. */
static PyObject *first_digest(PyObject *owner, PyObject *path, const char *name,
                              const struct stat *st, PyObject *key, Py_hash_t hash,
                              int *others_ran, int *unstamped) {
    PyObject *cache = PyObject_GetAttr(owner, s_cache);
    if (cache == NULL)
        return NULL;
    int ask_python = 0;
    PyObject *digest = cached_digest(cache, key, hash, &ask_python);
    *others_ran = ask_python || digest == Py_None;
    if (ask_python) {
        digest = PyObject_CallMethodObjArgs(owner, s_digest_here, path, key, NULL);
    } else if (digest == Py_None) {
        Py_DECREF(digest);
        long long settled_ns;
        digest = long_attribute(owner, s_stamp_settled_ns, &settled_ns) < 0
                     ? NULL
                     : open_hook_hash_small(name, st, settled_ns, unstamped);
        if (digest != NULL && digest != Py_None) {
            int done = put_here(cache, key, hash, digest);
            PyObject *put = done != 0 ? NULL
                                      : PyObject_CallMethodObjArgs(cache, s_put, key, digest, NULL);
            if (done < 0 || (done == 0 && put == NULL))
                Py_CLEAR(digest);
            Py_XDECREF(put);
        }
    }
    Py_DECREF(cache);
    return digest;
}

/* A repeated open of a version already recorded: counted, and its last time moved, as
 * `record.count += 1; record.last_ns = self._time_ns()` would do. */
static int repeated(PyObject *owner, PyObject *record) {
    PyObject *clock = PyObject_GetAttr(owner, s_time_ns);
    if (clock == NULL)
        return -1;
    int done = open_hook_record_repeated(record, clock);
    if (done != 0) {
        Py_DECREF(clock);
        return done < 0 ? -1 : 0;
    }
    PyObject *count = PyObject_GetAttr(record, s_count);
    PyObject *more = count == NULL ? NULL : PyNumber_Add(count, open_hook_one);
    Py_XDECREF(count);
    int failed = more == NULL || PyObject_SetAttr(record, s_count, more) < 0;
    Py_XDECREF(more);
    PyObject *now = failed ? NULL : PyObject_CallNoArgs(clock);
    Py_DECREF(clock);
    if (now == NULL)
        return -1;
    failed = PyObject_SetAttr(record, s_last_ns, now);
    Py_DECREF(now);
    return failed ? -1 : 0;
}

/* Call owner.name() and drop its result: 0, or -1 on error. */
static int call_method(PyObject *owner, PyObject *name) {
    PyObject *done = PyObject_CallMethodNoArgs(owner, name);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* Recorder.first_read(path, key, digest, hashed) in C, for a small file hashed (or looked
 * up) here while the dedupe table has room; the Python method for the rest. 0, or -1. */
static int first_read(PyObject *owner, PyObject *reads, PyObject *path, PyObject *key,
                      Py_hash_t hash, PyObject *digest, int hashed, int others_ran,
                      int unstamped) {
    PyObject *record;
    if (others_ran) {
        record = _PyDict_GetItem_KnownHash(reads, key, hash);
        if (record != NULL) /* another thread recorded this version while this one hashed */
            return repeated(owner, record);
        if (PyErr_Occurred())
            return -1;
    }
    if (!hashed || PyDict_GET_SIZE(reads) >= max_tracked) {
        PyObject *call[] = {owner, path, key, hashed ? digest : Py_None,
                            hashed ? Py_True : Py_False};
        PyObject *done = PyObject_VectorcallMethod(s_first_read, call,
                                                   5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_XDECREF(done);
        return done == NULL ? -1 : 0;
    }
    record = open_hook_new_read(path, key, digest, unstamped);
    if (record == NULL)
        return -1;
    /* Out of the garbage collector's sight, as the key: a read's record holds strings, ints
     * and tuples, never a cycle, and thousands wait in `_ready` for a flush; each collection
     * walked them all. */
    PyObject_GC_UnTrack(record);
    int result = -1;
    PyObject *ready = NULL, *worker = NULL;
    if (store(reads, key, record, hash) < 0)
        goto finish;
    ready = PyObject_GetAttr(owner, s_ready);
    if (ready == NULL)
        goto finish;
    PyObject *appended = PyObject_CallMethodOneArg(ready, s_append, record);
    if (appended == NULL)
        goto finish;
    Py_DECREF(appended);
    Py_ssize_t waiting = PyObject_Length(ready);
    if (waiting < 0)
        goto finish;
    /* Two threads appending at once may both miss it: the records then wait for the next
     * flush, as in Recorder.first_read. */
    if (waiting == spill_records) {
        PyObject *wake = PyObject_GetAttr(owner, s_wake);
        if (wake == NULL)
            goto finish;
        int failed = call_method(wake, s_set);
        Py_DECREF(wake);
        if (failed)
            goto finish;
    }
    worker = PyObject_GetAttr(owner, s_worker);
    if (worker == NULL || (worker == Py_None && call_method(owner, s_start_worker) < 0))
        goto finish;
    result = 0;
finish:
    Py_XDECREF(worker);
    Py_XDECREF(ready);
    Py_DECREF(record);
    return result;
}

int open_hook_read(PyObject *owner, PyObject *path, const char *name) {
    struct stat st;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = stat(name, &st);
    Py_END_ALLOW_THREADS
    if (failed || !S_ISREG(st.st_mode))
        return 0; /* gone, or a socket, FIFO or device: never read by clew */
    PyObject *key = stat_key(&st);
    if (key == NULL)
        return -1;
    int result = -1;
    PyObject *reads = NULL, *digest = NULL;
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1)
        goto done;
    reads = PyObject_GetAttr(owner, s_reads);
    if (reads == NULL)
        goto done;
    if (!PyDict_Check(reads)) {
        PyErr_SetString(PyExc_TypeError, "the recorder's dedupe table is not a dict");
        goto done;
    }
    PyObject *record = _PyDict_GetItem_KnownHash(reads, key, hash);
    if (record != NULL) {
        result = repeated(owner, record);
        goto done;
    }
    if (PyErr_Occurred())
        goto done;
    long long hash_max;
    if (long_attribute(owner, s_hash_in_hook_max, &hash_max) < 0)
        goto done;
    int hashed = (long long)st.st_size <= hash_max, others_ran = 0, unstamped = 0;
    if (hashed) {
        digest = first_digest(owner, path, name, &st, key, hash, &others_ran, &unstamped);
        if (digest == NULL)
            goto done;
    }
    result = first_read(owner, reads, path, key, hash, hashed ? digest : Py_None, hashed,
                        others_ran, unstamped);
done:
    Py_XDECREF(digest);
    Py_XDECREF(reads);
    Py_DECREF(key);
    return result;
}
