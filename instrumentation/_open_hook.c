/*
 * clew's file audit hook, in C: installed by instrumentation/files.py when this extension was
 * built, in place of the Python hook `files._audit`, which stays the fallback and the
 * reference for what is recorded.
 *
 * Why C: CPython calls an audit hook on every audit event of the process (imports, compiles,
 * execs, opens), and a first open of a small file ran ~100k instructions of clew's Python
 * against ~60k for a stat, a read and a blake3 hash. Here an event clew does not handle costs
 * a few string compares, and a plain read-only open of a file does in C what every open needs:
 * the suppression checks, the path's resolution and filter, the stat, the version key, the
 * dedupe look-up (a repeat only counted), the digest cache's look-up and, on a miss, the read
 * of the file (hashed by the `blake3` package, the same digest as the Python path). Python is
 * called for what is new or rare: the record of a first read (`Recorder.first_read`), opens for
 * writing, relative or unusual paths, source files (who opens them), and every other event.
 *
 * It reads these attributes of the Python side, which keeps them for it: the recorder's
 * `_reads`, `_cache`, `_hash_in_hook_max`, `_time_ns`; the digest cache's `_entries` and their
 * `new` and `old` generations; a record's `count` and `last_ns`; `clew_io.active`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What install() was given: the Python side's functions and objects. */
static PyObject *python_hook;       /* files._audit: every event but a plain open */
static char **other_events;         /* the other events it handles, NULL-terminated */
static PyObject *resolved;          /* files._resolved: path as given -> recorded path or None */
static PyObject *recorded_path;     /* files._recorded_path(recorder, raw) */
static PyObject *interpreter_code;  /* files._is_interpreter_code(filename or None) */
static PyObject *opened_for_write;  /* files._opened_for_write(recorder, path, flags) */
static PyObject *clew_io;           /* its `active` is set while clew does its own I/O */
static PyObject *context_variable;  /* OpenTelemetry's current-context ContextVar, or NULL */
static PyObject *current_context;   /* otherwise, the function that returns it */
static PyObject *suppress_key;      /* set in the context by suppress_instrumentation() */
static PyObject *blake3_type;       /* blake3.blake3 */
static PyObject *digest_prefix;     /* "blake3:" */
static PyObject *record_type;       /* _record_spans.Record */
static Py_ssize_t max_tracked;      /* _recorder._MAX_TRACKED: the dedupe table's bound */
static Py_ssize_t spill_records;    /* _recorder._SPILL_RECORDS: ready records that wake the worker */

/* What attach() was given: the recorder (NULL: detached, every event ignored) and, when its
 * path filter has no glob, the prefixes it excludes (else `prefix_count` is -1 and the filter
 * is asked in Python). */
static PyObject *recorder;
static char **prefixes;
static Py_ssize_t *prefix_lengths;
static Py_ssize_t prefix_count = -1;

static PyObject *s_append, *s_ready, *s_wake, *s_set, *s_worker, *s_start_worker, *s_digest, *s_identity,
    *s_content, *s_read;
static PyObject *s_reads, *s_cache, *s_entries, *s_new, *s_old, *s_hash_in_hook_max,
    *s_time_ns, *s_count, *s_last_ns, *s_active, *s_first_read, *s_put, *s_digest_here,
    *s_hexdigest, *s_failed, *s_where, *s_dot_py;
static PyObject *one;
static int installed;

/* ---- failures: recorded on the recorder and swallowed, as the Python hook does ---------- */

/* With an exception set: hand an Exception to `recorder.failed` and go on (0); anything else
 * (KeyboardInterrupt from a signal handler run meanwhile) goes on to the program (-1), as it
 * would from the Python hook. */
static int swallow(PyObject *owner) {
    if (!PyErr_Occurred())
        return 0; /* never an error without an exception: the open would fail with SystemError */
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    PyObject *done = PyObject_CallMethodObjArgs(owner, s_failed, s_where,
                                                value ? value : Py_None, NULL);
    Py_XDECREF(done);
    PyErr_Clear(); /* a failure to record a failure is not the program's */
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return 0;
}

