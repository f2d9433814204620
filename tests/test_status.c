/*
 * test_status.c - rich status codes: success is free, errors carry codes,
 * messages, sites, details and causes, out of memory still yields a printable
 * error, and (devel) a lost error is reported with the line that created it.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "internal.h"
#include "keel/keel.h"

/* The lost-error test leaks an error on purpose: LeakSanitizer is told so. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_LSAN 1
#endif
#endif
#ifdef TEST_LSAN
#include <sanitizer/lsan_interface.h>
#define leak_on_purpose_begin() __lsan_disable()
#define leak_on_purpose_end()   __lsan_enable()
#else
#define leak_on_purpose_begin() ((void)0)
#define leak_on_purpose_end()   ((void)0)
#endif

static keel_status fails_at_bottom(int *line)
{
    *line = __LINE__ + 1;
    return keel_status_with_str(KEEL_ERR_SYS(ENOENT, "cannot open '%s'", "x.conf"), "path",
                                "x.conf");
}

static void test_success_is_free(void **state)
{
    (void)state;
    keel_status s = KEEL_OK;
    assert_true(keel_ok(s));
    assert_null(s.err);
    assert_int_equal(keel_status_code(s), KEEL_E_OK);
    assert_int_equal(keel_status_depth(s), 0);
    assert_string_equal(keel_status_message(s), "");
    keel_status w = KEEL_WRAP(s, KEEL_E_IO, "wrapping success");
    assert_true(keel_ok(w)); /* wrapping success creates nothing */
    keel_status_free(s);     /* freeing success does nothing */
    assert_int_equal(sizeof(keel_status), sizeof(void *));
}

static void test_error_code_message_site(void **state)
{
    (void)state;
    int line = __LINE__ + 1;
    keel_status s = KEEL_ERR(KEEL_E_INVAL, "bad size %d", 42);
    assert_false(keel_ok(s));
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    assert_false(KEEL_IS(s, KEEL_E_IO));
    assert_int_equal(keel_status_code(s), KEEL_E_INVAL);
    assert_ptr_equal(keel_status_space(s), &keel_codespace_keel);
    assert_string_equal(keel_status_message(s), "bad size 42");
    assert_non_null(strstr(keel_status_file(s), "test_status.c"));
    assert_int_equal(keel_status_line(s), line);
    keel_status_free(s);
}

static void test_sys_error_details(void **state)
{
    (void)state;
    int line = 0;
    keel_status s = fails_at_bottom(&line);
    long long e = 0;
    assert_true(keel_status_get_int(s, "errno", &e));
    assert_int_equal(e, ENOENT);
    assert_string_equal(keel_status_get_str(s, "errno_name"), "ENOENT");
    assert_string_equal(keel_status_get_str(s, "path"), "x.conf");
    assert_non_null(strstr(keel_status_message(s), "No such file or directory"));
    assert_int_equal(keel_status_line(s), line);
    keel_status_free(s);
}

static void test_wrap_chain(void **state)
{
    (void)state;
    int line = 0;
    keel_status s = fails_at_bottom(&line);
    s = KEEL_CONTEXT(s, "reading configuration");
    s = KEEL_WRAP(s, KEEL_E_STATE, "starting service '%s'", "db");
    assert_int_equal(keel_status_depth(s), 3);
    assert_true(KEEL_IS(s, KEEL_E_STATE));
    assert_false(KEEL_IS(s, KEEL_E_SYS));
    assert_true(KEEL_HAS(s, KEEL_E_SYS)); /* some link has it */
    assert_false(KEEL_HAS(s, KEEL_E_PARSE));
    /* details are found through the chain */
    assert_string_equal(keel_status_get_str(s, "errno_name"), "ENOENT");
    char buf[2048];
    size_t n = keel_status_format(s, buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    assert_non_null(strstr(buf, "keel.STATE: starting service 'db'"));
    assert_non_null(strstr(buf, "caused by: keel.SYS: reading configuration"));
    assert_non_null(strstr(buf, "caused by: keel.SYS: cannot open 'x.conf'"));
    assert_non_null(strstr(buf, "errno_name=\"ENOENT\""));
    /* snprintf semantics: truncated, terminated, full length returned */
    char small[16];
    size_t m = keel_status_format(s, small, sizeof(small));
    assert_int_equal(m, n);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, buf, sizeof(small) - 1);
    keel_status_free(s);
}

