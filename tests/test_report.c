/*
 * test_report.c - the one report channel: kind names and policies, handlers,
 * the stderr text, JSON lines in the report file (option report.file and
 * KEEL_REPORT), abort / report / count, and reports made while reporting.
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "keel/keel.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int count_substr(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---- kinds and policies ---------------------------------------------------------------------- */

static void test_kind_names(void **state)
{
    (void)state;
    static const struct {
        keel_report_kind kind;
        const char *name;
    } kinds[] = {
        {KEEL_REPORT_ASSERT, "assert"},
        {KEEL_REPORT_LOST_ERROR, "lost-error"},
        {KEEL_REPORT_LEAKED_ERROR, "leaked-error"},
        {KEEL_REPORT_IGNORED_ERROR, "ignored-error"},
        {KEEL_REPORT_OPTIONS, "options"},
        {KEEL_REPORT_LOCK_ORDER, "lock-order"},
        {KEEL_REPORT_LOCK_MISUSE, "lock-misuse"},
        {KEEL_REPORT_LOCK_BLOCKING, "lock-blocking"},
        {KEEL_REPORT_LIMIT, "limit"},
        {KEEL_REPORT_STRESS, "stress"},
        {KEEL_REPORT_HEAP, "heap"},
        {KEEL_REPORT_LEAK, "leak"},
        {KEEL_REPORT_QUOTA, "quota"},
        {KEEL_REPORT_MODULE, "module"},
        {KEEL_REPORT_WATCHDOG, "watchdog"},
        {KEEL_REPORT_USER, "user"},
    };
    assert_int_equal(sizeof(kinds) / sizeof(kinds[0]), KEEL_REPORT_KIND_COUNT);
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        assert_string_equal(keel_report_kind_name(kinds[i].kind), kinds[i].name);
    assert_string_equal(keel_report_kind_name(KEEL_REPORT_KIND_COUNT), "?");
    assert_string_equal(keel_report_kind_name((keel_report_kind)(KEEL_REPORT_KIND_COUNT + 7)), "?");
}

static void test_default_policies(void **state)
{
    (void)state;
    static const struct {
        keel_report_kind kind;
        keel_policy policy;
    } defaults[] = {
        {KEEL_REPORT_ASSERT, KEEL_POLICY_ABORT},
        {KEEL_REPORT_LOST_ERROR, KEEL_POLICY_REPORT},
        {KEEL_REPORT_LEAKED_ERROR, KEEL_POLICY_COUNT},
        {KEEL_REPORT_IGNORED_ERROR, KEEL_POLICY_COUNT},
        {KEEL_REPORT_OPTIONS, KEEL_POLICY_REPORT},
        {KEEL_REPORT_LOCK_ORDER, KEEL_POLICY_REPORT},
        {KEEL_REPORT_LOCK_MISUSE, KEEL_POLICY_REPORT},
        {KEEL_REPORT_LOCK_BLOCKING, KEEL_POLICY_REPORT},
        {KEEL_REPORT_LIMIT, KEEL_POLICY_REPORT},
        {KEEL_REPORT_STRESS, KEEL_POLICY_COUNT},
        {KEEL_REPORT_HEAP, KEEL_POLICY_ABORT},
        {KEEL_REPORT_LEAK, KEEL_POLICY_REPORT},
        {KEEL_REPORT_QUOTA, KEEL_POLICY_REPORT},
        {KEEL_REPORT_MODULE, KEEL_POLICY_REPORT},
        {KEEL_REPORT_WATCHDOG, KEEL_POLICY_REPORT},
        {KEEL_REPORT_USER, KEEL_POLICY_REPORT},
    };
    assert_int_equal(sizeof(defaults) / sizeof(defaults[0]), KEEL_REPORT_KIND_COUNT);
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        assert_int_equal(keel_report_policy(defaults[i].kind), defaults[i].policy);
}

