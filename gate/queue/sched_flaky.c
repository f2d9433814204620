/*
 * sched_flaky.c - what keel-gate's scheduler remembers of flakes (scheduler.h:
 * Flakes, Rejections taken back): the endings of the flakes it saw (a
 * configuration failed, then passed on the same tree), so that a failure
 * that repeats one is no evidence of a real failure, and the rejections it
 * watches for their ending to turn out a flake's, which such a flake takes
 * back (REOPEN).  Each list the oldest first, the oldest going when it is
 * full, in the scheduler's own arrays (sched_int.h): nothing here allocates.
 * sched.c records the runs and makes the decisions, and calls in here.
 */
#include "scheduler.h"

#include <stdio.h>
#include <string.h>

#include "sched_int.h"

/* Where configuration `config`'s ending `sig` is among the flakes' (flaky_n: nowhere). */
static unsigned flaky_index(const gate_sched *s, const char *config, unsigned long long sig)
{
    KEEL_ASSERT(s->flaky_n <= GATE_SCHED_FLAKY_ENDINGS);
    unsigned k = 0;
    while (k < s->flaky_n &&
           (s->flaky[k].signature != sig || strcmp(s->flaky[k].config, config) != 0))
        k++;
    return k;
}

/* Has configuration `config` flaked with ending `sig` (known, not 0) lately? */
bool gate__sched_flaky_ending(const gate_sched *s, const char *config, unsigned long long sig)
{
    KEEL_ASSERT(sig != 0);
    return flaky_index(s, config, sig) < s->flaky_n;
}

/*
 * Ending `sig` of configuration `config` is a flake's, seen now (`seen`; 0:
 * recalled): the newest, the oldest going when they are
 * GATE_SCHED_FLAKY_ENDINGS.  One known already moves to the newest.
 */
static void flaky_seen_now(gate_sched *s, const char *config, unsigned long long sig,
                           unsigned long long seen)
{
    unsigned k = flaky_index(s, config, sig);
    if (k == s->flaky_n && s->flaky_n == GATE_SCHED_FLAKY_ENDINGS)
        k = 0; /* the oldest goes */
    if (k < s->flaky_n) {
        memmove(&s->flaky[k], &s->flaky[k + 1], (s->flaky_n - k - 1) * sizeof(gate_sched_flaky));
        s->flaky_n--;
    }
    gate_sched_flaky *e = &s->flaky[s->flaky_n++];
    (void)snprintf(e->config, sizeof(e->config), "%s", config);
    e->signature = sig;
    e->seen = seen;
}

/* Has configuration `config` flaked lately (an ending of it among the flakes' known)? */
bool gate__sched_flaked_lately(const gate_sched *s, const char *config)
{
    for (unsigned k = 0; k < s->flaky_n; k++)
        if (strcmp(s->flaky[k].config, config) == 0)
            return true;
    return false;
}

/* Configuration c failed with its endings c->sig and then passed on its tree: they are flakes'. */
void gate__sched_flaky_endings_add(gate_sched *s, const cfg_ev *c)
{
    for (unsigned k = 0; k < c->fails; k++)
        if (c->sig[k] != 0)
            flaky_seen_now(s, c->name, c->sig[k], ++s->flaky_seen);
}

/* The i-th watched rejection is watched no more. */
static void unwatch(gate_sched *s, unsigned i)
{
    KEEL_ASSERT(i < s->nwatch);
    memmove(&s->watch[i], &s->watch[i + 1], (s->nwatch - i - 1) * sizeof(*s->watch));
    s->nwatch--;
}

/* Rejection w watched: the newest, the oldest going when there are GATE_SCHED_REOPEN_WATCH. */
static void watch_add(gate_sched *s, const gate_sched_watched *w)
{
    if (s->nwatch == GATE_SCHED_REOPEN_WATCH)
        unwatch(s, 0);
    s->watch[s->nwatch++] = *w;
}

/*
 * Rejection e of segment f's change: watched (e->signature its ending) when
 * one configuration alone failed f for good, the same way twice (its last
 * failure repeats an earlier one: that ending; WHY_SAME, or WHY_HELD after
 * its extra runs), the oldest watched going
 * when there are GATE_SCHED_REOPEN_WATCH.
 */
