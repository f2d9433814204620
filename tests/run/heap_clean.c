/* keel-run: a correct program using the whole malloc family - before main, through dlsym, in
 * threads that free each other's blocks, across fork with and without exec, memory from glibc's
 * own allocator freed with free - with no report, and a leak left behind by _exit that is not
 * reported (no exit handlers run) (tests/test_run.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);

static char *early;

__attribute__((constructor)) static void before_main(void)
{
    early = malloc(64);
    strcpy(early, "made in a constructor");
}

#define NTHREADS 4
#define ROUNDS   2000
static void *handoff[NTHREADS][64];
static pthread_barrier_t barrier;

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int r = 0; r < ROUNDS / 64; r++) {
        for (int i = 0; i < 64; i++)
            handoff[me][i] = malloc((size_t)(16 + (r * 7 + i) % 300));
        pthread_barrier_wait(&barrier);
        for (int i = 0; i < 64; i++) /* the neighbour's blocks */
            free(handoff[(me + 1) % NTHREADS][i]);
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

static int check(int ok, const char *what)
{
    if (!ok)
        (void)fprintf(stderr, "heap_clean: %s failed\n", what);
    return ok ? 0 : 1;
}

int main(void)
{
    int bad = check(strcmp(early, "made in a constructor") == 0, "constructor");
    free(early);
    void *sym = dlsym(RTLD_DEFAULT, "heap_clean_no_such_symbol"); /* dlerror's allocation */
    bad += check(sym == NULL && dlerror() != NULL, "dlsym");
    char *p = calloc(10, 10);
    bad += check(p != NULL && p[99] == 0, "calloc");
    p = realloc(p, 1000); // cppcheck-suppress memleakOnRealloc ; a failure ends it
    bad += check(p != NULL && p[50] == 0 && malloc_usable_size(p) >= 1000, "realloc");
    p = reallocarray(p, 10, 20); // cppcheck-suppress memleakOnRealloc ; as realloc
    bad += check(p != NULL, "reallocarray");
    free(p);
    void *a = NULL;
    bad += check(posix_memalign(&a, 256, 100) == 0 && (uintptr_t)a % 256 == 0, "posix_memalign");
    free(a);
    a = aligned_alloc(64, 128);
    bad += check(a != NULL && (uintptr_t)a % 64 == 0, "aligned_alloc");
    free(a);
    a = memalign(4096, 10);
    bad += check(a != NULL && (uintptr_t)a % 4096 == 0, "memalign");
    free(a);
    a = valloc(10);
    bad += check(a != NULL && (uintptr_t)a % 4096 == 0, "valloc");
    free(a);
    /* through a volatile pointer: an optimiser may assume a malloc whose block is unused succeeds */
    void *(*volatile huge_malloc)(size_t) = malloc;
    void *huge = huge_malloc(SIZE_MAX / 2);
    bad += check(huge == NULL, "huge malloc");
    free(huge);
    free(__libc_malloc(100)); /* glibc's own block, freed with the interposed free */
    char *q = realloc(__libc_malloc(10), 20);
    free(q);
    FILE *f = fopen("/proc/self/status", "r");
    char *line = NULL;
    size_t cap = 0;
    while (f != NULL && getline(&line, &cap, f) > 0) {
    }
    free(line);
    if (f != NULL)
        (void)fclose(f);
    pthread_t t[NTHREADS];
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < 3; i++) { /* exec; _exit with a leak (no exit handler runs); exit */
        pid_t pid = fork();
        if (pid == 0) {
            if (i == 0)
                execl("/bin/true", "true", (char *)NULL);
            char *c = malloc(10); // cppcheck-suppress unusedAllocatedMemory ; it is the point
            free(c);
            if (i == 2)
                exit(0); /* the parent's blocks, all still reachable in the child */
            _exit(malloc(77) != NULL ? 0 : 1); // cppcheck-suppress leakReturnValNotUsed ; planted
        }
        int st = 0;
        bad += check(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork");
    }
    return bad;
}
