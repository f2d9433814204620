/*
 * cli.c - keel-gate's command line, git style:
 *
 *   keel-gate [--repo DIR|URL] [--mirror DIR] [--state FILE] [--target BRANCH] <command>
 *             [options] [args]
 *
 * Options come from one table (name, whether it takes a value, the commands
 * it applies to); they may appear before or after the command, as --name
 * VALUE or --name=VALUE.  Exit 0: done; 1: it failed (or, for try and run,
 * something was rejected); 2: usage.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backout.h"
#include "clidoc.h"
#include "flows_turn.h"
#include "gate.h"
#include "gate_int.h"
#include "git.h"
#include "remote.h"
#include "serve.h"
#include "signals.h"
#include "text.h"

enum cmd_bit {
    C_TRY = 1u << 0,
    C_SUBMIT = 1u << 1,
    C_CANCEL = 1u << 2,
    C_STATUS = 1u << 3,
    C_LOG = 1u << 4,
    C_RUN = 1u << 5,
    C_CHECK = 1u << 6,
    C_SERVE = 1u << 7,
    C_TOKEN = 1u << 8,
    C_HISTORY = 1u << 9,
    C_NIGHTLY = 1u << 10,
    C_CULPRIT = 1u << 11,
    C_BACKOUTS = 1u << 12,
    C_FLOWS = 1u << 13,
    C_ALL = 0x3fffu
};

typedef struct opt_def {
    const char *name;
    const char *value; /* NULL: a flag; else the value's name in the usage */
    unsigned cmds;
    const char *help;
} opt_def;

static const opt_def opt_table[] = {
    {"repo", "DIR|URL", C_ALL, "the guarded repository, local or a URL (default: .)"},
    {"mirror", "DIR", C_ALL, "a URL's local mirror (default: under $XDG_STATE_HOME/keel-gate)"},
    {"state", "FILE", C_ALL & ~C_CHECK, "the gate's store (default: <git dir>/keel-gate.db)"},
    {"target", "BRANCH", C_ALL,
     "the guarded branch (default: the one HEAD names, or its [gate] target); run: given "
     "several times, or [gate] targets, guards each"},
    {"work", "DIR", C_RUN | C_TRY,
     "where jobs' work trees go, outside the repository (default: <state>.d/work)"},
    {"priority", "N", C_SUBMIT, "queue priority, higher first (default 0)"},
    {"json", NULL, C_STATUS | C_LOG | C_HISTORY | C_CULPRIT | C_BACKOUTS | C_FLOWS,
     "machine-readable output"},
    {"reset", NULL, C_BACKOUTS,
     "close the circuit breaker: automatic backouts start again (a person decided)"},
    {"once", NULL, C_RUN, "stop when the queue is empty"},
    {"now", NULL, C_NIGHTLY, "every configuration at level nightly is due now"},
    {"config", "FILE|NAME", C_RUN | C_HISTORY,
     "run: while the target's .keel/gate.conf does not load, use FILE's (said, recorded); "
     "history: only configuration NAME"},
    {"raw", NULL, C_LOG, "the jobs' output as they wrote it (control characters too)"},
    {"full", NULL, C_LOG, "every job's whole log, not only the end of the one that decided"},
    {"memory", NULL, C_STATUS, "the last run's memory, by module heap"},
    {"quiet", NULL, C_RUN | C_SUBMIT | C_CANCEL, "no progress output"},
    {"listen", "HOST:PORT", C_SERVE,
     "where the API listens (default 127.0.0.1:8080; port 0: a free one, printed)"},
    {"serve", "HOST:PORT", C_RUN, "serve the API (as keel-gate serve) while running"},
    {"reads", "public|token", C_SERVE | C_RUN,
     "whether the API's reads need a token of role read (default public)"},
    {"per-address", "N", C_SERVE | C_RUN,
     "connections one client address may hold at once; past them 429 (default 0: no limit)"},
    {"request-deadline", "SECONDS", C_SERVE | C_RUN,
     "the API's deadline for a whole request, headers and body; past it 408 and closed (default "
     "60; 0: none; an event stream is not cut)"},
    {"nice", "N", C_SERVE | C_RUN,
     "the API's threads run at nice N, 0 to 19, so that a loaded server takes CPU from the gate "
     "and its jobs last (default 10; 0: the gate's own priority)"},
    {"role", "ROLE", C_TOKEN, "a new token's role: read, submit or admin (default read)"},
    {"help", NULL, C_ALL, "this text"},
};
enum { NOPTS = sizeof(opt_table) / sizeof(opt_table[0]) };

