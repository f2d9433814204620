/*
 * gate/config.h - keel-gate's configuration: `.keel/gate.conf` in the guarded
 * repository, read from the tree under test (so configuration changes are
 * gated like any other change).
 *
 *   # .keel/gate.conf
 *   [gate]
 *   target     = main          # the branch the gate guards
 *   targets    = main comp/net # or several: `run` guards each (its own queue and
 *                              #   configuration), sharing the slots (gate_run_targets)
 *   slots      = 4             # executor slots (default: the number of cores)
 *   strategy   = adaptive      # serial | batch | speculative | speculative-batch | adaptive
 *   max-batch  = 8             # most changes tested together
 *   max-depth  = 4             # most candidates tested ahead speculatively
 *   retries    = 1             # reruns of a failed job before anything is blamed
 *   flaky-alike = 2            # failures alike that reject on a configuration seen to
 *                              #   flake lately: 2, or 3 (two alike may be two flakes)
 *   crash-limit = 3            # the gate died this many times in a row testing a change:
 *                              # it is quarantined (rejected); 0: never
 *   notify     = tools/notify --channel ci    # run with a JSON event on stdin
 *   sandbox    = bwrap         # bwrap | none: how jobs are isolated (sandbox.h)
 *   memory     = 4G            # defaults of every configuration's limits:
 *   processes  = 1024          #   memory, processes and threads, CPU seconds,
 *   cpu        = 0             #   output per job, disk (its work tree), its
 *   output     = 8M            #   private /tmp; sizes as 512K, 64M, 4G; 0: none
 *   disk       = 16G
 *   tmp        = 1G
 *   log-days   = 30            # job logs older than this are removed ...
 *   log-max    = 1G            # ... and the oldest beyond this total
 *   pass-env   = CCACHE_DIR    # more variables a job gets from the gate
 *   executor   = local         # local | slurm: where jobs run (gate/exec/slurm.h)
 *   slurm-launch = runner      # runner | srun: a job handed to a runner standing in the
 *                              #   slot's allocation, or a Slurm step of its own
 *   blame-max  = 3             # people a culprit search's or backout's event names (1..100)
 *
 *   [config gcc-devel]
 *   build    = cmake --preset devel -DCMAKE_C_COMPILER=gcc
 *   test     = ctest --preset devel
 *   env      = CC=gcc KEEL_OPTIONS="report.lock-order=abort"
 *   timeout  = 900             # seconds, build and test together
 *   required = yes             # must pass to land (default yes)
 *   network  = no              # yes: the job shares the host's network
 *   writable = /var/cache/ccache   # absolute paths the job may write
 *   memory   = 8G              # and any of the limits above for this one
 *   partition    = ci          # with executor = slurm, the job's Slurm request:
 *   constraint   = clang&x86_64   #   node features (sbatch -C), CPUs per job,
 *   cpus         = 2           #   memory asked of Slurm (a size; 0: not asked),
 *   slurm-memory = 4G          #   time limit in minutes (0: the timeout's, rounded
 *   time-limit   = 20          #   up, plus one)
 *   levels   = gate try        # where it runs: try (keel-gate try), gate (the
 *                              # queue), post (every commit that reaches the
 *                              # target), nightly, pre-merge; default: gate try
 *   tier     = 2               # 1 | 2 | 3: what a post failure brings (default 2)
 *   schedule = 0 2 * * *       # nightly: when (cron's five fields, UTC; default
 *                              #   02:00), see gate/levels/cron.h
 *   jitter   = 30m             # nightly: started up to this much later (a
 *                              #   duration, at most 1d; default 30m)
 *   backout  = no              # this configuration's culprits are proposed, not reverted
 *
 *   [gate] keys of the automatic backout (gate/levels/backout.h, docs/gate.md):
 *   backout         = yes      # back out verified culprits of tier 1 (and 2) (default yes)
 *   backout-budget  = 3        # reverts per 24 h, created and landed counted apart
 *   backout-max-age = 7d       # older culprits are proposed, not reverted
 *   tier2-fix-time  = 4h       # tier 2: reverted only when no fix landed in this time
 *   hold-when-red   = no       # yes: the queue holds while a tier-1 configuration is
 *                              # red (at post, or nightly) and no backout is under way
 *   revert-near     = 3        # a later change this many lines from the culprit's own
 *                              # makes it dependent: not reverted (0..1000)
 *   Durations as gate_duration_parse reads them (4h, 7d, 2w, or 0).
 *
 * Levels and tiers (issue 17): a configuration runs at the levels it names;
 * one without `levels` runs at `gate` and `try`, as every configuration did
 * before levels existed.  The gate's queue runs the `gate` ones, `try` the
 * `try` ones, the post level (gate/levels/post.c) the `post` ones, the
 * nightly level (gate/levels/nightly.c) the `nightly` ones on their
 * schedule; the queue runs the `pre-merge` ones too on a branch flow's merge
 * into the target (gate/flows/flow.h gate_flow_levels), never on others.  The tier
 * says what a failure at post brings: 1 and 2, a culprit search; 3, the
 * result in the history only.  The default is 2 (searched and reported):
 * automatic backout (tier 1's) must be asked for.  `required` is the gate's:
 * at least one configuration at level gate must be required.
 * `sandbox`, `network`, `writable`, `pass-env` and the limits are security
 * settings: the gate takes them from the TARGET's configuration (for the
 * configuration of the same name), never from the change under test, so a
 * change cannot loosen its own sandbox (sandbox.h, gate_job_policy_from).
 *
 * Commands and env are split into words like a shell would split them
 * (blanks separate, '...' and "..." quote, \ escapes; a '#' that starts a
 * word outside quotes starts a comment) but no shell ever runs them: they
 * are executed directly, so a command holding shell syntax outside quotes
 * (`&&`, `|`, `>`, `$(`, ...: gate_words_shell) or starting with NAME=value
 * is refused, saying what to write instead.  Errors name the file and the line (a
 * configuration's own: the line of its [config NAME]) and the key, with the
 * nearest known key when a key is misspelled.
 */
