/*
 * test_gate_exec.c - keel-gate's job runner: outcomes, timeouts that kill the
 * whole process group, jobs that leave children behind, capped logs.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "../gate/exec.h"

static char dir[64];
static char log_path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/keel-exec-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(log_path, sizeof(log_path), "%s/job.log", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    (void)unlink(log_path);
    (void)rmdir(dir);
    return 0;
}

static gate_exec_outcome run(char *const *argv, char *const *env, unsigned timeout_ms,
                             unsigned long limit)
{
    gate_exec_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.argv = argv;
    spec.env = env;
    spec.dir = dir;
    spec.log = log_path;
    spec.timeout_ms = timeout_ms;
    spec.log_limit = limit;
    gate_exec_outcome out;
    keel_status s = gate_exec_run(&spec, &out);
    assert_true(keel_ok(s));
    return out;
}

static char *read_log(void)
{
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    static char buf[65536];
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f != NULL)
        fclose(f);
    return buf;
}

static void test_pass_fail_not_found(void **state)
{
    (void)state;
    char *ok[] = {"sh", "-c", "echo hello from the job", NULL};
    gate_exec_outcome o = run(ok, NULL, 10000, 0);
    assert_int_equal(o.result, GATE_EXEC_PASSED);
    assert_non_null(strstr(read_log(), "hello from the job"));
    char *bad[] = {"sh", "-c", "echo failing >&2; exit 3", NULL};
    o = run(bad, NULL, 10000, 0);
    assert_int_equal(o.result, GATE_EXEC_FAILED);
    assert_int_equal(o.exit_code, 3);
    assert_non_null(strstr(read_log(), "failing")); /* stderr is captured too */
    char *missing[] = {"/nonexistent/tool", NULL};
    o = run(missing, NULL, 10000, 0);
    assert_int_equal(o.result, GATE_EXEC_NOT_FOUND);
    assert_string_equal(gate_exec_result_name(o.result), "not-found");
}

static void test_env_and_dir(void **state)
{
    (void)state;
    char *argv[] = {"sh", "-c", "echo \"x=$KEEL_X\"; pwd", NULL};
    char *env[] = {"KEEL_X=42", NULL};
    gate_exec_outcome o = run(argv, env, 10000, 0);
    assert_int_equal(o.result, GATE_EXEC_PASSED);
    const char *log = read_log();
    assert_non_null(strstr(log, "x=42"));
    assert_non_null(strstr(log, dir));
}

static void test_timeout_kills_group(void **state)
{
    (void)state;
    /* the shell and a grandchild both sleep; both must go */
    char *argv[] = {"sh", "-c", "sleep 30 & sleep 30; echo not reached", NULL};
    gate_exec_outcome o = run(argv, NULL, 300, 0);
    assert_int_equal(o.result, GATE_EXEC_TIMEOUT);
    assert_true(o.elapsed_ms >= 300);
    assert_true(o.elapsed_ms < 5000);
    assert_null(strstr(read_log(), "not reached"));
}

static void test_children_left_behind_are_killed(void **state)
{
    (void)state;
    /* the job exits at once but leaves a child holding its output open */
    char *argv[] = {"sh", "-c", "sleep 30 & echo started", NULL};
    gate_exec_outcome o = run(argv, NULL, 60000, 0);
    assert_int_equal(o.result, GATE_EXEC_PASSED);
    assert_true(o.elapsed_ms < 5000); /* did not wait for the orphan */
    assert_non_null(strstr(read_log(), "started"));
}

static void test_crash(void **state)
{
    (void)state;
    char *argv[] = {"sh", "-c", "kill -SEGV $$", NULL};
    gate_exec_outcome o = run(argv, NULL, 10000, 0);
    assert_int_equal(o.result, GATE_EXEC_CRASHED);
    assert_int_equal(o.signal, 11);
}

static void test_log_limit(void **state)
{
    (void)state;
    char *argv[] = {"sh", "-c", "yes 'a line of output' | head -c 1000000", NULL};
    gate_exec_outcome o = run(argv, NULL, 30000, 4096);
    assert_int_equal(o.result, GATE_EXEC_PASSED);
    assert_true(o.log_truncated);
    struct stat st;
    assert_int_equal(stat(log_path, &st), 0);
    assert_true(st.st_size >= 4096);
    assert_true(st.st_size < 4096 + 200);
    assert_non_null(strstr(read_log(), "keel-gate: log truncated at 4096 bytes"));
}

static void test_bad_spec(void **state)
{
    (void)state;
    gate_exec_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.log = log_path;
    gate_exec_outcome o;
    keel_status s = gate_exec_run(&spec, &o);
    assert_true(KEEL_IS(s, KEEL_E_INVAL));
    keel_status_free(s);
    char *argv[] = {"true", NULL};
    spec.argv = argv;
    spec.log = "/nonexistent/dir/job.log";
    s = gate_exec_run(&spec, &o);
    assert_true(KEEL_IS(s, KEEL_E_SYS));
    keel_status_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pass_fail_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_and_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_children_left_behind_are_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_spec, setup, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
