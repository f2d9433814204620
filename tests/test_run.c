/*
 * test_run.c - keel-run on small planted-bug programs compiled without keel (the .c files of
 * tests/run, plain executables): each runs under keel-run with --report, and the test reads the JSON reports.
 *
 * Not built under the sanitizer presets (keel-run and its preload are not: CMakeLists.txt).
 */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#ifndef KEEL_RUN_CLI
#error "KEEL_RUN_CLI: the keel-run under test (tests/CMakeLists.txt)"
#endif
#ifndef KEEL_STRESS_CLI
#error "KEEL_STRESS_CLI: the keel-stress that sweeps (tests/CMakeLists.txt)"
#endif
#ifndef KEEL_RUN_PROGS
#error "KEEL_RUN_PROGS: the directory of the planted programs (tests/CMakeLists.txt)"
#endif

/* What one run left: its exit status, the report file's JSON lines, its stderr. */
typedef struct run_result {
    int status;            /* exit status, or 128 + signal */
    char reports[8 << 20]; /* (test_fork writes many) */
    char err[65536];
    char dir[64];
} run_result;

/* When set, the KEEL_OPTIONS keel-run inherits in run_with (else none). */
static const char *run_env_options;
/* When set, run_with stops the program (SIGKILL) once its report file has this text (60 s at most). */
static const char *run_until;
/* When set, run_with stops the program (SIGKILL: status 128 + 9) if it still runs after this many
 * seconds (a program that must end, not hang). */
static int run_deadline;

static void stop_when_reported(pid_t pid, const char *report, const char *text)
{
    static char seen[1 << 20];
    for (int i = 0; i < 6000; i++) {
        keel_test_read_file(report, seen, sizeof(seen));
        if (strstr(seen, text) != NULL || waitpid(pid, NULL, WNOHANG) != 0)
            break;
        (void)usleep(10 * 1000);
    }
    (void)kill(pid, SIGKILL);
}

/* keel-run [extra options] --report DIR/reports.json -- PROGRAM [arg]; NULL-terminated extras. */
static void run_with(run_result *r, const char *program, const char *arg, ...)
{
    memset(r, 0, sizeof(*r));
    (void)snprintf(r->dir, sizeof(r->dir), "/tmp/keel_test_run.XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    char report[PATH_MAX], errfile[PATH_MAX], prog[PATH_MAX];
    (void)snprintf(report, sizeof(report), "%s/reports.json", r->dir);
    (void)snprintf(errfile, sizeof(errfile), "%s/stderr", r->dir);
    if (strchr(program, '/') != NULL)
        (void)snprintf(prog, sizeof(prog), "%s", program);
    else
        (void)snprintf(prog, sizeof(prog), "%s/%s", KEEL_RUN_PROGS, program);
    const char *argv[16];
    int n = 0;
    argv[n++] = "keel-run";
    va_list ap;
    va_start(ap, arg);
    for (const char *o = va_arg(ap, const char *); o != NULL && n < 10;
         o = va_arg(ap, const char *))
        argv[n++] = o;
    va_end(ap);
    argv[n++] = "--report";
    argv[n++] = report;
    argv[n++] = "--";
    argv[n++] = prog;
    if (arg != NULL)
        argv[n++] = arg;
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int null = open("/dev/null", O_WRONLY);
        if (fd < 0 || null < 0 || dup2(fd, 2) < 0 || dup2(null, 1) < 0)
            _exit(125);
        (void)unsetenv("KEEL_OPTIONS");
        (void)unsetenv("KEEL_REPORT");
        if (run_env_options != NULL)
            (void)setenv("KEEL_OPTIONS", run_env_options, 1);
        execv(KEEL_RUN_CLI, (char *const *)(void *)argv);
        _exit(124);
    }
    int st = 0;
    if (run_until != NULL) /* a program that hangs: stopped once it has reported */
        stop_when_reported(pid, report, run_until);
    for (int i = 0; run_deadline > 0; i++) { /* (the status is left for the waitpid below) */
        siginfo_t info;
        memset(&info, 0, sizeof(info));
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != 0)
            break;
        if (i >= run_deadline * 100) {
            (void)kill(pid, SIGKILL);
            break;
        }
        (void)usleep(10 * 1000);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    keel_test_read_file(report, r->reports, sizeof(r->reports));
    keel_test_read_file(errfile, r->err, sizeof(r->err));
}

static void run_prog(run_result *r, const char *program, const char *arg)
{
    run_with(r, program, arg, (const char *)NULL);
}

static void cleanup(run_result *r)
{
    char cmd[128];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
    assert_int_equal(system(cmd), 0);
}

/* Reports (JSON lines) in r, of `kind` ("" any) whose line contains `text` ("" any). */
static int count(const run_result *r, const char *kind, const char *text)
{
    char want[64];
    (void)snprintf(want, sizeof(want), "{\"kind\":\"%s\"", kind);
    int n = 0;
    for (const char *line = r->reports; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        char *copy = strndup(line, len);
        assert_non_null(copy);
        if ((kind[0] == '\0' || strncmp(copy, want, strlen(want)) == 0) && strstr(copy, text))
            n++;
        free(copy);
        line += len + (end != NULL ? 1 : 0);
    }
    return n;
}

static void show_on_failure(const run_result *r, int reports, int want)
{
    if (reports != want)
        print_message("reports:\n%s\nstderr:\n%s\n", r->reports, r->err);
}

#define EXPECT_REPORTS(r, want)             \
    do {                                    \
        int got_ = count((r), "", "");      \
        show_on_failure((r), got_, (want)); \
        assert_int_equal(got_, (want));     \
    } while (0)

/* A program that must run as without keel-run and report nothing. */
static void expect_no_reports(const char *program, const char *arg)
{
    static run_result r;
    run_prog(&r, program, arg);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
}

/* ---- planted bugs ------------------------------------------------------------------------ */

static void test_inversion_never_deadlocked(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_inversion", NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 1);
    /* the classes are the init sites; the report names the program's call site */
    assert_int_equal(count(&r, "lock-order",
                           "lock order cycle: 'inversion.c:18' acquired while holding "
                           "'inversion.c:19'"),
                     1);
    assert_int_equal(count(&r, "lock-order", "\"site\":{\"file\":\"inversion.c\",\"line\":24"), 1);
    assert_non_null(strstr(r.err, "keel: lock-order:"));
    cleanup(&r);
}

/*
 * Real deadlocks of every shape, each reported once with the cycle and every waiting thread's
 * locks and stack (the program hangs: stopped once it has reported).
 */
static void test_real_deadlock(void **state)
{
    (void)state;
    static run_result r;
    static const struct {
        const char *shape, *title, *waits, *frame;
    } cases[] = {
        {"two", "deadlock: 2 threads wait for each other's locks",
         "waits for mutex 'deadlock.c:", "#0 mutex_cycle ("},
        {"three", "deadlock: 3 threads wait for each other's locks",
         "waits for mutex 'deadlock.c:", "#0 mutex_cycle ("},
        {"rwlock", "deadlock: 2 threads wait for each other's locks",
         "waits for rwlock (write) 'deadlock.c:", "#0 rwlock_cycle ("},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_until = cases[i].title;
        run_with(&r, "run_deadlock", cases[i].shape, "--deadlock-after", "100", (const char *)NULL);
        run_until = NULL;
        assert_int_equal(r.status, 128 + SIGKILL);
        int n = count(&r, "lock-order", cases[i].title);
        show_on_failure(&r, n, 1);
        assert_int_equal(n, 1);
        const char *rep = strstr(r.reports, cases[i].title);
        unsigned threads = cases[i].shape[1] == 'h' ? 3 : 2;
        const char *p = rep;
        for (unsigned t = 0; t < threads; t++) { /* each thread: its wait, its lock, its stack */
            p = strstr(p, cases[i].waits);
            assert_non_null(p);
            assert_non_null(strstr(p, "holding 'deadlock.c:"));
            assert_non_null(strstr(p, cases[i].frame));
            p++;
        }
        assert_null(strstr(p, cases[i].waits)); /* no more */
        assert_non_null(strstr(r.err, cases[i].title));
        cleanup(&r);
    }
    run_with(&r, "run_deadlock", NULL, "--deadlock-after", "soon", (const char *)NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "bad value 'soon' for '--deadlock-after'"));
    cleanup(&r);
}

