/*
 * test_gate_remote.c - keel-gate guarding a repository it reaches through
 * git's transports: a real `git daemon` (git://, where receive-pack checks
 * the old value of every ref it updates) for landing, a push lost to a
 * concurrent one, a kill -9 around the push, and a remote that refuses the
 * update; file:// for a remote that disappears mid-run; and the bad input:
 * URLs, a mirror of another remote, a missing branch, an unreachable host.
 * (test_gate_run_remote runs all of test_gate_run.c over file:// too.)
 */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate_fixture.h"

#include "remote.h"
#include "store_backout.h"

extern char **environ;

static pid_t daemon_pid;
static char daemon_url[192];

static int teardown(void **state)
{
    (void)state;
    if (daemon_pid > 0) {
        (void)kill(-daemon_pid, SIGTERM); /* its group: receive-packs too */
        (void)waitpid(daemon_pid, NULL, 0);
        daemon_pid = 0;
    }
    fx_teardown_repo();
    return 0;
}

/* A port nobody listens on right now (the kernel's choice). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* Whether the daemon is still running `ms` milliseconds from now (else reaped: daemon_pid 0). */
static bool daemon_alive_after(long ms)
{
    for (long waited = 0; waited < ms; waited += 20) {
        int status = 0;
        if (waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
            daemon_pid = 0;
            return false;
        }
        struct timespec ts = {0, 20 * 1000000L};
        (void)nanosleep(&ts, NULL);
    }
    return true;
}

/*
 * `git daemon` serving fx_dir (fetch and push) on a free port; fx_where is
 * then its URL of the fixture's repository.  False when git has no daemon.
 */
static bool daemon_start(void)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = free_port();
        char listen[32], portarg[32], base[96];
        (void)snprintf(listen, sizeof(listen), "--listen=127.0.0.1");
        (void)snprintf(portarg, sizeof(portarg), "--port=%d", port);
        (void)snprintf(base, sizeof(base), "--base-path=%s", fx_dir);
        char *argv[] = {"git",
                        "daemon",
                        "--reuseaddr",
                        listen,
                        portarg,
                        base,
                        "--export-all",
                        "--enable=receive-pack",
                        "--informative-errors",
                        fx_dir,
                        NULL};
        posix_spawnattr_t attr;
        assert_int_equal(posix_spawnattr_init(&attr), 0);
        assert_int_equal(posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP), 0);
        assert_int_equal(posix_spawnattr_setpgroup(&attr, 0), 0);
        int rc = posix_spawnp(&daemon_pid, "git", NULL, &attr, argv, environ);
        posix_spawnattr_destroy(&attr);
        if (rc != 0) {
            daemon_pid = 0;
            return false;
        }
        for (int i = 0; i < 100; i++) {
            /*
             * The port open and the daemon still alive 200 ms later: a port
             * another process took between free_port() and the daemon's bind
             * answers too, while the daemon exits at once ('Address already in
             * use'), and the gate then met 'Connection refused' once that
             * listener went (a make check, session 27).
             */
            if (port_open(port) && daemon_alive_after(200)) {
                (void)snprintf(daemon_url, sizeof(daemon_url), "git://127.0.0.1:%d/repo.git", port);
                fx_where = daemon_url;
                return true;
            }
            if (daemon_pid == 0 || !daemon_alive_after(50))
                break; /* it died: the port was taken, or there is no daemon */
        }
        if (daemon_pid > 0) {
            (void)kill(-daemon_pid, SIGTERM);
            (void)waitpid(daemon_pid, NULL, 0);
            daemon_pid = 0;
        }
    }
    return false;
}

static void test_git_daemon_lands_in_order(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial\nretries = 0", "");
    if (!daemon_start())
        skip();
    gate *g = fx_open();
    long long ids[3];
    fx_queue_with_bad(g, ids);
    gate_close(g);
    long long a = ids[0], bad = ids[1], b = ids[2];
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 2);
    assert_int_equal(st.rejected, 1);
    g = fx_open();
    assert_int_equal(fx_state_of(g, a), GATE_CHANGE_LANDED);
    assert_int_equal(fx_state_of(g, bad), GATE_CHANGE_REJECTED);
    assert_int_equal(fx_state_of(g, b), GATE_CHANGE_LANDED);
    gate_close(g);
    git_oid landed[4], h;
    assert_int_equal(fx_landed_heads(landed, 4), 2); /* on the remote, in order */
    fx_head("b", &h);
    assert_true(git_oid_equal(&landed[0], &h));
    fx_head("a", &h);
    assert_true(git_oid_equal(&landed[1], &h));
    fx_assert_tip_tested();
    /* the mirror holds what landed, as the remote does */
    git_repository *mirror = NULL;
    git_oid remote_tip, mirror_tip;
    fx_head("main", &remote_tip);
    assert_int_equal(git_repository_open(&mirror, fx_mirror), 0);
    assert_int_equal(git_reference_name_to_id(&mirror_tip, mirror, "refs/heads/main"), 0);
    git_repository_free(mirror);
    assert_true(git_oid_equal(&remote_tip, &mirror_tip));
}

