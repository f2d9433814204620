/*
 * gate_loop.c - gate_run: the gatekeeper loop.
 *
 *   recover -> (sync the queue -> decisions -> builds -> wait for a job)*
 *
 * A build is a candidate (the scheduler's changes merged in order on its
 * base) and one job per configuration of the merged tree's .keel/gate.conf,
 * each in a work tree holding exactly the merged tree: work trees are reused
 * by the jobs after them (worktree.h), one per job in flight.  Decisions: land (compare-and-swap of the target
 * from the tip the candidate was built on to its merge), reject, flaky,
 * cancel a build.  A lost compare-and-swap (someone pushed to the target)
 * overwrites nothing: everything in flight is abandoned and rebuilt on the new
 * tip, exactly as after a restart.
 *
 * Stopping on request (gate_request_stop, a signal): no new work, the running
 * jobs killed and their results kept from the candidates (a job killed by a
 * shutdown says nothing about a change), then what was in flight goes back to
 * the queue as a restart would put it.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backout.h"
#include "ccache.h"
#include "exec.h"
#include "flows_turn.h"
#include "gate_loop.h"
#include "nightly.h"
#include "post.h"
#include "signature.h"
#include "slurm.h"
#include "store.h"
#include "store_web.h"
#include "text.h"

enum { QUEUE_MAX = 4096, AGING_S = 3600 };

long long gate_now_s(void)
{
    return (long long)time(NULL);
}

keel_status gate_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return KEEL_OK;
    size_t ncap = *cap > 0 ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    keel_status s = keel_heap_realloc(GATE_HEAP, arr, ncap * elem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "growing a table to %zu entries", ncap);
    *cap = ncap;
    return KEEL_OK;
}

void gate_request_stop(gate *g, int signo)
{
    __atomic_store_n(&g->stop_signal, signo != 0 ? signo : -1, __ATOMIC_RELEASE);
}

bool gate_stop_requested(const gate *g)
{
    return __atomic_load_n(&g->stop_signal, __ATOMIC_ACQUIRE) != 0;
}

/* Every module's heap stats for `status`: at most once a second unless `now`. */
static void publish_heaps(gate *g, bool now)
{
    long long t = gate_now_s();
    if (!now && t == g->heaps_at)
        return;
    g->heaps_at = t;
    char path[GATE_DIR_MAX + 32];
    gate_fmt(path, sizeof(path), "%s/heaps.json", g->tdir);
    keel_status s = gate_heaps_publish(path);
    if (keel_ok(s))
        return;
    if (!g->heaps_warned) {
        g->heaps_warned = true;
        gate_say(g, "warning: the heap stats are not published: %s\n", keel_status_message(s));
    }
    keel_status_free(s);
}

/*
 * Changes submitted by a push, every poll (a remote's every tenth: a
 * connection each time).  A failure is a warning: the queue goes on.
 */
static void take_pushed(gate *g)
{
    long long t = (long long)gate_now_ms();
    if (t < g->pushed_at_ms)
        return;
    g->pushed_at_ms = t + (long long)g->poll_ms * (gate_repo_is_remote(g->repo) ? 10 : 1);
    size_t queued = 0;
    keel_status s = gate_take_pushed(g, &queued);
    if (keel_ok(s)) {
        g->pushed_warned = false;
        return;
    }
    if (!g->pushed_warned) { /* once until it works again */
        char msg[1024];
        (void)keel_status_format(s, msg, sizeof(msg));
        gate_say(g, "warning: %s\n", msg);
        g->pushed_warned = true;
    }
    keel_status_free(s);
}

gate_cand *gate_find_cand(gate *g, long long sid)
{
    for (size_t i = g->ncands; i-- > 0;)
        if (g->cands[i]->sid == sid && g->cands[i]->gen == g->gen)
            return g->cands[i];
    return NULL;
}

void gate_drop_active(gate *g, long long change)
{
    for (size_t i = 0; i < g->nactive; i++)
        if (g->active[i] == change) {
            g->active[i] = g->active[--g->nactive];
            return;
        }
}

static bool is_active(const gate *g, long long change)
{
    for (size_t i = 0; i < g->nactive; i++)
        if (g->active[i] == change)
            return true;
    return false;
}

void gate_cancel_jobs(gate *g, const gate_cand *c)
{
    for (size_t i = 0; i < g->ninflight; i++) {
        gate_job_run *j = g->inflight[i];
        if (c == NULL || (j->cand == c->sid && j->gen == c->gen))
            __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
    }
}

keel_status gate_close_cand(gate *g, gate_cand *c, const char *result)
{
    if (c->closed || c->store_id == 0)
        return KEEL_OK;
    c->closed = true;
    gate_ccache_drop(g->work, c->store_id); /* not landed: its cache layers go unmerged */
    return gate_store_candidate_finish(g->store, c->store_id, result, gate_now_s());
}

static void free_cand(gate_cand *c)
{
    gate_config_free(c->cfg);
    keel_heap_free(GATE_HEAP, c->runs);
    keel_heap_free(GATE_HEAP, c->fails);
    keel_heap_free(GATE_HEAP, c->changes);
    keel_heap_free(GATE_HEAP, c);
}

