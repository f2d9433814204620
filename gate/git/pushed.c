/*
 * pushed.c - changes submitted by a push to refs/keel-gate/submit/<branch>
 * (gate.h: gate_take_pushed), so that a developer needs nothing but git.
 */
#define _GNU_SOURCE 1
#include "gate.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gate_int.h"
#include "git.h"

/* Every branch name the gate takes fits the store's and the configuration's buffers whole. */
static_assert((int)GATE_BRANCH_LEN_MAX < (int)GATE_NAME_MAX &&
                  (int)GATE_BRANCH_LEN_MAX < (int)GATE_BRANCH_MAX,
              "a branch name keel-gate takes must fit its buffers");

typedef struct take {
    gate *g;
    size_t queued;
} take;

/* An event whose detail is {"<k1>":"<v1>","<k2>":"<v2>"}, the values whole (on the heap). */
static keel_status event2(gate *g, const char *kind, long long change, const char *k1,
                          const char *v1, const char *k2, const char *v2)
{
    size_t size = strlen(k1) + strlen(k2) + gate_json_str(NULL, 0, 0, v1) +
                  gate_json_str(NULL, 0, 0, v2) + 16;
    void *mem = NULL;
    keel_status s = keel_heap_alloc(GATE_HEAP, size, &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "recording a '%s' event", kind);
    char *buf = (char *)mem;
    size_t n = (size_t)snprintf(buf, size, "{\"%s\":", k1);
    n = gate_json_str(buf, size, n, v1);
    n += (size_t)snprintf(buf + n, n < size ? size - n : 0, ",\"%s\":", k2);
    n = gate_json_str(buf, size, n, v2);
    (void)snprintf(buf + n, n < size ? size - n : 0, "}");
    KEEL_ASSERT(n + 1 < size); /* nothing cut */
    s = gate_store_event(g->store, (long long)time(NULL), kind, change, buf);
    keel_heap_free(GATE_HEAP, buf);
    return s;
}

/*
 * A pushed ref the gate will not queue (`why`, taken: the pusher's doing):
 * recorded, said, and removed; the next refs are taken all the same.
 */
static keel_status refuse(gate *g, const char *ref, const char *hex, keel_status why)
{
    const char *branch = ref + strlen(GATE_SUBMIT_PREFIX);
    gate_say(g, "refused: the push to '%s': %s\n", ref, keel_status_message(why));
    keel_status s = KEEL_IS(why, KEEL_E_EXISTS) /* already in the target */
                        ? gate_already_in_event(g, branch, hex, why)
                        : event2(g, "refused", 0, "ref", ref, "error", keel_status_message(why));
    keel_status_free(why);
    bool removed = false;
    if (keel_ok(s))
        s = gate_pushed_remove(g->repo, branch, hex, &removed);
    return s;
}

static keel_status take_one(const char *branch, const char *hex, void *ctx)
{
    take *t = (take *)ctx;
    gate *g = t->g;
    size_t len = strlen(GATE_SUBMIT_PREFIX) + strlen(branch) + 1;
    void *mem = NULL;
    keel_status s = keel_heap_alloc(GATE_HEAP, len, &mem);
    if (!keel_ok(s))
        return s;
    char *ref = (char *)mem; /* the whole name, for messages and events */
    (void)snprintf(ref, len, "%s%s", GATE_SUBMIT_PREFIX, branch);
    char commit[GATE_HEX], tag[GATE_HEX];
    /* the pusher's doing: a name refused, the target, not a commit; anything else is the gate's */
    keel_status why = gate_branch_check(branch);
    if (keel_ok(why) && strcmp(branch, g->target) == 0)
        why =
            KEEL_ERR(KEEL_E_INVAL, "'%s' is the target: push a branch with changes for it", branch);
    if (keel_ok(why)) {
        s = gate_commit_of(g->repo, "the pushed object", hex, commit, tag);
        if (keel_status_is(s, &gate_codes, GATE_E_BAD_CHANGE)) {
            why = s;
            s = KEEL_OK;
        }
    }
    if (!keel_ok(why)) {
        s = refuse(g, ref, hex, why);
        keel_heap_free(GATE_HEAP, ref);
        return s;
    }
    long long id = 0;
    bool removed = false;
    /* a ref of this name now at another commit: what was pushed before is no longer here */
    if (keel_ok(s))
        s = gate_store_pushed_moved(g->store, branch, commit, g->target);
    if (keel_ok(s)) /* taken before, its ref not removed (a kill, a refusal): remove it now */
        s = gate_store_pushed_pending(g->store, branch, commit, g->target, &id);
    if (keel_ok(s) && id > 0) {
        s = gate_pushed_remove(g->repo, branch, hex, &removed);
        if (keel_ok(s) && removed)
            s = gate_store_pushed_taken(g->store, id);
        keel_heap_free(GATE_HEAP, ref);
        return s;
    }
    if (keel_ok(s)) { /* the target as last fetched (run fetches it each round) */
        char tip[GATE_HEX];
        keel_status known = gate_branch_known(g->repo, g->target, tip);
        if (keel_ok(known))
            why = gate_already_in(g, branch, commit, tip);
        else if (KEEL_IS(known, KEEL_E_NOTFOUND)) /* a target without commits holds nothing */
            keel_status_free(known);
        else
            s = known;
    }
    if (keel_ok(s) && !keel_ok(why)) {
        s = refuse(g, ref, hex, why);
        keel_heap_free(GATE_HEAP, ref);
        return s;
    }
    if (keel_ok(s))
        s = gate_store_submit_pushed(g->store, branch, commit, g->target, (long long)time(NULL),
                                     &id);
    if (KEEL_IS(s, KEEL_E_EXISTS)) {
        long long active = 0;
        bool known = keel_status_get_int(s, "change", &active);
        keel_status_free(s);
        gate_change c;
        if (!known)
            s = KEEL_ERR(KEEL_E_INTERNAL, "an active change of '%s' without its id", branch);
        else
            s = gate_store_get(g->store, active, &c);
        /* the same commit: queued before a crash; a newer one: taken once the active one ended */
        if (keel_ok(s) && strcmp(c.head, commit) == 0)
            s = gate_pushed_remove(g->repo, branch, hex, &removed);
        keel_heap_free(GATE_HEAP, ref);
        return s;
    }
    if (!keel_ok(s)) {
        s = KEEL_CONTEXT(s, "queueing the push to '%s'", ref);
        keel_heap_free(GATE_HEAP, ref);
        return s;
    }
    t->queued++;
    if (tag[0] != '\0') {
        char peeled[2 * GATE_HEX + 64];
        (void)snprintf(peeled, sizeof(peeled), "peeled annotated tag %s to commit %s", tag, commit);
        gate_say(g, "%s (the push to '%s')\n", peeled, ref);
        s = event2(g, "peeled", id, "ref", ref, "what", peeled);
    }
    if (keel_ok(s)) {
        gate_say(g, "queued change %lld: '%s' at %.12s for '%s' (pushed)\n", id, branch, commit,
                 g->target);
        gate_point_after_take();
        s = gate_pushed_remove(g->repo, branch, hex, &removed);
    }
    if (keel_ok(s) && removed) /* not removed (pushed again, or refused): seen again later */
        s = gate_store_pushed_taken(g->store, id);
    keel_heap_free(GATE_HEAP, ref);
    return s;
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
