/*
 * test_status.c - rich status codes: success is free, errors carry codes,
 * messages, sites, details and causes, printing has snprintf semantics and
 * valid JSON, out of memory still yields a printable error, and (devel) a lost
 * error is reported with the line that created it.
 */
#define _GNU_SOURCE 1
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

/* Tests that lose an error on purpose tell LeakSanitizer so. */
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

/* ---- helpers ------------------------------------------------------------------------------ */

static int sys_line; /* line of the KEEL_ERR_SYS in fails_at_bottom */

static keel_status fails_at_bottom(void)
{
    sys_line = __LINE__ + 1;
    return keel_status_with_str(KEEL_ERR_SYS(ENOENT, "cannot open '%s'", "x.conf"), "path",
                                "x.conf");
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- success and simple errors ----------------------------------------------------------- */

static void test_success_is_null(void **state)
{
    (void)state;
    keel_status s = KEEL_OK;
    assert_true(keel_ok(s));
    assert_null(s.err);
    assert_int_equal(sizeof(keel_status), sizeof(void *));
    assert_int_equal(keel_status_code(s), KEEL_E_OK);
    assert_null(keel_status_space(s));
    assert_int_equal(keel_status_depth(s), 0);
    assert_string_equal(keel_status_message(s), "");
    assert_false(KEEL_IS(s, KEEL_E_INVAL));
    assert_false(KEEL_HAS(s, KEEL_E_INVAL));
    char buf[16];
    assert_int_equal(keel_status_format(s, buf, sizeof(buf)), 2);
    assert_string_equal(buf, "ok");
    assert_int_equal(keel_status_format_json(s, buf, sizeof(buf)), 4);
    assert_string_equal(buf, "null");
    /* details on success do nothing and stay success */
    s = keel_status_with_int(s, "n", 1);
    assert_null(s.err);
    keel_status_free(s); /* freeing success does nothing */
}

static void test_err_code_message_site(void **state)
{
    (void)state;
    const int line = __LINE__ + 1;
    keel_status s = KEEL_ERR(KEEL_E_INVAL, "bad size %d of '%s'", 42, "buf");
    assert_non_null(s.err);
    assert_false(keel_ok(s));
    assert_int_equal(keel_status_code(s), KEEL_E_INVAL);
    assert_ptr_equal(keel_status_space(s), &keel_codespace_keel);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    assert_false(KEEL_IS(s, KEEL_E_IO));
    assert_string_equal(keel_status_message(s), "bad size 42 of 'buf'");
    assert_string_equal(keel_status_file(s), __FILE__);
    assert_int_equal(keel_status_line(s), line);
    assert_int_equal(keel_status_depth(s), 1);
    assert_string_equal(keel_code_name(&keel_codespace_keel, KEEL_E_INVAL), "INVAL");
    assert_string_equal(keel_code_message(&keel_codespace_keel, KEEL_E_INVAL), "invalid argument");
    keel_status_free(s);
}

static void test_err_sys_errno_details(void **state)
{
    (void)state;
    keel_status s = fails_at_bottom();
    assert_true(KEEL_IS(s, KEEL_E_SYS));
    long long e = 0;
    assert_true(keel_status_get_int(s, "errno", &e));
    assert_int_equal(e, ENOENT);
    assert_string_equal(keel_status_get_str(s, "errno_name"), "ENOENT");
    assert_string_equal(keel_status_get_str(s, "path"), "x.conf");
    assert_string_equal(keel_status_message(s), "cannot open 'x.conf': No such file or directory");
    assert_int_equal(keel_status_line(s), sys_line);
    assert_string_equal(keel_status_file(s), __FILE__);
    keel_status_free(s);

    keel_status t = KEEL_ERR_SYS(EACCES, "cannot write");
    assert_true(keel_status_get_int(t, "errno", &e));
    assert_int_equal(e, EACCES);
    assert_string_equal(keel_status_get_str(t, "errno_name"), "EACCES");
    keel_status_free(t);
}

/* KEEL_ERR_SYS(0): a system error without an errno is still KEEL_E_SYS, named "none", not "0". */
static void test_err_sys_errno_zero(void **state)
{
    (void)state;
    keel_status s = KEEL_ERR_SYS(0, "cannot read '%s'", "x.conf");
    assert_true(KEEL_IS(s, KEEL_E_SYS));
    long long e = -1;
    assert_true(keel_status_get_int(s, "errno", &e));
    assert_int_equal(e, 0);
    assert_string_equal(keel_status_get_str(s, "errno_name"), "none");
    assert_string_equal(keel_status_message(s), "cannot read 'x.conf': no errno");
    keel_status_free(s);
}

/* A long message keeps all of itself and the errno's text, as KEEL_ERR's does. */
static void test_err_sys_long_message_whole(void **state)
{
    (void)state;
    static char path[1500];
    static char want[1600];
    memset(path, 'p', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    (void)snprintf(want, sizeof(want), "cannot open '%s': %s", path, strerror(ENOENT));
    keel_status s = KEEL_ERR_SYS(ENOENT, "cannot open '%s'", path);
    assert_true(KEEL_IS(s, KEEL_E_SYS));
    assert_string_equal(keel_status_message(s), want);
    assert_string_equal(keel_status_get_str(s, "errno_name"), "ENOENT");
    keel_status_free(s);
}

/* ---- chains ------------------------------------------------------------------------------- */

static void test_wrap_and_context_chain(void **state)
{
    (void)state;
    keel_status s = fails_at_bottom();
    const int context_line = __LINE__ + 1;
    s = KEEL_CONTEXT(s, "reading configuration");
    /* KEEL_CONTEXT keeps the code of the cause */
    assert_true(KEEL_IS(s, KEEL_E_SYS));
    assert_int_equal(keel_status_line(s), context_line);
    assert_string_equal(keel_status_message(s), "reading configuration");
    s = KEEL_WRAP(s, KEEL_E_STATE, "starting service '%s'", "db");
    assert_int_equal(keel_status_depth(s), 3);
    assert_true(KEEL_IS(s, KEEL_E_STATE));
    assert_false(KEEL_IS(s, KEEL_E_SYS)); /* not the outermost link */
    assert_true(KEEL_HAS(s, KEEL_E_SYS)); /* but some link has it */
    assert_true(KEEL_HAS(s, KEEL_E_STATE));
    assert_false(KEEL_HAS(s, KEEL_E_PARSE));
    assert_string_equal(keel_status_message(s), "starting service 'db'");
    /* details are found through the chain */
    assert_string_equal(keel_status_get_str(s, "errno_name"), "ENOENT");
    keel_status_free(s);
}

static void test_wrap_success_is_success(void **state)
{
    (void)state;
    keel_status w = KEEL_WRAP(KEEL_OK, KEEL_E_IO, "wrapping success");
    assert_true(keel_ok(w));
    assert_null(w.err);
    keel_status c = KEEL_CONTEXT(KEEL_OK, "context on success");
    assert_true(keel_ok(c));
    assert_null(c.err);
    assert_int_equal(keel_status_depth(w), 0);
}

/* ---- details -------------------------------------------------------------------------------- */

static int destroyed;
static void *destroyed_ptr;
static void destroy_thing(void *p)
{
    destroyed++;
    destroyed_ptr = p;
}

static void test_details_all_types(void **state)
{
    (void)state;
    static int thing = 7;
    destroyed = 0;
    destroyed_ptr = NULL;
    char key[8] = "column"; /* keys are copied */
    keel_status s = KEEL_ERR(KEEL_E_PARSE, "bad input");
    s = keel_status_with_int(s, key, -3);
    strcpy(key, "zzz");
    s = keel_status_with_uint(s, "offset", 18446744073709551615ull);
    s = keel_status_with_str(s, "name", "conf");
    s = keel_status_with_ptr(s, "thing", &thing, destroy_thing);
    long long c = 0;
    unsigned long long o = 0;
    assert_true(keel_status_get_int(s, "column", &c));
    assert_int_equal(c, -3);
    assert_false(keel_status_get_int(s, "zzz", &c));
    assert_true(keel_status_get_uint(s, "offset", &o));
    assert_true(o == 18446744073709551615ull);
    assert_false(keel_status_get_int(s, "offset", &c)); /* another type */
    assert_false(keel_status_get_uint(s, "column", &o));
    assert_false(keel_status_get_int(s, "missing", &c));
    assert_string_equal(keel_status_get_str(s, "name"), "conf");
    assert_null(keel_status_get_str(s, "column"));
    assert_ptr_equal(keel_status_get_ptr(s, "thing"), &thing);
    assert_null(keel_status_get_ptr(s, "name"));
    assert_int_equal(destroyed, 0);
    keel_status_free(s);
    assert_int_equal(destroyed, 1); /* the destructor ran with the error */
    assert_ptr_equal(destroyed_ptr, &thing);
}

static void test_details_destructor_runs_for_inner_links(void **state)
{
    (void)state;
    static int a = 1;
    static int b = 2;
    destroyed = 0;
    keel_status s = keel_status_with_ptr(KEEL_ERR(KEEL_E_IO, "inner"), "a", &a, destroy_thing);
    s = keel_status_with_ptr(KEEL_WRAP(s, KEEL_E_STATE, "outer"), "b", &b, destroy_thing);
    s = keel_status_with_ptr(s, "none", &a, NULL); /* no destructor: nothing runs for it */
    assert_ptr_equal(keel_status_get_ptr(s, "a"), &a);
    assert_ptr_equal(keel_status_get_ptr(s, "b"), &b);
    keel_status_free(s);
    assert_int_equal(destroyed, 2);
}

/* ---- printing -------------------------------------------------------------------------------- */

static void test_format_chain(void **state)
{
    (void)state;
    keel_status s = fails_at_bottom();
    s = keel_status_with_int(KEEL_CONTEXT(s, "reading configuration"), "attempt", 3);
    s = keel_status_with_uint(KEEL_WRAP(s, KEEL_E_IO, "loading '%s'", "db"), "size", 12);
    char buf[4096];
    size_t n = keel_status_format(s, buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    assert_true(starts_with(buf, "keel.IO: loading 'db' [at "));
    assert_non_null(strstr(buf, "{size=12}"));
    assert_non_null(strstr(buf, "\n  caused by: keel.SYS: reading configuration [at "));
    assert_non_null(strstr(buf, "{attempt=3}"));
    assert_non_null(
        strstr(buf, "\n  caused by: keel.SYS: cannot open 'x.conf': No such file or directory"));
    assert_non_null(strstr(buf, "errno=2"));
    assert_non_null(strstr(buf, "errno_name=\"ENOENT\""));
    assert_non_null(strstr(buf, "path=\"x.conf\""));
    assert_non_null(strstr(buf, "in fails_at_bottom]"));
    char site[64];
    (void)snprintf(site, sizeof(site), "test_status.c:%d", sys_line);
    assert_non_null(strstr(buf, site));
    /* exactly two "caused by:" lines for a chain of three */
    const char *p = buf;
    int causes = 0;
    while ((p = strstr(p, "caused by:")) != NULL) {
        causes++;
        p++;
    }
    assert_int_equal(causes, 2);
    keel_status_free(s);
}

static void test_format_snprintf_semantics(void **state)
{
    (void)state;
    keel_status s = KEEL_WRAP(fails_at_bottom(), KEEL_E_STATE, "starting service '%s'", "db");
    char full[4096];
    size_t n = keel_status_format(s, full, sizeof(full));
    assert_true(n > 40);
    assert_int_equal(n, strlen(full));
    /* NULL buffer of size 0: only the length */
    assert_int_equal(keel_status_format(s, NULL, 0), n);
    /* small buffer: truncated, terminated, full length returned */
    char small[17];
    memset(small, 'X', sizeof(small));
    size_t m = keel_status_format(s, small, sizeof(small));
    assert_int_equal(m, n);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, full, sizeof(small) - 1);
    /* exactly n bytes: one short for the NUL */
    char *exact = (char *)malloc(n + 1);
    assert_non_null(exact);
    if (exact == NULL)
        return;
    memset(exact, 'X', n + 1);
    assert_int_equal(keel_status_format(s, exact, n), n);
    assert_int_equal(strlen(exact), n - 1);
    assert_int_equal(keel_status_format(s, exact, n + 1), n);
    assert_string_equal(exact, full);
    /* one-byte buffer: just the terminator */
    char one = 'X';
    assert_int_equal(keel_status_format(s, &one, 1), n);
    assert_int_equal(one, '\0');
    /* the same for JSON */
    char json[4096];
    size_t j = keel_status_format_json(s, json, sizeof(json));
    assert_int_equal(j, strlen(json));
    memset(exact, 'X', n + 1);
    size_t jsmall = keel_status_format_json(s, exact, 20);
    assert_int_equal(jsmall, j);
    assert_int_equal(strlen(exact), 19);
    assert_memory_equal(exact, json, 19);
    free(exact);
    keel_status_free(s);
}

static void test_format_json(void **state)
{
    (void)state;
    static int thing;
    keel_status s = KEEL_ERR(KEEL_E_PARSE, "bad \"quote\" and \\ and\ttab");
    s = keel_status_with_int(s, "column", -3);
    s = keel_status_with_str(s, "text", "say \"hi\"\n");
    s = keel_status_with_ptr(s, "thing", &thing, NULL);
    s = KEEL_WRAP(s, KEEL_E_IO, "loading");
    char json[4096];
    size_t n = keel_status_format_json(s, json, sizeof(json));
    assert_true(n < sizeof(json));
    assert_int_equal(n, strlen(json));
    assert_true(keel_test_json_valid(json));
    assert_true(starts_with(json, "{\"space\":\"keel\",\"code\":\"IO\",\"message\":\"loading\","));
    assert_non_null(strstr(json, ",\"cause\":{\"space\":\"keel\",\"code\":\"PARSE\""));
    assert_non_null(strstr(json, "\"message\":\"bad \\\"quote\\\" and \\\\ and\\ttab\""));
    assert_non_null(strstr(json, "\"column\":-3"));
    assert_non_null(strstr(json, "\"text\":\"say \\\"hi\\\"\\n\""));
    assert_non_null(strstr(json, "\"file\":\"" __FILE__ "\""));
    assert_non_null(strstr(json, "\"func\":\"test_format_json\""));
    assert_int_equal(json[n - 1], '}');
    /* the validator itself rejects broken JSON */
    assert_false(keel_test_json_valid("{\"a\":\"unescaped \" quote\"}"));
    assert_false(keel_test_json_valid("{\"a\":1"));
    keel_status_free(s);
}

/* ---- code spaces ---------------------------------------------------------------------------- */

#define DEMO_CODES(X)        X(CORRUPT, "record is corrupt") X(LOCKED, "database is locked")
#define DEMO_ENUM(name, msg) DEMO_E_##name,
enum demo_code { DEMO_E_OK = 0, DEMO_CODES(DEMO_ENUM) DEMO_E_COUNT };
KEEL_CODESPACE_DEFINE(demo_codes, "demo", DEMO_CODES)
KEEL_CODESPACE_DEFINE(demo_again, "demo", DEMO_CODES)

static void test_own_code_space(void **state)
{
    (void)state;
    assert_int_equal(demo_codes.count, DEMO_E_COUNT);
    assert_null(keel_codespace_find("demo"));
    keel_status r = keel_codespace_register(&demo_codes);
    assert_true(keel_ok(r));
    assert_true(keel_ok(keel_codespace_register(&demo_codes))); /* the same table again is fine */
    assert_ptr_equal(keel_codespace_find("demo"), &demo_codes);
    assert_ptr_equal(keel_codespace_find("keel"), &keel_codespace_keel);
    assert_null(keel_codespace_find("nope"));
    keel_status dup = keel_codespace_register(&demo_again);
    assert_true(KEEL_IS(dup, KEEL_E_EXISTS));
    assert_non_null(strstr(keel_status_message(dup), "'demo'"));
    keel_status_free(dup);
    assert_ptr_equal(keel_codespace_find("demo"), &demo_codes); /* the first one stays */

    keel_status s = KEEL_ERR_IN(&demo_codes, DEMO_E_LOCKED, "table '%s'", "t1");
    assert_true(keel_status_is(s, &demo_codes, DEMO_E_LOCKED));
    assert_ptr_equal(keel_status_space(s), &demo_codes);
    assert_int_equal(keel_status_code(s), DEMO_E_LOCKED);
    assert_false(KEEL_IS(s, DEMO_E_LOCKED)); /* same number, other space */
    s = KEEL_WRAP(s, KEEL_E_IO, "writing");
    assert_true(keel_status_has(s, &demo_codes, DEMO_E_LOCKED));
    assert_false(keel_status_has(s, &demo_codes, DEMO_E_CORRUPT));
    assert_string_equal(keel_code_name(&demo_codes, DEMO_E_LOCKED), "LOCKED");
    assert_string_equal(keel_code_name(&demo_codes, DEMO_E_OK), "OK");
    assert_string_equal(keel_code_message(&demo_codes, DEMO_E_CORRUPT), "record is corrupt");
    char buf[512];
    (void)keel_status_format(s, buf, sizeof(buf));
    assert_non_null(strstr(buf, "caused by: demo.LOCKED: table 't1'"));
    keel_status_free(s);

    keel_codespace incomplete = {NULL, 1, NULL, NULL};
    keel_status bad = keel_codespace_register(&incomplete);
    assert_true(KEEL_IS(bad, KEEL_E_INVAL));
    keel_status_free(bad);
}

static void test_code_name_out_of_range(void **state)
{
    (void)state;
    assert_string_equal(keel_code_name(&keel_codespace_keel, KEEL_E_COUNT), "?");
    assert_string_equal(keel_code_name(&keel_codespace_keel, -1), "?");
    assert_string_equal(keel_code_name(&demo_codes, DEMO_E_COUNT), "?");
    assert_string_equal(keel_code_name(NULL, 1), "?");
    assert_string_equal(keel_code_message(&keel_codespace_keel, 1000), "?");
    assert_string_equal(keel_code_name(&keel_codespace_keel, KEEL_E_COUNT - 1), "INTERNAL");
    assert_string_equal(keel_code_name(&keel_codespace_keel, KEEL_E_NOMEM), "NOMEM");
}

/* ---- out of memory --------------------------------------------------------------------------- */

static void test_out_of_memory_still_printable(void **state)
{
    (void)state;
    keel__status_fail_allocs = 1000;
    keel_status s = KEEL_ERR(KEEL_E_INVAL, "this message cannot be stored %d", 1);
    keel__status_fail_allocs = 0;
    assert_non_null(s.err);
    assert_false(keel_ok(s)); /* never NULL-means-OK */
    assert_true(KEEL_IS(s, KEEL_E_NOMEM));
    assert_int_equal(keel_status_code(s), KEEL_E_NOMEM);
    char buf[512];
    size_t n = keel_status_format(s, buf, sizeof(buf));
    assert_true(n > 0 && n < sizeof(buf));
    assert_true(starts_with(buf, "keel.NOMEM: "));
    char json[1024];
    (void)keel_status_format_json(s, json, sizeof(json));
    assert_true(keel_test_json_valid(json));
    /* a detail on the preallocated error is dropped, and it can be freed twice */
    s = keel_status_with_int(s, "n", 1);
    long long v = 0;
    assert_false(keel_status_get_int(s, "n", &v));
    keel_status_free(s);
    keel_status again = KEEL_ERR(KEEL_E_INVAL, "fine again");
    assert_true(KEEL_IS(again, KEEL_E_INVAL));
    keel_status_free(again);

    keel__status_fail_allocs = 1000;
    keel_status sys = KEEL_ERR_SYS(ENOENT, "no memory for this either");
    keel__status_fail_allocs = 0;
    assert_true(KEEL_IS(sys, KEEL_E_NOMEM));
    keel_status_free(sys);
}

static void test_out_of_memory_keeps_cause_and_details(void **state)
{
    (void)state;
    static int thing;
    destroyed = 0;
    keel_status s = KEEL_ERR(KEEL_E_IO, "disk gone");
    /* the detail cannot be stored: dropped, said so, and a pointer's destructor runs now */
    keel__status_fail_allocs = 1;
    s = keel_status_with_ptr(s, "thing", &thing, destroy_thing);
    assert_int_equal(destroyed, 1);
    keel__status_fail_allocs = 1;
    s = keel_status_with_int(s, "n", 5);
    assert_null(keel_status_get_ptr(s, "thing"));
    /* the wrap cannot be stored: the cause comes back, marked */
    keel__status_fail_allocs = 1;
    s = KEEL_WRAP(s, KEEL_E_STATE, "outer");
    assert_int_equal(keel__status_fail_allocs, 0);
    assert_true(KEEL_IS(s, KEEL_E_IO));
    assert_int_equal(keel_status_depth(s), 1);
    char buf[512];
    (void)keel_status_format(s, buf, sizeof(buf));
    assert_non_null(strstr(buf, "keel.IO: disk gone"));
    assert_non_null(strstr(buf, "(some details lost: out of memory)"));
    assert_non_null(strstr(buf, "(outer context lost: out of memory)"));
    char json[1024];
    (void)keel_status_format_json(s, json, sizeof(json));
    assert_true(keel_test_json_valid(json));
    assert_non_null(strstr(json, "\"details_dropped\":true"));
    keel_status_free(s);
    assert_int_equal(destroyed, 1);
}

/* ---- threads -------------------------------------------------------------------------------- */

static void *churn(void *arg)
{
    long bad = 0;
    int id = *(const int *)arg;
    for (int i = 0; i < 10000; i++) {
        keel_status s = keel_status_with_int(KEEL_ERR(KEEL_E_BUSY, "busy %d.%d", id, i), "i", i);
        s = KEEL_WRAP(s, KEEL_E_TIMEOUT, "gave up");
        s = KEEL_CONTEXT(s, "thread %d", id);
        long long v = -1;
        if (!KEEL_HAS(s, KEEL_E_BUSY) || !KEEL_IS(s, KEEL_E_TIMEOUT) || keel_status_depth(s) != 3 ||
            !keel_status_get_int(s, "i", &v) || v != i)
            bad++;
        keel_status_free(s);
    }
    return (void *)bad;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    int ids[4];
    for (int i = 0; i < 4; i++) {
        ids[i] = i;
        assert_int_equal(pthread_create(&t[i], NULL, churn, &ids[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *bad = NULL;
        assert_int_equal(pthread_join(t[i], &bad), 0);
        assert_null(bad);
    }
    assert_int_equal(keel_status_check_lost(true), 0); /* everything was freed */
}

/* ---- ignoring on purpose ------------------------------------------------------------------- */

static keel_report_kind last_kind = KEEL_REPORT_KIND_COUNT;
static int last_line;
static char last_file[256];
static char last_message[256];
static char last_code[32];
static int reports;

static bool catch_report(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    last_kind = info->kind;
    last_line = info->line;
    (void)snprintf(last_file, sizeof(last_file), "%s", info->file);
    (void)snprintf(last_message, sizeof(last_message), "%s", info->message);
    last_code[0] = '\0';
    for (size_t i = 0; i < info->ndetails; i++)
        if (strcmp(info->details[i].key, "code") == 0)
            (void)snprintf(last_code, sizeof(last_code), "%s", info->details[i].value);
    reports++;
    return true;
}

/* Catch reports from here on, starting from a clean slate (no live error, no report seen). */
static void catch_reports(void)
{
    (void)keel_report_set_handler(catch_report, NULL);
    (void)keel_status_check_lost(true);
    reports = 0;
    last_kind = KEEL_REPORT_KIND_COUNT;
}

static void test_ignore_counts_as_ignored_error(void **state)
{
    (void)state;
    catch_reports();
    unsigned long long before = keel_report_count(KEEL_REPORT_IGNORED_ERROR);
    const int line = __LINE__ + 1;
    keel_status_ignore(KEEL_ERR(KEEL_E_BUSY, "retry later"), "the caller retries");
    assert_true(keel_report_count(KEEL_REPORT_IGNORED_ERROR) == before + 1);
    assert_int_equal(reports, 1);
    assert_int_equal(last_kind, KEEL_REPORT_IGNORED_ERROR);
    assert_int_equal(last_line, line);
    keel_status_ignore(KEEL_OK, "nothing to drop"); /* success: no report */
    assert_true(keel_report_count(KEEL_REPORT_IGNORED_ERROR) == before + 1);
    assert_int_equal(keel_status_check_lost(true), 0);
    (void)keel_report_set_handler(NULL, NULL);
}

/* ---- lost errors --------------------------------------------------------------------------- */

#if KEEL_DEVEL
static void test_lost_error_reported_with_site(void **state)
{
    (void)state;
    catch_reports();
    unsigned long long before = keel_report_count(KEEL_REPORT_LOST_ERROR);
    leak_on_purpose_begin();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-result"
#pragma GCC diagnostic ignored "-Wunused-value"
    /* dropped with a (void) cast: gcc refuses this without the pragma, clang accepts it */
    /* __LINE__ is recorded on the line that creates the error */
    /* clang-format off */
    const int line = __LINE__; (void)KEEL_ERR(KEEL_E_IO, "nobody looks at me");
    /* clang-format on */
#pragma GCC diagnostic pop
    leak_on_purpose_end();
    assert_int_equal(reports, 0); /* nothing yet */
    assert_int_equal(keel_status_check_lost(false), 1);
    assert_int_equal(reports, 1);
    assert_int_equal(last_kind, KEEL_REPORT_LOST_ERROR);
    assert_int_equal(last_line, line);
    assert_string_equal(last_file, __FILE__);
    assert_string_equal(last_code, "IO");
    assert_true(keel_report_count(KEEL_REPORT_LOST_ERROR) == before + 1);
    /* reported once only */
    assert_int_equal(keel_status_check_lost(true), 0);
    assert_int_equal(reports, 1);
    (void)keel_report_set_handler(NULL, NULL);
}

static void test_wrapped_cause_is_not_lost(void **state)
{
    (void)state;
    catch_reports();
    keel_status inner = KEEL_ERR(KEEL_E_IO, "inner, never examined itself");
    const int line = __LINE__ + 1;
    keel_status outer = KEEL_WRAP(inner, KEEL_E_STATE, "outer");
    /* only the outer error is live: one report, at the wrap site */
    leak_on_purpose_begin();
    assert_int_equal(keel_status_check_lost(false), 1);
    leak_on_purpose_end();
    assert_int_equal(last_kind, KEEL_REPORT_LOST_ERROR);
    assert_int_equal(last_line, line);
    assert_string_equal(last_code, "STATE");
    keel_status_free(outer); /* still valid after being reported */
    assert_int_equal(keel_status_check_lost(true), 0);
    (void)keel_report_set_handler(NULL, NULL);
}

static void test_examined_not_freed_is_leaked(void **state)
{
    (void)state;
    catch_reports();
    const int line = __LINE__ + 1;
    keel_status s = KEEL_ERR(KEEL_E_IO, "looked at, never freed");
    assert_false(keel_ok(s)); /* examined */
    assert_int_equal(keel_status_check_lost(false), 0);
    assert_int_equal(reports, 0);
    assert_int_equal(keel_status_check_lost(true), 1);
    assert_int_equal(reports, 1);
    assert_int_equal(last_kind, KEEL_REPORT_LEAKED_ERROR);
    assert_int_equal(last_line, line);
    keel_status_free(s);
    assert_int_equal(keel_status_check_lost(true), 0);
    (void)keel_report_set_handler(NULL, NULL);
}

static void test_error_track_option_off(void **state)
{
    (void)state;
    catch_reports();
    assert_true(keel_ok(keel_options_set("error.track=0")));
    keel_status s = KEEL_ERR(KEEL_E_IO, "not tracked");
    assert_int_equal(keel_status_check_lost(true), 0);
    keel_status_free(s);
    assert_true(keel_ok(keel_options_set("error.track=1")));
    assert_int_equal(reports, 0);
    (void)keel_report_set_handler(NULL, NULL);
}

static keel_status child_lost; /* kept reachable: a lost error, not a leak */

static void lose_error_and_exit(void)
{
    leak_on_purpose_begin(); /* LeakSanitizer would make the exit status 1 */
    child_lost = KEEL_ERR(KEEL_E_IO, "lost in the child");
    leak_on_purpose_end();
    /* returning exits normally: the at-exit sweep reports it */
}

static void test_lost_error_reported_at_exit(void **state)
{
    (void)state;
    char out[16384];
    int st = keel_test_run_child(lose_error_and_exit, out, sizeof(out));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        (void)fprintf(stderr, "child's stderr:\n%s\n", out);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_non_null(strstr(out, "keel: lost-error:"));
    assert_non_null(strstr(out, "lost in the child"));
    assert_non_null(strstr(out, "test_status.c"));
}
#else
static void test_release_check_lost_returns_zero(void **state)
{
    (void)state;
    catch_reports();
    keel_status s = KEEL_ERR(KEEL_E_IO, "release builds do not track errors");
    assert_int_equal(keel_status_check_lost(false), 0);
    assert_int_equal(keel_status_check_lost(true), 0);
    assert_int_equal(reports, 0);
    keel_status_free(s);
    (void)keel_report_set_handler(NULL, NULL);
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_is_null),
        cmocka_unit_test(test_err_code_message_site),
        cmocka_unit_test(test_err_sys_errno_details),
        cmocka_unit_test(test_err_sys_errno_zero),
        cmocka_unit_test(test_err_sys_long_message_whole),
        cmocka_unit_test(test_wrap_and_context_chain),
        cmocka_unit_test(test_wrap_success_is_success),
        cmocka_unit_test(test_details_all_types),
        cmocka_unit_test(test_details_destructor_runs_for_inner_links),
        cmocka_unit_test(test_format_chain),
        cmocka_unit_test(test_format_snprintf_semantics),
        cmocka_unit_test(test_format_json),
        cmocka_unit_test(test_own_code_space),
        cmocka_unit_test(test_code_name_out_of_range),
        cmocka_unit_test(test_out_of_memory_still_printable),
        cmocka_unit_test(test_out_of_memory_keeps_cause_and_details),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_ignore_counts_as_ignored_error),
#if KEEL_DEVEL
        cmocka_unit_test(test_lost_error_reported_with_site),
        cmocka_unit_test(test_wrapped_cause_is_not_lost),
        cmocka_unit_test(test_examined_not_freed_is_leaked),
        cmocka_unit_test(test_error_track_option_off),
        cmocka_unit_test(test_lost_error_reported_at_exit),
#else
        cmocka_unit_test(test_release_check_lost_returns_zero),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
