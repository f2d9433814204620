/*
 * store_culprit.c - keel-gate's store: the culprit searches, their ranges and
 * builds (store_culprit.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_culprit.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store_int.h"

/* The schema step that makes these tables (store.c's migrations; only its own tables). */
const char gate__store_culprit_schema[] =
    "CREATE TABLE IF NOT EXISTS culprit_searches ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, config TEXT NOT NULL,"
    "  tier INTEGER NOT NULL, n INTEGER NOT NULL, flake REAL NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'searching', culprit TEXT NOT NULL DEFAULT '',"
    "  told_suspected INTEGER NOT NULL DEFAULT 0, handed INTEGER NOT NULL DEFAULT 0,"
    "  evidence TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL DEFAULT 0,"
    "  started_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS culprit_searches_by_config ON culprit_searches(target, config);"
    "CREATE TABLE IF NOT EXISTS culprit_range ("
    "  search INTEGER NOT NULL, idx INTEGER NOT NULL, commit_id TEXT NOT NULL,"
    "  PRIMARY KEY (search, idx));"
    "CREATE TABLE IF NOT EXISTS culprit_builds ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, search INTEGER NOT NULL, idx INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'running', failed INTEGER NOT NULL DEFAULT 0,"
    "  start_seq INTEGER NOT NULL, end_seq INTEGER NOT NULL DEFAULT 0,"
    "  log TEXT NOT NULL DEFAULT '', started_at INTEGER NOT NULL,"
    "  finished_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS culprit_builds_by_search ON culprit_builds(search, id);";

static void bind_text(sqlite3_stmt *stmt, int i, const char *text)
{
    (void)sqlite3_bind_text(stmt, i, text != NULL ? text : "", -1, SQLITE_TRANSIENT);
}

/* Run `sql` with ?1 a text and ?2, ?3 integers (those it names); *changed: rows changed. */
static keel_status exec_sql(gate_store *st, const char *sql, const char *text, long long a,
                            long long b, const char *what, int *changed)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    bind_text(stmt, 1, text);
    (void)sqlite3_bind_int64(stmt, 2, a);
    (void)sqlite3_bind_int64(stmt, 3, b);
    s = gate__store_step_done(st, stmt, what);
    if (keel_ok(s) && changed != NULL)
        *changed = sqlite3_changes(st->db);
    return s;
}

/* One integer from `sql` (?1 text, ?2 ?3 integers): *found false when no row. */
static keel_status query_int(gate_store *st, const char *sql, const char *text, long long a,
                             long long b, const char *what, long long *out, bool *found)
{
    *out = 0;
    *found = false;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    bind_text(stmt, 1, text);
    (void)sqlite3_bind_int64(stmt, 2, a);
    (void)sqlite3_bind_int64(stmt, 3, b);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(stmt, 0);
        *found = true;
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, what);
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

#define POST_ROWS                                                                              \
    "post_results r JOIN post_commits c ON c.target = r.target AND c.commit_id = r.commit_id " \
    "WHERE r.target = ?1 AND r.config = ?2"

/* A new search's row (its range to follow: n 0), inside the caller's transaction: *id. */
static keel_status insert_search(gate_store *st, const char *target, const char *config,
                                 unsigned tier, const char *level, double flake, long long now,
                                 long long *id)
{
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st,
                                        "INSERT INTO culprit_searches(target, config, tier, n, "
                                        "flake, started_at, updated_at, level) VALUES(?1, ?2, ?3, "
                                        "0, ?4, ?5, ?5, ?6)",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    bind_text(stmt, 1, target);
    bind_text(stmt, 2, config);
    (void)sqlite3_bind_int(stmt, 3, (int)tier);
    (void)sqlite3_bind_double(stmt, 4, flake);
    (void)sqlite3_bind_int64(stmt, 5, now);
    bind_text(stmt, 6, level);
    s = gate__store_step_done(st, stmt, "cannot record a culprit search");
    if (keel_ok(s))
        *id = sqlite3_last_insert_rowid(st->db);
    return s;
}

