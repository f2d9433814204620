/*
 * test_assert.c - KEEL_ASSERT / KEEL_ASSERTF / KEEL_ASSERT_EXPENSIVE / KEEL_VERIFY /
 * KEEL_VERIFYF / KEEL_NOT_REACHED: what a failure reports, and what release leaves.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <pthread.h>
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

/* ---- catching a failed assertion ---------------------------------------------------- */

typedef struct caught_report {
    int count;
    keel_report_kind kind;
    char kind_name[32];
    char message[512];
    char file[256];
    int line;
    char func[128];
    char thread[64];
    char expr[256];
    char why[256];
    int nframes;
    char funcs[2048]; /* symbolized function names of the backtrace, space separated */
} caught_report;

static caught_report caught;
static jmp_buf jump;

static const char *detail(const keel_report_info *info, const char *key)
{
    for (size_t i = 0; i < info->ndetails; i++)
        if (strcmp(info->details[i].key, key) == 0)
            return info->details[i].value;
    return "";
}

/* Record the report, then jump back into the test: an assertion never returns. */
static bool catch_and_jump(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    caught_report *c = &caught;
    c->count++;
    c->kind = info->kind;
    (void)snprintf(c->kind_name, sizeof(c->kind_name), "%s", info->kind_name);
    (void)snprintf(c->message, sizeof(c->message), "%s", info->message);
    (void)snprintf(c->file, sizeof(c->file), "%s", info->file);
    c->line = info->line;
    (void)snprintf(c->func, sizeof(c->func), "%s", info->func);
    (void)snprintf(c->thread, sizeof(c->thread), "%s", info->thread);
    (void)snprintf(c->expr, sizeof(c->expr), "%s", detail(info, "expr"));
    (void)snprintf(c->why, sizeof(c->why), "%s", detail(info, "why"));
    c->nframes = info->nframes;
    size_t pos = 0;
    c->funcs[0] = '\0';
    for (int i = 0; i < info->nframes && pos < sizeof(c->funcs) - 1; i++) {
        keel_frame f;
        if (keel_backtrace_symbolize(info->frames[i], &f)) {
            int n = snprintf(c->funcs + pos, sizeof(c->funcs) - pos, "%s ", f.func);
            if (n > 0)
                pos += (size_t)n;
        }
    }
    if (info->kind == KEEL_REPORT_ASSERT)
        longjmp(jump, 1);
    return false;
}

