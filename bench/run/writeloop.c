/* bench/run/writeloop.c - the cost of an interposed libc call that keel-run can fail, disarmed:
 * 1 M write(2) calls of one byte to /dev/null, natively, under keel-run (its stress point not
 * armed) and under libfiu's fiu-run (nothing enabled), alternating (docs/benchmarks.md "keel-run:
 * faults at libc calls").  The same loop of getppid(2), a call no preload interposes, is the
 * machine's noise floor of the system call itself.  A system call costs microseconds here, so
 * the interposer's own cost is measured on a call without one: 10 M malloc(64)+free pairs
 * (keel-run --heap=off: glibc's allocator behind the interposer; fiu-run's preload wraps them too).
 *   cc -O2 bench/run/writeloop.c -o /tmp/writeloop && /tmp/writeloop
 *   keel-run --locks=off --heap=off -- /tmp/writeloop;  fiu-run -x /tmp/writeloop */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CALLS 1000000L
#define PAIRS 10000000L

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(void)
{
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0)
        return 1;
    char c = 'x';
    double t0 = now_ns();
    for (long i = 0; i < CALLS; i++)
        if (write(fd, &c, 1) != 1)
            return 1;
    double t1 = now_ns();
    for (long i = 0; i < CALLS; i++)
        (void)getppid();
    double t2 = now_ns();
    for (long i = 0; i < PAIRS; i++) {
        void *volatile p = malloc(64);
        free(p);
    }
    double t3 = now_ns();
    printf("write %.2f ns  getppid %.2f ns  malloc+free %.2f ns\n", (t1 - t0) / CALLS,
           (t2 - t1) / CALLS, (t3 - t2) / PAIRS);
    return close(fd) == 0 ? 0 : 1;
}
