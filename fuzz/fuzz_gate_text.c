/*
 * fuzz_gate_text.c - libFuzzer target for keel-gate's escaping of text that
 * anyone who can push may have written (gate/cli/text.h): for a terminal
 * (gate_text_fput, gate_text_printf) and for JSON (gate_json_fput,
 * gate_json_str).
 *
 * The first byte chooses: bit 0 GATE_TEXT_BLOCK, bits 1-7 how the text is
 * cut into pieces and which buffer sizes JSON is written into (bit 7 also a
 * long text for printf, bits 1-3 its length); the rest is the text.
 * Properties, for any bytes:
 *   - for a terminal: valid UTF-8 with no C0 control (newline and tab in a
 *     block only), no DEL, no C1 control, no bidirectional formatting
 *     character, no line or paragraph separator; exactly the text where it
 *     holds none of those; every character escaped as text.h says (checked
 *     against a second escaper written from text.h, on a UTF-8 decoder of
 *     its own);
 *   - the text given in pieces with GATE_TEXT_MORE (what a piece leaves,
 *     at most 3 bytes, passed again in front of the next) is escaped exactly
 *     as the whole text;
 *   - gate_text_printf: the same escaping, the format's final newline kept,
 *     text past 8 KiB cut and marked "..." (bit 7: the text repeated to
 *     8186..8193 bytes: a line that fits, fits but for its newline, or is
 *     cut, at any place in a character);
 *   - for JSON: a string libjansson parses (strictly: UTF-8, no raw
 *     control) whose value is the text with each invalid byte U+FFFD; raw
 *     it holds no character a terminal would act on;
 *   - gate_json_str into a buffer of any size after `len` bytes already
 *     there: returns what the whole needs; writes the whole when it fits,
 *     else the longest prefix that ends between two characters or escapes
 *     (never inside one), NUL-terminated, nothing before `len` or past the
 *     NUL touched; GATE_JSON_ROOM always fits; the same text as
 *     gate_json_fput.
 *
 *   tools/fuzz.sh gate_text     (FUZZ_SECONDS=300 for 5 minutes)
 */
#include "fuzz_gate.h"

#include <jansson.h>

#include "gate.h"
#include "text.h"

/* ---- what text.h says, written again ------------------------------------------------ */

/* s[0..len) for a terminal, as text.h describes it. */
static void model_terminal(fuzz_str *o, const unsigned char *s, size_t len, bool block)
{
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = fuzz_utf8(s + i, len - i, &cp);
        if (n == 0) {
            fuzz_addf(o, "\\x%02x", s[i]); /* not UTF-8: the byte */
            i++;
            continue;
        }
        if (!fuzz_unsafe(cp) || (block && (cp == '\n' || cp == '\t')))
            fuzz_add(o, s + i, n);
        else if (cp < 0x80)
            fuzz_addf(o, "\\x%02x", (unsigned)cp);
        else
            fuzz_addf(o, "\\u{%x}", (unsigned)cp);
        i += n;
    }
}

/* s as a JSON string (text.h): the document, and the value a parser must read from it. */
static void model_json(fuzz_str *doc, fuzz_str *value, const unsigned char *s, size_t len)
{
    fuzz_add(doc, "\"", 1);
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = fuzz_utf8(s + i, len - i, &cp);
        if (n == 0) {
            fuzz_adds(doc, "\\ufffd");
            fuzz_adds(value, "\xef\xbf\xbd"); /* U+FFFD */
            i++;
            continue;
        }
        fuzz_add(value, s + i, n);
        if (cp == '"' || cp == '\\')
            fuzz_addf(doc, "\\%c", (char)cp);
        else if (cp == '\n')
            fuzz_adds(doc, "\\n");
        else if (cp == '\t')
            fuzz_adds(doc, "\\t");
        else if (fuzz_unsafe(cp))
            fuzz_addf(doc, "\\u%04x", (unsigned)cp);
        else
            fuzz_add(doc, s + i, n);
        i += n;
    }
    fuzz_add(doc, "\"", 1);
}

