/*
 * test_gate_notify.c - keel-gate's notify hook off the landing path, on real
 * repositories, processes and stores: a slow hook does not delay landing,
 * events arrive in the store's order with a stable id, an event whose
 * landing was not followed by its hook (a kill) is delivered by the next run,
 * a failing hook is retried then recorded, two targets on one store notify
 * their own events only, and a cancel while the hook runs does not stop run.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate_fixture.h"
#include "gate_text.h"
#include "notify.h"

static double now_s(void)
{
    struct timespec t;
    (void)clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/*
 * main's configuration becomes the fixture's with `notify = sh <dir>/hook.sh`
 * (its body given, each '@' in it the test's directory) and `gate_lines` in
 * [gate]; branches made after it start from it.
 */
static void use_hook(const char *gate_lines, const char *body)
{
    char path[192], text[1024];
    (void)snprintf(path, sizeof(path), "%s/hook.sh", fx_dir);
    size_t n = 0;
    for (const char *p = body; *p != '\0' && n + sizeof(fx_dir) < sizeof(text); p++)
        if (*p == '@')
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s", fx_dir);
        else
            text[n++] = *p;
    text[n] = '\0';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    (void)fputs(text, f);
    assert_int_equal(fclose(f), 0);
    char conf[1024];
    (void)snprintf(conf, sizeof(conf),
                   "[gate]\ntarget = main\nslots = 2\n%s\nnotify = sh %s\n"
                   "[config unit]\ntest = sh ci.sh\ntimeout = 30\n",
                   gate_lines, path);
    git_oid tip;
    const fx_file files[] = {{".keel/gate.conf", conf}};
    fx_commit(&fx_base, files, 1, "main", &tip);
    git_oid_cpy(&fx_base, &tip);
}

/* A file's lines (at most max, each at most 4 KiB): how many. */
static size_t read_lines(const char *name, char (*lines)[4096], size_t max)
{
    char path[192];
    (void)snprintf(path, sizeof(path), "%s/%s", fx_dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = 0;
    while (n < max && fgets(lines[n], sizeof(lines[n]), f) != NULL)
        n++;
    (void)fclose(f);
    return n;
}

typedef struct delivered {
    long long id;
    char event[16];
    long long change;
    char target[64], branch[64], head[48], merge[48], reason[512];
} delivered;

/* The events a hook appended to `name`, one JSON object a line (checked by libjansson). */
static size_t read_events(const char *name, delivered *out, size_t max)
{
    static char lines[64][4096];
    size_t n = read_lines(name, lines, 64);
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        gate_assert_json("the hook's event", lines[i]);
#if KEEL_TEST_HAVE_JANSSON
        json_error_t e;
        json_t *v = json_loads(lines[i], 0, &e);
        memset(&out[i], 0, sizeof(out[i]));
        json_t *id = json_object_get(v, "id");
        if (!json_is_integer(id))
            fail_msg("event without an integer \"id\": %s", lines[i]);
        out[i].id = (long long)json_integer_value(id);
        out[i].change = (long long)json_integer_value(json_object_get(v, "change"));
        static const char *const keys[] = {"event", "target", "branch", "head", "merge", "reason"};
        char *fields[] = {out[i].event, out[i].target, out[i].branch,
                          out[i].head,  out[i].merge,  out[i].reason};
        size_t sizes[] = {sizeof(out[i].event), sizeof(out[i].target), sizeof(out[i].branch),
                          sizeof(out[i].head),  sizeof(out[i].merge),  sizeof(out[i].reason)};
        for (size_t k = 0; k < 6; k++) {
            const char *s = json_string_value(json_object_get(v, keys[k]));
            if (s == NULL)
                fail_msg("event without a string \"%s\": %s", keys[k], lines[i]);
            (void)snprintf(fields[k], sizes[k], "%s", s);
        }
        json_decref(v);
#else
        (void)out;
        skip(); /* libjansson-dev is not installed (make deps): the events cannot be read */
#endif
    }
    return n;
}

/* The id of the store's event of `kind` for `change` (-1: none). */
static long long event_id(const char *kind, long long change)
{
    char sql[160];
    (void)snprintf(sql, sizeof(sql),
                   "SELECT coalesce(max(id), -1) FROM events WHERE kind = ?1 "
                   "AND change = %lld",
                   change);
    return fx_sql_int(sql, kind);
}

