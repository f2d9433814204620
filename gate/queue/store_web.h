/*
 * gate/queue/store_web.h - what keel-gate serve keeps in the store besides the
 * queue (store_web.c): API tokens (hashed, never in clear), idempotency keys
 * of writes with the response they got, a queue's pause, and the readings of
 * the history the API serves (events after a cursor, recent landings, build
 * times for the estimated time to land).
 */
#ifndef KEEL_GATE_STORE_WEB_H
#define KEEL_GATE_STORE_WEB_H

#include "store.h"

/* ---- tokens ---------------------------------------------------------------------- */

typedef enum gate_role {
    GATE_ROLE_NONE,
    GATE_ROLE_READ,
    GATE_ROLE_SUBMIT,
    GATE_ROLE_ADMIN
} gate_role;

enum { GATE_TOKEN_HASH_HEX = 65 }; /* SHA-256 in hex and its NUL */

const char *gate_role_name(gate_role r);
/* "read", "submit", "admin": the role; else GATE_ROLE_NONE. */
gate_role gate_role_from_name(const char *name);

typedef struct gate_token {
    char name[GATE_NAME_MAX];
    gate_role role;
    long long created_at; /* seconds */
} gate_token;

/* A new token `name` (KEEL_E_EXISTS while one of that name is not revoked), by its hash. */
KEEL_MUST_USE keel_status gate_store_token_add(gate_store *st, const char *name, gate_role role,
                                               const char *hash_hex, long long now);
/* Revoke the token `name` (KEEL_E_NOTFOUND: none of that name). */
KEEL_MUST_USE keel_status gate_store_token_revoke(gate_store *st, const char *name, long long now);
/* The tokens not revoked, by name: the first `max` of *n. */
KEEL_MUST_USE keel_status gate_store_token_list(gate_store *st, gate_token *out, size_t max,
                                                size_t *n);
/*
 * The token whose hash is `hash_hex`: every token not revoked is compared,
 * each in constant time, whatever matched before (*out zeroed, role
 * GATE_ROLE_NONE: none).
 */
KEEL_MUST_USE keel_status gate_store_token_find(gate_store *st, const char *hash_hex,
                                                gate_token *out);

/* ---- idempotency keys -------------------------------------------------------------- */

/*
 * The response kept for `key`, unless older than 7 days at `now` (a key is
 * kept that long): *found; the hash of the request it answered (method,
 * path, body), its HTTP status and body (malloc'd, the caller frees).
 */
KEEL_MUST_USE keel_status gate_store_idem_get(gate_store *st, const char *key, long long now,
                                              bool *found, char request_hash[GATE_TOKEN_HASH_HEX],
                                              int *status, char **body);
/* Keep the response to `key` (the first one stays when two race). */
KEEL_MUST_USE keel_status gate_store_idem_put(gate_store *st, const char *key,
                                              const char *request_hash, int status,
                                              const char *body, long long now);

/* ---- the queue's pause ------------------------------------------------------------- */

/* Pause `target`'s queue: no new candidate is built until it resumes (an event "pause"). */
KEEL_MUST_USE keel_status gate_store_pause(gate_store *st, const char *target, const char *reason,
                                           const char *by, long long now);
/* Resume it (KEEL_E_STATE: it was not paused); an event "resume". */
KEEL_MUST_USE keel_status gate_store_resume(gate_store *st, const char *target, const char *by,
                                            long long now);
/* Is it paused: *paused, with the reason and since when (reason may be NULL). */
KEEL_MUST_USE keel_status gate_store_paused(gate_store *st, const char *target, bool *paused,
                                            char *reason, size_t size, long long *since);

/* A queued change's priority (KEEL_E_STATE once it is no longer queued); an event "priority". */
KEEL_MUST_USE keel_status gate_store_set_priority(gate_store *st, long long id, int priority,
                                                  long long now);

/* ---- reading the history ------------------------------------------------------------ */

enum { GATE_EVENT_KIND_MAX = 32, GATE_EVENT_DETAIL_MAX = 2048 };

typedef struct gate_event {
    long long id, time, change;
    char kind[GATE_EVENT_KIND_MAX];
    char detail[GATE_EVENT_DETAIL_MAX]; /* JSON; one too long for it: {"detail_cut":true} */
} gate_event;

/* The events of `target` after event `after`, oldest first: at most `max`. */
KEEL_MUST_USE keel_status gate_store_events_after(gate_store *st, const char *target,
                                                  long long after, gate_event *out, size_t max,
                                                  size_t *n);

/* The events about `change`, oldest first: at most `max`. */
KEEL_MUST_USE keel_status gate_store_change_events(gate_store *st, long long change,
                                                   gate_event *out, size_t max, size_t *n);
/* The newest event's id (0: none). */
KEEL_MUST_USE keel_status gate_store_last_event(gate_store *st, long long *id);

typedef struct gate_candidate_info {
    long long id;
    char base[GATE_OID_HEX], merge[GATE_OID_HEX];
    char state[16]; /* open, passed, failed, conflict, abandoned */
    long long created_at, finished_at;
    char target[GATE_NAME_MAX]; /* the branch it was built for */
} gate_candidate_info;

/* A candidate (KEEL_E_NOTFOUND: none). */
KEEL_MUST_USE keel_status gate_store_candidate_get(gate_store *st, long long id,
                                                   gate_candidate_info *out);
/* The candidates of `target` that landed (passed), newest first: at most `max`. */
KEEL_MUST_USE keel_status gate_store_landed(gate_store *st, const char *target,
                                            gate_candidate_info *out, size_t max, size_t *n);
/* The jobs of one candidate, oldest first: at most `max`. */
KEEL_MUST_USE keel_status gate_store_candidate_jobs(gate_store *st, long long candidate,
                                                    gate_job *out, size_t max, size_t *n);
/* A job by its id (KEEL_E_NOTFOUND: none). */
KEEL_MUST_USE keel_status gate_store_job_get(gate_store *st, long long id, gate_job *out);
/*
 * How long `target`'s last `last` finished candidates (passed or failed) took
 * from creation to their end, in seconds: the median into *median_s and how
 * many were measured into *n (0: none yet, *median_s 0).
 */
KEEL_MUST_USE keel_status gate_store_build_seconds(gate_store *st, const char *target, size_t last,
                                                   long long *median_s, size_t *n);

/*
 * A number that changes whenever another connection (a running gate, the CLI)
 * has written the store since this one last looked (SQLite's data_version).
 */
KEEL_MUST_USE keel_status gate_store_data_version(gate_store *st, long long *version);

/* A change's time in the queue, for the dashboard's plots (GET /api/v1/series). */
typedef struct gate_change_span {
    long long id, submitted_at;
    long long
        ended_at; /* its last update once ended (landed, rejected, ...); 0: queued or testing */
    bool landed;
} gate_change_span;

/*
 * The changes of `target` that were in its queue at some time in [from, to]
 * (submitted by `to`, not ended before `from`), newest first: at most `max`.
 */
KEEL_MUST_USE keel_status gate_store_change_spans(gate_store *st, const char *target,
                                                  long long from, long long to,
                                                  gate_change_span *out, size_t max, size_t *n);

/* The culprit searches of `target`, newest first: their ids, at most `max` (GET /culprits). */
KEEL_MUST_USE keel_status gate_store_search_recent(gate_store *st, const char *target,
                                                   long long *ids, size_t max, size_t *n);

#endif /* KEEL_GATE_STORE_WEB_H */
