/*
 * test_first_use.c - KEEL_OPTIONS and KEEL_REPORT apply from the first use of
 * keel, whatever that use is, in a program that never calls keel_init().
 *
 * The kinds: each lock kind (a lock made by its initializer too, a condition
 * variable alone), both heaps, modules (start, enter), sections, heartbeats,
 * keel threads, statuses, stress points and reports.
 *
 * Each test runs this executable again (fork + exec, a fresh process: nothing
 * of keel has run) as `test_first_use --entry <kind>`: it makes one first use
 * of one kind (a lock, a heap, a section, ...) and then writes what keel holds
 * at that moment, read without starting keel:
 *
 *   after-entry tick-ms=<watchdog.tick-ms> new-threads=<threads started by the use> file=<options|none>
 *
 * (file: whether the KEEL_REPORT file holds a report of kind options yet).
 * Twice per kind: a malformed KEEL_OPTIONS must be an options report before
 * that line, on stderr and in the KEEL_REPORT file, with nothing applied; a
 * good one (watchdog.tick-ms=7;watchdog.enabled=0) must be in force by then,
 * and no watchdog thread started against watchdog.enabled=0.
 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>

#include "internal.h"

KEEL_MODULE(first_use_mod, "1", NULL, NULL, NULL, NULL);

static char self_exe[PATH_MAX];

/* ---- the child: one first use, then what keel holds ---------------------------------- */

/* Threads of this process (the watchdog is the one a first use may start). */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    int n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static const char *report_file_state(void)
{
    const char *path = getenv("KEEL_REPORT");
    if (path == NULL || path[0] == '\0')
        return "unset";
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return "none";
    char line[8192];
    const char *state = "none";
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, "{\"kind\":\"options\"") == line)
            state = "options";
    (void)fclose(f);
    return state;
}

static void *first_use_thread(void *arg)
{
    return arg;
}

static int first_use(const char *kind)
{
    bool known = true;
#ifdef KEEL_TEST_UNDER_TSAN
    /* ThreadSanitizer starts a thread of its own at a process's first pthread_create: started
     * here, before the count, so that only the threads the first use starts are counted */
    pthread_t warm;
    if (pthread_create(&warm, NULL, first_use_thread, NULL) == 0)
        (void)pthread_join(warm, NULL);
#endif
    int threads_before = count_threads();
    if (strcmp(kind, "status") == 0) {
        keel_status s = KEEL_ERR(KEEL_E_INVAL, "a first error");
        keel_status_free(s);
    } else if (strcmp(kind, "report") == 0) {
        (void)KEEL_REPORT(KEEL_REPORT_USER, "a first report");
    } else if (strcmp(kind, "heap_program") == 0) {
        void *p = NULL;
        keel_status s = keel_heap_alloc(NULL, 24, &p);
        if (keel_ok(s))
            keel_heap_free(NULL, p);
        keel_status_free(s);
    } else if (strcmp(kind, "heap_module") == 0) {
        void *p = NULL;
        keel_status s = keel_heap_alloc(KEEL_MODULE_REF(first_use_mod), 24, &p);
        if (keel_ok(s))
            keel_heap_free(KEEL_MODULE_REF(first_use_mod), p);
        keel_status_free(s);
    } else if (strcmp(kind, "module") == 0) {
        keel_status s = keel_modules_start();
        keel_status_free(s);
    } else if (strcmp(kind, "module_enter") == 0) {
        const keel_module *prev = keel_module_enter(KEEL_MODULE_REF(first_use_mod));
        keel_module_leave(prev);
    } else if (strcmp(kind, "thread") == 0) {
        keel_thread *th = NULL;
        keel_status s = keel_thread_create(&th, "first-use", NULL, first_use_thread, NULL);
        if (keel_ok(s))
            keel_status_free(keel_thread_join(th, NULL));
        keel_status_free(s);
    } else if (strcmp(kind, "cond") == 0) {
        keel_cond c;
        keel_cond_init(&c);
        keel_cond_signal(&c);
        keel_cond_broadcast(&c);
        keel_cond_destroy(&c);
#if KEEL_DEVEL
    } else if (strcmp(kind, "mutex_static") == 0) {
        static keel_mutex m = KEEL_MUTEX_INITIALIZER("first_use.static", 0);
        keel_mutex_lock(&m);
        keel_mutex_unlock(&m);
    } else if (strcmp(kind, "mutex") == 0) {
        keel_mutex m;
        keel_mutex_init(&m, "first_use.mutex", 0);
        keel_mutex_lock(&m);
        keel_mutex_unlock(&m);
        keel_mutex_destroy(&m);
    } else if (strcmp(kind, "rwlock") == 0) {
        keel_rwlock l;
        keel_rwlock_init(&l, "first_use.rwlock", 0);
        keel_rwlock_rdlock(&l);
        keel_rwlock_unlock(&l);
        keel_rwlock_destroy(&l);
    } else if (strcmp(kind, "spinlock") == 0) {
        keel_spinlock sp;
        keel_spinlock_init(&sp, "first_use.spin", 0);
        keel_spinlock_lock(&sp);
        keel_spinlock_unlock(&sp);
        keel_spinlock_destroy(&sp);
    } else if (strcmp(kind, "section") == 0) {
        KEEL_SECTION_ENTER(sec, "first_use.section", 1000);
        KEEL_SECTION_LEAVE(sec);
    } else if (strcmp(kind, "heartbeat") == 0) {
        keel_heartbeat_expect(1000);
        keel_heartbeat();
        keel_heartbeat_expect(0);
    } else if (strcmp(kind, "stress") == 0) {
        (void)KEEL_STRESS(first_use_point);
#endif
    } else {
        known = false;
    }
    if (!known) {
        (void)fprintf(stderr, "no first use named '%s'\n", kind);
        return 2;
    }
    (void)fprintf(stderr, "after-entry tick-ms=%lld new-threads=%d file=%s\n",
                  keel__opt_int(KEEL__OPT_WATCHDOG_TICK_MS), count_threads() - threads_before,
                  report_file_state());
    return 0;
}

