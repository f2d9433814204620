/*
 * pool.c - keel-gate's executor: worker threads running jobs.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "pool.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ccache.h"
#include "gate.h"
#include "heaps.h"
#include "ranks.h"
#include "resources.h"
#include "slurm.h"

enum { MAX_SLOTS = 256 };

/* A worker thread: its slot and, with executor = slurm, its allocation. */
typedef struct pool_worker {
    gate_pool *pool;
    unsigned index;
    gate_slurm_slot *slurm; /* its allocation, kept from job to job (slurm.h) */
} pool_worker;

/*
 * A pool, or a share of one (gate_pool_share): a share has its own jobs
 * (outstanding, finished) and runs them on its core's workers; the lock, the
 * waiting jobs and the workers are the core's.  A pool is its own core.
 */
struct gate_pool {
    gate_pool *core; /* the pool whose workers run this one's jobs (itself when not a share) */
    keel_mutex lock;
    keel_cond work; /* a job is waiting, or stop */
    keel_cond done; /* a job finished */
    gate_job_run *waiting, *waiting_tail;
    gate_job_run *finished, *finished_tail; /* this share's */
    unsigned outstanding;                   /* this share's */
    unsigned running;                       /* this share's jobs executing (pick_fair) */
    unsigned long long picked;              /* when a job of this share last started (picks) */
    unsigned long long picks;               /* the core's: jobs started so far */
    unsigned shares;                        /* the core's: shares not yet deleted */
    unsigned finished_all;                  /* the core's: finished jobs of every share */
    /* the jobs executing, and the integral of 1 / executing over time (gate_load_meter) */
    unsigned executing;
    gate_load_meter load;
    bool stop;
    pool_worker workers[MAX_SLOTS];
    keel_thread *threads[MAX_SLOTS];
    unsigned nthreads;
};

static void push(gate_job_run **head, gate_job_run **tail, gate_job_run *j)
{
    j->next = NULL;
    if (*tail != NULL)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static gate_job_run *pop(gate_job_run **head, gate_job_run **tail)
{
    gate_job_run *j = *head;
    if (j != NULL) {
        *head = j->next;
        if (*head == NULL)
            *tail = NULL;
        j->next = NULL;
    }
    return j;
}

/* A line of the gate's into the job's log; an errno when it could not be written. */
static int log_line(const char *path, const char *prefix, char *const *argv)
{
    FILE *f = fopen(path, "ae");
    if (f == NULL)
        return errno;
    (void)fprintf(f, "%s", prefix);
    for (char *const *a = argv; a != NULL && *a != NULL; a++)
        (void)fprintf(f, " %s", *a);
    (void)fprintf(f, "\n");
    int e = ferror(f) ? (errno != 0 ? errno : EIO) : 0;
    if (fclose(f) != 0 && e == 0)
        e = errno != 0 ? errno : EIO;
    return e;
}

/* The gate could not run the job: `error` set, never a result on the change. */
static void job_error(gate_job_run *j, keel_status s)
{
    gate_status_line(s, j->error, sizeof(j->error));
    keel_status_free(s);
    j->result = GATE_EXEC_FAILED;
    j->exit_code = -1;
}

/* One step (build or test) with what is left of the job's time and output. */
static bool run_step(gate_job_run *j, char *const *argv, unsigned long long *used_ms)
{
    int e = log_line(j->log, "keel-gate: $", argv);
    if (e != 0) {
        job_error(j, KEEL_ERR_SYS(e, "cannot write job log '%s'", j->log));
        return false;
    }
    gate_exec_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.argv = argv;
    spec.env = j->env;
    spec.dir = j->dir;
    spec.log = j->log;
    spec.cancel = &j->cancel;
    spec.policy = &j->policy;
    spec.hidden = j->hidden;
    spec.records = j->records;
    unsigned long long cap = j->policy.limits.output;
    spec.log_limit = cap == 0          ? 0
                     : j->output < cap ? cap - j->output
                                       : 1; /* the job's, all steps */
    if (j->timeout_ms > 0)
        spec.timeout_ms = *used_ms < j->timeout_ms ? j->timeout_ms - (unsigned)*used_ms : 1;
    gate_exec_outcome o;
    keel_status s = gate_exec_run(&spec, &o);
    if (!keel_ok(s)) {
        job_error(j, s);
        return false;
    }
    *used_ms += o.elapsed_ms;
    j->elapsed_ms = *used_ms;
    j->output += o.log_bytes;
    j->result = o.result;
    j->exit_code = o.result == GATE_EXEC_PASSED || o.result == GATE_EXEC_FAILED ||
                           o.result == GATE_EXEC_NOT_FOUND
                       ? o.exit_code
                       : -o.signal;
    if (o.result == GATE_EXEC_LIMIT)
        (void)snprintf(j->reason, sizeof(j->reason), "%s", o.reason);
    else if (o.result == GATE_EXEC_TIMEOUT)
        (void)snprintf(j->reason, sizeof(j->reason),
                       "timeout %u s reached (everything it started was killed)",
                       j->timeout_ms / 1000u);
    return o.result == GATE_EXEC_PASSED;
}

void gate_job_execute(gate_job_run *j)
{
    KEEL_ASSERT(j != NULL);
    j->result = GATE_EXEC_PASSED;
    j->exit_code = 0;
    j->elapsed_ms = 0;
    j->output = 0;
    j->reason[0] = '\0';
    if (__atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE)) {
        j->result = GATE_EXEC_CANCELLED; /* j->error may say why it never ran */
        gate_ccache_job_end(&j->policy);
        return;
    }
    j->error[0] = '\0';
    if (j->policy.executor == GATE_EXECUTOR_SLURM) { /* the whole job on a node, as here */
        keel_status s = gate_slurm_run_job(j);
        if (!keel_ok(s))
            job_error(j, s);
        return;
    }
    unsigned long long used = 0;
    bool ok = true;
    if (j->build != NULL && j->build[0] != NULL)
        ok = run_step(j, j->build, &used);
    if (ok && j->test != NULL && j->test[0] != NULL)
        (void)run_step(j, j->test, &used);
    gate_ccache_job_end(&j->policy); /* its compiler cache's counters (ccache.h) */
    if (j->error[0] != '\0')
        return; /* the loop writes why into the log, if it can */
    char note[GATE_REASON_TEXT + 128];
    (void)snprintf(note, sizeof(note), "keel-gate: %s (exit %d) after %llu ms%s%s",
                   gate_exec_result_name(j->result), j->exit_code, j->elapsed_ms,
                   j->reason[0] != '\0' ? ": " : "", j->reason);
    int e = log_line(j->log, note, NULL);
    if (e != 0)
        job_error(j, KEEL_ERR_SYS(e, "cannot write job log '%s'", j->log));
}

