/*
 * keel/lock_fast.h - the devel fast path of keel_mutex_lock, keel_mutex_unlock
 * and keel_mutex_trylock, inlined into the caller.  NOT API: included by
 * keel/lock.h in devel builds only; never include it, never use what it
 * declares.
 *
 * The layouts below (a thread's held-lock stack, the chain table) belong to
 * the libkeel-devel built from these very headers.  An object compiled against
 * them keeps a reference to keel__lock_layout_<N>_needs_matching_libkeel_devel,
 * which only a library of the same layout defines: linking a devel object with
 * a libkeel-devel of another layout fails instead of corrupting its state.
 * Whoever changes anything here bumps KEEL__LOCK_LAYOUT (src/lockdep.c checks
 * the sizes and offsets the inline code relies on at compile time).
 *
 * The inline path handles the common case only: the thread's lock state
 * exists, nothing forbids blocking, the lock's class is resolved and checked,
 * no nesting annotation, the stack has room and the held sequence is in its
 * home slot of the chain table (or nothing is held).  It makes the checks and
 * the held-stack writes the library's own fast path makes, and calls the
 * library (keel__mutex_lock, ...) for everything else.
 */
#ifndef KEEL_LOCK_FAST_H
#define KEEL_LOCK_FAST_H

#include "keel/lock.h" /* (which includes this file after its declarations) */

#if KEEL_DEVEL

#include "keel/assert.h"

KEEL_EXTERN_C_BEGIN

#define KEEL__LOCK_LAYOUT 5

#define KEEL__LOCK_LAYOUT_SYMBOL_(n) keel__lock_layout_##n##_needs_matching_libkeel_devel
#define KEEL__LOCK_LAYOUT_SYMBOL(n)  KEEL__LOCK_LAYOUT_SYMBOL_(n)
KEEL_API extern const int KEEL__LOCK_LAYOUT_SYMBOL(KEEL__LOCK_LAYOUT);
__attribute__((used)) static const int *const keel__lock_layout_reference =
    &KEEL__LOCK_LAYOUT_SYMBOL(KEEL__LOCK_LAYOUT);

typedef enum keel__lock_kind { KEEL__LK_MUTEX, KEEL__LK_RWLOCK, KEEL__LK_SPIN } keel__lock_kind;

/* How a lock is held: four bytes, written as one. */
typedef struct keel__held_mode {
    unsigned char kind;
    bool shared;  /* rwlock read */
    bool trylock; /* acquired without blocking */
    bool waiting; /* released inside a condition wait */
} __attribute__((aligned(4))) keel__held_mode;

/*
 * One lock a thread holds: five words, five stores.  The watchdog thread
 * samples `lock`, `node` (through `nm`) and `seq` of other threads' entries
 * (keel__lock_sample_held), so the owner writes those with atomic stores
 * (plain moves on the machine), node and mode together as the one word `nm`;
 * the other fields are the owner's alone.  The lock's keel_lockdep is not
 * stored: it is the lock's own (keel__held_dep in the library).  Entry 0's
 * `chain` is not stored either: a sequence of one lock is its node
 * (keel__held_chain).
 */
typedef struct keel__held {
    const void *lock; /* atomic */
    __extension__ union {
        __extension__ struct {
            unsigned node; /* class * KEEL__NEST_LEVELS + subclass */
            keel__held_mode mode;
        };
        unsigned long long nm; /* atomic: node, then mode (keel__held_nm) */
    };
    unsigned long long chain;    /* hash of the nodes of entries 0..this (not kept for entry 0) */
    unsigned long long seq;      /* atomic; its acquisition number (hold budgets; see nw below) */
    const keel__lock_site *site; /* where this thread acquired it */
} keel__held;

/*
 * A thread's first word, nw: the held stack's height n (its low half, the
 * field n in either byte order) and above it gs, whose bit 0 (KEEL__NW_SLOW)
 * is set while anything sends a lock to the library's general path (a
 * spinlock held, a non-blocking region, an overflow: keel__dep_slow_update)
 * and whose bits 1-31 count the acquisitions.  Each acquisition stores
 * nw + 1 + KEEL__NW_GEN when it is published, and its held entry's `seq` is
 * nw as it was before: a number no other acquisition of the thread gets (the
 * count moves at each one and never goes back; it repeats only after 2^31
 * acquisitions) with no counter of its own to load, add and store.  So the
 * inline lock reads one word for "nothing held, nothing slow" and writes it
 * once; the unlock writes nw - 1.
 */
