/*
 * test_stress.c - stress options: every trigger kind, wildcards, the thread
 * filter, seeds, runtime changes from another thread, bad specs, dlopen'ed
 * points, counters and the coverage summary.
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "keel/keel.h"

#if KEEL_DEVEL

/* ---- the points under test ----------------------------------------------------- */

static bool disk_error(void)
{
    return KEEL_STRESS(disk_error);
}
static bool disk_error_other_site(void)
{
    return KEEL_STRESS(disk_error);
}
static bool net_send(void)
{
    return KEEL_STRESS(net.send);
}
static bool net_recv(void)
{
    return KEEL_STRESS(net.recv);
}
bool never_called(void); /* not static: emitted although nothing calls it */
bool never_called(void)
{
    return KEEL_STRESS(never_reached_point);
}

/* The 1-based evaluations of fn that fired among the first n, as a bit string. */
static void fire_pattern(bool (*fn)(void), int n, char *out)
{
    for (int i = 0; i < n; i++)
        out[i] = fn() ? '1' : '0';
    out[n] = '\0';
}

static int count_fires(bool (*fn)(void), int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += fn() ? 1 : 0;
    return k;
}

static keel_stress_stats stats_of(const char *name)
{
    keel_stress_stats st;
    keel_test_ok(keel_stress_get(name, &st));
    return st;
}

/* ---- collecting reports ----------------------------------------------------------- */

static char seen_text[8192];
static int seen_count;
static keel_report_kind seen_kind = KEEL_REPORT_OPTIONS;

static bool collect(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    if (info->kind != seen_kind)
        return false;
    seen_count++;
    size_t len = strlen(seen_text);
    (void)snprintf(seen_text + len, sizeof(seen_text) - len, "%s|%s|", info->message, info->text);
    for (size_t i = 0; i < info->ndetails; i++) {
        len = strlen(seen_text);
        (void)snprintf(seen_text + len, sizeof(seen_text) - len, "%s=%s|", info->details[i].key,
                       info->details[i].value);
    }
    return true;
}

static void watch(keel_report_kind kind)
{
    seen_text[0] = '\0';
    seen_count = 0;
    seen_kind = kind;
    (void)keel_report_set_handler(collect, NULL);
}

/* What print (keel_stress_summary, keel_stress_json) writes (free it). */
static char *printed(void (*print)(FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    print(f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* ---- triggers ------------------------------------------------------------------------ */

static void test_disarmed_point_never_fires(void **state)
{
    (void)state;
    keel_stress_clear();
    assert_int_equal(count_fires(disk_error, 1000), 0);
    /* registered at start-up although never armed */
    keel_stress_stats st = stats_of("disk_error");
    assert_int_equal(st.sites, 2);
    assert_false(st.armed);
    assert_int_equal(st.fires, 0);
}

static void test_bare_name_fires_always(void)
{
    keel_test_ok(keel_stress_enable("disk_error"));
    assert_int_equal(count_fires(disk_error, 50), 50);
    keel_stress_stats st = stats_of("disk_error");
    assert_true(st.armed);
    assert_int_equal(st.evaluations, 50);
    assert_int_equal(st.fires, 50);
}

static void test_always(void **state)
{
    (void)state;
    test_bare_name_fires_always();
}

static void test_one_in_n(void **state)
{
    (void)state;
    keel_test_ok(keel_options_set("stress=disk_error:1/100;stress.seed=7"));
    int k = count_fires(disk_error, 100000);
    assert_in_range(k, 800, 1200);
}

static void test_k_in_n(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("disk_error:3/4"));
    int k = count_fires(disk_error, 10000);
    assert_in_range(k, 7200, 7800);
}

static void test_probability(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("disk_error:p=0.25"));
    int k = count_fires(disk_error, 20000);
    assert_in_range(k, 4500, 5500);
    keel_test_ok(keel_stress_enable("disk_error:p=0"));
    assert_int_equal(count_fires(disk_error, 1000), 0);
    keel_test_ok(keel_stress_enable("disk_error:p=1"));
    assert_int_equal(count_fires(disk_error, 1000), 1000);
}

static void test_every_nth(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("disk_error:every=3"));
    char got[16];
    fire_pattern(disk_error, 10, got);
    assert_string_equal(got, "0010010010");
}