/*
 * The jobs executing change by `delta` at `now`: the integral of 1 /
 * executing up to now, before the change.  A job's load is the harmonic mean
 * of the jobs executing while it ran: its length over that integral's growth
 * meanwhile.  The harmonic mean, not the arithmetic one: a job sharing the
 * executor among k jobs progresses at a rate proportional to 1 / k, so its
 * time is its time alone times that mean over what the executor runs at
 * once, however the load changed during it (capacity.h).
 */
static double load_step(gate_pool *p, unsigned long long now, int delta)
{
    KEEL_ASSERT(keel_mutex_held(&p->lock));
    double area = gate_load_advance(&p->load, now, p->executing);
    KEEL_ASSERT(delta > 0 || p->executing > 0);
    p->executing = (unsigned)((int)p->executing + delta);
    return area;
}

/* Does share a come before share b for a free slot: fewer jobs running, else served longer ago? */
static bool fairer(const gate_pool *a, const gate_pool *b)
{
    return a->running < b->running || (a->running == b->running && a->picked < b->picked);
}

/*
 * The waiting job to run next (taken off the queue): the oldest of the
 * share with the fewest jobs executing, of those the one served longest
 * ago, so that the shares with work take the slots in turns and a busy share
 * never starves another (a pool that is not shared: the oldest, first in,
 * first out).
 */
static gate_job_run *pick_fair(gate_pool *p)
{
    KEEL_ASSERT(keel_mutex_held(&p->lock) && p->waiting != NULL);
    gate_job_run *best = p->waiting, *best_prev = NULL, *prev = p->waiting;
    for (gate_job_run *j = p->waiting->next; j != NULL && p->shares > 0; prev = j, j = j->next)
        if (fairer(j->share, best->share)) {
            best = j;
            best_prev = prev;
        }
    if (best_prev == NULL)
        (void)pop(&p->waiting, &p->waiting_tail);
    else {
        best_prev->next = best->next;
        if (p->waiting_tail == best)
            p->waiting_tail = best_prev;
        best->next = NULL;
    }
    best->share->running++;
    best->share->picked = ++p->picks;
    return best;
}

