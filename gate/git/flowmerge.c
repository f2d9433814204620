/*
 * flowmerge.c - a branch flow's merge (flowmerge.h): a real merge commit of
 * SRC into DST on the flow branch, "nothing new", or the conflict with its
 * paths and the authors on each side who touched them.
 */
#define _GNU_SOURCE 1
#include "flowmerge.h"

#include "git_int.h"
#include "remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The commit a branch points at. */
static keel_status branch_commit(gate_repo *r, const char *branch, git_oid *id, git_commit **c)
{
    char hex[GATE_HEX];
    keel_status s = gate_branch_head(r, branch, hex);
    if (keel_ok(s))
        s = gate_oid_parse(hex, id);
    int rc = keel_ok(s) ? git_commit_lookup(c, r->repo, id) : 0;
    if (rc != 0)
        s = gate_git_error(rc, "cannot read the tip of branch '%s'", branch);
    return s;
}

/* Does `tree` differ from `parent` (NULL: an empty tree) at `path`? */
static keel_status touches(git_tree *tree, git_tree *parent, const char *path, bool *yes)
{
    git_tree_entry *a = NULL, *b = NULL;
    int ra = git_tree_entry_bypath(&a, tree, path);
    int rb = parent != NULL ? git_tree_entry_bypath(&b, parent, path) : GIT_ENOTFOUND;
    keel_status s = KEEL_OK;
    if ((ra != 0 && ra != GIT_ENOTFOUND) || (rb != 0 && rb != GIT_ENOTFOUND))
        s = gate_git_error(ra != 0 && ra != GIT_ENOTFOUND ? ra : rb, "cannot read '%s'", path);
    else if (a == NULL || b == NULL)
        *yes = a != b;
    else
        *yes = !git_oid_equal(git_tree_entry_id(a), git_tree_entry_id(b)) ||
               git_tree_entry_filemode(a) != git_tree_entry_filemode(b);
    git_tree_entry_free(a);
    git_tree_entry_free(b);
    return s;
}

static void add_person(gate_flowmerge *out, const git_signature *author, unsigned side)
{
    char who[sizeof(out->people[0].who)];
    (void)snprintf(who, sizeof(who), "%s <%s>", author->name, author->email);
    for (size_t i = 0; i < out->npeople; i++)
        if (strcmp(out->people[i].who, who) == 0) {
            out->people[i].commits++;
            out->people[i].sides |= side;
            return;
        }
    if (out->npeople == GATE_FLOWMERGE_PEOPLE)
        return; /* the walk is newest first: the most recent authors are kept */
    gate_flowmerge_person *p = &out->people[out->npeople++];
    memcpy(p->who, who, sizeof(p->who));
    p->commits = 1;
    p->sides = side;
}

/*
 * The authors of the commits from `tip` back to `base` (not included)
 * touching a conflicting path (`any`: every commit's).
 */
static keel_status side_authors(gate_repo *r, const git_oid *tip, const git_oid *base,
                                unsigned side, bool any, gate_flowmerge *out)
{
    git_revwalk *w = NULL;
    int rc = git_revwalk_new(&w, r->repo);
    if (rc == 0)
        rc = git_revwalk_push(w, tip);
    if (rc == 0 && base != NULL)
        rc = git_revwalk_hide(w, base);
    keel_status s = rc == 0 ? KEEL_OK : gate_git_error(rc, "cannot walk the history of a flow");
    git_oid id;
    for (unsigned k = 0; keel_ok(s) && k < GATE_FLOWMERGE_WALK && git_revwalk_next(&id, w) == 0;
         k++) {
        git_commit *c = NULL, *p = NULL;
        git_tree *t = NULL, *pt = NULL;
        rc = git_commit_lookup(&c, r->repo, &id);
        if (rc == 0 && git_commit_parentcount(c) > 1) { /* a merge: not anyone's own edit */
            git_commit_free(c);
            continue;
        }
        if (rc == 0)
            rc = git_commit_tree(&t, c);
        if (rc == 0 && git_commit_parentcount(c) == 1 && (rc = git_commit_parent(&p, c, 0)) == 0)
            rc = git_commit_tree(&pt, p);
        if (rc != 0)
            s = gate_git_error(rc, "cannot read commit %.12s", git_oid_tostr_s(&id));
        bool hit = any;
        for (size_t i = 0; keel_ok(s) && !hit && i < out->npaths; i++)
            s = touches(t, pt, out->paths[i], &hit);
        if (keel_ok(s) && hit)
            add_person(out, git_commit_author(c), side);
        git_tree_free(pt);
        git_tree_free(t);
        git_commit_free(p);
        git_commit_free(c);
    }
    git_revwalk_free(w);
    return s;
}

