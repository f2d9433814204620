/*
 * keel-stack - the watchdog's helper: a thread's stack, taken the way a
 * debugger takes it, so that the program never sees it (docs/watchdog.md).
 *
 *   keel-stack PID        (started by libkeel's watchdog thread)
 *
 * stdin and stdout are one socket to the watchdog.  The helper serves one
 * request a line, `TID MAXFRAMES`, until the socket closes (the program
 * ended, or the watchdog gave up on it).  For each it first reads the
 * process's modules again (the thread runs on meanwhile), then stops TID with
 * PTRACE_SEIZE + PTRACE_INTERRUPT, which sends no signal: a stopped nanosleep,
 * read or poll is restarted by the kernel when the thread goes on, with no
 * EINTR.  It unwinds the stopped thread with libdw and writes
 *
 *   pc 0x...        one line per frame, innermost first
 *   stopped US      the thread is still stopped, since US microseconds
 *
 * then waits for one byte (or end of file, or one second) while the watchdog
 * reads the thread's lock state, and lets the thread go with PTRACE_DETACH.
 * A request that fails is answered with one line `error <why>`.  It is a
 * separate program because a process cannot ptrace its own threads.
 */
#define _GNU_SOURCE 1
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { RELEASE_WAIT_MS = 1000, GIVE_UP_S = 3 };

static char *debuginfo_path;
static const Dwfl_Callbacks callbacks = {dwfl_linux_proc_find_elf, dwfl_standard_find_debuginfo,
                                         NULL, &debuginfo_path};

typedef struct walk {
    int nframes;
    int max;
} walk;

static int on_frame(Dwfl_Frame *frame, void *arg)
{
    walk *w = (walk *)arg;
    Dwarf_Addr pc = 0;
    bool activation = false;
    if (!dwfl_frame_pc(frame, &pc, &activation))
        return DWARF_CB_ABORT;
    /* a caller's pc is its return address, as glibc's backtrace() gives it */
    (void)printf("pc 0x%llx\n", (unsigned long long)pc);
    return ++w->nframes < w->max ? DWARF_CB_OK : DWARF_CB_ABORT;
}

static unsigned long long now_us(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000ull;
}

/* Load a module's ELF file and call frame information now, while the thread still runs. */
static int preload_module(Dwfl_Module *mod, void **user, const char *name, Dwarf_Addr start,
                          void *arg)
{
    (void)user;
    (void)name;
    (void)start;
    (void)arg;
    Dwarf_Addr bias;
    (void)dwfl_module_eh_cfi(mod, &bias);
    return DWARF_CB_OK;
}

static int fail(const char *what, int err)
{
    (void)printf("error %s%s%s\n", what, err != 0 ? ": " : "", err != 0 ? strerror(err) : "");
    (void)fflush(stdout);
    return 1;
}

/* stdin, read without stdio: requests and the release byte come on the same stream. */
static char in_buf[256];
static size_t in_len, in_pos;

/* The next byte of stdin within ms (-1: forever); -1 at end of file or timeout. */
static int next_byte(int ms)
{
    if (in_pos < in_len)
        return (unsigned char)in_buf[in_pos++];
    struct pollfd p = {0, POLLIN, 0};
    int rc;
    do
        rc = poll(&p, 1, ms);
    while (rc < 0 && errno == EINTR);
    if (rc <= 0)
        return -1;
    ssize_t n;
    do
        n = read(0, in_buf, sizeof(in_buf));
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    in_len = (size_t)n;
    in_pos = 1;
    return (unsigned char)in_buf[0];
}

/* The next request line; false at end of file.  A release byte left over is skipped. */
static bool next_request(char *line, size_t size)
{
    size_t n = 0;
    for (;;) {
        int c = next_byte(-1);
        if (c < 0)
            return false;
        if (c == '\n')
            break;
        if ((c == 'r' && n == 0) || n + 1 >= size)
            continue;
        line[n++] = (char)c;
    }
    line[n] = '\0';
    return true;
}

