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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "gate_int.h"
#include "store.h"

enum { QUEUE_MAX = 4096, AGING_S = 3600 };

static long long now_s(void)
{
    return (long long)time(NULL);
}

static keel_status grow(void **arr, size_t *cap, size_t need, size_t elem)
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

static bool stop_requested(const gate *g)
{
    return __atomic_load_n(&g->stop_signal, __ATOMIC_ACQUIRE) != 0;
}

/* Every module's heap stats for `status`: at most once a second unless `now`. */
static void publish_heaps(gate *g, bool now)
{
    long long t = now_s();
    if (!now && t == g->heaps_at)
        return;
    g->heaps_at = t;
    char path[GATE_PATH_MAX + 32];
    gate_fmt(path, sizeof(path), "%s/heaps.json", g->work);
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

static gate_cand *find_cand(gate *g, long long sid)
{
    for (size_t i = g->ncands; i-- > 0;)
        if (g->cands[i]->sid == sid && g->cands[i]->gen == g->gen)
            return g->cands[i];
    return NULL;
}

static void drop_active(gate *g, long long change)
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

static void cancel_jobs(gate *g, const gate_cand *c)
{
    for (size_t i = 0; i < g->ninflight; i++) {
        gate_job_run *j = g->inflight[i];
        if (c == NULL || (j->cand == c->sid && j->gen == c->gen))
            __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
    }
}

static keel_status close_cand(gate *g, gate_cand *c, const char *result)
{
    if (c->closed || c->store_id == 0)
        return KEEL_OK;
    c->closed = true;
    return gate_store_candidate_finish(g->store, c->store_id, result, now_s());
}

static void free_cand(gate_cand *c)
{
    gate_config_free(c->cfg);
    keel_heap_free(GATE_HEAP, c->changes);
    keel_heap_free(GATE_HEAP, c);
}

/*
 * Start (again) from what the store and the repository say: recover, then a
 * new scheduler holding the queue.  At start-up, and after a lost
 * compare-and-swap (everything in flight belongs to the old generation and
 * its results are only recorded).
 */
static keel_status restart(gate *g)
{
    keel_status s = gate_branch_head(g->repo, g->target, g->tip);
    size_t requeued = 0;
    if (keel_ok(s))
        s = gate_store_recover(g->store, g->tip, now_s(), &requeued);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "recovering the queue of '%s'", g->target);
    if (requeued > 0)
        gate_say(g, "recovered: %zu change(s) back in the queue, target '%s' at %.12s\n", requeued,
                 g->target, g->tip);
    cancel_jobs(g, NULL);
    for (size_t i = 0; i < g->ncands; i++)
        g->cands[i]->closed = true; /* recover abandoned what was open */
    g->gen++;
    gate_config_free(g->tip_cfg);
    g->tip_cfg = NULL;
    s = gate_load_config(g, g->tip, &g->tip_cfg);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the configuration of '%s'", g->target);
    if (g->tip_cfg == NULL)
        return KEEL_ERR(KEEL_E_INTERNAL, "no configuration for '%s'", g->target);
    s = gate_sandbox_ready(g->tip_cfg);
    if (!keel_ok(s))
        return s;
    gate_sched_delete(g->sched);
    g->sched = NULL;
    gate_sched_params p;
    gate_sched_params_default(&p);
    p.strategy = g->tip_cfg->strategy;
    p.max_batch = g->tip_cfg->max_batch;
    p.max_depth = g->tip_cfg->max_depth;
    p.retries = g->tip_cfg->retries;
    p.slots = gate_slots(g->tip_cfg);
    s = gate_sched_new(&p, &g->sched);
    g->nactive = 0;
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
    s = gate_store_queued(g->store, g->target, now_s(), AGING_S, q, QUEUE_MAX, &n);
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        if (is_active(g, q[i].id))
            continue;
        s = grow((void **)&g->active, &g->active_cap, g->nactive + 1, sizeof(*g->active));
        if (keel_ok(s))
            s = gate_sched_enqueue(g->sched, q[i].id);
        if (keel_ok(s))
            g->active[g->nactive++] = q[i].id;
    }
    for (size_t i = 0; keel_ok(s) && i < g->nactive;) {
        gate_change c;
        s = gate_store_get(g->store, g->active[i], &c);
        if (keel_ok(s) && c.state == GATE_CHANGE_CANCELLED) {
            gate_say(g, "change %lld ('%s') was cancelled\n", c.id, c.branch);
            s = gate_sched_cancel(g->sched, c.id);
            if (KEEL_IS(s, KEEL_E_NOTFOUND)) {
                keel_status_free(s);
                s = KEEL_OK;
            }
            drop_active(g, c.id);
            continue;
        }
        i++;
    }
    keel_heap_free(GATE_HEAP, q);
    return s;
}

