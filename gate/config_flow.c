/*
 * config_flow.c - gate.conf's [flow SOURCE -> DESTINATION] sections (flow.h):
 * their keys, and the flows' own rules once the file is read (back-merges
 * made, none twice, no shared flow branch, no cycle but a two-way pair).
 */
#define _GNU_SOURCE 1
#include "config_int.h"

#include "flow.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* A branch of a [flow] header: the gate's rule for a branch name. */
static keel_status flow_branch(const gate_config_state *st, const char *header, const char *b,
                               char *out, size_t size)
{
    char what[256];
    (void)snprintf(what, sizeof(what), "[%.250s]", header);
    bool refused = false;
    keel_status s = gate__config_branch_refused(st, what, b, size, &refused);
    if (!keel_ok(s))
        return s;
    if (refused) {
        char why[192];
        return gate__config_errf(st, KEEL_E_PARSE, "[%s]: '%s' is not a branch name%s", header, b,
                                 gate__config_branch_reason(b, why, sizeof(why)));
    }
    (void)snprintf(out, size, "%s", b);
    return KEEL_OK;
}

/* `[flow SRC -> DST]` (`name` without the brackets): a new flow with the defaults. */
keel_status gate__config_open_flow(gate_config_state *st, char *name)
{
    gate_config *c = st->cfg;
    char header[GATE_BRANCH_MAX * 2 + 16];
    (void)snprintf(header, sizeof(header), "%s", name);
    char *arrow = strstr(name + 4, "->");
    if (arrow == NULL)
        return gate__config_errf(st, KEEL_E_PARSE, "[%s] must be [flow SOURCE -> DESTINATION]",
                                 header);
    *arrow = '\0';
    char *from = gate__config_trim(name + 4), *to = gate__config_trim(arrow + 2);
    if (c->nflows == GATE_MAX_FLOWS)
        return gate__config_errf(st, KEEL_E_FULL, "more than %d flows", (int)GATE_MAX_FLOWS);
    gate_flow_config *f = &c->flows[c->nflows];
    memset(f, 0, sizeof(*f));
    keel_status s = flow_branch(st, header, from, f->from, sizeof(f->from));
    if (keel_ok(s))
        s = flow_branch(st, header, to, f->to, sizeof(f->to));
    if (keel_ok(s) && strcmp(f->from, f->to) == 0)
        s = gate__config_errf(st, KEEL_E_INVAL, "[%s]: a branch cannot flow into itself", header);
    for (size_t i = 0; keel_ok(s) && i < c->nflows; i++)
        if (strcmp(c->flows[i].from, f->from) == 0 && strcmp(c->flows[i].to, f->to) == 0)
            s = gate__config_errf(st, KEEL_E_EXISTS,
                                  "[%s]: flow '%s' -> '%s' is defined twice (line %zu)", header,
                                  f->from, f->to, c->flows[i].line);
    if (!keel_ok(s))
        return s;
    f->trigger = GATE_FLOW_ON_COMMIT;
    f->levels = GATE_LEVEL_GATE;
    f->remind_s[0] = 86400ull;
    f->remind_s[1] = 2ull * 86400;
    f->remind_s[2] = 4ull * 86400;
    f->nremind = 3;
    f->escalate_after = GATE_FLOW_ESCALATE_DEFAULT;
    f->remind_max = GATE_FLOW_REMIND_MAX_PEOPLE;
    f->line = st->line;
    st->flow_interval_set[c->nflows] = false;
    c->nflows++;
    st->section = SECTION_FLOW;
    return KEEL_OK;
}

static keel_status flow_duration(const gate_config_state *st, const char *key, const char *text,
                                 unsigned long long *out)
{
    keel_status s = gate_duration_parse(text, out);
    if (keel_ok(s) && *out == 0)
        s = KEEL_ERR(KEEL_E_RANGE, "zero");
    if (keel_ok(s))
        return KEEL_OK;
    keel_status_free(s);
    return gate__config_errf(
        st, KEEL_E_PARSE, "'%s': '%s' is not a duration above 0 such as 30m, 6h or 1d", key, text);
}

