/*
 * gate/config.h - keel-gate's configuration: `.keel/gate.conf` in the guarded
 * repository, read from the tree under test (so configuration changes are
 * gated like any other change).
 *
 *   # .keel/gate.conf
 *   [gate]
 *   target     = main          # the branch the gate guards
 *   slots      = 4             # executor slots (default: the number of cores)
 *   strategy   = adaptive      # serial | batch | speculative | speculative-batch | adaptive
 *   max-batch  = 8             # most changes tested together
 *   max-depth  = 4             # most candidates tested ahead speculatively
 *   retries    = 1             # reruns of a failed job before anything is blamed
 *   crash-limit = 3            # the gate died this many times in a row testing a change:
 *                              # it is quarantined (rejected); 0: never
 *   notify     = tools/notify --channel ci    # run with a JSON event on stdin
 *
 *   [config gcc-devel]
 *   build    = cmake --preset devel -DCMAKE_C_COMPILER=gcc
 *   test     = ctest --preset devel
 *   env      = CC=gcc KEEL_OPTIONS="report.lock-order=abort"
 *   timeout  = 900             # seconds, build and test together
 *   required = yes             # must pass to land (default yes)
 *
 * Commands and env are split into words like a shell would split them
 * (blanks separate, '...' and "..." quote, \ escapes) but no shell ever runs
 * them: they are executed directly.  Errors name the file, the line and the
 * key, with the nearest known key when a key is misspelled.
 */
#ifndef KEEL_GATE_CONFIG_H
#define KEEL_GATE_CONFIG_H

#include "keel/keel.h"

typedef enum gate_strategy {
    GATE_STRATEGY_SERIAL,
    GATE_STRATEGY_BATCH,
    GATE_STRATEGY_SPECULATIVE,
    GATE_STRATEGY_SPECULATIVE_BATCH,
    GATE_STRATEGY_ADAPTIVE
} gate_strategy;

/* A NULL-terminated vector of words (all stored in one block). */
typedef struct gate_words {
    char **words;
    size_t n;
} gate_words;

enum { GATE_MAX_CONFIGS = 64 };

enum { GATE_CONFIG_NAME_MAX = 65, GATE_BRANCH_MAX = 256 };

typedef struct gate_matrix_config {
    char name[GATE_CONFIG_NAME_MAX];
    gate_words build;
    gate_words test;
    gate_words env; /* NAME=value words */
    unsigned timeout_s;
    bool required;
} gate_matrix_config;

typedef struct gate_config {
    char target[GATE_BRANCH_MAX];
    bool target_set; /* [gate] target was given (else target is "main", unused) */
    unsigned slots;  /* 0: the number of cores */
    gate_strategy strategy;
    unsigned max_batch;
    unsigned max_depth;
    unsigned retries;
    unsigned crash_limit; /* quarantine a change after this many gate deaths (0: never) */
    gate_words notify;    /* empty: no hook */
    gate_matrix_config configs[GATE_MAX_CONFIGS];
    size_t nconfigs;
} gate_config;

/* Parse a configuration; `origin` names it in errors ("main:.keel/gate.conf"). */
KEEL_MUST_USE keel_status gate_config_parse(const char *text, size_t len, const char *origin,
                                            gate_config **out);
void gate_config_free(gate_config *c);

const char *gate_strategy_name(gate_strategy s);

/* Split a command line into words (no shell): quotes and backslashes as above. */
KEEL_MUST_USE keel_status gate_words_split(const char *text, gate_words *out);
void gate_words_free(gate_words *w);

#endif /* KEEL_GATE_CONFIG_H */
