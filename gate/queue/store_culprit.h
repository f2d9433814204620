/*
 * gate/queue/store_culprit.h - the culprit searches in keel-gate's store
 * (store_culprit.c): one search per failure of a configuration on the
 * target (gate/levels/search.c runs them), its range, the flake rate it
 * used, its state, every build it made and its verdict with the evidence.
 *
 * The range is the target's commits that have a row of the configuration
 * at the post level, from the newest that passed it (index 0) to the one
 * that failed (index n), oldest first.  A build is running, done (failed or
 * passed, its log) or abandoned (cancelled, or running when the gate was
 * killed).  Every start and every end takes the search's next sequence
 * number: replaying them in that order into a fresh gate_culprit (pure
 * logic, deterministic) gives back the search's state after a kill -9.
 */
#ifndef KEEL_GATE_STORE_CULPRIT_H
#define KEEL_GATE_STORE_CULPRIT_H

#include "store.h"

enum {
    GATE_SEARCH_STATE_MAX = 16,
    GATE_SEARCH_EVIDENCE_MAX = 4096,
    GATE_SEARCH_RANGE_MAX = 1024 /* commits in a range: the oldest beyond are left out */
};

typedef struct gate_search_row {
    long long id;
    char target[GATE_NAME_MAX];
    char config[GATE_NAME_MAX];
    unsigned tier;
    unsigned n;                        /* commits 1..n searched; 0 is the last that passed */
    double flake;                      /* the flake rate the search used */
    char state[GATE_SEARCH_STATE_MAX]; /* searching, suspected, verified, no-culprit, gave-up */
    char culprit[GATE_OID_HEX];        /* suspected, verified: the commit; else "" */
    bool told_suspected;               /* culprit-suspected was recorded */
    bool handed;                       /* verified: handed to the backout (culprit_verified) */
    char evidence[GATE_SEARCH_EVIDENCE_MAX];
    long long started_at, updated_at;
    char level[GATE_SEARCH_STATE_MAX]; /* where the failure was seen: post, nightly */
} gate_search_row;

typedef struct gate_search_build {
    long long id;
    unsigned idx; /* in the range */
    char commit[GATE_OID_HEX];
    char state[GATE_SEARCH_STATE_MAX]; /* running, done, abandoned */
    bool failed;
    long long start_seq, end_seq; /* end_seq 0: running */
    char log[GATE_REASON_MAX];
} gate_search_build;

/*
 * A new search of `config` (tier) on `target`, over the post rows of that
 * configuration from the newest before `failed` that passed at least once
 * to `failed`, with flake rate `flake`: *id (0 and nothing recorded when no
 * commit before `failed` is known to pass it).  The range's pending post
 * rows of that configuration are skipped (the search builds what it
 * needs), in the same transaction.
 */
KEEL_MUST_USE keel_status gate_store_search_new(gate_store *st, const char *target,
                                                const char *config, unsigned tier,
                                                const char *failed, double flake, long long now,
                                                long long *id);
/*
 * A new search of `config` (tier) on `target` started at `level` ("post",
 * "nightly") over the range given: commits[0] passed the configuration,
 * commits[count - 1] failed it, the first-parent line between, oldest
 * first (2 to GATE_SEARCH_RANGE_MAX + 1 commits): *id.  The nightly level's
 * (its range is the target's history between two nightly runs, not post
 * rows).
 */
KEEL_MUST_USE keel_status gate_store_search_new_range(gate_store *st, const char *target,
                                                      const char *config, unsigned tier,
                                                      const char *level,
                                                      char (*commits)[GATE_OID_HEX], size_t count,
                                                      double flake, long long now, long long *id);
/*
 * The searches of `target` still searching or suspected, started at `level`
 * ("nightly"; any other text: every other level; NULL: all), ids, oldest
 * first; at most max.
 */
KEEL_MUST_USE keel_status gate_store_search_active(gate_store *st, const char *target,
                                                   const char *level, long long *ids, size_t max,
                                                   size_t *n);
/*
 * Is a search of (target, config) still searching or suspected whose range
 * holds `commit` after its first (it searches that failure already)?
 */
