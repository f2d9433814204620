/*
 * test_gate_flake.c - keel-gate's flake verdicts end to end, on real
 * repositories, processes and stores: verdicts per configuration (a retry
 * runs only what failed), a change rejected only on its own failure alone on
 * the tip, a failure that ends the same way twice not run again, failures
 * that end differently run again, an ending seen to flake known after a
 * restart.
 *
 * The jobs flake deterministically: ci.sh counts its runs per configuration
 * in the shared writable directory and fails the runs a pattern names
 * ("unit:1|b:2": unit's first run, b's second), whatever tree it runs on.
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
#include "signature.h"

/*
 * main gets a configuration of two required configurations, unit and b, each
 * running `sh ci.sh <name>`, with `gate_lines` in [gate]; ci.sh fails the
 * runs `flakes` names (a case pattern of <config>:<run>), printing `why`
 * (a shell word; $n is the run), and fails where a file "bad" exists.  Each
 * '@' in `gate_lines` is the test's directory.
 */
static void setup_two_configs(const char *gate_lines, const char *flakes, const char *why)
{
    fx_setup_repo("", "");
    char conf[2048], ci[1024], lines[512];
    size_t k = 0;
    for (const char *p = gate_lines; *p != '\0' && k + sizeof(fx_dir) < sizeof(lines); p++)
        if (*p == '@')
            k += (size_t)snprintf(lines + k, sizeof(lines) - k, "%s", fx_dir);
        else
            lines[k++] = *p;
    lines[k] = '\0';
    (void)snprintf(conf, sizeof(conf),
                   "[gate]\ntarget = main\nslots = 2\n%s\n"
                   "[config unit]\ntest = sh ci.sh unit\nenv = MARKER=%s/marker\ntimeout = 30\n"
                   "writable = %s\n"
                   "[config b]\ntest = sh ci.sh b\nenv = MARKER=%s/marker\ntimeout = 30\n"
                   "writable = %s\n",
                   lines, fx_shared, fx_shared, fx_shared, fx_shared);
    (void)snprintf(ci, sizeof(ci),
                   "n=$(cat \"$MARKER.$1\" 2>/dev/null || echo 0)\n"
                   "n=$((n + 1))\n"
                   "echo $n > \"$MARKER.$1\"\n"
                   "case \"$1:$n\" in %s) echo \"%s\"; exit 1;; esac\n"
                   "if [ -e bad ]; then echo 'the check failed: bad'; exit 1; fi\n",
                   flakes, why);
    const fx_file f[] = {{".keel/gate.conf", conf}, {"ci.sh", ci}};
    git_oid oid;
    fx_commit(&fx_base, f, 2, "main", &oid);
    fx_base = oid; /* branches start here */
}

/* Runs of configuration `config` (its counter in the shared directory). */
static int runs_of(const char *config)
{
    char path[256], suffix[16];
    (void)snprintf(suffix, sizeof(suffix), ".%s", config);
    fx_marker(path, sizeof(path), suffix);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[32] = "";
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    (void)fclose(f);
    char *end = NULL;
    long n = strtol(line, &end, 10);
    return end != line ? (int)n : -1;
}

/* Candidates that built change `id` alone (and ran a job). */
static long long built_alone(long long id)
{
    char sql[512];
    (void)snprintf(sql, sizeof(sql),
                   "SELECT count(*) FROM candidates c WHERE (SELECT count(*) FROM "
                   "candidate_changes WHERE candidate = c.id) = 1 AND EXISTS (SELECT 1 FROM "
                   "candidate_changes WHERE candidate = c.id AND change = %lld) AND EXISTS "
                   "(SELECT 1 FROM jobs WHERE jobs.candidate = c.id)",
                   id);
    return fx_sql_int(sql, NULL);
}

static void assert_reason_has(gate *g, long long id, const char *what)
{
    gate_change c;
    fx_ok(gate_store_get(gate_get_store(g), id, &c));
    if (strstr(c.reason, what) == NULL)
        fail_msg("change %lld is %s, '%s' is not in its reason: %s", id,
                 gate_change_state_name(c.state), what, c.reason);
}

