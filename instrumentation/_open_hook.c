/*
 * clew's file audit hook, in C: installed by instrumentation/files.py when this extension was
 * built, in place of the Python hook `files._audit`, which stays the fallback and the
 * reference for what is recorded (docs/architecture.md, "The audit hook in C").
 *
 * Why C: CPython calls an audit hook on every audit event of the process (imports, compiles,
 * execs, opens), and a first open of a small file ran ~125k instructions of clew's hook, half
 * of it clew's Python, against ~60k for a stat, a read and a blake3 hash. Here an event clew
 * does not handle costs a few string compares, and a plain read-only open does in C the
 * suppression checks, the path's resolution and filter, and the read's record
 * (_open_hook_read.c). Python is called for what is rare: opens for writing, unusual paths
 * (bytes, path-likes, names for normpath to fold, a filter with globs), source files (who
 * opens them), and every other event clew handles.
 *
 * It reads `clew_io.active` and OpenTelemetry's current context on every open, and calls
 * `recorder.failed` with what went wrong.
 */
#include "_open_hook.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What install() was given: the Python side's functions and objects. */
static PyObject *python_hook;       /* files._audit: every event but a plain open */
static char **other_events;         /* the other events it handles, NULL-terminated */
/* The first characters of the events it handles ("open", "os.chdir" and other_events): most
 * events of a process ("builtins.id", "exec", "import", "marshal.loads", "compile") are
 * ruled out by one look-up instead of a strcmp with each name. */
static unsigned char handled_first[256] = {['o'] = 1};
static PyObject *resolved;          /* files._resolved: path as given -> recorded path or None */
static PyObject *recorded_path;     /* files._recorded_path(recorder, raw) */
static PyObject *interpreter_code;  /* files._is_interpreter_code(filename or None) */
static PyObject *opened_for_write;  /* files._opened_for_write(recorder, path, flags) */
static PyObject *clew_io;           /* its `active` is set while clew does its own I/O */
static PyObject *context_variable;  /* OpenTelemetry's current-context ContextVar, or NULL */
static PyObject *current_context;   /* otherwise, the function that returns it */
static PyObject *suppress_key;      /* set in the context by suppress_instrumentation() */

/* What attach() was given: the recorder (NULL: detached, every event ignored) and, when its
 * path filter has no glob, the prefixes it excludes (else `prefix_count` is -1 and the filter
 * is asked in Python). */
static PyObject *recorder;
static char **prefixes;
static Py_ssize_t *prefix_lengths;
static Py_ssize_t prefix_count = -1;

static PyObject *s_active, *s_failed, *s_where, *s_dot_py;
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

/* Whether a name has a component for normpath to fold: an empty one ("//"), "." or "..".
 * A hidden file's or directory's name (".venv", where most programs' imports come from)
 * folds nothing. One pass: memmem costs more on names this short. */
static int folds(const char *text, Py_ssize_t length) {
    for (Py_ssize_t i = 0; i + 1 < length; i++) {
        if (text[i] != '/')
            continue;
        const char *next = text + i + 1;
        Py_ssize_t left = length - i - 1;
        if (next[0] == '/')
            return 1;
        if (next[0] == '.' && (left == 1 || next[1] == '/' ||
                               (next[1] == '.' && (left == 2 || next[2] == '/'))))
            return 1;
    }
    return 0;
}

/* Whether os.path.abspath would return the name unchanged: absolute, and nothing for
 * normpath to fold (no empty, "." or ".." component, no trailing slash). */
static int normal_absolute(const char *text, Py_ssize_t length) {
    return length > 0 && text[0] == '/' && text[length - 1] != '/' && !folds(text, length);
}

/* PathFilter.wants for a filter without globs: under no excluded prefix, no __pycache__. */
static int wanted(const char *text, Py_ssize_t length) {
    /* Every open of the program is checked against all ~20 prefixes: a prefix whose second
     * character differs (most: "/proc/", "/usr/lib/", ...) is passed without a memcmp call,
     * as is a "/" not followed by "_" (704 -> 464 instructions an open, 18 prefixes). */
    for (Py_ssize_t i = 0; i < prefix_count; i++) {
        Py_ssize_t n = prefix_lengths[i];
        if (length >= n && (n < 2 || text[1] == prefixes[i][1]) &&
            memcmp(text, prefixes[i], n) == 0)
            return 0;
    }
    for (const char *at = text; (at = memchr(at, '/', length - (at - text))) != NULL; at++)
        if (length - (at - text) >= 13 && at[1] == '_' && memcmp(at, "/__pycache__/", 13) == 0)
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
    result = name == NULL ? 0 : open_hook_read(owner, path, name);
    Py_XDECREF(encoded);
done:
    Py_DECREF(path);
    return result < 0 ? -1 : 0;
}

/* Whether `args` of a listing event ("os.listdir", "os.scandir") name a directory clew leaves
 * alone, as files._on_list would find: the import system lists every directory it searches,
 * most of them in the interpreter's trees, and these need no call into Python. */
