/*
 * gate_jobs.c - the gatekeeper loop's builds (gate_loop.h): a scheduler's
 * build becomes a candidate merged in order on its base and one job per
 * configuration of the merged tree's .keel/gate.conf, each in a reused work
 * tree; a job's result goes back to its candidate and, once every required
 * job of the attempt is back, to the scheduler.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ccache.h"
#include "exec.h"
#include "flow.h"
#include "gate_loop.h"
#include "nightly.h"
#include "post.h"
#include "signature.h"
#include "store.h"
#include "text.h"

static void add_failure(char *buf, const char *what)
{
    size_t len = strlen(buf);
    (void)snprintf(buf + len, GATE_REASON_MAX - len, "%s%s", len > 0 ? "; " : "", what);
}

keel_status gate_take_tree(gate *g, size_t *out)
{
    size_t t = 0;
    while (t < g->ntrees && g->trees[t].busy)
        t++;
    if (t == g->ntrees) {
        keel_status s = gate_grow((void **)&g->trees, &g->trees_cap, t + 1, sizeof(*g->trees));
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

void gate_drop_trees(gate *g)
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
        gate_store_job_start(g->store, c->store_id, m->name, (int)c->attempt, gate_now_s(), &jid);
    if (keel_ok(s))
        s = gate_grow((void **)&g->inflight, &g->inflight_cap, g->ninflight + 1, sizeof(void *));
    if (keel_ok(s))
        s = gate_take_tree(g, &tree);
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
    char key[64]; /* its compiler cache's layer, found by the candidate's landing (ccache.h) */
    (void)snprintf(key, sizeof(key), "p%d-c%lld-j%lld", (int)getpid(), c->store_id, jid);
    if (keel_ok(s)) /* its configuration's compiler cache, by the target's ccache-size */
        s = gate_ccache_attach(&j->policy, g->work, g->tip_cfg, m->name, key, false);
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

/*
 * Keep candidate c's configurations of level gate, and of pre-merge (and the
 * flow's levels) when one of its changes is a flow's merge into the target
 * (gate_flow_levels): pre-merge never runs on an ordinary change.
 */
static keel_status keep_levels(gate *g, gate_cand *c)
{
    unsigned levels = GATE_LEVEL_GATE;
    keel_status s = KEEL_OK;
    for (size_t i = 0; keel_ok(s) && i < c->n && c->cfg->nflows > 0; i++) {
        gate_change ch;
        s = gate_store_get(g->store, c->changes[i], &ch);
        if (keel_ok(s))
            levels |= gate_flow_levels(c->cfg, g->target, ch.branch);
    }
    if (keel_ok(s))
        gate_config_keep_level(c->cfg, (gate_level)levels);
    return s;
}

