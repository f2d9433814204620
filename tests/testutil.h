/*
 * tests/testutil.h - what every keel test executable shares.
 *
 *   int main(int argc, char **argv) {
 *       const struct CMUnitTest tests[] = { cmocka_unit_test(test_x), ... };
 *       return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
 *   }
 *
 *   ./test_status            run every test
 *   ./test_status test_x     run one test (ctest runs each one so, in its own process)
 *   ./test_status --list     print the names (the build registers one ctest entry per name)
 */
#ifndef KEEL_TESTUTIL_H
#define KEEL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static inline int keel_test_main(int argc, char **argv, const struct CMUnitTest *tests, size_t n)
{
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", tests[i].name);
        return 0;
    }
    if (argc > 1) {
        size_t found = 0;
        for (size_t i = 0; i < n; i++)
            if (strcmp(tests[i].name, argv[1]) == 0)
                found++;
        if (found != 1) {
            /* A filter that matches nothing would make cmocka pass silently. */
            fprintf(stderr, "%s: no test named '%s' (--list shows them)\n", argv[0], argv[1]);
            return 2;
        }
        cmocka_set_test_filter(argv[1]);
    }
    return _cmocka_run_group_tests(argv[0], tests, n, NULL, NULL);
}

#endif /* KEEL_TESTUTIL_H */
