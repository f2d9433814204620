/*
 * revert.c - the git side of an automatic backout (revert.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_git"
#include "revert.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "backout_policy.h"
#include "git_int.h"
#include "heaps.h"
#include "remote.h"

#define GIT_HEAP KEEL_MODULE_REF(gate_git)

static keel_status lookup(gate_repo *r, const char *hex, const char *what, git_commit **out)
{
    git_oid oid;
    keel_status s = gate_oid_parse(hex, &oid);
    if (!keel_ok(s))
        return s;
    int rc = git_commit_lookup(out, r->repo, &oid);
    if (rc == GIT_ENOTFOUND)
        return KEEL_ERR(KEEL_E_NOTFOUND, "%s %.12s is not a commit of the repository", what, hex);
    return rc == 0 ? KEEL_OK : gate_git_error(rc, "cannot read %s %.12s", what, hex);
}

keel_status gate_revert_message(gate_repo *r, const char *commit, char *buf, size_t size)
{
    KEEL_ASSERT(r != NULL && commit != NULL && buf != NULL && size > 0);
    git_commit *c = NULL;
    keel_status s = lookup(r, commit, "commit", &c);
    if (keel_ok(s)) {
        const char *m = git_commit_message(c);
        (void)snprintf(buf, size, "%s", m != NULL ? m : "");
    }
    git_commit_free(c);
    return s;
}

/* Which parent (1-based) of merge c is `parent` ("": the first); 0 when none. */
static unsigned mainline_of(const git_commit *c, const char *parent)
{
    unsigned n = git_commit_parentcount(c);
    if (n < 2)
        return 0;
    if (parent == NULL || parent[0] == '\0')
        return 1;
    for (unsigned i = 0; i < n; i++) {
        char hex[GATE_HEX];
        git_oid_tostr(hex, sizeof(hex), git_commit_parent_id(c, i));
        if (strcmp(hex, parent) == 0)
            return i + 1;
    }
    return 0;
}

/* Lines [first, last] of a hunk's side (start, count); no lines: between start and start + 1. */
static void span(int start, int count, int *first, int *last)
{
    *first = start;
    *last = count > 0 ? start + count - 1 : start + 1;
}

/*
 * Does a later change (hunk `l` of the diff culprit -> head, its old side in
 * the culprit's lines) come within `lines` lines of a change the culprit made
 * (the new sides of `own`'s hunks, in the same lines)?  *line: the first
 * such later line.
 */
static keel_status near_own(git_patch *own, const git_diff_hunk *l, int lines, bool *near,
                            int *line)
{
    int lf = 0, ll = 0;
    span(l->old_start, l->old_lines, &lf, &ll);
    size_t n = git_patch_num_hunks(own);
    for (size_t i = 0; i < n && !*near; i++) {
        const git_diff_hunk *h = NULL;
        int rc = git_patch_get_hunk(&h, NULL, own, i);
        if (rc != 0)
            return gate_git_error(rc, "cannot read the culprit's changes");
        int of = 0, ol = 0;
        span(h->new_start, h->new_lines, &of, &ol);
        *near = lf <= ol + lines && ll >= of - lines;
        *line = lf;
    }
    return KEEL_OK;
}

/*
 * Did a later commit change lines of a file the culprit changed (against its
 * parent `mainline`) within `lines` lines of the culprit's own
 * changes?  Compared between the culprit's tree and head's, without context
 * lines.  A file since deleted, renamed, of another type, or binary on
 * either side counts as touched (no lines to compare).
 */
