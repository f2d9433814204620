/*
 * routes_work.c - the git work of a submit and of the branch view, which may
 * be slow: a remote's branch and target fetched into the mirror under the
 * mirror's lock (which a running gate holds up to 60 s) and over the
 * network, the target's history walked.  The routes make it (a response of
 * kind GATE_WEB_WORK), a worker thread of the server's does it on a
 * repository handle of its own, opened where the gate's is (no gate handle,
 * no store: those are the server thread's), and the same request, routed
 * again, finishes on the server thread with what it found.
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <string.h>

#include "git.h"
#include "routes_int.h"
#include "web.h"

/* s into buf whole (false: it does not fit) */
static bool copy(char *buf, size_t size, const char *s)
{
    return (size_t)snprintf(buf, size, "%s", s) < size;
}

void gate__web_work(const gate_web_ctx *ctx, bool branch_view, const char *branch,
                    const char *expected, gate_web_resp *resp)
{
    KEEL_ASSERT(branch != NULL && strlen(branch) < GATE_NAME_MAX); /* checked by the caller */
    gate_web_work *k = (gate_web_work *)gate__web_calloc(1, sizeof(*k));
    if (k == NULL) {
        gate_web_error(resp, 500, "no memory for the request's git work");
        return;
    }
    const char *url = NULL;
    const char *dir = gate_repo_place(ctx->g, &url);
    k->branch_view = branch_view;
    k->s = KEEL_OK;
    if (!copy(k->dir, sizeof(k->dir), dir) || !copy(k->url, sizeof(k->url), url ? url : "") ||
        !copy(k->target, sizeof(k->target), gate_target(ctx->g)) ||
        !copy(k->branch, sizeof(k->branch), branch) ||
        !copy(k->expected, sizeof(k->expected), expected != NULL ? expected : "")) {
        gate_web_work_free(k);
        gate_web_error(resp, 500, "the repository's place '%.200s' is too long for a worker", dir);
        return;
    }
    gate_web_resp_free(resp);
    resp->status = 0;
    resp->kind = GATE_WEB_WORK;
    resp->work = k;
}

keel_status gate__web_work_taken(const gate_web_req *req)
{
    KEEL_ASSERT(req->work != NULL && __atomic_load_n(&req->work->done, __ATOMIC_ACQUIRE));
    keel_status s = req->work->s;
    req->work->s = KEEL_OK;
    return s;
}

void gate_web_work_do(gate_web_work *k)
{
    gate_repo *r = NULL;
    keel_status s =
        k->url[0] != '\0' ? gate_repo_open_remote(k->url, k->dir, &r) : gate_repo_open(k->dir, &r);
    if (keel_ok(s) && k->branch_view)
        s = gate_branch_look(r, k->target, k->branch, &k->view);
    else if (keel_ok(s))
        s = gate_submit_look(r, k->target, k->branch, k->expected[0] != '\0' ? k->expected : NULL,
                             &k->seen);
    gate_repo_close(r);
    k->s = s;
}

void gate_web_work_free(gate_web_work *k)
{
    if (k == NULL)
        return;
    if (!keel_ok(k->s))
        keel_status_free(k->s);
    keel_heap_free(WEB_HEAP, k);
}
