/*
 * A span's attributes as the spool's OTLP JSON text, in C (exporter/otlp_encode.py writes the
 * same text in Python without it, and whenever this declines).
 *
 * A batched read span is nearly all arrays: 512 URIs, digests and sizes. In Python each array
 * was checked for characters JSON escapes, joined, its ints made text and joined, and the
 * pieces joined again into the span: ~4k instructions a record, most of them copies. Here the
 * whole list, keys and values, is measured in one pass and written in a second straight into
 * the str it returns: a byte is copied once (the writer: _attributes_writer.c).
 *
 * For the spool, a batched span's attributes are not made into a str at all: `attributes_text`
 * with `defer_items` gives back their (key, value) pairs, checked to be written here, and the
 * spool's writer has `attributes_into` write the text a window at a time straight into the
 * buffer it reuses for the line (exporter/_line_chunks.c). A str of ~90 KB a span was new
 * memory, each page of it a page fault in a forked DataLoader worker (~80 for ~1,900 files at
 * its exit), and a measuring pass over every value besides.
 *
 * Written exactly as Python writes them: strings as json's encode_basestring_ascii quotes them
 * (lone surrogates as \udXXX: encode_json's last pass rewrites them on the whole line, as it
 * does Python's), exact ints within 64 bits, bools, floats as float.__repr__ (not finite: the
 * strings OTLP JSON uses), and flat lists or tuples of those. Anything else (a subclass, a
 * bigger int, a mapping, a nested array) returns None: Python's path writes the attributes.
 */
#include "_attributes_text.h"

/* Whether `pairs` hold an array of at least `items` values: a span worth writing later. */
static int has_array_of(PyObject *pairs, Py_ssize_t items) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        PyObject *value = PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2
                              ? PyTuple_GET_ITEM(pair, 1) : NULL;
        if (value != NULL && (PyList_CheckExact(value) || PyTuple_CheckExact(value)) &&
            PySequence_Fast_GET_SIZE(value) >= items)
            return 1;
    }
    return 0;
}

/* attributes_text(attributes, defer_items=0) */
static PyObject *attributes_text(PyObject *self, PyObject *const *args, Py_ssize_t count) {
    /* Its two arguments taken as they are: parsing them cost ~350 instructions a span. */
    if (count < 1 || count > 2) {
        PyErr_SetString(PyExc_TypeError, "attributes_text takes one or two arguments");
        return NULL;
    }
    PyObject *attributes = args[0];
    Py_ssize_t defer_items = count > 1 ? PyLong_AsSsize_t(args[1]) : 0;
    if (defer_items == -1 && PyErr_Occurred())
        return NULL;
    PyObject *pairs = PyMapping_Items(attributes);
    if (pairs == NULL)
        return NULL;
    Text text = {.to = PY_SSIZE_T_MAX};
    PyObject *result = NULL;
    if (defer_items > 0 && has_array_of(pairs, defer_items)) {
        /* Checked now, so that attributes_into writes all of it (or the export's encoder,
         * not its writer, finds what it cannot). */
        Text check = {.to = PY_SSIZE_T_MAX, .strict = 1, .check = 1};
        int written = put_attributes(&check, pairs);
        if (written == WRITTEN)
            return pairs;
        if (written < 0) {
            Py_DECREF(pairs);
            return NULL;
        }
    }
    int written = put_attributes(&text, pairs);
    if (written > 0) {
        result = PyUnicode_New(text.size, 127);
        if (result != NULL) {
            /* The same pass again, now writing: the same size, no copy to fit. */
            text = (Text){.at = (char *)PyUnicode_1BYTE_DATA(result), .to = PY_SSIZE_T_MAX,
                          .escapes = text.escapes};
            if (put_attributes(&text, pairs) < 0)
                Py_CLEAR(result);
        }
    } else if (written == 0) {
        result = Py_NewRef(Py_None);
    }
    Py_DECREF(pairs);
    return result;
}

/* attributes_into(buffer, start, pairs, offset, resume): bytes [offset, offset + room) of the
 * text of `pairs` (as attributes_text gave them) written to buffer[start:], `room` what is
 * left of it, the pass begun at `resume` (the last call's mark, or (0, 0, 0)). It stops where
 * the window ends. */
static PyObject *attributes_into(PyObject *self, PyObject *args) {
    Py_buffer buffer;
    Py_ssize_t start, offset, pair, item, size;
    PyObject *pairs;
    if (!PyArg_ParseTuple(args, "w*nO!n(nnn)", &buffer, &start, &PyList_Type, &pairs, &offset,
                          &pair, &item, &size))
        return NULL;
    if (start < 0 || start > buffer.len || offset < 0 || size < 0 || size > offset ||
        pair < 0 || item < 0) {
        PyBuffer_Release(&buffer);
        PyErr_SetString(PyExc_ValueError, "attributes_into: start, offset or resume out of range");
        return NULL;
    }
    Text text = {.at = (char *)buffer.buf + start, .size = size, .from = offset,
                 .to = offset + (buffer.len - start), .escapes = 1, .strict = 1,
                 .start_pair = pair, .start_item = item, .mark_pair = pair, .mark_item = item,
                 .mark_size = size};
    int written = put_attributes(&text, pairs);
    PyBuffer_Release(&buffer);
    if (written < 0)
        return NULL;
    Py_ssize_t end = text.size < text.to ? text.size : text.to;
    int state = written == WRITTEN && text.size <= text.to ? WRITTEN
                : written == REFUSED                        ? REFUSED
                                                            : WINDOW_FULL;
    return Py_BuildValue("(in(nnn))", state, end > offset ? end - offset : 0, text.mark_pair,
                         text.mark_item, text.mark_size);
}

static PyMethodDef methods[] = {
    {"attributes_text", (PyCFunction)(void (*)(void))attributes_text, METH_FASTCALL,
     "attributes_text(attributes, defer_items=0): the mapping's OTLP JSON attribute list as the "
     "spool's encoder writes it, or None when it holds a value only the Python encoder writes; "
     "with `defer_items`, where an array has that many values and C writes all of it, its "
     "(key, value) pairs for attributes_into instead."},
    {"attributes_into", attributes_into, METH_VARARGS,
     "attributes_into(buffer, start, pairs, offset, resume): bytes from `offset` of the text of "
     "`pairs` written to buffer[start:] while it has room, begun at `resume`: (state, bytes "
     "written, where the next call begins), state 1 the text ends there, 2 the buffer is full, "
     "0 Python writes the text from there."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_attributes_text",
    "A span's attributes as the spool's OTLP JSON text, in C (see exporter/otlp_encode.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__attributes_text(void) { return PyModule_Create(&module); }