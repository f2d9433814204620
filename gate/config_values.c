/*
 * config_values.c - the values of gate.conf's keys, for its sections
 * (config_sections.c, config_flow.c): the names of strategies, levels and
 * executors, sizes, durations, limits, numbers, booleans, commands, branch
 * names, paths, Slurm requests.
 */
#define _GNU_SOURCE 1
#include "config_int.h"

#include "git.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const strategy_names[] = {"serial", "batch", "speculative", "speculative-batch",
                                             "adaptive"};

const char *gate_strategy_name(gate_strategy s)
{
    if ((unsigned)s >= sizeof(strategy_names) / sizeof(strategy_names[0]))
        return "?";
    return strategy_names[s];
}

static const char *const level_names[] = {"try", "gate", "post", "nightly", "pre-merge"};
enum { NLEVELS = sizeof(level_names) / sizeof(level_names[0]) };

const char *gate_level_name(gate_level l)
{
    for (unsigned i = 0; i < NLEVELS; i++)
        if ((unsigned)l == 1u << i)
            return level_names[i];
    return "?";
}

bool gate_config_at(const gate_matrix_config *m, gate_level l)
{
    return (m->levels & (unsigned)l) != 0;
}

const char *gate_executor_name(gate_executor e)
{
    return e == GATE_EXECUTOR_SLURM ? "slurm" : "local";
}

/* A character of a variable's name (a command's NAME=value, as a shell reads one). */
bool gate__config_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The limit keys, in [gate] (defaults) and [config NAME] (its own). */
typedef struct limit_key {
    const char *name;
    size_t offset; /* in gate_limits */
    unsigned bit;  /* GATE_LIMIT_* */
    bool size;     /* a size (512K, 4G); else a whole number */
} limit_key;

static const limit_key limit_keys[] = {
    {"memory", offsetof(gate_limits, memory), GATE_LIMIT_MEMORY, true},
    {"processes", offsetof(gate_limits, processes), GATE_LIMIT_PROCESSES, false},
    {"cpu", offsetof(gate_limits, cpu), GATE_LIMIT_CPU, false},
    {"output", offsetof(gate_limits, output), GATE_LIMIT_OUTPUT, true},
    {"disk", offsetof(gate_limits, disk), GATE_LIMIT_DISK, true},
    {"tmp", offsetof(gate_limits, tmp), GATE_LIMIT_TMP, true}};

void gate_limits_default(gate_limits *l)
{
    KEEL_ASSERT(l != NULL);
    l->memory = GATE_DEFAULT_MEMORY;
    l->processes = GATE_DEFAULT_PROCESSES;
    l->cpu = GATE_DEFAULT_CPU;
    l->output = GATE_DEFAULT_OUTPUT;
    l->disk = GATE_DEFAULT_DISK;
    l->tmp = GATE_DEFAULT_TMP;
}

keel_status gate_size_parse(const char *text, unsigned long long *out)
{
    KEEL_ASSERT(text != NULL && out != NULL);
    static const char units[] = "KMGT";
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    unsigned shift = 0;
    const char *u = *end != '\0' ? strchr(units, *end & ~0x20) : NULL;
    if (u != NULL && *u != '\0') {
        shift = 10u * (unsigned)(u - units + 1);
        end++;
        if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
            end += strlen(end);
    }
    if (text[0] < '0' || text[0] > '9' || *end != '\0')
        return KEEL_ERR(KEEL_E_PARSE, "'%s' is not a size (512K, 64M, 4G, or bytes)", text);
    if (errno == ERANGE || (shift > 0 && v > (~0ull >> shift)))
        return KEEL_ERR(KEEL_E_RANGE, "size '%s' is too large", text);
    *out = v << shift;
    return KEEL_OK;
}

