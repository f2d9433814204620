/*
 * test_gate_store.c - keel-gate's durable store: the queue, priorities with
 * aging, candidates and jobs, the endings of flakes, and recovery after a kill -9.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "store.h"
#include "store_nightly.h"
#include "store_post.h"

static const char oid_a[] = "1111111111111111111111111111111111111111";
static const char oid_b[] = "2222222222222222222222222222222222222222";
static const char oid_c[] = "3333333333333333333333333333333333333333";
static const char oid_m[] = "abcdefabcdefabcdefabcdefabcdefabcdefabcd";

static char dir[64];
static char db_path[128];

static int setup(void **state)
{
    (void)state;
    (void)snprintf(dir, sizeof(dir), "/tmp/keel-store-XXXXXX");
    assert_non_null(mkdtemp(dir));
    (void)snprintf(db_path, sizeof(db_path), "%s/gate.db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[160];
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        (void)snprintf(p, sizeof(p), "%s%s", db_path, suffixes[i]);
        (void)unlink(p);
    }
    (void)rmdir(dir);
    return 0;
}

static gate_store *open_store(void)
{
    gate_store *st = NULL;
    keel_status s = gate_store_open(db_path, &st);
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        fail();
    }
    return st;
}

static long long submit(gate_store *st, const char *branch, const char *head, int prio,
                        long long now)
{
    long long id = 0;
    keel_status s = gate_store_submit(st, branch, head, "main", prio, now, &id);
    assert_true(keel_ok(s));
    assert_true(id > 0);
    return id;
}

static void test_submit_and_get(void **state)
{
    (void)state;
    gate_store *st = open_store();
    long long id = submit(st, "feature/x", oid_a, 0, 100);
    gate_change c;
    assert_true(keel_ok(gate_store_get(st, id, &c)));
    assert_string_equal(c.branch, "feature/x");
    assert_string_equal(c.head, oid_a);
    assert_string_equal(c.target, "main");
    assert_int_equal(c.state, GATE_CHANGE_QUEUED);
    assert_int_equal(c.submitted_at, 100);
    /* the same branch again while it is active: refused, naming the active change */
    long long id2 = 0;
    keel_status s = gate_store_submit(st, "feature/x", oid_b, "main", 0, 101, &id2);
    assert_true(KEEL_IS(s, KEEL_E_EXISTS));
    long long active = 0;
    assert_true(keel_status_get_int(s, "change", &active));
    assert_int_equal(active, id);
    keel_status_free(s);
    /* bad input: not a commit id, empty branch */
    s = gate_store_submit(st, "b", "not-an-oid; rm -rf /", "main", 0, 1, &id2);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
    s = gate_store_submit(st, "", oid_a, "main", 0, 1, &id2);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
    s = gate_store_get(st, 999, &c);
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND));
    keel_status_free(s);
    gate_store_close(st);
}

static void test_priority_with_aging(void **state)
{
    (void)state;
    gate_store *st = open_store();
    long long old_low = submit(st, "old-low", oid_a, 0, 0);     /* waited 1000 s */
    long long new_high = submit(st, "new-high", oid_b, 5, 990); /* priority 5, waited 10 s */
    long long new_low = submit(st, "new-low", oid_c, 0, 995);
    gate_change q[8];
    size_t n = 0;
    /* without aging (a huge period), priority decides */
    assert_true(keel_ok(gate_store_queued(st, "main", 1000, 0, q, 8, &n)));
    assert_int_equal(n, 3);
    assert_int_equal(q[0].id, new_high);
    assert_int_equal(q[1].id, old_low);
    assert_int_equal(q[2].id, new_low);
    /* one point per 100 s waited: the old change (0 + 10) passes the new one (5 + 0) */
    assert_true(keel_ok(gate_store_queued(st, "main", 1000, 100, q, 8, &n)));
    assert_int_equal(q[0].id, old_low);
    assert_int_equal(q[1].id, new_high);
    /* max is respected */
    assert_true(keel_ok(gate_store_queued(st, "main", 1000, 100, q, 1, &n)));
    assert_int_equal(n, 1);
    gate_store_close(st);
}

static void test_cancel_and_states(void **state)
{
    (void)state;
    gate_store *st = open_store();
    long long id = submit(st, "c", oid_a, 0, 1);
    assert_true(keel_ok(gate_store_cancel(st, id, 2)));
    gate_change c;
    assert_true(keel_ok(gate_store_get(st, id, &c)));
    assert_int_equal(c.state, GATE_CHANGE_CANCELLED);
    keel_status s = gate_store_cancel(st, id, 3);
    assert_true(KEEL_IS(s, KEEL_E_STATE));
    assert_string_equal(keel_status_get_str(s, "state"), "cancelled");
    keel_status_free(s);
    /* once cancelled, the branch may be submitted again */
    long long again = submit(st, "c", oid_b, 0, 4);
    assert_true(again != id);
    long long events = 0;
    assert_true(keel_ok(gate_store_count_events(st, "submit", &events)));
    assert_int_equal(events, 2);
    assert_true(keel_ok(gate_store_count_events(st, "cancelled", &events)));
    assert_int_equal(events, 1);
    gate_store_close(st);
}

/*
 * A rejection taken back (gate_store_reopen): a rejected change is queued
 * again with the evidence, a "reopened" event recording it; not one that is
 * not rejected (queued, or reopened already), nor one whose branch was
 * submitted again since (the newer change stands): KEEL_E_STATE, nothing
 * changed.
 */
