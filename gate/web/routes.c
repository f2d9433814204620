/*
 * routes.c - keel-gate serve's API (docs/gate-api.md): a request read whole
 * (server.c, or the fuzzer) answered as JSON from the gate's store.  Writes
 * need a token of their role and honour an Idempotency-Key; bad input is
 * refused with {"error": "..."} before anything changes.
 */
#define _GNU_SOURCE 1
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "git.h"
#include "heaps.h"
#include "page.h"
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
    IDEM_KEY_MAX = 128,
    SERIES_HOURS = 24, /* /series without ?hours */
    SERIES_HOURS_MAX = 168,
    SERIES_POINTS = 144,  /* the queue's length at this many steps, and now */
    SERIES_SPANS = 10000, /* changes read for it, the newest */
    SERIES_LANDED = 1000, /* landings listed by it, the newest (the median: of all) */
    LEVELS_POST = 512,    /* /levels: (commit, configuration) rows of the post level, the newest */
    LEVELS_NIGHTLY = 50   /* and nightly runs, the newest */
};

/* n zeroed elements of `size` on the server's heap (NULL: no memory) */
void *gate__web_calloc(size_t n, size_t size)
{
    void *p = NULL;
    keel_status s = keel_heap_calloc(WEB_HEAP, n, size, &p);
    if (!keel_ok(s)) {
        keel_status_ignore(s, "said as 'no memory' by the caller");
        return NULL;
    }
    return p;
}

/* the server's memory (web.h): no init, no exit, no POST of its own */
KEEL_MODULE(gate_web, "1.0", NULL, NULL, NULL, NULL);

