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

#include "exec.h"
#include "gate_int.h"
#include "store_web.h"
#include "signature.h"
#include "store.h"
#include "text.h"

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
    keel_heap_free(GATE_HEAP, c->runs);
    keel_heap_free(GATE_HEAP, c->fails);
    keel_heap_free(GATE_HEAP, c->changes);
    keel_heap_free(GATE_HEAP, c);
}

/* Which .keel/gate.conf `commit` has (a hash of its text; 0: none). */
static keel_status config_id(gate *g, const char *commit, unsigned long long *id)
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
    keel_status s = gate_store_set_state(g->store, c->id, GATE_CHANGE_REJECTED, reason, now_s());
    if (KEEL_IS(s, KEEL_E_STATE)) { /* cancelled meanwhile */
        keel_status_free(s);
        return KEEL_OK;
    }
    if (keel_ok(s))
        s = gate_store_event(g->store, now_s(), "quarantine", c->id, "{}");
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
 * Start (again) from what the store and the repository say: recover, then a
 * new scheduler holding the queue.  At start-up, after a lost
 * compare-and-swap and after the gate's own failure (everything in flight
 * belongs to the old generation and its results are only recorded).
 */
static bool config_fault_is_gates(keel_status s);

static keel_status restart(gate *g)
{
    bool first = !g->recovered;
    keel_status s = gate_branch_head(g->repo, g->target, g->tip);
    g->tip_built[0] = '\0';
    gate_recovery rec;
    memset(&rec, 0, sizeof(rec));
    if (keel_ok(s))
        s = gate_store_recover(g->store, g->target, tip_holds, g, !g->recovered, now_s(), &rec);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "recovering the queue of '%s'", g->target);
    g->recovered = true;
    if (rec.landed > 0)
        gate_say(g, "recovered: %zu change(s) found landed in '%s' at %.12s\n", rec.landed,
                 g->target, g->tip);
    if (rec.requeued > 0)
        gate_say(g, "recovered: %zu change(s) back in the queue, target '%s' at %.12s\n",
                 rec.requeued, g->target, g->tip);
    cancel_jobs(g, NULL);
    drop_again(g);
    for (size_t i = 0; i < g->ncands; i++)
        g->cands[i]->closed = true; /* recover abandoned what was open */
    g->gen++;
    gate_config_free(g->tip_cfg);
    g->tip_cfg = NULL;
    bool was_used = g->config_used; /* run --config FILE: FILE's while the tip's does not load */
    g->config_used = false;
    s = config_id(g, g->tip, &g->tip_cfg_id);
    if (keel_ok(s))
        s = gate_load_config(g, g->tip, &g->tip_cfg);
    if (!keel_ok(s) && !config_fault_is_gates(s))
        s = gate_tip_config_broken(g, s);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the configuration of '%s'", g->target);
    if (g->config_text != NULL && !g->config_used && (was_used || first))
        gate_say(g, "the configuration of '%s' at %.12s loads: --config '%s' is %s\n", g->target,
                 g->tip, g->config_origin, was_used ? "no longer used" : "not used");
    if (g->tip_cfg == NULL)
        return KEEL_ERR(KEEL_E_INTERNAL, "no configuration for '%s'", g->target);
    if (g->tip_cfg->target_set && strcmp(g->tip_cfg->target, g->target) != 0)
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
    p.slots = gate_slots(g->tip_cfg);
    p.parallel = gate_parallel(g->tip_cfg);
    s = gate_sched_new(&p, &g->sched);
    if (keel_ok(s) && old != NULL)
        gate_sched_inherit(g->sched, old); /* what it learned of the executor */
    gate_sched_delete(old);
    g->nactive = 0;
    return s;
}

