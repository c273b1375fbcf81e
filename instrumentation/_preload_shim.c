/*
 * clew's interposition library: loaded with LD_PRELOAD into the programs a clew-instrumented
 * Python process starts that are not Python (cp, tar, a shell pipeline, a compiled tool), it
 * notes which files they read, wrote, renamed and removed, for clew to turn into spans under
 * the program's exec span (instrumentation/_preload.py reads what this writes).
 *
 * Plain C against libc only, no Python API: the library is loaded into any program.
 *
 * Each wrapped call goes to the real function (dlsym(RTLD_NEXT)) first, and only a call that
 * succeeded is noted, so what the program sees (return value, errno, signals) is unchanged.
 * Records go into a file of its own per process image, mapped MAP_SHARED: appending is a
 * memcpy, nothing is buffered in the process, so a child killed by SIGKILL loses no record
 * (the kernel's page cache holds them), and there is nothing to flush at exit.
 *
 * clew also loads it into its own Python process (CLEW_NATIVE, instrumentation/native.py):
 * there nothing is preloaded; clew_native_start() redirects the loaded shared objects' calls
 * to these wrappers (_preload_got.c), but not the interpreter's, whose opens the audit hook sees.
 *
 * Record layout (native byte order, each record 8-byte aligned):
 *   u32 length of the whole record, u8 operation, u8 pad[3],
 *   u64 st_dev, u64 st_ino, i64 st_size, i64 st_mtime in ns, path NUL [second path NUL]
 * The operation byte is stored last: a reader stops at the first record whose operation is 0,
 * which is where the file's unused (zero) part begins, or a record a dying process left half
 * written.
 *
 * A copy record ('C') says that a file was, when the program closed it, a whole copy of
 * another: its key is the copy's, its one name the source's key as text ("dev ino size mtime").
 * Whole copies are followed in _preload_copies.c.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "_preload_shim.h"
#include "_preload_got.h"

#define CHUNK_BYTES (8u << 20) /* one record file's size: sparse, only used pages cost */
#define HEADER_BYTES 40u
#define DIR_VARIABLE "CLEW_PRELOAD_DIR"
#define CLEW_HOME_VARIABLE "CLEW_HOME"
#define AUTO_INSTRUMENTATION "opentelemetry/instrumentation/auto_instrumentation"


int enabled;
static char directory[PATH_MAX];
static char home[PATH_MAX];
static size_t home_length;
static char *chunk;                /* the current record file, mapped */
static size_t used;                /* bytes of `chunk` reserved so far (atomic) */
static pthread_mutex_t switching = PTHREAD_MUTEX_INITIALIZER;
static unsigned files_made;
static int forked; /* a forked child without a record file yet: made at its first record */

/* Paths no record is made for: the kernel's and the devices' files, the loader's and libc's
 * libraries and data, and clew's own home. The Python side applies clew's other exclusions. */
static const char *const excluded[] = {
    "/proc/", "/sys/", "/dev/", "/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/libexec/",
    "/usr/share/locale/", "/usr/share/zoneinfo/", "/usr/share/i18n/", "/etc/ld.so.", "/etc/localtime",
    "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/usr/share/terminfo/", "/etc/terminfo/",
};

/* -- the real functions ------------------------------------------------------------------ */

/* glibc's _FORTIFY_SOURCE entry points, which its headers do not declare. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

REAL(open); REAL(open64); REAL(openat); REAL(openat64); REAL(creat); REAL(creat64);
REAL(__open_2); REAL(__open64_2); REAL(__openat_2); REAL(__openat64_2);
REAL(fopen); REAL(fopen64); REAL(freopen); REAL(freopen64);
REAL(rename); REAL(renameat); REAL(renameat2); REAL(unlink); REAL(unlinkat);

/* -- record files -------------------------------------------------------------------------- */

