/*
 * test_lock_fast.c - the inline fast path of keel_mutex_lock, _trylock and
 * _unlock (keel/lock_fast.h) writes the held stack as the library does, and
 * leaves what it must not handle to the library.  (The checks themselves are
 * test_lock.c's: its keel_mutex_lock calls are this inline path.)
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "keel/keel.h"

#if KEEL_DEVEL
#include "lockdep.h"
#endif

static int nreports;
static char last_message[512];

static bool catch_report(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    nreports++;
    snprintf(last_message, sizeof(last_message), "%s", info->message);
    return true;
}

static int setup(void **state)
{
    (void)state;
    nreports = 0;
    (void)keel_report_set_handler(catch_report, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    (void)keel_report_set_handler(NULL, NULL);
    return 0;
}

#if KEEL_DEVEL

/* The fields of a held entry that do not depend on the call site or the moment. */
static void expect_same_entry(const keel__held *a, const keel__held *b)
{
    assert_ptr_equal(a->lock, b->lock);
    assert_ptr_equal(a->dep, b->dep);
    assert_int_equal(a->node, b->node);
    assert_int_equal(a->mode.kind, b->mode.kind);
    assert_int_equal(a->mode.shared, b->mode.shared);
    assert_int_equal(a->mode.trylock, b->mode.trylock);
    assert_int_equal(a->mode.waiting, b->mode.waiting);
    assert_true(a->chain == b->chain);
}

static void test_inline_entries_match_the_library(void **state)
{
    (void)state;
    static keel_mutex a = KEEL_MUTEX_INITIALIZER("lf_a", 10);
    static keel_mutex b = KEEL_MUTEX_INITIALIZER("lf_b", 20);
    static keel_mutex c = KEEL_MUTEX_INITIALIZER("lf_c", 30);
    static const keel__lock_site here = {__FILE__, "test", __LINE__};
    for (int round = 0; round < 2; round++) { /* the first: classes and sequences are new */
        keel_mutex_lock(&a);
        keel_mutex_lock(&b);
        assert_true(keel_mutex_trylock(&c));
        const keel__lock_thread *t = keel__lock_tls;
        assert_non_null(t);
        assert_int_equal(t->n, 3);
        keel__held inl[3];
        memcpy(inl, t->h, sizeof(inl));
        assert_true(inl[0].seq < inl[1].seq && inl[1].seq < inl[2].seq);
        assert_true(inl[2].mode.trylock && !inl[1].mode.trylock);
        assert_true(keel__chain_known(inl[1].chain)); /* validated: known to the chain table */
        /* recorded holds leave the owner word alone */
        assert_null(__atomic_load_n(&a.dep.owner, __ATOMIC_RELAXED));
        assert_null(__atomic_load_n(&c.dep.owner, __ATOMIC_RELAXED));
        keel_mutex_unlock(&c);
        keel_mutex_unlock(&b);
        keel_mutex_unlock(&a);
        assert_int_equal(keel_locks_held(), 0);
        assert_null(__atomic_load_n(&a.dep.owner, __ATOMIC_RELAXED));

        /* the same sequence through the library's own entry points */
        keel__mutex_lock(&a, 0, &here);
        keel__mutex_lock(&b, 0, &here);
        assert_true(keel__mutex_trylock(&c, &here));
        for (int i = 0; i < 3; i++)
            expect_same_entry(&t->h[i], &inl[i]);
        assert_ptr_equal(t->h[0].site, &here);
        assert_true(t->h[0].seq > inl[2].seq);
        assert_null(__atomic_load_n(&b.dep.owner, __ATOMIC_RELAXED));
        keel__mutex_unlock(&c, &here);
        keel__mutex_unlock(&b, &here);
        keel__mutex_unlock(&a, &here);
    }
    assert_int_equal(nreports, 0);
}