/* Which .keel/gate.conf `commit` has (a hash of its text; 0: none). */
keel_status gate_config_id(gate *g, const char *commit, unsigned long long *id)
{
    char *text = NULL;
    size_t len = 0;
    *id = 0;
    keel_status s = gate_read_file(g->repo, commit, ".keel/gate.conf", &text, &len);
    if (KEEL_IS(s, KEEL_E_NOTFOUND)) {
        keel_status_free(s);
        return KEEL_OK;
    }
    *id = keel_ok(s) ? gate_config_text_id(text, len) : 0;
    gate_file_free(text);
    return s;
}

/* gate_store_recover's question: does the target's tip hold this merge? */
static keel_status tip_holds(const char *merge, void *ctx, bool *landed)
{
    gate *g = (gate *)ctx;
    return gate_is_ancestor(g->repo, merge, g->tip, landed);
}

/*
 * A change the gate died testing crash-limit times in a row: rejected, so
 * that one change cannot crash-loop the gate.
 */
static keel_status quarantine(gate *g, const gate_change *c)
{
    char reason[GATE_REASON_MAX];
    gate_fmt(reason, sizeof(reason),
             "quarantined: the gate died %u times in a row while this change was being tested "
             "(crash-limit %u): it is not tested again; look at what its jobs do to the gate's "
             "host, then submit it again",
             c->crashes, g->tip_cfg->crash_limit);
    keel_status s =
        gate_store_set_state(g->store, c->id, GATE_CHANGE_REJECTED, reason, gate_now_s());
    if (KEEL_IS(s, KEEL_E_STATE)) { /* cancelled meanwhile */
        keel_status_free(s);
        return KEEL_OK;
    }
    if (keel_ok(s))
        s = gate_store_event(g->store, gate_now_s(), "quarantine", c->id, "{}");
    if (!keel_ok(s))
        return s;
    g->stats.rejected++;
    gate_say(g, "rejected: change %lld '%s': %s\n", c->id, c->branch, reason);
    gate_notify(g);
    return KEEL_OK;
}

/* Jobs waiting to run again after the gate's own failure: dropped with their generation. */
static void drop_again(gate *g)
{
    for (size_t i = 0; i < g->nagain; i++)
        keel_heap_free(GATE_HEAP, g->again[i]);
    g->nagain = 0;
}

/*
 * What the scheduler learned (gate_sched_memory) as the store keeps it
 * (gate_learned: the same four figures, and when they were written), and
 * back: the store keeps the figures without knowing the scheduler.
 */
static gate_learned learned_row(const gate_sched_memory *m)
{
    gate_learned l = {m->p, m->n, m->flake, m->flake_n, 0}; /* updated_at: the store's */
    return l;
}

static gate_sched_memory learned_memory(const gate_learned *l)
{
    gate_sched_memory m = {l->p, l->n, l->flake, l->flake_n};
    return m;
}

/* The same figures (doubles compared as values, not bytes: clang-tidy's memcmp of doubles). */
static bool same_memory(const gate_sched_memory *a, const gate_sched_memory *b)
{
    return a->p == b->p && a->n == b->n && a->flake == b->flake && a->flake_n == b->flake_n;
}

/* A job's timing the store kept, to the run's first scheduler (gate_store_job_timings). */
static keel_status recall_timing(void *arg, const char *config, bool passed,
                                 const gate_job_timing *t)
{
    gate *g = (gate *)arg;
    gate_sched_job_time jt = {config, (double)t->elapsed_ms, t->load, t->others, passed};
    gate_sched_job_timed(g->sched, &jt);
    return KEEL_OK;
}

/* An ending of a flake the store kept, to the run's first scheduler (gate_store_flaky_endings). */
static keel_status recall_flaky(void *arg, const gate_flaky_ending *e)
{
    gate *g = (gate *)arg;
    gate_sched_flaky f;
    memset(&f, 0, sizeof(f));
    if (strlen(e->config) >= sizeof(f.config))
        return KEEL_OK; /* no configuration has such a name: it would never match */
    memcpy(f.config, e->config, strlen(e->config) + 1);
    f.signature = e->signature;
    gate_sched_recall_flaky(g->sched, &f, 1);
    return KEEL_OK;
}

static keel_status recall_watched(void *arg, const gate_watched_rejection *w)
{
    gate *g = (gate *)arg;
    gate_sched_watched r;
    memset(&r, 0, sizeof(r));
    if (strlen(w->config) >= sizeof(r.rejected.config))
        return KEEL_OK; /* no configuration has such a name */
    memcpy(r.rejected.config, w->config, strlen(w->config) + 1);
    r.change = w->change;
    r.signature = w->signature;
    r.rejected.job = w->job;
    r.rejected.runs = w->runs;
    r.rejected.failures = w->failures;
    r.rejected.why = GATE_SCHED_WHY_SAME;
    gate_sched_recall_watched(g->sched, &r, 1);
    return KEEL_OK;
}

