/*
 * gate/cli/clidoc.h - a program's manual page and bash completion, written
 * from the command and option tables the program parses its arguments with
 * (keel-gate's gate/cli/cli.c, keel-stress's tools/keel-stress.c), so that
 * neither can drift from the program.  The programs print them on a hidden
 * option (`--help-man`, `--completion`); the build installs what they print.
 *
 * What completes an option's value or a command's arguments comes from the
 * names in them: BRANCH / branch (the branches of the repository, that of
 * --repo when given), FILE (files), DIR (directories), PROG (commands, then
 * files), a list of lower-case words joined by '|' (those words); anything
 * else completes nothing.
 */
#ifndef KEEL_GATE_CLIDOC_H
#define KEEL_GATE_CLIDOC_H

#include <stddef.h>
#include <stdio.h>

typedef struct gate_clidoc_item {
    const char *name;  /* a command, or an option without its dashes */
    const char *value; /* an option's value, a command's arguments; NULL or "": none */
    const char *help;  /* one sentence */
    const char *where; /* an option's commands, blank-separated; NULL: every command */
} gate_clidoc_item;

typedef struct gate_clidoc {
    const char *prog;        /* "keel-gate" */
    const char *title;       /* NAME's line after "prog - " */
    const char *synopsis;    /* lines ('\n'), each a way to call it */
    const char *description; /* paragraphs separated by an empty line */
    const gate_clidoc_item *cmds;
    size_t ncmds;
    const gate_clidoc_item *opts;
    size_t nopts;
    const char *rest;        /* after "--": "PROG" (a command and its arguments) or NULL */
    const char *exit_status; /* paragraphs */
    const char *environment; /* paragraphs, or NULL */
    const char *files;       /* paragraphs, or NULL */
    const char *see_also;    /* one line */
} gate_clidoc;

/* The manual page (man(7) macros), section 1. */
void gate_clidoc_man(FILE *f, const gate_clidoc *d);
/* A bash completion script: `complete -F _<prog> <prog>` ('-' in the name made '_'). */
void gate_clidoc_bash(FILE *f, const gate_clidoc *d);

#endif /* KEEL_GATE_CLIDOC_H */
