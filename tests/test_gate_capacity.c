/*
 * test_gate_capacity.c - what the executor runs at once, learned from job
 * timings (gate/queue/capacity.h): the prior alone, a slowdown it was not
 * told of, free parallelism it was told was scarce, bad observations, many
 * configurations, and the local executor's own measure of a job's load.
 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "capacity.h"
#include "heaps.h"
#include "pool.h"
#include "resources.h"
#include "scheduler.h"

/* Jobs of two configurations (a: 1000 ms alone, b: 800 ms) at loads 1..4 on an executor of `par`. */
static void feed(gate_cap *c, double par, int rounds)
{
    for (int r = 0; r < rounds; r++)
        for (int k = 1; k <= 4; k++) {
            double slow = (double)k > par ? (double)k / par : 1.0;
            double noise = 1.0 + 0.04 * (double)((r * 7 + k * 3) % 5 - 2); /* +-8% */
            gate_cap_observe(c, "a", 1000.0 * slow * noise, (double)k);
            gate_cap_observe(c, "b", 800.0 * slow / noise, (double)k);
        }
}

static void test_prior_alone(void **state)
{
    (void)state;
    gate_cap c;
    gate_cap_init(&c, 2.0);
    assert_true(fabs(gate_cap_parallel(&c) - 2.0) < 1e-9);
    assert_true(gate_cap_alone_ms(&c, "a") == 0.0);
    gate_cap_init(&c, 0.0); /* not limited */
    assert_true(gate_cap_parallel(&c) >= GATE_CAP_UNLIMITED);
    gate_cap_tell(&c, 3.0);
    assert_true(fabs(gate_cap_parallel(&c) - 3.0) < 1e-9);
    assert_true(fabs(gate_cap_span(2.0, 4.0) - 2.0) < 1e-12);
    assert_true(fabs(gate_cap_span(2.0, 1.0) - 1.0) < 1e-12);
}

/* Told 8 (the machine's CPUs), while jobs that use two cores each really run 2 at once (say). */
static void test_learns_slowdown(void **state)
{
    (void)state;
    gate_cap c;
    gate_cap_init(&c, 8.0);
    feed(&c, 2.0, 4);
    double par = gate_cap_parallel(&c);
    print_message("told 8, runs 2: estimate %.2f\n", par);
    assert_true(par > 1.6 && par < 2.5);
    assert_true(fabs(gate_cap_alone_ms(&c, "a") - 1000.0) < 100.0);
    assert_true(fabs(gate_cap_alone_ms(&c, "b") - 800.0) < 80.0);
    /* and from there on, told again, the data still win */
    gate_cap_tell(&c, 16.0);
    par = gate_cap_parallel(&c);
    assert_true(par > 1.6 && par < 2.5);
}

/* Told 2, while the jobs wait on I/O and 4 run at once without slowing down. */
static void test_learns_free(void **state)
{
    (void)state;
    gate_cap c;
    gate_cap_init(&c, 2.0);
    feed(&c, 64.0, 4);
    double par = gate_cap_parallel(&c);
    print_message("told 2, no slowdown at 4: estimate %.2f\n", par);
    assert_true(par >= 3.8);
}

/* The window: the last GATE_CAP_OBS jobs; what the executor did long ago is forgotten. */
/*
 * A build's width: its work over its longest job.  Nothing known: every job
 * counts as long as the longest; a 1 s and a 0.5 s configuration make 1.5;
 * one not yet observed counts as long as the longest.
 */
static void test_width(void **state)
{
    (void)state;
    gate_cap c;
    gate_cap_init(&c, 2.0);
    assert_true(fabs(gate_cap_width(&c, 2) - 2.0) < 1e-9);
    assert_true(fabs(gate_cap_width(&c, 1) - 1.0) < 1e-9);
    for (int r = 0; r < 8; r++) {
        gate_cap_observe(&c, "a", 1000.0, 1.0);
        gate_cap_observe(&c, "b", 500.0, 1.0);
    }
    assert_true(fabs(gate_cap_width(&c, 2) - 1.5) < 1e-6);
    assert_true(fabs(gate_cap_width(&c, 3) - 2.5) < 1e-6); /* a third, not yet timed */
    assert_true(fabs(gate_cap_width(&c, 1) - 1.0) < 1e-6); /* one job: itself */
}

static void test_window(void **state)
{
    (void)state;
    gate_cap c;
    gate_cap_init(&c, 4.0);
    feed(&c, 1.0, 8); /* 64 jobs of one at a time */
    assert_true(gate_cap_parallel(&c) < 1.3);
    feed(&c, 4.0, 8); /* then the executor grew */
    assert_true(gate_cap_parallel(&c) > 3.0);
}

