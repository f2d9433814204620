/*
 * lock.c - ranked locks: the held-lock stack, the lock-order graph, blocking
 * and misuse checks (devel), and the thin pthread layer (both variants).
 *
 * Fast path (devel, lock with other locks held): one thread-local pointer, a
 * rank compare, a 64-bit chain hash and one probe of a lock-free table of
 * lock sequences already validated.  Only a sequence never seen before takes
 * graph_lock and searches the graph (lockdep's chain cache).  Every table is
 * preallocated; none of this calls malloc.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ---- both variants ---------------------------------------------------------------------- */

/* A condition variable is a first use of keel like any lock: each call sees the options first
 * (keel__lazy_init: one load and a branch once they are read). */

void keel_cond_init(keel_cond *c)
{
    KEEL_ASSERT(c != NULL);
    keel__lazy_init();
    pthread_condattr_t attr;
    KEEL_VERIFY(pthread_condattr_init(&attr) == 0);
    KEEL_VERIFY(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0);
    KEEL_VERIFY(pthread_cond_init(&c->c, &attr) == 0);
    (void)pthread_condattr_destroy(&attr);
}

void keel_cond_destroy(keel_cond *c)
{
    KEEL_ASSERT(c != NULL);
    keel__lazy_init();
    (void)pthread_cond_destroy(&c->c);
}

void keel_cond_signal(keel_cond *c)
{
    KEEL_ASSERT(c != NULL);
    keel__lazy_init();
    KEEL_VERIFY(pthread_cond_signal(&c->c) == 0);
}

void keel_cond_broadcast(keel_cond *c)
{
    KEEL_ASSERT(c != NULL);
    keel__lazy_init();
    KEEL_VERIFY(pthread_cond_broadcast(&c->c) == 0);
}

static struct timespec deadline_after(unsigned long long ms)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000u);
    ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void sleep_plain(unsigned long long ms)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1000u);
    ts.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- lock hold budgets: the lock.budget syntax (both variants) ----------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

keel_status keel__lock_budget_parse(const char *spec,
                                    void (*fn)(const char *name, size_t len, unsigned long long ms,
                                               void *ctx),
                                    void *ctx)
{
    KEEL_ASSERT(spec != NULL);
    const char *p = spec;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        if (b < e) { /* empty items are fine */
            const char *colon = e;
            while (colon > b && colon[-1] != ':')
                colon--;
            const char *name_end = colon > b ? colon - 1 : b;
            while (name_end > b && is_blank(name_end[-1]))
                name_end--;
            const char *digits = colon;
            while (digits < e && is_blank(*digits))
                digits++;
            unsigned long long ms = 0;
            bool ok = colon > b && name_end > b && digits < e &&
                      (size_t)(name_end - b) < KEEL__LOCK_BUDGET_NAME;
            for (const char *d = digits; ok && d < e; d++) {
                ok = *d >= '0' && *d <= '9';
                ms = ms * 10u + (unsigned long long)(*d - '0');
                ok = ok && ms <= KEEL__LOCK_BUDGET_MAX_MS;
            }
            if (!ok)
                return keel_status_with_str(
                    KEEL_ERR(KEEL_E_PARSE,
                             "bad lock budget '%.*s': expected class:ms (a class name of at most "
                             "%d characters, 0..%llu ms)",
                             (int)(e - b), b, KEEL__LOCK_BUDGET_NAME - 1, KEEL__LOCK_BUDGET_MAX_MS),
                    "item", spec);
            if (fn != NULL)
                fn(b, (size_t)(name_end - b), ms, ctx);
        }
        p = *end == ',' ? end + 1 : end;
    }
    return KEEL_OK;
}

keel_status keel__lock_budget_check(const char *value)
{
    return keel__lock_budget_parse(value != NULL ? value : "", NULL, NULL);
}