static void test_git_daemon_push_lost_to_concurrent_push(void **state)
{
    (void)state;
#if KEEL_DEVEL
    fx_setup_repo("strategy = serial", "");
    if (!daemon_start())
        skip();
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    gate *g = fx_open();
    long long a = fx_submit(g, "a", 0), b = fx_submit(g, "b", 0);
    gate_close(g);
    fx_ok(keel_stress_set_action("gate.crash_before_cas", fx_push_to_main, NULL));
    fx_ok(keel_stress_enable("gate.crash_before_cas:nth=1"));
    gate_run_stats st = fx_run_once();
    keel_stress_clear();
    fx_ok(keel_stress_set_action("gate.crash_before_cas", NULL, NULL));
    assert_int_equal(st.moved, 1);
    assert_int_equal(st.landed, 2);
    g = fx_open();
    assert_int_equal(fx_state_of(g, a), GATE_CHANGE_LANDED);
    assert_int_equal(fx_state_of(g, b), GATE_CHANGE_LANDED);
    gate_close(g);
    /* the concurrent push is in main's history, each change landed once */
    git_oid tip;
    fx_head("main", &tip);
    git_commit *c = NULL;
    git_tree *tree = NULL;
    git_tree_entry *e = NULL;
    assert_int_equal(git_commit_lookup(&c, fx_git, &tip), 0);
    assert_int_equal(git_commit_tree(&tree, c), 0);
    assert_int_equal(git_tree_entry_bypath(&e, tree, "pushed.txt"), 0);
    git_tree_entry_free(e);
    git_tree_free(tree);
    git_commit_free(c);
    assert_int_equal(fx_times_landed("a"), 1);
    assert_int_equal(fx_times_landed("b"), 1);
    fx_assert_tip_tested();
#else
    fx_setup_repo("", "");
    skip();
#endif
}

static void test_git_daemon_kill_around_the_push(void **state)
{
    (void)state;
#if KEEL_DEVEL
    static const char *const points[] = {
        "gate.crash_before_cas:nth=2", "gate.crash_after_cas:nth=1", "gate.crash_after_cas:nth=2"};
    for (size_t p = 0; p < sizeof(points) / sizeof(points[0]); p++) {
        fx_setup_repo("strategy = serial\nretries = 0", "");
        if (!daemon_start())
            skip();
        fx_branch("g1", "g1.txt", "1\n");
        fx_branch("g2", "g2.txt", "2\n");
        fx_branch("g3", "g3.txt", "3\n");
        gate *g = fx_open();
        long long ids[3] = {fx_submit(g, "g1", 0), fx_submit(g, "g2", 0), fx_submit(g, "g3", 0)};
        gate_close(g);
        fx_crash_spec = points[p];
        char err[4096];
        int status = keel_test_run_child(fx_crashing_run, err, sizeof(err));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
            fail_msg("%s: the gate should have died there (status %d): %s", points[p], status, err);
        fx_assert_tip_tested_as(false);
        (void)fx_run_once();
        g = fx_open();
        for (size_t i = 0; i < 3; i++)
            if (fx_state_of(g, ids[i]) != GATE_CHANGE_LANDED)
                fail_msg("%s: change %lld ended %s", points[p], ids[i],
                         gate_change_state_name(fx_state_of(g, ids[i])));
        gate_close(g);
        static const char *const names[] = {"g1", "g2", "g3"};
        for (size_t i = 0; i < 3; i++)
            if (fx_times_landed(names[i]) != 1)
                fail_msg("%s: '%s' landed %zu times", points[p], names[i],
                         fx_times_landed(names[i]));
        fx_assert_tip_tested();
        teardown(NULL);
    }
    fx_setup_repo("", ""); /* for the teardown */
#else
    fx_setup_repo("", "");
    skip();
#endif
}

