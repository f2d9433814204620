/*
 * gate/config_int.h - what the parts of gate.conf's parser share: the parse
 * state and the functions one part calls in another.  Not an API.
 *
 *   config.c           lines, sections, the whole file's rules; parse, check, free
 *   config_values.c    names, sizes, durations, and the values keys take
 *   config_sections.c  the keys of [gate] and [config NAME]
 *   config_flow.c      [flow A -> B]: its keys and the flows' own rules
 *   config_words.c     a command's words
 */
#ifndef KEEL_GATE_CONFIG_INT_H
#define KEEL_GATE_CONFIG_INT_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

/* SECTION_SKIP: a section whose header was refused (gate_config_check reads none of its keys). */
typedef enum section_kind {
    SECTION_NONE,
    SECTION_GATE,
    SECTION_CONFIG,
    SECTION_FLOW,
    SECTION_SKIP
} section_kind;

enum { SECTION_KEYS_MAX = 64 };

typedef struct gate_config_state {
    const char *origin;
    size_t line;
    const char *line_text; /* the line being read (columns are counted from it) */
    gate_config *cfg;
    section_kind section;
    bool seen_gate;
    size_t gate_line;                  /* where [gate] starts */
    char header[128];                  /* the section's header as written: "[config a]" */
    char keys[SECTION_KEYS_MAX][32];   /* the keys of this section so far (a longer one is */
    size_t key_line[SECTION_KEYS_MAX]; /*   unknown anyway), and where each was given */
    size_t nkeys;
    size_t config_line[GATE_MAX_CONFIGS];   /* where each [config NAME] starts, for validate() */
    bool command_refused[GATE_MAX_CONFIGS]; /* its build or test was refused (an error said) */
    gate_config_error_fn report;            /* gate_config_check's: every error, not the first */
    void *report_ctx;
    size_t errors;                          /* how many were reported */
    bool flow_interval_set[GATE_MAX_FLOWS]; /* `interval` given (checked against `trigger`) */
    char key_of[GATE_BRANCH_MAX * 2 + 16];  /* "[flow A -> B] ": what a key's error names first */
} gate_config_state;

/* ---- config.c ---------------------------------------------------------------------------- */

/* "<origin>:<line>: <the key's section, for a flow's keys><what>", the line attached */
keel_status gate__config_errf(const gate_config_state *st, keel_code code, const char *fmt, ...)
    KEEL_PRINTF(3, 4);

/* Blanks off both ends (and a CR off the end), but a blank a backslash escapes: it is a word's. */
char *gate__config_trim(char *s);
/*
 * An error of the configuration's (`s`, taken): gate_config_parse's result;
 * gate_config_check reports it and goes on (KEEL_OK).  The gate's own
 * failures (memory) end both.
 */
keel_status gate__config_found(gate_config_state *st, keel_status s);

/* ---- config_values.c ---------------------------------------------------------------------- */

/* A character of a variable's name (a command's NAME=value, as a shell reads one). */
bool gate__config_name_char(char c);
keel_status gate__config_parse_uint(const gate_config_state *st, const char *key, const char *value,
                                    unsigned lo, unsigned hi, unsigned *out);
/* yes/true/1 or no/false/0 */
keel_status gate__config_parse_bool(const gate_config_state *st, const char *key, const char *value,
                                    bool *out);
/* A key's words (gate_words_split) into *w, which they replace (a key given twice: the last) */
keel_status gate__config_set_words(const gate_config_state *st, const char *key, const char *value,
                                   gate_words *w);
/*
 * A command (build, test, notify): its words, refused when it holds shell
 * syntax (gate_words_shell) or starts with a variable's assignment
 * (NAME=value), which only a shell would understand: no shell runs it.
 */
keel_status gate__config_set_command(const gate_config_state *st, const char *key,
                                     const char *value, gate_words *w);
