/*
 * test_gate_sched.c - keel-gate's scheduler, driven by a tiny simulator: a
 * change is bad when it is in a set, a candidate passes when its tree (its
 * base's tree plus its changes) holds no bad change, and optionally the first
 * attempt of every candidate fails (a flake).  Builds run in rounds: every
 * build started in a round ends in that round.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "heaps.h"
#include "scheduler.h"

enum { MAXC = 160, MAXCAND = 4096 };
enum { ACTIVE, LANDED, REJECTED, CANCELLED };

typedef struct sim {
    gate_sched *s;
    gate_sched_params p;
    int nchanges;
    bool bad[MAXC + 1];
    bool flaky_first; /* the first attempt of every candidate fails */
    int flaky_single; /* the first attempt of the candidate of this change alone fails */
    bool final;       /* a bad candidate's failure is final (gate_sched_result_final) */
    /*
     * two configurations a and b (gate_sched_results): bad change c fails
     * config c % 2 (both when c % 3 == 0) with a signature of its own; every
     * other run fails with probability `flake` with a random signature
     */
    bool two;
    double flake;
    /*
     * > 0: every run is timed (gate_sched_timed) as on an executor that runs
     * that many jobs at once: 1000 ms alone, slower by k / timed_par when a
     * round runs k jobs
     */
    double timed_par;
    double b_len; /* b's time alone as a part of a's (0: the same) */
    /*
     * > 0: the gate's clock (gate_sched_clock) moves on by this many ms per
     * round times the builds of the round to the power `serial`: 0, builds
     * at once take the time of one; 1, they take as long as one after another
     */
    double round_ms, serial;
    int serial_rounds; /* > 0: `serial` holds for the first that many rounds only, then 0 */
    double clock_par;  /* > 0: a round takes round_ms * max(1, its jobs / clock_par) instead */
    size_t
        end_first; /* > 0: a round ends only the first that many running builds, the rest run on */
    double now_ms;
    unsigned long long rng;
    unsigned long long cand_sig[MAXCAND][2]; /* the signature its tree fails with, 0: passes */
    unsigned cand_mask[MAXCAND];             /* the configurations this attempt runs */
    int state[MAXC + 1];
    long long landed_order[MAXC];
    int nlanded;
    bool cand_bad[MAXCAND];
    bool cand_passed[MAXCAND];
    bool cand_landed[MAXCAND];
    long long cand_single[MAXCAND]; /* its change when it holds one, else 0 */
    long long cand_base[MAXCAND];   /* the candidate it stacks on, 0: nothing landed yet */
    long long tip;
    long long running[MAXCAND];
    unsigned attempt[MAXCAND];
    size_t nrunning;
    /* what was seen */
    int builds, rounds, flaky, cancels, rejects_of_good;
    size_t max_running, max_n;
    int max_depth;
    unsigned last_depth; /* the shape's depth when the last round started */
} sim;

static void sim_init(sim *m, gate_strategy strategy, int nchanges, const int *bad, size_t nbad)
{
    memset(m, 0, sizeof(*m));
    gate_sched_params_default(&m->p);
    m->p.strategy = strategy;
    m->p.retries = 0;
    m->nchanges = nchanges;
    for (size_t i = 0; i < nbad; i++)
        m->bad[bad[i]] = true;
}

/* Two configurations, the executor told and timed as running `par` jobs at once, and a clock. */
static void sim_clocked(sim *m, double par)
{
    m->two = true;
    m->p.parallel = par;
    m->timed_par = par;
    m->round_ms = 1000.0;
}

static void sim_start(sim *m)
{
    assert_true(keel_ok(gate_sched_new(&m->p, &m->s)));
    for (int c = 1; c <= m->nchanges; c++)
        assert_true(keel_ok(gate_sched_enqueue(m->s, c)));
}

static void take_decisions(sim *m)
{
    gate_sched_decision d;
    while (gate_sched_poll(m->s, &d)) {
        switch (d.kind) {
        case GATE_SCHED_LAND:
            /* a passed candidate whose base is the tip: never an untested state */
            assert_true(m->cand_passed[d.candidate]);
            assert_int_equal(m->cand_base[d.candidate], m->tip);
            m->tip = d.candidate;
            m->cand_landed[d.candidate] = true;
            for (size_t i = 0; i < d.n; i++) {
                assert_int_equal(m->state[d.changes[i]], ACTIVE);
                assert_false(m->bad[d.changes[i]]);
                m->state[d.changes[i]] = LANDED;
                m->landed_order[m->nlanded++] = d.changes[i];
            }
            break;
        case GATE_SCHED_REJECT:
            assert_int_equal(m->state[d.change], ACTIVE);
            assert_true(m->cand_bad[d.candidate]); /* the blamed candidate failed for real */
            if (!m->bad[d.change])
                m->rejects_of_good++;
            m->state[d.change] = REJECTED;
            break;
        case GATE_SCHED_FLAKY:
            m->flaky++;
            assert_false(m->cand_bad[d.candidate]);
            break;
        case GATE_SCHED_REOPEN: /* a rejection on a flake's ending taken back: queued again */
            assert_int_equal(m->state[d.change], REJECTED);
            if (!m->bad[d.change])
                m->rejects_of_good--;
            m->state[d.change] = ACTIVE;
            assert_true(keel_ok(gate_sched_enqueue(m->s, d.change)));
            break;
        case GATE_SCHED_CANCEL_BUILD: {
            size_t i = 0;
            while (i < m->nrunning && m->running[i] != d.candidate)
                i++;
            assert_true(i < m->nrunning);
            m->running[i] = m->running[--m->nrunning];
            m->cancels++;
            break;
        }
        }
    }
}

/* xorshift64*: the flakes' dice (any seed but 0). */
static unsigned long long next_rand(unsigned long long *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 2685821657736338717ull;
}

static double uniform(unsigned long long *x)
{
    return (double)(next_rand(x) >> 11) / 9007199254740992.0;
}

/* Start what the scheduler offers: a round's builds. */
static size_t start_builds(sim *m)
{
    size_t started = 0;
    if (m->round_ms > 0.0)
        gate_sched_clock(m->s, m->now_ms); /* builds start: the clock, as the gate feeds it */
    for (;;) {
        gate_sched_build b;
        bool have = false;
        assert_true(keel_ok(gate_sched_next(m->s, &b, &have)));
        if (!have)
            break;
        assert_true(b.candidate > 0 && b.candidate < MAXCAND && b.n > 0);
        if (b.n > m->max_n)
            m->max_n = b.n;
        if (b.attempt == 1) {
            long long base = b.base == 0 ? m->tip : b.base;
            bool bad = b.base != 0 && m->cand_bad[b.base];
            for (size_t i = 0; i < b.n; i++) {
                assert_int_equal(m->state[b.changes[i]], ACTIVE);
                bad = bad || m->bad[b.changes[i]];
            }
            m->cand_bad[b.candidate] = bad;
            for (int k = 0; k < 2; k++) {
                unsigned long long sig = b.base != 0 ? m->cand_sig[b.base][k] : 0;
                for (size_t i = 0; i < b.n && sig == 0; i++) {
                    long long c = b.changes[i];
                    if (m->bad[c] && (c % 2 == k || c % 3 == 0))
                        sig = 1000ull + 2ull * (unsigned long long)c + (unsigned long long)k;
                }
                m->cand_sig[b.candidate][k] = sig;
            }
            m->cand_base[b.candidate] = base;
            m->cand_single[b.candidate] = b.n == 1 ? b.changes[0] : 0;
            int depth = 1;
            for (long long c = b.base; c != 0 && !m->cand_landed[c]; c = m->cand_base[c])
                depth++;
            if (depth > m->max_depth)
                m->max_depth = depth;
        }
        m->attempt[b.candidate] = b.attempt;
        m->cand_mask[b.candidate] = b.nconfigs == 0 ? 3u : 0u;
        for (size_t i = 0; i < b.nconfigs; i++)
            m->cand_mask[b.candidate] |= strcmp(b.configs[i], "a") == 0 ? 1u : 2u;
        m->running[m->nrunning++] = b.candidate;
        if (m->nrunning > m->max_running)
            m->max_running = m->nrunning;
        m->builds++;
        started++;
    }
    return started;
}

