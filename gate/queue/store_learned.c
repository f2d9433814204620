/*
 * store_learned.c - keel-gate's store: what the adaptive scheduler learned of
 * each target's queue (its failure rate per change and the flake rate per
 * build, with the evidence of each), kept across runs so that a gate started
 * again (an upgrade, a restart, kill -9) starts from it, not from the default
 * prior (gate_loop.c feeds it to gate_sched_recall).  One row per target,
 * replaced as the scheduler learns; the scheduler caps the weight it gives
 * it (scheduler.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_int.h"

#include <stdint.h>
#include <string.h>

/*
 * The schema step of each job's load (store.c's migrations: columns of the
 * jobs' table, 0 in the rows of an older store: not known, not recalled).
 */
const char gate__store_job_load_schema[] =
    "ALTER TABLE jobs ADD COLUMN load REAL NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN others REAL NOT NULL DEFAULT 0;";

/* The schema step (store.c's migrations; only its own table). */
const char gate__store_learned_schema[] =
    "CREATE TABLE IF NOT EXISTS learned ("
    "  target TEXT PRIMARY KEY, p REAL NOT NULL, n REAL NOT NULL, flake REAL NOT NULL,"
    "  flake_n REAL NOT NULL, updated_at INTEGER NOT NULL);";

keel_status gate_store_learned_put(gate_store *st, const char *target, const gate_learned *l,
                                   long long now)
{
    KEEL_ASSERT(st != NULL && target != NULL && l != NULL);
    keel_status s = gate__store_begin_unless_full(st, KEEL_STRESS(learned_full));
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "recording what the scheduler learned of '%s'", target);
    sqlite3_stmt *stmt = NULL;
    s = gate__store_prepare(st,
                            "INSERT OR REPLACE INTO learned(target, p, n, flake, flake_n, "
                            "updated_at) VALUES(?, ?, ?, ?, ?, ?)",
                            &stmt);
    if (keel_ok(s)) {
        gate__store_bind_text(stmt, 1, target);
        (void)sqlite3_bind_double(stmt, 2, l->p);
        (void)sqlite3_bind_double(stmt, 3, l->n);
        (void)sqlite3_bind_double(stmt, 4, l->flake);
        (void)sqlite3_bind_double(stmt, 5, l->flake_n);
        (void)sqlite3_bind_int64(stmt, 6, now);
        s = gate__store_step_done(st, stmt, "cannot record what the scheduler learned");
    }
    return gate__store_finish(st, s);
}

keel_status gate_store_learned_get(gate_store *st, const char *target, gate_learned *out,
                                   bool *found)
{
    KEEL_ASSERT(st != NULL && target != NULL && out != NULL && found != NULL);
    memset(out, 0, sizeof(*out));
    *found = false;
    if (KEEL_STRESS(learned_unreadable)) /* as SQLite says a read the disk refused */
        return KEEL_ERR(KEEL_E_IO,
                        "store '%s': cannot read what the scheduler learned of '%s': %s (stress "
                        "point)",
                        st->path, target, sqlite3_errstr(SQLITE_IOERR));
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st, "SELECT p, n, flake, flake_n, updated_at FROM learned WHERE target = ?", &stmt);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading what the scheduler learned of '%s'", target);
    gate__store_bind_text(stmt, 1, target);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *found = true;
        out->p = sqlite3_column_double(stmt, 0);
        out->n = sqlite3_column_double(stmt, 1);
        out->flake = sqlite3_column_double(stmt, 2);
        out->flake_n = sqlite3_column_double(stmt, 3);
        out->updated_at = sqlite3_column_int64(stmt, 4);
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read what the scheduler learned");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_job_timings(gate_store *st, const char *target, size_t max,
                                   gate_store_timing_fn fn, void *arg)
{
    KEEL_ASSERT(st != NULL && target != NULL && fn != NULL);
    if (KEEL_STRESS(timings_unreadable)) /* as SQLite says a read the disk refused */
        return KEEL_ERR(KEEL_E_IO,
                        "store '%s': cannot read the job timings of '%s': %s (stress point)",
                        st->path, target, sqlite3_errstr(SQLITE_IOERR));
    sqlite3_stmt *stmt = NULL;
    /* the newest first (from the end of the jobs' rowids: it stops at `max`), then turned */
    keel_status s = gate__store_prepare(
        st,
        "SELECT config, state, elapsed_ms, load, others FROM (SELECT j.id, j.config, j.state, "
        "j.elapsed_ms, j.load, j.others FROM jobs j JOIN candidates c ON c.id = j.candidate "
        "WHERE c.target = ?1 AND j.state IN ('passed', 'failed') AND j.elapsed_ms > 0 AND "
        "j.load >= 1 ORDER BY j.id DESC LIMIT ?2) ORDER BY id",
        &stmt);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the job timings of '%s'", target);
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_count(stmt, 2, max);
    int rc = SQLITE_DONE;
    while (keel_ok(s) && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const unsigned char *config = sqlite3_column_text(stmt, 0);
        const unsigned char *state = sqlite3_column_text(stmt, 1);
        gate_job_timing t = {sqlite3_column_int64(stmt, 2), sqlite3_column_double(stmt, 3),
                             sqlite3_column_double(stmt, 4)};
        s = fn(arg, config != NULL ? (const char *)config : "",
               state != NULL && strcmp((const char *)state, "passed") == 0, &t);
    }
    if (keel_ok(s) && rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot read the job timings");
    (void)sqlite3_finalize(stmt);
    return s;
}