/* The Python hook for `event`: 0, or -1 with what it let through. */
static int call_python_hook(const char *event, PyObject *args) {
    PyObject *name = PyUnicode_FromString(event);
    if (name == NULL)
        return PyErr_ExceptionMatches(PyExc_Exception) ? (PyErr_Clear(), 0) : -1;
    PyObject *done = PyObject_CallFunctionObjArgs(python_hook, name, args, NULL);
    Py_DECREF(name);
    if (done == NULL)
        return PyErr_ExceptionMatches(PyExc_Exception) ? (PyErr_Clear(), 0) : -1;
    Py_DECREF(done);
    return 0;
}

/* ---- the checks every handled open makes ---------------------------------------------- */

/* 1 when this open is clew's own I/O or under OpenTelemetry's suppress_instrumentation(), 0
 * when it is the program's, -1 on error. */
static int ignored_now(void) {
    PyObject *active = PyObject_GetAttr(clew_io, s_active);
    if (active == NULL)
        return -1;
    int truth = PyObject_IsTrue(active);
    Py_DECREF(active);
    if (truth != 0)
        return truth;
    PyObject *context = NULL;
    if (context_variable != NULL) {
        if (PyContextVar_Get(context_variable, NULL, &context) < 0)
            return -1;
    } else {
        context = PyObject_CallNoArgs(current_context);
    }
    if (context == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *flag;
    if (PyDict_Check(context)) { /* OpenTelemetry's Context is a dict that leaves get alone */
        flag = PyDict_GetItemWithError(context, suppress_key);
        Py_XINCREF(flag);
    } else {
        flag = PyObject_CallMethod(context, "get", "O", suppress_key);
    }
    Py_DECREF(context);
    if (flag == NULL)
        return PyErr_Occurred() ? -1 : 0;
    truth = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    return truth;
}

/* Whether a name holds "/." or "//": a "." or ".." component, or an empty one, for
 * normpath to fold (or a hidden file's name, left to Python). One pass: memmem costs more on
 * names this short. */
static int folds(const char *text, Py_ssize_t length) {
    for (Py_ssize_t i = 0; i + 1 < length; i++)
        if (text[i] == '/' && (text[i + 1] == '.' || text[i + 1] == '/'))
            return 1;
    return 0;
}

/* Whether os.path.abspath would return the name unchanged: absolute, and nothing for
 * normpath to fold (no empty, "." or ".." component, no trailing slash). */
static int normal_absolute(const char *text, Py_ssize_t length) {
    return length > 0 && text[0] == '/' && text[length - 1] != '/' && !folds(text, length);
}

/* PathFilter.wants for a filter without globs: under no excluded prefix, no __pycache__. */
static int wanted(const char *text, Py_ssize_t length) {
    for (Py_ssize_t i = 0; i < prefix_count; i++)
        if (length >= prefix_lengths[i] && memcmp(text, prefixes[i], prefix_lengths[i]) == 0)
            return 0;
    for (const char *at = text; (at = memchr(at, '/', length - (at - text))) != NULL; at++)
        if (length - (at - text) >= 13 && memcmp(at, "/__pycache__/", 13) == 0)
            return 0;
    return 1;
}

/* The working directory, as os.getcwd() gives it, while it is ASCII and normal; read again
 * after an "os.chdir" event (os.chdir, os.fchdir), as the path memo is cleared then. */
static char cwd[4096];
static Py_ssize_t cwd_length = -1; /* -1: to be read; 0: not usable here */

static int working_directory(void) {
    if (cwd_length < 0) {
        cwd_length = 0;
        if (getcwd(cwd, sizeof(cwd)) != NULL) {
            Py_ssize_t length = (Py_ssize_t)strlen(cwd);
            int ascii = 1;
            for (Py_ssize_t i = 0; i < length; i++)
                ascii &= (unsigned char)cwd[i] < 128;
            if (ascii && (normal_absolute(cwd, length) || (length == 1 && cwd[0] == '/')))
                cwd_length = length;
        }
    }
    return cwd_length > 0;
}

/* os.path.abspath of an ASCII name, when it is a plain join: the name absolute and normal,
 * or relative with nothing for normpath to fold (no "." or ".." component, no empty one)
 * under a usable working directory. A new reference, or NULL (no error) when not plain. */
static PyObject *plain_absolute(PyObject *raw) {
    const char *text = (const char *)PyUnicode_DATA(raw);
    Py_ssize_t length = PyUnicode_GET_LENGTH(raw);
    if (normal_absolute(text, length)) {
        Py_INCREF(raw);
        return raw;
    }
    if (length == 0 || text[0] == '/' || text[0] == '.' || text[length - 1] == '/' ||
        folds(text, length) || !working_directory())
        return NULL;
    Py_ssize_t base = cwd_length == 1 ? 0 : cwd_length; /* "/" joins as "/name" */
    PyObject *path = PyUnicode_New(base + 1 + length, 127);
    if (path == NULL) {
        PyErr_Clear();
        return NULL;
    }
    char *out = (char *)PyUnicode_DATA(path);
    memcpy(out, cwd, (size_t)base);
    out[base] = '/';
    memcpy(out + base + 1, text, (size_t)length);
    return path;
}

/* The absolute path clew records for the path the program gave (a new reference), None when
 * clew leaves it alone, NULL on error. An ASCII str that is a plain join (plain_absolute),
 * against a filter without globs, is answered here; anything else by the memo or by Python. */
static PyObject *path_of(PyObject *owner, PyObject *raw) {
    if (PyUnicode_CheckExact(raw) && prefix_count >= 0 && PyUnicode_IS_ASCII(raw)) {
        PyObject *path = plain_absolute(raw);
        if (path != NULL) {
            if (wanted((const char *)PyUnicode_DATA(path), PyUnicode_GET_LENGTH(path)))
                return path;
            Py_DECREF(path);
            Py_RETURN_NONE;
        }
    }
    PyObject *known = PyDict_GetItemWithError(resolved, raw);
    if (known != NULL) {
        Py_INCREF(known);
        return known;
    }
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) /* an unhashable path-like: Python's */
            return NULL;
        PyErr_Clear();
    }
    return PyObject_CallFunctionObjArgs(recorded_path, owner, raw, NULL);
}

