/*
 * gate_decide.c - the gatekeeper loop's decisions (gate_loop.h): the
 * scheduler's land, reject, flaky, cancel and reopen carried out on the repository
 * and the store, and the changes decided without a build (a configuration
 * that does not load, a change that does not merge).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ccache.h"
#include "exec.h"
#include "gate_loop.h"
#include "signature.h"
#include "store.h"
#include "text.h"

/*
 * A verdict on `change` of candidate c made without building it: a conflict
 * with the target, or a change bad in itself.  The change ends in `state`
 * with `reason`, the candidate closes, and the rest of it is rebuilt without
 * the change (CANCEL_BUILD for this one).
 */
static keel_status decide_unbuilt(gate *g, gate_cand *c, long long change, gate_change_state state,
                                  const char *reason)
{
    bool conflict = state == GATE_CHANGE_CONFLICT;
    keel_status s = gate_store_set_state(g->store, change, state, reason, gate_now_s());
    if (KEEL_IS(s, KEEL_E_STATE)) { /* cancelled meanwhile: it stays so */
        keel_status_free(s);
        s = gate_close_cand(g, c, "abandoned");
        return keel_ok(s) ? gate_withdraw(g, change) : s;
    }
    if (keel_ok(s))
        s = gate_close_cand(g, c, conflict ? "conflict" : "failed");
    if (!keel_ok(s))
        return s;
    if (conflict)
        g->stats.conflicts++;
    else
        g->stats.rejected++;
    gate_change ch;
    s = gate_store_get(g->store, change, &ch);
    if (!keel_ok(s))
        return s;
    gate_say(g, "%s: change %lld '%s'%s%s\n", conflict ? "conflict" : "rejected", change, ch.branch,
             conflict ? " " : ": ", reason);
    gate_notify(g);
    gate_drop_active(g, change);
    s = gate_sched_cancel(g->sched, change); /* CANCEL_BUILD for this one, rebuild the rest */
    if (KEEL_IS(s, KEEL_E_NOTFOUND)) {       /* the scheduler had already let it go */
        keel_status_free(s);
        s = KEEL_OK;
    }
    return s;
}

/*
 * A change of candidate c is bad in itself (GATE_E_BAD_CHANGE from
 * gate_merge: its head not a commit, a tree entry git refuses, its own
 * objects missing): rejected at once with the reason, whatever it was merged
 * onto and whatever `retries` is (a retry would fail the same way), and the
 * rest of its candidate rebuilt without it, as after a conflict.
 */
keel_status gate_reject_bad_change(gate *g, gate_cand *c, keel_status err)
{
    unsigned long long index = 0;
    if (!keel_status_get_uint(err, "index", &index) || index >= c->n)
        return KEEL_CONTEXT(err, "a bad change of candidate %lld that is none of its %zu", c->sid,
                            c->n);
    char reason[GATE_REASON_MAX];
    gate_fmt(reason, sizeof(reason), "%s", keel_status_message(err));
    keel_status_free(err);
    return decide_unbuilt(g, c, c->changes[index], GATE_CHANGE_REJECTED, reason);
}

/*
 * A configuration that does not load because of the gate's own trouble
 * (memory, I/O, reading the repository), not because of what the tree holds.
 */
bool gate_config_fault_is_gates(keel_status s)
{
    static const keel_code gates[] = {KEEL_E_NOMEM, KEEL_E_INJECTED, KEEL_E_IO,
                                      KEEL_E_SYS,   KEEL_E_INTERNAL, KEEL_E_BUSY,
                                      KEEL_E_STATE, KEEL_E_TIMEOUT,  KEEL_E_CANCELLED};
    for (size_t i = 0; i < sizeof(gates) / sizeof(gates[0]); i++)
        if (KEEL_HAS(s, gates[i]))
            return true;
    return KEEL_HAS(s, KEEL_E_FULL) && keel_status_get_str(s, "module") != NULL; /* a quota */
}

