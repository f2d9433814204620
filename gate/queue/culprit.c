/*
 * culprit.c - the flake-aware culprit search (see culprit.h).
 *
 * The posterior is w[1..n+1] (w[n+1]: no culprit), normalised after every
 * result; cum[x] = w[1] + ... + w[x] serves the information gain, which
 * only needs the mass of the segments that builds cut the range into.
 * Every public call reserves the log entries it may write first, so a
 * decision never fails half-way.
 */
#include "culprit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "heaps.h"

#define CULPRIT_HEAP KEEL_MODULE_REF(gate_sched)

/* f = 0 is taken as this (culprit.h); a gain below GAIN_MIN is no reason to build. */
static const double flake_min = 1e-9, gain_min = 1e-9;

struct gate_culprit {
    gate_culprit_params p;
    double f;           /* the flake rate used, >= flake_min */
    double g;           /* a bad commit's build passes (`intermittent`), 0: never */
    unsigned fail_need; /* gate_culprit_fail_runs(f) */
    unsigned pass_need; /* the parent's passes verification needs */
    double *w;          /* [n + 2]: w[1..n+1] */
    double *cum;        /* [n + 2]: cum[0] = 0 */
    unsigned *runs;     /* [n + 1]: builds of commit i with a result (the given ones included) */
    unsigned *fails;    /* [n + 1] */
    bool *flying;       /* [n + 1]: a build of commit i is in flight */
    unsigned flight[GATE_CULPRIT_MAX_FLIGHT];
    unsigned nflight;
    unsigned builds;
    gate_culprit_state state;
    unsigned suspect;       /* SUSPECTED, VERIFIED */
    unsigned before;        /* the suspect's failures when it was suspected (or last passed) */
    unsigned before_runs;   /* and its runs */
    unsigned parent_before; /* the parent's passes then (intermittent > 0: fresh ones count) */
    gate_culprit_event *log;
    size_t nlog, caplog;
};

void gate_culprit_params_default(gate_culprit_params *p)
{
    KEEL_ASSERT(p != NULL);
    memset(p, 0, sizeof(*p));
    p->flake = 0.0;
    p->confidence = 0.9999;
    p->suspicion = 0.5;
    p->budget = 64;
    p->parent_runs = 1;
}

unsigned gate_culprit_fail_runs(double flake, double confidence)
{
    if (!(flake > 0.0))
        return 1;
    double m = ceil(log(1.0 - confidence) / log(flake) - 1e-9);
    return m < 1.0 ? 1u : m > 1000.0 ? 1000u : (unsigned)m;
}

const char *gate_culprit_state_name(gate_culprit_state s)
{
    switch (s) {
    case GATE_CULPRIT_SEARCHING:
        return "searching";
    case GATE_CULPRIT_SUSPECTED:
        return "suspected";
    case GATE_CULPRIT_VERIFIED:
        return "verified";
    case GATE_CULPRIT_NO_CULPRIT:
        return "no-culprit";
    case GATE_CULPRIT_GAVE_UP:
        return "gave-up";
    }
    return "?";
}

static bool final_state(gate_culprit_state s)
{
    return s == GATE_CULPRIT_VERIFIED || s == GATE_CULPRIT_NO_CULPRIT || s == GATE_CULPRIT_GAVE_UP;
}

/* ---- the posterior -------------------------------------------------------------- */

static void normalise(gate_culprit *c)
{
    unsigned n = c->p.n;
    double z = 0.0;
    for (unsigned k = 1; k <= n + 1; k++)
        z += c->w[k];
    KEEL_ASSERT(z > 0.0); /* H_{n+1} explains every result with f > 0 */
    c->cum[0] = 0.0;
    for (unsigned k = 1; k <= n + 1; k++) {
        c->w[k] /= z;
        c->cum[k] = c->cum[k - 1] + c->w[k];
    }
}

/* A build of commit i ended: under H_k it is bad when i >= k. */
static void update(gate_culprit *c, unsigned i, bool failed)
{
    for (unsigned k = 1; k <= c->p.n + 1; k++) {
        bool bad = i >= k;
        c->w[k] *= failed ? (bad ? 1.0 - c->g : c->f) : (bad ? c->g : 1.0 - c->f);
    }
    normalise(c);
    c->runs[i]++;
    if (failed)
        c->fails[i]++;
}