keel_status gate_store_search_new(gate_store *st, const char *target, const char *config,
                                  unsigned tier, const char *failed, double flake, long long now,
                                  long long *id)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL && failed != NULL && id != NULL);
    *id = 0;
    keel_status s = gate__store_begin(st);
    if (!keel_ok(s))
        return s;
    sqlite3_stmt *stmt = NULL;
    long long hi = 0, lo = 0;
    bool found = false;
    s = gate__store_prepare(st, "SELECT seq FROM post_commits WHERE target = ?1 AND commit_id = ?2",
                            &stmt);
    if (keel_ok(s)) {
        bind_text(stmt, 1, target);
        bind_text(stmt, 2, failed);
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW)
            hi = sqlite3_column_int64(stmt, 0);
        else
            s = rc == SQLITE_DONE
                    ? KEEL_ERR(KEEL_E_NOTFOUND, "commit %.12s is not one of the target's", failed)
                    : gate__store_error(st, rc, "cannot read a commit's place");
        (void)sqlite3_finalize(stmt);
    }
    /* the newest before it that passed the configuration at least once */
    if (keel_ok(s))
        s = gate__store_prepare(st,
                                "SELECT max(c.seq) FROM " POST_ROWS
                                " AND r.state = 'done' AND r.runs > r.fails AND c.seq < ?3",
                                &stmt);
    if (keel_ok(s)) {
        bind_text(stmt, 1, target);
        bind_text(stmt, 2, config);
        (void)sqlite3_bind_int64(stmt, 3, hi);
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
            lo = sqlite3_column_int64(stmt, 0);
            found = true;
        } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            s = gate__store_error(st, rc, "cannot read the last commit that passed");
        }
        (void)sqlite3_finalize(stmt);
    }
    if (keel_ok(s) && found)
        s = insert_search(st, target, config, tier, "post", flake, now, id);
    /* the range, oldest first: the newest GATE_SEARCH_RANGE_MAX + 1 rows of it */
    if (keel_ok(s) && found)
        s = gate__store_prepare(st,
                                "INSERT INTO culprit_range(search, idx, commit_id) SELECT ?3, "
                                "row_number() OVER (ORDER BY seq) - 1, commit_id FROM (SELECT "
                                "c.seq AS seq, c.commit_id AS commit_id FROM " POST_ROWS
                                " AND c.seq >= ?4 AND c.seq <= ?5 ORDER BY c.seq DESC LIMIT ?6)",
                                &stmt);
    if (keel_ok(s) && found) {
        bind_text(stmt, 1, target);
        bind_text(stmt, 2, config);
        (void)sqlite3_bind_int64(stmt, 3, *id);
        (void)sqlite3_bind_int64(stmt, 4, lo);
        (void)sqlite3_bind_int64(stmt, 5, hi);
        (void)sqlite3_bind_int(stmt, 6, GATE_SEARCH_RANGE_MAX + 1);
        s = gate__store_step_done(st, stmt, "cannot record a search's range");
    }
    if (keel_ok(s) && found)
        s = exec_sql(st,
                     "UPDATE culprit_searches SET n = (SELECT count(*) - 1 FROM culprit_range "
                     "WHERE search = ?2) WHERE id = ?2",
                     NULL, *id, 0, "cannot record a search's range", NULL);
    /* the range's rows not built yet are the search's to build */
    if (keel_ok(s) && found)
        s = gate__store_prepare(st,
                                "UPDATE post_results SET state = 'skipped', updated_at = ?5 WHERE "
                                "target = ?1 AND config = ?2 AND state = 'pending' AND commit_id "
                                "IN (SELECT commit_id FROM culprit_range WHERE search = ?3)",
                                &stmt);
    if (keel_ok(s) && found) {
        bind_text(stmt, 1, target);
        bind_text(stmt, 2, config);
        (void)sqlite3_bind_int64(stmt, 3, *id);
        (void)sqlite3_bind_int64(stmt, 5, now);
        s = gate__store_step_done(st, stmt, "cannot hand a range to its search");
    }
    s = gate__store_finish(st, s);
    if (!keel_ok(s))
        *id = 0;
    return s;
}

