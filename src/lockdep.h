/*
 * lockdep.h - the lock checker's state, shared by lock.c (the lock calls)
 * and lockdep.c (classes, the order graph, reports).  Devel builds only.
 */
#ifndef KEEL_LOCKDEP_H
#define KEEL_LOCKDEP_H

#include "internal.h"

KEEL_EXTERN_C_BEGIN

/* keel__lock_tls (keel/lock_fast.h): allocated here on a thread's first lock call. */
keel__lock_thread *keel__lock_thread_new(void);
/* Its address is the owner of a mutex handed over with keel_mutex_give(). */
extern char keel__lock_in_transit;

/* What keel__lock_tls holds while a thread has no state (before its first lock, after its exit):
 * never written; its word says "slow, nothing held" (src/lockdep.c). */
extern keel__lock_thread keel__lock_none;

static inline keel__lock_thread *keel__lock_self(void)
{
    keel__lock_thread *t = keel__lock_tls;
    return KEEL_LIKELY(t != &keel__lock_none) ? t : keel__lock_thread_new();
}

static inline const char *keel__dep_name(const keel_lockdep *d)
{
    return d->name != NULL ? d->name : "(unnamed)";
}

/* The checking state of a held lock: its own (an entry does not store it). */
static inline keel_lockdep *keel__held_dep(const keel__held *h)
{
    union {
        const void *held;
        void *lock;
    } u = {h->lock}; /* (the lock is the program's, not const) */
    void *lock = u.lock;
    switch ((keel__lock_kind)h->mode.kind) {
    case KEEL__LK_RWLOCK:
        return &((keel_rwlock *)lock)->dep;
    case KEEL__LK_SPIN:
        return &((keel_spinlock *)lock)->dep;
    case KEEL__LK_MUTEX:
    default:
        return &((keel_mutex *)lock)->dep;
    }
}

/* After a change of spins, nonblock or overflow: the inline path's one test of them. */
static inline void keel__dep_slow_update(keel__lock_thread *t)
{
    unsigned long long w = t->nw & ~KEEL__NW_SLOW;
    if ((t->spins | t->nonblock | t->overflow) != 0)
        w |= KEEL__NW_SLOW;
    __atomic_store_n(&t->nw, w, __ATOMIC_RELEASE);
}

/* Is the slow bit of t's word set? */
static inline bool keel__lock_slow(const keel__lock_thread *t)
{
    return (__atomic_load_n(&t->nw, __ATOMIC_RELAXED) & KEEL__NW_SLOW) != 0;
}

/* One entry fewer on t's stack (n > 0; the count of acquisitions is kept). */
static inline void keel__held_drop(keel__lock_thread *t)
{
    __atomic_store_n(&t->nw, t->nw - 1u, __ATOMIC_RELEASE);
}

/* Store a held entry's node and mode (the word the watchdog samples). */
static inline void keel__held_set_nm(keel__held *h, unsigned node, keel__held_mode mode)
{
    __atomic_store_n(&h->nm, keel__held_nm(node, mode), __ATOMIC_RELAXED);
}

void keel__dep_init(keel_lockdep *d, const char *name, int rank, const keel__lock_site *site);
/* True when the lock may be destroyed (not held); reports otherwise. */
/*
 * locked: whether the lock that embeds d is taken by any thread when its
 * owner word does not say (NULL: it does).
 */
typedef bool keel__dep_locked_fn(keel_lockdep *d);
bool keel__dep_destroy_check(keel_lockdep *d, const void *lock, keel__dep_locked_fn *locked,
                             const keel__lock_site *site);
void keel__dep_blocking(keel__lock_thread *t, const char *what, const keel__lock_site *site);
static inline void keel__dep_can_block(keel__lock_thread *t, const char *what,
                                       const keel__lock_site *site)
{
    if (KEEL_UNLIKELY((t->spins | t->nonblock) != 0))
        keel__dep_blocking(t, what, site);
}
void keel__dep_self_deadlock(keel__lock_thread *t, keel_lockdep *d, const keel__lock_site *site);
void keel__dep_recursive_read(keel__lock_thread *t, keel_lockdep *d, const keel__lock_site *site);
void keel__dep_misuse(keel__lock_thread *t, keel_lockdep *d, const keel__lock_site *site,
                      const char *fmt, ...) KEEL_PRINTF(4, 5);