typedef struct cmd_def {
    const char *name;
    unsigned bit;
    int nargs;    /* the arguments it needs */
    int optional; /* and the ones it may take besides */
    const char *args;
    const char *help;
} cmd_def;

static const cmd_def cmd_table[] = {
    {"try", C_TRY, 1, 0, "<branch>", "test a branch merged on the target, without queueing"},
    {"submit", C_SUBMIT, 1, 0, "<branch>", "queue a branch's head for the target"},
    {"cancel", C_CANCEL, 1, 0, "<change-id|branch>", "withdraw a queued or testing change"},
    {"status", C_STATUS, 0, 0, "", "progress, running jobs, queue, recent landings and rejections"},
    {"log", C_LOG, 1, 0, "<change-id|branch>", "a change's builds, and why it was rejected"},
    {"run", C_RUN, 0, 0, "", "the gatekeeper: test and land the queue"},
    {"check", C_CHECK, 0, 1, "[FILE|BRANCH|-]",
     "every error of a .keel/gate.conf (a file, '-', a branch's; the target's)"},
    {"serve", C_SERVE, 0, 0, "", "the HTTP API (docs/gate-api.md) over the store"},
    {"token", C_TOKEN, 1, 1, "VERB [NAME]",
     "the API's tokens: add NAME (printed once, kept hashed), list, revoke NAME"},
    {"history", C_HISTORY, 0, 0, "",
     "the post level: each commit of the target by each configuration at level post; the "
     "nightly runs"},
    {"nightly", C_NIGHTLY, 0, 0, "",
     "the nightly level: each configuration's schedule, next time and last runs (--now: due now)"},
    {"culprit", C_CULPRIT, 1, 0, "<config>",
     "the newest culprit search of a configuration: range, builds, suspects, verdict"},
    {"backouts", C_BACKOUTS, 0, 0, "",
     "automatic backouts: each culprit's state, guard rail and change; the circuit breaker"},
    {"flows", C_FLOWS, 0, 0, "",
     "branch flows: each flow's tips, commits waiting, last sync, state, who was reminded"},
};
enum { NCMDS = sizeof(cmd_table) / sizeof(cmd_table[0]) };

/* An option as the usage shows it: "--name VALUE". */
static void opt_left(const opt_def *o, char *out, size_t size)
{
    (void)snprintf(out, size, "--%s%s%s", o->name, o->value != NULL ? " " : "",
                   o->value != NULL ? o->value : "");
}

/* The columns as wide as the widest entry of each table, so that every help lines up. */
static void usage(FILE *f)
{
    (void)fprintf(f, "usage: keel-gate [--repo DIR|URL] [--mirror DIR] [--state FILE] "
                     "[--target BRANCH] <command> [options] [args]\n\ncommands:\n");
    int name_w = 0, args_w = 0, left_w = 0;
    char left[64];
    for (size_t i = 0; i < NCMDS; i++) {
        name_w = (int)strlen(cmd_table[i].name) > name_w ? (int)strlen(cmd_table[i].name) : name_w;
        args_w = (int)strlen(cmd_table[i].args) > args_w ? (int)strlen(cmd_table[i].args) : args_w;
    }
    for (size_t i = 0; i < NOPTS; i++) {
        opt_left(&opt_table[i], left, sizeof(left));
        left_w = (int)strlen(left) > left_w ? (int)strlen(left) : left_w;
    }
    for (size_t i = 0; i < NCMDS; i++)
        (void)fprintf(f, "  %-*s %-*s  %s\n", name_w, cmd_table[i].name, args_w, cmd_table[i].args,
                      cmd_table[i].help);
    (void)fprintf(f, "\noptions:\n");
    for (size_t i = 0; i < NOPTS; i++) {
        opt_left(&opt_table[i], left, sizeof(left));
        (void)fprintf(f, "  %-*s  %s\n", left_w, left, opt_table[i].help);
    }
}

/*
 * The manual page (`--help-man`) or bash completion (`--completion`), from the
 * tables above (clidoc.h): hidden options, for the build, which installs them.
 */
