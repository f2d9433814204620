/*
 * backout.c - backing out a verified culprit (backout.h): the facts gathered,
 * the guard rails asked (backout_policy.h), the revert made and submitted
 * (gate/git/revert.h), every step in the store first (store_backout.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "backout.h"

#include <stdio.h>
#include <string.h>

#include "backout_policy.h"
#include "revert.h"
#include "sandbox.h"
#include "store_nightly.h"

enum { DAY_S = 24 * 3600 };

/* What the target's configuration says of backing out `config`'s culprits. */
typedef struct backout_settings {
    bool backout;
    unsigned budget, near;
    long long max_age_s, fix_s;
} backout_settings;

static void settings_of(const gate_config *cfg, const char *config, backout_settings *out)
{
    out->backout = cfg->backout;
    out->budget = cfg->backout_budget;
    out->near = cfg->revert_near;
    out->max_age_s = cfg->backout_max_age_s;
    out->fix_s = cfg->tier2_fix_s;
    for (size_t i = 0; i < cfg->nconfigs; i++)
        if (strcmp(cfg->configs[i].name, config) == 0 && cfg->configs[i].backout >= 0)
            out->backout = cfg->configs[i].backout != 0;
}

/* The target's configuration at `head` (never the culprit's: a change cannot loosen the rails). */
static keel_status target_settings(gate *g, const char *head, const char *config,
                                   backout_settings *out)
{
    gate_config *cfg = NULL;
    keel_status s = gate_load_config(g, head, &cfg);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the target's configuration for the backout");
    settings_of(cfg, config, out);
    gate_config_free(cfg);
    return KEEL_OK;
}

/* "name <email>" */
static void person(char *buf, size_t size, const char *name, const char *email)
{
    gate_fmt(buf, size, "%s <%s>", name, email);
}

/* Append ,"key":"value" (JSON-escaped) to detail at *len. */
static void json_field(char *detail, size_t size, size_t *len, const char *key, const char *value)
{
    if (*len >= size)
        return;
    int n = snprintf(detail + *len, size - *len, ",\"%s\":", key);
    if (n < 0 || (size_t)n >= size - *len) {
        *len = size;
        return;
    }
    *len = gate_json_str(detail, size, *len + (size_t)n, value);
}

/*
 * An event's detail: the culprit, the configuration, the rail and reason, the
 * revert and its change, and the people told: author and committer, each
 * once, never more than `blame_max` (the target's [gate] blame-max).
 */
static void event_detail(const gate_backout_row *r, unsigned blame_max, char *detail, size_t size)
{
    size_t len = (size_t)snprintf(detail, size, "{\"tier\":%u,\"change\":%lld", r->tier, r->change);
    json_field(detail, size, &len, "culprit", r->culprit);
    json_field(detail, size, &len, "config", r->config);
    json_field(detail, size, &len, "subject", r->subject);
    json_field(detail, size, &len, "author", r->author);
    json_field(detail, size, &len, "committer", r->committer);
    json_field(detail, size, &len, "state", r->state);
    json_field(detail, size, &len, "rail", r->rail);
    json_field(detail, size, &len, "reason", r->reason);
    json_field(detail, size, &len, "revert", r->revert);
    json_field(detail, size, &len, "evidence", r->evidence);
    json_field(detail, size, &len, "log", r->log);
    const char *blame[2] = {r->author, r->committer};
    size_t nb = strcmp(r->author, r->committer) == 0 ? 1 : 2;
    if (nb > blame_max)
        nb = blame_max;
    if (len < size) {
        int n = snprintf(detail + len, size - len, ",\"blame\":[");
        len = n < 0 || (size_t)n >= size - len ? size : len + (size_t)n;
    }
    for (size_t i = 0; i < nb && len < size; i++) {
        if (i > 0 && len + 1 < size)
            detail[len++] = ',';
        len = gate_json_str(detail, size, len, blame[i]);
    }
    if (len + 3 <= size)
        gate_fmt(detail + len, size - len, "]}");
    else if (size > 0)
        gate_fmt(detail, size, "{}"); /* cut: still JSON */
}