static bool silent(const keel_report_info *info, void *ctx)
{
    (void)info;
    (*(int *)ctx)++;
    return true;
}

static void test_set_policy_and_count(void **state)
{
    (void)state;
    int calls = 0;
    (void)keel_report_set_handler(silent, &calls);
    unsigned long long before = keel_report_count(KEEL_REPORT_USER);
    unsigned long long stress = keel_report_count(KEEL_REPORT_STRESS);
    assert_int_equal(KEEL_REPORT(KEEL_REPORT_USER, "reported %d", 1), KEEL_POLICY_REPORT);
    assert_true(keel_report_count(KEEL_REPORT_USER) == before + 1);
    keel_report_set_policy(KEEL_REPORT_USER, KEEL_POLICY_COUNT);
    assert_int_equal(keel_report_policy(KEEL_REPORT_USER), KEEL_POLICY_COUNT);
    assert_int_equal(KEEL_REPORT(KEEL_REPORT_USER, "counted %d", 2), KEEL_POLICY_COUNT);
    assert_int_equal(KEEL_REPORT(KEEL_REPORT_USER, "counted %d", 3), KEEL_POLICY_COUNT);
    assert_true(keel_report_count(KEEL_REPORT_USER) == before + 3);
    assert_true(keel_report_count(KEEL_REPORT_STRESS) == stress); /* other kinds do not move */
    assert_int_equal(calls, 3);                                   /* the handler sees all */
    /* set through the options too */
    assert_true(keel_ok(keel_options_set("report.user=report")));
    assert_int_equal(keel_report_policy(KEEL_REPORT_USER), KEEL_POLICY_REPORT);
    keel_report_set_policy(KEEL_REPORT_STRESS, KEEL_POLICY_REPORT);
    assert_int_equal(keel_report_policy(KEEL_REPORT_STRESS), KEEL_POLICY_REPORT);
    keel_report_set_policy(KEEL_REPORT_STRESS, KEEL_POLICY_COUNT);
    assert_int_equal(keel_report_count(KEEL_REPORT_KIND_COUNT), 0);
    (void)keel_report_set_handler(NULL, NULL);
}

/* A policy that is none of the three: an assertion in devel builds, ignored in release (it was
 * stored there, and keel_options_get("report.user") then read past its table of names). */
static void set_bad_policy(void)
{
    keel_report_set_policy(KEEL_REPORT_USER, KEEL_POLICY_REPORT);
    keel_report_set_policy(KEEL_REPORT_USER, (keel_policy)7);
    char name[32] = "";
    keel_status s = keel_options_get("report.user", name, sizeof(name));
    bool same = keel_ok(s) && strcmp(name, "report") == 0 &&
                keel_report_policy(KEEL_REPORT_USER) == KEEL_POLICY_REPORT;
    keel_status_free(s);
    (void)fprintf(stderr, "policy now '%s' (%d)\n", name,
                  (int)keel_report_policy(KEEL_REPORT_USER));
    exit(same ? 0 : 1);
}

static void test_set_bad_policy(void **state)
{
    (void)state;
    char out[16384];
    int st = keel_test_run_child(set_bad_policy, out, sizeof(out));
#if KEEL_DEVEL
    assert_true(WIFSIGNALED(st));
    assert_non_null(strstr(out, "keel: assert: assertion failed: policy == KEEL_POLICY_ABORT"));
#else
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("release: the bad policy was not ignored (status %d):\n%s", st, out);
#endif
}

/* ---- handlers ----------------------------------------------------------------------------------- */

enum { MAX_SEEN = 8 };
typedef struct seen_report {
    keel_report_kind kind;
    keel_policy policy;
    char kind_name[32];
    char message[256];
    char text[256];
    char file[256];
    char func[64];
    char thread[64];
    char module[64];
    char details[512]; /* key=value; (value quoted when a string) */
    int line;
    int nframes;
    long tid;
    unsigned long long seq;
} seen_report;

