/*
 * routes_targets.c - the API over every target the gate guards (issue 18):
 * `?target=BRANCH` on any endpoint answers for that target's gate (the
 * server's default target when absent), and GET /api/v1/targets lists them
 * (docs/gate-api.md "Several targets").
 */
#define _GNU_SOURCE 1
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "gate_int.h"
#include "routes_int.h"
#include "store_web.h"

/* The gates the server shows: the default first, then the others (the default not twice). */
static size_t each_gate(const gate_web_ctx *ctx, gate **out, size_t max)
{
    size_t n = 0;
    out[n++] = ctx->g;
    for (size_t i = 0; i < ctx->ntargets && n < max; i++)
        if (strcmp(gate_target(ctx->targets[i]), gate_target(ctx->g)) != 0)
            out[n++] = ctx->targets[i];
    return n;
}

bool gate__web_target(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_ctx *out,
                      gate_web_resp *resp)
{
    *out = *ctx;
    if (req->q_target == NULL || strcmp(req->q_target, gate_target(ctx->g)) == 0)
        return true;
    for (size_t i = 0; i < ctx->ntargets; i++)
        if (strcmp(req->q_target, gate_target(ctx->targets[i])) == 0) {
            out->g = ctx->targets[i];
            return true;
        }
    gate *gs[GATE_MAX_TARGETS + 1];
    size_t n = each_gate(ctx, gs, GATE_MAX_TARGETS + 1);
    char names[GATE_MAX_TARGETS * 24] = "";
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof(names); i++)
        len += (size_t)snprintf(names + len, sizeof(names) - len, "%s'%s'", i > 0 ? ", " : "",
                                gate_target(gs[i]));
    gate_web_error(resp, 404, "no target '%s': the gate guards %s (GET /api/v1/targets)",
                   req->q_target, names);
    return false;
}

void gate__web_targets(const gate_web_ctx *ctx, gate_web_resp *resp)
{
    gate *gs[GATE_MAX_TARGETS + 1];
    size_t n = each_gate(ctx, gs, GATE_MAX_TARGETS + 1);
    json_t *list = json_array();
    keel_status s = KEEL_OK;
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        const char *target = gate_target(gs[i]);
        long long counts[GATE_CHANGE_STATES];
        s = gate_store_count_changes(gate_get_store(gs[i]), target, LLONG_MAX, counts);
        bool paused = false;
        if (keel_ok(s)) {
            char reason[GATE_REASON_MAX];
            long long since = 0;
            s = gate_store_paused(gate_get_store(gs[i]), target, &paused, reason, sizeof(reason),
                                  &since);
        }
        char tip[GATE_HEX] = "";
        keel_status t = keel_ok(s) ? gate_branch_known(gs[i]->repo, target, tip) : KEEL_OK;
        if (!keel_ok(t)) { /* a branch gone or not fetched yet: listed without its tip */
            keel_status_ignore(t, "the target is listed without its tip");
            tip[0] = '\0';
        }
        json_t *o = json_object();
        (void)json_object_set_new(o, "target", gate__web_str(target));
        (void)json_object_set_new(o, "default", json_boolean(i == 0));
        (void)json_object_set_new(o, "tip", tip[0] != '\0' ? gate__web_str(tip) : json_null());
        (void)json_object_set_new(o, "queued", json_integer(counts[GATE_CHANGE_QUEUED]));
        (void)json_object_set_new(o, "testing", json_integer(counts[GATE_CHANGE_TESTING]));
        (void)json_object_set_new(o, "paused", json_boolean(paused));
        (void)json_array_append_new(list, o);
    }
    if (!keel_ok(s)) {
        json_decref(list);
        gate__web_status(resp, s);
        return;
    }
    json_t *o = json_object();
    (void)json_object_set_new(o, "default", gate__web_str(gate_target(ctx->g)));
    (void)json_object_set_new(o, "targets", list);
    gate__web_json(resp, 200, o);
}
