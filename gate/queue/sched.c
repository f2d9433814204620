/*
 * sched.c - keel-gate's scheduler (see scheduler.h).
 *
 * The state is a queue of changes not yet taken, and a plan: an ordered list
 * of segments, each a group of consecutive changes that one candidate builds.
 * Segment i's candidate is stacked on the live candidate of the segment
 * before it (or on the tip), so its tree is the tip plus segments 0..i.
 *
 * A segment is "known bad" when the tip plus everything before it plus the
 * segment is known to fail, assuming every segment before it lands: its
 * candidate failed for good at the front, or it is the second half of a
 * known-bad segment whose first half was split off.  A larger one is split
 * at the front, never built; a single known-bad change is built alone once
 * more (a confirmation, which speculation builds past), since only a failure
 * of that change alone on the tip rejects it.  Any final failure or
 * cancellation of a segment forgets what was known about the segments after
 * it, and drops their candidates.
 *
 * Each candidate keeps a verdict per configuration (cfg_ev): its runs, its
 * failures and their signatures; the candidate fails for good when one of
 * them does (record()), passes when every one that failed has also passed.
 *
 * The scheduler's state, its segments and decisions are declared in
 * sched_int.h; what it remembers of flakes (their endings, the rejections
 * watched and taken back) is sched_flaky.c's, the window's shape
 * sched_strategy.c's.
 *
 * Allocation happens up front in each public call (reserve), so a decision
 * or a split never fails half-way.  Memory: module gate_sched's heap
 * (heaps.h), whether the modules were started or not (the benchmark and the
 * unit tests use the scheduler alone).
 */
#include "scheduler.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "capacity.h"
#include "heaps.h"
#include "sched_int.h"

#define SCHED_HEAP KEEL_MODULE_REF(gate_sched)

/*
 * The estimator: decayed counts of recent outcomes plus a weak prior worth
 * PRIOR_N changes at prior_p.  The shape is chosen over the whole posterior
 * (gate_sched_shape), so a weak prior does not make a few passes look like
 * certainty; it lets the first rounds move the shape at once.
 */
static const double decay = 0.98;
static const double prior_n = 2.0;

/*
 * The flake rate: decayed counts of the failed and of all attempts of the
 * candidates that passed in the end, plus a pessimistic prior (one build in
 * ten fails spuriously) worth FLAKE_PRIOR_N builds.
 */
static const double flake_prior = 0.1;
static const double flake_prior_n = 10.0;

/*
 * At depth 1 nothing measures a deeper window: the pace of the deeper depths
 * fades there, halved every pace_life changes decided (a depth's own, this
 * at first), so a depth written off once (a round measured while another
 * tenant slowed the machine, or while the capacity estimate was still wrong)
 * comes back towards the fit of depth 1 and the window goes there again when
 * the model says it pays, and measures it anew.  Each time the window leaves
 * a depth for a shallower one, that depth's life doubles: on a machine where
 * a deeper window really is slower the probes grow rarer (with 150 changes,
 * 3 probes of depth 2), where it was a passing slowdown the window stays deep.
 * Shallower depths than the one in use keep their evidence: it is what a
 * deeper depth is compared with (fading it too left a window at depth 2 on a
 * machine where depth 1 was the fastest, its pace never measured).
 */
static const double pace_life = 16.0;

static const char *const kind_names[] = {"land", "reject", "flaky", "cancel-build", "reopen"};

const char *gate_sched_kind_name(gate_sched_kind k)
{
    return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

static const char *const why_names[] = {"none", "runs", "same", "different", "final", "held"};

const char *gate_sched_why_name(gate_sched_why w)
{
    return (unsigned)w < sizeof(why_names) / sizeof(why_names[0]) ? why_names[w] : "?";
}

void gate_sched_params_default(gate_sched_params *p)
{
    KEEL_ASSERT(p != NULL);
    memset(p, 0, sizeof(*p));
    p->strategy = (gate_strategy)GATE_DEFAULT_STRATEGY;
    p->max_batch = GATE_DEFAULT_MAX_BATCH;
    p->max_depth = GATE_DEFAULT_MAX_DEPTH;
    p->slots = 4;
    p->retries = GATE_DEFAULT_RETRIES;
    p->flaky_alike = GATE_DEFAULT_FLAKY_ALIKE;
    p->prior_p = 0.1;
    p->parallel = 0.0;
}

keel_status gate_sched_new(const gate_sched_params *p, gate_sched **out)
{
    KEEL_ASSERT(p != NULL && out != NULL);
    *out = NULL;
    if ((unsigned)p->strategy > (unsigned)GATE_STRATEGY_ADAPTIVE)
        return KEEL_ERR(KEEL_E_INVAL, "unknown strategy %d", (int)p->strategy);
    if (p->max_batch < 1 || p->max_batch > GATE_SCHED_MAX_BATCH)
        return KEEL_ERR(KEEL_E_INVAL, "'max-batch' %u is not in [1, %d]", p->max_batch,
                        GATE_SCHED_MAX_BATCH);
    if (p->max_depth < 1 || p->max_depth > GATE_SCHED_MAX_DEPTH)
        return KEEL_ERR(KEEL_E_INVAL, "'max-depth' %u is not in [1, %d]", p->max_depth,
                        GATE_SCHED_MAX_DEPTH);
    if (p->slots < 1 || p->slots > GATE_SCHED_MAX_SLOTS)
        return KEEL_ERR(KEEL_E_INVAL, "'slots' %u is not in [1, %d]", p->slots,
                        GATE_SCHED_MAX_SLOTS);
    if (p->retries > GATE_SCHED_MAX_RETRIES)
        return KEEL_ERR(KEEL_E_INVAL, "'retries' %u is not in [0, %d]", p->retries,
                        GATE_SCHED_MAX_RETRIES);
    if (p->flaky_alike < 2 || p->flaky_alike > 3)
        return KEEL_ERR(KEEL_E_INVAL, "'flaky-alike' %u is not in [2, 3]", p->flaky_alike);
    if (!(p->prior_p > 0.0 && p->prior_p < 1.0))
        return KEEL_ERR(KEEL_E_INVAL, "'prior_p' %g is not in (0, 1)", p->prior_p);
    if (!(p->parallel >= 0.0 && p->parallel <= GATE_CAP_UNLIMITED))
        return KEEL_ERR(KEEL_E_INVAL, "'parallel' %g is not in [0, %g]", p->parallel,
                        GATE_CAP_UNLIMITED);
    if (p->jobs > GATE_MAX_CONFIGS)
        return KEEL_ERR(KEEL_E_INVAL, "'jobs' %u is not in [0, %d]", p->jobs, GATE_MAX_CONFIGS);
    void *mem = NULL;
    keel_status st = keel_heap_calloc(SCHED_HEAP, 1, sizeof(gate_sched), &mem);
    if (!keel_ok(st))
        return KEEL_CONTEXT(st, "creating a scheduler");
    gate_sched *s = (gate_sched *)mem;
    s->p = *p;
    s->next_cand = 1;
    s->jobs = p->jobs > 0 ? p->jobs : 1;
    for (unsigned i = 0; i < GATE_SCHED_PACE_DEPTHS; i++)
        s->pace_life[i] = pace_life;
    gate_cap_init(&s->cap, p->parallel);
    *out = s;
    return KEEL_OK;
}

void gate_sched_delete(gate_sched *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nplan; i++) {
        keel_heap_free(SCHED_HEAP, s->plan[i].ids);
        keel_heap_free(SCHED_HEAP, s->plan[i].cfg);
    }
    for (size_t i = 0; i < s->dlen; i++)
        keel_heap_free(SCHED_HEAP, s->decs[s->dhead + i].ids);
    keel_heap_free(SCHED_HEAP, s->plan);
    keel_heap_free(SCHED_HEAP, s->decs);
    keel_heap_free(SCHED_HEAP, s->queue);
    keel_heap_free(SCHED_HEAP, s->alone);
    keel_heap_free(SCHED_HEAP, s->polled);
    keel_heap_free(SCHED_HEAP, s->spare);
    keel_heap_free(SCHED_HEAP, s->names);
    keel_heap_free(SCHED_HEAP, s);
}

