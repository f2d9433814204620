/*
 * store.c - keel-gate's SQLite store.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store.h"

#include "heaps.h"
#include "store_web_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_HEAP KEEL_MODULE_REF(gate_store)

enum { GATE_STORE_PATH_MAX = 4096 };

struct gate_store {
    sqlite3 *db;
    char *path;                 /* in the same block */
    bool readonly;              /* this process may not write it */
    char target[GATE_NAME_MAX]; /* gate_store_set_target: an event's when it has no change */
    sqlite3_stmt *notify_next;  /* prepared once: the notifier runs it at every wake-up */
    sqlite3_stmt *event_insert; /* prepared once: every change of state records an event */
};

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
            keel_status s = keel_status_with_int(db_error(st, rc, "cannot upgrade the schema"),
                                                 "version", v + 1);
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
        return db_error(st, rc, "cannot read the store's header");
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
    keel_status s = rc == SQLITE_OK ? KEEL_OK : db_error(st, rc, "cannot create");
    if (keel_ok(s) &&
        (rc = sqlite3_exec(st->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL)) != SQLITE_OK)
        s = db_error(st, rc, "cannot set journal mode");
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
            s = db_error(st, rc, "cannot open");
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
            s = rc == SQLITE_OK ? identify(st, &version) : db_error(st, rc, "cannot open");
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
            s = db_error(st, rc, "cannot set journal mode");
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