keel_status gate_duration_parse(const char *text, unsigned long long *seconds)
{
    KEEL_ASSERT(text != NULL && seconds != NULL);
    static const struct {
        char unit;
        unsigned long long s;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    unsigned long long mult = 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && end[0] != '\0' && end[1] == '\0';
         i++)
        if (*end == units[i].unit)
            mult = units[i].s;
    if (text[0] < '0' || text[0] > '9' || (*end != '\0' && mult == 0) || (*end == '\0' && v != 0))
        return KEEL_ERR(KEEL_E_PARSE,
                        "'%s' is not a duration: a whole number with a unit, s, m, h, d or w "
                        "(90s, 30m, 4h, 7d, 2w), or 0",
                        text);
    if (mult == 0)
        mult = 1;
    if (errno == ERANGE || v > 100ULL * 365 * 86400 / mult)
        return KEEL_ERR(KEEL_E_RANGE, "duration '%s' is longer than 100 years", text);
    *seconds = v * mult;
    return KEEL_OK;
}

bool gate_env_forbidden(const char *name, size_t len)
{
    return (len >= 10 && strncmp(name, "KEEL_GATE_", 10) == 0) ||
           (len >= 4 && strncmp(name, "GIT_", 4) == 0) ||
           (len == 13 && strncmp(name, "SSH_AUTH_SOCK", 13) == 0) ||
           (len == 12 && strncmp(name, "KEEL_OPTIONS", 12) == 0);
}

keel_status gate__config_parse_uint(const gate_config_state *st, const char *key, const char *value,
                                    unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (value[0] == '\0' || value[0] == '-' || *end != '\0')
        return gate__config_errf(st, KEEL_E_PARSE, "'%s' must be a whole number, not '%s'", key,
                                 value);
    if (errno == ERANGE || v < lo || v > hi)
        return gate__config_errf(st, KEEL_E_RANGE, "'%s' = %s is out of range [%u, %u]", key, value,
                                 lo, hi);
    *out = (unsigned)v;
    return KEEL_OK;
}

keel_status gate__config_parse_bool(const gate_config_state *st, const char *key, const char *value,
                                    bool *out)
{
    if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0) {
        *out = true;
        return KEEL_OK;
    }
    if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "0") == 0) {
        *out = false;
        return KEEL_OK;
    }
    return gate__config_errf(st, KEEL_E_PARSE, "'%s' must be yes or no, not '%s'", key, value);
}

keel_status gate__config_set_words(const gate_config_state *st, const char *key, const char *value,
                                   gate_words *w)
{
    gate_words parsed;
    keel_status s = gate_words_split(value, &parsed);
    if (!keel_ok(s))
        return keel_status_with_uint(KEEL_WRAP(s, KEEL_E_PARSE, "%s:%zu: %sbad value for '%s'",
                                               st->origin, st->line, st->key_of, key),
                                     "line", (unsigned long long)st->line);
    gate_words_free(w); /* a key given twice: the last one wins */
    *w = parsed;
    return KEEL_OK;
}

/*
 * A command (build, test, notify): its words, refused when it holds shell
 * syntax (gate_words_shell) or starts with a variable's assignment
 * (NAME=value), which only a shell would understand: no shell runs it.
 */
keel_status gate__config_set_command(const gate_config_state *st, const char *key,
                                     const char *value, gate_words *w)
{
    gate_shell sh;
    memset(&sh, 0, sizeof(sh));
    size_t at =
        st->line_text != NULL && value >= st->line_text ? (size_t)(value - st->line_text) : 0;
    char fix[200];
    if (strchr(value, '\'') == NULL && strlen(value) < 120)
        (void)snprintf(fix, sizeof(fix), "%s = sh -c '%s'", key, value);
    else
        (void)snprintf(fix, sizeof(fix), "%s = sh -c '...'", key);
    if (gate_words_shell(value, &sh))
        return gate__config_errf(
            st, KEEL_E_PARSE,
            "'%s': '%s' at column %zu is shell syntax (%s), but commands are not run by "
            "a shell: they are split into words and run directly; put the commands in a "
            "script in the repository and run that (%s = sh ci/%s.sh), or ask for a "
            "shell (%s)",
            key, sh.found, at + sh.column, sh.what, key, key, fix);
    keel_status s = gate__config_set_words(st, key, value, w);
    const char *first = keel_ok(s) && w->n > 0 ? w->words[0] : "";
    size_t name = 0;
    while (gate__config_name_char(first[name]) &&
           !(name == 0 && first[0] >= '0' && first[0] <= '9'))
        name++;
    if (name > 0 && first[name] == '=')
        s = gate__config_errf(
            st, KEEL_E_PARSE,
            "'%s': '%s' sets a variable in a shell, but commands are not run by a shell: "
            "the program would be '%s'; %s",
            key, first, first,
            strcmp(key, "notify") == 0 ? "run the hook through a script, or 'sh -c'"
                                       : "set the variable in 'env' of this configuration");
    return s;
}

