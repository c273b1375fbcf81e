/*
 * Between the parts of the _read_batches module: _read_batches.c (the module, a record's
 * slots, a batch's arrays and URIs, the digest cache's lines), _read_stamps.c (which reads
 * may carry a producer stamp) and _flush_plan.c (a flush's records sorted into spans and
 * their batches' arrays and times, in one pass).
 */
#ifndef CLEW_READ_BATCHES_H
#define CLEW_READ_BATCHES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The attributes of a record the flush reads. */
enum record_slot {
    SLOT_OPERATION, SLOT_PATH, SLOT_KEY, SLOT_COUNT, SLOT_FIRST_NS, SLOT_LAST_NS, SLOT_DIGEST,
    SLOT_IDENTITY, SLOT_PRODUCER, SLOT_UNSTAMPED, SLOTS
};

/* Their names, interned ("operation", "path", ...). */
extern PyObject *slot_names[SLOTS];

/* _record_spans.Record, as configure() was given it; NULL before. */
extern PyTypeObject *record_class;

/* The attribute `which` of `record`, a new reference (NULL with an exception set): read
 * straight from the slot of a Record (of exactly that class), looked up otherwise. */
PyObject *record_slot(PyObject *record, enum record_slot which);

/* Whether `operation` is "read" (a str equal to it). */
int is_read(PyObject *operation);

/* A batch's five arrays (URIs, digests, sizes, identities, counts) of `count` entries each,
 * to be set: 0, or -1 with an exception set (those made so far in `arrays`). */
int new_arrays(PyObject *arrays[5], Py_ssize_t count);

/* `record`'s entries at `index` of a batch's arrays, its URI `prefix` and its path from `cut`
 * on, quoted by `quote` where needed: 0, or -1 with an exception set. */
int set_record(PyObject *arrays[5], Py_ssize_t index, PyObject *record, PyObject *prefix,
               Py_ssize_t cut, PyObject *quote);

/* The module's functions of _read_stamps.c and _flush_plan.c (documented in its table). */
PyObject *stamp_candidates(PyObject *self, PyObject *args);
PyObject *plan(PyObject *self, PyObject *args);

/* Interns what _flush_plan.c uses: 0, or -1 with an exception set. */
int flush_plan_init(void);

#endif
