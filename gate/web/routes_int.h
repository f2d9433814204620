/*
 * gate/web/routes_int.h - what the API's route files share (routes.c, and
 * routes_after.c: the culprit searches, backouts and branch flows): JSON
 * responses, errors from a status, memory on the server's heap.  Not an API.
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

/* A JSON string of s ("(not UTF-8)" when it is not). */
json_t *gate__web_str(const char *s);

/*
 * The body as a JSON object whose keys are all in `fields` (NULL-ended); an
 * empty body is {}.  NULL: refused (resp says why).
 */
json_t *gate__web_body(const gate_web_req *req, const char *const *fields, gate_web_resp *resp);

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