/* Branch `branch` setting `path` to `content` on main, queued: its change's id. */
static long long queue_change(const char *branch, const char *path, const char *content)
{
    fx_branch(branch, path, content);
    gate *g = fx_open();
    long long id = fx_submit(g, branch, 0);
    gate_close(g);
    return id;
}

/* Change `id` (branch `branch`) landed; its reason when it did not. */
static void assert_landed(long long id, const char *branch)
{
    gate *g = fx_open();
    gate_change c;
    fx_ok(gate_store_get(gate_get_store(g), id, &c));
    gate_close(g);
    if (c.state != GATE_CHANGE_LANDED)
        fail_msg("change '%s' is %s: %s", branch, gate_change_state_name(c.state), c.reason);
}

/*
 * setup_two_configs(gate_lines, flakes, why), then good changes one and two
 * queued in that order (*one, *two) and run --once: both must land.
 */
static gate_run_stats one_and_two_land(const char *gate_lines, const char *flakes, const char *why,
                                       long long *one, long long *two)
{
    setup_two_configs(gate_lines, flakes, why);
    fx_branch("one", "one.txt", "1\n");
    fx_branch("two", "two.txt", "2\n");
    gate *g = fx_open();
    *one = fx_submit(g, "one", 0);
    *two = fx_submit(g, "two", 0);
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_landed(*two, "two");
    assert_landed(*one, "one");
    return st;
}

/*
 * The user's case: retries = 1, a batch of two good changes; unit fails its
 * first run, b its second (each a one-time flake).  The retry runs unit
 * alone, which passes: both land in that candidate, nothing is bisected.
 * (Before, the retry ran the whole matrix, b failed there, the batch was
 * bisected and the second change rejected without ever being built alone.)
 */
static void test_flakes_on_two_configurations(void **state)
{
    (void)state;
    long long one = 0, two = 0;
    gate_run_stats st = one_and_two_land("strategy = batch\nmax-batch = 2\nretries = 1",
                                         "unit:1|b:2", "flake $n", &one, &two);
    assert_int_equal(st.landed, 2);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.flakes, 1);
    assert_int_equal(st.builds, 2);
    /* the retry ran only the configuration that failed */
    assert_int_equal(runs_of("unit"), 2);
    assert_int_equal(runs_of("b"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs", NULL), 3);
    assert_int_equal(fx_times_landed("one"), 1);
    assert_int_equal(fx_times_landed("two"), 1);
    fx_assert_tip_tested();
}

/*
 * A bad change in a batch: bisection lands the good one, then builds the bad
 * one alone on the tip, where its failure repeats; the reason gives both.
 */
static void test_bisection_blames_only_after_alone(void **state)
{
    (void)state;
    setup_two_configs("strategy = batch\nmax-batch = 2\nretries = 1", "none", "-");
    fx_branch("good", "good.txt", "good\n");
    fx_branch("broken", "bad", "bad\n");
    gate *g = fx_open();
    long long good = fx_submit(g, "good", 0), broken = fx_submit(g, "broken", 0);
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 1);
    assert_int_equal(st.rejected, 1);
    g = fx_open();
    assert_int_equal(fx_state_of(g, good), GATE_CHANGE_LANDED);
    assert_int_equal(fx_state_of(g, broken), GATE_CHANGE_REJECTED);
    /* both configurations fail for good: the one whose second failure came first decides */
    assert_reason_has(g, broken, "isolated by bisection from a batch of 2 (which failed on '");
    assert_reason_has(g, broken, "', 2 of 2 runs), then configuration '");
    assert_reason_has(g, broken, "' failed (exit 1, log ");
    assert_reason_has(g, broken, "/logs/job-");
    assert_reason_has(g, broken,
                      "), alone on the tip in 2 of 2 runs, the same way twice (not a "
                      "flake: not run again)");
    gate_close(g);
    assert_true(built_alone(broken) >= 1);
    fx_assert_tip_tested();
}

/*
 * retries = 3, a change that fails the same way every time: the second
 * failure ends with the same lines as the first, so it is not a flake and is
 * not run again (2 runs, not 4), and the reason says so.
 */