static void test_only_nth(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("disk_error:nth=4"));
    char got[16];
    fire_pattern(disk_error, 10, got);
    assert_string_equal(got, "0001000000");
}

static void test_first_n(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("disk_error:first=2"));
    char got[16];
    fire_pattern(disk_error, 6, got);
    assert_string_equal(got, "110000");
}

static void test_after_n(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("disk_error:after=3"));
    char got[16];
    fire_pattern(disk_error, 6, got);
    assert_string_equal(got, "000111");
    /* counts start after the skipped ones */
    keel_test_ok(keel_stress_enable("disk_error:after=2:every=2"));
    fire_pattern(disk_error, 8, got);
    assert_string_equal(got, "00010101");
    /* after=0 skips none (keel-stress --mode persist's first run: it was refused, and that run
     * ran with no option at all) */
    keel_test_ok(keel_stress_enable("disk_error:after=0"));
    fire_pattern(disk_error, 4, got);
    assert_string_equal(got, "1111");
}

static void test_at_most_k(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("disk_error:max=3"));
    assert_int_equal(count_fires(disk_error, 100), 3);
    keel_test_ok(keel_stress_enable("disk_error:every=2:max=2"));
    char got[16];
    fire_pattern(disk_error, 8, got);
    assert_string_equal(got, "01010000");
}

static void test_sites_share_the_count(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("disk_error:nth=3"));
    assert_false(disk_error());
    assert_false(disk_error_other_site());
    assert_true(disk_error_other_site());
    assert_false(disk_error());
    /* counted per site */
    char *buf = printed(keel_stress_json);
    assert_non_null(strstr(buf, "\"function\":\"disk_error\",\"evaluations\":2,\"fires\":0"));
    assert_non_null(
        strstr(buf, "\"function\":\"disk_error_other_site\",\"evaluations\":2,\"fires\":1"));
    free(buf);
}

/* ---- actions --------------------------------------------------------------------------- */

static void test_delay_action(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("disk_error:delay=20ms:max=1"));
    struct timespec a;
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_false(disk_error()); /* a delay is the effect: the point evaluates false */
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    assert_true(ns >= 20000000LL);
    assert_int_equal(stats_of("disk_error").fires, 1);
}

static int action_calls;
// cppcheck-suppress constParameter ; its type is keel_stress_action's
static bool count_action(const char *name, void *ctx)
{
    assert_string_equal(name, "net.send");
    action_calls++;
    return ctx != NULL;
}

static void test_custom_action(void **state)
{
    (void)state;
    int yes = 1;
    keel_test_ok(keel_stress_set_action("net.*", count_action, &yes));
    keel_test_ok(keel_stress_enable("net.send:every=2"));
    char got[16];
    fire_pattern(net_send, 4, got);
    assert_string_equal(got, "0101");
    assert_int_equal(action_calls, 2);
    keel_test_ok(keel_stress_set_action("net.*", count_action, NULL)); /* returns false now */
    fire_pattern(net_send, 4, got);
    assert_string_equal(got, "0000");
    assert_int_equal(action_calls, 4);
    keel_test_ok(keel_stress_set_action("net.*", NULL, NULL)); /* removed: plain failure again */
    fire_pattern(net_send, 2, got);
    assert_string_equal(got, "01");
    assert_int_equal(action_calls, 4);
}

/* ---- names ------------------------------------------------------------------------------ */

