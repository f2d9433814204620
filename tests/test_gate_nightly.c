/*
 * test_gate_nightly.c - the nightly level (gate/levels/nightly.c) on real
 * repositories and processes: a configuration at level nightly is scheduled
 * when a gate first sees it (for its next time, not at once), `keel-gate
 * nightly --now` makes it due, the gate builds the target's head with it
 * (and the queue runs only the gate's configurations), a failure is told
 * once, a pass after it too, and a build a killed gate left running is built
 * again.  A tier-1 failure is searched for its culprit at level nightly,
 * which is backed out through the gate, once across kill -9.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "gate_fixture.h"
#include "backout.h"
#include "store_culprit.h"
#include "store_nightly.h"

static size_t history(gate_nightly_row *rows, size_t max)
{
    gate_store *st = NULL;
    fx_ok(gate_store_open(fx_state, &st));
    size_t n = 0;
    fx_ok(gate_store_nightly_history(st, "main", NULL, rows, max, &n));
    gate_store_close(st);
    return n;
}

enum cli_cmd { CLI_NIGHTLY, CLI_CULPRIT, CLI_HISTORY };

/*
 * The output (free it) of keel-gate nightly [--now], keel-gate culprit long
 * [--json], or keel-gate history [--json] and history --config long --json.
 */
static char *cli(enum cli_cmd cmd, bool flag)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    gate *g = fx_open();
    if (cmd == CLI_NIGHTLY) {
        fx_ok(gate_nightly_cmd(g, flag, f));
    } else if (cmd == CLI_CULPRIT) {
        fx_ok(gate_culprit_show(g, "long", f, flag));
    } else {
        fx_ok(gate_history(g, NULL, f, flag ? GATE_HISTORY_JSON : 0));
        fx_ok(gate_history(g, "long", f, GATE_HISTORY_JSON));
    }
    gate_close(g);
    assert_int_equal(fclose(f), 0);
    return text;
}

static char *nightly(bool now)
{
    return cli(CLI_NIGHTLY, now);
}

static void assert_run(const gate_nightly_row *r, const git_oid *commit, const char *outcome)
{
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), commit);
    assert_string_equal(r->commit, hex);
    assert_string_equal(r->config, "long");
    if (strcmp(gate_nightly_outcome(r), outcome) != 0)
        fail_msg("%.12s: '%s', not '%s'", r->commit, gate_nightly_outcome(r), outcome);
}

static long long events(const char *kind)
{
    return fx_sql_int("SELECT count(*) FROM events WHERE kind = ?", kind);
}

