/*
 * search.c - the culprit search's I/O edge (search.h): searches started on
 * a post failure, their builds on the free slots, their results replayed
 * from the store into gate_culprit (culprit.h), their verdicts recorded and
 * told.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backout.h"
#include "culprit.h"
#include "git_int.h"
#include "post.h"
#include "remote.h"
#include "store_nightly.h"
#include "store_post.h"

enum {
    SEARCH_BUDGET = 96,       /* builds of one search at most (abandoned ones count) */
    SEARCH_ACTIVE_MAX = 16,   /* searches a turn looks at */
    SEARCH_DETAIL_MAX = 8192, /* an event's JSON */
    SEARCH_CONFIDENCE_PPM = 999900
};

/* ---- replaying a search from the store ---------------------------------------------- */

typedef struct replay_step {
    long long seq;
    size_t build; /* index into the builds */
    bool start;
} replay_step;

static int by_seq(const void *a, const void *b)
{
    long long x = ((const replay_step *)a)->seq, y = ((const replay_step *)b)->seq;
    return (x > y) - (x < y);
}

typedef struct search_state {
    gate_search_row row;
    gate_search_build *builds; /* SEARCH_BUDGET + 1 */
    size_t nbuilds;
    gate_culprit *c;
} search_state;

static void state_free(search_state *ss)
{
    gate_culprit_delete(ss->c);
    keel_heap_free(GATE_HEAP, ss->builds);
    memset(ss, 0, sizeof(*ss));
}

/* Search id as the store has it: its builds' starts and ends replayed in order into ss->c. */
static keel_status replay_store(gate_store *st, long long id, search_state *ss)
{
    memset(ss, 0, sizeof(*ss));
    keel_status s = gate_store_search_get(st, id, &ss->row);
    void *mem = NULL;
    if (keel_ok(s))
        s = keel_heap_calloc(GATE_HEAP, SEARCH_BUDGET + 1, sizeof(gate_search_build), &mem);
    ss->builds = (gate_search_build *)mem;
    if (keel_ok(s))
        s = gate_store_search_builds(st, id, ss->builds, SEARCH_BUDGET + 1, &ss->nbuilds);
    gate_culprit_params p;
    gate_culprit_params_default(&p);
    p.n = ss->row.n;
    p.flake = ss->row.flake;
    p.budget = SEARCH_BUDGET;
    p.confidence = (double)SEARCH_CONFIDENCE_PPM / 1e6;
    if (keel_ok(s))
        s = gate_culprit_new(&p, &ss->c);
    replay_step steps[2 * (SEARCH_BUDGET + 1)];
    size_t n = 0;
    for (size_t i = 0; keel_ok(s) && i < ss->nbuilds; i++) {
        steps[n++] = (replay_step){ss->builds[i].start_seq, i, true};
        if (ss->builds[i].end_seq != 0)
            steps[n++] = (replay_step){ss->builds[i].end_seq, i, false};
    }
    if (n > 1)
        qsort(steps, n, sizeof(steps[0]), by_seq);
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        const gate_search_build *b = &ss->builds[steps[i].build];
        if (steps[i].start) {
            unsigned next = 0;
            size_t k = 0;
            s = gate_culprit_next(ss->c, 1, &next, &k);
            if (keel_ok(s) && (k != 1 || next != b->idx))
                s = KEEL_ERR(KEEL_E_INTERNAL,
                             "culprit search %lld does not replay: its build %lld was of commit "
                             "%u, the search now chooses %u",
                             id, b->id, b->idx, k == 1 ? next : 0);
        } else if (strcmp(b->state, "abandoned") == 0) {
            s = gate_culprit_abandon(ss->c, b->idx);
        } else {
            s = gate_culprit_result(ss->c, b->idx, b->failed);
        }
    }
    if (!keel_ok(s)) {
        state_free(ss);
        return KEEL_CONTEXT(s, "replaying culprit search %lld", id);
    }
    return KEEL_OK;
}

static keel_status replay(gate *g, long long id, search_state *ss)
{
    return replay_store(g->store, id, ss);
}

keel_status gate_search_replay(gate_store *st, long long id, gate_culprit **out)
{
    *out = NULL;
    search_state ss;
    keel_status s = replay_store(st, id, &ss);
    if (keel_ok(s)) {
        *out = ss.c;
        ss.c = NULL;
        state_free(&ss);
    }
    return s;
}

/* ---- what a verdict tells ----------------------------------------------------------- */