static int destroyed;
static void destroy_thing(void *p)
{
    destroyed += *(int *)p;
}

static void test_details_and_json(void **state)
{
    (void)state;
    static int thing = 7;
    destroyed = 0;
    keel_status s = KEEL_ERR(KEEL_E_PARSE, "bad \"quote\" here");
    s = keel_status_with_int(s, "column", -3);
    s = keel_status_with_uint(s, "offset", 18446744073709551615ull);
    s = keel_status_with_ptr(s, "thing", &thing, destroy_thing);
    long long c = 0;
    unsigned long long o = 0;
    assert_true(keel_status_get_int(s, "column", &c));
    assert_int_equal(c, -3);
    assert_true(keel_status_get_uint(s, "offset", &o));
    assert_true(o == 18446744073709551615ull);
    assert_false(keel_status_get_int(s, "offset", &c)); /* another type */
    assert_false(keel_status_get_int(s, "missing", &c));
    assert_ptr_equal(keel_status_get_ptr(s, "thing"), &thing);
    char json[1024];
    size_t n = keel_status_format_json(s, json, sizeof(json));
    assert_true(n < sizeof(json));
    assert_non_null(strstr(json, "\"space\":\"keel\",\"code\":\"PARSE\""));
    assert_non_null(strstr(json, "\"message\":\"bad \\\"quote\\\" here\""));
    assert_non_null(strstr(json, "\"column\":-3"));
    assert_int_equal(destroyed, 0);
    keel_status_free(s);
    assert_int_equal(destroyed, 7); /* the destructor ran with the error */
}

#define DEMO_CODES(X)        X(CORRUPT, "record is corrupt") X(LOCKED, "database is locked")
#define DEMO_ENUM(name, msg) DEMO_E_##name,
enum demo_code { DEMO_E_OK = 0, DEMO_CODES(DEMO_ENUM) };
KEEL_CODESPACE_DEFINE(demo_codes, "demo", DEMO_CODES)
KEEL_CODESPACE_DEFINE(demo_again, "demo", DEMO_CODES)

static void test_own_code_space(void **state)
{
    (void)state;
    keel_status r = keel_codespace_register(&demo_codes);
    assert_true(keel_ok(r));
    assert_ptr_equal(keel_codespace_find("demo"), &demo_codes);
    assert_ptr_equal(keel_codespace_find("keel"), &keel_codespace_keel);
    assert_null(keel_codespace_find("nope"));
    keel_status dup = keel_codespace_register(&demo_again);
    assert_true(KEEL_IS(dup, KEEL_E_EXISTS));
    keel_status_free(dup);
    keel_status s = KEEL_ERR_IN(&demo_codes, DEMO_E_LOCKED, "table '%s'", "t1");
    assert_true(keel_status_is(s, &demo_codes, DEMO_E_LOCKED));
    assert_false(KEEL_IS(s, 2)); /* same number, other space */
    assert_string_equal(keel_code_name(&demo_codes, DEMO_E_LOCKED), "LOCKED");
    assert_string_equal(keel_code_message(&demo_codes, DEMO_E_CORRUPT), "record is corrupt");
    assert_string_equal(keel_code_name(&demo_codes, 99), "?");
    assert_string_equal(keel_code_name(&keel_codespace_keel, -1), "?");
    char buf[256];
    (void)keel_status_format(s, buf, sizeof(buf));
    assert_non_null(strstr(buf, "demo.LOCKED: table 't1'"));
    keel_status_free(s);
}

static void test_out_of_memory_still_printable(void **state)
{
    (void)state;
    keel__status_fail_allocs = 1000;
    keel_status s = KEEL_ERR(KEEL_E_INVAL, "this message cannot be stored %d", 1);
    keel__status_fail_allocs = 0;
    assert_false(keel_ok(s)); /* never NULL-means-OK */
    assert_true(KEEL_IS(s, KEEL_E_NOMEM));
    char buf[256];
    (void)keel_status_format(s, buf, sizeof(buf));
    assert_non_null(strstr(buf, "keel.NOMEM"));
    keel_status_free(s); /* freeing the preallocated error is safe */
    keel_status again = KEEL_ERR(KEEL_E_INVAL, "fine again");
    assert_true(KEEL_IS(again, KEEL_E_INVAL));
    keel_status_free(again);
}

