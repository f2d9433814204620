/*
 * text.c - bounded text building shared by the status printer, the report
 * channel and the option parser.  Nothing here allocates.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#include <string.h>

void keel__buf_vprintf(char *buf, size_t size, size_t *pos, const char *fmt, va_list ap)
{
    KEEL_ASSERT(pos != NULL && fmt != NULL);
    KEEL_ASSERT(buf != NULL || size == 0);
    size_t room = *pos < size ? size - *pos : 0;
    int n = vsnprintf(room > 0 ? buf + *pos : NULL, room, fmt, ap);
    if (n > 0)
        *pos += (size_t)n;
}

void keel__buf_printf(char *buf, size_t size, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    keel__buf_vprintf(buf, size, pos, fmt, ap);
    va_end(ap);
}

static void put_char(char *buf, size_t size, size_t *pos, char c)
{
    if (*pos + 1 < size) {
        buf[*pos] = c;
        buf[*pos + 1] = '\0';
    }
    *pos += 1;
}

void keel__buf_json_str(char *buf, size_t size, size_t *pos, const char *s)
{
    KEEL_ASSERT(pos != NULL);
    put_char(buf, size, pos, '"');
    for (const unsigned char *p = (const unsigned char *)(s != NULL ? s : ""); *p != '\0'; p++) {
        switch (*p) {
        case '"':
            keel__buf_printf(buf, size, pos, "\\\"");
            break;
        case '\\':
            keel__buf_printf(buf, size, pos, "\\\\");
            break;
        case '\n':
            keel__buf_printf(buf, size, pos, "\\n");
            break;
        case '\t':
            keel__buf_printf(buf, size, pos, "\\t");
            break;
        case '\r':
            keel__buf_printf(buf, size, pos, "\\r");
            break;
        default:
            if (*p < 0x20)
                keel__buf_printf(buf, size, pos, "\\u%04x", (unsigned)*p);
            else
                put_char(buf, size, pos, (char)*p);
            break;
        }
    }
    put_char(buf, size, pos, '"');
}

size_t keel__edit_distance(const char *a, const char *b)
{
    enum { MAXLEN = 64 };
    KEEL_ASSERT(a != NULL && b != NULL);
    size_t la = strnlen(a, MAXLEN);
    size_t lb = strnlen(b, MAXLEN);
    /* Three rows: two back (for transpositions), one back, current. */
    size_t rows[3][MAXLEN + 1];
    for (size_t j = 0; j <= lb; j++)
        rows[1][j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t *cur = rows[(i + 1) % 3];
        const size_t *prev = rows[i % 3];
        const size_t *prev2 = rows[(i + 2) % 3];
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0u : 1u;
            size_t best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
    }
    return rows[(la + 1) % 3][lb];
}

keel_status keel__read_text_file(const char *path, size_t max, const char *what, char **out,
                                 size_t *len)
{
    KEEL_ASSERT(path != NULL && what != NULL && out != NULL && len != NULL);
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return KEEL_ERR_SYS(errno, "cannot open %s '%s'", what, path);
    char *buf = (char *)calloc(max + 1, 1);
    if (buf == NULL) {
        (void)fclose(f);
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory reading %s '%s'", what, path);
    }
    size_t n = fread(buf, 1, max + 1, f);
    bool failed = ferror(f) != 0;
    (void)fclose(f);
    if (failed || n > max) {
        free(buf);
        if (failed)
            return KEEL_ERR(KEEL_E_IO, "cannot read %s '%s'", what, path);
        return KEEL_ERR(KEEL_E_RANGE, "%s '%s' is larger than %zu bytes", what, path, max);
    }
    *out = buf;
    *len = n;
    return KEEL_OK;
}