/* Is `name` usable as a configuration name (shown in logs, used in file names)? */
bool gate__config_good_name(const char *name);
/* Why good_name refuses `name`, for the error. */
const char *gate__config_bad_name_why(const char *name);
/* A limit key (memory, processes, ...) into `l`; *bit set to its GATE_LIMIT_* bit.  NOTFOUND: not one. */
keel_status gate__config_limit_key_parse(const gate_config_state *st, const char *key,
                                         const char *value, gate_limits *l, unsigned *bit);
/* The limits [config NAME] `m` did not set: `defaults`' ([gate]'s). */
void gate__config_limits_inherit(gate_matrix_config *m, const gate_limits *defaults);
/* `pass-env`: variable names, none of those a job must never get. */
keel_status gate__config_set_pass_env(const gate_config_state *st, const char *value,
                                      gate_words *w);
/* ": <the reason>" when gate_branch_why has one for `name` (into buf), else "". */
const char *gate__config_branch_reason(const char *name, char *buf, size_t size);
/*
 * Whether `name` is refused as a branch (the gate's own rule, empty, or
 * `size` bytes or longer) in *refused; an error only when the check itself
 * failed, in the context of `what` (the key or section being read).
 */
keel_status gate__config_branch_refused(const gate_config_state *st, const char *what,
                                        const char *name, size_t size, bool *refused);
/* `targets`: branch names, each once, at most GATE_MAX_TARGETS (one gate, several targets). */
keel_status gate__config_set_targets(const gate_config_state *st, const char *value, gate_words *w);
/* `writable`: absolute paths a job may write, none of /, /proc, /sys, /dev or under them. */
keel_status gate__config_set_writable(const gate_config_state *st, const char *value,
                                      gate_words *w);
/* The Slurm request keys of [config NAME]; KEEL_E_NOTFOUND when `key` is none of them. */
keel_status gate__config_slurm_key(const gate_config_state *st, const char *key, const char *value,
                                   gate_slurm_request *r);
/* `levels = gate post ...`: one or more level names, each once. */
keel_status gate__config_set_levels(const gate_config_state *st, const char *value, unsigned *out);
/* The automatic backout's [gate] keys; KEEL_E_NOTFOUND when `key` is none of them. */
keel_status gate__config_backout_key(const gate_config_state *st, const char *key,
                                     const char *value, gate_config *c);
/* `ccache-size`: a size (0: no compiler cache), at least 1M when not 0 (ccache's own floor). */
keel_status gate__config_set_ccache_size(const gate_config_state *st, const char *value,
                                         unsigned long long *out);
/* `strategy`: serial, batch, speculative, speculative-batch or adaptive. */
keel_status gate__config_set_strategy(const gate_config_state *st, const char *value,
                                      gate_strategy *out);

/* ---- config_sections.c -------------------------------------------------------------------- */

/* The keys of [flow A -> B] (config_flow.c reads them) */
extern const char *const gate__config_flow_keys[];
extern const size_t gate__config_nflow_keys;
bool gate__config_key_in(const char *key, const char *const *keys, size_t n);
/* `key`, not one of `keys` (those of [`section`]): the error says where it belongs, or a near one */
keel_status gate__config_unknown_key(const gate_config_state *st, const char *key,
                                     const char *const *keys, size_t n, const char *section);
/* A key of [gate] / of the last [config NAME] */
keel_status gate__config_gate_key(gate_config_state *st, const char *key, const char *value);
keel_status gate__config_config_key(gate_config_state *st, const char *key, const char *value);

/* ---- config_flow.c ------------------------------------------------------------------------ */

/* `[flow SRC -> DST]` (`name` without the brackets): a new flow with the defaults. */
keel_status gate__config_open_flow(gate_config_state *st, char *name);
/* A key of the last [flow A -> B]: its errors begin with "[flow A -> B] " */
keel_status gate__config_flow_key(gate_config_state *st, const char *key, const char *value);
/* The flows' own rules: back-merges made, none twice, no cycle but a two-way pair. */
keel_status gate__config_validate_flows(gate_config_state *st);

#endif /* KEEL_GATE_CONFIG_INT_H */
