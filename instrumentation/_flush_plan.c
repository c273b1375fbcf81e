/*
 * A flush's records sorted into spans in one pass (_record_spans.plan_flush; its Python does
 * the same without this): the file reads (for the producer-stamp check) and the config files
 * among them, the records that get a span of their own, and the batches, grouped by class and
 * batch key, split on a repeated path and at `max_records`; a batch of plain file reads
 * (`Record`) comes with its span's arrays and first and last times. In Python these were
 * nine loops over the records, each a few hundred instructions a record.
 */
#include "_read_batches.h"

#include <stdint.h>
#include <string.h>

static PyObject *s_batch_key, *s_slash; /* "batch_key", "/" */

int flush_plan_init(void) {
    if (s_batch_key == NULL && (s_batch_key = PyUnicode_InternFromString("batch_key")) == NULL)
        return -1;
    if (s_slash == NULL && (s_slash = PyUnicode_InternFromString("/")) == NULL)
        return -1;
    return 0;
}

/* `path` (a str) as a new reference, or NULL with a TypeError for anything else. */
static PyObject *path_of(PyObject *record) {
    PyObject *path = record_slot(record, SLOT_PATH);
    if (path != NULL && (!PyUnicode_Check(path) || PyUnicode_READY(path) < 0)) {
        Py_DECREF(path);
        PyErr_SetString(PyExc_TypeError, "a record's path must be a str");
        return NULL;
    }
    return path;
}

/* str.endswith(suffixes), `suffixes` a tuple of str: 1, 0, or -1 with an exception set. */
static int ends_with(PyObject *path, PyObject *suffixes) {
    Py_ssize_t length = PyUnicode_GET_LENGTH(path);
    Py_UCS4 last = length ? PyUnicode_READ_CHAR(path, length - 1) : 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(suffixes); i++) {
        PyObject *suffix = PyTuple_GET_ITEM(suffixes, i);
        Py_ssize_t size = PyUnicode_Check(suffix) ? PyUnicode_GET_LENGTH(suffix) : 0;
        if (size && (size > length || PyUnicode_READ_CHAR(suffix, size - 1) != last))
            continue;  /* the common answer, without the call */
        Py_ssize_t found = PyUnicode_Tailmatch(path, suffix, 0, PY_SSIZE_T_MAX, 1);
        if (found != 0)
            return (int)found;
    }
    return 0;
}

/* `key[2] < max_size` of a stat key: 1, 0, or -1 with an exception set. */
static int smaller(PyObject *key, long long max_size, PyObject *max_object) {
    if (PyTuple_CheckExact(key) && PyTuple_GET_SIZE(key) > 2 &&
        PyLong_CheckExact(PyTuple_GET_ITEM(key, 2))) {
        int overflow;
        long long size = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(key, 2), &overflow);
        if (!overflow && !(size == -1 && PyErr_Occurred()))
            return size < max_size;
        PyErr_Clear();
    }
    PyObject *size = PySequence_GetItem(key, 2);
    int result = size == NULL ? -1 : PyObject_RichCompareBool(size, max_object, Py_LT);
    Py_XDECREF(size);
    return result;
}

/* Whether `directory` is `path.rpartition("/")[0] or "/"`, `slash` the last "/" of `path`. */
static int holds(PyObject *directory, PyObject *path, Py_ssize_t slash) {
    if (slash <= 0)
        return PyUnicode_GET_LENGTH(directory) == 1 && PyUnicode_READ_CHAR(directory, 0) == '/';
    int kind = PyUnicode_KIND(path);
    return PyUnicode_GET_LENGTH(directory) == slash && PyUnicode_KIND(directory) == kind &&
           memcmp(PyUnicode_DATA(directory), PyUnicode_DATA(path), (size_t)slash * kind) == 0;
}

/* The groups as they are found: dicts from batch key to members (a Record's key is its
 * directory; any other class's is (class, key)), the groups in order as (class, key,
 * members), and the group of the last Record batched (reads come a directory at a time). */
