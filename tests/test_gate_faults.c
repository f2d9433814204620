/*
 * test_gate_faults.c - the gate's own failures are never a change's: a full
 * disk under the work trees or under the store, no memory on a gate module
 * heap, a work tree a job damaged.  Nothing is decided on such a failure:
 * the gate pauses and tries again (the change lands once the fault is
 * gone), or, when it persists, run stops with an error that says it was the
 * gate; the change is never rejected.  Real faults where a test can make
 * them (a small tmpfs in a mount namespace of its own), the gate's stress
 * points and module heaps for the rest.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <time.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate_fixture.h"

static int teardown(void **state)
{
    (void)state;
    fx_teardown_repo();
    return 0;
}

/* The change's state and reason; the reason never blames it. */
static void assert_not_blamed(long long id, gate_change_state want)
{
    gate *g = fx_open();
    gate_change c;
    fx_ok(gate_store_get(gate_get_store(g), id, &c));
    gate_close(g);
    if (c.state != want)
        fail_msg("change %lld is %s (%s), not %s", id, gate_change_state_name(c.state), c.reason,
                 gate_change_state_name(want));
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = 'rejected'", NULL), 0);
}

/* After the fault: a plain run lands the change once. */
static void then_lands(long long id, const char *branch)
{
    gate *g = fx_open();
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    gate_close(g);
    assert_int_equal(st.rejected, 0);
    assert_not_blamed(id, GATE_CHANGE_LANDED);
    assert_int_equal(fx_times_landed(branch), 1);
    fx_assert_tip_tested();
}

static char small_dir[160];
static char child_error[4096];

/*
 * In a mount namespace of its own, a 256 KiB tmpfs at small_dir (a full disk
 * waiting to happen); false when this process may not (not root).
 */
static bool small_disk(void)
{
    (void)snprintf(small_dir, sizeof(small_dir), "%s/small", fx_dir);
    if (mkdir(small_dir, 0755) != 0 && errno != EEXIST)
        return false;
    return unshare(CLONE_NEWNS) == 0 && mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
           mount("tmpfs", small_dir, "tmpfs", 0, "size=256k") == 0;
}

/* A branch whose tree does not fit in 256 KiB. */
static void big_branch(const char *name)
{
    size_t n = 512UL * 1024;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + (char)(i * 7919 % 26));
    big[n] = '\0';
    fx_branch(name, "big.txt", big);
    free(big);
}

/* The run in the child: its error message to child_error's file, exit 0 ok / 1 error / 2 setup. */
static int child_run(gate_options *o)
{
    gate *g = NULL;
    keel_status s = gate_open(o, &g);
    gate_run_stats st;
    if (keel_ok(s))
        s = gate_run(g, true, &st);
    gate_close(g);
    if (keel_ok(s))
        return 0;
    char path[200];
    (void)snprintf(path, sizeof(path), "%s/child-error", fx_dir);
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        keel_status_print(f, s);
        (void)fclose(f);
    }
    keel_status_free(s);
    return 1;
}

static void read_child_error(void)
{
    char path[200];
    (void)snprintf(path, sizeof(path), "%s/child-error", fx_dir);
    child_error[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    size_t n = fread(child_error, 1, sizeof(child_error) - 1, f);
    child_error[n] = '\0';
    (void)fclose(f);
}

/* The child's gate: the test's repository, `state` and work trees under `work`. */
static void child_gate(const char *state, const char *work)
{
    gate_options o;
    gate_options_default(&o);
    o.repo = fx_repo;
    o.state = state;
    o.work = work;
    o.out = NULL;
    o.poll_ms = 50;
    o.pause_ms = 20;
    _exit(child_run(&o));
}

/*
 * `fn` in a child (a mount namespace of its own): it must stop with an error
 * holding `want` and saying it was the gate; skipped where it cannot mount.
 */
static void child_stops_on_gate(void (*fn)(void), const char *want)
{
    char out[4096];
    int status = keel_test_run_child(fn, out, sizeof(out));
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2)
        skip(); /* no mount namespace here (not root) */
    read_child_error();
    if (getenv("GATE_TEST_VERBOSE") != NULL)
        (void)fputs(child_error, stderr);
    if (WEXITSTATUS(status) != 1 || strstr(child_error, want) == NULL)
        fail_msg("status %d, expected '%s': %s", WEXITSTATUS(status), want, child_error);
}

