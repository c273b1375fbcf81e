/*
 * Whole copies, for clew's LD_PRELOAD library (_preload_shim.c). A file opened for writing
 * whose every byte came from one source by copy_file_range (cp's way), contiguously from
 * offset 0 of both, and that is exactly the source's size when the program closes it, has the
 * source's content: a copy record ('C') says so, and clew takes the source's digest for it
 * instead of hashing it again. Anything else (a write, a seek, a second source, a source that
 * changed, a copy of part of it) leaves the file to be hashed, as every other write is.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <unistd.h>

#include "_preload_shim.h"

#define COPY_TRACKED_FDS 1024 /* descriptors below this are followed for whole copies */

REAL(copy_file_range); REAL(close); REAL(write); REAL(pwrite); REAL(pwrite64); REAL(writev);
REAL(pwritev); REAL(pwritev64); REAL(pwritev2); REAL(ftruncate); REAL(ftruncate64);
REAL(fallocate); REAL(fallocate64); REAL(sendfile); REAL(sendfile64);

enum { COPY_NONE, COPY_WHOLE, COPY_SPOILED };

struct copying {
    int state;
    int64_t copied;        /* bytes copied so far, from offset 0 */
    struct stat source;    /* the source as it was after the first chunk */
    struct stat copy;      /* the copy as it was after the last chunk */
};

static struct copying copies[COPY_TRACKED_FDS];

