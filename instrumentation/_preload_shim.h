/*
 * What the parts of clew's LD_PRELOAD library share: _preload_shim.c (the record files, the
 * open, rename and unlink wrappers, start-up) and _preload_copies.c (whole copies).
 * Shared symbols are hidden: the library exports only the functions it wraps.
 */
#ifndef CLEW_PRELOAD_SHIM_H
#define CLEW_PRELOAD_SHIM_H

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>

#define HIDDEN __attribute__((visibility("hidden")))

enum { OP_READ = 'R', OP_WRITE = 'W', OP_RENAME = 'N', OP_DELETE = 'D', OP_COPY = 'C' };

/* Set once the library has its record file: nothing is noted before, or in a process (an
 * instrumented Python) that records its own I/O. */
extern HIDDEN int enabled;

/* Note one record: `st` the file's identity, `path` (and `second`) its names. */
HIDDEN void append(int operation, const struct stat *st, const char *path, const char *second);

/* _preload_copies.c: `fd` was just opened with `flags`. */
HIDDEN void copy_reset(int fd, int flags);
/* _preload_copies.c: its wrappers' real functions, looked up at load. */
HIDDEN void resolve_copies_early(void);

static inline int writes(int flags) { return (flags & O_ACCMODE) != O_RDONLY; }

/* The real function a wrapper calls: the next definition after this library's. */
#define REAL(name) static __typeof__(name) *real_##name
#define RESOLVE(name)                                                                         \
    ({                                                                                         \
        if (real_##name == NULL)                                                               \
            real_##name = dlsym(RTLD_NEXT, #name);                                             \
        real_##name;                                                                           \
    })

#endif
