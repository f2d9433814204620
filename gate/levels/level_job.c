/*
 * level_job.c - a level's build of a commit (level_job.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "level_job.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ccache.h"
#include "worktree.h"

/* A level's job id: negative (a candidate's are the store's, positive), never reused. */
static long long next_job_id(void)
{
    static long long last;
    return -__atomic_add_fetch(&last, 1, __ATOMIC_RELAXED);
}

keel_status gate_level_job_start(gate *g, const gate_level_build *b, gate_job_run **out)
{
    KEEL_ASSERT(b->size >= sizeof(gate_level_job));
    *out = NULL;
    gate_config *cfg = NULL;
    keel_status s = gate_load_config(g, b->commit, &cfg);
    const gate_matrix_config *m = NULL;
    if (keel_ok(s)) {
        gate_config_keep_level(cfg, b->level);
        for (size_t i = 0; i < cfg->nconfigs && m == NULL; i++)
            if (strcmp(cfg->configs[i].name, b->config) == 0)
                m = &cfg->configs[i];
        if (m == NULL)
            s = KEEL_ERR(KEEL_E_NOTFOUND, "commit %.12s has no configuration '%s' at level %s",
                         b->commit, b->config, gate_level_name(b->level));
    }
    if (keel_ok(s))
        s = gate_grow((void **)&g->inflight, &g->inflight_cap, g->ninflight + 1, sizeof(void *));
    size_t tree = 0;
    if (keel_ok(s))
        s = gate_take_tree(g, &tree);
    void *mem = NULL;
    if (keel_ok(s)) {
        s = keel_heap_calloc(GATE_HEAP, 1, b->size, &mem);
        if (!keel_ok(s))
            g->trees[tree].busy = false;
    }
    if (!keel_ok(s)) {
        gate_config_free(cfg);
        return KEEL_CONTEXT(s, "starting the %s build of %.12s with '%s'", b->what, b->commit,
                            b->config);
    }
    gate_level_job *lj = (gate_level_job *)mem;
    lj->cfg = cfg;
    gate_job_run *j = &lj->run;
    j->job_id = next_job_id();
    j->gen = g->gen;
    gate_job_from_config(j, m);
    s = gate_job_policy_from(&j->policy, g->tip_cfg, m->name); /* the target's, as the queue's */
    char key[64]; /* a landed commit's build writes the landed layer (gate/exec/ccache.h) */
    (void)snprintf(key, sizeof(key), "p%d-l%lld", (int)getpid(), -j->job_id);
    if (keel_ok(s))
        s = gate_ccache_attach(&j->policy, g->work, g->tip_cfg, m->name, key, true);
    j->hidden = &g->hidden;
    j->records = g->records;
    j->tree = tree;
    gate_fmt(j->dir, sizeof(j->dir), "%s", gate_worktree_dir(g->trees[tree].w));
    b->init(j, b->ctx);
    if (keel_ok(s))
        s = gate_worktree_checkout(g->trees[tree].w, g->repo, b->commit);
    if (!keel_ok(s)) {
        gate_status_line(s, j->error, sizeof(j->error));
        keel_status_free(s);
        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE); /* the worker hands it straight back */
    }
    g->inflight[g->ninflight++] = j;
    gate_say(g, "%s: building %.12s with '%s'\n", b->what, b->commit, b->config);
    gate_pool_submit(g->pool, j);
    *out = j;
    return KEEL_OK;
}

void gate_level_job_free(gate *g, gate_job_run *j)
{
    gate_level_job *lj = (gate_level_job *)j;
    g->trees[j->tree].busy = false;
    gate_config_free(lj->cfg);
    keel_heap_free(GATE_HEAP, lj);
}

void gate_level_jobs_cancel(gate *g, bool (*is)(const gate_job_run *j))
{
    for (size_t i = 0; i < g->ninflight; i++)
        if (is(g->inflight[i]))
            __atomic_store_n(&g->inflight[i]->cancel, 1, __ATOMIC_RELEASE);
}

unsigned gate_level_jobs_running(const gate *g, bool (*is)(const gate_job_run *j))
{
    unsigned n = 0;
    for (size_t i = 0; i < g->ninflight; i++)
        n += is(g->inflight[i]);
    return n;
}