static seen_report seen[MAX_SEEN];
static int nseen;
static bool suppress_printing = true;

static bool collect(const keel_report_info *info, void *ctx)
{
    assert_ptr_equal(ctx, seen);
    if (nseen < MAX_SEEN) {
        seen_report *s = &seen[nseen];
        memset(s, 0, sizeof(*s));
        s->kind = info->kind;
        s->policy = info->policy;
        (void)snprintf(s->kind_name, sizeof(s->kind_name), "%s", info->kind_name);
        (void)snprintf(s->message, sizeof(s->message), "%s", info->message);
        (void)snprintf(s->text, sizeof(s->text), "%s", info->text);
        (void)snprintf(s->file, sizeof(s->file), "%s", info->file);
        (void)snprintf(s->func, sizeof(s->func), "%s", info->func);
        (void)snprintf(s->thread, sizeof(s->thread), "%s", info->thread);
        (void)snprintf(s->module, sizeof(s->module), "%s", info->module);
        for (size_t i = 0; i < info->ndetails; i++) {
            size_t len = strlen(s->details);
            const char *q = info->details[i].quoted ? "\"" : "";
            (void)snprintf(s->details + len, sizeof(s->details) - len, "%s=%s%s%s;",
                           info->details[i].key, q, info->details[i].value, q);
        }
        s->line = info->line;
        s->nframes = info->nframes;
        s->tid = info->tid;
        s->seq = info->seq;
    }
    nseen++;
    return suppress_printing;
}

static void test_handler_sees_everything(void **state)
{
    (void)state;
    static int object;
    nseen = 0;
    assert_null(keel_report_set_handler(collect, seen));
    const int line = __LINE__ + 1;
    keel_report *r = keel_report_begin(KEEL_REPORT_USER, __FILE__, line, __func__,
                                       "disk '%s' is %d%% full", "sda", 97);
    keel_report_add_int(r, "free", -5);
    keel_report_add_uint(r, "size", 18446744073709551615ull);
    keel_report_add_str(r, "dev", "sda");
    keel_report_add_ptr(r, "obj", &object);
    keel_report_add_text(r, "first line");
    keel_report_add_text(r, "second line %d", 2);
    assert_int_equal(keel_report_emit(r), KEEL_POLICY_REPORT);
    assert_int_equal(nseen, 1);
    const seen_report *s = &seen[0];
    assert_int_equal(s->kind, KEEL_REPORT_USER);
    assert_string_equal(s->kind_name, "user");
    assert_int_equal(s->policy, KEEL_POLICY_REPORT);
    assert_string_equal(s->message, "disk 'sda' is 97% full");
    assert_string_equal(s->file, __FILE__);
    assert_int_equal(s->line, line);
    assert_string_equal(s->func, "test_handler_sees_everything");
    assert_string_equal(s->text, "first line\nsecond line 2");
    char expected[256];
    (void)snprintf(expected, sizeof(expected),
                   "free=-5;size=18446744073709551615;dev=\"sda\";obj=\"%p\";", (void *)&object);
    assert_string_equal(s->details, expected);
    assert_int_equal(s->tid, (long)syscall(SYS_gettid));
    assert_string_equal(s->module, "");
    assert_true(s->nframes > 0); /* a backtrace under the report policy */
    assert_true(s->seq >= 1);

    /* seq increases with every report; the one-shot form fills the site itself */
    const int line2 = __LINE__ + 1;
    assert_int_equal(KEEL_REPORT(KEEL_REPORT_USER, "second"), KEEL_POLICY_REPORT);
    assert_int_equal(KEEL_REPORT(KEEL_REPORT_LIMIT, "third"), KEEL_POLICY_REPORT);
    assert_int_equal(nseen, 3);
    assert_true(seen[1].seq > seen[0].seq);
    assert_true(seen[2].seq > seen[1].seq);
    assert_int_equal(seen[1].line, line2);
    assert_string_equal(seen[1].text, "");
    assert_string_equal(seen[1].details, "");
    assert_int_equal(seen[2].kind, KEEL_REPORT_LIMIT);
    assert_string_equal(seen[2].kind_name, "limit");

    /* a new handler replaces it and set_handler returns the old one; NULL restores the default */
    int calls = 0;
    assert_ptr_equal(keel_report_set_handler(silent, &calls), collect);
    (void)KEEL_REPORT(KEEL_REPORT_USER, "to the other handler");
    assert_int_equal(calls, 1);
    assert_int_equal(nseen, 3);
    assert_ptr_equal(keel_report_set_handler(NULL, NULL), silent);
}

