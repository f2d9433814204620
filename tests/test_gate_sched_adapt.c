/*
 * test_gate_sched_adapt.c - adaptive's choice of shape (gate_sched_shape) on
 * outlooks made by hand: pure logic, no simulated queue.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "capacity.h"
#include "sched_int.h"
#include "scheduler.h"

/* The bench's free executor: 2 configurations (b 0.8 of a), not limited, a window of 4. */
static void free_outlook(gate_sched_params *pr, gate_sched_outlook *o, double p)
{
    gate_sched_params_default(pr);
    pr->retries = 0;
    memset(o, 0, sizeof(*o));
    o->p = p;
    o->n = 50.0; /* about what decay 0.98 keeps */
    o->queued = 100;
    o->parallel = GATE_CAP_UNLIMITED;
    o->jobs = 2;
    o->width = 1.8;
}

/* The bench's 2 cores: 2 configurations (b 0.8 of a), 2 jobs at once, a window of up to 4. */
static void two_cores_outlook(gate_sched_params *pr, gate_sched_outlook *o, double p)
{
    free_outlook(pr, o, p);
    o->parallel = 2.0;
}

/*
 * Shape (b, d)'s model time and builds, each over the fixed strategies'
 * shape the model finds fastest (batches of 1, 4 and 8, depth 1 or 4).
 */
static void over_fixed(const gate_sched_params *pr, const gate_sched_outlook *o, unsigned b,
                       unsigned d, double *time, double *builds)
{
    static const unsigned fb[] = {1, 4, 8}, fd[] = {1, 4};
    double at = INFINITY, ab = 0.0;
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 2; j++) {
            double t = gate_sched_shape_time(pr, o, fb[i], fd[j]);
            if (t < at) {
                at = t;
                ab = gate_sched_shape_builds(pr, o, fb[i], fd[j]);
            }
        }
    *time = gate_sched_shape_time(pr, o, b, d) / at;
    *builds = gate_sched_shape_builds(pr, o, b, d) / ab;
}

/*
 * Where the rate is known, adaptive's shape meets issue 21's bound against
 * the fixed strategies by its own model (time within 1.05x, builds within
 * 1.1x the fastest fixed shape's), and is among the fastest that do: on the
 * free executor at p = 0.1 batches of 2 in a window of 4 are 13% faster
 * than the fastest fixed shape for 12% more builds, and the old choice (the
 * least time, then the fewest builds within 2% of it) took them (bench_gate
 * --seeds 100: 1.117x the builds of spec-batch w=4 b=4 on the mean).  Where
 * it is uncertain (the evidence of 50 changes) it hedges, and still meets
 * the bound at the estimate.  The shape in use is kept when it is no worse
 * (its excess within 0.005 of the least, its time within 2%), not when it
 * is both slower and builds more.
 */
static void test_meets_the_bound_by_the_model(void **state)
{
    (void)state;
    gate_sched_params pr;
    gate_sched_outlook o;
    unsigned b = 0, d = 0;
    double t = 0.0, bu = 0.0;
    static const double ps[] = {0.02, 0.05, 0.1, 0.2, 0.3};
    for (int ex = 0; ex < 2; ex++)
        for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
            free_outlook(&pr, &o, ps[i]);
            if (ex == 1)
                o.parallel = 2.0;
            o.n = 1e6; /* known */
            gate_sched_shape(&pr, &o, &b, &d);
            over_fixed(&pr, &o, b, d, &t, &bu);
            print_message("%s p %.2f: %ux%u, %.3f of the time, %.3f of the builds\n",
                          ex ? "2 cores" : "free", ps[i], b, d, t, bu);
            assert_true(t <= 1.05 + 1e-9 && bu <= 1.1 + 1e-9);
            o.n = 50.0; /* uncertain */
            gate_sched_shape(&pr, &o, &b, &d);
            o.n = 1e6;
            over_fixed(&pr, &o, b, d, &t, &bu);
            assert_true(t <= 1.05 + 1e-9 && bu <= 1.1 + 1e-9);
        }
    free_outlook(&pr, &o, 0.1);
    o.n = 1e6;
    assert_true(gate_sched_shape_time(&pr, &o, 2, 4) < 0.9 * gate_sched_shape_time(&pr, &o, 4, 4));
    over_fixed(&pr, &o, 2, 4, &t, &bu);
    assert_true(bu > 1.1); /* the premise: batches of 2 build too much */
    gate_sched_shape(&pr, &o, &b, &d);
    assert_true(b >= 3 && d == 4);
    unsigned nb = b;
    o.batch = nb - 1; /* smaller batches in use: faster, building more: left for the bound */
    o.depth = 4;
    gate_sched_shape(&pr, &o, &b, &d);
    assert_int_equal(b, nb);
    two_cores_outlook(&pr, &o, 0.02); /* 2 cores: batches of 1 two deep are slower and build */
    o.batch = 1;                      /* more than the batches chosen: not kept */
    o.depth = 2;
    gate_sched_shape(&pr, &o, &b, &d);
    assert_true(b > 1 && d == 1);
}

