/*
 * gate/flows/flows_turn.h - branch flows running in the gate (issue 18):
 * each turn of gate_run, the flows of the target's configuration whose
 * destination is the gate's target are fed what happened (the source moved,
 * the destination moved, the flow's change landed or was rejected, a
 * developer pushed a resolution to the flow branch, the clock) and their
 * decisions carried out (flow.h): the merge made (flowmerge.h) and submitted
 * through the gate at GATE_FLOW_PRIORITY, the people told through the notify
 * hook (store_flow.h: the state and the event in one transaction).
 *
 * Crash safety: a kill between the merge and the submission makes the merge
 * again (the flow branch is moved: nothing was queued); a kill between the
 * submission and the save of the flow's state finds the flow branch's
 * active change and takes it instead of merging and queueing again; what was
 * told is saved with the state (store_flow.h): a kill before that
 * transaction tells it at the next turn, a kill after it does not tell it
 * again; a rejected merge's own culprit search is found again by its merge
 * (gate_flows_search_start), not started twice.  The stress points
 * gate.flow_after_merge, gate.flow_after_submit, gate.flow_after_search,
 * gate.flow_before_told and gate.flow_after_told end the process there as
 * kill -9 would.
 *
 * Not an API: gate_loop.c and `keel-gate flows` call it.
 */
#ifndef KEEL_GATE_FLOWS_TURN_H
#define KEEL_GATE_FLOWS_TURN_H

#include <stdbool.h>
#include <stdio.h>

#include "flow.h"
#include "gate_loop.h"

/*
 * A flow's merge in the destination's queue: above any priority a person
 * gives up to 2^29 - 1 (aging included), below a backout's (backout.h).
 */
enum { GATE_FLOW_PRIORITY = 1 << 29 };

/*
 * One turn of the flows into the gate's target at `now` (seconds): what the
 * decisions say is done.  *queued: a merge or a resolution was submitted
 * (run --once goes on to test it).  A flow's own failure (git, store) is
 * said once per flow and kept from the queue: the flow is tried again at the
 * next turn; KEEL_OK is returned.
 */
KEEL_MUST_USE keel_status gate_flows_turn(gate *g, long long now, bool *queued);

/*
 * `keel-gate flows [--json]`: each flow of the target's configuration (every
 * flow it names, into the target or not): its source's and destination's
 * tips, the commits waiting (on the source, not in the destination), the
 * last sync, the state, blocked since when and why, and what was told to
 * whom and when.
 */
KEEL_MUST_USE keel_status gate_flows_show(gate *g, FILE *f, bool json);

/*
 * `keel-gate status`'s part (text or, `json`, the `,"flows":[...]` member):
 * one brief line per flow of the target's configuration: its state, the
 * change in the queue, the commits waiting, and when blocked since how long,
 * why and how many reminders.  Nothing (text) or [] (JSON) when the
 * configuration names no flow or cannot be read.
 */
KEEL_MUST_USE keel_status gate_flows_status(gate *g, FILE *f, bool json);

/*
 * The people to remind of a flow's change `change` (its commit `merge`)
 * that the destination's queue rejected, when a culprit search knows them
 * (flows_suspects.c): the authors of the culprits that the searches of the
 * flow's `source` (its target in this store: its post and nightly levels)
 * suspected or verified, of a configuration the change failed, among the
 * commits the merge brings (in `merge`'s history, not in `dest`'s); a merge
 * the gate made on the source is its change's head's author.  *n 0 (none
 * ran, none found a culprit there): the caller tells the authors of the
 * commits the merge brings instead.
 */
KEEL_MUST_USE keel_status gate_flows_suspects(gate *g, const char *source, long long change,
                                              const char *merge, const char *dest,
                                              gate_flow_person *out, size_t max, size_t *n);

/*
 * The destination's queue rejected the gate's flow merge `merge` (its change
 * `change`) and no search named a culprit among what it brings: a culprit
 * search of the first configuration it failed starts on the gate's target
 * (search.h gate_search_flow_start) over the destination's tip merged with
 * each commit the merge brings (flowmerge.h gate_flow_search_range).  Not
 * twice: a search of `merge` started before (a kill -9 between it and the
 * flow's state) is taken.  Nothing when no configuration failed, or the
 * merge brings too many commits (said).
 */
KEEL_MUST_USE keel_status gate_flows_search_start(gate *g, long long change, const char *merge);

/*
 * The culprit the search of flow merge `merge` verified: *found, and its
 * author in *out (the candidate's, not the gate's merge's).  Not found while
 * it searches, when it ended without a culprit, or when none ran.
 */
KEEL_MUST_USE keel_status gate_flows_search_culprit(gate *g, const char *merge,
                                                    gate_flow_person *out, bool *found);

#endif /* KEEL_GATE_FLOWS_TURN_H */
