/*
 * gate/exec/sandbox.h - what a job may see, reach and use.
 *
 * Every job runs in a bubblewrap sandbox (`bwrap`, Debian's `bubblewrap`):
 * the system read-only, its own work tree writable, a private size-capped
 * /tmp and /dev/shm, no network unless its configuration says `network = yes`,
 * new PID, IPC, UTS, user and cgroup namespaces (nothing it starts outlives
 * it), no capabilities even as root, /proc/sys read-only, and none of the
 * gate's files: not the store, not <state>.d (logs, other jobs' trees), not
 * the guarded repository's git dir or the mirror, not the gate's $HOME or
 * ssh-agent's socket.  `sandbox = none` in [gate] opts out (documented in
 * docs/gate.md): the same environment allow-list and limits, no isolation.
 *
 * This file is the pure part: the policy a job runs under (taken from the
 * TARGET's configuration, never from the change under test), the bwrap
 * argument vector, the environment allow-list and what the sandbox sees.
 * exec.c starts the job; resources.c enforces the resource limits.
 */
#ifndef KEEL_GATE_SANDBOX_H
#define KEEL_GATE_SANDBOX_H

#include "keel/keel.h"

#include "config.h"

enum { GATE_PATH_MAX = 1024, GATE_HIDDEN_MAX = 16, GATE_POLICY_LIST = 2048 };

/* What no job may see (gate.c computes it: gate_hidden_paths). */
typedef struct gate_hidden {
    size_t n;
    struct {
        char path[GATE_PATH_MAX]; /* absolute, canonical when it existed */
        bool gate_owned; /* the gate's own files: nothing inside may be made writable either */
    } e[GATE_HIDDEN_MAX];
} gate_hidden;

/*
 * Add `path` (made absolute and canonical when it exists; "" and "/" are
 * ignored).  KEEL_E_FULL when the list is full.
 */
KEEL_MUST_USE keel_status gate_hidden_add(gate_hidden *h, const char *path, bool gate_owned);

/*
 * The settings one job runs under, copied out of the target's configuration
 * (the job may outlive it).  Lists are packed: strings one after the other,
 * each NUL-terminated, an empty one ends the list.
 */
typedef struct gate_job_policy {
    bool sandbox;           /* bubblewrap; false: sandbox = none */
    bool network;           /* the host's network (network = yes) */
    gate_executor executor; /* where it runs: [gate] executor of the target */
    bool slurm_srun;        /* [gate] slurm-launch = srun: a Slurm step per job (slurm.h) */
    gate_limits limits;
    char writable[GATE_POLICY_LIST];  /* absolute paths bound read-write */
    char readonly[2 * GATE_PATH_MAX]; /* absolute paths bound again read-only (under hidden ones) */
    char pass_env[512];               /* names the job gets from the gate's environment */
    /*
     * Its configuration's compiler cache (ccache.h: gate_ccache_attach), "": none.
     * ccache_dir: the job's CCACHE_DIR (its counters), in ccache_layer: its own layer, in
     * writable; ccache_landed: the configuration's landed layer, in readonly, or in writable
     * when ccache_writes_landed (a level's build of a landed commit).  ccache_note: why it has
     * none though its configuration asks for one.
     */
    char ccache_dir[GATE_PATH_MAX];
    char ccache_layer[GATE_PATH_MAX];
    char ccache_landed[GATE_PATH_MAX];
    char ccache_note[256];
    unsigned long long ccache_size; /* its ccache-size: the landed layer's limit */
    bool ccache_writes_landed;
} gate_job_policy;

/* The strictest: sandboxed, no network, the default limits, nothing writable. */
void gate_job_policy_default(gate_job_policy *p);

/*
 * The policy of configuration `name` under `target` (the target tip's
 * configuration; NULL: the defaults): [gate]'s sandbox and pass-env, and
 * [config name]'s network, writable and limits, or [gate]'s defaults when the
 * target has no configuration of that name.  KEEL_E_RANGE when its lists do
 * not fit.
 */
KEEL_MUST_USE keel_status gate_job_policy_from(gate_job_policy *p, const gate_config *target,
                                               const char *name);

/*
 * May `path` (a `writable` entry) be bound read-write into jobs?  Not when it
 * is or contains a hidden path, nor inside one of the gate's own (the store,
 * <state>.d, the repository, a mirror): KEEL_E_INVAL naming both.
 */