static void child_work_trees_on_small_disk(void)
{
    if (!small_disk())
        _exit(2);
    child_gate(fx_state, small_dir);
}

/*
 * The disk under the work trees is full: the checkout fails, which says
 * nothing of the change.  run tries again after pauses, then stops with an
 * error saying it was the gate; the change is queued, not rejected (the old
 * code rejected it: "configuration 'unit' failed (exit 0)").
 */
static void test_full_disk_under_work_trees(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    big_branch("big");
    gate *g = fx_open();
    long long id = fx_submit(g, "big", 0);
    gate_close(g);
    child_stops_on_gate(child_work_trees_on_small_disk, "No space left on device");
    if (strstr(child_error, "the gate's own failure, 6 times in a row") == NULL)
        fail_msg("the error should say it was the gate: %s", child_error);
    assert_not_blamed(id, GATE_CHANGE_QUEUED);
    assert_true(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'gate-error'", NULL) >= 5);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'failed'", NULL), 0);
    then_lands(id, "big");
}

static void child_store_on_full_disk(void)
{
    if (!small_disk())
        _exit(2);
    /* the store moves to the small disk, which then fills up */
    char store[200], cmd[1024];
    (void)snprintf(store, sizeof(store), "%s/state.db", small_dir);
    (void)snprintf(cmd, sizeof(cmd),
                   "cp '%s' '%s' && (cat /dev/zero > '%s/filler' 2>/dev/null; true)", fx_state,
                   store, small_dir);
    if (system(cmd) != 0)
        _exit(3);
    child_gate(store, fx_dir);
}

/*
 * The disk under the store is full (it cannot even make its WAL index):
 * run stops with an error naming the store and the OS's reason, and nothing
 * is decided; with room again, the change lands.
 */
static void test_full_disk_under_store(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    long long id = fx_submit(g, "a", 0);
    gate_close(g);
    child_stops_on_gate(child_store_on_full_disk, "No space left on device");
    assert_int_equal(fx_times_landed("a"), 0);
    then_lands(id, "a");
}

/*
 * A job replaces its work tree with a symbolic link (to a directory of the
 * test's): the next job's tree is made again, nothing written through the
 * link, and the next change lands (the old code failed the next change's
 * job: "work tree ... is not a directory").
 */
static void test_tree_replaced_by_a_link(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial\nslots = 1\nsandbox = none", "");
    char elsewhere[160], script[512];
    (void)snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", fx_dir);
    assert_int_equal(mkdir(elsewhere, 0755), 0);
    (void)snprintf(script, sizeof(script),
                   "d=$(pwd); cd /; rm -rf \"$d\"; ln -s '%s' \"$d\"; exit 0\n", elsewhere);
    fx_branch("vandal", "ci.sh", script);
    fx_branch("good", "good.txt", "good\n");
    gate *g = fx_open();
    long long vandal = fx_submit(g, "vandal", 0), good = fx_submit(g, "good", 0);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, vandal), GATE_CHANGE_LANDED); /* its test passed */
    assert_int_equal(fx_state_of(g, good), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(fx_times_landed("good"), 1);
    char through[200];
    (void)snprintf(through, sizeof(through), "%s/good.txt", elsewhere);
    struct stat sb;
    assert_int_equal(stat(through, &sb), -1); /* nothing was checked out through the link */
}

