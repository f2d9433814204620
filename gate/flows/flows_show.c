/*
 * flows_show.c - `keel-gate flows [--json]` (flows_turn.h): each flow of the
 * target's configuration with its tips, the commits waiting, the last sync,
 * its state, blocked since when and why, and what was told to whom.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "flow.h"
#include "flowmerge.h"
#include "flows_turn.h"
#include "query.h"
#include "store_flow.h"
#include "text.h"

enum { TOLD_SHOWN = 5 /* the newest messages shown per flow */ };

/* What one flow looks like now. */
typedef struct flow_view {
    const gate_flow_config *cfg;
    gate_flow f;
    char src[GATE_HEX], dst[GATE_HEX]; /* "" when the branch does not exist */
    size_t waiting;
    gate_flow_told_row told[TOLD_SHOWN];
    size_t ntold;
} flow_view;

/* A branch's tip, "" when there is no such branch. */
static keel_status tip_of(gate *g, const char *branch, char hex[GATE_HEX])
{
    keel_status s = gate_branch_known(g->repo, branch, hex);
    if (KEEL_IS(s, KEEL_E_NOTFOUND)) {
        keel_status_free(s);
        hex[0] = '\0';
        return KEEL_OK;
    }
    return s;
}

static keel_status view_of(gate *g, const gate_flow_config *cfg, flow_view *v)
{
    memset(v, 0, sizeof(*v));
    v->cfg = cfg;
    bool found = false;
    keel_status s = gate_store_flow_load(g->store, cfg, &v->f, &found);
    if (keel_ok(s))
        s = tip_of(g, cfg->from, v->src);
    if (keel_ok(s))
        s = tip_of(g, cfg->to, v->dst);
    if (keel_ok(s) && v->src[0] != '\0' && v->dst[0] != '\0')
        s = gate_flow_waiting(g->repo, v->src, v->dst, &v->waiting);
    if (keel_ok(s))
        s = gate_store_flow_told(g->store, cfg->from, cfg->to, v->told, TOLD_SHOWN, &v->ntold);
    return s;
}

static void print_json(FILE *f, const flow_view *v, bool first)
{
    (void)fprintf(f, "%s{\"from\":", first ? "" : ",");
    gate_json_fput(f, v->cfg->from);
    (void)fprintf(f, ",\"to\":");
    gate_json_fput(f, v->cfg->to);
    (void)fprintf(f,
                  ",\"source\":\"%s\",\"dest\":\"%s\",\"waiting\":%zu,\"last_sync\":%lld,"
                  "\"state\":\"%s\",\"change\":%lld,\"blocked_since\":%lld,\"why\":",
                  v->src, v->dst, v->waiting, v->f.last_sync, gate_flow_state_name(v->f.state),
                  v->f.change_id, v->f.blocked_since);
    gate_json_fput(f, v->f.why);
    (void)fprintf(f, ",\"reminders\":%u,\"people\":[", v->f.reminders);
    for (size_t i = 0; i < v->f.npeople; i++) {
        (void)fprintf(f, "%s", i > 0 ? "," : "");
        gate_json_fput(f, v->f.people[i].who);
    }
    (void)fprintf(f, "],\"told\":[");
    for (size_t i = 0; i < v->ntold; i++) {
        (void)fprintf(f, "%s{\"kind\":", i > 0 ? "," : "");
        gate_json_fput(f, v->told[i].kind);
        (void)fprintf(f, ",\"who\":");
        gate_json_fput(f, v->told[i].who);
        (void)fprintf(f, ",\"count\":%u,\"at\":%lld}", v->told[i].count, v->told[i].at);
    }
    (void)fprintf(f, "]}");
}

