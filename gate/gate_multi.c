/*
 * gate_multi.c - one gate, several targets (gate_run_targets): a gate per
 * target on one store, each with its own queue, scheduler, levels and flows,
 * run in turns by one thread, their jobs on one executor whose slots they
 * share (gate_pool_share: the target with the fewest jobs running takes the
 * next free slot).
 *
 *   begin every target -> (a turn of each target -> wait for a job of any)* -> end every target
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "gate_loop.h"

/* What the targets did so far: a round that changes none of it and leaves all done is the last. */
static unsigned long long progress(gate *const *gs, size_t n)
{
    unsigned long long sum = 0;
    for (size_t i = 0; i < n; i++) {
        const gate_run_stats *st = &gs[i]->stats;
        sum += st->builds + st->jobs + st->landed + st->rejected + st->conflicts + gs[i]->gen;
    }
    return sum;
}

/* Targets named twice, gates on other stores, targets without a branch: refused before anything. */
static keel_status check_targets(gate *const *gs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < i; k++) {
            if (strcmp(gs[i]->target, gs[k]->target) == 0)
                return keel_status_with_str(
                    KEEL_ERR(KEEL_E_INVAL, "target '%s' is given twice: a target has one queue",
                             gs[i]->target),
                    "target", gs[i]->target);
        }
        if (strcmp(gs[i]->state, gs[0]->state) != 0)
            return KEEL_ERR(KEEL_E_INVAL,
                            "the gates of '%s' and '%s' have different stores ('%s', '%s'): one "
                            "gate's targets share one store",
                            gs[0]->target, gs[i]->target, gs[0]->state, gs[i]->state);
        char tip[GATE_HEX];
        keel_status s = gate_branch_known(gs[i]->repo, gs[i]->target, tip);
        if (KEEL_IS(s, KEEL_E_NOTFOUND)) {
            keel_status_free(s);
            return keel_status_with_str(
                KEEL_ERR(KEEL_E_NOTFOUND,
                         "target '%s' is not a branch of '%s': create the branch first, or leave "
                         "it out of the targets",
                         gs[i]->target, gs[i]->repo_path),
                "target", gs[i]->target);
        }
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "target '%s'", gs[i]->target);
    }
    return KEEL_OK;
}

/* The shared executor: the most slots any target's configuration asks for. */
static keel_status share_pool(gate *const *gs, size_t n, gate_pool **core)
{
    unsigned slots = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned k = gate_slots(gs[i]->tip_cfg);
        slots = k > slots ? k : slots;
    }
    keel_status s = gate_pool_new(slots, core);
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        s = gate_pool_share(*core, &gs[i]->pool);
        if (keel_ok(s))
            gs[i]->pool_core = *core;
    }
    if (keel_ok(s))
        for (size_t i = 0; i < n; i++)
            gate_say(
                gs[i], "gate: '%s' at %.12s, strategy %s, one of %zu targets sharing %u slots\n",
                gs[i]->target, gs[i]->tip, gate_strategy_name(gs[i]->tip_cfg->strategy), n, slots);
    return s;
}

/* Any stop asked of one target (a signal reaches the first) is asked of all. */
static bool stop_all(gate *const *gs, size_t n)
{
    int signo = 0;
    for (size_t i = 0; i < n && signo == 0; i++)
        signo = __atomic_load_n(&gs[i]->stop_signal, __ATOMIC_ACQUIRE);
    if (signo == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!gate_stop_requested(gs[i]))
            gate_request_stop(gs[i], signo);
    return true;
}

static void add_stats(gate_run_stats *sum, const gate_run_stats *st, bool first)
{
    sum->builds += st->builds;
    sum->jobs += st->jobs;
    sum->landed += st->landed;
    sum->rejected += st->rejected;
    sum->conflicts += st->conflicts;
    sum->flakes += st->flakes;
    sum->reopened += st->reopened;
    sum->moved += st->moved;
    sum->notify_failures += st->notify_failures;
    if (sum->stop_signal == 0)
        sum->stop_signal = st->stop_signal;
    if (first) { /* what the first target's scheduler learned */
        sum->parallel = st->parallel;
        sum->timed = st->timed;
        sum->width = st->width;
        sum->batch = st->batch;
        sum->depth = st->depth;
    }
}