static void test_bad_observations(void **state)
{
    (void)state;
    gate_cap c;
    gate_cap_init(&c, 2.0);
    gate_cap_observe(&c, "a", 0.0, 1.0);
    gate_cap_observe(&c, "a", -5.0, 1.0);
    gate_cap_observe(&c, "a", NAN, 1.0);
    gate_cap_observe(&c, "a", 100.0, INFINITY);
    assert_int_equal(c.nobs, 0);
    gate_cap_observe(&c, "a", 100.0, 0.0); /* a load below one counts as one */
    assert_int_equal(c.nobs, 1);
    assert_true(fabs(gate_cap_alone_ms(&c, "a") - 100.0) < 1e-6);
    /* more configurations than it tells apart share the last slot */
    char name[16];
    for (int k = 0; k < GATE_CAP_CONFIGS + 4; k++) {
        (void)snprintf(name, sizeof(name), "cfg-%d", k);
        gate_cap_observe(&c, name, 50.0, 1.0);
    }
    assert_int_equal(c.ncfg, GATE_CAP_CONFIGS);
    assert_true(gate_cap_parallel(&c) > 0.0);
}

/*
 * The pool measures a job's load: two jobs of 300 ms in a pool of two run
 * side by side (load about 2), one alone has load 1.
 */
static void test_pool_measures_load(void **state)
{
    (void)state;
    gate_pool *p = NULL;
    assert_true(keel_ok(gate_pool_new(2, &p)));
    static char *const sleep_argv[] = {"/bin/sleep", "0.3", NULL};
    /* a work tree of its own: /tmp itself, measured against the default disk limit, held
     * 16 GB on a machine where this test then failed with "limit" (session 25) */
    char dir[64] = "/tmp/keel-test-capacity-XXXXXX";
    assert_non_null(mkdtemp(dir));
    gate_job_run jobs[3];
    for (int i = 0; i < 3; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].job_id = i + 1;
        (void)snprintf(jobs[i].dir, sizeof(jobs[i].dir), "%s", dir);
        (void)snprintf(jobs[i].log, sizeof(jobs[i].log), "/tmp/keel-test-capacity-%d-%d.log",
                       (int)getpid(), i);
        jobs[i].test = sleep_argv;
        jobs[i].timeout_ms = 10000;
        gate_job_policy_default(&jobs[i].policy);
        jobs[i].policy.sandbox = false; /* the load is the pool's measure, not bubblewrap's */
    }
    gate_pool_submit(p, &jobs[0]);
    gate_pool_submit(p, &jobs[1]);
    for (int i = 0; i < 2; i++)
        assert_non_null(gate_pool_wait(p, 10000));
    gate_pool_submit(p, &jobs[2]);
    assert_non_null(gate_pool_wait(p, 10000));
    for (int i = 0; i < 3; i++) {
        print_message("job %d: %s, %llu ms, load %.2f\n", i, gate_exec_result_name(jobs[i].result),
                      jobs[i].elapsed_ms, jobs[i].load);
        assert_int_equal(jobs[i].result, GATE_EXEC_PASSED);
        (void)unlink(jobs[i].log);
    }
    assert_true(jobs[0].load > 1.6 && jobs[0].load <= 2.0 + 1e-9);
    assert_true(jobs[1].load > 1.6 && jobs[1].load <= 2.0 + 1e-9);
    assert_true(jobs[2].load >= 1.0 - 1e-9 && jobs[2].load < 1.1);
    gate_pool_delete(p);
    (void)rmdir(dir);
}

/*
 * The pool's load is the harmonic mean of the jobs executing (the pool's
 * gate_load_meter, with scripted times): a job of 1200 ms beside three of
 * 400 ms in a pool of four runs 400 ms at 4 jobs, then 800 ms alone: 1200 /
 * (400/4 + 800) = 1.33, where the arithmetic mean, the jobs' time over its
 * own (2.0), would tell the capacity estimate that it ran slower than it
 * did; the short ones ran at 4.  Then a job that starts while one runs and
 * ends alone, and one that takes no time (its load is the fallback).
 */
static void test_pool_harmonic_load(void **state)
{
    (void)state;
    gate_load_meter m;
    memset(&m, 0, sizeof(m));
    double start[4];
    for (unsigned i = 0; i < 4; i++) /* the pool counts each start before it: 0, 1, 2, 3 */
        start[i] = gate_load_advance(&m, 1000, i);
    double end_short[3];
    for (unsigned i = 0; i < 3; i++) /* three end together: 4, 3, 2 executing before each */
        end_short[i] = gate_load_advance(&m, 1400, 4 - i);
    double end_long = gate_load_advance(&m, 2200, 1);
    double arith = (400.0 * 3 + 1200.0) / 1200.0;
    double harmonic = gate_load_of(1000, start[0], 2200, end_long, 1.0);
    print_message("the long job: harmonic %.3f, arithmetic %.3f\n", harmonic, arith);
    assert_true(fabs(harmonic - 1200.0 / 900.0) < 1e-9);
    assert_true(harmonic < arith - 0.5);
    for (unsigned i = 0; i < 3; i++)
        assert_true(fabs(gate_load_of(1000, start[i + 1], 1400, end_short[i], 1.0) - 4.0) < 1e-9);
    /* 300 ms beside one, then 300 ms alone: 600 / (150 + 300) */
    double a0 = gate_load_advance(&m, 3000, 0), b0 = gate_load_advance(&m, 3300, 1);
    (void)b0;
    double a1 = gate_load_advance(&m, 3600, 2), a2 = gate_load_advance(&m, 3900, 1);
    (void)a1;
    assert_true(fabs(gate_load_of(3300, b0, 3900, a2, 1.0) - 600.0 / 450.0) < 1e-9);
    assert_true(fabs(gate_load_of(3000, a0, 3600, a1, 1.0) - 600.0 / 450.0) < 1e-9);
    /* no time: the fallback; time going back is not counted */
    assert_true(gate_load_of(3900, a2, 3900, a2, 3.0) == 3.0);
    assert_true(gate_load_advance(&m, 100, 4) == a2);
}

