/*
 * gate/cli/text.h - text that anyone who can push may have written (branch and
 * file names, commit subjects, job logs, a remote's or a hook's messages,
 * a configuration's offending line), made safe for where keel-gate prints it.
 *
 * For a terminal (gate_text_*): valid UTF-8 is copied as it is, except
 *   - C0 controls (U+0000..U+001F) and DEL as \xHH (ESC is \x1b), but newline
 *     and tab in GATE_TEXT_BLOCK mode (a job's log printed whole);
 *   - C1 controls (U+0080..U+009F, a CSI on terminals that take 8-bit
 *     controls) and the bidirectional formatting characters (U+061C,
 *     U+200E, U+200F, U+202A..U+202E, U+2066..U+2069: they reorder what
 *     follows on the screen) and U+2028, U+2029 as \u{HHHH};
 *   - each byte that is not part of valid UTF-8 (overlong forms, surrogates,
 *     beyond U+10FFFF, a truncated sequence) as \xHH.
 * A backslash is not escaped: the result is for reading, not for parsing.
 *
 * For JSON (gate_json_*): always a valid JSON string: '"' and '\' escaped,
 * newline as \n, tab as \t, every other character the terminal escaping
 * would escape as \u00XX / \uHHHH (so a JSON document is safe to print
 * too), and each invalid byte as U+FFFD (\ufffd).
 */
#ifndef KEEL_GATE_TEXT_H
#define KEEL_GATE_TEXT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "keel/keel.h"

enum gate_text_flags {
    GATE_TEXT_LINE = 0,  /* escape every control character */
    GATE_TEXT_BLOCK = 1, /* a block of text: newline and tab kept */
    GATE_TEXT_MORE = 2   /* gate_text_fput: more input follows this piece */
};

/*
 * Write s[0..len) escaped for a terminal to f.  Returns how many bytes it
 * took: all of them, unless GATE_TEXT_MORE is given and s ends inside a UTF-8
 * sequence that the next piece may complete (at most 3 bytes left: pass them
 * again in front of the next piece).
 */
size_t gate_text_fput(FILE *f, const char *s, size_t len, unsigned flags);

/*
 * printf to a terminal: the formatted text escaped whole (GATE_TEXT_LINE)
 * but for one final newline, written under the stream's lock (one line is
 * never interleaved with another thread's).  Text past 8 KiB is cut, "..."
 * marks it.
 */
void gate_text_printf(FILE *f, const char *fmt, ...) KEEL_PRINTF(2, 3);
void gate_text_vprintf(FILE *f, const char *fmt, va_list ap) KEEL_PRINTF(2, 0);

/*
 * While `text` is longer than `fit` bytes, its longest quoted run ('...') of
 * more than 67 bytes is cut to its first 64 (not inside a UTF-8 character)
 * and '...': a key, value, name or argument of thousands of bytes would
 * otherwise push a message's reason past the end of its buffer (the rule
 * broken, the nearest known key).  The longest first, so that the message's
 * own words are the last a cut could reach.
 */
void gate_text_cut_quoted(char *text, size_t fit);

/* A quoted subject gate_text_cut_quoted cuts keeps this many bytes, then '...'. */
#define GATE_TEXT_SUBJECT_SHOWN 64

/*
 * `fmt` with `ap` into out[0..size), as vsnprintf does, except that a message
 * longer than that is made whole on module `heap`'s heap and its quoted
 * subjects cut (gate_text_cut_quoted) until it fits, so that its reason
 * survives an argument or a line of thousands of bytes (plainly cut when
 * there is no memory for it).  `ap` is the caller's to end.
 */
void gate_text_vfit(const keel_module *heap, char *out, size_t size, const char *fmt, va_list ap)
    KEEL_PRINTF(4, 0);

/*
 * The columns `s` takes on a terminal once escaped as gate_text_printf
 * escapes it: a character one, an escape as many as it has ("\xff": 4,
 * "\u{202e}": 8).  A wide (East Asian) character is counted as one.
 */
size_t gate_text_width(const char *s);

/*
 * The blanks after `s` that make it `columns` wide (0 when it is as wide or
 * wider), for "%s%*s" with "": printf's "%-32s" pads by bytes, and a name
 * shown escaped or with characters of several bytes moved the next column.
 */
int gate_text_pad(const char *s, int columns);

/* Write s as a JSON string (quotes included) to f. */
void gate_json_fput(FILE *f, const char *s);

/*
 * The room gate_json_str needs for n bytes of text: every byte may become six
 * (\u00XX), plus the quotes and the NUL.
 */
#define GATE_JSON_ROOM(n) (6 * (size_t)(n) + 3)

#endif /* KEEL_GATE_TEXT_H */
