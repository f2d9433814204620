/*
 * gate/queue/qlock.h - one gatekeeper per queue: an advisory lock on a file, held
 * by `keel-gate run` for as long as it runs.
 *
 *   gate_qlock *lk;
 *   keel_status s = gate_qlock_take("/srv/x.db.d/targets/main/run.lock", &lk);
 *   // KEEL_E_BUSY: another gate holds it; the message names its pid, host and start
 *   ...
 *   gate_qlock_release(lk);
 *
 * The lock is an open-file-description lock (fcntl F_OFD_SETLK, Linux): the
 * kernel drops it when the process ends, however it ends (kill -9
 * included), so a lock is never stale and never needs removing by hand.
 * Whoever holds it writes "pid host since" into the file, for the message
 * the next one gets; the file itself stays (its presence means nothing).
 */
#ifndef KEEL_GATE_QLOCK_H
#define KEEL_GATE_QLOCK_H

#include "keel/keel.h"

typedef struct gate_qlock gate_qlock; /* opaque */

/*
 * Take the lock on `path` (created when absent), without waiting.
 * KEEL_E_BUSY when another process holds it, with the details "pid",
 * "host" and "since" (seconds since the epoch) when the holder wrote them.
 */
KEEL_MUST_USE keel_status gate_qlock_take(const char *path, gate_qlock **out);
/*
 * Who holds the lock on `path`, without taking it or writing anything (for
 * `status`): out->held, and the holder's pid, host and start (seconds since
 * the epoch; 0 when it has not written them yet).  No file: not held.
 */
typedef struct gate_qlock_holder {
    bool held;
    long long pid;
    char host[256];
    long long since;
} gate_qlock_holder;
KEEL_MUST_USE keel_status gate_qlock_probe(const char *path, gate_qlock_holder *out);

/* Let it go (NULL: nothing). */
void gate_qlock_release(gate_qlock *lk);

#endif /* KEEL_GATE_QLOCK_H */
