/*
 * run/run_threads.c - every thread of the program, for the report of a real deadlock
 * (docs/keel-run.md, "Real deadlocks"): not only the threads waiting for a lock, but also
 * `main` in pthread_join, a thread in read, one that is running.
 *
 * A thread keel-run has seen (a lock call, a blocking call) has a slot in a small table with
 * the addresses of two of its thread-local variables: its lock state (keel__lock_tls: the locks
 * it holds and where it took them) and the interposed blocking call it is in (keel__run_in,
 * set and cleared around each such call: two stores).  The slot is emptied by a key's
 * destructor when the thread exits, before its lock state is freed (the key is made in the
 * constructor, before lockdep's: glibc runs the destructors in the keys' order).
 *
 * The threads of the process are those of /proc/self/task.  Another thread's backtrace is taken
 * by keel-stack with ptrace (libkeel's watchdog.stacks=ptrace: no signal, so the thread's
 * system call is not interrupted), and its locks and call are read while it is stopped; where
 * ptrace cannot be used, they are read as they are, and the report says why there is no
 * backtrace.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "run.h"

enum { THREADS = 256 };

typedef struct run_thread {
    int used; /* under threads_lock */
    int tid;
    keel__lock_thread *const *lock_tls; /* the thread's keel__lock_tls */
    const run_in *in;                   /* the thread's keel__run_in */
} run_thread;

static run_thread threads[THREADS];
static int threads_lock; /* run_spin: only around the table's stores */
static pthread_key_t exit_key;
static int key_made;

__thread run_in keel__run_in __attribute__((tls_model("initial-exec")));
__thread int keel__run_slot __attribute__((tls_model("initial-exec")));

static void thread_gone(void *arg)
{
    long slot = (const run_thread *)arg - threads; /* (the key's value: the thread's slot) */
    if (slot < 0 || slot >= THREADS)
        return;
    run_spin_acquire(&threads_lock);
    threads[slot].used = 0;
    run_spin_release(&threads_lock);
    keel__run_slot = 0;
}

void keel__run_threads_start(void)
{
    keel__run_inside++;
    key_made = pthread_key_create(&exit_key, thread_gone) == 0;
    keel__run_inside--;
}

void keel__run_thread_register(void)
{
    if (!key_made || keel__run_slot != 0)
        return;
    keel__run_inside++;
    int tid = (int)keel__thread_id();
    int slot = -1;
    run_spin_acquire(&threads_lock);
    for (int i = 0; i < THREADS && slot < 0; i++)
        if (!threads[i].used) {
            threads[i].used = 1;
            threads[i].tid = tid;
            threads[i].lock_tls = &keel__lock_tls;
            threads[i].in = &keel__run_in;
            slot = i;
        }
    run_spin_release(&threads_lock);
    keel__run_slot = slot + 1; /* (-1 + 1: the table is full; tried again next time) */
    if (slot >= 0 && pthread_setspecific(exit_key, &threads[slot]) != 0) {
        run_spin_acquire(&threads_lock); /* no destructor: not kept (it could outlive it) */
        threads[slot].used = 0;
        run_spin_release(&threads_lock);
        keel__run_slot = 0;
    }
    keel__run_inside--;
}

void keel__run_threads_fork(int phase)
{
    if (phase == 0) {
        run_spin_acquire(&threads_lock);
        return;
    }
    if (phase == 2) /* the child: its only thread is the caller */
        for (int i = 0; i < THREADS; i++)
            threads[i].used = threads[i].used && i == keel__run_slot - 1;
    run_spin_release(&threads_lock);
}

unsigned keel__run_threads_in(const char *call)
{
    unsigned n = 0;
    run_spin_acquire(&threads_lock);
    for (int i = 0; i < THREADS; i++) {
        const char *in =
            threads[i].used ? __atomic_load_n(&threads[i].in->call, __ATOMIC_ACQUIRE) : NULL;
        n += in != NULL && strcmp(in, call) == 0;
    }
    run_spin_release(&threads_lock);
    return n;
}

/* ---- another thread's view ---------------------------------------------------------------- */

