/*
 * signature.c - a failed job's failure signature (signature.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_exec"
#include "signature.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Is [p, end) a unit of a quantity (a size, a time)?  After a number it is
 * not hashed: the same quantity reads "4 MiB" on one run and "3.9 MiB" or
 * "900 KiB" on the next (the gate's own "peak memory" line).
 */
static bool is_unit(const char *p, const char *end)
{
    static const char *const units[] = {"bytes", "B",   "KiB",  "MiB", "GiB",  "TiB", "kB",
                                        "KB",    "MB",  "GB",   "TB",  "ns",   "us",  "ms",
                                        "s",     "sec", "secs", "min", "mins", "h"};
    while (end > p &&
           (end[-1] == ',' || end[-1] == ';' || end[-1] == ')' || end[-1] == ']' || end[-1] == '.'))
        end--; /* "3 ms," "(1 s)" "[1 s]" */
    size_t n = (size_t)(end - p);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strlen(units[i]) == n && memcmp(units[i], p, n) == 0)
            return true;
    return false;
}

static unsigned long long fnv(unsigned long long h, char c)
{
    return (h ^ (unsigned char)c) * 1099511628211ull;
}

/* Hash one line [p, end) normalised (signature.h) into h. */
static unsigned long long line_hash(unsigned long long h, const char *p, const char *end)
{
    bool blank = false;
    bool number = false; /* the last token ended in a number: a unit may follow */
    while (p < end) {
        if (is_blank(*p)) {
            blank = true;
            p++;
            continue;
        }
        const char *tok = p; /* a token: up to the next blank */
        while (p < end && !is_blank(*p))
            p++;
        const char *slash = NULL;
        for (const char *q = tok; q < p; q++)
            if (*q == '/')
                slash = q;
        if (slash != NULL)
            tok = slash + 1; /* a path: what its last '/' leaves */
        if (number && is_unit(tok, p)) {
            number = false; /* "4 MiB": the quantity's unit, as "4MiB" */
            continue;
        }
        if (blank)
            h = fnv(h, ' ');
        blank = false;
        bool ends = false; /* this token ends in a number ("4", "(1", "rss=4", "4,") */
        for (const char *q = tok; q < p;) {
            if (is_hex(*q)) {
                const char *r = q;
                bool digit = false;
                /* hex digits, and a decimal's point or comma between digits: "3.9", "1,5" */
                while (r < p && (is_hex(*r) || ((*r == '.' || *r == ',') && r > q &&
                                                is_digit(r[-1]) && r + 1 < p && is_digit(r[1])))) {
                    digit = digit || is_digit(*r);
                    r++;
                }
                if (digit) {
                    h = fnv(h, '#');
                    ends = true;
                    q = r;
                    if (q < p && is_unit(q, p))
                        q = p; /* "12ms": its unit */
                    continue;
                }
                ends = false;
                for (; q < r; q++)
                    h = fnv(h, *q);
                continue;
            }
            ends = ends && *q == ',' && q + 1 == p; /* "4," ends in a number still */
            h = fnv(h, *q++);
        }
        number = ends;
    }
    return fnv(h, '\n');
}

unsigned long long gate_signature_of(const char *text, size_t len)
{
    KEEL_ASSERT(text != NULL || len == 0);
    /* back from the end: the start of the last GATE_SIGNATURE_LINES non-empty lines */
    const char *end = text + len, *start = end;
    unsigned lines = 0;
    const char *p = end;
    while (p > text && lines < GATE_SIGNATURE_LINES) {
        const char *le = p;
        while (p > text && p[-1] != '\n')
            p--;
        bool empty = true;
        for (const char *q = p; q < le && empty; q++)
            empty = is_blank(*q) || *q == '\n';
        if (!empty) {
            lines++;
            start = p;
        }
        if (p > text)
            p--; /* the '\n' before it */
    }
    unsigned long long h = 1469598103934665603ull;
    for (p = start; p < end;) {
        const char *le = (const char *)memchr(p, '\n', (size_t)(end - p));
        if (le == NULL)
            le = end;
        bool empty = true;
        for (const char *q = p; q < le && empty; q++)
            empty = is_blank(*q);
        if (!empty)
            h = line_hash(h, p, le);
        p = le < end ? le + 1 : end;
    }
    return h | 1;
}

keel_status gate_log_signature(const char *path, unsigned long long *sig)
{
    KEEL_ASSERT(path != NULL && sig != NULL);
    *sig = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return KEEL_ERR_SYS(errno, "cannot read the log '%s'", path);
    char buf[GATE_SIGNATURE_TAIL];
    size_t got = 0;
    keel_status s = KEEL_OK;
    if (fseek(f, 0, SEEK_END) != 0)
        s = KEEL_ERR_SYS(errno, "cannot read the log '%s'", path);
    long size = keel_ok(s) ? ftell(f) : -1;
    if (keel_ok(s) && size < 0)
        s = KEEL_ERR_SYS(errno, "cannot read the log '%s'", path);
    long from = size > (long)sizeof(buf) ? size - (long)sizeof(buf) : 0;
    if (keel_ok(s) && fseek(f, from, SEEK_SET) != 0)
        s = KEEL_ERR_SYS(errno, "cannot read the log '%s'", path);
    if (keel_ok(s)) {
        got = fread(buf, 1, sizeof(buf), f);
        if (ferror(f))
            s = KEEL_ERR(KEEL_E_IO, "cannot read the log '%s'", path);
    }
    (void)fclose(f);
    if (!keel_ok(s))
        return s;
    const char *text = buf;
    if (from > 0) { /* a partial first line: skip it */
        const char *nl = (const char *)memchr(buf, '\n', got);
        got = nl != NULL ? got - (size_t)(nl + 1 - buf) : 0;
        text = nl != NULL ? nl + 1 : buf;
    }
    *sig = gate_signature_of(text, got);
    return KEEL_OK;
}

/* A log's last lines (signature.h). */
bool gate_log_tail(const char *path, unsigned nlines, char *buf, size_t size, bool *whole)
{
    KEEL_ASSERT(path != NULL && buf != NULL && whole != NULL && size > 2);
    *whole = true;
    buf[0] = '\0';
    FILE *in = path[0] != '\0' ? fopen(path, "r") : NULL;
    if (in == NULL)
        return false;
    long room = (long)(size - 2), end = 0;
    bool cut = fseek(in, 0, SEEK_END) == 0 && (end = ftell(in)) > room &&
               fseek(in, end - room, SEEK_SET) == 0;
    if (!cut)
        rewind(in);
    size_t got = fread(buf, 1, size - 2, in);
    (void)fclose(in);
    while (got > 0 && buf[got - 1] == '\n')
        got--;
    size_t from = got;
    for (unsigned lines = 0; from > 0 && lines < nlines; lines++) {
        from--;
        while (from > 0 && buf[from - 1] != '\n')
            from--;
    }
    if (from == 0 && cut) { /* the first line read is most likely cut */
        const char *nl = (const char *)memchr(buf, '\n', got);
        from = nl != NULL ? (size_t)(nl + 1 - buf) : got;
    }
    *whole = from == 0 && !cut;
    size_t len = got - from;
    memmove(buf, buf + from, len);
    if (len > 0)
        buf[len++] = '\n';
    buf[len] = '\0';
    return true;
}