/* Valid UTF-8 holding no character a terminal acts on (but newline, and tab when `tabs`)? */
static bool terminal_safe(const char *text, size_t len, bool newlines, bool tabs)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = fuzz_utf8(s + i, len - i, &cp);
        if (n == 0)
            return false;
        if (fuzz_unsafe(cp) && !(newlines && cp == '\n') && !(tabs && cp == '\t'))
            return false;
        i += n;
    }
    return true;
}

/* ---- running the real ones into memory ---------------------------------------------- */

typedef struct memfile {
    FILE *f;
    char *text;
    size_t len;
} memfile;

static void mem_open(memfile *m)
{
    m->text = NULL;
    m->len = 0;
    m->f = open_memstream(&m->text, &m->len);
    if (m->f == NULL)
        abort();
}

static void mem_close(memfile *m)
{
    if (fclose(m->f) != 0)
        abort();
    m->f = NULL;
}

/* ---- the properties ------------------------------------------------------------------ */

static void check_terminal(const unsigned char *s, size_t len, unsigned flags, unsigned cut)
{
    bool block = (flags & GATE_TEXT_BLOCK) != 0;
    fuzz_str want = {NULL, 0, 0};
    fuzz_adds(&want, "");
    model_terminal(&want, s, len, block);

    memfile whole;
    mem_open(&whole);
    size_t took = gate_text_fput(whole.f, (const char *)s, len, flags);
    mem_close(&whole);
    FUZZ_CHECK(took == len, "without GATE_TEXT_MORE every byte is taken");
    FUZZ_CHECK(terminal_safe(whole.text, whole.len, block, block),
               "terminal output: valid UTF-8, no control (but newline and tab in a block)");
    FUZZ_CHECK(whole.len == want.len && memcmp(whole.text, want.p, want.len) == 0,
               "terminal output: each character escaped as text.h says");
    if (terminal_safe((const char *)s, len, block, block))
        FUZZ_CHECK(whole.len == len && memcmp(whole.text, s, len) == 0,
                   "safe text is printed as it is");

    /* in pieces: 1 to 8 bytes, as `cut` says, what a piece leaves passed again */
    memfile parts;
    mem_open(&parts);
    unsigned char carry[3 + 8];
    size_t held = 0, at = 0, k = 0;
    while (at < len || held > 0) {
        size_t n = 1 + ((cut >> (k % 5)) + k) % 8;
        k++;
        if (n > len - at)
            n = len - at;
        memcpy(carry + held, s + at, n);
        at += n;
        size_t have = held + n;
        unsigned f = at < len ? (flags | GATE_TEXT_MORE) : flags;
        size_t used = gate_text_fput(parts.f, (const char *)carry, have, f);
        FUZZ_CHECK(used <= have && have - used <= 3, "a piece leaves at most 3 bytes");
        FUZZ_CHECK(at < len || used == have, "the last piece is taken whole");
        held = have - used;
        memmove(carry, carry + used, held);
    }
    mem_close(&parts);
    FUZZ_CHECK(parts.len == whole.len && memcmp(parts.text, whole.text, whole.len) == 0,
               "in pieces with GATE_TEXT_MORE, the same output as whole");
    free(parts.text);
    free(whole.text);
    fuzz_str_free(&want);
}

/*
 * gate_text_printf("[%s]\n", t): t is s; or, when `long_text`, s repeated to 8186..8193
 * bytes (as `size` says), so that the line is about text.c's 8 KiB buffer: it fits, fits
 * but for its newline, or is cut (at any place in a character, as s's length puts it).
 */
