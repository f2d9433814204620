/*
 * gate/exec/ccache.h - a persistent compiler cache per configuration, in layers.
 *
 * A configuration whose `ccache-size` (in its [config NAME] section, or [gate]'s for every
 * configuration) is not 0 gets a cache under <state>.d/ccache/<configuration> (local
 * executor), used by ccache's remote file storage in "remote only" mode:
 *
 *   landed/            the landed layer: entries of landed changes' jobs and of level builds
 *                      of landed commits; read-only to every job of an unlanded change
 *                      (bubblewrap --ro-bind; the job's ccache is told `|read-only` as well)
 *   layers/<key>/      one job's own layer, bound read-write: stats/ its CCACHE_DIR (its
 *                      counters; nothing else in remote-only mode), new/ the entries it added
 *   counters           the hits and misses of the configuration's finished jobs (the gate's)
 *
 * When a candidate lands, the gate (not a job) copies the entries of its jobs' layers that the
 * landed layer does not hold yet into it (ccache_layers.c: gate_ccache_land), then trims the
 * landed layer to ccache-size with ccache's own `--trim-dir`; a candidate closed without landing
 * has its layers deleted (gate_ccache_drop).  Level builds (post, nightly, culprit searches:
 * commits already landed) write the landed layer directly.  The rest of <state>.d, and so every
 * other configuration's cache, stays hidden from the job.
 */
#ifndef KEEL_GATE_CCACHE_H
#define KEEL_GATE_CCACHE_H

#include "keel/keel.h"

#include "sandbox.h"

enum { GATE_CCACHE_VARS = 6 }; /* at most the variables gate_ccache_env sets */

/* A cache's counters: hits and misses of its configuration's jobs, its landed layer's size. */
typedef struct gate_ccache_stats {
    unsigned long long hits;   /* direct + preprocessed cache hits */
    unsigned long long misses; /* cache_miss */
    unsigned long long files;  /* entries in the landed layer */
    unsigned long long bytes;  /* their disk usage */
} gate_ccache_stats;

/* `ccache` on the gate's PATH into buf; KEEL_E_NOTFOUND says what to install. */
KEEL_MUST_USE keel_status gate_ccache_find(char *buf, size_t size);

/* The cache directory of configuration `name` under the gate's <state>.d `work`. */
void gate_ccache_dir(const char *work, const char *name, char *buf, size_t size);

/*
 * Give the job of configuration `name` of `target` its cache: when the configuration's
 * ccache-size is not 0, the executor local and ccache installed, make the landed layer and
 * the job's layer `key` (unique among the configuration's jobs: "p<pid>-c<candidate>-j<job>"
 * for a candidate's, which gate_ccache_land finds by "-c<candidate>-"; "p<pid>-l<n>" for a
 * level build's, "p<pid>-try-<n>" for a try's: the process that made it first) and fill p's ccache_* fields, the layer
 * added to p->writable and the landed layer to p->readonly (p->writable when `writes_landed`:
 * a build of a landed commit).  Nothing when the configuration has no cache; when ccache is
 * missing, p->ccache_note says so (the job's log shows it) and the job runs without one.
 */
KEEL_MUST_USE keel_status gate_ccache_attach(gate_job_policy *p, const char *work,
                                             const gate_config *target, const char *name,
                                             const char *key, bool writes_landed);

/*
 * The variables a job under `p` (with a cache) in work tree `tree` gets, into
 * vars[0..GATE_CCACHE_VARS) (each 1200 bytes): CCACHE_DIR, CCACHE_REMOTE_STORAGE (the landed
 * layer `|read-only`, then the job's own layer; the landed layer alone for a job that writes
 * it), CCACHE_REMOTE_ONLY, CCACHE_BASEDIR, CCACHE_NOHASHDIR and PATH with /usr/lib/ccache
 * first (the job's `path`, its PATH without it).  How many were set (PATH only when
 * /usr/lib/ccache exists).
 */