/* A change cancelled in the store leaves the scheduler (its candidates are rebuilt without it). */
static keel_status withdraw(gate *g, long long change)
{
    gate_say(g, "change %lld was cancelled\n", change);
    keel_status s = gate_sched_cancel(g->sched, change);
    if (KEEL_IS(s, KEEL_E_NOTFOUND)) {
        keel_status_free(s);
        s = KEEL_OK;
    }
    drop_active(g, change);
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
    unsigned limit = g->tip_cfg->crash_limit;
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        if (is_active(g, q[i].id))
            continue;
        if (limit > 0 && q[i].crashes >= limit) {
            s = quarantine(g, &q[i]);
            continue;
        }
        s = grow((void **)&g->active, &g->active_cap, g->nactive + 1, sizeof(*g->active));
        if (keel_ok(s))
            s = q[i].crashes > 0 ? gate_sched_enqueue_alone(g->sched, q[i].id)
                                 : gate_sched_enqueue(g->sched, q[i].id);
        if (keel_ok(s))
            g->active[g->nactive++] = q[i].id;
    }
    for (size_t i = 0; keel_ok(s) && i < g->nactive;) {
        gate_change c;
        s = gate_store_get(g->store, g->active[i], &c);
        if (keel_ok(s) && c.state == GATE_CHANGE_CANCELLED) {
            s = withdraw(g, c.id);
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

/*
 * A verdict on `change` of candidate c made without building it: a conflict
 * with the target, or a change bad in itself.  The change ends in `state`
 * with `reason`, the candidate closes, and the rest of it is rebuilt without
 * the change (CANCEL_BUILD for this one).
 */
static keel_status decide_unbuilt(gate *g, gate_cand *c, long long change, gate_change_state state,
                                  const char *reason)
{
    bool conflict = state == GATE_CHANGE_CONFLICT;
    keel_status s = gate_store_set_state(g->store, change, state, reason, now_s());
    if (KEEL_IS(s, KEEL_E_STATE)) { /* cancelled meanwhile: it stays so */
        keel_status_free(s);
        s = close_cand(g, c, "abandoned");
        return keel_ok(s) ? withdraw(g, change) : s;
    }
    if (keel_ok(s))
        s = close_cand(g, c, conflict ? "conflict" : "failed");
    if (!keel_ok(s))
        return s;
    if (conflict)
        g->stats.conflicts++;
    else
        g->stats.rejected++;
    gate_change ch;
    s = gate_store_get(g->store, change, &ch);
    if (!keel_ok(s))
        return s;
    gate_say(g, "%s: change %lld '%s'%s%s\n", conflict ? "conflict" : "rejected", change, ch.branch,
             conflict ? " " : ": ", reason);
    gate_notify(g);
    drop_active(g, change);
    s = gate_sched_cancel(g->sched, change); /* CANCEL_BUILD for this one, rebuild the rest */
    if (KEEL_IS(s, KEEL_E_NOTFOUND)) {       /* the scheduler had already let it go */
        keel_status_free(s);
        s = KEEL_OK;
    }
    return s;
}

/*
 * A change of candidate c is bad in itself (GATE_E_BAD_CHANGE from
 * gate_merge: its head not a commit, a tree entry git refuses, its own
 * objects missing): rejected at once with the reason, whatever it was merged
 * onto and whatever `retries` is (a retry would fail the same way), and the
 * rest of its candidate rebuilt without it, as after a conflict.
 */
static keel_status reject_bad_change(gate *g, gate_cand *c, keel_status err)
{
    unsigned long long index = 0;
    if (!keel_status_get_uint(err, "index", &index) || index >= c->n)
        return KEEL_CONTEXT(err, "a bad change of candidate %lld that is none of its %zu", c->sid,
                            c->n);
    char reason[GATE_REASON_MAX];
    gate_fmt(reason, sizeof(reason), "%s", keel_status_message(err));
    keel_status_free(err);
    return decide_unbuilt(g, c, c->changes[index], GATE_CHANGE_REJECTED, reason);
}

/*
 * A configuration that does not load because of the gate's own trouble
 * (memory, I/O, reading the repository), not because of what the tree holds.
 */
static bool config_fault_is_gates(keel_status s)
{
    static const keel_code gates[] = {KEEL_E_NOMEM, KEEL_E_INJECTED, KEEL_E_IO,
                                      KEEL_E_SYS,   KEEL_E_INTERNAL, KEEL_E_BUSY,
                                      KEEL_E_STATE, KEEL_E_TIMEOUT,  KEEL_E_CANCELLED};
    for (size_t i = 0; i < sizeof(gates) / sizeof(gates[0]); i++)
        if (KEEL_HAS(s, gates[i]))
            return true;
    return KEEL_HAS(s, KEEL_E_FULL) && keel_status_get_str(s, "module") != NULL; /* a quota */
}

/*
 * The merged tree's .keel/gate.conf does not load because of what it holds
 * (the parser's message names the file, line and key; or there is none):
 * the candidate fails with that message as its reason, kept (the same tree
 * fails the same way: no retry), and `log` shows it as the output of a job
 * "gate.conf" that failed.
 */
static keel_status config_failed(gate *g, gate_cand *c, keel_status err)
{
    char why[GATE_REASON_MAX];
    gate_status_line(err, why, sizeof(why)); /* the whole chain: file, line, key and cause */
    gate_fmt(c->failures, sizeof(c->failures), "configuration: %s", why);
    long long jid = 0;
    char log[GATE_PATH_MAX + 64];
    keel_status s =
        gate_store_job_start(g->store, c->store_id, "gate.conf", (int)c->attempt, now_s(), &jid);
    if (keel_ok(s)) {
        gate_fmt(log, sizeof(log), "%s/logs/job-%lld.log", g->work, jid);
        char chain[4096];
        (void)keel_status_format(err, chain, sizeof(chain));
        FILE *f = fopen(log, "w");
        if (f == NULL)
            s = KEEL_ERR_SYS(errno, "cannot write the log '%s'", log);
        else if (fprintf(f, "keel-gate: .keel/gate.conf of %s does not load: %s\n%s\n", c->merge,
                         why, chain) < 0 ||
                 fclose(f) != 0)
            s = KEEL_ERR_SYS(errno, "cannot write the log '%s'", log);
    }
    if (keel_ok(s))
        s = gate_store_job_finish(g->store, jid, "failed", -1, log, 0, now_s());
    keel_status_free(err);
    if (keel_ok(s))
        gate_say(g, "build: candidate %lld: %s\n", c->store_id, c->failures);
    return s;
}

/*
 * A change does not merge onto the candidate's base.  The reason names what
 * it conflicts with (gate_conflict_with): on the tip, the landed change or
 * the commit pushed directly; in a build, a change ahead of it too.
 */
static keel_status merge_conflict(gate *g, gate_cand *c, keel_status err)
{
    unsigned long long index = 0;
    (void)keel_status_get_uint(err, "index", &index);
    const char *paths = keel_status_get_str(err, "paths");
    if (paths != NULL && paths != c->conflict_paths)
        (void)snprintf(c->conflict_paths, sizeof(c->conflict_paths), "%s", paths);
    char onto[GATE_HEX];
    const char *at = keel_status_get_str(err, "onto");
    gate_fmt(onto, sizeof(onto), "%s", at != NULL ? at : c->base);
    keel_status_free(err);
    c->conflict_at = (size_t)index;
    gate_change ch;
    keel_status s = gate_store_get(g->store, c->changes[index], &ch);
    if (!keel_ok(s))
        return s;
    /*
     * A verdict only when the change does not merge onto the target itself:
     * alone on the tip.  Against a candidate still under test, or against the
     * changes before it in a batch, it is a failed build, which the scheduler
     * isolates like any other until the change is alone on the tip.
     */
    bool verdict = gate_on_tip(g, c->base);
    if (verdict && c->n > 1) {
        char merge[GATE_HEX];
        const char *head[1] = {ch.head};
        s = gate_merge(g->repo, c->base, head, 1, merge);
        if (keel_status_is(s, &gate_codes, GATE_E_BAD_CHANGE)) {
            s = keel_status_with_uint(s, "index", index); /* its index in c, not in the retry */
            return reject_bad_change(g, c, s);
        }
        verdict = keel_status_is(s, &gate_codes, GATE_E_CONFLICT);
        if (!keel_ok(s) && !verdict)
            return s;
        keel_status_free(s);
    }
    char with[GATE_REASON_MAX];
    s = gate_conflict_with(g, verdict ? g->tip : onto, ch.head, with, sizeof(with));
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "building candidate %lld", c->sid);
    char reason[GATE_REASON_MAX];
    if (!verdict) {
        c->merge_failed = true;
        c->ever_failed = true;
        gate_fmt(c->failures, sizeof(c->failures), "change %lld does not merge onto %.12s: %s",
                 c->changes[index], onto, with);
        gate_say(g, "build: candidate %lld: change %lld '%s' %s: isolated like a failure\n", c->sid,
                 c->changes[index], ch.branch, with);
        return gate_sched_result(g->sched, c->sid, false);
    }
    gate_fmt(reason, sizeof(reason), "does not merge onto '%s' at %.12s: %s", g->target, g->tip,
             with);
    return decide_unbuilt(g, c, c->changes[index], GATE_CHANGE_CONFLICT, reason);
}

/* A work tree no job in flight has (a new one when all are taken). */
static keel_status take_tree(gate *g, size_t *out)
{
    size_t t = 0;
    while (t < g->ntrees && g->trees[t].busy)
        t++;
    if (t == g->ntrees) {
        keel_status s = grow((void **)&g->trees, &g->trees_cap, t + 1, sizeof(*g->trees));
        char dir[GATE_DIR_MAX + 32];
        gate_fmt(dir, sizeof(dir), "%s/%zu", g->tree_root, t);
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
        gate_status_line(s, j->error, sizeof(j->error));
        keel_status_free(s);
        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE); /* the worker hands it straight back */
    }
    g->inflight[g->ninflight++] = j;
    g->stats.jobs++;
    gate_pool_submit(g->pool, j);
    return KEEL_OK;
}

