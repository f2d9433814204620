/*
 * lock_selftest.c - the lock checker's power-on self test: provoke what it
 * must detect, on lock classes of its own, with the reports captured.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#if KEEL_DEVEL

enum { NAMES = 7, NAME_LEN = 48 };

/* Class names live as long as the checker's class table: kept reachable here. */
typedef struct name_block {
    struct name_block *next;
    char names[NAMES][NAME_LEN];
} name_block;

static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;
static name_block *blocks;
static unsigned runs;

/* Fresh class names for this run: an order learned by an earlier run must not mask this one. */
static name_block *new_names(void)
{
    name_block *b = (name_block *)calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    static const char *const roles[NAMES] = {"rank-high", "rank-low", "ab-a",   "ab-b",
                                             "cycle-p",   "cycle-q",  "cycle-r"};
    KEEL_VERIFY(pthread_mutex_lock(&blocks_lock) == 0);
    unsigned run = ++runs;
    b->next = blocks;
    blocks = b;
    KEEL_VERIFY(pthread_mutex_unlock(&blocks_lock) == 0);
    for (int i = 0; i < NAMES; i++)
        (void)snprintf(b->names[i], NAME_LEN, "keel.self-test.%u.%s", run, roles[i]);
    return b;
}

typedef struct step {
    const char *what;
    keel_report_kind kind;
    unsigned before;
} step;

static void begin_step(step *st, const keel__report_capture *cap, const char *what,
                       keel_report_kind kind)
{
    st->what = what;
    st->kind = kind;
    st->before = cap->count[kind];
}

/* Exactly one report of the step's kind since it began. */
static keel_status end_step(const step *st, const keel__report_capture *cap)
{
    unsigned got = cap->count[st->kind] - st->before;
    if (got == 1)
        return KEEL_OK;
    return keel_status_with_str(
        keel_status_with_uint(KEEL_ERR(KEEL_E_POST,
                                       "lock checker self test: %s gave %u reports of kind '%s' "
                                       "(expected 1)",
                                       st->what, got, keel_report_kind_name(st->kind)),
                              "reports", got),
        "step", st->what);
}

keel_status keel_lock_self_test(void)
{
    unsigned held = keel_locks_held();
    if (held != 0)
        return KEEL_ERR(KEEL_E_STATE, "lock checker self test: the calling thread holds %u locks",
                        held);
    name_block *nb = new_names();
    if (nb == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory for the lock checker self test");
    keel__report_capture cap;
    memset(&cap, 0, sizeof(cap));
    keel__report_capture *prev = keel__tls_capture;
    keel__tls_capture = &cap;
    step st;

    /* 1. a rank violation: rank 20 held, rank 10 taken */
    keel_mutex hi;
    keel_mutex lo;
    keel_mutex_init(&hi, nb->names[0], 20);
    keel_mutex_init(&lo, nb->names[1], 10);
    begin_step(&st, &cap, "a rank violation", KEEL_REPORT_LOCK_ORDER);
    keel_mutex_lock(&hi);
    keel_mutex_lock(&lo);
    keel_mutex_unlock(&lo);
    keel_mutex_unlock(&hi);
    keel_status s = end_step(&st, &cap);

    /* 2. an AB/BA inversion of unranked classes, one after the other (no deadlock) */
    keel_mutex a;
    keel_mutex b;
    keel_mutex_init(&a, nb->names[2], KEEL_RANK_NONE);
    keel_mutex_init(&b, nb->names[3], KEEL_RANK_NONE);
    if (keel_ok(s)) {
        begin_step(&st, &cap, "an AB/BA inversion", KEEL_REPORT_LOCK_ORDER);
        keel_mutex_lock(&a);
        keel_mutex_lock(&b);
        keel_mutex_unlock(&b);
        keel_mutex_unlock(&a);
        keel_mutex_lock(&b);
        keel_mutex_lock(&a);
        keel_mutex_unlock(&a);
        keel_mutex_unlock(&b);
        s = end_step(&st, &cap);
    }

    /* 3. a cycle of three: p->q, q->r, then r->p closes it */
    keel_mutex p;
    keel_mutex q;
    keel_mutex r;
    keel_mutex_init(&p, nb->names[4], KEEL_RANK_NONE);
    keel_mutex_init(&q, nb->names[5], KEEL_RANK_NONE);
    keel_mutex_init(&r, nb->names[6], KEEL_RANK_NONE);
    if (keel_ok(s)) {
        begin_step(&st, &cap, "a three-lock cycle", KEEL_REPORT_LOCK_ORDER);
        keel_mutex_lock(&p);
        keel_mutex_lock(&q);
        keel_mutex_unlock(&q);
        keel_mutex_unlock(&p);
        keel_mutex_lock(&q);
        keel_mutex_lock(&r);
        keel_mutex_unlock(&r);
        keel_mutex_unlock(&q);
        unsigned before_close = cap.count[KEEL_REPORT_LOCK_ORDER];
        keel_mutex_lock(&r);
        keel_mutex_lock(&p);
        keel_mutex_unlock(&p);
        keel_mutex_unlock(&r);
        s = end_step(&st, &cap);
        if (keel_ok(s) && cap.count[KEEL_REPORT_LOCK_ORDER] == before_close)
            s = KEEL_ERR(KEEL_E_POST, "lock checker self test: the cycle was reported before "
                                      "it closed");
    }

    /* 4. blocking while holding a spinlock */
    keel_spinlock sp;
    keel_spinlock_init(&sp, "keel.self-test.spin", KEEL_RANK_NONE);
    if (keel_ok(s)) {
        begin_step(&st, &cap, "blocking under a spinlock", KEEL_REPORT_LOCK_BLOCKING);
        keel_spinlock_lock(&sp);
        KEEL_ASSERT_CAN_BLOCK();
        keel_spinlock_unlock(&sp);
        s = end_step(&st, &cap);
    }

    keel_spinlock_destroy(&sp);
    keel_mutex_destroy(&r);
    keel_mutex_destroy(&q);
    keel_mutex_destroy(&p);
    keel_mutex_destroy(&b);
    keel_mutex_destroy(&a);
    keel_mutex_destroy(&lo);
    keel_mutex_destroy(&hi);
    keel__tls_capture = prev;
    return s;
}

#else

keel_status keel_lock_self_test(void)
{
    return KEEL_OK;
}

#endif
