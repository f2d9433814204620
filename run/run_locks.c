/*
 * run/run_locks.c - libkeel-run.so's lock interposer: the program's pthread mutexes, rwlocks,
 * spinlocks and condition waits become keel lock checks (docs/keel-run.md).
 *
 * Each call looks its object's shadow up in the side table (run_table.c), feeds keel's lock
 * checker (src/lockdep.c: classes, the learned order, reports) the acquisition or release, and
 * calls the real function found with dlsym(RTLD_NEXT).  The usual acquisition of a normal mutex
 * takes the checker's fast path (a known lock sequence: one probe of the chain cache); anything
 * else takes the general path under the recursion guard, so that keel's own locks and the C
 * library calls made from keel go straight to the real functions.
 *
 * What a check finds is reported, then the call does what the real one does (an error-checking
 * mutex still fails with EDEADLK, a normal one relocked by its holder still never returns).
 * Whether the calling thread holds a lock the checker never saw taken (before keel was ready) is
 * asked of the C library's own record (the mutex's owner, the rwlock's writer): such a lock is
 * accepted silently, never reported as not held.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/major.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/single_threaded.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "run.h"

run_real keel__run_real;
__thread int keel__run_inside __attribute__((tls_model("initial-exec")));
__thread unsigned keel__run_spins_held __attribute__((tls_model("initial-exec")));
__thread sigset_t keel__run_spin_mask __attribute__((tls_model("initial-exec")));
int keel__run_locks_on;
static __thread int run_tid __attribute__((tls_model("initial-exec")));

#define RA() __builtin_return_address(0)

/* ---- the real functions -------------------------------------------------------------------- */

#define RESOLVE(field, name)                                        \
    do {                                                            \
        if (keel__run_real.field == NULL) {                         \
            void *p = dlsym(RTLD_NEXT, name);                       \
            __builtin_memcpy(&keel__run_real.field, &p, sizeof(p)); \
        }                                                           \
    } while (0)

void keel__run_resolve(void)
{
    keel__run_inside++;
    RESOLVE(mutex_init, "pthread_mutex_init");
    RESOLVE(mutex_destroy, "pthread_mutex_destroy");
    RESOLVE(mutex_lock, "pthread_mutex_lock");
    RESOLVE(mutex_trylock, "pthread_mutex_trylock");
    RESOLVE(mutex_timedlock, "pthread_mutex_timedlock");
    RESOLVE(mutex_clocklock, "pthread_mutex_clocklock");
    RESOLVE(mutex_unlock, "pthread_mutex_unlock");
    RESOLVE(rwlock_init, "pthread_rwlock_init");
    RESOLVE(rwlock_destroy, "pthread_rwlock_destroy");
    RESOLVE(rwlock_rdlock, "pthread_rwlock_rdlock");
    RESOLVE(rwlock_wrlock, "pthread_rwlock_wrlock");
    RESOLVE(rwlock_tryrdlock, "pthread_rwlock_tryrdlock");
    RESOLVE(rwlock_trywrlock, "pthread_rwlock_trywrlock");
    RESOLVE(rwlock_timedrdlock, "pthread_rwlock_timedrdlock");
    RESOLVE(rwlock_timedwrlock, "pthread_rwlock_timedwrlock");
    RESOLVE(rwlock_clockrdlock, "pthread_rwlock_clockrdlock");
    RESOLVE(rwlock_clockwrlock, "pthread_rwlock_clockwrlock");
    RESOLVE(rwlock_unlock, "pthread_rwlock_unlock");
    RESOLVE(spin_init, "pthread_spin_init");
    RESOLVE(spin_destroy, "pthread_spin_destroy");
    RESOLVE(spin_lock, "pthread_spin_lock");
    RESOLVE(spin_trylock, "pthread_spin_trylock");
    RESOLVE(spin_unlock, "pthread_spin_unlock");
    RESOLVE(cond_wait, "pthread_cond_wait");
    RESOLVE(cond_timedwait, "pthread_cond_timedwait");
    RESOLVE(cond_clockwait, "pthread_cond_clockwait");
    RESOLVE(nanosleep, "nanosleep");
    RESOLVE(clock_nanosleep, "clock_nanosleep");
    RESOLVE(usleep, "usleep");
    RESOLVE(sleep, "sleep");
    RESOLVE(poll, "poll");
    RESOLVE(select, "select");
    RESOLVE(epoll_wait, "epoll_wait");
    RESOLVE(pthread_join, "pthread_join");
    RESOLVE(ppoll, "ppoll");
    RESOLVE(pselect, "pselect");
    RESOLVE(epoll_pwait, "epoll_pwait");
    RESOLVE(sem_wait, "sem_wait");
    RESOLVE(sem_timedwait, "sem_timedwait");
    RESOLVE(sem_clockwait, "sem_clockwait");
    RESOLVE(waitpid, "waitpid");
    RESOLVE(wait, "wait");
    RESOLVE(waitid, "waitid");
    RESOLVE(wait4, "wait4");
    RESOLVE(sigwait, "sigwait");
    RESOLVE(sigwaitinfo, "sigwaitinfo");
    RESOLVE(sigtimedwait, "sigtimedwait");
    RESOLVE(sigsuspend, "sigsuspend");
    RESOLVE(pause, "pause");
    RESOLVE(read, "read");
    RESOLVE(write, "write");
    RESOLVE(open, "open");
    RESOLVE(open64, "open64");
    RESOLVE(openat, "openat");
    RESOLVE(openat64, "openat64");
    RESOLVE(fsync, "fsync");
    RESOLVE(fdatasync, "fdatasync");
    RESOLVE(close, "close");
    RESOLVE(rename, "rename");
    RESOLVE(mkdir, "mkdir");
    RESOLVE(socket, "socket");
    RESOLVE(connect, "connect");
    RESOLVE(accept, "accept");
    RESOLVE(accept4, "accept4");
    RESOLVE(send, "send");
    RESOLVE(sendto, "sendto");
    RESOLVE(recv, "recv");
    RESOLVE(recvfrom, "recvfrom");
    RESOLVE(pread, "pread");
    RESOLVE(pread64, "pread64");
    RESOLVE(pwrite, "pwrite");
    RESOLVE(pwrite64, "pwrite64");
    RESOLVE(readv, "readv");
    RESOLVE(writev, "writev");
    RESOLVE(sendmsg, "sendmsg");
    RESOLVE(recvmsg, "recvmsg");
    RESOLVE(open_2, "__open_2");
    RESOLVE(open64_2, "__open64_2");
    RESOLVE(openat_2, "__openat_2");
    RESOLVE(openat64_2, "__openat64_2");
    RESOLVE(read_chk, "__read_chk");
    RESOLVE(recv_chk, "__recv_chk");
    RESOLVE(recvfrom_chk, "__recvfrom_chk");
    RESOLVE(pread_chk, "__pread_chk");
    RESOLVE(pread64_chk, "__pread64_chk");
    keel__run_inside--;
}

