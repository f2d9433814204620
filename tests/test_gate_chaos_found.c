/*
 * test_gate_chaos_found.c - the smallest reproductions of what the random
 * kills of test_gate_chaos.c found in keel-gate (each names the seeds that
 * found it), with the same binary, repositories and checks (gate_chaos.h).
 */
#define _GNU_SOURCE 1
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate_chaos.h"

/*
 * Two changes adding the same file, in one batch: one lands, the other must
 * end a conflict (merged alone onto the new tip, it does not merge).
 */
static void test_conflict_in_a_batch_is_a_conflict(void **state)
{
    (void)state;
    chaos_start(false);
    chaos_repo(false, "batch", 2, ":");
    size_t a = new_change(CONFLICT, true, cx.n + 1);
    submit(a);
    submit(new_change(CONFLICT, true, a));
    (void)run_once("", "run --once");
    check(true);
    chaos_verdict("two conflicting changes in one batch");
}

/*
 * A job that runs for a while, the gate killed while it runs, the gate
 * started again: the killed gate's job must not run alongside the new one's.
 */
static void test_no_job_of_a_killed_gate_runs_on(void **state)
{
    (void)state;
    chaos_start(false);
    chaos_repo(false, "serial", 1, "sleep 2");
    submit(new_change(GOOD, true, 0));
    cx.life++;
    log_header("run, killed while its job runs");
    pid_t pid = start_gate(false, "");
    proc_id procs[MAX_PROCS];
    for (long long until = now_ms() + 20000LL * SLOW; job_procs(procs, MAX_PROCS) == 0; sleep_ms(5))
        if (now_ms() > until)
            fail_msg("the job did not start within %d s", 20 * SLOW);
    kill_gate(pid);
    orphans_snapshot();
    (void)fprintf(stderr, "chaos: the kill left %zu job process(es) running\n", cx.norphans);
    (void)run_once("", "run --once after the kill");
    check(true);
    chaos_verdict("a job of a killed gate");
}

/*
 * The same without a sandbox: no bubblewrap kills the job's processes when
 * the gate dies (--die-with-parent), so they run on until the next gate
 * reaps them (gate_exec_reap_orphans), which it must do before its own job
 * starts.  The gate is killed once the job's `sleep` runs, long enough
 * (3 s) to outlive the next gate's start: a gate that did not reap them
 * runs its job beside them (seen: this test fails 3 of 3 runs with
 * gate_exec_reap_orphans returning at once).
 */
static void test_no_job_of_a_killed_unsandboxed_gate_runs_on(void **state)
{
    (void)state;
    chaos_start(false);
    chaos_repo_with(false, "serial", 1, "sleep 3", "sandbox = none\n");
    submit(new_change(GOOD, true, 0));
    cx.life++;
    log_header("run without a sandbox, killed while its job's sleep runs");
    pid_t pid = start_gate(false, "");
    proc_id procs[MAX_PROCS];
    /* the job's shell and its sleep (the sleep inherits the token in its environment) */
    for (long long until = now_ms() + 20000LL * SLOW; job_procs(procs, MAX_PROCS) < 2; sleep_ms(5))
        if (now_ms() > until)
            fail_msg("the job's sleep did not start within %d s", 20 * SLOW);
    kill_gate(pid);
    orphans_snapshot();
    assert_true(cx.norphans >= 2); /* nothing killed them: the gate is what must */
    (void)run_once("", "run --once after the kill");
    check(true);
    chaos_verdict("a job of a killed gate without a sandbox");
}

/* A stand-in for a job's process: `sleep 30` with the test's token and a marker naming the gate `by`. */
static pid_t fake_job(pid_t by, unsigned long long by_start)
{
    char token[96], marker[96];
    (void)snprintf(token, sizeof(token), "CHAOS_TOKEN=%s", cx.token);
    (void)snprintf(marker, sizeof(marker), "KEEL_GATE_JOB=00000000deadbeef:%d:%llu", (int)by,
                   by_start);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *const argv[] = {"sleep", "30", NULL};
        char *const envp[] = {token, marker, NULL};
        execve("/bin/sleep", argv, envp);
        _exit(127);
    }
    for (int i = 0; i < 2000; i++) { /* until its environment reads as the job's */
        pid_t g = 0;
        unsigned long long t = 0;
        if (proc_job(pid, &g, &t) && g == by)
            return pid;
        sleep_ms(1);
    }
    fail_msg("the stand-in job %d never showed its environment", (int)pid);
    return -1;
}

static void end_child(pid_t pid)
{
    (void)kill(pid, SIGKILL);
    (void)waitpid(pid, NULL, 0);
}

/*
 * The test's own watch (orphans_watch) on stand-ins: a process of the killed
 * gate that the snapshot missed is the killed gate's, not the new one's (seen
 * once in a make check: the snapshot read a job's shell in the middle of its
 * execve and its `sleep` after, and the shell was taken for the new gate's
 * job); a process whose marker names the running gate, while one of the
 * killed gate's is alive, is the violation.  The watch before told the new
 * gate's jobs by their ancestry: it said the first was a violation.
 */