/* End every running build, in the order they started. */
static void finish_round(sim *m)
{
    long long batch[MAXCAND];
    size_t n = m->nrunning;
    memcpy(batch, m->running, n * sizeof(long long));
    double jobs = 0.0; /* this round's, all at once */
    for (size_t i = 0; i < n; i++)
        jobs += (double)__builtin_popcount(m->cand_mask[batch[i]]);
    double serial = m->serial_rounds == 0 || m->rounds <= m->serial_rounds ? m->serial : 0.0;
    if (m->round_ms > 0.0) {
        m->now_ms += m->round_ms *
                     (m->clock_par > 0.0 ? fmax(1.0, jobs / m->clock_par) : pow((double)n, serial));
        gate_sched_clock(m->s, m->now_ms);
    }
    if (m->end_first > 0 && m->end_first < n)
        n = m->end_first;
    for (size_t i = 0; i < n; i++) {
        long long c = batch[i];
        size_t k = 0;
        while (k < m->nrunning && m->running[k] != c)
            k++;
        if (k == m->nrunning)
            continue; /* cancelled by an earlier result */
        m->running[k] = m->running[--m->nrunning];
        if (m->two) {
            gate_sched_run r[2];
            size_t nr = 0;
            bool all = true;
            for (int q = 0; q < 2; q++) {
                if ((m->cand_mask[c] & (1u << q)) == 0)
                    continue;
                memset(&r[nr], 0, sizeof(r[nr]));
                r[nr].config = q == 0 ? "a" : "b";
                r[nr].signature = m->cand_sig[c][q];
                if (r[nr].signature == 0 && uniform(&m->rng) < m->flake)
                    r[nr].signature = next_rand(&m->rng) | 1; /* a flake: any ending */
                r[nr].passed = r[nr].signature == 0;
                all = all && r[nr].passed;
                if (m->timed_par > 0.0)
                    gate_sched_timed(m->s, r[nr].config,
                                     (q == 1 && m->b_len > 0.0 ? m->b_len : 1.0) * 1000.0 *
                                         (jobs > m->timed_par ? jobs / m->timed_par : 1.0),
                                     jobs);
                r[nr++].job = c;
            }
            if (all && !m->cand_bad[c])
                m->cand_passed[c] = true;
            assert_true(keel_ok(gate_sched_results(m->s, c, r, nr)));
            take_decisions(m);
            continue;
        }
        bool flaked =
            m->attempt[c] == 1 &&
            (m->flaky_first || (m->flaky_single != 0 && m->cand_single[c] == m->flaky_single));
        bool passed = !m->cand_bad[c] && !flaked;
        if (passed)
            m->cand_passed[c] = true;
        if (!passed && m->final && m->cand_bad[c])
            assert_true(keel_ok(gate_sched_result_final(m->s, c)));
        else
            assert_true(keel_ok(gate_sched_result(m->s, c, passed)));
        take_decisions(m);
    }
}

static void sim_run(sim *m)
{
    for (;;) {
        take_decisions(m);
        if (start_builds(m) == 0 && m->nrunning == 0)
            break;
        m->rounds++;
        assert_true(m->rounds < 10000);
        gate_sched_stats now;
        gate_sched_stats_get(m->s, &now);
        m->last_depth = now.depth;
        finish_round(m);
    }
    gate_sched_stats st;
    gate_sched_stats_get(m->s, &st);
    assert_int_equal(st.builds, m->builds);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.testing, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.cancelled_builds, m->cancels);
    assert_int_equal(st.flaky, m->flaky);
}

static void sim_end(sim *m)
{
    gate_sched_delete(m->s);
    m->s = NULL;
}

/* Every change ended; exactly the bad ones rejected; the good ones landed in queue order. */
static void check_outcome(const sim *m)
{
    long long prev = 0;
    for (int i = 0; i < m->nlanded; i++) {
        assert_true(m->landed_order[i] > prev);
        prev = m->landed_order[i];
    }
    for (int c = 1; c <= m->nchanges; c++) {
        if (m->state[c] == CANCELLED)
            continue;
        assert_int_equal(m->state[c], m->bad[c] ? REJECTED : LANDED);
    }
    assert_int_equal(m->rejects_of_good, 0);
    gate_sched_stats st;
    gate_sched_stats_get(m->s, &st);
    int nbad = 0, ncancelled = 0;
    for (int c = 1; c <= m->nchanges; c++) {
        nbad += m->bad[c] && m->state[c] != CANCELLED;
        ncancelled += m->state[c] == CANCELLED;
    }
    assert_int_equal(st.rejected, nbad);
    assert_int_equal(st.landed, m->nlanded);
    assert_int_equal(st.cancelled, ncancelled);
    assert_int_equal(st.landed + st.rejected + st.cancelled, m->nchanges);
}

/* Run one scenario for a strategy; returns the builds it used. */
static int scenario(gate_strategy strategy, int nchanges, const int *bad, size_t nbad, bool flaky)
{
    sim m;
    sim_init(&m, strategy, nchanges, bad, nbad);
    m.flaky_first = flaky;
    m.p.retries = flaky ? 1 : 0;
    sim_start(&m);
    sim_run(&m);
    check_outcome(&m);
    assert_true(m.max_running <= m.p.slots);
    assert_true(m.max_n <= m.p.max_batch);
    assert_true(m.max_depth <= (int)m.p.max_depth);
    if (flaky)
        assert_true(m.flaky > 0);
    else
        assert_int_equal(m.flaky, 0);
    sim_end(&m);
    return m.builds;
}

/* The same checks for every strategy: all good, one bad, two bad, flakes, bad and flakes. */
static void all_scenarios(gate_strategy strategy)
{
    static const int one[] = {3};
    static const int two[] = {2, 7};
    static const int three[] = {1, 2, 20};
    static const int last[] = {24};
    (void)scenario(strategy, 10, NULL, 0, false);
    (void)scenario(strategy, 10, one, 1, false);
    (void)scenario(strategy, 10, two, 2, false);
    (void)scenario(strategy, 24, three, 3, false);
    (void)scenario(strategy, 24, last, 1, false);
    (void)scenario(strategy, 10, NULL, 0, true);
    (void)scenario(strategy, 10, two, 2, true);
    /* pseudo-random bad sets */
    unsigned long long x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 40; round++) {
        int bad[MAXC];
        size_t nbad = 0;
        for (int c = 1; c <= 30; c++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            if ((x >> 33) % 100 < 5ull + (unsigned long long)round)
                bad[nbad++] = c;
        }
        (void)scenario(strategy, 30, bad, nbad, round % 3 == 0);
    }
}

static void test_serial(void **state)
{
    (void)state;
    static const int one[] = {3};
    /* one change at a time: one build per change, bad or good */
    assert_int_equal(scenario(GATE_STRATEGY_SERIAL, 10, NULL, 0, false), 10);
    assert_int_equal(scenario(GATE_STRATEGY_SERIAL, 10, one, 1, false), 10);
    /* flaky first attempts: two builds per change */
    assert_int_equal(scenario(GATE_STRATEGY_SERIAL, 10, NULL, 0, true), 20);
    all_scenarios(GATE_STRATEGY_SERIAL);
}

