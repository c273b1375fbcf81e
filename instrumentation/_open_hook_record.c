/*
 * The `Record` of a first read, made for clew's C audit hook (_open_hook_read.c).
 *
 * Calling the class ran `Record.__init__` in Python, a `time.time_ns()` and eleven attribute
 * stores, then three more stores from C: about a fifth of the hook's instructions on a file
 * whose digest the cache knew (benchmarks/first_open.py, warm). Here the object is allocated
 * by its type and its slots written where the class's member descriptors say they are, with
 * the values `Record.__init__` gives them (the clock is the one `time.time_ns` reads). Only
 * when the class's `__slots__` are exactly the ones written here, each a plain object slot;
 * otherwise (a changed class) the class is called as before, so a record is never left with
 * a slot unset.
 */
#include "_open_hook.h"

#include <structmember.h>
#include <time.h>

/* Record.__slots__, in the order the values are given below. */
static const char *const slot_names[] = {
    "operation", "path", "key", "count", "first_ns", "last_ns", "digest", "identity", "source",
    "producer", "unstamped",
};
enum { OPERATION, PATH, KEY, COUNT, FIRST_NS, LAST_NS, DIGEST, IDENTITY, SOURCE, PRODUCER,
       UNSTAMPED, SLOTS };

static PyTypeObject *record_type;  /* _record_spans.Record */
static Py_ssize_t offsets[SLOTS];  /* where each slot is in a record; 0: call the class */
static PyObject *s_read, *s_stat, *s_content, *s_digest, *s_identity, *s_unstamped;

/* Each slot's offset from the class's member descriptor; 0 if the class is not as above. */
static int find_offsets(PyTypeObject *type) {
    PyObject *slots = PyDict_GetItemString(type->tp_dict, "__slots__");
    if (slots == NULL || !PyTuple_Check(slots) || PyTuple_GET_SIZE(slots) != SLOTS ||
        type->tp_base != &PyBaseObject_Type)
        return 0;
    Py_ssize_t found[SLOTS];
    for (int i = 0; i < SLOTS; i++) {
        PyObject *descriptor = PyDict_GetItemString(type->tp_dict, slot_names[i]);
        if (descriptor == NULL || !Py_IS_TYPE(descriptor, &PyMemberDescr_Type))
            return 0;
        PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY))
            return 0;
        found[i] = member->offset;
    }
    memcpy(offsets, found, sizeof offsets);
    return 1;
}

int open_hook_record_configure(PyObject *record) {
    const struct hook_name names[] = {
        {&s_read, "read"}, {&s_stat, "stat"}, {&s_content, "content"}, {&s_digest, "digest"},
        {&s_identity, "identity"}, {&s_unstamped, "unstamped"},
    };
    if (intern_names(names, sizeof(names) / sizeof(names[0])) < 0)
        return -1;
    if (!PyType_Check(record)) {
        PyErr_SetString(PyExc_TypeError, "the record class is not a class");
        return -1;
    }
    Py_INCREF(record);
    Py_XSETREF(record_type, (PyTypeObject *)record);
    if (!find_offsets(record_type))
        memset(offsets, 0, sizeof offsets);
    return 0;
}

/* The record by calling the class, then its digest and stamp set as attributes. */
static PyObject *called(PyObject *path, PyObject *key, PyObject *digest, int unstamped) {
    PyObject *arguments[] = {NULL, s_read, path, key};
    PyObject *record = PyObject_Vectorcall((PyObject *)record_type, arguments + 1,
                                           3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (record == NULL)
        return NULL;
    if ((digest != Py_None && (PyObject_SetAttr(record, s_digest, digest) < 0 ||
                               PyObject_SetAttr(record, s_identity, s_content) < 0)) ||
        (unstamped && PyObject_SetAttr(record, s_unstamped, Py_True) < 0)) {
        Py_DECREF(record);
        return NULL;
    }
    return record;
}

PyObject *open_hook_new_read(PyObject *path, PyObject *key, PyObject *digest, int unstamped) {
    if (offsets[OPERATION] == 0)
        return called(path, key, digest, unstamped);
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    PyObject *ns = PyLong_FromLongLong((long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    if (ns == NULL)
        return NULL;
    PyObject *record = record_type->tp_alloc(record_type, 0);
    if (record == NULL) {
        Py_DECREF(ns);
        return NULL;
    }
    PyObject *values[SLOTS] = {
        [OPERATION] = s_read, [PATH] = path, [KEY] = key, [COUNT] = open_hook_one, [FIRST_NS] = ns,
        [LAST_NS] = ns, [DIGEST] = digest, [IDENTITY] = digest != Py_None ? s_content : s_stat,
        [SOURCE] = Py_None, [PRODUCER] = Py_None, [UNSTAMPED] = unstamped ? Py_True : Py_False,
    };
    for (int i = 0; i < SLOTS; i++) {
        Py_INCREF(values[i]);
        *(PyObject **)((char *)record + offsets[i]) = values[i];
    }
    Py_DECREF(ns);
    return record;
}