keel_status gate_store_search_new_range(gate_store *st, const char *target, const char *config,
                                        unsigned tier, const char *level,
                                        char (*commits)[GATE_OID_HEX], size_t count, double flake,
                                        long long now, long long *id)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL && level != NULL && id != NULL);
    *id = 0;
    if (count < 2 || count > GATE_SEARCH_RANGE_MAX + 1)
        return KEEL_ERR(KEEL_E_INVAL, "a culprit search's range of %zu commits (2 to %d)", count,
                        GATE_SEARCH_RANGE_MAX + 1);
    for (size_t i = 0; i < count; i++)
        if (!gate__store_valid_oid(commits[i]))
            return KEEL_ERR(KEEL_E_INVAL, "'%s' is not a commit id", commits[i]);
    keel_status s = gate__store_begin(st);
    if (keel_ok(s))
        s = insert_search(st, target, config, tier, level, flake, now, id);
    for (size_t i = 0; keel_ok(s) && i < count; i++) {
        sqlite3_stmt *stmt = NULL;
        s = gate__store_prepare(
            st, "INSERT INTO culprit_range(search, idx, commit_id) VALUES(?1, ?2, ?3)", &stmt);
        if (keel_ok(s)) {
            (void)sqlite3_bind_int64(stmt, 1, *id);
            (void)sqlite3_bind_int64(stmt, 2, (long long)i);
            bind_text(stmt, 3, commits[i]);
            s = gate__store_step_done(st, stmt, "cannot record a search's range");
        }
    }
    if (keel_ok(s))
        s = exec_sql(st, "UPDATE culprit_searches SET n = ?3 WHERE id = ?2", NULL, *id,
                     (long long)count - 1, "cannot record a search's range", NULL);
    s = gate__store_finish(st, s);
    if (!keel_ok(s))
        *id = 0;
    return s;
}

/*
 * The first row of `sql` (texts a, b, c bound to ?1, ?2, ?3 when not NULL):
 * *found, and its first column in *value when not NULL.
 */
static keel_status first_row(gate_store *st, const char *sql, const char *a, const char *b,
                             const char *c, bool *found, long long *value)
{
    *found = false;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    const char *texts[] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (texts[i] != NULL)
            bind_text(stmt, i + 1, texts[i]);
    int rc = sqlite3_step(stmt);
    *found = rc == SQLITE_ROW;
    if (*found && value != NULL)
        *value = sqlite3_column_int64(stmt, 0);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot read the culprit searches");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_search_covering(gate_store *st, const char *target, const char *config,
                                       const char *commit, bool *busy)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL && commit != NULL && busy != NULL);
    return first_row(st,
                     "SELECT 1 FROM culprit_searches s JOIN culprit_range r ON r.search = s.id "
                     "WHERE s.target = ?1 AND s.config = ?2 AND s.state IN ('searching', "
                     "'suspected') AND r.commit_id = ?3 AND r.idx > 0 LIMIT 1",
                     target, config, commit, busy, NULL);
}

keel_status gate_store_search_flow(gate_store *st, const char *target, const char *merge,
                                   long long *id)
{
    KEEL_ASSERT(st != NULL && target != NULL && merge != NULL && id != NULL);
    *id = 0;
    bool found = false;
    return first_row(st,
                     "SELECT s.id FROM culprit_searches s JOIN culprit_range r ON r.search = s.id "
                     "AND r.idx = s.n WHERE s.target = ?1 AND s.level = 'flow' AND r.commit_id = "
                     "?2 ORDER BY s.id DESC LIMIT 1",
                     target, merge, NULL, &found, id);
}

static keel_status ids_of(gate_store *st, const char *sql, const char *target, long long *ids,
                          size_t max, size_t *n, const char *what)
{
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    bind_text(stmt, 1, target);
    int rc = SQLITE_DONE;
    while (*n < max && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
        ids[(*n)++] = sqlite3_column_int64(stmt, 0);
    if (*n < max && rc != SQLITE_DONE)
        s = gate__store_error(st, rc, what);
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_search_active(gate_store *st, const char *target, const char *level,
                                     long long *ids, size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && (ids != NULL || max == 0));
    return ids_of(st,
                  level == NULL ? "SELECT id FROM culprit_searches WHERE target = ?1 AND state IN "
                                  "('searching', 'suspected') ORDER BY id"
                  : strcmp(level, "nightly") == 0
                      ? "SELECT id FROM culprit_searches WHERE target = ?1 AND state IN "
                        "('searching', 'suspected') AND level = 'nightly' ORDER BY id"
                      : "SELECT id FROM culprit_searches WHERE target = ?1 AND state IN "
                        "('searching', 'suspected') AND level != 'nightly' ORDER BY id",
                  target, ids, max, n, "cannot read the culprit searches");
}

keel_status gate_store_search_unhanded(gate_store *st, const char *target, long long *ids,
                                       size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL && (ids != NULL || max == 0));
    return ids_of(st,
                  "SELECT id FROM culprit_searches WHERE target = ?1 AND state = 'verified' AND "
                  "handed = 0 ORDER BY id",
                  target, ids, max, n, "cannot read the verified culprits");
}

