/*
 * Reads the record files of clew's LD_PRELOAD library (_preload_shim.c, whose header comment
 * gives the layout) for instrumentation/_preload.py, in the parent Python process.
 *
 * A CPython extension, unlike the library it reads: `cp -r` of 10,000 files leaves 20,000
 * notes, and walking them in Python (a header unpacked, the names sliced, split and decoded,
 * a key tuple built, per note) cost as much as what the notes are then turned into.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "_preload_sort.h"

#define HEADER_BYTES 40
#define COPY 'C'
#define WRITE 'W'

/* `tuple`, made here of numbers, strings, None and such tuples, untracked by the cyclic garbage
 * collector, as CPython untracks such tuples at their first collection: nothing in it can
 * refer back to it. Tracked, the 20,000 keys of a `cp -r` of 10,000 files, held until all are
 * read, survived enough young collections to set off full ones (~20 ms each, in a process that
 * has imported OpenTelemetry). */
static PyObject *untracked(PyObject *tuple) {
    if (tuple != NULL)
        PyObject_GC_UnTrack(tuple);
    return tuple;
}

/* The collector's automatic collections held off while many keys are made (0 when they were
 * already off). Untracked at once, a key is still counted as an allocation of the collector's
 * youngest generation (CPython lowers the count only when an object is freed): the ~40,000
 * keys of `cp -r` of 10,000 files set off ~60 young collections, whose survivors (the host's
 * own objects) moved up until one full collection of the whole heap ran (~12 ms in a process
 * that has imported OpenTelemetry). Held off, the count is looked at once, at the next
 * allocation after `gc_resume`: one young collection. Only around code that runs no Python
 * (no other thread sees the collector off, nor turns it on or off meanwhile). */
static int gc_pause(void) {
    return PyGC_Disable();
}

static void gc_resume(int was_enabled) {
    if (was_enabled)
        PyGC_Enable();
}

/* (dev, ino, size, mtime_ns): the digest cache's key of a file version, as stat_key() makes
 * it in Python. Built item by item: Py_BuildValue parses its format for every key, ~2,400
 * instructions of the ~3,000 a key cost (callgrind), and 30,000 keys are made for `cp -r` of
 * 10,000 files. */
static PyObject *version_key(uint64_t dev, uint64_t ino, int64_t size, int64_t mtime) {
    PyObject *key = PyTuple_New(4);
    if (key == NULL)
        return NULL;
    PyObject *items[4] = {
        PyLong_FromUnsignedLongLong((unsigned long long)dev),
        PyLong_FromUnsignedLongLong((unsigned long long)ino),
        PyLong_FromLongLong((long long)size),
        PyLong_FromLongLong((long long)mtime),
    };
    for (int i = 0; i < 4; i++) {
        if (items[i] == NULL) {
            for (int j = 0; j < 4; j++)
                Py_XDECREF(items[j]);
            Py_DECREF(key);
            return NULL;
        }
    }
    for (int i = 0; i < 4; i++)
        PyTuple_SET_ITEM(key, i, items[i]);
    return untracked(key);
}

/* The source key of a copy record, "dev ino size mtime" as text: NULL (no error set) when the
 * text is not four integers. */
static PyObject *source_key(const char *text, const char *end) {
    long long fields[4];
    int count = 0;
    while (text < end && *text && count < 4) {
        while (text < end && *text == ' ')
            text++;
        int negative = text < end && *text == '-';
        text += negative;
        if (text >= end || *text < '0' || *text > '9')
            return NULL;
        unsigned long long value = 0;
        while (text < end && *text >= '0' && *text <= '9')
            value = value * 10 + (unsigned long long)(*text++ - '0');
        fields[count++] = negative ? -(long long)value : (long long)value;
    }
    if (count != 4 || (text < end && *text))
        return NULL;
    /* device and inode are unsigned in the record's header: the same numbers here */
    return version_key((uint64_t)fields[0], (uint64_t)fields[1], fields[2], fields[3]);
}

static PyObject *abspath; /* os.path.abspath */

/* Whether os.path.abspath would return the name unchanged: absolute, and nothing for
 * normpath to fold (no empty, "." or ".." component, no trailing slash). */
static int normal_absolute(const char *text, size_t length) {
    return length > 0 && text[0] == '/' && text[length - 1] != '/' &&
           memmem(text, length, "/.", 2) == NULL && memmem(text, length, "//", 2) == NULL;
}

/* A name of `length` bytes as os.fsdecode gives it (the filesystem encoding, surrogateescape),
 * normalised as instrumentation/_paths.py's `absolute`: the library does not normalise.
 * `paused`: gc_pause's answer, kept up to date. */