static void test_reopen(void **state)
{
    (void)state;
    gate_store *st = open_store();
    long long a = submit(st, "a", oid_a, 0, 1), b = submit(st, "b", oid_b, 0, 2);
    keel_status s = gate_store_reopen(st, a, "why", "{}", 3);
    assert_true(KEEL_IS(s, KEEL_E_STATE)); /* queued: nothing to take back */
    keel_status_free(s);
    assert_true(keel_ok(gate_store_set_state(st, a, GATE_CHANGE_REJECTED, "failed", 4)));
    assert_true(keel_ok(gate_store_set_state(st, b, GATE_CHANGE_REJECTED, "failed", 4)));
    assert_true(keel_ok(gate_store_reopen(
        st, a, "reopened: a flake's ending",
        "{\"job\":7,\"reason\":\"reopened: a flake's ending\",\"was\":\"failed\"}", 5)));
    gate_change c;
    assert_true(keel_ok(gate_store_get(st, a, &c)));
    assert_int_equal(c.state, GATE_CHANGE_QUEUED);
    assert_string_equal(c.reason, "reopened: a flake's ending");
    gate_change q[4];
    size_t n = 0;
    assert_true(keel_ok(gate_store_queued(st, "main", 6, 0, q, 4, &n)));
    assert_int_equal(n, 1);
    assert_int_equal(q[0].id, a);
    long long events = 0;
    assert_true(keel_ok(gate_store_count_events(st, "reopened", &events)));
    assert_int_equal(events, 1);
    s = gate_store_reopen(st, a, "again", "{}", 6); /* queued again already */
    assert_true(KEEL_IS(s, KEEL_E_STATE));
    keel_status_free(s);
    /* b's author submitted it again meanwhile: the newer one stands */
    long long b2 = submit(st, "b", oid_c, 0, 7);
    s = gate_store_reopen(st, b, "why", "{}", 8);
    assert_true(KEEL_IS(s, KEEL_E_STATE));
    char msg[256];
    (void)keel_status_format(s, msg, sizeof(msg));
    assert_non_null(strstr(msg, "was submitted again since"));
    keel_status_free(s);
    assert_true(keel_ok(gate_store_get(st, b, &c)));
    assert_int_equal(c.state, GATE_CHANGE_REJECTED);
    assert_true(keel_ok(gate_store_get(st, b2, &c)));
    assert_int_equal(c.state, GATE_CHANGE_QUEUED);
    assert_true(keel_ok(gate_store_count_events(st, "reopened", &events)));
    assert_int_equal(events, 1);
    /*
     * the hook's feed, heard after the reopening: a's rejection with the reason it had then (the
     * reopening's "was"), its reopening with the evidence and no merge; b's with its own
     */
    static gate_notice nt[8];
    n = 0;
    assert_true(keel_ok(gate_store_notify_next(st, "main", nt, 8, &n)));
    assert_int_equal(n, 3);
    assert_string_equal(nt[0].event, "reject");
    assert_int_equal(nt[0].change, a);
    assert_string_equal(nt[0].reason, "failed");
    assert_string_equal(nt[1].event, "reject");
    assert_int_equal(nt[1].change, b);
    assert_string_equal(nt[1].reason, "failed");
    assert_string_equal(nt[2].event, "reopen");
    assert_int_equal(nt[2].change, a);
    assert_string_equal(nt[2].reason, "reopened: a flake's ending");
    assert_string_equal(nt[2].merge, "");
    gate_store_close(st);
}

static long long sql_int(const char *text);

/* What gate_store_watched gave, in its order. */
typedef struct watched_seen {
    size_t n;
    long long change[8];
    char config[8][16];
    unsigned long long signature[8];
    long long job[8];
    unsigned runs[8], failures[8];
} watched_seen;

static keel_status see_watched(void *arg, const gate_watched_rejection *w)
{
    watched_seen *seen = (watched_seen *)arg;
    assert_true(seen->n < 8);
    size_t i = seen->n++;
    seen->change[i] = w->change;
    (void)snprintf(seen->config[i], sizeof(seen->config[i]), "%s", w->config);
    seen->signature[i] = w->signature;
    seen->job[i] = w->job;
    seen->runs[i] = w->runs;
    seen->failures[i] = w->failures;
    return KEEL_OK;
}

/*
 * The watched rejections (gate_store_watch_put, gate_store_watched): the
 * newest `keep` per target, the oldest listed first, all 64 bits of the
 * signature; only changes still rejected are listed; a change written again
 * is the newest; reopening the change forgets its row.
 */
static void test_watched_rejections(void **state)
{
    (void)state;
    gate_store *st = open_store();
    long long id[4];
    for (int i = 0; i < 4; i++) {
        id[i] = submit(st, i == 3 ? "d" : i == 2 ? "c" : i == 1 ? "b" : "a", oid_a, 0, i);
        assert_true(keel_ok(gate_store_set_state(st, id[i], GATE_CHANGE_REJECTED, "failed", 5)));
    }
    static const unsigned long long sig[] = {7, 0x8000000000000001ull, 9, 11};
    for (int i = 0; i < 4; i++) {
        gate_watched_rejection w = {id[i], i == 1 ? "b" : "unit", sig[i], 100 + i, 2, 2};
        assert_true(keel_ok(gate_store_watch_put(st, "main", &w, 3, 6 + i)));
    }
    gate_watched_rejection other = {99, "unit", 5, 1, 2, 2}; /* another target's: not listed */
    assert_true(keel_ok(gate_store_watch_put(st, "next", &other, 3, 10)));
    watched_seen seen;
    memset(&seen, 0, sizeof(seen));
    assert_true(keel_ok(gate_store_watched(st, "main", 8, see_watched, &seen)));
    assert_int_equal(seen.n, 3); /* keep 3: a's went */
    assert_int_equal(seen.change[0], id[1]);
    assert_string_equal(seen.config[0], "b");
    assert_true(seen.signature[0] == 0x8000000000000001ull);
    assert_int_equal(seen.job[0], 101);
    assert_int_equal(seen.runs[0], 2);
    assert_int_equal(seen.failures[0], 2);
    assert_int_equal(seen.change[2], id[3]);
    /* b written again: the newest; max 2: the newest two */
    gate_watched_rejection again = {id[1], "b", 13, 200, 3, 3};
    assert_true(keel_ok(gate_store_watch_put(st, "main", &again, 3, 11)));
    memset(&seen, 0, sizeof(seen));
    assert_true(keel_ok(gate_store_watched(st, "main", 2, see_watched, &seen)));
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.change[0], id[3]);
    assert_int_equal(seen.change[1], id[1]);
    assert_true(seen.signature[1] == 13);
    /* c reopened: its row goes; d no longer rejected (a reopen refused elsewhere): not listed */
    assert_true(keel_ok(gate_store_reopen(st, id[2], "reopened", "{}", 12)));
    char query[96];
    (void)snprintf(query, sizeof(query),
                   "SELECT count(*) FROM watched_rejections WHERE change = %lld", id[2]);
    assert_int_equal(sql_int(query), 0);
    assert_true(keel_ok(gate_store_reopen(st, id[3], "reopened", "{}", 12)));
    memset(&seen, 0, sizeof(seen));
    assert_true(keel_ok(gate_store_watched(st, "main", 8, see_watched, &seen)));
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.change[0], id[1]);
    /* b submitted again: its rejection stands for nothing now (a reopen would be refused) */
    (void)submit(st, "b", oid_b, 0, 13);
    memset(&seen, 0, sizeof(seen));
    assert_true(keel_ok(gate_store_watched(st, "main", 8, see_watched, &seen)));
    assert_int_equal(seen.n, 0);
    gate_store_close(st);
}

