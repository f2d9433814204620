/*
 * internal.h - what libkeel's source files share with each other (keel__ names).
 * Never installed.  Every source file of the library includes this first.
 */
#ifndef KEEL_INTERNAL_H
#define KEEL_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>

#include "keel/keel.h"

KEEL_EXTERN_C_BEGIN

/* C and C++ spellings (the library sources also compile as C++ for stricter checks). */
#ifdef __cplusplus
#define KEEL__TLS                      thread_local
#define KEEL__STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define KEEL__TLS                      _Thread_local
#define KEEL__STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
#define KEEL__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KEEL__UNUSED       __attribute__((unused))

/* ---- options (src/options.c; the table is src/options_table.h) ---------- */

#include "options_table.h"

#define KEEL__OPT_ENUM(id, name, type, def, lo, hi, check, help) KEEL__OPT_##id,
typedef enum keel__opt_id { KEEL__OPTIONS(KEEL__OPT_ENUM) KEEL__OPT_COUNT } keel__opt_id;
#undef KEEL__OPT_ENUM

/*
 * Read KEEL_REPORT and KEEL_OPTIONS once, at the first use of keel, and report
 * a malformed KEEL_OPTIONS then.  Every public entry point calls it before it
 * acts, or sits behind a slow path that does (a thread's first lock, a heap's
 * creation, a thread's first section): after the first call it is one load and
 * one predictable branch.  Never from a constructor (a program may set the
 * environment in main).
 */
extern int keel__init_done;
void keel__lazy_init_slow(void);
static inline void keel__lazy_init(void)
{
    if (KEEL_UNLIKELY(!__atomic_load_n(&keel__init_done, __ATOMIC_ACQUIRE)))
        keel__lazy_init_slow();
}
/* Current values.  Integers and booleans are read with one relaxed load. */
long long keel__opt_int(keel__opt_id id);
bool keel__opt_bool(keel__opt_id id);
/* A string value; it stays valid for the life of the process. */
const char *keel__opt_str(keel__opt_id id);

/* Parse and apply (all or nothing); `origin` names the source in errors. */
KEEL_MUST_USE keel_status keel__options_apply(const char *text, size_t len, const char *origin);
/* Set a STR option directly (start-up: KEEL_REPORT). */
void keel__options_set_str(keel__opt_id id, const char *value);
/* Bumped after every change of any option: capabilities compare it to refresh cached settings. */
extern unsigned keel__options_generation;

/*
 * Parse an option string without applying it (the fuzz target and tests use
 * this).  `origin` names where the text came from in error messages.
 */
KEEL_MUST_USE keel_status keel__options_parse_only(const char *text, size_t len,
                                                   const char *origin);

/* ---- report channel (src/report.c) --------------------------------------- */

/*
 * Capture this thread's reports instead of emitting them (a self test provoking
 * the checks it tests): each report is counted by kind, its first message kept,
 * nothing printed, counted, handled or aborted.  NULL: reports go out again.
 */
typedef struct keel__report_capture {
    unsigned count[KEEL_REPORT_KIND_COUNT];
    char first[KEEL_REPORT_KIND_COUNT][160];
} keel__report_capture;
extern KEEL__TLS keel__report_capture *keel__tls_capture;

/*
 * The first of n frames (innermost first) that is not keel's own: libkeel's code (by address),
 * then a signal trampoline, and below keel's own handler libc's frames.  n - 1 at most.
 */
int keel__first_user_frame(void *const *pcs, int n);
/* Is file (a __FILE__) one of libkeel's own sources (src/)?  (src/status.c) */
bool keel__source_is_keel(const char *file);
/* Is a frame of the program's own on this thread's stack (neither keel's nor libc's)? */
bool keel__user_frame_on_stack(void);
/* Is the return address pc in libkeel's code (keel_text)?  In libc (or the vDSO)? */
bool keel__frame_in_keel(const void *pc);
bool keel__frame_in_libc(const void *pc);

/* ---- suppressions (src/report_supp.c) ------------------------------------- */

typedef struct keel__supp_set keel__supp_set;
/* Parses a suppression file's text, applying nothing (the fuzzer's entry). */
keel_status keel__supp_parse_only(const char *text, size_t len, const char *origin);
/* Loads report.suppressions when it changed; called after every options change. */
void keel__supp_options_changed(void);
/* Is any suppression loaded? */
bool keel__supp_active(void);
/* The name of the first suppression matching a report (its hit counted), NULL for none. */
const char *keel__supp_match(const char *kind, const char *message, const keel_frame *frames,
                             int nframes);