/* Commit hex's subject, author, committer ("Name <email>"), first and second parent. */
static keel_status commit_info(gate *g, const char *hex, char *subject, char *author,
                               char *committer, char parent[GATE_OID_HEX],
                               char second[GATE_OID_HEX])
{
    subject[0] = author[0] = committer[0] = parent[0] = second[0] = '\0';
    git_oid oid;
    keel_status s = gate_oid_parse(hex, &oid);
    git_commit *c = NULL;
    int rc = keel_ok(s) ? git_commit_lookup(&c, g->repo->repo, &oid) : 0;
    if (rc != 0)
        return gate_git_error(rc, "cannot read commit %.12s", hex);
    if (!keel_ok(s))
        return s;
    const char *summary = git_commit_summary(c);
    gate_fmt(subject, GATE_SEARCH_SUBJECT_MAX, "%s", summary != NULL ? summary : "");
    const git_signature *a = git_commit_author(c), *m = git_commit_committer(c);
    gate_fmt(author, GATE_SEARCH_PERSON_MAX, "%s <%s>", a->name, a->email);
    gate_fmt(committer, GATE_SEARCH_PERSON_MAX, "%s <%s>", m->name, m->email);
    if (git_commit_parentcount(c) > 0)
        (void)git_oid_tostr(parent, GATE_OID_HEX, git_commit_parent_id(c, 0));
    if (git_commit_parentcount(c) > 1)
        (void)git_oid_tostr(second, GATE_OID_HEX, git_commit_parent_id(c, 1));
    git_commit_free(c);
    return KEEL_OK;
}

