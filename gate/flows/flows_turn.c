/*
 * flows_turn.c - branch flows running in the gate (flows_turn.h): what
 * happened fed to each flow of the gate's target, its decisions carried out.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "flows_turn.h"

#include <stdio.h>
#include <string.h>

#include "flow.h"
#include "flowmerge.h"
#include "sandbox.h"
#include "store_backout.h"
#include "store_flow.h"

enum { DETAIL_MAX = 4096, STEPS_MAX = 8 };

/* One flow's turn: its configuration, state, branch, and the tips seen. */
typedef struct flow_turn {
    gate *g;
    const gate_flow_config *cfg;
    gate_flow f;
    char branch[GATE_BRANCH_MAX + 32]; /* keel-gate/flow/<from>-to-<to> */
    char src[GATE_HEX], dst[GATE_HEX];
    long long now;
    bool queued;
    gate_flow saved; /* the state as last saved (or loaded) */
    /* the last merge's conflict, for the flow-blocked event */
    const gate_flowmerge *merge;
} flow_turn;

/* "Name <address>" into its name and address (no '<': all of it is the name). */
static void split_person(const char *who, char *name, size_t nsize, char *addr, size_t asize)
{
    const char *lt = strrchr(who, '<');
    const char *gt = lt != NULL ? strchr(lt, '>') : NULL;
    if (lt == NULL || gt == NULL) {
        gate_fmt(name, nsize, "%s", who);
        addr[0] = '\0';
        return;
    }
    size_t n = (size_t)(lt - who);
    while (n > 0 && who[n - 1] == ' ')
        n--;
    gate_fmt(name, nsize, "%.*s", (int)n, who);
    gate_fmt(addr, asize, "%.*s", (int)(gt - lt - 1), lt + 1);
}

/* Append `key` and the JSON string `value` (`,"key":"value"`) when it fits whole. */
static void put_str(char *buf, size_t size, size_t *len, const char *key, const char *value)
{
    size_t at = *len;
    at += (size_t)snprintf(buf + at, at < size ? size - at : 0, ",\"%s\":", key);
    at = at < size ? gate_json_str(buf, size, at, value) : at;
    if (at + 2 < size) /* room kept for the closing "}" */
        *len = at;
    else
        buf[*len] = '\0';
}

/* The command that makes the flow's merge as the gate does, for a person to resolve. */
static void reproduce(const flow_turn *t, bool rejected, char *out, size_t size)
{
    if (rejected) /* the merge is on the flow branch: fix it there */
        gate_fmt(out, size,
                 "git fetch origin && git checkout -B %s origin/%s && (fix, commit) && git push "
                 "origin %s",
                 t->branch, t->branch, t->branch);
    else
        gate_fmt(out, size,
                 "git fetch origin && git checkout -B %s origin/%s && git merge origin/%s && "
                 "(resolve, commit) && git push origin %s",
                 t->branch, t->cfg->to, t->cfg->from, t->branch);
}

/*
 * The commit an event is about (its `merge`): the fix under test; else the
 * commit this turn's decision ended (the change that landed or was
 * rejected: saved before the decision cleared it); else none while a
 * conflict blocks the flow (no merge was made); else the gate's last merge.
 * `why`: gate_flow_told_why's (NULL: not blocked).
 */
static const char *told_merge(const flow_turn *t, const char *why)
{
    const gate_flow *f = &t->f;
    if (f->change[0] != '\0')
        return f->change;
    if (t->saved.change[0] != '\0')
        return t->saved.change;
    if (why != NULL && strcmp(why, "conflict") == 0)
        return "";
    return f->made;
}

/*
 * The event's JSON detail: the flow, its state, why, the people with their
 * names and addresses, the owner (escalation), the conflicting paths, the
 * command that reproduces the merge.  What does not fit DETAIL_MAX is left
 * out whole (people and paths last first).
 */
