/*
 * test_heap.c - module heaps: accounting and quotas (both builds); in devel
 * builds every detection - red zones, write after free, double free,
 * cross-module free, foreign realloc, leaks at module stop, guard pages,
 * read-only module data, buffer ownership - and the per-module stress option.
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "keel/keel.h"

KEEL_MODULE_DECLARE(leaky);

static int leaky_line; /* the line of the allocation leaky_init leaks */
static void *leaked;

static keel_status leaky_init(void)
{
    /* a module that allocates in its init and forgets to free in its exit */
    leaky_line = __LINE__ + 1;
    return keel_heap_alloc(KEEL_MODULE_REF(leaky), 300, &leaked);
}

KEEL_MODULE(alpha, "1", NULL, NULL, NULL, NULL);
KEEL_MODULE(beta, "1", NULL, NULL, NULL, NULL);
KEEL_MODULE(leaky, "1", leaky_init, NULL, NULL, NULL);
KEEL_MODULE(gamma, "1", NULL, NULL, NULL, NULL);
KEEL_MODULE(delta, "1", NULL, NULL, NULL, NULL);
KEEL_MODULE(sparse, "1", NULL, NULL, NULL, NULL);

#define ALPHA KEEL_MODULE_REF(alpha)
#define BETA  KEEL_MODULE_REF(beta)

static keel_heap_stats stats(const keel_module *m)
{
    keel_heap_stats st;
    keel_test_ok(keel_heap_stats_get(m, &st));
    return st;
}

/* ---- both builds ------------------------------------------------------------------------ */

/* ---- big blocks: pages untouched, as a release build leaves them ------------------------ */

#define SPARSE    KEEL_MODULE_REF(sparse)
#define BIG       ((size_t)256 << 20) /* 256 MiB: allocated, never touched by the test */
#define BIG_TOUCH ((size_t)16 << 20)  /* at most this much of it may become resident */

/* Bytes of [p, p+len) resident, by mincore(); -1 (printed) where mincore cannot say. */
static long long resident_bytes(const void *p, size_t len)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)p & ~(uintptr_t)(ps - 1);
    size_t pages = ((uintptr_t)p + len - start + ps - 1) / ps;
    unsigned char *vec = (unsigned char *)malloc(pages);
    assert_non_null(vec);
    void *addr = NULL;
    memcpy(&addr, &start, sizeof(addr));
    long long n = 0;
    if (mincore(addr, pages * ps, vec) != 0) {
        print_message("mincore() failed: %s\n", strerror(errno));
        n = -1;
    }
    for (size_t i = 0; i < pages && n >= 0; i++)
        n += (vec[i] & 1) != 0 ? (long long)ps : 0;
    free(vec);
    return n;
}

/* The process's peak resident set since the last reset_peak_rss(): VmHWM of /proc/self/status. */
static long long peak_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long long kib = -1;
    while (kib < 0 && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0)
            kib = strtoll(line + 6, NULL, 10);
    (void)fclose(f);
    assert_true(kib >= 0);
    return kib * 1024;
}

/* The peak resident set back to the current one (Linux 4.0: "5" to clear_refs); false (printed)
 * where that cannot be done: the peak then includes what came before. */
static bool reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    bool ok = f != NULL && fputs("5", f) >= 0;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    if (!ok)
        print_message("cannot reset the peak RSS (/proc/self/clear_refs): %s\n", strerror(errno));
    return ok;
}

/* A free must not make a big block resident, not even for a while (the free may give the pages
 * back before it returns: the peak is measured): at most BIG_TOUCH more, and under ASan its
 * shadow (an eighth of the block, which ASan poisons at every free: not keel's), under TSan its
 * shadow (half the block, which TSan resets at every free: 134 MB measured for 256 MiB). */
static void free_big(void *p)
{
    long long slack = (long long)BIG_TOUCH;
#if defined(__SANITIZE_ADDRESS__)
    print_message("under ASan: its shadow of the freed block (%zu bytes) allowed too\n", BIG / 8);
    slack += (long long)(BIG / 8);
#elif defined(KEEL_TEST_UNDER_TSAN)
    print_message("under TSan: its shadow of the freed block (%zu bytes) allowed too\n", BIG / 2);
    slack += (long long)(BIG / 2);
#endif
    (void)reset_peak_rss();
    long long before = peak_rss_bytes();
    keel_heap_free(SPARSE, p);
    long long grown = peak_rss_bytes() - before;
    print_message("free of %zu bytes: peak RSS grew by %lld bytes\n", BIG, grown);
    assert_true(grown < slack);
}

