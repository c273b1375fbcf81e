/* Run-time redirection of loaded objects' calls to libc (_preload_got.c). */
#ifndef CLEW_GOT_PATCH_H
#define CLEW_GOT_PATCH_H
#include <stddef.h>

/* Internal to the library: it exports only the functions it wraps and clew_native_start. */
#pragma GCC visibility push(hidden)

struct got_patch {
    const char *name; /* the imported function, e.g. "open64" */
    void *wrapper;    /* what the object calls instead */
};

/* Whether this platform's relocations are understood (x86-64, aarch64). */
int got_patch_supported(void);

/* Redirect `table`'s functions in every loaded object except this library, the main program
 * and those `skip` accepts (by path); remembered for got_patch_loaded(). */
void got_patch_install(const struct got_patch *table, size_t count,
                       int (*skip)(const char *name));

/* Patch the objects loaded since the last call. */
void got_patch_loaded(void);

#pragma GCC visibility pop

#endif
