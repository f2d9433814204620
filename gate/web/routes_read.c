/*
 * routes_read.c - the API's reads (docs/gate-api.md): the queue, the changes
 * and one change's history, a job's log, the queue's series, the levels after
 * the gate, a branch and the target's commits, and the events' text for
 * GET /events.  Read from the store and the repository; nothing here changes
 * anything.  The routing that calls these is routes.c's.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "git.h"
#include "heaps.h"
#include "routes_int.h"
#include "store_nightly.h"
#include "store_post.h"
#include "web.h"

enum {
    QUEUE_MAX = 512,      /* changes listed by /queue */
    JOBS_MAX = 512,       /* jobs of one change's history */
    EVENTS_MAX = 256,     /* events of one change's history */
    LOG_MAX = 1 << 20,    /* bytes of a log in one response */
    BUILDS_MEASURED = 20, /* finished candidates the estimate reads */
    AGING_S = 3600,       /* the queue's order, as status shows it */
    COMMITS_DEFAULT = 20, /* /commits without ?limit */
    COMMITS_MAX = 100,
    SERIES_HOURS = 24, /* /series without ?hours */
    SERIES_HOURS_MAX = 168,
    SERIES_POINTS = 144,  /* the queue's length at this many steps, and now */
    SERIES_SPANS = 10000, /* changes read for it, the newest */
    SERIES_LANDED = 1000, /* landings listed by it, the newest (the median: of all) */
    LEVELS_POST = 512,    /* /levels: (commit, configuration) rows of the post level, the newest */
    LEVELS_NIGHTLY = 50   /* and nightly runs, the newest */
};

json_t *gate__web_change_json(const gate_change *c)
{
    json_t *o = json_object();
    (void)json_object_set_new(o, "id", json_integer(c->id));
    (void)json_object_set_new(o, "branch", gate__web_str(c->branch));
    (void)json_object_set_new(o, "head", gate__web_str(c->head));
    (void)json_object_set_new(o, "target", gate__web_str(c->target));
    (void)json_object_set_new(o, "priority", json_integer(c->priority));
    (void)json_object_set_new(o, "state", gate__web_str(gate_change_state_name(c->state)));
    (void)json_object_set_new(o, "submitted_at", json_integer(c->submitted_at));
    (void)json_object_set_new(o, "candidate",
                              c->candidate != 0 ? json_integer(c->candidate) : json_null());
    (void)json_object_set_new(o, "reason", gate__web_str(c->reason));
    return o;
}

