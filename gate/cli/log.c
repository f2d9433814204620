/*
 * log.c - keel-gate's log: a change found by id or branch, a summary of its
 * builds (configuration, attempt, result, duration, the verdict on its tree),
 * the end of the log of the job that decided it, or every job's whole log
 * (--full); text or JSON.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate_int.h"
#include "signature.h"
#include "query.h"
#include "store.h"
#include "text.h"

enum {
    JOBS_FIRST = 256, /* room for the jobs of one change that log reads first (doubled) */
    BRANCH_MAX = 64,  /* the changes of one branch that a lookup reads */
    CAND_SHOWN = 8,   /* the changes of a candidate that are listed */
    TAIL_LINES = 20,  /* the decisive failure's last lines */
    TAIL_BYTES = 8192 /* read from the end of its log for them */
};

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

keel_status gate_change_id_parse(const char *what, long long *id)
{
    KEEL_ASSERT(what != NULL && id != NULL);
    *id = 0;
    if (!all_digits(what))
        return KEEL_OK;
    errno = 0;
    long long v = strtoll(what, NULL, 10);
    if (v <= 0 || errno == ERANGE)
        return keel_status_with_str(KEEL_ERR(KEEL_E_INVAL,
                                             "'%s' is not a change id (a positive number up to "
                                             "%lld)",
                                             what, LLONG_MAX),
                                    "change", what);
    *id = v;
    return KEEL_OK;
}

keel_status gate_find_change(gate *g, const char *what, long long *id)
{
    KEEL_ASSERT(g != NULL && what != NULL && id != NULL);
    keel_status s = gate_change_id_parse(what, id);
    if (!keel_ok(s) || *id > 0)
        return s;
    s = gate_branch_check(what);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "'%s' is neither a change id nor a branch name", what);
    void *mem = NULL;
    s = keel_heap_calloc(GATE_HEAP, BRANCH_MAX, sizeof(gate_change), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "looking for the changes of branch '%s'", what);
    gate_change *c = (gate_change *)mem;
    size_t n = 0;
    s = gate_store_branch_changes(g->store, what, g->target, c, BRANCH_MAX, &n);
    /* sorted: this gate's target first, then the active change, then the newest */
    size_t targets = 0, active = 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen = seen || strcmp(c[k].target, c[i].target) == 0;
        targets += seen ? 0 : 1;
        active += c[i].state <= GATE_CHANGE_TESTING ? 1 : 0;
    }
    if (keel_ok(s) && n == 0)
        s = keel_status_with_str(KEEL_ERR(KEEL_E_NOTFOUND,
                                          "no change of branch '%s' (submitted as 'keel-gate "
                                          "submit %s'?); 'keel-gate status' lists them",
                                          what, what),
                                 "branch", what);
    else if (keel_ok(s) &&
             (strcmp(c[0].target, g->target) == 0 || active == 1 || (active == 0 && targets == 1)))
        *id = c[0].id;
    else if (keel_ok(s)) {
        char list[1024];
        size_t len = 0;
        list[0] = '\0';
        for (size_t i = 0; i < n && len < sizeof(list); i++) {
            int w = snprintf(list + len, sizeof(list) - len, "%schange %lld for '%s' (%s)",
                             i == 0 ? "" : ", ", c[i].id, c[i].target,
                             gate_change_state_name(c[i].state));
            len += w > 0 ? (size_t)w : 0;
        }
        s = keel_status_with_str(
            KEEL_ERR(KEEL_E_INVAL,
                     "branch '%s' has no change for '%s' and %s of other targets: %s; give the "
                     "change's id, or --target",
                     what, g->target, active > 1 ? "active changes" : "changes", list),
            "branch", what);
    }
    keel_heap_free(GATE_HEAP, c);
    return s;
}

/* A job that ran to a result on its tree (not running, cancelled, lost, or the gate's failure). */
static bool counted(const gate_job *j)
{
    return strcmp(j->state, "running") != 0 && strcmp(j->state, "cancelled") != 0 &&
           strcmp(j->state, "lost") != 0 && strcmp(j->state, "gate-error") != 0;
}

