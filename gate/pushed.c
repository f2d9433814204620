/*
 * pushed.c - changes submitted by a push to refs/keel-gate/submit/<branch>
 * (gate.h: gate_take_pushed), so that a developer needs nothing but git.
 */
#define _GNU_SOURCE 1
#include "gate.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gate_int.h"
#include "git.h"

typedef struct take {
    gate *g;
    size_t queued;
} take;

/* A pushed ref the gate will not queue: recorded, said, and removed. */
static keel_status refuse(gate *g, const char *branch, const char *hex, keel_status why)
{
    char detail[1024];
    size_t n = (size_t)snprintf(detail, sizeof(detail), "{\"ref\":");
    char ref[600];
    (void)snprintf(ref, sizeof(ref), "%s%s", GATE_SUBMIT_PREFIX, branch);
    n = gate_json_str(detail, sizeof(detail), n, ref);
    n += (size_t)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0, ",\"error\":");
    n = gate_json_str(detail, sizeof(detail), n, keel_status_message(why));
    (void)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0, "}");
    gate_say(g, "refused: the push to '%s': %s\n", ref, keel_status_message(why));
    keel_status_free(why);
    keel_status s = gate_store_event(g->store, (long long)time(NULL), "refused", 0, detail);
    bool removed = false;
    if (keel_ok(s))
        s = gate_pushed_remove(g->repo, branch, hex, &removed);
    return s;
}

static keel_status take_one(const char *branch, const char *hex, void *ctx)
{
    take *t = (take *)ctx;
    gate *g = t->g;
    keel_status s = gate_branch_check(branch);
    if (!keel_ok(s))
        return refuse(g, branch, hex, s);
    if (strcmp(branch, g->target) == 0)
        return refuse(g, branch, hex,
                      KEEL_ERR(KEEL_E_INVAL,
                               "'%s' is the target: push a branch with changes for it", branch));
    long long id = 0;
    bool removed = false;
    s = gate_store_submit(g->store, branch, hex, g->target, 0, (long long)time(NULL), &id);
    if (KEEL_IS(s, KEEL_E_EXISTS)) {
        long long active = 0;
        bool known = keel_status_get_int(s, "change", &active);
        keel_status_free(s);
        if (!known)
            return KEEL_ERR(KEEL_E_INTERNAL, "an active change of '%s' without its id", branch);
        gate_change c;
        s = gate_store_get(g->store, active, &c);
        if (!keel_ok(s) || strcmp(c.head, hex) != 0)
            return s; /* a newer commit: taken once the active change has ended */
        return gate_pushed_remove(g->repo, branch, hex, &removed); /* queued before a crash */
    }
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "queueing the push to '%s%s'", GATE_SUBMIT_PREFIX, branch);
    t->queued++;
    gate_say(g, "queued change %lld: '%s' at %.12s for '%s' (pushed)\n", id, branch, hex,
             g->target);
    gate_point_after_take();
    return gate_pushed_remove(g->repo, branch, hex, &removed);
}

keel_status gate_take_pushed(gate *g, size_t *queued)
{
    KEEL_ASSERT(g != NULL && queued != NULL);
    take t = {g, 0};
    keel_status s = gate_pushed_each(g->repo, take_one, &t);
    *queued = t.queued;
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "taking the changes pushed to %s*", GATE_SUBMIT_PREFIX);
    return KEEL_OK;
}
