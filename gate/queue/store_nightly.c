/*
 * store_nightly.c - keel-gate's store: the nightly level's schedule and runs
 * (store_nightly.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_nightly.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store_int.h"

/* The schema step that made these tables (store.c's migrations). */
const char gate__store_nightly_schema[] =
    "CREATE TABLE IF NOT EXISTS nightly_schedule ("
    "  target TEXT NOT NULL, config TEXT NOT NULL, next_due INTEGER NOT NULL,"
    "  PRIMARY KEY (target, config));"
    "CREATE TABLE IF NOT EXISTS nightly_runs ("
    "  target TEXT NOT NULL, config TEXT NOT NULL, due_at INTEGER NOT NULL,"
    "  commit_id TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',"
    "  runs INTEGER NOT NULL DEFAULT 0, fails INTEGER NOT NULL DEFAULT 0,"
    "  log TEXT NOT NULL DEFAULT '', updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (target, config, due_at));"
    "CREATE INDEX IF NOT EXISTS nightly_runs_by_state ON nightly_runs(target, state);";

const char *gate_nightly_outcome(const gate_nightly_row *r)
{
    return gate_build_outcome(r->state, r->runs, r->fails);
}

/*
 * One statement with parameters ?1 target, ?2 config, ?3 due time, ?4 now,
 * ?5 text, ?6 flag, ?7 a second time (those it names); *changed: rows changed.
 */
static keel_status exec_row(gate_store *st, const char *sql, const char *target, const char *config,
                            long long due, long long now, const char *text, int flag, long long t2,
                            const char *what, int *changed)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_text(stmt, 2, config);
    (void)sqlite3_bind_int64(stmt, 3, due);
    (void)sqlite3_bind_int64(stmt, 4, now);
    gate__store_bind_text(stmt, 5, text != NULL ? text : "");
    (void)sqlite3_bind_int(stmt, 6, flag);
    (void)sqlite3_bind_int64(stmt, 7, t2);
    s = gate__store_step_done(st, stmt, what);
    if (keel_ok(s) && changed != NULL)
        *changed = sqlite3_changes(st->db);
    return s;
}

keel_status gate_store_nightly_due(gate_store *st, const char *target, const char *config,
                                   long long *due, bool *found)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL && due != NULL && found != NULL);
    *found = false;
    *due = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st, "SELECT next_due FROM nightly_schedule WHERE target = ?1 AND config = ?2", &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_text(stmt, 2, config);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *due = sqlite3_column_int64(stmt, 0);
        *found = true;
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read when a nightly configuration is due");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

static const char set_due_sql[] =
    "INSERT INTO nightly_schedule(target, config, next_due) VALUES(?1, ?2, ?7) "
    "ON CONFLICT(target, config) DO UPDATE SET next_due = ?7";

keel_status gate_store_nightly_set_due(gate_store *st, const char *target, const char *config,
                                       long long due)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL);
    return exec_row(st, set_due_sql, target, config, 0, 0, NULL, 0, due,
                    "cannot record when a nightly configuration is due", NULL);
}

keel_status gate_store_nightly_run_now(gate_store *st, const char *target, const char *config,
                                       const char *commit, long long now)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL);
    if (!gate__store_valid_oid(commit))
        return KEEL_ERR(KEEL_E_INVAL, "'%s' is not a commit id", commit != NULL ? commit : "");
    return exec_row(st,
                    "INSERT INTO nightly_runs(target, config, due_at, commit_id, updated_at) "
                    "VALUES(?1, ?2, max(?4, (SELECT coalesce(max(due_at), 0) + 1 FROM "
                    "nightly_runs WHERE target = ?1 AND config = ?2)), ?5, ?4)",
                    target, config, 0, now, commit, 0, 0, "cannot record a nightly run", NULL);
}

keel_status gate_store_nightly_fire(gate_store *st, const char *target, const char *config,
                                    long long due_at, const char *commit, long long next_due,
                                    long long now)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL);
    if (!gate__store_valid_oid(commit))
        return KEEL_ERR(KEEL_E_INVAL, "'%s' is not a commit id", commit != NULL ? commit : "");
    keel_status s = gate__store_begin(st);
    if (keel_ok(s))
        s = exec_row(st,
                     "INSERT OR IGNORE INTO nightly_runs(target, config, due_at, commit_id, "
                     "updated_at) VALUES(?1, ?2, ?3, ?5, ?4)",
                     target, config, due_at, now, commit, 0, 0, "cannot record a nightly run",
                     NULL);
    if (keel_ok(s))
        s = exec_row(st, set_due_sql, target, config, 0, 0, NULL, 0, next_due,
                     "cannot record when a nightly configuration is due", NULL);
    return gate__store_finish(st, s);
}