/* The verdict's evidence: the search's log, its newest lines when they do not all fit. */
static void evidence_of(const search_state *ss, const gate_culprit_verdict *v, char *out,
                        size_t size)
{
    size_t count = gate_culprit_log_count(ss->c);
    size_t first = count, room = size - 200; /* the summary line's */
    while (first > 0) {
        const gate_culprit_event *e = gate_culprit_log(ss->c, first - 1);
        size_t len = strlen(e->text) + 1;
        if (len > room)
            break;
        room -= len;
        first--;
    }
    size_t len = (size_t)snprintf(
        out, size,
        "%s after %u builds at flake rate %.3f: commit %u of %u, posterior %.6f, %u of %u "
        "fresh failures, its parent passed %u of %u\n%s",
        gate_culprit_state_name(v->state), v->builds, ss->row.flake, v->commit, ss->row.n, v->p,
        v->fresh_fails, v->fail_runs, v->parent_passes, v->parent_runs, first > 0 ? "...\n" : "");
    for (size_t i = first; i < count && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s\n", gate_culprit_log(ss->c, i)->text);
}

/* Append `"key":"value",` to a JSON object being built. */
static size_t json_field(char *buf, size_t size, size_t len, const char *key, const char *value)
{
    if (len < size)
        len += (size_t)snprintf(buf + len, size - len, "\"%s\":", key);
    len = gate_json_str(buf, size, len, value);
    if (len < size)
        len += (size_t)snprintf(buf + len, size - len, ",");
    return len;
}

/* Append "blame":[...] (at most blame-max people, each once) and close the object. */
static void json_blame(gate *g, char *buf, size_t size, size_t len, const char *const *people,
                       size_t n)
{
    unsigned max = g->tip_cfg != NULL && g->tip_cfg->blame_max > 0 ? g->tip_cfg->blame_max : 3;
    if (len < size)
        len += (size_t)snprintf(buf + len, size - len, "\"blame\":[");
    size_t told = 0;
    for (size_t i = 0; i < n && told < max; i++) {
        bool seen = people[i][0] == '\0';
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(people[k], people[i]) == 0;
        if (seen)
            continue;
        if (told++ > 0 && len < size)
            len += (size_t)snprintf(buf + len, size - len, ",");
        len = gate_json_str(buf, size, len, people[i]);
    }
    if (len < size)
        (void)snprintf(buf + len, size - len, "]}");
}

/*
 * The one function the backout is connected to: a verified culprit, recorded
 * and told already.  It must be idempotent (a kill after it returns and
 * before the store says it was handed calls it again on the next run).
 */
/* "Name <email>" into its name and its address (a text without '<': all name). */
static void split_person(const char *person, char *name, size_t nsize, char *email, size_t esize)
{
    const char *lt = strrchr(person, '<');
    const char *gt = lt != NULL ? strchr(lt, '>') : NULL;
    size_t nlen = lt != NULL ? (size_t)(lt - person) : strlen(person);
    while (nlen > 0 && person[nlen - 1] == ' ')
        nlen--;
    gate_fmt(name, nsize, "%.*s", (int)nlen, person);
    if (lt != NULL && gt != NULL)
        gate_fmt(email, esize, "%.*s", (int)(gt - lt - 1), lt + 1);
    else
        email[0] = '\0';
}

/*
 * A verified culprit, handed to the backout (gate/levels/backout.h), which
 * decides by its guard rails what to do and is idempotent: a kill between
 * this and the search's `handed` mark hands it again on the next run.
 */
static keel_status culprit_verified(gate *g, const gate_search_found *f)
{
    gate_say(g, "culprit: '%s' broken by %.12s \"%s\" (%s)%s%s: verified\n", f->config, f->commit,
             f->subject, f->author, f->change_id != 0 ? ", change " : "",
             f->change_id != 0 ? f->branch : "");
    gate_backout_culprit c;
    memset(&c, 0, sizeof(c));
    gate_fmt(c.target, sizeof(c.target), "%s", f->target);
    gate_fmt(c.config, sizeof(c.config), "%s", f->config);
    c.tier = f->tier;
    gate_fmt(c.commit, sizeof(c.commit), "%s", f->commit);
    gate_fmt(c.parent, sizeof(c.parent), "%s", f->parent);
    gate_fmt(c.subject, sizeof(c.subject), "%s", f->subject);
    split_person(f->author, c.author_name, sizeof(c.author_name), c.author_email,
                 sizeof(c.author_email));
    split_person(f->committer, c.committer_name, sizeof(c.committer_name), c.committer_email,
                 sizeof(c.committer_email));
    c.change = f->change_id;
    gate_fmt(c.evidence, sizeof(c.evidence), "%s", f->evidence);
    gate_fmt(c.log, sizeof(c.log), "%s", f->log);
    c.verified = true;
    return gate_backout_culprit_found(g, &c, gate_now_s());
}

/* The verified culprit of search ss: what the backout is handed. */
static keel_status found_of(gate *g, const search_state *ss, unsigned idx, gate_search_found *f)
{
    memset(f, 0, sizeof(*f));
    f->search = ss->row.id;
    gate_fmt(f->target, sizeof(f->target), "%s", ss->row.target);
    gate_fmt(f->config, sizeof(f->config), "%s", ss->row.config);
    f->tier = ss->row.tier;
    gate_fmt(f->evidence, sizeof(f->evidence), "%s", ss->row.evidence);
    keel_status s = gate_store_search_commit(g->store, ss->row.id, idx, f->commit);
    char second[GATE_OID_HEX] = "";
    if (keel_ok(s))
        s = commit_info(g, f->commit, f->subject, f->author, f->committer, f->parent, second);
    /* a flow merge's search: D merged with a candidate, told as the candidate (its second) */
    bool flow = strcmp(ss->row.level, "flow") == 0;
    /* a merge on the target: the gate's lands a change (its head) */
    if (keel_ok(s) && second[0] != '\0' && !flow)
        s = gate_store_change_of_head(g->store, g->target, second, &f->change_id, f->branch);
    if (keel_ok(s) && (f->change_id != 0 || (flow && second[0] != '\0'))) {
        char sub[GATE_SEARCH_SUBJECT_MAX], p1[GATE_OID_HEX], p2[GATE_OID_HEX];
        s = commit_info(g, second, flow ? f->subject : sub, f->author, f->committer, p1, p2);
        if (keel_ok(s) && flow) { /* the candidate itself, not the merge the search built */
            gate_fmt(f->commit, sizeof(f->commit), "%s", second);
            gate_fmt(f->parent, sizeof(f->parent), "%s", p1);
        }
    }
    for (size_t i = ss->nbuilds; i > 0; i--) /* the newest failing build's log */
        if (ss->builds[i - 1].idx == idx && ss->builds[i - 1].failed &&
            strcmp(ss->builds[i - 1].state, "done") == 0) {
            gate_fmt(f->log, sizeof(f->log), "%s", ss->builds[i - 1].log);
            break;
        }
    return s;
}

/* The detail of culprit-suspected / culprit-verified about commit idx. */
static keel_status culprit_detail(gate *g, const search_state *ss, const gate_search_found *f,
                                  const gate_culprit_verdict *v, char *detail, size_t size)
{
    (void)ss;
    size_t len = (size_t)snprintf(detail, size, "{\"search\":%lld,\"p\":%.6f,", f->search, v->p);
    len = json_field(detail, size, len, "config", f->config);
    len = json_field(detail, size, len, "commit", f->commit);
    len = json_field(detail, size, len, "parent", f->parent);
    len = json_field(detail, size, len, "subject", f->subject);
    len = json_field(detail, size, len, "author", f->author);
    len = json_field(detail, size, len, "committer", f->committer);
    if (f->change_id != 0) {
        if (len < size)
            len += (size_t)snprintf(detail + len, size - len, "\"change\":%lld,", f->change_id);
        len = json_field(detail, size, len, "branch", f->branch);
    }
    len = json_field(detail, size, len, "log", f->log);
    len = json_field(detail, size, len, "evidence", f->evidence);
    char reason[GATE_REASON_MAX]; /* the hook's one line */
    gate_fmt(reason, sizeof(reason),
             "configuration '%s' broken by %.12s \"%.80s\" (author %s%s%s), %s: posterior %.6f, "
             "log %s",
             f->config, f->commit, f->subject, f->author, f->change_id != 0 ? ", change " : "",
             f->change_id != 0 ? f->branch : "",
             v->state == GATE_CULPRIT_VERIFIED ? "verified" : "suspected", v->p, f->log);
    len = json_field(detail, size, len, "reason", reason);
    const char *people[] = {f->author};
    json_blame(g, detail, size, len, people, 1);
    return KEEL_OK;
}

/* Hand verified search id to the backout (once: the store says when it was). */
static keel_status hand(gate *g, const search_state *ss, unsigned idx)
{
    gate_search_found f;
    keel_status s = found_of(g, ss, idx, &f);
    CRASH_POINT(search_before_hand);
    if (keel_ok(s) && strcmp(ss->row.level, "flow") != 0) /* a flow's: not on the target */
        s = culprit_verified(g, &f);
    if (keel_ok(s))
        s = gate_store_search_handed(g->store, ss->row.id);
    return s;
}

/* The verdict of search ss (replayed) against what the store says: recorded and told once. */
static keel_status settle(gate *g, search_state *ss)
{
    gate_culprit_verdict v;
    gate_culprit_verdict_get(ss->c, &v);
    const char *state = v.state == GATE_CULPRIT_SEARCHING    ? "searching"
                        : v.state == GATE_CULPRIT_SUSPECTED  ? "suspected"
                        : v.state == GATE_CULPRIT_VERIFIED   ? "verified"
                        : v.state == GATE_CULPRIT_NO_CULPRIT ? "no-culprit"
                                                             : "gave-up";
    if (strcmp(state, ss->row.state) == 0 && v.state != GATE_CULPRIT_SUSPECTED)
        return KEEL_OK;
    char culprit[GATE_OID_HEX] = "";
    keel_status s = KEEL_OK;
    if (v.commit > 0)
        s = gate_store_search_commit(g->store, ss->row.id, v.commit, culprit);
    if (!keel_ok(s))
        return s;
    if (strcmp(state, ss->row.state) == 0 && strcmp(culprit, ss->row.culprit) == 0)
        return KEEL_OK;
    evidence_of(ss, &v, ss->row.evidence, sizeof(ss->row.evidence));
    void *mem = NULL;
    s = keel_heap_alloc(GATE_HEAP, SEARCH_DETAIL_MAX, &mem);
    if (!keel_ok(s))
        return s;
    char *detail = (char *)mem;
    const char *kind = NULL;
    long long now = gate_now_s();
    gate_search_found f;
    if (v.state == GATE_CULPRIT_SUSPECTED || v.state == GATE_CULPRIT_VERIFIED) {
        s = found_of(g, ss, v.commit, &f);
        if (keel_ok(s))
            s = culprit_detail(g, ss, &f, &v, detail, SEARCH_DETAIL_MAX);
        if (v.state == GATE_CULPRIT_VERIFIED)
            kind = "culprit-verified";
        else if (!ss->row.told_suspected)
            kind = "culprit-suspected";
    } else if (v.state == GATE_CULPRIT_NO_CULPRIT) {
        char failed[GATE_OID_HEX] = "";
        s = gate_store_search_commit(g->store, ss->row.id, ss->row.n, failed);
        size_t others = 0;
        if (keel_ok(s))
            s = gate_store_post_red(g->store, g->target, ss->row.config, &others);
        char reason[GATE_REASON_MAX];
        gate_fmt(reason, sizeof(reason),
                 "configuration '%s' failed at %.12s by a flake: no culprit (posterior %.6f)",
                 ss->row.config, failed, v.p);
        size_t len = (size_t)snprintf(detail, SEARCH_DETAIL_MAX, "{\"search\":%lld,", ss->row.id);
        len = json_field(detail, SEARCH_DETAIL_MAX, len, "config", ss->row.config);
        len = json_field(detail, SEARCH_DETAIL_MAX, len, "commit", failed);
        len = json_field(detail, SEARCH_DETAIL_MAX, len, "reason", reason);
        len = json_field(detail, SEARCH_DETAIL_MAX, len, "evidence", ss->row.evidence);
        json_blame(g, detail, SEARCH_DETAIL_MAX, len, NULL, 0);
        kind = others == 0 ? "target-green" : NULL;
    } else if (v.state == GATE_CULPRIT_GAVE_UP) {
        const char *people[GATE_CULPRIT_TOP];
        char names[GATE_CULPRIT_TOP][GATE_SEARCH_PERSON_MAX];
        size_t len =
            (size_t)snprintf(detail, SEARCH_DETAIL_MAX, "{\"search\":%lld,\"top\":[", ss->row.id);
        size_t np = 0;
        for (size_t i = 0; keel_ok(s) && i < GATE_CULPRIT_TOP; i++) {
            unsigned k = v.top[i].commit;
            if (k == 0)
                break;
            char hex[GATE_OID_HEX] = "none", sub[GATE_SEARCH_SUBJECT_MAX] = "";
            names[np][0] = '\0';
            if (k <= ss->row.n)
                s = gate_store_search_commit(g->store, ss->row.id, k, hex);
            if (keel_ok(s) && k <= ss->row.n) {
                char com[GATE_SEARCH_PERSON_MAX], p1[GATE_OID_HEX], p2[GATE_OID_HEX];
                s = commit_info(g, hex, sub, names[np], com, p1, p2);
            }
            if (len < SEARCH_DETAIL_MAX)
                len += (size_t)snprintf(detail + len, SEARCH_DETAIL_MAX - len, "%s{\"p\":%.6f,",
                                        i > 0 ? "," : "", v.top[i].p);
            len = json_field(detail, SEARCH_DETAIL_MAX, len, "commit", hex);
            len = json_field(detail, SEARCH_DETAIL_MAX, len, "subject", sub);
            len = gate_json_str(detail, SEARCH_DETAIL_MAX, len, "author");
            if (len < SEARCH_DETAIL_MAX)
                len += (size_t)snprintf(detail + len, SEARCH_DETAIL_MAX - len, ":");
            len = gate_json_str(detail, SEARCH_DETAIL_MAX, len, names[np]);
            if (len < SEARCH_DETAIL_MAX)
                len += (size_t)snprintf(detail + len, SEARCH_DETAIL_MAX - len, "}");
            people[np] = names[np];
            np++;
        }
        if (len < SEARCH_DETAIL_MAX)
            len += (size_t)snprintf(detail + len, SEARCH_DETAIL_MAX - len, "],");
        len = json_field(detail, SEARCH_DETAIL_MAX, len, "config", ss->row.config);
        len = json_field(detail, SEARCH_DETAIL_MAX, len, "evidence", ss->row.evidence);
        char reason[GATE_REASON_MAX];
        gate_fmt(
            reason, sizeof(reason),
            "the culprit search of '%s' gave up after %u builds: a person must look (keel-gate "
            "culprit %s)",
            ss->row.config, v.builds, ss->row.config);
        len = json_field(detail, SEARCH_DETAIL_MAX, len, "reason", reason);
        json_blame(g, detail, SEARCH_DETAIL_MAX, len, people, np);
        kind = "culprit-gave-up";
    }
    CRASH_POINT(search_before_verdict);
    if (keel_ok(s))
        s = gate_store_search_set(g->store, ss->row.id, state, culprit, ss->row.evidence,
                                  kind != NULL && strcmp(kind, "culprit-suspected") == 0, kind,
                                  detail, now);
    keel_heap_free(GATE_HEAP, mem);
    if (keel_ok(s) && kind != NULL) {
        gate_say(g, "culprit: search %lld of '%s': %s%s%.12s\n", ss->row.id, ss->row.config, state,
                 culprit[0] != '\0' ? " " : "", culprit);
        gate_notify(g); /* the hook hears of it */
    }
    if (keel_ok(s) && v.state == GATE_CULPRIT_VERIFIED)
        s = hand(g, ss, v.commit);
    return s;
}

/* ---- the gate's calls ----------------------------------------------------------------- */

keel_status gate_search_recover(gate *g)
{
    size_t n = 0;
    keel_status s = gate_store_search_recover(g->store, g->target, &n);
    if (keel_ok(s) && n > 0)
        gate_say(g, "culprit: %zu search build(s) a killed keel-gate left running: built again\n",
                 n);
    long long ids[SEARCH_ACTIVE_MAX];
    size_t k = 0;
    if (keel_ok(s)) /* verdicts recorded, not yet handed to the backout (a kill between) */
        s = gate_store_search_unhanded(g->store, g->target, ids, SEARCH_ACTIVE_MAX, &k);
    for (size_t i = 0; keel_ok(s) && i < k; i++) {
        search_state ss;
        s = replay(g, ids[i], &ss);
        if (!keel_ok(s))
            break;
        gate_culprit_verdict v;
        gate_culprit_verdict_get(ss.c, &v);
        if (v.state == GATE_CULPRIT_VERIFIED)
            s = hand(g, &ss, v.commit);
        state_free(&ss);
    }
    return s;
}

/* The flake rate a search of `config` uses: its measured one, within the floor and the ceiling. */
static keel_status flake_of(gate *g, const char *config, double *flake, unsigned long long *runs)
{
    double rate = 0;
    keel_status s = gate_store_flake_rate(g->store, g->target, config, &rate, runs);
    double floor = (double)GATE_SEARCH_FLAKE_FLOOR_PERMILLE / 1000.0;
    double ceil = (double)GATE_SEARCH_FLAKE_CEIL_PERMILLE / 1000.0;
    *flake = rate < floor ? floor : rate > ceil ? ceil : rate;
    return s;
}

/* Search id started (0: none, `why` said): told. */
static keel_status say_started(gate *g, long long id, const char *commit, const char *config,
                               double flake, unsigned long long runs, const char *why)
{
    if (id == 0) {
        gate_say(g, "culprit: '%s' failed at %.12s: %s, nothing to search\n", config, commit, why);
        return KEEL_OK;
    }
    gate_search_row row;
    keel_status s = gate_store_search_get(g->store, id, &row);
    if (keel_ok(s))
        gate_say(g,
                 "culprit: searching %u commit(s) up to %.12s for what broke '%s' at level %s "
                 "(flake rate %.3f, %llu build(s) measured)\n",
                 row.n, commit, config, row.level, flake, runs);
    return s;
}

/*
 * No search can start for `config`'s failure at `commit` (flake: its measured
 * rate, runs: the builds measured): when the configuration flakes, the oldest
 * failure of its history is built again (gate_store_post_again_base), up to
 * the runs after which that many failures in a row are less likely than 1%.
 */
static keel_status confirm_base(gate *g, const char *commit, const char *config, double flake,
                                unsigned long long runs)
{
    if (runs == 0 || flake <= (double)GATE_SEARCH_FLAKE_FLOOR_PERMILLE / 1000.0)
        return KEEL_OK; /* measured not to flake: a failure is a failure */
    unsigned max = 2;   /* failures in a row as likely as a flake's below 1% */
    double p = flake * flake;
    while (p >= 0.01 && max < GATE_SEARCH_BASE_RUNS) {
        p *= flake;
        max++;
    }
    char again[GATE_OID_HEX] = "";
    keel_status s =
        gate_store_post_again_base(g->store, g->target, commit, config, max, gate_now_s(), again);
    if (keel_ok(s) && again[0] != '\0')
        gate_say(g,
                 "culprit: '%s' failed at %.12s and no commit before it is known to pass: "
                 "%.12s, its oldest failure, built again to tell a flake (flake rate %.3f, "
                 "%u runs at most)\n",
                 config, commit, again, flake, max);
    return s;
}

keel_status gate_search_post_failed(gate *g, const char *commit, const char *config, unsigned tier,
                                    const char *was)
{
    if (tier > 2)
        return KEEL_OK; /* informational */
    bool busy = false;
    keel_status s = gate_store_search_busy(g->store, g->target, config, &busy);
    if (!keel_ok(s) || busy)
        return s;
    double flake = 0;
    unsigned long long runs = 0;
    s = flake_of(g, config, &flake, &runs);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "starting the culprit search of '%s'", config);
    if (strcmp(was, "failed") == 0) /* the same red streak: searched, or no base for it yet */
        return confirm_base(g, commit, config, flake, runs);
    long long id = 0;
    s = gate_store_search_new(g->store, g->target, config, tier, commit, flake, gate_now_s(), &id);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "starting the culprit search of '%s'", config);
    s = say_started(g, id, commit, config, flake, runs, "no commit before it is known to pass it");
    if (keel_ok(s) && id == 0)
        s = confirm_base(g, commit, config, flake, runs);
    return s;
}

