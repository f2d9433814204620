/*
 * gate/gate.h - keel-gate itself: the gatekeeper that drives the scheduler,
 * merges candidates, runs their configuration matrix, lands what passed and
 * records every step in the store; and the commands of the CLI on top of it.
 *
 *   gate_options o;
 *   gate_options_default(&o);
 *   o.repo = "/srv/repo.git";
 *   gate *g;
 *   keel_status s = gate_open(&o, &g);
 *   s = gate_submit(g, "feature/x", 0, &id);
 *   s = gate_run(g, true);                 // until the queue is empty
 *   gate_close(g);
 *
 * Crash safety: every step is one store transaction, and the stress points
 * gate.crash_after_merge, gate.crash_after_job, gate.crash_before_cas,
 * gate.crash_after_cas and gate.crash_after_take end the process with _exit(99) when they fire (a
 * simulated kill -9).  gate_run starts with gate_store_recover, given the
 * commit the target points at, so work resumes where it stopped.
 */
#ifndef KEEL_GATE_GATE_H
#define KEEL_GATE_GATE_H

#include <stdio.h>

#include "keel/keel.h"

#include "store.h"

typedef struct gate gate;           /* opaque */
typedef struct gate_repo gate_repo; /* git.h */

typedef struct gate_options {
    const char *repo;   /* the guarded repository (default "."): a path, or a URL (remote.h) */
    const char *mirror; /* a URL's: where its local mirror is (NULL: the default place) */
    const char *state;  /* the store (default: <git dir or mirror>/keel-gate.db) */
    const char *target; /* NULL: the branch HEAD names, or the one its [gate] target names */
    const char *work;   /* where jobs' work trees go (NULL: <state>.d/work, or a cache
                           directory when that is inside the repository) */
    FILE *out;          /* progress and results (default stdout); NULL-able: quiet */
    unsigned poll_ms;   /* run without --once: how often to look for new changes (1000) */
    unsigned pause_ms;  /* after the gate's own failure: the first pause before it tries
                           again, doubled each time (1000) */
    const char *config; /* run --config FILE: the configuration used while the target's own
                           does not load (NULL: none; run then stops saying how to recover) */
    bool existing;      /* a command that only reads: no store at `state` (or the default) is
                           KEEL_E_NOTFOUND saying no gate has run, and nothing is made */
} gate_options;

void gate_options_default(gate_options *o);

KEEL_MUST_USE keel_status gate_open(const gate_options *o, gate **out);
/* Is there nothing at `path` (no file, no directory: a store to be made there)? */
bool gate_store_absent(const char *path);
void gate_close(gate *g);

gate_store *gate_get_store(gate *g);
const char *gate_target(const gate *g);
/* <state>.d: the jobs' logs (logs/), the targets' locks and records */
const char *gate_state_dir(const gate *g);

/*
 * Queue what was submitted by a push (git.h, GATE_SUBMIT_PREFIX): each
 * refs/keel-gate/submit/<branch> becomes a change of priority 0 and its ref
 * is removed (only if not pushed again meanwhile).  A hostile or reserved
 * name is refused: its ref removed, a "refused" event recorded.  A push for
 * a branch that already has an active change waits until that change ends
 * (the same commit again: already queued, the ref is removed).  gate_run
 * calls it at start and then every poll (a remote's: every tenth).
 * *queued: how many changes it queued.
 */
KEEL_MUST_USE keel_status gate_take_pushed(gate *g, size_t *queued);

/*
 * The priorities a person gives a change (submit --priority, the API's
 * submit and priority): -GATE_PRIORITY_MAX .. GATE_PRIORITY_MAX, so that
 * flow merges (GATE_FLOW_PRIORITY, 2^29) go ahead of any of them and
 * backouts (GATE_BACKOUT_PRIORITY, 2^30) ahead of them aged for as long as
 * a queue can wait.  The gate's own submissions use its priorities above.
 */
enum { GATE_PRIORITY_MAX = (1 << 29) - 1 };

/* Queue the current head of `branch` (GATE_E_BAD_REF for a hostile name). */
KEEL_MUST_USE keel_status gate_submit(gate *g, const char *branch, int priority, long long *id);
/*
 * The same, refused (KEEL_E_CONFLICT) unless the branch's commit is
 * `expected_head` (40 hex digits; NULL: any): what the caller means is what is queued.
 */