static void add_failure(char *buf, const char *what)
{
    size_t len = strlen(buf);
    (void)snprintf(buf + len, GATE_REASON_MAX - len, "%s%s", len > 0 ? "; " : "", what);
}

/* A change does not merge onto the candidate's base. */
static keel_status merge_conflict(gate *g, gate_cand *c, keel_status err)
{
    unsigned long long index = 0;
    (void)keel_status_get_uint(err, "index", &index);
    const char *paths = keel_status_get_str(err, "paths");
    if (paths != NULL && paths != c->conflict_paths)
        (void)snprintf(c->conflict_paths, sizeof(c->conflict_paths), "%s", paths);
    char reason[GATE_REASON_MAX];
    gate_fmt(reason, sizeof(reason), "does not merge onto '%s' at %.12s: conflicts in %s",
             g->target, c->base, c->conflict_paths);
    keel_status_free(err);
    c->conflict_at = (size_t)index;
    /*
     * A verdict only when the change does not merge onto the target itself:
     * alone on the tip.  Against a candidate still under test, or against the
     * changes before it in a batch, it is a failed build, which the scheduler
     * isolates like any other until the change is alone on the tip.
     */
    bool verdict = strcmp(c->base, g->tip) == 0;
    if (verdict && c->n > 1) {
        gate_change ch;
        keel_status s = gate_store_get(g->store, c->changes[index], &ch);
        if (keel_ok(s)) {
            char merge[GATE_HEX];
            const char *head[1] = {ch.head};
            s = gate_merge(g->repo, c->base, head, 1, merge);
        }
        verdict = keel_status_is(s, &gate_codes, GATE_E_CONFLICT);
        if (!keel_ok(s) && !verdict)
            return s;
        keel_status_free(s);
    }
    if (!verdict) {
        c->merge_failed = true;
        c->ever_failed = true;
        gate_fmt(c->failures, sizeof(c->failures), "change %lld %s", c->changes[index], reason);
        return gate_sched_result(g->sched, c->sid, false);
    }
    long long change = c->changes[index];
    keel_status s = gate_store_set_state(g->store, change, GATE_CHANGE_CONFLICT, reason, now_s());
    if (keel_ok(s))
        s = close_cand(g, c, "conflict");
    if (!keel_ok(s))
        return s;
    g->stats.conflicts++;
    gate_change ch;
    s = gate_store_get(g->store, change, &ch);
    if (!keel_ok(s))
        return s;
    gate_say(g, "conflict: change %lld '%s' %s\n", change, ch.branch, reason);
    gate_notify(g, "conflict", change, NULL, reason);
    drop_active(g, change);
    return gate_sched_cancel(g->sched, change); /* CANCEL_BUILD for this one, rebuild the rest */
}

