/*
 * keel/watchdog.h - resource-usage watchdog: time budgets for sections of
 * code, heartbeats for threads, CPU time per thread and per module.
 *
 * The talk: "verify that a bottom-half or kernel thread doesn't run for more
 * than reasonable limit".  In a daemon the same bug is an event-loop callback,
 * a worker task or a lock holder that runs far longer than it should.
 *
 *   static keel_status handle_request(request *rq) {
 *       KEEL_SECTION_ENTER(sec, "handle_request", 50);    // budget: 50 ms
 *       ...
 *       KEEL_SECTION_LEAVE(sec);
 *   }
 *
 * Entering and leaving a section reads no clock: it writes a few words that
 * belong to the thread.  A watchdog thread samples them every tick
 * (watchdog.tick-ms, default 10).  A section still running past its budget is
 * reported at once, through the report channel (kind "watchdog"), with the
 * section, module, thread, elapsed time, budget and the stuck thread's own
 * backtrace, taken without the thread noticing: the helper keel-stack stops
 * it for a moment with ptrace (watchdog.stacks; docs/watchdog.md says what a
 * program can observe); when it finally ends it is reported again, after,
 * with its total.
 *
 * A thread that promises a heartbeat (keel_heartbeat_expect) and misses it is
 * reported with its backtrace and the keel locks it holds.
 *
 * Lock hold budgets (keel_lock_class_budget in keel/lock.h, option
 * lock.budget): the watchdog samples the held-lock stacks of watched threads,
 * and a lock held past its class's budget is reported the same way, while
 * still held and again when released.  The lock calls read no clock for it.
 *
 * Sections, heartbeats and the watchdog thread are devel-only; define
 * KEEL_WATCHDOG_IN_RELEASE (and build libkeel with it) to keep them in release.
 * Threads (names, modules, CPU time) work in every build.
 *
 * Options: watchdog.enabled, watchdog.tick-ms, watchdog.scale (percent applied
 * to every budget, lock budgets too; 0 switches budgets off, for valgrind or
 * slow machines).
 */
#ifndef KEEL_WATCHDOG_H
#define KEEL_WATCHDOG_H

#include "keel/common.h"
#include "keel/status.h"

KEEL_EXTERN_C_BEGIN

#if KEEL_DEVEL || defined(KEEL_WATCHDOG_IN_RELEASE)
#define KEEL_WATCHDOG_ON 1
#else
#define KEEL_WATCHDOG_ON 0
#endif

/* ---- threads --------------------------------------------------------------- */

typedef struct keel_thread keel_thread; /* opaque */

/*
 * Start a thread with a name (set for the OS too, visible in top and gdb; the
 * OS keeps 15 characters) and the owning module (NULL: the module the caller is
 * executing in).  Its CPU time is accounted to that module.
 */
KEEL_API KEEL_MUST_USE keel_status keel_thread_create(keel_thread **out, const char *name,
                                                      const char *module, void *(*fn)(void *),
                                                      void *arg);
/* Wait for it and free the handle; `result` (may be NULL) receives fn's return value. */
KEEL_API KEEL_MUST_USE keel_status keel_thread_join(keel_thread *t, void **result);
/* Register the calling thread (one keel did not create), naming it. */
KEEL_API KEEL_MUST_USE keel_status keel_thread_register(const char *name, const char *module);
/* Forget the calling thread (done by itself when a registered thread exits). */
KEEL_API void keel_thread_unregister(void);

/* ---- budgeted sections ------------------------------------------------------ */

typedef struct keel_section_desc {
    const char *name;
    unsigned long long budget_ns;
    const char *file;
    int line;
    const char *func;
} keel_section_desc;

KEEL_API void keel_section_enter(const keel_section_desc *d);
KEEL_API void keel_section_leave(const keel_section_desc *d);

#if KEEL_WATCHDOG_ON
/* Open a section named `name` with a budget in milliseconds; `var` names it for LEAVE. */
#define KEEL_SECTION_ENTER(var, name, budget_ms)                                              \
    static const keel_section_desc var = {(name), (unsigned long long)(budget_ms)*1000000ull, \
                                          __FILE__, __LINE__, __func__};                      \
    keel_section_enter(&(var))
#define KEEL_SECTION_LEAVE(var) keel_section_leave(&(var))
#else
#define KEEL_SECTION_ENTER(var, name, budget_ms) ((void)0)
#define KEEL_SECTION_LEAVE(var)                  ((void)0)
#endif

/*
 * Run fn(arg) as a budgeted section (the callback form); returns what fn returns.
 * KEEL_E_INVAL, fn not run, when d or fn is NULL (every build).
 */
KEEL_API KEEL_MUST_USE keel_status keel_section_run(const keel_section_desc *d,
                                                    keel_status (*fn)(void *), void *arg);

/* ---- heartbeats ---------------------------------------------------------------- */

/* The calling thread promises to call keel_heartbeat() at least every period_ms (0: no longer). */
KEEL_API void keel_heartbeat_expect(unsigned long long period_ms);
KEEL_API void keel_heartbeat(void);

/* ---- the watchdog thread ------------------------------------------------------------ */

/*
 * Start the watchdog thread (the first section, heartbeat or keel thread starts
 * it by itself unless watchdog.enabled=0).  It stops at exit, or here.
 */
KEEL_API KEEL_MUST_USE keel_status keel_watchdog_start(void);
KEEL_API void keel_watchdog_stop(void);

/* Budget overruns and missed heartbeats reported so far. */
KEEL_API unsigned long long keel_watchdog_overruns(void);

/*
 * Per-thread and per-module CPU time and overruns as JSON:
 * {"tick_ms":10,"watchdog_cpu_ns":..,"threads":[{"name":..,"tid":..,"module":..,"cpu_ns":..,"overruns":..,
 *   "missed_heartbeats":..}],"modules":[{"name":..,"cpu_ns":..,"overruns":..}]}
 * snprintf semantics.
 */
KEEL_API size_t keel_watchdog_stats_json(char *buf, size_t size);

KEEL_EXTERN_C_END

#endif /* KEEL_WATCHDOG_H */