/* Is `name` usable as a configuration name (shown in logs, used in file names)? */
bool gate__config_good_name(const char *name)
{
    if (name[0] == '\0' || strlen(name) > 64)
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return name[0] != '.' && name[0] != '-';
}

/* Why good_name refuses `name`, for the error. */
const char *gate__config_bad_name_why(const char *name)
{
    if (strlen(name) > 64)
        return "is longer than 64 bytes";
    if (name[0] == '.' || name[0] == '-')
        return "starts with '.' or '-'";
    return "must be letters, digits, '-', '_' or '.'";
}

/* A limit key (memory, processes, ...) into `l`; *bit set to its GATE_LIMIT_* bit.  NOTFOUND: not one. */
keel_status gate__config_limit_key_parse(const gate_config_state *st, const char *key,
                                         const char *value, gate_limits *l, unsigned *bit)
{
    for (size_t i = 0; i < sizeof(limit_keys) / sizeof(limit_keys[0]); i++) {
        const limit_key *k = &limit_keys[i];
        if (strcmp(key, k->name) != 0)
            continue;
        unsigned long long v = 0;
        if (k->size) {
            keel_status s = gate_size_parse(value, &v);
            if (!keel_ok(s)) {
                keel_status_free(s);
                return gate__config_errf(
                    st, KEEL_E_PARSE,
                    "'%s' must be a size such as 512K, 64M or 4G (0: no limit), not '%s'", key,
                    value);
            }
        } else {
            unsigned n = 0;
            keel_status s = gate__config_parse_uint(st, key, value, 0, 1000000000u, &n);
            if (!keel_ok(s))
                return s;
            v = n;
        }
        memcpy((char *)l + k->offset, &v, sizeof(v));
        *bit = k->bit;
        return KEEL_OK;
    }
    return KEEL_ERR(KEEL_E_NOTFOUND, "not a limit");
}

void gate__config_limits_inherit(gate_matrix_config *m, const gate_limits *defaults)
{
    for (size_t k = 0; k < sizeof(limit_keys) / sizeof(limit_keys[0]); k++)
        if ((m->limits_set & limit_keys[k].bit) == 0)
            memcpy((char *)&m->limits + limit_keys[k].offset,
                   (const char *)defaults + limit_keys[k].offset, sizeof(unsigned long long));
}

/* `pass-env`: variable names, none of those a job must never get. */
keel_status gate__config_set_pass_env(const gate_config_state *st, const char *value, gate_words *w)
{
    keel_status s = gate__config_set_words(st, "pass-env", value, w);
    for (size_t i = 0; keel_ok(s) && i < w->n; i++) {
        const char *name = w->words[i];
        size_t len = strlen(name);
        bool ok = len > 0 && !(name[0] >= '0' && name[0] <= '9');
        for (const char *p = name; ok && *p != '\0'; p++)
            ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                 *p == '_';
        if (!ok)
            s = gate__config_errf(st, KEEL_E_PARSE, "'pass-env': '%s' is not a variable name",
                                  name);
        else if (gate_env_forbidden(name, len))
            s = gate__config_errf(
                st, KEEL_E_INVAL,
                "'pass-env': '%s' never reaches a job (the gate's credentials, git's "
                "variables and KEEL_OPTIONS stay the gate's; set a job's own in 'env')",
                name);
    }
    return s;
}

