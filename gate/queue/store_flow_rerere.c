/*
 * store_flow_rerere.c - keel-gate's store: the flows' recorded resolutions
 * (keel's own rerere, flow.h gate_flow_resolution): one row per conflict
 * (the path and its three blob ids), the blob a landed resolution holds
 * there, the flow and the commit it came from.  The newest landing of a
 * resolution of the same conflict replaces the older one.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_flow.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store_int.h"

/* The schema step (store.c's migrations; only its own table: its place does not matter). */
const char gate__store_flow_rerere_schema[] =
    "CREATE TABLE IF NOT EXISTS flow_resolutions ("
    "  path TEXT NOT NULL, base TEXT NOT NULL, ours TEXT NOT NULL, theirs TEXT NOT NULL,"
    "  blob TEXT NOT NULL, mode INTEGER NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL,"
    "  commit_id TEXT NOT NULL, recorded_at INTEGER NOT NULL,"
    "  PRIMARY KEY (path, base, ours, theirs));";

/*
 * The schema step of the records by hunks (as git's rerere keys them): the
 * path and the id of its conflict's hunks, the preimage (the file with its
 * markers), the resolved blob.  The newest landing replaces the older.
 */
const char gate__store_flow_hunks_schema[] =
    "CREATE TABLE IF NOT EXISTS flow_resolution_hunks ("
    "  path TEXT NOT NULL, hunks TEXT NOT NULL, preimage TEXT NOT NULL,"
    "  blob TEXT NOT NULL, mode INTEGER NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL,"
    "  commit_id TEXT NOT NULL, recorded_at INTEGER NOT NULL,"
    "  PRIMARY KEY (path, hunks));";

static void bind_key(sqlite3_stmt *stmt, const gate_flow_resolution *r)
{
    gate__store_bind_text(stmt, 1, r->path);
    gate__store_bind_text(stmt, 2, r->base);
    gate__store_bind_text(stmt, 3, r->ours);
    gate__store_bind_text(stmt, 4, r->theirs);
}

/* Conflict r recorded by its path and hunks too. */
static keel_status put_hunks(gate_store *st, const gate_flow_resolution *r, const char *from,
                             const char *to, const char *commit, long long now)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st,
                                        "INSERT OR REPLACE INTO flow_resolution_hunks(path, hunks, "
                                        "preimage, blob, mode, src, dst, commit_id, recorded_at) "
                                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    const char *const texts[] = {r->path, r->hunks, r->preimage, r->blob};
    for (int i = 0; i < 4; i++)
        gate__store_bind_text(stmt, i + 1, texts[i]);
    (void)sqlite3_bind_int64(stmt, 5, (long long)r->mode);
    gate__store_bind_text(stmt, 6, from);
    gate__store_bind_text(stmt, 7, to);
    gate__store_bind_text(stmt, 8, commit);
    (void)sqlite3_bind_int64(stmt, 9, now);
    return gate__store_step_done(st, stmt, "cannot record a flow's resolution by its hunks");
}

keel_status gate_store_flow_resolution_put(gate_store *st, const gate_flow_resolution *r, size_t n,
                                           const char *from, const char *to, const char *commit,
                                           long long now)
{
    KEEL_ASSERT(st != NULL && (r != NULL || n == 0) && from != NULL && to != NULL &&
                commit != NULL);
    if (n == 0)
        return KEEL_OK;
    keel_status s = gate__store_begin(st);
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        sqlite3_stmt *stmt = NULL;
        s = gate__store_prepare(st,
                                "INSERT OR REPLACE INTO flow_resolutions(path, base, ours, theirs, "
                                "blob, mode, src, dst, commit_id, recorded_at) "
                                "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                                &stmt);
        if (!keel_ok(s))
            break;
        bind_key(stmt, &r[i]);
        gate__store_bind_text(stmt, 5, r[i].blob);
        (void)sqlite3_bind_int64(stmt, 6, (long long)r[i].mode);
        gate__store_bind_text(stmt, 7, from);
        gate__store_bind_text(stmt, 8, to);
        gate__store_bind_text(stmt, 9, commit);
        (void)sqlite3_bind_int64(stmt, 10, now);
        s = gate__store_step_done(st, stmt, "cannot record a flow's resolution");
        if (keel_ok(s) && r[i].hunks[0] != '\0' && r[i].preimage[0] != '\0')
            s = put_hunks(st, &r[i], from, to, commit, now);
    }
    return gate__store_finish(st, s);
}

/* The row of stmt (blob, mode[, preimage]) into r: *found; stmt finalized. */
static keel_status read_one(gate_store *st, sqlite3_stmt *stmt, gate_flow_resolution *r,
                            bool preimage, bool *found)
{
    keel_status s = KEEL_OK;
    int rc = sqlite3_step(stmt);
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW) {
        gate__store_copy_text(r->blob, sizeof(r->blob), sqlite3_column_text(stmt, 0));
        r->mode = (unsigned)sqlite3_column_int64(stmt, 1);
        if (preimage)
            gate__store_copy_text(r->preimage, sizeof(r->preimage), sqlite3_column_text(stmt, 2));
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read a flow's recorded resolution");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_flow_resolution_get(gate_store *st, gate_flow_resolution *r, bool *found)
{
    KEEL_ASSERT(st != NULL && r != NULL && found != NULL);
    *found = false;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st,
                                        "SELECT blob, mode FROM flow_resolutions WHERE path = ?1 "
                                        "AND base = ?2 AND ours = ?3 AND theirs = ?4",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    bind_key(stmt, r);
    r->by_hunks = false;
    s = read_one(st, stmt, r, false, found);
    if (!keel_ok(s) || *found || r->hunks[0] == '\0')
        return s;
    s = gate__store_prepare(st,
                            "SELECT blob, mode, preimage FROM flow_resolution_hunks WHERE "
                            "path = ?1 AND hunks = ?2",
                            &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, r->path);
    gate__store_bind_text(stmt, 2, r->hunks);
    s = read_one(st, stmt, r, true, found);
    r->by_hunks = keel_ok(s) && *found;
    return s;
}
