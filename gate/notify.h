/*
 * gate/notify.h - keel-gate's notification hook, off the landing path.
 *
 * The gate records every land, reject, reopen, conflict and flake as an event in the
 * store, in the transaction of the state change itself.  A notifier (a keel
 * thread `gate_run` starts, with a store connection of its own) feeds those
 * events of its target to the configured `notify` command (an argv vector,
 * never a shell), one JSON object on its standard input per event, in the
 * store's order:
 *
 *   {"id":42,"event":"land","change":7,"target":"main","branch":"x","head":"<40 hex>",
 *    "merge":"<40 hex>","reason":"landed"}
 *
 * A cursor in the store (per target) moves past an event only once the hook
 * exited 0 for it: delivery is at least once across restarts (an event whose
 * hook ran when the gate was killed is delivered again: "id" tells a consumer
 * it has seen it).  Memory does not grow with a backlog: GATE_NOTIFY_BATCH
 * events are read at a time.  A hook that fails, hangs (killed after
 * GATE_NOTIFY_TIMEOUT_MS) or cannot start is run again after a pause, up to
 * GATE_NOTIFY_ATTEMPTS runs in all (the count is kept in the store), then the
 * event is recorded as a "notify-failed" event and passed over.  None of it
 * touches the gate's own thread: a slow hook delays only the hook.  On stop
 * the notifier has GATE_NOTIFY_STOP_MS to deliver what is pending (a hook
 * still running then is killed); the rest waits for the next run.
 */
#ifndef KEEL_GATE_NOTIFY_H
#define KEEL_GATE_NOTIFY_H

#include <stdio.h>

#include "keel/keel.h"

#include "config.h"

enum {
    GATE_NOTIFY_TIMEOUT_MS = 10000, /* one run of the hook */
    GATE_NOTIFY_ATTEMPTS = 3,       /* runs of the hook per event before it is passed over */
    GATE_NOTIFY_BACKOFF_MS = 500,   /* the pause after a failed run: 0.5 s, then 3 x as long */
    GATE_NOTIFY_STOP_MS = 3000,     /* on stop: how long what is pending may still take */
    GATE_NOTIFY_BATCH = 16          /* events read from the store at a time */
};

typedef struct gate_notifier gate_notifier; /* opaque */

/*
 * Start delivering the events of `target` in the store at `state`: the hook
 * runs in `dir` with its output appended to `log`; warnings (a failed run, a
 * store that cannot be read) go to `out` (NULL: none).  Nothing is delivered
 * before the first gate_notifier_set_hook.
 */
KEEL_MUST_USE keel_status gate_notifier_start(const char *state, const char *target,
                                              const char *dir, const char *log, FILE *out,
                                              gate_notifier **n);

/* The hook (copied): the target tip's `notify`; empty: none (events are passed over). */
KEEL_MUST_USE keel_status gate_notifier_set_hook(gate_notifier *n, const gate_words *cmd);

/* New events are in the store (the notifier also looks once a second by itself). */
void gate_notifier_wake(gate_notifier *n);

/*
 * Deliver what is pending within `deadline_ms`, then stop and free the
 * notifier.  *given_up (may be NULL): how many events it passed over after
 * GATE_NOTIFY_ATTEMPTS failed runs.
 */
void gate_notifier_stop(gate_notifier *n, unsigned deadline_ms, unsigned long long *given_up);

#endif /* KEEL_GATE_NOTIFY_H */
