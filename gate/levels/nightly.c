/*
 * nightly.c - the nightly level (nightly.h): the configurations due fire on
 * the target's head, their builds start on the slots the queue and the post
 * level leave free, their results go to the store.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "nightly.h"

#include <stdio.h>
#include <string.h>

#include "cron.h"
#include "exec.h"
#include "level_job.h"
#include "search.h"
#include "store_nightly.h"

/* A nightly build's job: its run's due time and commit besides. */
typedef struct nightly_job {
    gate_level_job level; /* first: the pool's pointer is the nightly_job's */
    long long due_at;
    char commit[GATE_HEX];
} nightly_job;

keel_status gate_nightly_start(gate *g)
{
    size_t n = 0, superseded = 0;
    keel_status s = gate_store_nightly_recover(g->store, g->target, &n, &superseded);
    if (keel_ok(s) && n > 0)
        gate_say(g, "nightly: %zu build(s) a killed keel-gate left running to build again\n", n);
    if (keel_ok(s) && superseded > 0)
        gate_say(g,
                 "nightly: %zu build(s) a killed keel-gate left running: a newer run ended since, "
                 "not run\n",
                 superseded);
    return s;
}

bool gate_nightly_job(const gate_job_run *j)
{
    return j->nightly;
}

unsigned gate_nightly_running(const gate *g)
{
    return gate_level_jobs_running(g, gate_nightly_job);
}

/* When m is next due after `now`: its schedule's next time, moved by its jitter. */
static long long next_due(const gate_matrix_config *m, long long now)
{
    long long at = gate_cron_next(&m->schedule, now);
    return at < 0 ? -1 : gate_cron_jitter(m->name, at, (long long)m->jitter_s);
}

/* The configurations of the target's configuration at level nightly that are due fire. */
static keel_status fire_due(gate *g, long long now)
{
    const gate_config *cfg = g->tip_cfg;
    keel_status s = KEEL_OK;
    for (size_t i = 0; cfg != NULL && keel_ok(s) && i < cfg->nconfigs; i++) {
        const gate_matrix_config *m = &cfg->configs[i];
        if (!gate_config_at(m, GATE_LEVEL_NIGHTLY))
            continue;
        long long due = 0;
        bool found = false;
        s = gate_store_nightly_due(g->store, g->target, m->name, &due, &found);
        if (!keel_ok(s))
            break;
        long long next = next_due(m, now);
        if (!found) { /* first seen: its next time (not now: a new configuration waits its turn) */
            s = gate_store_nightly_set_due(g->store, g->target, m->name, next);
            if (keel_ok(s))
                gate_say(g, "nightly: '%s' (%s, jitter %u s) first due at %lld\n", m->name,
                         m->schedule_text, m->jitter_s, next);
        } else if (now >= due && g->tip[0] != '\0') {
            s = gate_store_nightly_fire(g->store, g->target, m->name, due, g->tip, next, now);
            if (keel_ok(s))
                gate_say(g, "nightly: '%s' due: building %.12s (next due at %lld)\n", m->name,
                         g->tip, next);
        }
    }
    return s;
}

typedef struct nightly_start {
    const gate *g;
    const gate_nightly_row *r;
} nightly_start;

/* The nightly build's marks, before it is submitted: its run, and its log. */
static void init_job(gate_job_run *j, void *ctx)
{
    const nightly_start *p = (const nightly_start *)ctx;
    nightly_job *nj = (nightly_job *)j;
    j->nightly = true;
    nj->due_at = p->r->due_at;
    gate_fmt(nj->commit, sizeof(nj->commit), "%s", p->r->commit);
    gate_fmt(j->log, sizeof(j->log), "%s/logs/nightly-%lld-%s-%u.log", p->g->work, p->r->due_at,
             p->r->config, p->r->runs + 1);
}

/* Start the build of run r: its commit checked out in a free work tree, its configuration's job. */
static keel_status start_one(gate *g, const gate_nightly_row *r)
{
    keel_status s =
        gate_store_nightly_start(g->store, g->target, r->config, r->due_at, gate_now_s());
    nightly_start p = {g, r};
    gate_level_build b = {GATE_LEVEL_NIGHTLY,  r->commit, r->config, "nightly",
                          sizeof(nightly_job), init_job,  &p};
    gate_job_run *j = NULL;
    return keel_ok(s) ? gate_level_job_start(g, &b, &j) : s;
}

keel_status gate_nightly_turn(gate *g, long long now, bool queue_busy, bool paused, bool *busy)
{
    *busy = false;
    keel_status s = fire_due(g, now);
    bool searching = false; /* the nightly searches' builds first: the target is red */
    if (keel_ok(s))
        s = gate_search_turn(g, "nightly", queue_busy, paused, &searching);
    unsigned running = gate_nightly_running(g);
    if (queue_busy && running > 0) /* the queue first: they are built again later */
        gate_level_jobs_cancel(g, gate_nightly_job);
    unsigned slots = gate_slots(g->tip_cfg);
    bool found = false;
    gate_nightly_row r;
    while (keel_ok(s) && !queue_busy && !paused && !gate_stop_requested(g) &&
           gate_pool_outstanding(g->pool) < slots) {
        s = gate_store_nightly_next(g->store, g->target, &r, &found);
        if (!keel_ok(s) || !found)
            break;
        s = start_one(g, &r);
        running++;
    }
    if (keel_ok(s) && !found && !queue_busy && !paused)
        s = gate_store_nightly_next(g->store, g->target, &r, &found); /* waiting for a slot? */
    *busy = running > 0 || (found && !paused) || searching;
    return s;
}

