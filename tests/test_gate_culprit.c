/*
 * test_gate_culprit.c - the flake-aware culprit search (gate/queue/culprit.h)
 * against a simulated builder: the culprit at every position without flakes
 * in about log2(n) builds, no wrong verified culprit in 100 seeded trials at
 * 20% flakes, a failure that was a flake, builds in flight (never one
 * already running, results out of order, builds lost), the budget, n = 1,
 * the verification rule, the log, bad arguments.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "culprit.h"

/* gate_culprit_params_default's confidence */
#define CONF 0.9999

/*
 * A history: commit i is bad when i >= first_bad (n + 1: none is); good
 * builds fail with `flake`, bad ones pass with `intermittent`.
 */
typedef struct history {
    unsigned first_bad;
    double flake;
    unsigned long long rng;
    double intermittent;
} history;

static double uniform(unsigned long long *x)
{
    unsigned long long z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

static bool build_fails(history *h, unsigned commit)
{
    if (commit >= h->first_bad)
        return !(h->intermittent > 0.0 && uniform(&h->rng) < h->intermittent);
    return uniform(&h->rng) < h->flake;
}

/*
 * Runs the search to its verdict with up to `flight` builds at once; the
 * build that ends next is one of those in flight at random (out of order).
 * Checks on the way that next() never gives a commit already in flight.
 */
static void run_search(gate_culprit *c, history *h, size_t flight, gate_culprit_verdict *v)
{
    unsigned running[GATE_CULPRIT_MAX_FLIGHT];
    size_t nrun = 0;
    for (int guard = 0; guard < 100000; guard++) {
        unsigned got[GATE_CULPRIT_MAX_FLIGHT];
        size_t n = 0;
        gate_culprit_verdict_get(c, v);
        bool waiting = v->state == GATE_CULPRIT_SUSPECTED && v->fresh_fails >= v->fail_runs &&
                       v->parent_passes >= v->parent_runs && v->p >= CONF;
        assert_true(keel_ok(gate_culprit_next(c, flight - nrun, got, &n)));
        assert_true(nrun + n <= flight);
        if (waiting) /* verified but for the builds in flight: nothing more starts */
            assert_int_equal(n, 0);
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < nrun; j++)
                assert_int_not_equal(got[i], running[j]);
            for (size_t j = 0; j < i; j++)
                assert_int_not_equal(got[i], got[j]);
            running[nrun++] = got[i];
        }
        if (nrun == 0)
            break;
        size_t pick = (size_t)(uniform(&h->rng) * (double)nrun);
        unsigned commit = running[pick];
        running[pick] = running[--nrun];
        assert_true(keel_ok(gate_culprit_result(c, commit, build_fails(h, commit))));
    }
    gate_culprit_verdict_get(c, v);
    assert_int_equal(v->running, 0);
}

/* A search; suspicion 0: the default. */
static gate_culprit *make_suspicious(unsigned n, double flake, unsigned budget, double suspicion)
{
    gate_culprit_params p;
    gate_culprit_params_default(&p);
    p.n = n;
    p.flake = flake;
    p.budget = budget;
    if (suspicion > 0.0)
        p.suspicion = suspicion;
    gate_culprit *c = NULL;
    assert_true(keel_ok(gate_culprit_new(&p, &c)));
    assert_non_null(c);
    return c;
}

static gate_culprit *make(unsigned n, double flake, unsigned budget)
{
    return make_suspicious(n, flake, budget, 0.0);
}

/* No flakes, commit k the first bad of n: verified in at most max_builds builds. */
static void expect_found(unsigned n, unsigned k, size_t flight, unsigned max_builds)
{
    gate_culprit *c = make(n, 0.0, 64);
    history h = {k, 0.0, k, 0.0};
    gate_culprit_verdict v;
    run_search(c, &h, flight, &v);
    assert_int_equal(v.state, GATE_CULPRIT_VERIFIED);
    assert_int_equal(v.commit, k);
    assert_true(v.p >= CONF);
    print_message("n %u, c%u, %zu at once: %u builds\n", n, k, flight, v.builds);
    assert_true(v.builds <= max_builds);
    gate_culprit_delete(c);
}