static int by_commits(const void *a, const void *b)
{
    const gate_flowmerge_person *x = (const gate_flowmerge_person *)a;
    const gate_flowmerge_person *y = (const gate_flowmerge_person *)b;
    if (x->commits != y->commits)
        return x->commits > y->commits ? -1 : 1;
    return strcmp(x->who, y->who);
}

/*
 * The people sorted by commits, taken in turn from the source's side and the
 * destination's (the next of the other side when one has no one left), so a
 * cut to the first few (remind-max) still names both sides.
 */
static void alternate(gate_flowmerge *out)
{
    gate_flowmerge_person sorted[GATE_FLOWMERGE_PEOPLE];
    bool taken[GATE_FLOWMERGE_PEOPLE] = {false};
    size_t n = out->npeople;
    memcpy(sorted, out->people, n * sizeof(sorted[0]));
    for (size_t k = 0; k < n; k++) {
        unsigned want = k % 2 == 0 ? GATE_FLOWMERGE_SOURCE : GATE_FLOWMERGE_DEST;
        size_t pick = n;
        for (size_t i = 0; i < n && pick == n; i++)
            if (!taken[i] && (sorted[i].sides & want) != 0)
                pick = i;
        for (size_t i = 0; i < n && pick == n; i++)
            if (!taken[i])
                pick = i;
        taken[pick] = true;
        out->people[k] = sorted[pick];
    }
}

/* The conflicting paths of `merged`, then who touched them on each side. */
static keel_status conflict(gate_repo *r, git_index *merged, const git_oid *src, const git_oid *dst,
                            const git_oid *base, gate_flowmerge *out)
{
    git_index_conflict_iterator *it = NULL;
    int rc = git_index_conflict_iterator_new(&it, merged);
    if (rc != 0)
        return gate_git_error(rc, "cannot list a flow merge's conflicts");
    const git_index_entry *anc, *ours, *theirs;
    while (git_index_conflict_next(&anc, &ours, &theirs, it) == 0) {
        const git_index_entry *e = ours != NULL ? ours : (theirs != NULL ? theirs : anc);
        if (e == NULL)
            continue;
        if (out->npaths < GATE_FLOWMERGE_PATHS && strlen(e->path) < GATE_ORIGIN_PATH)
            (void)snprintf(out->paths[out->npaths++], GATE_ORIGIN_PATH, "%s", e->path);
        out->total_paths++;
    }
    git_index_conflict_iterator_free(it);
    keel_status s = side_authors(r, src, base, GATE_FLOWMERGE_SOURCE, false, out);
    if (keel_ok(s))
        s = side_authors(r, dst, base, GATE_FLOWMERGE_DEST, false, out);
    qsort(out->people, out->npeople, sizeof(out->people[0]), by_commits);
    alternate(out);
    return s;
}

/* *same: 1 when the tree of `merged` is the tree of `ours` (the merge would change nothing). */
static keel_status same_tree(gate_repo *r, git_index *merged, git_commit *ours, int *same)
{
    git_oid tree_id;
    int rc = git_index_write_tree_to(&tree_id, merged, r->repo);
    if (rc != 0)
        return gate_git_error(rc, "cannot write a flow merge's tree");
    *same = git_oid_equal(&tree_id, git_commit_tree_id(ours)) ? 1 : 0;
    return KEEL_OK;
}

