/*
 * run/run_wait.c - libkeel-run.so's real deadlocks: a blocking lock call of the program that has
 * waited longer than keel-run's --deadlock-after (KEEL_RUN_DEADLOCK_MS) is examined, and a cycle
 * of threads each waiting for a lock another of them holds is reported with every waiting
 * thread's stack (docs/keel-run.md, "Real deadlocks").
 *
 * No thread of keel's for deadlocks: a contended acquisition waits in timed slices of the period (the real
 * clock lock call, CLOCK_MONOTONIC), and a thread whose slice ran out publishes its wait in a
 * small table (the lock, the locks it holds: its held stack, unchanging while it waits; its
 * backtrace, taken once) and looks for a cycle through itself among the published waits.  The
 * last thread of a cycle to publish finds it; its members are marked so that the cycle is
 * reported once.  A lock's holders, among the waiting threads: its held stacks, or the C
 * library's own record (a mutex's owner, a rwlock's writer).  An acquisition that does not
 * wait, the usual one, never comes here.
 *
 * Hangs: every thread in a published wait (a condition waiter whose slice ran out looks), or,
 * with --hang-after (KEEL_RUN_HANG_MS), every thread blocked in any call without a timeout: a
 * thread of keel-run's, the watcher, looks (the only thread keel-run makes, and only then).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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
    bool cond;     /* a condition wait: lock is its mutex's shadow (or NULL), waiting for none */
    int in_wait;   /* atomic, a condition wait: 1 inside the real call */
    const void *cond_obj, *mutex_obj;
    unsigned long long left_ns; /* atomic, a condition wait: when its last slice ran out */
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
/* A hang (every thread in a long wait): bumped at every wait that ends (under waiters_lock) */
static unsigned long long progress;
static unsigned long long hang_seen_ns; /* when every thread was first seen waiting (0: not) */
static unsigned long long hang_progress;
static bool hang_reported;
static int watcher_tid; /* atomic: the hang watcher's tid in this process (--hang-after), 0: none */
static __thread int cond_slot __attribute__((tls_model("initial-exec"))) = -1;

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
    if (l->type == RUN_RWLOCK)
        return run_glibc_rwlock_writer((const pthread_rwlock_t *)l->obj) == w->tid;
    if (l->type == RUN_SPIN)
        return false; /* (a spinlock records no owner) */
    return run_glibc_mutex_owner((const pthread_mutex_t *)l->obj) == w->tid;
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
        while (j < WAITERS && (waiters[c].cond || j == c || !waiters[j].used ||
                               (j != from && seen[j]) || !holds(&waiters[j], waiters[c].lock)))
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
    v->lock_name =
        w->lock != NULL ? keel__dep_name(run_dep((run_lock *)run_unqualified(w->lock))) : "?";
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
    if (l->type == RUN_RWLOCK)
        return shared ? "rwlock (read)" : "rwlock (write)";
    return l->type == RUN_SPIN ? "spinlock" : "mutex";
}

