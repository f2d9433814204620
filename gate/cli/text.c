/*
 * text.c - attacker-controlled text made safe for a terminal and for JSON
 * (text.h): one UTF-8 decoder and one escaper for both.
 */
#define _GNU_SOURCE 1
#include "text.h"

#include <string.h>

#include "gate.h"

/* Where escaped text goes: a stream, or a buffer filled snprintf-like. */
typedef struct sink {
    FILE *f;
    char *buf;
    size_t size;
    size_t len; /* what the whole text needs */
    size_t end; /* buf: where what was written ends */
    bool full;  /* buf: a piece did not fit: nothing more is written (no piece is ever cut) */
} sink;

static void put(sink *k, const char *s, size_t n)
{
    if (k->f != NULL) {
        (void)fwrite(s, 1, n, k->f);
    } else if (!k->full && k->len == k->end && k->len + n < k->size) {
        memcpy(k->buf + k->len, s, n);
        k->end = k->len + n;
    } else {
        k->full = true;
    }
    k->len += n;
}

/*
 * The well-formed UTF-8 sequence at p (avail > 0 bytes there): its length,
 * with its code point in *cp; 0 when the bytes at p are not one, with
 * *partial set when they are the start of one that avail cut short.
 */
static size_t utf8_at(const unsigned char *p, size_t avail, unsigned *cp, bool *partial)
{
    *partial = false;
    unsigned c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n = 0;
    unsigned lo = 0x80, hi = 0xbf; /* the second byte's range (Unicode table 3-7) */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlong forms */
        hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf; /* nothing past U+10FFFF */
    } else {
        return 0;
    }
    unsigned v = c & (n == 2 ? 0x1fu : n == 3 ? 0x0fu : 0x07u);
    for (size_t k = 1; k < n; k++) {
        if (k >= avail) {
            *partial = true;
            return 0;
        }
        unsigned b = p[k];
        if (b < (k == 1 ? lo : 0x80u) || b > (k == 1 ? hi : 0xbfu))
            return 0;
        v = (v << 6) | (b & 0x3fu);
    }
    *cp = v;
    return n;
}

/* Characters that change what a terminal shows beyond themselves. */
static bool unsafe_cp(unsigned cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x61c || cp == 0x200e ||
           cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
           cp == 0x2028 || cp == 0x2029;
}

static bool escaped(unsigned cp, unsigned flags, bool json)
{
    if (json)
        return cp == '"' || cp == '\\' || unsafe_cp(cp);
    if ((flags & GATE_TEXT_BLOCK) != 0 && (cp == '\n' || cp == '\t'))
        return false;
    return unsafe_cp(cp);
}

static void put_escape(sink *k, unsigned cp, bool valid, bool json)
{
    char e[16];
    int n;
    if (json) {
        if (!valid)
            n = snprintf(e, sizeof(e), "\\ufffd");
        else if (cp == '"' || cp == '\\')
            n = snprintf(e, sizeof(e), "\\%c", (char)cp);
        else if (cp == '\n')
            n = snprintf(e, sizeof(e), "\\n");
        else if (cp == '\t')
            n = snprintf(e, sizeof(e), "\\t");
        else
            n = snprintf(e, sizeof(e), "\\u%04x", cp); /* every escaped one is below U+10000 */
    } else if (!valid || cp < 0x80) {
        n = snprintf(e, sizeof(e), "\\x%02x", cp); /* an invalid byte, a C0 control, DEL */
    } else {
        n = snprintf(e, sizeof(e), "\\u{%x}", cp);
    }
    put(k, e, (size_t)n);
}

/* Escape s[0..len) into k; returns how many bytes it took (text.h, GATE_TEXT_MORE). */
static size_t escape(sink *k, const char *text, size_t len, unsigned flags, bool json)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, run = 0; /* [run, i): plain text not written yet (streams only) */
    while (i < len) {
        unsigned cp = 0;
        bool partial = false;
        size_t n = utf8_at(s + i, len - i, &cp, &partial);
        if (n == 0 && partial && (flags & GATE_TEXT_MORE) != 0)
            break;
        if (n > 0 && !escaped(cp, flags, json)) {
            if (k->f == NULL)
                put(k, text + i, n); /* a buffer takes whole characters or nothing */
            i += n;
            if (k->f == NULL)
                run = i;
            continue;
        }
        if (i > run)
            put(k, text + run, i - run);
        put_escape(k, n > 0 ? cp : s[i], n > 0, json);
        i += n > 0 ? n : 1;
        run = i;
    }
    if (i > run)
        put(k, text + run, i - run);
    return i;
}

