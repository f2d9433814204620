/*
 * test_options.c - the KEEL_OPTIONS parser: good and bad strings, option files,
 * the environment variable, "did you mean" suggestions and the printed table.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "keel/keel.h"
#include "options_table.h"

/* ---- helpers ----------------------------------------------------------------------- */

/* The current value of an option; fails the test when it cannot be read. */
static const char *get(const char *name)
{
    static char buf[4096];
    keel_status s = keel_options_get(name, buf, sizeof(buf));
    if (!keel_ok(s)) {
        char text[1024];
        (void)keel_status_format(s, text, sizeof(text));
        keel_status_free(s);
        fail_msg("keel_options_get(\"%s\") failed: %s", name, text);
    }
    return buf;
}

static void set_ok(const char *text)
{
    keel_status s = keel_options_set(text);
    if (!keel_ok(s)) {
        char msg[1024];
        (void)keel_status_format(s, msg, sizeof(msg));
        keel_status_free(s);
        fail_msg("keel_options_set(\"%s\") failed: %s", text, msg);
    }
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL)
        fail_msg("'%s' not found in:\n%s", needle, haystack);
}

/*
 * keel_options_set(text) must fail with `code`; its formatted message must
 * contain every needle (NULL-terminated list), its "position" detail must be
 * `position` and its "token" detail `token` (NULL: not checked).
 */
static void expect_error(const char *text, keel_code code, unsigned long long position,
                         const char *token, ...)
{
    keel_status s = keel_options_set(text);
    assert_false(keel_ok(s));
    char msg[2048];
    (void)keel_status_format(s, msg, sizeof(msg));
    if (!KEEL_IS(s, code))
        fail_msg("'%s': expected keel.%s, got: %s", text,
                 keel_code_name(&keel_codespace_keel, (int)code), msg);
    unsigned long long pos = 0;
    assert_true(keel_status_get_uint(s, "position", &pos));
    assert_int_equal(pos, position);
    char where[64];
    (void)snprintf(where, sizeof(where), "at position %llu", position);
    assert_contains(msg, where);
    if (token != NULL) {
        const char *t = keel_status_get_str(s, "token");
        assert_non_null(t);
        assert_string_equal(t, token);
    }
    va_list ap;
    va_start(ap, token);
    for (const char *needle = va_arg(ap, const char *); needle != NULL;
         needle = va_arg(ap, const char *))
        assert_contains(msg, needle);
    va_end(ap);
    keel_status_free(s);
}

/* ---- good strings ------------------------------------------------------------------ */

static void test_bools(void **state)
{
    (void)state;
    set_ok("assert.expensive=0");
    assert_string_equal(get("assert.expensive"), "false");
    set_ok("assert.expensive");
    assert_string_equal(get("assert.expensive"), "true");
    set_ok("assert.expensive=false");
    assert_string_equal(get("assert.expensive"), "false");
    set_ok("assert.expensive=1");
    assert_string_equal(get("assert.expensive"), "true");
    set_ok("assert.expensive=0;report.backtrace=false");
    assert_string_equal(get("assert.expensive"), "false");
    assert_string_equal(get("report.backtrace"), "false");
    set_ok("assert.expensive=true");
    assert_string_equal(get("assert.expensive"), "true");
    set_ok("report.backtrace=yes;error.track=off");
    assert_string_equal(get("report.backtrace"), "true");
    assert_string_equal(get("error.track"), "false");
    set_ok("report.backtrace=no;error.track=on");
    assert_string_equal(get("report.backtrace"), "false");
    assert_string_equal(get("error.track"), "true");
}

static void test_integers(void **state)
{
    (void)state;
    set_ok("report.frames=12");
    assert_string_equal(get("report.frames"), "12");
    set_ok("report.frames=1;watchdog.scale=0");
    assert_string_equal(get("report.frames"), "1");
    assert_string_equal(get("watchdog.scale"), "0");
    set_ok("report.frames=64;report.max-printed=1000000000");
    assert_string_equal(get("report.frames"), "64");
    assert_string_equal(get("report.max-printed"), "1000000000");
    /* the last of two items for one option wins */
    set_ok("report.frames=10;report.frames=20");
    assert_string_equal(get("report.frames"), "20");
}

static void test_strings_and_quotes(void **state)
{
    (void)state;
    set_ok("report.file=/tmp/keel-test-none/plain.jsonl");
    assert_string_equal(get("report.file"), "/tmp/keel-test-none/plain.jsonl");
    set_ok("report.file=\"/tmp/a;b c\";report.frames=9");
    assert_string_equal(get("report.file"), "/tmp/a;b c");
    assert_string_equal(get("report.frames"), "9");
    set_ok("report.file=\"say \\\"hi\\\" back\\\\slash\"");
    assert_string_equal(get("report.file"), "say \"hi\" back\\slash");
    set_ok("report.file=\"  # not a comment ; \"");
    assert_string_equal(get("report.file"), "  # not a comment ; ");
    set_ok("report.file=\"\"");
    assert_string_equal(get("report.file"), "");
}

