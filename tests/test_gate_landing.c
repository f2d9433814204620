/*
 * test_gate_landing.c - what a landing says, on real repositories: the merge
 * commits that land name the branch, the change and its subject, the
 * configurations that passed and the batch (so `git log` tells the story
 * without the gate), and stay what recovery finds by ancestry.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "gate_fixture.h"

/* The message of main's merge that brought in `branch`'s head (fails when there is none). */
static void landed_message(const char *branch, char *buf, size_t size)
{
    git_oid cur, head;
    fx_head("main", &cur);
    fx_head(branch, &head);
    for (;;) {
        git_commit *c = NULL;
        assert_int_equal(git_commit_lookup(&c, fx_git, &cur), 0);
        unsigned np = git_commit_parentcount(c);
        if (np == 2 && git_oid_equal(git_commit_parent_id(c, 1), &head)) {
            (void)snprintf(buf, size, "%s", git_commit_message(c));
            git_commit_free(c);
            return;
        }
        if (np == 0)
            fail_msg("'%s' is not merged into main", branch);
        git_oid_cpy(&cur, git_commit_parent_id(c, 0));
        git_commit_free(c);
    }
}

static void expect_message(const char *branch, const char *want)
{
    char msg[4096];
    landed_message(branch, msg, sizeof(msg));
    if (strcmp(msg, want) != 0)
        fail_msg("the merge of '%s' says:\n%s\nnot:\n%s", branch, msg, want);
}

/*
 * One change alone: "Merge branch 'topic' (change N)", its subject, the
 * configurations that passed (a failing one that is not required is not
 * named), its id as a trailer.
 */
static void test_merge_message(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial",
                  "[config lint]\ntest = false\nrequired = no\n[config extra]\ntest = true\n");
    fx_branch("add-frobnicator", "frob.txt", "f\n"); /* its subject: the branch name */
    gate *g = fx_open();
    long long id = fx_submit(g, "add-frobnicator", 0);
    gate_close(g);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 1);
    char want[512];
    (void)snprintf(want, sizeof(want),
                   "Merge branch 'add-frobnicator' (change %lld)\n\nadd-frobnicator\n\n"
                   "Tested-on: unit, extra\nKeel-Gate-Change: %lld\n",
                   id, id);
    expect_message("add-frobnicator", want);
    fx_assert_tip_tested(); /* the store's merge is the one that landed */
}

/* Changes a, b and c (a file each) queued in that order and run once: all landed. */
static void three_changes(const char *gate_lines, long long ids[3], gate_run_stats *st)
{
    fx_setup_repo(gate_lines, "");
    fx_branch("a", "a.txt", "a\n");
    fx_branch("b", "b.txt", "b\n");
    fx_branch("c", "c.txt", "c\n");
    gate *g = fx_open();
    ids[0] = fx_submit(g, "a", 0);
    ids[1] = fx_submit(g, "b", 0);
    ids[2] = fx_submit(g, "c", 0);
    gate_close(g);
    *st = fx_run_once();
    assert_int_equal(st->landed, 3);
    fx_assert_tip_tested(); /* the store's merge is the one that landed */
}

/* A batch: each change's merge names itself and every change tested with it. */
static void test_batch_merge_messages(void **state)
{
    (void)state;
    long long ids[3];
    gate_run_stats st;
    three_changes("strategy = batch\nmax-batch = 3\nretries = 0", ids, &st);
    assert_int_equal(st.builds, 1);
    static const char *const names[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        char want[512];
        (void)snprintf(want, sizeof(want),
                       "Merge branch '%s' (change %lld)\n\n%s\n\nTested-on: unit\n"
                       "Keel-Gate-Batch: %lld, %lld, %lld\nKeel-Gate-Change: %lld\n",
                       names[i], ids[i], names[i], ids[0], ids[1], ids[2], ids[i]);
        expect_message(names[i], want);
    }
}

/*
 * Speculation: a candidate built on another before that one landed (on the
 * merge it was built as) lands on the merge that did land, relabelled.
 */
static void test_speculative_lands_on_relabelled(void **state)
{
    (void)state;
    long long ids[3];
    gate_run_stats st;
    three_changes("strategy = speculative\nmax-depth = 3\nretries = 0", ids, &st);
    assert_int_equal(st.builds, 3); /* nothing built again because its base was relabelled */
    char msg[4096], want[64];
    landed_message("c", msg, sizeof(msg));
    (void)snprintf(want, sizeof(want), "Keel-Gate-Change: %lld\n", ids[2]);
    assert_non_null(strstr(msg, want));
    assert_null(strstr(msg, "Keel-Gate-Batch"));
}

#if KEEL_DEVEL
/* A kill just after the swap: recovery finds the relabelled merge landed, by ancestry. */
static void test_kill_after_swap_recovers(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial\nretries = 0", "");
    fx_branch("a", "a.txt", "a\n");
    gate *g = fx_open();
    long long id = fx_submit(g, "a", 0);
    gate_close(g);
    fx_crash_spec = "gate.crash_after_cas:nth=1";
    char err[4096];
    int status = keel_test_run_child(fx_crashing_run, err, sizeof(err));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
        fail_msg("the gate should have died after its swap (status %d): %s", status, err);
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.builds, 0);
    g = fx_open();
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(fx_times_landed("a"), 1);
    char msg[4096];
    landed_message("a", msg, sizeof(msg));
    assert_non_null(strstr(msg, "Merge branch 'a' (change"));
    fx_assert_tip_tested();
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_merge_message, fx_teardown),
        cmocka_unit_test_teardown(test_batch_merge_messages, fx_teardown),
        cmocka_unit_test_teardown(test_speculative_lands_on_relabelled, fx_teardown),
#if KEEL_DEVEL
        cmocka_unit_test_teardown(test_kill_after_swap_recovers, fx_teardown),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
