/*
 * The digest cache file's lines read into its in-memory map (instrumentation/_file_digests.py).
 *
 * A run with a warm cache loads the file at its first open, in the program's own thread. In
 * Python a line costs a split, four int() calls, a tuple, a decode and a dict store: ~35 ms of
 * CPU for 20,000 lines, ~10 ms here (docs/architecture.md says how it was measured), and the
 * tuples it makes set off young collections. Here a line of the form the cache writes ("dev
 * ino size mtime digest\n": decimal numbers, single spaces, a digest of printable ASCII) is
 * parsed directly, its key made untracked by the collector (a tuple of ints never holds a
 * cycle); any other line is handed back to Python, which decides as before.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>

#define MAX_DIGITS 19 /* any such number fits in an unsigned long long; an mtime_ns has 19 */

/* A number the cache writes, then one space, from `*at`: its value, `*at` moved past the
 * space. 0, or -1 when the text is not of that form (Python then reads the line). */
static int number(const char **at, const char *end, long long *value) {
    const char *p = *at;
    int negative = p < end && *p == '-';
    p += negative;
    const char *digits = p;
    unsigned long long result = 0;
    while (p < end && *p >= '0' && *p <= '9' && p - digits < MAX_DIGITS)
        result = result * 10 + (unsigned long long)(*p++ - '0');
    if (p == digits || p >= end || *p != ' ' || result > LLONG_MAX)
        return -1;
    *value = negative ? -(long long)result : (long long)result;
    *at = p + 1;
    return 0;
}

/* The line at `line` (up to `end`) stored in `*new` by _Memo's rule: when the newer generation
 * is full it becomes the older one. 1 stored, 0 not of the cache's form, -1 on error. */
static int store_line(const char *line, const char *end, Py_ssize_t size, PyObject **old,
                      PyObject **new) {
    long long fields[4];
    const char *at = line;
    for (int i = 0; i < 4; i++)
        if (number(&at, end, &fields[i]) < 0)
            return 0;
    const char *digest = at;
    while (at < end && *at > ' ' && *at < 0x7f)
        at++;
    if (at == digest || at >= end || *at != '\n')
        return 0;
    PyObject *key = PyTuple_New(4);
    if (key == NULL)
        return -1;
    for (int i = 0; i < 4; i++) {
        PyObject *field = PyLong_FromLongLong(fields[i]);
        if (field == NULL) {
            Py_DECREF(key);
            return -1;
        }
        PyTuple_SET_ITEM(key, i, field);
    }
    PyObject_GC_UnTrack(key);
    PyObject *value = PyUnicode_DecodeASCII(digest, at - digest, "strict");
    int result = value == NULL ? -1 : 1;
    if (value != NULL && PyDict_GET_SIZE(*new) >= size) {
        PyObject *newer = PyDict_New();
        if (newer == NULL)
            result = -1;
        else {
            Py_SETREF(*old, *new);
            *new = newer;
        }
    }
    if (result == 1 && PyDict_SetItem(*new, key, value) < 0)
        result = -1;
    Py_XDECREF(value);
    Py_DECREF(key);
    return result;
}

static PyObject *add_lines(PyObject *self, PyObject *args) {
    Py_buffer text;
    Py_ssize_t start, size;
    PyObject *old, *new;
    if (!PyArg_ParseTuple(args, "y*nnO!O!", &text, &start, &size, &PyDict_Type, &old,
                          &PyDict_Type, &new))
        return NULL;
    const char *base = text.buf, *end = base + text.len;
    const char *line = base + (start < 0 ? 0 : start > text.len ? text.len : start);
    Py_INCREF(old);
    Py_INCREF(new);
    int stored = 1;
    while (line < end) {
        const char *newline = memchr(line, '\n', end - line);
        if (newline == NULL)
            break;
        stored = store_line(line, newline + 1, size, &old, &new);
        if (stored <= 0)
            break;
        line = newline + 1;
    }
    PyBuffer_Release(&text);
    if (stored < 0) {
        Py_DECREF(old);
        Py_DECREF(new);
        return NULL;
    }
    return Py_BuildValue("(NNn)", old, new, (Py_ssize_t)(line - base));
}

static PyMethodDef methods[] = {
    {"add_lines", add_lines, METH_VARARGS,
     "add_lines(text, start, size, old, new): the whole lines of `text` from `start` stored as "
     "_Memo does (generations of `size`); (old, new, stop), `stop` the first line not of the "
     "cache's form, or the end of the last whole line."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {PyModuleDef_HEAD_INIT, "_digest_cache_text", NULL, -1,
                                        methods};

PyMODINIT_FUNC PyInit__digest_cache_text(void) { return PyModule_Create(&definition); }