/* The commit of the newest nightly run of `config` before the one due at `due_at` that passed. */
static keel_status nightly_pass(gate *g, const char *config, long long due_at,
                                char pass[GATE_OID_HEX])
{
    enum { ROWS = 64 };
    pass[0] = '\0';
    void *mem = NULL;
    keel_status s = keel_heap_calloc(GATE_HEAP, ROWS, sizeof(gate_nightly_row), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the nightly history of '%s'", config);
    gate_nightly_row *rows = (gate_nightly_row *)mem;
    size_t n = 0;
    s = gate_store_nightly_history(g->store, g->target, config, rows, ROWS, &n);
    for (size_t i = 0; keel_ok(s) && i < n && pass[0] == '\0'; i++)
        if (rows[i].due_at < due_at && strcmp(rows[i].state, "done") == 0 &&
            rows[i].runs > rows[i].fails)
            gate_fmt(pass, GATE_OID_HEX, "%s", rows[i].commit);
    keel_heap_free(GATE_HEAP, mem);
    return s;
}

keel_status gate_search_nightly_failed(gate *g, const char *commit, const char *config,
                                       unsigned tier, const char *was, long long due_at)
{
    if (tier > 2 || strcmp(was, "failed") == 0)
        return KEEL_OK; /* informational; or the same failure, searched already */
    bool busy = false;
    keel_status s = gate_store_search_covering(g->store, g->target, config, commit, &busy);
    if (keel_ok(s) && busy)
        gate_say(g, "culprit: '%s' failed at %.12s at level nightly: a search running covers it\n",
                 config, commit);
    if (!keel_ok(s) || busy)
        return s;
    char pass[GATE_OID_HEX];
    s = nightly_pass(g, config, due_at, pass);
    void *mem = NULL;
    if (keel_ok(s))
        s = keel_heap_calloc(GATE_HEAP, GATE_SEARCH_RANGE_MAX + 1, GATE_OID_HEX, &mem);
    char(*range)[GATE_OID_HEX] = (char(*)[GATE_OID_HEX])mem;
    size_t n = 0;
    bool reached = false;
    if (keel_ok(s) && pass[0] != '\0' && strcmp(pass, commit) != 0)
        s = gate_first_parents(g->repo, commit, pass, range + 1, GATE_SEARCH_RANGE_MAX, &n,
                               &reached);
    const char *why = pass[0] == '\0'             ? "no nightly run before it passed"
                      : strcmp(pass, commit) == 0 ? "its nightly run passed before (a flake)"
                      : !reached ? "the last commit that passed is not on its first-parent line "
                                   "within the range's limit"
                                 : NULL;
    double flake = 0;
    unsigned long long runs = 0;
    long long id = 0;
    if (keel_ok(s) && why == NULL) {
        gate_fmt(range[0], GATE_OID_HEX, "%s", pass);
        for (size_t i = 0; i < n / 2; i++) { /* oldest first after the pass */
            char t[GATE_OID_HEX];
            memcpy(t, range[1 + i], sizeof(t));
            memcpy(range[1 + i], range[n - i], sizeof(t));
            memcpy(range[n - i], t, sizeof(t));
        }
        s = flake_of(g, config, &flake, &runs);
        if (keel_ok(s))
            s = gate_store_search_new_range(g->store, g->target, config, tier, "nightly", range,
                                            n + 1, flake, gate_now_s(), &id);
    }
    keel_heap_free(GATE_HEAP, mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "starting the nightly culprit search of '%s'", config);
    return say_started(g, id, commit, config, flake, runs, why);
}

keel_status gate_search_flow_start(gate *g, const char *config, unsigned tier,
                                   char (*range)[GATE_OID_HEX], size_t count, long long *id)
{
    double flake = 0;
    unsigned long long runs = 0;
    keel_status s = flake_of(g, config, &flake, &runs);
    if (keel_ok(s))
        s = gate_store_search_new_range(g->store, g->target, config, tier, "flow", range, count,
                                        flake, gate_now_s(), id);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "starting the culprit search of a flow merge's '%s'", config);
    return say_started(g, *id, range[count - 1], config, flake, runs, "");
}

