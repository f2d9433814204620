/*
 * keel/backtrace.h - capture and symbolize call stacks (libdw underneath).
 *
 * Reports carry backtraces by themselves; these calls are for programs that
 * want one of their own (a diagnostic dump, a "who created this" record).
 */
#ifndef KEEL_BACKTRACE_H
#define KEEL_BACKTRACE_H

#include <stdio.h>

#include "keel/common.h"

KEEL_EXTERN_C_BEGIN

/* One symbolized frame.  Strings are truncated to fit; empty when unknown. */
typedef struct keel_frame {
    void *pc;
    unsigned long offset; /* pc - start of function */
    int line;
    char func[128];
    char file[256];
    char object[128]; /* shared object or executable, base name */
} keel_frame;

/*
 * Capture up to `max` return addresses of the calling thread, skipping the
 * `skip` innermost frames (0: the caller of keel_backtrace is first).
 * Returns how many were stored.  Does not allocate after the first call.
 */
KEEL_API int keel_backtrace(void **pcs, int max, int skip);

/* Symbolize one address: function, source file and line.  False when nothing is known. */
KEEL_API bool keel_backtrace_symbolize(void *pc, keel_frame *out);

/* Print frames as "#i pc func+off (file:line) [object]", one a line. */
KEEL_API void keel_backtrace_print(FILE *f, void *const *pcs, int n);

KEEL_EXTERN_C_END

#endif /* KEEL_BACKTRACE_H */