/* A hook that takes 5 s per event: landing goes on without it. */
static void test_slow_hook_does_not_delay_landing(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    use_hook("strategy = serial", "cat >> @/events.jsonl\nsleep 5\n");
    static const char *const names[] = {"a", "b", "c", "d"};
    gate *g = fx_open();
    for (size_t i = 0; i < 4; i++) {
        char file[16];
        (void)snprintf(file, sizeof(file), "%s.txt", names[i]);
        fx_branch(names[i], file, "x\n");
        (void)fx_submit(g, names[i], 0);
    }
    gate_close(g);
    double t0 = now_s();
    gate_run_stats st = fx_run_once();
    double took = now_s() - t0;
    assert_int_equal(st.landed, 4);
    fx_assert_tip_tested();
    /* a hook on the landing path takes 4 x 5 s; off it: the landings and the stop's deadline */
    if (took > 10.0)
        fail_msg("4 changes with a 5 s hook took %.1f s to land", took);
    delivered d[16];
    size_t n = read_events("events.jsonl", d, 16);
    assert_true(n >= 1 && n <= 2); /* what the hook took before the stop's deadline */
    assert_string_equal(d[0].event, "land");
    assert_int_equal(d[0].change, 1);
}

/*
 * Every kind of event (land, flake, reject, conflict) reaches the hook in
 * the store's order, each with the store's id and today's fields.
 */
static void test_events_in_order_with_ids(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial\nretries = 1", ""); /* notify = tee -a <dir>/events.jsonl */
    fx_branch("a", "x.txt", "a\n");
    fx_branch("b", "bad", "b\n");
    fx_branch("c", "x.txt", "c\n"); /* conflicts with a */
    /* its failure ends otherwise than b's (silent): b's rejection is not taken back */
    fx_branch(
        "flaky", "ci.sh",
        "if [ -e \"$MARKER\" ]; then exit 0; fi\ntouch \"$MARKER\"\necho lost a race\nexit 1\n");
    fx_branch("d", "d.txt", "d\n");
    gate *g = fx_open();
    static const char *const names[] = {"a", "b", "c", "flaky", "d"};
    for (size_t i = 0; i < 5; i++)
        (void)fx_submit(g, names[i], 0);
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 3);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.conflicts, 1);
    assert_int_equal(st.flakes, 1);
    delivered d[16];
    size_t n = read_events("events.jsonl", d, 16);
    /* the store's events of those kinds, in its order: the hook saw exactly these */
    long long want[6] = {event_id("landed", 1), event_id("rejected", 2), event_id("conflict", 3),
                         event_id("flake", 4),  event_id("landed", 4),   event_id("landed", 5)};
    static const char *const kinds[] = {"land", "reject", "conflict", "flake", "land", "land"};
    static const long long changes[] = {1, 2, 3, 4, 4, 5};
    assert_int_equal(n, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_true(want[i] > 0);
        if (i > 0 && d[i].id <= d[i - 1].id)
            fail_msg("event %zu (id %lld) after id %lld: out of order", i, d[i].id, d[i - 1].id);
        assert_int_equal(d[i].id, want[i]);
        assert_string_equal(d[i].event, kinds[i]);
        assert_int_equal(d[i].change, changes[i]);
        assert_string_equal(d[i].target, "main");
        assert_string_equal(d[i].branch, names[changes[i] - 1]);
        assert_int_equal(strlen(d[i].head), 40);
    }
    /*
     * merges: a land's is a commit main went through; the flake's the merge
     * tested, which landed relabelled (the same tree, its message written)
     */
    git_oid tip;
    fx_head("main", &tip);
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &tip);
    assert_string_equal(d[5].merge, hex);
    git_oid tested, landed;
    git_commit *ct = NULL, *cl = NULL;
    assert_int_equal(git_oid_fromstr(&tested, d[3].merge), 0);
    assert_int_equal(git_oid_fromstr(&landed, d[4].merge), 0);
    assert_int_equal(git_commit_lookup(&ct, fx_git, &tested), 0);
    assert_int_equal(git_commit_lookup(&cl, fx_git, &landed), 0);
    assert_true(git_oid_equal(git_commit_tree_id(ct), git_commit_tree_id(cl)));
    assert_true(git_oid_equal(git_commit_parent_id(ct, 1), git_commit_parent_id(cl, 1)));
    git_commit_free(ct);
    git_commit_free(cl);
    assert_string_equal(d[2].merge, "");
    assert_non_null(strstr(d[1].reason, "configuration 'unit' failed"));
    assert_non_null(strstr(d[2].reason, "conflicts with change 1 ('a', landed at "));
    assert_non_null(strstr(d[2].reason, ") in x.txt"));
    assert_non_null(strstr(d[3].reason, "configuration 'unit' failed"));
    assert_string_equal(d[0].reason, "landed");
    /* delivered once: a run with nothing to do sends nothing again */
    (void)fx_run_once();
    assert_int_equal(read_events("events.jsonl", d, 16), 6);
}