/* ": <the reason>" when gate_branch_why has one for `name` (into buf), else "". */
const char *gate__config_branch_reason(const char *name, char *buf, size_t size)
{
    char why[160];
    if (!gate_branch_why(name, why, sizeof(why)))
        return "";
    (void)snprintf(buf, size, ": %s", why);
    return buf;
}

/*
 * Whether `name` is refused as a branch (the gate's own rule, empty, or
 * `size` bytes or longer) in *refused; an error only when the check itself
 * failed, in the context of `what` (the key or section being read).
 */
keel_status gate__config_branch_refused(const gate_config_state *st, const char *what,
                                        const char *name, size_t size, bool *refused)
{
    keel_status s = name[0] != '\0' ? gate_branch_check(name) : KEEL_OK;
    if (!keel_ok(s) && !keel_status_is(s, &gate_codes, GATE_E_BAD_REF))
        return KEEL_CONTEXT(s, "%s:%zu: checking %s", st->origin, st->line, what);
    *refused = name[0] == '\0' || !keel_ok(s) || strlen(name) >= size;
    keel_status_free(s);
    return KEEL_OK;
}

/* `targets`: branch names, each once, at most GATE_MAX_TARGETS (one gate, several targets). */
keel_status gate__config_set_targets(const gate_config_state *st, const char *value, gate_words *w)
{
    keel_status s = gate__config_set_words(st, "targets", value, w);
    if (keel_ok(s) && (w->n == 0 || w->n > GATE_MAX_TARGETS))
        s = gate__config_errf(st, KEEL_E_PARSE, "'targets' names 1 to %d branches, not %zu",
                              GATE_MAX_TARGETS, w->n);
    char why[192];
    for (size_t i = 0; keel_ok(s) && i < w->n; i++) {
        const char *name = w->words[i];
        bool refused = false;
        keel_status b =
            gate__config_branch_refused(st, "'targets'", name, GATE_BRANCH_MAX, &refused);
        if (!keel_ok(b))
            return b;
        if (refused)
            s = gate__config_errf(st, KEEL_E_PARSE,
                                  "'targets': '%s' is not a branch name git accepts%s", name,
                                  gate__config_branch_reason(name, why, sizeof(why)));
        for (size_t k = 0; keel_ok(s) && k < i; k++)
            if (strcmp(w->words[k], name) == 0)
                s = gate__config_errf(st, KEEL_E_PARSE, "'targets': '%s' is named twice", name);
    }
    return s;
}

/*
 * `writable`: absolute paths without '.' or '..' components, none of them /
 * nor under /proc, /sys or /dev, however spelled ("//proc", "/proc/", "//"):
 * judged by their components, not their text.
 */
