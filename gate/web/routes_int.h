/*
 * gate/web/routes_int.h - what the API's route files share (routes.c: the
 * responses and the routing; routes_read.c: the reads; routes_write.c: the
 * writes; routes_after.c: the culprit searches, backouts and branch flows;
 * routes_targets.c: ?target=; routes_work.c: the git work done on a worker):
 * JSON responses, errors from a status, memory
 * on the server's heap, the endpoints the routing calls.  Not an API.
 */
#ifndef KEEL_GATE_WEB_ROUTES_INT_H
#define KEEL_GATE_WEB_ROUTES_INT_H

#include <jansson.h>

#include "heaps.h"
#include "web.h"

/* the server's memory (web.h): its arrays, large and made per request, too */
#define WEB_HEAP GATE_WEB_HEAP

/* n zeroed elements of `size` on the server's heap (NULL: no memory); keel_heap_free(WEB_HEAP) */
void *gate__web_calloc(size_t n, size_t size);
/* resp as `o` (taken) with `status` */
void gate__web_json(gate_web_resp *resp, int status, json_t *o);
/* A failed status as its HTTP error (404, 409, 400 or 500 by its codes; the status freed). */
void gate__web_status(gate_web_resp *resp, keel_status s);
/* A text growing on the server's heap, NUL-ended; `failed`: out of memory (the owner frees p). */
typedef struct gate_web_buf {
    char *p;
    size_t len, cap;
    bool failed;
} gate_web_buf;
/* Append n bytes of data to b (nothing once it failed). */
void gate__web_buf_add(gate_web_buf *b, const char *data, size_t n);

/* o as compact JSON into b (false: no memory) */
bool gate__web_buf_dump(gate_web_buf *b, const json_t *o);

/*
 * Change `id` of ctx's target: another target's is KEEL_E_NOTFOUND, "no
 * change N for 'T'", as a change that is not there (routes.c).
 */
keel_status gate__web_change_get(const gate_web_ctx *ctx, long long id, gate_change *c);

/* A JSON string of s ("(not UTF-8)" when it is not; a text cut inside a character without it). */
json_t *gate__web_str(const char *s);

/* A whole non-negative number (at most LLONG_MAX), else false (routes.c). */
bool gate__web_count(const char *text, long long *out);

/* A change as the API shows it (routes_read.c) */
json_t *gate__web_change_json(const gate_change *c);

/*
 * The reads (routes_read.c): GET /queue, /changes, /changes/N, /series,
 * /jobs/N/log, /levels, /branch, /commits.
 */
void gate__web_queue(const gate_web_ctx *ctx, gate_web_resp *resp);
void gate__web_changes(const gate_web_ctx *ctx, gate_web_resp *resp);
void gate__web_change(const gate_web_ctx *ctx, long long id, gate_web_resp *resp);
void gate__web_series(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp);
void gate__web_log(const gate_web_ctx *ctx, const gate_web_req *req, long long id,
                   gate_web_resp *resp);
void gate__web_levels(const gate_web_ctx *ctx, gate_web_resp *resp);
void gate__web_branch(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp);
void gate__web_commits(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp);

/*
 * The body as a JSON object whose keys are all in `fields` (NULL-ended); an
 * empty body is {}.  NULL: refused (resp says why).
 */
json_t *gate__web_body(const gate_web_req *req, const char *const *fields, gate_web_resp *resp);

/*
 * The writes (routes_write.c): POST /changes, /changes/N/cancel,
 * /changes/N/priority, /queue/pause (pause) and /queue/resume.
 */
void gate__web_submit(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp);
void gate__web_cancel(const gate_web_ctx *ctx, const gate_web_req *req, long long id,
                      gate_web_resp *resp);
void gate__web_priority(const gate_web_ctx *ctx, const gate_web_req *req, long long id,
                        gate_web_resp *resp);
void gate__web_pause(const gate_web_ctx *ctx, const gate_web_req *req, bool pause,
                     const gate_token *who, gate_web_resp *resp);

/*
 * The slow git work of a submit or a branch view (routes_work.c): resp as
 * the work for the server's workers, of `branch` for ctx's target, a
 * submit's at `expected` (NULL: any).  `branch` is the caller's to check
 * first (gate_branch_check, or gate_submit_check, which calls it): a valid
 * name, so that it fits (at most 255 bytes).
 */
void gate__web_work(const gate_web_ctx *ctx, bool branch_view, const char *branch,
                    const char *expected, gate_web_resp *resp);
/* The status of req's work, done (the caller's to free; the work's is KEEL_OK afterwards). */
keel_status gate__web_work_taken(const gate_web_req *req);

/* GET /culprits, GET /backouts, GET /flows, POST /backouts/breaker/reset (routes_after.c) */
void gate__web_culprits(const gate_web_ctx *ctx, gate_web_resp *resp);
void gate__web_backouts(const gate_web_ctx *ctx, gate_web_resp *resp);
void gate__web_flows(const gate_web_ctx *ctx, gate_web_resp *resp);
void gate__web_breaker_reset(const gate_web_ctx *ctx, const gate_web_req *req,
                             const gate_token *who, gate_web_resp *resp);

/*
 * ?target= (routes_targets.c): *out is ctx answering for the target the
 * request names (ctx itself when it names none, or the default); false: no
 * such target among the server's (resp: 404 naming it and the targets).
 */
bool gate__web_target(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_ctx *out,
                      gate_web_resp *resp);
/* GET /targets: every target the server shows, the default first (routes_targets.c) */
void gate__web_targets(const gate_web_ctx *ctx, gate_web_resp *resp);

#endif /* KEEL_GATE_WEB_ROUTES_INT_H */