KEEL_MUST_USE keel_status gate_submit_at(gate *g, const char *branch, const char *expected_head,
                                         int priority, long long *id);
KEEL_MUST_USE keel_status gate_cancel(gate *g, long long id);

/*
 * gate_submit_at in its steps, for a caller that does the git work on a
 * thread of its own (keel-gate serve's workers), where it may be slow: a
 * remote's branch and target are fetched into the mirror under the mirror's
 * lock (which a running gate holds up to 60 s) and over the network, and the
 * target's history is walked.
 *   gate_submit_check: is `branch` one to submit to g's target (a valid
 *     name, not the target: KEEL_E_INVAL saying what to do instead)?
 *   gate_submit_look: what the submit reads of git, on repository r (a
 *     handle of the calling thread's, opened where gate_repo_place says),
 *     for `target`; no gate handle, no store.  KEEL_E_CONFLICT when the
 *     branch is not at `expected_head` (NULL: any), KEEL_E_NOTFOUND when
 *     `target` is not a branch.
 *   gate_submit_looked: the change queued on g as `seen` found it (or
 *     refused, KEEL_E_EXISTS, with its event, when the target holds it).
 */
typedef struct gate_submit_seen {
    char head[GATE_OID_HEX]; /* the branch's commit (an annotated tag peeled to it) */
    char tag[GATE_OID_HEX];  /* that tag; "": none */
    char tip[GATE_OID_HEX];  /* the target's */
    bool in_target;          /* tip's history holds head */
} gate_submit_seen;
KEEL_MUST_USE keel_status gate_submit_check(const gate *g, const char *branch);
KEEL_MUST_USE keel_status gate_submit_look(gate_repo *r, const char *target, const char *branch,
                                           const char *expected_head, gate_submit_seen *out);
KEEL_MUST_USE keel_status gate_submit_looked(gate *g, const char *branch,
                                             const gate_submit_seen *seen, int priority,
                                             long long *id);
/*
 * Where g's repository is, for a handle of another thread's: its directory
 * (a remote's: its mirror), and *url the remote's URL (NULL: a local one);
 * gate_repo_open or gate_repo_open_remote opens it (git.h).
 */
const char *gate_repo_place(const gate *g, const char **url);

/*
 * What a branch holds, for a caller about to submit it (the dashboard's
 * form, GET /api/v1/branch): its commit (an annotated tag peeled, as submit
 * peels it; a remote's branch as its mirror last saw it: no network), that
 * commit's subject, whether the target already holds it, and the branch's
 * active (queued or testing) change, 0 when none.  GATE_E_BAD_REF for a
 * hostile name, KEEL_E_NOTFOUND when there is no such branch.
 */
typedef struct gate_branch_view {
    char head[GATE_OID_HEX]; /* 40 hex digits */
    char subject[96];        /* its first line, cut to fit */
    bool in_target;          /* the target's history holds head */
    long long active;        /* the branch's queued or testing change; 0: none */
} gate_branch_view;
KEEL_MUST_USE keel_status gate_branch_view_get(gate *g, const char *branch, gate_branch_view *out);
/*
 * gate_branch_view_get in two steps, as a submit (above): the git part on
 * repository r for `target` (all but `active`; the walk of the target's
 * history), then the store's part on g (v->active).
 */
KEEL_MUST_USE keel_status gate_branch_look(gate_repo *r, const char *target, const char *branch,
                                           gate_branch_view *out);
KEEL_MUST_USE keel_status gate_branch_view_active(gate *g, const char *branch, gate_branch_view *v);

typedef struct gate_run_stats {
    unsigned long long builds;   /* builds started (retries included) */
    unsigned long long jobs;     /* configuration jobs run */
    unsigned long long landed;   /* changes */
    unsigned long long rejected; /* changes whose required configuration failed */
    unsigned long long conflicts;
    unsigned long long flakes;
    unsigned long long reopened; /* rejections taken back: their ending was a flake's */
    unsigned long long moved;    /* compare-and-swaps lost to a concurrent push */
    unsigned long long notify_failures;
    int stop_signal; /* nonzero: it stopped on gate_request_stop (the number it was given) */
    /*
     * what the scheduler learned: jobs the executor runs at once, from how
     * many timings; and how many it started from (the store's timings of the
     * target's newest jobs, of earlier runs: gate_store_job_timings)
     */
    double parallel;
    unsigned timed, timed_start;
    double width;          /* a build's work in units of its longest job */
    unsigned batch, depth; /* the window's shape at the end */
    /*
     * the failure rate per change it estimated at the end, and at the start
     * (the default prior, or what the store kept of the gate's last run)
     */
    double p, p_start;
} gate_run_stats;

