/*
 * keel/lock.h - ranked locks with order checking.
 *
 * The talk: "Establish global order for all locks; locks must be acquired in
 * that order to guarantee no deadlock", and "don't ever block while you have a
 * spin lock".  keel's locks are pthread locks with a name and a rank:
 *
 *   keel_mutex, keel_rwlock, keel_spinlock, and keel_cond (used with a keel_mutex)
 *
 * Ranks.  A program declares its rank order in one header (FreeBSD's witness
 * order list, Android's lock levels), lowest first, e.g.
 *
 *   enum my_ranks {              // taken in this order, never the reverse
 *       RANK_CONFIG = 10,        // the configuration lock
 *       RANK_BUFCACHE = 20,      // buffer cache before file system
 *       RANK_FS = 30,
 *       RANK_STATS = 90,         // leaf locks last
 *   };
 *
 * A thread acquires ranked locks in strictly increasing rank: taking a lock
 * whose rank is below one already held is reported at once (kind
 * "lock-order"), the first time it happens, deadlock or not.  Rank 0
 * (KEEL_RANK_NONE) means unranked.
 *
 * Classes.  Locks with the same name form a lock class (a lock without a name
 * is its own class, named after its initialisation site).  The order between
 * classes of equal rank, and of unranked classes, is learned at run time in a
 * lock-order graph: the first acquisition that closes a cycle is reported
 * with the whole cycle and the site where each edge was first seen.  Taking a
 * second lock of a class already held is reported unless annotated with
 * keel_mutex_lock_nested(): a subclass 1..3 (a parent and child of one type),
 * or KEEL_NEST_BY_ADDRESS for hand-over-hand locking in address order (checked).
 *
 * Other checks: trylock is tracked but never creates an order violation;
 * blocking (lock, rwlock, cond wait, keel_sleep_ms, KEEL_ASSERT_CAN_BLOCK())
 * while holding a spinlock or inside a keel_nonblocking_enter() region
 * ("lock-blocking"); unlock of a lock this thread does not hold, double unlock,
 * destroying a held lock, a thread exiting with locks held, re-locking a held
 * mutex (self-deadlock, reported before blocking), more than KEEL_LOCK_MAX_HELD
 * locks held ("lock-misuse" / "limit").  Reports name each lock, its class,
 * rank and the site where this thread acquired it, with backtraces.
 *
 * Cost.  Devel builds keep a thread-local stack of held locks (the highest
 * rank on top: one compare) and a lock-free cache of lock sequences already
 * validated, so the graph is only searched for a sequence never seen before;
 * nothing on the fast path takes a global lock or calls malloc.  Release
 * builds compile every keel lock call down to the pthread call.
 *
 * Lock functions are macros so that reports carry the caller's file:line.
 */
#ifndef KEEL_LOCK_H
#define KEEL_LOCK_H

#include <pthread.h>

#include "keel/common.h"
#include "keel/status.h"

#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200112L
#error \
    "keel/lock.h needs POSIX.1-2001 (rwlocks, spinlocks): compile with -std=gnu11, or -D_POSIX_C_SOURCE=200809L before any #include"
#endif

KEEL_EXTERN_C_BEGIN

#define KEEL_RANK_NONE       0
#define KEEL_NEST_BY_ADDRESS (-1)
/* Locks one thread may hold at once (devel); more is reported (kind "limit"). */
#define KEEL_LOCK_MAX_HELD   32

/* Where a lock call is made: one static record per call site (one argument, one
 * pointer in the held-lock stack).  Never touch. */
typedef struct keel__lock_site {
    const char *file;
    const char *func;
    int line;
} keel__lock_site;

#define KEEL__LOCK_SITE                                                                \
    (__extension__({                                                                   \
        static const keel__lock_site keel__lock_here = {__FILE__, __func__, __LINE__}; \
        &keel__lock_here;                                                              \
    }))

/* The checking state every keel lock carries in devel builds.  Never touch. */
typedef struct keel_lockdep {
    const char *name;
    int rank;
    unsigned cls;     /* class index + 1, resolved on first use (0: not yet) */
    void *owner;      /* holding thread (exclusive holds) */
    const char *file; /* initialisation site */
    int line;
    unsigned magic;
} keel_lockdep;

#if KEEL_DEVEL
#define KEEL__LOCKDEP_INIT(name, rank)                            \
    ,                                                             \
    {                                                             \
        (name), (rank), 0u, NULL, __FILE__, __LINE__, 0x6b6c636bu \
    }
#define KEEL__LOCKDEP_FIELD keel_lockdep dep;
#else
#define KEEL__LOCKDEP_INIT(name, rank)
#define KEEL__LOCKDEP_FIELD
#endif

typedef struct keel_mutex {
    pthread_mutex_t m;
    KEEL__LOCKDEP_FIELD
} keel_mutex;

