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
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate_fixture.h"

#include "git.h"
#include "worktree.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    git_libgit2_init();
    (void)snprintf(dir, sizeof(dir), "/tmp/keel-git-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(git_repository_init(&fx_git, dir, 1 /* bare */), 0); /* fx_commit's */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    git_repository_free(fx_git);
    fx_git = NULL;
    char cmd[128];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir); /* our own temp dir, made by mkdtemp */
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

/*
 * A character the name may not have is named in the reason: a control
 * character in the terminal's escaped form, a UTF-8 character whole (it was
 * '?' for both, which named nothing).
 */
static void test_branch_character_named(void **state)
{
    (void)state;
    static const struct {
        const char *name, *why;
    } bad[] = {{"a\nb", "character '\\x0a' is not allowed"},
               {"a\x7f", "character '\\x7f' is not allowed"},
               {"caf\xc3\xa9", "character '\xc3\xa9' is not allowed"},
               /* the escaping under test: NOLINTNEXTLINE(misc-misleading-bidirectional) */
               {"x\xe2\x80\xaey", "character '\xe2\x80\xae' is not allowed"},
               {"\xff", "character '\xff' is not allowed"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char why[160];
        assert_true(gate_branch_why(bad[i].name, why, sizeof(why)));
        if (strstr(why, bad[i].why) == NULL)
            fail_msg("'%s': '%s', not '%s'", bad[i].name, why, bad[i].why);
    }
}

static void test_merge_checkout_and_cas(void **state)
{
    (void)state;
    git_oid base, a, b;
    const fx_file base_files[] = {{"README", "hello\n"}, {"gate.conf", "[gate]\n"}};
    fx_commit(NULL, base_files, 2, "main", &base);
    const fx_file fa[] = {{"a.c", "int a;\n"}};
    fx_commit(&base, fa, 1, "change-a", &a);
    const fx_file fb[] = {{"b.c", "int b;\n"}};
    fx_commit(&base, fb, 1, "change-b", &b);

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
    (void)snprintf(work, sizeof(work), "%s/work", dir);
    assert_true(keel_ok(gate_checkout(r, merge, NULL, work)));
    char path[160];
    (void)snprintf(path, sizeof(path), "%s/a.c", work);
    assert_int_equal(access(path, R_OK), 0);
    (void)snprintf(path, sizeof(path), "%s/README", work);
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
    const fx_file base_files[] = {{"shared.c", "int x = 0;\n"}};
    fx_commit(NULL, base_files, 1, "main", &base);
    const fx_file fa[] = {{"shared.c", "int x = 1;\n"}};
    fx_commit(&base, fa, 1, "one", &a);
    const fx_file fb[] = {{"shared.c", "int x = 2;\n"}};
    fx_commit(&base, fb, 1, "two", &b);
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
    const fx_file f[] = {{"x", "x\n"}};
    fx_commit(NULL, f, 1, "main", &base);
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
    assert_true(keel_status_has(s, &gate_codes, GATE_E_BAD_CHANGE)); /* the change's own id */
    keel_status_free(s);
    char base_hex[GATE_HEX];
    git_oid_tostr(base_hex, sizeof(base_hex), &base);
    heads[0] = base_hex;
    s = gate_merge(r, "zzzz", heads, 1, merge); /* what it is merged onto: the gate's */
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
    gate_repo_close(r);
}

/* ---- a reused work tree holds exactly the tree it was brought to ---- */

static char listing[4096];
static size_t listing_root;

static int list_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (strlen(path) <= listing_root)
        return 0;
    char entry[512];
    if (flag == FTW_F && S_ISREG(sb->st_mode)) {
        char content[128] = "";
        FILE *f = fopen(path, "r");
        size_t n = f != NULL ? fread(content, 1, sizeof(content) - 1, f) : 0;
        if (f != NULL)
            (void)fclose(f);
        content[n] = '\0';
        if (n > 0 && content[n - 1] == '\n')
            content[n - 1] = '\0';
        (void)snprintf(entry, sizeof(entry), "%s%s=%s\n", path + listing_root,
                       (sb->st_mode & 0111) != 0 ? "*" : "", content);
    } else {
        (void)snprintf(entry, sizeof(entry), "%s%s\n", path + listing_root,
                       flag == FTW_D ? "/" : (flag == FTW_SL ? "@" : "?"));
    }
    strncat(listing, entry, sizeof(listing) - strlen(listing) - 1);
    return 0;
}