/*
 * A backlog of more events than the notifier reads at a time
 * (GATE_NOTIFY_BATCH): a hook of 20 ms per event behind landings of 8 at a
 * time; every event in order, each once (a run that ends first leaves the
 * rest to the next).
 */
static void test_backlog_in_batches(void **state)
{
    (void)state;
    fx_setup_repo("", "");
    use_hook("strategy = batch\nmax-batch = 8", "sleep 0.02\ncat >> @/events.jsonl\n");
    gate *g = fx_open();
    enum { N = 2 * GATE_NOTIFY_BATCH + 3 };
    for (int i = 0; i < N; i++) {
        char name[16], file[24];
        (void)snprintf(name, sizeof(name), "c%02d", i);
        (void)snprintf(file, sizeof(file), "%s.txt", name);
        fx_branch(name, file, "x\n");
        (void)fx_submit(g, name, 0);
    }
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, N);
    static delivered d[64];
    size_t n = read_events("events.jsonl", d, 64);
    for (int run = 0; run < 3 && (n == 0 || d[n - 1].id != event_id("landed", N)); run++) {
        (void)fx_run_once();
        n = read_events("events.jsonl", d, 64);
    }
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(d[i].event, "land");
        assert_int_equal(d[i].id, event_id("landed", d[i].change));
        if (i > 0 && d[i].id == d[i - 1].id)
            continue; /* the one a stop's deadline cut short, again */
        if (i > 0 && d[i].id < d[i - 1].id)
            fail_msg("event %zu (id %lld) after id %lld", i, d[i].id, d[i - 1].id);
        distinct++;
    }
    assert_int_equal(distinct, N);
}
#if KEEL_DEVEL
static size_t count_id(const delivered *d, size_t n, long long id)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += d[i].id == id;
    return k;
}

static void crash_then_restart(const char *spec)
{
    fx_crash_spec = spec;
    char err[4096];
    int status = keel_test_run_child(fx_crashing_run, err, sizeof(err));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
        fail_msg("%s: the gate should have died at the point (status %d): %s", spec, status, err);
    (void)fx_run_once();
}
#endif

/*
 * A kill after a landing and before its hook ran: the next run delivers it.
 * After the compare-and-swap, before the store knew (recovery finds the
 * landing); and after the store recorded it, while the hook had not taken it.
 */
static void test_kill_after_landing_delivers(void **state)
{
    (void)state;
#if KEEL_DEVEL
    fx_setup_repo("strategy = serial", "");
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    (void)fx_submit(g, "a", 0);
    gate_close(g);
    crash_then_restart("gate.crash_after_cas:nth=1");
    assert_int_equal(fx_times_landed("a"), 1);
    delivered d[16];
    size_t n = read_events("events.jsonl", d, 16);
    long long id = event_id("landed", 1);
    assert_true(id > 0);
    assert_int_equal(count_id(d, n, id), 1);
    assert_string_equal(d[0].event, "land");
    assert_string_equal(d[0].reason, "landed before a restart");
    git_oid tip;
    fx_head("main", &tip);
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &tip);
    assert_string_equal(d[0].merge, hex);
    fx_teardown_repo();

    /* the hook records the event, then takes 2 s: the gate dies before it is done */
    fx_setup_repo("strategy = serial", "");
    use_hook("strategy = serial", "cat >> @/events.jsonl\nsleep 2\n");
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    g = fx_open();
    (void)fx_submit(g, "a", 0);
    (void)fx_submit(g, "b", 0);
    gate_close(g);
    crash_then_restart("gate.crash_after_merge:nth=2"); /* b's merge: a has landed */
    assert_int_equal(fx_times_landed("a"), 1);
    assert_int_equal(fx_times_landed("b"), 1);
    n = read_events("events.jsonl", d, 16);
    id = event_id("landed", 1);
    assert_true(id > 0);
    if (count_id(d, n, id) < 1)
        fail_msg("a's landing (event %lld) never reached the hook", id);
#else
    fx_setup_repo("", "");
    skip(); /* the stress points are a devel build's */
#endif
}

