/*
 * heaps.c - SQLite and libgit2 on keel-gate's module heaps, the failures
 * they saw, and the stats the running gate publishes.
 */
#define _GNU_SOURCE 1
#include "heaps.h"

#include <errno.h>
#include <git2.h>
#include <git2/sys/alloc.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

keel_status gate_heaps_alloc_named(const keel_module *m, size_t size, const char *name, void **out,
                                   char **copy)
{
    KEEL_ASSERT(name != NULL && out != NULL && copy != NULL);
    *out = NULL;
    *copy = NULL;
    size_t len = strlen(name);
    void *mem = NULL;
    keel_status s = keel_heap_calloc(m, 1, size + len + 1, &mem);
    if (!keel_ok(s))
        return s;
    *copy = (char *)mem + size;
    memcpy(*copy, name, len + 1);
    *out = mem;
    return KEEL_OK;
}

/* ---- what a library's allocation that failed said ---------------------------------- */

typedef struct lib_failure {
    bool set;
    int code;
    char module[64];
    char message[256];
} lib_failure;

static __thread lib_failure last_failure;

/* A library asked for memory and gets NULL: remember why (it will only say "out of memory"). */
static void note_failure(keel_status s)
{
    last_failure.set = true;
    last_failure.code = keel_status_code(s);
    const char *module = keel_status_get_str(s, "module");
    (void)snprintf(last_failure.module, sizeof(last_failure.module), "%s",
                   module != NULL ? module : "");
    (void)snprintf(last_failure.message, sizeof(last_failure.message), "%s",
                   keel_status_message(s));
    keel_status_free(s);
}

keel_status gate_heaps_take_failure(void)
{
    if (!last_failure.set)
        return KEEL_OK;
    last_failure.set = false;
    return keel_status_with_str(KEEL_ERR(last_failure.code, "%s", last_failure.message), "module",
                                last_failure.module);
}

/* ---- SQLite on gate_store's heap ----------------------------------------------------- */

/*
 * SQLite asks a block's size back (xSize) and keel's heap API does not say
 * it: each block starts with its size, in a header that keeps the block
 * 16-byte aligned.
 */
enum { SQ_HEADER = 16 };

#define STORE_HEAP KEEL_MODULE_REF(gate_store)

static void *sq_malloc(int n)
{
    if (n < 0)
        return NULL;
    void *b = NULL;
    keel_status s = keel_heap_alloc(STORE_HEAP, (size_t)n + SQ_HEADER, &b);
    if (!keel_ok(s)) {
        note_failure(s);
        return NULL;
    }
    size_t size = (size_t)n;
    memcpy(b, &size, sizeof(size));
    return (char *)b + SQ_HEADER;
}

static void sq_free(void *p)
{
    if (p != NULL)
        keel_heap_free(STORE_HEAP, (char *)p - SQ_HEADER);
}

static void *sq_realloc(void *p, int n)
{
    if (p == NULL)
        return sq_malloc(n);
    if (n < 0)
        return NULL;
    void *b = (char *)p - SQ_HEADER;
    keel_status s = keel_heap_realloc(STORE_HEAP, &b, (size_t)n + SQ_HEADER);
    if (!keel_ok(s)) {
        note_failure(s);
        return NULL; /* p is unchanged and still SQLite's */
    }
    size_t size = (size_t)n;
    memcpy(b, &size, sizeof(size));
    return (char *)b + SQ_HEADER;
}

static int sq_size(void *p)
{
    if (p == NULL)
        return 0;
    size_t size = 0;
    memcpy(&size, (char *)p - SQ_HEADER, sizeof(size));
    return (int)size;
}

static int sq_roundup(int n)
{
    return (n + 7) & ~7;
}

static int sq_init(void *app)
{
    (void)app;
    return SQLITE_OK;
}

static void sq_shutdown(void *app)
{
    (void)app;
}

static const sqlite3_mem_methods sq_methods = {sq_malloc,  sq_free, sq_realloc,  sq_size,
                                               sq_roundup, sq_init, sq_shutdown, NULL};
static sqlite3_mem_methods sq_previous; /* what SQLite had: all NULL for its default */
static bool sq_installed;

