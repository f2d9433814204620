/*
 * flow.c - a branch flow's decisions (flow.h): pure logic.
 */
#include "flow.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const state_names[] = {"idle", "merging", "queued", "blocked"};
static const char *const action_names[] = {"nothing", "merge",    "queue",  "block",
                                           "remind",  "escalate", "unblock"};

const char *gate_flow_state_name(gate_flow_state s)
{
    return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

const char *gate_flow_action_name(gate_flow_action a)
{
    return (unsigned)a < sizeof(action_names) / sizeof(action_names[0]) ? action_names[a] : "?";
}

const char *gate_flow_told_kind(gate_flow_action a)
{
    switch (a) {
    case GATE_FLOW_DO_BLOCK:
        return "flow-blocked";
    case GATE_FLOW_DO_REMIND:
        return "flow-reminder";
    case GATE_FLOW_DO_ESCALATE:
        return "flow-escalated";
    case GATE_FLOW_DO_UNBLOCK:
        return "flow-unblocked";
    case GATE_FLOW_DO_NOTHING:
    case GATE_FLOW_DO_MERGE:
    case GATE_FLOW_DO_QUEUE:
        break;
    }
    return NULL;
}

keel_status gate_flow_branch(const char *from, const char *to, char *out, size_t size)
{
    KEEL_ASSERT(from != NULL && to != NULL && out != NULL && size > 0);
    int n = snprintf(out, size, "keel-gate/flow/%s-to-%s", from, to);
    if (n < 0 || (size_t)n >= size) {
        out[0] = '\0';
        return KEEL_ERR(KEEL_E_RANGE, "the flow branch of '%s' -> '%s' is too long", from, to);
    }
    for (char *p = out + strlen("keel-gate/flow/"); *p != '\0'; p++)
        if (*p == '/')
            *p = '+';
    return KEEL_OK;
}

unsigned gate_flow_levels(const gate_config *cfg, const char *target, const char *branch)
{
    KEEL_ASSERT(cfg != NULL && target != NULL && branch != NULL);
    unsigned levels = GATE_LEVEL_GATE;
    if (strncmp(branch, "keel-gate/flow/", 15) != 0)
        return levels;
    for (size_t i = 0; i < cfg->nflows; i++) {
        const gate_flow_config *f = &cfg->flows[i];
        char name[GATE_BRANCH_MAX * 2 + 32];
        if (strcmp(f->to, target) != 0)
            continue;
        keel_status s = gate_flow_branch(f->from, f->to, name, sizeof(name));
        if (keel_ok(s) && strcmp(name, branch) == 0)
            levels |= GATE_LEVEL_PRE_MERGE | f->levels;
        keel_status_free(s);
    }
    return levels;
}

void gate_flow_init(gate_flow *f, const gate_flow_config *cfg)
{
    KEEL_ASSERT(f != NULL && cfg != NULL);
    memset(f, 0, sizeof(*f));
    f->cfg = cfg;
    f->state = GATE_FLOW_IDLE;
}

static void copy_sha(char *dst, const char *sha)
{
    (void)snprintf(dst, GATE_FLOW_SHA_MAX, "%s", sha != NULL ? sha : "");
}

static void decide(gate_flow_decision *d, gate_flow_action a, const char *fmt, ...)
    KEEL_PRINTF(3, 4);

static void decide(gate_flow_decision *d, gate_flow_action a, const char *fmt, ...)
{
    d->action = a;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
    va_end(ap);
}

/* Something new on the source the destination does not have yet? */
static bool source_new(const gate_flow *f)
{
    return f->source[0] != '\0' && strcmp(f->source, f->synced) != 0;
}

/* When the trigger next allows a merge of new source commits (IDLE). */
static long long merge_due(const gate_flow *f)
{
    if (f->cfg->trigger == GATE_FLOW_ON_COMMIT || f->last_sync == 0)
        return 0;
    return f->last_sync + (long long)f->cfg->interval_s;
}

/* The back-off before reminder number `k` (1, 2, ...): the last interval repeats. */
static long long backoff(const gate_flow_config *c, unsigned k)
{
    size_t i = k - 1 < c->nremind ? k - 1 : c->nremind - 1;
    return (long long)c->remind_s[i];
}

long long gate_flow_due(const gate_flow *f)
{
    KEEL_ASSERT(f != NULL);
    if (f->state == GATE_FLOW_BLOCKED && f->change[0] != '\0')
        return 0; /* a fix is under test: no reminder until its verdict */
    if (f->state == GATE_FLOW_BLOCKED)
        return f->last_told + backoff(f->cfg, f->reminders + 1);
    if (f->state == GATE_FLOW_IDLE && source_new(f)) {
        long long due = merge_due(f);
        return due > 0 ? due : 1;
    }
    return 0;
}

/* The event's people become the flow's: the first `remind-max` of them; how many. */
static size_t take_people(gate_flow *f, const gate_flow_event *ev)
{
    size_t n = ev->npeople < f->cfg->remind_max ? ev->npeople : f->cfg->remind_max;
    if (n > GATE_FLOW_PEOPLE_MAX)
        n = GATE_FLOW_PEOPLE_MAX;
    for (size_t i = 0; i < n; i++)
        (void)snprintf(f->people[i].who, sizeof(f->people[i].who), "%s", ev->people[i].who);
    f->npeople = n;
    return n;
}

/* A failure: the flow is blocked; a new one is said at once and its reminders start again. */
static void block(gate_flow *f, const gate_flow_event *ev, gate_flow_decision *d, const char *what)
{
    if (f->state != GATE_FLOW_BLOCKED && f->blocked_since == 0)
        f->blocked_since = ev->now;
    f->state = GATE_FLOW_BLOCKED;
    f->failed_at = ev->now;
    f->last_told = ev->now;
    f->reminders = 0;
    f->escalated = false;
    f->dest_moved = false;
    f->resolution = false;
    f->change[0] = '\0';
    (void)snprintf(f->why, sizeof(f->why), "%s: %s", what,
                   ev->why != NULL && ev->why[0] != '\0' ? ev->why : "no reason given");
    size_t n = take_people(f, ev);
    d->people = f->people;
    d->npeople = f->npeople;
    decide(d, GATE_FLOW_DO_BLOCK, "%s; %zu of %zu people told (remind-max %u)", f->why, n,
           ev->npeople, f->cfg->remind_max);
}

/* A rejection's `what` in f->why: what was rejected, and whence its people (told_why). */
#define SUSPECTS_SAID ", suspects from the culprit search"
static const char *rejected_what(bool resolution, const char *from)
{
    bool search = from != NULL && strcmp(from, GATE_FLOW_FROM_SEARCH) == 0;
    if (resolution)
        return search ? "the resolution was rejected" SUSPECTS_SAID : "the resolution was rejected";
    return search ? "merge rejected" SUSPECTS_SAID : "merge rejected";
}

void gate_flow_told_why(const gate_flow *f, const char **why, const char **from)
{
    *why = *from = NULL;
    if (f->state != GATE_FLOW_BLOCKED)
        return;
    if (strncmp(f->why, "merge conflict", 14) == 0) {
        *why = "conflict";
        *from = GATE_FLOW_FROM_CONFLICT;
        return;
    }
    *why = "test-failure";
    const char *colon = strchr(f->why, ':'); /* what: reason (block) */
    size_t n = colon != NULL ? (size_t)(colon - f->why) : strlen(f->why);
    size_t said = sizeof(SUSPECTS_SAID) - 1;
    bool search = n >= said && strncmp(f->why + n - said, SUSPECTS_SAID, said) == 0;
    *from = search ? GATE_FLOW_FROM_SEARCH : GATE_FLOW_FROM_MERGE;
}

size_t gate_flow_suspects(const gate_flow_search *searches, size_t n, const char *const *failed,
                          size_t nfailed, gate_flow_person *out, size_t max)
{
    size_t got = 0;
    for (size_t i = 0; i < n && got < max; i++) {
        const gate_flow_search *s = &searches[i];
        bool found = s->state != NULL &&
                     (strcmp(s->state, "suspected") == 0 || strcmp(s->state, "verified") == 0);
        if (!found || !s->brought || s->author == NULL || s->author[0] == '\0')
            continue;
        bool config = nfailed == 0;
        for (size_t k = 0; k < nfailed && !config; k++)
            config = s->config != NULL && strcmp(s->config, failed[k]) == 0;
        bool again = false;
        for (size_t k = 0; k < got && !again; k++)
            again = strcmp(out[k].who, s->author) == 0;
        if (config && !again)
            (void)snprintf(out[got++].who, sizeof(out[0].who), "%s", s->author);
    }
    return got;
}

#define MERGE_REJECTED "merge rejected: " /* f->why of a merge rejected, its people the authors */

bool gate_flow_awaits_culprit(const gate_flow *f)
{
    return f->state == GATE_FLOW_BLOCKED && f->change[0] == '\0' &&
           strncmp(f->why, MERGE_REJECTED, sizeof(MERGE_REJECTED) - 1) == 0;
}

/*
 * A culprit verified after the flow was blocked by a rejected merge whose
 * people were the merge's authors: the people become the culprit's authors,
 * the failure says they come from the culprit search, and a reminder names
 * them at once.
 */
static bool culprit_found(gate_flow *f, const gate_flow_event *ev, gate_flow_decision *d)
{
    if (ev->npeople == 0 || !gate_flow_awaits_culprit(f))
        return false;
    char was[GATE_FLOW_WHY_MAX];
    (void)snprintf(was, sizeof(was), "%s", f->why + sizeof(MERGE_REJECTED) - 1);
    int len = snprintf(f->why, sizeof(f->why), "%s: ", rejected_what(false, GATE_FLOW_FROM_SEARCH));
    if (len > 0 && (size_t)len < sizeof(f->why)) /* the reason, cut to fit */
        (void)snprintf(f->why + len, sizeof(f->why) - (size_t)len, "%.*s",
                       (int)(sizeof(f->why) - (size_t)len - 1), was);
    (void)take_people(f, ev);
    f->reminders++;
    f->last_told = ev->now;
    d->people = f->people;
    d->npeople = f->npeople;
    d->reminder = f->reminders;
    decide(d, GATE_FLOW_DO_REMIND, "reminder %u: the culprit search found who broke it: %s",
           f->reminders, f->people[0].who);
    return true;
}

/* The clock, BLOCKED: a reminder or the escalation when one is due. */
static void blocked_tick(gate_flow *f, long long now, gate_flow_decision *d)
{
    long long due = gate_flow_due(f);
    if (due == 0) {
        decide(d, GATE_FLOW_DO_NOTHING, "blocked; the fix %s is under test", f->change);
        return;
    }
    if (now < due) {
        decide(d, GATE_FLOW_DO_NOTHING, "blocked; the next reminder is due at %lld", due);
        return;
    }
    f->reminders++;
    f->last_told = now;
    d->people = f->people;
    d->npeople = f->npeople;
    d->reminder = f->reminders;
    unsigned n = f->cfg->escalate_after;
    if (n > 0 && !f->escalated && f->reminders > n) {
        f->escalated = true;
        d->owner = f->cfg->owner;
        decide(d, GATE_FLOW_DO_ESCALATE,
               "blocked since %lld after %u reminders: told the owner %s (%s)", f->blocked_since, n,
               f->cfg->owner[0] != '\0' ? f->cfg->owner : "(none named)", f->why);
        return;
    }
    decide(d, GATE_FLOW_DO_REMIND, "reminder %u: blocked since %lld (%s)", f->reminders,
           f->blocked_since, f->why);
}

/* Start a merge of the source's tip (from IDLE, or a retry while BLOCKED). */
static void start_merge(gate_flow *f, gate_flow_decision *d, const char *why)
{
    copy_sha(f->trying, f->source);
    if (f->state == GATE_FLOW_IDLE)
        f->state = GATE_FLOW_MERGING;
    f->dest_moved = false;
    d->sha = f->trying;
    decide(d, GATE_FLOW_DO_MERGE, "%s: merge %s into %s", why, f->source, f->cfg->to);
}

/* IDLE: merge new source commits when the trigger allows. */
static void idle_turn(gate_flow *f, long long now, gate_flow_decision *d)
{
    if (!source_new(f)) {
        decide(d, GATE_FLOW_DO_NOTHING, "nothing new on %s", f->cfg->from);
        return;
    }
    long long due = merge_due(f);
    if (now < due) {
        decide(d, GATE_FLOW_DO_NOTHING, "schedule: the next merge is due at %lld", due);
        return;
    }
    start_merge(f, d, f->cfg->trigger == GATE_FLOW_ON_COMMIT ? "new commits" : "schedule due");
}

static void landed(gate_flow *f, const gate_flow_event *ev, gate_flow_decision *d)
{
    bool was_fix = f->blocked_since != 0;
    copy_sha(f->synced, f->trying);
    f->state = GATE_FLOW_IDLE;
    f->last_sync = ev->now;
    f->change[0] = '\0';
    if (!was_fix) {
        decide(d, GATE_FLOW_DO_NOTHING, "merge %s landed on %s", ev->sha != NULL ? ev->sha : "?",
               f->cfg->to);
        return;
    }
    long long since = f->blocked_since;
    f->blocked_since = 0;
    f->why[0] = '\0';
    f->npeople = 0;
    f->reminders = 0;
    f->escalated = false;
    f->resolution = false;
    decide(d, GATE_FLOW_DO_UNBLOCK, "%s landed on %s: unblocked after %lld s",
           ev->sha != NULL ? ev->sha : "the fix", f->cfg->to, ev->now - since);
}

void gate_flow_feed(gate_flow *f, const gate_flow_event *ev, gate_flow_decision *d)
{
    KEEL_ASSERT(f != NULL && ev != NULL && d != NULL);
    memset(d, 0, sizeof(*d));
    gate_flow_state st = f->state;
    switch (ev->kind) {
    case GATE_FLOW_EV_SOURCE_MOVED:
    case GATE_FLOW_EV_DEST_MOVED:
        if (ev->kind == GATE_FLOW_EV_SOURCE_MOVED)
            copy_sha(f->source, ev->sha);
        else
            f->dest_moved = true;
        if (st == GATE_FLOW_BLOCKED && f->change[0] == '\0' && source_new(f))
            start_merge(f, d, "blocked, and a branch moved: try again");
        else if (st == GATE_FLOW_IDLE)
            idle_turn(f, ev->now, d);
        else
            decide(d, GATE_FLOW_DO_NOTHING, "%s moved while %s: seen",
                   ev->kind == GATE_FLOW_EV_SOURCE_MOVED ? f->cfg->from : f->cfg->to,
                   gate_flow_state_name(st));
        return;
    case GATE_FLOW_EV_TICK:
        if (st == GATE_FLOW_BLOCKED)
            blocked_tick(f, ev->now, d);
        else if (st == GATE_FLOW_IDLE)
            idle_turn(f, ev->now, d);
        else
            decide(d, GATE_FLOW_DO_NOTHING, "%s: waiting", gate_flow_state_name(st));
        return;
    case GATE_FLOW_EV_MERGE_MADE:
        if (st != GATE_FLOW_MERGING && !(st == GATE_FLOW_BLOCKED && f->trying[0] != '\0'))
            break;
        copy_sha(f->change, ev->sha);
        f->resolution = st == GATE_FLOW_BLOCKED;
        if (st == GATE_FLOW_MERGING)
            f->state = GATE_FLOW_QUEUED;
        d->sha = f->change;
        decide(d, GATE_FLOW_DO_QUEUE, "merge %s of %s made: queue it for %s", f->change, f->trying,
               f->cfg->to);
        return;
    case GATE_FLOW_EV_NOTHING_NEW:
        if (st == GATE_FLOW_BLOCKED && f->trying[0] != '\0') {
            f->trying[0] = '\0';
            decide(d, GATE_FLOW_DO_NOTHING, "blocked: the retry found nothing to merge");
            return;
        }
        if (st != GATE_FLOW_MERGING)
            break;
        copy_sha(f->synced, f->trying);
        f->last_sync = ev->now;
        f->state = GATE_FLOW_IDLE;
        decide(d, GATE_FLOW_DO_NOTHING, "%s holds %s already: nothing to merge", f->cfg->to,
               f->trying);
        return;
    case GATE_FLOW_EV_CONFLICT:
        if (st == GATE_FLOW_BLOCKED && f->trying[0] != '\0') {
            f->trying[0] = '\0'; /* the same failure goes on: reminders as they were */
            decide(d, GATE_FLOW_DO_NOTHING, "blocked: the retry still conflicts (%s)",
                   ev->why != NULL ? ev->why : "");
            return;
        }
        if (st != GATE_FLOW_MERGING)
            break;
        block(f, ev, d, "merge conflict");
        return;
    case GATE_FLOW_EV_LANDED:
    case GATE_FLOW_EV_REJECTED: {
        bool ours = (st == GATE_FLOW_QUEUED || st == GATE_FLOW_BLOCKED) && f->change[0] != '\0' &&
                    ev->sha != NULL && strcmp(ev->sha, f->change) == 0;
        if (!ours)
            break;
        if (ev->kind == GATE_FLOW_EV_LANDED)
            landed(f, ev, d);
        else
            block(f, ev, d, rejected_what(f->resolution, ev->from));
        return;
    }
    case GATE_FLOW_EV_PUSHED:
        if (st != GATE_FLOW_BLOCKED && st != GATE_FLOW_QUEUED)
            break;
        copy_sha(f->change, ev->sha);
        if (f->trying[0] == '\0')
            copy_sha(f->trying, f->source); /* what the developer merged, as far as we know */
        f->resolution = true;
        d->sha = f->change;
        decide(d, GATE_FLOW_DO_QUEUE, "%s pushed to the flow branch: queue it for %s", f->change,
               f->cfg->to);
        return;
    case GATE_FLOW_EV_CULPRIT:
        if (st == GATE_FLOW_BLOCKED && culprit_found(f, ev, d))
            return;
        break;
    }
    decide(d, GATE_FLOW_DO_NOTHING, "event %d ignored while %s", (int)ev->kind,
           gate_flow_state_name(st));
}
