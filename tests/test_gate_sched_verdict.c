/*
 * test_gate_sched_verdict.c - keel-gate's scheduler: its verdicts per
 * configuration, one build at a time (scheduler.h: Flakes).  The strategies
 * and adaptive's shapes are in test_gate_sched.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "scheduler.h"

/* ---- verdicts per configuration (scheduler.h: Flakes) ------------------------------ */

/* The next build, which must exist. */
static gate_sched_build next_build(gate_sched *s)
{
    gate_sched_build b;
    bool have = false;
    assert_true(keel_ok(gate_sched_next(s, &b, &have)));
    assert_true(have);
    return b;
}

/* One build's results: configurations a and b (NULL: not run), and their signatures. */
static void results2(gate_sched *s, long long cand, int a, unsigned long long sa, int b,
                     unsigned long long sb, long long job)
{
    gate_sched_run r[2];
    size_t n = 0;
    memset(r, 0, sizeof(r));
    if (a >= 0) {
        r[n].config = "a";
        r[n].passed = a != 0;
        r[n].signature = sa;
        r[n++].job = job;
    }
    if (b >= 0) {
        r[n].config = "b";
        r[n].passed = b != 0;
        r[n].signature = sb;
        r[n++].job = job + 1;
    }
    assert_true(keel_ok(gate_sched_results(s, cand, r, n)));
}

static gate_sched *new_sched(gate_strategy strategy, unsigned max_batch, unsigned retries)
{
    gate_sched_params p;
    gate_sched_params_default(&p);
    p.strategy = strategy;
    p.max_batch = max_batch;
    p.retries = retries;
    gate_sched *s = NULL;
    assert_true(keel_ok(gate_sched_new(&p, &s)));
    return s;
}

/*
 * The user's case: a batch of two good changes, a fails on the first
 * attempt; the retry runs a alone, which passes: flaky, and both land.  b's
 * one pass holds for the tree; a failure of b "on the way" would not count.
 */
static void test_verdict_per_configuration(void **state)
{
    (void)state;
    gate_sched *s = new_sched(GATE_STRATEGY_BATCH, 2, 1);
    assert_true(keel_ok(gate_sched_enqueue(s, 1)));
    assert_true(keel_ok(gate_sched_enqueue(s, 2)));
    gate_sched_build b = next_build(s);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.nconfigs, 0); /* the first build: every configuration */
    long long cand = b.candidate;
    results2(s, cand, 0, 11, 1, 0, 100);
    b = next_build(s);
    assert_int_equal(b.candidate, cand);
    assert_int_equal(b.attempt, 2);
    assert_int_equal(b.nconfigs, 1); /* only what failed runs again */
    assert_string_equal(b.configs[0], "a");
    results2(s, cand, 1, 0, -1, 0, 102);
    gate_sched_decision d;
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_FLAKY);
    assert_string_equal(d.decided.config, "a");
    assert_int_equal(d.decided.runs, 2);
    assert_int_equal(d.decided.failures, 1);
    assert_int_equal(d.decided.job, 100);
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_LAND);
    assert_int_equal(d.n, 2);
    assert_false(gate_sched_poll(s, &d));
    gate_sched_stats st;
    gate_sched_stats_get(s, &st);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.builds, 2);
    gate_sched_delete(s);
}

/*
 * A candidate fails only by a configuration that failed on every run: a
 * fails then passes (a flake on the way), b fails the same way on both
 * attempts and decides; the evidence names b, never a.
 */
static void test_verdict_names_decisive_configuration(void **state)
{
    (void)state;
    gate_sched *s = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    assert_true(keel_ok(gate_sched_enqueue(s, 5)));
    gate_sched_build b = next_build(s);
    long long cand = b.candidate;
    results2(s, cand, 0, 21, 0, 31, 10);
    b = next_build(s);
    assert_int_equal(b.nconfigs, 2);
    results2(s, cand, 1, 0, 0, 31, 12); /* a passes (flaky); b the same way twice */
    gate_sched_decision d;
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_REJECT);
    assert_int_equal(d.change, 5);
    assert_int_equal(d.candidate, cand);
    assert_string_equal(d.decided.config, "b");
    assert_int_equal(d.decided.runs, 2);
    assert_int_equal(d.decided.failures, 2);
    assert_int_equal(d.decided.job, 13);
    assert_int_equal(d.decided.why, GATE_SCHED_WHY_SAME);
    assert_string_equal(gate_sched_why_name(d.decided.why), "same");
    assert_true(d.signature == 31); /* watched for its ending (a flaked on the way: not a's) */
    assert_int_equal(d.batch_n, 0); /* built alone from the start */
    assert_false(gate_sched_poll(s, &d));
    gate_sched_delete(s);
}

/*
 * Bisection blames, isolation decides: 1..4 fails (4 is bad); 1..2 and 3
 * land; 4, known bad by inference, is built alone on the tip before it is
 * rejected, and the decision carries both verdicts.  When that build passes
 * instead (the batch's failure was not 4's), 4 lands.
 */
