/*
 * gate/levels/search.h - the culprit search's I/O edge (issue 17): when a
 * configuration of tier 1 or 2 fails at the post level (or at the nightly
 * level: gate_search_nightly_failed), the commits between the last that
 * passed it and the one that failed are searched for the one that broke it, flake-aware (gate/queue/culprit.h: the pure logic), on the
 * job slots the queue is not using (post.c's builds and rule: cancelled when
 * the queue needs the slot, built again later).
 *
 * Kept in the store (store_culprit.h): every build and result, so a killed
 * gate replays them into a fresh gate_culprit and goes on; builds running at
 * the kill are built again.
 *
 * Not an API: post.c and nightly.c call it.
 */
#ifndef KEEL_GATE_SEARCH_H
#define KEEL_GATE_SEARCH_H

#include "culprit.h"
#include "gate_loop.h"
#include "store_culprit.h"

enum {
    GATE_SEARCH_PERSON_MAX = 256, /* "Name <email>" */
    GATE_SEARCH_SUBJECT_MAX = 200,
    GATE_SEARCH_FLAKE_FLOOR_PERMILLE = 10, /* 1%: a configuration without history */
    GATE_SEARCH_BASE_RUNS = 5,             /* runs of a failure with no pass before it, at most */
    GATE_SEARCH_FLAKE_CEIL_PERMILLE = 300  /* 30%: beyond it, a measured rate is taken as 30% */
};

/*
 * A verified culprit, as handed to the backout (search.c's culprit_verified):
 * the commit on the target's first-parent line that broke `config`; for a
 * merge the gate made, the change it landed (change_id, branch; author and
 * committer then the change's head commit's).
 */
typedef struct gate_search_found {
    long long search; /* the search's id in the store */
    char target[GATE_NAME_MAX];
    char config[GATE_NAME_MAX];
    unsigned tier;
    char commit[GATE_OID_HEX]; /* the culprit on the target */
    char parent[GATE_OID_HEX]; /* its first parent: passed the configuration */
    char subject[GATE_SEARCH_SUBJECT_MAX];
    char author[GATE_SEARCH_PERSON_MAX];
    char committer[GATE_SEARCH_PERSON_MAX];
    long long change_id; /* a gate merge's change; 0: a commit pushed around the gate */
    char branch[GATE_NAME_MAX];
    char evidence[GATE_SEARCH_EVIDENCE_MAX];
    char log[GATE_REASON_MAX]; /* the log of a failing build of the culprit */
} gate_search_found;

/* A new run: builds a killed gate left running are abandoned (built again); verdicts handed. */
KEEL_MUST_USE keel_status gate_search_recover(gate *g);

/*
 * A post build of `config` (tier) failed at `commit`, a new failure (`was`:
 * the configuration's outcome before it): a search starts unless tier 3, one
 * runs already for it, or no commit before is known to pass.  When none can
 * start and the configuration is measured to flake, the oldest failure of its
 * history (every run of it failed, no pass up to `commit`) is built again:
 * until it passes (a flake: the search then starts from it, post.c) or has
 * failed as many times in a row as a flake would below 1% of the time
 * (2 to GATE_SEARCH_BASE_RUNS).
 */
KEEL_MUST_USE keel_status gate_search_post_failed(gate *g, const char *commit, const char *config,
                                                  unsigned tier, const char *was);

/*
 * A nightly run of `config` (tier) due at `due_at` failed at `commit`, a new
 * failure (`was`: the configuration's nightly outcome before it): a search
 * starts at level nightly over the target's first-parent line from the
 * commit of the configuration's newest nightly run that passed to `commit`
 * (at most GATE_SEARCH_RANGE_MAX commits), unless tier 3, a search of that
 * configuration running already holds `commit` in its range (a post
 * search of the same failure), no nightly run before passed, or the
 * commit that passed is `commit` itself or not on that line.
 */
KEEL_MUST_USE keel_status gate_search_nightly_failed(gate *g, const char *commit,
                                                     const char *config, unsigned tier,
                                                     const char *was, long long due_at);

/*
 * A flow's merge into the target was rejected for failing `config` (tier):
 * a search starts at level "flow" over `range` (count commits: the
 * destination's tip the merge was made on, which passed; the tip merged
 * with each commit the merge brings, oldest first; the merge, which failed:
 * flowmerge.h gate_flow_search_range): *id.  Its builds run as the post
 * level's searches do, the configuration looked up at any level but try;
 * its verified culprit is told (culprit-verified, the candidate commit's
 * author) but never handed to the backout (it is not on the target).
 */
KEEL_MUST_USE keel_status gate_search_flow_start(gate *g, const char *config, unsigned tier,
                                                 char (*range)[GATE_OID_HEX], size_t count,
                                                 long long *id);

/*
 * Start the builds of the searches started at `level` ("post": the post
 * level's, called by its turn first; "nightly": the nightly level's, called
 * by its turn, after the post level's took the slots it needs) on free
 * slots (not when `queue_busy` or paused).  A search's builds are at its
 * level: its configuration looked up at that level.  *busy: such a search is
 * active (run --once waits for it).
 */
KEEL_MUST_USE keel_status gate_search_turn(gate *g, const char *level, bool queue_busy, bool paused,
                                           bool *busy);

/* A search build is back: its result recorded, the verdict acted on. */
KEEL_MUST_USE keel_status gate_search_build_done(gate *g, long long build, bool no_result,
                                                 bool failed, const char *commit,
                                                 const char *config);

/*
 * Search id rebuilt from the store alone: its builds' starts and ends
 * replayed in their order into a fresh gate_culprit (*out, the caller's to
 * delete); KEEL_E_INTERNAL when the record does not replay.
 */
KEEL_MUST_USE keel_status gate_search_replay(gate_store *st, long long id, gate_culprit **out);

/* Search id's verdict now (replayed from the store): the posterior's top, runs (keel-gate culprit). */
KEEL_MUST_USE keel_status gate_search_verdict(gate *g, long long id, gate_culprit_verdict *out);

#endif /* KEEL_GATE_SEARCH_H */
