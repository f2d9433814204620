/*
 * assert.c - what a failed KEEL_ASSERT / KEEL_VERIFY / KEEL_NOT_REACHED does.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int keel__assert_expensive_on;

bool keel__user_frame_on_stack(void)
{
    void *pcs[32];
    int n = keel_backtrace(pcs, (int)KEEL__ARRAY_LEN(pcs), 1);
    for (int i = 0; i < n; i++)
        if (!keel__frame_in_keel(pcs[i]) && !keel__frame_in_libc(pcs[i]))
            return true;
    return false;
}

/*
 * An assertion in keel's own code that a program's call reached (a bad argument, a leave without
 * an enter) is reported at the program's call: the report's site is its first frame outside keel
 * and libc, and keel's own place is the field keel_site.  On a thread of keel's own (no such
 * frame) the site stays keel's.
 */
void keel__assert_fail(const char *expr, const char *file, int line, const char *func,
                       const char *fmt, ...)
{
    char keel_site[320] = "";
    if (file != NULL && keel__source_is_keel(file) && keel__user_frame_on_stack()) {
        const char *base = strrchr(file, '/');
        (void)snprintf(keel_site, sizeof(keel_site), "src/%s:%d in %s",
                       base != NULL ? base + 1 : file, line, func != NULL ? func : "?");
        file = NULL; /* the program's first frame (keel_report_begin) */
        line = 0;
        func = NULL;
    }
    char why[512] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
    }
    bool unreachable = expr != NULL && strcmp(expr, "not reached") == 0;
    keel_report *r = keel_report_begin(
        KEEL_REPORT_ASSERT, file, line, func, "%s%s%s%s",
        unreachable ? "reached code marked not reached" : "assertion failed: ",
        unreachable ? "" : (expr != NULL ? expr : "?"), why[0] != '\0' ? ": " : "", why);
    keel_report_add_str(r, "expr", expr != NULL ? expr : "");
    if (keel_site[0] != '\0')
        keel_report_add_str(r, "keel_site", keel_site);
    if (why[0] != '\0')
        keel_report_add_str(r, "why", why);
    (void)keel_report_emit(r);
    /* An assertion never returns: whatever the policy, the invariant is broken. */
    abort();
}