/* Does retry `b` run configuration `name` again? */
static bool rerun(const gate_sched_build *b, const char *name)
{
    for (size_t i = 0; i < b->nconfigs; i++)
        if (strcmp(b->configs[i], name) == 0)
            return true;
    return false;
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
        long long gone = 0;
        if (KEEL_IS(s, KEEL_E_STATE) && keel_status_get_int(s, "change", &gone)) {
            /* cancelled since the queue was read: built again without it */
            keel_heap_free(GATE_HEAP, heads);
            keel_heap_free(GATE_HEAP, ch);
            keel_status_free(s);
            return withdraw(g, gone);
        }
        if (keel_ok(s))
            s = gate_merge(g->repo, c->base, heads, c->n, c->merge);
        keel_heap_free(GATE_HEAP, heads);
        keel_heap_free(GATE_HEAP, ch);
        if (keel_status_is(s, &gate_codes, GATE_E_CONFLICT))
            return merge_conflict(g, c, s);
        if (keel_status_is(s, &gate_codes, GATE_E_BAD_CHANGE))
            return reject_bad_change(g, c, s);
        if (keel_ok(s))
            s = gate_store_candidate_set_merge(g->store, c->store_id, c->merge);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "building candidate %lld", c->sid);
        gate_point_after_merge();
        s = gate_load_config(g, c->merge, &c->cfg);
        if (!keel_ok(s) && config_fault_is_gates(s))
            return KEEL_CONTEXT(s, "reading the configuration of candidate %lld", c->sid);
        if (!keel_ok(s)) {
            s = config_failed(g, c, s);
            if (!keel_ok(s))
                return KEEL_CONTEXT(s, "building candidate %lld", c->sid);
            c->ever_failed = true;
            return gate_sched_result_final(g->sched, c->sid);
        }
    } else if (c->merge_failed && gate_on_tip(g, c->base)) {
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
    if (c->runs == NULL) {
        void *mem = NULL;
        s = keel_heap_calloc(GATE_HEAP, c->cfg->nconfigs + 1, sizeof(gate_sched_run), &mem);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "building candidate %lld", c->sid);
        c->runs = (gate_sched_run *)mem;
    }
    c->nruns = 0;
    memset(c->runs, 0, c->cfg->nconfigs * sizeof(gate_sched_run));
    c->failures[0] = '\0'; /* this attempt's jobs say */
    /* a retry runs only the configurations that failed (the scheduler names them) */
    size_t wanted = 0;
    for (size_t i = 0; i < c->cfg->nconfigs; i++)
        wanted += rerun(b, c->cfg->configs[i].name);
    c->pending = (unsigned)(wanted > 0 ? wanted : c->cfg->nconfigs);
    gate_say(g, "build: candidate %lld attempt %u, %zu change(s) on %.12s -> %.12s, %u jobs\n",
             c->store_id, c->attempt, c->n, c->base, c->merge, c->pending);
    g->stats.builds++;
    for (size_t i = 0; keel_ok(s) && i < c->cfg->nconfigs; i++)
        if (wanted == 0 || rerun(b, c->cfg->configs[i].name))
            s = start_job(g, c, &c->cfg->configs[i]);
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
static keel_status gate_failed(gate *g, unsigned *in_a_row, keel_status why, const char *what)
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
    keel_status e = gate_store_event(g->store, now_s(), "gate-error", 0, detail);
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

