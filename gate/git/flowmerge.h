/*
 * gate/git/flowmerge.h - a branch flow's merge (issue 18): SRC merged into
 * DST with libgit2 as a real merge commit (parents: DST's tip, then SRC's;
 * never a squash nor a rebase, so the next sync has a merge base), on the
 * flow's branch (gate_flow_branch, flow.h), ready to be queued for DST.
 *
 * Three outcomes:
 *   MADE         the merge commit; the flow branch points at it;
 *   NOTHING_NEW  SRC's tip is already in DST's history, or the merge would
 *                change none of DST's files (SRC holds only DST's own
 *                commits merged back, or changes DST has already): no
 *                commit, no ref (two flows between the same branches do
 *                not merge each other's sync merges back and forth);
 *   CONFLICT     the paths that conflict and, for each side since the merge
 *                base, the authors of the commits that touched one of those
 *                paths (the people who can fix it), nobody else.  Merges are
 *                not counted as touching (a sync merge's author is the gate,
 *                and the commits it brought are counted on their own side).
 *                The flow branch is left as it was.
 *
 * A developer's resolution is a commit on the flow branch (pushed by hand)
 * whose history holds both tips: gate_flow_resolved says whether the branch
 * holds one, so the gate takes that commit as the change instead of merging
 * again.
 *
 * Recorded resolutions (keel's own rerere: libgit2 has none).  When a flow's
 * change that resolved a conflict lands, gate_flow_resolutions reads, for
 * each path its parents' merge conflicts on, the conflict (the three blob
 * ids) and what the change holds there; the gate records them in the store.
 * gate_flow_merge, given a `recall`, looks each conflict up (and, not
 * found, with its sides exchanged: a resolution made by merging the
 * destination into the source, its first parent the source's); when every
 * conflicting path has a recorded resolution whose blob is in the
 * repository, they are applied and the merge is MADE (out->reused: how many,
 * their names in out->paths; the commit message says so), to be tested by
 * the gate like any merge.  One path without a record: a CONFLICT as before.
 */
#ifndef KEEL_GATE_FLOWMERGE_H
#define KEEL_GATE_FLOWMERGE_H

#include "flow.h"
#include "git.h"

typedef enum gate_flowmerge_result {
    GATE_FLOWMERGE_MADE,
    GATE_FLOWMERGE_NOTHING_NEW,
    GATE_FLOWMERGE_CONFLICT
} gate_flowmerge_result;

enum { GATE_FLOWMERGE_PATHS = 16, GATE_FLOWMERGE_PEOPLE = 32, GATE_FLOWMERGE_WALK = 10000 };

/* Which side a person's commits are on (gate_flowmerge_person.sides): bits. */
enum { GATE_FLOWMERGE_SOURCE = 1u << 0, GATE_FLOWMERGE_DEST = 1u << 1 };

typedef struct gate_flowmerge_person {
    char who[256];    /* "Name <address>" as the commits' author says */
    unsigned commits; /* how many of their commits touched a conflicting path */
    unsigned sides;   /* GATE_FLOWMERGE_SOURCE | GATE_FLOWMERGE_DEST */
} gate_flowmerge_person;

typedef struct gate_flowmerge {
    gate_flowmerge_result result;
    char source[GATE_HEX];                              /* SRC's tip merged */
    char dest[GATE_HEX];                                /* DST's tip merged onto */
    char base[GATE_HEX];                                /* their merge base ("" when none) */
    char merge[GATE_HEX];                               /* MADE: the merge commit */
    char paths[GATE_FLOWMERGE_PATHS][GATE_ORIGIN_PATH]; /* CONFLICT: the first ones */
    size_t npaths, total_paths;
    /* the source's side and the destination's in turn, most commits first on each */
    gate_flowmerge_person people[GATE_FLOWMERGE_PEOPLE];
    size_t npeople;
    size_t reused; /* MADE: conflicting paths a recorded resolution resolved (in paths) */
} gate_flowmerge;

/*
 * Where gate_flow_merge looks recorded resolutions up: fn fills r->blob and
 * r->mode for the conflict r names (path, base, ours, theirs), or, none
 * recorded for those blobs, for the same path and hunks (r->hunks: then
 * r->by_hunks and r->preimage, the recorded one); *found false when neither
 * is recorded.
 */
typedef struct gate_flow_recall {
    keel_status (*fn)(void *ctx, gate_flow_resolution *r, bool *found);
    void *ctx;
} gate_flow_recall;

/*
 * Merge branch `from` into branch `to` on branch `flow_branch` (made, or
 * moved there whatever it held); the commit is the gate's
 * ("keel-gate <keel-gate@localhost>", at `when`, seconds since the epoch).
 * `recall` (NULL: none): the recorded resolutions, tried on a conflict.
 * GATE_E_BAD_REF for a bad branch name; anything else is the gate's error.
 */
