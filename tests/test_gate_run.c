/*
 * test_gate_run.c - keel-gate's gatekeeper end to end on real repositories,
 * processes and stores: landing order, priorities, culprit isolation in
 * batches, conflicts, flakes, timeouts, a concurrent push during the
 * compare-and-swap, and a kill -9 at every step followed by a restart.
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

static void test_landing_order(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    fx_branch("c", "c.txt", "c\n");
    gate *g = fx_open();
    long long ids[3] = {fx_submit(g, "a", 0), fx_submit(g, "b", 0), fx_submit(g, "c", 0)};
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 3);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.builds, 3);
    git_oid landed[8], h;
    assert_int_equal(fx_landed_heads(landed, 8), 3);
    static const char *const order[] = {"c", "b", "a"}; /* newest first */
    for (int i = 0; i < 3; i++) {
        fx_head(order[i], &h);
        assert_true(git_oid_equal(&landed[i], &h));
    }
    g = fx_open();
    for (int i = 0; i < 3; i++)
        assert_int_equal(fx_state_of(g, ids[i]), GATE_CHANGE_LANDED);
    gate_close(g);
    fx_assert_tip_tested();
    /* the hook saw every landing */
    char path[160];
    (void)snprintf(path, sizeof(path), "%s/events.jsonl", fx_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    int lands = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        lands += strstr(line, "\"event\":\"land\"") != NULL;
    (void)fclose(f);
    assert_int_equal(lands, 3);
}

static void test_priority(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_branch("low", "low.txt", "l\n");
    fx_branch("high", "high.txt", "h\n");
    gate *g = fx_open();
    (void)fx_submit(g, "low", 0);
    (void)fx_submit(g, "high", 5);
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 2);
    git_oid landed[4], h;
    assert_int_equal(fx_landed_heads(landed, 4), 2);
    fx_head("low", &h); /* landed last: newest */
    assert_true(git_oid_equal(&landed[0], &h));
    fx_head("high", &h);
    assert_true(git_oid_equal(&landed[1], &h));
}

/* A batch of `n` changes of which those in `bad` (indexes) fail the check. */
static void batch_with_bad(size_t n, const size_t *bad, size_t nbad)
{
    fx_setup_repo("strategy = batch\nmax-batch = 8\nretries = 0", "");
    gate *g = fx_open();
    long long ids[8];
    for (size_t i = 0; i < n; i++) {
        char name[32], file[32];
        (void)snprintf(name, sizeof(name), "ch%zu", i);
        bool is_bad = false;
        for (size_t k = 0; k < nbad; k++)
            is_bad |= bad[k] == i;
        (void)snprintf(file, sizeof(file), "%s", is_bad ? "bad" : name);
        fx_branch(name, file, is_bad ? "bad\n" : name); /* bad ones merge with each other */
        ids[i] = fx_submit(g, name, 0);
    }
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, n - nbad);
    assert_int_equal(st.rejected, nbad);
    g = fx_open();
    for (size_t i = 0; i < n; i++) {
        bool is_bad = false;
        for (size_t k = 0; k < nbad; k++)
            is_bad |= bad[k] == i;
        assert_int_equal(fx_state_of(g, ids[i]),
                         is_bad ? GATE_CHANGE_REJECTED : GATE_CHANGE_LANDED);
        char name[32];
        (void)snprintf(name, sizeof(name), "ch%zu", i);
        assert_int_equal(fx_times_landed(name), is_bad ? 0 : 1);
    }
    gate_close(g);
    fx_assert_tip_tested();
    /* isolation costs builds, but far fewer than one per change per bad one */
    assert_true(st.builds > 1 && st.builds <= 2 + 4 * nbad + n / 2);
}

static void test_batch_one_bad(void **state)
{
    (void)state;
    const size_t bad[] = {2};
    batch_with_bad(6, bad, 1);
}

static void test_batch_two_bad(void **state)
{
    (void)state;
    const size_t bad[] = {1, 4};
    batch_with_bad(6, bad, 2);
}

