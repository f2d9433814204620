/*
 * fuzz_gate_names.c - libFuzzer target for the names keel-gate takes from
 * people it does not trust: branch names (gate_branch_check), the names of
 * a change's tree entries (gate_tree_name_check, gate_tree_name_show), and
 * repository URLs (gate_remote_check_url, gate_remote_redact).
 *
 * The first byte chooses a tree entry's mode (bits 0-2), a URL's scheme
 * (bits 3-5) and buffer sizes; the rest is the name.  Properties, for any
 * bytes:
 *   - a branch name accepted has only the documented characters (letters,
 *     digits, '.', '_', '-', '+', '/'), at most GATE_BRANCH_LEN_MAX bytes, and
 *     keeps git's rules (checked by rules written here: no "..", "//",
 *     leading '-' or '/', trailing '/' or '.', no component starting with
 *     '.' or ending ".lock", not HEAD, not under refs/); one refused is
 *     GATE_E_BAD_REF;
 *   - a tree entry name accepted is not empty, holds no NUL or '/', is not
 *     "." or "..", and is not ".git" to git's rules with its NTFS and HFS+
 *     protections (is_ntfs_dotgit, is_hfs_dotgit: written again here,
 *     decoding UTF-8 as git's pick_one_utf8_char does); one refused is
 *     GATE_E_BAD_CHANGE; its name shown is printable ASCII, cut only between
 *     bytes, within any buffer;
 *   - a URL accepted is printable ASCII without blanks, of a known
 *     transport or scp-like, and no host in it starts with '-'; whatever
 *     the URL, its redaction is the URL with the password of its userinfo
 *     (up to the authority's last '@') replaced by "***", cut only as
 *     snprintf cuts, and an error about a URL with a password never shows
 *     the URL itself.  A second URL is made of the name's parts around two
 *     \x01 bytes: <scheme>://<user>:<password>@<rest>.
 *
 *   tools/fuzz.sh gate_names     (FUZZ_SECONDS=300 for 5 minutes)
 */
#include "fuzz_gate.h"

#include "git.h"
#include "remote.h"

/* ---- branches -------------------------------------------------------------------------- */

