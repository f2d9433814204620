/*
 * gate/notify.h - keel-gate's notification hook: the configured `notify`
 * command (an argv vector, never a shell) runs in `dir` with one JSON event
 * on its standard input.  A hook that fails, hangs (killed after the
 * timeout) or cannot start is an error for the caller to record: it never
 * blocks the queue.
 */
#ifndef KEEL_GATE_NOTIFY_H
#define KEEL_GATE_NOTIFY_H

#include "keel/keel.h"

#include "config.h"

enum { GATE_NOTIFY_TIMEOUT_MS = 10000 };

/* The hook's output (stdout and stderr) is appended to `log` (NULL: discarded). */
KEEL_MUST_USE keel_status gate_notify_run(const gate_words *cmd, const char *dir, const char *json,
                                          const char *log, unsigned timeout_ms);

#endif /* KEEL_GATE_NOTIFY_H */