static void told_detail(const flow_turn *t, const gate_flow_decision *d, const char *kind,
                        char *buf, size_t size)
{
    const gate_flow *f = &t->f;
    size_t len = (size_t)snprintf(buf, size, "{\"reminder\":%u,\"blocked_since\":%lld", d->reminder,
                                  f->blocked_since);
    char flow[2 * GATE_BRANCH_MAX + 8];
    gate_fmt(flow, sizeof(flow), "%s -> %s", t->cfg->from, t->cfg->to);
    put_str(buf, size, &len, "flow", flow);
    put_str(buf, size, &len, "from", t->cfg->from);
    put_str(buf, size, &len, "to", t->cfg->to);
    put_str(buf, size, &len, "flow_branch", t->branch);
    put_str(buf, size, &len, "kind", kind);
    const char *why = NULL, *from = NULL; /* blocked: conflict or test-failure, and who is told */
    gate_flow_told_why(f, &why, &from);
    if (why != NULL) {
        put_str(buf, size, &len, "why", why);
        put_str(buf, size, &len, "people_from", from);
    }
    put_str(buf, size, &len, "reason", f->why[0] != '\0' ? f->why : d->reason);
    put_str(buf, size, &len, "merge", told_merge(t, why));
    put_str(buf, size, &len, "owner", d->owner != NULL ? d->owner : "");
    char cmd[4 * GATE_BRANCH_MAX + 256];
    reproduce(t, strncmp(f->why, "merge conflict", 14) != 0, cmd, sizeof(cmd));
    put_str(buf, size, &len, "reproduce", cmd);
    /* the people: [{"name":..,"address":..}, ...] */
    const char *open = ",\"people\":[";
    for (size_t i = 0; i < d->npeople; i++) {
        char name[GATE_FLOW_PERSON_MAX], addr[GATE_FLOW_PERSON_MAX];
        split_person(d->people[i].who, name, sizeof(name), addr, sizeof(addr));
        size_t at = len;
        at += (size_t)snprintf(buf + at, at < size ? size - at : 0,
                               "%s{\"name\":", i == 0 ? open : ",");
        at = at < size ? gate_json_str(buf, size, at, name) : at;
        at += (size_t)snprintf(buf + at, at < size ? size - at : 0, ",\"address\":");
        at = at < size ? gate_json_str(buf, size, at, addr) : at;
        if (at + 4 < size) { /* "}]}" kept */
            len = at;
            len += (size_t)snprintf(buf + len, size - len, "}");
        } else {
            buf[len] = '\0';
            break;
        }
    }
    if (d->npeople > 0 && strstr(buf, open) != NULL)
        len += (size_t)snprintf(buf + len, size - len, "]");
    /* the conflicting paths: the merge's when it was just made, else none */
    if (t->merge != NULL && t->merge->result == GATE_FLOWMERGE_CONFLICT) {
        size_t at = len + (size_t)snprintf(buf + len, size - len, ",\"paths\":[");
        for (size_t i = 0; at + 3 < size && i < t->merge->npaths; i++) {
            size_t was = at;
            at += (size_t)snprintf(buf + at, size - at, "%s", i > 0 ? "," : "");
            at = at < size ? gate_json_str(buf, size, at, t->merge->paths[i]) : at;
            if (at + 3 >= size) {
                at = was;
                buf[at] = '\0';
            }
        }
        if (at + 3 < size)
            len = at + (size_t)snprintf(buf + at, size - at, "]");
        else
            buf[len] = '\0';
    }
    if (len + 2 <= size)
        (void)snprintf(buf + len, size - len, "}");
    else
        gate_fmt(buf, size, "{}"); /* cut: still JSON */
}

/* Save the flow's state, nothing told. */
static keel_status save_state(flow_turn *t)
{
    keel_status s = gate_store_flow_save(t->g->store, &t->f, NULL, t->now);
    if (keel_ok(s))
        t->saved = t->f;
    return s;
}

/* Save the flow's state with what decision d told (`kind`), in one transaction; wake the hook. */
static keel_status save_told(flow_turn *t, const gate_flow_decision *d, const char *kind)
{
    char detail[DETAIL_MAX];
    told_detail(t, d, kind, detail, sizeof(detail));
    gate_flow_told told = {kind, detail, d->people, d->npeople, d->reminder};
    CRASH_POINT(flow_before_told);
    keel_status s = gate_store_flow_save(t->g->store, &t->f, &told, t->now);
    CRASH_POINT(flow_after_told);
    if (keel_ok(s))
        t->saved = t->f;
    if (keel_ok(s)) {
        gate_say(t->g, "flow %s -> %s: %s: %s\n", t->cfg->from, t->cfg->to, kind, d->reason);
        gate_notify(t->g);
    }
    return s;
}