static void test_batch(void **state)
{
    (void)state;
    static const int one[] = {3};
    static const int two[] = {1, 4};
    /* batches of 8: 8 + 2 */
    assert_int_equal(scenario(GATE_STRATEGY_BATCH, 10, NULL, 0, false), 2);
    /*
     * 1..8 fails; 1..4 fails; 1..2 passes and lands; 3..4 is known bad: 3 alone
     * fails and is rejected; 4 alone passes; 5..8 and 9..10 pass: 7 builds.
     */
    assert_int_equal(scenario(GATE_STRATEGY_BATCH, 10, one, 1, false), 7);
    /*
     * 1..8 f, 1..4 f, 1..2 f, 1 f (rejected), 2 p, 3..4 f, 3 p, 4 alone f (rejected: bisection
     * blamed it, its failure alone on the tip is the evidence), 5..8 p, 9..10 p
     */
    assert_int_equal(scenario(GATE_STRATEGY_BATCH, 10, two, 2, false), 10);
    all_scenarios(GATE_STRATEGY_BATCH);
}

static void test_speculative(void **state)
{
    (void)state;
    /* one build per change when all are good, four at a time */
    sim m;
    sim_init(&m, GATE_STRATEGY_SPECULATIVE, 12, NULL, 0);
    sim_start(&m);
    sim_run(&m);
    check_outcome(&m);
    assert_int_equal(m.builds, 12);
    assert_int_equal(m.rounds, 3);
    assert_int_equal(m.max_running, 4);
    assert_int_equal(m.max_depth, 4);
    sim_end(&m);
    all_scenarios(GATE_STRATEGY_SPECULATIVE);
}

static void test_speculative_batch(void **state)
{
    (void)state;
    sim m;
    sim_init(&m, GATE_STRATEGY_SPECULATIVE_BATCH, 64, NULL, 0);
    m.p.max_batch = 4;
    sim_start(&m);
    sim_run(&m);
    check_outcome(&m);
    assert_int_equal(m.builds, 16);
    assert_int_equal(m.rounds, 4);
    assert_int_equal(m.max_n, 4);
    assert_int_equal(m.max_depth, 4);
    sim_end(&m);
    all_scenarios(GATE_STRATEGY_SPECULATIVE_BATCH);
}

static void test_adaptive(void **state)
{
    (void)state;
    /* all good: batches grow as the estimate falls; fewer builds than changes */
    int builds = scenario(GATE_STRATEGY_ADAPTIVE, 60, NULL, 0, false);
    assert_true(builds < 60 / 2);
    all_scenarios(GATE_STRATEGY_ADAPTIVE);
}

/* The estimate follows the outcomes, and the shape follows the estimate. */
static void test_adaptive_estimate(void **state)
{
    (void)state;
    static const int all_bad[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    sim m;
    sim_init(&m, GATE_STRATEGY_ADAPTIVE, 16, all_bad, 16);
    sim_start(&m);
    gate_sched_stats st;
    gate_sched_stats_get(m.s, &st);
    assert_true(st.p > 0.09 && st.p < 0.11); /* the prior */
    /*
     * a weak prior at p = 0.1 on an executor not limited: a full window (its
     * batches are what the model makes of the prior: with no retries,
     * isolations are cheap and they are large)
     */
    assert_true(st.batch >= 1 && st.batch <= 8);
    assert_int_equal(st.depth, 4);
    sim_run(&m);
    check_outcome(&m);
    gate_sched_stats_get(m.s, &st);
    assert_true(st.p > 0.5);
    assert_int_equal(st.batch, 1); /* single changes; a window still saves rounds */
    sim_end(&m);
    /* and when everything passes, batches reach max-batch */
    sim_init(&m, GATE_STRATEGY_ADAPTIVE, 64, NULL, 0);
    m.p.max_batch = 6;
    sim_start(&m);
    sim_run(&m);
    gate_sched_stats_get(m.s, &st);
    assert_true(st.p < 0.05);
    assert_int_equal(st.batch, m.p.max_batch);
    assert_int_equal(m.max_n, m.p.max_batch);
    sim_end(&m);
}

/*
 * Capacity: on an executor told to run 2 jobs at once, builds of two
 * configurations (2 jobs each) gain nothing from a window: adaptive builds
 * one candidate at a time (after the first round, which shows a build's jobs),
 * with no more builds than the free executor's window, and the same outcome.
 */
static void test_adaptive_capacity(void **state)
{
    (void)state;
    static const int bad[] = {7, 19, 30};
    sim m;
    size_t running[2];
    int builds[2];
    for (int told = 0; told < 2; told++) {
        sim_init(&m, GATE_STRATEGY_ADAPTIVE, 40, bad, 3);
        m.two = true;
        m.p.parallel = told ? 2.0 : 0.0;
        sim_start(&m);
        take_decisions(&m);
        (void)start_builds(&m);
        m.rounds++;
        finish_round(&m); /* the first round: a build's jobs are not known yet */
        m.max_running = 0;
        sim_run(&m);
        check_outcome(&m);
        gate_sched_stats st;
        gate_sched_stats_get(m.s, &st);
        assert_int_equal(st.jobs, 2);
        print_message("told %g: depth %u, at most %zu running, %d builds\n", m.p.parallel, st.depth,
                      m.max_running, m.builds);
        running[told] = m.max_running;
        builds[told] = m.builds;
        sim_end(&m);
    }
    assert_true(running[0] > 1);
    assert_int_equal(running[1], 1);
    assert_true(builds[1] <= builds[0]);
}

/*
 * A build's jobs told from the configuration (params.jobs, as keel-gate
 * counts its configurations at level gate): on an executor told to run 2
 * jobs at once, adaptive's first round is one candidate of two jobs, not two
 * candidates that halve each other's speed; not told, it takes a build for
 * one job and builds two.  Both learn the jobs from the first result and
 * decide the queue alike.
 */
static void test_adaptive_jobs_told(void **state)
{
    (void)state;
    static const int bad[] = {3, 19, 30};
    size_t first[2];
    for (int told = 0; told < 2; told++) {
        sim m;
        sim_init(&m, GATE_STRATEGY_ADAPTIVE, 40, bad, 3);
        m.two = true;
        m.p.parallel = 2.0;
        m.p.jobs = told ? 2u : 0u;
        sim_start(&m);
        take_decisions(&m);
        first[told] = start_builds(&m);
        m.rounds++;
        finish_round(&m);
        sim_run(&m);
        check_outcome(&m);
        gate_sched_stats st;
        gate_sched_stats_get(m.s, &st);
        assert_int_equal(st.jobs, 2);
        print_message("jobs told %d: the first round built %zu candidates\n", told, first[told]);
        sim_end(&m);
    }
    assert_true(first[0] > 1);
    assert_int_equal(first[1], 1);
    /* more jobs than a configuration holds: refused, naming the parameter */
    gate_sched_params p;
    gate_sched_params_default(&p);
    p.jobs = GATE_MAX_CONFIGS + 1;
    gate_sched *s = NULL;
    keel_status st = gate_sched_new(&p, &s);
    assert_true(KEEL_IS(st, KEEL_E_INVAL) && s == NULL);
    char msg[256];
    keel_status_format(st, msg, sizeof(msg));
    assert_non_null(strstr(msg, "'jobs' 65"));
    keel_status_free(st);
}

/*
 * Told 8, while the jobs' times show an executor of 2 (each uses two cores,
 * say): adaptive learns it from the timings and stops speculating.
 */
/* `rounds` rounds to learn from, then the rest of the queue, counting what runs at once. */
static void run_after_lessons(sim *m, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        take_decisions(m);
        (void)start_builds(m);
        m->rounds++;
        finish_round(m);
    }
    m->max_running = 0;
    sim_run(m);
    check_outcome(m);
}