#define ROW_COLUMNS "config, due_at, commit_id, state, runs, fails, log, updated_at"

static void read_row(sqlite3_stmt *stmt, gate_nightly_row *out)
{
    memset(out, 0, sizeof(*out));
    gate__store_copy_text(out->config, sizeof(out->config), sqlite3_column_text(stmt, 0));
    out->due_at = sqlite3_column_int64(stmt, 1);
    gate__store_copy_text(out->commit, sizeof(out->commit), sqlite3_column_text(stmt, 2));
    gate__store_copy_text(out->state, sizeof(out->state), sqlite3_column_text(stmt, 3));
    out->runs = (unsigned)sqlite3_column_int(stmt, 4);
    out->fails = (unsigned)sqlite3_column_int(stmt, 5);
    gate__store_copy_text(out->log, sizeof(out->log), sqlite3_column_text(stmt, 6));
    out->updated_at = sqlite3_column_int64(stmt, 7);
}

/* The rows of a query with ?1 target, ?2 config or NULL, ?3 limit. */
static keel_status rows(gate_store *st, const char *sql, const char *target, const char *config,
                        gate_nightly_row *out, size_t max, size_t *n, const char *what)
{
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    if (config != NULL)
        gate__store_bind_text(stmt, 2, config);
    (void)sqlite3_bind_int64(stmt, 3, (long long)max);
    int rc = SQLITE_DONE;
    while (*n < max && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
        read_row(stmt, &out[(*n)++]);
    if (*n < max && rc != SQLITE_DONE)
        s = gate__store_error(st, rc, what);
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_nightly_next(gate_store *st, const char *target, gate_nightly_row *out,
                                    bool *found)
{
    KEEL_ASSERT(st != NULL && target != NULL && out != NULL && found != NULL);
    size_t n = 0;
    keel_status s = rows(st,
                         "SELECT " ROW_COLUMNS " FROM nightly_runs WHERE target = ?1 AND "
                         "state = 'pending' ORDER BY due_at DESC, config LIMIT ?3",
                         target, NULL, out, 1, &n, "cannot read the next nightly run");
    *found = keel_ok(s) && n == 1;
    return s;
}

keel_status gate_store_nightly_start(gate_store *st, const char *target, const char *config,
                                     long long due_at, long long now)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL);
    int changed = 0;
    keel_status s = exec_row(st,
                             "UPDATE nightly_runs SET state = 'running', updated_at = ?4 WHERE "
                             "target = ?1 AND config = ?2 AND due_at = ?3 AND state = 'pending'",
                             target, config, due_at, now, NULL, 0, 0,
                             "cannot record a nightly run's start", &changed);
    if (keel_ok(s) && changed != 1)
        s = KEEL_ERR(KEEL_E_STATE, "the nightly run of '%s' due at %lld is not pending", config,
                     due_at);
    return s;
}

/*
 * A nightly_runs row (of a running build, in a statement on nightly_runs)
 * that a newer run of its configuration finished while it ran: superseded,
 * as gate_store_nightly_finish drops the older pending runs (a nightly run
 * is never built twice: a running one has no result yet).
 */
#define SUPERSEDED                                                                              \
    "EXISTS (SELECT 1 FROM nightly_runs n WHERE n.target = nightly_runs.target AND n.config = " \
    "nightly_runs.config AND n.due_at > nightly_runs.due_at AND n.state = 'done')"

/*
 * Running runs whose build ended without a result, of `config` due at
 * `due_at` (a cancelled build) or every one of `target` (config NULL: those
 * a killed gate left): removed when superseded (SUPERSEDED), else pending
 * again, in one transaction; *pending, *dropped: how many.
 */
