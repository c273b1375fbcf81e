/*
 * A listxattr answer read in C, shared by the flush's stamp check (_read_stamps.c) and the
 * C audit hook's (_open_hook_read.c).
 */
#ifndef CLEW_XATTR_NAMES_H
#define CLEW_XATTR_NAMES_H

#include <string.h>
#include <sys/types.h>

/* Whether listxattr's list of names (NUL-terminated, `size` bytes) holds `name`. */
static inline int lists_name(const char *names, ssize_t size, const char *name, size_t length) {
    const char *end = names + size;
    for (const char *at = names; at < end; at += strlen(at) + 1)
        if ((size_t)(end - at) > length && memcmp(at, name, length + 1) == 0)
            return 1;
    return 0;
}

#endif
