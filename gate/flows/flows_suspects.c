/*
 * flows_suspects.c - who is reminded of a flow's merge that failed its tests
 * (flows_turn.h: gate_flows_suspects): the culprit searches' culprits among
 * the commits the merge brings, read from the store and the repository; the
 * choice is flow.c's (gate_flow_suspects, pure).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "flows_turn.h"

#include <stdio.h>
#include <string.h>

#include "flow.h"
#include "git_int.h"
#include "remote.h"
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