/*
 * What the scheduler learned of the queue (its failure and flake rates, the
 * endings its configurations flaked with) goes to the next one: the old
 * scheduler's when the gate starts again in the same run, else what the
 * store kept of the last run (store_learned.c, store_flaky.c), which
 * gate_sched_recall weighs at most GATE_SCHED_RECALL_CHANGES changes (a row
 * out of range counts for nothing).  g->learned is what the store holds, as
 * the scheduler counts it: only the store's read (at the run's start) and
 * keep_learned's writes set it, so that what a failed write did not keep is
 * written by the next keep_learned, while a row the scheduler reads as it is
 * is not written again.
 */
static keel_status recall_learned(gate *g, const gate_sched *old)
{
    gate_sched_memory m;
    memset(&m, 0, sizeof(m));
    if (old != NULL) {
        gate_sched_remember(old, &m);
    } else {
        gate_learned l;
        bool found = false;
        keel_status s = gate_store_learned_get(g->store, g->target, &l, &found);
        /* the capacity from the newest jobs' timings, as if the scheduler had timed them */
        if (keel_ok(s))
            s = gate_store_job_timings(g->store, g->target, gate_sched_timings_kept(),
                                       recall_timing, g);
        /* the endings of flakes: those of configurations gone never match, and age out */
        if (keel_ok(s))
            s = gate_store_flaky_endings(g->store, g->target, GATE_SCHED_FLAKY_ENDINGS,
                                         recall_flaky, g);
        /* the rejections watched for a flake's ending, still rejected */
        if (keel_ok(s))
            s = gate_store_watched(g->store, g->target, GATE_SCHED_REOPEN_WATCH, recall_watched, g);
        if (!keel_ok(s))
            return s;
        g->flaky_kept = gate_sched_flaky_seen(g->sched); /* the store holds what it recalled */
        size_t nflaky = gate_sched_flaky_endings(g->sched, NULL, 0);
        if (nflaky > 0)
            gate_say(g, "the gate knows %zu ending(s) of flakes of '%s' from its last runs\n",
                     nflaky, g->target);
        m = learned_memory(&l);
        if (found && g->tip_cfg->strategy == GATE_STRATEGY_ADAPTIVE)
            gate_say(g,
                     "adaptive starts from what it learned of '%s': %.3f of changes failing "
                     "over %.1f changes, %.3f of builds flaking over %.1f builds\n",
                     g->target, m.p, m.n, m.flake, m.flake_n);
    }
    gate_sched_recall(g->sched, &m);
    if (old == NULL) { /* the run's first scheduler: it holds the row alone */
        gate_sched_remember(g->sched, &g->learned);
        gate_sched_stats ss;
        gate_sched_stats_get(g->sched, &ss);
        g->stats.p_start = ss.p;
        g->stats.timed_start = ss.timed;
        if (ss.timed > 0 && g->tip_cfg->strategy == GATE_STRATEGY_ADAPTIVE)
            gate_say(g,
                     "adaptive starts from the timings of the last %u jobs of '%s': %.1f jobs at "
                     "once\n",
                     ss.timed, g->target, ss.parallel);
    }
    return KEEL_OK;
}

/*
 * The store keeps the endings of flakes the scheduler learned or saw again
 * since the store last took them (gate_sched_flaky_seen moved), each as the
 * target's newest, the newest GATE_SCHED_FLAKY_ENDINGS kept.  As for
 * keep_learned, g->flaky_kept moves only when the store took them, so that
 * a failed write is written at the next turn.
 */
static keel_status keep_flaky(gate *g)
{
    unsigned long long seen = gate_sched_flaky_seen(g->sched);
    if (seen == g->flaky_kept)
        return KEEL_OK;
    gate_sched_flaky f[GATE_SCHED_FLAKY_ENDINGS];
    gate_flaky_ending rows[GATE_SCHED_FLAKY_ENDINGS];
    size_t n = gate_sched_flaky_endings(g->sched, f, GATE_SCHED_FLAKY_ENDINGS), k = 0;
    for (size_t i = 0; i < n && i < GATE_SCHED_FLAKY_ENDINGS; i++)
        if (f[i].seen > g->flaky_kept) { /* the oldest first, as the scheduler lists them */
            gate_flaky_ending r = {f[i].config, f[i].signature, 0};
            rows[k++] = r;
        }
    keel_status s =
        gate_store_flaky_put(g->store, g->target, rows, k, GATE_SCHED_FLAKY_ENDINGS, gate_now_s());
    if (!keel_ok(s))
        return s;
    g->flaky_kept = seen;
    return KEEL_OK;
}

/*
 * The store keeps what the scheduler learned, when it differs from what the
 * store holds: after the decisions of a round, and after a failed write or a
 * restart (kill -9 at gate.crash_after_learned: the row is the one written).
 * The endings of flakes first (keep_flaky).
 */
