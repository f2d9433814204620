/*
 * test_sites.c - every kind of report points at the user's code (issue 15, part 2):
 * its site (file:line in function) and the first frame of its backtrace are in
 * this file, on stderr and in the KEEL_REPORT JSON line alike; keel's own frames
 * (found by the object they live in, not by their names), the signal trampoline
 * and the libc frames below it are dropped.  A status keel makes for the
 * program names the program's call too.
 *
 * Each test runs the program in a child (keel_test_run_child) that writes a
 * report file; the parent reads both renderings.
 */
#include "testutil.h"

#include <pthread.h>
#include <time.h>

static char json_path[128];

static bool names_this_file(const char *text, size_t len);
static int spinning; /* atomic: the watchdog's thread ends the spin */

/*
 * The third view of a report: a handler's.  The first report's site and first frame are in this file too
 * (else a line the parent looks for).  A watchdog report also ends spin_until_reported.
 */
static bool check_handler(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    if (info->kind == KEEL_REPORT_WATCHDOG)
        __atomic_store_n(&spinning, 0, __ATOMIC_RELEASE);
    static bool checked; /* the first report: the one the parent checks */
    if (checked)
        return false;
    checked = true;
    if (!names_this_file(info->file, strlen(info->file)))
        (void)fprintf(stderr, "keel-test: the handler's site is %s\n", info->file);
    keel_frame f;
    if (info->nframes < 1)
        (void)fprintf(stderr, "keel-test: the handler has no frames\n");
    else if (!keel_backtrace_symbolize(info->frames[0], &f) ||
             !names_this_file(f.file, strlen(f.file)))
        (void)fprintf(stderr, "keel-test: the handler's first frame is %s (%s)\n", f.func, f.file);
    return false;
}

static void use_json_file(void)
{
    (void)keel_report_set_handler(check_handler, NULL);
    char opt[192];
    (void)snprintf(opt, sizeof(opt), "report.file=%s", json_path);
    keel_status s = keel_options_set(opt);
    if (!keel_ok(s))
        exit(3);
}

static const char *const this_file = __FILE__;

/* Does `text` (up to its end or `end`) name this file: "<...>tests/test_sites.c"? */
static bool names_this_file(const char *text, size_t len)
{
    const char *base = strrchr(this_file, '/');
    base = base != NULL ? base + 1 : this_file;
    size_t blen = strlen(base);
    for (size_t i = 0; i + blen <= len; i++)
        if (memcmp(text + i, base, blen) == 0)
            return true;
    return false;
}

/* The line of `text` that starts at `p`, its length. */
static size_t line_len(const char *p)
{
    const char *nl = strchr(p, '\n');
    return nl != NULL ? (size_t)(nl - p) : strlen(p);
}

/* Does the line at p contain what? */
static bool has_in_line(const char *p, const char *what)
{
    const char *w = strstr(p, what);
    return w != NULL && w < p + line_len(p);
}

/* The report of `kind` on stderr: its site and first frame are in this file. */
static void check_human(const char *out, const char *kind, const char *what)
{
    char head[64];
    (void)snprintf(head, sizeof(head), "keel: %s: ", kind);
    const char *r = strstr(out, head);
    while (r != NULL && what != NULL && !has_in_line(r, what))
        r = strstr(r + 1, head);
    if (r == NULL)
        fail_msg("no '%s' report in:\n%s", kind, out);
    const char *at = strstr(r, "\n  at ");
    assert_non_null(at);
    at += 6;
    if (!names_this_file(at, line_len(at)))
        fail_msg("the site of the '%s' report is not in %s:\n%s", kind, this_file, r);
    const char *bt = strstr(r, "\n  backtrace:\n    #0 ");
    const char *end = strstr(r, "\n  policy: ");
    if (bt == NULL || (end != NULL && bt > end))
        fail_msg("the '%s' report has no backtrace:\n%s", kind, r);
    bt += strlen("\n  backtrace:\n");
    if (!names_this_file(bt, line_len(bt)))
        fail_msg("the first frame of the '%s' report is not in %s:\n%s", kind, this_file, r);
}

/* Where the JSON string value of "key" starts after p (past the quote), or NULL. */
static const char *json_field(const char *p, const char *key)
{
    char k[32];
    (void)snprintf(k, sizeof(k), "\"%s\":\"", key);
    const char *f = strstr(p, k);
    return f != NULL ? f + strlen(k) : NULL;
}