/* A git lock file beside main in the guarded repository, `age_s` seconds old. */
static void lock_main(const char *repo, long age_s)
{
    char lock[256];
    (void)snprintf(lock, sizeof(lock), "%s/refs/heads/main.lock", repo);
    FILE *f = fopen(lock, "w");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);
    struct timespec t[2];
    (void)clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= age_s;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, lock, t, 0), 0);
}

static bool main_locked(void)
{
    char lock[256];
    (void)snprintf(lock, sizeof(lock), "%s/refs/heads/main.lock", fx_repo);
    struct stat sb;
    return stat(lock, &sb) == 0;
}

/*
 * A gate killed in its own update of main leaves git's lock file beside it
 * (locally, and in a file:// remote, which its own process writes): an old
 * one is removed and the change lands; a young one is someone's update at
 * work: left alone, the gate waits, and stops naming it, blaming nobody.
 */
static void stale_lock(bool url)
{
    fx_setup_repo("strategy = serial", "");
    if (url)
        fx_where = fx_url;
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    long long id = fx_submit(g, "a", 0);
    gate_close(g);
    lock_main(fx_repo, -3600); /* young for as long as the test runs: a writer at work */
    g = fx_open();
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    char msg[4096];
    assert_false(keel_ok(s));
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    gate_close(g);
    if (strstr(msg, "main.lock") == NULL)
        fail_msg("the error should name the lock: %s", msg);
    assert_true(main_locked());
    assert_not_blamed(id, GATE_CHANGE_QUEUED);
    lock_main(fx_repo, 3600);
    then_lands(id, "a");
    assert_false(main_locked());
}

static void test_stale_lock_of_main(void **state)
{
    (void)state;
    stale_lock(false);
}

static void test_stale_lock_of_main_url(void **state)
{
    (void)state;
    stale_lock(true);
}

#if KEEL_DEVEL
/* One injected failure to write a work tree: tried again after a pause, the change lands. */
static void test_tree_fault_tried_again(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    long long id = fx_submit(g, "a", 0);
    fx_ok(keel_stress_enable("gate_git.tree_full:nth=1"));
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    keel_stress_clear();
    fx_ok(s);
    gate_close(g);
    assert_not_blamed(id, GATE_CHANGE_LANDED);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'gate-error'", NULL), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'gate-error'", NULL), 1);
    fx_assert_tip_tested();
}

/* Transactions failing as on a full disk for a while: run goes on from the store, lands. */
static void test_store_fault_tried_again(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    gate *g = fx_open();
    long long a = fx_submit(g, "a", 0), b = fx_submit(g, "b", 0);
    fx_ok(keel_stress_enable("gate_store.disk_full:after=3:max=2"));
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    keel_stress_clear();
    fx_ok(s);
    gate_close(g);
    assert_not_blamed(a, GATE_CHANGE_LANDED);
    assert_not_blamed(b, GATE_CHANGE_LANDED);
    assert_true(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'gate-error'", NULL) >= 1);
    assert_int_equal(fx_times_landed("a"), 1);
    assert_int_equal(fx_times_landed("b"), 1);
    fx_assert_tip_tested();
}

/*
 * Each way the gate can fail to start a job, injected once (no file
 * descriptors for its pipe, a full disk for its log, fork refused, its
 * cgroup refused, its sandbox that cannot be set up): the job runs again
 * after a pause and the change lands; nothing is rejected.
 */
static void test_start_faults_tried_again(void **state)
{
    (void)state;
    static const char *const points[] = {"gate_exec.pipe_fail", "gate_exec.log_fail",
                                         "gate_exec.spawn_fail", "gate_exec.cgroup_fail",
                                         "gate_exec.sandbox_fail"};
    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
        fx_setup_repo("strategy = serial", "");
        fx_branch("a", "a.txt", "a\n");
        gate *g = fx_open();
        long long id = fx_submit(g, "a", 0);
        char spec[96];
        (void)snprintf(spec, sizeof(spec), "%s:nth=1", points[i]);
        fx_ok(keel_stress_enable(spec));
        gate_run_stats st;
        keel_status s = gate_run(g, true, &st);
        unsigned long long fired = 0;
        keel_stress_stats stats;
        keel_status gs = keel_stress_get(points[i], &stats);
        if (keel_ok(gs))
            fired = stats.fires;
        else
            keel_status_free(gs);
        keel_stress_clear();
        fx_ok(s);
        gate_close(g);
        if (fired != 1)
            fail_msg("%s fired %llu times", points[i], fired);
        assert_not_blamed(id, GATE_CHANGE_LANDED);
        if (fx_sql_int("SELECT count(*) FROM events WHERE kind = 'gate-error'", NULL) != 1)
            fail_msg("%s: no gate-error event", points[i]);
        assert_int_equal(fx_times_landed("a"), 1);
        fx_teardown_repo();
    }
    fx_setup_repo("", ""); /* for the teardown */
}

