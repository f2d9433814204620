/*
 * errors_demo.c - a tour of keel's foundation, run by `make demo`.
 *
 * Built twice: as a devel build (-DKEEL_DEVEL=1, libkeel-devel) and as a
 * release build (-DKEEL_DEVEL=0, libkeel).  It shows
 *   1. a rich error made at the bottom of a call chain, wrapped with context
 *      at each layer, then printed whole (text and JSON);
 *   2. a user code space next to keel's own;
 *   3. an assertion stating a function's invariant: in the devel build it
 *      fails and reports (caught here by a report handler so the demo can
 *      explain it); in the release build it is gone — not even evaluated.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/keel.h"

/* A code space of the demo's own, next to keel's. */
#define STORE_CODES(X)                     \
    X(CORRUPT, "stored record is corrupt") \
    X(QUOTA, "store is over its quota")
#define STORE_ENUM(name, msg) STORE_E_##name,
enum store_code { STORE_E_OK = 0, STORE_CODES(STORE_ENUM) };
KEEL_CODESPACE_DEFINE(store_codes, "store", STORE_CODES)

/* Bottom layer: a system call fails; the error carries errno and its name. */
static keel_status read_record(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return keel_status_with_str(KEEL_ERR_SYS(errno, "cannot open record '%s'", path), "path",
                                    path);
    ssize_t n = read(fd, buf, size);
    (void)close(fd);
    if (n < 0)
        return KEEL_ERR_SYS(errno, "cannot read record '%s'", path);
    return KEEL_OK;
}

/* Middle layer: adds its own code and what it was doing. */
static keel_status load_account(int account_id)
{
    char path[64];
    char buf[128];
    (void)snprintf(path, sizeof(path), "/nonexistent/accounts/%d.rec", account_id);
    keel_status s = read_record(path, buf, sizeof(buf));
    if (!keel_ok(s))
        return keel_status_with_int(KEEL_WRAP_IN(s, &store_codes, STORE_E_CORRUPT,
                                                 "account %d cannot be loaded", account_id),
                                    "account", account_id);
    return KEEL_OK;
}

/* Top layer: context only (keeps the code of what it wraps). */
static keel_status open_session(int account_id)
{
    keel_status s = load_account(account_id);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "opening a session for account %d", account_id);
    return KEEL_OK;
}

/* A function that states its invariant at the top. */
static int side_effects;
static int checked_balance(int balance)
{
    KEEL_ASSERTF(++side_effects > 0 && balance >= 0, "balance %d must not be negative", balance);
    return balance;
}

#if KEEL_DEVEL
static jmp_buf caught;
static bool catch_assert(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    if (info->kind != KEEL_REPORT_ASSERT)
        return false;
    printf("    (the report handler saw kind '%s' at %s:%d in %s; in a real program the policy\n"
           "     'abort' would stop here — the demo jumps back instead)\n",
           info->kind_name, info->file, info->line, info->func);
    longjmp(caught, 1);
}
#endif

int main(void)
{
    keel_status s = keel_init();
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        return 2;
    }
    s = keel_codespace_register(&store_codes);
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        return 2;
    }

    printf("== keel %s: errors demo ==\n\n", keel_version_string());
    printf("1. an error made three layers down, wrapped at each layer, printed whole:\n\n");
    s = open_session(42);
    char text[2048];
    (void)keel_status_format(s, text, sizeof(text));
    printf("%s\n\n", text);
    printf("   is it a store.CORRUPT error? %s; was a system call behind it (keel.SYS)? %s\n",
           keel_status_is(s, &store_codes, STORE_E_CORRUPT) ? "yes" : "no",
           KEEL_HAS(s, KEEL_E_SYS) ? "yes" : "no");
    const char *errno_name = keel_status_get_str(s, "errno_name");
    printf("   the errno detail from the bottom layer: %s\n\n",
           errno_name != NULL ? errno_name : "?");
    printf("   the same as JSON:\n");
    (void)keel_status_format_json(s, text, sizeof(text));
    printf("   %s\n\n", text);
    keel_status_free(s);

    printf("2. an assertion stating an invariant, checked_balance(-5):\n\n");
#if KEEL_DEVEL
    printf("   devel build: KEEL_ASSERT is compiled in.  In a child process, with the default\n"
           "   policy for assertions (abort), the report below is what a developer sees:\n\n");
    (void)fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        (void)checked_balance(-5);
        _exit(0); /* not reached: the assertion aborts */
    }
    int wstatus = 0;
    if (child < 0 || waitpid(child, &wstatus, 0) != child) {
        perror("fork");
        return 1;
    }
    printf("\n   the child %s\n\n", WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGABRT
                                        ? "was stopped by SIGABRT, as it should"
                                        : "was NOT stopped: demo failed");
    if (!WIFSIGNALED(wstatus))
        return 1;
    printf("   a test (or this demo) can catch the same failure with a report handler:\n\n");
    (void)fflush(stdout);
    keel_report_handler old = keel_report_set_handler(catch_assert, NULL);
    if (setjmp(caught) == 0) {
        (void)checked_balance(-5);
        printf("   NOT REACHED\n");
        return 1;
    }
    (void)keel_report_set_handler(old, NULL);
    printf("\n   side effects inside the assertion ran %d time(s)\n", side_effects);
#else
    printf(
        "   release build: KEEL_ASSERT is compiled out; the expression is not even evaluated:\n");
    int b = checked_balance(-5);
    printf("   checked_balance returned %d; side effects inside the assertion ran %d time(s)\n", b,
           side_effects);
#endif
#if KEEL_DEVEL
    printf("\n3. an error returned and then dropped without a look: the devel library reports it\n"
           "   at exit (kind lost-error) with the line that created it:\n");
    keel_status forgotten = open_session(7);
    (void)forgotten.err; /* dropped: never examined, never freed */
#else
    printf("\n3. (release build: lost errors are not tracked)\n");
#endif
    printf("\n4. reports this run: assert=%llu lost-error=%llu\n",
           keel_report_count(KEEL_REPORT_ASSERT), keel_report_count(KEEL_REPORT_LOST_ERROR));
    (void)fflush(stdout); /* before the exit-time reports on stderr */
    return 0;
}