static keel_status put_back(gate_store *st, const char *target, const char *config,
                            long long due_at, const char *what, int *pending, int *dropped)
{
    *pending = *dropped = 0;
    keel_status s = gate__store_begin(st);
    if (keel_ok(s))
        s = exec_row(st,
                     "DELETE FROM nightly_runs WHERE target = ?1 AND (?2 IS NULL OR (config = ?2 "
                     "AND due_at = ?3)) AND state = 'running' AND " SUPERSEDED,
                     target, config, due_at, 0, NULL, 0, 0, what, dropped);
    if (keel_ok(s))
        s = exec_row(st,
                     "UPDATE nightly_runs SET state = 'pending' WHERE target = ?1 AND (?2 IS "
                     "NULL OR (config = ?2 AND due_at = ?3)) AND state = 'running'",
                     target, config, due_at, 0, NULL, 0, 0, what, pending);
    return gate__store_finish(st, s);
}

keel_status gate_store_nightly_unstart(gate_store *st, const char *target, const char *config,
                                       long long due_at, bool *superseded)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL && superseded != NULL);
    int pending = 0, dropped = 0;
    keel_status s =
        put_back(st, target, config, due_at, "cannot put a nightly run back", &pending, &dropped);
    *superseded = keel_ok(s) && dropped == 1;
    return s;
}

keel_status gate_store_nightly_finish(gate_store *st, const char *target, const char *config,
                                      long long due_at, bool failed, const char *log, long long now,
                                      char was[GATE_POST_STATE_MAX])
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL && was != NULL);
    was[0] = '\0';
    keel_status s = gate__store_begin(st);
    gate_nightly_row last;
    size_t n = 0;
    if (keel_ok(s))
        s = rows(st,
                 "SELECT " ROW_COLUMNS " FROM nightly_runs WHERE target = ?1 AND config = ?2 "
                 "AND state = 'done' AND runs > 0 ORDER BY due_at DESC LIMIT ?3",
                 target, config, &last, 1, &n, "cannot read the last nightly result");
    if (keel_ok(s) && n == 1)
        (void)snprintf(was, GATE_POST_STATE_MAX, "%s", gate_nightly_outcome(&last));
    int changed = 0;
    if (keel_ok(s))
        s = exec_row(st,
                     "UPDATE nightly_runs SET state = 'done', runs = runs + 1, fails = fails + "
                     "?6, log = ?5, updated_at = ?4 WHERE target = ?1 AND config = ?2 AND "
                     "due_at = ?3 AND state = 'running'",
                     target, config, due_at, now, log, failed ? 1 : 0, 0,
                     "cannot record a nightly run's result", &changed);
    if (keel_ok(s) && changed != 1)
        s = KEEL_ERR(KEEL_E_STATE, "the nightly run of '%s' due at %lld is not running", config,
                     due_at);
    if (keel_ok(s)) /* superseded: the older runs not built yet build an older head */
        s = exec_row(st,
                     "DELETE FROM nightly_runs WHERE target = ?1 AND config = ?2 AND due_at < ?3 "
                     "AND state = 'pending'",
                     target, config, due_at, 0, NULL, 0, 0, "cannot drop superseded nightly runs",
                     NULL);
    return gate__store_finish(st, s);
}

keel_status gate_store_nightly_is_newest(gate_store *st, const char *target, const char *config,
                                         long long due_at, bool *newest)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL && newest != NULL);
    *newest = true;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st,
                                        "SELECT count(*) FROM nightly_runs WHERE target = ?1 AND "
                                        "config = ?2 AND state = 'done' AND due_at > ?3",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_text(stmt, 2, config);
    (void)sqlite3_bind_int64(stmt, 3, due_at);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *newest = sqlite3_column_int64(stmt, 0) == 0;
    else
        s = gate__store_error(st, rc, "cannot read the newer nightly results");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_nightly_recover(gate_store *st, const char *target, size_t *n,
                                       size_t *superseded)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && superseded != NULL);
    *n = *superseded = 0;
    int pending = 0, dropped = 0;
    keel_status s =
        put_back(st, target, NULL, 0, "cannot recover the nightly runs", &pending, &dropped);
    if (keel_ok(s)) {
        *n = (size_t)pending;
        *superseded = (size_t)dropped;
    }
    return s;
}

keel_status gate_store_nightly_history(gate_store *st, const char *target, const char *config,
                                       gate_nightly_row *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && (out != NULL || max == 0));
    return rows(st,
                "SELECT " ROW_COLUMNS " FROM nightly_runs WHERE target = ?1 AND (?2 IS NULL OR "
                "config = ?2) ORDER BY due_at DESC, config LIMIT ?3",
                target, config, out, max, n, "cannot read the nightly history");
}