/* The text of a small /proc file, NUL-terminated (empty when it cannot be read): its length. */
static ssize_t read_proc(const char *path, char *buf, size_t size)
{
    int fd = RUN_REAL(open)(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? RUN_REAL(read)(fd, buf, size - 1) : -1;
    if (fd >= 0)
        (void)RUN_REAL(close)(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* The thread's name (/proc/self/task/TID/comm), else "tid N". */
static void name_of(int tid, char *out, size_t size)
{
    char path[64];
    (void)snprintf(path, sizeof(path), "/proc/self/task/%d/comm", tid);
    ssize_t n = read_proc(path, out, size);
    if (n > 0 && out[n - 1] == '\n')
        n--;
    if (n <= 0)
        (void)snprintf(out, size, "tid %d", tid);
    else
        out[n] = '\0';
}

/* What a stopped (or unregistered) thread's slot says: its call and its held locks. */
typedef struct read_args {
    const run_thread *slot; /* a copy of the slot, or NULL */
    run_thread_view *v;
} read_args;

/* Runs while the thread is stopped (keel__stack_ptrace): no allocation, no lock. */
static void read_state(void *arg)
{
    const read_args *a = (const read_args *)arg;
    run_thread_view *v = a->v;
    if (a->slot == NULL)
        return;
    v->call = __atomic_load_n(&a->slot->in->call, __ATOMIC_ACQUIRE);
    v->call_ra = v->call != NULL ? a->slot->in->ra : NULL;
    const keel__lock_thread *t = __atomic_load_n(a->slot->lock_tls, __ATOMIC_ACQUIRE);
    v->registered = true;
    v->nheld = 0;
    unsigned n = t != NULL ? __atomic_load_n(&t->n, __ATOMIC_RELAXED) : 0;
    for (unsigned i = 0; i < n && i < KEEL_LOCK_MAX_HELD && v->nheld < RUN_VIEW_HELD; i++) {
        if (t->h[i].mode.waiting)
            continue;
        v->held[v->nheld] = (const run_lock *)t->h[i].lock;
        v->held_site[v->nheld++] = t->h[i].site;
    }
}

/* The numeric entries of the directory `dir` (/proc/self/task: the tids), at most max. */
static unsigned list_ids(const char *dir, int *ids, unsigned max)
{
    int fd = RUN_REAL(open)(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    unsigned n = 0;
    char buf[4096] __attribute__((aligned(8)));
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (got <= 0)
            break;
        for (long at = 0; at < got;) {
            unsigned short reclen;
            memcpy(&reclen, buf + at + 16, sizeof(reclen)); /* struct linux_dirent64 */
            const char *name = buf + at + 19;
            if (name[0] >= '0' && name[0] <= '9' && n < max)
                ids[n++] = (int)strtol(name, NULL, 10);
            at += reclen;
        }
    }
    (void)RUN_REAL(close)(fd);
    return n;
}

static unsigned list_tids(int *tids, unsigned max)
{
    return list_ids("/proc/self/task", tids, max);
}

/* ---- is something running?  (a thread or a process that runs can still wake the program) ---- */

/* The state letter of a /proc stat file (R running or runnable, S, D...) and its CPU time
 * (utime + stime), '?' when it cannot be read. */
static char stat_of(const char *path, unsigned long long *cpu)
{
    char buf[512];
    *cpu = 0;
    if (read_proc(path, buf, sizeof(buf)) <= 0)
        return '?';
    const char *p = strrchr(buf, ')'); /* (the command may hold spaces and parentheses) */
    if (p == NULL || p[1] != ' ' || p[2] == '\0')
        return '?';
    char state = p[2];
    for (int field = 3; p != NULL && field < 14; field++) /* to field 14, utime */
        p = strchr(p + 1, ' ');
    if (p != NULL) {
        char *end = NULL;
        unsigned long long utime = strtoull(p + 1, &end, 10);
        *cpu = utime + strtoull(end, NULL, 10);
    }
    return state;
}

/* Is the thread tid of the process running or runnable (state R)? */
static bool thread_runs(int tid)
{
    char path[64];
    unsigned long long cpu;
    (void)snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    return stat_of(path, &cpu) == 'R';
}

/* The CPU time in ns of /proc/PID/schedstat's first field (finer than stat's ticks), when it
 * can be read; else *cpu is left as it is. */
static void cpu_ns(const char *path, unsigned long long *cpu)
{
    char buf[128];
    if (read_proc(path, buf, sizeof(buf)) <= 0)
        return;
    char *end = NULL;
    unsigned long long ns = strtoull(buf, &end, 10);
    if (end != buf)
        *cpu = ns;
}

enum { DESCENDANTS = 64 };

/*
 * Does a descendant of the process run (a child, a child's child...: up to 64, listed by each
 * thread's /proc/PID/task/TID/children): a thread of it in state R, or D (its I/O, a page read
 * in: it goes on)?  Their CPU time (process-wide ticks, and the main thread's ns where
 * /proc/PID/schedstat says it) is hashed into *h; *children is the number of the process's own
 * children seen, *zombies of them dead and not yet waited for: a waitpid for a child that works
 * is no hang, nor one for a child waiting for a grandchild that works, nor one for a child that
 * has ended (a zombie, or no longer listed: its last threads exiting).
 */
static bool descendants_run(unsigned long long *h, unsigned *children, unsigned *zombies)
{
    int pids[DESCENDANTS];
    unsigned n = 0;
    pids[n++] = getpid();
    *children = *zombies = 0;
    for (unsigned next = 0; next < n; next++) {
        char path[96];
        if (next > 0) {
            unsigned long long cpu, ns = 0;
            (void)snprintf(path, sizeof(path), "/proc/%d/stat", pids[next]);
            *zombies += stat_of(path, &cpu) == 'Z' && next <= *children;
            (void)snprintf(path, sizeof(path), "/proc/%d/schedstat", pids[next]);
            cpu_ns(path, &ns);
            *h = (*h ^ ((unsigned long long)(unsigned)pids[next] << 32 ^ cpu ^ ns)) *
                 0x100000001b3ull;
        }
        int tids[RUN_VIEW_THREADS];
        (void)snprintf(path, sizeof(path), "/proc/%d/task", pids[next]);
        unsigned ntids = list_ids(path, tids, RUN_VIEW_THREADS);
        for (unsigned i = 0; i < ntids; i++) {
            unsigned long long cpu;
            (void)snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pids[next], tids[i]);
            char state = 'S'; /* (the program's own threads: apart) */
            if (next > 0)
                state = stat_of(path, &cpu);
            if (state == 'R' || state == 'D')
                return true;
            char list[512];
            (void)snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pids[next], tids[i]);
            (void)read_proc(path, list, sizeof(list));
            for (char *p = list, *end = NULL; n < DESCENDANTS; p = end) {
                long pid = strtol(p, &end, 10);
                if (end == p)
                    break;
                pids[n++] = (int)pid;
                *children += next == 0;
            }
        }
    }
    return false;
}

enum { TIMER_FDS = 1024 };

/*
 * Will a timer of the program fire: an alarm or a setitimer(ITIMER_REAL) timer pending, a POSIX
 * timer of timer_create armed that notifies (a signal, or a thread: not SIGEV_NONE; the timers
 * of /proc/self/timers, each asked with the system call timer_gettime), or an armed timerfd
 * (the descriptors of /proc/self/fd that are timerfds, each asked with timerfd_gettime; the
 * first 1,024 descriptors)?  Its signal or its descriptor's event will come: no hang.
 */
static bool timer_pending(void)
{
    struct itimerval timer;
    if (getitimer(ITIMER_REAL, &timer) == 0 &&
        (timer.it_value.tv_sec != 0 || timer.it_value.tv_usec != 0))
        return true;
    char list[8192];
    (void)read_proc("/proc/self/timers", list, sizeof(list));
    for (const char *p = strstr(list, "ID: "); p != NULL; p = strstr(p + 1, "ID: ")) {
        long id = strtol(p + 4, NULL, 10);
        const char *notify = strstr(p, "notify: ");
        const char *next = strstr(p + 1, "ID: ");
        if (notify == NULL || (next != NULL && notify > next) ||
            strncmp(notify + 8, "none", 4) == 0)
            continue;
        struct itimerspec its;
        if (syscall(SYS_timer_gettime, (int)id, &its) == 0 &&
            (its.it_value.tv_sec != 0 || its.it_value.tv_nsec != 0))
            return true;
    }
    int fds[TIMER_FDS];
    unsigned n = list_ids("/proc/self/fd", fds, TIMER_FDS);
    for (unsigned i = 0; i < n; i++) {
        char path[64], target[64];
        (void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[i]);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        struct itimerspec its;
        if (strcmp(target, "anon_inode:[timerfd]") == 0 && timerfd_gettime(fds[i], &its) == 0 &&
            (its.it_value.tv_sec != 0 || its.it_value.tv_nsec != 0))
            return true;
    }
    return false;
}

bool keel__run_threads_blocked(const int *waiting, unsigned nwaiting, unsigned long long *sig,
                               unsigned *nthreads)
{
    int tids[THREADS];
    bool in_call[THREADS] = {false};
    bool waits_child = false; /* a thread in waitpid, wait, waitid or wait4 */
    unsigned ntids = list_tids(tids, THREADS);
    int me = (int)keel__thread_id();
    unsigned long long h = *sig;
    unsigned n = 0;
    bool blocked = true;
    for (unsigned i = 0; i < ntids && blocked; i++) {
        if (tids[i] == me)
            continue;
        n++;
        bool published = false;
        for (unsigned j = 0; j < nwaiting && !published; j++)
            published = waiting[j] == tids[i];
        const char *call = NULL;
        int untimed = 0;
        unsigned ended = 0;
        run_spin_acquire(&threads_lock); /* (an exiting thread's slot goes before its memory) */
        for (int j = 0; j < THREADS; j++)
            if (threads[j].used && threads[j].tid == tids[i]) {
                call = __atomic_load_n(&threads[j].in->call, __ATOMIC_ACQUIRE);
                untimed = __atomic_load_n(&threads[j].in->untimed, __ATOMIC_RELAXED);
                ended = __atomic_load_n(&threads[j].in->ended, __ATOMIC_RELAXED);
                break;
            }
        run_spin_release(&threads_lock);
        blocked = published || (call != NULL && untimed != 0);
        in_call[i] = !published;
        waits_child |= !published && call != NULL && strncmp(call, "wait", 4) == 0;
        h = (h ^ ((unsigned long long)(unsigned)tids[i] << 32 | ended)) * 0x100000001b3ull;
    }
    /* every thread blocked by what keel-run saw: none in a call may run (a signal handler, a
     * thread woken and not yet back from its call; a published wait wakes at each slice: not
     * asked), nor a child of the program (a waitpid for it ends) */
    for (unsigned i = 0; i < ntids && blocked && n > 0; i++)
        blocked = !in_call[i] || !thread_runs(tids[i]);
    unsigned children = 0, zombies = 0;
    if (blocked && n > 0 &&
        (descendants_run(&h, &children, &zombies) ||
         (waits_child && (children == 0 || zombies > 0)) || timer_pending()))
        blocked = false; /* (a wait for a child when none is left, or one has ended, returns; a
                          * timer armed will send its signal or wake its descriptor) */
    *sig = h;
    *nthreads = n;
    return blocked && n > 0;
}

unsigned keel__run_threads_view(run_thread_view *out, unsigned max, const int *skip, unsigned nskip)
{
    int tids[RUN_VIEW_THREADS * 2];
    unsigned ntids = list_tids(tids, RUN_VIEW_THREADS * 2);
    int me = (int)keel__thread_id();
    unsigned n = 0;
    for (unsigned i = 0; i < ntids && n < max; i++) {
        bool skipped = tids[i] == me;
        for (unsigned j = 0; j < nskip && !skipped; j++)
            skipped = skip[j] == tids[i];
        if (skipped)
            continue;
        run_thread_view *v = &out[n++];
        memset(v, 0, sizeof(*v));
        v->tid = tids[i];
        name_of(v->tid, v->name, sizeof(v->name));
        run_thread slot;
        bool known = false;
        run_spin_acquire(&threads_lock);
        for (int j = 0; j < THREADS && !known; j++)
            if (threads[j].used && threads[j].tid == v->tid) {
                slot = threads[j];
                known = true;
            }
        run_spin_release(&threads_lock);
        read_args a = {known ? &slot : NULL, v};
        unsigned long long stopped_us = 0;
        keel_status s = keel__stack_ptrace(v->tid, v->pcs, RUN_VIEW_FRAMES, &v->npcs, read_state,
                                           &a, &stopped_us);
        if (keel_ok(s))
            continue;
        (void)snprintf(v->why, sizeof(v->why), "%s", keel_status_message(s));
        keel_status_free(s);
        v->npcs = 0;
        if (known) { /* read as it is, the slot kept (its lock state is not freed meanwhile) */
            run_spin_acquire(&threads_lock);
            bool live = false;
            for (int j = 0; j < THREADS && !live; j++)
                live = threads[j].used && threads[j].tid == v->tid &&
                       threads[j].lock_tls == slot.lock_tls;
            if (live)
                read_state(&a);
            run_spin_release(&threads_lock);
        }
    }
    return n;
}
