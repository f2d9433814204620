/* keel-run planted bug: locks of one array (one init site: one class) taken in increasing
 * addresses (accepted), then against it (reported: "address order violated"; tests/test_run.c). */
#include <pthread.h>

static pthread_mutex_t table[4];

int main(void)
{
    for (int i = 0; i < 4; i++)
        pthread_mutex_init(&table[i], NULL);
    pthread_mutex_lock(&table[1]);
    pthread_mutex_lock(&table[3]); /* increasing: fine */
    pthread_mutex_unlock(&table[3]);
    pthread_mutex_unlock(&table[1]);
    pthread_mutex_lock(&table[2]);
    pthread_mutex_lock(&table[0]); /* decreasing: reported */
    pthread_mutex_unlock(&table[0]);
    pthread_mutex_unlock(&table[2]);
    return 0;
}
