/*
 * capacity.c - what the executor really runs at once (see capacity.h).
 */
#include "capacity.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "keel/keel.h"

/*
 * The fit's noise and the prior's width, in log time: a job's time varies
 * by about 15% on a shared machine; the told parallelism is trusted to a
 * factor of about 1.6 (a job may use more than one core, or wait on I/O).
 */
static const double sigma = 0.15, tau = 0.5;
static const double grid_lo = 0.5, grid_step = 1.08;

static double clamp_told(double told)
{
    return told <= 0.0 || told >= GATE_CAP_UNLIMITED ? GATE_CAP_UNLIMITED
           : told < grid_lo                          ? grid_lo
                                                     : told;
}

void gate_cap_init(gate_cap *c, double told)
{
    KEEL_ASSERT(c != NULL);
    memset(c, 0, sizeof(*c));
    c->told = clamp_told(told);
    c->parallel = c->told;
}

void gate_cap_tell(gate_cap *c, double told)
{
    KEEL_ASSERT(c != NULL);
    c->told = clamp_told(told);
    c->dirty = true;
}

static unsigned cfg_index(gate_cap *c, const char *config)
{
    for (unsigned k = 0; k < c->ncfg; k++)
        if (strcmp(c->names[k], config) == 0)
            return k;
    if (c->ncfg == GATE_CAP_CONFIGS)
        return GATE_CAP_CONFIGS - 1; /* the rest share the last */
    (void)snprintf(c->names[c->ncfg], sizeof(c->names[0]), "%s", config);
    return c->ncfg++;
}

void gate_cap_observe(gate_cap *c, const char *config, double ms, double load)
{
    gate_cap_observe_shared(c, config, ms, load, 0.0);
}

static void observe(gate_cap *c, const char *config, double ms, double load, double others,
                    bool failed)
{
    KEEL_ASSERT(c != NULL && config != NULL);
    if (!(ms > 0.0) || !isfinite(ms) || !isfinite(load))
        return; /* says nothing */
    gate_cap_obs *o = &c->obs[c->next];
    o->cfg = cfg_index(c, config);
    o->log_ms = log(ms);
    o->log_load = load > 1.0 ? log(load) : 0.0;
    o->others = others > 0.0 && isfinite(others) ? others : 0.0;
    o->failed = failed;
    o->dropped = false;
    o->build = 0;
    o->flaky = false;
    c->next = (c->next + 1) % GATE_CAP_OBS;
    if (c->nobs < GATE_CAP_OBS)
        c->nobs++;
    c->dirty = true;
}

static double expect_log_ms(gate_cap *c, const gate_cap_obs *o);

/*
 * Configuration k's failures, judged against the fit without them: those
 * that took less than GATE_CAP_RAN_COURSE of what it gives a pass are left
 * out of the fit (dropped), the rest are in it.
 */
static void judge_failures(gate_cap *c, unsigned k)
{
    for (unsigned i = 0; i < c->nobs; i++)
        if (c->obs[i].cfg == k && c->obs[i].failed)
            c->obs[i].dropped = true;
    c->dirty = true;
    for (unsigned i = 0; i < c->nobs; i++) {
        gate_cap_obs *o = &c->obs[i];
        if (o->cfg == k && o->failed)
            o->dropped = o->log_ms < log(GATE_CAP_RAN_COURSE) + expect_log_ms(c, o);
    }
    c->dirty = true;
}

static bool has_pass(const gate_cap *c, unsigned k)
{
    for (unsigned i = 0; i < c->nobs; i++)
        if (c->obs[i].cfg == k && !c->obs[i].failed)
            return true;
    return false;
}

void gate_cap_observe_shared(gate_cap *c, const char *config, double ms, double load, double others)
{
    KEEL_ASSERT(c != NULL && config != NULL);
    unsigned k = cfg_index(c, config);
    bool first = !has_pass(c, k);
    observe(c, config, ms, load, others, false);
    if (first)
        judge_failures(c, k); /* those taken while nothing was known */
}

void gate_cap_observe_failed(gate_cap *c, const char *config, double ms, double load, double others)
{
    KEEL_ASSERT(c != NULL && config != NULL);
    unsigned k = cfg_index(c, config);
    observe(c, config, ms, load, others, true);
    if (has_pass(c, k))
        judge_failures(c, k);
}

/* log(P - others), at least log GATE_CAP_FLOOR; P itself when it is not limited. */
static double log_left(double lp, double others)
{
    if (!(others > 0.0) || lp >= log(GATE_CAP_UNLIMITED) - 1e-9)
        return lp;
    double left = exp(lp) - others;
    return left > GATE_CAP_FLOOR ? log(left) : log(GATE_CAP_FLOOR);
}

/* log max(1, k / left): how much slower a job ran among k (log_load) with `left` (log) free. */
static double log_slow(double log_load, double lq)
{
    return log_load > lq ? log_load - lq : 0.0;
}

/*
 * The squared error of P (log p) over the window, each configuration's
 * log W_c at its closed-form optimum (the mean of log ms - log max(1,
 * k/(P - o))), written to lw when not NULL.
 */