/* The checks of keel_lock_class_budget's arguments, in both variants. */
static keel_status budget_args(const char *class_name, unsigned long long budget_ms)
{
    if (class_name == NULL || class_name[0] == '\0')
        return KEEL_ERR(KEEL_E_INVAL, "keel_lock_class_budget: no class name");
    if (strlen(class_name) >= KEEL__LOCK_BUDGET_NAME)
        return KEEL_ERR(KEEL_E_INVAL, "lock class name '%.40s...' is longer than %d characters",
                        class_name, KEEL__LOCK_BUDGET_NAME - 1);
    if (budget_ms > KEEL__LOCK_BUDGET_MAX_MS)
        return keel_status_with_uint(KEEL_ERR(KEEL_E_RANGE,
                                              "budget of %llu ms for lock class '%s' is over the "
                                              "limit of %llu ms",
                                              budget_ms, class_name, KEEL__LOCK_BUDGET_MAX_MS),
                                     "max_ms", KEEL__LOCK_BUDGET_MAX_MS);
    return KEEL_OK;
}

#if !KEEL_DEVEL

keel_status keel_lock_class_budget(const char *class_name, unsigned long long budget_ms)
{
    /* release builds track no holders: nothing to watch */
    return budget_args(class_name, budget_ms);
}

void *keel__lock_state_self(void)
{
    return NULL;
}

unsigned keel__lock_sample_held(const void *state, keel__lock_sample *out, unsigned max)
{
    (void)state;
    (void)out;
    (void)max;
    return 0;
}

bool keel__lock_holds(const void *state, unsigned long long seq, const void *lock,
                      const keel__lock_site **site)
{
    (void)state;
    (void)seq;
    (void)lock;
    (void)site;
    return false;
}

void keel__lock_class_info(unsigned cls, char *name, size_t size, const char **kind, int *rank)
{
    (void)cls;
    (void)snprintf(name, size, "?");
    *kind = "?";
    *rank = 0;
}

void keel__lock_budgets_refresh(void)
{
}

bool keel__lock_budgets_any(void)
{
    return false;
}

bool keel__cond_timedwait(keel_cond *c, keel_mutex *m, unsigned long long ms,
                          const keel__lock_site *site)
{
    (void)site;
    struct timespec ts = deadline_after(ms);
    return pthread_cond_timedwait(&c->c, &m->m, &ts) != ETIMEDOUT;
}

void keel__sleep_ms(unsigned long long ms, const keel__lock_site *site)
{
    (void)site;
    sleep_plain(ms);
}

/* Release builds track no holders: these are only meant inside KEEL_ASSERT. */
bool keel_mutex_held(const keel_mutex *m)
{
    (void)m;
    return true;
}

bool keel_rwlock_held(const keel_rwlock *l)
{
    (void)l;
    return true;
}

bool keel_rwlock_held_exclusive(const keel_rwlock *l)
{
    (void)l;
    return true;
}

bool keel_spinlock_held(const keel_spinlock *s)
{
    (void)s;
    return true;
}

unsigned keel_locks_held(void)
{
    return 0;
}

void keel_nonblocking_enter(void)
{
}

void keel_nonblocking_leave(void)
{
}

size_t keel_lock_graph_json(char *buf, size_t size)
{
    size_t pos = 0;
    keel__buf_printf(buf, size, &pos, "{}");
    return pos;
}

#else /* KEEL_DEVEL */

#include "lockdep.h"

keel_status keel_lock_class_budget(const char *class_name, unsigned long long budget_ms)
{
    keel_status s = budget_args(class_name, budget_ms);
    if (!keel_ok(s))
        return s;
    return keel__dep_set_budget(class_name, budget_ms);
}

/* ---- mutex -------------------------------------------------------------------------------- */

void keel__mutex_init(keel_mutex *m, const char *name, int rank, const keel__lock_site *site)
{
    KEEL_ASSERT(m != NULL && rank >= 0 && site != NULL);
    KEEL_VERIFY(pthread_mutex_init(&m->m, NULL) == 0);
    keel__dep_init(&m->dep, name, rank, site);
}

/*
 * A mutex's owner word: the holding thread for the holds no held stack
 * records (an overflow, a thread without state), keel__lock_in_transit once
 * given, NULL otherwise.  So the fast paths leave it alone (a store to the
 * line the other threads contend on, inside the locked section), and who
 * holds a mutex is asked of the thread's own stack first.
 */
