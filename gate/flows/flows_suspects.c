/*
 * flows_suspects.c - who is reminded of a flow's merge that failed its tests
 * (flows_turn.h: gate_flows_suspects): the culprit searches' culprits among
 * the commits the merge brings, read from the store and the repository; the
 * choice is flow.c's (gate_flow_suspects, pure).  And the merge's own
 * search when none knew (gate_flows_search_start, gate_flows_search_culprit).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "flows_turn.h"

#include <stdio.h>
#include <string.h>

#include "flow.h"
#include "git_int.h"
#include "flowmerge.h"
#include "remote.h"
#include "search.h"
#include "store_culprit.h"
#include "store_web.h"

enum { JOBS_MAX = 256, FAILED_MAX = 32, SEARCHES_MAX = 32 };

/*
 * The author of `hex` ("Name <address>"); a merge the gate made (two
 * parents): its second parent's, the change's head, as the search's verdict
 * names a merge's culprit (search.h).
 */
static keel_status author_of(gate *g, const char *hex, char *out, size_t size)
{
    git_oid oid;
    keel_status s = gate_oid_parse(hex, &oid);
    git_commit *c = NULL;
    int rc = keel_ok(s) ? git_commit_lookup(&c, g->repo->repo, &oid) : 0;
    if (rc == 0 && c != NULL && git_commit_parentcount(c) > 1) {
        git_commit *head = NULL;
        rc = git_commit_parent(&head, c, 1);
        git_commit_free(c);
        c = head;
    }
    if (rc != 0)
        return gate_git_error(rc, "cannot read commit %.12s", hex);
    if (keel_ok(s)) {
        const git_signature *a = git_commit_author(c);
        gate_fmt(out, size, "%s <%s>", a->name, a->email);
    }
    git_commit_free(c);
    return s;
}

/* The configurations change `id` failed (a job that ended neither passed nor running). */
static keel_status failed_configs(gate *g, long long id, char (*out)[GATE_JOB_CONFIG_MAX],
                                  size_t *n)
{
    static gate_job jobs[JOBS_MAX]; /* large: the loop's thread only */
    size_t nj = 0;
    *n = 0;
    keel_status s = gate_store_jobs(g->store, g->target, id, jobs, JOBS_MAX, &nj);
    for (size_t i = 0; keel_ok(s) && i < nj && *n < FAILED_MAX; i++) {
        if (strcmp(jobs[i].state, "passed") == 0 || strcmp(jobs[i].state, "running") == 0)
            continue;
        bool again = false;
        for (size_t k = 0; k < *n && !again; k++)
            again = strcmp(out[k], jobs[i].config) == 0;
        if (!again)
            gate_fmt(out[(*n)++], GATE_JOB_CONFIG_MAX, "%s", jobs[i].config);
    }
    return s;
}

keel_status gate_flows_suspects(gate *g, const char *source, long long change, const char *merge,
                                const char *dest, gate_flow_person *out, size_t max, size_t *n)
{
    KEEL_ASSERT(g != NULL && source != NULL && merge != NULL && dest != NULL && out != NULL &&
                n != NULL);
    *n = 0;
    static char failed[FAILED_MAX][GATE_JOB_CONFIG_MAX];
    static gate_search_row rows[SEARCHES_MAX];
    static char authors[SEARCHES_MAX][GATE_FLOW_PERSON_MAX];
    gate_flow_search found[SEARCHES_MAX];
    size_t nfailed = 0, nids = 0, nfound = 0;
    long long ids[SEARCHES_MAX];
    keel_status s = change > 0 ? failed_configs(g, change, failed, &nfailed) : KEEL_OK;
    if (keel_ok(s)) /* the searches of the source: its commits are what the merge brings */
        s = gate_store_search_recent(g->store, source, ids, SEARCHES_MAX, &nids);
    for (size_t i = 0; keel_ok(s) && i < nids; i++) {
        gate_search_row *r = &rows[nfound];
        s = gate_store_search_get(g->store, ids[i], r);
        if (!keel_ok(s) || r->culprit[0] == '\0')
            continue;
        bool in_merge = false, in_dest = true;
        keel_status a = gate_is_ancestor(g->repo, r->culprit, merge, &in_merge);
        if (keel_ok(a) && in_merge)
            a = gate_is_ancestor(g->repo, r->culprit, dest, &in_dest);
        if (keel_ok(a) && in_merge && !in_dest)
            a = author_of(g, r->culprit, authors[nfound], sizeof(authors[0]));
        bool brought = keel_ok(a) && in_merge && !in_dest;
        if (!keel_ok(a)) /* a culprit this repository cannot read: not one the merge brings */
            keel_status_ignore(a, "the search's culprit is not weighed");
        if (keel_ok(s)) {
            found[nfound] =
                (gate_flow_search){r->state, r->config, brought, brought ? authors[nfound] : ""};
            nfound++;
        }
    }
    if (!keel_ok(s))
        return s;
    const char *names[FAILED_MAX];
    for (size_t i = 0; i < nfailed; i++)
        names[i] = failed[i];
    *n = gate_flow_suspects(found, nfound, names, nfailed, out, max);
    return KEEL_OK;
}

