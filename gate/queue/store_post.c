/*
 * store_post.c - keel-gate's store: the post level's commits and results
 * (store_post.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_post.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store_int.h"

/* The schema step that made these tables (store.c's migrations: 6 -> 7). */
const char gate__store_post_schema[] =
    "CREATE TABLE IF NOT EXISTS post_commits ("
    "  target TEXT NOT NULL, commit_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  subject TEXT NOT NULL DEFAULT '', seen_at INTEGER NOT NULL,"
    "  PRIMARY KEY (target, commit_id));"
    "CREATE INDEX IF NOT EXISTS post_commits_by_seq ON post_commits(target, seq);"
    "CREATE TABLE IF NOT EXISTS post_results ("
    "  target TEXT NOT NULL, commit_id TEXT NOT NULL, config TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending', runs INTEGER NOT NULL DEFAULT 0,"
    "  fails INTEGER NOT NULL DEFAULT 0, log TEXT NOT NULL DEFAULT '',"
    "  updated_at INTEGER NOT NULL, PRIMARY KEY (target, commit_id, config));"
    "CREATE INDEX IF NOT EXISTS post_results_by_state ON post_results(target, state);";

const char *gate_build_outcome(const char *state, unsigned runs, unsigned fails)
{
    if (strcmp(state, "running") == 0)
        return "running";
    if (strcmp(state, "done") != 0 || runs == 0)
        return "not run";
    if (fails == 0)
        return "passed";
    return fails == runs ? "failed" : "flaky";
}

const char *gate_post_outcome(const gate_post_row *r)
{
    return gate_build_outcome(r->state, r->runs, r->fails);
}

keel_status gate_store_post_add(gate_store *st, const char *target, const char *commit,
                                const char *subject, const char *const *names, size_t nnames,
                                long long now)
{
    KEEL_ASSERT(st != NULL && target != NULL && (names != NULL || nnames == 0));
    if (!gate__store_valid_oid(commit))
        return KEEL_ERR(KEEL_E_INVAL, "'%s' is not a commit id", commit != NULL ? commit : "");
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = gate__store_prepare(st,
                            "INSERT OR IGNORE INTO post_commits(target, commit_id, seq, subject, "
                            "seen_at) VALUES(?1, ?2, (SELECT coalesce(max(seq), 0) + 1 FROM "
                            "post_commits WHERE target = ?1), ?3, ?4)",
                            &stmt);
    if (keel_ok(s)) {
        gate__store_bind_text(stmt, 1, target);
        gate__store_bind_text(stmt, 2, commit);
        gate__store_bind_text(stmt, 3, subject != NULL ? subject : "");
        (void)sqlite3_bind_int64(stmt, 4, now);
        s = gate__store_step_done(st, stmt, "cannot record a commit of the target");
    }
    bool added = keel_ok(s) && sqlite3_changes(st->db) == 1;
    for (size_t i = 0; added && keel_ok(s) && i < nnames; i++) {
        s = gate__store_prepare(st,
                                "INSERT OR IGNORE INTO post_results(target, commit_id, config, "
                                "updated_at) VALUES(?1, ?2, ?3, ?4)",
                                &stmt);
        if (keel_ok(s)) {
            gate__store_bind_text(stmt, 1, target);
            gate__store_bind_text(stmt, 2, commit);
            gate__store_bind_text(stmt, 3, names[i]);
            (void)sqlite3_bind_int64(stmt, 4, now);
            s = gate__store_step_done(st, stmt, "cannot record a build to make");
        }
    }
    return gate__store_finish(st, s);
}

