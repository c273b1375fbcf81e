/*
 * Between the two parts of clew's C audit hook: _open_hook.c (the hook: events, checks,
 * paths) and _open_hook_read.c (a read-only open recorded: Recorder.read in C).
 */
#ifndef CLEW_OPEN_HOOK_H
#define CLEW_OPEN_HOOK_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Interns the attribute names the read part uses: 0, or -1 with an exception set. */
int open_hook_read_init(void);

/* What the read part works with (held for good): blake3.blake3, the digest prefix
 * ("blake3:"), the Record class, the dedupe table's bound, the count of ready records that
 * wakes the worker and the producer stamp's xattr name: 0, or -1 with an exception set. */
int open_hook_read_configure(PyObject *blake3, PyObject *prefix, PyObject *record,
                             Py_ssize_t max_tracked, Py_ssize_t spill_records,
                             const char *stamp_name);

/* Recorder.read(path) on `owner`, the path also as the C string `name` for the system calls:
 * 0, or -1 with an exception set. */
int open_hook_read(PyObject *owner, PyObject *path, const char *name);

#endif
