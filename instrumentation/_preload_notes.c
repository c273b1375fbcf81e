/*
 * Reads the record files of clew's LD_PRELOAD library (_preload_shim.c, whose header comment
 * gives the layout) for instrumentation/_preload.py, in the parent Python process.
 *
 * A CPython extension, unlike the library it reads: `cp -r` of 10,000 files leaves 20,000
 * notes, and walking them in Python (a header unpacked, the names sliced, split and decoded,
 * a key tuple built, per note) cost as much as what the notes are then turned into.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define HEADER_BYTES 40
#define COPY 'C'

/* `tuple`, made here of numbers, strings, None and such tuples, untracked by the cyclic garbage
 * collector, as CPython untracks such tuples at their first collection: nothing in it can
 * refer back to it. Tracked, the 20,000 notes of a `cp -r` of 10,000 files, held until all are
 * read, survived enough young collections to set off full ones (~20 ms each, in a process that
 * has imported OpenTelemetry). */
static PyObject *untracked(PyObject *tuple) {
    if (tuple != NULL)
        PyObject_GC_UnTrack(tuple);
    return tuple;
}

/* The source key of a copy record, "dev ino size mtime" as text: NULL (no error set) when the
 * text is not four integers. */
static PyObject *source_key(const char *text, const char *end) {
    long long fields[4];
    int count = 0;
    while (text < end && *text && count < 4) {
        while (text < end && *text == ' ')
            text++;
        int negative = text < end && *text == '-';
        text += negative;
        if (text >= end || *text < '0' || *text > '9')
            return NULL;
        unsigned long long value = 0;
        while (text < end && *text >= '0' && *text <= '9')
            value = value * 10 + (unsigned long long)(*text++ - '0');
        fields[count++] = negative ? -(long long)value : (long long)value;
    }
    if (count != 4 || (text < end && *text))
        return NULL;
    /* device and inode are unsigned in the record's header: the same numbers here */
    return untracked(Py_BuildValue("(KKLL)", (unsigned long long)fields[0],
                                   (unsigned long long)fields[1], fields[2], fields[3]));
}

static PyObject *abspath; /* os.path.abspath */

/* Whether os.path.abspath would return the name unchanged: absolute, and nothing for
 * normpath to fold (no empty, "." or ".." component, no trailing slash). */
static int normal_absolute(const char *text, size_t length) {
    return length > 0 && text[0] == '/' && text[length - 1] != '/' &&
           memmem(text, length, "/.", 2) == NULL && memmem(text, length, "//", 2) == NULL;
}

/* A name of `length` bytes as os.fsdecode gives it (the filesystem encoding, surrogateescape),
 * normalised as instrumentation/_paths.py's `absolute`: the library does not normalise. */
static PyObject *name(const char *text, size_t length) {
    PyObject *decoded = PyUnicode_DecodeFSDefaultAndSize(text, (Py_ssize_t)length);
    if (decoded == NULL || normal_absolute(text, length))
        return decoded;
    PyObject *normal = PyObject_CallOneArg(abspath, decoded);
    Py_DECREF(decoded);
    return normal;
}

PyDoc_STRVAR(read_doc,
"read(data, offset, copies) -> (notes, offset)\n\n"
"The records of `data` (a record file's bytes) from `offset` on: a list of (operation,\n"
"(dev, ino, size, mtime), path, second path or None), the paths normalised as absolute()\n"
"does, and the offset to read on from next time (the first record not yet complete). Copy\n"
"records go into `copies` instead, as copy's key -> source's key.");

static PyObject *read_notes(PyObject *self, PyObject *args) {
    PyObject *data, *copies;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "OnO!", &data, &offset, &PyDict_Type, &copies))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *notes = PyList_New(0);
    if (notes == NULL)
        goto failed;
    const unsigned char *base = view.buf;
    Py_ssize_t total = view.len;
    while (offset >= 0 && offset + HEADER_BYTES <= total) {
        const unsigned char *record = base + offset;
        /* The operation byte is the record's last store (its writer's release): read first. */
        unsigned char operation = __atomic_load_n(record + 4, __ATOMIC_ACQUIRE);
        uint32_t length;
        uint64_t dev, ino;
        int64_t size, mtime;
        memcpy(&length, record, 4);
        if (operation == 0 || length < HEADER_BYTES || offset + (Py_ssize_t)length > total)
            break; /* the unused rest, a record being written, or one its writer died in */
        memcpy(&dev, record + 8, 8);
        memcpy(&ino, record + 16, 8);
        memcpy(&size, record + 24, 8);
        memcpy(&mtime, record + 32, 8);
        offset += length;
        const char *names = (const char *)record + HEADER_BYTES;
        const char *end = (const char *)record + length;
        const char *first_end = memchr(names, 0, (size_t)(end - names));
        if (first_end == NULL)
            first_end = end;
        PyObject *key = untracked(Py_BuildValue("(KKLL)", (unsigned long long)dev,
                                                (unsigned long long)ino, (long long)size,
                                                (long long)mtime));
        if (key == NULL)
            goto failed;
        if (operation == COPY) { /* its name is the source's key, as text */
            PyObject *source = source_key(names, first_end);
            int stored = 0;
            if (source != NULL && PyLong_AsLongLong(PyTuple_GET_ITEM(source, 2)) == size)
                stored = PyDict_SetItem(copies, key, source);
            Py_DECREF(key);
            Py_XDECREF(source);
            if (stored < 0)
                goto failed;
            continue;
        }
        PyObject *path = name(names, (size_t)(first_end - names));
        PyObject *second = NULL;
        if (path != NULL && first_end + 1 < end && first_end[1]) {
            const char *start = first_end + 1;
            const char *second_end = memchr(start, 0, (size_t)(end - start));
            if (second_end != NULL)
                second = name(start, (size_t)(second_end - start));
            if (second == NULL && PyErr_Occurred()) {
                Py_CLEAR(path);
            }
        }
        if (path == NULL) {
            Py_DECREF(key);
            goto failed;
        }
        if (second == NULL) {
            Py_INCREF(Py_None);
            second = Py_None;
        }
        PyObject *note = untracked(Py_BuildValue("(iNNN)", (int)operation, key, path, second));
        if (note == NULL || PyList_Append(notes, note) < 0) {
            Py_XDECREF(note);
            goto failed;
        }
        Py_DECREF(note);
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nn)", notes, offset);
failed:
    Py_XDECREF(notes);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"read", read_notes, METH_VARARGS, read_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_preload_notes",
    "Reads the LD_PRELOAD library's record files (_preload_shim.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__preload_notes(void) {
    PyObject *path = PyImport_ImportModule("os.path");
    if (path == NULL)
        return NULL;
    abspath = PyObject_GetAttrString(path, "abspath");
    Py_DECREF(path);
    if (abspath == NULL)
        return NULL;
    return PyModule_Create(&module);
}
