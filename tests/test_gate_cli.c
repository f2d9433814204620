/*
 * test_gate_cli.c - keel-gate's command line: usage and exit codes, hostile
 * branch names, submit/cancel/status/log/try, and `status --json` that parses.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clidoc_check.h"
#include "gate_fixture.h"
#include "gate_text.h"
#include "text.h"

static char out_text[1 << 20], err_text[8192]; /* log --full of 1,100 jobs */
static bool cli_no_state;                      /* cli() gives --repo only (check opens no store) */

/* Run the CLI in this process with `args` (NULL-terminated), output captured. */
static int cli(const char *const *args)
{
    /* argv is writable in main(): give it copies */
    /* (arguments of 300 bytes: test_check; 3000: test_long_argument_reason_kept) */
    static char words[32][4096];
    char *argv[32];
    int argc = 0;
    const char *fixed[] = {"keel-gate", "--repo",   fx_where, "--state",
                           fx_state,    "--mirror", fx_mirror};
    size_t nfixed = cli_no_state ? 3 : fx_where != fx_repo ? 7 : 5; /* a URL's mirror */
    for (size_t i = 0; i < nfixed; i++, argc++)
        argv[argc] = strcpy(words[argc], fixed[i]);
    for (const char *const *a = args; *a != NULL && argc < 31; a++, argc++)
        argv[argc] = strcpy(words[argc], *a);
    argv[argc] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    int rc = gate_cli_main(argc, argv, out, err);
    rewind(out);
    rewind(err);
    size_t n = fread(out_text, 1, sizeof(out_text) - 1, out);
    out_text[n] = '\0';
    n = fread(err_text, 1, sizeof(err_text) - 1, err);
    err_text[n] = '\0';
    (void)fclose(out);
    (void)fclose(err);
    return rc;
}

/* How many times `what` is in `text`. */
static size_t count_of(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

static void assert_has(const char *text, const char *what)
{
    if (strstr(text, what) == NULL)
        fail_msg("no '%s' in:\n%s", what, text);
}

static int setup(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial", "");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fx_teardown_repo();
    return 0;
}

/*
 * An option keel-gate does not have is called one and named with the option
 * meant: '-h' was "unknown command '-h'" (and 'status -j' an unexpected
 * argument), '--prio' had no suggestion though only '--priority' begins so.
 */
static void test_unknown_option_named(void **state)
{
    (void)state;
    static const struct {
        const char *argv[4], *said;
    } cases[] = {
        {{"-h", NULL}, "keel-gate: unknown option '-h' (did you mean '--help'?)\n"},
        {{"-x", "status", NULL}, "keel-gate: unknown option '-x'\n"},
        {{"status", "-j", NULL}, "keel-gate: unknown option '-j' (did you mean '--json'?)\n"},
        {{"log", "a", "-f", NULL}, "keel-gate: unknown option '-f' (did you mean '--full'?)\n"},
        {{"submit", "a", "--prio", NULL},
         "keel-gate: unknown option '--prio' (did you mean '--priority'?)\n"},
        {{"--stat=x", "status", NULL},
         "keel-gate: unknown option '--stat' (did you mean '--state'?)\n"},
        {{"--re", "status", NULL}, "keel-gate: unknown option '--re'\n"}, /* begins several */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(cli(cases[i].argv), 2);
        if (strncmp(err_text, cases[i].said, strlen(cases[i].said)) != 0)
            fail_msg("%s: '%s', not '%s'", cases[i].argv[0], err_text, cases[i].said);
    }
    /* a word that is an argument is one: a branch refused for its '-', '-1' no change id */
    const char *branch[] = {"submit", "-x", NULL};
    assert_int_equal(cli(branch), 1);
    assert_non_null(strstr(err_text, "'-x' is not a valid branch name: it starts with '-'"));
    const char *id[] = {"cancel", "-1", NULL};
    assert_int_equal(cli(id), 2);
    assert_non_null(strstr(err_text, "'-1' is neither a change id"));
}

/* A number option's value is the number alone: ' 5' was taken as 5 and '5 ' refused. */
static void test_number_options_alone(void **state)
{
    (void)state;
    const char *blank_first[] = {"submit", "a", "--priority", " 5", NULL};
    assert_int_equal(cli(blank_first), 2);
    assert_non_null(strstr(err_text, "'--priority' needs a whole number from -536870911 to "
                                     "536870911, not ' 5'"));
    const char *tab_first[] = {"serve", "--nice", "\t3", NULL};
    assert_int_equal(cli(tab_first), 2);
    assert_non_null(strstr(err_text, "'--nice' needs a whole number from 0 to 19, not '\\x093'"));
    const char *sign_alone[] = {"submit", "a", "--priority", "-", NULL};
    assert_int_equal(cli(sign_alone), 2);
    assert_non_null(strstr(err_text, "not '-'"));
}

/*
 * A usage error about an argument of thousands of bytes still says what is
 * wrong with it: the message was cut at 1024 bytes, inside the argument.
 */
static void test_long_argument_reason_kept(void **state)
{
    (void)state;
    static char arg[3001];
    memset(arg, 'b', sizeof(arg) - 1);
    const char *cancel[] = {"cancel", arg, NULL};
    assert_int_equal(cli(cancel), 2);
    assert_non_null(strstr(err_text, "bbbb...' is neither a change id (a positive number) nor a "
                                     "branch"));
    const char *extra[] = {"status", arg, NULL};
    assert_int_equal(cli(extra), 2);
    assert_non_null(strstr(err_text, "keel-gate: unexpected argument 'bbbb"));
    assert_non_null(strstr(err_text, "bbbb...'\n"));
}

static void test_usage_exit_codes(void **state)
{
    (void)state;
    const char *none[] = {NULL};
    assert_int_equal(cli(none), 2);
    const char *help[] = {"--help", NULL};
    assert_int_equal(cli(help), 0);
    assert_non_null(strstr(out_text, "submit"));
    const char *typo[] = {"sumbit", "x", NULL};
    assert_int_equal(cli(typo), 2);
    assert_non_null(strstr(err_text, "unknown command 'sumbit' (did you mean 'submit'?)"));
    const char *opt[] = {"status", "--jsn", NULL};
    assert_int_equal(cli(opt), 2);
    assert_non_null(strstr(err_text, "did you mean '--json'"));
    const char *wrong[] = {"status", "--once", NULL};
    assert_int_equal(cli(wrong), 2);
    assert_non_null(strstr(err_text, "'--once' does not apply to 'status'"));
    const char *missing[] = {"submit", NULL};
    assert_int_equal(cli(missing), 2);
    const char *prio[] = {"submit", "a", "--priority", "high", NULL};
    assert_int_equal(cli(prio), 2);
    assert_non_null(strstr(err_text, "'high'"));
    /* a person's priority stays below the gate's own flow merges (2^29) */
    const char *over[] = {"submit", "a", "--priority", "536870912", NULL};
    assert_int_equal(cli(over), 2);
    assert_non_null(strstr(err_text, "'--priority' needs a whole number from -536870911 to "
                                     "536870911, not '536870912'"));
    const char *id[] = {"cancel", "x 1", NULL};
    assert_int_equal(cli(id), 2);
    assert_non_null(strstr(err_text, "'x 1' is neither a change id (a positive number) nor a "
                                     "branch"));
    const char *extra[] = {"status", "more", NULL};
    assert_int_equal(cli(extra), 2);
}

/*
 * Bad arguments a user types: a value option given twice, a change id of 0
 * or past the largest, --mirror for a local repository.  Each a usage error
 * (exit 2) naming what was wrong, before the store is opened or changed.
 */
static void test_bad_arguments(void **state)
{
    (void)state;
    fx_branch("good", "good.txt", "g\n");
    const char *sub[] = {"submit", "good", NULL};
    assert_int_equal(cli(sub), 0); /* change 1 */
    /* cli() gives --state first: a second one was taken silently (the last won) */
    const char *state2[] = {"status", "--state", "/nonexistent/other.db", NULL};
    assert_int_equal(cli(state2), 2);
    assert_has(err_text, "option '--state' is given twice");
    assert_has(err_text, "then '/nonexistent/other.db'): give it once");
    const char *prio[] = {"submit", "good", "--priority", "1", "--priority=2", NULL};
    assert_int_equal(cli(prio), 2);
    assert_has(err_text, "option '--priority' is given twice ('1', then '2'): give it once");
    const char *listen[] = {"serve", "--listen", "127.0.0.1:0", "--listen=127.0.0.1:1", NULL};
    assert_int_equal(cli(listen), 2);
    assert_has(err_text, "option '--listen' is given twice");
    const char *target[] = {"status", "--target", "a", "--target", "b", NULL};
    assert_int_equal(cli(target), 2);
    assert_has(err_text, "option '--target' is given twice ('a', then 'b')");
    const char *same[] = {"run", "--once", "--target", "main", "--target=main", NULL};
    assert_int_equal(cli(same), 2);
    assert_has(err_text, "option '--target' names 'main' twice: a target has one queue");
    /* a change id that is not one: it was taken as a branch "0" (exit 1, or no such branch) */
    static const char *const ids[] = {"0", "00", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char want[128];
        (void)snprintf(want, sizeof(want), "'%s' is not a change id (a positive number up to ",
                       ids[i]);
        const char *log[] = {"log", ids[i], NULL};
        assert_int_equal(cli(log), 2);
        assert_has(err_text, want);
        const char *cancel[] = {"cancel", ids[i], NULL};
        assert_int_equal(cli(cancel), 2);
        assert_has(err_text, want);
    }
    const char *neg[] = {"cancel", "--", "-1", NULL};
    assert_int_equal(cli(neg), 2);
    assert_has(err_text, "'-1' is neither a change id (a positive number) nor a branch");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = ?", "queued"), 1);
    /* --mirror with a local repository: it was ignored, the repository read directly */
    char mirror[300];
    (void)snprintf(mirror, sizeof(mirror), "%s/never-made.git", fx_dir);
    const char *local[] = {"--mirror", mirror, "status", NULL};
    assert_int_equal(cli(local), 2);
    char want[512];
    (void)snprintf(want, sizeof(want),
                   "'--mirror' is a URL's local copy, but '%s' is a local repository (the gate "
                   "reads it directly): give '--repo URL', or no '--mirror'",
                   fx_repo);
    assert_has(err_text, want);
    struct stat st;
    assert_int_equal(stat(mirror, &st), -1);
}

/* Is there nothing at `path`? */
static bool absent(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 && errno == ENOENT;
}

/*
 * A command that only reads, given a --state where there is no store: it made
 * a store there (status said "0 builds so far" of a store made at the mistyped
 * path, with its <state>.d); now a usage error naming the path, nothing made.
 * With the default store and none yet: no gate has run, said (exit 1), nothing
 * made in the git directory.  A command that writes makes the store, as before.
 */
static void test_read_needs_store(void **state)
{
    (void)state;
    fx_branch("topic", "topic.txt", "t\n");
    char typo[300], typo_dir[310], fresh[300], fresh_dir[310], want[700];
    (void)snprintf(typo, sizeof(typo), "%s/typo.db", fx_dir);
    (void)snprintf(typo_dir, sizeof(typo_dir), "%s.d", typo);
    (void)snprintf(fresh, sizeof(fresh), "%s/keel-gate.db", fx_repo); /* a bare repository's */
    (void)snprintf(fresh_dir, sizeof(fresh_dir), "%s.d", fresh);
    static const char *const reads[][3] = {
        {"status", NULL, NULL},   {"status", "--json", NULL}, {"log", "topic", NULL},
        {"history", NULL, NULL},  {"culprit", "unit", NULL},  {"nightly", NULL, NULL},
        {"backouts", NULL, NULL}, {"flows", NULL, NULL},      {"token", "list", NULL},
    };
    cli_no_state = true;
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        const char *given[] = {"--state", typo, reads[i][0], reads[i][1], NULL};
        int rc = cli(given);
        (void)snprintf(want, sizeof(want),
                       "keel-gate: no store at '%s' ('%s' only reads a gate's store: give the "
                       "--state of a gate that has run, or run 'keel-gate submit' or 'keel-gate "
                       "run' first)\n",
                       typo, reads[i][0]);
        if (rc != 2 || strstr(err_text, want) == NULL)
            fail_msg("%s --state %s: exit %d, '%s' (wanted 2 and '%s')", reads[i][0], typo, rc,
                     err_text, want);
        assert_true(absent(typo) && absent(typo_dir));
        const char *fallback[] = {reads[i][0], reads[i][1], NULL};
        rc = cli(fallback);
        (void)snprintf(want, sizeof(want),
                       "keel-gate: error: keel.NOTFOUND: no store at '%s': no gate has run on "
                       "this repository yet ('keel-gate submit BRANCH' queues a change, "
                       "'keel-gate run' runs the queue)",
                       fresh);
        if (rc != 1 || strstr(err_text, want) == NULL)
            fail_msg("%s: exit %d, '%s' (wanted 1 and '%s')", reads[i][0], rc, err_text, want);
        assert_true(absent(fresh) && absent(fresh_dir));
    }
    /* a command that writes makes the store where it is told, and then reads find it */
    const char *sub[] = {"--state", typo, "submit", "topic", "--quiet", NULL};
    assert_int_equal(cli(sub), 0);
    assert_false(absent(typo));
    const char *st[] = {"--state", typo, "status", NULL};
    assert_int_equal(cli(st), 0);
    assert_has(out_text, "queued (1):\n");
    const char *reset[] = {"backouts", "--reset", NULL}; /* writes: the default store made */
    assert_int_equal(cli(reset), 0);
    assert_false(absent(fresh));
    const char *list[] = {"token", "list", NULL};
    assert_int_equal(cli(list), 0);
    assert_has(out_text, "no tokens");
    cli_no_state = false;
}

