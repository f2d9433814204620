/*
 * test_watchdog_quiet.c - the watchdog does not change the program it watches
 * (issue 15, part 3): a stuck thread's backtrace is taken without interrupting
 * its sleep or blocking call, reports of one overrun come in order, and the
 * "ended" figure is at least the real duration.
 */
#define _GNU_SOURCE 1
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "keel/keel.h"

#if KEEL_WATCHDOG_ON

/* ---- collecting watchdog reports, in the order they are made ------------------------------ */

enum { MAX_SEEN = 16 };
typedef struct seen_report {
    char message[256];
    char text[1024];
    char stack[16];  /* the "stack" detail: ptrace, signal, none ("" when absent) */
    char funcs[512]; /* symbolized function names of the backtrace */
} seen_report;

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static seen_report seen[MAX_SEEN];
static int nseen;

/* test_reports_in_order: the "still running" report waits until the section has ended */
static int hold_running_report; /* atomic */
static int section_left;        /* atomic: the stuck thread has left its section */
static int let_section_end;     /* atomic */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool collect(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    if (info->kind != KEEL_REPORT_WATCHDOG)
        return false;
    if (__atomic_load_n(&hold_running_report, __ATOMIC_ACQUIRE) &&
        strstr(info->message, "still running") != NULL) {
        /* let the section end now, and wait until it has, before this report is counted */
        __atomic_store_n(&let_section_end, 1, __ATOMIC_RELEASE);
        double until = now_ms() + 2000;
        while (!__atomic_load_n(&section_left, __ATOMIC_ACQUIRE) && now_ms() < until)
            sleep_ms(1);
        sleep_ms(20); /* an "ended" report made by the leaving thread would be in by now */
    }
    pthread_mutex_lock(&seen_lock);
    if (nseen < MAX_SEEN) {
        seen_report *s = &seen[nseen];
        memset(s, 0, sizeof(*s));
        (void)snprintf(s->message, sizeof(s->message), "%s", info->message);
        (void)snprintf(s->text, sizeof(s->text), "%s", info->text);
        (void)snprintf(s->stack, sizeof(s->stack), "%s", keel_test_detail(info, "stack"));
        keel_test_frame_funcs(info, s->funcs, sizeof(s->funcs));
        nseen++;
    }
    pthread_mutex_unlock(&seen_lock);
    return false;
}

/* Index of the first report whose message contains needle (-1: none). */
static int index_of(const char *needle)
{
    int found = -1;
    pthread_mutex_lock(&seen_lock);
    for (int i = 0; i < nseen && found < 0; i++)
        if (strstr(seen[i].message, needle) != NULL)
            found = i;
    pthread_mutex_unlock(&seen_lock);
    return found;
}

static bool wait_for(const char *needle, long ms)
{
    double until = now_ms() + (double)ms;
    while (index_of(needle) < 0 && now_ms() < until)
        sleep_ms(2);
    return index_of(needle) >= 0;
}

/*
 * The first capture of a process starts keel-stack: on a loaded machine that may take longer
 * than a test's section lasts (the report then says the section ended first).  Start it here.
 */
static void *warm_up_thread(void *arg)
{
    (void)arg;
    KEEL_SECTION_ENTER(sec, "warm_up", 5);
    wait_for("section 'warm_up' has run", 5000);
    KEEL_SECTION_LEAVE(sec);
    return NULL;
}

static void warm_up(void)
{
    keel_thread *t = NULL;
    keel_test_ok(keel_thread_create(&t, "quiet-warm-up", NULL, warm_up_thread, NULL));
    keel_test_ok(keel_thread_join(t, NULL));
    assert_true(wait_for("section 'warm_up' ended", 2000));
    pthread_mutex_lock(&seen_lock);
    nseen = 0;
    pthread_mutex_unlock(&seen_lock);
}

/* No warm-up: the test's section is the first of the process, and starts the watchdog. */
static int setup_cold(void **state)
{
    (void)state;
    keel_test_ok(keel_options_set("watchdog.scale=100;watchdog.tick-ms=5"));
    keel_report_set_handler(collect, NULL);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    pthread_mutex_lock(&seen_lock);
    nseen = 0;
    pthread_mutex_unlock(&seen_lock);
    __atomic_store_n(&hold_running_report, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&section_left, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&let_section_end, 0, __ATOMIC_RELEASE);
    keel_test_ok(keel_options_set("watchdog.scale=100;watchdog.tick-ms=5"));
    keel_report_set_handler(collect, NULL);
    warm_up();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    keel_watchdog_stop();
    keel_report_set_handler(NULL, NULL);
    return 0;
}