keel_status gate_store_search_busy(gate_store *st, const char *target, const char *config,
                                   bool *busy)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL && busy != NULL);
    return first_row(st,
                     "SELECT 1 FROM culprit_searches WHERE target = ?1 AND config = ?2 AND state "
                     "IN ('searching', 'suspected') AND level != 'flow'",
                     target, config, NULL, busy, NULL);
}

#define SEARCH_COLUMNS                                                                       \
    "id, target, config, tier, n, flake, state, culprit, told_suspected, handed, evidence, " \
    "started_at, updated_at, level"

static void read_search(sqlite3_stmt *stmt, gate_search_row *out)
{
    memset(out, 0, sizeof(*out));
    out->id = sqlite3_column_int64(stmt, 0);
    gate__store_copy_text(out->target, sizeof(out->target), sqlite3_column_text(stmt, 1));
    gate__store_copy_text(out->config, sizeof(out->config), sqlite3_column_text(stmt, 2));
    out->tier = (unsigned)sqlite3_column_int(stmt, 3);
    out->n = (unsigned)sqlite3_column_int(stmt, 4);
    out->flake = sqlite3_column_double(stmt, 5);
    gate__store_copy_text(out->state, sizeof(out->state), sqlite3_column_text(stmt, 6));
    gate__store_copy_text(out->culprit, sizeof(out->culprit), sqlite3_column_text(stmt, 7));
    out->told_suspected = sqlite3_column_int(stmt, 8) != 0;
    out->handed = sqlite3_column_int(stmt, 9) != 0;
    gate__store_copy_text(out->evidence, sizeof(out->evidence), sqlite3_column_text(stmt, 10));
    out->started_at = sqlite3_column_int64(stmt, 11);
    out->updated_at = sqlite3_column_int64(stmt, 12);
    gate__store_copy_text(out->level, sizeof(out->level), sqlite3_column_text(stmt, 13));
}

static keel_status search_row(gate_store *st, const char *sql, const char *target,
                              const char *config, long long id, gate_search_row *out, bool *found)
{
    *found = false;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st, sql, &stmt);
    if (!keel_ok(s))
        return s;
    bind_text(stmt, 1, target);
    bind_text(stmt, 2, config);
    (void)sqlite3_bind_int64(stmt, 3, id);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        read_search(stmt, out);
        *found = true;
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read a culprit search");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_search_get(gate_store *st, long long id, gate_search_row *out)
{
    KEEL_ASSERT(st != NULL && out != NULL);
    bool found = false;
    keel_status s = search_row(st, "SELECT " SEARCH_COLUMNS " FROM culprit_searches WHERE id = ?3",
                               NULL, NULL, id, out, &found);
    if (keel_ok(s) && !found)
        s = KEEL_ERR(KEEL_E_NOTFOUND, "no culprit search %lld", id);
    return s;
}

keel_status gate_store_search_newest(gate_store *st, const char *target, const char *config,
                                     gate_search_row *out, bool *found)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL && out != NULL && found != NULL);
    return search_row(st,
                      "SELECT " SEARCH_COLUMNS " FROM culprit_searches WHERE target = ?1 AND "
                      "config = ?2 ORDER BY id DESC LIMIT 1",
                      target, config, 0, out, found);
}

