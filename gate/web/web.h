/*
 * gate/web/web.h - keel-gate serve: the HTTP API (docs/gate-api.md) over the
 * gate's store, with bearer tokens (auth.c), on libmicrohttpd (server.c);
 * the routes (routes.c) take a request already read whole, so that the
 * fuzzer (fuzz/fuzz_gate_web.c) drives them without a socket.
 */
#ifndef KEEL_GATE_WEB_H
#define KEEL_GATE_WEB_H

#include <stdbool.h>
#include <stddef.h>

#include "gate.h"
#include "store_web.h"

/*
 * The server's memory: request bodies, the responses built (the JSON text,
 * a log's bytes, the dashboard's files), the event streams and what they
 * have to send, and the server itself, on module gate_web's heap (defined
 * in routes.c; docs/gate.md "Memory: module heaps"), so that a quota bounds
 * it, `status --memory` shows it, and in devel builds keel's poisoned heap
 * catches a leak, an overflow or a use after free there.  Jansson's own
 * objects (the JSON trees before they are written out) stay on malloc.
 */
KEEL_MODULE_DECLARE(gate_web);
#define GATE_WEB_HEAP KEEL_MODULE_REF(gate_web)

/* ---- tokens (auth.c) ------------------------------------------------------------------ */

enum { GATE_TOKEN_LEN = 3 + 64, GATE_TOKEN_MAX = GATE_TOKEN_LEN + 1 }; /* "kg_" + 64 hex */

/* A new random token (getrandom), "kg_" and 64 hex digits. */
KEEL_MUST_USE keel_status gate_token_new(char token[GATE_TOKEN_MAX]);
/* SHA-256 of `len` bytes of `data`, in hex. */
void gate_sha256_hex(const void *data, size_t len, char hex[GATE_TOKEN_HASH_HEX]);
/*
 * The token an Authorization header names ("Bearer <token>"): its name and
 * role into *out (role GATE_ROLE_NONE: no header, or no such token).
 */
KEEL_MUST_USE keel_status gate_token_check(gate_store *st, const char *authorization,
                                           gate_token *out);

/* ---- the server (server.c) ------------------------------------------------------------- */

typedef struct gate_web_options {
    const char *listen;       /* "HOST:PORT" (IPv4), port 0: a free one (default 127.0.0.1:8080) */
    bool token_reads;         /* reads need a token of role read or more (default: public) */
    unsigned max_connections; /* beyond: 503 with a JSON error (default 1536) */
    unsigned max_per_address; /* connections from one client address at once; beyond: 429 (0: no
                                 limit, the default: behind a reverse proxy all are the proxy's) */
    unsigned timeout_s;       /* an idle connection is closed after this (default 15) */
    size_t max_body;          /* a larger request body: 413 (default 64 KiB) */
    /*
     * A whole request (headers and body) must arrive within this, counted
     * from its connection's opening or the end of the request before it on
     * the connection; past it: 408, closed.  Its answer, an event stream, a
     * worker's time do not count (default 60; 0: none).
     */
    unsigned deadline_s;
    /*
     * The submits and branch views whose git work runs at once, each on a
     * worker thread of its own while the server thread answers others; past
     * them 503 (default 4, at most GATE_WEB_WORKERS_MAX; 0: that work on the
     * server thread).
     */
    unsigned max_workers;
    int nice; /* the server's threads run at this nice value or nicer, 0..19 (default 10: a loaded
                 server takes CPU from the gate and its jobs last; 0: the caller's priority) */
    /*
     * The gates of every target the server answers for with ?target= (one
     * store; borrowed, used by the server's one thread only until
     * gate_web_stop; gate_targets_open makes them).  NULL, 0: the default
     * target's gate alone.
     */
    gate *const *targets;
    size_t ntargets;
} gate_web_options;

enum { GATE_WEB_WORKERS_MAX = 64 };

void gate_web_options_default(gate_web_options *o);

typedef struct gate_web gate_web;

/*
 * Serve `g`'s store (the gate stays the caller's, and is used by the
 * server's one thread only until gate_web_stop).
 */
KEEL_MUST_USE keel_status gate_web_start(gate *g, const gate_web_options *o, gate_web **out);
/* Is `listen` an address gate_web_start takes ("HOST:PORT", an IPv4 address)?  KEEL_E_INVAL why not. */
KEEL_MUST_USE keel_status gate_web_listen_check(const char *listen);
/* "HOST:PORT" it listens on (the port chosen when 0 was asked). */
const char *gate_web_address(const gate_web *w);
void gate_web_stop(gate_web *w);