/* Run an UPDATE whose parameters are (now, text[, id]); *changed receives the rows changed. */
static keel_status update_for(gate_store *st, const char *sql, long long now, const char *text,
                              long long id, const char *what, size_t *changed)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, now);
    (void)sqlite3_bind_text(stmt, 2, text, -1, SQLITE_TRANSIENT);
    if (id != 0)
        (void)sqlite3_bind_int64(stmt, 3, id);
    s = step_done(st, stmt, what);
    if (keel_ok(s) && changed != NULL)
        *changed += (size_t)sqlite3_changes(st->db);
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
    keel_status s = prepare(st,
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
        s = db_error(st, rc, "cannot look for a pushed change");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_pushed_moved(gate_store *st, const char *branch, const char *head,
                                    const char *target)
{
    KEEL_ASSERT(st != NULL && branch != NULL && head != NULL && target != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
                            "UPDATE changes SET pushed = 0 WHERE pushed = 1 AND branch = ? AND "
                            "target = ? AND head != ?",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, branch, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(stmt, 2, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(stmt, 3, head, -1, SQLITE_TRANSIENT);
    return step_done(st, stmt, "cannot record a pushed ref's move");
}

keel_status gate_store_pushed_taken(gate_store *st, long long id)
{
    KEEL_ASSERT(st != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st, "UPDATE changes SET pushed = 0 WHERE id = ? AND pushed = 1", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, id);
    return step_done(st, stmt, "cannot record a pushed ref's removal");
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
            s = db_error(st, rc, what);
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
    return read_changes(st, stmt, out, max, n, "cannot read the queue");
}

static keel_status set_state_locked(gate_store *st, long long id, gate_change_state state,
                                    const char *reason, long long now)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
                            state == GATE_CHANGE_LANDED
                                ? "UPDATE changes SET state = ?, reason = ?, updated_at = ? "
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
    s = step_done(st, stmt, "cannot update a change");
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

keel_status gate_store_candidate_relabel(gate_store *st, long long id, const char *base,
                                         const char *merge)
{
    KEEL_ASSERT(st != NULL);
    if (!valid_oid(merge) || !valid_oid(base))
        return KEEL_ERR(KEEL_E_INVAL, "'%s' onto '%s' is not a merge onto a commit",
                        merge != NULL ? merge : "", base != NULL ? base : "");
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st, "UPDATE candidates SET base = ?1, merge = ?2 WHERE id = ?3", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, base, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(stmt, 2, merge, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 3, id);
    s = step_done(st, stmt, "cannot record what a candidate lands");
    if (keel_ok(s) && sqlite3_changes(st->db) != 1)
        s = keel_status_with_int(KEEL_ERR(KEEL_E_NOTFOUND, "no candidate %lld", id), "id", id);
    return s;
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
                                  const char *log, long long elapsed_ms, long long now)
{
    KEEL_ASSERT(st != NULL && result != NULL);
    keel_status s = begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = prepare(st,
                "UPDATE jobs SET state = ?, exit_code = ?, log = ?, finished_at = ?, "
                "elapsed_ms = ? WHERE id = ? AND state = 'running'",
                &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, result, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int(stmt, 2, exit_code);
        (void)sqlite3_bind_text(stmt, 3, log != NULL ? log : "", -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int64(stmt, 4, now);
        (void)sqlite3_bind_int64(stmt, 5, elapsed_ms >= 0 ? elapsed_ms : -1);
        (void)sqlite3_bind_int64(stmt, 6, id);
        s = step_done(st, stmt, "cannot record a job's result");
    }
    if (keel_ok(s) && sqlite3_changes(st->db) != 1)
        s = keel_status_with_int(
            KEEL_ERR(KEEL_E_STATE, "job %lld is not running: its result is not recorded", id),
            "job", id);
    /* a job of theirs came back: whatever killed the gate before, it was not these changes */
    if (keel_ok(s))
        s = update_for(st,
                       "UPDATE changes SET crashes = 0, updated_at = ?1 WHERE crashes > 0 AND "
                       "?2 IS NOT NULL AND id IN (SELECT change FROM candidate_changes WHERE "
                       "candidate = (SELECT candidate FROM jobs WHERE id = ?3))",
                       now, result, id, "cannot reset a crash count", NULL);
    return finish(st, s);
}

/* The open candidates of `target` that have a merge, into a list on the store's heap. */
static keel_status open_candidates(gate_store *st, const char *target, long long **ids,
                                   char (**merges)[GATE_OID_HEX], size_t *n)
{
    *ids = NULL;
    *merges = NULL;
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
                            "SELECT id, merge FROM candidates WHERE target = ? AND state = 'open' "
                            "AND merge != '' ORDER BY id",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    size_t cap = 0;
    int rc;
    while (keel_ok(s) && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap > 0 ? 2 * cap : 16;
            void *im = *ids, *mm = *merges;
            s = keel_heap_realloc(STORE_HEAP, &im, cap * sizeof(long long));
            *ids = (long long *)im;
            if (keel_ok(s))
                s = keel_heap_realloc(STORE_HEAP, &mm, cap * GATE_OID_HEX);
            *merges = (char(*)[GATE_OID_HEX])mm;
            if (!keel_ok(s))
                break;
        }
        (*ids)[*n] = sqlite3_column_int64(stmt, 0);
        copy_text((*merges)[*n], GATE_OID_HEX, sqlite3_column_text(stmt, 1));
        (*n)++;
    }
    if (keel_ok(s) && rc != SQLITE_DONE)
        s = db_error(st, rc, "cannot read the open candidates");
    (void)sqlite3_finalize(stmt);
    return s;
}

/*
 * One open candidate found in the target: it landed, and its changes with it;
 * their "landed" events first, in the candidate's order (what the notify hook
 * delivers, as for a landing recorded by gate_store_land).
 */
static keel_status recover_landed(gate_store *st, long long cand, const char *target, long long now,
                                  size_t *landed)
{
    keel_status s =
        update_for(st,
                   "INSERT INTO events(time, kind, change, detail, target) SELECT ?1, "
                   "'landed', c.id, '{\"state\":\"landed\"}', ?2 FROM changes c JOIN "
                   "candidate_changes cc ON cc.change = c.id WHERE cc.candidate = ?3 "
                   "AND c.target = ?2 AND c.state != 'landed' ORDER BY cc.position",
                   now, target, cand, "cannot record the events of a landed candidate", NULL);
    if (keel_ok(s))
        s = update_for(st,
                       "UPDATE changes SET state = 'landed', reason = 'landed before a restart', "
                       "updated_at = ?1 WHERE target = ?2 "
                       "AND state != 'landed' AND id IN (SELECT change FROM "
                       "candidate_changes WHERE candidate = ?3)",
                       now, target, cand, "cannot record a landed candidate", landed);
    if (keel_ok(s))
        s = update_for(st,
                       "UPDATE candidates SET state = 'passed', finished_at = ?1 "
                       "WHERE target = ?2 AND id = ?3",
                       now, target, cand, "cannot record a landed candidate", NULL);
    char detail[96];
    (void)snprintf(detail, sizeof(detail), "{\"candidate\":%lld,\"recovered\":true}", cand);
    if (keel_ok(s))
        s = event_locked(st, now, "land", 0, detail);
    return s;
}

keel_status gate_store_recover(gate_store *st, const char *target, gate_landed_fn landed, void *ctx,
                               bool after_crash, long long now, gate_recovery *out)
{
    KEEL_ASSERT(st != NULL && target != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    keel_status s = begin(st);
    if (!keel_ok(s))
        return s;
    /* the changes whose jobs were running when the gate died: one crash more each */
    if (after_crash)
        s = update_for(
            st,
            "UPDATE changes SET crashes = crashes + 1, updated_at = ?1 WHERE target = ?2 "
            "AND state = 'testing' AND id IN (SELECT cc.change FROM candidate_changes "
            "cc JOIN candidates c ON c.id = cc.candidate WHERE c.target = ?2 AND "
            "c.state = 'open' AND EXISTS (SELECT 1 FROM jobs j WHERE j.candidate = "
            "c.id AND j.state = 'running'))",
            now, target, 0, "cannot count crashes", &out->crashed);
    if (keel_ok(s))
        s = update_for(st,
                       "UPDATE jobs SET state = 'lost', finished_at = ?1 WHERE state = 'running' "
                       "AND candidate IN (SELECT id FROM candidates WHERE target = ?2)",
                       now, target, 0, "cannot mark lost jobs", &out->lost_jobs);
    /* a candidate whose merge the target contains did land (a kill after the swap) */
    long long *ids = NULL;
    char(*merges)[GATE_OID_HEX] = NULL;
    size_t n = 0;
    if (keel_ok(s) && landed != NULL)
        s = open_candidates(st, target, &ids, &merges, &n);
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        bool in = false;
        s = landed(merges[i], ctx, &in);
        if (keel_ok(s) && in)
            s = recover_landed(st, ids[i], target, now, &out->landed);
    }
    keel_heap_free(STORE_HEAP, ids);
    keel_heap_free(STORE_HEAP, merges);
    if (keel_ok(s))
        s = update_for(st,
                       "UPDATE changes SET state = 'queued', candidate = 0, updated_at = ?1 "
                       "WHERE target = ?2 AND state = 'testing'",
                       now, target, 0, "cannot requeue changes", &out->requeued);
    if (keel_ok(s))
        s = update_for(st,
                       "UPDATE candidates SET state = 'abandoned', finished_at = ?1 "
                       "WHERE target = ?2 AND state = 'open'",
                       now, target, 0, "cannot abandon open candidates", NULL);
    sqlite3_stmt *stmt = NULL;
    if (keel_ok(s))
        s = prepare(st,
                    "INSERT INTO events(time, kind, change, detail) VALUES(?1, 'recover', 0, "
                    "json_object('target', ?2, 'requeued', ?3, 'landed', ?4, 'lost_jobs', ?5, "
                    "'crashed', ?6))",
                    &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_int64(stmt, 1, now);
        (void)sqlite3_bind_text(stmt, 2, target, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int64(stmt, 3, (long long)out->requeued);
        (void)sqlite3_bind_int64(stmt, 4, (long long)out->landed);
        (void)sqlite3_bind_int64(stmt, 5, (long long)out->lost_jobs);
        (void)sqlite3_bind_int64(stmt, 6, (long long)out->crashed);
        s = step_done(st, stmt, "cannot record the recovery");
    }
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

keel_status gate_store_changes(gate_store *st, const char *target, int state, gate_change *out,
                               size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
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

#define JOB_COLUMNS                                                                       \
    "j.id, j.candidate, j.config, j.attempt, j.state, j.exit_code, j.log, j.started_at, " \
    "j.finished_at, j.elapsed_ms"

keel_status gate_store_jobs(gate_store *st, const char *target, long long change, gate_job *out,
                            size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        prepare(st,
                change == 0 ? "SELECT " JOB_COLUMNS " FROM jobs j JOIN candidates c ON c.id = "
                              "j.candidate WHERE j.state = 'running' AND (?1 IS NULL OR c.target = "
                              "?1) ORDER BY j.id"
                            : "SELECT " JOB_COLUMNS " FROM jobs j WHERE j.candidate IN (SELECT "
                              "candidate FROM candidate_changes WHERE change = ?2) ORDER BY j.id",
                &stmt);
    if (!keel_ok(s))
        return s;
    if (change == 0 && target != NULL)
        (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    if (change != 0)
        (void)sqlite3_bind_int64(stmt, 2, change);
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
        j->elapsed_ms = sqlite3_column_int64(stmt, 9);
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

keel_status gate_store_candidate_passed(gate_store *st, long long candidate, char *buf, size_t size)
{
    KEEL_ASSERT(st != NULL && buf != NULL && size > 0);
    buf[0] = '\0';
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
                            "SELECT config FROM jobs WHERE candidate = ?1 AND state = 'passed' "
                            "GROUP BY config ORDER BY min(id)",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, candidate);
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(stmt, 0);
        int w = snprintf(buf + n, size - n, "%s%s", n > 0 ? ", " : "", name != NULL ? name : "");
        n = w < 0 || (size_t)w >= size - n ? n
                                           : n + (size_t)w; /* a name that does not fit: left out */
        buf[n] = '\0';
    }
    if (rc != SQLITE_DONE)
        s = db_error(st, rc, "cannot read a candidate's jobs");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_branch_changes(gate_store *st, const char *branch, const char *target,
                                      gate_change *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && branch != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
                            "SELECT " CHANGE_COLUMNS " FROM changes WHERE branch = ?1 ORDER BY "
                            "target = ?2 DESC, state IN ('queued','testing') DESC, id DESC",
                            &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, branch, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(stmt, 2, target != NULL ? target : "", -1, SQLITE_TRANSIENT);
    return read_changes(st, stmt, out, max, n, "cannot read the changes of a branch");
}

keel_status gate_store_candidate_changes(gate_store *st, long long candidate, long long *out,
                                         size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(
        st, "SELECT change FROM candidate_changes WHERE candidate = ? ORDER BY position", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, candidate);
    int rc;
    size_t total = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (total < max)
            out[total] = sqlite3_column_int64(stmt, 0);
        total++;
    }
    if (rc != SQLITE_DONE)
        s = db_error(st, rc, "cannot read a candidate's changes");
    *n = total;
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_count_changes(gate_store *st, const char *target, long long since,
                                     long long counts[GATE_CHANGE_STATES])
{
    KEEL_ASSERT(st != NULL && target != NULL && counts != NULL);
    memset(counts, 0, GATE_CHANGE_STATES * sizeof(counts[0]));
    sqlite3_stmt *stmt = NULL;
    keel_status s = prepare(st,
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
        s = db_error(st, rc, "cannot count the changes");
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
    /*
     * a flake's merge (the one tested: a landing relabels the candidate's) and
     * reason are in its detail (older ones: its candidate's); a conflict has no merge
     */
    if (st->notify_next == NULL)
        s = prepare(
            st,
            "SELECT e.id, e.kind, e.change, coalesce(c.branch, ''), coalesce(c.head, ''), "
            "CASE e.kind WHEN 'conflict' THEN '' WHEN 'flake' THEN coalesce(CASE WHEN "
            "json_valid(e.detail) THEN json_extract(e.detail, '$.merge') END, (SELECT merge "
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

/* ---- for store_web.c (store_web_int.h) ------------------------------------------------ */

sqlite3 *gate__store_db(gate_store *st)
{
    return st->db;
}

keel_status gate__store_error(const gate_store *st, int rc, const char *what)
{
    return db_error(st, rc, what);
}

keel_status gate__store_begin(gate_store *st)
{
    return begin(st);
}

keel_status gate__store_finish(gate_store *st, keel_status s)
{
    return finish(st, s);
}

keel_status gate__store_event_locked(gate_store *st, long long now, const char *kind,
                                     long long change, const char *detail)
{
    return event_locked(st, now, kind, change, detail);
}
