/*
 * flowsearch.c - the range a rejected flow merge's culprit search walks
 * (flowmerge.h: gate_flow_search_range): the destination's tip, its merges
 * with each commit the flow's merge brings, and the merge.
 */
#define _GNU_SOURCE 1
#include "flowmerge.h"

#include "git_int.h"
#include "remote.h"

#include <stdio.h>
#include <string.h>

/*
 * D merged with `cand` as the flow's merge is made: *id, or *clean false
 * (a conflict: no commit).  Author and committer keel-gate at `when` (the
 * flow merge's time): the same inputs give the same id.
 */
static keel_status merge_onto(gate_repo *r, git_commit *d, const git_oid *cand, git_time_t when,
                              int offset, git_oid *id, bool *clean)
{
    git_commit *c = NULL;
    git_index *merged = NULL;
    *clean = false;
    int rc = git_commit_lookup(&c, r->repo, cand);
    if (rc == 0)
        rc = git_merge_commits(&merged, r->repo, d, c, NULL);
    if (rc == 0 && !git_index_has_conflicts(merged)) {
        *clean = true;
        char dh[GATE_HEX], ch[GATE_HEX], message[256];
        (void)git_oid_tostr(dh, sizeof(dh), git_commit_id(d));
        (void)git_oid_tostr(ch, sizeof(ch), cand);
        (void)snprintf(message, sizeof(message),
                       "Flow culprit search: %.12s on %.12s\n\nKeel-Gate-Flow-Search: %s into %s\n",
                       ch, dh, ch, dh);
        rc = gate_flow_commit(r, merged, d, c, when, offset, message, id);
    }
    keel_status s = KEEL_OK;
    if (rc != 0) {
        char ch[GATE_HEX];
        (void)git_oid_tostr(ch, sizeof(ch), cand);
        s = gate_git_error(rc, "cannot merge %.12s for a flow's culprit search", ch);
    }
    git_index_free(merged);
    git_commit_free(c);
    return s;
}

keel_status gate_flow_search_range(gate_repo *r, const char *merge, char (*out)[GATE_HEX],
                                   size_t max, size_t *count, bool *reached)
{
    KEEL_ASSERT(r != NULL && merge != NULL && out != NULL && max >= 2 && count != NULL &&
                reached != NULL);
    *count = 0;
    *reached = false;
    git_oid id;
    git_commit *m = NULL, *d = NULL;
    keel_status s = gate_oid_parse(merge, &id);
    int rc = keel_ok(s) ? git_commit_lookup(&m, r->repo, &id) : 0;
    if (rc == 0 && keel_ok(s) && git_commit_parentcount(m) == 2)
        rc = git_commit_parent(&d, m, 0);
    if (rc != 0)
        s = gate_git_error(rc, "cannot read merge %.12s", merge);
    /* S's first-parent line back to what D holds, newest first, into out[1..] */
    size_t n = 0;
    git_oid at = d != NULL ? *git_commit_parent_id(m, 1) : id;
    while (keel_ok(s) && d != NULL && !*reached && n + 2 < max) {
        rc = git_oid_equal(&at, git_commit_id(d))
                 ? 1
                 : git_graph_descendant_of(r->repo, git_commit_id(d), &at);
        if (rc == 1) {
            *reached = true;
            break;
        }
        git_commit *c = NULL;
        if (rc == 0)
            rc = git_commit_lookup(&c, r->repo, &at);
        if (rc < 0) {
            s = gate_git_error(rc, "cannot walk the commits merge %.12s brings", merge);
            break;
        }
        (void)git_oid_tostr(out[1 + n++], GATE_HEX, &at);
        *reached = git_commit_parentcount(c) == 0; /* the root: all of it is brought */
        if (!*reached)
            at = *git_commit_parent_id(c, 0);
        git_commit_free(c);
    }
    /* oldest first; each made onto D but the newest (the merge itself stands for it) */
    size_t k = 0;
    const git_signature *when = m != NULL ? git_commit_committer(m) : NULL;
    for (size_t i = 0; i < n / 2; i++) { /* oldest first: each is written at or before it */
        char t[GATE_HEX];
        memcpy(t, out[1 + i], sizeof(t));
        memcpy(out[1 + i], out[n - i], sizeof(t));
        memcpy(out[n - i], t, sizeof(t));
    }
    for (size_t i = 1; keel_ok(s) && *reached && when != NULL && i < n; i++) {
        git_oid cand, made;
        bool clean = false;
        s = gate_oid_parse(out[i], &cand);
        if (keel_ok(s))
            s = merge_onto(r, d, &cand, when->when.time, when->when.offset, &made, &clean);
        if (keel_ok(s) && clean)
            (void)git_oid_tostr(out[1 + k++], GATE_HEX, &made);
    }
    if (keel_ok(s) && *reached && n > 0) {
        (void)git_oid_tostr(out[0], GATE_HEX, git_commit_id(d));
        (void)snprintf(out[1 + k], GATE_HEX, "%s", merge);
        *count = k + 2;
    } else {
        *reached = false;
    }
    git_commit_free(d);
    git_commit_free(m);
    return s;
}