static void test_candidate_and_jobs(void **state)
{
    (void)state;
    gate_store *st = open_store();
    long long ids[2] = {submit(st, "a", oid_a, 0, 1), submit(st, "b", oid_b, 0, 2)};
    long long cand = 0;
    assert_true(keel_ok(gate_store_candidate_new(st, "main", oid_c, ids, 2, 3, &cand)));
    gate_change c;
    assert_true(keel_ok(gate_store_get(st, ids[1], &c)));
    assert_int_equal(c.state, GATE_CHANGE_TESTING);
    assert_int_equal(c.candidate, cand);
    /* a change already in a candidate cannot join another: nothing of it is recorded */
    long long other = 0;
    keel_status s = gate_store_candidate_new(st, "main", oid_c, ids, 1, 4, &other);
    assert_true(KEEL_IS(s, KEEL_E_STATE));
    keel_status_free(s);
    gate_change q[4];
    size_t n = 9;
    assert_true(keel_ok(gate_store_queued(st, "main", 5, 0, q, 4, &n)));
    assert_int_equal(n, 0);
    assert_true(keel_ok(gate_store_candidate_set_merge(st, cand, oid_m)));
    long long job = 0;
    assert_true(keel_ok(gate_store_job_start(st, cand, "gcc-devel", 1, 5, &job)));
    gate_job_timing t = {1200, 2.0, 0.0};
    assert_true(keel_ok(gate_store_job_finish(st, job, "passed", 0, "/logs/1.log", &t, 6)));
    /* a result recorded twice is refused, not overwritten */
    t.elapsed_ms = 5;
    s = gate_store_job_finish(st, job, "failed", 1, "/logs/1.log", &t, 7);
    assert_true(KEEL_IS(s, KEEL_E_STATE));
    keel_status_free(s);
    assert_true(keel_ok(gate_store_candidate_finish(st, cand, "passed", 8)));
    gate_store_close(st);
}

/* What gate_store_job_timings gave, in its order. */
typedef struct timings_seen {
    size_t n;
    char config[8][16];
    bool passed[8];
    gate_job_timing t[8];
} timings_seen;

static keel_status see_timing(void *arg, const char *config, bool passed, const gate_job_timing *t)
{
    timings_seen *seen = (timings_seen *)arg;
    assert_true(seen->n < 8);
    (void)snprintf(seen->config[seen->n], sizeof(seen->config[0]), "%s", config);
    seen->passed[seen->n] = passed;
    seen->t[seen->n++] = *t;
    return KEEL_OK;
}

/*
 * The timings of a target's newest jobs that ran their course with their
 * load known, oldest first: not a timeout, not a job still running, not one
 * of another target, not one whose load is unknown (a job of an older store,
 * the configuration's failure that ran no step).
 */
static void test_job_timings(void **state)
{
    (void)state;
    gate_store *st = open_store();
    long long ids[2] = {submit(st, "a", oid_a, 0, 1), submit(st, "b", oid_b, 0, 2)};
    long long cand = 0, other = 0, job = 0;
    assert_true(keel_ok(gate_store_candidate_new(st, "main", oid_c, ids, 1, 3, &cand)));
    assert_true(keel_ok(gate_store_candidate_new(st, "release", oid_c, ids + 1, 1, 3, &other)));
    static const struct {
        int which; /* 0: main's candidate, 1: release's */
        const char *config, *result;
        gate_job_timing t;
    } jobs[] = {
        {0, "gcc", "passed", {1000, 2.0, 0.5}},   {0, "clang", "failed", {100, 1.5, 0.0}},
        {0, "gcc", "timeout", {9000, 2.0, 0.0}},  {1, "gcc", "passed", {800, 1.0, 0.0}},
        {0, "gcc", "failed", {1200, 0.0, 0.0}}, /* load unknown */
        {0, "clang", "passed", {1500, 3.0, 1.0}}, {0, "gcc", "passed", {1100, 1.0, 0.0}},
        {0, "gcc", NULL, {0, 0.0, 0.0}}, /* still running */
    };
    for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
        assert_true(keel_ok(
            gate_store_job_start(st, jobs[i].which ? other : cand, jobs[i].config, 1, 4, &job)));
        if (jobs[i].result != NULL)
            assert_true(
                keel_ok(gate_store_job_finish(st, job, jobs[i].result, 0, "", &jobs[i].t, 5)));
    }
    timings_seen seen;
    memset(&seen, 0, sizeof(seen));
    assert_true(keel_ok(gate_store_job_timings(st, "main", 8, see_timing, &seen)));
    assert_int_equal(seen.n, 4);
    static const char *const configs[] = {"gcc", "clang", "clang", "gcc"};
    static const long long ms[] = {1000, 100, 1500, 1100};
    static const double load[] = {2.0, 1.5, 3.0, 1.0}, others[] = {0.5, 0.0, 1.0, 0.0};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(seen.config[i], configs[i]);
        assert_int_equal(seen.t[i].elapsed_ms, ms[i]);
        assert_true(seen.t[i].load == load[i] && seen.t[i].others == others[i]);
        assert_int_equal(seen.passed[i], i != 1);
    }
    /* the newest two, still oldest first */
    memset(&seen, 0, sizeof(seen));
    assert_true(keel_ok(gate_store_job_timings(st, "main", 2, see_timing, &seen)));
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.t[0].elapsed_ms, 1500);
    assert_int_equal(seen.t[1].elapsed_ms, 1100);
    memset(&seen, 0, sizeof(seen));
    assert_true(keel_ok(gate_store_job_timings(st, "release", 8, see_timing, &seen)));
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.t[0].elapsed_ms, 800);
    gate_store_close(st);
}