struct groups {
    PyObject *reads, *others, *order;
    PyObject *last_directory, *last_members; /* the second borrowed from `order` */
};

/* The members of the group (`kind`, `key`) in `lookup` (under `found`), made if new: borrowed,
 * or NULL with an exception set. */
static PyObject *group_of(struct groups *groups, PyObject *lookup, PyObject *found,
                          PyObject *kind, PyObject *key) {
    PyObject *members = PyDict_GetItemWithError(lookup, found);
    if (members != NULL || PyErr_Occurred())
        return members;
    members = PyList_New(0);
    PyObject *entry = members == NULL ? NULL : PyTuple_Pack(3, kind, key, members);
    int failed = entry == NULL || PyDict_SetItem(lookup, found, members) ||
                 PyList_Append(groups->order, entry);
    Py_XDECREF(entry);
    Py_XDECREF(members);  /* held by `order` */
    return failed ? NULL : members;
}

/* The group a plain Record read of `path` goes to (borrowed), or NULL with an exception. */
static PyObject *read_group(struct groups *groups, PyObject *path) {
    Py_ssize_t slash = PyUnicode_FindChar(path, '/', 0, PyUnicode_GET_LENGTH(path), -1);
    if (slash == -2)
        return NULL;
    if (groups->last_directory != NULL && holds(groups->last_directory, path, slash))
        return groups->last_members;
    PyObject *directory = slash <= 0 ? Py_NewRef(s_slash) : PyUnicode_Substring(path, 0, slash);
    if (directory == NULL)
        return NULL;
    PyObject *members = group_of(groups, groups->reads, directory, (PyObject *)record_class,
                                 directory);
    if (members == NULL) {
        Py_DECREF(directory);
        return NULL;
    }
    Py_XSETREF(groups->last_directory, directory);
    groups->last_members = members;
    return members;
}

/* One record into `reads`, `configs`, `singles` or a group: 0, or -1 with an exception set. */
static int place(PyObject *record, struct groups *groups, PyObject *lists[3],
                 PyObject *suffixes, long long max_size, PyObject *max_object) {
    PyObject *operation = record_slot(record, SLOT_OPERATION);
    PyObject *key = operation == NULL ? NULL : record_slot(record, SLOT_KEY);
    PyObject *path = NULL, *members = NULL;
    int read = key != NULL && is_read(operation), failed = key == NULL;
    if (read && key != Py_None) {  /* a file read: stamps and configs are looked for */
        int config = PyList_Append(lists[0], record) ? -1
                     : (path = path_of(record)) == NULL ? -1
                                                        : ends_with(path, suffixes);
        failed = config < 0 || (config && PyList_Append(lists[1], record));
    }
    if (!failed && Py_TYPE(record) == record_class) {  /* Record.batch_key in line */
        int batched = !read ? 0 : key == Py_None ? 1 : smaller(key, max_size, max_object);
        if (batched > 0 && path == NULL)
            path = path_of(record);
        failed = batched < 0 || (batched && path == NULL) ||
                 (batched ? (members = read_group(groups, path)) == NULL
                          : PyList_Append(lists[2], record) < 0);
    } else if (!failed) {
        PyObject *batch_key = PyObject_CallMethodNoArgs(record, s_batch_key);
        PyObject *both = batch_key == NULL || batch_key == Py_None
                             ? NULL : PyTuple_Pack(2, (PyObject *)Py_TYPE(record), batch_key);
        failed = batch_key == NULL ||
                 (batch_key == Py_None ? PyList_Append(lists[2], record) < 0
                  : both == NULL ||
                      (members = group_of(groups, groups->others, both,
                                          (PyObject *)Py_TYPE(record), batch_key)) == NULL);
        Py_XDECREF(both);
        Py_XDECREF(batch_key);
    }
    failed = failed || (members != NULL && PyList_Append(members, record) < 0);
    Py_XDECREF(operation);
    Py_XDECREF(key);
    Py_XDECREF(path);
    return failed ? -1 : 0;
}

