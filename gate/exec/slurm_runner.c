/*
 * slurm_runner.c - the node's side of `slurm-launch = runner` (slurm.h):
 * `keel-gate slurm-step -`, started once as a step of a slot's allocation,
 * takes the gate's jobs one at a time through srun's standard input and
 * answers on its standard output:
 *
 *   gate -> runner:  run <spec>\n      run the job of that spec file
 *                    cancel\n          cancel the job running (if any)
 *                    (end of input)    the gate is gone: cancel it, then exit
 *   runner -> gate:  ready\n           once, when keel has started
 *                    done <spec>\n     <spec>.result is written (or could not be; a job
 *                                      cancelled has none)
 *
 * A job runs in a thread of its own with gate_job_execute, exactly as
 * `keel-gate slurm-step <spec>` would run it (and as the local executor does:
 * a cancel ends its process group, SIGTERM then SIGKILL, and its sandbox);
 * the main thread reads the gate's lines meanwhile.  SIGTERM, SIGINT or
 * SIGHUP (Slurm ending the step: scancel, the allocation's end), and SIGUSR1
 * (the gate's cancel of a step per job, which srun passes on) kill every
 * process group the runner's job runs at once (SIGKILL) and end the runner
 * without a result.  `keel-gate slurm-step <spec>` (slurm-launch = srun)
 * does the same on the same signals.  A job that ends once Slurm began ending
 * the step (a SIGCONT pending: slurm_int.h) gets no result either.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"
#include "gate.h"
#include "heaps.h"
#include "slurm.h"
#include "slurm_int.h"

#define RUNNER_HEAP KEEL_MODULE_REF(gate_exec)

enum { LINE_MAX_BYTES = GATE_PATH_MAX + 64 };

typedef struct runner_job {
    char spec[GATE_PATH_MAX];
    int cancel;               /* atomic: asked before its spec was read */
    gate_slurm__node_job *nj; /* atomic: the job once its spec is read (freed after join) */
    keel_thread *thread;
    int done_w; /* one byte written there when the result is */
} runner_job;

