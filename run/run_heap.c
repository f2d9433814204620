/*
 * run/run_heap.c - libkeel-run.so's heap interposer: the program's malloc family is served by
 * keel's program heap with its devel checks (src/heap_debug.c: poison, red zones, quarantine,
 * double and invalid free, guard-page sampling), each block's sites the program's own, and a
 * leak report at exit of the blocks nothing points to any more (docs/keel-run.md).
 *
 * Three kinds of pointer reach free and realloc:
 *  - keel's blocks (keel__blk_is: the header before it says so);
 *  - the C library's: blocks allocated before the heap was ready (other libraries' constructors,
 *    ld.so), and every allocation made while keel's own code runs (the recursion guard: keel's
 *    structures, libdw's) - all from glibc's allocator (__libc_malloc...), recognised at free by
 *    glibc's chunk header and given back to it;
 *  - anything else (an interior or stray pointer): reported as an invalid free, never freed.
 *
 * A signal handler may call the malloc family at any instruction of keel's own code: such a
 * call finds the recursion guard set and is served by glibc, never by keel's heap, whose locks
 * its thread may hold; while the thread is inside glibc's allocator itself (in_glibc), from a
 * small reserve of keel-run's own (lock-free, never given back).  A free of one of keel's
 * blocks made then is deferred to the next call that is not (its shard's lock may be held).
 *
 * `--heap=off` (KEEL_RUN_HEAP=off): every call goes straight to glibc's allocator.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "heap.h"
#include "run.h"

/* glibc's allocator itself (exported by libc.so.6 since 2.2.5): no dlsym needed, even early. */
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);

/* Set while this thread is inside glibc's allocator (a signal handler's allocation then must not
 * go there: glibc's arena lock may be held by the code it interrupted). */
static __thread int in_glibc __attribute__((tls_model("initial-exec")));

static void *libc_malloc(size_t size)
{
    in_glibc++;
    void *p = __libc_malloc(size);
    in_glibc--;
    return p;
}

static void libc_free(void *p)
{
    in_glibc++;
    __libc_free(p);
    in_glibc--;
}

static void *libc_calloc(size_t n, size_t size)
{
    in_glibc++;
    void *p = __libc_calloc(n, size);
    in_glibc--;
    return p;
}

static void *libc_realloc(void *p, size_t size)
{
    in_glibc++;
    void *q = __libc_realloc(p, size);
    in_glibc--;
    return q;
}

static void *libc_memalign(size_t align, size_t size)
{
    in_glibc++;
    void *p = __libc_memalign(align, size);
    in_glibc--;
    return p;
}

#define RA() __builtin_return_address(0)

/* 1 once keel's heap serves the program (run_start: after the constructor, unless --heap=off). */
static int heap_on;
static keel__heap *program;

/* The address ranges of libc.so and ld.so: a call from there is not the program's site. */
typedef struct range {
    uintptr_t lo, hi;
} range;
static range system_code[4];
static unsigned nsystem;
static range linker_code[2]; /* ld.so's alone */
static unsigned nlinker;
static range symbolizer_code[4]; /* libdw's and libelf's */
static unsigned nsymbolizer;

/* The preload's own writable data: not a root of the leak scan (keel's structures). */
static range own_data[4];
static unsigned nown;

static bool in_ranges(const range *r, unsigned n, uintptr_t a)
{
    for (unsigned i = 0; i < n; i++)
        if (a >= r[i].lo && a < r[i].hi)
            return true;
    return false;
}

static int note_object(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    (void)ctx;
    const char *name = info->dlpi_name != NULL ? info->dlpi_name : "";
    const char *slash = strrchr(name, '/');
    const char *base = slash != NULL ? slash + 1 : name;
    bool system = strncmp(base, "libc.so", 7) == 0 || strncmp(base, "ld-linux", 8) == 0;
    bool own = false;
    Dl_info me;
    if (dladdr((const void *)&heap_on, &me) != 0 && me.dli_fbase != NULL)
        own = (uintptr_t)me.dli_fbase == (uintptr_t)info->dlpi_addr;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        range r = {info->dlpi_addr + ph->p_vaddr, info->dlpi_addr + ph->p_vaddr + ph->p_memsz};
        if (system && (ph->p_flags & PF_X) != 0 && nsystem < 4)
            system_code[nsystem++] = r;
        if (base[0] == 'l' && base[1] == 'd' && (ph->p_flags & PF_X) != 0 && nlinker < 2)
            linker_code[nlinker++] = r;
        if ((strncmp(base, "libdw", 5) == 0 || strncmp(base, "libelf", 6) == 0) &&
            (ph->p_flags & PF_X) != 0 && nsymbolizer < 4)
            symbolizer_code[nsymbolizer++] = r;
        if (own && (ph->p_flags & PF_W) != 0 && nown < 4)
            own_data[nown++] = r;
    }
    return 0;
}

