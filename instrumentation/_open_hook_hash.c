/*
 * A small file read whole and hashed, for clew's C audit hook (_open_hook_read.c): what
 * `_file_digests.hash_file` does, checked against the stat after the read, hashed by the
 * `blake3` package (the Python path's call: the same digest), and asked for a producer stamp
 * when it has not changed for a while (may_be_stamped).
 */
#include "_open_hook.h"
#include "_xattr_names.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static PyObject *blake3_type;   /* blake3.blake3 */
static PyObject *digest_prefix; /* "blake3:" */
static char *stamp_name;        /* the producer stamp's xattr (semconv's STAMP_XATTR) */
static PyObject *s_hexdigest;

int open_hook_hash_configure(PyObject *blake3, PyObject *prefix, const char *stamp) {
    const struct hook_name names[] = {{&s_hexdigest, "hexdigest"}};
    if (intern_names(names, 1) < 0)
        return -1;
    stamp_name = strdup(stamp);
    if (stamp_name == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_INCREF(blake3);
    Py_INCREF(prefix);
    blake3_type = blake3;
    digest_prefix = prefix;
    return 0;
}

static int same_version(const struct stat *now, const struct stat *expected) {
    return S_ISREG(now->st_mode) && now->st_ino == expected->st_ino &&
           now->st_dev == expected->st_dev && now->st_size == expected->st_size &&
           now->st_mtim.tv_sec == expected->st_mtim.tv_sec &&
           now->st_mtim.tv_nsec == expected->st_mtim.tv_nsec;
}

/* Whether the file open at `fd` may carry the producer stamp (the xattr `stamp_name`), asked
 * here, of the version just read, instead of by path at the flush (listxattr in
 * _read_stamps.c's stamp_candidates): no second path lookup, and no GIL hand-off of its
 * own. 1 if it lists it, or the list did not fit: the flush then reads the stamp by path as
 * it does for every read the hook did not check; 0 if it has none, or no xattrs here (as
 * _stamps.read_file finds none there). Asked only of a version settled for `settled_ns`
 * (its inode unchanged for that long: a writer's stamp, set at its flush once its write
 * settled, changes the ctime too), whose answer stands: a fresher one may still be stamped
 * before the flush, which looks then, as for every read. */
static int may_be_stamped(int fd, const struct stat *st, long long settled_ns) {
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return 1;
    long long age = ((long long)now.tv_sec - st->st_ctim.tv_sec) * 1000000000LL +
                    (now.tv_nsec - st->st_ctim.tv_nsec);
    if (age < settled_ns)
        return 1;
    char names[4096];
    ssize_t size = flistxattr(fd, names, sizeof names);
    if (size < 0)
        return errno == ERANGE;
    return lists_name(names, size, stamp_name, strlen(stamp_name));
}

/* _file_digests.hash_file for a small file, without the Python: the file read whole in one
 * read, then checked to be the version stat-ed (`expected`), as the descriptor is after the
 * read: the same inode, size and mtime, regular. One check, after: a file that was another
 * version when opened, or changed during the read, differs from `expected` then too (its
 * mtime moved, or it is another inode), so a check before the read as well added a system
 * call to every first read and caught nothing more. O_NONBLOCK: should the path have become
 * a FIFO or a device since the stat, neither the open nor the read waits on it (for a
 * regular file it changes nothing); what was read is then refused by the check. `*unstamped`
 * is set when the file, read whole, carries no producer stamp (may_be_stamped), asked only
 * when `settled_ns` >= 0 (stamps on). A new reference: the digest, or None when the file is
 * not that version any more. Its open makes no audit event: no need to mark it as clew's own
 * I/O. */
PyObject *open_hook_hash_small(const char *name, const struct stat *expected,
                            long long settled_ns, int *unstamped) {
    Py_ssize_t size = (Py_ssize_t)expected->st_size;
    PyObject *data = PyBytes_FromStringAndSize(NULL, size);
    if (data == NULL)
        return NULL;
    char *buffer = PyBytes_AS_STRING(data);
    int whole = 0, unlisted = 0;
    Py_BEGIN_ALLOW_THREADS
    int fd = open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
        Py_ssize_t done = 0;
        while (done < size) {
            ssize_t got = read(fd, buffer + done, (size_t)(size - done));
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                break;
            done += got;
        }
        struct stat after;
        whole = done == size && fstat(fd, &after) == 0 && same_version(&after, expected);
        unlisted = whole && settled_ns >= 0 && !may_be_stamped(fd, &after, settled_ns);
        close(fd);
    }
    Py_END_ALLOW_THREADS
    if (!whole) {
        Py_DECREF(data);
        Py_RETURN_NONE;
    }
    *unstamped = unlisted;
    PyObject *hasher = PyObject_CallOneArg(blake3_type, data);
    Py_DECREF(data);
    if (hasher == NULL)
        return NULL;
    PyObject *hex = PyObject_CallMethodNoArgs(hasher, s_hexdigest);
    Py_DECREF(hasher);
    if (hex == NULL)
        return NULL;
    PyObject *digest = PyUnicode_Concat(digest_prefix, hex);
    Py_DECREF(hex);
    return digest;
}
