/*
 * store_web.c - what keel-gate serve keeps in the store (store_web.h): tokens,
 * idempotency keys, a queue's pause, and the readings of the history the API
 * serves.  Every write is one transaction, as in store.c.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_web.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "store_int.h"

static const char *const role_names[] = {"none", "read", "submit", "admin"};

const char *gate_role_name(gate_role r)
{
    return (unsigned)r < sizeof(role_names) / sizeof(role_names[0]) ? role_names[r] : "?";
}

gate_role gate_role_from_name(const char *name)
{
    for (int i = GATE_ROLE_READ; i <= GATE_ROLE_ADMIN; i++)
        if (name != NULL && strcmp(role_names[i], name) == 0)
            return (gate_role)i;
    return GATE_ROLE_NONE;
}

static void copy_col(char *dst, size_t size, sqlite3_stmt *stmt, int col)
{
    const unsigned char *t = sqlite3_column_text(stmt, col);
    (void)snprintf(dst, size, "%s", t != NULL ? (const char *)t : "");
}

/* A prepared statement, or the store's error. */
static keel_status prep(gate_store *st, const char *sql, sqlite3_stmt **stmt)
{
    int rc = sqlite3_prepare_v2(gate__store_db(st), sql, -1, stmt, NULL);
    return rc == SQLITE_OK ? KEEL_OK : gate__store_error(st, rc, "cannot prepare a statement");
}

/* Step a statement that returns no row, and finalize it; *changed: the rows it changed. */
static keel_status run(gate_store *st, sqlite3_stmt *stmt, const char *what, int *changed)
{
    int rc = sqlite3_step(stmt);
    keel_status s = rc == SQLITE_DONE ? KEEL_OK : gate__store_error(st, rc, what);
    if (changed != NULL)
        *changed = sqlite3_changes(gate__store_db(st));
    (void)sqlite3_finalize(stmt);
    return s;
}

/* One row of a statement into one element of a reader's array. */
typedef void (*row_fn)(sqlite3_stmt *stmt, void *out);