void gate__sched_watch(gate_sched *s, const seg *f, entry *e)
{
    const cfg_ev *same = NULL;
    for (size_t k = 0; k < f->ncfg; k++) {
        if (!gate__sched_cfg_failed(&f->cfg[k]))
            continue;
        if (same != NULL ||
            (f->cfg[k].why != GATE_SCHED_WHY_SAME && f->cfg[k].why != GATE_SCHED_WHY_HELD))
            return; /* another configuration's failure is evidence of its own */
        same = &f->cfg[k];
    }
    if (same == NULL)
        return;
    KEEL_ASSERT(same->fails >= 2 && same->sig[same->fails - 1] != 0); /* record(): SAME, HELD */
    e->signature = same->sig[same->fails - 1];
    gate_sched_watched w = {e->change, e->decided, e->signature};
    watch_add(s, &w);
}

/* Change `change` is queued again: no rejection of it to take back. */
void gate__sched_unwatch_change(gate_sched *s, long long change)
{
    for (unsigned i = s->nwatch; i-- > 0;)
        if (s->watch[i].change == change)
            unwatch(s, i);
}

/*
 * Configuration c failed on segment g's tree, then passed: the rejections
 * watched for one of its endings are taken back (REOPEN), each once, and
 * that ending becomes a flake's of the rejected configuration too, so that
 * its failure with it on the change's next tree is no evidence (otherwise a
 * rejection on configuration a taken back by b's flake would be rejected at
 * two failures again, watched again, and taken back at b's next flake).
 */
void gate__sched_reopen(gate_sched *s, const seg *g, const cfg_ev *c)
{
    for (unsigned i = 0; i < s->nwatch;) {
        unsigned k = 0;
        while (k < c->fails && c->sig[k] != s->watch[i].signature)
            k++;
        if (k == c->fails) {
            i++;
            continue;
        }
        const gate_sched_watched *w = &s->watch[i];
        entry *e = gate__sched_push(s, GATE_SCHED_REOPEN, g->cand, w->change, NULL, 0);
        gate__sched_cfg_verdict(g, c, &e->decided);
        e->rejected = w->rejected;
        e->signature = w->signature;
        s->st.reopened++;
        if (strcmp(w->rejected.config, c->name) != 0)
            flaky_seen_now(s, w->rejected.config, w->signature, ++s->flaky_seen);
        unwatch(s, i);
    }
}

unsigned long long gate_sched_flaky_seen(const gate_sched *s)
{
    KEEL_ASSERT(s != NULL);
    return s->flaky_seen;
}

size_t gate_sched_flaky_endings(const gate_sched *s, gate_sched_flaky *out, size_t max)
{
    KEEL_ASSERT(s != NULL && (out != NULL || max == 0) && s->flaky_n <= GATE_SCHED_FLAKY_ENDINGS);
    size_t n = s->flaky_n < max ? s->flaky_n : max;
    if (n > 0)
        memcpy(out, s->flaky, n * sizeof(gate_sched_flaky));
    return s->flaky_n;
}

void gate_sched_recall_flaky(gate_sched *s, const gate_sched_flaky *e, size_t n)
{
    KEEL_ASSERT(s != NULL && (e != NULL || n == 0));
    for (size_t k = 0; k < n; k++)
        if (e[k].signature != 0 && memchr(e[k].config, '\0', sizeof(e[k].config)) != NULL &&
            !gate__sched_flaky_ending(s, e[k].config, e[k].signature))
            flaky_seen_now(s, e[k].config, e[k].signature, 0);
}

void gate_sched_recall_watched(gate_sched *s, const gate_sched_watched *w, size_t n)
{
    KEEL_ASSERT(s != NULL && (w != NULL || n == 0));
    for (size_t k = 0; k < n; k++) {
        bool known = false;
        for (unsigned i = 0; i < s->nwatch; i++)
            known = known || s->watch[i].change == w[k].change;
        if (!known && w[k].change > 0 && w[k].signature != 0 &&
            memchr(w[k].rejected.config, '\0', sizeof(w[k].rejected.config)) != NULL)
            watch_add(s, &w[k]);
    }
}