static bool mutex_mine(const keel__lock_thread *t, const keel_mutex *m)
{
    return keel__dep_find(t, m) != NULL ||
           (__atomic_load_n(&m->dep.owner, __ATOMIC_RELAXED) == t && !t->disabled);
}

/* After t acquired m: an acquisition its stack does not record (top entry) sets the owner word. */
static void mutex_acquired(keel__lock_thread *t, keel_mutex *m)
{
    unsigned n = t->n;
    bool recorded = !t->disabled && n > 0 && t->h[n - 1].lock == m;
    __atomic_store_n(&m->dep.owner, recorded ? NULL : (void *)t, __ATOMIC_RELAXED);
}

/* Is m locked (by any thread)?  For the reports: a trylock that succeeds is undone. */
static bool mutex_locked(keel_lockdep *d)
{
    keel_mutex *m = (keel_mutex *)(void *)((char *)d - offsetof(keel_mutex, dep));
    if (__atomic_load_n(&m->dep.owner, __ATOMIC_RELAXED) != NULL)
        return true;
    if (pthread_mutex_trylock(&m->m) != 0)
        return true;
    KEEL_VERIFY(pthread_mutex_unlock(&m->m) == 0);
    return false;
}

void keel__mutex_destroy(keel_mutex *m, const keel__lock_site *site)
{
    KEEL_ASSERT(m != NULL);
    if (keel__dep_destroy_check(&m->dep, m, mutex_locked, site))
        KEEL_VERIFY(pthread_mutex_destroy(&m->m) == 0);
}

/* Every check, in order, for the acquisitions the fast path leaves: see keel__mutex_lock. */
__attribute__((noinline)) static void mutex_lock_general(keel_mutex *m, int nest,
                                                         const keel__lock_site *site)
{
    keel__lock_thread *t = keel__lock_self();
    keel__dep_can_block(t, "mutex lock", site);
    /* (threads without state share one: for them, owner == t says nothing) */
    if (KEEL_UNLIKELY(mutex_mine(t, m))) {
        keel__dep_self_deadlock(t, &m->dep, site);
        return; /* the real lock would never return */
    }
    keel__dep_before(t, &m->dep, m, KEEL__LK_MUTEX, nest, false, site);
    KEEL_VERIFY(pthread_mutex_lock(&m->m) == 0);
    keel__dep_push(t, &m->dep, m, KEEL__LK_MUTEX, nest, false, false, site);
    mutex_acquired(t, m);
}

/*
 * The fast path: the same checks as mutex_lock_general when the thread's
 * state exists, nothing forbids blocking, the class is known, the lock is not
 * annotated and the held sequence is in its home slot of the chain table.
 * The chain hash is computed once, for the order check and for the held
 * entry, and the entry is filled before the lock is taken, so that only the
 * stack height is written while it is held (not the owner word: see
 * mutex_mine).  Everything else (a first sequence, an overflow, a report)
 * goes the general way.
 */
void keel__mutex_lock(keel_mutex *m, int nest, const keel__lock_site *site)
{
    KEEL_ASSERT(m != NULL);
    keel__lock_thread *t = keel__lock_tls;
    unsigned c = __atomic_load_n(&m->dep.cls, __ATOMIC_ACQUIRE);
    if (KEEL_UNLIKELY(!keel__dep_fast(t, c, nest) || keel__dep_find(t, m) != NULL)) {
        mutex_lock_general(m, nest, site);
        return;
    }
    unsigned n = t->n, node = (c - 1u) * KEEL__NEST_LEVELS;
    unsigned long long chain = keel__dep_chain(t, n, node, false);
    if (n > 0 && KEEL_UNLIKELY(!keel__chain_home(chain))) {
        mutex_lock_general(m, nest, site);
        return;
    }
    keel__dep_fill(t, &m->dep, m, KEEL__LK_MUTEX, node, false, false, chain, site);
    KEEL_VERIFY(pthread_mutex_lock(&m->m) == 0);
    keel__dep_publish(t, KEEL__LK_MUTEX);
}

bool keel__mutex_trylock(keel_mutex *m, const keel__lock_site *site)
{
    KEEL_ASSERT(m != NULL);
    keel__lock_thread *t = keel__lock_self();
    if (pthread_mutex_trylock(&m->m) != 0)
        return false;
    keel__dep_push(t, &m->dep, m, KEEL__LK_MUTEX, 0, false, true, site);
    mutex_acquired(t, m);
    return true;
}

