/*
 * clidoc.c - manual pages and bash completion from a program's own tables
 * (clidoc.h).
 */
#include "clidoc.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

/* ---- the manual page ------------------------------------------------------------- */

/*
 * Text for roff: a backslash as \e, '-' as \- when `dashes` (option names,
 * the synopsis: a hyphen there must stay one to be searched for and
 * copied), a '.' or '\'' that starts a line made plain with \&.
 */
static void roff(FILE *f, const char *s, size_t len, bool dashes)
{
    bool line_start = true;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (line_start && (c == '.' || c == '\''))
            (void)fputs("\\&", f);
        if (c == '\\')
            (void)fputs("\\e", f);
        else if (c == '-' && dashes)
            (void)fputs("\\-", f);
        else
            (void)fputc(c, f);
        line_start = c == '\n';
    }
}

static void roff_str(FILE *f, const char *s, bool dashes)
{
    roff(f, s, strlen(s), dashes);
}

/*
 * Paragraphs separated by an empty line; one whose lines start with two
 * blanks is shown as it is (an example), indented.
 */
static void paragraphs(FILE *f, const char *text)
{
    for (const char *p = text; *p != '\0';) {
        const char *end = strstr(p, "\n\n");
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        bool example = strncmp(p, "  ", 2) == 0;
        (void)fputs(example ? ".PP\n.RS 4\n.nf\n" : ".PP\n", f);
        roff(f, p, len, example);
        (void)fputs(example ? "\n.fi\n.RE\n" : "\n", f);
        p = end != NULL ? end + 2 : p + len;
    }
}

static void section(FILE *f, const char *name, const char *text)
{
    if (text == NULL)
        return;
    (void)fprintf(f, ".SH %s\n", name);
    paragraphs(f, text);
}

static bool has_value(const gate_clidoc_item *it)
{
    return it->value != NULL && it->value[0] != '\0';
}

void gate_clidoc_man(FILE *f, const gate_clidoc *d)
{
    char upper[64] = "";
    size_t n = 0;
    for (const char *p = d->prog; *p != '\0' && n + 1 < sizeof(upper); p++, n++)
        upper[n] = (char)toupper((unsigned char)*p);
    upper[n] = '\0';
    (void)fprintf(f, ".\\\" %s(1), written by '%s --help-man' from its own tables\n", d->prog,
                  d->prog);
    (void)fputs(".TH ", f);
    roff_str(f, upper, true);
    (void)fputs(" 1 \"\" \"keel\" \"User Commands\"\n.SH NAME\n", f);
    roff_str(f, d->prog, true);
    (void)fputs(" \\- ", f);
    roff_str(f, d->title, false);
    (void)fputs("\n.SH SYNOPSIS\n.nf\n", f);
    roff_str(f, d->synopsis, true);
    (void)fputs("\n.fi\n", f);
    section(f, "DESCRIPTION", d->description);
    if (d->ncmds > 0)
        (void)fputs(".SH COMMANDS\n", f);
    for (size_t i = 0; i < d->ncmds; i++) {
        const gate_clidoc_item *c = &d->cmds[i];
        (void)fputs(".TP\n\\fB", f);
        roff_str(f, c->name, true);
        (void)fputs("\\fR", f);
        if (has_value(c)) {
            (void)fputs(" \\fI", f);
            roff_str(f, c->value, true);
            (void)fputs("\\fR", f);
        }
        (void)fputc('\n', f);
        roff_str(f, c->help, false);
        (void)fputc('\n', f);
    }
    (void)fputs(".SH OPTIONS\n", f);
    for (size_t i = 0; i < d->nopts; i++) {
        const gate_clidoc_item *o = &d->opts[i];
        (void)fputs(".TP\n\\fB\\-\\-", f);
        roff_str(f, o->name, true);
        (void)fputs("\\fR", f);
        if (has_value(o)) {
            (void)fputs(" \\fI", f);
            roff_str(f, o->value, true);
            (void)fputs("\\fR", f);
        }
        (void)fputc('\n', f);
        roff_str(f, o->help, false);
        if (o->where != NULL) { /* "try run" as "(try, run)" */
            (void)fputs(" (", f);
            for (const char *p = o->where; *p != '\0'; p++)
                if (*p == ' ')
                    (void)fputs(", ", f);
                else
                    (void)fputc(*p, f);
            (void)fputc(')', f);
        }
        (void)fputc('\n', f);
    }
    section(f, "EXIT STATUS", d->exit_status);
    section(f, "ENVIRONMENT", d->environment);
    section(f, "FILES", d->files);
    (void)fputs(".SH SEE ALSO\n", f);
    roff_str(f, d->see_also, false);
    (void)fputc('\n', f);
}

