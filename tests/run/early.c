/* keel-run: locks before main (a constructor holds one into main, a thread made by a constructor
 * locks in a loop) and a lock taken behind keel's back (libc's own function, as before keel is
 * ready), then unlocked through the interposer: none of it is reported (tests/test_run.c). */
#include <dlfcn.h>
#include <pthread.h>

static pthread_mutex_t held_into_main = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t loop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t unseen = PTHREAD_MUTEX_INITIALIZER;
static pthread_t early_thread;

static void *early_loop(void *arg)
{
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&loop_lock);
        pthread_mutex_unlock(&loop_lock);
    }
    return arg;
}

__attribute__((constructor)) static void early(void)
{
    pthread_mutex_lock(&held_into_main);
    pthread_create(&early_thread, NULL, early_loop, NULL);
}

int main(void)
{
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    int (*real_lock)(pthread_mutex_t *) = NULL;
    void *sym = libc != NULL ? dlsym(libc, "pthread_mutex_lock") : NULL;
    __builtin_memcpy(&real_lock, &sym, sizeof(sym));
    if (real_lock == NULL)
        return 2;
    pthread_mutex_lock(&unseen); /* known to keel from here on */
    pthread_mutex_unlock(&unseen);
    real_lock(&unseen);            /* keel never sees this lock taken */
    pthread_mutex_unlock(&unseen); /* ... but the C library says this thread holds it */
    pthread_mutex_unlock(&held_into_main);
    pthread_join(early_thread, NULL);
    return 0;
}