/* A work tree no job in flight has (a new one when all are taken). */
static keel_status take_tree(gate *g, size_t *out)
{
    size_t t = 0;
    while (t < g->ntrees && g->trees[t].busy)
        t++;
    if (t == g->ntrees) {
        keel_status s = grow((void **)&g->trees, &g->trees_cap, t + 1, sizeof(*g->trees));
        char dir[GATE_PATH_MAX];
        gate_fmt(dir, sizeof(dir), "%s/jobs/%zu", g->work, t);
        gate_worktree *w = NULL;
        if (keel_ok(s))
            s = gate_worktree_new(dir, &w);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "a work tree for a job");
        g->trees[t].w = w;
        g->trees[t].busy = false;
        g->ntrees++;
    }
    g->trees[t].busy = true;
    *out = t;
    return KEEL_OK;
}

static void drop_trees(gate *g)
{
    for (size_t i = 0; i < g->ntrees; i++) {
        gate_rm_tree(gate_worktree_dir(g->trees[i].w));
        gate_worktree_delete(g->trees[i].w);
    }
    keel_heap_free(GATE_HEAP, g->trees);
    g->trees = NULL;
    g->ntrees = g->trees_cap = 0;
}

static keel_status start_job(gate *g, gate_cand *c, const gate_matrix_config *m)
{
    long long jid = 0;
    size_t tree = 0;
    keel_status s =
        gate_store_job_start(g->store, c->store_id, m->name, (int)c->attempt, now_s(), &jid);
    if (keel_ok(s))
        s = grow((void **)&g->inflight, &g->inflight_cap, g->ninflight + 1, sizeof(void *));
    if (keel_ok(s))
        s = take_tree(g, &tree);
    if (!keel_ok(s))
        return s;
    void *mem = NULL;
    s = keel_heap_calloc(GATE_HEAP, 1, sizeof(gate_job_run), &mem);
    if (!keel_ok(s)) {
        g->trees[tree].busy = false;
        return KEEL_CONTEXT(s, "starting job %lld", jid);
    }
    gate_job_run *j = (gate_job_run *)mem;
    j->job_id = jid;
    j->cand = c->sid;
    j->attempt = c->attempt;
    j->gen = g->gen;
    gate_job_from_config(j, m);
    s = gate_job_policy_from(&j->policy, g->tip_cfg, m->name); /* the target's, not the change's */
    j->hidden = &g->hidden;
    j->records = g->records;
    j->tree = tree;
    gate_fmt(j->dir, sizeof(j->dir), "%s", gate_worktree_dir(g->trees[tree].w));
    gate_fmt(j->log, sizeof(j->log), "%s/logs/job-%lld.log", g->work, jid);
    if (keel_ok(s))
        s = gate_worktree_checkout(g->trees[tree].w, g->repo, c->merge);
    if (!keel_ok(s)) {
        (void)keel_status_format(s, j->error, sizeof(j->error));
        keel_status_free(s);
        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE); /* the worker hands it straight back */
    }
    g->inflight[g->ninflight++] = j;
    g->stats.jobs++;
    gate_pool_submit(g->pool, j);
    return KEEL_OK;
}

