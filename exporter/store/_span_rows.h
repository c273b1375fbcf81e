/* What the two halves of the ingest's C converter share: _span_rows.c walks a request's
 * spans, _span_values.c makes their attribute maps. */
#ifndef CLEW_SPAN_ROWS_H
#define CLEW_SPAN_ROWS_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Returned by a step that declines: the line goes to Python's path. */
#define DECLINE (-1)

/* What one call converts with: rows.py's kind and status names, and its as_string. */
typedef struct {
    PyObject *kinds, *statuses, *as_string;
} Names;

/* Interned by the module's init. */
extern PyObject *s_attributes, *s_key, *s_value, *s_stringValue, *s_intValue, *s_boolValue,
    *s_arrayValue, *s_values, *s_empty, *s_true, *s_false;

PyObject *get(PyObject *mapping, PyObject *key, PyObject *fallback);
PyObject *get_list(PyObject *mapping, PyObject *key);
PyObject *attributes_map(PyObject *pairs, const Names *names);
#endif
