/*
 * Sorts a child's notes, as _preload_notes.read returns them, into the batches of
 * instrumentation/_preload.py's _Image: a read of a small file into its directory's batch
 * (parallel lists, `ChildBatch`), a write into the count of writes by path; any other note
 * (a rename, a delete, a large read, another version of a file read) goes to the image's own
 * `note`, in its turn, so that the order of the notes holds (a delete after a write).
 *
 * In C for `cp -r` of 10,000 files: 20,000 notes, and the Python loop (the filter, a call, a
 * directory split, look-ups and appends, per note) cost as much as reading the notes.
 * ProcessImage.notes does the same in Python where the extension was not built.
 *
 * batch_writes does the same for the files written, once their keys are known (the child has
 * ended): each into its directory's batch with its count and the version it is a whole copy
 * of, a large one left out (its index returned: a record of its own).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "_preload_sort.h"

#define READ 'R'
#define WRITE 'W'

/* The lists of the batch being added to: notes of one directory mostly come in a row. `copies`
 * for a batch of writes only. */
struct batch {
    PyObject *directory, *at, *paths, *keys, *digests, *counts, *copies;
};

static void batch_clear(struct batch *b) {
    Py_CLEAR(b->directory);
    Py_CLEAR(b->at);
    Py_CLEAR(b->paths);
    Py_CLEAR(b->keys);
    Py_CLEAR(b->digests);
    Py_CLEAR(b->counts);
    Py_CLEAR(b->copies);
}

/* Make `b` the batch of `directory` (a new reference, taken): from `batches`, or made by
 * `new_batch(directory)`, which adds it there. 0, or -1 with an exception set. */
static int batch_of(struct batch *b, PyObject *directory, PyObject *batches, PyObject *new_batch,
                    int writes) {
    batch_clear(b);
    b->directory = directory;
    PyObject *batch = PyDict_GetItemWithError(batches, directory);
    if (batch != NULL)
        Py_INCREF(batch);
    else if (PyErr_Occurred() || (batch = PyObject_CallOneArg(new_batch, directory)) == NULL)
        return -1;
    b->at = PyObject_GetAttrString(batch, "at");
    b->paths = PyObject_GetAttrString(batch, "paths");
    b->keys = PyObject_GetAttrString(batch, "keys");
    b->digests = PyObject_GetAttrString(batch, "digests");
    b->counts = PyObject_GetAttrString(batch, "counts");
    b->copies = writes ? PyObject_GetAttrString(batch, "copies") : NULL;
    Py_DECREF(batch);
    if (b->at == NULL || b->paths == NULL || b->keys == NULL || b->digests == NULL ||
        b->counts == NULL || (writes && b->copies == NULL))
        return -1;
    if (!PyDict_Check(b->at) || !PyList_Check(b->paths) || !PyList_Check(b->keys) ||
        !PyList_Check(b->digests) || !PyList_Check(b->counts) ||
        (writes && !PyList_Check(b->copies))) {
        PyErr_SetString(PyExc_TypeError, "a batch's at must be a dict, its files lists");
        return -1;
    }
    return 0;
}

/* Make `b` the batch of the directory of `path` (absolute), unless it is already: 0, or -1
 * with an exception set. */
static int batch_of_path(struct batch *b, PyObject *path, PyObject *batches, PyObject *new_batch,
                         int writes) {
    Py_ssize_t slash = PyUnicode_FindChar(path, '/', 0, PyUnicode_GET_LENGTH(path), -1);
    if (slash < 0) {
        if (slash == -1)
            PyErr_SetString(PyExc_ValueError, "a note's path must be absolute");
        return -1;
    }
    PyObject *directory = slash == 0 ? PyUnicode_FromString("/") : PyUnicode_Substring(path, 0, slash);
    if (directory == NULL)
        return -1;
    if (b->directory != NULL && PyUnicode_Compare(directory, b->directory) == 0) {
        Py_DECREF(directory);
        return 0;
    }
    return batch_of(b, directory, batches, new_batch, writes);
}

/* A read of `path` (version `key`) into its directory's batch: 1 when added or counted, 0
 * when it is for `note` (another version of a file in the batch), -1 on error. */
