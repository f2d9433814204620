/*
 * store.c - keel-gate's SQLite store.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store.h"

#include "heaps.h"
#include "store_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { GATE_STORE_PATH_MAX = 4096 };

/* An error from SQLite, naming the store and what was being done. */
keel_status gate__store_error(const gate_store *st, int rc, const char *what)
{
    if (rc == SQLITE_NOMEM) {
        keel_status heap = gate_heaps_take_failure(); /* which heap, and why */
        if (!keel_ok(heap))
            return keel_status_with_int(
                keel_status_with_str(KEEL_CONTEXT(heap, "store '%s': %s", st->path, what), "store",
                                     st->path),
                "sqlite_code", rc);
    }
    int sys = st->db != NULL ? sqlite3_system_errno(st->db) : 0; /* why the OS said no */
    return keel_status_with_int(
        keel_status_with_str(KEEL_ERR(rc == SQLITE_FULL || sys == ENOSPC ? KEEL_E_FULL : KEEL_E_IO,
                                      "store '%s': %s: %s%s%s", st->path, what,
                                      st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc),
                                      sys != 0 ? ": " : "", sys != 0 ? strerror(sys) : ""),
                             "store", st->path),
        "sqlite_code", rc);
}

/*
 * The schema, as the steps that made it: step i brings a store from
 * user_version i to i + 1, in one transaction.  A new store runs them all.
 * A store is known by its application_id; stores made before it existed
 * (user_version 1, no id) are recognised by their tables and upgraded.
 */
enum { STORE_APP_ID = 0x6b676174 /* "kgat" */ };

static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE changes ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  branch TEXT NOT NULL, head TEXT NOT NULL, target TEXT NOT NULL,"
    "  priority INTEGER NOT NULL DEFAULT 0, submitted_at INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'queued', candidate INTEGER NOT NULL DEFAULT 0,"
    "  reason TEXT NOT NULL DEFAULT '', updated_at INTEGER NOT NULL);"
    "CREATE INDEX changes_by_state ON changes(target, state);"
    "CREATE TABLE candidates ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, base TEXT NOT NULL,"
    "  merge TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT 'open',"
    "  created_at INTEGER NOT NULL, finished_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE candidate_changes ("
    "  candidate INTEGER NOT NULL REFERENCES candidates(id),"
    "  change INTEGER NOT NULL REFERENCES changes(id), position INTEGER NOT NULL,"
    "  PRIMARY KEY (candidate, position));"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  candidate INTEGER NOT NULL REFERENCES candidates(id), config TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'running',"
    "  exit_code INTEGER NOT NULL DEFAULT 0, log TEXT NOT NULL DEFAULT '',"
    "  started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, kind TEXT NOT NULL,"
    "  change INTEGER NOT NULL DEFAULT 0, detail TEXT NOT NULL DEFAULT '{}');",
    /*
     * 1 -> 2: each event names its target (so that two gates on one store
     * notify their own: '' for the events of version 1), and the notify
     * hook's cursor per target (the last event the hook took, and how often
     * it failed on the next one).
     */
    "ALTER TABLE events ADD COLUMN target TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX IF NOT EXISTS events_by_target ON events(target, id);"
    "CREATE TABLE IF NOT EXISTS notify_cursor ("
    "  target TEXT PRIMARY KEY, event INTEGER NOT NULL, failures INTEGER NOT NULL DEFAULT 0);",
    /* 2 -> 3: crash counts (quarantine), candidates and jobs found by target */
    "ALTER TABLE changes ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX IF NOT EXISTS candidates_by_state ON candidates(target, state);"
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);"
    "CREATE INDEX IF NOT EXISTS candidate_changes_by_change ON candidate_changes(change);",
    /* 3 -> 4: a change queued from a pushed ref whose removal is not yet done */
    "ALTER TABLE changes ADD COLUMN pushed INTEGER NOT NULL DEFAULT 0;",
    /*
     * 4 -> 5: how long each job ran, in milliseconds (its steps, without the
     * wait for a slot; -1: unknown, a job of an older store), for `log`
     */
    "ALTER TABLE jobs ADD COLUMN elapsed_ms INTEGER NOT NULL DEFAULT -1;",
    /*
     * 5 -> 6: keel-gate serve's (store_web.c): API tokens by their SHA-256
     * (never in clear), writes' idempotency keys with the response they got,
     * and paused queues
     */
    "CREATE TABLE IF NOT EXISTS tokens ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, role TEXT NOT NULL,"
    "  hash TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX IF NOT EXISTS tokens_by_name ON tokens(name) WHERE revoked_at = 0;"
    "CREATE TABLE IF NOT EXISTS idempotency ("
    "  key TEXT PRIMARY KEY, request TEXT NOT NULL, status INTEGER NOT NULL,"
    "  response TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS pauses ("
    "  target TEXT PRIMARY KEY, reason TEXT NOT NULL, by TEXT NOT NULL, since INTEGER NOT NULL);",
    /* 6 -> 7: the post level's commits and results (store_post.c) */
    gate__store_post_schema,
    /* 7 -> 8: the nightly level's schedule and runs (store_nightly.c) */
    gate__store_nightly_schema,
    /* 8 -> 9: branch flows (store_flow.c) */
    gate__store_flow_schema,
    /* 9 -> 10: the culprit searches, their ranges and builds (store_culprit.c) */
    gate__store_culprit_schema,
    /* 10 -> 11: the automatic backout's rows and circuit breakers (store_backout.c) */
    gate__store_backout_schema,
    /* 11 -> 12: the flows' wiring: a merge's destination tip, the gate's merge, its change */
    gate__store_flow_wiring_schema,
    /* 12 -> 13: the level a culprit search started at (store_levels.c) */
    gate__store_levels_schema,
    /* 13 -> 14: the flows' recorded resolutions (store_flow_rerere.c) */
    gate__store_flow_rerere_schema,
    /* 14 -> 15: the flows' recorded resolutions by their conflict's hunks (store_flow_rerere.c) */
    gate__store_flow_hunks_schema,
    /* 15 -> 16: what the adaptive scheduler learned of each target's queue (store_learned.c) */
    gate__store_learned_schema,
    /* 16 -> 17: each job's load, the capacity's evidence kept across runs (store_learned.c) */
    gate__store_job_load_schema,
    /* 17 -> 18: the endings of each target's flakes, kept across runs (store_flaky.c) */
    gate__store_flaky_schema,
    /* 18 -> 19: the rejections watched for a flake's ending, kept across runs (store_flaky.c) */
    gate__store_watch_schema,
};
enum { STORE_VERSION = sizeof(migrations) / sizeof(migrations[0]) };

