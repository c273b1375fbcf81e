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
 *
 * A repeated open of a version recorded moves its record's count and last time the same way
 * (open_hook_record_repeated): the generic attribute look-up and stores, and the call of the
 * recorder's clock, were ~1.2k instructions of each re-open.
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
static PyObject *system_time_ns;   /* time.time_ns: a recorder's clock read here when it is this */
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
    if (system_time_ns == NULL) {
        PyObject *time = PyImport_ImportModule("time");
        if (time == NULL)
            return -1;
        system_time_ns = PyObject_GetAttrString(time, "time_ns");
        Py_DECREF(time);
        if (system_time_ns == NULL)
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

/* time.time_ns() without the call: the clock it reads, as an int (a new reference). */
static PyObject *now_ns(void) {
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLongLong((long long)now.tv_sec * 1000000000LL + now.tv_nsec);
}

static PyObject **slot(PyObject *record, int index) {
    return (PyObject **)((char *)record + offsets[index]);
}

PyObject *open_hook_new_read(PyObject *path, PyObject *key, PyObject *digest, int unstamped) {
    if (offsets[OPERATION] == 0)
        return called(path, key, digest, unstamped);
    PyObject *ns = now_ns();
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
        *slot(record, i) = values[i];
    }
    Py_DECREF(ns);
    return record;
}

int open_hook_record_repeated(PyObject *record, PyObject *clock) {
    if (offsets[COUNT] == 0 || clock != system_time_ns || !Py_IS_TYPE(record, record_type))
        return 0;
    PyObject **count = slot(record, COUNT);
    if (*count == NULL || !PyLong_CheckExact(*count))
        return 0; /* deleted, or not an int: the generic path raises or adds as Python would */
    PyObject *more = PyNumber_Add(*count, open_hook_one);
    if (more == NULL)
        return -1;
    PyObject *now = now_ns();
    if (now == NULL) {
        Py_DECREF(more);
        return -1;
    }
    Py_SETREF(*count, more);
    Py_XSETREF(*slot(record, LAST_NS), now);
    return 1;
}
