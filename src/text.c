/*
 * text.c - bounded text building shared by the status printer, the report
 * channel and the option parser (nothing there allocates), and reading an
 * option file.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* A letter in lower case: case is no edit (a name differing only in case is misspelt). */
static unsigned char folded(char c)
{
    unsigned char u = (unsigned char)c;
    return u >= 'A' && u <= 'Z' ? (unsigned char)(u - 'A' + 'a') : u;
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
            size_t cost = folded(a[i - 1]) == folded(b[j - 1]) ? 0u : 1u;
            size_t best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && folded(a[i - 1]) == folded(b[j - 2]) &&
                folded(a[i - 2]) == folded(b[j - 1]) && prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
    }
    return rows[(la + 1) % 3][lb];
}

static const char *file_type_name(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "not a regular file";
}

/* "cannot open option file 'x' (ENOENT): No such file or directory", errno details */
static keel_status file_error(int e, const char *verb, const char *what, const char *path)
{
    const char *name = strerrorname_np(e);
    return keel_status_with_str(
        KEEL_ERR_SYS(e, "cannot %s %s '%s' (%s)", verb, what, path, name != NULL ? name : "?"),
        "path", path);
}

/*
 * An option or stress file: a regular file only (opened without blocking, so
 * that a FIFO with no writer is an error and not a hang), of at most max bytes.
 * Every failure says why, with the errno name where there is one.
 */
keel_status keel__read_text_file(const char *path, size_t max, const char *what, char **out,
                                 size_t *len)
{
    KEEL_ASSERT(path != NULL && what != NULL && out != NULL && len != NULL);
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return file_error(errno, "open", what, path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        (void)close(fd);
        return file_error(e, "stat", what, path);
    }
    if (!S_ISREG(st.st_mode)) {
        (void)close(fd);
        return keel_status_with_str(KEEL_ERR(KEEL_E_INVAL,
                                             "%s '%s' is %s: it must be a regular file", what, path,
                                             file_type_name(st.st_mode)),
                                    "path", path);
    }
    if ((unsigned long long)st.st_size > (unsigned long long)max) {
        (void)close(fd);
        return keel_status_with_uint(KEEL_ERR(KEEL_E_RANGE,
                                              "%s '%s' is larger than %zu bytes (%lld bytes)", what,
                                              path, max, (long long)st.st_size),
                                     "max", (unsigned long long)max);
    }
    char *buf = (char *)malloc(max + 1);
    if (buf == NULL) {
        (void)close(fd);
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory reading %s '%s'", what, path);
    }
    size_t n = 0;
    while (n <= max) { /* one byte past max tells a file that grew since fstat */
        ssize_t got = read(fd, buf + n, max + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            (void)close(fd);
            return file_error(e, "read", what, path);
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    (void)close(fd);
    if (n > max) {
        free(buf);
        return KEEL_ERR(KEEL_E_RANGE, "%s '%s' is larger than %zu bytes", what, path, max);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return KEEL_OK;
}