static void print_doc(FILE *f, bool man)
{
    gate_clidoc_item cmds[NCMDS], opts[NOPTS];
    char where[NOPTS][128];
    for (size_t i = 0; i < NCMDS; i++) {
        cmds[i].name = cmd_table[i].name;
        cmds[i].value = cmd_table[i].args;
        cmds[i].help = cmd_table[i].help;
        cmds[i].where = NULL;
    }
    for (size_t i = 0; i < NOPTS; i++) {
        size_t len = 0;
        where[i][0] = '\0';
        for (size_t k = 0; k < NCMDS && len < sizeof(where[i]); k++)
            if ((opt_table[i].cmds & cmd_table[k].bit) != 0) {
                int w = snprintf(where[i] + len, sizeof(where[i]) - len, "%s%s",
                                 len == 0 ? "" : " ", cmd_table[k].name);
                len += w > 0 ? (size_t)w : 0;
            }
        opts[i].name = opt_table[i].name;
        opts[i].value = opt_table[i].value;
        opts[i].help = opt_table[i].help;
        opts[i].where = (opt_table[i].cmds & C_ALL) == C_ALL ? NULL : where[i];
    }
    gate_clidoc d;
    memset(&d, 0, sizeof(d));
    d.prog = "keel-gate";
    d.title = "keep a branch green: test changes and land them in order";
    d.synopsis = "keel-gate [--repo DIR|URL] [--mirror DIR] [--state FILE] [--target BRANCH]\n"
                 "          <command> [options] [args]";
    d.description =
        "keel-gate guards a branch of a git repository (the target): a change (a branch) is "
        "submitted, merged onto the target with the changes queued before it, built and tested "
        "on every configuration of the merged tree's .keel/gate.conf, each job in a sandbox, and "
        "the target moves to the tested merge only when every required configuration passed.  "
        "A failing change is isolated from the others and rejected with the reason; a test that "
        "fails then passes on the same tree is a flake and rejects nothing.\n\n"
        "Options may come before or after the command, as --name VALUE or --name=VALUE; -- ends "
        "them.  A change is named by its id or by its branch (the branch's active change for the "
        "target, else its newest).\n\n"
        "  keel-gate submit topic\n  keel-gate run --once\n  keel-gate status\n"
        "  keel-gate log topic";
    d.cmds = cmds;
    d.ncmds = NCMDS;
    d.opts = opts;
    d.nopts = NOPTS;
    d.exit_status = "0: done.  1: it failed (a command that only reads, too, when there is no "
                    "store where the default one goes: no gate has run); for try, a required "
                    "configuration failed; for run, a change was rejected or conflicted.  2: "
                    "usage (an unknown command or option is named, with the nearest known one; "
                    "a --state where there is no store, given to a command that only reads).";
    d.environment = "XDG_STATE_HOME, XDG_CACHE_HOME: where a URL's mirror and the work trees "
                    "go by default.  KEEL_GATE_USER, KEEL_GATE_PASSWORD: https credentials; "
                    "ssh goes through ssh-agent.  KEEL_OPTIONS: libkeel's options "
                    "(module.post=none skips the self tests).";
    d.files = "<git dir>/keel-gate.db: the store (the queue, candidates, jobs, events), made by "
              "the first command that writes (a command that only reads makes none); "
              "<state>.d/logs/: the jobs' logs; <state>.d/targets/<target>/run.lock: the lock "
              "of the gate running the queue.  .keel/gate.conf in the repository: the "
              "configuration.";
    d.see_also = "git(1), bwrap(1), keel-stress(1); docs/gate.md in keel's sources";
    if (man)
        gate_clidoc_man(f, &d);
    else
        gate_clidoc_bash(f, &d);
}

/*
 * The chain of messages, without the source locations meant for developers,
 * escaped for a terminal (names in it are anyone's: gate/cli/text.h), one link a
 * line.
 */
static void print_error(FILE *err, keel_status s)
{
    static const char link[] = "\n  caused by: ";
    char buf[8192], clean[8192];
    (void)keel_status_format(s, buf, sizeof(buf));
    size_t n = 0;
    for (const char *p = buf; *p != '\0' && n + 1 < sizeof(clean);) {
        if (strncmp(p, " [at ", 5) == 0 && strchr(p, ']') != NULL) {
            p = strchr(p, ']') + 1;
            continue;
        }
        clean[n++] = *p++;
    }
    clean[n] = '\0';
    flockfile(err);
    (void)fputs("keel-gate: error: ", err);
    for (const char *p = clean;;) {
        const char *next = strstr(p, link);
        size_t len = next != NULL ? (size_t)(next - p) : strlen(p);
        (void)gate_text_fput(err, p, len, GATE_TEXT_LINE);
        if (next == NULL)
            break;
        (void)fputs(link, err);
        p = next + sizeof(link) - 1;
    }
    (void)fputc('\n', err);
    funlockfile(err);
    keel_status_free(s);
}

