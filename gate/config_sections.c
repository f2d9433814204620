/*
 * config_sections.c - the keys of gate.conf's [gate] and [config NAME]
 * sections (their values: config_values.c), and the error for a key a
 * section does not have.
 */
#define _GNU_SOURCE 1
#include "config_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const gate_keys[] = {"crash-limit",     "target",         "slots",
                                        "strategy",        "max-batch",      "max-depth",
                                        "retries",         "notify",         "sandbox",
                                        "memory",          "processes",      "cpu",
                                        "output",          "disk",           "tmp",
                                        "log-days",        "log-max",        "pass-env",
                                        "executor",        "backout",        "backout-budget",
                                        "backout-max-age", "tier2-fix-time", "hold-when-red",
                                        "blame-max",       "ccache-size",    "slurm-launch",
                                        "revert-near",     "targets",        "flaky-alike"};
static const char *const config_keys[] = {
    "build",    "test",      "env",        "timeout", "required",     "network",
    "writable", "memory",    "processes",  "cpu",     "output",       "disk",
    "tmp",      "partition", "constraint", "cpus",    "slurm-memory", "time-limit",
    "levels",   "tier",      "schedule",   "jitter",  "backout",      "ccache-size"};
const char *const gate__config_flow_keys[] = {"trigger",        "interval",  "levels",
                                              "owner",          "remind",    "remind-max",
                                              "escalate-after", "back-merge"};

const size_t gate__config_nflow_keys =
    sizeof(gate__config_flow_keys) / sizeof(gate__config_flow_keys[0]);

bool gate__config_key_in(const char *key, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return true;
    return false;
}

keel_status gate__config_unknown_key(const gate_config_state *st, const char *key,
                                     const char *const *keys, size_t n, const char *section)
{
    static const struct {
        const char *const *keys;
        size_t n;
        const char *section;
    } tables[] = {{gate_keys, sizeof(gate_keys) / sizeof(gate_keys[0]), "[gate]"},
                  {config_keys, sizeof(config_keys) / sizeof(config_keys[0]), "[config NAME]"},
                  {gate__config_flow_keys,
                   sizeof(gate__config_flow_keys) / sizeof(gate__config_flow_keys[0]),
                   "[flow A -> B]"}};
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        if (tables[t].keys != keys && gate__config_key_in(key, tables[t].keys, tables[t].n))
            return gate__config_errf(st, KEEL_E_NOTFOUND, "key '%s' belongs in %s, not in %s", key,
                                     tables[t].section, st->header);
    const char *near = keel_suggest(key, keys, n);
    if (near != NULL)
        return gate__config_errf(st, KEEL_E_NOTFOUND,
                                 "unknown key '%s' in [%s] (did you mean '%s'?)", key, section,
                                 near);
    return gate__config_errf(st, KEEL_E_NOTFOUND, "unknown key '%s' in [%s]", key, section);
}