static keel_status start_build(gate *g, const gate_sched_build *b)
{
    gate_cand *c = NULL;
    keel_status s = KEEL_OK;
    if (b->attempt > 1) {
        c = find_cand(g, b->candidate);
        if (c == NULL)
            return KEEL_ERR(KEEL_E_INTERNAL, "a retry of unknown candidate %lld", b->candidate);
    } else {
        s = grow((void **)&g->cands, &g->cands_cap, g->ncands + 1, sizeof(void *));
        void *cmem = NULL, *chmem = NULL;
        if (keel_ok(s))
            s = keel_heap_calloc(GATE_HEAP, 1, sizeof(gate_cand), &cmem);
        if (keel_ok(s))
            s = keel_heap_calloc(GATE_HEAP, b->n, sizeof(long long), &chmem);
        if (!keel_ok(s)) {
            keel_heap_free(GATE_HEAP, cmem);
            return KEEL_CONTEXT(s, "building candidate %lld", b->candidate);
        }
        c = (gate_cand *)cmem;
        c->changes = (long long *)chmem;
        g->cands[g->ncands++] = c;
        c->sid = b->candidate;
        c->gen = g->gen;
        c->n = b->n;
        memcpy(c->changes, b->changes, b->n * sizeof(long long));
        const gate_cand *base = b->base != 0 ? find_cand(g, b->base) : NULL;
        if (b->base != 0 && base == NULL)
            return KEEL_ERR(KEEL_E_INTERNAL, "candidate %lld stacks on unknown %lld", b->candidate,
                            b->base);
        (void)snprintf(c->base, sizeof(c->base), "%s", base != NULL ? base->merge : g->tip);
    }
    if (!keel_ok(s))
        return s;
    c->attempt = b->attempt;
    c->failed_now = false;
    c->failures[0] = '\0';
    if (b->attempt == 1) {
        void *hmem = NULL, *chmem = NULL;
        s = keel_heap_calloc(GATE_HEAP, c->n, sizeof(char *), &hmem);
        if (keel_ok(s))
            s = keel_heap_calloc(GATE_HEAP, c->n, sizeof(gate_change), &chmem);
        if (!keel_ok(s)) {
            keel_heap_free(GATE_HEAP, hmem);
            return KEEL_CONTEXT(s, "merging candidate %lld", c->sid);
        }
        const char **heads = (const char **)hmem;
        gate_change *ch = (gate_change *)chmem;
        for (size_t i = 0; keel_ok(s) && i < c->n; i++) {
            s = gate_store_get(g->store, c->changes[i], &ch[i]);
            heads[i] = ch[i].head;
        }
        if (keel_ok(s))
            s = gate_store_candidate_rebuild(g->store, g->target, c->base, c->changes, c->n,
                                             now_s(), &c->store_id);
        if (keel_ok(s))
            s = gate_merge(g->repo, c->base, heads, c->n, c->merge);
        keel_heap_free(GATE_HEAP, heads);
        keel_heap_free(GATE_HEAP, ch);
        if (keel_status_is(s, &gate_codes, GATE_E_CONFLICT))
            return merge_conflict(g, c, s);
        if (keel_ok(s))
            s = gate_store_candidate_set_merge(g->store, c->store_id, c->merge);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "building candidate %lld", c->sid);
        gate_point_after_merge();
        s = gate_load_config(g, c->merge, &c->cfg);
        if (!keel_ok(s)) {
            char msg[GATE_REASON_MAX - 32];
            (void)keel_status_format(s, msg, sizeof(msg));
            keel_status_free(s);
            s = KEEL_OK;
            (void)snprintf(c->failures, sizeof(c->failures), "configuration: %s", msg);
        }
    } else if (c->merge_failed && strcmp(c->base, g->tip) == 0) {
        /* its base landed: the conflict may now be with the target itself */
        return merge_conflict(
            g, c,
            keel_status_with_str(
                keel_status_with_uint(KEEL_ERR_IN(&gate_codes, GATE_E_CONFLICT, "conflict"),
                                      "index", c->conflict_at),
                "paths", c->conflict_paths));
    }
    if (c->merge_failed || c->cfg == NULL) {
        c->ever_failed = true;
        return gate_sched_result(g->sched, c->sid, false);
    }
    gate_say(g, "build: candidate %lld attempt %u, %zu change(s) on %.12s -> %.12s, %zu jobs\n",
             c->store_id, c->attempt, c->n, c->base, c->merge, c->cfg->nconfigs);
    g->stats.builds++;
    c->pending = (unsigned)c->cfg->nconfigs;
    for (size_t i = 0; keel_ok(s) && i < c->cfg->nconfigs; i++)
        s = start_job(g, c, &c->cfg->configs[i]);
    return s;
}