/* ---- start, fork, exit ------------------------------------------------------------------------ */

static void fork_prepare(void)
{
    keel__run_inside++;
    keel__run_heap_fork(0); /* first: a heap check reports while it holds a shard's lock */
    keel__report_fork(0);
    keel__backtrace_fork(0);
    keel__lock_fork(0);
    keel__run_table_fork(0);
    keel__run_faults_fork(0);
    keel__run_wait_fork(0);
    keel__run_threads_fork(0);
}

static void fork_after(int phase)
{
    keel__run_threads_fork(phase);
    keel__run_wait_fork(phase);
    keel__run_faults_fork(phase);
    keel__run_table_fork(phase);
    keel__lock_fork(phase);
    keel__backtrace_fork(phase);
    keel__report_fork(phase);
    keel__run_heap_fork(phase);
    keel__run_inside--;
}

static void fork_parent(void)
{
    fork_after(1);
}

static void fork_child(void)
{
    run_tid = 0;
    fork_after(2);
    keel__run_hang_start(); /* the child's own hang watcher (--hang-after) */
}

/* Locks of one class are ordered by the program's objects' addresses, not their shadows'. */
static const void *order_key(const void *lock)
{
    return ((const run_lock *)lock)->obj;
}

/* keel's report channel, when it runs outside an interposed call (a thread's exit check). */
static void report_guard(int delta)
{
    keel__run_inside += delta;
}

__attribute__((constructor(101))) static void run_start(void)
{
    keel__run_resolve();
    keel__run_threads_start(); /* first: its key before lockdep's (run_threads.c) */
    __atomic_store_n(&keel__report_guard, &report_guard, __ATOMIC_RELEASE);
    keel__dep_order_key = order_key;
    keel__run_inside++;
    keel__run_refuse_malformed_options(); /* (before the heap's start reads the options) */
    keel__run_inside--;
    keel__run_heap_start();
    keel__run_wait_start();
    keel__run_ranks_start();
    const char *locks = getenv("KEEL_RUN_LOCKS");
    bool locks_on = locks == NULL || strcmp(locks, "off") != 0;
    if (!locks_on && !keel__run_heap_on())
        return;
    keel__run_inside++;
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
    keel__run_inside--;
    if (locks_on)
        __atomic_store_n(&keel__run_locks_on, 1, __ATOMIC_RELEASE);
    keel__run_hang_start(); /* (with the lock checks only: it reads their thread table) */
}

/* --lock-graph FILE: the learned order as DOT, written at exit (not at _exit). */
__attribute__((destructor)) static void run_stop(void)
{
    const char *path = getenv("KEEL_RUN_LOCK_GRAPH");
    if (path == NULL || path[0] == '\0' || !__atomic_load_n(&keel__run_locks_on, __ATOMIC_RELAXED))
        return;
    keel__run_inside++;
    size_t need = keel__lock_graph_dot(NULL, 0) + 1;
    char *buf = (char *)malloc(need + 4096); /* (room for classes learned meanwhile) */
    if (buf != NULL) {
        size_t len = keel__lock_graph_dot(buf, need + 4096);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, buf, len < need + 4096 ? len : need + 4095) < 0)
            (void)KEEL__REPORT_AT_CALLER(KEEL_REPORT_LIMIT,
                                         "keel-run: cannot write the lock graph '%s': %s", path,
                                         strerror(errno));
        if (fd >= 0)
            (void)close(fd);
        free(buf);
    }
    keel__run_inside--;
}

/* ---- who holds it, by the C library's own record ------------------------------------------------- */

static int my_tid(void)
{
    if (KEEL_UNLIKELY(run_tid == 0))
        run_tid = (int)syscall(SYS_gettid);
    return run_tid;
}

static bool mutex_owner_is_me(const pthread_mutex_t *m)
{
    return run_glibc_mutex_owner(m) == my_tid();
}

static run_type mutex_type(const pthread_mutex_t *m)
{
    switch (run_glibc_mutex_kind(m)) {
    case PTHREAD_MUTEX_RECURSIVE_NP:
        return RUN_MUTEX_RECURSIVE;
    case PTHREAD_MUTEX_ERRORCHECK_NP:
        return RUN_MUTEX_ERRORCHECK;
    default:
        return RUN_MUTEX_NORMAL; /* normal and adaptive */
    }
}

/* Did a mutex lock call acquire it?  A robust mutex whose owner died is held on EOWNERDEAD. */
static inline bool mutex_acquired(int rc)
{
    return rc == 0 || KEEL_UNLIKELY(rc == EOWNERDEAD);
}