static int same_version(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* `fd` was just opened: a copy into it may begin (for writing), and nothing of an earlier
 * file that had this descriptor number carries over. */
void copy_reset(int fd, int flags) {
    if (fd >= 0 && fd < COPY_TRACKED_FDS) {
        copies[fd].state = writes(flags) ? COPY_WHOLE : COPY_NONE;
        copies[fd].copied = 0;
    }
}

/* copy_file_range moved `count` bytes into `out`, starting at `in_at` of the source and
 * `out_at` of `out`. */
static void copy_chunk(int in, int out, int64_t in_at, int64_t out_at, ssize_t count) {
    struct copying *c = &copies[out];
    struct stat source, copy;
    if (in_at != c->copied || out_at != c->copied || fstat(in, &source) != 0 ||
        fstat(out, &copy) != 0 || !S_ISREG(source.st_mode)) {
        c->state = COPY_SPOILED;
        return;
    }
    if (c->copied == 0)
        c->source = source;
    /* Only the size may differ from the first chunk's view, and only if it did not change:
     * a source written to meanwhile is not the content the read record names. */
    else if (!same_version(&source, &c->source))
        c->state = COPY_SPOILED;
    c->copied += count;
    c->copy = copy;
}

/* `fd` is about to be closed: note a whole copy, if it is one. */
static void copy_closing(int fd) {
    struct copying *c = &copies[fd];
    int whole = c->state == COPY_WHOLE && c->copied > 0 && c->copied == c->source.st_size;
    c->state = COPY_NONE;
    if (!whole)
        return;
    struct stat now;
    /* Unchanged since the last chunk (a pwrite or a write through another descriptor
     * would show in its size or mtime), and nothing of an earlier content past the end. */
    if (fstat(fd, &now) != 0 || !same_version(&now, &c->copy) || now.st_size != c->copied)
        return;
    char source[96];
    snprintf(source, sizeof source, "%llu %llu %lld %lld",
             (unsigned long long)c->source.st_dev, (unsigned long long)c->source.st_ino,
             (long long)c->source.st_size,
             (long long)c->source.st_mtim.tv_sec * 1000000000LL + c->source.st_mtim.tv_nsec);
    append(OP_COPY, &now, source, NULL);
}


/* -- the wrappers ---------------------------------------------------------------------------- */

ssize_t copy_file_range(int in, loff_t *in_offset, int out, loff_t *out_offset, size_t length,
                        unsigned flags) {
    int followed = enabled && out >= 0 && out < COPY_TRACKED_FDS && copies[out].state == COPY_WHOLE;
    int64_t in_at = -1, out_at = -1;
    if (followed) {
        int saved = errno;
        in_at = in_offset ? *in_offset : lseek(in, 0, SEEK_CUR);
        out_at = out_offset ? *out_offset : lseek(out, 0, SEEK_CUR);
        errno = saved;
    }
    ssize_t count = RESOLVE(copy_file_range)(in, in_offset, out, out_offset, length, flags);
    if (followed && count > 0) {
        int saved = errno;
        copy_chunk(in, out, in_at, out_at, count);
        errno = saved;
    }
    return count;
}

/* Any other change made through a followed descriptor means it is not a plain copy. Changes
 * through another descriptor, or a shared mapping (mmap is not wrapped: an allocator calling
 * it before the real one is resolved would recurse), show at close in the copy's size or
 * mtime, as far as stat identity can tell (the digest cache's own limit). */
static void changed_through(int fd) {
    if (fd >= 0 && fd < COPY_TRACKED_FDS && copies[fd].state == COPY_WHOLE)
        copies[fd].state = COPY_SPOILED;
}

#define CHANGE_WRAPPER(type, name, parameters, arguments)                                     \
    type name parameters {                                                                     \
        changed_through(fd);                                                                   \
        return RESOLVE(name) arguments;                                                        \
    }
CHANGE_WRAPPER(ssize_t, write, (int fd, const void *data, size_t n), (fd, data, n))
CHANGE_WRAPPER(ssize_t, pwrite, (int fd, const void *data, size_t n, off_t at), (fd, data, n, at))
CHANGE_WRAPPER(ssize_t, pwrite64, (int fd, const void *data, size_t n, off64_t at),
               (fd, data, n, at))
CHANGE_WRAPPER(ssize_t, writev, (int fd, const struct iovec *v, int n), (fd, v, n))
CHANGE_WRAPPER(ssize_t, pwritev, (int fd, const struct iovec *v, int n, off_t at), (fd, v, n, at))
CHANGE_WRAPPER(ssize_t, pwritev64, (int fd, const struct iovec *v, int n, off64_t at),
               (fd, v, n, at))
CHANGE_WRAPPER(ssize_t, pwritev2, (int fd, const struct iovec *v, int n, off_t at, int flags),
               (fd, v, n, at, flags))
CHANGE_WRAPPER(int, ftruncate, (int fd, off_t length), (fd, length))
CHANGE_WRAPPER(int, ftruncate64, (int fd, off64_t length), (fd, length))
CHANGE_WRAPPER(int, fallocate, (int fd, int mode, off_t at, off_t n), (fd, mode, at, n))
CHANGE_WRAPPER(int, fallocate64, (int fd, int mode, off64_t at, off64_t n), (fd, mode, at, n))
CHANGE_WRAPPER(ssize_t, sendfile, (int fd, int in, off_t *at, size_t n), (fd, in, at, n))
CHANGE_WRAPPER(ssize_t, sendfile64, (int fd, int in, off64_t *at, size_t n), (fd, in, at, n))

int close(int fd) {
    if (enabled && fd >= 0 && fd < COPY_TRACKED_FDS && copies[fd].state != COPY_NONE) {
        int saved = errno;
        copy_closing(fd);
        errno = saved;
    }
    return RESOLVE(close)(fd);
}

/* The wrappers of calls a program may make from a signal handler, or that its allocator may
 * make, find the real function now rather than at their first call (dlsym is neither
 * async-signal-safe nor allocation-free). */
void resolve_copies_early(void) {
    RESOLVE(close); RESOLVE(write); RESOLVE(pwrite); RESOLVE(pwrite64); RESOLVE(writev);
    RESOLVE(pwritev); RESOLVE(pwritev64); RESOLVE(pwritev2); RESOLVE(ftruncate);
    RESOLVE(ftruncate64); RESOLVE(fallocate); RESOLVE(fallocate64); RESOLVE(sendfile);
    RESOLVE(sendfile64); RESOLVE(copy_file_range);
}