/* A job the gate could not run: it runs again, in a tree written whole, after a pause. */
static keel_status run_again(gate *g, gate_job_run *j)
{
    gate_worktree_forget(g->trees[j->tree].w); /* whatever it holds: written whole next time */
    char what[128];
    gate_fmt(what, sizeof(what), "job %lld ('%s') could not run", j->job_id, j->config);
    keel_status s = gate_failed(g, &g->gate_errors, KEEL_ERR(KEEL_E_IO, "%s", j->error), what);
    if (keel_ok(s))
        s = grow((void **)&g->again, &g->again_cap, g->nagain + 1, sizeof(gate_job_run *));
    if (!keel_ok(s))
        return s;
    g->again[g->nagain++] = j;
    return KEEL_OK;
}

/* The jobs to run again, once their pause is over: each a new job of the same build. */
static keel_status start_again(gate *g)
{
    if (g->nagain == 0 || gate_now_ms() < g->again_at_ms || stop_requested(g))
        return KEEL_OK;
    keel_status s = KEEL_OK;
    while (keel_ok(s) && g->nagain > 0) {
        gate_job_run *j = g->again[--g->nagain];
        gate_cand *c = find_cand(g, j->cand);
        if (c == NULL || c->cancelled || j->attempt != c->attempt) {
            keel_heap_free(GATE_HEAP, j);
            continue;
        }
        const gate_matrix_config *m = NULL;
        for (size_t i = 0; c->cfg != NULL && i < c->cfg->nconfigs; i++)
            if (strcmp(c->cfg->configs[i].name, j->config) == 0)
                m = &c->cfg->configs[i];
        keel_heap_free(GATE_HEAP, j);
        if (m == NULL)
            return KEEL_ERR(KEEL_E_INTERNAL,
                            "a job of candidate %lld to run again has no "
                            "configuration",
                            c->store_id);
        s = start_job(g, c, m);
    }
    return s;
}

