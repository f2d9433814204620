/*
 * test_gate_chaos.c - the real keel-gate binary killed at random moments and
 * at every evaluation of every gate.crash_* stress point, over a local bare
 * repository and the same through a file:// URL with a mirror, the
 * invariants of gate_chaos.h checked between kills and at the end.
 *
 * test_random_kills_*: the daemon (`run`, without the modules' POSTs) killed
 * with SIGKILL at a moment uniform over its first LIFE_MS ms (starting,
 * merging, jobs, landing), with changes submitted and pushed while it runs (a
 * submit still running at a kill goes on into the next life), restarted,
 * killed again..., then a final `run --once` whose jobs skip their sleep;
 * KEEL_CHAOS_KILLS is the number of kills over the two tests (each does half;
 * default 100, 30 under sanitizers).
 * test_crash_points_*: every gate.crash_* point keel-gate has (its stress.json
 * lists them) armed at its 1st, 2nd, ... evaluation until a run goes through
 * without it firing (under sanitizers, several times slower: the 1st and
 * 2nd), each followed by a clean `run --once`: those while building over a
 * local repository, those while landing (and taking pushes) over a local one
 * and over file://.
 * test_gate_chaos_found.c holds the smallest reproductions of what they found.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "gate_chaos.h"

static const char *const phase_names[] = {"starting",  "started", "jobs running",
                                          "job ended", "decided", "other"};

/* What the gate was doing when it was killed: the last line it wrote in this life. */
static unsigned phase_of(long from)
{
    char tail[512];
    file_tail(cx.log, from, tail, sizeof(tail));
    size_t len = strlen(tail);
    while (len > 0 && tail[len - 1] == '\n')
        tail[--len] = '\0';
    const char *line = strrchr(tail, '\n');
    line = line != NULL ? line + 1 : tail;
    if (line[0] == '\0' || strncmp(line, "=== ", 4) == 0)
        return 0;
    static const char *const starts[][2] = {
        {"gate:", "1"},  {"recovered:", "1"}, {"queued change", "1"}, {"build:", "2"},
        {"  job ", "3"}, {"landed:", "4"},    {"rejected:", "4"},     {"conflict:", "4"},
        {"flaky:", "4"}, {"moved:", "4"},
    };
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++)
        if (strncmp(line, starts[i][0], strlen(starts[i][0])) == 0)
            return (unsigned)(starts[i][1][0] - '0');
    return 5;
}

/*
 * One life of the daemon: started, changes submitted at random moments while
 * it runs, killed (SIGKILL to its process group) at a random moment.
 */
static void life_killed(void)
{
    cx.life++;
    unsigned life_ms = rnd_below(LIFE_MS * SLOW);
    long long when[2];
    unsigned nact = rnd_below(3); /* 0..2 submissions during this life */
    for (unsigned i = 0; i < nact; i++)
        when[i] = (long long)rnd_below(LIFE_MS * SLOW);
    char what[64];
    (void)snprintf(what, sizeof(what), "run, killed after %u ms", life_ms);
    log_header(what);
    long from = file_size(cx.log);
    long long t0 = now_ms();
    pid_t pid = start_gate(false, "module.post=none");
    bool ended = false;
    int status = 0;
    while (now_ms() - t0 < life_ms) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        assert_true(w >= 0);
        if (w == pid) {
            ended = true;
            break;
        }
        for (unsigned i = 0; i < nact; i++)
            if (when[i] >= 0 && now_ms() - t0 >= when[i]) {
                when[i] = -1;
                submit_random();
            }
        submits_reap(false);
        orphans_watch();
        sleep_ms(2);
    }
    if (ended) {
        char how[64], tail[768];
        describe_status(status, how, sizeof(how));
        file_tail(cx.log, from, tail, sizeof(tail));
        violation("`keel-gate run` ended by itself (%s) before its kill: %s", how, tail);
        cx.self_exits++;
    } else {
        kill_gate(pid);
        cx.phase[phase_of(from)]++;
    }
    cx.gate = 0;
    submits_reap(false); /* a submit still running goes on into the next life */
    check(false);
    orphans_snapshot();
}