static void test_inline_trylock_of_a_held_mutex_fails(void **state)
{
    (void)state;
    static keel_mutex a = KEEL_MUTEX_INITIALIZER("lf_try", 10);
    keel_mutex_lock(&a);
    assert_false(keel_mutex_trylock(&a));
    assert_int_equal(keel_locks_held(), 1);
    keel_mutex_unlock(&a);
    assert_true(keel_mutex_trylock(&a));
    assert_true(keel_mutex_held(&a));
    keel_mutex_unlock(&a);
    assert_false(keel_mutex_held(&a));
    assert_int_equal(nreports, 0);
}

/* A self-deadlock on a mutex below the top of the stack: found on the stack, by both paths. */
static void test_relock_under_another_reported(void **state)
{
    (void)state;
    static keel_mutex a = KEEL_MUTEX_INITIALIZER("lf_relock_a", 10);
    static keel_mutex b = KEEL_MUTEX_INITIALIZER("lf_relock_b", 20);
    static const keel__lock_site here = {__FILE__, "test", __LINE__};
    for (int round = 0; round < 2; round++) {
        keel_mutex_lock(&a);
        keel_mutex_lock(&b);
        keel_mutex_lock(&a); /* would hang forever: reported, and returns */
        assert_int_equal(nreports, 2 * round + 1);
        assert_non_null(strstr(last_message, "self-deadlock: 'lf_relock_a'"));
        keel__mutex_lock(&a, 0, &here); /* the library's entry point */
        assert_int_equal(nreports, 2 * round + 2);
        assert_non_null(strstr(last_message, "self-deadlock: 'lf_relock_a'"));
        assert_int_equal(keel_locks_held(), 2);
        keel_mutex_unlock(&b);
        keel_mutex_unlock(&a);
    }
    assert_int_equal(keel_locks_held(), 0);
}

typedef struct holder {
    keel_mutex *m;
    pthread_barrier_t locked, checked;
} holder;

static void *hold_until_checked(void *arg)
{
    holder *h = (holder *)arg;
    keel_mutex_lock(h->m);
    (void)pthread_barrier_wait(&h->locked);
    (void)pthread_barrier_wait(&h->checked);
    keel_mutex_unlock(h->m);
    return NULL;
}

/*
 * A mutex another thread holds, recorded on its stack (the owner word NULL):
 * not held by this one, and destroying it is still reported.
 */
static void test_mutex_held_by_another_thread(void **state)
{
    (void)state;
    keel_mutex m;
    keel_mutex_init(&m, "lf_other", KEEL_RANK_NONE);
    holder h = {.m = &m};
    assert_int_equal(pthread_barrier_init(&h.locked, NULL, 2), 0);
    assert_int_equal(pthread_barrier_init(&h.checked, NULL, 2), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hold_until_checked, &h), 0);
    (void)pthread_barrier_wait(&h.locked);
    assert_null(__atomic_load_n(&m.dep.owner, __ATOMIC_RELAXED));
    assert_false(keel_mutex_held(&m));
    keel_mutex_destroy(&m); /* held: reported, not destroyed */
    assert_int_equal(nreports, 1);
    assert_non_null(strstr(last_message, "destroying lock 'lf_other' while it is held"));
    assert_null(strstr(last_message, "by this thread"));
    (void)pthread_barrier_wait(&h.checked);
    assert_int_equal(pthread_join(th, NULL), 0);
    keel_mutex_destroy(&m); /* not held: destroyed */
    assert_int_equal(nreports, 1);
    (void)pthread_barrier_destroy(&h.locked);
    (void)pthread_barrier_destroy(&h.checked);
}

/*
 * The inline path does not read the owner word: it relies
 * on every owned mutex being on the stack.  A mutex that did not fit (an
 * overflow) is the exception: re-locking it is still reported, not a hang.
 */