/*
 * Other tenants: 2 cores, one of them taken by a neighbour.  One job alone
 * runs at full speed on the core left, two take twice as long.  With the
 * neighbour's cores in the timings (others 1) the fit keeps the machine's 2
 * and plans for the 1 left; the neighbour gone, 8 jobs two at a time at full
 * speed, the plan is 2 again at once.  Without them (the timings alone) the
 * machine itself looks like 1 core, and 8 jobs of 40 do not undo it.
 */
static void test_others_apart(void **state)
{
    (void)state;
    for (int counted = 0; counted < 2; counted++) {
        gate_cap c;
        gate_cap_init(&c, 2.0);
        double others = counted ? 1.0 : 0.0;
        for (int r = 0; r < 16; r++) {
            gate_cap_observe_shared(&c, "a", 1000.0, 1.0, others);
            gate_cap_observe_shared(&c, "a", 2000.0, 2.0, others);
        }
        double busy = gate_cap_parallel(&c), machine = gate_cap_machine(&c);
        for (int r = 0; r < GATE_CAP_RECENT; r++)
            gate_cap_observe_shared(&c, "a", 1000.0, 2.0, 0.0);
        double quiet = gate_cap_parallel(&c);
        print_message("others %s: busy plan %.2f (machine %.2f, others %.2f), quiet plan %.2f\n",
                      counted ? "counted" : "not counted", busy, machine, others, quiet);
        if (counted) {
            assert_true(busy > 0.8 && busy < 1.25);
            assert_true(machine > 1.7 && machine < 2.4);
            assert_true(quiet > 1.7);
            assert_true(fabs(gate_cap_others(&c)) < 1e-9); /* the newest 8 saw none */
        } else {
            assert_true(busy < 1.25 && machine < 1.25);
            assert_true(quiet < 1.5);
        }
    }
}

/* Spin until killed. */
static void spin(void)
{
    volatile unsigned long long x = 0;
    for (;;)
        x = x + 1;
}

/* A process that spins outside this process's tree (its parent exits: init adopts it). */
static pid_t neighbour(void)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t mid = fork();
    assert_true(mid >= 0);
    if (mid == 0) {
        pid_t n = fork();
        if (n == 0) {
            (void)close(fds[0]);
            (void)close(fds[1]);
            spin();
        }
        ssize_t w = write(fds[1], &n, sizeof(n));
        _exit(w == (ssize_t)sizeof(n) ? 0 : 1);
    }
    (void)close(fds[1]);
    pid_t n = 0;
    ssize_t r = read(fds[0], &n, sizeof(n));
    (void)close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(mid, &status, 0), mid);
    assert_int_equal(r, (ssize_t)sizeof(n));
    assert_true(n > 0);
    return n;
}

/* A process's own CPU in ms (utime + stime). */
static double cpu_ms(pid_t pid)
{
    double tick = 1000.0 / (double)sysconf(_SC_CLK_TCK);
    return (double)(gate_proc_stat(pid, 14, NULL) + gate_proc_stat(pid, 15, NULL)) * tick;
}

/*
 * The capacity signal on this machine: a neighbour spinning outside the
 * gate's tree is the others' CPU; a child of ours spinning is the tree's.
 * The machine is shared (other work adds to the others, never takes from
 * ours): bounds on what each spinner used in the same window, measured
 * from its own /proc/<pid>/stat, within two clock ticks per reading.
 */
