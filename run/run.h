/*
 * run/run.h - what the files of libkeel-run.so (the preload library keel-run loads into an
 * unmodified program) share: the real C library functions, the recursion guard, the side
 * table of the program's pthread objects and the call-site cache.
 *
 * The program's pthread objects keep their ABI size, so keel's checking state cannot live in
 * them: each object the program locks gets a run_lock in a side table keyed by its address,
 * shaped like a keel_mutex / keel_rwlock / keel_spinlock (its `as` member) so that libkeel's
 * own lock checker (src/lockdep.c) takes it for one of keel's locks.  Only the checking state
 * of that shadow is used; the lock itself is always the program's, taken with the real call.
 */
#ifndef KEEL_RUN_H
#define KEEL_RUN_H

#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include "internal.h"
#include "keel/stress.h"
#include "lockdep.h"
#include "run_calls.h"
#include "run_glibc.h"

KEEL_EXTERN_C_BEGIN

/* Every interposed symbol: the only default-visibility names of libkeel-run.so. */
#define KEEL_RUN_EXPORT __attribute__((visibility("default")))

/* ---- the real functions (run_locks.c) ----------------------------------------------------- */

typedef struct run_real {
    int (*mutex_init)(pthread_mutex_t *, const pthread_mutexattr_t *);
    int (*mutex_destroy)(pthread_mutex_t *);
    int (*mutex_lock)(pthread_mutex_t *);
    int (*mutex_trylock)(pthread_mutex_t *);
    int (*mutex_timedlock)(pthread_mutex_t *, const struct timespec *);
    int (*mutex_clocklock)(pthread_mutex_t *, clockid_t, const struct timespec *);
    int (*mutex_unlock)(pthread_mutex_t *);
    int (*rwlock_init)(pthread_rwlock_t *, const pthread_rwlockattr_t *);
    int (*rwlock_destroy)(pthread_rwlock_t *);
    int (*rwlock_rdlock)(pthread_rwlock_t *);
    int (*rwlock_wrlock)(pthread_rwlock_t *);
    int (*rwlock_tryrdlock)(pthread_rwlock_t *);
    int (*rwlock_trywrlock)(pthread_rwlock_t *);
    int (*rwlock_timedrdlock)(pthread_rwlock_t *, const struct timespec *);
    int (*rwlock_timedwrlock)(pthread_rwlock_t *, const struct timespec *);
    int (*rwlock_clockrdlock)(pthread_rwlock_t *, clockid_t, const struct timespec *);
    int (*rwlock_clockwrlock)(pthread_rwlock_t *, clockid_t, const struct timespec *);
    int (*rwlock_unlock)(pthread_rwlock_t *);
    int (*spin_init)(pthread_spinlock_t *, int);
    int (*spin_destroy)(pthread_spinlock_t *);
    int (*spin_lock)(pthread_spinlock_t *);
    int (*spin_trylock)(pthread_spinlock_t *);
    int (*spin_unlock)(pthread_spinlock_t *);
    int (*cond_wait)(pthread_cond_t *, pthread_mutex_t *);
    int (*cond_timedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
    int (*cond_clockwait)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
    int (*nanosleep)(const struct timespec *, struct timespec *);
    int (*clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
    int (*usleep)(useconds_t);
    unsigned (*sleep)(unsigned);
    int (*poll)(struct pollfd *, nfds_t, int);
    int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    int (*epoll_wait)(int, struct epoll_event *, int, int);
    int (*pthread_join)(pthread_t, void **);
    /* the other waits (run_block.c) */
    int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
    int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
    int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
    int (*sem_wait)(sem_t *);
    int (*sem_timedwait)(sem_t *, const struct timespec *);
    int (*sem_clockwait)(sem_t *, clockid_t, const struct timespec *);
    pid_t (*waitpid)(pid_t, int *, int);
    pid_t (*wait)(int *);
    int (*waitid)(idtype_t, id_t, siginfo_t *, int);
    pid_t (*wait4)(pid_t, int *, int, struct rusage *);
    int (*sigwait)(const sigset_t *, int *);
    int (*sigwaitinfo)(const sigset_t *, siginfo_t *);
    int (*sigtimedwait)(const sigset_t *, siginfo_t *, const struct timespec *);
    int (*sigsuspend)(const sigset_t *);
    int (*pause)(void);
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*write)(int, const void *, size_t);
    /* the calls keel-run can fail (run_faults.c) */
    int (*open)(const char *, int, ...);
    int (*open64)(const char *, int, ...);
    int (*openat)(int, const char *, int, ...);
    int (*openat64)(int, const char *, int, ...);
    int (*fsync)(int);
    int (*fdatasync)(int);
    int (*close)(int);
    int (*rename)(const char *, const char *);
    int (*mkdir)(const char *, mode_t);
    int (*socket)(int, int, int);
    int (*connect)(int, __CONST_SOCKADDR_ARG, socklen_t); /* (glibc's transparent unions) */
    int (*accept)(int, __SOCKADDR_ARG, socklen_t *);
    int (*accept4)(int, __SOCKADDR_ARG, socklen_t *, int);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*sendto)(int, const void *, size_t, int, __CONST_SOCKADDR_ARG, socklen_t);
    ssize_t (*recv)(int, void *, size_t, int);
    ssize_t (*recvfrom)(int, void *, size_t, int, __SOCKADDR_ARG, socklen_t *);
    ssize_t (*pread)(int, void *, size_t, off_t);
    ssize_t (*pread64)(int, void *, size_t, off64_t);
    ssize_t (*pwrite)(int, const void *, size_t, off_t);
    ssize_t (*pwrite64)(int, const void *, size_t, off64_t);
    ssize_t (*readv)(int, const struct iovec *, int);
    ssize_t (*writev)(int, const struct iovec *, int);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    ssize_t (*recvmsg)(int, struct msghdr *, int);
    /* their _FORTIFY_SOURCE variants (what programs built with it call) */
    int (*open_2)(const char *, int);
    int (*open64_2)(const char *, int);
    int (*openat_2)(int, const char *, int);
    int (*openat64_2)(int, const char *, int);
    ssize_t (*read_chk)(int, void *, size_t, size_t);
    ssize_t (*recv_chk)(int, void *, size_t, size_t, int);
    ssize_t (*recvfrom_chk)(int, void *, size_t, size_t, int, __SOCKADDR_ARG, socklen_t *);
    ssize_t (*pread_chk)(int, void *, size_t, off_t, size_t);
    ssize_t (*pread64_chk)(int, void *, size_t, off64_t, size_t);
} run_real;