/* Start search ss's builds on up to `free` slots; *started: how many. */
static keel_status start_builds(gate *g, search_state *ss, unsigned free, unsigned *started)
{
    keel_status s = KEEL_OK;
    *started = 0;
    while (keel_ok(s) && *started < free) {
        unsigned idx = 0;
        size_t k = 0;
        s = gate_culprit_next(ss->c, 1, &idx, &k);
        if (!keel_ok(s) || k == 0)
            break;
        char commit[GATE_OID_HEX], log[GATE_PATH_MAX];
        s = gate_store_search_commit(g->store, ss->row.id, idx, commit);
        gate_fmt(log, sizeof(log), "%s/logs/culprit-%lld-%.12s-%s-%u.log", g->work, ss->row.id,
                 commit, ss->row.config, (unsigned)ss->nbuilds + *started + 1);
        long long build = 0;
        if (keel_ok(s))
            s = gate_store_search_build_start(g->store, ss->row.id, idx, log, gate_now_s(), &build);
        CRASH_POINT(search_after_start);
        /* a flow merge's: the configuration as the queue tested the merge (any level but try) */
        gate_level level = strcmp(ss->row.level, "nightly") == 0 ? GATE_LEVEL_NIGHTLY
                           : strcmp(ss->row.level, "flow") == 0
                               ? (gate_level)(GATE_LEVEL_GATE | GATE_LEVEL_PRE_MERGE |
                                              GATE_LEVEL_POST | GATE_LEVEL_NIGHTLY)
                               : GATE_LEVEL_POST;
        if (keel_ok(s))
            s = gate_post_launch(g, level, commit, ss->row.config, log, build);
        if (!keel_ok(s) && build != 0 && !gate_config_fault_is_gates(s)) {
            /* the commit cannot be built with it (no such configuration there): no result */
            char line[GATE_REASON_MAX];
            gate_status_line(s, line, sizeof(line));
            keel_status_free(s);
            gate_say(g, "culprit: %.12s not built: %s\n", commit, line);
            s = gate_store_search_build_end(g->store, build, true, false, gate_now_s(), NULL);
            if (keel_ok(s))
                s = gate_culprit_abandon(ss->c, idx);
            continue;
        }
        if (keel_ok(s)) {
            (*started)++;
            gate_say(g, "culprit: search %lld builds %.12s with '%s' (commit %u of %u)\n",
                     ss->row.id, commit, ss->row.config, idx, ss->row.n);
        }
    }
    return s;
}

