/*
 * store_jobs.c - keel-gate's store: candidates, their jobs, landing and recovery.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_int.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

/* Run an UPDATE whose parameters are (now, text[, id]); *changed receives the rows changed. */
static keel_status update_for(gate_store *st, const char *sql, long long now, const char *text,
                              long long id, const char *what, size_t *changed)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, now);
    (void)sqlite3_bind_text(stmt, 2, text, -1, SQLITE_TRANSIENT);
    if (id != 0)
        (void)sqlite3_bind_int64(stmt, 3, id);
    s = gate__store_step_done(st, stmt, what);
    if (keel_ok(s) && changed != NULL)
        *changed += (size_t)sqlite3_changes(st->db);
    return s;
}

static keel_status candidate_new(gate_store *st, const char *target, const char *base,
                                 const long long *changes, size_t n, long long now, bool rebuild,
                                 long long *id)
{
    KEEL_ASSERT(st != NULL && target != NULL && id != NULL && (changes != NULL || n == 0));
    if (!gate__store_valid_oid(base))
        return KEEL_ERR(KEEL_E_INVAL, "candidate base '%s' is not a commit id",
                        base != NULL ? base : "(null)");
    if (n == 0)
        return KEEL_ERR(KEEL_E_INVAL, "a candidate needs at least one change");
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = gate__store_prepare(st, "INSERT INTO candidates(target, base, created_at) VALUES(?,?,?)",
                            &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, target, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_text(stmt, 2, base, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int64(stmt, 3, now);
        s = gate__store_step_done(st, stmt, "cannot record a candidate");
    }
    long long cand = keel_ok(s) ? sqlite3_last_insert_rowid(st->db) : 0;
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        s = gate__store_prepare(
            st, "INSERT INTO candidate_changes(candidate, change, position) VALUES(?,?,?)", &stmt);
        if (keel_ok(s)) {
            (void)sqlite3_bind_int64(stmt, 1, cand);
            (void)sqlite3_bind_int64(stmt, 2, changes[i]);
            (void)sqlite3_bind_int64(stmt, 3, (long long)i);
            s = gate__store_step_done(st, stmt, "cannot record a candidate's change");
        }
        if (keel_ok(s))
            s = gate__store_prepare(
                st,
                rebuild ? "UPDATE changes SET state = 'testing', candidate = ?, "
                          "updated_at = ? WHERE id = ? AND state IN ('queued','testing')"
                        : "UPDATE changes SET state = 'testing', candidate = ?, "
                          "updated_at = ? WHERE id = ? AND state = 'queued'",
                &stmt);
        if (keel_ok(s)) {
            (void)sqlite3_bind_int64(stmt, 1, cand);
            (void)sqlite3_bind_int64(stmt, 2, now);
            (void)sqlite3_bind_int64(stmt, 3, changes[i]);
            s = gate__store_step_done(st, stmt, "cannot move a change to testing");
        }
        if (keel_ok(s) && sqlite3_changes(st->db) != 1)
            s = keel_status_with_int(
                KEEL_ERR(KEEL_E_STATE, "change %lld is not queued: it cannot join a candidate",
                         changes[i]),
                "change", changes[i]);
    }
    if (keel_ok(s))
        *id = cand;
    return gate__store_finish(st, s);
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
    keel_status s = gate__store_prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, text, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 2, num);
    (void)sqlite3_bind_int64(stmt, 3, id);
    s = gate__store_step_done(st, stmt, what);
    if (keel_ok(s) && sqlite3_changes(st->db) != 1)
        s = keel_status_with_int(KEEL_ERR(KEEL_E_NOTFOUND, "%s: no row %lld", what, id), "id", id);
    return s;
}

keel_status gate_store_candidate_set_merge(gate_store *st, long long id, const char *merge)
{
    KEEL_ASSERT(st != NULL);
    if (!gate__store_valid_oid(merge))
        return KEEL_ERR(KEEL_E_INVAL, "merge '%s' is not a commit id", merge != NULL ? merge : "");
    return update_one(st, "UPDATE candidates SET merge = ?, finished_at = ? WHERE id = ?", merge, 0,
                      id, "cannot record a candidate's merge");
}

