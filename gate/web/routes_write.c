/*
 * routes_write.c - the API's writes (docs/gate-api.md): a JSON body read with
 * only the fields an endpoint knows, and POST /changes, /changes/N/cancel,
 * /changes/N/priority, /queue/pause and /queue/resume.  Bad input is refused
 * with a 400 naming the field before anything changes; the role a write needs
 * and its Idempotency-Key are routes.c's.
 */
#define _GNU_SOURCE 1
#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "git.h"
#include "routes_int.h"
#include "web.h"

json_t *gate__web_body(const gate_web_req *req, const char *const *fields, gate_web_resp *resp)
{
    if (req->body_len == 0)
        return json_object();
    json_error_t err;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
    if (o == NULL) {
        gate_web_error(resp, 400, "malformed JSON body: %s (line %d, column %d)", err.text,
                       err.line, err.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        gate_web_error(resp, 400, "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach(o, key, value)
    {
        bool known = false;
        for (size_t i = 0; fields[i] != NULL; i++)
            known = known || strcmp(fields[i], key) == 0;
        if (!known) {
            char quoted[256];
            (void)snprintf(quoted, sizeof(quoted), "%s", key);
            json_decref(o);
            gate_web_error(resp, 400, "unknown field '%s'", quoted);
            return NULL;
        }
        (void)value;
    }
    return o;
}

/* The string field `name` (NULL: absent when optional, else refused: *bad). */
static const char *str_field(json_t *o, const char *name, bool required, bool *bad,
                             gate_web_resp *resp)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL && !required)
        return NULL;
    if (v == NULL || !json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = true;
        gate_web_error(resp, 400, "field '%s' %s", name,
                       v == NULL ? "is missing" : "must be a non-empty string");
        return NULL;
    }
    return json_string_value(v);
}

/* A whole number from -GATE_PRIORITY_MAX to GATE_PRIORITY_MAX (a priority a person gives) */
static bool priority_field(json_t *o, const char *name, bool required, int *out,
                           gate_web_resp *resp)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL && !required)
        return true;
    if (v == NULL || !json_is_integer(v) || json_integer_value(v) < -GATE_PRIORITY_MAX ||
        json_integer_value(v) > GATE_PRIORITY_MAX) {
        if (v == NULL)
            gate_web_error(resp, 400, "field '%s' is missing", name);
        else
            gate_web_error(resp, 400, "field '%s' must be a whole number from %d to %d", name,
                           -GATE_PRIORITY_MAX, GATE_PRIORITY_MAX);
        return false;
    }
    *out = (int)json_integer_value(v);
    return true;
}

void gate__web_submit(const gate_web_ctx *ctx, const gate_web_req *req, gate_web_resp *resp)
{
    static const char *const fields[] = {"branch", "expected_head", "priority", NULL};
    json_t *o = gate__web_body(req, fields, resp);
    if (o == NULL)
        return;
    bool answered = false; /* resp is the answer: an error, or the work sent to a worker */
    int priority = 0;
    const char *branch = str_field(o, "branch", true, &answered, resp);
    const char *head = answered ? NULL : str_field(o, "expected_head", true, &answered, resp);
    char hex[GATE_OID_HEX]; /* the commit id, lower-case as git writes it */
    size_t n = 0;
    for (; !answered && n + 1 < GATE_OID_HEX && isxdigit((unsigned char)head[n]); n++)
        hex[n] = (char)tolower((unsigned char)head[n]);
    hex[n] = '\0';
    if (!answered && (n + 1 != GATE_OID_HEX || head[n] != '\0')) {
        answered = true;
        gate_web_error(resp, 400,
                       "field 'expected_head' must be a commit id of %d hex digits, not '%.64s%s'",
                       GATE_OID_HEX - 1, head, strlen(head) > 64 ? "..." : "");
    }
    if (!answered && !priority_field(o, "priority", false, &priority, resp))
        answered = true;
    if (!answered && ctx->workers && req->work == NULL) { /* the git work first, on a worker */
        /* the name checked here (gate_branch_check), as gate__web_work expects */
        keel_status s = gate_submit_check(ctx->g, branch);
        if (keel_ok(s))
            gate__web_work(ctx, false, branch, hex, resp);
        else
            gate__web_status(resp, s);
        answered = true;
    }
    if (!answered) {
        long long id = 0;
        keel_status s = req->work == NULL ? gate_submit_at(ctx->g, branch, hex, priority, &id)
                                          : gate__web_work_taken(req);
        if (keel_ok(s) && req->work != NULL)
            s = gate_submit_looked(ctx->g, branch, &req->work->seen, priority, &id);
        gate_change c;
        if (keel_ok(s))
            s = gate_store_get(gate_get_store(ctx->g), id, &c);
        if (keel_ok(s)) {
            json_t *r = json_object();
            (void)json_object_set_new(r, "change", gate__web_change_json(&c));
            gate__web_json(resp, 201, r);
        } else {
            gate__web_status(resp, s);
        }
    }
    json_decref(o);
}