static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(stmt, 0);
            rc = SQLITE_OK;
        }
    }
    (void)sqlite3_finalize(stmt);
    return rc;
}

/* Upgrade the open store from `version` to STORE_VERSION, a transaction per step. */
static keel_status migrate(gate_store *st, int version)
{
    for (int v = version; v < (int)STORE_VERSION; v++) {
        char set[96];
        (void)snprintf(set, sizeof(set), "PRAGMA user_version = %d; PRAGMA application_id = %d;",
                       v + 1, (int)STORE_APP_ID);
        int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        int now = v;
        if (rc == SQLITE_OK) /* another process may have made this step while this one waited */
            rc = pragma_int(st->db, "PRAGMA user_version", &now);
        if (rc == SQLITE_OK && now <= v)
            rc = sqlite3_exec(st->db, migrations[v], NULL, NULL, NULL);
        if (rc == SQLITE_OK && now <= v)
            rc = sqlite3_exec(st->db, set, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            keel_status s = keel_status_with_int(
                gate__store_error(st, rc, "cannot upgrade the schema"), "version", v + 1);
            (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            return s;
        }
    }
    return KEEL_OK;
}

/* Is the open database a keel-gate store we can use?  *version: its schema version. */
static keel_status identify(gate_store *st, int *version)
{
    int app = 0, tables = 0;
    int rc = pragma_int(st->db, "PRAGMA application_id", &app);
    if (rc == SQLITE_OK)
        rc = pragma_int(st->db, "PRAGMA user_version", version);
    if (rc == SQLITE_OK)
        rc = pragma_int(st->db,
                        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                        "('changes','candidates','candidate_changes','jobs','events')",
                        &tables);
    if (rc == SQLITE_NOTADB)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_PARSE,
                     "store '%s' is not a keel-gate store: it is not an SQLite database", st->path),
            "store", st->path);
    if (rc != SQLITE_OK)
        return gate__store_error(st, rc, "cannot read the store's header");
    bool old = app == 0 && *version == 1 && tables == 5; /* made before the id existed */
    if (app != (int)STORE_APP_ID && !old)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_PARSE,
                     "store '%s' is not a keel-gate store (an SQLite database of application "
                     "id %d, %d of keel-gate's tables): give keel-gate a store of its own",
                     st->path, app, tables),
            "store", st->path);
    if (*version > (int)STORE_VERSION)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_VERSION,
                     "store '%s' has schema version %d, this keel-gate knows up to %d: it was "
                     "written by a newer keel-gate",
                     st->path, *version, (int)STORE_VERSION),
            "store", st->path);
    if (app == (int)STORE_APP_ID && (*version < 1 || tables != 5))
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_PARSE,
                     "store '%s' is damaged: schema version %d with %d of keel-gate's 5 tables",
                     st->path, *version, tables),
            "store", st->path);
    return KEEL_OK;
}

