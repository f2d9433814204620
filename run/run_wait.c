/*
 * run/run_wait.c - libkeel-run.so's real deadlocks: a blocking lock call of the program that has
 * waited longer than keel-run's --deadlock-after (KEEL_RUN_DEADLOCK_MS) is examined, and a cycle
 * of threads each waiting for a lock another of them holds is reported with every waiting
 * thread's stack (docs/keel-run.md, "Real deadlocks").
 *
 * No thread of keel's: a contended acquisition waits in timed slices of the period (the real
 * clock lock call, CLOCK_MONOTONIC), and a thread whose slice ran out publishes its wait in a
 * small table (the lock, the locks it holds: its held stack, unchanging while it waits; its
 * backtrace, taken once) and looks for a cycle through itself among the published waits.  The
 * last thread of a cycle to publish finds it; its members are marked so that the cycle is
 * reported once.  A lock's holders, among the waiting threads: its held stacks, or the C
 * library's own record (a mutex's owner, a rwlock's writer).  An acquisition that does not
 * wait, the usual one, never comes here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "run.h"

enum {
    WAITERS = 64, /* threads in a long wait at once that are examined (the rest: not) */
    WAIT_FRAMES = 24,
    SHOWN_HELD = 8, /* held locks named per thread in a report */
};

typedef struct run_waiter {
    int used; /* under waiters_lock */
    int tid;
    bool shared;
    bool reported; /* in a cycle already reported */
    const keel__lock_thread *t;
    const run_lock *lock;
    const keel__lock_site *site;
    unsigned long long since_ns;
    int npcs;
    void *pcs[WAIT_FRAMES];
    char name[16];
} run_waiter;

static run_waiter waiters[WAITERS];
static int waiters_lock; /* run_spin: never held across a call outside this file */
static int reporting;    /* one report is made at a time (its snapshot is static) */

unsigned long long keel__run_wait_ns;

void keel__run_wait_start(void)
{
    const char *ms = getenv("KEEL_RUN_DEADLOCK_MS");
    unsigned long long v = 1000;
    if (ms != NULL && ms[0] != '\0') {
        char *end = NULL;
        v = strtoull(ms, &end, 10);
        if (end == NULL || *end != '\0')
            v = 1000;
    }
    keel__run_wait_ns = v * 1000000ull;
}

static unsigned long long mono_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static struct timespec ts_of(unsigned long long ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    return ts;
}

/* Does the waiting thread w hold the lock l (its held stack, or glibc's record)? */
static bool holds(const run_waiter *w, const run_lock *l)
{
    const keel__lock_thread *t = w->t;
    unsigned n = t != NULL ? __atomic_load_n(&t->n, __ATOMIC_RELAXED) : 0;
    for (unsigned i = 0; i < n && i < KEEL_LOCK_MAX_HELD; i++)
        if (t->h[i].lock == l && !t->h[i].mode.waiting)
            return true;
    if (l->type == RUN_RWLOCK) {
        const pthread_rwlock_t *rw = (const pthread_rwlock_t *)l->obj;
        return __atomic_load_n(&rw->__data.__cur_writer, __ATOMIC_RELAXED) == w->tid;
    }
    if (l->type == RUN_SPIN)
        return false;
    const pthread_mutex_t *m = (const pthread_mutex_t *)l->obj;
    return __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED) == w->tid;
}

/*
 * A cycle of waits through `from` (waiters_lock held): path[0] = from, each one waiting for a
 * lock the next holds, the last's lock held by from.  Its length, 0 for none.  Depth first over
 * at most WAITERS threads, each visited once.
 */