void gate__web_queue(const gate_web_ctx *ctx, gate_web_resp *resp)
{
    gate_store *st = gate_get_store(ctx->g);
    const char *target = gate_target(ctx->g);
    long long now = (long long)time(NULL);
    /* as many as there are (a large block per request costs more than the queries) */
    long long counts[GATE_CHANGE_STATES];
    keel_status s = gate_store_count_changes(st, target, LLONG_MAX, counts);
    if (!keel_ok(s)) {
        gate__web_status(resp, s);
        return;
    }
    long long want = counts[GATE_CHANGE_TESTING] + counts[GATE_CHANGE_QUEUED] + 1;
    size_t cap = want < QUEUE_MAX ? (size_t)want : (size_t)QUEUE_MAX;
    gate_change *list = (gate_change *)gate__web_calloc(cap, sizeof(*list));
    if (list == NULL) {
        gate_web_error(resp, 500, "no memory for the queue");
        return;
    }
    size_t nt = 0, nq = 0, nbuilds = 0;
    long long median = 0, since = 0;
    bool paused = false;
    char reason[GATE_REASON_MAX];
    s = gate_store_changes(st, target, GATE_CHANGE_TESTING, list, cap, &nt);
    if (keel_ok(s))
        s = gate_store_queued(st, target, now, AGING_S, list + nt, cap - nt, &nq);
    if (keel_ok(s))
        s = gate_store_build_seconds(st, target, BUILDS_MEASURED, &median, &nbuilds);
    if (keel_ok(s))
        s = gate_store_paused(st, target, &paused, reason, sizeof(reason), &since);
    /* the testing changes, oldest candidate first, as they land */
    for (size_t i = 1; i < nt; i++)
        for (size_t k = i; k > 0 && list[k].candidate < list[k - 1].candidate; k--) {
            gate_change t = list[k];
            list[k] = list[k - 1];
            list[k - 1] = t;
        }
    long long busy = 0; /* how long the builds under way still need, the longest */
    json_t *changes = json_array();
    for (size_t i = 0; keel_ok(s) && i < nt + nq; i++) {
        json_t *o = gate__web_change_json(&list[i]);
        (void)json_object_set_new(o, "position", json_integer((json_int_t)i + 1));
        json_t *eta = json_null();
        if (nbuilds > 0 && list[i].state == GATE_CHANGE_TESTING) {
            gate_candidate_info c;
            s = gate_store_candidate_get(st, list[i].candidate, &c);
            long long left = keel_ok(s) ? median - (now - c.created_at) : 0;
            left = left > 0 ? left : 0;
            busy = left > busy ? left : busy;
            eta = json_integer(left);
        } else if (nbuilds > 0) {
            eta = json_integer(busy + (long long)(i - nt + 1) * median);
        }
        (void)json_object_set_new(o, "eta_seconds", eta);
        (void)json_array_append_new(changes, o);
    }
    keel_heap_free(WEB_HEAP, list);
    if (!keel_ok(s)) {
        json_decref(changes);
        gate__web_status(resp, s);
        return;
    }
    json_t *o = json_object();
    (void)json_object_set_new(o, "target", gate__web_str(target));
    (void)json_object_set_new(o, "now", json_integer(now));
    json_t *p = json_null();
    if (paused) {
        p = json_object();
        (void)json_object_set_new(p, "reason", gate__web_str(reason));
        (void)json_object_set_new(p, "since", json_integer(since));
    }
    (void)json_object_set_new(o, "paused", p);
    (void)json_object_set_new(o, "build_seconds", nbuilds > 0 ? json_integer(median) : json_null());
    (void)json_object_set_new(o, "builds_measured", json_integer((json_int_t)nbuilds));
    (void)json_object_set_new(o, "changes", changes);
    gate__web_json(resp, 200, o);
}