/*
 * The merged tree's .keel/gate.conf does not load because of what it holds
 * (the parser's message names the file, line and key; or there is none):
 * the candidate fails with that message as its reason, kept (the same tree
 * fails the same way: no retry), and `log` shows it as the output of a job
 * "gate.conf" that failed.
 */
keel_status gate_config_failed(gate *g, gate_cand *c, keel_status err)
{
    char why[GATE_REASON_MAX];
    gate_status_line(err, why, sizeof(why)); /* the whole chain: file, line, key and cause */
    gate_fmt(c->failures, sizeof(c->failures), "configuration: %s", why);
    long long jid = 0;
    char log[GATE_PATH_MAX + 64];
    keel_status s = gate_store_job_start(g->store, c->store_id, "gate.conf", (int)c->attempt,
                                         gate_now_s(), &jid);
    if (keel_ok(s)) {
        gate_fmt(log, sizeof(log), "%s/logs/job-%lld.log", g->work, jid);
        char chain[4096];
        (void)keel_status_format(err, chain, sizeof(chain));
        FILE *f = fopen(log, "w");
        if (f == NULL)
            s = KEEL_ERR_SYS(errno, "cannot write the log '%s'", log);
        else {
            bool wrote = fprintf(f, "keel-gate: .keel/gate.conf of %s does not load: %s\n%s\n",
                                 c->merge, why, chain) >= 0;
            int e = errno;
            if (fclose(f) != 0 || !wrote) /* closed whatever the write did */
                s = KEEL_ERR_SYS(wrote ? errno : e, "cannot write the log '%s'", log);
        }
    }
    gate_job_timing none = {0, 0.0, 0.0}; /* no step ran */
    if (keel_ok(s))
        s = gate_store_job_finish(g->store, jid, "failed", -1, log, &none, gate_now_s());
    keel_status_free(err);
    if (keel_ok(s))
        gate_say(g, "build: candidate %lld: %s\n", c->store_id, c->failures);
    return s;
}

/*
 * A change does not merge onto the candidate's base.  The reason names what
 * it conflicts with (gate_conflict_with): on the tip, the landed change or
 * the commit pushed directly; in a build, a change ahead of it too.
 */
keel_status gate_merge_conflict(gate *g, gate_cand *c, keel_status err)
{
    unsigned long long index = 0;
    (void)keel_status_get_uint(err, "index", &index);
    const char *paths = keel_status_get_str(err, "paths");
    if (paths != NULL && paths != c->conflict_paths)
        (void)snprintf(c->conflict_paths, sizeof(c->conflict_paths), "%s", paths);
    char onto[GATE_HEX];
    const char *at = keel_status_get_str(err, "onto");
    gate_fmt(onto, sizeof(onto), "%s", at != NULL ? at : c->base);
    keel_status_free(err);
    c->conflict_at = (size_t)index;
    gate_change ch;
    keel_status s = gate_store_get(g->store, c->changes[index], &ch);
    if (!keel_ok(s))
        return s;
    /*
     * A verdict only when the change does not merge onto the target itself:
     * alone on the tip.  Against a candidate still under test, or against the
     * changes before it in a batch, it is a failed build, which the scheduler
     * isolates like any other until the change is alone on the tip.
     */
    bool verdict = gate_on_tip(g, c->base);
    if (verdict && c->n > 1) {
        char merge[GATE_HEX];
        const char *head[1] = {ch.head};
        s = gate_merge(g->repo, c->base, head, 1, merge);
        if (keel_status_is(s, &gate_codes, GATE_E_BAD_CHANGE)) {
            s = keel_status_with_uint(s, "index", index); /* its index in c, not in the retry */
            return gate_reject_bad_change(g, c, s);
        }
        verdict = keel_status_is(s, &gate_codes, GATE_E_CONFLICT);
        if (!keel_ok(s) && !verdict)
            return s;
        keel_status_free(s);
    }
    char with[GATE_REASON_MAX];
    s = gate_conflict_with(g, verdict ? g->tip : onto, ch.head, with, sizeof(with));
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "building candidate %lld", c->sid);
    char reason[GATE_REASON_MAX];
    if (!verdict) {
        c->merge_failed = true;
        c->ever_failed = true;
        gate_fmt(c->failures, sizeof(c->failures), "change %lld does not merge onto %.12s: %s",
                 c->changes[index], onto, with);
        gate_say(g, "build: candidate %lld: change %lld '%s' %s: isolated like a failure\n", c->sid,
                 c->changes[index], ch.branch, with);
        return gate_sched_result(g->sched, c->sid, false);
    }
    gate_fmt(reason, sizeof(reason), "does not merge onto '%s' at %.12s: %s", g->target, g->tip,
             with);
    return decide_unbuilt(g, c, c->changes[index], GATE_CHANGE_CONFLICT, reason);
}

