/*
 * A column of Map(LowCardinality(String), String) in ClickHouse's Native format, in C
 * (exporter/store/native.py writes the same bytes in Python without it, and whenever this
 * declines).
 *
 * A span's attribute maps are most of what the ingest's Native block costs to write: in
 * Python the maps are flattened by clickhouse-connect's C helper, then the keys' dictionary
 * and positions are built with dict.fromkeys and map, and the keys and values written one
 * str at a time. Here one pass writes the offsets, the dictionary (the keys in the order
 * first seen), the positions and the values, byte for byte as native.py writes them.
 *
 * Declines (returns False, writes nothing) when a map is no dict, a key or value no str or
 * not encodable as UTF-8 (a lone surrogate), or the column holds no key at all.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    char *at;
    Py_ssize_t size, capacity;
} Buffer;

static int reserve(Buffer *buffer, Py_ssize_t more) {
    if (buffer->size + more <= buffer->capacity)
        return 0;
    Py_ssize_t capacity = (buffer->size + more) * 2;
    char *at = PyMem_Realloc(buffer->at, capacity);
    if (at == NULL)
        return -1;
    buffer->at = at;
    buffer->capacity = capacity;
    return 0;
}

/* `value` in `width` bytes, little-endian, as ClickHouse reads integers. */
static int put_int(Buffer *buffer, uint64_t value, int width) {
    if (reserve(buffer, width) < 0)
        return -1;
    for (int i = 0; i < width; i++)
        buffer->at[buffer->size++] = (char)(value >> (8 * i));
    return 0;
}

/* A String value: its UTF-8 length in LEB128, then its bytes. */
static int put_string(Buffer *buffer, PyObject *text) {
    Py_ssize_t size;
    const char *bytes = PyUnicode_CheckExact(text) ? PyUnicode_AsUTF8AndSize(text, &size) : NULL;
    if (bytes == NULL || reserve(buffer, size + 10) < 0)
        return -1;
    uint64_t length = (uint64_t)size;
    do {
        unsigned char byte = length & 0x7f;
        length >>= 7;
        buffer->at[buffer->size++] = (char)(length ? byte | 0x80 : byte);
    } while (length);
    memcpy(buffer->at + buffer->size, bytes, size);
    buffer->size += size;
    return 0;
}

/* Offsets, then the keys as a LowCardinality column with its own dictionary, then the
 * values (native.py's `_write` for a Map, its keys and its values). */
static int write_maps(Buffer *buffer, PyObject *maps) {
    Py_ssize_t count = PySequence_Fast_GET_SIZE(maps), total = 0;
    PyObject **items = PySequence_Fast_ITEMS(maps);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyDict_CheckExact(items[i]))
            return -1;
        total += PyDict_GET_SIZE(items[i]);
        if (put_int(buffer, (uint64_t)total, 8) < 0)
            return -1;
    }
    if (total == 0)
        return -1;
    PyObject *positions = PyDict_New(); /* key -> its position in the dictionary */
    Py_ssize_t *keys = PyMem_Malloc(total * sizeof(Py_ssize_t)), at = 0;
    int failed = positions == NULL || keys == NULL;
    for (Py_ssize_t i = 0; i < count && !failed; i++) {
        Py_ssize_t next = 0;
        PyObject *key, *value;
        while (!failed && PyDict_Next(items[i], &next, &key, &value)) {
            PyObject *found = PyDict_GetItemWithError(positions, key);
            if (found == NULL) {
                PyObject *position = PyLong_FromSsize_t(PyDict_GET_SIZE(positions));
                failed = PyErr_Occurred() || position == NULL ||
                         PyDict_SetItem(positions, key, position) < 0;
                Py_XDECREF(position);
                keys[at++] = PyDict_GET_SIZE(positions) - 1;
            } else {
                keys[at++] = PyLong_AsSsize_t(found);
            }
        }
    }
    Py_ssize_t distinct = failed ? 0 : PyDict_GET_SIZE(positions);
    /* Bytes a position takes, as native.py picks them: int(log2(distinct)) >> 3. */
    int size = distinct < 256 ? 0 : distinct < 65536 ? 1 : distinct < ((Py_ssize_t)1 << 32) ? 2 : 3;
    failed = failed || size == 3 ||
             put_int(buffer, (1 << 9) | (1 << 10) | size, 8) < 0 ||
             put_int(buffer, (uint64_t)distinct, 8) < 0;
    Py_ssize_t next = 0;
    PyObject *key, *position;
    while (!failed && PyDict_Next(positions, &next, &key, &position))
        failed = put_string(buffer, key) < 0;
    failed = failed || put_int(buffer, (uint64_t)total, 8) < 0;
    for (Py_ssize_t i = 0; i < total && !failed; i++)
        failed = put_int(buffer, (uint64_t)keys[i], 1 << size) < 0;
    for (Py_ssize_t i = 0; i < count && !failed; i++) {
        Py_ssize_t next = 0;
        PyObject *key, *value;
        while (!failed && PyDict_Next(items[i], &next, &key, &value))
            failed = put_string(buffer, value) < 0;
    }
    Py_XDECREF(positions);
    PyMem_Free(keys);
    return failed ? -1 : 0;
}

static PyObject *write_string_maps(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyByteArray_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "write_string_maps(column, block: bytearray)");
        return NULL;
    }
    PyObject *maps = PySequence_Fast(args[0], "the column must be a sequence");
    if (maps == NULL)
        return NULL;
    Buffer buffer = {NULL, 0, 0};
    int failed = write_maps(&buffer, maps) < 0;
    Py_DECREF(maps);
    if (!failed) {
        Py_ssize_t size = PyByteArray_GET_SIZE(args[1]);
        failed = PyByteArray_Resize(args[1], size + buffer.size) < 0;
        if (!failed)
            memcpy(PyByteArray_AS_STRING(args[1]) + size, buffer.at, buffer.size);
    }
    PyMem_Free(buffer.at);
    if (failed)
        PyErr_Clear();
    return PyBool_FromLong(!failed);
}

static PyMethodDef methods[] = {
    {"write_string_maps", (PyCFunction)(void (*)(void))write_string_maps, METH_FASTCALL,
     "write_string_maps(column, block) -> whether the column of dicts was appended to block "
     "as Map(LowCardinality(String), String) Native data (False: nothing was written)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_native_maps",
    "Map(LowCardinality(String), String) columns in Native format (native.py without it).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__native_maps(void) { return PyModule_Create(&module_def); }
