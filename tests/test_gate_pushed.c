/*
 * test_gate_pushed.c - changes submitted by a push to
 * refs/keel-gate/submit/<branch> (gate_take_pushed): queued and landed with
 * no branch of that name needed, hostile names and the target refused,
 * a push again while the change is active, a kill -9 between queueing and
 * removing the ref; and the same through a URL (file:// here, git:// in
 * test_gate_remote.c).
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate_fixture.h"

/* What `git push origin <commit>:refs/keel-gate/submit/<name>` leaves in the repository. */
static void push_submit(const char *name, const git_oid *commit)
{
    char ref[256];
    (void)snprintf(ref, sizeof(ref), "refs/keel-gate/submit/%s", name);
    git_reference *r = NULL;
    assert_int_equal(git_reference_create(&r, fx_git, ref, commit, 1, "push"), 0);
    git_reference_free(r);
}

static bool submit_ref_exists(const char *name)
{
    char ref[256];
    (void)snprintf(ref, sizeof(ref), "refs/keel-gate/submit/%s", name);
    git_oid oid;
    return git_reference_name_to_id(&oid, fx_git, ref) == 0;
}

/* A commit off main changing one file, reachable only from its submit ref. */
static void pushed_change(const char *name, const char *path, const char *content)
{
    fx_branch(name, path, content);
    git_oid head;
    fx_head(name, &head);
    push_submit(name, &head);
    char ref[256];
    (void)snprintf(ref, sizeof(ref), "refs/heads/%s", name);
    git_reference *r = NULL;
    assert_int_equal(git_reference_lookup(&r, fx_git, ref), 0);
    assert_int_equal(git_reference_delete(r), 0); /* a push to the gate, not a branch */
    git_reference_free(r);
}

static long long changes_of(const char *branch)
{
    return fx_sql_int("SELECT count(*) FROM changes WHERE branch = ?1", branch);
}

static void pushed_land_and_reject(bool remote)
{
    fx_setup_repo("strategy = serial\nretries = 0", "");
    if (remote)
        fx_where = fx_url;
    pushed_change("feature/a", "a.txt", "a\n");
    pushed_change("bad", "bad", "x\n");
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 1);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(changes_of("feature/a"), 1);
    assert_int_equal(changes_of("bad"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE branch = 'feature/a' AND "
                                "state = 'landed'",
                                NULL),
                     1);
    /* the refs are gone from the repository (and a remote's mirror) */
    assert_false(submit_ref_exists("feature/a"));
    assert_false(submit_ref_exists("bad"));
    if (remote) {
        git_repository *mirror = NULL;
        git_oid oid;
        assert_int_equal(git_repository_open(&mirror, fx_mirror), 0);
        assert_int_equal(git_reference_name_to_id(&oid, mirror, "refs/keel-gate/submit/feature/a"),
                         GIT_ENOTFOUND);
        git_repository_free(mirror);
    }
    fx_assert_tip_tested();
}

static void test_pushed_local(void **state)
{
    (void)state;
    pushed_land_and_reject(false);
}

static void test_pushed_through_url(void **state)
{
    (void)state;
    pushed_land_and_reject(true);
}

static void test_hostile_and_target_refused(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    git_oid commit;
    fx_branch("x", "x.txt", "x\n");
    fx_head("x", &commit);
    push_submit("x;rm", &commit); /* git's own rules allow ';', '$', '(' in a ref name */
    push_submit("$(reboot)", &commit);
    push_submit("main", &commit);
    gate *g = fx_open();
    size_t queued = 99;
    fx_ok(gate_take_pushed(g, &queued));
    gate_close(g);
    assert_int_equal(queued, 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes", NULL), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'refused'", NULL), 3);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'refused' AND detail "
                                "LIKE '%is the target%'",
                                NULL),
                     1);
    assert_false(submit_ref_exists("x;rm"));
    assert_false(submit_ref_exists("$(reboot)"));
    assert_false(submit_ref_exists("main"));
}

static void test_pushed_again_while_active(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    git_oid c1, c2;
    const fx_file f1[] = {{"a.txt", "one\n"}};
    fx_commit(&fx_base, f1, 1, "a", &c1);
    const fx_file f2[] = {{"a.txt", "two\n"}};
    fx_commit(&c1, f2, 1, "a", &c2);
    push_submit("a", &c1);
    gate *g = fx_open();
    size_t queued = 0;
    fx_ok(gate_take_pushed(g, &queued));
    assert_int_equal(queued, 1);
    assert_false(submit_ref_exists("a"));
    /* pushed again before the first landed: it waits, its ref kept */
    push_submit("a", &c2);
    fx_ok(gate_take_pushed(g, &queued));
    assert_int_equal(queued, 0);
    assert_true(submit_ref_exists("a"));
    /* the same commit again (a push repeated): already queued, the ref removed */
    push_submit("a", &c1);
    fx_ok(gate_take_pushed(g, &queued));
    assert_int_equal(queued, 0);
    assert_false(submit_ref_exists("a"));
    push_submit("a", &c2);
    gate_close(g);
    (void)fx_run_once(); /* c1 lands; c2 is taken once c1 has ended (in this run or the next) */
    (void)fx_run_once();
    assert_int_equal(changes_of("a"), 2);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = 'landed'", NULL), 2);
    assert_false(submit_ref_exists("a"));
    git_oid landed[4];
    assert_int_equal(fx_landed_heads(landed, 4), 2);
    assert_true(git_oid_equal(&landed[0], &c2));
    assert_true(git_oid_equal(&landed[1], &c1));
    fx_assert_tip_tested();
}

