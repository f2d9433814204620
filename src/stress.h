/*
 * stress.h - what the stress option files share: the parsed form of a spec
 * (stress_spec.c) and the registry (stress.c, stress_summary.c).
 */
#ifndef KEEL_SRC_STRESS_H
#define KEEL_SRC_STRESS_H

#include "internal.h"

KEEL_EXTERN_C_BEGIN

/* When an armed point fires: every condition that is set must hold. */
typedef struct keel__stress_trigger {
    unsigned long long nth;    /* 0: unset */
    unsigned long long every;  /* 0: unset */
    unsigned long long first;  /* 0: unset */
    unsigned long long after;  /* 0: none skipped */
    unsigned long long max;    /* 0: no limit */
    unsigned long long thresh; /* random: fires when a 64-bit draw is below it */
    long long delay_ns;        /* > 0: sleep instead of failing */
    char *thread;              /* glob on the thread's name, or NULL */
    bool random;
    bool off;
    bool counted; /* needs the shared evaluation count (nth/every/first/after) */
} keel__stress_trigger;

/* One entry of a spec: PATTERN[:TERM]... */
typedef struct keel__stress_rule {
    char *pattern;
    char *text; /* the entry as written, blanks trimmed */
    keel__stress_trigger t;
    unsigned long long id; /* unique per parsed entry: an arm built from it is kept on re-arming */
    bool matched;          /* some point matched it, once */
    bool warned;           /* its misspelling warning was given */
} keel__stress_rule;

typedef struct keel__stress_rules {
    keel__stress_rule *v;
    size_t n;
    size_t cap;
} keel__stress_rules;

/*
 * Parse a spec and append its entries to *out (nothing is appended on error).
 * `lines`: newlines separate entries too and '#' starts a comment (a file).
 * `origin` names the source in errors ("stress", "stress.file 'x.txt'").
 */
KEEL_MUST_USE keel_status keel__stress_parse(const char *spec, bool lines, const char *origin,
                                             keel__stress_rules *out);
void keel__stress_rules_free(keel__stress_rules *r);
void keel__stress_trigger_free(keel__stress_trigger *t);
KEEL_MUST_USE keel_status keel__stress_trigger_copy(keel__stress_trigger *dst,
                                                    const keel__stress_trigger *src);
/* Read a whole spec file (at most 1 MiB) into a new string. */
KEEL_MUST_USE keel_status keel__stress_read_file(const char *path, char **out);

/* A glob match on names: '*' any run of characters (dots too), '?' one character. */
bool keel__stress_glob(const char *pattern, const char *name);

/* ---- the registry (stress.c), for stress_summary.c ---------------------------- */

typedef struct keel__stress_point_info {
    const char *name;
    unsigned long long evaluations;
    unsigned long long fires;
    unsigned sites;
    bool armed;
} keel__stress_point_info;

typedef struct keel__stress_site_info {
    const char *name;
    const char *file;
    const char *func;
    int line;
    unsigned long long evaluations;
    unsigned long long fires;
} keel__stress_site_info;

/*
 * A snapshot of every point (sorted by name) and its sites (grouped by point,
 * in the same order), and the entries that never matched a point.  Free with
 * keel__stress_snapshot_free.
 */
typedef struct keel__stress_snapshot {
    keel__stress_point_info *points;
    size_t npoints;
    keel__stress_site_info *sites;
    size_t nsites;
    char **unmatched;
    size_t nunmatched;
    char *spec;
    unsigned long long seed;
} keel__stress_snapshot;

KEEL_MUST_USE keel_status keel__stress_snapshot_take(keel__stress_snapshot *snap);
void keel__stress_snapshot_free(keel__stress_snapshot *snap);

/*
 * The line that replays a spec and seed, for a POSIX shell: KEEL_OPTIONS=WORD, where WORD is
 * "stress=SPEC;stress.seed=SEED" (SPEC double-quoted for KEEL_OPTIONS when it must be) as one
 * shell word, single-quoted when it must be.  Written into buf as snprintf does (at most size
 * bytes, NUL-terminated when size > 0); returns its length, so a return >= size means it did not
 * fit.  No malloc: a report of a stress point that fired inside the allocator calls it.
 */
size_t keel__stress_replay(const char *spec, unsigned long long seed, char *buf, size_t size);

KEEL_EXTERN_C_END

#endif /* KEEL_SRC_STRESS_H */