/* ---- the parent ------------------------------------------------------------------------ */

/* What the child runs: `self --entry <kind>` with these KEEL_OPTIONS and KEEL_REPORT. */
static const char *child_kind, *child_options, *child_report;

static void exec_entry(void)
{
    if (setenv("KEEL_OPTIONS", child_options, 1) != 0 ||
        setenv("KEEL_REPORT", child_report, 1) != 0)
        _exit(101);
    char flag[] = "--entry", which[64];
    (void)snprintf(which, sizeof(which), "%s", child_kind);
    char *const argv[] = {self_exe, flag, which, NULL};
    execv(self_exe, argv);
    _exit(102);
}

/* Run the child (a fresh process: fork + exec); its stderr into out. */
static int run_entry(const char *kind, const char *options, const char *report_file, char *out,
                     size_t size)
{
    child_kind = kind;
    child_options = options;
    child_report = report_file;
    return keel_test_run_child(exec_entry, out, size);
}

static void report_path(const char *kind, const char *which, char *buf, size_t size)
{
    const char *dir = getenv("TMPDIR");
    (void)snprintf(buf, size, "%s/keel_first_use_%s_%s_%d.jsonl",
                   dir != NULL && dir[0] != '\0' ? dir : "/tmp", kind, which, (int)getpid());
    (void)unlink(buf);
}

/*
 * One kind of first use: a bad KEEL_OPTIONS is an options report made by that
 * use (before the child's after-entry line), on stderr and in the KEEL_REPORT
 * file, and nothing of it applied; a good one is in force after that use.
 */
static void check_entry(const char *kind, const char *bad, const char *bad_says)
{
    static char out[65536];
    static char path[PATH_MAX]; /* (the child's KEEL_REPORT: child_report points here) */

    report_path(kind, "bad", path, sizeof(path));
    int st = run_entry(kind, bad, path, out, sizeof(out));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("child (%s, bad options) ended with status %#x:\n%s", kind, st, out);
    const char *after = strstr(out, "after-entry ");
    if (after == NULL) {
        fail_msg("child (%s) wrote no after-entry line:\n%s", kind, out);
        return;
    }
    const char *malformed = strstr(out, "KEEL_OPTIONS is malformed; none of it was applied");
    if (malformed == NULL || malformed > after) {
        fail_msg("first use '%s' made no options report before it returned:\n%s", kind, out);
        return;
    }
    const char *why = strstr(out, bad_says);
    if (why == NULL || why > after)
        fail_msg("the options report of '%s' does not say '%s':\n%s", kind, bad_says, out);
    if (strncmp(after, "after-entry tick-ms=10 ", 23) != 0)
        fail_msg("a malformed KEEL_OPTIONS was partly applied (%s):\n%s", kind, out);
    if (strstr(after, "file=options") == NULL)
        fail_msg("first use '%s' did not write the options report to KEEL_REPORT:\n%s", kind, out);
    /* reported once, not again at exit */
    assert_null(strstr(malformed + 1, "KEEL_OPTIONS is malformed"));
    (void)unlink(path);

    report_path(kind, "good", path, sizeof(path));
    st = run_entry(kind, "watchdog.tick-ms=7; watchdog.enabled=0", path, out, sizeof(out));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("child (%s, good options) ended with status %#x:\n%s", kind, st, out);
    after = strstr(out, "after-entry ");
    if (after == NULL) {
        fail_msg("child (%s) wrote no after-entry line:\n%s", kind, out);
        return;
    }
    if (strncmp(after, "after-entry tick-ms=7 new-threads=0 file=none", 45) != 0)
        fail_msg("first use '%s' did not apply KEEL_OPTIONS before it acted (want tick-ms=7, "
                 "new-threads=0: no watchdog thread, no report):\n%s",
                 kind, out);
    assert_null(strstr(out, "malformed"));
    (void)unlink(path);
}