static void check_printf(const char *s, bool long_text, unsigned size)
{
    size_t len = strlen(s), tlen = long_text && len > 0 ? 8186 + (size & 7) : len;
    size_t all = tlen + 2; /* "[" t "]" */
    char *content = (char *)malloc(all + 1);
    if (content == NULL)
        abort();
    content[0] = '[';
    for (size_t i = 0; i < tlen; i++)
        content[1 + i] = s[i % len];
    content[all - 1] = ']';
    content[all] = '\0';
    enum { SHOWN = 8191 }; /* text.c's buffer, less its NUL */
    fuzz_str want = {NULL, 0, 0};
    fuzz_adds(&want, "");
    model_terminal(&want, (const unsigned char *)content, all <= SHOWN ? all : SHOWN, false);
    fuzz_adds(&want, all <= SHOWN ? "\n" : "...\n");

    memfile m;
    mem_open(&m);
    content[all - 1] = '\0';
    gate_text_printf(m.f, "[%s]\n", content + 1);
    mem_close(&m);
    FUZZ_CHECK(m.len == want.len && memcmp(m.text, want.p, want.len) == 0,
               "gate_text_printf: escaped, the final newline kept, past 8 KiB cut with '...'");
    FUZZ_CHECK(terminal_safe(m.text, m.len - 1, false, false) && m.text[m.len - 1] == '\n',
               "gate_text_printf: one line, nothing a terminal acts on");
    free(m.text);
    free(content);
    fuzz_str_free(&want);
}

/* The places in a JSON string document where a piece ends: after '"', each character or escape. */
static size_t json_boundaries(const char *doc, size_t len, size_t *at, size_t max)
{
    size_t n = 0, i = 0;
    at[n++] = 0;
    while (i < len && n < max) {
        if (i == 0 || i == len - 1)
            i++; /* the quotes */
        else if (doc[i] == '\\')
            i += doc[i + 1] == 'u' ? 6 : 2;
        else {
            uint32_t cp = 0;
            size_t c = fuzz_utf8((const unsigned char *)doc + i, len - i, &cp);
            FUZZ_CHECK(c > 0, "a JSON document of valid UTF-8");
            i += c;
        }
        at[n++] = i;
    }
    return n;
}

/* gate_json_str(buf, size, len, s): `len` bytes of 'p' there already. */
static void check_json_buffer(const char *s, const fuzz_str *doc, const fuzz_str *value,
                              size_t size, size_t len, const size_t *bounds, size_t nbounds)
{
    char *buf = size > 0 ? (char *)malloc(size) : NULL; /* exactly size: ASan sees past it */
    if (size > 0 && buf == NULL)
        abort();
    if (size > 0)
        memset(buf, 'p', size);
    size_t need = gate_json_str(buf, size, len, s);
    FUZZ_CHECK(need == len + doc->len, "gate_json_str returns what the whole needs");
    for (size_t i = 0; i < size && i < len; i++)
        FUZZ_CHECK(buf[i] == 'p', "nothing before len is touched");
    if (len >= size) {
        for (size_t i = 0; i < size; i++)
            FUZZ_CHECK(buf[i] == 'p', "a buffer already full is not touched");
        free(buf);
        return;
    }
    /* the longest prefix at a boundary that fits with its NUL */
    size_t want = 0;
    for (size_t i = 0; i < nbounds && len + bounds[i] < size; i++)
        want = bounds[i];
    size_t got = strnlen(buf + len, size - len);
    FUZZ_CHECK(got < size - len, "gate_json_str's output is NUL-terminated in the buffer");
    FUZZ_CHECK(got == want && memcmp(buf + len, doc->p, want) == 0,
               "what fits is the longest prefix that ends between characters or escapes");
    for (size_t i = len + got + 1; i < size; i++)
        FUZZ_CHECK(buf[i] == 'p', "nothing past the NUL is touched");
    if (want > 0 && want < doc->len) { /* closed again, a valid JSON string of a prefix */
        fuzz_str closed = {NULL, 0, 0};
        fuzz_add(&closed, "[", 1);
        fuzz_add(&closed, buf + len, got);
        fuzz_adds(&closed, "\"]");
        json_error_t err;
        json_t *j = json_loadb(closed.p, closed.len, 0, &err);
        FUZZ_CHECK(j != NULL, "a cut JSON string closed by a quote parses");
        const char *v = json_string_value(json_array_get(j, 0));
        size_t vlen = json_string_length(json_array_get(j, 0));
        FUZZ_CHECK(v != NULL && vlen <= value->len && memcmp(v, value->p, vlen) == 0,
                   "a cut JSON string holds a prefix of the text");
        json_decref(j);
        fuzz_str_free(&closed);
    }
    free(buf);
}