/* The change afterwards as the response (200), or the error. */
static void change_after(const gate_web_ctx *ctx, long long id, keel_status s, gate_web_resp *resp)
{
    gate_change c;
    if (keel_ok(s))
        s = gate_store_get(gate_get_store(ctx->g), id, &c);
    if (!keel_ok(s)) {
        gate__web_status(resp, s);
        return;
    }
    json_t *r = json_object();
    (void)json_object_set_new(r, "change", gate__web_change_json(&c));
    gate__web_json(resp, 200, r);
}

void gate__web_cancel(const gate_web_ctx *ctx, const gate_web_req *req, long long id,
                      gate_web_resp *resp)
{
    static const char *const fields[] = {NULL};
    json_t *o = gate__web_body(req, fields, resp);
    if (o == NULL)
        return;
    json_decref(o);
    gate_change c;
    keel_status s = gate__web_change_get(ctx, id, &c);
    if (keel_ok(s))
        s = gate_cancel(ctx->g, id);
    change_after(ctx, id, s, resp);
}

void gate__web_priority(const gate_web_ctx *ctx, const gate_web_req *req, long long id,
                        gate_web_resp *resp)
{
    static const char *const fields[] = {"priority", NULL};
    json_t *o = gate__web_body(req, fields, resp);
    if (o == NULL)
        return;
    int priority = 0;
    bool ok = priority_field(o, "priority", true, &priority, resp);
    json_decref(o);
    if (!ok)
        return;
    gate_change c;
    keel_status s = gate__web_change_get(ctx, id, &c);
    if (keel_ok(s))
        s = gate_store_set_priority(gate_get_store(ctx->g), id, priority, (long long)time(NULL));
    change_after(ctx, id, s, resp);
}

void gate__web_pause(const gate_web_ctx *ctx, const gate_web_req *req, bool pause,
                     const gate_token *who, gate_web_resp *resp)
{
    static const char *const pause_fields[] = {"reason", NULL};
    static const char *const resume_fields[] = {NULL};
    json_t *o = gate__web_body(req, pause ? pause_fields : resume_fields, resp);
    if (o == NULL)
        return;
    bool bad = false;
    const char *reason = pause ? str_field(o, "reason", true, &bad, resp) : NULL;
    if (!bad && reason != NULL && strlen(reason) >= GATE_REASON_MAX) {
        bad = true;
        gate_web_error(resp, 400, "field 'reason' is longer than %d bytes", GATE_REASON_MAX - 1);
    }
    if (!bad) {
        gate_store *st = gate_get_store(ctx->g);
        long long now = (long long)time(NULL);
        keel_status s = pause ? gate_store_pause(st, gate_target(ctx->g), reason, who->name, now)
                              : gate_store_resume(st, gate_target(ctx->g), who->name, now);
        if (keel_ok(s))
            gate__web_queue(ctx, resp);
        else
            gate__web_status(resp, s);
    }
    json_decref(o);
}
