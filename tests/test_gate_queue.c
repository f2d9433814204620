/*
 * test_gate_queue.c - what makes a queue keel-gate's alone, on real
 * repositories and processes: two targets in one repository and one store
 * kept apart (jobs, work trees, recovery), recovery that recognises a
 * landed candidate by ancestry after the target moved on, a change that
 * crash-loops the gate quarantined, [gate] target honoured or refused, a
 * target checked out in a working tree refused, and a cancel at any moment.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void assert_has(const char *text, const char *want)
{
    if (strstr(text, want) == NULL)
        fail_msg("expected '%s' in: %s", want, text);
}

/* The message of a failed status (freed). */
static void message_of(keel_status s, char *buf, size_t size)
{
    assert_false(keel_ok(s));
    (void)keel_status_format(s, buf, size);
    keel_status_free(s);
}

/*
 * A branch `name` off main's first commit with a configuration of its own
 * ([gate] without a target line, so it may be guarded as itself).
 */
static void target_branch(const char *name)
{
    char conf[512];
    (void)snprintf(conf, sizeof(conf),
                   "[gate]\nslots = 1\nstrategy = serial\n"
                   "[config unit]\ntest = sh ci.sh\nenv = MARKER=%s/%s-marker\ntimeout = 30\n",
                   fx_dir, name);
    git_oid oid;
    const fx_file f[] = {{".keel/gate.conf", conf}};
    fx_commit(&fx_base, f, 1, name, &oid);
}

static gate *open_target(const char *target)
{
    gate_options o;
    gate_options_default(&o);
    o.repo = fx_where;
    o.state = fx_state;
    o.target = target;
    o.out = getenv("GATE_TEST_VERBOSE") != NULL ? stderr : NULL;
    o.poll_ms = 50;
    o.pause_ms = 20;
    gate *g = NULL;
    fx_ok(gate_open(&o, &g));
    return g;
}

/* A change for `target`: a branch off its tip adding `file`. */
static long long submit_for(gate *g, const char *target, const char *branch, const char *file)
{
    git_oid tip, oid;
    fx_head(target, &tip);
    const fx_file f[] = {{file, "x\n"}};
    fx_commit(&tip, f, 1, branch, &oid);
    return fx_submit(g, branch, 0);
}

/*
 * Two gates on one repository and one store, targets main and release:
 * while main's daemon runs a job, release's run --once lands its change
 * and touches nothing of main's (its running job, its change under test,
 * its work tree); the old code's run marked main's job lost, requeued its
 * change and removed its work tree.
 */
static void test_two_targets_kept_apart(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    target_branch("release");
    fx_slow_branch("slow", false);
    gate *g = open_target("main");
    long long slow = fx_submit(g, "slow", 0);
    gate_close(g);
    g = open_target("release");
    long long rel = submit_for(g, "release", "fix", "fix.txt");
    gate_close(g);
    pid_t daemon = fx_start_daemon_for("main");
    (void)fx_wait_for_job(daemon);
    char tree[256];
    (void)snprintf(tree, sizeof(tree), "%s.d/work/main/0/ci.sh", fx_state);
    struct stat sb;
    assert_int_equal(stat(tree, &sb), 0);

    g = open_target("release");
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(st.landed, 1);
    assert_int_equal(fx_state_of(g, rel), GATE_CHANGE_LANDED);
    /* main's queue as its gate left it */
    assert_int_equal(fx_state_of(g, slow), GATE_CHANGE_TESTING);
    gate_close(g);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs j JOIN candidates c ON c.id = "
                                "j.candidate WHERE c.target = 'main' AND j.state = 'running'",
                                NULL),
                     1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'lost'", NULL), 0);
    assert_int_equal(stat(tree, &sb), 0);
    assert_true(fx_still_running());
    assert_int_equal(waitpid(daemon, NULL, WNOHANG), 0);
    /* release's status shows release's queue only */
    g = open_target("release");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fx_ok(gate_status(g, f, false));
    assert_int_equal(fclose(f), 0);
    gate_close(g);
    if (strstr(text, "slow") != NULL || strstr(text, "running jobs (0)") == NULL)
        fail_msg("release's status shows main's work: %s", text);
    free(text);

    /* main's gate stops, and its next run lands its change */
    assert_int_equal(kill(daemon, SIGTERM), 0);
    int status = fx_wait_exit(daemon, 30000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fx_make_fast();
    g = open_target("main");
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, slow), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(fx_times_landed("slow"), 1);
    fx_assert_tip_tested();
}

