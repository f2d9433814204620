/*
 * tests/gate_chaos.h - what keel-gate's chaos tests (test_gate_chaos.c,
 * test_gate_chaos_found.c) share: the real keel-gate binary started in a
 * process group of its own, killed, its output in gate.log; repositories (a
 * local bare one, or the same through a file:// URL with a mirror) with
 * good, bad, flaky (fails once: a marker file) and conflicting changes,
 * submitted with `keel-gate submit` or pushed to refs/keel-gate/submit/NAME; and
 * the invariants, checked with libgit2 and sqlite3 directly (never the
 * gate's own API):
 *
 *   - main only at tested merges: main's first-parent chain since the start
 *     is made of the merges of candidates the store records as passed (their
 *     changes' heads as second parents, in order, down to the candidate's
 *     base), and main never moves backwards;
 *   - nothing landed twice: each change's head is a second parent on main at
 *     most once;
 *   - nothing lost: every change submitted is in the store exactly once, the
 *     store and main agree on what landed, and after a final `run --once`
 *     good and flaky changes landed, bad ones were rejected with a reason,
 *     one of each conflicting pair landed and the other is a conflict (a
 *     change rejected as quarantined is accepted for the changes expected to
 *     land, and counted);
 *   - no job process of a killed gate still runs when the next gate runs its
 *     jobs (processes found by the test's token in their command line or
 *     environment), and the store passes PRAGMA integrity_check.
 *
 * A broken invariant is a violation: said at once, counted, and the test
 * fails at its end with the first ones (chaos_verdict).  KEEL_CHAOS_SEED picks
 * the random choices (default: from the clock; printed), KEEL_CHAOS_KEEP=1
 * keeps the directory of a failed test.  Timing still varies from run to
 * run: a seed replays the same changes, strategy and kill times, not the same
 * interleaving.
 */
#ifndef KEEL_TEST_GATE_CHAOS_H
#define KEEL_TEST_GATE_CHAOS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate_fixture.h"

#include "exec.h"
#include "gate_int.h"

#ifndef KEEL_GATE_CLI
#define KEEL_GATE_CLI "" /* no keel-gate built: the tests skip */
#endif
#ifndef KEEL_CHAOS_SANITIZED
#define KEEL_CHAOS_SANITIZED 0 /* 1: built with sanitizers (slower: fewer kills, longer lives) */
#endif

enum {
    MAX_CHANGES = 640,
    MAX_PROCS = 256,
    SHOWN = 25, /* violations kept for the failure message */
    /* a gate lives uniform [0, LIFE_MS) ms (times SLOW) before its kill; its lives start
       without the modules' POSTs (module.post=none: they write nothing, a kill there is a kill
       before the gate touched anything, as at 0 ms), which took about 140 ms of the 600 ms
       the lives had with them (`keel-gate status`: 0.20 s of user time with them, 0.06 s
       without, devel): the same stretch of the gate's work in 460 ms */
    LIFE_MS = 460,
    SLOW = KEEL_CHAOS_SANITIZED ? 4 : 1,
    RUN_ONCE_MS = 40000, /* a `run --once` that takes longer is a violation */
    SUBMIT_MS = 20000,   /* a `submit` that takes longer is a violation */
    MAX_NTH = 60,        /* the sweep's bound on the evaluations of one point */
};

typedef enum kind { GOOD, BAD, FLAKY, CONFLICT } kind;
static const char *const kind_names[] = {"good", "bad", "flaky", "conflict"};

typedef struct chg {
    char name[48]; /* its branch, or its name under refs/keel-gate/submit/ */
    char hex[GIT_OID_HEXSZ + 1];
    git_oid head;
    kind kind;
    size_t partner;  /* CONFLICT: the other change of its pair */
    bool pushed;     /* submitted by a push to refs/keel-gate/submit/<name> */
    bool submitted;  /* its submit exited 0, or its ref was pushed */
    pid_t submitter; /* its `keel-gate submit`, while it runs */
} chg;

typedef struct proc_id {
    pid_t pid;
    unsigned long long start; /* field 22 of /proc/<pid>/stat: a pid reused is another process */
    /* the gate its KEEL_GATE_JOB marker names (exec.c: records hash, gate pid, gate start
       time); 0 when its environment could not be read (exiting, in an execve) */
    pid_t gate;
    unsigned long long gate_start;
} proc_id;

static struct chaos {
    unsigned long long seed, rng;
    bool remote;
    char token[64]; /* in every job's command line and environment */
    char log[160];  /* every gate's output */
    git_oid start;  /* main when the gate first ran */
    git_oid last_tip;
    chg ch[MAX_CHANGES];
    size_t n;
    pid_t gate;              /* the running keel-gate, 0 when none */
    const char *cli_options; /* KEEL_OPTIONS of `submit` (NULL: none) */
    unsigned life;
    /* processes of jobs alive when the last gate was killed */
    proc_id orphans[MAX_PROCS];
    size_t norphans;
    long long orphans_at; /* now_ms() of the snapshot */
    bool overlap_seen;
    /* what happened */
    unsigned kills, kills_with_orphans, overlaps, quarantined, self_exits, conflicts_rejected;
    unsigned phase[6];
    unsigned violations;
    char report[6144];
    size_t report_len;
} cx;

/* ---- small things ---------------------------------------------------------------- */