/* The report of `kind` in the report file: its site and first frame are in this file. */
static void check_json(const char *kind, const char *what)
{
    FILE *f = fopen(json_path, "r");
    assert_non_null(f);
    if (f == NULL)
        return;
    static char line[65536];
    char head[64];
    (void)snprintf(head, sizeof(head), "{\"kind\":\"%s\",", kind);
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strncmp(line, head, strlen(head)) == 0 && (what == NULL || has_in_line(line, what));
    (void)fclose(f);
    (void)unlink(json_path);
    if (!found)
        fail_msg("no '%s' report in %s", kind, json_path);
    assert_true(keel_test_json_valid(line));
    const char *site = strstr(line, "\"site\":{");
    assert_non_null(site);
    const char *file = json_field(site, "file");
    assert_non_null(file);
    if (!names_this_file(file, (size_t)(strchr(file, '"') - file)))
        fail_msg("the JSON site of the '%s' report is not in %s:\n%s", kind, this_file, line);
    const char *bt = strstr(line, "\"backtrace\":[{");
    if (bt == NULL)
        fail_msg("the JSON '%s' report has no backtrace:\n%s", kind, line);
    file = json_field(bt, "file");
    assert_non_null(file);
    if (!names_this_file(file, (size_t)(strchr(file, '"') - file)))
        fail_msg("the first JSON frame of the '%s' report is not in %s:\n%s", kind, this_file,
                 line);
}

/*
 * Run fn in a child with a report file; check the first report of `kind` whose first line
 * has `what` (NULL: any) in both renderings.
 */
static void check_kind_what(void (*fn)(void), const char *kind, const char *what)
{
    (void)snprintf(json_path, sizeof(json_path), "/tmp/keel-test-sites-%d.jsonl", (int)getpid());
    (void)unlink(json_path);
    static char out[65536];
    (void)keel_test_run_child(fn, out, sizeof(out));
    const char *bad = strstr(out, "keel-test: ");
    if (bad != NULL)
        fail_msg("%.*s", (int)line_len(bad), bad);
    check_human(out, kind, what);
    check_json(kind, what);
}

/* The same for the first report of `kind`. */
static void check_kind(void (*fn)(void), const char *kind)
{
    check_kind_what(fn, kind, NULL);
}

/* ---- the program's own report, assertions, errors ------------------------------------------ */

static void user_report(void)
{
    use_json_file();
    (void)KEEL_REPORT(KEEL_REPORT_USER, "queue over its limit");
}

static void test_user(void **state)
{
    (void)state;
    check_kind(user_report, "user");
}

#if KEEL_DEVEL /* (release compiles assertions out) */

static volatile int zero;

static void failed_assertion(void)
{
    use_json_file();
    KEEL_ASSERT(zero == 1);
}

static void test_assert(void **state)
{
    (void)state;
    check_kind(failed_assertion, "assert");
}

/* An assertion in keel's own code that the program's call broke: the site is that call. */
static void failed_assertion_in_keel(void)
{
    use_json_file();
    keel_nonblocking_leave(); /* without an enter */
}

static void test_assert_in_keel(void **state)
{
    (void)state;
    check_kind_what(failed_assertion_in_keel, "assert", "keel_nonblocking_leave() without enter");
}

static void lost_error(void)
{
    use_json_file();
    keel_status s = KEEL_ERR(KEEL_E_IO, "never looked at");
    (void)s;
    (void)keel_status_check_lost(false);
}

static void test_lost_error(void **state)
{
    (void)state;
    check_kind(lost_error, "lost-error");
}

static void leaked_error(void)
{
    use_json_file();
    keel_report_set_policy(KEEL_REPORT_LEAKED_ERROR, KEEL_POLICY_REPORT);
    keel_status s = KEEL_ERR(KEEL_E_IO, "looked at, never freed");
    if (!keel_ok(s))
        (void)keel_status_check_lost(true);
}

static void test_leaked_error(void **state)
{
    (void)state;
    check_kind(leaked_error, "leaked-error");
}

#endif

static void ignored_error(void)
{
    use_json_file();
    keel_report_set_policy(KEEL_REPORT_IGNORED_ERROR, KEEL_POLICY_REPORT);
    keel_status_ignore(KEEL_ERR(KEEL_E_IO, "best effort"), "a cache write may fail");
}