static void test_same_failure_not_retried(void **state)
{
    (void)state;
    setup_two_configs("strategy = serial\nretries = 3", "none", "-");
    long long broken = queue_change("broken", "bad", "bad\n");
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.builds, 2);
    assert_int_equal(runs_of("unit"), 2);
    assert_int_equal(runs_of("b"), 2);
    gate *g = fx_open();
    assert_int_equal(fx_state_of(g, broken), GATE_CHANGE_REJECTED);
    /* both configurations fail for good: the one whose second failure came first decides */
    gate_change c;
    fx_ok(gate_store_get(gate_get_store(g), broken, &c));
    if (strstr(c.reason, "configuration 'unit' failed (exit 1, log ") == NULL &&
        strstr(c.reason, "configuration 'b' failed (exit 1, log ") == NULL)
        fail_msg("no failing configuration in the reason: %s", c.reason);
    assert_reason_has(g, broken,
                      "), alone on the tip in 2 of 2 runs, the same way twice (not a "
                      "flake: not run again)");
    gate_close(g);
}

/*
 * retries = 1, a change whose configuration fails twice, each time
 * differently (suspect flakes): it earns another run, passes there and lands.
 */
static void test_different_failures_run_again(void **state)
{
    (void)state;
    setup_two_configs("strategy = serial\nretries = 1", "unit:1|unit:2",
                      "$(if [ $n = 1 ]; then echo lost connection; else echo disk quota; fi)");
    long long topic = queue_change("topic", "topic.txt", "t\n");
    gate_run_stats st = fx_run_once();
    assert_landed(topic, "topic");
    assert_int_equal(st.flakes, 1);
    assert_int_equal(runs_of("unit"), 3);
    assert_int_equal(runs_of("b"), 1);
    fx_assert_tip_tested();
}

/*
 * flaky-alike = 3: a configuration seen to flake needs a third failure
 * alike.  One's unit fails its first run ("timeout") and passes its retry, a
 * flake; two's unit then fails twice with another ending ("disk quota"), as
 * a flaky test does now and then, and passes its third run: two lands.
 * Without the setting (2) two is rejected "the same way twice" (session 28:
 * the inih replay at 20% flakes rejected a good change so, its flaky test's
 * two runs both ending 'flush').
 */
static void test_flaky_configuration_needs_three_alike(void **state)
{
    (void)state;
    long long one = 0, two = 0;
    gate_run_stats st = one_and_two_land(
        "strategy = serial\nretries = 1\nflaky-alike = 3", "unit:1|unit:3|unit:4",
        "$(if [ $n = 1 ]; then echo timeout; else echo disk quota; fi)", &one, &two);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.flakes, 2);
    assert_int_equal(runs_of("unit"), 5);
    assert_int_equal(runs_of("b"), 2);
    fx_assert_tip_tested();
}

/*
 * The endings a configuration flaked with outlive `run` (the store keeps
 * them: store_flaky.c).  A first run: unit fails its first run ("flaky
 * ending"), passes its retry: a flake, and its ending is kept.  A second
 * run, a new gate and scheduler over the same store: a good change whose
 * unit fails twice with that same ending is run again (suspect flakes), and
 * lands on unit's fifth run.  The old gate forgot the ending when run
 * started again and rejected the change "the same way twice (not a flake)"
 * after unit's fourth run.
 */
static void test_flaky_ending_survives_restart(void **state)
{
    (void)state;
    setup_two_configs("strategy = serial\nretries = 1", "unit:1|unit:3|unit:4", "flaky ending");
    for (int run = 1; run <= 2; run++) { /* a change each, a run of its own each */
        const char *branch = run == 1 ? "one" : "two";
        long long id = queue_change(branch, run == 1 ? "one.txt" : "two.txt", "x\n");
        gate_run_stats st = fx_run_once();
        assert_landed(id, branch);
        assert_int_equal(st.rejected, 0);
        assert_int_equal(st.flakes, 1);
        if (run == 2)
            break;
        assert_int_equal(runs_of("unit"), 2);
        assert_int_equal(fx_sql_int("SELECT count(*) FROM flaky_endings WHERE target = 'main' "
                                    "AND config = 'unit' AND signature <> 0",
                                    NULL),
                         1);
        assert_int_equal(fx_sql_int("SELECT count(*) FROM flaky_endings", NULL), 1);
    }
    /* the second: unit failed twice with the first's ending, then passed */
    assert_int_equal(runs_of("unit"), 5);
    assert_int_equal(runs_of("b"), 2);
    /* the same ending seen again: still one row */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM flaky_endings", NULL), 1);
    assert_int_equal(fx_times_landed("one"), 1);
    assert_int_equal(fx_times_landed("two"), 1);
    fx_assert_tip_tested();
}