static void test_watch_tells_the_jobs_of_each_gate(void **state)
{
    (void)state;
    chaos_start(false);
    (void)snprintf(cx.token, sizeof(cx.token), "keelchaoswatch%d", (int)getpid());
    pid_t dead = fork(); /* the killed gate: a pid no longer running */
    assert_true(dead >= 0);
    if (dead == 0)
        _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    cx.gate = fork(); /* the new gate */
    assert_true(cx.gate >= 0);
    if (cx.gate == 0) {
        pause();
        _exit(0);
    }
    pid_t seen = fake_job(dead, 12345);
    orphans_snapshot();
    assert_int_equal(cx.norphans, 1);
    pid_t missed = fake_job(dead, 12345);
    orphans_watch(); /* no job of the new gate: nothing ran alongside */
    unsigned after_missed = cx.violations;
    end_child(seen);
    unsigned long long gate_start = proc_start(cx.gate, NULL);
    assert_true(gate_start > 0);
    pid_t mine = fake_job(cx.gate, gate_start);
    orphans_watch(); /* the missed one still runs: it ran alongside */
    unsigned after_mine = cx.violations;
    end_child(mine);
    end_child(missed);
    end_child(cx.gate);
    cx.gate = 0;
    cx.violations = 0;
    cx.report_len = 0;
    assert_int_equal(after_missed, 0);
    assert_int_equal(after_mine, 1);
}

/* The mirror and the store removed: the URL as before its first use. */
static void forget_mirror(void)
{
    char path[200];
    gate_rm_tree(fx_mirror);
    (void)snprintf(path, sizeof(path), "%s.d", fx_state);
    gate_rm_tree(path);
    static const char *const store_files[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        (void)snprintf(path, sizeof(path), "%s%s", fx_state, store_files[i]);
        (void)unlink(path);
    }
}

/*
 * What is in `dir` (its paths, recursively, logs left out), as a number that
 * does not depend on the order readdir gives them in.
 */
static unsigned long long tree_names(const char *dir, size_t skip)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    unsigned long long sum = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            (len > 4 && strcmp(e->d_name + len - 4, ".log") == 0))
            continue;
        char path[512];
        (void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unsigned long long h = 1469598103934665603ull; /* FNV-1a of the path under fx_dir */
        for (const char *p = path + skip; *p != '\0'; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
        sum += h ^ (h >> 29);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            sum += tree_names(path, skip);
    }
    (void)closedir(d);
    return sum;
}

/*
 * keel-gate killed while it makes the mirror of a URL (its first use), at
 * each millisecond of the first 60 (module POSTs off, so that the mirror is
 * made early): the next command must work, not find a half-made mirror.
 * A kill that found nothing to interrupt leaves what was there before (the
 * submit not yet at its first file: the same paths as before it started), or
 * what a whole submit leaves (it had ended by itself): the next command is
 * run on each of those once, and after every kill that left something else.
 */
static void test_kill_while_making_the_mirror(void **state)
{
    (void)state;
    chaos_start(true);
    chaos_repo(true, "serial", 1, ":");
    size_t c = new_change(GOOD, false, 0);
    char out[200];
    (void)snprintf(out, sizeof(out), "%s/mirror-kill.log", fx_dir);
    unsigned made = 0, checked = 0;
    bool untouched_checked = false, ended_checked = false;
    /* under a sanitizer (SLOW) the same window, every SLOW-th millisecond of its time: the
     * sanitizers look for memory errors and races, which a kill's exact moment does not change;
     * the devel and release runs try every millisecond */
    for (unsigned ms = 0; ms < 60 && cx.violations == 0; ms += KEEL_CHAOS_SANITIZED ? 3u : 1u) {
        forget_mirror();
        size_t skip = strlen(fx_dir);
        unsigned long long before = tree_names(fx_dir, skip);
        const char *argv[16];
        size_t n = gate_args(argv, "submit");
        argv[n++] = cx.ch[c].name;
        argv[n] = NULL;
        pid_t pid = spawn(argv, "module.post=none", out);
        sleep_ms((long)ms * SLOW);
        int status = 0;
        bool ended = waitpid(pid, &status, WNOHANG) == pid; /* before its kill: a whole submit */
        if (ended && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            violation("the first submit through '%s' failed by itself (status %d)", fx_url, status);
        if (!ended) {
            (void)kill(-pid, SIGKILL);
            assert_int_equal(waitpid(pid, NULL, 0), pid);
        }
        struct stat st;
        made += stat(fx_mirror, &st) == 0 ? 1u : 0u;
        bool untouched = !ended && tree_names(fx_dir, skip) == before;
        if ((untouched && untouched_checked) || (ended && ended_checked))
            continue; /* the next command was run on this state already */
        untouched_checked = untouched_checked || untouched;
        ended_checked = ended_checked || ended;
        checked++;
        /* status reads the store, and makes none: killed before the store was made, the submit
           again is the next command */
        bool stored = stat(fx_state, &st) == 0;
        const char *next = stored ? "status" : "submit";
        n = gate_args(argv, next);
        if (!stored)
            argv[n++] = cx.ch[c].name;
        argv[n] = NULL;
        long from = file_size(out);
        assert_true(wait_for(spawn(argv, "module.post=none", out), 30000, &status));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char tail[768];
            file_tail(out, from, tail, sizeof(tail));
            violation("killed %u ms into its first submit through '%s', the next `%s` fails: %s",
                      ms * SLOW, fx_url, next, tail);
        }
    }
    (void)fprintf(stderr,
                  "chaos: %u of the kills left a mirror directory; the next command run after "
                  "%u of them (%s untouched, %s ended by itself: once)\n",
                  made, checked, untouched_checked ? "some" : "none",
                  ended_checked ? "the submit" : "no submit");
    chaos_verdict("kill -9 while the mirror is made");
}

