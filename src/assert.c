/*
 * assert.c - what a failed KEEL_ASSERT / KEEL_VERIFY / KEEL_NOT_REACHED does.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int keel__assert_expensive_on;

void keel__assert_fail(const char *expr, const char *file, int line, const char *func,
                       const char *fmt, ...)
{
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
    if (why[0] != '\0')
        keel_report_add_str(r, "why", why);
    (void)keel_report_emit(r);
    /* An assertion never returns: whatever the policy, the invariant is broken. */
    abort();
}
