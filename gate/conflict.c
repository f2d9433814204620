/*
 * conflict.c - what a conflict's reason says: which change, or which commit
 * on the target, each conflicting path conflicts with.
 *
 *   conflicts with change 7 ('topic-b', landed at 0a1b2c3d4e5f) in src/x.c
 *   conflicts with commit 0a1b2c3d4e5f ('fix the build', pushed to 'main' directly) in y.c
 *   conflicts with change 5 ('topic-a', ahead of it, not landed) in src/x.c
 *
 * The commits come from the edge (gate_conflict_origins, gate/git/conflict.c):
 * for each path the last commit of the first-parent history of what the
 * change was merged onto that changed it.  A landing of the gate's names its
 * change (its `Keel-Gate-Change` trailer), looked up in the store; a merge
 * the gate made for a candidate ahead (not landed) is matched by its second
 * parent with the changes of the candidates in flight; any other commit was
 * pushed to the target directly.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include <stdio.h>
#include <string.h>

#include "gate_int.h"
#include "sandbox.h"
#include "store.h"

/* The change in flight (a candidate's) whose head is `head` (*found false: none). */
static keel_status in_flight(gate *g, const char *head, gate_change *ch, bool *found)
{
    *found = false;
    for (size_t i = 0; i < g->ncands; i++) {
        const gate_cand *c = g->cands[i];
        for (size_t k = 0; c != NULL && k < c->n; k++) {
            keel_status s = gate_store_get(g->store, c->changes[k], ch);
            if (!keel_ok(s))
                return s;
            if (strcmp(ch->head, head) == 0) {
                *found = true;
                return KEEL_OK;
            }
        }
    }
    return KEEL_OK;
}

/* What origin o is, into buf: "change 7 ('b', landed at ...)", "commit ... (...)", "". */
static keel_status origin_text(gate *g, const gate_conflict_origin *o, char *buf, size_t size)
{
    gate_change ch;
    buf[0] = '\0';
    if (o->commit[0] == '\0')
        return KEEL_OK;
    if (o->change > 0) {
        keel_status s = gate_store_get(g->store, o->change, &ch);
        if (KEEL_IS(s, KEEL_E_NOTFOUND)) { /* landed by another store's gate */
            keel_status_free(s);
            gate_fmt(buf, size, "change %lld (landed at %.12s)", o->change, o->commit);
            return KEEL_OK;
        }
        if (keel_ok(s))
            gate_fmt(buf, size, "change %lld ('%s', landed at %.12s)", o->change, ch.branch,
                     o->commit);
        return s;
    }
    bool found = false;
    if (o->second[0] != '\0') {
        keel_status s = in_flight(g, o->second, &ch, &found);
        if (!keel_ok(s))
            return s;
    }
    if (found)
        gate_fmt(buf, size, "change %lld ('%s', %s)", ch.id, ch.branch,
                 ch.state == GATE_CHANGE_LANDED ? "landed" : "ahead of it, not landed");
    else
        gate_fmt(buf, size, "commit %.12s ('%s', pushed to '%s' directly)", o->commit, o->subject,
                 g->target);
    return KEEL_OK;
}

/* Append to out (`size` bytes, `*len` used); what does not fit is cut. */
static void put(char *out, size_t size, size_t *len, const char *text)
{
    if (*len + 1 >= size)
        return;
    (void)snprintf(out + *len, size - *len, "%s", text);
    size_t n = strlen(text);
    *len = *len + n < size ? *len + n : size - 1;
}

keel_status gate_conflict_with(gate *g, const char *onto, const char *head, char *out, size_t size)
{
    KEEL_ASSERT(g != NULL && onto != NULL && head != NULL && out != NULL && size > 0);
    gate_conflict_origin o[GATE_ORIGIN_MAX];
    size_t n = 0, total = 0;
    keel_status s = gate_conflict_origins(g->repo, onto, head, o, GATE_ORIGIN_MAX, &n, &total);
    bool done[GATE_ORIGIN_MAX] = {false};
    size_t len = 0;
    out[0] = '\0';
    put(out, size, &len, "conflicts");
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        if (done[i])
            continue;
        char what[GATE_NAME_MAX + 128];
        s = origin_text(g, &o[i], what, sizeof(what));
        if (!keel_ok(s))
            break;
        if (i > 0)
            put(out, size, &len, ";");
        if (what[0] != '\0') {
            put(out, size, &len, " with ");
            put(out, size, &len, what);
        }
        put(out, size, &len, " in ");
        for (size_t k = i; k < n; k++) { /* every path from the same commit */
            if (done[k] || strcmp(o[k].commit, o[i].commit) != 0 || o[k].cut != o[i].cut)
                continue;
            done[k] = true;
            if (k > i)
                put(out, size, &len, ", ");
            put(out, size, &len, o[k].path);
        }
        if (o[i].cut)
            put(out, size, &len, "... (too long a path to look up)");
        else if (o[i].commit[0] == '\0') {
            char why[64];
            gate_fmt(why, sizeof(why), " (not found in the last %d commits)", GATE_ORIGIN_WALK);
            put(out, size, &len, why);
        }
    }
    if (keel_ok(s) && total > n) {
        char more[64];
        gate_fmt(more, sizeof(more), "; and %zu more path%s", total - n, total - n == 1 ? "" : "s");
        put(out, size, &len, more);
    }
    return s;
}