static void test_wildcards_last_entry_wins(void **state)
{
    (void)state;
    keel_test_ok(keel_options_set("stress=net.*"));
    assert_true(net_send());
    assert_true(net_recv());
    assert_false(disk_error());
    keel_test_ok(keel_options_set("stress=*,net.recv:off"));
    assert_true(net_send());
    assert_false(net_recv());
    assert_true(disk_error());
    keel_test_ok(keel_stress_disable("net.?end"));
    assert_false(net_send());
    assert_true(disk_error());
    char spec[256];
    assert_int_equal(keel_stress_spec(spec, sizeof(spec)), strlen("*,net.recv:off,net.?end:off"));
    assert_string_equal(spec, "*,net.recv:off,net.?end:off");
    /* a bad pattern is keel_stress_disable's error, naming it, and changes nothing */
    keel_status s = keel_stress_disable("net send");
    char msg[512];
    (void)keel_status_format(s, msg, sizeof(msg));
    assert_int_equal(keel_status_code(s), KEEL_E_PARSE);
    keel_status_free(s);
    if (strstr(msg, "keel_stress_disable: bad stress entry 'net send:off'") == NULL ||
        strstr(msg, "keel_stress_enable") != NULL)
        fail_msg("keel_stress_disable's own error expected: %s", msg);
    assert_int_equal(keel_stress_spec(spec, sizeof(spec)), strlen("*,net.recv:off,net.?end:off"));
    keel_stress_clear();
    assert_false(disk_error());
    assert_int_equal(keel_stress_spec(spec, sizeof(spec)), 0);
}

static void test_misspelled_name_warns_with_nearest(void **state)
{
    (void)state;
    watch(KEEL_REPORT_OPTIONS);
    keel_test_ok(keel_stress_enable("disk_eror:1/2"));
    assert_int_equal(seen_count, 1);
    assert_non_null(strstr(seen_text, "'disk_eror:1/2' matches no stress point"));
    assert_non_null(strstr(seen_text, "nearest: disk_error"));
    /* a far-off name (perhaps in a library loaded later) is not guessed at */
    keel_test_ok(keel_stress_enable("completely_different"));
    assert_int_equal(seen_count, 1);
    (void)keel_report_set_handler(NULL, NULL);
}

/* ---- bad specs ---------------------------------------------------------------------------- */

typedef struct bad_case {
    const char *spec;
    const char *expect; /* in the message */
} bad_case;

static void test_bad_specs_name_the_token(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"disk_error:1/0", "'K/N' must be at least 1"},
        {"disk_error:2/1", "fires more often than always"},
        {"disk_error:p=1.5", "'p' needs a probability from 0 to 1, got '1.5'"},
        {"disk_error:p=abc", "got 'abc'"},
        {"disk_error:evry=3", "unknown term 'evry'"},
        {"disk_error:evry=3", "did you mean 'every'"},
        {"disk_error:nth=0", "'nth' must be at least 1"},
        {"disk_error:nth=3:every=2", "'nth' fires once"},
        {"disk_error:nth", "'nth' needs a value"},
        {"disk_error:max=3:max=4", "'max' given twice"},
        {"disk_error:off:max=1", "'off' cannot be combined"},
        {"disk_error:1/2:off", "'off' cannot be combined"},
        {"disk_error:off:1/1000", "'off' cannot be combined"},
        {"disk-error", "bad character '-' in name 'disk-error'"},
        {":1/2", "no name before ':'"},
        {"a,,b", "empty entry"},
        {"a,", "empty entry"},
        {"disk_error:delay=5h", "'delay' needs a duration"},
        {"disk_error:delay=100s", "longer than 60s"},
        {"disk_error:1/2:", "empty term"},
        {"disk_error:every=99999999999999999999", "too large"},
    };
    keel_test_ok(keel_stress_enable("net.send"));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        keel_status s = keel_stress_enable(cases[i].spec);
        assert_false(keel_ok(s));
        char text[1024];
        (void)keel_status_format(s, text, sizeof(text));
        if (strstr(text, cases[i].expect) == NULL || strstr(text, cases[i].spec) == NULL)
            fail_msg("spec '%s': expected '%s' in: %s", cases[i].spec, cases[i].expect, text);
        assert_int_equal(keel_status_code(s), KEEL_E_PARSE);
        keel_status_free(s);
        /* the option form is refused as a whole, with the option named */
        char opt[256];
        (void)snprintf(opt, sizeof(opt), "stress=%s;stress.seed=3", cases[i].spec);
        s = keel_options_set(opt);
        assert_false(keel_ok(s));
        (void)keel_status_format(s, text, sizeof(text));
        assert_non_null(strstr(text, "option 'stress'"));
        keel_status_free(s);
    }
    /* nothing was applied: the earlier entry is still the only one */
    char spec[64];
    (void)keel_stress_spec(spec, sizeof(spec));
    assert_string_equal(spec, "net.send");
    assert_true(net_send());
    assert_false(disk_error());
}