extern run_real keel__run_real;
/* Resolve every real function (dlsym RTLD_NEXT); idempotent, safe before the constructor. */
void keel__run_resolve(void);
/* The program keel-run started, with a malformed KEEL_OPTIONS: exit status 2 (run_faults.c). */
void keel__run_refuse_malformed_options(void);

/* The real function `fn`, resolved on first use when a call comes before the constructor. */
#define RUN_REAL(fn) \
    (KEEL_UNLIKELY(keel__run_real.fn == NULL) ? (keel__run_resolve(), 0) : 0, keel__run_real.fn)

/* ---- the recursion guard and readiness ------------------------------------------------------ */

/*
 * Set while keel's own code runs inside an interposed call: keel's locks (the graph, the report
 * channel, libdw's) and the C library's calls from there go straight to the real functions.
 */
extern __thread int keel__run_inside __attribute__((tls_model("initial-exec")));
/* 1 once the lock checks are on (after the constructor, unless --locks=off). */
extern int keel__run_locks_on;

/* Check this call?  Not inside keel, and only once ready. */
static inline bool keel__run_check(void)
{
    return KEEL_LIKELY(__atomic_load_n(&keel__run_locks_on, __ATOMIC_RELAXED) != 0) &&
           KEEL_LIKELY(keel__run_inside == 0);
}

