/*
 * bench_heap.c - module heap alloc/free throughput against glibc malloc,
 * jemalloc and mimalloc, in the same run.
 *
 * Workload: a window of 256 live blocks; each operation frees a random one
 * and allocates a new one of a random size in 16..4096 bytes, writing its
 * first and last byte (fixed seed, the same sequence for every allocator).
 * 1 thread, and 2 threads each with its own window (one module heap shared).
 * Throughput is reported as ns per alloc+free pair and as a ratio to glibc.
 *
 * Goals (issue 5): release module heap >= 1.0x glibc and >= 0.9x jemalloc;
 * devel (all checks but guard pages) >= 0.4x glibc; guard-page sampling at
 * 1/1000 adds <= 5% to devel.  Built twice by make bench (devel, release).
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
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
    void (*release)(void *);
} allocator;

static void *glibc_alloc(size_t n)
{
    return __libc_malloc(n);
}
static void glibc_free(void *p)
{
    __libc_free(p);
}
static void *je_alloc(size_t n)
{
    return mallocx(n, 0);
}
static void je_free(void *p)
{
    if (p != NULL)
        dallocx(p, 0);
}
static void *(*mi_malloc_fn)(size_t);
static void (*mi_free_fn)(void *);
static void *mi_alloc(size_t n)
{
    return mi_malloc_fn(n);
}
static void mi_release(void *p)
{
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
static void keel_release(void *p)
{
    keel_heap_free(KEEL_MODULE_REF(bench), p);
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
    unsigned long long r = 88172645463325252ull;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        unsigned long long x = next_rand(&r);
        unsigned k = (unsigned)(x % WINDOW);
        size_t size = 16 + (size_t)((x >> 20) % 4081);
        current->release(live[k]);
        unsigned char *p = (unsigned char *)current->alloc(size);
        if (p == NULL)
            abort();
        p[0] = 1;
        p[size - 1] = 2;
        live[k] = p;
    }
    double t = bench_now_ns() - t0;
    for (unsigned k = 0; k < WINDOW; k++)
        current->release(live[k]);
    return t / (double)n;
}

static double run_two_threads(long n)
{
    return bench_in_threads(run_ops, n / 2, THREADS_MAX);
}

static void measure(const allocator *a, double *one, double *two)
{
    current = a;
    *one = bench_best(run_ops, N, ROUNDS);
    *two = bench_best(run_two_threads, N, ROUNDS);
}

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
    const allocator glibc = {"glibc malloc (anchor)", glibc_alloc, glibc_free};
    const allocator je = {"jemalloc mallocx (default arena)", je_alloc, je_free};
    const allocator mimalloc = {"mimalloc mi_malloc", mi_alloc, mi_release};
    const allocator keel = {KEEL_DEVEL ? "keel module heap, devel checks" : "keel module heap",
                            keel_alloc, keel_release};
    double g1 = 0;
    double g2 = 0;
    measure(&glibc, &g1, &g2);
    (void)printf("%-44s %8s %8s   %s\n", "ns per alloc+free, sizes 16..4096", "1 thread", "2 thr.",
                 "ratio to glibc (higher is faster)");
    (void)printf("%-44s %8.1f %8.1f   1.00x / 1.00x\n", glibc.name, g1, g2);
    double j1 = 0;
    double j2 = 0;
    measure(&je, &j1, &j2);
    (void)printf("%-44s %8.1f %8.1f   %.2fx / %.2fx\n", je.name, j1, j2, g1 / j1, g2 / j2);
    if (mi_malloc_fn != NULL && mi_free_fn != NULL) {
        double m1 = 0;
        double m2 = 0;
        measure(&mimalloc, &m1, &m2);
        (void)printf("%-44s %8.1f %8.1f   %.2fx / %.2fx\n", mimalloc.name, m1, m2, g1 / m1,
                     g2 / m2);
    } else {
        (void)printf("%-44s (libmimalloc.so.2 not loadable: %s)\n", mimalloc.name, dlerror());
    }
    double k1 = 0;
    double k2 = 0;
    measure(&keel, &k1, &k2);
    (void)printf("%-44s %8.1f %8.1f   %.2fx / %.2fx   (%.2fx / %.2fx jemalloc)\n", keel.name, k1,
                 k2, g1 / k1, g2 / k2, j1 / k1, j2 / k2);
#if KEEL_DEVEL
    s = keel_options_set("heap.guard-sample=1000");
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        return 1;
    }
    double s1 = 0;
    double s2 = 0;
    measure(&keel, &s1, &s2);
    (void)printf("%-44s %8.1f %8.1f   %.2fx / %.2fx   (+%.1f%% / +%.1f%% over devel)\n",
                 "  ... with guard pages for 1 in 1000", s1, s2, g1 / s1, g2 / s2,
                 100.0 * (s1 - k1) / k1, 100.0 * (s2 - k2) / k2);
#endif
    return 0;
}
