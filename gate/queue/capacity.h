/*
 * gate/queue/capacity.h - what the executor really runs at once, learned from
 * the gate's own jobs: pure logic (no clock, no I/O), fed with what the gate
 * measured.  Part of the scheduler (scheduler.h: gate_sched_capacity,
 * gate_sched_timed); its own file so the benchmark and the tests can drive it.
 *
 * The model: a job of configuration c takes W_c alone; while k jobs run at
 * once on an executor that runs P of them without slowing them down (its
 * cores, its free slots; a job that uses two cores halves P), each takes
 *
 *     W_c * max(1, k / P)
 *
 * P = infinity is free parallelism (every build takes its time however many
 * run).  Other tenants of the machine (processes that are not the gate's)
 * take cores from it: a job that ran while they used o cores on average
 * took W_c * max(1, k / (P - o)) (P - o at least GATE_CAP_FLOOR), so the fit
 * learns the machine's P from timings made on a busy machine and the
 * scheduler plans for P - o, o the mean of the newest GATE_CAP_RECENT jobs'
 * (gate_cap_parallel): a busy machine lowers what the scheduler plans for
 * while it is busy instead of being learned as "jobs slow down with depth".
 * Every observation is a job's wall time and the harmonic mean of
 * the number of the gate's jobs running during it (itself included: a job
 * progresses at a rate proportional to 1/k, so with that mean the model holds
 * however the load changed during the job).  The estimate is the P
 * of a grid (0.5 .. GATE_CAP_UNLIMITED, 8% apart) that best explains the
 * last GATE_CAP_OBS observations (least squares in log time, each
 * configuration's W_c fitted in closed form), pulled towards the parallelism
 * the executor was told to have (a prior worth a few observations): where the
 * data cannot tell (every job ran with fewer jobs than P), the prior decides.
 */
#ifndef KEEL_GATE_CAPACITY_H
#define KEEL_GATE_CAPACITY_H

#include <stdbool.h>
#include <stddef.h>

/* The configurations it tells apart (more share the last one), its memory in jobs. */
enum {
    GATE_CAP_OBS = 64,
    GATE_CAP_CONFIGS = 16,
    GATE_CAP_NAME = 65,
    GATE_CAP_RECENT = 8,
    GATE_CAP_FAILED = 16 /* failed builds kept (gate_cap_fail_cost) */
};

/* The least parallelism the others leave the gate, in jobs (the grid's bottom). */
#define GATE_CAP_FLOOR 0.5

/* "Not limited": free parallelism (the grid's top). */
#define GATE_CAP_UNLIMITED 4096.0

typedef struct gate_cap_obs {
    unsigned cfg;    /* index in names */
    double log_ms;   /* its wall time */
    double log_load; /* the jobs running meanwhile (their harmonic mean), >= 1 */
    double others;   /* the cores other tenants used meanwhile, >= 0 */
    bool failed;     /* a job that failed (gate_cap_observe_failed) */
    bool dropped;    /* a failure found to have stopped early: not in the fit */
    long long build; /* a failure: the build it was claimed by (gate_cap_build_job; 0: none) */
    bool flaky;      /* a failure found to be a flake (gate_cap_flaked) */
} gate_cap_obs;

/* A build: its configurations (bits of their indices), those that failed, the caller's id. */
typedef struct gate_cap_build {
    unsigned ran, failed;
    long long id; /* > 0 (the scheduler's candidate), for gate_cap_flaked */
} gate_cap_build;

typedef struct gate_cap {
    double told; /* the executor's parallelism as told, in jobs (GATE_CAP_UNLIMITED: none) */
    gate_cap_obs obs[GATE_CAP_OBS];
    unsigned nobs, next; /* a ring: the newest at next - 1 */
    char names[GATE_CAP_CONFIGS][GATE_CAP_NAME];
    unsigned ncfg;
    bool dirty;                             /* observations since the last fit */
    double parallel;                        /* the fit: P, the machine's */
    double alone_ms[GATE_CAP_CONFIGS];      /* and W_c (0: no observation in the window) */
    gate_cap_build failed[GATE_CAP_FAILED]; /* failed builds, a ring: the newest at */
    unsigned nfailed, next_failed;          /* next_failed - 1 */
} gate_cap;

/* told <= 0 or >= GATE_CAP_UNLIMITED: not limited. */
void gate_cap_init(gate_cap *c, double told);
/* The executor's parallelism changed (a cluster's free slots, say). */
void gate_cap_tell(gate_cap *c, double told);
/* A job of `config` ran `ms` of wall time while `load` jobs ran on average (ms > 0). */
void gate_cap_observe(gate_cap *c, const char *config, double ms, double load);
/* The same, while other tenants used `others` cores on average (< 0, NaN: 0). */
void gate_cap_observe_shared(gate_cap *c, const char *config, double ms, double load,
                             double others);
/*
 * A job of `config` that failed, as gate_cap_observe_shared: learned from
 * while it took at least GATE_CAP_RAN_COURSE of the time the estimate gives
 * a pass of its configuration at its load (it ran its course: a test that
 * failed at the end), not when it stopped at its first error (a broken
 * change's build failing in 0.1 s where it passes in 4 s would read as a job
 * that does not slow down).  One that came before any pass of its
 * configuration is taken until the first pass, then judged with the rest.
 * GATE_CAP_RAN_COURSE is exp(-2 sigma) of the fit's noise (15%): a pass is
 * shorter than that part of what the fit gives it about once in 40, so a
 * failure that short most likely stopped before its end.  (It was 0.5 up
 * to session 29: parson's clang -O2 builds failing at an #error after
 * parsing took 0.45-0.65 of a pass, and the half of them kept as passes
 * moved the fit between 1.6 and 2.7 jobs at once on 2 cores.)
 */