/* The big block p, just made by `what`: at most BIG_TOUCH of it resident.  Skipped (printed, the
 * block freed) where mincore() cannot say. */
static void expect_untouched(void *p, const char *what)
{
    long long res = resident_bytes(p, BIG);
    if (res < 0) {
        print_message("skipped: mincore() cannot tell which pages of the block are resident\n");
        keel_heap_free(SPARSE, p);
        skip();
    }
    print_message("%s of %zu bytes: %lld bytes resident\n", what, BIG, res);
    assert_true(res < (long long)BIG_TOUCH);
}

static void test_big_block_stays_untouched(void **state)
{
    (void)state;
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(SPARSE, BIG, (void **)&p));
    expect_untouched(p, "keel_heap_alloc");
#if KEEL_DEVEL
    /* poisoned on its first heap.fill bytes (1 MiB by default) */
    assert_int_equal(p[0], 0xA5);
    assert_int_equal(p[((size_t)1 << 20) - 1], 0xA5);
#endif
    free_big(p);
}

static void test_big_calloc_stays_untouched_and_zero(void **state)
{
    (void)state;
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_calloc(SPARSE, BIG / 64, 64, (void **)&p));
#ifdef KEEL_TEST_UNDER_TSAN
    /* TSan's calloc (keel's system backend under the sanitizers) zeroes every byte itself */
    print_message("under TSan: its calloc writes the block; only its zeroes are checked\n");
#else
    expect_untouched(p, "keel_heap_calloc");
#endif
    const size_t at[] = {0, 1, 4095, ((size_t)1 << 20) + 3, BIG / 2, BIG - 4096, BIG - 1};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        assert_int_equal(p[at[i]], 0);
    free_big(p);
}

static void test_big_realloc_stays_untouched(void **state)
{
    (void)state;
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(SPARSE, 100, (void **)&p));
    memset(p, 7, 100);
    keel_test_ok(keel_heap_realloc(SPARSE, (void **)&p, BIG));
    expect_untouched(p, "keel_heap_realloc");
    for (int i = 0; i < 100; i++)
        assert_int_equal(p[i], 7);
    free_big(p);
}

static void test_alloc_free_and_accounting(void **state)
{
    (void)state;
    void *a = NULL;
    void *b = NULL;
    void *c = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 100, &a));
    keel_test_ok(keel_heap_calloc(ALPHA, 10, 20, &b));
    keel_test_ok(keel_heap_aligned(ALPHA, 256, 64, &c));
    assert_int_equal((uintptr_t)c % 256, 0);
    for (int i = 0; i < 200; i++)
        assert_int_equal(((unsigned char *)b)[i], 0);
    memset(a, 1, 100);
    keel_heap_stats st = stats(ALPHA);
    assert_int_equal(st.live_blocks, 3);
    assert_int_equal(st.allocations, 3);
    assert_true(st.live_bytes >= 364);
    keel_test_ok(keel_heap_realloc(ALPHA, &a, 5000));
    assert_int_equal(((unsigned char *)a)[99], 1); /* kept */
    keel_heap_free(ALPHA, a);
    keel_heap_free(ALPHA, b);
    keel_heap_free(ALPHA, c);
    keel_heap_free(ALPHA, NULL);
    st = stats(ALPHA);
    assert_int_equal(st.live_blocks, 0);
    assert_int_equal(st.live_bytes, 0);
    assert_true(st.peak_bytes >= 5000);
    assert_int_equal(stats(BETA).allocations, 0); /* another module saw nothing */
    char json[2048];
    (void)keel_heap_stats_json(json, sizeof(json));
    assert_non_null(strstr(json, "{\"module\":\"alpha\",\"live_bytes\":0,"));
}

/* What a block counts for: its requested size (devel), its usable size (release). */
static unsigned long long counted(void *p, size_t size)
{
#if KEEL_DEVEL
    (void)p;
    return size;
#else
    (void)size;
    return malloc_usable_size(p);
#endif
}

