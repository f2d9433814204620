/*
 * config.c - parse and validate .keel/gate.conf.
 */
#define _GNU_SOURCE 1
#include "config.h"

#include "flow.h"
#include "git.h"
#include "heaps.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_HEAP KEEL_MODULE_REF(gate_config)

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
static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* ---- the parser -------------------------------------------------------------------- */

/* SECTION_SKIP: a section whose header was refused (gate_config_check reads none of its keys). */
typedef enum section_kind {
    SECTION_NONE,
    SECTION_GATE,
    SECTION_CONFIG,
    SECTION_FLOW,
    SECTION_SKIP
} section_kind;

static const char *const gate_keys[] = {"crash-limit",     "target",         "slots",
                                        "strategy",        "max-batch",      "max-depth",
                                        "retries",         "notify",         "sandbox",
                                        "memory",          "processes",      "cpu",
                                        "output",          "disk",           "tmp",
                                        "log-days",        "log-max",        "pass-env",
                                        "executor",        "backout",        "backout-budget",
                                        "backout-max-age", "tier2-fix-time", "hold-when-red",
                                        "blame-max",       "ccache-size",    "slurm-launch",
                                        "revert-near",     "targets"};
static const char *const config_keys[] = {
    "build",    "test",      "env",        "timeout", "required",     "network",
    "writable", "memory",    "processes",  "cpu",     "output",       "disk",
    "tmp",      "partition", "constraint", "cpus",    "slurm-memory", "time-limit",
    "levels",   "tier",      "schedule",   "jitter",  "backout",      "ccache-size"};
static const char *const flow_keys[] = {"trigger", "interval",   "levels",         "owner",
                                        "remind",  "remind-max", "escalate-after", "back-merge"};

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

enum { SECTION_KEYS_MAX = 64 };

typedef struct parse_state {
    const char *origin;
    size_t line;
    const char *line_text; /* the line being read (columns are counted from it) */
    gate_config *cfg;
    section_kind section;
    bool seen_gate;
    char header[128];                  /* the section's header as written: "[config a]" */
    char keys[SECTION_KEYS_MAX][32];   /* the keys of this section so far (a longer one is */
    size_t key_line[SECTION_KEYS_MAX]; /*   unknown anyway), and where each was given */
    size_t nkeys;
    size_t config_line[GATE_MAX_CONFIGS];   /* where each [config NAME] starts, for validate() */
    bool command_refused[GATE_MAX_CONFIGS]; /* its build or test was refused (an error said) */
    gate_config_error_fn report;            /* gate_config_check's: every error, not the first */
    void *report_ctx;
    size_t errors;                          /* how many were reported */
    bool flow_interval_set[GATE_MAX_FLOWS]; /* `interval` given (checked against `trigger`) */
    char key_of[GATE_BRANCH_MAX * 2 + 16];  /* "[flow A -> B] ": what a key's error names first */
} parse_state;

static keel_status errf(const parse_state *st, keel_code code, const char *fmt, ...)
    KEEL_PRINTF(3, 4);

static keel_status errf(const parse_state *st, keel_code code, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return keel_status_with_uint(
        KEEL_ERR((int)code, "%s:%zu: %s%s", st->origin, st->line, st->key_of, what), "line",
        (unsigned long long)st->line);
}

/* Blanks off both ends (and a CR off the end), but a blank a backslash escapes: it is a word's. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) {
        size_t backslashes = 0;
        while (end - 1 - backslashes > s && end[-2 - (ptrdiff_t)backslashes] == '\\')
            backslashes++;
        if (end[-1] != '\r' && backslashes % 2 == 1)
            break;
        end--;
    }
    *end = '\0';
    return s;
}

/*
 * Strip a comment: '#' at the start of a word (the line's start, or after a
 * blank), outside quotes, read as the splitter reads words (split_pass): a
 * backslash outside '...' escapes the next character, so neither an escaped
 * quote nor an escaped blank changes where a comment starts.
 */
static void strip_comment(char *s)
{
    char quote = '\0';
    bool word_start = true;
    for (char *p = s; *p != '\0'; p++) {
        bool blank = false;
        if (*p == '\\' && quote != '\'' && p[1] != '\0')
            p++;
        else if (quote == '\0' && (*p == '\'' || *p == '"'))
            quote = *p;
        else if (quote != '\0' && *p == quote)
            quote = '\0';
        else if (quote == '\0' && *p == '#' && word_start) {
            *p = '\0';
            return;
        } else
            blank = quote == '\0' && (*p == ' ' || *p == '\t');
        word_start = blank;
    }
}

static keel_status parse_uint(const parse_state *st, const char *key, const char *value,
                              unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (value[0] == '\0' || value[0] == '-' || *end != '\0')
        return errf(st, KEEL_E_PARSE, "'%s' must be a whole number, not '%s'", key, value);
    if (errno == ERANGE || v < lo || v > hi)
        return errf(st, KEEL_E_RANGE, "'%s' = %s is out of range [%u, %u]", key, value, lo, hi);
    *out = (unsigned)v;
    return KEEL_OK;
}

static keel_status parse_bool(const parse_state *st, const char *key, const char *value, bool *out)
{
    if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0) {
        *out = true;
        return KEEL_OK;
    }
    if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "0") == 0) {
        *out = false;
        return KEEL_OK;
    }
    return errf(st, KEEL_E_PARSE, "'%s' must be yes or no, not '%s'", key, value);
}

