/*
 * test_version.c - the version macros, the linked library's version, and the check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "keel/keel.h"

static void test_macros_agree(void **state)
{
    (void)state;
    char text[32];
    (void)snprintf(text, sizeof(text), "%d.%d.%d", KEEL_VERSION_MAJOR, KEEL_VERSION_MINOR,
                   KEEL_VERSION_PATCH);
    assert_string_equal(text, KEEL_VERSION_STRING);
    assert_int_equal(KEEL_VERSION_NUM,
                     KEEL_VERSION_MAJOR * 10000 + KEEL_VERSION_MINOR * 100 + KEEL_VERSION_PATCH);
    assert_true(KEEL_VERSION_MINOR < 100 && KEEL_VERSION_PATCH < 100);
}

static void test_library_version(void **state)
{
    (void)state;
    assert_int_equal(keel_version(), KEEL_VERSION_NUM);
    const char *s = keel_version_string();
    assert_non_null(s);
    char expected[64];
    (void)snprintf(expected, sizeof(expected), "%s %s", KEEL_VERSION_STRING,
                   KEEL_DEVEL ? "devel" : "release");
    assert_string_equal(s, expected);
}

static void test_check_ok(void **state)
{
    (void)state;
    keel_status s = keel_version_check();
    assert_true(keel_ok(s));
    /* an older header of the same major version is fine */
    unsigned older = KEEL_VERSION_NUM - (KEEL_VERSION_MINOR > 0 ? 100u : 0u);
    s = keel__version_check(older);
    assert_true(keel_ok(s));
    s = keel__version_check(KEEL_VERSION_MAJOR * 10000u);
    assert_true(keel_ok(s));
}

static void expect_mismatch(unsigned header, const char *header_text)
{
    keel_status s = keel__version_check(header);
    assert_false(keel_ok(s));
    assert_true(KEEL_IS(s, KEEL_E_VERSION));
    unsigned long long h = 0, l = 0;
    assert_true(keel_status_get_uint(s, "header", &h));
    assert_true(keel_status_get_uint(s, "library", &l));
    assert_int_equal(h, header);
    assert_int_equal(l, KEEL_VERSION_NUM);
    char want[128];
    (void)snprintf(want, sizeof(want), "keel headers %s do not match library %s", header_text,
                   KEEL_VERSION_STRING);
    assert_string_equal(keel_status_message(s), want);
    keel_status_free(s);
}

static void test_check_other_major(void **state)
{
    (void)state;
    char text[32];
    (void)snprintf(text, sizeof(text), "%d.%d.%d", KEEL_VERSION_MAJOR + 1, KEEL_VERSION_MINOR,
                   KEEL_VERSION_PATCH);
    expect_mismatch(KEEL_VERSION_NUM + 10000u, text);
    (void)snprintf(text, sizeof(text), "%d.0.0", KEEL_VERSION_MAJOR + 7);
    expect_mismatch((KEEL_VERSION_MAJOR + 7) * 10000u, text);
#if KEEL_VERSION_MAJOR > 0
    snprintf(text, sizeof(text), "%d.%d.%d", KEEL_VERSION_MAJOR - 1, KEEL_VERSION_MINOR,
             KEEL_VERSION_PATCH);
    expect_mismatch(KEEL_VERSION_NUM - 10000u, text);
#endif
}

static void test_check_newer_minor_or_patch(void **state)
{
    (void)state;
    char text[32];
    (void)snprintf(text, sizeof(text), "%d.%d.%d", KEEL_VERSION_MAJOR, KEEL_VERSION_MINOR + 1,
                   KEEL_VERSION_PATCH);
    expect_mismatch(KEEL_VERSION_NUM + 100u, text);
    (void)snprintf(text, sizeof(text), "%d.%d.%d", KEEL_VERSION_MAJOR, KEEL_VERSION_MINOR,
                   KEEL_VERSION_PATCH + 1);
    expect_mismatch(KEEL_VERSION_NUM + 1u, text);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_macros_agree),
        cmocka_unit_test(test_library_version),
        cmocka_unit_test(test_check_ok),
        cmocka_unit_test(test_check_other_major),
        cmocka_unit_test(test_check_newer_minor_or_patch),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
