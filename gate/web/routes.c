/*
 * routes.c - keel-gate serve's API (docs/gate-api.md): a request read whole
 * (server.c, or the fuzzer) answered as JSON from the gate's store.  Writes
 * need a token of their role and honour an Idempotency-Key; bad input is
 * refused with {"error": "..."} before anything changes.  This file: the
 * responses (JSON, errors from a status), the dashboard's files and the
 * routing (path, method, query, token, Idempotency-Key); the reads are in
 * routes_read.c, the writes in routes_write.c.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "git.h"
#include "heaps.h"
#include "page.h"
#include "routes_int.h"
#include "web.h"

enum { IDEM_KEY_MAX = 128 };

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
bool gate__web_buf_dump(gate_web_buf *b, const json_t *o)
{
    return json_dump_callback(o, buf_json, b, JSON_COMPACT) == 0 && !b->failed;
}

/* o as compact JSON on the server's heap, NUL-ended (NULL: no memory), its length in *len */
static char *dump(const json_t *o, size_t *len)
{
    gate_web_buf b = {NULL, 0, 0, false};
    if (!gate__web_buf_dump(&b, o) || b.p == NULL) {
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
    gate_web_work_free(resp->work);
    resp->work = NULL;
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

keel_status gate__web_change_get(const gate_web_ctx *ctx, long long id, gate_change *c)
{
    keel_status s = gate_store_get(gate_get_store(ctx->g), id, c);
    if (keel_ok(s) && strcmp(c->target, gate_target(ctx->g)) != 0)
        s = KEEL_ERR(KEEL_E_NOTFOUND, "no change %lld for '%s'", id, gate_target(ctx->g));
    return s;
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
    if (j != NULL)
        return j;
    /* text cut to fit its field may end inside a character: without that character's part */
    size_t n = strlen(s), cut = 0;
    while (cut < 3 && cut < n && ((unsigned char)s[n - 1 - cut] & 0xC0) == 0x80)
        cut++;
    if (cut < n && ((unsigned char)s[n - 1 - cut] & 0xC0) == 0xC0)
        j = json_stringn(s, n - cut - 1);
    return j != NULL ? j : json_string("(not UTF-8)");
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

/* A whole non-negative number (at most LLONG_MAX), else false. */
bool gate__web_count(const char *text, long long *out)
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
            if (!gate__web_count(segs[i], num) || *num < 1)
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
    /* HEAD is a GET whose body is not sent: never a write */
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    switch (r->id) {
    case R_QUEUE:
        gate__web_queue(ctx, resp);
        break;
    case R_PAUSE:
        gate__web_pause(ctx, req, true, who, resp);
        break;
    case R_RESUME:
        gate__web_pause(ctx, req, false, who, resp);
        break;
    case R_CHANGES:
        if (get)
            gate__web_changes(ctx, resp);
        else
            gate__web_submit(ctx, req, resp);
        break;
    case R_CHANGE:
        gate__web_change(ctx, num, resp);
        break;
    case R_CANCEL:
        gate__web_cancel(ctx, req, num, resp);
        break;
    case R_PRIORITY:
        gate__web_priority(ctx, req, num, resp);
        break;
    case R_LOG:
        gate__web_log(ctx, req, num, resp);
        break;
    case R_COMMITS:
        gate__web_commits(ctx, req, resp);
        break;
    case R_BRANCH:
        gate__web_branch(ctx, req, resp);
        break;
    case R_LEVELS:
        gate__web_levels(ctx, resp);
        break;
    case R_SERIES:
        gate__web_series(ctx, req, resp);
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
        if (from != NULL && !gate__web_count(from, &after)) {
            gate_web_error(
                resp, 400,
                "header 'Last-Event-ID' or query argument 'after' must be an event id, not '%s'",
                from);
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
        gate_web_error(resp, 400,
                       "header 'Idempotency-Key' must be 1 to %d visible ASCII characters",
                       IDEM_KEY_MAX);
        return;
    }
    /* the request: method, path, body and the token's name, hashed (another token's request
     * with the same key is another request: never answered with the first one's response) */
    const char *target = req->q_target != NULL ? req->q_target : ""; /* ?target=: its own key */
    const char *by = who != NULL ? who->name : "";
    size_t need =
        strlen(req->method) + strlen(req->path) + strlen(target) + strlen(by) + req->body_len + 12;
    char *text = (char *)gate__web_calloc(need, 1);
    if (text == NULL) {
        gate_web_error(resp, 500, "no memory for the request");
        return;
    }
    int head = snprintf(text, need, "%s\n%s%s%s\n%s\n", req->method, req->path,
                        target[0] != '\0' ? "?target=" : "", target, by);
    if (req->body_len > 0)
        memcpy(text + head, req->body, req->body_len);
    char hash[GATE_TOKEN_HASH_HEX], seen[GATE_TOKEN_HASH_HEX];
    gate_sha256_hex(text, (size_t)head + req->body_len, hash);
    keel_heap_free(WEB_HEAP, text);
    gate_store *st = gate_get_store(ctx->g);
    bool found = false;
    int status = 0;
    char *body = NULL;
    keel_status s = gate_store_idem_get(st, req->idempotency_key, (long long)time(NULL), &found,
                                        seen, &status, &body);
    if (!keel_ok(s)) {
        gate__web_status(resp, s);
        return;
    }
    if (found && strcmp(seen, hash) != 0) {
        free(body);
        gate_web_error(resp, 422,
                       "idempotency key '%s' was used for another request (another method, "
                       "path, body or token): use a new key",
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
    if (resp->status < 500 && resp->kind != GATE_WEB_WORK) { /* work: kept once it is done */
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