static void test_ignored_error(void **state)
{
    (void)state;
    check_kind(ignored_error, "ignored-error");
}

#if KEEL_DEVEL

/* ---- locks ---------------------------------------------------------------------------------- */

static void lock_order(void)
{
    use_json_file();
    static keel_mutex low = KEEL_MUTEX_INITIALIZER("sites_low", 10);
    static keel_mutex high = KEEL_MUTEX_INITIALIZER("sites_high", 20);
    keel_mutex_lock(&high);
    keel_mutex_lock(&low); /* against the ranks */
    keel_mutex_unlock(&low);
    keel_mutex_unlock(&high);
}

static void test_lock_order(void **state)
{
    (void)state;
    check_kind(lock_order, "lock-order");
}

static void lock_cycle(void)
{
    use_json_file();
    static keel_mutex a = KEEL_MUTEX_INITIALIZER("sites_a", 0);
    static keel_mutex b = KEEL_MUTEX_INITIALIZER("sites_b", 0);
    keel_mutex_lock(&a);
    keel_mutex_lock(&b); /* learns a -> b */
    keel_mutex_unlock(&b);
    keel_mutex_unlock(&a);
    keel_mutex_lock(&b);
    keel_mutex_lock(&a); /* closes the cycle */
    keel_mutex_unlock(&a);
    keel_mutex_unlock(&b);
}

/* A cycle's report also shows where each edge was learned: from the program's frame on. */
static void test_lock_cycle(void **state)
{
    (void)state;
    char out[65536];
    (void)snprintf(json_path, sizeof(json_path), "/tmp/keel-test-sites-%d.jsonl", (int)getpid());
    (void)unlink(json_path);
    (void)keel_test_run_child(lock_cycle, out, sizeof(out));
    (void)unlink(json_path);
    check_human(out, "lock-order", NULL);
    const char *edge = strstr(out, "  'sites_a' -> 'sites_b': ");
    assert_non_null(edge);
    const char *first = strstr(edge, "      #0 ");
    if (first == NULL)
        fail_msg("the edge has no backtrace:\n%s", edge);
    if (!names_this_file(first, line_len(first)))
        fail_msg("the edge's first frame is not in %s:\n%s", this_file, edge);
}

static void lock_misuse(void)
{
    use_json_file();
    static keel_mutex m = KEEL_MUTEX_INITIALIZER("sites_misuse", 0);
    keel_mutex_unlock(&m); /* not held */
}

static void test_lock_misuse(void **state)
{
    (void)state;
    check_kind(lock_misuse, "lock-misuse");
}

static void misuse_two_frames(void)
{
    keel_test_ok(keel_options_set("report.frames=2"));
    lock_misuse();
}

/* report.frames counts the program's frames: keel's are dropped first. */
static void test_report_frames_option(void **state)
{
    (void)state;
    check_kind(misuse_two_frames, "lock-misuse");
    static char out[65536];
    (void)keel_test_run_child(misuse_two_frames, out, sizeof(out));
    (void)unlink(json_path);
    const char *bt = strstr(out, "\n  backtrace:\n");
    assert_non_null(bt);
    bt += strlen("\n  backtrace:\n");
    int n = 0;
    while (strncmp(bt, "    #", 5) == 0) {
        n++;
        bt += line_len(bt) + 1;
    }
    assert_int_equal(n, 2);
}

static void lock_blocking(void)
{
    use_json_file();
    keel_spinlock s;
    keel_spinlock_init(&s, "sites_spin", 0);
    keel_spinlock_lock(&s);
    keel_sleep_ms(1); /* blocking under a spinlock */
    keel_spinlock_unlock(&s);
    keel_spinlock_destroy(&s);
}

static void test_lock_blocking(void **state)
{
    (void)state;
    check_kind(lock_blocking, "lock-blocking");
}

enum { TOO_MANY = KEEL_LOCK_MAX_HELD + 1 };

static void lock_limit(void)
{
    use_json_file();
    static keel_mutex m[TOO_MANY];
    static char names[TOO_MANY][24];
    for (int i = 0; i < TOO_MANY; i++) {
        (void)snprintf(names[i], sizeof(names[i]), "sites_many%d", i);
        keel_mutex_init(&m[i], names[i], 0);
    }
    for (int i = 0; i < TOO_MANY; i++)
        keel_mutex_lock(&m[i]);
    for (int i = TOO_MANY; i > 0; i--)
        keel_mutex_unlock(&m[i - 1]);
}