static void *runner_job_main(void *arg)
{
    runner_job *rj = (runner_job *)arg;
    gate_slurm__node_job *nj = NULL;
    keel_status s = gate_slurm__spec_load(rj->spec, &nj);
    if (keel_ok(s) && nj != NULL) {
        gate_job_run *j = gate_slurm__node_job_run(nj);
        __atomic_store_n(&rj->nj, nj, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&rj->cancel, __ATOMIC_SEQ_CST))
            __atomic_store_n(&j->cancel, 1, __ATOMIC_SEQ_CST);
        gate_job_execute(j);
        if (gate_slurm__step_ending())
            gate_slurm__step_end(); /* its end may be Slurm's doing: no verdict */
    }
    /*
     * A job the runner cancelled (the gate's cancel, or its input ended: the gate is gone) has
     * no result: the gate that cancelled it knows, a gate gone reads none, and a gate whose
     * srun alone ended must not take "cancelled" for the change's verdict.
     */
    if (!__atomic_load_n(&rj->cancel, __ATOMIC_SEQ_CST))
        (void)gate_slurm__result_write(rj->spec, nj, s);
    char c = 'd';
    while (write(rj->done_w, &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

static void runner_cancel(runner_job *rj)
{
    __atomic_store_n(&rj->cancel, 1, __ATOMIC_SEQ_CST);
    gate_slurm__node_job *nj = __atomic_load_n(&rj->nj, __ATOMIC_SEQ_CST);
    if (nj != NULL)
        __atomic_store_n(&gate_slurm__node_job_run(nj)->cancel, 1, __ATOMIC_SEQ_CST);
}

void gate_slurm__step_end(void)
{
    gate_exec_freeze();
    (void)gate_exec_kill_all(SIGKILL);
    _exit(143);
}

/* Slurm ends the step: what the job runs goes at once (its sandbox with it), no result. */
static void runner_on_signal(int sig)
{
    (void)sig;
    gate_slurm__step_end();
}

void gate_slurm__step_watch(void)
{
    sigset_t cont;
    (void)sigemptyset(&cont);
    (void)sigaddset(&cont, SIGCONT);
    (void)pthread_sigmask(SIG_BLOCK, &cont, NULL);
}

bool gate_slurm__step_ending(void)
{
    sigset_t pending;
    (void)sigemptyset(&pending);
    return sigpending(&pending) == 0 && sigismember(&pending, SIGCONT) == 1;
}

static void say(const char *what, const char *spec)
{
    (void)printf("%s%s%s\n", what, spec != NULL ? " " : "", spec != NULL ? spec : "");
    (void)fflush(stdout);
}

/* The job's thread joined, its files freed, "done <spec>" said. */
static void runner_finish(runner_job **rjp)
{
    runner_job *rj = *rjp;
    *rjp = NULL;
    keel_status s = keel_thread_join(rj->thread, NULL);
    keel_status_free(s); /* a join of our own thread does not fail */
    gate_slurm__node_job_free(__atomic_load_n(&rj->nj, __ATOMIC_SEQ_CST));
    say("done", rj->spec);
    keel_heap_free(RUNNER_HEAP, rj);
}

/* A line of the gate's: start a job, cancel the one running, or say what was not understood. */
static void runner_line(const char *line, runner_job **rjp, int done_w)
{
    if (strcmp(line, "cancel") == 0) {
        if (*rjp != NULL)
            runner_cancel(*rjp);
        return;
    }
    if (strncmp(line, "run ", 4) != 0 || line[4] == '\0' || strlen(line + 4) >= GATE_PATH_MAX ||
        *rjp != NULL) {
        (void)fprintf(stderr, "keel-gate %s: error: unexpected '%s'\n", GATE_SLURM_STEP_COMMAND,
                      line);
        return;
    }
    void *mem = NULL;
    keel_status s = keel_heap_calloc(RUNNER_HEAP, 1, sizeof(runner_job), &mem);
    runner_job *rj = (runner_job *)mem;
    if (keel_ok(s)) {
        gate_fmt(rj->spec, sizeof(rj->spec), "%s", line + 4);
        rj->done_w = done_w;
        s = keel_thread_create(&rj->thread, "gate-slurm-job", NULL, runner_job_main, rj);
    }
    if (!keel_ok(s)) { /* the gate reads no result: the gate's failure, not the change's */
        (void)gate_slurm__result_write(line + 4, NULL, s);
        say("done", line + 4);
        keel_heap_free(RUNNER_HEAP, mem);
        return;
    }
    *rjp = rj;
}

void gate_slurm__stop_on_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = runner_on_signal;
    (void)sigemptyset(&sa.sa_mask);
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        (void)sigaction(sigs[i], &sa, NULL);
}

/* ---- a step per job: the gate's cancel through srun's input ------------------------- */

struct gate_slurm__input {
    int *cancel;
    int stop[2]; /* a byte written: the job has ended */
    bool cancelled;
    keel_thread *thread;
};

enum { INPUT_KILL_MS = 5 /* the job's groups killed again this often once cancelled */ };

static void *input_main(void *arg)
{
    gate_slurm__input *in = (gate_slurm__input *)arg;
    char buf[128];
    size_t have = 0;
    bool eof = false;
    for (;;) {
        struct pollfd pf[2] = {{in->stop[0], POLLIN, 0}, {0, POLLIN, 0}};
        int rc = poll(pf, eof ? 1 : 2, in->cancelled ? INPUT_KILL_MS : -1);
        if (in->cancelled)
            (void)gate_exec_kill_all(SIGKILL); /* also a group started since the last round */
        if (rc > 0 && pf[0].revents != 0)
            return NULL;
        if (rc <= 0 || eof || in->cancelled || pf[1].revents == 0)
            continue;
        ssize_t n = read(0, buf + have, sizeof(buf) - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* the gate is gone: the job runs on, as without it */
            eof = true;
            continue;
        }
        have += (size_t)n;
        buf[have] = '\0';
        if (strstr(buf, GATE_SLURM_CANCEL_LINE "\n") != NULL) {
            __atomic_store_n(in->cancel, 1, __ATOMIC_SEQ_CST); /* a job not started stays so */
            in->cancelled = true;
            (void)gate_exec_kill_all(SIGKILL);
        } else if (have == sizeof(buf) - 1) {
            have = 0; /* nothing the gate writes */
        }
    }
}

keel_status gate_slurm__input_start(int *cancel, gate_slurm__input **out)
{
    *out = NULL;
    void *mem = NULL;
    keel_status s = keel_heap_calloc(RUNNER_HEAP, 1, sizeof(gate_slurm__input), &mem);
    if (!keel_ok(s))
        return s;
    gate_slurm__input *in = (gate_slurm__input *)mem;
    in->cancel = cancel;
    if (pipe2(in->stop, O_CLOEXEC) != 0) {
        keel_heap_free(RUNNER_HEAP, mem);
        return KEEL_ERR_SYS(errno, "cannot make a pipe for the step's input");
    }
    s = keel_thread_create(&in->thread, "gate-slurm-input", NULL, input_main, in);
    if (!keel_ok(s)) {
        (void)close(in->stop[0]);
        (void)close(in->stop[1]);
        keel_heap_free(RUNNER_HEAP, mem);
        return s;
    }
    *out = in;
    return KEEL_OK;
}

bool gate_slurm__input_stop(gate_slurm__input *in)
{
    char c = 's';
    while (write(in->stop[1], &c, 1) < 0 && errno == EINTR) {
    }
    keel_status s = keel_thread_join(in->thread, NULL);
    keel_status_free(s); /* a join of our own thread does not fail */
    bool cancelled = in->cancelled;
    (void)close(in->stop[0]);
    (void)close(in->stop[1]);
    keel_heap_free(RUNNER_HEAP, in);
    return cancelled;
}

int gate_slurm__runner_main(void)
{
    gate_slurm__stop_on_signals();
    int done[2];
    if (pipe2(done, O_CLOEXEC) != 0) {
        (void)fprintf(stderr, "keel-gate %s: error: no pipe: %s\n", GATE_SLURM_STEP_COMMAND,
                      strerror(errno));
        return 3;
    }
    say("ready", NULL);
    char buf[LINE_MAX_BYTES];
    size_t have = 0;
    bool eof = false;
    runner_job *rj = NULL;
    while (!eof || rj != NULL) {
        struct pollfd pf[2] = {{done[0], POLLIN, 0}, {0, POLLIN, 0}};
        int rc = poll(pf, eof ? 1 : 2, -1);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0 && pf[0].revents != 0) {
            char c = 0;
            if (read(done[0], &c, 1) == 1 && rj != NULL)
                runner_finish(&rj);
        }
        if (eof || rc <= 0 || pf[1].revents == 0)
            continue;
        ssize_t n = read(0, buf + have, sizeof(buf) - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* the gate is gone: nobody reads this job's result */
            eof = true;
            if (rj != NULL)
                runner_cancel(rj);
            continue;
        }
        have += (size_t)n;
        buf[have] = '\0';
        char *nl = NULL;
        while ((nl = strchr(buf, '\n')) != NULL) {
            *nl = '\0';
            runner_line(buf, &rj, done[1]);
            size_t used = (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, have - used + 1);
            have -= used;
        }
        if (have == sizeof(buf) - 1)
            have = 0; /* a line longer than any the gate writes: dropped */
    }
    (void)close(done[0]);
    (void)close(done[1]);
    return 0;
}