/* A pointer without its qualifiers (the C library's prototypes want them off). */
static inline void *run_unqualified(const volatile void *p)
{
    union {
        const volatile void *in;
        void *out;
    } u = {p};
    return u.out;
}

/* The spinlocks of keel-run's tables this thread holds, and its signal mask from before the
 * first (run_spin_acquire). */
extern __thread unsigned keel__run_spins_held __attribute__((tls_model("initial-exec")));
extern __thread sigset_t keel__run_spin_mask __attribute__((tls_model("initial-exec")));

/*
 * A spinlock of keel-run's own tables: atomics, never a pthread lock (nothing reaches the
 * interposer), held only around a few stores; a fork child starts it free where it must.  Held
 * under the recursion guard, always, and with the signals that come from outside blocked
 * (keel__signals_block): a program's signal handler never runs while its thread holds one.  (A
 * handler that did, and waited for a program lock held by a thread spinning on this one, would
 * deadlock; and the guard alone made its interposed calls go straight to the C library's, never
 * to a spinlock its own thread holds.)
 */
static inline void run_spin_acquire(int *lock)
{
    keel__run_inside++;
    if (keel__run_spins_held++ == 0)
        keel__signals_block(&keel__run_spin_mask);
    while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) != 0)
        while (__atomic_load_n(lock, __ATOMIC_RELAXED) != 0) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
}

static inline void run_spin_release(int *lock)
{
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
    if (--keel__run_spins_held == 0)
        keel__signals_restore(&keel__run_spin_mask);
    keel__run_inside--;
}

/* A call site of the program: a return address and what it is, made once, never freed. */
typedef struct run_site {
    const void *ra;
    keel__lock_site site;
} run_site;

/* ---- the side table (run_table.c) -------------------------------------------------------------- */

/* What a program's object is, as the table remembers it. */
typedef enum run_type {
    RUN_MUTEX_NORMAL,
    RUN_MUTEX_RECURSIVE,
    RUN_MUTEX_ERRORCHECK,
    RUN_RWLOCK,
    RUN_SPIN,
    RUN_IGNORED, /* keel's own (an object inside libkeel-run.so): never checked */
} run_type;

typedef struct run_lock {
    /* keel's checker sees one of these (lockdep.h keel__held_dep): first, aligned as they are */
    union {
        keel_mutex m;
        keel_rwlock rw;
        keel_spinlock s;
    } as;
    const void *obj; /* the program's object */
    struct run_lock *next_free;
    unsigned type;        /* run_type */
    unsigned depth;       /* recursive mutex: acquisitions past the first (the holder's) */
    const run_site *last; /* atomic: the site of its last lock call (the fast path's cache) */
} run_lock;

static inline keel_lockdep *run_dep(run_lock *l)
{
    switch ((run_type)l->type) {
    case RUN_RWLOCK:
        return &l->as.rw.dep;
    case RUN_SPIN:
        return &l->as.s.dep;
    default:
        return &l->as.m.dep;
    }
}

static inline keel__lock_kind run_kind(const run_lock *l)
{
    return l->type == RUN_RWLOCK ? KEEL__LK_RWLOCK
           : l->type == RUN_SPIN ? KEEL__LK_SPIN
                                 : KEEL__LK_MUTEX;
}

/* Is the program's object locked by any thread (its real state)? */
bool keel__run_obj_locked(const run_lock *l);

/* The run_lock whose checking state d is. */
run_lock *keel__run_of_dep(keel_lockdep *d);

/* Lock-free: the object's shadow, or NULL (never seen, or destroyed since). */
run_lock *keel__run_find(const void *obj);
/*
 * The object's shadow, made now when it has none (guard set): a lock seen without its init
 * call (a static initializer) gets a class of its own (per static object, or per first lock
 * site for one in the heap or on a stack).  NULL when the table is full (not checked).
 */
