/*
 * store_flaky.c - keel-gate's store: the endings of each target's flakes (a
 * configuration failed with that failure signature, then passed on the same
 * tree), kept across runs so that a gate started again (an upgrade, a
 * restart, kill -9) knows them from its first build: a failure that repeats
 * one is no evidence of a real failure (scheduler.h, Flakes; gate_loop.c
 * feeds them to gate_sched_recall_flaky).  A row per target, configuration
 * and signature, with when it was last written; at most the newest `keep`
 * per target (the scheduler's GATE_SCHED_FLAKY_ENDINGS).  A signature is only
 * meaningful for its configuration's name: a configuration that no longer
 * exists keeps its rows until newer ones push them out, and they never match.
 *
 * And the rejections each target's scheduler watches for their ending to
 * turn out a flake's (scheduler.h, Rejections taken back; gate_decide.c
 * writes one per watched REJECT, gate_loop.c feeds them to
 * gate_sched_recall_watched): a row per change, the newest `keep` per target.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_int.h"

#include <stdint.h>
#include <string.h>

/*
 * The schema step (store.c's migrations; only its own table).  `id` orders
 * the rows (a row written again is a new row: the newest id), the unique key
 * is the ending.  `signature` holds the 64 bits of the unsigned signature in
 * SQLite's signed INTEGER (sig_row / sig_of).
 */
const char gate__store_flaky_schema[] =
    "CREATE TABLE IF NOT EXISTS flaky_endings ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, config TEXT NOT NULL,"
    "  signature INTEGER NOT NULL, seen_at INTEGER NOT NULL,"
    "  UNIQUE (target, config, signature));";

/* The schema step of the watched rejections (`id` orders them: a row written again is the newest). */
const char gate__store_watch_schema[] =
    "CREATE TABLE IF NOT EXISTS watched_rejections ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, change INTEGER NOT NULL UNIQUE,"
    "  target TEXT NOT NULL, config TEXT NOT NULL, signature INTEGER NOT NULL,"
    "  job INTEGER NOT NULL, runs INTEGER NOT NULL, failures INTEGER NOT NULL,"
    "  watched_at INTEGER NOT NULL);";

/* A signature as a row holds it: the same 64 bits, as two's complement (not a cast's overflow). */
static sqlite3_int64 sig_row(unsigned long long sig)
{
    if (sig <= (unsigned long long)INT64_MAX)
        return (sqlite3_int64)sig;
    return (sqlite3_int64)(sig - (unsigned long long)INT64_MAX - 1u) + INT64_MIN;
}

static unsigned long long sig_of(sqlite3_int64 v)
{
    if (v >= 0)
        return (unsigned long long)v;
    return (unsigned long long)(v - INT64_MIN) + (unsigned long long)INT64_MAX + 1u;
}

/* A table's DELETE of all but the target's newest rows (`sql`: ?1 the target, ?2 how many stay). */
static keel_status keep_newest(gate_store *st, const char *sql, const char *target, size_t keep,
                               const char *what)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_count(stmt, 2, keep);
    return gate__store_step_done(st, stmt, what);
}

keel_status gate_store_flaky_put(gate_store *st, const char *target, const gate_flaky_ending *e,
                                 size_t n, size_t keep, long long now)
{
    KEEL_ASSERT(st != NULL && target != NULL && (e != NULL || n == 0));
    keel_status s = gate__store_begin_unless_full(st, KEEL_STRESS(flaky_full));
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "recording the endings of the flakes of '%s'", target);
    sqlite3_stmt *stmt = NULL;
    for (size_t i = 0; keel_ok(s) && i < n; i++) { /* the oldest first: ids in that order */
        s = gate__store_prepare(st,
                                "INSERT OR REPLACE INTO flaky_endings(target, config, signature, "
                                "seen_at) VALUES(?, ?, ?, ?)",
                                &stmt);
        if (!keel_ok(s))
            break;
        gate__store_bind_text(stmt, 1, target);
        gate__store_bind_text(stmt, 2, e[i].config);
        (void)sqlite3_bind_int64(stmt, 3, sig_row(e[i].signature));
        (void)sqlite3_bind_int64(stmt, 4, now);
        s = gate__store_step_done(st, stmt, "cannot record the ending of a flake");
    }
    if (keel_ok(s))
        s = keep_newest(st,
                        "DELETE FROM flaky_endings WHERE target = ?1 AND id NOT IN (SELECT id FROM "
                        "flaky_endings WHERE target = ?1 ORDER BY id DESC LIMIT ?2)",
                        target, keep, "cannot forget the oldest endings of flakes");
    s = gate__store_finish(st, s);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "recording the endings of the flakes of '%s'", target);
    return KEEL_OK;
}

