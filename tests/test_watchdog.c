/*
 * test_watchdog.c - budgets, heartbeats, stuck-thread backtraces, CPU stats.
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "keel/keel.h"

/* ---- collecting watchdog reports ------------------------------------------------- */

enum { MAX_SEEN = 32 };
typedef struct seen_report {
    char message[256];
    char thread[64];
    char funcs[512]; /* symbolized function names of the backtrace, space separated */
    char text[1024];
    char site[256];           /* "func file:line" */
    int stuck_flag_at_report; /* was the thread still stuck when reported? */
} seen_report;

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static seen_report seen[MAX_SEEN];
static int nseen;
static int stuck_flag;     /* atomic: 1 while the test keeps a thread stuck */
static int shown_not_over; /* overrun reports whose figures did not show the time over budget */

/*
 * An overrun report shows its elapsed time over its budget, in the text ("for 30.1 ms, over its
 * budget of 30.0 ms") and in the fields (elapsed_ms > budget_ms): an elapsed time a few
 * microseconds past the budget once printed as "30.0 ms, over its budget of 30.0 ms".
 */
static void check_shown_over(const keel_report_info *info)
{
    const char *over = strstr(info->message, " ms, over its budget of ");
    const char *period = strstr(info->message, " ms (period ");
    if (over == NULL && period == NULL)
        return;
    const char *num_end = over != NULL ? over : period;
    const char *num = num_end;
    while (num > info->message && (num[-1] == '.' || (num[-1] >= '0' && num[-1] <= '9')))
        num--;
    double elapsed = strtod(num, NULL);
    double budget = strtod(
        num_end + (over != NULL ? strlen(" ms, over its budget of ") : strlen(" ms (period ")),
        NULL);
    double elapsed_ms = strtod(keel_test_detail(info, "elapsed_ms"), NULL);
    double budget_ms = strtod(keel_test_detail(info, "budget_ms"), NULL);
    if (!(elapsed > budget) || !(elapsed_ms > budget_ms)) {
        (void)fprintf(stderr, "overrun not shown as over: '%s' (elapsed_ms=%g budget_ms=%g)\n",
                      info->message, elapsed_ms, budget_ms);
        shown_not_over++;
    }
}

static bool collect(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    if (info->kind != KEEL_REPORT_WATCHDOG)
        return false;
    pthread_mutex_lock(&seen_lock);
    if (nseen < MAX_SEEN) {
        seen_report *s = &seen[nseen];
        memset(s, 0, sizeof(*s));
        (void)snprintf(s->message, sizeof(s->message), "%s", info->message);
        (void)snprintf(s->text, sizeof(s->text), "%s", info->text);
        (void)snprintf(s->thread, sizeof(s->thread), "%s", keel_test_detail(info, "thread"));
        keel_test_frame_funcs(info, s->funcs, sizeof(s->funcs));
        (void)snprintf(s->site, sizeof(s->site), "%s %s:%d",
                       info->func != NULL ? info->func : "(none)", info->file, info->line);
        s->stuck_flag_at_report = __atomic_load_n(&stuck_flag, __ATOMIC_ACQUIRE);
        nseen++;
    }
    check_shown_over(info); /* seen_lock held: shown_not_over */
    pthread_mutex_unlock(&seen_lock);
    return false;
}

#if KEEL_WATCHDOG_ON
static int count_seen(const char *needle)
{
    int n = 0;
    pthread_mutex_lock(&seen_lock);
    for (int i = 0; i < nseen; i++)
        if (strstr(seen[i].message, needle) != NULL)
            n++;
    pthread_mutex_unlock(&seen_lock);
    return n;
}

