/*
 * bench_exec.c - what the sandbox costs a job: the start-to-end latency of a
 * job running `true` through gate_exec_run, as keel-gate runs it (a log, a
 * work tree, the environment allow-list), in four ways, alternated job by
 * job so that load from elsewhere hits them all alike:
 *
 *   plain      no policy: posix_spawn of `true` (what every job was before)
 *   none       `sandbox = none` with the default limits: the /bin/sh
 *              trampoline that waits while the gate puts it into its cgroup
 *   bwrap      the sandbox with the default limits (what a job gets now)
 *   bwrap, no limits   the sandbox alone (limits 0: no cgroup; RLIMIT_FSIZE off)
 *
 * Printed: median, 10th and 90th percentile, min and max per way, the gate's
 * own CPU per job (RUSAGE_SELF: the spawn, the cgroup, the log; the jobs are
 * children), and the ratios of the medians to plain.
 *
 * Run: flock /tmp/keel-bench.lock build/release/bench_exec [jobs] (default 200)
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keel/keel.h"

#include "exec.h"
#include "bench.h"

enum { WAYS = 4, MAXJOBS = 5000 };

static const char *const way_names[WAYS] = {"plain (no sandbox, no limits)",
                                            "sandbox = none, default limits",
                                            "bwrap, default limits", "bwrap, no limits"};

static double cpu_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

static double at(const double *sorted, int n, double q)
{
    int i = (int)(q * (double)(n - 1) + 0.5);
    return sorted[i];
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200;
    if (n < 10 || n > MAXJOBS || argc > 2) {
        (void)fprintf(stderr, "usage: bench_exec [jobs 10..%d]\n", MAXJOBS);
        return 2;
    }
    keel_status s = keel_init();
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        return 1;
    }
    char dir[] = "/var/tmp/keel-benchexec-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("bench_exec: mkdtemp");
        return 1;
    }
    char work[128], log[128];
    (void)snprintf(work, sizeof(work), "%s/work", dir);
    (void)snprintf(log, sizeof(log), "%s/job.log", dir);
    (void)mkdir(work, 0755);
    gate_hidden hidden;
    memset(&hidden, 0, sizeof(hidden));
    s = gate_hidden_add(&hidden, log, true);
    gate_job_policy policies[WAYS];
    gate_job_policy_default(&policies[1]);
    policies[1].sandbox = false;
    gate_job_policy_default(&policies[2]);
    gate_job_policy_default(&policies[3]);
    memset(&policies[3].limits, 0, sizeof(policies[3].limits));
    static double lat[WAYS][MAXJOBS];
    double cpu[WAYS] = {0, 0, 0, 0};
    char *cmd[] = {(char *)"true", NULL};
    for (int i = 0; keel_ok(s) && i < n; i++)
        for (int w = 0; keel_ok(s) && w < WAYS; w++) {
            int way = (w + i) % WAYS; /* rotate the order too */
            gate_exec_spec spec;
            memset(&spec, 0, sizeof(spec));
            spec.argv = cmd;
            spec.dir = work;
            spec.log = log;
            spec.timeout_ms = 30000;
            spec.policy = way == 0 ? NULL : &policies[way];
            spec.hidden = &hidden;
            gate_exec_outcome o;
            double c0 = cpu_ns(), t0 = bench_now_ns();
            s = gate_exec_run(&spec, &o);
            double t1 = bench_now_ns(), c1 = cpu_ns();
            if (keel_ok(s) && o.result != GATE_EXEC_PASSED)
                s = KEEL_ERR(KEEL_E_STATE, "'true' did not pass (%s) in way '%s'",
                             gate_exec_result_name(o.result), way_names[way]);
            lat[way][i] = (t1 - t0) / 1e6;
            cpu[way] += (c1 - c0) / 1e6;
            (void)truncate(log, 0);
        }
    char rm[160];
    (void)snprintf(rm, sizeof(rm), "rm -rf -- '%s'", dir); /* our own mkdtemp dir */
    if (system(rm) != 0)
        (void)fprintf(stderr, "bench_exec: could not remove %s\n", dir);
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        return 1;
    }
    printf("gate_exec_run of `true`, %d jobs each way, alternated; milliseconds, start to end\n\n",
           n);
    printf("| way | median | p10 .. p90 | min .. max | gate CPU per job | median / plain |\n"
           "|---|---|---|---|---|---|\n");
    double plain = 0.0;
    for (int w = 0; w < WAYS; w++) {
        bench_sort(lat[w], (size_t)n);
        double med = at(lat[w], n, 0.5);
        if (w == 0)
            plain = med;
        printf("| %s | %.2f | %.2f .. %.2f | %.2f .. %.2f | %.2f | %.1fx |\n", way_names[w], med,
               at(lat[w], n, 0.1), at(lat[w], n, 0.9), lat[w][0], lat[w][n - 1], cpu[w] / n,
               med / plain);
    }
    return 0;
}