/*
 * The display column where `what` starts in the line of `text` that holds `mark`: a
 * character one column, whatever its bytes; -1 when there is no such line.
 */
static long column_of(const char *text, const char *mark, const char *what)
{
    const char *at = strstr(text, mark);
    if (at == NULL)
        return -1;
    while (at > text && at[-1] != '\n')
        at--;
    const char *end = strchr(at, '\n'), *w = strstr(at, what);
    if (w == NULL || (end != NULL && w > end))
        return -1;
    long col = 0;
    for (const char *p = at; p < w; p++)
        col += ((unsigned char)*p & 0xc0) != 0x80 ? 1 : 0; /* not a continuation byte */
    return col;
}

/*
 * status's columns line up whatever the branch names in the store: one shown
 * escaped (an invalid byte, \xff: 4 columns for 1 byte; U+202E, \u{202e}: 8
 * for 3) or with a character of two bytes (e-acute: 1 column) was padded by its
 * bytes, and the commit after it moved out of its column.
 */
static void test_status_columns_aligned(void **state)
{
    (void)state;
    gate_close(fx_open()); /* the store */
    fx_sql_exec("INSERT INTO changes (branch, head, target, submitted_at, updated_at, state, "
                "reason) VALUES "
                "('plain', 'a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1', 'main', 1, 1, 'queued', ''),"
                "(CAST(x'626164ff' AS TEXT), 'b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2', 'main', "
                "2, 2, 'queued', ''),"
                "('caf' || char(233), 'c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3', 'main', 3, 3, "
                "'queued', ''),"
                "('x' || char(8238) || 'y', 'd4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4', 'main', "
                "4, 4, 'queued', ''),"
                "('plain2', 'e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5', 'main', 5, 5, 'rejected', "
                "'r'),"
                "(CAST(x'626164ff32' AS TEXT), 'f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6', 'main', "
                "6, 6, 'rejected', 'r')");
    const char *st[] = {"status", NULL};
    assert_int_equal(cli(st), 0);
    assert_has(out_text, "bad\\xff ");
    assert_has(out_text, "x\\u{202e}y ");
    static const char *const heads[] = {"a1a1a1a1a1a1", "b2b2b2b2b2b2", "c3c3c3c3c3c3",
                                        "d4d4d4d4d4d4", "e5e5e5e5e5e5", "f6f6f6f6f6f6"};
    long want = column_of(out_text, heads[0], heads[0]);
    assert_true(want > 0);
    for (size_t i = 1; i < sizeof(heads) / sizeof(heads[0]); i++)
        if (column_of(out_text, heads[i], heads[i]) != want)
            fail_msg("%s at column %ld, not %ld as %s:\n%s", heads[i],
                     column_of(out_text, heads[i], heads[i]), want, heads[0], out_text);
}

