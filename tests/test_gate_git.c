/*
 * test_gate_git.c - keel-gate's git layer on real repositories made by the
 * test: branch-name checks, candidate merges, conflicts, checkout, and the
 * compare-and-swap that never overwrites a concurrent push.
 */
#define _GNU_SOURCE 1
#include <git2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "../gate/git.h"

static char dir[64];
static git_repository *repo;

typedef struct file {
    const char *path;
    const char *content;
} file;

/* Commit `files` (flat paths) on top of `parent` (NULL: a root commit); set `branch` to it. */
static void commit_files(const git_oid *parent, const file *files, size_t n, const char *branch,
                         git_oid *out)
{
    git_treebuilder *tb = NULL;
    git_tree *parent_tree = NULL;
    git_commit *parent_commit = NULL;
    if (parent != NULL) {
        assert_int_equal(git_commit_lookup(&parent_commit, repo, parent), 0);
        assert_int_equal(git_commit_tree(&parent_tree, parent_commit), 0);
    }
    assert_int_equal(git_treebuilder_new(&tb, repo, parent_tree), 0);
    for (size_t i = 0; i < n; i++) {
        git_oid blob;
        assert_int_equal(
            git_blob_create_from_buffer(&blob, repo, files[i].content, strlen(files[i].content)),
            0);
        assert_int_equal(git_treebuilder_insert(NULL, tb, files[i].path, &blob, GIT_FILEMODE_BLOB),
                         0);
    }
    git_oid tree_id;
    assert_int_equal(git_treebuilder_write(&tree_id, tb), 0);
    git_tree *tree = NULL;
    assert_int_equal(git_tree_lookup(&tree, repo, &tree_id), 0);
    git_signature *sig = NULL;
    assert_int_equal(git_signature_now(&sig, "test", "test@localhost"), 0);
    char ref[128];
    snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    const git_commit *parents[1] = {parent_commit};
    assert_int_equal(git_commit_create(out, repo, NULL, sig, sig, NULL, "test commit", tree,
                                       parent_commit != NULL ? 1 : 0, parents),
                     0);
    git_reference *r = NULL;
    assert_int_equal(git_reference_create(&r, repo, ref, out, 1, "test"), 0);
    git_reference_free(r);
    git_signature_free(sig);
    git_tree_free(tree);
    git_treebuilder_free(tb);
    git_tree_free(parent_tree);
    git_commit_free(parent_commit);
}

static int setup(void **state)
{
    (void)state;
    git_libgit2_init();
    snprintf(dir, sizeof(dir), "/tmp/keel-git-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(git_repository_init(&repo, dir, 1 /* bare */), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    git_repository_free(repo);
    repo = NULL;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir); /* our own temp dir, made by mkdtemp */
    assert_int_equal(system(cmd), 0);
    git_libgit2_shutdown();
    return 0;
}

static void hex_of(const git_oid *oid, char hex[GATE_HEX])
{
    git_oid_tostr(hex, GATE_HEX, oid);
}