static int raw_open(const char *path, int flags, mode_t mode) {
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

/* A new record file for this process image: <directory>/<pid>-<ns>-<n>.rec. */
static char *new_chunk(void) {
    char path[PATH_MAX];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int length = snprintf(path, sizeof path, "%s/%d-%lld%09ld-%u.rec", directory, (int)getpid(),
                          (long long)now.tv_sec, now.tv_nsec, files_made++);
    if (length <= 0 || (size_t)length >= sizeof path)
        return NULL;
    int fd = raw_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    char *mapped = NULL;
    if (ftruncate(fd, CHUNK_BYTES) == 0) {
        mapped = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (mapped == MAP_FAILED)
            mapped = NULL;
    }
    syscall(SYS_close, fd); /* not through the close wrapper: no copy of the program's */
    return mapped;
}

/* Room for `length` bytes, reserved without a lock (a signal handler may open a file while
 * the interrupted code is appending); NULL when no record file can be had. */
static char *reserve(size_t length) {
    for (int attempt = 0; attempt < 2; attempt++) {
        char *current = __atomic_load_n(&chunk, __ATOMIC_ACQUIRE);
        if (current == NULL) {
            if (!__atomic_load_n(&forked, __ATOMIC_ACQUIRE) || pthread_mutex_trylock(&switching) != 0)
                return NULL;
            if (__atomic_load_n(&chunk, __ATOMIC_ACQUIRE) == NULL) {
                __atomic_store_n(&chunk, new_chunk(), __ATOMIC_RELEASE);
                __atomic_store_n(&forked, 0, __ATOMIC_RELEASE);
            }
            pthread_mutex_unlock(&switching);
            continue;
        }
        size_t at = __atomic_fetch_add(&used, length, __ATOMIC_ACQ_REL);
        if (at + length <= CHUNK_BYTES)
            return current + at;
        /* Full: the first to get here starts the next file; the full one stays mapped, as
         * another thread may still be writing into its reserved part. */
        if (pthread_mutex_trylock(&switching) != 0)
            return NULL;
        if (__atomic_load_n(&chunk, __ATOMIC_ACQUIRE) == current) {
            char *fresh = new_chunk();
            __atomic_store_n(&used, 0, __ATOMIC_RELEASE);
            __atomic_store_n(&chunk, fresh, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&switching);
    }
    return NULL;
}

void append(int operation, const struct stat *st, const char *path, const char *second) {
    int saved = errno; /* a new record file's system calls must not show */
    size_t first_length = strlen(path) + 1;
    size_t second_length = second ? strlen(second) + 1 : 0;
    size_t length = (HEADER_BYTES + first_length + second_length + 7) & ~(size_t)7;
    char *at = reserve(length);
    errno = saved;
    if (at == NULL)
        return;
    uint32_t length32 = (uint32_t)length;
    uint64_t fields[4] = {
        (uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
        (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec,
    };
    memcpy(at, &length32, 4);
    memcpy(at + 8, fields, sizeof fields);
    memcpy(at + HEADER_BYTES, path, first_length);
    if (second)
        memcpy(at + HEADER_BYTES + first_length, second, second_length);
    __atomic_store_n((unsigned char *)at + 4, (unsigned char)operation, __ATOMIC_RELEASE);
}

/* -- paths --------------------------------------------------------------------------------- */

/* In clew's own process: the prefixes clew's Python side excludes too (the interpreter's
 * trees, site-packages, clew's home), so that what imports open costs no record. */
#define MAX_EXTRA 64
static char *extra_excluded[MAX_EXTRA];
static size_t extra_count;

static int is_excluded(const char *path) {
    for (size_t i = 0; i < sizeof excluded / sizeof *excluded; i++)
        if (strncmp(path, excluded[i], strlen(excluded[i])) == 0)
            return 1;
    for (size_t i = 0; i < extra_count; i++)
        if (strncmp(path, extra_excluded[i], strlen(extra_excluded[i])) == 0)
            return 1;
    return home_length && strncmp(path, home, home_length) == 0 &&
           (path[home_length] == '/' || path[home_length] == 0);
}

/* `path` made absolute into `out` (not normalised: the Python side does that); 0 when it
 * cannot be, or is excluded. */
static int absolute(int dirfd, const char *path, char *out) {
    if (path == NULL)
        return 0;
    if (path[0] == '/') {
        if (strlen(path) >= PATH_MAX)
            return 0;
        strcpy(out, path);
    } else {
        size_t length;
        if (dirfd == AT_FDCWD) {
            if (getcwd(out, PATH_MAX) == NULL)
                return 0;
            length = strlen(out);
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t got = readlink(link, out, PATH_MAX - 1);
            if (got <= 0)
                return 0;
            length = (size_t)got;
            out[length] = 0;
        }
        if (length + 1 + strlen(path) >= PATH_MAX)
            return 0;
        out[length] = '/';
        strcpy(out + length + 1, path);
    }
    return !is_excluded(out);
}

/* -- what is noted ------------------------------------------------------------------------- */


/* In clew's own process a file version read (or written) again adds nothing to its record
 * (the Python side keeps one per version, uncounted): a small table of the versions noted
 * last spares those notes, which cost the Python side ~6 us each to parse and drop. A torn
 * entry (two threads at once) can only cost a note, never skip a new version: all its
 * fields must match. Not in a child under LD_PRELOAD, whose records count repeated opens. */
#define RECENT 256
static struct recent_note {
    uint64_t dev, ino, size, mtime, operation;
} recent[RECENT];
static int in_process;

static int noted_recently(int operation, const struct stat *st) {
    if (!in_process)
        return 0;
    struct recent_note note = {
        (uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
        (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec,
        (uint64_t)operation,
    };
    struct recent_note *entry = &recent[(note.ino * 31 + note.dev + note.operation) % RECENT];
    if (memcmp(entry, &note, sizeof note) == 0)
        return 1;
    *entry = note;
    return 0;
}

/* A successful open of `path` (relative to `dirfd`) that gave `fd`. */
static void opened(int dirfd, const char *path, int flags, int fd) {
    /* O_PATH opens no content; O_TMPFILE names a directory, its file has no name yet. */
    if (!enabled || fd < 0 || (flags & O_PATH) || (flags & O_TMPFILE) == O_TMPFILE)
        return;
    int saved = errno;
    char full[PATH_MAX];
    struct stat st;
    copy_reset(fd, flags);
    if (absolute(dirfd, path, full) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        /* Opened read-write without truncation: the existing content is read too. */
        if ((!writes(flags) || ((flags & O_ACCMODE) == O_RDWR && !(flags & O_TRUNC))) &&
            !noted_recently(OP_READ, &st))
            append(OP_READ, &st, full, NULL);
        if (writes(flags) && !noted_recently(OP_WRITE, &st))
            append(OP_WRITE, &st, full, NULL);
    }
    errno = saved;
}

static int mode_flags(const char *mode) {
    int plus = mode && strchr(mode, '+') != NULL;
    switch (mode ? mode[0] : 'r') {
    case 'w': return (plus ? O_RDWR : O_WRONLY) | O_TRUNC;
    case 'a': return plus ? O_RDWR | O_APPEND : O_WRONLY | O_APPEND;
    default: return plus ? O_RDWR : O_RDONLY;
    }
}

static void stream_opened(const char *path, const char *mode, FILE *stream) {
    if (enabled && stream != NULL)
        opened(AT_FDCWD, path, mode_flags(mode), fileno(stream));
}

static void renamed(int from_dir, const char *from, int to_dir, const char *to, int result) {
    if (!enabled || result != 0)
        return;
    int saved = errno;
    char source[PATH_MAX], destination[PATH_MAX];
    struct stat st;
    if (absolute(to_dir, to, destination) && lstat(destination, &st) == 0 && S_ISREG(st.st_mode)) {
        if (!absolute(from_dir, from, source))
            source[0] = 0; /* from an excluded place: recorded as a write of the destination */
        append(OP_RENAME, &st, destination, source);
    }
    errno = saved;
}

/* Before an unlink: the key of the file about to go, for the Python side to find its digest;
 * 0 when nothing is to be noted. */
static int before_unlink(int dirfd, const char *path, int flags, char *full, struct stat *st) {
    if (!enabled || (flags & AT_REMOVEDIR))
        return 0;
    int saved = errno;
    int wanted = absolute(dirfd, path, full) && lstat(full, st) == 0 && S_ISREG(st->st_mode);
    errno = saved;
    return wanted;
}

/* -- the wrappers ---------------------------------------------------------------------------- */

static mode_t mode_of(int flags, va_list arguments) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(arguments, mode_t) : 0;
}

#define OPEN_WRAPPER(name)                                                                    \
    int name(const char *path, int flags, ...) {                                              \
        va_list arguments;                                                                     \
        va_start(arguments, flags);                                                            \
        mode_t mode = mode_of(flags, arguments);                                               \
        va_end(arguments);                                                                     \
        int fd = RESOLVE(name)(path, flags, mode);                                             \
        opened(AT_FDCWD, path, flags, fd);                                                     \
        return fd;                                                                             \
    }
OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

#define OPENAT_WRAPPER(name)                                                                  \
    int name(int dirfd, const char *path, int flags, ...) {                                   \
        va_list arguments;                                                                     \
        va_start(arguments, flags);                                                            \
        mode_t mode = mode_of(flags, arguments);                                               \
        va_end(arguments);                                                                     \
        int fd = RESOLVE(name)(dirfd, path, flags, mode);                                      \
        opened(dirfd, path, flags, fd);                                                        \
        return fd;                                                                             \
    }
OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)

/* The _FORTIFY_SOURCE entry points (tar calls __openat_2). */
int __open_2(const char *path, int flags) {
    int fd = RESOLVE(__open_2)(path, flags);
    opened(AT_FDCWD, path, flags, fd);
    return fd;
}
int __open64_2(const char *path, int flags) {
    int fd = RESOLVE(__open64_2)(path, flags);
    opened(AT_FDCWD, path, flags, fd);
    return fd;
}
int __openat_2(int dirfd, const char *path, int flags) {
    int fd = RESOLVE(__openat_2)(dirfd, path, flags);
    opened(dirfd, path, flags, fd);
    return fd;
}
int __openat64_2(int dirfd, const char *path, int flags) {
    int fd = RESOLVE(__openat64_2)(dirfd, path, flags);
    opened(dirfd, path, flags, fd);
    return fd;
}

int creat(const char *path, mode_t mode) {
    int fd = RESOLVE(creat)(path, mode);
    opened(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, fd);
    return fd;
}
int creat64(const char *path, mode_t mode) {
    int fd = RESOLVE(creat64)(path, mode);
    opened(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, fd);
    return fd;
}

FILE *fopen(const char *path, const char *mode) {
    FILE *stream = RESOLVE(fopen)(path, mode);
    stream_opened(path, mode, stream);
    return stream;
}
FILE *fopen64(const char *path, const char *mode) {
    FILE *stream = RESOLVE(fopen64)(path, mode);
    stream_opened(path, mode, stream);
    return stream;
}
FILE *freopen(const char *path, const char *mode, FILE *old) {
    FILE *stream = RESOLVE(freopen)(path, mode, old);
    if (path != NULL)
        stream_opened(path, mode, stream);
    return stream;
}
FILE *freopen64(const char *path, const char *mode, FILE *old) {
    FILE *stream = RESOLVE(freopen64)(path, mode, old);
    if (path != NULL)
        stream_opened(path, mode, stream);
    return stream;
}

int rename(const char *from, const char *to) {
    int result = RESOLVE(rename)(from, to);
    renamed(AT_FDCWD, from, AT_FDCWD, to, result);
    return result;
}
int renameat(int from_dir, const char *from, int to_dir, const char *to) {
    int result = RESOLVE(renameat)(from_dir, from, to_dir, to);
    renamed(from_dir, from, to_dir, to, result);
    return result;
}
int renameat2(int from_dir, const char *from, int to_dir, const char *to, unsigned flags) {
    int result = RESOLVE(renameat2)(from_dir, from, to_dir, to, flags);
    renamed(from_dir, from, to_dir, to, result);
    return result;
}

int unlink(const char *path) {
    char full[PATH_MAX];
    struct stat st;
    int wanted = before_unlink(AT_FDCWD, path, 0, full, &st);
    int result = RESOLVE(unlink)(path);
    if (wanted && result == 0)
        append(OP_DELETE, &st, full, NULL);
    return result;
}
int unlinkat(int dirfd, const char *path, int flags) {
    char full[PATH_MAX];
    struct stat st;
    int wanted = before_unlink(dirfd, path, flags, full, &st);
    int result = RESOLVE(unlinkat)(dirfd, path, flags);
    if (wanted && result == 0)
        append(OP_DELETE, &st, full, NULL);
    return result;
}

/* -- start-up and fork ---------------------------------------------------------------------- */

/* A Python interpreter that clew instruments (its PYTHONPATH has OpenTelemetry's
 * sitecustomize) records its own I/O: noting it here too would record it twice. */
static int is_instrumented_python(void) {
    const char *python_path = getenv("PYTHONPATH");
    if (python_path == NULL || strstr(python_path, AUTO_INSTRUMENTATION) == NULL)
        return 0;
    char exe[PATH_MAX];
    ssize_t got = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (got <= 0)
        return 0;
    exe[got] = 0;
    const char *name = strrchr(exe, '/');
    name = name ? name + 1 : exe;
    return strncmp(name, "python", 6) == 0 || strncmp(name, "pypy", 4) == 0;
}

/* A forked child notes into files of its own: its parent's mapping is shared with it. The
 * file is made at its first record: a shell forks for every pipeline element and subshell,
 * and most of those children exec at once (the new image makes its own) or open nothing. */
static void after_fork_in_child(void) {
    if (!enabled)
        return;
    files_made = 0;
    memset(recent, 0, sizeof recent); /* the child's recorder has none of the parent's records */
    __atomic_store_n(&used, 0, __ATOMIC_RELEASE);
    pthread_mutex_init(&switching, NULL);
    __atomic_store_n(&chunk, NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&forked, 1, __ATOMIC_RELEASE);
}

static void configure(void) {
    const char *configured = getenv(DIR_VARIABLE);
    if (configured == NULL || configured[0] != '/' || strlen(configured) >= sizeof directory)
        return;
    if (is_instrumented_python())
        return;
    strcpy(directory, configured);
    const char *clew_home = getenv(CLEW_HOME_VARIABLE);
    if (clew_home != NULL && clew_home[0] == '/' && strlen(clew_home) < sizeof home) {
        strcpy(home, clew_home);
        home_length = strlen(home);
        while (home_length > 1 && home[home_length - 1] == '/')
            home[--home_length] = 0;
    }
    /* Made now, even if the program opens nothing: its presence tells clew the library was
     * loaded (a statically linked program never loads it and stays opaque). */
    chunk = new_chunk();
    if (chunk == NULL)
        return;
    pthread_atfork(NULL, NULL, after_fork_in_child);
    enabled = 1;
}

/* -- inside clew's own Python process ----------------------------------------------------- */

/* The wrappers' own addresses: `open` itself would name libc's (it comes first in the
 * process's global scope, and this library is not preloaded here). */
#define LOCAL(name) extern __typeof__(name) local_##name \
    __attribute__((copy(name), visibility("hidden"), alias(#name)));
LOCAL(open) LOCAL(open64) LOCAL(openat) LOCAL(openat64) LOCAL(creat) LOCAL(creat64)
LOCAL(__open_2) LOCAL(__open64_2) LOCAL(__openat_2) LOCAL(__openat64_2)
LOCAL(fopen) LOCAL(fopen64) LOCAL(freopen) LOCAL(freopen64)
LOCAL(rename) LOCAL(renameat) LOCAL(renameat2) LOCAL(unlink) LOCAL(unlinkat)

#define PATCH(name) {#name, (void *)local_##name}
static const struct got_patch wrappers[] = {
    PATCH(open), PATCH(open64), PATCH(openat), PATCH(openat64), PATCH(creat), PATCH(creat64),
    PATCH(__open_2), PATCH(__open64_2), PATCH(__openat_2), PATCH(__openat64_2),
    PATCH(fopen), PATCH(fopen64), PATCH(freopen), PATCH(freopen64),
    PATCH(rename), PATCH(renameat), PATCH(renameat2), PATCH(unlink), PATCH(unlinkat),
};

/* Objects whose calls are left alone: libc and the loader (their calls are internal anyway),
 * the interpreter, whose opens Python's audit hook reports (once is enough), and that hook's
 * C part (_open_hook.c), whose opens are clew's own hashing. */
static int left_alone(const char *name) {
    static const char *const names[] = {"/libc.so", "/ld-linux", "/ld-musl", "linux-vdso",
                                        "/libpython", "/_open_hook."};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strstr(name, names[i]) != NULL)
            return 1;
    return 0;
}

/* Called by clew's Python side (ctypes): note native opens into record files in `dir`,
 * skipping paths under `prefixes`. Returns 1 when the calls are redirected, 0 when not
 * (an unsupported platform, no record file), -1 when this library was preloaded into the
 * process: its wrappers then come first for every object, the interpreter's too, whose
 * opens are the audit hook's. Later calls patch newly loaded objects only. */
int clew_native_start(const char *dir, const char *const *prefixes, int count) {
    if (!enabled && dlsym(RTLD_DEFAULT, "open") == (void *)local_open)
        return -1;
    int saved = errno;
    int started = 0;
    if (enabled) {
        got_patch_loaded();
        started = 1;
    } else if (got_patch_supported() && dir != NULL && strlen(dir) < sizeof directory) {
        strcpy(directory, dir);
        for (int i = 0; i < count && extra_count < MAX_EXTRA; i++)
            if ((extra_excluded[extra_count] = strdup(prefixes[i])) != NULL)
                extra_count++;
        chunk = new_chunk();
        if (chunk != NULL) {
            pthread_atfork(NULL, NULL, after_fork_in_child);
            in_process = 1;
            enabled = 1;
            got_patch_install(wrappers, sizeof wrappers / sizeof *wrappers, left_alone);
            started = 1;
        }
    }
    errno = saved;
    return started;
}

__attribute__((constructor)) static void start(void) {
    int saved = errno;
    resolve_copies_early();
    configure();
    errno = saved;
}
