/*
 * gate/cli/signals.h - SIGINT, SIGTERM and SIGHUP for `keel-gate run`; SIGPIPE
 * ignored.
 *
 * SIGHUP (the terminal or the ssh session that started run went away) is
 * taken as SIGTERM.  SIGPIPE is ignored for the time of run: a write to a
 * closed pipe (stdout into `| head`, a hook that did not read its input)
 * fails with EPIPE instead of killing the gate silently with jobs left
 * behind.  The first signal asks the gate to stop (gate_request_stop): no new work, the
 * running jobs' process groups killed, what was in flight back in the queue,
 * then run returns and the program exits normally.  A second one exits at
 * once, with 128 + the signal, after a SIGKILL to every job's process group:
 * the store is then as after a kill -9, which the next run recovers from.
 *
 * The handler only writes the signal's number into a pipe (a self-pipe); a
 * keel thread reads it and does the rest.
 */
#ifndef KEEL_GATE_SIGNALS_H
#define KEEL_GATE_SIGNALS_H

#include <stdio.h>

#include "keel/keel.h"

#include "gate.h"

typedef struct gate_signals gate_signals; /* opaque */

/* Handle SIGINT, SIGTERM and SIGHUP for `g` until gate_signals_stop; messages go to `err`. */
KEEL_MUST_USE keel_status gate_signals_start(gate *g, FILE *err, gate_signals **out);
/* Put the previous handlers back (NULL is fine). */
void gate_signals_stop(gate_signals *w);

#endif /* KEEL_GATE_SIGNALS_H */