/*
 * Exact to the byte for one thread, across many folds of its batched deltas
 * and every size; sized: freed with keel_heap_free_sized, the last round's
 * blocks after a realloc that shrinks or grows them.
 */
static void accounting_round_trip(const keel_module *m, bool sized)
{
    enum { N = 700 };
    static void *blocks[N];
    static size_t sizes[N];
    unsigned long long live = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            sizes[i] = (size_t)i * 37 + (size_t)round; /* 0 .. 25864: past the small sizes */
            keel_test_ok(keel_heap_alloc(m, sizes[i], &blocks[i]));
            live += counted(blocks[i], sizes[i]);
        }
        keel_heap_stats st = stats(m);
        assert_int_equal(st.live_bytes, live);
        assert_int_equal(st.peak_bytes, live); /* the first round's peak is lower */
        assert_int_equal(st.live_blocks, N);
        assert_int_equal(st.allocations, (unsigned long long)(round + 1) * N);
        for (int i = 0; sized && round == 1 && i < N; i += 3) {
            live -= counted(blocks[i], sizes[i]);
            sizes[i] = i % 2 == 0 ? sizes[i] / 2 : sizes[i] + 3000;
            keel_test_ok(keel_heap_realloc(m, &blocks[i], sizes[i]));
            live += counted(blocks[i], sizes[i]);
        }
        unsigned long long frees = stats(m).frees; /* devel: a realloc frees the old block */
        assert_int_equal(stats(m).live_bytes, live);
        for (int i = 0; i < N; i++) {
            live -= counted(blocks[i], sizes[i]);
            if (sized)
                keel_heap_free_sized(m, blocks[i], sizes[i]);
            else
                keel_heap_free(m, blocks[i]);
            if (i == N / 2)
                assert_int_equal(stats(m).live_bytes, live);
        }
        st = stats(m);
        assert_int_equal(st.live_bytes, 0);
        assert_int_equal(st.live_blocks, 0);
        assert_int_equal(st.frees, frees + N);
    }
}

static void test_accounting_is_exact(void **state)
{
    (void)state;
    accounting_round_trip(KEEL_MODULE_REF(gamma), false);
}

static void test_sized_free_accounting_is_exact(void **state)
{
    (void)state;
    accounting_round_trip(KEEL_MODULE_REF(delta), true);
    unsigned long long frees = stats(KEEL_MODULE_REF(delta)).frees;
    keel_heap_free_sized(KEEL_MODULE_REF(delta), NULL, 100); /* like free(NULL) */
    assert_int_equal(stats(KEEL_MODULE_REF(delta)).frees, frees);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    void *p = NULL;
    keel_status s = keel_heap_aligned(ALPHA, 48, 10, &p);
    assert_int_equal(keel_status_code(s), KEEL_E_INVAL);
    keel_status_free(s);
    s = keel_heap_calloc(ALPHA, SIZE_MAX / 2, 4, &p);
    assert_int_equal(keel_status_code(s), KEEL_E_RANGE);
    keel_status_free(s);
    assert_null(p);
}

static int quota_reports;
static bool count_quota(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    quota_reports += info->kind == KEEL_REPORT_QUOTA;
    return true;
}

static void test_quota_in_one_module_only(void **state)
{
    (void)state;
    (void)keel_report_set_handler(count_quota, NULL);
    keel_test_ok(keel_heap_set_quota(ALPHA, 16384));
    void *blocks[64];
    int n = 0;
    keel_status s = KEEL_OK;
    while (n < 64) {
        s = keel_heap_alloc(ALPHA, 1000, &blocks[n]);
        if (!keel_ok(s))
            break;
        n++;
    }
    assert_in_range(n, 12, 16);
    assert_int_equal(keel_status_code(s), KEEL_E_FULL);
    char text[512];
    (void)keel_status_format(s, text, sizeof(text));
    keel_status_free(s);
    assert_non_null(strstr(text, "module 'alpha' is over its memory quota (16384 bytes)"));
    assert_int_equal(quota_reports, 1);
    assert_int_equal(stats(ALPHA).failures, 1);
    /* beta keeps allocating */
    void *big = NULL;
    keel_test_ok(keel_heap_alloc(BETA, 1 << 20, &big));
    keel_heap_free(BETA, big);
    /* freeing makes room again */
    keel_heap_free(ALPHA, blocks[--n]);
    keel_test_ok(keel_heap_alloc(ALPHA, 1000, &blocks[n++]));
    while (n > 0)
        keel_heap_free(ALPHA, blocks[--n]);
    (void)keel_report_set_handler(NULL, NULL);
}