static inline unsigned long long rnd(void) /* splitmix64 */
{
    unsigned long long z = (cx.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline unsigned rnd_below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static inline long long now_ms(void)
{
    return (long long)gate_now_ms(); /* the gate's monotonic clock */
}

static inline void sleep_ms(long ms)
{
    (void)poll(NULL, 0, (int)ms); /* nothing here handles a signal: no EINTR to resume */
}

static inline unsigned long long env_number(const char *name, unsigned long long fallback)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return fallback;
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    if (end == v || *end != '\0')
        fail_msg("%s='%s' is not a number", name, v);
    return n;
}

/* A broken invariant: said at once on stderr, the first SHOWN kept for the failure. */
__attribute__((format(printf, 1, 2))) static inline void violation(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cx.violations++;
    (void)fprintf(stderr, "chaos: VIOLATION (seed %llu, life %u): %s\n", cx.seed, cx.life, msg);
    if (cx.violations <= SHOWN && cx.report_len < sizeof(cx.report)) {
        int n = snprintf(cx.report + cx.report_len, sizeof(cx.report) - cx.report_len,
                         "\n  life %u: %s", cx.life, msg);
        if (n > 0)
            cx.report_len += (size_t)n;
        if (cx.report_len > sizeof(cx.report))
            cx.report_len = sizeof(cx.report);
    }
}

/* The last `max` bytes of a file from `from` on, NUL-terminated, for messages. */
static inline void file_tail(const char *path, long from, char *out, size_t max)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    (void)fseek(f, 0, SEEK_END);
    long end = ftell(f);
    long at = end - (long)max + 1 > from ? end - (long)max + 1 : from;
    if (at >= 0 && fseek(f, at, SEEK_SET) == 0) {
        size_t n = fread(out, 1, max - 1, f);
        out[n] = '\0';
    }
    (void)fclose(f);
}

static inline long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* ---- processes: keel-gate, and the jobs it leaves ---------------------------------- */

/* keel-gate's arguments for `cmd` on the repository under test (NULL-terminated by the caller). */
static inline size_t gate_args(const char **argv, const char *cmd)
{
    size_t n = 0;
    argv[n++] = KEEL_GATE_CLI;
    argv[n++] = "--repo";
    argv[n++] = fx_where;
    if (cx.remote) {
        argv[n++] = "--mirror";
        argv[n++] = fx_mirror;
    }
    argv[n++] = "--state";
    argv[n++] = fx_state;
    argv[n++] = "--target";
    argv[n++] = "main";
    argv[n++] = cmd;
    return n;
}

/* keel-gate started in a process group of its own, output appended to `out`. */
static inline pid_t spawn(const char *const *argv, const char *keel_options, const char *out)
{
    (void)fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)setpgid(0, 0);
        /* a test killed (a ctest timeout) leaves no daemon behind; the gate's own children
           do not inherit this */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(126);
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || in < 0 || dup2(in, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        if (setenv("KEEL_OPTIONS", keel_options, 1) != 0)
            _exit(126);
        char *args[24];
        size_t n = 0;
        for (; argv[n] != NULL && n + 1 < 24; n++)
            args[n] = strdup(argv[n]); /* the child's own copy: it execs at once */
        args[n] = NULL;
        execv(args[0], args);
        _exit(127);
    }
    (void)setpgid(pid, pid); /* either of the two calls wins the race with exec */
    return pid;
}

/* Wait for `pid` up to timeout_ms; true with its status when it ended. */
static inline bool wait_for(pid_t pid, long long timeout_ms, int *status)
{
    for (long long until = now_ms() + timeout_ms;; sleep_ms(5)) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return true;
        assert_true(w == 0);
        if (now_ms() >= until)
            return false;
    }
}

static inline void describe_status(int status, char *out, size_t size)
{
    if (WIFEXITED(status))
        (void)snprintf(out, size, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        (void)snprintf(out, size, "killed by signal %d", WTERMSIG(status));
    else
        (void)snprintf(out, size, "status %d", status);
}

/* Reads a small /proc file whole; its length (0 when gone). */
static inline size_t proc_read(pid_t pid, const char *what, char *buf, size_t size)
{
    char path[64];
    (void)snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    (void)close(fd);
    buf[n] = '\0';
    return n;
}

/* A live process's start time and parent; 0 when it is gone or a zombie. */
static inline unsigned long long proc_start(pid_t pid, pid_t *parent)
{
    char stat[1024];
    if (proc_read(pid, "stat", stat, sizeof(stat)) == 0)
        return 0;
    const char *p = strrchr(stat, ')'); /* after the name: field 3, the state */
    if (p == NULL || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
        return 0;
    unsigned long long field[23] = {0};
    p += 3;
    for (int i = 4; i <= 22 && p != NULL; i++) { /* ppid (4) .. starttime (22) */
        p = strchr(p, ' ');
        if (p != NULL)
            field[i] = strtoull(++p, NULL, 10);
    }
    if (p == NULL)
        return 0;
    if (parent != NULL)
        *parent = (pid_t)field[4];
    return field[22];
}

/*
 * Does `pid` still have its memory?  A process whose exit has released it
 * (its /proc statm reads 0 pages) can no longer run a line of the job: it
 * is only the kernel finishing its exit (a PID namespace's init waits there
 * for the namespace's other processes to be reaped).
 */
static inline bool proc_has_memory(pid_t pid)
{
    char statm[128];
    return proc_read(pid, "statm", statm, sizeof(statm)) > 0 && strtoull(statm, NULL, 10) > 0;
}

/*
 * Is `pid` a job's (the test's token in its command line or environment)?
 * `by` and `by_start`: the gate pid and start time its KEEL_GATE_JOB marker
 * names, 0 when its environment could not be read or names none.
 */
static inline bool proc_job(pid_t pid, pid_t *by, unsigned long long *by_start)
{
    static char buf[65536];
    *by = 0;
    *by_start = 0;
    size_t n = proc_read(pid, "environ", buf, sizeof(buf));
    bool token = n > 0 && memmem(buf, n, cx.token, strlen(cx.token)) != NULL;
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
        if (strncmp(buf + i, "KEEL_GATE_JOB=", 14) != 0)
            continue;
        const char *colon = strchr(buf + i + 14, ':'); /* after the records' hash */
        char *end = NULL;
        long g = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
        if (end != NULL && *end == ':' && g > 0) {
            *by = (pid_t)g;
            *by_start = strtoull(end + 1, NULL, 10);
        }
        break;
    }
    if (!token) {
        n = proc_read(pid, "cmdline", buf, sizeof(buf));
        token = n > 0 && memmem(buf, n, cx.token, strlen(cx.token)) != NULL;
    }
    return token;
}

/* The live processes of jobs: the test's token in their command line or environment. */
static inline size_t job_procs(proc_id *out, size_t cap)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < cap;) {
        char *end = NULL;
        long pid = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0' || pid == (long)getpid())
            continue;
        pid_t by = 0;
        unsigned long long by_start = 0;
        if (!proc_job((pid_t)pid, &by, &by_start))
            continue;
        unsigned long long start = proc_start((pid_t)pid, NULL);
        if (start != 0) {
            out[n].pid = (pid_t)pid;
            out[n].start = start;
            out[n].gate = by;
            out[n].gate_start = by_start;
            n++;
        }
    }
    (void)closedir(d);
    return n;
}