static keel_status land(gate *g, const gate_sched_decision *d, gate_cand *c)
{
    if (!gate_on_tip(g, c->base))
        return KEEL_ERR(KEEL_E_INTERNAL, "candidate %lld was built on %.12s, the tip is %.12s",
                        c->store_id, c->base, g->tip);
    char message[128];
    (void)snprintf(message, sizeof(message), "keel-gate: land candidate %lld", c->store_id);
    gate_point_before_cas();
    for (size_t i = 0; i < d->n; i++) {
        gate_change ch;
        keel_status gs = gate_store_get(g->store, d->changes[i], &ch);
        if (!keel_ok(gs))
            return gs;
        if (ch.state == GATE_CHANGE_CANCELLED) {
            /* withdrawn after it was tested: it must not land; the rest is built again */
            gate_say(g,
                     "change %lld ('%s') was cancelled before its candidate %lld landed: "
                     "building the others again without it\n",
                     ch.id, ch.branch, c->store_id);
            return gate_restart(g);
        }
    }
    char landing[GATE_HEX]; /* its merges again, saying what they are (landing.c) */
    keel_status s = gate_land_relabel(g, c, landing);
    if (keel_ok(s))
        s = gate_branch_cas(g->repo, g->target, g->tip, landing, message);
    if (keel_status_is(s, &gate_codes, GATE_E_MOVED)) {
        g->stats.moved++;
        gate_say(g, "moved: %s; nothing overwritten, rebuilding on the new tip\n",
                 keel_status_message(s));
        keel_status_free(s);
        s = gate_store_event(g->store, gate_now_s(), "moved", 0, "{}");
        return keel_ok(s) ? gate_restart(g) : s;
    }
    if (!keel_ok(s))
        return s;
    gate_point_after_cas();
    s = gate_store_land(g->store, c->store_id, gate_now_s());
    if (!keel_ok(s))
        return s;
    c->closed = true;
    gate_ccache_merged merged; /* its jobs' compiler cache layers join the landed ones */
    keel_status cs = gate_ccache_land(g->work, g->tip_cfg, c->store_id, &merged);
    if (!keel_ok(cs))
        gate_say(g, "compiler cache: candidate %lld's entries not all merged: %s\n", c->store_id,
                 keel_status_message(cs));
    keel_status_ignore(cs, "a cache that misses what it could hold: said, nothing else lost");
    (void)snprintf(g->tip_built, sizeof(g->tip_built), "%s", c->merge); /* what stacks on it */
    (void)snprintf(c->merge, sizeof(c->merge), "%s", landing);
    (void)snprintf(g->tip, sizeof(g->tip), "%s", c->merge);
    for (size_t i = 0; i < d->n; i++) {
        long long id = d->changes[i];
        gate_change ch;
        s = gate_store_get(g->store, id, &ch);
        if (!keel_ok(s))
            return s;
        g->stats.landed++;
        gate_drop_active(g, id);
        gate_say(g, "landed: change %lld '%s' (%.12s) in %.12s\n", id, ch.branch, ch.head,
                 c->merge);
        gate_notify(g);
    }
    /*
     * A landing that changed the target's configuration: its settings (the
     * sandbox, limits, strategy, slots, the hook) hold from now on, for what
     * is in flight too: everything after it is built again under them.
     */
    unsigned long long id = 0;
    s = gate_config_id(g, g->tip, &id);
    if (!keel_ok(s) || id == g->tip_cfg_id)
        return s;
    gate_say(g,
             "the configuration of '%s' changed with this landing: what is in flight is built "
             "again under it\n",
             g->target);
    return gate_restart(g);
}