static void top3(const gate_culprit *c, gate_culprit_suspect *top)
{
    memset(top, 0, GATE_CULPRIT_TOP * sizeof(*top));
    for (unsigned k = 1; k <= c->p.n + 1; k++) {
        double p = c->w[k];
        if (!(p > 0.0))
            continue;
        for (int j = 0; j < GATE_CULPRIT_TOP; j++)
            if (top[j].commit == 0 || p > top[j].p) {
                memmove(&top[j + 1], &top[j], (size_t)(GATE_CULPRIT_TOP - 1 - j) * sizeof(*top));
                top[j].commit = k;
                top[j].p = p;
                break;
            }
    }
}

double gate_culprit_posterior(const gate_culprit *c, unsigned k)
{
    KEEL_ASSERT(c != NULL);
    return k >= 1 && k <= c->p.n + 1 ? c->w[k] : 0.0;
}

/* ---- the log -------------------------------------------------------------------- */

/* Room for `more` entries, so the call that follows cannot fail half-way. */
static keel_status reserve(gate_culprit *c, size_t more)
{
    if (c->nlog + more <= c->caplog)
        return KEEL_OK;
    size_t cap = c->caplog < 16 ? 16 : c->caplog;
    while (cap < c->nlog + more)
        cap *= 2;
    void *mem = c->log;
    keel_status st = keel_heap_realloc(CULPRIT_HEAP, &mem, cap * sizeof(*c->log));
    if (!keel_ok(st))
        return KEEL_CONTEXT(st, "growing the culprit search's log");
    c->log = (gate_culprit_event *)mem;
    c->caplog = cap;
    return KEEL_OK;
}

static int name_commit(const gate_culprit *c, unsigned k, char *buf, size_t len)
{
    return k == c->p.n + 1 ? snprintf(buf, len, "none") : snprintf(buf, len, "c%u", k);
}