/* ---- bash completion --------------------------------------------------------------- */

/* What completes a value or an argument named `v` (clidoc.h). */
enum kind { K_NONE, K_BRANCH = 1, K_FILE = 2, K_DIR = 4, K_PROG = 8, K_WORDS = 16 };

static unsigned kind_of(const char *v)
{
    if (v == NULL || v[0] == '\0')
        return K_NONE;
    unsigned k = 0;
    k |= strstr(v, "BRANCH") != NULL || strstr(v, "branch") != NULL ? (unsigned)K_BRANCH : 0u;
    k |= strstr(v, "FILE") != NULL ? (unsigned)K_FILE : 0u;
    k |= strstr(v, "DIR") != NULL ? (unsigned)K_DIR : 0u;
    k |= strstr(v, "PROG") != NULL ? (unsigned)K_PROG : 0u;
    if (k == 0 && strchr(v, '|') != NULL && strspn(v, "abcdefghijklmnopqrstuvwxyz-|") == strlen(v))
        k = K_WORDS;
    return k;
}

/* COMPREPLY for `kind`; the caller's bash has $cur and $repo. */
static void reply(FILE *f, unsigned kind, const char *words, const char *fn)
{
    if ((kind & K_WORDS) != 0) {
        (void)fputs("COMPREPLY=($(compgen -W \"", f);
        for (const char *p = words; *p != '\0'; p++)
            (void)fputc(*p == '|' ? ' ' : *p, f);
        (void)fputs("\" -- \"$cur\"))", f);
        return;
    }
    (void)fputs("COMPREPLY=(", f);
    if ((kind & K_BRANCH) != 0)
        (void)fprintf(f, "$(%s_branches)", fn);
    if ((kind & K_PROG) != 0)
        (void)fputs(" $(compgen -c -- \"$cur\")", f);
    if ((kind & (K_FILE | K_PROG)) != 0)
        (void)fputs(" $(compgen -f -- \"$cur\")", f);
    else if ((kind & K_DIR) != 0)
        (void)fputs(" $(compgen -d -- \"$cur\")", f);
    (void)fputc(')', f);
}

/* Does the blank-separated list `where` (NULL: every command) name `cmd`? */
static bool applies(const char *where, const char *cmd)
{
    if (where == NULL)
        return true;
    size_t len = strlen(cmd);
    for (const char *p = where; (p = strstr(p, cmd)) != NULL; p += len)
        if ((p == where || p[-1] == ' ') && (p[len] == '\0' || p[len] == ' '))
            return true;
    return false;
}

static void option_words(FILE *f, const gate_clidoc *d, const char *cmd)
{
    for (size_t i = 0; i < d->nopts; i++)
        if (cmd == NULL ? d->opts[i].where == NULL : applies(d->opts[i].where, cmd))
            (void)fprintf(f, "%s--%s", i == 0 ? "" : " ", d->opts[i].name);
}