/* Only \" and \\ are escapes; any other backslash is kept as it is. */
static void test_quoted_other_backslash_kept(void **state)
{
    (void)state;
    set_ok("report.file=\"a\\qb\\n\"");
    assert_string_equal(get("report.file"), "a\\qb\\n");
}

static void test_blanks_and_empty_items(void **state)
{
    (void)state;
    set_ok("report.frames=5;assert.expensive=0");
    set_ok("  \t report.frames \t=\t 33  ;;  ; assert.expensive  ;  report.file =  /tmp/x y  ;");
    assert_string_equal(get("report.frames"), "33");
    assert_string_equal(get("assert.expensive"), "true");
    assert_string_equal(get("report.file"), "/tmp/x y");
    set_ok("");
    set_ok(";;;");
    set_ok("   ");
    assert_string_equal(get("report.frames"), "33");
}

static void test_report_policies(void **state)
{
    (void)state;
    set_ok("report.lock-order=abort; report.stress = report ;report.leak=count");
    assert_int_equal(keel_report_policy(KEEL_REPORT_LOCK_ORDER), KEEL_POLICY_ABORT);
    assert_int_equal(keel_report_policy(KEEL_REPORT_STRESS), KEEL_POLICY_REPORT);
    assert_int_equal(keel_report_policy(KEEL_REPORT_LEAK), KEEL_POLICY_COUNT);
    assert_string_equal(get("report.lock-order"), "abort");
    assert_string_equal(get("report.stress"), "report");
    assert_string_equal(get("report.leak"), "count");
    set_ok("report.lock-order=count;report.user=abort");
    assert_int_equal(keel_report_policy(KEEL_REPORT_LOCK_ORDER), KEEL_POLICY_COUNT);
    assert_int_equal(keel_report_policy(KEEL_REPORT_USER), KEEL_POLICY_ABORT);
    assert_string_equal(get("report.user"), "abort");
    /* and the other way: keel_report_set_policy shows through keel_options_get */
    keel_report_set_policy(KEEL_REPORT_USER, KEEL_POLICY_REPORT);
    assert_string_equal(get("report.user"), "report");
}

static void test_get_unknown_and_small_buffer(void **state)
{
    (void)state;
    char buf[64];
    keel_status s = keel_options_get("report.fiel", buf, sizeof(buf));
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND));
    assert_contains(keel_status_message(s), "'report.fiel'");
    assert_contains(keel_status_message(s), "did you mean 'report.file'");
    keel_status_free(s);
    s = keel_options_get("no.such.thing.at.all", buf, sizeof(buf));
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND));
    assert_null(strstr(keel_status_message(s), "did you mean"));
    keel_status_free(s);
    set_ok("report.frames=64");
    s = keel_options_get("report.frames", buf, 2);
    assert_true(KEEL_IS(s, KEEL_E_RANGE));
    unsigned long long needed = 0;
    assert_true(keel_status_get_uint(s, "needed", &needed));
    assert_int_equal(needed, 3);
    keel_status_free(s);
    s = keel_options_get("report.frames", buf, 3);
    assert_true(keel_ok(s));
    assert_string_equal(buf, "64");
}

/* ---- bad strings ------------------------------------------------------------------- */

static void test_error_unknown_name_suggests(void **state)
{
    (void)state;
    expect_error("report.fle=x", KEEL_E_NOTFOUND, 1, "report.fle", "unknown option 'report.fle'",
                 "did you mean 'report.file'?", (const char *)NULL);
    expect_error("report.frames=3; asert.expensive", KEEL_E_NOTFOUND, 18, "asert.expensive",
                 "unknown option 'asert.expensive'", "did you mean 'assert.expensive'?",
                 (const char *)NULL);
    keel_status s = keel_options_set("report.fle=x");
    const char *sugg = keel_status_get_str(s, "suggestion");
    assert_non_null(sugg);
    assert_string_equal(sugg, "report.file");
    keel_status_free(s);
    /* nothing near: no suggestion */
    s = keel_options_set("zzzzzzzzzzzz=1");
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND));
    assert_null(keel_status_get_str(s, "suggestion"));
    assert_null(strstr(keel_status_message(s), "did you mean"));
    keel_status_free(s);
}

static void test_error_missing_value(void **state)
{
    (void)state;
    expect_error("report.frames=;assert.expensive", KEEL_E_PARSE, 15, ";",
                 "missing value for option 'report.frames'", (const char *)NULL);
    expect_error("assert.expensive; report.file =   ", KEEL_E_PARSE, 35, "",
                 "missing value for option 'report.file'", (const char *)NULL);
    /* a bare name is only for booleans */
    expect_error("report.frames", KEEL_E_PARSE, 1, "report.frames",
                 "option 'report.frames' needs a value", (const char *)NULL);
    expect_error("=5", KEEL_E_PARSE, 1, "=", "empty option name", (const char *)NULL);
}

