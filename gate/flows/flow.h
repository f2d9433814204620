/*
 * gate/flows/flow.h - a branch flow's decisions (issue 18), as pure logic:
 * no I/O, no clock, no threads.  Events go in (the source moved, a merge was
 * made, it conflicted, the merge change landed or was rejected, a developer
 * pushed the flow branch, the clock ticked), and one decision comes out each
 * time: what to do now, with its reason.  The caller (gate_flows_turn) does
 * it: makes the merge (gate/git), queues it (gate_submit), sends the
 * reminders through the notify hook, and records the flow's new state in the
 * same store transaction as the reminder it sends, so a reminder is never
 * lost nor sent twice (store_flow.h).
 *
 * The states:
 *   IDLE     nothing to do, or waiting for the trigger (commit: at once;
 *            schedule: `interval` after the last sync);
 *   MERGING  the merge of the source's tip into the destination is asked for;
 *   QUEUED   the merge (or a developer's resolution) is in the destination's
 *            queue, waiting for its verdict;
 *   BLOCKED  the merge conflicted or its change was rejected: the people who
 *            can fix it are reminded until a developer pushes a resolution to
 *            the flow branch and it lands.
 *
 * Reminders.  A failure (a conflict, a rejection) blocks the flow and says so
 * once at once (GATE_FLOW_DO_BLOCK: the flow-blocked event, to the people);
 * then a reminder comes `remind[0]` later, the next `remind[1]` after that,
 * and so on, the last interval repeating.  After `escalate-after` reminders
 * the next one is an escalation (GATE_FLOW_DO_ESCALATE: to the owner and the
 * people, once); reminders go on after it.  `escalate-after = 0`: never.  No
 * decision names more than `remind-max` people: the first ones of the event's
 * list (the git side puts the authors who touched the paths most first).  A
 * second failure while blocked (a resolution rejected) is a new failure:
 * said at once, the count of reminders restarts; `blocked_since` stays the
 * first one's.  While blocked, a moved source or destination is tried again
 * (GATE_FLOW_DO_MERGE): a merge that is clean now is queued and unblocks the
 * flow when it lands; one that still conflicts keeps the flow blocked,
 * reminders unchanged.  While a fix (a resolution, a retried merge) is in
 * the queue no reminder is sent: its verdict decides.
 *
 * A culprit found later.  A merge rejected with nobody a culprit search
 * named is told to the authors of the commits it brings; when a search
 * verifies a culprit afterwards (GATE_FLOW_EV_CULPRIT, while the flow is
 * blocked by that rejection and no fix is under test), the people become
 * the culprit's authors and a reminder names them at once (counted as a
 * reminder; the back-off goes on from it).  Once only: the failure's people
 * come from the culprit search from then on.
 */
#ifndef KEEL_GATE_FLOW_H
#define KEEL_GATE_FLOW_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum gate_flow_state {
    GATE_FLOW_IDLE,
    GATE_FLOW_MERGING,
    GATE_FLOW_QUEUED,
    GATE_FLOW_BLOCKED
} gate_flow_state;

enum { GATE_FLOW_SHA_MAX = 41, GATE_FLOW_WHY_MAX = 512, GATE_FLOW_PERSON_MAX = 256 };

/* One person to remind: "Name <address>" as git records an author. */
typedef struct gate_flow_person {
    char who[GATE_FLOW_PERSON_MAX];
} gate_flow_person;

typedef enum gate_flow_event_kind {
    GATE_FLOW_EV_SOURCE_MOVED, /* sha: the source's new tip */
    GATE_FLOW_EV_DEST_MOVED,   /* sha: the destination's new tip */
    GATE_FLOW_EV_MERGE_MADE,   /* sha: the merge commit on the flow branch */
    GATE_FLOW_EV_NOTHING_NEW,  /* the source is already in the destination */
    GATE_FLOW_EV_CONFLICT,     /* why: the paths; people: their authors on both sides */
    GATE_FLOW_EV_LANDED,       /* sha: the change that landed */
    GATE_FLOW_EV_REJECTED,     /* sha, why; people: who can fix it */
    GATE_FLOW_EV_PUSHED,       /* sha: a developer's resolution on the flow branch */
    GATE_FLOW_EV_TICK,         /* the clock: reminders and schedules come due */
    GATE_FLOW_EV_CULPRIT       /* people: the culprit a search verified after a rejection */
} gate_flow_event_kind;

typedef struct gate_flow_event {
    gate_flow_event_kind kind;
    long long now; /* seconds (the caller's clock: tests use their own) */
    const char *sha;
    const char *why;
    const gate_flow_person *people;
    size_t npeople;
    /*
     * REJECTED: where `people` come from: GATE_FLOW_FROM_SEARCH (the culprit
     * search's suspects) or NULL (the authors of the commits the merge brings)
     */
    const char *from;
} gate_flow_event;

