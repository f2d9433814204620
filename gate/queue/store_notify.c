/*
 * store_notify.c - keel-gate's store: the notify hook's feed (gate/notify.c).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

keel_status gate_store_notify_start(gate_store *st, const char *target)
{
    KEEL_ASSERT(st != NULL && target != NULL);
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st,
                                        "INSERT OR IGNORE INTO notify_cursor(target, event) "
                                        "VALUES(?1, (SELECT coalesce(max(id), 0) FROM events))",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    return gate__store_step_done(st, stmt, "cannot start the notify hook's cursor");
}

/* The events the hook hears of, by their names in the store and to the hook. */
static const char *const notice_kinds[][2] = {{"landed", "land"},
                                              {"rejected", "reject"},
                                              {"reopened", "reopen"},
                                              {"conflict", "conflict"},
                                              {"flake", "flake"},
                                              {"post-failed", "post-failed"},
                                              {"target-red", "target-red"},
                                              {"target-green", "target-green"},
                                              {"culprit-suspected", "culprit-suspected"},
                                              {"culprit-verified", "culprit-verified"},
                                              {"culprit-gave-up", "culprit-gave-up"},
                                              {"nightly-failed", "nightly-failed"},
                                              {"nightly-passed", "nightly-passed"},
                                              {"backout-queued", "backout-queued"},
                                              {"backout-landed", "backout-landed"},
                                              {"backout-rejected", "backout-rejected"},
                                              {"backout-refused", "backout-refused"},
                                              {"backout-proposed", "backout-proposed"},
                                              {"backout-waiting", "backout-waiting"},
                                              {"breaker-open", "breaker-open"},
                                              {"breaker-closed", "breaker-closed"},
                                              {"flow-blocked", "flow-blocked"},
                                              {"flow-reminder", "flow-reminder"},
                                              {"flow-escalated", "flow-escalated"},
                                              {"flow-unblocked", "flow-unblocked"},
                                              {"flow-landed", "flow-landed"},
                                              {"flow-reused", "flow-reused"}};

/*
 * The hook's events after the cursor: id, kind, change, branch, head (the
 * levels' (post, nightly, culprit search): their commit; the backout's: the
 * culprit), merge, reason, and the backout's author and committer ('' for
 * the others); a flow's: its flow branch, the merge, why, and its whole
 * detail (flows_turn.c) as the last column ('' for the others).
 */
#define LEVEL_KINDS                                                                           \
    "('post-failed', 'target-red', 'target-green', 'culprit-suspected', 'culprit-verified', " \
    "'culprit-gave-up', 'nightly-failed', 'nightly-passed')"
#define BACKOUT_KINDS "(e.kind LIKE 'backout-%' OR e.kind LIKE 'breaker-%')"
#define FLOW_KINDS                                                    \
    "(e.kind IN ('flow-blocked', 'flow-reminder', 'flow-escalated', " \
    "'flow-unblocked', 'flow-landed', 'flow-reused') AND json_valid(e.detail))"