/*
 * The gatekeeper loop; `once`: return when the queue is empty.  While it
 * runs it publishes the heap stats of every module to <state>.d/heaps.json
 * (gate_heaps_publish, at most once a second), which `status` shows.
 */
KEEL_MUST_USE keel_status gate_run(gate *g, bool once, gate_run_stats *stats);

/*
 * One gate, several targets: gs[0..n) are gates opened on one store, each
 * with its own target (gate_open's o->target), run together by this thread
 * as gate_run runs one: each target has its own queue, scheduler, post and
 * nightly levels, culprit searches, backouts and flows (those into it), read
 * from its own tip's configuration; their jobs share one executor of the
 * most slots any of their configurations asks for, a free slot going to the
 * target with the fewest jobs running (gate_pool_share), so that a busy
 * target never starves another.  `once`: return when every queue is empty
 * and a whole round of turns changed nothing.  A stop asked of any of them
 * (gate_request_stop) stops all; the gate's own error on one target stops the
 * others as a stop would (what was in flight back in the queue) and is
 * returned.  Refused before anything: a target given twice, gates on
 * different stores, a target that is not a branch.  *stats: the targets'
 * sums (what the scheduler learned: the first target's).  n == 1: gate_run.
 */
KEEL_MUST_USE keel_status gate_run_targets(gate *const *gs, size_t n, bool once,
                                           gate_run_stats *stats);

/*
 * The gates `run` needs for several targets: one per name of given[0..ngiven)
 * (run --target A --target B), or, when ngiven is 0, one per branch of
 * [gate] targets in the configuration of g's target; each opened with o as
 * g was, its own target.  *n = 0 (nothing opened): a single target, g's.
 * Close them with gate_targets_close (NULL, 0 is fine).
 */
KEEL_MUST_USE keel_status gate_targets_open(const gate_options *o, gate *g,
                                            const char *const *given, size_t ngiven, gate ***gs,
                                            size_t *n);
void gate_targets_close(gate **gs, size_t n);

/*
 * Ask gate_run to stop (from any thread; one atomic store, so a signal
 * handler may call it too): it starts no more work, kills the running jobs'
 * process groups, records them as cancelled without blaming any change,
 * puts every change in flight back in the queue (gate_store_recover) and
 * returns KEEL_OK with stats->stop_signal = signo.  A later gate_run resumes.
 */
void gate_request_stop(gate *g, int signo);

/*
 * Build and test `branch` merged onto the target's tip on the whole matrix,
 * without queueing; a table per configuration goes to the output.  *passed:
 * every required configuration passed.
 */
KEEL_MUST_USE keel_status gate_try(gate *g, const char *branch, bool *passed);

/*
 * The gate (running, since when), how many changes are decided out of how
 * many, the running jobs with their elapsed time, the queue, recent
 * landings, rejections and conflicts; text, or JSON (GATE_STATUS_JSON: all of
 * it and the memory of the last run), the memory by module heap in text with
 * GATE_STATUS_MEMORY.
 */
enum gate_status_flags { GATE_STATUS_JSON = 1, GATE_STATUS_MEMORY = 2 };
KEEL_MUST_USE keel_status gate_status(gate *g, FILE *f, unsigned flags);
/*
 * Change `id`: its state and reason, a summary of its builds (each job of
 * each candidate that held it: configuration, attempt, result, duration and
 * the verdict on that tree: passed, failed N of N, flaky), then the last
 * lines of the log of the job that decided a rejection (GATE_LOG_FULL:
 * every job's whole log instead; GATE_LOG_JSON: the summary as JSON).
 * Escaped for a terminal (gate/cli/text.h: a job's output is the change's,
 * and an escape sequence in it could set the reader's clipboard or rewrite
 * the screen), or as the jobs wrote it (GATE_LOG_RAW).
 */