/* `group` split so that each part holds a path once (a path's first record in the first part,
 * its second in the second...): a new list of parts, or NULL with an exception set. */
static PyObject *by_repeat(PyObject *group) {
    PyObject *seen = PyDict_New(), *parts = PyList_New(0);
    for (Py_ssize_t i = 0; seen != NULL && parts != NULL && i < PyList_GET_SIZE(group); i++) {
        PyObject *record = PyList_GET_ITEM(group, i);
        PyObject *path = record_slot(record, SLOT_PATH);
        PyObject *before = path == NULL ? NULL : PyDict_GetItemWithError(seen, path);
        Py_ssize_t repeat = before == NULL ? 0 : PyLong_AsSsize_t(before);
        PyObject *after = PyErr_Occurred() ? NULL : PyLong_FromSsize_t(repeat + 1);
        PyObject *part = after == NULL || PyDict_SetItem(seen, path, after) ? NULL
                         : repeat < PyList_GET_SIZE(parts) ? Py_NewRef(PyList_GET_ITEM(parts, repeat))
                                                           : PyList_New(0);
        if (part == NULL || (repeat == PyList_GET_SIZE(parts) && PyList_Append(parts, part)) ||
            PyList_Append(part, record))
            Py_CLEAR(parts);
        Py_XDECREF(part);
        Py_XDECREF(after);
        Py_XDECREF(path);
    }
    if (seen == NULL)
        Py_CLEAR(parts);
    Py_XDECREF(seen);
    return parts;
}

/* A hash of a str's text, a word at a time (Python's SipHash of a path cost ~400
 * instructions, most of the repeated-path check). */
static uint64_t text_hash(PyObject *text) {
    const unsigned char *data = PyUnicode_DATA(text);
    size_t size = (size_t)PyUnicode_GET_LENGTH(text) * PyUnicode_KIND(text);
    uint64_t hash = size * 0x9E3779B97F4A7C15ULL, word;
    for (; size >= 8; data += 8, size -= 8) {
        memcpy(&word, data, 8);
        hash = (hash ^ word) * 0xFF51AFD7ED558CCDULL;
        hash ^= hash >> 32;
    }
    word = 0;
    memcpy(&word, data, size);
    hash = (hash ^ word) * 0xC4CEB9FE1A85EC53ULL;
    return hash ^ (hash >> 29);
}

/* Whether two records of `group` have one path: 1, 0, -1 with an exception set, or -2 where
 * this does not tell (a path not a str, many paths of one hash). */
static int repeats(PyObject *group) {
    Py_ssize_t count = PyList_GET_SIZE(group), size = 8, found = 0, i = 0;
    while (size < 2 * count)
        size *= 2;
    Py_ssize_t *table = PyMem_Calloc(size, sizeof *table); /* a path's index + 1; 0: none */
    PyObject **paths = PyMem_Calloc(count ? count : 1, sizeof *paths);
    uint64_t *hashes = PyMem_Malloc((count ? count : 1) * sizeof *hashes);
    if (table == NULL || paths == NULL || hashes == NULL) {
        PyErr_NoMemory();
        found = -1;
    }
    for (; found == 0 && i < count; i++) {
        PyObject *path = paths[i] = record_slot(PyList_GET_ITEM(group, i), SLOT_PATH);
        if (path == NULL) {
            found = -1;
            break;
        }
        if (!PyUnicode_Check(path) || PyUnicode_READY(path) < 0) {
            PyErr_Clear();
            found = -2;
            break;
        }
        Py_ssize_t at = (Py_ssize_t)((hashes[i] = text_hash(path)) & (uint64_t)(size - 1)), probes = 0;
        for (; found == 0 && table[at]; at = (at + 1) & (size - 1)) {
            PyObject *other = paths[table[at] - 1];
            if (hashes[table[at] - 1] == hashes[i] && PyUnicode_KIND(other) == PyUnicode_KIND(path) &&
                PyUnicode_GET_LENGTH(other) == PyUnicode_GET_LENGTH(path) &&
                memcmp(PyUnicode_DATA(other), PyUnicode_DATA(path),
                       (size_t)PyUnicode_GET_LENGTH(path) * PyUnicode_KIND(path)) == 0)
                found = 1;
            else if (++probes > 64)
                found = -2;
        }
        table[at] = i + 1;
    }
    for (Py_ssize_t j = 0; paths != NULL && j < count; j++)
        Py_XDECREF(paths[j]);
    PyMem_Free(table);
    PyMem_Free(paths);
    PyMem_Free(hashes);
    return (int)found;
}