/* Wait for TID's stop; the signal to hand back on detach (a signal-delivery-stop), else 0. */
static int wait_stop(pid_t tid, bool *stopped)
{
    int status = 0;
    *stopped = false;
    for (;;) {
        pid_t rc = waitpid(tid, &status, __WALL);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc != tid || !WIFSTOPPED(status))
            return 0; /* gone (exited or killed) */
        *stopped = true;
        if ((status >> 16) == PTRACE_EVENT_STOP)
            return 0;            /* the interrupt (or a group stop) */
        return WSTOPSIG(status); /* a signal on its way to the thread: deliver it after */
    }
}

/* Read the process's modules (again: it may have loaded more) before anything is stopped. */
static bool report_modules(Dwfl *dwfl, pid_t pid, bool *attached)
{
    dwfl_report_begin(dwfl);
    int rc = dwfl_linux_proc_report(dwfl, pid);
    if (dwfl_report_end(dwfl, NULL, NULL) != 0 || rc != 0)
        return false;
    if (!*attached) {
        if (dwfl_linux_proc_attach(dwfl, pid, true) != 0)
            return false;
        *attached = true;
    }
    (void)dwfl_getmodules(dwfl, preload_module, NULL, 0);
    return true;
}

/* One request: stop tid, write its frames, wait for the release, let it go. */
/* Let the thread go, with the signal that stopped it when it was not ours (0: none). */
static void detach(pid_t tid, int sig)
{
    uintptr_t data = (uintptr_t)sig; /* ptrace takes the signal in its data argument */
    void *arg = NULL;
    memcpy(&arg, &data, sizeof(arg)); /* a pointer and uintptr_t: one size on Linux */
    (void)ptrace(PTRACE_DETACH, tid, NULL, arg);
}

static void serve(Dwfl *dwfl, pid_t tid, int max)
{
    unsigned long long seized = now_us();
    if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0) {
        (void)fail("ptrace(PTRACE_SEIZE)", errno);
        return;
    }
    if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) != 0) {
        int err = errno;
        (void)ptrace(PTRACE_DETACH, tid, NULL, NULL);
        (void)fail("ptrace(PTRACE_INTERRUPT)", err);
        return;
    }
    bool stopped = false;
    int sig = wait_stop(tid, &stopped);
    if (!stopped) {
        (void)fail("the thread ended", 0);
        return;
    }
    walk w = {0, max};
    (void)dwfl_getthread_frames(dwfl, tid, on_frame, &w);
    if (w.nframes == 0) {
        detach(tid, sig);
        (void)fail(dwfl_errmsg(-1), 0);
        return;
    }
    (void)printf("stopped %llu\n", now_us() - seized);
    (void)fflush(stdout);
    (void)next_byte(RELEASE_WAIT_MS);
    detach(tid, sig);
}

/* A positive decimal number at the start of `s`, ended by its end or a blank; *rest: what follows. */
static bool parse_pos(const char *s, long *out, const char **rest)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || v <= 0 || (*end != '\0' && *end != ' ' && *end != '\n'))
        return false;
    *out = v;
    if (rest != NULL)
        *rest = end;
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return fail("usage: keel-stack PID", 0);
    long pid_l = 0;
    if (!parse_pos(argv[1], &pid_l, NULL) || pid_l > INT_MAX)
        return fail("bad arguments", 0);
    pid_t pid = (pid_t)pid_l;
    /* started with every signal blocked (and maybe SIGALRM ignored): undo both */
    sigset_t none;
    (void)sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    (void)signal(SIGALRM, SIG_DFL);
    Dwfl *dwfl = dwfl_begin(&callbacks);
    if (dwfl == NULL)
        return fail("dwfl_begin failed", 0);
    bool attached = false;
    char line[64];
    while (next_request(line, sizeof(line))) {
        long tid = 0, max_l = 0;
        const char *rest = NULL;
        if (!parse_pos(line, &tid, &rest) || *rest != ' ' || !parse_pos(rest + 1, &max_l, NULL) ||
            tid > INT_MAX || max_l > INT_MAX) {
            (void)fail("bad request", 0);
            continue;
        }
        int max = (int)max_l;
        (void)alarm(GIVE_UP_S); /* a request never hangs: a stopped thread goes on when we die */
        if (!report_modules(dwfl, pid, &attached))
            (void)fail(dwfl_errmsg(-1), 0);
        else
            serve(dwfl, (pid_t)tid, max);
        (void)alarm(0);
        (void)fflush(stdout);
    }
    dwfl_end(dwfl);
    return 0;
}