/* The class of a lock, resolved on first use. */
unsigned keel__dep_resolve(keel_lockdep *d, keel__lock_kind kind);
static inline unsigned keel__dep_class(keel_lockdep *d, keel__lock_kind kind)
{
    unsigned c = __atomic_load_n(&d->cls, __ATOMIC_ACQUIRE);
    if (KEEL_UNLIKELY(c == 0))
        return keel__dep_resolve(d, kind);
    return c == KEEL__CLS_NONE ? KEEL__CLS_NONE : c - 1;
}
static inline unsigned keel__dep_node(unsigned cls, int nest)
{
    return cls == KEEL__CLS_NONE ? KEEL__CLS_NONE
                                 : cls * KEEL__NEST_LEVELS + (nest > 0 ? (unsigned)nest & 3u : 0u);
}

/* The chain hash of entry n (on top of entries 0..n-1) for (node, shared). */
static inline unsigned long long keel__dep_chain(const keel__lock_thread *t, unsigned n,
                                                 unsigned node, bool shared)
{
    unsigned long long prev = n > 0 ? keel__held_chain(t, n - 1) : 0;
    return node == KEEL__CLS_NONE ? prev : keel__chain_mix(prev, node, shared);
}

/* The chain table keel__chains (keel/lock_fast.h): probed past the home slot. */
bool keel__chain_probe(unsigned long long key);

/* Lock-free: has this sequence of held nodes followed by the new one been validated? */
static inline bool keel__chain_known(unsigned long long key)
{
    return keel__chain_home(key) || keel__chain_probe(key);
}

void keel__dep_before_slow(keel__lock_thread *t, keel_lockdep *d, const void *lock, unsigned node,
                           int nest, bool shared, unsigned long long key,
                           const keel__lock_site *site);

void keel__dep_address_order(keel__lock_thread *t, keel_lockdep *d, const void *lock, unsigned node,
                             const keel__lock_site *site);
/* What that order compares: NULL, the lock's address; a preload's shadows, their objects'. */
extern const void *(*keel__dep_order_key)(const void *lock);

/* Check the order of a blocking acquisition before it blocks. */
static inline void keel__dep_before(keel__lock_thread *t, keel_lockdep *d, const void *lock,
                                    keel__lock_kind kind, int nest, bool shared,
                                    const keel__lock_site *site)
{
    if (t->n == 0)
        return; /* nothing held: no order to check */
    unsigned node = keel__dep_node(keel__dep_class(d, kind), nest);
    if (node == KEEL__CLS_NONE)
        return;
    if (nest == KEEL_NEST_BY_ADDRESS) /* depends on addresses: not in the chain cache */
        keel__dep_address_order(t, d, lock, node, site);
    unsigned long long key = keel__chain_mix(keel__held_chain(t, t->n - 1), node, shared);
    if (KEEL_LIKELY(keel__chain_known(key)))
        return;
    keel__dep_before_slow(t, d, lock, node, nest, shared, key, site);
}

void keel__dep_push_slow(keel__lock_thread *t, keel_lockdep *d, const void *lock,
                         keel__lock_kind kind, int nest, bool shared, bool trylock,
                         const keel__lock_site *site);
bool keel__dep_pop_slow(keel__lock_thread *t, keel_lockdep *d, const void *lock,
                        keel__dep_locked_fn *locked, const keel__lock_site *site);

/*
 * Fill entry t->n of the held stack (the caller checked there is room).  It
 * is not held yet: keel__dep_publish() makes it so, after the acquisition,
 * so that a blocking lock can fill it before it waits.
 */