/* `text` whole, digits with a sign or none (strtoll's leading blanks are not a number's). */
static bool parse_ll(const char *text, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    bool digit_first = (text[0] >= '0' && text[0] <= '9') ||
                       ((text[0] == '-' || text[0] == '+') && text[1] >= '0' && text[1] <= '9');
    if (!digit_first || *end != '\0' || errno == ERANGE || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

typedef struct parsed {
    const cmd_def *cmd;
    const char *args[4];
    int nargs;
    const char *values[NOPTS];             /* a flag's value is "" when given */
    const char *targets[GATE_MAX_TARGETS]; /* every --target given (run takes several) */
    size_t ntargets;
} parsed;

static int usage_error(FILE *err, const char *fmt, ...) KEEL_PRINTF(2, 3);

static int usage_error(FILE *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char what[1024];
    gate_text_vfit(GATE_HEAP, what, sizeof(what), fmt, ap); /* it quotes the command line */
    gate_text_printf(err, "keel-gate: %s\n", what);
    (void)fputs("(keel-gate --help lists commands and options)\n", err);
    va_end(ap);
    return 2;
}

/*
 * An option that is none of the table's, `dashes` then `name` (its `len`
 * bytes, without any '=VALUE'): named, with the nearest option, or the only
 * one it begins (--prio: --priority; -h: --help); exit code 2.
 */
static int unknown_option(FILE *err, const char *dashes, const char *name, size_t len)
{
    const char *names[NOPTS];
    for (size_t j = 0; j < NOPTS; j++)
        names[j] = opt_table[j].name;
    char word[64];
    (void)snprintf(word, sizeof(word), "%.*s", (int)(len < 63 ? len : 63), name);
    const char *near = keel_suggest(word, names, NOPTS);
    for (size_t j = 0; near == NULL && len > 0 && j < NOPTS; j++)
        if (strncmp(names[j], name, len) == 0) {
            for (size_t o = j + 1; o < NOPTS; o++)
                if (strncmp(names[o], name, len) == 0)
                    return usage_error(err, "unknown option '%s%s'", dashes, word); /* several */
            near = names[j];
        }
    if (near == NULL)
        return usage_error(err, "unknown option '%s%s'", dashes, word);
    return usage_error(err, "unknown option '%s%s' (did you mean '--%s'?)", dashes, word, near);
}

/* 0: parsed; else the exit code. */
static int parse(int argc, char **argv, parsed *p, FILE *out, FILE *err)
{
    memset(p, 0, sizeof(*p));
    bool only_args = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_args && strcmp(a, "--") == 0) {
            only_args = true;
            continue;
        }
        if (!only_args && (strcmp(a, "--help-man") == 0 || strcmp(a, "--completion") == 0)) {
            print_doc(out, strcmp(a, "--help-man") == 0);
            return -1;
        }
        if (!only_args && a[0] == '-' && a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
            size_t k = 0;
            while (k < NOPTS && !(strlen(opt_table[k].name) == len &&
                                  strncmp(opt_table[k].name, name, len) == 0))
                k++;
            if (k == NOPTS)
                return unknown_option(err, "--", name, len);
            if (strcmp(opt_table[k].name, "help") == 0) {
                usage(out);
                return -1;
            }
            const char *before = p->values[k];
            if (opt_table[k].value == NULL) {
                if (eq != NULL)
                    return usage_error(err, "option '%s' takes no value", a);
                p->values[k] = "";
            } else if (eq != NULL) {
                p->values[k] = eq + 1;
            } else if (i + 1 < argc) {
                p->values[k] = argv[++i];
            } else {
                return usage_error(err, "option '%s' needs a value", a);
            }
            if (opt_table[k].value != NULL && p->values[k][0] == '\0')
                return usage_error(err, "option '--%s' needs a value, not ''", opt_table[k].name);
            if (before != NULL && opt_table[k].value != NULL &&
                strcmp(opt_table[k].name, "target") != 0) /* run guards several targets */
                return usage_error(err,
                                   "option '--%s' is given twice ('%s', then '%s'): give it "
                                   "once",
                                   opt_table[k].name, before, p->values[k]);
            if (strcmp(opt_table[k].name, "target") == 0) {
                if (p->ntargets == GATE_MAX_TARGETS)
                    return usage_error(err, "more than %d targets", GATE_MAX_TARGETS);
                for (size_t t = 0; t < p->ntargets; t++)
                    if (strcmp(p->targets[t], p->values[k]) == 0)
                        return usage_error(err,
                                           "option '--target' names '%s' twice: a target "
                                           "has one queue",
                                           p->values[k]);
                p->targets[p->ntargets++] = p->values[k];
            }
            continue;
        }
        if (!only_args && a[0] == '-' && a[1] != '\0' &&
            (p->cmd == NULL || p->nargs >= p->cmd->nargs + p->cmd->optional))
            return unknown_option(err, "-", a + 1, strlen(a + 1)); /* -h, -x: no such option */
        if (p->cmd == NULL) {
            for (size_t k = 0; k < NCMDS; k++)
                if (strcmp(cmd_table[k].name, a) == 0)
                    p->cmd = &cmd_table[k];
            if (p->cmd == NULL) {
                const char *names[NCMDS];
                for (size_t j = 0; j < NCMDS; j++)
                    names[j] = cmd_table[j].name;
                const char *near = keel_suggest(a, names, NCMDS);
                if (near != NULL) {
                    gate_text_printf(err, "keel-gate: unknown command '%s' (did you mean '%s'?)\n",
                                     a, near);
                    return 2;
                }
                return usage_error(err, "unknown command '%s'", a);
            }
            continue;
        }
        if (p->nargs >= p->cmd->nargs + p->cmd->optional)
            return usage_error(err, "unexpected argument '%s'", a);
        p->args[p->nargs++] = a;
    }
    if (p->cmd == NULL) {
        usage(err);
        return 2;
    }
    if (p->nargs < p->cmd->nargs) {
        (void)fprintf(err, "keel-gate: '%s' needs %s\n", p->cmd->name, p->cmd->args);
        return 2;
    }
    if (p->ntargets > 1 && p->cmd->bit != C_RUN)
        return usage_error(err,
                           "option '--target' is given twice ('%s', then '%s'): give it once "
                           "(only 'run' guards several targets)",
                           p->targets[0], p->targets[1]);
    for (size_t k = 0; k < NOPTS; k++)
        if (p->values[k] != NULL && (opt_table[k].cmds & p->cmd->bit) == 0) {
            (void)fprintf(err, "keel-gate: option '--%s' does not apply to '%s'\n",
                          opt_table[k].name, p->cmd->name);
            return 2;
        }
    return 0;
}