keel_status gate_search_turn(gate *g, const char *level, bool queue_busy, bool paused, bool *busy)
{
    *busy = false;
    long long ids[SEARCH_ACTIVE_MAX];
    size_t n = 0;
    keel_status s =
        gate_store_search_active(g->store, g->target, level, ids, SEARCH_ACTIVE_MAX, &n);
    if (!keel_ok(s) || n == 0)
        return s;
    *busy = !paused;
    unsigned slots = gate_slots(g->tip_cfg);
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        unsigned outstanding = gate_pool_outstanding(g->pool);
        if (queue_busy || paused || gate_stop_requested(g) || outstanding >= slots)
            break;
        search_state ss;
        s = replay(g, ids[i], &ss);
        if (!keel_ok(s))
            break;
        unsigned started = 0;
        s = start_builds(g, &ss, slots - outstanding, &started);
        if (keel_ok(s))
            s = settle(g, &ss); /* a verdict the store missed (a kill), or a budget spent */
        state_free(&ss);
    }
    return s;
}

keel_status gate_search_build_done(gate *g, long long build, bool no_result, bool failed,
                                   const char *commit, const char *config)
{
    long long search = 0;
    keel_status s =
        gate_store_search_build_end(g->store, build, no_result, failed, gate_now_s(), &search);
    if (keel_ok(s))
        gate_say(g, "culprit: %.12s '%s' %s\n", commit, config,
                 no_result ? "no result: to build again"
                 : failed  ? "failed"
                           : "passed");
    search_state ss;
    if (keel_ok(s))
        s = replay(g, search, &ss);
    if (keel_ok(s)) {
        s = settle(g, &ss);
        state_free(&ss);
    }
    return s;
}

keel_status gate_search_verdict(gate *g, long long id, gate_culprit_verdict *out)
{
    search_state ss;
    keel_status s = replay(g, id, &ss);
    if (keel_ok(s)) {
        gate_culprit_verdict_get(ss.c, out);
        state_free(&ss);
    }
    return s;
}
