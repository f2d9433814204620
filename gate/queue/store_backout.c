/*
 * store_backout.c - keel-gate's store: the automatic backout's rows and
 * circuit breakers (store_backout.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_backout.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store_int.h"

/* The schema step that made these tables (store.c's migrations; its own tables only). */
const char gate__store_backout_schema[] =
    "CREATE TABLE IF NOT EXISTS backouts ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, culprit TEXT NOT NULL,"
    "  parent TEXT NOT NULL DEFAULT '', config TEXT NOT NULL DEFAULT '',"
    "  tier INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL, rail TEXT NOT NULL DEFAULT '',"
    "  reason TEXT NOT NULL DEFAULT '', subject TEXT NOT NULL DEFAULT '',"
    "  author TEXT NOT NULL DEFAULT '', committer TEXT NOT NULL DEFAULT '',"
    "  culprit_change INTEGER NOT NULL DEFAULT 0, evidence TEXT NOT NULL DEFAULT '',"
    "  log TEXT NOT NULL DEFAULT '', verified INTEGER NOT NULL DEFAULT 0,"
    "  revert TEXT NOT NULL DEFAULT '', branch TEXT NOT NULL DEFAULT '',"
    "  change INTEGER NOT NULL DEFAULT 0, found_at INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL DEFAULT 0,"
    "  landed_at INTEGER NOT NULL DEFAULT 0, UNIQUE (target, culprit));"
    "CREATE TABLE IF NOT EXISTS backout_breakers ("
    "  target TEXT PRIMARY KEY, open INTEGER NOT NULL, since INTEGER NOT NULL,"
    "  why TEXT NOT NULL DEFAULT '', reset_at INTEGER NOT NULL DEFAULT 0);";

#define COLUMNS                                                                              \
    "id, target, culprit, parent, config, tier, state, rail, reason, subject, author, "      \
    "committer, culprit_change, evidence, log, verified, revert, branch, change, found_at, " \
    "created_at, updated_at, landed_at"

static void read_row(sqlite3_stmt *stmt, gate_backout_row *r)
{
    memset(r, 0, sizeof(*r));
    int i = 0;
    r->id = sqlite3_column_int64(stmt, i++);
#define TEXT(field) \
    gate__store_copy_text(r->field, sizeof(r->field), sqlite3_column_text(stmt, i++))
    TEXT(target);
    TEXT(culprit);
    TEXT(parent);
    TEXT(config);
    r->tier = (unsigned)sqlite3_column_int(stmt, i++);
    TEXT(state);
    TEXT(rail);
    TEXT(reason);
    TEXT(subject);
    TEXT(author);
    TEXT(committer);
    r->culprit_change = sqlite3_column_int64(stmt, i++);
    TEXT(evidence);
    TEXT(log);
    r->verified = sqlite3_column_int(stmt, i++) != 0;
    TEXT(revert);
    TEXT(branch);
#undef TEXT
    r->change = sqlite3_column_int64(stmt, i++);
    r->found_at = sqlite3_column_int64(stmt, i++);
    r->created_at = sqlite3_column_int64(stmt, i++);
    r->updated_at = sqlite3_column_int64(stmt, i++);
    r->landed_at = sqlite3_column_int64(stmt, i);
}