static keel_status set_words(const parse_state *st, const char *key, const char *value,
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
static keel_status set_command(const parse_state *st, const char *key, const char *value,
                               gate_words *w)
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
        return errf(st, KEEL_E_PARSE,
                    "'%s': '%s' at column %zu is shell syntax (%s), but commands are not run by "
                    "a shell: they are split into words and run directly; put the commands in a "
                    "script in the repository and run that (%s = sh ci/%s.sh), or ask for a "
                    "shell (%s)",
                    key, sh.found, at + sh.column, sh.what, key, key, fix);
    keel_status s = set_words(st, key, value, w);
    const char *first = keel_ok(s) && w->n > 0 ? w->words[0] : "";
    size_t name = 0;
    while (name_char(first[name]) && !(name == 0 && first[0] >= '0' && first[0] <= '9'))
        name++;
    if (name > 0 && first[name] == '=')
        s = errf(st, KEEL_E_PARSE,
                 "'%s': '%s' sets a variable in a shell, but commands are not run by a shell: "
                 "the program would be '%s'; %s",
                 key, first, first,
                 strcmp(key, "notify") == 0 ? "run the hook through a script, or 'sh -c'"
                                            : "set the variable in 'env' of this configuration");
    return s;
}

static bool key_in(const char *key, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return true;
    return false;
}

static keel_status unknown_key(const parse_state *st, const char *key, const char *const *keys,
                               size_t n, const char *section)
{
    static const struct {
        const char *const *keys;
        size_t n;
        const char *section;
    } tables[] = {{gate_keys, sizeof(gate_keys) / sizeof(gate_keys[0]), "[gate]"},
                  {config_keys, sizeof(config_keys) / sizeof(config_keys[0]), "[config NAME]"},
                  {flow_keys, sizeof(flow_keys) / sizeof(flow_keys[0]), "[flow A -> B]"}};
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        if (tables[t].keys != keys && key_in(key, tables[t].keys, tables[t].n))
            return errf(st, KEEL_E_NOTFOUND, "key '%s' belongs in %s, not in %s", key,
                        tables[t].section, st->header);
    const char *near = keel_suggest(key, keys, n);
    if (near != NULL)
        return errf(st, KEEL_E_NOTFOUND, "unknown key '%s' in [%s] (did you mean '%s'?)", key,
                    section, near);
    return errf(st, KEEL_E_NOTFOUND, "unknown key '%s' in [%s]", key, section);
}

/* Is `name` usable as a configuration name (shown in logs, used in file names)? */
static bool good_name(const char *name)
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
static const char *bad_name_why(const char *name)
{
    if (strlen(name) > 64)
        return "is longer than 64 bytes";
    if (name[0] == '.' || name[0] == '-')
        return "starts with '.' or '-'";
    return "must be letters, digits, '-', '_' or '.'";
}

/* A limit key (memory, processes, ...) into `l`; *bit set to its GATE_LIMIT_* bit.  NOTFOUND: not one. */
static keel_status limit_key_parse(const parse_state *st, const char *key, const char *value,
                                   gate_limits *l, unsigned *bit)
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
                return errf(st, KEEL_E_PARSE,
                            "'%s' must be a size such as 512K, 64M or 4G (0: no limit), not '%s'",
                            key, value);
            }
        } else {
            unsigned n = 0;
            keel_status s = parse_uint(st, key, value, 0, 1000000000u, &n);
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

/* `pass-env`: variable names, none of those a job must never get. */
static keel_status set_pass_env(const parse_state *st, const char *value, gate_words *w)
{
    keel_status s = set_words(st, "pass-env", value, w);
    for (size_t i = 0; keel_ok(s) && i < w->n; i++) {
        const char *name = w->words[i];
        size_t len = strlen(name);
        bool ok = len > 0 && !(name[0] >= '0' && name[0] <= '9');
        for (const char *p = name; ok && *p != '\0'; p++)
            ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                 *p == '_';
        if (!ok)
            s = errf(st, KEEL_E_PARSE, "'pass-env': '%s' is not a variable name", name);
        else if (gate_env_forbidden(name, len))
            s = errf(st, KEEL_E_INVAL,
                     "'pass-env': '%s' never reaches a job (the gate's credentials, git's "
                     "variables and KEEL_OPTIONS stay the gate's; set a job's own in 'env')",
                     name);
    }
    return s;
}

/* ": <the reason>" when gate_branch_why has one for `name` (into buf), else "". */
static const char *branch_reason(const char *name, char *buf, size_t size)
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
static keel_status branch_refused(const parse_state *st, const char *what, const char *name,
                                  size_t size, bool *refused)
{
    keel_status s = name[0] != '\0' ? gate_branch_check(name) : KEEL_OK;
    if (!keel_ok(s) && !keel_status_is(s, &gate_codes, GATE_E_BAD_REF))
        return KEEL_CONTEXT(s, "%s:%zu: checking %s", st->origin, st->line, what);
    *refused = name[0] == '\0' || !keel_ok(s) || strlen(name) >= size;
    keel_status_free(s);
    return KEEL_OK;
}

/* `targets`: branch names, each once, at most GATE_MAX_TARGETS (one gate, several targets). */
static keel_status set_targets(const parse_state *st, const char *value, gate_words *w)
{
    keel_status s = set_words(st, "targets", value, w);
    if (keel_ok(s) && (w->n == 0 || w->n > GATE_MAX_TARGETS))
        s = errf(st, KEEL_E_PARSE, "'targets' names 1 to %d branches, not %zu", GATE_MAX_TARGETS,
                 w->n);
    char why[192];
    for (size_t i = 0; keel_ok(s) && i < w->n; i++) {
        const char *name = w->words[i];
        bool refused = false;
        keel_status b = branch_refused(st, "'targets'", name, GATE_BRANCH_MAX, &refused);
        if (!keel_ok(b))
            return b;
        if (refused)
            s = errf(st, KEEL_E_PARSE, "'targets': '%s' is not a branch name git accepts%s", name,
                     branch_reason(name, why, sizeof(why)));
        for (size_t k = 0; keel_ok(s) && k < i; k++)
            if (strcmp(w->words[k], name) == 0)
                s = errf(st, KEEL_E_PARSE, "'targets': '%s' is named twice", name);
    }
    return s;
}

/*
 * `writable`: absolute paths without '.' or '..' components, none of them /
 * nor under /proc, /sys or /dev, however spelled ("//proc", "/proc/", "//"):
 * judged by their components, not their text.
 */
static keel_status set_writable(const parse_state *st, const char *value, gate_words *w)
{
    keel_status s = set_words(st, "writable", value, w);
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
            s = errf(st, KEEL_E_PARSE,
                     "'writable': '%s' must be an absolute path without '..' or '.'", p);
        else if (depth == 0 || under_system)
            s = errf(st, KEEL_E_INVAL, "'writable': '%s' cannot be made writable for a job", p);
        else if (strlen(p) >= 1024)
            s = errf(st, KEEL_E_RANGE, "'writable': a path longer than 1023 bytes");
    }
    return s;
}