static void *named_reporter(void *arg)
{
    (void)arg;
    (void)pthread_setname_np(pthread_self(), "rep-worker");
    (void)KEEL_REPORT(KEEL_REPORT_USER, "from a named thread");
    return (void *)(long)syscall(SYS_gettid);
}

static void test_handler_sees_thread_name(void **state)
{
    (void)state;
    nseen = 0;
    (void)keel_report_set_handler(collect, seen);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, named_reporter, NULL), 0);
    void *tid = NULL;
    assert_int_equal(pthread_join(t, &tid), 0);
    assert_int_equal(nseen, 1);
    assert_string_equal(seen[0].thread, "rep-worker");
    assert_int_equal(seen[0].tid, (long)tid);
    assert_true(seen[0].tid != (long)syscall(SYS_gettid));
    assert_string_equal(seen[0].message, "from a named thread");
    (void)keel_report_set_handler(NULL, NULL);
}

/* ---- stderr ---------------------------------------------------------------------------------- */

enum { EMIT_LINE = 4242 }; /* the site line emit_user gives */

static void emit_user(void)
{
    keel_report *r =
        keel_report_begin(KEEL_REPORT_USER, __FILE__, EMIT_LINE, __func__, "something odd: %d", 7);
    keel_report_add_int(r, "n", 5);
    keel_report_add_str(r, "s", "x");
    keel_report_add_text(r, "line one\nline two");
    (void)keel_report_emit(r);
}

static void emit_suppressed(void)
{
    nseen = 0;
    suppress_printing = true;
    (void)keel_report_set_handler(collect, seen);
    unsigned long long before = keel_report_count(KEEL_REPORT_USER);
    emit_user();
    exit(nseen == 1 && keel_report_count(KEEL_REPORT_USER) == before + 1 ? 0 : 4);
}

static void emit_not_suppressed(void)
{
    nseen = 0;
    suppress_printing = false;
    (void)keel_report_set_handler(collect, seen);
    emit_user();
    exit(nseen == 1 ? 0 : 4);
}