/* No flakes: bisection, the culprit at every position of 16 in at most log2(16) + 1 builds. */
static void test_every_position(void **state)
{
    (void)state;
    for (unsigned k = 1; k <= 16; k++)
        expect_found(16, k, 1, 4 + 1);
}

/*
 * 20% flakes: 100 seeded trials (culprit anywhere, or none), never a wrong
 * verified culprit; every third suspects only at the confidence.
 */
static void test_flaky_trials(void **state)
{
    (void)state;
    unsigned verified = 0, none = 0, builds = 0;
    for (unsigned seed = 0; seed < 100; seed++) {
        unsigned long long pos = seed * 7919ull;
        history h = {1 + (unsigned)(uniform(&pos) * 17.0), 0.2, seed, 0.0}; /* 17: no culprit */
        gate_culprit *c = make_suspicious(16, 0.2, 200, seed % 3 == 0 ? CONF : 0.0);
        gate_culprit_verdict v;
        run_search(c, &h, 1 + seed % 4, &v);
        if (v.state == GATE_CULPRIT_VERIFIED) {
            assert_int_equal(v.commit, h.first_bad);
            assert_true(v.fresh_fails >= 6 && v.fails == v.runs && v.parent_passes >= 1);
            verified++;
        }
        if (v.state == GATE_CULPRIT_NO_CULPRIT) {
            assert_int_equal(h.first_bad, 17);
            none++;
        }
        builds += v.builds;
        gate_culprit_delete(c);
    }
    print_message("100 trials at 20%% flakes: %u verified, %u no culprit, %.1f builds each\n",
                  verified, none, builds / 100.0);
    assert_true(verified + none >= 95);
}

/*
 * A break that shows in 90% of its builds, told to the search: 100 seeded
 * trials at 5% flakes, no wrong verified culprit (the parent's one pass is
 * no proof any more: 4 fresh ones are asked for).
 */
static void test_intermittent(void **state)
{
    (void)state;
    unsigned verified = 0, builds = 0;
    for (unsigned seed = 0; seed < 100; seed++) {
        unsigned long long pos = seed * 104729ull;
        history h = {1 + (unsigned)(uniform(&pos) * 16.0), 0.05, seed, 0.1};
        gate_culprit_params p;
        gate_culprit_params_default(&p);
        p.n = 16;
        p.flake = 0.05;
        p.intermittent = 0.1;
        p.budget = 200;
        gate_culprit *c = NULL;
        assert_true(keel_ok(gate_culprit_new(&p, &c)));
        gate_culprit_verdict v;
        run_search(c, &h, 1 + seed % 3, &v);
        if (v.state == GATE_CULPRIT_VERIFIED) {
            assert_int_equal(v.commit, h.first_bad);
            assert_int_equal(v.parent_runs, 4); /* 0.1^4 <= 1e-4 */
            assert_true(v.parent_passes >= 4);
            verified++;
        }
        builds += v.builds;
        gate_culprit_delete(c);
    }
    print_message("100 trials, breaks passing 10%%: %u verified, %.1f builds each\n", verified,
                  builds / 100.0);
    assert_true(verified >= 95);
}

/* Every failure was a flake (no commit is bad): no-culprit, never a culprit. */
static void test_all_flakes(void **state)
{
    (void)state;
    for (unsigned seed = 0; seed < 20; seed++) {
        gate_culprit *c = make(16, 0.2, 64);
        history h = {17, 0.2, 1000 + seed, 0.0};
        gate_culprit_verdict v;
        run_search(c, &h, 1 + seed % 3, &v);
        assert_int_equal(v.state, GATE_CULPRIT_NO_CULPRIT);
        assert_int_equal(v.commit, 0);
        assert_true(v.p >= CONF);
        assert_true(gate_culprit_posterior(c, 17) >= CONF);
        gate_culprit_delete(c);
    }
}