#define KEEL__NW_SLOW (1ull << 32)
#define KEEL__NW_GEN  (2ull << 32)
#define KEEL__NW_BUSY (KEEL__NW_SLOW | 0xffffffffull) /* nw & BUSY: n, or the slow bit */

/* A thread's lock state: the held stack, spinlocks held, non-blocking depth. */
typedef struct keel__lock_thread {
    __extension__ union {
        __extension__ struct {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            unsigned n; /* atomic: the watchdog samples it */
            unsigned gs;
#else
            unsigned gs;
            unsigned n;
#endif
        };
        unsigned long long nw; /* atomic: gs << 32 | n (above) */
    };
    /* Where the lock of entry -1 would be: never a lock (keel__lock_guard), so the inline unlock's
     * one compare with the top entry also says "nothing held" (keel__held_top) */
    const void *guard;
    unsigned spins;
    unsigned nonblock;
    unsigned overflow;               /* acquisitions past KEEL_LOCK_MAX_HELD, not tracked */
    bool disabled;                   /* out of memory for this thread's state: nothing is tracked */
    unsigned char reserved[48 - 29]; /* h at 48: the guard is entry -1's lock */
    keel__held h[KEEL_LOCK_MAX_HELD];
} keel__lock_thread;

/* The value of every thread state's guard: an address in libkeel that no lock can have. */
KEEL_API extern const char keel__lock_guard;

#define KEEL__NEST_LEVELS 4u
#define KEEL__CLS_NONE    0xffffffffu /* class table full: the lock is not checked */

/*
 * Each thread's state, allocated by the library on its first lock call and
 * freed when it exits; the initial-exec model: one load, no __tls_get_addr,
 * in the program and in a plugin alike.  (__thread, not thread_local: C++
 * would reach a thread_local through a wrapper function.)  Before and after,
 * never NULL: the library's one shared "no state" (keel__lock_none), whose
 * word has the slow bit set and nothing held, so the inline paths' own tests
 * send every call to the library without a test of their own.
 */
KEEL_API extern __thread keel__lock_thread *keel__lock_tls
    __attribute__((tls_model("initial-exec")));

/* The lock-free table of lock sequences already validated (lockdep's chain cache). */
#define KEEL__CHAIN_SLOTS 16384u
KEEL_API extern unsigned long long keel__chains[KEEL__CHAIN_SLOTS];

/*
 * The chain hash of a held sequence followed by (node, shared); prev 0 is the
 * empty sequence.  A sequence of one lock is its node, unmixed (no multiply
 * for the usual single acquisition).  A longer one is B(prev ^ G(node)),
 * where G multiplies by the golden ratio (independent of prev: computed in
 * parallel) and B, a multiply by an odd constant then z ^= z >> 32, is a
 * bijection: two sequences that differ only in their prefix never collide,
 * and the latency on the held stack's dependency chain is one multiply.
 * Never 0.
 */
static inline unsigned long long keel__chain_more(unsigned long long prev, unsigned long long v)
{
    unsigned long long z = (prev ^ v * 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    z ^= z >> 32;
    return z != 0 ? z : 1;
}

static inline unsigned long long keel__chain_mix(unsigned long long prev, unsigned node,
                                                 bool shared)
{
    unsigned long long v = (unsigned long long)node * 2u + (shared ? 1u : 0u) + 1u;
    return prev == 0 ? v : keel__chain_more(prev, v);
}

/*
 * The word nm of a held entry: node, then mode, computed in registers (a
 * union through memory would cost two stores and a load that cannot forward
 * from them).  tests/test_lock_fast.c checks it against the fields.
 */
static inline unsigned long long keel__held_nm(unsigned node, keel__held_mode mode)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    unsigned m = (unsigned)mode.kind | (unsigned)mode.shared << 8 | (unsigned)mode.trylock << 16 |
                 (unsigned)mode.waiting << 24;
    return (unsigned long long)node | (unsigned long long)m << 32;
#else
    unsigned m = (unsigned)mode.kind << 24 | (unsigned)mode.shared << 16 |
                 (unsigned)mode.trylock << 8 | (unsigned)mode.waiting;
    return (unsigned long long)node << 32 | m;
#endif
}

/*
 * The chain hash of entries 0..i of t's stack: entry 0's is its node (its
 * `chain` field is not kept), 0 for an unchecked class as for any entry.
 */
static inline unsigned long long keel__held_chain(const keel__lock_thread *t, unsigned i)
{
    const keel__held *h = t->h + i; /* (i < t->n: the caller's) */
    if (i != 0)
        return h->chain;
    return h->node == KEEL__CLS_NONE ? 0 : keel__chain_mix(0, h->node, h->mode.shared);
}