void gate_clidoc_bash(FILE *f, const gate_clidoc *d)
{
    char fn[64] = "";
    size_t n = 0;
    fn[n++] = '_';
    for (const char *p = d->prog; *p != '\0' && n + 1 < sizeof(fn); p++, n++) {
        fn[n] = *p;
        if (*p == '-')
            fn[n] = '_';
    }
    fn[n] = '\0';
    bool branches = false;
    for (size_t i = 0; i < d->nopts; i++)
        branches = branches || (kind_of(d->opts[i].value) & K_BRANCH) != 0;
    for (size_t i = 0; i < d->ncmds; i++)
        branches = branches || (kind_of(d->cmds[i].value) & K_BRANCH) != 0;
    (void)fprintf(f, "# bash completion for %s, written by '%s --completion' from its own tables\n",
                  d->prog, d->prog);
    if (branches)
        (void)fprintf(f,
                      "%s_branches()\n{\n    git -C \"$repo\" for-each-ref "
                      "--format='%%(refname:short)' refs/heads 2>/dev/null |\n"
                      "        while read -r b; do [[ $b == \"$cur\"* ]] && printf '%%s\\n' "
                      "\"$b\"; done\n}\n",
                      fn);
    (void)fprintf(f,
                  "%s()\n{\n    local cur=${COMP_WORDS[COMP_CWORD]} "
                  "prev=${COMP_WORDS[COMP_CWORD-1]}\n"
                  "    local cmd= repo=. rest=0 i w\n"
                  "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
                  "        w=${COMP_WORDS[i]}\n"
                  "        if ((rest > 0)); then ((rest++)); continue; fi\n"
                  "        case $w in\n"
                  "        --) rest=1 ;;\n",
                  fn);
    bool any = false;
    for (size_t i = 0; i < d->nopts; i++)
        if (has_value(&d->opts[i])) {
            (void)fprintf(f, "%s--%s", any ? "|" : "        ", d->opts[i].name);
            any = true;
        }
    if (any)
        (void)fputs(")\n            [[ $w == --repo ]] && repo=${COMP_WORDS[i+1]}\n"
                    "            ((i++)) ;;\n",
                    f);
    (void)fputs("        -*) ;;\n        *) [[ -z $cmd ]] && cmd=$w ;;\n        esac\n"
                "    done\n",
                f);
    if (d->rest != NULL) {
        (void)fputs("    if ((rest > 0)); then\n        if ((rest == 1)); then ", f);
        reply(f, K_PROG, "", fn);
        (void)fputs("; else COMPREPLY=($(compgen -f -- \"$cur\")); fi\n        return\n    fi\n",
                    f);
    }
    (void)fputs("    case $prev in\n", f);
    for (size_t i = 0; i < d->nopts; i++) {
        const gate_clidoc_item *o = &d->opts[i];
        if (!has_value(o))
            continue;
        (void)fprintf(f, "    --%s) ", o->name);
        reply(f, kind_of(o->value), o->value, fn);
        (void)fputs("; return ;;\n", f);
    }
    (void)fputs("    esac\n    if [[ $cur == -* ]]; then\n        case $cmd in\n", f);
    for (size_t i = 0; i < d->ncmds; i++) {
        (void)fprintf(f, "        %s) COMPREPLY=($(compgen -W \"", d->cmds[i].name);
        option_words(f, d, d->cmds[i].name);
        (void)fputs("\" -- \"$cur\")) ;;\n", f);
    }
    (void)fputs("        *) COMPREPLY=($(compgen -W \"", f);
    option_words(f, d, NULL);
    (void)fputs("\" -- \"$cur\")) ;;\n        esac\n        return\n    fi\n"
                "    if [[ -z $cmd ]]; then\n        COMPREPLY=($(compgen -W \"",
                f);
    for (size_t i = 0; i < d->ncmds; i++)
        (void)fprintf(f, "%s%s", i == 0 ? "" : " ", d->cmds[i].name);
    (void)fputs("\" -- \"$cur\"))\n        return\n    fi\n    case $cmd in\n", f);
    for (size_t i = 0; i < d->ncmds; i++) {
        unsigned k = kind_of(d->cmds[i].value) & ~(unsigned)K_PROG; /* PROG comes after -- */
        if (k == K_NONE)
            continue;
        (void)fprintf(f, "    %s) ", d->cmds[i].name);
        reply(f, k, d->cmds[i].value, fn);
        (void)fputs(" ;;\n", f);
    }
    (void)fprintf(f, "    esac\n}\ncomplete -F %s %s\n", fn, d->prog);
}