/* ---- the random kills --------------------------------------------------------------- */

static void random_kills(bool remote)
{
    chaos_start(remote);
    unsigned kills =
        ((unsigned)env_number("KEEL_CHAOS_KILLS", KEEL_CHAOS_SANITIZED ? 30 : 100) + 1) / 2;
    static const char *const strategies[] = {"serial", "batch", "speculative", "speculative-batch",
                                             "adaptive"};
    const char *strategy = strategies[rnd_below(5)];
    unsigned slots = 1 + rnd_below(2);
    long long t0 = now_ms();
    /* a job takes 0.1 s, one in four 0.5 s (times SLOW: to outlive a restart when a kill
       leaves it) */
    char job[160];
    (void)snprintf(job, sizeof(job),
                   "if [ ! -e \"$MARKER.fast\" ]; then\n"
                   "  case $(( $$ %% 4 )) in 0) sleep %d.5 ;; *) sleep 0.1 ;; esac\n"
                   "fi",
                   (SLOW - 1) / 2);
    chaos_repo(remote, strategy, slots, job);
    (void)fprintf(stderr,
                  "chaos: seed %llu (KEEL_CHAOS_SEED to replay), %s repository, strategy %s, "
                  "%u slot(s), %u kills, lives of up to %d ms\n",
                  cx.seed, remote ? "file://" : "local", strategy, slots, kills, LIFE_MS * SLOW);
    cx.cli_options = "module.post=none"; /* the modules' self tests: the same every time */
    for (int i = 0; i < 4; i++)
        submit_random();
    submits_reap(true);
    while (cx.kills + cx.self_exits < kills)
        life_killed();
    long long t1 = now_ms();
    submits_reap(true);
    /* the final run's jobs without their sleep: the lives are over (the killed gates' jobs
       sleep on, and are watched for as before) */
    char fast[160];
    fx_marker(fast, sizeof(fast), ".fast");
    FILE *f = fopen(fast, "w");
    assert_non_null(f);
    (void)fclose(f);
    (void)run_once("module.post=none", "the final run --once");
    check(true);
    kill_jobs();
    unsigned landed = 0, kinds[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < cx.n; i++)
        kinds[cx.ch[i].kind]++;
    sqlite3 *db = db_open();
    if (db != NULL) {
        landed = (unsigned)db_int(db, "SELECT count(*) FROM changes WHERE state = 'landed'", NULL);
        sqlite3_close(db);
    }
    (void)fprintf(stderr,
                  "chaos: %u kills (%s %u, %s %u, %s %u, %s %u, %s %u, %s %u), %u ended by "
                  "themselves; %zu changes (%u good, %u bad, %u flaky, %u conflicting), %u landed, "
                  "%u quarantined, %u conflicts rejected; %u kills left jobs running, %u times "
                  "alongside the next gate's jobs; %.1f s of kills, %.1f s in all\n",
                  cx.kills, phase_names[0], cx.phase[0], phase_names[1], cx.phase[1],
                  phase_names[2], cx.phase[2], phase_names[3], cx.phase[3], phase_names[4],
                  cx.phase[4], phase_names[5], cx.phase[5], cx.self_exits, cx.n, kinds[GOOD],
                  kinds[BAD], kinds[FLAKY], kinds[CONFLICT], landed, cx.quarantined,
                  cx.conflicts_rejected, cx.kills_with_orphans, cx.overlaps,
                  (double)(t1 - t0) / 1000.0, (double)(now_ms() - t0) / 1000.0);
    chaos_verdict(remote ? "random kills over file://" : "random kills over a local repository");
}

static void test_random_kills_local(void **state)
{
    (void)state;
    fx_skip_sweep_under_tsan();
    random_kills(false);
}

static void test_random_kills_file_url(void **state)
{
    (void)state;
    fx_skip_sweep_under_tsan();
    random_kills(true);
}

