/* keel-run: locks whose glibc state keel-run reads, none misused (tests/test_run.c): a
 * priority-protected mutex (its ceiling lives in its lock word), robust mutexes whose owner died
 * (the kernel's FUTEX_OWNER_DIED bit in an unlocked word; the next lock returns EOWNERDEAD and
 * holds it), a rwlock of kind PTHREAD_RWLOCK_PREFER_WRITER_NP read-locked twice by one thread
 * (glibc lets the reader in, as for the default kind).  With the argument `nonrecursive`, the
 * same double read lock of a PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP rwlock: a real risk. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* pthread_rwlockattr_setkind_np */
#endif
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int fails;

static void expect(int got, int want)
{
    fails += got != want;
}

static void protected_mutex(void)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_PROTECT);
    pthread_mutex_t m;
    expect(pthread_mutex_init(&m, &a), 0);
    expect(pthread_mutex_destroy(&m), 0); /* never locked */
    pthread_mutexattr_destroy(&a);
}

/* Two process-shared robust mutexes, each locked by a child that exits holding it. */
static void robust_mutexes(void)
{
    pthread_mutex_t *r =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
        fails++;
        return;
    }
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    for (int i = 0; i < 2; i++) {
        expect(pthread_mutex_init(&r[i], &a), 0);
        pid_t pid = fork();
        if (pid == 0) {
            pthread_mutex_lock(&r[i]);
            _exit(0); /* holding it: the kernel marks its owner dead */
        }
        waitpid(pid, NULL, 0);
    }
    pthread_mutexattr_destroy(&a);
    expect(pthread_mutex_destroy(&r[0]), 0);       /* not locked: its owner died */
    expect(pthread_mutex_lock(&r[1]), EOWNERDEAD); /* held by this thread now */
    expect(pthread_mutex_unlock(&r[1]), 0);        /* not made consistent: not recoverable */
    expect(pthread_mutex_lock(&r[1]), ENOTRECOVERABLE);
    expect(pthread_mutex_destroy(&r[1]), 0);
    munmap(r, 4096);
}

static void read_twice(int kind)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, kind);
    pthread_rwlock_t rw;
    expect(pthread_rwlock_init(&rw, &a), 0);
    expect(pthread_rwlock_rdlock(&rw), 0);
    expect(pthread_rwlock_rdlock(&rw), 0);
    expect(pthread_rwlock_unlock(&rw), 0);
    expect(pthread_rwlock_unlock(&rw), 0);
    expect(pthread_rwlock_destroy(&rw), 0);
    pthread_rwlockattr_destroy(&a);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "nonrecursive") == 0) {
        read_twice(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        return fails;
    }
    protected_mutex();
    robust_mutexes();
    read_twice(PTHREAD_RWLOCK_PREFER_WRITER_NP);
    return fails;
}