/* The suppression entry that would match a report with these frames. */
void keel__supp_render(const char *kind, const char *message, const keel_frame *frames, int nframes,
                       char *buf, size_t size, size_t *pos);

/*
 * fork, for a preload library's handlers (keel-run): phase 0 before (takes the lock), 1 after in
 * the parent, 2 in the child.  Taken in this order: the report channel's, libdw's, then the lock
 * checker's (keel__lock_fork, src/lockdep.h).
 */
void keel__report_fork(int phase);
/* One of keel's plain mutexes around fork: taken (0), released (1), made anew in the child (2). */
static inline void keel__fork_mutex(pthread_mutex_t *m, int phase)
{
    if (phase == 0)
        KEEL_VERIFY(pthread_mutex_lock(m) == 0);
    else if (phase == 1)
        KEEL_VERIFY(pthread_mutex_unlock(m) == 0);
    else
        KEEL_VERIFY(pthread_mutex_init(m, NULL) == 0);
}
/*
 * Around a lock of keel's own that a program's thread can wait for (the lock graph's, keel-run's
 * tables'): the signals that come from outside blocked in the calling thread, the old mask in
 * *old.  A signal handler that ran while its thread held such a lock, and waited for a program
 * lock held by a thread that waits for this one, would deadlock a program that does not deadlock
 * without keel.  The synchronous faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP) stay open: a
 * fault in keel's code still reaches the program's handler or ends the process as it would.
 */
static inline void keel__signals_block(sigset_t *old)
{
    sigset_t all;
    (void)sigfillset(&all);
    (void)sigdelset(&all, SIGSEGV);
    (void)sigdelset(&all, SIGBUS);
    (void)sigdelset(&all, SIGILL);
    (void)sigdelset(&all, SIGFPE);
    (void)sigdelset(&all, SIGTRAP);
    KEEL_VERIFY(pthread_sigmask(SIG_BLOCK, &all, old) == 0);
}
static inline void keel__signals_restore(const sigset_t *old)
{
    KEEL_VERIFY(pthread_sigmask(SIG_SETMASK, old, NULL) == 0);
}
/* Set by a preload library (keel-run): called with 1 before a report is emitted and -1 after, so
 * that the locks and C library calls of the emission are known to be keel's own. */
extern void (*keel__report_guard)(int delta);
void keel__backtrace_fork(int phase);

/* KEEL_REPORT for keel's own code: the site is the program's first frame (keel_report_begin). */
#define KEEL__REPORT_AT_CALLER(kind, ...) \
    keel_report_emit(keel_report_begin((kind), NULL, 0, NULL, __VA_ARGS__))

/* Report an error status (which it frees) as `message`, its text below; at the program's call. */
void keel__report_status(keel_report_kind kind, keel_status s, const char *message);
/*
 * A report of a kind whose policy is "count" while no handler watches: only
 * counted, without building it (true).  False: build and emit it as usual.
 */
bool keel__report_count_only(keel_report_kind kind);
/* Name of the calling thread ("main", "worker-3", or "tid 1234"). */
void keel__thread_name(char *buf, size_t size);
long keel__thread_id(void);
/* The module the calling thread is executing in ("" when none); set by the module system. */
extern KEEL__TLS const char *keel__tls_module;

/* ---- errors (src/status.c) ----------------------------------------------- */

/* Called once at exit in devel builds (lost-error sweep). */
void keel__status_at_exit(void);
/* Tests: make the next N allocations of error objects on this thread fail. */
extern KEEL__TLS unsigned keel__status_fail_allocs;

/* ---- watchdog (src/watchdog.c) ------------------------------------------- */

/* Stop the watchdog thread at exit. */
void keel__watchdog_at_exit(void);

/* Called by lockdep when the calling thread's lock state is allocated (or NULL: freed). */
void keel__watchdog_lock_state(void *state);

/*
 * Thread tid's backtrace (return addresses, innermost first) taken by keel-stack with ptrace,
 * unseen by the thread (src/watchdog_stack.c).  while_stopped(arg) runs while the thread is
 * stopped: it must not allocate or lock.  *stopped_us: how long the thread was stopped.
 */