static void test_overflowed_mutex_relock_reported(void **state)
{
    (void)state;
    static keel_mutex a = KEEL_MUTEX_INITIALIZER("lf_overflow", 10);
    static keel_mutex many[KEEL_LOCK_MAX_HELD];
    keel_mutex_lock(&a); /* its class is resolved: the inline path takes it from now on */
    keel_mutex_unlock(&a);
    for (int i = 0; i < KEEL_LOCK_MAX_HELD; i++) {
        keel_mutex_init(&many[i], "lf_many", KEEL_RANK_NONE);
        keel_mutex_lock_nested(&many[i], KEEL_NEST_BY_ADDRESS);
    }
    keel_mutex_lock(&a); /* the stack is full: held, not tracked (reported: a limit) */
    assert_int_equal(nreports, 1);
    assert_non_null(strstr(last_message, "keel locks held"));
    for (int i = KEEL_LOCK_MAX_HELD - 1; i >= 0; i--)
        keel_mutex_unlock(&many[i]);
    assert_int_equal(keel_locks_held(), 0);
    assert_true(keel_mutex_held(&a));
    /* not on the stack: the owner word names the holder */
    assert_ptr_equal(__atomic_load_n(&a.dep.owner, __ATOMIC_RELAXED), keel__lock_tls);
    keel_mutex_lock(&a); /* would hang forever: reported, and returns */
    assert_int_equal(nreports, 2);
    assert_non_null(strstr(last_message, "self-deadlock: 'lf_overflow'"));
    keel_mutex_unlock(&a);
    assert_false(keel_mutex_held(&a));
    assert_null(__atomic_load_n(&a.dep.owner, __ATOMIC_RELAXED));
    keel_mutex_lock(&a); /* tracked again */
    assert_int_equal(keel_locks_held(), 1);
    assert_null(__atomic_load_n(&a.dep.owner, __ATOMIC_RELAXED));
    keel_mutex_unlock(&a);
    assert_int_equal(nreports, 2);
}

static void *lock_once(void *arg)
{
    keel_mutex *m = (keel_mutex *)arg;
    keel_mutex_lock(m); /* a new thread has no state yet: the library makes it */
    unsigned held = keel_locks_held();
    keel_mutex_unlock(m);
    return (void *)(size_t)held;
}

static void test_inline_first_lock_of_a_thread(void **state)
{
    (void)state;
    static keel_mutex a = KEEL_MUTEX_INITIALIZER("lf_thread", 10);
    pthread_t th;
    void *held = NULL;
    assert_int_equal(pthread_create(&th, NULL, lock_once, &a), 0);
    assert_int_equal(pthread_join(th, &held), 0);
    assert_int_equal((size_t)held, 1);
    assert_int_equal(nreports, 0);
}

/* The layout this object was compiled with is the library's (else it would not have linked). */
static void test_layout_symbol(void **state)
{
    (void)state;
    assert_int_equal(KEEL__LOCK_LAYOUT_SYMBOL(KEEL__LOCK_LAYOUT), KEEL__LOCK_LAYOUT);
}

#endif

/* Both variants: the macros lock and unlock. */
static void test_mutex_macros_work(void **state)
{
    (void)state;
    static keel_mutex a = KEEL_MUTEX_INITIALIZER("lf_work", 10);
    for (int i = 0; i < 3; i++) {
        keel_mutex_lock(&a);
        assert_false(keel_mutex_trylock(&a));
        keel_mutex_unlock(&a);
        assert_true(keel_mutex_trylock(&a));
        keel_mutex_unlock(&a);
    }
    assert_int_equal(nreports, 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
#if KEEL_DEVEL
        cmocka_unit_test_setup_teardown(test_inline_entries_match_the_library, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_trylock_of_a_held_mutex_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relock_under_another_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mutex_held_by_another_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflowed_mutex_relock_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_first_lock_of_a_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_symbol, setup, teardown),
#endif
        cmocka_unit_test_setup_teardown(test_mutex_macros_work, setup, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