static void add_view(keel_report *r, const waiter_view *v, unsigned long long now)
{
    const keel__lock_site *s = v->w.site;
    if (v->w.cond)
        keel_report_add_text(
            r, "  thread '%s' (tid %d) waits on a condition with mutex '%s' at %s:%d, for %.1f s",
            v->w.name, v->w.tid, v->w.lock != NULL ? v->lock_name : "?", s != NULL ? s->file : "?",
            s != NULL ? s->line : 0, (double)(now - v->w.since_ns) / 1e9);
    else
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

/* A report of waits at site s (the first listed wait's), without the reporter's own backtrace
 * (every thread's is in the text). */
static keel_report *report_begin(keel_report_kind kind, const keel__lock_site *s, const char *msg,
                                 unsigned threads)
{
    keel_report *r = keel_report_begin(kind, s != NULL ? s->file : NULL, s != NULL ? s->line : 0,
                                       s != NULL ? s->func : NULL, "%s", msg);
    keel_report_no_backtrace(r);
    keel_report_add_uint(r, "threads", threads);
    return r;
}

static run_thread_view others[RUN_VIEW_THREADS]; /* under `reporting` */

/* Text a report holds (report.c's TEXT_SIZE, 2048), and what a thread's part of it may take. */
enum { TEXT_BUDGET = 1900, LINE_GUESS = 72 };

/* A thread's first frame shown: outside the C library and keel (its call is named apart). */
static int first_frame(const run_thread_view *v)
{
    int first = 0;
    while (first < v->npcs - 1 &&
           (keel__frame_in_libc(v->pcs[first]) || keel__frame_in_keel(v->pcs[first])))
        first++;
    return first;
}

static void add_other(keel_report *r, const run_thread_view *v)
{
    if (v->call != NULL) {
        const keel__lock_site *s = v->call_ra != NULL ? keel__run_site(v->call_ra) : NULL;
        keel_report_add_text(r, "  thread '%s' (tid %d) is in %s, called at %s:%d", v->name, v->tid,
                             v->call, s != NULL ? s->file : "?", s != NULL ? s->line : 0);
    } else {
        keel_report_add_text(r, "  thread '%s' (tid %d) is in no call keel-run watches%s", v->name,
                             v->tid, v->registered ? "" : " (keel-run never saw it lock)");
    }
    for (unsigned i = 0; i < v->nheld; i++) {
        const keel__lock_site *hs = v->held_site[i];
        keel_report_add_text(r, "    holding '%s' (taken at %s:%d)",
                             keel__dep_name(run_dep((run_lock *)run_unqualified(v->held[i]))),
                             hs != NULL ? hs->file : "?", hs != NULL ? hs->line : 0);
    }
    if (v->nheld == 0)
        keel_report_add_text(r, "    holding no lock keel-run saw taken");
    if (v->npcs == 0) {
        keel_report_add_text(r, "    no backtrace: %s", v->why);
        return;
    }
    int first = first_frame(v);
    keel__dep_add_frames(r, v->pcs + first, v->npcs - first);
}

/* The guessed length of a thread's part of a report's text. */
static unsigned guess_waiter(const waiter_view *v)
{
    return LINE_GUESS * (1u + v->nheld + (unsigned)v->w.npcs);
}

static unsigned guess_other(const run_thread_view *v)
{
    unsigned frames = v->npcs > 0 ? (unsigned)(v->npcs - first_frame(v)) : 1u;
    return LINE_GUESS * (1u + (v->nheld > 0 ? v->nheld : 1u) + frames);
}

/*
 * A report of waits: views[0..len) under `head` (a deadlock's cycle; NULL: none), the other
 * views (threads in a long wait), then every other thread of the program (others[0..nothers):
 * what it is in, its locks, its backtrace).  What does not fit in one report's text goes on in
 * "WORD (continued, part N): the other threads" reports of the same kind.
 */
static void report_waits(keel_report_kind kind, const char *word, const char *msg, unsigned threads,
                         const char *head, unsigned len, unsigned n, unsigned nothers)
{
    /* the site: the first wait's, else the first other thread's call */
    const keel__lock_site *site = n > 0 ? views[0].w.site : NULL;
    if (n == 0 && nothers > 0 && others[0].call_ra != NULL)
        site = keel__run_site(others[0].call_ra);
    keel_report *r = report_begin(kind, site, msg, threads);
    keel_report_add_uint(r, "all_threads", (unsigned long long)n + nothers);
    unsigned long long now = mono_ns();
    unsigned used = 0, part = 1;
    if (head != NULL)
        keel_report_add_text(r, "%s", head);
    for (unsigned i = 0; i < len; i++) {
        add_view(r, &views[i], now);
        used += guess_waiter(&views[i]);
    }
    if (n > len && head != NULL)
        keel_report_add_text(r, "other threads in a long lock wait (%u):", n - len);
    for (unsigned i = len; i < n + nothers; i++) {
        unsigned need = i < n ? guess_waiter(&views[i]) : guess_other(&others[i - n]);
        if (used + need > TEXT_BUDGET && used > 0) {
            (void)keel_report_emit(r);
            char more[96];
            (void)snprintf(more, sizeof(more), "%s (continued, part %u): the other threads", word,
                           ++part);
            r = report_begin(kind, site, more, threads);
            used = 0;
        }
        if (i == n)
            keel_report_add_text(r, "every %sthread of the program (%u):", n > 0 ? "other " : "",
                                 nothers);
        if (i < n)
            add_view(r, &views[i], now);
        else
            add_other(r, &others[i - n]);
        used += need;
    }
    (void)keel_report_emit(r);
}

/* The other threads of the program than views[0..n) (guard set): into others, their number. */
static unsigned view_others(unsigned n)
{
    int skip[WAITERS + 1];
    for (unsigned i = 0; i < n; i++)
        skip[i] = views[i].w.tid;
    skip[n] = __atomic_load_n(&watcher_tid, __ATOMIC_ACQUIRE); /* (not the program's) */
    return keel__run_threads_view(others, RUN_VIEW_THREADS, skip, n + 1);
}

/*
 * The cycle through waiter `me`, if one is there that was not reported yet (guard set).  Is
 * there a cycle through it (reported now or before; or another report under way: not known)?
 */
static bool examine(unsigned me)
{
    if (__atomic_exchange_n(&reporting, 1, __ATOMIC_ACQUIRE) != 0)
        return true; /* another report is being made: the next slice looks again */
    unsigned path[WAITERS];
    unsigned n = 0;
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
            if (waiters[j].used && !in_cycle[j])
                view_of(&views[n++], &waiters[j]);
    }
    run_spin_release(&waiters_lock);
    if (fresh) {
        char msg[256];
        (void)snprintf(msg, sizeof(msg),
                       "deadlock: %u threads wait for each other's locks (a cycle of waits, seen "
                       "after %llu ms), and no thread of the cycle can go on",
                       len, keel__run_wait_ns / 1000000ull);
        report_waits(KEEL_REPORT_LOCK_ORDER, "deadlock", msg, len,
                     "the cycle (each thread waits for a lock the next one holds):", len, n,
                     view_others(n));
    }
    __atomic_store_n(&reporting, 0, __ATOMIC_RELEASE);
    return len > 0;
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
    progress++;
    run_spin_release(&waiters_lock);
}