/* 1 when a source file is being opened by the interpreter's own machinery (the import system,
 * linecache; no Python frame at all: the main script), 0 if by the program, -1 on error. */
static int opened_by_interpreter(void) {
    PyFrameObject *frame = PyEval_GetFrame();
    PyObject *filename = Py_None;
    PyCodeObject *code = NULL;
    if (frame != NULL) {
        code = PyFrame_GetCode(frame);
        filename = code->co_filename;
    }
    PyObject *answer = PyObject_CallOneArg(interpreter_code, filename);
    Py_XDECREF(code);
    if (answer == NULL)
        return -1;
    int truth = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return truth;
}

/* ---- a read --------------------------------------------------------------------------- */

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

static int same_version(const struct stat *now, const struct stat *expected) {
    return S_ISREG(now->st_mode) && now->st_ino == expected->st_ino &&
           now->st_dev == expected->st_dev && now->st_size == expected->st_size &&
           now->st_mtim.tv_sec == expected->st_mtim.tv_sec &&
           now->st_mtim.tv_nsec == expected->st_mtim.tv_nsec;
}

/* _file_digests.hash_file for a small file, without the Python: the file opened, checked to
 * be the version stat-ed both before and after one whole read, hashed with the blake3
 * package. A new reference: the digest, or None when the file is not that version any more.
 * Its open makes no audit event: no need to mark it as clew's own I/O. */