static keel_status job_done(gate *g, gate_job_run *j)
{
    for (size_t i = 0; i < g->ninflight; i++)
        if (g->inflight[i] == j) {
            g->inflight[i] = g->inflight[--g->ninflight];
            break;
        }
    bool stale = j->gen != g->gen || g->stopping;
    bool passed = j->result == GATE_EXEC_PASSED && j->error[0] == '\0';
    const char *result = j->error[0] != '\0' ? "failed" : gate_exec_result_name(j->result);
    if (j->error[0] != '\0') {
        FILE *f = fopen(j->log, "a");
        if (f != NULL) {
            (void)fprintf(f, "keel-gate: the job could not run: %s\n", j->error);
            (void)fclose(f);
        }
    }
    keel_status s =
        gate_store_job_finish(g->store, j->job_id, result, j->exit_code, j->log, now_s());
    if (stale && KEEL_IS(s, KEEL_E_STATE)) { /* recovery marked it lost */
        keel_status_free(s);
        s = KEEL_OK;
    }
    g->trees[j->tree].busy = false; /* the next job there finds it as the checkout left it */
    gate_cand *c = stale ? NULL : find_cand(g, j->cand);
    if (keel_ok(s) && !stale)
        gate_point_after_job();
    if (keel_ok(s) && c != NULL && !c->cancelled && j->attempt == c->attempt) {
        gate_say(g, "  job %lld: candidate %lld '%s' %s (exit %d, %.1f s)%s\n", j->job_id,
                 c->store_id, j->config, result, j->exit_code, (double)j->elapsed_ms / 1000.0,
                 !passed && !j->required ? " - not required" : "");
        if (!passed && j->required) {
            char what[GATE_REASON_MAX];
            gate_fmt(what, sizeof(what), "configuration '%s' %s (exit %d, log %s)%s%s", j->config,
                     result, j->exit_code, j->log, j->reason[0] != '\0' ? ": " : "", j->reason);
            add_failure(c->failures, what);
            c->failed_now = true;
        }
        if (--c->pending == 0) {
            if (c->failed_now) {
                c->ever_failed = true;
                if (c->attempt == 1)
                    (void)snprintf(c->first_failures, sizeof(c->first_failures), "%s", c->failures);
            }
            s = gate_sched_result(g->sched, c->sid, !c->failed_now);
        }
    }
    keel_heap_free(GATE_HEAP, j);
    return s;
}

static keel_status land(gate *g, const gate_sched_decision *d, gate_cand *c)
{
    if (strcmp(c->base, g->tip) != 0)
        return KEEL_ERR(KEEL_E_INTERNAL, "candidate %lld was built on %.12s, the tip is %.12s",
                        c->store_id, c->base, g->tip);
    char message[128];
    (void)snprintf(message, sizeof(message), "keel-gate: land candidate %lld", c->store_id);
    gate_point_before_cas();
    keel_status s = gate_branch_cas(g->repo, g->target, g->tip, c->merge, message);
    if (keel_status_is(s, &gate_codes, GATE_E_MOVED)) {
        g->stats.moved++;
        gate_say(g, "moved: %s; nothing overwritten, rebuilding on the new tip\n",
                 keel_status_message(s));
        keel_status_free(s);
        s = gate_store_event(g->store, now_s(), "moved", 0, "{}");
        return keel_ok(s) ? restart(g) : s;
    }
    if (!keel_ok(s))
        return s;
    gate_point_after_cas();
    s = gate_store_land(g->store, c->store_id, now_s());
    if (!keel_ok(s))
        return s;
    c->closed = true;
    (void)snprintf(g->tip, sizeof(g->tip), "%s", c->merge);
    for (size_t i = 0; i < d->n; i++) {
        long long id = d->changes[i];
        gate_change ch;
        s = gate_store_get(g->store, id, &ch);
        if (!keel_ok(s))
            return s;
        g->stats.landed++;
        drop_active(g, id);
        gate_say(g, "landed: change %lld '%s' (%.12s) in %.12s\n", id, ch.branch, ch.head,
                 c->merge);
        gate_notify(g, "land", id, c->merge, "landed");
    }
    return KEEL_OK;
}

