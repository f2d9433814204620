/*
 * query.c - keel-gate's read-only commands: status (text or JSON) and log.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gate_int.h"
#include "store.h"
#include "text.h"

enum { LIST_MAX = 512, RECENT = 10, JOBS_MAX = 1024 };

static void json_change(FILE *f, const gate_change *c, bool first)
{
    (void)fprintf(f, "%s{\"id\":%lld,\"branch\":", first ? "" : ",", c->id);
    gate_json_fput(f, c->branch);
    (void)fprintf(f, ",\"head\":");
    gate_json_fput(f, c->head);
    (void)fprintf(f,
                  ",\"priority\":%d,\"state\":\"%s\",\"candidate\":%lld,\"submitted_at\":%lld,"
                  "\"reason\":",
                  c->priority, gate_change_state_name(c->state), c->candidate, c->submitted_at);
    gate_json_fput(f, c->reason);
    (void)fputc('}', f);
}

/* The number after "key": in [p, end), into *out; false when there is none. */
static bool json_number(const char *p, const char *end, const char *key, unsigned long long *out)
{
    char pattern[48];
    int n = snprintf(pattern, sizeof(pattern), "\"%s\":", key);
    const char *at = strstr(p, pattern);
    if (n <= 0 || at == NULL || at >= end)
        return false;
    const char *digits = at + n;
    char *stop = NULL;
    errno = 0;
    *out = strtoull(digits, &stop, 10);
    return stop != digits && errno == 0;
}

/*
 * The heap stats the last run published (<state>.d/heaps.json): "memory" in
 * JSON (null when none), a line per module heap in text.
 */
static void print_memory(const gate *g, FILE *f, bool json)
{
    char path[GATE_DIR_MAX + 32];
    gate_fmt(path, sizeof(path), "%s/heaps.json", g->tdir);
    char text[32768];
    size_t n = 0;
    FILE *in = fopen(path, "r");
    if (in != NULL) {
        n = fread(text, 1, sizeof(text) - 1, in);
        (void)fclose(in);
    }
    text[n] = '\0';
    unsigned long long pid = 0, at = 0;
    const char *stats = strstr(text, ",\"stats\":{\"heaps\":[");
    /* whole (the run renames it into place) and ours */
    bool ok = n > 2 && n < sizeof(text) - 1 && text[n - 1] == '\n' && stats != NULL &&
              json_number(text, stats, "pid", &pid) && json_number(text, stats, "time", &at);
    bool running = ok && pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
    if (json) {
        if (!ok) {
            (void)fprintf(f, ",\"memory\":null");
            return;
        }
        text[n - 1] = '\0';
        (void)fprintf(f, ",\"memory\":{\"running\":%s,%s", running ? "true" : "false", text + 1);
        return;
    }
    if (!ok) {
        gate_text_printf(f, "memory: no run has published its heaps yet\n");
        return;
    }
    gate_text_printf(f, "memory of the run (pid %llu, %s, %lld s ago), by module heap:\n", pid,
                     running ? "running" : "ended", (long long)time(NULL) - (long long)at);
    static const char entry[] = "{\"module\":\"";
    for (const char *p = strstr(stats, entry); p != NULL; p = strstr(p + 1, entry)) {
        const char *name = p + sizeof(entry) - 1;
        const char *name_end = strchr(name, '"');
        const char *end = strchr(p, '}');
        unsigned long long live, peak, allocs, failures, quota;
        if (name_end == NULL || end == NULL || !json_number(p, end, "live_bytes", &live) ||
            !json_number(p, end, "peak_bytes", &peak) ||
            !json_number(p, end, "allocations", &allocs) ||
            !json_number(p, end, "failures", &failures) || !json_number(p, end, "quota", &quota))
            continue;
        char q[48] = "";
        if (quota > 0)
            gate_fmt(q, sizeof(q), ", quota %llu", quota);
        gate_text_printf(
            f, "  %-12.*s %11llu bytes live %11llu peak %9llu allocations %llu failures%s\n",
            (int)(name_end - name), name, live, peak, allocs, failures, q);
    }
}

static keel_status list(gate *g, int state, gate_change *out, size_t max, size_t *n)
{
    return gate_store_changes(g->store, g->target, state, out, max, n);
}

