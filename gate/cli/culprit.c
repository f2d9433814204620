/*
 * culprit.c - keel-gate culprit <config>: the newest culprit search of a
 * configuration on the target: the level its failure was seen at, its range, its builds with their results, the
 * posterior's top 3, its state, verdict and evidence.
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <string.h>

#include "gate_int.h"
#include "query.h"
#include "search.h"
#include "text.h"

enum { CULPRIT_BUILDS = 128 };

/*
 * Is `config` one of the configurations (any level) of the target's head, as
 * the next `run` reads them?  (The CLI's gate has no tip configuration of its
 * own: only `run` loads one.)  A head that cannot be read or has no
 * configuration that loads: not known.
 */
static void suspect_name(char *buf, size_t size, gate *g, long long id, unsigned n, unsigned k)
{
    char hex[GATE_OID_HEX] = "";
    if (k == 0 || k > n) {
        (void)snprintf(buf, size, "%s", k == 0 ? "-" : "no culprit (a flake)");
        return;
    }
    keel_status s = gate_store_search_commit(g->store, id, k, hex);
    keel_status_ignore(s, "the name of a suspect is only shown");
    (void)snprintf(buf, size, "%.12s", hex);
}

/* The range's ends: the commit that passed, the one that failed. */
static void range_ends(gate *g, const gate_search_row *r, char first[GATE_OID_HEX],
                       char last[GATE_OID_HEX])
{
    keel_status s = gate_store_search_commit(g->store, r->id, 0, first);
    keel_status_ignore(s, "shown only");
    s = gate_store_search_commit(g->store, r->id, r->n, last);
    keel_status_ignore(s, "shown only");
}

static void print_json(FILE *f, gate *g, const gate_search_row *r, const gate_search_build *b,
                       size_t nb, const gate_culprit_verdict *v)
{
    char first[GATE_OID_HEX] = "", last[GATE_OID_HEX] = "";
    range_ends(g, r, first, last);
    (void)fprintf(f, "{\"search\":%lld,\"target\":", r->id);
    gate_json_fput(f, r->target);
    (void)fprintf(f, ",\"config\":");
    gate_json_fput(f, r->config);
    (void)fprintf(f,
                  ",\"tier\":%u,\"level\":\"%s\",\"passed\":\"%s\",\"failed\":\"%s\","
                  "\"commits\":%u,\"flake\":%.4f,\"state\":\"%s\",\"culprit\":\"%s\","
                  "\"builds\":[",
                  r->tier, r->level, first, last, r->n, r->flake, r->state, r->culprit);
    for (size_t i = 0; i < nb; i++) {
        (void)fprintf(
            f, "%s{\"commit\":\"%s\",\"index\":%u,\"state\":\"%s\",\"result\":\"%s\",\"log\":",
            i > 0 ? "," : "", b[i].commit, b[i].idx, b[i].state,
            strcmp(b[i].state, "done") != 0 ? ""
            : b[i].failed                   ? "failed"
                                            : "passed");
        gate_json_fput(f, b[i].log);
        (void)fprintf(f, "}");
    }
    (void)fprintf(f, "],\"top\":[");
    for (size_t i = 0; i < GATE_CULPRIT_TOP && v->top[i].commit != 0; i++) {
        char name[64];
        suspect_name(name, sizeof(name), g, r->id, r->n, v->top[i].commit);
        (void)fprintf(f, "%s{\"commit\":\"%s\",\"p\":%.6f}", i > 0 ? "," : "", name, v->top[i].p);
    }
    (void)fprintf(f, "],\"evidence\":");
    gate_json_fput(f, r->evidence);
    (void)fprintf(f, "}\n");
}

static void print_text(FILE *f, gate *g, const gate_search_row *r, const gate_search_build *b,
                       size_t nb, const gate_culprit_verdict *v)
{
    char first[GATE_OID_HEX] = "", last[GATE_OID_HEX] = "";
    range_ends(g, r, first, last);
    gate_text_printf(f, "search %lld of '%s' on '%s' (tier %u, failed at level %s): %s%s%.12s\n",
                     r->id, r->config, r->target, r->tier, r->level, r->state,
                     r->culprit[0] != '\0' ? " " : "", r->culprit);
    gate_text_printf(f,
                     "range: %u commit(s) after %.12s (passed) up to %.12s (failed), flake "
                     "rate %.3f\n",
                     r->n, first, last, r->flake);
    gate_text_printf(f, "builds (%zu):\n", nb);
    for (size_t i = 0; i < nb; i++)
        gate_text_printf(f, "  %.12s  commit %2u  %-9s  %s\n", b[i].commit, b[i].idx,
                         strcmp(b[i].state, "done") != 0 ? b[i].state
                         : b[i].failed                   ? "failed"
                                                         : "passed",
                         b[i].log);
    gate_text_printf(f, "posterior:");
    for (size_t i = 0; i < GATE_CULPRIT_TOP && v->top[i].commit != 0; i++) {
        char name[64];
        suspect_name(name, sizeof(name), g, r->id, r->n, v->top[i].commit);
        gate_text_printf(f, "%s %s %.4f", i > 0 ? "," : "", name, v->top[i].p);
    }
    (void)fputc('\n', f);
    /* gate_text_printf escapes all but a final newline: the evidence a line at a time */
    (void)fprintf(f, "evidence:\n");
    if (r->evidence[0] == '\0')
        (void)fprintf(f, "(none yet)\n");
    for (const char *line = r->evidence; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        int len = nl != NULL ? (int)(nl - line) : (int)strlen(line);
        gate_text_printf(f, "%.*s\n", len, line);
        line = nl != NULL ? nl + 1 : line + len;
    }
}

keel_status gate_culprit_show(gate *g, const char *config, FILE *f, bool json)
{
    KEEL_ASSERT(g != NULL && config != NULL && f != NULL);
    gate_search_row row;
    bool found = false;
    keel_status s = gate_store_search_newest(g->store, g->target, config, &row, &found);
    if (!keel_ok(s))
        return s;
    if (!found && !gate_target_has_config(g, config))
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_NOTFOUND, "no configuration '%s' on '%s' (and no culprit search of it)",
                     config, g->target),
            "config", config);
    if (!found) {
        if (json) {
            (void)fprintf(f, "{\"config\":");
            gate_json_fput(f, config);
            (void)fprintf(f, ",\"state\":\"none\"}\n");
        } else {
            gate_text_printf(f, "no culprit search of '%s' on '%s'\n", config, g->target);
        }
        return KEEL_OK;
    }
    void *mem = NULL;
    s = keel_heap_calloc(GATE_HEAP, CULPRIT_BUILDS, sizeof(gate_search_build), &mem);
    if (!keel_ok(s))
        return s;
    gate_search_build *b = (gate_search_build *)mem;
    size_t nb = 0;
    s = gate_store_search_builds(g->store, row.id, b, CULPRIT_BUILDS, &nb);
    gate_culprit_verdict v;
    memset(&v, 0, sizeof(v));
    if (keel_ok(s))
        s = gate_search_verdict(g, row.id, &v);
    if (keel_ok(s) && json)
        print_json(f, g, &row, b, nb, &v);
    else if (keel_ok(s))
        print_text(f, g, &row, b, nb, &v);
    keel_heap_free(GATE_HEAP, mem);
    return s;
}