/*
 * The changes a round decides (batch times depth) on 2 cores at p with
 * `flake` and a failed build's time and work and its retry's, over a
 * pass's (cost[0..3]).
 */
static unsigned two_cores_failing(double p, double flake, const double *cost)
{
    gate_sched_params pr;
    gate_sched_outlook o;
    unsigned b = 0, d = 0;
    two_cores_outlook(&pr, &o, p);
    o.flake = flake;
    o.fail_time = cost[0];
    o.fail_work = cost[1];
    o.retry_time = cost[2];
    o.retry_work = cost[3];
    gate_sched_shape(&pr, &o, &b, &d);
    print_message("2 cores, failures at %.1f of a pass, p %.2f: %ux%u\n", cost[0], p, b, d);
    return b * d;
}

/*
 * On 2 cores (a window of 4 runs at most half at once) at estimates where
 * serial is the fastest fixed shape on part of the posterior (p 0.25-0.29
 * of 50 changes), batches of 3 are faster on the mean, by 3-10% by the
 * model, but their worst decile over the next 50 changes is not: a batch's
 * failure holds the queue for its isolation, and serial takes one build a
 * change whatever fails (bench_gate's 2-core row at p = 0.3: batches of 3
 * fixed, 0.986 of serial's mean makespan, 1.086 of its worst decile).  So
 * adaptive takes serial there.  The free executor, which runs the window
 * at once, goes on deciding more than one change a round at the same
 * estimates; and so does the 2-core executor where failures are quick
 * (parson's: a broken build fails in a tenth of a pass), where no fixed
 * shape is slower than serial's one build a change.  Nor is the decile
 * judged where a failed build takes 0.7 of a pass (bench_gate's
 * `--fail-length 0.05` measures about 0.5): serial's time spreads there
 * too, and at p 0.33 batches of 2 are taken as without the decile (judged,
 * it took serial, and cost that table's 2-core row at p = 0.3).
 */
static void test_worst_decile_where_serial_is_fastest(void **state)
{
    (void)state;
    gate_sched_params pr;
    gate_sched_outlook o;
    unsigned b = 0, d = 0;
    static const double ps[] = {0.25, 0.26, 0.27, 0.28, 0.29};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        two_cores_outlook(&pr, &o, ps[i]);
        o.flake =
            0.02; /* the prior's 0.1 faded over 200 builds (bench_gate's rows without flakes) */
        double serial = gate_sched_shape_time(&pr, &o, 1, 1);
        double threes = gate_sched_shape_time(&pr, &o, 3, 1);
        gate_sched_shape(&pr, &o, &b, &d);
        print_message("2 cores p %.2f: %ux%u (batches of 3 %.3f of serial's time)\n", ps[i], b, d,
                      threes / serial);
        assert_true(threes < serial * 0.975); /* the premise: faster on the mean */
        assert_int_equal(b, 1);
        assert_int_equal(d, 1);
        o.parallel = GATE_CAP_UNLIMITED;
        gate_sched_shape(&pr, &o, &b, &d);
        print_message("free p %.2f: %ux%u\n", ps[i], b, d);
        assert_true(b * d > 1);
        static const double parson[] = {0.1, 0.3, 0.5, 0.3}; /* parson's quick failures */
        assert_true(two_cores_failing(ps[i], 0.05, parson) > 1);
    }
    static const double ps7[] = {0.28, 0.30, 0.33};
    static const double at7[] = {0.7, 0.49, 0.21, 0.175};
    for (size_t i = 0; i < sizeof(ps7) / sizeof(ps7[0]); i++)
        assert_true(two_cores_failing(ps7[i], 0.02, at7) > 1);
}

