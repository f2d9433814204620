/*
 * sched_int.h - sched_strategy.c's internals that its tests check directly
 * (not part of scheduler.h's API).
 */
#ifndef KEEL_GATE_SCHED_INT_H
#define KEEL_GATE_SCHED_INT_H

#include <stddef.h>

/*
 * The sizes adaptive searches from 1 to hi (batch sizes, depths): every one
 * up to GATE_SCHED_LADDER_ALL, then each about 1.125 times the last (about
 * six to an octave), hi, and those of `also` in range (the fixed
 * strategies' sizes and the shape in use), in order; how many (at most
 * GATE_SCHED_LADDER_MAX).
 */
enum { GATE_SCHED_LADDER_ALL = 32, GATE_SCHED_LADDER_MAX = 96, GATE_SCHED_REFINE_MAX = 64 };
size_t gate__sched_ladder(unsigned hi, const unsigned *also, size_t nalso, unsigned *out);

/*
 * The sizes from the neighbour of `pick` below it on ladder `v` (n sizes, in
 * order) to its neighbour above, every one, at most GATE_SCHED_REFINE_MAX / 2
 * either side of `pick`, into `out` (room for GATE_SCHED_REFINE_MAX + 1);
 * how many (0 when `pick` is not on it).  choice() judges them where the
 * ladders skip sizes.
 */
size_t gate__sched_around(const unsigned *v, size_t n, unsigned pick, unsigned *out);

#endif /* KEEL_GATE_SCHED_INT_H */