/*
 * Each target's recovery is its own: main's gate killed with a job running,
 * then release's gate runs (and recovers release only); main's next run
 * finds its job lost and lands the change once.
 */
static void test_recovery_per_target(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    target_branch("release");
    fx_slow_branch("slow", false);
    gate *g = open_target("main");
    long long slow = fx_submit(g, "slow", 0);
    gate_close(g);
    pid_t daemon = fx_start_daemon_for("main");
    pid_t job = fx_wait_for_job(daemon);
    assert_int_equal(kill(daemon, SIGKILL), 0);
    (void)fx_wait_exit(daemon, 10000);
    assert_false(fx_still_alive(job)); /* its job died with it */
    g = open_target("release");
    long long rel = submit_for(g, "release", "fix", "fix.txt");
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, rel), GATE_CHANGE_LANDED);
    assert_int_equal(fx_state_of(g, slow), GATE_CHANGE_TESTING); /* not release's to recover */
    gate_close(g);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'running'", NULL), 1);
    fx_make_fast();
    g = open_target("main");
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, slow), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'lost'", NULL), 1);
    assert_int_equal(fx_times_landed("slow"), 1);
}

#if KEEL_DEVEL
/*
 * Killed right after the compare-and-swap, then someone pushes to main
 * before the gate comes back: the tip is no longer the candidate's merge
 * but descends from it.  The restart records the change landed (the old
 * code compared for equality, requeued it and merged it a second time).
 */
static void test_recovery_by_ancestry(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    long long a = fx_submit(g, "a", 0);
    gate_close(g);
    fx_crash_spec = "gate.crash_after_cas:nth=1";
    char out[4096];
    int status = keel_test_run_child(fx_crashing_run, out, sizeof(out));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 99);
    assert_int_equal(fx_times_landed("a"), 1);
    git_oid tip, pushed;
    fx_head("main", &tip);
    const fx_file f[] = {{"pushed.txt", "a push after the landing\n"}};
    fx_commit(&tip, f, 1, "main", &pushed);
    g = fx_open();
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, a), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(st.builds, 0);
    assert_int_equal(fx_times_landed("a"), 1);
    git_oid now;
    fx_head("main", &now);
    assert_true(git_oid_equal(&now, &pushed)); /* nothing merged on top */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'land' AND "
                                "json_extract(detail, '$.recovered')",
                                NULL),
                     1);
}
#endif

/* A child's body: a gate run whose job kills it (the job's parent is the gate). */
static void crashed_by_job(void)
{
    gate *g = fx_open();
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    keel_status_ignore(s, "the job kills this process");
    gate_close(g);
    _exit(0);
}

/*
 * A change whose job kills the gate (kill -9 of its parent) crash-loops it:
 * after the first crash it is built alone, after crash-limit (here 2) in a
 * row it is rejected as quarantined, and the good change queued with it
 * lands.  The old code crashed on every run, for ever.
 */