static void *worker(void *arg)
{
    pool_worker *w = (pool_worker *)arg;
    gate_pool *p = w->pool;
    keel_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->waiting == NULL)
            keel_cond_wait(&p->work, &p->lock);
        if (p->stop)
            break;
        gate_job_run *j = pick_fair(p);
        /*
         * The machine's CPU and the gate's, sampled outside the job's
         * measured time: reading /proc never delays a job's start nor
         * lengthens what the pool counts as its run (its load).
         */
        bool here = j->policy.executor == GATE_EXECUTOR_LOCAL;
        gate_cpu_sample cpu0, cpu1;
        memset(&cpu0, 0, sizeof(cpu0));
        memset(&cpu1, 0, sizeof(cpu1));
        if (here) {
            keel_mutex_unlock(&p->lock);
            gate_cpu_sample_take(getpid(), gate_now_ms(), &cpu0);
            keel_mutex_lock(&p->lock);
        }
        unsigned long long t0 = gate_now_ms();
        double area0 = load_step(p, t0, 1);
        keel_mutex_unlock(&p->lock);
        j->slurm_slot = &w->slurm;
        j->slot_index = w->index;
        gate_job_execute(j);
        keel_mutex_lock(&p->lock);
        unsigned long long t1 = gate_now_ms();
        double area1 = load_step(p, t1, -1);
        j->load = gate_load_of(t0, area0, t1, area1, (double)p->executing + 1.0);
        j->others = 0.0;
        if (here) {
            keel_mutex_unlock(&p->lock);
            gate_cpu_sample_take(getpid(), gate_now_ms(), &cpu1);
            j->others = gate_others_cores(&cpu0, &cpu1);
            keel_mutex_lock(&p->lock);
        }
        gate_pool *share = j->share;
        share->running--;
        push(&share->finished, &share->finished_tail, j);
        p->finished_all++;
        keel_cond_broadcast(&p->done);
    }
    keel_mutex_unlock(&p->lock);
    gate_slurm_slot_release(&w->slurm); /* its allocation ends with the pool */
    return NULL;
}

keel_status gate_pool_new(unsigned slots, gate_pool **out)
{
    KEEL_ASSERT(out != NULL);
    *out = NULL;
    if (slots == 0 || slots > MAX_SLOTS)
        return KEEL_ERR(KEEL_E_INVAL, "executor slots %u out of range [1, %d]", slots,
                        (int)MAX_SLOTS);
    void *mem = NULL;
    keel_status s = keel_heap_calloc(KEEL_MODULE_REF(gate_exec), 1, sizeof(gate_pool), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "starting the executor");
    gate_pool *p = (gate_pool *)mem;
    p->core = p;
    keel_mutex_init(&p->lock, "gate.pool", GATE_RANK_POOL);
    keel_cond_init(&p->work);
    keel_cond_init(&p->done);
    for (unsigned i = 0; i < slots && keel_ok(s); i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i;
        s = keel_thread_create(&p->threads[i], "gate-job", NULL, worker, &p->workers[i]);
        if (keel_ok(s))
            p->nthreads++;
    }
    if (!keel_ok(s)) {
        gate_pool_delete(p);
        return KEEL_CONTEXT(s, "starting the executor's %u threads", slots);
    }
    *out = p;
    return KEEL_OK;
}

void gate_pool_delete(gate_pool *p)
{
    if (p == NULL)
        return;
    if (p->core != p) { /* a share: its waiting jobs cancelled, the core's workers go on */
        gate_pool *c = p->core;
        keel_mutex_lock(&c->lock);
        for (gate_job_run *j = c->waiting; j != NULL; j = j->next)
            if (j->share == p)
                __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
        KEEL_ASSERT(c->shares > 0);
        c->shares--;
        keel_mutex_unlock(&c->lock);
        keel_heap_free(KEEL_MODULE_REF(gate_exec), p);
        return;
    }
    KEEL_ASSERT(p->shares == 0);
    keel_mutex_lock(&p->lock);
    p->stop = true;
    for (gate_job_run *j = p->waiting; j != NULL; j = j->next)
        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
    keel_cond_broadcast(&p->work);
    keel_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++) {
        keel_status s = keel_thread_join(p->threads[i], NULL);
        if (!keel_ok(s))
            keel_status_ignore(s, "stopping: nothing left to do about a worker");
    }
    /* jobs never handed back stay their owner's: drain with gate_pool_wait first */
    keel_cond_destroy(&p->work);
    keel_cond_destroy(&p->done);
    keel_mutex_destroy(&p->lock);
    keel_heap_free(KEEL_MODULE_REF(gate_exec), p);
}

keel_status gate_pool_share(gate_pool *core, gate_pool **out)
{
    KEEL_ASSERT(core != NULL && core->core == core && out != NULL);
    *out = NULL;
    void *mem = NULL;
    keel_status s = keel_heap_calloc(KEEL_MODULE_REF(gate_exec), 1, sizeof(gate_pool), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "sharing the executor");
    gate_pool *p = (gate_pool *)mem;
    p->core = core;
    keel_mutex_lock(&core->lock);
    core->shares++;
    keel_mutex_unlock(&core->lock);
    *out = p;
    return KEEL_OK;
}