static void test_adaptive_learns_capacity(void **state)
{
    (void)state;
    static const int bad[] = {5, 17, 33, 50};
    sim m;
    unsigned depth[2];
    size_t running[2];
    for (int timed = 0; timed < 2; timed++) {
        sim_init(&m, GATE_STRATEGY_ADAPTIVE, 60, bad, 4);
        m.two = true;
        m.p.parallel = 8.0;
        m.timed_par = timed ? 2.0 : 0.0;
        sim_start(&m);
        gate_sched_stats st;
        gate_sched_stats_get(m.s, &st);
        assert_true(st.parallel > 7.9 && st.parallel < 8.1);
        run_after_lessons(&m, 4);
        gate_sched_stats_get(m.s, &st);
        print_message("timed %d: %.2f jobs at once from %u timings; depth %u, then at most %zu "
                      "running\n",
                      timed, st.parallel, st.timed, st.depth, m.max_running);
        if (timed) {
            assert_true(st.timed > 0);
            assert_true(st.parallel > 1.5 && st.parallel < 2.7);
        }
        depth[timed] = st.depth;
        running[timed] = m.max_running;
        sim_end(&m);
    }
    assert_int_equal(depth[0], 4); /* 8 jobs at once: a full window of 2-job builds */
    assert_int_equal(running[0], 4);
    assert_true(depth[1] <= 2);
    assert_true(running[1] <= 2);
}

/*
 * Two cores, told and timed, and a build of two jobs: when both take as
 * long, one build fills the cores and adaptive runs one at a time; when b
 * takes half of a's time, a build alone leaves a core idle for half of it
 * (width 1.5), and adaptive runs a second build beside it.
 */
static void test_adaptive_fills_idle_cores(void **state)
{
    (void)state;
    static const int bad[] = {31};
    sim m;
    size_t running[2];
    double width[2];
    for (int unequal = 0; unequal < 2; unequal++) {
        sim_init(&m, GATE_STRATEGY_ADAPTIVE, 64, bad, 1);
        m.two = true;
        m.p.parallel = 2.0;
        m.timed_par = 2.0;
        m.b_len = unequal ? 0.5 : 1.0;
        sim_start(&m);
        run_after_lessons(&m, 3);
        gate_sched_stats st;
        gate_sched_stats_get(m.s, &st);
        print_message("b %.1f of a: width %.2f, depth %u, at most %zu running, %d builds\n",
                      m.b_len, st.width, st.depth, m.max_running, m.builds);
        running[unequal] = m.max_running;
        width[unequal] = st.width;
        sim_end(&m);
    }
    assert_true(fabs(width[0] - 2.0) < 0.05);
    assert_true(fabs(width[1] - 1.5) < 0.05);
    assert_int_equal(running[0], 1);
    assert_true(running[1] >= 2);
}

/*
 * The pace of a depth: told 8 and timed on 8 (every job takes its time
 * alone however many run), so the capacity model sees a window of 4 as free.
 * On one machine a round of builds at once takes the time of one (depth
 * pays); on the other k builds at once take k^1.6 times one build's time,
 * far longer than one after another, by a cost the jobs' own timings do not
 * show (the gate's work around each build, a disk they thrash): the clock
 * shows it, and adaptive ends building one candidate at a time there, with
 * fewer builds (160 single changes: many rounds).  (A gap seen at one depth
 * alone is split between every depth's pace and depth's gain, so a milder
 * cost moves it less.)  Single changes (max-batch 1), so that the queue is
 * many rounds.  At depth 1 the deeper depths' pace fades and the window
 * probes depth 2 now and then (test_adaptive_pace_retests_depth): the
 * probes grow rarer as each finds it slow, and cost at most a tenth more
 * than staying at depth 1 did (194 rounds' time before the fading: 205).
 * The depth it ends at is its last round's: the shape chosen once every
 * change is decided can be a probe's, the last decisions having faded the
 * deeper depths' pace (session 26: depth 2 after a last round at depth 1).
 */
static void test_adaptive_pace(void **state)
{
    (void)state;
    static const int bad[] = {9, 40, 120};
    sim m;
    unsigned depth[2];
    int builds[2];
    double pace1[2], pace4[2], spent[2];
    for (int serial = 0; serial < 2; serial++) {
        sim_init(&m, GATE_STRATEGY_ADAPTIVE, 160, bad, 3);
        sim_clocked(&m, 8.0);
        m.p.max_batch = 1;
        m.serial = serial ? 1.6 : 0.0;
        sim_start(&m);
        sim_run(&m);
        check_outcome(&m);
        gate_sched_stats st;
        gate_sched_stats_get(m.s, &st);
        print_message("builds at once %s: pace at depth 1 %.2f, 2 %.2f, 4 %.2f; depth %u in the "
                      "last round (%u at the end), %d builds in %d rounds, %.0f rounds' time\n",
                      serial ? "one after another" : "as one", st.pace[0], st.pace[1], st.pace[3],
                      m.last_depth, st.depth, m.builds, m.rounds, m.now_ms / m.round_ms);
        depth[serial] = m.last_depth;
        builds[serial] = m.builds;
        pace1[serial] = st.pace[0];
        pace4[serial] = st.pace[3];
        spent[serial] = m.now_ms / m.round_ms;
        sim_end(&m);
    }
    assert_true(pace4[0] / pace1[0] < 1.5);
    assert_true(pace4[1] / pace1[1] > 3.0);
    assert_int_equal(depth[0], 4);
    assert_int_equal(depth[1], 1);
    assert_true(builds[1] < builds[0]);
    assert_true(spent[1] < 194.0 * 1.1);
}

/*
 * A depth written off is tried again: told 8 and timed on 8, single
 * changes, and for the first 3 rounds k builds at once take k^2 times one
 * build's time (another tenant thrashing the disk, which the jobs' own
 * timings do not show); then it is gone and builds at once take the time of
 * one.  The pace of depth 4 measured in those rounds sends adaptive to depth
 * 1, where nothing measures depth 4 again: it stayed there for the other
 * 150 changes, one round each (it did: pace 5.2 at depth 4, depth 1 at the
 * end, 154 rounds, 199 rounds' time).  At depth 1 the pace of the deeper
 * depths fades as changes are decided, so the window goes deep again,
 * measures depth 4 fast and stays there (57 rounds, 102 rounds' time).
 */
static void test_adaptive_pace_retests_depth(void **state)
{
    (void)state;
    static const int bad[] = {9, 40, 120};
    sim m;
    sim_init(&m, GATE_STRATEGY_ADAPTIVE, 160, bad, 3);
    sim_clocked(&m, 8.0);
    m.p.max_batch = 1;
    m.serial = 2.0;
    m.serial_rounds = 3;
    sim_start(&m);
    sim_run(&m);
    check_outcome(&m);
    gate_sched_stats st;
    gate_sched_stats_get(m.s, &st);
    print_message("slow for 3 rounds, then free: pace at depth 1 %.2f, 2 %.2f, 4 %.2f; depth %u "
                  "at the end, at most %d deep, %d builds in %d rounds, %.0f rounds' time\n",
                  st.pace[0], st.pace[1], st.pace[3], st.depth, m.max_depth, m.builds, m.rounds,
                  m.now_ms / m.round_ms);
    assert_int_equal(st.depth, 4);
    assert_true(m.rounds < 100); /* at depth 1 from then on, each change a round: 154 */
    assert_true(m.now_ms / m.round_ms < 199.0 * 0.7);
    sim_end(&m);
}

