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

/* Append `s` to a JSON text in `buf` (grown on the heap as needed: nothing is ever cut). */
static keel_status json_add(char **buf, size_t *len, size_t *cap, const char *raw, const char *str)
{
    size_t more = raw != NULL ? strlen(raw) : gate_json_str(NULL, 0, 0, str);
    if (*len + more + 1 > *cap) {
        void *mem = *buf;
        size_t ncap = *len + more + 256;
        keel_status s = keel_heap_realloc(GATE_HEAP, &mem, ncap);
        if (!keel_ok(s))
            return s;
        *buf = (char *)mem;
        *cap = ncap;
    }
    if (raw != NULL)
        memcpy(*buf + *len, raw, more + 1);
    else
        (void)gate_json_str(*buf, *cap, *len, str);
    *len += more;
    return KEEL_OK;
}

/* An event whose detail is {"<k1>":"<v1>","<k2>":"<v2>"}, the values whole. */
static keel_status event2(gate *g, const char *kind, long long change, const char *k1,
                          const char *v1, const char *k2, const char *v2)
{
    char *buf = NULL, key[32];
    size_t len = 0, cap = 0;
    (void)snprintf(key, sizeof(key), "{\"%s\":", k1);
    keel_status s = json_add(&buf, &len, &cap, key, NULL);
    if (keel_ok(s))
        s = json_add(&buf, &len, &cap, NULL, v1);
    (void)snprintf(key, sizeof(key), ",\"%s\":", k2);
    if (keel_ok(s))
        s = json_add(&buf, &len, &cap, key, NULL);
    if (keel_ok(s))
        s = json_add(&buf, &len, &cap, NULL, v2);
    if (keel_ok(s))
        s = json_add(&buf, &len, &cap, "}", NULL);
    if (keel_ok(s))
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
    keel_status s = event2(g, "refused", 0, "ref", ref, "error", keel_status_message(why));
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
    if (keel_ok(s))
        s = gate_store_submit(g->store, branch, commit, g->target, 0, (long long)time(NULL), &id);
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