/* ---- every crash point at every evaluation ------------------------------------------- */

#if KEEL_DEVEL /* release builds have no stress points */

/*
 * The points this test knows, what of its scenario reaches them, and whether
 * they are about landing (and taking pushes), where a URL makes a
 * difference: those are swept over a local repository and over file://, the
 * others (and any point this table does not know yet) over a local one.
 */
typedef struct known_point {
    const char *name, *reached_by;
    bool landing;
} known_point;

static const known_point known_points[] = {
    {"gate.crash_after_merge", "each candidate merged", false},
    {"gate.crash_after_job", "each job's result recorded", false},
    {"gate.crash_before_cas", "each landing, before the compare-and-swap (a push)", true},
    {"gate.crash_after_cas", "each landing, after the compare-and-swap (a push)", true},
    {"gate.crash_after_take", "each pushed change queued, before its ref is removed", true},
    {"gate.crash_after_learned", "each round that decided something, what it learned kept", false},
};

enum { NKNOWN = sizeof(known_points) / sizeof(known_points[0]), MAX_POINTS = 32 };

/*
 * The gate.crash_* points of the binary: every registered point is in the
 * stress.json it writes at exit with stress.count on, reached or not.
 */
static size_t binary_points(char names[][64], size_t max)
{
    char json[200];
    (void)snprintf(json, sizeof(json), "%s/points.json", fx_dir);
    char opts[300];
    (void)snprintf(opts, sizeof(opts), "stress.count;stress.json=%s", json);
    const char *argv[16];
    size_t n = gate_args(argv, "status");
    argv[n] = NULL;
    char out[200];
    (void)snprintf(out, sizeof(out), "%s/points.log", fx_dir);
    int status = 0;
    assert_true(wait_for(spawn(argv, opts, out), 30000, &status));
    FILE *f = fopen(json, "r");
    if (f == NULL)
        fail_msg("keel-gate wrote no stress.json with KEEL_OPTIONS='%s'", opts);
    size_t count = 0;
    char line[4096];
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *p = strstr(line, "{\"name\":\"gate.crash_");
        if (p == NULL)
            continue;
        p += strlen("{\"name\":\"");
        const char *q = strchr(p, '"');
        if (q != NULL && count < max)
            (void)snprintf(names[count++], 64, "%.*s", (int)(q - p), p);
    }
    (void)fclose(f);
    return count;
}

/*
 * One trial: a new repository with a good change submitted with the CLI, and
 * pushed ones: a bad, a flaky, a good, and a conflicting pair; `run --once`
 * with the point armed at its nth evaluation, then a clean `run --once`.  False when the point did not fire (the run went
 * through, checked as the end).
 */
static bool crash_trial(bool remote, const char *point, unsigned nth)
{
    chaos_repo(remote, "adaptive", 2, ":");
    cx.cli_options = "module.post=none"; /* the modules' self tests: the same every time */
    submit(new_change(GOOD, false, 0));  /* the CLI's submit runs while the rest is pushed */
    submit(new_change(BAD, true, 0));
    submit(new_change(FLAKY, true, 0));
    submit(new_change(GOOD, true, 0));
    size_t a = new_change(CONFLICT, true, cx.n + 1);
    submit(a);
    submit(new_change(CONFLICT, true, a));
    submits_reap(true);
    char opts[160], what[192];
    (void)snprintf(opts, sizeof(opts), "module.post=none;stress=%.64s:nth=%u", point, nth);
    (void)snprintf(what, sizeof(what), "run --once with %s", opts);
    int status = run_once(opts, what);
    bool fired = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 99;
    if (!fired && !(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) <= 1)) {
        char how[64];
        describe_status(status, how, sizeof(how));
        violation("%s: %s, neither the crash (99) nor the end (0 or 1)", what, how);
    }
    if (fired) {
        check(false);
        orphans_snapshot();
        char again[192];
        (void)snprintf(again, sizeof(again), "run --once after %s", opts);
        (void)run_once("module.post=none", again);
    }
    check(true);
    kill_jobs();
    fx_teardown_repo();
    return fired;
}