__attribute__((noinline)) static void mutex_unlock_general(keel_mutex *m,
                                                           const keel__lock_site *site)
{
    keel__lock_thread *t = keel__lock_self();
    if (!keel__dep_pop(t, &m->dep, m, mutex_locked, site))
        return; /* not ours: unlocking it would be undefined behaviour */
    __atomic_store_n(&m->dep.owner, NULL, __ATOMIC_RELAXED); /* (already NULL if it was recorded) */
    KEEL_VERIFY(pthread_mutex_unlock(&m->m) == 0);
}

void keel__mutex_unlock(keel_mutex *m, const keel__lock_site *site)
{
    KEEL_ASSERT(m != NULL);
    keel__lock_thread *t = keel__lock_tls;
    if (KEEL_UNLIKELY(keel__held_top(t, t->n) != m)) {
        mutex_unlock_general(m, site);
        return;
    }
    /* the usual: the last lock taken, a mutex (no spinlock count) */
    keel__held_drop(t);
    /* a tail call, unchecked: for a normal mutex glibc's unlock fails only on a corrupted type
     * (EINVAL), which the KEEL_VERIFY of the next lock call reports */
    (void)pthread_mutex_unlock(&m->m);
}

void keel__mutex_give(keel_mutex *m, const keel__lock_site *site)
{
    KEEL_ASSERT(m != NULL);
    keel__lock_thread *t = keel__lock_self();
    if (keel__dep_pop(t, &m->dep, m, mutex_locked, site))
        __atomic_store_n(&m->dep.owner, (void *)&keel__lock_in_transit, __ATOMIC_RELAXED);
}

void keel__mutex_take(keel_mutex *m, const keel__lock_site *site)
{
    KEEL_ASSERT(m != NULL);
    keel__lock_thread *t = keel__lock_self();
    if (__atomic_load_n(&m->dep.owner, __ATOMIC_RELAXED) != &keel__lock_in_transit) {
        keel__dep_misuse(t, &m->dep, site,
                         "mutex '%s' taken over without keel_mutex_give() by its holder",
                         keel__dep_name(&m->dep));
        return;
    }
    keel__dep_push(t, &m->dep, m, KEEL__LK_MUTEX, 0, false, true, site);
    mutex_acquired(t, m);
}

bool keel_mutex_held(const keel_mutex *m)
{
    if (m == NULL)
        return false;
    const keel__lock_thread *t = keel__lock_self();
    /* (a thread without state: the owner word, as before; it says nothing of the others) */
    return keel__dep_find(t, m) != NULL || __atomic_load_n(&m->dep.owner, __ATOMIC_RELAXED) == t;
}

/* ---- condition variables ------------------------------------------------------------------- */

/* The caller must hold m; the wait releases and re-acquires it. */
static bool cond_check(keel__lock_thread *t, keel_mutex *m, const keel__lock_site *site)
{
    keel__dep_can_block(t, "condition wait", site);
    if (keel__dep_find(t, m) == NULL && __atomic_load_n(&m->dep.owner, __ATOMIC_RELAXED) != t) {
        keel__dep_misuse(t, &m->dep, site, "condition wait with mutex '%s' not held by this thread",
                         keel__dep_name(&m->dep));
        return false; /* return at once: a spurious wakeup, which callers handle */
    }
    return true;
}

void keel__cond_wait(keel_cond *c, keel_mutex *m, const keel__lock_site *site)
{
    KEEL_ASSERT(c != NULL && m != NULL);
    keel__lock_thread *t = keel__lock_self();
    if (!cond_check(t, m, site))
        return;
    void *owner = __atomic_load_n(&m->dep.owner, __ATOMIC_RELAXED); /* t or NULL */
    __atomic_store_n(&m->dep.owner, NULL, __ATOMIC_RELAXED);
    keel__dep_mark_waiting(t, m, true);
    KEEL_VERIFY(pthread_cond_wait(&c->c, &m->m) == 0);
    keel__dep_mark_waiting(t, m, false);
    __atomic_store_n(&m->dep.owner, owner, __ATOMIC_RELAXED);
}