/* Where a failure's people come from (gate_flow_told_why). */
#define GATE_FLOW_FROM_SEARCH   "culprit-search"
#define GATE_FLOW_FROM_MERGE    "merge-authors"
#define GATE_FLOW_FROM_CONFLICT "conflict-authors"

typedef enum gate_flow_action {
    GATE_FLOW_DO_NOTHING,
    GATE_FLOW_DO_MERGE,    /* merge the source's tip into the destination */
    GATE_FLOW_DO_QUEUE,    /* submit `sha` (the flow branch) to the destination's queue */
    GATE_FLOW_DO_BLOCK,    /* flow-blocked: tell the people, at once */
    GATE_FLOW_DO_REMIND,   /* flow-reminder: remind the people again */
    GATE_FLOW_DO_ESCALATE, /* flow-escalated: tell the owner (and the people) */
    GATE_FLOW_DO_UNBLOCK   /* flow-unblocked: the fix landed, the flow resumes */
} gate_flow_action;

typedef struct gate_flow {
    const gate_flow_config *cfg; /* borrowed */
    gate_flow_state state;
    char source[GATE_FLOW_SHA_MAX]; /* the source's tip as last seen ("": unknown) */
    char synced[GATE_FLOW_SHA_MAX]; /* the source's tip the last sync contained */
    char trying[GATE_FLOW_SHA_MAX]; /* the source's tip the merge under way contains */
    char change[GATE_FLOW_SHA_MAX]; /* QUEUED: the commit in the queue */
    bool dest_moved;                /* BLOCKED: the destination moved since the failure */
    bool resolution;                /* QUEUED: a developer's resolution (or a retry) */
    long long last_sync;            /* when the last merge landed or was found empty; 0: never */
    long long blocked_since;        /* BLOCKED: since when (the first failure) */
    long long failed_at;            /* BLOCKED: the failure being reminded of */
    char why[GATE_FLOW_WHY_MAX];    /* BLOCKED: why */
    gate_flow_person people[GATE_FLOW_PEOPLE_MAX]; /* BLOCKED: who is reminded */
    size_t npeople;
    unsigned reminders;  /* reminders sent for this failure (the blocked notice not counted) */
    long long last_told; /* when the people were last told (notice, reminder, escalation) */
    bool escalated;      /* the owner was told of this failure */
    /* the caller's bookkeeping (gate_flows_turn, store_flow.c); the decisions do not read it */
    char dest[GATE_FLOW_SHA_MAX]; /* the destination's tip the last merge was made on */
    char made[GATE_FLOW_SHA_MAX]; /* the gate's last merge commit on the flow branch */
    long long change_id;          /* the gate's change of `change` (0: none, or not known) */
} gate_flow;

typedef struct gate_flow_decision {
    gate_flow_action action;
    const char *sha;                /* MERGE: the source's tip; QUEUE: the commit; else NULL */
    const gate_flow_person *people; /* BLOCK, REMIND, ESCALATE: into the flow's list */
    size_t npeople;
    const char *owner; /* ESCALATE: the flow's owner ("" if none is named) */
    unsigned reminder; /* REMIND, ESCALATE: which one (1, 2, ...) */
    char reason[GATE_FLOW_WHY_MAX];
} gate_flow_decision;

/* A new flow: IDLE, nothing seen yet. */
void gate_flow_init(gate_flow *f, const gate_flow_config *cfg);

/*
 * Feed one event; *d: what to do now (GATE_FLOW_DO_NOTHING with the reason
 * when nothing), and the flow's state is what it is once that is done.  An
 * event that does not fit the state (a landing while nothing is queued) is
 * ignored, with its reason.  `d` borrows the flow's memory: valid until the
 * next call.
 */
void gate_flow_feed(gate_flow *f, const gate_flow_event *ev, gate_flow_decision *d);

/* When the next thing comes due on the clock alone (a schedule, a reminder); 0: nothing. */
long long gate_flow_due(const gate_flow *f);

const char *gate_flow_state_name(gate_flow_state s);
const char *gate_flow_action_name(gate_flow_action a);
/*
 * The event a decision tells the people through the notify hook:
 * "flow-blocked", "flow-reminder", "flow-escalated", "flow-unblocked";
 * NULL for the others (they tell nobody).
 */
const char *gate_flow_told_kind(gate_flow_action a);