static void test_nightly_builds_the_head_when_due(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial\nslots = 1",
                  "[config long]\ntest = test ! -e nightlybad\nlevels = nightly\n"
                  "schedule = 0 3 * * *\njitter = 10m\ntimeout = 30\n");
    /* first seen: scheduled for its next 03:00 UTC (+ up to 10 min), nothing built now */
    long long before = (long long)time(NULL);
    (void)fx_run_once();
    gate_nightly_row h[8];
    assert_int_equal(history(h, 8), 0);
    long long due = fx_sql_int("SELECT next_due FROM nightly_schedule WHERE config = ?", "long");
    assert_true(due > before && due <= before + 86400 + 600);
    assert_true((due % 86400) >= 3LL * 3600 && (due % 86400) < 3 * 3600 + 600);
    char *text = nightly(false);
    if (strstr(text, "long: schedule '0 3 * * *' (UTC), jitter 600 s; next due ") == NULL ||
        strstr(text, "no run yet") == NULL)
        fail_msg("nightly:\n%s", text);
    free(text);

    /* --now: the next run builds main's head with it; the queue's jobs never ran it */
    text = nightly(true);
    assert_non_null(strstr(text, "1 nightly configuration of 'main' due now"));
    free(text);
    (void)fx_run_once();
    assert_int_equal(history(h, 8), 1);
    assert_run(&h[0], &fx_base, "passed");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE config = ?", "long"), 0);
    long long next = fx_sql_int("SELECT next_due FROM nightly_schedule WHERE config = ?", "long");
    assert_true(next > (long long)time(NULL) - 5);
    /* not due again: another run builds nothing */
    (void)fx_run_once();
    assert_int_equal(history(h, 8), 1);
    /* its time came (while no gate ran): one run, keyed by that time, and the next time set */
    gate *g = fx_open();
    fx_ok(gate_store_nightly_set_due(gate_get_store(g), "main", "long", 1000));
    gate_close(g);
    (void)fx_run_once();
    assert_int_equal(history(h, 8), 2);
    assert_run(&h[1], &fx_base, "passed");
    assert_int_equal(h[1].due_at, 1000);
    assert_true(fx_sql_int("SELECT next_due FROM nightly_schedule WHERE config = ?", "long") >
                (long long)time(NULL));
    (void)fx_run_once();
    assert_int_equal(history(h, 8), 2);

    /* broken on main (pushed around the gate): failed, told once */
    git_oid bad, bad2;
    fx_push("nightlybad", "x\n", &bad);
    free(nightly(true));
    (void)fx_run_once();
    assert_int_equal(history(h, 8), 3);
    assert_run(&h[0], &bad, "failed");
    assert_int_equal(events("nightly-failed"), 1);
    fx_push("other.txt", "y\n", &bad2);
    free(nightly(true));
    (void)fx_run_once();
    assert_int_equal(history(h, 8), 4);
    assert_run(&h[0], &bad2, "failed");
    assert_int_equal(events("nightly-failed"), 1); /* the same failure */

    /* mended: passed, told */
    git_oid fix;
    fx_push("nightlybad", NULL, &fix);
    free(nightly(true));
    (void)fx_run_once();
    assert_int_equal(history(h, 8), 5);
    assert_run(&h[0], &fix, "passed");
    assert_int_equal(events("nightly-passed"), 1);
    text = nightly(false);
    char want[64], hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &bad);
    (void)snprintf(want, sizeof(want), "%.12s  failed", hex);
    if (strstr(text, want) == NULL)
        fail_msg("nightly:\n%s", text);
    free(text);

    /* a run a killed gate left running (its row says so) is built again, once */
    free(nightly(true));
    assert_int_equal(history(h, 8), 6);
    assert_string_equal(h[0].state, "pending");
    g = fx_open();
    fx_ok(gate_store_nightly_start(gate_get_store(g), "main", "long", h[0].due_at,
                                   (long long)time(NULL)));
    gate_close(g);
    (void)fx_run_once();
    assert_int_equal(history(h, 8), 6);
    assert_run(&h[0], &fix, "passed");
    assert_int_equal(h[0].runs, 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM nightly_runs WHERE state != ?", "done"), 0);
}

/* Nothing at level nightly: --now says so; a gate without one runs as before. */
static void test_no_nightly_configuration(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    gate *g = fx_open();
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    keel_status s = gate_nightly_cmd(g, true, f);
    (void)fclose(f);
    gate_close(g);
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND));
    assert_non_null(strstr(keel_status_message(s), "no configuration at level nightly"));
    keel_status_free(s);
    (void)fx_run_once();
    assert_int_equal(fx_sql_int("SELECT count(*) FROM nightly_schedule WHERE config != ?", ""), 0);
}

/* The newest culprit search of 'long' (found: false when none). */
static gate_search_row newest_search(bool *found)
{
    gate_store *st = NULL;
    fx_ok(gate_store_open(fx_state, &st));
    gate_search_row row;
    memset(&row, 0, sizeof(row));
    fx_ok(gate_store_search_newest(st, "main", "long", &row, found));
    gate_store_close(st);
    return row;
}

static const char nightly_tier1[] = "[config long]\ntest = test ! -e nightlybad\nlevels = "
                                    "nightly\ntier = 1\ntimeout = 30\n";

/*
 * A nightly run of main passes; `n` commits are pushed around the gate, the
 * `bad`th (1-based) adding `nightlybad`, which breaks only the nightly
 * configuration; a nightly run is made due (keel-gate nightly --now).
 */
static const char *nightly_gate = "strategy = serial\nsandbox = none"; /* [gate]'s lines */

static void nightly_broken_range(unsigned n, unsigned bad, git_oid *c)
{
    fx_setup_repo(nightly_gate, nightly_tier1);
    (void)fx_run_once(); /* scheduled */
    free(nightly(true));
    (void)fx_run_once(); /* the base passes */
    for (unsigned i = 1; i <= n; i++) {
        char path[32], content[32];
        (void)snprintf(path, sizeof(path), i == bad ? "nightlybad" : "c%u.txt", i);
        (void)snprintf(content, sizeof(content), "%u\n", i);
        fx_push(path, content, &c[i - 1]);
    }
    free(nightly(true));
}