/*
 * The scheduler rejects a change whose candidate failed to merge: it was never
 * built.  Merged alone onto today's tip, it either does not merge (the
 * verdict: a conflict) or does (it conflicted only with changes before it
 * that did not land): then it goes back to the scheduler, to be built.
 * *done: it was one of those (nothing is left to do).
 */
static keel_status reject_unbuilt(gate *g, gate_cand *c, long long change, bool *done)
{
    *done = false;
    if (!c->merge_failed)
        return KEEL_OK;
    gate_change ch;
    keel_status s = gate_store_get(g->store, change, &ch);
    if (keel_ok(s)) {
        char merge[GATE_HEX];
        const char *head[1] = {ch.head};
        s = gate_merge(g->repo, g->tip, head, 1, merge);
    }
    if (keel_ok(s)) {
        *done = true;
        gate_say(g,
                 "change %lld '%s' merges onto '%s' at %.12s: it conflicted only with changes "
                 "before it, which did not land; queued again\n",
                 change, ch.branch, g->target, g->tip);
        s = gate_close_cand(g, c, "failed");
        return keel_ok(s) ? gate_sched_enqueue(g->sched, change) : s;
    }
    if (!keel_status_is(s, &gate_codes, GATE_E_CONFLICT))
        return s;
    *done = true;
    keel_status_free(s);
    char with[GATE_REASON_MAX], reason[GATE_REASON_MAX];
    s = gate_conflict_with(g, g->tip, ch.head, with, sizeof(with));
    if (!keel_ok(s))
        return s;
    gate_fmt(reason, sizeof(reason), "does not merge onto '%s' at %.12s: %s", g->target, g->tip,
             with);
    return decide_unbuilt(g, c, change, GATE_CHANGE_CONFLICT, reason);
}

/*
 * A rejection's reason, from the scheduler's evidence: the configuration that
 * failed the change alone on the tip for good (its runs, why no more, its
 * last failure's log), after the batch it was isolated from when bisection
 * blamed it.  A failure without a configuration (the merged tree's
 * .keel/gate.conf does not parse; a merge) keeps the candidate's own text.
 */
static void reject_reason(gate *g, const gate_cand *c, const gate_sched_decision *d, char *out,
                          size_t size)
{
    const gate_sched_verdict *v = &d->decided;
    size_t k = 0;
    while (c->cfg != NULL && k < c->cfg->nconfigs &&
           strcmp(c->cfg->configs[k].name, v->config) != 0)
        k++;
    const gate_cand_fail *f =
        c->fails != NULL && c->cfg != NULL && k < c->cfg->nconfigs ? &c->fails[k] : NULL;
    if (v->config[0] == '\0' || f == NULL) {
        gate_fmt(out, size, "%s",
                 c->failures[0] != '\0' ? c->failures : "a required configuration failed");
        return;
    }
    char batch[GATE_SCHED_NAME_MAX + 128] = "";
    if (d->batch_n > 1 && d->batch.config[0] != '\0')
        gate_fmt(batch, sizeof(batch),
                 "isolated by bisection from a batch of %zu (which failed on '%s', %u of %u runs), "
                 "then ",
                 d->batch_n, d->batch.config, d->batch.failures, d->batch.runs);
    else if (d->batch_n > 1)
        gate_fmt(batch, sizeof(batch), "isolated by bisection from a batch of %zu, then ",
                 d->batch_n);
    static const char *const why[] = {
        "",
        "",
        ", the same way twice (not a flake: not run again)",
        ", each time differently or as it flaked before (suspect flakes, run again)",
        "",
        ", the same way each time though a tree holding it passed (suspect flakes, run again)"};
    gate_fmt(out, size,
             "%sconfiguration '%s' %s (exit %d, log %s/logs/job-%lld.log), alone on the tip in %u "
             "of %u run%s%s%s%s",
             batch, v->config, f->result, f->exit_code, g->work, v->job, v->failures, v->runs,
             v->runs == 1 ? "" : "s",
             (unsigned)v->why < sizeof(why) / sizeof(why[0]) ? why[v->why] : "",
             f->reason[0] != '\0' ? ": " : "", f->reason);
}