keel_status gate__config_gate_key(gate_config_state *st, const char *key, const char *value)
{
    gate_config *c = st->cfg;
    if (strcmp(key, "target") == 0) {
        bool refused = false;
        keel_status b =
            gate__config_branch_refused(st, "'target'", value, sizeof(c->target), &refused);
        if (!keel_ok(b))
            return b;
        if (refused) {
            char why[192];
            return gate__config_errf(st, KEEL_E_PARSE,
                                     "'target' must be one branch name, not '%s'%s", value,
                                     gate__config_branch_reason(value, why, sizeof(why)));
        }
        (void)snprintf(c->target, sizeof(c->target), "%s", value);
        c->target_set = true;
        return KEEL_OK;
    }
    if (strcmp(key, "targets") == 0)
        return gate__config_set_targets(st, value, &c->targets);
    if (strcmp(key, "slots") == 0)
        return gate__config_parse_uint(st, key, value, 1, 256, &c->slots);
    if (strcmp(key, "max-batch") == 0)
        return gate__config_parse_uint(st, key, value, 1, 1024, &c->max_batch);
    if (strcmp(key, "max-depth") == 0)
        return gate__config_parse_uint(st, key, value, 1, 256, &c->max_depth);
    if (strcmp(key, "retries") == 0)
        return gate__config_parse_uint(st, key, value, 0, 10, &c->retries);
    if (strcmp(key, "flaky-alike") == 0)
        return gate__config_parse_uint(st, key, value, 2, 3, &c->flaky_alike);
    if (strcmp(key, "blame-max") == 0)
        return gate__config_parse_uint(st, key, value, 1, 100, &c->blame_max);
    if (strcmp(key, "notify") == 0)
        return gate__config_set_command(st, key, value, &c->notify);
    if (strcmp(key, "crash-limit") == 0)
        return gate__config_parse_uint(st, key, value, 0, 1000, &c->crash_limit);
    if (strcmp(key, "sandbox") == 0) {
        if (strcmp(value, "bwrap") != 0 && strcmp(value, "none") != 0)
            return gate__config_errf(st, KEEL_E_PARSE, "'sandbox' must be bwrap or none, not '%s'",
                                     value);
        c->sandbox_none = strcmp(value, "none") == 0;
        return KEEL_OK;
    }
    if (strcmp(key, "log-days") == 0)
        return gate__config_parse_uint(st, key, value, 0, 100000, &c->log_days);
    if (strcmp(key, "log-max") == 0) {
        keel_status s = gate_size_parse(value, &c->log_max);
        if (keel_ok(s))
            return KEEL_OK;
        keel_status_free(s);
        return gate__config_errf(st, KEEL_E_PARSE,
                                 "'log-max' must be a size such as 512M or 2G, not '%s'", value);
    }
    if (strcmp(key, "pass-env") == 0)
        return gate__config_set_pass_env(st, value, &c->pass_env);
    if (strcmp(key, "ccache-size") == 0)
        return gate__config_set_ccache_size(st, value, &c->ccache_size);
    if (strcmp(key, "executor") == 0) {
        if (strcmp(value, "local") != 0 && strcmp(value, "slurm") != 0)
            return gate__config_errf(st, KEEL_E_PARSE,
                                     "'executor' must be local or slurm, not '%s'", value);
        c->executor = strcmp(value, "slurm") == 0 ? GATE_EXECUTOR_SLURM : GATE_EXECUTOR_LOCAL;
        return KEEL_OK;
    }
    if (strcmp(key, "slurm-launch") == 0) {
        if (strcmp(value, "runner") != 0 && strcmp(value, "srun") != 0)
            return gate__config_errf(st, KEEL_E_PARSE,
                                     "'slurm-launch' must be runner or srun, not '%s'", value);
        c->slurm_srun = strcmp(value, "srun") == 0;
        return KEEL_OK;
    }
    keel_status bs = gate__config_backout_key(st, key, value, c);
    if (!KEEL_IS(bs, KEEL_E_NOTFOUND))
        return bs;
    keel_status_free(bs);
    unsigned bit = 0;
    keel_status ls = gate__config_limit_key_parse(st, key, value, &c->limits, &bit);
    if (!KEEL_IS(ls, KEEL_E_NOTFOUND))
        return ls;
    keel_status_free(ls);
    if (strcmp(key, "strategy") == 0)
        return gate__config_set_strategy(st, value, &c->strategy);
    return gate__config_unknown_key(st, key, gate_keys, sizeof(gate_keys) / sizeof(gate_keys[0]),
                                    "gate");
}