/*
 * Events, once per failure (not per failing build): nightly-failed when a
 * configuration whose last nightly result was not a failure fails,
 * nightly-passed when a failed one passes again.
 */
static keel_status record_events(gate *g, const nightly_job *nj, bool failed, const char *was)
{
    const gate_job_run *j = &nj->level.run;
    if (failed == (strcmp(was, "failed") == 0))
        return KEEL_OK;
    char reason[GATE_REASON_MAX];
    gate_fmt(reason, sizeof(reason),
             "configuration '%s' %s its nightly build of %.12s (exit %d, "
             "log %s)",
             j->config, failed ? "failed" : "passed", nj->commit, j->exit_code, j->log);
    char detail[3 * GATE_REASON_MAX];
    gate_fmt(detail, sizeof(detail),
             "{\"commit\":\"%s\",\"config\":\"%s\",\"level\":\"nightly\",\"exit\":%d,\"reason\":",
             nj->commit, j->config, j->exit_code);
    size_t len = gate_json_str(detail, sizeof(detail), strlen(detail), reason);
    if (len + 2 <= sizeof(detail)) /* else not JSON: the store records it as invalid */
        gate_fmt(detail + len, sizeof(detail) - len, "}");
    keel_status s = gate_store_event(g->store, gate_now_s(),
                                     failed ? "nightly-failed" : "nightly-passed", 0, detail);
    if (keel_ok(s))
        gate_notify(g); /* the hook hears of it */
    return s;
}

keel_status gate_nightly_job_done(gate *g, gate_job_run *j)
{
    const nightly_job *nj = (const nightly_job *)j;
    bool no_result = j->error[0] != '\0' || j->result == GATE_EXEC_CANCELLED || g->stopping;
    bool failed = j->result != GATE_EXEC_PASSED;
    keel_status s;
    if (no_result) {
        bool superseded = false; /* a newer run ended meanwhile: not built again */
        s = gate_store_nightly_unstart(g->store, g->target, j->config, nj->due_at, &superseded);
        if (keel_ok(s))
            gate_say(g, "nightly: %.12s '%s' %s: %s\n", nj->commit, j->config,
                     j->error[0] != '\0' ? j->error : "cancelled",
                     superseded ? "a newer run ended since, not run" : "to build again");
    } else {
        char was[GATE_POST_STATE_MAX];
        s = gate_store_nightly_finish(g->store, g->target, j->config, nj->due_at, failed, j->log,
                                      gate_now_s(), was);
        CRASH_POINT(nightly_after_result); /* its run done, other builds running */
        bool newest = true; /* an older run's result leaves the configuration's state as it is */
        if (keel_ok(s))
            s = gate_store_nightly_is_newest(g->store, g->target, j->config, nj->due_at, &newest);
        if (keel_ok(s) && newest)
            s = record_events(g, nj, failed, was);
        if (keel_ok(s))
            gate_say(g, "nightly: %.12s '%s' %s (exit %d, %.1f s)\n", nj->commit, j->config,
                     gate_exec_result_name(j->result), j->exit_code,
                     (double)j->elapsed_ms / 1000.0);
        const gate_config *cfg = nj->level.cfg;
        const gate_matrix_config *m = NULL;
        for (size_t i = 0; cfg != NULL && i < cfg->nconfigs && m == NULL; i++)
            if (strcmp(cfg->configs[i].name, j->config) == 0)
                m = &cfg->configs[i];
        /* an older run's failure after a newer result that was not one (runs end in any order)
           is history: a search started then searched again what the newer run's failure's
           search verified (`was` is the newest result, not the one before this run) */
        if (keel_ok(s) && failed && m != NULL && !newest && strcmp(was, "failed") != 0 &&
            m->tier <= 2)
            gate_say(g,
                     "culprit: '%s' failed at %.12s at level nightly, older than its newest "
                     "result (%s): no search\n",
                     j->config, nj->commit, was);
        else if (keel_ok(s) && failed && m != NULL) /* a new failure: its culprit searched for */
            s = gate_search_nightly_failed(g, nj->commit, j->config, m->tier, was, nj->due_at);
    }
    gate_level_job_free(g, j);
    return s;
}

keel_status gate_nightly_now(gate *g, const gate_config *cfg, const char *commit, long long now,
                             size_t *n)
{
    *n = 0;
    keel_status s = KEEL_OK;
    for (size_t i = 0; cfg != NULL && keel_ok(s) && i < cfg->nconfigs; i++)
        if (gate_config_at(&cfg->configs[i], GATE_LEVEL_NIGHTLY)) {
            s = gate_store_nightly_run_now(g->store, g->target, cfg->configs[i].name, commit, now);
            *n += keel_ok(s);
        }
    if (keel_ok(s) && *n == 0)
        s = KEEL_ERR(KEEL_E_NOTFOUND,
                     "'%s' has no configuration at level nightly ('levels = nightly' in its "
                     ".keel/gate.conf)",
                     g->target);
    return s;
}