/* A remote whose pre-receive hook refuses every update: an error naming why, no endless rebuilds. */
static void test_git_daemon_refusal_is_not_a_move(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    if (!daemon_start())
        skip();
    char hook[192];
    (void)snprintf(hook, sizeof(hook), "%s/hooks/pre-receive", fx_repo);
    FILE *f = fopen(hook, "w");
    assert_non_null(f);
    (void)fputs("#!/bin/sh\necho 'main is frozen' >&2\nexit 1\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(hook, 0755), 0);
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    long long a = fx_submit(g, "a", 0);
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    assert_false(keel_ok(s));
    char msg[2048];
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    if (strstr(msg, "refused the update of 'main'") == NULL || strstr(msg, "127.0.0.1") == NULL)
        fail_msg("the error should say the remote refused: %s", msg);
    assert_int_equal(st.moved, 0);
    gate_close(g);
    /* nothing lost: the change waits, and lands once the remote accepts */
    assert_int_equal(unlink(hook), 0);
    (void)fx_run_once();
    g = fx_open();
    assert_int_equal(fx_state_of(g, a), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(fx_times_landed("a"), 1);
    fx_assert_tip_tested();
}

/* Submitted by a push to refs/keel-gate/submit/<branch>: queued, landed, the ref deleted over git://. */
static void test_git_daemon_submit_by_push(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    if (!daemon_start())
        skip();
    fx_branch("a", "a.txt", "a\n");
    git_oid head;
    fx_head("a", &head);
    git_reference *r = NULL;
    assert_int_equal(
        git_reference_create(&r, fx_git, "refs/keel-gate/submit/topic", &head, 1, "push"), 0);
    git_reference_free(r);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 1);
    assert_int_equal(fx_times_landed("a"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE branch = 'topic' AND state = "
                                "'landed'",
                                NULL),
                     1);
    git_oid oid;
    assert_int_equal(git_reference_name_to_id(&oid, fx_git, "refs/keel-gate/submit/topic"),
                     GIT_ENOTFOUND);
    fx_assert_tip_tested();
}

/*
 * Over git://: a repository whose post configuration `long` (tier 1) fails
 * while `postbad` exists, and branch `breaks` (which adds it: the gate's
 * suite passes) queued.  False when git has no daemon.
 */
static bool breaks_queued(long long *id)
{
    fx_setup_repo("strategy = serial", "[config long]\ntest = test ! -e postbad\nlevels = post\n"
                                       "timeout = 30\ntier = 1\n");
    if (!daemon_start())
        return false;
    fx_branch("breaks", "postbad", "x\n");
    gate *g = fx_open();
    *id = fx_submit(g, "breaks", 0);
    gate_close(g);
    return true;
}

/*
 * `breaks` landed, found, verified and backed out once: the remote's branch
 * keel-gate/backout/<culprit> holds the revert, its main holds that and no
 * `postbad`, one revert change, landed.
 */
static void assert_remote_backed_out(long long id)
{
    gate *g = fx_open();
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_LANDED);
    gate_backout_row r;
    size_t n = 0;
    fx_ok(gate_store_backout_list(gate_get_store(g), "main", NULL, NULL, &r, 1, &n));
    assert_int_equal(n, 1);
    if (strcmp(r.state, "landed") != 0)
        fail_msg("backout of %.12s: %s (%s): %s", r.culprit, r.state, r.rail, r.reason);
    assert_int_equal(fx_state_of(g, r.change), GATE_CHANGE_LANDED);
    gate_close(g);
    char ref[96];
    (void)snprintf(ref, sizeof(ref), "refs/heads/keel-gate/backout/%.12s", r.culprit);
    git_oid branch, revert, tip;
    assert_int_equal(git_reference_name_to_id(&branch, fx_git, ref), 0);
    assert_int_equal(git_oid_fromstr(&revert, r.revert), 0);
    assert_true(git_oid_equal(&branch, &revert));
    fx_head("main", &tip);
    assert_true(git_oid_equal(&tip, &revert) ||
                git_graph_descendant_of(fx_git, &tip, &revert) == 1);
    assert_false(fx_has_at(&tip, "postbad"));
    assert_int_equal(
        fx_sql_int("SELECT count(*) FROM changes WHERE branch LIKE ?", "keel-gate/backout/%"), 1);
    fx_assert_tip_tested();
}