/* What the store keeps of what the scheduler learned of main; *found false when nothing. */
static gate_learned learned_row(bool *found)
{
    gate *g = fx_open();
    gate_learned l;
    fx_ok(gate_store_learned_get(gate_get_store(g), "main", &l, found));
    gate_close(g);
    return l;
}

static void assert_same_learned(const char *what, const gate_learned *got, const gate_learned *want)
{
    if (!(fabs(got->p - want->p) < 1e-9 && fabs(got->n - want->n) < 1e-9 &&
          fabs(got->flake - want->flake) < 1e-9 && fabs(got->flake_n - want->flake_n) < 1e-9))
        fail_msg("%s: the store keeps p %.6f over %.4f changes, flake %.6f over %.4f builds, not "
                 "%.6f over %.4f, %.6f over %.4f",
                 what, got->p, got->n, got->flake, got->flake_n, want->p, want->n, want->flake,
                 want->flake_n);
}

/* a, bad and b queued (serial: decided one per round); their ids. */
static void queue_of_three(long long ids[3])
{
    fx_setup_repo("strategy = serial\nretries = 0", "");
    gate *g = fx_open();
    fx_queue_with_bad(g, ids);
    gate_close(g);
}

/* a and b landed once each, bad rejected, nothing in flight. */
static void assert_three_decided(const char *what, const long long ids[3])
{
    gate *g = fx_open();
    for (size_t i = 0; i < 3; i++)
        if (fx_state_of(g, ids[i]) != (i == 1 ? GATE_CHANGE_REJECTED : GATE_CHANGE_LANDED))
            fail_msg("%s: change %lld ended %s", what, ids[i],
                     gate_change_state_name(fx_state_of(g, ids[i])));
    gate_close(g);
    assert_int_equal(fx_times_landed("a"), 1);
    assert_int_equal(fx_times_landed("b"), 1);
    assert_int_equal(fx_times_landed("bad"), 0);
    fx_assert_tip_tested();
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'running'", NULL), 0);
}

/*
 * The record of a landing fails after the swap, for good
 * (gate_store.land_refused:nth=1: not a full disk or another fault worth a
 * pause and a new try, which restart from the target as it is): the target
 * holds the candidate, the store does not say so.  The run ends on that
 * error, and what it puts back in the queue is judged
 * against the target as it is now: the landed change is recorded landed,
 * not queued to land a second time (it did, on an injected allocation
 * failure at that write, in gate_heap's sweep: the stale tip of before the
 * swap said the candidate had not landed).
 */
static void test_landing_unrecorded(void **state)
{
    (void)state;
    long long ids[3];
    queue_of_three(ids);
    fx_ok(keel_stress_enable("gate_store.land_refused:nth=1"));
    gate *g = fx_open();
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    keel_stress_clear();
    assert_true(KEEL_IS(s, KEEL_E_INJECTED));
    keel_status_free(s);
    gate_close(g);
    g = fx_open();
    fx_ok(gate_run(g, true, &st));
    gate_close(g);
    assert_three_decided("gate_store.land_refused:nth=1", ids);
}