/*
 * The "still running" report of a section: its backtrace holds `func` when a capture was
 * possible here; otherwise the report says why not, and that is printed.
 */
static void check_running_report(const char *section, const char *func)
{
    char needle[128];
    (void)snprintf(needle, sizeof(needle), "section '%s' has run", section);
    int i = index_of(needle);
    assert_true(i >= 0);
    if (i < 0)
        return;
    const seen_report *r = &seen[i];
    if (strcmp(r->stack, "none") == 0) {
        printf("[  SKIP    ] no backtrace here, the report says why:\n%s\n", r->text);
        return;
    }
    if (strstr(r->funcs, func) == NULL)
        fail_msg("'%s' not in the backtrace: %s\n%s", func, r->funcs, r->text);
}

/* "section 'x' ended after N ms" comes after "has run", with N at least `at_least` ms. */
static void check_ended_after(const char *section, double at_least)
{
    char running[128], ended[128];
    (void)snprintf(running, sizeof(running), "section '%s' has run", section);
    (void)snprintf(ended, sizeof(ended), "section '%s' ended after ", section);
    assert_true(wait_for(ended, 2000));
    int r = index_of(running);
    int e = index_of(ended);
    assert_true(r >= 0 && e >= 0);
    if (r < 0 || e < 0)
        return;
    if (e < r)
        fail_msg("'%s' (report %d) came before '%s' (report %d)", seen[e].message, e,
                 seen[r].message, r);
    /* the report says it to a tenth of a millisecond (%.1f, rounded): 151.2 for a section of
     * 151.24 ms that the test timed at 151.23 (seen once in a make check) */
    double total = strtod(strstr(seen[e].message, "ended after ") + strlen("ended after "), NULL);
    if (total + 0.05 < at_least)
        fail_msg("%s: %.1f ms is less than the section's real %.1f ms", seen[e].message, total,
                 at_least);
}

/* ---- a section blocked in nanosleep, read() or poll() -------------------------------------- */

typedef struct call_result {
    long rc;
    int err;
    double ms; /* how long the call took, on the thread's own clock */
} call_result;

/* One blocking call, made inside a section of 20 ms on a thread of its own. */
typedef struct quiet_case {
    keel_section_desc section;
    void (*call)(call_result *res);
    call_result res;
} quiet_case;

static void *section_thread(void *arg)
{
    quiet_case *c = (quiet_case *)arg;
    keel_section_enter(&c->section);
    c->call(&c->res);
    keel_section_leave(&c->section);
    return NULL;
}

static keel_thread *start_case(quiet_case *c, const char *section, void (*call)(call_result *))
{
    keel_section_desc d = {section, 20 * 1000000ull, __FILE__, __LINE__, "section_thread"};
    c->section = d;
    c->call = call;
    keel_thread *t = NULL;
    keel_test_ok(keel_thread_create(&t, "quiet-caller", NULL, section_thread, c));
    return t;
}

/* The call returned `want` after at least `at_least` ms; the reports say what they must. */
static void check_case(const quiet_case *c, long want, double at_least, const char *func)
{
    if (c->res.rc != want)
        fail_msg("%s returned %ld (%s) after %.1f ms", func, c->res.rc, strerror(c->res.err),
                 c->res.ms);
    assert_true(c->res.ms >= at_least);
    char running[128];
    (void)snprintf(running, sizeof(running), "section '%s' has run", c->section.name);
    assert_true(wait_for(running, 1000));
    check_running_report(c->section.name, func);
    check_ended_after(c->section.name, c->res.ms);
}

static void finish_call(call_result *res, long rc, double t0)
{
    res->err = errno;
    res->rc = rc;
    res->ms = now_ms() - t0;
}

__attribute__((noinline)) static void quiet_sleeps_150ms(call_result *res)
{
    struct timespec ts = {0, 150 * 1000000L};
    double t0 = now_ms();
    errno = 0;
    finish_call(res, nanosleep(&ts, NULL), t0);
    __asm__ volatile("" ::: "memory");
}