static void test_handler_true_suppresses_stderr(void **state)
{
    (void)state;
    char out[16384];
    int st = keel_test_run_child(emit_suppressed, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0); /* the handler ran once, the report was counted */
    assert_string_equal(out, "");
    st = keel_test_run_child(emit_not_suppressed, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(starts_with(out, "keel: user: "));
}

static void test_stderr_format(void **state)
{
    (void)state;
    char out[16384];
    int st = keel_test_run_child(emit_user, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(starts_with(out, "keel: user: something odd: 7\n"));
    char site[512];
    (void)snprintf(site, sizeof(site), "\n  at %s:%d in emit_user\n", __FILE__, (int)EMIT_LINE);
    assert_non_null(strstr(out, site));
    assert_non_null(strstr(out, "\n  thread: "));
    assert_non_null(strstr(out, "\n  details: n=5, s=\"x\"\n"));
    assert_non_null(strstr(out, "\n  line one\n  line two\n"));
    assert_non_null(strstr(out, "\n  backtrace:\n"));
    assert_non_null(strstr(out, "\n  policy: report (report.user=abort|report|count)\n"));
    assert_int_equal(count_substr(out, "keel: "), 1); /* one report, printed once */
}

/* ---- report file ------------------------------------------------------------------------------ */

static char json_path[128];

static void emit_two_reports(void)
{
    (void)KEEL_REPORT(KEEL_REPORT_USER, "first \"quoted\"\nand a newline");
    keel_report *r = keel_report_begin(KEEL_REPORT_USER, __FILE__, __LINE__, __func__, "second");
    keel_report_add_int(r, "n", -1);
    keel_report_add_str(r, "q", "a\"b");
    (void)keel_report_emit(r);
}

static void emit_json_by_option(void)
{
    char opt[192];
    (void)snprintf(opt, sizeof(opt), "report.file=%s", json_path);
    keel_status s = keel_options_set(opt);
    if (!keel_ok(s))
        exit(3);
    emit_two_reports();
}

/* Check the file holds the two reports of emit_two_reports as JSON lines, then remove it. */
static void check_json_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    if (f == NULL)
        return;
    char line[32768];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        n++;
        size_t len = strlen(line);
        assert_true(len > 2);
        assert_int_equal(line[0], '{');
        assert_int_equal(line[len - 1], '\n');
        assert_int_equal(line[len - 2], '}');
        assert_null(memchr(line, '\n', len - 1)); /* one line per report */
        assert_true(starts_with(line, "{\"kind\":\"user\","));
        assert_non_null(strstr(line, "\"policy\":\"report\""));
        assert_non_null(strstr(line, "\"site\":{\"file\":\"" __FILE__ "\""));
        assert_non_null(strstr(line, "\"backtrace\":["));
        if (n == 1) {
            assert_non_null(strstr(line, "\"message\":\"first \\\"quoted\\\"\\nand a newline\""));
        } else {
            assert_non_null(strstr(line, "\"message\":\"second\""));
            assert_non_null(strstr(line, "\"details\":{\"n\":-1,\"q\":\"a\\\"b\"}"));
        }
        /* braces balance outside strings */
        int depth = 0;
        bool in_str = false;
        for (size_t i = 0; i < len; i++) {
            if (in_str) {
                if (line[i] == '\\')
                    i++;
                else if (line[i] == '"')
                    in_str = false;
            } else if (line[i] == '"') {
                in_str = true;
            } else if (line[i] == '{' || line[i] == '[') {
                depth++;
            } else if (line[i] == '}' || line[i] == ']') {
                depth--;
                assert_true(depth >= 0);
            }
        }
        assert_false(in_str);
        assert_int_equal(depth, 0);
    }
    (void)fclose(f);
    unlink(path);
    assert_int_equal(n, 2);
}

