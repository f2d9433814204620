/*
 * test_stress_sweep.c - keel-stress, the fault-injection sweep driver, run as
 * a user runs it against a target program.
 *
 * This executable is also that target: `test_stress_sweep fake [VARIANT]`
 * plays a stress-instrumented program.  It reads KEEL_OPTIONS itself (the
 * protocol keel-stress speaks: stress=P:nth=k or P:after=k, stress.json=,
 * report.file=) and simulates points "a" (3 evaluations), "b" (2) and "never"
 * (0).  Planted bugs of the default variant: failing b at its 2nd evaluation
 * aborts; failing a at its 3rd writes a lock-order report.  Variants:
 *   fixed   no planted bug
 *   hang    failing b sleeps forever
 *   exit3   failing a at its 1st evaluation exits 3 (nothing else planted)
 *   broken  aborts at once, even in the learning run
 */
#define _GNU_SOURCE 1
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "clidoc_check.h"
#include "testutil.h"

/* cli("sweep", "--quiet", ...): keel-stress with these arguments. */
#define cli(...) run_cli((const char *const[]){__VA_ARGS__})

/* ---- the fake target -------------------------------------------------------------- */

typedef struct fake_point {
    const char *name;
    int evaluations;
    int fires;
} fake_point;

/* The value of the last item `key=value` of opts, or "". */
static void option_value(const char *opts, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    out[0] = '\0';
    for (const char *p = opts; *p != '\0';) {
        const char *end = strchr(p, ';');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=')
            (void)snprintf(out, size, "%.*s", (int)(len - klen - 1), p + klen + 1);
        p += len + (end != NULL ? 1 : 0);
    }
}

/* Does the spec "name:nth=k" or "name:after=k" fail evaluation `eval` of `name`? */
static bool fake_fails(const char *spec, const char *name, int eval)
{
    size_t n = strlen(name);
    if (strncmp(spec, name, n) != 0 || spec[n] != ':')
        return false;
    const char *v = spec + n + 1, *digits = strchr(v, '=');
    char *end = NULL;
    long k = digits != NULL ? strtol(digits + 1, &end, 10) : 0;
    if (digits == NULL || end == digits + 1)
        return false;
    if (strncmp(v, "nth=", 4) == 0)
        return eval == k;
    if (strncmp(v, "after=", 6) == 0)
        return eval > k;
    return false;
}

static void fake_report(const char *path, const char *kind, const char *message)
{
    FILE *f = path[0] != '\0' ? fopen(path, "a") : NULL;
    if (f == NULL)
        return;
    (void)fprintf(f, "{\"kind\":\"%s\",\"time\":1,\"message\":\"%s\"}\n", kind, message);
    (void)fclose(f);
}

static void fake_write_json(const char *path, const char *spec, const fake_point *pts, size_t n)
{
    FILE *f = path[0] != '\0' ? fopen(path, "w") : NULL;
    if (f == NULL)
        return;
    (void)fprintf(f, "{\"seed\":1,\"spec\":\"%s\",\"points\":[\n", spec);
    for (size_t i = 0; i < n; i++)
        (void)fprintf(
            f,
            "{\"name\":\"%s\",\"evaluations\":%d,\"fires\":%d,\"sites\":[{\"file\":\"fake.c\","
            "\"line\":%zu,\"function\":\"f\",\"evaluations\":%d,\"fires\":%d}]}%s\n",
            pts[i].name, pts[i].evaluations, pts[i].fires, i + 1, pts[i].evaluations, pts[i].fires,
            i + 1 < n ? "," : "");
    (void)fputs("]}\n", f);
    (void)fclose(f);
}