/*
 * A new store: made whole at a temporary name, then linked to `path` (which
 * fails if something appeared there meanwhile: then that one is opened).
 * *made: it was this call that put the store at `path`.
 */
static keel_status create_store(gate_store *st, const char *path)
{
    char tmp[GATE_STORE_PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.new-%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return KEEL_ERR(KEEL_E_RANGE, "store path '%s' is too long", path);
    (void)unlink(tmp);
    int rc = sqlite3_open_v2(tmp, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    keel_status s = rc == SQLITE_OK ? KEEL_OK : gate__store_error(st, rc, "cannot create");
    if (keel_ok(s) &&
        (rc = sqlite3_exec(st->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL)) != SQLITE_OK)
        s = gate__store_error(st, rc, "cannot set journal mode");
    if (keel_ok(s))
        s = migrate(st, 0);
    if (st->db != NULL)
        (void)sqlite3_close(st->db);
    st->db = NULL;
    if (keel_ok(s) && link(tmp, path) != 0 && errno != EEXIST)
        s = KEEL_ERR_SYS(errno, "cannot put the new store at '%s'", path);
    (void)unlink(tmp);
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
    bool memory = strcmp(path, ":memory:") == 0;
    struct stat sb;
    if (!memory && stat(path, &sb) != 0) {
        if (errno == ENOENT)
            s = create_store(st, path);
        else
            s = KEEL_ERR_SYS(errno, "cannot open store '%s'", path);
    } else if (!memory && !S_ISREG(sb.st_mode)) {
        s = KEEL_ERR(KEEL_E_INVAL, "store '%s' is not a file", path);
    } else if (!memory && sb.st_size == 0) {
        s = keel_status_with_str(
            KEEL_ERR(KEEL_E_PARSE,
                     "store '%s' is empty (0 bytes): it is not the store it was (truncated?), "
                     "and keel-gate never takes an empty file for an empty queue: restore it "
                     "from a backup, or remove it to start with an empty queue",
                     path),
            "store", path);
    }
    int rc;
    if (keel_ok(s)) {
        rc = sqlite3_open_v2(path, &st->db,
                             SQLITE_OPEN_READWRITE | (memory ? SQLITE_OPEN_CREATE : 0), NULL);
        if (rc != SQLITE_OK)
            s = gate__store_error(st, rc, "cannot open");
    }
    int version = 0;
    if (keel_ok(s)) {
        (void)sqlite3_busy_timeout(st->db, 5000);
        st->readonly = sqlite3_db_readonly(st->db, "main") == 1;
        if (!memory)
            s = identify(st, &version);
        if (!keel_ok(s) && st->readonly && KEEL_IS(s, KEEL_E_IO)) {
            /* a read-only WAL store whose -shm cannot be made: read it as it is */
            keel_status_ignore(s, "opened again, immutable");
            (void)sqlite3_close(st->db);
            st->db = NULL;
            char uri[GATE_STORE_PATH_MAX + 32];
            (void)snprintf(uri, sizeof(uri), "file:%s?immutable=1", path);
            rc = sqlite3_open_v2(uri, &st->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
            s = rc == SQLITE_OK ? identify(st, &version) : gate__store_error(st, rc, "cannot open");
        }
    }
    if (keel_ok(s) && !st->readonly) {
        /*
         * WAL is the file's (a new store is made in WAL mode): set only when a
         * store is not yet, since the change needs the file to itself and
         * SQLite does not wait for it (several first opens at once failed).
         */
        int wal = memory ? 1 : 0;
        sqlite3_stmt *jm = NULL;
        if (!memory &&
            sqlite3_prepare_v2(st->db, "PRAGMA journal_mode", -1, &jm, NULL) == SQLITE_OK &&
            sqlite3_step(jm) == SQLITE_ROW)
            wal = sqlite3_stricmp((const char *)sqlite3_column_text(jm, 0), "wal") == 0;
        (void)sqlite3_finalize(jm);
        rc = sqlite3_exec(st->db,
                          wal ? "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                              : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                                "PRAGMA foreign_keys=ON;",
                          NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            s = gate__store_error(st, rc, "cannot set journal mode");
        if (keel_ok(s))
            s = migrate(st, memory ? 0 : version);
    } else if (keel_ok(s) && version < (int)STORE_VERSION) {
        s = keel_status_with_str(
            KEEL_ERR(KEEL_E_VERSION,
                     "store '%s' is read-only and has schema version %d: a keel-gate that may "
                     "write it must upgrade it to version %d first",
                     path, version, (int)STORE_VERSION),
            "store", path);
    }
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

bool gate_store_readonly(const gate_store *st)
{
    KEEL_ASSERT(st != NULL);
    return st->readonly;
}

/* ---- small statement helpers ----------------------------------------------------- */

keel_status gate__store_prepare(gate_store *st, const char *sql, sqlite3_stmt **stmt)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, stmt, NULL);
    if (rc != SQLITE_OK)
        return gate__store_error(st, rc, "cannot prepare a statement");
    return KEEL_OK;
}

static keel_status exec(gate_store *st, const char *sql, const char *what)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return gate__store_error(st, rc, what);
    return KEEL_OK;
}

keel_status gate__store_begin(gate_store *st)
{
    if (st->readonly)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_STATE,
                     "store '%s' is read-only for this process: nothing can be "
                     "changed in it",
                     st->path),
            "store", st->path);
    if (KEEL_STRESS(disk_full)) /* as SQLite says it when the disk under the store is full */
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_FULL, "store '%s': cannot begin a transaction: %s (stress point)",
                     st->path, sqlite3_errstr(SQLITE_FULL)),
            "store", st->path);
    return exec(st, "BEGIN IMMEDIATE", "cannot begin a transaction");
}