static void test_crash_loop_quarantined(void **state)
{
    (void)state;
    fx_setup_repo("strategy = batch\ncrash-limit = 2\nsandbox = none", "");
    fx_branch("killer", "ci.sh", "kill -KILL $PPID; sleep 5\n");
    fx_branch("good", "good.txt", "good\n");
    gate *g = fx_open();
    long long killer = fx_submit(g, "killer", 0), good = fx_submit(g, "good", 0);
    gate_close(g);
    char out[4096];
    int crashes = 0;
    for (int run = 0; run < 5; run++) {
        int status = keel_test_run_child(crashed_by_job, out, sizeof(out));
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
            crashes++;
            continue;
        }
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        break;
    }
    assert_int_equal(crashes, 2);
    g = fx_open();
    gate_change c;
    fx_ok(gate_store_get(gate_get_store(g), killer, &c));
    assert_int_equal(c.state, GATE_CHANGE_REJECTED);
    assert_has(c.reason, "quarantined: the gate died 2 times in a row");
    assert_int_equal(fx_state_of(g, good), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(fx_times_landed("good"), 1);
    assert_int_equal(fx_times_landed("killer"), 0);
    fx_assert_tip_tested();
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'quarantine'", NULL), 1);
}

/* A job of the change that comes back resets its crash count (it was not the one killing the gate). */
static void test_crash_count_reset_by_a_job(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_slow_branch("slow", false);
    gate *g = fx_open();
    long long slow = fx_submit(g, "slow", 0);
    gate_close(g);
    for (int i = 0; i < 2; i++) {
        pid_t daemon = fx_start_daemon();
        char sleeper[160];
        fx_marker(sleeper, sizeof(sleeper), ".sleep");
        (void)fx_wait_for_job(daemon);
        assert_int_equal(kill(daemon, SIGKILL), 0);
        (void)fx_wait_exit(daemon, 10000);
        (void)unlink(sleeper);
    }
    assert_int_equal(fx_sql_int("SELECT crashes FROM changes", NULL), 1); /* counted at restart */
    fx_make_fast();
    g = fx_open();
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, slow), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(fx_sql_int("SELECT crashes FROM changes", NULL), 0);
}

/* The text of `path` in main's tip (malloc'd). */
static char *main_file(const char *path)
{
    git_oid tip;
    fx_head("main", &tip);
    git_commit *c = NULL;
    git_tree *t = NULL;
    git_tree_entry *e = NULL;
    git_blob *b = NULL;
    assert_int_equal(git_commit_lookup(&c, fx_git, &tip), 0);
    assert_int_equal(git_commit_tree(&t, c), 0);
    assert_int_equal(git_tree_entry_bypath(&e, t, path), 0);
    assert_int_equal(git_blob_lookup(&b, fx_git, git_tree_entry_id(e)), 0);
    size_t n = (size_t)git_blob_rawsize(b);
    char *text = malloc(n + 1);
    assert_non_null(text);
    memcpy(text, git_blob_rawcontent(b), n);
    text[n] = '\0';
    git_blob_free(b);
    git_tree_entry_free(e);
    git_tree_free(t);
    git_commit_free(c);
    return text;
}

/*
 * A landed change that tightens the target's configuration (an output limit
 * of 2 KiB) holds for the changes after it in the same run: the next change,
 * whose job writes 8 KiB, is rejected for the limit.  (Before, run kept the
 * configuration it started with until a restart, and landed it.)
 */
static void test_landed_configuration_holds_at_once(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    char *conf = main_file(".keel/gate.conf");
    char *tight = malloc(strlen(conf) + 32);
    assert_non_null(tight);
    (void)sprintf(tight, "%soutput = 2K\n", conf);
    free(conf);
    fx_branch("tighten", ".keel/gate.conf", tight);
    free(tight);
    fx_branch("chatty", "ci.sh", "head -c 8192 /dev/zero | tr '\\0' x; echo; exit 0\n");
    gate *g = fx_open();
    long long a = fx_submit(g, "tighten", 0), b = fx_submit(g, "chatty", 0);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, a), GATE_CHANGE_LANDED);
    gate_change c;
    fx_ok(gate_store_get(gate_get_store(g), b, &c));
    gate_close(g);
    assert_int_equal(c.state, GATE_CHANGE_REJECTED);
    assert_has(c.reason, "output limit 2 KiB");
}