static PyObject *name(const char *text, size_t length, int *paused) {
    PyObject *decoded = PyUnicode_DecodeFSDefaultAndSize(text, (Py_ssize_t)length);
    if (decoded == NULL || normal_absolute(text, length))
        return decoded;
    /* Python code: with the collector as it was (gc_pause), and held off again only if it is
     * still on after (another thread may have turned it off meanwhile). */
    gc_resume(*paused);
    PyObject *normal = PyObject_CallOneArg(abspath, decoded);
    Py_DECREF(decoded);
    if (*paused)
        *paused = gc_pause();
    return normal;
}

PyDoc_STRVAR(read_doc,
"read(data, offset, copies) -> (operations, keys, paths, seconds, offset)\n\n"
"The records of `data` (a record file's bytes) from `offset` on, as parallel sequences, one\n"
"entry per record: operations (bytes, one operation byte each), keys ((dev, ino, size,\n"
"mtime) tuples; None for a write), paths, and second paths or None; the paths normalised as\n"
"absolute() does.\n"
"Then the offset to read on from next time (the first record not yet complete). Copy records\n"
"go into `copies` instead, as copy's key -> source's key.");

/* Parallel sequences, not a tuple per record: `cp -r` of 10,000 files leaves 20,000 records,
 * and a tuple each was as many more objects for the collector to count (its allocations are
 * what set off its collections) and for the reader to take apart again. */
static PyObject *read_notes(PyObject *self, PyObject *args) {
    PyObject *data, *copies;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "OnO!", &data, &offset, &PyDict_Type, &copies))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *keys = PyList_New(0), *paths = PyList_New(0), *seconds = PyList_New(0);
    char *operations = NULL;
    Py_ssize_t count = 0, room = 0;
    int paused = 0;
    if (keys == NULL || paths == NULL || seconds == NULL)
        goto failed;
    const unsigned char *base = view.buf;
    Py_ssize_t total = view.len;
    paused = gc_pause();
    while (offset >= 0 && offset + HEADER_BYTES <= total) {
        const unsigned char *record = base + offset;
        /* The operation byte is the record's last store (its writer's release): read first. */
        unsigned char operation = __atomic_load_n(record + 4, __ATOMIC_ACQUIRE);
        uint32_t length;
        uint64_t dev, ino;
        int64_t size, mtime;
        memcpy(&length, record, 4);
        if (operation == 0 || length < HEADER_BYTES || offset + (Py_ssize_t)length > total)
            break; /* the unused rest, a record being written, or one its writer died in */
        memcpy(&dev, record + 8, 8);
        memcpy(&ino, record + 16, 8);
        memcpy(&size, record + 24, 8);
        memcpy(&mtime, record + 32, 8);
        offset += length;
        const char *names = (const char *)record + HEADER_BYTES;
        const char *end = (const char *)record + length;
        const char *first_end = memchr(names, 0, (size_t)(end - names));
        if (first_end == NULL)
            first_end = end;
        /* A write's key is the file as it was opened, which says nothing of what is written
         * (clew identifies a written file once its writer is done): None, one object fewer
         * for each of the 10,000 files `cp -r` writes. */
        PyObject *key = Py_None;
        if (operation == WRITE)
            Py_INCREF(key);
        else if ((key = version_key(dev, ino, size, mtime)) == NULL)
            goto failed;
        if (operation == COPY) { /* its name is the source's key, as text */
            PyObject *source = source_key(names, first_end);
            int stored = 0;
            if (source != NULL && PyLong_AsLongLong(PyTuple_GET_ITEM(source, 2)) == size)
                stored = PyDict_SetItem(copies, key, source);
            Py_DECREF(key);
            Py_XDECREF(source);
            if (stored < 0)
                goto failed;
            continue;
        }
        PyObject *path = name(names, (size_t)(first_end - names), &paused);
        PyObject *second = NULL;
        if (path != NULL && first_end + 1 < end && first_end[1]) {
            const char *start = first_end + 1;
            const char *second_end = memchr(start, 0, (size_t)(end - start));
            if (second_end != NULL)
                second = name(start, (size_t)(second_end - start), &paused);
            if (second == NULL && PyErr_Occurred()) {
                Py_CLEAR(path);
            }
        }
        if (path == NULL) {
            Py_DECREF(key);
            goto failed;
        }
        if (second == NULL) {
            Py_INCREF(Py_None);
            second = Py_None;
        }
        int appended = PyList_Append(keys, key) == 0 && PyList_Append(paths, path) == 0 &&
                       PyList_Append(seconds, second) == 0;
        Py_DECREF(key);
        Py_DECREF(path);
        Py_DECREF(second);
        if (!appended)
            goto failed;
        if (count == room) {
            room = room ? 2 * room : 1024;
            char *grown = PyMem_Realloc(operations, (size_t)room);
            if (grown == NULL) {
                PyErr_NoMemory();
                goto failed;
            }
            operations = grown;
        }
        operations[count++] = (char)operation;
    }
    gc_resume(paused);
    PyBuffer_Release(&view);
    PyObject *result = Py_BuildValue("(y#NNNn)", operations ? operations : "", count, keys,
                                     paths, seconds, offset);
    PyMem_Free(operations);
    return result;
