/*
 * bench_heap.c - module heap alloc/free throughput against glibc malloc,
 * jemalloc and mimalloc, in the same run.
 *
 * Workload: a window of 256 live blocks; each operation frees a random one
 * and allocates a new one of a random size in 16..4096 bytes, writing its
 * first and last byte (fixed seed, the same sequence for every allocator).
 * 1 thread, and 2 threads each with its own window (one module heap shared).
 * Throughput is reported as ns per alloc+free pair and as a ratio to glibc
 * and to jemalloc's default path (mallocx / dallocx, flags 0).  Every row is
 * measured once per round, the rounds one after another (best of ROUNDS),
 * so a noisy phase of the machine hits every row alike.
 *
 * Rows besides the anchors: jemalloc's sized free (sdallocx), jemalloc with
 * arenas and explicit thread caches of its own (what a module heap is built
 * on), freed with dallocx and with sdallocx (which in jemalloc 5.3 takes its
 * fast path only with flags 0, so not with a cache of one's own), and the
 * module heap freed with keel_heap_free and with keel_heap_free_sized.
 *
 * Goals (issue 5): release module heap >= 1.0x glibc and >= 0.9x jemalloc;
 * devel (all checks but guard pages) >= 0.4x glibc; guard-page sampling at
 * 1/1000 adds <= 5% to devel.  Built twice by make bench (devel, release).
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/keel.h"

#include "bench.h"

KEEL_MODULE(bench, "1", NULL, NULL, NULL, NULL);

enum { WINDOW = 256, ROUNDS = 5, THREADS_MAX = 2 };
static const long N = 2000000;

/* glibc's allocator, under the names glibc exports next to malloc (jemalloc is malloc here) */
extern void *__libc_malloc(size_t size); /* NOLINT(bugprone-reserved-identifier) */
extern void __libc_free(void *p);        /* NOLINT(bugprone-reserved-identifier) */

typedef struct allocator {
    const char *name;
    void *(*alloc)(size_t);
    void (*release)(void *, size_t); /* the block and the size it was allocated with */
} allocator;

static void *glibc_alloc(size_t n)
{
    return __libc_malloc(n);
}
static void glibc_free(void *p, size_t n)
{
    (void)n;
    __libc_free(p);
}
static void *je_alloc(size_t n)
{
    return mallocx(n, 0);
}
static void je_free(void *p, size_t n)
{
    (void)n;
    if (p != NULL)
        dallocx(p, 0);
}
static void je_free_sized(void *p, size_t n)
{
    if (p != NULL)
        sdallocx(p, n, 0);
}

/*
 * jemalloc with arenas of the benchmark's (one a thread, taken in turn) and
 * this thread's own cache for it, as a module heap has.
 */
static unsigned je_arenas[THREADS_MAX];
static unsigned je_next_arena;
static pthread_key_t je_cache_key;
static _Thread_local int je_flags; /* 0: this thread has no cache yet */

static void je_cache_done(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg - 1;
    (void)mallctl("tcache.destroy", NULL, NULL, &id, sizeof(id));
}

static int je_own_flags(void)
{
    if (KEEL_UNLIKELY(je_flags == 0)) {
        unsigned id = 0;
        size_t len = sizeof(id);
        if (mallctl("tcache.create", &id, &len, NULL, 0) != 0)
            abort();
        (void)pthread_setspecific(je_cache_key, (void *)(uintptr_t)(id + 1));
        unsigned slot = __atomic_fetch_add(&je_next_arena, 1, __ATOMIC_RELAXED) % THREADS_MAX;
        je_flags = (int)(MALLOCX_ARENA(je_arenas[slot]) | MALLOCX_TCACHE(id));
    }
    return je_flags;
}
static void *je_own_alloc(size_t n)
{
    return mallocx(n, je_own_flags());
}
static void je_own_free(void *p, size_t n)
{
    (void)n;
    if (p != NULL)
        dallocx(p, je_own_flags());
}
static void je_own_free_sized(void *p, size_t n)
{
    if (p != NULL)
        sdallocx(p, n, je_own_flags());
}

static void *(*mi_malloc_fn)(size_t);
static void (*mi_free_fn)(void *);
static void *mi_alloc(size_t n)
{
    return mi_malloc_fn(n);
}
static void mi_release(void *p, size_t n)
{
    (void)n;
    mi_free_fn(p);
}
static void *keel_alloc(size_t n)
{
    void *p = NULL;
    keel_status s = keel_heap_alloc(KEEL_MODULE_REF(bench), n, &p);
    if (!keel_ok(s)) {
        keel_status_free(s);
        return NULL;
    }
    return p;
}
static void keel_release(void *p, size_t n)
{
    (void)n;
    keel_heap_free(KEEL_MODULE_REF(bench), p);
}
static void keel_release_sized(void *p, size_t n)
{
    keel_heap_free_sized(KEEL_MODULE_REF(bench), p, n);
}

static const allocator *current;

static unsigned long long next_rand(unsigned long long *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* ns per alloc+free pair of the current allocator over n operations. */
static double run_ops(long n)
{
    void *live[WINDOW] = {NULL};
    size_t sizes[WINDOW] = {0};
    unsigned long long r = 88172645463325252ull;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        unsigned long long x = next_rand(&r);
        unsigned k = (unsigned)(x % WINDOW);
        size_t size = 16 + (size_t)((x >> 20) % 4081);
        current->release(live[k], sizes[k]);
        unsigned char *p = (unsigned char *)current->alloc(size);
        if (p == NULL)
            abort();
        p[0] = 1;
        p[size - 1] = 2;
        live[k] = p;
        sizes[k] = size;
    }
    double t = bench_now_ns() - t0;
    for (unsigned k = 0; k < WINDOW; k++)
        current->release(live[k], sizes[k]);
    return t / (double)n;
}