static int unwanted_listing(const char *event, PyObject *args) {
    if (prefix_count < 0 || (strcmp(event, "os.listdir") != 0 && strcmp(event, "os.scandir") != 0) ||
        !PyTuple_CheckExact(args) || PyTuple_GET_SIZE(args) < 1)
        return 0;
    PyObject *raw = PyTuple_GET_ITEM(args, 0);
    if (!PyUnicode_CheckExact(raw) || !PyUnicode_IS_ASCII(raw))
        return 0;
    PyObject *path = plain_absolute(raw);
    if (path == NULL)
        return 0;
    int unwanted = !wanted((const char *)PyUnicode_DATA(path), PyUnicode_GET_LENGTH(path));
    Py_DECREF(path);
    return unwanted;
}

static int hook(const char *event, PyObject *args, void *unused) {
    (void)unused;
    if (!handled_first[(unsigned char)event[0]])
        return 0;
    if (PyInterpreterState_Get() != PyInterpreterState_Main())
        return 0; /* a subinterpreter, which clew never set up */
    if (strcmp(event, "open") != 0) {
        if (strcmp(event, "os.chdir") == 0) /* os.chdir, os.fchdir; even detached */
            cwd_length = -1;
        if (recorder == NULL)
            return 0; /* detached: uninstrumented */
        for (char **name = other_events; *name != NULL; name++)
            if (strcmp(event, *name) == 0)
                return unwanted_listing(event, args) ? 0 : call_python_hook(event, args);
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
                               "digest_cache", "memo", "max_tracked", "spill_records",
                               "stamp_name", NULL};
    PyObject *events, *variable, *blake3, *prefix, *record, *digest_cache, *memo;
    Py_ssize_t max_tracked, spill_records;
    const char *stamp_name;
    if (other_events != NULL)
        Py_RETURN_NONE;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "OOO!OOOOOOOOUOOOnny:configure", keywords, &python_hook, &events,
            &PyDict_Type, &resolved, &recorded_path, &interpreter_code, &opened_for_write,
            &clew_io, &variable, &current_context, &suppress_key, &blake3, &prefix, &record,
            &digest_cache, &memo, &max_tracked, &spill_records, &stamp_name))
        return NULL;
    other_events = copy_names(events, NULL, NULL, NULL);
    if (other_events == NULL)
        return NULL;
    if (open_hook_read_configure(blake3, prefix, record, digest_cache, memo, max_tracked,
                                 spill_records, stamp_name) < 0) {
        free_names(other_events);
        other_events = NULL; /* not configured: configure() may be called again */
        return NULL;
    }
    for (char **name = other_events; *name != NULL; name++)
        handled_first[(unsigned char)(*name)[0]] = 1;
    context_variable = PyContextVar_CheckExact(variable) ? variable : NULL;
    PyObject *held[] = {python_hook, resolved, recorded_path, interpreter_code, opened_for_write,
                        clew_io, current_context, suppress_key};
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

/* read(recorder, path): Recorder.read(path) in C, for the library hooks' reads (pyarrow's
 * dataset files, ...): the same records and digests as the hook's opens. False, nothing done,
 * before configure() or for a path that is not a str: the caller takes the Python path. */
static PyObject *read_path(PyObject *module, PyObject *args) {
    PyObject *owner, *path;
    if (!PyArg_ParseTuple(args, "OO:read", &owner, &path))
        return NULL;
    if (other_events == NULL || !PyUnicode_Check(path))
        Py_RETURN_FALSE;
    PyObject *encoded = NULL;
    const char *name = system_name(path, &encoded);
    int result = name == NULL ? 0 : open_hook_read(owner, path, name);
    Py_XDECREF(encoded);
    if (result < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(...): what the hook works with (instrumentation/files.py gives it)."},
    {"install", install, METH_NOARGS,
     "install(): add the hook, once a process; False if another audit hook refused it."},
    {"attach", attach, METH_VARARGS, "attach(recorder, prefixes): where the hook records."},
    {"audit", audit, METH_VARARGS, "audit(event, args): run the hook on one event."},
    {"read", read_path, METH_VARARGS,
     "read(recorder, path): Recorder.read in C; False before configure() or for a non-str."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_open_hook",
    "clew's file audit hook in C (see instrumentation/files.py).", -1, methods,
};

int intern_names(const struct hook_name *names, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (*names[i].name == NULL &&
            (*names[i].name = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    return 0;
}

PyMODINIT_FUNC PyInit__open_hook(void) {
    const struct hook_name names[] = {
        {&s_active, "active"}, {&s_failed, "failed"}, {&s_where, "file hook open"},
        {&s_dot_py, ".py"},
    };
    if (intern_names(names, sizeof(names) / sizeof(names[0])) < 0 || open_hook_read_init() < 0)
        return NULL;
    return PyModule_Create(&module);
}