static void *churn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        keel_status s = KEEL_ERR(KEEL_E_BUSY, "busy %d", i);
        s = KEEL_WRAP(s, KEEL_E_TIMEOUT, "gave up");
        if (!KEEL_HAS(s, KEEL_E_BUSY))
            abort();
        keel_status_free(s);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, NULL), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(keel_status_check_lost(true), 0);
}

/* ---- lost errors --------------------------------------------------------------------------- */

#if KEEL_DEVEL
static keel_report_kind last_kind = KEEL_REPORT_KIND_COUNT;
static int last_line;
static char last_file[256];
static int reports;

static bool catch_report(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    last_kind = info->kind;
    last_line = info->line;
    snprintf(last_file, sizeof(last_file), "%s", info->file);
    reports++;
    return true;
}

static void test_lost_error_reported_with_site(void **state)
{
    (void)state;
    (void)keel_report_set_handler(catch_report, NULL);
    leak_on_purpose_begin();
    int line = __LINE__ + 4;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-result"
    /* dropped with a (void) cast: gcc refuses this without the pragma, clang accepts it */
    (void)KEEL_ERR(KEEL_E_IO, "nobody looks at me");
#pragma GCC diagnostic pop
    leak_on_purpose_end();
    assert_int_equal(keel_status_check_lost(false), 1);
    assert_int_equal(last_kind, KEEL_REPORT_LOST_ERROR);
    assert_int_equal(last_line, line);
    assert_non_null(strstr(last_file, "test_status.c"));
    (void)keel_report_set_handler(NULL, NULL);
}

static void test_examined_not_freed_is_leaked(void **state)
{
    (void)state;
    (void)keel_report_set_handler(catch_report, NULL);
    keel_status s = KEEL_ERR(KEEL_E_IO, "looked at, never freed");
    assert_false(keel_ok(s)); /* examined */
    assert_int_equal(keel_status_check_lost(false), 0);
    assert_int_equal(reports, 0);
    assert_int_equal(keel_status_check_lost(true), 1);
    assert_int_equal(last_kind, KEEL_REPORT_LEAKED_ERROR);
    keel_status_free(s);
    assert_int_equal(keel_status_check_lost(true), 0);
    (void)keel_report_set_handler(NULL, NULL);
}

static void test_ignore_on_purpose(void **state)
{
    (void)state;
    unsigned long long before = keel_report_count(KEEL_REPORT_IGNORED_ERROR);
    keel_status_ignore(KEEL_ERR(KEEL_E_BUSY, "retry later"), "the caller retries");
    assert_true(keel_report_count(KEEL_REPORT_IGNORED_ERROR) == before + 1);
    assert_int_equal(keel_status_check_lost(true), 0);
}

static void test_lost_error_reported_at_exit(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        keel_status s = KEEL_ERR(KEEL_E_IO, "lost in the child");
        (void)s.err; /* kept, never examined or freed */
        exit(0);
    }
    close(fds[1]);
    char out[8192];
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, sizeof(out) - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_non_null(strstr(out, "keel: lost-error:"));
    assert_non_null(strstr(out, "lost in the child"));
    assert_non_null(strstr(out, "test_status.c"));
}
#else
static void test_release_tracks_nothing(void **state)
{
    (void)state;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-result"
    (void)KEEL_ERR(KEEL_E_IO, "release builds do not track errors");
#pragma GCC diagnostic pop
    assert_int_equal(keel_status_check_lost(true), 0);
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_is_free),
        cmocka_unit_test(test_error_code_message_site),
        cmocka_unit_test(test_sys_error_details),
        cmocka_unit_test(test_wrap_chain),
        cmocka_unit_test(test_details_and_json),
        cmocka_unit_test(test_own_code_space),
        cmocka_unit_test(test_out_of_memory_still_printable),
        cmocka_unit_test(test_threads),
#if KEEL_DEVEL
        cmocka_unit_test(test_lost_error_reported_with_site),
        cmocka_unit_test(test_examined_not_freed_is_leaked),
        cmocka_unit_test(test_ignore_on_purpose),
        cmocka_unit_test(test_lost_error_reported_at_exit),
#else
        cmocka_unit_test(test_release_tracks_nothing),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