run_lock *keel__run_get(const void *obj, run_type type, const keel__lock_site *site);
/* An init call: a fresh shadow whose class is the init site (the old one, if any, dropped). */
run_lock *keel__run_init(const void *obj, run_type type, const keel__lock_site *site);
/* A destroy call that succeeded: the object has no shadow any more (its memory may be reused). */
void keel__run_forget(const void *obj);

/* The program's call site for a return address: cached, resolved once (guard set on a miss). */
const run_site *keel__run_site_find(const void *ra);
const keel__lock_site *keel__run_site(const void *ra);

/* fork: the table's lock around it */
void keel__run_table_fork(int phase);
/* From the constructor: the classes' ranks keel-run --rank gave (KEEL_RUN_RANKS). */
void keel__run_ranks_start(void);

/* ---- long lock waits and real deadlocks (run_wait.c) ------------------------------------------ */

/*
 * One slice of a blocking acquisition of obj: the real clock lock call until abs
 * (CLOCK_MONOTONIC), or the untimed real call when abs is NULL.  ETIMEDOUT: not yet.
 */
typedef int (*run_timed_fn)(const void *obj, bool shared, const struct timespec *abs);
/* The period after which a wait is examined, in ns (0: never); from KEEL_RUN_DEADLOCK_MS. */
extern unsigned long long keel__run_wait_ns;
void keel__run_wait_start(void);
/*
 * A blocking acquisition of l that could not be made at once (guard not set): waits in slices
 * of the period; after each, the wait is published and a cycle of waiting threads through this
 * one is reported (kind lock-order, "deadlock:", every waiting thread's stack).  What the last
 * slice returned (never ETIMEDOUT).
 */
int keel__run_wait(run_lock *l, bool shared, run_timed_fn timed, const keel__lock_site *site);
/*
 * An untimed condition wait (guard not set; ml the mutex's shadow or NULL): waits one period at
 * most; when it runs out the wait is published (the streak goes on while the thread waits again
 * on the same condition and mutex), a hang of every thread is looked for, and the call returns 0,
 * a spurious wakeup (POSIX allows them: the program waits again if its condition is still false),
 * with *sliced set (the thread made no progress).
 */
int keel__run_cond_wait(pthread_cond_t *c, pthread_mutex_t *m, const run_lock *ml,
                        const keel__lock_site *site, bool *sliced);
/* fork: the table of waits (phase 0 before, 1 parent, 2 child: emptied, its own watcher) */
void keel__run_wait_fork(int phase);
/*
 * --hang-after (KEEL_RUN_HANG_MS, 0: off): a thread of keel-run's ("keel-run-hang") looks every
 * quarter of the period whether every thread of the program is blocked (in an interposed call
 * without a timeout, a published lock or condition wait) with no progress; after a whole period
 * of it, the hang is reported once (kind watchdog) with every thread's call, locks and stack.
 * Started from the constructor once the lock checks are on, and in a fork child.
 */
extern unsigned long long keel__run_hang_ns;
void keel__run_hang_start(void);

/* ---- every thread of the program (run_threads.c) --------------------------------------------- */

/* The interposed blocking call a thread is in (its thread-local keel__run_in), NULL: none. */
typedef struct run_in {
    const char *call; /* atomic */
    const void *ra;   /* the program's call site of it */
    int untimed;      /* atomic: the call has no timeout (it ends only when something happens) */
    unsigned ended;   /* atomic: the thread's watched calls that ended (its progress, for hangs) */
} run_in;
extern __thread run_in keel__run_in __attribute__((tls_model("initial-exec")));
/* The thread's slot in the table of threads + 1; 0: none yet. */
extern __thread int keel__run_slot __attribute__((tls_model("initial-exec")));
/* From the constructor: the key whose destructor empties an exiting thread's slot. */
void keel__run_threads_start(void);
/* The calling thread in the table (a slot with its lock state and call); once per thread. */
void keel__run_thread_register(void);
/* The number of threads in the table in the interposed call `call` ("pthread_join") now. */
unsigned keel__run_threads_in(const char *call);
/*
 * Is every thread of the process but the caller blocked: one of the nwaiting tids of waiting (a
 * published wait), or in an interposed call without a timeout and not running (state R), and no
 * descendant process running, no alarm pending?  Then *nthreads is their number and *sig (in: the waits'
 * progress) hashes each thread's progress (its calls that ended) and the descendants' CPU time in.
 */
