/*
 * gate/ranks.h - the rank order of keel-gate's locks (keel/lock.h): taken in
 * increasing rank, never the reverse.  The gatekeeper thread owns the store,
 * the repository and the scheduler; only the executor's queues are shared.
 */
#ifndef KEEL_GATE_RANKS_H
#define KEEL_GATE_RANKS_H

enum gate_rank {
    GATE_RANK_POOL = 10,   /* the executor: jobs waiting, jobs done */
    GATE_RANK_NOTIFY = 20, /* the notifier: its hook, wake-ups, stop (notify.c) */
    GATE_RANK_OUTPUT = 90  /* a leaf: one line of progress at a time */
};

#endif /* KEEL_GATE_RANKS_H */