static void test_error_bad_integer(void **state)
{
    (void)state;
    expect_error("report.frames=12x", KEEL_E_PARSE, 15, "12x",
                 "bad value '12x' for option 'report.frames': expected an integer",
                 (const char *)NULL);
    expect_error("report.frames=0x10", KEEL_E_PARSE, 15, "0x10", "expected an integer",
                 (const char *)NULL);
    expect_error("watchdog.tick-ms=ten", KEEL_E_PARSE, 18, "ten", "'ten'", (const char *)NULL);
}

/*
 * An integer is decimal digits, with '-' before a negative one: strtoll's leading '+' and
 * blanks (inside quotes: the parser drops those around an unquoted value) are refused.
 */
static void test_error_integer_sign_and_blanks(void **state)
{
    (void)state;
    expect_error("report.frames=+5", KEEL_E_PARSE, 15, "+5",
                 "bad value '+5' for option 'report.frames': expected an integer",
                 (const char *)NULL);
    expect_error("report.frames=\"+5\"", KEEL_E_PARSE, 15, NULL,
                 "bad value '+5' for option 'report.frames'", (const char *)NULL);
    expect_error("report.frames=\" 5\"", KEEL_E_PARSE, 15, NULL,
                 "bad value ' 5' for option 'report.frames': expected an integer",
                 (const char *)NULL);
    expect_error("report.frames=\"\t5\"", KEEL_E_PARSE, 15, NULL,
                 "for option 'report.frames': expected an integer", (const char *)NULL);
    expect_error("report.frames=\"5 \"", KEEL_E_PARSE, 15, NULL,
                 "bad value '5 ' for option 'report.frames': expected an integer",
                 (const char *)NULL);
    expect_error("stress.seed=+0", KEEL_E_PARSE, 13, "+0", "expected an integer",
                 (const char *)NULL);
    expect_error("report.frames=-", KEEL_E_PARSE, 15, "-", "expected an integer",
                 (const char *)NULL);
    expect_error("report.frames=- 5", KEEL_E_PARSE, 15, "- 5", "expected an integer",
                 (const char *)NULL);
    /* a negative number is an integer: out of the range of every option keel has */
    expect_error("report.frames=-5", KEEL_E_RANGE, 15, "-5", "out of range [1, 64]",
                 (const char *)NULL);
    /* blanks around an unquoted value are the syntax's, not the number's */
    set_ok("report.frames= 7 ");
    assert_string_equal(get("report.frames"), "7");
    set_ok("report.frames=\"8\"");
    assert_string_equal(get("report.frames"), "8");
    set_ok("report.frames=24");
}

/*
 * A long value in an error is cut, with "...", so that the message still names the option:
 * a quoted one longer than the 4095 bytes a value may have, and a bad value of any length.
 */
static void test_error_long_value_names_option(void **state)
{
    (void)state;
    size_t n = 5000;
    char *text = (char *)malloc(n + 64);
    assert_non_null(text);
    /* a quoted value over the limit */
    int at = snprintf(text, n + 64, "report.file=\"");
    memset(text + at, 'a', n);
    (void)snprintf(text + at + n, 64, "\"");
    expect_error(text, KEEL_E_PARSE, 13, NULL,
                 "value of option 'report.file' is longer than 4095 bytes", (const char *)NULL);
    /* bad values of 600 bytes for an integer, a boolean and a policy */
    static const char *const opts[] = {"report.frames", "report.backtrace", "report.stress"};
    static const char *const why[] = {"for option 'report.frames': expected an integer",
                                      "for boolean option 'report.backtrace' (use",
                                      "for option 'report.stress' (use abort, report or count)"};
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        at = snprintf(text, n + 64, "%s=", opts[i]);
        memset(text + at, 'x', 600);
        text[at + 600] = '\0';
        char head[128];
        (void)snprintf(head, sizeof(head), "bad value 'xxxxxxxxxxxxxxxx");
        expect_error(text, KEEL_E_PARSE, (unsigned long long)at + 1, NULL, head, "x...' ", why[i],
                     (const char *)NULL);
    }
    free(text);
}

static void test_error_integer_out_of_range(void **state)
{
    (void)state;
    expect_error("report.frames=65", KEEL_E_RANGE, 15, "65",
                 "value '65' for option 'report.frames' is out of range [1, 64]",
                 (const char *)NULL);
    expect_error("report.frames=0", KEEL_E_RANGE, 15, "0", "out of range [1, 64]",
                 (const char *)NULL);
    expect_error("report.frames=-3", KEEL_E_RANGE, 15, "-3", "out of range", (const char *)NULL);
    expect_error("report.frames=99999999999999999999999", KEEL_E_RANGE, 15,
                 "99999999999999999999999", "out of range", (const char *)NULL);
    keel_status s = keel_options_set("watchdog.tick-ms=1001");
    assert_true(KEEL_IS(s, KEEL_E_RANGE));
    long long lo = 0, hi = 0;
    assert_true(keel_status_get_int(s, "min", &lo));
    assert_true(keel_status_get_int(s, "max", &hi));
    assert_int_equal(lo, 1);
    assert_int_equal(hi, 1000);
    keel_status_free(s);
}

