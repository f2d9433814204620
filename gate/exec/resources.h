/*
 * gate/exec/resources.h - a job's resource limits, by the best mechanism the machine
 * offers:
 *
 *   cgroup v2     when the gate's own cgroup is delegated to it (writable,
 *                 with the memory and pids controllers, and the gate alone
 *                 in it: it moves itself into a leaf `gate` and puts each
 *                 job in a sibling);
 *   cgroup v1     the `memory`, `pids` and `cpuacct` hierarchies, each
 *                 where it is writable (as root on a cgroup v1 or hybrid
 *                 machine), a cgroup per job under the gate's own;
 *   rlimits       for what no cgroup covers: RLIMIT_AS for memory (per
 *                 process; ASan's shadow memory needs terabytes of address
 *                 space, so an ASan build under a memory limit fails to
 *                 start), RLIMIT_NPROC for processes (per user, and not for
 *                 root), RLIMIT_CPU for CPU (per process).
 *
 * RLIMIT_FSIZE (the largest file a job may write) is the `disk` limit
 * always; the work tree's whole size is watched by the executor (exec.c).
 * A job's cgroup is also how every process it started is killed at its end
 * (a `setsid` daemon included), and what the records of running jobs name
 * for a restarted gate to clean up after a killed one.
 */
#ifndef KEEL_GATE_RESOURCES_H
#define KEEL_GATE_RESOURCES_H

#include <stdbool.h>
#include <sys/types.h>

#include "keel/keel.h"

#include "sandbox.h"

enum { GATE_CG_MEMORY = 0, GATE_CG_PIDS = 1, GATE_CG_CPU = 2, GATE_CG_N = 3 };

/* One job's cgroup(s): per controller for v1, one directory for v2. */
typedef struct gate_cgroup {
    int version;                        /* 0: none, 1, 2 */
    char dir[GATE_CG_N][GATE_PATH_MAX]; /* "" when that controller is not used */
} gate_cgroup;

/* What a job's cgroup saw, at its end. */
typedef struct gate_cgroup_report {
    unsigned long long oom_kills;   /* processes its memory limit's OOM killer killed */
    unsigned long long pids_max;    /* forks refused by its process limit */
    unsigned long long peak_memory; /* bytes (0: unknown) */
    unsigned long long cpu_ms;      /* CPU used */
} gate_cgroup_report;

/*
 * A cgroup for one job with `l`'s memory and process limits, the controllers
 * this machine lets the gate use (cg->version 0 and KEEL_OK when none).
 * KEEL_E_SYS when a controller that is there cannot take one more job.
 */
KEEL_MUST_USE keel_status gate_cgroup_make(const gate_limits *l, gate_cgroup *cg);

/* Move process `pid` into the job's cgroup(s). */
KEEL_MUST_USE keel_status gate_cgroup_attach(const gate_cgroup *cg, pid_t pid);

/* CPU the job's processes used so far (ms), or ~0ull when not accounted. */
unsigned long long gate_cgroup_cpu_ms(const gate_cgroup *cg);

void gate_cgroup_read(const gate_cgroup *cg, gate_cgroup_report *r);

/*
 * SIGKILL every process in the cgroup until none is left (at most ~2 s):
 * how many were killed.  cg->dir may name a leftover of a killed gate.
 */
unsigned gate_cgroup_kill(const gate_cgroup *cg);

/*
 * Kill what is left, then remove the cgroup(s) (and the gate's parent when
 * it is empty); false when one could not be removed (processes left in it).
 */
bool gate_cgroup_remove(gate_cgroup *cg);

/* Is `dir` a cgroup directory of this machine's (a record names only these)? */
bool gate_cgroup_path_ok(const char *dir);

/*
 * The rlimits of `l` that `cg` does not enforce, on process `pid` (prlimit):
 * RLIMIT_FSIZE = disk always, RLIMIT_AS = memory, RLIMIT_NPROC = processes
 * (not as root), RLIMIT_CPU = cpu.
 */
KEEL_MUST_USE keel_status gate_rlimits_apply(pid_t pid, const gate_limits *l,
                                             const gate_cgroup *cg);

/* Does `cg` hold the process limit (a pids cgroup)? */
bool gate_cgroup_has_pids(const gate_cgroup *cg);

/*
 * "memory 4 GiB (cgroup v1), processes 1024 (cgroup v1), ...": what enforces
 * each limit.  `counted`: the job has a PID namespace of its own, whose
 * processes the executor counts where no pids cgroup holds the limit.
 */
void gate_limits_describe(const gate_limits *l, const gate_cgroup *cg, bool counted, char *buf,
                          size_t size);

/*
 * Field `field` (3 or more, as proc(5) numbers them: 20 its threads, 22 its
 * start time) of /proc/<pid>/stat as a number, and its state (field 3) in
 * `*state` when not NULL; 0 when the process is gone.
 */
unsigned long long gate_proc_stat(pid_t pid, int field, char *state);

/*
 * The processes and threads of the PID namespace whose init is `init` (its
 * pid here), counted from /proc: a sandboxed job's process limit where no
 * pids cgroup holds it (root ignores RLIMIT_NPROC).  0 when `init` is gone.
 */
unsigned long long gate_pidns_tasks(pid_t init);

/*
 * Bytes the files under `dir` take on disk (st_blocks), and the size of the
 * largest file, not following links or mounts.
 */
void gate_tree_usage(const char *dir, unsigned long long *bytes, unsigned long long *largest);