static const seen_report *find_seen(const char *needle)
{
    const seen_report *r = NULL;
    pthread_mutex_lock(&seen_lock);
    for (int i = 0; i < nseen && r == NULL; i++)
        if (strstr(seen[i].message, needle) != NULL)
            r = &seen[i];
    pthread_mutex_unlock(&seen_lock);
    return r;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait up to `ms` for a report whose message contains needle. */
static bool wait_for(const char *needle, long ms)
{
    for (long t = 0; t < ms; t += 5) {
        if (count_seen(needle) > 0)
            return true;
        sleep_ms(5);
    }
    return count_seen(needle) > 0;
}
#endif

static int setup(void **state)
{
    (void)state;
    pthread_mutex_lock(&seen_lock);
    nseen = 0;
    pthread_mutex_unlock(&seen_lock);
    keel_status s = keel_options_set("watchdog.scale=100;watchdog.tick-ms=5");
    assert_true(keel_ok(s));
    keel_report_set_handler(collect, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    keel_watchdog_stop();
    keel_report_set_handler(NULL, NULL);
    pthread_mutex_lock(&seen_lock);
    int not_over = shown_not_over;
    shown_not_over = 0;
    pthread_mutex_unlock(&seen_lock);
    assert_int_equal(not_over, 0);
    return 0;
}

#if KEEL_WATCHDOG_ON

/* The function a stuck thread is stuck in: it must show in the report's backtrace. */
__attribute__((noinline)) void stuck_in_section(void);
__attribute__((noinline)) void stuck_in_section(void)
{
    while (__atomic_load_n(&stuck_flag, __ATOMIC_ACQUIRE))
        usleep(1000); /* a call TSan intercepts, so the backtrace signal is delivered */
    __asm__ volatile("" ::: "memory");
}

static void *stuck_thread(void *arg)
{
    (void)arg;
    KEEL_SECTION_ENTER(sec, "flush_journal", 30);
    stuck_in_section();
    KEEL_SECTION_LEAVE(sec);
    return NULL;
}

/* Start fn on a thread that stays stuck until released; wait for a report containing needle. */
static keel_thread *start_stuck(const char *name, const char *module, void *(*fn)(void *),
                                const char *needle)
{
    __atomic_store_n(&stuck_flag, 1, __ATOMIC_RELEASE);
    keel_thread *t = NULL;
    assert_true(keel_ok(keel_thread_create(&t, name, module, fn, NULL)));
    assert_true(wait_for(needle, 3000));
    return t;
}

static void release_and_join(keel_thread *t)
{
    __atomic_store_n(&stuck_flag, 0, __ATOMIC_RELEASE);
    assert_true(keel_ok(keel_thread_join(t, NULL)));
}

static void test_overrun_reported_while_running(void **state)
{
    (void)state;
    keel_thread *t =
        start_stuck("journal-writer", "storage", stuck_thread, "section 'flush_journal' has run");
    const seen_report *r = find_seen("section 'flush_journal' has run");
    assert_non_null(r);
    if (r == NULL)
        return;
    assert_int_equal(r->stuck_flag_at_report, 1); /* reported while still running */
    assert_string_equal(r->thread, "journal-writer");
    assert_non_null(strstr(r->funcs, "stuck_in_section"));
    assert_non_null(strstr(r->funcs, "stuck_thread"));
    release_and_join(t);
    /* and again when it ends, with its total */
    assert_true(wait_for("section 'flush_journal' ended after", 1000));
    assert_int_equal(count_seen("section 'flush_journal' has run"), 1); /* once per occurrence */
    assert_true(keel_watchdog_overruns() >= 1);
}

/* Was a report seen whose message holds `needle` and `part`? */
static bool seen_says(const char *needle, const char *part)
{
    const seen_report *r = find_seen(needle);
    return r != NULL && strstr(r->message, part) != NULL;
}

/* watchdog.scale=200: the budget doubled, in the report while it runs and in the one at its end */
static void test_scaled_budget_in_both_reports(void **state)
{
    (void)state;
    assert_true(keel_ok(keel_options_set("watchdog.scale=200")));
    keel_thread *t =
        start_stuck("journal-writer", "storage", stuck_thread, "section 'flush_journal' has run");
    assert_true(seen_says("section 'flush_journal' has run", "over its budget of 60.0 ms"));
    release_and_join(t);
    assert_true(wait_for("section 'flush_journal' ended after", 1000));
    assert_true(seen_says("section 'flush_journal' ended after", "(budget 60.0 ms)"));
}

static void *nested_thread(void *arg)
{
    (void)arg;
    KEEL_SECTION_ENTER(outer, "outer_request", 2000);
    KEEL_SECTION_ENTER(inner, "inner_lookup", 20);
    stuck_in_section();
    KEEL_SECTION_LEAVE(inner);
    KEEL_SECTION_LEAVE(outer);
    return NULL;
}

static void test_nested_sections(void **state)
{
    (void)state;
    keel_thread *t = start_stuck("nested", NULL, nested_thread, "section 'inner_lookup' has run");
    release_and_join(t);
    sleep_ms(50);
    assert_int_equal(count_seen("section 'outer_request'"), 0);
    assert_int_equal(count_seen("section 'inner_lookup' has run"), 1);
}

static pthread_mutex_t never_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_cond = PTHREAD_COND_INITIALIZER;
static int release_waiter;

__attribute__((noinline)) void wait_for_never(void);
__attribute__((noinline)) void wait_for_never(void)
{
    pthread_mutex_lock(&never_lock);
    while (!release_waiter)
        pthread_cond_wait(&never_cond, &never_lock);
    pthread_mutex_unlock(&never_lock);
}

/* A keel lock the stuck poller holds: the heartbeat report must name it. */
static keel_mutex poller_state = KEEL_MUTEX_INITIALIZER("poller_state", 0);

static void *heartbeat_thread(void *arg)
{
    (void)arg;
    keel_heartbeat_expect(30);
    for (int i = 0; i < 5; i++) {
        keel_heartbeat();
        sleep_ms(5);
    }
    keel_mutex_lock(&poller_state);
    wait_for_never(); /* blocked on a condition nobody signals, holding poller_state */
    keel_mutex_unlock(&poller_state);
    keel_heartbeat_expect(0);
    return NULL;
}

/* The poller started, stuck without heartbeats, and its report; NULL: none came. */
static const seen_report *poller_missed(keel_thread **t)
{
    release_waiter = 0;
    *t = NULL;
    assert_true(keel_ok(keel_thread_create(t, "poller", NULL, heartbeat_thread, NULL)));
    assert_true(wait_for("thread 'poller' missed its heartbeat", 3000));
    const seen_report *r = find_seen("missed its heartbeat");
    assert_non_null(r);
    return r;
}

static void poller_release(keel_thread *t)
{
    pthread_mutex_lock(&never_lock);
    release_waiter = 1;
    pthread_cond_broadcast(&never_cond);
    pthread_mutex_unlock(&never_lock);
    assert_true(keel_ok(keel_thread_join(t, NULL)));
}

static void test_missed_heartbeat(void **state)
{
    (void)state;
    keel_thread *t = NULL;
    const seen_report *r = poller_missed(&t);
    if (r != NULL) {
        assert_non_null(strstr(r->funcs, "wait_for_never"));
#if KEEL_DEVEL
        /* the keel lock it holds, from the lock-ranking state */
        assert_non_null(strstr(r->text, "locks held by 'poller'"));
        assert_non_null(strstr(r->text, "'poller_state' (mutex, rank 0) acquired at"));
#endif
    }
    poller_release(t);
}

/*
 * Without a backtrace (watchdog.stacks=none here; ptrace refused, or a
 * thread that does not answer, elsewhere) a missed heartbeat's site is where
 * the thread made its last heartbeat, not "?".
 */
static void test_missed_heartbeat_site_without_backtrace(void **state)
{
    (void)state;
    assert_true(keel_ok(keel_options_set("watchdog.stacks=none")));
    keel_thread *t = NULL;
    const seen_report *r = poller_missed(&t);
    if (r != NULL) {
        print_message("site: %s\n", r->site);
        assert_non_null(strstr(r->site, "heartbeat_thread "));
        assert_non_null(strstr(r->site, "test_watchdog.c:"));
        assert_non_null(strstr(r->text, "its last heartbeat was at "));
        assert_non_null(strstr(r->text, "no backtrace of the stuck thread 'poller'"));
    }
    poller_release(t);
    assert_true(keel_ok(keel_options_set("watchdog.stacks=ptrace")));
}

static int sanitized(void)
{
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
    return 1;
#else
    return 0;
#endif
#else
    return 0;
#endif
}

static long load_iterations;

static void *load_thread(void *arg)
{
    (void)arg;
    unsigned long sink = 0;
    for (long i = 0; i < load_iterations; i++) {
        KEEL_SECTION_ENTER(sec, "tiny_task", 1000);
        sink += (unsigned long)i;
        __asm__ volatile("" : "+r"(sink)); /* keep the work */
        KEEL_SECTION_LEAVE(sec);
    }
    return NULL;
}

static void test_no_report_within_budget_under_load(void **state)
{
    (void)state;
    // cppcheck-suppress knownConditionTrueFalse ; 1 under a sanitizer, which cppcheck is not
    load_iterations = sanitized() ? 20000 : 1000000;
    keel_thread *t[8];
    char name[32];
    for (int i = 0; i < 8; i++) {
        (void)snprintf(name, sizeof(name), "load-%d", i);
        assert_true(keel_ok(keel_thread_create(&t[i], name, NULL, load_thread, NULL)));
    }
    for (int i = 0; i < 8; i++)
        assert_true(keel_ok(keel_thread_join(t[i], NULL)));
    assert_int_equal(count_seen("tiny_task"), 0);
    pthread_mutex_lock(&seen_lock);
    int total = nseen;
    pthread_mutex_unlock(&seen_lock);
    assert_int_equal(total, 0);
}

static void test_budgets_disabled_by_option(void **state)
{
    (void)state;
    assert_true(keel_ok(keel_options_set("watchdog.scale=0")));
    __atomic_store_n(&stuck_flag, 1, __ATOMIC_RELEASE);
    keel_thread *t = NULL;
    assert_true(keel_ok(keel_thread_create(&t, "unwatched", NULL, stuck_thread, NULL)));
    sleep_ms(200); /* well past the 30 ms budget */
    __atomic_store_n(&stuck_flag, 0, __ATOMIC_RELEASE);
    assert_true(keel_ok(keel_thread_join(t, NULL)));
    assert_int_equal(count_seen("flush_journal"), 0);
    assert_true(keel_ok(keel_options_set("watchdog.scale=100")));
}

static void test_clean_shutdown_and_restart(void **state)
{
    (void)state;
    assert_true(keel_ok(keel_watchdog_start()));
    keel_watchdog_stop();
    keel_watchdog_stop(); /* twice is fine */
    assert_true(keel_ok(keel_watchdog_start()));
    keel_thread *t =
        start_stuck("after-restart", NULL, stuck_thread, "section 'flush_journal' has run");
    release_and_join(t);
}

static keel_status run_ok(void *arg)
{
    int *calls = (int *)arg;
    (*calls)++;
    return KEEL_OK;
}

static void test_section_run_callback_form(void **state)
{
    (void)state;
    static const keel_section_desc d = {"callback", 1000000000ull, __FILE__, __LINE__, "test"};
    int calls = 0;
    assert_true(keel_ok(keel_section_run(&d, run_ok, &calls)));
    assert_int_equal(calls, 1);
}

#if KEEL_DEVEL
/* ---- lock hold budgets ------------------------------------------------------------- */

static keel_mutex wal_lock = KEEL_MUTEX_INITIALIZER("wal_lock", 0);
static keel_mutex *hold_target; /* the lock holder_thread holds while stuck */

/* The function holding the lock: it must show in the report's backtrace. */
__attribute__((noinline)) void hold_budgeted_lock(void);
__attribute__((noinline)) void hold_budgeted_lock(void)
{
    keel_mutex_lock(hold_target);
    stuck_in_section();
    keel_mutex_unlock(hold_target);
    __asm__ volatile("" ::: "memory");
}

static void *holder_thread(void *arg)
{
    (void)arg;
    hold_budgeted_lock();
    return NULL;
}

static void set_budget(const char *cls, unsigned long long ms)
{
    keel_status s = keel_lock_class_budget(cls, ms);
    assert_true(keel_ok(s));
    keel_status_free(s);
}

/* The number after `after` in the first report containing needle (-1: none). */
static double number_after(const char *needle, const char *after)
{
    const seen_report *r = find_seen(needle);
    if (r == NULL)
        return -1;
    const char *p = strstr(r->message, after);
    return p != NULL ? strtod(p + strlen(after), NULL) : -1;
}

static void test_lock_budget_overrun_reported_while_held(void **state)
{
    (void)state;
    set_budget("wal_lock", 30);
    hold_target = &wal_lock;
    keel_thread *t = start_stuck("wal-writer", "storage", holder_thread,
                                 "lock 'wal_lock' has been held by thread 'wal-writer'");
    const seen_report *r = find_seen("lock 'wal_lock' has been held");
    assert_non_null(r);
    if (r == NULL)
        return;
    assert_int_equal(r->stuck_flag_at_report, 1); /* reported while still held */
    assert_string_equal(r->thread, "wal-writer");
    /* at the acquisition: its function too (once "in ?") */
    assert_non_null(strstr(r->site, "hold_budgeted_lock "));
    assert_non_null(strstr(r->site, "test_watchdog.c:"));
    assert_non_null(strstr(r->message, "over its budget of 30.0 ms, and is still held"));
    assert_true(number_after("lock 'wal_lock' has been held", "for ") > 30.0);
    /* the holder's own backtrace, and the locks it holds */
    assert_non_null(strstr(r->funcs, "hold_budgeted_lock"));
    assert_non_null(strstr(r->funcs, "holder_thread"));
    assert_non_null(strstr(r->text, "mutex 'wal_lock' at 0x"));
    assert_non_null(strstr(r->text, "locks held by 'wal-writer'"));
    assert_non_null(strstr(r->text, "'wal_lock' (mutex, rank 0) acquired at"));
    sleep_ms(50);
    assert_int_equal(count_seen("lock 'wal_lock' has been held"), 1); /* once per occurrence */
    release_and_join(t);
    /* and again when it is released, with the total */
    assert_true(wait_for("lock 'wal_lock' released after", 1000));
    const seen_report *end = find_seen("lock 'wal_lock' released after");
    assert_non_null(end);
    if (end == NULL)
        return;
    assert_string_equal(end->thread, "wal-writer");
    assert_non_null(strstr(end->site, "hold_budgeted_lock "));
    assert_non_null(strstr(end->message, "(budget 30.0 ms)"));
    assert_true(number_after("lock 'wal_lock' released after", "after ") >= 80.0);
    assert_int_equal(count_seen("lock 'wal_lock'"), 2);
    assert_true(keel_watchdog_overruns() >= 1);
    set_budget("wal_lock", 0);
}

static long hot_iterations;
static keel_mutex hot_shared = KEEL_MUTEX_INITIALIZER("hot_lock", 0);

static void *hot_thread(void *arg)
{
    (void)arg;
    keel_mutex own; /* one lock per thread, all of class "hot_lock", and one shared */
    keel_mutex_init(&own, "hot_lock", 0);
    for (long i = 0; i < hot_iterations; i++) {
        keel_mutex_lock((i & 1) != 0 ? &own : &hot_shared);
        keel_mutex_unlock((i & 1) != 0 ? &own : &hot_shared);
    }
    keel_mutex_destroy(&own);
    return NULL;
}

static void test_lock_within_budget_no_report(void **state)
{
    (void)state;
    set_budget("hot_lock", 200);
    // cppcheck-suppress knownConditionTrueFalse ; 1 under a sanitizer, which cppcheck is not
    hot_iterations = sanitized() ? 20000 : 100000;
    keel_thread *t[8];
    char name[32];
    for (int i = 0; i < 8; i++) {
        (void)snprintf(name, sizeof(name), "hot-%d", i);
        assert_true(keel_ok(keel_thread_create(&t[i], name, NULL, hot_thread, NULL)));
    }
    for (int i = 0; i < 8; i++)
        assert_true(keel_ok(keel_thread_join(t[i], NULL)));
    sleep_ms(50);
    pthread_mutex_lock(&seen_lock);
    int total = nseen;
    pthread_mutex_unlock(&seen_lock);
    assert_int_equal(total, 0);
    /* the same class held past its budget is caught: the watchdog was watching */
    set_budget("hot_lock", 20);
    hold_target = &hot_shared;
    keel_thread *h =
        start_stuck("hot-holder", NULL, holder_thread, "lock 'hot_lock' has been held");
    release_and_join(h);
    assert_int_equal(count_seen("lock 'hot_lock' has been held"), 1);
    set_budget("hot_lock", 0);
}

static void test_lock_budget_removed_no_report(void **state)
{
    (void)state;
    set_budget("wal_lock", 30);
    set_budget("wal_lock", 0); /* removed */
    hold_target = &wal_lock;
    __atomic_store_n(&stuck_flag, 1, __ATOMIC_RELEASE);
    keel_thread *t = NULL;
    assert_true(keel_ok(keel_thread_create(&t, "unbudgeted", NULL, holder_thread, NULL)));
    sleep_ms(200); /* well past the 30 ms budget it no longer has */
    assert_int_equal(count_seen("wal_lock"), 0);
    /* budgeted again while still held: now it is reported */
    set_budget("wal_lock", 30);
    assert_true(wait_for("lock 'wal_lock' has been held by thread 'unbudgeted'", 3000));
    release_and_join(t);
    set_budget("wal_lock", 0);
}

static void test_lock_budgets_disabled_by_scale(void **state)
{
    (void)state;
    set_budget("wal_lock", 30);
    assert_true(keel_ok(keel_options_set("watchdog.scale=0")));
    hold_target = &wal_lock;
    __atomic_store_n(&stuck_flag, 1, __ATOMIC_RELEASE);
    keel_thread *t = NULL;
    assert_true(keel_ok(keel_thread_create(&t, "unscaled", NULL, holder_thread, NULL)));
    sleep_ms(200);
    assert_int_equal(count_seen("wal_lock"), 0);
    /* budgets back on while it is still held: reported */
    assert_true(keel_ok(keel_options_set("watchdog.scale=100")));
    assert_true(wait_for("lock 'wal_lock' has been held by thread 'unscaled'", 3000));
    release_and_join(t);
    set_budget("wal_lock", 0);
}

static keel_mutex opt_lock = KEEL_MUTEX_INITIALIZER("opt_lock", 0);

static void *plain_holder(void *arg)
{
    (void)arg;
    hold_budgeted_lock();
    return NULL;
}

static void test_lock_budget_option_and_plain_thread(void **state)
{
    (void)state;
    /* the option, and a thread keel did not create: its first keel lock gets it watched */
    assert_true(keel_ok(keel_options_set("lock.budget=other:5, opt_lock:25")));
    hold_target = &opt_lock;
    __atomic_store_n(&stuck_flag, 1, __ATOMIC_RELEASE);
    pthread_t pt;
    assert_int_equal(pthread_create(&pt, NULL, plain_holder, NULL), 0);
    assert_true(wait_for("lock 'opt_lock' has been held", 3000));
    assert_non_null(strstr(find_seen("lock 'opt_lock'")->message, "budget of 25.0 ms"));
    __atomic_store_n(&stuck_flag, 0, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(pt, NULL), 0);
    assert_true(wait_for("lock 'opt_lock' released after", 1000));
    assert_true(keel_ok(keel_options_set("lock.budget=\"\"")));
}

/*
 * 64 classes may have budgets at once: a budget removed (0), or a class lock.budget no longer
 * names, gives its place back (both kept it, and the 65th class named later was refused).
 */
static void test_lock_budget_places_given_back(void **state)
{
    (void)state;
    char name[32];
    for (int i = 0; i < 64; i++) {
        (void)snprintf(name, sizeof(name), "api%d", i);
        set_budget(name, 5);
    }
    keel_status s = keel_lock_class_budget("one_too_many", 5);
    assert_true(KEEL_IS(s, KEEL_E_FULL));
    keel_status_free(s);
    set_budget("api7", 0);
    set_budget("one_too_many", 5);   /* api7's place */
    set_budget("never_budgeted", 0); /* removing what is not there takes no place */
    for (int i = 0; i < 64; i++) {
        (void)snprintf(name, sizeof(name), "api%d", i);
        set_budget(name, 0);
    }
    set_budget("one_too_many", 0);
    /* the option: two lists of 64 other classes, one after the other */
    unsigned long long limits = keel_report_count(KEEL_REPORT_LIMIT);
    for (int list = 0; list < 2; list++) {
        char opt[2048] = "lock.budget=";
        for (int i = 0; i < 64; i++) {
            size_t n = strlen(opt);
            (void)snprintf(opt + n, sizeof(opt) - n, "%sopt%d_%d:5", i > 0 ? "," : "", list, i);
        }
        assert_true(keel_ok(keel_options_set(opt)));
        set_budget("unbudgeted", 0); /* (lock.budget is read again first) */
    }
    assert_int_equal(keel_report_count(KEEL_REPORT_LIMIT), limits);
    assert_true(keel_ok(keel_options_set("lock.budget=\"\"")));
}
#endif /* KEEL_DEVEL */

#endif /* KEEL_WATCHDOG_ON */

/* Both builds check the arguments and the option's syntax the same way. */
static void test_lock_budget_bad_arguments(void **state)
{
    (void)state;
    keel_status s = keel_lock_class_budget(NULL, 10);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
    s = keel_lock_class_budget("", 10);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
    char long_name[80];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    s = keel_lock_class_budget(long_name, 10);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
    s = keel_lock_class_budget("db", 1000000001ull);
    assert_true(KEEL_IS(s, KEEL_E_RANGE));
    keel_status_free(s);
    s = keel_lock_class_budget("db", 0);
    assert_true(keel_ok(s));
    const char *bad[] = {"db", "db:", ":10", "db:10ms", "db:-1", "db:2000000000", "a:1,,b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char opt[64];
        (void)snprintf(opt, sizeof(opt), "lock.budget=\"%s\"", bad[i]);
        s = keel_options_set(opt);
        assert_true(KEEL_IS(s, KEEL_E_PARSE));
        keel_status_free(s);
    }
    s = keel_options_set("lock.budget=\"a:1,, file.c:12 : 40 ,\"");
    assert_true(keel_ok(s));
    s = keel_options_set("lock.budget=\"\"");
    assert_true(keel_ok(s));
}

static void *spin_thread(void *arg)
{
    (void)arg;
    struct timespec start, now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
    do {
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 30000000L);
    return NULL;
}

static void test_thread_names_and_cpu_stats(void **state)
{
    (void)state;
    keel_thread_unregister(); /* in case an earlier test registered this thread by itself */
    assert_true(keel_ok(keel_thread_register("stats-main", "control")));
    keel_thread *t = NULL;
    assert_true(keel_ok(keel_thread_create(&t, "cpu-burner", "crypto", spin_thread, NULL)));
    assert_true(keel_ok(keel_thread_join(t, NULL)));
    char json[8192];
    size_t n = keel_watchdog_stats_json(json, sizeof(json));
    assert_true(n < sizeof(json));
    assert_non_null(strstr(json, "\"name\":\"stats-main\""));
    assert_non_null(strstr(json, "\"module\":\"control\""));
    /* the exited thread's CPU is kept, under its module */
    const char *crypto = strstr(json, "{\"name\":\"crypto\",\"cpu_ns\":");
    assert_non_null(crypto);
    unsigned long long cpu =
        strtoull(crypto + strlen("{\"name\":\"crypto\",\"cpu_ns\":"), NULL, 10);
    assert_true(cpu >= 20000000ull); /* it burned ~30 ms */
    /* registering twice is an error that says so */
    keel_status s = keel_thread_register("again", NULL);
    assert_true(KEEL_IS(s, KEEL_E_STATE));
    keel_status_free(s);
    keel_thread_unregister();
}

static void test_thread_create_bad_arguments(void **state)
{
    (void)state;
    keel_thread *t = NULL;
    keel_status s = keel_thread_create(&t, "", NULL, spin_thread, NULL);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
    s = keel_thread_join(NULL, NULL);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
}

static keel_status count_call(void *arg)
{
    (*(int *)arg)++;
    return KEEL_OK;
}

/* keel_section_run, like keel_thread_create, refuses a NULL section or function (both builds). */
static void test_section_run_bad_arguments(void **state)
{
    (void)state;
    static const keel_section_desc d = {"callback", 1000000000ull, __FILE__, __LINE__, "test"};
    int calls = 0;
    keel_status s = keel_section_run(NULL, count_call, &calls);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    assert_non_null(strstr(keel_status_message(s), "keel_section_run"));
    keel_status_free(s);
    s = keel_section_run(&d, NULL, &calls);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
    assert_int_equal(calls, 0);
    keel_test_ok(keel_section_run(&d, count_call, &calls));
    assert_int_equal(calls, 1);
}

#if !KEEL_WATCHDOG_ON
static void test_release_compiles_sections_out(void **state)
{
    (void)state;
    int evaluated = 0;
    KEEL_SECTION_ENTER(sec, "gone", 1);
    evaluated++;
    KEEL_SECTION_LEAVE(sec);
    assert_int_equal(evaluated, 1);
    keel_status s = keel_watchdog_start();
    assert_true(KEEL_IS(s, KEEL_E_UNSUPPORTED));
    keel_status_free(s);
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
#if KEEL_WATCHDOG_ON
        cmocka_unit_test_setup_teardown(test_overrun_reported_while_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missed_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missed_heartbeat_site_without_backtrace, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_report_within_budget_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budgets_disabled_by_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_shutdown_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_section_run_callback_form, setup, teardown),
#if KEEL_DEVEL
        cmocka_unit_test_setup_teardown(test_lock_budget_overrun_reported_while_held, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lock_within_budget_no_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_budget_removed_no_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_budgets_disabled_by_scale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scaled_budget_in_both_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_budget_option_and_plain_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_budget_places_given_back, setup, teardown),
#endif
#else
        cmocka_unit_test_setup_teardown(test_release_compiles_sections_out, setup, teardown),
#endif
        cmocka_unit_test_setup_teardown(test_thread_names_and_cpu_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_create_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_section_run_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_budget_bad_arguments, setup, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