keel_status gate_store_candidate_relabel(gate_store *st, long long id, const char *base,
                                         const char *merge)
{
    KEEL_ASSERT(st != NULL);
    if (!gate__store_valid_oid(merge) || !gate__store_valid_oid(base))
        return KEEL_ERR(KEEL_E_INVAL, "'%s' onto '%s' is not a merge onto a commit",
                        merge != NULL ? merge : "", base != NULL ? base : "");
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st, "UPDATE candidates SET base = ?1, merge = ?2 WHERE id = ?3", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_text(stmt, 1, base, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(stmt, 2, merge, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(stmt, 3, id);
    s = gate__store_step_done(st, stmt, "cannot record what a candidate lands");
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
    keel_status s = gate__store_prepare(
        st, "INSERT INTO jobs(candidate, config, attempt, started_at) VALUES(?,?,?,?)", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, candidate);
    (void)sqlite3_bind_text(stmt, 2, config, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int(stmt, 3, attempt);
    (void)sqlite3_bind_int64(stmt, 4, now);
    s = gate__store_step_done(st, stmt, "cannot record a job");
    if (keel_ok(s))
        *id = sqlite3_last_insert_rowid(st->db);
    return s;
}

keel_status gate_store_job_finish(gate_store *st, long long id, const char *result, int exit_code,
                                  const char *log, const gate_job_timing *timing, long long now)
{
    KEEL_ASSERT(st != NULL && result != NULL);
    gate_job_timing t = {-1, 0.0, 0.0};
    if (timing != NULL)
        t = *timing;
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = gate__store_prepare(st,
                            "UPDATE jobs SET state = ?, exit_code = ?, log = ?, finished_at = ?, "
                            "elapsed_ms = ?, load = ?, others = ? WHERE id = ? AND state = "
                            "'running'",
                            &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_text(stmt, 1, result, -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int(stmt, 2, exit_code);
        (void)sqlite3_bind_text(stmt, 3, log != NULL ? log : "", -1, SQLITE_TRANSIENT);
        (void)sqlite3_bind_int64(stmt, 4, now);
        (void)sqlite3_bind_int64(stmt, 5, t.elapsed_ms >= 0 ? t.elapsed_ms : -1);
        /* a load below 1 (itself included) or not a number is not known: 0 */
        (void)sqlite3_bind_double(stmt, 6, t.load >= 1.0 && isfinite(t.load) ? t.load : 0.0);
        (void)sqlite3_bind_double(stmt, 7, t.others > 0.0 && isfinite(t.others) ? t.others : 0.0);
        (void)sqlite3_bind_int64(stmt, 8, id);
        s = gate__store_step_done(st, stmt, "cannot record a job's result");
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
    return gate__store_finish(st, s);
}

/* The open candidates of `target` that have a merge, into a list on the store's heap. */
static keel_status open_candidates(gate_store *st, const char *target, long long **ids,
                                   char (**merges)[GATE_OID_HEX], size_t *n)
{
    *ids = NULL;
    *merges = NULL;
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st,
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
        gate__store_copy_text((*merges)[*n], GATE_OID_HEX, sqlite3_column_text(stmt, 1));
        (*n)++;
    }
    if (keel_ok(s) && rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot read the open candidates");
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
        s = gate__store_event_locked(st, now, "land", 0, detail);
    return s;
}

keel_status gate_store_recover(gate_store *st, const char *target, gate_landed_fn landed, void *ctx,
                               bool after_crash, long long now, gate_recovery *out)
{
    KEEL_ASSERT(st != NULL && target != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    keel_status s = gate__store_begin(st);
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
        s = gate__store_prepare(
            st,
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
        s = gate__store_step_done(st, stmt, "cannot record the recovery");
    }
    return gate__store_finish(st, s);
}

keel_status gate_store_land(gate_store *st, long long candidate, long long now)
{
    KEEL_ASSERT(st != NULL);
    /* land_refused: the record of a landing the target already holds fails, not a passing fault */
    keel_status s = KEEL_STRESS(land_refused)
                        ? KEEL_ERR(KEEL_E_INJECTED,
                                   "store '%s': cannot record a landing (stress point)", st->path)
                        : gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    char detail[64];
    (void)snprintf(detail, sizeof(detail), "{\"candidate\":%lld}", candidate);
    sqlite3_stmt *stmt = NULL;
    s = gate__store_prepare(
        st, "SELECT change FROM candidate_changes WHERE candidate = ? ORDER BY position", &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_int64(stmt, 1, candidate);
        int rc;
        while (keel_ok(s) && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
            s = gate__store_set_state_locked(st, sqlite3_column_int64(stmt, 0), GATE_CHANGE_LANDED,
                                             "landed", now);
        if (keel_ok(s) && rc != SQLITE_DONE)
            s = gate__store_error(st, rc, "cannot read a candidate's changes");
        (void)sqlite3_finalize(stmt);
    }
    if (keel_ok(s))
        s = update_one(st, "UPDATE candidates SET state = ?, finished_at = ? WHERE id = ?",
                       "passed", now, candidate, "cannot finish a landed candidate");
    if (keel_ok(s))
        s = gate__store_event_locked(st, now, "land", 0, detail);
    return gate__store_finish(st, s);
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
    keel_status s = gate__store_prepare(
        st,
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
            s = gate__store_error(st, rc, "cannot read the jobs");
            break;
        }
        gate_job *j = &out[(*n)++];
        memset(j, 0, sizeof(*j));
        j->id = sqlite3_column_int64(stmt, 0);
        j->candidate = sqlite3_column_int64(stmt, 1);
        gate__store_copy_text(j->config, sizeof(j->config), sqlite3_column_text(stmt, 2));
        j->attempt = sqlite3_column_int(stmt, 3);
        gate__store_copy_text(j->state, sizeof(j->state), sqlite3_column_text(stmt, 4));
        j->exit_code = sqlite3_column_int(stmt, 5);
        gate__store_copy_text(j->log, sizeof(j->log), sqlite3_column_text(stmt, 6));
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
    keel_status s = gate__store_prepare(
        st, "SELECT count(*) FROM (SELECT DISTINCT candidate, attempt FROM jobs)", &stmt);
    if (!keel_ok(s))
        return s;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(stmt, 0);
    else
        s = gate__store_error(st, rc, "cannot count builds");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_candidate_passed(gate_store *st, long long candidate, char *buf, size_t size)
{
    KEEL_ASSERT(st != NULL && buf != NULL && size > 0);
    buf[0] = '\0';
    sqlite3_stmt *stmt = NULL;
    keel_status s =
        gate__store_prepare(st,
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
        s = gate__store_error(st, rc, "cannot read a candidate's jobs");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_candidate_changes(gate_store *st, long long candidate, long long *out,
                                         size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
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
        s = gate__store_error(st, rc, "cannot read a candidate's changes");
    *n = total;
    (void)sqlite3_finalize(stmt);
    return s;
}