static unsigned find_cycle(unsigned from, unsigned *path)
{
    bool seen[WAITERS] = {false};
    unsigned next[WAITERS]; /* per depth: the next candidate holder to try */
    unsigned depth = 0;
    path[0] = from;
    next[0] = 0;
    seen[from] = true;
    for (;;) {
        unsigned c = path[depth];
        unsigned j = next[depth];
        while (j < WAITERS && (j == c || !waiters[j].used || (j != from && seen[j]) ||
                               !holds(&waiters[j], waiters[c].lock)))
            j++;
        if (j < WAITERS) {
            next[depth] = j + 1;
            if (j == from)
                return depth + 1;
            seen[j] = true; /* (each thread once: depth stays below WAITERS) */
            path[++depth] = j;
            next[depth] = 0;
            continue;
        }
        if (depth == 0)
            return 0;
        depth--;
    }
}

/* What a report says of one waiting thread: copied under waiters_lock, reported after. */
typedef struct waiter_view {
    run_waiter w;
    const char *lock_name;
    unsigned nheld;
    const char *held_name[SHOWN_HELD];
    const keel__lock_site *held_site[SHOWN_HELD];
} waiter_view;

static waiter_view views[WAITERS]; /* under `reporting` */

static void view_of(waiter_view *v, const run_waiter *w)
{
    v->w = *w;
    v->lock_name = keel__dep_name(run_dep((run_lock *)run_unqualified(w->lock)));
    v->nheld = 0;
    const keel__lock_thread *t = w->t;
    unsigned n = t != NULL ? __atomic_load_n(&t->n, __ATOMIC_RELAXED) : 0;
    for (unsigned i = 0; i < n && i < KEEL_LOCK_MAX_HELD && v->nheld < SHOWN_HELD; i++) {
        if (t->h[i].mode.waiting)
            continue;
        run_lock *h = (run_lock *)run_unqualified(t->h[i].lock);
        v->held_name[v->nheld] = keel__dep_name(run_dep(h));
        v->held_site[v->nheld++] = t->h[i].site;
    }
}

static const char *kind_word(const run_lock *l, bool shared)
{
    return l->type == RUN_RWLOCK ? (shared ? "rwlock (read)" : "rwlock (write)") : "mutex";
}

static void add_view(keel_report *r, const waiter_view *v, unsigned long long now)
{
    const keel__lock_site *s = v->w.site;
    keel_report_add_text(r, "  thread '%s' (tid %d) waits for %s '%s' at %s:%d, for %.1f s",
                         v->w.name, v->w.tid, kind_word(v->w.lock, v->w.shared), v->lock_name,
                         s != NULL ? s->file : "?", s != NULL ? s->line : 0,
                         (double)(now - v->w.since_ns) / 1e9);
    for (unsigned i = 0; i < v->nheld; i++) {
        const keel__lock_site *hs = v->held_site[i];
        keel_report_add_text(r, "    holding '%s' (taken at %s:%d)", v->held_name[i],
                             hs != NULL ? hs->file : "?", hs != NULL ? hs->line : 0);
    }
    if (v->nheld == 0)
        keel_report_add_text(r, "    holding no lock keel-run saw taken");
    keel__dep_add_frames(r, v->w.pcs, v->w.npcs);
}