static void print_text(FILE *f, const flow_view *v)
{
    gate_text_printf(f, "%s -> %s: %s", v->cfg->from, v->cfg->to, gate_flow_state_name(v->f.state));
    if (v->f.change_id > 0 && v->f.change[0] != '\0')
        gate_text_printf(f, " (change %lld in the queue)", v->f.change_id);
    gate_text_printf(f, "\n"); /* one line a call: a newline inside one is escaped */
    gate_text_printf(f, "  %s %.12s, %s %.12s, %zu commit(s) waiting, last sync %lld\n",
                     v->cfg->from, v->src[0] != '\0' ? v->src : "(no such branch)", v->cfg->to,
                     v->dst[0] != '\0' ? v->dst : "(no such branch)", v->waiting, v->f.last_sync);
    if (v->f.state == GATE_FLOW_BLOCKED)
        gate_text_printf(f, "  blocked since %lld: %s\n", v->f.blocked_since, v->f.why);
    for (size_t i = 0; i < v->ntold; i++)
        gate_text_printf(f, "  %lld %s%s%s\n", v->told[i].at, v->told[i].kind,
                         v->told[i].who[0] != '\0' ? ": " : "", v->told[i].who);
}

keel_status gate_flows_show(gate *g, FILE *f, bool json)
{
    KEEL_ASSERT(g != NULL && f != NULL);
    char tip[GATE_HEX];
    gate_config *cfg = NULL;
    keel_status s = gate_branch_known(g->repo, g->target, tip);
    if (keel_ok(s))
        s = gate_load_config(g, tip, &cfg);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the flows of '%s'", g->target);
    static flow_view v; /* large: one at a time */
    if (json) {
        (void)fprintf(f, "{\"target\":");
        gate_json_fput(f, g->target);
        (void)fprintf(f, ",\"flows\":[");
    } else if (cfg->nflows == 0) {
        gate_text_printf(f, "no flows in the configuration of '%s'\n", g->target);
    }
    for (size_t i = 0; keel_ok(s) && i < cfg->nflows; i++) {
        s = view_of(g, &cfg->flows[i], &v);
        if (keel_ok(s) && json)
            print_json(f, &v, i == 0);
        else if (keel_ok(s))
            print_text(f, &v);
    }
    if (json)
        (void)fprintf(f, "]}\n");
    gate_config_free(cfg);
    return s;
}

/* One flow's line of `status`: its state, and when blocked since how long and why. */
static void status_line(FILE *f, const flow_view *v, long long now)
{
    gate_text_printf(f, "  %s -> %s: %s", v->cfg->from, v->cfg->to,
                     gate_flow_state_name(v->f.state));
    if (v->f.change_id > 0 && v->f.change[0] != '\0')
        gate_text_printf(f, ", change %lld in the queue", v->f.change_id);
    if (v->f.state == GATE_FLOW_BLOCKED) {
        char took[64];
        gate_duration_fmt(took, sizeof(took), (now - v->f.blocked_since) * 1000);
        gate_text_printf(f, " for %s: %s (%u reminder(s))", took, v->f.why, v->f.reminders);
    } else {
        gate_text_printf(f, ", %zu commit(s) waiting", v->waiting);
    }
    gate_text_printf(f, "\n");
}

keel_status gate_flows_status(gate *g, FILE *f, bool json)
{
    KEEL_ASSERT(g != NULL && f != NULL);
    gate_config *own = NULL;
    const gate_config *cfg = gate_tip_config(g, &own);
    size_t n = cfg != NULL ? cfg->nflows : 0;
    static flow_view v; /* large: one at a time */
    long long now = (long long)time(NULL);
    keel_status s = KEEL_OK;
    if (json)
        (void)fprintf(f, ",\"flows\":[");
    else if (n > 0)
        gate_text_printf(f, "flows (%zu):\n", n);
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        s = view_of(g, &cfg->flows[i], &v);
        if (keel_ok(s) && json) {
            (void)fprintf(f, "%s{\"from\":", i > 0 ? "," : "");
            gate_json_fput(f, v.cfg->from);
            (void)fprintf(f, ",\"to\":");
            gate_json_fput(f, v.cfg->to);
            (void)fprintf(f,
                          ",\"state\":\"%s\",\"change\":%lld,\"waiting\":%zu,\"last_sync\":%lld,"
                          "\"blocked_since\":%lld,\"reminders\":%u,\"why\":",
                          gate_flow_state_name(v.f.state), v.f.change_id, v.waiting, v.f.last_sync,
                          v.f.blocked_since, v.f.reminders);
            gate_json_fput(f, v.f.why);
            (void)fprintf(f, "}");
        } else if (keel_ok(s)) {
            status_line(f, &v, now);
        }
    }
    if (json)
        (void)fprintf(f, "]");
    gate_config_free(own);
    return s;
}
