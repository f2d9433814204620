/*
 * history.c - the target's own history, for the post level (gate/levels):
 * the commits that reached it, walked by first parents.
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <string.h>

#include "git_int.h"
#include "remote.h"

keel_status gate_first_parents(gate_repo *r, const char *tip, const char *stop,
                               char (*out)[GATE_HEX], size_t max, size_t *n, bool *reached)
{
    KEEL_ASSERT(r != NULL && tip != NULL && n != NULL && reached != NULL &&
                (out != NULL || max == 0));
    *n = 0;
    *reached = false;
    git_oid at, until;
    keel_status s = gate_oid_parse(tip, &at);
    bool has_stop = stop != NULL && stop[0] != '\0';
    if (keel_ok(s) && has_stop)
        s = gate_oid_parse(stop, &until);
    while (keel_ok(s)) {
        if (has_stop && git_oid_equal(&at, &until)) {
            *reached = true;
            break;
        }
        if (*n == max)
            break;
        git_oid_tostr(out[*n], GATE_HEX, &at);
        (*n)++;
        git_commit *c = NULL;
        int rc = git_commit_lookup(&c, r->repo, &at);
        if (rc != 0) {
            s = gate_git_error(rc, "cannot read commit %s of the target's history", out[*n - 1]);
            break;
        }
        bool root = git_commit_parentcount(c) == 0;
        if (!root)
            git_oid_cpy(&at, git_commit_parent_id(c, 0));
        git_commit_free(c);
        if (root)
            break;
    }
    return s;
}