/* The merge commit of `theirs` (SRC) into `ours` (DST), its tree `merged`'s. */
static keel_status commit_merge(gate_repo *r, git_index *merged, git_commit *ours,
                                git_commit *theirs, const char *from, const char *to,
                                long long when, git_oid *id)
{
    git_oid tree_id;
    git_tree *tree = NULL;
    git_signature *sig = NULL;
    keel_status s = KEEL_OK;
    int rc = git_index_write_tree_to(&tree_id, merged, r->repo);
    if (rc == 0)
        rc = git_tree_lookup(&tree, r->repo, &tree_id);
    if (rc == 0)
        rc = git_signature_new(&sig, "keel-gate", "keel-gate@localhost", (git_time_t)when, 0);
    if (rc == 0) {
        const git_commit *parents[2] = {ours, theirs};
        char message[2 * GATE_BRANCH_LEN_MAX + 128];
        (void)snprintf(message, sizeof(message),
                       "Merge branch '%s' into %s\n\nKeel-Gate-Flow: %s -> %s\n", from, to, from,
                       to);
        rc = git_commit_create(id, r->repo, NULL, sig, sig, NULL, message, tree, 2, parents);
    }
    if (rc != 0)
        s = gate_git_error(rc, "cannot make the merge of '%s' into '%s'", from, to);
    git_signature_free(sig);
    git_tree_free(tree);
    return s;
}