keel_status gate_store_post_newest(gate_store *st, const char *target, char out[GATE_OID_HEX])
{
    KEEL_ASSERT(st != NULL && target != NULL && out != NULL);
    out[0] = '\0';
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st, "SELECT commit_id FROM post_commits WHERE target = ?1 ORDER BY seq DESC LIMIT 1",
        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        gate__store_copy_text(out, GATE_OID_HEX, sqlite3_column_text(stmt, 0));
    else if (rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot read the target's newest commit");
    (void)sqlite3_finalize(stmt);
    return s;
}

#define ROW_COLUMNS \
    "c.seq, r.commit_id, c.subject, r.config, r.state, r.runs, r.fails, r.log, r.updated_at"
#define ROW_FROM \
    "post_results r JOIN post_commits c ON c.target = r.target AND c.commit_id = r.commit_id"

static void read_row(sqlite3_stmt *stmt, gate_post_row *out)
{
    memset(out, 0, sizeof(*out));
    out->seq = sqlite3_column_int64(stmt, 0);
    gate__store_copy_text(out->commit, sizeof(out->commit), sqlite3_column_text(stmt, 1));
    gate__store_copy_text(out->subject, sizeof(out->subject), sqlite3_column_text(stmt, 2));
    gate__store_copy_text(out->config, sizeof(out->config), sqlite3_column_text(stmt, 3));
    gate__store_copy_text(out->state, sizeof(out->state), sqlite3_column_text(stmt, 4));
    out->runs = (unsigned)sqlite3_column_int(stmt, 5);
    out->fails = (unsigned)sqlite3_column_int(stmt, 6);
    gate__store_copy_text(out->log, sizeof(out->log), sqlite3_column_text(stmt, 7));
    out->updated_at = sqlite3_column_int64(stmt, 8);
}

keel_status gate_store_post_next(gate_store *st, const char *target, gate_post_row *out,
                                 bool *found)
{
    KEEL_ASSERT(st != NULL && target != NULL && out != NULL && found != NULL);
    *found = false;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st,
                                        "SELECT " ROW_COLUMNS " FROM " ROW_FROM
                                        " WHERE r.target = ?1 AND r.state = 'pending' "
                                        "ORDER BY c.seq DESC, r.config LIMIT 1",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        read_row(stmt, out);
        *found = true;
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read the next post build");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

/*
 * An UPDATE of post_results with parameters ?1 target, ?2 commit, ?3
 * config, ?4 now, ?5 text, ?6 flag (those it names: SQLite ignores the
 * binding of a parameter a statement does not have); *changed: rows changed.
 */
static keel_status update_row(gate_store *st, const char *sql, const char *target,
                              const char *commit, const char *config, long long now,
                              const char *text, int flag, const char *what, int *changed)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_text(stmt, 2, commit);
    gate__store_bind_text(stmt, 3, config);
    (void)sqlite3_bind_int64(stmt, 4, now);
    gate__store_bind_text(stmt, 5, text != NULL ? text : "");
    (void)sqlite3_bind_int(stmt, 6, flag);
    s = gate__store_step_done(st, stmt, what);
    if (keel_ok(s) && changed != NULL)
        *changed = sqlite3_changes(st->db);
    return s;
}

keel_status gate_store_post_start(gate_store *st, const char *target, const char *commit,
                                  const char *config, long long now)
{
    KEEL_ASSERT(st != NULL && target != NULL && commit != NULL && config != NULL);
    int changed = 0;
    keel_status s = update_row(st,
                               "UPDATE post_results SET state = 'running', updated_at = ?4 "
                               "WHERE target = ?1 AND commit_id = ?2 AND config = ?3 AND "
                               "state = 'pending'",
                               target, commit, config, now, NULL, 0,
                               "cannot record a post build's start", &changed);
    if (keel_ok(s) && changed != 1)
        s = KEEL_ERR(KEEL_E_STATE, "the post build of %.12s with '%s' is not pending", commit,
                     config);
    return s;
}

/*
 * A post_results row (of a running build, in an UPDATE of post_results) that
 * a newer commit's pass superseded while it ran: never built before (a rerun
 * of a red streak keeps its place), and a newer commit of its configuration
 * passed at least once: what gate_store_post_finish does to the pending rows.
 */
#define SUPERSEDED                                                                              \
    "post_results.runs = 0 AND EXISTS (SELECT 1 FROM " ROW_FROM " WHERE r.target = "            \
    "post_results.target AND r.config = post_results.config AND r.state = 'done' AND r.runs > " \
    "r.fails AND c.seq > (SELECT seq FROM post_commits WHERE target = post_results.target AND " \
    "commit_id = post_results.commit_id))"

/*
 * Running rows whose build ended without a result, of `commit` and `config`
 * (a cancelled build) or every one of `target` (NULL, NULL: those a killed
 * gate left): skipped when superseded (SUPERSEDED), else pending again, in
 * one transaction; *pending, *skipped: how many.
 */
static keel_status put_back(gate_store *st, const char *target, const char *commit,
                            const char *config, long long now, const char *what, int *pending,
                            int *skipped)
{
    *pending = *skipped = 0;
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    s = update_row(st,
                   "UPDATE post_results SET state = 'skipped', updated_at = ?4 WHERE target = ?1 "
                   "AND (?2 IS NULL OR commit_id = ?2) AND (?3 IS NULL OR config = ?3) AND "
                   "state = 'running' AND " SUPERSEDED,
                   target, commit, config, now, NULL, 0, what, skipped);
    if (keel_ok(s))
        s = update_row(st,
                       "UPDATE post_results SET state = 'pending' WHERE target = ?1 AND (?2 IS "
                       "NULL OR commit_id = ?2) AND (?3 IS NULL OR config = ?3) AND state = "
                       "'running'",
                       target, commit, config, 0, NULL, 0, what, pending);
    return gate__store_finish(st, s);
}

keel_status gate_store_post_unstart(gate_store *st, const char *target, const char *commit,
                                    const char *config, long long now, bool *superseded)
{
    KEEL_ASSERT(st != NULL && target != NULL && commit != NULL && config != NULL &&
                superseded != NULL);
    int pending = 0, skipped = 0;
    keel_status s = put_back(st, target, commit, config, now, "cannot put a post build back",
                             &pending, &skipped);
    *superseded = keel_ok(s) && skipped == 1;
    return s;
}

keel_status gate_store_post_finish(gate_store *st, const char *target, const char *commit,
                                   const char *config, bool failed, const char *log, long long now,
                                   char was[GATE_POST_STATE_MAX])
{
    KEEL_ASSERT(st != NULL && target != NULL && commit != NULL && config != NULL && was != NULL);
    was[0] = '\0';
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    s = gate__store_prepare(st,
                            "SELECT CASE WHEN r.fails = 0 THEN 'passed' WHEN r.fails = r.runs "
                            "THEN 'failed' ELSE 'flaky' END FROM " ROW_FROM
                            " WHERE r.target = ?1 AND r.config = ?2 AND r.state = 'done' AND "
                            "r.runs > 0 ORDER BY c.seq DESC LIMIT 1",
                            &stmt);
    if (keel_ok(s)) {
        gate__store_bind_text(stmt, 1, target);
        gate__store_bind_text(stmt, 2, config);
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW)
            gate__store_copy_text(was, GATE_POST_STATE_MAX, sqlite3_column_text(stmt, 0));
        else if (rc != SQLITE_DONE)
            s = gate__store_error(st, rc, "cannot read the last post result");
        (void)sqlite3_finalize(stmt);
    }
    int changed = 0;
    if (keel_ok(s))
        s = update_row(st,
                       "UPDATE post_results SET state = 'done', runs = runs + 1, fails = fails + "
                       "?6, log = ?5, updated_at = ?4 WHERE target = ?1 AND commit_id = ?2 AND "
                       "config = ?3 AND state = 'running'",
                       target, commit, config, now, log, failed ? 1 : 0,
                       "cannot record a post build's result", &changed);
    if (keel_ok(s) && changed != 1)
        s = KEEL_ERR(KEEL_E_STATE, "the post build of %.12s with '%s' is not running", commit,
                     config);
    /* superseded: the older commits not built yet are not run, unless this one failed */
    if (keel_ok(s) && !failed)
        s = update_row(st,
                       "UPDATE post_results SET state = 'skipped', updated_at = ?4 WHERE "
                       "target = ?1 AND config = ?3 AND state = 'pending' AND commit_id IN "
                       "(SELECT commit_id FROM post_commits WHERE target = ?1 AND seq < "
                       "(SELECT seq FROM post_commits WHERE target = ?1 AND commit_id = ?2))",
                       target, commit, config, now, NULL, 0, "cannot skip superseded builds", NULL);
    return gate__store_finish(st, s);
}