static void test_error_unterminated_quote(void **state)
{
    (void)state;
    expect_error("report.file=\"abc;report.frames=3", KEEL_E_PARSE, 13, "\"abc;report.frames=3",
                 "unterminated quoted value of option 'report.file'", (const char *)NULL);
    /* a backslash before the closing quote escapes it: still unterminated */
    expect_error("report.file=\"abc\\\"", KEEL_E_PARSE, 13, "\"abc\\\"",
                 "unterminated quoted value", (const char *)NULL);
}

static void test_error_bad_escape_and_stray_quote(void **state)
{
    (void)state;
    /* a lone backslash at the very end of the text */
    expect_error("report.file=\"x\\", KEEL_E_PARSE, 13, "\"x\\", "unterminated quoted value",
                 (const char *)NULL);
    /* a quote in the middle of an unquoted value */
    expect_error("report.file=ab\"c", KEEL_E_PARSE, 15, "\"",
                 "stray '\"' in the value of option 'report.file'", (const char *)NULL);
}

static void test_error_bad_bool(void **state)
{
    (void)state;
    expect_error("assert.expensive=maybe", KEEL_E_PARSE, 18, "maybe",
                 "bad value 'maybe' for boolean option 'assert.expensive'", (const char *)NULL);
}

static void test_error_bad_policy_word(void **state)
{
    (void)state;
    expect_error("report.assert=abrt", KEEL_E_PARSE, 15, "abrt",
                 "bad value 'abrt' for option 'report.assert'", "did you mean 'abort'?",
                 (const char *)NULL);
    expect_error("report.lock-order=ignore", KEEL_E_PARSE, 19, "ignore",
                 "(use abort, report or count)", (const char *)NULL);
}

static void test_error_bad_kind_name(void **state)
{
    (void)state;
    expect_error("report.lock-ordr=abort", KEEL_E_NOTFOUND, 1, "report.lock-ordr",
                 "unknown option 'report.lock-ordr'", "did you mean 'report.lock-order'?",
                 (const char *)NULL);
    expect_error("report.xyzzyplugh=count", KEEL_E_NOTFOUND, 1, "report.xyzzyplugh",
                 "unknown option 'report.xyzzyplugh'", (const char *)NULL);
}

static void test_error_trailing_garbage(void **state)
{
    (void)state;
    expect_error("report.file=\"a\" x", KEEL_E_PARSE, 17, "x",
                 "unexpected 'x' after a quoted value", (const char *)NULL);
    expect_error("assert.expensive yes", KEEL_E_PARSE, 18, "y",
                 "expected '=' or ';' after option name 'assert.expensive', found 'y'",
                 (const char *)NULL);
}

static void test_error_illegal_name_chars(void **state)
{
    (void)state;
    expect_error("Report.file=x", KEEL_E_PARSE, 1, "R", "bad character 'R'", "'Report.file'",
                 (const char *)NULL);
    expect_error("report.frames=2;report.File=x", KEEL_E_PARSE, 24, "F", "bad character 'F'",
                 (const char *)NULL);
    expect_error("report.fi$le=x", KEEL_E_PARSE, 10, "$", "bad character '$'", (const char *)NULL);
    expect_error("9report=1", KEEL_E_PARSE, 1, "9", "bad character '9'", (const char *)NULL);
}

static void test_all_or_nothing(void **state)
{
    (void)state;
    set_ok("report.frames=7;assert.expensive=0;report.lock-order=report;report.file=/tmp/k-a");
    keel_status s = keel_options_set(
        "report.frames=10;assert.expensive;report.lock-order=abort;report.file=/tmp/k-b;"
        "report.frames=abc");
    assert_true(KEEL_IS(s, KEEL_E_PARSE));
    keel_status_free(s);
    assert_string_equal(get("report.frames"), "7");
    assert_string_equal(get("assert.expensive"), "false");
    assert_string_equal(get("report.lock-order"), "report");
    assert_int_equal(keel_report_policy(KEEL_REPORT_LOCK_ORDER), KEEL_POLICY_REPORT);
    assert_string_equal(get("report.file"), "/tmp/k-a");
    /* a failure in the last item counts just as much as one in the first */
    s = keel_options_set("report.frames=11;bogus.option");
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND));
    keel_status_free(s);
    assert_string_equal(get("report.frames"), "7");
}

static void test_set_null(void **state)
{
    (void)state;
    keel_status s = keel_options_set(NULL);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
}