#ifndef KEEL_GATE_CONFIG_H
#define KEEL_GATE_CONFIG_H

#include "keel/keel.h"

#include "cron.h"

typedef enum gate_strategy {
    GATE_STRATEGY_SERIAL,
    GATE_STRATEGY_BATCH,
    GATE_STRATEGY_SPECULATIVE,
    GATE_STRATEGY_SPECULATIVE_BATCH,
    GATE_STRATEGY_ADAPTIVE
} gate_strategy;

/*
 * The queue's defaults, one place for the configuration (gate_config_parse)
 * and the scheduler's own (gate_sched_params_default): adaptive, batches of
 * up to 8 changes, 4 candidates ahead of the tip, 1 retry of a failed build,
 * 2 failures alike to reject on a configuration seen to flake lately.
 */
enum {
    GATE_DEFAULT_STRATEGY = GATE_STRATEGY_ADAPTIVE,
    GATE_DEFAULT_MAX_BATCH = 8,
    GATE_DEFAULT_MAX_DEPTH = 4,
    GATE_DEFAULT_RETRIES = 1,
    GATE_DEFAULT_FLAKY_ALIKE = 2
};

/* A NULL-terminated vector of words (all stored in one block). */
typedef struct gate_words {
    char **words;
    size_t n;
} gate_words;

enum { GATE_MAX_CONFIGS = 64 };
enum { GATE_REVERT_NEAR_MAX = 1000 }; /* [gate] revert-near at most (lines) */

enum { GATE_CONFIG_NAME_MAX = 65, GATE_BRANCH_MAX = 256 };

/* A job's resource limits; 0: none.  Defaults: GATE_DEFAULT_* below. */
typedef struct gate_limits {
    unsigned long long memory;    /* bytes, every process of the job together */
    unsigned long long processes; /* processes and threads at once */
    unsigned long long cpu;       /* CPU seconds */
    unsigned long long output;    /* bytes of output, all its steps together */
    unsigned long long disk;      /* bytes its work tree may hold; one file at most this */
    unsigned long long tmp;       /* bytes: the size of its private /tmp */
} gate_limits;

#define GATE_DEFAULT_MEMORY    (4ull << 30)
#define GATE_DEFAULT_PROCESSES 1024ull
#define GATE_DEFAULT_CPU       0ull
#define GATE_DEFAULT_OUTPUT    (8ull << 20)
#define GATE_DEFAULT_DISK      (16ull << 30)
#define GATE_DEFAULT_TMP       (1ull << 30)
#define GATE_DEFAULT_LOG_DAYS  30u
#define GATE_DEFAULT_LOG_MAX   (1ull << 30)