static const char *opt_value(const parsed *p, const char *name)
{
    for (size_t k = 0; k < NOPTS; k++)
        if (strcmp(opt_table[k].name, name) == 0)
            return p->values[k];
    return NULL;
}

/* Does the command only read the store (and so makes none where there is none)? */
static bool reads_only(const parsed *p)
{
    switch (p->cmd->bit) {
    case C_STATUS:
    case C_LOG:
    case C_HISTORY:
    case C_CULPRIT:
    case C_FLOWS:
        return true;
    case C_NIGHTLY:
        return opt_value(p, "now") == NULL;
    case C_BACKOUTS:
        return opt_value(p, "reset") == NULL;
    case C_TOKEN:
        return strcmp(p->args[0], "list") == 0;
    default:
        return false;
    }
}

/* token VERB [NAME] [--role ROLE]: 0, or the usage error's exit code. */
static int token_usage(const parsed *p, FILE *err)
{
    static const char *const verbs[] = {"add", "list", "revoke"};
    const char *verb = p->args[0], *role = opt_value(p, "role");
    bool list = strcmp(verb, "list") == 0;
    if (!list && strcmp(verb, "add") != 0 && strcmp(verb, "revoke") != 0) {
        const char *near = keel_suggest(verb, verbs, 3);
        return usage_error(err, "unknown token verb '%s'%s%s%s: add, list or revoke", verb,
                           near != NULL ? " (did you mean '" : "", near != NULL ? near : "",
                           near != NULL ? "'?)" : "");
    }
    if (list && p->nargs > 1)
        return usage_error(err, "'token list' takes no name, not '%s'", p->args[1]);
    if (!list && p->nargs < 2)
        return usage_error(err, "'token %s' needs the token's NAME", verb);
    if (strcmp(verb, "add") == 0 && !gate_token_name_ok(p->args[1]))
        return usage_error(err, "token name '%s' must be " GATE_TOKEN_NAME_RULE, p->args[1]);
    if (role != NULL && strcmp(verb, "add") != 0)
        return usage_error(err,
                           "'--role' is for 'token add' (a new token's role), not for "
                           "'token %s'",
                           verb);
    if (role != NULL && gate_role_from_name(role) == GATE_ROLE_NONE)
        return usage_error(err, "'--role' is read, submit or admin, not '%s'", role);
    return 0;
}