/* Builds in flight: distinct, never running, results in any order, lost builds. */
static void test_in_flight(void **state)
{
    (void)state;
    gate_culprit *c = make(64, 0.05, 100);
    unsigned got[GATE_CULPRIT_MAX_FLIGHT + 4];
    size_t n = 0;
    assert_true(keel_ok(gate_culprit_next(c, GATE_CULPRIT_MAX_FLIGHT + 4, got, &n)));
    assert_int_equal(n, GATE_CULPRIT_MAX_FLIGHT); /* no more at once */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(got[i], got[j]);
    size_t more = 9;
    assert_true(keel_ok(gate_culprit_next(c, 4, got + n, &more)));
    assert_int_equal(more, 0); /* all slots taken */
    /* the last started ends first; a lost build frees its slot */
    assert_true(keel_ok(gate_culprit_result(c, got[n - 1], got[n - 1] >= 40)));
    assert_true(keel_ok(gate_culprit_abandon(c, got[0])));
    keel_status st = gate_culprit_result(c, got[0], true); /* not in flight any more */
    assert_true(KEEL_HAS(st, KEEL_E_STATE));
    keel_status_free(st);
    st = gate_culprit_result(c, 65, true);
    assert_true(KEEL_HAS(st, KEEL_E_RANGE));
    keel_status_free(st);
    unsigned again[2];
    assert_true(keel_ok(gate_culprit_next(c, 2, again, &more)));
    assert_int_equal(more, 2);
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 1; j + 1 < n; j++)
            assert_int_not_equal(again[i], got[j]); /* still running */
    gate_culprit_verdict v;
    gate_culprit_verdict_get(c, &v);
    assert_int_equal(v.builds, GATE_CULPRIT_MAX_FLIGHT + 2);
    assert_int_equal(v.running, GATE_CULPRIT_MAX_FLIGHT);
    gate_culprit_delete(c);

    /* with 8 in flight the search still finds it, and spends no more than serial plus a few */
    for (unsigned k = 1; k <= 64; k += 9)
        expect_found(64, k, GATE_CULPRIT_MAX_FLIGHT, 24);
}

/* The budget spent: gave-up, with the posterior's top 3 best first. */
static void test_gave_up(void **state)
{
    (void)state;
    gate_culprit *c = make(32, 0.2, 3);
    history h = {20, 0.2, 5, 0.0};
    gate_culprit_verdict v;
    run_search(c, &h, 2, &v);
    assert_int_equal(v.state, GATE_CULPRIT_GAVE_UP);
    assert_int_equal(v.builds, 3);
    assert_int_equal(v.commit, 0);
    double sum = 0.0;
    for (int j = 0; j < GATE_CULPRIT_TOP; j++) {
        assert_true(v.top[j].commit >= 1 && v.top[j].commit <= 33);
        assert_true(v.top[j].p > 0.0);
        if (j > 0)
            assert_true(v.top[j].p <= v.top[j - 1].p);
        sum += v.top[j].p;
    }
    assert_true(sum <= 1.0 + 1e-9);
    size_t none = 9;
    assert_true(keel_ok(gate_culprit_next(c, 1, (unsigned[1]){0}, &none)));
    assert_int_equal(none, 0);
    const gate_culprit_event *last = gate_culprit_log(c, gate_culprit_log_count(c) - 1);
    assert_int_equal(last->kind, GATE_CULPRIT_EV_GAVE_UP);
    gate_culprit_delete(c);
}

/* One commit in the range. */
static void test_one_commit(void **state)
{
    (void)state;
    /* no flakes: suspected at once, and verified by one more failure */
    gate_culprit *c = make(1, 0.0, 4);
    gate_culprit_verdict v;
    gate_culprit_verdict_get(c, &v);
    assert_int_equal(v.state, GATE_CULPRIT_SUSPECTED);
    assert_int_equal(v.commit, 1);
    history one = {1, 0.0, 1, 0.0};
    run_search(c, &one, 2, &v);
    assert_int_equal(v.state, GATE_CULPRIT_VERIFIED);
    assert_int_equal(v.builds, 1);
    assert_int_equal(v.fresh_fails, 1);
    gate_culprit_delete(c);
    /* 20% flakes: rebuilt until it failed 6 more times */
    c = make(1, 0.2, 20);
    history h = {1, 0.2, 9, 0.0};
    run_search(c, &h, 3, &v);
    assert_int_equal(v.state, GATE_CULPRIT_VERIFIED);
    assert_int_equal(v.commit, 1);
    assert_int_equal(v.fresh_fails, 6);
    gate_culprit_delete(c);
    /* 20% flakes and it was one: a pass ends it */
    c = make(1, 0.2, 20);
    history flake = {2, 0.2, 4, 0.0};
    run_search(c, &flake, 1, &v);
    assert_int_equal(v.state, GATE_CULPRIT_NO_CULPRIT);
    gate_culprit_delete(c);
}