static keel_status keep_learned(gate *g)
{
    keel_status s = keep_flaky(g);
    if (!keel_ok(s))
        return s;
    gate_sched_memory m;
    gate_sched_remember(g->sched, &m);
    if (same_memory(&m, &g->learned))
        return KEEL_OK; /* nothing learned since */
    gate_learned l = learned_row(&m);
    s = gate_store_learned_put(g->store, g->target, &l, gate_now_s());
    if (!keel_ok(s))
        return s;
    g->learned = m;
    gate_crash_if(KEEL_STRESS(crash_after_learned), "crash_after_learned");
    return KEEL_OK;
}

/*
 * Start (again) from what the store and the repository say: recover, then a
 * new scheduler holding the queue.  At start-up, after a lost
 * compare-and-swap and after the gate's own failure (everything in flight
 * belongs to the old generation and its results are only recorded).
 */
keel_status gate_restart(gate *g)
{
    bool first = !g->recovered;
    keel_status s = gate_branch_head(g->repo, g->target, g->tip);
    g->tip_built[0] = '\0';
    gate_recovery rec;
    memset(&rec, 0, sizeof(rec));
    if (keel_ok(s))
        s = gate_store_recover(g->store, g->target, tip_holds, g, !g->recovered, gate_now_s(),
                               &rec);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "recovering the queue of '%s'", g->target);
    g->recovered = true;
    if (rec.landed > 0)
        gate_say(g, "recovered: %zu change(s) found landed in '%s' at %.12s\n", rec.landed,
                 g->target, g->tip);
    if (rec.requeued > 0)
        gate_say(g, "recovered: %zu change(s) back in the queue, target '%s' at %.12s\n",
                 rec.requeued, g->target, g->tip);
    gate_cancel_jobs(g, NULL);
    drop_again(g);
    for (size_t i = 0; i < g->ncands; i++) {
        if (!g->cands[i]->closed && g->cands[i]->store_id != 0)
            gate_ccache_drop(g->work, g->cands[i]->store_id); /* its cache layers, unmerged */
        g->cands[i]->closed = true;                           /* recover abandoned what was open */
    }
    g->gen++;
    gate_config_free(g->tip_cfg);
    g->tip_cfg = NULL;
    bool was_used = g->config_used; /* run --config FILE: FILE's while the tip's does not load */
    g->config_used = false;
    s = gate_config_id(g, g->tip, &g->tip_cfg_id);
    if (keel_ok(s))
        s = gate_load_config(g, g->tip, &g->tip_cfg);
    if (!keel_ok(s) && !gate_config_fault_is_gates(s))
        s = gate_tip_config_broken(g, s);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the configuration of '%s'", g->target);
    if (g->config_text != NULL && !g->config_used && (was_used || first))
        gate_say(g, "the configuration of '%s' at %.12s loads: --config '%s' is %s\n", g->target,
                 g->tip, g->config_origin, was_used ? "no longer used" : "not used");
    if (g->tip_cfg == NULL)
        return KEEL_ERR(KEEL_E_INTERNAL, "no configuration for '%s'", g->target);
    if (gate_config_names_other(g->tip_cfg, g->target))
        return gate_target_mismatch(g->target, g->tip, g->tip_cfg->target);
    s = gate_sandbox_ready(g->tip_cfg);
    if (!keel_ok(s))
        return s;
    gate_sched *old = g->sched;
    g->sched = NULL;
    gate_sched_params p;
    gate_sched_params_default(&p);
    p.strategy = g->tip_cfg->strategy;
    p.max_batch = g->tip_cfg->max_batch;
    p.max_depth = g->tip_cfg->max_depth;
    p.retries = g->tip_cfg->retries;
    p.flaky_alike = g->tip_cfg->flaky_alike;
    p.slots = gate_slots(g->tip_cfg);
    p.parallel = gate_parallel(g->tip_cfg);
    p.jobs = gate_build_jobs(g->tip_cfg);
    s = gate_sched_new(&p, &g->sched);
    if (keel_ok(s) && old != NULL)
        gate_sched_inherit(g->sched, old); /* what it learned of the executor */
    if (keel_ok(s))
        s = recall_learned(g, old);
    g->nactive = 0;
    if (!keel_ok(s)) { /* the old scheduler stays (NULL at start): the next restart is from it */
        gate_sched_delete(g->sched);
        g->sched = old;
        return s;
    }
    gate_sched_delete(old);
    return KEEL_OK;
}

/* A change cancelled in the store leaves the scheduler (its candidates are rebuilt without it). */
keel_status gate_withdraw(gate *g, long long change)
{
    gate_say(g, "change %lld was cancelled\n", change);
    keel_status s = gate_sched_cancel(g->sched, change);
    if (KEEL_IS(s, KEEL_E_NOTFOUND)) {
        keel_status_free(s);
        s = KEEL_OK;
    }
    gate_drop_active(g, change);
    return s;
}

keel_status gate_take_change(gate *g, long long change, bool alone)
{
    keel_status s =
        gate_grow((void **)&g->active, &g->active_cap, g->nactive + 1, sizeof(*g->active));
    if (keel_ok(s))
        s = alone ? gate_sched_enqueue_alone(g->sched, change)
                  : gate_sched_enqueue(g->sched, change);
    if (keel_ok(s))
        g->active[g->nactive++] = change;
    return s;
}

