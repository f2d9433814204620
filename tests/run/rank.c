/* keel-run planted bug: locks taken against the ranks given with keel-run --rank: a cache lock
 * ranked below a store lock, taken while holding the store lock.  It is the only order the
 * program takes (no cycle forms), so only the ranks find it (tests/test_run.c). */
#include <pthread.h>

static pthread_mutex_t cache, store;

int main(void)
{
    pthread_mutex_init(&cache, NULL); /* class 'rank.c:10' */
    pthread_mutex_init(&store, NULL); /* class 'rank.c:11' */
    pthread_mutex_lock(&store);
    pthread_mutex_lock(&cache); /* below the rank of store, held */
    pthread_mutex_unlock(&cache);
    pthread_mutex_unlock(&store);
    return 0;
}