static void test_spec_from_file(void **state)
{
    (void)state;
    char path[] = "/tmp/keel-stress-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "# stress entries for the test\n"
                        "disk_error:every=2   # every other write\n"
                        "\n"
                        "net.send:nth=1, net.recv:off\n";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (long)(sizeof(text) - 1));
    assert_int_equal(close(fd), 0);
    char opt[128];
    (void)snprintf(opt, sizeof(opt), "stress.file=%s", path);
    keel_test_ok(keel_options_set(opt));
    char got[16];
    fire_pattern(disk_error, 4, got);
    assert_string_equal(got, "0101");
    assert_true(net_send());
    assert_false(net_send());
    /* a bad line is named with its line number, and nothing changes */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    (void)fputs("disk_error:1/2\nnet.send:bogus\n", f);
    assert_int_equal(fclose(f), 0);
    keel_status s = keel_options_set(opt);
    assert_false(keel_ok(s));
    char msg[1024];
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    assert_non_null(strstr(msg, "line 2"));
    assert_non_null(strstr(msg, "unknown term 'bogus'"));
    fire_pattern(disk_error, 4, got);
    assert_string_equal(got, "0101");
    /* an empty entry is shown on its line, not as the whole file */
    f = fopen(path, "w");
    assert_non_null(f);
    (void)fputs("# first line\ndisk_error:1/2\nnet.send:nth=1,\nnet.recv\n", f);
    assert_int_equal(fclose(f), 0);
    s = keel_options_set(opt);
    assert_false(keel_ok(s));
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    if (strstr(msg, "line 3: bad stress entry 'net.send:nth=1,': empty entry") == NULL ||
        strstr(msg, "first line") != NULL || strstr(msg, "net.recv") != NULL)
        fail_msg("the empty entry's line, alone, expected in: %s", msg);
    assert_int_equal(unlink(path), 0);
    s = keel_options_set(opt);
    assert_false(keel_ok(s));
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    assert_non_null(strstr(msg, "cannot open stress file"));
    /* a file that is not text is refused as such */
    FILE *bin = fopen(path, "w");
    assert_non_null(bin);
    assert_int_equal(fwrite("disk_error\0x", 1, 12, bin), 12);
    assert_int_equal(fclose(bin), 0);
    s = keel_options_set(opt);
    assert_int_equal(keel_status_code(s), KEEL_E_PARSE);
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    assert_non_null(strstr(msg, "is not text (it holds a NUL byte)"));
    assert_int_equal(unlink(path), 0);
}

/* ---- seeds ------------------------------------------------------------------------------ */

static void test_same_seed_same_fires(void **state)
{
    (void)state;
    char a[1001];
    char b[1001];
    char c[1001];
    keel_test_ok(keel_options_set("stress=disk_error:1/5,net.send:p=0.3;stress.seed=42"));
    assert_int_equal(keel_stress_seed(), 42);
    fire_pattern(disk_error, 500, a);
    fire_pattern(net_send, 500, a + 500);
    /* the same spec applied again re-seeds: the same sequence gives the same fires */
    keel_test_ok(keel_options_set("stress=\"\";stress.seed=1"));
    keel_test_ok(keel_options_set("stress=disk_error:1/5,net.send:p=0.3;stress.seed=42"));
    fire_pattern(disk_error, 500, b);
    fire_pattern(net_send, 500, b + 500);
    assert_string_equal(a, b);
    keel_test_ok(keel_options_set("stress.seed=43"));
    fire_pattern(disk_error, 500, c);
    fire_pattern(net_send, 500, c + 500);
    assert_string_not_equal(a, c);
}

