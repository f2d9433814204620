/*
 * store_flow.c - keel-gate's store: branch flows (store_flow.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_flow.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store_int.h"

/* The schema step that made these tables (store.c's migrations: the last one). */
const char gate__store_flow_schema[] =
    "CREATE TABLE IF NOT EXISTS flows ("
    "  src TEXT NOT NULL, dst TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'idle',"
    "  source TEXT NOT NULL DEFAULT '', synced TEXT NOT NULL DEFAULT '',"
    "  trying TEXT NOT NULL DEFAULT '', change_commit TEXT NOT NULL DEFAULT '',"
    "  dest_moved INTEGER NOT NULL DEFAULT 0, resolution INTEGER NOT NULL DEFAULT 0,"
    "  last_sync INTEGER NOT NULL DEFAULT 0, blocked_since INTEGER NOT NULL DEFAULT 0,"
    "  failed_at INTEGER NOT NULL DEFAULT 0, why TEXT NOT NULL DEFAULT '',"
    "  people TEXT NOT NULL DEFAULT '', reminders INTEGER NOT NULL DEFAULT 0,"
    "  last_told INTEGER NOT NULL DEFAULT 0, escalated INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL, PRIMARY KEY (src, dst));"
    "CREATE TABLE IF NOT EXISTS flow_told ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, src TEXT NOT NULL, dst TEXT NOT NULL,"
    "  kind TEXT NOT NULL, who TEXT NOT NULL, count INTEGER NOT NULL, at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS flow_told_by_flow ON flow_told(src, dst, id);";

/*
 * The schema step of the flows' wiring (gate_flows_turn): the destination's
 * tip the last merge was made on, the gate's own last merge, and the
 * change id of what is in the queue.  Only this file's table is altered: the
 * step's place among the others does not matter.
 */
const char gate__store_flow_wiring_schema[] =
    "ALTER TABLE flows ADD COLUMN dest TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE flows ADD COLUMN made TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE flows ADD COLUMN change_id INTEGER NOT NULL DEFAULT 0;";

static const char *const states[] = {"idle", "merging", "queued", "blocked"};

/* The people with `sep` between them, cut to fit (a newline in a name made a blank). */
static void join_people(const gate_flow_person *p, size_t n, const char *sep, char *out,
                        size_t size)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *parts[2] = {i > 0 ? sep : "", p[i].who};
        for (size_t k = 0; k < 2; k++)
            for (const char *c = parts[k]; *c != '\0' && at + 1 < size; c++)
                out[at++] = (char)(k == 1 && *c == '\n' ? ' ' : *c);
    }
    out[at] = '\0';
}

static void split_people(const char *text, gate_flow *f)
{
    f->npeople = 0;
    while (text != NULL && *text != '\0' && f->npeople < GATE_FLOW_PEOPLE_MAX) {
        size_t len = strcspn(text, "\n");
        (void)snprintf(f->people[f->npeople].who, sizeof(f->people[0].who), "%.*s", (int)len, text);
        f->npeople++;
        text += len + (text[len] == '\n');
    }
}

keel_status gate_store_flow_load(gate_store *st, const gate_flow_config *cfg, gate_flow *f,
                                 bool *found)
{
    KEEL_ASSERT(st != NULL && cfg != NULL && f != NULL && found != NULL);
    gate_flow_init(f, cfg);
    *found = false;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st,
        "SELECT state, source, synced, trying, change_commit, dest_moved, resolution, "
        "last_sync, blocked_since, failed_at, why, people, reminders, last_told, escalated, "
        "dest, made, change_id FROM flows WHERE src = ?1 AND dst = ?2",
        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, cfg->from);
    gate__store_bind_text(stmt, 2, cfg->to);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *found = true;
        const char *state = (const char *)sqlite3_column_text(stmt, 0);
        for (size_t i = 0; state != NULL && i < sizeof(states) / sizeof(states[0]); i++)
            if (strcmp(state, states[i]) == 0)
                f->state = (gate_flow_state)i;
        gate__store_copy_text(f->source, sizeof(f->source), sqlite3_column_text(stmt, 1));
        gate__store_copy_text(f->synced, sizeof(f->synced), sqlite3_column_text(stmt, 2));
        gate__store_copy_text(f->trying, sizeof(f->trying), sqlite3_column_text(stmt, 3));
        gate__store_copy_text(f->change, sizeof(f->change), sqlite3_column_text(stmt, 4));
        f->dest_moved = sqlite3_column_int(stmt, 5) != 0;
        f->resolution = sqlite3_column_int(stmt, 6) != 0;
        f->last_sync = sqlite3_column_int64(stmt, 7);
        f->blocked_since = sqlite3_column_int64(stmt, 8);
        f->failed_at = sqlite3_column_int64(stmt, 9);
        gate__store_copy_text(f->why, sizeof(f->why), sqlite3_column_text(stmt, 10));
        split_people((const char *)sqlite3_column_text(stmt, 11), f);
        f->reminders = (unsigned)sqlite3_column_int(stmt, 12);
        f->last_told = sqlite3_column_int64(stmt, 13);
        f->escalated = sqlite3_column_int(stmt, 14) != 0;
        gate__store_copy_text(f->dest, sizeof(f->dest), sqlite3_column_text(stmt, 15));
        gate__store_copy_text(f->made, sizeof(f->made), sqlite3_column_text(stmt, 16));
        f->change_id = sqlite3_column_int64(stmt, 17);
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read a flow");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

