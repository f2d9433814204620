/*
 * gate/gate_int.h - what gate.c, gate_loop.c and query.c share (not an API).
 */
#ifndef KEEL_GATE_GATE_INT_H
#define KEEL_GATE_GATE_INT_H

#include "config.h"
#include "gate.h"
#include "git.h"
#include "heaps.h"
#include "pool.h"
#include "qlock.h"
#include "scheduler.h"
#include "worktree.h"

/* The gatekeeper's memory: module gate's heap (heaps.h). */
#define GATE_HEAP KEEL_MODULE_REF(gate)

/* A candidate as the gatekeeper knows it: the scheduler's, with what it was built from. */
typedef struct gate_cand {
    long long sid;      /* the scheduler's id (unique within one generation) */
    unsigned gen;       /* the generation of the scheduler that made it */
    long long store_id; /* 0 until recorded */
    char base[GATE_HEX];
    char merge[GATE_HEX];
    long long *changes;
    size_t n;
    unsigned attempt;
    unsigned pending;   /* jobs of this attempt not yet back */
    bool failed_now;    /* a required job of this attempt failed */
    bool merge_failed;  /* does not merge onto its base (a candidate, not the tip) */
    size_t conflict_at; /* which change, when merge_failed */
    char conflict_paths[256];
    bool cancelled;
    bool closed; /* finished in the store */
    bool ever_failed;
    gate_config *cfg; /* from the merged tree; NULL when it has none that parses */
    char failures[GATE_REASON_MAX];
    char first_failures[GATE_REASON_MAX];
    gate_sched_run *runs; /* this attempt's required jobs, for gate_sched_results */
    size_t nruns;
    struct gate_cand_fail *fails; /* per configuration of cfg: its last failure (NULL: none yet) */
} gate_cand;

/* A configuration's last failure on a candidate: what a rejection's reason quotes. */
typedef struct gate_cand_fail {
    char result[32];
    int exit_code;
    char reason[256];
} gate_cand_fail;

/* A job's work tree, reused by the jobs after it (worktree.h). */
typedef struct gate_tree {
    gate_worktree *w;
    bool busy; /* a job in flight has it */
} gate_tree;

enum { GATE_DIR_MAX = GATE_PATH_MAX + 3 * GATE_BRANCH_MAX + 64 };

/* The gate's own failures in a row before run stops (each after a pause, doubled each time). */
enum { GATE_ERRORS_MAX = 5 };

struct gate {
    gate_repo *repo;
    gate_store *store;
    char repo_path[GATE_PATH_MAX];
    char state[GATE_PATH_MAX];
    char work[GATE_PATH_MAX + 8]; /* <state>.d: logs, targets/ */
    char tdir[GATE_DIR_MAX];      /* <state>.d/targets/<target>: this queue's lock, heaps.json */
    char tree_root[GATE_DIR_MAX]; /* this target's jobs' work trees */
    char target[GATE_BRANCH_MAX];
    FILE *out;
    /* gate_run only */
    gate_sched *sched;
    gate_sched_memory learned;     /* what the store holds of what sched learned (gate_loop.c) */
    unsigned long long flaky_kept; /* sched's gate_sched_flaky_seen when the store took them */
    gate_pool *pool;
    gate_config *tip_cfg;
    unsigned long long tip_cfg_id; /* which text tip_cfg was read from (a hash) */
    char tip[GATE_HEX];
    char tip_built[GATE_HEX]; /* the merge the tip was built as, before it landed relabelled
                                 (gate_land_relabel): candidates stacked on it stack on the tip */
    gate_cand **cands;
    size_t ncands, cands_cap;
    long long *active; /* changes the scheduler holds */
    size_t nactive, active_cap;
    gate_job_run **inflight;
    size_t ninflight, inflight_cap;
    gate_tree *trees; /* as many as jobs were ever in flight at once */
    size_t ntrees, trees_cap;
    gate_run_stats stats;
    long long heaps_at;     /* when the heap stats were last published (s) */
    long long pushed_at_ms; /* when refs/keel-gate/submit/ was last looked at (monotonic) */
    gate_qlock *qlock;      /* held by gate_run: one gatekeeper per queue */
    gate_job_run **again;   /* jobs the gate failed to run, to run again after a pause */
    size_t nagain, again_cap;
    unsigned long long again_at_ms;   /* when they run again (monotonic) */
    struct gate_notifier *notifier;   /* gate_run's (notify.h) */
    gate_hidden hidden;               /* what no job sees (gate_hidden_paths) */
    char records[GATE_PATH_MAX + 16]; /* <state>.d/running: records of running jobs */
    long long logs_pruned_at;         /* when old job logs were last removed (s) */
    /* run --config FILE: used while the target's own configuration does not load */
    char *config_text; /* NULL: none given */
    size_t config_len;
    char config_origin[GATE_PATH_MAX]; /* FILE, as given (config_used: below) */
    /* one gate, several targets (gate_run_targets): pool is a share of pool_core's slots */
    gate_pool *pool_core;             /* NULL: pool is the gate's own */
    unsigned long long restart_at_ms; /* after the gate's own failure: when it restarts (0: no) */
    /* the small ones together (no padding between them) */
    unsigned poll_ms;
    unsigned pause_ms;
    unsigned gen;
    unsigned wait_ms;      /* several targets: how long this target's turn would have waited */
    int stop_signal;       /* gate_request_stop's (atomic); 0: keep going */
    unsigned gate_errors;  /* jobs the gate could not start, in a row (GATE_ERRORS_MAX) */
    unsigned turn_errors;  /* turns that failed for the environment, in a row */
    unsigned flows_warned; /* the flows whose failure was said (bit i: flow i; flows_turn.c) */
    bool target_of_head;   /* no --target, no [gate] target: the branch HEAD names */
    bool stopping;         /* gate_run is stopping on request: results blame nothing */
    bool heaps_warned;
    bool pushed_warned;
    bool recovered;   /* the run's first recovery (the one after a crash) is done */
    bool config_used; /* run --config FILE: the tip's configuration is FILE's now */
    bool held;        /* hold-when-red holds the queue (gate/levels/backout.h) */
};