keel_status gate_status(gate *g, FILE *f, bool json)
{
    KEEL_ASSERT(g != NULL && f != NULL);
    void *bmem = NULL, *jmem = NULL;
    keel_status s = keel_heap_calloc(GATE_HEAP, LIST_MAX, sizeof(gate_change), &bmem);
    if (keel_ok(s))
        s = keel_heap_calloc(GATE_HEAP, JOBS_MAX, sizeof(gate_job), &jmem);
    if (!keel_ok(s)) {
        keel_heap_free(GATE_HEAP, bmem);
        return KEEL_CONTEXT(s, "reading the status");
    }
    gate_change *buf = (gate_change *)bmem;
    gate_job *jobs = (gate_job *)jmem;
    char tip[GATE_HEX] = "", unreachable[512] = "";
    s = gate_branch_head(g->repo, g->target, tip);
    if (!keel_ok(s) && gate_repo_is_remote(g->repo) && KEEL_IS(s, KEEL_E_IO)) {
        /* the queue is local: shown all the same, the tip as the mirror last saw it */
        (void)snprintf(unreachable, sizeof(unreachable), "%s", keel_status_message(s));
        keel_status_free(s);
        s = gate_branch_known(g->repo, g->target, tip);
    }
    long long builds = 0;
    if (keel_ok(s))
        s = gate_store_count_builds(g->store, &builds);
    size_t nq = 0, njobs = 0;
    if (keel_ok(s))
        s = gate_store_queued(g->store, g->target, (long long)time(NULL), 3600, buf, LIST_MAX, &nq);
    if (keel_ok(s))
        s = gate_store_jobs(g->store, g->target, 0, jobs, JOBS_MAX, &njobs);
    if (!keel_ok(s)) {
        keel_heap_free(GATE_HEAP, buf);
        keel_heap_free(GATE_HEAP, jobs);
        return s;
    }
    static const gate_change_state sections[] = {GATE_CHANGE_TESTING, GATE_CHANGE_LANDED,
                                                 GATE_CHANGE_REJECTED, GATE_CHANGE_CONFLICT};
    static const char *const names[] = {"testing", "landed", "rejected", "conflict"};
    static const char *const headings[] = {"testing", "recently landed", "recently rejected",
                                           "recent conflicts"};
    if (json) {
        (void)fprintf(f, "{\"target\":");
        gate_json_fput(f, g->target);
        (void)fprintf(f, ",\"tip\":");
        gate_json_fput(f, tip);
        (void)fprintf(f, ",\"builds\":%lld,", builds);
        if (unreachable[0] != '\0') {
            (void)fprintf(f, "\"remote_error\":");
            gate_json_fput(f, unreachable);
            (void)fprintf(f, ",");
        }
        (void)fprintf(f, "\"queued\":[");
        for (size_t i = 0; i < nq; i++)
            json_change(f, &buf[i], i == 0);
        (void)fprintf(f, "]");
    } else {
        gate_text_printf(f, "target '%s' at %.12s%s; %lld builds so far\n", g->target, tip,
                         unreachable[0] != '\0' ? " (last known)" : "", builds);
        if (unreachable[0] != '\0')
            gate_text_printf(f, "warning: %s\n", unreachable);
        gate_text_printf(f, "queued (%zu):\n", nq);
        for (size_t i = 0; i < nq; i++)
            gate_text_printf(f, "  %6lld  %-32s %.12s  priority %d\n", buf[i].id, buf[i].branch,
                             buf[i].head, buf[i].priority);
    }
    for (size_t k = 0; keel_ok(s) && k < sizeof(sections) / sizeof(sections[0]); k++) {
        size_t n = 0;
        s = list(g, (int)sections[k], buf, k == 0 ? LIST_MAX : RECENT, &n);
        if (!keel_ok(s))
            break;
        if (json) {
            (void)fprintf(f, ",\"%s\":[", names[k]);
            for (size_t i = 0; i < n; i++)
                json_change(f, &buf[i], i == 0);
            (void)fprintf(f, "]");
        } else {
            gate_text_printf(f, "%s (%zu):\n", headings[k], n);
            for (size_t i = 0; i < n; i++)
                gate_text_printf(f, "  %6lld  %-32s %.12s  %s\n", buf[i].id, buf[i].branch,
                                 buf[i].head, buf[i].reason);
        }
    }
    if (keel_ok(s)) {
        if (json) {
            (void)fprintf(f, ",\"running\":[");
            for (size_t i = 0; i < njobs; i++) {
                (void)fprintf(f,
                              "%s{\"job\":%lld,\"candidate\":%lld,\"config\":", i == 0 ? "" : ",",
                              jobs[i].id, jobs[i].candidate);
                gate_json_fput(f, jobs[i].config);
                (void)fprintf(f, ",\"attempt\":%d,\"started_at\":%lld}", jobs[i].attempt,
                              jobs[i].started_at);
            }
            (void)fprintf(f, "]");
            print_memory(g, f, true);
            (void)fprintf(f, "}\n");
        } else {
            gate_text_printf(f, "running jobs (%zu):\n", njobs);
            for (size_t i = 0; i < njobs; i++)
                gate_text_printf(f, "  job %lld: candidate %lld '%s' attempt %d\n", jobs[i].id,
                                 jobs[i].candidate, jobs[i].config, jobs[i].attempt);
            print_memory(g, f, false);
        }
    }
    keel_heap_free(GATE_HEAP, buf);
    keel_heap_free(GATE_HEAP, jobs);
    return s;
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

keel_status gate_log(gate *g, long long id, FILE *f, bool raw)
{
    KEEL_ASSERT(g != NULL && f != NULL);
    gate_change c;
    keel_status s = gate_store_get(g->store, id, &c);
    if (!keel_ok(s))
        return s;
    void *mem = NULL;
    s = keel_heap_calloc(GATE_HEAP, JOBS_MAX, sizeof(gate_job), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the jobs of change %lld", id);
    gate_job *jobs = (gate_job *)mem;
    size_t n = 0;
    s = gate_store_jobs(g->store, NULL, id, jobs, JOBS_MAX, &n);
    if (keel_ok(s)) {
        gate_text_printf(f, "change %lld '%s' at %.12s: %s%s%s; %zu jobs\n", c.id, c.branch, c.head,
                         gate_change_state_name(c.state), c.reason[0] != '\0' ? ": " : "", c.reason,
                         n);
        for (size_t i = 0; i < n; i++) {
            gate_text_printf(f,
                             "==== job %lld: candidate %lld, '%s', attempt %d: %s (exit %d) ====\n",
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
    }
    keel_heap_free(GATE_HEAP, jobs);
    return s;
}
