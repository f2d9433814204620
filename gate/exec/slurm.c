/*
 * slurm.c - keel-gate's Slurm executor: a step as one srun job running
 * keel-gate's own job runner on the node (slurm.h).  This file: the gate's
 * side, the slots' allocations, the runner standing in one, and a job launched
 * as its own srun job or as a step.  The spec and result files and the node's
 * side are slurm_files.c's; running Slurm's clients and reconciling at start,
 * slurm_client.c's.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "slurm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "heaps.h"
#include "pool.h"
#include "slurm_int.h"

/*
 * A literal as an element of an argument vector: posix_spawn and execv take
 * `char *const[]` for C's history, and never write through it.
 */
static char *arg(const char *literal)
{
    char *mutable_view = NULL;
    memcpy(&mutable_view, &literal, sizeof(mutable_view)); /* no cast: the pointer as it is */
    return mutable_view;
}

extern char **environ;

#define SLURM_HEAP KEEL_MODULE_REF(gate_exec)

/* ---- the slots' allocations ------------------------------------------------------------ */

/*
 * The allocation of each slot of this process that has one, by its entry: 0 none, > 0 its
 * Slurm job id, < 0 the id was granted again to another of this process's allocations (a
 * slurmctld killed within seconds of granting it forgets it and issues its id anew): the slot
 * forgets it, cancelling nothing.  Atomics: a slot writes its own entry, any slot's grant may
 * negate another's.
 */
enum { MAX_ALLOCS = 256 };
static long long alloc_ids[MAX_ALLOCS];
static int alloc_taken[MAX_ALLOCS];

struct gate_slurm_slot {
    unsigned index;        /* the pool's slot */
    size_t entry;          /* in alloc_ids; MAX_ALLOCS: none free, so no reuse check */
    long long alloc;       /* when alloc_ids has no entry for it */
    gate_slurm_request rq; /* what its allocation was asked with */
    /* slurm-launch = runner: the srun of the runner standing in the allocation (0: none) */
    pid_t runner;
    int chan;       /* the gate's end of the socket pair that is that srun's stdin and output */
    size_t have;    /* bytes in buf not yet a whole line */
    char buf[2048]; /* what the runner (or srun) said */
    char said[512]; /* its last line that was not an answer (an error of srun's, say) */
};

static long long slot_alloc(const gate_slurm_slot *sl)
{
    return sl->entry < MAX_ALLOCS ? __atomic_load_n(&alloc_ids[sl->entry], __ATOMIC_ACQUIRE)
                                  : sl->alloc;
}

