/*
 * test_gate_heap.c - keel-gate's parts as keel modules and their heaps: the
 * POSTs, SQLite's and libgit2's memory on gate_store's and gate_git's heaps
 * (all of it given back when the modules stop), and a quota on gate_store
 * that fails a run cleanly: the error names the quota, and the queue lands
 * intact once the quota is gone.
 *
 * Each test starts the modules before anything uses SQLite or libgit2 and
 * stops them after the last use, as keel-gate's main does.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate_fixture.h"

#include "heaps.h"

static void start_modules(void)
{
    gate_modules_link();
    fx_ok(keel_modules_start());
}

static keel_heap_stats stats_of(const keel_module *m)
{
    keel_heap_stats st;
    fx_ok(keel_heap_stats_get(m, &st));
    return st;
}

static void test_modules_post(void **state)
{
    (void)state;
    start_modules();
    static const char *const parts[] = {"gate_config", "gate_store", "gate_git",
                                        "gate_exec",   "gate_sched", "gate"};
    /* gate_exec also runs the lock checker's self test (devel builds; release: it passes) */
    static const unsigned posts[] = {1, 1, 1, 2, 1, 0};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        keel_module *m = keel_module_find(parts[i]);
        assert_non_null(m);
        keel_module_info info;
        fx_ok(keel_module_info_get(m, &info));
        assert_int_equal(info.state, KEEL_MODULE_RUNNING);
        assert_int_equal(info.posts_run, posts[i]);
        assert_int_equal(info.posts_failed, 0);
    }
    /* the POSTs ran SQLite and libgit2 on their modules' heaps */
    assert_true(stats_of(KEEL_MODULE_REF(gate_store)).allocations > 0);
    assert_true(stats_of(KEEL_MODULE_REF(gate_git)).allocations > 0);
    keel_modules_stop();
    /* SQLite and libgit2 were shut down: they gave everything back */
    assert_int_equal(stats_of(KEEL_MODULE_REF(gate_store)).live_bytes, 0);
    assert_int_equal(stats_of(KEEL_MODULE_REF(gate_git)).live_bytes, 0);
}

/* A module that finds its library already initialised refuses to start (its memory cannot move). */
static void test_library_in_use_refused(void **state)
{
    (void)state;
    assert_true(git_libgit2_init() > 0);
    gate_modules_link();
    keel_report_set_policy(KEEL_REPORT_MODULE, KEEL_POLICY_COUNT);
    keel_status s = keel_modules_start();
    assert_false(keel_ok(s));
    char msg[2048];
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    if (strstr(msg, "libgit2 is already initialised") == NULL)
        fail_msg("not the reason: %s", msg);
    keel_module_info info;
    fx_ok(keel_module_info_get(keel_module_find("gate_git"), &info));
    assert_int_equal(info.state, KEEL_MODULE_FAILED);
    keel_modules_stop();
    assert_int_equal(git_libgit2_shutdown(), 0);
    /* once libgit2 is free again, the modules start */
    start_modules();
    keel_modules_stop();
}

static void test_heaps_used_by_a_run(void **state)
{
    (void)state;
    start_modules();
    static const char *const parts[] = {"gate_config", "gate_store", "gate_git",
                                        "gate_exec",   "gate_sched", "gate"};
    enum { NPARTS = sizeof(parts) / sizeof(parts[0]) };
    keel_heap_stats before[NPARTS];
    for (size_t i = 0; i < NPARTS; i++)
        before[i] = stats_of(keel_module_find(parts[i]));
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    gate *g = fx_open();
    (void)fx_submit(g, "a", 0);
    (void)fx_submit(g, "b", 0);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(st.landed, 2);
    for (size_t i = 0; i < NPARTS; i++) {
        keel_heap_stats now = stats_of(keel_module_find(parts[i]));
        if (now.allocations <= before[i].allocations)
            fail_msg("module %s's heap was not used by the run", parts[i]);
    }
    /* SQLite holds its cache, libgit2 its objects: live on their modules' heaps */
    assert_true(stats_of(KEEL_MODULE_REF(gate_store)).live_bytes > 0);
    assert_true(stats_of(KEEL_MODULE_REF(gate_git)).live_bytes > 0);
    /* the scheduler, the executor and the work trees are gone with the run */
    assert_int_equal(stats_of(KEEL_MODULE_REF(gate_sched)).live_bytes, before[4].live_bytes);
    assert_int_equal(stats_of(KEEL_MODULE_REF(gate_exec)).live_bytes, before[3].live_bytes);
    /* and the run published every heap for `status` */
    FILE *out = tmpfile();
    assert_non_null(out);
    fx_ok(gate_status(g, out, true));
    rewind(out);
    static char text[65536];
    size_t n = fread(text, 1, sizeof(text) - 1, out);
    text[n] = '\0';
    (void)fclose(out);
    if (!keel_test_json_valid(text))
        fail_msg("status --json is not one JSON value: %s", text);
    assert_non_null(strstr(text, "{\"module\":\"gate_git\",\"live_bytes\":"));
    gate_close(g);
    fx_teardown_repo();
    keel_modules_stop();
    assert_int_equal(stats_of(KEEL_MODULE_REF(gate_store)).live_bytes, 0);
    assert_int_equal(stats_of(KEEL_MODULE_REF(gate_git)).live_bytes, 0);
}