static int add_read(struct batch *b, PyObject *path, PyObject *key, PyObject *batches,
                    PyObject *new_batch) {
    if (batch_of_path(b, path, batches, new_batch, 0))
        return -1;

    PyObject *index = PyDict_GetItemWithError(b->at, path);
    if (index == NULL) {
        if (PyErr_Occurred())
            return -1;
        PyObject *at = PyLong_FromSsize_t(PyList_GET_SIZE(b->paths));
        int failed = at == NULL || PyDict_SetItem(b->at, path, at) ||
                     PyList_Append(b->paths, path) || PyList_Append(b->keys, key) ||
                     PyList_Append(b->digests, Py_None);
        Py_XDECREF(at);
        if (failed)
            return -1;
        PyObject *one = PyLong_FromLong(1);
        failed = one == NULL || PyList_Append(b->counts, one);
        Py_XDECREF(one);
        return failed ? -1 : 1;
    }
    Py_ssize_t i = PyLong_AsSsize_t(index);
    if (i < 0 || i >= PyList_GET_SIZE(b->keys) || i >= PyList_GET_SIZE(b->counts))
        return PyErr_Occurred() ? -1 : 0;
    int same = PyObject_RichCompareBool(PyList_GET_ITEM(b->keys, i), key, Py_EQ);
    if (same <= 0)
        return same;
    PyObject *one = PyLong_FromLong(1);
    if (one == NULL)
        return -1;
    PyObject *count = PyNumber_Add(PyList_GET_ITEM(b->counts, i), one);
    Py_DECREF(one);
    if (count == NULL)
        return -1;
    return PyList_SetItem(b->counts, i, count) ? -1 : 1;  /* steals count */
}

/* writes[path] += 1 (from 0): 0, or -1 on error. */
static int add_write(PyObject *writes, PyObject *path) {
    PyObject *count = PyDict_GetItemWithError(writes, path);
    if (count == NULL && PyErr_Occurred())
        return -1;
    PyObject *one = PyLong_FromLong(1);
    if (one == NULL)
        return -1;
    PyObject *next = count == NULL ? Py_NewRef(one) : PyNumber_Add(count, one);
    Py_DECREF(one);
    if (next == NULL)
        return -1;
    int failed = PyDict_SetItem(writes, path, next);
    Py_DECREF(next);
    return failed;
}

static PyObject *pycache; /* "/__pycache__/" */

/* Whether `path` starts with `prefix`, as str.startswith: compared as bytes when both are
 * strings of one byte a character (nearly every path), else by PyUnicode_Tailmatch, which
 * cost ~90 instructions a call, 33 M for the 20,000 notes of `cp -r` of 10,000 files under
 * 19 excluded prefixes. 1, 0, or -1 on error. */
static int starts_with(PyObject *path, PyObject *prefix, Py_ssize_t length) {
    if (PyUnicode_Check(prefix) && PyUnicode_IS_READY(path) && PyUnicode_IS_READY(prefix) &&
        PyUnicode_KIND(path) == PyUnicode_1BYTE_KIND &&
        PyUnicode_KIND(prefix) == PyUnicode_1BYTE_KIND) {
        Py_ssize_t size = PyUnicode_GET_LENGTH(prefix);
        return size <= length &&
               memcmp(PyUnicode_1BYTE_DATA(path), PyUnicode_1BYTE_DATA(prefix), (size_t)size) == 0;
    }
    Py_ssize_t under = PyUnicode_Tailmatch(path, prefix, 0, length, -1);
    return under < 0 ? -1 : under != 0;
}

/* Whether `path` is recorded: under none of the `excluded` prefixes and no __pycache__, as
 * PathFilter.wants decides when no glob is set (`excluded` a tuple), else `wanted(path)`.
 * 1, 0, or -1 on error. */
static int wants(PyObject *excluded, PyObject *wanted, PyObject *path) {
    if (excluded != Py_None && PyUnicode_Check(path)) {
        Py_ssize_t length = PyUnicode_GET_LENGTH(path);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(excluded); i++) {
            int under = starts_with(path, PyTuple_GET_ITEM(excluded, i), length);
            if (under != 0)
                return under < 0 ? -1 : 0;
        }
        if (pycache == NULL && (pycache = PyUnicode_InternFromString("/__pycache__/")) == NULL)
            return -1;
        Py_ssize_t at = PyUnicode_Find(path, pycache, 0, length, 1);
        return at == -2 ? -1 : at < 0;
    }
    PyObject *answer = PyObject_CallOneArg(wanted, path);
    if (answer == NULL)
        return -1;
    int truth = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return truth;
}