/*
 * The pace compares the clock with what the model expects of the outcomes
 * that happened, not of the average outcome.  On 4, told and timed, builds
 * of two jobs, a round taking max(1, its jobs / 4) times a job (the model's
 * own law), a pessimistic prior (0.3): a queue where every change passes
 * decides faster than the average that prior expects, and must not read as
 * depth paying (it did: the pace fell to 0.85 at depth 1, 0.57 at 4, and
 * adaptive ran a window of 4 where 2 fill the executor).  On 8, told and
 * timed, where a round takes one build's time, with flakes: each flake's
 * retry holds the window for a job's time, which the model does not count,
 * and must not read as depth costing (it did: the pace of depth 4 rose to
 * 1.3 times depth 1's).
 */
static void test_adaptive_pace_outcomes(void **state)
{
    (void)state;
    static const int bad[] = {150};
    sim m;
    gate_sched_stats st;
    sim_init(&m, GATE_STRATEGY_ADAPTIVE, 150, bad, 1);
    sim_clocked(&m, 4.0);
    m.p.prior_p = 0.3;
    m.clock_par = 4.0;
    sim_start(&m);
    run_after_lessons(&m, 2);
    check_outcome(&m);
    gate_sched_stats_get(m.s, &st);
    print_message("passes on 4: pace at depth 1 %.2f, 2 %.2f, 4 %.2f; depth %u, at most %zu "
                  "running after 2 rounds, %d builds\n",
                  st.pace[0], st.pace[1], st.pace[3], st.depth, m.max_running, m.builds);
    assert_true(st.pace[3] / st.pace[0] > 0.8);
    assert_int_equal(st.depth, 2); /* two builds of two jobs fill the executor */
    assert_int_equal(m.max_running, 2);
    sim_end(&m);

    sim_init(&m, GATE_STRATEGY_ADAPTIVE, 150, bad, 1);
    sim_clocked(&m, 8.0);
    m.flake = 0.1;
    m.rng = 0x5eedull;
    m.p.retries = 1;
    m.p.max_batch = 1; /* many builds: many flakes */
    sim_start(&m);
    sim_run(&m);
    check_outcome(&m);
    gate_sched_stats_get(m.s, &st);
    print_message("flakes on 8: pace at depth 1 %.2f, 2 %.2f, 4 %.2f; depth %u, %d flakes\n",
                  st.pace[0], st.pace[1], st.pace[3], st.depth, m.flaky);
    assert_true(m.flaky > 5);
    assert_true(st.pace[3] / st.pace[0] < 1.15);
    assert_int_equal(st.depth, 4);
    sim_end(&m);
}

/*
 * The pace moves with decisions, not while a round runs.  Speculative on 8,
 * told and timed, every change passing: after 5 rounds of 4, a round's builds
 * started and the clock moved on 3 of a round's times with nothing decided
 * yet, the pace of depth 4 is what it was when the last round ended (it
 * rose to 1.41 times that: the time counted with none of the decisions
 * it would buy, which is how a window that had just gone deeper read its
 * first round as slow and went back before it ended).  Once the round's
 * decisions come, its whole time counts with them.
 */
static void test_pace_waits_for_decisions(void **state)
{
    (void)state;
    sim m;
    gate_sched_stats st;
    sim_init(&m, GATE_STRATEGY_SPECULATIVE, 40, NULL, 0);
    sim_clocked(&m, 8.0);
    sim_start(&m);
    for (int r = 0; r < 5; r++) {
        take_decisions(&m);
        assert_true(start_builds(&m) > 0);
        m.rounds++;
        finish_round(&m);
    }
    take_decisions(&m);
    gate_sched_stats_get(m.s, &st);
    double before = st.pace[3];
    assert_true(before > 0.5 && before < 2.0);
    assert_int_equal(start_builds(&m), 4);
    m.now_ms += 3.0 * m.round_ms; /* the round runs on: nothing decided */
    gate_sched_clock(m.s, m.now_ms);
    gate_sched_stats_get(m.s, &st);
    print_message("pace at depth 4 %.3f after 5 rounds, %.3f 3 round times into the next\n", before,
                  st.pace[3]);
    assert_true(fabs(st.pace[3] - before) < 1e-9);
    finish_round(&m); /* it ends one round time later: 4 in all */
    take_decisions(&m);
    gate_sched_stats_get(m.s, &st);
    assert_true(st.pace[3] > before * 1.2); /* its time counted, with its decisions */
    sim_run(&m);
    check_outcome(&m);
    sim_end(&m);
}

/* The running candidate of change c alone (0: none). */
static long long running_alone(const sim *m, long long c)
{
    for (size_t i = 0; i < m->nrunning; i++)
        if (m->cand_single[m->running[i]] == c)
            return m->running[i];
    return 0;
}

/* Running build `cand` ends `ms` after the last event, the others run on. */
static void finish_one(sim *m, long long cand, double ms)
{
    size_t i = 0;
    while (i < m->nrunning && m->running[i] != cand)
        i++;
    assert_true(i < m->nrunning);
    m->running[i] = m->running[0];
    m->running[0] = cand;
    double round_ms = m->round_ms;
    m->round_ms = ms;
    m->end_first = 1;
    finish_round(m);
    m->round_ms = round_ms;
    m->end_first = 0;
}

/*
 * A rejection's expected time beyond a pass's (the whole isolation's) goes
 * to the depths that ran its failure's episode, by their time in it.
 * Adaptive on 8, told and timed, 40 changes, 16 bad: batches of 8 at depth
 * 4; 9-16 fails, and its isolation runs at depth 4 (9-12, then 13-14 land,
 * a round each; then 15 and 16 alone with the window past 16).  15 lands a
 * round later; then another tenant takes 7 of the 8 cores (8 job timings
 * with others 7), the window goes to depth 1, and 16's failure comes a tenth
 * of a round later: depth 1 ran 0.1 of the episode's 3.1 rounds.  Its pace
 * after the rejection is within 15% of what it reads when no tenant came
 * and the window stayed at depth 4 throughout (0.905 against 0.967: the
 * rest of the episode's time is depth 4's, and the fit shares its evidence
 * with depth 1).  Split by the time since the last decision (15's landing),
 * depth 1 took the isolation's whole expected time for its 0.1 of a round
 * and read 0.260 (0.27 of 0.967; the old sched.c): the depth in use when a
 * rejection came marked as deciding nearly four times faster than the model
 * (inih's replay: 0.15).
 */
