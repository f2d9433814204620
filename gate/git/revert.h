/*
 * gate/git/revert.h - the git side of an automatic backout (revert.c, with
 * libgit2; gate/levels/backout.c decides and records): what the culprit is,
 * whether its revert applies on the target's head, the revert commit, the
 * branch it is submitted from, and reverts already on the target.
 */
#ifndef KEEL_GATE_REVERT_H
#define KEEL_GATE_REVERT_H

#include "git.h"

enum {
    GATE_REVERT_WALK = 10000, /* target commits looked through after the culprit */
    GATE_REVERT_NEAR = 3      /* [gate] revert-near's default (config.h) */
};

typedef struct gate_revert_facts {
    bool is_revert;      /* its message says it reverts (backout_policy.h) */
    bool no_auto_revert; /* `No-Auto-Revert: true` */
    bool applies;        /* its revert merges cleanly onto `head` and changes something */
    bool undone;         /* it merges cleanly but changes nothing: `head` lacks the change */
    bool later_touched;  /* between it and `head`, a line within `near` lines of
                            one the culprit changed was changed (or its file deleted, renamed,
                            binary) */
    char touched[256];   /* the first such "file line N", or why it does not apply ("" otherwise) */
    long long time;      /* its committer time (s) */
    unsigned mainline;   /* 0: a plain commit; a merge's: which parent it is reverted against */
} gate_revert_facts;

/*
 * Examine culprit `culprit` (a merge: reverted against `parent`, "" for its
 * first) on the target whose head is `head`; a later change within `near`
 * lines of one the culprit made counts as depending on it.  KEEL_E_NOTFOUND when the
 * culprit is not in the history of `head`; git's failures are the gate's.
 */
KEEL_MUST_USE keel_status gate_revert_examine(gate_repo *r, const char *culprit, const char *parent,
                                              const char *head, unsigned near,
                                              gate_revert_facts *out);

/*
 * The revert of `culprit` (mainline as examined) as a commit whose only
 * parent is `head`, with `message`, author and committer keel-gate at time
 * `when` (so made again with the same inputs it is the same commit).
 * KEEL_E_CONFLICT when it does not apply cleanly.
 */
KEEL_MUST_USE keel_status gate_revert_make(gate_repo *r, const char *culprit, unsigned mainline,
                                           const char *head, const char *message, long long when,
                                           char out[GATE_HEX]);

/*
 * A revert of `culprit` already on the target: a commit on the first-parent
 * history of `head` after it whose message holds `Keel-Backout: <culprit>`
 * or `This reverts commit <culprit>` (*found "" when none).
 */
KEEL_MUST_USE keel_status gate_revert_find(gate_repo *r, const char *head, const char *culprit,
                                           char found[GATE_HEX]);

/*
 * Point branch `branch` at `commit` (made, or moved): the repository's own; a
 * remote's (URL) target: the remote's, pushed from the mirror
 * (gate_remote_put_branch), since a remote's changes are its branches.
 */
KEEL_MUST_USE keel_status gate_revert_branch(gate_repo *r, const char *branch, const char *commit);

/* The commit message of `commit`, cut to `size`. */
KEEL_MUST_USE keel_status gate_revert_message(gate_repo *r, const char *commit, char *buf,
                                              size_t size);

#endif /* KEEL_GATE_REVERT_H */
