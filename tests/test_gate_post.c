/*
 * test_gate_post.c - the post level (gate/levels/post.c) on real
 * repositories and processes: every commit that reaches the target, through
 * the gate or pushed around it, built with the configurations at level post
 * (and only those: the queue runs the gate's), newest first, a pass
 * superseding the older commits not built yet; red and green events.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gate_fixture.h"
#include "store_post.h"

/* The post history of main, newest first, into rows; how many. */
static size_t history(gate_post_row *rows, size_t max, const char *config)
{
    gate_store *st = NULL;
    fx_ok(gate_store_open(fx_state, &st));
    size_t n = 0;
    fx_ok(gate_store_post_history(st, "main", config, rows, max, &n));
    gate_store_close(st);
    return n;
}

/* Did the notify hook (the fixture's: tee -a events.jsonl) get `event` about `commit`? */
static bool hook_heard(const char *event, const git_oid *commit)
{
    char path[160], hex[GIT_OID_HEXSZ + 1], want[128];
    (void)snprintf(path, sizeof(path), "%s/events.jsonl", fx_dir);
    git_oid_tostr(hex, sizeof(hex), commit);
    (void)snprintf(want, sizeof(want), "\"event\":\"%s\"", event);
    static char text[65536];
    keel_test_read_file(path, text, sizeof(text));
    bool found = false;
    for (char *line = text; line != NULL && *line != '\0' && !found;) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        found = strstr(line, want) != NULL && strstr(line, hex) != NULL;
        line = nl != NULL ? nl + 1 : NULL;
    }
    return found;
}

static void assert_row(const gate_post_row *r, const git_oid *commit, const char *outcome)
{
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), commit);
    assert_string_equal(r->commit, hex);
    assert_string_equal(r->config, "long");
    if (strcmp(gate_post_outcome(r), outcome) != 0)
        fail_msg("%.12s: '%s', not '%s'", r->commit, gate_post_outcome(r), outcome);
}

static void test_post_builds_what_reaches_the_target(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial\nslots = 1", /* one slot: commits come faster than builds */
                  "[config long]\ntest = test ! -e postbad\nlevels = post\ntimeout = 30\n");
    (void)fx_run_once(); /* the first run: the tip alone is the post level's */
    gate_post_row h[16];
    assert_int_equal(history(h, 16, NULL), 1);
    assert_row(&h[0], &fx_base, "passed");

    /* a change that passes the gate's suite and breaks the post suite lands, then fails post */
    fx_branch("breaks", "postbad", "x\n");
    gate *g = fx_open();
    long long id = fx_submit(g, "breaks", 0);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE config = ?", "long"), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE config = ?", "unit"), 1);
    git_oid landed;
    fx_head("main", &landed);
    assert_int_equal(history(h, 16, NULL), 2);
    assert_row(&h[0], &landed, "failed");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = ?", "post-failed"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = ?", "target-red"), 1);

    assert_true(hook_heard("target-red", &landed));

    /* two commits pushed around the gate, still broken: the newest first, a failure skips none */
    git_oid p1, p2;
    fx_push("a.txt", "a\n", &p1);
    fx_push("b.txt", "b\n", &p2);
    (void)fx_run_once();
    assert_int_equal(history(h, 16, NULL), 4);
    assert_row(&h[0], &p2, "failed");
    assert_row(&h[1], &p1, "failed");
    /* the same failure: told once, not once per failing build */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = ?", "post-failed"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = ?", "target-red"), 1);

    /* the fix: green again */
    git_oid fix;
    fx_push("postbad", NULL, &fix);
    (void)fx_run_once();
    assert_int_equal(history(h, 16, "long"), 5);
    assert_row(&h[0], &fix, "passed");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = ?", "target-green"), 1);
    assert_true(hook_heard("target-green", &fix));
    assert_true(hook_heard("post-failed", &landed));

    /* two at once: the newest passes, the older is superseded (not run) */
    git_oid p4, p5;
    fx_push("c.txt", "c\n", &p4);
    fx_push("d.txt", "d\n", &p5);
    (void)fx_run_once();
    assert_int_equal(history(h, 16, NULL), 7);
    assert_row(&h[0], &p5, "passed");
    assert_row(&h[1], &p4, "not run");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = ?", "post-failed"), 1);

    /* keel-gate history: the table and --json */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    g = fx_open();
    fx_ok(gate_history(g, NULL, f, 0));
    fx_ok(gate_history(g, "long", f, GATE_HISTORY_JSON));
    fx_ok(gate_history(g, "long", f, 0));
    keel_status s = gate_history(g, "nothing", f, 0); /* a name never seen: an error naming it */
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND));
    assert_non_null(strstr(keel_status_message(s), "no configuration 'nothing' on 'main'"));
    keel_status_free(s);
    gate_close(g);
    assert_int_equal(fclose(f), 0);
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &p4);
    char want[128];
    (void)snprintf(want, sizeof(want), "%.12s  not run", hex);
    if (strstr(text, "commit        long") == NULL || strstr(text, want) == NULL)
        fail_msg("history:\n%s", text);
    git_oid_tostr(hex, sizeof(hex), &landed);
    (void)snprintf(want, sizeof(want), "{\"commit\":\"%s\",\"seq\":2,", hex);
    if (strstr(text, want) == NULL || strstr(text, "\"result\":\"failed\",\"runs\":1") == NULL)
        fail_msg("history --json:\n%s", text);
    if (strstr(text, "no post builds for 'main'") != NULL)
        fail_msg("history --config long printed nothing:\n%s", text);
    free(text);
}

