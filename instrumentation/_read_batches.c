/*
 * A flush's per-record work on small file reads, in one C pass each (instrumentation/
 * _record_spans.py falls back to the same work in Python without it):
 *
 *   stamp_candidates: which reads may carry a producer stamp. Nearly no file has one, and
 *     asking the kernel (listxattr) is the cheap part of os.listxattr: its argument parsing,
 *     list of names and the Python loop around it cost more than the system call.
 *   group: records grouped into batched spans (a loop over every record, in Python the most
 *     of a flush after the SDK's checks).
 *   arrays: a batched "read file" span's parallel arrays (URIs, digests, sizes, identities,
 *     counts), the URIs made as clew.semconv.uris.file_uri makes them; uris: the URIs alone,
 *     of a list of paths (a FileBatch's).
 *   cache_lines: the digest cache's new lines, written at each flush (_file_digests.py):
 *     Python's formatting of four ints and a digest cost ~5k instructions a line.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>
#include <sys/xattr.h>

/* "path", "producer", "key", "digest", "identity", "count", "", "operation", "batch_key", "/",
 * "unstamped" */
static PyObject *s_path, *s_producer, *s_key, *s_digest, *s_identity, *s_count, *s_empty,
    *s_operation, *s_batch_key, *s_slash, *s_unstamped;