/* Is the object behind d locked by anyone?  (keel's reports: held by another, or not at all) */
static bool run_locked(keel_lockdep *d)
{
    run_lock *l = keel__run_of_dep(d);
    return l != NULL && keel__run_obj_locked(l);
}

/* The shadow of obj if it has one and is checked (not keel's own). */
static run_lock *checked(const void *obj)
{
    run_lock *l = keel__run_find(obj);
    return l != NULL && l->type == RUN_IGNORED ? NULL : l;
}

/* The shadow of obj (guard set), made at its first use; NULL: not checked. */
static run_lock *shadow(const void *obj, run_type type, const keel__lock_site *site)
{
    run_lock *l = keel__run_find(obj);
    if (l == NULL)
        l = keel__run_get(obj, type, site);
    return l != NULL && l->type == RUN_IGNORED ? NULL : l;
}

/*
 * The nesting of an acquisition: a lock of a class the thread already holds (an array of locks
 * made at one init site) is accepted in increasing address order, as keel's own
 * KEEL_NEST_BY_ADDRESS, and reported otherwise; an unmodified program has no annotation to say so.
 */
static int nest_of(const keel__lock_thread *t, run_lock *l)
{
    if (t->n == 0)
        return 0;
    unsigned node = keel__dep_node(keel__dep_class(run_dep(l), run_kind(l)), 0);
    for (unsigned i = 0; i < t->n; i++)
        if (t->h[i].node == node && t->h[i].lock != l && node != KEEL__CLS_NONE)
            return KEEL_NEST_BY_ADDRESS;
    return 0;
}

/* For the fast path: is a lock of node, or l itself, on the held stack? */
static bool held_node(const keel__lock_thread *t, const run_lock *l, unsigned node)
{
    for (unsigned i = 0; i < t->n; i++)
        if (t->h[i].node == node || t->h[i].lock == l)
            return true;
    return false;
}

/*
 * The fast path's entry for l, filled before the real acquisition, is held now.  A signal
 * handler that ran on this thread meanwhile and took a lock of its own put that lock's entry
 * where this one is (the top of the stack: this one was not published yet), and its unlock took
 * the stack back down, leaving its entry there.  So the entry is filled again when it is not this
 * acquisition's (another lock, or an acquisition number from before the handler's), and the
 * thread's word is moved on by a compare-and-swap of the word the check saw: a handler that runs
 * between the check and the swap moves the word on itself (its acquisition counts), the swap
 * fails and the check is made again.
 */
static inline void run_publish(keel__lock_thread *t, run_lock *l, unsigned node,
                               unsigned long long chain, const keel__lock_site *site)
{
    unsigned long long w = __atomic_load_n(&t->nw, __ATOMIC_RELAXED);
    for (;;) {
        const keel__held *h = &t->h[(unsigned)w];
        if (KEEL_UNLIKELY(__atomic_load_n(&h->lock, __ATOMIC_RELAXED) != l ||
                          __atomic_load_n(&h->seq, __ATOMIC_RELAXED) != w))
            keel__dep_fill(t, &l->as.m.dep, l, KEEL__LK_MUTEX, node, false, false, chain, site);
        if (KEEL_LIKELY(__atomic_compare_exchange_n(&t->nw, &w, w + 1u + KEEL__NW_GEN, false,
                                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED)))
            return;
    }
}

/* ---- mutex --------------------------------------------------------------------------------------- */

KEEL_RUN_EXPORT int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr)
{
    if (keel__run_check()) {
        keel__run_inside++;
        int kind = PTHREAD_MUTEX_NORMAL;
        if (attr != NULL)
            (void)pthread_mutexattr_gettype(attr, &kind);
        run_type type = kind == PTHREAD_MUTEX_RECURSIVE    ? RUN_MUTEX_RECURSIVE
                        : kind == PTHREAD_MUTEX_ERRORCHECK ? RUN_MUTEX_ERRORCHECK
                                                           : RUN_MUTEX_NORMAL;
        (void)keel__run_init(m, type, keel__run_site(RA()));
        keel__run_inside--;
    }
    return RUN_REAL(mutex_init)(m, attr);
}

/* Before a destroy call: checked (held: reported).  Its shadow when it may be dropped after. */
static run_lock *destroy_check(const void *obj, const void *ra)
{
    keel__run_inside++;
    run_lock *l = checked(obj);
    /* held: kept (a held stack still names it, and glibc destroys a held rwlock or spinlock) */
    if (l != NULL && !keel__dep_destroy_check(run_dep(l), l, run_locked, keel__run_site(ra)))
        l = NULL;
    keel__run_inside--;
    return l;
}

/* After it: a destroyed object has no shadow (its memory may hold another object next). */
static int destroyed(const void *obj, const run_lock *l, int rc)
{
    if (rc == 0 && l != NULL) {
        keel__run_inside++;
        keel__run_forget(obj);
        keel__run_inside--;
    }
    return rc;
}

KEEL_RUN_EXPORT int pthread_mutex_destroy(pthread_mutex_t *m)
{
    if (!keel__run_check())
        return RUN_REAL(mutex_destroy)(m);
    run_lock *l = destroy_check(m, RA());
    return destroyed(m, l, RUN_REAL(mutex_destroy)(m));
}

/* How a blocking call waits: until abs, on clock for the clock* calls (NULL: untimed). */
typedef struct run_wait {
    const struct timespec *abs;
    clockid_t clock;
    bool clocked;
} run_wait;