/* The flow branch's newest change for the target, if it is queued or testing (else 0). */
static keel_status active_change(flow_turn *t, gate_change *c, long long *id)
{
    *id = 0;
    long long newest = 0;
    keel_status s = gate_store_backout_change_of(t->g->store, t->g->target, t->branch, &newest);
    if (keel_ok(s) && newest > 0)
        s = gate_store_get(t->g->store, newest, c);
    if (keel_ok(s) && newest > 0 &&
        (c->state == GATE_CHANGE_QUEUED || c->state == GATE_CHANGE_TESTING))
        *id = newest;
    return s;
}

/* Submit `commit` (the flow branch's head) for the target; an active change of it is taken. */
static keel_status submit(flow_turn *t, const char *commit)
{
    gate_change c;
    long long id = 0;
    keel_status s = active_change(t, &c, &id);
    if (keel_ok(s) && id > 0 && strcmp(c.head, commit) == 0) {
        t->f.change_id = id; /* queued before a kill: taken, not queued twice */
        return KEEL_OK;
    }
    if (keel_ok(s) && id > 0) /* an older one of the flow branch: this commit replaces it */
        s = gate_cancel(t->g, id);
    if (keel_ok(s))
        s = gate_submit_at(t->g, t->branch, commit, GATE_FLOW_PRIORITY, &id);
    CRASH_POINT(flow_after_submit);
    if (keel_ok(s)) {
        t->f.change_id = id;
        t->queued = true;
    }
    return s;
}

static keel_status carry_out(flow_turn *t, gate_flow_decision *d);

/* Feed one event, carry its decision out. */
static keel_status feed_event(flow_turn *t, const gate_flow_event *ev)
{
    gate_flow_decision d;
    bool had_change = t->f.change[0] != '\0';
    gate_flow_feed(&t->f, ev, &d);
    if (ev->kind == GATE_FLOW_EV_LANDED && d.action == GATE_FLOW_DO_NOTHING && had_change &&
        t->f.change[0] == '\0')
        return save_told(t, &d, "flow-landed"); /* a sync landed: said, no one to remind */
    return carry_out(t, &d);
}

static keel_status feed(flow_turn *t, gate_flow_event_kind kind, const char *sha, const char *why,
                        const gate_flow_person *people, size_t npeople)
{
    gate_flow_event ev = {kind, t->now, sha, why, people, npeople, NULL};
    return feed_event(t, &ev);
}

/* The recorded resolutions the merge looks up (gate_flow_recall): the store's. */
static keel_status recall(void *ctx, gate_flow_resolution *r, bool *found)
{
    return gate_store_flow_resolution_get((gate_store *)ctx, r, found);
}

/*
 * Merge m's paths appended to why (its first len bytes kept), ", " between
 * them, each shown as gate_tree_name_show shows it (a newline in a path would
 * start a line of its own in the log and the history); the length after.
 */
static size_t paths_shown(const gate_flowmerge *m, char *why, size_t size, size_t len)
{
    for (size_t i = 0; i < m->npaths && len + 1 < size; i++) {
        char shown[GATE_ORIGIN_PATH];
        gate_tree_name_show(m->paths[i], strlen(m->paths[i]), shown, sizeof(shown));
        len += (size_t)snprintf(why + len, size - len, "%s%s", i > 0 ? ", " : "", shown);
    }
    return len < size ? len : size - 1;
}

/*
 * A merge made with recorded resolutions: said in the log and in the history
 * (flow-reused: the flow, its branch, the merge, the paths), then tested
 * like any merge.
 */
static keel_status say_reused(flow_turn *t, const gate_flowmerge *m)
{
    char why[GATE_FLOW_WHY_MAX];
    size_t len = (size_t)snprintf(why, sizeof(why), "recorded resolution reused for ");
    (void)paths_shown(m, why, sizeof(why), len);
    gate_say(t->g, "flow %s -> %s: merge %.12s made with a %s\n", t->cfg->from, t->cfg->to,
             m->merge, why);
    char detail[DETAIL_MAX];
    char flow[2 * GATE_BRANCH_MAX + 8];
    gate_fmt(flow, sizeof(flow), "%s -> %s", t->cfg->from, t->cfg->to);
    size_t at = (size_t)snprintf(detail, sizeof(detail), "{\"reused\":%zu", m->reused);
    put_str(detail, sizeof(detail), &at, "flow", flow);
    put_str(detail, sizeof(detail), &at, "from", t->cfg->from);
    put_str(detail, sizeof(detail), &at, "to", t->cfg->to);
    put_str(detail, sizeof(detail), &at, "flow_branch", t->branch);
    put_str(detail, sizeof(detail), &at, "kind", "flow-reused");
    put_str(detail, sizeof(detail), &at, "merge", m->merge);
    put_str(detail, sizeof(detail), &at, "why", why);
    (void)snprintf(detail + at, sizeof(detail) - at, "}");
    keel_status s = gate_store_event(t->g->store, t->now, "flow-reused", 0, detail);
    if (keel_ok(s))
        gate_notify(t->g);
    return s;
}

