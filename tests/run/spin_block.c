/* keel-run planted bug: sleeping, taking a mutex and writing to a pipe while holding a spinlock
 * (tests/test_run.c). */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_spinlock_t spin;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;

int main(void)
{
    pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
    pthread_spin_lock(&spin);
    usleep(1000); /* blocking under a spinlock */
    pthread_spin_unlock(&spin);
    pthread_spin_lock(&spin);
    pthread_mutex_lock(&mutex); /* blocking under a spinlock */
    pthread_mutex_unlock(&mutex);
    pthread_spin_unlock(&spin);
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    FILE *file = tmpfile();
    if (file == NULL)
        return 1;
    pthread_spin_lock(&spin);
    if (write(fds[1], "x", 1) != 1)       /* a pipe: a blocking descriptor, under a spinlock */
        return 1;                         // cppcheck-suppress resourceLeak ; the program ends
    if (write(fileno(file), "x", 1) != 1) /* a regular file: never blocks */
        return 1;
    pthread_spin_unlock(&spin);
    (void)fcntl(fds[0], F_SETFL, O_NONBLOCK);
    char c;
    pthread_spin_lock(&spin);
    if (read(fds[0], &c, 1) != 1) /* non-blocking: fine */
        return 1;
    pthread_spin_unlock(&spin);
    usleep(1000); /* fine: no spinlock held */
    pthread_spin_destroy(&spin);
    return 0;
}
