/*
 * Redirects the calls that loaded shared objects make to libc's file functions, inside the
 * running process, without LD_PRELOAD: each object calls an imported function through its
 * global offset table (GOT), an array of addresses the dynamic loader filled in; rewriting the
 * entries of a name makes that object call a wrapper instead. memray installs its allocator
 * hooks this way. Used by _preload_shim.c when clew loads it into its own Python process.
 *
 * Only relocations that name a symbol are looked at (JUMP_SLOT for calls through the PLT,
 * GLOB_DAT for a function's address taken). Objects loaded later are patched by a later
 * got_patch_loaded(): dlopen itself is not wrapped, as glibc resolves a bare library name
 * with the calling object's RUNPATH, which a wrapper would replace with its own.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "_preload_got.h"

#if defined(__x86_64__)
#define JUMP_SLOT R_X86_64_JUMP_SLOT
#define GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define JUMP_SLOT R_AARCH64_JUMP_SLOT
#define GLOB_DAT R_AARCH64_GLOB_DAT
#endif

#if defined(JUMP_SLOT) && __ELF_NATIVE_CLASS == 64
#define PATCHING_SUPPORTED 1
typedef Elf64_Rela Rela;
typedef Elf64_Sym Sym;
#define RELA_SYMBOL(info) ELF64_R_SYM(info)
#define RELA_TYPE(info) ELF64_R_TYPE(info)
#endif

#define MAX_OBJECTS 4096

static const struct got_patch *patches;
static size_t patch_count;
static int (*skip_object)(const char *name);
static uintptr_t patched_bases[MAX_OBJECTS]; /* objects done: each is patched once */
static size_t patched_count;
static uintptr_t own_base;
/* The first two characters of the patched names, one bit for each pair: most of an object's
 * imports (thousands in libcrypto; C++ names, "_Z...", in libarrow) are ruled out by one
 * look-up instead of a strcmp with every patched name. */
static unsigned char first_pairs[256 * 256 / 8];

static size_t pair_of(const char *name) {
    return (size_t)(unsigned char)name[0] << 8 | (name[0] ? (unsigned char)name[1] : 0);
}

#ifdef PATCHING_SUPPORTED

/* The loader relocates most .dynamic addresses in place; the vdso and a few others keep
 * them relative to the object's base. */
static uintptr_t address(uintptr_t base, ElfW(Addr) value) {
    return value < base ? base + value : value;
}

/* Writes `target` into the GOT entry `slot`. With RELRO the loader made the entry's page
 * read-only: it is made writable for the write and read-only again after. The loader
 * protects only the whole pages of the RELRO segment (its start rounded down, its end
 * rounded down too), so a slot in its last, partial page is in a page left writable, which
 * must stay so (it holds .data too). */
static void write_slot(void **slot, void *target, const struct dl_phdr_info *info) {
    if (*slot == target)
        return;
    uintptr_t page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t page = (uintptr_t)slot & ~(page_size - 1);
    int protected = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[i];
        uintptr_t start = (info->dlpi_addr + header->p_vaddr) & ~(page_size - 1);
        uintptr_t end = (info->dlpi_addr + header->p_vaddr + header->p_memsz) & ~(page_size - 1);
        if (header->p_type == PT_GNU_RELRO && page >= start && page < end)
            protected = 1;
    }
    if (protected && mprotect((void *)page, page_size, PROT_READ | PROT_WRITE) != 0)
        return;
    __atomic_store_n(slot, target, __ATOMIC_RELEASE);
    if (protected)
        mprotect((void *)page, page_size, PROT_READ);
}

static void patch_table(const struct dl_phdr_info *info, const Rela *table, size_t bytes,
                        const Sym *symbols, const char *strings) {
    for (size_t i = 0; i < bytes / sizeof *table; i++) {
        unsigned long type = RELA_TYPE(table[i].r_info);
        if (type != JUMP_SLOT && type != GLOB_DAT)
            continue;
        const char *name = strings + symbols[RELA_SYMBOL(table[i].r_info)].st_name;
        size_t pair = pair_of(name);
        if (!(first_pairs[pair / 8] & 1u << pair % 8))
            continue;
        void **slot = (void **)(info->dlpi_addr + table[i].r_offset);
        for (size_t p = 0; p < patch_count; p++)
            if (strcmp(name, patches[p].name) == 0) {
                write_slot(slot, patches[p].wrapper, info);
                break;
            }
    }
}

static unsigned long long unloads_seen; /* objects unloaded so far, as the loader counts */
static unsigned long long loads_seen;   /* objects loaded so far when last looked at */

