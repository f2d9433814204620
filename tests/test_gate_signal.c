/*
 * test_gate_signal.c - `keel-gate run` (the daemon) and its signals, in a
 * child process on a real repository with a slow job: SIGTERM stops it
 * gracefully (exit 0, the job's process group killed, the change back in
 * the queue, never rejected, and a restart lands it); a second signal exits
 * at once (128 + signal, the group killed too, the store as after a kill -9,
 * which the next run recovers).
 */
#define _GNU_SOURCE 1
#include <errno.h>
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

#include "gate_fixture.h"

/*
 * The job: passes at once when $MARKER.fast exists; otherwise starts a long
 * sleep in its process group, says which (pid in $MARKER.sleep) and waits.
 * `stubborn`: the job ignores SIGTERM, so a graceful stop has to wait for
 * the executor's SIGKILL after its grace period.
 */
static void branch_with_slow_job(const char *branch, bool stubborn)
{
    char script[512];
    (void)snprintf(script, sizeof(script),
                   "if [ -e \"$MARKER.fast\" ]; then exit 0; fi\n"
                   "%s"
                   "sleep 60 &\n"
                   "echo $! > \"$MARKER.tmp\" && mv \"$MARKER.tmp\" \"$MARKER.sleep\"\n"
                   "wait\n",
                   stubborn ? "trap '' TERM\n" : "");
    fx_branch(branch, "ci.sh", script);
}

static long long now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static char log_path[160];

/* `keel-gate run` in a child process; its output goes to log_path. */
static pid_t start_daemon(void)
{
    (void)snprintf(log_path, sizeof(log_path), "%s/daemon.log", fx_dir);
    (void)fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *log = fopen(log_path, "w");
        if (log == NULL)
            _exit(101);
        char *argv[] = {(char *)"keel-gate",
                        (char *)"--repo",
                        fx_repo,
                        (char *)"--state",
                        fx_state,
                        (char *)"run",
                        NULL};
        int rc = gate_cli_main(6, argv, log, log);
        (void)fclose(log);
        _exit(rc);
    }
    return pid;
}

static void read_log(char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(log_path, "r");
    if (f == NULL)
        return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    (void)fclose(f);
}

/* The pid the job wrote to $MARKER.sleep (its sandbox's), once it has; fails if the daemon ends first. */
static pid_t wait_for_job(pid_t daemon)
{
    char path[160];
    fx_marker(path, sizeof(path), ".sleep");
    for (long long until = now_ms() + 60000; now_ms() < until; sleep_ms(20)) {
        int status = 0;
        if (waitpid(daemon, &status, WNOHANG) == daemon) {
            char log[8192];
            read_log(log, sizeof(log));
            fail_msg("the daemon ended (status %d) before its job started: %s", status, log);
        }
        FILE *f = fopen(path, "r");
        long pid = 0;
        if (f != NULL) {
            int got = fscanf(f, "%ld", &pid);
            (void)fclose(f);
            if (got == 1 && pid > 0)
                return (pid_t)pid;
        }
    }
    fail_msg("the job did not start in 60 s");
    return -1;
}

/* The daemon's wait status; fails after timeout_ms. */
static int wait_exit(pid_t pid, long long timeout_ms)
{
    for (long long until = now_ms() + timeout_ms; now_ms() < until; sleep_ms(10)) {
        int status = 0;
        pid_t w = waitpid(pid, &status, WNOHANG);
        assert_true(w >= 0);
        if (w == pid)
            return status;
    }
    (void)kill(pid, SIGKILL);
    (void)waitpid(pid, NULL, 0);
    fail_msg("the daemon did not exit within %lld ms", timeout_ms);
    return -1;
}

/*
 * Is a process of the job still alive (its sandbox's pids mean nothing here:
 * its processes are found by their MARKER)?  Waits up to 5 s for them to go.
 */
static bool still_alive(pid_t pid)
{
    (void)pid;
    for (long long until = now_ms() + 5000; now_ms() < until; sleep_ms(20))
        if (fx_job_processes() == 0)
            return false;
    return true;
}

static void make_fast(void)
{
    char path[160];
    fx_marker(path, sizeof(path), ".fast");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    (void)fclose(f);
}

/* After the stop: the next run lands the change, once, and rejects nothing. */
static void restart_lands(long long id)
{
    make_fast();
    gate *g = fx_open();
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(st.landed, 1);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(fx_times_landed("slow"), 1);
    fx_assert_tip_tested();
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = 'rejected'", NULL), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM candidates WHERE state = 'failed'", NULL), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'running'", NULL), 0);
}

/* A repository, change `slow` queued, the daemon running its slow job: the daemon's pid. */
static pid_t daemon_with_slow_job(bool stubborn, long long *id, pid_t *job)
{
    fx_setup_repo("strategy = serial", "");
    branch_with_slow_job("slow", stubborn);
    gate *g = fx_open();
    *id = fx_submit(g, "slow", 0);
    gate_close(g);
    pid_t daemon = start_daemon();
    *job = wait_for_job(daemon);
    return daemon;
}

static int teardown(void **state)
{
    (void)state;
    fx_teardown_repo();
    return 0;
}

static void test_sigterm_stops_gracefully(void **state)
{
    (void)state;
    long long id = 0;
    pid_t job = 0;
    pid_t daemon = daemon_with_slow_job(false, &id, &job);
    assert_int_equal(kill(daemon, SIGTERM), 0);
    int status = wait_exit(daemon, 30000);
    char log[8192];
    read_log(log, sizeof(log));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("SIGTERM: status %d, not a clean exit: %s", status, log);
    assert_false(still_alive(job)); /* the job's process group was killed */
    if (strstr(log, "keel-gate: SIGTERM: stopping") == NULL ||
        strstr(log, "stopped: 1 change(s) back in the queue") == NULL)
        fail_msg("the log does not say it stopped: %s", log);
    /* the killed job blames nothing: recorded as cancelled, the change queued again */
    gate *g = fx_open();
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_QUEUED);
    gate_close(g);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'cancelled'", NULL), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM candidates WHERE state = 'open'", NULL), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'stopped'", NULL), 1);
    restart_lands(id);
}

static void test_second_signal_exits_at_once(void **state)
{
    (void)state;
    long long id = 0;
    pid_t job = 0;
    pid_t daemon = daemon_with_slow_job(true, &id, &job);
    assert_int_equal(kill(daemon, SIGTERM), 0);
    sleep_ms(300); /* the job ignores SIGTERM: the graceful stop waits for the grace period */
    assert_int_equal(kill(daemon, SIGINT), 0);
    int status = wait_exit(daemon, 30000);
    char log[8192];
    read_log(log, sizeof(log));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 128 + SIGINT)
        fail_msg("second signal: status %d, not an exit at once: %s", status, log);
    assert_non_null(strstr(log, "SIGINT again: exiting at once; 1 job process group(s) killed"));
    assert_false(still_alive(job));
    /* as after a kill -9: the job still says running, the change testing; nothing rejected */
    gate *g = fx_open();
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_TESTING);
    gate_close(g);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'running'", NULL), 1);
    restart_lands(id);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'lost'", NULL), 1);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sigterm_stops_gracefully, teardown),
        cmocka_unit_test_teardown(test_second_signal_exits_at_once, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