/* New submissions go to the scheduler; changes cancelled in the store leave it. */
static keel_status sync_queue(gate *g)
{
    void *mem = NULL;
    keel_status s = keel_heap_alloc(GATE_HEAP, QUEUE_MAX * sizeof(gate_change), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the queue");
    gate_change *q = (gate_change *)mem;
    size_t n = 0;
    s = gate_store_queued(g->store, g->target, gate_now_s(), AGING_S, q, QUEUE_MAX, &n);
    unsigned limit = g->tip_cfg->crash_limit;
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        if (is_active(g, q[i].id))
            continue;
        if (limit > 0 && q[i].crashes >= limit) {
            s = quarantine(g, &q[i]);
            continue;
        }
        s = gate_take_change(g, q[i].id, q[i].crashes > 0);
    }
    for (size_t i = 0; keel_ok(s) && i < g->nactive;) {
        gate_change c;
        s = gate_store_get(g->store, g->active[i], &c);
        if (keel_ok(s) && c.state == GATE_CHANGE_CANCELLED) {
            s = gate_withdraw(g, c.id);
            continue;
        }
        i++;
    }
    keel_heap_free(GATE_HEAP, q);
    return s;
}

/* Is `s` a failure of the gate's environment, worth a pause and another try? */
static bool passing(keel_status s)
{
    static const keel_code codes[] = {KEEL_E_NOMEM, KEEL_E_FULL, KEEL_E_IO,
                                      KEEL_E_SYS,   KEEL_E_BUSY, KEEL_E_TIMEOUT};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (KEEL_IS(s, codes[i]))
            return true;
    return false;
}

/*
 * The gate's own failure `why` (owned): said and recorded as a gate-error
 * event, blaming no change.  KEEL_OK: go on after a pause
 * (g->pause_ms, doubled for each failure in a row); after GATE_ERRORS_MAX in
 * a row, the error that stops run.  `in_a_row`: the count it adds to (jobs
 * the gate could not start: until a job runs to a result; turns: until a
 * decision is carried out, since a turn can fail after jobs that passed).
 */
keel_status gate_failed(gate *g, unsigned *in_a_row, keel_status why, const char *what)
{
    char msg[1024];
    gate_status_line(why, msg, sizeof(msg));
    unsigned n_row = ++*in_a_row;
    char detail[1400];
    size_t n = (size_t)snprintf(detail, sizeof(detail), "{\"what\":");
    n = gate_json_str(detail, sizeof(detail), n, what);
    n += (size_t)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0,
                          ",\"in_a_row\":%u,\"error\":", n_row);
    n = gate_json_str(detail, sizeof(detail), n, msg);
    (void)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0, "}");
    keel_status e = gate_store_event(g->store, gate_now_s(), "gate-error", 0, detail);
    if (!keel_ok(e))
        keel_status_ignore(e, "the gate's failure is said all the same");
    if (n_row > GATE_ERRORS_MAX)
        return KEEL_CONTEXT(why,
                            "the gate's own failure, %u times in a row (%s): no change was blamed, "
                            "what was in flight goes back to the queue",
                            n_row, what);
    unsigned long long pause = (unsigned long long)g->pause_ms << (n_row - 1);
    gate_say(g, "gate error (the gate's own, no change blamed): %s: %s; trying again in %.1f s\n",
             what, msg, (double)pause / 1000.0);
    keel_status_free(why);
    g->again_at_ms = gate_now_ms() + pause;
    return KEEL_OK;
}

/*
 * Decisions, then new builds, until neither has anything.  `paused` (the
 * queue paused through the API, store_web.h): decisions only, no new build.
 */
static keel_status pump(gate *g, bool paused)
{
    keel_status s = KEEL_OK;
    bool progress = true;
    while (keel_ok(s) && progress) {
        progress = false;
        gate_sched_decision d;
        unsigned gen = g->gen;
        while (keel_ok(s) && gen == g->gen && !gate_stop_requested(g) &&
               gate_sched_poll(g->sched, &d)) {
            progress = true;
            s = gate_decide(g, &d);
            if (keel_ok(s) && d.kind != GATE_SCHED_CANCEL_BUILD)
                g->turn_errors = 0; /* a decision carried out: the turns work */
        }
        if (keel_ok(s))
            s = keep_learned(g); /* the outcomes decided: what a restart starts from */
        gate_sched_build b;
        bool have = false;
        if (keel_ok(s) && !gate_stop_requested(g) && !paused) {
            gate_sched_clock(g->sched, (double)gate_now_ms()); /* builds start: the pace's clock */
            s = gate_sched_next(g->sched, &b, &have);
        }
        if (keel_ok(s) && have) {
            progress = true;
            s = gate_start_build(g, &b);
        }
    }
    return s;
}

