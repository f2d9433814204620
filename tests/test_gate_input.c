/*
 * test_gate_input.c - input that cannot stop the queue: whatever someone can
 * push is at worst that change's rejection (or that ref's refusal), with a
 * reason, never an error that stops `run`.
 *
 *   - one unit test per rule of gate_tree_name_check: the names of tree
 *     entries git refuses to check out.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate_fixture.h"

enum { MODE_TREE = 0040000, MODE_BLOB = 0100644, MODE_LINK = 0120000 };

/* ---- the rules for a tree entry's name, one test each ---------------------------------- */

/* A name, its length (0: strlen), its mode, and what its refusal says (NULL: accepted). */
typedef struct name_case {
    const char *name;
    size_t len;
    unsigned mode;
    const char *says;
} name_case;

static void check_names(const name_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const name_case *c = &cases[i];
        size_t len = c->len > 0 ? c->len : strlen(c->name);
        keel_status s = gate_tree_name_check(c->name, len, c->mode);
        char shown[256];
        gate_tree_name_show(c->name, len, shown, sizeof(shown));
        if (c->says == NULL && !keel_ok(s))
            fail_msg("'%s' (mode %o) was refused: %s", shown, c->mode, keel_status_message(s));
        if (c->says != NULL && keel_ok(s))
            fail_msg("'%s' (mode %o) was accepted", shown, c->mode);
        if (c->says != NULL && (!keel_status_is(s, &gate_codes, GATE_E_BAD_CHANGE) ||
                                strstr(keel_status_message(s), c->says) == NULL))
            fail_msg("'%s' refused as '%s', not with '%s'", shown, keel_status_message(s), c->says);
        keel_status_free(s);
    }
}

#define CHECK_NAMES(cases) check_names(cases, sizeof(cases) / sizeof(cases[0]))

static void test_name_empty_slash_nul(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {"", 0, MODE_BLOB, "an empty file name"},
        {"a/b", 0, MODE_BLOB, "holds a '/'"},
        {"/", 0, MODE_TREE, "holds a '/'"},
        {"a\0b", 3, MODE_BLOB, "holds a NUL byte"},
        {"a b", 0, MODE_BLOB, NULL},
        {"a\\b", 0, MODE_BLOB, NULL}, /* Linux */
    };
    CHECK_NAMES(cases);
}

