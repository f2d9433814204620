/*
 * gate/exec/worktree.h - a job's work tree, reused from one job to the next.
 *
 * Writing a whole checkout per job costs a file creation per file of the
 * repository; a reused work tree costs only what differs between the tree it
 * held and the next one.  Each job still starts in a clean work tree that
 * holds exactly its candidate's tree: after every checkout the tree's files
 * are recorded (inode, ctime, size, mode), and before the next one every
 * entry that does not match that record is removed - files a job created or
 * modified (a write changes the ctime, which nothing can set back), special
 * files, a `.git` a job made - so what is left is part of the tree held,
 * untouched, and the checkout writes the rest.  Anything that cannot be
 * removed or read makes the work tree be emptied and written whole.
 */
#ifndef KEEL_GATE_WORKTREE_H
#define KEEL_GATE_WORKTREE_H

#include "keel/keel.h"

#include "git.h"

typedef struct gate_worktree gate_worktree; /* opaque, on module gate_git's heap */

/* A work tree in `dir` (created at the first checkout), holding nothing known yet. */
KEEL_MUST_USE keel_status gate_worktree_new(const char *dir, gate_worktree **out);
/* Free it; its directory stays (the caller removes the parent). */
void gate_worktree_delete(gate_worktree *w);

const char *gate_worktree_dir(const gate_worktree *w);

/*
 * Make the work tree hold exactly the tree of `commit` (see the top).  On an
 * error what it holds is unknown, and the next checkout writes it whole.
 */
KEEL_MUST_USE keel_status gate_worktree_checkout(gate_worktree *w, gate_repo *r,
                                                 const char *commit);

/* Forget what it holds (the next checkout empties it and writes it whole). */
void gate_worktree_forget(gate_worktree *w);

#endif /* KEEL_GATE_WORKTREE_H */
