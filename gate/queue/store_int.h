/*
 * gate/queue/store_int.h - the store's internals, shared by its files:
 * store.c (open, schema, transactions, the history), store_changes.c,
 * store_jobs.c, store_notify.c, store_web.c and store_post.c.  Not an API:
 * only store files include it.
 */
#ifndef KEEL_GATE_STORE_INT_H
#define KEEL_GATE_STORE_INT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "heaps.h"
#include "store.h"

#define STORE_HEAP KEEL_MODULE_REF(gate_store)

struct gate_store {
    sqlite3 *db;
    char *path;                 /* in the same block */
    bool readonly;              /* this process may not write it */
    char target[GATE_NAME_MAX]; /* gate_store_set_target: an event's when it has no change */
    sqlite3_stmt *notify_next;  /* prepared once: the notifier runs it at every wake-up */
    sqlite3_stmt *event_insert; /* prepared once: every change of state records an event */
};

sqlite3 *gate__store_db(gate_store *st);
/* An error from SQLite, naming the store and what was being done. */
KEEL_MUST_USE keel_status gate__store_error(const gate_store *st, int rc, const char *what);
KEEL_MUST_USE keel_status gate__store_prepare(gate_store *st, const char *sql, sqlite3_stmt **stmt);
/* BEGIN IMMEDIATE (KEEL_E_STATE for a store this process may not write). */
KEEL_MUST_USE keel_status gate__store_begin(gate_store *st);
/*
 * gate__store_begin, or, when `full` (a write's own stress point, as
 * gate_store.disk_full for that write alone), the error a full disk gives.
 */
KEEL_MUST_USE keel_status gate__store_begin_unless_full(gate_store *st, bool full);
/*
 * The condition "change `c` (a table's name or alias) was not submitted again
 * for its target since": no newer change of its branch for it (the newer one
 * stands).
 */
#define GATE__STORE_NOT_SUBMITTED_AGAIN(c)                                                \
    "NOT EXISTS (SELECT 1 FROM changes n WHERE n.branch = " c ".branch AND n.target = " c \
    ".target AND n.id > " c ".id)"
/* Commit when s is OK, roll back otherwise; returns s (or the commit's error). */
KEEL_MUST_USE keel_status gate__store_finish(gate_store *st, keel_status s);
/* Run a prepared statement to completion (no rows expected); finalizes it. */
KEEL_MUST_USE keel_status gate__store_step_done(gate_store *st, sqlite3_stmt *stmt,
                                                const char *what);
/* A column's text into dst ('' for NULL), cut to size. */
void gate__store_copy_text(char *dst, size_t size, const unsigned char *src);
/* 40 lower-case hex digits. */
bool gate__store_valid_oid(const char *oid);
/*
 * An event of the history, inside the caller's transaction: its target is its
 * change's, else the store's (gate_store_set_target).  A detail that is not
 * valid JSON is replaced, so that every reader of the history can parse it.
 */
KEEL_MUST_USE keel_status gate__store_event_locked(gate_store *st, long long now, const char *kind,
                                                   long long change, const char *detail);
/* A change's new state, inside the caller's transaction, with its event (store_changes.c). */
KEEL_MUST_USE keel_status gate__store_set_state_locked(gate_store *st, long long id,
                                                       gate_change_state state, const char *reason,
                                                       long long now);

/* Bind `text` (copied) to parameter i of stmt. */
static inline void gate__store_bind_text(sqlite3_stmt *stmt, int i, const char *text)
{
    (void)sqlite3_bind_text(stmt, i, text, -1, SQLITE_TRANSIENT);
}

/* Bind count n to parameter i of stmt (a LIMIT), as SQLite's largest integer when it is larger. */
static inline void gate__store_bind_count(sqlite3_stmt *stmt, int i, size_t n)
{
    (void)sqlite3_bind_int64(stmt, i, n < (size_t)INT64_MAX ? (sqlite3_int64)n : INT64_MAX);
}

/* The schema step of store_post.c's tables (store.c's migrations). */
extern const char gate__store_post_schema[];
/* The schema step of store_nightly.c's tables. */
extern const char gate__store_nightly_schema[];
/* The schema step of store_flow.c's tables. */
extern const char gate__store_flow_schema[];
/* The schema step of the flows' wiring (store_flow.c: columns of its own table). */
extern const char gate__store_flow_wiring_schema[];
/* The schema step of the flows' recorded resolutions (store_flow_rerere.c: its own table). */
extern const char gate__store_flow_rerere_schema[];
/* The schema step of the recorded resolutions by hunks (store_flow_rerere.c: its own table). */
extern const char gate__store_flow_hunks_schema[];
/* The schema step of store_culprit.c's tables. */
extern const char gate__store_culprit_schema[];
/* The schema step of store_backout.c's tables. */
extern const char gate__store_backout_schema[];
/* The schema step of store_levels.c: a culprit search's level. */
extern const char gate__store_levels_schema[];
/* The schema step of store_learned.c: what the scheduler learned of each queue. */
extern const char gate__store_learned_schema[];
/* The schema step of store_learned.c: each job's load (columns of the jobs' table). */
extern const char gate__store_job_load_schema[];
/* The schema step of store_flaky.c: the endings of each target's flakes. */
extern const char gate__store_flaky_schema[];
/* And the rejections each target's scheduler watches (store_flaky.c). */
extern const char gate__store_watch_schema[];

#endif /* KEEL_GATE_STORE_INT_H */