/*
 * A Slurm partition or constraint: the characters Slurm's own syntax uses
 * (names, and for a constraint `&`, `|`, `!`, `*`, counts and brackets), no
 * blanks and not starting with '-' (the value is one argument of sbatch).
 */
static keel_status set_slurm_name(const parse_state *st, const char *key, const char *value,
                                  const char *extra, char *out, size_t size)
{
    size_t len = strlen(value);
    if (len == 0 || len >= size)
        return errf(st, KEEL_E_RANGE, "'%s' must be 1 to %zu bytes long", key, size - 1);
    if (value[0] == '-')
        return errf(st, KEEL_E_PARSE, "'%s' cannot start with '-', not '%s'", key, value);
    for (const char *p = value; *p != '\0'; p++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9') || strchr("_.-", *p) != NULL ||
                  strchr(extra, *p) != NULL;
        if (!ok)
            return errf(st, KEEL_E_PARSE, "'%s': '%c' is not allowed in '%s'", key, *p, value);
    }
    (void)snprintf(out, size, "%s", value);
    return KEEL_OK;
}

/* The Slurm request keys of [config NAME]; KEEL_E_NOTFOUND when `key` is none of them. */
static keel_status slurm_key(const parse_state *st, const char *key, const char *value,
                             gate_slurm_request *r)
{
    if (strcmp(key, "partition") == 0)
        return set_slurm_name(st, key, value, ",", r->partition, sizeof(r->partition));
    if (strcmp(key, "constraint") == 0)
        return set_slurm_name(st, key, value, "&|!*,:[]()", r->constraint, sizeof(r->constraint));
    if (strcmp(key, "cpus") == 0)
        return parse_uint(st, key, value, 1, 4096, &r->cpus);
    if (strcmp(key, "time-limit") == 0)
        return parse_uint(st, key, value, 0, 7 * 24 * 60, &r->time_min);
    if (strcmp(key, "slurm-memory") == 0) {
        keel_status s = gate_size_parse(value, &r->memory);
        if (keel_ok(s) && r->memory != 0 && r->memory < (1ull << 20))
            s = KEEL_ERR(KEEL_E_RANGE, "below 1M");
        if (keel_ok(s))
            return KEEL_OK;
        keel_status_free(s);
        return errf(st, KEEL_E_PARSE,
                    "'slurm-memory' must be a size of at least 1M such as 512M or 4G (0: not "
                    "asked), not '%s'",
                    value);
    }
    return KEEL_ERR(KEEL_E_NOTFOUND, "not a slurm key");
}

/* `levels = gate post ...`: one or more level names, each once. */
static keel_status set_levels(const parse_state *st, const char *value, unsigned *out)
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
            s = errf(st, KEEL_E_PARSE,
                     "'levels': unknown level '%s' (try, gate, post, nightly or pre-merge)%s%s%s",
                     w.words[i], near != NULL ? "; did you mean '" : "", near != NULL ? near : "",
                     near != NULL ? "'?" : "");
        } else if ((levels & (1u << k)) != 0) {
            s = errf(st, KEEL_E_PARSE, "'levels': level '%s' is named twice in '%s'", w.words[i],
                     value);
        }
        levels |= 1u << k;
    }
    if (keel_ok(s) && w.n == 0)
        s = errf(st, KEEL_E_PARSE,
                 "'levels' needs at least one level (try, gate, post, nightly or pre-merge)");
    gate_words_free(&w);
    if (keel_ok(s))
        *out = levels;
    return s;
}

/* A duration of [gate] (gate_duration_parse), in seconds. */
static keel_status parse_duration(const parse_state *st, const char *key, const char *value,
                                  long long *out)
{
    unsigned long long secs = 0;
    keel_status s = gate_duration_parse(value, &secs);
    if (keel_ok(s)) {
        *out = (long long)secs; /* at most 100 years */
        return KEEL_OK;
    }
    keel_status e = errf(st, KEEL_E_PARSE, "'%s': %s", key, keel_status_message(s));
    keel_status_free(s);
    return e;
}

/* The automatic backout's [gate] keys; KEEL_E_NOTFOUND when `key` is none of them. */
static keel_status backout_key(const parse_state *st, const char *key, const char *value,
                               gate_config *c)
{
    if (strcmp(key, "backout") == 0)
        return parse_bool(st, key, value, &c->backout);
    if (strcmp(key, "hold-when-red") == 0)
        return parse_bool(st, key, value, &c->hold_when_red);
    if (strcmp(key, "backout-budget") == 0)
        return parse_uint(st, key, value, 0, 1000, &c->backout_budget);
    if (strcmp(key, "backout-max-age") == 0)
        return parse_duration(st, key, value, &c->backout_max_age_s);
    if (strcmp(key, "tier2-fix-time") == 0)
        return parse_duration(st, key, value, &c->tier2_fix_s);
    if (strcmp(key, "revert-near") == 0)
        return parse_uint(st, key, value, 0, GATE_REVERT_NEAR_MAX, &c->revert_near);
    return KEEL_ERR(KEEL_E_NOTFOUND, "not a backout key");
}