static bool branch_model(const char *b)
{
    size_t len = strlen(b);
    static const char allowed[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+/";
    if (len == 0 || len > GATE_BRANCH_LEN_MAX || strspn(b, allowed) != len)
        return false;
    if (b[0] == '-' || b[0] == '/' || b[len - 1] == '/' || b[len - 1] == '.')
        return false;
    if (strstr(b, "..") != NULL || strstr(b, "//") != NULL || strcmp(b, "HEAD") == 0 ||
        strncmp(b, "refs/", 5) == 0)
        return false;
    for (const char *c = b; c != NULL; c = strchr(c, '/')) {
        c += *c == '/';
        size_t n = strcspn(c, "/");
        if (c[0] == '.' || (n >= 5 && strncmp(c + n - 5, ".lock", 5) == 0))
            return false;
    }
    return true;
}

static void check_branch(const char *b)
{
    keel_status s = gate_branch_check(b);
    bool model = branch_model(b);
    if (keel_ok(s)) {
        FUZZ_CHECK(model,
                   "an accepted branch name keeps the documented characters and git's rules");
        return;
    }
    FUZZ_CHECK(keel_status_is(s, &gate_codes, GATE_E_BAD_REF),
               "a refused branch is GATE_E_BAD_REF");
    FUZZ_CHECK(!model, "a branch name of git's rules and the documented characters is accepted");
    keel_status_free(s);
}

/* ---- tree entry names ------------------------------------------------------------------ */

/* git's pick_one_utf8_char: a character, or 0 with *at past the end for what is not UTF-8. */
static uint32_t git_utf8(const unsigned char *p, size_t n, size_t *at)
{
    uint32_t cp = 0;
    size_t c = *at < n ? fuzz_utf8(p + *at, n - *at, &cp) : 0;
    if (c == 0 || cp == 0xfffe || cp == 0xffff) { /* git also refuses these two */
        *at = n + 1;
        return 0;
    }
    *at += c;
    return cp;
}

/* git's next_hfs_char: the next character HFS+ does not ignore; 0 at the end or malformed. */
static uint32_t hfs_next(const unsigned char *p, size_t n, size_t *at)
{
    for (;;) {
        if (*at >= n)
            return 0;
        uint32_t cp = git_utf8(p, n, at);
        if (cp == 0)
            return 0;
        static const uint32_t ignored[][2] = {
            {0x200c, 0x200f}, {0x202a, 0x202e}, {0x206a, 0x206f}, {0xfeff, 0xfeff}};
        size_t k = 0;
        while (k < 4 && !(cp >= ignored[k][0] && cp <= ignored[k][1]))
            k++;
        if (k == 4)
            return cp;
    }
}

/* git's is_hfs_dotgit: ".git" once HFS+ has dropped what it ignores and folded case. */
static bool hfs_dotgit_model(const unsigned char *p, size_t n)
{
    size_t at = 0;
    if (hfs_next(p, n, &at) != '.')
        return false;
    for (const char *w = "git"; *w != '\0'; w++) {
        uint32_t c = hfs_next(p, n, &at);
        if (c > 127 || (c | 0x20) != (uint32_t)*w)
            return false;
    }
    return hfs_next(p, n, &at) == 0; /* the end, or what git reads as one */
}

/* git's is_ntfs_dotgit on p[0..n): ".git" or "git~1" in any case, then dots and blanks up to the end, ':' or '\'. */
static bool ntfs_dotgit_model(const char *p, size_t n)
{
    char low[6] = {0};
    for (size_t i = 0; i < 5 && i < n; i++)
        low[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
    size_t skip = strncmp(low, ".git", 4) == 0 ? 4 : strncmp(low, "git~1", 5) == 0 ? 5 : 0;
    if (skip == 0)
        return false;
    size_t rest = 0; /* up to the end, a ':' or a '\' */
    while (skip + rest < n && p[skip + rest] != ':' && p[skip + rest] != '\\')
        rest++;
    for (size_t i = skip; i < skip + rest; i++)
        if (p[i] != '.' && p[i] != ' ')
            return false;
    return true;
}

/* What git refuses (verify_path with core.protectNTFS and core.protectHFS), but symlink rules. */
static bool tree_name_refused_model(const char *name, size_t len)
{
    if (len == 0 || memchr(name, '\0', len) != NULL || memchr(name, '/', len) != NULL)
        return true;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return true;
    if (hfs_dotgit_model((const unsigned char *)name, len))
        return true;
    for (size_t i = 0; i <= len;
         i++) /* the name, and what follows each '\' (a separator to NTFS) */
        if ((i == 0 || name[i - 1] == '\\') && ntfs_dotgit_model(name + i, len - i))
            return true;
    return false;
}

static void check_tree_name(const char *name, size_t len, unsigned mode, size_t size)
{
    keel_status s = gate_tree_name_check(name, len, mode);
    if (keel_ok(s)) {
        FUZZ_CHECK(!tree_name_refused_model(name, len),
                   "an accepted tree entry name is one git checks out (NTFS and HFS+ too)");
    } else {
        FUZZ_CHECK(keel_status_is(s, &gate_codes, GATE_E_BAD_CHANGE),
                   "a refused tree entry name is GATE_E_BAD_CHANGE");
        keel_status_free(s);
    }
    /* shown: printable ASCII, each other byte as \xNN, in any buffer, never cut inside one */
    fuzz_str full = {NULL, 0, 0};
    fuzz_adds(&full, "");
    size_t *ends = (size_t *)malloc((len + 1) * sizeof(size_t)); /* where each byte's piece ends */
    if (ends == NULL)
        abort();
    ends[0] = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 0x20 && c < 0x7f)
            fuzz_add(&full, &c, 1);
        else
            fuzz_addf(&full, "\\x%02x", c);
        ends[i + 1] = full.len;
    }
    size_t sizes[] = {1, 2, 5, 6, 7, size, full.len, full.len + 1, full.len + 5};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t sz = sizes[k] > 0 ? sizes[k] : 1;
        char *buf = (char *)malloc(sz);
        if (buf == NULL)
            abort();
        gate_tree_name_show(name, len, buf, sz);
        size_t got = strnlen(buf, sz), piece = 0;
        FUZZ_CHECK(got < sz, "a name shown is NUL-terminated in its buffer");
        FUZZ_CHECK(memcmp(buf, full.p, got) == 0, "a name shown is a prefix of the whole");
        while (piece < len && ends[piece] < got)
            piece++;
        FUZZ_CHECK(ends[piece] == got, "a name shown is cut between bytes, never inside a \\xNN");
        FUZZ_CHECK(sz < full.len + 5 || got == full.len, "a name shown whole when there is room");
        free(buf);
    }
    free(ends);
    fuzz_str_free(&full);
}

/* ---- URLs ------------------------------------------------------------------------------- */

static bool letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The length of an RFC 3986 scheme followed by "://" at u, 0 when none. */
static size_t scheme_model(const char *u)
{
    if (!letter(u[0]))
        return 0;
    size_t n = 1;
    while (letter(u[n]) || (u[n] >= '0' && u[n] <= '9') || u[n] == '+' || u[n] == '-' ||
           u[n] == '.')
        n++;
    return strncmp(u + n, "://", 3) == 0 ? n : 0;
}