/* The rows of stmt into out (elements of `size` bytes), at most `max`; finalizes stmt. */
static keel_status read_rows(gate_store *st, sqlite3_stmt *stmt, row_fn row, void *out, size_t size,
                             size_t max, size_t *n, const char *what)
{
    keel_status s = KEEL_OK;
    int rc;
    while (*n < max && (rc = sqlite3_step(stmt)) != SQLITE_DONE) {
        if (rc != SQLITE_ROW) {
            s = gate__store_error(st, rc, what);
            break;
        }
        row(stmt, (char *)out + (*n)++ * size);
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

/* The row of stmt whose ?1 is `id` into out: KEEL_E_NOTFOUND "no <kind> <id>" when none. */
static keel_status read_one(gate_store *st, const char *sql, row_fn row, void *out,
                            const char *kind, long long id)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = prep(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, id);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        row(stmt, out);
    else if (rc == SQLITE_DONE)
        s = keel_status_with_int(KEEL_ERR(KEEL_E_NOTFOUND, "no %s %lld", kind, id), kind, id);
    else
        s = gate__store_error(st, rc, "cannot read the store");
    (void)sqlite3_finalize(stmt);
    return s;
}

/* ---- tokens ---------------------------------------------------------------------- */

keel_status gate_store_token_add(gate_store *st, const char *name, gate_role role,
                                 const char *hash_hex, long long now)
{
    KEEL_ASSERT(st != NULL && name != NULL && hash_hex != NULL);
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = prep(st, "SELECT count(*) FROM tokens WHERE name = ? AND revoked_at = 0", &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, name, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW)
            s = gate__store_error(st, rc, "cannot read the tokens");
        else if (sqlite3_column_int(stmt, 0) > 0)
            s = keel_status_with_str(
                KEEL_ERR(KEEL_E_EXISTS, "token '%s' exists: revoke it first", name), "token", name);
        (void)sqlite3_finalize(stmt);
    }
    if (keel_ok(s))
        s = prep(st, "INSERT INTO tokens(name, role, hash, created_at) VALUES(?, ?, ?, ?)", &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, name, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_text(stmt, 2, gate_role_name(role), -1, SQLITE_STATIC);
        (void)sqlite3_bind_text(stmt, 3, hash_hex, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int64(stmt, 4, now);
        s = run(st, stmt, "cannot add a token", NULL);
    }
    if (keel_ok(s)) {
        char detail[GATE_NAME_MAX * 6 + 64];
        size_t n = (size_t)snprintf(detail, sizeof(detail), "{\"name\":");
        n = gate_json_str(detail, sizeof(detail), n, name);
        (void)snprintf(detail + n, sizeof(detail) - n, ",\"role\":\"%s\"}", gate_role_name(role));
        s = gate__store_event_locked(st, now, "token-add", 0, detail);
    }
    return gate__store_finish(st, s);
}

keel_status gate_store_token_revoke(gate_store *st, const char *name, long long now)
{
    KEEL_ASSERT(st != NULL && name != NULL);
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    int changed = 0;
    char role[16] = ""; /* the revoked token's, for its event */
    s = prep(st,
             "UPDATE tokens SET revoked_at = ?1 WHERE name = ?2 AND revoked_at = 0 RETURNING role",
             &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_int64(stmt, 1, now);
        (void)sqlite3_bind_text(stmt, 2, name, -1, SQLITE_TRANSIENT);
        int rc = SQLITE_ROW;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            copy_col(role, sizeof(role), stmt, 0);
            changed++;
        }
        if (rc != SQLITE_DONE)
            s = gate__store_error(st, rc, "cannot revoke a token");
        (void)sqlite3_finalize(stmt);
    }
    if (keel_ok(s) && changed == 0)
        s = keel_status_with_str(KEEL_ERR(KEEL_E_NOTFOUND, "no token '%s'", name), "token", name);
    if (keel_ok(s)) {
        char detail[GATE_NAME_MAX * 6 + 64];
        size_t n = (size_t)snprintf(detail, sizeof(detail), "{\"name\":");
        n = gate_json_str(detail, sizeof(detail), n, name);
        (void)snprintf(detail + n, sizeof(detail) - n, ",\"role\":");
        n += strlen(detail + n);
        n = gate_json_str(detail, sizeof(detail), n, role);
        (void)snprintf(detail + n, sizeof(detail) - n, "}");
        s = gate__store_event_locked(st, now, "token-revoke", 0, detail);
    }
    return gate__store_finish(st, s);
}