static keel_status slot_new(unsigned index, gate_slurm_slot **out)
{
    void *mem = NULL;
    keel_status s = keel_heap_calloc(SLURM_HEAP, 1, sizeof(gate_slurm_slot), &mem);
    if (!keel_ok(s))
        return s;
    gate_slurm_slot *sl = (gate_slurm_slot *)mem;
    sl->index = index;
    sl->chan = -1;
    sl->entry = MAX_ALLOCS;
    for (size_t i = 0; i < MAX_ALLOCS && sl->entry == MAX_ALLOCS; i++) {
        int free_entry = 0;
        if (__atomic_compare_exchange_n(&alloc_taken[i], &free_entry, 1, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            __atomic_store_n(&alloc_ids[i], 0, __ATOMIC_RELEASE);
            sl->entry = i;
        }
    }
    *out = sl;
    return KEEL_OK;
}

/* `id` is the slot's allocation now; another slot holding the same id lost its own. */
static void slot_set(gate_slurm_slot *sl, long long id)
{
    if (sl->entry == MAX_ALLOCS) {
        sl->alloc = id;
        return;
    }
    for (size_t i = 0; id > 0 && i < MAX_ALLOCS; i++) {
        long long same = id;
        if (i != sl->entry)
            (void)__atomic_compare_exchange_n(&alloc_ids[i], &same, -id, false, __ATOMIC_ACQ_REL,
                                              __ATOMIC_ACQUIRE);
    }
    __atomic_store_n(&alloc_ids[sl->entry], id, __ATOMIC_RELEASE);
}

/* End the slot's allocation (scancel; `out` takes what it said) and forget it. */
static void slot_drop(gate_slurm_slot *sl, const char *out)
{
    long long id = slot_alloc(sl);
    slot_set(sl, 0);
    if (id <= 0)
        return; /* none, or its id is another allocation's now */
    char idbuf[32];
    (void)snprintf(idbuf, sizeof(idbuf), "%lld", id);
    char scancel[] = "scancel", quiet[] = "--quiet";
    char *const argv[] = {scancel, quiet, idbuf, NULL};
    (void)gate_slurm__run_client(argv, out);
}

/* ---- the runner standing in a slot's allocation (slurm-launch = runner) ---------------- */

enum {
    RUNNER_READY_MS = 120000, /* its step's launch and keel's start */
    RUNNER_STOP_MS = 3000,    /* its end once told (its input closed) */
    RUNNER_CANCEL_MS = 10000, /* a cancelled job's end (the job's grace is 2 s) */
    RUNNER_SLACK_MS = 60000   /* past the job's timeout: the runner is lost */
};

/*
 * The slot's runner told to end (its input closed: it cancels its job and exits), waited for
 * a few seconds, then its srun killed; nothing when it has none.  The allocation stays.
 */
static void runner_stop(gate_slurm_slot *sl)
{
    if (sl->runner <= 0) {
        if (sl->chan >= 0)
            (void)close(sl->chan);
        sl->chan = -1;
        return;
    }
    if (sl->chan >= 0)
        (void)shutdown(sl->chan, SHUT_WR);
    unsigned long long until = gate_now_ms() + RUNNER_STOP_MS;
    int st = 0;
    pid_t got = 0;
    while ((got = waitpid(sl->runner, &st, WNOHANG)) == 0 && gate_now_ms() < until) {
        struct pollfd pf = {sl->chan, POLLIN, 0}; /* drained: srun must not block writing */
        if (sl->chan >= 0 && poll(&pf, 1, 20) > 0) {
            char sink[512];
            if (read(sl->chan, sink, sizeof(sink)) <= 0) {
                (void)close(sl->chan);
                sl->chan = -1;
            }
        } else if (sl->chan < 0) {
            gate_slurm__nap_ms(20);
        }
    }
    if (got == 0) {
        (void)kill(sl->runner, SIGKILL); /* the allocation's scancel ends its step */
        (void)waitpid(sl->runner, &st, 0);
    }
    if (sl->chan >= 0)
        (void)close(sl->chan);
    sl->chan = -1;
    sl->runner = 0;
    sl->have = 0;
}

/* The runner's next line into `line`: 1, 0 when none came within `wait_ms`, -1 at its end. */
static int runner_read(gate_slurm_slot *sl, char *line, size_t size, unsigned wait_ms)
{
    for (;;) {
        char *nl = (char *)memchr(sl->buf, '\n', sl->have);
        if (nl != NULL) {
            size_t len = (size_t)(nl - sl->buf);
            gate_fmt(line, size, "%.*s", (int)len, sl->buf);
            sl->have -= len + 1;
            memmove(sl->buf, nl + 1, sl->have);
            return 1;
        }
        if (sl->have == sizeof(sl->buf))
            sl->have = 0; /* a line longer than any the runner writes: dropped */
        if (sl->chan < 0)
            return -1;
        struct pollfd pf = {sl->chan, POLLIN, 0};
        int rc = poll(&pf, 1, (int)wait_ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0)
            return 0;
        ssize_t n = read(sl->chan, sl->buf + sl->have, sizeof(sl->buf) - sl->have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        sl->have += (size_t)n;
    }
}

/* A line to the runner; false when it is gone. */
static bool runner_say(gate_slurm_slot *sl, const char *what, const char *spec)
{
    char line[GATE_PATH_MAX + 32];
    int len = snprintf(line, sizeof(line), "%s%s%s\n", what, spec != NULL ? " " : "",
                       spec != NULL ? spec : "");
    if (len <= 0 || (size_t)len >= sizeof(line) || sl->chan < 0)
        return false;
    for (size_t at = 0; at < (size_t)len;) {
        ssize_t n = send(sl->chan, line + at, (size_t)len - at, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        at += (size_t)n;
    }
    return true;
}

typedef enum runner_wait {
    RUNNER_ANSWERED, /* it said `want` */
    RUNNER_ENDED,    /* its srun ended first (its step, its allocation, its node) */
    RUNNER_CANCEL,   /* the job was cancelled and the runner did not answer in time */
    RUNNER_HUNG      /* no answer long past the job's timeout */
} runner_wait;

/*
 * Wait for the runner's line `want`, its other lines kept in sl->said.  A cancel of `j` is
 * passed on ("cancel") when `job` (the job runs), else ends the wait at once; `limit_ms` (0:
 * none): the runner is lost when it has not answered by then.
 */
static runner_wait runner_await(gate_slurm_slot *sl, const gate_job_run *j, const char *want,
                                bool job, unsigned long long limit_ms)
{
    unsigned long long t0 = gate_now_ms(), cancel_at = 0;
    char line[GATE_PATH_MAX + 64];
    for (;;) {
        int rc = runner_read(sl, line, sizeof(line), 50);
        if (rc > 0 && strcmp(line, want) == 0)
            return RUNNER_ANSWERED;
        if (rc > 0 && line[0] != '\0')
            gate_fmt(sl->said, sizeof(sl->said), "%s", line);
        if (rc < 0)
            return RUNNER_ENDED;
        unsigned long long now = gate_now_ms();
        if (cancel_at == 0 && __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE)) {
            if (!job)
                return RUNNER_CANCEL;
            cancel_at = now;
            (void)runner_say(sl, "cancel", NULL);
        }
        if (cancel_at != 0 && now - cancel_at >= RUNNER_CANCEL_MS)
            return RUNNER_CANCEL;
        if (limit_ms > 0 && now - t0 >= limit_ms)
            return RUNNER_HUNG;
    }
}

void gate_slurm_slot_release(gate_slurm_slot **slot)
{
    KEEL_ASSERT(slot != NULL);
    gate_slurm_slot *sl = *slot;
    if (sl == NULL)
        return;
    *slot = NULL;
    runner_stop(sl);
    slot_drop(sl, "/dev/null");
    if (sl->entry < MAX_ALLOCS)
        __atomic_store_n(&alloc_taken[sl->entry], 0, __ATOMIC_RELEASE);
    keel_heap_free(SLURM_HEAP, sl);
}

static bool same_request(const gate_slurm_request *a, const gate_slurm_request *b)
{
    return strcmp(a->partition, b->partition) == 0 && strcmp(a->constraint, b->constraint) == 0 &&
           a->cpus == b->cpus && a->memory == b->memory;
}

/* ---- the Slurm clients' arguments --------------------------------------------------------- */

enum { CANCEL_GRACE_MS = 5000 };

/* `pid` (a child not waited for yet) has ended: it is left to wait_for to reap. */
static bool has_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

typedef struct cancel_ctx {
    pid_t client;     /* srun or salloc */
    const char *name; /* the Slurm job's (one srun job each), or NULL */
    long long alloc;  /* the allocation the step runs in, or 0 */
    const char *out;  /* scancel's output */
    int step;         /* srun's input, of the job's step: told GATE_SLURM_CANCEL_LINE first */
} cancel_ctx;

/*
 * The job is cancelled: srun's input passes GATE_SLURM_CANCEL_LINE on to the step, whose
 * keel-gate kills its job's process groups and ends, and the step with it (CANCEL_GRACE_MS at
 * most: a step not started yet, a node that does not answer); then the client (srun or
 * salloc) told twice (srun aborts the step, salloc its request) and scancel of the job.
 * Not a signal srun passes on: slurmstepd signals every process of the step one by one, the
 * job's own first, and a job's shell whose foreground child died before its turn runs on.
 */
static void cancel_job(void *arg)
{
    const cancel_ctx *c = (const cancel_ctx *)arg;
    if (c->step >= 0) {
        static const char line[] = GATE_SLURM_CANCEL_LINE "\n";
        (void)send(c->step, line, sizeof(line) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        for (unsigned n = 0; n < CANCEL_GRACE_MS && !has_exited(c->client); n += 10)
            gate_slurm__nap_ms(10);
    }
    (void)kill(c->client, SIGINT);
    gate_slurm__nap_ms(50);
    (void)kill(c->client, SIGINT);
    char target[128] = "";
    if (c->name != NULL)
        gate_fmt(target, sizeof(target), "--name=%s", c->name);
    else if (c->alloc > 0)
        gate_fmt(target, sizeof(target), "%lld", c->alloc);
    if (target[0] == '\0')
        return;
    char scancel[] = "scancel", quiet[] = "--quiet";
    char *const argv[] = {scancel, quiet, target, NULL};
    (void)gate_slurm__run_client(argv, c->out);
}

/* A Slurm client's argument vector for job `j` (its strings in *a too) and the time limit. */
typedef struct srun_args {
    char *argv[24];
    char name[64], comment[GATE_PATH_MAX + 64], part[96], cons[300], cpus[32], mem[48], time[32];
    char jobid[40];
    char runner[GATE_PATH_MAX];
    unsigned minutes;
    size_t n;
} srun_args;

static void add(srun_args *a, char *word)
{
    KEEL_ASSERT(a->n + 1 < sizeof(a->argv) / sizeof(a->argv[0]));
    a->argv[a->n++] = word;
    a->argv[a->n] = NULL;
}

/* --comment naming the gate (its pid) and its logs directory, which reconciling reads. */
static void comment_arg(srun_args *a, const gate_job_run *j, const char *what, long long id)
{
    const char *slash = strrchr(j->log, '/');
    gate_fmt(a->comment, sizeof(a->comment), "--comment=keel:%s=%lld,pid=%d,logs=%.*s", what, id,
             (int)getpid(), slash != NULL ? (int)(slash - j->log) : 0, j->log);
    add(a, a->comment);
}

/* What the job's configuration asks of the nodes: partition, features, CPUs, memory. */
static void request_args(srun_args *a, const gate_slurm_request *rq, bool where)
{
    if (where && rq->partition[0] != '\0') {
        gate_fmt(a->part, sizeof(a->part), "--partition=%s", rq->partition);
        add(a, a->part);
    }
    if (where && rq->constraint[0] != '\0') {
        gate_fmt(a->cons, sizeof(a->cons), "--constraint=%s", rq->constraint);
        add(a, a->cons);
    }
    if (rq->cpus > 0) {
        gate_fmt(a->cpus, sizeof(a->cpus), "--cpus-per-task=%u", rq->cpus);
        add(a, a->cpus);
    }
    if (where && rq->memory > 0) {
        gate_fmt(a->mem, sizeof(a->mem), "--mem=%lluM", (rq->memory + (1ull << 20) - 1) >> 20);
        add(a, a->mem);
    }
}

/*
 * srun's arguments: the job as one srun job (alloc 0), or as a step named keel-<job> of the
 * slot's allocation `alloc`.
 */
static keel_status srun_argv(const gate_job_run *j, char *spec, long long alloc, srun_args *a)
{
    ssize_t len = readlink("/proc/self/exe", a->runner, sizeof(a->runner) - 1);
    if (len <= 0)
        return KEEL_ERR_SYS(errno, "cannot find keel-gate's own path for the Slurm nodes");
    a->runner[len] = '\0';
    a->n = 0;
    a->minutes = j->slurm.time_min;
    if (a->minutes == 0)
        a->minutes = j->timeout_ms > 0 ? (j->timeout_ms + 59999u) / 60000u + 1u : 0;
    add(a, arg("srun"));
    if (alloc > 0) {
        gate_fmt(a->jobid, sizeof(a->jobid), "--jobid=%lld", alloc);
        add(a, a->jobid);
        add(a, arg("--overlap")); /* the last step's CPU may not be released yet: no retry loop */
    }
    gate_fmt(a->name, sizeof(a->name), "--job-name=keel-%lld", j->job_id);
    add(a, a->name);
    if (alloc <= 0)
        comment_arg(a, j, "job", j->job_id);
    add(a, arg("--nodes=1"));
    add(a, arg("--ntasks=1"));
    add(a, arg("--kill-on-bad-exit=1"));
    request_args(a, &j->slurm, alloc <= 0);
    if (a->minutes > 0) {
        gate_fmt(a->time, sizeof(a->time), "--time=%u", a->minutes);
        add(a, a->time);
    }
    add(a, a->runner);
    add(a, arg(GATE_SLURM_STEP_COMMAND));
    add(a, spec);
    return KEEL_OK;
}

/*
 * A new allocation for the slot (salloc --no-shell: granted, then salloc exits; the
 * allocation lasts until scancel or its partition's time limit): one node, one task, what the
 * job's configuration asks, named keel-<gate pid>-slot<N>.  KEEL_E_IO when Slurm did not
 * grant it; KEEL_E_CANCELLED when the job was cancelled meanwhile.
 */
static keel_status slot_allocate(gate_slurm_slot *sl, gate_job_run *j, const char *out)
{
    void *mem = NULL;
    keel_status s = keel_heap_calloc(SLURM_HEAP, 1, sizeof(srun_args), &mem);
    if (!keel_ok(s))
        return s;
    srun_args *a = (srun_args *)mem;
    add(a, arg("salloc"));
    add(a, arg("--no-shell"));
    gate_fmt(a->name, sizeof(a->name), "--job-name=keel-%d-slot%u", (int)getpid(), sl->index);
    add(a, a->name);
    comment_arg(a, j, "slot", (long long)sl->index);
    add(a, arg("--nodes=1"));
    add(a, arg("--ntasks=1"));
    request_args(a, &j->slurm, true);
    pid_t pid = 0;
    s = gate_slurm__spawn(a->argv, -1, out, &pid);
    keel_heap_free(SLURM_HEAP, mem);
    if (!keel_ok(s))
        return s;
    cancel_ctx cc = {pid, NULL, 0, "/dev/null", -1};
    int st = gate_slurm__wait_for(pid, &j->cancel, cancel_job, &cc);
    char said[512];
    gate_slurm__last_line(out, said, sizeof(said));
    long long id = 0;
    FILE *f = fopen(out, "re");
    char line[512];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        const char *g = strstr(line, "Granted job allocation ");
        if (g != NULL)
            id = strtoll(g + strlen("Granted job allocation "), NULL, 10);
    }
    if (f != NULL)
        (void)fclose(f);
    bool ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && id > 0;
    if (__atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE)) {
        if (id > 0) {
            slot_set(sl, id);
            slot_drop(sl, "/dev/null");
        }
        return KEEL_ERR(KEEL_E_CANCELLED, "cancelled while waiting for a Slurm allocation");
    }
    if (!ok) {
        int code = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        return KEEL_ERR(KEEL_E_IO, "slurm: salloc for slot %u exited %d%s%s", sl->index, code,
                        said[0] != '\0' ? ": " : "", said);
    }
    slot_set(sl, id);
    sl->rq = j->slurm;
    return KEEL_OK;
}

/* A line of the gate's at the end of the job's log (what Slurm did to it). */
static void log_note(const char *log, const char *note)
{
    FILE *f = fopen(log, "ae");
    if (f == NULL)
        return;
    (void)fprintf(f, "keel-gate: %s\n", note);
    (void)fclose(f);
}

/* What one srun of a job came to. */
typedef struct launch {
    keel_status s;         /* reading its result: KEEL_OK, KEEL_E_NOTFOUND none, ... */
    int code;              /* srun's exit code, -1 when killed */
    bool time_limit;       /* Slurm said DUE TO TIME LIMIT */
    unsigned minutes;      /* the time limit asked for the job */
    unsigned long long ms; /* from srun's start to its end */
    char said[512];        /* srun's last line */
} launch;

/* One srun of job `j` (its spec at `spec`), in allocation `alloc` (0: a job of its own). */
static void launch_once(gate_job_run *j, char *spec, long long alloc, const char *srun_out,
                        launch *l)
{
    char result[GATE_PATH_MAX + 32];
    gate_fmt(result, sizeof(result), "%s.result", spec);
    (void)unlink(result); /* a result is only ever this run's */
    memset(l, 0, sizeof(*l));
    l->code = -1;
    void *mem = NULL;
    l->s = keel_heap_calloc(SLURM_HEAP, 1, sizeof(srun_args), &mem);
    srun_args *a = (srun_args *)mem;
    if (keel_ok(l->s))
        l->s = srun_argv(j, spec, alloc, a);
    unsigned long long t0 = gate_now_ms();
    pid_t pid = 0;
    int in[2] = {-1, -1}; /* srun's input: the cancel's way to the step */
    if (keel_ok(l->s) && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0)
        l->s = KEEL_ERR_SYS(errno, "cannot make a socket pair for 'srun'");
    if (keel_ok(l->s))
        l->s = gate_slurm__spawn(a->argv, in[1], srun_out, &pid);
    if (in[1] >= 0)
        (void)close(in[1]);
    if (!keel_ok(l->s)) {
        if (in[0] >= 0)
            (void)close(in[0]);
        keel_heap_free(SLURM_HEAP, mem);
        return;
    }
    cancel_ctx cc = {pid, alloc > 0 ? NULL : a->name + strlen("--job-name="), alloc, srun_out,
                     in[0]};
    int st = gate_slurm__wait_for(pid, &j->cancel, cancel_job, &cc);
    (void)close(in[0]);
    l->minutes = a->minutes;
    keel_heap_free(SLURM_HEAP, mem);
    l->ms = gate_now_ms() - t0;
    l->s = gate_slurm__result_read(result, j); /* read once: the file goes */
    (void)unlink(result);
    gate_slurm__last_line(srun_out, l->said, sizeof(l->said));
    l->time_limit = gate_slurm__file_says(srun_out, "DUE TO TIME LIMIT");
    (void)unlink(srun_out);
    l->code = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The job's worker's slot, made at its first job. */
static keel_status slot_of(gate_job_run *j, gate_slurm_slot **out)
{
    *out = *j->slurm_slot;
    if (*out != NULL)
        return KEEL_OK;
    keel_status s = slot_new(j->slot_index, out);
    if (keel_ok(s))
        *j->slurm_slot = *out;
    return s;
}

/*
 * Run the job in the slot's allocation, allocating one first when the slot has none for its
 * configuration's request.  An allocation that ended under a job (gone, expired, its node
 * lost: no result) is replaced and the job run again once at once.
 */
static void launch_in_slot(gate_job_run *j, char *spec, const char *srun_out, launch *l)
{
    gate_slurm_slot *sl = NULL;
    keel_status s = slot_of(j, &sl);
    for (int attempt = 0; keel_ok(s) && sl != NULL && attempt < 2; attempt++) {
        bool fresh = false;
        if (slot_alloc(sl) <= 0 || !same_request(&sl->rq, &j->slurm)) {
            slot_drop(sl, srun_out); /* another configuration's: nodes for this one */
            s = slot_allocate(sl, j, srun_out);
            fresh = true;
        }
        if (!keel_ok(s))
            break;
        launch_once(j, spec, slot_alloc(sl), srun_out, l);
        bool cancelled = __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE) != 0;
        /* a time limit before the job's own (or with none): the allocation's, not the change's */
        if (l->time_limit && !cancelled &&
            (l->minutes == 0 || l->ms + 5000 < (unsigned long long)l->minutes * 60000u))
            l->time_limit = false;
        if (keel_ok(l->s) || l->time_limit)
            return;
        slot_drop(sl, srun_out);
        if (cancelled || fresh || !KEEL_IS(l->s, KEEL_E_NOTFOUND))
            return;
        keel_status_free(l->s); /* an allocation kept from an earlier job ended: a new one */
        l->s = KEEL_OK;
    }
    if (!keel_ok(s)) {
        memset(l, 0, sizeof(*l));
        l->code = -1;
        l->s = s;
    }
}

/*
 * The slot's runner started as a step of its allocation (its srun's stdin and output one end
 * of a socket pair, the gate's the other) and waited for until it is ready.  KEEL_E_IO when it
 * did not start (its srun's last words); KEEL_E_CANCELLED when the job was cancelled meanwhile.
 */
static keel_status runner_start(gate_slurm_slot *sl, const gate_job_run *j)
{
    void *mem = NULL;
    keel_status s = keel_heap_calloc(SLURM_HEAP, 1, sizeof(srun_args), &mem);
    if (!keel_ok(s))
        return s;
    srun_args *a = (srun_args *)mem;
    ssize_t len = readlink("/proc/self/exe", a->runner, sizeof(a->runner) - 1);
    if (len <= 0) {
        keel_heap_free(SLURM_HEAP, mem);
        return KEEL_ERR_SYS(errno, "cannot find keel-gate's own path for the Slurm nodes");
    }
    a->runner[len] = '\0';
    add(a, arg("srun"));
    gate_fmt(a->jobid, sizeof(a->jobid), "--jobid=%lld", slot_alloc(sl));
    add(a, a->jobid);
    add(a, arg("--overlap"));
    gate_fmt(a->name, sizeof(a->name), "--job-name=keel-%d-slot%u", (int)getpid(), sl->index);
    add(a, a->name);
    add(a, arg("--nodes=1"));
    add(a, arg("--ntasks=1"));
    add(a, arg("--unbuffered"));
    add(a, arg("--quiet"));
    add(a, arg("--kill-on-bad-exit=1"));
    request_args(a, &j->slurm, false);
    add(a, a->runner);
    add(a, arg(GATE_SLURM_STEP_COMMAND));
    add(a, arg(GATE_SLURM_RUNNER_SPEC));
    int sv[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    int rc = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ? errno : 0;
    bool fa_made = rc == 0 && (rc = posix_spawn_file_actions_init(&fa)) == 0;
    for (int fd = 0; fa_made && rc == 0 && fd < 3; fd++)
        rc = posix_spawn_file_actions_adddup2(&fa, sv[1], fd);
    pid_t pid = 0;
    if (rc == 0)
        rc = posix_spawnp(&pid, a->argv[0], &fa, NULL, a->argv, environ);
    if (fa_made)
        (void)posix_spawn_file_actions_destroy(&fa);
    keel_heap_free(SLURM_HEAP, mem);
    if (sv[1] >= 0)
        (void)close(sv[1]);
    if (rc != 0) {
        if (sv[0] >= 0)
            (void)close(sv[0]);
        return KEEL_ERR_SYS(rc, "cannot start 'srun' (is Slurm's client installed?)");
    }
    sl->runner = pid;
    sl->chan = sv[0];
    sl->have = 0;
    sl->said[0] = '\0';
    runner_wait w = runner_await(sl, j, "ready", false, RUNNER_READY_MS);
    if (w == RUNNER_ANSWERED)
        return KEEL_OK;
    if (w == RUNNER_CANCEL)
        return KEEL_ERR(KEEL_E_CANCELLED, "cancelled while the Slurm runner started");
    return KEEL_ERR(KEEL_E_IO, "slurm: the runner of slot %u did not start%s%s", sl->index,
                    sl->said[0] != '\0' ? ": " : "", sl->said);
}

/* The job handed to the slot's standing runner, and its result read (once). */
static void runner_job(gate_slurm_slot *sl, gate_job_run *j, char *spec, launch *l)
{
    char result[GATE_PATH_MAX + 32];
    gate_fmt(result, sizeof(result), "%s.result", spec);
    (void)unlink(result); /* a result is only ever this run's */
    char done[GATE_PATH_MAX + 32];
    gate_fmt(done, sizeof(done), "done %s", spec);
    unsigned long long t0 = gate_now_ms();
    sl->said[0] = '\0';
    runner_wait w = RUNNER_ENDED;
    if (runner_say(sl, "run", spec))
        w = runner_await(sl, j, done, true,
                         j->timeout_ms > 0 ? j->timeout_ms + RUNNER_SLACK_MS : 0);
    l->ms = gate_now_ms() - t0;
    /* also after its end: it may have written it; read once: the file goes */
    l->s = gate_slurm__result_read(result, j);
    (void)unlink(result);
    gate_fmt(l->said, sizeof(l->said), "%s", sl->said);
    l->code = w == RUNNER_ANSWERED ? 0 : -1;
    if (w != RUNNER_ANSWERED) /* it ended, or it cannot be trusted with the next job */
        runner_stop(sl);
    if (keel_ok(l->s) || w == RUNNER_ANSWERED)
        return;
    if (w == RUNNER_HUNG) {
        keel_status_free(l->s);
        l->s = KEEL_ERR(KEEL_E_IO, "the runner gave no answer %u s past the job's timeout",
                        (unsigned)(RUNNER_SLACK_MS / 1000));
    }
}

/*
 * Run the job through the slot's runner, starting one (in a new allocation) when the slot has
 * none for its configuration's request.  A runner that ended under a job that was not its
 * first (its allocation gone, expired, its node lost: no result) is replaced and the job run
 * again once at once.
 */
static void launch_runner(gate_job_run *j, char *spec, const char *srun_out, launch *l)
{
    memset(l, 0, sizeof(*l));
    l->code = -1;
    gate_slurm_slot *sl = NULL;
    keel_status s = slot_of(j, &sl);
    for (int attempt = 0; keel_ok(s) && sl != NULL && attempt < 2; attempt++) {
        bool fresh = false;
        if (sl->runner <= 0 || slot_alloc(sl) <= 0 || !same_request(&sl->rq, &j->slurm)) {
            runner_stop(sl);
            slot_drop(sl, srun_out); /* another configuration's: nodes for this one */
            s = slot_allocate(sl, j, srun_out);
            if (keel_ok(s))
                s = runner_start(sl, j);
            if (!keel_ok(s)) {
                runner_stop(sl);
                slot_drop(sl, srun_out);
                break;
            }
            fresh = true;
        }
        runner_job(sl, j, spec, l);
        if (keel_ok(l->s))
            return;
        if (sl->runner > 0)
            return; /* it answered: the node's error, its runner still good */
        bool cancelled = __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE) != 0;
        slot_drop(sl, srun_out); /* its step ended, or did not answer: its processes go */
        if (cancelled || fresh || !KEEL_IS(l->s, KEEL_E_NOTFOUND))
            return;
        keel_status_free(l->s); /* a runner kept from an earlier job ended: a new one */
        l->s = KEEL_OK;
    }
    if (!keel_ok(s)) {
        keel_status_free(l->s);
        memset(l, 0, sizeof(*l));
        l->code = -1;
        l->s = s;
    }
}

keel_status gate_slurm_run_job(gate_job_run *j)
{
    KEEL_ASSERT(j != NULL);
    char spec[GATE_PATH_MAX + 16], srun_out[GATE_PATH_MAX + 16];
    gate_fmt(spec, sizeof(spec), "%s.spec", j->log);
    gate_fmt(srun_out, sizeof(srun_out), "%s.srun", j->log);
    bool runner = j->slurm_slot != NULL && !j->policy.slurm_srun;
    unsigned timeout_ms = j->timeout_ms;
    unsigned long long limit_ms = (unsigned long long)j->slurm.time_min * 60000u;
    if (runner && limit_ms > 0 && (timeout_ms == 0 || limit_ms < timeout_ms))
        j->timeout_ms = (unsigned)limit_ms; /* no step's --time: the runner ends it there */
    keel_status s = gate_slurm__spec_write(spec, j);
    if (!keel_ok(s)) {
        j->timeout_ms = timeout_ms;
        return KEEL_CONTEXT(s, "job %lld on Slurm", j->job_id);
    }
    unsigned long long t0 = gate_now_ms();
    launch l;
    if (runner)
        launch_runner(j, spec, srun_out, &l);
    else if (j->slurm_slot != NULL)
        launch_in_slot(j, spec, srun_out, &l);
    else
        launch_once(j, spec, 0, srun_out, &l);
    j->timeout_ms = timeout_ms;
    (void)unlink(spec);
    (void)unlink(srun_out);
    if (keel_ok(l.s))
        return KEEL_OK;
    bool cancelled = __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE) != 0;
    if (cancelled || l.time_limit) { /* Slurm's limit came before the gate's timeout */
        keel_status_free(l.s);
        j->result = cancelled ? GATE_EXEC_CANCELLED : GATE_EXEC_TIMEOUT;
        j->exit_code = -1;
        j->elapsed_ms = gate_now_ms() - t0;
        if (!cancelled) {
            gate_fmt(j->reason, sizeof(j->reason), "Slurm time limit %u min reached", l.minutes);
            log_note(j->log, j->reason);
        }
        return KEEL_OK;
    }
    if (KEEL_IS(l.s, KEEL_E_NOTFOUND)) {
        keel_status_free(l.s);
        return KEEL_ERR(KEEL_E_IO, "slurm: job keel-%lld gave no result (srun exited %d%s%s)",
                        j->job_id, l.code, l.said[0] != '\0' ? ": " : "", l.said);
    }
    return KEEL_CONTEXT(l.s, "slurm: job keel-%lld (srun exited %d%s%s)", j->job_id, l.code,
                        l.said[0] != '\0' ? ": " : "", l.said);
}