void gate_limits_default(gate_limits *l);

/* gate_matrix_config.limits_set: the limits a [config NAME] section gave itself. */
enum {
    GATE_LIMIT_MEMORY = 1u << 0,
    GATE_LIMIT_PROCESSES = 1u << 1,
    GATE_LIMIT_CPU = 1u << 2,
    GATE_LIMIT_OUTPUT = 1u << 3,
    GATE_LIMIT_DISK = 1u << 4,
    GATE_LIMIT_TMP = 1u << 5
};

typedef enum gate_executor { GATE_EXECUTOR_LOCAL, GATE_EXECUTOR_SLURM } gate_executor;

/* What a configuration's job asks of Slurm (executor = slurm); "" and 0: not asked. */
typedef struct gate_slurm_request {
    char partition[64];
    char constraint[256];
    unsigned cpus;
    unsigned long long memory; /* bytes */
    unsigned time_min;         /* 0: the timeout's, rounded up to minutes, plus one */
} gate_slurm_request;

/* When a configuration at level nightly runs when it names no `schedule`: 02:00 UTC. */
#define GATE_SCHEDULE_DEFAULT "0 2 * * *"

/* The levels a configuration runs at (gate_matrix_config.levels): bits. */
typedef enum gate_level {
    GATE_LEVEL_TRY = 1u << 0,
    GATE_LEVEL_GATE = 1u << 1,
    GATE_LEVEL_POST = 1u << 2,
    GATE_LEVEL_NIGHTLY = 1u << 3,
    GATE_LEVEL_PRE_MERGE = 1u << 4
} gate_level;

enum {
    GATE_LEVELS_DEFAULT = GATE_LEVEL_GATE | GATE_LEVEL_TRY, /* what a config without `levels` has */
    GATE_TIER_DEFAULT = 2,     /* searched and reported, not reverted */
    GATE_JITTER_DEFAULT = 1800 /* a nightly build starts up to 30 minutes after its time */
};

typedef struct gate_matrix_config {
    char name[GATE_CONFIG_NAME_MAX];
    gate_words build;
    gate_words test;
    gate_words env; /* NAME=value words */
    unsigned timeout_s;
    bool required;
    bool network;        /* network = yes */
    gate_words writable; /* absolute paths bound read-write */
    gate_limits limits;  /* its own, or [gate]'s where it sets none */
    unsigned limits_set; /* which of its limits it set (GATE_LIMIT_* bits) */
    gate_slurm_request slurm;
    unsigned levels; /* GATE_LEVEL_* bits; GATE_LEVELS_DEFAULT when not given */
    unsigned tier;   /* 1..3; GATE_TIER_DEFAULT when not given */
    int backout;     /* backout = yes (1) | no (0); -1: not given ([gate]'s) */
    /* ccache-size: its compiler cache's size limit (gate/exec/ccache.h); 0: no cache.  Its
     * own, or [gate]'s when it sets none */
    unsigned long long ccache_size;
    bool ccache_set;
    /* the nightly level's (gate/levels/nightly.c): when, and a jitter of 0..jitter_s - 1 s */
    gate_cron schedule;      /* GATE_SCHEDULE_DEFAULT when not given */
    char schedule_text[128]; /* as written (for status and history) */
    unsigned jitter_s;       /* GATE_JITTER_DEFAULT when not given; at most a day */
} gate_matrix_config;

/*
 * Branch flows (issue 18): `[flow SRC -> DST]` sections, read from the
 * default branch like the rest of the file.  The gate merges SRC into DST
 * (a real merge commit on keel-gate/flow/<from>-to-<to>) and queues the
 * merge for DST like any change (gate/flows/flow.h, docs/gate.md "Branch
 * flows").
 *
 *   [flow comp/net -> main]
 *   trigger        = commit        # commit: every commit that reaches SRC;
 *                                  # schedule: `interval` apart (interval = 6h
 *                                  # with it: s, m, h, d, w units)
 *   levels         = post          # more levels of DST's configurations that test
 *                                  # the merge (gate and pre-merge always do)
 *   owner          = Ann Lee <ann@example.org>   # escalations go there
 *   remind         = 1d 2d 4d      # back-off between reminders (the last repeats)
 *   escalate-after = 3             # reminders before the owner is told (0: never)
 *   remind-max     = 5             # most people one reminder goes to
 *   back-merge     = no            # yes: DST -> SRC flows too, with these settings
 *
 * Flows are one-way: a product branch fed from main (`[flow main ->
 * release/2.1]`) never merges back unless its reverse is configured, by
 * `back-merge = yes` or by a `[flow release/2.1 -> main]` section of its own
 * (not both: a duplicate flow).  A cycle of flows is refused unless it is
 * such a two-way pair.
 */