/* Job logs past the target's log-days and log-max go: at the start of run, then hourly. */
static void prune_logs(gate *g)
{
    long long t = gate_now_s();
    if (g->tip_cfg == NULL || t - g->logs_pruned_at < 3600)
        return;
    g->logs_pruned_at = t;
    const char *keep[64];
    size_t nkeep = 0;
    for (size_t i = 0; i < g->ninflight && nkeep < 64; i++)
        keep[nkeep++] = g->inflight[i]->log;
    char dir[GATE_PATH_MAX + 16];
    gate_fmt(dir, sizeof(dir), "%s/logs", g->work);
    size_t n = gate_logs_prune(dir, g->tip_cfg->log_days, g->tip_cfg->log_max, keep, nkeep);
    if (n > 0)
        gate_say(g, "removed %zu old job log(s) (log-days %u, log-max %llu bytes)\n", n,
                 g->tip_cfg->log_days, g->tip_cfg->log_max);
}

/*
 * What was in flight goes back to the queue, as a restart would put it,
 * judged against the target as it is now: a landing whose swap went through
 * but whose record failed (g->tip not moved yet) is recorded as landed, not
 * requeued to land a second time.
 */
static keel_status recover_in_flight(gate *g, gate_recovery *rec)
{
    memset(rec, 0, sizeof(*rec));
    keel_status s = gate_branch_head(g->repo, g->target, g->tip);
    if (keel_ok(s))
        s = gate_store_recover(g->store, g->target, tip_holds, g, false, gate_now_s(), rec);
    return s;
}

/* Stopped on request: what was in flight goes back to the queue. */
static keel_status requeue_in_flight(gate *g)
{
    gate_recovery rec;
    keel_status s = recover_in_flight(g, &rec);
    if (keel_ok(s)) {
        char detail[64];
        gate_fmt(detail, sizeof(detail), "{\"signal\":%d,\"requeued\":%zu}",
                 __atomic_load_n(&g->stop_signal, __ATOMIC_ACQUIRE), rec.requeued);
        s = gate_store_event(g->store, gate_now_s(), "stopped", 0, detail);
    }
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "stopping: putting the changes in flight back in the queue");
    gate_say(g, "stopped: %zu change(s) back in the queue; the next run resumes them\n",
             rec.requeued);
    return KEEL_OK;
}

/*
 * What run needs before anything else: the queue's lock (one gatekeeper per
 * queue), a target it may move, its own work trees' directory (what a
 * killed gate left there is removed).
 */
static keel_status begin_run(gate *g)
{
    bool checked_out = false;
    keel_status s = gate_branch_checked_out(g->repo, g->target, &checked_out);
    if (keel_ok(s) && checked_out)
        s = keel_status_with_str(
            KEEL_ERR(KEEL_E_INVAL,
                     "'%s' is checked out in '%s': landing would move it under that working "
                     "tree, whose next commit would undo what landed; guard a bare clone of it "
                     "(git clone --bare), or the repository as a URL (--repo file://...), or check "
                     "out another branch there",
                     g->target, gate_repo_workdir(g->repo)),
            "target", g->target);
    if (keel_ok(s) && gate_store_readonly(g->store))
        s = KEEL_ERR(KEEL_E_STATE,
                     "store '%s' is read-only for this process: run needs to write it", g->state);
    char lock[GATE_DIR_MAX + 16];
    gate_fmt(lock, sizeof(lock), "%s/run.lock", g->tdir);
    if (keel_ok(s))
        s = gate_qlock_take(lock, &g->qlock);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "running the queue of '%s'", g->target);
    gate_rm_tree(g->tree_root); /* checkouts a killed gate left behind */
    return gate_make_dirs(g->tree_root);
}

/* Sleep `ms`, waking for a stop request. */
static void pause_for(gate *g, unsigned long long ms)
{
    unsigned long long until = gate_now_ms() + ms;
    while (!gate_stop_requested(g) && gate_now_ms() < until) {
        struct timespec t = {0, 20000000L};
        (void)nanosleep(&t, NULL);
    }
}

/*
 * The backouts' turn (backout.h): its failure is said, not the queue's: the
 * queue goes on, and the backout is carried on at the next turn.
 */
static void backout_turn(gate *g)
{
    keel_status s = gate_backout_turn(g, gate_now_s());
    if (!keel_ok(s)) {
        char line[GATE_REASON_MAX];
        gate_status_line(s, line, sizeof(line));
        keel_status_free(s);
        gate_say(g, "warning: backout: %s (tried again at the next turn)\n", line);
    }
}

/* hold-when-red (backout.h): *held, said when it starts and ends. */
static keel_status hold_when_red(gate *g, bool *held)
{
    char why[GATE_REASON_MAX];
    keel_status s = gate_backout_hold(g, held, why, sizeof(why));
    if (keel_ok(s) && *held != g->held)
        gate_say(g, "%s\n", *held ? why : "queue: resumed (hold-when-red: no longer red)");
    if (keel_ok(s))
        g->held = *held;
    return s;
}

/*
 * One turn: submissions in, decisions and builds out, then wait for a job.
 * *done: the queue is empty and `once` says to return.
 */