/* The first build of a new adaptive scheduler (defaults: not limited) of 100 changes. */
static size_t first_build(const gate_sched_memory *m, double *p)
{
    gate_sched_params pr;
    gate_sched_params_default(&pr);
    gate_sched *s = NULL;
    assert_true(keel_ok(gate_sched_new(&pr, &s)));
    if (m != NULL)
        gate_sched_recall(s, m);
    for (long long c = 1; c <= 100; c++)
        assert_true(keel_ok(gate_sched_enqueue(s, c)));
    gate_sched_build b;
    bool have = false;
    assert_true(keel_ok(gate_sched_next(s, &b, &have)));
    assert_true(have);
    gate_sched_stats st;
    gate_sched_stats_get(s, &st);
    *p = st.p;
    size_t n = b.n;
    gate_sched_delete(s);
    return n;
}

/*
 * A gate started again starts from what it learned of its queue
 * (gate_sched_recall): from the default prior (0.1, worth 2 changes) a new
 * scheduler builds a batch first (most of so weak a prior's weight is at
 * rates where batches pay), but not max-batch's 8; recalling a queue where
 * 2% of the changes fail a batch at least as large, and recalling one where
 * 30% fail single changes.  The memory counts at most
 * GATE_SCHED_RECALL_CHANGES changes on top of the prior, so that the next
 * outcomes move it; out-of-range memories (a damaged store's) count for
 * nothing.
 */
static void test_recall_starts_warm(void **state)
{
    (void)state;
    double p = 0.0;
    size_t cold = first_build(NULL, &p); /* the weak prior */
    assert_true(fabs(p - 0.1) < 1e-12);
    gate_sched_memory m = {0.02, 48.0, 0.05, 30.0};
    size_t n = first_build(&m, &p);
    print_message("first builds: cold %zu changes, after a queue where 2%% failed %zu\n", cold, n);
    assert_true(cold >= 2 && cold < 8);
    assert_true(n >= cold);
    double w = GATE_SCHED_RECALL_CHANGES; /* capped: 48 changes count as 25 */
    assert_true(fabs(p - (0.02 * w + 0.1 * 2.0) / (w + 2.0)) < 1e-12);
    m.p = 0.3;
    assert_int_equal(first_build(&m, &p), 1);
    m.n = 4.0; /* below the cap: counted in full */
    (void)first_build(&m, &p);
    assert_true(fabs(p - (0.3 * 4.0 + 0.1 * 2.0) / 6.0) < 1e-12);
    const gate_sched_memory bad[] = {{NAN, 48.0, NAN, 30.0},
                                     {2.0, 48.0, 0.05, NAN},
                                     {0.02, -1.0, 0.05, 30.0},
                                     {0.02, INFINITY, 0.05, 30.0}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(first_build(&bad[i], &p), cold);
        assert_true(fabs(p - 0.1) < 1e-12);
    }
}

/*
 * What a scheduler learned (gate_sched_remember) is its decayed counts
 * without the priors: a queue of 5 changes built one at a time, the third
 * bad, then a flake, gives p over n changes; recalled by a new scheduler it
 * gives the same estimate as the old one had (n below the cap).
 */
static void test_remember_what_was_decided(void **state)
{
    (void)state;
    gate_sched_params pr;
    gate_sched_params_default(&pr);
    pr.strategy = GATE_STRATEGY_SERIAL;
    gate_sched *s = NULL;
    assert_true(keel_ok(gate_sched_new(&pr, &s)));
    gate_sched_memory m;
    gate_sched_remember(s, &m);
    assert_true(m.n == 0.0 && m.p == 0.0 && m.flake_n == 0.0 && m.flake == 0.0);
    for (long long c = 1; c <= 5; c++)
        assert_true(keel_ok(gate_sched_enqueue(s, c)));
    for (long long c = 1; c <= 5; c++) {
        gate_sched_build b;
        bool have = false;
        assert_true(keel_ok(gate_sched_next(s, &b, &have)));
        assert_true(have && b.n == 1 && b.changes[0] == c);
        if (c == 3) {
            assert_true(keel_ok(gate_sched_result_final(s, b.candidate)));
        } else if (c == 4) { /* a flake: failed, then passed on retry */
            assert_true(keel_ok(gate_sched_result(s, b.candidate, false)));
            assert_true(keel_ok(gate_sched_next(s, &b, &have)));
            assert_true(have && b.attempt == 2);
            assert_true(keel_ok(gate_sched_result(s, b.candidate, true)));
        } else {
            assert_true(keel_ok(gate_sched_result(s, b.candidate, true)));
        }
        gate_sched_decision d;
        while (gate_sched_poll(s, &d))
            ;
    }
    gate_sched_remember(s, &m);
    /* five outcomes decayed by 0.98 each: the bad one third */
    double n = 1.0 + 0.98 + 0.98 * 0.98 + 0.98 * 0.98 * 0.98 + 0.98 * 0.98 * 0.98 * 0.98;
    assert_true(fabs(m.n - n) < 1e-12);
    assert_true(fabs(m.p - 0.98 * 0.98 / n) < 1e-12);
    assert_true(m.flake > 0.0 && m.flake < 1.0 && m.flake_n > 0.0);
    gate_sched_stats was, now;
    gate_sched_stats_get(s, &was);
    gate_sched_delete(s);
    assert_true(keel_ok(gate_sched_new(&pr, &s)));
    gate_sched_recall(s, &m);
    gate_sched_stats_get(s, &now);
    assert_true(fabs(now.p - was.p) < 1e-12);
    gate_sched_delete(s);
}

