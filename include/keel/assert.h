/*
 * keel/assert.h - assertions that state invariants and vanish in release.
 *
 *   KEEL_ASSERT(expr)              devel only; in release no code is left and
 *                                  expr is not evaluated
 *   KEEL_ASSERTF(expr, fmt, ...)   the same with a formatted message
 *   KEEL_ASSERT_EXPENSIVE(expr)    devel only, and only evaluated when the
 *                                  option assert.expensive=1 is set (O(n) walks,
 *                                  whole-structure consistency checks)
 *   KEEL_VERIFY(expr)              always on, release too (cheap checks that
 *   KEEL_VERIFYF(expr, fmt, ...)   guard against corruption)
 *   KEEL_NOT_REACHED()             always on: a path that must never run
 *
 * A failure reports through the report channel (kind "assert"): the
 * expression, file:line, function, thread and a symbolized backtrace, then
 * aborts.  A report handler (keel_report_set_handler) sees it first and may
 * longjmp out of it, which is how tests catch failing assertions.
 *
 * State the invariants of a function at its top:
 *
 *   void queue_push(queue *q, item *it) {
 *       KEEL_ASSERT(q != NULL && it != NULL);
 *       KEEL_ASSERT(keel_mutex_held(&q->lock));
 *       ...
 */
#ifndef KEEL_ASSERT_H
#define KEEL_ASSERT_H

#include "keel/common.h"

KEEL_EXTERN_C_BEGIN

KEEL_API KEEL_NORETURN KEEL_COLD void keel__assert_fail(const char *expr, const char *file,
                                                        int line, const char *func, const char *fmt,
                                                        ...) KEEL_PRINTF(5, 6);
KEEL_API extern int keel__assert_expensive_on;

#define KEEL_VERIFY(expr) \
    (KEEL_LIKELY(expr) ? (void)0 : keel__assert_fail(#expr, __FILE__, __LINE__, __func__, NULL))
#define KEEL_VERIFYF(expr, ...)  \
    (KEEL_LIKELY(expr) ? (void)0 \
                       : keel__assert_fail(#expr, __FILE__, __LINE__, __func__, __VA_ARGS__))
#define KEEL_NOT_REACHED() keel__assert_fail("not reached", __FILE__, __LINE__, __func__, NULL)

#if KEEL_DEVEL
#define KEEL_ASSERT(expr)       KEEL_VERIFY(expr)
#define KEEL_ASSERTF(expr, ...) KEEL_VERIFYF(expr, __VA_ARGS__)
#define KEEL_ASSERT_EXPENSIVE(expr)                                                  \
    ((KEEL_LIKELY(!__atomic_load_n(&keel__assert_expensive_on, __ATOMIC_RELAXED)) || \
      KEEL_LIKELY(expr))                                                             \
         ? (void)0                                                                   \
         : keel__assert_fail(#expr, __FILE__, __LINE__, __func__, "expensive check"))
#else
/* Not evaluated (sizeof), so no code and no side effects, yet still type-checked. */
#define KEEL_ASSERT(expr)           ((void)sizeof((expr) ? 1 : 0))
#define KEEL_ASSERTF(expr, ...)     ((void)sizeof((expr) ? 1 : 0))
#define KEEL_ASSERT_EXPENSIVE(expr) ((void)sizeof((expr) ? 1 : 0))
#endif

KEEL_EXTERN_C_END

#endif /* KEEL_ASSERT_H */