static void test_conflict_rejected(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_branch("one", "shared.txt", "one\n");
    fx_branch("two", "shared.txt", "two\n");
    fx_branch("three", "three.txt", "3\n");
    gate *g = fx_open();
    long long a = fx_submit(g, "one", 0), b = fx_submit(g, "two", 0), c = fx_submit(g, "three", 0);
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 2);
    assert_int_equal(st.conflicts, 1);
    assert_int_equal(st.rejected, 0);
    g = fx_open();
    assert_int_equal(fx_state_of(g, a), GATE_CHANGE_LANDED);
    assert_int_equal(fx_state_of(g, b), GATE_CHANGE_CONFLICT);
    assert_int_equal(fx_state_of(g, c), GATE_CHANGE_LANDED);
    gate_change ch;
    fx_ok(gate_store_get(gate_get_store(g), b, &ch));
    assert_non_null(strstr(ch.reason, "shared.txt"));
    gate_close(g);
}

/* The first 12 hex digits of the commit main points at, into hex. */
static void main_at(char hex[13])
{
    git_oid tip;
    fx_head("main", &tip);
    char full[GIT_OID_HEXSZ + 1];
    git_oid_tostr(full, sizeof(full), &tip);
    memcpy(hex, full, 12);
    hex[12] = '\0';
}

/* Change `id`'s reason, which must hold `want`. */
static void assert_reason_has(long long id, const char *want)
{
    gate *g = fx_open();
    gate_change ch;
    fx_ok(gate_store_get(gate_get_store(g), id, &ch));
    gate_close(g);
    if (strstr(ch.reason, want) == NULL)
        fail_msg("the reason of change %lld is \"%s\", without \"%s\"", id, ch.reason, want);
}

/* Submit branches "one" and "two" (*a, *b), run: one lands, two conflicts. */
static void one_lands_two_conflicts(long long *a, long long *b)
{
    gate *g = fx_open();
    *a = fx_submit(g, "one", 0);
    *b = fx_submit(g, "two", 0);
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 1);
    assert_int_equal(st.conflicts, 1);
}

/* A conflict names the landed change it conflicts with, and where it landed. */
static void test_conflict_names_landed_change(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_branch("one", "shared.txt", "one\n");
    fx_branch("two", "shared.txt", "two\n");
    long long a = 0, b = 0;
    one_lands_two_conflicts(&a, &b);
    char tip[13], want[160];
    main_at(tip);
    (void)snprintf(want, sizeof(want),
                   "does not merge onto 'main' at %s: conflicts with change %lld ('one', landed "
                   "at %s) in shared.txt",
                   tip, a, tip);
    assert_reason_has(b, want);
}

/*
 * A conflict with a commit pushed to the target directly names it by its id
 * and subject; paths from different commits are each named with theirs.
 */
static void test_conflict_names_direct_push(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    git_oid pushed, two;
    const fx_file p[] = {{"shared.txt", "pushed\n"}};
    fx_commit(&fx_base, p, 1, "main", &pushed); /* its subject: "main" */
    fx_branch("one", "other.txt", "one\n");
    const fx_file t[] = {{"shared.txt", "two\n"}, {"other.txt", "two\n"}};
    fx_commit(&fx_base, t, 2, "two", &two);
    long long a = 0, b = 0;
    one_lands_two_conflicts(&a, &b);
    char tip[13], hex[GIT_OID_HEXSZ + 1], want[320];
    main_at(tip);
    git_oid_tostr(hex, sizeof(hex), &pushed);
    (void)snprintf(want, sizeof(want),
                   "conflicts with change %lld ('one', landed at %s) in other.txt; with commit "
                   "%.12s ('main', pushed to 'main' directly) in shared.txt",
                   a, tip, hex);
    assert_reason_has(b, want);
}

/*
 * In a batch, a change that conflicts with one ahead of it (not landed) is
 * told so, naming that change; once that one is rejected, it lands.
 */