/*
 * The verdict on job j's configuration on its candidate's tree, from every
 * run it had there: "flaky" (failed, then passed), "failed" (every run),
 * "passed", or "" (none ran to a result).
 */
static const char *verdict(const gate_job *jobs, size_t n, const gate_job *j, unsigned *runs,
                           unsigned *failures)
{
    *runs = *failures = 0;
    for (size_t i = 0; i < n; i++)
        if (jobs[i].candidate == j->candidate && strcmp(jobs[i].config, j->config) == 0 &&
            counted(&jobs[i])) {
            (*runs)++;
            *failures += strcmp(jobs[i].state, "passed") != 0 ? 1u : 0u;
        }
    if (*runs == 0)
        return "";
    return *failures == 0 ? "passed" : *failures == *runs ? "failed" : "flaky";
}

/*
 * The job that decided a rejection: the one whose log the reason names (the
 * gate names the decisive job's log in it), else the last that failed.  -1:
 * none (not rejected, or no job failed).
 */
static long decisive(const gate_change *c, const gate_job *jobs, size_t n)
{
    if (c->state != GATE_CHANGE_REJECTED)
        return -1;
    long last = -1;
    for (size_t i = n; i-- > 0;) {
        if (jobs[i].log[0] != '\0' && strstr(c->reason, jobs[i].log) != NULL)
            return (long)i;
        if (last < 0 && counted(&jobs[i]) && strcmp(jobs[i].state, "passed") != 0)
            last = (long)i;
    }
    return last;
}

/* A job's log to f: escaped for a terminal (its lines and tabs kept), or as it is (`raw`). */
static void print_log(FILE *in, FILE *f, bool raw)
{
    char chunk[4096];
    size_t have = 0, got;
    while ((got = fread(chunk + have, 1, sizeof(chunk) - have, in)) > 0) {
        have += got;
        size_t took = raw ? (size_t)fwrite(chunk, 1, have, f)
                          : gate_text_fput(f, chunk, have, GATE_TEXT_BLOCK | GATE_TEXT_MORE);
        if (took == 0 && raw)
            return;                                /* the output is gone */
        memmove(chunk, chunk + took, have - took); /* the start of a character cut by the read */
        have -= took;
    }
    if (have > 0 && !raw)
        (void)gate_text_fput(f, chunk, have, GATE_TEXT_BLOCK);
}

/* How long job j took: its steps' time, else its seconds in the store; -1 while it runs. */
static long long duration_ms(const gate_job *j)
{
    if (j->elapsed_ms >= 0)
        return j->elapsed_ms;
    return j->finished_at >= j->started_at && j->finished_at > 0
               ? (j->finished_at - j->started_at) * 1000
               : -1;
}

static void json_log(gate *g, FILE *f, const gate_change *c, const gate_job *jobs, size_t n, long d,
                     const char *tail)
{
    (void)fprintf(f, "{\"change\":");
    gate_json_change(f, c, true);
    (void)fprintf(f, ",\"builds\":[");
    for (size_t i = 0; i < n; i++) {
        const gate_job *j = &jobs[i];
        unsigned runs = 0, failures = 0;
        const char *v = verdict(jobs, n, j, &runs, &failures);
        long long ids[CAND_SHOWN];
        size_t total = 0;
        keel_status s =
            gate_store_candidate_changes(g->store, j->candidate, ids, CAND_SHOWN, &total);
        if (!keel_ok(s)) {
            keel_status_ignore(s, "the candidate's changes are left out");
            total = 0;
        }
        (void)fprintf(f, "%s{\"job\":%lld,\"candidate\":%lld,\"changes\":[", i == 0 ? "" : ",",
                      j->id, j->candidate);
        for (size_t k = 0; k < total && k < CAND_SHOWN; k++)
            (void)fprintf(f, "%s%lld", k == 0 ? "" : ",", ids[k]);
        (void)fprintf(f, "],\"candidate_size\":%zu,\"config\":", total);
        gate_json_fput(f, j->config);
        (void)fprintf(f, ",\"attempt\":%d,\"result\":", j->attempt);
        gate_json_fput(f, j->state);
        (void)fprintf(f,
                      ",\"exit_code\":%d,\"started_at\":%lld,\"finished_at\":%lld,"
                      "\"duration_ms\":%lld,\"verdict\":",
                      j->exit_code, j->started_at, j->finished_at, duration_ms(j));
        gate_json_fput(f, v);
        (void)fprintf(f, ",\"runs\":%u,\"failures\":%u,\"log\":", runs, failures);
        gate_json_fput(f, j->log);
        (void)fputc('}', f);
    }
    (void)fprintf(f, "],\"decisive\":");
    if (d < 0) {
        (void)fprintf(f, "null}\n");
        return;
    }
    (void)fprintf(f, "{\"job\":%lld,\"tail\":", jobs[d].id);
    gate_json_fput(f, tail);
    (void)fprintf(f, "}}\n");
}