static int fake_main(const char *variant)
{
    const char *opts = getenv("KEEL_OPTIONS");
    char json[PATH_MAX];
    char report[PATH_MAX];
    char spec[256];
    option_value(opts != NULL ? opts : "", "stress.json", json, sizeof(json));
    option_value(opts != NULL ? opts : "", "report.file", report, sizeof(report));
    option_value(opts != NULL ? opts : "", "stress", spec, sizeof(spec));
    bool planted = variant[0] == '\0';
    if (strcmp(variant, "broken") == 0) {
        (void)fputs("fake: broken from the start\n", stderr);
        abort();
    }
    /* and libkeel's own point of a program with keel locks: failing it makes a report */
    fake_point pts[] = {
        {"a", 0, 0}, {"b", 0, 0}, {"never", 0, 0}, {"keel.lock_classes_full", 1, 0}};
    if (fake_fails(spec, "keel.lock_classes_full", 1)) {
        pts[3].fires++;
        fake_report(report, "limit", "lock class table full");
    }
    for (int i = 1; i <= 3; i++) {
        pts[0].evaluations++;
        if (!fake_fails(spec, "a", i))
            continue;
        pts[0].fires++;
        if (strcmp(variant, "exit3") == 0 && i == 1) {
            fake_write_json(json, spec, pts, 4);
            return 3;
        }
        if (planted && i == 3)
            fake_report(report, "lock-order", "planted");
    }
    for (int i = 1; i <= 2; i++) {
        pts[1].evaluations++;
        if (!fake_fails(spec, "b", i))
            continue;
        pts[1].fires++;
        if (strcmp(variant, "hang") == 0)
            for (;;)
                (void)pause();
        if (planted && i == 2) {
            (void)fputs("fake: planted abort on b\n", stderr);
            abort();
        }
    }
    fake_write_json(json, spec, pts, 4);
    return 0;
}

/* ---- running keel-stress ---------------------------------------------------------- */

static char self[PATH_MAX];
static char dir[64];
static char output[65536];

static const char *stress_cli(void)
{
#ifdef KEEL_STRESS_CLI
    return KEEL_STRESS_CLI;
#else
    static char path[PATH_MAX + 16];
    char *slash = strrchr(self, '/');
    (void)snprintf(path, sizeof(path), "%.*s/../keel-stress",
                   (int)(slash != NULL ? slash - self : 1), slash != NULL ? self : ".");
    return path;
#endif
}

/*
 * Run keel-stress with the NULL-terminated arguments; its stdout and stderr
 * together land in `output`.  Returns its exit status (128+signal if killed).
 */
