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

/* After the stop: the next run lands the change, once, and rejects nothing. */
static void restart_lands(long long id)
{
    fx_make_fast();
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
    fx_slow_branch("slow", stubborn);
    gate *g = fx_open();
    *id = fx_submit(g, "slow", 0);
    gate_close(g);
    pid_t daemon = fx_start_daemon();
    *job = fx_wait_for_job(daemon);
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
    int status = fx_wait_exit(daemon, 30000);
    char log[8192];
    fx_read_log(log, sizeof(log));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("SIGTERM: status %d, not a clean exit: %s", status, log);
    assert_false(fx_still_alive(job)); /* the job's process group was killed */
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

/* SIGHUP (the terminal or ssh session went away) stops run as SIGTERM does (seen dying on the old code). */
static void test_sighup_stops_gracefully(void **state)
{
    (void)state;
    long long id = 0;
    pid_t job = 0;
    pid_t daemon = daemon_with_slow_job(false, &id, &job);
    assert_int_equal(kill(daemon, SIGHUP), 0);
    int status = fx_wait_exit(daemon, 30000);
    char log[8192];
    fx_read_log(log, sizeof(log));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("SIGHUP: status %d, not a clean exit: %s", status, log);
    assert_false(fx_still_alive(job));
    if (strstr(log, "keel-gate: SIGHUP: stopping") == NULL)
        fail_msg("the log does not say it stopped: %s", log);
    gate *g = fx_open();
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_QUEUED);
    gate_close(g);
    restart_lands(id);
}

/*
 * run's output is a pipe nobody reads any more (`keel-gate run | head -1`):
 * its writes fail, run goes on and lands the change (the old code died of
 * SIGPIPE at its next line, its job left running).
 */
static void test_closed_output_pipe(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    gate *g = fx_open();
    long long a = fx_submit(g, "a", 0), b = fx_submit(g, "b", 0);
    gate_close(g);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    (void)fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)close(fds[0]); /* nobody reads: the first write is EPIPE (or SIGPIPE) */
        FILE *out = fdopen(fds[1], "w");
        if (out == NULL)
            _exit(101);
        (void)setvbuf(out, NULL, _IONBF, 0);
        char *argv[] = {(char *)"keel-gate", (char *)"--repo", fx_repo, (char *)"--state", fx_state,
                        (char *)"run",       (char *)"--once", NULL};
        _exit(gate_cli_main(7, argv, out, out));
    }
    (void)close(fds[0]);
    (void)close(fds[1]);
    int status = fx_wait_exit(pid, 60000);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("run with a closed output pipe: status %d (signal %d)", status,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    g = fx_open();
    assert_int_equal(fx_state_of(g, a), GATE_CHANGE_LANDED);
    assert_int_equal(fx_state_of(g, b), GATE_CHANGE_LANDED);
    gate_close(g);
    fx_assert_tip_tested();
}

/*
 * One gatekeeper per queue: while a daemon runs the queue, a second run on
 * the same repository and target refuses at once, naming the holder (pid,
 * host, since); kill -9 of the first leaves no lock to clean by hand: the
 * next run takes it and lands the change once.  The old code ran both.
 */
static void test_second_gatekeeper_refused(void **state)
{
    (void)state;
    long long id = 0;
    pid_t job = 0;
    pid_t daemon = daemon_with_slow_job(false, &id, &job);
    gate *g = fx_open();
    gate_run_stats st;
    long long t0 = fx_now_ms();
    keel_status s = gate_run(g, true, &st);
    assert_true(fx_now_ms() - t0 < 5000); /* at once, not after waiting */
    assert_true(KEEL_IS(s, KEEL_E_BUSY) || KEEL_HAS(s, KEEL_E_BUSY));
    char msg[2048], want[64];
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    (void)snprintf(want, sizeof(want), "pid %d on host '", (int)daemon);
    if (strstr(msg, want) == NULL || strstr(msg, "since 20") == NULL ||
        strstr(msg, "another keel-gate is running this queue") == NULL)
        fail_msg("the refusal should name the holder (%s): %s", want, msg);
    assert_int_equal(st.builds, 0);
    /* the second one touched nothing: the job still runs, the change is testing */
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_TESTING);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'running'", NULL), 1);
    gate_close(g);
    assert_true(fx_still_running());
    /* kill -9: the lock dies with its holder */
    assert_int_equal(kill(daemon, SIGKILL), 0);
    (void)fx_wait_exit(daemon, 10000);
    assert_false(fx_still_alive(job)); /* its job died with it (bubblewrap's die-with-parent) */
    restart_lands(id);
}

static void test_second_signal_exits_at_once(void **state)
{
    (void)state;
    long long id = 0;
    pid_t job = 0;
    pid_t daemon = daemon_with_slow_job(true, &id, &job);
    assert_int_equal(kill(daemon, SIGTERM), 0);
    fx_sleep_ms(300); /* the job ignores SIGTERM: the graceful stop waits for the grace period */
    assert_int_equal(kill(daemon, SIGINT), 0);
    int status = fx_wait_exit(daemon, 30000);
    char log[8192];
    fx_read_log(log, sizeof(log));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 128 + SIGINT)
        fail_msg("second signal: status %d, not an exit at once: %s", status, log);
    assert_non_null(strstr(log, "SIGINT again: exiting at once; 1 job process group(s) killed"));
    assert_false(fx_still_alive(job));
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
        cmocka_unit_test_teardown(test_sighup_stops_gracefully, teardown),
        cmocka_unit_test_teardown(test_closed_output_pipe, teardown),
        cmocka_unit_test_teardown(test_second_gatekeeper_refused, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
