/*
 * tests/clidoc_check.h - a program's manual page and bash completion (as it
 * writes them from its tables: gate/cli/clidoc.h) checked against the
 * commands and options its --help lists: every one of them is in the page,
 * `man -l` renders the page without a warning, and bash completes every
 * command, and every option for at least one command.
 */
#ifndef KEEL_TEST_CLIDOC_CHECK_H
#define KEEL_TEST_CLIDOC_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static inline void clidoc_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* A name as roff writes it in the page: '-' as "\-". */
static inline void clidoc_roff_name(char *out, size_t size, const char *prefix, const char *name)
{
    size_t n = (size_t)snprintf(out, size, "\\fB%s", prefix);
    for (const char *p = name; *p != '\0' && n + 3 < size; p++) {
        if (*p == '-')
            out[n++] = '\\';
        out[n++] = *p;
    }
    (void)snprintf(out + n, size - n, "\\fR");
}

/*
 * Check `page` and `completion` of `prog` (written into dir) against its
 * commands and options; `repo`: a repository whose branches the completion
 * of `branch_cmd`'s argument must offer (NULL: none), `branch` one of them.
 */
static inline void clidoc_check(const char *dir, const char *prog, const char *page,
                                const char *completion, const char *const *cmds, size_t ncmds,
                                const char *const *opts, size_t nopts, const char *repo,
                                const char *branch_cmd, const char *branch)
{
    char want[160], path[256], cpath[256], out[256], err[256], cmd[2048];
    for (size_t i = 0; i < ncmds; i++) {
        clidoc_roff_name(want, sizeof(want), "", cmds[i]);
        if (strstr(page, want) == NULL)
            fail_msg("the manual page of %s has no command '%s' (%s)", prog, cmds[i], want);
    }
    for (size_t i = 0; i < nopts; i++) {
        clidoc_roff_name(want, sizeof(want), "\\-\\-", opts[i]);
        if (strstr(page, want) == NULL)
            fail_msg("the manual page of %s has no option '--%s' (%s)", prog, opts[i], want);
    }
    (void)snprintf(path, sizeof(path), "%s/%s.1", dir, prog);
    (void)snprintf(out, sizeof(out), "%s/man.out", dir);
    (void)snprintf(err, sizeof(err), "%s/man.err", dir);
    clidoc_write(path, page);
    if (system("command -v man >/dev/null 2>&1") != 0) {
        (void)fprintf(stderr, "skipped: 'man' is not installed (make deps installs man-db)\n");
        skip();
    }
    (void)snprintf(cmd, sizeof(cmd),
                   "LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=w -l '%s' >'%s' 2>'%s'", path, out,
                   err);
    int rc = system(cmd);
    static char text[65536];
    keel_test_read_file(err, text, sizeof(text));
    if (rc != 0 || text[0] != '\0')
        fail_msg("man -l %s: status %d, warnings:\n%s", path, rc, text);
    keel_test_read_file(out, text, sizeof(text));
    for (size_t i = 0; i < ncmds; i++)
        if (strstr(text, cmds[i]) == NULL)
            fail_msg("the page as man shows it has no '%s':\n%s", cmds[i], text);

    /* completion: the commands, then each command's options, then a branch */
    (void)snprintf(cpath, sizeof(cpath), "%s/%s.bash", dir, prog);
    clidoc_write(cpath, completion);
    char fn[64];
    size_t n = 0;
    fn[n++] = '_';
    for (const char *p = prog; *p != '\0' && n + 1 < sizeof(fn); p++)
        fn[n++] = *p == '-' ? '_' : *p;
    fn[n] = '\0';
    size_t len = (size_t)snprintf(
        cmd, sizeof(cmd),
        "bash -c 'source \"$0\"; t() { COMP_WORDS=(\"$@\"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
        "COMPREPLY=(); %s; echo \"$* -> ${COMPREPLY[*]}\"; }; t %s \"\"",
        fn, prog);
    for (size_t i = 0; i < ncmds && len < sizeof(cmd); i++)
        len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, "; t %s %s --", prog, cmds[i]);
    if (repo != NULL && len < sizeof(cmd))
        len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, "; t %s --repo %s %s \"\"", prog,
                                repo, branch_cmd);
    if (len < sizeof(cmd))
        (void)snprintf(cmd + len, sizeof(cmd) - len, "' '%s' >'%s' 2>'%s'", cpath, out, err);
    assert_true(len < sizeof(cmd) - 64);
    rc = system(cmd);
    keel_test_read_file(err, text, sizeof(text));
    if (rc != 0 || text[0] != '\0')
        fail_msg("bash completion of %s: status %d:\n%s", prog, rc, text);
    keel_test_read_file(out, text, sizeof(text));
    const char *first_end = strchr(text, '\n');
    assert_non_null(first_end);
    for (size_t i = 0; i < ncmds; i++) {
        (void)snprintf(want, sizeof(want), " %s", cmds[i]);
        const char *at = strstr(text, want);
        if (at == NULL || at > first_end)
            fail_msg("bash does not complete the command '%s' of %s:\n%s", cmds[i], prog, text);
    }
    for (size_t i = 0; i < nopts; i++) {
        (void)snprintf(want, sizeof(want), " --%s", opts[i]);
        const char *at = strstr(first_end, want);
        if (at == NULL || (at[strlen(want)] != ' ' && at[strlen(want)] != '\n'))
            fail_msg("bash completes the option '--%s' of %s for no command:\n%s", opts[i], prog,
                     text);
    }
    if (repo != NULL) {
        const char *line = strstr(text, " --repo "); /* the last line: "... --repo R log  -> a b" */
        if (line == NULL || strstr(line, branch) == NULL)
            fail_msg("bash does not complete the branch '%s' for '%s':\n%s", branch, branch_cmd,
                     text);
    }
}

#endif /* KEEL_TEST_CLIDOC_CHECK_H */