/* Record r in its state, with `event` (NULL: none), and wake the notify hook. */
static keel_status put(gate *g, gate_backout_row *r, long long now, const char *event)
{
    char detail[24 * GATE_BACKOUT_EVIDENCE_MAX]; /* every field escaped at its longest */
    unsigned blame_max = GATE_BACKOUT_BLAME_MAX;
    if (event != NULL) { /* the target tip's [gate] blame-max (the running gate's, else read) */
        gate_config *own = NULL;
        const gate_config *cfg = gate_tip_config(g, &own);
        if (cfg != NULL && cfg->blame_max > 0)
            blame_max = cfg->blame_max;
        gate_config_free(own);
    }
    event_detail(r, blame_max, detail, sizeof(detail));
    keel_status s = gate_store_backout_put(g->store, r, now, event, detail);
    if (keel_ok(s) && event != NULL) {
        gate_say(g, "backout: %.12s ('%s'): %s%s%s%s\n", r->culprit, r->config, event,
                 r->rail[0] != '\0' ? " (" : "", r->rail, r->rail[0] != '\0' ? ")" : "");
        gate_notify(g);
    }
    return s;
}

static void branch_of(const char *culprit, char *buf, size_t size)
{
    gate_fmt(buf, size, "keel-gate/backout/%.12s", culprit);
}

/* The revert's message: what it reverts, why, the evidence, the log, its trailer. */
static void revert_message(const gate_backout_row *r, char *buf, size_t size)
{
    gate_fmt(buf, size,
             "Revert \"%s\"\n\nThis reverts commit %s.\n\nConfiguration '%s' (tier %u) fails "
             "since this commit; its parent passes.\nEvidence: %s\nLog: %s\n\nKeel-Backout: %s\n",
             r->subject, r->culprit, r->config, r->tier, r->evidence, r->log, r->culprit);
}

/*
 * The revert of row r (intended) made, its branch set and submitted; or what
 * a killed gate made of it found: a revert on the target, the change of its
 * branch.  Then queued (or landed, or refused when it no longer applies).
 */
static keel_status carry_out(gate *g, gate_backout_row *r, const char *head, unsigned mainline,
                             long long now)
{
    char found[GATE_HEX];
    keel_status s = gate_revert_find(g->repo, head, r->culprit, found);
    if (keel_ok(s) && found[0] != '\0') {
        gate_fmt(r->state, sizeof(r->state), "landed");
        gate_fmt(r->revert, sizeof(r->revert), "%s", found);
        gate_fmt(r->reason, sizeof(r->reason), "reverted on the target by %.12s", found);
        r->landed_at = now;
        return put(g, r, now, "backout-landed");
    }
    branch_of(r->culprit, r->branch, sizeof(r->branch));
    long long id = 0;
    if (keel_ok(s))
        s = gate_store_backout_change_of(g->store, g->target, r->branch, &id);
    if (keel_ok(s) && id == 0) { /* not submitted yet: made (again: the same commit) and queued */
        char message[2 * GATE_BACKOUT_EVIDENCE_MAX + 4 * GATE_BACKOUT_TEXT_MAX];
        revert_message(r, message, sizeof(message));
        s = gate_revert_make(g->repo, r->culprit, mainline, head, message, r->found_at, r->revert);
        if (KEEL_IS(s, KEEL_E_CONFLICT)) {
            gate_status_line(s, r->reason, sizeof(r->reason));
            keel_status_free(s);
            gate_fmt(r->state, sizeof(r->state), "refused");
            gate_fmt(r->rail, sizeof(r->rail), "dependent");
            return put(g, r, now, "backout-refused");
        }
        if (keel_ok(s))
            s = gate_revert_branch(g->repo, r->branch, r->revert);
        CRASH_POINT(backout_after_branch);
        if (keel_ok(s))
            s = gate_submit_at(g, r->branch, r->revert, GATE_BACKOUT_PRIORITY, &id);
        CRASH_POINT(backout_after_submit);
    }
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "backing out %.12s", r->culprit);
    r->change = id;
    gate_fmt(r->state, sizeof(r->state), "queued");
    gate_fmt(r->reason, sizeof(r->reason), "revert %.12s queued as change %lld at top priority",
             r->revert, id);
    return put(g, r, now, "backout-queued");
}