/*
 * A rejection taken back (scheduler.h, Rejections taken back): retries = 1,
 * serial; one's unit fails twice with "flaky ending" (its first two runs):
 * rejected, the same way twice.  Two's unit fails its third run with that
 * ending, then passes: a flake's ending, so one's rejection rested on a
 * flake.  One is reopened (a "reopened" event naming both failures, queued
 * again in the same run), and lands on unit's fifth run.  The old gate left
 * one rejected.
 */
static void test_rejection_on_a_flake_taken_back(void **state)
{
    (void)state;
    long long one = 0, two = 0;
    gate_run_stats st =
        one_and_two_land("strategy = serial\nretries = 1\nnotify = tee -a @/events.jsonl",
                         "unit:1|unit:2|unit:3", "flaky ending", &one, &two);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.reopened, 1);
    assert_int_equal(st.landed, 2);
    assert_int_equal(runs_of("unit"), 5);
    char sql[512];
    (void)snprintf(sql, sizeof(sql),
                   "SELECT count(*) FROM events WHERE kind = 'reopened' AND change = %lld AND "
                   "json_extract(detail, '$.config') = 'unit' AND json_extract(detail, "
                   "'$.flaked.config') = 'unit' AND json_extract(detail, '$.job') > 0 AND "
                   "json_extract(detail, '$.flaked.job') > json_extract(detail, '$.job') AND "
                   "length(json_extract(detail, '$.signature')) = 16",
                   one);
    assert_int_equal(fx_sql_int(sql, NULL), 1);
    /* rejected once, then reopened */
    (void)snprintf(sql, sizeof(sql),
                   "SELECT (SELECT count(*) FROM events WHERE change = %lld AND kind = "
                   "'rejected') = 1 AND (SELECT min(id) FROM events WHERE change = %lld AND kind = "
                   "'reopened') > (SELECT min(id) FROM events WHERE change = %lld AND kind = "
                   "'rejected')",
                   one, one, one);
    assert_int_equal(fx_sql_int(sql, NULL), 1);
    /* the hook heard of the rejection with its own reason, then of the reopening */
    char path[192], text[16384];
    (void)snprintf(path, sizeof(path), "%s/events.jsonl", fx_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    (void)fclose(f);
    text[len] = '\0';
    const char *rej = strstr(text, "\"event\":\"reject\",\"change\":1,");
    const char *reo = strstr(text, "\"event\":\"reopen\",\"change\":1,");
    assert_true(one == 1 && rej != NULL && reo != NULL && rej < reo);
    const char *line = strchr(rej, '\n');
    assert_true(line != NULL && line < reo);
    const char *why = strstr(rej, "the same way twice (not a flake: not run again)");
    assert_true(why != NULL && why < line);
    assert_non_null(strstr(reo, "\"merge\":\"\",\"reason\":\"reopened: it was rejected on "
                                "configuration 'unit'"));
    assert_int_equal(fx_times_landed("one"), 1);
    assert_int_equal(fx_times_landed("two"), 1);
    fx_assert_tip_tested();
}

/*
 * The same across runs: the first `run` rejects one (its unit fails twice
 * with "flaky ending") and keeps the rejection as watched (table
 * watched_rejections); the second, a new gate and scheduler over the same
 * store, sees two's unit fail with that ending and pass: it takes back one's
 * rejection, and one lands.  Without the store's row the second run left
 * one rejected.
 */