static double misfit(const gate_cap *c, double lp, double *lw)
{
    double sum[GATE_CAP_CONFIGS] = {0}, sq[GATE_CAP_CONFIGS] = {0};
    unsigned n[GATE_CAP_CONFIGS] = {0};
    for (unsigned i = 0; i < c->nobs; i++) {
        const gate_cap_obs *o = &c->obs[i];
        if (o->dropped)
            continue;
        double lq = log_left(lp, o->others);
        double slow = log_slow(o->log_load, lq);
        double y = o->log_ms - slow;
        sum[o->cfg] += y;
        sq[o->cfg] += y * y;
        n[o->cfg]++;
    }
    double e = 0.0;
    for (unsigned k = 0; k < c->ncfg; k++) {
        if (n[k] == 0) {
            if (lw != NULL)
                lw[k] = -INFINITY;
            continue;
        }
        double mean = sum[k] / n[k];
        e += sq[k] - (double)n[k] * mean * mean; /* the sum of (y - mean)^2 */
        if (lw != NULL)
            lw[k] = mean;
    }
    double prior = lp - log(c->told);
    return e / (sigma * sigma) + prior * prior / (tau * tau);
}

static void fit(gate_cap *c)
{
    if (!c->dirty)
        return;
    c->dirty = false;
    double best = INFINITY, best_lp = log(c->told);
    double top = log(GATE_CAP_UNLIMITED) + 1e-9;
    for (unsigned g = 0;; g++) {
        double lp = log(grid_lo) + (double)g * log(grid_step);
        if (lp > top)
            break;
        double e = misfit(c, lp, NULL);
        if (e < best) {
            best = e;
            best_lp = lp;
        }
    }
    if (log(c->told) <= top && misfit(c, log(c->told), NULL) <= best)
        best_lp = log(c->told); /* the grid's points are 8% apart: the told value itself */
    double lw[GATE_CAP_CONFIGS];
    (void)misfit(c, best_lp, lw);
    c->parallel = exp(best_lp);
    for (unsigned k = 0; k < c->ncfg; k++)
        c->alone_ms[k] = isfinite(lw[k]) ? exp(lw[k]) : 0.0;
}

/* The log of the time the fit gives a pass of o's configuration at o's load and others. */
static double expect_log_ms(gate_cap *c, const gate_cap_obs *o)
{
    fit(c);
    double lw = c->alone_ms[o->cfg] > 0.0 ? log(c->alone_ms[o->cfg]) : -INFINITY;
    double lq = log_left(log(c->parallel), o->others);
    return lw + log_slow(o->log_load, lq);
}

double gate_cap_others(const gate_cap *c)
{
    KEEL_ASSERT(c != NULL);
    double sum = 0.0;
    unsigned seen = 0;
    for (unsigned back = 1; back <= c->nobs && seen < (unsigned)GATE_CAP_RECENT; back++, seen++)
        sum += c->obs[(c->next + GATE_CAP_OBS - back) % GATE_CAP_OBS].others;
    return seen > 0 ? sum / (double)seen : 0.0;
}

double gate_cap_machine(gate_cap *c)
{
    KEEL_ASSERT(c != NULL);
    fit(c);
    return c->parallel;
}

double gate_cap_parallel(gate_cap *c)
{
    KEEL_ASSERT(c != NULL);
    fit(c);
    double others = gate_cap_others(c);
    return others > 0.0 ? exp(log_left(log(c->parallel), others)) : c->parallel;
}

double gate_cap_alone_ms(gate_cap *c, const char *config)
{
    KEEL_ASSERT(c != NULL && config != NULL);
    fit(c);
    for (unsigned k = 0; k < c->ncfg; k++)
        if (strcmp(c->names[k], config) == 0)
            return c->alone_ms[k];
    return 0.0;
}

/* gate_cap_fail_part of configuration k. */
static double fail_part(gate_cap *c, unsigned k)
{
    bool passed = false;
    for (unsigned i = 0; i < c->nobs && !passed; i++)
        passed = c->obs[i].cfg == k && !c->obs[i].failed;
    double sum = 0.0, n = 0.0;
    for (unsigned i = 0; i < c->nobs && passed; i++) {
        const gate_cap_obs *o = &c->obs[i];
        if (o->cfg != k || !o->failed || o->flaky)
            continue;
        /* judge_failures' verdict: dropped when under GATE_CAP_RAN_COURSE of a pass */
        double part = o->dropped ? exp(o->log_ms - expect_log_ms(c, o)) : 1.0;
        sum += part < GATE_CAP_FAIL_MIN ? GATE_CAP_FAIL_MIN : part > 1.0 ? 1.0 : part;
        n += 1.0;
    }
    return n > 0.0 ? sum / n : 1.0;
}

double gate_cap_fail_part(gate_cap *c, const char *config)
{
    KEEL_ASSERT(c != NULL && config != NULL);
    for (unsigned k = 0; k < c->ncfg; k++)
        if (strcmp(c->names[k], config) == 0)
            return fail_part(c, k);
    return 1.0;
}