/* ---- option files ------------------------------------------------------------------ */

static void write_temp(char *path, size_t size, const char *content)
{
    (void)snprintf(path, size, "/tmp/keel-test-options-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(content);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
}

static void test_load_file(void **state)
{
    (void)state;
    set_ok("report.frames=3;assert.expensive=0;report.max-printed=100");
    char path[64];
    write_temp(path, sizeof(path),
               "# keel options for the test\n"
               "report.frames = 12\n"
               "\n"
               "   # an indented comment; report.frames=13\n"
               "assert.expensive; report.max-printed=7\n"
               "report.lock-order=count   \n"
               "report.file=\"/tmp/with # hash\"\n");
    keel_status s = keel_options_load(path);
    unlink(path);
    assert_true(keel_ok(s));
    assert_string_equal(get("report.frames"), "12");
    assert_string_equal(get("assert.expensive"), "true");
    assert_string_equal(get("report.max-printed"), "7");
    assert_int_equal(keel_report_policy(KEEL_REPORT_LOCK_ORDER), KEEL_POLICY_COUNT);
    assert_string_equal(get("report.file"), "/tmp/with # hash");
}

static void test_load_file_error_names_file_and_line(void **state)
{
    (void)state;
    set_ok("report.frames=3;assert.expensive=0");
    char path[64];
    write_temp(path, sizeof(path),
               "# first line\n"
               "assert.expensive\n"
               "report.frames=x1\n"
               "report.max-printed=5\n");
    keel_status s = keel_options_load(path);
    unlink(path);
    assert_true(KEEL_IS(s, KEEL_E_PARSE));
    char msg[2048];
    (void)keel_status_format(s, msg, sizeof(msg));
    assert_contains(msg, path);
    assert_contains(msg, "at line 3, column 15");
    assert_contains(msg, "'x1'");
    keel_status_free(s);
    /* all or nothing across lines too */
    assert_string_equal(get("assert.expensive"), "false");
    assert_string_equal(get("report.frames"), "3");

    /* an unknown name on line 2 */
    write_temp(path, sizeof(path), "report.frames=4\n  report.fiel=/tmp/x\n");
    s = keel_options_load(path);
    unlink(path);
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND));
    (void)keel_status_format(s, msg, sizeof(msg));
    assert_contains(msg, path);
    assert_contains(msg, "at line 2, column 3");
    assert_contains(msg, "did you mean 'report.file'?");
    keel_status_free(s);
    assert_string_equal(get("report.frames"), "3");
}

static void test_load_missing_file(void **state)
{
    (void)state;
    const char *path = "/tmp/keel-test-no-such-dir/missing.options";
    keel_status s = keel_options_load(path);
    assert_false(keel_ok(s));
    assert_true(KEEL_IS(s, KEEL_E_SYS));
    char msg[2048];
    (void)keel_status_format(s, msg, sizeof(msg));
    assert_contains(msg, "cannot open option file '/tmp/keel-test-no-such-dir/missing.options'");
    assert_contains(msg, "ENOENT");
    keel_status_free(s);
    s = keel_options_load(NULL);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
}

/*
 * An option file or stress file must be a regular file: a FIFO with no writer is an
 * error at once (not a program that hangs at start), a directory says it is one.
 * SIGALRM ends the test if the open blocks.
 */
static void test_load_not_regular_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/keel-test-opts-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[sizeof(dir) + 16];
    (void)snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    (void)alarm(10);
    char msg[2048];
    keel_status s = keel_options_load(fifo);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    assert_string_equal(keel_status_get_str(s, "path"), fifo);
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    assert_contains(msg, "is a FIFO: it must be a regular file");
    char text[256];
    (void)snprintf(text, sizeof(text), "report.frames=5; stress.file=%s", fifo);
    s = keel_options_set(text);
    assert_true(KEEL_IS(s, KEEL_E_PARSE));
    assert_contains(keel_status_message(s), "is a FIFO: it must be a regular file");
    keel_status_free(s);
    (void)alarm(0);
    assert_string_equal(get("report.frames"), "24"); /* nothing applied */
    s = keel_options_load(dir);
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    assert_contains(msg, "is a directory: it must be a regular file");
    assert_int_equal(unlink(fifo), 0);
    assert_int_equal(rmdir(dir), 0);
}

/*
 * A value its option's check refuses (a stress file that cannot be read) says why in
 * the error's own message, with the errno name, and names its origin once.
 */
static void test_checked_value_says_why_once(void **state)
{
    (void)state;
    keel_status s = keel_options_set("stress.file=/tmp/keel-test-no-such-dir/stress.txt");
    assert_true(KEEL_IS(s, KEEL_E_PARSE));
    const char *m = keel_status_message(s);
    assert_contains(m, "options: bad value for option 'stress.file' at position 13: cannot open "
                       "stress file '/tmp/keel-test-no-such-dir/stress.txt' (ENOENT)");
    assert_string_equal(keel_status_get_str(s, "errno_name"), "ENOENT");
    char msg[2048];
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    assert_null(strstr(strstr(msg, "options:") + 1, "options:"));
}