/* A slice of a wait for a mutex (run_wait.c): until abs, or untimed. */
static int mutex_timed(const void *obj, bool shared, const struct timespec *abs)
{
    (void)shared;
    pthread_mutex_t *m = (pthread_mutex_t *)run_unqualified(obj);
    if (abs == NULL)
        return RUN_REAL(mutex_lock)(m);
    int rc = RUN_REAL(mutex_clocklock)(m, CLOCK_MONOTONIC, abs);
    /* (a priority-inheritance mutex on a kernel without FUTEX_LOCK_PI2: no monotonic wait) */
    return rc == EINVAL ? RUN_REAL(mutex_lock)(m) : rc;
}

/*
 * The real untimed acquisition: in a process with one thread, the real call (nothing to wait
 * for; the C library's own lock then needs no atomic instruction); else a try, and when the
 * mutex is held, the wait that finds deadlocks (run_wait.c).  (A try costs what a lock costs
 * once the process has threads: both are one atomic compare-and-swap.)
 */
static inline int run_mutex_take(run_lock *l, pthread_mutex_t *m, const keel__lock_site *site)
{
    if (__libc_single_threaded)
        return keel__run_real.mutex_lock(m);
    int rc = keel__run_real.mutex_trylock(m);
    return KEEL_UNLIKELY(rc == EBUSY) ? keel__run_wait(l, false, mutex_timed, site) : rc;
}

/* The real acquisition: the program's timed call as it is (its own timeout), else a try, and
 * when the mutex is held, the wait that finds deadlocks (run_wait.c). */
static int mutex_real(run_lock *l, pthread_mutex_t *m, const run_wait *w,
                      const keel__lock_site *site)
{
    if (w != NULL && w->clocked)
        return RUN_REAL(mutex_clocklock)(m, w->clock, w->abs);
    if (w != NULL)
        return RUN_REAL(mutex_timedlock)(m, w->abs);
    return run_mutex_take(l, m, site);
}

/* A lock call of the mutex's holder: reported, then what the real call does. */
static int mutex_relock(run_lock *l, pthread_mutex_t *m, const run_wait *w, keel__lock_thread *t,
                        const keel__lock_site *site)
{
    if (l->type == RUN_MUTEX_RECURSIVE) {
        keel__run_inside--;
        int rc = mutex_real(l, m, w, site);
        if (rc == 0)
            l->depth++;
        return rc;
    }
    const char *outcome = l->type == RUN_MUTEX_ERRORCHECK ? "the call fails with EDEADLK"
                          : w != NULL                     ? "the call waits until its timeout"
                                                          : "the call never returns";
    keel__dep_misuse(t, run_dep(l), site,
                     "self-deadlock: mutex '%s' locked again by the thread that holds it (not "
                     "recursive): %s",
                     keel__dep_name(run_dep(l)), outcome);
    keel__run_inside--;
    return mutex_real(l, m, w, site);
}

/* Every check of a blocking mutex acquisition (w: timed), then the real call. */
__attribute__((noinline)) static int mutex_lock_general(pthread_mutex_t *m, const run_wait *w,
                                                        const void *ra)
{
    keel__run_inside++;
    const keel__lock_site *site = keel__run_site(ra);
    keel__lock_thread *t = run_self();
    run_lock *l = shadow(m, mutex_type(m), site);
    if (l == NULL) {
        keel__run_inside--;
        return w == NULL ? RUN_REAL(mutex_lock)(m) : mutex_real(l, m, w, site);
    }
    keel_lockdep *d = run_dep(l);
    keel__dep_can_block(t, w != NULL ? "pthread_mutex_timedlock" : "pthread_mutex_lock", site);
    if (keel__dep_find(t, l) != NULL || mutex_owner_is_me(m))
        return mutex_relock(l, m, w, t, site); /* (leaves the guard) */
    int nest = nest_of(t, l);
    keel__dep_before(t, d, l, KEEL__LK_MUTEX, nest, false, site);
    keel__run_inside--;
    int rc = mutex_real(l, m, w, site);
    if (mutex_acquired(rc)) {
        keel__run_inside++;
        keel__dep_push(t, d, l, KEEL__LK_MUTEX, nest, false, false, site);
        keel__run_inside--;
    }
    return rc;
}

/*
 * The fast path, as libkeel's own keel__mutex_lock: a normal mutex with a shadow, a known call
 * site, the thread's state made, nothing forbidding blocking and a known lock sequence.
 */
KEEL_RUN_EXPORT int pthread_mutex_lock(pthread_mutex_t *m)
{
    if (!keel__run_check())
        return RUN_REAL(mutex_lock)(m);
    keel__lock_thread *t = keel__lock_tls;
    run_lock *l = keel__run_find(m);
    if (KEEL_LIKELY(t != NULL && l != NULL && l->type == RUN_MUTEX_NORMAL)) {
        /* the call site: the lock's last one (one compare), else the site cache */
        const run_site *rs = __atomic_load_n(&l->last, __ATOMIC_RELAXED);
        if (KEEL_UNLIKELY(rs == NULL || rs->ra != RA())) {
            rs = keel__run_site_find(RA());
            if (KEEL_UNLIKELY(rs == NULL))
                return mutex_lock_general(m, NULL, RA());
            __atomic_store_n(&l->last, rs, __ATOMIC_RELAXED);
        }
        const keel__lock_site *site = &rs->site;
        unsigned c = __atomic_load_n(&l->as.m.dep.cls, __ATOMIC_ACQUIRE);
        unsigned node = (c - 1u) * KEEL__NEST_LEVELS;
        if (KEEL_LIKELY(keel__dep_fast(t, c, 0) && !held_node(t, l, node))) {
            unsigned n = t->n;
            unsigned long long chain = keel__dep_chain(t, n, node, false);
            if (KEEL_LIKELY(n == 0 || keel__chain_home(chain))) {
                keel__dep_fill(t, &l->as.m.dep, l, KEEL__LK_MUTEX, node, false, false, chain, site);
                int rc = run_mutex_take(l, m, site);
                if (KEEL_LIKELY(mutex_acquired(rc)))
                    run_publish(t, l, node, chain, site);
                return rc;
            }
        }
    }
    return mutex_lock_general(m, NULL, RA());
}