/* The search of 'long' verified c (at level nightly), backed out once through the gate. */
static void assert_backed_out(const git_oid *c)
{
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), c);
    bool found = false;
    gate_search_row row = newest_search(&found);
    assert_true(found);
    if (strcmp(row.state, "verified") != 0 || strcmp(row.culprit, hex) != 0)
        fail_msg("search %lld: %s %.12s, not verified %.12s\n%s", row.id, row.state, row.culprit,
                 hex, row.evidence);
    assert_string_equal(row.level, "nightly");
    assert_true(row.handed);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM culprit_searches WHERE config = ?", "long"),
                     1);
    assert_int_equal(events("culprit-verified"), 1);
    /* its builds were of the nightly configuration: no post row was made for them */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM post_results WHERE config = ?", "long"), 0);
    /* reverted through the gate, once: a change of the queue that landed */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM backouts WHERE culprit = ?", hex), 1);
    if (fx_sql_int("SELECT count(*) FROM backouts WHERE state = ?", "landed") != 1) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_open(fx_state, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT state || ' ' || rail || ': ' || reason "
                                            "FROM backouts",
                                            -1, &st, NULL),
                         SQLITE_OK);
        char why[1024] = "no backout";
        if (sqlite3_step(st) == SQLITE_ROW)
            (void)snprintf(why, sizeof(why), "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(db);
        fail_msg("not backed out: %s", why);
    }
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE branch LIKE ? AND state = "
                                "'landed'",
                                "keel-gate/backout/%"),
                     1);
    assert_int_equal(events("backout-landed"), 1);
    git_oid tip;
    fx_head("main", &tip);
    assert_false(fx_has_at(&tip, "nightlybad")); /* gone */
}

/*
 * A commit that breaks only a nightly configuration (tier 1): the failing
 * nightly run starts a culprit search at level nightly over the range since
 * the last nightly pass; it is found, verified, reverted through the gate,
 * and the next nightly run passes.  keel-gate culprit says the level.
 */
static void test_nightly_failure_searched_and_backed_out(void **state)
{
    (void)state;
    git_oid c[6];
    nightly_broken_range(6, 3, c);
    (void)fx_run_once();
    assert_backed_out(&c[2]);
    bool found = false;
    gate_search_row row = newest_search(&found);
    assert_int_equal(row.n, 6);
    char *text = cli(CLI_CULPRIT, false);
    if (strstr(text, "failed at level nightly): verified") == NULL)
        fail_msg("keel-gate culprit long:\n%s", text);
    free(text);
    text = cli(CLI_CULPRIT, true);
    assert_non_null(strstr(text, "\"level\":\"nightly\""));
    free(text);
    /* main is green again at the nightly level */
    free(nightly(true));
    (void)fx_run_once();
    gate_nightly_row h[8];
    assert_true(history(h, 8) >= 3);
    assert_string_equal(gate_nightly_outcome(&h[0]), "passed");
    assert_int_equal(events("nightly-passed"), 1);
    /* keel-gate history: the nightly runs, a row each (none at level post: no post table) */
    char *out = cli(CLI_HISTORY, false);
    char hex[GIT_OID_HEXSZ + 1], want[128];
    git_oid_tostr(hex, sizeof(hex), &c[5]);
    (void)snprintf(want, sizeof(want), "%.12s  long           failed", hex);
    if (strstr(out, "nightly runs (newest first):") == NULL || strstr(out, want) == NULL ||
        strstr(out, "no post builds") != NULL)
        fail_msg("history:\n%s", out);
    (void)snprintf(want, sizeof(want), "{\"commit\":\"%s\",\"config\":\"long\",\"due_at\":", hex);
    if (strstr(out, "\"nightly\":[{") == NULL || strstr(out, want) == NULL ||
        strstr(out, "\"result\":\"failed\"") == NULL)
        fail_msg("history --json:\n%s", out);
    free(out);
}

/* Does the queue hold (hold-when-red)?  *why: why. */
static bool held(char *why, size_t size)
{
    gate *g = fx_open();
    bool hold = false;
    fx_ok(gate_backout_hold(g, &hold, why, size));
    gate_close(g);
    return hold;
}

/*
 * Branch `feature` submitted (when *id is 0: *id its change), then
 * keel-gate run --once: the change's state.
 */
static gate_change_state feature_after_a_run(long long *id)
{
    if (*id == 0) {
        fx_branch("feature", "feature.txt", "f\n");
        gate *g = fx_open();
        *id = fx_submit(g, "feature", 0);
        gate_close(g);
    }
    (void)fx_run_once();
    gate *g = fx_open();
    gate_change_state st = fx_state_of(g, *id);
    gate_close(g);
    return st;
}