failed:
    gc_resume(paused);
    Py_XDECREF(keys);
    Py_XDECREF(paths);
    Py_XDECREF(seconds);
    PyMem_Free(operations);
    PyBuffer_Release(&view);
    return NULL;
}

PyDoc_STRVAR(stat_keys_doc,
"stat_keys(paths) -> list\n\n"
"For each path, the (dev, ino, size, mtime) of the regular file it names now (following\n"
"symbolic links, as os.stat), or None when it names no regular file.");

/* What a child wrote is identified by its files as they are once it has ended: one stat
 * each, here rather than through os.stat, whose result object and the key built from it cost
 * more than the system call for a small file on tmpfs. The stats are made without the GIL, all
 * in one go: the program's threads run meanwhile, and one hand-off of the GIL per file would
 * cost more than the stat. */
static PyObject *stat_keys(PyObject *self, PyObject *paths) {
    PyObject *sequence = PySequence_Fast(paths, "stat_keys() takes a sequence of paths");
    if (sequence == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence), encoded_count = 0;
    PyObject **encoded = PyMem_Calloc((size_t)count + 1, sizeof *encoded);
    struct stat *found = PyMem_Calloc((size_t)count + 1, sizeof *found);
    char *regular = PyMem_Calloc((size_t)count + 1, 1);
    PyObject *keys = NULL;
    if (encoded == NULL || found == NULL || regular == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; encoded_count < count; encoded_count++)
        if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(sequence, encoded_count),
                                   &encoded[encoded_count]))
            goto done;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++)
        regular[i] = stat(PyBytes_AS_STRING(encoded[i]), &found[i]) == 0 &&
                     S_ISREG(found[i].st_mode);
    Py_END_ALLOW_THREADS
    int paused = gc_pause();
    keys = PyList_New(count);
    for (Py_ssize_t i = 0; keys != NULL && i < count; i++) {
        const struct stat *st = &found[i];
        PyObject *key = Py_None;
        if (regular[i]) {
            key = version_key((uint64_t)st->st_dev, (uint64_t)st->st_ino, (int64_t)st->st_size,
                              (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec);
            if (key == NULL)
                Py_CLEAR(keys);
        } else {
            Py_INCREF(key);
        }
        if (keys != NULL)
            PyList_SET_ITEM(keys, i, key);
    }
    gc_resume(paused);
done:
    for (Py_ssize_t i = 0; encoded != NULL && i < encoded_count; i++)
        Py_DECREF(encoded[i]);
    PyMem_Free(encoded);
    PyMem_Free(found);
    PyMem_Free(regular);
    Py_DECREF(sequence);
    return keys;
}