/* A program that hangs, run with --deadlock-after 100 and stopped once its reports hold `until`. */
static void run_hung(run_result *r, const char *program, const char *arg, const char *until)
{
    run_until = until;
    run_with(r, program, arg, "--deadlock-after", "100", (const char *)NULL);
    run_until = NULL;
    assert_int_equal(r->status, 128 + SIGKILL);
}

/*
 * A deadlock report lists every thread of the process, not only those in a lock wait: `main` in
 * pthread_join (joining a thread of the cycle) and a thread in read holding a mutex of its own,
 * each with its name, tid, the call it is in and where, its locks and its backtrace.
 */
static void test_deadlock_lists_every_thread(void **state)
{
    (void)state;
    static run_result r;
    run_hung(&r, "run_deadlock", "two", "is in read, called at deadlock.c:27");
    int n = count(&r, "lock-order", "deadlock");
    show_on_failure(&r, n, 2);
    const char *main_at = strstr(r.reports, "thread 'main' (tid ");
    assert_non_null(main_at);
    assert_non_null(strstr(main_at, "is in pthread_join, called at deadlock.c:78"));
    assert_non_null(strstr(main_at, "holding no lock keel-run saw taken"));
    assert_non_null(strstr(main_at, "#0 main ("));
    const char *reader_at = strstr(r.reports, "thread 'reader' (tid ");
    assert_non_null(reader_at);
    assert_non_null(strstr(reader_at, "is in read, called at deadlock.c:27"));
    assert_non_null(strstr(reader_at, "holding 'deadlock.c:65' (taken at deadlock.c:26)"));
    assert_non_null(strstr(reader_at, "#0 reader ("));
    assert_int_equal(count(&r, "lock-order", "\"all_threads\":4"), 1);
    cleanup(&r);
}

/*
 * Spinlock deadlocks: a cycle of two spinning threads is reported as a mutex cycle is (a spinning
 * thread looks for a cycle after each slice of its spin), and a spinlock locked again by its
 * holder is reported at the call as a mutex is.
 */
static void test_spinlock_deadlock(void **state)
{
    (void)state;
    static run_result r;
    run_hung(&r, "run_spin_deadlock", "two", "deadlock: 2 threads wait for each other's locks");
    int n = count(&r, "lock-order", "deadlock: 2 threads wait for each other's locks");
    show_on_failure(&r, n, 1);
    assert_int_equal(n, 1);
    const char *p = strstr(r.reports, "deadlock: 2 threads");
    for (int t = 0; t < 2; t++) { /* each thread: its spin, the spinlock it holds, its stack */
        p = strstr(p, "waits for spinlock 'spin_deadlock.c:");
        assert_non_null(p);
        assert_non_null(strstr(p, "holding 'spin_deadlock.c:"));
        assert_non_null(strstr(p, "#0 spin_cycle ("));
        p++;
    }
    assert_non_null(strstr(r.reports, "is in pthread_join, called at spin_deadlock.c:37"));
    cleanup(&r);
    run_hung(&r, "run_spin_deadlock", "self", "self-deadlock: spinlock");
    assert_int_equal(count(&r, "lock-misuse",
                           "self-deadlock: spinlock 'spin_deadlock.c:24' locked again by the "
                           "thread that holds it: the call spins forever"),
                     1);
    assert_int_equal(count(&r, "lock-misuse", "\"line\":28"), 1);
    cleanup(&r);
}

/* A hang with no lock cycle (every thread in a condition wait nobody will signal, the shape of
 * pigz's error path): reported once with every thread's wait and stack. */
static void test_hang_every_thread_waits(void **state)
{
    (void)state;
    static run_result r;
    const char *title = "hang: every thread of the program (2) has waited longer than 100 ms";
    run_until = title;
    run_with(&r, "run_cond_hang", NULL, "--deadlock-after", "100", (const char *)NULL);
    run_until = NULL;
    assert_int_equal(r.status, 128 + SIGKILL);
    int n = count(&r, "watchdog", title);
    show_on_failure(&r, n, 1);
    assert_int_equal(n, 1);
    assert_int_equal(
        count(&r, "watchdog", "waits on a condition with mutex '&lock' at cond_hang.c:39"), 1);
    assert_int_equal(
        count(&r, "watchdog", "waits on a condition with mutex '&lock' at cond_hang.c:20"), 1);
    assert_int_equal(count(&r, "watchdog", "#0 worker ("), 1);
    assert_int_equal(count(&r, "watchdog", "#0 main ("), 1);
    cleanup(&r);
}

/* PROGRAM hung under --deadlock-after 100, with one report of kind watchdog saying `title`. */
static void run_hang(run_result *r, const char *program, const char *title)
{
    run_hung(r, program, NULL, title);
    int n = count(r, "watchdog", title);
    show_on_failure(r, n, 1);
    assert_int_equal(n, 1);
}

/*
 * A hang whose main thread is in pthread_join (the usual shape: main joins a thread that waits
 * forever): a joining thread counts as waiting, and the report lists it with its call and stack.
 */
static void test_hang_main_joins(void **state)
{
    (void)state;
    static run_result r;
    run_hang(&r, "run_join_hang",
             "hang: every thread of the program (3) has waited longer than 100 ms");
    assert_int_equal(count(&r, "watchdog",
                           "waits on a condition with mutex '&lock' at "
                           "join_hang.c:28"),
                     1);
    assert_int_equal(count(&r, "watchdog",
                           "waits on a condition with mutex '&lock' at "
                           "join_hang.c:17"),
                     1);
    assert_int_equal(count(&r, "watchdog", "thread 'main' (tid "), 1);
    assert_int_equal(count(&r, "watchdog", "is in pthread_join, called at join_hang.c:39"), 1);
    assert_int_equal(count(&r, "watchdog", "#0 main ("), 1);
    cleanup(&r);
}

/*
 * A hang of lock waits with no cycle: a thread returned holding the lock a worker then waits
 * for, and main joins the worker.  Reported by the lock waiter (before, only a condition waiter
 * looked for a hang: nothing was said without --hang-after).
 */
static void test_hang_on_a_lock_nobody_gives_back(void **state)
{
    (void)state;
    static run_result r;
    run_hang(&r, "run_lock_hang",
             "hang: every thread of the program (2) has waited longer than 100 ms");
    assert_int_equal(count(&r, "watchdog", "is in pthread_join, called at lock_hang.c:30"), 1);
    assert_int_equal(count(&r, "lock-order", "deadlock"), 0);
    cleanup(&r);
}

/*
 * A hang outside the locks (--hang-after 100): run_block_hang HOW, main joining a worker blocked
 * for ever in a call; stopped once reported.  The report lists both threads with their calls and
 * lines (`worker`: the worker's, "is in CALL, called at block_hang.c:LINE").
 */
static void expect_block_hang(const char *how, const char *worker)
{
    static run_result r;
    const char *title = "hang: every thread of the program (2) has been blocked for";
    run_until = title;
    run_with(&r, "run_block_hang", how, "--hang-after", "100", (const char *)NULL);
    run_until = NULL;
    assert_int_equal(r.status, 128 + SIGKILL);
    int n = count(&r, "watchdog", title);
    show_on_failure(&r, n, 1);
    assert_int_equal(n, 1);
    assert_int_equal(count(&r, "watchdog", worker), 1);
    assert_int_equal(count(&r, "watchdog", "is in pthread_join, called at block_hang.c:64"), 1);
    /* the worker's stack, by keel-stack (waitpid's child, forked by the worker, may report its
     * own hang in read: its stack has the worker's frame too) */
    assert_true(count(&r, "watchdog", "#0 worker (") >= 1);
    cleanup(&r);
}

