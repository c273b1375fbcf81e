/*
 * A flush's per-record work on small file reads, in C (instrumentation/_record_spans.py falls
 * back to the same work in Python without it). This file: the module, a Record's slots read
 * directly, a batched "read file" span's parallel arrays (URIs, digests, sizes, identities,
 * counts; the URIs made as clew.semconv.uris.file_uri makes them) and the digest cache's new
 * lines; _read_stamps.c: the producer-stamp check; _flush_plan.c: the records sorted into
 * spans, with their batches' arrays and times, in one pass.
 */
#include "_read_batches.h"

#include <string.h>
#include <structmember.h>

PyObject *slot_names[SLOTS];
PyTypeObject *record_class;
static Py_ssize_t slot_offsets[SLOTS]; /* where each attribute is in a Record; 0: looked up */
static PyObject *s_empty, *s_read;     /* "", "read" */

PyObject *record_slot(PyObject *record, enum record_slot which) {
    if (Py_TYPE(record) == record_class && slot_offsets[which]) {
        PyObject *value = *(PyObject **)((char *)record + slot_offsets[which]);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(record, slot_names[which]);  /* unset: its AttributeError */
}

int is_read(PyObject *operation) {
    return operation == s_read ||  /* the literal, interned, as records have it */
           (PyUnicode_Check(operation) && PyUnicode_READY(operation) == 0 &&
            PyUnicode_GET_LENGTH(operation) == 4 && PyUnicode_KIND(operation) == PyUnicode_1BYTE_KIND &&
            memcmp(PyUnicode_DATA(operation), "read", 4) == 0);
}

/* configure(Record): where each attribute the flush reads is in a Record, from the class's
 * member descriptors (a plain object slot each; any other is looked up by name). */
static PyObject *configure(PyObject *self, PyObject *record) {
    if (!PyType_Check(record)) {
        PyErr_SetString(PyExc_TypeError, "the record class is not a class");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)record;
    for (int i = 0; i < SLOTS; i++) {
        PyObject *descriptor = PyDict_GetItemWithError(type->tp_dict, slot_names[i]);
        if (descriptor == NULL && PyErr_Occurred())
            return NULL;
        PyMemberDef *member = descriptor != NULL && Py_IS_TYPE(descriptor, &PyMemberDescr_Type)
                                  ? ((PyMemberDescrObject *)descriptor)->d_member
                                  : NULL;
        slot_offsets[i] = member != NULL && member->type == T_OBJECT_EX ? member->offset : 0;
    }
    Py_INCREF(record);
    Py_XSETREF(record_class, type);
    Py_RETURN_NONE;
}

/* Whether `c` is a character clew.semconv.uris writes unquoted (its _URI_SAFE and
 * alphanumerics). */
static unsigned char uri_safe[256];  /* made by PyInit, from the characters below */

static void make_uri_safe(void) {
    for (int c = 1; c < 256; c++)
        uri_safe[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      strchr("/:@!$&()*+,;=~-._", c) != NULL;
}

/* `prefix` followed by `path` from character `cut` on, quoted by `quote` where it has a
 * character a URI cannot hold as it is. */
static PyObject *uri_of(PyObject *prefix, PyObject *path, Py_ssize_t cut, PyObject *quote) {
    Py_ssize_t length = PyUnicode_GET_LENGTH(path);
    if (cut > length)
        cut = length;
    if (PyUnicode_IS_ASCII(path) && PyUnicode_IS_ASCII(prefix)) {
        const unsigned char *name = (const unsigned char *)PyUnicode_DATA(path) + cut;
        Py_ssize_t size = length - cut, i = 0;
        while (i < size && uri_safe[name[i]])
            i++;
        if (i == size) {
            Py_ssize_t head = PyUnicode_GET_LENGTH(prefix);
            PyObject *uri = PyUnicode_New(head + size, 127);
            if (uri == NULL)
                return NULL;
            memcpy(PyUnicode_DATA(uri), PyUnicode_DATA(prefix), head);
            memcpy((char *)PyUnicode_DATA(uri) + head, name, size);
            return uri;
        }
    }
    PyObject *name = PyUnicode_Substring(path, cut, length);
    if (name == NULL)
        return NULL;
    PyObject *quoted = PyObject_CallOneArg(quote, name);
    Py_DECREF(name);
    if (quoted == NULL)
        return NULL;
    PyObject *uri = PyUnicode_Concat(prefix, quoted);
    Py_DECREF(quoted);
    return uri;
}

/* `value` (a new reference, or NULL on error) as item `index` of `list`: 0, or -1. */
static int set_new(PyObject *list, Py_ssize_t index, PyObject *value) {
    if (value == NULL)
        return -1;
    PyList_SET_ITEM(list, index, value);
    return 0;
}

int new_arrays(PyObject *arrays[5], Py_ssize_t count) {
    for (int i = 0; i < 5; i++)
        if ((arrays[i] = PyList_New(count)) == NULL)
            return -1;
    return 0;
}

int set_record(PyObject *arrays[5], Py_ssize_t index, PyObject *record, PyObject *prefix,
               Py_ssize_t cut, PyObject *quote) {
    PyObject *path = record_slot(record, SLOT_PATH);
    if (path == NULL)
        return -1;
    if (!PyUnicode_Check(path)) {
        Py_DECREF(path);
        PyErr_SetString(PyExc_TypeError, "a record's path must be a str");
        return -1;
    }
    int failed = set_new(arrays[0], index, uri_of(prefix, path, cut, quote));
    Py_DECREF(path);
    if (failed)
        return -1;

    PyObject *digest = record_slot(record, SLOT_DIGEST);
    if (digest == NULL)
        return -1;
    /* `record.digest or ""`: a str's truth read from its length, not asked (~90 instructions) */
    int truth = PyUnicode_CheckExact(digest) && PyUnicode_IS_READY(digest)
                    ? PyUnicode_GET_LENGTH(digest) != 0
                    : PyObject_IsTrue(digest);
    if (truth <= 0)
        Py_SETREF(digest, truth < 0 ? NULL : Py_NewRef(s_empty));
    if (set_new(arrays[1], index, digest))
        return -1;

    PyObject *key = record_slot(record, SLOT_KEY);
    if (key == NULL)
        return -1;
    PyObject *size = key == Py_None ? PyLong_FromLong(0)
                     : PyTuple_CheckExact(key) && PyTuple_GET_SIZE(key) > 2
                         ? Py_NewRef(PyTuple_GET_ITEM(key, 2))
                         : PySequence_GetItem(key, 2);
    Py_DECREF(key);
    return set_new(arrays[2], index, size) ||
                   set_new(arrays[3], index, record_slot(record, SLOT_IDENTITY)) ||
                   set_new(arrays[4], index, record_slot(record, SLOT_COUNT))
               ? -1
               : 0;
}

static PyObject *arrays(PyObject *self, PyObject *args) {
    PyObject *records, *prefix, *quote;
    Py_ssize_t cut;
    if (!PyArg_ParseTuple(args, "O!nUO", &PyList_Type, &records, &cut, &prefix, &quote))
        return NULL;
    PyObject *lists[5] = {NULL};
    Py_ssize_t count = PyList_GET_SIZE(records);
    if (new_arrays(lists, count))
        goto error;
    for (Py_ssize_t i = 0; i < count; i++)
        if (set_record(lists, i, PyList_GET_ITEM(records, i), prefix, cut, quote))
            goto error;
    return Py_BuildValue("(NNNNN)", lists[0], lists[1], lists[2], lists[3], lists[4]);
error:
    for (int i = 0; i < 5; i++)
        Py_XDECREF(lists[i]);
    return NULL;
}

/* scalar_tuple(value): `value` (a list or tuple) as a tuple if every element is a str, int,
 * float or bool (exactly: what the SDK's BoundedAttributes keeps unchanged), else None. In
 * Python a call and a set look-up per element, ~40 instructions. */
static PyObject *scalar_tuple(PyObject *self, PyObject *value) {
    if (!PyList_Check(value) && !PyTuple_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "scalar_tuple takes a list or a tuple");
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(value);
    PyObject **items = PySequence_Fast_ITEMS(value);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyTypeObject *type = Py_TYPE(items[i]);
        if (type != &PyUnicode_Type && type != &PyLong_Type && type != &PyFloat_Type &&
            type != &PyBool_Type)
            Py_RETURN_NONE;
    }
    return PyTuple_Check(value) ? Py_NewRef(value) : PyList_AsTuple(value);
}

/* The URIs of `paths` (a list of str), each `prefix` and the path from `cut` on: a
 * FileBatch's, which has its files' paths as a list, not records. */
static PyObject *uris(PyObject *self, PyObject *args) {
    PyObject *paths, *prefix, *quote;
    Py_ssize_t cut;
    if (!PyArg_ParseTuple(args, "O!nUO", &PyList_Type, &paths, &cut, &prefix, &quote))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(paths);
    PyObject *result = PyList_New(count);
    if (result == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *path = PyList_GET_ITEM(paths, i);
        if (!PyUnicode_Check(path)) {
            PyErr_SetString(PyExc_TypeError, "a path must be a str");
            Py_DECREF(result);
            return NULL;
        }
        PyObject *uri = uri_of(prefix, path, cut, quote);
        if (uri == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, i, uri);
    }
    return result;
}

/* `value` in decimal at `out`, as str(int) writes it; the end of what was written. */
static char *write_decimal(char *out, long long value) {
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0)
        *out++ = '-';
    while (count)
        *out++ = digits[--count];
    return out;
}