void gate_cap_observe_failed(gate_cap *c, const char *config, double ms, double load,
                             double others);
#define GATE_CAP_RAN_COURSE 0.75
/*
 * What a failure of `config` costs, as a part of a pass of it (0, 1]: the
 * mean over the window's failures of it, each judged as
 * gate_cap_observe_failed judges it, of its time over what the fit gives a
 * pass at its load, a failure that ran its course counting 1 (the fit takes
 * it as a pass's length: its shortfall is the fit's noise), one that stopped
 * early (dropped from the fit: exactly the information) its own part, at
 * least GATE_CAP_FAIL_MIN; 1 (a whole job) while none can be judged.  No
 * prior here: the failed builds' cost (gate_cap_fail_cost) has one, and a
 * prior in both counted it twice (inih's replay: 6 builds failing at a
 * compile error in 0.02 of a pass were priced 0.45 of one, each pulled to
 * 0.27 by this prior and the mean pulled again by the builds').  Failures
 * before any pass of it in the window are not judged: not counted, nor are
 * failures found to be flakes (gate_cap_flaked: a flake's cost is its
 * retry, which the scheduler counts apart).  A broken change's
 * build failing at its first compile error in 0.1 s where it passes in 4 s:
 * 0.025.
 */
double gate_cap_fail_part(gate_cap *c, const char *config);
#define GATE_CAP_FAIL_PRIOR 0.5 /* gate_cap_fail_cost's prior, in failed builds of 1 */
#define GATE_CAP_FAIL_MIN   0.01
/*
 * A build's configurations and which of them failed (gate_cap_build_job),
 * for gate_cap_build_ended: a failed build's length depends on which jobs
 * failed (those end early, the others run their course).  A failed one
 * claims the newest failed job of its configuration not yet claimed (its
 * own, timed just before its build ended), for gate_cap_flaked.
 */
void gate_cap_build_job(gate_cap *c, gate_cap_build *b, const char *config, bool failed);
/*
 * Configuration `config` of build `id` failed and then passed on the same
 * tree: its failure was a flake, not what a failure of the queue's changes
 * costs.  It leaves gate_cap_fail_part's mean and the failed build's entry
 * (a build none of whose failures is left no longer counts): a flaky test
 * that runs its course must not price a broken change's build, which stops
 * at its first error, at a whole one (a flake's own cost is its retry: the
 * scheduler counts it apart).
 */
void gate_cap_flaked(gate_cap *c, long long id, const char *config);
/* A first build (every configuration ran) ended: kept among GATE_CAP_FAILED when it failed. */
void gate_cap_build_ended(gate_cap *c, const gate_cap_build *b);
/*
 * What a failed build costs against a pass of it, both in (0, 1]: its time
 * (the longest of its jobs, each failed one gate_cap_fail_part of its W_c,
 * the others W_c, over its longest W_c) and its work (the sum of the same
 * over the sum of its W_c), the mean over the newest GATE_CAP_FAILED failed
 * builds at the estimates of now, with GATE_CAP_FAIL_PRIOR builds of 1.
 * Configurations with no W_c count as long as the longest.  A compile
 * error fails every configuration early (both its part); a test that fails
 * one configuration leaves the others to run (the time that of the longest
 * of them).
 */
void gate_cap_fail_cost(gate_cap *c, double *time, double *work);
/*
 * What a retry of a failed build costs against a pass of it, the same way:
 * a retry reruns only the configurations that failed (gate_sched_next), so
 * its time is the longest of the failed jobs (each gate_cap_fail_part of
 * its W_c) over the build's longest W_c, its work their sum over the
 * build's; GATE_CAP_FAIL_PRIOR builds of 1.  A compile error that fails
 * configuration a in 5% of its time beside b's pass: the failed build
 * costs b's whole time, its retry 5% of a.
 */
void gate_cap_retry_cost(gate_cap *c, double *time, double *work);
/*
 * What the scheduler plans for: P less the others' cores now (the mean of
 * the newest GATE_CAP_RECENT observations), at least GATE_CAP_FLOOR; P
 * when the executor is not limited (fits when needed).
 */
double gate_cap_parallel(gate_cap *c);
/* P: what the executor runs at once without slowing jobs down, the others aside. */
double gate_cap_machine(gate_cap *c);
/* The others' cores now (the mean of the newest GATE_CAP_RECENT observations; 0: none). */
double gate_cap_others(const gate_cap *c);
/* W_c in ms, 0 when `config` has no observation in the window. */
double gate_cap_alone_ms(gate_cap *c, const char *config);
/* The longest W_c in ms (a build's longest job alone, the model's unit of time); 0: none yet. */
double gate_cap_unit_ms(gate_cap *c);
/*
 * A build of `jobs` jobs as work, in units of its longest job: the sum of the
 * configurations' W_c over the largest (1 .. jobs; jobs when nothing is
 * known).  Configurations not yet observed count as long as the longest, so
 * an estimate made on part of the matrix never understates the work.  On
 * two cores a build of a 1 s and a 2 s job is 1.5 wide: alone it leaves a
 * core idle for half its time, which a second build beside it fills.
 */
double gate_cap_width(gate_cap *c, unsigned jobs);
/* How long `jobs` jobs take at once, in units of one job's time alone: max(1, jobs / P). */
double gate_cap_span(double parallel, double jobs);

#endif /* KEEL_GATE_CAPACITY_H */