/*
 * Where the password of u's userinfo is: [*from, *to), empty when none.
 * The authority runs from after "://" to the first '/'; the userinfo up to
 * its LAST '@' (an '@' in a password is not always percent-encoded); the
 * password from the userinfo's first ':'.
 */
static void password_model(const char *u, size_t *from, size_t *to)
{
    *from = *to = 0;
    size_t n = scheme_model(u);
    if (n == 0)
        return;
    size_t auth = n + 3, end = auth + strcspn(u + auth, "/");
    size_t at = end;
    while (at > auth && u[at - 1] != '@')
        at--;
    if (at == auth)
        return; /* no '@' */
    const char *colon = (const char *)memchr(u + auth, ':', at - 1 - auth);
    if (colon == NULL)
        return;
    *from = (size_t)(colon + 1 - u);
    *to = at - 1;
}

static void check_url(const char *url, size_t size)
{
    size_t from = 0, to = 0;
    password_model(url, &from, &to);
    fuzz_str want = {NULL, 0, 0};
    fuzz_adds(&want, "");
    if (from > 0) {
        fuzz_add(&want, url, from);
        fuzz_adds(&want, "***");
        fuzz_adds(&want, url + to);
    } else {
        fuzz_adds(&want, url);
    }
    size_t sizes[] = {1, 8, size, want.len, want.len + 1, want.len + 64};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t sz = sizes[k] > 0 ? sizes[k] : 1;
        char *buf = (char *)malloc(sz);
        if (buf == NULL)
            abort();
        gate_remote_redact(url, buf, sz);
        size_t got = strnlen(buf, sz);
        FUZZ_CHECK(got < sz, "a redacted URL is NUL-terminated in its buffer");
        FUZZ_CHECK(got == (want.len < sz ? want.len : sz - 1) && memcmp(buf, want.p, got) == 0,
                   "a URL redacted: its password, up to the last '@', replaced by ***");
        free(buf);
    }
    fuzz_str_free(&want);

    keel_status s = gate_remote_check_url(url);
    if (keel_ok(s)) {
        for (const char *p = url; *p != '\0'; p++)
            FUZZ_CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f,
                       "an accepted URL is printable ASCII without blanks");
        /* every place a host may start (after "://", after any '@' of the authority) */
        size_t n = scheme_model(url);
        if (n > 0) {
            const char *auth = url + n + 3;
            size_t alen = strcspn(auth, "/");
            FUZZ_CHECK(auth[0] != '-', "no host of an accepted URL starts with '-'");
            for (size_t i = 0; i < alen; i++)
                FUZZ_CHECK(auth[i] != '@' || auth[i + 1] != '-',
                           "no host of an accepted URL starts with '-'");
        }
        return;
    }
    FUZZ_CHECK(KEEL_IS(s, KEEL_E_INVAL), "a refused URL is KEEL_E_INVAL");
    if (to > from) {
        char msg[4096];
        (void)keel_status_format(s, msg, sizeof(msg));
        FUZZ_CHECK(strstr(msg, url) == NULL,
                   "an error about a URL with a password shows it redacted");
    }
    keel_status_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_begin(data, size);
    if (size == 0)
        return 0;
    unsigned choice = data[0];
    size_t len = size - 1;
    static const unsigned modes[] = {0100644, 0100755, 0120000, 040000,
                                     0160000, 0120777, 0,       0170000};
    static const char *const schemes[] = {"https", "ssh",   "git",     "http",
                                          "file",  "HTTPS", "git+ssh", "ftp"};
    char *name = fuzz_copy(data + 1, len);
    check_tree_name(name, len, modes[choice & 7], choice >> 3);
    free(name);

    /* as a C string: a branch, a URL, and a URL made of its parts */
    char *text = fuzz_cstring(data + 1, len);
    check_branch(text);
    check_url(text, choice >> 3);
    char *one = strchr(text, '\x01'), *two = one != NULL ? strchr(one + 1, '\x01') : NULL;
    if (two != NULL) {
        *one = *two = '\0';
        fuzz_str url = {NULL, 0, 0};
        fuzz_addf(&url, "%s://", schemes[(choice >> 3) & 7]);
        fuzz_adds(&url, text);
        fuzz_add(&url, ":", 1);
        fuzz_adds(&url, one + 1);
        fuzz_add(&url, "@", 1);
        fuzz_adds(&url, two + 1);
        check_url(url.p, choice >> 3);
        fuzz_str_free(&url);
    }
    free(text);
    return 0;
}