/* culprit '': it said "no configuration ''" (and made the store to say it) */
static void test_culprit_empty_name(void **state)
{
    (void)state;
    const char *empty[] = {"culprit", "", NULL};
    assert_int_equal(cli(empty), 2);
    assert_has(err_text, "keel-gate: the configuration name is empty: 'culprit' needs the name of "
                         "one of the target's configurations ('keel-gate check' lists them)\n");
    const char *as_json[] = {"culprit", "--json", "", NULL};
    assert_int_equal(cli(as_json), 2);
    assert_has(err_text, "the configuration name is empty");
}

/*
 * More of the same: token's verbs, names and roles, an option given empty,
 * --reset with --json; check given a directory, and a file whose 64
 * configurations' names are longer than the line once held.
 */
static void test_token_and_check_arguments(void **state)
{
    (void)state;
    static const struct {
        const char *args[5];
        const char *says;
    } bad[] = {
        {{"token", "frob", NULL}, "unknown token verb 'frob': add, list or revoke"},
        {{"token", "ad", "x", NULL}, "unknown token verb 'ad' (did you mean 'add'?)"},
        {{"token", "add", NULL}, "'token add' needs the token's NAME"},
        {{"token", "revoke", NULL}, "'token revoke' needs the token's NAME"},
        {{"token", "list", "extra", NULL}, "'token list' takes no name, not 'extra'"},
        {{"token", "add", "a b", NULL},
         "token name 'a b' must be 1 to 64 visible ASCII characters"},
        {{"token", "add", "", NULL}, "token name '' must be 1 to 64 visible ASCII characters"},
        {{"token", "add", "n1234567890123456789012345678901234567890123456789012345678901234",
          NULL},
         "must be 1 to 64 visible ASCII characters"},
        {{"token", "add", "x", "--role=god", NULL}, "'--role' is read, submit or admin, not 'god'"},
        {{"token", "list", "--role", "admin", NULL},
         "'--role' is for 'token add' (a new token's role), not for 'token list'"},
        {{"status", "--target=", NULL}, "option '--target' needs a value, not ''"},
        {{"submit", "x", "--priority", "", NULL}, "option '--priority' needs a value, not ''"},
        {{"backouts", "--reset", "--json", NULL}, "'--reset' closes the circuit breaker"},
        {{"log", "1", "--raw", "--json", NULL}, "'--raw' is for reading: '--json' has"},
        {{"serve", "--listen", "nohost", NULL},
         "'--listen': listen address 'nohost' is not HOST:PORT (an IPv4 address)"},
        {{"serve", "--listen", "127.0.0.1:99999", NULL},
         "'--listen': listen address '127.0.0.1:99999': the port '99999' is not a number in "
         "[0, 65535]"},
        {{"serve", "--listen", "127.0.0.1:-1", NULL},
         "'--listen': listen address '127.0.0.1:-1': the port '-1' is not a number in [0, 65535]"},
        {{"run", "--serve=127.0.0.1: 80", NULL},
         "'--serve': listen address '127.0.0.1: 80': the port ' 80' is not a number in "
         "[0, 65535]"},
        {{"run", "--serve=1.2.3.4.5:80", NULL},
         "'--serve': listen address '1.2.3.4.5:80': "
         "'1.2.3.4.5' is not an IPv4 address"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = cli(bad[i].args);
        if (rc != 2 || strstr(err_text, bad[i].says) == NULL)
            fail_msg("%s %s: exit %d, '%s' (wanted 2 and '%s')", bad[i].args[0], bad[i].args[1], rc,
                     err_text, bad[i].says);
    }
    gate_close(fx_open()); /* the store: token list only reads one */
    const char *list[] = {"token", "list", NULL};
    assert_int_equal(cli(list), 0);
    assert_has(out_text, "no tokens"); /* none was added */
    /* token list lists every token: 300 (it listed 256 at most) */
    fx_sql_exec("WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 300) "
                "INSERT INTO tokens (name, role, hash, created_at) "
                "SELECT printf('t%03d', i), 'read', 'x', 0 FROM k");
    assert_int_equal(cli(list), 0);
    assert_int_equal(count_of(out_text, " read    created "), 300);
    assert_has(out_text, "t300 ");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE ?1 IS NOT NULL", "x"), 0);
    cli_no_state = true;
    const char *dir[] = {"check", fx_dir, NULL};
    assert_int_equal(cli(dir), 1);
    char want[600];
    (void)snprintf(want, sizeof(want),
                   "'%s' is a directory: give the file ('%s/.keel/gate.conf'), a branch or '-'",
                   fx_dir, fx_dir);
    assert_has(err_text, want);
    /* the names were written into 1024 bytes and cut there, mid-name */
    static char text[16384];
    size_t n = 0;
    for (int i = 1; i <= 64; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "[config configuration-with-a-long-name-%02d]\ntest = true\n", i);
    char path[300];
    (void)snprintf(path, sizeof(path), "%s/many.conf", fx_dir);
    clidoc_write(path, text);
    const char *many[] = {"check", path, NULL};
    assert_int_equal(cli(many), 0);
    assert_has(out_text, ": ok: 64 configurations: configuration-with-a-long-name-01, ");
    assert_has(out_text,
               ", configuration-with-a-long-name-63, configuration-with-a-long-name-64\n");
    cli_no_state = false;
}

/* The column where a line's help starts: after its last run of two blanks or more. */
static size_t help_column(const char *line)
{
    size_t at = 0;
    for (const char *p = strstr(line, "  "); p != NULL; p = strstr(p, "  ")) {
        while (*p == ' ')
            p++;
        at = (size_t)(p - line);
    }
    return at;
}

/* The lines of `text` from `from` to `to` (NULL: its end): each one's help in one column. */
static void assert_one_column(const char *from, const char *to, size_t min_lines)
{
    size_t want = 0, lines = 0;
    for (const char *p = from; *p != '\0' && (to == NULL || p < to);) {
        size_t len = strcspn(p, "\n");
        char line[512];
        (void)snprintf(line, sizeof(line), "%.*s", (int)len, p);
        p += len + (p[len] == '\n' ? 1 : 0);
        if (line[0] == '\0')
            continue;
        size_t at = help_column(line);
        if (want == 0)
            want = at;
        if (at != want || at <= 2)
            fail_msg("'%s': its help starts at column %zu, the first line's at %zu", line, at,
                     want);
        lines++;
    }
    assert_true(lines >= min_lines);
}

/* --help's commands and options: each table's help in one column, whatever the names' widths. */
static void test_help_aligned(void **state)
{
    (void)state;
    const char *help[] = {"--help", NULL};
    assert_int_equal(cli(help), 0);
    const char *cmds = strstr(out_text, "\ncommands:\n"), *opts = strstr(out_text, "\noptions:\n");
    assert_non_null(cmds);
    assert_non_null(opts);
    assert_one_column(cmds + 11, opts, 14);
    assert_one_column(opts + 10, NULL, 20);
}

/*
 * docs/gate.md's CLI synopsis (the block after "## CLI") names every option
 * --help lists, and no option --help does not: the docs cannot drift.
 */
static void test_options_in_docs(void **state)
{
    (void)state;
    static char doc[300000];
    keel_test_read_file(KEEL_SOURCE_DIR "/docs/gate.md", doc, sizeof(doc));
    const char *start = strstr(doc, "\n## CLI\n\n```\n");
    assert_non_null(start);
    start += 13;
    const char *end = strstr(start, "\n```\n");
    assert_non_null(end);
    static char block[16384];
    (void)snprintf(block, sizeof(block), "%.*s", (int)(end - start), start);
    const char *help[] = {"--help", NULL};
    assert_int_equal(cli(help), 0);
    const char *opts = strstr(out_text, "\noptions:\n");
    assert_non_null(opts);
    char names[64][32];
    size_t n = 0;
    for (const char *p = strstr(opts, "\n  --"); p != NULL && n < 64; p = strstr(p, "\n  --")) {
        p += 5;
        size_t len = strcspn(p, " \n");
        (void)snprintf(names[n++], sizeof(names[0]), "%.*s", (int)len, p);
    }
    assert_true(n >= 20);
    for (size_t i = 0; i < n; i++) { /* --name, not the start of a longer one */
        bool found = false;
        char want[40];
        (void)snprintf(want, sizeof(want), "--%.31s", names[i]);
        for (const char *q = strstr(block, want); q != NULL && !found; q = strstr(q + 1, want)) {
            char after = q[strlen(want)];
            found = !(after == '-' || (after >= 'a' && after <= 'z'));
        }
        if (!found)
            fail_msg("docs/gate.md's CLI block does not name '%s', which --help lists", want);
    }
    for (const char *q = strstr(block, "--"); q != NULL; q = strstr(q + 2, "--")) {
        size_t len = strspn(q + 2, "abcdefghijklmnopqrstuvwxyz-");
        if (len == 0)
            continue;
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = strlen(names[i]) == len && strncmp(names[i], q + 2, len) == 0;
        if (!known)
            fail_msg("docs/gate.md's CLI block names '--%.*s', which --help does not list",
                     (int)len, q + 2);
    }
}

static void test_hostile_branch_names(void **state)
{
    (void)state;
    static const char *const hostile[] = {"x;rm -rf /", "$(reboot)", "-rf",   "a b",
                                          "`id`",       "a..b",      "a|b",   "refs/heads/x",
                                          "x\ny",       "../../etc", "a'b\"c"};
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        const char *args[] = {"submit", "--", hostile[i], NULL};
        assert_int_equal(cli(args), 1);
        assert_non_null(strstr(err_text, "is not a valid branch name"));
        const char *try_args[] = {"try", "--", hostile[i], NULL};
        assert_int_equal(cli(try_args), 1);
        assert_non_null(strstr(err_text, "is not a valid branch name"));
    }
    const char *args[] = {"submit", "x;rm", NULL};
    assert_int_equal(cli(args), 1);
    assert_non_null(strstr(err_text, "'x;rm' is not a valid branch name"));
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes", NULL), 0);
    /* the API says the same */
    gate *g = fx_open();
    long long id = 0;
    keel_status s = gate_submit(g, "$(reboot)", 0, &id);
    assert_true(keel_status_is(s, &gate_codes, GATE_E_BAD_REF));
    keel_status_free(s);
    gate_close(g);
}