/* One entry, `key` (dev, ino, size, mtime) and its `digest`, as its cache line at `out`; the
 * end of it, or NULL if C does not write it as Python does (not that shape, an int beyond 64
 * bits, a digest that is not ASCII), with no exception set. */
static char *write_cache_line(char *out, PyObject *key, PyObject *digest) {
    if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 4 || !PyUnicode_CheckExact(digest) ||
        PyUnicode_READY(digest) < 0 || !PyUnicode_IS_ASCII(digest))
        return NULL;
    for (int i = 0; i < 4; i++) {
        PyObject *field = PyTuple_GET_ITEM(key, i);
        int overflow = 0;
        long long value = PyLong_CheckExact(field) ? PyLong_AsLongLongAndOverflow(field, &overflow) : 0;
        if (!PyLong_CheckExact(field) || overflow || (value == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return NULL;
        }
        out = write_decimal(out, value);
        *out++ = ' ';
    }
    memcpy(out, PyUnicode_1BYTE_DATA(digest), PyUnicode_GET_LENGTH(digest));
    out += PyUnicode_GET_LENGTH(digest);
    *out++ = '\n';
    return out;
}

/* cache_lines_into(buffer, entries, start): the cache lines of entries[start:] written into
 * `buffer` (writable, reused by the caller) while they fit: (next entry's index, bytes written).
 * `next` stops short of the end where a line would not fit (the caller writes the buffer out
 * and calls again), or at an entry C does not write as Python does (`next` unchanged on the
 * next call: Python writes from there). A reused buffer, not new bytes per save: in a forked
 * DataLoader worker every page of a new 200 KB buffer was a page fault at exit. */
