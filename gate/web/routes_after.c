/*
 * routes_after.c - the API's views of what happens after a change lands
 * (docs/gate-api.md): the culprit searches (GET /culprits), the automatic
 * backouts with the circuit breaker and its budget (GET /backouts, POST
 * /backouts/breaker/reset), and the branch flows (GET /flows).  Read from
 * the store as the gate writes it (store_culprit.h, store_backout.h,
 * store_flow.h) and the target's configuration at its head; nothing here
 * decides anything: the searches, backouts and flows are the gate's.
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backout.h"
#include "culprit.h"
#include "flow.h"
#include "gate_int.h"
#include "routes_int.h"
#include "search.h"
#include "store_backout.h"
#include "store_culprit.h"
#include "store_flow.h"

enum {
    CULPRITS_MAX = 20,        /* searches listed, the newest */
    CULPRIT_BUILDS_MAX = 128, /* builds of one search listed, by start order */
    BACKOUTS_MAX = 100,       /* backouts listed, the newest */
    FLOW_TOLD_MAX = 20,       /* what one flow told, the newest */
    DAY_S = 24 * 3600         /* the budget's window (backout.c) */
};

static json_t *hex_or_null(const char *hex)
{
    return hex != NULL && hex[0] != '\0' ? gate__web_str(hex) : json_null();
}

static json_t *time_or_null(long long t)
{
    return t > 0 ? json_integer(t) : json_null();
}

/* {"target": ..., key: list} (list taken), or the error s (list dropped). */
static void list_resp(gate_web_resp *resp, keel_status s, const gate *g, const char *key,
                      json_t *list)
{
    if (!keel_ok(s)) {
        json_decref(list);
        gate__web_status(resp, s);
        return;
    }
    json_t *o = json_object();
    (void)json_object_set_new(o, "target", gate__web_str(g->target));
    (void)json_object_set_new(o, key, list);
    gate__web_json(resp, 200, o);
}

/*
 * The configuration at the target's head (the one the next `run` reads):
 * *cfg NULL when the head cannot be read or has none that loads (said as an
 * empty list by the callers).  The caller frees it (gate_config_free).
 */
static void target_config(gate *g, gate_config **cfg)
{
    char tip[GATE_HEX];
    *cfg = NULL;
    keel_status s = gate_branch_known(g->repo, g->target, tip);
    if (keel_ok(s))
        s = gate_load_config(g, tip, cfg);
    keel_status_ignore(s, "no configuration: no flows, the default budget");
}

/* ---- culprit searches ----------------------------------------------------------------------- */

static json_t *search_json(gate *g, const gate_search_row *r, const gate_search_build *b, size_t nb,
                           const gate_culprit_verdict *v)
{
    char passed[GATE_OID_HEX] = "", failed[GATE_OID_HEX] = "";
    keel_status s = gate_store_search_commit(g->store, r->id, 0, passed);
    if (keel_ok(s))
        s = gate_store_search_commit(g->store, r->id, r->n, failed);
    keel_status_ignore(s, "a range's end not found is shown as null");
    json_t *o = json_object();
    (void)json_object_set_new(o, "id", json_integer(r->id));
    (void)json_object_set_new(o, "config", gate__web_str(r->config));
    (void)json_object_set_new(o, "level", gate__web_str(r->level));
    (void)json_object_set_new(o, "tier", json_integer(r->tier));
    (void)json_object_set_new(o, "state", gate__web_str(r->state));
    (void)json_object_set_new(o, "culprit", hex_or_null(r->culprit));
    json_t *range = json_object();
    (void)json_object_set_new(range, "passed", hex_or_null(passed));
    (void)json_object_set_new(range, "failed", hex_or_null(failed));
    (void)json_object_set_new(range, "commits", json_integer(r->n));
    (void)json_object_set_new(o, "range", range);
    (void)json_object_set_new(o, "flake", json_real(r->flake));
    json_t *builds = json_array();
    for (size_t i = 0; i < nb; i++) {
        json_t *x = json_object();
        (void)json_object_set_new(x, "commit", gate__web_str(b[i].commit));
        (void)json_object_set_new(x, "index", json_integer(b[i].idx));
        (void)json_object_set_new(x, "state", gate__web_str(b[i].state));
        (void)json_object_set_new(x, "result",
                                  strcmp(b[i].state, "done") != 0 ? json_null()
                                  : b[i].failed                   ? json_string("failed")
                                                                  : json_string("passed"));
        (void)json_array_append_new(builds, x);
    }
    (void)json_object_set_new(o, "builds", builds);
    json_t *top = json_array();
    for (size_t i = 0; i < GATE_CULPRIT_TOP && v->top[i].commit != 0; i++) {
        json_t *x = json_object();
        char hex[GATE_OID_HEX] = "";
        unsigned k = v->top[i].commit;
        if (k <= r->n) { /* n + 1: no culprit (every failure a flake) */
            s = gate_store_search_commit(g->store, r->id, k, hex);
            keel_status_ignore(s, "a suspect not found is shown as null");
        }
        (void)json_object_set_new(x, "commit", k <= r->n ? hex_or_null(hex) : json_null());
        (void)json_object_set_new(x, "index", json_integer(k));
        (void)json_object_set_new(x, "posterior", json_real(v->top[i].p));
        (void)json_array_append_new(top, x);
    }
    (void)json_object_set_new(o, "top", top);
    json_t *verdict = json_object();
    (void)json_object_set_new(verdict, "state", json_string(gate_culprit_state_name(v->state)));
    (void)json_object_set_new(verdict, "builds", json_integer(v->builds));
    (void)json_object_set_new(verdict, "running", json_integer(v->running));
    (void)json_object_set_new(verdict, "runs", json_integer(v->runs));
    (void)json_object_set_new(verdict, "fails", json_integer(v->fails));
    (void)json_object_set_new(verdict, "parent_passes", json_integer(v->parent_passes));
    (void)json_object_set_new(o, "verdict", verdict);
    (void)json_object_set_new(o, "evidence", gate__web_str(r->evidence));
    (void)json_object_set_new(o, "started_at", json_integer(r->started_at));
    (void)json_object_set_new(o, "updated_at", json_integer(r->updated_at));
    return o;
}