/* The builds of the change: its candidates, each with its jobs. */
static void summary(gate *g, FILE *f, const gate_change *c, const gate_job *jobs, size_t n)
{
    gate_text_printf(f, "builds (%zu job%s, oldest first):\n", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++) {
        bool first = true;
        for (size_t k = 0; k < i && first; k++)
            first = jobs[k].candidate != jobs[i].candidate;
        if (!first)
            continue;
        long long ids[CAND_SHOWN];
        size_t total = 0;
        keel_status s =
            gate_store_candidate_changes(g->store, jobs[i].candidate, ids, CAND_SHOWN, &total);
        char which[256];
        if (!keel_ok(s)) {
            gate_fmt(which, sizeof(which), "(its changes: %s)", keel_status_message(s));
            keel_status_free(s);
        } else if (total == 1 && ids[0] == c->id) {
            gate_fmt(which, sizeof(which), "change %lld alone", c->id);
        } else {
            char list[160];
            gate_ids_fmt(list, sizeof(list), ids,
                         total < (size_t)CAND_SHOWN ? total : (size_t)CAND_SHOWN, total);
            gate_fmt(which, sizeof(which), "a batch of %zu: changes %s", total, list);
        }
        gate_text_printf(f, "  candidate %lld, %s:\n", jobs[i].candidate, which);
        for (size_t k = i; k < n; k++) {
            const gate_job *j = &jobs[k];
            if (j->candidate != jobs[i].candidate)
                continue;
            unsigned runs = 0, failures = 0;
            const char *v = verdict(jobs, n, j, &runs, &failures);
            char result[48], took[48], word[64] = "";
            gate_fmt(result, sizeof(result), "%s (exit %d)", j->state, j->exit_code);
            if (strcmp(j->state, "running") == 0 || strcmp(j->state, "passed") == 0)
                gate_fmt(result, sizeof(result), "%s", j->state);
            gate_duration_fmt(took, sizeof(took), duration_ms(j));
            if (strcmp(v, "flaky") == 0)
                gate_fmt(word, sizeof(word), "flaky: failed %u of %u runs", failures, runs);
            else if (strcmp(v, "failed") == 0)
                gate_fmt(word, sizeof(word), "failed %u of %u run%s", failures, runs,
                         runs == 1 ? "" : "s");
            else
                gate_fmt(word, sizeof(word), "%s", v);
            gate_text_printf(f, "    job %-6lld %-20s attempt %-2d %-20s %10s  %s\n", j->id,
                             j->config, j->attempt, result, took, word);
        }
    }
}