enum gate_log_flags { GATE_LOG_RAW = 1, GATE_LOG_FULL = 2, GATE_LOG_JSON = 4 };
KEEL_MUST_USE keel_status gate_log(gate *g, long long id, FILE *f, unsigned flags);
/*
 * The post level's results (gate/levels/post.h): each commit that reached the
 * target, newest first, by each configuration at level post (only `config`
 * unless NULL): passed, failed, flaky (failed N of M), not run (superseded
 * or not built yet), running; "-" where a commit has no such configuration.
 * Then the nightly level's runs (gate/levels/nightly.h; only `config`'s
 * unless NULL; the newest 64), a row each: commit, configuration, result
 * (the same words), when it was due.  A table, or JSON (GATE_HISTORY_JSON:
 * "commits" and "nightly").
 */
enum gate_history_flags { GATE_HISTORY_JSON = 1 };
KEEL_MUST_USE keel_status gate_history(gate *g, const char *config, FILE *f, unsigned flags);
/*
 * keel-gate nightly: each configuration at level nightly of the target's
 * configuration, its schedule, when it is next due and its last runs; with
 * `now`, every one is due now instead (gate/levels/nightly.h).
 */
KEEL_MUST_USE keel_status gate_nightly_cmd(gate *g, bool now, FILE *f);
/*
 * keel-gate culprit CONFIG [--json]: the newest culprit search of CONFIG on
 * the target (range, builds, posterior's top 3, state, verdict, evidence);
 * KEEL_E_NOTFOUND naming CONFIG when the tip has no such configuration and
 * no search of it was made.
 */
KEEL_MUST_USE keel_status gate_culprit_show(gate *g, const char *config, FILE *f, bool json);
/*
 * The change `what` names: a change id (digits), or a branch: its change
 * for the gate's target (the active one, else the newest), else its only
 * active change, or the newest of the only target it has changes for.
 * KEEL_E_NOTFOUND: none; KEEL_E_INVAL: several targets, the ids listed.
 */
KEEL_MUST_USE keel_status gate_find_change(gate *g, const char *what, long long *id);
/*
 * Is `what` a change id?  Digits alone are one: *id the positive number they
 * write, or KEEL_E_INVAL naming them when they are 0 or past LLONG_MAX
 * ("0", "00", "99999999999999999999"); anything else (a branch, maybe) sets
 * *id to 0.
 */
KEEL_MUST_USE keel_status gate_change_id_parse(const char *what, long long *id);

/*
 * keel-gate's parts are keel modules with POSTs (gate/modules.c): gate_config,
 * gate_store, gate_git, gate_exec, gate_sched.  A program calls this (it does
 * nothing) so that the linker keeps them, then keel_modules_start().
 */
void gate_modules_link(void);

/*
 * `keel-gate check` (gate/cli/check.c): the configuration `what` checked,
 * every error at once (gate_config_check), each a line "<origin>:<line>:
 * ..." on o->out, then a summary line.  `what`: a file ("-": standard
 * input); else a branch, whose .keel/gate.conf is read from git (no
 * checkout); NULL: the target's (o->target, else the branch HEAD names).
 * No store is opened.  *errors: how many; an error: it could not be read.
 */
KEEL_MUST_USE keel_status gate_check(const gate_options *o, const char *what, size_t *errors);

/* The CLI (gate/cli/cli.c): parses argv, runs a command, returns the exit code (0, 1, 2). */
int gate_cli_main(int argc, char **argv, FILE *out, FILE *err);

/*
 * `s` as one line for a log or a reason: each message of its chain, the
 * outermost first, joined by ": ", without code names, source locations
 * and details.
 */
void gate_status_line(keel_status s, char *buf, size_t size);

/*
 * Append `s` to buf at `len` as a JSON string (quotes included): valid JSON
 * for any bytes (gate/cli/text.h).  Returns the length the whole text needs
 * (snprintf-like); what does not fit is left out whole, never cut inside an
 * escape or a character: room for GATE_JSON_ROOM(strlen(s)) always fits.
 */
size_t gate_json_str(char *buf, size_t size, size_t len, const char *s);

#endif /* KEEL_GATE_GATE_H */
