/* _preload_sort.c's functions, in _preload_notes' method table (_preload_notes.c). */
#ifndef CLEW_PRELOAD_SORT_H
#define CLEW_PRELOAD_SORT_H

#include <Python.h>

PyObject *sort_notes(PyObject *self, PyObject *args);
PyObject *batch_writes(PyObject *self, PyObject *args);

#endif
