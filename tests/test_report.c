/*
 * test_report.c - the one report channel: stderr text, JSON lines in
 * KEEL_REPORT, policies (abort / report / count), handlers.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "keel/keel.h"

/* Run fn in a child with stderr captured; returns the wait status. */
static int run_child(void (*fn)(void), char *out, size_t size)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < size && (r = read(fds[0], out + n, size - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static void test_kind_names_and_policies(void **state)
{
    (void)state;
    assert_string_equal(keel_report_kind_name(KEEL_REPORT_ASSERT), "assert");
    assert_string_equal(keel_report_kind_name(KEEL_REPORT_LOCK_ORDER), "lock-order");
    assert_string_equal(keel_report_kind_name(KEEL_REPORT_USER), "user");
    assert_string_equal(keel_report_kind_name(KEEL_REPORT_KIND_COUNT), "?");
    assert_int_equal(keel_report_policy(KEEL_REPORT_ASSERT), KEEL_POLICY_ABORT);
    assert_int_equal(keel_report_policy(KEEL_REPORT_LOST_ERROR), KEEL_POLICY_REPORT);
    assert_int_equal(keel_report_policy(KEEL_REPORT_STRESS), KEEL_POLICY_COUNT);
    keel_report_set_policy(KEEL_REPORT_USER, KEEL_POLICY_COUNT);
    assert_int_equal(keel_report_policy(KEEL_REPORT_USER), KEEL_POLICY_COUNT);
    unsigned long long before = keel_report_count(KEEL_REPORT_USER);
    assert_int_equal(KEEL_REPORT(KEEL_REPORT_USER, "counted %d", 1), KEEL_POLICY_COUNT);
    assert_true(keel_report_count(KEEL_REPORT_USER) == before + 1);
}

static keel_report_info seen;
static char seen_text[1024], seen_details[1024];
static int handled;

static bool handler(const keel_report_info *info, void *ctx)
{
    assert_ptr_equal(ctx, &seen);
    seen = *info;
    snprintf(seen_text, sizeof(seen_text), "%s", info->text);
    seen_details[0] = '\0';
    for (size_t i = 0; i < info->ndetails; i++) {
        size_t len = strlen(seen_details);
        snprintf(seen_details + len, sizeof(seen_details) - len, "%s=%s;", info->details[i].key,
                 info->details[i].value);
    }
    handled++;
    return true;
}

static void test_handler_sees_everything(void **state)
{
    (void)state;
    (void)keel_report_set_handler(handler, &seen);
    const int line = __LINE__;
    keel_report *r =
        keel_report_begin(KEEL_REPORT_USER, __FILE__, line, __func__, "disk %s full", "sda");
    keel_report_add_int(r, "free", -5);
    keel_report_add_uint(r, "size", 1000);
    keel_report_add_str(r, "dev", "sda");
    keel_report_add_text(r, "extra line %d", 2);
    assert_int_equal(keel_report_emit(r), KEEL_POLICY_REPORT);
    assert_int_equal(handled, 1);
    assert_int_equal(seen.kind, KEEL_REPORT_USER);
    assert_string_equal(seen.kind_name, "user");
    assert_int_equal(seen.line, line);
    assert_non_null(strstr(seen.file, "test_report.c"));
    assert_non_null(strstr(seen_text, "extra line 2"));
    assert_string_equal(seen_details, "free=-5;size=1000;dev=sda;");
    unsigned long long seq1 = seen.seq;
    (void)KEEL_REPORT(KEEL_REPORT_USER, "second");
    assert_true(seen.seq > seq1);
    (void)keel_report_set_handler(NULL, NULL);
}

static void emit_user(void)
{
    (void)KEEL_REPORT(KEEL_REPORT_USER, "something odd: %d", 7);
}

static void test_stderr_format(void **state)
{
    (void)state;
    char out[8192];
    int st = run_child(emit_user, out, sizeof(out));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(strncmp(out, "keel: user: something odd: 7\n", 29) == 0);
    assert_non_null(strstr(out, "  at "));
    assert_non_null(strstr(out, "emit_user"));
}

static void emit_user_abort(void)
{
    keel_report_set_policy(KEEL_REPORT_USER, KEEL_POLICY_ABORT);
    emit_user();
}

static void test_abort_policy(void **state)
{
    (void)state;
    char out[8192];
    int st = run_child(emit_user_abort, out, sizeof(out));
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(out, "keel: user: something odd: 7"));
}

static void emit_user_count(void)
{
    keel_status s = keel_options_set("report.user=count");
    if (!keel_ok(s))
        exit(3);
    emit_user();
}

static void test_count_policy_is_silent(void **state)
{
    (void)state;
    char out[8192];
    int st = run_child(emit_user_count, out, sizeof(out));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_equal(out, "");
}

static char json_path[64];

static void emit_json(void)
{
    char opt[128];
    snprintf(opt, sizeof(opt), "report.file=%s", json_path);
    keel_status s = keel_options_set(opt);
    if (!keel_ok(s))
        exit(3);
    (void)KEEL_REPORT(KEEL_REPORT_USER, "first \"quoted\"\nand a newline");
    (void)KEEL_REPORT(KEEL_REPORT_USER, "second");
}

static void test_json_lines(void **state)
{
    (void)state;
    snprintf(json_path, sizeof(json_path), "/tmp/keel-report-%d.jsonl", (int)getpid());
    unlink(json_path);
    char out[8192];
    int st = run_child(emit_json, out, sizeof(out));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    FILE *f = fopen(json_path, "r");
    assert_non_null(f);
    char line[16384];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        n++;
        assert_int_equal(line[0], '{');
        assert_non_null(strstr(line, "}\n"));
        assert_non_null(strstr(line, "\"kind\":\"user\""));
        if (n == 1)
            assert_non_null(strstr(line, "\"message\":\"first \\\"quoted\\\"\\nand a newline\""));
        else
            assert_non_null(strstr(line, "\"message\":\"second\""));
    }
    fclose(f);
    unlink(json_path);
    assert_int_equal(n, 2);
}

static bool reentrant(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    if (strcmp(info->message, "outer") == 0)
        (void)KEEL_REPORT(KEEL_REPORT_USER, "inner");
    return false;
}

static void emit_reentrant(void)
{
    alarm(10);
    (void)keel_report_set_handler(reentrant, NULL);
    (void)KEEL_REPORT(KEEL_REPORT_USER, "outer");
}

static void test_report_inside_handler(void **state)
{
    (void)state;
    char out[16384];
    int st = run_child(emit_reentrant, out, sizeof(out));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* no deadlock, no alarm */
    assert_non_null(strstr(out, "inner"));
    assert_non_null(strstr(out, "outer"));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names_and_policies),
        cmocka_unit_test(test_handler_sees_everything),
        cmocka_unit_test(test_stderr_format),
        cmocka_unit_test(test_abort_policy),
        cmocka_unit_test(test_count_policy_is_silent),
        cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_report_inside_handler),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