keel_status gate_store_search_commit(gate_store *st, long long id, unsigned idx,
                                     char out[GATE_OID_HEX])
{
    KEEL_ASSERT(st != NULL && out != NULL);
    out[0] = '\0';
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st, "SELECT commit_id FROM culprit_range WHERE search = ?1 AND idx = ?2", &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, id);
    (void)sqlite3_bind_int(stmt, 2, (int)idx);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        gate__store_copy_text(out, GATE_OID_HEX, sqlite3_column_text(stmt, 0));
    else if (rc == SQLITE_DONE)
        s = KEEL_ERR(KEEL_E_NOTFOUND, "culprit search %lld has no commit %u", id, idx);
    else
        s = gate__store_error(st, rc, "cannot read a search's range");
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_search_builds(gate_store *st, long long id, gate_search_build *out,
                                     size_t max, size_t *n)
{
    KEEL_ASSERT(st != NULL && n != NULL && (out != NULL || max == 0));
    *n = 0;
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(
        st,
        "SELECT b.id, b.idx, coalesce(r.commit_id, ''), b.state, b.failed, b.start_seq, "
        "b.end_seq, b.log FROM culprit_builds b LEFT JOIN culprit_range r ON r.search = "
        "b.search AND r.idx = b.idx WHERE b.search = ?1 ORDER BY b.id",
        &stmt);
    if (!keel_ok(s))
        return s;
    (void)sqlite3_bind_int64(stmt, 1, id);
    int rc = SQLITE_DONE;
    while (*n < max && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        gate_search_build *b = &out[(*n)++];
        memset(b, 0, sizeof(*b));
        b->id = sqlite3_column_int64(stmt, 0);
        b->idx = (unsigned)sqlite3_column_int(stmt, 1);
        gate__store_copy_text(b->commit, sizeof(b->commit), sqlite3_column_text(stmt, 2));
        gate__store_copy_text(b->state, sizeof(b->state), sqlite3_column_text(stmt, 3));
        b->failed = sqlite3_column_int(stmt, 4) != 0;
        b->start_seq = sqlite3_column_int64(stmt, 5);
        b->end_seq = sqlite3_column_int64(stmt, 6);
        gate__store_copy_text(b->log, sizeof(b->log), sqlite3_column_text(stmt, 7));
    }
    if (*n < max && rc != SQLITE_DONE)
        s = gate__store_error(st, rc, "cannot read a search's builds");
    (void)sqlite3_finalize(stmt);
    return s;
}

/* The search's next sequence number (inside the caller's transaction). */
static keel_status next_seq(gate_store *st, long long id, long long *seq)
{
    int changed = 0;
    keel_status s = exec_sql(st, "UPDATE culprit_searches SET seq = seq + 1 WHERE id = ?2", NULL,
                             id, 0, "cannot number a search's step", &changed);
    if (keel_ok(s) && changed != 1)
        s = KEEL_ERR(KEEL_E_NOTFOUND, "no culprit search %lld", id);
    bool found = false;
    if (keel_ok(s))
        s = query_int(st, "SELECT seq FROM culprit_searches WHERE id = ?2", NULL, id, 0,
                      "cannot number a search's step", seq, &found);
    return s;
}

keel_status gate_store_search_build_start(gate_store *st, long long id, unsigned idx,
                                          const char *log, long long now, long long *build)
{
    KEEL_ASSERT(st != NULL && build != NULL);
    *build = 0;
    keel_status s = gate__store_begin(st);
    long long seq = 0;
    if (keel_ok(s))
        s = next_seq(st, id, &seq);
    sqlite3_stmt *stmt = NULL;
    if (keel_ok(s))
        s = gate__store_prepare(st,
                                "INSERT INTO culprit_builds(search, idx, start_seq, log, "
                                "started_at) VALUES(?1, ?2, ?3, ?4, ?5)",
                                &stmt);
    if (keel_ok(s)) {
        (void)sqlite3_bind_int64(stmt, 1, id);
        (void)sqlite3_bind_int(stmt, 2, (int)idx);
        (void)sqlite3_bind_int64(stmt, 3, seq);
        bind_text(stmt, 4, log);
        (void)sqlite3_bind_int64(stmt, 5, now);
        s = gate__store_step_done(st, stmt, "cannot record a search's build");
        if (keel_ok(s))
            *build = sqlite3_last_insert_rowid(st->db);
    }
    return gate__store_finish(st, s);
}