/* What gate_store_flaky_endings gave, in its order. */
typedef struct flaky_seen {
    size_t n;
    char config[80][16];
    unsigned long long sig[80];
    long long seen_at[80];
} flaky_seen;

static keel_status see_flaky(void *arg, const gate_flaky_ending *e)
{
    flaky_seen *seen = (flaky_seen *)arg;
    assert_true(seen->n < 80);
    (void)snprintf(seen->config[seen->n], sizeof(seen->config[0]), "%s", e->config);
    seen->sig[seen->n] = e->signature;
    seen->seen_at[seen->n++] = e->seen_at;
    return KEEL_OK;
}

/* The endings of target's flakes the store gives, at most `max`. */
static flaky_seen flaky_of(gate_store *st, const char *target, size_t max)
{
    flaky_seen seen;
    memset(&seen, 0, sizeof(seen));
    keel_status s = gate_store_flaky_endings(st, target, max, see_flaky, &seen);
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        fail();
    }
    return seen;
}

static void put_flaky(gate_store *st, const char *target, const gate_flaky_ending *e, size_t n,
                      long long now)
{
    keel_status s = gate_store_flaky_put(st, target, e, n, 64, now);
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        fail();
    }
}

/* One integer from the store, SQLite directly. */
static long long sql_int(const char *text)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, text, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    long long v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return v;
}

static const unsigned long long top_bit = 0x8000000000000000ull, all_bits = ~0ull;

/*
 * The endings of flakes per target: the oldest first, every bit of a
 * signature kept (those with the top bit set are negative in SQLite, not
 * cut or rounded), one written again the newest, at most the newest 64 of
 * a target whatever another target holds.
 */
static void test_flaky_endings(void **state)
{
    (void)state;
    gate_store *st = open_store();
    assert_int_equal(flaky_of(st, "main", 64).n, 0);
    const gate_flaky_ending first[] = {
        {"unit", top_bit, 0}, {"unit", all_bits, 0}, {"b", top_bit, 0}, {"unit", 1, 0}};
    put_flaky(st, "main", first, 4, 10);
    const gate_flaky_ending other[] = {{"unit", top_bit, 0}};
    put_flaky(st, "release", other, 1, 11);
    flaky_seen got = flaky_of(st, "main", 64);
    assert_int_equal(got.n, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(got.config[i], first[i].config);
        assert_true(got.sig[i] == first[i].signature);
        assert_int_equal(got.seen_at[i], 10);
    }
    assert_int_equal(sql_int("SELECT count(*) FROM flaky_endings WHERE signature < 0"), 4);
    assert_int_equal(sql_int("SELECT signature FROM flaky_endings WHERE config = 'unit' AND "
                             "target = 'main' AND signature < 0 ORDER BY id DESC LIMIT 1"),
                     -1);
    /* seen again: the newest, when it was now */
    put_flaky(st, "main", first, 1, 20);
    got = flaky_of(st, "main", 64);
    assert_int_equal(got.n, 4);
    assert_true(got.sig[0] == all_bits && got.sig[3] == top_bit);
    assert_string_equal(got.config[3], "unit");
    assert_int_equal(got.seen_at[3], 20);
    /* the newest 2, still the oldest first */
    got = flaky_of(st, "main", 2);
    assert_int_equal(got.n, 2);
    assert_true(got.sig[0] == 1 && got.sig[1] == top_bit);
    /* 70 more of main, 7 at a time: the newest 64 stay, release's one is its own */
    gate_flaky_ending more[70];
    for (size_t i = 0; i < 70; i++) {
        more[i].config = i % 2 == 0 ? "unit" : "b";
        more[i].signature = top_bit + 1000 + i;
        more[i].seen_at = 0;
    }
    for (size_t i = 0; i < 70; i += 7)
        put_flaky(st, "main", more + i, 7, 30 + (long long)i);
    got = flaky_of(st, "main", 80);
    assert_int_equal(got.n, 64);
    for (size_t i = 0; i < 64; i++) {
        assert_string_equal(got.config[i], more[i + 6].config);
        assert_true(got.sig[i] == more[i + 6].signature);
    }
    assert_int_equal(sql_int("SELECT count(*) FROM flaky_endings WHERE target = 'main'"), 64);
    got = flaky_of(st, "release", 64);
    assert_int_equal(got.n, 1);
    assert_true(got.sig[0] == top_bit);
    assert_int_equal(got.seen_at[0], 11);
    gate_store_close(st);
}

#if KEEL_DEVEL
/*
 * The write of the endings fails (gate_store.flaky_full, this write only):
 * KEEL_E_FULL naming it, nothing of it kept, what was there as it was, and
 * the store takes the next write.
 */
static void test_flaky_endings_write_fails(void **state)
{
    (void)state;
    gate_store *st = open_store();
    const gate_flaky_ending e[] = {{"unit", 7, 0}, {"unit", all_bits, 0}, {"b", 7, 0}};
    put_flaky(st, "main", e, 2, 10);
    assert_true(keel_ok(keel_stress_enable("gate_store.flaky_full:nth=1")));
    keel_status s = gate_store_flaky_put(st, "main", e + 1, 2, 64, 20);
    keel_stress_clear();
    char msg[1024];
    (void)keel_status_format(s, msg, sizeof(msg));
    if (!KEEL_IS(s, KEEL_E_FULL) ||
        strstr(msg, "recording the endings of the flakes of 'main'") == NULL)
        fail_msg("expected the store's full disk: %s", msg);
    keel_status_free(s);
    flaky_seen got = flaky_of(st, "main", 64);
    assert_int_equal(got.n, 2);
    assert_true(got.sig[0] == 7 && got.sig[1] == all_bits);
    assert_int_equal(got.seen_at[1], 10);
    put_flaky(st, "main", e + 1, 2, 20);
    got = flaky_of(st, "main", 64);
    assert_int_equal(got.n, 3);
    assert_string_equal(got.config[2], "b");
    assert_int_equal(got.seen_at[1], 20);
    (void)submit(st, "a", oid_a, 0, 21); /* no transaction left open */
    gate_store_close(st);
}
#endif