KEEL_MUST_USE keel_status gate_store_search_covering(gate_store *st, const char *target,
                                                     const char *config, const char *commit,
                                                     bool *busy);
/*
 * The newest search of `target` at level "flow" (a rejected flow merge's:
 * gate/flows/flows_suspects.c) whose range ends at `merge`: *id (0: none).
 */
KEEL_MUST_USE keel_status gate_store_search_flow(gate_store *st, const char *target,
                                                 const char *merge, long long *id);
/*
 * Is a search of (target, config) still searching or suspected?  A flow
 * merge's search (level "flow") does not count: it searches commits not on
 * the target.
 */
KEEL_MUST_USE keel_status gate_store_search_busy(gate_store *st, const char *target,
                                                 const char *config, bool *busy);
/* Search `id`; KEEL_E_NOTFOUND when none. */
KEEL_MUST_USE keel_status gate_store_search_get(gate_store *st, long long id, gate_search_row *out);
/* The newest search of (target, config): *found false when none. */
KEEL_MUST_USE keel_status gate_store_search_newest(gate_store *st, const char *target,
                                                   const char *config, gate_search_row *out,
                                                   bool *found);
/* Commit idx of search id's range (0..n). */
KEEL_MUST_USE keel_status gate_store_search_commit(gate_store *st, long long id, unsigned idx,
                                                   char out[GATE_OID_HEX]);
/*
 * The builds of search id, by start order (at most max of *n).  Replaying:
 * every start and end by their sequence numbers.
 */
KEEL_MUST_USE keel_status gate_store_search_builds(gate_store *st, long long id,
                                                   gate_search_build *out, size_t max, size_t *n);
/* A build of commit idx starts: *build its id. */
KEEL_MUST_USE keel_status gate_store_search_build_start(gate_store *st, long long id, unsigned idx,
                                                        const char *log, long long now,
                                                        long long *build);
/*
 * Build `build` ended: done (failed or passed) and its result added to the
 * post row of its commit (the history shows it), or `abandoned` (no result).
 * *search (when not NULL): its search.  KEEL_E_STATE when it is not running.
 */
KEEL_MUST_USE keel_status gate_store_search_build_end(gate_store *st, long long build,
                                                      bool abandoned, bool failed, long long now,
                                                      long long *search);
/* The builds of `target`'s searches left running (a kill): abandoned.  *n: how many. */
KEEL_MUST_USE keel_status gate_store_search_recover(gate_store *st, const char *target, size_t *n);
/*
 * Search id's state moves to `state` (culprit: its commit or ""; evidence),
 * with the event `kind` and its JSON detail when kind is not NULL, in one
 * transaction; `suspected` marks culprit-suspected told.
 */
KEEL_MUST_USE keel_status gate_store_search_set(gate_store *st, long long id, const char *state,
                                                const char *culprit, const char *evidence,
                                                bool suspected, const char *kind,
                                                const char *detail, long long now);
/* Verified search id was handed to the backout. */
KEEL_MUST_USE keel_status gate_store_search_handed(gate_store *st, long long id);
/* Verified searches of `target` not yet handed to the backout (ids, at most max). */
KEEL_MUST_USE keel_status gate_store_search_unhanded(gate_store *st, const char *target,
                                                     long long *ids, size_t max, size_t *n);
/*
 * The configuration's measured flake rate: its builds that failed where a
 * rerun of the same thing passed, over all its builds (the gate's jobs: a
 * failed attempt of a candidate that passed; the post level's rows: the
 * failures of the flaky ones; the nightly level's runs: the same).  *runs:
 * the builds counted (0: no history).
 */
KEEL_MUST_USE keel_status gate_store_flake_rate(gate_store *st, const char *target,
                                                const char *config, double *rate,
                                                unsigned long long *runs);
/*
 * The change a gate merge landed: the landed change of `target` whose head
 * is `head` (the merge's second parent): *id 0 when none.
 */
KEEL_MUST_USE keel_status gate_store_change_of_head(gate_store *st, const char *target,
                                                    const char *head, long long *id,
                                                    char branch[GATE_NAME_MAX]);

#endif /* KEEL_GATE_STORE_CULPRIT_H */