static keel_status lines_touched(git_diff *own, git_diff *later, int lines, gate_revert_facts *out)
{
    keel_status s = KEEL_OK;
    size_t nl = git_diff_num_deltas(later), no = git_diff_num_deltas(own);
    for (size_t k = 0; keel_ok(s) && k < nl && !out->later_touched; k++) {
        const git_diff_delta *d = git_diff_get_delta(later, k);
        const char *path = d->old_file.path;
        size_t j = 0;
        while (j < no && strcmp(git_diff_get_delta(own, j)->new_file.path, path) != 0)
            j++;
        git_patch *lp = NULL, *op = NULL;
        int rc = git_patch_from_diff(&lp, later, k);
        if (rc == 0 && j < no)
            rc = git_patch_from_diff(&op, own, j);
        if (rc != 0)
            s = gate_git_error(rc, "cannot compare the culprit's lines with the target's head");
        bool whole = d->status != GIT_DELTA_MODIFIED || lp == NULL || op == NULL ||
                     (d->flags & GIT_DIFF_FLAG_BINARY) != 0 ||
                     (git_diff_get_delta(own, j)->flags & GIT_DIFF_FLAG_BINARY) != 0;
        int line = 0;
        if (keel_ok(s) && whole) {
            out->later_touched = true;
        } else if (keel_ok(s)) {
            size_t nh = git_patch_num_hunks(lp);
            for (size_t i = 0; keel_ok(s) && i < nh && !out->later_touched; i++) {
                const git_diff_hunk *h = NULL;
                rc = git_patch_get_hunk(&h, NULL, lp, i);
                s = rc == 0 ? near_own(op, h, lines, &out->later_touched, &line)
                            : gate_git_error(rc, "cannot read the later changes");
            }
        }
        if (keel_ok(s) && out->later_touched && whole)
            (void)snprintf(out->touched, sizeof(out->touched), "%s", path);
        else if (keel_ok(s) && out->later_touched)
            (void)snprintf(out->touched, sizeof(out->touched), "%s line %d", path, line);
        git_patch_free(op);
        git_patch_free(lp);
    }
    return s;
}

/*
 * Did a later commit (between the culprit and head) change lines near those
 * the culprit changed?  Then it may depend on the culprit (lines_touched).
 */
static keel_status touched_later(gate_repo *r, git_commit *culprit, unsigned mainline,
                                 git_commit *head, int lines, gate_revert_facts *out)
{
    git_commit *parent = NULL;
    git_tree *before = NULL, *after = NULL, *now = NULL;
    git_diff *own = NULL, *later = NULL;
    git_diff_options o;
    int rc = git_diff_options_init(&o, GIT_DIFF_OPTIONS_VERSION);
    o.context_lines = 0; /* the changed lines themselves */
    if (rc == 0)
        rc = git_commit_parent(&parent, culprit, mainline > 0 ? mainline - 1 : 0);
    if (rc == 0)
        rc = git_commit_tree(&before, parent);
    if (rc == 0)
        rc = git_commit_tree(&after, culprit);
    if (rc == 0)
        rc = git_commit_tree(&now, head);
    if (rc == 0)
        rc = git_diff_tree_to_tree(&own, r->repo, before, after, &o);
    keel_status s = rc == 0 ? KEEL_OK : gate_git_error(rc, "cannot read what the culprit changed");
    size_t n = keel_ok(s) ? git_diff_num_deltas(own) : 0;
    void *mem = NULL;
    if (keel_ok(s) && n > 0)
        s = keel_heap_calloc(GIT_HEAP, n, sizeof(char *), &mem);
    if (keel_ok(s) && n > 0) {
        char **paths = (char **)mem;
        for (size_t i = 0; i < n; i++) {
            const git_diff_delta *d = git_diff_get_delta(own, i);
            const char *path = d->new_file.path != NULL ? d->new_file.path : d->old_file.path;
            memcpy(&paths[i], &path, sizeof(path)); /* git_strarray's are not const: only read */
        }
        o.pathspec.strings = paths;
        o.pathspec.count = n;
        o.flags |= GIT_DIFF_DISABLE_PATHSPEC_MATCH;
        rc = git_diff_tree_to_tree(&later, r->repo, after, now, &o);
        if (rc != 0)
            s = gate_git_error(rc, "cannot compare the culprit's files with the target's head");
        if (keel_ok(s))
            s = lines_touched(own, later, lines, out);
    }
    keel_heap_free(GIT_HEAP, mem);
    git_diff_free(later);
    git_diff_free(own);
    git_tree_free(now);
    git_tree_free(after);
    git_tree_free(before);
    git_commit_free(parent);
    return s;
}