int gate_cli_main(int argc, char **argv, FILE *out, FILE *err)
{
    parsed p;
    int rc = parse(argc, argv, &p, out, err);
    if (rc != 0 || p.cmd == NULL)
        return rc < 0 ? 0 : (rc != 0 ? rc : 2);
    long long number = 0;
    const char *prio = opt_value(&p, "priority");
    if (prio != NULL && !parse_ll(prio, -GATE_PRIORITY_MAX, GATE_PRIORITY_MAX, &number))
        return usage_error(err, "'--priority' needs a whole number from %d to %d, not '%s'",
                           -GATE_PRIORITY_MAX, GATE_PRIORITY_MAX, prio);
    int priority = (int)number;
    if ((p.cmd->bit & (C_CANCEL | C_LOG)) != 0) { /* digits: an id; else a branch's change */
        keel_status bad = gate_change_id_parse(p.args[0], &number);
        if (!keel_ok(bad)) {
            rc = usage_error(err, "%s", keel_status_message(bad));
            keel_status_free(bad);
            return rc;
        }
        bad = number > 0 ? KEEL_OK : gate_branch_check(p.args[0]);
        if (!keel_ok(bad)) {
            keel_status_free(bad);
            return usage_error(err, "'%s' is neither a change id (a positive number) nor a branch",
                               p.args[0]);
        }
    }
    if (p.cmd->bit == C_CULPRIT && p.args[0][0] == '\0') /* it said "no configuration ''" */
        return usage_error(err, "the configuration name is empty: 'culprit' needs the name of one "
                                "of the target's configurations ('keel-gate check' lists them)");
    if (opt_value(&p, "mirror") != NULL &&
        !gate_remote_is_url(opt_value(&p, "repo") != NULL ? opt_value(&p, "repo") : "."))
        return usage_error(err,
                           "'--mirror' is a URL's local copy, but '%s' is a local repository "
                           "(the gate reads it directly): give '--repo URL', or no '--mirror'",
                           opt_value(&p, "repo") != NULL ? opt_value(&p, "repo") : ".");
    if (p.cmd->bit == C_TOKEN) {
        rc = token_usage(&p, err);
        if (rc != 0)
            return rc;
    }
    if (opt_value(&p, "reset") != NULL && opt_value(&p, "json") != NULL)
        return usage_error(err, "'--reset' closes the circuit breaker and says so in a line: "
                                "'--json' is for reading ('keel-gate backouts --json')");
    if (opt_value(&p, "full") != NULL && opt_value(&p, "json") != NULL)
        return usage_error(err, "'--full' is for reading: '--json' names each job's log file");
    if (opt_value(&p, "raw") != NULL && opt_value(&p, "json") != NULL)
        return usage_error(err, "'--raw' is for reading: '--json' has the decisive job's last "
                                "lines as a JSON string, every byte escaped");
    gate_options o;
    gate_options_default(&o);
    if (opt_value(&p, "repo") != NULL)
        o.repo = opt_value(&p, "repo");
    o.mirror = opt_value(&p, "mirror");
    o.state = opt_value(&p, "state");
    o.target = opt_value(&p, "target");
    o.work = opt_value(&p, "work");
    o.config = p.cmd->bit == C_RUN ? opt_value(&p, "config") : NULL;
    o.out = opt_value(&p, "quiet") != NULL ? NULL : out;
    if (p.cmd->bit == C_CHECK) { /* no store, no lock: a configuration alone */
        size_t errors = 0;
        keel_status s = gate_check(&o, p.nargs > 0 ? p.args[0] : NULL, &errors);
        if (!keel_ok(s)) {
            print_error(err, s);
            return 1;
        }
        return errors > 0 ? 1 : 0;
    }
    const char *reads = opt_value(&p, "reads");
    if (reads != NULL && strcmp(reads, "public") != 0 && strcmp(reads, "token") != 0)
        return usage_error(err, "'--reads' is 'public' or 'token', not '%s'", reads);
    gate_web_options wo;
    gate_web_options_default(&wo);
    wo.token_reads = reads != NULL && strcmp(reads, "token") == 0;
    const char *per = opt_value(&p, "per-address");
    if (per != NULL && !parse_ll(per, 0, UINT_MAX, &number))
        return usage_error(err, "'--per-address' needs a whole number of connections, not '%s'",
                           per);
    wo.max_per_address = per != NULL ? (unsigned)number : 0;
    const char *deadline = opt_value(&p, "request-deadline");
    if (deadline != NULL && !parse_ll(deadline, 0, 86400, &number))
        return usage_error(err,
                           "'--request-deadline' needs a whole number of seconds from 0 to 86400, "
                           "not '%s'",
                           deadline);
    if (deadline != NULL)
        wo.deadline_s = (unsigned)number;
    const char *nice_arg = opt_value(&p, "nice");
    if (nice_arg != NULL && !parse_ll(nice_arg, 0, 19, &number))
        return usage_error(err, "'--nice' needs a whole number from 0 to 19, not '%s'", nice_arg);
    if (nice_arg != NULL)
        wo.nice = (int)number;
    static const char *const addresses[] = {"listen", "serve"};
    for (size_t i = 0; i < 2; i++) {
        keel_status bad = opt_value(&p, addresses[i]) != NULL
                              ? gate_web_listen_check(opt_value(&p, addresses[i]))
                              : KEEL_OK;
        if (!keel_ok(bad)) {
            rc = usage_error(err, "'--%s': %s", addresses[i], keel_status_message(bad));
            keel_status_free(bad);
            return rc;
        }
    }
    if (opt_value(&p, "listen") != NULL)
        wo.listen = opt_value(&p, "listen");
    o.existing = reads_only(&p);
    if (o.existing && o.state != NULL && gate_store_absent(o.state)) /* mistyped: nothing made */
        return usage_error(err,
                           "no store at '%s' ('%s' only reads a gate's store: give the --state of "
                           "a gate that has run, or run 'keel-gate submit' or 'keel-gate run' "
                           "first)",
                           o.state, p.cmd->name);
    gate *g = NULL;
    keel_status s = gate_open(&o, &g);
    if (!keel_ok(s)) {
        print_error(err, s);
        return 1;
    }
    rc = 0;
    switch (p.cmd->bit) {
    case C_TRY: {
        bool passed = false;
        s = gate_try(g, p.args[0], &passed);
        rc = keel_ok(s) && passed ? 0 : 1;
        break;
    }
    case C_SUBMIT: {
        long long id = 0;
        s = gate_submit(g, p.args[0], priority, &id);
        break;
    }
    case C_CANCEL:
        s = gate_find_change(g, p.args[0], &number);
        if (keel_ok(s))
            s = gate_cancel(g, number);
        break;
    case C_STATUS:
        s = gate_status(g, out,
                        (opt_value(&p, "json") != NULL ? (unsigned)GATE_STATUS_JSON : 0u) |
                            (opt_value(&p, "memory") != NULL ? (unsigned)GATE_STATUS_MEMORY : 0u));
        break;
    case C_LOG:
        s = gate_find_change(g, p.args[0], &number);
        if (keel_ok(s))
            s = gate_log(g, number, out,
                         (opt_value(&p, "raw") != NULL ? (unsigned)GATE_LOG_RAW : 0u) |
                             (opt_value(&p, "full") != NULL ? (unsigned)GATE_LOG_FULL : 0u) |
                             (opt_value(&p, "json") != NULL ? (unsigned)GATE_LOG_JSON : 0u));
        break;
    case C_SERVE: { /* every target the gate guards ([gate] targets): ?target= */
        gate **ts = NULL;
        size_t nts = 0;
        s = gate_targets_open(&o, g, NULL, 0, &ts, &nts);
        wo.targets = ts;
        wo.ntargets = nts;
        if (keel_ok(s))
            s = gate_serve(g, &wo, out);
        gate_targets_close(ts, nts);
        break;
    }
    case C_HISTORY:
        s = gate_history(g, opt_value(&p, "config"), out,
                         opt_value(&p, "json") != NULL ? (unsigned)GATE_HISTORY_JSON : 0u);
        break;
    case C_NIGHTLY:
        s = gate_nightly_cmd(g, opt_value(&p, "now") != NULL, out);
        break;
    case C_CULPRIT:
        s = gate_culprit_show(g, p.args[0], out, opt_value(&p, "json") != NULL);
        break;
    case C_BACKOUTS:
        if (opt_value(&p, "reset") != NULL) {
            bool was_open = false;
            s = gate_backout_reset(g, &was_open);
            if (keel_ok(s))
                (void)fprintf(out, "circuit breaker of '%s' %s\n", gate_target(g),
                              was_open ? "closed: automatic backouts start again" : "was not open");
        } else {
            s = gate_backouts(g, out, opt_value(&p, "json") != NULL);
        }
        break;
    case C_FLOWS:
        s = gate_flows_show(g, out, opt_value(&p, "json") != NULL);
        break;
    case C_TOKEN:
        s = gate_token_cmd(g, p.args[0], p.nargs > 1 ? p.args[1] : NULL, opt_value(&p, "role"),
                           out);
        break;
    case C_RUN: {
        gate_run_stats st;
        memset(&st, 0, sizeof(st));
        /* run --serve: the API on a gate of its own (its own store connection, one thread) */
        gate *served = NULL, **sts = NULL; /* and the other targets' (?target=) */
        size_t nsts = 0;
        gate_web *web = NULL;
        if (opt_value(&p, "serve") != NULL) {
            wo.listen = opt_value(&p, "serve");
            gate_options so = o;
            so.out = NULL;
            s = gate_open(&so, &served);
            if (keel_ok(s) && p.ntargets != 1)
                s = gate_targets_open(&so, served, p.targets, p.ntargets, &sts, &nsts);
            wo.targets = sts;
            wo.ntargets = nsts;
            if (keel_ok(s))
                s = gate_web_start(served, &wo, &web);
            if (keel_ok(s) && o.out != NULL)
                (void)fprintf(out, "serving http://%s/\n", gate_web_address(web));
        }
        gate **gs = NULL; /* several targets (--target A --target B, [gate] targets) */
        size_t ngs = 0;
        if (keel_ok(s) && p.ntargets != 1)
            s = gate_targets_open(&o, g, p.targets, p.ntargets, &gs, &ngs);
        gate_signals *sig = NULL; /* SIGINT, SIGTERM: stop gracefully; a second: at once */
        if (keel_ok(s))
            s = gate_signals_start(ngs > 0 ? gs[0] : g, err, &sig);
        if (keel_ok(s))
            s = ngs > 0 ? gate_run_targets(gs, ngs, opt_value(&p, "once") != NULL, &st)
                        : gate_run(g, opt_value(&p, "once") != NULL, &st);
        if (keel_ok(s) && o.out != NULL)
            (void)fprintf(out,
                          "summary: %llu landed, %llu rejected (%llu taken back), %llu "
                          "conflicts, %llu flaky, %llu builds (%llu jobs), %llu lost "
                          "compare-and-swaps, %llu hook failures\n",
                          st.landed, st.rejected, st.reopened, st.conflicts, st.flakes, st.builds,
                          st.jobs, st.moved, st.notify_failures);
        if (keel_ok(s) && o.out != NULL && st.parallel > 0.0)
            (void)fprintf(out,
                          "executor: %.1f jobs at once (learned from %u job timings), a "
                          "build %.2f of its longest job in work; window: batches of %u, %u "
                          "deep\n",
                          st.parallel, st.timed, st.width, st.batch, st.depth);
        gate_signals_stop(sig); /* after the last line: SIGPIPE is ignored until then */
        gate_targets_close(gs, ngs);
        gate_web_stop(web);
        gate_targets_close(sts, nsts);
        gate_close(served);
        rc = keel_ok(s) && st.rejected + st.conflicts == 0 ? 0 : 1;
        break;
    }
    default:
        break;
    }
    if (!keel_ok(s)) {
        print_error(err, s);
        rc = 1;
    }
    gate_close(g);
    return rc;
}