/*
 * A change that passes the gate's suite and breaks the post level's, landed
 * over git://: the culprit search finds and verifies it, its revert is made
 * in the mirror, pushed as the remote's branch keel-gate/backout/<culprit>,
 * submitted and landed through the gate like any change, and the remote's
 * main holds the revert.  (Refused before: "backing out on a remote's target
 * is not supported yet".)
 */
static void test_git_daemon_backout(void **state)
{
    (void)state;
    long long id = 0;
    if (!breaks_queued(&id))
        skip();
    gate *g = fx_open();
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    gate_close(g);
    assert_remote_backed_out(id);
}

/*
 * kill -9 after the revert's branch was pushed to the remote, before it was
 * submitted (the intent recorded): the next run makes the same revert (the
 * remote's branch holds it already), submits it once, and it lands once.
 */
static void test_git_daemon_backout_killed(void **state)
{
    (void)state;
#if KEEL_DEVEL
    long long id = 0;
    if (!breaks_queued(&id))
        skip();
    fx_crash_spec = "gate.backout_after_branch:nth=1";
    char err[4096];
    int status = keel_test_run_child(fx_crashing_run, err, sizeof(err));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
        fail_msg("the gate should have died after the branch (status %d): %s", status, err);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM backouts WHERE state = ?", "intended"), 1);
    (void)fx_run_once();
    assert_remote_backed_out(id);
#else
    fx_setup_repo("", "");
    skip();
#endif
}

#if KEEL_DEVEL
static char gone_path[160];

/* The stress action: the remote repository disappears just before the push. */
static bool remove_remote(const char *name, void *ctx)
{
    (void)name;
    (void)ctx;
    assert_int_equal(rename(fx_repo, gone_path), 0);
    return false;
}
#endif