static void test_bisection_confirms_alone(void **state)
{
    (void)state;
    for (int confirm_fails = 1; confirm_fails >= 0; confirm_fails--) {
        gate_sched *s = new_sched(GATE_STRATEGY_BATCH, 4, 0);
        for (long long c = 1; c <= 4; c++)
            assert_true(keel_ok(gate_sched_enqueue(s, c)));
        gate_sched_build b = next_build(s);
        assert_int_equal(b.n, 4);
        long long batch = b.candidate;
        results2(s, batch, 0, 77, 1, 0, 1);
        b = next_build(s); /* 1..2 */
        assert_int_equal(b.n, 2);
        results2(s, b.candidate, 1, 0, 1, 0, 3);
        b = next_build(s); /* 3 alone; 4 waits (batch: depth 1) */
        assert_int_equal(b.n, 1);
        assert_int_equal(b.changes[0], 3);
        results2(s, b.candidate, 1, 0, 1, 0, 5);
        b = next_build(s); /* 4 alone on the tip: the old code rejected it unbuilt */
        assert_int_equal(b.n, 1);
        assert_int_equal(b.changes[0], 4);
        assert_int_equal(b.base, 0);
        long long alone = b.candidate;
        results2(s, alone, confirm_fails ? 0 : 1, 77, 1, 0, 7);
        gate_sched_decision d;
        int lands = 0;
        bool rejected = false;
        while (gate_sched_poll(s, &d)) {
            lands += d.kind == GATE_SCHED_LAND;
            if (d.kind != GATE_SCHED_REJECT)
                continue;
            rejected = true;
            assert_int_equal(d.change, 4);
            assert_int_equal(d.candidate, alone);
            assert_string_equal(d.decided.config, "a");
            assert_int_equal(d.decided.runs, 1);
            assert_int_equal(d.decided.why, GATE_SCHED_WHY_RUNS);
            assert_int_equal(d.decided.job, 7);
            assert_int_equal(d.batch_n, 4);
            assert_int_equal(d.batch.candidate, batch);
            assert_string_equal(d.batch.config, "a");
            assert_int_equal(d.batch.job, 1);
        }
        assert_int_equal(rejected, confirm_fails);
        assert_int_equal(lands, confirm_fails ? 2 : 3);
        gate_sched_delete(s);
    }
}

/* Builds of one change alone whose configuration a fails with signatures sig[0], sig[1], .... */
static unsigned runs_until_rejected(unsigned retries, const unsigned long long *sig, size_t nsig,
                                    gate_sched_why *why)
{
    gate_sched *s = new_sched(GATE_STRATEGY_SERIAL, 1, retries);
    assert_true(keel_ok(gate_sched_enqueue(s, 9)));
    unsigned builds = 0;
    gate_sched_decision d;
    for (;;) {
        gate_sched_build b;
        bool have = false;
        assert_true(keel_ok(gate_sched_next(s, &b, &have)));
        if (!have)
            break;
        assert_true(builds < nsig);
        results2(s, b.candidate, 0, sig[builds], -1, 0, 50 + builds);
        builds++;
    }
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_REJECT);
    assert_int_equal(d.decided.runs, builds);
    assert_int_equal(d.decided.failures, builds);
    *why = d.decided.why;
    gate_sched_delete(s);
    return builds;
}

/*
 * Signatures: the same twice ends it before `retries` is spent; all
 * different earns GATE_SCHED_SUSPECT_EXTRA runs beyond it, until two agree;
 * unknown ones (0) count as before; retries = 0 never runs again.
 */
static void test_failure_signatures(void **state)
{
    (void)state;
    static const unsigned long long same[] = {5, 5, 5, 5, 5, 5, 5, 5};
    static const unsigned long long differ[] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const unsigned long long unknown[] = {0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned long long third_agrees[] = {1, 2, 1, 4, 5, 6, 7, 8};
    gate_sched_why why = GATE_SCHED_WHY_NONE;
    assert_int_equal(runs_until_rejected(3, same, 8, &why), 2);
    assert_int_equal(why, GATE_SCHED_WHY_SAME);
    assert_int_equal(runs_until_rejected(3, unknown, 8, &why), 4);
    assert_int_equal(why, GATE_SCHED_WHY_RUNS);
    assert_int_equal(runs_until_rejected(1, differ, 8, &why), 2 + GATE_SCHED_SUSPECT_EXTRA);
    assert_int_equal(why, GATE_SCHED_WHY_DIFFERENT);
    assert_int_equal(runs_until_rejected(1, third_agrees, 8, &why), 3);
    assert_int_equal(why, GATE_SCHED_WHY_SAME);
    assert_int_equal(runs_until_rejected(0, differ, 8, &why), 1);
    assert_int_equal(why, GATE_SCHED_WHY_RUNS);
    /* a final failure is never run again */
    gate_sched *s = new_sched(GATE_STRATEGY_SERIAL, 1, 3);
    assert_true(keel_ok(gate_sched_enqueue(s, 9)));
    gate_sched_build b = next_build(s);
    assert_true(keel_ok(gate_sched_result_final(s, b.candidate)));
    gate_sched_decision d;
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_REJECT);
    assert_int_equal(d.decided.why, GATE_SCHED_WHY_FINAL);
    assert_string_equal(d.decided.config, "");
    gate_sched_delete(s);
    /* a name too long for the evidence is refused, nothing recorded */
    s = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    assert_true(keel_ok(gate_sched_enqueue(s, 9)));
    b = next_build(s);
    char name[GATE_SCHED_NAME_MAX + 1];
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    gate_sched_run r;
    memset(&r, 0, sizeof(r));
    r.config = name;
    keel_status st = gate_sched_results(s, b.candidate, &r, 1);
    assert_true(KEEL_HAS(st, KEEL_E_INVAL));
    keel_status_free(st);
    results2(s, b.candidate, 1, 0, 1, 0, 1);
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_LAND);
    gate_sched_delete(s);
}