static void test_realloc_over_quota_keeps_the_block(void **state)
{
    (void)state;
    (void)keel_report_set_handler(count_quota, NULL);
    keel_test_ok(keel_heap_set_quota(ALPHA, 8192));
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 1000, (void **)&p));
    memset(p, 7, 1000);
    void *q = p;
    keel_status s = keel_heap_realloc(ALPHA, &q, 100000);
    assert_int_equal(keel_status_code(s), KEEL_E_FULL);
    keel_status_free(s);
    assert_ptr_equal(q, p); /* unchanged, still valid */
    assert_int_equal(p[999], 7);
    assert_int_equal(quota_reports, 1);
    keel_test_ok(keel_heap_realloc(ALPHA, &q, 4000)); /* within the quota */
    assert_int_equal(((unsigned char *)q)[999], 7);
    assert_int_equal(stats(ALPHA).live_blocks, 1);
    keel_heap_free(ALPHA, q);
    assert_int_equal(stats(ALPHA).live_bytes, 0);
    (void)keel_report_set_handler(NULL, NULL);
}

typedef struct worker {
    const keel_module *mine;
    const keel_module *other;
    unsigned seed;
    void *handoff[256];
} worker;

static void *churn(void *arg)
{
    worker *w = (worker *)arg;
    void *live[64] = {NULL};
    for (int i = 0; i < 20000; i++) {
        int k = (int)(rand_r(&w->seed) % 64);
        const keel_module *m = (k % 2 == 0) ? w->mine : w->other;
        if (live[k] != NULL)
            keel_heap_free(m, live[k]);
        size_t size = 16 + (size_t)(rand_r(&w->seed) % 2048);
        if (!keel_ok(keel_heap_alloc(m, size, &live[k])))
            return (void *)1;
        memset(live[k], k, size);
    }
    for (int k = 0; k < 64; k++)
        keel_heap_free(k % 2 == 0 ? w->mine : w->other, live[k]);
    return NULL;
}

static void test_two_heaps_many_threads(void **state)
{
    (void)state;
    worker w[4] = {{ALPHA, BETA, 1, {NULL}},
                   {BETA, ALPHA, 2, {NULL}},
                   {ALPHA, BETA, 3, {NULL}},
                   {BETA, ALPHA, 4, {NULL}}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, &w[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        assert_int_equal(pthread_join(t[i], &r), 0);
        assert_null(r);
    }
    assert_int_equal(stats(ALPHA).live_blocks, 0);
    assert_int_equal(stats(BETA).live_blocks, 0);
    assert_int_equal(stats(ALPHA).live_bytes, 0);
    assert_int_equal(stats(ALPHA).allocations, stats(ALPHA).frees);
    keel_test_ok(keel_heap_check(ALPHA));
    keel_test_ok(keel_heap_check(BETA));
}

#if KEEL_DEVEL

/* ---- collecting heap reports (policy: report, so the test goes on) ------------------- */

static char seen[8192];
static int nseen;
static bool collect(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    if (info->kind != KEEL_REPORT_HEAP && info->kind != KEEL_REPORT_LEAK)
        return false;
    nseen++;
    size_t len = strlen(seen);
    (void)snprintf(seen + len, sizeof(seen) - len, "%s|%s|%s:%d|", info->message, info->text,
                   info->file, info->line);
    return true;
}

static void watch(void)
{
    keel_test_ok(keel_options_set("report.heap=report"));
    seen[0] = '\0';
    nseen = 0;
    (void)keel_report_set_handler(collect, NULL);
}

/* keel_heap_check(ALPHA) fails, with one report: `report`. */
static void check_finds(const char *report)
{
    keel_status s = keel_heap_check(ALPHA);
    assert_false(keel_ok(s));
    keel_status_free(s);
    assert_int_equal(nseen, 1);
    assert_non_null(strstr(seen, report));
}

static void test_fresh_and_freed_poison(void **state)
{
    (void)state;
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 64, (void **)&p));
    for (int i = 0; i < 64; i++)
        assert_int_equal(p[i], 0xA5);
    keel_heap_free(ALPHA, p);
    for (int i = 0; i < 64; i++) /* in quarantine: still mapped, poisoned */
        assert_int_equal(p[i], 0xDD);
}