static void test_conflict_names_change_ahead(void **state)
{
    (void)state;
    fx_setup_repo("strategy = batch\nmax-batch = 4\nretries = 0", "");
    git_oid bad;
    const fx_file f[] = {{"shared.txt", "a\n"}, {"bad", "a\n"}};
    fx_commit(&fx_base, f, 2, "a", &bad);
    fx_branch("b", "shared.txt", "b\n");
    gate *g = fx_open();
    long long a = fx_submit(g, "a", 0), b = fx_submit(g, "b", 0);
    gate_close(g);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    gate_options o;
    gate_options_default(&o);
    o.repo = fx_where;
    o.mirror = fx_mirror;
    o.state = fx_state;
    o.out = out;
    o.poll_ms = 50;
    g = NULL;
    fx_ok(gate_open(&o, &g));
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    gate_close(g);
    assert_int_equal(fclose(out), 0);
    char want[160];
    (void)snprintf(want, sizeof(want),
                   "change %lld 'b' conflicts with change %lld ('a', ahead of it, not landed) in "
                   "shared.txt",
                   b, a);
    if (strstr(text, want) == NULL)
        fail_msg("the run's output does not say \"%s\":\n%s", want, text);
    free(text);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.landed, 1);
    assert_int_equal(st.conflicts, 0);
}

/*
 * Work trees are reused: a job that leaves files behind, modifies or deletes
 * tracked ones, makes a `.git` or a FIFO must not affect the next job in its
 * work tree (serial, one configuration: every job runs in the same one).
 * ci.sh fails with its own exit code when it finds anything a job before it
 * did, then does all of it; a change adding `bad` is rejected after dirtying.
 */
static void test_each_job_in_a_clean_tree(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial\nretries = 0", "");
    static const char ci[] = "test ! -e left-behind || exit 10\n"
                             "test ! -e out || exit 11\n"
                             "test ! -e .git || exit 12\n"
                             "test ! -e pipe || exit 13\n"
                             "test \"$(cat shared.txt)\" = base || exit 14\n"
                             "test -e keep.txt || exit 15\n"
                             "test ! -x ci.sh || exit 16\n"
                             "echo junk > left-behind; mkdir -p out .git/objects\n"
                             "echo obj > out/x.o; echo x > .git/HEAD; mkfifo pipe\n"
                             "echo changed > shared.txt; chmod +x ci.sh; rm keep.txt\n"
                             "test ! -e bad\n";
    const fx_file f[] = {{"ci.sh", ci}, {"keep.txt", "keep\n"}};
    git_oid base;
    fx_commit(&fx_base, f, 2, "main", &base);
    fx_base = base;
    fx_branch("a", "a.txt", "a\n");
    fx_branch("bad", "bad", "bad\n");
    fx_branch("b", "b.txt", "b\n");
    fx_branch("c", "c.txt", "c\n");
    gate *g = fx_open();
    long long a = fx_submit(g, "a", 0), bad = fx_submit(g, "bad", 0), b = fx_submit(g, "b", 0),
              c = fx_submit(g, "c", 0);
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.jobs, 4);
    assert_int_equal(st.landed, 3);
    assert_int_equal(st.rejected, 1);
    g = fx_open();
    assert_int_equal(fx_state_of(g, a), GATE_CHANGE_LANDED);
    assert_int_equal(fx_state_of(g, bad), GATE_CHANGE_REJECTED);
    assert_int_equal(fx_state_of(g, b), GATE_CHANGE_LANDED);
    assert_int_equal(fx_state_of(g, c), GATE_CHANGE_LANDED);
    gate_close(g);
    /* the bad one failed on its own check, not on what a job before it left */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE exit_code <> 0", NULL), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE exit_code = 1", NULL), 1);
    fx_assert_tip_tested();
}