/* A flow's change landed: the conflicts it resolved are recorded (reused when they come back). */
static keel_status record_resolutions(flow_turn *t, const char *commit)
{
    static gate_flow_resolution r[GATE_FLOWMERGE_PATHS]; /* large: the loop's thread only */
    size_t n = 0;
    keel_status s = gate_flow_resolutions(t->g->repo, commit, r, GATE_FLOWMERGE_PATHS, &n);
    if (keel_ok(s) && n > 0) {
        s = gate_store_flow_resolution_put(t->g->store, r, n, t->cfg->from, t->cfg->to, commit,
                                           t->now);
        if (keel_ok(s))
            gate_say(t->g,
                     "flow %s -> %s: the resolution of %zu conflicting path(s) by %.12s "
                     "recorded\n",
                     t->cfg->from, t->cfg->to, n, commit);
    }
    return s;
}

/* The merge the flow asks for: made, nothing new, or a conflict. */
static keel_status merge(flow_turn *t)
{
    gate_change c;
    long long id = 0;
    keel_status s = active_change(t, &c, &id);
    if (keel_ok(s) && id > 0) { /* queued before a kill (or by a developer): taken */
        t->f.change_id = id;
        gate_fmt(t->f.made, sizeof(t->f.made), "%s", c.head);
        return feed(t, GATE_FLOW_EV_MERGE_MADE, c.head, NULL, NULL, 0);
    }
    static gate_flowmerge m; /* large: one at a time (the loop's thread only) */
    const gate_flow_recall known = {recall, t->g->store};
    if (keel_ok(s))
        s = gate_flow_merge(t->g->repo, t->cfg->from, t->cfg->to, t->branch, t->now, &known, &m);
    if (keel_ok(s) && m.result == GATE_FLOWMERGE_MADE && m.reused > 0)
        s = say_reused(t, &m);
    if (!keel_ok(s))
        return s;
    gate_fmt(t->f.dest, sizeof(t->f.dest), "%s", m.dest);
    if (m.result == GATE_FLOWMERGE_NOTHING_NEW)
        return feed(t, GATE_FLOW_EV_NOTHING_NEW, NULL, NULL, NULL, 0);
    if (m.result == GATE_FLOWMERGE_MADE) {
        gate_fmt(t->f.made, sizeof(t->f.made), "%s", m.merge);
        CRASH_POINT(flow_after_merge);
        return feed(t, GATE_FLOW_EV_MERGE_MADE, m.merge, NULL, NULL, 0);
    }
    char why[GATE_FLOW_WHY_MAX];
    why[0] = '\0';
    size_t len = paths_shown(&m, why, sizeof(why), 0);
    if (m.total_paths > m.npaths && len + 1 < sizeof(why))
        (void)snprintf(why + len, sizeof(why) - len, " and %zu more", m.total_paths - m.npaths);
    gate_flow_person people[GATE_FLOWMERGE_PEOPLE];
    for (size_t i = 0; i < m.npeople; i++)
        gate_fmt(people[i].who, sizeof(people[i].who), "%s", m.people[i].who);
    t->merge = &m;
    s = feed(t, GATE_FLOW_EV_CONFLICT, NULL, why, people, m.npeople);
    t->merge = NULL;
    return s;
}

static keel_status carry_out(flow_turn *t, gate_flow_decision *d)
{
    switch (d->action) {
    case GATE_FLOW_DO_NOTHING:
        return KEEL_OK;
    case GATE_FLOW_DO_MERGE:
        return merge(t);
    case GATE_FLOW_DO_QUEUE: {
        char commit[GATE_HEX];
        gate_fmt(commit, sizeof(commit), "%s", d->sha);
        keel_status s = submit(t, commit);
        return keel_ok(s) ? save_state(t) : s;
    }
    case GATE_FLOW_DO_BLOCK:
    case GATE_FLOW_DO_REMIND:
    case GATE_FLOW_DO_ESCALATE:
    case GATE_FLOW_DO_UNBLOCK:
        t->f.change_id = t->f.change[0] != '\0' ? t->f.change_id : 0;
        return save_told(t, d, gate_flow_told_kind(d->action));
    }
    return KEEL_OK;
}