/*
 * A required job's result for the scheduler: its configuration, passed or
 * not, its failure signature (how its log ends: signature.h; 0, unknown,
 * when the log cannot be read) and its id (the evidence names its log); a
 * failure is kept per configuration for the reason of a rejection.
 */
static keel_status add_run(gate_cand *c, const gate_job_run *j, bool passed)
{
    size_t k = 0;
    while (k < c->cfg->nconfigs && strcmp(c->cfg->configs[k].name, j->config) != 0)
        k++;
    if (k == c->cfg->nconfigs || c->runs[k].config != NULL)
        return KEEL_ERR(KEEL_E_INTERNAL, "job %lld of candidate %lld: no configuration '%s'",
                        j->job_id, c->store_id, j->config);
    gate_sched_run *r = &c->runs[k]; /* in the configuration's order: the evidence's order */
    c->nruns++;
    r->config = c->cfg->configs[k].name;
    r->passed = passed;
    r->job = j->job_id;
    if (passed)
        return KEEL_OK;
    keel_status s = gate_log_signature(j->log, &r->signature);
    if (!keel_ok(s))
        keel_status_ignore(s, "an unknown signature: the failure counts as a retry would");
    if (c->fails == NULL) {
        void *mem = NULL;
        s = keel_heap_calloc(GATE_HEAP, c->cfg->nconfigs, sizeof(gate_cand_fail), &mem);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "the result of job %lld", j->job_id);
        c->fails = (gate_cand_fail *)mem;
    }
    gate_cand_fail *f = &c->fails[k];
    gate_fmt(f->result, sizeof(f->result), "%s", gate_exec_result_name(j->result));
    f->exit_code = j->exit_code;
    gate_fmt(f->reason, sizeof(f->reason), "%s", j->reason);
    return KEEL_OK;
}

static keel_status job_done(gate *g, gate_job_run *j)
{
    for (size_t i = 0; i < g->ninflight; i++)
        if (g->inflight[i] == j) {
            g->inflight[i] = g->inflight[--g->ninflight];
            break;
        }
    bool stale = j->gen != g->gen || g->stopping;
    bool gate_error = j->error[0] != '\0'; /* the gate could not run it: says nothing of a change */
    bool passed = j->result == GATE_EXEC_PASSED && !gate_error;
    const char *result = gate_error ? "gate-error" : gate_exec_result_name(j->result);
    if (gate_error) {
        FILE *f = fopen(j->log, "a");
        if (f != NULL) {
            (void)fprintf(f,
                          "keel-gate: the gate could not run the job (its own failure, no "
                          "verdict on the change): %s\n",
                          j->error);
            (void)fclose(f);
        }
    }
    keel_status s = gate_store_job_finish(g->store, j->job_id, result, j->exit_code, j->log,
                                          (long long)j->elapsed_ms, now_s());
    if (stale && KEEL_IS(s, KEEL_E_STATE)) { /* recovery marked it lost */
        keel_status_free(s);
        s = KEEL_OK;
    }
    g->trees[j->tree].busy = false; /* the next job there finds it as the checkout left it */
    if (g->sched != NULL && !gate_error &&
        (j->result == GATE_EXEC_PASSED || j->result == GATE_EXEC_FAILED))
        gate_sched_timed(g->sched, j->config, (double)j->elapsed_ms, j->load); /* ran its course */
    gate_cand *c = stale ? NULL : find_cand(g, j->cand);
    if (keel_ok(s) && !stale)
        gate_point_after_job();
    bool current = c != NULL && !c->cancelled && j->attempt == c->attempt;
    if (keel_ok(s) && current && gate_error)
        return run_again(g, j); /* keeps j */
    if (keel_ok(s) && current && j->result != GATE_EXEC_CANCELLED)
        g->gate_errors = 0; /* a job ran to a result */
    if (keel_ok(s) && current) {
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
        if (j->required)
            s = add_run(c, j, passed);
        if (keel_ok(s) && --c->pending == 0) {
            if (c->failed_now) {
                c->ever_failed = true;
                if (c->attempt == 1)
                    (void)snprintf(c->first_failures, sizeof(c->first_failures), "%s", c->failures);
            }
            size_t n = 0;
            for (size_t k = 0; k < c->cfg->nconfigs; k++)
                if (c->runs[k].config != NULL)
                    c->runs[n++] = c->runs[k];
            KEEL_ASSERT(n == c->nruns);
            s = gate_sched_results(g->sched, c->sid, c->runs, n);
        }
    }
    keel_heap_free(GATE_HEAP, j);
    return s;
}