static void test_branch_names(void **state)
{
    (void)state;
    static const char *const good[] = {"main", "feature/x", "fix-1.2", "user/a_b"};
    static const char *const bad[] = {"",    "a..b",      "-rf", "a b",          "x;rm -rf /",
                                      "a~1", "a^",        "a:b", "refs/heads/x", "x.lock",
                                      "a/",  "$(reboot)", "a\\b"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        keel_status s = gate_branch_check(good[i]);
        if (!keel_ok(s))
            fail_msg("'%s' should be a valid branch name", good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        keel_status s = gate_branch_check(bad[i]);
        if (!keel_status_is(s, &gate_codes, GATE_E_BAD_REF))
            fail_msg("'%s' should be refused", bad[i]);
        assert_string_equal(keel_status_get_str(s, "branch"), bad[i]);
        keel_status_free(s);
    }
}

static void test_merge_checkout_and_cas(void **state)
{
    (void)state;
    git_oid base, a, b;
    const file base_files[] = {{"README", "hello\n"}, {"gate.conf", "[gate]\n"}};
    commit_files(NULL, base_files, 2, "main", &base);
    const file fa[] = {{"a.c", "int a;\n"}};
    commit_files(&base, fa, 1, "change-a", &a);
    const file fb[] = {{"b.c", "int b;\n"}};
    commit_files(&base, fb, 1, "change-b", &b);

    gate_repo *r = NULL;
    assert_true(keel_ok(gate_repo_open(dir, &r)));
    char base_hex[GATE_HEX], a_hex[GATE_HEX], b_hex[GATE_HEX], head[GATE_HEX];
    hex_of(&base, base_hex);
    hex_of(&a, a_hex);
    hex_of(&b, b_hex);
    assert_true(keel_ok(gate_branch_head(r, "main", head)));
    assert_string_equal(head, base_hex);

    const char *heads[2] = {a_hex, b_hex};
    char merge[GATE_HEX];
    assert_true(keel_ok(gate_merge(r, base_hex, heads, 2, merge)));
    assert_string_not_equal(merge, base_hex);
    char *data = NULL;
    size_t len = 0;
    assert_true(keel_ok(gate_read_file(r, merge, "b.c", &data, &len)));
    assert_string_equal(data, "int b;\n");
    assert_int_equal(len, 7);
    gate_file_free(data);
    keel_status s = gate_read_file(r, merge, "missing.c", &data, &len);
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND));
    keel_status_free(s);

    /* materialize it for a job */
    char work[128];
    snprintf(work, sizeof(work), "%s/work", dir);
    assert_true(keel_ok(gate_checkout(r, merge, work)));
    char path[160];
    snprintf(path, sizeof(path), "%s/a.c", work);
    assert_int_equal(access(path, R_OK), 0);
    snprintf(path, sizeof(path), "%s/README", work);
    assert_int_equal(access(path, R_OK), 0);

    /* land it: main moves from base to the merge */
    assert_true(keel_ok(gate_branch_cas(r, "main", base_hex, merge, "keel-gate: land a, b")));
    assert_true(keel_ok(gate_branch_head(r, "main", head)));
    assert_string_equal(head, merge);

    /* a stale expectation (someone pushed meanwhile) is refused and main stays */
    s = gate_branch_cas(r, "main", base_hex, a_hex, "stale");
    assert_true(keel_status_is(s, &gate_codes, GATE_E_MOVED));
    assert_string_equal(keel_status_get_str(s, "actual"), merge);
    keel_status_free(s);
    assert_true(keel_ok(gate_branch_head(r, "main", head)));
    assert_string_equal(head, merge);
    gate_repo_close(r);
}

static void test_conflict_isolated(void **state)
{
    (void)state;
    git_oid base, a, b;
    const file base_files[] = {{"shared.c", "int x = 0;\n"}};
    commit_files(NULL, base_files, 1, "main", &base);
    const file fa[] = {{"shared.c", "int x = 1;\n"}};
    commit_files(&base, fa, 1, "one", &a);
    const file fb[] = {{"shared.c", "int x = 2;\n"}};
    commit_files(&base, fb, 1, "two", &b);
    gate_repo *r = NULL;
    assert_true(keel_ok(gate_repo_open(dir, &r)));
    char base_hex[GATE_HEX], a_hex[GATE_HEX], b_hex[GATE_HEX], merge[GATE_HEX];
    hex_of(&base, base_hex);
    hex_of(&a, a_hex);
    hex_of(&b, b_hex);
    const char *heads[2] = {a_hex, b_hex};
    keel_status s = gate_merge(r, base_hex, heads, 2, merge);
    assert_true(keel_status_is(s, &gate_codes, GATE_E_CONFLICT));
    unsigned long long index = 9;
    assert_true(keel_status_get_uint(s, "index", &index));
    assert_int_equal(index, 1); /* the second change is the one that conflicts */
    assert_string_equal(keel_status_get_str(s, "paths"), "shared.c");
    keel_status_free(s);
    /* each alone merges */
    assert_true(keel_ok(gate_merge(r, base_hex, heads + 1, 1, merge)));
    gate_repo_close(r);
}

static void test_bad_input(void **state)
{
    (void)state;
    gate_repo *r = NULL;
    keel_status s = gate_repo_open("/nonexistent/repo", &r);
    assert_true(KEEL_IS(s, KEEL_E_IO));
    assert_null(r);
    keel_status_free(s);
    git_oid base;
    const file f[] = {{"x", "x\n"}};
    commit_files(NULL, f, 1, "main", &base);
    assert_true(keel_ok(gate_repo_open(dir, &r)));
    char head[GATE_HEX];
    s = gate_branch_head(r, "no-such-branch", head);
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND));
    keel_status_free(s);
    s = gate_branch_head(r, "../../etc/passwd", head);
    assert_true(keel_status_is(s, &gate_codes, GATE_E_BAD_REF));
    keel_status_free(s);
    char merge[GATE_HEX];
    const char *heads[1] = {"zzzz"};
    s = gate_merge(r, "0000000000000000000000000000000000000000", heads, 1, merge);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
    gate_repo_close(r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_branch_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_checkout_and_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