/* The verdict on the flow's change in the queue, if it has one. */
static keel_status verdict(flow_turn *t)
{
    if (t->f.change[0] == '\0' || t->f.change_id == 0)
        return KEEL_OK;
    gate_change c;
    keel_status s = gate_store_get(t->g->store, t->f.change_id, &c);
    if (!keel_ok(s) || c.state == GATE_CHANGE_QUEUED || c.state == GATE_CHANGE_TESTING)
        return s;
    char sha[GATE_FLOW_SHA_MAX];
    gate_fmt(sha, sizeof(sha), "%s", t->f.change);
    if (c.state == GATE_CHANGE_LANDED) {
        s = record_resolutions(t, sha);
        return keel_ok(s) ? feed(t, GATE_FLOW_EV_LANDED, sha, NULL, NULL, 0) : s;
    }
    /*
     * rejected or cancelled: the culprit searches' suspects among the commits
     * the merge brings, else who brought them
     */
    gate_flow_person people[GATE_FLOWMERGE_PEOPLE];
    size_t npeople = 0;
    s = gate_flows_suspects(t->g, t->cfg->from, c.id, sha, t->dst, people, GATE_FLOWMERGE_PEOPLE,
                            &npeople);
    static gate_flowmerge m; /* large: the loop's thread only */
    if (keel_ok(s) && npeople == 0)
        s = gate_flow_brought(t->g->repo, sha, &m);
    /* the gate's merge rejected (not cancelled) and no search knew: its own search */
    if (keel_ok(s) && npeople == 0 && c.state == GATE_CHANGE_REJECTED && !t->f.resolution &&
        strcmp(sha, t->f.made) == 0) {
        s = gate_flows_search_start(t->g, c.id, sha);
        CRASH_POINT(flow_after_search);
    }
    if (!keel_ok(s))
        return s;
    const char *from = npeople > 0 ? GATE_FLOW_FROM_SEARCH : NULL;
    for (size_t i = 0; from == NULL && i < m.npeople; i++)
        gate_fmt(people[npeople++].who, sizeof(people[0].who), "%s", m.people[i].who);
    char why[GATE_FLOW_WHY_MAX];
    gate_fmt(why, sizeof(why), "change %lld %s: %s", c.id, gate_change_state_name(c.state),
             c.reason);
    gate_flow_event ev = {GATE_FLOW_EV_REJECTED, t->now, sha, why, people, npeople, from};
    return feed_event(t, &ev);
}

/* A developer's resolution pushed to the flow branch while blocked: queued. */
static keel_status pushed(flow_turn *t)
{
    if (t->f.state != GATE_FLOW_BLOCKED || t->f.change[0] != '\0' || t->f.dest[0] == '\0')
        return KEEL_OK;
    const char *source = t->f.trying[0] != '\0' ? t->f.trying : t->f.source;
    bool yes = false;
    char commit[GATE_HEX];
    keel_status s =
        gate_flow_resolved(t->g->repo, t->branch, source, t->f.dest, t->f.made, &yes, commit);
    if (!keel_ok(s) || !yes)
        return s;
    return feed(t, GATE_FLOW_EV_PUSHED, commit, NULL, NULL, 0);
}

/*
 * Blocked by the gate's merge rejected and told to the authors of what it
 * brought: the culprit its search verified since, told at once (the flow's
 * people from then on).
 */
static keel_status culprit(flow_turn *t)
{
    if (t->f.made[0] == '\0' || !gate_flow_awaits_culprit(&t->f))
        return KEEL_OK;
    gate_flow_person who;
    bool found = false;
    keel_status s = gate_flows_search_culprit(t->g, t->f.made, &who, &found);
    if (!keel_ok(s) || !found)
        return s;
    gate_flow_event ev = {GATE_FLOW_EV_CULPRIT, t->now, t->f.made, NULL, &who, 1, NULL};
    return feed_event(t, &ev);
}