/* Appends an entry (room reserved): `what` and the posterior's top 3. */
static void note(gate_culprit *c, gate_culprit_event_kind kind, unsigned commit, bool failed,
                 const char *what)
{
    KEEL_ASSERT(c->nlog < c->caplog);
    gate_culprit_event *e = &c->log[c->nlog++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->commit = commit;
    e->failed = failed;
    e->run = kind == GATE_CULPRIT_EV_RESULT ? c->runs[commit] : 0;
    top3(c, e->top);
    size_t len = 0;
    int w = snprintf(e->text, sizeof(e->text), "%s; posterior", what);
    len = w > 0 ? (size_t)w : 0;
    for (int j = 0; j < GATE_CULPRIT_TOP && e->top[j].commit != 0 && len < sizeof(e->text); j++) {
        char name[16];
        (void)name_commit(c, e->top[j].commit, name, sizeof(name));
        w = snprintf(e->text + len, sizeof(e->text) - len, " %s %.4g", name, e->top[j].p);
        len += w > 0 ? (size_t)w : 0;
    }
}

size_t gate_culprit_log_count(const gate_culprit *c)
{
    KEEL_ASSERT(c != NULL);
    return c->nlog;
}

const gate_culprit_event *gate_culprit_log(const gate_culprit *c, size_t i)
{
    KEEL_ASSERT(c != NULL);
    return i < c->nlog ? &c->log[i] : NULL;
}

/* ---- verdicts ------------------------------------------------------------------- */

static unsigned best(const gate_culprit *c)
{
    unsigned b = 1;
    for (unsigned k = 2; k <= c->p.n + 1; k++)
        if (c->w[k] > c->w[b])
            b = k;
    return b;
}

static unsigned passes(const gate_culprit *c, unsigned i)
{
    return c->runs[i] - c->fails[i];
}

/* The suspect k still needs a fresh failure (a pass starts its count again). */
static bool needs_failure(const gate_culprit *c, unsigned k)
{
    return c->fails[k] - c->before < c->fail_need;
}

/* The passes of the suspect's parent that count: all of them, or with intermittent > 0 fresh ones. */
static unsigned parent_passes(const gate_culprit *c, unsigned k)
{
    return passes(c, k - 1) - c->parent_before;
}

static bool needs_pass(const gate_culprit *c, unsigned k)
{
    return parent_passes(c, k) < c->pass_need;
}

/*
 * The suspect k failed fail_need times since it was suspected (fresh runs:
 * none of them raised the suspicion) and has not passed since; its parent
 * passed pass_need times.
 */
static bool verified(const gate_culprit *c, unsigned k)
{
    return !needs_failure(c, k) && c->fails[k] - c->before == c->runs[k] - c->before_runs &&
           !needs_pass(c, k);
}

/* The suspect's verification counts from now (suspected, or it passed). */
static void window(gate_culprit *c, unsigned k)
{
    c->before = c->fails[k];
    c->before_runs = c->runs[k];
    c->parent_before = c->g > 0.0 ? passes(c, k - 1) : 0;
}

/* Where the evidence stands now: at most 2 log entries (room reserved). */
static void decide(gate_culprit *c)
{
    if (final_state(c->state))
        return;
    char what[96];
    unsigned b = best(c), n = c->p.n;
    bool sure = c->w[b] >= c->p.confidence, likely = b <= n && c->w[b] >= c->p.suspicion;
    if (c->state == GATE_CULPRIT_SUSPECTED && (!likely || b != c->suspect)) {
        (void)snprintf(what, sizeof(what), "c%u is suspected no more", c->suspect);
        c->state = GATE_CULPRIT_SEARCHING;
        note(c, GATE_CULPRIT_EV_CLEARED, c->suspect, false, what);
        c->suspect = 0;
    }
    if (likely && c->state == GATE_CULPRIT_SEARCHING) {
        c->state = GATE_CULPRIT_SUSPECTED;
        c->suspect = b;
        window(c, b);
        (void)snprintf(what, sizeof(what),
                       "c%u suspected: verifying (c%u to fail %u times, c%u to pass %u)", b, b,
                       c->fail_need, b - 1, c->pass_need);
        note(c, GATE_CULPRIT_EV_SUSPECTED, b, false, what);
    }
    if (c->nflight > 0)
        return; /* a late result could change it */
    if (c->state == GATE_CULPRIT_SUSPECTED && sure && verified(c, b)) {
        c->state = GATE_CULPRIT_VERIFIED;
        (void)snprintf(what, sizeof(what),
                       "c%u verified: failed %u of %u (%u since suspected), c%u passed %u of %u", b,
                       c->fails[b], c->runs[b], c->fails[b] - c->before, b - 1, passes(c, b - 1),
                       c->runs[b - 1]);
        note(c, GATE_CULPRIT_EV_VERIFIED, b, true, what);
    } else if (sure && b == n + 1) {
        c->state = GATE_CULPRIT_NO_CULPRIT;
        note(c, GATE_CULPRIT_EV_NO_CULPRIT, 0, false, "no culprit: the failure was a flake");
    } else if (c->builds >= c->p.budget) {
        c->state = GATE_CULPRIT_GAVE_UP;
        (void)snprintf(what, sizeof(what), "gave up: %u builds spent", c->builds);
        note(c, GATE_CULPRIT_EV_GAVE_UP, 0, false, what);
    }
}

/* ---- choosing builds -------------------------------------------------------------- */

static double plogp(double p)
{
    return p > 0.0 ? p * log(p) : 0.0;
}

/*
 * H(Y) of the joint outcome of m builds when a bad build may pass too
 * (intermittent > 0): every one of the 2^m outcomes, each the sum over the
 * segments of W_j times its builds' chances (j good ones first, then bad).
 */
static double every_outcome(const gate_culprit *c, const double *wseg, unsigned m)
{
    double f = c->f, g = c->g, h = 0.0;
    for (unsigned y = 0; y < 1u << m; y++) { /* bit i set: build i failed */
        double p = 0.0;
        for (unsigned j = 0; j <= m; j++) {
            double l = wseg[j];
            for (unsigned i = 0; i < m && l > 0.0; i++) {
                bool failed = ((y >> i) & 1u) != 0;
                l *= i < j ? (failed ? f : 1.0 - f) : (failed ? 1.0 - g : g);
            }
            p += l;
        }
        h -= plogp(p);
    }
    return h;
}

/*
 * The mutual information (nats) of the hypothesis and the joint outcome of
 * builds of q[0..m-1] (distinct commits in 1..n, ascending).  Segment j
 * (hypotheses k in (q[j-1], q[j]], q[-1] = 0, q[m] = n + 1) makes builds
 * q[0..j-1] good (each fails with f) and q[j..] bad (each fails).  An
 * outcome with its last pass at build t (1-based, 0: none) and z passes in
 * all has probability sum over j >= t of W_j (1 - f)^z f^(j - z), and
 * there are C(t - 1, z - 1) such outcomes.
 */
static double joint_info(const gate_culprit *c, const unsigned *q, unsigned m)
{
    double wseg[GATE_CULPRIT_MAX_FLIGHT + 1];
    double f = c->f, hf = -(plogp(f) + plogp(1.0 - f)), hg = -(plogp(c->g) + plogp(1.0 - c->g));
    double given = 0.0; /* H(Y | H) */
    for (unsigned j = 0; j <= m; j++) {
        unsigned lo = j == 0 ? 0 : q[j - 1], hi = j == m ? c->p.n + 1 : q[j];
        wseg[j] = c->cum[hi] - c->cum[lo];
        given += wseg[j] * ((double)j * hf + (double)(m - j) * hg);
    }
    if (c->g > 0.0)
        return every_outcome(c, wseg, m) - given;
    double fpow[GATE_CULPRIT_MAX_FLIGHT + 1], gpow[GATE_CULPRIT_MAX_FLIGHT + 1];
    fpow[0] = gpow[0] = 1.0;
    for (unsigned j = 1; j <= m; j++) {
        fpow[j] = fpow[j - 1] * f;
        gpow[j] = gpow[j - 1] * (1.0 - f);
    }
    double outcome = 0.0; /* H(Y) */
    double p0 = 0.0;
    for (unsigned j = 0; j <= m; j++)
        p0 += wseg[j] * fpow[j];
    outcome -= plogp(p0);
    for (unsigned t = 1; t <= m; t++) {
        double choose = 1.0; /* C(t - 1, z - 1) */
        for (unsigned z = 1; z <= t; z++) {
            if (z > 1)
                choose = choose * (double)(t - z + 1) / (double)(z - 1);
            double p = 0.0;
            for (unsigned j = t; j <= m; j++)
                p += wseg[j] * gpow[z] * fpow[j - z];
            outcome -= choose * plogp(p);
        }
    }
    return outcome - given;
}

/* q[0..m-1] ascending plus x, into out[0..m] ascending. */
static void insert_sorted(const unsigned *q, unsigned m, unsigned x, unsigned *out)
{
    unsigned j = 0, o = 0;
    while (j < m && q[j] < x)
        out[o++] = q[j++];
    out[o++] = x;
    while (j < m)
        out[o++] = q[j++];
}

/* The commit whose build, with those in flight, tells most; 0 when none tells anything. */
static unsigned most_informative(const gate_culprit *c)
{
    unsigned q[GATE_CULPRIT_MAX_FLIGHT], with[GATE_CULPRIT_MAX_FLIGHT + 1], m = 0;
    for (unsigned k = 1; k <= c->p.n; k++)
        if (c->flying[k])
            q[m++] = k;
    double base = joint_info(c, q, m), top = base + gain_min;
    unsigned pick = 0;
    for (unsigned k = 1; k <= c->p.n; k++) {
        if (c->flying[k])
            continue;
        insert_sorted(q, m, k, with);
        double info = joint_info(c, with, m + 1);
        if (info > top) {
            top = info;
            pick = k;
        }
    }
    return pick;
}

static void start(gate_culprit *c, unsigned k, const char *why)
{
    char what[96];
    c->flying[k] = true;
    c->flight[c->nflight++] = k;
    c->builds++;
    (void)snprintf(what, sizeof(what), "build c%u (%s; build %u of %u)", k, why, c->builds,
                   c->p.budget);
    note(c, GATE_CULPRIT_EV_BUILD, k, false, what);
}

keel_status gate_culprit_next(gate_culprit *c, size_t max, unsigned *out, size_t *n)
{
    KEEL_ASSERT(c != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    keel_status st = reserve(c, GATE_CULPRIT_MAX_FLIGHT);
    if (!keel_ok(st))
        return st;
    if (final_state(c->state))
        return KEEL_OK;
    size_t room = GATE_CULPRIT_MAX_FLIGHT - c->nflight;
    if (room > c->p.budget - c->builds)
        room = c->p.budget - c->builds;
    if (room > max)
        room = max;
    unsigned k = c->suspect;
    bool parent = k > 0 && needs_pass(c, k);
    if (c->state == GATE_CULPRIT_SUSPECTED && (needs_failure(c, k) || parent)) {
        /* verification first; the search goes on only if its runs leave k below the confidence */
        if (*n < room && !c->flying[k] && needs_failure(c, k)) {
            start(c, k, "verify: it fails");
            out[(*n)++] = k;
        }
        if (*n < room && !c->flying[k - 1] && parent) {
            start(c, k - 1, "verify: its parent passes");
            out[(*n)++] = k - 1;
        }
        return KEEL_OK;
    }
    unsigned b = best(c);
    if (c->w[b] >= c->p.confidence && (b == c->p.n + 1 || (b == k && verified(c, k))))
        return KEEL_OK; /* a verdict, once the builds in flight are in */
    while (*n < room) {
        unsigned pick = most_informative(c);
        if (pick == 0)
            break;
        start(c, pick, "most informative");
        out[(*n)++] = pick;
    }
    if (*n == 0 && c->nflight == 0 && room > 0) {
        /* no build tells anything any more: the model's limit, not the budget */
        c->state = GATE_CULPRIT_GAVE_UP;
        note(c, GATE_CULPRIT_EV_GAVE_UP, 0, false, "gave up: no build would tell more");
    }
    return KEEL_OK;
}

/* ---- results ---------------------------------------------------------------------- */

static keel_status landed(gate_culprit *c, unsigned commit)
{
    if (commit > c->p.n)
        return KEEL_ERR(KEEL_E_RANGE, "commit %u is not in the range 0..%u", commit, c->p.n);
    if (!c->flying[commit])
        return KEEL_ERR(KEEL_E_STATE, "commit %u has no build in flight", commit);
    keel_status st = reserve(c, 4); /* the result, and decide()'s */
    if (!keel_ok(st))
        return st;
    c->flying[commit] = false;
    for (unsigned j = 0; j < c->nflight; j++)
        if (c->flight[j] == commit) {
            c->flight[j] = c->flight[--c->nflight];
            break;
        }
    return KEEL_OK;
}

keel_status gate_culprit_result(gate_culprit *c, unsigned commit, bool failed)
{
    KEEL_ASSERT(c != NULL);
    keel_status st = landed(c, commit);
    if (!keel_ok(st))
        return st;
    update(c, commit, failed);
    if (c->state == GATE_CULPRIT_SUSPECTED && commit == c->suspect && !failed) {
        c->before = c->fails[commit]; /* intermittent > 0: its fresh failures count again */
        c->before_runs = c->runs[commit];
    }
    char what[64];
    (void)snprintf(what, sizeof(what), "c%u %s (run %u)", commit, failed ? "failed" : "passed",
                   c->runs[commit]);
    note(c, GATE_CULPRIT_EV_RESULT, commit, failed, what);
    decide(c);
    return KEEL_OK;
}

keel_status gate_culprit_abandon(gate_culprit *c, unsigned commit)
{
    KEEL_ASSERT(c != NULL);
    keel_status st = landed(c, commit);
    if (!keel_ok(st))
        return st;
    char what[64];
    (void)snprintf(what, sizeof(what), "c%u: build ended without a result", commit);
    note(c, GATE_CULPRIT_EV_ABANDONED, commit, false, what);
    decide(c);
    return KEEL_OK;
}

void gate_culprit_verdict_get(const gate_culprit *c, gate_culprit_verdict *out)
{
    KEEL_ASSERT(c != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    out->state = c->state;
    top3(c, out->top);
    out->builds = c->builds;
    out->running = c->nflight;
    out->fail_runs = c->fail_need;
    out->parent_runs = c->pass_need;
    if (c->state == GATE_CULPRIT_SUSPECTED || c->state == GATE_CULPRIT_VERIFIED) {
        unsigned k = c->suspect;
        out->commit = k;
        out->p = c->w[k];
        out->runs = c->runs[k];
        out->fails = c->fails[k];
        out->fresh_fails = c->fails[k] - c->before;
        out->parent_passes = parent_passes(c, k);
    } else if (c->state == GATE_CULPRIT_NO_CULPRIT) {
        out->p = c->w[c->p.n + 1];
    }
}

/* ---- life ------------------------------------------------------------------------- */

static keel_status check(const gate_culprit_params *p)
{
    if (p->n < 1 || p->n > GATE_CULPRIT_MAX_N)
        return KEEL_ERR(KEEL_E_INVAL, "'n' %u is not in [1, %d]", p->n, GATE_CULPRIT_MAX_N);
    if (!(p->flake >= 0.0 && p->flake < 0.5))
        return KEEL_ERR(KEEL_E_INVAL, "'flake' %g is not in [0, 0.5)", p->flake);
    if (!(p->intermittent >= 0.0 && p->intermittent < 0.5))
        return KEEL_ERR(KEEL_E_INVAL, "'intermittent' %g is not in [0, 0.5)", p->intermittent);
    if (!(p->confidence >= 0.5 && p->confidence < 1.0))
        return KEEL_ERR(KEEL_E_INVAL, "'confidence' %g is not in [0.5, 1)", p->confidence);
    if (!(p->suspicion >= 0.5 && p->suspicion <= p->confidence))
        return KEEL_ERR(KEEL_E_INVAL, "'suspicion' %g is not in [0.5, confidence %g]", p->suspicion,
                        p->confidence);
    if (p->budget < 1 || p->budget > GATE_CULPRIT_MAX_BUDGET)
        return KEEL_ERR(KEEL_E_INVAL, "'budget' %u is not in [1, %d]", p->budget,
                        GATE_CULPRIT_MAX_BUDGET);
    if (p->parent_runs < 1 || p->parent_runs > GATE_CULPRIT_MAX_PARENT_RUNS)
        return KEEL_ERR(KEEL_E_INVAL, "'parent_runs' %u is not in [1, %d]", p->parent_runs,
                        GATE_CULPRIT_MAX_PARENT_RUNS);
    return KEEL_OK;
}

keel_status gate_culprit_new(const gate_culprit_params *p, gate_culprit **out)
{
    KEEL_ASSERT(p != NULL && out != NULL);
    *out = NULL;
    keel_status st = check(p);
    if (!keel_ok(st))
        return st;
    size_t n = p->n;
    /* one block: the struct, w, cum, runs, fails, flying */
    size_t size = sizeof(gate_culprit) + 2 * (n + 2) * sizeof(double) +
                  2 * (n + 1) * sizeof(unsigned) + (n + 1) * sizeof(bool);
    void *mem = NULL;
    st = keel_heap_calloc(CULPRIT_HEAP, 1, size, &mem);
    if (!keel_ok(st))
        return KEEL_CONTEXT(st, "creating a culprit search of %zu commits", n);
    gate_culprit *c = (gate_culprit *)mem;
    c->p = *p;
    char *arrays = (char *)(c + 1);
    c->w = (double *)(void *)arrays;
    c->cum = c->w + n + 2;
    c->runs = (unsigned *)(void *)(arrays + 2 * (n + 2) * sizeof(double));
    c->fails = c->runs + n + 1;
    c->flying = (bool *)(c->fails + n + 1);
    c->f = p->flake > flake_min ? p->flake : flake_min;
    c->g = p->intermittent;
    c->fail_need = gate_culprit_fail_runs(p->flake, p->confidence);
    c->pass_need = p->parent_runs;
    if (c->g > 0.0 && gate_culprit_fail_runs(c->g, p->confidence) > c->pass_need)
        c->pass_need = gate_culprit_fail_runs(c->g, p->confidence);
    st = reserve(c, 4);
    if (!keel_ok(st)) {
        gate_culprit_delete(c);
        return st;
    }
    for (size_t k = 1; k <= n + 1; k++)
        c->w[k] = 1.0;
    c->runs[0] = 1; /* commit 0 passed */
    update(c, p->n, true);
    char what[96];
    (void)snprintf(what, sizeof(what),
                   "range c1..c%u: c0 passed, c%u failed (f %g, %u failures verify)", p->n, p->n,
                   p->flake, c->fail_need);
    note(c, GATE_CULPRIT_EV_START, p->n, true, what);
    decide(c);
    *out = c;
    return KEEL_OK;
}

void gate_culprit_delete(gate_culprit *c)
{
    if (c == NULL)
        return;
    keel_heap_free(CULPRIT_HEAP, c->log);
    keel_heap_free(CULPRIT_HEAP, c);
}