keel_status gate_heaps_sqlite_install(void)
{
    KEEL_ASSERT(!sq_installed);
    sqlite3_mem_methods prev;
    memset(&prev, 0, sizeof(prev));
    int rc = sqlite3_config(SQLITE_CONFIG_GETMALLOC, &prev);
    if (rc == SQLITE_MISUSE)
        return KEEL_ERR(KEEL_E_STATE,
                        "SQLite is already initialised in this process: its memory cannot go "
                        "on module gate_store's heap (start keel's modules before anything "
                        "uses SQLite)");
    sqlite3_mem_methods mine = sq_methods;
    if (rc == SQLITE_OK)
        rc = sqlite3_config(SQLITE_CONFIG_MALLOC, &mine);
    if (rc == SQLITE_OK)
        rc = sqlite3_initialize();
    if (rc != SQLITE_OK) {
        keel_status s = gate_heaps_take_failure();
        if (rc != SQLITE_MISUSE && sqlite3_config(SQLITE_CONFIG_MALLOC, &prev) != SQLITE_OK)
            (void)KEEL_REPORT(KEEL_REPORT_USER, "SQLite's own allocator could not be put back");
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "initialising SQLite on module gate_store's heap");
        return KEEL_ERR(KEEL_E_IO, "cannot initialise SQLite on module gate_store's heap: %s",
                        sqlite3_errstr(rc));
    }
    sq_previous = prev;
    sq_installed = true;
    return KEEL_OK;
}

void gate_heaps_sqlite_remove(void)
{
    if (!sq_installed)
        return;
    sq_installed = false;
    /* every connection is closed by now (the contract): SQLite frees the rest */
    int rc = sqlite3_shutdown();
    if (rc == SQLITE_OK)
        rc = sqlite3_config(SQLITE_CONFIG_MALLOC, &sq_previous);
    if (rc != SQLITE_OK)
        (void)KEEL_REPORT(
            KEEL_REPORT_USER,
            "SQLite could not be shut down (%s): its memory stays on gate_store's heap",
            sqlite3_errstr(rc));
}

/* ---- libgit2 on gate_git's heap ---------------------------------------------------------- */

#define GIT_HEAP KEEL_MODULE_REF(gate_git)

static void *lg_alloc(size_t n, bool zero)
{
    void *p = NULL;
    keel_status s = zero ? keel_heap_calloc(GIT_HEAP, 1, n, &p) : keel_heap_alloc(GIT_HEAP, n, &p);
    if (!keel_ok(s)) {
        note_failure(s);
        return NULL;
    }
    return p;
}

static void *lg_realloc_to(void *ptr, size_t size)
{
    keel_status s = keel_heap_realloc(GIT_HEAP, &ptr, size);
    if (!keel_ok(s)) {
        note_failure(s);
        return NULL; /* ptr is unchanged and still libgit2's */
    }
    return ptr;
}

/* n bytes of str and a NUL */
static char *lg_copy(const char *str, size_t n)
{
    if (n == (size_t)-1)
        return NULL;
    char *p = (char *)lg_alloc(n + 1, false);
    if (p != NULL) {
        memcpy(p, str, n);
        p[n] = '\0';
    }
    return p;
}

static bool lg_product(size_t nelem, size_t elsize, size_t *out)
{
    if (elsize != 0 && nelem > (size_t)-1 / elsize)
        return false;
    *out = nelem * elsize;
    return true;
}

/* libgit2 passes its own file and line: the heap records this file's (leak reports name it) */
static void *lg_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return lg_alloc(n, false);
}

static void *lg_calloc(size_t nelem, size_t elsize, const char *file, int line)
{
    (void)file;
    (void)line;
    size_t n = 0;
    return lg_product(nelem, elsize, &n) ? lg_alloc(n, true) : NULL;
}

static char *lg_strdup(const char *str, const char *file, int line)
{
    (void)file;
    (void)line;
    return lg_copy(str, strlen(str));
}

static char *lg_strndup(const char *str, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return lg_copy(str, strnlen(str, n));
}

static char *lg_substrdup(const char *str, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return lg_copy(str, n);
}

static void *lg_realloc(void *ptr, size_t size, const char *file, int line)
{
    (void)file;
    (void)line;
    return lg_realloc_to(ptr, size);
}

static void *lg_reallocarray(void *ptr, size_t nelem, size_t elsize, const char *file, int line)
{
    (void)file;
    (void)line;
    size_t n = 0;
    return lg_product(nelem, elsize, &n) ? lg_realloc_to(ptr, n) : NULL;
}

static void *lg_mallocarray(size_t nelem, size_t elsize, const char *file, int line)
{
    (void)file;
    (void)line;
    size_t n = 0;
    return lg_product(nelem, elsize, &n) ? lg_alloc(n, false) : NULL;
}

static void lg_free(void *ptr)
{
    keel_heap_free(GIT_HEAP, ptr);
}