static inline void keel__dep_fill(keel__lock_thread *t, keel_lockdep *d, const void *lock,
                                  keel__lock_kind kind, unsigned node, bool shared, bool trylock,
                                  unsigned long long chain, const keel__lock_site *site)
{
    KEEL_ASSERT(d == &((const keel_mutex *)lock)->dep || kind != KEEL__LK_MUTEX);
    (void)d; /* (the entry's is the lock's own: keel__held_dep) */
    keel__held *h = &t->h[t->n];
    const keel__held_mode mode = {(unsigned char)kind, shared, trylock, false};
    h->chain = chain; /* (not read for entry 0: keel__held_chain) */
    h->site = site;
    __atomic_store_n(&h->lock, lock, __ATOMIC_RELAXED);
    keel__held_set_nm(h, node, mode);
    __atomic_store_n(&h->seq, t->nw, __ATOMIC_RELAXED); /* (keel__nw_publish moves it on) */
}

/* The filled entry is held now. */
static inline void keel__dep_publish(keel__lock_thread *t, keel__lock_kind kind)
{
    if (kind == KEEL__LK_SPIN) {
        t->spins++;
        keel__dep_slow_update(t);
    }
    keel__nw_publish(t, t->nw);
}

/* Record an acquisition on the held stack (the caller checked there is room). */
static inline void keel__dep_record(keel__lock_thread *t, keel_lockdep *d, const void *lock,
                                    keel__lock_kind kind, unsigned node, bool shared, bool trylock,
                                    const keel__lock_site *site)
{
    keel__dep_fill(t, d, lock, kind, node, shared, trylock, keel__dep_chain(t, t->n, node, shared),
                   site);
    keel__dep_publish(t, kind);
}

/* Record an acquisition on the held stack. */
static inline void keel__dep_push(keel__lock_thread *t, keel_lockdep *d, const void *lock,
                                  keel__lock_kind kind, int nest, bool shared, bool trylock,
                                  const keel__lock_site *site)
{
    unsigned c = __atomic_load_n(&d->cls, __ATOMIC_ACQUIRE);
    if (KEEL_UNLIKELY(t->n >= KEEL_LOCK_MAX_HELD || c == 0 || c == KEEL__CLS_NONE || t->disabled)) {
        keel__dep_push_slow(t, d, lock, kind, nest, shared, trylock, site);
        return;
    }
    keel__dep_record(t, d, lock, kind, keel__dep_node(c - 1, nest), shared, trylock, site);
}

/*
 * Can an acquisition of a lock whose d->cls is c skip the general path?  Yes
 * when the held stack has room, nothing forbids blocking, there is no
 * overflow, the class is resolved and checked, and the lock is not annotated.  t is keel__lock_tls:
 * never the shared state of threads without memory (it is not remembered).
 */
static inline bool keel__dep_fast(const keel__lock_thread *t, unsigned c, int nest)
{
    return nest == 0 && keel__nw_room(t->nw) && c - 1u < KEEL__CLS_NONE - 1u;
}

/* Remove a release from the held stack.  False (and reported) when this thread does not hold it. */
static inline bool keel__dep_pop(keel__lock_thread *t, keel_lockdep *d, const void *lock,
                                 keel__dep_locked_fn *locked, const keel__lock_site *site)
{
    unsigned n = t->n;
    if (KEEL_LIKELY(n > 0 &&
                    t->h[n - 1].lock == lock)) { /* the usual: last taken, first released */
        if (t->h[n - 1].mode.kind == KEEL__LK_SPIN) {
            t->spins--;
            keel__dep_slow_update(t);
        }
        keel__held_drop(t);
        return true;
    }
    return keel__dep_pop_slow(t, d, lock, locked, site);
}
/* A stack as a report's text lines ("      #N func (file:line)"), keel's own frames dropped. */
void keel__dep_add_frames(keel_report *r, void *const *pcs, int n);
/* keel_lock_class_budget once its arguments are checked. */
KEEL_MUST_USE keel_status keel__dep_set_budget(const char *class_name,
                                               unsigned long long budget_ms);

const keel__held *keel__dep_find(const keel__lock_thread *t, const void *lock);
void keel__dep_mark_waiting(keel__lock_thread *t, const void *lock, bool waiting);

/* The learned order as DOT (snprintf semantics): keel-run's --lock-graph. */
size_t keel__lock_graph_dot(char *buf, size_t size);
/* fork: 0 before (takes the graph's lock), 1 after in the parent, 2 in the child. */
void keel__lock_fork(int phase);

KEEL_EXTERN_C_END

#endif /* KEEL_LOCKDEP_H */