keel_status gate_store_post_is_newest(gate_store *st, const char *target, const char *commit,
                                      const char *config, bool *newest)
{
    KEEL_ASSERT(st != NULL && target != NULL && commit != NULL && config != NULL && newest != NULL);
    *newest = true;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st,
        "SELECT count(*) FROM " ROW_FROM " WHERE r.target = ?1 AND r.config = ?3 AND r.state = "
        "'done' AND c.seq > (SELECT seq FROM post_commits WHERE target = ?1 AND commit_id = ?2)",
        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_text(stmt, 2, commit);
    gate__store_bind_text(stmt, 3, config);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *newest = sqlite3_column_int64(stmt, 0) == 0;
    else
        s = gate__store_error(st, rc, "cannot read the newer post results");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_post_again_base(gate_store *st, const char *target, const char *commit,
                                       const char *config, unsigned max_runs, long long now,
                                       char again[GATE_OID_HEX])
{
    KEEL_ASSERT(st != NULL && target != NULL && commit != NULL && config != NULL && again != NULL);
    again[0] = '\0';
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st,
        "SELECT r.commit_id FROM " ROW_FROM " WHERE r.target = ?1 AND r.config = ?3 AND "
        "r.state = 'done' AND r.runs > 0 AND r.runs = r.fails AND r.runs < ?4 AND c.seq = "
        "(SELECT min(c2.seq) FROM post_results r2 JOIN post_commits c2 ON c2.target = "
        "r2.target AND c2.commit_id = r2.commit_id WHERE r2.target = ?1 AND r2.config = ?3 AND "
        "r2.runs > 0) AND NOT EXISTS (SELECT 1 FROM post_results r3 JOIN post_commits c3 "
        "ON c3.target = r3.target AND c3.commit_id = r3.commit_id WHERE r3.target = ?1 AND "
        "r3.config = ?3 AND r3.runs > r3.fails AND c3.seq <= (SELECT seq "
        "FROM post_commits WHERE target = ?1 AND commit_id = ?2))",
        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_text(stmt, 2, commit);
    gate__store_bind_text(stmt, 3, config);
    (void)sqlite3_bind_int64(stmt, 4, (sqlite3_int64)max_runs);
    int rc = sqlite3_step(stmt);
    char found[GATE_OID_HEX] = "";
    if (rc == SQLITE_ROW)
        gate__store_copy_text(found, sizeof(found), sqlite3_column_text(stmt, 0));
    else if (rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot read the oldest post failure");
    (void)sqlite3_finalize(stmt);
    if (!keel_ok(s) || found[0] == '\0')
        return s;
    int changed = 0;
    s = update_row(st,
                   "UPDATE post_results SET state = 'pending', updated_at = ?4 WHERE target = ?1 "
                   "AND commit_id = ?2 AND config = ?3 AND state = 'done'",
                   target, found, config, now, NULL, 0, "cannot build a post result again",
                   &changed);
    if (keel_ok(s) && changed == 1)
        (void)snprintf(again, GATE_OID_HEX, "%s", found);
    return s;
}

keel_status gate_store_post_red(gate_store *st, const char *target, const char *except, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && except != NULL && n != NULL);
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    /* SQLite: with max(), the bare columns are the row's that holds it */
    keel_status s = gate__store_prepare(st,
                                        "SELECT count(*) FROM (SELECT r.fails AS f, r.runs AS n, "
                                        "max(c.seq) FROM " ROW_FROM
                                        " WHERE r.target = ?1 AND r.config != ?2 AND r.state = "
                                        "'done' AND r.runs > 0 GROUP BY r.config) WHERE f = n",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    gate__store_bind_text(stmt, 2, except);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *n = (size_t)sqlite3_column_int64(stmt, 0);
    else
        s = gate__store_error(st, rc, "cannot count the red configurations");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_post_recover(gate_store *st, const char *target, long long now, size_t *n,
                                    size_t *superseded)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && superseded != NULL);
    *n = *superseded = 0;
    int pending = 0, skipped = 0;
    keel_status s =
        put_back(st, target, NULL, NULL, now, "cannot recover the post builds", &pending, &skipped);
    if (keel_ok(s)) {
        *n = (size_t)pending;
        *superseded = (size_t)skipped;
    }
    return s;
}

keel_status gate_store_post_history(gate_store *st, const char *target, const char *config,
                                    gate_post_row *out, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st,
                                        "SELECT " ROW_COLUMNS " FROM " ROW_FROM
                                        " WHERE r.target = ?1 AND (?2 IS NULL OR r.config = ?2) "
                                        "ORDER BY c.seq DESC, r.config LIMIT ?3",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    gate__store_bind_text(stmt, 1, target);
    if (config != NULL)
        gate__store_bind_text(stmt, 2, config);
    (void)sqlite3_bind_int64(stmt, 3, (long long)max);
    int rc = SQLITE_DONE;
    while (*n < max && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
        read_row(stmt, &out[(*n)++]);
    if (*n < max && rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot read the post history");
    (void)sqlite3_finalize(stmt);
    return s;
}