/*
 * Every option that names a file keel reads (stress.file, report.suppressions) reads it like an
 * option file: a FIFO is refused at once (no hang), a missing file says ENOENT, a file over 1 MiB
 * is refused, and nothing of the text is applied.
 */
static void test_every_read_file_option_regular_only(void **state)
{
    (void)state;
    static const char *const names[] = {"stress.file", "report.suppressions"};
    char dir[] = "/tmp/keel-test-opts-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[sizeof(dir) + 16], big[sizeof(dir) + 16], text[512];
    (void)snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    (void)snprintf(big, sizeof(big), "%s/big", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int fd = open(big, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)2 << 20), 0);
    assert_int_equal(close(fd), 0);
    (void)alarm(10); /* a FIFO opened for reading with no writer would hang here */
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        (void)snprintf(text, sizeof(text), "report.frames=5; %s=%s", names[i], fifo);
        keel_status s = keel_options_set(text);
        if (strstr(keel_status_message(s), "is a FIFO: it must be a regular file") == NULL)
            fail_msg("%s naming a FIFO: %s", names[i], keel_status_message(s));
        keel_status_free(s);
        (void)snprintf(text, sizeof(text), "report.frames=5; %s=%s/none", names[i], dir);
        s = keel_options_set(text);
        if (strstr(keel_status_message(s), "(ENOENT)") == NULL)
            fail_msg("%s naming a missing file: %s", names[i], keel_status_message(s));
        keel_status_free(s);
        (void)snprintf(text, sizeof(text), "report.frames=5; %s=%s", names[i], big);
        s = keel_options_set(text);
        if (strstr(keel_status_message(s), "is larger than 1048576 bytes") == NULL)
            fail_msg("%s naming a 2 MiB file: %s", names[i], keel_status_message(s));
        keel_status_free(s);
    }
    (void)alarm(0);
    assert_string_equal(get("report.frames"), "24"); /* nothing applied */
    assert_int_equal(unlink(fifo), 0);
    assert_int_equal(unlink(big), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* An option file over the limit (1 MiB) is refused before it is read. */
static void test_load_file_size_limit(void **state)
{
    (void)state;
    char path[] = "/tmp/keel-test-opts-big-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)3 << 20), 0);
    assert_int_equal(close(fd), 0);
    keel_status s = keel_options_load(path);
    assert_true(KEEL_IS(s, KEEL_E_RANGE));
    assert_contains(keel_status_message(s), "is larger than 1048576 bytes (3145728 bytes)");
    keel_status_free(s);
    assert_int_equal(unlink(path), 0);
}

/* ---- keel_suggest ------------------------------------------------------------------ */

static void test_suggest(void **state)
{
    (void)state;
    static const char *const words[] = {"report.file", "report.frames", "assert.expensive",
                                        "watchdog.scale", "abort"};
    const size_t n = sizeof(words) / sizeof(words[0]);
    /* a transposition counts as one edit */
    const char *r = keel_suggest("repotr.file", words, n);
    assert_non_null(r);
    assert_string_equal(r, "report.file");
    r = keel_suggest("report.fiel", words, n);
    assert_non_null(r);
    assert_string_equal(r, "report.file");
    r = keel_suggest("assert.expnesive", words, n);
    assert_non_null(r);
    assert_string_equal(r, "assert.expensive");
    r = keel_suggest("report.frame", words, n);
    assert_non_null(r);
    assert_string_equal(r, "report.frames");
    r = keel_suggest("abrot", words, n);
    assert_non_null(r);
    assert_string_equal(r, "abort");
    r = keel_suggest("watchdg.scael", words, n);
    assert_non_null(r);
    assert_string_equal(r, "watchdog.scale");
    /* far words: nothing */
    assert_null(keel_suggest("completely.different", words, n));
    assert_null(keel_suggest("xyz", words, n));
    assert_null(keel_suggest("", words, n));
    assert_null(keel_suggest("report.file", words, 0));
    assert_null(keel_suggest(NULL, words, n));
    /* words under 4 characters allow one edit only */
    static const char *const shorts[] = {"cat", "dog"};
    r = keel_suggest("cta", shorts, 2);
    assert_non_null(r);
    assert_string_equal(r, "cat");
    assert_null(keel_suggest("cxx", shorts, 2));
}

/* Case is no edit: 'REPORT.FILE' was eleven from 'report.file', no suggestion at all. */
static void test_suggest_any_case(void **state)
{
    (void)state;
    static const char *const words[] = {"report.file", "abort", "gate"};
    const char *r = keel_suggest("REPORT.FILE", words, 3);
    assert_non_null(r);
    assert_string_equal(r, "report.file");
    r = keel_suggest("Abrot", words, 3); /* a transposition besides */
    assert_non_null(r);
    assert_string_equal(r, "abort");
    r = keel_suggest("GATE", words, 3);
    assert_non_null(r);
    assert_string_equal(r, "gate");
    assert_null(keel_suggest("XYZ", words, 3));
}

/* ---- KEEL_OPTIONS in a child process ------------------------------------------------ */

/*
 * Run fn in a forked child with KEEL_OPTIONS=env; fn writes what it found to
 * fd, which is the child's stderr, so out gets both that and keel's own
 * reports.  Returns the child's wait status.
 */
static const char *child_env;
static void (*child_fn)(int fd);

static void child_main(void)
{
    if (setenv("KEEL_OPTIONS", child_env, 1) != 0)
        _exit(101);
    child_fn(2);
}

static int run_child(const char *env, void (*fn)(int fd), char *out, size_t size)
{
    child_env = env;
    child_fn = fn;
    return keel_test_run_child(child_main, out, size);
}

static void put(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n <= 0)
            _exit(102);
        s += n;
        len -= (size_t)n;
    }
}