/*
 * On 2 cores near p = 0.3, batches of 3 are a little faster than serial on
 * the mean (the model: 3% at p = 0.29) but their time spreads with the
 * failures, where serial's is one build a change whatever fails (bench_gate,
 * p = 0.3: batches of 3 1.4% faster on the mean, 8.5% slower on the worst
 * decile).  Serial is chosen there: within the bound's 5% of the fastest,
 * and its worst decile below the batches'.  Where batching wins by more
 * (2 cores at p = 0.1, the free executor) the batches stay.
 */
static void test_serial_when_as_good(void **state)
{
    (void)state;
    gate_sched_params pr;
    gate_sched_outlook o;
    unsigned b = 0, d = 0;
    two_cores_outlook(&pr, &o, 0.29);
    double t1 = gate_sched_shape_time(&pr, &o, 1, 1), t3 = gate_sched_shape_time(&pr, &o, 3, 1);
    assert_true(t3 < t1 / 1.02 && t3 > t1 / 1.05); /* the premise: batches of 3 faster */
    gate_sched_shape(&pr, &o, &b, &d);
    assert_int_equal(b, 1);
    assert_int_equal(d, 1);
    o.batch = 3; /* batches of 3 in use: left too */
    o.depth = 1;
    gate_sched_shape(&pr, &o, &b, &d);
    assert_int_equal(b, 1);
    assert_int_equal(d, 1);
    two_cores_outlook(&pr, &o, 0.1); /* batches much faster: kept */
    gate_sched_shape(&pr, &o, &b, &d);
    assert_true(b >= 2);
    assert_int_equal(d, 1);
    free_outlook(&pr, &o, 0.02); /* the free executor: batches in a window */
    gate_sched_shape(&pr, &o, &b, &d);
    assert_true(b >= 4);
    assert_int_equal(d, 4);
}

/*
 * The shape of a new adaptive scheduler on two cores (told 2) that recalls a
 * queue where `p` of the changes fail, after the gate timed 12 passes of each
 * of configurations a (1 s) and b (0.8 s) one at a time, then failed the
 * first build of a queue (both configurations, each `fail` of its pass,
 * alone) and the builds after it, 6 first builds in all: the shape a gate
 * started again with what that one learned (gate_sched_inherit) chooses.
 */