keel_status gate__store_begin_unless_full(gate_store *st, bool full)
{
    if (full)
        return KEEL_ERR(KEEL_E_FULL, "store '%s': cannot begin a transaction: %s (stress point)",
                        st->path, sqlite3_errstr(SQLITE_FULL));
    return gate__store_begin(st);
}

/* Commit when s is OK, roll back otherwise; returns s (or the commit's error). */
keel_status gate__store_finish(gate_store *st, keel_status s)
{
    if (keel_ok(s))
        return exec(st, "COMMIT", "cannot commit");
    keel_status r = exec(st, "ROLLBACK", "cannot roll back");
    if (!keel_ok(r))
        keel_status_ignore(r, "the first error is the one to report");
    return s;
}

/* Run a prepared statement to completion (no rows expected). */
keel_status gate__store_step_done(gate_store *st, sqlite3_stmt *stmt, const char *what)
{
    int rc = sqlite3_step(stmt);
    keel_status s = rc == SQLITE_DONE ? KEEL_OK : gate__store_error(st, rc, what);
    (void)sqlite3_finalize(stmt);
    return s;
}

void gate__store_copy_text(char *dst, size_t size, const unsigned char *src)
{
    (void)snprintf(dst, size, "%s", src != NULL ? (const char *)src : "");
}

bool gate__store_valid_oid(const char *oid)
{
    if (oid == NULL || strlen(oid) != 40)
        return false;
    for (const char *p = oid; *p != '\0'; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* ---- the history ----------------------------------------------------------------- */

/*
 * An event of the history: its target is its change's, else the store's
 * (gate_store_set_target).  A detail that is not valid JSON (a caller's
 * buffer cut it) is replaced, so that every reader of the history can parse it.
 */
keel_status gate__store_event_locked(gate_store *st, long long now, const char *kind,
                                     long long change, const char *detail)
{
    keel_status s = KEEL_OK;
    if (st->event_insert == NULL)
        s = gate__store_prepare(
            st,
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
    s = rc == SQLITE_DONE ? KEEL_OK : gate__store_error(st, rc, "cannot record an event");
    (void)sqlite3_reset(stmt); /* kept for the next event */
    (void)sqlite3_clear_bindings(stmt);
    return s;
}

void gate_store_set_target(gate_store *st, const char *target)
{
    KEEL_ASSERT(st != NULL && target != NULL);
    (void)snprintf(st->target, sizeof(st->target), "%s", target);
}

keel_status gate_store_event(gate_store *st, long long now, const char *kind, long long change,
                             const char *detail_json)
{
    KEEL_ASSERT(st != NULL && kind != NULL);
    return gate__store_event_locked(st, now, kind, change, detail_json);
}

keel_status gate_store_count_events(gate_store *st, const char *kind, long long *n)
{
    KEEL_ASSERT(st != NULL && kind != NULL && n != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st, "SELECT count(*) FROM events WHERE kind = ?", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, kind, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(stmt, 0);
    else
        s = gate__store_error(st, rc, "cannot count events");
    (void)sqlite3_finalize(stmt);
    return s;
}

sqlite3 *gate__store_db(gate_store *st)
{
    return st->db;
}
