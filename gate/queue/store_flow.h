/*
 * gate/queue/store_flow.h - branch flows in keel-gate's store (store_flow.c):
 * each flow's state (gate/flows/flow.h: the tips seen, the merge in the
 * queue, blocked since when and why, who is reminded, how often and when)
 * and the history of what the people were told.
 *
 * kill -9 safety: gate_store_flow_save writes the flow's new state, the row
 * of what was told (flow_told) and the event of the history (events:
 * flow-blocked, flow-reminder, flow-escalated, flow-unblocked) in ONE
 * transaction.  A kill before it commits leaves the old state: the same
 * decision is made again and told once; a kill after it leaves the event in
 * the history, from which the notify hook delivers (store_notify.c lists
 * the flow kinds): no reminder is lost or told twice.  The wiring
 * (flows_turn.h) takes, after a kill between a submission and the save of
 * the state that records it, the change already queued for the flow branch
 * instead of merging and queueing again.
 */
#ifndef KEEL_GATE_STORE_FLOW_H
#define KEEL_GATE_STORE_FLOW_H

#include "flow.h"
#include "store.h"

/* A flow's state as stored; `f->cfg` is the caller's (the configuration's flow). */
KEEL_MUST_USE keel_status gate_store_flow_load(gate_store *st, const gate_flow_config *cfg,
                                               gate_flow *f, bool *found);

/*
 * Save `f` (its configuration names it: from, to); with `told` (NULL: none)
 * one row of what was told: the event `kind` ("flow-blocked",
 * "flow-reminder", "flow-escalated", "flow-unblocked"), the people, and the
 * event for the notify hook with `detail` (JSON) - one transaction.
 */
typedef struct gate_flow_told {
    const char *kind;   /* the event's */
    const char *detail; /* its JSON detail (names, addresses, paths, the command) */
    const gate_flow_person *people;
    size_t npeople;
    unsigned count; /* which reminder (0: the blocked notice or the unblocking) */
} gate_flow_told;
KEEL_MUST_USE keel_status gate_store_flow_save(gate_store *st, const gate_flow *f,
                                               const gate_flow_told *told, long long now);

/* One row of what a flow's people were told, for `keel-gate flows`. */
enum { GATE_FLOW_TOLD_KIND_MAX = 24, GATE_FLOW_TOLD_WHO_MAX = 1024 };
typedef struct gate_flow_told_row {
    char kind[GATE_FLOW_TOLD_KIND_MAX];
    char who[GATE_FLOW_TOLD_WHO_MAX]; /* the people, ", " between them (cut to fit) */
    unsigned count;
    long long at;
} gate_flow_told_row;

/* What flow `from` -> `to` told, newest first, at most max rows. */
KEEL_MUST_USE keel_status gate_store_flow_told(gate_store *st, const char *from, const char *to,
                                               gate_flow_told_row *out, size_t max, size_t *n);

/*
 * The recorded resolutions (flow.h gate_flow_resolution, keel's rerere):
 * `put` records n of them (their conflict, the resolved blob and mode), from
 * the flow `from` -> `to`'s change `commit` that landed, in one transaction;
 * a conflict recorded before is replaced; a conflict with hunks (r->hunks)
 * is recorded by its path and hunks too (with its preimage).  `get` fills
 * r->blob and r->mode for the conflict r names (path, base, ours, theirs);
 * none recorded for those blobs, for its path and hunks (r->hunks not ""):
 * r->by_hunks set and r->preimage the recorded preimage; *found false when
 * neither is recorded.
 */
KEEL_MUST_USE keel_status gate_store_flow_resolution_put(gate_store *st,
                                                         const gate_flow_resolution *r, size_t n,
                                                         const char *from, const char *to,
                                                         const char *commit, long long now);
KEEL_MUST_USE keel_status gate_store_flow_resolution_get(gate_store *st, gate_flow_resolution *r,
                                                         bool *found);

#endif /* KEEL_GATE_STORE_FLOW_H */