static inline bool is_orphan(pid_t pid, unsigned long long start)
{
    for (size_t i = 0; i < cx.norphans; i++)
        if (cx.orphans[i].pid == pid && cx.orphans[i].start == start)
            return true;
    return false;
}

/* Right after a kill: which jobs of the dead gate still run. */
static inline void orphans_snapshot(void)
{
    cx.norphans = job_procs(cx.orphans, MAX_PROCS);
    cx.orphans_at = now_ms();
    cx.overlap_seen = false;
    if (cx.norphans > 0)
        cx.kills_with_orphans++;
}

/* Keeps the killed gate's job processes still alive (a zombie, an exiting one: gone); how many. */
static inline size_t orphans_alive(void)
{
    size_t alive = 0;
    for (size_t i = 0; i < cx.norphans; i++)
        if (proc_start(cx.orphans[i].pid, NULL) == cx.orphans[i].start &&
            proc_has_memory(cx.orphans[i].pid)) /* exiting: runs nothing of the job */
            cx.orphans[alive++] = cx.orphans[i];
    cx.norphans = alive;
    return alive;
}

enum { MISSED_MS = 1000 }; /* how long after a snapshot a process it missed is looked for */

/*
 * While the next gate runs: a job of the killed gate still alive while a job
 * of this one runs is a violation (said once per restart).  A process is the
 * new gate's job when its KEEL_GATE_JOB marker names the running gate (pid
 * and start time), the killed gate's when it was in the snapshot or its
 * marker names another gate: the snapshot reads /proc one process after
 * another, and one read in the middle of its execve (no token yet) was
 * missed while its child, read later, was not (seen once in a make check:
 * the missed shell, parent of the snapshot's `sleep`, taken for the new
 * gate's job when its ancestry no longer led to the snapshot, the sandbox's
 * init that linked them exiting).  The new gate's jobs are looked for first,
 * the killed gate's still alive after: a process alive after the look was
 * alive during it (it does not come back, and a pid used again has another
 * start time), so the two ran at once.  The other order counts an orphan
 * that the gate reaped while the look went through /proc (seen: the test a
 * nice 19 process among others, the orphan a zombie with an empty command
 * line by the time it was named).  /proc is read while an orphan is alive,
 * and for MISSED_MS after the snapshot (a process it missed shows itself by
 * then).
 */
static inline void orphans_watch(void)
{
    if (cx.overlap_seen || cx.gate <= 0)
        return;
    if ((cx.norphans == 0 || orphans_alive() == 0) && now_ms() - cx.orphans_at > MISSED_MS)
        return; /* (a first look only saves the scan of /proc once they are gone) */
    unsigned long long gate_start = proc_start(cx.gate, NULL);
    proc_id now[MAX_PROCS];
    size_t n = job_procs(now, MAX_PROCS), mine = n;
    for (size_t i = 0; i < n; i++) {
        bool ours = now[i].gate == cx.gate && now[i].gate_start == gate_start;
        if (ours && mine == n)
            mine = i;
        if (!ours && now[i].gate != 0 && !is_orphan(now[i].pid, now[i].start) &&
            cx.norphans < MAX_PROCS)
            cx.orphans[cx.norphans++] = now[i]; /* the killed gate's, missed by the snapshot */
    }
    if (mine == n)
        return;
    size_t alive = orphans_alive();
    if (alive == 0)
        return;
    char cmd[256] = "", stat[256] = ""; /* (a process gone by now: left empty) */
    size_t len = proc_read(cx.orphans[0].pid, "cmdline", cmd, sizeof(cmd));
    for (size_t k = 0; k + 1 < len; k++)
        if (cmd[k] == '\0')
            cmd[k] = ' ';
    (void)proc_read(cx.orphans[0].pid, "stat", stat, sizeof(stat));
    const char *state = strrchr(stat, ')');
    if (++cx.overlaps <= 2) /* said twice, then counted */
        violation("a job of the killed gate (pid %d, state %c: %s) still runs while the new "
                  "gate's job (pid %d) runs: %zu process(es) of the killed gate's jobs left",
                  (int)cx.orphans[0].pid, state != NULL && state[1] != '\0' ? state[2] : '?', cmd,
                  (int)now[mine].pid, alive);
    else
        cx.violations++;
    cx.overlap_seen = true;
}