/* test_hang_in_CALL: the worker blocked in CALL at block_hang.c:LINE */
#define BLOCK_HANG_TEST(call, line)                                                 \
    static void test_hang_in_##call(void **state)                                   \
    {                                                                               \
        (void)state;                                                                \
        expect_block_hang(#call, "is in " #call ", called at block_hang.c:" #line); \
    }

BLOCK_HANG_TEST(read, 27)
BLOCK_HANG_TEST(poll, 29)
BLOCK_HANG_TEST(sigwait, 33)
BLOCK_HANG_TEST(ppoll, 35)
BLOCK_HANG_TEST(sem_wait, 37)
BLOCK_HANG_TEST(waitpid, 45)

/* PROGRAM HOW under --hang-after 100: it ends (exit 0), nothing reported. */
static void expect_not_hung(const char *program, const char *how)
{
    static run_result r;
    run_with(&r, program, how, "--hang-after", "100", (const char *)NULL);
    if (r.status != 0 || count(&r, "", "") != 0)
        print_message("%s %s:\n", program, how);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
}

/*
 * Under --hang-after 100 no hang: a wait with a timeout (poll for 300 ms); a waitpid for a child
 * waiting for a grandchild that computes for a second; a read whose thread computes for a second
 * in a signal handler (it is in state R: running, not blocked).  No report.
 */
static void test_timed_wait_not_hang(void **state)
{
    (void)state;
    expect_not_hung("run_block_hang", "timed");
    expect_not_hung("run_not_hung", "busy_child");
    expect_not_hung("run_not_hung", "handler");
}

/*
 * Timers under --hang-after 100 (tests/run/timers.c): the program waits without a timeout for a
 * timer that fires every 400 ms (the signal of a timer_create timer in sigwait, a timerfd in
 * read), three times: it makes progress, no report (before session 18 the timerfd's was reported
 * as a hang, and the timer's signal, which the program blocks to take it with sigwait, was
 * delivered to keel-run's watcher thread and ended the program).  The same waits for a one-shot
 * timer that has fired are hangs: reported.
 */
static void test_timers_not_hang(void **state)
{
    (void)state;
    expect_not_hung("run_timers", "posix");
    expect_not_hung("run_timers", "timerfd");
}

static void test_hang_on_spent_timer(void **state)
{
    (void)state;
    static run_result r;
    static const char *const hows[] = {"posix_spent", "timerfd_spent"};
    static const char *const calls[] = {"is in sigwait, called at timers.c:50",
                                        "is in read, called at timers.c:63"};
    const char *title = "hang: every thread of the program (1) has been blocked for";
    for (size_t i = 0; i < sizeof(hows) / sizeof(hows[0]); i++) {
        run_until = title;
        run_with(&r, "run_timers", hows[i], "--hang-after", "100", (const char *)NULL);
        run_until = NULL;
        int n = count(&r, "watchdog", title);
        if (n != 1)
            print_message("%s:\n", hows[i]);
        show_on_failure(&r, n, 1);
        assert_int_equal(r.status, 128 + SIGKILL);
        assert_int_equal(n, 1);
        assert_int_equal(count(&r, "watchdog", calls[i]), 1);
        cleanup(&r);
    }
}

/*
 * Every kind of lock contended across keel-run's wait slices (tests/run/contended.c): readers
 * against a writer, a recursive mutex held three levels deep against another thread, timed and
 * clock locks of mutexes and rwlocks that time out and that get the lock, four consumers on one
 * condition, the trylocks of every kind (EBUSY while held), a spinlock taken through slices.
 * With slices of 1 ms, and of 5 ms under --hang-after 20: every answer right, no report.
 */
static void test_contended_locks_of_every_kind(void **state)
{
    (void)state;
    static run_result r;
    run_with(&r, "run_contended", NULL, "--deadlock-after", "1", (const char *)NULL);
    if (r.status != 0)
        print_message("stderr:\n%s\n", r.err);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
    run_with(&r, "run_contended", NULL, "--deadlock-after", "5", "--hang-after", "20",
             (const char *)NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
}

/* Long waits that are not a deadlock (a chain of waits behind a sleeping holder): no report. */
/*
 * A spinlock found held is acquired once it is let go: keel-run's spin in slices tries the lock
 * when its word says free, in glibc's encoding of the architecture (on x86 a free spinlock holds
 * 1: a spin that waited for 0 never ended, and a correct program hung whenever two threads met
 * on a spinlock).  Slices of 50 ms: each of the 20 acquisitions waits through one or more.
 */
static void test_contended_spinlock_acquired(void **state)
{
    (void)state;
    static run_result r;
    run_with(&r, "run_spin_contended", NULL, "--deadlock-after", "50", (const char *)NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
}

static void test_long_wait_not_deadlock(void **state)
{
    (void)state;
    static run_result r;
    run_with(&r, "run_long_wait", NULL, "--deadlock-after", "100", (const char *)NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
}

/*
 * The transfers beyond read and write under a spinlock (the socket calls, the vector and
 * positioned ones, the _FORTIFY_SOURCE ones): reported on a blocking descriptor; not with
 * MSG_DONTWAIT, on a non-blocking one, or a pread/pwrite that cannot block.  And every sleeping
 * and waiting call the issue names, each reported once (a poll with a zero timeout not).
 */
static void test_more_calls_under_spinlock(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_spin_calls", NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 30);
    static const struct {
        const char *what;
        int n;
    } calls[] = {
        {"\"send on a blocking descriptor", 1},
        {"\"recv on a blocking descriptor", 2},
        {"\"sendto on a blocking descriptor", 1},
        {"\"recvfrom on a blocking descriptor", 2},
        {"\"sendmsg on a blocking descriptor", 1},
        {"\"recvmsg on a blocking descriptor", 1},
        {"\"writev on a blocking descriptor", 1},
        {"\"readv on a blocking descriptor", 1},
        {"\"write on a blocking descriptor", 1},
        {"\"read on a blocking descriptor", 1},
        {"\"connect on a blocking descriptor", 1},
        {"\"accept on a blocking descriptor", 1},
        {"pread", 0},
        {"pwrite", 0},
        /* and the sleeping and waiting calls (a zero-timeout poll not) */
        {"\"nanosleep while holding 1 spinlock", 1},
        {"\"clock_nanosleep while holding 1 spinlock", 1},
        {"\"sleep while holding 1 spinlock", 1},
        {"\"poll while holding 1 spinlock", 1},
        {"\"select while holding 1 spinlock", 1},
        {"\"epoll_wait while holding 1 spinlock", 1},
        {"\"pthread_join while holding 1 spinlock", 1},
        {"\"pthread_cond_wait while holding 1 spinlock", 1},
        {"\"pthread_rwlock_rdlock while holding 1 spinlock", 1},
        /* the other waits (a zero timeout, WNOHANG not) */
        {"\"ppoll while holding 1 spinlock", 1},
        {"\"pselect while holding 1 spinlock", 1},
        {"\"epoll_pwait while holding 1 spinlock", 1},
        {"\"sem_wait while holding 1 spinlock", 1},
        {"\"sem_timedwait while holding 1 spinlock", 1},
        {"\"waitpid while holding 1 spinlock", 1},
        {"\"sigwait while holding 1 spinlock", 1},
        {"\"sigtimedwait while holding 1 spinlock", 0},
    };
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        int n = count(&r, "lock-blocking", calls[i].what);
        if (n != calls[i].n)
            (void)fprintf(stderr, "'%s': %d reports, not %d\n", calls[i].what, n, calls[i].n);
        assert_int_equal(n, calls[i].n);
    }
    /* the fortified read's site is the program's line */
    assert_int_equal(count(&r, "lock-blocking", "\"file\":\"spin_calls.c\",\"line\":138"), 1);
    cleanup(&r);
}

/*
 * Rank violations on an unmodified program: --rank CLASS=N ranks a class (its name in reports);
 * a lock taken below the rank of one held is reported at once, although no order cycle formed
 * (without the ranks: no report).  A bad --rank is a usage error.
 */
static void test_rank_violation(void **state)
{
    (void)state;
    static run_result r;
    run_with(&r, "run_rank", NULL, "--rank", "rank.c:10=10", "--rank=rank.c:11=20",
             (const char *)NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "lock-order",
                           "rank violation: 'rank.c:10' (rank 10) acquired while holding "
                           "'rank.c:11' (rank 20)"),
                     1);
    assert_int_equal(count(&r, "lock-order", "\"file\":\"rank.c\",\"line\":13"), 1);
    cleanup(&r);
    run_prog(&r, "run_rank", NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
    run_with(&r, "run_rank", NULL, "--rank", "rank.c:10", (const char *)NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "bad value 'rank.c:10' for '--rank'"));
    cleanup(&r);
    /* a 65th class: refused (the library reads 64; the rest were dropped without a word) */
    static char opts[65][32];
    const char *argv[70];
    int n = 0;
    argv[n++] = "keel-run";
    for (int i = 0; i < 65; i++) {
        (void)snprintf(opts[i], sizeof(opts[i]), "--rank=c%d.c:1=%d", i, i + 1);
        argv[n++] = opts[i];
    }
    argv[n++] = "--";
    argv[n++] = "/bin/true";
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null < 0 || dup2(null, 2) < 0)
            _exit(125);
        execv(KEEL_RUN_CLI, (char *const *)(void *)argv);
        _exit(124);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
}

/*
 * The inversion's report, its suppression entry printed by --gen-suppressions,
 * read back with --suppressions: the same run reports nothing and says so at
 * exit; a file that does not open is refused before the program runs.
 */
static void test_suppressions(void **state)
{
    (void)state;
    static run_result r;
    run_with(&r, "run_inversion", NULL, "--gen-suppressions", (const char *)NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 1);
    const char *open = strstr(r.err, "  {\n");
    const char *close = open != NULL ? strstr(open, "  }\n") : NULL;
    if (open == NULL || close == NULL)
        fail_msg("no suppression entry in:\n%s", r.err);
    assert_non_null(strstr(open, "keel:lock-order\n"));
    char path[PATH_MAX];
    (void)snprintf(path, sizeof(path), "%s.supp", r.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fprintf(f, "%.*s", (int)(close + 4 - open), open) > 0);
    assert_int_equal(fclose(f), 0);
    cleanup(&r);
    run_with(&r, "run_inversion", NULL, "--suppressions", path, (const char *)NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    assert_null(strstr(r.err, "keel: lock-order:"));
    assert_non_null(strstr(r.err, "keel: 1 report suppressed by '"));
    cleanup(&r);
    (void)unlink(path);
    run_with(&r, "run_inversion", NULL, "--suppressions", path, (const char *)NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "keel-run: suppressions file '"));
    cleanup(&r);
}

/*
 * The keel options the program would get, checked before its main: a malformed --stress,
 * --options, suppressions file or inherited KEEL_OPTIONS is a usage error, exit status 2 (the
 * program used to run with none of its options applied, and an options report), as is an empty
 * file name; a --stress value with ';' in it stays one value.
 */
static void test_bad_options_refused(void **state)
{
    (void)state;
    static run_result r;
    char supp[PATH_MAX];
    (void)snprintf(supp, sizeof(supp), "/tmp/keel_test_run_bad.%d.supp", (int)getpid());
    FILE *f = fopen(supp, "w");
    assert_non_null(f);
    assert_true(fputs("{\n   named\n   keel:lock-order\n   func:main\n}\n", f) >= 0);
    assert_int_equal(fclose(f), 0);
    const char *const cases[][3] = {
        {"--stress", "libc.write:evry=2",
         "keel-run: 'run_inversion' not run, its keel options are malformed: KEEL_OPTIONS: bad "
         "value for option 'stress' at position 8: stress: bad stress entry 'libc.write:evry=2': "
         "unknown term 'evry'"},
        {"--stress", "libc.*:1/2;report.inversion=count", "'K/N' needs a whole number"},
        {"--options", "repotr.file=x", "unknown option 'repotr.file'"},
        {"--suppressions", "/tmp", "suppressions file '/tmp' is a directory"},
        {"--suppressions", supp, "line 4: a frame is fun:, src:, obj: or ..., not 'func:main'"},
        {"--lock-graph=", NULL, "keel-run: option '--lock-graph' needs a file name, not ''"},
        /* a file the program could not write, known before it runs (not at its exit) */
        {"--lock-graph", "/dev/null/graph.dot",
         "keel-run: bad value '/dev/null/graph.dot' for '--lock-graph': cannot create it in "
         "'/dev/null'"},
        {"--report", "/tmp", "keel-run: bad value '/tmp' for '--report': it is a directory"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_with(&r, "run_inversion", NULL, cases[i][0], cases[i][1], (const char *)NULL);
        if (r.status != 2 || strstr(r.err, cases[i][2]) == NULL ||
            (cases[i][1] != NULL && strncmp(cases[i][2], "keel-run:", 9) != 0 &&
             strstr(r.err, "keel-run: 'run_inversion' not run") == NULL) ||
            strstr(r.err, "keel: options") != NULL)
            fail_msg("%s %s: status %d, expected 2 and '%s' in:\n%s", cases[i][0],
                     cases[i][1] != NULL ? cases[i][1] : "", r.status, cases[i][2], r.err);
        EXPECT_REPORTS(&r, 0); /* it did not run */
        cleanup(&r);
    }
    (void)unlink(supp);
    run_env_options = "report.frams=3";
    run_prog(&r, "run_inversion", NULL);
    run_env_options = NULL;
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "KEEL_OPTIONS: unknown option 'report.frams' at position 1 "
                                  "(did you mean 'report.frames'?)"));
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
    /* a well-formed entry whose thread glob has a ';': one value, the rest applied */
    run_with(&r, "run_inversion", NULL, "--stress", "libc.nothing:thread=a;b", "--options",
             "report.lock-order=count", (const char *)NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    assert_null(strstr(r.err, "keel: options"));
    cleanup(&r);
}

/* A program named without a '/' is an executable regular file on PATH, as a shell finds it. */
static void test_program_on_path(void **state)
{
    (void)state;
    char dir[] = "/tmp/keel_test_path.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[PATH_MAX];
    (void)snprintf(sub, sizeof(sub), "%s/true", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    static const char *const names[] = {"true", ""};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char errfile[PATH_MAX];
        (void)snprintf(errfile, sizeof(errfile), "%s/stderr", dir);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || dup2(fd, 2) < 0 || setenv("PATH", dir, 1) != 0)
                _exit(125);
            execl(KEEL_RUN_CLI, "keel-run", "--", names[i], (char *)NULL);
            _exit(124);
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        static char err[4096];
        keel_test_read_file(errfile, err, sizeof(err));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 127 || strstr(err, "not found") == NULL)
            fail_msg("'%s' on a PATH with only a directory of that name: status %d:\n%s", names[i],
                     st, err);
    }
    char errfile[PATH_MAX];
    (void)snprintf(errfile, sizeof(errfile), "%s/stderr", dir);
    assert_int_equal(unlink(errfile), 0);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_three_lock_cycle(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_cycle3", NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "lock-order", "the cycle (3 locks)"), 1);
    assert_int_equal(count(&r, "lock-order", "\"site\":{\"file\":\"cycle3.c\",\"line\":11"), 1);
    cleanup(&r);
}