void gate__web_buf_add(gate_web_buf *b, const char *data, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 256 : b->cap;
        while (cap < b->len + n + 1)
            cap *= 2;
        void *p = b->p;
        keel_status s = keel_heap_realloc(WEB_HEAP, &p, cap);
        if (!keel_ok(s)) {
            keel_status_ignore(s, "said as 'no memory' by the caller");
            b->failed = true;
            return;
        }
        b->p = (char *)p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static int buf_json(const char *buffer, size_t size, void *data)
{
    gate_web_buf *b = (gate_web_buf *)data;
    gate__web_buf_add(b, buffer, size);
    return b->failed ? -1 : 0;
}

/* o as compact JSON into b (false: no memory) */
static bool buf_dump(gate_web_buf *b, const json_t *o)
{
    return json_dump_callback(o, buf_json, b, JSON_COMPACT) == 0 && !b->failed;
}

/* o as compact JSON on the server's heap, NUL-ended (NULL: no memory), its length in *len */
static char *dump(const json_t *o, size_t *len)
{
    gate_web_buf b = {NULL, 0, 0, false};
    if (!buf_dump(&b, o) || b.p == NULL) {
        keel_heap_free(WEB_HEAP, b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* n bytes of data on the server's heap, NUL-ended (NULL: no memory) */
static char *heap_copy(const char *data, size_t n)
{
    char *p = (char *)gate__web_calloc(n + 1, 1);
    if (p != NULL)
        memcpy(p, data, n);
    return p;
}

void gate_web_resp_free(gate_web_resp *resp)
{
    keel_heap_free(WEB_HEAP, resp->body);
    resp->body = NULL;
    resp->len = 0;
}

void gate_web_error(gate_web_resp *resp, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_t *text = json_string(msg);
    if (text == NULL) { /* a path or header that is not UTF-8: its other bytes as '?' */
        for (char *p = msg; *p != '\0'; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        text = json_string(msg);
    }
    (void)json_object_set_new(o, "error", text);
    gate_web_resp_free(resp);
    resp->body = dump(o, &resp->len);
    resp->status = status;
    resp->kind = GATE_WEB_JSON;
    json_decref(o);
}

/* resp as `o` (taken) with `status` */
void gate__web_json(gate_web_resp *resp, int status, json_t *o)
{
    gate_web_resp_free(resp);
    resp->body = dump(o, &resp->len);
    json_decref(o);
    if (resp->body == NULL) {
        gate_web_error(resp, 500, "no memory for the response");
        return;
    }
    resp->status = status;
    resp->kind = GATE_WEB_JSON;
}

/* The chain of a status's messages, ": " between them (no source locations, no details). */
static void status_text(keel_status s, char *out, size_t size)
{
    char buf[8192];
    (void)keel_status_format_json(s, buf, sizeof(buf));
    json_t *root = json_loads(buf, 0, NULL);
    size_t n = 0;
    out[0] = '\0';
    for (json_t *link = root; json_is_object(link) && n + 1 < size;
         link = json_object_get(link, "cause")) {
        const char *msg = json_string_value(json_object_get(link, "message"));
        int w = snprintf(out + n, size - n, "%s%s", n > 0 ? ": " : "", msg != NULL ? msg : "");
        n += w > 0 ? (size_t)w : 0;
    }
    json_decref(root);
    if (out[0] == '\0')
        (void)snprintf(out, size, "%s", keel_status_message(s));
}

/* A failed status as its HTTP error (the status freed). */
void gate__web_status(gate_web_resp *resp, keel_status s)
{
    int http = 500;
    if (KEEL_HAS(s, KEEL_E_NOTFOUND))
        http = 404;
    else if (KEEL_HAS(s, KEEL_E_EXISTS) || KEEL_HAS(s, KEEL_E_STATE) ||
             KEEL_HAS(s, KEEL_E_CONFLICT) || keel_status_has(s, &gate_codes, GATE_E_CONFLICT) ||
             keel_status_has(s, &gate_codes, GATE_E_MOVED) ||
             keel_status_has(s, &gate_codes, GATE_E_BAD_CHANGE))
        http = 409;
    else if (KEEL_HAS(s, KEEL_E_INVAL) || KEEL_HAS(s, KEEL_E_RANGE) || KEEL_HAS(s, KEEL_E_PARSE) ||
             keel_status_has(s, &gate_codes, GATE_E_BAD_REF))
        http = 400;
    char msg[2048];
    status_text(s, msg, sizeof(msg));
    keel_status_free(s);
    gate_web_error(resp, http, "%s", msg);
}

json_t *gate__web_str(const char *s)
{
    json_t *j = json_string(s);
    return j != NULL ? j : json_string("(not UTF-8)");
}

static json_t *change_json(const gate_change *c)
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

/* ---- reads ----------------------------------------------------------------------------- */

static void get_queue(const gate_web_ctx *ctx, gate_web_resp *resp)
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
        json_t *o = change_json(&list[i]);
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

static void get_changes(const gate_web_ctx *ctx, gate_web_resp *resp)
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
        (void)json_array_append_new(a, change_json(&list[i]));
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

static void get_change(const gate_web_ctx *ctx, long long id, gate_web_resp *resp)
{
    gate_store *st = gate_get_store(ctx->g);
    gate_change c;
    keel_status s = gate_store_get(st, id, &c);
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
    (void)json_object_set_new(o, "change", change_json(&c));
    (void)json_object_set_new(o, "builds", builds);
    (void)json_object_set_new(o, "flakes", flakes);
    (void)json_object_set_new(o, "events", ev);
    gate__web_json(resp, 200, o);
}

/* A whole non-negative number (at most LLONG_MAX), else false. */
static bool parse_count(const char *text, long long *out)
{
    if (text == NULL || *text < '0' || *text > '9')
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (*end != '\0' || errno == ERANGE || v < 0)
        return false;
    *out = v;
    return true;
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
static void get_series(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp)
{
    long long hours = SERIES_HOURS;
    if (req->q_hours != NULL &&
        (!parse_count(req->q_hours, &hours) || hours < 1 || hours > SERIES_HOURS_MAX)) {
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
    (void)json_object_set_new(o, "land_seconds_median",
                              nl > 0 ? json_integer(took[nl / 2]) : json_null());
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
            ok = parse_count(last, &b) && b > 0;
            a = size > b ? size - b : 0;
            b = size;
        } else {
            ok = parse_count(first, &a) && (last[0] == '\0' || (parse_count(last, &b) && b >= a));
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
        if ((req->q_offset != NULL && !parse_count(req->q_offset, &a)) ||
            (req->q_limit != NULL && !parse_count(req->q_limit, &b))) {
            gate_web_error(resp, 400, "offset and limit must be whole numbers of bytes");
            return false;
        }
        if (a > size) {
            gate_web_error(resp, 416, "offset %lld is past the log's %lld bytes", a, size);
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

static void get_log(const gate_web_ctx *ctx, const gate_web_req *req, long long id,
                    gate_web_resp *resp)
{
    gate_job j;
    keel_status s = gate_store_job_get(gate_get_store(ctx->g), id, &j);
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
static void get_levels(const gate_web_ctx *ctx, gate_web_resp *resp)
{
    gate_store *st = gate_get_store(ctx->g);
    const char *target = gate_target(ctx->g);
    gate_post_row *post = (gate_post_row *)gate__web_calloc(LEVELS_POST, sizeof(*post));
    gate_nightly_row *nightly =
        (gate_nightly_row *)gate__web_calloc(LEVELS_NIGHTLY, sizeof(*nightly));
    size_t np = 0, nn = 0;
    keel_status s = post != NULL && nightly != NULL
                        ? gate_store_post_history(st, target, NULL, post, LEVELS_POST, &np)
                        : KEEL_ERR(KEEL_E_NOMEM, "no memory for the levels' history");
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
static void get_branch(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp)
{
    if (req->q_name == NULL || req->q_name[0] == '\0') {
        gate_web_error(resp, 400, "name (the branch) is required: /api/v1/branch?name=BRANCH");
        return;
    }
    gate_branch_view v;
    keel_status s = gate_branch_view_get(ctx->g, req->q_name, &v);
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

static void get_commits(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp)
{
    long long limit = COMMITS_DEFAULT;
    if (req->q_limit != NULL && (!parse_count(req->q_limit, &limit) || limit < 1)) {
        gate_web_error(resp, 400, "limit must be a whole number from 1 to %d", COMMITS_MAX);
        return;
    }
    limit = limit > COMMITS_MAX ? (long long)COMMITS_MAX : limit;
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
        (void)buf_dump(&b, o);
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

/* ---- writes ---------------------------------------------------------------------------- */

json_t *gate__web_body(const gate_web_req *req, const char *const *fields, gate_web_resp *resp)
{
    if (req->body_len == 0)
        return json_object();
    json_error_t err;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
    if (o == NULL) {
        gate_web_error(resp, 400, "malformed JSON body: %s (line %d, column %d)", err.text,
                       err.line, err.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        gate_web_error(resp, 400, "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach(o, key, value)
    {
        bool known = false;
        for (size_t i = 0; fields[i] != NULL; i++)
            known = known || strcmp(fields[i], key) == 0;
        if (!known) {
            char quoted[256];
            (void)snprintf(quoted, sizeof(quoted), "%s", key);
            json_decref(o);
            gate_web_error(resp, 400, "unknown field '%s'", quoted);
            return NULL;
        }
        (void)value;
    }
    return o;
}

/* The string field `name` (NULL: absent when optional, else refused: *bad). */
static const char *str_field(json_t *o, const char *name, bool required, bool *bad,
                             gate_web_resp *resp)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL && !required)
        return NULL;
    if (v == NULL || !json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = true;
        gate_web_error(resp, 400, "field '%s' %s", name,
                       v == NULL ? "is missing" : "must be a non-empty string");
        return NULL;
    }
    return json_string_value(v);
}

static bool int_field(json_t *o, const char *name, bool required, int *out, gate_web_resp *resp)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL && !required)
        return true;
    if (v == NULL || !json_is_integer(v) || json_integer_value(v) < INT_MIN ||
        json_integer_value(v) > INT_MAX) {
        gate_web_error(resp, 400, "field '%s' %s", name,
                       v == NULL ? "is missing" : "must be a whole number");
        return false;
    }
    *out = (int)json_integer_value(v);
    return true;
}

static void post_submit(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp)
{
    static const char *const fields[] = {"branch", "expected_head", "priority", NULL};
    json_t *o = gate__web_body(req, fields, resp);
    if (o == NULL)
        return;
    bool bad = false;
    int priority = 0;
    const char *branch = str_field(o, "branch", true, &bad, resp);
    const char *head = bad ? NULL : str_field(o, "expected_head", true, &bad, resp);
    char hex[GATE_OID_HEX]; /* the commit id, lower-case as git writes it */
    size_t n = 0;
    for (; !bad && n + 1 < GATE_OID_HEX && isxdigit((unsigned char)head[n]); n++)
        hex[n] = (char)tolower((unsigned char)head[n]);
    hex[n] = '\0';
    if (!bad && (n + 1 != GATE_OID_HEX || head[n] != '\0')) {
        bad = true;
        gate_web_error(resp, 400,
                       "field 'expected_head' must be a commit id of %d hex digits, not '%.64s%s'",
                       GATE_OID_HEX - 1, head, strlen(head) > 64 ? "..." : "");
    }
    if (!bad && !int_field(o, "priority", false, &priority, resp))
        bad = true;
    if (!bad) {
        long long id = 0;
        keel_status s = gate_submit_at(ctx->g, branch, hex, priority, &id);
        gate_change c;
        if (keel_ok(s))
            s = gate_store_get(gate_get_store(ctx->g), id, &c);
        if (keel_ok(s)) {
            json_t *r = json_object();
            (void)json_object_set_new(r, "change", change_json(&c));
            gate__web_json(resp, 201, r);
        } else {
            gate__web_status(resp, s);
        }
    }
    json_decref(o);
}

/* The change afterwards as the response (200), or the error. */
static void change_after(const gate_web_ctx *ctx, long long id, keel_status s, gate_web_resp *resp)
{
    gate_change c;
    if (keel_ok(s))
        s = gate_store_get(gate_get_store(ctx->g), id, &c);
    if (!keel_ok(s)) {
        gate__web_status(resp, s);
        return;
    }
    json_t *r = json_object();
    (void)json_object_set_new(r, "change", change_json(&c));
    gate__web_json(resp, 200, r);
}

static void post_cancel(const gate_web_ctx *ctx, const gate_web_req *req, long long id,
                        gate_web_resp *resp)
{
    static const char *const fields[] = {NULL};
    json_t *o = gate__web_body(req, fields, resp);
    if (o == NULL)
        return;
    json_decref(o);
    gate_change c;
    keel_status s = gate_store_get(gate_get_store(ctx->g), id, &c);
    if (keel_ok(s) && strcmp(c.target, gate_target(ctx->g)) != 0)
        s = KEEL_ERR(KEEL_E_NOTFOUND, "no change %lld for '%s'", id, gate_target(ctx->g));
    if (keel_ok(s))
        s = gate_cancel(ctx->g, id);
    change_after(ctx, id, s, resp);
}

static void post_priority(const gate_web_ctx *ctx, const gate_web_req *req, long long id,
                          gate_web_resp *resp)
{
    static const char *const fields[] = {"priority", NULL};
    json_t *o = gate__web_body(req, fields, resp);
    if (o == NULL)
        return;
    int priority = 0;
    bool ok = int_field(o, "priority", true, &priority, resp);
    json_decref(o);
    if (!ok)
        return;
    gate_change c;
    keel_status s = gate_store_get(gate_get_store(ctx->g), id, &c);
    if (keel_ok(s) && strcmp(c.target, gate_target(ctx->g)) != 0)
        s = KEEL_ERR(KEEL_E_NOTFOUND, "no change %lld for '%s'", id, gate_target(ctx->g));
    if (keel_ok(s))
        s = gate_store_set_priority(gate_get_store(ctx->g), id, priority, (long long)time(NULL));
    change_after(ctx, id, s, resp);
}

static void post_pause(const gate_web_ctx *ctx, const gate_web_req *req, bool pause,
                       const gate_token *who, gate_web_resp *resp)
{
    static const char *const pause_fields[] = {"reason", NULL};
    static const char *const resume_fields[] = {NULL};
    json_t *o = gate__web_body(req, pause ? pause_fields : resume_fields, resp);
    if (o == NULL)
        return;
    bool bad = false;
    const char *reason = pause ? str_field(o, "reason", true, &bad, resp) : NULL;
    if (!bad && reason != NULL && strlen(reason) >= GATE_REASON_MAX) {
        bad = true;
        gate_web_error(resp, 400, "field 'reason' is longer than %d bytes", GATE_REASON_MAX - 1);
    }
    if (!bad) {
        gate_store *st = gate_get_store(ctx->g);
        long long now = (long long)time(NULL);
        keel_status s = pause ? gate_store_pause(st, gate_target(ctx->g), reason, who->name, now)
                              : gate_store_resume(st, gate_target(ctx->g), who->name, now);
        if (keel_ok(s))
            get_queue(ctx, resp);
        else
            gate__web_status(resp, s);
    }
    json_decref(o);
}

/* A file of the dashboard: true when the path names one (resp: it, or 405 for another method). */
static bool page(const gate_web_req *req, gate_web_resp *resp)
{
    const char *type = NULL;
    const gate_page_file *f = gate_page_find(req->path, &type);
    if (f == NULL)
        return false;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        resp->allow = "GET, HEAD";
        gate_web_error(resp, 405, "%s does not take %s (it takes GET, HEAD)", req->path,
                       req->method);
        return true;
    }
    resp->body = heap_copy((const char *)f->data, f->len);
    if (resp->body == NULL) {
        gate_web_error(resp, 500, "no memory for the page");
        return true;
    }
    resp->len = f->len;
    resp->status = 200;
    resp->kind = GATE_WEB_PAGE;
    resp->content_type = type;
    return true;
}

/* ---- routing ---------------------------------------------------------------------------- */

enum { SEG_MAX = 6 };

typedef enum route_id {
    R_QUEUE,
    R_PAUSE,
    R_RESUME,
    R_CHANGES,
    R_CHANGE,
    R_CANCEL,
    R_PRIORITY,
    R_LOG,
    R_COMMITS,
    R_BRANCH,
    R_LEVELS,
    R_EVENTS,
    R_SERIES,
    R_CULPRITS,
    R_BACKOUTS,
    R_BREAKER_RESET,
    R_FLOWS,
    R_TARGETS,
    R_NONE
} route_id;

typedef struct route {
    route_id id;
    const char *pattern[4];           /* "#": a positive number */
    const char *get_role, *post_role; /* NULL: not taken; "": public (reads, when they are) */
    const char *query;                /* the query arguments it reads, besides target */
} route;

static const route routes[] = {
    {R_QUEUE, {"queue"}, "", NULL, ""},
    {R_PAUSE, {"queue", "pause"}, NULL, "admin", ""},
    {R_RESUME, {"queue", "resume"}, NULL, "admin", ""},
    {R_CHANGES, {"changes"}, "", "submit", ""},
    {R_CHANGE, {"changes", "#"}, "", NULL, ""},
    {R_CANCEL, {"changes", "#", "cancel"}, NULL, "submit", ""},
    {R_PRIORITY, {"changes", "#", "priority"}, NULL, "admin", ""},
    {R_LOG, {"jobs", "#", "log"}, "", NULL, "offset limit"},
    {R_COMMITS, {"commits"}, "", NULL, "limit"},
    {R_BRANCH, {"branch"}, "", NULL, "name"},
    {R_LEVELS, {"levels"}, "", NULL, ""},
    {R_EVENTS, {"events"}, "", NULL, "after"},
    {R_SERIES, {"series"}, "", NULL, "hours"},
    {R_CULPRITS, {"culprits"}, "", NULL, ""},
    {R_BACKOUTS, {"backouts"}, "", NULL, ""},
    {R_BREAKER_RESET, {"backouts", "breaker", "reset"}, NULL, "admin", ""},
    {R_FLOWS, {"flows"}, "", NULL, ""},
    {R_TARGETS, {"targets"}, "", NULL, ""},
};
enum { NROUTES = sizeof(routes) / sizeof(routes[0]) };

/* path under /api/v1/ split at '/' (one trailing '/' allowed): false for an empty segment */
static bool split(const char *path, char segs[SEG_MAX][80], size_t *n)
{
    *n = 0;
    size_t total = strlen(path);
    if (total > 0 && path[total - 1] == '/')
        total--;
    for (size_t i = 0; i < total;) {
        const char *slash = (const char *)memchr(path + i, '/', total - i);
        size_t len = slash != NULL ? (size_t)(slash - (path + i)) : total - i;
        if (*n == SEG_MAX || len == 0 || len >= 80)
            return false;
        memcpy(segs[*n], path + i, len);
        segs[*n][len] = '\0';
        (*n)++;
        i += len + 1;
        if (slash != NULL && i >= total)
            return false;
    }
    return *n > 0;
}

static bool matches(const route *r, char segs[SEG_MAX][80], size_t n, long long *num)
{
    size_t len = 0;
    while (len < 4 && r->pattern[len] != NULL)
        len++;
    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r->pattern[i], "#") == 0) {
            if (!parse_count(segs[i], num) || *num < 1)
                return false;
        } else if (strcmp(r->pattern[i], segs[i]) != 0) {
            return false;
        }
    }
    return true;
}

static bool has_dot_segment(const char *path)
{
    for (const char *p = path; (p = strstr(p, "/.")) != NULL; p++)
        if (p[2] == '/' || p[2] == '\0' || (p[2] == '.' && (p[3] == '/' || p[3] == '\0')))
            return true;
    return false;
}

/* May `who` do what `role` needs?  Else resp says why (401: no token, 403: too weak). */
static bool allowed(const gate_web_ctx *ctx, const gate_web_req *req, const char *role,
                    const gate_token *who, gate_web_resp *resp)
{
    gate_role need = role[0] != '\0' ? gate_role_from_name(role)
                                     : (ctx->token_reads ? GATE_ROLE_READ : GATE_ROLE_NONE);
    if (who->role >= need)
        return true;
    if (who->role == GATE_ROLE_NONE)
        gate_web_error(resp, 401,
                       "%s needs a token of role '%s' or more: send 'Authorization: "
                       "Bearer <token>' (keel-gate token add)%s",
                       req->path, gate_role_name(need),
                       req->authorization != NULL ? " (the token sent is not known)" : "");
    else
        gate_web_error(resp, 403, "%s needs a token of role '%s' or more: token '%s' has role '%s'",
                       req->path, gate_role_name(need), who->name, gate_role_name(who->role));
    return false;
}

static void dispatch(const gate_web_ctx *ctx, const gate_web_req *req, const route *r,
                     long long num, const gate_token *who, gate_web_resp *resp)
{
    bool get = strcmp(req->method, "GET") == 0;
    switch (r->id) {
    case R_QUEUE:
        get_queue(ctx, resp);
        break;
    case R_PAUSE:
        post_pause(ctx, req, true, who, resp);
        break;
    case R_RESUME:
        post_pause(ctx, req, false, who, resp);
        break;
    case R_CHANGES:
        if (get)
            get_changes(ctx, resp);
        else
            post_submit(ctx, req, resp);
        break;
    case R_CHANGE:
        get_change(ctx, num, resp);
        break;
    case R_CANCEL:
        post_cancel(ctx, req, num, resp);
        break;
    case R_PRIORITY:
        post_priority(ctx, req, num, resp);
        break;
    case R_LOG:
        get_log(ctx, req, num, resp);
        break;
    case R_COMMITS:
        get_commits(ctx, req, resp);
        break;
    case R_BRANCH:
        get_branch(ctx, req, resp);
        break;
    case R_LEVELS:
        get_levels(ctx, resp);
        break;
    case R_SERIES:
        get_series(ctx, req, resp);
        break;
    case R_CULPRITS:
        gate__web_culprits(ctx, resp);
        break;
    case R_BACKOUTS:
        gate__web_backouts(ctx, resp);
        break;
    case R_BREAKER_RESET:
        gate__web_breaker_reset(ctx, req, who, resp);
        break;
    case R_FLOWS:
        gate__web_flows(ctx, resp);
        break;
    case R_TARGETS:
        gate__web_targets(ctx, resp);
        break;
    case R_EVENTS: {
        long long after = 0;
        const char *from = req->last_event_id != NULL ? req->last_event_id : req->q_after;
        keel_status s = KEEL_OK;
        if (from != NULL && !parse_count(from, &after)) {
            gate_web_error(resp, 400, "Last-Event-ID or after must be an event id, not '%s'", from);
            return;
        }
        if (from == NULL)
            s = gate_store_last_event(gate_get_store(ctx->g), &after);
        if (!keel_ok(s)) {
            gate__web_status(resp, s);
            return;
        }
        resp->status = 200;
        resp->kind = GATE_WEB_EVENTS;
        resp->after = after;
        break;
    }
    case R_NONE:
    default:
        gate_web_error(resp, 404, "no endpoint %s", req->path);
        break;
    }
}

/* A write under an Idempotency-Key: the first response again, or 422 for another request. */
static void idempotent(const gate_web_ctx *ctx, const gate_web_req *req, const route *r,
                       long long num, const gate_token *who, gate_web_resp *resp)
{
    size_t kl = strlen(req->idempotency_key);
    for (size_t i = 0; i < kl; i++)
        if (req->idempotency_key[i] < 0x21 || req->idempotency_key[i] > 0x7e)
            kl = 0;
    if (kl == 0 || kl > IDEM_KEY_MAX) {
        gate_web_error(resp, 400, "Idempotency-Key must be 1 to %d visible ASCII characters",
                       IDEM_KEY_MAX);
        return;
    }
    /* the request: method, path and body, hashed */
    const char *target = req->q_target != NULL ? req->q_target : ""; /* ?target=: its own key */
    size_t need = strlen(req->method) + strlen(req->path) + strlen(target) + req->body_len + 10;
    char *text = (char *)gate__web_calloc(need, 1);
    if (text == NULL) {
        gate_web_error(resp, 500, "no memory for the request");
        return;
    }
    int head = snprintf(text, need, "%s\n%s%s%s\n", req->method, req->path,
                        target[0] != '\0' ? "?target=" : "", target);
    if (req->body_len > 0)
        memcpy(text + head, req->body, req->body_len);
    char hash[GATE_TOKEN_HASH_HEX], seen[GATE_TOKEN_HASH_HEX];
    gate_sha256_hex(text, (size_t)head + req->body_len, hash);
    keel_heap_free(WEB_HEAP, text);
    gate_store *st = gate_get_store(ctx->g);
    bool found = false;
    int status = 0;
    char *body = NULL;
    keel_status s = gate_store_idem_get(st, req->idempotency_key, &found, seen, &status, &body);
    if (!keel_ok(s)) {
        gate__web_status(resp, s);
        return;
    }
    if (found && strcmp(seen, hash) != 0) {
        free(body);
        gate_web_error(resp, 422,
                       "Idempotency-Key '%s' was used for another request (another method, "
                       "path or body): use a new key",
                       req->idempotency_key);
        return;
    }
    if (found) { /* the store's copy (malloc'd) onto the server's heap */
        gate_web_resp_free(resp);
        resp->len = strlen(body);
        resp->body = heap_copy(body, resp->len);
        free(body);
        if (resp->body == NULL) {
            gate_web_error(resp, 500, "no memory for the response");
            return;
        }
        resp->status = status;
        resp->kind = GATE_WEB_JSON;
        return;
    }
    dispatch(ctx, req, r, num, who, resp);
    if (resp->status < 500) {
        s = gate_store_idem_put(st, req->idempotency_key, hash, resp->status,
                                resp->body != NULL ? resp->body : "", (long long)time(NULL));
        if (!keel_ok(s))
            keel_status_ignore(s, "the write is done; a retry with this key may do it again");
    }
}

/*
 * The query's arguments: each one the endpoint reads (and target), none
 * twice, each with a value; else 400 saying which, never ignored (a
 * ?limit= where none is read, a ?limit=1&limit=2 whose first was taken).
 */
static bool query_ok(const route *r, const gate_web_req *req, gate_web_resp *resp)
{
    const struct {
        const char *name, *value;
    } given[] = {{"offset", req->q_offset},
                 {"limit", req->q_limit},
                 {"after", req->q_after},
                 {"hours", req->q_hours},
                 {"name", req->q_name}};
    const char *extra = NULL;
    for (size_t i = 0; extra == NULL && i < sizeof(given) / sizeof(given[0]); i++) {
        size_t len = strlen(given[i].name);
        const char *at = strstr(r->query, given[i].name);
        bool read =
            at != NULL && (at == r->query || at[-1] == ' ') && (at[len] == '\0' || at[len] == ' ');
        if (given[i].value != NULL && !read)
            extra = given[i].name;
    }
    if (req->q_error == NULL && extra == NULL)
        return true;
    if (req->q_error != NULL)
        gate_web_error(resp, 400, "%s: %s", req->path, req->q_error);
    else
        gate_web_error(resp, 400, "%s takes no query argument '%s' (it takes %s%s)", req->path,
                       extra, r->query, r->query[0] != '\0' ? " and target" : "target");
    return false;
}

void gate_web_route(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp)
{
    memset(resp, 0, sizeof(*resp));
    if (page(req, resp))
        return;
    static const char prefix[] = "/api/v1/";
    if (has_dot_segment(req->path)) {
        gate_web_error(resp, 400, "path '%s' has a '.' or '..' segment", req->path);
        return;
    }
    if (strncmp(req->path, prefix, sizeof(prefix) - 1) != 0) {
        gate_web_error(resp, 404, "no endpoint %s: the API is under %s", req->path, prefix);
        return;
    }
    char segs[SEG_MAX][80];
    size_t n = 0;
    long long num = 0;
    const route *r = NULL;
    if (split(req->path + sizeof(prefix) - 1, segs, &n))
        for (size_t i = 0; r == NULL && i < NROUTES; i++)
            if (matches(&routes[i], segs, n, &num))
                r = &routes[i];
    if (r == NULL) {
        gate_web_error(resp, 404, "no endpoint %s", req->path);
        return;
    }
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    bool post = strcmp(req->method, "POST") == 0;
    const char *role = get ? r->get_role : post ? r->post_role : NULL;
    if (role == NULL) {
        resp->allow = r->get_role != NULL && r->post_role != NULL ? "GET, HEAD, POST"
                      : r->get_role != NULL                       ? "GET, HEAD"
                                                                  : "POST";
        gate_web_error(resp, 405, "%s does not take %s (it takes %s)", req->path, req->method,
                       resp->allow);
        return;
    }
    if (!query_ok(r, req, resp))
        return;
    gate_token who;
    keel_status s = gate_token_check(gate_get_store(ctx->g), req->authorization, &who);
    if (!keel_ok(s)) {
        gate__web_status(resp, s);
        return;
    }
    gate_web_ctx on; /* ?target= */
    if (!allowed(ctx, req, role, &who, resp) || !gate__web_target(ctx, req, &on, resp))
        return;
    if (post && req->idempotency_key != NULL)
        idempotent(&on, req, r, num, &who, resp);
    else
        dispatch(&on, req, r, num, &who, resp);
    if (resp->kind == GATE_WEB_EVENTS)
        resp->events_of = on.g;
}