static void test_adaptive_pace_episode(void **state)
{
    (void)state;
    static const int bad[] = {16};
    double pace1[2];
    for (int tenant = 0; tenant < 2; tenant++) {
        sim m;
        gate_sched_stats st;
        sim_init(&m, GATE_STRATEGY_ADAPTIVE, 40, bad, 1);
        sim_clocked(&m, 8.0);
        sim_start(&m);
        for (;;) { /* the rounds until 16 is built alone: at depth 4 */
            take_decisions(&m);
            assert_true(start_builds(&m) > 0);
            gate_sched_stats_get(m.s, &st);
            assert_int_equal(st.depth, 4);
            if (running_alone(&m, 16) != 0)
                break;
            m.rounds++;
            finish_round(&m);
        }
        assert_int_equal(m.rounds, 3); /* 9-16 failed in round 0; 9-12, 13-14 landed */
        m.rounds++;
        finish_one(&m, running_alone(&m, 15), m.round_ms);
        gate_sched_stats_get(m.s, &st);
        assert_int_equal(st.landed, 15);
        assert_int_equal(st.rejected, 0);
        for (int k = 0; tenant && k < 8; k++) {
            gate_sched_job_time t = {k % 2 ? "b" : "a", 1000.0, 1.0, 7.0, true};
            gate_sched_job_timed(m.s, &t);
        }
        (void)start_builds(&m); /* the window's shape for what is known now */
        gate_sched_stats_get(m.s, &st);
        assert_int_equal(st.depth, tenant ? 1 : 4);
        finish_one(&m, running_alone(&m, 16), 0.1 * m.round_ms);
        gate_sched_stats_get(m.s, &st);
        assert_int_equal(st.rejected, 1);
        print_message("%s: pace at depth 1 %.3f, 4 %.3f after the rejection\n",
                      tenant ? "at depth 1 for its last 0.1 round" : "at depth 4 throughout",
                      st.pace[0], st.pace[3]);
        pace1[tenant] = st.pace[0];
        sim_run(&m);
        check_outcome(&m);
        sim_end(&m);
    }
    assert_true(pace1[1] > 0.85 * pace1[0]);
}

/*
 * Adaptive cuts again what it cut when its estimate was lower: a window of
 * large batches, the first of which is all bad; once its changes are
 * rejected the estimate is high, and the batches behind it (dropped with
 * it, never built whole again) go out as small candidates.
 */
static void test_adaptive_recut(void **state)
{
    (void)state;
    static const int bad[] = {1, 2, 3, 4, 5, 6, 7, 8};
    sim m;
    sim_init(&m, GATE_STRATEGY_ADAPTIVE, 40, bad, 8);
    m.p.prior_p = 0.001;
    m.p.max_batch = 8;
    sim_start(&m);
    take_decisions(&m);
    assert_int_equal(start_builds(&m), 4);
    size_t first = m.max_n; /* four large batches */
    assert_true(first >= 4);
    m.rounds++;
    finish_round(&m);
    size_t after = 0; /* the largest candidate once the bad batch's changes are all rejected */
    for (;;) {
        take_decisions(&m);
        gate_sched_stats st;
        gate_sched_stats_get(m.s, &st);
        size_t before = m.max_n;
        if (st.rejected == 8)
            m.max_n = 0;
        if (start_builds(&m) == 0 && m.nrunning == 0)
            break;
        if (st.rejected == 8) {
            after = m.max_n > after ? m.max_n : after;
            assert_true(m.max_n <= st.batch);
        } else {
            m.max_n = before > m.max_n ? before : m.max_n;
        }
        m.rounds++;
        finish_round(&m);
    }
    check_outcome(&m);
    print_message("first batches of %zu; the largest candidate once 8 were rejected: %zu\n", first,
                  after);
    assert_true(after > 0 && after < first);
    sim_end(&m);
}

/*
 * On an executor that runs one build at a time (told and timed 2, builds of
 * two jobs, a round max(1, its jobs / 2) times a job: depth 1), isolating a
 * failure leaves the changes it did not blame as small segments (a half
 * sent back unknown, the rest of a batch dropped behind the failure).
 * There every candidate takes the executor whole, so adaptive cuts them
 * again into batches of its shape with what waits behind them.  Over 24
 * queues of 80 changes, each broken with probability 0.05, it builds no
 * more than batch of 8 (before: it built them as they were left, 1, 2 and 4
 * changes one after another: 696 builds against batch's 680; now 639).
 */
static void test_adaptive_recut_sent_back(void **state)
{
    (void)state;
    int builds[2] = {0, 0};
    double spent[2] = {0.0, 0.0};
    unsigned long long rng = 0x5eed5ull;
    for (int seed = 0; seed < 24; seed++) {
        int bad[80];
        size_t nbad = 0;
        for (int c = 1; c <= 80; c++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            if ((rng >> 33) % 100 < 5)
                bad[nbad++] = c;
        }
        for (int k = 0; k < 2; k++) {
            sim m;
            sim_init(&m, k == 0 ? GATE_STRATEGY_BATCH : GATE_STRATEGY_ADAPTIVE, 80, bad, nbad);
            sim_clocked(&m, 2.0);
            m.clock_par = 2.0;
            m.p.max_batch = 8;
            sim_start(&m);
            sim_run(&m);
            check_outcome(&m);
            builds[k] += m.builds;
            spent[k] += m.now_ms / m.round_ms;
            sim_end(&m);
        }
    }
    print_message("batch of 8: %d builds, %.0f rounds' time; adaptive: %d builds, %.0f\n",
                  builds[0], spent[0], builds[1], spent[1]);
    assert_true(builds[1] <= builds[0]);
    assert_true(spent[1] <= spent[0] * 1.05);
}

/*
 * The first candidates are probes: when nothing fails, batches larger than
 * one come within the first 30 changes; after repeated failures the window
 * goes back to single changes within a few.
 */