/*
 * A REJECT the scheduler watches (d->signature: its ending) is kept for the
 * next runs (gate_store_watch_put), so that one of them may take it back.  A
 * write that fails loses only that (this run's scheduler still watches it):
 * said, not the gate's failure.
 */
static void watch_rejection(gate *g, const gate_sched_decision *d)
{
    if (d->signature == 0)
        return;
    gate_watched_rejection w = {d->change,      d->decided.config, d->signature,
                                d->decided.job, d->decided.runs,   d->decided.failures};
    keel_status s =
        gate_store_watch_put(g->store, g->target, &w, GATE_SCHED_REOPEN_WATCH, gate_now_s());
    if (!keel_ok(s)) {
        char msg[GATE_REASON_MAX];
        gate_status_line(s, msg, sizeof(msg));
        keel_status_free(s);
        gate_say(g, "warning: a later run will not take back change %lld's rejection: %s\n",
                 d->change, msg);
    }
}

/*
 * REOPEN: change d->change was rejected on an ending (two failures alike)
 * that d->candidate has since shown to be a flake's.  The store queues it
 * again (unless it was submitted anew since, or is no longer rejected: then
 * it is left as it is and said), with the evidence as its reason and in a
 * "reopened" event, and the scheduler takes it.
 */
static keel_status reopen(gate *g, const gate_sched_decision *d)
{
    const gate_cand *c = gate_find_cand(g, d->candidate);
    long long cand = c != NULL ? c->store_id : 0;
    char reason[GATE_REASON_MAX];
    gate_fmt(reason, sizeof(reason),
             "reopened: it was rejected on configuration '%s' failing alone on the tip the same "
             "way twice (log %s/logs/job-%lld.log); that ending is a flake's: configuration '%s' "
             "failed with it on candidate %lld (log %s/logs/job-%lld.log), then passed on the same "
             "tree; queued again",
             d->rejected.config, g->work, d->rejected.job, d->decided.config, cand, g->work,
             d->decided.job);
    gate_change was; /* as rejected: its reason, for a hook that hears of it after this */
    keel_status s = gate_store_get(g->store, d->change, &was);
    if (!keel_ok(s))
        return s;
    char
        detail[GATE_JSON_ROOM(GATE_SCHED_NAME_MAX) * 2 + GATE_JSON_ROOM(GATE_REASON_MAX) * 2 + 160];
    size_t n = (size_t)snprintf(detail, sizeof(detail),
                                "{\"signature\":\"%016llx\",\"config\":", d->signature);
    n = gate_json_str(detail, sizeof(detail), n, d->rejected.config);
    n += (size_t)snprintf(
        detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0,
        ",\"job\":%lld,\"flaked\":{\"candidate\":%lld,\"config\":", d->rejected.job, cand);
    n = gate_json_str(detail, sizeof(detail), n, d->decided.config);
    n += (size_t)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0,
                          ",\"job\":%lld},\"reason\":", d->decided.job);
    n = gate_json_str(detail, sizeof(detail), n, reason);
    n += (size_t)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0, ",\"was\":");
    n = gate_json_str(detail, sizeof(detail), n, was.reason);
    (void)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0, "}");
    s = gate_store_reopen(g->store, d->change, reason, detail, gate_now_s());
    if (KEEL_IS(s, KEEL_E_STATE)) {
        char msg[GATE_REASON_MAX];
        gate_status_line(s, msg, sizeof(msg));
        keel_status_free(s);
        gate_say(g, "not reopened: change %lld, whose rejection's ending is a flake's: %s\n",
                 d->change, msg);
        return KEEL_OK;
    }
    if (!keel_ok(s))
        return s;
    g->stats.reopened++;
    gate_say(g, "reopened: change %lld '%s': %s\n", d->change, was.branch, reason);
    gate_notify(g);
    return gate_take_change(g, d->change, false);
}