/* `ccache-size`: a size (0: no compiler cache), at least 1M when not 0 (ccache's own floor). */
static keel_status set_ccache_size(const parse_state *st, const char *value,
                                   unsigned long long *out)
{
    keel_status s = gate_size_parse(value, out);
    if (!keel_ok(s)) {
        keel_status_free(s);
        return errf(st, KEEL_E_PARSE,
                    "'ccache-size' must be a size such as 512M or 2G (0: no compiler cache), "
                    "not '%s'",
                    value);
    }
    if (*out != 0 && *out < 1024ull * 1024)
        return errf(st, KEEL_E_RANGE,
                    "'ccache-size' %s is below ccache's smallest cache, 1M (0: no compiler cache)",
                    value);
    return KEEL_OK;
}

/* ---- [flow SRC -> DST] ------------------------------------------------------------ */

static keel_status found(parse_state *st, keel_status s);

/* A branch of a [flow] header: the gate's rule for a branch name. */
static keel_status flow_branch(const parse_state *st, const char *header, const char *b, char *out,
                               size_t size)
{
    char what[256];
    (void)snprintf(what, sizeof(what), "[%.250s]", header);
    bool refused = false;
    keel_status s = branch_refused(st, what, b, size, &refused);
    if (!keel_ok(s))
        return s;
    if (refused) {
        char why[192];
        return errf(st, KEEL_E_PARSE, "[%s]: '%s' is not a branch name%s", header, b,
                    branch_reason(b, why, sizeof(why)));
    }
    (void)snprintf(out, size, "%s", b);
    return KEEL_OK;
}