/*
 * A failing hook: run GATE_NOTIFY_ATTEMPTS times per event (the count kept
 * across restarts: the second event's runs go on in the next run), then a
 * notify-failed event, then passed over for good.
 */
static void test_failing_hook_retried_then_recorded(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    use_hook("strategy = serial", "cat > /dev/null\necho attempt >> @/attempts\nexit 3\n");
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    gate *g = fx_open();
    (void)fx_submit(g, "a", 0);
    (void)fx_submit(g, "b", 0);
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 2);
    /* 3 runs with pauses of 0.5 s and 1.5 s: the first event fits in the stop's 3 s */
    unsigned long long given_up = st.notify_failures;
    assert_true(given_up >= 1);
    for (int run = 0; run < 3 && given_up < 2; run++)
        given_up += fx_run_once().notify_failures;
    assert_int_equal(given_up, 2);
    static char lines[16][4096];
    assert_int_equal(read_lines("attempts", lines, 16), 6); /* 3 per event, restarts or not */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'notify-failed'", NULL),
                     2);
    /* the failure names the event and the hook's exit */
    char sql[192];
    (void)snprintf(sql, sizeof(sql),
                   "SELECT count(*) FROM events WHERE kind = 'notify-failed' AND change = 1 AND "
                   "detail LIKE '{\"id\":%lld,%%' AND detail LIKE '%%exited with 3%%'",
                   event_id("landed", 1));
    assert_int_equal(fx_sql_int(sql, NULL), 1);
    /* passed over: not run again */
    (void)fx_run_once();
    assert_int_equal(read_lines("attempts", lines, 16), 6);
}

/* What fx_open gives gate_open, with a target of its own (NULL: HEAD's). */
static void options_for(const char *target, gate_options *o)
{
    gate_options_default(o);
    o->repo = fx_where;
    o->mirror = fx_mirror;
    o->state = fx_state;
    o->target = target;
    o->out = getenv("GATE_TEST_VERBOSE") != NULL ? stderr : NULL;
    o->poll_ms = 50;
}

static gate *open_target(const char *target)
{
    gate_options o;
    options_for(target, &o);
    gate *g = NULL;
    fx_ok(gate_open(&o, &g));
    return g;
}

static void run_target(const char *target)
{
    gate *g = open_target(target);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    gate_close(g);
}

/* Two gates on one store (targets main and other): each hook hears its own target only. */
static void test_two_targets_notify_own_events(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    /* other: the same tree, its hook writing elsewhere */
    char conf[1024];
    (void)snprintf(conf, sizeof(conf),
                   "[gate]\ntarget = other\nslots = 2\nstrategy = serial\nnotify = tee -a "
                   "%s/other.jsonl\n[config unit]\ntest = sh ci.sh\ntimeout = 30\n",
                   fx_dir);
    git_oid other;
    const fx_file f[] = {{".keel/gate.conf", conf}};
    fx_commit(&fx_base, f, 1, "other", &other);
    fx_branch("x", "x.txt", "x\n");
    fx_branch("y", "y.txt", "y\n");
    run_target("main"); /* both gates have run once before any change */
    run_target("other");
    gate *g = open_target("main");
    (void)fx_submit(g, "x", 0);
    gate_close(g);
    g = open_target("other");
    (void)fx_submit(g, "y", 0);
    gate_close(g);
    run_target("other");
    run_target("main");
    delivered d[16];
    size_t n = read_events("events.jsonl", d, 16);
    assert_int_equal(n, 1);
    assert_string_equal(d[0].target, "main");
    assert_string_equal(d[0].branch, "x");
    n = read_events("other.jsonl", d, 16);
    assert_int_equal(n, 1);
    assert_string_equal(d[0].target, "other");
    assert_string_equal(d[0].branch, "y");
    assert_int_equal(fx_times_landed("x"), 1);
}

static long long cancel_id;
static keel_status cancel_result;

/* Wait for the hook to start, then cancel a change (keel-gate cancel in another process would do the same). */
static void *cancel_when_hook_runs(void *arg)
{
    (void)arg;
    char path[192];
    (void)snprintf(path, sizeof(path), "%s/hook-started", fx_dir);
    for (int i = 0; i < 2000 && access(path, F_OK) != 0; i++)
        (void)usleep(5000);
    gate *g = fx_open();
    cancel_result = gate_cancel(g, cancel_id);
    gate_close(g);
    return NULL;
}

