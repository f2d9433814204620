/*
 * test_gate_sched_adapt.c - adaptive's choice of shape (gate_sched_shape) on
 * outlooks made by hand: pure logic, no simulated queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "capacity.h"
#include "scheduler.h"

/* The bench's free executor: 2 configurations (b 0.8 of a), not limited, a window of 4. */
static void free_outlook(gate_sched_params *pr, gate_sched_outlook *o, double p)
{
    gate_sched_params_default(pr);
    pr->retries = 0;
    memset(o, 0, sizeof(*o));
    o->p = p;
    o->n = 50.0; /* about what decay 0.98 keeps */
    o->queued = 100;
    o->parallel = GATE_CAP_UNLIMITED;
    o->jobs = 2;
    o->width = 1.8;
}

/*
 * Near the estimate where batches of 3 and single changes in a window of 4
 * take the same time (p about 0.11 on the free executor), the batches build
 * about 30% less.  In use, they are kept a little past it (p = 0.126: single
 * changes are 6% faster by the model, for 1.4x the builds); the old choice
 * left them as soon as they were 2% slower, and the estimate's noise made
 * adaptive flip between the two (bench_gate: 1.11x the builds of spec-batch
 * w=4 b=4, each flip costing time).  Single changes are still chosen afresh
 * and when they are much faster; a shape that builds more is not held.
 */
static void test_hold_shape_that_builds_less(void **state)
{
    (void)state;
    gate_sched_params pr;
    gate_sched_outlook o;
    unsigned b = 0, d = 0;
    free_outlook(&pr, &o, 0.126);
    double t1 = gate_sched_shape_time(&pr, &o, 1, 4), t3 = gate_sched_shape_time(&pr, &o, 3, 4);
    assert_true(t3 > t1 * 1.04 && t3 < t1 * 1.1); /* the premise: single changes faster */
    gate_sched_shape(&pr, &o, &b, &d);            /* nothing in use: the fastest */
    assert_int_equal(b, 1);
    assert_int_equal(d, 4);
    o.batch = 3;
    o.depth = 4;
    gate_sched_shape(&pr, &o, &b, &d); /* batches of 3 in use: kept */
    assert_int_equal(b, 3);
    assert_int_equal(d, 4);
    free_outlook(&pr, &o, 0.2); /* much faster single changes: left */
    o.batch = 3;
    o.depth = 4;
    gate_sched_shape(&pr, &o, &b, &d);
    assert_int_equal(b, 1);
    assert_int_equal(d, 4);
    free_outlook(&pr, &o, 0.1); /* single changes in use where batches are faster: left */
    o.batch = 1;
    o.depth = 4;
    gate_sched_shape(&pr, &o, &b, &d);
    assert_true(b >= 2);
    assert_int_equal(d, 4);
}

/* The bench's 2 cores: 2 configurations (b 0.8 of a), 2 jobs at once, a window of up to 4. */
static void two_cores_outlook(gate_sched_params *pr, gate_sched_outlook *o, double p)
{
    free_outlook(pr, o, p);
    o->parallel = 2.0;
}

/*
 * On 2 cores near p = 0.3, batches of 3 are a little faster than serial on
 * the mean (the model: 3% at p = 0.29) but their time spreads with the
 * failures, where serial's is one build a change whatever fails (bench_gate,
 * p = 0.3: batches of 3 1.4% faster on the mean, 8.5% slower on the worst
 * decile).  Serial is chosen there: within the bound's 5% of the fastest,
 * and its worst decile below the batches'.  Where batching wins by more
 * (2 cores at p = 0.1, the free executor) the batches stay.
 */
static void test_serial_when_as_good(void **state)
{
    (void)state;
    gate_sched_params pr;
    gate_sched_outlook o;
    unsigned b = 0, d = 0;
    two_cores_outlook(&pr, &o, 0.29);
    double t1 = gate_sched_shape_time(&pr, &o, 1, 1), t3 = gate_sched_shape_time(&pr, &o, 3, 1);
    assert_true(t3 < t1 / 1.02 && t3 > t1 / 1.05); /* the premise: batches of 3 faster */
    gate_sched_shape(&pr, &o, &b, &d);
    assert_int_equal(b, 1);
    assert_int_equal(d, 1);
    o.batch = 3; /* batches of 3 in use: left too */
    o.depth = 1;
    gate_sched_shape(&pr, &o, &b, &d);
    assert_int_equal(b, 1);
    assert_int_equal(d, 1);
    two_cores_outlook(&pr, &o, 0.1); /* batches much faster: kept */
    gate_sched_shape(&pr, &o, &b, &d);
    assert_true(b >= 2);
    assert_int_equal(d, 1);
    free_outlook(&pr, &o, 0.02); /* the free executor: batches in a window */
    gate_sched_shape(&pr, &o, &b, &d);
    assert_true(b >= 4);
    assert_int_equal(d, 4);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_shape_that_builds_less),
        cmocka_unit_test(test_serial_when_as_good),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
