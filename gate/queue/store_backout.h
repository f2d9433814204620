/*
 * gate/queue/store_backout.h - the automatic backout's records in keel-gate's
 * store (store_backout.c): one row per (target, culprit), written before
 * anything is done about it, and the circuit breaker of each target.
 *
 * A row's state: intended (the revert is to be made and submitted: a kill
 * after this leaves the row, and the next turn finds what was made), queued
 * (submitted: its change id), landed, rejected (the gate refused the
 * revert), refused (a guard rail: its name in `rail`), proposed (a person
 * decides), waiting (tier 2: a fix may land).  A culprit has one row ever:
 * a revert is never made twice.
 */
#ifndef KEEL_GATE_STORE_BACKOUT_H
#define KEEL_GATE_STORE_BACKOUT_H

#include "store.h"

enum { GATE_BACKOUT_STATE_MAX = 12, GATE_BACKOUT_TEXT_MAX = 256, GATE_BACKOUT_EVIDENCE_MAX = 1024 };

typedef struct gate_backout_row {
    long long id;
    char target[GATE_NAME_MAX];
    char culprit[GATE_OID_HEX];
    char parent[GATE_OID_HEX];
    char config[GATE_NAME_MAX];
    unsigned tier;
    char state[GATE_BACKOUT_STATE_MAX];
    char rail[32];
    char reason[GATE_REASON_MAX];
    char subject[GATE_BACKOUT_TEXT_MAX];
    char author[GATE_BACKOUT_TEXT_MAX];    /* "name <email>" */
    char committer[GATE_BACKOUT_TEXT_MAX]; /* "name <email>" */
    long long culprit_change;              /* the gate's change it came from; 0: none */
    char evidence[GATE_BACKOUT_EVIDENCE_MAX];
    char log[GATE_REASON_MAX];
    bool verified;
    char revert[GATE_OID_HEX]; /* the revert commit once made; "" before */
    char branch[GATE_NAME_MAX];
    long long change; /* the revert's change; 0 before it is queued */
    long long found_at, created_at, updated_at, landed_at;
} gate_backout_row;

/* The row of `culprit` on `target`; *found false when there is none. */
KEEL_MUST_USE keel_status gate_store_backout_get(gate_store *st, const char *target,
                                                 const char *culprit, gate_backout_row *out,
                                                 bool *found);
/*
 * Record row r (its target and culprit name it) in state r->state with its
 * event: a new row, or the existing one updated (its id, created_at kept;
 * created_at set when it first becomes intended).  `event` (NULL: none) is
 * recorded in the same transaction with `detail` (JSON), change r->change.
 */
KEEL_MUST_USE keel_status gate_store_backout_put(gate_store *st, gate_backout_row *r, long long now,
                                                 const char *event, const char *detail);
/* Rows of `target` in `state` of `config` (each NULL: any), newest first, at most max. */
KEEL_MUST_USE keel_status gate_store_backout_list(gate_store *st, const char *target,
                                                  const char *state, const char *config,
                                                  gate_backout_row *out, size_t max, size_t *n);
/* How many rows of `target` are under way: intended, queued or waiting (each turn asks). */
KEEL_MUST_USE keel_status gate_store_backout_active(gate_store *st, const char *target, size_t *n);
/* Reverts of `target` created (made), and landed, since `since`. */
KEEL_MUST_USE keel_status gate_store_backout_counts(gate_store *st, const char *target,
                                                    long long since, unsigned *created,
                                                    unsigned *landed);
/* The newest change of `target` for `branch` (0: none): a submit a kill left unrecorded. */
KEEL_MUST_USE keel_status gate_store_backout_change_of(gate_store *st, const char *target,
                                                       const char *branch, long long *id);
/*
 * The circuit breaker of `target`: open (since, why) or closed; when a person
 * last closed it (*reset_at, 0: never: the budget counts from then).
 * Opening it records `breaker-open`, closing it `breaker-closed` (each only
 * when it changes: *changed).  Each out pointer but `open` may be NULL.
 */
KEEL_MUST_USE keel_status gate_store_backout_breaker(gate_store *st, const char *target, bool *open,
                                                     long long *since, long long *reset_at,
                                                     char *why, size_t size);
KEEL_MUST_USE keel_status gate_store_backout_set_breaker(gate_store *st, const char *target,
                                                         bool open, const char *why,
                                                         const char *detail, long long now,
                                                         bool *changed);
/*
 * `config` on `target` at the post level, by its newest built commit: green
 * (it passed), red (every run failed); neither when flaky or never built.  A
 * configuration never built at the post level (nightly only): by its newest
 * nightly run instead.
 */
KEEL_MUST_USE keel_status gate_store_backout_green(gate_store *st, const char *target,
                                                   const char *config, bool *green, bool *red);

#endif /* KEEL_GATE_STORE_BACKOUT_H */
