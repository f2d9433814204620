/* keel-run across fork: a thread keeps keel busy (a report, each time it sleeps under a
 * spinlock) while the main thread forks children that each show an inversion against the order
 * learned before the fork: every child must be able to report (keel's locks are never left held
 * in a child), a child that only execs runs, and the parent's own state goes on
 * (tests/test_run.c). */
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILDREN 10

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_spinlock_t spin;
static int stop;

static void *busy(void *arg)
{
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        pthread_spin_lock(&spin);
        usleep(0); /* reported: keel's report channel is busy most of the time */
        pthread_spin_unlock(&spin);
    }
    return arg;
}

int main(void)
{
    pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
    pthread_mutex_lock(&lock_a);
    pthread_mutex_lock(&lock_b);
    pthread_mutex_unlock(&lock_b);
    pthread_t t;
    pthread_create(&t, NULL, busy, NULL);
    usleep(20000);
    int status = 0;
    for (int i = 0; i < CHILDREN; i++) {
        pid_t child = fork(); /* lock_a held across it: still held in the child */
        if (child == 0) {
            pthread_mutex_unlock(&lock_a); /* the child's copy, held by it */
            pthread_mutex_lock(&lock_b);
            pthread_mutex_lock(&lock_a); /* the inversion, in the child */
            pthread_mutex_unlock(&lock_a);
            pthread_mutex_unlock(&lock_b);
            _exit(7);
        }
        int st = 0;
        waitpid(child, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 7)
            status = 1;
    }
    pthread_mutex_unlock(&lock_a);
    pid_t execer = fork();
    if (execer == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(execer, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        status = 2;
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    return status;
}