/* Is this key in its home slot of the chain table (where most keys are)? */
static inline bool keel__chain_home(unsigned long long key)
{
    return __atomic_load_n(&keel__chains[key & (KEEL__CHAIN_SLOTS - 1u)], __ATOMIC_ACQUIRE) == key;
}

/*
 * The lock of t's top entry (of n), or with n 0 its guard, which is no lock:
 * t->guard is where entry -1's lock would be (src/lockdep.c checks the
 * offsets), so entry n - 1's is n entries past it.  Read as a pointer, not
 * through a keel__held (there is none at -1).
 */
__attribute__((always_inline)) static inline const void *keel__held_top(const keel__lock_thread *t,
                                                                        unsigned n)
{
    /* (n * 5 in 32 bits, then scaled by 8 in the address: one lea; sizeof(keel__held) is 40) */
    const char *top =
        (const char *)&t->guard + (size_t)(n * (unsigned)(sizeof(keel__held) / 8u)) * 8u;
    return *(const void *const *)(const void *)top;
}

/*
 * Is m on t's held stack (n > 0 entries)?  A mutex's owner word is written
 * only for the holds a held stack does not record (an overflow, a thread
 * without state, a hand-over): a thread with neither owns exactly the
 * mutexes on its stack, and the fast path writes nothing to the mutex but
 * the lock itself.
 */
__attribute__((always_inline)) static inline bool
keel__mutex_on_stack(const keel__lock_thread *t, unsigned n, const keel_mutex *m)
{
    for (const keel__held *h = &t->h[n]; h != t->h;)
        if ((--h)->lock == (const void *)m)
            return true;
    return false;
}

/*
 * The node of mutex m for the inline path: (cls - 1) * KEEL__NEST_LEVELS, a
 * value of at most KEEL__NODE_MAX when its class is resolved and checked.
 * With cls 0 (not resolved yet) or KEEL__CLS_NONE (not checked) it is above
 * (-4 or -8 modulo 2^32): one compare tells the library's cases.
 */
#define KEEL__NODE_MAX 0xfffffff0u
__attribute__((always_inline)) static inline unsigned keel__mutex_fast_node(const keel_mutex *m)
{
    return (__atomic_load_n(&m->dep.cls, __ATOMIC_ACQUIRE) - 1u) * KEEL__NEST_LEVELS;
}

/* Is a thread whose word is w holding nothing, with nothing slow?  (w & KEEL__NW_BUSY) == 0,
 * as a shift: no 64-bit constant to load. */
static inline bool keel__nw_idle(unsigned long long w)
{
    return w << 31 == 0;
}

/* May the inline path push onto a stack whose word is w?  Room, nothing slow. */
static inline bool keel__nw_room(unsigned long long w)
{
    return (w & KEEL__NW_BUSY) < KEEL_LOCK_MAX_HELD;
}

/*
 * The entry the inline path fills for m on top of t's n > 0 entries, with its
 * chain stored, or NULL for the library: m is on the stack (a self-deadlock,
 * or a failing trylock), or, when probe is set (a blocking lock), the
 * sequence is not in its home slot of the chain table (not validated yet, or
 * further along its probe).  (Nothing held: entry 0, no search, no hash, no
 * probe, and no chain stored: keel__held_chain.)
 */
__attribute__((always_inline)) static inline keel__held *
keel__mutex_entry(keel__lock_thread *t, unsigned n, const keel_mutex *m, unsigned node, bool probe)
{
    keel__held *h = &t->h[n];
    if (KEEL_UNLIKELY(keel__mutex_on_stack(t, n, m)))
        return NULL;
    unsigned long long chain =
        keel__chain_more(keel__held_chain(t, n - 1), (unsigned long long)node * 2u + 1u);
    if (probe && KEEL_UNLIKELY(!keel__chain_home(chain)))
        return NULL;
    h->chain = chain;
    return h;
}

/*
 * Fill a held entry for a mutex (its chain is keel__mutex_entry's): not held
 * yet, the caller publishes it (keel__nw_publish) once it is acquired.  Four
 * stores; the acquisition number is the thread's word w as read.
 */
__attribute__((always_inline)) static inline void keel__mutex_fill(keel__held *h, keel_mutex *m,
                                                                   unsigned node, bool trylock,
                                                                   const keel__lock_site *site,
                                                                   unsigned long long w)
{
    const keel__held_mode mode = {(unsigned char)KEEL__LK_MUTEX, false, trylock, false};
    h->site = site;
    __atomic_store_n(&h->lock, (const void *)m, __ATOMIC_RELAXED);
    __atomic_store_n(&h->nm, keel__held_nm(node, mode), __ATOMIC_RELAXED);
    __atomic_store_n(&h->seq, w, __ATOMIC_RELAXED);
}

