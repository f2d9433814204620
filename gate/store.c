/*
 * store.c - keel-gate's SQLite store.
 */
#define _GNU_SOURCE 1
#include "store.h"

#include "heaps.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_HEAP KEEL_MODULE_REF(gate_store)

struct gate_store {
    sqlite3 *db;
    char *path;                 /* in the same block */
    char target[GATE_NAME_MAX]; /* gate_store_set_target: an event's when it has no change */
    sqlite3_stmt *notify_next;  /* prepared once: the notifier runs it at every wake-up */
    sqlite3_stmt *event_insert; /* prepared once: every change of state records an event */
};

static const char *const state_names[] = {"queued",   "testing",  "landed",
                                          "rejected", "conflict", "cancelled"};
enum { NSTATES = sizeof(state_names) / sizeof(state_names[0]) };

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

/* An error from SQLite, naming the store and what was being done. */
static keel_status db_error(const gate_store *st, int rc, const char *what)
{
    if (rc == SQLITE_NOMEM) {
        keel_status heap = gate_heaps_take_failure(); /* which heap, and why */
        if (!keel_ok(heap))
            return keel_status_with_int(
                keel_status_with_str(KEEL_CONTEXT(heap, "store '%s': %s", st->path, what), "store",
                                     st->path),
                "sqlite_code", rc);
    }
    return keel_status_with_int(
        keel_status_with_str(KEEL_ERR(KEEL_E_IO, "store '%s': %s: %s", st->path, what,
                                      st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc)),
                             "store", st->path),
        "sqlite_code", rc);
}

/* Version 1: the tables as keel-gate first made them. */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS changes ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  branch TEXT NOT NULL, head TEXT NOT NULL, target TEXT NOT NULL,"
    "  priority INTEGER NOT NULL DEFAULT 0, submitted_at INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'queued', candidate INTEGER NOT NULL DEFAULT 0,"
    "  reason TEXT NOT NULL DEFAULT '', updated_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS changes_by_state ON changes(target, state);"
    "CREATE TABLE IF NOT EXISTS candidates ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, base TEXT NOT NULL,"
    "  merge TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT 'open',"
    "  created_at INTEGER NOT NULL, finished_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS candidate_changes ("
    "  candidate INTEGER NOT NULL REFERENCES candidates(id),"
    "  change INTEGER NOT NULL REFERENCES changes(id), position INTEGER NOT NULL,"
    "  PRIMARY KEY (candidate, position));"
    "CREATE TABLE IF NOT EXISTS jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  candidate INTEGER NOT NULL REFERENCES candidates(id), config TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'running',"
    "  exit_code INTEGER NOT NULL DEFAULT 0, log TEXT NOT NULL DEFAULT '',"
    "  started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, kind TEXT NOT NULL,"
    "  change INTEGER NOT NULL DEFAULT 0, detail TEXT NOT NULL DEFAULT '{}');";

/*
 * Version 2: each event names its target (so that two gates on one store
 * notify their own: '' for the events of version 1), and the notify hook's
 * cursor per target (the last event the hook took, and how often it failed
 * on the next one).
 */
static const char schema_v2[] =
    "ALTER TABLE events ADD COLUMN target TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX IF NOT EXISTS events_by_target ON events(target, id);"
    "CREATE TABLE IF NOT EXISTS notify_cursor ("
    "  target TEXT PRIMARY KEY, event INTEGER NOT NULL, failures INTEGER NOT NULL DEFAULT 0);";

/* The schema's steps: a store at user_version N runs the steps after N, in order, in one transaction. */
static const struct {
    int version;
    const char *sql;
} migrations[] = {{1, schema_v1}, {2, schema_v2}};
enum { SCHEMA_VERSION = 2 };

static keel_status user_version(gate_store *st, int *version)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &stmt, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
        *version = sqlite3_column_int(stmt, 0);
    (void)sqlite3_finalize(stmt);
    return rc == SQLITE_ROW ? KEEL_OK : db_error(st, rc, "cannot read the schema version");
}