typedef struct keel_rwlock {
    pthread_rwlock_t rw;
    KEEL__LOCKDEP_FIELD
} keel_rwlock;

typedef struct keel_spinlock {
    pthread_spinlock_t s;
    KEEL__LOCKDEP_FIELD
} keel_spinlock;

typedef struct keel_cond {
    pthread_cond_t c;
} keel_cond;

/* Static initialisers: static keel_mutex cache_lock = KEEL_MUTEX_INITIALIZER("cache", RANK_CACHE); */
#define KEEL_MUTEX_INITIALIZER(name, rank)                       \
    {                                                            \
        PTHREAD_MUTEX_INITIALIZER KEEL__LOCKDEP_INIT(name, rank) \
    }
#define KEEL_RWLOCK_INITIALIZER(name, rank)                       \
    {                                                             \
        PTHREAD_RWLOCK_INITIALIZER KEEL__LOCKDEP_INIT(name, rank) \
    }
/* (a spinlock has no static initialiser in pthreads: use keel_spinlock_init) */

/* ---- devel: checked entry points (called through the macros below) ---------------------- */

KEEL_API void keel__mutex_init(keel_mutex *m, const char *name, int rank,
                               const keel__lock_site *site);
KEEL_API void keel__mutex_destroy(keel_mutex *m, const keel__lock_site *site);
KEEL_API void keel__mutex_lock(keel_mutex *m, int nest, const keel__lock_site *site);
KEEL_API bool keel__mutex_trylock(keel_mutex *m, const keel__lock_site *site);
KEEL_API void keel__mutex_unlock(keel_mutex *m, const keel__lock_site *site);
KEEL_API void keel__mutex_give(keel_mutex *m, const keel__lock_site *site);
KEEL_API void keel__mutex_take(keel_mutex *m, const keel__lock_site *site);
KEEL_API void keel__rwlock_init(keel_rwlock *l, const char *name, int rank,
                                const keel__lock_site *site);
KEEL_API void keel__rwlock_destroy(keel_rwlock *l, const keel__lock_site *site);
KEEL_API void keel__rwlock_lock(keel_rwlock *l, bool shared, int nest, const keel__lock_site *site);
KEEL_API bool keel__rwlock_trylock(keel_rwlock *l, bool shared, const keel__lock_site *site);
KEEL_API void keel__rwlock_unlock(keel_rwlock *l, const keel__lock_site *site);
KEEL_API void keel__spin_init(keel_spinlock *s, const char *name, int rank,
                              const keel__lock_site *site);
KEEL_API void keel__spin_destroy(keel_spinlock *s, const keel__lock_site *site);
KEEL_API void keel__spin_lock(keel_spinlock *s, int nest, const keel__lock_site *site);
KEEL_API bool keel__spin_trylock(keel_spinlock *s, const keel__lock_site *site);
KEEL_API void keel__spin_unlock(keel_spinlock *s, const keel__lock_site *site);
KEEL_API void keel__cond_wait(keel_cond *c, keel_mutex *m, const keel__lock_site *site);
KEEL_API bool keel__cond_timedwait(keel_cond *c, keel_mutex *m, unsigned long long ms,
                                   const keel__lock_site *site);
KEEL_API void keel__assert_can_block(const char *what, const keel__lock_site *site);

/*
 * Held-lock queries for assertions: KEEL_ASSERT(keel_mutex_held(&q->lock)).
 * Devel builds answer exactly.  Release builds do not track holders: there
 * they are only meant inside KEEL_ASSERT (not evaluated) and return true.
 */
KEEL_API bool keel_mutex_held(const keel_mutex *m);
KEEL_API bool keel_rwlock_held(const keel_rwlock *l); /* shared or exclusive */
KEEL_API bool keel_rwlock_held_exclusive(const keel_rwlock *l);
KEEL_API bool keel_spinlock_held(const keel_spinlock *s);
/* Number of keel locks the calling thread holds (0 in release). */
KEEL_API unsigned keel_locks_held(void);

/*
 * Non-blocking regions: an event-loop callback, a signal handler, anything
 * that must never sleep.  Inside one, blocking is reported as it is under a
 * spinlock.  Regions nest.
 */
KEEL_API void keel_nonblocking_enter(void);
KEEL_API void keel_nonblocking_leave(void);

/* Sleep (a blocking call: checked like a lock). */
KEEL_API void keel__sleep_ms(unsigned long long ms, const keel__lock_site *site);
#define keel_sleep_ms(ms) keel__sleep_ms((ms), KEEL__LOCK_SITE)

/* Condition variables (no rank: they are not locks). */
KEEL_API void keel_cond_init(keel_cond *c);
KEEL_API void keel_cond_destroy(keel_cond *c);
KEEL_API void keel_cond_signal(keel_cond *c);
KEEL_API void keel_cond_broadcast(keel_cond *c);