void gate_pool_submit(gate_pool *p, gate_job_run *j)
{
    KEEL_ASSERT(p != NULL && j != NULL);
    gate_pool *c = p->core;
    keel_mutex_lock(&c->lock);
    j->share = p;
    push(&c->waiting, &c->waiting_tail, j);
    p->outstanding++;
    keel_cond_signal(&c->work);
    keel_mutex_unlock(&c->lock);
}

gate_job_run *gate_pool_wait(gate_pool *p, unsigned timeout_ms)
{
    KEEL_ASSERT(p != NULL);
    gate_pool *c = p->core;
    keel_mutex_lock(&c->lock);
    if (p->finished == NULL && timeout_ms > 0)
        (void)keel_cond_timedwait(&c->done, &c->lock, timeout_ms);
    gate_job_run *j = pop(&p->finished, &p->finished_tail);
    if (j != NULL) {
        p->outstanding--;
        c->finished_all--;
    }
    keel_mutex_unlock(&c->lock);
    return j;
}

bool gate_pool_wait_any(gate_pool *core, unsigned timeout_ms)
{
    KEEL_ASSERT(core != NULL && core->core == core);
    keel_mutex_lock(&core->lock);
    if (core->finished_all == 0 && timeout_ms > 0)
        (void)keel_cond_timedwait(&core->done, &core->lock, timeout_ms);
    bool any = core->finished_all > 0;
    keel_mutex_unlock(&core->lock);
    return any;
}

unsigned gate_pool_outstanding(gate_pool *p)
{
    KEEL_ASSERT(p != NULL);
    keel_mutex_lock(&p->core->lock);
    unsigned n = p->outstanding;
    keel_mutex_unlock(&p->core->lock);
    return n;
}

void gate_job_from_config(gate_job_run *j, const gate_matrix_config *m)
{
    KEEL_ASSERT(j != NULL && m != NULL);
    (void)snprintf(j->config, sizeof(j->config), "%s", m->name);
    j->required = m->required;
    j->build = m->build.words;
    j->test = m->test.words;
    j->env = m->env.words;
    j->timeout_ms = m->timeout_s * 1000u;
    j->slurm = m->slurm;
}

/* ---- log retention ------------------------------------------------------------------ */

typedef struct log_file {
    char name[256];
    long long mtime;
    unsigned long long bytes;
} log_file;

static int by_age(const void *a, const void *b)
{
    const log_file *x = (const log_file *)a, *y = (const log_file *)b;
    return x->mtime < y->mtime ? -1 : x->mtime > y->mtime ? 1 : strcmp(x->name, y->name);
}

static bool is_job_log(const char *name)
{
    size_t n = strlen(name);
    return (strncmp(name, "job-", 4) == 0 || strncmp(name, "try-", 4) == 0) && n > 8 &&
           strcmp(name + n - 4, ".log") == 0;
}

size_t gate_logs_prune(const char *dir, unsigned days, unsigned long long max_bytes,
                       const char *const *keep, size_t nkeep)
{
    KEEL_ASSERT(dir != NULL);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    log_file *files = NULL;
    size_t n = 0, cap = 0, removed = 0;
    long long now = (long long)time(NULL);
    unsigned long long total = 0;
    char path[1536];
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        struct stat sb;
        (void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (!is_job_log(e->d_name) || strlen(e->d_name) >= sizeof(files->name) ||
            lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        bool kept = false;
        for (size_t k = 0; k < nkeep; k++)
            kept |= keep[k] != NULL && strcmp(keep[k], path) == 0;
        if (kept)
            continue;
        if (days > 0 && (long long)sb.st_mtime < now - (long long)days * 86400) {
            removed += unlink(path) == 0 ? 1u : 0u;
            continue;
        }
        if (n == cap) {
            size_t ncap = cap > 0 ? cap * 2 : 64;
            void *mem = files;
            keel_status s =
                keel_heap_realloc(KEEL_MODULE_REF(gate_exec), &mem, ncap * sizeof(*files));
            if (!keel_ok(s)) {
                keel_status_ignore(s, "the size cap waits for the next pruning");
                break;
            }
            files = (log_file *)mem;
            cap = ncap;
        }
        (void)snprintf(files[n].name, sizeof(files[n].name), "%s", e->d_name);
        files[n].mtime = (long long)sb.st_mtime;
        files[n].bytes = (unsigned long long)sb.st_size;
        total += files[n].bytes;
        n++;
    }
    (void)closedir(d);
    if (max_bytes > 0 && total > max_bytes && n > 0) {
        qsort(files, n, sizeof(*files), by_age);
        for (size_t i = 0; i < n && total > max_bytes; i++) {
            (void)snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
            if (unlink(path) == 0) {
                removed++;
                total -= files[i].bytes;
            }
        }
    }
    keel_heap_free(KEEL_MODULE_REF(gate_exec), files);
    return removed;
}
