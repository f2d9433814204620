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

#include <errno.h>
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

#include "keel/keel.h"

/* KEEL_TEST_UNDER_TSAN: ThreadSanitizer takes some signals (SIGSEGV) for itself. */
#if defined(__SANITIZE_THREAD__)
#define KEEL_TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KEEL_TEST_UNDER_TSAN 1
#endif
#endif

/* The file at path, NUL-terminated, into buf ("" when it cannot be read). */
static inline void keel_test_read_file(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    (void)fclose(f);
}

/* Fail the test with the status's whole text unless it is success. */
static inline void keel_test_ok(keel_status s)
{
    if (!keel_ok(s)) {
        char text[1024];
        (void)keel_status_format(s, text, sizeof(text));
        keel_status_free(s);
        fail_msg("unexpected error: %s", text);
    }
}

/* The value of a report's detail `key` ("" when it has none). */
static inline const char *keel_test_detail(const keel_report_info *info, const char *key)
{
    for (size_t i = 0; i < info->ndetails; i++)
        if (strcmp(info->details[i].key, key) == 0)
            return info->details[i].value;
    return "";
}

/* The symbolized function names of a report's backtrace, space separated, into out. */
static inline void keel_test_frame_funcs(const keel_report_info *info, char *out, size_t size)
{
    size_t pos = 0;
    if (size > 0)
        out[0] = '\0';
    for (int i = 0; i < info->nframes && pos + 1 < size; i++) {
        keel_frame f;
        if (keel_backtrace_symbolize(info->frames[i], &f)) {
            int n = snprintf(out + pos, size - pos, "%s ", f.func);
            if (n > 0)
                pos += (size_t)n;
        }
    }
}

/*
 * Run fn in a forked child whose stderr goes into a pipe.  The child exits 0
 * (through exit(), so at-exit checks run) when fn returns, and dumps no core if
 * it aborts.  What it wrote, at most size-1 bytes, is in out, NUL-terminated.
 * Returns the child's wait status.
 */
static inline int keel_test_run_child(void (*fn)(void), char *out, size_t size)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        (void)setrlimit(RLIMIT_CORE, &no_core);
        close(fds[0]);
        if (dup2(fds[1], 2) < 0)
            _exit(100);
        close(fds[1]);
        fn();
        exit(0);
    }
    close(fds[1]);
    size_t pos = 0;
    while (pos + 1 < size) {
        ssize_t n = read(fds[0], out + pos, size - 1 - pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        pos += (size_t)n;
    }
    out[pos] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

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

/* A small JSON validator (tests check that what keel writes as JSON parses). */
static inline const char *keel_test_json_value(const char *p);

static inline const char *keel_test_json_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static inline const char *keel_test_json_string(const char *p)
{
    if (*p != '"')
        return NULL;
    for (p++; *p != '"'; p++) {
        if (*p == '\0' || (unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (strchr("0123456789abcdefABCDEF", p[i]) == NULL || p[i] == '\0')
                        return NULL;
                p += 4;
            } else if (*p == '\0' || strchr("\"\\/bfnrt", *p) == NULL) {
                return NULL;
            }
        }
    }
    return p + 1;
}

static inline const char *keel_test_json_value(const char *p)
{
    p = keel_test_json_ws(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        bool object = *p == '{';
        p = keel_test_json_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (object) {
                p = keel_test_json_string(keel_test_json_ws(p));
                if (p == NULL)
                    return NULL;
                p = keel_test_json_ws(p);
                if (*p != ':')
                    return NULL;
                p++;
            }
            p = keel_test_json_value(p);
            if (p == NULL)
                return NULL;
            p = keel_test_json_ws(p);
            if (*p == close)
                return p + 1;
            if (*p != ',')
                return NULL;
            p++;
        }
    }
    if (*p == '"')
        return keel_test_json_string(p);
    if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0)
        return p + 4;
    if (strncmp(p, "false", 5) == 0)
        return p + 5;
    const char *digits = p;
    if (*p == '-')
        p++;
    while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+')
        p++;
    return p > digits && p[-1] != '-' ? p : NULL;
}

/* True when text is exactly one JSON value (blanks around it allowed). */
static inline bool keel_test_json_valid(const char *text)
{
    const char *end = keel_test_json_value(text);
    return end != NULL && *keel_test_json_ws(end) == '\0';
}

#endif /* KEEL_TESTUTIL_H */