static void child_init(int fd)
{
    keel_status s = keel_init();
    char msg[2048];
    (void)keel_status_format(s, msg, sizeof(msg));
    put(fd, KEEL_IS(s, KEEL_E_NOTFOUND) ? "code=NOTFOUND\n" : "code=other\n");
    put(fd, msg);
    put(fd, "\n");
    keel_status_free(s);
    /* a second call gives the same error */
    s = keel_init();
    put(fd, KEEL_IS(s, KEEL_E_NOTFOUND) ? "again=NOTFOUND\n" : "again=other\n");
    keel_status_free(s);
    /* none of the string was applied */
    char buf[64];
    s = keel_options_get("report.frames", buf, sizeof(buf));
    put(fd, keel_ok(s) ? "frames=" : "frames=error");
    put(fd, keel_ok(s) ? buf : "");
    put(fd, "\n");
    keel_status_free(s);
    /* keel_init's caller got the error: no report of kind options */
    put(fd, keel_report_count(KEEL_REPORT_OPTIONS) == 0 ? "reports=0\n" : "reports=some\n");
}

static void test_env_malformed_keel_init(void **state)
{
    (void)state;
    char out[8192];
    int status = run_child("report.frames=10; report.fle=x", child_init, out, sizeof(out));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_contains(out, "code=NOTFOUND\n");
    assert_contains(out, "KEEL_OPTIONS: unknown option 'report.fle' at position 19");
    assert_contains(out, "did you mean 'report.file'?");
    assert_contains(out, "again=NOTFOUND\n");
    assert_contains(out, "frames=24\n");
    assert_contains(out, "reports=0\n");
}

static void child_init_good(int fd)
{
    keel_status s = keel_init();
    put(fd, keel_ok(s) ? "init=ok\n" : "init=error\n");
    keel_status_free(s);
    char buf[64];
    s = keel_options_get("report.frames", buf, sizeof(buf));
    put(fd, keel_ok(s) ? "frames=" : "frames=error");
    put(fd, keel_ok(s) ? buf : "");
    put(fd, "\n");
    keel_status_free(s);
    put(fd, keel_report_policy(KEEL_REPORT_LOCK_ORDER) == KEEL_POLICY_ABORT ? "lock=abort\n"
                                                                            : "lock=other\n");
}

static void test_env_good_applied(void **state)
{
    (void)state;
    char out[8192];
    int status = run_child(" report.frames = 17 ;report.lock-order=abort", child_init_good, out,
                           sizeof(out));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_contains(out, "init=ok\n");
    assert_contains(out, "frames=17\n");
    assert_contains(out, "lock=abort\n");
}

static int child_fd = -1;

static bool child_handler(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    char line[4096];
    (void)snprintf(line, sizeof(line), "kind=%s\nmessage=%s\ntext=%s\n", info->kind_name,
                   info->message, info->text);
    put(child_fd, line);
    return true; /* nothing on stderr */
}

static void child_lazy_handler(int fd)
{
    child_fd = fd;
    (void)keel_report_set_handler(child_handler, NULL);
    char buf[64];
    keel_status s = keel_options_get("report.frames", buf, sizeof(buf)); /* first use */
    put(fd, keel_ok(s) ? "frames=" : "frames=error");
    put(fd, keel_ok(s) ? buf : "");
    put(fd, "\n");
    keel_status_free(s);
    char count[64];
    (void)snprintf(count, sizeof(count), "count=%llu\n", keel_report_count(KEEL_REPORT_OPTIONS));
    put(fd, count);
    /* reported once only */
    s = keel_options_get("report.frames", buf, sizeof(buf));
    keel_status_free(s);
    (void)snprintf(count, sizeof(count), "count2=%llu\n", keel_report_count(KEEL_REPORT_OPTIONS));
    put(fd, count);
}