/* The landing points (over a local repository or file://), or the others (local only). */
static void crash_sweep(bool remote, bool landing_points)
{
    long long t0 = now_ms();
    chaos_start(remote);
    chaos_repo(remote, "adaptive", 2, ":");
    /* under ASan (several times slower) the first evaluation of each point: every point's
     * recovery runs under it once (the later evaluations took 100 s of its test time; devel and
     * release run every evaluation) */
    unsigned max_nth = KEEL_CHAOS_SANITIZED ? 1 : MAX_NTH;
    char names[MAX_POINTS][64];
    size_t npoints = binary_points(names, MAX_POINTS);
    fx_teardown_repo();
    for (size_t k = 0; k < NKNOWN; k++) {
        bool found = false;
        for (size_t i = 0; i < npoints; i++)
            found = found || strcmp(names[i], known_points[k].name) == 0;
        if (!found)
            violation("the table names %s, which keel-gate does not have", known_points[k].name);
    }
    char line[1024] = "";
    size_t len = 0;
    unsigned trials = 0;
    for (size_t i = 0; i < npoints; i++) {
        const known_point *kp = NULL;
        for (size_t k = 0; k < NKNOWN; k++)
            if (strcmp(names[i], known_points[k].name) == 0)
                kp = &known_points[k];
        if (kp == NULL)
            violation("keel-gate has a point %s that this test does not know: add it to "
                      "known_points (and make the scenario reach it)",
                      names[i]);
        if (kp != NULL ? kp->landing != landing_points : landing_points)
            continue;
        unsigned nth = 1;
        while (nth <= max_nth && crash_trial(remote, names[i], nth))
            nth++;
        trials += nth;
        if (nth == 1)
            violation("%s never fired: the scenario does not reach it", names[i]);
        if (nth > MAX_NTH)
            violation("%s still fired at evaluation %d", names[i], MAX_NTH);
        int n = snprintf(line + len, sizeof(line) - len, "%s%s x%u", len > 0 ? ", " : "",
                         names[i] + strlen("gate."), nth - 1);
        if (n > 0 && (size_t)n < sizeof(line) - len)
            len += (size_t)n;
    }
    chaos_repo(remote, "adaptive", 2, ":"); /* for the teardown */
    (void)fprintf(stderr,
                  "chaos: %s, %s: keel-gate has %zu points; fired at evaluations 1..n: %s; %u runs "
                  "with a point "
                  "armed, %u kills left jobs running, %u times alongside the next gate's jobs; "
                  "%.1f s\n",
                  remote ? "file://" : "local", landing_points ? "landing" : "building", npoints,
                  line, trials, cx.kills_with_orphans, cx.overlaps,
                  (double)(now_ms() - t0) / 1000.0);
    chaos_verdict(landing_points ? "the landing crash points" : "the building crash points");
}

#else

static void crash_sweep(bool remote, bool landing_points)
{
    (void)remote;
    (void)landing_points;
    skip(); /* release: no stress points */
}

#endif

static void test_crash_points_while_building(void **state)
{
    (void)state;
    fx_skip_sweep_under_tsan();
    crash_sweep(false, false);
}

static void test_crash_points_while_landing(void **state)
{
    (void)state;
    fx_skip_sweep_under_tsan();
    crash_sweep(false, true);
}

static void test_crash_points_while_landing_file_url(void **state)
{
    (void)state;
    fx_skip_sweep_under_tsan();
    crash_sweep(true, true);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_random_kills_local, chaos_teardown),
        cmocka_unit_test_teardown(test_random_kills_file_url, chaos_teardown),
        cmocka_unit_test_teardown(test_crash_points_while_building, chaos_teardown),
        cmocka_unit_test_teardown(test_crash_points_while_landing, chaos_teardown),
        cmocka_unit_test_teardown(test_crash_points_while_landing_file_url, chaos_teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
