/*
 * signals.c - the daemon's SIGINT, SIGTERM and SIGHUP: a self-pipe and a keel
 * thread; SIGPIPE ignored.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"
#include "heaps.h"

struct gate_signals {
    gate *g;
    FILE *err;
    keel_thread *thread;
    struct sigaction old_int, old_term, old_hup, old_pipe;
};

/*
 * The pipe lives as long as the process: a handler running late on another
 * thread never writes into a descriptor closed, or reused, under it.
 */
static int sig_pipe[2] = {-1, -1};
static pthread_once_t pipe_once = PTHREAD_ONCE_INIT;
static int pipe_errno;
static bool in_use;

static void make_pipe(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC) != 0) {
        pipe_errno = errno;
        return;
    }
    /* a handler never blocks: a full pipe drops a signal, those before it are read */
    int flags = fcntl(sig_pipe[1], F_GETFL);
    if (flags < 0 || fcntl(sig_pipe[1], F_SETFL, flags | O_NONBLOCK) != 0)
        pipe_errno = errno;
}

static void on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t n = write(sig_pipe[1], &b, 1); /* async-signal-safe, and nothing else is done */
    (void)n;
    errno = saved;
}

static const char *signal_name(int signo)
{
    return signo == SIGINT    ? "SIGINT"
           : signo == SIGTERM ? "SIGTERM"
           : signo == SIGHUP  ? "SIGHUP"
                              : "a signal";
}

static void *watch(void *arg)
{
    gate_signals *w = (gate_signals *)arg;
    unsigned seen = 0;
    for (;;) {
        unsigned char b = 0;
        ssize_t n = read(sig_pipe[0], &b, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || b == 0)
            break; /* gate_signals_stop */
        const char *name = signal_name(b);
        if (++seen == 1) {
            (void)fprintf(w->err,
                          "keel-gate: %s: stopping: no new work; running jobs are killed and "
                          "run again after a restart (another signal exits at once)\n",
                          name);
            (void)fflush(w->err);
            gate_request_stop(w->g, b);
            continue;
        }
        gate_exec_freeze(); /* no job killed now may be taken for a failure */
        unsigned killed = gate_exec_kill_all(SIGKILL);
        (void)fprintf(w->err,
                      "keel-gate: %s again: exiting at once; %u job process group(s) killed; "
                      "the next run recovers the queue\n",
                      name, killed);
        (void)fflush(w->err);
        _exit(128 + b);
    }
    return NULL;
}

keel_status gate_signals_start(gate *g, FILE *err, gate_signals **out)
{
    KEEL_ASSERT(g != NULL && err != NULL && out != NULL);
    *out = NULL;
    (void)pthread_once(&pipe_once, make_pipe);
    if (pipe_errno != 0)
        return KEEL_ERR_SYS(pipe_errno, "cannot make the pipe for SIGINT and SIGTERM");
    if (__atomic_exchange_n(&in_use, true, __ATOMIC_ACQ_REL))
        return KEEL_ERR(KEEL_E_STATE, "SIGINT and SIGTERM are already handled for another gate");
    void *mem = NULL;
    keel_status s = keel_heap_calloc(KEEL_MODULE_REF(gate), 1, sizeof(gate_signals), &mem);
    if (!keel_ok(s)) {
        __atomic_store_n(&in_use, false, __ATOMIC_RELEASE);
        return KEEL_CONTEXT(s, "handling SIGINT and SIGTERM");
    }
    gate_signals *w = (gate_signals *)mem;
    w->g = g;
    w->err = err;
    s = keel_thread_create(&w->thread, "gate-signals", NULL, watch, w);
    if (!keel_ok(s)) {
        keel_heap_free(KEEL_MODULE_REF(gate), w);
        __atomic_store_n(&in_use, false, __ATOMIC_RELEASE);
        return KEEL_CONTEXT(s, "handling SIGINT and SIGTERM");
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    (void)sigemptyset(&sa.sa_mask);
    (void)sigaddset(&sa.sa_mask, SIGINT);
    (void)sigaddset(&sa.sa_mask, SIGTERM);
    (void)sigaddset(&sa.sa_mask, SIGHUP);
    struct sigaction ignore;
    memset(&ignore, 0, sizeof(ignore));
    ignore.sa_handler = SIG_IGN;
    (void)sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGINT, &sa, &w->old_int) != 0 || sigaction(SIGTERM, &sa, &w->old_term) != 0 ||
        sigaction(SIGHUP, &sa, &w->old_hup) != 0 ||
        sigaction(SIGPIPE, &ignore, &w->old_pipe) != 0) {
        int e = errno;
        gate_signals_stop(w);
        return KEEL_ERR_SYS(e, "cannot handle SIGINT, SIGTERM and SIGHUP");
    }
    *out = w;
    return KEEL_OK;
}

void gate_signals_stop(gate_signals *w)
{
    if (w == NULL)
        return;
    /* (sigaction only fails for a bad signal number: these are good) */
    (void)sigaction(SIGINT, &w->old_int, NULL);
    (void)sigaction(SIGTERM, &w->old_term, NULL);
    (void)sigaction(SIGHUP, &w->old_hup, NULL);
    (void)sigaction(SIGPIPE, &w->old_pipe, NULL);
    unsigned char quit = 0;
    ssize_t n;
    do
        n = write(sig_pipe[1], &quit, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        /* it keeps reading, and w with it: left as it is */
        (void)fprintf(w->err, "keel-gate: warning: the signal thread could not be stopped\n");
        return;
    }
    keel_status s = keel_thread_join(w->thread, NULL);
    if (!keel_ok(s))
        keel_status_ignore(s, "stopping: nothing left to do about the signal thread");
    keel_heap_free(KEEL_MODULE_REF(gate), w);
    __atomic_store_n(&in_use, false, __ATOMIC_RELEASE);
}