/* One pass over the loaded objects: the position of the object at hand. */
struct pass {
    size_t index;
};

/* Whether the object at `base`, the pass's `index`th, was patched before; if not, it is noted
 * as patched. The loader lists objects in load order, so an object seen before is almost
 * always at the same position as then: one comparison, not a scan of every base (a pass
 * after each of a few hundred extension imports would otherwise compare each object with
 * each). */
static int seen_before(uintptr_t base, size_t index) {
    if (index < patched_count && patched_bases[index] == base)
        return 1;
    for (size_t i = 0; i < patched_count; i++)
        if (patched_bases[i] == base)
            return 1;
    if (patched_count < MAX_OBJECTS)
        patched_bases[patched_count++] = base;
    return 0;
}

static int patch_object(struct dl_phdr_info *info, size_t size, void *data) {
    struct pass *pass = data;
    size_t index = pass->index++;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    /* The loader's counters are the same in every object's info, and its lock is held for
     * the whole pass. An object unloaded since: another may now sit at its base, so every
     * base is looked at again (patching a slot twice writes nothing). Nothing loaded or
     * unloaded since the last pass: nothing to do, the pass stops here. */
    if (index == 0 && size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        if (info->dlpi_subs != unloads_seen) {
            unloads_seen = info->dlpi_subs;
            patched_count = 0;
        } else if (info->dlpi_adds == loads_seen) {
            return 1;
        }
        loads_seen = info->dlpi_adds;
    }
    /* Every object gets its place in patched_bases, clew's own and the main program (which
     * has no name) too, which are then left alone. */
    if (seen_before(info->dlpi_addr, index) || info->dlpi_addr == own_base || name[0] == 0 ||
        skip_object(name))
        return 0;
    const ElfW(Dyn) *dynamic = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dynamic = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (dynamic == NULL)
        return 0;
    const Rela *jump = NULL, *rela = NULL;
    size_t jump_bytes = 0, rela_bytes = 0, relative = 0;
    const Sym *symbols = NULL;
    const char *strings = NULL;
    int uses_rela = 1;
    for (const ElfW(Dyn) *entry = dynamic; entry->d_tag != DT_NULL; entry++) {
        switch (entry->d_tag) {
        case DT_JMPREL: jump = (const Rela *)address(info->dlpi_addr, entry->d_un.d_ptr); break;
        case DT_PLTRELSZ: jump_bytes = entry->d_un.d_val; break;
        case DT_RELA: rela = (const Rela *)address(info->dlpi_addr, entry->d_un.d_ptr); break;
        case DT_RELASZ: rela_bytes = entry->d_un.d_val; break;
        case DT_RELACOUNT: relative = entry->d_un.d_val; break;
        case DT_SYMTAB: symbols = (const Sym *)address(info->dlpi_addr, entry->d_un.d_ptr); break;
        case DT_STRTAB: strings = (const char *)address(info->dlpi_addr, entry->d_un.d_ptr); break;
        case DT_PLTREL: uses_rela = entry->d_un.d_val == DT_RELA; break;
        }
    }
    if (symbols == NULL || strings == NULL || !uses_rela)
        return 0;
    if (jump)
        patch_table(info, jump, jump_bytes, symbols, strings);
    /* DT_RELA begins with the object's RELATIVE relocations, which name no symbol: most of
     * a large C++ library's (libarrow's), skipped without being read. */
    if (rela && relative <= rela_bytes / sizeof *rela)
        patch_table(info, rela + relative, rela_bytes - relative * sizeof *rela, symbols, strings);
    return 0;
}

#endif

int got_patch_supported(void) {
#ifdef PATCHING_SUPPORTED
    return 1;
#else
    return 0;
#endif
}

void got_patch_install(const struct got_patch *table, size_t count,
                       int (*skip)(const char *name)) {
    Dl_info self;
    if (dladdr((void *)got_patch_install, &self) != 0)
        own_base = (uintptr_t)self.dli_fbase;
    patches = table, patch_count = count, skip_object = skip;
    for (size_t p = 0; p < count; p++) {
        size_t pair = pair_of(table[p].name);
        first_pairs[pair / 8] |= (unsigned char)(1u << pair % 8);
    }
    got_patch_loaded();
}

void got_patch_loaded(void) {
#ifdef PATCHING_SUPPORTED
    struct pass pass = {0};
    if (patches != NULL)
        dl_iterate_phdr(patch_object, &pass);
#endif
}