/* A child queues and starts testing, then dies by SIGKILL mid-way; the parent recovers. */
static void test_recover_after_kill(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gate_store *st = NULL;
        if (!keel_ok(gate_store_open(db_path, &st)))
            _exit(3);
        long long ids[2] = {0, 0};
        long long cand = 0, job = 0, lone = 0;
        if (!keel_ok(gate_store_submit(st, "a", oid_a, "main", 0, 1, &ids[0])) ||
            !keel_ok(gate_store_submit(st, "b", oid_b, "main", 0, 1, &ids[1])) ||
            !keel_ok(gate_store_submit(st, "lone", oid_c, "main", 0, 1, &lone)) ||
            !keel_ok(gate_store_candidate_new(st, "main", oid_c, ids, 2, 2, &cand)) ||
            !keel_ok(gate_store_candidate_set_merge(st, cand, oid_m)) ||
            !keel_ok(gate_store_job_start(st, cand, "gcc-devel", 1, 3, &job)))
            _exit(4);
        /* killed with the job still running */
        (void)raise(SIGKILL); /* and if it is not killed: */
        _exit(5);             // cppcheck-suppress unreachableCode
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    gate_store *st = open_store();
    gate_recovery rec;
    assert_true(keel_ok(gate_store_recover(st, "main", NULL, NULL, true, 10, &rec)));
    assert_int_equal(rec.requeued, 2);
    assert_int_equal(rec.lost_jobs, 1);
    assert_int_equal(rec.crashed, 2); /* its job was running: one crash each */
    gate_change q[8];
    size_t n = 0;
    assert_true(keel_ok(gate_store_queued(st, "main", 10, 0, q, 8, &n)));
    assert_int_equal(n, 3); /* nothing lost */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(q[i].candidate, 0);
    long long recovers = 0;
    assert_true(keel_ok(gate_store_count_events(st, "recover", &recovers)));
    assert_int_equal(recovers, 1);
    gate_store_close(st);
}

/* The recovery's question, answered for one merge: the target holds oid_m. */
static keel_status holds_m(const char *merge, void *ctx, bool *landed)
{
    (void)ctx;
    *landed = strcmp(merge, oid_m) == 0;
    return KEEL_OK;
}

/* If the target already holds a candidate's merge, recovery lands its changes. */
static void test_recover_landed_candidate(void **state)
{
    (void)state;
    gate_store *st = open_store();
    long long ids[1] = {submit(st, "a", oid_a, 0, 1)};
    long long waiting = submit(st, "w", oid_b, 0, 1);
    long long cand = 0;
    assert_true(keel_ok(gate_store_candidate_new(st, "main", oid_c, ids, 1, 2, &cand)));
    assert_true(keel_ok(gate_store_candidate_set_merge(st, cand, oid_m)));
    gate_store_close(st);
    st = open_store();
    gate_recovery rec;
    assert_true(keel_ok(gate_store_recover(st, "main", holds_m, NULL, true, 10, &rec)));
    assert_int_equal(rec.requeued, 0);
    assert_int_equal(rec.landed, 1);
    gate_change c;
    assert_true(keel_ok(gate_store_get(st, ids[0], &c)));
    assert_int_equal(c.state, GATE_CHANGE_LANDED);
    assert_true(keel_ok(gate_store_get(st, waiting, &c)));
    assert_int_equal(c.state, GATE_CHANGE_QUEUED);
    gate_store_close(st);
}

static void test_open_bad_path(void **state)
{
    (void)state;
    gate_store *st = NULL;
    keel_status s = gate_store_open("/nonexistent-dir/x/gate.db", &st);
    assert_true(KEEL_IS(s, KEEL_E_IO));
    assert_null(st);
    char msg[512];
    (void)keel_status_format(s, msg, sizeof(msg));
    assert_non_null(strstr(msg, "store '/nonexistent-dir/x/gate.db'"));
    keel_status_free(s);
}

/* Open must fail with `code`, the message holding `want`, and leave the file as it was. */
static void assert_refused(keel_code code, const char *want)
{
    struct stat before, after;
    assert_int_equal(stat(db_path, &before), 0);
    gate_store *st = NULL;
    keel_status s = gate_store_open(db_path, &st);
    assert_null(st);
    char msg[1024];
    (void)keel_status_format(s, msg, sizeof(msg));
    if (!KEEL_IS(s, code) || strstr(msg, want) == NULL)
        fail_msg("expected code %d and '%s': %s", (int)code, want, msg);
    keel_status_free(s);
    assert_int_equal(stat(db_path, &after), 0);
    assert_int_equal(before.st_size, after.st_size); /* never made into an empty store */
}