/* The REOPEN decisions decide_alone met (rejections taken back), in order. */
static gate_sched_decision reopens[8];
static size_t nreopens;

/*
 * Change `id`, alone (serial), built until decided: configuration a's runs
 * fail with signatures sig[0], sig[1], ... (0 past nsig: it passes), b's
 * (config "b") the same when `on_b`, else b passes.  Its decision's kind;
 * *builds: the builds it took.  A FLAKY on the way is passed over; a REOPEN
 * too, kept in reopens[] (it must come after a FLAKY).
 */
static gate_sched_kind decide_alone(gate_sched *s, long long id, const unsigned long long *sig,
                                    size_t nsig, bool on_b, unsigned *builds)
{
    assert_true(keel_ok(gate_sched_enqueue(s, id)));
    *builds = 0;
    gate_sched_decision d;
    bool flaky = false;
    for (;;) {
        bool have_d = gate_sched_poll(s, &d);
        flaky = flaky || (have_d && d.kind == GATE_SCHED_FLAKY);
        if (have_d && d.kind == GATE_SCHED_REOPEN) {
            assert_true(flaky && nreopens < sizeof(reopens) / sizeof(reopens[0]));
            reopens[nreopens++] = d;
            continue;
        }
        if (have_d && d.kind != GATE_SCHED_FLAKY)
            return d.kind;
        gate_sched_build b;
        bool have = false;
        assert_true(keel_ok(gate_sched_next(s, &b, &have)));
        if (!have)
            continue;
        unsigned long long g = *builds < nsig ? sig[*builds] : 0;
        if (b.attempt > 1) /* a retry runs only what failed */
            results2(s, b.candidate, on_b ? -1 : (g == 0), g, on_b ? (g == 0) : -1, g,
                     100 + *builds);
        else
            results2(s, b.candidate, on_b || g == 0, on_b ? 0 : g, !on_b || g == 0, on_b ? g : 0,
                     100 + *builds);
        (*builds)++;
        assert_true(*builds <= 2 + GATE_SCHED_SUSPECT_EXTRA);
    }
}

/*
 * A flaky test often fails the same way: an ending a configuration flaked
 * with (failed, then passed on the same tree) is no evidence of a real
 * failure when it repeats.  After a flaked with ending 7, a good change whose
 * a fails with 7 twice is run again and lands (the old rule rejected it:
 * "the same way twice"); the same ending on configuration b, which never
 * flaked with it, and an ending never seen to flake, still end it at two.
 */