static keel_status turn(gate *g, bool once, bool *done)
{
    publish_heaps(g, false);
    prune_logs(g);
    take_pushed(g);
    unsigned gen = g->gen;
    bool paused = false; /* paused: what runs finishes and is decided, nothing new starts */
    keel_status s = gate_store_paused(g->store, g->target, &paused, NULL, 0, NULL);
    bool held = false; /* hold-when-red: the queue waits, the post level builds on */
    if (keel_ok(s))
        backout_turn(g);
    if (keel_ok(s))
        s = hold_when_red(g, &held);
    if (keel_ok(s))
        s = sync_queue(g);
    if (keel_ok(s))
        s = gate_start_again(g);
    if (keel_ok(s))
        s = pump(g, paused || held);
    if (keel_ok(s) && gen == g->gen)
        backout_turn(g); /* a revert the pump just landed: recorded before run --once ends */
    if (!keel_ok(s) || gen != g->gen)
        return s;             /* restarted (a lost compare-and-swap): the queue is read again */
    bool flow_queued = false; /* branch flows (flows_turn.h): a merge queued, taken next turn */
    s = gate_flows_turn(g, gate_now_s(), &flow_queued);
    if (!keel_ok(s))
        return s;
    gate_sched_stats st;
    gate_sched_stats_get(g->sched, &st);
    bool post_busy = false; /* the post level: the slots the queue leaves free */
    /* held: the queue's changes wait, the post and nightly levels build (they turn it green) */
    bool queue_busy = (st.queued > 0 && !held) || st.testing > 0 || g->nagain > 0;
    s = gate_post_turn(g, queue_busy, paused, &post_busy);
    bool nightly_busy = false; /* the nightly level: what the queue and the post level leave */
    if (keel_ok(s))
        s = gate_nightly_turn(g, gate_now_s(), queue_busy, paused, &nightly_busy);
    if (!keel_ok(s))
        return s;
    post_busy = post_busy || nightly_busy;
    unsigned outstanding = gate_pool_outstanding(g->pool);
    unsigned queue_jobs = outstanding - gate_post_running(g) - gate_nightly_running(g);
    bool idle = queue_jobs == 0 && st.running == 0 && g->nagain == 0;
    if ((st.queued == 0 && st.testing == 0 && outstanding == 0 && g->nagain == 0 && !post_busy &&
         !flow_queued) ||
        (idle && (paused || held) && outstanding == 0)) { /* the rest waits for the queue */
        *done = once;
    } else if (idle && !paused && !held && (st.queued > 0 || st.testing > 0)) {
        return KEEL_ERR(KEEL_E_INTERNAL, "the scheduler holds %zu changes but starts nothing",
                        st.queued + st.testing);
    }
    if (*done)
        return KEEL_OK;
    unsigned wait_ms = g->poll_ms;
    if (g->nagain > 0) { /* no longer than until the jobs to run again are due */
        unsigned long long now = gate_now_ms();
        unsigned long long due = g->again_at_ms > now ? g->again_at_ms - now : 0;
        wait_ms = due < wait_ms ? (unsigned)due : wait_ms;
    }
    if (g->pool_core != NULL) { /* several targets: gate_run_targets waits for all of them */
        g->wait_ms = wait_ms;
        wait_ms = 0;
    }
    gate_job_run *j = gate_pool_wait(g->pool, wait_ms);
    return j != NULL ? gate_job_done(g, j) : KEEL_OK;
}

keel_status gate_run_begin(gate *g, bool own_pool)
{
    KEEL_ASSERT(g != NULL);
    memset(&g->stats, 0, sizeof(g->stats));
    g->recovered = false;
    g->gate_errors = 0;
    g->turn_errors = 0;
    g->restart_at_ms = 0;
    keel_status s = begin_run(g);
    size_t orphans = 0; /* jobs a killed gate left running go first: none runs alongside them */
    if (keel_ok(s))
        s = gate_exec_reap_orphans(g->records, &orphans);
    if (keel_ok(s) && orphans > 0)
        gate_say(g, "killed what was left of %zu job(s) of a killed keel-gate\n", orphans);
    if (keel_ok(s)) /* no job runs: the compiler cache layers a killed gate left (ccache.h) */
        gate_ccache_sweep(g->work);
    if (keel_ok(s))
        s = gate_notify_start(g); /* before recovery: it may record landings to notify */
    if (keel_ok(s))
        s = gate_restart(g);
    if (keel_ok(s))
        s = gate_post_start(g); /* post builds a killed gate left running: pending again */
    if (keel_ok(s))
        s = gate_nightly_start(g); /* and nightly builds */
    size_t lost = 0; /* Slurm jobs a killed keel-gate left (the target's executor is known now) */
    if (keel_ok(s))
        s = gate_slurm_start(g->tip_cfg, g->work, &lost);
    if (keel_ok(s) && lost > 0)
        gate_say(g, "cancelled %zu Slurm job(s) of a killed keel-gate\n", lost);
    if (keel_ok(s) && own_pool)
        s = gate_pool_new(gate_slots(g->tip_cfg), &g->pool);
    if (keel_ok(s) && own_pool)
        gate_say(g, "gate: '%s' at %.12s, strategy %s, %u slots\n", g->target, g->tip,
                 gate_strategy_name(g->tip_cfg->strategy), gate_slots(g->tip_cfg));
    gate_notify(g); /* the tip's hook: events left by the last run go first */
    g->pushed_at_ms = 0;
    g->logs_pruned_at = 0;
    return s;
}