/* Bring the schema to SCHEMA_VERSION (nothing is written when it is there already). */
static keel_status migrate(gate_store *st)
{
    int version = 0;
    keel_status s = user_version(st, &version);
    if (!keel_ok(s) || version == SCHEMA_VERSION)
        return s;
    int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_error(st, rc, "cannot begin the schema's upgrade");
    s = user_version(st, &version); /* another process may have done it meanwhile */
    if (keel_ok(s) && version > SCHEMA_VERSION)
        s = keel_status_with_int(KEEL_ERR(KEEL_E_STATE,
                                          "store '%s' has schema version %d: this keel-gate "
                                          "knows versions up to %d",
                                          st->path, version, (int)SCHEMA_VERSION),
                                 "version", version);
    for (size_t i = 0; keel_ok(s) && i < sizeof(migrations) / sizeof(migrations[0]); i++) {
        if (migrations[i].version <= version)
            continue;
        rc = sqlite3_exec(st->db, migrations[i].sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            s = keel_status_with_int(db_error(st, rc, "cannot upgrade the schema"), "to_version",
                                     migrations[i].version);
    }
    if (keel_ok(s)) {
        char sql[48];
        (void)snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", (int)SCHEMA_VERSION);
        rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            s = db_error(st, rc, "cannot record the schema version");
    }
    rc = sqlite3_exec(st->db, keel_ok(s) ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    if (keel_ok(s) && rc != SQLITE_OK)
        s = db_error(st, rc, "cannot commit the schema's upgrade");
    return s;
}

keel_status gate_store_open(const char *path, gate_store **out)
{
    KEEL_ASSERT(path != NULL && out != NULL);
    *out = NULL;
    void *mem = NULL;
    char *copy = NULL;
    keel_status s = gate_heaps_alloc_named(STORE_HEAP, sizeof(gate_store), path, &mem, &copy);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "opening store '%s'", path);
    gate_store *st = (gate_store *)mem;
    st->path = copy;
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK)
        s = db_error(st, rc, "cannot open");
    if (keel_ok(s)) {
        (void)sqlite3_busy_timeout(st->db, 5000);
        rc = sqlite3_exec(
            st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
            NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            s = db_error(st, rc, "cannot set journal mode");
    }
    if (keel_ok(s))
        s = migrate(st);
    if (!keel_ok(s)) {
        gate_store_close(st);
        return s;
    }
    *out = st;
    return KEEL_OK;
}

void gate_store_close(gate_store *st)
{
    if (st == NULL)
        return;
    (void)sqlite3_finalize(st->notify_next);
    (void)sqlite3_finalize(st->event_insert);
    (void)sqlite3_close(st->db);
    keel_heap_free(STORE_HEAP, st); /* its path too: one block */
}

/* ---- small statement helpers ----------------------------------------------------- */

static keel_status prepare(gate_store *st, const char *sql, sqlite3_stmt **stmt)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, stmt, NULL);
    if (rc != SQLITE_OK)
        return db_error(st, rc, "cannot prepare a statement");
    return KEEL_OK;
}

static keel_status exec(gate_store *st, const char *sql, const char *what)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_error(st, rc, what);
    return KEEL_OK;
}

static keel_status begin(gate_store *st)
{
    return exec(st, "BEGIN IMMEDIATE", "cannot begin a transaction");
}

/* Commit when s is OK, roll back otherwise; returns s (or the commit's error). */
static keel_status finish(gate_store *st, keel_status s)
{
    if (keel_ok(s))
        return exec(st, "COMMIT", "cannot commit");
    keel_status r = exec(st, "ROLLBACK", "cannot roll back");
    if (!keel_ok(r))
        keel_status_ignore(r, "the first error is the one to report");
    return s;
}

/* Run a prepared statement to completion (no rows expected). */
static keel_status step_done(gate_store *st, sqlite3_stmt *stmt, const char *what)
{
    int rc = sqlite3_step(stmt);
    keel_status s = rc == SQLITE_DONE ? KEEL_OK : db_error(st, rc, what);
    (void)sqlite3_finalize(stmt);
    return s;
}

static void copy_text(char *dst, size_t size, const unsigned char *src)
{
    (void)snprintf(dst, size, "%s", src != NULL ? (const char *)src : "");
}