/* What a fault-free run of the three keeps of what it learned. */
static gate_learned learned_without_faults(void)
{
    long long ids[3];
    queue_of_three(ids);
    (void)fx_run_once();
    assert_three_decided("without faults", ids);
    bool found = false;
    gate_learned l = learned_row(&found);
    assert_true(found && l.n > 2.0 && l.p > 0.0);
    fx_teardown_repo();
    return l;
}

/* The fires of gate_store.learned_full so far (its counts are the process's). */
static unsigned long long learned_full_fires(void)
{
    keel_stress_stats stats;
    fx_ok(keel_stress_get("gate_store.learned_full", &stats));
    return stats.fires;
}

/*
 * `trial` at its point's evaluations 1, 2, ... on the three, until the
 * point no longer fires (`want`: what a run without faults keeps); it must
 * have fired at 3 evaluations at least (three rounds decide something).
 */
static void sweep_three(bool (*trial)(unsigned nth, const long long ids[3],
                                      const gate_learned *want))
{
    fx_skip_sweep_under_tsan();
    gate_learned want = learned_without_faults();
    unsigned fired = 0;
    for (;;) {
        long long ids[3];
        queue_of_three(ids);
        bool again = trial(fired + 1, ids, &want);
        fx_teardown_repo();
        if (!again)
            break;
        fired++;
    }
    if (fired < 3)
        fail_msg("the point fired at %u evaluations: three rounds decide something", fired);
    fx_setup_repo("", ""); /* for the teardown */
}

/* gate_store.learned_full at its nth evaluation: false when it did not fire. */
static bool learned_write_fails(unsigned nth, const long long ids[3], const gate_learned *want)
{
    char spec[64];
    (void)snprintf(spec, sizeof(spec), "gate_store.learned_full:nth=%u", nth);
    unsigned long long fired = learned_full_fires();
    fx_ok(keel_stress_enable(spec));
    gate *g = fx_open();
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    gate_close(g);
    fired = learned_full_fires() - fired;
    keel_stress_clear();
    fx_ok(s);
    assert_three_decided(spec, ids);
    long long errors = fx_sql_int("SELECT count(*) FROM events WHERE kind = 'gate-error'", NULL);
    if (errors != (long long)fired)
        fail_msg("%s: %lld gate-error events for %llu failed writes", spec, errors, fired);
    bool found = false;
    gate_learned got = learned_row(&found);
    assert_true(found);
    assert_same_learned(spec, &got, want);
    return fired > 0;
}

/*
 * The store's write of what the scheduler learned (gate_loop.c's
 * keep_learned, once per round that decided anything) fails once, for each
 * of the run's writes in turn (gate_store.learned_full:nth=K): the turn's
 * failure is the gate's (a gate-error event, a pause, the queue again from
 * the store), the decisions stand, and the row the store keeps at the end is
 * the one a run without the fault keeps.  The old gate took a failed write
 * for a kept one when it started again: when the last round's write failed,
 * the store kept the round before's (n 1.98 for 2.94).
 */
static void test_learned_write_fails_tried_again(void **state)
{
    (void)state;
    sweep_three(learned_write_fails);
}

/* The rates learned over `decided` outcomes one at a time weigh this much (decay 0.98). */
static double weight_of(long long decided)
{
    double n = 0.0;
    for (long long i = 0; i < decided; i++)
        n = n * 0.98 + 1.0;
    return n;
}