/* A cancel while the hook runs: run goes on and ends without an error. */
static void test_cancel_while_hook_runs(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    use_hook("strategy = serial", "touch @/hook-started\ncat >> @/events.jsonl\nsleep 2\n");
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "ci.sh", "sleep 2\n"); /* still testing when the hook starts */
    fx_branch("c", "c.txt", "c\n");
    gate *g = fx_open();
    (void)fx_submit(g, "a", 0);
    cancel_id = fx_submit(g, "b", 0);
    (void)fx_submit(g, "c", 0);
    gate_close(g);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_when_hook_runs, NULL), 0);
    g = fx_open();
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    gate_close(g);
    assert_int_equal(pthread_join(t, NULL), 0);
    fx_ok(cancel_result);
    fx_ok(s);
    assert_int_equal(fx_times_landed("a"), 1);
    assert_int_equal(fx_times_landed("b"), 0);
    assert_int_equal(fx_times_landed("c"), 1);
    g = fx_open();
    assert_int_equal(fx_state_of(g, cancel_id), GATE_CHANGE_CANCELLED);
    gate_close(g);
    fx_assert_tip_tested();
}

/*
 * A store of schema version 1 (events without a target, no cursor, no
 * endings of flakes) is upgraded in place; what it recorded before is not
 * news to the hook.  A store from a newer keel-gate is refused.  A detail
 * that is not JSON is never recorded as it is.
 */
static void test_store_upgrade_from_version_1(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    gate_close(fx_open()); /* a store of today's version, made version 1 again */
    long long newest = fx_sql_int("PRAGMA user_version", NULL);
    assert_true(newest >= 7); /* 6 -> 7: the post level's tables, and the steps after */
    fx_sql_exec(
        "DROP INDEX events_by_target; ALTER TABLE events DROP COLUMN target; "
        "DROP TABLE notify_cursor; ALTER TABLE changes DROP COLUMN crashes; "
        "ALTER TABLE changes DROP COLUMN pushed; ALTER TABLE jobs DROP COLUMN elapsed_ms; "
        "ALTER TABLE jobs DROP COLUMN load; ALTER TABLE jobs DROP COLUMN others; "
        "ALTER TABLE flows DROP COLUMN dest; ALTER TABLE flows DROP COLUMN made; "
        "ALTER TABLE flows DROP COLUMN change_id; ALTER TABLE culprit_searches DROP COLUMN level; "
        "DROP TABLE flaky_endings; PRAGMA user_version = 1;");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM pragma_table_info('events') WHERE "
                                "name = 'target'",
                                NULL),
                     0);
    /* its history: an event of version 1 */
    fx_sql_exec("INSERT INTO events(time, kind, change, detail) VALUES(1, 'landed', 1, '{}')");
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    (void)fx_submit(g, "a", 0);
    gate_close(g);
    assert_int_equal(fx_sql_int("PRAGMA user_version", NULL), newest); /* every step run */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM pragma_table_info('flaky_endings')", NULL),
                     5); /* 17 -> 18: the endings of flakes */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE target = ''", NULL), 1);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 1);
    delivered d[4];
    assert_int_equal(read_events("events.jsonl", d, 4), 1); /* the landing, not the old row */
    assert_int_equal(d[0].id, event_id("landed", 1));
    assert_string_equal(d[0].target, "main");

    g = fx_open();
    fx_ok(gate_store_event(gate_get_store(g), 1, "test", 0, "{\"cut\":\"abc"));
    gate_close(g);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'test' AND detail = "
                                "'{\"detail_invalid\":true}' AND target = 'main'",
                                NULL),
                     1);

    fx_sql_exec("PRAGMA user_version = 99");
    gate_options o;
    options_for(NULL, &o);
    g = NULL;
    keel_status s = gate_open(&o, &g);
    assert_true(KEEL_IS(s, KEEL_E_VERSION));
    assert_non_null(strstr(keel_status_message(s), "has schema version 99"));
    keel_status_free(s);
    assert_null(g);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_slow_hook_does_not_delay_landing, fx_teardown),
        cmocka_unit_test_teardown(test_events_in_order_with_ids, fx_teardown),
        cmocka_unit_test_teardown(test_backlog_in_batches, fx_teardown),
        cmocka_unit_test_teardown(test_kill_after_landing_delivers, fx_teardown),
        cmocka_unit_test_teardown(test_failing_hook_retried_then_recorded, fx_teardown),
        cmocka_unit_test_teardown(test_two_targets_notify_own_events, fx_teardown),
        cmocka_unit_test_teardown(test_cancel_while_hook_runs, fx_teardown),
        cmocka_unit_test_teardown(test_store_upgrade_from_version_1, fx_teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
