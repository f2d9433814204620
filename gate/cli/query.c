/*
 * query.c - keel-gate's status (text or JSON); log is in log.c.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backout.h"
#include "ccache.h"
#include "flows_turn.h"
#include "gate_int.h"
#include "query.h"
#include "store_web.h"
#include "store.h"
#include "text.h"

enum { LIST_MAX = 512, RECENT = 10, JOBS_MAX = 1024, CAND_SHOWN = 8 };

void gate_json_change(FILE *f, const gate_change *c, bool first)
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
/* One configuration's compiler cache (gate_ccache_each): its hit rate, files and size. */
typedef struct ccache_out {
    FILE *f;
    bool json;
    size_t n;
} ccache_out;

static void print_one_ccache(void *arg, const char *name, const gate_ccache_stats *st)
{
    ccache_out *o = (ccache_out *)arg;
    unsigned long long calls = st->hits + st->misses;
    double rate = calls > 0 ? 100.0 * (double)st->hits / (double)calls : 0.0;
    if (o->json) {
        (void)fprintf(o->f, "%s{\"config\":", o->n == 0 ? "" : ",");
        gate_json_fput(o->f, name);
        (void)fprintf(o->f,
                      ",\"hits\":%llu,\"misses\":%llu,\"hit_rate\":%.1f,\"files\":%llu,"
                      "\"bytes\":%llu}",
                      st->hits, st->misses, rate, st->files, st->bytes);
    } else {
        if (o->n == 0)
            gate_text_printf(o->f, "compiler caches:\n");
        char size[32];
        gate_size_text(st->bytes, size, sizeof(size));
        gate_text_printf(o->f, "  %s%*s %5.1f%% hits (%llu of %llu compilations), %llu files, %s\n",
                         name, gate_text_pad(name, 24), "", rate, st->hits, calls, st->files, size);
    }
    o->n++;
}

/* Each configuration's compiler cache (ccache-size; gate/exec/ccache.h); nothing when none. */
static void print_ccache(const gate *g, FILE *f, bool json)
{
    ccache_out o = {f, json, 0};
    if (json)
        (void)fprintf(f, ",\"ccache\":[");
    (void)gate_ccache_each(g->work, print_one_ccache, &o); /* the heading with the first */
    if (json)
        (void)fprintf(f, "]");
}

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

void gate_duration_fmt(char *buf, size_t size, long long ms)
{
    if (ms < 0)
        gate_fmt(buf, size, "?");
    else if (ms < 60000)
        gate_fmt(buf, size, "%.1f s", (double)ms / 1000.0);
    else if (ms < 3600000)
        gate_fmt(buf, size, "%lld min %lld s", ms / 60000, ms / 1000 % 60);
    else
        gate_fmt(buf, size, "%lld h %lld min", ms / 3600000, ms / 60000 % 60);
}

void gate_ids_fmt(char *buf, size_t size, const long long *ids, size_t n, size_t total)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < size; i++) {
        int w = snprintf(buf + len, size - len, "%s%lld", i == 0 ? "" : ", ", ids[i]);
        len += w > 0 ? (size_t)w : 0;
    }
    if (total > n && len < size)
        (void)snprintf(buf + len, size - len, ", ... (%zu in all)", total);
}

/* Who runs the queue: the holder of its lock (qlock.h), if any. */
static keel_status run_holder(const gate *g, gate_qlock_holder *h)
{
    char lock[GATE_DIR_MAX + 16];
    gate_fmt(lock, sizeof(lock), "%s/run.lock", g->tdir);
    return gate_qlock_probe(lock, h);
}

/* The changes of a running job's candidate, into buf (text) and ids. */
static keel_status job_changes(gate *g, const gate_job *j, long long *ids, size_t *n, size_t *total)
{
    keel_status s = gate_store_candidate_changes(g->store, j->candidate, ids, CAND_SHOWN, total);
    *n = *total < (size_t)CAND_SHOWN ? *total : (size_t)CAND_SHOWN;
    return s;
}