size_t gate_text_fput(FILE *f, const char *s, size_t len, unsigned flags)
{
    KEEL_ASSERT(f != NULL && (s != NULL || len == 0));
    sink k;
    memset(&k, 0, sizeof(k));
    k.f = f;
    return escape(&k, s, len, flags, false);
}

size_t gate_text_width(const char *s)
{
    KEEL_ASSERT(s != NULL);
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), width = 0;
    for (size_t i = 0; i < len;) {
        unsigned cp = 0;
        bool partial = false;
        size_t n = utf8_at(p + i, len - i, &cp, &partial);
        if (n > 0 && !escaped(cp, GATE_TEXT_LINE, false)) {
            width++;
            i += n;
            continue;
        }
        sink k; /* counts the escape's bytes, writes nothing */
        memset(&k, 0, sizeof(k));
        k.full = true;
        put_escape(&k, n > 0 ? cp : p[i], n > 0, false);
        width += k.len;
        i += n > 0 ? n : 1;
    }
    return width;
}

int gate_text_pad(const char *s, int columns)
{
    size_t width = gate_text_width(s);
    return columns > 0 && width < (size_t)columns ? columns - (int)width : 0;
}

void gate_text_cut_quoted(char *text, size_t fit)
{
    for (size_t len = strlen(text); len > fit; len = strlen(text)) {
        char *best = NULL;
        size_t best_len = 0;
        for (char *p = strchr(text, '\''); p != NULL;) {
            char *close = strchr(p + 1, '\'');
            if (close == NULL)
                break;
            if ((size_t)(close - p - 1) > best_len) {
                best = p + 1;
                best_len = (size_t)(close - p - 1);
            }
            p = strchr(close + 1, '\'');
        }
        if (best == NULL || best_len <= GATE_TEXT_SUBJECT_SHOWN + 3)
            return;
        size_t keep = GATE_TEXT_SUBJECT_SHOWN;
        while (keep > 0 && ((unsigned char)best[keep] & 0xc0) == 0x80)
            keep--; /* best[keep], the first byte cut, starts a character */
        best[keep] = best[keep + 1] = best[keep + 2] = '.';
        memmove(best + keep + 3, best + best_len, strlen(best + best_len) + 1);
    }
}

void gate_text_vfit(const keel_module *heap, char *out, size_t size, const char *fmt, va_list ap)
{
    KEEL_ASSERT(out != NULL && size > 0 && fmt != NULL);
    va_list again;
    va_copy(again, ap);
    int len = vsnprintf(out, size, fmt, ap);
    void *full = NULL;
    if (len >= (int)size && keel_ok(keel_heap_alloc(heap, (size_t)len + 1, &full))) {
        (void)vsnprintf((char *)full, (size_t)len + 1, fmt, again);
        gate_text_cut_quoted((char *)full, size - 1);
        (void)snprintf(out, size, "%s", (const char *)full);
        keel_heap_free(heap, full);
    }
    va_end(again);
}

void gate_text_vprintf(FILE *f, const char *fmt, va_list ap)
{
    KEEL_ASSERT(f != NULL && fmt != NULL);
    char text[8192];
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
    size_t flen = strlen(fmt);
    bool newline = flen > 0 && fmt[flen - 1] == '\n';
    if (newline && (size_t)n == len && len > 0 && text[len - 1] == '\n')
        len--; /* the final newline is the format's own */
    flockfile(f);
    (void)gate_text_fput(f, text, len, GATE_TEXT_LINE);
    if ((size_t)n > len + (newline ? 1 : 0))
        (void)fputs("...", f);
    if (newline)
        (void)fputc('\n', f);
    funlockfile(f);
}

void gate_text_printf(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gate_text_vprintf(f, fmt, ap);
    va_end(ap);
}

void gate_json_fput(FILE *f, const char *s)
{
    KEEL_ASSERT(f != NULL);
    sink k;
    memset(&k, 0, sizeof(k));
    k.f = f;
    const char *t = s != NULL ? s : "";
    put(&k, "\"", 1);
    (void)escape(&k, t, strlen(t), GATE_TEXT_LINE, true);
    put(&k, "\"", 1);
}

size_t gate_json_str(char *buf, size_t size, size_t len, const char *s)
{
    KEEL_ASSERT(buf != NULL || size == 0);
    sink k;
    memset(&k, 0, sizeof(k));
    k.buf = buf;
    k.size = size;
    k.len = k.end = len;
    k.full = len >= size;
    const char *t = s != NULL ? s : "";
    put(&k, "\"", 1);
    (void)escape(&k, t, strlen(t), GATE_TEXT_LINE, true);
    put(&k, "\"", 1);
    if (size > 0 && len < size)
        buf[k.end] = '\0';
    return k.len;
}
