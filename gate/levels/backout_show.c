/*
 * backout_show.c - `keel-gate backouts [--json] [--reset]` (backout.h): each
 * backout of the target with its state, guard rail and change; the breaker.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include <stdio.h>
#include <string.h>

#include "backout.h"
#include "text.h"

enum { SHOW_MAX = 200 /* the newest shown */ };

static void print_json(FILE *f, const char *target, bool open, long long since, const char *why,
                       const gate_backout_row *rows, size_t n)
{
    (void)fprintf(f, "{\"target\":");
    gate_json_fput(f, target);
    (void)fprintf(f, ",\"breaker\":{\"open\":%s,\"since\":%lld,\"why\":", open ? "true" : "false",
                  since);
    gate_json_fput(f, why);
    (void)fprintf(f, "},\"backouts\":[");
    for (size_t i = 0; i < n; i++) {
        const gate_backout_row *r = &rows[i];
        (void)fprintf(f, "%s{\"culprit\":\"%s\",\"config\":", i > 0 ? "," : "", r->culprit);
        gate_json_fput(f, r->config);
        (void)fprintf(f,
                      ",\"tier\":%u,\"state\":\"%s\",\"rail\":\"%s\",\"change\":%lld,"
                      "\"revert\":\"%s\",\"branch\":",
                      r->tier, r->state, r->rail, r->change, r->revert);
        gate_json_fput(f, r->branch);
        (void)fprintf(f, ",\"subject\":");
        gate_json_fput(f, r->subject);
        (void)fprintf(f, ",\"author\":");
        gate_json_fput(f, r->author);
        (void)fprintf(f, ",\"committer\":");
        gate_json_fput(f, r->committer);
        (void)fprintf(f, ",\"reason\":");
        gate_json_fput(f, r->reason);
        (void)fprintf(f, ",\"evidence\":");
        gate_json_fput(f, r->evidence);
        (void)fprintf(f, ",\"found_at\":%lld,\"created_at\":%lld,\"landed_at\":%lld}", r->found_at,
                      r->created_at, r->landed_at);
    }
    (void)fprintf(f, "]}\n");
}

static void print_text(FILE *f, const char *target, bool open, const char *why,
                       const gate_backout_row *rows, size_t n)
{
    if (open)
        gate_text_printf(f,
                         "circuit breaker OPEN on '%s': %s\n  no automatic backout until a "
                         "person runs 'keel-gate backouts --reset'\n",
                         target, why);
    if (n == 0) {
        gate_text_printf(f, "no backouts on '%s'\n", target);
        return;
    }
    gate_text_printf(f, "%-12s  %-16s  %-9s  %-15s  %-7s  %s\n", "culprit", "config", "state",
                     "rail", "change", "subject / reason");
    for (size_t i = 0; i < n; i++) {
        const gate_backout_row *r = &rows[i];
        char change[24] = "-";
        if (r->change > 0)
            (void)snprintf(change, sizeof(change), "%lld", r->change);
        gate_text_printf(f, "%.12s  %-16s  %-9s  %-15s  %-7s  %s\n", r->culprit, r->config,
                         r->state, r->rail[0] != '\0' ? r->rail : "-", change, r->subject);
        gate_text_printf(f, "%42s%s\n", "", r->reason);
    }
}

keel_status gate_backouts(gate *g, FILE *f, bool json)
{
    KEEL_ASSERT(g != NULL && f != NULL);
    void *mem = NULL;
    keel_status s = keel_heap_alloc(GATE_HEAP, SHOW_MAX * sizeof(gate_backout_row), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "listing the backouts");
    gate_backout_row *rows = (gate_backout_row *)mem;
    size_t n = 0;
    bool open = false;
    long long since = 0;
    char why[GATE_REASON_MAX];
    s = gate_store_backout_list(g->store, g->target, NULL, NULL, rows, SHOW_MAX, &n);
    if (keel_ok(s))
        s = gate_store_backout_breaker(g->store, g->target, &open, &since, NULL, why, sizeof(why));
    if (keel_ok(s) && json)
        print_json(f, g->target, open, since, why, rows, n);
    else if (keel_ok(s))
        print_text(f, g->target, open, why, rows, n);
    keel_heap_free(GATE_HEAP, mem);
    return s;
}