static void test_nanosleep_not_interrupted(void **state)
{
    (void)state;
    quiet_case c;
    keel_test_ok(keel_thread_join(start_case(&c, "quiet_nanosleep", quiet_sleeps_150ms), NULL));
    check_case(&c, 0, 150.0, "quiet_sleeps_150ms");
}

/*
 * The watchdog starts with the process's first section: a section entered while it was being
 * started is measured from then, not from its first tick ("ended" was 147.9 ms for 150 once).
 */
static void test_first_section_measured_whole(void **state)
{
    (void)state;
    quiet_case c;
    keel_test_ok(keel_thread_join(start_case(&c, "quiet_first", quiet_sleeps_150ms), NULL));
    check_case(&c, 0, 150.0, "quiet_sleeps_150ms");
}

static int read_pipe[2];

__attribute__((noinline)) static void quiet_reads_pipe(call_result *res)
{
    char c = 0;
    double t0 = now_ms();
    errno = 0;
    finish_call(res, (long)read(read_pipe[0], &c, 1), t0);
    __asm__ volatile("" ::: "memory");
}

/* (SA_RESTART restarted this one under the old signal too; the "ended" figure was short.) */
static void test_read_not_interrupted(void **state)
{
    (void)state;
    assert_int_equal(pipe(read_pipe), 0);
    quiet_case c;
    double t0 = now_ms();
    keel_thread *t = start_case(&c, "quiet_read", quiet_reads_pipe);
    assert_true(wait_for("section 'quiet_read' has run", 2000));
    while (now_ms() - t0 < 150)
        sleep_ms(5);
    assert_int_equal(write(read_pipe[1], "x", 1), 1);
    keel_test_ok(keel_thread_join(t, NULL));
    close(read_pipe[0]);
    close(read_pipe[1]);
    check_case(&c, 1, 0.0, "quiet_reads_pipe");
}

__attribute__((noinline)) static void quiet_polls_150ms(call_result *res)
{
    int fds[2];
    if (pipe(fds) != 0) {
        res->rc = -2;
        return;
    }
    struct pollfd p = {fds[0], POLLIN, 0};
    double t0 = now_ms();
    errno = 0;
    finish_call(res, poll(&p, 1, 150), t0);
    close(fds[0]);
    close(fds[1]);
    __asm__ volatile("" ::: "memory");
}

static void test_poll_not_interrupted(void **state)
{
    (void)state;
    quiet_case c; /* poll's 0: the timeout, the whole 150 ms */
    keel_test_ok(keel_thread_join(start_case(&c, "quiet_poll", quiet_polls_150ms), NULL));
    check_case(&c, 0, 150.0, "quiet_polls_150ms");
}

/* ---- order: a section that ends while its "still running" report is being made ------------ */

static void *ends_during_report_thread(void *arg)
{
    (void)arg;
    KEEL_SECTION_ENTER(sec, "quiet_order", 20);
    while (!__atomic_load_n(&let_section_end, __ATOMIC_ACQUIRE))
        sleep_ms(1);
    KEEL_SECTION_LEAVE(sec);
    __atomic_store_n(&section_left, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_reports_in_order(void **state)
{
    (void)state;
    __atomic_store_n(&hold_running_report, 1, __ATOMIC_RELEASE);
    double t0 = now_ms();
    keel_thread *t = NULL;
    keel_test_ok(keel_thread_create(&t, "quiet-order", NULL, ends_during_report_thread, NULL));
    keel_test_ok(keel_thread_join(t, NULL));
    double lived = now_ms() - t0;
    assert_true(wait_for("section 'quiet_order' has run", 2000));
    check_ended_after("quiet_order", 20.0);
    assert_true(lived >= 20);
}

/* ---- the program's own use of SIGRTMIN+7 is left alone ------------------------------------ */

static int own_signal_calls; /* atomic */

static void own_handler(int sig)
{
    (void)sig;
    __atomic_add_fetch(&own_signal_calls, 1, __ATOMIC_RELAXED);
}

static int sigchld_calls; /* atomic */

static void sigchld_handler(int sig)
{
    (void)sig;
    __atomic_add_fetch(&sigchld_calls, 1, __ATOMIC_RELAXED);
}

/* No signal reaches the program: neither SIGRTMIN+7 nor the helper's SIGCHLD. */
static void test_program_signal_left_alone(void **state)
{
    (void)state;
    struct sigaction sa, now;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = own_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGRTMIN + 7, &sa, NULL), 0);
    sa.sa_handler = sigchld_handler;
    assert_int_equal(sigaction(SIGCHLD, &sa, NULL), 0);
    quiet_case c;
    keel_test_ok(keel_thread_join(start_case(&c, "quiet_nanosleep", quiet_sleeps_150ms), NULL));
    check_case(&c, 0, 150.0, "quiet_sleeps_150ms");
    assert_int_equal(sigaction(SIGRTMIN + 7, NULL, &now), 0);
    assert_true(now.sa_handler == own_handler);
    assert_int_equal(__atomic_load_n(&own_signal_calls, __ATOMIC_RELAXED), 0);
    assert_int_equal(__atomic_load_n(&sigchld_calls, __ATOMIC_RELAXED), 0);
    (void)signal(SIGRTMIN + 7, SIG_DFL);
    (void)signal(SIGCHLD, SIG_DFL);
}