static void write_file(const char *text)
{
    size_t len = strlen(text);
    FILE *f = fopen(db_path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void sql(const char *text)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, text, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", text, err);
    sqlite3_close(db);
}

/* A store truncated to 0 bytes is not an empty queue (the old code opened it as one). */
static void test_open_truncated_store(void **state)
{
    (void)state;
    gate_store *st = open_store();
    (void)submit(st, "a", oid_a, 0, 1);
    gate_store_close(st);
    assert_int_equal(truncate(db_path, 0), 0);
    assert_refused(KEEL_E_PARSE, "is empty (0 bytes): it is not the store it was");
}

/* Not a store: a text file, another program's SQLite database, a newer keel-gate's store. */
static void test_open_not_a_store(void **state)
{
    (void)state;
    write_file("hello, I am a text file and much longer than a header ought to be\n");
    assert_refused(KEEL_E_PARSE, "not an SQLite database");
    assert_int_equal(unlink(db_path), 0);
    sql("CREATE TABLE photos(id INTEGER PRIMARY KEY, path TEXT);");
    assert_refused(KEEL_E_PARSE, "is not a keel-gate store");
    assert_int_equal(unlink(db_path), 0);
    gate_store *st = open_store();
    gate_store_close(st);
    sql("PRAGMA user_version = 99;");
    assert_refused(KEEL_E_VERSION, "written by a newer keel-gate");
}

/* A store made by the previous keel-gate (schema 1, no application id) is upgraded, kept. */
static void test_old_store_upgraded(void **state)
{
    (void)state;
    sql("CREATE TABLE changes (id INTEGER PRIMARY KEY AUTOINCREMENT, branch TEXT NOT NULL, head "
        "TEXT NOT NULL, target TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0, submitted_at "
        "INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'queued', candidate INTEGER NOT NULL "
        "DEFAULT 0, reason TEXT NOT NULL DEFAULT '', updated_at INTEGER NOT NULL);"
        "CREATE TABLE candidates (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, "
        "base TEXT NOT NULL, merge TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT 'open', "
        "created_at INTEGER NOT NULL, finished_at INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE candidate_changes (candidate INTEGER NOT NULL, change INTEGER NOT NULL, "
        "position INTEGER NOT NULL, PRIMARY KEY (candidate, position));"
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, candidate INTEGER NOT NULL, "
        "config TEXT NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'running', "
        "exit_code INTEGER NOT NULL DEFAULT 0, log TEXT NOT NULL DEFAULT '', started_at INTEGER "
        "NOT NULL, finished_at INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, kind "
        "TEXT NOT NULL, change INTEGER NOT NULL DEFAULT 0, detail TEXT NOT NULL DEFAULT '{}');"
        "INSERT INTO changes(branch, head, target, submitted_at, updated_at) VALUES('old', "
        "'1111111111111111111111111111111111111111', 'main', 1, 1);"
        "INSERT INTO candidates(target, base, created_at) VALUES('main', 'x', 1);"
        "INSERT INTO candidate_changes VALUES(1, 1, 0);"
        "INSERT INTO jobs(candidate, config, attempt, state, started_at, finished_at) "
        "VALUES(1, 'unit', 1, 'failed', 5, 8);"
        "PRAGMA user_version = 1;");
    gate_store *st = open_store();
    gate_change q[4];
    size_t n = 0;
    assert_true(keel_ok(gate_store_queued(st, "main", 10, 0, q, 4, &n)));
    assert_int_equal(n, 1);
    assert_string_equal(q[0].branch, "old");
    assert_int_equal(q[0].crashes, 0);
    /* its job: how long it ran is unknown (-1), its seconds are kept */
    gate_job j[2];
    assert_true(keel_ok(gate_store_jobs(st, NULL, 1, j, 2, &n)));
    assert_int_equal(n, 1);
    assert_int_equal(j[0].elapsed_ms, -1);
    assert_int_equal(j[0].finished_at - j[0].started_at, 3);
    gate_store_close(st);
    st = open_store(); /* and it is now a store of this version */
    gate_store_close(st);
}

/*
 * The post level's records: commits in the order they reached the target,
 * the newest pending build first (superseding), a pass skipping the older
 * pending builds of its configuration and a failure not, a running build
 * pending again after a kill, the outcome of each row.
 */
static void test_post_records(void **state)
{
    (void)state;
    gate_store *st = open_store();
    static const char *const both[] = {"long", "slow"};
    static const char *const one[] = {"long"};
    char newest[GATE_OID_HEX];
    assert_true(keel_ok(gate_store_post_newest(st, "main", newest)));
    assert_string_equal(newest, "");
    assert_true(keel_ok(gate_store_post_add(st, "main", oid_a, "first", both, 2, 10)));
    assert_true(keel_ok(gate_store_post_add(st, "main", oid_b, "second", one, 1, 11)));
    assert_true(keel_ok(gate_store_post_add(st, "main", oid_c, "third", both, 2, 12)));
    assert_true(keel_ok(gate_store_post_add(st, "main", oid_b, "again", both, 2, 13))); /* kept */
    assert_true(keel_ok(gate_store_post_newest(st, "main", newest)));
    assert_string_equal(newest, oid_c);
    gate_post_row r;
    bool found = false;
    assert_true(keel_ok(gate_store_post_next(st, "main", &r, &found)));
    assert_true(found);
    assert_string_equal(r.commit, oid_c); /* newest first */
    assert_string_equal(r.config, "long");
    assert_string_equal(gate_post_outcome(&r), "not run");
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_c, "long", 20)));
    keel_status s = gate_store_post_start(st, "main", oid_c, "long", 20);
    assert_true(KEEL_IS(s, KEEL_E_STATE));
    keel_status_free(s);
    char was[GATE_POST_STATE_MAX];
    assert_true(keel_ok(gate_store_post_finish(st, "main", oid_c, "long", false, "l1", 21, was)));
    assert_string_equal(was, "");
    /* c passed "long": a and b's "long" are superseded; "slow" of c, then of a, remain */
    assert_true(keel_ok(gate_store_post_next(st, "main", &r, &found)));
    assert_string_equal(r.commit, oid_c);
    assert_string_equal(r.config, "slow");
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_c, "slow", 22)));
    assert_true(keel_ok(gate_store_post_finish(st, "main", oid_c, "slow", true, "l2", 23, was)));
    assert_true(keel_ok(gate_store_post_next(st, "main", &r, &found)));
    assert_true(found);
    assert_string_equal(r.commit, oid_a); /* a failure supersedes nothing */
    assert_string_equal(r.config, "slow");
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_a, "slow", 24)));
    gate_store_close(st); /* killed while it runs */
    st = open_store();
    size_t n = 0, superseded_n = 9;
    assert_true(keel_ok(gate_store_post_recover(st, "main", 24, &n, &superseded_n)));
    assert_int_equal(n, 1);
    assert_int_equal(superseded_n, 0); /* c failed "slow" */
    assert_true(keel_ok(gate_store_post_next(st, "main", &r, &found)));
    assert_string_equal(r.commit, oid_a);
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_a, "slow", 25)));
    bool superseded = true;
    assert_true(keel_ok(gate_store_post_unstart(st, "main", oid_a, "slow", 26, &superseded)));
    assert_false(superseded); /* c failed "slow" */
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_a, "slow", 26)));
    assert_true(keel_ok(gate_store_post_finish(st, "main", oid_a, "slow", false, "l3", 27, was)));
    assert_string_equal(was, "failed"); /* the newest done row of "slow" before: c's */
    assert_true(keel_ok(gate_store_post_next(st, "main", &r, &found)));
    assert_false(found);
    gate_post_row h[8];
    assert_true(keel_ok(gate_store_post_history(st, "main", NULL, h, 8, &n)));
    assert_int_equal(n, 5);
    assert_string_equal(h[0].commit, oid_c);
    assert_string_equal(gate_post_outcome(&h[0]), "passed"); /* long */
    assert_string_equal(gate_post_outcome(&h[1]), "failed"); /* slow */
    assert_string_equal(h[2].commit, oid_b);
    assert_string_equal(gate_post_outcome(&h[2]), "not run");
    assert_string_equal(h[2].subject, "second");
    assert_string_equal(gate_post_outcome(&h[4]), "passed"); /* a slow */
    assert_string_equal(h[4].log, "l3");
    assert_true(keel_ok(gate_store_post_history(st, "main", "slow", h, 8, &n)));
    assert_int_equal(n, 2);
    assert_true(keel_ok(gate_store_post_history(st, "other", NULL, h, 8, &n)));
    assert_int_equal(n, 0);
    gate_store_close(st);
}