/* The cycle through waiter `me`, if one is there that was not reported yet (guard set). */
static void examine(unsigned me)
{
    if (__atomic_exchange_n(&reporting, 1, __ATOMIC_ACQUIRE) != 0)
        return; /* another report is being made: the next slice looks again */
    unsigned path[WAITERS];
    unsigned n = 0, nother = 0;
    run_spin_acquire(&waiters_lock);
    unsigned len = find_cycle(me, path);
    bool fresh = false;
    for (unsigned i = 0; i < len; i++)
        fresh |= !waiters[path[i]].reported;
    if (fresh) {
        bool in_cycle[WAITERS] = {false};
        for (unsigned i = 0; i < len; i++) {
            in_cycle[path[i]] = true;
            waiters[path[i]].reported = true;
            view_of(&views[n++], &waiters[path[i]]);
        }
        /* then every other thread in a long wait, with its stack */
        for (unsigned j = 0; j < WAITERS; j++)
            if (waiters[j].used && !in_cycle[j]) {
                view_of(&views[n++], &waiters[j]);
                nother++;
            }
    }
    run_spin_release(&waiters_lock);
    if (fresh) {
        const keel__lock_site *s = views[0].w.site;
        keel_report *r = keel_report_begin(
            KEEL_REPORT_LOCK_ORDER, s != NULL ? s->file : NULL, s != NULL ? s->line : 0,
            s != NULL ? s->func : NULL,
            "deadlock: %u threads wait for each other's locks (a cycle of waits, seen after "
            "%llu ms), and no thread of the cycle can go on",
            len, keel__run_wait_ns / 1000000ull);
        keel_report_no_backtrace(r);
        keel_report_add_uint(r, "threads", len);
        unsigned long long now = mono_ns();
        keel_report_add_text(r, "the cycle (each thread waits for a lock the next one holds):");
        for (unsigned i = 0; i < len; i++)
            add_view(r, &views[i], now);
        if (nother > 0)
            keel_report_add_text(r, "other threads in a long lock wait (%u):", nother);
        for (unsigned i = len; i < n; i++)
            add_view(r, &views[i], now);
        (void)keel_report_emit(r);
    }
    __atomic_store_n(&reporting, 0, __ATOMIC_RELEASE);
}

/* Publish this thread's wait (guard set): its slot, or -1 (the table is full: not examined). */
static int publish(const run_lock *l, bool shared, const keel__lock_site *site,
                   unsigned long long since)
{
    run_waiter w;
    memset(&w, 0, sizeof(w));
    w.used = 1;
    w.tid = (int)keel__thread_id();
    w.shared = shared;
    w.t = keel__lock_tls;
    w.lock = l;
    w.site = site;
    w.since_ns = since;
    w.npcs = keel_backtrace(w.pcs, WAIT_FRAMES, 0);
    keel__thread_name(w.name, sizeof(w.name));
    int slot = -1;
    run_spin_acquire(&waiters_lock);
    for (int i = 0; i < WAITERS && slot < 0; i++)
        if (!waiters[i].used) {
            waiters[i] = w;
            slot = i;
        }
    run_spin_release(&waiters_lock);
    return slot;
}

static void unpublish(int slot)
{
    run_spin_acquire(&waiters_lock);
    waiters[slot].used = 0;
    run_spin_release(&waiters_lock);
}

int keel__run_wait(run_lock *l, bool shared, run_timed_fn timed, const keel__lock_site *site)
{
    unsigned long long period = keel__run_wait_ns;
    if (period == 0)
        return timed(l->obj, shared, NULL);
    unsigned long long since = mono_ns();
    struct timespec abs = ts_of(since + period);
    int rc = timed(l->obj, shared, &abs);
    if (rc != ETIMEDOUT)
        return rc;
    /* a long wait: the thread's pending held entry (the fast path's) is kept across keel's code */
    keel__lock_thread *t = keel__lock_tls;
    keel__held pending;
    bool keep = t != NULL && t->n < KEEL_LOCK_MAX_HELD;
    if (keep)
        pending = t->h[t->n];
    keel__run_inside++;
    int slot = publish(l, shared, site, since);
    keel__run_inside--;
    unsigned long long deadline = since + period;
    do {
        if (slot >= 0) {
            keel__run_inside++;
            examine((unsigned)slot);
            keel__run_inside--;
        }
        deadline += period;
        abs = ts_of(deadline);
        rc = timed(l->obj, shared, &abs);
    } while (rc == ETIMEDOUT);
    if (slot >= 0)
        unpublish(slot);
    if (keep)
        t->h[t->n] = pending;
    return rc;
}

void keel__run_wait_fork(int phase)
{
    if (phase == 0) {
        run_spin_acquire(&waiters_lock);
        return;
    }
    if (phase == 2) /* the child: the other threads' waits are not its own */
        for (unsigned i = 0; i < WAITERS; i++)
            waiters[i].used = 0;
    run_spin_release(&waiters_lock);
}