static void test_kill_between_queue_and_removal(void **state)
{
    (void)state;
#if KEEL_DEVEL
    fx_setup_repo("strategy = serial", "");
    pushed_change("a", "a.txt", "a\n");
    fx_crash_spec = "gate.crash_after_take:nth=1";
    char err[4096];
    int status = keel_test_run_child(fx_crashing_run, err, sizeof(err));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
        fail_msg("the gate should have died after queueing (status %d): %s", status, err);
    assert_true(submit_ref_exists("a")); /* queued, the ref not yet removed */
    assert_int_equal(changes_of("a"), 1);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 1);
    assert_int_equal(changes_of("a"), 1); /* not queued twice */
    assert_false(submit_ref_exists("a"));
    fx_assert_tip_tested();
#else
    fx_setup_repo("", "");
    skip();
#endif
}

/* A git lock file beside the submit ref `name`, `age` seconds old. */
static void lock_beside(const char *name, long age)
{
    char lock[256];
    (void)snprintf(lock, sizeof(lock), "%s/refs/keel-gate/submit/%s.lock", fx_repo, name);
    FILE *f = fopen(lock, "w");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);
    struct timespec t[2];
    assert_int_equal(clock_gettime(CLOCK_REALTIME, &t[0]), 0);
    t[0].tv_sec -= age;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, lock, t, 0), 0);
}

/* How many merges on main's first-parent line bring `head`. */
static size_t times_landed(const git_oid *head)
{
    git_oid heads[64];
    size_t n = fx_landed_heads(heads, 64), times = 0;
    for (size_t i = 0; i < n; i++)
        times += git_oid_equal(&heads[i], head) ? 1u : 0u;
    return times;
}

/*
 * The ref of a change already taken could not be removed (a git lock file
 * beside it: a failure of the moment), and the change lands in that run.
 * Once the ref can go, the next look removes it and queues nothing: the
 * same commit never lands twice.  (The old code checked only for a change
 * still queued, and queued the landed one again: found by the random kills.)
 */
static void ref_left_after_its_change_landed(bool url)
{
    fx_setup_repo("strategy = serial", "");
    if (url)
        fx_where = fx_url; /* the removal is a push the remote refuses (its lock) */
    pushed_change("topic", "t.txt", "t\n");
    git_oid head;
    assert_int_equal(git_reference_name_to_id(&head, fx_git, "refs/keel-gate/submit/topic"), 0);
    lock_beside("topic", 0);
    (void)fx_run_once();
    assert_int_equal(times_landed(&head), 1);
    assert_true(submit_ref_exists("topic")); /* the lock kept it */
    char lock[256];
    (void)snprintf(lock, sizeof(lock), "%s/refs/keel-gate/submit/topic.lock", fx_repo);
    assert_int_equal(unlink(lock), 0);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.builds, 0);
    assert_false(submit_ref_exists("topic"));
    assert_int_equal(changes_of("topic"), 1);
    assert_int_equal(times_landed(&head), 1);
    /* pushed again later: main holds it already, so it is refused (no empty merge lands) */
    push_submit("topic", &head);
    (void)fx_run_once();
    assert_int_equal(changes_of("topic"), 1);
    assert_false(submit_ref_exists("topic"));
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'already-in'", NULL), 1);
    assert_int_equal(times_landed(&head), 1);
}

static void test_ref_left_after_its_change_landed(void **state)
{
    (void)state;
    ref_left_after_its_change_landed(false);
}

static void test_ref_left_after_its_change_landed_url(void **state)
{
    (void)state;
    ref_left_after_its_change_landed(true);
}

/*
 * A ref that cannot be removed for a moment (a young git lock beside it: a
 * writer at work) stops none of the refs after it; one whose lock is old (a
 * gate killed while it removed it) is removed.  (The old code stopped at the
 * first ref it could not remove, every poll: the random kills left 13
 * pushes untaken.)
 */
static void locked_ref_stops_no_other(bool url)
{
    fx_setup_repo("strategy = serial", "");
    if (url)
        fx_where = fx_url;
    pushed_change("a-young", "a.txt", "a\n");
    pushed_change("b-old", "b.txt", "b\n");
    pushed_change("c-next", "c.txt", "c\n");
    lock_beside("a-young", 0);
    lock_beside("b-old", 3600);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 3);
    assert_int_equal(changes_of("a-young"), 1);
    assert_int_equal(changes_of("b-old"), 1);
    assert_int_equal(changes_of("c-next"), 1);
    assert_true(submit_ref_exists("a-young")); /* kept by its lock, removed once it goes */
    assert_false(submit_ref_exists("b-old"));
    assert_false(submit_ref_exists("c-next"));
    fx_assert_tip_tested();
}

static void test_locked_ref_stops_no_other(void **state)
{
    (void)state;
    locked_ref_stops_no_other(false);
}

static void test_locked_ref_stops_no_other_url(void **state)
{
    (void)state;
    locked_ref_stops_no_other(true);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pushed_local, fx_teardown),
        cmocka_unit_test_teardown(test_pushed_through_url, fx_teardown),
        cmocka_unit_test_teardown(test_hostile_and_target_refused, fx_teardown),
        cmocka_unit_test_teardown(test_pushed_again_while_active, fx_teardown),
        cmocka_unit_test_teardown(test_kill_between_queue_and_removal, fx_teardown),
        cmocka_unit_test_teardown(test_ref_left_after_its_change_landed, fx_teardown),
        cmocka_unit_test_teardown(test_ref_left_after_its_change_landed_url, fx_teardown),
        cmocka_unit_test_teardown(test_locked_ref_stops_no_other, fx_teardown),
        cmocka_unit_test_teardown(test_locked_ref_stops_no_other_url, fx_teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
