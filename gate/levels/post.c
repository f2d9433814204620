/*
 * post.c - the post level (post.h): the target's new commits recorded, their
 * post builds started on the slots the queue leaves free, their results in
 * the store.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "post.h"

#include <stdio.h>
#include <string.h>

#include "exec.h"
#include "level_job.h"
#include "search.h"
#include "store_post.h"

enum {
    POST_WALK_MAX = 64 /* commits recorded per turn: a longer push records its newest 64 */
};

keel_status gate_post_start(gate *g)
{
    size_t n = 0, superseded = 0;
    keel_status s = gate_store_post_recover(g->store, g->target, gate_now_s(), &n, &superseded);
    if (keel_ok(s) && n > 0)
        gate_say(g, "post: %zu build(s) a killed keel-gate left running to build again\n", n);
    if (keel_ok(s) && superseded > 0) /* as a cancelled one (gate_post_job_done) */
        gate_say(g,
                 "post: %zu build(s) a killed keel-gate left running: a newer commit passed "
                 "since, not run\n",
                 superseded);
    if (keel_ok(s))
        s = gate_search_recover(g); /* the culprit searches' */
    return s;
}

bool gate_post_job(const gate_job_run *j)
{
    return j->post_commit[0] != '\0';
}

/*
 * `commit` reached the target: recorded with the configurations at level
 * post of its .keel/gate.conf (none when it does not load); *builds counts them.
 */
static keel_status record_commit(gate *g, const char *commit, size_t *builds)
{
    gate_config *cfg = NULL;
    keel_status loaded = gate_load_config(g, commit, &cfg);
    if (!keel_ok(loaded) && gate_config_fault_is_gates(loaded)) /* memory, I/O: not the commit's */
        return KEEL_CONTEXT(loaded, "reading the configuration of %.12s", commit);
    if (!keel_ok(loaded)) {
        char line[GATE_REASON_MAX];
        gate_status_line(loaded, line, sizeof(line));
        keel_status_free(loaded);
        gate_say(g, "post: %.12s: no configuration that loads, nothing to build: %s\n", commit,
                 line);
    }
    const char *names[GATE_MAX_CONFIGS];
    size_t n = 0;
    if (cfg != NULL) {
        gate_config_keep_level(cfg, GATE_LEVEL_POST);
        for (size_t i = 0; i < cfg->nconfigs; i++)
            names[n++] = cfg->configs[i].name;
    }
    *builds += n;
    char subject[GATE_POST_SUBJECT_MAX];
    keel_status s = gate_commit_subject(g->repo, commit, subject, sizeof(subject));
    if (keel_ok(s))
        s = gate_store_post_add(g->store, g->target, commit, subject, names, n, gate_now_s());
    gate_config_free(cfg);
    return s;
}

