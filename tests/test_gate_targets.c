/*
 * test_gate_targets.c - one gate, several targets (issue 18): the executor's
 * slots shared in turns between targets, one run guarding main and comp/net
 * with flows both ways, a target with one change landing while another has
 * 30 queued, kill -9 during a run of two targets resumed with nothing lost
 * or landed twice, and what is refused ([gate] targets, the CLI's --target).
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gate_fixture.h"
#include "gate_text.h"
#include "config.h"
#include "pool.h"

/*
 * One slot shared by two targets: the first has 5 jobs waiting when the
 * second submits one; the second's runs next, not after the first's five
 * (first in, first out would run it last).
 */
static void test_pool_takes_turns(void **state)
{
    (void)state;
    char dir[64], order[96];
    (void)snprintf(dir, sizeof(dir), "/tmp/keel-test-targets-XXXXXX");
    assert_non_null(mkdtemp(dir));
    (void)snprintf(order, sizeof(order), "%s/order", dir);
    gate_pool *core = NULL, *a = NULL, *b = NULL;
    assert_true(keel_ok(gate_pool_new(1, &core)));
    assert_true(keel_ok(gate_pool_share(core, &a)));
    assert_true(keel_ok(gate_pool_share(core, &b)));
    enum { NJOBS = 6 };
    static char cmds[NJOBS][160];
    static char *argvs[NJOBS][4];
    gate_job_run jobs[NJOBS];
    for (int i = 0; i < NJOBS; i++) {
        gate_job_run *j = &jobs[i];
        memset(j, 0, sizeof(*j));
        j->job_id = i;
        (void)snprintf(cmds[i], sizeof(cmds[i]), "echo %c%d >> %s; sleep 0.05",
                       i < NJOBS - 1 ? 'A' : 'B', i, order);
        argvs[i][0] = "/bin/sh";
        argvs[i][1] = "-c";
        argvs[i][2] = cmds[i];
        argvs[i][3] = NULL;
        j->test = argvs[i];
        (void)snprintf(j->dir, sizeof(j->dir), "%s", dir);
        (void)snprintf(j->log, sizeof(j->log), "%s/job-%d.log", dir, i);
        j->timeout_ms = 10000;
        gate_job_policy_default(&j->policy);
        j->policy.sandbox = false;
    }
    for (int i = 0; i < NJOBS; i++)
        gate_pool_submit(i < NJOBS - 1 ? a : b, &jobs[i]);
    assert_int_equal(gate_pool_outstanding(a), NJOBS - 1);
    assert_int_equal(gate_pool_outstanding(b), 1);
    size_t got = 0;
    for (int tries = 0; got < NJOBS && tries < 400; tries++) {
        if (!gate_pool_wait_any(core, 100))
            continue;
        got += gate_pool_wait(a, 0) != NULL ? 1u : 0u;
        got += gate_pool_wait(b, 0) != NULL ? 1u : 0u;
    }
    assert_int_equal(got, NJOBS);
    assert_int_equal(gate_pool_outstanding(a) + gate_pool_outstanding(b), 0);
    gate_pool_delete(a);
    gate_pool_delete(b);
    gate_pool_delete(core);
    char text[128] = "";
    FILE *f = fopen(order, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    (void)fclose(f);
    text[n] = '\0';
    assert_string_equal(text, "A0\nB5\nA1\nA2\nA3\nA4\n");
    char cmd[96];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/*
 * The fixture's repository, main's configuration without `target` and
 * with `gate_lines` in [gate] and `rest` after the matrix (flows); `branches`
 * made at main's first commit.
 */
static void setup_targets(const char *gate_lines, const char *rest, const char *const *branches,
                          size_t n)
{
    fx_setup_repo("", "");
    char conf[2048];
    (void)snprintf(conf, sizeof(conf),
                   "[gate]\n%s\nnotify = tee -a %s/events.jsonl\n"
                   "[config unit]\ntest = sh ci.sh\nenv = MARKER=%s/marker\ntimeout = 30\n"
                   "writable = %s\n%s",
                   gate_lines, fx_dir, fx_shared, fx_shared, rest);
    const fx_file f[] = {{".keel/gate.conf", conf}};
    git_oid base = fx_base;
    fx_commit(&base, f, 1, "main", &fx_base);
    for (size_t i = 0; i < n; i++) {
        char ref[160];
        (void)snprintf(ref, sizeof(ref), "refs/heads/%s", branches[i]);
        git_reference *r = NULL;
        assert_int_equal(git_reference_create(&r, fx_git, ref, &fx_base, 1, "test"), 0);
        git_reference_free(r);
    }
}

/* A branch `name` off `target`'s tip adding `path`; *out: its commit. */
static void change_for(const char *target, const char *name, const char *path, git_oid *out)
{
    git_oid tip;
    fx_head(target, &tip);
    const fx_file f[] = {{path, "x\n"}};
    fx_commit(&tip, f, 1, name, out);
}

static long long submit_to(const char *target, const char *branch)
{
    gate *g = fx_open_target(target);
    long long id = fx_submit(g, branch, 0);
    gate_close(g);
    return id;
}

/* Does `branch`'s history hold `commit`? */
static bool holds(const char *branch, const git_oid *commit)
{
    git_oid tip;
    fx_head(branch, &tip);
    return git_oid_equal(&tip, commit) || git_graph_descendant_of(fx_git, &tip, commit) == 1;
}

/* One run of `n` targets, --once. */
static gate_run_stats run_targets(const char *const *targets, size_t n)
{
    gate *gs[4] = {NULL, NULL, NULL, NULL};
    for (size_t i = 0; i < n; i++)
        gs[i] = fx_open_target(targets[i]);
    gate_run_stats st;
    fx_ok(gate_run_targets(gs, n, true, &st));
    for (size_t i = 0; i < n; i++)
        gate_close(gs[i]);
    return st;
}

static long long count_where(const char *sql, const char *arg)
{
    return fx_sql_int(sql, arg);
}

/*
 * One run guarding main and comp/net with flows both ways: a change
 * submitted to each lands on its own branch, then the flows bring each into
 * the other, each flow's merge landing once, and the run ends (nothing new
 * to merge back and forth).
 */
static void flows_both_ways(bool remote)
{
    static const char *const targets[] = {"main", "comp/net"};
    setup_targets("slots = 2", "[flow comp/net -> main]\nback-merge = yes\n", targets + 1, 1);
    if (remote)
        fx_where = fx_url; /* the gate reaches it through file:// (a mirror of its own) */
    git_oid m, n;
    change_for("main", "feat-main", "m.txt", &m);
    change_for("comp/net", "feat-net", "n.txt", &n);
    long long cm = submit_to("main", "feat-main");
    long long cn = submit_to("comp/net", "feat-net");
    gate_run_stats st = run_targets(targets, 2);
    assert_int_equal(st.landed, 4); /* two changes, two flow merges */
    assert_int_equal(st.rejected + st.conflicts, 0);
    gate *g = fx_open_target("main");
    assert_int_equal(fx_state_of(g, cm), GATE_CHANGE_LANDED);
    assert_int_equal(fx_state_of(g, cn), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_true(holds("main", &m));
    assert_true(holds("comp/net", &n));
    assert_true(holds("main", &n));     /* comp/net -> main */
    assert_true(holds("comp/net", &m)); /* main -> comp/net */
    assert_int_equal(
        count_where("SELECT count(*) FROM changes WHERE state = 'landed' AND branch = ?",
                    "keel-gate/flow/comp+net-to-main"),
        1);
    assert_int_equal(
        count_where("SELECT count(*) FROM changes WHERE state = 'landed' AND branch = ?",
                    "keel-gate/flow/main-to-comp+net"),
        1);
    assert_int_equal(count_where("SELECT count(*) FROM changes WHERE state <> ?", "landed"), 0);
    assert_int_equal(count_where("SELECT count(*) FROM flows WHERE state <> ?", "idle"), 0);
    /* a second run: nothing to do */
    st = run_targets(targets, 2);
    assert_int_equal(st.landed + st.builds, 0);
    if (!remote)
        return;
    /* a remote's flow branches are the remote's own: a developer fetches them to fix one */
    static const char *const flow_refs[] = {"refs/heads/keel-gate/flow/comp+net-to-main",
                                            "refs/heads/keel-gate/flow/main-to-comp+net"};
    for (size_t i = 0; i < 2; i++) {
        git_oid id;
        assert_int_equal(git_reference_name_to_id(&id, fx_git, flow_refs[i]), 0);
    }
}

static void test_flows_both_ways_one_run(void **state)
{
    (void)state;
    flows_both_ways(false);
}

/*
 * The same over a remote (a file:// URL): one run guards main and comp/net
 * of a repository it reaches through git's transports; each change lands on
 * its own branch of the remote and the flows' merges sync them, each once.
 */
static void test_remote_targets_flows(void **state)
{
    (void)state;
    flows_both_ways(true);
}

typedef struct run_arg {
    gate **gs;
    size_t n;
    keel_status s;
    gate_run_stats st;
} run_arg;

static void *run_thread(void *arg)
{
    run_arg *r = (run_arg *)arg;
    r->s = gate_run_targets(r->gs, r->n, false, &r->st);
    return NULL;
}

/*
 * `busy` has 30 changes queued, `quiet` one, on one shared slot: quiet's
 * lands while busy still has at least 25 waiting.  The run is then stopped,
 * and busy's changes are back in its queue.
 */
static void test_busy_target_does_not_starve(void **state)
{
    (void)state;
    static const char *const targets[] = {"busy", "quiet"};
    /* one slot: each target's configuration asks for 1 */
    setup_targets("slots = 1\nstrategy = speculative\nmax-depth = 8", "", targets, 2);
    git_oid x;
    enum { BUSY = 30 };
    gate *b = fx_open_target("busy");
    for (int i = 0; i < BUSY; i++) {
        char name[32], path[32];
        (void)snprintf(name, sizeof(name), "b%d", i);
        (void)snprintf(path, sizeof(path), "b%d.txt", i);
        change_for("busy", name, path, &x);
        (void)fx_submit(b, name, 0);
    }
    gate_close(b);
    change_for("quiet", "q", "q.txt", &x);
    (void)submit_to("quiet", "q");
    run_arg r;
    memset(&r, 0, sizeof(r));
    gate *gs[2] = {fx_open_target("busy"), fx_open_target("quiet")};
    r.gs = gs;
    r.n = 2;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_thread, &r), 0);
    long long landed = 0, busy_landed = -1;
    for (int i = 0; i < 600 && landed == 0; i++) {
        fx_sleep_ms(50);
        landed = fx_sql_int("SELECT count(*) FROM changes WHERE target = ? AND state = 'landed'",
                            "quiet");
        busy_landed = fx_sql_int(
            "SELECT count(*) FROM changes WHERE target = ? AND state = 'landed'", "busy");
    }
    gate_request_stop(gs[0], 15);
    assert_int_equal(pthread_join(t, NULL), 0);
    fx_ok(r.s);
    print_message("quiet landed while busy had landed %lld of %d\n", busy_landed, BUSY);
    assert_int_equal(landed, 1);
    assert_true(busy_landed >= 0 && busy_landed <= BUSY - 25);
    assert_int_equal(r.st.stop_signal, 15);
    /* stopped: busy's changes are queued again, none testing */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE target = ? AND state = "
                                "'testing'",
                                "busy"),
                     0);
    assert_true(fx_sql_int("SELECT count(*) FROM changes WHERE target = ? AND state = 'queued'",
                           "busy") >= 25);
    gate_close(gs[0]);
    gate_close(gs[1]);
}