/* Without configurations at level post nothing is built, and run --once ends as before. */
static void test_no_post_configuration(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    long long id = fx_submit(g, "a", 0);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_LANDED);
    gate_close(g);
    gate_post_row h[4];
    assert_int_equal(history(h, 4, NULL), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM post_commits WHERE target = ?", "main"), 2);
}

#if KEEL_DEVEL /* the crash points are stress points: devel builds only */
/*
 * kill -9 (gate.post_after_result) after a newer commit (c2) passed 'long'
 * while an older one's (c1's) build ran: the next run does not build c1
 * again (superseded, as a pending row would have been at c2's pass, and as
 * a build cancelled for the queue is).  It built it, and c1's failure came
 * after the newer pass (no search: 94c657e, but a build for nothing).  No
 * waiting on time: c1 (`late`) marks its first start and waits (the gate dies
 * meanwhile, the next run kills it), c2 waits for that mark.
 */
static void test_killed_after_a_newer_pass(void **state)
{
    (void)state;
    git_oid with, c1, c2;
    fx_setup_hold(2, "post", 1, FX_HOLD_LATE_C1, &with);
    (void)fx_run_once(); /* the tip passes 'long' */
    fx_push("late", "1\n", &c1);
    const fx_file f2[] = {{"late", NULL}, {"c2.txt", "2\n"}};
    fx_commit(&c1, f2, 2, "main", &c2);
    fx_run_until_killed("gate.post_after_result:nth=1"); /* c2's pass recorded, c1 running */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM post_results WHERE state = ?", "running"), 1);
    (void)fx_run_once();
    gate_post_row h[4];
    assert_int_equal(history(h, 4, "long"), 3);
    assert_row(&h[0], &c2, "passed");
    assert_row(&h[1], &c1, "not run");
    assert_string_equal(h[1].state, "skipped");
    assert_row(&h[2], &with, "passed");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = ?", "post-failed"), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM culprit_searches WHERE config = ?", "long"),
                     0);
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_post_builds_what_reaches_the_target, fx_teardown),
        cmocka_unit_test_teardown(test_no_post_configuration, fx_teardown),
#if KEEL_DEVEL
        cmocka_unit_test_teardown(test_killed_after_a_newer_pass, fx_teardown),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