static void test_flake_retried_and_lands(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial\nretries = 1", "");
    /* fails the first time it runs anywhere (it leaves a marker), passes after */
    fx_branch("flaky", "ci.sh",
              "if [ -e \"$MARKER\" ]; then exit 0; fi\ntouch \"$MARKER\"\nexit 1\n");
    gate *g = fx_open();
    long long id = fx_submit(g, "flaky", 0);
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 1);
    assert_int_equal(st.flakes, 1);
    assert_int_equal(st.builds, 2);
    g = fx_open();
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_LANDED);
    long long flakes = 0;
    fx_ok(gate_store_count_events(gate_get_store(g), "flake", &flakes));
    assert_int_equal(flakes, 1);
    gate_close(g);
    fx_assert_tip_tested();
}

static void test_timeout_kills_group(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial\nretries = 0", "");
    /* a test that hangs and leaves a child behind; its config allows 1 s */
    fx_hang_branch("hang", "slots = 1\nstrategy = serial\nretries = 0",
                   "sleep 60 &\necho $! > \"$MARKER.pid\"\nsleep 60\n");
    gate *g = fx_open();
    long long id = fx_submit(g, "hang", 0);
    gate_close(g);
    unsigned long long t0 = (unsigned long long)time(NULL);
    gate_run_stats st = fx_run_once();
    assert_true((unsigned long long)time(NULL) - t0 < 15);
    assert_int_equal(st.rejected, 1);
    g = fx_open();
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_REJECTED);
    gate_close(g);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'timeout'", NULL), 1);
    char path[160];
    fx_marker(path, sizeof(path), ".pid");
    assert_int_equal(access(path, F_OK), 0); /* the job ran as far as its background sleep */
    /* the background sleep went with the job (the gate waited for everything it started) */
    assert_int_equal(fx_job_processes(), 0);
}

static void test_cas_lost_to_push(void **state)
{
    (void)state;
#if KEEL_DEVEL
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    gate *g = fx_open();
    long long a = fx_submit(g, "a", 0), b = fx_submit(g, "b", 0);
    gate_close(g);
    fx_ok(keel_stress_set_action("gate.crash_before_cas", fx_push_to_main, NULL));
    fx_ok(keel_stress_enable("gate.crash_before_cas:nth=1"));
    gate_run_stats st = fx_run_once();
    keel_stress_clear();
    fx_ok(keel_stress_set_action("gate.crash_before_cas", NULL, NULL));
    assert_int_equal(st.moved, 1);
    assert_int_equal(st.landed, 2);
    assert_true(st.builds >= 3); /* the candidate that lost was rebuilt on the new tip */
    g = fx_open();
    assert_int_equal(fx_state_of(g, a), GATE_CHANGE_LANDED);
    assert_int_equal(fx_state_of(g, b), GATE_CHANGE_LANDED);
    gate_close(g);
    /* the push is still there: main's history holds it */
    git_oid tip;
    fx_head("main", &tip);
    git_tree *tree = NULL;
    git_commit *c = NULL;
    assert_int_equal(git_commit_lookup(&c, fx_git, &tip), 0);
    assert_int_equal(git_commit_tree(&tree, c), 0);
    git_tree_entry *e = NULL;
    assert_int_equal(git_tree_entry_bypath(&e, tree, "pushed.txt"), 0);
    git_tree_entry_free(e);
    git_tree_free(tree);
    git_commit_free(c);
    assert_int_equal(fx_times_landed("a"), 1);
    assert_int_equal(fx_times_landed("b"), 1);
    fx_assert_tip_tested();
#else
    fx_setup_repo("", "");
    skip();
#endif
}

