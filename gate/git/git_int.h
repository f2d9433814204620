/*
 * gate/git/git_int.h - what git.c and change.c share (not an API): the
 * repository record, and change.c's checks of what a change brings, which
 * gate_merge runs before it merges a change.
 *
 * The checks classify every failure: GATE_E_BAD_CHANGE (details "index",
 * the change's place in its candidate, and "path" when a tree entry is the
 * cause) for what is the change's own doing; anything else is the gate's
 * (memory, I/O, the target's objects) and never a verdict.
 */
#ifndef KEEL_GATE_GIT_INT_H
#define KEEL_GATE_GIT_INT_H

#include <git2.h>

#include "git.h"

struct gate_repo {
    git_repository *repo; /* a remote's: its mirror */
    char *path;           /* in the same block: the repository, or a remote's mirror */
    char *url;            /* in the same block: a remote's URL; NULL: a local repository */
};

/* 40 hex digits into an id (KEEL_E_INVAL naming it when they are not). */
KEEL_MUST_USE keel_status gate_oid_parse(const char *hex, git_oid *oid);

/*
 * The merge commit of `theirs` into `ours` whose tree is `merged`'s, by keel-gate at `when`
 * (`offset` minutes east of UTC), with `message`: libgit2's answer (0: *id made).  The flow's
 * merges and its culprit search's (flowmerge.c, flowsearch.c).
 */
int gate_flow_commit(gate_repo *r, git_index *merged, git_commit *ours, git_commit *theirs,
                     git_time_t when, int offset, const char *message, git_oid *id);

/* Forget a failed allocation libgit2 got over, before calls whose failures are classified. */
void gate_change_forget_heap(void);

/*
 * The commit `head` of change `index` names (`what` names it in messages),
 * peeled from annotated tags (*tag: the first one's id, zero when none).
 */
KEEL_MUST_USE keel_status gate_change_commit(gate_repo *r, const git_oid *head, const char *what,
                                             size_t index, git_commit **out, git_oid *tag);

/*
 * The entries of the tree of `commit` (change `index`'s, `head` in hex) that
 * are not in `before` (the tree it is merged onto) with the same id and
 * mode: names by gate_tree_name_check, subtrees walked likewise (only those
 * whose ids differ are read), files' objects present, paths under 4096 bytes.
 */
KEEL_MUST_USE keel_status gate_change_tree(gate_repo *r, git_odb *odb, const git_tree *before,
                                           const git_commit *commit, size_t index,
                                           const char *head);

/*
 * The commits change `index` (`theirs`, at `head`) brings can be read, down
 * to where its history meets the target's (`ours`): walked before the merge
 * needs them.  One that cannot be read is the change's, unless it is in the
 * target's history (the gate's, naming the target as damaged).
 */
KEEL_MUST_USE keel_status gate_change_history(gate_repo *r, git_odb *odb, const git_oid *ours,
                                              const git_oid *theirs, size_t index,
                                              const char *head);

/*
 * A step of merging change `index` (`step`: "merge") failed with rc after
 * its own objects were checked: the gate's error, or BAD_CHANGE.
 */
KEEL_MUST_USE keel_status gate_change_merge_error(gate_repo *r, git_odb *odb, int rc,
                                                  const git_oid *onto, size_t index,
                                                  const char *head, const char *step);

#endif /* KEEL_GATE_GIT_INT_H */