static void test_blocking_under_spinlock(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_spin_block", NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 3);
    /* a pipe blocks; a regular file and a non-blocking descriptor do not */
    assert_int_equal(count(&r, "lock-blocking", "write on a blocking descriptor while holding"), 1);
    assert_int_equal(count(&r, "lock-blocking", "usleep while holding 1 spinlock(s)"), 1);
    assert_int_equal(count(&r, "lock-blocking", "pthread_mutex_lock while holding 1 spinlock(s)"),
                     1);
    assert_int_equal(count(&r, "lock-blocking", "\"file\":\"spin_block.c\",\"line\":15"), 1);
    cleanup(&r);
}

static void test_one_class_against_address_order(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_array_order", NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "lock-order", "address order violated: 'array_order.c:10'"), 1);
    assert_int_equal(count(&r, "lock-order", "\"file\":\"array_order.c\",\"line\":16"), 1);
    cleanup(&r);
}

static void test_self_deadlock(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_self_deadlock", NULL);
    assert_int_equal(r.status, 0); /* EDEADLK and ETIMEDOUT, as without keel-run */
    EXPECT_REPORTS(&r, 3);
    assert_int_equal(count(&r, "lock-misuse", "self-deadlock: mutex 'self_deadlock.c:18'"), 1);
    assert_int_equal(count(&r, "lock-misuse", "the call fails with EDEADLK"), 1);
    /* pthread_mutex_timedlock and pthread_mutex_clocklock */
    assert_int_equal(count(&r, "lock-misuse", "the call waits until its timeout"), 2);
    cleanup(&r);
}

