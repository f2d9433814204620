/*
 * landing.c - what a landing says.  The merge commits a candidate lands are
 * made again just before its compare-and-swap with messages that tell the
 * story without the gate (gate_land_relabel):
 *
 *   Merge branch 'topic' (change 12)
 *
 *   <the subject of the change's head>
 *
 *   Tested-on: gcc-devel, clang-release
 *   Keel-Gate-Batch: 12, 13, 14          (a batch: every change tested with it)
 *   Keel-Gate-Change: 12
 *
 * The trees are those that were tested, so what lands is what passed.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include <stdio.h>
#include <string.h>

#include "gate_int.h"
#include "store.h"

enum { MESSAGE_MAX = 2048, TESTED_MAX = 1024, BATCH_MAX = 512 };

bool gate_on_tip(const gate *g, const char *base)
{
    return strcmp(base, g->tip) == 0 ||
           (g->tip_built[0] != '\0' && strcmp(base, g->tip_built) == 0);
}

/* `name` for a message line: a byte that would break the line (an old store's name) as '?'. */
static void one_line(const char *name, char *buf, size_t size)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0' && n + 1 < size; p++) {
        if (*p < 0x20 || *p == 0x7f)
            buf[n++] = '?';
        else
            buf[n++] = (char)*p;
    }
    buf[n] = '\0';
}

/* Change `i` of c's message into buf. */
static keel_status message_of(gate *g, const gate_cand *c, size_t i, const char *tested,
                              const char *batch, char *buf)
{
    gate_change ch;
    keel_status s = gate_store_get(g->store, c->changes[i], &ch);
    char subject[512] = "", branch[GATE_NAME_MAX];
    if (keel_ok(s))
        s = gate_commit_subject(g->repo, ch.head, subject, sizeof(subject));
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "the message of change %lld", c->changes[i]);
    one_line(ch.branch, branch, sizeof(branch));
    size_t n = 0;
    int w = snprintf(buf, MESSAGE_MAX, "Merge branch '%s' (change %lld)\n\n", branch, ch.id);
    n += w > 0 ? (size_t)w : 0;
    if (subject[0] != '\0' && n < MESSAGE_MAX)
        n += (size_t)snprintf(buf + n, MESSAGE_MAX - n, "%s\n\n", subject);
    if (tested[0] != '\0' && n < MESSAGE_MAX)
        n += (size_t)snprintf(buf + n, MESSAGE_MAX - n, "Tested-on: %s\n", tested);
    if (c->n > 1 && n < MESSAGE_MAX)
        n += (size_t)snprintf(buf + n, MESSAGE_MAX - n, "Keel-Gate-Batch: %s\n", batch);
    if (n < MESSAGE_MAX)
        (void)snprintf(buf + n, MESSAGE_MAX - n, "Keel-Gate-Change: %lld\n", ch.id);
    return KEEL_OK;
}

keel_status gate_land_relabel(gate *g, const gate_cand *c, char out[GATE_HEX])
{
    KEEL_ASSERT(g != NULL && c != NULL && c->n > 0 && out != NULL);
    char tested[TESTED_MAX], batch[BATCH_MAX];
    keel_status s = gate_store_candidate_passed(g->store, c->store_id, tested, sizeof(tested));
    size_t len = 0;
    batch[0] = '\0';
    for (size_t i = 0; i < c->n && len < sizeof(batch); i++) {
        int w =
            snprintf(batch + len, sizeof(batch) - len, "%s%lld", i > 0 ? ", " : "", c->changes[i]);
        len += w > 0 ? (size_t)w : 0;
    }
    void *mem = NULL, *pmem = NULL;
    if (keel_ok(s))
        s = keel_heap_alloc(GATE_HEAP, c->n * MESSAGE_MAX, &mem);
    if (keel_ok(s))
        s = keel_heap_calloc(GATE_HEAP, c->n, sizeof(char *), &pmem);
    char *text = (char *)mem;
    const char **messages = (const char **)pmem;
    for (size_t i = 0; keel_ok(s) && i < c->n; i++) {
        messages[i] = text + i * MESSAGE_MAX;
        s = message_of(g, c, i, tested, batch, text + i * MESSAGE_MAX);
    }
    if (keel_ok(s))
        s = gate_merge_relabel(g->repo, c->base, g->tip, c->merge, messages, c->n, out);
    if (keel_ok(s)) /* recorded before the swap: recovery then finds what landed by ancestry */
        s = gate_store_candidate_relabel(g->store, c->store_id, g->tip, out);
    keel_heap_free(GATE_HEAP, pmem);
    keel_heap_free(GATE_HEAP, mem);
    return keel_ok(s) ? KEEL_OK : KEEL_CONTEXT(s, "writing what candidate %lld lands", c->store_id);
}