/* ---- what a capture leaves behind: no child, no descriptor ------------------------------------- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static void test_no_child_or_fd_left(void **state)
{
    (void)state;
    int before = -1;
    for (int i = 0; i < 3; i++) {
        if (i == 1)
            before = count_fds(); /* after the first report: the symbolizer keeps its files */
        quiet_case c;
        keel_test_ok(keel_thread_join(start_case(&c, "quiet_nanosleep", quiet_sleeps_150ms), NULL));
        assert_int_equal(c.res.rc, 0);
    }
    assert_true(wait_for("section 'quiet_nanosleep' has run", 1000));
    keel_watchdog_stop();
    /* the program's wait() finds no child, and there is no zombie of any kind (__WALL) */
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    pid_t any = waitpid(-1, NULL, __WALL | WNOHANG);
    if (any != 0 && !(any < 0 && errno == ECHILD))
        fail_msg("a child had exited and was left to reap: %ld", (long)any);
    int after = count_fds();
    if (after != before)
        fail_msg("%d descriptors before the captures, %d after", before, after);
}

/* ---- a forked child takes its own backtraces; the parent's helper goes on -------------------- */

/* Is a keel-stack serving process `pid` running (its command line: keel-stack PID)? */
static bool helper_serves(pid_t pid)
{
    char want[64];
    int wlen = snprintf(want, sizeof(want), "keel-stack%c%ld", '\0', (long)pid);
    DIR *d = opendir("/proc");
    bool found = false;
    struct dirent *e;
    while (d != NULL && !found && (e = readdir(d)) != NULL) {
        char path[300], cmd[64];
        (void)snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(cmd, 1, sizeof(cmd), f);
        (void)fclose(f);
        found = n >= (size_t)wlen + 1 && memcmp(cmd, want, (size_t)wlen + 1) == 0;
    }
    if (d != NULL)
        closedir(d);
    return found;
}

static void forked_capture(void)
{
    pthread_mutex_lock(&seen_lock);
    nseen = 0;
    pthread_mutex_unlock(&seen_lock);
    quiet_case c;
    keel_test_ok(keel_thread_join(start_case(&c, "quiet_forked", quiet_sleeps_150ms), NULL));
    int i = wait_for("section 'quiet_forked' has run", 2000)
                ? index_of("section 'quiet_forked' has run")
                : -1;
    if (c.res.rc != 0 || i < 0) {
        (void)fprintf(stderr, "child: nanosleep %ld, report %d\n", c.res.rc, i);
        _exit(3);
    }
    const seen_report *r = &seen[i];
    bool traced = strcmp(r->stack, "ptrace") == 0 && strstr(r->funcs, "quiet_sleeps_150ms");
    /* on a loaded machine the child's first capture (a new keel-stack) may come after the end */
    bool late = strstr(r->text, "the section ended before keel-stack stopped the thread") != NULL;
    (void)fprintf(stderr, "child: %s\n", traced ? "traced" : r->text);
    if (!helper_serves(getpid())) { /* its own, not the parent's */
        (void)fprintf(stderr, "child: no keel-stack of its own\n");
        _exit(5);
    }
    _exit(traced || late ? 0 : 4);
}

