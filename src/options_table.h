/*
 * options_table.h - the one table of keel's runtime options.
 *
 * X(ID, "name", TYPE, default, min, max, check, "meaning")
 *   TYPE   BOOL | INT | STR | POLICY (abort/report/count)
 *   check  NULL, or a function  keel_status check(const char *value)  that
 *          validates a STR value before anything is applied (for values with
 *          their own syntax, such as a stress spec); declare it below.
 *
 * A capability adds its rows here (grouped, with a comment naming it), reads
 * values with keel__opt_int / keel__opt_bool / keel__opt_str, and documents
 * them in docs/options.md.  Per-kind report policies (report.<kind>) come
 * from KEEL_REPORT_KINDS and need no row.
 */
#ifndef KEEL_OPTIONS_TABLE_H
#define KEEL_OPTIONS_TABLE_H

#define KEEL__OPTIONS(X)                                                                           \
    /* report channel */                                                                           \
    X(REPORT_FILE, "report.file", STR, 0, 0, 0, NULL,                                              \
      "append every report as one JSON line to this file (KEEL_REPORT sets it too)")               \
    X(REPORT_BACKTRACE, "report.backtrace", BOOL, 1, 0, 1, NULL,                                   \
      "capture and symbolize a backtrace for every report")                                        \
    X(REPORT_FRAMES, "report.frames", INT, 24, 1, 64, NULL, "most backtrace frames in a report")   \
    X(REPORT_LIMIT, "report.max-printed", INT, 100, 0, 1000000000, NULL,                           \
      "print (and write to report.file) at most this many reports of each kind (0: no limit); "    \
      "the rest are counted")                                                                      \
    X(REPORT_SUPPRESSIONS, "report.suppressions", STR, 0, 0, 0, keel__supp_check_file,             \
      "read suppressions from this file: matching reports are neither printed nor counted "        \
      "(docs/reports.md)")                                                                         \
    X(REPORT_GEN_SUPPRESSIONS, "report.gen-suppressions", BOOL, 0, 0, 1, NULL,                     \
      "print after each report on stderr the suppression entry that would match it")               \
    /* assertions */                                                                               \
    X(ASSERT_EXPENSIVE, "assert.expensive", BOOL, 0, 0, 1, NULL,                                   \
      "evaluate KEEL_ASSERT_EXPENSIVE checks (devel builds)")                                      \
    /* errors */                                                                                   \
    X(ERROR_TRACK, "error.track", BOOL, 1, 0, 1, NULL,                                             \
      "track live errors so that lost ones are reported at exit (devel builds)")                   \
    /* watchdog */                                                                                 \
    X(WATCHDOG_ENABLED, "watchdog.enabled", BOOL, 1, 0, 1, NULL,                                   \
      "start the watchdog thread with the first section, heartbeat or keel thread (devel builds)") \
    X(WATCHDOG_TICK_MS, "watchdog.tick-ms", INT, 10, 1, 1000, NULL,                                \
      "how often the watchdog samples sections and heartbeats, in milliseconds")                   \
    X(WATCHDOG_SCALE, "watchdog.scale", INT, 100, 0, 100000, NULL,                                 \
      "percent applied to every budget and heartbeat period (0: budgets off)")                     \
    X(WATCHDOG_STACKS, "watchdog.stacks", STR, 0, 0, 0, keel__watchdog_check_stacks,               \
      "how a stuck thread's backtrace is taken: ptrace (the default, \"\": keel-stack stops the "  \
      "thread unseen), signal (SIGRTMIN+7: interrupts its sleeps and blocking calls), none")       \
    X(WATCHDOG_STACK_HELPER, "watchdog.stack-helper", STR, 0, 0, 0, NULL,                          \
      "path of keel-stack (default: beside libkeel, in its ../libexec/keel, or where installed)")  \
    /* stress options */                                                                           \
    X(STRESS, "stress", STR, 0, 0, 0, keel__stress_check_spec,                                     \
      "stress entries PATTERN[:TERM]..., comma-separated: disk_error:1/1000,net.*:p=0.01 "         \
      "(terms K/N p= every= nth= first= after= max= thread= delay= off; docs/stress.md)")          \
    X(STRESS_SEED, "stress.seed", INT, 0, 0, 1000000000000000000LL, NULL,                          \
      "seed of every random stress trigger (0: pick one and print it)")                            \
    X(STRESS_FILE, "stress.file", STR, 0, 0, 0, keel__stress_check_file,                           \
      "read stress entries from this file too (before those of 'stress'; '#' comments)")           \
    X(STRESS_COUNT, "stress.count", BOOL, 0, 0, 1, NULL,                                           \
      "count stress point evaluations even with nothing armed (coverage of error paths)")          \
    X(STRESS_SUMMARY, "stress.summary", BOOL, 0, 0, 1, NULL,                                       \
      "print the stress summary on stderr at exit (counts, fired, never reached)")                 \
    X(STRESS_JSON, "stress.json", STR, 0, 0, 0, NULL,                                              \
      "write the stress summary as JSON to this file at exit (keel-stress reads it)")              \
    /* locks */                                                                                    \
    X(LOCK_BUDGET, "lock.budget", STR, 0, 0, 0, keel__lock_budget_check,                           \
      "lock hold budgets, class:ms[,class:ms...]: a longer hold is reported (devel builds)")       \
    /* modules and their heaps */                                                                  \
    X(MODULE_POST, "module.post", STR, 0, 0, 0, keel__module_check_post,                           \
      "which power-on self tests run when modules start: all (default), none, or a list of "       \
      "module and module.test names")                                                              \
    X(HEAP_QUARANTINE, "heap.quarantine", INT, 1048576, 0, 1073741824, NULL,                       \
      "bytes of freed blocks each module heap holds back, poisoned, before reuse (devel)")         \
    X(HEAP_FILL, "heap.fill", INT, 1048576, 0, 281474976710656LL, NULL,                            \
      "poison at most the first N bytes of a block, fresh (0xA5) or freed (0xDD): the rest of a "  \
      "big block stays untouched, as in a release build (devel)")                                  \
    X(HEAP_GUARD_SAMPLE, "heap.guard-sample", INT, 0, 0, 1000000000, NULL,                         \
      "place 1 in N allocations against a PROT_NONE guard page (0: off; devel)")

/* check functions of STR options (src/stress_spec.c, src/lock.c, src/watchdog_stack.c, ...) */
#include "keel/status.h"
KEEL_EXTERN_C_BEGIN
KEEL_MUST_USE keel_status keel__stress_check_spec(const char *value);
KEEL_MUST_USE keel_status keel__stress_check_file(const char *value);
KEEL_MUST_USE keel_status keel__supp_check_file(const char *value); /* src/report_supp.c */
KEEL_MUST_USE keel_status keel__lock_budget_check(const char *value);
KEEL_MUST_USE keel_status keel__module_check_post(const char *value);
KEEL_MUST_USE keel_status keel__watchdog_check_stacks(const char *value);
KEEL_EXTERN_C_END

#endif /* KEEL_OPTIONS_TABLE_H */