static void test_submit_cancel_status_log(void **state)
{
    (void)state;
    fx_branch("good", "good.txt", "g\n");
    fx_branch("bad", "bad", "b\n");
    fx_branch("gone", "gone.txt", "x\n");
    const char *s1[] = {"submit", "good", NULL};
    assert_int_equal(cli(s1), 0);
    assert_non_null(strstr(out_text, "queued change 1: 'good'"));
    const char *again[] = {"submit", "good", NULL};
    assert_int_equal(cli(again), 1);
    assert_non_null(strstr(err_text, "already queued"));
    const char *s2[] = {"submit", "bad", "--priority=3", NULL};
    assert_int_equal(cli(s2), 0);
    const char *s3[] = {"submit", "gone", NULL};
    assert_int_equal(cli(s3), 0);
    const char *c3[] = {"cancel", "3", NULL};
    assert_int_equal(cli(c3), 0);
    assert_int_equal(cli(c3), 1); /* already cancelled */
    assert_non_null(strstr(err_text, "already cancelled"));
    const char *nobranch[] = {"submit", "no-such-branch", NULL};
    assert_int_equal(cli(nobranch), 1);
    assert_non_null(strstr(err_text, "no branch 'no-such-branch'"));

    const char *st[] = {"status", "--json", NULL};
    assert_int_equal(cli(st), 0);
    gate_assert_json("status --json", out_text);
    assert_non_null(strstr(out_text, "\"queued\":[{\"id\":2,\"branch\":\"bad\""));

    const char *run[] = {"run", "--once", NULL};
    assert_int_equal(cli(run), 1); /* something was rejected */
    assert_non_null(strstr(out_text, "summary: 1 landed, 1 rejected"));
    assert_int_equal(cli(st), 0);
    gate_assert_json("status --json", out_text);
    assert_non_null(strstr(out_text, "\"landed\":[{\"id\":1,\"branch\":\"good\""));
    assert_non_null(strstr(out_text, "\"rejected\":[{\"id\":2,"));
    assert_non_null(strstr(out_text, "\"queued\":[]"));
    /* the run published its heaps: the gate's memory by module */
    assert_non_null(strstr(out_text, "\"memory\":{\"running\":"));
    assert_non_null(strstr(out_text, "{\"module\":\"gate_store\",\"live_bytes\":"));
    assert_non_null(strstr(out_text, "{\"module\":\"gate\",\"live_bytes\":"));
    const char *text[] = {"status", "--memory", NULL};
    assert_int_equal(cli(text), 0);
    assert_non_null(strstr(out_text, "recently rejected (1)"));
    assert_non_null(strstr(out_text, "memory of the run (pid "));

    const char *log[] = {"log", "2", NULL};
    assert_int_equal(cli(log), 0);
    assert_non_null(strstr(out_text, "change 2 'bad'"));
    assert_non_null(strstr(out_text, "keel-gate: $ sh ci.sh"));
    assert_non_null(strstr(out_text, "failed (exit 1)"));
    const char *nolog[] = {"log", "99", NULL};
    assert_int_equal(cli(nolog), 1);
    assert_non_null(strstr(err_text, "no change 99"));
    /* log reads every job of a change: 1,100 more than it has (it read 1,024 at most) */
    const char *full[] = {"log", "2", "--full", NULL};
    assert_int_equal(cli(full), 0);
    size_t before = count_of(out_text, "==== job ");
    fx_sql_exec("WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 1100) "
                "INSERT INTO jobs (candidate, config, attempt, state, log, started_at) "
                "SELECT (SELECT candidate FROM candidate_changes WHERE change = 2 LIMIT 1), "
                "'extra', i, 'passed', '', 1 FROM k");
    assert_int_equal(cli(full), 0);
    assert_int_equal(count_of(out_text, "==== job "), before + 1100);
    assert_has(out_text, "'extra', attempt 1100: passed");
}

static void test_try(void **state)
{
    (void)state;
    fx_branch("good", "good.txt", "g\n");
    fx_branch("bad", "bad", "b\n");
    const char *good[] = {"try", "good", NULL};
    assert_int_equal(cli(good), 0);
    assert_non_null(strstr(out_text, "unit"));
    assert_non_null(strstr(out_text, "passed"));
    assert_null(strstr(out_text, "---- ")); /* no log's end when it passed */
    const char *bad[] = {"try", "bad", NULL};
    assert_int_equal(cli(bad), 1);
    assert_non_null(strstr(out_text, "failed"));
    /* why, without opening the log: its end follows the table */
    const char *end = strstr(out_text, "---- 'unit': the whole log of ");
    assert_non_null(end);
    assert_non_null(strstr(end, "keel-gate: failed (exit 1)"));
    /* nothing was queued or landed */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes", NULL), 0);
    git_oid tip;
    fx_head("main", &tip);
    assert_true(git_oid_equal(&tip, &fx_base));
    /*
     * HEAD on the branch tried (a newcomer's clone, on the branch just made):
     * the default target is that branch, so trying or submitting it says
     * what to do, instead of merging it on itself and passing
     */
    git_oid plain, topic;
    const fx_file conf[] = {{".keel/gate.conf", "[config unit]\ntest = sh ci.sh\n"}};
    fx_commit(&fx_base, conf, 1, "plain", &plain); /* no [gate] target */
    const fx_file change[] = {{"topic.txt", "t\n"}};
    fx_commit(&plain, change, 1, "topic", &topic);
    assert_int_equal(git_repository_set_head(fx_git, "refs/heads/topic"), 0);
    const char *self[] = {"try", "topic", NULL};
    assert_int_not_equal(cli(self), 0);
    assert_non_null(strstr(err_text, "'topic' is the target"));
    assert_non_null(strstr(err_text, "give --target BRANCH"));
    const char *submit[] = {"submit", "topic", NULL};
    assert_int_not_equal(cli(submit), 0);
    assert_non_null(strstr(err_text, "give --target BRANCH"));
    const char *onto[] = {"--target", "plain", "try", "topic", NULL};
    assert_int_equal(cli(onto), 0);
    assert_int_equal(git_repository_set_head(fx_git, "refs/heads/main"), 0);
}

/*
 * Names anyone can push (file names in a conflict, a job's output, a branch
 * name on the command line) never reach a terminal as control sequences:
 * OSC 52 (sets the clipboard), C1 CSI, a run of ESCs long enough to overflow
 * an escaping buffer, invalid UTF-8; and `status --json` stays one valid JSON
 * value for a strict parser.
 */