/* [group] if no path is in it twice, else by_repeat(group): a new list, NULL on error. */
static PyObject *parts_of(PyObject *group) {
    int found = repeats(group);
    return found < -1 || found == 1 ? by_repeat(group)
           : found == 0            ? Py_BuildValue("[O]", group)
                                   : NULL;
}

/* The first least or greatest of a batch's times so far, as min() and max() keep it; its
 * value as a C number where it has one (`exact`), so each time is converted once. */
struct extreme {
    PyObject *value;
    long long number;
    int exact;
};

/* `value` (a new reference, taken) kept in `kept` if below it (`op` Py_LT) or above it
 * (Py_GT): 0, or -1 with an exception set. */
static int keep(struct extreme *kept, PyObject *value, int op) {
    if (value == NULL)
        return -1;
    int overflow = 1;
    long long number = PyLong_CheckExact(value) ? PyLong_AsLongLongAndOverflow(value, &overflow) : 0;
    int better = kept->value == NULL ? 1
                 : !overflow && kept->exact ? (op == Py_LT ? number < kept->number
                                                           : number > kept->number)
                                            : PyObject_RichCompareBool(value, kept->value, op);
    if (better > 0) {
        Py_XSETREF(kept->value, value);
        kept->number = number;
        kept->exact = !overflow;
    } else {
        Py_DECREF(value);
    }
    return better < 0 ? -1 : 0;
}

/* The batch (records, directory, uris, digests, sizes, identities, counts, first_ns,
 * last_ns) of plain reads `records` in `directory`; `*linked` set if one has a producer
 * already. A new tuple, or NULL with an exception set. */
static PyObject *read_batch(PyObject *records, PyObject *directory, PyObject *prefix,
                            Py_ssize_t cut, PyObject *quote, int *linked) {
    PyObject *arrays[5] = {NULL};
    struct extreme first = {NULL, 0, 0}, last = {NULL, 0, 0};
    int failed = new_arrays(arrays, PyList_GET_SIZE(records)) < 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(records) && !failed; i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        PyObject *producer = record_slot(record, SLOT_PRODUCER);
        failed = producer == NULL || set_record(arrays, i, record, prefix, cut, quote) ||
                 keep(&first, record_slot(record, SLOT_FIRST_NS), Py_LT) ||
                 keep(&last, record_slot(record, SLOT_LAST_NS), Py_GT);
        *linked |= producer != NULL && producer != Py_None;
        Py_XDECREF(producer);
    }
    PyObject *batch = failed ? NULL
                             : PyTuple_Pack(9, records, directory, arrays[0], arrays[1], arrays[2],
                                            arrays[3], arrays[4], first.value, last.value);
    for (int i = 0; i < 5; i++)
        Py_XDECREF(arrays[i]);
    Py_XDECREF(first.value);
    Py_XDECREF(last.value);
    return batch;
}

/* A group's batches appended to `batches`: its parts, each cut at `max_records`, those of
 * plain reads as read_batch makes them. 0, or -1 with an exception set. */