KEEL_RUN_EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abs)
{
    if (!keel__run_check())
        return RUN_REAL(mutex_timedlock)(m, abs);
    const run_wait w = {abs, CLOCK_REALTIME, false};
    return mutex_lock_general(m, &w, RA());
}

KEEL_RUN_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clock,
                                            const struct timespec *abs)
{
    if (!keel__run_check())
        return RUN_REAL(mutex_clocklock)(m, clock, abs);
    const run_wait w = {abs, clock, true};
    return mutex_lock_general(m, &w, RA());
}

KEEL_RUN_EXPORT int pthread_mutex_trylock(pthread_mutex_t *m)
{
    if (!keel__run_check())
        return RUN_REAL(mutex_trylock)(m);
    const void *ra = RA();
    keel__run_inside++;
    keel__lock_thread *t = run_self();
    const keel__lock_site *site = keel__run_site(ra);
    run_lock *l = shadow(m, mutex_type(m), site);
    bool mine = l != NULL && keel__dep_find(t, l) != NULL;
    keel__run_inside--;
    int rc = RUN_REAL(mutex_trylock)(m);
    if (!mutex_acquired(rc) || l == NULL)
        return rc;
    keel__run_inside++;
    if (mine) /* (only a recursive mutex succeeds when its holder tries it again) */
        l->depth++;
    else
        keel__dep_push(t, run_dep(l), l, KEEL__LK_MUTEX, 0, false, true, site);
    keel__run_inside--;
    return rc;
}

__attribute__((noinline)) static int mutex_unlock_general(pthread_mutex_t *m, const void *ra)
{
    keel__run_inside++;
    run_lock *l = checked(m);
    if (l == NULL) {
        keel__run_inside--;
        return RUN_REAL(mutex_unlock)(m);
    }
    keel__lock_thread *t = run_self();
    bool recorded = keel__dep_find(t, l) != NULL;
    if (l->type == RUN_MUTEX_RECURSIVE && l->depth > 0 && (recorded || mutex_owner_is_me(m))) {
        l->depth--;
    } else if (recorded || !mutex_owner_is_me(m)) {
        /* not recorded and not the owner by the C library's record either: reported */
        (void)keel__dep_pop(t, run_dep(l), l, run_locked, keel__run_site(ra));
    }
    keel__run_inside--;
    return RUN_REAL(mutex_unlock)(m);
}

KEEL_RUN_EXPORT int pthread_mutex_unlock(pthread_mutex_t *m)
{
    if (!keel__run_check())
        return RUN_REAL(mutex_unlock)(m);
    keel__lock_thread *t = keel__lock_tls;
    unsigned n = t != NULL ? t->n : 0;
    if (KEEL_LIKELY(n > 0)) {
        /* the usual: the last lock taken (every held entry is a shadow: no table lookup) */
        const run_lock *l = (const run_lock *)t->h[n - 1].lock;
        if (KEEL_LIKELY(l->obj == m && l->type == RUN_MUTEX_NORMAL)) {
            __atomic_store_n(&t->n, n - 1, __ATOMIC_RELEASE);
            return keel__run_real.mutex_unlock(m);
        }
    }
    return mutex_unlock_general(m, RA());
}

/* ---- condition waits ------------------------------------------------------------------------------ */

/* Before a wait: the checks; the mutex's entry marked released while it waits.  The shadow. */
static run_lock *cond_before(pthread_mutex_t *m, const void *ra, keel__lock_thread **tp,
                             const keel__lock_site **sitep, run_lock **shadowp)
{
    keel__run_inside++;
    const keel__lock_site *site = keel__run_site(ra);
    *sitep = site;
    keel__lock_thread *t = run_self();
    *tp = t;
    keel__dep_can_block(t, "pthread_cond_wait", site);
    run_lock *l = shadow(m, mutex_type(m), site);
    bool recorded = l != NULL && keel__dep_find(t, l) != NULL;
    if (l != NULL && !recorded && !mutex_owner_is_me(m))
        keel__dep_misuse(t, run_dep(l), site,
                         "condition wait with mutex '%s' not held by this thread",
                         keel__dep_name(run_dep(l)));
    if (recorded)
        keel__dep_mark_waiting(t, l, true);
    keel__run_inside--;
    *shadowp = l;
    return recorded ? l : NULL;
}

static void cond_after(run_lock *l, keel__lock_thread *t)
{
    if (l != NULL) {
        keel__run_inside++;
        keel__dep_mark_waiting(t, l, false);
        keel__run_inside--;
    }
}

KEEL_RUN_EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    if (!keel__run_check())
        return RUN_REAL(cond_wait)(c, m);
    keel__lock_thread *t = NULL;
    const keel__lock_site *site = NULL;
    run_lock *ml = NULL;
    run_lock *l = cond_before(m, RA(), &t, &site, &ml);
    run_in_enter("pthread_cond_wait", RA());
    bool sliced = false;
    int rc = keel__run_cond_wait(c, m, ml, site, &sliced); /* (a long wait: run_wait.c) */
    if (sliced)
        run_in_pause();
    else
        run_in_leave();
    cond_after(l, t);
    return rc;
}

KEEL_RUN_EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                           const struct timespec *abs)
{
    if (!keel__run_check())
        return RUN_REAL(cond_timedwait)(c, m, abs);
    keel__lock_thread *t = NULL;
    const keel__lock_site *site = NULL;
    run_lock *ml = NULL;
    run_lock *l = cond_before(m, RA(), &t, &site, &ml);
    run_in_wait("pthread_cond_timedwait", false, RA());
    int rc = RUN_REAL(cond_timedwait)(c, m, abs);
    run_in_leave();
    cond_after(l, t);
    return rc;
}

