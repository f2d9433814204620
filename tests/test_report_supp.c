/*
 * test_report_supp.c - suppressions (report.suppressions): a report matched
 * by kind and stack is neither printed nor counted and its policy is count;
 * one that differs is reported as before; message and kind globs, src: with
 * a line, "..."; a bad file is refused with its name and line; the entry
 * report.gen-suppressions prints suppresses that very report when read back.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "keel/keel.h"

static char supp_path[256];

static void write_supp(const char *text)
{
    (void)snprintf(supp_path, sizeof(supp_path), "/tmp/keel-test-supp-%d.txt", (int)getpid());
    FILE *f = fopen(supp_path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void use_supp(void)
{
    char opts[400];
    (void)snprintf(opts, sizeof(opts), "report.suppressions=%s", supp_path);
    keel_status s = keel_options_set(opts);
    if (!keel_ok(s)) {
        char msg[512];
        (void)keel_status_format(s, msg, sizeof(msg));
        (void)fprintf(stderr, "options refused: %s\n", msg);
        _exit(3);
    }
}

/*
 * The reporters: their names are what the suppressions match.  Each does
 * something after its call, so that an optimising build keeps its frame (no
 * tail call).
 */
static volatile int calls_made;

__attribute__((noinline)) static keel_policy lives_with_it(const char *what)
{
    keel_policy p = KEEL_REPORT(KEEL_REPORT_USER, "known %s", what);
    calls_made++;
    return p;
}

__attribute__((noinline)) static keel_policy reports_it(const char *what)
{
    keel_policy p = KEEL_REPORT(KEEL_REPORT_USER, "new %s", what);
    calls_made++;
    return p;
}

__attribute__((noinline)) static keel_policy from_caller(const char *what)
{
    keel_policy p = lives_with_it(what);
    calls_made++;
    return p;
}

/*
 * Exits with 10 x the user reports counted + 2 if "one" (straight from
 * lives_with_it) was suppressed (policy count) + 1 if "two" (through
 * from_caller) was.
 */
static void report_both(void)
{
    use_supp();
    unsigned long long before = keel_report_count(KEEL_REPORT_USER); /* the parent's, forked */
    int one = lives_with_it("one") == KEEL_POLICY_COUNT;
    int two = from_caller("two") == KEEL_POLICY_COUNT;
    (void)reports_it("three");
    exit((int)(keel_report_count(KEEL_REPORT_USER) - before) * 10 + one * 2 + two);
}

/* With the policy abort, a suppressed report does not abort. */
static void suppressed_under_abort(void)
{
    use_supp();
    keel_report_set_policy(KEEL_REPORT_USER, KEEL_POLICY_ABORT);
    exit(lives_with_it("one") == KEEL_POLICY_COUNT ? 7 : 8);
}

static void expect_suppressed(const char *file_text, const char *exit_line)
{
    write_supp(file_text);
    char out[16384];
    int st = keel_test_run_child(report_both, out, sizeof(out));
    unlink(supp_path);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 13)
        fail_msg("exit %d, stderr:\n%s", WEXITSTATUS(st), out);
    assert_null(strstr(out, "known one"));
    assert_null(strstr(out, "known two"));
    assert_non_null(strstr(out, "keel: user: new three"));
    if (exit_line != NULL && strstr(out, exit_line) == NULL)
        fail_msg("no '%s' in:\n%s", exit_line, out);
}

static void test_suppressed_by_function(void **state)
{
    (void)state;
    expect_suppressed("# known\n{\n   lived-with\n   keel:user\n   fun:lives_with_it\n}\n",
                      "keel: 2 reports suppressed by '/tmp/keel-test-supp-");
    write_supp("{\n   lived-with\n   keel:user\n   fun:lives_with_it\n}\n");
    char out[4096];
    int st = keel_test_run_child(suppressed_under_abort, out, sizeof(out));
    unlink(supp_path);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 7);
}