static PyObject *hash_small(const char *name, const struct stat *expected) {
    Py_ssize_t size = (Py_ssize_t)expected->st_size;
    PyObject *data = PyBytes_FromStringAndSize(NULL, size);
    if (data == NULL)
        return NULL;
    char *buffer = PyBytes_AS_STRING(data);
    int whole = 0;
    Py_BEGIN_ALLOW_THREADS
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat now;
        if (fstat(fd, &now) == 0 && same_version(&now, expected)) {
            Py_ssize_t done = 0;
            while (done < size) {
                ssize_t got = read(fd, buffer + done, (size_t)(size - done));
                if (got < 0 && errno == EINTR)
                    continue;
                if (got <= 0)
                    break;
                done += got;
            }
            whole = done == size && fstat(fd, &now) == 0 && same_version(&now, expected);
        }
        close(fd);
    }
    Py_END_ALLOW_THREADS
    if (!whole) {
        Py_DECREF(data);
        Py_RETURN_NONE;
    }
    PyObject *hasher = PyObject_CallOneArg(blake3_type, data);
    Py_DECREF(data);
    if (hasher == NULL)
        return NULL;
    PyObject *hex = PyObject_CallMethodNoArgs(hasher, s_hexdigest);
    Py_DECREF(hasher);
    if (hex == NULL)
        return NULL;
    PyObject *digest = PyUnicode_Concat(digest_prefix, hex);
    Py_DECREF(hex);
    return digest;
}

/* The digest cache's answer for `key`, looked up as DigestCache.get does when the answer is
 * in memory: a new reference to the digest, to None (not known: hash it), or NULL with
 * `*ask_python` set when Python must answer (the cache not loaded yet, or an entry possibly
 * in its older generation, which a hit moves). NULL without it: an error. */