static void test_fire_report_carries_seed_and_replay(void **state)
{
    (void)state;
    keel_test_ok(keel_options_set("report.stress=report;stress=disk_error:nth=2;stress.seed=99"));
    watch(KEEL_REPORT_STRESS);
    assert_false(disk_error());
    assert_true(disk_error());
    assert_int_equal(seen_count, 1);
    assert_non_null(strstr(seen_text, "stress option 'disk_error' fired"));
    assert_non_null(strstr(seen_text, "seed=99"));
    assert_non_null(strstr(seen_text, "evaluation=2"));
    assert_non_null(
        strstr(seen_text, "replay: KEEL_OPTIONS='stress=disk_error:nth=2;stress.seed=99'"));
    (void)keel_report_set_handler(NULL, NULL);
    assert_int_equal(keel_report_count(KEEL_REPORT_STRESS), 1);
}

/* The line after "replay: " in text, into out (empty when there is none). */
static void replay_of(const char *text, char *out, size_t size)
{
    const char *r = strstr(text, "replay: ");
    size_t n = 0;
    if (r != NULL) {
        r += strlen("replay: ");
        n = strcspn(r, "\n|");
    }
    (void)snprintf(out, size, "%.*s", (int)n, r != NULL ? r : "");
}

/* The summary's replay line must be `want`. */
static void summary_replays(const char *want)
{
    char *buf = printed(keel_stress_summary);
    char line[512];
    replay_of(buf, line, sizeof(line));
    free(buf);
    assert_string_equal(line, want);
}

/* disk_error fired once under spec with seed 7, its report in seen_text. */
static void fire_once(const char *spec)
{
    keel_stress_clear();
    keel_test_ok(keel_options_set("report.stress=report;stress.seed=7"));
    keel_test_ok(keel_stress_enable(spec));
    watch(KEEL_REPORT_STRESS);
    assert_true(disk_error());
    (void)keel_report_set_handler(NULL, NULL);
}

/*
 * The replay line is one POSIX shell word: a spec that holds ';' (a thread glob), a blank,
 * a quote or a backslash, or none at all, is double-quoted for KEEL_OPTIONS and the whole
 * single-quoted for the shell, ' as '\''; set again, it replays the same spec.
 */
static void test_replay_line_quoted(void **state)
{
    (void)state;
    static const char spec[] = "disk_error:nth=1,net.send:thread=a;b c'd\"e\\f";
    static const char want[] = "KEEL_OPTIONS='stress=\"disk_error:nth=1,net.send:thread=a;b "
                               "c'\\''d\\\"e\\\\f\";stress.seed=7'";
    fire_once(spec);
    char line[512];
    replay_of(seen_text, line, sizeof(line));
    assert_string_equal(line, want);
    summary_replays(want);
    /* the options the shell hands over (between the outer quotes, '\'' back to ') set it again */
    keel_test_ok(keel_options_set("stress=\"\";stress.seed=1"));
    keel_test_ok(keel_options_set("stress=\"disk_error:nth=1,net.send:thread=a;b c'd\\\"e\\\\f\";"
                                  "stress.seed=7"));
    summary_replays(want);
    /* a plain spec keeps its one pair of single quotes (the ';' needs them) */
    keel_test_ok(keel_options_set("stress=disk_error:nth=2;stress.seed=99"));
    summary_replays("KEEL_OPTIONS='stress=disk_error:nth=2;stress.seed=99'");
    /* no entry: an empty value, which KEEL_OPTIONS takes quoted only */
    keel_test_ok(keel_options_set("stress=\"\";stress.count"));
    summary_replays("KEEL_OPTIONS='stress=\"\";stress.seed=99'");
    keel_test_ok(keel_options_set("stress.count=0"));
    keel_stress_clear();
}

/* A spec too long to quote into a report: the report says so, the summary still quotes it. */
static void test_replay_line_long_spec(void **state)
{
    (void)state;
    static char spec[1600];
    static char want[1700];
    int n = snprintf(spec, sizeof(spec), "disk_error:thread=");
    memset(spec + n, '*', 1500); /* a glob that takes any thread: the point fires */
    spec[n + 1500] = '\0';
    (void)snprintf(want, sizeof(want), "KEEL_OPTIONS='stress=%s;stress.seed=7'", spec);
    fire_once(spec);
    assert_non_null(strstr(seen_text, "replay: KEEL_OPTIONS with this spec and stress.seed=7 "
                                      "(too long to quote here)"));
    char *buf = printed(keel_stress_summary);
    assert_non_null(strstr(buf, want));
    free(buf);
    keel_test_ok(keel_options_set("stress.count=0"));
    keel_stress_clear();
}