static void test_hostile_text_escaped(void **state)
{
    (void)state;
    static const char osc52[] = "a\x1b]52;c;ZWNobyBvd25lZA==\x07"
                                "b.txt";
    static const char c1_utf8[] = "c\xff\xfe\xc2\x9b"
                                  "31md.txt";
    char escs[160];
    memset(escs, '\x1b', 150);
    (void)snprintf(escs + 150, sizeof(escs) - 150, ".txt");
    git_oid p, q, n;
    const fx_file pf[] = {{osc52, "p\n"}, {c1_utf8, "p\n"}, {escs, "p\n"}};
    const fx_file qf[] = {{osc52, "q\n"}, {c1_utf8, "q\n"}, {escs, "q\n"}};
    fx_commit(&fx_base, pf, 3, "p", &p);
    fx_commit(&fx_base, qf, 3, "q", &q);
    const fx_file nf[] = {
        {"ci.sh",
         "printf 'x\\033]52;c;ZWNobyBvd25lZA==\\007y\\377\\302\\233\\033[2J\\r\\n'; exit 1\n"}};
    fx_commit(&fx_base, nf, 1, "noisy", &n);
    const char *sp[] = {"submit", "p", NULL}, *sq[] = {"submit", "q", NULL},
               *sn[] = {"submit", "noisy", NULL};
    assert_int_equal(cli(sp), 0);
    assert_int_equal(cli(sq), 0);
    assert_int_equal(cli(sn), 0);
    const char *run[] = {"run", "--once", NULL};
    assert_int_equal(cli(run), 1); /* a conflict and a rejection */
    gate_assert_text_safe("run's output", out_text, false);
    assert_non_null(strstr(out_text, "conflict: change 2 'q'"));
    assert_non_null(strstr(out_text, "a\\x1b]52;c;ZWNobyBvd25lZA==\\x07b.txt"));

    const char *st[] = {"status", NULL};
    assert_int_equal(cli(st), 0);
    gate_assert_text_safe("status", out_text, false);
    assert_non_null(strstr(out_text, "recent conflicts (1)"));
    assert_non_null(strstr(out_text, "c\\xff\\xfe\\u{9b}31md.txt"));

    const char *js[] = {"status", "--json", NULL};
    assert_int_equal(cli(js), 0);
    gate_assert_text_safe("status --json", out_text, false);
    gate_assert_json("status --json", out_text);

    const char *log_q[] = {"log", "2", NULL};
    assert_int_equal(cli(log_q), 0);
    gate_assert_text_safe("log of the conflict", out_text, false);
    const char *log_n[] = {"log", "3", NULL};
    assert_int_equal(cli(log_n), 0);
    gate_assert_text_safe("log of the noisy job", out_text, true);
    assert_non_null(
        strstr(out_text, "x\\x1b]52;c;ZWNobyBvd25lZA==\\x07y\\xff\\u{9b}\\x1b[2J\\x0d\n"));
    const char *raw[] = {"log", "3", "--raw", NULL};
    assert_int_equal(cli(raw), 0);
    assert_non_null(strstr(out_text, "x\x1b]52;c;ZWNobyBvd25lZA==\x07y\xff\xc2\x9b\x1b[2J\r\n"));

    const char *hostile[] = {"submit", "--", "x\x1b[2Jy\xff", NULL};
    assert_int_equal(cli(hostile), 1);
    gate_assert_text_safe("the error line", err_text, false);
    assert_non_null(strstr(err_text, "'x\\x1b[2Jy\\xff' is not a valid branch name"));
    const char *unknown[] = {"\x1b]52;c;eA==\x07", NULL};
    assert_int_equal(cli(unknown), 2);
    gate_assert_text_safe("the usage error", err_text, false);
    assert_non_null(strstr(err_text, "unknown command '\\x1b]52;c;eA==\\x07'"));
}

/* text.h escaped for a terminal through a memory stream: the result, NUL-terminated. */
static const char *term(const char *s, size_t len, unsigned flags)
{
    static char *text;
    size_t size = 0;
    free(text);
    FILE *f = open_memstream(&text, &size);
    assert_non_null(f);
    assert_int_equal(gate_text_fput(f, s, len, flags), len);
    assert_int_equal(fclose(f), 0);
    return text;
}

static const char *json(const char *s)
{
    static char buf[256];
    size_t n = gate_json_str(buf, sizeof(buf), 0, s);
    assert_true(n < sizeof(buf));
    return buf;
}