void gate__web_culprits(const gate_web_ctx *ctx, gate_web_resp *resp)
{
    gate *g = ctx->g;
    long long ids[CULPRITS_MAX];
    size_t n = 0;
    gate_search_build *b = (gate_search_build *)gate__web_calloc(CULPRIT_BUILDS_MAX, sizeof(*b));
    keel_status s = b != NULL ? gate_store_search_recent(g->store, g->target, ids, CULPRITS_MAX, &n)
                              : KEEL_ERR(KEEL_E_NOMEM, "no memory for the culprit searches");
    json_t *list = json_array();
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        gate_search_row r;
        size_t nb = 0;
        gate_culprit_verdict v;
        memset(&v, 0, sizeof(v));
        s = gate_store_search_get(g->store, ids[i], &r);
        if (keel_ok(s))
            s = gate_store_search_builds(g->store, ids[i], b, CULPRIT_BUILDS_MAX, &nb);
        if (keel_ok(s))
            s = gate_search_verdict(g, ids[i], &v);
        if (keel_ok(s))
            (void)json_array_append_new(list, search_json(g, &r, b, nb, &v));
    }
    keel_heap_free(WEB_HEAP, b);
    list_resp(resp, s, g, "searches", list);
}

/* ---- backouts and the circuit breaker ------------------------------------------------------ */

static json_t *backout_json(const gate_backout_row *r)
{
    json_t *o = json_object();
    (void)json_object_set_new(o, "id", json_integer(r->id));
    (void)json_object_set_new(o, "culprit", gate__web_str(r->culprit));
    (void)json_object_set_new(o, "config", gate__web_str(r->config));
    (void)json_object_set_new(o, "tier", json_integer(r->tier));
    (void)json_object_set_new(o, "state", gate__web_str(r->state));
    (void)json_object_set_new(o, "rail", r->rail[0] != '\0' ? gate__web_str(r->rail) : json_null());
    (void)json_object_set_new(o, "reason", gate__web_str(r->reason));
    (void)json_object_set_new(o, "verified", json_boolean(r->verified));
    (void)json_object_set_new(o, "subject", gate__web_str(r->subject));
    (void)json_object_set_new(o, "author", gate__web_str(r->author));
    (void)json_object_set_new(
        o, "culprit_change", r->culprit_change > 0 ? json_integer(r->culprit_change) : json_null());
    (void)json_object_set_new(o, "revert", hex_or_null(r->revert));
    (void)json_object_set_new(o, "branch",
                              r->branch[0] != '\0' ? gate__web_str(r->branch) : json_null());
    (void)json_object_set_new(o, "change", r->change > 0 ? json_integer(r->change) : json_null());
    (void)json_object_set_new(o, "evidence", gate__web_str(r->evidence));
    (void)json_object_set_new(o, "found_at", time_or_null(r->found_at));
    (void)json_object_set_new(o, "created_at", time_or_null(r->created_at));
    (void)json_object_set_new(o, "updated_at", time_or_null(r->updated_at));
    (void)json_object_set_new(o, "landed_at", time_or_null(r->landed_at));
    return o;
}