static keel_status land(gate *g, const gate_sched_decision *d, gate_cand *c)
{
    if (!gate_on_tip(g, c->base))
        return KEEL_ERR(KEEL_E_INTERNAL, "candidate %lld was built on %.12s, the tip is %.12s",
                        c->store_id, c->base, g->tip);
    char message[128];
    (void)snprintf(message, sizeof(message), "keel-gate: land candidate %lld", c->store_id);
    gate_point_before_cas();
    for (size_t i = 0; i < d->n; i++) {
        gate_change ch;
        keel_status gs = gate_store_get(g->store, d->changes[i], &ch);
        if (!keel_ok(gs))
            return gs;
        if (ch.state == GATE_CHANGE_CANCELLED) {
            /* withdrawn after it was tested: it must not land; the rest is built again */
            gate_say(g,
                     "change %lld ('%s') was cancelled before its candidate %lld landed: "
                     "building the others again without it\n",
                     ch.id, ch.branch, c->store_id);
            return restart(g);
        }
    }
    char landing[GATE_HEX]; /* its merges again, saying what they are (landing.c) */
    keel_status s = gate_land_relabel(g, c, landing);
    if (keel_ok(s))
        s = gate_branch_cas(g->repo, g->target, g->tip, landing, message);
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
    (void)snprintf(g->tip_built, sizeof(g->tip_built), "%s", c->merge); /* what stacks on it */
    (void)snprintf(c->merge, sizeof(c->merge), "%s", landing);
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
        gate_notify(g);
    }
    /*
     * A landing that changed the target's configuration: its settings (the
     * sandbox, limits, strategy, slots, the hook) hold from now on, for what
     * is in flight too: everything after it is built again under them.
     */
    unsigned long long id = 0;
    s = config_id(g, g->tip, &id);
    if (!keel_ok(s) || id == g->tip_cfg_id)
        return s;
    gate_say(g,
             "the configuration of '%s' changed with this landing: what is in flight is built "
             "again under it\n",
             g->target);
    return restart(g);
}

/*
 * The scheduler rejects a change whose candidate failed to merge: it was never
 * built.  Merged alone onto today's tip, it either does not merge (the
 * verdict: a conflict) or does (it conflicted only with changes before it
 * that did not land): then it goes back to the scheduler, to be built.
 * *done: it was one of those (nothing is left to do).
 */
static keel_status reject_unbuilt(gate *g, gate_cand *c, long long change, bool *done)
{
    *done = false;
    if (!c->merge_failed)
        return KEEL_OK;
    gate_change ch;
    keel_status s = gate_store_get(g->store, change, &ch);
    if (keel_ok(s)) {
        char merge[GATE_HEX];
        const char *head[1] = {ch.head};
        s = gate_merge(g->repo, g->tip, head, 1, merge);
    }
    if (keel_ok(s)) {
        *done = true;
        gate_say(g,
                 "change %lld '%s' merges onto '%s' at %.12s: it conflicted only with changes "
                 "before it, which did not land; queued again\n",
                 change, ch.branch, g->target, g->tip);
        s = close_cand(g, c, "failed");
        return keel_ok(s) ? gate_sched_enqueue(g->sched, change) : s;
    }
    if (!keel_status_is(s, &gate_codes, GATE_E_CONFLICT))
        return s;
    *done = true;
    keel_status_free(s);
    char with[GATE_REASON_MAX], reason[GATE_REASON_MAX];
    s = gate_conflict_with(g, g->tip, ch.head, with, sizeof(with));
    if (!keel_ok(s))
        return s;
    gate_fmt(reason, sizeof(reason), "does not merge onto '%s' at %.12s: %s", g->target, g->tip,
             with);
    return decide_unbuilt(g, c, change, GATE_CHANGE_CONFLICT, reason);
}

/*
 * A rejection's reason, from the scheduler's evidence: the configuration that
 * failed the change alone on the tip for good (its runs, why no more, its
 * last failure's log), after the batch it was isolated from when bisection
 * blamed it.  A failure without a configuration (the merged tree's
 * .keel/gate.conf does not parse; a merge) keeps the candidate's own text.
 */