/* Verification: the run counts from f, and a parent that must pass more than once. */
static void test_verification(void **state)
{
    (void)state;
    assert_int_equal(gate_culprit_fail_runs(0.0, 0.999), 1);
    assert_int_equal(gate_culprit_fail_runs(0.05, 0.999), 3); /* 1.25e-4 */
    assert_int_equal(gate_culprit_fail_runs(0.1, 0.999), 3);  /* 1e-3 exactly */
    assert_int_equal(gate_culprit_fail_runs(0.2, 0.999), 5);  /* 3.2e-4 */
    assert_int_equal(gate_culprit_fail_runs(0.05, CONF), 4);  /* 6.25e-6 */
    assert_int_equal(gate_culprit_fail_runs(0.2, CONF), 6);   /* 6.4e-5 */
    assert_int_equal(gate_culprit_fail_runs(0.2, 0.99), 3);

    gate_culprit_params p;
    gate_culprit_params_default(&p);
    p.n = 8;
    p.parent_runs = 3;
    gate_culprit *c = NULL;
    assert_true(keel_ok(gate_culprit_new(&p, &c)));
    history h = {1, 0.0, 1, 0.0};
    gate_culprit_verdict v;
    run_search(c, &h, 1, &v);
    assert_int_equal(v.state, GATE_CULPRIT_VERIFIED);
    assert_int_equal(v.commit, 1);
    assert_int_equal(v.parent_passes, 3); /* c0: the given pass and two builds */
    gate_culprit_delete(c);

    /* suspected is not verified: the parent's second pass is asked for first */
    p.flake = 0.2;
    p.parent_runs = 2;
    assert_true(keel_ok(gate_culprit_new(&p, &c)));
    unsigned k = 0;
    size_t n = 0;
    gate_culprit_verdict_get(c, &v);
    for (int i = 0; i < 200 && v.state == GATE_CULPRIT_SEARCHING; i++) {
        assert_true(keel_ok(gate_culprit_next(c, 1, &k, &n)));
        assert_int_equal(n, 1);
        assert_true(keel_ok(gate_culprit_result(c, k, k >= 4)));
        gate_culprit_verdict_get(c, &v);
    }
    assert_int_equal(v.state, GATE_CULPRIT_SUSPECTED);
    assert_int_equal(v.commit, 4);
    while (v.state == GATE_CULPRIT_SUSPECTED) {
        assert_true(keel_ok(gate_culprit_next(c, 1, &k, &n)));
        assert_int_equal(n, 1);
        assert_true(k == 4 || k == 3);
        assert_true(keel_ok(gate_culprit_result(c, k, k >= 4)));
        gate_culprit_verdict_get(c, &v);
    }
    assert_int_equal(v.state, GATE_CULPRIT_VERIFIED);
    assert_int_equal(v.fresh_fails, 6);
    assert_true(v.fails > v.fresh_fails); /* and at least one raised the suspicion */
    assert_int_equal(v.parent_passes, 2);
    gate_culprit_delete(c);
}