/* Do two states of a flow differ in what the store keeps? */
static bool changed(const gate_flow *a, const gate_flow *b)
{
    const char *const sa[] = {a->source, a->synced, a->trying, a->change, a->why, a->dest, a->made};
    const char *const sb[] = {b->source, b->synced, b->trying, b->change, b->why, b->dest, b->made};
    for (size_t i = 0; i < sizeof(sa) / sizeof(sa[0]); i++)
        if (strcmp(sa[i], sb[i]) != 0)
            return true;
    for (size_t i = 0; i < a->npeople && a->npeople == b->npeople; i++)
        if (strcmp(a->people[i].who, b->people[i].who) != 0)
            return true;
    return a->state != b->state || a->dest_moved != b->dest_moved ||
           a->resolution != b->resolution || a->last_sync != b->last_sync ||
           a->blocked_since != b->blocked_since || a->failed_at != b->failed_at ||
           a->npeople != b->npeople || a->reminders != b->reminders ||
           a->last_told != b->last_told || a->escalated != b->escalated ||
           a->change_id != b->change_id;
}

/* The turn of one flow into the gate's target. */
static keel_status one_flow(gate *g, const gate_flow_config *cfg, long long now, bool *queued)
{
    flow_turn t;
    memset(&t, 0, sizeof(t));
    t.g = g;
    t.cfg = cfg;
    t.now = now;
    bool found = false;
    keel_status s = gate_flow_branch(cfg->from, cfg->to, t.branch, sizeof(t.branch));
    if (keel_ok(s))
        s = gate_store_flow_load(g->store, cfg, &t.f, &found);
    if (keel_ok(s))
        s = gate_branch_head(g->repo, cfg->from, t.src);
    if (keel_ok(s))
        s = gate_branch_head(g->repo, cfg->to, t.dst);
    if (!keel_ok(s))
        return s;
    t.saved = t.f;
    s = verdict(&t);
    if (keel_ok(s))
        s = pushed(&t);
    if (keel_ok(s))
        s = culprit(&t);
    if (keel_ok(s) && strcmp(t.src, t.f.source) != 0)
        s = feed(&t, GATE_FLOW_EV_SOURCE_MOVED, t.src, NULL, NULL, 0);
    /* a conflict is tried again on a new destination tip; a failed test waits for the source */
    if (keel_ok(s) && t.f.state == GATE_FLOW_BLOCKED && t.f.change[0] == '\0' &&
        strncmp(t.f.why, "merge conflict", 14) == 0 && t.f.dest[0] != '\0' &&
        strcmp(t.dst, t.f.dest) != 0) {
        gate_fmt(t.f.dest, sizeof(t.f.dest), "%s", t.dst); /* tried again on the new tip */
        s = feed(&t, GATE_FLOW_EV_DEST_MOVED, t.dst, NULL, NULL, 0);
    }
    if (keel_ok(s))
        s = feed(&t, GATE_FLOW_EV_TICK, NULL, NULL, NULL, 0);
    if (keel_ok(s) && (!found || changed(&t.saved, &t.f)))
        s = save_state(&t);
    *queued = *queued || t.queued;
    return s;
}

keel_status gate_flows_turn(gate *g, long long now, bool *queued)
{
    KEEL_ASSERT(g != NULL && queued != NULL);
    *queued = false;
    gate_config *own = NULL; /* outside gate_run: the tip's, read here */
    const gate_config *cfg = gate_tip_config(g, &own);
    if (cfg == NULL) /* no configuration that loads: no flows */
        return KEEL_OK;
    for (size_t i = 0; i < cfg->nflows; i++) {
        const gate_flow_config *fc = &cfg->flows[i];
        if (strcmp(fc->to, g->target) != 0)
            continue;
        keel_status s = one_flow(g, fc, now, queued);
        unsigned bit = i < 32 ? 1u << i : 0;
        if (keel_ok(s)) {
            g->flows_warned &= ~bit;
            continue;
        }
        if ((g->flows_warned & bit) == 0) { /* once until it works again */
            char line[GATE_REASON_MAX];
            gate_status_line(s, line, sizeof(line));
            gate_say(g, "warning: flow %s -> %s: %s (tried again at the next turn)\n", fc->from,
                     fc->to, line);
        }
        g->flows_warned |= bit;
        keel_status_free(s);
    }
    gate_config_free(own);
    return KEEL_OK;
}