/* The facts of row r on the target now, the rails' decision, and what follows from it. */
static keel_status decide(gate *g, gate_backout_row *r, long long now)
{
    char head[GATE_HEX];
    keel_status s = gate_branch_head(g->repo, g->target, head);
    backout_settings set = {false, 0, GATE_REVERT_NEAR, 0, 0};
    if (keel_ok(s))
        s = target_settings(g, head, r->config, &set);
    gate_backout_facts f;
    memset(&f, 0, sizeof(f));
    gate_revert_facts rf;
    memset(&rf, 0, sizeof(rf));
    if (keel_ok(s))
        s = gate_revert_examine(g->repo, r->culprit, r->parent, head, set.near, &rf);
    long long reset_at = 0; /* the budget counts from a person's reset, within 24 h */
    if (keel_ok(s))
        s = gate_store_backout_breaker(g->store, g->target, &f.breaker_open, NULL, &reset_at, NULL,
                                       0);
    if (keel_ok(s))
        s = gate_store_backout_counts(g->store, g->target,
                                      reset_at >= now - DAY_S ? reset_at + 1 : now - DAY_S,
                                      &f.created_24h, &f.landed_24h);
    bool red = false;
    if (keel_ok(s))
        s = gate_store_backout_green(g->store, g->target, r->config, &f.target_green, &red);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "deciding the backout of %.12s", r->culprit);
    f.verified = r->verified;
    f.tier = r->tier;
    f.backout = set.backout;
    f.age_s = now - rf.time;
    f.max_age_s = set.max_age_s;
    f.is_revert = rf.is_revert;
    f.no_auto_revert = rf.no_auto_revert;
    f.applies = rf.applies || rf.undone; /* undone: its own rail */
    f.undone = rf.undone;
    f.later_touched = rf.later_touched;
    f.budget = set.budget;
    f.waited_s = now - r->found_at;
    f.fix_s = set.fix_s;
    gate_backout_decision d;
    gate_backout_policy_decide(&f, &d);
    const char *was = r->state[0] != '\0' ? r->state : "";
    char before[GATE_BACKOUT_STATE_MAX + 32];
    gate_fmt(before, sizeof(before), "%s/%s", was, r->rail);
    gate_fmt(r->rail, sizeof(r->rail), "%s", gate_backout_policy_rail_name(d.rail));
    if (d.rail == GATE_RAIL_DEPENDENT && rf.touched[0] != '\0')
        gate_fmt(r->reason, sizeof(r->reason), "%s (%s)", d.reason, rf.touched);
    else
        gate_fmt(r->reason, sizeof(r->reason), "%s", d.reason);
    const char *state = "refused", *event = "backout-refused";
    if (d.action == GATE_BACKOUT_PROPOSE) {
        state = "proposed";
        event = "backout-proposed";
    } else if (d.action == GATE_BACKOUT_WAIT) {
        state = "waiting";
        event = "backout-waiting";
    } else if (d.action == GATE_BACKOUT_REVERT) {
        state = "intended";
        event = NULL;
    }
    char after[sizeof(before)];
    gate_fmt(after, sizeof(after), "%s/%s", state, r->rail);
    gate_fmt(r->state, sizeof(r->state), "%s", state);
    if (strcmp(before, after) == 0 && d.action != GATE_BACKOUT_REVERT)
        event = NULL; /* told once per culprit: the same decision again says nothing new */
    s = put(g, r, now, event);
    if (keel_ok(s) && d.open_breaker) {
        char detail[GATE_REASON_MAX + 64];
        size_t len = (size_t)snprintf(detail, sizeof(detail), "{\"budget\":%u", set.budget);
        json_field(detail, sizeof(detail), &len, "reason", d.reason);
        if (len + 2 <= sizeof(detail))
            gate_fmt(detail + len, sizeof(detail) - len, "}");
        bool changed = false;
        s = gate_store_backout_set_breaker(g->store, g->target, true, d.reason, detail, now,
                                           &changed);
        if (keel_ok(s) && changed) {
            gate_say(g, "backout: the circuit breaker is open: %s\n", d.reason);
            gate_notify(g);
        }
    }
    if (keel_ok(s) && d.action == GATE_BACKOUT_REVERT) {
        CRASH_POINT(backout_after_intent);
        s = carry_out(g, r, head, rf.mainline, now);
    }
    return s;
}