static int add_batches(PyObject *batches, PyObject *entry, Py_ssize_t max_records,
                       PyObject *prefix_of, PyObject *quote, int *linked) {
    PyObject *kind = PyTuple_GET_ITEM(entry, 0), *key = PyTuple_GET_ITEM(entry, 1);
    PyObject *prefix = NULL, *parts = parts_of(PyTuple_GET_ITEM(entry, 2));
    Py_ssize_t cut = 0;
    int reads = kind == (PyObject *)record_class, failed = parts == NULL;
    if (!failed && reads) {  /* len(directory.rstrip("/")) + 1: records of "/x" are in "/" */
        cut = PyUnicode_GET_LENGTH(key);
        while (cut > 0 && PyUnicode_READ_CHAR(key, cut - 1) == '/')
            cut--;
        cut++;
        prefix = PyObject_CallOneArg(prefix_of, key);
        failed = prefix == NULL || !PyUnicode_Check(prefix);
        if (prefix != NULL && failed)
            PyErr_SetString(PyExc_TypeError, "a URI prefix must be a str");
    }
    for (Py_ssize_t i = 0; !failed && i < PyList_GET_SIZE(parts); i++) {
        PyObject *part = PyList_GET_ITEM(parts, i);
        for (Py_ssize_t start = 0; !failed && start < PyList_GET_SIZE(part); start += max_records) {
            PyObject *records = PyList_GetSlice(part, start, start + max_records);
            PyObject *batch = records == NULL || !reads
                                  ? Py_XNewRef(records)
                                  : read_batch(records, key, prefix, cut, quote, linked);
            failed = batch == NULL || PyList_Append(batches, batch) < 0;
            Py_XDECREF(batch);
            Py_XDECREF(records);
        }
    }
    Py_XDECREF(prefix);
    Py_XDECREF(parts);
    return failed ? -1 : 0;
}

PyObject *plan(PyObject *self, PyObject *args) {
    PyObject *records, *max_object, *suffixes, *prefix_of, *quote;
    Py_ssize_t max_records;
    if (!PyArg_ParseTuple(args, "O!O!nO!OO", &PyList_Type, &records, &PyLong_Type, &max_object,
                          &max_records, &PyTuple_Type, &suffixes, &prefix_of, &quote))
        return NULL;
    if (record_class == NULL || max_records < 1) {
        PyErr_SetString(PyExc_ValueError, "plan: not configured, or no room in a batch");
        return NULL;
    }
    long long max_size = PyLong_AsLongLong(max_object);
    if (max_size == -1 && PyErr_Occurred())
        return NULL;
    PyObject *lists[4] = {PyList_New(0), PyList_New(0), PyList_New(0), PyList_New(0)};
    struct groups groups = {PyDict_New(), PyDict_New(), PyList_New(0), NULL, NULL};
    int failed = !lists[0] || !lists[1] || !lists[2] || !lists[3] || !groups.reads ||
                 !groups.others || !groups.order, linked = 0;
    for (Py_ssize_t i = 0; !failed && i < PyList_GET_SIZE(records); i++)
        failed = place(PyList_GET_ITEM(records, i), &groups, lists, suffixes, max_size,
                       max_object) < 0;
    for (Py_ssize_t i = 0; !failed && i < PyList_GET_SIZE(groups.order); i++)
        failed = add_batches(lists[3], PyList_GET_ITEM(groups.order, i), max_records, prefix_of,
                             quote, &linked) < 0;
    PyObject *result = failed ? NULL
                              : Py_BuildValue("(OOOOO)", lists[0], lists[1], lists[2], lists[3],
                                              linked ? Py_True : Py_False);
    for (int i = 0; i < 4; i++)
        Py_XDECREF(lists[i]);
    Py_XDECREF(groups.reads);
    Py_XDECREF(groups.others);
    Py_XDECREF(groups.order);
    Py_XDECREF(groups.last_directory);
    return result;
}