/* [gate] target: the default target follows it; a --target it does not name is refused. */
static void test_configured_target(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    /* HEAD names "dev", whose configuration says target = main */
    git_oid dev;
    fx_head("main", &dev);
    git_reference *r = NULL;
    assert_int_equal(git_reference_create(&r, fx_git, "refs/heads/dev", &dev, 1, "test"), 0);
    git_reference_free(r);
    assert_int_equal(git_repository_set_head(fx_git, "refs/heads/dev"), 0);
    gate_options o;
    gate_options_default(&o);
    o.repo = fx_repo;
    o.state = fx_state;
    o.out = NULL;
    gate *g = NULL;
    fx_ok(gate_open(&o, &g));
    assert_string_equal(gate_target(g), "main");
    gate_close(g);
    /* guarding dev by name: its configuration says main */
    o.target = "dev";
    char msg[2048];
    message_of(gate_open(&o, &g), msg, sizeof(msg));
    assert_null(g);
    assert_has(msg, "says target = 'main': this gate guards 'dev'");
    assert_has(msg, "--target 'main'");
}

/*
 * A target checked out in a non-bare repository is refused by run (landing
 * would move it under the working tree); status still works.
 */
static void test_checked_out_target_refused(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_branch("topic", "t.txt", "t\n"); /* a change main does not hold yet */
    char work[160];
    (void)snprintf(work, sizeof(work), "%s/work", fx_dir);
    git_repository *clone = NULL;
    git_clone_options co;
    assert_int_equal(git_clone_options_init(&co, GIT_CLONE_OPTIONS_VERSION), 0);
    co.checkout_branch = "main";
    assert_int_equal(git_clone(&clone, fx_repo, work, &co), 0);
    git_reference *r = NULL; /* the branch itself, not only origin/topic */
    git_oid head;
    assert_int_equal(git_reference_name_to_id(&head, clone, "refs/remotes/origin/topic"), 0);
    assert_int_equal(git_reference_create(&r, clone, "refs/heads/topic", &head, 1, "t"), 0);
    git_reference_free(r);
    git_repository_free(clone);
    gate_options o;
    gate_options_default(&o);
    o.repo = work;
    o.state = fx_state;
    o.out = NULL;
    gate *g = NULL;
    fx_ok(gate_open(&o, &g));
    assert_string_equal(gate_target(g), "main");
    long long id = 0;
    fx_ok(gate_submit(g, "topic", 0, &id));
    gate_run_stats st;
    char msg[2048];
    message_of(gate_run(g, true, &st), msg, sizeof(msg));
    assert_has(msg, "'main' is checked out in '");
    assert_has(msg, "git clone --bare");
    assert_int_equal(st.builds, 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fx_ok(gate_status(g, f, false));
    assert_int_equal(fclose(f), 0);
    assert_has(text, "queued (1)");
    free(text);
    gate_close(g);
}

/*
 * `status` on a store this user may not write (the gate runs as another
 * user): it shows the queue (the old code failed, trying to write the
 * schema).  Needs root to become another user; skipped otherwise.
 */
static void test_status_on_readonly_store(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    (void)fx_submit(g, "a", 0);
    gate_close(g);
    assert_int_equal(chmod(fx_dir, 0755), 0);
    char cmd[256]; /* the repository is the reader's (git refuses another user's); the store not */
    (void)snprintf(cmd, sizeof(cmd), "chown -R 65534:65534 '%s'", fx_repo);
    assert_int_equal(system(cmd), 0);
    (void)fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        /* as a user of its own: libgit2 looked for root's ~/.gitconfig when it started */
        if (git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, "/nonexistent") != 0)
            _exit(13);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        gate_options o;
        gate_options_default(&o);
        o.repo = fx_repo;
        o.state = fx_state;
        o.out = NULL;
        gate *ro = NULL;
        keel_status s = gate_open(&o, &ro);
        if (keel_ok(s))
            s = gate_status(ro, f, false);
        (void)fclose(f);
        if (!keel_ok(s)) {
            keel_status_print(stderr, s);
            _exit(11);
        }
        bool shown = strstr(text, "queued (1):") != NULL && strstr(text, " a ") != NULL;
        free(text);
        gate_close(ro);
        _exit(shown ? 0 : 12);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

#if KEEL_DEVEL
static long long cancel_id; /* what the stress action below cancels */

/* A stress action: someone cancels change cancel_id (a store connection of its own), then on. */
static bool cancel_now(const char *name, void *ctx)
{
    (void)name;
    (void)ctx;
    gate_store *st = NULL;
    keel_status s = gate_store_open(fx_state, &st);
    if (keel_ok(s))
        s = gate_store_cancel(st, cancel_id, 1);
    if (!keel_ok(s))
        keel_status_print(stderr, s);
    keel_status_free(s);
    gate_store_close(st);
    return false;
}

/*
 * A cancel at the moments the loop does not re-read the queue: while a
 * candidate is about to land (its own change, or the next change, whose
 * build starts in the same turn).  run never fails, the cancelled change
 * never lands, the others do.  The old code failed with "change N is not
 * queued: it cannot join a candidate" and landed a change cancelled while
 * its candidate was tested.
 */
static void cancel_at(const char *point, int which)
{
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    fx_branch("c", "c.txt", "c\n");
    gate *g = fx_open();
    long long ids[3] = {fx_submit(g, "a", 0), fx_submit(g, "b", 0), fx_submit(g, "c", 0)};
    cancel_id = ids[which];
    fx_ok(keel_stress_set_action(point, cancel_now, NULL));
    char spec[128];
    (void)snprintf(spec, sizeof(spec), "%s:nth=1", point);
    fx_ok(keel_stress_enable(spec));
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    keel_stress_clear();
    fx_ok(keel_stress_set_action(point, NULL, NULL));
    fx_ok(s);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fx_state_of(g, ids[i]),
                         i == which ? GATE_CHANGE_CANCELLED : GATE_CHANGE_LANDED);
    gate_close(g);
    static const char *const names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(fx_times_landed(names[i]), i == which ? 0u : 1u);
    fx_assert_tip_tested();
}