enum {
    GATE_MAX_FLOWS = 32,
    GATE_FLOW_REMIND_MAX = 8,
    GATE_FLOW_OWNER_MAX = 256,
    GATE_FLOW_PEOPLE_MAX = 32
};

typedef enum gate_flow_trigger { GATE_FLOW_ON_COMMIT, GATE_FLOW_ON_SCHEDULE } gate_flow_trigger;

#define GATE_FLOW_ESCALATE_DEFAULT  3u
#define GATE_FLOW_REMIND_MAX_PEOPLE 5u

typedef struct gate_flow_config {
    char from[GATE_BRANCH_MAX];
    char to[GATE_BRANCH_MAX];
    gate_flow_trigger trigger;
    unsigned long long interval_s;   /* trigger = schedule: seconds between merges */
    unsigned levels;                 /* GATE_LEVEL_* bits of DST's configurations (default gate) */
    char owner[GATE_FLOW_OWNER_MAX]; /* "Name <email>"; "" when none is named */
    unsigned long long remind_s[GATE_FLOW_REMIND_MAX]; /* default 1d 2d 4d */
    size_t nremind;
    unsigned escalate_after; /* reminders before escalation; 0: never */
    unsigned remind_max;     /* most people reminded (1..GATE_FLOW_PEOPLE_MAX) */
    bool back_merge;         /* yes: the reverse flow was made from this section */
    size_t line;             /* where its [flow ...] header is (errors, keel-gate check) */
} gate_flow_config;

/* [gate] targets: most branches one gate guards (gate_run_targets) */
enum { GATE_MAX_TARGETS = 16 };

typedef struct gate_config {
    char target[GATE_BRANCH_MAX];
    bool target_set;    /* [gate] target was given (else target is "main", unused) */
    gate_words targets; /* [gate] targets: the branches `run` guards together (none: one) */
    unsigned slots;     /* 0: the number of cores */
    gate_strategy strategy;
    unsigned max_batch;
    unsigned max_depth;
    unsigned retries;
    unsigned flaky_alike;       /* failures alike that end a flaky configuration's tree (2, 3) */
    unsigned blame_max;         /* people a search's or backout's event names at most (default 3) */
    unsigned crash_limit;       /* quarantine a change after this many gate deaths (0: never) */
    gate_words notify;          /* empty: no hook */
    bool sandbox_none;          /* sandbox = none: jobs run without bubblewrap */
    gate_limits limits;         /* the defaults of every configuration */
    unsigned log_days;          /* job logs older than this are removed (0: never) */
    unsigned long long log_max; /* bytes: the oldest logs beyond this are removed (0: no cap) */
    gate_words pass_env;        /* variable names jobs get from the gate's environment */
    gate_executor executor;     /* where jobs run */
    bool slurm_srun;            /* slurm-launch = srun: a Slurm step per job (default runner) */
    /* automatic backout (gate/levels/backout.h) */
    unsigned backout_budget;        /* reverts per 24 h, created and landed each (default 3) */
    long long backout_max_age_s;    /* older culprits are proposed (default 7d) */
    long long tier2_fix_s;          /* tier 2: how long a fix may take (default 4h) */
    bool backout;                   /* backout = yes|no (default yes) */
    bool hold_when_red;             /* hold the queue while a tier-1 configuration is red */
    unsigned revert_near;           /* lines: a later change this near depends on the culprit */
    unsigned long long ccache_size; /* ccache-size: every configuration's default (0: none) */
    gate_matrix_config configs[GATE_MAX_CONFIGS];
    size_t nconfigs;
    gate_flow_config flows[GATE_MAX_FLOWS]; /* [flow SRC -> DST], back-merges included */
    size_t nflows;
} gate_config;