static int setup(void **state)
{
    (void)state;
    memset(&caught, 0, sizeof(caught));
    (void)keel_report_set_handler(catch_and_jump, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    (void)keel_report_set_handler(NULL, NULL);
    return 0;
}

static void set_option(const char *text)
{
    keel_status s = keel_options_set(text);
    assert_true(keel_ok(s));
}

/* Values the compiler cannot see through. */
static volatile int seven = 7;
static volatile int five = 5;

/* ---- always on: KEEL_VERIFY, KEEL_VERIFYF, KEEL_NOT_REACHED -------------------------- */

static void test_verify_fires(void **state)
{
    (void)state;
    volatile int line = 0;
    int v = seven;
    if (setjmp(jump) == 0) {
        KEEL_VERIFY(v == 7); /* holds: nothing happens */
        assert_int_equal(caught.count, 0);
        line = __LINE__ + 1;
        KEEL_VERIFY(v != 7);
        fail_msg("KEEL_VERIFY returned");
    }
    assert_int_equal(caught.count, 1);
    assert_int_equal(caught.kind, KEEL_REPORT_ASSERT);
    assert_string_equal(caught.kind_name, "assert");
    assert_string_equal(caught.message, "assertion failed: v != 7");
    assert_string_equal(caught.expr, "v != 7");
    assert_int_equal(caught.line, line);
    assert_string_equal(caught.func, "test_verify_fires");
    assert_int_equal(keel_report_count(KEEL_REPORT_ASSERT), 1);
}

static void test_verifyf_message(void **state)
{
    (void)state;
    int n = five;
    if (setjmp(jump) == 0) {
        int limit = 2;
        KEEL_VERIFYF(n < limit, "n=%d limit=%d", n, limit);
        fail_msg("KEEL_VERIFYF returned");
    }
    assert_int_equal(caught.count, 1);
    assert_string_equal(caught.message, "assertion failed: n < limit: n=5 limit=2");
    assert_string_equal(caught.why, "n=5 limit=2");
}

static void test_not_reached(void **state)
{
    (void)state;
    volatile int line = 0;
    if (setjmp(jump) == 0) {
        line = __LINE__ + 1;
        KEEL_NOT_REACHED();
    }
    assert_int_equal(caught.count, 1);
    assert_int_equal(caught.kind, KEEL_REPORT_ASSERT);
    assert_string_equal(caught.message, "reached code marked not reached");
    assert_int_equal(caught.line, line);
    assert_string_equal(caught.func, "test_not_reached");
}

#if KEEL_DEVEL

/* ---- devel: KEEL_ASSERT and friends ------------------------------------------------- */

static void test_assert_reports_everything(void **state)
{
    (void)state;
    assert_int_equal(pthread_setname_np(pthread_self(), "assert-main"), 0);
    volatile int line = 0;
    int count = seven;
    if (setjmp(jump) == 0) {
        KEEL_ASSERT(count == 7); /* holds */
        assert_int_equal(caught.count, 0);
        line = __LINE__ + 1;
        KEEL_ASSERT(count > 100 && count != 300);
        fail_msg("KEEL_ASSERT returned");
    }
    assert_int_equal(caught.count, 1);
    assert_int_equal(caught.kind, KEEL_REPORT_ASSERT);
    assert_string_equal(caught.message, "assertion failed: count > 100 && count != 300");
    assert_string_equal(caught.expr, "count > 100 && count != 300");
    assert_non_null(strstr(caught.file, "test_assert.c"));
    assert_int_equal(caught.line, line);
    assert_string_equal(caught.func, "test_assert_reports_everything");
    assert_string_equal(caught.thread, "assert-main");
    assert_true(caught.nframes > 0);
    if (strstr(caught.funcs, "test_assert_reports_everything") == NULL)
        fail_msg("the backtrace does not name the test function: %s", caught.funcs);
}

static void test_assertf_message(void **state)
{
    (void)state;
    volatile int line = 0;
    int len = five;
    if (setjmp(jump) == 0) {
        const char *name = "queue";
        line = __LINE__ + 1;
        KEEL_ASSERTF(len <= 4, "'%s' holds %d items, at most %d", name, len, 4);
        fail_msg("KEEL_ASSERTF returned");
    }
    assert_int_equal(caught.count, 1);
    assert_string_equal(caught.message,
                        "assertion failed: len <= 4: 'queue' holds 5 items, at most 4");
    assert_string_equal(caught.why, "'queue' holds 5 items, at most 4");
    assert_string_equal(caught.expr, "len <= 4");
    assert_int_equal(caught.line, line);
}

static int bump(volatile int *counter)
{
    (*counter)++;
    return 1;
}

static int bump_and_fail(volatile int *counter)
{
    (*counter)++;
    return 0;
}

static void test_expensive_only_with_option(void **state)
{
    (void)state;
    volatile int evaluated = 0;
    set_option("assert.expensive=0");
    KEEL_ASSERT_EXPENSIVE(bump(&evaluated));
    KEEL_ASSERT_EXPENSIVE(bump_and_fail(&evaluated)); /* would fail, but is not evaluated */
    assert_int_equal(evaluated, 0);
    assert_int_equal(caught.count, 0);

    set_option("assert.expensive");
    KEEL_ASSERT_EXPENSIVE(bump(&evaluated));
    assert_int_equal(evaluated, 1);
    assert_int_equal(caught.count, 0);
    if (setjmp(jump) == 0) {
        KEEL_ASSERT_EXPENSIVE(bump_and_fail(&evaluated));
        fail_msg("KEEL_ASSERT_EXPENSIVE returned");
    }
    assert_int_equal(evaluated, 2);
    assert_int_equal(caught.count, 1);
    assert_string_equal(caught.message,
                        "assertion failed: bump_and_fail(&evaluated): expensive check");

    set_option("assert.expensive=false");
    KEEL_ASSERT_EXPENSIVE(bump(&evaluated));
    assert_int_equal(evaluated, 2);
}

static void test_assert_evaluates_once(void **state)
{
    (void)state;
    volatile int evaluated = 0;
    KEEL_ASSERT(bump(&evaluated));
    assert_int_equal(evaluated, 1);
    assert_int_equal(caught.count, 0);
}

static void fail_assertion_in_child(void)
{
    (void)signal(SIGABRT, SIG_DFL);
    int child_value = five;
    KEEL_ASSERT(child_value == 42);
}

/* With the default handler a failed assertion prints and aborts: run it in a child. */
static void test_default_handler_aborts(void **state)
{
    (void)state;
    (void)keel_report_set_handler(NULL, NULL);
    static char out[65536];
    int status = keel_test_run_child(fail_assertion_in_child, out, sizeof(out));
    if (!WIFSIGNALED(status))
        fail_msg("the child was not killed by a signal (status %d); it wrote:\n%s", status, out);
    assert_int_equal(WTERMSIG(status), SIGABRT);
    if (strstr(out, "keel: assert: assertion failed: child_value == 42") == NULL ||
        strstr(out, "backtrace:") == NULL || strstr(out, "test_default_handler_aborts") == NULL)
        fail_msg("unexpected report:\n%s", out);
}

#else /* !KEEL_DEVEL */

/* ---- release: nothing left of KEEL_ASSERT ------------------------------------------- */

#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunevaluated-expression"
#endif

static int bump(volatile int *counter)
{
    (*counter)++;
    return 0;
}

static void test_release_assert_not_evaluated(void **state)
{
    (void)state;
    int counter = 0;
    volatile int calls = 0;
    KEEL_ASSERT(counter++ == 99);
    KEEL_ASSERTF(counter++ == 99, "counter=%d", counter);
    KEEL_ASSERT(bump(&calls));
    assert_int_equal(counter, 0);
    assert_int_equal(calls, 0);
    assert_int_equal(caught.count, 0);
    assert_int_equal(keel_report_count(KEEL_REPORT_ASSERT), 0);
    /* the same expressions do count when evaluated */
    assert_int_equal(bump(&calls), 0);
    assert_int_equal(calls, 1);
}

static void test_release_expensive_not_evaluated(void **state)
{
    (void)state;
    volatile int calls = 0;
    set_option("assert.expensive");
    KEEL_ASSERT_EXPENSIVE(bump(&calls));
    assert_int_equal(calls, 0);
    assert_int_equal(caught.count, 0);
}

#if defined(__clang__)
#pragma clang diagnostic pop
#endif

static void test_release_verify_still_fires(void **state)
{
    (void)state;
    volatile int line = 0;
    int counter = seven;
    KEEL_ASSERT(counter == 99); /* compiled out */
    assert_int_equal(caught.count, 0);
    if (setjmp(jump) == 0) {
        line = __LINE__ + 1;
        KEEL_VERIFY(counter == 99);
        fail_msg("KEEL_VERIFY returned");
    }
    assert_int_equal(caught.count, 1);
    assert_int_equal(caught.kind, KEEL_REPORT_ASSERT);
    assert_string_equal(caught.message, "assertion failed: counter == 99");
    assert_int_equal(caught.line, line);
    assert_string_equal(caught.func, "test_release_verify_still_fires");
}

#endif /* KEEL_DEVEL */

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verify_fires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verifyf_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_reached, setup, teardown),
#if KEEL_DEVEL
        cmocka_unit_test_setup_teardown(test_assert_reports_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assertf_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expensive_only_with_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assert_evaluates_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_handler_aborts, setup, teardown),
#else
        cmocka_unit_test_setup_teardown(test_release_assert_not_evaluated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_expensive_not_evaluated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_verify_still_fires, setup, teardown),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
