/* keel-run planted bug: spinlock deadlocks (tests/test_run.c).  Argument:
 *   two    two threads, each holding one spinlock and spinning for the other's;
 *   self   a thread locks a spinlock it holds.
 * The program spins forever: the test stops it once keel-run has reported. */
#include <pthread.h>
#include <string.h>

static pthread_spinlock_t spin[2];
static pthread_barrier_t all_hold;

static void *spin_cycle(void *arg)
{
    int i = *(const int *)arg;
    pthread_spin_lock(&spin[i]);
    pthread_barrier_wait(&all_hold);
    pthread_spin_lock(&spin[1 - i]); /* both threads spin here forever */
    pthread_spin_unlock(&spin[1 - i]);
    pthread_spin_unlock(&spin[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_spin_init(&spin[0], PTHREAD_PROCESS_PRIVATE); /* an init site each: two classes */
    pthread_spin_init(&spin[1], PTHREAD_PROCESS_PRIVATE);
    if (argc > 1 && strcmp(argv[1], "self") == 0) {
        pthread_spin_lock(&spin[0]);
        pthread_spin_lock(&spin[0]); /* spins here forever */
        return 0;
    }
    pthread_barrier_init(&all_hold, NULL, 2);
    static int index[2] = {0, 1};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, spin_cycle, &index[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return 0;
}