KEEL_MUST_USE keel_status gate_flow_merge(gate_repo *r, const char *from, const char *to,
                                          const char *flow_branch, long long when,
                                          const gate_flow_recall *recall, gate_flowmerge *out);

/*
 * The resolutions `commit` holds: when it is a two-parent commit whose
 * parents' merge (the first parent ours, the second theirs) conflicts, one
 * row per conflicting path (the first `max`): the conflict and the blob and
 * mode `commit` has there ("" and 0: the path deleted).  *n 0 when it is not
 * a merge or its parents merge cleanly.
 */
KEEL_MUST_USE keel_status gate_flow_resolutions(gate_repo *r, const char *commit,
                                                gate_flow_resolution *out, size_t max, size_t *n);

/*
 * Does `flow_branch` hold a resolution of the flow `from` -> `to`: a commit
 * other than `made` (the gate's own merge; NULL or "": none) whose history
 * holds both `from`'s tip and `to`'s tip as `source` and `dest` give them
 * (40 hex digits)?  *commit: its id ("" when not).
 */
KEEL_MUST_USE keel_status gate_flow_resolved(gate_repo *r, const char *flow_branch,
                                             const char *source, const char *dest, const char *made,
                                             bool *yes, char commit[GATE_HEX]);

/*
 * Who can fix a merge that failed its tests: the authors of the commits
 * `merge` (a two-parent commit: the flow's merge or a developer's
 * resolution) brings into its first parent, merges not counted, most
 * commits first, into out->people (out->source, out->dest: its parents).
 * A commit that is not a two-parent merge brings nobody (npeople 0).
 */
KEEL_MUST_USE keel_status gate_flow_brought(gate_repo *r, const char *merge, gate_flowmerge *out);

/*
 * How many commits `source` has that `dest` has not (both 40 hex digits): a
 * flow's waiting.  Merges are not counted (a sync merge brings nothing of its
 * own: the commits it brought are counted, or are in `dest`); at most
 * GATE_FLOWMERGE_WALK commits are looked at.
 */
KEEL_MUST_USE keel_status gate_flow_waiting(gate_repo *r, const char *source, const char *dest,
                                            size_t *n);

/*
 * The hunks of conflict k (flowhunks.c): git's merge of k->base, k->ours and
 * k->theirs with conflict markers; each hunk's two sides put in a fixed
 * order (the smaller text first), so a merge made the other way round has
 * the same; k->hunks the id of the hunks' text (a blob id of it, not
 * stored), k->preimage the blob of the file with its markers in that order
 * (written to the repository).  Both "" when it has no hunks (a side
 * without the file, a binary file).
 */
KEEL_MUST_USE keel_status gate_flow_hunks(gate_repo *r, gate_flow_resolution *k);

/*
 * A recorded resolution carried to the same conflict in a file whose other
 * parts changed, as git's rerere does: git's three-way merge of `recorded`
 * (the recorded preimage: the ancestor), `now` (this conflict's preimage)
 * and `result` (the recorded resolution).  *clean: it merged without a
 * conflict, `out` the resulting blob (written); else nothing is applied.
 */
KEEL_MUST_USE keel_status gate_flow_hunks_apply(gate_repo *r, const char *path,
                                                const char *recorded, const char *now,
                                                const char *result, char out[GATE_HEX],
                                                bool *clean);

/*
 * The range the culprit search of a rejected flow merge walks (flowsearch.c):
 * `merge` (two parents: the destination's tip D, the source's tip S) with
 * what it brings laid out as a line the search can bisect: out[0] = D (it
 * passed: it is the destination's tip), out[i] = D merged with the i-th
 * commit of S's first-parent line that D does not hold (oldest first),
 * out[count - 1] = `merge` itself (D merged with S: it failed).  Each
 * in-between merge is made as the flow's is (libgit2), a commit of no branch
 * whose author and committer are keel-gate at `merge`'s commit time and
 * whose message names the candidate, so making them again (after a kill -9)
 * gives the same ids.  A candidate whose merge into D conflicts is left out
 * (the next one holds its change).  *reached false (and *count 0): the line
 * holds more than max - 2 commits D does not have, or `merge` is not a
 * two-parent commit: no range.
 */
KEEL_MUST_USE keel_status gate_flow_search_range(gate_repo *r, const char *merge,
                                                 char (*out)[GATE_HEX], size_t max, size_t *count,
                                                 bool *reached);

#endif /* KEEL_GATE_FLOWMERGE_H */
