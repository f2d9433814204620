/*
 * test_gate_slurm_runner.c - the node's side of keel-gate's Slurm executor,
 * `keel-gate slurm-step -` (slurm_runner.c), run here as a child of the test
 * (this program, as keel-gate would be), without a cluster: the test plays
 * the gate (the runner's input and output) and Slurm (its signals).
 *
 * Slurm ends a step with SIGCONT to each of its processes, then SIGTERM to
 * each, the job's own before the runner (slurm_int.h): the test sends the
 * SIGCONT and the job's SIGTERM, and not yet the runner's, the moment that
 * let a runner write its job's death as the change's verdict (CI, session 16:
 * the sandbox killed, a gate error; without a sandbox a failed test).
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "slurm.h"
#include "testutil.h"

static char dir[64]; /* the test's temp dir: the spec, the job's log, its pid file */

typedef struct runner {
    pid_t pid;
    int to;   /* its input */
    int from; /* its output */
    char buf[4096];
    size_t have;
} runner;

static int setup(void **state)
{
    (void)state;
    (void)snprintf(dir, sizeof(dir), "/tmp/keel-runner-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* `keel-gate slurm-step -` (this program), its input and output pipes the test's. */
static void runner_start(runner *r)
{
    memset(r, 0, sizeof(*r));
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    char self[512];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(len > 0);
    self[len] = '\0';
    (void)fflush(NULL);
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        (void)dup2(in[0], 0);
        (void)dup2(out[1], 1);
        execl(self, self, GATE_SLURM_STEP_COMMAND, "-", (char *)NULL);
        _exit(127);
    }
    (void)close(in[0]);
    (void)close(out[1]);
    r->to = in[1];
    r->from = out[0];
}

/* The runner's next line (without its newline) within `ms`; false at its end or none by then. */
static bool runner_line(runner *r, char *line, size_t size, int ms)
{
    for (int waited = 0;; waited += 50) {
        char *nl = (char *)memchr(r->buf, '\n', r->have);
        if (nl != NULL) {
            size_t n = (size_t)(nl - r->buf);
            (void)snprintf(line, size, "%.*s", (int)n, r->buf);
            r->have -= n + 1;
            memmove(r->buf, nl + 1, r->have);
            return true;
        }
        if (waited >= ms || r->have == sizeof(r->buf))
            return false;
        struct pollfd pf = {r->from, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        ssize_t got = read(r->from, r->buf + r->have, sizeof(r->buf) - r->have);
        if (got <= 0)
            return false;
        r->have += (size_t)got;
    }
}

static void say(runner *r, const char *text)
{
    size_t n = strlen(text);
    assert_int_equal(write(r->to, text, n), (ssize_t)n);
}

/* Its input closed, the runner's wait status once it has ended (30 s at most: killed, -1). */
static int runner_end(runner *r)
{
    if (r->to >= 0)
        (void)close(r->to);
    int st = 0;
    for (int i = 0; i < 600; i++) {
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            r->pid = 0;
            break;
        }
        (void)usleep(50000);
    }
    if (r->pid > 0) {
        (void)kill(r->pid, SIGKILL);
        (void)waitpid(r->pid, &st, 0);
        st = -1;
    }
    (void)close(r->from);
    return st;
}

/*
 * A spec (slurm.c's format) at `spec`: the job runs `script` with sh in the test's dir, no
 * sandbox (so the job's processes are the test's to signal), a 60 s timeout.
 */
static void write_spec(const char *spec, const char *script)
{
    FILE *f = fopen(spec, "w");
    assert_non_null(f);
    (void)fprintf(f,
                  "version\t2\nconfig\tunit\ntest\tsh\ntest\t-c\ntest\t%s\ndir\t%s\n"
                  "log\t%s/job.log\ntimeout_ms\t60000\nsandbox\t0\nend\t\n",
                  script, dir, dir);
    assert_int_equal(fclose(f), 0);
}

/* The pid in `path` (the job's shell, its process group), once it is there (30 s at most). */
static pid_t pid_in(const char *path)
{
    for (int i = 0; i < 600; i++) {
        FILE *f = fopen(path, "r");
        char text[32] = "";
        long pid = f != NULL && fgets(text, sizeof(text), f) != NULL ? strtol(text, NULL, 10) : 0;
        bool got = pid > 0;
        if (f != NULL)
            (void)fclose(f);
        if (got)
            return (pid_t)pid;
        (void)usleep(50000);
    }
    return 0;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* The spec and its result file of the test's job (job-1). */
static char spec[160], result[192];

/* A runner started and ready; the spec's path set. */
static void ready_runner(runner *r)
{
    (void)snprintf(spec, sizeof(spec), "%s/job-1.log.spec", dir);
    (void)snprintf(result, sizeof(result), "%s.result", spec);
    runner_start(r);
    char line[512];
    assert_true(runner_line(r, line, sizeof(line), 30000));
    assert_string_equal(line, "ready");
}

/* The job `script` handed to the runner. */
static void run_job(runner *r, const char *script)
{
    write_spec(spec, script);
    char line[256];
    (void)snprintf(line, sizeof(line), "run %s\n", spec);
    say(r, line);
}

/* A job that sleeps handed to the runner: its shell's pid (its process group), once started. */
static pid_t run_sleeping_job(runner *r)
{
    char pidfile[160], script[256];
    (void)snprintf(pidfile, sizeof(pidfile), "%s/job.pid", dir);
    (void)snprintf(script, sizeof(script), "echo $$ > '%s'; sleep 60", pidfile);
    run_job(r, script);
    pid_t job = pid_in(pidfile);
    assert_true(job > 0);
    return job;
}

/*
 * The runner answers a job that ran its course (exit 3) with its result; then Slurm ends the
 * step under the next job (SIGCONT to the runner, SIGTERM to the job's processes, the
 * runner's SIGTERM not sent yet): the runner writes no result of that job, says nothing, and
 * ends as on Slurm's SIGTERM (143).
 */
static void test_step_ended_under_a_job_gives_no_result(void **state)
{
    (void)state;
    runner r;
    ready_runner(&r);
    run_job(&r, "exit 3"); /* a job that ends by itself: its result (failed, exit 3), answered */
    char line[512], want[192];
    (void)snprintf(want, sizeof(want), "done %s", spec);
    assert_true(runner_line(&r, line, sizeof(line), 30000));
    assert_string_equal(line, want);
    char text[1024];
    keel_test_read_file(result, text, sizeof(text));
    assert_non_null(strstr(text, "exit_code\t3\n"));
    assert_int_equal(unlink(result), 0);
    pid_t job = run_sleeping_job(&r);          /* the next job, under which Slurm ends the step */
    assert_int_equal(kill(r.pid, SIGCONT), 0); /* Slurm's first pass */
    assert_int_equal(kill(-job, SIGTERM), 0);  /* its second, the job's processes first */
    bool said = runner_line(&r, line, sizeof(line), 5000);
    if (said)
        (void)fprintf(stderr, "the runner said '%s'\n", line);
    int st = runner_end(&r);
    assert_false(said);           /* no answer: the gate takes the job as not run */
    assert_false(exists(result)); /* and finds no verdict of it */
    assert_true(WIFEXITED(st));   /* it ended, as on Slurm's SIGTERM */
    assert_int_equal(WEXITSTATUS(st), 143);
}

/*
 * The runner's input ends (the gate, or only its srun, gone) while a job runs: the runner
 * cancels the job and writes no result of it (a gate whose srun alone ended read it as the
 * change's "cancelled"), then exits.
 */
static void test_input_end_cancels_without_a_result(void **state)
{
    (void)state;
    runner r;
    ready_runner(&r);
    pid_t job = run_sleeping_job(&r);
    int st = runner_end(&r); /* its input closed first */
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_false(exists(result));
    assert_int_not_equal(kill(job, 0), 0); /* the job was cancelled, not left running */
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], GATE_SLURM_STEP_COMMAND) == 0)
        return gate_slurm_step_main(argc, argv); /* the runner, as keel-gate would run it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_step_ended_under_a_job_gives_no_result, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_input_end_cancels_without_a_result, setup, teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