keel_status gate_run_targets(gate *const *gs, size_t n, bool once, gate_run_stats *stats)
{
    KEEL_ASSERT(gs != NULL && n > 0);
    if (n == 1)
        return gate_run(gs[0], once, stats);
    if (stats != NULL)
        memset(stats, 0, sizeof(*stats));
    keel_status first = check_targets(gs, n);
    if (!keel_ok(first))
        return first;
    void *mem = NULL;
    first = keel_heap_calloc(GATE_HEAP, n, sizeof(keel_status), &mem);
    if (!keel_ok(first))
        return KEEL_CONTEXT(first, "running %zu targets", n);
    keel_status *st = (keel_status *)mem;
    size_t begun = 0, failed = n; /* failed: the target whose error ends the run */
    for (; begun < n; begun++) {
        st[begun] = gate_run_begin(gs[begun], false);
        if (!keel_ok(st[begun])) {
            failed = begun++;
            break;
        }
    }
    gate_pool *core = NULL;
    if (failed == n) {
        st[0] = share_pool(gs, n, &core);
        failed = keel_ok(st[0]) ? n : 0;
    }
    bool done_all = failed < n;
    while (!done_all && !stop_all(gs, n)) {
        unsigned long long before = progress(gs, n);
        unsigned wait_ms = UINT_MAX;
        done_all = true;
        for (size_t i = 0; i < n && failed == n; i++) {
            gate *g = gs[i];
            bool done = false, over = false;
            g->wait_ms = g->poll_ms;
            st[i] = gate_run_step(g, once, st[i], &done, &over);
            if (over)
                failed = i;
            done_all = done_all && done;
            wait_ms = g->wait_ms < wait_ms ? g->wait_ms : wait_ms;
        }
        if (failed < n) /* one target's error ends the run: the others stop as on a signal */
            break;
        if (done_all && progress(gs, n) != before)
            done_all = false; /* a target moved after another said it was done: once more */
        if (!done_all)
            (void)gate_pool_wait_any(core, wait_ms);
    }
    for (size_t i = 0; failed < n && i < n; i++)
        if (i != failed)
            gate_request_stop(gs[i], -1);
    keel_status result = KEEL_OK;
    for (size_t i = 0; i < begun; i++) {
        gate_run_stats one;
        memset(&one, 0, sizeof(one));
        keel_status s = gate_run_end(gs[i], st[i], &one);
        gs[i]->pool_core = NULL;
        if (failed < n && i != failed && keel_ok(s))
            one.stop_signal = 0; /* stopped for another target's error, not a signal */
        if (stats != NULL)
            add_stats(stats, &one, i == 0);
        if (keel_ok(result))
            result = s;
        else if (!keel_ok(s))
            keel_status_ignore(s, "the first target's error is reported");
    }
    for (size_t i = begun; i < n; i++)
        gs[i]->pool_core = NULL;
    if (failed < n && keel_ok(result))
        result = KEEL_ERR(KEEL_E_INTERNAL, "target '%s' stopped the run", gs[failed]->target);
    gate_pool_delete(core);
    keel_heap_free(GATE_HEAP, st);
    return result;
}

keel_status gate_targets_open(const gate_options *o, gate *g, const char *const *given,
                              size_t ngiven, gate ***gs, size_t *n)
{
    KEEL_ASSERT(o != NULL && g != NULL && gs != NULL && n != NULL);
    *gs = NULL;
    *n = 0;
    gate_config *own = NULL;
    const gate_config *cfg = ngiven == 0 ? gate_tip_config(g, &own) : NULL;
    const char *const *names = ngiven > 0 ? given : NULL;
    size_t count = ngiven;
    if (cfg != NULL && cfg->targets.n > 0) {
        names = (const char *const *)cfg->targets.words;
        count = cfg->targets.n;
    }
    if (count == 0 || (count == 1 && strcmp(names[0], g->target) == 0)) {
        gate_config_free(own); /* one target: g's, as ever */
        return KEEL_OK;
    }
    void *mem = NULL;
    keel_status s = keel_heap_calloc(GATE_HEAP, count, sizeof(gate *), &mem);
    gate **out = (gate **)mem;
    for (size_t i = 0; keel_ok(s) && i < count; i++) {
        gate_options one = *o;
        one.target = names[i];
        s = gate_open(&one, &out[i]);
        if (!keel_ok(s))
            s = KEEL_CONTEXT(s, "opening target '%s'", names[i]);
    }
    gate_config_free(own);
    if (!keel_ok(s)) {
        gate_targets_close(out, count);
        return s;
    }
    *gs = out;
    *n = count;
    return KEEL_OK;
}

void gate_targets_close(gate **gs, size_t n)
{
    for (size_t i = 0; gs != NULL && i < n; i++)
        gate_close(gs[i]);
    keel_heap_free(GATE_HEAP, gs);
}