/* The escaping itself, one rule at a time (Unicode table 3-7 for what is valid UTF-8). */
static void test_text_escaping(void **state)
{
    (void)state;
    static const struct {
        const char *in, *terminal, *json;
    } cases[] = {
        {"plain ascii", "plain ascii", "\"plain ascii\""},
        {"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80",
         "\"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80\""},
        {"a\x1b[2Jb", "a\\x1b[2Jb", "\"a\\u001b[2Jb\""},
        {"bel\x07 del\x7f nl\n tab\t cr\r", "bel\\x07 del\\x7f nl\\x0a tab\\x09 cr\\x0d",
         "\"bel\\u0007 del\\u007f nl\\n tab\\t cr\\u000d\""},
        {"c1 \xc2\x9b"
         "31m \xc2\x85",
         "c1 \\u{9b}31m \\u{85}", "\"c1 \\u009b31m \\u0085\""},
        /* the escaping under test: NOLINTNEXTLINE(misc-misleading-bidirectional) */
        {"bidi \xe2\x80\xae"
         "cba \xe2\x81\xa6 \xd8\x9c",
         "bidi \\u{202e}cba \\u{2066} \\u{61c}", "\"bidi \\u202ecba \\u2066 \\u061c\""},
        {"ls \xe2\x80\xa8", "ls \\u{2028}", "\"ls \\u2028\""},
        {"bad \xff\xfe", "bad \\xff\\xfe", "\"bad \\ufffd\\ufffd\""},
        {"overlong \xc0\xaf \xe0\x80\xaf", "overlong \\xc0\\xaf \\xe0\\x80\\xaf",
         "\"overlong \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd\""},
        {"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80",
         "\"surrogate \\ufffd\\ufffd\\ufffd\""},
        {"past max \xf4\x90\x80\x80", "past max \\xf4\\x90\\x80\\x80",
         "\"past max \\ufffd\\ufffd\\ufffd\\ufffd\""},
        {"cut \xe6\x97", "cut \\xe6\\x97", "\"cut \\ufffd\\ufffd\""},
        {"quote \" back \\", "quote \" back \\", "\"quote \\\" back \\\\\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = term(cases[i].in, strlen(cases[i].in), GATE_TEXT_LINE);
        if (strcmp(t, cases[i].terminal) != 0)
            fail_msg("case %zu: terminal '%s', want '%s'", i, gate_text_shown(t),
                     gate_text_shown(cases[i].terminal));
        const char *j = json(cases[i].in);
        if (strcmp(j, cases[i].json) != 0)
            fail_msg("case %zu: JSON '%s', want '%s'", i, gate_text_shown(j),
                     gate_text_shown(cases[i].json));
        gate_assert_json("a JSON string", j);
    }
    /* a block keeps its lines and tabs, nothing else */
    assert_string_equal(term("a\tb\nc\rd", 7, GATE_TEXT_BLOCK), "a\tb\nc\\x0dd");
    /* a NUL inside a log is a control character like any */
    assert_string_equal(term("a\0b", 3, GATE_TEXT_BLOCK), "a\\x00b");
    /* a character cut by a read: left for the next piece with GATE_TEXT_MORE, not escaped */
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    assert_int_equal(gate_text_fput(f, "x\xe6\x97", 3, GATE_TEXT_MORE), 1);
    assert_int_equal(gate_text_fput(f, "\xe6\x97\xa5y", 4, GATE_TEXT_MORE), 4);
    assert_int_equal(gate_text_fput(f, "\xff", 1, GATE_TEXT_MORE), 1); /* never valid: now */
    assert_int_equal(fclose(f), 0);
    assert_string_equal(text, "x\xe6\x97\xa5y\\xff");
    free(text);
    /* a buffer too short takes whole escapes or nothing, and says what it needed */
    char small[12];
    size_t need = gate_json_str(small, sizeof(small), 0, "ab\x1b\x1b");
    assert_int_equal(need, strlen("\"ab\\u001b\\u001b\""));
    assert_string_equal(small, "\"ab\\u001b");
    need =
        gate_json_str(small, sizeof(small), 0, "\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5");
    assert_int_equal(need, 14);
    assert_string_equal(small, "\"\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5");
    /* printf for a terminal: the format's final newline is kept, the rest escaped */
    f = open_memstream(&text, &size);
    gate_text_printf(f, "name '%s'\n", "a\nb\x1b");
    assert_int_equal(fclose(f), 0);
    assert_string_equal(text, "name 'a\\x0ab\\x1b'\n");
    free(text);
}

/*
 * `keel-gate check`: every error of a configuration at once, in the order of
 * its lines, each naming the file and line; exit 1 with errors, 0 without; a
 * file, standard input, a branch (read from git), the target; no store made.
 */
static void test_check(void **state)
{
    (void)state;
    static const char bad[] = "[gate]\n"
                              "slot = 2\n"
                              "[config a]\n"
                              "build = cmake -B b && cmake --build b\n"
                              "[config b]\n"
                              "test = make check > log\n"
                              "required = maybe\n";
    char path[160];
    (void)snprintf(path, sizeof(path), "%s/edited.conf", fx_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(bad, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    cli_no_state = true;
    const char *file[] = {"check", path, NULL};
    assert_int_equal(cli(file), 1);
    char want[4][256];
    (void)snprintf(want[0], sizeof(want[0]), "%s:2: unknown key 'slot' in [gate]", path);
    (void)snprintf(want[1], sizeof(want[1]), "%s:4: 'build': '&&' at column 20", path);
    (void)snprintf(want[2], sizeof(want[2]), "%s:6: 'test': '>' at column 19", path);
    (void)snprintf(want[3], sizeof(want[3]), "%s:7: 'required' must be yes or no", path);
    const char *at = out_text;
    for (size_t i = 0; i < 4; i++) { /* all of them, in the order of their lines */
        const char *next = strstr(at, want[i]);
        if (next == NULL)
            fail_msg("'%s' not after the errors before it in: %s", want[i], out_text);
        at = next;
    }
    assert_non_null(strstr(out_text, ": 4 errors\n"));
    /* standard input (a pre-commit hook: git show :.keel/gate.conf | keel-gate check -) */
    int saved = dup(0);
    assert_true(saved >= 0);
    int in = open(path, O_RDONLY);
    assert_true(in >= 0);
    assert_int_equal(dup2(in, 0), 0);
    (void)close(in);
    clearerr(stdin);
    const char *dash[] = {"check", "-", NULL};
    int rc = cli(dash);
    assert_int_equal(dup2(saved, 0), 0);
    (void)close(saved);
    clearerr(stdin);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out_text, "<stdin>:4: 'build': '&&'"));
    assert_non_null(strstr(out_text, "<stdin>: 4 errors"));
    /* a branch's, read from git without a checkout */
    fx_branch("broken", ".keel/gate.conf", bad);
    const char *branch[] = {"check", "broken", NULL};
    assert_int_equal(cli(branch), 1);
    assert_non_null(strstr(out_text, "broken:.keel/gate.conf:7: 'required' must be yes or no"));
    /* the target's: fine */
    const char *target[] = {"check", NULL};
    assert_int_equal(cli(target), 0);
    assert_non_null(strstr(out_text, "main:.keel/gate.conf: ok: 1 configuration: unit\n"));
    /* --target too long to be a branch: refused whole (it was cut to 255 bytes and read) */
    static char longname[301];
    memset(longname, 'a', 300);
    fx_branch(longname + 45, ".keel/gate.conf", bad); /* its first 255 bytes: a branch */
    const char *too_long[] = {"--target", longname, "check", NULL};
    out_text[0] = '\0';
    assert_int_equal(cli(too_long), 1);
    assert_non_null(strstr(err_text, "is not a valid branch name: too long (300 bytes"));
    assert_null(strstr(out_text, "'required' must be yes or no")); /* the other branch not read */
    const char *neither[] = {"check", "nosuch", NULL};
    assert_int_equal(cli(neither), 1);
    assert_non_null(strstr(err_text, "'nosuch' is neither a file nor a branch"));
    const char *two[] = {"check", "a", "b", NULL};
    assert_int_equal(cli(two), 2);
    cli_no_state = false;
    struct stat st; /* no store was made */
    assert_int_equal(stat(fx_state, &st), -1);
}

/*
 * A branch the target already holds, submitted again (submit, try, a push to
 * refs/keel-gate/submit/): refused with "already in 'main' at <tip>" and an
 * event; nothing queued, built or landed as an empty merge.
 */
/*
 * A target that is no branch (--target mistyped) is refused by submit: it
 * queued the change for it, which no run could ever build or land ('run'
 * refuses such a target), and said only "queued change 1 ... for 'mian'".
 */
static void test_submit_to_no_target(void **state)
{
    (void)state;
    fx_branch("topic", "topic.txt", "t\n");
    const char *sub[] = {"--target", "mian", "submit", "topic", NULL};
    assert_int_equal(cli(sub), 1);
    assert_non_null(strstr(err_text, "the target 'mian' is not a branch: a change for it would "
                                     "wait in the queue for ever"));
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes", NULL), 0);
    const char *good[] = {"submit", "topic", NULL};
    assert_int_equal(cli(good), 0);
}

static void test_already_in_target(void **state)
{
    (void)state;
    fx_branch("good", "good.txt", "g\n");
    const char *sub[] = {"submit", "good", NULL};
    assert_int_equal(cli(sub), 0);
    const char *run[] = {"run", "--once", "--quiet", NULL};
    assert_int_equal(cli(run), 0);
    assert_int_equal(fx_times_landed("good"), 1);
    git_oid tip, good;
    fx_head("main", &tip);
    fx_head("good", &good);
    char want[128], tip_hex[GIT_OID_HEXSZ + 1], good_hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(tip_hex, sizeof(tip_hex), &tip);
    git_oid_tostr(good_hex, sizeof(good_hex), &good);
    (void)snprintf(want, sizeof(want), "'good' (%.12s) is already in 'main' at %.12s", good_hex,
                   tip_hex);
    assert_int_equal(cli(sub), 1);
    if (strstr(err_text, want) == NULL)
        fail_msg("'%s' not in: %s", want, err_text);
    const char *try_good[] = {"try", "good", NULL};
    assert_int_equal(cli(try_good), 1);
    assert_non_null(strstr(err_text, want));
    /* a branch at the target's tip itself */
    git_reference *r = NULL;
    assert_int_equal(git_reference_create(&r, fx_git, "refs/heads/same", &tip, 1, "test"), 0);
    git_reference_free(r);
    const char *same[] = {"submit", "same", NULL};
    assert_int_equal(cli(same), 1);
    assert_non_null(strstr(err_text, "'same'"));
    assert_non_null(strstr(err_text, "is already in 'main' at"));
    /* pushed: refused, its ref removed, nothing queued */
    assert_int_equal(
        git_reference_create(&r, fx_git, "refs/keel-gate/submit/good", &good, 1, "test"), 0);
    git_reference_free(r);
    assert_int_equal(cli(run), 0);
    assert_int_equal(git_reference_lookup(&r, fx_git, "refs/keel-gate/submit/good"), GIT_ENOTFOUND);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes", NULL), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'already-in' AND "
                                "detail LIKE '%already in ''main''%'",
                                NULL),
                     3);
    git_oid now; /* no empty merge landed */
    fx_head("main", &now);
    assert_true(git_oid_equal(&now, &tip));
    assert_int_equal(fx_times_landed("good"), 1);
}

/*
 * A configuration on the target that does not load stops run with what to do
 * (a fix cannot go through the gate); run --config FILE uses FILE's instead,
 * said and recorded, for the target and for the changes that leave the file
 * as it is, until the fix lands: then the target's own again.
 */
