/*
 * store_changes.c - keel-gate's store: the changes (queue, states, pushed refs).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static const char *const state_names[] = {"queued",   "testing",  "landed",
                                          "rejected", "conflict", "cancelled"};
enum { NSTATES = sizeof(state_names) / sizeof(state_names[0]) }; /* GATE_CHANGE_STATES */

const char *gate_change_state_name(gate_change_state s)
{
    return (unsigned)s < NSTATES ? state_names[s] : "?";
}

static int state_from_name(const char *name)
{
    for (int i = 0; i < (int)NSTATES; i++)
        if (strcmp(state_names[i], name) == 0)
            return i;
    return -1;
}

static keel_status submit(gate_store *st, const char *branch, const char *head, const char *target,
                          int priority, bool pushed, long long now, long long *id);

keel_status gate_store_submit(gate_store *st, const char *branch, const char *head,
                              const char *target, int priority, long long now, long long *id)
{
    return submit(st, branch, head, target, priority, false, now, id);
}

keel_status gate_store_submit_pushed(gate_store *st, const char *branch, const char *head,
                                     const char *target, long long now, long long *id)
{
    return submit(st, branch, head, target, 0, true, now, id);
}

keel_status gate_store_pushed_pending(gate_store *st, const char *branch, const char *head,
                                      const char *target, long long *id)
{
    KEEL_ASSERT(st != NULL && branch != NULL && head != NULL && target != NULL && id != NULL);
    *id = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st,
                            "SELECT id FROM changes WHERE branch = ? AND head = ? AND target = ? "
                            "AND pushed = 1 ORDER BY id DESC LIMIT 1",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, branch, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(stmt, 2, head, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(stmt, 3, target, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(stmt, 0);
    else if (rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot look for a pushed change");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_pushed_moved(gate_store *st, const char *branch, const char *head,
                                    const char *target)
{
    KEEL_ASSERT(st != NULL && branch != NULL && head != NULL && target != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st,
                            "UPDATE changes SET pushed = 0 WHERE pushed = 1 AND branch = ? AND "
                            "target = ? AND head != ?",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, branch, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(stmt, 2, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(stmt, 3, head, -1, SQLITE_TRANSIENT);
    return gate__store_step_done(st, stmt, "cannot record a pushed ref's move");
}

keel_status gate_store_pushed_taken(gate_store *st, long long id)
{
    KEEL_ASSERT(st != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st, "UPDATE changes SET pushed = 0 WHERE id = ? AND pushed = 1", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, id);
    return gate__store_step_done(st, stmt, "cannot record a pushed ref's removal");
}

static keel_status submit(gate_store *st, const char *branch, const char *head, const char *target,
                          int priority, bool pushed, long long now, long long *id)
{
    KEEL_ASSERT(st != NULL && id != NULL);
    if (branch == NULL || branch[0] == '\0' || strlen(branch) >= GATE_NAME_MAX)
        return KEEL_ERR(KEEL_E_INVAL, "a change needs a branch name shorter than %d bytes",
                        (int)GATE_NAME_MAX);
    if (target == NULL || target[0] == '\0' || strlen(target) >= GATE_NAME_MAX)
        return KEEL_ERR(KEEL_E_INVAL, "a change needs a target branch");
    if (!gate__store_valid_oid(head))
        return KEEL_ERR(KEEL_E_INVAL, "'%s' is not a commit id (40 lower-case hex digits)",
                        head != NULL ? head : "(null)");
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = gate__store_prepare(st,
                            "SELECT id FROM changes WHERE branch = ? AND target = ? AND state IN "
                            "('queued','testing')",
                            &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, branch, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_text(stmt, 2, target, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW)
            s = keel_status_with_int(
                KEEL_ERR(KEEL_E_EXISTS, "branch '%s' is already queued for '%s' as change %lld",
                         branch, target, sqlite3_column_int64(stmt, 0)),
                "change", sqlite3_column_int64(stmt, 0));
        else if (rc != SQLITE_DONE)
            s = gate__store_error(st, rc, "cannot look for an active change");
        (void)sqlite3_finalize(stmt);
    }
    if (keel_ok(s))
        s = gate__store_prepare(
            st,
            "INSERT INTO changes(branch, head, target, priority, submitted_at, updated_at, "
            "pushed) VALUES(?,?,?,?,?,?,?)",
            &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, branch, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_text(stmt, 2, head, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_text(stmt, 3, target, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int(stmt, 4, priority);
        (void)sqlite3_bind_int64(stmt, 5, now);
        (void)sqlite3_bind_int64(stmt, 6, now);
        (void)sqlite3_bind_int(stmt, 7, pushed ? 1 : 0);
        s = gate__store_step_done(st, stmt, "cannot queue the change");
    }
    if (keel_ok(s)) {
        *id = sqlite3_last_insert_rowid(st->db);
        s = gate__store_event_locked(st, now, "submit", *id, NULL);
    }
    return gate__store_finish(st, s);
}

static keel_status read_change(sqlite3_stmt *stmt, gate_change *out)
{
    memset(out, 0, sizeof(*out));
    out->id = sqlite3_column_int64(stmt, 0);
    gate__store_copy_text(out->branch, sizeof(out->branch), sqlite3_column_text(stmt, 1));
    gate__store_copy_text(out->head, sizeof(out->head), sqlite3_column_text(stmt, 2));
    gate__store_copy_text(out->target, sizeof(out->target), sqlite3_column_text(stmt, 3));
    out->priority = sqlite3_column_int(stmt, 4);
    out->submitted_at = sqlite3_column_int64(stmt, 5);
    const unsigned char *state = sqlite3_column_text(stmt, 6);
    int si = state_from_name(state != NULL ? (const char *)state : "");
    out->candidate = sqlite3_column_int64(stmt, 7);
    gate__store_copy_text(out->reason, sizeof(out->reason), sqlite3_column_text(stmt, 8));
    out->crashes = (unsigned)sqlite3_column_int(stmt, 9);
    if (si < 0)
        return KEEL_ERR(KEEL_E_INTERNAL, "change %lld has an unknown state '%s'", out->id,
                        state != NULL ? (const char *)state : "");
    out->state = (gate_change_state)si;
    return KEEL_OK;
}

#define CHANGE_COLUMNS \
    "id, branch, head, target, priority, submitted_at, state, candidate, reason, crashes"

/* The rows of stmt (CHANGE_COLUMNS) into out, at most max; finalizes stmt. */
static keel_status read_changes(gate_store *st, sqlite3_stmt *stmt, gate_change *out, size_t max,
                                size_t *n, const char *what)
{
    keel_status s = KEEL_OK;
    int rc;
    while (keel_ok(s) && *n < max && (rc = sqlite3_step(stmt)) != SQLITE_DONE) {
        if (rc != SQLITE_ROW)
            s = gate__store_error(st, rc, what);
        else
            s = read_change(stmt, &out[(*n)++]);
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_get(gate_store *st, long long id, gate_change *out)
{
    KEEL_ASSERT(st != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st, "SELECT " CHANGE_COLUMNS " FROM changes WHERE id = ?", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, id);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        s = read_change(stmt, out);
    else if (rc == SQLITE_DONE)
        s = keel_status_with_int(KEEL_ERR(KEEL_E_NOTFOUND, "no change %lld", id), "change", id);
    else
        s = gate__store_error(st, rc, "cannot read a change");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_queued(gate_store *st, const char *target, long long now, long long aging_s,
                              gate_change *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st,
                            "SELECT " CHANGE_COLUMNS " FROM changes WHERE target = ? AND "
                            "state = 'queued' ORDER BY priority + (? - submitted_at) / ? DESC, id",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, now);
    (void)sqlite3_bind_int64(stmt, 3, aging_s > 0 ? aging_s : 1000000000LL);
    return read_changes(st, stmt, out, max, n, "cannot read the queue");
}

keel_status gate__store_set_state_locked(gate_store *st, long long id, gate_change_state state,
                                         const char *reason, long long now)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st,
        state == GATE_CHANGE_LANDED ? "UPDATE changes SET state = ?, reason = ?, updated_at = ? "
                                      "WHERE id = ?"
                                    : "UPDATE changes SET state = ?, reason = ?, updated_at = ? "
                                      "WHERE id = ? AND state IN ('queued','testing')",
        &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, gate_change_state_name(state), -1, SQLITE_STATIC);
    (void)sqlite3_bind_text(stmt, 2, reason != NULL ? reason : "", -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 3, now);
    (void)sqlite3_bind_int64(stmt, 4, id);
    s = gate__store_step_done(st, stmt, "cannot update a change");
    if (keel_ok(s) && sqlite3_changes(st->db) != 1) {
        /* landing records what the target holds, whatever the change was left in */
        gate_change c;
        s = gate_store_get(st, id, &c);
        if (keel_ok(s))
            s = keel_status_with_str(
                keel_status_with_int(KEEL_ERR(KEEL_E_STATE, "change %lld ('%s') is already %s", id,
                                              c.branch, gate_change_state_name(c.state)),
                                     "change", id),
                "state", gate_change_state_name(c.state));
    }
    if (keel_ok(s)) {
        char detail[64];
        (void)snprintf(detail, sizeof(detail), "{\"state\":\"%s\"}", gate_change_state_name(state));
        s = gate__store_event_locked(st, now, gate_change_state_name(state), id, detail);
    }
    return s;
}

keel_status gate_store_set_state(gate_store *st, long long id, gate_change_state state,
                                 const char *reason, long long now)
{
    KEEL_ASSERT(st != NULL && (unsigned)state < NSTATES);
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    return gate__store_finish(st, gate__store_set_state_locked(st, id, state, reason, now));
}

keel_status gate_store_reopen(gate_store *st, long long id, const char *reason, const char *detail,
                              long long now)
{
    KEEL_ASSERT(st != NULL && reason != NULL && detail != NULL);
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = gate__store_prepare(
        st,
        "UPDATE changes SET state = 'queued', reason = ?1, updated_at = ?2 "
        "WHERE id = ?3 AND state = 'rejected' AND " GATE__STORE_NOT_SUBMITTED_AGAIN("changes"),
        &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, reason, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int64(stmt, 2, now);
        (void)sqlite3_bind_int64(stmt, 3, id);
        s = gate__store_step_done(st, stmt, "cannot reopen a change");
    }
    if (keel_ok(s) && sqlite3_changes(st->db) != 1) {
        gate_change c;
        s = gate_store_get(st, id, &c);
        if (keel_ok(s))
            s = keel_status_with_int(
                c.state == GATE_CHANGE_REJECTED
                    ? KEEL_ERR(KEEL_E_STATE,
                               "change %lld ('%s') was submitted again since: the newer one "
                               "stands",
                               id, c.branch)
                    : KEEL_ERR(KEEL_E_STATE, "change %lld ('%s') is %s, not rejected", id, c.branch,
                               gate_change_state_name(c.state)),
                "change", id);
    }
    if (keel_ok(s))
        s = gate__store_event_locked(st, now, "reopened", id, detail);
    if (keel_ok(s))
        s = gate__store_prepare(st, "DELETE FROM watched_rejections WHERE change = ?", &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_int64(stmt, 1, id);
        s = gate__store_step_done(st, stmt, "cannot forget a watched rejection");
    }
    return gate__store_finish(st, s);
}

keel_status gate_store_cancel(gate_store *st, long long id, long long now)
{
    KEEL_ASSERT(st != NULL);
    return gate_store_set_state(st, id, GATE_CHANGE_CANCELLED, "cancelled by request", now);
}

keel_status gate_store_changes(gate_store *st, const char *target, int state, gate_change *out,
                               size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st,
                            "SELECT " CHANGE_COLUMNS " FROM changes WHERE (?1 IS NULL OR target = "
                            "?1) AND (?2 IS NULL OR state = ?2) ORDER BY updated_at DESC, id DESC",
                            &stmt);
    if (!keel_ok(s))
        return s;
    if (target != NULL)
        (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    if (state >= 0)
        (void)sqlite3_bind_text(stmt, 2, gate_change_state_name((gate_change_state)state), -1,
                                SQLITE_STATIC);
    return read_changes(st, stmt, out, max, n, "cannot read the changes");
}

keel_status gate_store_branch_changes(gate_store *st, const char *branch, const char *target,
                                      gate_change *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && branch != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st,
                            "SELECT " CHANGE_COLUMNS " FROM changes WHERE branch = ?1 ORDER BY "
                            "target = ?2 DESC, state IN ('queued','testing') DESC, id DESC",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, branch, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(stmt, 2, target != NULL ? target : "", -1, SQLITE_TRANSIENT);
    return read_changes(st, stmt, out, max, n, "cannot read the changes of a branch");
}

keel_status gate_store_count_changes(gate_store *st, const char *target, long long since,
                                     long long counts[GATE_CHANGE_STATES])
{
    KEEL_ASSERT(st != NULL && target != NULL && counts != NULL);
    memset(counts, 0, GATE_CHANGE_STATES * sizeof(counts[0]));
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st,
                            "SELECT state, count(*) FROM changes WHERE target = ? AND (state IN "
                            "('queued','testing') OR updated_at >= ?) GROUP BY state",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, since);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(stmt, 0);
        int k = state_from_name(name != NULL ? (const char *)name : "");
        if (k >= 0)
            counts[k] = sqlite3_column_int64(stmt, 1);
    }
    if (rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot count the changes");
    (void)sqlite3_finalize(stmt);
    return s;
}