static double shape_after_failures(double p, double fail, unsigned *batch, unsigned *depth)
{
    gate_sched_params pr;
    gate_sched_params_default(&pr);
    pr.parallel = 2.0;
    gate_sched *s = NULL;
    assert_true(keel_ok(gate_sched_new(&pr, &s)));
    gate_sched_memory m = {p, 48.0, 0.0, 0.0};
    gate_sched_recall(s, &m);
    for (int i = 0; i < 12; i++) {
        gate_sched_job_time a = {"a", 1000.0, 1.0, 0.0, true}, b = {"b", 800.0, 1.0, 0.0, true};
        gate_sched_job_timed(s, &a);
        gate_sched_job_timed(s, &b);
    }
    for (long long c = 1; c <= 100; c++)
        assert_true(keel_ok(gate_sched_enqueue(s, c)));
    for (int failed = 0; failed < 6;) {
        gate_sched_build bu;
        bool have = false;
        assert_true(keel_ok(gate_sched_next(s, &bu, &have)));
        assert_true(have); /* one at a time: each fails before the next starts */
        gate_sched_job_time a = {"a", 1000.0 * fail, 1.0, 0.0, false};
        gate_sched_job_time b = {"b", 800.0 * fail, 1.0, 0.0, false};
        gate_sched_job_timed(s, &a);
        gate_sched_job_timed(s, &b);
        gate_sched_run runs[2] = {{"a", false, 7, 0}, {"b", false, 8, 0}}; /* a retry repeats */
        assert_true(keel_ok(gate_sched_results(s, bu.candidate, runs, bu.attempt == 1 ? 2 : 1)));
        failed += bu.attempt == 1;
        gate_sched_decision d;
        while (gate_sched_poll(s, &d))
            if (d.kind == GATE_SCHED_CANCEL_BUILD)
                fail_msg("nothing else runs");
    }
    gate_sched *fresh = NULL; /* what it learned of the executor, the queue's p recalled */
    assert_true(keel_ok(gate_sched_new(&pr, &fresh)));
    gate_sched_recall(fresh, &m);
    gate_sched_inherit(fresh, s);
    gate_sched_delete(s);
    for (long long c = 1; c <= 100; c++)
        assert_true(keel_ok(gate_sched_enqueue(fresh, c)));
    gate_sched_build bu;
    bool have = false;
    assert_true(keel_ok(gate_sched_next(fresh, &bu, &have)));
    gate_sched_stats st;
    gate_sched_stats_get(fresh, &st);
    *batch = st.batch;
    *depth = st.depth;
    gate_sched_delete(fresh);
    return st.p;
}

/*
 * A failed build is priced at its length (gate_cap_fail_length): where the
 * gate's failures stop at their first error (50 ms where a pass takes 1 s:
 * a compile error), a failure costs little of a round, and adaptive tests
 * more changes at once than where the same failures run their course (the
 * window's builds behind a failure, its retries and its isolation's failing
 * halves all end early).  The old model priced every failure as a whole
 * build and chose the same shape for both.
 */
static void test_quick_failures_speculate_more(void **state)
{
    (void)state;
    static const double ps[] = {0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4};
    int more = 0;
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        unsigned qb = 0, qd = 0, wb = 0, wd = 0;
        double qp = shape_after_failures(ps[i], 0.05, &qb, &qd);
        double wp = shape_after_failures(ps[i], 1.0, &wb, &wd);
        print_message("p %.2f: quick failures %ux%u (p %.3f), whole ones %ux%u (p %.3f)\n", ps[i],
                      qb, qd, qp, wb, wd, wp);
        assert_true(qp == wp);           /* the same outcomes */
        assert_true(qb * qd >= wb * wd); /* as many changes in the window at least */
        more += qb * qd > wb * wd;
    }
    assert_true(more >= 4); /* more at all seven rates here (session 27) */
}

/*
 * A batch that fails at the front of a window 2 deep is isolated one build
 * at a time: its first half is built alone while the second, known bad,
 * stops the window behind it (sched.c: gate_sched_next), until the last
 * pair, whose second change is confirmed beside the first.  The old model
 * took 0.6 of the isolation as on the window's path at every depth above 1
 * and rated batches of 6 two deep as fast as batches of 4 four deep on the
 * bench's 8 cores (jobs of 2 threads: 4 at once) at p = 0.1 with failures
 * that end early (0.69 of a pass's time, 0.52 of its work); simulated
 * (bench_gate --model 2,1,0 --fail-length 0.05 --seeds 20), 6x2 takes
 * 0.353 T a change and 4x4 0.300, 18% more, and adaptive, choosing 6x2 there,
 * took 1.13x the time of spec-batch w=4 b=4.
 */
/* The bench's 8 cores (4 jobs at once) at p = 0.1 known, failures ending early. */
static void eight_cores_outlook(gate_sched_params *pr, gate_sched_outlook *o)
{
    free_outlook(pr, o, 0.1);
    o->n = 1e6; /* the rate known: the model at p itself */
    o->parallel = 4.0;
    o->fail_time = 0.69;
    o->fail_work = 0.52;
}