static void test_broken_target_config(void **state)
{
    (void)state;
    char good[2048], path[160];
    fx_read_at(&fx_base, ".keel/gate.conf", good, sizeof(good)); /* the fixture's */
    git_oid broken;
    const fx_file bad[] = {{".keel/gate.conf", "[gate]\nslot = 2\n[config unit]\ntest = true\n"}};
    fx_commit(&fx_base, bad, 1, "main", &broken); /* pushed around the gate */
    git_oid off_broken;
    const fx_file other[] = {{"other.txt", "o\n"}};
    fx_commit(&broken, other, 1, "other", &off_broken);
    const fx_file fixed[] = {{".keel/gate.conf", good}};
    git_oid fix;
    fx_commit(&broken, fixed, 1, "fix", &fix);
    const char *sub_other[] = {"submit", "other", NULL};
    assert_int_equal(cli(sub_other), 0);
    const char *sub_fix[] = {"submit", "fix", NULL};
    assert_int_equal(cli(sub_fix), 0);
    const char *run[] = {"run", "--once", NULL};
    assert_int_equal(cli(run), 1);
    assert_non_null(strstr(err_text, "the configuration of 'main' at"));
    assert_non_null(strstr(err_text, "a fix cannot go through the gate; push the fix to 'main' "
                                     "directly"));
    assert_non_null(strstr(err_text, "keel-gate run --config FILE"));
    assert_non_null(strstr(err_text, ":2: unknown key 'slot' in [gate]"));
    assert_int_equal(fx_times_landed("fix"), 0);
    /* --config: FILE's, said loudly and recorded, until the fix lands */
    (void)snprintf(path, sizeof(path), "%s/fallback.conf", fx_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(good, f) >= 0);
    assert_int_equal(fclose(f), 0);
    const char *run_with[] = {"run", "--once", "--config", path, NULL};
    assert_int_equal(cli(run_with), 0);
    char want[256];
    (void)snprintf(want, sizeof(want), "warning: using '%s' instead (--config)", path);
    if (strstr(out_text, want) == NULL)
        fail_msg("'%s' not in: %s", want, out_text);
    assert_non_null(strstr(out_text, "warning: the configuration of 'main' at"));
    assert_non_null(strstr(out_text, "--config '"));
    assert_non_null(strstr(out_text, "is no longer used"));
    assert_int_equal(fx_times_landed("other"), 1); /* built with FILE's */
    assert_int_equal(fx_times_landed("fix"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'config-override' AND "
                                "detail LIKE '%fallback.conf%'",
                                NULL),
                     1);
    fx_assert_tip_tested();
    /* a FILE that does not load itself is refused at once */
    const char *bad_file[] = {"run", "--once", "--config", "/nonexistent/x.conf", NULL};
    assert_int_equal(cli(bad_file), 1);
    assert_non_null(strstr(err_text, "the configuration given with --config "
                                     "'/nonexistent/x.conf' does not load"));
}

/* The text from `from` on (which must be there), for asserts about it alone. */
static const char *section_of(const char *text, const char *from)
{
    static char part[16384];
    const char *p = strstr(text, from);
    if (p == NULL)
        fail_msg("no '%s' in:\n%s", from, text);
    (void)snprintf(part, sizeof(part), "%s", p);
    return part;
}

static void assert_lacks(const char *text, const char *what)
{
    if (strstr(text, what) != NULL)
        fail_msg("'%s' should not be in:\n%s", what, text);
}

/* A branch whose main has a configuration of its own, guarding `target`. */
static void target_branch(const char *target)
{
    char conf[256];
    (void)snprintf(conf, sizeof(conf), "[gate]\ntarget = %s\n[config unit]\ntest = sh ci.sh\n",
                   target);
    const fx_file f[] = {{".keel/gate.conf", conf}};
    git_oid oid;
    fx_commit(&fx_base, f, 1, target, &oid);
}

/*
 * log and cancel take a branch as well as an id: its active change, else its
 * newest; a branch with changes only for other targets, several of them, is
 * an error that lists the ids.
 */