/* A store with commits a, b, c of main (oldest first), each with a post row of 'long'. */
static gate_store *open_abc_long(void)
{
    gate_store *st = open_store();
    static const char *const one[] = {"long"};
    assert_true(keel_ok(gate_store_post_add(st, "main", oid_a, "a", one, 1, 10)));
    assert_true(keel_ok(gate_store_post_add(st, "main", oid_b, "b", one, 1, 11)));
    assert_true(keel_ok(gate_store_post_add(st, "main", oid_c, "c", one, 1, 12)));
    return st;
}

/*
 * Builds end in any order: a build cancelled (the queue needed its slot)
 * after a newer commit passed its configuration is superseded, as it would
 * have been had it still been pending then (not built again: its failure
 * would come after the newer pass); a newer failure supersedes nothing, nor
 * does a pass a row that ran before (a rerun keeps its history).
 */
static void test_post_cancelled_after_a_newer_pass(void **state)
{
    (void)state;
    gate_store *st = open_abc_long();
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_c, "long", 20)));
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_b, "long", 20)));
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_a, "long", 20)));
    char was[GATE_POST_STATE_MAX];
    assert_true(keel_ok(gate_store_post_finish(st, "main", oid_b, "long", true, "l1", 21, was)));
    bool superseded = true;
    assert_true(keel_ok(gate_store_post_unstart(st, "main", oid_a, "long", 22, &superseded)));
    assert_false(superseded); /* b failed: a is built again */
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_a, "long", 23)));
    assert_true(keel_ok(gate_store_post_finish(st, "main", oid_c, "long", false, "l2", 24, was)));
    assert_true(keel_ok(gate_store_post_unstart(st, "main", oid_a, "long", 25, &superseded)));
    assert_true(superseded); /* c passed while a ran */
    gate_post_row r;
    bool found = true;
    assert_true(keel_ok(gate_store_post_next(st, "main", &r, &found)));
    assert_false(found);
    gate_post_row h[3];
    size_t n = 0;
    assert_true(keel_ok(gate_store_post_history(st, "main", "long", h, 3, &n)));
    assert_int_equal(n, 3);
    assert_string_equal(h[2].commit, oid_a);
    assert_string_equal(h[2].state, "skipped");
    assert_string_equal(gate_post_outcome(&h[2]), "not run");
    /* b built again (its failure the oldest: a rerun keeps its runs) and cancelled: pending
       again, c's pass or not */
    char again[GATE_OID_HEX];
    assert_true(keel_ok(gate_store_post_again_base(st, "main", oid_b, "long", 3, 26, again)));
    assert_string_equal(again, oid_b);
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_b, "long", 27)));
    assert_true(keel_ok(gate_store_post_unstart(st, "main", oid_b, "long", 28, &superseded)));
    assert_false(superseded);
    assert_true(keel_ok(gate_store_post_next(st, "main", &r, &found)));
    assert_true(found);
    assert_string_equal(r.commit, oid_b);
    gate_store_close(st);
}

/*
 * kill -9 while builds run, then a new run: a running row is pending again,
 * unless it never ran and a newer commit passed its configuration while it
 * ran: superseded (skipped), by the rule of a cancelled one
 * (test_post_cancelled_after_a_newer_pass); a rerun is pending again.
 */
static void test_post_recovered_after_a_newer_pass(void **state)
{
    (void)state;
    gate_store *st = open_abc_long();
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_b, "long", 20)));
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_a, "long", 20)));
    char was[GATE_POST_STATE_MAX];
    assert_true(keel_ok(gate_store_post_finish(st, "main", oid_b, "long", true, "l1", 21, was)));
    gate_store_close(st); /* killed while a runs */
    st = open_store();
    size_t n = 0, superseded = 9;
    assert_true(keel_ok(gate_store_post_recover(st, "main", 22, &n, &superseded)));
    assert_int_equal(n, 1); /* b failed: a is built again */
    assert_int_equal(superseded, 0);
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_c, "long", 23)));
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_a, "long", 23)));
    assert_true(keel_ok(gate_store_post_finish(st, "main", oid_c, "long", false, "l2", 24, was)));
    gate_store_close(st); /* killed while a runs, after c passed */
    st = open_store();
    assert_true(keel_ok(gate_store_post_recover(st, "main", 25, &n, &superseded)));
    assert_int_equal(n, 0);
    assert_int_equal(superseded, 1);
    gate_post_row r;
    bool found = true;
    assert_true(keel_ok(gate_store_post_next(st, "main", &r, &found)));
    assert_false(found);
    gate_post_row h[3];
    assert_true(keel_ok(gate_store_post_history(st, "main", "long", h, 3, &n)));
    assert_int_equal(n, 3);
    assert_string_equal(h[2].commit, oid_a);
    assert_string_equal(h[2].state, "skipped");
    assert_int_equal(h[2].updated_at, 25);
    /* b built again (the red streak's oldest failure) and killed: pending again, c's pass or not */
    char again[GATE_OID_HEX];
    assert_true(keel_ok(gate_store_post_again_base(st, "main", oid_b, "long", 3, 26, again)));
    assert_string_equal(again, oid_b);
    assert_true(keel_ok(gate_store_post_start(st, "main", oid_b, "long", 27)));
    gate_store_close(st);
    st = open_store();
    assert_true(keel_ok(gate_store_post_recover(st, "main", 28, &n, &superseded)));
    assert_int_equal(n, 1);
    assert_int_equal(superseded, 0);
    assert_true(keel_ok(gate_store_post_next(st, "main", &r, &found)));
    assert_true(found);
    assert_string_equal(r.commit, oid_b);
    gate_store_close(st);
}