static void test_name_dot_dotdot(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {".", 0, MODE_TREE, "is not a file name"},
        {"..", 0, MODE_TREE, "is not a file name"},
        {"..", 0, MODE_BLOB, "is not a file name"},
        {"...", 0, MODE_BLOB, NULL},
        {"..a", 0, MODE_BLOB, NULL},
        {".a", 0, MODE_BLOB, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_dotgit_any_case(void **state)
{
    (void)state;
    static const char own[] = "the repository's own directory";
    static const name_case cases[] = {
        {".git", 0, MODE_TREE, own},
        {".GIT", 0, MODE_BLOB, own},
        {".Git", 0, MODE_LINK, own},
        {".gIT", 0, MODE_TREE, own},
        {".gitignore", 0, MODE_BLOB, NULL},
        {".github", 0, MODE_TREE, NULL},
        {".git-blame-ignore-revs", 0, MODE_BLOB, NULL},
        {"foo.git", 0, MODE_TREE, NULL},
        {"git", 0, MODE_TREE, NULL},
        {".gi", 0, MODE_TREE, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_ntfs_trailing_dots_and_spaces(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {".git.", 0, MODE_TREE, "to NTFS"},      {".git ", 0, MODE_TREE, "to NTFS"},
        {".GIT. . ..", 0, MODE_TREE, "to NTFS"}, {".git.x", 0, MODE_TREE, NULL},
        {".git x", 0, MODE_TREE, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_ntfs_data_stream(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {".git::$INDEX_ALLOCATION", 0, MODE_TREE, "to NTFS"},
        {".git:x", 0, MODE_BLOB, "to NTFS"},
        {".git. :$DATA", 0, MODE_BLOB, "to NTFS"},
        {"git~1:stream", 0, MODE_BLOB, "to NTFS"},
        {"x:.git", 0, MODE_BLOB, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_ntfs_short_name(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {"git~1", 0, MODE_TREE, "to NTFS"},   {"GIT~1", 0, MODE_TREE, "to NTFS"},
        {"Git~1 .", 0, MODE_TREE, "to NTFS"}, {"git~2", 0, MODE_TREE, NULL},
        {"git~10", 0, MODE_TREE, NULL},       {"git~1x", 0, MODE_TREE, NULL},
        {"xgit~1", 0, MODE_TREE, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_ntfs_backslash(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {"x\\.git", 0, MODE_TREE, "after a '\\'"},
        {"a\\b\\GIT~1", 0, MODE_BLOB, "after a '\\'"},
        {"x\\.git\\y", 0, MODE_BLOB, "after a '\\'"},
        {"x\\.gitx", 0, MODE_BLOB, NULL},
        {"x\\git", 0, MODE_BLOB, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_hfs_ignorable_code_points(void **state)
{
    (void)state;
    /* U+200C..U+200F, U+202A..U+202E, U+206A..U+206F, U+FEFF: HFS+ drops them */
    static const name_case cases[] = {
        {".g\xe2\x80\x8cit", 0, MODE_TREE, "to HFS+"},
        {"\xe2\x80\x8f.git", 0, MODE_TREE, "to HFS+"},
        {".GI\xe2\x80\xaeT", 0, MODE_TREE, "to HFS+"},
        {".git\xe2\x81\xaf", 0, MODE_TREE, "to HFS+"},
        {".\xef\xbb\xbfgit", 0, MODE_TREE, "to HFS+"},
        {".git\xe2\x80\x8d\xe2\x80\x8c", 0, MODE_BLOB, "to HFS+"},
        /* as git: malformed UTF-8 right after ".git" is taken as its end */
        {".git\xff", 0, MODE_TREE, "to HFS+"},
        /* code points HFS+ keeps */
        {".g\xe2\x80\x8bit", 0, MODE_TREE, NULL}, /* U+200B */
        {".g\xe2\x80\x80it", 0, MODE_TREE, NULL}, /* U+2000 */
        {".gi\xc3\xa9t", 0, MODE_TREE, NULL},
        {".g\xe2\x80\x8cithub", 0, MODE_TREE, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_symlinked_git_files(void **state)
{
    (void)state;
    static const char link[] = "symbolic link";
    static const name_case cases[] = {
        {".gitmodules", 0, MODE_LINK, link},
        {".GITMODULES", 0, MODE_LINK, link},
        {"GITMOD~1", 0, MODE_LINK, link},
        {".gitmodules .", 0, MODE_LINK, link},
        {".gitattributes", 0, MODE_LINK, link},
        {".gitignore", 0, MODE_LINK, link},
        {".g\xe2\x80\x8citmodules", 0, MODE_LINK, link},
        /* the same names as files, and other links, are fine */
        {".gitmodules", 0, MODE_BLOB, NULL},
        {".gitattributes", 0, MODE_BLOB, NULL},
        {".gitignore", 0, MODE_BLOB, NULL},
        {"gitmodules", 0, MODE_LINK, NULL},
        {".gitmodulesx", 0, MODE_LINK, NULL},
        {"link", 0, MODE_LINK, NULL},
    };
    CHECK_NAMES(cases);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_empty_slash_nul),
        cmocka_unit_test(test_name_dot_dotdot),
        cmocka_unit_test(test_name_dotgit_any_case),
        cmocka_unit_test(test_name_ntfs_trailing_dots_and_spaces),
        cmocka_unit_test(test_name_ntfs_data_stream),
        cmocka_unit_test(test_name_ntfs_short_name),
        cmocka_unit_test(test_name_ntfs_backslash),
        cmocka_unit_test(test_name_hfs_ignorable_code_points),
        cmocka_unit_test(test_name_symlinked_git_files),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