/* ---- a request, read whole, and its response (routes.c) -------------------------------- */

/*
 * The git work of a request that may be slow (routes_work.c): a submit's (a
 * remote's branch and target fetched into the mirror, under its lock, and
 * the target's history walked) or the branch view's (the walk).  The routes
 * make it (a response of kind GATE_WEB_WORK), a worker thread of the server
 * does it with a repository handle of its own (no gate handle, no store),
 * and the same request is routed again with it done (gate_web_req.work).
 */
typedef struct gate_web_work {
    bool branch_view;            /* GET /branch; else POST /changes */
    char dir[1024];              /* gate_repo_place: the repository, or a remote's mirror */
    char url[1024];              /* a remote's URL; "": a local repository */
    char target[GATE_NAME_MAX];  /* the request's target */
    char branch[GATE_NAME_MAX];  /* checked (gate_branch_check): it fits */
    char expected[GATE_OID_HEX]; /* a submit's expected_head; "": any */
    keel_status s;               /* what the work found: its error */
    gate_submit_seen seen;       /* a submit's */
    gate_branch_view view;       /* a branch view's */
    bool done;                   /* __atomic_: s and its findings are set */
} gate_web_work;

/* Do k (on a worker thread): k->s and its findings. */
void gate_web_work_do(gate_web_work *k);
/* k and its status freed (NULL: nothing). */
void gate_web_work_free(gate_web_work *k);

typedef struct gate_web_req {
    const char *method, *path; /* path without the query */
    const char *authorization; /* headers; NULL: absent */
    const char *idempotency_key;
    const char *last_event_id;
    const char *range;
    const char *q_offset, *q_limit, *q_after, *q_hours, *q_name; /* query arguments; NULL: absent */
    const char *q_target; /* ?target=: the target the request is about (NULL: the default) */
    /* the query's first argument that is no known one, has no value or is given twice ("unknown
       query argument 'foo'"); NULL: none.  The API answers 400 with it */
    const char *q_error;
    const char *body;
    size_t body_len;
    /* the request's git work, done (its second routing); NULL: none yet.  A route takes
       its status (k->s is KEEL_OK afterwards) */
    gate_web_work *work;
} gate_web_req;

typedef enum gate_web_kind {
    GATE_WEB_JSON,   /* body: JSON */
    GATE_WEB_BYTES,  /* body: a log's bytes (text/plain), content_range set for 206 */
    GATE_WEB_EVENTS, /* a server-sent event stream after event `after` */
    GATE_WEB_PAGE,   /* body: a file of the dashboard (gate/web/page), of type content_type */
    GATE_WEB_WORK    /* no response yet: `work` to do on a worker, then the request again */
} gate_web_kind;

typedef struct gate_web_resp {
    int status;
    gate_web_kind kind;
    char *body; /* on GATE_WEB_HEAP, NUL-ended (gate_web_resp_free) */
    size_t len;
    char content_range[96];
    const char *allow;        /* 405: the methods the path takes */
    long long after;          /* GATE_WEB_EVENTS */
    const char *content_type; /* GATE_WEB_PAGE */
    gate *events_of;          /* GATE_WEB_EVENTS: the target's gate whose events stream */
    gate_web_work *work;      /* GATE_WEB_WORK, on GATE_WEB_HEAP (gate_web_resp_free frees it) */
} gate_web_resp;

typedef struct gate_web_ctx {
    gate *g; /* the default target's */
    bool token_reads;
    gate *const *targets; /* every target's (gate_web_options); ?target= picks one */
    size_t ntargets;
    bool workers; /* slow git work is the server's workers' (GATE_WEB_WORK); false: done here */
} gate_web_ctx;

/* Answer `req` into *resp (gate_web_resp_free frees its body): never fails, says the error. */
void gate_web_route(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp);
/* resp's body (and work) freed (NULL afterwards) */
void gate_web_resp_free(gate_web_resp *resp);
/* resp as {"error": msg} with `status` */
void gate_web_error(gate_web_resp *resp, int status, const char *fmt, ...) KEEL_PRINTF(3, 4);
/*
 * The events after `after` as text/event-stream records, at most `max` of
 * them (*last: the id), *text on GATE_WEB_HEAP (NULL when there are none).
 */
KEEL_MUST_USE keel_status gate_web_events_text(gate *g, long long after, size_t max, char **text,
                                               size_t *len, long long *last);

#endif /* KEEL_GATE_WEB_H */