keel_status gate_store_token_list(gate_store *st, gate_token *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prep(st,
                         "SELECT name, role, created_at FROM tokens WHERE revoked_at = 0 "
                         "ORDER BY name",
                         &stmt);
    int rc;
    while (keel_ok(s) && (rc = sqlite3_step(stmt)) != SQLITE_DONE) {
        if (rc != SQLITE_ROW) {
            s = gate__store_error(st, rc, "cannot read the tokens");
            break;
        }
        if (*n < max) {
            gate_token *t = &out[*n];
            copy_col(t->name, sizeof(t->name), stmt, 0);
            t->role = gate_role_from_name((const char *)sqlite3_column_text(stmt, 1));
            t->created_at = sqlite3_column_int64(stmt, 2);
        }
        (*n)++;
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

/* a and b (each GATE_TOKEN_HASH_HEX - 1 characters) equal, in a time that does not tell where */
static bool same_hash(const char *a, const char *b)
{
    unsigned diff = strlen(a) != strlen(b) ? 1u : 0u;
    size_t len = strlen(a) < strlen(b) ? strlen(a) : strlen(b);
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned)((unsigned char)a[i] ^ (unsigned char)b[i]);
    return diff == 0;
}

keel_status gate_store_token_find(gate_store *st, const char *hash_hex, gate_token *out)
{
    KEEL_ASSERT(st != NULL && hash_hex != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        prep(st, "SELECT name, role, created_at, hash FROM tokens WHERE revoked_at = 0", &stmt);
    int rc;
    while (keel_ok(s) && (rc = sqlite3_step(stmt)) != SQLITE_DONE) {
        if (rc != SQLITE_ROW) {
            s = gate__store_error(st, rc, "cannot read the tokens");
            break;
        }
        const unsigned char *h = sqlite3_column_text(stmt, 3);
        bool match = same_hash(hash_hex, h != NULL ? (const char *)h : "");
        if (match) { /* every row is compared all the same */
            copy_col(out->name, sizeof(out->name), stmt, 0);
            out->role = gate_role_from_name((const char *)sqlite3_column_text(stmt, 1));
            out->created_at = sqlite3_column_int64(stmt, 2);
        }
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

/* ---- idempotency keys -------------------------------------------------------------- */

enum { IDEM_KEEP_S = 7 * 24 * 3600 }; /* how long a key is kept */

keel_status gate_store_idem_get(gate_store *st, const char *key, long long now, bool *found,
                                char request_hash[GATE_TOKEN_HASH_HEX], int *status, char **body)
{
    KEEL_ASSERT(st != NULL && key != NULL && found != NULL && status != NULL && body != NULL);
    *found = false;
    *body = NULL;
    request_hash[0] = '\0';
    sqlite3_stmt *stmt = NULL;
    keel_status s = prep(st,
                         "SELECT request, status, response FROM idempotency WHERE key = ?1 AND "
                         "created_at >= ?2",
                         &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, key, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, now - IDEM_KEEP_S);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        copy_col(request_hash, GATE_TOKEN_HASH_HEX, stmt, 0);
        *status = sqlite3_column_int(stmt, 1);
        const unsigned char *b = sqlite3_column_text(stmt, 2);
        *body = strdup(b != NULL ? (const char *)b : "");
        if (*body == NULL)
            s = KEEL_ERR(KEEL_E_NOMEM, "no memory for the response kept for a key");
        *found = *body != NULL;
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read an idempotency key");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_idem_put(gate_store *st, const char *key, const char *request_hash,
                                int status, const char *body, long long now)
{
    KEEL_ASSERT(st != NULL && key != NULL && request_hash != NULL && body != NULL);
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = prep(st, "DELETE FROM idempotency WHERE created_at < ?", &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_int64(stmt, 1, now - IDEM_KEEP_S);
        s = run(st, stmt, "cannot forget old idempotency keys", NULL);
    }
    if (keel_ok(s))
        s = prep(st,
                 "INSERT OR IGNORE INTO idempotency(key, request, status, response, created_at) "
                 "VALUES(?, ?, ?, ?, ?)",
                 &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, key, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_text(stmt, 2, request_hash, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int(stmt, 3, status);
        (void)sqlite3_bind_text(stmt, 4, body, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int64(stmt, 5, now);
        s = run(st, stmt, "cannot keep an idempotency key", NULL);
    }
    return gate__store_finish(st, s);
}

/* ---- the queue's pause ------------------------------------------------------------- */

/* {"reason":...,"by":...} into buf */
static void pause_detail(char *buf, size_t size, const char *reason, const char *by)
{
    size_t n = (size_t)snprintf(buf, size, "{\"reason\":");
    n = gate_json_str(buf, size, n, reason != NULL ? reason : "");
    n += (size_t)snprintf(buf + n, n < size ? size - n : 0, ",\"by\":");
    n = gate_json_str(buf, size, n, by != NULL ? by : "");
    (void)snprintf(buf + n, n < size ? size - n : 0, "}");
}

keel_status gate_store_pause(gate_store *st, const char *target, const char *reason, const char *by,
                             long long now)
{
    KEEL_ASSERT(st != NULL && target != NULL && reason != NULL && by != NULL);
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = prep(st, "INSERT OR REPLACE INTO pauses(target, reason, by, since) VALUES(?, ?, ?, ?)",
             &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_text(stmt, 2, reason, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_text(stmt, 3, by, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int64(stmt, 4, now);
        s = run(st, stmt, "cannot pause the queue", NULL);
    }
    if (keel_ok(s)) {
        char detail[GATE_REASON_MAX * 6 + GATE_NAME_MAX * 6 + 32];
        pause_detail(detail, sizeof(detail), reason, by);
        gate_store_set_target(st, target);
        s = gate__store_event_locked(st, now, "pause", 0, detail);
    }
    return gate__store_finish(st, s);
}

keel_status gate_store_resume(gate_store *st, const char *target, const char *by, long long now)
{
    KEEL_ASSERT(st != NULL && target != NULL && by != NULL);
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    int changed = 0;
    s = prep(st, "DELETE FROM pauses WHERE target = ?", &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
        s = run(st, stmt, "cannot resume the queue", &changed);
    }
    if (keel_ok(s) && changed == 0)
        s = keel_status_with_str(KEEL_ERR(KEEL_E_STATE, "the queue of '%s' is not paused", target),
                                 "target", target);
    if (keel_ok(s)) {
        char detail[GATE_NAME_MAX * 6 + 32];
        pause_detail(detail, sizeof(detail), NULL, by);
        gate_store_set_target(st, target);
        s = gate__store_event_locked(st, now, "resume", 0, detail);
    }
    return gate__store_finish(st, s);
}

keel_status gate_store_paused(gate_store *st, const char *target, bool *paused, char *reason,
                              size_t size, long long *since)
{
    KEEL_ASSERT(st != NULL && target != NULL && paused != NULL);
    *paused = false;
    if (reason != NULL && size > 0)
        reason[0] = '\0';
    if (since != NULL)
        *since = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prep(st, "SELECT reason, since FROM pauses WHERE target = ?", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *paused = true;
        if (reason != NULL && size > 0)
            copy_col(reason, size, stmt, 0);
        if (since != NULL)
            *since = sqlite3_column_int64(stmt, 1);
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read whether the queue is paused");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_set_priority(gate_store *st, long long id, int priority, long long now)
{
    KEEL_ASSERT(st != NULL);
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    int changed = 0;
    s = prep(st,
             "UPDATE changes SET priority = ?1, updated_at = ?2 WHERE id = ?3 AND state = 'queued'",
             &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_int(stmt, 1, priority);
        (void)sqlite3_bind_int64(stmt, 2, now);
        (void)sqlite3_bind_int64(stmt, 3, id);
        s = run(st, stmt, "cannot change a priority", &changed);
    }
    if (keel_ok(s) && changed == 0)
        s = keel_status_with_int(
            keel_status_with_str(KEEL_ERR(KEEL_E_STATE,
                                          "change %lld is not queued: only a queued change's "
                                          "priority can change",
                                          id),
                                 "detail", "state"),
            "change", id);
    if (keel_ok(s)) {
        char detail[48];
        (void)snprintf(detail, sizeof(detail), "{\"priority\":%d}", priority);
        s = gate__store_event_locked(st, now, "priority", id, detail);
    }
    return gate__store_finish(st, s);
}

/* ---- reading the history ------------------------------------------------------------ */

/* A row (id, time, change, kind, detail) as an event. */
static void read_event(sqlite3_stmt *stmt, void *out)
{
    gate_event *e = (gate_event *)out;
    e->id = sqlite3_column_int64(stmt, 0);
    e->time = sqlite3_column_int64(stmt, 1);
    e->change = sqlite3_column_int64(stmt, 2);
    copy_col(e->kind, sizeof(e->kind), stmt, 3);
    if (sqlite3_column_bytes(stmt, 4) >= (int)sizeof(e->detail))
        (void)snprintf(e->detail, sizeof(e->detail), "{\"detail_cut\":true}");
    else
        copy_col(e->detail, sizeof(e->detail), stmt, 4);
}

keel_status gate_store_events_after(gate_store *st, const char *target, long long after,
                                    gate_event *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prep(st,
                         "SELECT id, time, change, kind, detail FROM events WHERE id > ?1 AND "
                         "target IN (?2, '') ORDER BY id LIMIT ?3",
                         &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, after);
    (void)sqlite3_bind_text(stmt, 2, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 3, (long long)max);
    return read_rows(st, stmt, read_event, out, sizeof(*out), max, n, "cannot read the events");
}

keel_status gate_store_change_events(gate_store *st, long long change, gate_event *out, size_t max,
                                     size_t *n)
{
    KEEL_ASSERT(st != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prep(st,
                         "SELECT id, time, change, kind, detail FROM events WHERE change = ?1 "
                         "ORDER BY id LIMIT ?2",
                         &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, change);
    (void)sqlite3_bind_int64(stmt, 2, (long long)max);
    return read_rows(st, stmt, read_event, out, sizeof(*out), max, n, "cannot read the events");
}

keel_status gate_store_last_event(gate_store *st, long long *id)
{
    KEEL_ASSERT(st != NULL && id != NULL);
    *id = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prep(st, "SELECT coalesce(max(id), 0) FROM events", &stmt);
    if (!keel_ok(s))
        return s;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(stmt, 0);
    else
        s = gate__store_error(st, rc, "cannot read the last event");
    (void)sqlite3_finalize(stmt);
    return s;
}

#define CANDIDATE_COLUMNS "id, base, merge, state, created_at, finished_at, target"

static void read_candidate(sqlite3_stmt *stmt, void *out)
{
    gate_candidate_info *c = (gate_candidate_info *)out;
    memset(c, 0, sizeof(*c));
    c->id = sqlite3_column_int64(stmt, 0);
    copy_col(c->base, sizeof(c->base), stmt, 1);
    copy_col(c->merge, sizeof(c->merge), stmt, 2);
    copy_col(c->state, sizeof(c->state), stmt, 3);
    c->created_at = sqlite3_column_int64(stmt, 4);
    c->finished_at = sqlite3_column_int64(stmt, 5);
    copy_col(c->target, sizeof(c->target), stmt, 6);
}

keel_status gate_store_candidate_get(gate_store *st, long long id, gate_candidate_info *out)
{
    KEEL_ASSERT(st != NULL && out != NULL);
    return read_one(st, "SELECT " CANDIDATE_COLUMNS " FROM candidates WHERE id = ?1",
                    read_candidate, out, "candidate", id);
}

keel_status gate_store_landed(gate_store *st, const char *target, gate_candidate_info *out,
                              size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prep(st,
                         "SELECT " CANDIDATE_COLUMNS " FROM candidates WHERE target = ?1 AND "
                         "state = 'passed' ORDER BY id DESC LIMIT ?2",
                         &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, (long long)max);
    return read_rows(st, stmt, read_candidate, out, sizeof(*out), max, n,
                     "cannot read the landed candidates");
}

#define JOB_COLS \
    "id, candidate, config, attempt, state, exit_code, log, started_at, finished_at, elapsed_ms"

static void read_job(sqlite3_stmt *stmt, void *out)
{
    gate_job *j = (gate_job *)out;
    memset(j, 0, sizeof(*j));
    j->id = sqlite3_column_int64(stmt, 0);
    j->candidate = sqlite3_column_int64(stmt, 1);
    copy_col(j->config, sizeof(j->config), stmt, 2);
    j->attempt = sqlite3_column_int(stmt, 3);
    copy_col(j->state, sizeof(j->state), stmt, 4);
    j->exit_code = sqlite3_column_int(stmt, 5);
    copy_col(j->log, sizeof(j->log), stmt, 6);
    j->started_at = sqlite3_column_int64(stmt, 7);
    j->finished_at = sqlite3_column_int64(stmt, 8);
    j->elapsed_ms = sqlite3_column_int64(stmt, 9);
}

keel_status gate_store_candidate_jobs(gate_store *st, long long candidate, gate_job *out,
                                      size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        prep(st, "SELECT " JOB_COLS " FROM jobs WHERE candidate = ? ORDER BY id", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, candidate);
    return read_rows(st, stmt, read_job, out, sizeof(*out), max, n, "cannot read the jobs");
}

keel_status gate_store_job_get(gate_store *st, long long id, gate_job *out)
{
    KEEL_ASSERT(st != NULL && out != NULL);
    return read_one(st, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1", read_job, out, "job", id);
}

keel_status gate_store_build_seconds(gate_store *st, const char *target, size_t last,
                                     long long *median_s, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && median_s != NULL && n != NULL);
    *median_s = 0;
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prep(st,
                         "SELECT d FROM (SELECT finished_at - created_at AS d FROM candidates "
                         "WHERE target = ?1 AND state IN ('passed', 'failed') AND finished_at >= "
                         "created_at ORDER BY id DESC LIMIT ?2) ORDER BY d",
                         &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, (long long)last);
    long long d[64];
    int rc;
    while (*n < sizeof(d) / sizeof(d[0]) && (rc = sqlite3_step(stmt)) != SQLITE_DONE) {
        if (rc != SQLITE_ROW) {
            s = gate__store_error(st, rc, "cannot read the build times");
            break;
        }
        d[(*n)++] = sqlite3_column_int64(stmt, 0);
    }
    (void)sqlite3_finalize(stmt);
    if (keel_ok(s) && *n > 0)
        *median_s = *n % 2 == 1 ? d[*n / 2] : (d[*n / 2 - 1] + d[*n / 2]) / 2;
    return s;
}

static void read_span(sqlite3_stmt *stmt, void *out)
{
    gate_change_span *c = (gate_change_span *)out;
    c->id = sqlite3_column_int64(stmt, 0);
    c->submitted_at = sqlite3_column_int64(stmt, 1);
    c->ended_at = sqlite3_column_int64(stmt, 2);
    c->landed = sqlite3_column_int(stmt, 3) != 0;
}

keel_status gate_store_change_spans(gate_store *st, const char *target, long long from,
                                    long long to, gate_change_span *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        prep(st,
             "SELECT id, submitted_at, CASE WHEN state IN ('queued','testing') THEN 0 ELSE "
             "max(updated_at, submitted_at) END, state = 'landed' FROM changes WHERE target = ?1 "
             "AND submitted_at <= ?3 AND (state IN ('queued','testing') OR updated_at >= ?2) "
             "ORDER BY id DESC LIMIT ?4",
             &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, from);
    (void)sqlite3_bind_int64(stmt, 3, to);
    (void)sqlite3_bind_int64(stmt, 4, (long long)max);
    return read_rows(st, stmt, read_span, out, sizeof(*out), max, n, "cannot read the changes");
}

keel_status gate_store_data_version(gate_store *st, long long *version)
{
    KEEL_ASSERT(st != NULL && version != NULL);
    *version = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prep(st, "PRAGMA data_version", &stmt);
    if (!keel_ok(s))
        return s;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int64(stmt, 0);
    else
        s = gate__store_error(st, rc, "cannot read the store's data version");
    (void)sqlite3_finalize(stmt);
    return s;
}

static void read_id(sqlite3_stmt *stmt, void *out)
{
    *(long long *)out = sqlite3_column_int64(stmt, 0);
}

keel_status gate_store_search_recent(gate_store *st, const char *target, long long *ids, size_t max,
                                     size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && (ids != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prep(
        st, "SELECT id FROM culprit_searches WHERE target = ?1 ORDER BY id DESC LIMIT ?2", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, (long long)max);
    return read_rows(st, stmt, read_id, ids, sizeof(*ids), max, n,
                     "cannot read the culprit searches");
}