static void skip_unless_devel(void)
{
#if !KEEL_DEVEL
    skip(); /* release: this use is the pthread call or compiled out; it reads no option */
#endif
}

static void test_mutex(void **state)
{
    (void)state;
    skip_unless_devel();
    check_entry("mutex", "watchdog.tick-ms=7; lock.budgte=a:1",
                "unknown option 'lock.budgte' at position 21 (did you mean 'lock.budget'?)");
}

static void test_rwlock(void **state)
{
    (void)state;
    skip_unless_devel();
    check_entry("rwlock", "watchdog.tick-ms=7; lock.budget=a:b", "bad lock budget 'a:b'");
}

static void test_spinlock(void **state)
{
    (void)state;
    skip_unless_devel();
    check_entry("spinlock", "watchdog.tick-ms=7; report.lock-order=abrt",
                "bad value 'abrt' for option 'report.lock-order'");
}

static void test_heap_program(void **state)
{
    (void)state;
    check_entry("heap_program", "watchdog.tick-ms=7; heap.guard-sampel=1",
                "unknown option 'heap.guard-sampel'");
}

static void test_heap_module(void **state)
{
    (void)state;
    check_entry("heap_module", "watchdog.tick-ms=7; heap.quarantine=-1",
                "value '-1' for option 'heap.quarantine' is out of range");
}

static void test_module(void **state)
{
    (void)state;
    check_entry("module", "watchdog.tick-ms=7; module.pots=none", "unknown option 'module.pots'");
}

static void test_section(void **state)
{
    (void)state;
    skip_unless_devel();
    check_entry("section", "watchdog.tick-ms=7; watchdog.enabled=nope",
                "bad value 'nope' for boolean option 'watchdog.enabled'");
}

static void test_heartbeat(void **state)
{
    (void)state;
    skip_unless_devel();
    check_entry("heartbeat", "watchdog.tick-ms=7; watchdog.tick=5",
                "unknown option 'watchdog.tick'");
}

static void test_status(void **state)
{
    (void)state;
    check_entry("status", "watchdog.tick-ms=7; error.track=maybe",
                "bad value 'maybe' for boolean option 'error.track'");
}

static void test_stress(void **state)
{
    (void)state;
    skip_unless_devel();
    check_entry("stress", "watchdog.tick-ms=7; stress=first_use_point:bogus",
                "first_use_point:bogus");
}

static void test_report(void **state)
{
    (void)state;
    check_entry("report", "watchdog.tick-ms=7; report.frames=0",
                "value '0' for option 'report.frames' is out of range [1, 64]");
}

/* A lock made by its initializer, never by keel_mutex_init: its first lock is the first use. */
static void test_mutex_static(void **state)
{
    (void)state;
    skip_unless_devel();
    check_entry("mutex_static", "watchdog.tick-ms=7; lock.budget=first_use.static",
                "bad lock budget 'first_use.static'");
}

/* A condition variable alone (init, signal, broadcast, destroy): no mutex of keel taken. */
static void test_cond(void **state)
{
    (void)state;
    check_entry("cond", "watchdog.tick-ms=7; report.lock-misuse=loud",
                "bad value 'loud' for option 'report.lock-misuse'");
}

static void test_thread(void **state)
{
    (void)state;
    check_entry("thread", "watchdog.tick-ms=7; watchdog.stack=none",
                "unknown option 'watchdog.stack'");
}

static void test_module_enter(void **state)
{
    (void)state;
    check_entry("module_enter", "watchdog.tick-ms=7; heap.quota=1", "unknown option 'heap.quota'");
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--entry") == 0)
        return first_use(argv[2]);
    ssize_t len = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (len <= 0)
        return 3;
    self_exe[len] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutex),        cmocka_unit_test(test_rwlock),
        cmocka_unit_test(test_spinlock),     cmocka_unit_test(test_heap_program),
        cmocka_unit_test(test_heap_module),  cmocka_unit_test(test_module),
        cmocka_unit_test(test_section),      cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_status),       cmocka_unit_test(test_stress),
        cmocka_unit_test(test_report),       cmocka_unit_test(test_mutex_static),
        cmocka_unit_test(test_cond),         cmocka_unit_test(test_thread),
        cmocka_unit_test(test_module_enter),
    };
    return keel_test_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]));
}