static void test_store_quota_fails_cleanly(void **state)
{
    (void)state;
    start_modules();
    keel_report_set_policy(KEEL_REPORT_QUOTA, KEEL_POLICY_COUNT);
    unsigned long long quota_reports = keel_report_count(KEEL_REPORT_QUOTA);
    fx_setup_repo("strategy = batch", "");
    static const char *const names[] = {"a", "b", "c"};
    long long ids[3];
    gate *g = fx_open();
    for (size_t i = 0; i < 3; i++) {
        char file[16];
        (void)snprintf(file, sizeof(file), "%s.txt", names[i]);
        fx_branch(names[i], file, "x\n");
        ids[i] = fx_submit(g, names[i], 0);
    }
    /* the store may keep what it holds now, and not a byte more */
    const keel_module *store = KEEL_MODULE_REF(gate_store);
    fx_ok(keel_heap_set_quota(store, (size_t)stats_of(store).live_bytes));
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    assert_false(keel_ok(s));
    char msg[4096];
    (void)keel_status_format(s, msg, sizeof(msg));
    assert_true(keel_status_has(s, &keel_codespace_keel, KEEL_E_FULL));
    keel_status_free(s);
    if (getenv("GATE_TEST_VERBOSE") != NULL)
        (void)fprintf(stderr, "the run failed: %s\n", msg);
    if (strstr(msg, "module 'gate_store' is over its memory quota") == NULL)
        fail_msg("the error does not name the quota: %s", msg);
    assert_true(keel_report_count(KEEL_REPORT_QUOTA) > quota_reports);
    assert_true(stats_of(store).failures > 0);
    gate_close(g);
    fx_ok(keel_heap_set_quota(store, 0));
    /* nothing was decided on the way down */
    assert_int_equal(
        fx_sql_int("SELECT count(*) FROM changes WHERE state NOT IN ('queued', 'testing')", NULL),
        0);
    /* without the quota the same queue lands, each change once */
    g = fx_open();
    fx_ok(gate_run(g, true, &st));
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(fx_state_of(g, ids[i]), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(st.rejected, 0);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(fx_times_landed(names[i]), 1);
    fx_assert_tip_tested();
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'running'", NULL), 0);
    fx_teardown_repo();
    keel_modules_stop();
}

/*
 * Devel: the store's allocation number K fails (stress option
 * gate_store.alloc:nth=K), for K across a run, SQLite's memory included.
 * Whatever failed, the retry without it lands each good change once and
 * rejects the bad one: nothing was decided, or recorded half, on a failure.
 */
static void test_store_alloc_failures_sweep(void **state)
{
    (void)state;
    fx_skip_sweep_under_tsan();
#if KEEL_DEVEL
    start_modules();
    keel_report_set_policy(KEEL_REPORT_STRESS, KEEL_POLICY_COUNT);
    static const int nth[] = {1, 60, 300, 1200, 2500, 4000, 6000, 9000};
    unsigned failed_runs = 0;
    for (size_t k = 0; k < sizeof(nth) / sizeof(nth[0]); k++) {
        fx_setup_repo("strategy = batch\nretries = 0", "");
        fx_branch("g1", "g1.txt", "1\n");
        fx_branch("bad", "bad", "x\n");
        fx_branch("g2", "g2.txt", "2\n");
        gate *g = fx_open();
        long long ids[3] = {fx_submit(g, "g1", 0), fx_submit(g, "bad", 0), fx_submit(g, "g2", 0)};
        char spec[64];
        (void)snprintf(spec, sizeof(spec), "gate_store.alloc:nth=%d", nth[k]);
        fx_ok(keel_stress_enable(spec));
        gate_run_stats st;
        keel_status s = gate_run(g, true, &st);
        keel_stress_clear();
        if (!keel_ok(s)) {
            failed_runs++;
            if (getenv("GATE_TEST_VERBOSE") != NULL)
                keel_status_print(stderr, s);
            assert_true(keel_status_has(s, &keel_codespace_keel, KEEL_E_INJECTED));
            keel_status_free(s);
        }
        gate_close(g);
        g = fx_open();
        fx_ok(gate_run(g, true, &st));
        static const gate_change_state want[] = {GATE_CHANGE_LANDED, GATE_CHANGE_REJECTED,
                                                 GATE_CHANGE_LANDED};
        for (size_t i = 0; i < 3; i++)
            if (fx_state_of(g, ids[i]) != want[i])
                fail_msg("%s: change %lld ended %s", spec, ids[i],
                         gate_change_state_name(fx_state_of(g, ids[i])));
        gate_close(g);
        assert_int_equal(fx_times_landed("g1"), 1);
        assert_int_equal(fx_times_landed("g2"), 1);
        assert_int_equal(fx_times_landed("bad"), 0);
        fx_assert_tip_tested();
        assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'running'", NULL), 0);
        fx_teardown_repo();
    }
    assert_true(failed_runs >= 3); /* the sweep did hit the run */
    keel_modules_stop();
#else
    skip();
#endif
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modules_post),
        cmocka_unit_test(test_library_in_use_refused),
        cmocka_unit_test(test_heaps_used_by_a_run),
        cmocka_unit_test(test_store_quota_fails_cleanly),
        cmocka_unit_test(test_store_alloc_failures_sweep),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