static void test_isolation_holds_a_shallow_window(void **state)
{
    (void)state;
    gate_sched_params pr;
    gate_sched_outlook o;
    eight_cores_outlook(&pr, &o);
    double t62 = gate_sched_shape_time(&pr, &o, 6, 2), t44 = gate_sched_shape_time(&pr, &o, 4, 4);
    print_message("6x2 %.3f, 4x4 %.3f T a change\n", t62, t44);
    assert_true(t62 > t44 * 1.05);
    unsigned batch = 0, depth = 0;
    gate_sched_shape(&pr, &o, &batch, &depth);
    print_message("chosen %ux%u\n", batch, depth);
    assert_true(depth >= 3);
}

/*
 * The bench's free executor at p known, retries = 1, failures that end
 * early (bench_gate --fail-length 0.05: a failed build 0.62 of a pass's
 * time and 0.39 of its work, its retry 0.05 of both).
 */
static void quick_failures_outlook(gate_sched_params *pr, gate_sched_outlook *o, double p)
{
    free_outlook(pr, o, p);
    pr->retries = 1;
    o->n = 1e6;
    o->fail_time = 0.62;
    o->fail_work = 0.39;
    o->retry_time = o->retry_work = 0.05;
}

/*
 * The model prices a flake's retry on every build of the round that reaches
 * the front and on every build and retry of an isolation, the failing ones
 * too, though a flake delays only a build that would pass (a failing build is
 * retried anyway).  Counting only those (session 26) matched bench_gate four
 * deep with quick failures, but made adaptive 1.10x speculative-batch's time
 * on inih's replay, 0.95x with this count (one batch boundary there; as fast
 * or faster on three of four other injections: docs/benchmarks.md, session
 * 27).
 * So single changes take flake (1 + p r) builds a change more at any depth
 * (the builds that pass would give flake (1 - p)), one deep the retries'
 * time too (one job: a build's width over its jobs).
 */
static void test_flakes_priced_on_every_build(void **state)
{
    (void)state;
    static const double ps[] = {0.02, 0.1, 0.3}, flake = 0.1;
    static const unsigned bs[] = {1, 2, 4, 8}, ds[] = {1, 2, 4};
    gate_sched_params pr;
    gate_sched_outlook o;
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
        for (size_t j = 0; j < sizeof(bs) / sizeof(bs[0]); j++)
            for (size_t k = 0; k < sizeof(ds) / sizeof(ds[0]); k++) {
                quick_failures_outlook(&pr, &o, ps[i]);
                double b0 = gate_sched_shape_builds(&pr, &o, bs[j], ds[k]);
                double t0 = gate_sched_shape_time(&pr, &o, bs[j], ds[k]);
                o.flake = flake;
                double added = gate_sched_shape_builds(&pr, &o, bs[j], ds[k]) - b0;
                double later = gate_sched_shape_time(&pr, &o, bs[j], ds[k]) - t0;
                print_message("p %.2f %ux%u: flakes add %.4f builds, %.4f T a change\n", ps[i],
                              bs[j], ds[k], added, later);
                assert_true(added > 0.0 && later > 0.0);
                double one = flake * (1.0 + ps[i] * (double)pr.retries);
                if (bs[j] == 1) /* a round's builds reaching the front: one a change decided */
                    assert_true(fabs(added - one) < 1e-9);
                if (bs[j] == 1 && ds[k] == 1)
                    assert_true(fabs(later - one * o.width / o.jobs) < 1e-9);
            }
}

/*
 * A bad change's candidate that failed is retried at the front, and the
 * window stacks new candidates on its retry as on any build (a flake's
 * retry passes beneath them: sched.c, gate_sched_next); where it was the
 * window's last (nothing failed behind it to stop the window), they hold
 * its failure too and are built for nothing.  So for single changes the
 * builds retries add per change decided are p one deep (the retries
 * themselves) and more deeper.  The old model counted only the retries
 * (bench_gate --model 0,1,1 --fail-length 1 --seeds 20: single changes four
 * deep 1.371 builds a change, simulated 1.435; with these counted 1.415).
 */
static void test_builds_stacked_on_a_retry(void **state)
{
    (void)state;
    static const double ps[] = {0.02, 0.1, 0.3};
    static const unsigned ds[] = {1, 2, 4};
    gate_sched_params pr;
    gate_sched_outlook o;
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
        for (size_t k = 0; k < sizeof(ds) / sizeof(ds[0]); k++) {
            quick_failures_outlook(&pr, &o, ps[i]);
            pr.retries = 0;
            double b0 = gate_sched_shape_builds(&pr, &o, 1, ds[k]);
            pr.retries = 1;
            double added = gate_sched_shape_builds(&pr, &o, 1, ds[k]) - b0;
            print_message("p %.2f, 1x%u: a retry adds %.4f builds a change\n", ps[i], ds[k], added);
            if (ds[k] == 1)
                assert_true(fabs(added - ps[i]) < 1e-9);
            else
                assert_true(added > ps[i] + 1e-6);
        }
}