/* `owner = Name <address>`: one person, named (`<ann@x>` alone is not), no control characters. */
static bool owner_ok(const char *v)
{
    const char *lt = strchr(v, '<');
    size_t len = strlen(v);
    if (lt == NULL || lt == v || len < 3 || v[len - 1] != '>' || strchr(lt + 1, '<') != NULL ||
        memchr(lt, '@', (size_t)(v + len - lt)) == NULL || strchr(v, '>') != v + len - 1)
        return false;
    for (const char *p = v; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return lt[1] != '@' && v[len - 2] != '@';
}

/* A key of a [flow] section, known to be one (flow_key). */
static keel_status flow_value(gate_config_state *st, const char *key, const char *value)
{
    gate_flow_config *f = &st->cfg->flows[st->cfg->nflows - 1];
    if (strcmp(key, "trigger") == 0) {
        if (strcmp(value, "commit") == 0) {
            f->trigger = GATE_FLOW_ON_COMMIT;
            return KEEL_OK;
        }
        if (strcmp(value, "schedule") == 0) {
            f->trigger = GATE_FLOW_ON_SCHEDULE;
            return KEEL_OK;
        }
        if (strncmp(value, "every", 5) == 0 && (value[5] == ' ' || value[5] == '\t')) {
            f->trigger = GATE_FLOW_ON_SCHEDULE; /* `trigger = every 6h`: both at once */
            st->flow_interval_set[st->cfg->nflows - 1] = true;
            const char *every = value + 5 + strspn(value + 5, " \t");
            return flow_duration(st, key, every, &f->interval_s);
        }
        return gate__config_errf(st, KEEL_E_PARSE,
                                 "'trigger' must be commit, schedule or 'every DURATION', not '%s'",
                                 value);
    }
    if (strcmp(key, "interval") == 0) {
        st->flow_interval_set[st->cfg->nflows - 1] = true;
        return flow_duration(st, key, value, &f->interval_s);
    }
    if (strcmp(key, "levels") == 0)
        return gate__config_set_levels(st, value, &f->levels);
    if (strcmp(key, "owner") == 0) {
        if (!owner_ok(value) || strlen(value) >= sizeof(f->owner))
            return gate__config_errf(st, KEEL_E_PARSE,
                                     "'owner' must be one person as 'Name <address>', not '%s'",
                                     value);
        (void)snprintf(f->owner, sizeof(f->owner), "%s", value);
        return KEEL_OK;
    }
    if (strcmp(key, "remind") == 0) {
        gate_words w = {NULL, 0};
        keel_status s = gate__config_set_words(st, key, value, &w);
        if (keel_ok(s) && (w.n == 0 || w.n > GATE_FLOW_REMIND_MAX))
            s = gate__config_errf(
                st, KEEL_E_RANGE,
                "'remind' needs 1 to %d durations (the back-off between reminders), not %zu",
                (int)GATE_FLOW_REMIND_MAX, w.n);
        for (size_t i = 0; keel_ok(s) && i < w.n; i++)
            s = flow_duration(st, key, w.words[i], &f->remind_s[i]);
        if (keel_ok(s))
            f->nremind = w.n;
        gate_words_free(&w);
        return s;
    }
    if (strcmp(key, "remind-max") == 0)
        return gate__config_parse_uint(st, key, value, 1, GATE_FLOW_PEOPLE_MAX, &f->remind_max);
    if (strcmp(key, "escalate-after") == 0)
        return gate__config_parse_uint(st, key, value, 0, 1000, &f->escalate_after);
    KEEL_ASSERT(strcmp(key, "back-merge") == 0);
    return gate__config_parse_bool(st, key, value, &f->back_merge);
}

/*
 * A key of a [flow A -> B] section: every error of its value begins with
 * "[flow A -> B] ", as the flows' own rules' do (validate_flows).
 */
keel_status gate__config_flow_key(gate_config_state *st, const char *key, const char *value)
{
    if (!gate__config_key_in(key, gate__config_flow_keys, gate__config_nflow_keys))
        return gate__config_unknown_key(st, key, gate__config_flow_keys, gate__config_nflow_keys,
                                        "flow");
    const gate_flow_config *f = &st->cfg->flows[st->cfg->nflows - 1];
    (void)snprintf(st->key_of, sizeof(st->key_of), "[flow %s -> %s] ", f->from, f->to);
    keel_status s = flow_value(st, key, value);
    st->key_of[0] = '\0';
    return s;
}

/*
 * Is there a simple path of flows from path[n-1] back to path[0] that makes a
 * cycle of three branches or more?  path[]: the branches so far, none twice.
 */
static bool flow_cycle(const gate_config *c, const char **path, size_t n)
{
    for (size_t i = 0; i < c->nflows; i++) {
        const gate_flow_config *f = &c->flows[i];
        if (strcmp(f->from, path[n - 1]) != 0)
            continue;
        if (strcmp(f->to, path[0]) == 0) {
            if (n >= 3)
                return true;
            continue;
        }
        bool seen = false;
        for (size_t k = 1; !seen && k < n; k++)
            seen = strcmp(path[k], f->to) == 0;
        if (seen || n == GATE_MAX_FLOWS)
            continue;
        path[n] = f->to;
        if (flow_cycle(c, path, n + 1))
            return true;
    }
    return false;
}

/* The flows' own rules: back-merges made, none twice, no cycle but a two-way pair. */
keel_status gate__config_validate_flows(gate_config_state *st)
{
    gate_config *c = st->cfg;
    keel_status s = KEEL_OK;
    size_t declared = c->nflows;
    for (size_t i = 0; keel_ok(s) && i < declared; i++) {
        gate_flow_config *f = &c->flows[i];
        st->line = f->line;
        bool schedule = f->trigger == GATE_FLOW_ON_SCHEDULE;
        if (schedule != st->flow_interval_set[i])
            s = gate__config_found(
                st, gate__config_errf(st, KEEL_E_PARSE,
                                      schedule ? "[flow %s -> %s] 'trigger = schedule' needs an "
                                                 "'interval' (such as 6h)"
                                               : "[flow %s -> %s] 'interval' is for 'trigger = "
                                                 "schedule' only",
                                      f->from, f->to));
        if (!f->back_merge)
            continue;
        bool twice = false; /* reported once, and no reverse made (it would be twice) */
        for (size_t k = 0; keel_ok(s) && !twice && k < c->nflows; k++)
            if (strcmp(c->flows[k].from, f->to) == 0 && strcmp(c->flows[k].to, f->from) == 0) {
                twice = true;
                s = gate__config_found(
                    st,
                    gate__config_errf(st, KEEL_E_EXISTS,
                                      "[flow %s -> %s] 'back-merge = yes' but flow '%s' -> '%s' is "
                                      "defined (line %zu): say it once",
                                      f->from, f->to, f->to, f->from, c->flows[k].line));
            }
        if (twice)
            continue;
        if (keel_ok(s) && c->nflows == GATE_MAX_FLOWS)
            s = gate__config_found(st, gate__config_errf(st, KEEL_E_FULL,
                                                         "more than %d flows with the back-merges",
                                                         (int)GATE_MAX_FLOWS));
        if (keel_ok(s) && c->nflows < GATE_MAX_FLOWS) {
            gate_flow_config *r = &c->flows[c->nflows++];
            *r = *f;
            memcpy(r->from, f->to, sizeof(r->from));
            memcpy(r->to, f->from, sizeof(r->to));
        }
    }
    for (size_t i = 0; keel_ok(s) && i < c->nflows; i++)
        for (size_t k = i + 1; keel_ok(s) && k < c->nflows; k++) {
            char a[GATE_BRANCH_MAX * 2 + 32], b[GATE_BRANCH_MAX * 2 + 32];
            const gate_flow_config *x = &c->flows[i], *y = &c->flows[k];
            keel_status sa = gate_flow_branch(x->from, x->to, a, sizeof(a));
            keel_status sb = gate_flow_branch(y->from, y->to, b, sizeof(b));
            bool same = keel_ok(sa) && keel_ok(sb) && strcmp(a, b) == 0;
            keel_status_free(sa);
            keel_status_free(sb);
            st->line = y->line;
            if (same)
                s = gate__config_found(
                    st,
                    gate__config_errf(st, KEEL_E_EXISTS,
                                      "[flow %s -> %s] and [flow %s -> %s] (line %zu) would share "
                                      "the flow branch '%s': rename a branch",
                                      y->from, y->to, x->from, x->to, x->line, a));
        }
    bool cycle = false; /* said once, at its first flow */
    for (size_t i = 0; keel_ok(s) && !cycle && i < c->nflows; i++) {
        const char *path[GATE_MAX_FLOWS + 1] = {c->flows[i].from, c->flows[i].to};
        st->line = c->flows[i].line;
        cycle = flow_cycle(c, path, 2);
        if (cycle)
            s = gate__config_found(
                st,
                gate__config_errf(st, KEEL_E_INVAL,
                                  "[flow %s -> %s] is part of a cycle of flows through more than "
                                  "two branches (only a two-way pair may flow both ways)",
                                  c->flows[i].from, c->flows[i].to));
    }
    return s;
}
