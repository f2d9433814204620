/*
 * test_gate_exec.c - keel-gate's job runner: outcomes, timeouts that kill the
 * whole process group, jobs that leave children behind, capped logs.
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
    assert_int_equal(o.exit_code, 127);
    assert_string_equal(gate_exec_result_name(o.result), "not-found");
    assert_non_null(strstr(read_log(), "cannot run '/nonexistent/tool'")); /* and why */
    char *unknown[] = {"keel-no-such-program", NULL};
    o = run(unknown, NULL, 10000, 0);
    assert_int_equal(o.result, GATE_EXEC_NOT_FOUND);
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

/* A PATH the job sets is where its program is found; the job's other variables replace the gate's. */
static void test_job_path_and_environment(void **state)
{
    (void)state;
    char bin[128], tool[160];
    snprintf(bin, sizeof(bin), "%s/bin", dir);
    snprintf(tool, sizeof(tool), "%s/keel-job-tool", bin);
    assert_int_equal(mkdir(bin, 0755), 0);
    FILE *f = fopen(tool, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\necho \"tool in the job's PATH, HOME=$HOME\"\n", f);
    fclose(f);
    assert_int_equal(chmod(tool, 0755), 0);
    char path[256];
    snprintf(path, sizeof(path), "PATH=%s:/usr/bin:/bin", bin);
    char *env[] = {path, "HOME=/job-home", NULL};
    char *argv[] = {"keel-job-tool", NULL};
    gate_exec_outcome o = run(argv, env, 10000, 0);
    assert_int_equal(o.result, GATE_EXEC_PASSED);
    assert_non_null(strstr(read_log(), "tool in the job's PATH, HOME=/job-home"));
    /* not on the gate's PATH, nor in a job's PATH that does not hold it */
    o = run(argv, NULL, 10000, 0);
    assert_int_equal(o.result, GATE_EXEC_NOT_FOUND);
    char *other[] = {"PATH=/usr/bin:/bin", NULL};
    o = run(argv, other, 10000, 0);
    assert_int_equal(o.result, GATE_EXEC_NOT_FOUND);
    assert_int_equal(unlink(tool), 0);
    assert_int_equal(rmdir(bin), 0);
}

/* Whatever the gate blocks or ignores, a job starts with no signal blocked and none ignored. */
static void test_job_signals_default(void **state)
{
    (void)state;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
    struct sigaction ign, old_int, old_pipe;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    assert_int_equal(sigaction(SIGINT, &ign, &old_int), 0);
    assert_int_equal(sigaction(SIGPIPE, &ign, &old_pipe), 0);
    char *argv[] = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL};
    gate_exec_outcome o = run(argv, NULL, 10000, 0);
    assert_int_equal(sigaction(SIGINT, &old_int, NULL), 0);
    assert_int_equal(sigaction(SIGPIPE, &old_pipe, NULL), 0);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    assert_int_equal(o.result, GATE_EXEC_PASSED);
    const char *log = read_log();
    assert_non_null(strstr(log, "SigBlk:\t0000000000000000"));
    const char *ign_line = strstr(log, "SigIgn:\t");
    assert_non_null(ign_line);
    /* none ignored but glibc's two internal signals (32, 33: posix_spawn leaves them so) */
    unsigned long long mask = strtoull(ign_line + 8, NULL, 16);
    assert_int_equal(mask & ~((1ull << 31) | (1ull << 32)), 0);
}

/* A work tree that is not there: the job cannot start. */
static void test_missing_dir(void **state)
{
    (void)state;
    gate_exec_spec spec;
    memset(&spec, 0, sizeof(spec));
    char *argv[] = {"true", NULL};
    spec.argv = argv;
    spec.dir = "/nonexistent/work-tree";
    spec.log = log_path;
    gate_exec_outcome o;
    assert_true(keel_ok(gate_exec_run(&spec, &o)));
    assert_int_equal(o.result, GATE_EXEC_NOT_FOUND);
    assert_non_null(strstr(read_log(), "No such file or directory"));
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
        cmocka_unit_test_setup_teardown(test_job_path_and_environment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_signals_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