static void check_json(const char *s, unsigned choice)
{
    size_t len = strlen(s);
    fuzz_str doc = {NULL, 0, 0}, value = {NULL, 0, 0};
    fuzz_adds(&value, "");
    model_json(&doc, &value, (const unsigned char *)s, len);

    memfile m;
    mem_open(&m);
    gate_json_fput(m.f, s);
    mem_close(&m);
    FUZZ_CHECK(m.len == doc.len && memcmp(m.text, doc.p, doc.len) == 0,
               "JSON: each character escaped as text.h says");
    FUZZ_CHECK(terminal_safe(m.text, m.len, false, false),
               "a JSON document holds nothing a terminal acts on");

    fuzz_str arr = {NULL, 0, 0};
    fuzz_add(&arr, "[", 1);
    fuzz_add(&arr, m.text, m.len);
    fuzz_add(&arr, "]", 1);
    json_error_t err;
    json_t *j = json_loadb(arr.p, arr.len, 0, &err);
    if (j == NULL)
        fprintf(stderr, "jansson: %s at %d\n", err.text, err.position);
    FUZZ_CHECK(j != NULL && json_is_string(json_array_get(j, 0)), "JSON: libjansson parses it");
    json_t *str = json_array_get(j, 0);
    FUZZ_CHECK(json_string_length(str) == value.len &&
                   memcmp(json_string_value(str), value.p, value.len) == 0,
               "JSON: its value is the text, each invalid byte U+FFFD");
    json_decref(j);

    /* into buffers: every size near the start, then some the input chooses, and ROOM */
    size_t *bounds = (size_t *)malloc((len + 3) * sizeof(size_t)); /* a piece per byte at most */
    if (bounds == NULL)
        abort();
    size_t nb = json_boundaries(doc.p, doc.len, bounds, len + 3);
    FUZZ_CHECK(bounds[nb - 1] == doc.len, "the JSON document's pieces end at its end");
    size_t lens[3] = {0, 1 + (choice & 3), 7};
    for (size_t l = 0; l < 3; l++) {
        size_t pre = lens[l];
        for (size_t size = 0; size < 40 && size < pre + doc.len + 3; size++)
            check_json_buffer(s, &doc, &value, size, pre, bounds, nb);
        for (size_t k = 0; k < 8; k++) {
            size_t size = pre + (doc.len + 2) * ((choice * (k + 1) * 2654435761u) % 1024) / 1023;
            check_json_buffer(s, &doc, &value, size, pre, bounds, nb);
        }
        check_json_buffer(s, &doc, &value, pre + GATE_JSON_ROOM(len), pre, bounds, nb);
        FUZZ_CHECK(pre + doc.len < pre + GATE_JSON_ROOM(len), "GATE_JSON_ROOM is room enough");
    }
    free(bounds);
    free(m.text);
    fuzz_str_free(&arr);
    fuzz_str_free(&doc);
    fuzz_str_free(&value);
}

/* choice: the first byte (text.h flags, how to cut); the rest is the text */
static void check_all(unsigned choice, const uint8_t *rest, size_t len)
{
    unsigned char *text = (unsigned char *)fuzz_copy(rest, len);
    check_terminal(text, len, choice & GATE_TEXT_BLOCK, choice >> 1);
    free(text);
    char *cs = fuzz_cstring(rest, len); /* up to its first NUL, for printf and JSON */
    check_printf(cs, (choice & 0x80) != 0, choice >> 1);
    check_json(cs, choice);
    free(cs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_begin(data, size);
    if (size > 0)
        check_all(data[0], data + 1, size - 1);
    return 0;
}