/* End build `build` (running) inside the caller's transaction. */
static keel_status end_locked(gate_store *st, long long build, bool abandoned, bool failed,
                              long long now, long long *searchp)
{
    long long search = 0;
    bool found = false;
    keel_status s = query_int(st,
                              "SELECT search FROM culprit_builds WHERE id = ?2 AND state = "
                              "'running'",
                              NULL, build, 0, "cannot read a search's build", &search, &found);
    if (keel_ok(s) && !found)
        return KEEL_ERR(KEEL_E_STATE, "build %lld of a culprit search is not running", build);
    long long seq = 0;
    if (keel_ok(s))
        s = next_seq(st, search, &seq);
    sqlite3_stmt *stmt = NULL;
    if (keel_ok(s))
        s = gate__store_prepare(st,
                                "UPDATE culprit_builds SET state = ?1, failed = ?2, end_seq = ?3, "
                                "finished_at = ?4 WHERE id = ?5",
                                &stmt);
    if (keel_ok(s)) {
        bind_text(stmt, 1, abandoned ? "abandoned" : "done");
        (void)sqlite3_bind_int(stmt, 2, !abandoned && failed ? 1 : 0);
        (void)sqlite3_bind_int64(stmt, 3, seq);
        (void)sqlite3_bind_int64(stmt, 4, now);
        (void)sqlite3_bind_int64(stmt, 5, build);
        s = gate__store_step_done(st, stmt, "cannot record a search's build");
    }
    if (searchp != NULL)
        *searchp = search;
    return s;
}

keel_status gate_store_search_build_end(gate_store *st, long long build, bool abandoned,
                                        bool failed, long long now, long long *search)
{
    KEEL_ASSERT(st != NULL);
    keel_status s = gate__store_begin(st);
    char idtext[32];
    (void)snprintf(idtext, sizeof(idtext), "%lld", build);
    if (keel_ok(s))
        s = end_locked(st, build, abandoned, failed, now, search);
    /* its result in the history: the post row of its commit (not one the post level runs) */
    if (keel_ok(s) && !abandoned)
        s = exec_sql(st,
                     "UPDATE post_results SET state = 'done', runs = runs + 1, fails = fails + "
                     "?3, updated_at = ?2 WHERE state != 'running' AND (target, commit_id, "
                     "config) = (SELECT s.target, r.commit_id, s.config FROM culprit_builds b "
                     "JOIN culprit_searches s ON s.id = b.search JOIN culprit_range r ON "
                     "r.search = b.search AND r.idx = b.idx WHERE b.id = CAST(?1 AS INTEGER))",
                     idtext, now, failed ? 1 : 0, "cannot record a search's build in the history",
                     NULL);
    return gate__store_finish(st, s);
}

keel_status gate_store_search_recover(gate_store *st, const char *target, size_t *n)
{
    KEEL_ASSERT(st != NULL && target != NULL && n != NULL);
    *n = 0;
    long long builds[64];
    size_t k = 0;
    keel_status s;
    do { /* in batches: each end takes its search's next number */
        s = ids_of(st,
                   "SELECT b.id FROM culprit_builds b JOIN culprit_searches s ON s.id = b.search "
                   "WHERE s.target = ?1 AND b.state = 'running' ORDER BY b.id",
                   target, builds, 64, &k, "cannot read the running searches' builds");
        for (size_t i = 0; keel_ok(s) && i < k; i++) {
            s = gate__store_begin(st);
            if (keel_ok(s))
                s = end_locked(st, builds[i], true, false, 0, NULL);
            s = gate__store_finish(st, s);
            *n += keel_ok(s);
        }
    } while (keel_ok(s) && k == 64);
    return s;
}

keel_status gate_store_search_set(gate_store *st, long long id, const char *state,
                                  const char *culprit, const char *evidence, bool suspected,
                                  const char *kind, const char *detail, long long now)
{
    KEEL_ASSERT(st != NULL && state != NULL);
    keel_status s = gate__store_begin(st);
    sqlite3_stmt *stmt = NULL;
    if (keel_ok(s))
        s = gate__store_prepare(st,
                                "UPDATE culprit_searches SET state = ?1, culprit = ?2, evidence "
                                "= ?3, told_suspected = told_suspected OR ?4, updated_at = ?5 "
                                "WHERE id = ?6",
                                &stmt);
    if (keel_ok(s)) {
        bind_text(stmt, 1, state);
        bind_text(stmt, 2, culprit);
        bind_text(stmt, 3, evidence);
        (void)sqlite3_bind_int(stmt, 4, suspected ? 1 : 0);
        (void)sqlite3_bind_int64(stmt, 5, now);
        (void)sqlite3_bind_int64(stmt, 6, id);
        s = gate__store_step_done(st, stmt, "cannot record a search's state");
    }
    if (keel_ok(s) && kind != NULL)
        s = gate__store_event_locked(st, now, kind, 0, detail != NULL ? detail : "{}");
    return gate__store_finish(st, s);
}

