/*
 * conflict.c - what a conflict is with (gate_conflict_origins, git.h): the
 * paths where a change does not merge onto a commit, and for each the last
 * commit of that commit's first-parent history that changed it, with its
 * `Keel-Gate-Change` trailer (a landing of the gate's) or its subject (a
 * commit pushed directly), or, for a merge the gate made, its second parent
 * (the change it merged).  The gatekeeper makes the text (gate/conflict.c).
 */
#define _GNU_SOURCE 1
#include "git_int.h"

#include "remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The trailer a landed merge names its change with (gate/landing.c). */
#define CHANGE_TRAILER "Keel-Gate-Change"

/* The id and mode of `path` in `tree` (a zero id: no such entry). */
static keel_status entry_at(git_tree *tree, const char *path, git_oid *id, unsigned *mode)
{
    memset(id, 0, sizeof(*id));
    *mode = 0;
    if (tree == NULL)
        return KEEL_OK;
    git_tree_entry *e = NULL;
    int rc = git_tree_entry_bypath(&e, tree, path);
    if (rc == GIT_ENOTFOUND)
        return KEEL_OK;
    if (rc != 0)
        return gate_git_error(rc, "cannot read '%s' in tree %.12s", path,
                              git_oid_tostr_s(git_tree_id(tree)));
    git_oid_cpy(id, git_tree_entry_id(e));
    *mode = (unsigned)git_tree_entry_filemode(e);
    git_tree_entry_free(e);
    return KEEL_OK;
}

/* The number in commit c's Keel-Gate-Change trailer (0: none). */
static long long change_trailer(const git_commit *c)
{
    git_message_trailer_array arr;
    memset(&arr, 0, sizeof(arr));
    if (git_message_trailers(&arr, git_commit_message(c)) != 0)
        return 0;
    long long id = 0;
    for (size_t i = 0; i < arr.count; i++) {
        if (strcmp(arr.trailers[i].key, CHANGE_TRAILER) != 0)
            continue;
        char *end = NULL;
        long long v = strtoll(arr.trailers[i].value, &end, 10);
        if (end != arr.trailers[i].value && *end == '\0' && v > 0)
            id = v;
    }
    git_message_trailer_array_free(&arr);
    return id;
}

/* What commit c is, for the origins of the paths it changed. */
static void describe(git_commit *c, gate_conflict_origin *o)
{
    (void)git_oid_tostr(o->commit, sizeof(o->commit), git_commit_id(c));
    o->second[0] = '\0';
    if (git_commit_parentcount(c) > 1)
        (void)git_oid_tostr(o->second, sizeof(o->second), git_commit_parent_id(c, 1));
    o->change = change_trailer(c);
    const char *summary = git_commit_summary(c);
    (void)snprintf(o->subject, sizeof(o->subject), "%s", summary != NULL ? summary : "");
}

/*
 * For each of the n origins, the last commit on the first-parent history of
 * `from` (within GATE_ORIGIN_WALK commits) whose tree differs from its first
 * parent's at the origin's path (a root commit: that holds the path).
 */
static keel_status walk(gate_repo *r, const git_oid *from, gate_conflict_origin *o, size_t n)
{
    git_oid at = *from;
    size_t left = 0;
    for (size_t i = 0; i < n; i++)
        left += !o[i].cut;
    keel_status s = KEEL_OK;
    for (unsigned k = 0; keel_ok(s) && left > 0 && k < GATE_ORIGIN_WALK; k++) {
        git_commit *c = NULL, *p = NULL;
        git_tree *t = NULL, *pt = NULL;
        int rc = git_commit_lookup(&c, r->repo, &at);
        if (rc == 0)
            rc = git_commit_tree(&t, c);
        if (rc == 0 && git_commit_parentcount(c) > 0 && (rc = git_commit_parent(&p, c, 0)) == 0)
            rc = git_commit_tree(&pt, p);
        if (rc == GIT_ENOTFOUND && t != NULL && p == NULL) { /* a shallow history ends here */
            git_tree_free(t);
            git_commit_free(c);
            break;
        }
        if (rc != 0)
            s = gate_git_error(rc, "cannot read commit %.12s of the history of %.12s",
                               git_oid_tostr_s(&at), git_oid_tostr_s(from));
        for (size_t i = 0; keel_ok(s) && i < n; i++) {
            if (o[i].commit[0] != '\0' || o[i].cut)
                continue;
            git_oid a, b;
            unsigned ma = 0, mb = 0;
            s = entry_at(t, o[i].path, &a, &ma);
            if (keel_ok(s))
                s = entry_at(pt, o[i].path, &b, &mb);
            if (keel_ok(s) && (ma != mb || !git_oid_equal(&a, &b))) {
                describe(c, &o[i]);
                left--;
            }
        }
        bool more = p != NULL;
        if (more)
            git_oid_cpy(&at, git_commit_id(p));
        git_tree_free(pt);
        git_tree_free(t);
        git_commit_free(p);
        git_commit_free(c);
        if (!more)
            break;
    }
    return s;
}

keel_status gate_conflict_origins(gate_repo *r, const char *onto, const char *head,
                                  gate_conflict_origin *out, size_t max, size_t *n, size_t *total)
{
    KEEL_ASSERT(r != NULL && onto != NULL && head != NULL && out != NULL && n != NULL &&
                total != NULL);
    *n = 0;
    *total = 0;
    git_oid ours_id, theirs_id;
    git_commit *ours = NULL, *theirs = NULL;
    git_index *merged = NULL;
    git_index_conflict_iterator *it = NULL;
    keel_status s = gate_oid_parse(onto, &ours_id);
    if (keel_ok(s))
        s = gate_oid_parse(head, &theirs_id);
    int rc = 0;
    if (keel_ok(s) && ((rc = git_commit_lookup(&ours, r->repo, &ours_id)) != 0 ||
                       (rc = git_commit_lookup(&theirs, r->repo, &theirs_id)) != 0 ||
                       (rc = git_merge_commits(&merged, r->repo, ours, theirs, NULL)) != 0 ||
                       (rc = git_index_conflict_iterator_new(&it, merged)) != 0))
        s = gate_git_error(rc, "cannot merge %.12s onto %.12s again", head, onto);
    const git_index_entry *ancestor, *mine, *theirs_e;
    while (keel_ok(s) && git_index_conflict_next(&ancestor, &mine, &theirs_e, it) == 0) {
        const git_index_entry *e = mine != NULL ? mine : (theirs_e != NULL ? theirs_e : ancestor);
        if (e == NULL)
            continue;
        if (*n < max) {
            memset(&out[*n], 0, sizeof(out[*n]));
            out[*n].cut = strlen(e->path) >= sizeof(out[*n].path);
            (void)snprintf(out[*n].path, sizeof(out[*n].path), "%s", e->path);
            (*n)++;
        }
        (*total)++;
    }
    if (keel_ok(s))
        s = walk(r, &ours_id, out, *n);
    git_index_conflict_iterator_free(it);
    git_index_free(merged);
    git_commit_free(theirs);
    git_commit_free(ours);
    return keel_ok(s) ? KEEL_OK
                      : KEEL_CONTEXT(s, "finding what %.12s conflicts with on %.12s", head, onto);
}