/* Every published wait into views (waiters_lock held): their number. */
static unsigned view_all(void)
{
    unsigned n = 0;
    for (unsigned j = 0; j < WAITERS; j++)
        if (waiters[j].used)
            view_of(&views[n++], &waiters[j]);
    return n;
}

/* The number of threads of the process (/proc/self/stat's 20th field), 0 when unknown. */
static unsigned count_threads(void)
{
    char buf[1024];
    int fd = RUN_REAL(open)("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = RUN_REAL(read)(fd, buf, sizeof(buf) - 1);
    (void)RUN_REAL(close)(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* (the command may hold spaces) */
    for (int field = 2; p != NULL && field < 20; field++)
        p = strchr(p + 1, ' ');
    unsigned threads = p != NULL ? (unsigned)strtoul(p + 1, NULL, 10) : 0;
    /* the hang watcher is not the program's */
    return threads - (threads > 0 && __atomic_load_n(&watcher_tid, __ATOMIC_ACQUIRE) != 0);
}

/*
 * The end of a hang's examination, the reporter's turn held (`reporting`; guard set): when
 * report, the hang of every thread of the program (kind watchdog, message a format): the n
 * published waits in views, then every other thread; then the turn given back.  Both hangs end
 * so: every thread in a long wait (examine_hang), every thread blocked (--hang-after's watcher).
 */
__attribute__((format(printf, 4, 5))) static void report_hang(bool report, unsigned threads,
                                                              unsigned n, const char *fmt, ...)
{
    if (report) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        report_waits(KEEL_REPORT_WATCHDOG, "hang", msg, threads, NULL, 0, n, view_others(n));
    }
    __atomic_store_n(&reporting, 0, __ATOMIC_RELEASE);
}

/*
 * A hang (guard set): every thread of the process has been in a long wait (a lock or a
 * condition) since one period at least, and no wait ended meanwhile; then every waiting
 * thread's stack is reported once (kind watchdog).  Called by a waiter whose slice ran out, a
 * condition's or a lock's not in a cycle of waits (it counts itself as waiting): a lock held by
 * a thread that returned without giving it back, waited for while main joins, is a hang too.
 */
static void examine_hang(unsigned me, unsigned long long now)
{
    unsigned threads = count_threads();
    if (__atomic_exchange_n(&reporting, 1, __ATOMIC_ACQUIRE) != 0)
        return;
    /* a thread joining another waits as long as that one does */
    unsigned long long period = keel__run_wait_ns;
    unsigned n = 0, waiting = keel__run_threads_in("pthread_join");
    bool report = false;
    run_spin_acquire(&waiters_lock);
    for (unsigned j = 0; j < WAITERS; j++) {
        const run_waiter *w = &waiters[j];
        if (!w->used)
            continue;
        /* a condition waiter between two slices (back in a moment) counts as waiting */
        unsigned long long left = __atomic_load_n(&w->left_ns, __ATOMIC_RELAXED);
        if (j == me || !w->cond || __atomic_load_n(&w->in_wait, __ATOMIC_ACQUIRE) != 0 ||
            left >= now || now - left < period / 4)
            waiting++;
    }
    if (threads == 0 || waiting != threads || hang_reported) {
        hang_seen_ns = 0;
    } else if (hang_seen_ns == 0 || hang_progress != progress) {
        hang_seen_ns = now; /* seen once: confirmed a period later, if no wait ended */
        hang_progress = progress;
    } else if (now - hang_seen_ns >= period) {
        report = hang_reported = true;
        n = view_all();
    }
    run_spin_release(&waiters_lock);
    report_hang(report, threads, n,
                "hang: every thread of the program (%u) has waited longer than %llu ms for a lock "
                "or a condition (or joins a thread), and no wait ended for %llu ms: no thread is "
                "left to wake another",
                threads, period / 1000000ull, (now - hang_seen_ns + period) / 1000000ull);
}

int keel__run_cond_wait(pthread_cond_t *c, pthread_mutex_t *m, const run_lock *ml,
                        const keel__lock_site *site, bool *sliced)
{
    unsigned long long period = keel__run_wait_ns;
    if (period == 0)
        return RUN_REAL(cond_wait)(c, m);
    int slot = cond_slot;
    if (slot >= 0 && (waiters[slot].cond_obj != c || waiters[slot].mutex_obj != m)) {
        unpublish(slot); /* another wait: the streak of the last one ended */
        slot = cond_slot = -1;
    }
    unsigned long long start = mono_ns();
    if (slot >= 0)
        __atomic_store_n(&waiters[slot].in_wait, 1, __ATOMIC_RELEASE);
    struct timespec abs = ts_of(start + period);
    int rc = RUN_REAL(cond_clockwait)(c, m, CLOCK_MONOTONIC, &abs);
    if (rc != ETIMEDOUT) {
        if (slot >= 0) {
            unpublish(slot);
            cond_slot = -1;
        }
        return rc;
    }
    /* a slice ran out: the wait is published (its streak goes on while the program waits again
     * on the same condition), then the call returns as a spurious wakeup */
    keel__run_inside++;
    if (slot < 0) {
        slot = cond_slot = publish(ml, false, site, start);
        if (slot >= 0) {
            run_spin_acquire(&waiters_lock);
            waiters[slot].cond = true;
            waiters[slot].cond_obj = c;
            waiters[slot].mutex_obj = m;
            run_spin_release(&waiters_lock);
        }
    }
    if (slot >= 0) {
        unsigned long long now = mono_ns();
        __atomic_store_n(&waiters[slot].left_ns, now, __ATOMIC_RELAXED);
        __atomic_store_n(&waiters[slot].in_wait, 0, __ATOMIC_RELEASE);
        examine_hang((unsigned)slot, now);
    }
    keel__run_inside--;
    *sliced = true;
    return 0;
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
    if (cond_slot >= 0) { /* a condition wait's streak ends with any other wait */
        unpublish(cond_slot);
        cond_slot = -1;
    }
    keel__run_inside++;
    int slot = publish(l, shared, site, since);
    keel__run_inside--;
    unsigned long long deadline = since + period;
    do {
        if (slot >= 0) {
            keel__run_inside++;
            if (!examine((unsigned)slot)) /* no cycle: every thread waiting is a hang still */
                examine_hang((unsigned)slot, mono_ns());
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
    if (phase == 2) { /* the child: the other threads' waits are not its own */
        for (unsigned i = 0; i < WAITERS; i++)
            waiters[i].used = 0;
        cond_slot = -1;
        hang_seen_ns = 0;
        hang_reported = false;
        __atomic_store_n(&watcher_tid, 0, __ATOMIC_RELEASE); /* (not copied by fork) */
    }
    run_spin_release(&waiters_lock);
}

/* ---- the hang watcher (--hang-after) ------------------------------------------------------------ */

unsigned long long keel__run_hang_ns;

/*
 * Is every thread of the program blocked (the watcher's view, guard set): in a published wait (a
 * lock, a condition), or in an interposed call with no timeout?  Then *sig is what their progress
 * is (the waits that ended, each thread's calls that ended) and *threads their number.
 */
static bool all_blocked(unsigned long long *sig, unsigned *threads)
{
    int waiting[WAITERS];
    unsigned nw = 0;
    run_spin_acquire(&waiters_lock);
    for (unsigned j = 0; j < WAITERS; j++)
        if (waiters[j].used)
            waiting[nw++] = waiters[j].tid;
    *sig = progress;
    run_spin_release(&waiters_lock);
    return keel__run_threads_blocked(waiting, nw, sig, threads);
}

/* The watched hang (guard set): every thread blocked for blocked_ns, reported once per process. */
static void report_watched(unsigned threads, unsigned long long blocked_ns)
{
    if (__atomic_exchange_n(&reporting, 1, __ATOMIC_ACQUIRE) != 0)
        return;
    unsigned n = 0;
    run_spin_acquire(&waiters_lock);
    bool report = !hang_reported;
    hang_reported = true;
    if (report)
        n = view_all();
    run_spin_release(&waiters_lock);
    report_hang(report, threads, n,
                "hang: every thread of the program (%u) has been blocked for %llu ms (in a call "
                "without a timeout, a lock or a condition wait), and none went on: nothing in the "
                "program is left to wake it",
                threads, blocked_ns / 1000000ull);
}

/*
 * The watcher thread: every quarter of the period, is every thread of the program blocked?  A
 * hang once they all are, with the same progress, a whole period after that was first seen.
 */
static void *watch(void *arg)
{
    (void)arg;
    keel__run_inside++; /* for good: everything it calls is the C library's */
    __atomic_store_n(&watcher_tid, (int)keel__thread_id(), __ATOMIC_RELEASE);
    (void)prctl(PR_SET_NAME, "keel-run-hang", 0, 0, 0);
    unsigned long long period = keel__run_hang_ns;
    unsigned long long step = period / 4 > 5000000ull ? period / 4 : 5000000ull;
    unsigned long long seen = 0, seen_sig = 0;
    for (;;) {
        struct timespec ts = ts_of(step);
        (void)RUN_REAL(nanosleep)(&ts, NULL);
        if (__atomic_load_n(&hang_reported, __ATOMIC_RELAXED))
            return NULL;
        unsigned long long sig = 0, now = mono_ns();
        unsigned threads = 0;
        if (!all_blocked(&sig, &threads))
            seen = 0;
        else if (seen == 0 || sig != seen_sig) {
            seen = now; /* seen once: a hang if nothing moves for a period */
            seen_sig = sig;
        } else if (now - seen >= period) {
            report_watched(threads, now - seen);
        }
    }
}

void keel__run_hang_start(void)
{
    const char *ms = getenv("KEEL_RUN_HANG_MS");
    unsigned long long v = ms != NULL && ms[0] != '\0' ? strtoull(ms, NULL, 10) : 0;
    keel__run_hang_ns = v * 1000000ull;
    if (v == 0 || !__atomic_load_n(&keel__run_locks_on, __ATOMIC_ACQUIRE))
        return;
    keel__run_inside++;
    pthread_attr_t attr;
    pthread_t t;
    /* made with every signal blocked, for good: the program's signals are the program's (a
     * timer's or kill's signal the program blocks in its threads, to take it with sigwait, would
     * otherwise be delivered to the watcher, and its default action end the program) */
    sigset_t all, old;
    (void)sigfillset(&all);
    (void)pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_attr_init(&attr) == 0) {
        (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int e = pthread_create(&t, &attr, watch, NULL);
        if (e != 0)
            (void)KEEL__REPORT_AT_CALLER(
                KEEL_REPORT_LIMIT, "keel-run: cannot start the hang watcher: %s", strerror(e));
        (void)pthread_attr_destroy(&attr);
    }
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    keel__run_inside--;
}