/* kill -9 at gate.crash_after_learned's nth evaluation, then run --once: false when it did not fire. */
static bool crash_after_learned(unsigned nth, const long long ids[3], const gate_learned *want)
{
    char spec[64];
    (void)snprintf(spec, sizeof(spec), "gate.crash_after_learned:nth=%u", nth);
    fx_crash_spec = spec;
    char err[4096];
    int status = keel_test_run_child(fx_crashing_run, err, sizeof(err));
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 4) /* went through: past the run's last write */
        return false;
    if (WEXITSTATUS(status) != 99)
        fail_msg("%s: status %d: %s", spec, WEXITSTATUS(status), err);
    fx_assert_tip_tested_as(false);
    bool found = false;
    gate_learned got = learned_row(&found);
    long long decided =
        fx_sql_int("SELECT count(*) FROM changes WHERE state IN ('landed', 'rejected')", NULL);
    if (!found || decided < 1 || fabs(got.n - weight_of(decided)) > 1e-9 ||
        !(got.p >= 0.0 && got.p <= 1.0) || !(got.flake >= 0.0 && got.flake <= 1.0) ||
        !(got.flake_n >= 0.0))
        fail_msg("%s: %lld changes decided, the store keeps %s p %.6f over %.4f changes, "
                 "flake %.6f over %.4f builds",
                 spec, decided, found ? "" : "no row:", got.p, got.n, got.flake, got.flake_n);
    (void)fx_run_once();
    assert_three_decided(spec, ids);
    got = learned_row(&found);
    assert_true(found);
    assert_same_learned(spec, &got, want);
    return true;
}

/*
 * kill -9 right after each write of what the scheduler learned
 * (gate.crash_after_learned at its Kth evaluation): the store keeps the row
 * of the rounds decided, whole (its weight is that of the changes the store
 * has decided, its rates in range), and a clean run --once from there
 * decides the rest and keeps the row a run without the kill keeps.  The old
 * gate had no crash point there (the sweep's first run went through: no
 * point covered).
 */
static void test_crash_after_learned(void **state)
{
    (void)state;
    sweep_three(crash_after_learned);
}

/*
 * Change 'c' submitted after a run of three, then `run --once` with the read
 * at start `point` (a gate_store stress point) failing once: run must stop
 * with the store's error naming `what`, the change still queued.
 */
static void read_fails_at_start(const char *point, const char *what)
{
    fx_branch("c", "c.txt", "c\n");
    gate *g = fx_open();
    long long c = fx_submit(g, "c", 0);
    char spec[128];
    (void)snprintf(spec, sizeof(spec), "%s:nth=1", point);
    keel_stress_stats before, after;
    fx_ok(keel_stress_get(point, &before));
    fx_ok(keel_stress_enable(spec));
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    fx_ok(keel_stress_get(point, &after));
    keel_stress_clear();
    assert_int_equal(after.fires - before.fires, 1);
    assert_false(keel_ok(s));
    char msg[4096];
    (void)keel_status_format(s, msg, sizeof(msg));
    bool io = keel_status_has(s, &keel_codespace_keel, KEEL_E_IO);
    keel_status_free(s);
    if (!io || strstr(msg, what) == NULL)
        fail_msg("the error should be the store's: %s", msg);
    assert_int_equal(fx_state_of(g, c), GATE_CHANGE_QUEUED);
    gate_close(g);
}

/*
 * The store cannot read what the scheduler learned when run starts
 * (gate_store.learned_unreadable, the read at start only): run stops with
 * the store's error before deciding anything, the row stays as it was, and
 * the next run starts from it (one more change decided on top of its
 * weight).  The old gate had no point at that read (it fired at 0
 * evaluations).
 */
static void test_learned_read_fails_at_start(void **state)
{
    (void)state;
    long long ids[3];
    queue_of_three(ids);
    (void)fx_run_once();
    bool found = false;
    gate_learned was = learned_row(&found);
    assert_true(found);
    read_fails_at_start("gate_store.learned_unreadable",
                        "cannot read what the scheduler learned of 'main'");
    gate_learned now = learned_row(&found);
    assert_same_learned("after the failed read", &now, &was);
    gate_run_stats again = fx_run_once();
    assert_int_equal(again.landed, 1);
    now = learned_row(&found);
    if (fabs(now.n - (was.n * 0.98 + 1.0)) > 1e-9)
        fail_msg("the next run did not start from the row: n %.4f after %.4f", now.n, was.n);
}