static void test_unlock_by_non_holder(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_nonholder", NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "lock-misuse", "unlock of '&m', which this thread does not hold"),
                     1);
    assert_int_equal(count(&r, "lock-misuse", "\"func\":\"stranger\""), 1);
    cleanup(&r);
}

static void test_destroy_while_held(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_destroy_held", NULL);
    assert_int_equal(r.status, 0); /* EBUSY, as without keel-run */
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(
        count(&r, "lock-misuse", "destroying lock 'destroy_held.c:7' while it is held"), 1);
    cleanup(&r);
}

static void test_misuse(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_misuse", NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 3);
    assert_int_equal(count(&r, "lock-blocking", "pthread_join while holding 1 spinlock(s)"), 1);
    assert_int_equal(count(&r, "lock-misuse", "thread exiting with 1 keel lock(s) held"), 1);
    assert_int_equal(count(&r, "lock-misuse", "condition wait with mutex '&m' not held"), 1);
    cleanup(&r);
}

/*
 * The heap's other two findings on an unmodified program: an invalid free (a pointer into a
 * block) reported at the free, and an overflow onto a guard page (heap.guard-sample=1) reported
 * at the faulting read with the block's size and site; each ends the program (report.heap=abort).
 */
static void test_heap_invalid_free_and_guard_page(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_heap_invalid", NULL);
    assert_int_equal(r.status, 128 + SIGABRT);
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "heap", "not a block of any keel heap"), 1);
    assert_int_equal(count(&r, "heap", "\"file\":\"heap_invalid.c\",\"line\":22"), 1);
    cleanup(&r);
    run_with(&r, "run_heap_invalid", "guard", "--options", "heap.guard-sample=1",
             (const char *)NULL);
    assert_int_not_equal(r.status, 0);
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "heap",
                           "past the end of a 100-byte block of module 'program' hit "
                           "its guard page"),
                     1);
    assert_int_equal(count(&r, "heap", "block allocated at heap_invalid.c:12 in main()"), 1);
    cleanup(&r);
}

/* ---- the heap ------------------------------------------------------------------------------ */

static void test_heap_overflow(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_heap_overflow", NULL);
    assert_int_equal(r.status, 134); /* report.heap=abort, keel's default */
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "heap",
                           "heap overflow: the red zone after a 24-byte block of module "
                           "'program' was overwritten at offset 24"),
                     1);
    /* at the program's free, the block's allocation site named too */
    assert_int_equal(count(&r, "heap", "\"site\":{\"file\":\"heap_overflow.c\",\"line\":15"), 1);
    assert_int_equal(count(&r, "heap", "allocated at heap_overflow.c:13 in main()"), 1);
    cleanup(&r);
}

static void test_heap_use_after_free(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_heap_uaf", NULL);
    assert_int_equal(r.status, 134);
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "heap", "write after free: a freed 16-byte block"), 1);
    assert_int_equal(count(&r, "heap", "allocated at heap_uaf.c:19 in main()"), 1);
    assert_int_equal(count(&r, "heap", "freed at heap_uaf.c:21"), 1);
    cleanup(&r);
}

static void test_heap_double_free(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_heap_double", NULL);
    assert_int_equal(r.status, 134);
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "heap", "double free: free of a 5-byte block"), 1);
    /* strdup's block: its site is the program's call of strdup, not libc's malloc */
    assert_int_equal(count(&r, "heap", "allocated at heap_double.c:14 in main()"), 1);
    assert_int_equal(count(&r, "heap", "\"site\":{\"file\":\"heap_double.c\",\"line\":9"), 1);
    cleanup(&r);
}

static void test_heap_leak(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_heap_leak", NULL);
    assert_int_equal(r.status, 0); /* report.leak=report */
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "leak", "of the program heap leaked: unreachable at exit"), 1);
    assert_int_equal(count(&r, "leak", "5 blocks, 500 bytes allocated at heap_leak.c:19 in lose()"),
                     1);
    assert_int_equal(count(&r, "leak", "allocated at heap_leak.c:32 in main()"), 1);
    /* reachable at exit: a list from a global, a thread-local pointer */
    assert_int_equal(count(&r, "leak", "heap_leak.c:26"), 0);
    assert_int_equal(count(&r, "leak", "heap_leak.c:30"), 0);
    cleanup(&r);
    run_with(&r, "run_heap_leak", NULL, "--heap=off", (const char *)NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
}

static void test_heap_correct_program(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_heap_clean", NULL);
    assert_int_equal(r.status, 0); /* every call behaved as glibc's */
    EXPECT_REPORTS(&r, 0);
    assert_null(strstr(r.err, "heap_clean:"));
    cleanup(&r);
}

/*
 * A storm of signals (tests/run/signal_storm.c, 2 s of them) whose handler allocates, locks and
 * frees, at three threads that allocate, lock, free and make mutexes: the handler runs in the
 * middle of keel-run's interposed calls, with keel-run's spinlocks, keel's heap shard locks or
 * glibc's arena lock held by its thread.  The program ends (exit 0) within 20 s; before session
 * 18 it hung 5 runs of 5: a handler's malloc waiting for glibc's arena lock its own thread held
 * (keel's heap allocating from glibc), or spinning on the root table's lock its thread held.
 * No report: before session 19 a handler that interrupted the lock fast path between its entry's
 * fill and its publication left its own lock's entry on the held stack (up to a few dozen false
 * reports a run: a self-deadlock of the handler's mutex, a thread exiting with it held).
 */
/* A storm program run for 2 s: it must end (exit 0) within deadline seconds. */
static void run_storm(run_result *r, const char *program, int deadline)
{
    run_deadline = deadline;
    run_prog(r, program, "2");
    run_deadline = 0;
    if (r->status == 128 + SIGKILL)
        print_message("hang: %s still ran after %d s under keel-run (killed)\nstderr:\n%s\n",
                      program, deadline, r->err);
    assert_int_equal(r->status, 0);
}

static void test_signal_storm(void **state)
{
    (void)state;
    static run_result r;
    run_storm(&r, "run_signal_storm", 20);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
}

/*
 * A storm of signals whose handlers share one mutex and lock another under it, at threads that
 * keep taking new sequences of locks (tests/run/signal_graph.c): each new sequence holds keel's
 * lock of the order graph for a while.  The program ends (exit 0) within 30 s: keel's own locks
 * are held with the program's signals blocked.  Before session 19 a handler ran under the
 * graph's lock and waited for the shared mutex, held by a handler on another thread waiting for
 * the graph's lock: it hung.  The only report is the limit of keel's table of lock sequences.
 */