keel_status gate_store_flaky_endings(gate_store *st, const char *target, size_t max,
                                     gate_store_flaky_fn fn, void *arg)
{
    KEEL_ASSERT(st != NULL && target != NULL && fn != NULL);
    if (KEEL_STRESS(flaky_unreadable)) /* as SQLite says a read the disk refused */
        return KEEL_ERR(KEEL_E_IO,
                        "store '%s': cannot read the endings of the flakes of '%s': %s (stress "
                        "point)",
                        st->path, target, sqlite3_errstr(SQLITE_IOERR));
    sqlite3_stmt *stmt = NULL;
    /* the newest first (it stops at `max`), then turned */
    keel_status s = gate__store_prepare(
        st,
        "SELECT config, signature, seen_at FROM (SELECT id, config, signature, seen_at FROM "
        "flaky_endings WHERE target = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
        &stmt);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the endings of the flakes of '%s'", target);
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_count(stmt, 2, max);
    int rc = SQLITE_DONE;
    while (keel_ok(s) && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const unsigned char *config = sqlite3_column_text(stmt, 0);
        gate_flaky_ending e = {config != NULL ? (const char *)config : "",
                               sig_of(sqlite3_column_int64(stmt, 1)),
                               sqlite3_column_int64(stmt, 2)};
        s = fn(arg, &e);
    }
    if (keel_ok(s) && rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot read the endings of flakes");
    (void)sqlite3_finalize(stmt);
    if (!keel_ok(s) && rc != SQLITE_ROW) /* the store's, not fn's */
        return KEEL_CONTEXT(s, "reading the endings of the flakes of '%s'", target);
    return s;
}

keel_status gate_store_watch_put(gate_store *st, const char *target,
                                 const gate_watched_rejection *w, size_t keep, long long now)
{
    KEEL_ASSERT(st != NULL && target != NULL && w != NULL && w->config != NULL &&
                w->signature != 0);
    keel_status s = gate__store_begin_unless_full(st, KEEL_STRESS(watch_full));
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "recording the watched rejection of change %lld", w->change);
    sqlite3_stmt *stmt = NULL;
    s = gate__store_prepare(st,
                            "INSERT OR REPLACE INTO watched_rejections(change, target, config, "
                            "signature, job, runs, failures, watched_at) VALUES(?, ?, ?, ?, ?, ?, "
                            "?, ?)",
                            &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_int64(stmt, 1, w->change);
        gate__store_bind_text(stmt, 2, target);
        gate__store_bind_text(stmt, 3, w->config);
        (void)sqlite3_bind_int64(stmt, 4, sig_row(w->signature));
        (void)sqlite3_bind_int64(stmt, 5, w->job);
        (void)sqlite3_bind_int64(stmt, 6, w->runs);
        (void)sqlite3_bind_int64(stmt, 7, w->failures);
        (void)sqlite3_bind_int64(stmt, 8, now);
        s = gate__store_step_done(st, stmt, "cannot record a watched rejection");
    }
    if (keel_ok(s))
        s = keep_newest(st,
                        "DELETE FROM watched_rejections WHERE target = ?1 AND id NOT IN (SELECT id "
                        "FROM watched_rejections WHERE target = ?1 ORDER BY id DESC LIMIT ?2)",
                        target, keep, "cannot forget the oldest watched rejections");
    s = gate__store_finish(st, s);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "recording the watched rejection of change %lld", w->change);
    return KEEL_OK;
}

keel_status gate_store_watched(gate_store *st, const char *target, size_t max,
                               gate_store_watched_fn fn, void *arg)
{
    KEEL_ASSERT(st != NULL && target != NULL && fn != NULL);
    sqlite3_stmt *stmt = NULL;
    /* the newest first (it stops at `max`), then turned; changes still rejected, not submitted again */
    keel_status s = gate__store_prepare(
        st,
        "SELECT change, config, signature, job, runs, failures FROM (SELECT w.* FROM "
        "watched_rejections w JOIN changes c ON c.id = w.change WHERE w.target = ?1 AND c.state "
        "= 'rejected' AND " GATE__STORE_NOT_SUBMITTED_AGAIN(
            "c") " ORDER BY w.id DESC LIMIT ?2) ORDER BY id",
        &stmt);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the watched rejections of '%s'", target);
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_count(stmt, 2, max);
    int rc = SQLITE_DONE;
    while (keel_ok(s) && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const unsigned char *config = sqlite3_column_text(stmt, 1);
        sqlite3_int64 runs = sqlite3_column_int64(stmt, 4), fails = sqlite3_column_int64(stmt, 5);
        gate_watched_rejection w = {sqlite3_column_int64(stmt, 0),
                                    config != NULL ? (const char *)config : "",
                                    sig_of(sqlite3_column_int64(stmt, 2)),
                                    sqlite3_column_int64(stmt, 3),
                                    runs >= 0 && runs <= UINT32_MAX ? (unsigned)runs : 0u,
                                    fails >= 0 && fails <= UINT32_MAX ? (unsigned)fails : 0u};
        s = fn(arg, &w);
    }
    if (keel_ok(s) && rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot read the watched rejections");
    (void)sqlite3_finalize(stmt);
    if (!keel_ok(s) && rc != SQLITE_ROW) /* the store's, not fn's */
        return KEEL_CONTEXT(s, "reading the watched rejections of '%s'", target);
    return s;
}