PyObject *sort_notes(PyObject *self, PyObject *args) {
    PyObject *operations, *keys, *paths, *seconds, *excluded, *wanted, *batches, *new_batch,
        *writes, *note;
    long long max_size;
    if (!PyArg_ParseTuple(args, "SO!O!O!OOLO!OO!O", &operations, &PyList_Type, &keys,
                          &PyList_Type, &paths, &PyList_Type, &seconds, &excluded, &wanted,
                          &max_size, &PyDict_Type, &batches, &new_batch, &PyDict_Type, &writes,
                          &note))
        return NULL;
    if (excluded != Py_None && !PyTuple_Check(excluded)) {
        PyErr_SetString(PyExc_TypeError, "excluded must be a tuple of str, or None");
        return NULL;
    }
    Py_ssize_t count = PyBytes_GET_SIZE(operations);
    if (PyList_GET_SIZE(keys) != count || PyList_GET_SIZE(paths) != count ||
        PyList_GET_SIZE(seconds) != count) {
        PyErr_SetString(PyExc_ValueError, "the notes' sequences must be of one length");
        return NULL;
    }
    const unsigned char *operation = (const unsigned char *)PyBytes_AS_STRING(operations);
    struct batch b = {NULL};
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *path = PyList_GET_ITEM(paths, i), *key = PyList_GET_ITEM(keys, i);
        if (!PyUnicode_Check(path)) {
            PyErr_SetString(PyExc_TypeError, "a note's path must be a str");
            goto error;
        }
        int wanted_path = wants(excluded, wanted, path);
        if (wanted_path < 0)
            goto error;
        if (!wanted_path)
            continue;
        if (operation[i] == WRITE) {
            if (add_write(writes, path))
                goto error;
            continue;
        }
        if (operation[i] == READ && PyTuple_Check(key) && PyTuple_GET_SIZE(key) == 4) {
            long long size = PyLong_AsLongLong(PyTuple_GET_ITEM(key, 2));
            if (size == -1 && PyErr_Occurred())
                goto error;
            if (size < max_size) {
                int added = add_read(&b, path, key, batches, new_batch);
                if (added < 0)
                    goto error;
                if (added)
                    continue;
            }
        }
        PyObject *second = PyList_GET_ITEM(seconds, i);
        if (second != Py_None) {
            int wanted_second = wants(excluded, wanted, second);
            if (wanted_second < 0)
                goto error;
            if (!wanted_second)
                second = Py_None;
        }
        PyObject *result = PyObject_CallFunction(note, "iOOO", (int)operation[i], key, path, second);
        if (result == NULL)
            goto error;
        Py_DECREF(result);
    }
    batch_clear(&b);
    Py_RETURN_NONE;
error:
    batch_clear(&b);
    return NULL;
}

PyObject *batch_writes(PyObject *self, PyObject *args) {
    PyObject *paths, *keys, *counts, *copies, *batches, *new_batch;
    long long max_size;
    if (!PyArg_ParseTuple(args, "O!O!O!O!LO!O", &PyList_Type, &paths, &PyList_Type, &keys,
                          &PyDict_Type, &counts, &PyDict_Type, &copies, &max_size, &PyDict_Type,
                          &batches, &new_batch))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(paths);
    if (PyList_GET_SIZE(keys) != count) {
        PyErr_SetString(PyExc_ValueError, "paths and keys must be of one length");
        return NULL;
    }
    PyObject *large = PyList_New(0);
    if (large == NULL)
        return NULL;
    struct batch b = {NULL};
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *path = PyList_GET_ITEM(paths, i), *key = PyList_GET_ITEM(keys, i);
        if (!PyUnicode_Check(path)) {
            PyErr_SetString(PyExc_TypeError, "a path must be a str");
            goto error;
        }
        if (key != Py_None) {
            if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 4) {
                PyErr_SetString(PyExc_TypeError, "a key must be a 4-tuple or None");
                goto error;
            }
            long long size = PyLong_AsLongLong(PyTuple_GET_ITEM(key, 2));
            if (size == -1 && PyErr_Occurred())
                goto error;
            if (size >= max_size) {
                PyObject *index = PyLong_FromSsize_t(i);
                int failed = index == NULL || PyList_Append(large, index);
                Py_XDECREF(index);
                if (failed)
                    goto error;
                continue;
            }
        }
        PyObject *written = PyDict_GetItemWithError(counts, path);
        if (written == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, path);
            goto error;
        }
        /* The version it is a whole copy of, while it is the very version the copy left. */
        PyObject *source = key == Py_None ? NULL : PyDict_GetItemWithError(copies, key);
        if (source == NULL && PyErr_Occurred())
            goto error;
        if (batch_of_path(&b, path, batches, new_batch, 1) || PyList_Append(b.paths, path) ||
            PyList_Append(b.keys, key) || PyList_Append(b.digests, Py_None) ||
            PyList_Append(b.counts, written) ||
            PyList_Append(b.copies, source != NULL ? source : Py_None))
            goto error;
    }
    batch_clear(&b);
    return large;
error:
    batch_clear(&b);
    Py_DECREF(large);
    return NULL;
}