static bool lg_installed;

keel_status gate_heaps_libgit2_install(void)
{
    KEEL_ASSERT(!lg_installed);
    /*
     * The allocator can change only while libgit2 is not initialised.  It is
     * set first and libgit2 initialised on it once: the count that init
     * returns says whether libgit2 was in use already (then libgit2's own
     * allocator goes back at once, before this thread allocates anything).
     * Not an init-shutdown-init probe: each first init loads the system's CA
     * certificates (libgit2's TLS), 3 ms of the 23 ms of processor a
     * keel-gate command took (docs/benchmarks.md, session 21).
     */
    git_allocator mine = {lg_malloc,  lg_calloc,       lg_strdup,      lg_strndup, lg_substrdup,
                          lg_realloc, lg_reallocarray, lg_mallocarray, lg_free};
    if (git_libgit2_opts(GIT_OPT_SET_ALLOCATOR, &mine) != 0)
        return KEEL_ERR(KEEL_E_INTERNAL, "libgit2 refused module gate_git's allocator");
    int users = git_libgit2_init();
    if (users > 1) {
        if (git_libgit2_opts(GIT_OPT_SET_ALLOCATOR, NULL) != 0)
            (void)KEEL_REPORT(KEEL_REPORT_USER, "libgit2's own allocator could not be put back");
        (void)git_libgit2_shutdown();
        return KEEL_ERR(KEEL_E_STATE,
                        "libgit2 is already initialised in this process: its memory cannot go "
                        "on module gate_git's heap (start keel's modules before anything uses "
                        "libgit2)");
    }
    if (users < 0) {
        keel_status s = gate_heaps_take_failure();
        if (git_libgit2_opts(GIT_OPT_SET_ALLOCATOR, NULL) != 0)
            (void)KEEL_REPORT(KEEL_REPORT_USER, "libgit2's own allocator could not be put back");
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "initialising libgit2 on module gate_git's heap");
        return KEEL_ERR(KEEL_E_IO, "cannot initialise libgit2 on module gate_git's heap");
    }
    lg_installed = true;
    return KEEL_OK;
}

void gate_heaps_libgit2_remove(void)
{
    if (!lg_installed)
        return;
    lg_installed = false;
    int left = git_libgit2_shutdown();
    if (left != 0) {
        (void)KEEL_REPORT(
            KEEL_REPORT_USER,
            "libgit2 is still in use (%d) as module gate_git stops: its memory stays on "
            "the module's heap",
            left);
        return;
    }
    if (git_libgit2_opts(GIT_OPT_SET_ALLOCATOR, NULL) != 0)
        (void)KEEL_REPORT(KEEL_REPORT_USER, "libgit2's own allocator could not be put back");
}

/* ---- the stats the running gate publishes ---------------------------------------------------- */

keel_status gate_heaps_publish(const char *path)
{
    KEEL_ASSERT(path != NULL);
    /* keel_heap_stats_get folds this thread's counts into a heap's (the JSON only reads them) */
    const keel_module *const parts[] = {KEEL_MODULE_REF(gate),       KEEL_MODULE_REF(gate_config),
                                        KEEL_MODULE_REF(gate_store), KEEL_MODULE_REF(gate_git),
                                        KEEL_MODULE_REF(gate_exec),  KEEL_MODULE_REF(gate_sched)};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        keel_heap_stats st;
        keel_status s = keel_heap_stats_get(parts[i], &st);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "reading the heap stats of module '%s'", parts[i]->name);
    }
    char stats[16384];
    size_t len = keel_heap_stats_json(stats, sizeof(stats));
    if (len >= sizeof(stats))
        return KEEL_ERR(KEEL_E_RANGE, "the heap stats take %zu bytes, more than %zu", len,
                        sizeof(stats));
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return KEEL_ERR(KEEL_E_RANGE, "path '%s' is too long", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return KEEL_ERR_SYS(errno, "cannot write '%s'", tmp);
    int w = fprintf(f, "{\"pid\":%ld,\"time\":%lld,\"stats\":%s}\n", (long)getpid(),
                    (long long)time(NULL), stats);
    int c = fclose(f);
    if (w < 0 || c != 0) {
        int e = errno;
        (void)unlink(tmp);
        return KEEL_ERR_SYS(e, "cannot write '%s'", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        (void)unlink(tmp);
        return KEEL_ERR_SYS(e, "cannot rename '%s' to '%s'", tmp, path);
    }
    return KEEL_OK;
}