bool keel__run_threads_blocked(const int *waiting, unsigned nwaiting, unsigned long long *sig,
                               unsigned *nthreads);
/* fork: the table's lock around it (phase 0 before, 1 parent, 2 child: the caller's slot only) */
void keel__run_threads_fork(int phase);

/* Around an interposed blocking call: what a deadlock or hang report says the thread is in;
 * untimed: the call has no timeout (a hang can be made of it). */
static inline void run_in_wait(const char *call, bool untimed, const void *ra)
{
    if (KEEL_UNLIKELY(keel__run_slot == 0) &&
        __atomic_load_n(&keel__run_locks_on, __ATOMIC_RELAXED) != 0 && keel__run_inside == 0)
        keel__run_thread_register();
    keel__run_in.ra = ra;
    __atomic_store_n(&keel__run_in.untimed, untimed, __ATOMIC_RELAXED);
    __atomic_store_n(&keel__run_in.call, call, __ATOMIC_RELEASE);
}

/* An untimed call (a transfer on a descriptor, a join...). */
static inline void run_in_enter(const char *call, const void *ra)
{
    run_in_wait(call, true, ra);
}

/* The call ended: the thread made progress. */
static inline void run_in_leave(void)
{
    __atomic_store_n(&keel__run_in.ended, keel__run_in.ended + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&keel__run_in.call, NULL, __ATOMIC_RELEASE);
}

/* A condition wait that returned only because its slice ran out (run_wait.c): no progress. */
static inline void run_in_pause(void)
{
    __atomic_store_n(&keel__run_in.call, NULL, __ATOMIC_RELEASE);
}

/*
 * An interposed sleeping or waiting call (run_locks.c, run_block.c): reported when it would
 * block (blocks) under a spinlock, then the thread is in it (untimed: no timeout) until
 * run_in_leave.
 */
void keel__run_blocking(const char *what, bool blocks, bool untimed, const void *ra);

/* return `call` (of type `type`) made between keel__run_blocking and run_in_leave */
#define RUN_BLOCKING(type, what, blocks, untimed, call)                         \
    do {                                                                        \
        keel__run_blocking(what, blocks, untimed, __builtin_return_address(0)); \
        type rc_ = (call);                                                      \
        run_in_leave();                                                         \
        return rc_;                                                             \
    } while (0)

/* A transfer on fd under a spinlock (or in a non-blocking region): reported as a blocking call
 * when fd blocks (a pipe, socket or terminal without O_NONBLOCK; not a regular file). */
void keel__run_fd_check(const char *call, int fd, const void *ra);

/* Before a transfer on fd: checked as a blocking call unless dontwait (MSG_DONTWAIT); then the
 * thread is in `call` until run_in_leave.  One thread-local load when no spinlock is held. */
static inline void run_fd_enter(const char *call, int fd, bool dontwait, const void *ra)
{
    const keel__lock_thread *t = keel__lock_tls;
    if (KEEL_UNLIKELY(t != NULL && (t->spins | t->nonblock) != 0) && !dontwait)
        keel__run_fd_check(call, fd, ra);
    run_in_enter(call, ra);
}

/* return the transfer `expr` (of type `type`) on fd made between run_fd_enter and run_in_leave */
#define RUN_FD_CALL(type, call, fd, dontwait, ra, expr) \
    do {                                                \
        run_fd_enter(call, fd, dontwait, ra);           \
        type rc_ = (expr);                              \
        run_in_leave();                                 \
        return rc_;                                     \
    } while (0)