keel_status gate__config_set_writable(const gate_config_state *st, const char *value, gate_words *w)
{
    keel_status s = gate__config_set_words(st, "writable", value, w);
    for (size_t i = 0; keel_ok(s) && i < w->n; i++) {
        const char *p = w->words[i];
        bool dots = false, under_system = false;
        size_t depth = 0;
        for (const char *c = p + strspn(p, "/"); *c != '\0'; c += strspn(c, "/")) {
            size_t n = strcspn(c, "/");
            dots |= (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.');
            if (depth++ == 0)
                under_system = (n == 4 && strncmp(c, "proc", 4) == 0) ||
                               (n == 3 && (strncmp(c, "sys", 3) == 0 || strncmp(c, "dev", 3) == 0));
            c += n;
        }
        if (p[0] != '/' || dots)
            s = gate__config_errf(st, KEEL_E_PARSE,
                                  "'writable': '%s' must be an absolute path without '..' or '.'",
                                  p);
        else if (depth == 0 || under_system)
            s = gate__config_errf(st, KEEL_E_INVAL,
                                  "'writable': '%s' cannot be made writable for a job", p);
        else if (strlen(p) >= 1024)
            s = gate__config_errf(st, KEEL_E_RANGE, "'writable': a path longer than 1023 bytes");
    }
    return s;
}

/*
 * A Slurm partition or constraint: the characters Slurm's own syntax uses
 * (names, and for a constraint `&`, `|`, `!`, `*`, counts and brackets), no
 * blanks and not starting with '-' (the value is one argument of sbatch).
 */
static keel_status set_slurm_name(const gate_config_state *st, const char *key, const char *value,
                                  const char *extra, char *out, size_t size)
{
    size_t len = strlen(value);
    if (len == 0 || len >= size)
        return gate__config_errf(st, KEEL_E_RANGE, "'%s' must be 1 to %zu bytes long", key,
                                 size - 1);
    if (value[0] == '-')
        return gate__config_errf(st, KEEL_E_PARSE, "'%s' cannot start with '-', not '%s'", key,
                                 value);
    for (const char *p = value; *p != '\0'; p++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9') || strchr("_.-", *p) != NULL ||
                  strchr(extra, *p) != NULL;
        if (!ok)
            return gate__config_errf(st, KEEL_E_PARSE, "'%s': '%c' is not allowed in '%s'", key, *p,
                                     value);
    }
    (void)snprintf(out, size, "%s", value);
    return KEEL_OK;
}

/* The Slurm request keys of [config NAME]; KEEL_E_NOTFOUND when `key` is none of them. */
keel_status gate__config_slurm_key(const gate_config_state *st, const char *key, const char *value,
                                   gate_slurm_request *r)
{
    if (strcmp(key, "partition") == 0)
        return set_slurm_name(st, key, value, ",", r->partition, sizeof(r->partition));
    if (strcmp(key, "constraint") == 0)
        return set_slurm_name(st, key, value, "&|!*,:[]()", r->constraint, sizeof(r->constraint));
    if (strcmp(key, "cpus") == 0)
        return gate__config_parse_uint(st, key, value, 1, 4096, &r->cpus);
    if (strcmp(key, "time-limit") == 0)
        return gate__config_parse_uint(st, key, value, 0, 7 * 24 * 60, &r->time_min);
    if (strcmp(key, "slurm-memory") == 0) {
        keel_status s = gate_size_parse(value, &r->memory);
        if (keel_ok(s) && r->memory != 0 && r->memory < (1ull << 20))
            s = KEEL_ERR(KEEL_E_RANGE, "below 1M");
        if (keel_ok(s))
            return KEEL_OK;
        keel_status_free(s);
        return gate__config_errf(
            st, KEEL_E_PARSE,
            "'slurm-memory' must be a size of at least 1M such as 512M or 4G (0: not "
            "asked), not '%s'",
            value);
    }
    return KEEL_ERR(KEEL_E_NOTFOUND, "not a slurm key");
}

/* `levels = gate post ...`: one or more level names, each once. */
keel_status gate__config_set_levels(const gate_config_state *st, const char *value, unsigned *out)
{
    gate_words w;
    keel_status s = gate_words_split(value, &w);
    if (!keel_ok(s))
        return keel_status_with_uint(KEEL_WRAP(s, KEEL_E_PARSE, "%s:%zu: %sbad value for 'levels'",
                                               st->origin, st->line, st->key_of),
                                     "line", (unsigned long long)st->line);
    unsigned levels = 0;
    for (size_t i = 0; keel_ok(s) && i < w.n; i++) {
        unsigned k = 0;
        while (k < NLEVELS && strcmp(w.words[i], level_names[k]) != 0)
            k++;
        if (k == NLEVELS) {
            const char *near = keel_suggest(w.words[i], level_names, NLEVELS);
            s = gate__config_errf(
                st, KEEL_E_PARSE,
                "'levels': unknown level '%s' (try, gate, post, nightly or pre-merge)%s%s%s",
                w.words[i], near != NULL ? "; did you mean '" : "", near != NULL ? near : "",
                near != NULL ? "'?" : "");
        } else if ((levels & (1u << k)) != 0) {
            s = gate__config_errf(st, KEEL_E_PARSE, "'levels': level '%s' is named twice in '%s'",
                                  w.words[i], value);
        }
        levels |= 1u << k;
    }
    if (keel_ok(s) && w.n == 0)
        s = gate__config_errf(
            st, KEEL_E_PARSE,
            "'levels' needs at least one level (try, gate, post, nightly or pre-merge)");
    gate_words_free(&w);
    if (keel_ok(s))
        *out = levels;
    return s;
}

/* A duration of [gate] (gate_duration_parse), in seconds. */
static keel_status parse_duration(const gate_config_state *st, const char *key, const char *value,
                                  long long *out)
{
    unsigned long long secs = 0;
    keel_status s = gate_duration_parse(value, &secs);
    if (keel_ok(s)) {
        *out = (long long)secs; /* at most 100 years */
        return KEEL_OK;
    }
    keel_status e = gate__config_errf(st, KEEL_E_PARSE, "'%s': %s", key, keel_status_message(s));
    keel_status_free(s);
    return e;
}

/* The automatic backout's [gate] keys; KEEL_E_NOTFOUND when `key` is none of them. */
keel_status gate__config_backout_key(const gate_config_state *st, const char *key,
                                     const char *value, gate_config *c)
{
    if (strcmp(key, "backout") == 0)
        return gate__config_parse_bool(st, key, value, &c->backout);
    if (strcmp(key, "hold-when-red") == 0)
        return gate__config_parse_bool(st, key, value, &c->hold_when_red);
    if (strcmp(key, "backout-budget") == 0)
        return gate__config_parse_uint(st, key, value, 0, 1000, &c->backout_budget);
    if (strcmp(key, "backout-max-age") == 0)
        return parse_duration(st, key, value, &c->backout_max_age_s);
    if (strcmp(key, "tier2-fix-time") == 0)
        return parse_duration(st, key, value, &c->tier2_fix_s);
    if (strcmp(key, "revert-near") == 0)
        return gate__config_parse_uint(st, key, value, 0, GATE_REVERT_NEAR_MAX, &c->revert_near);
    return KEEL_ERR(KEEL_E_NOTFOUND, "not a backout key");
}

/* `ccache-size`: a size (0: no compiler cache), at least 1M when not 0 (ccache's own floor). */
keel_status gate__config_set_ccache_size(const gate_config_state *st, const char *value,
                                         unsigned long long *out)
{
    keel_status s = gate_size_parse(value, out);
    if (!keel_ok(s)) {
        keel_status_free(s);
        return gate__config_errf(
            st, KEEL_E_PARSE,
            "'ccache-size' must be a size such as 512M or 2G (0: no compiler cache), "
            "not '%s'",
            value);
    }
    if (*out != 0 && *out < 1024ull * 1024)
        return gate__config_errf(
            st, KEEL_E_RANGE,
            "'ccache-size' %s is below ccache's smallest cache, 1M (0: no compiler cache)", value);
    return KEEL_OK;
}

keel_status gate__config_set_strategy(const gate_config_state *st, const char *value,
                                      gate_strategy *out)
{
    size_t n = sizeof(strategy_names) / sizeof(strategy_names[0]);
    for (size_t i = 0; i < n; i++)
        if (strcmp(value, strategy_names[i]) == 0) {
            *out = (gate_strategy)i;
            return KEEL_OK;
        }
    const char *near = keel_suggest(value, strategy_names, n);
    return gate__config_errf(
        st, KEEL_E_PARSE,
        "unknown strategy '%s' (serial, batch, speculative, speculative-batch or "
        "adaptive)%s%s%s",
        value, near != NULL ? "; did you mean '" : "", near != NULL ? near : "",
        near != NULL ? "'?" : "");
}