static double run_two_threads(long n)
{
    return bench_in_threads(run_ops, n / 2, THREADS_MAX);
}

enum { ROWS_MAX = 9 };

typedef struct row {
    const allocator *a;
    double one; /* ns per pair, best of the rounds: 1 thread */
    double two; /* 2 threads */
} row;

/* Every row once a round, the rounds one after another: the best of each. */
static void measure(row *rows, int nrows)
{
    for (int i = 0; i < nrows; i++)
        rows[i].one = rows[i].two = 1e30;
    for (int round = 0; round < ROUNDS; round++)
        for (int i = 0; i < nrows; i++) {
            current = rows[i].a;
            double t = run_ops(N);
            rows[i].one = t < rows[i].one ? t : rows[i].one;
            t = run_two_threads(N);
            rows[i].two = t < rows[i].two ? t : rows[i].two;
        }
}

/* A row with its ratios to glibc (rows[0]) and to jemalloc's default path (rows[1]). */
static void print_row(const row *rows, const row *r)
{
    (void)printf("%-44s %8.1f %8.1f   %.2fx / %.2fx   (%.2fx / %.2fx jemalloc)\n", r->a->name,
                 r->one, r->two, rows[0].one / r->one, rows[0].two / r->two, rows[1].one / r->one,
                 rows[1].two / r->two);
}

#if KEEL_DEVEL
/* Devel: the module heap again with guard pages for 1 in 1000 blocks, against `plain` (without). */
static int guard_row(const row *rows, const row *plain)
{
    keel_status s = keel_options_set("heap.guard-sample=1000");
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        return 1;
    }
    row guarded = {plain->a, 0, 0};
    measure(&guarded, 1);
    (void)printf("%-44s %8.1f %8.1f   %.2fx / %.2fx   (%+.1f%% / %+.1f%% over devel)\n",
                 "  ... with guard pages for 1 in 1000", guarded.one, guarded.two,
                 rows[0].one / guarded.one, rows[0].two / guarded.two,
                 100.0 * (guarded.one - plain->one) / plain->one,
                 100.0 * (guarded.two - plain->two) / plain->two);
    return 0;
}
#endif

int main(void)
{
    keel_status s = keel_init();
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        return 1;
    }
    void *mi = dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_LOCAL);
    if (mi != NULL) {
        void *f = dlsym(mi, "mi_malloc");
        void *g = dlsym(mi, "mi_free");
        memcpy(&mi_malloc_fn, &f, sizeof(f));
        memcpy(&mi_free_fn, &g, sizeof(g));
    }
    if (pthread_key_create(&je_cache_key, je_cache_done) != 0) {
        (void)fprintf(stderr, "bench_heap: no thread key\n");
        return 1;
    }
    for (int i = 0; i < THREADS_MAX; i++) {
        size_t len = sizeof(je_arenas[i]);
        if (mallctl("arenas.create", &je_arenas[i], &len, NULL, 0) != 0) {
            (void)fprintf(stderr, "bench_heap: jemalloc made no arena\n");
            return 1;
        }
    }
    const allocator glibc = {"glibc malloc (anchor)", glibc_alloc, glibc_free};
    const allocator je = {"jemalloc mallocx/dallocx (default arena)", je_alloc, je_free};
    const allocator je_sized = {"jemalloc mallocx/sdallocx (default arena)", je_alloc,
                                je_free_sized};
    const allocator je_own = {"jemalloc, own arenas + thread caches", je_own_alloc, je_own_free};
    const allocator je_own_sized = {"  ... freed with sdallocx", je_own_alloc, je_own_free_sized};
    const allocator mimalloc = {"mimalloc mi_malloc", mi_alloc, mi_release};
    const allocator keel = {KEEL_DEVEL ? "keel module heap, devel checks" : "keel module heap",
                            keel_alloc, keel_release};
    const allocator keel_sized = {KEEL_DEVEL ? "keel module heap, devel, sized free"
                                             : "keel module heap, sized free",
                                  keel_alloc, keel_release_sized};
    row rows[ROWS_MAX] = {
        {&glibc, 0, 0}, {&je, 0, 0}, {&je_sized, 0, 0}, {&je_own, 0, 0}, {&je_own_sized, 0, 0}};
    int nrows = 5;
    if (mi_malloc_fn != NULL && mi_free_fn != NULL)
        rows[nrows++].a = &mimalloc;
    else
        (void)printf("%-44s (libmimalloc.so.2 not loadable: %s)\n", mimalloc.name, dlerror());
    const row *plain = &rows[nrows];
    rows[nrows++].a = &keel;
    rows[nrows++].a = &keel_sized;
    measure(rows, nrows);
    (void)printf("%-44s %8s %8s   %s\n", "ns per alloc+free, sizes 16..4096", "1 thread", "2 thr.",
                 "ratio to glibc (higher is faster), to jemalloc");
    for (int i = 0; i < nrows; i++)
        print_row(rows, &rows[i]);
#if KEEL_DEVEL
    return guard_row(rows, plain);
#else
    (void)plain;
    return 0;
#endif
}