static void test_cancel_while_landing_itself(void **state)
{
    (void)state;
    cancel_at("gate.crash_before_cas", 0);
}

static void test_cancel_next_while_landing(void **state)
{
    (void)state;
    cancel_at("gate.crash_before_cas", 1);
}

static void test_cancel_after_merge(void **state)
{
    (void)state;
    cancel_at("gate.crash_after_merge", 0);
}

static void test_cancel_after_job(void **state)
{
    (void)state;
    cancel_at("gate.crash_after_job", 0);
}
#endif

/* One number from the store (sqlite directly), NAN when there is no row. */
static double sql_double(const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx_state, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    double v = NAN;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/*
 * A gate killed (kill -9) after deciding changes starts again from what its
 * scheduler had learned of the queue, which the store kept as it decided
 * (store_learned.c): the first run started from the default prior (0.1);
 * three changes decided one at a time, the second bad, are 2.9404 changes
 * of evidence after decay (1 + 0.98 + 0.98^2) with a failure rate of 0.98 /
 * 2.9404, the builds of the candidates that passed 1.98 (1 + 0.98) with no
 * flake; the next run's scheduler starts from them plus the prior's 2
 * changes at 0.1.  (The old gate started every run from the prior.)
 */
static void test_restart_starts_from_learned(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_slow_branch("slow", false);
    gate *g = open_target("main");
    long long ids[3];
    fx_queue_with_bad(g, ids);
    long long slow = fx_submit(g, "slow", 0);
    gate_close(g);
    assert_true(isnan(sql_double("SELECT n FROM learned WHERE target = 'main'")));
    pid_t daemon = fx_start_daemon_for("main");
    (void)fx_wait_for_job(daemon); /* a, bad and b decided; slow's job running */
    assert_int_equal(kill(daemon, SIGKILL), 0);
    (void)fx_wait_exit(daemon, 10000);
    double n = 1.0 + 0.98 + 0.98 * 0.98, p = 0.98 / n;
    assert_true(fabs(sql_double("SELECT n FROM learned WHERE target = 'main'") - n) < 1e-9);
    assert_true(fabs(sql_double("SELECT p FROM learned WHERE target = 'main'") - p) < 1e-9);
    assert_true(fabs(sql_double("SELECT flake_n FROM learned WHERE target = 'main'") - 1.98) <
                1e-9);
    assert_true(sql_double("SELECT flake FROM learned WHERE target = 'main'") == 0.0);

    fx_make_fast();
    g = open_target("main");
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, ids[1]), GATE_CHANGE_REJECTED);
    assert_int_equal(fx_state_of(g, slow), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_true(fabs(st.p_start - (p * n + 0.1 * 2.0) / (n + 2.0)) < 1e-9);
    /* slow landed: one more good change decided, the memory's counts decayed once */
    double n2 = n * 0.98 + 1.0; /* n is below the weight a memory counts for at most */
    assert_true(fabs(sql_double("SELECT n FROM learned WHERE target = 'main'") - n2) < 1e-9);
    assert_true(fabs(st.p - (p * n * 0.98 + 0.1 * 2.0) / (n2 + 2.0)) < 1e-9);
}