/*
 * The store cannot read the job timings when run starts
 * (gate_store.timings_unreadable): run stops with the store's error before
 * deciding anything, and the next run starts from every timing of the runs
 * before (none lost).
 */
static void test_timings_read_fails_at_start(void **state)
{
    (void)state;
    long long ids[3];
    queue_of_three(ids);
    gate_run_stats first = fx_run_once();
    assert_true(first.timed >= 3);
    read_fails_at_start("gate_store.timings_unreadable", "cannot read the job timings of 'main'");
    gate_run_stats again = fx_run_once();
    assert_int_equal(again.landed, 1);
    assert_int_equal(again.timed_start, first.timed);
}

/*
 * Change 'a' submitted, then `run --once` under the stress point `spec` for
 * good: run must fail (its error into msg), having rejected nothing and left
 * the change queued.  The change's id.
 */
static long long run_under_persisting_fault(const char *spec, char *msg, size_t size)
{
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    long long id = fx_submit(g, "a", 0);
    fx_ok(keel_stress_enable(spec));
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    keel_stress_clear();
    assert_false(keel_ok(s));
    (void)keel_status_format(s, msg, size);
    keel_status_free(s);
    gate_close(g);
    assert_int_equal(st.rejected, 0);
    assert_not_blamed(id, GATE_CHANGE_QUEUED);
    return id;
}

/* No file descriptors for any job's pipe, for good: run stops saying it was the gate. */
static void test_start_fault_persisting_stops(void **state)
{
    (void)state;
    char msg[4096];
    long long id = run_under_persisting_fault("gate_exec.pipe_fail", msg, sizeof(msg));
    if (strstr(msg, "the gate's own failure, 6 times in a row") == NULL ||
        strstr(msg, "Too many open files") == NULL)
        fail_msg("the error should say it was the gate, and why: %s", msg);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'gate-error'", NULL), 6);
    then_lands(id, "a");
}

/*
 * No memory on gate_exec's heap for a job's environment (its module heap's
 * allocations fail): the gate's failure, never the change's; when it
 * persists run stops saying so, and the change lands once memory is back.
 * The old code rejected the change.
 */
static void test_exec_heap_full(void **state)
{
    (void)state;
    char msg[4096];
    long long id = run_under_persisting_fault("gate_exec.alloc:after=1", msg, sizeof(msg));
    if (strstr(msg, "the gate's own failure") == NULL)
        fail_msg("the error should say it was the gate: %s", msg);
    then_lands(id, "a");
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_full_disk_under_work_trees, teardown),
        cmocka_unit_test_teardown(test_full_disk_under_store, teardown),
        cmocka_unit_test_teardown(test_tree_replaced_by_a_link, teardown),
        cmocka_unit_test_teardown(test_stale_lock_of_main, teardown),
        cmocka_unit_test_teardown(test_stale_lock_of_main_url, teardown),
#if KEEL_DEVEL
        cmocka_unit_test_teardown(test_tree_fault_tried_again, teardown),
        cmocka_unit_test_teardown(test_store_fault_tried_again, teardown),
        cmocka_unit_test_teardown(test_exec_heap_full, teardown),
        cmocka_unit_test_teardown(test_start_faults_tried_again, teardown),
        cmocka_unit_test_teardown(test_start_fault_persisting_stops, teardown),
        cmocka_unit_test_teardown(test_learned_write_fails_tried_again, teardown),
        cmocka_unit_test_teardown(test_crash_after_learned, teardown),
        cmocka_unit_test_teardown(test_learned_read_fails_at_start, teardown),
        cmocka_unit_test_teardown(test_timings_read_fails_at_start, teardown),
        cmocka_unit_test_teardown(test_landing_unrecorded, teardown),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