static void test_signal_graph(void **state)
{
    (void)state;
    static run_result r;
    run_storm(&r, "run_signal_graph", 30);
    EXPECT_REPORTS(&r, count(&r, "limit", "lock chain cache full"));
    cleanup(&r);
}

/*
 * A storm of signals whose handler takes a mutex the other threads hold while they free each
 * other's blocks (tests/run/signal_heap_wait.c): the program ends (exit 0) within 20 s, with no
 * report.  Before session 20 a handler that interrupted its thread inside a shard's lock of keel's
 * heap waited for the mutex, held by a thread freeing a block of that shard, which waited for the
 * shard's lock: it hung in 8 runs of 9 (4 threads; 3 threads: 6 of 13).  With the shard's lock
 * never waited for, a thread that freed a block leaving the quarantine to the C library's
 * allocator took the arena lock of the block's thread, interrupted there: 6 runs of 14 hung so.
 */
static void test_signal_heap_wait(void **state)
{
    (void)state;
    static run_result r;
    run_storm(&r, "run_signal_heap_wait", 20);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
}

/*
 * Signals sent to the process (kill) while the program's only thread that does not block them
 * is none (tests/run/sigwait_process.c): its waiter takes each in sigwait.  keel's threads (the
 * hang watcher, the watchdog of a hold budget), started from main while SIGUSR1 was open in it,
 * block every signal: before session 19 the watchdog did not, took the first signal, and the
 * process died of it (status 128 + SIGUSR1).
 */
static void test_sigwait_process_signals(void **state)
{
    (void)state;
    static run_result r;
    run_with(&r, "run_sigwait_process", NULL, "--hang-after", "60000", "--options",
             "lock.budget=&lock:60000", (const char *)NULL);
    if (r.status != 0)
        print_message("stderr:\n%s\n", r.err);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
}

/*
 * Signal handlers that use up keel-run's reserve for allocations inside glibc's allocator, or
 * fill its table of deferred frees (tests/run/signal_heap_limits.c): the program ends (exit 0),
 * and the limit is reported once (kind limit).  Before session 19 neither was reported: a
 * handler's allocation past the reserve re-entered glibc's allocator, a free past the table was
 * dropped without a word.
 */
static void heap_limit_case(const char *mode, const char *text)
{
    static run_result r;
    run_deadline = 60;
    run_prog(&r, "run_signal_heap_limits", mode);
    run_deadline = 0;
    int n = count(&r, "limit", text);
    show_on_failure(&r, n, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(n, 1);
    cleanup(&r);
}

static void test_signal_heap_reserve(void **state)
{
    (void)state;
    heap_limit_case("reserve", "the reserve for signal handlers' allocations");
}

static void test_signal_heap_deferred(void **state)
{
    (void)state;
    heap_limit_case("defer", "the table of frees deferred from signal handlers");
}

/*
 * A signal handler that allocates and frees while keel-run starts, every 100 us from before any
 * constructor (tests/run/early_free.c), then main leaks a block holding the only pointer to a
 * second one: both reported, nothing else.  The blocks the handler made inside keel-run's start
 * are roots of the leak scan until freed; before session 18 their free did not take them out
 * of the table (heap not yet on), and the program hung in keel-run's start (the handler's
 * malloc waiting on a lock its own thread held).
 */
static void test_early_free_not_a_root(void **state)
{
    (void)state;
    static run_result r;
    run_deadline = 20;
    run_prog(&r, "run_early_free", NULL);
    run_deadline = 0;
    assert_int_equal(r.status, 0);
    int n = count(&r, "leak", "2 blocks (104 bytes) of the program heap leaked");
    show_on_failure(&r, n, 1);
    assert_int_equal(n, 1);
    EXPECT_REPORTS(&r, 1);
    cleanup(&r);
}

/* Signal handlers that allocate and lock (in a thread holding a lock, and sent to another
 * thread), and dlopen/dlclose of a library used between: survived, nothing reported. */
static void test_signal_handlers_and_dlopen(void **state)
{
    (void)state;
    expect_no_reports("run_survive", NULL);
}

/* ---- what it must survive ----------------------------------------------------------------- */

static void test_static_initializers(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_static_init", NULL);
    assert_int_equal(r.status, 0); /* every type behaved as without keel-run */
    EXPECT_REPORTS(&r, 2);
    /* a class per static object, named by its symbol */
    assert_int_equal(count(&r, "lock-order", "'&normal_a' acquired while holding '&normal_b'"), 1);
    assert_int_equal(count(&r, "lock-misuse", "unlock of '&errorcheck', which is not locked"), 1);
    cleanup(&r);
}

static void test_before_main_and_unseen_locks(void **state)
{
    (void)state;
    expect_no_reports("run_early", NULL);
}

static void test_fork(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_fork", NULL);
    assert_int_equal(r.status, 0); /* every child ended as planned: no hang, no crash */
    /* each child's inversion, against the order learned before the fork */
    assert_int_equal(count(&r, "lock-order", "'&lock_a' acquired while holding '&lock_b'"), 10);
    assert_true(count(&r, "lock-blocking", "usleep while holding 1 spinlock(s)") > 0);
    assert_int_equal(count(&r, "", ""), 10 + count(&r, "lock-blocking", ""));
    cleanup(&r);
}

static void test_correct_program_no_reports(void **state)
{
    (void)state;
    static run_result r;
    char graph[PATH_MAX];
    (void)snprintf(graph, sizeof(graph), "/tmp/keel_test_run_graph.%d.dot", (int)getpid());
    run_with(&r, "run_clean", NULL, "--lock-graph", graph, (const char *)NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    static char dot[65536];
    keel_test_read_file(graph, dot, sizeof(dot));
    (void)unlink(graph);
    assert_non_null(strstr(dot, "digraph keel_lock_order {"));
    /* the learned order: the configuration rwlock before the table's locks (one init site) */
    assert_non_null(strstr(dot, "\"&config\" -> \"clean.c:"));
    cleanup(&r);
}

static void test_heap_locks_churn(void **state)
{
    (void)state;
    expect_no_reports("run_churn", NULL);
}

static void test_read_read_cycle_not_reported(void **state)
{
    (void)state;
    expect_no_reports("run_rwlock_rr", NULL);
    static run_result r;
    run_prog(&r, "run_rwlock_rr", "writer"); /* one side exclusive: a real cycle */
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "lock-order", "lock order cycle"), 1);
    cleanup(&r);
}

/*
 * The waits' stress points (a fire: EINTR, as a signal would make it): each of poll, ppoll,
 * select, pselect, epoll_wait, epoll_pwait, sem_wait, sem_timedwait, waitpid, wait, waitid,
 * wait4, sigwaitinfo, sigtimedwait, sigsuspend and pause (tests/run/wait_calls.c) fails once at
 * once with EINTR, at the program's own line; without its point it would wait for ever.
 */
static void test_wait_calls_fail_with_eintr(void **state)
{
    (void)state;
    static run_result r;
    run_with(&r, "run_wait_calls", NULL, "--stress", "libc.*:max=1", "--options",
             "report.stress=report", (const char *)NULL);
    if (r.status != 0)
        print_message("reports:\n%s\nstderr:\n%s\n", r.reports, r.err);
    assert_int_equal(r.status, 0);
    static const char *const points[] = {"poll", "select",  "epoll_wait", "sem_wait",
                                         "wait", "sigwait", "pause"};
    static const int fires[] = {2, 2, 2, 2, 4, 2, 2};
    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
        char want[64];
        (void)snprintf(want, sizeof(want), "stress option 'libc.%s.wait_calls_c_", points[i]);
        assert_int_equal(count(&r, "stress", want), fires[i]);
    }
    cleanup(&r);
}