/*
 * The breaker and the budget as the next backout decision reads them
 * (backout.c): reverts created and landed since a person's reset within the
 * last 24 h, else in the last 24 h; the limit from the target's head.
 */
static keel_status breaker_json(gate *g, json_t **out)
{
    bool open = false;
    long long since = 0, reset_at = 0, now = (long long)time(NULL);
    char why[GATE_REASON_MAX] = "";
    unsigned created = 0, landed = 0;
    keel_status s =
        gate_store_backout_breaker(g->store, g->target, &open, &since, &reset_at, why, sizeof(why));
    long long from = reset_at >= now - DAY_S ? reset_at + 1 : now - DAY_S;
    if (keel_ok(s))
        s = gate_store_backout_counts(g->store, g->target, from, &created, &landed);
    if (!keel_ok(s))
        return s;
    gate_config *cfg = NULL;
    target_config(g, &cfg);
    json_t *b = json_object();
    (void)json_object_set_new(b, "open", json_boolean(open));
    (void)json_object_set_new(b, "since", open ? time_or_null(since) : json_null());
    (void)json_object_set_new(b, "why", open ? gate__web_str(why) : json_null());
    (void)json_object_set_new(b, "reset_at", time_or_null(reset_at));
    json_t *budget = json_object();
    (void)json_object_set_new(budget, "limit",
                              cfg != NULL ? json_integer(cfg->backout_budget) : json_null());
    (void)json_object_set_new(budget, "created", json_integer(created));
    (void)json_object_set_new(budget, "landed", json_integer(landed));
    (void)json_object_set_new(budget, "counted_from", json_integer(from));
    gate_config_free(cfg);
    json_t *o = json_object();
    (void)json_object_set_new(o, "breaker", b);
    (void)json_object_set_new(o, "budget", budget);
    *out = o;
    return KEEL_OK;
}