#if KEEL_DEVEL
/*
 * kill -9 during a run of two targets (after the second compare-and-swap,
 * and after a job): the next run resumes both queues, and every change lands
 * once, none lost.
 */
static const char *const two[] = {"main", "comp/net"};

static void crashing_run_targets(void)
{
    keel_status s = keel_stress_enable(fx_crash_spec);
    if (!keel_ok(s))
        _exit(3);
    gate *gs[2] = {fx_open_target(two[0]), fx_open_target(two[1])};
    gate_run_stats st;
    s = gate_run_targets(gs, 2, true, &st);
    keel_status_ignore(s, "the child is to die before it returns");
    _exit(4); /* the stress point never fired */
}

static void test_kill_resumes_every_target(void **state)
{
    (void)state;
    static const char *const specs[] = {"gate.crash_after_cas:nth=2", "gate.crash_after_job:nth=2"};
    for (size_t k = 0; k < 2; k++) {
        setup_targets("slots = 2\nstrategy = serial", "", two + 1, 1);
        git_oid heads[4];
        for (int i = 0; i < 4; i++) {
            char name[24], path[24];
            (void)snprintf(name, sizeof(name), "c%d", i);
            (void)snprintf(path, sizeof(path), "c%d.txt", i);
            change_for(two[i % 2], name, path, &heads[i]);
            (void)submit_to(two[i % 2], name);
        }
        fx_crash_spec = specs[k];
        char out[4096];
        int status = keel_test_run_child(crashing_run_targets, out, sizeof(out));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
            fail_msg("%s: status %d: %s", specs[k], status, out);
        (void)run_targets(two, 2);
        for (int i = 0; i < 4; i++)
            assert_true(holds(two[i % 2], &heads[i]));
        assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = ?", "landed"), 4);
        assert_int_equal(fx_sql_int("SELECT count(*) FROM changes", NULL), 4);
        /* each landed once */
        assert_int_equal(fx_sql_int("SELECT count(*) FROM (SELECT head FROM changes WHERE state = "
                                    "? GROUP BY head HAVING count(*) > 1)",
                                    "landed"),
                         0);
        for (int i = 0; i < 4; i += 2) {
            char name[16];
            (void)snprintf(name, sizeof(name), "c%d", i);
            assert_int_equal(fx_times_landed(name), 1); /* main's history merged it once */
        }
        fx_teardown_repo();
    }
}
#endif