keel_status gate_store_backout_get(gate_store *st, const char *target, const char *culprit,
                                   gate_backout_row *out, bool *found)
{
    KEEL_ASSERT(st != NULL && target != NULL && culprit != NULL && out != NULL && found != NULL);
    *found = false;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st, "SELECT " COLUMNS " FROM backouts WHERE target = ?1 AND culprit = ?2", &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_text(stmt, 2, culprit);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        read_row(stmt, out);
        *found = true;
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read a backout");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_backout_put(gate_store *st, gate_backout_row *r, long long now,
                                   const char *event, const char *detail)
{
    KEEL_ASSERT(st != NULL && r != NULL);
    if (!gate__store_valid_oid(r->culprit))
        return KEEL_ERR(KEEL_E_INVAL, "'%s' is not a commit id", r->culprit);
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    bool intended = strcmp(r->state, "intended") == 0;
    if (intended && r->created_at == 0)
        r->created_at = now;
    r->updated_at = now;
    sqlite3_stmt *stmt = NULL;
    s = gate__store_prepare(
        st,
        "INSERT INTO backouts(target, culprit, parent, config, tier, state, rail, reason, "
        "subject, author, committer, culprit_change, evidence, log, verified, revert, branch, "
        "change, found_at, created_at, updated_at, landed_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, "
        "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22) "
        "ON CONFLICT(target, culprit) DO UPDATE SET state = ?6, rail = ?7, reason = ?8, "
        "revert = ?16, branch = ?17, change = ?18, created_at = CASE WHEN created_at = 0 THEN ?20 "
        "ELSE created_at END, updated_at = ?21, landed_at = ?22, verified = ?15, tier = ?5, "
        "evidence = ?13, log = ?14",
        &stmt);
    if (keel_ok(s)) {
        gate__store_bind_text(stmt, 1, r->target);
        gate__store_bind_text(stmt, 2, r->culprit);
        gate__store_bind_text(stmt, 3, r->parent);
        gate__store_bind_text(stmt, 4, r->config);
        (void)sqlite3_bind_int(stmt, 5, (int)r->tier);
        gate__store_bind_text(stmt, 6, r->state);
        gate__store_bind_text(stmt, 7, r->rail);
        gate__store_bind_text(stmt, 8, r->reason);
        gate__store_bind_text(stmt, 9, r->subject);
        gate__store_bind_text(stmt, 10, r->author);
        gate__store_bind_text(stmt, 11, r->committer);
        (void)sqlite3_bind_int64(stmt, 12, r->culprit_change);
        gate__store_bind_text(stmt, 13, r->evidence);
        gate__store_bind_text(stmt, 14, r->log);
        (void)sqlite3_bind_int(stmt, 15, r->verified ? 1 : 0);
        gate__store_bind_text(stmt, 16, r->revert);
        gate__store_bind_text(stmt, 17, r->branch);
        (void)sqlite3_bind_int64(stmt, 18, r->change);
        (void)sqlite3_bind_int64(stmt, 19, r->found_at);
        (void)sqlite3_bind_int64(stmt, 20, r->created_at);
        (void)sqlite3_bind_int64(stmt, 21, now);
        (void)sqlite3_bind_int64(stmt, 22, r->landed_at);
        s = gate__store_step_done(st, stmt, "cannot record a backout");
    }
    if (keel_ok(s) && event != NULL)
        s = gate__store_event_locked(st, now, event, r->change, detail != NULL ? detail : "{}");
    return gate__store_finish(st, s);
}