static void test_env_malformed_lazy_report_handler(void **state)
{
    (void)state;
    char out[8192];
    int status = run_child("report.frames=10;report.fle=x", child_lazy_handler, out, sizeof(out));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_contains(out, "kind=options\n");
    assert_contains(out, "KEEL_OPTIONS is malformed; none of it was applied");
    assert_contains(out, "unknown option 'report.fle' at position 18");
    assert_contains(out, "did you mean 'report.file'?");
    assert_contains(out, "frames=24\n");
    assert_contains(out, "count=1\n");
    assert_contains(out, "count2=1\n");
}

static void child_lazy_stderr(int fd)
{
    (void)fd;
    char buf[64];
    keel_status s = keel_options_get("report.frames", buf, sizeof(buf)); /* first use */
    keel_status_free(s);
}

static void test_env_malformed_lazy_report_stderr(void **state)
{
    (void)state;
    char out[16384];
    int status = run_child("report.frames=100", child_lazy_stderr, out, sizeof(out));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_contains(out, "keel: options: KEEL_OPTIONS is malformed; none of it was applied");
    assert_contains(out, "value '100' for option 'report.frames' is out of range [1, 64]");
    assert_contains(out, "at position 15");
}

/* ---- the printed table ------------------------------------------------------------- */

static void test_print_lists_every_option(void **state)
{
    (void)state;
    set_ok("report.frames=33;report.file=/tmp/printed-value");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    keel_options_print(f);
    (void)fclose(f);
    assert_non_null(text);
#define CHECK_NAME(id, name, type, def, lo, hi, check, help) assert_contains(text, name " ");
    KEEL__OPTIONS(CHECK_NAME)
#undef CHECK_NAME
#define CHECK_KIND(e, name, policy, what) assert_contains(text, "report." name " ");
    KEEL_REPORT_KINDS(CHECK_KIND)
#undef CHECK_KIND
    assert_contains(text, "report.lock-order");
    assert_contains(text, "assert.expensive");
    assert_contains(text, "/tmp/printed-value");
    /* one header line plus one per option and one per report kind */
    size_t lines = 0;
    for (const char *p = text; *p != '\0'; p++)
        if (*p == '\n')
            lines++;
/* a term of the sum below, not an expression: NOLINTNEXTLINE(bugprone-macro-parentheses) */
#define COUNT_ONE(...) +1
    assert_int_equal(lines, 1 KEEL__OPTIONS(COUNT_ONE) KEEL_REPORT_KINDS(COUNT_ONE));
#undef COUNT_ONE
    /* the current value shows: the report.frames line says 33 */
    const char *row = strstr(text, "\nreport.frames ");
    assert_non_null(row);
    const char *eol = strchr(row + 1, '\n');
    assert_non_null(eol);
    char line[512];
    (void)snprintf(line, sizeof(line), "%.*s", (int)(eol - row - 1), row + 1);
    assert_contains(line, " 33 ");
    assert_contains(line, " 24 ");
    free(text);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bools),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_strings_and_quotes),
        cmocka_unit_test(test_quoted_other_backslash_kept),
        cmocka_unit_test(test_blanks_and_empty_items),
        cmocka_unit_test(test_report_policies),
        cmocka_unit_test(test_get_unknown_and_small_buffer),
        cmocka_unit_test(test_error_unknown_name_suggests),
        cmocka_unit_test(test_error_missing_value),
        cmocka_unit_test(test_error_bad_integer),
        cmocka_unit_test(test_error_integer_out_of_range),
        cmocka_unit_test(test_error_integer_sign_and_blanks),
        cmocka_unit_test(test_error_long_value_names_option),
        cmocka_unit_test(test_error_unterminated_quote),
        cmocka_unit_test(test_error_bad_escape_and_stray_quote),
        cmocka_unit_test(test_error_bad_bool),
        cmocka_unit_test(test_error_bad_policy_word),
        cmocka_unit_test(test_error_bad_kind_name),
        cmocka_unit_test(test_error_trailing_garbage),
        cmocka_unit_test(test_error_illegal_name_chars),
        cmocka_unit_test(test_all_or_nothing),
        cmocka_unit_test(test_set_null),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_file_error_names_file_and_line),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_load_not_regular_files),
        cmocka_unit_test(test_checked_value_says_why_once),
        cmocka_unit_test(test_load_file_size_limit),
        cmocka_unit_test(test_every_read_file_option_regular_only),
        cmocka_unit_test(test_suggest),
        cmocka_unit_test(test_suggest_any_case),
        cmocka_unit_test(test_env_malformed_keel_init),
        cmocka_unit_test(test_env_good_applied),
        cmocka_unit_test(test_env_malformed_lazy_report_handler),
        cmocka_unit_test(test_env_malformed_lazy_report_stderr),
        cmocka_unit_test(test_print_lists_every_option),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