/* `[flow SRC -> DST]` (`name` without the brackets): a new flow with the defaults. */
static keel_status open_flow(parse_state *st, char *name)
{
    gate_config *c = st->cfg;
    char header[GATE_BRANCH_MAX * 2 + 16];
    (void)snprintf(header, sizeof(header), "%s", name);
    char *arrow = strstr(name + 4, "->");
    if (arrow == NULL)
        return errf(st, KEEL_E_PARSE, "[%s] must be [flow SOURCE -> DESTINATION]", header);
    *arrow = '\0';
    char *from = trim(name + 4), *to = trim(arrow + 2);
    if (c->nflows == GATE_MAX_FLOWS)
        return errf(st, KEEL_E_FULL, "more than %d flows", (int)GATE_MAX_FLOWS);
    gate_flow_config *f = &c->flows[c->nflows];
    memset(f, 0, sizeof(*f));
    keel_status s = flow_branch(st, header, from, f->from, sizeof(f->from));
    if (keel_ok(s))
        s = flow_branch(st, header, to, f->to, sizeof(f->to));
    if (keel_ok(s) && strcmp(f->from, f->to) == 0)
        s = errf(st, KEEL_E_INVAL, "[%s]: a branch cannot flow into itself", header);
    for (size_t i = 0; keel_ok(s) && i < c->nflows; i++)
        if (strcmp(c->flows[i].from, f->from) == 0 && strcmp(c->flows[i].to, f->to) == 0)
            s = errf(st, KEEL_E_EXISTS, "[%s]: flow '%s' -> '%s' is defined twice (line %zu)",
                     header, f->from, f->to, c->flows[i].line);
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

static keel_status flow_duration(const parse_state *st, const char *key, const char *text,
                                 unsigned long long *out)
{
    keel_status s = gate_duration_parse(text, out);
    if (keel_ok(s) && *out == 0)
        s = KEEL_ERR(KEEL_E_RANGE, "zero");
    if (keel_ok(s))
        return KEEL_OK;
    keel_status_free(s);
    return errf(st, KEEL_E_PARSE, "'%s': '%s' is not a duration above 0 such as 30m, 6h or 1d", key,
                text);
}

/* `owner = Name <address>`: one person, no control characters. */
static bool owner_ok(const char *v)
{
    const char *lt = strchr(v, '<');
    size_t len = strlen(v);
    if (lt == NULL || len < 3 || v[len - 1] != '>' || strchr(lt + 1, '<') != NULL ||
        memchr(lt, '@', (size_t)(v + len - lt)) == NULL || strchr(v, '>') != v + len - 1)
        return false;
    for (const char *p = v; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return lt[1] != '@' && v[len - 2] != '@';
}

/* A key of a [flow] section, known to be one (flow_key). */
static keel_status flow_value(parse_state *st, const char *key, const char *value)
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
        return errf(st, KEEL_E_PARSE,
                    "'trigger' must be commit, schedule or 'every DURATION', not '%s'", value);
    }
    if (strcmp(key, "interval") == 0) {
        st->flow_interval_set[st->cfg->nflows - 1] = true;
        return flow_duration(st, key, value, &f->interval_s);
    }
    if (strcmp(key, "levels") == 0)
        return set_levels(st, value, &f->levels);
    if (strcmp(key, "owner") == 0) {
        if (!owner_ok(value) || strlen(value) >= sizeof(f->owner))
            return errf(st, KEEL_E_PARSE,
                        "'owner' must be one person as 'Name <address>', not '%s'", value);
        (void)snprintf(f->owner, sizeof(f->owner), "%s", value);
        return KEEL_OK;
    }
    if (strcmp(key, "remind") == 0) {
        gate_words w = {NULL, 0};
        keel_status s = set_words(st, key, value, &w);
        if (keel_ok(s) && (w.n == 0 || w.n > GATE_FLOW_REMIND_MAX))
            s = errf(st, KEEL_E_RANGE,
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
        return parse_uint(st, key, value, 1, GATE_FLOW_PEOPLE_MAX, &f->remind_max);
    if (strcmp(key, "escalate-after") == 0)
        return parse_uint(st, key, value, 0, 1000, &f->escalate_after);
    KEEL_ASSERT(strcmp(key, "back-merge") == 0);
    return parse_bool(st, key, value, &f->back_merge);
}

/*
 * A key of a [flow A -> B] section: every error of its value begins with
 * "[flow A -> B] ", as the flows' own rules' do (validate_flows).
 */
static keel_status flow_key(parse_state *st, const char *key, const char *value)
{
    if (!key_in(key, flow_keys, sizeof(flow_keys) / sizeof(flow_keys[0])))
        return unknown_key(st, key, flow_keys, sizeof(flow_keys) / sizeof(flow_keys[0]), "flow");
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
static keel_status validate_flows(parse_state *st)
{
    gate_config *c = st->cfg;
    keel_status s = KEEL_OK;
    size_t declared = c->nflows;
    for (size_t i = 0; keel_ok(s) && i < declared; i++) {
        gate_flow_config *f = &c->flows[i];
        st->line = f->line;
        bool schedule = f->trigger == GATE_FLOW_ON_SCHEDULE;
        if (schedule != st->flow_interval_set[i])
            s = found(st, errf(st, KEEL_E_PARSE,
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
                s = found(st, errf(st, KEEL_E_EXISTS,
                                   "[flow %s -> %s] 'back-merge = yes' but flow '%s' -> '%s' is "
                                   "defined (line %zu): say it once",
                                   f->from, f->to, f->to, f->from, c->flows[k].line));
            }
        if (twice)
            continue;
        if (keel_ok(s) && c->nflows == GATE_MAX_FLOWS)
            s = found(st, errf(st, KEEL_E_FULL, "more than %d flows with the back-merges",
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
                s = found(st, errf(st, KEEL_E_EXISTS,
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
            s = found(st, errf(st, KEEL_E_INVAL,
                               "[flow %s -> %s] is part of a cycle of flows through more than "
                               "two branches (only a two-way pair may flow both ways)",
                               c->flows[i].from, c->flows[i].to));
    }
    return s;
}

static keel_status gate_key(parse_state *st, const char *key, const char *value)
{
    gate_config *c = st->cfg;
    if (strcmp(key, "target") == 0) {
        bool refused = false;
        keel_status b = branch_refused(st, "'target'", value, sizeof(c->target), &refused);
        if (!keel_ok(b))
            return b;
        if (refused) {
            char why[192];
            return errf(st, KEEL_E_PARSE, "'target' must be one branch name, not '%s'%s", value,
                        branch_reason(value, why, sizeof(why)));
        }
        (void)snprintf(c->target, sizeof(c->target), "%s", value);
        c->target_set = true;
        return KEEL_OK;
    }
    if (strcmp(key, "targets") == 0)
        return set_targets(st, value, &c->targets);
    if (strcmp(key, "slots") == 0)
        return parse_uint(st, key, value, 1, 256, &c->slots);
    if (strcmp(key, "max-batch") == 0)
        return parse_uint(st, key, value, 1, 1024, &c->max_batch);
    if (strcmp(key, "max-depth") == 0)
        return parse_uint(st, key, value, 1, 256, &c->max_depth);
    if (strcmp(key, "retries") == 0)
        return parse_uint(st, key, value, 0, 10, &c->retries);
    if (strcmp(key, "blame-max") == 0)
        return parse_uint(st, key, value, 1, 100, &c->blame_max);
    if (strcmp(key, "notify") == 0)
        return set_command(st, key, value, &c->notify);
    if (strcmp(key, "crash-limit") == 0)
        return parse_uint(st, key, value, 0, 1000, &c->crash_limit);
    if (strcmp(key, "sandbox") == 0) {
        if (strcmp(value, "bwrap") != 0 && strcmp(value, "none") != 0)
            return errf(st, KEEL_E_PARSE, "'sandbox' must be bwrap or none, not '%s'", value);
        c->sandbox_none = strcmp(value, "none") == 0;
        return KEEL_OK;
    }
    if (strcmp(key, "log-days") == 0)
        return parse_uint(st, key, value, 0, 100000, &c->log_days);
    if (strcmp(key, "log-max") == 0) {
        keel_status s = gate_size_parse(value, &c->log_max);
        if (keel_ok(s))
            return KEEL_OK;
        keel_status_free(s);
        return errf(st, KEEL_E_PARSE, "'log-max' must be a size such as 512M or 2G, not '%s'",
                    value);
    }
    if (strcmp(key, "pass-env") == 0)
        return set_pass_env(st, value, &c->pass_env);
    if (strcmp(key, "ccache-size") == 0)
        return set_ccache_size(st, value, &c->ccache_size);
    if (strcmp(key, "executor") == 0) {
        if (strcmp(value, "local") != 0 && strcmp(value, "slurm") != 0)
            return errf(st, KEEL_E_PARSE, "'executor' must be local or slurm, not '%s'", value);
        c->executor = strcmp(value, "slurm") == 0 ? GATE_EXECUTOR_SLURM : GATE_EXECUTOR_LOCAL;
        return KEEL_OK;
    }
    if (strcmp(key, "slurm-launch") == 0) {
        if (strcmp(value, "runner") != 0 && strcmp(value, "srun") != 0)
            return errf(st, KEEL_E_PARSE, "'slurm-launch' must be runner or srun, not '%s'", value);
        c->slurm_srun = strcmp(value, "srun") == 0;
        return KEEL_OK;
    }
    keel_status bs = backout_key(st, key, value, c);
    if (!KEEL_IS(bs, KEEL_E_NOTFOUND))
        return bs;
    keel_status_free(bs);
    unsigned bit = 0;
    keel_status ls = limit_key_parse(st, key, value, &c->limits, &bit);
    if (!KEEL_IS(ls, KEEL_E_NOTFOUND))
        return ls;
    keel_status_free(ls);
    if (strcmp(key, "strategy") == 0) {
        size_t n = sizeof(strategy_names) / sizeof(strategy_names[0]);
        for (size_t i = 0; i < n; i++)
            if (strcmp(value, strategy_names[i]) == 0) {
                c->strategy = (gate_strategy)i;
                return KEEL_OK;
            }
        const char *near = keel_suggest(value, strategy_names, n);
        return errf(st, KEEL_E_PARSE,
                    "unknown strategy '%s' (serial, batch, speculative, speculative-batch or "
                    "adaptive)%s%s%s",
                    value, near != NULL ? "; did you mean '" : "", near != NULL ? near : "",
                    near != NULL ? "'?" : "");
    }
    return unknown_key(st, key, gate_keys, sizeof(gate_keys) / sizeof(gate_keys[0]), "gate");
}

static keel_status config_key(parse_state *st, const char *key, const char *value)
{
    gate_matrix_config *m = &st->cfg->configs[st->cfg->nconfigs - 1];
    if (strcmp(key, "build") == 0 || strcmp(key, "test") == 0) {
        keel_status s = set_command(st, key, value, key[0] == 'b' ? &m->build : &m->test);
        if (!keel_ok(s)) /* reported: "has neither" would only say it again */
            st->command_refused[st->cfg->nconfigs - 1] = true;
        return s;
    }
    if (strcmp(key, "env") == 0) {
        gate_shell sh;
        memset(&sh, 0, sizeof(sh));
        sh.expansions_only = true;
        if (gate_words_shell(value, &sh))
            return errf(st, KEEL_E_PARSE,
                        "'env': '%s' at column %zu is shell syntax (%s), but no shell reads "
                        "'env': values are taken as written; write the value out in full",
                        sh.found, (size_t)(value - st->line_text) + sh.column, sh.what);
        keel_status s = set_words(st, key, value, &m->env);
        if (!keel_ok(s))
            return s;
        for (size_t i = 0; i < m->env.n; i++) {
            const char *w = m->env.words[i], *eq = strchr(w, '=');
            if (eq == NULL || eq == w)
                return errf(st, KEEL_E_PARSE, "'env' entries must be NAME=value, not '%s'", w);
            size_t len = (size_t)(eq - w), name = 0;
            while (name < len && name_char(w[name]) && !(w[0] >= '0' && w[0] <= '9'))
                name++;
            if (name < len)
                return errf(st, KEEL_E_PARSE,
                            "'env': '%.*s' is not a variable name (letters, digits and '_', not "
                            "a digit first)",
                            (int)len, w);
            for (size_t k = 0; k < i; k++)
                if (strncmp(m->env.words[k], w, len + 1) == 0)
                    return errf(st, KEEL_E_EXISTS, "'env': '%.*s' is set twice", (int)len, w);
        }
        return KEEL_OK;
    }
    if (strcmp(key, "timeout") == 0)
        return parse_uint(st, key, value, 1, 7 * 24 * 3600, &m->timeout_s);
    if (strcmp(key, "required") == 0)
        return parse_bool(st, key, value, &m->required);
    if (strcmp(key, "network") == 0)
        return parse_bool(st, key, value, &m->network);
    if (strcmp(key, "writable") == 0)
        return set_writable(st, value, &m->writable);
    if (strcmp(key, "levels") == 0)
        return set_levels(st, value, &m->levels);
    if (strcmp(key, "tier") == 0)
        return parse_uint(st, key, value, 1, 3, &m->tier);
    if (strcmp(key, "backout") == 0) {
        bool on = false;
        keel_status s = parse_bool(st, key, value, &on);
        if (keel_ok(s))
            m->backout = on ? 1 : 0;
        return s;
    }
    if (strcmp(key, "ccache-size") == 0) {
        m->ccache_set = true;
        return set_ccache_size(st, value, &m->ccache_size);
    }
    if (strcmp(key, "schedule") == 0 || strcmp(key, "jitter") == 0) {
        unsigned long long secs = 0;
        if (strlen(value) >= sizeof(m->schedule_text))
            return errf(st, KEEL_E_PARSE, "'%s' is longer than %zu characters", key,
                        sizeof(m->schedule_text) - 1);
        keel_status s = key[0] == 's' ? gate_cron_parse(value, &m->schedule)
                                      : gate_duration_parse(value, &secs);
        if (keel_ok(s) && key[0] == 'j' && secs > 86400)
            s = KEEL_ERR(KEEL_E_RANGE, "more than a day");
        if (!keel_ok(s)) {
            keel_status e = errf(st, KEEL_E_PARSE, "'%s': %s", key, keel_status_message(s));
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
    keel_status ls = limit_key_parse(st, key, value, &m->limits, &bit);
    if (keel_ok(ls))
        m->limits_set |= bit;
    if (!KEEL_IS(ls, KEEL_E_NOTFOUND))
        return ls;
    keel_status_free(ls);
    keel_status ss = slurm_key(st, key, value, &m->slurm);
    if (!KEEL_IS(ss, KEEL_E_NOTFOUND))
        return ss;
    keel_status_free(ss);
    return unknown_key(st, key, config_keys, sizeof(config_keys) / sizeof(config_keys[0]),
                       "config");
}

static keel_status open_section(parse_state *st, char *head)
{
    size_t len = strlen(head);
    if (len < 2 || head[len - 1] != ']')
        return errf(st, KEEL_E_PARSE, "section header '%s' lacks its closing ']'", head);
    head[len - 1] = '\0';
    char *name = trim(head + 1);
    if (strcmp(name, "gate") == 0) {
        if (st->seen_gate)
            return errf(st, KEEL_E_EXISTS, "a second [gate] section");
        st->seen_gate = true;
        st->section = SECTION_GATE;
        return KEEL_OK;
    }
    if (strncmp(name, "config", 6) == 0 && (name[6] == ' ' || name[6] == '\t')) {
        char *cname = trim(name + 6);
        if (!good_name(cname))
            return errf(st, KEEL_E_PARSE, "configuration name '%s' %s", cname, bad_name_why(cname));
        gate_config *c = st->cfg;
        for (size_t i = 0; i < c->nconfigs; i++)
            if (strcmp(c->configs[i].name, cname) == 0)
                return errf(st, KEEL_E_EXISTS, "configuration '%s' is defined twice", cname);
        if (c->nconfigs == GATE_MAX_CONFIGS)
            return errf(st, KEEL_E_FULL,
                        "configuration '%s' is one more than the %d a gate.conf may have (its keys "
                        "are not read)",
                        cname, (int)GATE_MAX_CONFIGS);
        gate_matrix_config *m = &c->configs[c->nconfigs];
        memset(m, 0, sizeof(*m));
        (void)snprintf(m->name, sizeof(m->name), "%s", cname); /* good_name() bounds it */
        m->timeout_s = 3600;
        m->required = true;
        m->levels = GATE_LEVELS_DEFAULT;
        m->tier = GATE_TIER_DEFAULT;
        m->backout = -1;
        keel_status cs = gate_cron_parse(GATE_SCHEDULE_DEFAULT, &m->schedule);
        KEEL_ASSERT(keel_ok(cs));
        keel_status_ignore(cs, "the default schedule parses");
        (void)snprintf(m->schedule_text, sizeof(m->schedule_text), "%s", GATE_SCHEDULE_DEFAULT);
        m->jitter_s = GATE_JITTER_DEFAULT;
        st->config_line[c->nconfigs] = st->line;
        c->nconfigs++;
        st->section = SECTION_CONFIG;
        return KEEL_OK;
    }
    if (strncmp(name, "flow", 4) == 0 && (name[4] == ' ' || name[4] == '\t'))
        return open_flow(st, name);
    if (strcmp(name, "config") == 0 || strcmp(name, "flow") == 0)
        return errf(st, KEEL_E_PARSE, "section [%s] needs %s", name,
                    name[0] == 'c' ? "a name: [config NAME]" : "two branches: [flow A -> B]");
    static const char *const sections[] = {"gate", "config", "flow"};
    size_t first = strcspn(name, " \t"); /* [confg x]: did you mean [config x]? */
    char word[16];
    (void)snprintf(word, sizeof(word), "%.*s", (int)(first < 15 ? first : 15), name);
    const char *near = first < 15 ? keel_suggest(word, sections, 3) : NULL;
    return errf(
        st, KEEL_E_NOTFOUND, "unknown section [%s]%s%s%s%s", name,
        near != NULL ? " (did you mean [" : " (sections: [gate], [config NAME], [flow A -> B])",
        near != NULL ? near : "", near != NULL ? name + first : "", near != NULL ? "]?)" : "");
}

static keel_status parse_line(parse_state *st, char *line)
{
    st->line_text = line;
    strip_comment(line);
    char *t = trim(line);
    if (t[0] == '\0')
        return KEEL_OK;
    if (t[0] == '[') {
        (void)snprintf(st->header, sizeof(st->header), "%s", t);
        st->nkeys = 0;
        keel_status s = open_section(st, t);
        if (!keel_ok(s))
            st->section = SECTION_SKIP; /* its keys would be taken for another section's */
        return s;
    }
    char *eq = strchr(t, '=');
    if (eq == NULL)
        return errf(st, KEEL_E_PARSE, "expected 'key = value', found '%s'", t);
    *eq = '\0';
    char *key = trim(t);
    char *value = trim(eq + 1);
    if (key[0] == '\0')
        return errf(st, KEEL_E_PARSE, "a value without a key");
    for (size_t i = 0; st->section != SECTION_SKIP && i < st->nkeys; i++)
        if (strcmp(st->keys[i], key) == 0) /* the first would be lost without a word */
            return errf(st, KEEL_E_EXISTS, "'%s' is given twice in %s (first at line %zu)", key,
                        st->header, st->key_line[i]);
    if (st->nkeys < SECTION_KEYS_MAX && strlen(key) < sizeof(st->keys[0])) {
        (void)snprintf(st->keys[st->nkeys], sizeof(st->keys[0]), "%s", key);
        st->key_line[st->nkeys++] = st->line;
    }
    switch (st->section) {
    case SECTION_GATE:
        return gate_key(st, key, value);
    case SECTION_CONFIG:
        return config_key(st, key, value);
    case SECTION_FLOW:
        return flow_key(st, key, value);
    case SECTION_SKIP:
        return KEEL_OK;
    case SECTION_NONE:
        break;
    }
    return errf(st, KEEL_E_PARSE, "key '%s' before any section ([gate] or [config NAME])", key);
}

/*
 * An error of the configuration's (`s`, taken): gate_config_parse's result;
 * gate_config_check reports it and goes on (KEEL_OK).  The gate's own
 * failures (memory) end both.
 */
static keel_status found(parse_state *st, keel_status s)
{
    if (keel_ok(s) || st->report == NULL || KEEL_HAS(s, KEEL_E_NOMEM) ||
        KEEL_HAS(s, KEEL_E_INJECTED))
        return s;
    st->errors++;
    st->report(s, st->report_ctx);
    keel_status_free(s);
    return KEEL_OK;
}

static keel_status validate(parse_state *st)
{
    gate_config *c = st->cfg;
    st->line = 0;
    if (c->nconfigs == 0)
        return found(st, KEEL_ERR(KEEL_E_PARSE,
                                  "%s: no [config NAME] section: nothing to build or test",
                                  st->origin));
    bool any_required = false;
    keel_status s = KEEL_OK;
    for (size_t i = 0; keel_ok(s) && i < c->nconfigs; i++) {
        gate_matrix_config *m = &c->configs[i];
        for (size_t k = 0; k < sizeof(limit_keys) / sizeof(limit_keys[0]); k++)
            if ((m->limits_set & limit_keys[k].bit) == 0)
                memcpy((char *)&m->limits + limit_keys[k].offset,
                       (const char *)&c->limits + limit_keys[k].offset, sizeof(unsigned long long));
        if (!m->ccache_set)
            m->ccache_size = c->ccache_size;
        if (m->test.n == 0 && m->build.n == 0 && !st->command_refused[i]) {
            st->line = st->config_line[i]; /* the error names its section's line */
            s = found(st, errf(st, KEEL_E_PARSE,
                               "configuration '%s' has neither 'build' nor 'test'", m->name));
        }
        any_required |= m->required && gate_config_at(m, GATE_LEVEL_GATE);
    }
    if (keel_ok(s) && !any_required)
        s = found(st, KEEL_ERR(KEEL_E_PARSE,
                               "%s: no configuration at level 'gate' is required: nothing would "
                               "stop a broken change",
                               st->origin));
    if (keel_ok(s))
        s = validate_flows(st);
    return s;
}

/* gate_config_parse, or with `report` gate_config_check (*out: NULL when it found any). */
static keel_status parse(const char *text, size_t len, const char *origin,
                         gate_config_error_fn report, void *ctx, size_t *errors, gate_config **out)
{
    *out = NULL;
    *errors = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) { /* a UTF-8 byte order mark (editors */
        text += 3;                                          /* on Windows write one): not text */
        len -= 3;
    }
    const char *nul = (const char *)memchr(text, '\0', len);
    if (nul != NULL) {
        parse_state at; /* the error names the line that holds it */
        memset(&at, 0, sizeof(at));
        at.origin = origin != NULL ? origin : "gate.conf";
        at.line = 1;
        at.report = report;
        at.report_ctx = ctx;
        for (const char *p = text; p < nul; p++)
            at.line += *p == '\n';
        keel_status s = found(&at, errf(&at, KEEL_E_PARSE, "contains a NUL byte"));
        *errors = at.errors; /* what follows a NUL byte is nobody's text: not read */
        return s;
    }
    void *cmem = NULL, *tmem = NULL;
    keel_status s = keel_heap_calloc(CONFIG_HEAP, 1, sizeof(gate_config), &cmem);
    if (keel_ok(s))
        s = keel_heap_alloc(CONFIG_HEAP, len + 1, &tmem);
    if (!keel_ok(s)) {
        keel_heap_free(CONFIG_HEAP, cmem);
        return KEEL_CONTEXT(s, "reading %s", origin);
    }
    gate_config *c = (gate_config *)cmem;
    char *copy = (char *)tmem;
    memcpy(copy, text, len);
    copy[len] = '\0';
    (void)snprintf(c->target, sizeof(c->target), "main");
    c->strategy = GATE_STRATEGY_ADAPTIVE;
    c->max_batch = 8;
    c->max_depth = 4;
    c->retries = 1;
    c->blame_max = 3;
    c->crash_limit = 3;
    c->backout = true;
    c->backout_budget = 3;
    c->backout_max_age_s = 7LL * 86400;
    c->tier2_fix_s = 4LL * 3600;
    c->revert_near = 3;
    gate_limits_default(&c->limits);
    c->log_days = GATE_DEFAULT_LOG_DAYS;
    c->log_max = GATE_DEFAULT_LOG_MAX;
    parse_state st;
    memset(&st, 0, sizeof(st));
    st.origin = origin != NULL ? origin : "gate.conf";
    st.cfg = c;
    st.report = report;
    st.report_ctx = ctx;
    char *p = copy;
    /* strtok_r would merge empty lines and lose line numbers: split by hand */
    while (keel_ok(s) && p != NULL) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        st.line++;
        s = found(&st, parse_line(&st, p));
        p = nl != NULL ? nl + 1 : NULL;
    }
    if (keel_ok(s))
        s = validate(&st);
    keel_heap_free(CONFIG_HEAP, copy);
    *errors = st.errors;
    if (!keel_ok(s) || st.errors > 0) {
        gate_config_free(c);
        return s;
    }
    *out = c;
    return KEEL_OK;
}

keel_status gate_config_parse(const char *text, size_t len, const char *origin, gate_config **out)
{
    KEEL_ASSERT(text != NULL && out != NULL);
    size_t errors = 0;
    return parse(text, len, origin, NULL, NULL, &errors, out);
}

keel_status gate_config_check(const char *text, size_t len, const char *origin,
                              gate_config_error_fn report, void *ctx, size_t *errors,
                              gate_config **out)
{
    KEEL_ASSERT(text != NULL && report != NULL && errors != NULL && out != NULL);
    return parse(text, len, origin, report, ctx, errors, out);
}

static void matrix_config_free(gate_matrix_config *m)
{
    gate_words_free(&m->writable);
    gate_words_free(&m->build);
    gate_words_free(&m->test);
    gate_words_free(&m->env);
}

void gate_config_keep_level(gate_config *c, gate_level l)
{
    KEEL_ASSERT(c != NULL);
    size_t kept = 0;
    for (size_t i = 0; i < c->nconfigs; i++) {
        if (!gate_config_at(&c->configs[i], l)) {
            matrix_config_free(&c->configs[i]);
            continue;
        }
        if (kept != i)
            c->configs[kept] = c->configs[i]; /* its words move with it */
        kept++;
    }
    for (size_t i = kept; i < c->nconfigs; i++)
        memset(&c->configs[i], 0, sizeof(c->configs[i]));
    c->nconfigs = kept;
}

void gate_config_free(gate_config *c)
{
    if (c == NULL)
        return;
    gate_words_free(&c->notify);
    gate_words_free(&c->pass_env);
    gate_words_free(&c->targets);
    for (size_t i = 0; i < c->nconfigs; i++)
        matrix_config_free(&c->configs[i]);
    keel_heap_free(CONFIG_HEAP, c);
}