/* An intent a kill left: carried on from what was made (never made twice). */
static keel_status resume(gate *g, gate_backout_row *r, long long now)
{
    char head[GATE_HEX];
    gate_revert_facts rf;
    memset(&rf, 0, sizeof(rf));
    keel_status s = gate_branch_head(g->repo, g->target, head);
    if (keel_ok(s))
        s = gate_revert_examine(g->repo, r->culprit, r->parent, head, GATE_REVERT_NEAR, &rf);
    if (keel_ok(s)) /* decided already: only the mainline is asked for */
        s = carry_out(g, r, head, rf.mainline, now);
    return s;
}

keel_status gate_backout_culprit_found(gate *g, const gate_backout_culprit *c, long long now)
{
    KEEL_ASSERT(g != NULL && c != NULL);
    if (strcmp(c->target, g->target) != 0)
        return KEEL_ERR(KEEL_E_INVAL, "culprit %.12s is of target '%s', not of '%s'", c->commit,
                        c->target, g->target);
    gate_backout_row r;
    bool found = false;
    keel_status s = gate_store_backout_get(g->store, g->target, c->commit, &r, &found);
    if (!keel_ok(s))
        return s;
    if (found && strcmp(r.state, "intended") == 0)
        return resume(g, &r, now);
    if (found && strcmp(r.state, "refused") != 0 && strcmp(r.state, "proposed") != 0 &&
        strcmp(r.state, "waiting") != 0) {
        gate_say(g, "backout: %.12s is %s already (change %lld): not backed out again\n", c->commit,
                 r.state, r.change);
        return KEEL_OK;
    }
    if (!found) {
        memset(&r, 0, sizeof(r));
        gate_fmt(r.target, sizeof(r.target), "%s", c->target);
        gate_fmt(r.culprit, sizeof(r.culprit), "%s", c->commit);
        gate_fmt(r.parent, sizeof(r.parent), "%s", c->parent);
        gate_fmt(r.config, sizeof(r.config), "%s", c->config);
        gate_fmt(r.subject, sizeof(r.subject), "%s", c->subject);
        person(r.author, sizeof(r.author), c->author_name, c->author_email);
        person(r.committer, sizeof(r.committer), c->committer_name, c->committer_email);
        r.culprit_change = c->change;
        r.found_at = c->found_at > 0 ? c->found_at : now; /* tier 2 waits from then */
    }
    r.tier = c->tier;
    r.verified = c->verified;
    gate_fmt(r.evidence, sizeof(r.evidence), "%s", c->evidence);
    gate_fmt(r.log, sizeof(r.log), "%s", c->log);
    return decide(g, &r, now);
}

/* A queued revert's change ended: landed, or rejected (its reason kept). */
static keel_status follow(gate *g, gate_backout_row *r, long long now)
{
    gate_change ch;
    keel_status s = gate_store_get(g->store, r->change, &ch);
    if (!keel_ok(s))
        return s;
    if (ch.state == GATE_CHANGE_LANDED) {
        gate_fmt(r->state, sizeof(r->state), "landed");
        gate_fmt(r->reason, sizeof(r->reason), "revert %.12s landed as change %lld", r->revert,
                 r->change);
        r->landed_at = now;
        return put(g, r, now, "backout-landed");
    }
    if (ch.state == GATE_CHANGE_QUEUED || ch.state == GATE_CHANGE_TESTING)
        return KEEL_OK;
    gate_fmt(r->state, sizeof(r->state), "rejected");
    gate_fmt(r->reason, sizeof(r->reason), "the gate did not land the revert (%s): %s",
             gate_change_state_name(ch.state), ch.reason);
    return put(g, r, now, "backout-rejected");
}

enum { TURN_MAX = 32 };

keel_status gate_backout_turn(gate *g, long long now)
{
    KEEL_ASSERT(g != NULL);
    static const char *const states[] = {"queued", "intended", "waiting"};
    size_t active = 0; /* most turns: none, and nothing more is read */
    keel_status s = gate_store_backout_active(g->store, g->target, &active);
    if (!keel_ok(s) || active == 0)
        return s;
    gate_backout_row *rows = NULL;
    void *mem = NULL;
    s = keel_heap_alloc(GATE_HEAP, TURN_MAX * sizeof(*rows), &mem);
    rows = (gate_backout_row *)mem;
    for (size_t k = 0; keel_ok(s) && k < sizeof(states) / sizeof(states[0]); k++) {
        size_t n = 0;
        s = gate_store_backout_list(g->store, g->target, states[k], NULL, rows, TURN_MAX, &n);
        for (size_t i = 0; keel_ok(s) && i < n; i++) {
            if (k == 0)
                s = follow(g, &rows[i], now);
            else if (k == 1)
                s = resume(g, &rows[i], now);
            else
                s = decide(g, &rows[i], now);
        }
    }
    keel_heap_free(GATE_HEAP, mem);
    return s;
}