/*
 * Lock hold budgets (devel builds; the watchdog samples them, see
 * keel/watchdog.h).  Holding a lock of class `class_name` longer than
 * budget_ms (times watchdog.scale percent) is reported while it is still held,
 * through the report channel (kind "watchdog", once per occurrence): the lock
 * and its class, the holding thread, elapsed time, budget, the holder's own
 * backtrace (captured in that thread by the watchdog's signal) and every keel
 * lock it holds; and again when it is released, with the total (measured at
 * watchdog tick resolution).  The lock and unlock calls read no clock and do
 * nothing more for a budgeted class: the watchdog thread samples each watched
 * thread's held-lock stack every tick, and a hold must be seen in two
 * consecutive samples (and confirmed by the holder itself) to be reported.
 *
 * Watched threads: keel threads, registered threads, threads with sections or
 * heartbeats, and, once any budget is set, every thread at its first keel lock.
 *
 * A budget belongs to the class (its name; it may be set before the class is
 * first used) and overrides the lock.budget option ("name:ms,name:ms") for
 * that class; 0 removes it (and gives its place among the 64 back unless
 * lock.budget names the class: then 0 overrides it).  Errors: KEEL_E_INVAL
 * (class_name NULL, empty or longer than 63 characters), KEEL_E_RANGE
 * (budget_ms over 1000000000), KEEL_E_FULL (more than 64 classes with budgets).  Release builds check
 * the arguments the same way, then return KEEL_OK and do nothing.
 */
KEEL_API KEEL_MUST_USE keel_status keel_lock_class_budget(const char *class_name,
                                                          unsigned long long budget_ms);

/*
 * The lock checker's own power-on self test, for a program's POST (keel-gate
 * runs it in its own): on private lock classes it provokes a rank violation,
 * an AB/BA inversion, a three-lock cycle and blocking under a spinlock, and
 * checks that each is detected exactly once.  The provoked reports are
 * captured, not emitted.  KEEL_E_POST naming what went undetected, or
 * KEEL_OK.  Release builds: KEEL_OK (there is no checker).
 */
KEEL_API KEEL_MUST_USE keel_status keel_lock_self_test(void);

/*
 * Lock-order summary: classes, their ranks and the learned edges, as JSON
 * (snprintf semantics).  Devel builds; release writes "{}".
 */
KEEL_API size_t keel_lock_graph_json(char *buf, size_t size);

#if KEEL_DEVEL

/* The fast path of keel_mutex_lock, _trylock and _unlock, inlined (not API). */
#include "keel/lock_fast.h"

#define keel_mutex_init(m, name, rank)    keel__mutex_init((m), (name), (rank), KEEL__LOCK_SITE)
#define keel_mutex_destroy(m)             keel__mutex_destroy((m), KEEL__LOCK_SITE)
#define keel_mutex_lock(m)                keel__mutex_lock_inline((m), KEEL__LOCK_SITE)
#define keel_mutex_lock_nested(m, nest)   keel__mutex_lock((m), (nest), KEEL__LOCK_SITE)
#define keel_mutex_trylock(m)             keel__mutex_trylock_inline((m), KEEL__LOCK_SITE)
#define keel_mutex_unlock(m)              keel__mutex_unlock_inline((m), KEEL__LOCK_SITE)
/* Hand a held mutex to another thread: give on the holder, take on the receiver. */
#define keel_mutex_give(m)                keel__mutex_give((m), KEEL__LOCK_SITE)
#define keel_mutex_take(m)                keel__mutex_take((m), KEEL__LOCK_SITE)
#define keel_rwlock_init(l, name, rank)   keel__rwlock_init((l), (name), (rank), KEEL__LOCK_SITE)
#define keel_rwlock_destroy(l)            keel__rwlock_destroy((l), KEEL__LOCK_SITE)
#define keel_rwlock_rdlock(l)             keel__rwlock_lock((l), true, 0, KEEL__LOCK_SITE)
#define keel_rwlock_wrlock(l)             keel__rwlock_lock((l), false, 0, KEEL__LOCK_SITE)
#define keel_rwlock_rdlock_nested(l, n)   keel__rwlock_lock((l), true, (n), KEEL__LOCK_SITE)
#define keel_rwlock_wrlock_nested(l, n)   keel__rwlock_lock((l), false, (n), KEEL__LOCK_SITE)
#define keel_rwlock_tryrdlock(l)          keel__rwlock_trylock((l), true, KEEL__LOCK_SITE)
#define keel_rwlock_trywrlock(l)          keel__rwlock_trylock((l), false, KEEL__LOCK_SITE)
#define keel_rwlock_unlock(l)             keel__rwlock_unlock((l), KEEL__LOCK_SITE)
#define keel_spinlock_init(s, name, rank) keel__spin_init((s), (name), (rank), KEEL__LOCK_SITE)
#define keel_spinlock_destroy(s)          keel__spin_destroy((s), KEEL__LOCK_SITE)
#define keel_spinlock_lock(s)             keel__spin_lock((s), 0, KEEL__LOCK_SITE)
#define keel_spinlock_lock_nested(s, n)   keel__spin_lock((s), (n), KEEL__LOCK_SITE)
#define keel_spinlock_trylock(s)          keel__spin_trylock((s), KEEL__LOCK_SITE)
#define keel_spinlock_unlock(s)           keel__spin_unlock((s), KEEL__LOCK_SITE)
#define keel_cond_wait(c, m)              keel__cond_wait((c), (m), KEEL__LOCK_SITE)
/* Wait at most `ms` milliseconds: true when woken, false on timeout. */
#define keel_cond_timedwait(c, m, ms)     keel__cond_timedwait((c), (m), (ms), KEEL__LOCK_SITE)
/* The program's own blocking calls: KEEL_ASSERT_CAN_BLOCK(); read(fd, ...); */
#define KEEL_ASSERT_CAN_BLOCK()           keel__assert_can_block("blocking call", KEEL__LOCK_SITE)