static void test_forked_child_own_helper(void **state)
{
    (void)state;
    char out[4096];
    int status = keel_test_run_child(forked_capture, out, sizeof(out));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the child failed (status %d):\n%s", status, out);
    printf("%s", strstr(out, "child: ") != NULL ? strstr(out, "child: ") : out);
    assert_true(helper_serves(getpid()));
    quiet_case c; /* and the parent's keel-stack still answers */
    keel_test_ok(keel_thread_join(start_case(&c, "quiet_nanosleep", quiet_sleeps_150ms), NULL));
    check_case(&c, 0, 150.0, "quiet_sleeps_150ms");
}

/* ---- the other modes say which capture was used, or that none was --------------------------- */

static void test_stacks_none_and_missing_helper(void **state)
{
    (void)state;
    static const char *const settings[] = {
        "watchdog.stacks=none",
        "watchdog.stacks=ptrace;watchdog.stack-helper=/nonexistent/keel-stack",
    };
    static const char *const why[] = {"watchdog.stacks=none", "/nonexistent/keel-stack"};
    for (size_t k = 0; k < 2; k++) {
        pthread_mutex_lock(&seen_lock);
        nseen = 0;
        pthread_mutex_unlock(&seen_lock);
        keel_test_ok(keel_options_set(settings[k]));
        quiet_case c;
        keel_test_ok(keel_thread_join(start_case(&c, "quiet_nanosleep", quiet_sleeps_150ms), NULL));
        assert_int_equal(c.res.rc, 0);
        assert_true(wait_for("section 'quiet_nanosleep' has run", 1000));
        const seen_report *r = &seen[index_of("section 'quiet_nanosleep' has run")];
        assert_string_equal(r->stack, "none");
        assert_non_null(strstr(r->text, "no backtrace of the stuck thread"));
        if (strstr(r->text, why[k]) == NULL)
            fail_msg("'%s' not in: %s", why[k], r->text);
    }
    keel_test_ok(keel_options_set("watchdog.stacks=\"\";watchdog.stack-helper=\"\""));
}

/* watchdog.stacks=signal is the old way, chosen on purpose: the report says so. */
__attribute__((noinline)) static void quiet_spins(call_result *res)
{
    (void)res;
    while (!__atomic_load_n(&let_section_end, __ATOMIC_ACQUIRE))
        usleep(1000); /* a call TSan intercepts, so the backtrace signal is delivered */
    __asm__ volatile("" ::: "memory");
}

static void test_stacks_signal_says_so(void **state)
{
    (void)state;
    keel_test_ok(keel_options_set("watchdog.stacks=signal"));
    quiet_case c;
    keel_thread *t = start_case(&c, "quiet_signal", quiet_spins);
    bool seen_it = wait_for("section 'quiet_signal' has run", 2000);
    __atomic_store_n(&let_section_end, 1, __ATOMIC_RELEASE);
    keel_test_ok(keel_thread_join(t, NULL));
    assert_true(seen_it);
    const seen_report *r = &seen[index_of("section 'quiet_signal' has run")];
    assert_string_equal(r->stack, "signal");
    assert_non_null(strstr(r->text, "SIGRTMIN+7"));
    assert_non_null(strstr(r->funcs, "quiet_spins"));
    keel_test_ok(keel_options_set("watchdog.stacks=\"\""));
}

#endif

static void test_stacks_option_checked(void **state)
{
    (void)state;
    keel_status s = keel_options_set("watchdog.stacks=gdb");
    assert_false(keel_ok(s));
    assert_non_null(strstr(keel_status_message(s), "ptrace, signal, none"));
    keel_status_free(s);
}
int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
#if KEEL_WATCHDOG_ON
        cmocka_unit_test_setup_teardown(test_nanosleep_not_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_section_measured_whole, setup_cold, teardown),
        cmocka_unit_test_setup_teardown(test_read_not_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_not_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_program_signal_left_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_child_or_fd_left, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forked_child_own_helper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stacks_none_and_missing_helper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stacks_signal_says_so, setup, teardown),
#endif
        cmocka_unit_test(test_stacks_option_checked),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