static int run_cli(const char *const *given)
{
    const char *args[64];
    size_t n = 0;
    args[n++] = "keel-stress";
    for (; given[n - 1] != NULL && n + 1 < 64; n++)
        args[n] = given[n - 1];
    args[n] = NULL;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    (void)fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[64];
        for (size_t i = 0; i <= n; i++)
            argv[i] = args[i] != NULL ? strdup(args[i]) : NULL;
        close(fds[0]);
        if (dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0)
            _exit(100);
        close(fds[1]);
        (void)unsetenv("KEEL_OPTIONS");
        execv(stress_cli(), argv);
        (void)fprintf(stderr, "cannot run '%s'\n", stress_cli());
        _exit(101);
    }
    close(fds[1]);
    size_t pos = 0;
    for (;;) {
        ssize_t r = read(fds[0], output + pos, sizeof(output) - 1 - pos);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        pos += (size_t)r;
        if (pos + 1 >= sizeof(output))
            pos = 0; /* keep reading so the child never blocks; the test then fails */
    }
    output[pos] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    print_message("%s", output);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n > 0 ? n : 0] = '\0';
    (void)snprintf(dir, sizeof(dir), "/tmp/keel-stress-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    (void)nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_sweep_finds_crash(void **state)
{
    (void)state;
    assert_int_equal(cli("sweep", "--quiet", "--keep", dir, "--", self, "fake", NULL), 1);
    assert_non_null(strstr(output, "crashed"));
    assert_non_null(strstr(output, "SIGABRT"));
    /* the replay line: options quoted for the shell, then the program */
    const char *replay = strstr(output, "KEEL_OPTIONS='stress=b:nth=2;");
    assert_non_null(replay);
    assert_non_null(strstr(replay, self));
    /* b at nth=1 recovers: no crash line for it */
    assert_null(strstr(output, "stress=b:nth=1;"));
    assert_non_null(strstr(output, "runs: 5, failed: 2"));
}

static void test_sweep_fixed_passes(void **state)
{
    (void)state;
    assert_int_equal(cli("sweep", "--quiet", "--", self, "fake", "fixed", NULL), 0);
    assert_non_null(strstr(output, "runs: 5, failed: 0"));
    assert_null(strstr(output, "KEEL_OPTIONS="));
}

static void test_violation_classified(void **state)
{
    (void)state;
    assert_int_equal(
        cli("sweep", "--quiet", "--only", "a", "--keep", dir, "--", self, "fake", NULL), 1);
    assert_non_null(strstr(output, "violation"));
    assert_non_null(strstr(output, "lock-order: planted"));
    assert_non_null(strstr(output, "stress=a:nth=3;"));
    assert_non_null(strstr(output, "runs: 3, failed: 1"));
}

static void test_hang_classified(void **state)
{
    (void)state;
    assert_int_equal(cli("sweep", "--quiet", "--timeout", "0.5", "--only=b", "--keep", dir, "--",
                         self, "fake", "hang", NULL),
                     1);
    assert_non_null(strstr(output, "hung"));
    assert_non_null(strstr(output, "runs: 2, failed: 2"));
}

static void test_allow_exit(void **state)
{
    (void)state;
    assert_int_equal(cli("sweep", "--quiet", "--keep", dir, "--", self, "fake", "exit3", NULL), 1);
    assert_non_null(strstr(output, "exit 3"));
    assert_non_null(strstr(output, "stress=a:nth=1;"));
    assert_int_equal(
        cli("sweep", "--quiet", "--allow-exit", "0,3", "--", self, "fake", "exit3", NULL), 0);
    assert_non_null(strstr(output, "failed: 0"));
}

static void test_persist_mode(void **state)
{
    (void)state;
    assert_int_equal(cli("sweep", "--quiet", "--mode", "persist", "--only", "b", "--keep", dir,
                         "--", self, "fake", NULL),
                     1);
    /* failing every evaluation from the 1st on reaches the planted abort at the 2nd */
    assert_non_null(strstr(output, "stress=b:after=0;"));
    assert_non_null(strstr(output, "stress=b:after=1;"));
    assert_non_null(strstr(output, "runs: 2, failed: 2"));
    assert_int_equal(cli("sweep", "--quiet", "--mode=both", "--only", "b", "--keep", dir, "--",
                         self, "fake", NULL),
                     1);
    assert_non_null(strstr(output, "runs: 4, failed: 3"));
}

static void test_json_output(void **state)
{
    (void)state;
    char path[128];
    (void)snprintf(path, sizeof(path), "%s/result.json", dir);
    assert_int_equal(cli("sweep", "--quiet", "--json", path, "--keep", dir, "--", self, "fake", "",
                         "--flag with space", NULL),
                     1);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[65536];
    size_t n = f != NULL ? fread(text, 1, sizeof(text) - 1, f) : 0;
    text[n] = '\0';
    if (f != NULL)
        (void)fclose(f);
    assert_non_null(strstr(text, "\"runs\":5,\"failed\":2"));
    assert_non_null(strstr(text, "\"budget_exhausted\":false"));
    assert_non_null(strstr(text, "\"never_reached\":[\"never\"]"));
    assert_non_null(strstr(text, "{\"point\":\"b\",\"nth\":2,\"mode\":\"once\",\"result\":"
                                 "\"crashed\""));
    assert_non_null(strstr(text, "\"replay\":\"KEEL_OPTIONS='stress=b:nth=2;"));
    assert_non_null(strstr(text, "'--flag with space'"));
}

static void test_budget(void **state)
{
    (void)state;
    assert_int_equal(cli("sweep", "--quiet", "--budget", "2", "--", self, "fake", "fixed", NULL),
                     0);
    assert_non_null(strstr(output, "runs: 2, failed: 0"));
    assert_non_null(strstr(output, "budget: exhausted"));
}

static void test_bad_option(void **state)
{
    (void)state;
    assert_int_equal(cli("sweep", "--bogus", "--", self, "fake", NULL), 2);
    assert_non_null(strstr(output, "'--bogus'"));
    assert_int_equal(cli("sweep", "--jobs", "lots", "--", self, "fake", NULL), 2);
    assert_non_null(strstr(output, "'lots'"));
    assert_non_null(strstr(output, "'--jobs'"));
    assert_int_equal(cli("sweep", "--mode=sometimes", "--", self, "fake", NULL), 2);
    assert_non_null(strstr(output, "'--mode'"));
    assert_int_equal(cli("list", "--jobs", "2", "--", self, "fake", NULL), 2);
    assert_non_null(strstr(output, "'--jobs'"));
    /* numbers are decimal digits, as KEEL_OPTIONS's: not strtol's '+' or leading blanks */
    assert_int_equal(cli("sweep", "--jobs", "+2", "--", self, "fake", NULL), 2);
    assert_non_null(strstr(output, "bad value '+2' for '--jobs'"));
    assert_int_equal(cli("sweep", "--budget", " 3", "--", self, "fake", NULL), 2);
    assert_non_null(strstr(output, "bad value ' 3' for '--budget'"));
    assert_int_equal(cli("sweep", "--allow-exit", "1, 2", "--", self, "fake", NULL), 2);
    assert_non_null(strstr(output, "bad value '1, 2' for '--allow-exit'"));
    assert_int_equal(cli("sweep", "--allow-exit", "+1", "--", self, "fake", NULL), 2);
    assert_int_equal(cli("sweep", "--timeout", "0x10", "--", self, "fake", NULL), 2);
    assert_non_null(strstr(output, "bad value '0x10' for '--timeout'"));
    assert_int_equal(cli("sweep", "--timeout", " 5", "--", self, "fake", NULL), 2);
    /* --seed: stress.seed's range, not 0 (a new seed in each run: no replay line would replay) */
    assert_int_equal(cli("sweep", "--seed", "0", "--", self, "fake", NULL), 2);
    assert_non_null(strstr(output, "bad value '0' for '--seed'"));
    assert_int_equal(cli("sweep", "--seed", "1000000000000000001", "--", self, "fake", NULL), 2);
    assert_non_null(strstr(output, "from 1 to 10^18"));
    /* an --only that matches no point of the program names it (it swept nothing, exit 0) */
    assert_int_equal(
        cli("sweep", "--quiet", "--only", "nosuch.*", "--", self, "fake", "fixed", NULL), 2);
    assert_non_null(strstr(output, "'--only' 'nosuch.*' matches none of the"));
    assert_null(strstr(output, "runs:"));
    assert_int_equal(cli("list", "--only", "nosuch.*", "--", self, "fake", "fixed", NULL), 2);
    assert_non_null(strstr(output, "'--only' 'nosuch.*' matches none of the"));
    /* a --json FILE that cannot be written is refused before the sweep, not after it */
    static const char *const json[] = {"/dev/null/result.json", "", "/tmp"};
    for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
        assert_int_equal(
            cli("sweep", "--quiet", "--json", json[i], "--", self, "fake", "fixed", NULL), 2);
        if (strstr(output, "for '--json'") == NULL || strstr(output, "runs:") != NULL)
            fail_msg("--json '%s': refused before any run expected:\n%s", json[i], output);
    }
}