/*
 * Nightly runs end in any order: a run cancelled (the queue needed its slot)
 * or left running by a kill after a newer run of its configuration ended is
 * superseded (removed, as gate_store_nightly_finish drops the older pending
 * runs), not built again; one whose newer runs have not ended is pending
 * again.  A result is the newest unless a newer run is done.
 */
static void test_nightly_cancelled_after_a_newer_run(void **state)
{
    (void)state;
    gate_store *st = open_store();
    for (long long due = 100; due <= 600; due += 100) /* a run of main's head due at each */
        assert_true(keel_ok(gate_store_nightly_fire(st, "main", "long", due,
                                                    due < 300   ? oid_a
                                                    : due < 500 ? oid_b
                                                                : oid_c,
                                                    due + 100, due)));
    assert_true(keel_ok(gate_store_nightly_start(st, "main", "long", 300, 301)));
    assert_true(keel_ok(gate_store_nightly_start(st, "main", "long", 200, 301)));
    bool superseded = true;
    assert_true(keel_ok(gate_store_nightly_unstart(st, "main", "long", 200, &superseded)));
    assert_false(superseded); /* 300 still running */
    assert_true(keel_ok(gate_store_nightly_start(st, "main", "long", 200, 302)));
    char was[GATE_POST_STATE_MAX];
    assert_true(keel_ok(gate_store_nightly_finish(st, "main", "long", 300, true, "l1", 303, was)));
    bool newest = false;
    assert_true(keel_ok(gate_store_nightly_is_newest(st, "main", "long", 300, &newest)));
    assert_true(newest);
    assert_true(keel_ok(gate_store_nightly_is_newest(st, "main", "long", 200, &newest)));
    assert_false(newest);
    assert_true(keel_ok(gate_store_nightly_unstart(st, "main", "long", 200, &superseded)));
    assert_true(superseded); /* 300 ended (failed) while 200 ran */
    /* killed with 400 and 500 running, after 600 passed; 700 running, nothing newer ended */
    assert_true(keel_ok(gate_store_nightly_start(st, "main", "long", 600, 601)));
    assert_true(keel_ok(gate_store_nightly_start(st, "main", "long", 500, 601)));
    assert_true(keel_ok(gate_store_nightly_finish(st, "main", "long", 600, false, "l2", 602, was)));
    assert_string_equal(was, "failed");
    assert_true(keel_ok(gate_store_nightly_fire(st, "main", "long", 700, oid_c, 800, 700)));
    assert_true(keel_ok(gate_store_nightly_start(st, "main", "long", 700, 701)));
    gate_store_close(st);
    st = open_store();
    size_t n = 9, dropped = 9;
    assert_true(keel_ok(gate_store_nightly_recover(st, "main", &n, &dropped)));
    assert_int_equal(n, 1);       /* 700 */
    assert_int_equal(dropped, 1); /* 500 (400: pending, dropped by 600's end) */
    gate_nightly_row h[8];
    assert_true(keel_ok(gate_store_nightly_history(st, "main", "long", h, 8, &n)));
    assert_int_equal(n, 3); /* 700 pending, 600 passed, 300 failed (100: dropped by 300's end) */
    assert_int_equal(h[0].due_at, 700);
    assert_string_equal(h[0].state, "pending");
    assert_int_equal(h[1].due_at, 600);
    assert_int_equal(h[2].due_at, 300);
    gate_store_close(st);
}

/*
 * A store this user may not write (another user's, a read-only copy): opened
 * read-only, read as it is, a write refused by name.  Needs root to become
 * another user; skipped otherwise.
 */
static void test_readonly_store(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    gate_store *st = open_store();
    long long id = submit(st, "a", oid_a, 0, 1);
    gate_store_close(st);
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(chmod(db_path, 0644), 0);
    (void)fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        gate_store *ro = NULL;
        keel_status s = gate_store_open(db_path, &ro);
        if (!keel_ok(s)) {
            keel_status_print(stderr, s);
            _exit(11);
        }
        if (!gate_store_readonly(ro))
            _exit(12);
        gate_change c;
        if (!keel_ok(gate_store_get(ro, id, &c)) || strcmp(c.branch, "a") != 0)
            _exit(13);
        long long other = 0;
        s = gate_store_submit(ro, "b", oid_b, "main", 0, 2, &other);
        bool refused = KEEL_IS(s, KEEL_E_STATE);
        keel_status_free(s);
        gate_store_close(ro);
        _exit(refused ? 0 : 14);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_with_aging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watched_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_candidate_and_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_timings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flaky_endings, setup, teardown),
#if KEEL_DEVEL
        cmocka_unit_test_setup_teardown(test_flaky_endings_write_fails, setup, teardown),
#endif
        cmocka_unit_test_setup_teardown(test_recover_after_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_landed_candidate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_bad_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_truncated_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_not_a_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_store_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_cancelled_after_a_newer_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_recovered_after_a_newer_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nightly_cancelled_after_a_newer_run, setup, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