/* The revert's index of culprit onto head: *clean, *empty (its tree is head's). */
static keel_status revert_tree(gate_repo *r, git_commit *culprit, unsigned mainline,
                               git_commit *head, git_oid *tree, bool *clean, bool *empty)
{
    git_index *index = NULL;
    *clean = *empty = false;
    int rc = git_revert_commit(&index, r->repo, culprit, head, mainline, NULL);
    if (rc != 0)
        return gate_git_error(rc, "cannot revert %.12s", git_oid_tostr_s(git_commit_id(culprit)));
    keel_status s = KEEL_OK;
    if (!git_index_has_conflicts(index)) {
        rc = git_index_write_tree_to(tree, index, r->repo);
        if (rc != 0)
            s = gate_git_error(rc, "cannot write the revert's tree");
        *clean = keel_ok(s);
        *empty = keel_ok(s) && git_oid_equal(tree, git_commit_tree_id(head));
    }
    git_index_free(index);
    return s;
}

keel_status gate_revert_examine(gate_repo *r, const char *culprit, const char *parent,
                                const char *head, unsigned near, gate_revert_facts *out)
{
    KEEL_ASSERT(r != NULL && culprit != NULL && head != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    bool in = false;
    keel_status s = gate_is_ancestor(r, culprit, head, &in);
    if (keel_ok(s) && !in)
        return KEEL_ERR(KEEL_E_NOTFOUND,
                        "culprit %.12s is not in the history of the target (%.12s)", culprit, head);
    git_commit *c = NULL, *h = NULL;
    if (keel_ok(s))
        s = lookup(r, culprit, "culprit", &c);
    if (keel_ok(s))
        s = lookup(r, head, "the target's head", &h);
    if (keel_ok(s)) {
        const char *m = git_commit_message(c);
        gate_backout_policy_message(m != NULL ? m : "", &out->is_revert, &out->no_auto_revert);
        out->time = (long long)git_commit_time(c);
        out->mainline = mainline_of(c, parent);
        if (git_commit_parentcount(c) == 0)
            s = KEEL_ERR(KEEL_E_INVAL, "culprit %.12s is a root commit: nothing to revert against",
                         culprit);
        else if (git_commit_parentcount(c) > 1 && out->mainline == 0)
            s = KEEL_ERR(KEEL_E_INVAL, "%.12s is not a parent of the merge %.12s", parent, culprit);
    }
    git_oid tree;
    bool clean = false, empty = false;
    if (keel_ok(s))
        s = revert_tree(r, c, out->mainline, h, &tree, &clean, &empty);
    if (keel_ok(s)) {
        out->applies = clean && !empty;
        out->undone = clean && empty;
        if (!clean)
            (void)snprintf(out->touched, sizeof(out->touched), "the revert conflicts on the head");
        else if (empty)
            (void)snprintf(out->touched, sizeof(out->touched), "the revert changes nothing");
    }
    if (keel_ok(s) && out->applies)
        s = touched_later(r, c, out->mainline, h, near < INT_MAX / 2 ? (int)near : INT_MAX / 2,
                          out);
    git_commit_free(h);
    git_commit_free(c);
    return s;
}

keel_status gate_revert_make(gate_repo *r, const char *culprit, unsigned mainline, const char *head,
                             const char *message, long long when, char out[GATE_HEX])
{
    KEEL_ASSERT(r != NULL && culprit != NULL && head != NULL && message != NULL && out != NULL);
    git_commit *c = NULL, *h = NULL;
    git_tree *tree = NULL;
    git_signature *sig = NULL;
    keel_status s = lookup(r, culprit, "culprit", &c);
    if (keel_ok(s))
        s = lookup(r, head, "the target's head", &h);
    git_oid tree_id, id;
    bool clean = false, empty = false;
    if (keel_ok(s))
        s = revert_tree(r, c, mainline, h, &tree_id, &clean, &empty);
    if (keel_ok(s) && (!clean || empty))
        s = KEEL_ERR(KEEL_E_CONFLICT, "the revert of %.12s does not apply on %.12s%s", culprit,
                     head, empty ? " (it changes nothing)" : "");
    int rc = 0;
    if (keel_ok(s) && (rc = git_tree_lookup(&tree, r->repo, &tree_id)) != 0)
        s = gate_git_error(rc, "cannot read the revert's tree");
    if (keel_ok(s) && (rc = git_signature_new(&sig, "keel-gate", "keel-gate@localhost",
                                              (git_time_t)when, 0)) != 0)
        s = gate_git_error(rc, "cannot make a signature");
    if (keel_ok(s)) {
        const git_commit *parents[] = {h};
        rc = git_commit_create(&id, r->repo, NULL, sig, sig, NULL, message, tree, 1, parents);
        if (rc != 0)
            s = gate_git_error(rc, "cannot write the revert of %.12s", culprit);
        else
            git_oid_tostr(out, GATE_HEX, &id);
    }
    git_signature_free(sig);
    git_tree_free(tree);
    git_commit_free(h);
    git_commit_free(c);
    return s;
}

/* Does `message` name culprit as the one it backs out or reverts? */
static bool reverts(const char *message, const char *culprit)
{
    char a[96], b[96];
    (void)snprintf(a, sizeof(a), "Keel-Backout: %s", culprit);
    (void)snprintf(b, sizeof(b), "This reverts commit %s", culprit);
    return strstr(message, a) != NULL || strstr(message, b) != NULL;
}

keel_status gate_revert_find(gate_repo *r, const char *head, const char *culprit,
                             char found[GATE_HEX])
{
    KEEL_ASSERT(r != NULL && head != NULL && culprit != NULL && found != NULL);
    found[0] = '\0';
    git_oid at, stop;
    keel_status s = gate_oid_parse(head, &at);
    if (keel_ok(s))
        s = gate_oid_parse(culprit, &stop);
    for (size_t i = 0; keel_ok(s) && i < GATE_REVERT_WALK && !git_oid_equal(&at, &stop); i++) {
        git_commit *c = NULL;
        int rc = git_commit_lookup(&c, r->repo, &at);
        if (rc != 0) {
            s = gate_git_error(rc, "cannot read commit %s of the target's history",
                               git_oid_tostr_s(&at));
            break;
        }
        const char *m = git_commit_message(c);
        bool root = git_commit_parentcount(c) == 0;
        if (m != NULL && reverts(m, culprit))
            git_oid_tostr(found, GATE_HEX, &at);
        else if (!root)
            git_oid_cpy(&at, git_commit_parent_id(c, 0));
        git_commit_free(c);
        if (root || found[0] != '\0')
            break;
    }
    return s;
}

keel_status gate_revert_branch(gate_repo *r, const char *branch, const char *commit)
{
    KEEL_ASSERT(r != NULL && branch != NULL && commit != NULL);
    git_oid oid;
    keel_status s = gate_branch_check(branch);
    if (keel_ok(s))
        s = gate_oid_parse(commit, &oid);
    if (!keel_ok(s))
        return s;
    if (r->url != NULL) /* made in the mirror, submitted as any change is: a branch of the remote */
        return gate_remote_put_branch(r->repo, r->url, branch, &oid);
    char refname[GATE_BRANCH_LEN_MAX + 16];
    (void)snprintf(refname, sizeof(refname), "refs/heads/%s", branch);
    git_reference *ref = NULL;
    int rc = git_reference_create(&ref, r->repo, refname, &oid, 1, "keel-gate: backout");
    git_reference_free(ref);
    return rc == 0 ? KEEL_OK
                   : gate_git_error(rc, "cannot point branch '%s' at %.12s", branch, commit);
}
