/*
 * tree_names.c - the names a tree entry may have (git.h:
 * gate_tree_name_check): git's own rules for a path component (read-cache.c
 * verify_path with core.protectNTFS and core.protectHFS on, whatever the
 * host), so that a change whose tree git would refuse to check out, or
 * whose checkout would write into a `.git`, is refused before any checkout.
 *
 * libgit2 1.5 applies these rules inside its checkout and index code but
 * exports only git_path_is_gitfile (the .gitmodules, .gitattributes and
 * .gitignore look-alikes), used here; the rest is written once, below.
 */
#define _GNU_SOURCE 1
#include "git.h"

#include <git2.h>
#include <git2/sys/path.h>

#include "heaps.h"
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { MODE_LINK = 0120000, MODE_TYPE = 0170000, SHOWN_MAX = 200 };

#define GIT_HEAP KEEL_MODULE_REF(gate_git)

void gate_tree_name_show(const char *name, size_t len, char *buf, size_t size)
{
    KEEL_ASSERT(buf != NULL && size > 0);
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < len && n + 5 < size; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 0x20 && c < 0x7f) {
            buf[n++] = (char)c;
            continue;
        }
        buf[n++] = '\\';
        buf[n++] = 'x';
        buf[n++] = hex[c >> 4];
        buf[n++] = hex[c & 15];
    }
    buf[n] = '\0';
}

static int lower(char c)
{
    int u = (unsigned char)c;
    return u >= 'A' && u <= 'Z' ? u - 'A' + 'a' : u;
}

/*
 * What NTFS reads as ".git" (git's is_ntfs_dotgit): ".git" or its short name
 * "git~1", in any case, followed only by dots and spaces (which NTFS drops)
 * up to the end, a ':' (an alternate data stream: ".git::$INDEX_ALLOCATION")
 * or a '\' (a directory separator there).
 */
static bool ntfs_dotgit(const char *p, size_t n)
{
    size_t i;
    if (n >= 4 && p[0] == '.' && lower(p[1]) == 'g' && lower(p[2]) == 'i' && lower(p[3]) == 't')
        i = 4;
    else if (n >= 5 && lower(p[0]) == 'g' && lower(p[1]) == 'i' && lower(p[2]) == 't' &&
             p[3] == '~' && p[4] == '1')
        i = 5;
    else
        return false;
    for (; i < n; i++) {
        if (p[i] == ':' || p[i] == '\\')
            return true;
        if (p[i] != '.' && p[i] != ' ')
            return false;
    }
    return true;
}

/*
 * The character at p[*at..n) as git's pick_one_utf8_char reads it: 0 when
 * the bytes there are not one (a truncated or overlong sequence, a
 * surrogate, beyond U+10FFFF, and U+FFFE and U+FFFF, which git refuses too).
 */