/* The commits that reached the target since the newest recorded, oldest first. */
static keel_status record_new(gate *g)
{
    char newest[GATE_OID_HEX];
    keel_status s = gate_store_post_newest(g->store, g->target, newest);
    if (!keel_ok(s) || strcmp(newest, g->tip) == 0)
        return s;
    char(*walk)[GATE_HEX] = NULL;
    void *mem = NULL;
    s = keel_heap_alloc(GATE_HEAP, POST_WALK_MAX * sizeof(*walk), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the target's new commits");
    walk = (char(*)[GATE_HEX])mem;
    size_t n = 0;
    bool reached = false;
    /* the first time: the tip alone (the history before is not the post level's) */
    s = gate_first_parents(g->repo, g->tip, newest, walk, newest[0] != '\0' ? POST_WALK_MAX : 1, &n,
                           &reached);
    size_t builds = 0;
    for (size_t i = n; keel_ok(s) && i > 0; i--)
        s = record_commit(g, walk[i - 1], &builds);
    if (keel_ok(s) && builds > 0)
        gate_say(g, "post: %zu new commit(s) on '%s' up to %.12s%s\n", n, g->target, g->tip,
                 newest[0] != '\0' && !reached ? " (the newest recorded is not among them)" : "");
    keel_heap_free(GATE_HEAP, mem);
    return s;
}

unsigned gate_post_running(const gate *g)
{
    return gate_level_jobs_running(g, gate_post_job);
}

typedef struct post_start {
    const gate *g;
    const gate_post_row *r;
} post_start;

/* The post build's marks, before it is submitted: its commit, and its log. */
static void init_job(gate_job_run *j, void *ctx)
{
    const post_start *p = (const post_start *)ctx;
    gate_fmt(j->post_commit, sizeof(j->post_commit), "%s", p->r->commit);
    gate_fmt(j->log, sizeof(j->log), "%s/logs/post-%.12s-%s-%u.log", p->g->work, p->r->commit,
             p->r->config, p->r->runs + 1);
}

/* A post job: a post row's, or a culprit search's build (search.c). */
typedef struct post_job {
    gate_level_job base;    /* first: the pool's pointer is the post_job's */
    long long search_build; /* a culprit search's build; 0: a post row's */
} post_job;

typedef struct search_start {
    const char *commit, *log;
    long long build;
} search_start;

/* A search build's marks, before it is submitted: its commit, its log, its build. */
static void init_search_job(gate_job_run *j, void *ctx)
{
    const search_start *p = (const search_start *)ctx;
    gate_fmt(j->post_commit, sizeof(j->post_commit), "%s", p->commit);
    gate_fmt(j->log, sizeof(j->log), "%s", p->log);
    ((post_job *)j)->search_build = p->build;
}

keel_status gate_post_launch(gate *g, gate_level level, const char *commit, const char *config,
                             const char *log, long long search_build)
{
    search_start p = {commit, log, search_build};
    gate_level_build b = {level, commit, config, "culprit", sizeof(post_job), init_search_job, &p};
    gate_job_run *j = NULL;
    return gate_level_job_start(g, &b, &j);
}

/* Start the build of row r: its commit checked out in a free work tree, its configuration's job. */
static keel_status start_one(gate *g, const gate_post_row *r)
{
    keel_status s = gate_store_post_start(g->store, g->target, r->commit, r->config, gate_now_s());
    post_start p = {g, r};
    gate_level_build b = {GATE_LEVEL_POST,  r->commit, r->config, "post",
                          sizeof(post_job), init_job,  &p};
    gate_job_run *j = NULL;
    return keel_ok(s) ? gate_level_job_start(g, &b, &j) : s;
}

keel_status gate_post_turn(gate *g, bool queue_busy, bool paused, bool *busy)
{
    *busy = false;
    keel_status s = record_new(g);
    bool searching = false; /* the culprit searches' builds first: the target is red */
    if (keel_ok(s))
        s = gate_search_turn(g, "post", queue_busy, paused, &searching);
    unsigned running = gate_post_running(g);
    if (queue_busy && running > 0) /* the queue first: they are built again later */
        gate_level_jobs_cancel(g, gate_post_job);
    unsigned slots = gate_slots(g->tip_cfg);
    bool found = false;
    gate_post_row r;
    while (keel_ok(s) && !queue_busy && !paused && !gate_stop_requested(g) &&
           gate_pool_outstanding(g->pool) < slots) {
        s = gate_store_post_next(g->store, g->target, &r, &found);
        if (!keel_ok(s) || !found)
            break;
        s = start_one(g, &r);
        running++;
    }
    if (keel_ok(s) && !found && !queue_busy && !paused)
        s = gate_store_post_next(g->store, g->target, &r, &found); /* waiting for a slot? */
    *busy = running > 0 || (found && !paused) || searching;
    return s;
}

/*
 * Events, once per failure (not per failing build): post-failed when a
 * configuration whose newest result was not a failure fails, target-red when
 * no other configuration was red then; target-green when a red one passes
 * and no other is red.  A failing build of a failure already told adds only
 * to the history.
 */
static keel_status record_events(gate *g, const gate_job_run *j, bool failed, const char *was)
{
    bool red_before = strcmp(was, "failed") == 0;
    if (failed == red_before)
        return KEEL_OK;
    size_t others = 0;
    keel_status s = gate_store_post_red(g->store, g->target, j->config, &others);
    if (!keel_ok(s))
        return s;
    char reason[GATE_REASON_MAX];
    gate_fmt(reason, sizeof(reason), "configuration '%s' %s at %.12s (exit %d, log %s)", j->config,
             failed ? "failed" : "passed", j->post_commit, j->exit_code, j->log);
    char detail[3 * GATE_REASON_MAX];
    gate_fmt(detail, sizeof(detail),
             "{\"commit\":\"%s\",\"config\":\"%s\",\"exit\":%d,\"reason\":", j->post_commit,
             j->config, j->exit_code);
    size_t len = gate_json_str(detail, sizeof(detail), strlen(detail), reason);
    if (len + 2 <= sizeof(detail)) /* else not JSON: the store records it as invalid */
        gate_fmt(detail + len, sizeof(detail) - len, "}");
    long long now = gate_now_s();
    if (failed)
        s = gate_store_event(g->store, now, "post-failed", 0, detail);
    if (keel_ok(s) && others == 0)
        s = gate_store_event(g->store, now, failed ? "target-red" : "target-green", 0, detail);
    if (keel_ok(s))
        gate_notify(g); /* the hook hears of them */
    return s;
}

/*
 * A pass of `commit` (older than the configuration's newest failure, which
 * found no pass before it when it failed: builds end in any order) gives the
 * failure the pass its search needs: the search starts now, unless one
 * already ran up to that failure.
 */
static keel_status search_after_pass(gate *g, const char *commit, const char *config, unsigned tier)
{
    enum { ROWS = 64 };
    void *mem = NULL;
    keel_status s = keel_heap_calloc(GATE_HEAP, ROWS, sizeof(gate_post_row), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the post history of '%s'", config);
    gate_post_row *rows = (gate_post_row *)mem;
    size_t n = 0;
    s = gate_store_post_history(g->store, g->target, config, rows, ROWS, &n);
    const gate_post_row *newest = NULL;
    bool older = false; /* commit is older than the newest done row */
    for (size_t i = 0; keel_ok(s) && i < n && newest == NULL; i++)
        if (strcmp(rows[i].state, "done") == 0)
            newest = &rows[i];
    for (size_t i = 0; newest != NULL && i < n; i++)
        older = older || (strcmp(rows[i].commit, commit) == 0 && rows[i].seq < newest->seq);
    char failing[GATE_OID_HEX] = "";
    if (keel_ok(s) && newest != NULL && older && strcmp(gate_post_outcome(newest), "failed") == 0)
        gate_fmt(failing, sizeof(failing), "%s", newest->commit);
    keel_heap_free(GATE_HEAP, rows);
    if (!keel_ok(s) || failing[0] == '\0')
        return s;
    gate_search_row last;
    bool found = false;
    s = gate_store_search_newest(g->store, g->target, config, &last, &found);
    char end[GATE_OID_HEX] = "";
    if (keel_ok(s) && found)
        s = gate_store_search_commit(g->store, last.id, last.n, end);
    if (!keel_ok(s) || strcmp(end, failing) == 0)
        return s; /* searched already */
    return gate_search_post_failed(g, failing, config, tier, "");
}

keel_status gate_post_job_done(gate *g, gate_job_run *j)
{
    bool no_result = j->error[0] != '\0' || j->result == GATE_EXEC_CANCELLED || g->stopping;
    bool failed = j->result != GATE_EXEC_PASSED;
    keel_status s;
    if (((post_job *)j)->search_build != 0) {
        s = gate_search_build_done(g, ((post_job *)j)->search_build, no_result, failed,
                                   j->post_commit, j->config);
    } else if (no_result) {
        bool superseded = false; /* a newer commit passed meanwhile: not built again */
        s = gate_store_post_unstart(g->store, g->target, j->post_commit, j->config, gate_now_s(),
                                    &superseded);
        if (keel_ok(s))
            gate_say(g, "post: %.12s '%s' %s: %s\n", j->post_commit, j->config,
                     j->error[0] != '\0' ? j->error : "cancelled",
                     superseded ? "a newer commit passed since, not run" : "to build again");
    } else {
        char was[GATE_POST_STATE_MAX];
        s = gate_store_post_finish(g->store, g->target, j->post_commit, j->config, failed, j->log,
                                   gate_now_s(), was);
        CRASH_POINT(post_after_result); /* its row done, other builds running */
        bool newest = true; /* an older commit's result leaves the target's state as it is */
        if (keel_ok(s))
            s = gate_store_post_is_newest(g->store, g->target, j->post_commit, j->config, &newest);
        if (keel_ok(s) && newest)
            s = record_events(g, j, failed, was);
        const gate_config *cfg = ((const gate_level_job *)j)->cfg;
        const gate_matrix_config *m = NULL;
        for (size_t i = 0; cfg != NULL && i < cfg->nconfigs && m == NULL; i++)
            if (strcmp(cfg->configs[i].name, j->config) == 0)
                m = &cfg->configs[i];
        /* an older commit's failure after a newer result that was not one (builds end in any
           order: one cancelled for the queue is built again later) is history: the target is
           not red, and a search started then ran twice over what one already searched */
        bool history = !newest && strcmp(was, "failed") != 0;
        if (keel_ok(s) && failed && m != NULL && history && m->tier <= 2)
            gate_say(g,
                     "culprit: '%s' failed at %.12s, older than its newest result (%s): "
                     "no search\n",
                     j->config, j->post_commit, was);
        else if (keel_ok(s) && failed && m != NULL) /* a new failure: its culprit searched for */
            s = gate_search_post_failed(g, j->post_commit, j->config, m->tier, was);
        else if (keel_ok(s) && m != NULL && strcmp(was, "failed") == 0)
            s = search_after_pass(g, j->post_commit, j->config, m->tier);
        if (keel_ok(s))
            gate_say(g, "post: %.12s '%s' %s (exit %d, %.1f s)\n", j->post_commit, j->config,
                     gate_exec_result_name(j->result), j->exit_code,
                     (double)j->elapsed_ms / 1000.0);
    }
    gate_level_job_free(g, j);
    return s;
}
