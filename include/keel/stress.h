/*
 * keel/stress.h - stress options: one-line fault injection at any call site.
 *
 * The talk: "Stress options - used for causing unusual, but recoverable
 * conditions: if (STRESS_OPTION(disk_error)) return DISK_FAILURE;"
 *
 *   if (KEEL_STRESS(disk_error))
 *       return KEEL_ERR(KEEL_E_INJECTED, "writing block %u", blk);
 *
 * KEEL_STRESS(name) is an expression, true when the option fires.  `name` is a
 * C identifier; in a module's sources (KEEL_MODULE_NAME defined as "storage"
 * before any keel header) the option is called "storage.disk_error".  Many
 * sites may use one name: they share its setting and are counted per site.
 *
 * Every point is a descriptor the compiler places in a linker section, so the
 * whole set is known at start-up without any registration call, including the
 * points of shared libraries loaded later with dlopen() (and dropped again at
 * dlclose()).
 *
 * Control, from KEEL_OPTIONS (or keel_options_set / keel_options_load):
 *
 *   stress=disk_error:1/1000,net.*:p=0.01;stress.seed=42
 *
 * The value of `stress` is a comma-separated list of entries PATTERN[:TERM]...
 * PATTERN is a name, or a glob with * and ? ("net.*", "*").  When several
 * entries match a name, the last one wins.  Terms, all of which must hold for
 * the point to fire (none: it fires at every evaluation):
 *
 *   K/N        at random, K times in N            (disk_error:1/1000)
 *   p=F        at random with probability F       (net.*:p=0.01)
 *   every=N    every Nth evaluation: N, 2N, ...
 *   nth=N      only the Nth evaluation (fail-nth)
 *   first=N    the first N evaluations
 *   after=N    only after the first N evaluations (the counts above start after them)
 *   max=K      at most K fires in all
 *   thread=G   only in threads whose name matches the glob G
 *   delay=D    action: sleep D (500us, 10ms, 2s) instead of failing - the
 *              point then evaluates false; it widens a race window
 *   off        never (to exempt names from an earlier wildcard); no other term with it
 *
 * Evaluations are counted per name, over all its sites and threads.
 * Other options: stress.seed (one seed for all randomness; 0 picks one, and
 * it is printed), stress.count (count evaluations with nothing armed: the
 * coverage of error paths), stress.summary (print the summary at exit),
 * stress.json=PATH (write it as JSON at exit), stress.file=PATH (entries from
 * a file, one or more per line, # comments).  A name that matches no
 * registered point is warned about with the nearest registered names; a
 * malformed entry is an error naming the token, and nothing is applied.
 *
 * Reproducible: with the same seed, the same single-threaded sequence of
 * evaluations fires at the same places.  Each fire is a report of kind
 * "stress" (policy count by default; report.stress=report prints each one)
 * that carries the seed and the spec to replay.
 *
 * `keel-stress sweep -- ./prog args` (installed with the library) runs a
 * program once to learn which points it reaches, then again failing each one
 * at its 1st, 2nd, ... evaluation, and reports every run that crashed, hung,
 * leaked, reported a keel violation or exited non-zero.  docs/stress.md.
 *
 * Cost: a point evaluates one global flag while no stress option is set or
 * counted (well under a nanosecond); counters are per thread.  Release
 * builds: KEEL_STRESS(x) is the constant 0 and leaves nothing in the object.
 */
#ifndef KEEL_STRESS_H
#define KEEL_STRESS_H

#include <stddef.h>
#include <stdio.h>

#include "keel/common.h"
#include "keel/status.h"

KEEL_EXTERN_C_BEGIN

/* ---- control (devel builds; release: no points, enable and set_action fail UNSUPPORTED) ---- */

/*
 * Add entries, in the syntax of the `stress` option, after the current ones
 * (later entries win).  All or nothing; safe while other threads evaluate.
 */