keel_status gate__config_config_key(gate_config_state *st, const char *key, const char *value)
{
    gate_matrix_config *m = &st->cfg->configs[st->cfg->nconfigs - 1];
    if (strcmp(key, "build") == 0 || strcmp(key, "test") == 0) {
        keel_status s =
            gate__config_set_command(st, key, value, key[0] == 'b' ? &m->build : &m->test);
        if (!keel_ok(s)) /* reported: "has neither" would only say it again */
            st->command_refused[st->cfg->nconfigs - 1] = true;
        return s;
    }
    if (strcmp(key, "env") == 0) {
        gate_shell sh;
        memset(&sh, 0, sizeof(sh));
        sh.expansions_only = true;
        if (gate_words_shell(value, &sh))
            return gate__config_errf(
                st, KEEL_E_PARSE,
                "'env': '%s' at column %zu is shell syntax (%s), but no shell reads "
                "'env': values are taken as written; write the value out in full",
                sh.found, (size_t)(value - st->line_text) + sh.column, sh.what);
        keel_status s = gate__config_set_words(st, key, value, &m->env);
        if (!keel_ok(s))
            return s;
        for (size_t i = 0; i < m->env.n; i++) {
            const char *w = m->env.words[i], *eq = strchr(w, '=');
            if (eq == NULL || eq == w)
                return gate__config_errf(st, KEEL_E_PARSE,
                                         "'env' entries must be NAME=value, not '%s'", w);
            size_t len = (size_t)(eq - w), name = 0;
            while (name < len && gate__config_name_char(w[name]) && !(w[0] >= '0' && w[0] <= '9'))
                name++;
            if (name < len)
                return gate__config_errf(
                    st, KEEL_E_PARSE,
                    "'env': '%.*s' is not a variable name (letters, digits and '_', not "
                    "a digit first)",
                    (int)len, w);
            for (size_t k = 0; k < i; k++)
                if (strncmp(m->env.words[k], w, len + 1) == 0)
                    return gate__config_errf(st, KEEL_E_EXISTS, "'env': '%.*s' is set twice",
                                             (int)len, w);
        }
        return KEEL_OK;
    }
    if (strcmp(key, "timeout") == 0) {
        keel_status s = gate__config_parse_uint(st, key, value, 1, 7 * 24 * 3600, &m->timeout_s);
        if (KEEL_IS(s, KEEL_E_PARSE)) { /* '15m': the unit is said, not only "a number" */
            keel_status_free(s);
            s = gate__config_errf(st, KEEL_E_PARSE,
                                  "'timeout' must be a whole number of seconds (900: 15 minutes), "
                                  "not '%s'",
                                  value);
        }
        return s;
    }
    if (strcmp(key, "required") == 0)
        return gate__config_parse_bool(st, key, value, &m->required);
    if (strcmp(key, "network") == 0)
        return gate__config_parse_bool(st, key, value, &m->network);
    if (strcmp(key, "writable") == 0)
        return gate__config_set_writable(st, value, &m->writable);
    if (strcmp(key, "levels") == 0)
        return gate__config_set_levels(st, value, &m->levels);
    if (strcmp(key, "tier") == 0)
        return gate__config_parse_uint(st, key, value, 1, 3, &m->tier);
    if (strcmp(key, "backout") == 0) {
        bool on = false;
        keel_status s = gate__config_parse_bool(st, key, value, &on);
        if (keel_ok(s))
            m->backout = on ? 1 : 0;
        return s;
    }
    if (strcmp(key, "ccache-size") == 0) {
        m->ccache_set = true;
        return gate__config_set_ccache_size(st, value, &m->ccache_size);
    }
    if (strcmp(key, "schedule") == 0 || strcmp(key, "jitter") == 0) {
        unsigned long long secs = 0;
        if (strlen(value) >= sizeof(m->schedule_text))
            return gate__config_errf(st, KEEL_E_PARSE, "'%s' is longer than %zu characters", key,
                                     sizeof(m->schedule_text) - 1);
        keel_status s = key[0] == 's' ? gate_cron_parse(value, &m->schedule)
                                      : gate_duration_parse(value, &secs);
        if (keel_ok(s) && key[0] == 'j' && secs > 86400)
            s = KEEL_ERR(KEEL_E_RANGE, "more than a day");
        if (!keel_ok(s)) {
            keel_status e =
                gate__config_errf(st, KEEL_E_PARSE, "'%s': %s", key, keel_status_message(s));
            keel_status_free(s);
            return e;
        }
        if (key[0] == 's')
            (void)snprintf(m->schedule_text, sizeof(m->schedule_text), "%s", value);
        else
            m->jitter_s = (unsigned)secs;
        return KEEL_OK;
    }
    unsigned bit = 0;
    keel_status ls = gate__config_limit_key_parse(st, key, value, &m->limits, &bit);
    if (keel_ok(ls))
        m->limits_set |= bit;
    if (!KEEL_IS(ls, KEEL_E_NOTFOUND))
        return ls;
    keel_status_free(ls);
    keel_status ss = gate__config_slurm_key(st, key, value, &m->slurm);
    if (!KEEL_IS(ss, KEEL_E_NOTFOUND))
        return ss;
    keel_status_free(ss);
    return gate__config_unknown_key(st, key, config_keys,
                                    sizeof(config_keys) / sizeof(config_keys[0]), "config");
}