/* The log: the start, every build and result with the posterior after it, the verdict. */
static void test_log(void **state)
{
    (void)state;
    gate_culprit *c = make(8, 0.05, 64);
    history h = {5, 0.05, 3, 0.0};
    gate_culprit_verdict v;
    run_search(c, &h, 1, &v);
    assert_int_equal(v.state, GATE_CULPRIT_VERIFIED);
    size_t n = gate_culprit_log_count(c);
    assert_true(n > 3);
    assert_null(gate_culprit_log(c, n));
    const gate_culprit_event *e = gate_culprit_log(c, 0);
    assert_int_equal(e->kind, GATE_CULPRIT_EV_START);
    assert_non_null(strstr(e->text, "c8 failed"));
    unsigned results = 0, starts = 0;
    bool suspected = false;
    for (size_t i = 0; i < n; i++) {
        e = gate_culprit_log(c, i);
        print_message("%s\n", e->text);
        assert_non_null(strstr(e->text, "; posterior c"));
        starts += e->kind == GATE_CULPRIT_EV_BUILD;
        if (e->kind == GATE_CULPRIT_EV_RESULT) {
            results++;
            assert_true(e->run >= 1);
            assert_non_null(strstr(e->text, e->failed ? " failed (run " : " passed (run "));
        }
        suspected |= e->kind == GATE_CULPRIT_EV_SUSPECTED && e->commit == 5;
    }
    assert_int_equal(starts, v.builds);
    assert_int_equal(results, v.builds);
    assert_true(suspected);
    e = gate_culprit_log(c, n - 1);
    assert_int_equal(e->kind, GATE_CULPRIT_EV_VERIFIED);
    assert_int_equal(e->commit, 5);
    assert_int_equal(e->top[0].commit, 5);
    assert_non_null(strstr(e->text, "c5 verified"));
    gate_culprit_delete(c);
}

static void expect_inval(const gate_culprit_params *p, const char *names)
{
    gate_culprit *c = (gate_culprit *)&c; /* must be reset to NULL */
    keel_status st = gate_culprit_new(p, &c);
    assert_true(KEEL_HAS(st, KEEL_E_INVAL));
    assert_null(c);
    assert_non_null(strstr(keel_status_message(st), names));
    keel_status_free(st);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    gate_culprit_params p;
    gate_culprit_params_default(&p);
    expect_inval(&p, "'n' 0");
    p.n = GATE_CULPRIT_MAX_N + 1;
    expect_inval(&p, "'n'");
    p.n = 4;
    const double flakes[] = {-0.1, 0.5, 1.0, NAN};
    for (size_t i = 0; i < sizeof flakes / sizeof flakes[0]; i++) {
        p.flake = flakes[i];
        expect_inval(&p, "'flake'");
    }
    p.flake = 0.1;
    p.intermittent = 0.5;
    expect_inval(&p, "'intermittent'");
    p.intermittent = -0.01;
    expect_inval(&p, "'intermittent'");
    p.intermittent = 0.0;
    const double confidences[] = {0.4, 1.0, NAN};
    for (size_t i = 0; i < sizeof confidences / sizeof confidences[0]; i++) {
        p.confidence = confidences[i];
        expect_inval(&p, "'confidence'");
    }
    p.confidence = 0.99;
    const double suspicions[] = {0.4, 0.995, NAN};
    for (size_t i = 0; i < sizeof suspicions / sizeof suspicions[0]; i++) {
        p.suspicion = suspicions[i];
        expect_inval(&p, "'suspicion'");
    }
    p.suspicion = 0.99;
    p.budget = 0;
    expect_inval(&p, "'budget' 0");
    p.budget = GATE_CULPRIT_MAX_BUDGET + 1;
    expect_inval(&p, "'budget'");
    p.budget = 10;
    p.parent_runs = 0;
    expect_inval(&p, "'parent_runs' 0");
    p.parent_runs = 1;
    gate_culprit *c = NULL;
    assert_true(keel_ok(gate_culprit_new(&p, &c)));
    keel_status st = gate_culprit_abandon(c, 2); /* never started */
    assert_true(KEEL_HAS(st, KEEL_E_STATE));
    keel_status_free(st);
    st = gate_culprit_abandon(c, 5);
    assert_true(KEEL_HAS(st, KEEL_E_RANGE));
    keel_status_free(st);
    size_t n = 9;
    assert_true(keel_ok(gate_culprit_next(c, 0, NULL, &n)));
    assert_int_equal(n, 0);
    assert_string_equal(gate_culprit_state_name(GATE_CULPRIT_GAVE_UP), "gave-up");
    gate_culprit_delete(c);
    gate_culprit_delete(NULL);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_position),
        cmocka_unit_test(test_flaky_trials),
        cmocka_unit_test(test_intermittent),
        cmocka_unit_test(test_all_flakes),
        cmocka_unit_test(test_in_flight),
        cmocka_unit_test(test_gave_up),
        cmocka_unit_test(test_one_commit),
        cmocka_unit_test(test_verification),
        cmocka_unit_test(test_log),
        cmocka_unit_test(test_bad_arguments),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