/* The tier of the target's configuration `config` (its default when the tip has none). */
static unsigned tier_of(gate *g, const char *config)
{
    gate_config *own = NULL;
    const gate_config *cfg = gate_tip_config(g, &own);
    unsigned tier = GATE_TIER_DEFAULT;
    for (size_t i = 0; cfg != NULL && i < cfg->nconfigs; i++)
        if (strcmp(cfg->configs[i].name, config) == 0)
            tier = cfg->configs[i].tier;
    gate_config_free(own);
    return tier;
}

keel_status gate_flows_search_start(gate *g, long long change, const char *merge)
{
    KEEL_ASSERT(g != NULL && merge != NULL);
    long long id = 0;
    keel_status s = gate_store_search_flow(g->store, g->target, merge, &id);
    if (!keel_ok(s) || id != 0) /* started before a kill: not twice */
        return s;
    static char failed[FAILED_MAX][GATE_JOB_CONFIG_MAX];
    size_t nfailed = 0;
    s = failed_configs(g, change, failed, &nfailed);
    if (!keel_ok(s) || nfailed == 0) /* no configuration failed (cancelled): nothing to search */
        return s;
    void *mem = NULL;
    s = keel_heap_calloc(GATE_HEAP, GATE_SEARCH_RANGE_MAX + 1, GATE_OID_HEX, &mem);
    char(*range)[GATE_OID_HEX] = (char(*)[GATE_OID_HEX])mem;
    size_t count = 0;
    bool reached = false;
    if (keel_ok(s))
        s = gate_flow_search_range(g->repo, merge, range, GATE_SEARCH_RANGE_MAX + 1, &count,
                                   &reached);
    if (keel_ok(s) && !reached)
        gate_say(g,
                 "culprit: flow merge %.12s failed '%s': no search (not a merge, or it brings "
                 "more than %d commits)\n",
                 merge, failed[0], GATE_SEARCH_RANGE_MAX - 1);
    else if (keel_ok(s))
        s = gate_search_flow_start(g, failed[0], tier_of(g, failed[0]), range, count, &id);
    keel_heap_free(GATE_HEAP, mem);
    return s;
}

keel_status gate_flows_search_culprit(gate *g, const char *merge, gate_flow_person *out,
                                      bool *found)
{
    KEEL_ASSERT(g != NULL && merge != NULL && out != NULL && found != NULL);
    *found = false;
    long long id = 0;
    keel_status s = gate_store_search_flow(g->store, g->target, merge, &id);
    static gate_search_row row; /* large: the loop's thread only */
    if (keel_ok(s) && id != 0)
        s = gate_store_search_get(g->store, id, &row);
    if (!keel_ok(s) || id == 0 || strcmp(row.state, "verified") != 0)
        return s;
    s = author_of(g, row.culprit, out->who, sizeof(out->who));
    *found = keel_ok(s);
    return s;
}
