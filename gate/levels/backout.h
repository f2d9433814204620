/*
 * gate/levels/backout.h - backing out a verified culprit (issue 17, "Backing
 * it out"): the culprit search hands its culprit to gate_backout_culprit_found;
 * the guard rails (backout_policy.h) decide; a revert is a normal commit on
 * the target's head, submitted through the gate at GATE_BACKOUT_PRIORITY and
 * tested like any change; gate_backout_turn follows it to landed or rejected.
 *
 * Crash safety: the intent is written to the store (store_backout.h) before
 * the revert is made; the revert commit is the same commit when made again
 * from the same head; its branch `keel-gate/backout/<12 hex>` and change are
 * looked for before a new one is made, and so is a revert on the target (a
 * commit naming the culprit in `Keel-Backout:` or `This reverts commit`).
 * The stress points gate.backout_after_intent, gate.backout_after_branch and
 * gate.backout_after_submit end the process as kill -9 would.
 *
 * Not an API: gate_loop.c and the culprit search call it.
 */
#ifndef KEEL_GATE_BACKOUT_H
#define KEEL_GATE_BACKOUT_H

#include <stdbool.h>

#include "gate_loop.h"
#include "store_backout.h"

/* The revert's priority: above any a person gives (gate_submit), aging included. */
enum { GATE_BACKOUT_PRIORITY = 1 << 30 };
/* The most people an event names (author and committer) when the target's [gate] blame-max
   cannot be read: its default. */
enum { GATE_BACKOUT_BLAME_MAX = 3 };

typedef struct gate_backout_culprit {
    char target[GATE_NAME_MAX];
    char config[GATE_NAME_MAX]; /* the configuration that failed */
    unsigned tier;              /* 1 | 2 | 3 */
    char commit[GATE_OID_HEX];  /* the culprit (a gate merge: the merge commit) */
    char parent[GATE_OID_HEX];  /* the parent it was verified against ("": its first) */
    char subject[GATE_BACKOUT_TEXT_MAX];
    char author_name[128], author_email[128];
    char committer_name[128], committer_email[128];
    long long change;                         /* the gate's change it landed as; 0: none */
    char evidence[GATE_BACKOUT_EVIDENCE_MAX]; /* the search's: runs and results */
    char log[GATE_REASON_MAX];                /* the failing build's log */
    bool verified;      /* its parent passes and it fails, with the configured confidence */
    long long found_at; /* when the search found it (s; 0: `now` of the hand-over) */
} gate_backout_culprit;

/*
 * The culprit search found `c` on the gate's target: decided by the guard
 * rails on the facts as they are at `now` and acted on (a revert made and
 * queued, or refused, proposed, waiting), each step recorded with its event.
 * A culprit already handed over is not acted on twice.  An error is the
 * gate's own (store, git); KEEL_E_INVAL for a culprit of another target.
 */
KEEL_MUST_USE keel_status gate_backout_culprit_found(gate *g, const gate_backout_culprit *c,
                                                     long long now);

/*
 * A turn of the loop: queued reverts that landed or were rejected recorded;
 * tier-2 culprits whose fix time passed decided again; intents a kill left
 * carried on.
 */
KEEL_MUST_USE keel_status gate_backout_turn(gate *g, long long now);

/*
 * hold-when-red: should the queue hold (start nothing new)?  While [gate]
 * hold-when-red = yes and a tier-1 configuration is red at post on the
 * target with no revert of its culprit intended or queued.  `why` says
 * which (for the status).
 */
KEEL_MUST_USE keel_status gate_backout_hold(gate *g, bool *hold, char *why, size_t size);

/* `keel-gate backouts --reset`: close the circuit breaker of the target. */
KEEL_MUST_USE keel_status gate_backout_reset(gate *g, bool *was_open);

/* `keel-gate backouts [--json]`: each backout of the target, newest first, and the breaker. */
KEEL_MUST_USE keel_status gate_backouts(gate *g, FILE *f, bool json);

#endif /* KEEL_GATE_BACKOUT_H */