KEEL_RUN_EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clock,
                                           const struct timespec *abs)
{
    if (!keel__run_check())
        return RUN_REAL(cond_clockwait)(c, m, clock, abs);
    keel__lock_thread *t = NULL;
    const keel__lock_site *site = NULL;
    run_lock *ml = NULL;
    run_lock *l = cond_before(m, RA(), &t, &site, &ml);
    run_in_wait("pthread_cond_clockwait", false, RA());
    int rc = RUN_REAL(cond_clockwait)(c, m, clock, abs);
    run_in_leave();
    cond_after(l, t);
    return rc;
}

/* ---- rwlock -------------------------------------------------------------------------------------- */

KEEL_RUN_EXPORT int pthread_rwlock_init(pthread_rwlock_t *rw, const pthread_rwlockattr_t *attr)
{
    if (keel__run_check()) {
        keel__run_inside++;
        (void)keel__run_init(rw, RUN_RWLOCK, keel__run_site(RA()));
        keel__run_inside--;
    }
    return RUN_REAL(rwlock_init)(rw, attr);
}

KEEL_RUN_EXPORT int pthread_rwlock_destroy(pthread_rwlock_t *rw)
{
    if (!keel__run_check())
        return RUN_REAL(rwlock_destroy)(rw);
    run_lock *l = destroy_check(rw, RA());
    return destroyed(rw, l, RUN_REAL(rwlock_destroy)(rw));
}

static int rwlock_real(pthread_rwlock_t *rw, bool shared, bool attempt, const run_wait *w)
{
    if (attempt)
        return shared ? RUN_REAL(rwlock_tryrdlock)(rw) : RUN_REAL(rwlock_trywrlock)(rw);
    if (w != NULL && w->clocked)
        return shared ? RUN_REAL(rwlock_clockrdlock)(rw, w->clock, w->abs)
                      : RUN_REAL(rwlock_clockwrlock)(rw, w->clock, w->abs);
    if (w != NULL)
        return shared ? RUN_REAL(rwlock_timedrdlock)(rw, w->abs)
                      : RUN_REAL(rwlock_timedwrlock)(rw, w->abs);
    return shared ? RUN_REAL(rwlock_rdlock)(rw) : RUN_REAL(rwlock_wrlock)(rw);
}

/* A slice of a wait for a rwlock (run_wait.c): until abs, or untimed. */
static int rwlock_timed(const void *obj, bool shared, const struct timespec *abs)
{
    pthread_rwlock_t *rw = (pthread_rwlock_t *)run_unqualified(obj);
    if (abs == NULL)
        return shared ? RUN_REAL(rwlock_rdlock)(rw) : RUN_REAL(rwlock_wrlock)(rw);
    return shared ? RUN_REAL(rwlock_clockrdlock)(rw, CLOCK_MONOTONIC, abs)
                  : RUN_REAL(rwlock_clockwrlock)(rw, CLOCK_MONOTONIC, abs);
}

static int rwlock_acquire(pthread_rwlock_t *rw, bool shared, bool attempt, const run_wait *w,
                          const void *ra)
{
    if (!keel__run_check())
        return rwlock_real(rw, shared, attempt, w);
    keel__run_inside++;
    const keel__lock_site *site = keel__run_site(ra);
    keel__lock_thread *t = run_self();
    run_lock *l = shadow(rw, RUN_RWLOCK, site);
    if (l == NULL) {
        keel__run_inside--;
        return rwlock_real(rw, shared, attempt, w);
    }
    keel_lockdep *d = run_dep(l);
    int nest = 0;
    if (!attempt) {
        keel__dep_can_block(t, shared ? "pthread_rwlock_rdlock" : "pthread_rwlock_wrlock", site);
        const keel__held *h = keel__dep_find(t, l);
        bool writer_me = run_glibc_rwlock_writer(rw) == my_tid();
        if ((h != NULL && (!shared || !h->mode.shared)) || writer_me)
            keel__dep_misuse(t, d, site,
                             "self-deadlock: rwlock '%s' %s-locked by a thread that holds it%s: "
                             "%s",
                             keel__dep_name(d), shared ? "read" : "write",
                             h != NULL && h->mode.shared ? " for reading" : "",
                             writer_me ? "the call fails with EDEADLK" : "the call never returns");
        else if (h != NULL && run_glibc_rwlock_nonrecursive(rw))
            /* writer-preferring, not recursive: deadlocks once a writer queues between the two */
            keel__dep_recursive_read(t, d, site);
        nest = nest_of(t, l);
        keel__dep_before(t, d, l, KEEL__LK_RWLOCK, nest, shared, site);
    }
    keel__run_inside--;
    int rc;
    if (attempt || w != NULL) {
        rc = rwlock_real(rw, shared, attempt, w); /* (a timed call: the program's own timeout) */
    } else {
        /* a try, and when it is held, the wait that finds deadlocks (run_wait.c) */
        rc = rwlock_real(rw, shared, true, NULL);
        if (rc == EBUSY)
            rc = keel__run_wait(l, shared, rwlock_timed, site);
        else if (rc != 0)
            rc = rwlock_real(rw, shared, false, NULL); /* (the real call's own answer) */
    }
    if (rc == 0) {
        keel__run_inside++;
        keel__dep_push(t, d, l, KEEL__LK_RWLOCK, nest, shared, attempt, site);
        keel__run_inside--;
    }
    return rc;
}

KEEL_RUN_EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *rw)
{
    return rwlock_acquire(rw, true, false, NULL, RA());
}

KEEL_RUN_EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *rw)
{
    return rwlock_acquire(rw, false, false, NULL, RA());
}