static void test_rejection_taken_back_by_a_later_run(void **state)
{
    (void)state;
    setup_two_configs("strategy = serial\nretries = 1", "unit:1|unit:2|unit:3", "flaky ending");
    long long one = queue_change("one", "one.txt", "1\n");
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.reopened, 0);
    char sql[160];
    (void)snprintf(sql, sizeof(sql),
                   "SELECT count(*) FROM watched_rejections WHERE change = %lld AND config = "
                   "'unit' AND target = 'main' AND signature <> 0",
                   one);
    assert_int_equal(fx_sql_int(sql, NULL), 1);
    long long two = queue_change("two", "two.txt", "2\n");
    st = fx_run_once();
    assert_landed(two, "two");
    assert_landed(one, "one");
    assert_int_equal(st.reopened, 1);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.landed, 2);
    assert_int_equal(runs_of("unit"), 5);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM watched_rejections", NULL), 0);
    assert_int_equal(fx_times_landed("one"), 1);
    fx_assert_tip_tested();
}

#if KEEL_DEVEL
/* run --once with stress point `point` failing its first call, which it must reach. */
static gate_run_stats run_once_failing(const char *point)
{
    keel_stress_stats before, after;
    fx_ok(keel_stress_get(point, &before));
    char spec[96];
    (void)snprintf(spec, sizeof(spec), "%s:nth=1", point);
    fx_ok(keel_stress_enable(spec));
    gate *g = fx_open();
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    gate_close(g);
    fx_ok(keel_stress_get(point, &after));
    keel_stress_clear();
    fx_ok(s);
    assert_int_equal(after.fires - before.fires, 1);
    return st;
}

/*
 * The write of a watched rejection fails (gate_store.watch_full:nth=1): the
 * run goes on (said, no gate-error), one is rejected and not kept as
 * watched, and the next run, not knowing of it, leaves it rejected when
 * two's flake shows its ending a flake's.
 */
static void test_watch_write_fails(void **state)
{
    (void)state;
    setup_two_configs("strategy = serial\nretries = 1", "unit:1|unit:2|unit:3", "flaky ending");
    long long one = queue_change("one", "one.txt", "1\n");
    gate_run_stats st = run_once_failing("gate_store.watch_full");
    assert_int_equal(st.rejected, 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'gate-error'", NULL), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM watched_rejections", NULL), 0);
    long long two = queue_change("two", "two.txt", "2\n");
    st = fx_run_once();
    assert_landed(two, "two");
    assert_int_equal(st.reopened, 0);
    gate *g = fx_open();
    assert_int_equal(fx_state_of(g, one), GATE_CHANGE_REJECTED);
    gate_close(g);
}

/*
 * The write of an ending fails once (gate_store.flaky_full:nth=1): the
 * gate's own failure (a gate-error event, a pause, the queue again from the
 * store), the change lands all the same, and the next turn writes the
 * ending, which the store holds at the end.
 */
static void test_flaky_ending_write_fails_tried_again(void **state)
{
    (void)state;
    setup_two_configs("strategy = serial\nretries = 1", "unit:1", "flaky ending");
    long long one = queue_change("one", "one.txt", "1\n");
    (void)run_once_failing("gate_store.flaky_full");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'gate-error'", NULL), 1);
    assert_landed(one, "one");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM flaky_endings WHERE config = 'unit'", NULL),
                     1);
}
#endif

/*
 * Signatures: what changes from run to run of one failure (paths, numbers,
 * times, addresses) does not count; another ending does; only the last
 * lines count; never 0.
 */