/*
 * Locks whose glibc state keel-run reads (run/run_glibc.h), none misused: a priority-protected
 * mutex never locked (its ceiling in its lock word), robust mutexes whose owner died (destroyed
 * unlocked; locked with EOWNERDEAD, which holds it, and unlocked), a PTHREAD_RWLOCK_PREFER_WRITER_NP
 * rwlock read-locked twice: no report.  The double read lock of a ..._NONRECURSIVE_NP rwlock is.
 */
static void test_glibc_state_no_false_reports(void **state)
{
    (void)state;
    expect_no_reports("run_glibc_state", NULL);
    static run_result r;
    run_prog(&r, "run_glibc_state", "nonrecursive");
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 1);
    assert_int_equal(count(&r, "lock-order", "recursive read lock of rwlock"), 1);
    cleanup(&r);
}

/* ---- faults at libc calls ------------------------------------------------------------------- */

/*
 * A fired stress point at a libc call is the program's call site's: the journal's second write
 * (its first append, lost_write.c:21) fails and the planted bug crashes; the first fails and the
 * program exits 1; with --heap=off and on, its malloc (lost_write.c:39) fails and it exits 1.
 */
static void test_fault_at_call_site(void **state)
{
    (void)state;
    static run_result r;
    run_with(&r, "run_lost_write", NULL, "--stress", "libc.write.*:nth=2", "--options",
             "report.stress=report", (const char *)NULL);
    assert_int_equal(r.status, 128 + SIGSEGV);
    assert_int_equal(count(&r, "stress", "stress option 'libc.write.lost_write_c_21' fired"), 1);
    assert_int_equal(count(&r, "stress", "\"site\":{\"file\":\"lost_write.c\",\"line\":21"), 1);
    cleanup(&r);
    run_with(&r, "run_lost_write", "fixed", "--stress", "libc.write.*:nth=1", "--options",
             "report.stress=report", (const char *)NULL);
    assert_int_equal(r.status, 1);
    assert_int_equal(count(&r, "stress", "libc.write.lost_write_c_45"), 1);
    cleanup(&r);
    for (int heap = 0; heap < 2; heap++) { /* glibc's allocator, then keel's heap */
        run_with(&r, "run_lost_write", "fixed", heap ? "--heap=on" : "--heap=off", "--stress",
                 "libc.alloc.*", "--options", "report.stress=report", (const char *)NULL);
        assert_int_equal(r.status, 1);
        assert_int_equal(count(&r, "stress", "libc.alloc.lost_write_c_39"), 1);
        cleanup(&r);
    }
    run_with(&r, "run_lost_write", "fixed", "--stress", "libc.write.*:nth=2", "--errno",
             "write=short", (const char *)NULL);
    assert_int_equal(r.status, 1); /* a short append is a failed one */
    assert_non_null(strstr(r.err, "lost_write: append failed"));
    cleanup(&r);
    run_with(&r, "run_lost_write", NULL, "--errno", "write=ENOPE", (const char *)NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(
        strstr(r.err, "keel-run: bad value 'write=ENOPE' for '--errno': bad entry 'write=ENOPE'"));
    cleanup(&r);
}

/*
 * An empty entry in --errno's list is refused wherever it stands (like `a,,b`), the option named
 * and its value quoted; the program does not run.
 */
static void test_errno_list_empty_entry(void **state)
{
    (void)state;
    static run_result r;
    static const char *const lists[] = {"write=EIO,", ",write=EIO", "write=EIO,,open=EMFILE", ","};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        run_with(&r, "run_lost_write", NULL, "--errno", lists[i], (const char *)NULL);
        assert_int_equal(r.status, 2);
        char want[128];
        (void)snprintf(want, sizeof(want),
                       "keel-run: bad value '%s' for '--errno': empty entry (two commas, or a "
                       "comma at an end)",
                       lists[i]);
        if (strstr(r.err, want) == NULL)
            fail_msg("'%s' not found in:\n%s", want, r.err);
        assert_int_equal(count(&r, "", ""), 0);
        cleanup(&r);
    }
}

/*
 * pread (a _FORTIFY_SOURCE build: __pread_chk), pwrite, readv, writev, sendmsg and recvmsg each
 * fail at the program's own line; a short readv and recvmsg move half the bytes.
 */
static void test_more_calls_at_call_site(void **state)
{
    (void)state;
    static run_result r;
    static const char *const points[] = {
        "libc.pwrite.calls_c_31", "libc.pread.calls_c_33",   "libc.writev.calls_c_35",
        "libc.readv.calls_c_37",  "libc.sendmsg.calls_c_47", "libc.recvmsg.calls_c_50",
    };
    run_prog(&r, "run_calls", NULL);
    assert_int_equal(r.status, 0);
    cleanup(&r);
    /* every call fails once (the program goes on after each) */
    run_with(&r, "run_calls", NULL, "--stress", "libc.*:max=1", "--options", "report.stress=report",
             (const char *)NULL);
    assert_int_equal(r.status, 1);
    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
        if (count(&r, "stress", points[i]) != 1)
            print_message("%s:\n%s\n%s\n", points[i], r.reports, r.err);
        assert_int_equal(count(&r, "stress", points[i]), 1);
    }
    assert_non_null(strstr(r.err, "calls: pwrite pread writev readv send sendmsg recvmsg failed"));
    cleanup(&r);
    run_with(&r, "run_calls", NULL, "--stress", "libc.recvmsg.*", "--errno", "recvmsg=short",
             (const char *)NULL);
    assert_int_equal(r.status, 1); /* 4 bytes of 8 */
    assert_non_null(strstr(r.err, "calls: recvmsg failed"));
    cleanup(&r);
}

/* A lock held past its class's budget (lock.budget, by the init site's name) is reported while
 * held, with the holder's stack and the site where it was taken; a class within it is not. */
static void test_hold_budget(void **state)
{
    (void)state;
    static run_result r;
    run_with(&r, "run_hold", NULL, "--options", "lock.budget=hold.c:22:100,hold.c:23:100",
             (const char *)NULL);
    assert_int_equal(r.status, 0);
    int n = count(&r, "watchdog", "lock 'hold.c:22' has been held by thread");
    show_on_failure(&r, n, 1);
    assert_int_equal(n, 1);
    assert_int_equal(count(&r, "watchdog", "acquired at hold.c:14"), 1);
    assert_int_equal(count(&r, "watchdog", "\"site\":{\"file\":\"hold.c\",\"line\":14"), 2);
    assert_int_equal(count(&r, "watchdog", "usleep"), 1); /* the holder's stack, where it sleeps */
    assert_int_equal(count(&r, "watchdog", "lock 'hold.c:22' released after"), 1);
    assert_int_equal(count(&r, "", "hold.c:23"), 0);
    cleanup(&r);
}

/* keel-stress sweep --max-nth 1 --allow-exit any --only 'libc.*' OPTS -- keel-run RUN_OPTS --
 * PROGRAM ARG (in tests/run): its exit status, out its output. */