bool keel__cond_timedwait(keel_cond *c, keel_mutex *m, unsigned long long ms,
                          const keel__lock_site *site)
{
    KEEL_ASSERT(c != NULL && m != NULL);
    keel__lock_thread *t = keel__lock_self();
    if (!cond_check(t, m, site))
        return true;
    struct timespec ts = deadline_after(ms);
    void *owner = __atomic_load_n(&m->dep.owner, __ATOMIC_RELAXED); /* t or NULL */
    __atomic_store_n(&m->dep.owner, NULL, __ATOMIC_RELAXED);
    keel__dep_mark_waiting(t, m, true);
    int rc = pthread_cond_timedwait(&c->c, &m->m, &ts);
    keel__dep_mark_waiting(t, m, false);
    __atomic_store_n(&m->dep.owner, owner, __ATOMIC_RELAXED);
    KEEL_VERIFY(rc == 0 || rc == ETIMEDOUT);
    return rc != ETIMEDOUT;
}

/* ---- rwlock ------------------------------------------------------------------------------------ */

void keel__rwlock_init(keel_rwlock *l, const char *name, int rank, const keel__lock_site *site)
{
    KEEL_ASSERT(l != NULL && rank >= 0);
    KEEL_VERIFY(pthread_rwlock_init(&l->rw, NULL) == 0);
    keel__dep_init(&l->dep, name, rank, site);
}

void keel__rwlock_destroy(keel_rwlock *l, const keel__lock_site *site)
{
    KEEL_ASSERT(l != NULL);
    if (keel__dep_destroy_check(&l->dep, l, NULL, site))
        KEEL_VERIFY(pthread_rwlock_destroy(&l->rw) == 0);
}

void keel__rwlock_lock(keel_rwlock *l, bool shared, int nest, const keel__lock_site *site)
{
    KEEL_ASSERT(l != NULL);
    keel__lock_thread *t = keel__lock_self();
    keel__dep_can_block(t, shared ? "rwlock read lock" : "rwlock write lock", site);
    const keel__held *h = keel__dep_find(t, l);
    if (KEEL_UNLIKELY(h != NULL)) {
        if (!shared || !h->mode.shared) {
            keel__dep_self_deadlock(t, &l->dep, site);
            return;
        }
        /* read inside read: deadlocks as soon as a writer queues between the two */
        keel__dep_recursive_read(t, &l->dep, site);
    }
    keel__dep_before(t, &l->dep, l, KEEL__LK_RWLOCK, nest, shared, site);
    KEEL_VERIFY((shared ? pthread_rwlock_rdlock(&l->rw) : pthread_rwlock_wrlock(&l->rw)) == 0);
    if (!shared)
        __atomic_store_n(&l->dep.owner, (void *)t, __ATOMIC_RELAXED);
    keel__dep_push(t, &l->dep, l, KEEL__LK_RWLOCK, nest, shared, false, site);
}

bool keel__rwlock_trylock(keel_rwlock *l, bool shared, const keel__lock_site *site)
{
    KEEL_ASSERT(l != NULL);
    keel__lock_thread *t = keel__lock_self();
    if ((shared ? pthread_rwlock_tryrdlock(&l->rw) : pthread_rwlock_trywrlock(&l->rw)) != 0)
        return false;
    if (!shared)
        __atomic_store_n(&l->dep.owner, (void *)t, __ATOMIC_RELAXED);
    keel__dep_push(t, &l->dep, l, KEEL__LK_RWLOCK, 0, shared, true, site);
    return true;
}

void keel__rwlock_unlock(keel_rwlock *l, const keel__lock_site *site)
{
    KEEL_ASSERT(l != NULL);
    keel__lock_thread *t = keel__lock_self();
    /* only an exclusive hold by this thread makes it the owner */
    bool exclusive = __atomic_load_n(&l->dep.owner, __ATOMIC_RELAXED) == t;
    if (!keel__dep_pop(t, &l->dep, l, NULL, site))
        return;
    if (exclusive)
        __atomic_store_n(&l->dep.owner, NULL, __ATOMIC_RELAXED);
    KEEL_VERIFY(pthread_rwlock_unlock(&l->rw) == 0);
}

