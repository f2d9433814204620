/*
 * test_gate_nightly.c - the nightly level (gate/levels/nightly.c) on real
 * repositories and processes: a configuration at level nightly is scheduled
 * when a gate first sees it (for its next time, not at once), `keel-gate
 * nightly --now` makes it due, the gate builds the target's head with it
 * (and the queue runs only the gate's configurations), a failure is told
 * once, a pass after it too, and a build a killed gate left running is built
 * again.
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

/* keel-gate nightly [--now]: its output (free it). */
static char *nightly(bool now)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    gate *g = fx_open();
    fx_ok(gate_nightly_cmd(g, now, f));
    gate_close(g);
    assert_int_equal(fclose(f), 0);
    return text;
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
    assert_true((due % 86400) >= 3 * 3600 && (due % 86400) < 3 * 3600 + 600);
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

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_nightly_builds_the_head_when_due, fx_teardown),
        cmocka_unit_test_teardown(test_no_nightly_configuration, fx_teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