/*
 * A new run starts from the timings of the jobs of the runs before it,
 * which the store kept with their load (gate_store_job_timings): the
 * capacity estimate of the second run's first scheduler holds every job
 * the first run's ran its course, and learns on from there.  (The old gate
 * started every run from the prior: 0 timings.)  A job of another target
 * is not this queue's evidence.
 */
static void test_restart_starts_from_timings(void **state)
{
    (void)state;
    fx_setup_repo("strategy = adaptive", "");
    target_branch("release");
    gate *g = open_target("main");
    long long ids[3];
    fx_queue_with_bad(g, ids);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    gate_close(g);
    assert_int_equal(st.timed_start, 0);
    unsigned first = st.timed;
    assert_true(first >= 3); /* a, bad and b: a job each at least */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE load >= 1 AND elapsed_ms > 0 "
                                "AND state IN ('passed', 'failed')",
                                NULL),
                     first);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE load < 1", NULL), 0);

    g = open_target("main");
    fx_ok(gate_run(g, true, &st)); /* nothing queued: what it starts from is what it ends with */
    gate_close(g);
    assert_int_equal(st.timed_start, first);
    assert_int_equal(st.timed, first);

    g = open_target("release"); /* a target of its own: none of main's jobs */
    fx_ok(gate_run(g, true, &st));
    gate_close(g);
    assert_int_equal(st.timed_start, 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_two_targets_kept_apart, teardown),
        cmocka_unit_test_teardown(test_recovery_per_target, teardown),
        cmocka_unit_test_teardown(test_restart_starts_from_learned, teardown),
        cmocka_unit_test_teardown(test_restart_starts_from_timings, teardown),
#if KEEL_DEVEL
        cmocka_unit_test_teardown(test_recovery_by_ancestry, teardown),
#endif
        cmocka_unit_test_teardown(test_crash_loop_quarantined, teardown),
        cmocka_unit_test_teardown(test_crash_count_reset_by_a_job, teardown),
        cmocka_unit_test_teardown(test_configured_target, teardown),
        cmocka_unit_test_teardown(test_landed_configuration_holds_at_once, teardown),
        cmocka_unit_test_teardown(test_checked_out_target_refused, teardown),
        cmocka_unit_test_teardown(test_status_on_readonly_store, teardown),
#if KEEL_DEVEL
        cmocka_unit_test_teardown(test_cancel_while_landing_itself, teardown),
        cmocka_unit_test_teardown(test_cancel_next_while_landing, teardown),
        cmocka_unit_test_teardown(test_cancel_after_merge, teardown),
        cmocka_unit_test_teardown(test_cancel_after_job, teardown),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