KEEL_MUST_USE keel_status gate_sandbox_check_writable(const gate_hidden *h, const char *path);

/* Each writable path of every configuration of `cfg`, checked as above (the first refused). */
KEEL_MUST_USE keel_status gate_sandbox_check_config(const gate_hidden *h, const gate_config *cfg);

/*
 * The job's environment, built from an allow-list of the gate's (`env`, the
 * gate's environ): PATH, LANG, LANGUAGE, LC_*, TZ, TERM, USER, LOGNAME, SHELL
 * and the names in `pass_env` (packed); never KEEL_GATE_*, SSH_AUTH_SOCK,
 * GIT_* or KEEL_OPTIONS; then HOME=`home` and TMPDIR=/tmp; then the
 * configuration's `config_env` (NAME=value) adding or replacing.  One block on
 * gate_exec's heap (keel_heap_free); its strings point into env, config_env
 * and the block.
 */
KEEL_MUST_USE keel_status gate_sandbox_env(char *const *env, const char *pass_env,
                                           char *const *config_env, const char *home, char ***out);

/* The value of NAME in `env` (NAME=value strings), or NULL. */
const char *gate_env_get(char *const *env, const char *name);

/*
 * Would a job in `dir` under `p` see `path` (absolute, canonical)?  Always
 * with sandbox = none; else not under a hidden path or in /tmp (private),
 * unless under `dir`, a writable or a read-only path (bound again after).
 */
bool gate_sandbox_sees(const gate_job_policy *p, const gate_hidden *h, const char *dir,
                       const char *path);

/* What a hidden path is when a job starts (gate_bwrap_spec.kinds). */
enum { GATE_HIDE_SKIP = 0, GATE_HIDE_DIR = 1, GATE_HIDE_FILE = 2 };

typedef struct gate_bwrap_spec {
    const char *bwrap; /* its path */
    const char *dir;   /* the work tree: bound read-write, the working directory */
    const gate_job_policy *policy;
    const gate_hidden *hidden;
    const unsigned char *kinds; /* GATE_HIDE_* for each hidden entry */
    const char *home;           /* made in the private /tmp */
    int status_fd;              /* --json-status-fd */
    int block_fd;               /* --block-fd, or -1 */
    const char *fail;           /* a bind whose source does not exist (a stress point), or NULL */
    char *const *argv;          /* the command, NULL-terminated */
} gate_bwrap_spec;

/*
 * bwrap's argument vector for the job (a pure function: no I/O): NULL-
 * terminated, one block on gate_exec's heap (keel_heap_free).  Mounts are
 * ordered so that a deeper path is mounted after the ones above it: the
 * private /tmp first, then writable paths, hidden ones and the work tree by
 * depth (read-only ones with --ro-bind), then the hidden directories made
 * read-only.
 */
KEEL_MUST_USE keel_status gate_bwrap_argv(const gate_bwrap_spec *s, char ***out);

/* Program `name` on the gate's PATH, not in directory `skip` (or NULL), into buf: found? */
bool gate_find_program(const char *name, const char *skip, char *buf, size_t size);

/* The path of `bwrap` on the gate's PATH into buf; KEEL_E_NOTFOUND says what to do. */
KEEL_MUST_USE keel_status gate_bwrap_find(char *buf, size_t size);

/* Can jobs run under `target` (NULL: the defaults): bwrap installed, unless sandbox = none? */
KEEL_MUST_USE keel_status gate_sandbox_ready(const gate_config *target);

/* snprintf whose truncation is fine: a message, or a bounded path that then fails visibly. */
void gate_fmt(char *buf, size_t size, const char *fmt, ...) KEEL_PRINTF(3, 4);

/* Remove `dir` and everything under it (not following links); what cannot go stays. */
void gate_rm_tree(const char *dir);

/* Write all of buf to fd (again after EINTR): 0, or the errno (EIO when write wrote nothing). */
int gate_write_all(int fd, const char *buf, size_t len);

/* A size for people: "8 MiB", "4 GiB", "1500 bytes". */
void gate_size_text(unsigned long long bytes, char *buf, size_t size);

#endif /* KEEL_GATE_SANDBOX_H */