keel_status gate_start_build(gate *g, const gate_sched_build *b)
{
    gate_cand *c = NULL;
    keel_status s = KEEL_OK;
    if (b->attempt > 1) {
        c = gate_find_cand(g, b->candidate);
        if (c == NULL)
            return KEEL_ERR(KEEL_E_INTERNAL, "a retry of unknown candidate %lld", b->candidate);
    } else {
        s = gate_grow((void **)&g->cands, &g->cands_cap, g->ncands + 1, sizeof(void *));
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
        const gate_cand *base = b->base != 0 ? gate_find_cand(g, b->base) : NULL;
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
                                             gate_now_s(), &c->store_id);
        long long gone = 0;
        if (KEEL_IS(s, KEEL_E_STATE) && keel_status_get_int(s, "change", &gone)) {
            /* cancelled since the queue was read: built again without it */
            keel_heap_free(GATE_HEAP, heads);
            keel_heap_free(GATE_HEAP, ch);
            keel_status_free(s);
            return gate_withdraw(g, gone);
        }
        if (keel_ok(s))
            s = gate_merge(g->repo, c->base, heads, c->n, c->merge);
        keel_heap_free(GATE_HEAP, heads);
        keel_heap_free(GATE_HEAP, ch);
        if (keel_status_is(s, &gate_codes, GATE_E_CONFLICT))
            return gate_merge_conflict(g, c, s);
        if (keel_status_is(s, &gate_codes, GATE_E_BAD_CHANGE))
            return gate_reject_bad_change(g, c, s);
        if (keel_ok(s))
            s = gate_store_candidate_set_merge(g->store, c->store_id, c->merge);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "building candidate %lld", c->sid);
        gate_point_after_merge();
        s = gate_load_config(g, c->merge, &c->cfg);
        if (keel_ok(s)) /* the queue runs level gate (at least one); a flow's merge pre-merge too */
            s = keep_levels(g, c);
        if (!keel_ok(s) && gate_config_fault_is_gates(s))
            return KEEL_CONTEXT(s, "reading the configuration of candidate %lld", c->sid);
        if (!keel_ok(s)) {
            s = gate_config_failed(g, c, s);
            if (!keel_ok(s))
                return KEEL_CONTEXT(s, "building candidate %lld", c->sid);
            c->ever_failed = true;
            return gate_sched_result_final(g->sched, c->sid);
        }
    } else if (c->merge_failed && gate_on_tip(g, c->base)) {
        /* its base landed: the conflict may now be with the target itself */
        return gate_merge_conflict(
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
    char why[160] = "";
    if (c->attempt == 1 && g->tip_cfg != NULL && g->tip_cfg->strategy == GATE_STRATEGY_ADAPTIVE) {
        /* the window this candidate was cut for, and the evidence it was chosen on */
        gate_sched_stats st;
        gate_sched_stats_get(g->sched, &st);
        gate_fmt(why, sizeof(why),
                 " (window: batches of %u, %u deep; p %.3f, %.1f jobs at once, pace %.2f)",
                 st.batch, st.depth, st.p, st.parallel, gate_sched_stats_pace(&st, st.depth));
    }
    gate_say(g, "build: candidate %lld attempt %u, %zu change(s) on %.12s -> %.12s, %u jobs%s\n",
             c->store_id, c->attempt, c->n, c->base, c->merge, c->pending, why);
    g->stats.builds++;
    for (size_t i = 0; keel_ok(s) && i < c->cfg->nconfigs; i++)
        if (wanted == 0 || rerun(b, c->cfg->configs[i].name))
            s = start_job(g, c, &c->cfg->configs[i]);
    return s;
}

/* A job the gate could not run: it runs again, in a tree written whole, after a pause. */
static keel_status run_again(gate *g, gate_job_run *j)
{
    gate_worktree_forget(g->trees[j->tree].w); /* whatever it holds: written whole next time */
    char what[128];
    gate_fmt(what, sizeof(what), "job %lld ('%s') could not run", j->job_id, j->config);
    keel_status s = gate_failed(g, &g->gate_errors, KEEL_ERR(KEEL_E_IO, "%s", j->error), what);
    if (keel_ok(s))
        s = gate_grow((void **)&g->again, &g->again_cap, g->nagain + 1, sizeof(gate_job_run *));
    if (!keel_ok(s))
        return s;
    g->again[g->nagain++] = j;
    return KEEL_OK;
}

/* The jobs to run again, once their pause is over: each a new job of the same build. */
keel_status gate_start_again(gate *g)
{
    if (g->nagain == 0 || gate_now_ms() < g->again_at_ms || gate_stop_requested(g))
        return KEEL_OK;
    keel_status s = KEEL_OK;
    while (keel_ok(s) && g->nagain > 0) {
        gate_job_run *j = g->again[--g->nagain];
        gate_cand *c = gate_find_cand(g, j->cand);
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

keel_status gate_job_done(gate *g, gate_job_run *j)
{
    for (size_t i = 0; i < g->ninflight; i++)
        if (g->inflight[i] == j) {
            g->inflight[i] = g->inflight[--g->ninflight];
            break;
        }
    if (gate_post_job(j))
        return gate_post_job_done(g, j); /* the post level's (gate/levels/post.c) */
    if (gate_nightly_job(j))
        return gate_nightly_job_done(g, j); /* the nightly level's (gate/levels/nightly.c) */
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
    gate_job_timing timing = {(long long)j->elapsed_ms, j->load, j->others};
    keel_status s = gate_store_job_finish(g->store, j->job_id, result, j->exit_code, j->log,
                                          &timing, gate_now_s());
    if (stale && KEEL_IS(s, KEEL_E_STATE)) { /* recovery marked it lost */
        keel_status_free(s);
        s = KEEL_OK;
    }
    g->trees[j->tree].busy = false; /* the next job there finds it as the checkout left it */
    if (g->sched != NULL)
        gate_sched_clock(g->sched, (double)gate_now_ms()); /* the pace of the depth in use */
    if (g->sched != NULL && !gate_error &&
        (j->result == GATE_EXEC_PASSED || j->result == GATE_EXEC_FAILED)) { /* ran its course */
        gate_sched_job_time t = {j->config, (double)j->elapsed_ms, j->load, j->others, passed};
        gate_sched_job_timed(g->sched, &t);
    }
    gate_cand *c = stale ? NULL : gate_find_cand(g, j->cand);
    if (keel_ok(s) && !stale)
        gate_point_after_job();
    bool current = c != NULL && !c->cancelled && j->attempt == c->attempt;
    if (keel_ok(s) && current && gate_error)
        return run_again(g, j); /* keeps j */
    if (!current || c->closed)  /* decided without it: its cache layer is merged by nobody */
        gate_ccache_layer_drop(&j->policy);
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