keel_status gate_flow_merge(gate_repo *r, const char *from, const char *to, const char *flow_branch,
                            long long when, gate_flowmerge *out)
{
    KEEL_ASSERT(r != NULL && from != NULL && to != NULL && flow_branch != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    keel_status s = gate_branch_check(flow_branch);
    git_oid src, dst, base, made;
    git_commit *theirs = NULL, *ours = NULL;
    git_index *merged = NULL;
    if (keel_ok(s))
        s = branch_commit(r, from, &src, &theirs);
    if (keel_ok(s))
        s = branch_commit(r, to, &dst, &ours);
    bool has_base = false;
    if (keel_ok(s)) {
        (void)git_oid_tostr(out->source, sizeof(out->source), &src);
        (void)git_oid_tostr(out->dest, sizeof(out->dest), &dst);
        int rc = git_merge_base(&base, r->repo, &src, &dst);
        has_base = rc == 0;
        if (rc != 0 && rc != GIT_ENOTFOUND)
            s = gate_git_error(rc, "cannot find where '%s' and '%s' meet", from, to);
        else if (has_base)
            (void)git_oid_tostr(out->base, sizeof(out->base), &base);
    }
    if (keel_ok(s) && has_base && git_oid_equal(&base, &src)) {
        out->result = GATE_FLOWMERGE_NOTHING_NEW; /* SRC is in DST already */
    } else if (keel_ok(s)) {
        int rc = git_merge_commits(&merged, r->repo, ours, theirs, NULL);
        if (rc != 0)
            s = gate_git_error(rc, "cannot merge '%s' into '%s'", from, to);
        else if (git_index_has_conflicts(merged)) {
            out->result = GATE_FLOWMERGE_CONFLICT;
            s = conflict(r, merged, &src, &dst, has_base ? &base : NULL, out);
        } else if (keel_ok(s = same_tree(r, merged, ours, &rc)) && rc == 1) {
            out->result = GATE_FLOWMERGE_NOTHING_NEW; /* it would change none of DST's files */
        } else if (keel_ok(s)) {
            out->result = GATE_FLOWMERGE_MADE;
            s = commit_merge(r, merged, ours, theirs, from, to, when, &made);
            git_reference *ref = NULL;
            char refname[GATE_BRANCH_LEN_MAX + 16];
            (void)snprintf(refname, sizeof(refname), "refs/heads/%s", flow_branch);
            rc = keel_ok(s) ? git_reference_create(&ref, r->repo, refname, &made, 1,
                                                   "keel-gate: flow merge")
                            : 0;
            if (rc != 0)
                s = gate_git_error(rc, "cannot point '%s' at the flow's merge", flow_branch);
            git_reference_free(ref);
            if (keel_ok(s))
                (void)git_oid_tostr(out->merge, sizeof(out->merge), &made);
        }
    }
    git_index_free(merged);
    git_commit_free(ours);
    git_commit_free(theirs);
    return keel_ok(s) ? KEEL_OK : KEEL_CONTEXT(s, "flow '%s' -> '%s'", from, to);
}

keel_status gate_flow_resolved(gate_repo *r, const char *flow_branch, const char *source,
                               const char *dest, const char *made, bool *yes, char commit[GATE_HEX])
{
    KEEL_ASSERT(r != NULL && flow_branch != NULL && source != NULL && dest != NULL && yes != NULL &&
                commit != NULL);
    *yes = false;
    commit[0] = '\0';
    char tip[GATE_HEX];
    keel_status s = gate_branch_head(r, flow_branch, tip);
    if (KEEL_IS(s, KEEL_E_NOTFOUND)) { /* no flow branch: nothing pushed */
        keel_status_free(s);
        return KEEL_OK;
    }
    if (!keel_ok(s) || (made != NULL && strcmp(tip, made) == 0))
        return s;
    git_oid t, want[2];
    s = gate_oid_parse(tip, &t);
    if (keel_ok(s))
        s = gate_oid_parse(source, &want[0]);
    if (keel_ok(s))
        s = gate_oid_parse(dest, &want[1]);
    bool all = keel_ok(s);
    for (size_t i = 0; keel_ok(s) && all && i < 2; i++) {
        if (git_oid_equal(&t, &want[i])) {
            all = false; /* a tip itself is no merge of both */
            continue;
        }
        int rc = git_graph_descendant_of(r->repo, &t, &want[i]);
        if (rc < 0)
            s = gate_git_error(rc, "cannot read the history of '%s'", flow_branch);
        all = rc == 1;
    }
    if (keel_ok(s) && all) {
        *yes = true;
        (void)snprintf(commit, GATE_HEX, "%s", tip);
    }
    return s;
}

keel_status gate_flow_brought(gate_repo *r, const char *merge, gate_flowmerge *out)
{
    KEEL_ASSERT(r != NULL && merge != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    git_oid id, base;
    git_commit *c = NULL;
    keel_status s = gate_oid_parse(merge, &id);
    int rc = keel_ok(s) ? git_commit_lookup(&c, r->repo, &id) : 0;
    if (rc != 0)
        s = gate_git_error(rc, "cannot read merge %.12s", merge);
    if (keel_ok(s) && git_commit_parentcount(c) == 2) {
        const git_oid *dst = git_commit_parent_id(c, 0), *src = git_commit_parent_id(c, 1);
        (void)git_oid_tostr(out->dest, sizeof(out->dest), dst);
        (void)git_oid_tostr(out->source, sizeof(out->source), src);
        rc = git_merge_base(&base, r->repo, src, dst);
        if (rc != 0 && rc != GIT_ENOTFOUND)
            s = gate_git_error(rc, "cannot find where the sides of %.12s meet", merge);
        else
            s = side_authors(r, src, rc == 0 ? &base : NULL, GATE_FLOWMERGE_SOURCE, true, out);
        qsort(out->people, out->npeople, sizeof(out->people[0]), by_commits);
    }
    git_commit_free(c);
    return s;
}

keel_status gate_flow_waiting(gate_repo *r, const char *source, const char *dest, size_t *n)
{
    KEEL_ASSERT(r != NULL && source != NULL && dest != NULL && n != NULL);
    *n = 0;
    git_oid src, dst;
    keel_status s = gate_oid_parse(source, &src);
    if (keel_ok(s))
        s = gate_oid_parse(dest, &dst);
    size_t ahead = 0, behind = 0;
    int rc = keel_ok(s) ? git_graph_ahead_behind(&ahead, &behind, r->repo, &src, &dst) : 0;
    if (rc != 0)
        s = gate_git_error(rc, "cannot count the commits of %.12s not in %.12s", source, dest);
    if (keel_ok(s))
        *n = ahead;
    return s;
}