static void test_suppressed_by_kind_glob_message_and_any_frames(void **state)
{
    (void)state;
    expect_suppressed("{\n  by-message\n  keel:us*\n  message:known *\n  ...\n}\n",
                      "'by-message' 2");
}

static void test_suppressed_by_source_file(void **state)
{
    (void)state;
    /* every report here is made in this file: all three */
    write_supp("{\n  by-file\n  keel:user\n  src:test_report_supp.c\n}\n");
    char out[16384];
    int st = keel_test_run_child(report_both, out, sizeof(out));
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 3 || strstr(out, "'by-file' 3") == NULL)
        fail_msg("exit %d, stderr:\n%s", WEXITSTATUS(st), out);
    /* and by its line: the line lives_with_it reports at, as a report of it shows */
    write_supp("{\n  by-nothing\n  keel:lock-order\n}\n");
    st = keel_test_run_child(report_both, out, sizeof(out));
    assert_true(WIFEXITED(st));
    const char *at = strstr(out, "lives_with_it+");
    at = at != NULL ? strstr(at, "test_report_supp.c:") : NULL;
    assert_non_null(at);
    int line = (int)strtol(at + strlen("test_report_supp.c:"), NULL, 10);
    char text[256];
    (void)snprintf(text, sizeof(text),
                   "{\n  by-line\n  keel:user\n  src:*/test_report_supp.c:%d\n}\n", line);
    write_supp(text);
    st = keel_test_run_child(report_both, out, sizeof(out));
    unlink(supp_path);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 13 || strstr(out, "'by-line' 2") == NULL)
        fail_msg("exit %d with\n%s\nstderr:\n%s", WEXITSTATUS(st), text, out);
}

static void test_stack_is_matched_in_order(void **state)
{
    (void)state;
    /* only "two" came through from_caller: "one" and "three" are reported and counted */
    write_supp("{\n  via-caller\n  keel:user\n  fun:lives_with_it\n  fun:from_caller\n}\n");
    char out[16384];
    int st = keel_test_run_child(report_both, out, sizeof(out));
    unlink(supp_path);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 21)
        fail_msg("exit %d, stderr:\n%s", WEXITSTATUS(st), out);
    assert_non_null(strstr(out, "keel: user: known one"));
    assert_null(strstr(out, "known two"));
}

static void test_other_kinds_and_lines_not_suppressed(void **state)
{
    (void)state;
    write_supp("{\n  wrong-kind\n  keel:lock-*\n  ...\n}\n{\n  wrong-line\n  keel:user\n"
               "  src:test_report_supp.c:1\n}\n{\n  wrong-message\n  keel:user\n"
               "  message:nothing like it\n}\n");
    char out[16384];
    int st = keel_test_run_child(report_both, out, sizeof(out));
    unlink(supp_path);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 30);
    assert_null(strstr(out, "suppressed by"));
}

static void expect_refused(const char *file_text, const char *what)
{
    write_supp(file_text);
    char opts[400];
    (void)snprintf(opts, sizeof(opts), "report.suppressions=%s", supp_path);
    keel_status s = keel_options_set(opts);
    unlink(supp_path);
    assert_false(keel_ok(s));
    char msg[512];
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    if (strstr(msg, what) == NULL || strstr(msg, supp_path) == NULL)
        fail_msg("'%s' does not say '%s' and the file's name", msg, what);
}

static void test_bad_files_refused_with_file_and_line(void **state)
{
    (void)state;
    expect_refused("fun:x\n", "line 1: an entry starts with '{', not 'fun:x'");
    expect_refused("{\n  name\n  user\n}\n", "line 3: the second line of an entry is keel:KIND");
    expect_refused("{\n  name\n  keel:user\n  func:x\n}\n", "line 4: a frame is fun:, src:");
    expect_refused("{\n  name\n  keel:user\n", "the entry opened at line 1 is not closed");
    expect_refused("{\n  name\n}\n", "an entry needs a name and a kind");
    expect_refused("{\n  name\n  keel:user\n  fun:\n}\n", "line 4: an empty pattern");
    expect_refused("{\n  a\n  keel:user\n{\n", "line 4: an entry is not closed");
    keel_status s = keel_options_set("report.suppressions=/nonexistent/keel-supp");
    assert_false(keel_ok(s));
    assert_non_null(strstr(keel_status_message(s), "cannot open suppressions file "
                                                   "'/nonexistent/keel-supp' (ENOENT)"));
    keel_status_free(s);
    /* nothing was applied: reports are not suppressed */
    assert_int_equal(KEEL_REPORT(KEEL_REPORT_USER, "still reported"), KEEL_POLICY_REPORT);
}

