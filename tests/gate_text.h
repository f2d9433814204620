/*
 * tests/gate_text.h - what keel-gate's output tests check: that text meant
 * for a terminal holds no control character, no C1 control and no invalid
 * UTF-8 (gate_text_unsafe), and that JSON parses with a real parser
 * (libjansson, strict: invalid UTF-8 and NUL in strings are errors).  Without
 * libjansson (make deps installs it) the JSON checks fall back on testutil.h's
 * small validator plus the UTF-8 check.
 */
#ifndef KEEL_TEST_GATE_TEXT_H
#define KEEL_TEST_GATE_TEXT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#if KEEL_TEST_HAVE_JANSSON
#include <jansson.h>
#endif

/*
 * NULL when `text` is safe for a terminal: valid UTF-8, no C0 control but
 * newline (and tab when `tabs`), no DEL, no C1 control (U+0080..U+009F);
 * else a description of the first offence.
 */
static inline const char *gate_text_unsafe(const char *text, bool tabs, char *why, size_t size)
{
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; p[i] != '\0';) {
        unsigned c = p[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        unsigned cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                n = 0;
                break;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (n == 0 || cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            (void)snprintf(why, size, "invalid UTF-8 byte 0x%02x at %zu", c, i);
            return why;
        }
        bool control = (cp < 0x20 && cp != '\n' && !(tabs && cp == '\t')) || cp == 0x7f ||
                       (cp >= 0x80 && cp <= 0x9f);
        if (control) {
            (void)snprintf(why, size, "control character U+%04X at %zu", cp, i);
            return why;
        }
        i += n;
    }
    return NULL;
}

/* `text` with every byte but printable ASCII and newline as '?': safe to show in a failure. */
static inline const char *gate_text_shown(const char *text)
{
    static char shown[16384];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0' && n + 1 < sizeof(shown);
         p++)
        shown[n++] = (*p >= 0x20 && *p < 0x7f) || *p == '\n' ? (char)*p : '?';
    shown[n] = '\0';
    return shown;
}

static inline void gate_assert_text_safe(const char *what, const char *text, bool tabs)
{
    char why[96];
    if (gate_text_unsafe(text, tabs, why, sizeof(why)) != NULL)
        fail_msg("%s is not safe for a terminal: %s in:\n%s", what, why, gate_text_shown(text));
}

/* `text` is one JSON value for a strict parser. */
static inline void gate_assert_json(const char *what, const char *text)
{
#if KEEL_TEST_HAVE_JANSSON
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (v == NULL)
        fail_msg("%s is not valid JSON: %s (line %d, column %d, position %d) in:\n%s", what, e.text,
                 e.line, e.column, e.position, gate_text_shown(text));
    json_decref(v);
#else
    char why[96];
    if (!keel_test_json_valid(text) || gate_text_unsafe(text, true, why, sizeof(why)) != NULL)
        fail_msg("%s is not valid JSON (checked without libjansson) in:\n%s", what,
                 gate_text_shown(text));
#endif
}

#endif /* KEEL_TEST_GATE_TEXT_H */
