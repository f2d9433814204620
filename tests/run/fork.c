/* keel-run across fork: the child inherits the learned order and the locks held at the fork; a
 * child that only execs, and a parent whose order the children never see (tests/test_run.c).
 * The one report: the child's inversion (B then A, A -> B learned before the fork). */
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_c = PTHREAD_MUTEX_INITIALIZER;

static void *busy(void *arg)
{
    for (int i = 0; i < 2000; i++) { /* locks taken by another thread while the parent forks */
        pthread_mutex_lock(&lock_c);
        pthread_mutex_unlock(&lock_c);
    }
    return arg;
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, busy, NULL);
    pthread_mutex_lock(&lock_a);
    pthread_mutex_lock(&lock_b);
    pthread_mutex_unlock(&lock_b);
    pthread_mutex_lock(&lock_c); /* held across the fork: still held in the child */
    pid_t child = fork();
    if (child == 0) {
        pthread_mutex_unlock(&lock_c); /* the child's copy: held by it */
        pthread_mutex_unlock(&lock_a);
        pthread_mutex_lock(&lock_b);
        pthread_mutex_lock(&lock_a); /* the inversion, in the child */
        pthread_mutex_unlock(&lock_a);
        pthread_mutex_unlock(&lock_b);
        _exit(7);
    }
    pthread_mutex_unlock(&lock_c);
    pthread_mutex_unlock(&lock_a);
    pid_t execer = fork();
    if (execer == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    int st1 = 0, st2 = 0;
    waitpid(child, &st1, 0);
    waitpid(execer, &st2, 0);
    pthread_join(t, NULL);
    return WIFEXITED(st1) && WEXITSTATUS(st1) == 7 && WIFEXITED(st2) && WEXITSTATUS(st2) == 0 ? 0
                                                                                              : 1;
}