/* --keep DIR is made with its missing parents; a DIR that is no directory is named as the fault */
static void test_keep_dir(void **state)
{
    (void)state;
    char nested[PATH_MAX];
    (void)snprintf(nested, sizeof(nested), "%s/a/b", dir);
    assert_int_equal(cli("sweep", "--quiet", "--keep", nested, "--", self, "fake", "fixed", NULL),
                     0);
    struct stat st;
    assert_int_equal(stat(nested, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(cli("sweep", "--quiet", "--keep", "/dev/null", "--", self, "fake", NULL), 2);
    if (strstr(output, "bad value '/dev/null' for '--keep': it is not a directory") == NULL ||
        strstr(output, "cannot run") != NULL)
        fail_msg("--keep /dev/null: the option named as the fault expected:\n%s", output);
}

static void test_learning_run_fails(void **state)
{
    (void)state;
    assert_int_equal(cli("sweep", "--quiet", "--", self, "fake", "broken", NULL), 2);
    assert_non_null(strstr(output, "learning run"));
    assert_non_null(strstr(output, "SIGABRT"));
    assert_non_null(strstr(output, "broken from the start"));
    assert_int_equal(cli("sweep", "--quiet", "--", "/nonexistent/program", NULL), 2);
    assert_non_null(strstr(output, "cannot run '/nonexistent/program'"));
    assert_int_equal(cli("sweep", "--quiet", "--", "true", NULL), 2);
    assert_non_null(strstr(output, "wrote no stress file"));
}

static void test_list_never_reached(void **state)
{
    (void)state;
    assert_int_equal(cli("list", "--timeout", "20", "--", self, "fake", NULL), 0);
    assert_non_null(strstr(output, "points: 3, reached: 2, never reached: 1: never"));
    assert_non_null(strstr(output, "b "));
}

/* libkeel's own points are left out unless --only names them */
static void test_keel_points_only_when_named(void **state)
{
    (void)state;
    assert_int_equal(cli("list", "--timeout", "20", "--", self, "fake", NULL), 0);
    assert_null(strstr(output, "keel.lock_"));
    assert_int_equal(cli("list", "--only", "keel.*", "--", self, "fake", NULL), 0);
    assert_non_null(strstr(output, "keel.lock_classes_full"));
    assert_non_null(strstr(output, "points: 1, reached: 1, never reached: 0"));
    /* swept when named: failing it is a violation of the (fake) program */
    assert_int_equal(cli("sweep", "--quiet", "--only", "keel.*", "--", self, "fake", "fixed", NULL),
                     1);
    assert_non_null(strstr(output, "limit: lock class table full"));
    assert_int_equal(cli("sweep", "--quiet", "--", self, "fake", "fixed", NULL), 0);
}

/*
 * The manual page and bash completion keel-stress writes from its tables
 * (--help-man, --completion: what the build installs) hold every command and
 * option `help` lists; man renders the page without a warning; bash
 * completes every command and each option.
 */
static void test_manual_and_completion(void **state)
{
    (void)state;
    const char *help[] = {"help", NULL};
    assert_int_equal(run_cli(help), 0);
    static char names[64][32];
    const char *cmds[16], *opts[32];
    size_t ncmds = 0, nopts = 0, k = 0;
    for (const char *p = output; (p = strstr(p, "keel-stress ")) != NULL && k < 64; k++) {
        p += strlen("keel-stress ");
        assert_int_equal(sscanf(p, "%31[a-z]", names[k]), 1);
        cmds[ncmds++] = names[k];
    }
    for (const char *p = output; (p = strstr(p, "\n  --")) != NULL && k < 64; k++) {
        p += strlen("\n  --");
        assert_int_equal(sscanf(p, "%31s", names[k]), 1);
        opts[nopts++] = names[k];
    }
    assert_true(ncmds == 3 && nopts >= 11);
    const char *man[] = {"--help-man", NULL};
    assert_int_equal(run_cli(man), 0);
    static char page[sizeof(output)];
    (void)snprintf(page, sizeof(page), "%s", output);
    const char *bash[] = {"--completion", NULL};
    assert_int_equal(run_cli(bash), 0);
    clidoc_check(dir, "keel-stress", page, output, cmds, ncmds, opts, nopts, NULL, NULL, NULL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "fake") == 0)
        return fake_main(argc > 2 ? argv[2] : "");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweep_finds_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_fixed_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_violation_classified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang_classified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allow_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persist_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_learning_run_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_never_reached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keel_points_only_when_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manual_and_completion, setup, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