void gate__web_backouts(const gate_web_ctx *ctx, gate_web_resp *resp)
{
    gate *g = ctx->g;
    gate_backout_row *rows = (gate_backout_row *)gate__web_calloc(BACKOUTS_MAX, sizeof(*rows));
    size_t n = 0;
    json_t *o = NULL;
    keel_status s = rows != NULL ? gate_store_backout_list(g->store, g->target, NULL, NULL, rows,
                                                           BACKOUTS_MAX, &n)
                                 : KEEL_ERR(KEEL_E_NOMEM, "no memory for the backouts");
    if (keel_ok(s))
        s = breaker_json(g, &o);
    if (!keel_ok(s)) {
        keel_heap_free(WEB_HEAP, rows);
        gate__web_status(resp, s);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        (void)json_array_append_new(list, backout_json(&rows[i]));
    keel_heap_free(WEB_HEAP, rows);
    (void)json_object_set_new(o, "target", gate__web_str(g->target));
    (void)json_object_set_new(o, "backouts", list);
    gate__web_json(resp, 200, o);
}

void gate__web_breaker_reset(const gate_web_ctx *ctx, const gate_web_req *req,
                             const gate_token *who, gate_web_resp *resp)
{
    (void)who; /* the breaker-closed event says keel-gate backouts --reset: the same effect */
    static const char *const fields[] = {NULL};
    json_t *body = gate__web_body(req, fields, resp);
    if (body == NULL)
        return;
    json_decref(body);
    bool was_open = false;
    json_t *o = NULL;
    keel_status s = gate_backout_reset(ctx->g, &was_open);
    if (keel_ok(s))
        s = breaker_json(ctx->g, &o);
    if (!keel_ok(s)) {
        gate__web_status(resp, s);
        return;
    }
    (void)json_object_set_new(o, "was_open", json_boolean(was_open));
    gate__web_json(resp, 200, o);
}

/* ---- branch flows -------------------------------------------------------------------------- */

static json_t *flow_json(gate *g, const gate_flow_config *c, const gate_flow *f, bool found,
                         const gate_flow_told_row *told, size_t nt)
{
    char src[GATE_HEX] = "", dst[GATE_HEX] = "";
    keel_status s = gate_branch_known(g->repo, c->from, src);
    keel_status_ignore(s, "a branch not known is shown as null");
    s = gate_branch_known(g->repo, c->to, dst);
    keel_status_ignore(s, "a branch not known is shown as null");
    json_t *o = json_object();
    (void)json_object_set_new(o, "from", gate__web_str(c->from));
    (void)json_object_set_new(o, "to", gate__web_str(c->to));
    (void)json_object_set_new(
        o, "trigger", json_string(c->trigger == GATE_FLOW_ON_SCHEDULE ? "schedule" : "commit"));
    (void)json_object_set_new(o, "owner",
                              c->owner[0] != '\0' ? gate__web_str(c->owner) : json_null());
    (void)json_object_set_new(o, "state", json_string(gate_flow_state_name(f->state)));
    (void)json_object_set_new(o, "recorded", json_boolean(found));
    (void)json_object_set_new(o, "source_tip", hex_or_null(src));
    (void)json_object_set_new(o, "destination_tip", hex_or_null(dst));
    (void)json_object_set_new(o, "synced", hex_or_null(f->synced));
    (void)json_object_set_new(o, "last_sync", time_or_null(f->last_sync));
    (void)json_object_set_new(o, "queued",
                              f->state == GATE_FLOW_QUEUED ? hex_or_null(f->change) : json_null());
    bool blocked = f->state == GATE_FLOW_BLOCKED;
    (void)json_object_set_new(o, "blocked_since",
                              blocked ? time_or_null(f->blocked_since) : json_null());
    (void)json_object_set_new(o, "why", blocked ? gate__web_str(f->why) : json_null());
    json_t *people = json_array();
    for (size_t i = 0; blocked && i < f->npeople; i++)
        (void)json_array_append_new(people, gate__web_str(f->people[i].who));
    (void)json_object_set_new(o, "people", people);
    (void)json_object_set_new(o, "reminders", json_integer(f->reminders));
    (void)json_object_set_new(o, "escalated", json_boolean(f->escalated));
    (void)json_object_set_new(o, "last_told", time_or_null(f->last_told));
    (void)json_object_set_new(o, "next_due", time_or_null(gate_flow_due(f)));
    json_t *t = json_array();
    for (size_t i = 0; i < nt; i++) {
        json_t *x = json_object();
        (void)json_object_set_new(x, "kind", gate__web_str(told[i].kind));
        (void)json_object_set_new(x, "who", gate__web_str(told[i].who));
        (void)json_object_set_new(x, "count", json_integer(told[i].count));
        (void)json_object_set_new(x, "at", json_integer(told[i].at));
        (void)json_array_append_new(t, x);
    }
    (void)json_object_set_new(o, "told", t);
    return o;
}

void gate__web_flows(const gate_web_ctx *ctx, gate_web_resp *resp)
{
    gate *g = ctx->g;
    gate_config *cfg = NULL;
    target_config(g, &cfg);
    gate_flow *f = (gate_flow *)gate__web_calloc(1, sizeof(*f));
    gate_flow_told_row *told = (gate_flow_told_row *)gate__web_calloc(FLOW_TOLD_MAX, sizeof(*told));
    if (f == NULL || told == NULL) {
        keel_heap_free(WEB_HEAP, f);
        keel_heap_free(WEB_HEAP, told);
        gate_config_free(cfg);
        gate_web_error(resp, 500, "no memory for the branch flows");
        return;
    }
    keel_status s = KEEL_OK;
    json_t *list = json_array();
    for (size_t i = 0; keel_ok(s) && cfg != NULL && i < cfg->nflows; i++) {
        const gate_flow_config *c = &cfg->flows[i];
        bool found = false;
        size_t nt = 0;
        s = gate_store_flow_load(g->store, c, f, &found);
        if (keel_ok(s))
            s = gate_store_flow_told(g->store, c->from, c->to, told, FLOW_TOLD_MAX, &nt);
        if (keel_ok(s))
            (void)json_array_append_new(list, flow_json(g, c, f, found, told, nt));
    }
    keel_heap_free(WEB_HEAP, f);
    keel_heap_free(WEB_HEAP, told);
    gate_config_free(cfg);
    list_resp(resp, s, g, "flows", list);
}