/* Parse a configuration; `origin` names it in errors ("main:.keel/gate.conf"). */
KEEL_MUST_USE keel_status gate_config_parse(const char *text, size_t len, const char *origin,
                                            gate_config **out);
void gate_config_free(gate_config *c);

/*
 * Check a configuration as gate_config_parse reads it, but every error, not
 * only the first (`keel-gate check`, for editors and pre-commit hooks): each
 * goes to `report` (borrowed for the call; its message names the file, the
 * line and the key, its detail "line" the line) and the check reads on.  The
 * keys of a section whose header is refused are not read (they would be
 * taken for another section's), nor what follows a NUL byte.  *errors: how
 * many; *out: the configuration when there were none (else NULL).  KEEL_OK
 * unless the check itself failed (memory).  gate_config_parse, which run
 * uses, still stops at the first.
 */
typedef void (*gate_config_error_fn)(keel_status err, void *ctx);
KEEL_MUST_USE keel_status gate_config_check(const char *text, size_t len, const char *origin,
                                            gate_config_error_fn report, void *ctx, size_t *errors,
                                            gate_config **out);

const char *gate_strategy_name(gate_strategy s);
/* "try", "gate", "post", "nightly", "pre-merge" for one GATE_LEVEL_* bit; "?" otherwise. */
const char *gate_level_name(gate_level l);
/* Does configuration m run at level l? */
bool gate_config_at(const gate_matrix_config *m, gate_level l);
/*
 * Keep only the configurations that run at level l (in their order): the
 * queue keeps the gate's, try the try's, the post level the post's.  `l` may
 * be several GATE_LEVEL_* bits or'd: a configuration at any of them is kept
 * (a flow's merge: gate and pre-merge, gate_flow_levels).  How many
 * are left in c->nconfigs (0 possible: the caller says what that means).
 */
void gate_config_keep_level(gate_config *c, gate_level l);
const char *gate_executor_name(gate_executor e);

/*
 * A size as `512K`, `64M`, `4G`, `1T` (powers of 1024; a plain number is
 * bytes); `0` is 0.  KEEL_E_PARSE / KEEL_E_RANGE naming `text` otherwise.
 */
KEEL_MUST_USE keel_status gate_size_parse(const char *text, unsigned long long *out);

/*
 * A duration as `90s`, `30m`, `4h`, `7d`, `2w` (a whole number and one unit)
 * or `0`, into seconds.  KEEL_E_PARSE / KEEL_E_RANGE (over 100 years) naming `text`.
 */
KEEL_MUST_USE keel_status gate_duration_parse(const char *text, unsigned long long *seconds);

/* A variable a job must never get from the gate (its credentials, git's, KEEL_OPTIONS)? */
bool gate_env_forbidden(const char *name, size_t len);

/* Split a command line into words (no shell): quotes and backslashes as above. */
KEEL_MUST_USE keel_status gate_words_split(const char *text, gate_words *out);

/*
 * Shell syntax in a command line, which the splitter would pass on as text
 * since no shell runs the command: outside quotes and not escaped, `&&`,
 * `||`, `;`, `&`, `|`, `<`, `>` (so `>>`, `2>&1`, `<(...)` too), `$(`, `${`,
 * `$NAME`, `$1`, `$?` (and `$#`, `$@`, `$*`, `$!`, `$$`, `$-`) and a
 * backquote; with `expansions_only` (what `env` holds), the expansions
 * alone (`$...` and the backquote), outside quotes and inside "...", where a
 * shell expands them too.  Not looked for (a shell passes them on as written when
 * nothing matches): `*`, `?`, `[...]`, `{a,b}`, `~`.  A quoted operator
 * (`'a|b'`, "x;y") or an escaped one (`\;`) is a word's text.
 */
typedef struct gate_shell {
    bool expansions_only; /* in: look for `$...` and backquotes only */
    char found[24];       /* out: the syntax as written ("&&", "$HOME"), cut at 23 bytes */
    const char *what;     /* out: what a shell would do with it */
    size_t column;        /* out: where it starts in the text (1-based); 0: none */
} gate_shell;

/* Is there shell syntax in `text` (gate_shell)?  The first is described in *sh. */
bool gate_words_shell(const char *text, gate_shell *sh);
void gate_words_free(gate_words *w);

#endif /* KEEL_GATE_CONFIG_H */