/* The address a as a pointer (a word read by the leak scan, a mapping's start). */
static void *as_ptr(uintptr_t a)
{
    void *p = NULL;
    memcpy(&p, &a, sizeof(p));
    return p;
}

/* ---- the program's site ----------------------------------------------------------------------- */

/* The site of the dynamic linker's blocks (the DTVs of threads): roots of the leak scan. */
static const keel__lock_site linker_site = {"(dynamic linker)", "(dynamic linker)", 0};

/*
 * Who made this call, whose return address is ra: the program's code (its pc, the site's), keel's
 * own (NULL: its constructors and checks allocate from glibc, as the guard's calls do), or the
 * dynamic linker (&linker_site's pc, 1).  A call from libc or ld.so is the first frame of the
 * stack outside them and keel's interposer (strdup, fopen, pthread_create: an unwind per call).
 */
static const void *origin(const void *ra)
{
    if (KEEL_UNLIKELY(keel__frame_in_keel(ra)))
        return NULL;
    if (KEEL_LIKELY(!in_ranges(system_code, nsystem, (uintptr_t)ra)))
        return ra;
    if (in_ranges(linker_code, nlinker, (uintptr_t)ra))
        return (const void *)1;
    void *pcs[24];
    int n = keel_backtrace(pcs, 24, 0);
    int i = 0;
    while (i < n && keel__frame_in_keel(pcs[i])) /* the interposer's frames */
        i++;
    while (i < n && in_ranges(system_code, nsystem, (uintptr_t)pcs[i]))
        i++;
    if (i == n)
        return ra;
    return keel__frame_in_keel(pcs[i]) ? NULL : pcs[i];
}

const void *keel__run_origin(const void *ra)
{
    return origin(ra);
}

/* The site of an origin (not NULL).  Guard set. */
static const keel__lock_site *site_at(const void *pc)
{
    return pc == (const void *)1 ? &linker_site : keel__run_site(pc);
}

/* ---- whose pointer -------------------------------------------------------------------------- */

static size_t (*real_usable_size)(void *);

/* The usable size of a glibc block. */
static size_t glibc_usable(void *p)
{
    if (real_usable_size != NULL)
        return real_usable_size(p);
    return run_glibc_chunk_usable(p);
}

/*
 * glibc blocks that may hold the program's pointers: those made while keel's code runs by
 * another library than keel's symbolizer - the constructors of the libraries libdw loads
 * (libdebuginfod, libcurl, GnuTLS, p11-kit), whose structures the program's blocks join (the
 * text-domain bindings of bindtextdomain), and a signal handler's that ran inside keel.  Roots
 * of the leak scan; open addressing, 0 empty, 1 removed; when full, no more are kept (then such
 * a block's program blocks may be reported).  Lock-free (a slot changes by compare-and-swap): a
 * signal handler's allocation may come while its thread is in the middle of an update.
 */
#define ROOT_SLOTS 4096u
static uintptr_t roots[ROOT_SLOTS];
static unsigned nroots; /* slots ever used */

static unsigned root_hash(uintptr_t p)
{
    return (unsigned)(((unsigned long long)p * 0x9e3779b97f4a7c15ull) >> 40) & (ROOT_SLOTS - 1u);
}