static bool valid_oid(const char *oid)
{
    if (oid == NULL || strlen(oid) != 40)
        return false;
    for (const char *p = oid; *p != '\0'; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* ---- changes ------------------------------------------------------------------------ */

/*
 * An event of the history: its target is its change's, else the store's
 * (gate_store_set_target).  A detail that is not valid JSON (a caller's
 * buffer cut it) is replaced, so that every reader of the history can parse it.
 */
static keel_status event_locked(gate_store *st, long long now, const char *kind, long long change,
                                const char *detail)
{
    keel_status s = KEEL_OK;
    if (st->event_insert == NULL)
        s = prepare(st,
                    "INSERT INTO events(time, kind, change, detail, target) VALUES(?1, ?2, ?3, "
                    "CASE WHEN json_valid(?4) THEN ?4 ELSE '{\"detail_invalid\":true}' END, "
                    "coalesce((SELECT target FROM changes WHERE id = ?3), ?5))",
                    &st->event_insert);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = st->event_insert;
    (void)sqlite3_bind_int64(stmt, 1, now);
    (void)sqlite3_bind_text(stmt, 2, kind, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 3, change);
    (void)sqlite3_bind_text(stmt, 4, detail != NULL ? detail : "{}", -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(stmt, 5, st->target, -1, SQLITE_STATIC);
    int rc = sqlite3_step(stmt);
    s = rc == SQLITE_DONE ? KEEL_OK : db_error(st, rc, "cannot record an event");
    (void)sqlite3_reset(stmt); /* kept for the next event */
    (void)sqlite3_clear_bindings(stmt);
    return s;
}

void gate_store_set_target(gate_store *st, const char *target)
{
    KEEL_ASSERT(st != NULL && target != NULL);
    (void)snprintf(st->target, sizeof(st->target), "%s", target);
}

keel_status gate_store_submit(gate_store *st, const char *branch, const char *head,
                              const char *target, int priority, long long now, long long *id)
{
    KEEL_ASSERT(st != NULL && id != NULL);
    if (branch == NULL || branch[0] == '\0' || strlen(branch) >= GATE_NAME_MAX)
        return KEEL_ERR(KEEL_E_INVAL, "a change needs a branch name shorter than %d bytes",
                        (int)GATE_NAME_MAX);
    if (target == NULL || target[0] == '\0' || strlen(target) >= GATE_NAME_MAX)
        return KEEL_ERR(KEEL_E_INVAL, "a change needs a target branch");
    if (!valid_oid(head))
        return KEEL_ERR(KEEL_E_INVAL, "'%s' is not a commit id (40 lower-case hex digits)",
                        head != NULL ? head : "(null)");
    keel_status s = begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = prepare(st,
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
            s = db_error(st, rc, "cannot look for an active change");
        (void)sqlite3_finalize(stmt);
    }
    if (keel_ok(s))
        s = prepare(st,
                    "INSERT INTO changes(branch, head, target, priority, submitted_at, updated_at) "
                    "VALUES(?,?,?,?,?,?)",
                    &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, branch, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_text(stmt, 2, head, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_text(stmt, 3, target, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int(stmt, 4, priority);
        (void)sqlite3_bind_int64(stmt, 5, now);
        (void)sqlite3_bind_int64(stmt, 6, now);
        s = step_done(st, stmt, "cannot queue the change");
    }
    if (keel_ok(s)) {
        *id = sqlite3_last_insert_rowid(st->db);
        s = event_locked(st, now, "submit", *id, NULL);
    }
    return finish(st, s);
}

static keel_status read_change(sqlite3_stmt *stmt, gate_change *out)
{
    memset(out, 0, sizeof(*out));
    out->id = sqlite3_column_int64(stmt, 0);
    copy_text(out->branch, sizeof(out->branch), sqlite3_column_text(stmt, 1));
    copy_text(out->head, sizeof(out->head), sqlite3_column_text(stmt, 2));
    copy_text(out->target, sizeof(out->target), sqlite3_column_text(stmt, 3));
    out->priority = sqlite3_column_int(stmt, 4);
    out->submitted_at = sqlite3_column_int64(stmt, 5);
    const unsigned char *state = sqlite3_column_text(stmt, 6);
    int si = state_from_name(state != NULL ? (const char *)state : "");
    out->candidate = sqlite3_column_int64(stmt, 7);
    copy_text(out->reason, sizeof(out->reason), sqlite3_column_text(stmt, 8));
    if (si < 0)
        return KEEL_ERR(KEEL_E_INTERNAL, "change %lld has an unknown state '%s'", out->id,
                        state != NULL ? (const char *)state : "");
    out->state = (gate_change_state)si;
    return KEEL_OK;
}

#define CHANGE_COLUMNS "id, branch, head, target, priority, submitted_at, state, candidate, reason"

keel_status gate_store_get(gate_store *st, long long id, gate_change *out)
{
    KEEL_ASSERT(st != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st, "SELECT " CHANGE_COLUMNS " FROM changes WHERE id = ?", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, id);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        s = read_change(stmt, out);
    else if (rc == SQLITE_DONE)
        s = keel_status_with_int(KEEL_ERR(KEEL_E_NOTFOUND, "no change %lld", id), "change", id);
    else
        s = db_error(st, rc, "cannot read a change");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_queued(gate_store *st, const char *target, long long now, long long aging_s,
                              gate_change *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
                            "SELECT " CHANGE_COLUMNS " FROM changes WHERE target = ? AND "
                            "state = 'queued' ORDER BY priority + (? - submitted_at) / ? DESC, id",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, now);
    (void)sqlite3_bind_int64(stmt, 3, aging_s > 0 ? aging_s : 1000000000LL);
    int rc;
    while (keel_ok(s) && *n < max && (rc = sqlite3_step(stmt)) != SQLITE_DONE) {
        if (rc != SQLITE_ROW)
            s = db_error(st, rc, "cannot read the queue");
        else
            s = read_change(stmt, &out[(*n)++]);
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

static keel_status set_state_locked(gate_store *st, long long id, gate_change_state state,
                                    const char *reason, long long now)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        prepare(st, "UPDATE changes SET state = ?, reason = ?, updated_at = ? WHERE id = ?", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, gate_change_state_name(state), -1, SQLITE_STATIC);
    (void)sqlite3_bind_text(stmt, 2, reason != NULL ? reason : "", -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 3, now);
    (void)sqlite3_bind_int64(stmt, 4, id);
    s = step_done(st, stmt, "cannot update a change");
    if (keel_ok(s) && sqlite3_changes(st->db) != 1)
        s = keel_status_with_int(KEEL_ERR(KEEL_E_NOTFOUND, "no change %lld", id), "change", id);
    if (keel_ok(s)) {
        char detail[64];
        (void)snprintf(detail, sizeof(detail), "{\"state\":\"%s\"}", gate_change_state_name(state));
        s = event_locked(st, now, gate_change_state_name(state), id, detail);
    }
    return s;
}

keel_status gate_store_set_state(gate_store *st, long long id, gate_change_state state,
                                 const char *reason, long long now)
{
    KEEL_ASSERT(st != NULL && (unsigned)state < NSTATES);
    keel_status s = begin(st);
    if (!keel_ok(s))
        return s;
    return finish(st, set_state_locked(st, id, state, reason, now));
}

keel_status gate_store_cancel(gate_store *st, long long id, long long now)
{
    KEEL_ASSERT(st != NULL);
    gate_change c;
    keel_status s = gate_store_get(st, id, &c);
    if (!keel_ok(s))
        return s;
    if (c.state != GATE_CHANGE_QUEUED && c.state != GATE_CHANGE_TESTING)
        return keel_status_with_str(KEEL_ERR(KEEL_E_STATE, "change %lld ('%s') is already %s", id,
                                             c.branch, gate_change_state_name(c.state)),
                                    "state", gate_change_state_name(c.state));
    return gate_store_set_state(st, id, GATE_CHANGE_CANCELLED, "cancelled by request", now);
}

/* ---- candidates and jobs ------------------------------------------------------------- */

static keel_status candidate_new(gate_store *st, const char *target, const char *base,
                                 const long long *changes, size_t n, long long now, bool rebuild,
                                 long long *id)
{
    KEEL_ASSERT(st != NULL && target != NULL && id != NULL && (changes != NULL || n == 0));
    if (!valid_oid(base))
        return KEEL_ERR(KEEL_E_INVAL, "candidate base '%s' is not a commit id",
                        base != NULL ? base : "(null)");
    if (n == 0)
        return KEEL_ERR(KEEL_E_INVAL, "a candidate needs at least one change");
    keel_status s = begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = prepare(st, "INSERT INTO candidates(target, base, created_at) VALUES(?,?,?)", &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_text(stmt, 2, base, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int64(stmt, 3, now);
        s = step_done(st, stmt, "cannot record a candidate");
    }
    long long cand = keel_ok(s) ? sqlite3_last_insert_rowid(st->db) : 0;
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        s = prepare(st, "INSERT INTO candidate_changes(candidate, change, position) VALUES(?,?,?)",
                    &stmt);
        if (keel_ok(s)) {
            (void)sqlite3_bind_int64(stmt, 1, cand);
            (void)sqlite3_bind_int64(stmt, 2, changes[i]);
            (void)sqlite3_bind_int64(stmt, 3, (long long)i);
            s = step_done(st, stmt, "cannot record a candidate's change");
        }
        if (keel_ok(s))
            s = prepare(st,
                        rebuild ? "UPDATE changes SET state = 'testing', candidate = ?, "
                                  "updated_at = ? WHERE id = ? AND state IN ('queued','testing')"
                                : "UPDATE changes SET state = 'testing', candidate = ?, "
                                  "updated_at = ? WHERE id = ? AND state = 'queued'",
                        &stmt);
        if (keel_ok(s)) {
            (void)sqlite3_bind_int64(stmt, 1, cand);
            (void)sqlite3_bind_int64(stmt, 2, now);
            (void)sqlite3_bind_int64(stmt, 3, changes[i]);
            s = step_done(st, stmt, "cannot move a change to testing");
        }
        if (keel_ok(s) && sqlite3_changes(st->db) != 1)
            s = keel_status_with_int(
                KEEL_ERR(KEEL_E_STATE, "change %lld is not queued: it cannot join a candidate",
                         changes[i]),
                "change", changes[i]);
    }
    if (keel_ok(s))
        *id = cand;
    return finish(st, s);
}

keel_status gate_store_candidate_new(gate_store *st, const char *target, const char *base,
                                     const long long *changes, size_t n, long long now,
                                     long long *id)
{
    return candidate_new(st, target, base, changes, n, now, false, id);
}

keel_status gate_store_candidate_rebuild(gate_store *st, const char *target, const char *base,
                                         const long long *changes, size_t n, long long now,
                                         long long *id)
{
    return candidate_new(st, target, base, changes, n, now, true, id);
}

static keel_status update_one(gate_store *st, const char *sql, const char *text, long long num,
                              long long id, const char *what)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, text, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, num);
    (void)sqlite3_bind_int64(stmt, 3, id);
    s = step_done(st, stmt, what);
    if (keel_ok(s) && sqlite3_changes(st->db) != 1)
        s = keel_status_with_int(KEEL_ERR(KEEL_E_NOTFOUND, "%s: no row %lld", what, id), "id", id);
    return s;
}

keel_status gate_store_candidate_set_merge(gate_store *st, long long id, const char *merge)
{
    KEEL_ASSERT(st != NULL);
    if (!valid_oid(merge))
        return KEEL_ERR(KEEL_E_INVAL, "merge '%s' is not a commit id", merge != NULL ? merge : "");
    return update_one(st, "UPDATE candidates SET merge = ?, finished_at = ? WHERE id = ?", merge, 0,
                      id, "cannot record a candidate's merge");
}

keel_status gate_store_candidate_finish(gate_store *st, long long id, const char *result,
                                        long long now)
{
    KEEL_ASSERT(st != NULL && result != NULL);
    return update_one(st, "UPDATE candidates SET state = ?, finished_at = ? WHERE id = ?", result,
                      now, id, "cannot finish a candidate");
}

keel_status gate_store_job_start(gate_store *st, long long candidate, const char *config,
                                 int attempt, long long now, long long *id)
{
    KEEL_ASSERT(st != NULL && config != NULL && id != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(
        st, "INSERT INTO jobs(candidate, config, attempt, started_at) VALUES(?,?,?,?)", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, candidate);
    (void)sqlite3_bind_text(stmt, 2, config, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int(stmt, 3, attempt);
    (void)sqlite3_bind_int64(stmt, 4, now);
    s = step_done(st, stmt, "cannot record a job");
    if (keel_ok(s))
        *id = sqlite3_last_insert_rowid(st->db);
    return s;
}

keel_status gate_store_job_finish(gate_store *st, long long id, const char *result, int exit_code,
                                  const char *log, long long now)
{
    KEEL_ASSERT(st != NULL && result != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
                            "UPDATE jobs SET state = ?, exit_code = ?, log = ?, finished_at = ? "
                            "WHERE id = ? AND state = 'running'",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, result, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int(stmt, 2, exit_code);
    (void)sqlite3_bind_text(stmt, 3, log != NULL ? log : "", -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 4, now);
    (void)sqlite3_bind_int64(stmt, 5, id);
    s = step_done(st, stmt, "cannot record a job's result");
    if (keel_ok(s) && sqlite3_changes(st->db) != 1)
        s = keel_status_with_int(
            KEEL_ERR(KEEL_E_STATE, "job %lld is not running: its result is not recorded", id),
            "job", id);
    return s;
}

/* Run an UPDATE whose parameters are (now) or (now, text); *changed receives the rows changed. */
static keel_status update_at(gate_store *st, const char *sql, long long now, const char *text,
                             const char *what, size_t *changed)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, now);
    if (text != NULL)
        (void)sqlite3_bind_text(stmt, 2, text, -1, SQLITE_TRANSIENT);
    s = step_done(st, stmt, what);
    if (keel_ok(s) && changed != NULL)
        *changed = (size_t)sqlite3_changes(st->db);
    return s;
}

/*
 * The "landed" events of the changes of open candidates whose merge is
 * `merge` (they landed before a restart), in the candidates' order: what the
 * notify hook delivers (gate_store_notify_next), as for a landing recorded
 * by gate_store_land.
 */
static keel_status landed_events_locked(gate_store *st, long long now, const char *merge)
{
    return update_at(st,
                     "INSERT INTO events(time, kind, change, detail, target) "
                     "SELECT ?1, 'landed', c.id, '{\"state\":\"landed\"}', c.target "
                     "FROM changes c JOIN candidate_changes cc ON cc.candidate = c.candidate "
                     "AND cc.change = c.id WHERE c.state = 'testing' AND c.candidate IN "
                     "(SELECT id FROM candidates WHERE state = 'open' AND merge = ?2) "
                     "ORDER BY c.candidate, cc.position",
                     now, merge, "cannot record the events of a landed candidate", NULL);
}

keel_status gate_store_recover(gate_store *st, const char *landed_merge, long long now,
                               size_t *requeued)
{
    KEEL_ASSERT(st != NULL && requeued != NULL);
    *requeued = 0;
    keel_status s = begin(st);
    if (!keel_ok(s))
        return s;
    s = exec(st, "UPDATE jobs SET state = 'lost' WHERE state = 'running'", "cannot mark lost jobs");
    if (keel_ok(s) && landed_merge != NULL && landed_merge[0] != '\0')
        s = landed_events_locked(st, now, landed_merge);
    /* A candidate whose merge the target already points at did land: finish it. */
    if (keel_ok(s) && landed_merge != NULL && landed_merge[0] != '\0') {
        s = update_at(st,
                      "UPDATE changes SET state = 'landed', reason = 'landed before a restart', "
                      "updated_at = ?1 WHERE state = 'testing' AND candidate IN "
                      "(SELECT id FROM candidates WHERE state = 'open' AND merge = ?2)",
                      now, landed_merge, "cannot finish a landed candidate", NULL);
        if (keel_ok(s))
            s = update_at(st,
                          "UPDATE candidates SET state = 'passed', finished_at = ?1 "
                          "WHERE state = 'open' AND merge = ?2",
                          now, landed_merge, "cannot finish a landed candidate", NULL);
    }
    if (keel_ok(s))
        s = update_at(st,
                      "UPDATE changes SET state = 'queued', candidate = 0, updated_at = ?1 "
                      "WHERE state = 'testing'",
                      now, NULL, "cannot requeue changes", requeued);
    if (keel_ok(s))
        s = update_at(st,
                      "UPDATE candidates SET state = 'abandoned', finished_at = ?1 "
                      "WHERE state = 'open'",
                      now, NULL, "cannot abandon open candidates", NULL);
    if (keel_ok(s))
        s = event_locked(st, now, "recover", 0, NULL);
    return finish(st, s);
}

keel_status gate_store_event(gate_store *st, long long now, const char *kind, long long change,
                             const char *detail_json)
{
    KEEL_ASSERT(st != NULL && kind != NULL);
    return event_locked(st, now, kind, change, detail_json);
}

keel_status gate_store_count_events(gate_store *st, const char *kind, long long *n)
{
    KEEL_ASSERT(st != NULL && kind != NULL && n != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st, "SELECT count(*) FROM events WHERE kind = ?", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, kind, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(stmt, 0);
    else
        s = db_error(st, rc, "cannot count events");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_land(gate_store *st, long long candidate, long long now)
{
    KEEL_ASSERT(st != NULL);
    keel_status s = begin(st);
    if (!keel_ok(s))
        return s;
    char detail[64];
    (void)snprintf(detail, sizeof(detail), "{\"candidate\":%lld}", candidate);
    sqlite3_stmt *stmt = NULL;
    s = prepare(st, "SELECT change FROM candidate_changes WHERE candidate = ? ORDER BY position",
                &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_int64(stmt, 1, candidate);
        int rc;
        while (keel_ok(s) && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
            s = set_state_locked(st, sqlite3_column_int64(stmt, 0), GATE_CHANGE_LANDED, "landed",
                                 now);
        if (keel_ok(s) && rc != SQLITE_DONE)
            s = db_error(st, rc, "cannot read a candidate's changes");
        (void)sqlite3_finalize(stmt);
    }
    if (keel_ok(s))
        s = update_one(st, "UPDATE candidates SET state = ?, finished_at = ? WHERE id = ?",
                       "passed", now, candidate, "cannot finish a landed candidate");
    if (keel_ok(s))
        s = event_locked(st, now, "land", 0, detail);
    return finish(st, s);
}

keel_status gate_store_changes(gate_store *st, int state, gate_change *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
                            state < 0 ? "SELECT " CHANGE_COLUMNS
                                        " FROM changes ORDER BY updated_at DESC, id DESC"
                                      : "SELECT " CHANGE_COLUMNS " FROM changes WHERE state = ? "
                                        "ORDER BY updated_at DESC, id DESC",
                            &stmt);
    if (!keel_ok(s))
        return s;
    if (state >= 0)
        (void)sqlite3_bind_text(stmt, 1, gate_change_state_name((gate_change_state)state), -1,
                                SQLITE_STATIC);
    int rc;
    while (keel_ok(s) && *n < max && (rc = sqlite3_step(stmt)) != SQLITE_DONE) {
        if (rc != SQLITE_ROW)
            s = db_error(st, rc, "cannot read the changes");
        else
            s = read_change(stmt, &out[(*n)++]);
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_jobs(gate_store *st, long long change, gate_job *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(
        st,
        change == 0
            ? "SELECT j.id, j.candidate, j.config, j.attempt, j.state, j.exit_code, j.log, "
              "j.started_at, j.finished_at FROM jobs j WHERE j.state = 'running' ORDER BY j.id"
            : "SELECT j.id, j.candidate, j.config, j.attempt, j.state, j.exit_code, j.log, "
              "j.started_at, j.finished_at FROM jobs j WHERE j.candidate IN (SELECT candidate "
              "FROM candidate_changes WHERE change = ?) ORDER BY j.id",
        &stmt);
    if (!keel_ok(s))
        return s;
    if (change != 0)
        (void)sqlite3_bind_int64(stmt, 1, change);
    int rc;
    while (keel_ok(s) && *n < max && (rc = sqlite3_step(stmt)) != SQLITE_DONE) {
        if (rc != SQLITE_ROW) {
            s = db_error(st, rc, "cannot read the jobs");
            break;
        }
        gate_job *j = &out[(*n)++];
        memset(j, 0, sizeof(*j));
        j->id = sqlite3_column_int64(stmt, 0);
        j->candidate = sqlite3_column_int64(stmt, 1);
        copy_text(j->config, sizeof(j->config), sqlite3_column_text(stmt, 2));
        j->attempt = sqlite3_column_int(stmt, 3);
        copy_text(j->state, sizeof(j->state), sqlite3_column_text(stmt, 4));
        j->exit_code = sqlite3_column_int(stmt, 5);
        copy_text(j->log, sizeof(j->log), sqlite3_column_text(stmt, 6));
        j->started_at = sqlite3_column_int64(stmt, 7);
        j->finished_at = sqlite3_column_int64(stmt, 8);
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_count_builds(gate_store *st, long long *n)
{
    KEEL_ASSERT(st != NULL && n != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        prepare(st, "SELECT count(*) FROM (SELECT DISTINCT candidate, attempt FROM jobs)", &stmt);
    if (!keel_ok(s))
        return s;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(stmt, 0);
    else
        s = db_error(st, rc, "cannot count builds");
    (void)sqlite3_finalize(stmt);
    return s;
}

/* ---- the notify hook's feed (gate/notify.c) ---------------------------------------------- */

keel_status gate_store_notify_start(gate_store *st, const char *target)
{
    KEEL_ASSERT(st != NULL && target != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
                            "INSERT OR IGNORE INTO notify_cursor(target, event) "
                            "VALUES(?1, (SELECT coalesce(max(id), 0) FROM events))",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    return step_done(st, stmt, "cannot start the notify hook's cursor");
}

/* The events the hook hears of, by their names in the store and to the hook. */
static const char *const notice_kinds[][2] = {
    {"landed", "land"}, {"rejected", "reject"}, {"conflict", "conflict"}, {"flake", "flake"}};

keel_status gate_store_notify_next(gate_store *st, const char *target, gate_notice *out, size_t max,
                                   size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && out != NULL && n != NULL);
    *n = 0;
    keel_status s = KEEL_OK;
    /* a flake's merge and reason are in its detail; a conflict has no merge */
    if (st->notify_next == NULL)
        s = prepare(st,
                    "SELECT e.id, e.kind, e.change, coalesce(c.branch, ''), coalesce(c.head, ''), "
                    "CASE e.kind WHEN 'conflict' THEN '' WHEN 'flake' THEN coalesce((SELECT merge "
                    "FROM candidates WHERE id = CASE WHEN json_valid(e.detail) THEN "
                    "json_extract(e.detail, '$.candidate') END), '') ELSE coalesce((SELECT merge "
                    "FROM candidates WHERE id = c.candidate), '') END, "
                    "CASE e.kind WHEN 'flake' THEN coalesce(CASE WHEN json_valid(e.detail) THEN "
                    "json_extract(e.detail, '$.failed') END, '') ELSE coalesce(c.reason, '') END "
                    "FROM events e LEFT JOIN changes c ON c.id = e.change WHERE e.target = ?1 AND "
                    "e.id > coalesce((SELECT event FROM notify_cursor WHERE target = ?1), 0) AND "
                    "e.kind IN ('landed', 'rejected', 'conflict', 'flake') ORDER BY e.id LIMIT ?2",
                    &st->notify_next);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = st->notify_next;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, (long long)max);
    int rc;
    while (keel_ok(s) && *n < max && (rc = sqlite3_step(stmt)) != SQLITE_DONE) {
        if (rc != SQLITE_ROW) {
            s = db_error(st, rc, "cannot read the events for the notify hook");
            break;
        }
        gate_notice *e = &out[(*n)++];
        memset(e, 0, sizeof(*e));
        e->id = sqlite3_column_int64(stmt, 0);
        const unsigned char *kind = sqlite3_column_text(stmt, 1);
        for (size_t k = 0; k < sizeof(notice_kinds) / sizeof(notice_kinds[0]); k++)
            if (kind != NULL && strcmp((const char *)kind, notice_kinds[k][0]) == 0)
                (void)snprintf(e->event, sizeof(e->event), "%s", notice_kinds[k][1]);
        e->change = sqlite3_column_int64(stmt, 2);
        copy_text(e->branch, sizeof(e->branch), sqlite3_column_text(stmt, 3));
        copy_text(e->head, sizeof(e->head), sqlite3_column_text(stmt, 4));
        copy_text(e->merge, sizeof(e->merge), sqlite3_column_text(stmt, 5));
        copy_text(e->reason, sizeof(e->reason), sqlite3_column_text(stmt, 6));
    }
    (void)sqlite3_reset(stmt); /* kept for the next call: no read transaction held */
    (void)sqlite3_clear_bindings(stmt);
    return s;
}

/* Move target's cursor to `event` (never back), its failures forgotten. */
static keel_status cursor_to(gate_store *st, const char *target, long long event)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
                            "UPDATE notify_cursor SET event = ?2, failures = 0 "
                            "WHERE target = ?1 AND event < ?2",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, event);
    return step_done(st, stmt, "cannot move the notify hook's cursor");
}

keel_status gate_store_notify_done(gate_store *st, const char *target, long long event)
{
    KEEL_ASSERT(st != NULL && target != NULL);
    return cursor_to(st, target, event);
}

keel_status gate_store_notify_failed(gate_store *st, const char *target, unsigned *failures)
{
    KEEL_ASSERT(st != NULL && target != NULL && failures != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
                            "UPDATE notify_cursor SET failures = failures + 1 WHERE target = ?1 "
                            "RETURNING failures",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *failures = (unsigned)sqlite3_column_int(stmt, 0);
    else
        s = db_error(st, rc, "cannot count a failure of the notify hook");
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(stmt);
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_notify_skip(gate_store *st, const char *target, long long event,
                                   long long now, long long change, const char *detail_json)
{
    KEEL_ASSERT(st != NULL && target != NULL);
    keel_status s = begin(st);
    if (!keel_ok(s))
        return s;
    s = event_locked(st, now, "notify-failed", change, detail_json);
    if (keel_ok(s))
        s = cursor_to(st, target, event);
    return finish(st, s);
}