static void test_others_measured(void **state)
{
    (void)state;
    pid_t out = neighbour();
    pid_t in = fork();
    assert_true(in >= 0);
    if (in == 0)
        spin();
    double slack = 4.0 * 1000.0 / (double)sysconf(_SC_CLK_TCK);
    bool seen = false;
    for (int attempt = 0; attempt < 3 && !seen; attempt++) {
        gate_cpu_sample a, b;
        double out0 = cpu_ms(out), in0 = cpu_ms(in);
        gate_cpu_sample_take(getpid(), gate_now_ms(), &a);
        struct timespec nap = {0, 800000000L};
        (void)nanosleep(&nap, NULL);
        struct timespec t0, t1;
        (void)clock_gettime(CLOCK_MONOTONIC, &t0);
        gate_cpu_sample_take(getpid(), gate_now_ms(), &b);
        (void)clock_gettime(CLOCK_MONOTONIC, &t1);
        print_message("a sample took %.2f ms\n", (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                                                     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
        double out1 = cpu_ms(out), in1 = cpu_ms(in);
        double own = (double)(b.tree_ms - a.tree_ms);
        double tick = 1000.0 / (double)sysconf(_SC_CLK_TCK);
        double others = gate_stat_busy_between(a.machine, b.machine, b.count_nice) * tick - own;
        double cores = gate_others_cores(&a, &b);
        print_message("neighbour %.0f ms, child %.0f ms; the tree %.0f ms, the others %.0f ms "
                      "(%.2f cores over %llu ms)\n",
                      out1 - out0, in1 - in0, own, others, cores, b.at_ms - a.at_ms);
        assert_true(a.machine_known && b.machine_known);
        /* ours: the child's, and this process's own few ms of reading /proc */
        assert_true(own >= in1 - in0 - slack);
        assert_true(own <= in1 - in0 + slack + 100.0);
        assert_true(others >= out1 - out0 - slack - 100.0);
        assert_true(cores >= 0.0);
        seen = out1 - out0 > 30.0 && in1 - in0 > 30.0; /* both ran: a measure worth the name */
    }
    assert_int_equal(kill(in, SIGKILL), 0);
    assert_int_equal(kill(out, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(in, &status, 0), in);
    if (!seen)
        skip(); /* the machine gave the spinners no CPU (a niced run on a full machine): nothing shown */
}

/*
 * The others' CPU is what competes with the gate's jobs: /proc/stat's nice
 * column (processes of a positive nice) yields to a gate that is not niced
 * and is not counted then; a niced gate competes with it.  With the
 * kernel's autogroups on, another session's niced processes compete with
 * the gate's whatever their nice and the gate's: counted.  Where the nice
 * column yields, so does the niced processes' kernel time, in /proc/stat's
 * system column with everyone's: taken in the share of user among user and
 * nice.
 */
static void test_niced_others_yield(void **state)
{
    (void)state;
    assert_false(gate_nice_competes(0, false));
    assert_false(gate_nice_competes(-5, false));
    assert_true(gate_nice_competes(19, false));
    assert_true(gate_nice_competes(0, true));
    assert_true(gate_nice_competes(-15, true));
    /* user nice system idle iowait irq softirq steal */
    static const unsigned long long zero[8] = {0};
    static const unsigned long long v[8] = {100, 1000, 20, 5000, 7, 3, 2, 1};
    assert_true(fabs((gate_stat_busy_between(zero, v, true)) - (100 + 1000 + 20 + 3 + 2 + 1)) <
                1e-9);
    assert_true(fabs((gate_stat_busy_between(zero, v, false)) -
                     (100 + 20.0 * 100 / 1100 + 3 + 2 + 1)) < 1e-9);
    /*
     * 10 s of a replay at nice -15 beside builds at nice 19, autogroups off
     * (2 cores, 2000 ticks): counting all of the system column read 1.41
     * cores busy competing with the gate (its own jobs included); the niced
     * share set apart, 1.11.
     */
    static const unsigned long long a[8] = {1266218, 830431, 1120861, 5704070, 6657, 0, 5982, 0};
    static const unsigned long long b[8] = {1266956, 831017, 1121529, 5704071, 6657, 0, 5983, 0};
    double busy = gate_stat_busy_between(a, b, false);
    assert_true(fabs((busy) - (738 + 668.0 * 738 / (738 + 586) + 1)) < 1e-6);
    assert_true(busy < 738 + 668 + 1);
    assert_true(fabs((gate_stat_busy_between(a, b, true)) - (738 + 586 + 668 + 1)) < 1e-9);
    /* a reading that went back (a counter reset): nothing, not a wrapped huge number */
    assert_true(fabs((gate_stat_busy_between(b, a, true)) - (0.0)) < 1e-9);
}

/* inih's replay: its first 40 jobs (test_failures_not_timings). */
static const struct replay_job {
    int cfg;
    double ms, load, others;
    bool passed;
} inih_jobs[] = {
    {0, 8626, 4.00, 0.04, true},  {0, 9238, 3.89, 0.04, true}, {1, 14690, 2.88, 0.01, true},
    {1, 14950, 2.81, 0.01, true}, {0, 93, 2.01, 0.35, false},  {0, 116, 2.95, 0.10, false},
    {1, 210, 2.43, 0.24, false},  {0, 92, 2.86, 0.28, false},  {1, 270, 2.47, 0.08, false},
    {1, 214, 1.61, 0.00, false},  {0, 4500, 2.00, 0.02, true}, {1, 9456, 1.31, 0.01, false},
    {1, 7770, 1.00, 0.02, true},  {0, 3979, 1.99, 0.02, true}, {1, 8382, 1.31, 0.01, true},
    {0, 94, 2.35, 0.35, false},   {0, 126, 3.13, 0.00, false}, {1, 240, 2.47, 0.08, false},
    {0, 97, 2.85, 0.39, false},   {1, 286, 2.54, 0.00, false}, {1, 195, 1.49, 0.00, false},
    {0, 8267, 3.97, 0.05, true},  {0, 8325, 3.98, 0.04, true}, {1, 13139, 2.92, 0.03, true},
    {1, 13483, 2.80, 0.02, true}, {0, 95, 1.78, 0.45, false},  {1, 169, 1.33, 0.16, false},
    {0, 103, 1.94, 0.36, false},  {1, 161, 1.45, 0.12, false}, {0, 4586, 2.00, 0.03, true},
    {1, 8609, 1.36, 0.02, true},  {0, 85, 1.83, 0.44, false},  {1, 160, 1.32, 0.02, false},
    {0, 80, 1.93, 0.47, false},   {1, 157, 1.32, 0.13, false}, {0, 89, 1.91, 0.28, false},
    {1, 159, 1.36, 0.18, false},  {0, 73, 1.92, 0.38, false},  {1, 154, 1.29, 0.00, false},
    {0, 3943, 2.00, 0.03, true},
};
static const char *const inih_names[] = {"gcc-debug", "clang-release"};

/*
 * What a gate learns from the jobs of a queue where broken changes fail at
 * once: the first 40 jobs of inih's replay (bench/replay, session 19) on 2
 * cores, gcc-debug ~4.3 s and clang-release ~8.5 s alone, twice as long 4 at
 * once; the builds of broken changes failed in 0.1-0.3 s beside them (one
 * flaky failure at 9.5 s).  Learned from every job, as the gate did, the
 * failures made the fit jump between 0.5 and 2.7 jobs at once (and
 * 3.3-4.6 in another run) from one job to the next.  With the failures
 * judged (gate_cap_observe_failed: the early stops left out, the flaky
 * failure that ran its course kept), 1.5-2 after every job.
 */
static void test_failures_not_timings(void **state)
{
    (void)state;
    gate_sched_params p;
    gate_sched_params_default(&p);
    p.parallel = 2.0;
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {0.0, 0.0};
    for (int all = 0; all < 2; all++) { /* all: the failures read as the job's time */
        gate_sched *s = NULL;
        assert_true(keel_ok(gate_sched_new(&p, &s)));
        for (size_t i = 0; i < sizeof(inih_jobs) / sizeof(inih_jobs[0]); i++) {
            gate_sched_job_time t = {inih_names[inih_jobs[i].cfg], inih_jobs[i].ms,
                                     inih_jobs[i].load, inih_jobs[i].others,
                                     all != 0 || inih_jobs[i].passed};
            gate_sched_job_timed(s, &t);
            gate_sched_stats st;
            gate_sched_stats_get(s, &st);
            lo[all] = st.parallel < lo[all] ? st.parallel : lo[all];
            hi[all] = st.parallel > hi[all] ? st.parallel : hi[all];
        }
        print_message("%s: %.2f .. %.2f jobs at once\n", all ? "every job as a pass" : "as judged",
                      lo[all], hi[all]);
        gate_sched_delete(s);
    }
    assert_true(lo[0] > 1.4 && hi[0] < 2.2);
    assert_true(lo[1] < 0.6 && hi[1] > 2.4); /* the old reading, for the record */
}

/*
 * The first 48 jobs of parson's replay (bench/replay fixture seed 2, session
 * 29) on 2 cores: gcc-debug ~0.6 s, clang-release ~1.2 s alone.  The
 * broken changes' clang builds failed at an #error after parsing the file,
 * in 0.45-0.65 of a pass: halfway, not at once.  Judged against half a
 * pass, half of them were kept as passes and the fit moved between 1.6 and
 * 2.7 jobs at once; judged against GATE_CAP_RAN_COURSE (within the noise of
 * a pass), it stays within 0.2 of what the passes alone give after every
 * job.
 */
static const struct replay_job parson_jobs[] = {
    {0, 1572, 3.80, 0.15, true},  {1, 1678, 3.72, 0.07, false}, {0, 1722, 3.59, 0.06, true},
    {1, 1562, 3.95, 0.06, false}, {1, 652, 1.06, 0.01, false},  {0, 869, 1.98, 0.10, true},
    {1, 1337, 1.48, 0.04, true},  {0, 790, 1.63, 0.08, true},   {1, 610, 2.00, 0.08, false},
    {1, 707, 1.00, 0.00, false},  {0, 842, 1.98, 0.09, true},   {1, 1391, 1.43, 0.03, true},
    {0, 770, 1.61, 0.04, true},   {1, 581, 2.00, 0.14, false},  {1, 599, 1.00, 0.03, false},
    {0, 712, 1.99, 0.10, true},   {1, 1464, 1.32, 0.04, true},  {0, 689, 1.99, 0.12, true},
    {1, 1622, 1.27, 0.02, true},  {0, 425, 1.98, 0.11, false},  {1, 1482, 1.17, 0.04, true},
    {0, 329, 1.00, 0.05, false},  {0, 795, 1.99, 0.13, false},  {1, 1616, 1.33, 0.04, false},
    {0, 804, 1.99, 0.09, true},   {1, 1623, 1.33, 0.02, true},  {0, 880, 1.99, 0.07, true},
    {1, 1443, 1.44, 0.04, true},  {0, 953, 3.64, 0.17, false},  {0, 937, 3.90, 0.06, false},
    {1, 2014, 2.31, 0.05, true},  {1, 1743, 2.70, 0.06, true},  {0, 284, 1.00, 0.08, false},
    {0, 822, 2.00, 0.07, true},   {1, 1314, 1.45, 0.03, true},  {0, 407, 1.99, 0.12, false},
    {1, 1152, 1.21, 0.03, true},  {0, 252, 1.00, 0.05, false},  {0, 1416, 3.79, 0.15, true},
    {0, 1389, 3.97, 0.06, true},  {1, 3002, 3.91, 0.07, true},  {0, 1533, 4.00, 0.01, true},
    {1, 3075, 4.00, 0.06, true},  {1, 2934, 3.32, 0.05, true},  {0, 1126, 3.14, 0.08, true},
    {1, 1834, 1.92, 0.02, true},  {0, 301, 1.97, 0.19, false},  {1, 755, 1.24, 0.03, false},
};

static void test_failures_stopping_halfway(void **state)
{
    (void)state;
    gate_cap judged, passes;
    gate_cap_init(&judged, 2.0);
    gate_cap_init(&passes, 2.0);
    double lo = INFINITY, hi = 0.0, gap = 0.0;
    for (size_t i = 0; i < sizeof(parson_jobs) / sizeof(parson_jobs[0]); i++) {
        const char *cfg = inih_names[parson_jobs[i].cfg]; /* the same two configurations */
        if (parson_jobs[i].passed) {
            gate_cap_observe_shared(&judged, cfg, parson_jobs[i].ms, parson_jobs[i].load,
                                    parson_jobs[i].others);
            gate_cap_observe_shared(&passes, cfg, parson_jobs[i].ms, parson_jobs[i].load,
                                    parson_jobs[i].others);
        } else
            gate_cap_observe_failed(&judged, cfg, parson_jobs[i].ms, parson_jobs[i].load,
                                    parson_jobs[i].others);
        double p = gate_cap_parallel(&judged), q = gate_cap_parallel(&passes);
        lo = p < lo ? p : lo;
        hi = p > hi ? p : hi;
        if (i >= 6 && fabs(p - q) > gap) /* from the first pass of both */
            gap = fabs(p - q);
    }
    print_message("judged: %.2f .. %.2f jobs at once, at most %.2f from the passes' fit\n", lo, hi,
                  gap);
    assert_true(lo > 1.5 && hi < 2.2);
    assert_true(gap < 0.2);
}

/*
 * A failure before any pass of its configuration is taken (nothing to judge
 * it by) until the first pass, then judged: a build that failed in 20 ms
 * leaves the fit, one that failed at the end of its 1 s stays in it.
 */
static void test_failure_before_a_pass(void **state)
{
    (void)state;
    for (int full = 0; full < 2; full++) {
        gate_cap c;
        gate_cap_init(&c, 2.0);
        gate_cap_observe_failed(&c, "a", full ? 1010.0 : 20.0, 1.0, 0.0);
        double before = gate_cap_alone_ms(&c, "a");
        for (int i = 0; i < 4; i++)
            gate_cap_observe(&c, "a", 1000.0, 1.0);
        double after = gate_cap_alone_ms(&c, "a");
        unsigned in_fit = 0;
        for (unsigned i = 0; i < c.nobs; i++)
            in_fit += !c.obs[i].dropped;
        print_message(
            "failed in %s: W %.0f ms alone, then %.0f with 4 passes, %u of %u in the fit\n",
            full ? "1010 ms" : "20 ms", before, after, in_fit, c.nobs);
        assert_true(fabs(before - (full ? 1010.0 : 20.0)) < 1.0); /* taken while alone */
        assert_int_equal(in_fit, full ? 5 : 4);
        assert_true(after > 990.0 && after < 1010.0);
    }
}

/*
 * What a failure costs (gate_cap_fail_part) is learned from every failure
 * judged, the quick ones the fit drops above all: 1 (the prior) until a
 * failure can be judged; a failure before any pass counts once a pass came
 * (100 ms beside passes of 1 s: 0.1); one that ran its course counts 1; one
 * among 4 jobs at once on 2 cores is judged against a pass there (50 ms
 * against 2 s: 0.025); no prior (1 only while none is judged).  A failed
 * build (gate_cap_fail_cost) takes the longest of its jobs: with b (0.8 s)
 * passing beside a failing a, 0.8 of a pass; with both failing early, a's
 * part; its work the sum; the builds' mean with GATE_CAP_FAIL_PRIOR builds of
 * 1, the only prior.
 */
static void test_fail_length(void **state)
{
    (void)state;
    gate_cap c;
    gate_cap_init(&c, 2.0);
    assert_true(gate_cap_fail_part(&c, "a") == 1.0); /* nothing known: a whole build */
    gate_cap_observe_failed(&c, "a", 100.0, 1.0, 0.0);
    assert_true(gate_cap_fail_part(&c, "a") == 1.0); /* nothing to judge it by */
    for (int i = 0; i < 4; i++)
        gate_cap_observe(&c, "a", 1000.0, 1.0);
    const double w = GATE_CAP_FAIL_PRIOR;
    assert_true(fabs(gate_cap_fail_part(&c, "a") - 0.1) < 1e-9);
    assert_true(fabs(gate_cap_alone_ms(&c, "a") - 1000.0) < 1e-6); /* dropped from the fit */
    gate_cap_observe_failed(&c, "a", 990.0, 1.0, 0.0);             /* ran its course: in the fit */
    print_message("part %.6f\n", gate_cap_fail_part(&c, "a"));
    assert_true(fabs(gate_cap_fail_part(&c, "a") - 1.1 / 2.0) < 1e-3); /* the fit moved: 0.1002 */
    gate_cap_observe_failed(&c, "a", 50.0, 4.0, 0.0);                  /* a pass there: 2 s */
    assert_true(fabs(gate_cap_machine(&c) - 2.0) < 1e-9);
    double fa = gate_cap_fail_part(&c, "a");
    assert_true(fabs(fa - 1.125 / 3.0) < 1e-3);
    double t = 0.0, wk = 0.0;
    gate_cap_fail_cost(&c, &t, &wk);
    assert_true(t == 1.0 && wk == 1.0); /* no failed build yet */
    for (int i = 0; i < 4; i++)
        gate_cap_observe(&c, "b", 800.0, 1.0);
    gate_cap_build one = {0, 0, 0}, both = {0, 0, 0}, passed = {0, 0, 0};
    gate_cap_build_job(&c, &one, "a", true);
    gate_cap_build_job(&c, &one, "b", false);
    gate_cap_build_job(&c, &both, "a", true);
    gate_cap_build_job(&c, &both, "b", true);
    gate_cap_build_job(&c, &passed, "a", false);
    gate_cap_build_job(&c, &passed, "b", false);
    gate_cap_build_ended(&c, &passed); /* not a failed build */
    gate_cap_build_ended(&c, &one);
    gate_cap_build_ended(&c, &both);
    gate_cap_fail_cost(&c, &t, &wk);
    double wa = gate_cap_alone_ms(&c, "a"), wb = gate_cap_alone_ms(&c, "b"); /* b: no failure, 1 */
    double t_one = wb / wa, t_both = fa > wb / wa ? fa : wb / wa;
    double w_one = (wa * fa + wb) / (wa + wb), w_both = (wa * fa + wb) / (wa + wb);
    print_message("a failure of a: %.3f; a failed build: time %.3f, work %.3f\n", fa, t, wk);
    assert_true(fabs(t - (w + t_one + t_both) / (w + 2.0)) < 1e-9);
    assert_true(fabs(wk - (w + w_one + w_both) / (w + 2.0)) < 1e-9);
}

/*
 * inih's replay (test_failures_not_timings' jobs): its broken changes'
 * builds fail in 0.1-0.3 s where they pass in 4-15 s, one flaky failure ran
 * its course; what a failure costs comes out 0.01-0.05 of a pass for
 * gcc-debug (its 12 early stops) and about a tenth for clang-release (its
 * flake beside 12 early stops).
 */
static void test_fail_length_replay(void **state)
{
    (void)state;
    gate_cap c;
    gate_cap_init(&c, 2.0);
    unsigned failed = 0;
    for (size_t i = 0; i < sizeof(inih_jobs) / sizeof(inih_jobs[0]); i++) {
        if (inih_jobs[i].passed) {
            gate_cap_observe_shared(&c, inih_names[inih_jobs[i].cfg], inih_jobs[i].ms,
                                    inih_jobs[i].load, inih_jobs[i].others);
        } else {
            gate_cap_observe_failed(&c, inih_names[inih_jobs[i].cfg], inih_jobs[i].ms,
                                    inih_jobs[i].load, inih_jobs[i].others);
            failed++;
        }
    }
    double f0 = gate_cap_fail_part(&c, inih_names[0]), f1 = gate_cap_fail_part(&c, inih_names[1]);
    print_message("%u failures: one costs %.3f (%s), %.3f (%s) of a pass\n", failed, f0,
                  inih_names[0], f1, inih_names[1]);
    assert_int_equal(failed, 25);
    /* the flake of clang-release counts 1, the 24 early stops 0.01 .. 0.05 */
    assert_true(f0 > 0.01 && f0 < 0.05);
    assert_true(f1 > (1.0 + 12.0 * 0.01) / 13.0 && f1 < (1.0 + 12.0 * 0.05) / 13.0);
}

/*
 * A failed build's cost has one prior, GATE_CAP_FAIL_PRIOR builds of 1: six
 * builds whose two configurations both stop at a compile error in 2% of a
 * pass cost (prior + 6 x 0.02) / (prior + 6) of one, 0.095 with a prior of
 * 0.5 (before, a prior of 2 builds and a second of 2 failures on each
 * configuration's part: 0.45, the model pricing every failing build of
 * inih's replay at 20 times what it took).
 */
static void test_fail_cost_one_prior(void **state)
{
    (void)state;
    gate_cap c;
    gate_cap_init(&c, 2.0);
    for (int i = 0; i < 4; i++) {
        gate_cap_observe(&c, "a", 1000.0, 1.0);
        gate_cap_observe(&c, "b", 1000.0, 1.0);
    }
    for (int i = 0; i < 6; i++) {
        gate_cap_build b = {0, 0, 0};
        gate_cap_observe_failed(&c, "a", 20.0, 1.0, 0.0);
        gate_cap_build_job(&c, &b, "a", true);
        gate_cap_observe_failed(&c, "b", 20.0, 1.0, 0.0);
        gate_cap_build_job(&c, &b, "b", true);
        gate_cap_build_ended(&c, &b);
    }
    assert_true(fabs(gate_cap_fail_part(&c, "a") - 0.02) < 1e-3);
    double t = 0.0, wk = 0.0,
           want = (GATE_CAP_FAIL_PRIOR + 6.0 * 0.02) / (GATE_CAP_FAIL_PRIOR + 6.0);
    gate_cap_fail_cost(&c, &t, &wk);
    print_message("six builds failing at 0.02 of a pass: time %.3f, work %.3f (%.3f)\n", t, wk,
                  want);
    assert_true(fabs(t - want) < 1e-3 && fabs(wk - want) < 1e-3);
}

/*
 * A retry reruns only the configurations that failed (gate_cap_retry_cost):
 * a build whose a failed in 50 ms beside b's 800 ms pass (a 1 s alone)
 * costs 0.8 of a pass, its retry 0.05 (the old model priced the retry as
 * the failed build, 0.8).  A failure found to be a flake (it failed, then
 * passed on the same tree: gate_cap_flaked) ran its course, and no longer
 * prices what a failure of a change costs: a flaky a of 1 s beside the
 * quick failures leaves gate_cap_fail_part of a and the failed builds' cost
 * as they were without it.
 */
static void test_retry_and_flake_costs(void **state)
{
    (void)state;
    gate_cap c, clean;
    gate_cap_init(&c, 2.0);
    for (int i = 0; i < 4; i++) {
        gate_cap_observe(&c, "a", 1000.0, 1.0);
        gate_cap_observe(&c, "b", 800.0, 1.0);
    }
    const double w = GATE_CAP_FAIL_PRIOR;
    for (long long id = 1; id <= 3; id++) { /* quick failures of a beside passes of b */
        gate_cap_build b = {0, 0, id};
        gate_cap_observe_failed(&c, "a", 50.0, 1.0, 0.0);
        gate_cap_observe(&c, "b", 800.0, 1.0);
        gate_cap_build_job(&c, &b, "a", true);
        gate_cap_build_job(&c, &b, "b", false);
        gate_cap_build_ended(&c, &b);
    }
    double t = 0.0, wk = 0.0, rt = 0.0, rw = 0.0;
    gate_cap_fail_cost(&c, &t, &wk);
    gate_cap_retry_cost(&c, &rt, &rw);
    double fa = gate_cap_fail_part(&c, "a");
    print_message("a: %.3f; failed build %.3f, %.3f; its retry %.3f, %.3f\n", fa, t, wk, rt, rw);
    assert_true(fabs(fa - 0.05) < 1e-4);
    assert_true(fabs(t - (w + 3.0 * 0.8) / (w + 3.0)) < 1e-4);
    assert_true(fabs(rt - (w + 3.0 * fa) / (w + 3.0)) < 1e-4);
    assert_true(fabs(rw - (w + 3.0 * fa / 1.8) / (w + 3.0)) < 1e-4);
    clean = c;
    gate_cap_build f = {0, 0, 4}; /* a flake of a: it ran its course */
    gate_cap_observe_failed(&c, "a", 1000.0, 1.0, 0.0);
    gate_cap_observe(&c, "b", 800.0, 1.0);
    gate_cap_build_job(&c, &f, "a", true);
    gate_cap_build_job(&c, &f, "b", false);
    gate_cap_build_ended(&c, &f);
    assert_true(gate_cap_fail_part(&c, "a") > fa + 0.05); /* until it is known to be one */
    gate_cap_flaked(&c, 4, "a");
    double t2 = 0.0, wk2 = 0.0, rt2 = 0.0, rw2 = 0.0;
    gate_cap_fail_cost(&c, &t2, &wk2);
    gate_cap_retry_cost(&c, &rt2, &rw2);
    assert_true(fabs(gate_cap_fail_part(&c, "a") - gate_cap_fail_part(&clean, "a")) < 1e-9);
    assert_true(fabs(t2 - t) < 1e-9 && fabs(wk2 - wk) < 1e-9);
    assert_true(fabs(rt2 - rt) < 1e-9 && fabs(rw2 - rw) < 1e-9);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prior_alone),
        cmocka_unit_test(test_learns_slowdown),
        cmocka_unit_test(test_learns_free),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_bad_observations),
        cmocka_unit_test(test_pool_measures_load),
        cmocka_unit_test(test_pool_harmonic_load),
        cmocka_unit_test(test_width),
        cmocka_unit_test(test_others_apart),
        cmocka_unit_test(test_others_measured),
        cmocka_unit_test(test_niced_others_yield),
        cmocka_unit_test(test_failures_not_timings),
        cmocka_unit_test(test_failure_before_a_pass),
        cmocka_unit_test(test_fail_length),
        cmocka_unit_test(test_failures_stopping_halfway),
        cmocka_unit_test(test_retry_and_flake_costs),
        cmocka_unit_test(test_fail_length_replay),
        cmocka_unit_test(test_fail_cost_one_prior),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