/* ---- helpers ------------------------------------------------------------------ */

static double estimate(const gate_sched *s)
{
    return (s->bad_w + s->p.prior_p * prior_n) / (s->all_w + prior_n);
}

/* The evidence the estimate rests on, in changes. */
static double evidence(const gate_sched *s)
{
    return s->all_w + prior_n;
}

/* What the shape depends on now; `cap`: s's capacity estimate, or a copy of it (fitted here). */
/*
 * The pace of depth d, measured time over the model's, is fitted as
 * exp(a + g log d) by least squares in log ratio, each depth weighted by the
 * model's time of the changes it decided (in units of a build's longest job
 * alone), with priors a = 0 worth PACE_PRIOR_A and g = 0 worth PACE_PRIOR_G
 * of that time: the model is trusted at depth 1 more than in how much depth
 * gains, and a depth not used yet takes its pace from those that were.
 */
static const double pace_prior_a = 16.0, pace_prior_g = 4.0;

static unsigned pace_index(unsigned depth)
{
    return depth == 0 ? 0 : depth < GATE_SCHED_PACE_DEPTHS ? depth - 1 : GATE_SCHED_PACE_DEPTHS - 1;
}

static void pace_fit(const gate_sched *s, double unit_ms, double *pace)
{
    if (!(unit_ms > 0.0)) {
        for (unsigned i = 0; i < GATE_SCHED_PACE_DEPTHS; i++)
            pace[i] = 1.0;
        return;
    }
    double sw = pace_prior_a, swx = 0.0, swxx = pace_prior_g, swr = 0.0, swxr = 0.0;
    for (unsigned i = 0; i < GATE_SCHED_PACE_DEPTHS; i++) {
        double w = s->pace_expected[i];
        if (!(w > 0.0) || !(s->pace_measured[i] > 0.0))
            continue;
        double x = log((double)(i + 1)), r = log(s->pace_measured[i] / unit_ms / w);
        sw += w;
        swx += w * x;
        swxx += w * x * x;
        swr += w * r;
        swxr += w * x * r;
    }
    double det = sw * swxx - swx * swx; /* > 0: both priors are */
    double a = (swr * swxx - swx * swxr) / det, g = (sw * swxr - swx * swr) / det;
    for (unsigned i = 0; i < GATE_SCHED_PACE_DEPTHS; i++) {
        double v = exp(a + g * log((double)(i + 1)));
        pace[i] = v < 0.125 ? 0.125 : v > 8.0 ? 8.0 : v;
    }
}

static double flake_rate(const gate_sched *s)
{
    return (s->flaked_w + flake_prior * flake_prior_n) / (s->tried_w + flake_prior_n);
}

static void outlook(const gate_sched *s, gate_cap *cap, gate_sched_outlook *o)
{
    memset(o, 0, sizeof(*o));
    pace_fit(s, gate_cap_unit_ms(cap), o->pace);
    o->p = estimate(s);
    o->n = evidence(s);
    o->queued = s->qlen;
    o->parallel = gate_cap_parallel(cap);
    o->jobs = s->jobs;
    o->width = gate_cap_width(cap, s->jobs);
    gate_cap_fail_cost(cap, &o->fail_time, &o->fail_work);
    gate_cap_retry_cost(cap, &o->retry_time, &o->retry_work);
    o->flake = flake_rate(s);
    o->batch = s->shape_batch;
    o->depth = s->shape_depth;
}