keel_status gate_decide(gate *g, const gate_sched_decision *d)
{
    if (d->kind == GATE_SCHED_REOPEN)
        return reopen(g, d); /* its candidate is evidence only */
    gate_cand *c = gate_find_cand(g, d->candidate);
    if (c == NULL)
        return KEEL_ERR(KEEL_E_INTERNAL, "%s decision for unknown candidate %lld",
                        gate_sched_kind_name(d->kind), d->candidate);
    keel_status s;
    switch (d->kind) {
    case GATE_SCHED_LAND:
        return land(g, d, c);
    case GATE_SCHED_REJECT: {
        bool unbuilt = false;
        s = reject_unbuilt(g, c, d->change, &unbuilt);
        if (!keel_ok(s) || unbuilt)
            return s;
        char reason[GATE_REASON_MAX];
        reject_reason(g, c, d, reason, sizeof(reason));
        s = gate_store_set_state(g->store, d->change, GATE_CHANGE_REJECTED, reason, gate_now_s());
        bool ended = KEEL_IS(s, KEEL_E_STATE); /* cancelled meanwhile: it stays so */
        if (ended) {
            keel_status_free(s);
            s = KEEL_OK;
        }
        if (keel_ok(s))
            s = gate_close_cand(g, c, "failed");
        if (keel_ok(s) && ended)
            gate_drop_active(g, d->change);
        if (keel_ok(s) && !ended) {
            g->stats.rejected++;
            gate_drop_active(g, d->change);
            gate_change ch;
            keel_status gs = gate_store_get(g->store, d->change, &ch);
            if (!keel_ok(gs)) {
                keel_status_ignore(gs, "only for the message");
                ch.branch[0] = '\0';
            }
            gate_say(g, "rejected: change %lld '%s': %s\n", d->change, ch.branch, reason);
            gate_notify(g);
            watch_rejection(g, d);
        }
        return s;
    }
    case GATE_SCHED_FLAKY: {
        char detail[GATE_JSON_ROOM(GATE_REASON_MAX) + 64 + GATE_HEX];
        size_t n = (size_t)snprintf(detail, sizeof(detail),
                                    "{\"candidate\":%lld,\"merge\":\"%s\",\"failed\":", c->store_id,
                                    c->merge); /* the tested merge: a landing relabels */
        n = gate_json_str(detail, sizeof(detail), n, c->first_failures);
        (void)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0, "}");
        g->stats.flakes++;
        s = gate_store_event(g->store, gate_now_s(), "flake", c->changes[0], detail);
        gate_say(g,
                 "flaky: candidate %lld failed, then passed: configuration '%s' failed %u of %u "
                 "runs: %s\n",
                 c->store_id, d->decided.config, d->decided.failures, d->decided.runs,
                 c->first_failures);
        gate_notify(g);
        return s;
    }
    case GATE_SCHED_CANCEL_BUILD:
        c->cancelled = true;
        gate_cancel_jobs(g, c);
        return gate_close_cand(g, c, "abandoned");
    case GATE_SCHED_REOPEN:
        break; /* above */
    }
    return KEEL_ERR(KEEL_E_INTERNAL, "unknown decision %d", (int)d->kind);
}