/* The calling thread's lock state, the thread in the table of threads. */
static inline keel__lock_thread *run_self(void)
{
    if (KEEL_UNLIKELY(keel__run_slot == 0))
        keel__run_thread_register();
    return keel__lock_self();
}

enum {
    RUN_VIEW_THREADS = 32, /* threads outside the cycle and the waits shown in a report */
    RUN_VIEW_FRAMES = 16,
    RUN_VIEW_HELD = 8,
};

/* Another thread as a report shows it. */
typedef struct run_thread_view {
    int tid;
    bool registered; /* keel-run has seen it (its call and locks are known) */
    unsigned nheld;
    int npcs; /* 0: no backtrace (why says why) */
    const char *call;
    const void *call_ra;
    const run_lock *held[RUN_VIEW_HELD];
    const keel__lock_site *held_site[RUN_VIEW_HELD];
    void *pcs[RUN_VIEW_FRAMES];
    char name[16];
    char why[160];
} run_thread_view;

/*
 * Every thread of the process but the caller and the nskip tids of skip, at most max (guard
 * set; one caller at a time: keel-stack's conversation is not shared): their names, calls, held
 * locks and backtraces.  Their number.
 */
unsigned keel__run_threads_view(run_thread_view *out, unsigned max, const int *skip,
                                unsigned nskip);

/* ---- the heap (run_heap.c) ------------------------------------------------------------------ */

/* From the constructor: keel's program heap serves the malloc family (unless --heap=off). */
void keel__run_heap_start(void);
bool keel__run_heap_on(void);
/* fork: every lock of the heap's checks (phase 0 before, 1 parent, 2 child) */
void keel__run_heap_fork(int phase);
/*
 * Who made the call whose return address is ra: the program's pc (the first frame outside the C
 * library, the dynamic linker and keel), NULL for keel's own calls, (const void *)1 for the
 * dynamic linker's.  Known once the constructor ran (with or without the heap).
 */
const void *keel__run_origin(const void *ra);

/* ---- faults at libc calls (run_faults.c) ---------------------------------------------------- */

/*
 * A stress point of call `call` made at ra: 0 (go on), else the errno the call fails with, or
 * RUN_SHORT (a short transfer).  Only when stress options are set: the disarmed cost is the
 * load of one flag and a branch not taken.
 */
int keel__run_fault(run_call call, const void *ra);
/*
 * 1 when the program starts with a stress entry or stress counting (KEEL_OPTIONS): the points of
 * its sites are made only when reached, so libkeel's own flag (something armed) cannot say.
 */
extern int keel__run_faults_on;
#define RUN_FAULT(call, ra)                                                      \
    (KEEL_UNLIKELY(__atomic_load_n(&keel__run_faults_on, __ATOMIC_RELAXED) != 0) \
         ? keel__run_fault(call, ra)                                             \
         : 0)
/* fork: the lock of the table of sites (phase 0 before, 1 parent, 2 child) */
void keel__run_faults_fork(int phase);
/* The length of a short transfer of n bytes: half (at least 1); n itself when it cannot be short. */
size_t keel__run_short(size_t n);
/* The errno of a failure f of RUN_FAULT (a short transfer of a call that cannot: EINTR). */
static inline int run_fail(int f)
{
    return f == RUN_SHORT ? EINTR : f;
}

/* The stress point of a wait (poll, sem_wait, waitpid...) made at ra: 0, else the errno a fire
 * fails it with at once (EINTR by default: a signal interrupted it). */
static inline int run_wait_fault(run_call call, const void *ra)
{
    int f = RUN_FAULT(call, ra);
    return KEEL_UNLIKELY(f != 0) ? run_fail(f) : 0;
}

/* A failed call: errno e, -1. */
static inline int run_failed(int e)
{
    errno = e;
    return -1;
}

KEEL_EXTERN_C_END

#endif /* KEEL_RUN_H */