static int sweep_of(const char *opts, const char *run_opts, const char *program, const char *arg,
                    char *out, size_t size)
{
    char file[64], cmd[4 * PATH_MAX];
    (void)snprintf(file, sizeof(file), "/tmp/keel_test_sweep.%d", (int)getpid());
    (void)snprintf(cmd, sizeof(cmd),
                   "env -u KEEL_OPTIONS -u KEEL_REPORT '%s' sweep --max-nth 1 --allow-exit any "
                   "--only 'libc.*' %s --quiet -- '%s' %s -- '%s/%s' %s > '%s' 2>&1",
                   KEEL_STRESS_CLI, opts, KEEL_RUN_CLI, run_opts, KEEL_RUN_PROGS, program, arg,
                   file);
    int st = system(cmd);
    keel_test_read_file(file, out, size);
    (void)unlink(file);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The sweep of run_lost_write [arg]. */
static int sweep(const char *arg, char *out, size_t size)
{
    return sweep_of("--jobs 2 --timeout 60", "", "run_lost_write", arg, out, size);
}

/* A sweep's run that hangs is killed after --timeout and listed with keel-run's hang report. */
static void test_sweep_hang_detail(void **state)
{
    (void)state;
    static char out[65536];
    int rc = sweep_of("--timeout 10", "--deadlock-after 100", "run_cond_hang", "sweep", out,
                      sizeof(out));
    const char *want = "hung       libc.alloc.cond_hang_c_32     1  once     over 10s, process "
                       "group killed: watchdog: hang: every thread of the program (2)";
    if (strstr(out, want) == NULL)
        print_message("sweep:\n%s\n", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, want));
}

/* The sweep of an unmodified program's libc error paths finds the planted bug at its site,
 * nothing in the program that handles every failure, and the leak of a failure path. */
static void test_sweep_unmodified_program(void **state)
{
    (void)state;
    static char out[65536];
    int rc = sweep("", out, sizeof(out));
    if (rc != 1 || strstr(out, "crashed libc.write.lost_write_c_21") == NULL)
        print_message("sweep:\n%s\n", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "crashed libc.write.lost_write_c_21"));
    assert_non_null(strstr(out, "stress=libc.write.lost_write_c_21:nth=1"));
    assert_non_null(strstr(out, "nth=1 once, at lost_write.c:21 append()"));
    assert_null(strstr(out, "lost_write_c_45")); /* the header's write is handled */
    rc = sweep("fixed", out, sizeof(out));
    if (rc != 0)
        print_message("sweep:\n%s\n", out);
    assert_int_equal(rc, 0);
    rc = sweep("leaky", out, sizeof(out)); /* a failed fsync's path leaks: keel-run's leak report */
    if (rc != 1 || strstr(out, "leaked     libc.fsync.lost_write_c_50") == NULL)
        print_message("sweep:\n%s\n", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "leaked     libc.fsync.lost_write_c_50"));
    assert_non_null(strstr(out, "runs: 5, failed: 1"));
}

/* ---- the launcher --------------------------------------------------------------------------- */

static void test_static_binary_refused(void **state)
{
    (void)state;
    static run_result r;
    run_prog(&r, "run_static_prog", NULL);
    assert_int_equal(r.status, 126);
    assert_non_null(strstr(r.err, "keel-run: cannot check '"));
    assert_non_null(strstr(r.err, "it is statically linked"));
    cleanup(&r);
}

static void test_setuid_refused(void **state)
{
    (void)state;
    static run_result r;
    char copy[128], cmd[PATH_MAX + 512];
    (void)snprintf(copy, sizeof(copy), "/tmp/keel_test_run_suid.%d", (int)getpid());
    (void)snprintf(cmd, sizeof(cmd), "cp '%s/run_inversion' '%s' && chmod 4755 '%s'",
                   KEEL_RUN_PROGS, copy, copy);
    assert_int_equal(system(cmd), 0);
    run_prog(&r, copy, NULL);
    (void)unlink(copy);
    assert_int_equal(r.status, 126);
    assert_non_null(strstr(r.err, "it is setuid"));
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
}

static void test_locks_off(void **state)
{
    (void)state;
    static run_result r;
    run_with(&r, "run_inversion", NULL, "--locks=off", (const char *)NULL);
    assert_int_equal(r.status, 0);
    EXPECT_REPORTS(&r, 0);
    cleanup(&r);
}

static void test_cli_errors(void **state)
{
    (void)state;
    static run_result r;
    run_with(&r, "run_inversion", NULL, "--bogus", (const char *)NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "keel-run: unknown option '--bogus'"));
    cleanup(&r);
    run_with(&r, "run_inversion", NULL, "--locks", "maybe", (const char *)NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "bad value 'maybe' for '--locks'"));
    cleanup(&r);
    run_prog(&r, "/nonexistent/program", NULL);
    assert_int_equal(r.status, 127);
    assert_non_null(strstr(r.err, "keel-run: program '/nonexistent/program' not found"));
    cleanup(&r);
    int rc = system(KEEL_RUN_CLI " --help | grep -q -- '--lock-graph FILE'");
    assert_int_equal(rc, 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inversion_never_deadlocked),
        cmocka_unit_test(test_suppressions),
        cmocka_unit_test(test_bad_options_refused),
        cmocka_unit_test(test_program_on_path),
        cmocka_unit_test(test_real_deadlock),
        cmocka_unit_test(test_deadlock_lists_every_thread),
        cmocka_unit_test(test_spinlock_deadlock),
        cmocka_unit_test(test_contended_spinlock_acquired),
        cmocka_unit_test(test_contended_locks_of_every_kind),
        cmocka_unit_test(test_long_wait_not_deadlock),
        cmocka_unit_test(test_hang_main_joins),
        cmocka_unit_test(test_hang_on_a_lock_nobody_gives_back),
        cmocka_unit_test(test_hang_in_read),
        cmocka_unit_test(test_hang_in_poll),
        cmocka_unit_test(test_hang_in_sigwait),
        cmocka_unit_test(test_hang_in_ppoll),
        cmocka_unit_test(test_hang_in_sem_wait),
        cmocka_unit_test(test_hang_in_waitpid),
        cmocka_unit_test(test_timed_wait_not_hang),
        cmocka_unit_test(test_timers_not_hang),
        cmocka_unit_test(test_hang_on_spent_timer),
        cmocka_unit_test(test_hang_every_thread_waits),
        cmocka_unit_test(test_three_lock_cycle),
        cmocka_unit_test(test_rank_violation),
        cmocka_unit_test(test_blocking_under_spinlock),
        cmocka_unit_test(test_more_calls_under_spinlock),
        cmocka_unit_test(test_one_class_against_address_order),
        cmocka_unit_test(test_self_deadlock),
        cmocka_unit_test(test_unlock_by_non_holder),
        cmocka_unit_test(test_destroy_while_held),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_heap_overflow),
        cmocka_unit_test(test_heap_use_after_free),
        cmocka_unit_test(test_heap_double_free),
        cmocka_unit_test(test_heap_leak),
        cmocka_unit_test(test_heap_invalid_free_and_guard_page),
        cmocka_unit_test(test_heap_correct_program),
        cmocka_unit_test(test_static_initializers),
        cmocka_unit_test(test_before_main_and_unseen_locks),
        cmocka_unit_test(test_signal_handlers_and_dlopen),
        cmocka_unit_test(test_signal_storm),
        cmocka_unit_test(test_signal_graph),
        cmocka_unit_test(test_signal_heap_wait),
        cmocka_unit_test(test_sigwait_process_signals),
        cmocka_unit_test(test_signal_heap_reserve),
        cmocka_unit_test(test_signal_heap_deferred),
        cmocka_unit_test(test_early_free_not_a_root),
        cmocka_unit_test(test_fork),
        cmocka_unit_test(test_correct_program_no_reports),
        cmocka_unit_test(test_heap_locks_churn),
        cmocka_unit_test(test_read_read_cycle_not_reported),
        cmocka_unit_test(test_glibc_state_no_false_reports),
        cmocka_unit_test(test_wait_calls_fail_with_eintr),
        cmocka_unit_test(test_fault_at_call_site),
        cmocka_unit_test(test_errno_list_empty_entry),
        cmocka_unit_test(test_sweep_unmodified_program),
        cmocka_unit_test(test_sweep_hang_detail),
        cmocka_unit_test(test_more_calls_at_call_site),
        cmocka_unit_test(test_hold_budget),
        cmocka_unit_test(test_static_binary_refused),
        cmocka_unit_test(test_setuid_refused),
        cmocka_unit_test(test_locks_off),
        cmocka_unit_test(test_cli_errors),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