static keel_status save_row(gate_store *st, const gate_flow *f, long long now)
{
    char people[GATE_FLOW_PEOPLE_MAX * (GATE_FLOW_PERSON_MAX + 1)];
    join_people(f->people, f->npeople, "\n", people, sizeof(people));
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st,
        "INSERT OR REPLACE INTO flows(src, dst, state, source, synced, trying, change_commit, "
        "dest_moved, resolution, last_sync, blocked_since, failed_at, why, people, reminders, "
        "last_told, escalated, updated_at, dest, made, change_id) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
        "?19, ?20, ?21)",
        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, f->cfg->from);
    gate__store_bind_text(stmt, 2, f->cfg->to);
    gate__store_bind_text(stmt, 3, gate_flow_state_name(f->state));
    gate__store_bind_text(stmt, 4, f->source);
    gate__store_bind_text(stmt, 5, f->synced);
    gate__store_bind_text(stmt, 6, f->trying);
    gate__store_bind_text(stmt, 7, f->change);
    (void)sqlite3_bind_int(stmt, 8, f->dest_moved);
    (void)sqlite3_bind_int(stmt, 9, f->resolution);
    (void)sqlite3_bind_int64(stmt, 10, f->last_sync);
    (void)sqlite3_bind_int64(stmt, 11, f->blocked_since);
    (void)sqlite3_bind_int64(stmt, 12, f->failed_at);
    gate__store_bind_text(stmt, 13, f->why);
    gate__store_bind_text(stmt, 14, people);
    (void)sqlite3_bind_int(stmt, 15, (int)f->reminders);
    (void)sqlite3_bind_int64(stmt, 16, f->last_told);
    (void)sqlite3_bind_int(stmt, 17, f->escalated);
    (void)sqlite3_bind_int64(stmt, 18, now);
    gate__store_bind_text(stmt, 19, f->dest);
    gate__store_bind_text(stmt, 20, f->made);
    (void)sqlite3_bind_int64(stmt, 21, f->change_id);
    return gate__store_step_done(st, stmt, "cannot record a flow");
}

keel_status gate_store_flow_save(gate_store *st, const gate_flow *f, const gate_flow_told *told,
                                 long long now)
{
    KEEL_ASSERT(st != NULL && f != NULL && f->cfg != NULL);
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    s = save_row(st, f, now);
    if (keel_ok(s) && told != NULL) {
        char who[GATE_FLOW_PEOPLE_MAX * (GATE_FLOW_PERSON_MAX + 2)];
        join_people(told->people, told->npeople, ", ", who, sizeof(who));
        sqlite3_stmt *stmt = NULL;
        s = gate__store_prepare(st,
                                "INSERT INTO flow_told(src, dst, kind, who, count, at) "
                                "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                                &stmt);
        if (keel_ok(s)) {
            gate__store_bind_text(stmt, 1, f->cfg->from);
            gate__store_bind_text(stmt, 2, f->cfg->to);
            gate__store_bind_text(stmt, 3, told->kind);
            gate__store_bind_text(stmt, 4, who);
            (void)sqlite3_bind_int(stmt, 5, (int)told->count);
            (void)sqlite3_bind_int64(stmt, 6, now);
            s = gate__store_step_done(st, stmt, "cannot record what a flow told");
        }
        if (keel_ok(s))
            s = gate__store_event_locked(st, now, told->kind, 0, told->detail);
    }
    return gate__store_finish(st, s);
}

keel_status gate_store_flow_told(gate_store *st, const char *from, const char *to,
                                 gate_flow_told_row *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && from != NULL && to != NULL && (out != NULL || max == 0) && n != NULL);
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st,
                                        "SELECT kind, who, count, at FROM flow_told WHERE src = "
                                        "?1 AND dst = ?2 ORDER BY id DESC LIMIT ?3",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, from);
    gate__store_bind_text(stmt, 2, to);
    (void)sqlite3_bind_int64(stmt, 3, (long long)max);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        gate_flow_told_row *r = &out[(*n)++];
        gate__store_copy_text(r->kind, sizeof(r->kind), sqlite3_column_text(stmt, 0));
        gate__store_copy_text(r->who, sizeof(r->who), sqlite3_column_text(stmt, 1));
        r->count = (unsigned)sqlite3_column_int(stmt, 2);
        r->at = sqlite3_column_int64(stmt, 3);
    }
    if (rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot read what a flow told");
    (void)sqlite3_finalize(stmt);
    return s;
}