/*
 * An entry's lines are numbered as they are in the file, comment and blank lines counted (the
 * example of docs/reports.md has comments inside its entry); a kind that matches no kind of
 * report, and an empty message pattern, are refused as a frame's empty pattern is.
 */
static void test_bad_entries_name_their_own_line(void **state)
{
    (void)state;
    expect_refused("{\n  # a name\n  name\n  # the kind\n  user\n}\n",
                   "line 5: the second line of an entry is keel:KIND, not 'user'");
    expect_refused("{\n  # name\n  name\n\n  keel:user\n  # frames\n  fun:a\n  func:x\n}\n",
                   "line 8: a frame is fun:, src:, obj: or ..., not 'func:x'");
    expect_refused("{\n  name\n  keel:lock_order\n}\n",
                   "line 3: 'keel:lock_order' matches no kind of report (did you mean "
                   "'lock-order'?)");
    expect_refused("{\n  name\n  keel:[\n}\n", "line 3: 'keel:[' matches no kind of report");
    expect_refused("{\n  name\n  keel:user\n  message:\n}\n",
                   "line 4: an empty pattern in 'message:'");
}

/*
 * Run twice from one place, so that the stack is the same: first printing
 * each report with its suppression entry, then reading the entry back.
 */
static bool generating;

static void generated_child(void)
{
    if (generating) {
        if (!keel_ok(keel_options_set("report.gen-suppressions")))
            _exit(3);
    } else {
        use_supp();
    }
    unsigned long long before = keel_report_count(KEEL_REPORT_USER); /* the parent's, forked */
    (void)from_caller("generated");
    (void)reports_it("other");
    exit((int)(keel_report_count(KEEL_REPORT_USER) - before));
}

static void test_generated_entry_suppresses_the_report(void **state)
{
    (void)state;
    char out[16384];
    generating = true;
    int st = keel_test_run_child(generated_child, out, sizeof(out));
    generating = false;
    assert_true(WIFEXITED(st));
    const char *open = strstr(out, "  {\n");
    const char *close = open != NULL ? strstr(open, "  }\n") : NULL;
    if (open == NULL || close == NULL)
        fail_msg("no suppression entry in:\n%s", out);
    assert_non_null(strstr(open, "keel:user\n"));
    assert_non_null(strstr(open, "fun:lives_with_it\n"));
    char entry[8192];
    (void)snprintf(entry, sizeof(entry), "%.*s", (int)(close + 4 - open), open);
    write_supp(entry);
    st = keel_test_run_child(generated_child, out, sizeof(out));
    unlink(supp_path);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 1)
        fail_msg("exit %d with the entry\n%s\nstderr:\n%s", WEXITSTATUS(st), entry, out);
    assert_null(strstr(out, "known generated"));
    assert_non_null(strstr(out, "new other"));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suppressed_by_function),
        cmocka_unit_test(test_suppressed_by_kind_glob_message_and_any_frames),
        cmocka_unit_test(test_suppressed_by_source_file),
        cmocka_unit_test(test_stack_is_matched_in_order),
        cmocka_unit_test(test_other_kinds_and_lines_not_suppressed),
        cmocka_unit_test(test_bad_files_refused_with_file_and_line),
        cmocka_unit_test(test_bad_entries_name_their_own_line),
        cmocka_unit_test(test_generated_entry_suppresses_the_report),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