static void root_add(const void *p)
{
    unsigned i = root_hash((uintptr_t)p);
    for (unsigned n = 0; n < ROOT_SLOTS / 2; n++, i = (i + 1u) & (ROOT_SLOTS - 1u)) {
        uintptr_t v = __atomic_load_n(&roots[i], __ATOMIC_RELAXED);
        if (v <= 1 && __atomic_compare_exchange_n(&roots[i], &v, (uintptr_t)p, false,
                                                  __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
            if (v == 0)
                __atomic_fetch_add(&nroots, 1u, __ATOMIC_RELAXED);
            return;
        }
    }
}

static void root_remove(const void *p)
{
    if (p == NULL || __atomic_load_n(&nroots, __ATOMIC_RELAXED) == 0)
        return;
    unsigned i = root_hash((uintptr_t)p);
    for (unsigned n = 0; n < ROOT_SLOTS / 2; n++, i = (i + 1u) & (ROOT_SLOTS - 1u)) {
        uintptr_t v = __atomic_load_n(&roots[i], __ATOMIC_ACQUIRE);
        if (v == 0)
            return;
        if (v == (uintptr_t)p && __atomic_compare_exchange_n(&roots[i], &v, (uintptr_t)1, false,
                                                             __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            return;
    }
}

/*
 * The reserve: a signal handler's allocations while its thread is inside glibc's allocator
 * (in_glibc), carved off one mapping with an atomic add, each after a word holding its size;
 * never given back (free of one does nothing), scanned whole as a root of the leak scan.  Used
 * up (or a block bigger than it, or aligned past a page), such an allocation fails with ENOMEM:
 * glibc's allocator, re-entered in the middle of its own update, could wait for ever on the
 * arena lock its own thread holds, or corrupt its lists.  Reported once (heap_limit).
 */
#define RESERVE_BYTES ((size_t)16 << 20)
static unsigned char *reserve;
static size_t reserve_used;

static bool in_reserve(const void *p)
{
    uintptr_t base = (uintptr_t)__atomic_load_n(&reserve, __ATOMIC_ACQUIRE);
    return base != 0 && (uintptr_t)p - base < RESERVE_BYTES;
}

/* The reserve's mapping, made by its first user (keel-run's start, or a signal handler before
 * it: mmap is async-signal-safe; of two at once, one keeps its mapping), or NULL. */
static unsigned char *reserve_base(void)
{
    unsigned char *base = __atomic_load_n(&reserve, __ATOMIC_ACQUIRE);
    if (base != NULL)
        return base;
    void *r = mmap(NULL, RESERVE_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return NULL;
    if (__atomic_compare_exchange_n(&reserve, &base, (unsigned char *)r, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return (unsigned char *)r;
    (void)munmap(r, RESERVE_BYTES);
    return base;
}

/* A block of size bytes aligned to align from the reserve (zeroed: never used before), or NULL. */
static void *reserve_alloc(size_t size, size_t align)
{
    if (size > RESERVE_BYTES || align > 4096)
        return NULL;
    unsigned char *base = reserve_base();
    if (base == NULL)
        return NULL;
    if (align < 16)
        align = 16;
    size_t need = (size + 15u) / 16u * 16u + align; /* (the size word and the alignment) */
    size_t at = __atomic_fetch_add(&reserve_used, need, __ATOMIC_RELAXED);
    if (at > RESERVE_BYTES || need > RESERVE_BYTES - at)
        return NULL;
    uintptr_t user = ((uintptr_t)(base + at) + sizeof(size_t) + align - 1u) / align * align;
    void *p = as_ptr(user);
    memcpy((unsigned char *)p - sizeof(size_t), &size, sizeof(size));
    return p;
}

static size_t reserve_size(const void *p)
{
    size_t size = 0;
    memcpy(&size, (const unsigned char *)p - sizeof(size_t), sizeof(size));
    return size;
}

/*
 * Frees deferred: keel's blocks freed by code that runs inside keel's own (a signal handler's
 * free while its thread is in keel's heap, whose shard lock it may hold), glibc's freed while
 * the thread is inside glibc's allocator.  Slots taken and emptied by compare-and-swap; the next
 * free or allocation outside keel frees them.  When every slot is taken the block is not freed.
 */
#define DEFERRED_SLOTS 256u
static void *deferred[DEFERRED_SLOTS];
static unsigned ndeferred;

/*
 * The limits a signal handler's call can reach (the reserve used up, the table of deferred frees
 * full): noted where they are reached (no lock, no report: the handler may run inside keel's
 * code or glibc's allocator), reported once each by the next call outside both (settle) or at
 * exit.  limits_hit: the limits reached; limits_told: those reported; the counts, for the report.
 */
enum { LIMIT_RESERVE = 1u, LIMIT_DEFERRED = 2u };
static unsigned limits_hit, limits_told;
static unsigned long long reserve_refused, frees_dropped;

static void limit_hit(unsigned limit, unsigned long long *count)
{
    __atomic_fetch_add(count, 1u, __ATOMIC_RELAXED);
    __atomic_fetch_or(&limits_hit, limit, __ATOMIC_RELEASE);
}

/* Full: the block is never freed (nothing else is safe here); a `limit` report says so. */
static void defer_free(void *p)
{
    for (unsigned i = 0; i < DEFERRED_SLOTS; i++) {
        void *none = NULL;
        if (__atomic_compare_exchange_n(&deferred[i], &none, p, false, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED)) {
            __atomic_fetch_add(&ndeferred, 1u, __ATOMIC_RELEASE);
            return;
        }
    }
    limit_hit(LIMIT_DEFERRED, &frees_dropped);
}

/* The limits reached and not yet reported, each once (outside keel's code and glibc's). */
static void heap_limit_report(void)
{
    unsigned hit = __atomic_load_n(&limits_hit, __ATOMIC_ACQUIRE);
    unsigned told = __atomic_fetch_or(&limits_told, hit, __ATOMIC_ACQ_REL);
    unsigned now = hit & ~told;
    if (now == 0)
        return;
    keel__run_inside++;
    if ((now & LIMIT_RESERVE) != 0)
        (void)KEEL__REPORT_AT_CALLER(
            KEEL_REPORT_LIMIT,
            "keel-run: the reserve for signal handlers' allocations inside glibc's allocator "
            "(%zu MB) is used up, or the block is bigger: such an allocation fails with ENOMEM "
            "(%llu so far), never re-enters glibc's allocator",
            RESERVE_BYTES >> 20, __atomic_load_n(&reserve_refused, __ATOMIC_RELAXED));
    if ((now & LIMIT_DEFERRED) != 0)
        (void)KEEL__REPORT_AT_CALLER(
            KEEL_REPORT_LIMIT,
            "keel-run: the table of frees deferred from signal handlers (%u slots) is full: such "
            "a block is never freed (%llu so far; a leak report may list them)",
            DEFERRED_SLOTS, __atomic_load_n(&frees_dropped, __ATOMIC_RELAXED));
    keel__run_inside--;
}

static __thread int unwinding __attribute__((tls_model("initial-exec")));

/* A glibc allocation at ra while keel's code runs: is it another library's (a root)? */
static bool third_party(const void *ra)
{
    if (nsystem == 0 || keel__frame_in_keel(ra) ||
        in_ranges(symbolizer_code, nsymbolizer, (uintptr_t)ra))
        return false;
    if (!in_ranges(system_code, nsystem, (uintptr_t)ra))
        return true;
    if (unwinding != 0) /* an allocation of the unwinder's own (glibc loading libgcc_s) */
        return false;
    void *pcs[24];
    unwinding++;
    int n = keel_backtrace(pcs, 24, 0);
    unwinding--;
    int i = 0;
    while (i < n && keel__frame_in_keel(pcs[i])) /* the interposer's frames */
        i++;
    while (i < n && in_ranges(system_code, nsystem, (uintptr_t)pcs[i]))
        i++;
    return i < n && !keel__frame_in_keel(pcs[i]) &&
           !in_ranges(symbolizer_code, nsymbolizer, (uintptr_t)pcs[i]);
}

/* glibc's block p, made at ra (not served by keel's heap): kept as a root when it is a library's. */
static void *glibc_made(void *p, const void *ra)
{
    if (p != NULL && keel__run_inside > 0 && third_party(ra))
        root_add(p);
    return p;
}

/*
 * An allocation keel's heap does not serve (not ready, --heap=off, or made while keel's code
 * runs: keel's own, a library's it calls, a signal handler's): glibc's, or the reserve's while
 * this thread is inside glibc's allocator.
 */
static void *other_alloc(size_t size, size_t align, bool zero, const void *ra)
{
    if (KEEL_UNLIKELY(in_glibc != 0)) { /* (never glibc's allocator: the reserve, or ENOMEM) */
        void *r = reserve_alloc(size, align);
        if (r == NULL) {
            limit_hit(LIMIT_RESERVE, &reserve_refused);
            errno = ENOMEM;
        }
        return r;
    }
    void *p = align > 16 ? libc_memalign(align, size)
              : zero     ? libc_calloc(1, size)
                         : libc_malloc(size);
    return glibc_made(p, ra);
}

/* Serve this call from keel's heap?  Ready, and not inside keel's own code. */
static inline bool serve(void)
{
    return KEEL_LIKELY(__atomic_load_n(&heap_on, __ATOMIC_RELAXED) != 0) &&
           KEEL_LIKELY(keel__run_inside == 0);
}

/* ---- the calls -------------------------------------------------------------------------------- */

/* The C library's answer for keel's status s and block p: p, or NULL with ENOMEM.  Ends the guard. */
static void *answer(keel_status s, void *p)
{
    if (!keel_ok(s)) {
        keel_status_free(s);
        p = NULL;
    }
    keel__run_inside--;
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

static void *heap_alloc(size_t size, size_t align, bool zero, const void *ra)
{
    keel__run_inside++;
    const void *pc = origin(ra);
    if (pc == NULL) {
        keel__run_inside--;
        return other_alloc(size, align, zero, ra);
    }
    const keel__lock_site *site = site_at(pc);
    void *p = NULL;
    keel_status s = keel__heap_alloc(NULL, size, align > 16 ? align : 0, zero, &p, site->file,
                                     site->line, site->func);
    return answer(s, p);
}

/* The site of a free or realloc at ra (keel's own: its return address).  Guard set. */
static const keel__lock_site *free_site(const void *ra)
{
    const void *pc = origin(ra);
    return site_at(pc != NULL ? pc : ra);
}

/*
 * p, a block of the reserve itself (never freed), not a block of keel's heap whose memory the
 * reserve gave (a signal handler's allocation while its thread is inside glibc's allocator: keel's
 * raw memory comes from the reserve then), which is freed as any other of keel's blocks.  (The
 * first was also taken for the second: such a block's free did nothing, and it was reported
 * leaked at exit.)
 */
static bool reserve_own(const void *p)
{
    return in_reserve(p) && !(__atomic_load_n(&heap_on, __ATOMIC_RELAXED) && keel__blk_is(p));
}

/* Free p, a pointer the program gives back at ra (not NULL). */
static void heap_free(void *p, const void *ra)
{
    if (reserve_own(p))
        return;
    if (KEEL_UNLIKELY(keel__run_inside > 0 || in_glibc > 0) &&
        (keel__blk_is(p) || (in_glibc > 0 && run_glibc_chunk(p)))) {
        defer_free(p); /* (a signal handler inside keel's heap or glibc's allocator) */
        return;
    }
    if (keel__blk_is(p)) {
        keel__run_inside++;
        const keel__lock_site *site = free_site(ra);
        keel__heap_free(NULL, p, site->file, site->line, site->func);
        keel__run_inside--;
        return;
    }
    if (run_glibc_chunk(p)) {
        root_remove(p);
        libc_free(p);
        return;
    }
    /* neither keel's nor glibc's: keel's report (an invalid free), and the pointer is left alone */
    keel__run_inside++;
    const keel__lock_site *site = free_site(ra);
    keel__heap_free(NULL, p, site->file, site->line, site->func);
    keel__run_inside--;
}

/* An allocation that fails here (a stress point, run_faults.c): NULL and ENOMEM (or --errno's). */
#define ALLOC_FAULT(fail)                      \
    do {                                       \
        int f_ = RUN_FAULT(RUN_F_ALLOC, RA()); \
        if (KEEL_UNLIKELY(f_ != 0)) {          \
            errno = run_fail(f_);              \
            return fail;                       \
        }                                      \
    } while (0)

/* The deferred frees, now that this thread is outside keel's code and glibc's allocator. */
static void drain_deferred(const void *ra)
{
    for (unsigned i = 0; i < DEFERRED_SLOTS && __atomic_load_n(&ndeferred, __ATOMIC_ACQUIRE) != 0;
         i++) {
        void *p = __atomic_exchange_n(&deferred[i], NULL, __ATOMIC_ACQUIRE);
        if (p != NULL) {
            __atomic_fetch_sub(&ndeferred, 1u, __ATOMIC_RELAXED);
            heap_free(p, ra);
        }
    }
}

/* Before a call keel's heap serves: the frees deferred meanwhile, if any, and the report of a
 * limit reached. */
static inline void settle(const void *ra)
{
    if (KEEL_UNLIKELY((__atomic_load_n(&ndeferred, __ATOMIC_RELAXED) |
                       (__atomic_load_n(&limits_hit, __ATOMIC_RELAXED) &
                        ~__atomic_load_n(&limits_told, __ATOMIC_RELAXED))) != 0) &&
        keel__run_inside == 0 && in_glibc == 0) {
        drain_deferred(ra);
        heap_limit_report();
    }
}

KEEL_RUN_EXPORT void *malloc(size_t size)
{
    ALLOC_FAULT(NULL);
    if (!serve())
        return other_alloc(size, 0, false, RA());
    settle(RA());
    return heap_alloc(size, 0, false, RA());
}

KEEL_RUN_EXPORT void *calloc(size_t n, size_t size)
{
    ALLOC_FAULT(NULL);
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    if (!serve())
        return other_alloc(n * size, 0, true, RA());
    settle(RA());
    return heap_alloc(n * size, 0, true, RA());
}

KEEL_RUN_EXPORT void free(void *p)
{
    if (p == NULL || reserve_own(p))
        return;
    if (!__atomic_load_n(&heap_on, __ATOMIC_RELAXED)) {
        root_remove(p); /* --heap=off, or not yet (a root made while keel-run starts): glibc's */
        libc_free(p);
        return;
    }
    if (keel__run_inside > 0 && keel__frame_in_keel(RA())) {
        libc_free(p); /* keel's own (its raw blocks): glibc's */
        return;
    }
    settle(RA());
    heap_free(p, RA());
}

/* The usable size of p, any block the interposer may be given. */
static size_t usable_of(void *p)
{
    if (reserve_own(p))
        return reserve_size(p);
    if (__atomic_load_n(&heap_on, __ATOMIC_RELAXED) && keel__blk_is(p))
        return keel__blk_size(p); /* the size asked for: beyond it is the red zone */
    return glibc_usable(p);
}

/*
 * A realloc of p, a block of the reserve, or one that cannot be resized now (a signal handler's
 * call inside keel's heap or glibc's allocator): a new block with p's bytes, p freed (deferred).
 */
static void *moved(void *p, size_t size, const void *ra)
{
    size_t old = usable_of(p);
    void *q = NULL;
    if (size != 0)
        q = serve() ? heap_alloc(size, 0, false, ra) : other_alloc(size, 0, false, ra);
    if (size != 0 && q == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (q != NULL)
        memcpy(q, p, old < size ? old : size);
    if (!reserve_own(p))
        defer_free(p);
    return q;
}

static void *heap_realloc(void *p, size_t size, const void *ra)
{
    if (p == NULL)
        return heap_alloc(size, 0, false, ra);
    if (reserve_own(p))
        return moved(p, size, ra);
    if (size == 0) { /* glibc's: frees it, returns NULL */
        heap_free(p, ra);
        return NULL;
    }
    if (!keel__blk_is(p)) {
        if (!run_glibc_chunk(p)) {
            heap_free(p, ra); /* reported */
            errno = EINVAL;
            return NULL;
        }
        /* a glibc block: moved into keel's heap */
        size_t old = glibc_usable(p);
        void *q = heap_alloc(size, 0, false, ra);
        if (q != NULL) {
            memcpy(q, p, old < size ? old : size);
            root_remove(p);
            libc_free(p);
        }
        return q;
    }
    keel__run_inside++;
    const keel__lock_site *site = free_site(ra);
    void *q = p;
    keel_status s = keel__heap_realloc(NULL, &q, size, site->file, site->line, site->func);
    return answer(s, q);
}

/* realloc's answer at ra, the heap's checks or not. */
static void *realloc_at(void *p, size_t size, const void *ra)
{
    if (serve()) {
        settle(ra);
        return heap_realloc(p, size, ra);
    }
    if (p != NULL && (in_reserve(p) || in_glibc != 0 ||
                      (__atomic_load_n(&heap_on, __ATOMIC_RELAXED) && keel__blk_is(p))))
        return moved(p, size, ra); /* (a signal handler's, inside keel's heap or glibc's) */
    root_remove(p);
    return glibc_made(libc_realloc(p, size), ra);
}

KEEL_RUN_EXPORT void *realloc(void *p, size_t size)
{
    if (size != 0)
        ALLOC_FAULT(NULL);
    return realloc_at(p, size, RA());
}

KEEL_RUN_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    ALLOC_FAULT(NULL);
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc_at(p, n * size, RA());
}

static bool power_of_two(size_t a)
{
    return a != 0 && (a & (a - 1)) == 0;
}

KEEL_RUN_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (!power_of_two(align) || align % sizeof(void *) != 0)
        return EINVAL;
    int f = RUN_FAULT(RUN_F_ALLOC, RA());
    if (KEEL_UNLIKELY(f != 0))
        return run_fail(f);
    int saved = errno;
    void *p =
        serve() ? heap_alloc(size, align, false, RA()) : other_alloc(size, align, false, RA());
    if (p == NULL)
        return ENOMEM;
    errno = saved;
    *out = p;
    return 0;
}

KEEL_RUN_EXPORT void *aligned_alloc(size_t align, size_t size)
{
    ALLOC_FAULT(NULL);
    if (!power_of_two(align)) {
        errno = EINVAL;
        return NULL;
    }
    return serve() ? heap_alloc(size, align, false, RA()) : other_alloc(size, align, false, RA());
}

KEEL_RUN_EXPORT void *memalign(size_t align, size_t size)
{
    ALLOC_FAULT(NULL);
    /* glibc's: an alignment that is not a power of two is rounded up to one */
    size_t a = 1;
    while (a < align && a < ((size_t)1 << 40))
        a <<= 1;
    return serve() ? heap_alloc(size, a, false, RA()) : other_alloc(size, a, false, RA());
}

KEEL_RUN_EXPORT void *valloc(size_t size)
{
    ALLOC_FAULT(NULL);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return serve() ? heap_alloc(size, page, false, RA()) : other_alloc(size, page, false, RA());
}

KEEL_RUN_EXPORT void *pvalloc(size_t size)
{
    ALLOC_FAULT(NULL);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t rounded = (size + page - 1) / page * page;
    if (rounded < size) {
        errno = ENOMEM;
        return NULL;
    }
    return serve() ? heap_alloc(rounded != 0 ? rounded : page, page, false, RA())
                   : other_alloc(rounded != 0 ? rounded : page, page, false, RA());
}

KEEL_RUN_EXPORT size_t malloc_usable_size(void *p)
{
    return p == NULL ? 0 : usable_of(p);
}

/* ---- leaks at exit: the live blocks nothing reachable points to ------------------------------- */

/*
 * A conservative scan, as LeakSanitizer's: the roots are the writable data of every loaded object
 * (but this preload's), the exiting thread's stack and the mapping of its thread pointer (its
 * static TLS); any aligned word that points into a live block (anywhere inside it) marks the
 * block, and a marked block's words are scanned in turn.  The live blocks left unmarked are
 * reported, by allocation site (keel__blk_leaks_if).
 */
typedef struct live_block {
    uintptr_t start, end;
    bool marked;
} live_block;

typedef struct live_set {
    live_block *v;
    size_t n, cap;
    size_t *stack; /* marked blocks whose words are not scanned yet */
    size_t depth;
} live_set;

static void *map_pages(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void collect(void *ctx, const void *user, size_t size, const char *file)
{
    live_set *set = (live_set *)ctx;
    if (set->n < set->cap) {
        set->v[set->n].start = (uintptr_t)user;
        set->v[set->n].end = (uintptr_t)user + (size != 0 ? size : 1);
        /* the dynamic linker's (a thread's DTV, kept in its TCB): a root */
        set->v[set->n].marked = file == linker_site.file;
        set->n++;
    }
}

static int by_start(const void *a, const void *b)
{
    uintptr_t x = ((const live_block *)a)->start, y = ((const live_block *)b)->start;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* The block [start, end) holding address a, or NULL. */
static live_block *block_at(live_set *set, uintptr_t a)
{
    size_t lo = 0, hi = set->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->v[mid].end <= a)
            lo = mid + 1;
        else if (set->v[mid].start > a)
            hi = mid;
        else
            return &set->v[mid];
    }
    return NULL;
}

static void scan_words(live_set *set, uintptr_t lo, uintptr_t hi)
{
    lo = (lo + sizeof(uintptr_t) - 1) & ~(uintptr_t)(sizeof(uintptr_t) - 1);
    for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
        uintptr_t w = 0;
        memcpy(&w, as_ptr(a), sizeof(w));
        live_block *b = w >= set->v[0].start ? block_at(set, w) : NULL;
        if (b != NULL && !b->marked) {
            b->marked = true;
            set->stack[set->depth++] = (size_t)(b - set->v);
        }
    }
}

static void flood(live_set *set)
{
    while (set->depth > 0) {
        const live_block *b = &set->v[set->stack[--set->depth]];
        scan_words(set, b->start, b->end);
    }
}

static int scan_object(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    live_set *set = (live_set *)ctx;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) == 0)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (in_ranges(own_data, nown, lo))
            continue;
        scan_words(set, lo, lo + ph->p_memsz);
        flood(set);
    }
    return 0;
}

/* The exiting thread's stack (from here up) and its thread pointer's mapping, from /proc/self/maps. */
static void scan_thread(live_set *set)
{
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t tp = (uintptr_t)__builtin_thread_pointer();
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[8192];
    size_t have = 0;
    ssize_t got = 0;
    while ((got = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0 || have > 0) {
        have += got > 0 ? (size_t)got : 0;
        buf[have] = '\0';
        char *nl = strchr(buf, '\n');
        if (nl == NULL && got <= 0)
            nl = buf + have; /* the last line */
        if (nl == NULL)
            break;  /* a line longer than the buffer: stop */
        *nl = '\0'; /* this line only ([heap] is looked for in it) */
        char *end = NULL;
        uintptr_t lo = (uintptr_t)strtoull(buf, &end, 16);
        uintptr_t hi = end != NULL && *end == '-' ? (uintptr_t)strtoull(end + 1, &end, 16) : 0;
        bool readable = end != NULL && end[0] == ' ' && end[1] == 'r' && end[2] == 'w';
        if (readable && sp >= lo && sp < hi)
            scan_words(set, sp, hi);
        else if (readable && tp >= lo && tp < hi && strstr(buf, "[heap]") == NULL)
            scan_words(set, lo, hi);
        flood(set);
        size_t used = nl < buf + have ? (size_t)(nl - buf) + 1 : have;
        memmove(buf, buf + used, have - used);
        have -= used;
        if (got <= 0 && have == 0)
            break;
    }
    (void)close(fd);
}

static bool unmarked(const void *user, void *ctx)
{
    const live_block *b = block_at((live_set *)ctx, (uintptr_t)user);
    return b != NULL && !b->marked;
}

static void report_leaks(void)
{
    live_set set = {NULL, 0, 0, NULL, 0};
    keel_heap_stats st;
    keel_status s = keel_heap_stats_get(NULL, &st);
    if (!keel_ok(s)) {
        keel_status_free(s);
        return;
    }
    set.cap = (size_t)st.live_blocks + 4096; /* (other threads' counts lag a little) */
    set.v = (live_block *)map_pages(set.cap * sizeof(live_block));
    set.stack = (size_t *)map_pages(set.cap * sizeof(size_t));
    if (set.v != NULL && set.stack != NULL) {
        keel__blk_live(program, collect, &set);
        if (set.n > 0) {
            qsort(set.v, set.n, sizeof(live_block), by_start);
            for (size_t i = 0; i < set.n; i++)
                if (set.v[i].marked)
                    set.stack[set.depth++] = i;
            flood(&set);
            (void)dl_iterate_phdr(scan_object, &set);
            for (unsigned i = 0; i < ROOT_SLOTS; i++) {
                uintptr_t root = __atomic_load_n(&roots[i], __ATOMIC_ACQUIRE);
                if (root > 1) {
                    scan_words(&set, root, root + glibc_usable(as_ptr(root)));
                    flood(&set);
                }
            }
            size_t used = __atomic_load_n(&reserve_used, __ATOMIC_RELAXED);
            if (reserve != NULL && used > 0) { /* (signal handlers' blocks) */
                scan_words(&set, (uintptr_t)reserve,
                           (uintptr_t)reserve + (used < RESERVE_BYTES ? used : RESERVE_BYTES));
                flood(&set);
            }
            scan_thread(&set);
            keel__blk_leaks_if(program, unmarked, &set);
        }
    }
    if (set.v != NULL)
        (void)munmap(set.v, set.cap * sizeof(live_block));
    if (set.stack != NULL)
        (void)munmap(set.stack, set.cap * sizeof(size_t));
}

/* ---- start, fork, exit ---------------------------------------------------------------------- */

void keel__run_heap_start(void)
{
    keel__run_inside++;
    (void)dl_iterate_phdr(note_object, NULL); /* (the origins of faults need them too) */
    keel__run_inside--;
    (void)reserve_base();
    const char *opt = getenv("KEEL_RUN_HEAP");
    if (opt != NULL && strcmp(opt, "off") == 0)
        return;
    keel__run_inside++;
    void *usable = dlsym(RTLD_NEXT, "malloc_usable_size");
    __builtin_memcpy(&real_usable_size, &usable, sizeof(usable));
    program = keel__heap_program();
    /*
     * The unwinder (libgcc_s, loaded by glibc's backtrace) and the symbolizer on the program's
     * own code made now, not in a malloc called from inside the C library with one of its locks
     * held: libdw loads libdebuginfod on its first search for debug information, and with it
     * libcurl, GnuTLS and p11-kit, whose constructors take the C library's locale lock (seen:
     * xz's setlocale, then every later newlocale, deadlocked).
     */
    void *pcs[4];
    if (keel_backtrace(pcs, 4, 0) > 0)
        (void)keel__run_site(pcs[0]);
    unsigned long entry = getauxval(AT_ENTRY);
    if (entry != 0)
        (void)keel__run_site(as_ptr(entry + 1));
    keel__run_inside--;
    if (program != NULL)
        __atomic_store_n(&heap_on, 1, __ATOMIC_RELEASE);
}

bool keel__run_heap_on(void)
{
    return __atomic_load_n(&heap_on, __ATOMIC_RELAXED) != 0;
}

void keel__run_heap_fork(int phase)
{
    if (program != NULL && keel__run_heap_on())
        keel__blk_fork(program, phase);
}

/* At exit (not _exit): every block's red zones and the quarantine's poison, then the leaks. */
__attribute__((destructor)) static void run_heap_stop(void)
{
    if (!keel__run_heap_on())
        return;
    settle(RA()); /* (a deferred free's block is not live: not a leak) */
    keel__run_inside++;
    keel_status_free(keel_heap_check(NULL)); /* each damaged block is reported */
    report_leaks();
    keel__run_inside--;
}
