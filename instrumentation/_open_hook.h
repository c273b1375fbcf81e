/*
 * Between the parts of clew's C audit hook: _open_hook.c (the hook: events, checks, paths),
 * _open_hook_read.c (a read-only open recorded: Recorder.read in C), _open_hook_hash.c (a
 * small file read and hashed) and _open_hook_record.c (the record of a first read, made
 * without Record.__init__).
 */
#ifndef CLEW_OPEN_HOOK_H
#define CLEW_OPEN_HOOK_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sys/stat.h>

/* An attribute name a part of the hook looks up by, interned once (`*name`, from `text`). */
struct hook_name {
    PyObject **name;
    const char *text;
};

/* The int 1 (a record's first count), made by open_hook_read_init. */
extern PyObject *open_hook_one;

/* Interns each of the `count` names not interned yet: 0, or -1 with an exception set. */
int intern_names(const struct hook_name *names, size_t count);

/* Interns the attribute names the read part uses: 0, or -1 with an exception set. */
int open_hook_read_init(void);

/* What the read part works with (held for good): blake3.blake3, the digest prefix
 * ("blake3:"), the Record class, the digest cache's class and its entries' (DigestCache,
 * _Memo), the dedupe table's bound, the count of ready records that wakes the worker and the
 * producer stamp's xattr name: 0, or -1 with an exception set. */
int open_hook_read_configure(PyObject *blake3, PyObject *prefix, PyObject *record,
                             PyObject *digest_cache, PyObject *memo, Py_ssize_t max_tracked,
                             Py_ssize_t spill_records, const char *stamp_name);

/* Recorder.read(path) on `owner`, the path also as the C string `name` for the system calls:
 * 0, or -1 with an exception set. */
int open_hook_read(PyObject *owner, PyObject *path, const char *name);

/* What the hashing part works with (held for good): blake3.blake3, the digest prefix
 * ("blake3:") and the producer stamp's xattr name: 0, or -1 with an exception set. */
int open_hook_hash_configure(PyObject *blake3, PyObject *prefix, const char *stamp_name);

/* _file_digests.hash_file of the small file `name` of the version `expected`, in C; a new
 * reference: the digest, or None when the file is not that version any more; NULL on error.
 * `*unstamped` set when it carries no producer stamp (asked when `settled_ns` >= 0). */
PyObject *open_hook_hash_small(const char *name, const struct stat *expected,
                               long long settled_ns, int *unstamped);

/* Takes the Record class and finds where its slots are: 0, or -1 with an exception set. */
int open_hook_record_configure(PyObject *record);

/* A new Record("read", path, key) with `digest` (None: none; identity "content" otherwise)
 * and `unstamped` set, as the class and attribute stores would make it; NULL on error. */
PyObject *open_hook_new_read(PyObject *path, PyObject *key, PyObject *digest, int unstamped);

/* A repeated open counted on `record`, its last time now, without the generic attribute
 * look-ups and stores nor the call of `clock` (the recorder's `_time_ns`), when the record is
 * exactly a Record whose slots are known and `clock` is time.time_ns: 1 done, 0 when the
 * caller must do it the generic way, -1 with an exception set. */
int open_hook_record_repeated(PyObject *record, PyObject *clock);

#endif