static void test_signature_normalised(void **state)
{
    (void)state;
    static const char a[] = "keel-gate: $ sh ci.sh unit\nbuilding 12 files\n"
                            "/tmp/keel-gaterun-Ab12/trees/0/t.c:41: assertion failed at 0x7ffd12\n"
                            "keel-gate: peak memory 900 KiB, cpu 3 ms\n"
                            "keel-gate: failed (exit 1) after 34 ms\n";
    static const char b[] =
        "keel-gate: $ sh ci.sh unit\nbuilding 13 files\n\n"
        "/var/tmp/keel-gaterun-Zz99/trees/3/t.c:41: assertion failed at 0x5a01\n"
        "keel-gate: peak memory 1024 KiB, cpu 0 ms\n"
        "keel-gate:   failed (exit 1) after 2 ms\n";
    static const char c[] = "keel-gate: $ sh ci.sh unit\nbuilding 12 files\n"
                            "/tmp/keel-gaterun-Ab12/trees/0/t.c:41: connection refused\n"
                            "keel-gate: peak memory 900 KiB, cpu 3 ms\n"
                            "keel-gate: failed (exit 1) after 34 ms\n";
    unsigned long long sa = gate_signature_of(a, strlen(a));
    assert_true(sa != 0);
    assert_true(sa == gate_signature_of(b, strlen(b)));
    assert_true(sa != gate_signature_of(c, strlen(c)));
    /* lines before the last GATE_SIGNATURE_LINES do not count */
    char longer[1024];
    (void)snprintf(longer, sizeof(longer), "x\ny\nz\nw\nv\nu\nt\ns\nr\n%s", a);
    char other[1024];
    (void)snprintf(other, sizeof(other), "q\ny\nz\nw\nv\nu\nt\ns\nr\n%s", a);
    assert_true(gate_signature_of(longer, strlen(longer)) ==
                gate_signature_of(other, strlen(other)));
    assert_true(gate_signature_of("", 0) != 0);
    /*
     * a quantity in another unit or with a decimal is the same quantity: the gate's own
     * "peak memory" line reads "4 MiB" on one run and "3.9 MiB" or "900 KiB" on the next
     * (a flake's two failures counted as different endings, a rejection's watch missed)
     */
    static const char *const same[] = {
        "t.c:41: failed\nkeel-gate: peak memory 4 MiB, cpu 3 ms\n",
        "t.c:41: failed\nkeel-gate: peak memory 3.9 MiB, cpu 3 ms\n",
        "t.c:41: failed\nkeel-gate: peak memory 900 KiB, cpu 0 ms\n",
        "t.c:41: failed\nkeel-gate: peak memory 812 bytes, cpu 12ms\n",
        "t.c:41: failed\nkeel-gate: peak memory 1,5 GiB, cpu 1.5 s\n"};
    for (size_t i = 1; i < sizeof(same) / sizeof(same[0]); i++)
        if (gate_signature_of(same[i], strlen(same[i])) !=
            gate_signature_of(same[0], strlen(same[0])))
            fail_msg("'%s' and '%s' end differently", same[0], same[i]);
    /* a unit is only folded after a number: words stay */
    static const char h1[] = "t.c:41: failed in s\n", h2[] = "t.c:41: failed in h\n";
    assert_true(gate_signature_of(h1, strlen(h1)) != gate_signature_of(h2, strlen(h2)));
}

/*
 * A quantity in parentheses, or after '=' or '~', is the same quantity in
 * another unit too: a test runner's "FAIL: t (1 s)" on one run, "(900 ms)"
 * on the next (signature.c's is_unit names "(1 s)"; its '(' only counted
 * after the number, so the unit was hashed).
 */
static void test_signature_unit_after_a_bracket(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"t.c:41: failed\nFAIL: test_parse (1 s)\n", "t.c:41: failed\nFAIL: test_parse (900 ms)\n"},
        {"t.c:41: failed\nrss=4 MiB\n", "t.c:41: failed\nrss=900 KiB\n"}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
        if (gate_signature_of(pairs[i][0], strlen(pairs[i][0])) !=
            gate_signature_of(pairs[i][1], strlen(pairs[i][1])))
            fail_msg("'%s' and '%s' end differently", pairs[i][0], pairs[i][1]);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_normalised),
        cmocka_unit_test(test_signature_unit_after_a_bracket),
        cmocka_unit_test_teardown(test_flakes_on_two_configurations, fx_teardown),
        cmocka_unit_test_teardown(test_bisection_blames_only_after_alone, fx_teardown),
        cmocka_unit_test_teardown(test_same_failure_not_retried, fx_teardown),
        cmocka_unit_test_teardown(test_different_failures_run_again, fx_teardown),
        cmocka_unit_test_teardown(test_flaky_ending_survives_restart, fx_teardown),
        cmocka_unit_test_teardown(test_flaky_configuration_needs_three_alike, fx_teardown),
        cmocka_unit_test_teardown(test_rejection_on_a_flake_taken_back, fx_teardown),
        cmocka_unit_test_teardown(test_rejection_taken_back_by_a_later_run, fx_teardown),
#if KEEL_DEVEL
        cmocka_unit_test_teardown(test_flaky_ending_write_fails_tried_again, fx_teardown),
        cmocka_unit_test_teardown(test_watch_write_fails, fx_teardown),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
