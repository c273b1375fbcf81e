/*
 * The flush's producer-stamp check (_record_spans.find_stamps): which reads may carry a
 * producer stamp. Nearly no file has one, and asking the kernel (listxattr) is the cheap
 * part of os.listxattr: its argument parsing, list of names and the Python loop around it
 * cost more than the system call.
 */
#include "_read_batches.h"
#include "_xattr_names.h"

#include <errno.h>
#include <string.h>
#include <sys/xattr.h>

/* 1 if the file at `path` may have the xattr `name` (listed, or the list did not fit: the
 * caller reads it in full), 0 if it has not or cannot say (no file, no xattrs on this system:
 * as clew.instrumentation._stamps.read_file, which finds no stamp there). Called without the
 * GIL. */
static int may_have(const char *path, const char *name, size_t length) {
    char names[4096];
    ssize_t size = listxattr(path, names, sizeof names);
    if (size < 0)
        return errno == ERANGE;
    return lists_name(names, size, name, length);
}

/* `record.producer = None`, unless it is None already (a record's from the hook is): 0, or
 * -1 with an exception set. */
static int clear_producer(PyObject *record) {
    PyObject *producer = record_slot(record, SLOT_PRODUCER);
    Py_XDECREF(producer);
    if (producer == Py_None)
        return 0;
    PyErr_Clear();  /* not set yet */
    return PyObject_SetAttr(record, slot_names[SLOT_PRODUCER], Py_None);
}

/* The path to ask about for `item` (a record, or a path itself), as a new reference to a str
 * or bytes whose data is the file name; Py_None: not to ask (a read the hook found
 * unstamped: its producer set to None here), NULL on error. `*candidate` 1 where C cannot
 * check (a name with a NUL, not a str): Python decides. */
static PyObject *path_to_ask(PyObject *item, int *candidate) {
    PyObject *path;
    *candidate = 0;
    if (PyUnicode_Check(item)) {  /* a path itself (the files of a FileBatch) */
        path = Py_NewRef(item);
    } else {
        PyObject *unstamped = record_slot(item, SLOT_UNSTAMPED);
        if (unstamped == NULL)
            return NULL;
        int checked = PyObject_IsTrue(unstamped);
        Py_DECREF(unstamped);
        if (checked < 0)
            return NULL;
        if (checked) { /* the hook found no stamp on the version it read: not asked again */
            if (clear_producer(item) < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        path = record_slot(item, SLOT_PATH);
        if (path == NULL)
            return NULL;
    }
    if (!PyUnicode_Check(path) || PyUnicode_READY(path) < 0) {
        PyErr_Clear();
        *candidate = 1;
        return path;
    }
    /* ASCII is its own file-system encoding: its data (NUL-terminated) is the name. */
    PyObject *encoded = PyUnicode_IS_ASCII(path) ? Py_NewRef(path) : PyUnicode_EncodeFSDefault(path);
    if (encoded == NULL)
        PyErr_Clear();  /* os.listxattr raises on it too: Python decides */
    const char *bytes = encoded == NULL ? NULL
                        : PyBytes_Check(encoded) ? PyBytes_AS_STRING(encoded)
                                                 : (const char *)PyUnicode_1BYTE_DATA(encoded);
    Py_ssize_t size = encoded == NULL ? 0
                      : PyBytes_Check(encoded) ? PyBytes_GET_SIZE(encoded)
                                               : PyUnicode_GET_LENGTH(encoded);
    if (bytes == NULL || strlen(bytes) != (size_t)size) {
        Py_XDECREF(encoded);
        *candidate = 1;
        return path;
    }
    Py_DECREF(path);
    return encoded;
}

/* The records (or paths) that may carry the stamp. Three passes: the names gathered, then
 * every listxattr with the GIL released once (per call, its hand-off cost more than the call),
 * then the answers. */
PyObject *stamp_candidates(PyObject *self, PyObject *args) {
    PyObject *records;
    const char *name;
    Py_ssize_t length;
    if (!PyArg_ParseTuple(args, "O!y#", &PyList_Type, &records, &name, &length))
        return NULL;
    PyObject *items = PySequence_List(records);  /* its own: the caller's may change meanwhile */
    if (items == NULL)
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(items);
    PyObject **asked = PyMem_Calloc(count ? count : 1, sizeof *asked);
    const char **names = PyMem_Calloc(count ? count : 1, sizeof *names);
    signed char *answers = PyMem_Malloc(count ? count : 1);
    PyObject *candidates = NULL;
    if (asked == NULL || names == NULL || answers == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        int candidate;
        asked[i] = path_to_ask(PyList_GET_ITEM(items, i), &candidate);
        if (asked[i] == NULL)
            goto done;
        answers[i] = asked[i] == Py_None ? -1 : candidate;
        if (asked[i] != Py_None && !candidate)
            names[i] = PyBytes_Check(asked[i]) ? PyBytes_AS_STRING(asked[i])
                                               : (const char *)PyUnicode_1BYTE_DATA(asked[i]);
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++)
        if (names[i] != NULL)
            answers[i] = (signed char)may_have(names[i], name, (size_t)length);
    Py_END_ALLOW_THREADS
    candidates = PyList_New(0);
    if (candidates == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (answers[i] == 1 ? PyList_Append(candidates, item)
            : answers[i] == 0 && !PyUnicode_Check(item) &&
                  clear_producer(item)) {
            Py_CLEAR(candidates);
            goto done;
        }
    }
done:
    if (asked != NULL)
        for (Py_ssize_t i = 0; i < count; i++)
            Py_XDECREF(asked[i]);
    PyMem_Free(asked);
    PyMem_Free(names);
    PyMem_Free(answers);
    Py_DECREF(items);
    return candidates;
}
