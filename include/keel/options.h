/*
 * keel/options.h - one option string for every runtime setting.
 *
 * All of keel's runtime settings come from the KEEL_OPTIONS environment
 * variable, read once, or from keel_options_set() at start-up:
 *
 *   KEEL_OPTIONS='report.file=/tmp/keel.jsonl; report.lock-order=abort; assert.expensive'
 *
 * Syntax: items separated by ';'.  An item is `name=value`, or a bare `name`
 * for a boolean that is switched on.  Blanks around names and values are
 * ignored.  A value may be double-quoted to hold ';' or blanks ("a;b", with
 * \" and \\ as escapes).  Names are dotted lower-case words.  A string is
 * taken all or nothing: if any item is malformed, none of it is applied and
 * the error names the bad token, its position, and the nearest option name
 * when the name is misspelled.
 *
 * `keel_options_print(stderr)` lists every option with its type, default,
 * current value and meaning; docs/options.md has the same table.
 */
#ifndef KEEL_OPTIONS_H
#define KEEL_OPTIONS_H

#include <stdio.h>

#include "keel/common.h"
#include "keel/status.h"

KEEL_EXTERN_C_BEGIN

/*
 * Read KEEL_OPTIONS (once per process; later calls return the first result).
 * Every keel entry point does this lazily, reporting a malformed string
 * through the report channel (kind "options"); call keel_init() first thing
 * in main() to get that error as a status instead.
 */
KEEL_API KEEL_MUST_USE keel_status keel_init(void);

/* Parse and apply an option string, after (and over) KEEL_OPTIONS.  All or nothing. */
KEEL_API KEEL_MUST_USE keel_status keel_options_set(const char *text);

/*
 * Read an option file: the same items, one or more per line, '#' where a
 * name is expected starts a comment (after a value it is part of the value:
 * put a comment on a line of its own, or end the item with ';' first).
 * Errors name the file and line.  All or nothing.  A regular file
 * of at most 1 MiB (a FIFO, a device or a directory is refused at once,
 * KEEL_E_INVAL); a file that cannot be read is KEEL_E_SYS naming errno.
 */
KEEL_API KEEL_MUST_USE keel_status keel_options_load(const char *path);

/* The current value of an option rendered as text (KEEL_E_NOTFOUND for an unknown name). */
KEEL_API KEEL_MUST_USE keel_status keel_options_get(const char *name, char *buf, size_t size);

/* Print every option: name, type, default, current value, meaning. */
KEEL_API void keel_options_print(FILE *f);

/*
 * The candidate nearest to `word` by edit distance (transpositions count as
 * one, a letter's case as none: "GATE" finds "gate"), or NULL when none is
 * close enough to be a likely misspelling.  For
 * "did you mean" hints in programs' own option and config parsers.
 */
KEEL_API const char *keel_suggest(const char *word, const char *const *candidates, size_t n);

KEEL_EXTERN_C_END

#endif /* KEEL_OPTIONS_H */
