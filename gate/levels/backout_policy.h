/*
 * gate/levels/backout_policy.h - whether keel-gate backs out a culprit
 * (issue 17, "Backing it out"): facts in, a decision out, with the guard rail
 * that decided and why.  No I/O, no clock: backout.c gathers the facts (the
 * store, git, the target's configuration) and acts on the decision.
 *
 * The rails, in the order they are asked (the first that says no decides):
 *   unverified      the culprit was not verified: refused (never reverted)
 *   tier-3          an informational configuration: refused
 *   target-green    the configuration passes on the target again: refused
 *   undone          the target's head no longer holds the culprit's change
 *                   (its revert would change nothing): refused
 *   revert          the culprit is itself a revert: refused
 *   no-auto-revert  the culprit says `No-Auto-Revert: true`: refused
 *   backout-off     backout = no for this configuration: proposed
 *   dependent       the revert does not apply cleanly on the target's head,
 *                   or later commits touched the same files: refused
 *   age             older than backout-max-age: proposed
 *   tier-2-wait     tier 2 and tier2-fix-time not passed yet: wait
 *   breaker         the circuit breaker is open: refused
 *   budget          backout-budget reverts created, or landed, in the last
 *                   24 h: refused, and the breaker opens
 * and then: revert.
 */
#ifndef KEEL_GATE_BACKOUT_POLICY_H
#define KEEL_GATE_BACKOUT_POLICY_H

#include <stdbool.h>

typedef enum gate_backout_action {
    GATE_BACKOUT_REVERT,  /* make the revert and submit it through the gate */
    GATE_BACKOUT_PROPOSE, /* report it: a person decides */
    GATE_BACKOUT_REFUSE,  /* never reverted automatically (the rail says why) */
    GATE_BACKOUT_WAIT     /* tier 2: a fix may land first; asked again later */
} gate_backout_action;

typedef enum gate_backout_rail {
    GATE_RAIL_NONE,
    GATE_RAIL_UNVERIFIED,
    GATE_RAIL_TIER3,
    GATE_RAIL_TARGET_GREEN,
    GATE_RAIL_UNDONE,
    GATE_RAIL_REVERT,
    GATE_RAIL_NO_AUTO_REVERT,
    GATE_RAIL_BACKOUT_OFF,
    GATE_RAIL_DEPENDENT,
    GATE_RAIL_AGE,
    GATE_RAIL_TIER2_WAIT,
    GATE_RAIL_BREAKER,
    GATE_RAIL_BUDGET,
    GATE_RAILS
} gate_backout_rail;

typedef struct gate_backout_facts {
    bool verified;
    unsigned tier;       /* 1..3 */
    bool backout;        /* backout = yes for the configuration */
    long long age_s;     /* now - the culprit's commit time */
    long long max_age_s; /* backout-max-age */
    bool is_revert;      /* subject `Revert "` or body `This reverts commit` */
    bool no_auto_revert; /* a `No-Auto-Revert: true` trailer */
    bool applies;        /* the revert applies cleanly on the target's current head */
    bool undone;         /* it applies but changes nothing: the head no longer holds the change */
    bool later_touched;  /* a later commit changed lines near the culprit's (revert.h) */
    unsigned created_24h, landed_24h; /* reverts created and landed in the last 24 h */
    unsigned budget;                  /* backout-budget */
    bool breaker_open;
    long long waited_s; /* tier 2: since the culprit was found */
    long long fix_s;    /* tier2-fix-time */
    bool target_green;  /* the configuration passes on the target's newest built commit */
} gate_backout_facts;

typedef struct gate_backout_decision {
    gate_backout_action action;
    gate_backout_rail rail; /* GATE_RAIL_NONE with REVERT */
    bool open_breaker;      /* the budget is spent: open the circuit breaker */
    char reason[160];       /* one line, lowercase: why */
} gate_backout_decision;

void gate_backout_policy_decide(const gate_backout_facts *f, gate_backout_decision *out);

/* "revert", "propose", "refuse", "wait". */
const char *gate_backout_policy_action_name(gate_backout_action a);
/* The rail's name as above ("" for GATE_RAIL_NONE, "?" out of range). */
const char *gate_backout_policy_rail_name(gate_backout_rail r);

/*
 * What a commit's message says (`message`, whole): is it a revert (its first
 * line starts with `Revert "`, or a line starts with `This reverts commit`),
 * does it carry a `No-Auto-Revert: true` trailer (the key in any case, the
 * value true or yes)?
 */
void gate_backout_policy_message(const char *message, bool *is_revert, bool *no_auto_revert);

#endif /* KEEL_GATE_BACKOUT_POLICY_H */