static const char notify_next_sql[] =
    "SELECT e.id, e.kind, e.change, CASE WHEN " FLOW_KINDS
    " THEN coalesce(json_extract(e.detail, '$.flow_branch'), '') ELSE coalesce(c.branch, '') "
    "END, CASE WHEN " FLOW_KINDS " THEN coalesce(json_extract(e.detail, '$.merge'), '') WHEN "
    "e.kind IN " LEVEL_KINDS
    " THEN coalesce(CASE WHEN json_valid(e.detail) THEN json_extract(e.detail, '$.commit') END, "
    "'') WHEN " BACKOUT_KINDS " THEN coalesce(CASE WHEN json_valid(e.detail) THEN "
    "json_extract(e.detail, '$.culprit') END, '') ELSE coalesce(c.head, '') END, CASE e.kind "
    "WHEN 'conflict' THEN '' WHEN 'reopened' THEN '' WHEN 'flake' THEN coalesce(CASE WHEN "
    "json_valid(e.detail) THEN "
    "json_extract(e.detail, '$.merge') END, (SELECT merge FROM candidates WHERE id = CASE WHEN "
    "json_valid(e.detail) THEN json_extract(e.detail, '$.candidate') END), '') ELSE "
    "coalesce((SELECT merge FROM candidates WHERE id = c.candidate), '') END, CASE WHEN e.kind "
    "= 'flake' THEN coalesce(CASE WHEN json_valid(e.detail) THEN json_extract(e.detail, "
    "'$.failed') END, '') WHEN " FLOW_KINDS " THEN coalesce(json_extract(e.detail, '$.reason'), "
    "json_extract(e.detail, '$.why'), '') WHEN e.kind IN " LEVEL_KINDS " OR " BACKOUT_KINDS
    " OR e.kind = 'reopened' THEN coalesce(CASE WHEN json_valid(e.detail) THEN "
    "json_extract(e.detail, '$.reason') END, '') WHEN e.kind = 'rejected' THEN coalesce((SELECT "
    "CASE WHEN json_valid(r.detail) THEN json_extract(r.detail, '$.was') END FROM events r WHERE "
    "r.change = e.change AND r.kind = 'reopened' AND r.id > e.id ORDER BY r.id LIMIT 1), "
    "c.reason, '') ELSE coalesce(c.reason, '') END, CASE WHEN " BACKOUT_KINDS
    " THEN coalesce(CASE WHEN json_valid(e.detail) THEN json_extract(e.detail, '$.author') END, "
    "'') ELSE '' END, CASE WHEN " BACKOUT_KINDS
    " THEN coalesce(CASE WHEN json_valid(e.detail) THEN json_extract(e.detail, '$.committer') "
    "END, '') ELSE '' END, CASE WHEN " FLOW_KINDS " THEN e.detail ELSE '' END FROM events e "
    "LEFT JOIN changes c ON c.id = e.change WHERE e.target = ?1 AND e.id > coalesce((SELECT "
    "event FROM notify_cursor WHERE target = ?1), 0) AND (e.kind IN ('landed', 'rejected', "
    "'reopened', 'conflict', 'flake') OR e.kind IN " LEVEL_KINDS " OR " BACKOUT_KINDS
    " OR " FLOW_KINDS ") ORDER BY e.id LIMIT ?2";

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
        s = gate__store_prepare(st, notify_next_sql, &st->notify_next);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = st->notify_next;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, (long long)max);
    int rc;
    while (keel_ok(s) && *n < max && (rc = sqlite3_step(stmt)) != SQLITE_DONE) {
        if (rc != SQLITE_ROW) {
            s = gate__store_error(st, rc, "cannot read the events for the notify hook");
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
        gate__store_copy_text(e->branch, sizeof(e->branch), sqlite3_column_text(stmt, 3));
        gate__store_copy_text(e->head, sizeof(e->head), sqlite3_column_text(stmt, 4));
        gate__store_copy_text(e->merge, sizeof(e->merge), sqlite3_column_text(stmt, 5));
        gate__store_copy_text(e->reason, sizeof(e->reason), sqlite3_column_text(stmt, 6));
        gate__store_copy_text(e->author, sizeof(e->author), sqlite3_column_text(stmt, 7));
        gate__store_copy_text(e->committer, sizeof(e->committer), sqlite3_column_text(stmt, 8));
        const unsigned char *flow = sqlite3_column_text(stmt, 9);
        if (flow != NULL && strlen((const char *)flow) < sizeof(e->flow)) /* whole or none */
            gate__store_copy_text(e->flow, sizeof(e->flow), flow);
    }
    (void)sqlite3_reset(stmt); /* kept for the next call: no read transaction held */
    (void)sqlite3_clear_bindings(stmt);
    return s;
}

/* Move target's cursor to `event` (never back), its failures forgotten. */
static keel_status cursor_to(gate_store *st, const char *target, long long event)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st,
                                        "UPDATE notify_cursor SET event = ?2, failures = 0 "
                                        "WHERE target = ?1 AND event < ?2",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, event);
    return gate__store_step_done(st, stmt, "cannot move the notify hook's cursor");
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
    keel_status s =
        gate__store_prepare(st,
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
        s = gate__store_error(st, rc, "cannot count a failure of the notify hook");
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(stmt);
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_notify_skip(gate_store *st, const char *target, long long event,
                                   long long now, long long change, const char *detail_json)
{
    KEEL_ASSERT(st != NULL && target != NULL);
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    s = gate__store_event_locked(st, now, "notify-failed", change, detail_json);
    if (keel_ok(s))
        s = cursor_to(st, target, event);
    return gate__store_finish(st, s);
}