/*
 * The sizes searched: every one up to GATE_SCHED_LADDER_ALL, then steps of
 * at most an eighth, the limit and the sizes asked for, in order, within
 * GATE_SCHED_LADDER_MAX (max-batch 1024: 61 sizes and the ones asked for,
 * where every size, 1024 x 256 shapes, took seconds a choice).
 */
static void test_ladder_sizes(void **state)
{
    (void)state;
    unsigned v[GATE_SCHED_LADDER_MAX];
    size_t n = gate__sched_ladder(8, NULL, 0, v);
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(v[i], i + 1);
    const unsigned also[] = {512, 1024, 700, 0, 2000};
    n = gate__sched_ladder(1024, also, 5, v);
    assert_true(n <= GATE_SCHED_LADDER_MAX);
    for (size_t i = 0; i < GATE_SCHED_LADDER_ALL; i++)
        assert_int_equal(v[i], i + 1);
    bool has512 = false, has700 = false;
    for (size_t i = 0; i + 1 < n; i++) {
        assert_true(v[i] < v[i + 1]);
        assert_true(v[i + 1] <= (unsigned)ceil((double)v[i] * 1.125));
        has512 |= v[i] == 512;
        has700 |= v[i] == 700;
    }
    assert_true(has512 && has700);
    assert_int_equal(v[n - 1], 1024);
    assert_true(n < 70); /* not every size */
    n = gate__sched_ladder(1, also, 5, v);
    assert_int_equal(n, 1);
    assert_int_equal(v[0], 1);
}

/* Around the pick, every size from its neighbour below to its neighbour above, within 32 of it. */
static void test_sizes_around_the_pick(void **state)
{
    (void)state;
    unsigned v[GATE_SCHED_LADDER_MAX], box[GATE_SCHED_REFINE_MAX + 1];
    size_t n = gate__sched_ladder(256, NULL, 0, v);
    assert_int_equal(gate__sched_around(v, n, 5, box), 3); /* 4, 5, 6: no size skipped */
    assert_int_equal(box[0], 4);
    assert_int_equal(box[2], 6);
    assert_int_equal(gate__sched_around(v, n, 43, box), 0); /* not on the ladder */
    assert_int_equal(gate__sched_around(v, n, 1, box), 2);  /* 1, 2 */
    unsigned lo = 0, hi = 0;                                /* 47's neighbours */
    for (size_t i = 1; i + 1 < n; i++)
        if (v[i] == 47) {
            lo = v[i - 1];
            hi = v[i + 1];
        }
    assert_true(lo > 0 && lo < 46 && hi > 48);
    size_t k = gate__sched_around(v, n, 47, box);
    assert_int_equal(k, hi - lo + 1);
    for (size_t i = 0; i < k; i++)
        assert_int_equal(box[i], lo + i);
    n = gate__sched_ladder(1024, NULL, 0, v); /* at the top, the step below is wider than 32 */
    assert_true(1024 - v[n - 2] > GATE_SCHED_REFINE_MAX / 2);
    k = gate__sched_around(v, n, 1024, box);
    assert_int_equal(k, GATE_SCHED_REFINE_MAX / 2 + 1);
    assert_int_equal(box[0], 1024 - GATE_SCHED_REFINE_MAX / 2);
    assert_int_equal(box[k - 1], 1024);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meets_the_bound_by_the_model),
        cmocka_unit_test(test_worst_decile_where_serial_is_fastest),
        cmocka_unit_test(test_recall_starts_warm),
        cmocka_unit_test(test_remember_what_was_decided),
        cmocka_unit_test(test_serial_when_as_good),
        cmocka_unit_test(test_quick_failures_speculate_more),
        cmocka_unit_test(test_isolation_holds_a_shallow_window),
        cmocka_unit_test(test_flakes_priced_on_every_build),
        cmocka_unit_test(test_builds_stacked_on_a_retry),
        cmocka_unit_test(test_ladder_sizes),
        cmocka_unit_test(test_sizes_around_the_pick),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