bool keel_rwlock_held(const keel_rwlock *l)
{
    return l != NULL && keel__dep_find(keel__lock_self(), l) != NULL;
}

bool keel_rwlock_held_exclusive(const keel_rwlock *l)
{
    return l != NULL && __atomic_load_n(&l->dep.owner, __ATOMIC_RELAXED) == keel__lock_self();
}

/* ---- spinlock ------------------------------------------------------------------------------------ */

void keel__spin_init(keel_spinlock *s, const char *name, int rank, const keel__lock_site *site)
{
    KEEL_ASSERT(s != NULL && rank >= 0);
    KEEL_VERIFY(pthread_spin_init(&s->s, PTHREAD_PROCESS_PRIVATE) == 0);
    keel__dep_init(&s->dep, name, rank, site);
}

void keel__spin_destroy(keel_spinlock *s, const keel__lock_site *site)
{
    KEEL_ASSERT(s != NULL);
    if (keel__dep_destroy_check(&s->dep, s, NULL, site))
        KEEL_VERIFY(pthread_spin_destroy(&s->s) == 0);
}

void keel__spin_lock(keel_spinlock *s, int nest, const keel__lock_site *site)
{
    KEEL_ASSERT(s != NULL);
    keel__lock_thread *t = keel__lock_self();
    if (KEEL_UNLIKELY(__atomic_load_n(&s->dep.owner, __ATOMIC_RELAXED) == t && !t->disabled)) {
        keel__dep_self_deadlock(t, &s->dep, site);
        return;
    }
    keel__dep_before(t, &s->dep, s, KEEL__LK_SPIN, nest, false, site);
    KEEL_VERIFY(pthread_spin_lock(&s->s) == 0);
    __atomic_store_n(&s->dep.owner, (void *)t, __ATOMIC_RELAXED);
    keel__dep_push(t, &s->dep, s, KEEL__LK_SPIN, nest, false, false, site);
}

bool keel__spin_trylock(keel_spinlock *s, const keel__lock_site *site)
{
    KEEL_ASSERT(s != NULL);
    keel__lock_thread *t = keel__lock_self();
    if (pthread_spin_trylock(&s->s) != 0)
        return false;
    __atomic_store_n(&s->dep.owner, (void *)t, __ATOMIC_RELAXED);
    keel__dep_push(t, &s->dep, s, KEEL__LK_SPIN, 0, false, true, site);
    return true;
}

void keel__spin_unlock(keel_spinlock *s, const keel__lock_site *site)
{
    KEEL_ASSERT(s != NULL);
    keel__lock_thread *t = keel__lock_self();
    if (!keel__dep_pop(t, &s->dep, s, NULL, site))
        return;
    __atomic_store_n(&s->dep.owner, NULL, __ATOMIC_RELAXED);
    KEEL_VERIFY(pthread_spin_unlock(&s->s) == 0);
}

bool keel_spinlock_held(const keel_spinlock *s)
{
    return s != NULL && __atomic_load_n(&s->dep.owner, __ATOMIC_RELAXED) == keel__lock_self();
}

/* ---- blocking ------------------------------------------------------------------------------------- */

void keel__sleep_ms(unsigned long long ms, const keel__lock_site *site)
{
    keel__dep_can_block(keel__lock_self(), "sleep", site);
    sleep_plain(ms);
}

void keel__assert_can_block(const char *what, const keel__lock_site *site)
{
    keel__dep_can_block(keel__lock_self(), what, site);
}

void keel_nonblocking_enter(void)
{
    keel__lock_thread *t = keel__lock_self();
    t->nonblock++;
    keel__dep_slow_update(t);
}

void keel_nonblocking_leave(void)
{
    keel__lock_thread *t = keel__lock_self();
    KEEL_ASSERTF(t->nonblock > 0, "keel_nonblocking_leave() without enter");
    if (t->nonblock > 0) {
        t->nonblock--;
        keel__dep_slow_update(t);
    }
}

unsigned keel_locks_held(void)
{
    return keel__lock_self()->n;
}

#endif /* KEEL_DEVEL */
