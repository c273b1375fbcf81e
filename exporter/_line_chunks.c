/*
 * A spool line's text pieces copied into a reused buffer, a buffer at a time, on their way to
 * the file (exporter/spool.py joins and encodes them in Python without it, or for a piece this
 * declines).
 *
 * The line is hundreds of KB for a DataLoader worker's exit (512 files a batched span): joined
 * into one str and encoded to bytes, it was two new copies, and in a forked worker every page
 * of new memory is a page fault (~3 us on this VM, ~190 of them for ~383 KB). Copied through
 * one buffer the caller keeps, the line touches no new memory.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* Whether JSON text `text` (ASCII) has a \\udXXX escape: maybe a lone surrogate, which the
 * line's text has rewritten (otlp_encode.unicode_json, in Python). memchr finds the
 * backslashes. */
static int has_surrogate_escape(const char *text, Py_ssize_t size) {
    const char *end = text + size, *at = text;
    while ((at = memchr(at, '\\', (size_t)(end - at))) != NULL) {
        if (end - at >= 3 && at[1] == 'u' && at[2] == 'd')
            return 1;
        at += 2; /* past the escaped character: an escaped backslash, then "ud", is none */
        if (at >= end)
            break;
    }
    return 0;
}

/* ascii_into(buffer, pieces, index, offset, start): pieces[index][offset:], then the pieces
 * after it, copied into buffer[start:] while it has room: (index, offset) of the first
 * character not copied, and where the bytes copied end. Stops, copying nothing of it, at a
 * piece that is not an exact str of ASCII characters (a span's attributes the caller has
 * written in C, _attributes_text.c), or has an escape that may be a lone surrogate: the caller
 * goes on from there. */
static PyObject *ascii_into(PyObject *self, PyObject *args) {
    Py_buffer buffer;
    PyObject *pieces;
    Py_ssize_t index, offset, start;
    if (!PyArg_ParseTuple(args, "w*O!nnn", &buffer, &PyList_Type, &pieces, &index, &offset,
                          &start))
        return NULL;
    if (start < 0 || start > buffer.len) {
        PyBuffer_Release(&buffer);
        PyErr_SetString(PyExc_ValueError, "ascii_into: start out of range");
        return NULL;
    }
    char *out = (char *)buffer.buf + start;
    Py_ssize_t room = buffer.len - start, count = PyList_GET_SIZE(pieces);
    if (index < 0 || offset < 0)
        index = offset = 0;
    while (index < count && room > 0) {
        PyObject *piece = PyList_GET_ITEM(pieces, index);
        if (!PyUnicode_CheckExact(piece) || PyUnicode_READY(piece) < 0 || !PyUnicode_IS_ASCII(piece) ||
            (offset == 0 && has_surrogate_escape((const char *)PyUnicode_1BYTE_DATA(piece),
                                                 PyUnicode_GET_LENGTH(piece)))) {
            PyErr_Clear();
            break;
        }
        Py_ssize_t left = PyUnicode_GET_LENGTH(piece) - offset;
        Py_ssize_t size = left < room ? left : room;
        if (size > 0) {
            memcpy(out, (const char *)PyUnicode_1BYTE_DATA(piece) + offset, (size_t)size);
            out += size;
            room -= size;
        }
        if (size >= left) {
            index++;
            offset = 0;
        } else {
            offset += size;
        }
    }
    Py_ssize_t end = out - (char *)buffer.buf;
    PyBuffer_Release(&buffer);
    return Py_BuildValue("(nnn)", index, offset, end);
}

static PyMethodDef methods[] = {
    {"ascii_into", ascii_into, METH_VARARGS,
     "ascii_into(buffer, pieces, index, offset, start): the pieces (str of ASCII characters) "
     "from pieces[index][offset:] on copied into buffer[start:] while it has room: (index, "
     "offset, end of the bytes copied)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_line_chunks",
    "A spool line's text pieces copied into a reused buffer, in C (see exporter/spool.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__line_chunks(void) { return PyModule_Create(&module); }