static PyObject *cached_digest(PyObject *cache, PyObject *key, int *ask_python) {
    PyObject *entries = PyObject_GetAttr(cache, s_entries);
    if (entries == NULL)
        return NULL;
    PyObject *digest = NULL, *newer = NULL, *older = NULL;
    if (entries == Py_None)
        goto python;
    newer = PyObject_GetAttr(entries, s_new);
    if (newer == NULL || !PyDict_Check(newer))
        goto failed_or_python;
    digest = PyDict_GetItemWithError(newer, key);
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

/* The digest of a first read of a small file, as `Recorder._content_digest` finds it: from
 * the cache, else hashed and put in the cache. A new reference (None: no digest), or NULL.
 * `*others_ran` is set when other threads may have run meanwhile (the GIL released for the
 * read, or Python code run). */
static PyObject *first_digest(PyObject *owner, PyObject *path, const char *name,
                              const struct stat *st, PyObject *key, int *others_ran) {
    PyObject *cache = PyObject_GetAttr(owner, s_cache);
    if (cache == NULL)
        return NULL;
    int ask_python = 0;
    PyObject *digest = cached_digest(cache, key, &ask_python);
    *others_ran = ask_python || digest == Py_None;
    if (ask_python) {
        digest = PyObject_CallMethodObjArgs(owner, s_digest_here, path, key, NULL);
    } else if (digest == Py_None) {
        Py_DECREF(digest);
        digest = hash_small(name, st);
        if (digest != NULL && digest != Py_None) {
            PyObject *put = PyObject_CallMethodObjArgs(cache, s_put, key, digest, NULL);
            if (put == NULL)
                Py_CLEAR(digest);
            Py_XDECREF(put);
        }
    }
    Py_DECREF(cache);
    return digest;
}

/* A repeated open of a version already recorded: counted, and its last time moved. */
static int repeated(PyObject *owner, PyObject *record) {
    PyObject *count = PyObject_GetAttr(record, s_count);
    if (count == NULL)
        return -1;
    PyObject *more = PyNumber_Add(count, one);
    Py_DECREF(count);
    if (more == NULL)
        return -1;
    int failed = PyObject_SetAttr(record, s_count, more);
    Py_DECREF(more);
    if (failed)
        return -1;
    PyObject *clock = PyObject_GetAttr(owner, s_time_ns);
    if (clock == NULL)
        return -1;
    PyObject *now = PyObject_CallNoArgs(clock);
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
                      PyObject *digest, int hashed, int others_ran) {
    PyObject *record;
    if (others_ran) {
        record = PyDict_GetItemWithError(reads, key);
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
    PyObject *arguments[] = {NULL, s_read, path, key};
    record = PyObject_Vectorcall(record_type, arguments + 1,
                                 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (record == NULL)
        return -1;
    int result = -1;
    PyObject *ready = NULL, *worker = NULL;
    if (digest != Py_None && (PyObject_SetAttr(record, s_digest, digest) < 0 ||
                              PyObject_SetAttr(record, s_identity, s_content) < 0))
        goto finish;
    if (PyDict_SetItem(reads, key, record) < 0)
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

/* Recorder.read(path) for the path as the C-string `name`: 0, or -1 on error. */
static int read_file(PyObject *owner, PyObject *path, const char *name) {
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
    PyObject *reads = NULL, *limit = NULL, *digest = NULL;
    reads = PyObject_GetAttr(owner, s_reads);
    if (reads == NULL)
        goto done;
    if (!PyDict_Check(reads)) {
        PyErr_SetString(PyExc_TypeError, "the recorder's dedupe table is not a dict");
        goto done;
    }
    PyObject *record = PyDict_GetItemWithError(reads, key);
    if (record != NULL) {
        result = repeated(owner, record);
        goto done;
    }
    if (PyErr_Occurred())
        goto done;
    limit = PyObject_GetAttr(owner, s_hash_in_hook_max);
    if (limit == NULL)
        goto done;
    long long hash_max = PyLong_AsLongLong(limit);
    if (hash_max == -1 && PyErr_Occurred())
        goto done;
    int hashed = (long long)st.st_size <= hash_max, others_ran = 0;
    if (hashed) {
        digest = first_digest(owner, path, name, &st, key, &others_ran);
        if (digest == NULL)
            goto done;
    }
    result = first_read(owner, reads, path, key, hashed ? digest : Py_None, hashed, others_ran);
done:
    Py_XDECREF(digest);
    Py_XDECREF(limit);
    Py_XDECREF(reads);
    Py_DECREF(key);
    return result;
}

/* A read of `path` (a str) as a C string for the system calls: a borrowed pointer into `path`
 * or into `*encoded`, which the caller releases. NULL, without an error, for a name the
 * system cannot be given (an embedded NUL, unencodable), which os.stat would refuse too. */
static const char *system_name(PyObject *path, PyObject **encoded) {
    const char *name;
    Py_ssize_t length;
    if (PyUnicode_IS_ASCII(path)) {
        name = (const char *)PyUnicode_DATA(path);
        length = PyUnicode_GET_LENGTH(path);
    } else {
        *encoded = PyUnicode_EncodeFSDefault(path);
        if (*encoded == NULL) {
            PyErr_Clear();
            return NULL;
        }
        name = PyBytes_AS_STRING(*encoded);
        length = PyBytes_GET_SIZE(*encoded);
    }
    return (Py_ssize_t)strlen(name) == length ? name : NULL;
}

/* ---- the hook --------------------------------------------------------------------------- */

/* The "open" event of the path the program gave, `raw`: files._on_open. `owner` is the
 * attached recorder (held). */
static int on_open(PyObject *owner, PyObject *raw, long flags) {
    PyObject *path = path_of(owner, raw);
    if (path == NULL)
        return -1;
    int result = 0;
    if (path == Py_None || !PyUnicode_Check(path))
        goto done;
    if (PyUnicode_Tailmatch(path, s_dot_py, 0, PY_SSIZE_T_MAX, 1)) {
        result = opened_by_interpreter();
        if (result != 0)
            goto done;
    }
    if (flags & (O_WRONLY | O_RDWR)) {
        PyObject *done = PyObject_CallFunction(opened_for_write, "OOl", owner, path, flags);
        result = done == NULL ? -1 : 0;
        Py_XDECREF(done);
        goto done;
    }
    PyObject *encoded = NULL;
    const char *name = system_name(path, &encoded);
    result = name == NULL ? 0 : read_file(owner, path, name);
    Py_XDECREF(encoded);
done:
    Py_DECREF(path);
    return result < 0 ? -1 : 0;
}

static int hook(const char *event, PyObject *args, void *unused) {
    (void)unused;
    if (PyInterpreterState_Get() != PyInterpreterState_Main())
        return 0; /* a subinterpreter, which clew never set up */
    if (strcmp(event, "open") != 0) {
        if (strcmp(event, "os.chdir") == 0) /* os.chdir, os.fchdir; even detached */
            cwd_length = -1;
        if (recorder == NULL)
            return 0; /* detached: uninstrumented */
        for (char **name = other_events; *name != NULL; name++)
            if (strcmp(event, *name) == 0)
                return call_python_hook(event, args);
        return 0;
    }
    if (recorder == NULL)
        return 0;
    /* Unusual arguments (a hand-made sys.audit("open", ...)): the Python hook decides, as it
     * would alone. */
    if (!PyTuple_CheckExact(args) || PyTuple_GET_SIZE(args) != 3 ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(args, 2)))
        return call_python_hook(event, args);
    long flags = PyLong_AsLong(PyTuple_GET_ITEM(args, 2));
    if (flags == -1 && PyErr_Occurred()) { /* flags past a C long: no open makes them */
        PyErr_Clear();
        return call_python_hook(event, args);
    }
    if (PyLong_CheckExact(PyTuple_GET_ITEM(args, 0)))
        return 0; /* a descriptor's open names no path */
    PyObject *owner = recorder; /* held: Python code run from here may detach it */
    Py_INCREF(owner);
    int ignored = ignored_now();
    int result = ignored != 0 ? (ignored < 0 ? -1 : 0)
                              : on_open(owner, PyTuple_GET_ITEM(args, 0), flags);
    if (result < 0)
        result = swallow(owner);
    Py_DECREF(owner);
    return result;
}

/* ---- the module --------------------------------------------------------------------------- */

static void free_names(char **names) {
    if (names == NULL)
        return;
    for (char **name = names; *name != NULL; name++)
        free(*name);
    free(names);
}

/* A NULL-terminated copy of a sequence of ASCII str, their lengths in `lengths` if given; NULL
 * with an error set, or NULL with `*not_ascii` set when one is not ASCII. */
static char **copy_names(PyObject *sequence, Py_ssize_t **lengths, Py_ssize_t *count,
                         int *not_ascii) {
    PyObject *items = PySequence_Fast(sequence, "expected a sequence of str");
    if (items == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    char **names = calloc((size_t)n + 1, sizeof(char *));
    Py_ssize_t *sizes = lengths ? calloc((size_t)n + 1, sizeof(Py_ssize_t)) : NULL;
    if (names == NULL || (lengths && sizes == NULL)) {
        PyErr_NoMemory();
        goto failed;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(items, i);
        if (!PyUnicode_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "expected a sequence of str");
            goto failed;
        }
        if (!PyUnicode_IS_ASCII(item)) {
            if (not_ascii)
                *not_ascii = 1;
            goto failed;
        }
        names[i] = strdup((const char *)PyUnicode_DATA(item));
        if (names[i] == NULL) {
            PyErr_NoMemory();
            goto failed;
        }
        if (sizes)
            sizes[i] = PyUnicode_GET_LENGTH(item);
    }
    Py_DECREF(items);
    if (lengths)
        *lengths = sizes;
    if (count)
        *count = n;
    return names;
failed:
    Py_DECREF(items);
    free_names(names);
    free(sizes);
    return NULL;
}

/* configure(...): the Python side's functions and objects the hook works with. Once: they
 * are held for good, as the hook cannot be removed. */
static PyObject *configure(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"hook", "events", "resolved", "recorded_path", "interpreter_code",
                               "opened_for_write", "clew_io", "context_variable",
                               "current_context", "suppress_key", "blake3", "prefix", "record",
                               "max_tracked", "spill_records", NULL};
    PyObject *events, *variable;
    if (other_events != NULL)
        Py_RETURN_NONE;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "OOO!OOOOOOOOUOnn:configure", keywords, &python_hook, &events,
            &PyDict_Type, &resolved, &recorded_path, &interpreter_code, &opened_for_write,
            &clew_io, &variable, &current_context, &suppress_key, &blake3_type, &digest_prefix,
            &record_type, &max_tracked, &spill_records))
        return NULL;
    other_events = copy_names(events, NULL, NULL, NULL);
    if (other_events == NULL)
        return NULL;
    context_variable = PyContextVar_CheckExact(variable) ? variable : NULL;
    PyObject *held[] = {python_hook, resolved, recorded_path, interpreter_code, opened_for_write,
                        clew_io, current_context, suppress_key, blake3_type, digest_prefix,
                        record_type};
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
        Py_INCREF(held[i]);
    Py_XINCREF(context_variable);
    Py_RETURN_NONE;
}

