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

static void blob_hex(char out[GATE_FLOW_SHA_MAX], const git_index_entry *e)
{
    out[0] = '\0';
    if (e != NULL)
        (void)git_oid_tostr(out, GATE_FLOW_SHA_MAX, &e->id);
}

/*
 * The conflicts of `merged`: the first `max` as keys (the path and its three
 * blobs; a path too long is counted, not kept), *total all of them.
 */
static keel_status conflict_keys(gate_repo *r, git_index *merged, gate_flow_resolution *keys,
                                 size_t max, size_t *n, size_t *total)
{
    *n = 0;
    *total = 0;
    git_index_conflict_iterator *it = NULL;
    int rc = git_index_conflict_iterator_new(&it, merged);
    if (rc != 0)
        return gate_git_error(rc, "cannot list a flow merge's conflicts");
    const git_index_entry *anc, *ours, *theirs;
    while (git_index_conflict_next(&anc, &ours, &theirs, it) == 0) {
        const git_index_entry *e = ours != NULL ? ours : (theirs != NULL ? theirs : anc);
        if (e == NULL)
            continue;
        (*total)++;
        if (*n == max || strlen(e->path) >= GATE_FLOW_PATH_MAX)
            continue;
        gate_flow_resolution *k = &keys[(*n)++];
        memset(k, 0, sizeof(*k));
        (void)snprintf(k->path, sizeof(k->path), "%s", e->path);
        blob_hex(k->base, anc);
        blob_hex(k->ours, ours);
        blob_hex(k->theirs, theirs);
    }
    git_index_conflict_iterator_free(it);
    keel_status s = KEEL_OK;
    for (size_t i = 0; keel_ok(s) && i < *n; i++) /* each conflict's hunks (flowhunks.c) */
        s = gate_flow_hunks(r, &keys[i]);
    return s;
}

/* The paths of the conflicts (keys) into out->paths. */
static void keep_paths(gate_flowmerge *out, const gate_flow_resolution *keys, size_t nkeys,
                       size_t total)
{
    for (size_t i = 0; i < nkeys && out->npaths < GATE_FLOWMERGE_PATHS; i++) {
        size_t len = strnlen(keys[i].path, GATE_ORIGIN_PATH - 1);
        memcpy(out->paths[out->npaths], keys[i].path, len);
        out->paths[out->npaths++][len] = '\0';
    }
    out->total_paths = total;
}

/* The conflicting paths (keys), then who touched them on each side. */
static keel_status conflict(gate_repo *r, const gate_flow_resolution *keys, size_t nkeys,
                            size_t total, const git_oid *src, const git_oid *dst,
                            const git_oid *base, gate_flowmerge *out)
{
    keep_paths(out, keys, nkeys, total);
    keel_status s = side_authors(r, src, base, GATE_FLOWMERGE_SOURCE, false, out);
    if (keel_ok(s))
        s = side_authors(r, dst, base, GATE_FLOWMERGE_DEST, false, out);
    qsort(out->people, out->npeople, sizeof(out->people[0]), by_commits);
    alternate(out);
    return s;
}

static bool oid_ok(const char *hex, git_oid *id)
{
    return strlen(hex) == GATE_HEX - 1 && git_oid_fromstr(id, hex) == 0;
}

/* A conflict's sides exchanged: ours <-> theirs. */
static void swap_sides(gate_flow_resolution *k)
{
    char tmp[sizeof(k->ours)];
    memcpy(tmp, k->ours, sizeof(tmp));
    memcpy(k->ours, k->theirs, sizeof(tmp));
    memcpy(k->theirs, tmp, sizeof(tmp));
}

/* Is `hex` a blob id, and that blob in the repository? */
static bool has_blob(gate_repo *r, const char *hex)
{
    git_oid id;
    git_blob *b = NULL;
    bool yes = oid_ok(hex, &id) && git_blob_lookup(&b, r->repo, &id) == 0;
    git_blob_free(b);
    return yes;
}

/*
 * Every conflict of `merged` (keys) resolved from the records: applied to
 * the index, *applied true; one without a record (or whose blob is not in
 * the repository): the index untouched, *applied false.
 */