/* Every job process left, killed (processes this test made the gate start). */
static inline void kill_jobs(void)
{
    if (cx.token[0] == '\0')
        return;
    proc_id procs[MAX_PROCS];
    size_t n = job_procs(procs, MAX_PROCS);
    for (size_t i = 0; i < n; i++)
        (void)kill(procs[i].pid, SIGKILL);
}

/* ---- the repository and its changes ------------------------------------------------ */

/*
 * main: the configuration (one required configuration "unit" running
 * `sh ci.sh TOKEN`) and ci.sh: a job runs `job_wait` (a sleep), fails when a file
 * bad-* is in the tree, and fails once per flaky-* file (it leaves a marker
 * per file, all of them before it fails: a candidate fails at most once for
 * flakiness, so a retry decides).
 */
static inline void chaos_repo_with(bool remote, const char *strategy, unsigned slots,
                                   const char *job_wait, const char *gate_lines);

static inline void chaos_repo(bool remote, const char *strategy, unsigned slots,
                              const char *job_wait)
{
    chaos_repo_with(remote, strategy, slots, job_wait, "");
}

/* The same, with more lines of [gate] (`gate_lines`: each ending in a newline). */
static inline void chaos_repo_with(bool remote, const char *strategy, unsigned slots,
                                   const char *job_wait, const char *gate_lines)
{
    fx_setup_repo("", "");
    cx.remote = remote;
    fx_where = remote ? fx_url : fx_repo;
    (void)snprintf(cx.token, sizeof(cx.token), "keelchaosjob%dx%llu", (int)getpid(),
                   cx.seed % 1000000007ull);
    (void)snprintf(cx.log, sizeof(cx.log), "%s/gate.log", fx_dir);
    char conf[1280], ci[512];
    (void)snprintf(conf, sizeof(conf),
                   "[gate]\ntarget = main\nslots = %u\nstrategy = %s\nmax-batch = 4\n"
                   "max-depth = 3\nretries = 1\nnotify = tee -a %s/events.jsonl\n%s"
                   "[config unit]\ntest = sh ci.sh %s\nenv = MARKER=%s/marker CHAOS_TOKEN=%s\n"
                   "writable = %s\ntimeout = 60\n",
                   slots, strategy, fx_dir, gate_lines, cx.token, fx_shared, cx.token, fx_shared);
    (void)snprintf(ci, sizeof(ci),
                   "%s\n"
                   "for f in bad-*; do if [ -e \"$f\" ]; then echo \"$f: bad\"; exit 1; fi; done\n"
                   "fail=0\n"
                   "for f in flaky-*; do\n"
                   "  if [ -e \"$f\" ] && [ ! -e \"$MARKER.$f\" ]; then\n"
                   "    : > \"$MARKER.$f\"; echo \"$f: fails once\"; fail=1\n"
                   "  fi\n"
                   "done\n"
                   "exit $fail\n",
                   job_wait);
    const fx_file f[] = {{".keel/gate.conf", conf}, {"ci.sh", ci}};
    git_oid tip;
    fx_commit(&fx_base, f, 2, "main", &tip);
    git_oid_cpy(&fx_base, &tip);
    git_oid_cpy(&cx.start, &tip);
    git_oid_cpy(&cx.last_tip, &tip);
    cx.n = 0;
    cx.gate = 0;
    cx.life = 0;
    cx.norphans = 0;
}

static inline void push_ref(const chg *c, bool create)
{
    char ref[128];
    (void)snprintf(ref, sizeof(ref), "refs/keel-gate/submit/%s", c->name);
    git_reference *r = NULL;
    if (create) {
        assert_int_equal(git_reference_create(&r, fx_git, ref, &c->head, 1, "push"), 0);
    } else if (git_reference_lookup(&r, fx_git, ref) == 0) {
        assert_int_equal(git_reference_delete(r), 0);
    }
    git_reference_free(r);
}

/* A new change off main's first commit: its commit and branch; a pushed one keeps no branch. */
static inline size_t new_change(kind k, bool pushed, size_t partner)
{
    assert_true(cx.n < MAX_CHANGES);
    size_t i = cx.n++;
    chg *c = &cx.ch[i];
    memset(c, 0, sizeof(*c));
    c->kind = k;
    c->pushed = pushed;
    c->partner = partner;
    (void)snprintf(c->name, sizeof(c->name), "%s%s-%zu", pushed ? "push-" : "", kind_names[k], i);
    char path[48], content[48];
    (void)snprintf(content, sizeof(content), "change %zu\n", i);
    switch (k) {
    case GOOD:
        (void)snprintf(path, sizeof(path), "good-%zu.txt", i);
        break;
    case BAD:
        (void)snprintf(path, sizeof(path), "bad-%zu", i);
        break;
    case FLAKY:
        (void)snprintf(path, sizeof(path), "flaky-%zu", i);
        break;
    case CONFLICT: /* both of a pair add the same file, each its own content */
        (void)snprintf(path, sizeof(path), "conflict-%zu.txt", partner < i ? partner : i);
        break;
    }
    const fx_file f[] = {{path, content}};
    fx_commit(&fx_base, f, 1, c->name, &c->head);
    (void)git_oid_tostr(c->hex, sizeof(c->hex), &c->head);
    if (pushed) {
        char ref[128];
        (void)snprintf(ref, sizeof(ref), "refs/heads/%s", c->name);
        git_reference *r = NULL;
        assert_int_equal(git_reference_lookup(&r, fx_git, ref), 0);
        assert_int_equal(git_reference_delete(r), 0);
        git_reference_free(r);
    }
    return i;
}

