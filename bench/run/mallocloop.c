/* bench/run/mallocloop.c - the cost of a malloc+free pair, natively and under keel-run's heap
 * (docs/benchmarks.md "keel-run"): 4 M pairs of sizes 16..1039 bytes, four blocks live at once.
 *   cc -O2 bench/run/mallocloop.c -o /tmp/mallocloop && /tmp/mallocloop && keel-run -- /tmp/mallocloop */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define PAIRS 4000000L

void *volatile keep[4];

int main(void)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < PAIRS; i++) {
        free(keep[i & 3]);
        keep[i & 3] = malloc(16 + (size_t)(i * 7 % 1024));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / PAIRS;
    printf("%.1f ns per malloc+free\n", ns);
    for (int k = 0; k < 4; k++)
        free(keep[k]);
    return 0;
}