/*
 * hold-when-red and a tier-1 configuration built only at nightly: its run
 * fails with no culprit known (no nightly pass before it: nothing to
 * search), and a change submitted is held, not tested on the broken base;
 * a fix pushed around the gate and a nightly run that passes: it resumes and
 * the change lands.  (Before, only post configurations held the queue.)
 */
static void test_nightly_red_holds_the_queue(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial\nsandbox = none\nhold-when-red = yes", nightly_tier1);
    (void)fx_run_once(); /* scheduled */
    git_oid bad, fix;
    fx_push("nightlybad", "x\n", &bad);
    free(nightly(true));
    (void)fx_run_once();
    gate_nightly_row h[4];
    assert_int_equal(history(h, 4), 1);
    assert_run(&h[0], &bad, "failed");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM culprit_searches WHERE config = ?", "long"),
                     0);
    long long id = 0;
    assert_int_equal(feature_after_a_run(&id), GATE_CHANGE_QUEUED); /* held: not on red */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE config = ?", "unit"), 0);
    char why[GATE_REASON_MAX];
    assert_true(held(why, sizeof(why)));
    if (strstr(why, "configuration 'long' is red on 'main' at level nightly") == NULL)
        fail_msg("why: %s", why);
    fx_push("nightlybad", NULL, &fix); /* a person's fix, around the gate */
    free(nightly(true));
    (void)fx_run_once(); /* the nightly run passes: green, and the queue resumes */
    assert_false(held(why, sizeof(why)));
    assert_int_equal(feature_after_a_run(&id), GATE_CHANGE_LANDED);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM backouts", NULL), 0);
}

/*
 * hold-when-red: a nightly failure's culprit found and backed out through the
 * gate; the configuration's newest nightly run is still the red one (the
 * next is not due), but the backout landed on top of it: the queue does not
 * hold, and a change submitted lands.
 */
static void test_nightly_backout_resumes_the_queue(void **state)
{
    (void)state;
    git_oid c[4];
    nightly_gate = "strategy = serial\nsandbox = none\nhold-when-red = yes";
    nightly_broken_range(4, 2, c);
    nightly_gate = "strategy = serial\nsandbox = none";
    (void)fx_run_once();
    assert_backed_out(&c[1]);
    gate_nightly_row h[4];
    assert_true(history(h, 4) >= 2);
    assert_string_equal(gate_nightly_outcome(&h[0]), "failed"); /* the newest: still red */
    char why[GATE_REASON_MAX] = "";
    if (held(why, sizeof(why)))
        fail_msg("held after the backout landed: %s", why);
    long long id = 0;
    assert_int_equal(feature_after_a_run(&id), GATE_CHANGE_LANDED);
}

/*
 * Nightly runs end in any order: an older run (X, of c4, inside the range the
 * newer failure's search verified) that fails after a newer run passed (N, of
 * the fix) is history: no nightly-failed, no second search.  It started one
 * (`was` the newest result, N's pass, not the one before X's run) over the
 * range up to c4, verified c3 again and told culprit-verified twice.  No
 * waiting on time: X (`late`) marks its first start and waits for the test's
 * release, given once N passed; F (c6) and the search's builds of the broken
 * commits wait for X's first start; N (c7: c6.txt, no `nightlybad`) waits for
 * the test's mark given once the search verified.  Tier 2: no revert through
 * the queue, whose work would cancel X and N.
 */