#else /* release: the pthread calls, nothing else */

static inline void keel_mutex_init(keel_mutex *m, const char *name, int rank)
{
    (void)name;
    (void)rank;
    (void)pthread_mutex_init(&m->m, NULL);
}
#define keel_mutex_destroy(mx_)            ((void)pthread_mutex_destroy(&(mx_)->m))
#define keel_mutex_lock(mx_)               ((void)pthread_mutex_lock(&(mx_)->m))
#define keel_mutex_lock_nested(mx_, n_)    ((void)(n_), (void)pthread_mutex_lock(&(mx_)->m))
#define keel_mutex_trylock(mx_)            (pthread_mutex_trylock(&(mx_)->m) == 0)
#define keel_mutex_unlock(mx_)             ((void)pthread_mutex_unlock(&(mx_)->m))
#define keel_mutex_give(mx_)               ((void)(mx_))
#define keel_mutex_take(mx_)               ((void)(mx_))
static inline void keel_rwlock_init(keel_rwlock *l, const char *name, int rank)
{
    (void)name;
    (void)rank;
    (void)pthread_rwlock_init(&l->rw, NULL);
}
#define keel_rwlock_destroy(rw_)           ((void)pthread_rwlock_destroy(&(rw_)->rw))
#define keel_rwlock_rdlock(rw_)            ((void)pthread_rwlock_rdlock(&(rw_)->rw))
#define keel_rwlock_wrlock(rw_)            ((void)pthread_rwlock_wrlock(&(rw_)->rw))
#define keel_rwlock_rdlock_nested(rw_, n_) ((void)(n_), (void)pthread_rwlock_rdlock(&(rw_)->rw))
#define keel_rwlock_wrlock_nested(rw_, n_) ((void)(n_), (void)pthread_rwlock_wrlock(&(rw_)->rw))
#define keel_rwlock_tryrdlock(rw_)         (pthread_rwlock_tryrdlock(&(rw_)->rw) == 0)
#define keel_rwlock_trywrlock(rw_)         (pthread_rwlock_trywrlock(&(rw_)->rw) == 0)
#define keel_rwlock_unlock(rw_)            ((void)pthread_rwlock_unlock(&(rw_)->rw))
static inline void keel_spinlock_init(keel_spinlock *s, const char *name, int rank)
{
    (void)name;
    (void)rank;
    (void)pthread_spin_init(&s->s, PTHREAD_PROCESS_PRIVATE);
}
#define keel_spinlock_destroy(sp)          ((void)pthread_spin_destroy(&(sp)->s))
#define keel_spinlock_lock(sp)             ((void)pthread_spin_lock(&(sp)->s))
#define keel_spinlock_lock_nested(sp, n_)  ((void)(n_), (void)pthread_spin_lock(&(sp)->s))
#define keel_spinlock_trylock(sp)          (pthread_spin_trylock(&(sp)->s) == 0)
#define keel_spinlock_unlock(sp)           ((void)pthread_spin_unlock(&(sp)->s))
#define keel_cond_wait(cv_, mx_)           ((void)pthread_cond_wait(&(cv_)->c, &(mx_)->m))
#define keel_cond_timedwait(cv_, mx_, ms_) keel__cond_timedwait((cv_), (mx_), (ms_), NULL)
#define KEEL_ASSERT_CAN_BLOCK()            ((void)0)

#endif /* KEEL_DEVEL */

KEEL_EXTERN_C_END

#endif /* KEEL_LOCK_H */