keel_status gate_store_backout_list(gate_store *st, const char *target, const char *state,
                                    const char *config, gate_backout_row *out, size_t max,
                                    size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && (out != NULL || max == 0) && n != NULL);
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st,
                            "SELECT " COLUMNS " FROM backouts WHERE target = ?1 AND "
                            "(?2 IS NULL OR state = ?2) AND (?4 IS NULL OR config = ?4) "
                            "ORDER BY id DESC LIMIT ?3",
                            &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    if (state != NULL)
        gate__store_bind_text(stmt, 2, state);
    (void)sqlite3_bind_int64(stmt, 3, (long long)max);
    if (config != NULL)
        gate__store_bind_text(stmt, 4, config);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        read_row(stmt, &out[(*n)++]);
    if (rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot list the backouts");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_backout_active(gate_store *st, const char *target, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL);
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st,
                                        "SELECT count(*) FROM backouts WHERE target = ?1 AND state "
                                        "IN ('intended', 'queued', 'waiting')",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *n = (size_t)sqlite3_column_int64(stmt, 0);
    else
        s = gate__store_error(st, rc, "cannot count the backouts under way");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_backout_counts(gate_store *st, const char *target, long long since,
                                      unsigned *created, unsigned *landed)
{
    KEEL_ASSERT(st != NULL && target != NULL && created != NULL && landed != NULL);
    *created = *landed = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st,
        "SELECT coalesce(sum(created_at >= ?2 AND created_at > 0), 0), "
        "coalesce(sum(landed_at >= ?2 AND landed_at > 0), 0) FROM backouts WHERE target = ?1",
        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    (void)sqlite3_bind_int64(stmt, 2, since);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *created = (unsigned)sqlite3_column_int(stmt, 0);
        *landed = (unsigned)sqlite3_column_int(stmt, 1);
    } else {
        s = gate__store_error(st, rc, "cannot count the backouts");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_backout_change_of(gate_store *st, const char *target, const char *branch,
                                         long long *id)
{
    KEEL_ASSERT(st != NULL && target != NULL && branch != NULL && id != NULL);
    *id = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st, "SELECT max(id) FROM changes WHERE target = ?1 AND branch = ?2", &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_text(stmt, 2, branch);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(stmt, 0);
    else
        s = gate__store_error(st, rc, "cannot look for a revert's change");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_backout_breaker(gate_store *st, const char *target, bool *open,
                                       long long *since, long long *reset_at, char *why,
                                       size_t size)
{
    KEEL_ASSERT(st != NULL && target != NULL && open != NULL);
    *open = false;
    if (reset_at != NULL)
        *reset_at = 0;
    if (since != NULL)
        *since = 0;
    if (why != NULL && size > 0)
        why[0] = '\0';
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st, "SELECT open, since, why, reset_at FROM backout_breakers WHERE target = ?1", &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *open = sqlite3_column_int(stmt, 0) != 0;
        if (since != NULL && *open)
            *since = sqlite3_column_int64(stmt, 1);
        if (why != NULL && size > 0 && *open)
            gate__store_copy_text(why, size, sqlite3_column_text(stmt, 2));
        if (reset_at != NULL)
            *reset_at = sqlite3_column_int64(stmt, 3);
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read the circuit breaker");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_backout_set_breaker(gate_store *st, const char *target, bool open,
                                           const char *why, const char *detail, long long now,
                                           bool *changed)
{
    KEEL_ASSERT(st != NULL && target != NULL && changed != NULL);
    *changed = false;
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = gate__store_prepare(
        st,
        open ? "INSERT INTO backout_breakers(target, open, since, why) VALUES(?1, 1, ?2, ?3) "
               "ON CONFLICT(target) DO UPDATE SET open = 1, since = ?2, why = ?3 WHERE open = 0"
             : "UPDATE backout_breakers SET open = 0, reset_at = ?2 WHERE target = ?1 AND open = 1",
        &stmt);
    if (keel_ok(s)) {
        gate__store_bind_text(stmt, 1, target);
        (void)sqlite3_bind_int64(stmt, 2, now);
        if (open)
            gate__store_bind_text(stmt, 3, why != NULL ? why : "");
        s = gate__store_step_done(st, stmt, "cannot set the circuit breaker");
    }
    if (keel_ok(s))
        *changed = sqlite3_changes(gate__store_db(st)) == 1;
    if (keel_ok(s) && *changed)
        s = gate__store_event_locked(st, now, open ? "breaker-open" : "breaker-closed", 0,
                                     detail != NULL ? detail : "{}");
    return gate__store_finish(st, s);
}

keel_status gate_store_backout_green(gate_store *st, const char *target, const char *config,
                                     bool *green, bool *red)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL && green != NULL && red != NULL);
    *green = *red = false;
    sqlite3_stmt *stmt = NULL;
    /* its newest post result; a configuration never built at post: its newest nightly run's */
    keel_status s = gate__store_prepare(
        st,
        "SELECT fails, runs FROM (SELECT 0 AS k, r.fails AS fails, r.runs AS runs, c.seq AS o "
        "FROM post_results r JOIN post_commits c ON c.target = r.target AND c.commit_id = "
        "r.commit_id WHERE r.target = ?1 AND r.config = ?2 AND r.state = 'done' AND r.runs > 0 "
        "UNION ALL SELECT 1, fails, runs, due_at FROM nightly_runs WHERE target = ?1 AND config "
        "= ?2 AND state = 'done' AND runs > 0) ORDER BY k, o DESC LIMIT 1",
        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_text(stmt, 2, config);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *green = sqlite3_column_int(stmt, 0) == 0;
        *red = sqlite3_column_int(stmt, 0) == sqlite3_column_int(stmt, 1);
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read the configuration's newest result");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}