size_t gate_ccache_env(const gate_job_policy *p, const char *tree, const char *path,
                       char (*vars)[1200]);

/* Parse `ccache --print-stats` output (id<TAB>value lines); KEEL_E_PARSE when none found. */
KEEL_MUST_USE keel_status gate_ccache_stats_parse(const char *text, gate_ccache_stats *out);

/*
 * Run ccache with `args` (NULL-terminated, after the program's name), its output into
 * out[size] (NUL-terminated; may be NULL); KEEL_E_IO when it fails.  Safe in any thread.
 */
KEEL_MUST_USE keel_status gate_ccache_run(const char *const *args, char *out, size_t size);

/* The counters of CCACHE_DIR `dir` (`ccache --dir DIR --print-stats`). */
KEEL_MUST_USE keel_status gate_ccache_stats_of(const char *dir, gate_ccache_stats *out);

/*
 * Configuration `name`'s cache under `work`: the hits and misses of its finished jobs (its
 * counters file), the entries and bytes of its landed layer.  KEEL_E_NOTFOUND: it has none.
 */
KEEL_MUST_USE keel_status gate_ccache_stats_read(const char *work, const char *name,
                                                 gate_ccache_stats *out);

/* The hits and misses of counters file `path` ("hits N\nmisses N\n"); 0 when it is not there. */
void gate_ccache_counters_read(const char *path, unsigned long long *hits,
                               unsigned long long *misses);

/*
 * Each configuration's cache under `work` (<work>/ccache/<name>): calls `fn` with its name
 * and counters, in name order; a cache whose counters cannot be read is skipped.  How many.
 */
size_t gate_ccache_each(const char *work,
                        void (*fn)(void *arg, const char *name, const gate_ccache_stats *st),
                        void *arg);

/* ---- layers (ccache_layers.c) --------------------------------------------------------- */

/*
 * A job under `p` ended (its worker, any thread): its counters are added to its
 * configuration's and its CCACHE_DIR removed; a job that wrote the landed layer has its layer
 * removed and the landed layer trimmed to its ccache-size.  Nothing for a job without a cache.
 */
void gate_ccache_job_end(const gate_job_policy *p);

/* What gate_ccache_land did. */
typedef struct gate_ccache_merged {
    unsigned long long layers;  /* job layers merged (then deleted) */
    unsigned long long entries; /* entries copied into landed layers */
    unsigned long long had;     /* entries the landed layer had already */
    unsigned long long skipped; /* files that are no entry (a link, a strange name): left out */
} gate_ccache_merged;

/*
 * Candidate `cand` landed: the layers "*-c<cand>-*" of every configuration under `work` are
 * merged into its landed layer (each entry the landed layer lacks, copied to a temporary name
 * and renamed: a kill at any point leaves whole entries only) and deleted; each landed layer
 * that grew is trimmed to its configuration's ccache-size in `target`.  The first error is
 * returned after every layer was tried.  The stress point gate_exec.ccache_merge_kill ends
 * the process (exit 99) as kill -9 would, half-way through copying an entry.
 */
KEEL_MUST_USE keel_status gate_ccache_land(const char *work, const gate_config *target,
                                           long long cand, gate_ccache_merged *out);

/* Candidate `cand` closed without landing: its layers are deleted, never merged. */
void gate_ccache_drop(const char *work, long long cand);

/* One job's layer (p->ccache_layer), deleted: its candidate was decided before it ended. */
void gate_ccache_layer_drop(const gate_job_policy *p);

/*
 * At the start of `run`, no job of this process running: the layers of this process and of
 * processes that are gone (a killed or stopped gate, a killed `try`), temporary files a killed
 * merge left in landed layers, and a cache of the old single-directory layout are deleted.
 */
void gate_ccache_sweep(const char *work);

/* Trim landed layer `landed` to `size` bytes with `ccache --trim-dir`. */
KEEL_MUST_USE keel_status gate_ccache_trim(const char *landed, unsigned long long size);

#endif /* KEEL_GATE_CCACHE_H */