KEEL_RUN_EXPORT int pthread_rwlock_tryrdlock(pthread_rwlock_t *rw)
{
    return rwlock_acquire(rw, true, true, NULL, RA());
}

KEEL_RUN_EXPORT int pthread_rwlock_trywrlock(pthread_rwlock_t *rw)
{
    return rwlock_acquire(rw, false, true, NULL, RA());
}

KEEL_RUN_EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *rw, const struct timespec *abs)
{
    const run_wait w = {abs, CLOCK_REALTIME, false};
    return rwlock_acquire(rw, true, false, &w, RA());
}

KEEL_RUN_EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *rw, const struct timespec *abs)
{
    const run_wait w = {abs, CLOCK_REALTIME, false};
    return rwlock_acquire(rw, false, false, &w, RA());
}

KEEL_RUN_EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t *rw, clockid_t clock,
                                               const struct timespec *abs)
{
    const run_wait w = {abs, clock, true};
    return rwlock_acquire(rw, true, false, &w, RA());
}

KEEL_RUN_EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t *rw, clockid_t clock,
                                               const struct timespec *abs)
{
    const run_wait w = {abs, clock, true};
    return rwlock_acquire(rw, false, false, &w, RA());
}

KEEL_RUN_EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *rw)
{
    if (!keel__run_check())
        return RUN_REAL(rwlock_unlock)(rw);
    const void *ra = RA();
    keel__run_inside++;
    run_lock *l = checked(rw);
    if (l != NULL) {
        keel__lock_thread *t = run_self();
        int writer = run_glibc_rwlock_writer(rw);
        /* not recorded: reported only when it is certainly not this thread's (the C library
         * keeps no readers' names) */
        if (keel__dep_find(t, l) != NULL || (writer != 0 && writer != my_tid()) ||
            !run_locked(run_dep(l)))
            (void)keel__dep_pop(t, run_dep(l), l, run_locked, keel__run_site(ra));
    }
    keel__run_inside--;
    return RUN_REAL(rwlock_unlock)(rw);
}

/* ---- spinlock ---------------------------------------------------------------------------------------- */

/* (a spinlock is a volatile int: its address as the table's key) */
static const void *spin_key(pthread_spinlock_t *s)
{
    return run_unqualified(s);
}

KEEL_RUN_EXPORT int pthread_spin_init(pthread_spinlock_t *s, int pshared)
{
    if (keel__run_check()) {
        keel__run_inside++;
        (void)keel__run_init(spin_key(s), RUN_SPIN, keel__run_site(RA()));
        keel__run_inside--;
    }
    return RUN_REAL(spin_init)(s, pshared);
}

KEEL_RUN_EXPORT int pthread_spin_destroy(pthread_spinlock_t *s)
{
    if (!keel__run_check())
        return RUN_REAL(spin_destroy)(s);
    run_lock *l = destroy_check(spin_key(s), RA());
    return destroyed(spin_key(s), l, RUN_REAL(spin_destroy)(s));
}

/*
 * A slice of a spin (run_wait.c): until abs (CLOCK_MONOTONIC), or the real untimed spin.  It
 * spins as glibc's does (a load until the lock looks free, then the atomic try), yielding the
 * processor, trying whatever the word says and looking at the clock every 1024 turns (so a word
 * read wrongly can slow the spin, never hang it).
 */
static int spin_timed(const void *obj, bool shared, const struct timespec *abs)
{
    (void)shared;
    pthread_spinlock_t *s = (pthread_spinlock_t *)run_unqualified(obj);
    if (abs == NULL)
        return RUN_REAL(spin_lock)(s);
    for (unsigned turn = 1;; turn++) {
        if ((run_glibc_spin_free(__atomic_load_n(s, __ATOMIC_RELAXED)) || turn % 1024u == 0) &&
            RUN_REAL(spin_trylock)(s) == 0)
            return 0;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if (turn % 1024u == 0) {
            (void)sched_yield(); /* (a spin this long: let the holder run, on a busy machine) */
            struct timespec now;
            (void)clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > abs->tv_sec ||
                (now.tv_sec == abs->tv_sec && now.tv_nsec >= abs->tv_nsec))
                return ETIMEDOUT;
        }
    }
}

static int spin_acquire(pthread_spinlock_t *s, bool attempt, const void *ra)
{
    if (!keel__run_check())
        return attempt ? RUN_REAL(spin_trylock)(s) : RUN_REAL(spin_lock)(s);
    keel__run_inside++;
    const keel__lock_site *site = keel__run_site(ra);
    keel__lock_thread *t = run_self();
    run_lock *l = shadow(spin_key(s), RUN_SPIN, site);
    if (l == NULL) {
        keel__run_inside--;
        return attempt ? RUN_REAL(spin_trylock)(s) : RUN_REAL(spin_lock)(s);
    }
    keel_lockdep *d = run_dep(l);
    int nest = 0;
    if (!attempt) {
        if (keel__dep_find(t, l) != NULL)
            keel__dep_misuse(t, d, site,
                             "self-deadlock: spinlock '%s' locked again by the thread that holds "
                             "it: the call spins forever",
                             keel__dep_name(d));
        nest = nest_of(t, l);
        keel__dep_before(t, d, l, KEEL__LK_SPIN, nest, false, site);
    }
    keel__run_inside--;
    int rc = RUN_REAL(spin_trylock)(s);
    if (!attempt && rc == EBUSY) /* spins in slices: a long spin is examined (run_wait.c) */
        rc = keel__run_wait(l, false, spin_timed, site);
    else if (!attempt && rc != 0)
        rc = RUN_REAL(spin_lock)(s); /* (the real call's own answer) */
    if (rc == 0) {
        keel__run_inside++;
        __atomic_store_n(&d->owner, (void *)t, __ATOMIC_RELAXED);
        keel__dep_push(t, d, l, KEEL__LK_SPIN, nest, false, attempt, site);
        keel__run_inside--;
    }
    return rc;
}