static void test_flaky_endings(void **state)
{
    (void)state;
    nreopens = 0;
    static const unsigned long long flake[] = {7};
    static const unsigned long long twice[] = {7, 7};
    static const unsigned long long other[] = {8, 8};
    unsigned builds = 0;
    gate_sched *s = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    assert_int_equal(decide_alone(s, 1, twice, 2, false, &builds), GATE_SCHED_REJECT);
    assert_int_equal(builds, 2); /* nothing known yet: the same way twice */
    assert_int_equal(decide_alone(s, 2, flake, 1, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(builds, 2);   /* failed with 7, then passed: 7 is a flake's */
    assert_int_equal(nreopens, 1); /* and 1's rejection is taken back */
    assert_int_equal(reopens[0].change, 1);
    assert_int_equal(decide_alone(s, 3, twice, 2, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(builds, 3); /* 7 twice: run again, passes */
    assert_int_equal(decide_alone(s, 4, twice, 2, true, &builds), GATE_SCHED_REJECT);
    assert_int_equal(builds, 2); /* on b, which never flaked with 7 */
    assert_int_equal(decide_alone(s, 5, other, 2, false, &builds), GATE_SCHED_REJECT);
    assert_int_equal(builds, 2);
    /* a real failure that ends like a flake is rejected after the suspect runs */
    static const unsigned long long always[] = {7, 7, 7, 7, 7, 7, 7, 7};
    assert_int_equal(decide_alone(s, 6, always, 8, false, &builds), GATE_SCHED_REJECT);
    assert_int_equal(builds, 2 + GATE_SCHED_SUSPECT_EXTRA);
    /* a new scheduler of the same gate (gate_sched_inherit) knows the endings */
    gate_sched *t = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    gate_sched_inherit(t, s);
    assert_int_equal(decide_alone(t, 7, twice, 2, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(builds, 3);
    /* and the rejections it watches: 4's (7 twice on b) is taken back by a's flake with 7 */
    assert_int_equal(nreopens, 2);
    assert_int_equal(reopens[1].change, 4);
    gate_sched_delete(t);
    gate_sched_delete(s);
}

/*
 * The endings a scheduler knows, as a gate keeps them across runs
 * (gate_sched_flaky_endings, gate_sched_flaky_seen, gate_sched_recall_flaky):
 * listed the oldest first with the count when each was seen; one seen again
 * moves to the newest; the 64 seen last are kept; a new scheduler that
 * recalls them (no gate_sched_inherit: a gate started again) treats a repeat
 * of one as a flake's, and they are not new to it.
 */
static void test_flaky_endings_recalled(void **state)
{
    (void)state;
    static const unsigned long long flake7[] = {7}, flake9[] = {9}, twice[] = {7, 7};
    static const unsigned long long top[] = {0x8000000000000001ull};
    unsigned builds = 0;
    gate_sched *s = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    assert_true(gate_sched_flaky_seen(s) == 0);
    assert_int_equal(gate_sched_flaky_endings(s, NULL, 0), 0);
    assert_int_equal(decide_alone(s, 1, flake7, 1, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(decide_alone(s, 2, top, 1, true, &builds), GATE_SCHED_LAND);
    assert_int_equal(decide_alone(s, 3, flake9, 1, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(decide_alone(s, 4, flake7, 1, false, &builds), GATE_SCHED_LAND);
    assert_true(gate_sched_flaky_seen(s) == 4);
    gate_sched_flaky f[GATE_SCHED_FLAKY_ENDINGS + 1];
    assert_int_equal(gate_sched_flaky_endings(s, f, 2), 3); /* how many: 2 copied */
    assert_int_equal(gate_sched_flaky_endings(s, f, GATE_SCHED_FLAKY_ENDINGS), 3);
    /* 7 on a, seen again last: the newest */
    assert_string_equal(f[0].config, "b");
    assert_true(f[0].signature == top[0] && f[0].seen == 2);
    assert_string_equal(f[1].config, "a");
    assert_true(f[1].signature == 9 && f[1].seen == 3);
    assert_string_equal(f[2].config, "a");
    assert_true(f[2].signature == 7 && f[2].seen == 4);

    /* a scheduler of a new run: without them, 7 twice on a is rejected */
    gate_sched *fresh = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    assert_int_equal(decide_alone(fresh, 5, twice, 2, false, &builds), GATE_SCHED_REJECT);
    gate_sched_delete(fresh);
    /* with them recalled (and two that are ignored: signature 0, a name not terminated) */
    gate_sched_flaky bad[2];
    memset(bad, 'x', sizeof(bad));
    (void)snprintf(bad[0].config, sizeof(bad[0].config), "a");
    bad[0].signature = 0;
    bad[1].signature = 8;
    gate_sched *t = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    gate_sched_recall_flaky(t, bad, 2);
    gate_sched_recall_flaky(t, f, 3);
    gate_sched_recall_flaky(t, f, 3); /* known already: nothing more */
    assert_true(gate_sched_flaky_seen(t) == 0);
    gate_sched_flaky g[GATE_SCHED_FLAKY_ENDINGS];
    assert_int_equal(gate_sched_flaky_endings(t, g, GATE_SCHED_FLAKY_ENDINGS), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(g[i].config, f[i].config);
        assert_true(g[i].signature == f[i].signature && g[i].seen == 0);
    }
    assert_int_equal(decide_alone(t, 5, twice, 2, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(builds, 3);                /* 7 twice: run again, passes */
    assert_true(gate_sched_flaky_seen(t) == 2); /* the two 7s seen again, as flakes' */
    gate_sched_delete(t);

    /* the 64 seen last: 70 endings of a, the first 6 go */
    for (unsigned long long k = 0; k < 70; k++) {
        unsigned long long sig[] = {1000 + k};
        assert_int_equal(decide_alone(s, 10 + (long long)k, sig, 1, false, &builds),
                         GATE_SCHED_LAND);
    }
    assert_int_equal(gate_sched_flaky_endings(s, f, GATE_SCHED_FLAKY_ENDINGS + 1),
                     GATE_SCHED_FLAKY_ENDINGS);
    assert_true(f[0].signature == 1006 && f[GATE_SCHED_FLAKY_ENDINGS - 1].signature == 1069);
    assert_true(gate_sched_flaky_seen(s) == 74);
    gate_sched_delete(s);
}

/*
 * Rejections taken back (scheduler.h): a change rejected because a failed
 * alone the same way twice (7) is reopened when 7 later turns out to be a
 * flake's, on another change's tree and another configuration (b fails with
 * 7, then passes): REOPEN after that FLAKY, with both verdicts.  Queued
 * again, its a fails with 7 once more, now a known flake's ending: run again,
 * it passes and lands.  Each rejection is taken back once; a flake whose
 * ending no rejection rested on takes nothing back; nor does one when
 * another configuration failed the change for good too; the newest
 * GATE_SCHED_REOPEN_WATCH rejections are watched.
 */
static void test_rejection_taken_back(void **state)
{
    (void)state;
    static const unsigned long long twice7[] = {7, 7}, flake7[] = {7}, flake9[] = {9};
    unsigned builds = 0;
    nreopens = 0;
    gate_sched *s = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    assert_int_equal(decide_alone(s, 1, twice7, 2, false, &builds), GATE_SCHED_REJECT);
    assert_int_equal(decide_alone(s, 2, flake9, 1, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(nreopens, 0); /* 9 is not what 1 was rejected on */
    /* 3: b fails with 7, then passes */
    assert_true(keel_ok(gate_sched_enqueue(s, 3)));
    gate_sched_build b = next_build(s);
    long long flaked = b.candidate;
    results2(s, flaked, 1, 0, 0, 7, 300);
    (void)next_build(s); /* b's run again, on the same candidate */
    results2(s, flaked, -1, 0, 1, 0, 302);
    gate_sched_decision d;
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_FLAKY);
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_REOPEN);
    assert_string_equal(gate_sched_kind_name(d.kind), "reopen");
    assert_int_equal(d.change, 1);
    assert_int_equal(d.candidate, flaked);
    assert_string_equal(d.decided.config, "b");
    assert_int_equal(d.decided.candidate, flaked);
    assert_int_equal(d.decided.runs, 2);
    assert_int_equal(d.decided.failures, 1);
    assert_int_equal(d.decided.job, 301); /* b's failing run */
    assert_string_equal(d.rejected.config, "a");
    assert_int_equal(d.rejected.why, GATE_SCHED_WHY_SAME);
    assert_int_equal(d.rejected.runs, 2);
    assert_int_equal(d.rejected.failures, 2);
    assert_int_equal(d.rejected.job, 101); /* 1's second run, its a failing */
    assert_true(d.signature == 7);
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_LAND);
    assert_false(gate_sched_poll(s, &d));
    gate_sched_stats st;
    gate_sched_stats_get(s, &st);
    assert_int_equal(st.reopened, 1);
    assert_int_equal(st.rejected, 1);
    /* queued again: 7 once more is a flake's now, so it runs again, passes and lands */
    assert_int_equal(decide_alone(s, 1, flake7, 1, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(builds, 2);
    assert_int_equal(nreopens, 0); /* nothing more to take back */

    /* another configuration failed it for good too: its own evidence, not watched */
    assert_true(keel_ok(gate_sched_enqueue(s, 4)));
    b = next_build(s);
    results2(s, b.candidate, 0, 11, 0, 12, 400);
    b = next_build(s);
    results2(s, b.candidate, 0, 11, 0, 12, 402);
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_REJECT);
    assert_true(d.signature == 0); /* not watched */
    assert_false(gate_sched_poll(s, &d));
    static const unsigned long long flake11[] = {11};
    assert_int_equal(decide_alone(s, 5, flake11, 1, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(nreopens, 0);

    /* the newest GATE_SCHED_REOPEN_WATCH: 1 + GATE_SCHED_REOPEN_WATCH rejections, the first goes */
    for (unsigned long long k = 0; k <= GATE_SCHED_REOPEN_WATCH; k++) {
        unsigned long long sig[] = {1000 + k, 1000 + k};
        assert_int_equal(decide_alone(s, 100 + (long long)k, sig, 2, false, &builds),
                         GATE_SCHED_REJECT);
    }
    static const unsigned long long first[] = {1000}, second[] = {1001};
    assert_int_equal(decide_alone(s, 200, first, 1, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(nreopens, 0);
    assert_int_equal(decide_alone(s, 201, second, 1, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(nreopens, 1);
    assert_int_equal(reopens[0].change, 101);
    gate_sched_delete(s);

    /*
     * a rejection kept across runs (gate_sched_recall_watched): a new scheduler watches it as
     * its own; a change it watches already, change 0, signature 0 and a name not terminated
     * are ignored
     */
    gate_sched_watched w[5];
    memset(w, 0, sizeof(w));
    for (size_t k = 0; k < 5; k++) {
        w[k].change = k == 2 ? 0 : 50;
        w[k].signature = k == 3 ? 0 : 21 + k;
        (void)snprintf(w[k].rejected.config, sizeof(w[k].rejected.config), "a");
        w[k].rejected.job = 9;
        w[k].rejected.runs = w[k].rejected.failures = 2;
        w[k].rejected.why = GATE_SCHED_WHY_SAME;
    }
    memset(w[4].rejected.config, 'x', sizeof(w[4].rejected.config));
    w[4].change = 52;
    s = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    gate_sched_recall_watched(s, w, 5);
    nreopens = 0;
    static const unsigned long long flake22[] = {22}, flake25[] = {25};
    assert_int_equal(decide_alone(s, 60, flake22, 1, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(decide_alone(s, 61, flake25, 1, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(nreopens, 0); /* 50 is watched for 21 only; 52's name is not one */
    static const unsigned long long flake21[] = {21};
    assert_int_equal(decide_alone(s, 62, flake21, 1, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(nreopens, 1);
    assert_int_equal(reopens[0].change, 50);
    assert_string_equal(reopens[0].rejected.config, "a");
    assert_int_equal(reopens[0].rejected.job, 9);
    assert_true(reopens[0].signature == 21);
    gate_sched_delete(s);
}

/*
 * A rejection taken back on another configuration's flake (a rejected on 7
 * twice, b flakes with 7): queued again, its failure with 7, "now known as a
 * flake's", earns the suspect runs before it can be rejected again (docs/gate.md:
 * rejections taken back).  a fails with 7 twice, then passes: it lands, and
 * b's next flake with 7 takes nothing back.
 */
static void test_reopened_on_another_configuration(void **state)
{
    (void)state;
    static const unsigned long long twice7[] = {7, 7}, flake7[] = {7};
    unsigned builds = 0;
    nreopens = 0;
    gate_sched *s = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    assert_int_equal(decide_alone(s, 1, twice7, 2, false, &builds), GATE_SCHED_REJECT);
    assert_int_equal(decide_alone(s, 2, flake7, 1, true, &builds), GATE_SCHED_LAND);
    assert_int_equal(nreopens, 1);
    assert_int_equal(reopens[0].change, 1);
    assert_int_equal(decide_alone(s, 1, twice7, 2, false, &builds), GATE_SCHED_LAND);
    assert_int_equal(builds, 3);
    assert_int_equal(decide_alone(s, 3, flake7, 1, true, &builds), GATE_SCHED_LAND);
    assert_int_equal(nreopens, 1);
    gate_sched_delete(s);
}

/*
 * A watched rejection the gate never carried out (its REJECT was dropped with
 * the scheduler when a LAND before it restarted the gate: gate_restart,
 * gate_sched_inherit): the change is queued again in the new scheduler and
 * rejected there on other evidence (a fails 7 times, each differently).  A
 * later flake with the old ending 7 must not take that rejection back.
 */
static void test_watch_of_a_change_queued_again(void **state)
{
    (void)state;
    static const unsigned long long twice7[] = {7, 7}, flake7[] = {7};
    static const unsigned long long other[] = {21, 22, 23, 24, 25, 26, 27};
    unsigned builds = 0;
    nreopens = 0;
    gate_sched *s = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    assert_int_equal(decide_alone(s, 1, twice7, 2, false, &builds), GATE_SCHED_REJECT);
    gate_sched *t = new_sched(GATE_STRATEGY_SERIAL, 1, 1);
    gate_sched_inherit(t, s);
    gate_sched_delete(s);
    assert_int_equal(decide_alone(t, 1, other, 7, false, &builds), GATE_SCHED_REJECT);
    assert_int_equal(builds, 7);
    assert_int_equal(decide_alone(t, 2, flake7, 1, true, &builds), GATE_SCHED_LAND);
    assert_int_equal(nreopens, 0);
    gate_sched_delete(t);
}

/*
 * flaky_alike 3 (`flaky-alike = 3`): on a configuration seen to flake lately
 * two failures alike may be two flakes, a third alike decides.  After a
 * flaked with 7: a good change whose a fails with 9 twice, then passes,
 * lands (with 2 it is rejected at two builds); a real failure ending 8 every
 * time is rejected at three; on b, never seen to flake, two still decide.
 * The parameter is checked.
 */
static void test_flaky_alike(void **state)
{
    (void)state;
    static const unsigned long long flake7[] = {7}, twice9[] = {9, 9}, always8[] = {8, 8, 8};
    unsigned builds = 0;
    for (unsigned alike = 2; alike <= 3; alike++) {
        gate_sched_params p;
        gate_sched_params_default(&p);
        p.strategy = GATE_STRATEGY_SERIAL;
        p.flaky_alike = alike;
        gate_sched *s = NULL;
        assert_true(keel_ok(gate_sched_new(&p, &s)));
        nreopens = 0;
        assert_int_equal(decide_alone(s, 1, flake7, 1, false, &builds), GATE_SCHED_LAND);
        assert_int_equal(decide_alone(s, 2, twice9, 2, false, &builds),
                         alike == 3 ? GATE_SCHED_LAND : GATE_SCHED_REJECT);
        assert_int_equal(builds, alike == 3 ? 3 : 2);
        assert_int_equal(decide_alone(s, 3, always8, 3, false, &builds), GATE_SCHED_REJECT);
        assert_int_equal(builds, alike);
        assert_int_equal(decide_alone(s, 4, always8, 3, true, &builds), GATE_SCHED_REJECT);
        assert_int_equal(builds, 2); /* b never flaked */
        /* two alike, then another ending: the repeat stands (not suspect flakes, 7 runs) */
        static const unsigned long long alike_then_other[] = {5, 5, 6, 11, 12, 13, 14};
        assert_int_equal(decide_alone(s, 5, alike_then_other, 7, false, &builds),
                         GATE_SCHED_REJECT);
        assert_int_equal(builds, alike);
        gate_sched_delete(s);
    }
    gate_sched_params p;
    gate_sched_params_default(&p);
    gate_sched *s = NULL;
    for (unsigned bad = 1; bad <= 4; bad += 3) {
        p.flaky_alike = bad;
        keel_status st = gate_sched_new(&p, &s);
        assert_true(KEEL_HAS(st, KEEL_E_INVAL));
        keel_status_free(st);
    }
}

/* The last REJECT's reason (poll_kinds). */
static gate_sched_why last_why;

/* The decisions waiting, their kinds and changes in order (FLAKY ones left out). */
static size_t poll_kinds(gate_sched *s, gate_sched_kind *kind, long long *change, size_t max)
{
    size_t n = 0;
    gate_sched_decision d;
    while (gate_sched_poll(s, &d)) {
        if (d.kind == GATE_SCHED_FLAKY)
            continue;
        assert_true(n < max);
        kind[n] = d.kind;
        change[n++] = d.kind == GATE_SCHED_LAND ? d.changes[0] : d.change;
        if (d.kind == GATE_SCHED_REJECT)
            last_why = d.decided.why;
    }
    return n;
}

/*
 * A tree holding a change that passed a configuration is evidence that its
 * failure there is not the change's (the flaky test of parson's replay,
 * session 32: two runs in a row ending alike on one tree): 1 ahead of 2 in a
 * window of 2 (speculative, retries 1), 1's a fails ending 9 while 2's
 * candidate, built on it, passes both; 1's retry fails with 9 again.  The old
 * rule rejected 1 ("the same way twice"); now the two alike are suspect
 * flakes, 1 runs a again, passes and lands, 2 behind it; and so does 7 when
 * 8's candidate on it passes a but fails b (8's own failure: 8 is rejected
 * for it, two alike).  A real failure that
 * such a tree does not show (change 3's a fails with 8 on every tree holding
 * it, its stacked candidate too) is rejected at two alike as before, and one
 * a tree holding it passed (4, fixed by 5 behind it) after its suspect
 * runs, 1 + retries + GATE_SCHED_SUSPECT_EXTRA, `held` (its rejection's why).
 */
static void test_held_by_a_tree_that_passed(void **state)
{
    (void)state;
    gate_sched_params p;
    gate_sched_params_default(&p);
    p.strategy = GATE_STRATEGY_SPECULATIVE;
    p.max_depth = 2;
    p.retries = 1;
    gate_sched *s = NULL;
    assert_true(keel_ok(gate_sched_new(&p, &s)));
    gate_sched_kind kind[8];
    long long change[8];

    assert_true(keel_ok(gate_sched_enqueue(s, 1)));
    assert_true(keel_ok(gate_sched_enqueue(s, 2)));
    gate_sched_build b1 = next_build(s), b2 = next_build(s);
    assert_true(b1.n == 1 && b1.changes[0] == 1 && b2.n == 1 && b2.changes[0] == 2);
    results2(s, b1.candidate, 0, 9, 1, 0, 100); /* 1: a fails, ending 9 */
    results2(s, b2.candidate, 1, 0, 1, 0, 102); /* 2, built on 1: both pass */
    gate_sched_build r = next_build(s);
    assert_true(r.candidate == b1.candidate && r.attempt == 2 && r.nconfigs == 1);
    results2(s, r.candidate, 0, 9, -1, 0, 104);          /* the retry: 9 again */
    assert_int_equal(poll_kinds(s, kind, change, 8), 0); /* not rejected: suspect */
    r = next_build(s);
    assert_true(r.candidate == b1.candidate && r.attempt == 3);
    results2(s, r.candidate, 1, 0, -1, 0, 105); /* and it passes: a flake */
    assert_int_equal(poll_kinds(s, kind, change, 8), 2);
    assert_true(kind[0] == GATE_SCHED_LAND && change[0] == 1);
    assert_true(kind[1] == GATE_SCHED_LAND && change[1] == 2);

    /* the same when the candidate behind passes a but fails b by a change of its own */
    assert_true(keel_ok(gate_sched_enqueue(s, 7)));
    assert_true(keel_ok(gate_sched_enqueue(s, 8)));
    b1 = next_build(s);
    b2 = next_build(s);
    results2(s, b2.candidate, 1, 0, 0, 5, 106);  /* 8, on 7: a passes, b fails (8's own) */
    results2(s, b1.candidate, 0, 19, 1, 0, 108); /* 7: a fails, ending 19 (not 9: a flake's now) */
    r = next_build(s);
    assert_true(r.candidate == b1.candidate && r.attempt == 2);
    results2(s, r.candidate, 0, 19, -1, 0, 109);
    assert_int_equal(poll_kinds(s, kind, change, 8), 0); /* held: not rejected */
    r = next_build(s);
    assert_true(r.candidate == b1.candidate && r.attempt == 3);
    results2(s, r.candidate, 1, 0, -1, 0, 110);
    assert_true(poll_kinds(s, kind, change, 8) >= 1);
    assert_true(kind[0] == GATE_SCHED_LAND && change[0] == 7);
    for (int k = 0; k < 4 && !(kind[0] == GATE_SCHED_REJECT && change[0] == 8); k++) {
        r = next_build(s); /* 8 again (a retry of b, or a build on the new tip) */
        results2(s, r.candidate, r.attempt > 1 ? -1 : 1, 0, 0, 5, 111 + k);
        (void)poll_kinds(s, kind, change, 8);
    }
    assert_true(kind[0] == GATE_SCHED_REJECT && change[0] == 8);
    assert_int_equal(last_why, GATE_SCHED_WHY_SAME);

    assert_true(keel_ok(gate_sched_enqueue(s, 3)));
    assert_true(keel_ok(gate_sched_enqueue(s, 6)));
    b1 = next_build(s);
    b2 = next_build(s);
    results2(s, b1.candidate, 0, 8, 1, 0, 110); /* 3 breaks a */
    results2(s, b2.candidate, 0, 8, 1, 0, 112); /* and 6's tree holds it */
    r = next_build(s);
    assert_true(r.candidate == b1.candidate && r.attempt == 2);
    results2(s, r.candidate, 0, 8, -1, 0, 114);
    assert_int_equal(poll_kinds(s, kind, change, 8), 1);
    assert_true(kind[0] == GATE_SCHED_REJECT && change[0] == 3);
    assert_int_equal(last_why, GATE_SCHED_WHY_SAME);
    r = next_build(s); /* 6 again, on the tip */
    assert_true(r.n == 1 && r.changes[0] == 6);
    results2(s, r.candidate, 1, 0, 1, 0, 116);
    assert_int_equal(poll_kinds(s, kind, change, 8), 1);
    assert_true(kind[0] == GATE_SCHED_LAND && change[0] == 6);

    assert_true(keel_ok(gate_sched_enqueue(s, 4)));
    assert_true(keel_ok(gate_sched_enqueue(s, 5)));
    b1 = next_build(s);
    b2 = next_build(s);
    results2(s, b1.candidate, 0, 8, 1, 0, 120); /* 4 alone breaks a */
    results2(s, b2.candidate, 1, 0, 1, 0, 122); /* 5 on it mends it */
    unsigned runs = 1;
    for (;;) {
        size_t n = poll_kinds(s, kind, change, 8);
        if (n > 0) {
            assert_true(kind[0] == GATE_SCHED_REJECT && change[0] == 4);
            break;
        }
        r = next_build(s);
        assert_true(r.candidate == b1.candidate);
        results2(s, r.candidate, 0, 8, -1, 0, 124 + runs);
        runs++;
        assert_true(runs <= 1 + p.retries + GATE_SCHED_SUSPECT_EXTRA);
    }
    assert_int_equal(runs, 1 + p.retries + GATE_SCHED_SUSPECT_EXTRA);
    assert_int_equal(last_why, GATE_SCHED_WHY_HELD); /* alike every time, though held */
    assert_string_equal(gate_sched_why_name(last_why), "held");
    gate_sched_delete(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdict_per_configuration),
        cmocka_unit_test(test_verdict_names_decisive_configuration),
        cmocka_unit_test(test_bisection_confirms_alone),
        cmocka_unit_test(test_failure_signatures),
        cmocka_unit_test(test_flaky_endings),
        cmocka_unit_test(test_flaky_endings_recalled),
        cmocka_unit_test(test_rejection_taken_back),
        cmocka_unit_test(test_reopened_on_another_configuration),
        cmocka_unit_test(test_flaky_alike),
        cmocka_unit_test(test_held_by_a_tree_that_passed),
        cmocka_unit_test(test_watch_of_a_change_queued_again),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