static void test_remote_disappears_mid_run(void **state)
{
    (void)state;
#if KEEL_DEVEL
    fx_setup_repo("strategy = serial", "");
    fx_where = fx_url; /* file:// */
    (void)snprintf(gone_path, sizeof(gone_path), "%s.gone", fx_repo);
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    gate *g = fx_open();
    long long a = fx_submit(g, "a", 0), b = fx_submit(g, "b", 0);
    gate_close(g);
    fx_ok(keel_stress_set_action("gate.crash_before_cas", remove_remote, NULL));
    fx_ok(keel_stress_enable("gate.crash_before_cas:nth=1"));
    g = fx_open();
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    keel_stress_clear();
    fx_ok(keel_stress_set_action("gate.crash_before_cas", NULL, NULL));
    assert_false(keel_ok(s));
    char msg[2048];
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    if (strstr(msg, fx_url) == NULL)
        fail_msg("the error should name the remote: %s", msg);
    gate_close(g);
    /* the repository comes back: nothing was lost, each change lands once */
    assert_int_equal(rename(gone_path, fx_repo), 0);
    (void)fx_run_once();
    g = fx_open();
    assert_int_equal(fx_state_of(g, a), GATE_CHANGE_LANDED);
    assert_int_equal(fx_state_of(g, b), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(fx_times_landed("a"), 1);
    assert_int_equal(fx_times_landed("b"), 1);
    fx_assert_tip_tested();
#else
    fx_setup_repo("", "");
    skip();
#endif
}

/* The queue is local: status shows it while the remote is away, with the tip last seen. */
static void test_status_while_remote_unreachable(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    fx_where = fx_url;
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    gate *g = fx_open();
    (void)fx_submit(g, "a", 0);
    gate_close(g);
    (void)fx_run_once();
    g = fx_open();
    (void)fx_submit(g, "b", 0);
    gate_close(g);
    git_oid tip;
    char hex[GIT_OID_HEXSZ + 1], gone[160];
    fx_head("main", &tip);
    git_oid_tostr(hex, sizeof(hex), &tip);
    (void)snprintf(gone, sizeof(gone), "%s.gone", fx_repo);
    assert_int_equal(rename(fx_repo, gone), 0);
    g = fx_open(); /* the target: the branch the remote's HEAD named when last reached */
    assert_string_equal(gate_target(g), "main");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    fx_ok(gate_status(g, f, false));
    assert_int_equal(fclose(f), 0);
    char want[96];
    (void)snprintf(want, sizeof(want), "target 'main' at %.12s (last known)", hex);
    if (strstr(text, want) == NULL || strstr(text, "warning: cannot reach 'file://") == NULL ||
        strstr(text, "queued (1):") == NULL)
        fail_msg("%s", text);
    free(text);
    f = open_memstream(&text, &len);
    assert_non_null(f);
    fx_ok(gate_status(g, f, true));
    assert_int_equal(fclose(f), 0);
    if (!keel_test_json_valid(text) || strstr(text, "\"remote_error\":\"cannot reach") == NULL)
        fail_msg("%s", text);
    free(text);
    /* what needs the remote says so */
    long long id = 0;
    keel_status s = gate_submit(g, "b", 0, &id);
    assert_true(KEEL_IS(s, KEEL_E_IO) || KEEL_HAS(s, KEEL_E_IO));
    keel_status_free(s);
    gate_close(g);
    assert_int_equal(rename(gone, fx_repo), 0);
    (void)fx_run_once(); /* and once it is back, the queue goes on */
    assert_int_equal(fx_times_landed("b"), 1);
    fx_assert_tip_tested();
}

/* gate_open's error for `where` (must fail), formatted. */
static void open_error(const char *where, const char *mirror, char *msg, size_t size)
{
    gate_options o;
    gate_options_default(&o);
    o.repo = where;
    o.mirror = mirror;
    o.state = fx_state;
    o.out = NULL;
    gate *g = NULL;
    keel_status s = gate_open(&o, &g);
    assert_false(keel_ok(s));
    assert_null(g);
    (void)keel_status_format(s, msg, size);
    keel_status_free(s);
}

static void test_unreachable_and_missing(void **state)
{
    (void)state;
    fx_setup_repo("", "");
    char msg[2048];
    /* nothing listens on port 1 */
    open_error("git://127.0.0.1:1/repo.git", fx_mirror, msg, sizeof(msg));
    if (strstr(msg, "cannot reach 'git://127.0.0.1:1/repo.git'") == NULL)
        fail_msg("%s", msg);
    /* a file:// remote that is not there */
    char url[192];
    (void)snprintf(url, sizeof(url), "file://%s/nothing.git", fx_dir);
    char other[128];
    (void)snprintf(other, sizeof(other), "%s/mirror2.git", fx_dir);
    open_error(url, other, msg, sizeof(msg));
    if (strstr(msg, "nothing.git") == NULL)
        fail_msg("%s", msg);
    /* a branch the remote does not have */
    fx_where = fx_url;
    gate *g = fx_open();
    long long id = 0;
    keel_status s = gate_submit(g, "no-such-branch", 0, &id);
    assert_true(KEEL_HAS(s, KEEL_E_NOTFOUND));
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    if (strstr(msg, "no branch 'no-such-branch' in 'file://") == NULL)
        fail_msg("%s", msg);
    /* a hostile name never reaches the network */
    s = gate_submit(g, "x;rm -rf ~", 0, &id);
    assert_true(keel_status_is(s, &gate_codes, GATE_E_BAD_REF));
    keel_status_free(s);
    gate_close(g);
}

static void test_mirror_belongs_to_one_remote(void **state)
{
    (void)state;
    fx_setup_repo("", "");
    fx_where = fx_url;
    gate_close(fx_open()); /* the mirror is made for fx_url */
    char url[192], msg[2048];
    (void)snprintf(url, sizeof(url), "file://%s/other.git", fx_dir);
    open_error(url, fx_mirror, msg, sizeof(msg));
    if (strstr(msg, "is the mirror of 'file://") == NULL || strstr(msg, "other.git") == NULL)
        fail_msg("%s", msg);
    /* a directory that is not a repository is not taken for a mirror ... */
    char plain[128], file[160];
    (void)snprintf(plain, sizeof(plain), "%s/plain", fx_dir);
    assert_int_equal(mkdir(plain, 0755), 0);
    (void)snprintf(file, sizeof(file), "%s/notes.txt", plain);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);
    open_error(fx_url, plain, msg, sizeof(msg));
    if (strstr(msg, "not a mirror") == NULL)
        fail_msg("%s", msg);
    /* ... nor a git repository the gate did not make (it was "the mirror of '(no keel-gate
       mirror)'") */
    open_error(fx_url, fx_repo, msg, sizeof(msg)); /* the remote itself */
    if (strstr(msg, "is a git repository but not a keel-gate mirror (it names no remote), so "
                    "not the mirror of 'file://") == NULL)
        fail_msg("%s", msg);
    /* ... but an empty one is the place for a new mirror, as for git clone */
    char empty[128];
    (void)snprintf(empty, sizeof(empty), "%s/empty.git", fx_dir);
    assert_int_equal(mkdir(empty, 0755), 0);
    fx_where = fx_url;
    (void)snprintf(fx_mirror, sizeof(fx_mirror), "%s", empty);
    gate_close(fx_open());
}