/*
 * The capacity signal's other half: the CPU the rest of the machine uses
 * beside the gate's own jobs.  /proc/stat's first eight fields (user nice
 * system idle iowait irq softirq steal, in ticks, all CPUs), false when
 * unknown, and whether the nice column competes with the gate's jobs
 * (`count_nice`): processes of a lower priority (a positive nice) than a
 * gate that is not niced yield the cores to its jobs, so their CPU takes
 * none from it (on a machine whose other tenants run at nice 19, it counted
 * 20 cores busy and the gate planned for 1 job at once on 2 cores its jobs
 * had) -- unless the gate runs niced itself, or the kernel's autogroups are
 * on (/proc/sys/kernel/sched_autogroup_enabled): then a nice value orders
 * the tasks of one session only, every session shares the CPUs as a group
 * of nice 0 whatever its tasks' nice, and other sessions' niced processes
 * compete with the gate's jobs (sched(7): a nice value counts only against
 * the threads of the same task group; during a replay at nice -15, its
 * autogroup at -15 too, beside helpers' builds at nice 19, the nice column
 * grew by 40% of the 2 cores' time while its jobs ran).
 */
bool gate_machine_cpu(unsigned long long fields[8], bool *count_nice);
/* Whether the nice column competes with a gate at `nice`, autogroups on or not. */
bool gate_nice_competes(int nice, bool autogroup);
/*
 * The busy ticks between two such readings that compete with the gate:
 * user, system, irq, softirq and steal, and nice when `count_nice`.  When
 * the nice column yields, so does the niced processes' kernel time, which
 * /proc/stat counts as system with everyone's: the system ticks are taken
 * in the share of user among user and nice (a replay at nice -15 beside
 * builds at nice 19, autogroups off: over 10 s, user 738, nice 586, system
 * 668 ticks of 2000, and the gate planned for 0.5 jobs at once on 2 cores
 * while its jobs ran; a compiler spends about a third of its user time in
 * the kernel).
 */
double gate_stat_busy_between(const unsigned long long from[8], const unsigned long long to[8],
                              bool count_nice);

/*
 * CPU time (ms) of process `root` and of every process below it that is
 * alive (found through /proc/<pid>/task/<tid>/children), each with the CPU
 * of the children it waited for: the gate's whole tree, its jobs'
 * sandboxes included, when `root` is the gate.  A process that left the
 * tree (a daemon whose parent exited is adopted elsewhere) is not counted.
 * 0 when `root` is gone.
 */
unsigned long long gate_tree_cpu_ms(pid_t root);

/*
 * The CPU of the gate's jobs that gate_tree_cpu_ms lost sight of when they
 * ended (a process-wide sum, ms).  bwrap's monitor exits with its sandbox's
 * exit code without waiting for the sandbox's PID 1, so nothing the job ran
 * comes back to the gate in a child's CPU: while the job runs its processes
 * are in the tree, at its end their CPU leaves it.  The executor adds, at
 * each job's end, its cgroup's CPU less what the gate reaped of it
 * (gate_hidden_cpu_add), or counts a sandboxed job whose CPU it cannot know
 * (no CPU accounting: gate_hidden_cpu_unknown).  Without it every job ended
 * looked like another tenant's work (0.5-1.5 cores on 2), and the
 * scheduler planned for 0.5-1 jobs at once on an idle machine.
 */
void gate_hidden_cpu_add(unsigned long long ms);
void gate_hidden_cpu_unknown(void);

/* Both at one time (a job's start or end). */
typedef struct gate_cpu_sample {
    unsigned long long at_ms;      /* gate_now_ms() */
    unsigned long long machine[8]; /* gate_machine_cpu(): /proc/stat's fields */
    bool machine_known, count_nice;
    unsigned long long tree_ms; /* gate_tree_cpu_ms(root) and the CPU it lost (hidden) */
    unsigned long long unknown; /* sandboxed jobs ended whose CPU is not known, so far */
} gate_cpu_sample;

void gate_cpu_sample_take(pid_t root, unsigned long long now_ms, gate_cpu_sample *out);

/*
 * The cores the rest of the machine used on average between two samples:
 * the machine's busy CPU less the tree's, over the wall time (>= 0; 0 when
 * the machine's CPU is unknown, or a sandboxed job whose CPU is not known
 * ended between them).
 */
double gate_others_cores(const gate_cpu_sample *from, const gate_cpu_sample *to);

/*
 * A job's load, the harmonic mean of the jobs executing while it ran (the
 * pool's, capacity.h): the integral of 1 / executing over time, kept up to
 * `at` (ms).  A job sharing the executor among k jobs progresses at a rate
 * proportional to 1 / k, so its time is its time alone times that mean over
 * what the executor runs at once, however the load changed during it; the
 * arithmetic mean would count a job whose neighbours ended before it as
 * slower than it was.  Pure: the caller gives the times.
 */
typedef struct gate_load_meter {
    double inv;            /* the integral of 1 / executing (ms), up to at */
    unsigned long long at; /* ms */
} gate_load_meter;

/* The integral up to `now`, `executing` jobs having run since the last call (0: none ran). */
double gate_load_advance(gate_load_meter *m, unsigned long long now, unsigned executing);
/*
 * A job's load from the integral at its start and end (gate_load_advance):
 * its length over the integral's growth, in [1, ...); `alone` when the job
 * took no time to measure.
 */
double gate_load_of(unsigned long long t0, double area0, unsigned long long t1, double area1,
                    double alone);

#endif /* KEEL_GATE_RESOURCES_H */