/* Submit change i: a push (at once), or `keel-gate submit` in the background. */
static inline void submit(size_t i)
{
    chg *c = &cx.ch[i];
    if (c->pushed) {
        push_ref(c, true);
        c->submitted = true;
        return;
    }
    const char *argv[16];
    size_t n = gate_args(argv, "submit");
    argv[n++] = c->name;
    char prio[16];
    unsigned p = rnd_below(4);
    if (p > 0) {
        (void)snprintf(prio, sizeof(prio), "%u", p);
        argv[n++] = "--priority";
        argv[n++] = prio;
    }
    argv[n] = NULL;
    char out[200];
    (void)snprintf(out, sizeof(out), "%s/submit-%zu.log", fx_dir, i);
    c->submitter = spawn(argv, cx.cli_options != NULL ? cx.cli_options : "", out);
}

/* A submit that ended: its status; `wait`: wait for it (up to SUBMIT_MS). */
static inline void submit_reap(size_t i, bool wait)
{
    chg *c = &cx.ch[i];
    if (c->submitter == 0)
        return;
    int status = 0;
    if (wait) {
        if (!wait_for(c->submitter, (long long)SUBMIT_MS * SLOW, &status)) {
            (void)kill(-c->submitter, SIGKILL);
            (void)waitpid(c->submitter, &status, 0);
            violation("`keel-gate submit %s` did not end within %d ms", c->name, SUBMIT_MS * SLOW);
            c->submitter = 0;
            return;
        }
    } else {
        pid_t w = waitpid(c->submitter, &status, WNOHANG);
        assert_true(w >= 0);
        if (w == 0)
            return;
    }
    c->submitter = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        c->submitted = true;
        return;
    }
    char how[64], path[200], out[512];
    describe_status(status, how, sizeof(how));
    (void)snprintf(path, sizeof(path), "%s/submit-%zu.log", fx_dir, i);
    file_tail(path, 0, out, sizeof(out));
    violation("`keel-gate submit %s` failed (%s): %s", c->name, how, out);
}

static inline void submits_reap(bool wait)
{
    for (size_t i = 0; i < cx.n; i++)
        submit_reap(i, wait);
}

/* A random change, or a conflicting pair, submitted now. */
static inline void submit_random(void)
{
    unsigned r = rnd_below(100);
    bool pushed = rnd_below(100) < 40;
    if (r < 20 && cx.n + 2 <= MAX_CHANGES) {
        size_t a = new_change(CONFLICT, pushed, cx.n + 1);
        size_t b = new_change(CONFLICT, rnd_below(100) < 40, a);
        submit(a);
        submit(b);
        return;
    }
    kind k = r < 55 ? GOOD : r < 75 ? BAD : FLAKY;
    submit(new_change(k, pushed, 0));
}

/* ---- the store, read with sqlite3 directly ------------------------------------------ */

static inline sqlite3 *db_open(void)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(fx_state, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        violation("cannot open the store '%s': %s", fx_state, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    (void)sqlite3_busy_timeout(db, 10000);
    return db;
}

static inline sqlite3_stmt *db_prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("the store: '%s': %s", sql, sqlite3_errmsg(db));
    return st;
}