/* heap.fill=4096: a 64 KiB block is poisoned on its first 4096 bytes, fresh and freed, and a
 * write after free there is found; one past them is not (those bytes were never poisoned). */
static void test_fill_limit_poisons_the_first_bytes(void **state)
{
    (void)state;
    keel_test_ok(keel_options_set("heap.fill=4096"));
    watch();
    enum { SIZE = 65536, FILL = 4096 };
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, SIZE, (void **)&p));
    for (int i = 0; i < FILL; i++)
        assert_int_equal(p[i], 0xA5);
    memset(p, 1, SIZE);
    keel_heap_free(ALPHA, p);
    for (int i = 0; i < FILL; i++) /* in quarantine: still mapped, poisoned */
        assert_int_equal(p[i], 0xDD);
    assert_int_equal(p[FILL], 1); /* past the fill: as the program left it */
    p[FILL + 10] = 42;            /* not poisoned: not checked */
    keel_test_ok(keel_heap_check(ALPHA));
    assert_int_equal(nseen, 0);
    p[100] = 42; /* the bug, in the poisoned bytes */
    check_finds("write after free: a freed 65536-byte block of module 'alpha' was changed at "
                "offset 100");
    keel_test_ok(keel_options_set("heap.fill=1048576"));
}

/* heap.fill=0: nothing is filled, so a write after free is not found; a block freed then is
 * still checked on the bytes it had poisoned when heap.fill grows again (none), and a block
 * freed under a larger heap.fill on all of its poisoned bytes after heap.fill shrinks. */
static void test_fill_zero_fills_nothing(void **state)
{
    (void)state;
    keel_test_ok(keel_options_set("heap.fill=0"));
    watch();
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 100, (void **)&p));
    memset(p, 1, 100);
    keel_heap_free(ALPHA, p);
    for (int i = 0; i < 100; i++) /* not poisoned */
        assert_int_equal(p[i], 1);
    p[10] = 42; /* a write after free, not seen */
    keel_test_ok(keel_options_set("heap.fill=1048576"));
    keel_test_ok(keel_heap_check(ALPHA)); /* no poison of p's is checked, for none was written */
    assert_int_equal(nseen, 0);
    unsigned char *q = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 100, (void **)&q));
    keel_heap_free(ALPHA, q); /* poisoned on its 100 bytes */
    keel_test_ok(keel_options_set("heap.fill=0"));
    q[99] = 42;
    check_finds("write after free: a freed 100-byte block of module 'alpha' was changed at "
                "offset 99");
    keel_test_ok(keel_options_set("heap.fill=1048576"));
}

static void test_overflow_into_red_zone(void **state)
{
    (void)state;
    watch();
    unsigned char *p = NULL;
    int line = __LINE__ + 1;
    keel_test_ok(keel_heap_alloc(ALPHA, 40, (void **)&p));
    p[43] = 1; /* 4 bytes past the end */
    keel_heap_free(ALPHA, p);
    assert_int_equal(nseen, 1);
    assert_non_null(strstr(seen, "heap overflow: the red zone after a 40-byte block of module "
                                 "'alpha' was overwritten at offset 43"));
    char site[64];
    (void)snprintf(site, sizeof(site), "test_heap.c:%d", line);
    assert_non_null(strstr(seen, site));
}

static void test_underflow_into_red_zone(void **state)
{
    (void)state;
    watch();
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 40, (void **)&p));
    p[-2] = 0;
    keel_test_ok(keel_heap_alloc(BETA, 8, (void **)&p) /* unrelated */);
    keel_status s = keel_heap_check(ALPHA);
    assert_int_equal(keel_status_code(s), KEEL_E_INTERNAL);
    keel_status_free(s);
    assert_non_null(strstr(seen, "heap underflow: the red zone before a 40-byte block"));
}