keel_status gate_run_step(gate *g, bool once, keel_status s, bool *done, bool *over)
{
    *over = false;
    if (g->restart_at_ms != 0) { /* several targets: this one pauses, the others go on */
        unsigned long long now = gate_now_ms();
        if (now < g->restart_at_ms) {
            g->wait_ms = (unsigned)(g->restart_at_ms - now);
            return s;
        }
        g->restart_at_ms = 0;
        return gate_restart(g);
    }
    if (keel_ok(s))
        return turn(g, once, done);
    /* the gate's own failure (a full disk, no memory, ...): a pause, then from the store */
    if (!passing(s) || g->gate_errors > GATE_ERRORS_MAX || g->turn_errors > GATE_ERRORS_MAX) {
        *over = true;
        return s;
    }
    s = gate_failed(g, &g->turn_errors, s, "a turn of the gate");
    if (!keel_ok(s)) {
        *over = true;
        return s;
    }
    unsigned long long now = gate_now_ms();
    if (g->pool_core != NULL) {
        g->restart_at_ms = g->again_at_ms > now ? g->again_at_ms : now + 1;
        g->wait_ms = (unsigned)(g->restart_at_ms - now);
        return KEEL_OK;
    }
    pause_for(g, g->again_at_ms > now ? g->again_at_ms - now : 0);
    return gate_restart(g);
}

keel_status gate_run(gate *g, bool once, gate_run_stats *stats)
{
    keel_status s = gate_run_begin(g, true);
    bool done = false, over = false;
    while (!done && !over && !gate_stop_requested(g) && g->pool != NULL)
        s = gate_run_step(g, once, s, &done, &over);
    return gate_run_end(g, s, stats);
}

keel_status gate_run_end(gate *g, keel_status s, gate_run_stats *stats)
{
    /* on the way out: stop what runs, close what is open */
    g->stopping = gate_stop_requested(g);
    if (g->stopping && g->pool != NULL)
        gate_say(g,
                 "stopping: no new work; %u running job(s) killed, to run again after a restart\n",
                 gate_pool_outstanding(g->pool));
    if (g->pool != NULL) {
        gate_cancel_jobs(g, NULL);
        while (gate_pool_outstanding(g->pool) > 0) {
            gate_job_run *j = gate_pool_wait(g->pool, 1000);
            if (j != NULL) {
                keel_status js = gate_job_done(g, j);
                if (!keel_ok(js))
                    keel_status_ignore(js, "stopping; the first error is reported");
            }
        }
    }
    drop_again(g);
    for (size_t i = 0; i < g->ncands; i++) {
        gate_cand *c = g->cands[i];
        if (keel_ok(s) && c->gen == g->gen && !g->stopping)
            s = gate_close_cand(g, c, c->ever_failed ? "failed" : "abandoned");
        free_cand(c);
    }
    if (keel_ok(s) && g->stopping)
        s = requeue_in_flight(g);
    if (!keel_ok(s) && g->qlock != NULL && g->tip_cfg != NULL) {
        /* stopped by an error: what was in flight goes back to the queue, if the store lets it */
        gate_recovery rec;
        keel_status r = recover_in_flight(g, &rec);
        if (!keel_ok(r))
            keel_status_ignore(r, "the next run recovers it; the first error is reported");
    }
    keel_heap_free(GATE_HEAP, g->cands);
    g->cands = NULL;
    g->ncands = g->cands_cap = 0;
    gate_pool_delete(g->pool);
    g->pool = NULL;
    if (g->sched != NULL) {
        gate_sched_stats ss;
        gate_sched_stats_get(g->sched, &ss);
        g->stats.parallel = ss.parallel;
        g->stats.timed = ss.timed;
        g->stats.width = ss.width;
        g->stats.batch = ss.batch;
        g->stats.depth = ss.depth;
        g->stats.p = ss.p;
    }
    gate_sched_delete(g->sched);
    g->sched = NULL;
    gate_config_free(g->tip_cfg);
    g->tip_cfg = NULL;
    keel_heap_free(GATE_HEAP, g->active);
    g->active = NULL;
    g->nactive = g->active_cap = 0;
    keel_heap_free(GATE_HEAP, g->inflight);
    g->inflight = NULL;
    g->ninflight = g->inflight_cap = 0;
    keel_heap_free(GATE_HEAP, g->again);
    g->again = NULL;
    g->again_cap = 0;
    gate_drop_trees(g);
    gate_notify_stop(g); /* what is pending gets GATE_NOTIFY_STOP_MS, the rest the next run */
    g->stats.stop_signal = __atomic_load_n(&g->stop_signal, __ATOMIC_ACQUIRE);
    g->stopping = false;
    __atomic_store_n(&g->stop_signal, 0, __ATOMIC_RELEASE);
    if (g->qlock != NULL)
        publish_heaps(g, true);
    gate_qlock_release(g->qlock); /* last: the next gate may start */
    g->qlock = NULL;
    if (stats != NULL)
        *stats = g->stats;
    return s;
}