/* Whether `st` is a regular file at the version `key` (dev, ino, size, mtime_ns) names. */
static int is_version(const struct stat *st, const unsigned long long key[4]) {
    return S_ISREG(st->st_mode) && (unsigned long long)st->st_dev == key[0] &&
           (unsigned long long)st->st_ino == key[1] && (long long)st->st_size == (long long)key[2] &&
           (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec == (long long)key[3];
}

/* Read the whole file `path` into `into` (its `size` bytes), only if it is the version `key`
 * names before and after the read: 1 when it was. Through raw system calls, not libc's open,
 * which clew's native-opens hooks (_preload_got.c) may have redirected in this process: this
 * is clew's own read, not the program's. */
static int read_version(const char *path, const unsigned long long key[4], char *into) {
    /* O_NONBLOCK: a FIFO put at the path since does not hold the open up (a regular file's
     * reads ignore it); the fstat after turns it away. */
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path,
                          O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return 0;
    struct stat st;
    size_t size = (size_t)key[2], done = 0;
    int same = fstat(fd, &st) == 0 && is_version(&st, key);
    while (same && done < size) {
        ssize_t count = read(fd, into + done, size - done);
        if (count < 0 && errno == EINTR)
            continue;
        if (count <= 0)
            same = 0; /* shorter than its size said: changed meanwhile */
        else
            done += (size_t)count;
    }
    same = same && fstat(fd, &st) == 0 && is_version(&st, key);
    syscall(SYS_close, fd);
    return same;
}

PyDoc_STRVAR(read_versions_doc,
"read_versions(paths, keys) -> list\n\n"
"For each path, the whole content (bytes) of the regular file it names if that is the version\n"
"its key, (dev, ino, size, mtime), names both before and after the read; else None.");

/* The contents of the small files a child read, for clew to hash (with the blake3 package):
 * read in one go without the GIL, so the program's threads run meanwhile; the caller bounds
 * their total size. */
static PyObject *read_versions(PyObject *self, PyObject *args) {
    PyObject *path_list, *key_list;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &path_list, &PyList_Type, &key_list))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(path_list), encoded_count = 0;
    if (PyList_GET_SIZE(key_list) != count) {
        PyErr_SetString(PyExc_ValueError, "read_versions() takes as many keys as paths");
        return NULL;
    }
    PyObject **encoded = PyMem_Calloc((size_t)count + 1, sizeof *encoded);
    unsigned long long (*keys)[4] = PyMem_Calloc((size_t)count + 1, sizeof *keys);
    size_t *starts = PyMem_Calloc((size_t)count + 1, sizeof *starts);
    char *whole = PyMem_Calloc((size_t)count + 1, 1), *buffer = NULL;
    PyObject *contents = NULL;
    if (encoded == NULL || keys == NULL || starts == NULL || whole == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    size_t total = 0;
    for (; encoded_count < count; encoded_count++) {
        Py_ssize_t i = encoded_count;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(key_list, i), "KKKK;a key is four integers",
                              &keys[i][0], &keys[i][1], &keys[i][2], &keys[i][3]) ||
            !PyUnicode_FSConverter(PyList_GET_ITEM(path_list, i), &encoded[i]))
            goto done;
        if ((long long)keys[i][2] < 0 || keys[i][2] > (1ULL << 30)) {
            PyErr_SetString(PyExc_ValueError, "read_versions() reads small files only");
            Py_CLEAR(encoded[i]);
            goto done;
        }
        starts[i] = total;
        total += (size_t)keys[i][2];
    }
    buffer = PyMem_RawMalloc(total + 1);
    if (buffer == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++)
        whole[i] = (char)read_version(PyBytes_AS_STRING(encoded[i]), keys[i], buffer + starts[i]);
    Py_END_ALLOW_THREADS
    contents = PyList_New(count);
    for (Py_ssize_t i = 0; contents != NULL && i < count; i++) {
        PyObject *content = Py_None;
        if (whole[i])
            content = PyBytes_FromStringAndSize(buffer + starts[i], (Py_ssize_t)keys[i][2]);
        else
            Py_INCREF(content);
        if (content == NULL)
            Py_CLEAR(contents);
        else
            PyList_SET_ITEM(contents, i, content);
    }
done:
    for (Py_ssize_t i = 0; encoded != NULL && i < encoded_count; i++)
        Py_DECREF(encoded[i]);
    PyMem_Free(encoded);
    PyMem_Free(keys);
    PyMem_Free(starts);
    PyMem_Free(whole);
    PyMem_RawFree(buffer);
    return contents;
}

static PyMethodDef methods[] = {
    {"read", read_notes, METH_VARARGS, read_doc},
    {"stat_keys", stat_keys, METH_O, stat_keys_doc},
    {"read_versions", read_versions, METH_VARARGS, read_versions_doc},
    {"sort_notes", sort_notes, METH_VARARGS,
     "sort_notes(operations, keys, paths, seconds, excluded, wanted, max_size, batches, "
     "new_batch, writes, note): the notes `wanted` accepts (or, when `excluded` is a tuple "
     "of prefixes, those under none of them and no __pycache__) into an image's read "
     "batches by directory "
     "(small reads; `new_batch(directory)` makes and adds one) and its counts of writes by "
     "path, any other to `note(operation, key, path, second)` in its turn "
     "(_preload_sort.c)."},
    {"batch_writes", batch_writes, METH_VARARGS,
     "batch_writes(paths, keys, counts, copies, max_size, batches, new_batch): each written "
     "file (its key now, `counts[path]`, `copies.get(key)`) into its directory's batch of "
     "writes (`new_batch(directory)` makes and adds one); the indexes of those at least "
     "`max_size` large, left out (_preload_sort.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_preload_notes",
    "Reads the LD_PRELOAD library's record files (_preload_shim.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__preload_notes(void) {
    PyObject *path = PyImport_ImportModule("os.path");
    if (path == NULL)
        return NULL;
    abspath = PyObject_GetAttrString(path, "abspath");
    Py_DECREF(path);
    if (abspath == NULL)
        return NULL;
    return PyModule_Create(&module);
}
