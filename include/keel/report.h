/*
 * keel/report.h - the one report channel.
 *
 * Every violation that a keel check finds (a failed assertion, a lost error,
 * a lock-order inversion, a heap overflow, a stuck thread, ...) goes through
 * here.  A report is
 *
 *   - printed on stderr, starting with "keel: <kind>: <message>", followed by
 *     the site, the thread, the module and a symbolized backtrace;
 *   - when KEEL_REPORT=<path> (or the option report.file=<path>) is set,
 *     appended to that file as one JSON object per line: kind, message, site,
 *     thread, module, backtrace frames and details;
 *   - then acted on by the policy of its kind: abort, report (go on), or count
 *     (go on silently; only the counter moves).  KEEL_OPTIONS sets policies:
 *     report.lock-order=abort;report.stress=count
 *
 * A program can report its own violations (kind KEEL_REPORT_USER) and install
 * a handler that sees every report before it is printed (tests use it to catch
 * assertion failures).
 *
 * Reporting never calls malloc: it works when memory is exhausted, and a
 * report raised while a report is being made is printed plainly, never lost.
 */
#ifndef KEEL_REPORT_H
#define KEEL_REPORT_H

#include "keel/common.h"

KEEL_EXTERN_C_BEGIN

/* X(ENUM, "name", default policy, what it means) */
#define KEEL_REPORT_KINDS(X)                                                                \
    X(ASSERT, "assert", ABORT, "an assertion failed")                                       \
    X(LOST_ERROR, "lost-error", REPORT, "an error was created and never examined or freed") \
    X(LEAKED_ERROR, "leaked-error", COUNT, "an error was examined but never freed")         \
    X(IGNORED_ERROR, "ignored-error", COUNT, "an error was dropped on purpose")             \
    X(OPTIONS, "options", REPORT, "KEEL_OPTIONS or an option value is malformed")           \
    X(LOCK_ORDER, "lock-order", REPORT, "locks taken against their rank or in a cycle")     \
    X(LOCK_MISUSE, "lock-misuse", REPORT, "a lock used wrongly (not held, double unlock)")  \
    X(LOCK_BLOCKING, "lock-blocking", REPORT, "blocking while holding a spinlock")          \
    X(LIMIT, "limit", REPORT, "a preallocated checking table is full")                      \
    X(STRESS, "stress", COUNT, "a stress option fired")                                     \
    X(HEAP, "heap", ABORT, "heap corruption or misuse")                                     \
    X(LEAK, "leak", REPORT, "memory still allocated when its module stopped")               \
    X(QUOTA, "quota", REPORT, "a module went over its memory quota")                        \
    X(MODULE, "module", REPORT, "a module failed to start or its self test failed")         \
    X(WATCHDOG, "watchdog", REPORT, "a section or thread ran past its budget")              \
    X(USER, "user", REPORT, "reported by the program itself")

#define KEEL__REPORT_ENUM(e, name, policy, what) KEEL_REPORT_##e,
typedef enum keel_report_kind {
    KEEL_REPORT_KINDS(KEEL__REPORT_ENUM) KEEL_REPORT_KIND_COUNT
} keel_report_kind;
#undef KEEL__REPORT_ENUM

typedef enum keel_policy {
    KEEL_POLICY_ABORT,  /* print, then abort() */
    KEEL_POLICY_REPORT, /* print and go on */
    KEEL_POLICY_COUNT   /* only count */
} keel_policy;

/* "lock-order" for KEEL_REPORT_LOCK_ORDER; "?" when out of range. */
KEEL_API const char *keel_report_kind_name(keel_report_kind kind);
/*
 * Current policy of a kind, and set it (also settable through KEEL_OPTIONS).  A kind or a
 * policy out of range is an assertion in devel builds and changes nothing in release.
 */
KEEL_API keel_policy keel_report_policy(keel_report_kind kind);
KEEL_API void keel_report_set_policy(keel_report_kind kind, keel_policy policy);
/* How many reports of a kind were made in this process (whatever the policy; a suppressed
 * report is not counted, docs/reports.md). */
KEEL_API unsigned long long keel_report_count(keel_report_kind kind);

/* ---- making a report ----------------------------------------------------- */

/*
 * A report under construction.  It lives in thread-local storage: begin,
 * add details, emit, on one thread, with no allocation.
 */
typedef struct keel_report keel_report;

/*
 * file, line, func: the site, normally __FILE__, __LINE__, __func__.  A NULL file takes the
 * site from the backtrace instead: its first frame outside keel and libc (docs/reports.md).
 */
KEEL_API keel_report *keel_report_begin(keel_report_kind kind, const char *file, int line,
                                        const char *func, const char *fmt, ...) KEEL_PRINTF(5, 6);
KEEL_API void keel_report_add_int(keel_report *r, const char *key, long long v);
KEEL_API void keel_report_add_uint(keel_report *r, const char *key, unsigned long long v);
KEEL_API void keel_report_add_str(keel_report *r, const char *key, const char *v);
KEEL_API void keel_report_add_ptr(keel_report *r, const char *key, const void *v);
/* Free-form extra lines printed after the message (a lock cycle, a chain of sites). */
KEEL_API void keel_report_add_text(keel_report *r, const char *fmt, ...) KEEL_PRINTF(2, 3);
/* Skip the backtrace of the reporting thread (when the report is about another thread). */
KEEL_API void keel_report_no_backtrace(keel_report *r);
/* Use these program counters as the backtrace (one captured elsewhere; keel's own leading
 * frames are dropped from it as from any other). */
KEEL_API void keel_report_set_backtrace(keel_report *r, void *const *pcs, int n);
/* Print / log / act.  Returns the policy applied (never returns under ABORT). */
KEEL_API keel_policy keel_report_emit(keel_report *r);

/* One-shot form for a report without details. */
#define KEEL_REPORT(kind, ...) \
    keel_report_emit(keel_report_begin((kind), __FILE__, __LINE__, __func__, __VA_ARGS__))

/* ---- watching reports ------------------------------------------------------ */

typedef struct keel_report_detail {
    const char *key;
    const char *value; /* rendered as text */
    bool quoted;       /* a string (JSON string) rather than a number */
} keel_report_detail;

typedef struct keel_report_info {
    keel_report_kind kind;
    const char *kind_name;
    keel_policy policy; /* what will be done after the handler returns */
    const char *message;
    const char *text; /* extra lines, "" when none */
    const char *file;
    int line;
    const char *func;
    const char *thread; /* thread name */
    long tid;
    const char *module; /* module the thread was executing in, "" when none */
    size_t ndetails;
    const keel_report_detail *details;
    int nframes;
    void *const *frames;    /* program counters */
    unsigned long long seq; /* 1, 2, ... per process */
} keel_report_info;

/*
 * Called for every report, on the reporting thread, before it is printed.
 * Return true to suppress the printing on stderr (the JSON line and the
 * policy still apply).  A handler may longjmp out of an assertion failure.
 * NULL restores the default.  Returns the previous handler.
 */
typedef bool (*keel_report_handler)(const keel_report_info *info, void *ctx);
KEEL_API keel_report_handler keel_report_set_handler(keel_report_handler handler, void *ctx);

KEEL_EXTERN_C_END

#endif /* KEEL_REPORT_H */