static void test_log_cancel_by_branch(void **state)
{
    (void)state;
    fx_branch("topic", "topic.txt", "t\n");
    const char *sub[] = {"submit", "topic", NULL};
    assert_int_equal(cli(sub), 0);
    const char *cancel[] = {"cancel", "topic", NULL};
    assert_int_equal(cli(cancel), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = 'cancelled'", NULL), 1);
    assert_int_equal(cli(sub), 0); /* change 2, active: it is the one the branch names now */
    const char *log[] = {"log", "topic", NULL};
    assert_int_equal(cli(log), 0);
    assert_has(out_text, "change 2 'topic'");
    assert_has(out_text, ": queued");
    assert_int_equal(cli(cancel), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = 'cancelled'", NULL), 2);
    assert_int_equal(cli(log), 0); /* none active: the newest */
    assert_has(out_text, "change 2 'topic'");
    assert_has(out_text, ": cancelled");
    assert_int_equal(cli(cancel), 1);
    assert_has(err_text, "already cancelled");

    const char *none[] = {"log", "nosuch", NULL};
    assert_int_equal(cli(none), 1);
    assert_has(err_text, "no change of branch 'nosuch'");
    const char *bad[] = {"log", "x;y", NULL};
    assert_int_equal(cli(bad), 2);
    assert_has(err_text, "'x;y' is neither a change id");
    const char *id[] = {"log", "2", NULL};
    assert_int_equal(cli(id), 0);
    assert_has(out_text, "change 2 'topic'");

    /* changes of 'other' for two targets, none for main: which one is meant? */
    fx_branch("other", "other.txt", "o\n");
    target_branch("dev");
    target_branch("rel");
    const char *dev[] = {"--target", "dev", "submit", "other", NULL};
    const char *rel[] = {"--target", "rel", "submit", "other", NULL};
    assert_int_equal(cli(dev), 0);
    assert_int_equal(cli(rel), 0);
    const char *which[] = {"log", "other", NULL};
    assert_int_equal(cli(which), 1);
    assert_has(err_text, "branch 'other' has no change for 'main'");
    assert_has(err_text, "change 4 for 'rel' (queued)");
    assert_has(err_text, "change 3 for 'dev' (queued)");
    const char *cancel_which[] = {"cancel", "other", NULL};
    assert_int_equal(cli(cancel_which), 1);
    assert_has(err_text, "give the change's id, or --target");
    const char *on_dev[] = {"--target", "dev", "log", "other", NULL};
    assert_int_equal(cli(on_dev), 0);
    assert_has(out_text, "change 3 'other'");
    const char *cancel_dev[] = {"--target", "dev", "cancel", "other", NULL};
    assert_int_equal(cli(cancel_dev), 0);
    /* one active change left, for 'rel': that is the one */
    assert_int_equal(cli(which), 0);
    assert_has(out_text, "change 4 'other'");
}

/*
 * log: a summary of every build (configuration, attempt, result, duration,
 * verdict on the tree), then the end of the log of the job that decided a
 * rejection; --full every log; --json the summary as data.
 */
static void test_log_summary(void **state)
{
    (void)state;
    fx_branch("flaky", "ci.sh",
              "if [ -e \"$MARKER.flaked\" ]; then exit 0; fi\n"
              "touch \"$MARKER.flaked\"; echo 'one-time trouble'; exit 1\n");
    fx_branch("noisy", "ci.sh",
              "i=0\nwhile [ $i -lt 30 ]; do i=$((i+1)); echo \"line $i of the test\"; done\n"
              "exit 3\n");
    const char *s1[] = {"submit", "flaky", NULL}, *s2[] = {"submit", "noisy", NULL};
    assert_int_equal(cli(s2), 0); /* first: both change ci.sh, flaky merges once it is out */
    assert_int_equal(cli(s1), 0);
    const char *run[] = {"run", "--once", NULL};
    assert_int_equal(cli(run), 1);
    /* every job's duration is recorded (store version 5) */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE elapsed_ms < 0", NULL), 0);
    if (fx_sql_int("SELECT count(*) FROM jobs", NULL) < 4)
        fail_msg("fewer jobs than two runs of each change:\n%s", out_text);

    const char *lf[] = {"log", "flaky", NULL};
    assert_int_equal(cli(lf), 0);
    assert_has(out_text, "change 2 'flaky'");
    assert_has(out_text, ": landed");
    assert_has(out_text, "builds (2 jobs, oldest first):");
    assert_has(out_text, "candidate 2, change 2 alone:");
    assert_has(out_text, "attempt 1  failed (exit 1)");
    assert_has(out_text, "attempt 2  passed");
    assert_has(out_text, " s  flaky: failed 1 of 2 runs");
    assert_lacks(out_text, "decisive failure"); /* it landed */
    assert_lacks(out_text, "one-time trouble"); /* the logs are for --full */

    const char *ln[] = {"log", "noisy", NULL};
    assert_int_equal(cli(ln), 0);
    assert_has(out_text, ": rejected: configuration 'unit' failed (exit 3");
    assert_has(out_text, "failed 2 of 2 runs");
    const char *tail = section_of(out_text, "decisive failure: job ");
    assert_has(tail, "'unit' attempt 2 of candidate 1, failed (exit 3); its last lines (log ");
    assert_has(tail, "line 30 of the test\n");
    assert_has(tail, "line 13 of the test\n"); /* 20 lines: the gate's own two last */
    assert_has(tail, "keel-gate: failed (exit 3) after ");
    assert_lacks(tail, "line 12 of the test\n");
    assert_has(out_text, "('keel-gate log --full 1' prints every job's whole log)");

    const char *full[] = {"log", "--full", "1", NULL};
    assert_int_equal(cli(full), 0);
    assert_has(out_text, "builds (2 jobs");
    assert_has(out_text, "==== job ");
    assert_has(out_text, "line 1 of the test\n");
    assert_has(out_text, "keel-gate: $ sh ci.sh");
    assert_lacks(out_text, "decisive failure");

    const char *js[] = {"log", "--json", "flaky", NULL};
    assert_int_equal(cli(js), 0);
    gate_assert_json("log --json", out_text);
    assert_has(out_text, "\"change\":{\"id\":2,\"branch\":\"flaky\"");
    assert_has(out_text, "\"config\":\"unit\",\"attempt\":2,\"result\":\"passed\"");
    assert_has(out_text, "\"verdict\":\"flaky\",\"runs\":2,\"failures\":1");
    assert_has(out_text, "\"decisive\":null");
    const char *jn[] = {"log", "--json", "1", NULL};
    assert_int_equal(cli(jn), 0);
    gate_assert_json("log --json", out_text);
    assert_has(out_text, "\"decisive\":{\"job\":");
    assert_has(out_text, "line 30 of the test\\n");
    const char *both[] = {"log", "--json", "--full", "1", NULL};
    assert_int_equal(cli(both), 2);
}

/*
 * status: whether a gate runs the queue and for how long, how many changes
 * are decided out of how many, each running job with its configuration and
 * elapsed time; the memory table only with --memory.
 */
static void test_status_progress(void **state)
{
    (void)state;
    fx_branch("good", "good.txt", "g\n");
    fx_slow_branch("slow", false);
    const char *s1[] = {"submit", "good", NULL}, *s2[] = {"submit", "slow", NULL};
    assert_int_equal(cli(s1), 0);
    assert_int_equal(cli(s2), 0);
    const char *st[] = {"status", NULL};
    assert_int_equal(cli(st), 0);
    assert_has(out_text, "gate: not running ('keel-gate run' runs the queue)");
    assert_has(out_text, "changes: 0 of 2 decided (0 landed, 0 rejected, 0 conflicts, 0 "
                         "cancelled); 2 queued, 0 testing");

    pid_t daemon = fx_start_daemon();
    (void)fx_wait_for_job(daemon);
    sleep(1); /* a second of the job's and of the run's */
    assert_int_equal(cli(st), 0);
    assert_has(out_text, "gate: running for ");
    assert_has(out_text, "(pid ");
    assert_has(out_text, "changes: 1 of 2 decided since the run started (1 landed, 0 rejected");
    assert_has(out_text, "running jobs (1):\n  job ");
    assert_has(out_text, ": 'unit' for ");
    assert_has(out_text, ", attempt 1, candidate 2 (change 2)\n");
    const char *js[] = {"status", "--json", NULL};
    assert_int_equal(cli(js), 0);
    gate_assert_json("status --json", out_text);
    assert_has(out_text, "\"gate\":{\"running\":true,\"pid\":");
    assert_has(out_text, "\"changes\":{\"since\":");
    assert_has(out_text, "\"decided\":1,\"total\":2,\"queued\":0,\"testing\":1,\"landed\":1");
    assert_has(out_text, "\"config\":\"unit\",\"attempt\":1,\"started_at\":");
    assert_has(out_text, ",\"elapsed_s\":");
    assert_has(out_text, ",\"changes\":[2]}]");

    assert_int_equal(kill(daemon, SIGTERM), 0);
    (void)fx_wait_exit(daemon, 30000);
    assert_int_equal(cli(st), 0);
    assert_has(out_text, "gate: not running");
    assert_has(out_text, "changes: 1 of 2 decided (1 landed");
    assert_lacks(out_text, "memory of the run");
    const char *mem[] = {"status", "--memory", NULL};
    assert_int_equal(cli(mem), 0);
    assert_has(out_text, "memory of the run (pid ");
    assert_has(out_text, "gate_store ");
}

/*
 * The manual page and bash completion, as keel-gate writes them from its
 * tables (--help-man, --completion: what the build installs), hold every
 * command and option --help lists; man renders the page without a warning;
 * bash completes every command, each option, and a branch for log.
 */
static void test_manual_and_completion(void **state)
{
    (void)state;
    fx_branch("topic", "topic.txt", "t\n");
    const char *help[] = {"--help", NULL};
    assert_int_equal(cli(help), 0);
    static char names[64][32];
    const char *cmds[32], *opts[32];
    size_t ncmds = 0, nopts = 0, k = 0;
    const char *at = strstr(out_text, "commands:\n");
    assert_non_null(at);
    for (const char *line = strchr(at, '\n') + 1; strncmp(line, "  ", 2) == 0 && k < 64;
         line = strchr(line, '\n') + 1, k++) {
        assert_int_equal(sscanf(line, " %31s", names[k]), 1);
        cmds[ncmds++] = names[k];
    }
    at = strstr(out_text, "options:\n");
    assert_non_null(at);
    for (const char *line = strchr(at, '\n') + 1; strncmp(line, "  --", 4) == 0 && k < 64;
         line = strchr(line, '\n') + 1, k++) {
        assert_int_equal(sscanf(line + 4, "%31s", names[k]), 1);
        opts[nopts++] = names[k];
    }
    assert_true(ncmds >= 6 && nopts >= 11);
    const char *man[] = {"--help-man", NULL};
    assert_int_equal(cli(man), 0);
    static char page[sizeof(out_text)];
    (void)snprintf(page, sizeof(page), "%s", out_text);
    const char *bash[] = {"--completion", NULL};
    assert_int_equal(cli(bash), 0);
    clidoc_check(fx_dir, "keel-gate", page, out_text, cmds, ncmds, opts, nopts, fx_repo, "log",
                 "topic");
}

/* The same commands on a repository reached by URL, its mirror given. */
static void test_remote_repository(void **state)
{
    (void)state;
    fx_where = fx_url;
    fx_branch("good", "good.txt", "g\n");
    fx_branch("bad", "bad", "b\n");
    const char *help[] = {"--help", NULL};
    assert_int_equal(cli(help), 0);
    assert_non_null(strstr(out_text, "--mirror DIR"));
    const char *try_good[] = {"try", "good", NULL};
    assert_int_equal(cli(try_good), 0);
    const char *sub_good[] = {"submit", "good", NULL};
    assert_int_equal(cli(sub_good), 0);
    const char *sub_bad[] = {"submit", "bad", NULL};
    assert_int_equal(cli(sub_bad), 0);
    const char *missing[] = {"submit", "gone", NULL};
    assert_int_equal(cli(missing), 1);
    assert_non_null(strstr(err_text, "no branch 'gone' in 'file://"));
    const char *run[] = {"run", "--once", "--quiet", NULL};
    assert_int_equal(cli(run), 1);                /* something was rejected */
    assert_int_equal(fx_times_landed("good"), 1); /* on the remote */
    assert_int_equal(fx_times_landed("bad"), 0);
    fx_assert_tip_tested();
    const char *st[] = {"status", "--json", NULL};
    assert_int_equal(cli(st), 0);
    git_oid tip;
    char hex[GIT_OID_HEXSZ + 1], want[80];
    fx_head("main", &tip);
    git_oid_tostr(hex, sizeof(hex), &tip);
    (void)snprintf(want, sizeof(want), "\"tip\":\"%s\"", hex);
    assert_non_null(strstr(out_text, want)); /* the remote's tip */
    /* another remote with the same mirror: refused, naming both */
    fx_where = "file:///nowhere/else.git"; /* --repo once: given twice is a usage error */
    const char *other[] = {"status", NULL};
    assert_int_equal(cli(other), 1);
    fx_where = fx_url;
    assert_non_null(strstr(err_text, "is the mirror of 'file://"));
    assert_non_null(strstr(err_text, "not of 'file:///nowhere/else.git'"));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_usage_exit_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_option_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_number_options_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_argument_reason_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_needs_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_columns_aligned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_culprit_empty_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_and_check_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_aligned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_in_docs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_branch_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_cancel_status_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_try, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_already_in_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_to_no_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_target_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_cancel_by_branch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_summary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manual_and_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_repository, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_text_escaped, setup, teardown),
        cmocka_unit_test(test_text_escaping),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