/* The first column of the first row as an integer (-1: no row). */
static inline long long db_int(sqlite3 *db, const char *sql, const char *arg)
{
    sqlite3_stmt *st = db_prepare(db, sql);
    if (arg != NULL)
        (void)sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

/* A change's row: how many rows hold its head, and the state and reason of the last. */
static inline long long db_change(sqlite3 *db, const char *hex, char *state, size_t ssize,
                                  char *reason, size_t rsize)
{
    sqlite3_stmt *st = db_prepare(db, "SELECT state, reason FROM changes WHERE head = ?1");
    (void)sqlite3_bind_text(st, 1, hex, -1, SQLITE_TRANSIENT);
    long long n = 0;
    state[0] = reason[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW) {
        n++;
        (void)snprintf(state, ssize, "%s", (const char *)sqlite3_column_text(st, 0));
        (void)snprintf(reason, rsize, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    return n;
}

/* ---- the invariants ------------------------------------------------------------------ */

typedef struct landing {
    git_oid heads[MAX_CHANGES]; /* second parents on main's first-parent chain */
    size_t nheads;
    git_oid tip;
    bool tip_unsettled; /* the tip's candidate is still open (killed after the swap) */
    char tip_changes[8][GIT_OID_HEXSZ + 1]; /* the heads of the tip's candidate */
    size_t ntip_changes;
} landing;

static inline bool oid_from_hex(const char *hex, git_oid *out)
{
    return hex != NULL && strlen(hex) == GIT_OID_HEXSZ && git_oid_fromstr(out, hex) == 0;
}

/*
 * The candidate whose merge is `merge`, tested: its last attempt's jobs all
 * passed, and it is recorded passed (or open, for the tip between a kill and
 * the next recovery: `may_be_open`).  Its base and changes' heads, in order.
 */
static inline bool tested_candidate(sqlite3 *db, const char *merge, bool may_be_open, bool *open,
                                    char *base, char heads[][GIT_OID_HEXSZ + 1], size_t max,
                                    size_t *nheads)
{
    sqlite3_stmt *st = db_prepare(
        db, "SELECT c.id, c.base, c.state FROM candidates c WHERE c.merge = ?1 AND "
            "c.state IN ('passed', 'open') AND "
            "EXISTS (SELECT 1 FROM jobs j WHERE j.candidate = c.id AND j.state = 'passed') AND "
            "NOT EXISTS (SELECT 1 FROM jobs j WHERE j.candidate = c.id AND j.state <> 'passed' "
            "AND j.state <> 'gate-error' " /* the gate's own failure: the job ran again */
            "AND j.attempt = (SELECT max(attempt) FROM jobs k WHERE k.candidate = c.id)) "
            "ORDER BY c.state = 'passed' DESC, c.id DESC");
    (void)sqlite3_bind_text(st, 1, merge, -1, SQLITE_TRANSIENT);
    long long id = -1;
    while (id < 0 && sqlite3_step(st) == SQLITE_ROW) {
        bool is_open = strcmp((const char *)sqlite3_column_text(st, 2), "open") == 0;
        if (is_open && !may_be_open)
            continue;
        id = sqlite3_column_int64(st, 0);
        *open = is_open;
        (void)snprintf(base, GIT_OID_HEXSZ + 1, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    if (id < 0)
        return false;
    st = db_prepare(db, "SELECT ch.head FROM candidate_changes cc JOIN changes ch ON ch.id = "
                        "cc.change WHERE cc.candidate = ?1 ORDER BY cc.position");
    (void)sqlite3_bind_int64(st, 1, id);
    *nheads = 0;
    while (sqlite3_step(st) == SQLITE_ROW && *nheads < max)
        (void)snprintf(heads[(*nheads)++], GIT_OID_HEXSZ + 1, "%s",
                       (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return true;
}

/*
 * Walk main from its tip down to where the test started: landing points (the
 * merges of tested candidates), each down through one merge per change of
 * its candidate (that change's head as the second parent) to its base, the
 * next landing point.  Fills `l`; false when main's history is broken.
 */
static inline bool walk_main(sqlite3 *db, bool final, landing *l)
{
    memset(l, 0, sizeof(*l));
    assert_int_equal(git_reference_name_to_id(&l->tip, fx_git, "refs/heads/main"), 0);
    git_oid cur = l->tip;
    bool seen_last = git_oid_equal(&cur, &cx.last_tip);
    bool at_tip = true;
    while (!git_oid_equal(&cur, &cx.start)) {
        char hex[GIT_OID_HEXSZ + 1], base[GIT_OID_HEXSZ + 1];
        char heads[8][GIT_OID_HEXSZ + 1];
        size_t n = 0;
        bool open = false;
        (void)git_oid_tostr(hex, sizeof(hex), &cur);
        if (!tested_candidate(db, hex, at_tip && !final, &open, base, heads, 8, &n)) {
            violation("main%s is at %.12s, not the merge of a candidate the store records as "
                      "tested and passed",
                      at_tip ? "'s tip" : "'s history", hex);
            return false;
        }
        if (at_tip) {
            l->tip_unsettled = open;
            memcpy(l->tip_changes, heads, sizeof(heads));
            l->ntip_changes = n;
        }
        for (size_t i = n; i-- > 0;) {
            git_commit *c = NULL;
            git_oid head;
            if (git_commit_lookup(&c, fx_git, &cur) != 0 || git_commit_parentcount(c) != 2 ||
                !oid_from_hex(heads[i], &head) ||
                !git_oid_equal(git_commit_parent_id(c, 1), &head)) {
                violation("main at %.12s: commit %.12s is not the merge of change head %.12s "
                          "(candidate merge %.12s, change %zu of %zu)",
                          hex, git_oid_tostr_s(&cur), heads[i], hex, i + 1, n);
                git_commit_free(c);
                return false;
            }
            if (l->nheads < MAX_CHANGES)
                git_oid_cpy(&l->heads[l->nheads++], &head);
            git_oid_cpy(&cur, git_commit_parent_id(c, 0));
            git_commit_free(c);
            seen_last = seen_last || git_oid_equal(&cur, &cx.last_tip);
        }
        git_oid b;
        if (!oid_from_hex(base, &b) || !git_oid_equal(&b, &cur)) {
            violation("main: candidate merge %.12s's changes lead to %.12s, not to its base %.12s",
                      hex, git_oid_tostr_s(&cur), base);
            return false;
        }
        at_tip = false;
    }
    if (!seen_last) {
        char was[GIT_OID_HEXSZ + 1];
        (void)git_oid_tostr(was, sizeof(was), &cx.last_tip);
        violation("main moved backwards: it was at %.12s, now at %s, which does not contain it",
                  was, git_oid_tostr_s(&l->tip));
    }
    git_oid_cpy(&cx.last_tip, &l->tip);
    return true;
}

static inline bool on_main(const landing *l, const git_oid *head)
{
    for (size_t i = 0; i < l->nheads; i++)
        if (git_oid_equal(&l->heads[i], head))
            return true;
    return false;
}

static inline bool in_tip_candidate(const landing *l, const char *hex)
{
    for (size_t i = 0; i < l->ntip_changes; i++)
        if (strcmp(l->tip_changes[i], hex) == 0)
            return true;
    return false;
}

static inline bool ref_exists(const char *name)
{
    char ref[128];
    (void)snprintf(ref, sizeof(ref), "refs/keel-gate/submit/%s", name);
    git_oid oid;
    return git_reference_name_to_id(&oid, fx_git, ref) == 0;
}

/*
 * A git lock file beside the ref in the repository: a push or removal killed
 * while it wrote (a file:// remote is written by keel-gate's own process):
 * git's rule is that only a person removes it, so the ref may stay.
 */
static inline bool ref_locked(const char *name)
{
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/refs/keel-gate/submit/%s.lock", fx_repo, name);
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* What a change ended as, against what its kind must end as (final check). */
static inline void check_final_state(sqlite3 *db, size_t i, const char *state, const char *reason)
{
    const chg *c = &cx.ch[i];
    bool quarantined = strcmp(state, "rejected") == 0 && strstr(reason, "quarantin") != NULL;
    switch (c->kind) {
    case GOOD:
    case FLAKY:
        if (quarantined)
            cx.quarantined++;
        else if (strcmp(state, "landed") != 0)
            violation("%s change '%s' ended %s: %s", kind_names[c->kind], c->name, state, reason);
        return;
    case BAD:
        if (strcmp(state, "rejected") != 0 || reason[0] == '\0')
            violation("bad change '%s' ended %s (reason '%s'), not rejected with a reason", c->name,
                      state, reason);
        return;
    case CONFLICT: {
        const chg *p = &cx.ch[c->partner];
        char pstate[32] = "";
        if (p->submitted) {
            char preason[GATE_REASON_MAX];
            (void)db_change(db, p->hex, pstate, sizeof(pstate), preason, sizeof(preason));
        }
        if (quarantined) {
            cx.quarantined++;
        } else if (strcmp(state, "landed") == 0) {
            if (strcmp(pstate, "landed") == 0)
                violation("both of the conflicting pair '%s' and '%s' landed", c->name, p->name);
        } else if (strcmp(state, "conflict") == 0) {
            if (strcmp(pstate, "landed") != 0)
                violation("'%s' ended a conflict, but the change it conflicts with, '%s', is %s",
                          c->name, p->name, pstate[0] != '\0' ? pstate : "not submitted");
        } else if (++cx.conflicts_rejected <= 2 || strcmp(state, "rejected") != 0) {
            violation("conflicting change '%s' ended %s (its pair '%s' %s), not landed or "
                      "conflict: %s",
                      c->name, state, p->name, pstate, reason);
        } else {
            cx.violations++; /* said twice, then counted */
        }
        return;
    }
    }
}

/*
 * The invariants, between kills (`final` false: the tip may still wait for
 * the next recovery to record it) and at the end.
 */
/*
 * No store yet (only pushes so far, and no gate got as far as making it):
 * then nothing may have been taken or landed.
 */
static inline void check_without_store(bool final)
{
    git_oid tip;
    assert_int_equal(git_reference_name_to_id(&tip, fx_git, "refs/heads/main"), 0);
    if (!git_oid_equal(&tip, &cx.start))
        violation("main moved to %s, but there is no store", git_oid_tostr_s(&tip));
    for (size_t i = 0; i < cx.n; i++)
        if (cx.ch[i].submitted && !(cx.ch[i].pushed && ref_exists(cx.ch[i].name)))
            violation("change '%s' was submitted, but there is no store: lost", cx.ch[i].name);
    if (final && cx.n > 0)
        violation("no store after the final run --once");
}

static inline void check(bool final)
{
    struct stat sst;
    if (stat(fx_state, &sst) != 0) {
        check_without_store(final);
        return;
    }
    sqlite3 *db = db_open();
    if (db == NULL)
        return;
    sqlite3_stmt *st = db_prepare(db, "PRAGMA integrity_check");
    const char *ok = sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : "";
    if (strcmp(ok, "ok") != 0)
        violation("PRAGMA integrity_check: %s", ok);
    sqlite3_finalize(st);
    landing *l = (landing *)calloc(1, sizeof(landing));
    assert_non_null(l);
    bool whole = walk_main(db, final, l);
    /* nothing landed twice */
    for (size_t i = 0; i < l->nheads; i++)
        for (size_t j = i + 1; j < l->nheads; j++)
            if (git_oid_equal(&l->heads[i], &l->heads[j]))
                violation("change head %s landed twice on main", git_oid_tostr_s(&l->heads[i]));
    /* nothing lost, nothing queued twice, the store and main agree */
    for (size_t i = 0; i < cx.n; i++) {
        const chg *c = &cx.ch[i];
        char state[32], reason[GATE_REASON_MAX];
        long long rows = db_change(db, c->hex, state, sizeof(state), reason, sizeof(reason));
        bool pending = c->pushed && c->submitted && ref_exists(c->name);
        if (final && pending && !ref_locked(c->name))
            violation("the push of '%s' is still in refs/keel-gate/submit/ after run --once",
                      c->name);
        if (rows > 1)
            violation("change '%s' (%.12s) is in the store %lld times", c->name, c->hex, rows);
        if (rows == 0 && c->submitted && !pending)
            violation("change '%s' (%.12s) was submitted%s and is not in the store: lost", c->name,
                      c->hex, c->pushed ? " by a push whose ref is gone" : "");
        bool landed = on_main(l, &c->head);
        if (rows == 0 && landed)
            violation("change '%s' is on main but not in the store", c->name);
        if (rows == 0 || !whole)
            continue;
        bool settling = !final && l->tip_unsettled && in_tip_candidate(l, c->hex) &&
                        strcmp(state, "testing") == 0;
        if (landed && strcmp(state, "landed") != 0 && !settling)
            violation("change '%s' is on main, but the store says %s: %s", c->name, state, reason);
        if (!landed && strcmp(state, "landed") == 0)
            violation("the store says change '%s' landed, but it is not on main", c->name);
        if (final)
            check_final_state(db, i, state, reason);
    }
    if (final) {
        static const char *const left[] = {
            "SELECT count(*) FROM changes WHERE state IN ('queued', 'testing')",
            "SELECT count(*) FROM jobs WHERE state = 'running'",
            "SELECT count(*) FROM candidates WHERE state = 'open'",
        };
        for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++) {
            long long n = db_int(db, left[i], NULL);
            if (n != 0)
                violation("after the final run --once: %lld left by '%s'", n, left[i]);
        }
    }
    free(l);
    sqlite3_close(db);
}

static inline void log_header(const char *what)
{
    FILE *f = fopen(cx.log, "a");
    assert_non_null(f);
    (void)fprintf(f, "=== life %u: %s ===\n", cx.life, what);
    (void)fclose(f);
}

/* Start `keel-gate run` (daemon) or `run --once`, with these KEEL_OPTIONS. */
static inline pid_t start_gate(bool once, const char *keel_options)
{
    const char *argv[16];
    size_t n = gate_args(argv, "run");
    if (once)
        argv[n++] = "--once";
    argv[n] = NULL;
    cx.gate = spawn(argv, keel_options, cx.log);
    return cx.gate;
}

/* kill -9 of the gate: its process group (its jobs have groups of their own). */
static inline void kill_gate(pid_t pid)
{
    (void)kill(-pid, SIGKILL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    cx.gate = 0;
    cx.kills++;
}

/*
 * `run --once` to its end (watching for jobs of a killed gate meanwhile),
 * with these KEEL_OPTIONS: its wait status, -1 if it had to be killed.
 */
static inline int run_once(const char *keel_options, const char *what)
{
    cx.life++;
    log_header(what);
    long from = file_size(cx.log);
    pid_t pid = start_gate(true, keel_options);
    int status = 0;
    for (long long until = now_ms() + (long long)RUN_ONCE_MS * SLOW;; sleep_ms(2)) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        assert_true(w >= 0);
        if (w == pid)
            break;
        orphans_watch();
        if (now_ms() > until) {
            (void)kill(-pid, SIGKILL);
            (void)waitpid(pid, &status, 0);
            char tail[768];
            file_tail(cx.log, from, tail, sizeof(tail));
            violation("%s did not end within %d ms: %s", what, RUN_ONCE_MS * SLOW, tail);
            status = -1;
            break;
        }
    }
    cx.gate = 0;
    if (status == -1 || strstr(keel_options, "stress=") != NULL)
        return status;
    char tail[1024];
    file_tail(cx.log, from, tail, sizeof(tail));
    const char *error = strstr(tail, "keel-gate: error:");
    if (!(WIFEXITED(status) && WEXITSTATUS(status) <= 1) || error != NULL) {
        char how[64];
        describe_status(status, how, sizeof(how));
        violation("%s: %s%s: %s", what, how, error != NULL ? ", with an error" : "",
                  error != NULL ? error : tail);
    }
    return status;
}

/* A test's start: skipped without keel-gate, then the seed (a repository: chaos_repo). */
static inline void chaos_start(bool remote)
{
    if (KEEL_GATE_CLI[0] == '\0')
        skip(); /* keel-gate is not built */
    memset(&cx, 0, sizeof(cx));
    cx.seed = env_number("KEEL_CHAOS_SEED",
                         ((unsigned long long)time(NULL) << 20) ^ (unsigned long long)getpid());
    cx.rng = cx.seed ^ (remote ? 0x5deece66dull : 0); /* file:// tests choose otherwise */
}

/* Fails the test with what was found; keeps the directory when asked to. */
static inline void chaos_verdict(const char *what)
{
    (void)fprintf(stderr, "chaos: %s: seed %llu: %u violation(s)\n", what, cx.seed, cx.violations);
    if (cx.violations == 0)
        return;
    if (getenv("KEEL_CHAOS_KEEP") != NULL) {
        (void)fprintf(stderr, "chaos: kept %s (gate.log: every gate's output)\n", fx_dir);
        (void)snprintf(fx_dir, sizeof(fx_dir), "/nonexistent-kept"); /* the teardown keeps it */
    }
    fail_msg("%s: %u violation(s), seed %llu (KEEL_CHAOS_SEED=%llu replays the choices):%.*s", what,
             cx.violations, cx.seed, cx.seed, (int)cx.report_len, cx.report);
}

static inline int chaos_teardown(void **state)
{
    (void)state;
    if (cx.gate > 0) {
        (void)kill(-cx.gate, SIGKILL);
        (void)waitpid(cx.gate, NULL, 0);
        cx.gate = 0;
    }
    for (size_t i = 0; i < cx.n; i++)
        if (cx.ch[i].submitter > 0) {
            (void)kill(-cx.ch[i].submitter, SIGKILL);
            (void)waitpid(cx.ch[i].submitter, NULL, 0);
        }
    kill_jobs();
    if (fx_git != NULL)
        fx_teardown_repo();
    return 0;
}

#endif /* KEEL_TEST_GATE_CHAOS_H */