/*
 * Four `keel-gate submit` at once through a URL whose mirror is not made yet
 * (the random kills' first submissions over file:// found it: 11 of 20
 * seeds), ten times: each one must queue its change, none may find a
 * half-made mirror ("not a git repository", "failed to lock file
 * '.../config.lock'").
 */
static void test_first_submits_at_once_through_a_url(void **state)
{
    (void)state;
    chaos_start(true);
    chaos_repo(true, "serial", 1, ":");
    /* the modules' POSTs off: the four reach the mirror at about the same moment, not each
       after its own self tests */
    cx.cli_options = "module.post=none";
    /* (4 rounds under a sanitizer: its slower start-up makes the four overlap all the more) */
    for (unsigned round = 0; round < (KEEL_CHAOS_SANITIZED ? 4u : 10u) && cx.violations == 0;
         round++) {
        forget_mirror();
        size_t first = cx.n;
        for (int i = 0; i < 4; i++)
            submit(new_change(GOOD, false, 0));
        for (size_t i = first; i < cx.n; i++)
            submit_reap(i, true);
    }
    chaos_verdict("the first submits at once through a URL");
}

/*
 * What a kill while keel-gate updates a ref of its mirror leaves (the random
 * kills over file:// found both, seeds 104 and 105: at start-up, where the
 * mirror records the remote's target, and before a push, where the mirror's
 * refs/keel-gate/land is set): an empty lock file next to each ref, an hour
 * old.  The mirror is keel-gate's own: the next run must still land the
 * change, not fail at every start with "failed to lock file".
 */
static void test_stale_locks_in_the_mirror(void **state)
{
    (void)state;
    chaos_start(true);
    chaos_repo(true, "serial", 1, ":");
    gate_store *made = NULL; /* status reads a store, and makes none */
    assert_true(keel_ok(gate_store_open(fx_state, &made)));
    gate_store_close(made);
    const char *argv[16];
    size_t n = gate_args(argv, "status");
    argv[n] = NULL;
    int status = 0;
    char out[200];
    (void)snprintf(out, sizeof(out), "%s/status.log", fx_dir);
    assert_true(wait_for(spawn(argv, "", out), 30000, &status)); /* makes the mirror */
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    static const char *const locks[] = {"refs/heads/main.lock", "refs/keel-gate/land.lock"};
    for (size_t i = 0; i < 2; i++) {
        char lock[200];
        (void)snprintf(lock, sizeof(lock), "%s/refs/keel-gate", fx_mirror);
        (void)mkdir(lock, 0755);
        (void)snprintf(lock, sizeof(lock), "%s/%s", fx_mirror, locks[i]);
        int fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        const struct timespec hour_ago[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
        assert_int_equal(futimens(fd, hour_ago), 0);
        (void)close(fd);
    }
    submit(new_change(GOOD, true, 0));
    (void)run_once("", "run --once with stale locks in the mirror");
    check(true);
    chaos_verdict("stale locks in the mirror");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_conflict_in_a_batch_is_a_conflict, chaos_teardown),
        cmocka_unit_test_teardown(test_no_job_of_a_killed_gate_runs_on, chaos_teardown),
        cmocka_unit_test_teardown(test_no_job_of_a_killed_unsandboxed_gate_runs_on, chaos_teardown),
        cmocka_unit_test_teardown(test_watch_tells_the_jobs_of_each_gate, chaos_teardown),
        cmocka_unit_test_teardown(test_kill_while_making_the_mirror, chaos_teardown),
        cmocka_unit_test_teardown(test_first_submits_at_once_through_a_url, chaos_teardown),
        cmocka_unit_test_teardown(test_stale_locks_in_the_mirror, chaos_teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