static int by_line(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every entry under `root`, one a line, sorted: "path=content", "dir/", "fifo?". */
static const char *list_tree(const char *root)
{
    listing[0] = '\0';
    listing_root = strlen(root) + 1;
    assert_int_equal(nftw(root, list_one, 16, FTW_PHYS), 0);
    static char sorted[4096];
    char *lines[128] = {NULL};
    size_t n = 0;
    for (char *p = strtok(listing, "\n"); p != NULL && n < 128; p = strtok(NULL, "\n"))
        lines[n++] = p;
    qsort(lines, n, sizeof(lines[0]), by_line);
    sorted[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strncat(sorted, lines[i], sizeof(sorted) - strlen(sorted) - 2);
        strcat(sorted, "\n");
    }
    return sorted;
}

static void put_file(const char *root, const char *rel, const char *content)
{
    char path[256];
    (void)snprintf(path, sizeof(path), "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    (void)fputs(content, f);
    (void)fclose(f);
}

static void make_dir(const char *root, const char *rel)
{
    char path[256];
    (void)snprintf(path, sizeof(path), "%s/%s", root, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

/* What a careless job does to its work tree. */
static void dirty(const char *work)
{
    char path[256];
    put_file(work, "src/a.c", "int a = 666;\n");           /* a tracked file modified */
    (void)snprintf(path, sizeof(path), "%s/README", work); /* one deleted */
    assert_int_equal(unlink(path), 0);
    (void)snprintf(path, sizeof(path), "%s/.gitignore", work); /* one made executable */
    assert_int_equal(chmod(path, 0755), 0);
    put_file(work, "junk.txt", "junk\n"); /* files left behind */
    make_dir(work, "build");
    put_file(work, "build/out.o", "object\n");
    put_file(work, "test.log", "ignored\n"); /* one .gitignore ignores */
    make_dir(work, ".git");                  /* a repository the job made */
    put_file(work, ".git/HEAD", "ref: refs/heads/x\n");
    make_dir(work, "build/.git");
    put_file(work, "build/.git/config", "[core]\n");
    (void)snprintf(path, sizeof(path), "%s/src/pipe", work); /* a special file */
    assert_int_equal(mkfifo(path, 0644), 0);
}

static void test_worktree_reused_exactly(void **state)
{
    (void)state;
    git_oid a, b;
    const fx_file fa[] = {{"README", "hello\n"},
                          {".gitignore", "*.log\n"},
                          {"src/a.c", "int a;\n"},
                          {"src/sub/deep.c", "deep\n"}};
    fx_commit(NULL, fa, 4, "main", &a);
    const fx_file fb[] = {
        {"src/b.c", "int b;\n"}, {"src/sub/deep.c", NULL}, {"README", "hello b\n"}};
    fx_commit(&a, fb, 3, "b", &b);
    char a_hex[GATE_HEX], b_hex[GATE_HEX];
    hex_of(&a, a_hex);
    hex_of(&b, b_hex);
    static const char tree_a[] = ".gitignore=*.log\nREADME=hello\nsrc/\nsrc/a.c=int a;\n"
                                 "src/sub/\nsrc/sub/deep.c=deep\n";
    static const char tree_b[] = ".gitignore=*.log\nREADME=hello b\nsrc/\nsrc/a.c=int a;\n"
                                 "src/b.c=int b;\n";
    gate_repo *r = NULL;
    assert_true(keel_ok(gate_repo_open(dir, &r)));
    char work[128];
    (void)snprintf(work, sizeof(work), "%s/work", dir);
    gate_worktree *w = NULL;
    assert_true(keel_ok(gate_worktree_new(work, &w)));
    assert_string_equal(gate_worktree_dir(w), work);

    assert_true(keel_ok(gate_worktree_checkout(w, r, a_hex)));
    assert_string_equal(list_tree(work), tree_a);
    /* from A, dirtied, to B: exactly B */
    dirty(work);
    assert_true(keel_ok(gate_worktree_checkout(w, r, b_hex)));
    assert_string_equal(list_tree(work), tree_b);
    /* from B, partly dirtied, back to A; then to A again (a retry on the same tree) */
    put_file(work, "src/b.c", "int b = 1;\n");
    put_file(work, "junk.txt", "junk\n");
    assert_true(keel_ok(gate_worktree_checkout(w, r, a_hex)));
    assert_string_equal(list_tree(work), tree_a);
    dirty(work);
    assert_true(keel_ok(gate_worktree_checkout(w, r, a_hex)));
    assert_string_equal(list_tree(work), tree_a);
    /* a tracked file replaced by a directory, a directory by a file */
    char path[256];
    (void)snprintf(path, sizeof(path), "%s/README", work);
    assert_int_equal(unlink(path), 0);
    make_dir(work, "README");
    put_file(work, "README/x", "x\n");
    (void)snprintf(path, sizeof(path), "rm -rf -- '%s/src/sub'", work);
    assert_int_equal(system(path), 0);
    put_file(work, "src/sub", "not a directory\n");
    assert_true(keel_ok(gate_worktree_checkout(w, r, b_hex)));
    assert_string_equal(list_tree(work), tree_b);
    /* what it holds forgotten: emptied and written whole */
    dirty(work);
    gate_worktree_forget(w);
    assert_true(keel_ok(gate_worktree_checkout(w, r, a_hex)));
    assert_string_equal(list_tree(work), tree_a);
    /* a commit that is not there: an error, and what it holds is unknown */
    keel_status s = gate_worktree_checkout(w, r, "0123456789012345678901234567890123456789");
    assert_false(keel_ok(s));
    keel_status_free(s);
    put_file(work, "junk.txt", "junk\n");
    assert_true(keel_ok(gate_worktree_checkout(w, r, b_hex)));
    assert_string_equal(list_tree(work), tree_b);
    gate_worktree_delete(w);
    gate_repo_close(r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_branch_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_branch_character_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_checkout_and_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worktree_reused_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
