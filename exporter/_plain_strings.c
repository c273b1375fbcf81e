/*
 * The spool encoder's check of an array of strings (exporter/otlp_encode.py falls back to
 * Python without it): whether every string is ASCII with nothing JSON escapes, as the URIs
 * and digests that are most of a batched span are, so that the array is quoted in one join.
 * In Python the check costs ~15 instructions a character; here, a loop the compiler
 * vectorises, well under one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Whether `text` (ASCII, `size` bytes) has a byte JSON escapes: a control character, DEL,
 * '"' or '\\'. */
static int needs_escaping(const unsigned char *text, Py_ssize_t size) {
    unsigned char found = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = text[i];
        found |= (c < 0x20) | (c == 0x7f) | (c == '"') | (c == '\\');
    }
    return found;
}

static PyObject *plain_join(PyObject *self, PyObject *args) {
    PyObject *separator, *strings;
    if (!PyArg_ParseTuple(args, "UO", &separator, &strings))
        return NULL;
    if (!PyList_CheckExact(strings) && !PyTuple_CheckExact(strings))
        Py_RETURN_NONE;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(strings);
    PyObject **items = PySequence_Fast_ITEMS(strings);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = items[i];
        /* Exactly str: the encoder writes other types (a bool is no int) its slower way. */
        if (!PyUnicode_CheckExact(item) || PyUnicode_READY(item) < 0)
            Py_RETURN_NONE;
        if (!PyUnicode_IS_ASCII(item) ||
            needs_escaping(PyUnicode_1BYTE_DATA(item), PyUnicode_GET_LENGTH(item)))
            Py_RETURN_NONE;
    }
    return PyUnicode_Join(separator, strings);
}

static PyMethodDef methods[] = {
    {"plain_join", plain_join, METH_VARARGS,
     "plain_join(separator, strings): separator.join(strings) if `strings` (a list or tuple) "
     "holds only str with nothing JSON escapes, else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_plain_strings",
    "The spool encoder's check of an array of strings in C (see exporter/otlp_encode.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__plain_strings(void) { return PyModule_Create(&module); }