/* Every job of change `id`, in the order they started (*jobs: free it; no cap). */
static keel_status change_jobs(gate *g, long long id, gate_job **jobs, size_t *n)
{
    *jobs = NULL;
    *n = 0;
    keel_status s = KEEL_OK;
    for (size_t cap = JOBS_FIRST; keel_ok(s); cap *= 2) {
        void *mem = NULL;
        s = keel_heap_calloc(GATE_HEAP, cap, sizeof(gate_job), &mem);
        if (keel_ok(s))
            s = gate_store_jobs(g->store, NULL, id, (gate_job *)mem, cap, n);
        if (keel_ok(s) && *n < cap) {
            *jobs = (gate_job *)mem;
            return KEEL_OK;
        }
        keel_heap_free(GATE_HEAP, mem); /* full: there may be more, read them all again */
    }
    *n = 0;
    return s;
}

keel_status gate_log(gate *g, long long id, FILE *f, unsigned flags)
{
    KEEL_ASSERT(g != NULL && f != NULL);
    bool raw = (flags & GATE_LOG_RAW) != 0;
    gate_change c;
    keel_status s = gate_store_get(g->store, id, &c);
    if (!keel_ok(s))
        return s;
    void *tmem = NULL;
    gate_job *jobs = NULL;
    size_t n = 0;
    s = change_jobs(g, id, &jobs, &n);
    if (keel_ok(s))
        s = keel_heap_alloc(GATE_HEAP, TAIL_BYTES + 2, &tmem);
    if (!keel_ok(s)) {
        keel_heap_free(GATE_HEAP, jobs);
        return KEEL_CONTEXT(s, "reading the jobs of change %lld", id);
    }
    char *tail = (char *)tmem;
    long d = keel_ok(s) ? decisive(&c, jobs, n) : -1;
    bool whole = true,
         have = d >= 0 && gate_log_tail(jobs[d].log, TAIL_LINES, tail, TAIL_BYTES + 2, &whole);
    if (!have)
        tail[0] = '\0';
    if (keel_ok(s) && (flags & GATE_LOG_JSON) != 0) {
        json_log(g, f, &c, jobs, n, d, tail);
    } else if (keel_ok(s)) {
        const char *state = gate_change_state_name(c.state);
        bool said = c.reason[0] == '\0' || strcmp(c.reason, state) == 0; /* "landed: landed" */
        gate_text_printf(f, "change %lld '%s' at %.12s for '%s': %s%s%s\n", c.id, c.branch, c.head,
                         c.target, state, said ? "" : ": ", said ? "" : c.reason);
        summary(g, f, &c, jobs, n);
        if ((flags & GATE_LOG_FULL) != 0) {
            for (size_t i = 0; i < n; i++) {
                gate_text_printf(f,
                                 "==== job %lld: candidate %lld, '%s', attempt %d: %s (exit %d) "
                                 "====\n",
                                 jobs[i].id, jobs[i].candidate, jobs[i].config, jobs[i].attempt,
                                 jobs[i].state, jobs[i].exit_code);
                FILE *in = jobs[i].log[0] != '\0' ? fopen(jobs[i].log, "r") : NULL;
                if (in == NULL) {
                    gate_text_printf(f, "(no log)\n");
                    continue;
                }
                print_log(in, f, raw);
                (void)fclose(in);
            }
        } else if (d >= 0) {
            const gate_job *j = &jobs[d];
            gate_text_printf(f,
                             "decisive failure: job %lld, '%s' attempt %d of candidate %lld, %s "
                             "(exit %d); %s (log %s):\n",
                             j->id, j->config, j->attempt, j->candidate, j->state, j->exit_code,
                             !have   ? "its log is gone"
                             : whole ? "its whole log"
                                     : "its last lines",
                             j->log);
            if (raw)
                (void)fputs(tail, f);
            else
                (void)gate_text_fput(f, tail, strlen(tail), GATE_TEXT_BLOCK);
        }
        if ((flags & GATE_LOG_FULL) == 0 && n > 0)
            gate_text_printf(f, "('keel-gate log --full %lld' prints every job's whole log)\n",
                             c.id);
    }
    keel_heap_free(GATE_HEAP, tail);
    keel_heap_free(GATE_HEAP, jobs);
    return s;
}