void gate_say(gate *g, const char *fmt, ...) KEEL_PRINTF(2, 3);
/*
 * The whole text of a stream or a file, NUL-terminated, on module gate's
 * heap (*text: free it with keel_heap_free(GATE_HEAP, ...), after an error
 * too); at most GATE_TEXT_FILE_MAX bytes.
 */
enum { GATE_TEXT_FILE_MAX = 16 << 20 };
KEEL_MUST_USE keel_status gate_read_stream(FILE *f, const char *name, char **text, size_t *len);
KEEL_MUST_USE keel_status gate_read_path(const char *path, char **text, size_t *len);
/* Which .keel/gate.conf text this is (a hash, never 0; 0 stands for none). */
unsigned long long gate_config_text_id(const char *text, size_t len);
/*
 * The configuration of the tip does not load (`why`, taken; not the gate's
 * own failure): with run --config FILE, FILE's becomes g->tip_cfg (said and
 * recorded as a config-override event); without, the error that stops run,
 * saying how to recover.
 */
KEEL_MUST_USE keel_status gate_tip_config_broken(gate *g, keel_status why);
/*
 * What lands says what it is (landing.c): candidate c's merges made again
 * onto the tip with the messages of its changes (branch, id, subject, the
 * configurations that passed, the batch), recorded as its merge; *out: the
 * last, the one to land.
 */
KEEL_MUST_USE keel_status gate_land_relabel(gate *g, const gate_cand *c, char out[GATE_HEX]);
/*
 * What `head` conflicts with when merged onto `onto` (conflict.c), into
 * out: "conflicts with change 7 ('b', landed at <commit>) in x.c; with
 * commit <commit> ('subject', pushed to 'main' directly) in y.c", a change
 * ahead of it in flight named as such; cut to `size`.
 */
KEEL_MUST_USE keel_status gate_conflict_with(gate *g, const char *onto, const char *head, char *out,
                                             size_t size);
/* Is `base` the tip, or the merge the tip was built as before it landed relabelled? */
bool gate_on_tip(const gate *g, const char *base);
KEEL_MUST_USE keel_status gate_make_dir(const char *dir);
/* mkdir -p */
KEEL_MUST_USE keel_status gate_make_dirs(const char *dir);
/*
 * The configuration of `commit` (.keel/gate.conf in its tree), with the
 * sandbox's checks; while run uses --config FILE (config_used), FILE's for
 * a commit whose .keel/gate.conf is the tip's (a change that leaves it be).
 */
KEEL_MUST_USE keel_status gate_load_config(gate *g, const char *commit, gate_config **cfg);
/*
 * The target tip's configuration: the running gate's (g->tip_cfg), else read
 * from the tip into *own (the caller frees it with gate_config_free; NULL
 * when the gate's is used).  NULL: the target has none that loads, which
 * these readers (status, hold, flows, culprit, history) take as "nothing".
 */
const gate_config *gate_tip_config(gate *g, gate_config **own);
unsigned gate_slots(const gate_config *cfg);
/*
 * The local executor's parallelism in jobs, the capacity estimate's prior:
 * the CPUs this process may use, at most the slots (its threads).
 */
double gate_parallel(const gate_config *cfg);
/* The jobs a candidate's build runs: cfg's configurations at level gate (a flow's merge may add). */
unsigned gate_build_jobs(const gate_config *cfg);
/* Does cfg name a target ([gate] target) other than `target`, and not list it in targets? */
bool gate_config_names_other(const gate_config *cfg, const char *target);
/* KEEL_E_INVAL: the configuration at `tip` of `target` names another target. */
KEEL_MUST_USE keel_status gate_target_mismatch(const char *target, const char *tip,
                                               const char *named);
/*
 * The notify hook (notify.h): gate_run starts its notifier first thing and
 * stops it last; gate_notify, at the start of the run and after each
 * decision, gives it the tip's hook and wakes it (the events are in the store
 * already).
 */
KEEL_MUST_USE keel_status gate_notify_start(gate *g);
void gate_notify(gate *g);
void gate_notify_stop(gate *g);
KEEL_MUST_USE keel_status gate_hidden_paths(gate *g, gate_hidden *h);
/*
 * A change whose `head` the target's `tip` already holds (submit, try, a
 * pushed ref): KEEL_E_EXISTS "'<branch>' (<head>) is already in '<target>'
 * at <tip>: ...", else KEEL_OK; gate_already_in_event records it.
 */
KEEL_MUST_USE keel_status gate_already_in(gate *g, const char *branch, const char *head,
                                          const char *tip);
KEEL_MUST_USE keel_status gate_already_in_event(gate *g, const char *branch, const char *head,
                                                keel_status why);

/* A stress point `gate.<name>` fired (`fire`): the process ends as kill -9 would end it (99). */
void gate_crash_if(bool fire, const char *name);
/* Stress point `name` of the module using it, a simulated kill -9 there (gate_crash_if). */
#define CRASH_POINT(name) gate_crash_if(KEEL_STRESS(name), #name)
void gate_point_after_merge(void);
void gate_point_after_job(void);
void gate_point_before_cas(void);
void gate_point_after_cas(void);
void gate_point_after_take(void);

#endif /* KEEL_GATE_GATE_INT_H */