/*
 * The entry filled on top of a stack whose word was w is held now: one more, the count moved.
 * A plain store: a signal handler that takes a keel mutex between the fill and this store puts
 * its entry in the same place and leaves it there (its unlock takes the stack back down), so the
 * thread then seems to hold the handler's mutex.  keel-run publishes with a compare-and-swap
 * instead (run/run_locks.c, run_publish); here that made a lock+unlock 2.4x-2.6x pthread instead
 * of 1.08x and 48 instructions (test_lock_fast's bound: 44), so it is not done (docs/keel-run.md,
 * Limits).
 */
static inline void keel__nw_publish(keel__lock_thread *t, unsigned long long w)
{
    __atomic_store_n(&t->nw, w + 1u + KEEL__NW_GEN, __ATOMIC_RELEASE);
}

__attribute__((always_inline)) static inline void
keel__mutex_lock_inline(keel_mutex *m, const keel__lock_site *site)
{
    keel__lock_thread *t = keel__lock_tls; /* (no state yet: keel__lock_none, slow) */
    unsigned node = keel__mutex_fast_node(m);
    unsigned long long w = __atomic_load_n(&t->nw, __ATOMIC_RELAXED); /* (this thread's own) */
    if (KEEL_UNLIKELY(node > KEEL__NODE_MAX)) {
        keel__mutex_lock(m, 0, site);
        return;
    }
    if (KEEL_LIKELY(keel__nw_idle(w))) {
        /* the usual: nothing held, nothing slow (the entry's place is known, nothing to check) */
        keel__mutex_fill(&t->h[0], m, node, false, site, w);
    } else {
        /* (room and nothing slow, so something is held: n > 0) */
        keel__held *h = keel__nw_room(w) ? keel__mutex_entry(t, (unsigned)w, m, node, true) : NULL;
        if (KEEL_UNLIKELY(h == NULL)) {
            keel__mutex_lock(m, 0, site);
            return;
        }
        keel__mutex_fill(h, m, node, false, site, w);
    }
    KEEL_VERIFY(pthread_mutex_lock(&m->m) == 0);
    keel__nw_publish(t, w);
}

/* Trylock never creates an order violation: no chain table probe, only the held entry. */
__attribute__((always_inline)) static inline bool
keel__mutex_trylock_inline(keel_mutex *m, const keel__lock_site *site)
{
    keel__lock_thread *t = keel__lock_tls;
    keel__held *h = NULL;
    unsigned long long w = 0;
    unsigned node = keel__mutex_fast_node(m);
    if (KEEL_LIKELY(node <= KEEL__NODE_MAX)) { /* (keel__lock_none: no room, the library) */
        w = __atomic_load_n(&t->nw, __ATOMIC_RELAXED);
        if ((unsigned)w == 0)
            h = KEEL_LIKELY(keel__nw_room(w)) ? &t->h[0] : NULL;
        else if (KEEL_LIKELY(keel__nw_room(w)))
            h = keel__mutex_entry(t, (unsigned)w, m, node, false);
    }
    if (KEEL_UNLIKELY(h == NULL))
        return keel__mutex_trylock(m, site);
    if (pthread_mutex_trylock(&m->m) != 0)
        return false;
    keel__mutex_fill(h, m, node, true, site, w);
    keel__nw_publish(t, w);
    return true;
}

__attribute__((always_inline)) static inline void
keel__mutex_unlock_inline(keel_mutex *m, const keel__lock_site *site)
{
    keel__lock_thread *t = keel__lock_tls; /* (no state yet: keel__lock_none, nothing held) */
    unsigned long long w = __atomic_load_n(&t->nw, __ATOMIC_RELAXED);
    /* the top entry's lock, or with nothing held the guard: one compare */
    if (KEEL_UNLIKELY(keel__held_top(t, (unsigned)w) != (const void *)m)) {
        keel__mutex_unlock(m, site);
        return;
    }
    /* the usual: the last lock taken, a mutex (no spinlock count) */
    __atomic_store_n(&t->nw, w - 1u, __ATOMIC_RELEASE);
    /* unchecked, as in the library: for a normal mutex glibc's unlock fails only on a corrupted
     * type (EINVAL), which the KEEL_VERIFY of the next lock call reports */
    (void)pthread_mutex_unlock(&m->m);
}

KEEL_EXTERN_C_END

#endif /* KEEL_DEVEL */

#endif /* KEEL_LOCK_FAST_H */