keel_status gate_backout_reset(gate *g, bool *was_open)
{
    KEEL_ASSERT(g != NULL && was_open != NULL);
    keel_status s = gate_store_backout_set_breaker(g->store, g->target, false, NULL,
                                                   "{\"by\":\"keel-gate backouts --reset\"}",
                                                   gate_now_s(), was_open);
    if (keel_ok(s) && *was_open)
        gate_notify(g);
    return s;
}

/*
 * Has a backout of `config` landed on top of `commit` (the commit of its
 * newest, red, nightly run)?  The nightly level builds again only when next
 * due: until then the backout is what says the red is over.
 */
static keel_status landed_since(gate *g, const char *config, const char *commit, bool *landed)
{
    *landed = false;
    gate_backout_row row;
    size_t n = 0;
    keel_status s = gate_store_backout_list(g->store, g->target, "landed", config, &row, 1, &n);
    if (keel_ok(s) && n == 1 && row.revert[0] != '\0' && commit[0] != '\0')
        s = gate_is_ancestor(g->repo, commit, row.revert, landed);
    if (KEEL_IS(s, KEEL_E_NOTFOUND)) { /* a commit the repository no longer has: not on top */
        keel_status_free(s);
        s = KEEL_OK;
    }
    return s;
}

/*
 * Does tier-1 configuration m of the target hold the queue: red (its newest
 * post result; built only at nightly, its newest nightly run), no backout of
 * it under way (queued, intended: the queue must run it), and, at nightly,
 * none landed on top of the red run?
 */
static keel_status holds(gate *g, const gate_matrix_config *m, bool *hold)
{
    *hold = false;
    bool post = gate_config_at(m, GATE_LEVEL_POST), night = gate_config_at(m, GATE_LEVEL_NIGHTLY);
    if (m->tier != 1 || (!post && !night))
        return KEEL_OK;
    bool green = false, red = false;
    keel_status s = gate_store_backout_green(g->store, g->target, m->name, &green, &red);
    if (!keel_ok(s) || !red)
        return s;
    gate_backout_row rows[1];
    size_t queued = 0, intended = 0;
    s = gate_store_backout_list(g->store, g->target, "queued", m->name, rows, 1, &queued);
    if (keel_ok(s))
        s = gate_store_backout_list(g->store, g->target, "intended", m->name, rows, 1, &intended);
    if (!keel_ok(s) || queued + intended > 0)
        return s;
    *hold = true;
    gate_nightly_row run;
    size_t n = 0;
    if (!post) /* red by its newest nightly run */
        s = gate_store_nightly_history(g->store, g->target, m->name, &run, 1, &n);
    bool landed = false;
    if (keel_ok(s) && n == 1)
        s = landed_since(g, m->name, run.commit, &landed);
    *hold = keel_ok(s) && !landed;
    return s;
}

keel_status gate_backout_hold(gate *g, bool *hold, char *why, size_t size)
{
    KEEL_ASSERT(g != NULL && hold != NULL && why != NULL && size > 0);
    *hold = false;
    why[0] = '\0';
    gate_config *own = NULL; /* outside gate_run: the tip's, read here */
    const gate_config *cfg = gate_tip_config(g, &own);
    if (cfg == NULL) /* no configuration that loads: nothing holds */
        return KEEL_OK;
    keel_status s = KEEL_OK;
    for (size_t i = 0; cfg->hold_when_red && keel_ok(s) && !*hold && i < cfg->nconfigs; i++) {
        const gate_matrix_config *m = &cfg->configs[i];
        s = holds(g, m, hold);
        if (keel_ok(s) && *hold)
            gate_fmt(why, size,
                     "held: tier-1 configuration '%s' is red on '%s'%s and no backout is under way "
                     "(hold-when-red)",
                     m->name, g->target,
                     gate_config_at(m, GATE_LEVEL_POST) ? "" : " at level nightly");
    }
    gate_config_free(own);
    return s;
}