KEEL_MUST_USE keel_status keel__stack_ptrace(long tid, void **frames, int max, int *n,
                                             void (*while_stopped)(void *), void *arg,
                                             unsigned long long *stopped_us);
/* Close the socket to keel-stack (it exits): at exit, and in a forked child (not its helper). */
void keel__stack_close(void);

/* ---- lock hold budgets (src/lock.c, src/lockdep.c; the watchdog samples) ---- */

/* One held lock of another thread, as the watchdog samples it. */
typedef struct keel__lock_sample {
    unsigned long long seq; /* the holder's acquisition number: unique per thread */
    const void *lock;
    unsigned long long budget_ns; /* its class's budget (0: none) */
    unsigned cls;
} keel__lock_sample;

#define KEEL__LOCK_BUDGET_NAME   64 /* class names, with the NUL */
#define KEEL__LOCK_BUDGET_MAX_MS 1000000000ull

/* The calling thread's lock state (NULL: none yet, or a release build). */
void *keel__lock_state_self(void);
/* Read another thread's held locks (atomic loads: the sample may be stale, never unsafe). */
unsigned keel__lock_sample_held(const void *state, keel__lock_sample *out, unsigned max);
/*
 * Does the thread whose state this is still hold acquisition `seq` of `lock`?  Where taken.
 * Called on the holder (signal-safe) or while the holder is stopped (ptrace).
 */
bool keel__lock_holds(const void *state, unsigned long long seq, const void *lock,
                      const keel__lock_site **site);
/* A class's name, kind ("mutex", ...) and rank. */
void keel__lock_class_info(unsigned cls, char *name, size_t size, const char **kind, int *rank);
/* Re-read the lock.budget option if it changed (the watchdog calls this every tick). */
void keel__lock_budgets_refresh(void);
/* Is any class budgeted? */
bool keel__lock_budgets_any(void);
/* Parse "name:ms,name:ms"; fn (may be NULL: only check) gets each item. */
KEEL_MUST_USE keel_status keel__lock_budget_parse(const char *spec,
                                                  void (*fn)(const char *name, size_t len,
                                                             unsigned long long ms, void *ctx),
                                                  void *ctx);

/* ---- linker sections (src/init.c) ----------------------------------------- */

/*
 * The next descriptor of `size` bytes that starts with the 64-bit `magic` in
 * the linker section [*at, end), scanning in 8-byte steps (robust against any
 * padding between descriptors); *at moves past it.  NULL at the end.  Stress
 * points and modules are registered this way.
 */
void *keel__section_next(char **at, const char *end, size_t size, unsigned long long magic);

/* ---- stress options (src/stress.c, src/stress_summary.c) ----------------- */

/* Apply the stress.* options if they changed (called after every options change). */
void keel__stress_options_changed(void);
/* At exit: the summary and JSON file when asked for, and entries that matched nothing. */
void keel__stress_at_exit(void);
/* A point made at run time (a module heap's "<module>.alloc"); NULL when out of memory. */
void *keel__stress_dynamic_site(const char *name, const char *file, const char *func);

/* ---- modules and heaps (src/module.c, src/heap*.c) ----------------------- */

/* A module stopped: its heap's leak report and sweep. */
void keel__heap_module_stopped(const keel_module *m);

/* ---- small text helpers (src/text.c) ------------------------------------- */

/* Append formatted text to buf at *pos, never past size; *pos counts what was needed. */
void keel__buf_printf(char *buf, size_t size, size_t *pos, const char *fmt, ...) KEEL_PRINTF(4, 5);
void keel__buf_vprintf(char *buf, size_t size, size_t *pos, const char *fmt, va_list ap)
    KEEL_PRINTF(4, 0);
/* Append s as a JSON string (with quotes and escapes). */
void keel__buf_json_str(char *buf, size_t size, size_t *pos, const char *s);
/* Damerau-Levenshtein distance of two short strings (capped at 64 chars); ASCII case is no edit. */
size_t keel__edit_distance(const char *a, const char *b);
/*
 * Read a whole text file of at most `max` bytes into a new NUL-terminated
 * string; `what` names it in errors ("option file", "stress file").
 */
KEEL_MUST_USE keel_status keel__read_text_file(const char *path, size_t max, const char *what,
                                               char **out, size_t *len);

KEEL_EXTERN_C_END

#endif /* KEEL_INTERNAL_H */