static void test_write_after_free_found_with_sites(void **state)
{
    (void)state;
    watch();
    unsigned char *p = NULL;
    int alloc_line = __LINE__ + 1;
    keel_test_ok(keel_heap_alloc(ALPHA, 100, (void **)&p));
    int free_line = __LINE__ + 1;
    keel_heap_free(ALPHA, p);
    p[10] = 42; /* the bug */
    check_finds("write after free: a freed 100-byte block of module 'alpha' was changed at "
                "offset 10");
    char site[64];
    (void)snprintf(site, sizeof(site), "test_heap.c:%d", alloc_line);
    assert_non_null(strstr(seen, site));
    (void)snprintf(site, sizeof(site), "freed at %s:%d", __FILE__, free_line);
    assert_non_null(strstr(seen, site));
}

static void test_write_after_free_found_at_reuse(void **state)
{
    (void)state;
    /* 8000 bytes of quarantine: 1000 per shard */
    keel_test_ok(keel_options_set("heap.quarantine=8000"));
    watch();
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 100, (void **)&p));
    keel_heap_free(ALPHA, p);
    p[5] = 1; /* the bug, while the block waits in the quarantine */
    assert_int_equal(nseen, 0);
    void *q = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 900, &q));
    keel_heap_free(ALPHA, q); /* pushes the first block out: its poison is checked */
    assert_int_equal(nseen, 1);
    assert_non_null(strstr(seen, "write after free: a freed 100-byte block of module 'alpha' was "
                                 "changed at offset 5"));
}

static void test_double_free(void **state)
{
    (void)state;
    watch();
    void *p = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 24, &p));
    keel_heap_free(ALPHA, p);
    keel_heap_free(ALPHA, p);
    assert_int_equal(nseen, 1);
    assert_non_null(strstr(seen, "double free: free of a 24-byte block of module 'alpha' that "
                                 "was already freed"));
    assert_int_equal(stats(ALPHA).frees, 1);
}

static void test_free_through_the_wrong_module(void **state)
{
    (void)state;
    watch();
    void *p = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 24, &p));
    keel_heap_free(BETA, p);
    assert_int_equal(nseen, 1);
    assert_non_null(strstr(seen, "free through module 'beta' of a block that module 'alpha' "
                                 "allocated"));
    /* under the report policy it was freed where it belongs */
    assert_int_equal(stats(ALPHA).live_blocks, 0);
    assert_int_equal(stats(BETA).frees, 0);
}

static void test_sized_free_of_the_wrong_size(void **state)
{
    (void)state;
    watch();
    unsigned long long frees = stats(ALPHA).frees;
    void *p = NULL;
    int line = __LINE__ + 1;
    keel_test_ok(keel_heap_alloc(ALPHA, 100, &p));
    int free_line = __LINE__ + 1;
    keel_heap_free_sized(ALPHA, p, 99);
    assert_int_equal(nseen, 1);
    assert_non_null(strstr(seen, "sized free of a 100-byte block of module 'alpha' gave 99 bytes "
                                 "as its size"));
    char site[160];
    (void)snprintf(site, sizeof(site), "block of 100 bytes allocated at %s:%d in %s()", __FILE__,
                   line, __func__);
    assert_non_null(strstr(seen, site));
    (void)snprintf(site, sizeof(site), "test_heap.c:%d|", free_line); /* the report's own site */
    assert_non_null(strstr(seen, site));
    /* freed all the same */
    keel_heap_stats st = stats(ALPHA);
    assert_int_equal(st.live_blocks, 0);
    assert_int_equal(st.live_bytes, 0);
    assert_int_equal(st.frees, frees + 1);
    /* the right size says nothing */
    keel_test_ok(keel_heap_calloc(ALPHA, 3, 50, &p));
    keel_heap_free_sized(ALPHA, p, 150);
    assert_int_equal(nseen, 1);
    /* an aligned block: its size class is not its size's */
    keel_test_ok(keel_heap_aligned(ALPHA, 64, 80, &p));
    keel_heap_free_sized(ALPHA, p, 80);
    assert_int_equal(nseen, 2);
    assert_non_null(strstr(seen, "sized free of a 80-byte block of module 'alpha' aligned to 64"));
    assert_int_equal(stats(ALPHA).live_blocks, 0);
}