static void reject_reason(gate *g, const gate_cand *c, const gate_sched_decision *d, char *out,
                          size_t size)
{
    const gate_sched_verdict *v = &d->decided;
    size_t k = 0;
    while (c->cfg != NULL && k < c->cfg->nconfigs &&
           strcmp(c->cfg->configs[k].name, v->config) != 0)
        k++;
    const gate_cand_fail *f =
        c->fails != NULL && c->cfg != NULL && k < c->cfg->nconfigs ? &c->fails[k] : NULL;
    if (v->config[0] == '\0' || f == NULL) {
        gate_fmt(out, size, "%s",
                 c->failures[0] != '\0' ? c->failures : "a required configuration failed");
        return;
    }
    char batch[GATE_SCHED_NAME_MAX + 128] = "";
    if (d->batch_n > 1 && d->batch.config[0] != '\0')
        gate_fmt(batch, sizeof(batch),
                 "isolated by bisection from a batch of %zu (which failed on '%s', %u of %u runs), "
                 "then ",
                 d->batch_n, d->batch.config, d->batch.failures, d->batch.runs);
    else if (d->batch_n > 1)
        gate_fmt(batch, sizeof(batch), "isolated by bisection from a batch of %zu, then ",
                 d->batch_n);
    static const char *const why[] = {"", "", ", the same way twice (not a flake: not run again)",
                                      ", each time differently (suspect flakes, run again)", ""};
    gate_fmt(out, size,
             "%sconfiguration '%s' %s (exit %d, log %s/logs/job-%lld.log), alone on the tip in %u "
             "of %u run%s%s%s%s",
             batch, v->config, f->result, f->exit_code, g->work, v->job, v->failures, v->runs,
             v->runs == 1 ? "" : "s",
             (unsigned)v->why < sizeof(why) / sizeof(why[0]) ? why[v->why] : "",
             f->reason[0] != '\0' ? ": " : "", f->reason);
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
        bool unbuilt = false;
        s = reject_unbuilt(g, c, d->change, &unbuilt);
        if (!keel_ok(s) || unbuilt)
            return s;
        char reason[GATE_REASON_MAX];
        reject_reason(g, c, d, reason, sizeof(reason));
        s = gate_store_set_state(g->store, d->change, GATE_CHANGE_REJECTED, reason, now_s());
        bool ended = KEEL_IS(s, KEEL_E_STATE); /* cancelled meanwhile: it stays so */
        if (ended) {
            keel_status_free(s);
            s = KEEL_OK;
        }
        if (keel_ok(s))
            s = close_cand(g, c, "failed");
        if (keel_ok(s) && ended)
            drop_active(g, d->change);
        if (keel_ok(s) && !ended) {
            g->stats.rejected++;
            drop_active(g, d->change);
            gate_change ch;
            keel_status gs = gate_store_get(g->store, d->change, &ch);
            if (!keel_ok(gs)) {
                keel_status_ignore(gs, "only for the message");
                ch.branch[0] = '\0';
            }
            gate_say(g, "rejected: change %lld '%s': %s\n", d->change, ch.branch, reason);
            gate_notify(g);
        }
        return s;
    }
    case GATE_SCHED_FLAKY: {
        char detail[GATE_JSON_ROOM(GATE_REASON_MAX) + 64 + GATE_HEX];
        size_t n = (size_t)snprintf(detail, sizeof(detail),
                                    "{\"candidate\":%lld,\"merge\":\"%s\",\"failed\":", c->store_id,
                                    c->merge); /* the tested merge: a landing relabels */
        n = gate_json_str(detail, sizeof(detail), n, c->first_failures);
        (void)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0, "}");
        g->stats.flakes++;
        s = gate_store_event(g->store, now_s(), "flake", c->changes[0], detail);
        gate_say(g,
                 "flaky: candidate %lld failed, then passed: configuration '%s' failed %u of %u "
                 "runs: %s\n",
                 c->store_id, d->decided.config, d->decided.failures, d->decided.runs,
                 c->first_failures);
        gate_notify(g);
        return s;
    }
    case GATE_SCHED_CANCEL_BUILD:
        c->cancelled = true;
        cancel_jobs(g, c);
        return close_cand(g, c, "abandoned");
    }
    return KEEL_ERR(KEEL_E_INTERNAL, "unknown decision %d", (int)d->kind);
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
        while (keel_ok(s) && gen == g->gen && !stop_requested(g) && gate_sched_poll(g->sched, &d)) {
            progress = true;
            s = decide(g, &d);
            if (keel_ok(s) && d.kind != GATE_SCHED_CANCEL_BUILD)
                g->turn_errors = 0; /* a decision carried out: the turns work */
        }
        gate_sched_build b;
        bool have = false;
        if (keel_ok(s) && !stop_requested(g) && !paused)
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
    gate_recovery rec;
    memset(&rec, 0, sizeof(rec));
    if (keel_ok(s))
        s = gate_store_recover(g->store, g->target, tip_holds, g, false, now_s(), &rec);
    if (keel_ok(s)) {
        char detail[64];
        gate_fmt(detail, sizeof(detail), "{\"signal\":%d,\"requeued\":%zu}",
                 __atomic_load_n(&g->stop_signal, __ATOMIC_ACQUIRE), rec.requeued);
        s = gate_store_event(g->store, now_s(), "stopped", 0, detail);
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
    while (!stop_requested(g) && gate_now_ms() < until) {
        struct timespec t = {0, 20000000L};
        (void)nanosleep(&t, NULL);
    }
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
    if (keel_ok(s))
        s = sync_queue(g);
    if (keel_ok(s))
        s = start_again(g);
    if (keel_ok(s))
        s = pump(g, paused);
    if (!keel_ok(s) || gen != g->gen)
        return s; /* restarted (a lost compare-and-swap): the queue is read again */
    gate_sched_stats st;
    gate_sched_stats_get(g->sched, &st);
    unsigned outstanding = gate_pool_outstanding(g->pool);
    bool idle = outstanding == 0 && st.running == 0 && g->nagain == 0;
    if ((st.queued == 0 && st.testing == 0 && outstanding == 0 && g->nagain == 0) ||
        (idle && paused)) { /* paused: the rest waits for the queue to resume */
        *done = once;
    } else if (idle) {
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
    gate_job_run *j = gate_pool_wait(g->pool, wait_ms);
    return j != NULL ? job_done(g, j) : KEEL_OK;
}

keel_status gate_run(gate *g, bool once, gate_run_stats *stats)
{
    KEEL_ASSERT(g != NULL);
    memset(&g->stats, 0, sizeof(g->stats));
    g->recovered = false;
    g->gate_errors = 0;
    g->turn_errors = 0;
    keel_status s = begin_run(g);
    size_t orphans = 0; /* jobs a killed gate left running go first: none runs alongside them */
    if (keel_ok(s))
        s = gate_exec_reap_orphans(g->records, &orphans);
    if (keel_ok(s) && orphans > 0)
        gate_say(g, "killed what was left of %zu job(s) of a killed keel-gate\n", orphans);
    if (keel_ok(s))
        s = gate_notify_start(g); /* before recovery: it may record landings to notify */
    if (keel_ok(s))
        s = restart(g);
    if (keel_ok(s))
        s = gate_pool_new(gate_slots(g->tip_cfg), &g->pool);
    if (keel_ok(s))
        gate_say(g, "gate: '%s' at %.12s, strategy %s, %u slots\n", g->target, g->tip,
                 gate_strategy_name(g->tip_cfg->strategy), gate_slots(g->tip_cfg));
    gate_notify(g); /* the tip's hook: events left by the last run go first */
    g->pushed_at_ms = 0;
    g->logs_pruned_at = 0;
    bool done = false;
    while (!done && !stop_requested(g) && g->pool != NULL) {
        if (keel_ok(s)) {
            s = turn(g, once, &done);
            continue;
        }
        /* the gate's own failure (a full disk, no memory, ...): a pause, then from the store */
        if (!passing(s) || g->gate_errors > GATE_ERRORS_MAX || g->turn_errors > GATE_ERRORS_MAX)
            break;
        s = gate_failed(g, &g->turn_errors, s, "a turn of the gate");
        if (!keel_ok(s))
            break;
        pause_for(g, g->again_at_ms > gate_now_ms() ? g->again_at_ms - gate_now_ms() : 0);
        s = restart(g);
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
    drop_again(g);
    for (size_t i = 0; i < g->ncands; i++) {
        gate_cand *c = g->cands[i];
        if (keel_ok(s) && c->gen == g->gen && !g->stopping)
            s = close_cand(g, c, c->ever_failed ? "failed" : "abandoned");
        free_cand(c);
    }
    if (keel_ok(s) && g->stopping)
        s = requeue_in_flight(g);
    if (!keel_ok(s) && g->qlock != NULL && g->tip_cfg != NULL) {
        /* stopped by an error: what was in flight goes back to the queue, if the store lets it */
        gate_recovery rec;
        keel_status r = gate_store_recover(g->store, g->target, tip_holds, g, false, now_s(), &rec);
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
        g->stats.batch = ss.batch;
        g->stats.depth = ss.depth;
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
    drop_trees(g);
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