/* ---- threads ----------------------------------------------------------------------------- */

typedef struct worker_arg {
    const char *name;
    int n;
    int fires;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *w = (worker_arg *)p;
    (void)pthread_setname_np(pthread_self(), w->name);
    w->fires = count_fires(disk_error, w->n);
    return NULL;
}

static void test_thread_filter(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("disk_error:thread=io-*"));
    worker_arg io = {"io-1", 100, 0};
    worker_arg other = {"cpu-1", 100, 0};
    pthread_t a;
    pthread_t b;
    assert_int_equal(pthread_create(&a, NULL, worker, &io), 0);
    assert_int_equal(pthread_create(&b, NULL, worker, &other), 0);
    assert_int_equal(pthread_join(a, NULL), 0);
    assert_int_equal(pthread_join(b, NULL), 0);
    assert_int_equal(io.fires, 100);
    assert_int_equal(other.fires, 0);
    assert_int_equal(count_fires(disk_error, 10), 0); /* the main thread is not io-* */
    /* counts of exited threads are kept */
    keel_stress_stats st = stats_of("disk_error");
    assert_int_equal(st.evaluations, 210);
    assert_int_equal(st.fires, 100);
}

static void test_per_thread_counters_add_up(void **state)
{
    (void)state;
    keel_test_ok(keel_stress_enable("disk_error:1/1000"));
    worker_arg w[4] = {{"w0", 100000, 0}, {"w1", 100000, 0}, {"w2", 100000, 0}, {"w3", 100000, 0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    keel_stress_stats st = stats_of("disk_error");
    assert_int_equal(st.evaluations, 400000);
    assert_int_equal(st.fires,
                     (unsigned long long)(w[0].fires + w[1].fires + w[2].fires + w[3].fires));
    assert_in_range(st.fires, 250, 600);
}

static int stop_flag;
static int cleared_epoch; /* bumped by the test after it clears every point */

typedef struct evaluator_state {
    long fires;
    int epoch_done; /* the epoch at the start of this thread's last finished iteration */
} evaluator_state;

static void *evaluator(void *p)
{
    evaluator_state *e = (evaluator_state *)p;
    while (!__atomic_load_n(&stop_flag, __ATOMIC_ACQUIRE)) {
        int epoch = __atomic_load_n(&cleared_epoch, __ATOMIC_ACQUIRE);
        __atomic_store_n(&e->fires, e->fires + (disk_error() ? 1 : 0) + (net_send() ? 1 : 0),
                         __ATOMIC_RELAXED);
        __atomic_store_n(&e->epoch_done, epoch, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void test_runtime_changes_while_threads_evaluate(void **state)
{
    (void)state;
    evaluator_state e[3];
    memset(e, 0, sizeof e);
    pthread_t t[3];
    keel_test_ok(keel_stress_enable("disk_error:1/3"));
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, evaluator, &e[i]), 0);
    /* every thread is evaluating before the changes start */
    for (int i = 0; i < 3; i++)
        for (int wait = 0; wait < 5000 && __atomic_load_n(&e[i].fires, __ATOMIC_RELAXED) == 0;
             wait++)
            usleep(1000);
    for (int round = 0; round < 300; round++) {
        keel_test_ok(keel_stress_enable(round % 2 == 0 ? "disk_error:1/3" : "net.*:every=2:max=5"));
        if (round % 7 == 0)
            keel_stress_clear();
        if (round % 11 == 0)
            keel_test_ok(keel_options_set("stress.seed=5"));
    }
    keel_stress_clear();
    /*
     * Once cleared, nothing fires any more.  An iteration that began before the
     * clear may still count a fire however long its thread is descheduled, so
     * the baseline is taken once every thread has finished an iteration that
     * began after it (no sleep is long enough on a loaded machine).
     */
    __atomic_store_n(&cleared_epoch, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++)
        while (__atomic_load_n(&e[i].epoch_done, __ATOMIC_ACQUIRE) != 1)
            usleep(1000);
    long before[3];
    for (int i = 0; i < 3; i++)
        before[i] = __atomic_load_n(&e[i].fires, __ATOMIC_RELAXED);
    usleep(50000);
    __atomic_store_n(&stop_flag, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(e[i].fires, before[i]);
    keel_stress_stats st = stats_of("disk_error");
    assert_true(st.evaluations > 0);
    assert_true(st.fires <= st.evaluations);
    assert_false(st.armed);
}

/* ---- coverage summary ------------------------------------------------------------------------ */

static void test_summary_lists_fired_unfired_unreached(void **state)
{
    (void)state;
    keel_test_ok(keel_options_set("stress.count;stress=disk_error:every=2,nosuch_point"));
    (void)count_fires(disk_error, 4);
    (void)count_fires(net_send, 3);
    char *buf = printed(keel_stress_summary);
    const char *fired = strstr(buf, "  fired:\n    disk_error ");
    const char *unfired = strstr(buf, "  evaluated, never fired:\n    net.send ");
    const char *unreached = strstr(buf, "  never reached:\n");
    assert_non_null(fired);
    assert_non_null(unfired);
    assert_non_null(unreached);
    assert_true(fired < unfired && unfired < unreached);
    assert_non_null(strstr(unreached, "never_reached_point"));
    assert_non_null(strstr(buf, "entry 'nosuch_point' matched no stress point"));
    assert_non_null(strstr(buf, "replay: KEEL_OPTIONS='stress=disk_error:every=2,nosuch_point;"));
    assert_non_null(strstr(buf, "test_stress.c:"));
    /* libkeel's own points are listed once reached, and only counted before */
    keel_stress_stats all[64];
    size_t count = 0;
    keel_test_ok(keel_stress_list(all, 64, &count));
    size_t own_unreached = 0;
    for (size_t i = 0; i < count && i < 64; i++) {
        if (strncmp(all[i].name, "keel.", 5) != 0)
            continue;
        bool listed = strstr(buf, all[i].name) != NULL;
        assert_true(listed == (all[i].evaluations > 0));
        own_unreached += all[i].evaluations == 0;
    }
    char own[96];
    (void)snprintf(own, sizeof(own), "(and %zu of libkeel's own, keel.*, not reached)",
                   own_unreached);
    assert_true((strstr(buf, own) != NULL) == (own_unreached > 0));
    free(buf);
}

static void exit_with_summary(void)
{
    keel_test_ok(keel_options_set("stress.summary;stress=net.send:first=1;stress.seed=11"));
    (void)net_send();
    (void)net_send();
}

static void test_summary_at_exit(void **state)
{
    (void)state;
    char out[8192];
    int st = keel_test_run_child(exit_with_summary, out, sizeof(out));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_non_null(strstr(out, "keel: stress summary:"));
    assert_non_null(strstr(out, "replay: KEEL_OPTIONS='stress=net.send:first=1;stress.seed=11'"));
    assert_non_null(strstr(out, "net.send"));
    assert_non_null(strstr(out, "2 evaluations"));
}

static char json_path[64];
static void exit_with_json(void)
{
    char opt[128];
    (void)snprintf(opt, sizeof(opt), "stress.json=%s;stress=disk_error:nth=1", json_path);
    keel_test_ok(keel_options_set(opt));
    (void)disk_error();
    (void)disk_error_other_site();
}

static void test_json_at_exit(void **state)
{
    (void)state;
    (void)snprintf(json_path, sizeof(json_path), "/tmp/keel-stress-%ld.json", (long)getpid());
    char out[4096];
    int st = keel_test_run_child(exit_with_json, out, sizeof(out));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    FILE *f = fopen(json_path, "r");
    assert_non_null(f);
    char line[4096];
    bool found = false;
    bool first = true;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (first)
            assert_non_null(strstr(line, "{\"seed\":"));
        first = false;
        if (strstr(line, "{\"name\":\"disk_error\",\"evaluations\":2,\"fires\":1,") == line)
            found = true;
    }
    assert_int_equal(fclose(f), 0);
    assert_int_equal(unlink(json_path), 0);
    assert_true(found);
}

/* ---- dlopen ------------------------------------------------------------------------------------ */

static void test_dlopen_points(void **state)
{
    (void)state;
    keel_stress_stats st;
    keel_status s = keel_stress_get("plugin.open_fail", &st);
    assert_int_equal(keel_status_code(s), KEEL_E_NOTFOUND);
    keel_status_free(s);
    /* armed before the plugin is loaded: the entry applies when it registers */
    keel_test_ok(keel_stress_enable("plugin.*:every=2"));
    void *h = dlopen(KEEL_TEST_PLUGIN_DIR "/libstress_plugin.so", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL)
        fail_msg("dlopen: %s", dlerror());
    void *sym = dlsym(h, "stress_plugin_open");
    assert_non_null(sym);
    int (*open_fn)(void);
    memcpy(&open_fn, &sym, sizeof(open_fn)); /* POSIX: a data pointer holds a function's address */
    char got[8];
    for (int i = 0; i < 4; i++)
        got[i] = (char)('0' + open_fn());
    got[4] = '\0';
    assert_string_equal(got, "0101");
    st = stats_of("plugin.open_fail");
    assert_int_equal(st.sites, 1);
    assert_int_equal(st.evaluations, 4);
    assert_int_equal(dlclose(h), 0);
    /* unloaded: the site is gone, its counts stay with the name */
    st = stats_of("plugin.open_fail");
    assert_int_equal(st.sites, 0);
    assert_int_equal(st.evaluations, 4);
    assert_int_equal(st.fires, 2);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    keel_stress_summary(f);
    keel_stress_json(f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(strstr(buf, "plugin.open_fail"));
    free(buf);
    /* loaded again: registered again */
    h = dlopen(KEEL_TEST_PLUGIN_DIR "/libstress_plugin.so", RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    assert_int_equal(stats_of("plugin.open_fail").sites, 1);
    assert_int_equal(dlclose(h), 0);
}

#else /* release */

static void test_release_point_is_constant_zero(void **state)
{
    (void)state;
    int x = KEEL_STRESS(disk_error);
    assert_int_equal(x, 0);
    keel_status s = keel_stress_enable("disk_error");
    assert_int_equal(keel_status_code(s), KEEL_E_UNSUPPORTED);
    keel_status_free(s);
    size_t n = 99;
    keel_stress_stats st;
    assert_true(keel_ok(keel_stress_list(&st, 1, &n)));
    assert_int_equal(n, 0);
}

#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
#if KEEL_DEVEL
        cmocka_unit_test(test_disarmed_point_never_fires),
        cmocka_unit_test(test_always),
        cmocka_unit_test(test_one_in_n),
        cmocka_unit_test(test_k_in_n),
        cmocka_unit_test(test_probability),
        cmocka_unit_test(test_every_nth),
        cmocka_unit_test(test_only_nth),
        cmocka_unit_test(test_first_n),
        cmocka_unit_test(test_after_n),
        cmocka_unit_test(test_at_most_k),
        cmocka_unit_test(test_sites_share_the_count),
        cmocka_unit_test(test_delay_action),
        cmocka_unit_test(test_custom_action),
        cmocka_unit_test(test_wildcards_last_entry_wins),
        cmocka_unit_test(test_misspelled_name_warns_with_nearest),
        cmocka_unit_test(test_bad_specs_name_the_token),
        cmocka_unit_test(test_spec_from_file),
        cmocka_unit_test(test_same_seed_same_fires),
        cmocka_unit_test(test_fire_report_carries_seed_and_replay),
        cmocka_unit_test(test_replay_line_quoted),
        cmocka_unit_test(test_replay_line_long_spec),
        cmocka_unit_test(test_thread_filter),
        cmocka_unit_test(test_per_thread_counters_add_up),
        cmocka_unit_test(test_runtime_changes_while_threads_evaluate),
        cmocka_unit_test(test_summary_lists_fired_unfired_unreached),
        cmocka_unit_test(test_summary_at_exit),
        cmocka_unit_test(test_json_at_exit),
        cmocka_unit_test(test_dlopen_points),
#else
        cmocka_unit_test(test_release_point_is_constant_zero),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]));
}