static void test_sized_free_through_the_wrong_module_and_twice(void **state)
{
    (void)state;
    watch();
    void *p = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 24, &p));
    keel_heap_free_sized(BETA, p, 24);
    assert_int_equal(nseen, 1);
    assert_non_null(strstr(seen, "sized free through module 'beta' of a block that module "
                                 "'alpha' allocated"));
    assert_int_equal(stats(ALPHA).live_blocks, 0); /* freed where it belongs */
    assert_int_equal(stats(BETA).frees, 0);
    keel_heap_free_sized(ALPHA, p, 24);
    assert_int_equal(nseen, 2);
    assert_non_null(strstr(seen, "double free: sized free of a 24-byte block of module 'alpha'"));
}

static void realloc_foreign(void *p)
{
    void *q = p;
    keel_status s = keel_heap_realloc(ALPHA, &q, 128);
    assert_int_equal(keel_status_code(s), KEEL_E_INVAL);
    keel_status_free(s);
    assert_ptr_equal(q, p);
}

static void test_foreign_realloc(void **state)
{
    (void)state;
    watch();
    /* memory keel never allocated: static data, then (outside the sanitizers, whose own
       allocators may keep unreadable memory right before a block) the process's malloc */
    static unsigned char data[512] __attribute__((aligned(16)));
    realloc_foreign(data + 256);
    assert_int_equal(nseen, 1);
    assert_non_null(strstr(seen, "realloc of"));
    assert_non_null(strstr(seen, "not a block of any keel heap"));
#if !defined(KEEL_TEST_UNDER_TSAN) && !defined(__SANITIZE_ADDRESS__)
    void *p = malloc(64);
    assert_non_null(p);
    memset(p, 0, 64);
    realloc_foreign(p);
    assert_int_equal(nseen, 2);
    free(p);
#endif
}

static void test_leak_reported_at_module_stop(void **state)
{
    (void)state;
    watch();
    keel_test_ok(keel_modules_start());
    void *more = NULL;
    keel_test_ok(keel_heap_alloc(KEEL_MODULE_REF(leaky), 50, &more));
    keel_modules_stop();
    assert_int_equal(nseen, 1);
    assert_non_null(strstr(seen, "module 'leaky' stopped with 2 blocks (350 bytes) still "
                                 "allocated"));
    char site[256];
    (void)snprintf(site, sizeof(site), "1 blocks, 300 bytes allocated at %s:%d in leaky_init()",
                   __FILE__, leaky_line);
    assert_non_null(strstr(seen, site));
}

static void test_buffer_ownership(void **state)
{
    (void)state;
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 512, (void **)&p));
    keel_test_ok(keel_heap_check_buffer(ALPHA, p, 512));
    keel_test_ok(keel_heap_check_buffer(ALPHA, p + 100, 412));
    keel_status s = keel_heap_check_buffer(ALPHA, p + 100, 413);
    assert_int_equal(keel_status_code(s), KEEL_E_RANGE);
    char text[512];
    (void)keel_status_format(s, text, sizeof(text));
    keel_status_free(s);
    assert_non_null(
        strstr(text, "runs 1 bytes past the end of a 512-byte block of module 'alpha'"));
    s = keel_heap_check_buffer(BETA, p, 16); /* another module's block */
    assert_int_equal(keel_status_code(s), KEEL_E_RANGE);
    keel_status_free(s);
    static unsigned char dma_area[4096];
    s = keel_heap_check_buffer(BETA, dma_area + 10, 100);
    assert_int_equal(keel_status_code(s), KEEL_E_RANGE);
    keel_status_free(s);
    keel_test_ok(keel_heap_register_region(BETA, dma_area, sizeof(dma_area)));
    keel_test_ok(keel_heap_check_buffer(BETA, dma_area + 10, 100));
    keel_heap_free(ALPHA, p);
    s = keel_heap_check_buffer(ALPHA, p, 16); /* freed: no longer owned */
    assert_int_equal(keel_status_code(s), KEEL_E_RANGE);
    keel_status_free(s);
}