static void test_adaptive_probe(void **state)
{
    (void)state;
    sim m;
    sim_init(&m, GATE_STRATEGY_ADAPTIVE, 64, NULL, 0);
    sim_start(&m);
    gate_sched_stats st;
    /* rounds until 30 changes were taken into candidates (landed or testing) */
    for (;;) {
        take_decisions(&m);
        gate_sched_stats_get(m.s, &st);
        if (st.landed + st.testing >= 30)
            break;
        assert_true(start_builds(&m) > 0);
        m.rounds++;
        finish_round(&m);
    }
    assert_true(m.max_n > 1);
    sim_run(&m);
    check_outcome(&m);
    gate_sched_stats_get(m.s, &st);
    assert_true(st.batch > 1);
    sim_end(&m);

    /* repeated failures: single changes again after a handful of rejects */
    static const int bad[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    sim_init(&m, GATE_STRATEGY_ADAPTIVE, 12, bad, 12);
    sim_start(&m);
    int rejected_when_single = -1;
    for (;;) {
        take_decisions(&m);
        gate_sched_stats_get(m.s, &st);
        if (st.batch == 1 && rejected_when_single < 0)
            rejected_when_single = (int)st.rejected;
        if (start_builds(&m) == 0 && m.nrunning == 0)
            break;
        m.rounds++;
        finish_round(&m);
    }
    check_outcome(&m);
    assert_true(rejected_when_single >= 0 && rejected_when_single <= 4);
    gate_sched_stats_get(m.s, &st);
    assert_true(st.p > 0.5);
    assert_int_equal(st.batch, 1);
    sim_end(&m);
}

/*
 * A failed single change that is more likely bad than flaky is retried while
 * the candidates behind it are built without it: with a third of the changes
 * bad and a retry for each, adaptive takes fewer rounds than speculative
 * (which waits for every retry), and its retries run beside other builds but
 * for the first (the estimate still low: a flake is likelier) and the last.
 */
static void test_adaptive_builds_past_failure(void **state)
{
    (void)state;
    int bad[MAXC];
    size_t nbad = 0;
    for (int c = 3; c <= 36; c += 3)
        bad[nbad++] = c;
    int rounds[2];
    for (int k = 0; k < 2; k++) {
        sim m;
        sim_init(&m, k == 0 ? GATE_STRATEGY_SPECULATIVE : GATE_STRATEGY_ADAPTIVE, 36, bad, nbad);
        m.p.max_batch = 1;
        m.p.retries = 1;
        sim_start(&m);
        int lone_retries = 0;
        for (;;) {
            take_decisions(&m);
            size_t before = m.nrunning;
            size_t started = start_builds(&m);
            if (started == 0 && m.nrunning == 0)
                break;
            bool retry = false;
            for (size_t i = before; i < m.nrunning; i++)
                retry = retry || m.attempt[m.running[i]] > 1;
            lone_retries += retry && m.nrunning == 1;
            m.rounds++;
            finish_round(&m);
        }
        check_outcome(&m);
        if (k == 0)
            assert_int_equal(lone_retries, (int)nbad); /* every retry alone */
        else
            assert_true(lone_retries <= 2); /* the first (p still low) and the last */
        rounds[k] = m.rounds;
        sim_end(&m);
    }
    assert_true(rounds[1] < rounds[0]);
}

/*
 * The same presumption, wrong: every first attempt fails, so a change
 * presumed bad passes its retry.  It lands and the candidates built without
 * it are rebuilt; nothing good is rejected.  And when a candidate built on a
 * failed change passes, that change flaked: it is retried, not passed over.
 */
static void test_adaptive_presumption_flaky(void **state)
{
    (void)state;
    sim m;
    sim_init(&m, GATE_STRATEGY_ADAPTIVE, 12, NULL, 0);
    m.p.prior_p = 0.5; /* presume the worst */
    m.p.max_batch = 1;
    m.p.retries = 1;
    m.flaky_first = true;
    sim_start(&m);
    sim_run(&m);
    check_outcome(&m);
    assert_int_equal(m.nlanded, 12);
    assert_true(m.flaky >= 12);
    sim_end(&m);

    sim_init(&m, GATE_STRATEGY_ADAPTIVE, 8, NULL, 0);
    m.p.prior_p = 0.5;
    m.p.max_batch = 1;
    m.p.retries = 1;
    m.flaky_single = 1;
    sim_start(&m);
    sim_run(&m);
    check_outcome(&m);
    assert_int_equal(m.nlanded, 8);
    assert_int_equal(m.flaky, 1);
    assert_int_equal(m.builds, 8 + 1); /* the retry; nothing built past change 1 */
    assert_int_equal(m.cancels, 0);
    sim_end(&m);
}

/*
 * The seeded simulation of bench_gate, smaller: two configurations, 5%
 * flakes per job with random signatures, bad changes failing one or both
 * configurations with signatures of their own, retries = 1: every strategy
 * rejects exactly the bad changes, never a good one.
 */
static void test_flakes_never_reject_good(void **state)
{
    (void)state;
    unsigned long long x = 0x5eedf1a4ull;
    for (int trial = 0; trial < 40; trial++)
        for (int strategy = 0; strategy <= (int)GATE_STRATEGY_ADAPTIVE; strategy++) {
            int bad[MAXC];
            size_t nbad = 0;
            for (int c = 1; c <= 30; c++)
                if (uniform(&x) < 0.1)
                    bad[nbad++] = c;
            sim m;
            sim_init(&m, (gate_strategy)strategy, 30, bad, nbad);
            m.p.retries = 1;
            m.two = true;
            m.flake = 0.05;
            m.rng = x + (unsigned long long)strategy;
            sim_start(&m);
            for (;;) { /* sim_run, without its count of flakes (a real failure may flake too) */
                take_decisions(&m);
                if (start_builds(&m) == 0 && m.nrunning == 0)
                    break;
                m.rounds++;
                assert_true(m.rounds < 10000);
                finish_round(&m);
            }
            check_outcome(&m);
            sim_end(&m);
        }
}

/* Slots, max-batch and max-depth bound what runs. */
static void test_limits(void **state)
{
    (void)state;
    sim m;
    sim_init(&m, GATE_STRATEGY_SPECULATIVE_BATCH, 60, NULL, 0);
    m.p.max_batch = 3;
    m.p.max_depth = 5;
    m.p.slots = 2;
    sim_start(&m);
    sim_run(&m);
    check_outcome(&m);
    assert_int_equal(m.max_running, 2);
    assert_int_equal(m.max_n, 3);
    assert_int_equal(m.builds, 20);
    assert_int_equal(m.rounds, 10);
    sim_end(&m);

    sim_init(&m, GATE_STRATEGY_SPECULATIVE, 30, NULL, 0);
    m.p.max_depth = 3;
    m.p.slots = 8;
    sim_start(&m);
    sim_run(&m);
    check_outcome(&m);
    assert_int_equal(m.max_running, 3);
    assert_int_equal(m.max_depth, 3);
    assert_int_equal(m.rounds, 10);
    sim_end(&m);
}

/* Candidates stacked on a failure are cancelled and rebuilt without it. */
static void test_speculative_cancels_stacked(void **state)
{
    (void)state;
    static const int bad[] = {1};
    sim m;
    sim_init(&m, GATE_STRATEGY_SPECULATIVE, 8, bad, 1);
    sim_start(&m);
    assert_int_equal(start_builds(&m), 4);
    finish_round(&m);
    /* 1 failed and was rejected; 2, 3, 4 were stacked on it: cancelled or dropped */
    assert_int_equal(m.state[1], REJECTED);
    assert_int_equal(m.state[2], ACTIVE);
    sim_run(&m);
    check_outcome(&m);
    /* 4 + 7 builds: 2..8 rebuilt without 1 */
    assert_int_equal(m.builds, 11);
    sim_end(&m);
}

/* Withdrawn changes: queued ones vanish, testing ones take their candidates with them. */
static void test_cancel(void **state)
{
    (void)state;
    for (int strategy = 0; strategy <= (int)GATE_STRATEGY_ADAPTIVE; strategy++) {
        sim m;
        sim_init(&m, (gate_strategy)strategy, 12, NULL, 0);
        m.p.max_batch = 3;
        sim_start(&m);
        assert_true(start_builds(&m) >= 1);
        /* change 1 is in the first candidate, which is running */
        assert_true(keel_ok(gate_sched_cancel(m.s, 1)));
        m.state[1] = CANCELLED;
        take_decisions(&m);
        assert_true(m.cancels >= 1);
        /* change 12 is queued or in the window */
        assert_true(keel_ok(gate_sched_cancel(m.s, 12)));
        m.state[12] = CANCELLED;
        keel_status s = gate_sched_cancel(m.s, 12);
        assert_true(KEEL_HAS(s, KEEL_E_NOTFOUND));
        keel_status_free(s);
        sim_run(&m);
        check_outcome(&m);
        assert_int_equal(m.nlanded, 10);
        s = gate_sched_cancel(m.s, 5); /* landed: no longer active */
        assert_true(KEEL_HAS(s, KEEL_E_NOTFOUND));
        keel_status_free(s);
        sim_end(&m);
    }
}

/* One scenario with `retries`, bad candidates' failures final or not: builds used, retries seen. */
static int final_scenario(gate_strategy strategy, const int *bad, size_t nbad, unsigned retries,
                          bool final, unsigned long long *nretries)
{
    sim m;
    sim_init(&m, strategy, 16, bad, nbad);
    m.p.retries = retries;
    m.final = final;
    sim_start(&m);
    sim_run(&m);
    check_outcome(&m);
    gate_sched_stats st;
    gate_sched_stats_get(m.s, &st);
    *nretries = st.retries;
    sim_end(&m);
    return m.builds;
}

/*
 * A failure a retry would repeat (gate_sched_result_final: the merged
 * tree's configuration does not parse) is never retried, whatever `retries`
 * is: the same changes are rejected and landed, with the builds of
 * retries = 0 (fixed strategies; adaptive's shape depends on `retries`).
 */
static void test_final_failure_not_retried(void **state)
{
    (void)state;
    static const int one[] = {3};
    static const int two[] = {2, 7};
    static const int three[] = {1, 5, 16};
    static const int *const sets[] = {one, two, three};
    static const size_t sizes[] = {1, 2, 3};
    for (int strategy = 0; strategy <= (int)GATE_STRATEGY_ADAPTIVE; strategy++)
        for (size_t k = 0; k < 3; k++) {
            unsigned long long r0 = 0, rf = 0, rr = 0;
            int b0 = final_scenario((gate_strategy)strategy, sets[k], sizes[k], 0, false, &r0);
            int bf = final_scenario((gate_strategy)strategy, sets[k], sizes[k], 2, true, &rf);
            (void)final_scenario((gate_strategy)strategy, sets[k], sizes[k], 2, false, &rr);
            assert_int_equal(rf, 0);
            assert_true(rr > 0); /* the same failures, not final: retried */
            if (strategy != (int)GATE_STRATEGY_ADAPTIVE)
                assert_int_equal(bf, b0);
        }
}

/* A result for a build the scheduler cancelled is ignored. */
static void test_late_result_ignored(void **state)
{
    (void)state;
    sim m;
    sim_init(&m, GATE_STRATEGY_SERIAL, 3, NULL, 0);
    sim_start(&m);
    assert_int_equal(start_builds(&m), 1);
    long long c = m.running[0];
    assert_true(keel_ok(gate_sched_cancel(m.s, 1)));
    m.state[1] = CANCELLED;
    take_decisions(&m);
    assert_int_equal(m.cancels, 1);
    assert_true(keel_ok(gate_sched_result(m.s, c, true)));
    sim_run(&m);
    check_outcome(&m);
    assert_int_equal(m.nlanded, 2);
    sim_end(&m);
}

static void test_bad_calls(void **state)
{
    (void)state;
    gate_sched_params p;
    gate_sched_params_default(&p);
    gate_sched *s = (gate_sched *)(uintptr_t)1; /* must be reset to NULL */
    p.max_batch = 0;
    keel_status st = gate_sched_new(&p, &s);
    assert_true(KEEL_HAS(st, KEEL_E_INVAL));
    assert_null(s);
    keel_status_free(st);
    gate_sched_params_default(&p);
    p.slots = 0;
    st = gate_sched_new(&p, &s);
    assert_true(KEEL_HAS(st, KEEL_E_INVAL));
    keel_status_free(st);
    gate_sched_params_default(&p);
    p.prior_p = 1.0;
    st = gate_sched_new(&p, &s);
    assert_true(KEEL_HAS(st, KEEL_E_INVAL));
    keel_status_free(st);

    gate_sched_params_default(&p);
    assert_true(keel_ok(gate_sched_new(&p, &s)));
    assert_true(keel_ok(gate_sched_enqueue(s, 7)));
    st = gate_sched_enqueue(s, 7);
    assert_true(KEEL_HAS(st, KEEL_E_EXISTS));
    keel_status_free(st);
    st = gate_sched_enqueue(s, 0);
    assert_true(KEEL_HAS(st, KEEL_E_INVAL));
    keel_status_free(st);
    st = gate_sched_result(s, 1, true); /* never given */
    assert_true(KEEL_HAS(st, KEEL_E_NOTFOUND));
    keel_status_free(st);
    gate_sched_build b;
    bool have = false;
    assert_true(keel_ok(gate_sched_next(s, &b, &have)));
    assert_true(have);
    assert_int_equal(b.candidate, 1);
    assert_int_equal(b.base, 0);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.changes[0], 7);
    assert_int_equal(b.attempt, 1);
    assert_true(keel_ok(gate_sched_next(s, &b, &have)));
    assert_false(have); /* nothing else queued */
    assert_true(keel_ok(gate_sched_result(s, 1, false)));
    st = gate_sched_result(s, 1, false); /* not running: waiting for its retry */
    assert_true(KEEL_HAS(st, KEEL_E_STATE));
    keel_status_free(st);
    assert_true(keel_ok(gate_sched_next(s, &b, &have)));
    assert_true(have);
    assert_int_equal(b.candidate, 1);
    assert_int_equal(b.attempt, 2);
    assert_true(keel_ok(gate_sched_result(s, 1, true)));
    gate_sched_decision d;
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_FLAKY);
    assert_string_equal(gate_sched_kind_name(d.kind), "flaky");
    assert_true(gate_sched_poll(s, &d));
    assert_int_equal(d.kind, GATE_SCHED_LAND);
    assert_int_equal(d.candidate, 1);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.changes[0], 7);
    assert_false(gate_sched_poll(s, &d));
    gate_sched_delete(s);
}