static uint32_t git_utf8_at(const unsigned char *p, size_t n, size_t *at)
{
    static const uint32_t least[4] = {0, 0x80, 0x800, 0x10000};
    unsigned char c = p[*at];
    size_t more = c < 0x80             ? 0
                  : (c & 0xe0) == 0xc0 ? 1
                  : (c & 0xf0) == 0xe0 ? 2
                  : (c & 0xf8) == 0xf0 ? 3
                                       : 4;
    if (more == 4 || more >= n - *at)
        return 0;
    uint32_t cp = more == 0 ? c : (uint32_t)(c & (0x3f >> more));
    for (size_t k = 1; k <= more; k++) {
        if ((p[*at + k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[*at + k] & 0x3f);
    }
    if (cp < least[more] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe ||
        cp == 0xffff)
        return 0;
    *at += more + 1;
    return cp;
}

/*
 * The next code point of p[*at..n) that HFS+ does not ignore (git's
 * next_hfs_char): 0 at the end and where git's decoder finds no character
 * (git's too: such a name is taken as ending there).
 */
static uint32_t next_hfs(const unsigned char *p, size_t n, size_t *at)
{
    while (*at < n) {
        uint32_t cp = git_utf8_at(p, n, at);
        if (cp == 0)
            return 0;
        bool ignored = (cp >= 0x200c && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
                       (cp >= 0x206a && cp <= 0x206f) || cp == 0xfeff;
        if (!ignored)
            return cp;
    }
    return 0;
}

/* What HFS+ reads as ".git" (git's is_hfs_dotgit): ignorable code points anywhere, any case. */
static bool hfs_dotgit(const char *name, size_t n)
{
    const unsigned char *p = (const unsigned char *)name;
    size_t at = 0;
    if (next_hfs(p, n, &at) != '.')
        return false;
    for (const char *want = "git"; *want != '\0'; want++) {
        uint32_t c = next_hfs(p, n, &at);
        if (c > 127 || lower((char)c) != (unsigned char)*want)
            return false;
    }
    return next_hfs(p, n, &at) == 0;
}

static keel_status refuse(const char *name, size_t len, const char *why)
{
    char shown[SHOWN_MAX + 8];
    gate_tree_name_show(name, len < SHOWN_MAX / 4 ? len : SHOWN_MAX / 4, shown, sizeof(shown));
    return keel_status_with_str(KEEL_ERR_IN(&gate_codes, GATE_E_BAD_CHANGE, "'%s'%s %s", shown,
                                            len < SHOWN_MAX / 4 ? "" : "...", why),
                                "name", shown);
}

keel_status gate_tree_name_check(const char *name, size_t len, unsigned mode)
{
    KEEL_ASSERT(name != NULL || len == 0);
    if (len == 0)
        return KEEL_ERR_IN(&gate_codes, GATE_E_BAD_CHANGE, "an empty file name");
    if (memchr(name, '\0', len) != NULL)
        return refuse(name, len, "holds a NUL byte");
    if (memchr(name, '/', len) != NULL)
        return refuse(name, len, "holds a '/': a tree entry is a single name");
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return refuse(name, len, "is not a file name (it is this directory or its parent)");
    if (len == 4 && ntfs_dotgit(name, len))
        return refuse(name, len, "is the repository's own directory '.git' (in any case)");
    if (ntfs_dotgit(name, len))
        return refuse(name, len,
                      "is '.git' to NTFS (trailing dots or spaces, a data stream after ':', or "
                      "the short name 'git~1')");
    for (const char *p = (const char *)memchr(name, '\\', len); p != NULL;
         p = (const char *)memchr(p + 1, '\\', len - (size_t)(p + 1 - name)))
        if (ntfs_dotgit(p + 1, len - (size_t)(p + 1 - name)))
            return refuse(name, len, "holds '.git' after a '\\' (a directory separator to NTFS)");
    if (hfs_dotgit(name, len))
        return refuse(name, len, "is '.git' to HFS+ (it holds characters HFS+ ignores)");
    if ((mode & MODE_TYPE) == MODE_LINK) {
        /* libgit2 reads the name up to a NUL whatever len says: it gets a copy that ends */
        void *mem = NULL;
        keel_status s = keel_heap_alloc(GIT_HEAP, len + 1, &mem);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s,
                                "checking a tree entry's name"); /* the gate's, not the change's */
        char *z = (char *)mem;
        memcpy(z, name, len);
        z[len] = '\0';
        static const git_path_gitfile special[] = {GIT_PATH_GITFILE_GITMODULES,
                                                   GIT_PATH_GITFILE_GITATTRIBUTES,
                                                   GIT_PATH_GITFILE_GITIGNORE};
        bool gitfile = false;
        for (size_t i = 0; i < sizeof(special) / sizeof(special[0]) && !gitfile; i++)
            gitfile = git_path_is_gitfile(z, len, special[i], GIT_PATH_FS_GENERIC) > 0;
        keel_heap_free(GIT_HEAP, z);
        if (gitfile)
            return refuse(name, len,
                          "is a symbolic link named like '.gitmodules', '.gitattributes' or "
                          "'.gitignore' (git refuses to follow those)");
    }
    return KEEL_OK;
}