static void test_limit(void **state)
{
    (void)state;
    check_kind(lock_limit, "limit");
}

/* ---- stress points -------------------------------------------------------------------------- */

static void stress_point(void)
{
    use_json_file();
    keel_test_ok(keel_options_set("stress=sites_point;report.stress=report"));
    if (KEEL_STRESS(sites_point))
        (void)printf("fired\n");
}

static void test_stress(void **state)
{
    (void)state;
    check_kind(stress_point, "stress");
}

#endif /* KEEL_DEVEL */

/* ---- modules and heaps ---------------------------------------------------------------------- */

static bool post_should_fail;

static keel_status sites_post(void)
{
    if (post_should_fail)
        return KEEL_ERR(KEEL_E_IO, "the self test read back the wrong block");
    return KEEL_OK;
}

static const keel_post sites_posts[] = {{"readback", sites_post}, {NULL, NULL}};
KEEL_MODULE(sites, "1.0.0", NULL, NULL, NULL, sites_posts);

static void module_post_fails(void)
{
    use_json_file();
    post_should_fail = true;
    keel_status s = keel_modules_start();
    keel_status_free(s);
}

static void test_module(void **state)
{
    (void)state;
    check_kind(module_post_fails, "module");
}

static void over_quota(void)
{
    use_json_file();
    keel_test_ok(keel_heap_set_quota(KEEL_MODULE_REF(sites), 64));
    void *p = NULL;
    keel_status s = keel_heap_alloc(KEEL_MODULE_REF(sites), 256, &p);
    keel_status_free(s);
}

static void test_quota(void **state)
{
    (void)state;
    check_kind(over_quota, "quota");
}

/* The status of a failed allocation names the program's call, not keel's. */
static void test_quota_status_site(void **state)
{
    (void)state;
    keel_report_set_policy(KEEL_REPORT_QUOTA, KEEL_POLICY_COUNT);
    keel_test_ok(keel_heap_set_quota(KEEL_MODULE_REF(sites), 64));
    void *p = NULL;
    keel_status s = keel_heap_alloc(KEEL_MODULE_REF(sites), 256, &p);
    int line = __LINE__ - 1;
    assert_false(keel_ok(s));
    assert_string_equal(keel_status_file(s), __FILE__);
    assert_int_equal(keel_status_line(s), line);
    keel_status_free(s);
    keel_test_ok(keel_heap_set_quota(KEEL_MODULE_REF(sites), 0));
}

/* An error keel makes where no macro passes a site names the program's call (its first frame). */
static void expect_here(keel_status s, int line)
{
    assert_false(keel_ok(s));
    assert_string_equal(keel_status_file(s), __FILE__);
    assert_int_equal(keel_status_line(s), line);
    keel_status_free(s);
}

static void test_status_site(void **state)
{
    (void)state;
    keel_status s = keel_lock_class_budget(NULL, 10);
    expect_here(s, __LINE__ - 1);
    s = keel_options_set("sites.no-such-option=1");
    expect_here(s, __LINE__ - 1);
    post_should_fail = true;
    s = keel_modules_start();
    expect_here(s, __LINE__ - 1);
    post_should_fail = false;
}

#if KEEL_DEVEL

static void heap_overflow(void)
{
    use_json_file();
    keel_report_set_policy(KEEL_REPORT_HEAP, KEEL_POLICY_REPORT);
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(KEEL_MODULE_REF(sites), 24, (void **)&p));
    ((volatile unsigned char *)p)[24] = 1; /* one past the end: the red zone */
    keel_heap_free(KEEL_MODULE_REF(sites), p);
}

static void test_heap(void **state)
{
    (void)state;
    check_kind(heap_overflow, "heap");
}

#if !defined(KEEL_TEST_UNDER_TSAN)
static void heap_guard_fault(void)
{
    use_json_file();
    keel_test_ok(keel_options_set("heap.guard-sample=1"));
    unsigned char *p = NULL;
    keel_test_ok(keel_heap_alloc(KEEL_MODULE_REF(sites), 100, (void **)&p));
    for (int i = 100; i < 200; i++)
        ((volatile unsigned char *)p)[i] = 7; /* runs into the guard page */
}