/* Whether listxattr's list of names (NUL-terminated, `size` bytes) holds `name`. */
static int lists_name(const char *names, ssize_t size, const char *name, size_t length) {
    const char *end = names + size;
    for (const char *at = names; at < end; at += strlen(at) + 1)
        if ((size_t)(end - at) > length && memcmp(at, name, length + 1) == 0)
            return 1;
    return 0;
}

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
        PyObject *unstamped = PyObject_GetAttr(item, s_unstamped);
        if (unstamped == NULL)
            return NULL;
        int checked = PyObject_IsTrue(unstamped);
        Py_DECREF(unstamped);
        if (checked < 0)
            return NULL;
        if (checked) { /* the hook found no stamp on the version it read: not asked again */
            if (PyObject_SetAttr(item, s_producer, Py_None) < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        path = PyObject_GetAttr(item, s_path);
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
static PyObject *stamp_candidates(PyObject *self, PyObject *args) {
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
                  PyObject_SetAttr(item, s_producer, Py_None)) {
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

/* Whether `c` is a character clew.semconv.uris writes unquoted (its _URI_SAFE and
 * alphanumerics). */
static int uri_safe(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("/:@!$&()*+,;=~-._", c) != NULL);
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
        while (i < size && uri_safe(name[i]))
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

/* Append `value` (a new reference, or NULL on error) to `list`; 0, or -1 on error. */
static int append_new(PyObject *list, PyObject *value) {
    if (value == NULL)
        return -1;
    int result = PyList_Append(list, value);
    Py_DECREF(value);
    return result;
}

/* One record's entries in the five arrays: 0, or -1 with an exception set. */
static int add_record(PyObject *arrays[5], PyObject *record, PyObject *prefix, Py_ssize_t cut,
                      PyObject *quote) {
    PyObject *path = PyObject_GetAttr(record, s_path);
    if (path == NULL)
        return -1;
    if (!PyUnicode_Check(path)) {
        Py_DECREF(path);
        PyErr_SetString(PyExc_TypeError, "a record's path must be a str");
        return -1;
    }
    int failed = append_new(arrays[0], uri_of(prefix, path, cut, quote));
    Py_DECREF(path);
    if (failed)
        return -1;

    PyObject *digest = PyObject_GetAttr(record, s_digest);
    if (digest == NULL)
        return -1;
    int truth = PyObject_IsTrue(digest);  /* `record.digest or ""` */
    if (truth < 0 || PyList_Append(arrays[1], truth ? digest : s_empty)) {
        Py_DECREF(digest);
        return -1;
    }
    Py_DECREF(digest);

    PyObject *key = PyObject_GetAttr(record, s_key);
    if (key == NULL)
        return -1;
    PyObject *size = key == Py_None ? PyLong_FromLong(0) : PySequence_GetItem(key, 2);
    Py_DECREF(key);
    if (append_new(arrays[2], size))
        return -1;
    return append_new(arrays[3], PyObject_GetAttr(record, s_identity)) ||
                   append_new(arrays[4], PyObject_GetAttr(record, s_count))
               ? -1
               : 0;
}

static PyObject *arrays(PyObject *self, PyObject *args) {
    PyObject *records, *prefix, *quote;
    Py_ssize_t cut;
    if (!PyArg_ParseTuple(args, "O!nUO", &PyList_Type, &records, &cut, &prefix, &quote))
        return NULL;
    PyObject *lists[5] = {NULL};
    for (int i = 0; i < 5; i++)
        if ((lists[i] = PyList_New(0)) == NULL)
            goto error;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(records); i++)
        if (add_record(lists, PyList_GET_ITEM(records, i), prefix, cut, quote))
            goto error;
    return Py_BuildValue("(NNNNN)", lists[0], lists[1], lists[2], lists[3], lists[4]);
error:
    for (int i = 0; i < 5; i++)
        Py_XDECREF(lists[i]);
    return NULL;
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

/* The batch key of a `Record` (of exactly that class): its directory for a read smaller
 * than `max_size`, else Py_None (a span of its own), as Record.batch_key says; a new
 * reference, or NULL on error. */
static PyObject *file_batch_key(PyObject *record, PyObject *max_size) {
    PyObject *operation = PyObject_GetAttr(record, s_operation);
    if (operation == NULL)
        return NULL;
    int read = PyUnicode_Check(operation) && PyUnicode_CompareWithASCIIString(operation, "read") == 0;
    Py_DECREF(operation);
    if (!read)
        Py_RETURN_NONE;
    PyObject *key = PyObject_GetAttr(record, s_key);
    if (key == NULL)
        return NULL;
    int small = 1;
    if (key != Py_None) {
        PyObject *size = PySequence_GetItem(key, 2);
        small = size == NULL ? -1 : PyObject_RichCompareBool(size, max_size, Py_LT);
        Py_XDECREF(size);
    }
    Py_DECREF(key);
    if (small <= 0)
        return small < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *path = PyObject_GetAttr(record, s_path);
    if (path == NULL)
        return NULL;
    if (!PyUnicode_Check(path)) {
        Py_DECREF(path);
        PyErr_SetString(PyExc_TypeError, "a record's path must be a str");
        return NULL;
    }
    /* path.rpartition("/")[0] or "/" */
    Py_ssize_t slash = PyUnicode_FindChar(path, '/', 0, PyUnicode_GET_LENGTH(path), -1);
    PyObject *directory = slash == -2 ? NULL
                          : slash <= 0 ? Py_NewRef(s_slash)
                                       : PyUnicode_Substring(path, 0, slash);
    Py_DECREF(path);
    return directory;
}

static PyObject *group(PyObject *self, PyObject *args) {
    PyObject *records, *record_type, *max_size;
    if (!PyArg_ParseTuple(args, "O!OO", &PyList_Type, &records, &record_type, &max_size))
        return NULL;
    PyObject *singles = PyList_New(0), *groups = PyDict_New();
    if (singles == NULL || groups == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(records); i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        PyObject *type = (PyObject *)Py_TYPE(record);
        PyObject *key = type == record_type ? file_batch_key(record, max_size)
                                            : PyObject_CallMethodNoArgs(record, s_batch_key);
        if (key == NULL)
            goto error;
        if (key == Py_None) {
            Py_DECREF(key);
            if (PyList_Append(singles, record))
                goto error;
            continue;
        }
        PyObject *both = PyTuple_Pack(2, type, key);
        Py_DECREF(key);
        if (both == NULL)
            goto error;
        PyObject *members = PyDict_GetItemWithError(groups, both);  /* borrowed */
        int failed;
        if (members != NULL) {
            failed = PyList_Append(members, record);
        } else if (PyErr_Occurred()) {
            failed = -1;
        } else {
            members = PyList_New(1);
            failed = members == NULL;
            if (!failed) {
                PyList_SET_ITEM(members, 0, Py_NewRef(record));
                failed = PyDict_SetItem(groups, both, members);
                Py_DECREF(members);
            }
        }
        Py_DECREF(both);
        if (failed)
            goto error;
    }
    return Py_BuildValue("(NN)", singles, groups);
error:
    Py_XDECREF(singles);
    Py_XDECREF(groups);
    return NULL;
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

static PyObject *cache_lines(PyObject *self, PyObject *args) {
    PyObject *entries;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &entries))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(entries), size = 0;
    if (count % 2)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 1; i < count; i += 2) {  /* room for the longest line each could make */
        PyObject *digest = PyList_GET_ITEM(entries, i);
        if (!PyUnicode_Check(digest))
            Py_RETURN_NONE;
        size += 4 * 21 + PyUnicode_GET_LENGTH(digest) + 1;
    }
    char *text = PyMem_Malloc(size ? size : 1);
    if (text == NULL)
        return PyErr_NoMemory();
    char *end = text;
    for (Py_ssize_t i = 0; i < count && end != NULL; i += 2)
        end = write_cache_line(end, PyList_GET_ITEM(entries, i), PyList_GET_ITEM(entries, i + 1));
    PyObject *lines = end == NULL ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize(text, end - text);
    PyMem_Free(text);
    return lines;
}

static PyMethodDef methods[] = {
    {"cache_lines", cache_lines, METH_VARARGS,
     "cache_lines(entries): the digest cache's lines of [(dev, ino, size, mtime), digest, ...] "
     "as bytes, or None where C does not write them as Python does."},
    {"group", group, METH_VARARGS,
     "group(records, record_type, max_size): (the records that get a span of their own, "
     "{(class, batch key): records}), a `record_type`'s key as Record.batch_key gives it."},
    {"stamp_candidates", stamp_candidates, METH_VARARGS,
     "stamp_candidates(records, name): the records (or paths) whose file may have the xattr "
     "`name` (bytes), unless a hook found them unstamped; every other record's producer set "
     "to None."},
    {"arrays", arrays, METH_VARARGS,
     "arrays(records, cut, prefix, quote): (uris, digests, sizes, identities, counts) of a "
     "batch of file reads, each URI `prefix` and the path from `cut` on, quoted by `quote` "
     "where needed."},
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
    struct {
        PyObject **name;
        const char *text;
    } names[] = {
        {&s_path, "path"}, {&s_producer, "producer"}, {&s_key, "key"}, {&s_digest, "digest"},
        {&s_identity, "identity"}, {&s_count, "count"}, {&s_empty, ""},
        {&s_operation, "operation"}, {&s_batch_key, "batch_key"}, {&s_slash, "/"},
        {&s_unstamped, "unstamped"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (*names[i].name == NULL && (*names[i].name = PyUnicode_InternFromString(names[i].text)) == NULL)
            return NULL;
    return PyModule_Create(&module);
}