/* install(): add the hook to the interpreter, once a process; False when another audit hook
 * refused it (the caller adds the Python hook instead). */
static PyObject *install(PyObject *module, PyObject *unused) {
    if (other_events == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    if (!installed) {
        if (PySys_AddAuditHook(hook, NULL) < 0) {
            PyErr_Clear();
            Py_RETURN_FALSE;
        }
        installed = 1;
    }
    Py_RETURN_TRUE;
}

/* attach(recorder, prefixes): the recorder the hook records to (None: none, every event is
 * ignored) and its filter's excluded prefixes when they alone decide (None: ask the filter). */
static PyObject *attach(PyObject *module, PyObject *args) {
    PyObject *owner, *excluded;
    if (!PyArg_ParseTuple(args, "OO:attach", &owner, &excluded))
        return NULL;
    char **names = NULL;
    Py_ssize_t *lengths = NULL, count = -1;
    if (excluded != Py_None) {
        int not_ascii = 0;
        names = copy_names(excluded, &lengths, &count, &not_ascii);
        if (names == NULL && !not_ascii)
            return NULL;
        if (names == NULL)
            count = -1; /* a prefix in another script: the filter is asked in Python */
    }
    free_names(prefixes);
    free(prefix_lengths);
    prefixes = names;
    prefix_lengths = lengths;
    prefix_count = count;
    cwd_length = -1;
    PyObject *previous = recorder;
    recorder = owner == Py_None ? NULL : owner;
    Py_XINCREF(recorder);
    Py_XDECREF(previous);
    Py_RETURN_NONE;
}

/* audit(event, args): what the installed hook does with one event, called directly (tests). */
static PyObject *audit(PyObject *module, PyObject *args) {
    const char *event;
    PyObject *arguments;
    if (!PyArg_ParseTuple(args, "sO:audit", &event, &arguments))
        return NULL;
    if (other_events == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    if (hook(event, arguments, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(...): what the hook works with (instrumentation/files.py gives it)."},
    {"install", install, METH_NOARGS,
     "install(): add the hook, once a process; False if another audit hook refused it."},
    {"attach", attach, METH_VARARGS, "attach(recorder, prefixes): where the hook records."},
    {"audit", audit, METH_VARARGS, "audit(event, args): run the hook on one event."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_open_hook",
    "clew's file audit hook in C (see instrumentation/files.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__open_hook(void) {
    struct {
        PyObject **name;
        const char *text;
    } names[] = {
        {&s_reads, "_reads"}, {&s_cache, "_cache"}, {&s_entries, "_entries"}, {&s_new, "new"},
        {&s_old, "old"}, {&s_hash_in_hook_max, "_hash_in_hook_max"}, {&s_time_ns, "_time_ns"},
        {&s_count, "count"}, {&s_last_ns, "last_ns"}, {&s_active, "active"},
        {&s_first_read, "first_read"}, {&s_put, "put"}, {&s_digest_here, "_digest_here"},
        {&s_hexdigest, "hexdigest"}, {&s_failed, "failed"}, {&s_where, "file hook open"},
        {&s_dot_py, ".py"}, {&s_append, "append"}, {&s_ready, "_ready"}, {&s_wake, "_wake"}, {&s_set, "set"},
        {&s_worker, "_worker"}, {&s_start_worker, "_start_worker"}, {&s_digest, "digest"},
        {&s_identity, "identity"}, {&s_content, "content"}, {&s_read, "read"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (*names[i].name == NULL && (*names[i].name = PyUnicode_InternFromString(names[i].text)) == NULL)
            return NULL;
    if (one == NULL && (one = PyLong_FromLong(1)) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