/*
 * What a blocked flow's events say of its failure (f->why, as block() wrote
 * it): *why "conflict" (the merge conflicted) or "test-failure" (the merge,
 * or a developer's resolution, was rejected by the destination's queue);
 * *from where the people told come from: GATE_FLOW_FROM_CONFLICT (the
 * authors on each side who touched the conflicting paths),
 * GATE_FLOW_FROM_SEARCH (a culprit search's culprits among the commits the
 * merge brings) or GATE_FLOW_FROM_MERGE (the authors of the commits the
 * merge brings: no search ran, or none found a culprit there).  Both NULL
 * when the flow is not blocked.
 */
void gate_flow_told_why(const gate_flow *f, const char **why, const char **from);

/*
 * Is flow f waiting for a culprit: blocked by the gate's own merge rejected (no change of a
 * developer's on it), its people the authors of what the merge brings (no search named one)?
 * A culprit verified then is told at once (GATE_FLOW_EV_CULPRIT).
 */
bool gate_flow_awaits_culprit(const gate_flow *f);

/*
 * A culprit search as gate_flow_suspects weighs it for a rejected merge:
 * its state (searching, suspected, verified, no-culprit, gave-up), the
 * configuration it searched, whether its culprit is one of the commits the
 * merge brings (in the source's history, not yet in the destination's), and
 * that culprit's author ("Name <address>").
 */
typedef struct gate_flow_search {
    const char *state;
    const char *config;
    bool brought;
    const char *author;
} gate_flow_search;

/*
 * The people to remind of a rejected merge: the authors of the culprits of
 * the searches (newest first) that are suspected or verified, whose culprit
 * the merge brings and whose configuration is one of the `nfailed` the
 * merge failed (nfailed 0: any), each once, at most `max`: how many were
 * put in `out` (0: none such; the caller falls back to the merge's authors).
 */
size_t gate_flow_suspects(const gate_flow_search *searches, size_t n, const char *const *failed,
                          size_t nfailed, gate_flow_person *out, size_t max);

/*
 * The flow branch of a flow: `keel-gate/flow/<from>-to-<to>`, each '/' of a
 * branch's name written as '+' so the name is one path component (comp/net
 * -> main: keel-gate/flow/comp+net-to-main; git allows '+' in a ref name).
 * Two flows whose names would be the same (a-to-b -> c and a -> b-to-c) are
 * refused by the configuration.  KEEL_E_RANGE when it does not fit `size`.
 */
KEEL_MUST_USE keel_status gate_flow_branch(const char *from, const char *to, char *out,
                                           size_t size);

/*
 * The levels of the destination's configurations that test a change of
 * `branch` for `target` (the pre-merge level, issue 17): for the flow branch
 * of a flow of `cfg` into `target`, GATE_LEVEL_GATE | GATE_LEVEL_PRE_MERGE
 * and the flow's own `levels`; for any other branch GATE_LEVEL_GATE alone,
 * so a configuration at `pre-merge` never runs on an ordinary change.
 */
unsigned gate_flow_levels(const gate_config *cfg, const char *target, const char *branch);

/*
 * A recorded resolution of one conflicting path (keel's own rerere; libgit2
 * has none): the conflict is the path and the three blob ids git's merge
 * found there (the merge base's, the destination's = ours, the source's =
 * theirs; "" for a side without the file); the resolution is the blob a
 * developer's resolution that landed holds at the path ("": deleted) and its
 * file mode.  Recorded in the store (store_flow.h) when a flow's change that
 * resolved a conflict lands; applied by gate_flow_merge (flowmerge.h) when
 * the same conflict comes back: the same three blobs, or the same hunks in a
 * file whose other parts changed (as git's rerere matches).
 */
enum { GATE_FLOW_PATH_MAX = 1024 };
typedef struct gate_flow_resolution {
    char path[GATE_FLOW_PATH_MAX];
    char base[GATE_FLOW_SHA_MAX];
    char ours[GATE_FLOW_SHA_MAX];
    char theirs[GATE_FLOW_SHA_MAX];
    char blob[GATE_FLOW_SHA_MAX];
    unsigned mode;
    /*
     * The conflict's hunks (flowmerge.h gate_flow_hunks; "" when it has none:
     * a side deleted the file, a binary file): their id (each hunk's "ours"
     * and "theirs" text, the smaller first) and the preimage, the blob of the
     * file with its markers.  A lookup that found the record by its hunks
     * (the three blobs differ) sets by_hunks and gives the recorded preimage.
     */
    char hunks[GATE_FLOW_SHA_MAX];
    char preimage[GATE_FLOW_SHA_MAX];
    bool by_hunks;
} gate_flow_resolution;

#endif /* KEEL_GATE_FLOW_H */