static void test_report_file_option_json_lines(void **state)
{
    (void)state;
    (void)snprintf(json_path, sizeof(json_path), "/tmp/keel-test-report-%d.jsonl", (int)getpid());
    unlink(json_path);
    char out[32768];
    int st = keel_test_run_child(emit_json_by_option, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(count_substr(out, "keel: user: "), 2); /* still printed on stderr too */
    check_json_lines(json_path);
}

static char self_exe[4096];

static void exec_self_with_keel_report(void)
{
    setenv("KEEL_REPORT", json_path, 1);
    execl(self_exe, self_exe, "--emit-two-reports", (char *)NULL);
    _exit(5);
}

static void test_keel_report_env_json_lines(void **state)
{
    (void)state;
    ssize_t len = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    assert_true(len > 0);
    self_exe[len > 0 ? len : 0] = '\0';
    (void)snprintf(json_path, sizeof(json_path), "/tmp/keel-test-report-env-%d.jsonl",
                   (int)getpid());
    unlink(json_path);
    char out[32768];
    int st = keel_test_run_child(exec_self_with_keel_report, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    check_json_lines(json_path);
}

/* ---- policies in action ------------------------------------------------------------------------- */

static void emit_user_abort(void)
{
    keel_report_set_policy(KEEL_REPORT_USER, KEEL_POLICY_ABORT);
    emit_user();
    exit(6); /* not reached */
}

static void test_abort_policy(void **state)
{
    (void)state;
    char out[16384];
    int st = keel_test_run_child(emit_user_abort, out, sizeof(out));
    assert_true(WIFSIGNALED(st));
    if (WIFSIGNALED(st))
        assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_true(starts_with(out, "keel: user: something odd: 7\n"));
    assert_non_null(strstr(out, "  policy: abort "));
}

static void emit_user_count(void)
{
    keel_status s = keel_options_set("report.user=count");
    if (!keel_ok(s))
        exit(3);
    unsigned long long before = keel_report_count(KEEL_REPORT_USER);
    keel_report *r = keel_report_begin(KEEL_REPORT_USER, __FILE__, __LINE__, __func__, "quiet");
    keel_policy p = keel_report_emit(r);
    emit_user();
    exit(p == KEEL_POLICY_COUNT && keel_report_count(KEEL_REPORT_USER) == before + 2 ? 0 : 4);
}

static void test_count_policy_is_silent(void **state)
{
    (void)state;
    char out[16384];
    int st = keel_test_run_child(emit_user_count, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0); /* counted twice, returned COUNT */
    assert_string_equal(out, "");
}

static void emit_over_limit(void)
{
    keel_status s = keel_options_set("report.max-printed=2");
    if (!keel_ok(s))
        exit(3);
    unsigned long long before = keel_report_count(KEEL_REPORT_USER);
    for (int i = 0; i < 5; i++)
        (void)KEEL_REPORT(KEEL_REPORT_USER, "report number %d", i);
    exit(keel_report_count(KEEL_REPORT_USER) == before + 5 ? 0 : 4);
}

static void test_max_printed_limit(void **state)
{
    (void)state;
    char out[32768];
    int st = keel_test_run_child(emit_over_limit, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_non_null(strstr(out, "keel: user: report number 0\n"));
    assert_non_null(strstr(out, "keel: user: report number 1\n"));
    assert_null(strstr(out, "report number 2"));
    assert_int_equal(count_substr(out, "more reports of this kind are only counted"), 1);
}

/* ---- reports made while reporting --------------------------------------------------------------- */

static int handler_calls;

static bool report_inside(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    handler_calls++;
    if (strcmp(info->message, "outer") == 0)
        (void)KEEL_REPORT(KEEL_REPORT_USER, "inner");
    return false;
}

static void emit_reentrant(void)
{
    alarm(10);
    handler_calls = 0;
    (void)keel_report_set_handler(report_inside, NULL);
    unsigned long long before = keel_report_count(KEEL_REPORT_USER);
    (void)KEEL_REPORT(KEEL_REPORT_USER, "outer");
    /* and the channel still works afterwards */
    (void)KEEL_REPORT(KEEL_REPORT_USER, "after");
    exit(handler_calls == 3 && keel_report_count(KEEL_REPORT_USER) == before + 3 ? 0 : 4);
}

static void test_report_inside_handler(void **state)
{
    (void)state;
    char out[32768];
    int st = keel_test_run_child(emit_reentrant, out, sizeof(out));
    assert_true(WIFEXITED(st)); /* no deadlock: the alarm did not fire */
    assert_int_equal(WEXITSTATUS(st), 0);
    const char *inner = strstr(out, "keel: user: inner\n");
    const char *outer = strstr(out, "keel: user: outer\n");
    const char *after = strstr(out, "keel: user: after\n");
    assert_non_null(inner);
    assert_non_null(outer);
    assert_non_null(after);
    assert_true(inner < outer); /* the handler runs before the outer one is printed */
    assert_true(outer < after);
    assert_null(strstr(out, "reported while reporting"));
}

static bool report_deeper(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    handler_calls++;
    int level = (int)strtol(info->message + strlen("level "), NULL, 10);
    (void)KEEL_REPORT(KEEL_REPORT_USER, "level %d", level + 1);
    return false;
}

static void emit_nested(void)
{
    alarm(10);
    handler_calls = 0;
    (void)keel_report_set_handler(report_deeper, NULL);
    unsigned long long before = keel_report_count(KEEL_REPORT_USER);
    (void)KEEL_REPORT(KEEL_REPORT_USER, "level 1");
    /* three reports, the handler ran for the first two (the third is printed plainly) */
    exit(keel_report_count(KEEL_REPORT_USER) == before + 3 && handler_calls == 2 ? 0 : 4);
}

static void test_deep_nesting_printed_plainly(void **state)
{
    (void)state;
    char out[32768];
    int st = keel_test_run_child(emit_nested, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_non_null(strstr(out, "keel: user: level 1\n"));
    assert_non_null(strstr(out, "keel: user: level 2\n"));
    /* the third level is not lost: printed plainly with its site */
    assert_non_null(strstr(out, "keel: user: level 3 [at "));
    assert_non_null(strstr(out, "; reported while reporting]\n"));
    assert_null(strstr(out, "level 4"));
}

/*
 * Regression: after a handler longjmps out of a report (allowed by report.h), a later report
 * begun from a deeper stack frame than the abandoned one used to skip the stale slot for good,
 * so every report made inside a handler from then on took the "plain" path (no handler, no
 * JSON line).  keel_report_begin now scans every slot, and an abandoned one is reused.
 */
static jmp_buf jump_back;
static bool jump_or_nest(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    handler_calls++;
    if (strcmp(info->message, "jump") == 0)
        longjmp(jump_back, 1);
    if (strcmp(info->message, "outer") == 0)
        (void)KEEL_REPORT(KEEL_REPORT_USER, "inner");
    return true;
}

__attribute__((noinline)) static void report_jump(void)
{
    (void)KEEL_REPORT(KEEL_REPORT_USER, "jump");
}

__attribute__((noinline)) static void report_deep2(void)
{
    (void)KEEL_REPORT(KEEL_REPORT_USER, "deep");
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void report_deep1(void)
{
    report_deep2();
    __asm__ volatile("" ::: "memory");
}

static void test_nesting_after_longjmp(void **state)
{
    (void)state;
    (void)keel_report_set_handler(jump_or_nest, NULL);
    if (setjmp(jump_back) == 0)
        report_jump();
    report_deep1();
    handler_calls = 0;
    (void)KEEL_REPORT(KEEL_REPORT_USER, "outer");
    assert_int_equal(handler_calls, 2); /* outer, and inner with its own slot */
    (void)keel_report_set_handler(NULL, NULL);
}

int main(int argc, char **argv)
{
    /* test_keel_report_env_json_lines runs this binary again with KEEL_REPORT set */
    if (argc == 2 && strcmp(argv[1], "--emit-two-reports") == 0) {
        emit_two_reports();
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_default_policies),
        cmocka_unit_test(test_set_policy_and_count),
        cmocka_unit_test(test_set_bad_policy),
        cmocka_unit_test(test_handler_sees_everything),
        cmocka_unit_test(test_handler_sees_thread_name),
        cmocka_unit_test(test_handler_true_suppresses_stderr),
        cmocka_unit_test(test_stderr_format),
        cmocka_unit_test(test_report_file_option_json_lines),
        cmocka_unit_test(test_keel_report_env_json_lines),
        cmocka_unit_test(test_abort_policy),
        cmocka_unit_test(test_count_policy_is_silent),
        cmocka_unit_test(test_max_printed_limit),
        cmocka_unit_test(test_report_inside_handler),
        cmocka_unit_test(test_deep_nesting_printed_plainly),
        cmocka_unit_test(test_nesting_after_longjmp),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
