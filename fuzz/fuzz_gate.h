/*
 * fuzz/fuzz_gate.h - what keel-gate's fuzz targets (fuzz_gate_*.c) share:
 * libgit2 initialised once (LLVMFuzzerInitialize), a failed property aborts
 * with the input shown, a growable string, and a UTF-8 decoder written apart
 * from gate/cli/text.c's (so the escaping is checked against a second reading
 * of the standard, not against itself).
 */
#ifndef KEEL_FUZZ_GATE_H
#define KEEL_FUZZ_GATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * Run once before the first input: one libgit2 reference for the whole run, so
 * that what the gate's code initialises and shuts down costs nothing per input.
 */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (git_libgit2_init() < 0)
        abort();
    return 0;
}

/* The input under test, shown when a property fails (each target sets it first). */
static const void *fuzz_input;
static size_t fuzz_input_len;

/* The input under test from now on. */
static inline void fuzz_begin(const uint8_t *data, size_t size)
{
    fuzz_input = data;
    fuzz_input_len = size;
}

/* A property does not hold: say which, with the input (escaped), and abort (libFuzzer keeps it). */
static inline void fuzz_fail(int line, const char *what, const void *input, size_t len)
{
    const unsigned char *p = (const unsigned char *)input;
    fprintf(stderr, "\nproperty failed (line %d): %s\ninput (%zu bytes): \"", line, what, len);
    for (size_t i = 0; i < len && i < 4096; i++)
        fprintf(stderr,
                p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '"' ? "%c" : "\\x%02x",
                p[i]);
    fprintf(stderr, "\"\n");
    abort();
}

/* Check a property of the input under test. */
#define FUZZ_CHECK(cond, what) \
    ((cond) ? (void)0 : fuzz_fail(__LINE__, (what), fuzz_input, fuzz_input_len))

/* A copy of exactly data[0..len) on the heap, so ASan sees any read past it (free it). */
static inline char *fuzz_copy(const uint8_t *data, size_t len)
{
    char *p = (char *)malloc(len != 0 ? len : 1);
    if (p == NULL)
        abort();
    if (len != 0)
        memcpy(p, data, len);
    return p;
}

/* data[0..len) up to its first NUL as a C string on the heap (free it). */
static inline char *fuzz_cstring(const uint8_t *data, size_t len)
{
    size_t n = strnlen((const char *)data, len);
    char *p = (char *)malloc(n + 1);
    if (p == NULL)
        abort();
    memcpy(p, data, n);
    p[n] = '\0';
    return p;
}

/* A growable string of bytes (NUL-terminated; may hold NULs). */
typedef struct fuzz_str {
    char *p;
    size_t len, cap;
} fuzz_str;

static inline void fuzz_add(fuzz_str *s, const void *bytes, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *p = (char *)realloc(s->p, cap);
        if (p == NULL)
            abort();
        s->p = p;
        s->cap = cap;
    }
    if (n > 0)
        memcpy(s->p + s->len, bytes, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static inline void fuzz_adds(fuzz_str *s, const char *text)
{
    fuzz_add(s, text, strlen(text));
}

static inline void fuzz_addf(fuzz_str *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void fuzz_addf(fuzz_str *s, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        abort();
    fuzz_add(s, buf, (size_t)n);
}

static inline void fuzz_str_free(fuzz_str *s)
{
    free(s->p);
    memset(s, 0, sizeof(*s));
}

/*
 * The character at p[0..avail): its length (1 to 4) and code point when the
 * bytes there are one well-formed UTF-8 sequence (the shortest form, no
 * surrogate, at most U+10FFFF); 0 when they are not.  Decoded first, judged
 * after: the length the lead byte announces, every continuation byte
 * 10xxxxxx, then the value against the range that length may encode.
 */
static inline size_t fuzz_utf8(const unsigned char *p, size_t avail, uint32_t *cp)
{
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    unsigned lead = p[0];
    size_t n = lead < 0x80                   ? 1
               : lead >= 0xc0 && lead < 0xe0 ? 2
               : lead >= 0xe0 && lead < 0xf0 ? 3
               : lead >= 0xf0 && lead < 0xf8 ? 4
                                             : 0;
    if (n == 0 || n > avail)
        return 0;
    uint32_t v = n == 1 ? lead : lead & (0xffu >> (n + 1));
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (p[k] & 0x3fu);
    }
    if (v < least[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/*
 * The characters text.h promises never reach a terminal or a JSON document
 * raw: C0 controls, DEL, C1 controls, the bidirectional formatting ones,
 * the line and paragraph separators.
 */
static inline bool fuzz_unsafe(uint32_t cp)
{
    static const uint32_t ranges[][2] = {{0x00, 0x1f},     {0x7f, 0x9f},     {0x61c, 0x61c},
                                         {0x200e, 0x200f}, {0x2028, 0x202e}, {0x2066, 0x2069}};
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1])
            return true;
    return false;
}

#endif /* KEEL_FUZZ_GATE_H */