/* [gate] targets: a name twice, a name git refuses; a target that is not a branch. */
static void test_targets_refused(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"[gate]\ntargets = main comp/net main\n", "'main' is named twice"},
        {"[gate]\ntargets = main comp..net\n", "'comp..net' is not a branch name"},
        {"[gate]\ntargets = \"\"\n", "'targets'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gate_config *c = NULL;
        keel_status s = gate_config_parse(bad[i][0], strlen(bad[i][0]), "t.conf", &c);
        assert_false(keel_ok(s));
        char msg[1024];
        (void)keel_status_format(s, msg, sizeof(msg));
        keel_status_free(s);
        if (strstr(msg, bad[i][1]) == NULL)
            fail_msg("expected '%s' in: %s", bad[i][1], msg);
    }
    gate_config *c = NULL;
    const char *good = "[gate]\ntargets = main comp/net release/2.1\n[config unit]\ntest = true\n";
    fx_ok(gate_config_parse(good, strlen(good), "t.conf", &c));
    assert_int_equal(c->targets.n, 3);
    assert_string_equal(c->targets.words[2], "release/2.1");
    gate_config_free(c);

    static const char *const targets[] = {"main", "nosuch", "main"};
    setup_targets("slots = 2", "", NULL, 0);
    gate *gs[2] = {fx_open_target(targets[0]), fx_open_target(targets[1])};
    gate_run_stats st;
    keel_status s = gate_run_targets(gs, 2, true, &st);
    char msg[1024];
    assert_false(keel_ok(s));
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    if (strstr(msg, "target 'nosuch' is not a branch") == NULL)
        fail_msg("unknown branch: %s", msg);
    gate_close(gs[1]);
    gs[1] = fx_open_target(targets[2]);
    s = gate_run_targets(gs, 2, true, &st);
    assert_false(keel_ok(s));
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    if (strstr(msg, "target 'main' is given twice") == NULL)
        fail_msg("twice: %s", msg);
    gate_close(gs[0]);
    gate_close(gs[1]);
}