static void test_urls(void **state)
{
    (void)state;
    fx_setup_repo("", "");
    assert_true(gate_remote_is_url("https://example.com/r.git"));
    assert_true(gate_remote_is_url("git@example.com:team/r.git"));
    assert_true(gate_remote_is_url("file:///srv/r.git"));
    assert_false(gate_remote_is_url("/srv/r.git"));
    assert_false(gate_remote_is_url("r.git"));
    assert_false(gate_remote_is_url("./a:b"));
    /* a host or user that would be an option to ssh, after any '@' of the authority */
    static const char *const bad[] = {
        "ftp://example.com/r.git",     "ssh://-oProxyCommand=x/r.git",
        "-oProxyCommand=x:r.git",      "file:///a b.git",
        "https://example.com/r\n.git", "ssh://u@h@-oProxyCommand=x/r.git",
        "u@h@-oProxyCommand=x:r.git",  "ssh://-oProxyCommand=x@example.com/r.git",
        "https://tok@?@-x@h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        keel_status s = gate_remote_check_url(bad[i]);
        if (!KEEL_IS(s, KEEL_E_INVAL))
            fail_msg("'%s' should be refused", bad[i]);
        keel_status_free(s);
    }
    fx_ok(gate_remote_check_url("ssh://git@example.com:2222/team/r.git"));
    fx_ok(gate_remote_check_url("git@example.com:team/r.git"));
    char shown[256];
    gate_remote_redact("https://alice:s3cret@example.com/r.git", shown, sizeof(shown));
    assert_string_equal(shown, "https://alice:***@example.com/r.git");
    gate_remote_redact("ssh://git@example.com/r.git", shown, sizeof(shown));
    assert_string_equal(shown, "ssh://git@example.com/r.git");
    /* an '@' in a password not percent-encoded: the password runs to the last '@' */
    gate_remote_redact("https://ci:p@ss:w0rd@example.com/r.git", shown, sizeof(shown));
    assert_string_equal(shown, "https://ci:***@example.com/r.git");
    gate_remote_redact("https://ci@corp:s3cret@example.com/a@b", shown, sizeof(shown));
    assert_string_equal(shown, "https://ci@corp:***@example.com/a@b");
    /* the password never reaches a message */
    char msg[2048];
    open_error("https://alice:s3cret@127.0.0.1:1/r.git", fx_mirror, msg, sizeof(msg));
    if (strstr(msg, "s3cret") != NULL || strstr(msg, "alice:***@") == NULL)
        fail_msg("%s", msg);
    /* the default mirror: under XDG_STATE_HOME, named after the repository */
    char home[128], path[512];
    (void)snprintf(home, sizeof(home), "%s/xdg", fx_dir);
    assert_int_equal(setenv("XDG_STATE_HOME", home, 1), 0);
    fx_ok(gate_remote_default_mirror("ssh://example.com/team/widget.git", path, sizeof(path)));
    assert_int_equal(unsetenv("XDG_STATE_HOME"), 0);
    char want[160];
    (void)snprintf(want, sizeof(want), "%s/keel-gate/widget-", home);
    assert_memory_equal(path, want, strlen(want));
    assert_string_equal(path + strlen(path) - 4, ".git");
    struct stat st;
    (void)snprintf(want, sizeof(want), "%s/keel-gate", home);
    assert_int_equal(stat(want, &st), 0); /* its parent made */
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_git_daemon_lands_in_order, teardown),
        cmocka_unit_test_teardown(test_git_daemon_push_lost_to_concurrent_push, teardown),
        cmocka_unit_test_teardown(test_git_daemon_kill_around_the_push, teardown),
        cmocka_unit_test_teardown(test_git_daemon_refusal_is_not_a_move, teardown),
        cmocka_unit_test_teardown(test_git_daemon_submit_by_push, teardown),
        cmocka_unit_test_teardown(test_git_daemon_backout, teardown),
        cmocka_unit_test_teardown(test_git_daemon_backout_killed, teardown),
        cmocka_unit_test_teardown(test_remote_disappears_mid_run, teardown),
        cmocka_unit_test_teardown(test_status_while_remote_unreachable, teardown),
        cmocka_unit_test_teardown(test_unreachable_and_missing, teardown),
        cmocka_unit_test_teardown(test_mirror_belongs_to_one_remote, teardown),
        cmocka_unit_test_teardown(test_urls, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