static keel_status decide(gate *g, const gate_sched_decision *d)
{
    gate_cand *c = find_cand(g, d->candidate);
    if (c == NULL)
        return KEEL_ERR(KEEL_E_INTERNAL, "%s decision for unknown candidate %lld",
                        gate_sched_kind_name(d->kind), d->candidate);
    keel_status s;
    switch (d->kind) {
    case GATE_SCHED_LAND:
        return land(g, d, c);
    case GATE_SCHED_REJECT: {
        char reason[GATE_REASON_MAX];
        (void)snprintf(reason, sizeof(reason), "%s",
                       c->failures[0] != '\0' ? c->failures : "a required configuration failed");
        s = gate_store_set_state(g->store, d->change, GATE_CHANGE_REJECTED, reason, now_s());
        if (keel_ok(s))
            s = close_cand(g, c, "failed");
        if (keel_ok(s)) {
            g->stats.rejected++;
            drop_active(g, d->change);
            gate_change ch;
            keel_status gs = gate_store_get(g->store, d->change, &ch);
            if (!keel_ok(gs)) {
                keel_status_ignore(gs, "only for the message");
                ch.branch[0] = '\0';
            }
            gate_say(g, "rejected: change %lld '%s': %s\n", d->change, ch.branch, reason);
            gate_notify(g, "reject", d->change, c->merge, reason);
        }
        return s;
    }
    case GATE_SCHED_FLAKY: {
        char detail[GATE_REASON_MAX + 64];
        size_t n = (size_t)snprintf(detail, sizeof(detail),
                                    "{\"candidate\":%lld,\"failed\":", c->store_id);
        n = gate_json_str(detail, sizeof(detail), n, c->first_failures);
        (void)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0, "}");
        g->stats.flakes++;
        s = gate_store_event(g->store, now_s(), "flake", c->changes[0], detail);
        gate_say(g, "flaky: candidate %lld failed, then passed: %s\n", c->store_id,
                 c->first_failures);
        gate_notify(g, "flake", c->changes[0], c->merge, c->first_failures);
        return s;
    }
    case GATE_SCHED_CANCEL_BUILD:
        c->cancelled = true;
        cancel_jobs(g, c);
        return close_cand(g, c, "abandoned");
    }
    return KEEL_ERR(KEEL_E_INTERNAL, "unknown decision %d", (int)d->kind);
}

/* Decisions, then new builds, until neither has anything. */
static keel_status pump(gate *g)
{
    keel_status s = KEEL_OK;
    bool progress = true;
    while (keel_ok(s) && progress) {
        progress = false;
        gate_sched_decision d;
        unsigned gen = g->gen;
        while (keel_ok(s) && gen == g->gen && !stop_requested(g) && gate_sched_poll(g->sched, &d)) {
            progress = true;
            s = decide(g, &d);
        }
        gate_sched_build b;
        bool have = false;
        if (keel_ok(s) && !stop_requested(g))
            s = gate_sched_next(g->sched, &b, &have);
        if (keel_ok(s) && have) {
            progress = true;
            s = start_build(g, &b);
        }
    }
    return s;
}

/* Job logs past the target's log-days and log-max go: at the start of run, then hourly. */
static void prune_logs(gate *g)
{
    long long t = now_s();
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

/* Stopped on request: what was in flight goes back to the queue, as a restart would put it. */
static keel_status requeue_in_flight(gate *g)
{
    keel_status s = gate_branch_head(g->repo, g->target, g->tip);
    size_t requeued = 0;
    if (keel_ok(s))
        s = gate_store_recover(g->store, g->tip, now_s(), &requeued);
    if (keel_ok(s)) {
        char detail[64];
        gate_fmt(detail, sizeof(detail), "{\"signal\":%d,\"requeued\":%zu}",
                 __atomic_load_n(&g->stop_signal, __ATOMIC_ACQUIRE), requeued);
        s = gate_store_event(g->store, now_s(), "stopped", 0, detail);
    }
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "stopping: putting the changes in flight back in the queue");
    gate_say(g, "stopped: %zu change(s) back in the queue; the next run resumes them\n", requeued);
    return KEEL_OK;
}