KEEL_API KEEL_MUST_USE keel_status keel_stress_enable(const char *spec);
/* Add "PATTERN:off" (the names it matches stop firing). */
KEEL_API KEEL_MUST_USE keel_status keel_stress_disable(const char *pattern);
/* Remove every entry: nothing fires. */
KEEL_API void keel_stress_clear(void);
/* The current entries as one spec string ("" when none); NUL-terminated, truncated to size. */
KEEL_API size_t keel_stress_spec(char *buf, size_t size);
/* The seed in use (stress.seed, or the one picked when it is 0). */
KEEL_API unsigned long long keel_stress_seed(void);

/*
 * An action for the points whose names match `pattern`, run when one of them
 * fires; its result is the value of KEEL_STRESS() (false: the action was the
 * effect, e.g. a delay).  NULL removes the action.  The entry that arms the
 * point still decides when it fires.
 */
typedef bool (*keel_stress_action)(const char *name, void *ctx);
KEEL_API KEEL_MUST_USE keel_status keel_stress_set_action(const char *pattern,
                                                          keel_stress_action action, void *ctx);

/* ---- counters and coverage ---- */

typedef struct keel_stress_stats {
    const char *name; /* valid until the point's library is unloaded */
    unsigned long long evaluations;
    unsigned long long fires;
    unsigned sites; /* registered sites with this name */
    bool armed;     /* an entry currently matches it */
} keel_stress_stats;

/* Counters of one point (KEEL_E_NOTFOUND if no site by that name is registered). */
KEEL_API KEEL_MUST_USE keel_status keel_stress_get(const char *name, keel_stress_stats *out);
/*
 * Every registered point, sorted by name: up to `cap` into out, the total in
 * *count.  Counting needs stress.count or an armed entry (points evaluate
 * nothing otherwise).
 */
KEEL_API KEEL_MUST_USE keel_status keel_stress_list(keel_stress_stats *out, size_t cap,
                                                    size_t *count);
/*
 * The summary: seed and spec to replay, then the points that fired, those
 * evaluated but never fired and those registered but never reached, with
 * per-site counts; entries that matched no point.
 */
KEEL_API void keel_stress_summary(FILE *f);
/* The same as JSON (one point per line; the format keel-stress reads). */
KEEL_API void keel_stress_json(FILE *f);

/* ---- the point ---- */

#if KEEL_DEVEL

/* A site's descriptor, placed in the keel_stress section.  Never touch directly. */
typedef struct keel__stress_site {
    unsigned long long magic; /* KEEL__STRESS_MAGIC: found by scanning the section */
    const char *name;
    const char *file;
    const char *func;
    void *state; /* the library's record of this site, set at registration */
    int line;
    int pad;
} keel__stress_site;

#define KEEL__STRESS_MAGIC 0x6b65656c53545253ull /* "keelSTRS" */

KEEL_API extern int keel__stress_active; /* nonzero: something is armed or counted */
KEEL_API bool keel__stress_eval(keel__stress_site *site);
KEEL_API void keel__stress_register(keel__stress_site *begin, keel__stress_site *end);
KEEL_API void keel__stress_unregister(keel__stress_site *begin, keel__stress_site *end);

#ifdef KEEL_MODULE_NAME
#define KEEL__STRESS_NAME(name) KEEL_MODULE_NAME "." #name
#else
#define KEEL__STRESS_NAME(name) #name
#endif

#define KEEL_STRESS(name)                                                                        \
    (__extension__({                                                                             \
        static keel__stress_site keel__stress_here __attribute__((section("keel_stress"), used,  \
                                                                  aligned(8))) = {               \
            KEEL__STRESS_MAGIC, KEEL__STRESS_NAME(name), __FILE__, __func__, NULL, __LINE__, 0}; \
        KEEL_UNLIKELY(__atomic_load_n(&keel__stress_active, __ATOMIC_RELAXED) != 0) &&           \
            keel__stress_eval(&keel__stress_here);                                               \
    }))

/*
 * Each linked object (the program, each shared library) registers its own
 * section when it is loaded and drops it when it is unloaded.  The bounds are
 * hidden and weak: an object without points passes two NULLs.
 */
KEEL__SECTION_HOOKS(keel_stress, keel__stress_site, keel__stress_register, keel__stress_unregister)

#else /* release: the branch and every trace of the point are gone */

#define KEEL_STRESS(name) 0

#endif

KEEL_EXTERN_C_END

#endif /* KEEL_STRESS_H */