static bool same_pace(const double *a, const double *b)
{
    for (unsigned i = 0; i < GATE_SCHED_PACE_DEPTHS; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* Would gate_sched_shape choose for `o` what it chose for `c`: the same inputs but the queue's length? */
static bool same_inputs(const gate_sched_outlook *o, const gate_sched_outlook *c)
{
    return o->p == c->p && o->n == c->n && o->parallel == c->parallel && o->jobs == c->jobs &&
           o->width == c->width && o->fail_time == c->fail_time && o->fail_work == c->fail_work &&
           o->retry_time == c->retry_time && o->retry_work == c->retry_work &&
           o->flake == c->flake && same_pace(o->pace, c->pace);
}

/*
 * The strategy's shape for the current estimates (cached: it changes only
 * with them; the queue's length is not among its inputs).
 */
static void shape(gate_sched *s, unsigned *batch, unsigned *depth)
{
    gate_sched_outlook o;
    outlook(s, &s->cap, &o);
    if (!same_inputs(&o, &s->shape_for)) {
        unsigned was = s->shape_depth;
        gate_sched_shape(&s->p, &o, &s->shape_batch, &s->shape_depth);
        if (was > 0 && s->shape_depth < was && s->clock_set)
            s->pace_life[pace_index(was)] *= 2.0;
        s->shape_for = o;
    }
    *batch = s->shape_batch;
    *depth = s->shape_depth;
}

/*
 * Adaptive: is single-change segment g, whose candidate failed, more likely
 * bad than flaky?  A final failure is bad for good.  Otherwise, after k
 * failures, bad against good-and-flaky-k-times: p against (1 - p) f^k.
 * When it is, and the candidates built on it have failed too (one that
 * passes shows it flaky), they are dropped and the window goes on without it
 * while it is retried ("skipped"); if the retry passes, it lands and what
 * was built without it is dropped.  Fixed strategies wait for the retry.
 */
static bool presume_bad(const gate_sched *s, const seg *g)
{
    KEEL_ASSERT(s != NULL && g != NULL);
    if (s->p.strategy != GATE_STRATEGY_ADAPTIVE || g->n != 1 || g->failures == 0)
        return false;
    if (g->final)
        return true;
    double p = estimate(s);
    return p > (1.0 - p) * pow(flake_rate(s), (double)g->failures);
}

/* Have all the candidates behind segment i (built on it) failed? */
static bool behind_failed(const gate_sched *s, size_t i)
{
    for (size_t j = i + 1; j < s->nplan; j++) {
        const seg *g = &s->plan[j];
        if (g->cand != 0 && g->state != CAND_FAILED && g->state != CAND_RETRY)
            return false;
    }
    return true;
}

/*
 * What the model expects n decisions of this outcome to take with the shape
 * in use: a landed change its time when none fails, a rejected one the rest
 * of the shape's expected time, t = (1 - p) pass + p reject (p the estimate
 * the shape was chosen for).  So the pace measures the model's error, not
 * the queue's luck: a run of passes decided fast is fast for passes, not a
 * sign that the depth in use beats the model.
 */
static double expected_of(double p, double t, double pass, size_t n, bool bad)
{
    if (!bad)
        return (double)n * pass;
    double rest = p > 0.0 ? (t - (1.0 - p) * pass) / p : t;
    return (double)n * (rest > pass ? rest : pass);
}

/*
 * A candidate that failed and then passed on its tree: the model counts no
 * flake, and its retry held the window for about a job's time (a retry runs
 * the configurations that failed), which the pace would otherwise read as
 * the depth in use deciding slower than the model says.
 */
static void pace_flaked(gate_sched *s)
{
    if (s->clock_set && s->shape_depth > 0 && gate_cap_unit_ms(&s->cap) > 0.0)
        s->pace_expected[pace_index(s->shape_depth)] += gate_cap_span(s->shape_for.parallel, 1.0);
}

/*
 * Decisions came: the time that bought them joins the pace's measurements
 * with what the model expects of them, split among the depths that time ran
 * at in its proportion, each for the shape in use there and with what the
 * scheduler knows now of the executor and the queue (a round measured while
 * the capacity estimate was still its prior is judged by the estimate it
 * taught, not by the prior's promise of free parallelism; a window back at
 * depth 1 before a deeper round's decisions came: its time is the deeper
 * depth's, and so are they).
 */
static void observe(gate_sched *s, size_t n, bool bad)
{
    double pending = 0.0;
    for (unsigned i = 0; i < GATE_SCHED_PACE_DEPTHS; i++)
        pending += s->pace_pending[i];
    if (s->clock_set && s->shape_depth > 0 && gate_cap_unit_ms(&s->cap) > 0.0) {
        unsigned cur = pace_index(s->shape_depth);
        for (unsigned i = 1; cur == 0 && i < GATE_SCHED_PACE_DEPTHS; i++) {
            double fade = pow(0.5, (double)n / s->pace_life[i]);
            s->pace_measured[i] *= fade;
            s->pace_expected[i] *= fade;
        }
        gate_sched_outlook o;
        outlook(s, &s->cap, &o);
        double ep_total = 0.0; /* a rejection: its episode's time, this decision's included */
        for (unsigned i = 0; bad && i < GATE_SCHED_PACE_DEPTHS; i++)
            ep_total += s->ep_time[i] + s->pace_pending[i];
        for (unsigned i = 0; i < GATE_SCHED_PACE_DEPTHS; i++) {
            bool now = !(pending > 0.0) && i == cur;
            double share = now ? 1.0 : pending > 0.0 ? s->pace_pending[i] / pending : 0.0;
            double ep_share =
                ep_total > 0.0 ? (s->ep_time[i] + s->pace_pending[i]) / ep_total : share;
            if (!(share > 0.0) && !(ep_share > 0.0))
                continue;
            unsigned b = now ? s->shape_batch : s->pend_batch[i];
            unsigned d = now ? s->shape_depth : s->pend_depth[i];
            double t = gate_sched_shape_time(&s->p, &o, b, d);
            double pass = gate_sched_shape_pass_time(&s->p, &o, b, d);
            double passes = (double)n * pass; /* expected_of is at least that */
            s->pace_expected[i] +=
                passes * share + (expected_of(o.p, t, pass, n, bad) - passes) * ep_share;
        }
    }
    for (unsigned i = 0; i < GATE_SCHED_PACE_DEPTHS; i++) {
        if (s->ep_on)
            s->ep_time[i] += s->pace_pending[i];
        s->pace_measured[i] += s->pace_pending[i];
        s->pace_pending[i] = 0.0;
    }
    if (bad)
        s->ep_on = false;
    for (size_t i = 0; i < n; i++) {
        s->bad_w = s->bad_w * decay + (bad ? 1.0 : 0.0);
        s->all_w = s->all_w * decay + 1.0;
    }
}

static keel_status grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return KEEL_OK;
    size_t ncap = *cap < 8 ? 8 : *cap;
    while (ncap < need)
        ncap *= 2;
    keel_status s = keel_heap_realloc(SCHED_HEAP, buf, ncap * elem);
    if (keel_ok(s))
        *cap = ncap;
    return s;
}

/*
 * Room for whatever one event can produce: a decision per segment plus a
 * cancel per running build, one more segment, and the spare half of a split.
 */
static keel_status reserve(gate_sched *s)
{
    KEEL_ASSERT(s != NULL);
    if (s->dhead > 0) {
        memmove(s->decs, s->decs + s->dhead, s->dlen * sizeof(*s->decs));
        s->dhead = 0;
    }
    size_t need = s->dlen + s->nplan + s->running + s->nwatch + 4;
    keel_status st = grow((void **)&s->decs, &s->dcap, need, sizeof(*s->decs));
    if (keel_ok(st))
        st = grow((void **)&s->plan, &s->plancap, s->nplan + 2, sizeof(*s->plan));
    if (keel_ok(st) && s->spare == NULL)
        st = keel_heap_alloc(SCHED_HEAP, s->p.max_batch * sizeof(long long), (void **)&s->spare);
    if (!keel_ok(st))
        return KEEL_CONTEXT(st, "scheduling %zu candidates", s->nplan);
    return KEEL_OK;
}

/* A decision to hand out (gate_sched_poll), the newest; room made by reserve(). */
entry *gate__sched_push(gate_sched *s, gate_sched_kind kind, long long cand, long long change,
                        long long *ids, size_t n)
{
    KEEL_ASSERT(s->dhead + s->dlen < s->dcap);
    entry *e = &s->decs[s->dhead + s->dlen++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->candidate = cand;
    e->change = change;
    e->ids = ids;
    e->n = n;
    return e;
}

/* Configuration c's verdict on segment g's tree. */
void gate__sched_cfg_verdict(const seg *g, const cfg_ev *c, gate_sched_verdict *v)
{
    memset(v, 0, sizeof(*v));
    v->candidate = g->cand;
    (void)snprintf(v->config, sizeof(v->config), "%s", c->name);
    v->runs = c->runs;
    v->failures = c->fails;
    v->job = c->job;
    v->why = c->why;
}

/* Segment g's evidence for a decision: `which` (cfg_failed or cfg_flaked) first true. */
static void verdict_of(const seg *g, bool (*which)(const cfg_ev *), gate_sched_verdict *v)
{
    memset(v, 0, sizeof(*v));
    v->candidate = g->cand;
    for (size_t k = 0; k < g->ncfg; k++)
        if (which(&g->cfg[k])) {
            gate__sched_cfg_verdict(g, &g->cfg[k], v);
            return;
        }
}

/* Has configuration c failed its tree for good? */
bool gate__sched_cfg_failed(const cfg_ev *c)
{
    return c->why != GATE_SCHED_WHY_NONE;
}

static bool cfg_flaked(const cfg_ev *c)
{
    return c->passed && c->fails > 0;
}

/* Segment i leaves the plan (its changes decided). */
static void remove_seg(gate_sched *s, size_t i)
{
    KEEL_ASSERT(i < s->nplan);
    keel_heap_free(SCHED_HEAP, s->plan[i].ids);
    keel_heap_free(SCHED_HEAP, s->plan[i].cfg);
    memmove(&s->plan[i], &s->plan[i + 1], (s->nplan - i - 1) * sizeof(*s->plan));
    s->nplan--;
}

/* Drop segment g's candidate (its result no longer matters). */
static void drop_candidate(gate_sched *s, seg *g)
{
    KEEL_ASSERT(s != NULL && g != NULL);
    if (g->cand == 0)
        return;
    if (g->state == CAND_RUNNING) {
        KEEL_ASSERT(s->running > 0);
        gate__sched_push(s, GATE_SCHED_CANCEL_BUILD, g->cand, 0, NULL, 0);
        s->running--;
        s->st.cancelled_builds++;
    }
    g->cand = 0;
    g->base = 0;
    g->state = CAND_NONE;
    g->attempts = 0;
    g->failures = 0;
    g->presumed_bad = false;
    g->skipped = false;
    g->final = false;
    g->ncfg = 0;
}

/* Forget candidates and knowledge from segment i on. */
static void drop_from(gate_sched *s, size_t i)
{
    for (size_t j = i; j < s->nplan; j++) {
        drop_candidate(s, &s->plan[j]);
        s->plan[j].known_bad = false;
        s->plan[j].from_n = 0;
    }
}

/* Split known-bad segment i: its first half (unknown) and the rest (known bad). */
static void split(gate_sched *s, size_t i)
{
    KEEL_ASSERT(i < s->nplan && s->plan[i].n > 1 && s->plan[i].known_bad);
    KEEL_ASSERT(s->nplan < s->plancap && s->spare != NULL);
    seg *g = &s->plan[i];
    size_t h = g->n / 2;
    seg rest;
    memset(&rest, 0, sizeof(rest));
    rest.ids = s->spare;
    s->spare = NULL;
    rest.n = g->n - h;
    memcpy(rest.ids, g->ids + h, rest.n * sizeof(long long));
    rest.known_bad = true;
    rest.held = g->held; /* a tree that held the whole held each half */
    rest.from_n = g->from_n;
    rest.from = g->from;
    g->n = h;
    g->known_bad = false;
    g->from_n = 0;
    memmove(&s->plan[i + 2], &s->plan[i + 1], (s->nplan - i - 1) * sizeof(*s->plan));
    s->plan[i + 1] = rest;
    s->nplan++;
}

/* Settle the front: land what passed, retry, isolate, reject. */
static void advance(gate_sched *s)
{
    KEEL_ASSERT(s != NULL);
    while (s->nplan > 0) {
        seg *f = &s->plan[0];
        if (f->cand != 0 && f->state == CAND_PASSED) {
            /* everything below it landed: its base is the tip */
            KEEL_VERIFY(f->base == s->tip);
            gate__sched_push(s, GATE_SCHED_LAND, f->cand, 0, f->ids, f->n);
            s->tip = f->cand;
            s->st.landed += f->n;
            observe(s, f->n, false);
            f->ids = NULL; /* the decision owns them */
            remove_seg(s, 0);
            continue;
        }
        if (f->cand != 0 && f->state == CAND_FAILED) {
            if (!f->final) {
                f->state = CAND_RETRY;
                break;
            }
            gate_sched_verdict v;
            verdict_of(f, gate__sched_cfg_failed, &v);
            if (!f->skipped)
                drop_from(s, 1); /* those behind it contain it; not when they skip it */
            if (f->n == 1) {
                /* the change alone on the tip failed for good: its own evidence */
                entry *e = gate__sched_push(s, GATE_SCHED_REJECT, f->cand, f->ids[0], NULL, 0);
                e->decided = v;
                e->batch_n = f->from_n;
                e->batch = f->from;
                gate__sched_watch(s, f, e);
                s->st.rejected++;
                observe(s, 1, true);
                remove_seg(s, 0);
                continue;
            }
            drop_candidate(s, f);
            f->known_bad = true;
            f->from_n = f->n;
            f->from = v;
            continue;
        }
        if (f->cand == 0 && f->known_bad) {
            if (f->n == 1)
                break; /* gate_sched_next builds it alone: only that failure rejects it */
            split(s, 0);
            continue;
        }
        break;
    }
}

static keel_status start(gate_sched *s, seg *g, long long base, gate_sched_build *out)
{
    KEEL_ASSERT(s != NULL && g != NULL && g->cand == 0 && g->n > 0);
    g->cand = s->next_cand++;
    g->base = base;
    g->state = CAND_RUNNING;
    g->attempts = 1;
    g->failures = 0;
    g->final = false;
    g->ncfg = 0;
    s->running++;
    s->st.builds++;
    s->st.candidates++;
    out->candidate = g->cand;
    out->base = base == s->tip ? 0 : base;
    out->changes = g->ids;
    out->n = g->n;
    out->attempt = 1;
    return KEEL_OK;
}

/* Adaptive: whether segment i, not built yet, is cut again before it is built. */
static bool recut_pays(const gate_sched *s, size_t i, unsigned batch, unsigned depth)
{
    const seg *g = &s->plan[i];
    if (g->n > batch)
        return true;
    /*
     * Smaller than the shape (a half sent back unknown, the rest of a batch
     * behind a failure): where the window's builds queue for the executor's
     * cores (depth 1, or the window's work, depth times a build's width, at
     * least the jobs it runs at once), every build costs the time of its
     * work, so two small ones cost more than one of the shape's size and it
     * goes out with what waits behind them.  Where the window has room,
     * small segments build side by side with the rest of it, and isolate the
     * next failure in fewer rounds (bench_gate: cutting them again there made
     * the free executor at p 0.1 slower).
     */
    const gate_sched_outlook *o = &s->shape_for;
    bool queued = depth <= 1 || (double)depth * o->width >= o->parallel;
    return queued && g->n < batch && (i + 1 < s->nplan || s->qlen > 0);
}

/*
 * Adaptive: segments i.. (none built, none known bad) go back to the front of
 * the queue, to be cut again to the shape of now (a batch cut when the
 * estimate was lower would otherwise be rebuilt whole after every drop).
 * False when one of them may not go back (the queue is unchanged).
 */
static bool unplan_from(gate_sched *s, size_t i)
{
    size_t total = 0;
    for (size_t j = i; j < s->nplan; j++) {
        const seg *g = &s->plan[j];
        if (g->cand != 0 || g->known_bad)
            return false;
        total += g->n;
    }
    keel_status st =
        grow((void **)&s->queue, &s->qcap, s->qhead + s->qlen + total, sizeof(long long));
    if (!keel_ok(st)) {
        keel_status_ignore(st, "no room to cut it again: it is built as it was cut");
        return false;
    }
    memmove(s->queue + total, s->queue + s->qhead, s->qlen * sizeof(long long));
    s->qhead = 0;
    size_t at = 0;
    for (size_t j = i; j < s->nplan; j++) {
        memcpy(s->queue + at, s->plan[j].ids, s->plan[j].n * sizeof(long long));
        at += s->plan[j].n;
        keel_heap_free(SCHED_HEAP, s->plan[j].ids);
        keel_heap_free(SCHED_HEAP, s->plan[j].cfg);
    }
    s->qlen += total;
    s->nplan = i;
    return true;
}

/* ---- the API ------------------------------------------------------------------- */

static bool active(const gate_sched *s, long long change, size_t *seg_at, size_t *pos)
{
    for (size_t i = 0; i < s->qlen; i++)
        if (s->queue[s->qhead + i] == change) {
            *seg_at = SIZE_MAX;
            *pos = i;
            return true;
        }
    for (size_t i = 0; i < s->nplan; i++)
        for (size_t k = 0; k < s->plan[i].n; k++)
            if (s->plan[i].ids[k] == change) {
                *seg_at = i;
                *pos = k;
                return true;
            }
    return false;
}

keel_status gate_sched_enqueue(gate_sched *s, long long change)
{
    KEEL_ASSERT(s != NULL);
    if (change <= 0)
        return KEEL_ERR(KEEL_E_INVAL, "change id %lld is not positive", change);
    size_t at = 0, pos = 0;
    if (active(s, change, &at, &pos))
        return KEEL_ERR(KEEL_E_EXISTS, "change %lld is already queued", change);
    if (s->qhead > 0 && s->qhead + s->qlen == s->qcap) {
        memmove(s->queue, s->queue + s->qhead, s->qlen * sizeof(long long));
        s->qhead = 0;
    }
    keel_status st = grow((void **)&s->queue, &s->qcap, s->qhead + s->qlen + 1, sizeof(long long));
    if (!keel_ok(st))
        return KEEL_CONTEXT(st, "queueing change %lld", change);
    s->queue[s->qhead + s->qlen++] = change;
    gate__sched_unwatch_change(s, change); /* no rejection of it to take back */
    return KEEL_OK;
}

static bool is_alone(const gate_sched *s, long long change)
{
    for (size_t i = 0; i < s->nalone; i++)
        if (s->alone[i] == change)
            return true;
    return false;
}

keel_status gate_sched_enqueue_alone(gate_sched *s, long long change)
{
    KEEL_ASSERT(s != NULL);
    keel_status st = grow((void **)&s->alone, &s->alonecap, s->nalone + 1, sizeof(long long));
    if (keel_ok(st))
        st = gate_sched_enqueue(s, change);
    if (!keel_ok(st))
        return st;
    s->alone[s->nalone++] = change;
    return KEEL_OK;
}

keel_status gate_sched_cancel(gate_sched *s, long long change)
{
    KEEL_ASSERT(s != NULL);
    size_t at = 0, pos = 0;
    if (!active(s, change, &at, &pos))
        return KEEL_ERR(KEEL_E_NOTFOUND, "change %lld is not queued or testing", change);
    keel_status st = reserve(s);
    if (!keel_ok(st))
        return st;
    s->st.cancelled++;
    if (at == SIZE_MAX) {
        long long *q = s->queue + s->qhead;
        memmove(q + pos, q + pos + 1, (s->qlen - pos - 1) * sizeof(long long));
        s->qlen--;
        return KEEL_OK;
    }
    seg *g = &s->plan[at];
    memmove(g->ids + pos, g->ids + pos + 1, (g->n - pos - 1) * sizeof(long long));
    g->n--;
    drop_from(s, at);
    if (g->n == 0)
        remove_seg(s, at);
    advance(s);
    return KEEL_OK;
}

keel_status gate_sched_next(gate_sched *s, gate_sched_build *out, bool *have)
{
    KEEL_ASSERT(s != NULL && out != NULL && have != NULL);
    *have = false;
    memset(out, 0, sizeof(*out));
    if (s->running >= s->p.slots)
        return KEEL_OK;
    keel_status st = reserve(s);
    if (!keel_ok(st))
        return st;
    unsigned batch = 1, depth = 1;
    shape(s, &batch, &depth);
    if (s->nplan > 0 && s->plan[0].state == CAND_RETRY) {
        seg *f = &s->plan[0];
        st = grow((void **)&s->names, &s->namescap, f->ncfg, sizeof(const char *));
        if (!keel_ok(st))
            return KEEL_CONTEXT(st, "retrying candidate %lld", f->cand);
        size_t nnames = 0;
        for (size_t k = 0; k < f->ncfg; k++)
            if (f->cfg[k].fails > 0 && !f->cfg[k].passed)
                s->names[nnames++] = f->cfg[k].name; /* only what failed runs again */
        out->configs = s->names;
        out->nconfigs = nnames;
        f->state = CAND_RUNNING;
        f->attempts++;
        s->running++;
        s->st.builds++;
        s->st.retries++;
        out->candidate = f->cand;
        out->base = f->base == s->tip ? 0 : f->base;
        out->changes = f->ids;
        out->n = f->n;
        out->attempt = f->attempts;
        *have = true;
        return KEEL_OK;
    }
    long long base = s->tip;
    unsigned live = 0;
    for (size_t i = 0; i < s->nplan; i++) {
        seg *g = &s->plan[i];
        if (g->cand != 0) {
            if (g->presumed_bad && !g->skipped && !behind_failed(s, i))
                return KEEL_OK; /* the candidates on it may still show it flaky */
            if (g->presumed_bad && !g->skipped) {
                drop_from(s, i + 1); /* they failed with it: build past it instead */
                g->skipped = true;
            }
            if (g->skipped) {
                live++;
                continue;
            }
            if (g->state == CAND_FAILED || g->state == CAND_RETRY)
                return KEEL_OK; /* nothing useful stacks on a failure */
            base = g->cand;
            live++;
            continue;
        }
        if (g->known_bad && g->n > 1)
            return KEEL_OK; /* split when it reaches the front */
        if (live >= depth)
            return KEEL_OK;
        if (g->known_bad) {
            /* a single change blamed by bisection: built alone once more, and past it meanwhile */
            g->known_bad = false;
            *have = true;
            st = start(s, g, base, out);
            g->skipped = true;
            return st;
        }
        if (s->p.strategy == GATE_STRATEGY_ADAPTIVE && recut_pays(s, i, batch, depth) &&
            unplan_from(s, i))
            break; /* cut again below */
        *have = true;
        return start(s, g, base, out);
    }
    if (s->qlen == 0 || live >= depth)
        return KEEL_OK;
    size_t n = s->qlen < batch ? s->qlen : batch;
    for (size_t k = 0; k < n && s->nalone > 0; k++)
        if (is_alone(s, s->queue[s->qhead + k])) {
            n = k > 0 ? k : 1; /* a batch ends before it; it is a candidate of its own */
            break;
        }
    void *mem = NULL;
    st = keel_heap_alloc(SCHED_HEAP, n * sizeof(long long), &mem);
    if (!keel_ok(st))
        return KEEL_CONTEXT(st, "making a candidate of %zu changes", n);
    long long *ids = (long long *)mem;
    memcpy(ids, s->queue + s->qhead, n * sizeof(long long));
    s->qhead += n;
    s->qlen -= n;
    seg *g = &s->plan[s->nplan++];
    memset(g, 0, sizeof(*g));
    g->ids = ids;
    g->n = n;
    *have = true;
    return start(s, g, base, out);
}

/*
 * Configuration `name`'s bit in seg.held (named the first time it is seen);
 * 0 past GATE_SCHED_HELD_MAX configurations: no such evidence for it.
 */
static unsigned long long held_bit(gate_sched *s, const char *name)
{
    unsigned k = 0;
    while (k < s->nheld_names && strcmp(s->held_names[k], name) != 0)
        k++;
    if (k == s->nheld_names) {
        if (k == GATE_SCHED_HELD_MAX)
            return 0;
        (void)snprintf(s->held_names[k], sizeof(s->held_names[k]), "%s", name);
        s->nheld_names++;
    }
    return 1ull << k;
}

/* Configuration `name` of segment g (added when new: room reserved by the caller). */
static cfg_ev *cfg_of(seg *g, const char *name)
{
    for (size_t k = 0; k < g->ncfg; k++)
        if (strcmp(g->cfg[k].name, name) == 0)
            return &g->cfg[k];
    KEEL_ASSERT(g->ncfg < g->cfgcap);
    cfg_ev *c = &g->cfg[g->ncfg++];
    memset(c, 0, sizeof(*c));
    (void)snprintf(c->name, sizeof(c->name), "%s", name);
    return c;
}

/*
 * One run of a configuration on segment g's tree.  A pass settles it (the
 * tree passes it, flaky when it failed before: its endings are remembered as
 * flakes').  A failure ends it for good when it is `final`, when its
 * signature is one an earlier failure there had (deterministic: a retry would
 * repeat it; flaky_alike - 1 earlier ones when the configuration has
 * flaked lately, gate__sched_flaked_lately) and not one this
 * configuration has flaked with lately (gate__sched_flaky_ending: a flaky test often
 * fails the same way), nor a configuration held (seg.held: it passed on a
 * tree holding g's changes, which a broken change never does), or when its runs
 * are spent: 1 + retries, and GATE_SCHED_SUSPECT_EXTRA more while every
 * failure had a known signature and none repeated but a flake's (suspect
 * flakes).
 */
static void record(gate_sched *s, seg *g, const gate_sched_run *r, bool final)
{
    cfg_ev *c = cfg_of(g, r->config);
    if (c->passed || c->why != GATE_SCHED_WHY_NONE)
        return; /* settled: a run it did not need says nothing more */
    c->runs++;
    if (r->passed) {
        c->passed = true;
        if (c->fails > 0) {
            gate__sched_flaky_endings_add(s, c);
            c->learned = true; /* build_ended takes back what rested on them */
        }
        return;
    }
    c->job = r->job;
    KEEL_ASSERT(c->fails < SIG_KEEP);
    c->sig[c->fails++] = r->signature;
    if (final) {
        c->why = GATE_SCHED_WHY_FINAL;
        g->final = true;
        return;
    }
    bool known = true;
    bool flake_like = r->signature != 0 && gate__sched_flaky_ending(s, c->name, r->signature);
    unsigned alike = 0; /* the earlier failures there that ended this way */
    for (unsigned k = 0; k + 1 < c->fails; k++) {
        known = known && c->sig[k] != 0;
        alike += r->signature != 0 && c->sig[k] == r->signature ? 1u : 0u;
    }
    known = known && r->signature != 0;
    /* a tree holding its changes passed this configuration: a failure alike is no evidence */
    bool held = (g->held & held_bit(s, c->name)) != 0;
    if (alike > 0 && !flake_like && !held) {
        /* a configuration seen to flake lately: with flaky_alike 3, two alike may be two flakes */
        unsigned need = s->p.flaky_alike > 2 && gate__sched_flaked_lately(s, c->name)
                            ? s->p.flaky_alike - 1
                            : 1;
        if (alike >= need || c->fails >= s->p.retries + 1 + GATE_SCHED_SUSPECT_EXTRA) {
            c->why = GATE_SCHED_WHY_SAME;
            g->final = true;
        }
        c->repeated = true;
        return; /* else one more run, whatever `retries` is left */
    }
    if (c->repeated) { /* its one more run, spent on another ending: the repeat stands */
        c->why = GATE_SCHED_WHY_SAME;
        g->final = true;
        return;
    }
    bool suspect = known && c->fails >= 2; /* none repeated so far but a flake's ending */
    unsigned limit = s->p.retries + 1 + (suspect ? (unsigned)GATE_SCHED_SUSPECT_EXTRA : 0u);
    if (c->fails >= limit) {
        c->why = !suspect            ? GATE_SCHED_WHY_RUNS
                 : held && alike > 0 ? GATE_SCHED_WHY_HELD
                                     : GATE_SCHED_WHY_DIFFERENT;
        g->final = true;
    }
}

/*
 * A build of `candidate` ended with `runs`; `final`: its failures are such
 * that a retry would fail the same way.
 */
static keel_status build_ended(gate_sched *s, long long candidate, const gate_sched_run *runs,
                               size_t n, bool final)
{
    KEEL_ASSERT(s != NULL && (runs != NULL || n == 0));
    if (candidate <= 0 || candidate >= s->next_cand)
        return KEEL_ERR(KEEL_E_NOTFOUND, "no candidate %lld", candidate);
    for (size_t k = 0; k < n; k++)
        if (runs[k].config == NULL || strlen(runs[k].config) >= GATE_SCHED_NAME_MAX)
            return KEEL_ERR(KEEL_E_INVAL,
                            "candidate %lld: configuration %zu has no name or one "
                            "of %d bytes or more",
                            candidate, k, GATE_SCHED_NAME_MAX);
    size_t i = 0;
    while (i < s->nplan && s->plan[i].cand != candidate)
        i++;
    if (i == s->nplan)
        return KEEL_OK; /* dropped: its result no longer matters */
    if (s->plan[i].state != CAND_RUNNING)
        return KEEL_ERR(KEEL_E_STATE, "candidate %lld is not running", candidate);
    keel_status st = reserve(s);
    if (keel_ok(st))
        st =
            grow((void **)&s->plan[i].cfg, &s->plan[i].cfgcap, s->plan[i].ncfg + n, sizeof(cfg_ev));
    if (!keel_ok(st))
        return KEEL_CONTEXT(st, "the result of candidate %lld", candidate);
    seg *g = &s->plan[i]; /* after reserve(), which may move the plan */
    KEEL_ASSERT(s->running > 0);
    s->running--;
    if (g->attempts == 1 && n > 0) {
        s->jobs = (unsigned)n;              /* a first build runs every configuration */
        gate_cap_build b = {0, 0, g->cand}; /* which failed: what a failed build costs */
        for (size_t k = 0; k < n; k++)
            gate_cap_build_job(&s->cap, &b, runs[k].config, !runs[k].passed);
        gate_cap_build_ended(&s->cap, &b);
    }
    for (size_t k = 0; k < n; k++)
        record(s, g, &runs[k], final);
    /*
     * Each configuration that passed on its tree (whatever the others did) is
     * held on every segment the tree holds: those ahead of it, not skipped.
     */
    unsigned long long passed = 0;
    for (size_t k = 0; k < g->ncfg; k++)
        if (g->cfg[k].passed)
            passed |= held_bit(s, g->cfg[k].name);
    for (size_t k = 0; k < i && passed != 0; k++)
        if (!s->plan[k].skipped)
            s->plan[k].held |= passed;
    bool open = false, flaked = false;
    for (size_t k = 0; k < g->ncfg; k++) {
        open = open || (g->cfg[k].fails > 0 && !g->cfg[k].passed);
        flaked = flaked || cfg_flaked(&g->cfg[k]);
    }
    if (!open) {
        if (flaked) {
            entry *e = gate__sched_push(s, GATE_SCHED_FLAKY, g->cand, 0, NULL, 0);
            verdict_of(g, cfg_flaked, &e->decided);
            s->st.flaky++;
            pace_flaked(s);
            for (size_t k = 0; k < g->ncfg; k++)
                if (cfg_flaked(&g->cfg[k])) /* not what a failure of a change costs */
                    gate_cap_flaked(&s->cap, g->cand, g->cfg[k].name);
        }
        if (g->skipped)
            drop_from(s, i + 1); /* built without it: wrong now */
        g->presumed_bad = false;
        g->skipped = false;
        g->from_n = 0;
        g->state = CAND_PASSED;
        for (size_t k = 0; k < i; k++)
            if (!s->plan[k].skipped)
                s->plan[k].presumed_bad = false; /* it holds them and passed: they flaked */
        s->flaked_w = s->flaked_w * decay + (double)g->failures;
        s->tried_w = s->tried_w * decay + (double)g->attempts;
    } else {
        g->failures++;
        g->state = CAND_FAILED;
        if (!s->ep_on) {
            s->ep_on = true;
            memset(s->ep_time, 0, sizeof(s->ep_time));
        }
        if (!g->skipped && g->final)
            drop_from(s, i + 1); /* doomed: they contain this failure */
        g->presumed_bad = presume_bad(s, g);
    }
    for (size_t k = 0; k < g->ncfg; k++)
        if (g->cfg[k].learned) { /* after the FLAKY, when the tree passed */
            g->cfg[k].learned = false;
            gate__sched_reopen(s, g, &g->cfg[k]);
        }
    advance(s);
    return KEEL_OK;
}

keel_status gate_sched_results(gate_sched *s, long long candidate, const gate_sched_run *runs,
                               size_t n)
{
    return build_ended(s, candidate, runs, n, false);
}

keel_status gate_sched_result(gate_sched *s, long long candidate, bool passed)
{
    gate_sched_run r;
    memset(&r, 0, sizeof(r));
    r.config = "";
    r.passed = passed;
    return build_ended(s, candidate, &r, 1, false);
}

keel_status gate_sched_result_final(gate_sched *s, long long candidate)
{
    gate_sched_run r;
    memset(&r, 0, sizeof(r));
    r.config = "";
    return build_ended(s, candidate, &r, 1, true);
}

bool gate_sched_poll(gate_sched *s, gate_sched_decision *out)
{
    KEEL_ASSERT(s != NULL && out != NULL);
    keel_heap_free(SCHED_HEAP, s->polled);
    s->polled = NULL;
    memset(out, 0, sizeof(*out));
    if (s->dlen == 0)
        return false;
    entry e = s->decs[s->dhead++];
    s->dlen--;
    out->kind = e.kind;
    out->candidate = e.candidate;
    out->change = e.change;
    out->changes = e.ids;
    out->n = e.n;
    out->decided = e.decided;
    out->batch = e.batch;
    out->batch_n = e.batch_n;
    out->rejected = e.rejected;
    out->signature = e.signature;
    s->polled = e.ids;
    return true;
}

void gate_sched_capacity(gate_sched *s, double parallel)
{
    KEEL_ASSERT(s != NULL);
    gate_cap_tell(&s->cap, parallel);
}

void gate_sched_timed(gate_sched *s, const char *config, double elapsed_ms, double load)
{
    gate_sched_job_time t = {config, elapsed_ms, load, 0.0, true};
    gate_sched_job_timed(s, &t);
}

void gate_sched_job_timed(gate_sched *s, const gate_sched_job_time *t)
{
    KEEL_ASSERT(s != NULL && t != NULL && t->config != NULL);
    if (t->passed)
        gate_cap_observe_shared(&s->cap, t->config, t->elapsed_ms, t->load, t->others);
    else /* learned from only if it ran its course (capacity.h) */
        gate_cap_observe_failed(&s->cap, t->config, t->elapsed_ms, t->load, t->others);
}

size_t gate_sched_timings_kept(void)
{
    return GATE_CAP_OBS;
}

void gate_sched_clock(gate_sched *s, double now_ms)
{
    KEEL_ASSERT(s != NULL);
    if (!isfinite(now_ms))
        return;
    double was = s->clock_ms;
    bool set = s->clock_set;
    s->clock_ms = now_ms;
    s->clock_set = true;
    if (!set || !(now_ms > was) || s->running == 0 || s->shape_depth == 0)
        return;
    unsigned i = pace_index(s->shape_depth);
    s->pace_pending[i] += now_ms - was; /* in units when fitted */
    s->pend_batch[i] = s->shape_batch;
    s->pend_depth[i] = s->shape_depth;
}

void gate_sched_inherit(gate_sched *to, const gate_sched *from)
{
    KEEL_ASSERT(to != NULL && from != NULL);
    memcpy(to->pace_measured, from->pace_measured, sizeof(to->pace_measured));
    memcpy(to->pace_pending, from->pace_pending, sizeof(to->pace_pending));
    memcpy(to->pend_batch, from->pend_batch, sizeof(to->pend_batch));
    memcpy(to->pend_depth, from->pend_depth, sizeof(to->pend_depth));
    memcpy(to->pace_expected, from->pace_expected, sizeof(to->pace_expected));
    memcpy(to->pace_life, from->pace_life, sizeof(to->pace_life));
    memcpy(to->ep_time, from->ep_time, sizeof(to->ep_time));
    to->ep_on = from->ep_on;
    double told = to->cap.told;
    to->cap = from->cap;
    gate_cap_tell(&to->cap, told); /* what the new one was told holds */
    if (to->p.jobs == 0)           /* what the configuration says of a build's jobs holds */
        to->jobs = from->jobs;
    memcpy(to->flaky, from->flaky, sizeof(to->flaky));
    to->flaky_n = from->flaky_n;
    to->flaky_seen = from->flaky_seen;
    memcpy(to->watch, from->watch, sizeof(to->watch));
    to->nwatch = from->nwatch;
}

void gate_sched_remember(const gate_sched *s, gate_sched_memory *out)
{
    KEEL_ASSERT(s != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    out->n = s->all_w;
    out->p = s->all_w > 0.0 ? s->bad_w / s->all_w : 0.0;
    out->flake_n = s->tried_w;
    out->flake = s->tried_w > 0.0 ? s->flaked_w / s->tried_w : 0.0;
}

/* The weight a recalled rate `rate` over `n` gets, at most `cap` (0: out of range). */
static double recalled(double rate, double n, double cap)
{
    if (!(rate >= 0.0 && rate <= 1.0) || !(n > 0.0) || !isfinite(n))
        return 0.0;
    return n < cap ? n : cap;
}

void gate_sched_recall(gate_sched *s, const gate_sched_memory *m)
{
    KEEL_ASSERT(s != NULL && m != NULL);
    double w = recalled(m->p, m->n, GATE_SCHED_RECALL_CHANGES);
    if (w > 0.0) { /* not m->p * 0: a NaN stays one */
        s->bad_w += m->p * w;
        s->all_w += w;
    }
    w = recalled(m->flake, m->flake_n, GATE_SCHED_RECALL_BUILDS);
    if (w > 0.0) {
        s->flaked_w += m->flake * w;
        s->tried_w += w;
    }
}

void gate_sched_stats_get(const gate_sched *s, gate_sched_stats *out)
{
    KEEL_ASSERT(s != NULL && out != NULL);
    *out = s->st;
    out->queued = s->qlen;
    out->testing = 0;
    for (size_t i = 0; i < s->nplan; i++)
        out->testing += s->plan[i].n;
    out->running = s->running;
    gate_cap cap = s->cap; /* the fit is cached in it: a copy, s is const here */
    gate_sched_outlook o;
    outlook(s, &cap, &o);
    unsigned batch = s->shape_batch, depth = s->shape_depth;
    if (batch == 0 || !same_inputs(&o, &s->shape_for)) /* else shape()'s: the loop asks often */
        gate_sched_shape(&s->p, &o, &batch, &depth);
    out->p = o.p;
    out->batch = batch;
    out->depth = depth;
    out->parallel = o.parallel;
    out->jobs = s->jobs;
    out->width = o.width;
    out->fail_time = o.fail_time;
    out->fail_work = o.fail_work;
    out->retry_time = o.retry_time;
    out->retry_work = o.retry_work;
    out->flake = o.flake;
    out->timed = s->cap.nobs;
    out->machine = gate_cap_machine(&cap);
    out->others = gate_cap_others(&cap);
    memcpy(out->pace, o.pace, sizeof(out->pace));
}

double gate_sched_stats_pace(const gate_sched_stats *st, unsigned depth)
{
    KEEL_ASSERT(st != NULL);
    return st->pace[pace_index(depth)];
}