static PyObject *cache_lines_into(PyObject *self, PyObject *args) {
    Py_buffer buffer;
    PyObject *entries;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "w*O!n", &buffer, &PyList_Type, &entries, &start))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(entries) & ~(Py_ssize_t)1, i = start < 0 ? 0 : start & ~(Py_ssize_t)1;
    char *out = buffer.buf, *end = out + buffer.len;
    for (; i < count; i += 2) {
        PyObject *digest = PyList_GET_ITEM(entries, i + 1);
        /* the longest line this entry could make: four 64-bit numbers with spaces */
        if (!PyUnicode_Check(digest) || end - out < 4 * 21 + PyUnicode_GET_LENGTH(digest) + 1)
            break;
        char *after = write_cache_line(out, PyList_GET_ITEM(entries, i), digest);
        if (after == NULL)
            break;
        out = after;
    }
    Py_ssize_t written = out - (char *)buffer.buf;
    PyBuffer_Release(&buffer);
    return Py_BuildValue("(nn)", i, written);
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_O,
     "configure(Record): the record class whose slots the other functions read directly."},
    {"cache_lines_into", cache_lines_into, METH_VARARGS,
     "cache_lines_into(buffer, entries, start): the digest cache's lines of entries[start:] "
     "([(dev, ino, size, mtime), digest, ...]) written into `buffer` while they fit and C "
     "writes them as Python does: (index of the next entry, bytes written)."},
    {"plan", plan, METH_VARARGS,
     "plan(records, max_size, max_records, suffixes, prefix_of, quote): a flush's records "
     "sorted into spans, as _record_spans.plan_flush's Python gives them."},
    {"stamp_candidates", stamp_candidates, METH_VARARGS,
     "stamp_candidates(records, name): the records (or paths) whose file may have the xattr "
     "`name` (bytes), unless a hook found them unstamped; every other record's producer set "
     "to None."},
    {"arrays", arrays, METH_VARARGS,
     "arrays(records, cut, prefix, quote): (uris, digests, sizes, identities, counts) of a "
     "batch of file reads, each URI `prefix` and the path from `cut` on, quoted by `quote` "
     "where needed."},
    {"scalar_tuple", scalar_tuple, METH_O,
     "scalar_tuple(value): a list or tuple as a tuple if its elements are all str, int, float or "
     "bool, else None."},
    {"uris", uris, METH_VARARGS,
     "uris(paths, cut, prefix, quote): the URIs of `paths` as arrays() makes a record's."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_read_batches",
    "A flush's per-record work on small file reads in C (see instrumentation/_record_spans.py).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__read_batches(void) {
    static const char *const texts[SLOTS] = {
        [SLOT_OPERATION] = "operation", [SLOT_PATH] = "path", [SLOT_KEY] = "key",
        [SLOT_COUNT] = "count", [SLOT_FIRST_NS] = "first_ns", [SLOT_LAST_NS] = "last_ns",
        [SLOT_DIGEST] = "digest", [SLOT_IDENTITY] = "identity", [SLOT_PRODUCER] = "producer",
        [SLOT_UNSTAMPED] = "unstamped",
    };
    for (int i = 0; i < SLOTS; i++)
        if (slot_names[i] == NULL && (slot_names[i] = PyUnicode_InternFromString(texts[i])) == NULL)
            return NULL;
    if ((s_empty == NULL && (s_empty = PyUnicode_InternFromString("")) == NULL) ||
        (s_read == NULL && (s_read = PyUnicode_InternFromString("read")) == NULL))
        return NULL;
    if (flush_plan_init() < 0)
        return NULL;
    make_uri_safe();
    return PyModule_Create(&module);
}