void gate_cap_build_job(gate_cap *c, gate_cap_build *b, const char *config, bool failed)
{
    KEEL_ASSERT(c != NULL && b != NULL && config != NULL);
    unsigned k = cfg_index(c, config), bit = 1u << k;
    b->ran |= bit;
    b->failed |= failed ? bit : 0u;
    for (unsigned back = 1; failed && b->id > 0 && back <= c->nobs; back++) {
        gate_cap_obs *o = &c->obs[(c->next + GATE_CAP_OBS - back) % GATE_CAP_OBS];
        if (o->cfg == k && o->failed && o->build == 0) {
            o->build = b->id;
            break;
        }
    }
}

void gate_cap_flaked(gate_cap *c, long long id, const char *config)
{
    KEEL_ASSERT(c != NULL && config != NULL);
    unsigned k = cfg_index(c, config);
    for (unsigned i = 0; id > 0 && i < c->nobs; i++)
        if (c->obs[i].build == id && c->obs[i].cfg == k)
            c->obs[i].flaky = true;
    for (unsigned i = 0; id > 0 && i < c->nfailed; i++)
        if (c->failed[i].id == id)
            c->failed[i].failed &= ~(1u << k);
}

void gate_cap_build_ended(gate_cap *c, const gate_cap_build *b)
{
    KEEL_ASSERT(c != NULL && b != NULL);
    if (b->failed == 0)
        return;
    c->failed[c->next_failed] = *b;
    c->next_failed = (c->next_failed + 1) % GATE_CAP_FAILED;
    if (c->nfailed < GATE_CAP_FAILED)
        c->nfailed++;
}

/*
 * gate_cap_fail_cost (retry false) or gate_cap_retry_cost (true): over the
 * newest failed builds, what each (or its rerun of the jobs that failed)
 * took against a pass of it, in time (the longest job) and work (the sum).
 */
static void build_costs(gate_cap *c, bool retry, double *time, double *work)
{
    double unit = gate_cap_unit_ms(c), w[GATE_CAP_CONFIGS], part[GATE_CAP_CONFIGS];
    unsigned used = 0;
    for (unsigned i = 0; i < c->nfailed; i++)
        used |= c->failed[i].failed;
    for (unsigned k = 0; k < c->ncfg; k++) {
        w[k] = c->alone_ms[k] > 0.0 ? c->alone_ms[k] : unit > 0.0 ? unit : 1.0;
        part[k] = (used >> k) & 1u ? fail_part(c, k) : 1.0;
    }
    double t = GATE_CAP_FAIL_PRIOR, wk = GATE_CAP_FAIL_PRIOR, n = GATE_CAP_FAIL_PRIOR;
    for (unsigned i = 0; i < c->nfailed; i++) {
        const gate_cap_build *b = &c->failed[i];
        if (b->failed == 0)
            continue; /* its failures were flakes (gate_cap_flaked) */
        n += 1.0;
        double top = 0.0, longest = 0.0, sum = 0.0, done = 0.0;
        for (unsigned k = 0; k < c->ncfg; k++) {
            if (!((b->ran >> k) & 1u))
                continue;
            bool failed = (b->failed >> k) & 1u;
            double took = failed ? w[k] * part[k] : retry ? 0.0 : w[k];
            top = w[k] > top ? w[k] : top;
            longest = took > longest ? took : longest;
            sum += w[k];
            done += took;
        }
        t += top > 0.0 ? longest / top : 1.0;
        wk += sum > 0.0 ? done / sum : 1.0;
    }
    *time = t / n;
    *work = wk / n;
}

void gate_cap_fail_cost(gate_cap *c, double *time, double *work)
{
    KEEL_ASSERT(c != NULL && time != NULL && work != NULL);
    build_costs(c, false, time, work);
}

void gate_cap_retry_cost(gate_cap *c, double *time, double *work)
{
    KEEL_ASSERT(c != NULL && time != NULL && work != NULL);
    build_costs(c, true, time, work);
}

double gate_cap_unit_ms(gate_cap *c)
{
    KEEL_ASSERT(c != NULL);
    fit(c);
    double top = 0.0;
    for (unsigned k = 0; k < c->ncfg; k++)
        top = c->alone_ms[k] > top ? c->alone_ms[k] : top;
    return top;
}

double gate_cap_width(gate_cap *c, unsigned jobs)
{
    KEEL_ASSERT(c != NULL && jobs >= 1);
    fit(c);
    double sum = 0.0, top = 0.0;
    unsigned seen = 0;
    for (unsigned k = 0; k < c->ncfg && seen < jobs; k++) {
        if (!(c->alone_ms[k] > 0.0))
            continue;
        sum += c->alone_ms[k];
        top = c->alone_ms[k] > top ? c->alone_ms[k] : top;
        seen++;
    }
    if (seen == 0)
        return (double)jobs;
    return sum / top + (double)(jobs - seen);
}

double gate_cap_span(double parallel, double jobs)
{
    KEEL_ASSERT(parallel > 0.0);
    return jobs > parallel ? jobs / parallel : 1.0;
}