/* Unix seconds as "2026-12-02 22:03:49 UTC" ("?" when it cannot be). */
static void utc_fmt(char *buf, size_t size, long long t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    (void)snprintf(buf, size, "?");
    if (gmtime_r(&tt, &tm) != NULL)
        (void)strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/*
 * The gate, how far the queue is (decided out of all since the run started,
 * or ever when none runs) and the running jobs, with their elapsed time.
 */
static keel_status print_progress(gate *g, FILE *f, bool json, const gate_job *jobs, size_t njobs)
{
    gate_qlock_holder h;
    keel_status s = run_holder(g, &h);
    long long counts[GATE_CHANGE_STATES];
    long long now = (long long)time(NULL);
    long long since = h.held ? h.since : 0;
    if (keel_ok(s))
        s = gate_store_count_changes(g->store, g->target, since, counts);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the queue's progress");
    long long active = counts[GATE_CHANGE_QUEUED] + counts[GATE_CHANGE_TESTING];
    long long decided = counts[GATE_CHANGE_LANDED] + counts[GATE_CHANGE_REJECTED] +
                        counts[GATE_CHANGE_CONFLICT] + counts[GATE_CHANGE_CANCELLED];
    long long running_s = h.held && h.since > 0 && now > h.since ? now - h.since : 0;
    char took[48];
    if (json) {
        (void)fprintf(f, ",\"gate\":{\"running\":%s", h.held ? "true" : "false");
        if (h.held) {
            (void)fprintf(f, ",\"pid\":%lld,\"host\":", h.pid);
            gate_json_fput(f, h.host);
            (void)fprintf(f, ",\"since\":%lld,\"running_s\":%lld", h.since, running_s);
        }
        (void)fprintf(f, "},\"changes\":{\"since\":%lld,\"decided\":%lld,\"total\":%lld", since,
                      decided, decided + active);
        for (int k = 0; k < (int)GATE_CHANGE_STATES; k++)
            (void)fprintf(f, ",\"%s\":%lld", gate_change_state_name((gate_change_state)k),
                          counts[k]);
        (void)fprintf(f, "},\"running\":[");
    } else {
        if (h.held && h.since > 0) {
            char when[64];
            utc_fmt(when, sizeof(when), h.since);
            gate_duration_fmt(took, sizeof(took), running_s * 1000);
            gate_text_printf(f, "gate: running for %s (pid %lld on host '%s', since %s)\n", took,
                             h.pid, h.host, when);
        } else if (h.held) {
            gate_text_printf(f, "gate: starting\n");
        } else {
            gate_text_printf(f, "gate: not running ('keel-gate run' runs the queue)\n");
        }
        gate_text_printf(f,
                         "changes: %lld of %lld decided%s (%lld landed, %lld rejected, %lld "
                         "conflicts, %lld cancelled); %lld queued, %lld testing\n",
                         decided, decided + active, h.held ? " since the run started" : "",
                         counts[GATE_CHANGE_LANDED], counts[GATE_CHANGE_REJECTED],
                         counts[GATE_CHANGE_CONFLICT], counts[GATE_CHANGE_CANCELLED],
                         counts[GATE_CHANGE_QUEUED], counts[GATE_CHANGE_TESTING]);
        gate_text_printf(f, "running jobs (%zu):\n", njobs);
    }
    for (size_t i = 0; keel_ok(s) && i < njobs; i++) {
        const gate_job *j = &jobs[i];
        long long ids[CAND_SHOWN];
        size_t n = 0, total = 0;
        s = job_changes(g, j, ids, &n, &total);
        if (!keel_ok(s))
            break;
        long long elapsed = now > j->started_at ? now - j->started_at : 0;
        if (json) {
            (void)fprintf(f, "%s{\"job\":%lld,\"candidate\":%lld,\"config\":", i == 0 ? "" : ",",
                          j->id, j->candidate);
            gate_json_fput(f, j->config);
            (void)fprintf(f, ",\"attempt\":%d,\"started_at\":%lld,\"elapsed_s\":%lld,\"changes\":[",
                          j->attempt, j->started_at, elapsed);
            for (size_t k = 0; k < n; k++)
                (void)fprintf(f, "%s%lld", k == 0 ? "" : ",", ids[k]);
            (void)fprintf(f, "]}");
            continue;
        }
        char which[160];
        gate_ids_fmt(which, sizeof(which), ids, n, total);
        gate_duration_fmt(took, sizeof(took), elapsed * 1000);
        gate_text_printf(f, "  job %lld: '%s' for %s, attempt %d, candidate %lld (change%s %s)\n",
                         j->id, j->config, took, j->attempt, j->candidate, total == 1 ? "" : "s",
                         which);
    }
    if (json)
        (void)fprintf(f, "]");
    return s;
}

/*
 * One gate, several targets ([gate] targets of this target's configuration):
 * each target's tip and how many of its changes are queued and testing, a
 * line each (text), or "targets" (JSON); nothing for a gate of one target.
 * buf: LIST_MAX changes of room.
 */
static keel_status print_targets(gate *g, FILE *f, bool json, gate_change *buf)
{
    gate_config *own = NULL;
    const gate_config *cfg = gate_tip_config(g, &own);
    size_t n = cfg != NULL ? cfg->targets.n : 0;
    keel_status s = KEEL_OK;
    if (n > 1 && json)
        (void)fprintf(f, ",\"targets\":[");
    else if (n > 1)
        gate_text_printf(f,
                         "targets (%zu, one keel-gate run guards each; status --target NAME: "
                         "one):\n",
                         n);
    for (size_t i = 0; keel_ok(s) && n > 1 && i < n; i++) {
        const char *t = cfg->targets.words[i];
        char tip[GATE_HEX] = "";
        keel_status b = gate_branch_known(g->repo, t, tip);
        if (!keel_ok(b)) {
            keel_status_ignore(b, "a target without a branch: shown as such");
            tip[0] = '\0';
        }
        size_t queued = 0, testing = 0;
        s = gate_store_changes(g->store, t, GATE_CHANGE_QUEUED, buf, LIST_MAX, &queued);
        if (keel_ok(s))
            s = gate_store_changes(g->store, t, GATE_CHANGE_TESTING, buf, LIST_MAX, &testing);
        if (!keel_ok(s))
            break;
        if (json) {
            (void)fprintf(f, "%s{\"target\":", i > 0 ? "," : "");
            gate_json_fput(f, t);
            (void)fprintf(f, ",\"tip\":");
            gate_json_fput(f, tip);
            (void)fprintf(f, ",\"queued\":%zu,\"testing\":%zu}", queued, testing);
        } else {
            gate_text_printf(f, "  %s%*s %-14.12s queued %zu, testing %zu\n", t,
                             gate_text_pad(t, 24), "", tip[0] != '\0' ? tip : "(no branch)", queued,
                             testing);
        }
    }
    if (keel_ok(s) && n > 1 && json)
        (void)fprintf(f, "]");
    gate_config_free(own);
    return s;
}

keel_status gate_status(gate *g, FILE *f, unsigned flags)
{
    KEEL_ASSERT(g != NULL && f != NULL);
    bool json = (flags & GATE_STATUS_JSON) != 0;
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
    bool paused = false;
    char pause_reason[GATE_REASON_MAX];
    long long paused_since = 0;
    if (keel_ok(s))
        s = gate_store_paused(g->store, g->target, &paused, pause_reason, sizeof(pause_reason),
                              &paused_since);
    bool held = false; /* hold-when-red (gate/levels/backout.h) */
    char held_why[GATE_REASON_MAX] = "";
    if (keel_ok(s))
        s = gate_backout_hold(g, &held, held_why, sizeof(held_why));
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
        (void)fprintf(f, ",\"builds\":%lld,\"paused\":", builds);
        if (paused) {
            (void)fprintf(f, "{\"reason\":");
            gate_json_fput(f, pause_reason);
            (void)fprintf(f, ",\"since\":%lld}", paused_since);
        } else {
            (void)fprintf(f, "null");
        }
        (void)fprintf(f, ",\"held\":");
        if (held)
            gate_json_fput(f, held_why);
        else
            (void)fprintf(f, "null");
        if (unreachable[0] != '\0') {
            (void)fprintf(f, ",\"remote_error\":");
            gate_json_fput(f, unreachable);
        }
    } else {
        gate_text_printf(f, "target '%s' at %.12s%s; %lld builds so far\n", g->target, tip,
                         unreachable[0] != '\0' ? " (last known)" : "", builds);
        if (unreachable[0] != '\0')
            gate_text_printf(f, "warning: %s\n", unreachable);
        if (paused) {
            char when[64];
            utc_fmt(when, sizeof(when), paused_since);
            gate_text_printf(f,
                             "queue: PAUSED since %s: %s (no new candidate is built until it "
                             "resumes: POST /api/v1/queue/resume)\n",
                             when, pause_reason);
        }
        if (held)
            gate_text_printf(f, "queue: %s\n", held_why);
    }
    s = print_targets(g, f, json, buf);
    if (keel_ok(s))
        s = print_progress(g, f, json, jobs, njobs);
    if (keel_ok(s) && json) {
        (void)fprintf(f, ",\"queued\":[");
        for (size_t i = 0; i < nq; i++)
            gate_json_change(f, &buf[i], i == 0);
        (void)fprintf(f, "]");
    } else if (keel_ok(s)) {
        gate_text_printf(f, "queued (%zu):\n", nq);
        for (size_t i = 0; i < nq; i++)
            gate_text_printf(f, "  %6lld  %s%*s %.12s  priority %d\n", buf[i].id, buf[i].branch,
                             gate_text_pad(buf[i].branch, 32), "", buf[i].head, buf[i].priority);
    }
    for (size_t k = 0; keel_ok(s) && k < sizeof(sections) / sizeof(sections[0]); k++) {
        size_t n = 0;
        s = list(g, (int)sections[k], buf, k == 0 ? LIST_MAX : RECENT, &n);
        if (!keel_ok(s))
            break;
        if (json) {
            (void)fprintf(f, ",\"%s\":[", names[k]);
            for (size_t i = 0; i < n; i++)
                gate_json_change(f, &buf[i], i == 0);
            (void)fprintf(f, "]");
        } else {
            gate_text_printf(f, "%s (%zu):\n", headings[k], n);
            for (size_t i = 0; i < n; i++)
                gate_text_printf(f, "  %6lld  %s%*s %.12s  %s\n", buf[i].id, buf[i].branch,
                                 gate_text_pad(buf[i].branch, 32), "", buf[i].head, buf[i].reason);
        }
    }
    if (keel_ok(s))
        print_ccache(g, f, json);
    if (keel_ok(s)) /* the branch flows (gate/flows/flows_show.c) */
        s = gate_flows_status(g, f, json);
    if (keel_ok(s) && json) {
        print_memory(g, f, true);
        (void)fprintf(f, "}\n");
    } else if (keel_ok(s) && (flags & GATE_STATUS_MEMORY) != 0) {
        print_memory(g, f, false);
    }
    keel_heap_free(GATE_HEAP, buf);
    keel_heap_free(GATE_HEAP, jobs);
    return s;
}

bool gate_target_has_config(gate *g, const char *config)
{
    gate_config *own = NULL;
    const gate_config *cfg = gate_tip_config(g, &own);
    bool known = false;
    for (size_t i = 0; cfg != NULL && i < cfg->nconfigs && !known; i++)
        known = strcmp(cfg->configs[i].name, config) == 0;
    gate_config_free(own);
    return known;
}