static void test_stress_fails_one_modules_allocations(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("alpha.alloc:nth=2"));
    void *a = NULL;
    void *b = NULL;
    void *c = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 10, &a));
    keel_status s = keel_heap_alloc(ALPHA, 10, &b);
    assert_int_equal(keel_status_code(s), KEEL_E_INJECTED);
    keel_status_free(s);
    keel_test_ok(keel_heap_alloc(BETA, 10, &c));
    keel_heap_free(ALPHA, a);
    keel_heap_free(BETA, c);
    keel_stress_stats st;
    keel_test_ok(keel_stress_get("alpha.alloc", &st));
    assert_int_equal(st.fires, 1);
    assert_int_equal(stats(ALPHA).failures, 1);
}

static void overflow_guarded(void)
{
    keel_test_ok(keel_options_set("heap.guard-sample=1"));
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(ALPHA, 100, (void **)&p));
    for (int i = 100; i < 200; i++)
        ((volatile unsigned char *)p)[i] = 7; /* runs into the guard page */
}

static void test_guard_page_catches_overflow_at_the_access(void **state)
{
    (void)state;
#ifdef KEEL_TEST_UNDER_TSAN
    skip();
#endif
    char out[8192];
    int st = keel_test_run_child(overflow_guarded, out, sizeof(out));
    assert_true(WIFSIGNALED(st));
    assert_non_null(strstr(out, "heap overflow: access"));
    assert_non_null(strstr(out, "of a 100-byte block of module 'alpha' hit its guard page"));
    assert_non_null(strstr(out, "overflow_guarded")); /* the faulting function, in the backtrace */
}

static unsigned char tables[3 * 4096] __attribute__((aligned(4096)));

static void write_protected(void)
{
    keel_test_ok(keel_module_protect(BETA, tables, sizeof(tables)));
    assert_int_equal(tables[5000], 0); /* reading is fine */
    ((volatile unsigned char *)tables)[5000] = 1;
}

static void test_module_data_read_only_after_init(void **state)
{
    (void)state;
#ifdef KEEL_TEST_UNDER_TSAN
    skip();
#endif
    char out[8192];
    int st = keel_test_run_child(write_protected, out, sizeof(out));
    assert_true(WIFSIGNALED(st));
#if defined(__s390__) || defined(__s390x__) /* the fault names the page (docs/platforms.md) */
    assert_non_null(strstr(out, "write to data of module 'beta' made read-only after its init "
                                "(in its page at offset 4096: the platform's fault names the "
                                "page, not the byte)"));
#else
    assert_non_null(strstr(out, "write to data of module 'beta' made read-only after its init "
                                "(offset 5000)"));
#endif
}

#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_free_and_accounting),
        cmocka_unit_test(test_accounting_is_exact),
        cmocka_unit_test(test_sized_free_accounting_is_exact),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_quota_in_one_module_only),
        cmocka_unit_test(test_realloc_over_quota_keeps_the_block),
        cmocka_unit_test(test_two_heaps_many_threads),
        cmocka_unit_test(test_big_block_stays_untouched),
        cmocka_unit_test(test_big_calloc_stays_untouched_and_zero),
        cmocka_unit_test(test_big_realloc_stays_untouched),
#if KEEL_DEVEL
        cmocka_unit_test(test_fresh_and_freed_poison),
        cmocka_unit_test(test_fill_limit_poisons_the_first_bytes),
        cmocka_unit_test(test_fill_zero_fills_nothing),
        cmocka_unit_test(test_overflow_into_red_zone),
        cmocka_unit_test(test_underflow_into_red_zone),
        cmocka_unit_test(test_write_after_free_found_with_sites),
        cmocka_unit_test(test_write_after_free_found_at_reuse),
        cmocka_unit_test(test_double_free),
        cmocka_unit_test(test_free_through_the_wrong_module),
        cmocka_unit_test(test_sized_free_of_the_wrong_size),
        cmocka_unit_test(test_sized_free_through_the_wrong_module_and_twice),
        cmocka_unit_test(test_foreign_realloc),
        cmocka_unit_test(test_leak_reported_at_module_stop),
        cmocka_unit_test(test_buffer_ownership),
        cmocka_unit_test(test_stress_fails_one_modules_allocations),
        cmocka_unit_test(test_guard_page_catches_overflow_at_the_access),
        cmocka_unit_test(test_module_data_read_only_after_init),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]));
}