KEEL_RUN_EXPORT int pthread_spin_lock(pthread_spinlock_t *s)
{
    return spin_acquire(s, false, RA());
}

KEEL_RUN_EXPORT int pthread_spin_trylock(pthread_spinlock_t *s)
{
    return spin_acquire(s, true, RA());
}

KEEL_RUN_EXPORT int pthread_spin_unlock(pthread_spinlock_t *s)
{
    if (!keel__run_check())
        return RUN_REAL(spin_unlock)(s);
    const void *ra = RA();
    keel__run_inside++;
    run_lock *l = checked(spin_key(s));
    if (l != NULL) {
        keel__lock_thread *t = run_self();
        keel_lockdep *d = run_dep(l);
        void *owner = __atomic_load_n(&d->owner, __ATOMIC_RELAXED);
        if (keel__dep_find(t, l) != NULL || (owner != NULL && owner != t) || !run_locked(d)) {
            if (keel__dep_pop(t, d, l, run_locked, keel__run_site(ra)))
                __atomic_store_n(&d->owner, NULL, __ATOMIC_RELAXED);
        }
    }
    keel__run_inside--;
    return RUN_REAL(spin_unlock)(s);
}

/* ---- blocking calls: never under a spinlock ----------------------------------------------------------- */

static void can_block(const char *what, const void *ra)
{
    keel__lock_thread *t = keel__lock_tls;
    if (KEEL_UNLIKELY(t != NULL && (t->spins | t->nonblock) != 0) && keel__run_check()) {
        keel__run_inside++;
        keel__dep_blocking(t, what, keel__run_site(ra));
        keel__run_inside--;
    }
}

void keel__run_blocking(const char *what, bool blocks, bool untimed, const void *ra)
{
    if (blocks)
        can_block(what, ra);
    run_in_wait(what, untimed, ra);
}

/* The sleeps end on their own: never part of a hang. */
KEEL_RUN_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
    RUN_BLOCKING(int, "nanosleep", true, false, RUN_REAL(nanosleep)(req, rem));
}

KEEL_RUN_EXPORT int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                                    struct timespec *rem)
{
    RUN_BLOCKING(int, "clock_nanosleep", true, false,
                 RUN_REAL(clock_nanosleep)(clock, flags, req, rem));
}

KEEL_RUN_EXPORT int usleep(useconds_t us)
{
    RUN_BLOCKING(int, "usleep", true, false, RUN_REAL(usleep)(us));
}

KEEL_RUN_EXPORT unsigned sleep(unsigned s)
{
    RUN_BLOCKING(unsigned, "sleep", true, false, RUN_REAL(sleep)(s));
}

KEEL_RUN_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    int fault = run_wait_fault(RUN_F_POLL, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "poll", timeout != 0, timeout < 0, RUN_REAL(poll)(fds, n, timeout));
}

KEEL_RUN_EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout)
{
    int fault = run_wait_fault(RUN_F_SELECT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "select", timeout == NULL || timeout->tv_sec != 0 || timeout->tv_usec != 0,
                 timeout == NULL, RUN_REAL(select)(n, r, w, e, timeout));
}

KEEL_RUN_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    int fault = run_wait_fault(RUN_F_EPOLL_WAIT, RA());
    if (KEEL_UNLIKELY(fault != 0))
        return run_failed(fault);
    RUN_BLOCKING(int, "epoll_wait", timeout != 0, timeout < 0,
                 RUN_REAL(epoll_wait)(epfd, ev, max, timeout));
}

KEEL_RUN_EXPORT int pthread_join(pthread_t thread, void **ret)
{
    RUN_BLOCKING(int, "pthread_join", true, true, RUN_REAL(pthread_join)(thread, ret));
}

/*
 * A transfer (read, write, send, recv...): a blocking call when the descriptor is (a pipe, a
 * socket, a terminal or another character device without O_NONBLOCK; a regular file, a block
 * device or a memory device, major 1: /dev/null, /dev/zero, /dev/urandom..., is not).  Asked of
 * the descriptor only while the thread holds a spinlock (run_fd_enter): otherwise one
 * thread-local load.
 */
void keel__run_fd_check(const char *call, int fd, const void *ra)
{
    if (!keel__run_check())
        return;
    struct stat st;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || (flags & O_NONBLOCK) != 0 || fstat(fd, &st) != 0 || S_ISREG(st.st_mode) ||
        S_ISBLK(st.st_mode) || (S_ISCHR(st.st_mode) && major(st.st_rdev) == MEM_MAJOR))
        return;
    /* pread and pwrite on a pipe or a socket fail at once (ESPIPE): only a device can block */
    if ((strncmp(call, "pread", 5) == 0 || strncmp(call, "pwrite", 6) == 0) && !S_ISCHR(st.st_mode))
        return;
    char what[64];
    (void)snprintf(what, sizeof(what), "%s on a blocking descriptor", call);
    can_block(what, ra);
}

/* read and write: a stress point first (run_faults.c; a short transfer moves half), then the check. */
KEEL_RUN_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    int f = RUN_FAULT(RUN_F_READ, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2)) {
        errno = run_fail(f);
        return -1;
    }
    RUN_FD_CALL(ssize_t, "read", fd, false, RA(),
                RUN_REAL(read)(fd, buf, f != 0 ? keel__run_short(n) : n));
}

KEEL_RUN_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    int f = RUN_FAULT(RUN_F_WRITE, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2)) {
        errno = run_fail(f);
        return -1;
    }
    RUN_FD_CALL(ssize_t, "write", fd, false, RA(),
                RUN_REAL(write)(fd, buf, f != 0 ? keel__run_short(n) : n));
}