keel_status gate_store_search_handed(gate_store *st, long long id)
{
    KEEL_ASSERT(st != NULL);
    return exec_sql(st, "UPDATE culprit_searches SET handed = 1 WHERE id = ?2", NULL, id, 0,
                    "cannot record a culprit handed to the backout", NULL);
}

keel_status gate_store_flake_rate(gate_store *st, const char *target, const char *config,
                                  double *rate, unsigned long long *runs)
{
    KEEL_ASSERT(st != NULL && target != NULL && config != NULL && rate != NULL && runs != NULL);
    *rate = 0;
    *runs = 0;
    sqlite3_stmt *stmt = NULL;
    /* a failed attempt of a candidate that passed was a flake; the post and nightly levels:
       the failures of their flaky rows */
    keel_status s = gate__store_prepare(
        st,
        "SELECT (SELECT count(*) FROM jobs j JOIN candidates c ON c.id = j.candidate WHERE "
        "c.target = ?1 AND j.config = ?2 AND j.state = 'failed' AND EXISTS (SELECT 1 FROM jobs "
        "k WHERE k.candidate = j.candidate AND k.config = j.config AND k.state = 'passed')), "
        "(SELECT count(*) FROM jobs j JOIN candidates c ON c.id = j.candidate WHERE c.target = "
        "?1 AND j.config = ?2 AND j.state IN ('passed', 'failed')), (SELECT "
        "coalesce(sum(CASE WHEN fails < runs THEN fails ELSE 0 END), 0) FROM post_results "
        "WHERE target = ?1 AND config = ?2 AND state = 'done'), (SELECT coalesce(sum(runs), 0) "
        "FROM post_results WHERE target = ?1 AND config = ?2 AND state = 'done'), (SELECT "
        "coalesce(sum(CASE WHEN fails < runs THEN fails ELSE 0 END), 0) FROM nightly_runs "
        "WHERE target = ?1 AND config = ?2 AND state = 'done'), (SELECT coalesce(sum(runs), 0) "
        "FROM nightly_runs WHERE target = ?1 AND config = ?2 AND state = 'done')",
        &stmt);
    if (!keel_ok(s))
        return s;
    bind_text(stmt, 1, target);
    bind_text(stmt, 2, config);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        long long flakes = sqlite3_column_int64(stmt, 0) + sqlite3_column_int64(stmt, 2) +
                           sqlite3_column_int64(stmt, 4);
        long long all = sqlite3_column_int64(stmt, 1) + sqlite3_column_int64(stmt, 3) +
                        sqlite3_column_int64(stmt, 5);
        *runs = all > 0 ? (unsigned long long)all : 0;
        *rate = all > 0 ? (double)flakes / (double)all : 0;
    } else {
        s = gate__store_error(st, rc, "cannot measure a configuration's flake rate");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}

keel_status gate_store_change_of_head(gate_store *st, const char *target, const char *head,
                                      long long *id, char branch[GATE_NAME_MAX])
{
    KEEL_ASSERT(st != NULL && target != NULL && head != NULL && id != NULL && branch != NULL);
    *id = 0;
    branch[0] = '\0';
    sqlite3_stmt *stmt = NULL;
    keel_status s = gate__store_prepare(st,
                                        "SELECT id, branch FROM changes WHERE target = ?1 AND "
                                        "head = ?2 AND state = 'landed' ORDER BY id DESC LIMIT 1",
                                        &stmt);
    if (!keel_ok(s))
        return s;
    bind_text(stmt, 1, target);
    bind_text(stmt, 2, head);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(stmt, 0);
        gate__store_copy_text(branch, GATE_NAME_MAX, sqlite3_column_text(stmt, 1));
    } else if (rc != SQLITE_DONE) {
        s = gate__store_error(st, rc, "cannot read the change of a merge");
    }
    (void)sqlite3_finalize(stmt);
    return s;
}