/* The scheduler's memory is on module gate_sched's heap, all of it given back; a quota bounds it. */
static void test_heap(void **state)
{
    (void)state;
    const keel_module *heap = KEEL_MODULE_REF(gate_sched);
    keel_heap_stats before, during, after;
    assert_true(keel_ok(keel_heap_stats_get(heap, &before)));
    sim m;
    const int bad[] = {3, 9};
    sim_init(&m, GATE_STRATEGY_ADAPTIVE, 20, bad, 2);
    sim_start(&m);
    sim_run(&m);
    assert_true(keel_ok(keel_heap_stats_get(heap, &during)));
    assert_true(during.allocations > before.allocations);
    assert_true(during.live_bytes > before.live_bytes);
    check_outcome(&m);
    sim_end(&m);
    assert_true(keel_ok(keel_heap_stats_get(heap, &after)));
    assert_int_equal(after.live_bytes, before.live_bytes);
    /* not a byte more than it holds: no scheduler, and the error names the module */
    keel_report_set_policy(KEEL_REPORT_QUOTA, KEEL_POLICY_COUNT);
    assert_true(keel_ok(keel_heap_set_quota(heap, (size_t)after.live_bytes + 1))); /* 0: none */
    gate_sched_params p;
    gate_sched_params_default(&p);
    gate_sched *s = NULL;
    keel_status st = gate_sched_new(&p, &s);
    assert_true(KEEL_HAS(st, KEEL_E_FULL));
    assert_null(s);
    char msg[1024];
    (void)keel_status_format(st, msg, sizeof(msg));
    keel_status_free(st);
    if (strstr(msg, "module 'gate_sched' is over its memory quota") == NULL)
        fail_msg("the error does not name the quota: %s", msg);
    assert_true(keel_ok(keel_heap_set_quota(heap, 0)));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serial),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_speculative),
        cmocka_unit_test(test_speculative_batch),
        cmocka_unit_test(test_adaptive),
        cmocka_unit_test(test_adaptive_estimate),
        cmocka_unit_test(test_adaptive_probe),
        cmocka_unit_test(test_adaptive_builds_past_failure),
        cmocka_unit_test(test_adaptive_presumption_flaky),
        cmocka_unit_test(test_adaptive_capacity),
        cmocka_unit_test(test_adaptive_jobs_told),
        cmocka_unit_test(test_adaptive_learns_capacity),
        cmocka_unit_test(test_adaptive_fills_idle_cores),
        cmocka_unit_test(test_adaptive_pace),
        cmocka_unit_test(test_adaptive_pace_outcomes),
        cmocka_unit_test(test_pace_waits_for_decisions),
        cmocka_unit_test(test_adaptive_pace_episode),
        cmocka_unit_test(test_adaptive_pace_retests_depth),
        cmocka_unit_test(test_adaptive_recut),
        cmocka_unit_test(test_adaptive_recut_sent_back),
        cmocka_unit_test(test_flakes_never_reject_good),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_speculative_cancels_stacked),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_final_failure_not_retried),
        cmocka_unit_test(test_late_result_ignored),
        cmocka_unit_test(test_bad_calls),
        cmocka_unit_test(test_heap),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