/* The CLI's run: --target twice, or [gate] targets; --target twice to submit is refused. */
static void test_cli_several_targets(void **state)
{
    (void)state;
    static const char *const targets[] = {"comp/net"};
    setup_targets("slots = 2\ntargets = main comp/net", "", targets, 1);
    git_oid m, n;
    change_for("main", "fm", "m.txt", &m);
    change_for("comp/net", "fn", "n.txt", &n);
    (void)submit_to("main", "fm");
    (void)submit_to("comp/net", "fn");
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    char *etext = NULL;
    size_t elen = 0;
    FILE *err = open_memstream(&etext, &elen);
    char *argv1[] = {"keel-gate", "--repo",   fx_repo,    "--state", fx_state, "--target",
                     "main",      "--target", "comp/net", "submit",  "fm",     NULL};
    assert_int_equal(gate_cli_main(11, argv1, out, err), 2);
    (void)fflush(err);
    if (strstr(etext, "option '--target' is given twice ('main', then 'comp/net'): give it once "
                      "(only 'run' guards several targets)") == NULL)
        fail_msg("submit with two targets: %s", etext);
    /* [gate] targets: run with no --target guards both */
    char *argv2[] = {"keel-gate", "--repo", fx_repo, "--state", fx_state, "run", "--once", NULL};
    int rc = gate_cli_main(7, argv2, out, err);
    (void)fclose(out);
    (void)fclose(err);
    if (rc != 0)
        fail_msg("run: %d: %s\n%s", rc, text, etext);
    if (strstr(text, "[comp/net] gate: 'comp/net' at ") == NULL ||
        strstr(text, "one of 2 targets sharing 2 slots") == NULL ||
        strstr(text, "summary: 2 landed") == NULL)
        fail_msg("run's output: %s", text);
    assert_true(holds("main", &m));
    assert_true(holds("comp/net", &n));
    free(text);
    free(etext);
    /* status: every target's line; JSON: "targets"; --target: that target's queue */
    char *st_argv[] = {"keel-gate", "--repo", fx_repo, "--state", fx_state,
                       "status",    "--json", NULL,    NULL,      NULL};
    static const char *const want[][3] = {
        {"targets (2, one keel-gate run guards each", "  main ", "  comp/net "},
        {"\"targets\":[{\"target\":\"main\",\"tip\":\"", "{\"target\":\"comp/net\"",
         "\"queued\":0,\"testing\":0}]"},
        {"target 'comp/net' at ", "recently landed (1):", "fn"},
    };
    for (int k = 0; k < 3; k++) {
        int argc = k == 1 ? 7 : 6;
        if (k == 2) {
            st_argv[6] = "--target";
            st_argv[7] = "comp/net";
            argc = 8;
        }
        out = open_memstream(&text, &len);
        err = open_memstream(&etext, &elen);
        rc = gate_cli_main(argc, st_argv, out, err);
        (void)fclose(out);
        (void)fclose(err);
        if (rc != 0)
            fail_msg("status %d: %d: %s", k, rc, etext);
        for (int w = 0; w < 3; w++)
            if (strstr(text, want[k][w]) == NULL)
                fail_msg("status %d: no '%s' in:\n%s", k, want[k][w], text);
        if (k == 1)
            gate_assert_json("status --json", text);
        free(text);
        free(etext);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_takes_turns),
        cmocka_unit_test_teardown(test_flows_both_ways_one_run, fx_teardown),
        cmocka_unit_test_teardown(test_remote_targets_flows, fx_teardown),
        cmocka_unit_test_teardown(test_busy_target_does_not_starve, fx_teardown),
#if KEEL_DEVEL
        cmocka_unit_test_teardown(test_kill_resumes_every_target, fx_teardown),
#endif
        cmocka_unit_test_teardown(test_targets_refused, fx_teardown),
        cmocka_unit_test_teardown(test_cli_several_targets, fx_teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