/* The SIGSEGV handler's frames, the trampoline and libc's below it are dropped. */
static void test_heap_guard_fault(void **state)
{
    (void)state;
    check_kind(heap_guard_fault, "heap");
}
#endif

static void leak_at_stop(void)
{
    use_json_file();
    keel_test_ok(keel_modules_start());
    void *p = NULL;
    keel_test_ok(keel_heap_alloc(KEEL_MODULE_REF(sites), 40, &p));
    keel_modules_stop();
}

static void test_leak(void **state)
{
    (void)state;
    check_kind(leak_at_stop, "leak");
}

/* ---- the watchdog ----------------------------------------------------------------------------- */

static unsigned long long now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

static volatile unsigned long long spun;

/* Busy in this file's code (no call) until the watchdog reports, so the thread's captured
 * stack starts here (a thread stuck in libc is shown there: that is where it is). */
__attribute__((noinline)) static void spin_until_reported(void)
{
    __atomic_store_n(&spinning, 1, __ATOMIC_RELEASE); /* (until check_handler sees the report) */
    unsigned long long end = now_ms() + 5000;
    while (__atomic_load_n(&spinning, __ATOMIC_ACQUIRE))
        if ((++spun & 0xffffffu) == 0 && now_ms() > end)
            break;
}

static void section_overrun(void)
{
    use_json_file();
    keel_test_ok(keel_options_set("watchdog.tick-ms=5"));
    KEEL_SECTION_ENTER(sec, "sites_section", 20);
    spin_until_reported();
    KEEL_SECTION_LEAVE(sec);
    keel_watchdog_stop();
}

static void test_watchdog_section(void **state)
{
    (void)state;
    /* (the "ended" report may be printed first: reports of one overrun in order is part 3) */
    check_kind_what(section_overrun, "watchdog", "still running");
}

static void missed_heartbeat(void)
{
    use_json_file();
    keel_test_ok(keel_options_set("watchdog.tick-ms=5"));
    keel_heartbeat_expect(20);
    spin_until_reported();
    keel_heartbeat_expect(0);
    keel_watchdog_stop();
}

static void test_watchdog_heartbeat(void **state)
{
    (void)state;
    check_kind(missed_heartbeat, "watchdog");
}

#endif /* KEEL_DEVEL */

/* ---- options, at the first use of keel -------------------------------------------------------- */

static char self_exe[4096];

static void exec_with_bad_options(void)
{
    setenv("KEEL_REPORT", json_path, 1);
    setenv("KEEL_OPTIONS", "sites.no-such-option=1", 1);
    execl(self_exe, self_exe, "--first-use", (char *)NULL);
    _exit(5);
}

/* The child's program: its first use of keel meets a malformed KEEL_OPTIONS. */
static int first_use(void)
{
    (void)keel_report_set_handler(check_handler, NULL); /* not a use of keel */
    void *p = NULL;
    keel_status s = keel_heap_alloc(NULL, 16, &p);
    if (!keel_ok(s))
        return 4;
    keel_heap_free(NULL, p);
    return 0;
}

static void test_options(void **state)
{
    (void)state;
    ssize_t len = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    assert_true(len > 0);
    self_exe[len > 0 ? len : 0] = '\0';
    check_kind(exec_with_bad_options, "options");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--first-use") == 0)
        return first_use();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user),
        cmocka_unit_test(test_ignored_error),
        cmocka_unit_test(test_module),
        cmocka_unit_test(test_quota),
        cmocka_unit_test(test_quota_status_site),
        cmocka_unit_test(test_status_site),
        cmocka_unit_test(test_options),
#if KEEL_DEVEL
        cmocka_unit_test(test_assert),
        cmocka_unit_test(test_assert_in_keel),
        cmocka_unit_test(test_lost_error),
        cmocka_unit_test(test_leaked_error),
        cmocka_unit_test(test_lock_order),
        cmocka_unit_test(test_lock_cycle),
        cmocka_unit_test(test_lock_misuse),
        cmocka_unit_test(test_report_frames_option),
        cmocka_unit_test(test_lock_blocking),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_stress),
        cmocka_unit_test(test_heap),
#if !defined(KEEL_TEST_UNDER_TSAN)
        cmocka_unit_test(test_heap_guard_fault),
#endif
        cmocka_unit_test(test_leak),
        cmocka_unit_test(test_watchdog_section),
        cmocka_unit_test(test_watchdog_heartbeat),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
