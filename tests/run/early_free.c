/* keel-run: blocks a signal handler allocates and frees while keel-run starts (tests/test_run.c,
 * test_early_free_not_a_root).  A timer started before every library's constructor (the
 * executable's preinit array) ticks every 100 us while keel-run's constructor runs; its handler
 * allocates 200 bytes and frees them.  Made inside keel's code, each block is glibc's and a root
 * of the leak scan; freed before keel's heap serves the program, it must stop being one.  Then
 * main leaks a block whose memory glibc gives from the handler's last one (80 bytes: with keel's
 * header and red zone a glibc block of the same size), holding the only pointer to a second
 * block: both are leaked (2 blocks, 104 bytes). */
#define _GNU_SOURCE 1
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static volatile sig_atomic_t ticks;

static void tick(int sig)
{
    (void)sig;
    char *p = malloc(200);
    if (p != NULL)
        memset(p, 't', 200);
    free(p);
    ticks++;
}

static void start_ticking(int argc, char **argv, char **envp)
{
    (void)argc;
    (void)argv;
    (void)envp;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = tick;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    struct itimerval every = {{0, 100}, {0, 100}};
    if (sigaction(SIGALRM, &sa, NULL) != 0 || setitimer(ITIMER_REAL, &every, NULL) != 0)
        abort();
}

__attribute__((section(".preinit_array"),
               used)) static void (*const preinit)(int, char **, char **) = start_ticking;

/* The two blocks, leaked (in a frame of its own: no pointer to them is left on main's). */
__attribute__((noinline)) static int leak_two(void)
{
    char *b = malloc(80);
    char *l = malloc(24);
    if (b == NULL || l == NULL)
        return 1;
    memset(b, 0, 80);
    memset(l, 'l', 24);
    memcpy(b, &l, sizeof(l));
    return 0; // cppcheck-suppress memleak ; the planted leak
}

/* A frame over leak_two's, zeroed. */
__attribute__((noinline)) static void clear_stack(void)
{
    volatile char buf[4096];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = 0;
}

int main(void)
{
    struct itimerval off;
    memset(&off, 0, sizeof(off));
    setitimer(ITIMER_REAL, &off, NULL);
    if (leak_two() != 0)
        return 1;
    clear_stack();
    return ticks > 0 ? 0 : 2;
}