keel_status gate_run(gate *g, bool once, gate_run_stats *stats)
{
    KEEL_ASSERT(g != NULL);
    memset(&g->stats, 0, sizeof(g->stats));
    char jobs_dir[GATE_PATH_MAX + 16];
    (void)snprintf(jobs_dir, sizeof(jobs_dir), "%s/jobs", g->work);
    size_t orphans = 0; /* jobs a killed gate left running go first: none runs alongside them */
    keel_status s = gate_exec_reap_orphans(g->records, &orphans);
    if (keel_ok(s) && orphans > 0)
        gate_say(g, "killed what was left of %zu job(s) of a killed keel-gate\n", orphans);
    gate_rm_tree(jobs_dir); /* checkouts a killed gate left behind */
    if (keel_ok(s))
        s = gate_make_dir(jobs_dir);
    if (keel_ok(s))
        s = restart(g);
    if (keel_ok(s))
        s = gate_pool_new(gate_slots(g->tip_cfg), &g->pool);
    if (keel_ok(s))
        gate_say(g, "gate: '%s' at %.12s, strategy %s, %u slots\n", g->target, g->tip,
                 gate_strategy_name(g->tip_cfg->strategy), gate_slots(g->tip_cfg));
    g->pushed_at_ms = 0;
    g->logs_pruned_at = 0;
    while (keel_ok(s) && !stop_requested(g)) {
        publish_heaps(g, false);
        prune_logs(g);
        take_pushed(g);
        unsigned gen = g->gen;
        s = sync_queue(g);
        if (keel_ok(s))
            s = pump(g);
        if (!keel_ok(s))
            break;
        if (gen != g->gen)
            continue; /* restarted (a lost compare-and-swap): the queue is read again */
        gate_sched_stats st;
        gate_sched_stats_get(g->sched, &st);
        unsigned outstanding = gate_pool_outstanding(g->pool);
        if (st.queued == 0 && st.testing == 0 && outstanding == 0) {
            if (once)
                break;
        } else if (outstanding == 0 && st.running == 0) {
            s = KEEL_ERR(KEEL_E_INTERNAL, "the scheduler holds %zu changes but starts nothing",
                         st.queued + st.testing);
            break;
        }
        gate_job_run *j = gate_pool_wait(g->pool, g->poll_ms);
        if (j != NULL)
            s = job_done(g, j);
    }
    /* on the way out: stop what runs, close what is open */
    g->stopping = stop_requested(g);
    if (g->stopping && g->pool != NULL)
        gate_say(g,
                 "stopping: no new work; %u running job(s) killed, to run again after a restart\n",
                 gate_pool_outstanding(g->pool));
    if (g->pool != NULL) {
        cancel_jobs(g, NULL);
        while (gate_pool_outstanding(g->pool) > 0) {
            gate_job_run *j = gate_pool_wait(g->pool, 1000);
            if (j != NULL) {
                keel_status js = job_done(g, j);
                if (!keel_ok(js))
                    keel_status_ignore(js, "stopping; the first error is reported");
            }
        }
    }
    for (size_t i = 0; i < g->ncands; i++) {
        gate_cand *c = g->cands[i];
        if (keel_ok(s) && c->gen == g->gen && !g->stopping)
            s = close_cand(g, c, c->ever_failed ? "failed" : "abandoned");
        free_cand(c);
    }
    if (keel_ok(s) && g->stopping)
        s = requeue_in_flight(g);
    keel_heap_free(GATE_HEAP, g->cands);
    g->cands = NULL;
    g->ncands = g->cands_cap = 0;
    gate_pool_delete(g->pool);
    g->pool = NULL;
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
    drop_trees(g);
    g->stats.stop_signal = __atomic_load_n(&g->stop_signal, __ATOMIC_ACQUIRE);
    g->stopping = false;
    __atomic_store_n(&g->stop_signal, 0, __ATOMIC_RELEASE);
    publish_heaps(g, true);
    if (stats != NULL)
        *stats = g->stats;
    return s;
}