void gate__web_changes(const gate_web_ctx *ctx, gate_web_resp *resp)
{
    enum { RECENT = 100 };
    gate_change *list = (gate_change *)gate__web_calloc(RECENT, sizeof(*list));
    if (list == NULL) {
        gate_web_error(resp, 500, "no memory for the changes");
        return;
    }
    size_t n = 0;
    keel_status s =
        gate_store_changes(gate_get_store(ctx->g), gate_target(ctx->g), -1, list, RECENT, &n);
    if (!keel_ok(s)) {
        keel_heap_free(WEB_HEAP, list);
        gate__web_status(resp, s);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        (void)json_array_append_new(a, gate__web_change_json(&list[i]));
    keel_heap_free(WEB_HEAP, list);
    json_t *o = json_object();
    (void)json_object_set_new(o, "changes", a);
    gate__web_json(resp, 200, o);
}

static json_t *job_json(const gate_job *j)
{
    json_t *o = json_object();
    char link[64];
    (void)snprintf(link, sizeof(link), "/api/v1/jobs/%lld/log", j->id);
    (void)json_object_set_new(o, "id", json_integer(j->id));
    (void)json_object_set_new(o, "config", gate__web_str(j->config));
    (void)json_object_set_new(o, "attempt", json_integer(j->attempt));
    (void)json_object_set_new(o, "state", gate__web_str(j->state));
    (void)json_object_set_new(o, "exit_code", json_integer(j->exit_code));
    (void)json_object_set_new(o, "started_at", json_integer(j->started_at));
    (void)json_object_set_new(o, "finished_at", json_integer(j->finished_at));
    (void)json_object_set_new(o, "elapsed_ms",
                              j->elapsed_ms >= 0 ? json_integer(j->elapsed_ms) : json_null());
    (void)json_object_set_new(o, "log", j->log[0] != '\0' ? gate__web_str(link) : json_null());
    return o;
}

static json_t *event_json(const gate_event *e)
{
    json_t *o = json_object();
    (void)json_object_set_new(o, "id", json_integer(e->id));
    (void)json_object_set_new(o, "time", json_integer(e->time));
    (void)json_object_set_new(o, "kind", gate__web_str(e->kind));
    (void)json_object_set_new(o, "change", e->change != 0 ? json_integer(e->change) : json_null());
    json_t *d = json_loads(e->detail, 0, NULL);
    (void)json_object_set_new(o, "detail", d != NULL ? d : json_object());
    return o;
}

void gate__web_change(const gate_web_ctx *ctx, long long id, gate_web_resp *resp)
{
    gate_store *st = gate_get_store(ctx->g);
    gate_change c;
    keel_status s = gate__web_change_get(ctx, id, &c);
    if (!keel_ok(s)) {
        gate__web_status(resp, s);
        return;
    }
    gate_job *jobs = (gate_job *)gate__web_calloc(JOBS_MAX, sizeof(*jobs));
    gate_event *events = (gate_event *)gate__web_calloc(EVENTS_MAX, sizeof(*events));
    size_t nj = 0, ne = 0;
    if (jobs == NULL || events == NULL) {
        keel_heap_free(WEB_HEAP, jobs);
        keel_heap_free(WEB_HEAP, events);
        gate__web_status(resp, KEEL_ERR(KEEL_E_NOMEM, "no memory for change %lld's history", id));
        return;
    }
    s = gate_store_jobs(st, NULL, id, jobs, JOBS_MAX, &nj);
    if (keel_ok(s))
        s = gate_store_change_events(st, id, events, EVENTS_MAX, &ne);
    /* builds: one per (candidate, attempt), in the order their jobs started */
    json_t *builds = json_array();
    json_t *build = NULL;
    long long cand = -1;
    int attempt = -1;
    for (size_t i = 0; keel_ok(s) && i < nj; i++) {
        if (jobs[i].candidate != cand || jobs[i].attempt != attempt) {
            cand = jobs[i].candidate;
            attempt = jobs[i].attempt;
            build = NULL;
            for (size_t k = 0; build == NULL && k < json_array_size(builds); k++) {
                json_t *b = json_array_get(builds, k);
                if (json_integer_value(json_object_get(b, "candidate")) == cand &&
                    json_integer_value(json_object_get(b, "attempt")) == attempt)
                    build = b;
            }
        }
        if (build == NULL) {
            gate_candidate_info ci;
            s = gate_store_candidate_get(st, cand, &ci);
            if (!keel_ok(s))
                break;
            build = json_object();
            (void)json_object_set_new(build, "candidate", json_integer(cand));
            (void)json_object_set_new(build, "attempt", json_integer(attempt));
            (void)json_object_set_new(build, "base", gate__web_str(ci.base));
            (void)json_object_set_new(build, "merge", gate__web_str(ci.merge));
            (void)json_object_set_new(build, "result", gate__web_str(ci.state));
            (void)json_object_set_new(build, "jobs", json_array());
            (void)json_array_append_new(builds, build);
        }
        (void)json_array_append_new(json_object_get(build, "jobs"), job_json(&jobs[i]));
    }
    json_t *ev = json_array();
    json_t *flakes = json_array();
    for (size_t i = 0; keel_ok(s) && i < ne; i++) {
        (void)json_array_append_new(ev, event_json(&events[i]));
        if (strcmp(events[i].kind, "flake") == 0)
            (void)json_array_append_new(flakes, event_json(&events[i]));
    }
    keel_heap_free(WEB_HEAP, jobs);
    keel_heap_free(WEB_HEAP, events);
    if (!keel_ok(s)) {
        json_decref(builds);
        json_decref(ev);
        json_decref(flakes);
        gate__web_status(resp, s);
        return;
    }
    json_t *o = json_object();
    (void)json_object_set_new(o, "change", gate__web_change_json(&c));
    (void)json_object_set_new(o, "builds", builds);
    (void)json_object_set_new(o, "flakes", flakes);
    (void)json_object_set_new(o, "events", ev);
    gate__web_json(resp, 200, o);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/*
 * The queue's length over the last ?hours in SERIES_POINTS steps (the most at
 * any moment of each), and how long each change that landed then took from its
 * submission to landing.
 */
void gate__web_series(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp)
{
    long long hours = SERIES_HOURS;
    if (req->q_hours != NULL &&
        (!gate__web_count(req->q_hours, &hours) || hours < 1 || hours > SERIES_HOURS_MAX)) {
        gate_web_error(resp, 400, "hours must be a whole number from 1 to %d, not '%s'",
                       SERIES_HOURS_MAX, req->q_hours);
        return;
    }
    long long to = (long long)time(NULL), step = hours * 3600 / SERIES_POINTS;
    long long from = to - step * SERIES_POINTS;
    gate_change_span *spans = (gate_change_span *)gate__web_calloc(SERIES_SPANS, sizeof(*spans));
    /* the landings' times to land, then the submissions and the ends, sorted */
    long long *took = (long long *)gate__web_calloc((size_t)3 * SERIES_SPANS, sizeof(*took));
    size_t n = 0, nl = 0;
    if (spans == NULL || took == NULL) {
        keel_heap_free(WEB_HEAP, spans);
        keel_heap_free(WEB_HEAP, took);
        gate_web_error(resp, 500, "no memory for the series");
        return;
    }
    keel_status s = gate_store_change_spans(gate_get_store(ctx->g), gate_target(ctx->g), from, to,
                                            spans, SERIES_SPANS, &n);
    if (!keel_ok(s)) {
        keel_heap_free(WEB_HEAP, spans);
        keel_heap_free(WEB_HEAP, took);
        gate__web_status(resp, s);
        return;
    }
    /*
     * the most changes in the queue at any moment of each step [t - step, t]: a
     * sweep over the submissions and ends, sorted (a change is in the queue
     * from its submission to its end, the end's second not counted)
     */
    long long *starts = took + SERIES_SPANS, *ends = took + (size_t)2 * SERIES_SPANS;
    size_t ne = 0;
    for (size_t i = 0; i < n; i++) {
        starts[i] = spans[i].submitted_at;
        if (spans[i].ended_at != 0)
            ends[ne++] = spans[i].ended_at;
    }
    qsort(starts, n, sizeof(*starts), cmp_ll);
    qsort(ends, ne, sizeof(*ends), cmp_ll);
    size_t si = 0, ei = 0;
    json_t *queue = json_array();
    for (long long t = from; t <= to; t += step) {
        /* at the step's start, then at each submission or end within it */
        long long at = t - step, most = -1;
        for (;;) {
            while (si < n && starts[si] <= at)
                si++;
            while (ei < ne && ends[ei] <= at)
                ei++;
            long long len = (long long)si - (long long)ei;
            most = len > most ? len : most;
            long long next = t + 1;
            if (si < n && starts[si] < next)
                next = starts[si];
            if (ei < ne && ends[ei] < next)
                next = ends[ei];
            if (next > t)
                break;
            at = next;
        }
        json_t *p = json_object();
        (void)json_object_set_new(p, "time", json_integer(t));
        (void)json_object_set_new(p, "length", json_integer(most));
        (void)json_array_append_new(queue, p);
    }
    size_t nlanded = 0; /* in the window; the newest SERIES_LANDED of them are listed */
    for (size_t i = 0; i < n; i++)
        nlanded += spans[i].landed && spans[i].ended_at >= from;
    json_t *landed = json_array();
    for (size_t i = n; i-- > 0;) { /* oldest first */
        const gate_change_span *c = &spans[i];
        if (!c->landed || c->ended_at < from)
            continue;
        took[nl++] = c->ended_at - c->submitted_at;
        if (nlanded - (nl - 1) > SERIES_LANDED)
            continue;
        json_t *p = json_object();
        (void)json_object_set_new(p, "change", json_integer(c->id));
        (void)json_object_set_new(p, "landed_at", json_integer(c->ended_at));
        (void)json_object_set_new(p, "seconds", json_integer(c->ended_at - c->submitted_at));
        (void)json_array_append_new(landed, p);
    }
    qsort(took, nl, sizeof(*took), cmp_ll);
    json_t *o = json_object();
    (void)json_object_set_new(o, "target", gate__web_str(gate_target(ctx->g)));
    (void)json_object_set_new(o, "from", json_integer(from));
    (void)json_object_set_new(o, "to", json_integer(to));
    (void)json_object_set_new(o, "step", json_integer(step));
    (void)json_object_set_new(o, "queue_length", queue);
    (void)json_object_set_new(o, "landed", landed);
    (void)json_object_set_new(o, "landed_count", json_integer((json_int_t)nlanded));
    (void)json_object_set_new(
        o, "land_seconds_median",
        nl > 0 ? json_integer(nl % 2 == 1 ? took[nl / 2] : (took[nl / 2 - 1] + took[nl / 2]) / 2)
               : json_null());
    (void)json_object_set_new(o, "truncated", json_boolean(n == SERIES_SPANS));
    keel_heap_free(WEB_HEAP, spans);
    keel_heap_free(WEB_HEAP, took);
    gate__web_json(resp, 200, o);
}

/*
 * The bytes of the log asked for: [*from, *to) of `size`.  *partial: a range
 * was asked (206).  false: unsatisfiable or malformed (resp says which).
 */
static bool log_range(const gate_web_req *req, long long size, long long *from, long long *to,
                      bool *partial, gate_web_resp *resp)
{
    *from = 0;
    *to = size < LOG_MAX ? size : (long long)LOG_MAX;
    *partial = size > LOG_MAX;
    long long a = 0, b = 0;
    if (req->range != NULL && (req->q_offset != NULL || req->q_limit != NULL)) {
        gate_web_error(resp, 400,
                       "a part of a log is asked by a Range header or by offset and limit, not "
                       "both");
        return false;
    }
    if (req->range != NULL) {
        const char *r = req->range;
        if (strncmp(r, "bytes=", 6) != 0 || strchr(r, ',') != NULL) {
            gate_web_error(resp, 416, "range '%s' is not one 'bytes=FROM-TO' range", r);
            return false;
        }
        char first[32] = "", last[32] = "";
        const char *dash = strchr(r + 6, '-');
        size_t lf = dash != NULL ? (size_t)(dash - (r + 6)) : 0;
        if (dash == NULL || lf >= sizeof(first) || strlen(dash + 1) >= sizeof(last)) {
            gate_web_error(resp, 416, "range '%s' is not one 'bytes=FROM-TO' range", r);
            return false;
        }
        memcpy(first, r + 6, lf);
        (void)snprintf(last, sizeof(last), "%s", dash + 1);
        bool ok = true;
        if (first[0] == '\0') { /* the last N bytes */
            ok = gate__web_count(last, &b) && b > 0;
            a = size > b ? size - b : 0;
            b = size;
        } else {
            ok = gate__web_count(first, &a) &&
                 (last[0] == '\0' || (gate__web_count(last, &b) && b >= a));
            b = last[0] == '\0' || b >= size ? size : b + 1;
        }
        if (!ok || a >= size) {
            gate_web_error(resp, 416, "range '%s' is outside the log's %lld bytes", r, size);
            (void)snprintf(resp->content_range, sizeof(resp->content_range), "bytes */%lld", size);
            return false;
        }
        *partial = true;
    } else if (req->q_offset != NULL || req->q_limit != NULL) {
        b = LOG_MAX;
        if ((req->q_offset != NULL && !gate__web_count(req->q_offset, &a)) ||
            (req->q_limit != NULL && (!gate__web_count(req->q_limit, &b) || b < 1))) {
            gate_web_error(resp, 400,
                           "offset and limit must be whole numbers of bytes (limit at least 1)");
            return false;
        }
        if (a >= size) { /* nothing there (yet: a client following the log asks again) */
            gate_web_error(resp, 416, "offset %lld is not before the end of the log's %lld bytes",
                           a, size);
            (void)snprintf(resp->content_range, sizeof(resp->content_range), "bytes */%lld", size);
            return false;
        }
        b = b > size - a ? size : a + b;
        *partial = true;
    } else {
        return true;
    }
    *from = a;
    *to = b - a > LOG_MAX ? a + LOG_MAX : b;
    return true;
}

void gate__web_log(const gate_web_ctx *ctx, const gate_web_req *req, long long id,
                   gate_web_resp *resp)
{
    gate_job j;
    gate_candidate_info ci;
    keel_status s = gate_store_job_get(gate_get_store(ctx->g), id, &j);
    if (keel_ok(s))
        s = gate_store_candidate_get(gate_get_store(ctx->g), j.candidate, &ci);
    if (keel_ok(s) && strcmp(ci.target, gate_target(ctx->g)) != 0)
        s = KEEL_ERR(KEEL_E_NOTFOUND, "no job %lld for '%s'", id, gate_target(ctx->g));
    if (!keel_ok(s)) {
        gate__web_status(resp, s);
        return;
    }
    /* only a file in the gate's own log directory is ever read: never a path from a request */
    char logs[PATH_MAX], dir[PATH_MAX + 8], real[PATH_MAX];
    (void)snprintf(dir, sizeof(dir), "%s/logs", gate_state_dir(ctx->g));
    if (j.log[0] == '\0' || realpath(dir, logs) == NULL || realpath(j.log, real) == NULL) {
        gate_web_error(resp, 404, "job %lld has no log", id);
        return;
    }
    size_t ll = strlen(logs);
    if (strncmp(real, logs, ll) != 0 || real[ll] != '/') {
        gate_web_error(resp, 403, "job %lld's log is outside the gate's log directory", id);
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            (void)close(fd);
        gate_web_error(resp, 404, "job %lld's log cannot be read", id);
        return;
    }
    long long from = 0, to = 0;
    bool partial = false;
    if (!log_range(req, (long long)sb.st_size, &from, &to, &partial, resp)) {
        (void)close(fd);
        return;
    }
    char *buf = (char *)gate__web_calloc((size_t)(to - from) + 1, 1);
    ssize_t got = buf != NULL ? pread(fd, buf, (size_t)(to - from), (off_t)from) : -1;
    (void)close(fd);
    if (got < 0) {
        keel_heap_free(WEB_HEAP, buf);
        gate_web_error(resp, 500, "job %lld's log cannot be read", id);
        return;
    }
    gate_web_resp_free(resp);
    resp->body = buf;
    resp->len = (size_t)got;
    resp->kind = GATE_WEB_BYTES;
    resp->status = partial ? 206 : 200;
    if (partial)
        (void)snprintf(resp->content_range, sizeof(resp->content_range), "bytes %lld-%lld/%lld",
                       from, from + (long long)got - (got > 0 ? 1 : 0), (long long)sb.st_size);
}

/* A level's build result as JSON (post and nightly rows alike). */
static json_t *outcome_json(const char *state, unsigned runs, unsigned fails, const char *commit)
{
    json_t *o = json_object();
    (void)json_object_set_new(o, "commit", gate__web_str(commit));
    (void)json_object_set_new(o, "outcome", gate__web_str(gate_build_outcome(state, runs, fails)));
    (void)json_object_set_new(o, "runs", json_integer(runs));
    (void)json_object_set_new(o, "fails", json_integer(fails));
    return o;
}

/*
 * GET /levels: the levels after the gate: the post level's commits (newest
 * first) × configurations, and the nightly runs (newest first).
 */
void gate__web_levels(const gate_web_ctx *ctx, gate_web_resp *resp)
{
    gate_store *st = gate_get_store(ctx->g);
    const char *target = gate_target(ctx->g);
    gate_post_row *post = (gate_post_row *)gate__web_calloc(LEVELS_POST, sizeof(*post));
    gate_nightly_row *nightly =
        (gate_nightly_row *)gate__web_calloc(LEVELS_NIGHTLY, sizeof(*nightly));
    size_t np = 0, nn = 0;
    if (post == NULL || nightly == NULL) {
        keel_heap_free(WEB_HEAP, post);
        keel_heap_free(WEB_HEAP, nightly);
        gate__web_status(resp, KEEL_ERR(KEEL_E_NOMEM, "no memory for the levels' history"));
        return;
    }
    keel_status s = gate_store_post_history(st, target, NULL, post, LEVELS_POST, &np);
    if (keel_ok(s))
        s = gate_store_nightly_history(st, target, NULL, nightly, LEVELS_NIGHTLY, &nn);
    if (!keel_ok(s)) {
        keel_heap_free(WEB_HEAP, post);
        keel_heap_free(WEB_HEAP, nightly);
        gate__web_status(resp, s);
        return;
    }
    if (np == LEVELS_POST) /* the oldest commit may be cut: leave it out whole */
        while (np > 1 && strcmp(post[np - 1].commit, post[np - 2].commit) == 0)
            np--;
    json_t *configs = json_array(), *commits = json_array(), *row = NULL, *cells = NULL;
    for (size_t i = 0; i < np; i++) {
        const gate_post_row *r = &post[i];
        bool known = false;
        for (size_t k = 0; k < json_array_size(configs) && !known; k++)
            known = strcmp(json_string_value(json_array_get(configs, k)), r->config) == 0;
        if (!known)
            (void)json_array_append_new(configs, gate__web_str(r->config));
        if (i == 0 || strcmp(r->commit, post[i - 1].commit) != 0) {
            row = json_object();
            cells = json_object();
            (void)json_object_set_new(row, "commit", gate__web_str(r->commit));
            (void)json_object_set_new(row, "seq", json_integer(r->seq));
            (void)json_object_set_new(row, "subject", gate__web_str(r->subject));
            (void)json_object_set_new(row, "configs", cells);
            (void)json_array_append_new(commits, row);
        }
        json_t *cell = outcome_json(r->state, r->runs, r->fails, r->commit);
        (void)json_object_del(cell, "commit");
        (void)json_object_set_new(cells, r->config, cell);
    }
    json_t *runs = json_array();
    for (size_t i = 0; i < nn; i++) {
        const gate_nightly_row *r = &nightly[i];
        json_t *o = outcome_json(r->state, r->runs, r->fails, r->commit);
        (void)json_object_set_new(o, "config", gate__web_str(r->config));
        (void)json_object_set_new(o, "due_at", json_integer(r->due_at));
        (void)json_array_append_new(runs, o);
    }
    keel_heap_free(WEB_HEAP, post);
    keel_heap_free(WEB_HEAP, nightly);
    json_t *r = json_object();
    (void)json_object_set_new(r, "target", gate__web_str(target));
    json_t *p = json_object();
    (void)json_object_set_new(p, "configs", configs);
    (void)json_object_set_new(p, "commits", commits);
    (void)json_object_set_new(r, "post", p);
    (void)json_object_set_new(r, "nightly", runs);
    gate__web_json(resp, 200, r);
}

/* GET /branch?name=BRANCH: what submitting it would queue (gate_branch_view_get). */
void gate__web_branch(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp)
{
    if (req->q_name == NULL || req->q_name[0] == '\0') {
        gate_web_error(resp, 400, "name (the branch) is required: /api/v1/branch?name=BRANCH");
        return;
    }
    if (ctx->workers && req->work == NULL) {            /* the walk first, on a worker */
        keel_status s = gate_branch_check(req->q_name); /* a bad name: its 400 */
        if (keel_ok(s))
            gate__web_work(ctx, true, req->q_name, NULL, resp);
        else
            gate__web_status(resp, s);
        return;
    }
    gate_branch_view v;
    keel_status s = req->work == NULL ? gate_branch_view_get(ctx->g, req->q_name, &v)
                                      : gate__web_work_taken(req);
    if (keel_ok(s) && req->work != NULL) {
        v = req->work->view;
        s = gate_branch_view_active(ctx->g, req->q_name, &v);
    }
    if (!keel_ok(s)) {
        gate__web_status(resp, s);
        return;
    }
    json_t *r = json_object();
    (void)json_object_set_new(r, "branch", gate__web_str(req->q_name));
    (void)json_object_set_new(r, "head", gate__web_str(v.head));
    (void)json_object_set_new(r, "subject", gate__web_str(v.subject));
    (void)json_object_set_new(r, "in_target", json_boolean(v.in_target));
    (void)json_object_set_new(r, "active_change",
                              v.active > 0 ? json_integer(v.active) : json_null());
    gate__web_json(resp, 200, r);
}

void gate__web_commits(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp)
{
    long long limit = COMMITS_DEFAULT;
    if (req->q_limit != NULL &&
        (!gate__web_count(req->q_limit, &limit) || limit < 1 || limit > COMMITS_MAX)) {
        gate_web_error(resp, 400, "limit must be a whole number from 1 to %d", COMMITS_MAX);
        return;
    }
    gate_store *st = gate_get_store(ctx->g);
    gate_candidate_info *cands =
        (gate_candidate_info *)gate__web_calloc((size_t)limit, sizeof(*cands));
    gate_job *jobs = (gate_job *)gate__web_calloc(JOBS_MAX, sizeof(*jobs));
    size_t n = 0;
    keel_status s = cands != NULL && jobs != NULL
                        ? gate_store_landed(st, gate_target(ctx->g), cands, (size_t)limit, &n)
                        : KEEL_ERR(KEEL_E_NOMEM, "no memory for the commits");
    json_t *configs = json_array();
    json_t *commits = json_array();
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        size_t nj = 0, nc = 0;
        long long ids[64];
        s = gate_store_candidate_jobs(st, cands[i].id, jobs, JOBS_MAX, &nj);
        if (keel_ok(s))
            s = gate_store_candidate_changes(st, cands[i].id, ids, 64, &nc);
        json_t *o = json_object();
        (void)json_object_set_new(o, "commit", gate__web_str(cands[i].merge));
        (void)json_object_set_new(o, "candidate", json_integer(cands[i].id));
        (void)json_object_set_new(o, "landed_at", json_integer(cands[i].finished_at));
        json_t *ch = json_array();
        for (size_t k = 0; k < nc && k < 64; k++)
            (void)json_array_append_new(ch, json_integer(ids[k]));
        (void)json_object_set_new(o, "changes", ch);
        json_t *res = json_object(); /* config -> its last attempt's job */
        for (size_t k = 0; k < nj; k++) {
            (void)json_object_set_new(res, jobs[k].config, job_json(&jobs[k]));
            bool known = false;
            for (size_t c = 0; c < json_array_size(configs); c++)
                known = known ||
                        strcmp(json_string_value(json_array_get(configs, c)), jobs[k].config) == 0;
            if (!known)
                (void)json_array_append_new(configs, gate__web_str(jobs[k].config));
        }
        (void)json_object_set_new(o, "configs", res);
        (void)json_array_append_new(commits, o);
    }
    keel_heap_free(WEB_HEAP, cands);
    keel_heap_free(WEB_HEAP, jobs);
    if (!keel_ok(s)) {
        json_decref(configs);
        json_decref(commits);
        gate__web_status(resp, s);
        return;
    }
    json_t *o = json_object();
    (void)json_object_set_new(o, "target", gate__web_str(gate_target(ctx->g)));
    (void)json_object_set_new(o, "configs", configs);
    (void)json_object_set_new(o, "commits", commits);
    gate__web_json(resp, 200, o);
}

keel_status gate_web_events_text(gate *g, long long after, size_t max, char **text, size_t *len,
                                 long long *last)
{
    *text = NULL;
    *len = 0;
    *last = after;
    gate_event *ev = (gate_event *)gate__web_calloc(max, sizeof(*ev));
    if (ev == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "no memory for events");
    size_t n = 0;
    keel_status s = gate_store_events_after(gate_get_store(g), gate_target(g), after, ev, max, &n);
    gate_web_buf b = {NULL, 0, 0, false};
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        char head[64 + sizeof(ev[i].kind)];
        int hl = snprintf(head, sizeof(head), "id: %lld\nevent: %s\ndata: ", ev[i].id,
                          strpbrk(ev[i].kind, "\r\n") == NULL ? ev[i].kind : "event");
        gate__web_buf_add(&b, head, hl > 0 ? (size_t)hl : 0);
        json_t *o = event_json(&ev[i]);
        (void)gate__web_buf_dump(&b, o);
        json_decref(o);
        gate__web_buf_add(&b, "\n\n", 2);
        *last = ev[i].id;
    }
    if (keel_ok(s) && b.failed)
        s = KEEL_ERR(KEEL_E_NOMEM, "no memory for the events' text");
    if (keel_ok(s)) {
        *text = b.p;
        *len = b.len;
    } else {
        keel_heap_free(WEB_HEAP, b.p);
        *last = after;
    }
    keel_heap_free(WEB_HEAP, ev);
    return s;
}