static void test_crash_at_every_point(void **state)
{
    (void)state;
    fx_skip_sweep_under_tsan();
#if KEEL_DEVEL
    static const char *const points[] = {"crash_after_merge", "crash_after_job", "crash_before_cas",
                                         "crash_after_cas", "crash_after_learned"};
    for (size_t p = 0; p < sizeof(points) / sizeof(points[0]); p++)
        for (int nth = 1; nth <= 2; nth++) {
            fx_setup_repo("strategy = batch\nmax-batch = 4\nretries = 0", "");
            static const char *const good[] = {"g1", "g2", "g3"};
            fx_branch("g1", "g1.txt", "1\n");
            fx_branch("bad1", "bad", "x\n");
            fx_branch("g2", "g2.txt", "2\n");
            fx_branch("g3", "g3.txt", "3\n");
            gate *g = fx_open();
            long long ids[4] = {fx_submit(g, "g1", 0), fx_submit(g, "bad1", 0),
                                fx_submit(g, "g2", 0), fx_submit(g, "g3", 0)};
            gate_close(g);
            char spec[96];
            (void)snprintf(spec, sizeof(spec), "gate.%s:nth=%d", points[p], nth);
            fx_crash_spec = spec;
            char err[4096];
            int status = keel_test_run_child(fx_crashing_run, err, sizeof(err));
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
                fail_msg("%s: the gate should have died at the point (status %d): %s", spec, status,
                         err);
            fx_assert_tip_tested_as(false); /* even right after the kill */
            gate_run_stats st = fx_run_once();
            (void)st;
            g = fx_open();
            for (size_t i = 0; i < 4; i++)
                if (fx_state_of(g, ids[i]) != (i == 1 ? GATE_CHANGE_REJECTED : GATE_CHANGE_LANDED))
                    fail_msg("%s: change %lld ended %s", spec, ids[i],
                             gate_change_state_name(fx_state_of(g, ids[i])));
            gate_close(g);
            for (size_t i = 0; i < 3; i++)
                if (fx_times_landed(good[i]) != 1)
                    fail_msg("%s: '%s' landed %zu times", spec, good[i], fx_times_landed(good[i]));
            assert_int_equal(fx_times_landed("bad1"), 0);
            fx_assert_tip_tested();
            /* nothing left in flight */
            assert_int_equal(
                fx_sql_int("SELECT count(*) FROM changes WHERE state IN ('queued','testing')",
                           NULL),
                0);
            assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'running'", NULL),
                             0);
            fx_teardown_repo();
        }
    fx_setup_repo("", ""); /* for the teardown */
#else
    fx_setup_repo("", "");
    skip();
#endif
}

static void test_notify_failure_never_blocks(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    char conf[512];
    (void)snprintf(conf, sizeof(conf),
                   "[gate]\nstrategy = serial\nnotify = false\n[config unit]\ntest = sh ci.sh\n");
    git_oid tip;
    const fx_file f[] = {{".keel/gate.conf", conf}};
    fx_commit(&fx_base, f, 1, "main", &tip);
    git_oid_cpy(&fx_base, &tip);
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    (void)fx_submit(g, "a", 0);
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 1);
    assert_int_equal(st.notify_failures, 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'notify-failed'", NULL),
                     1);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_landing_order, fx_teardown),
        cmocka_unit_test_teardown(test_priority, fx_teardown),
        cmocka_unit_test_teardown(test_batch_one_bad, fx_teardown),
        cmocka_unit_test_teardown(test_batch_two_bad, fx_teardown),
        cmocka_unit_test_teardown(test_conflict_rejected, fx_teardown),
        cmocka_unit_test_teardown(test_conflict_names_landed_change, fx_teardown),
        cmocka_unit_test_teardown(test_conflict_names_direct_push, fx_teardown),
        cmocka_unit_test_teardown(test_conflict_names_change_ahead, fx_teardown),
        cmocka_unit_test_teardown(test_each_job_in_a_clean_tree, fx_teardown),
        cmocka_unit_test_teardown(test_flake_retried_and_lands, fx_teardown),
        cmocka_unit_test_teardown(test_timeout_kills_group, fx_teardown),
        cmocka_unit_test_teardown(test_cas_lost_to_push, fx_teardown),
        cmocka_unit_test_teardown(test_crash_at_every_point, fx_teardown),
        cmocka_unit_test_teardown(test_notify_failure_never_blocks, fx_teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
