/*
 * gate/exec/ccache.h - a persistent compiler cache per configuration.
 *
 * A configuration whose `ccache-size` (in its [config NAME] section, or [gate]'s for every
 * configuration) is not 0 gets its own ccache directory, <state>.d/ccache/<configuration>,
 * shared by all of that configuration's jobs (local executor).  It is bound read-write into
 * that configuration's sandbox only: the rest of <state>.d, and so every other
 * configuration's cache, stays hidden from the job.  The job's environment gets
 * CCACHE_DIR (that directory), CCACHE_BASEDIR (its work tree: work trees differ from job to
 * job, the hashes must not) and CCACHE_NOHASHDIR=1, and /usr/lib/ccache first on its PATH
 * when it exists (Debian's compiler names that go through ccache).  The cache's ccache.conf
 * holds max_size = the configuration's ccache-size (the gate writes it before every job).
 *
 * Residual risk (docs/gate.md, Compiler cache): a job may write anything into its own
 * configuration's cache, and later jobs of that configuration - other changes' - would use
 * it.  ccache's hash covers the compiler, its options and the preprocessed input, so an
 * honest build never gets another input's result, but a hostile change can plant results.
 */
#ifndef KEEL_GATE_CCACHE_H
#define KEEL_GATE_CCACHE_H

#include "keel/keel.h"

#include "sandbox.h"

enum { GATE_CCACHE_VARS = 4 }; /* at most the variables gate_ccache_env sets */

/* The cache's counters, from `ccache --print-stats`. */
typedef struct gate_ccache_stats {
    unsigned long long hits;   /* direct + preprocessed cache hits */
    unsigned long long misses; /* cache_miss */
    unsigned long long files;  /* files_in_cache */
    unsigned long long bytes;  /* cache_size_kibibyte * 1024 */
} gate_ccache_stats;

/* `ccache` on the gate's PATH into buf; KEEL_E_NOTFOUND says what to install. */
KEEL_MUST_USE keel_status gate_ccache_find(char *buf, size_t size);

/* The cache directory of configuration `name` under the gate's <state>.d `work`. */
void gate_ccache_dir(const char *work, const char *name, char *buf, size_t size);

/*
 * Give the job of configuration `name` of `target` its cache: when the configuration's
 * ccache-size is not 0, the executor local and ccache installed, make the directory (and
 * its ccache.conf: max_size) and set p->ccache_dir and p->ccache_size, the directory added
 * to p->writable.  Nothing when the configuration has no cache; when ccache is missing,
 * p->ccache_note says so (the job's log shows it) and the job runs without one.
 */
KEEL_MUST_USE keel_status gate_ccache_attach(gate_job_policy *p, const char *work,
                                             const gate_config *target, const char *name);

/*
 * The variables a job with cache directory `dir` and work tree `tree` gets, into
 * vars[0..3] (each `size` bytes): CCACHE_DIR, CCACHE_BASEDIR, CCACHE_NOHASHDIR and PATH
 * with /usr/lib/ccache first (the job's `path`, its PATH without it).  How many were set
 * (PATH only when /usr/lib/ccache exists).
 */
size_t gate_ccache_env(const char *dir, const char *tree, const char *path, char (*vars)[1200]);

/* Parse `ccache --print-stats` output (id<TAB>value lines); KEEL_E_PARSE when none found. */
KEEL_MUST_USE keel_status gate_ccache_stats_parse(const char *text, gate_ccache_stats *out);

/* Run `ccache --print-stats` on cache `dir` and parse it. */
KEEL_MUST_USE keel_status gate_ccache_stats_read(const char *dir, gate_ccache_stats *out);

/*
 * Each configuration's cache under `work` (<work>/ccache/<name>): calls `fn` with its name
 * and counters, in name order; a cache whose counters cannot be read is skipped.  How many.
 */
size_t gate_ccache_each(const char *work,
                        void (*fn)(void *arg, const char *name, const gate_ccache_stats *st),
                        void *arg);

#endif /* KEEL_GATE_CCACHE_H */