static void test_older_nightly_failure_after_a_pass(void **state)
{
    (void)state;
    const char script[] = FX_HOLD_LATE_ONCE "elif test -e nightlybad; then wait_for once\n"
                                            "elif test -e c6.txt; then wait_for verified\n"
                                            "fi\n"
                                            "test ! -e nightlybad\n";
    git_oid with;
    fx_setup_hold(4, "nightly", 2, script, &with);
    (void)fx_run_once(); /* scheduled */
    free(nightly(true));
    (void)fx_run_once(); /* the base passes */
    git_oid c[7];
    fx_push("c1.txt", "1\n", &c[0]);
    fx_push("c2.txt", "2\n", &c[1]);
    fx_push("nightlybad", "3\n", &c[2]); /* the culprit */
    fx_push("late", "4\n", &c[3]);
    free(nightly(true)); /* X, of c4 */
    fx_push("late", NULL, &c[4]);
    fx_push("c6.txt", "6\n", &c[5]);
    free(nightly(true)); /* F, of c6 */
    fx_push("nightlybad", NULL, &c[6]);
    free(nightly(true)); /* N, of c7: the fix */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fx_run_once_thread, NULL), 0);
    fx_mark_after_event("culprit-verified", "verified"); /* F failed: its search verified c3 */
    fx_mark_after_event("nightly-passed", "release");    /* N passed: X may fail now */
    assert_int_equal(pthread_join(t, NULL), 0);
    gate_nightly_row h[8];
    assert_int_equal(history(h, 8), 4);
    assert_run(&h[0], &c[6], "passed");
    assert_run(&h[1], &c[5], "failed");
    assert_run(&h[2], &c[3], "failed"); /* X: in the history, late */
    /* one search (F's, over 6 commits), told once; one failure told, one pass */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM culprit_searches WHERE config = ?", "long"),
                     1);
    bool found = false;
    gate_search_row row = newest_search(&found);
    assert_true(found);
    assert_int_equal(row.n, 6);
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &c[2]);
    assert_string_equal(row.state, "verified");
    assert_string_equal(row.culprit, hex);
    assert_int_equal(events("culprit-verified"), 1);
    assert_int_equal(events("nightly-failed"), 1);
    assert_int_equal(events("nightly-passed"), 1);
}

#if KEEL_DEVEL /* the crash points are stress points: devel builds only */
/* kill -9 in the middle of a nightly search, and after its revert is submitted: no second. */
static void test_nightly_search_killed(void **state)
{
    (void)state;
    static const char *const specs[] = {"gate.search_after_start:nth=2",
                                        "gate.backout_after_submit:nth=1"};
    for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++) {
        git_oid c[4];
        nightly_broken_range(4, 2, c);
        fx_crash_spec = specs[k];
        char err[4096];
        int status = keel_test_run_child(fx_crashing_run, err, sizeof(err));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
            fail_msg("%s: the gate should have died (status %d): %s", specs[k], status, err);
        (void)fx_run_once();
        assert_backed_out(&c[1]);
        assert_int_equal(
            fx_sql_int("SELECT count(*) FROM culprit_builds WHERE state = ?", "running"), 0);
        fx_teardown_repo();
    }
}

/*
 * kill -9 (gate.nightly_after_result) after a newer run (N, of c2) passed
 * while an older one's (X, of c1) build ran: the next run does not build X
 * again (superseded: a newer run's end drops the older pending runs, and a
 * cancelled one).  It built it, and X's failure after N's pass was told
 * (nightly-failed) and searched (1 commit, c1) on the old nightly.c; no
 * search now (test_older_nightly_failure_after_a_pass), but a build for
 * nothing.  No waiting on time: FX_HOLD_LATE_C1.
 */
static void test_nightly_killed_after_a_newer_run(void **state)
{
    (void)state;
    git_oid with, c1, c2;
    fx_setup_hold(2, "nightly", 2, FX_HOLD_LATE_C1, &with);
    (void)fx_run_once(); /* scheduled */
    free(nightly(true));
    (void)fx_run_once(); /* the base passes */
    fx_push("late", "1\n", &c1);
    free(nightly(true)); /* X, of c1 */
    const fx_file f2[] = {{"late", NULL}, {"c2.txt", "2\n"}};
    fx_commit(&c1, f2, 2, "main", &c2);
    free(nightly(true));                                    /* N, of c2 */
    fx_run_until_killed("gate.nightly_after_result:nth=1"); /* N passed, X running */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM nightly_runs WHERE state = ?", "running"), 1);
    (void)fx_run_once();
    gate_nightly_row h[4];
    assert_int_equal(history(h, 4), 2);
    assert_run(&h[0], &c2, "passed");
    assert_run(&h[1], &with, "passed");
    assert_int_equal(events("nightly-failed"), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM culprit_searches WHERE config = ?", "long"),
                     0);
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_nightly_builds_the_head_when_due, fx_teardown),
        cmocka_unit_test_teardown(test_no_nightly_configuration, fx_teardown),
        cmocka_unit_test_teardown(test_nightly_failure_searched_and_backed_out, fx_teardown),
        cmocka_unit_test_teardown(test_nightly_red_holds_the_queue, fx_teardown),
        cmocka_unit_test_teardown(test_nightly_backout_resumes_the_queue, fx_teardown),
        cmocka_unit_test_teardown(test_older_nightly_failure_after_a_pass, fx_teardown),
#if KEEL_DEVEL
        cmocka_unit_test_teardown(test_nightly_search_killed, fx_teardown),
        cmocka_unit_test_teardown(test_nightly_killed_after_a_newer_run, fx_teardown),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