static keel_status recall_all(gate_repo *r, const gate_flow_recall *recall, git_index *merged,
                              gate_flow_resolution *keys, size_t nkeys, bool *applied)
{
    *applied = false;
    keel_status s = KEEL_OK;
    bool all = nkeys > 0;
    for (size_t i = 0; keel_ok(s) && all && i < nkeys; i++) {
        bool found = false;
        char
            now[GATE_FLOW_SHA_MAX]; /* this conflict's preimage (a lookup by hunks gives its own) */
        memcpy(now, keys[i].preimage, sizeof(now));
        s = recall->fn(recall->ctx, &keys[i], &found);
        if (keel_ok(s) && !found) { /* recorded from a merge made the other way round */
            swap_sides(&keys[i]);
            s = recall->fn(recall->ctx, &keys[i], &found);
            swap_sides(&keys[i]);
        }
        all = keel_ok(s) && found;
        if (all && keys[i].by_hunks) { /* the same hunks, the file changed elsewhere: merged */
            char out[GATE_HEX];
            bool clean = false;
            all = has_blob(r, keys[i].preimage) && has_blob(r, keys[i].blob);
            if (all)
                s = gate_flow_hunks_apply(r, keys[i].path, keys[i].preimage, now, keys[i].blob, out,
                                          &clean);
            all = keel_ok(s) && all && clean;
            if (all)
                memcpy(keys[i].blob, out, sizeof(keys[i].blob));
        } else if (all && keys[i].blob[0] != '\0') { /* the blob must still be here */
            all = has_blob(r, keys[i].blob);
        }
    }
    for (size_t i = 0; keel_ok(s) && all && i < nkeys; i++) {
        int rc = git_index_conflict_remove(merged, keys[i].path);
        if (rc == 0 && keys[i].blob[0] != '\0') {
            git_index_entry e;
            memset(&e, 0, sizeof(e));
            e.mode = keys[i].mode;
            e.path = keys[i].path;
            (void)oid_ok(keys[i].blob, &e.id);
            rc = git_index_add(merged, &e);
        }
        if (rc != 0)
            s = gate_git_error(rc, "cannot apply the recorded resolution of '%s'", keys[i].path);
    }
    *applied = keel_ok(s) && all;
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

int gate_flow_commit(gate_repo *r, git_index *merged, git_commit *ours, git_commit *theirs,
                     git_time_t when, int offset, const char *message, git_oid *id)
{
    git_oid tree_id;
    git_tree *tree = NULL;
    git_signature *sig = NULL;
    int rc = git_index_write_tree_to(&tree_id, merged, r->repo);
    if (rc == 0)
        rc = git_tree_lookup(&tree, r->repo, &tree_id);
    if (rc == 0)
        rc = git_signature_new(&sig, "keel-gate", "keel-gate@localhost", when, offset);
    if (rc == 0) {
        const git_commit *parents[2] = {ours, theirs};
        rc = git_commit_create(id, r->repo, NULL, sig, sig, NULL, message, tree, 2, parents);
    }
    git_signature_free(sig);
    git_tree_free(tree);
    return rc;
}

/* The merge commit of `theirs` (SRC) into `ours` (DST), its tree `merged`'s. */
static keel_status commit_merge(gate_repo *r, git_index *merged, git_commit *ours,
                                git_commit *theirs, const char *from, const char *to,
                                long long when, const gate_flowmerge *m, git_oid *id)
{
    char message[2 * GATE_BRANCH_LEN_MAX + 128 + GATE_FLOWMERGE_PATHS * 256];
    size_t len = (size_t)snprintf(message, sizeof(message),
                                  "Merge branch '%s' into %s\n\nKeel-Gate-Flow: %s -> %s\n", from,
                                  to, from, to);
    for (size_t i = 0; i < m->reused && i < m->npaths && len + 1 < sizeof(message); i++) {
        char shown[256]; /* a newline in a path would start a trailer of its own: as \x0a */
        gate_tree_name_show(m->paths[i], strlen(m->paths[i]), shown, sizeof(shown));
        len += (size_t)snprintf(message + len, sizeof(message) - len,
                                "Keel-Gate-Resolution: recorded, reused: %s\n", shown);
    }
    int rc = gate_flow_commit(r, merged, ours, theirs, (git_time_t)when, 0, message, id);
    if (rc != 0)
        return gate_git_error(rc, "cannot make the merge of '%s' into '%s'", from, to);
    return KEEL_OK;
}

keel_status gate_flow_merge(gate_repo *r, const char *from, const char *to, const char *flow_branch,
                            long long when, const gate_flow_recall *recall, gate_flowmerge *out)
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
        gate_flow_resolution keys[GATE_FLOWMERGE_PATHS];
        size_t nkeys = 0, total = 0;
        bool recalled = false;
        if (rc != 0)
            s = gate_git_error(rc, "cannot merge '%s' into '%s'", from, to);
        else if (git_index_has_conflicts(merged))
            s = conflict_keys(r, merged, keys, GATE_FLOWMERGE_PATHS, &nkeys, &total);
        if (keel_ok(s) && rc == 0 && recall != NULL && nkeys > 0 && nkeys == total)
            s = recall_all(r, recall, merged, keys, nkeys, &recalled);
        if (keel_ok(s) && recalled) {
            keep_paths(out, keys, nkeys, total);
            out->reused = nkeys;
        }
        if (keel_ok(s) && git_index_has_conflicts(merged)) {
            out->result = GATE_FLOWMERGE_CONFLICT;
            s = conflict(r, keys, nkeys, total, &src, &dst, has_base ? &base : NULL, out);
        } else if (keel_ok(s = same_tree(r, merged, ours, &rc)) && rc == 1) {
            out->result = GATE_FLOWMERGE_NOTHING_NEW; /* it would change none of DST's files */
        } else if (keel_ok(s)) {
            out->result = GATE_FLOWMERGE_MADE;
            s = commit_merge(r, merged, ours, theirs, from, to, when, out, &made);
            git_reference *ref = NULL;
            char refname[GATE_BRANCH_LEN_MAX + 16];
            (void)snprintf(refname, sizeof(refname), "refs/heads/%s", flow_branch);
            rc = keel_ok(s) ? git_reference_create(&ref, r->repo, refname, &made, 1,
                                                   "keel-gate: flow merge")
                            : 0;
            if (rc != 0)
                s = gate_git_error(rc, "cannot point '%s' at the flow's merge", flow_branch);
            git_reference_free(ref);
            if (keel_ok(s) && r->url != NULL) /* a remote's: its branch, as a change is */
                s = gate_remote_put_branch(r->repo, r->url, flow_branch, &made);
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
    git_revwalk *w = NULL;
    int rc = keel_ok(s) ? git_revwalk_new(&w, r->repo) : 0;
    if (rc == 0 && keel_ok(s))
        rc = git_revwalk_push(w, &src);
    if (rc == 0 && keel_ok(s))
        rc = git_revwalk_hide(w, &dst);
    git_oid id;
    for (unsigned k = 0; rc == 0 && keel_ok(s) && k < GATE_FLOWMERGE_WALK; k++) {
        if (git_revwalk_next(&id, w) != 0)
            break;
        git_commit *c = NULL;
        rc = git_commit_lookup(&c, r->repo, &id);
        if (rc == 0 && git_commit_parentcount(c) <= 1)
            (*n)++;
        git_commit_free(c);
    }
    if (rc != 0)
        s = gate_git_error(rc, "cannot count the commits of %.12s not in %.12s", source, dest);
    git_revwalk_free(w);
    return s;
}

keel_status gate_flow_resolutions(gate_repo *r, const char *commit, gate_flow_resolution *out,
                                  size_t max, size_t *n)
{
    KEEL_ASSERT(r != NULL && commit != NULL && (out != NULL || max == 0) && n != NULL);
    *n = 0;
    git_oid id;
    git_commit *c = NULL, *ours = NULL, *theirs = NULL;
    git_tree *tree = NULL;
    git_index *merged = NULL;
    keel_status s = gate_oid_parse(commit, &id);
    int rc = keel_ok(s) ? git_commit_lookup(&c, r->repo, &id) : 0;
    if (rc == 0 && keel_ok(s) && git_commit_parentcount(c) == 2) {
        rc = git_commit_parent(&ours, c, 0);
        if (rc == 0)
            rc = git_commit_parent(&theirs, c, 1);
        if (rc == 0)
            rc = git_merge_commits(&merged, r->repo, ours, theirs, NULL);
        if (rc == 0)
            rc = git_commit_tree(&tree, c);
    }
    if (rc != 0)
        s = gate_git_error(rc, "cannot read the resolution %.12s", commit);
    size_t total = 0;
    if (keel_ok(s) && merged != NULL && git_index_has_conflicts(merged))
        s = conflict_keys(r, merged, out, max, n, &total);
    for (size_t i = 0; keel_ok(s) && i < *n; i++) {
        git_tree_entry *e = NULL;
        rc = git_tree_entry_bypath(&e, tree, out[i].path);
        if (rc == 0) {
            (void)git_oid_tostr(out[i].blob, sizeof(out[i].blob), git_tree_entry_id(e));
            out[i].mode = (unsigned)git_tree_entry_filemode(e);
        } else if (rc != GIT_ENOTFOUND) {
            s = gate_git_error(rc, "cannot read '%s' in %.12s", out[i].path, commit);
        }
        git_tree_entry_free(e);
    }
    if (!keel_ok(s))
        *n = 0;
    git_index_free(merged);
    git_tree_free(tree);
    git_commit_free(theirs);
    git_commit_free(ours);
    git_commit_free(c);
    return s;
}
