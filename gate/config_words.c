/*
 * config_words.c - the words of a gate.conf command (build, test, notify, env,
 * ...): split as a shell would quote them, never run by one; and the shell
 * syntax in them that a shell would act on (gate_words_shell), for the parser
 * (config.c) to refuse with the reason.
 */
#define _GNU_SOURCE 1
#include "config.h"

#include "heaps.h"
#include "text.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_HEAP KEEL_MODULE_REF(gate_config)

/* ---- words ------------------------------------------------------------------ */

void gate_words_free(gate_words *w)
{
    if (w == NULL)
        return;
    keel_heap_free(CONFIG_HEAP, w->words); /* the pointers and the text are one block */
    w->words = NULL;
    w->n = 0;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/*
 * Is there shell syntax at text[i] (outside quotes, not escaped)?  Into `sh`:
 * what it is, as written, and where.
 */
static void shell_at(const char *text, size_t i, gate_shell *sh)
{
    static const struct {
        const char *op;
        const char *what;
    } ops[] = {{"&&", "run the next command if this one passed"},
               {"||", "run the next command if this one failed"},
               {"$(", "a command's output in its place"},
               {"${", "a variable's value in its place"},
               {">>", "a redirection"},
               {"|", "a pipe"},
               {";", "a second command"},
               {"&", "a command in the background"},
               {">", "a redirection"},
               {"<", "a redirection"},
               {"`", "a command's output in its place"}};
    const char *p = text + i;
    size_t len = 0;
    const char *what = NULL;
    for (size_t k = 0; what == NULL && k < sizeof(ops) / sizeof(ops[0]); k++)
        if (strncmp(p, ops[k].op, strlen(ops[k].op)) == 0) {
            len = strlen(ops[k].op);
            what = ops[k].what;
        }
    bool expansion = what != NULL && (p[0] == '$' || p[0] == '`');
    if (what == NULL && p[0] == '$' && p[1] != '\0' &&
        (name_char(p[1]) || strchr("?#@*!$-", p[1]) != NULL)) {
        len = 2; /* $1, $?: one character; $NAME: the whole name */
        while (!(p[1] >= '0' && p[1] <= '9') && name_char(p[1]) && name_char(p[len]) &&
               len + 1 < sizeof(sh->found))
            len++;
        what = "a variable's value in its place";
        expansion = true;
    }
    if (what == NULL || (sh->expansions_only && !expansion))
        return;
    (void)snprintf(sh->found, sizeof(sh->found), "%.*s", (int)len, p);
    sh->what = what;
    sh->column = i + 1;
}

/*
 * One pass of the splitter.  With `text_out` NULL it only counts words and
 * bytes; otherwise it writes the words, each NUL-terminated, into text_out and
 * their starts into `starts`.  `sh` (NULL-able): the first shell syntax outside
 * quotes and escapes (shell_at).
 */
/*
 * How many bytes of `text` a message quotes: all, or GATE_TEXT_SUBJECT_SHOWN
 * and '...' when it is longer, as gate_text_cut_quoted cuts a subject.
 */
static int subject_len(const char *text)
{
    size_t n = strlen(text);
    return n > GATE_TEXT_SUBJECT_SHOWN + 3 ? GATE_TEXT_SUBJECT_SHOWN : (int)n;
}

static keel_status split_pass(const char *text, size_t *nwords, size_t *nbytes, char *text_out,
                              char **starts, gate_shell *sh)
{
    size_t i = 0, words = 0, bytes = 0;
    for (;;) {
        while (text[i] == ' ' || text[i] == '\t')
            i++;
        if (text[i] == '\0')
            break;
        char quote = '\0';
        size_t quote_at = 0;
        if (text_out != NULL)
            starts[words] = text_out + bytes;
        for (; text[i] != '\0'; i++) {
            char c = text[i];
            if (quote == '\0' && (c == ' ' || c == '\t'))
                break;
            if (quote == '\0' && (c == '\'' || c == '"')) {
                quote = c;
                quote_at = i;
                continue;
            }
            if (quote != '\0' && c == quote) {
                quote = '\0';
                continue;
            }
            if (sh != NULL && sh->column == 0 && c != '\\' &&
                (quote == '\0' || (quote == '"' && sh->expansions_only)))
                shell_at(text, i, sh); /* a shell expands "$x" too, but not '$x' */
            if (c == '\\' && quote != '\'' && text[i + 1] != '\0')
                c = text[++i];
            if (text_out != NULL)
                text_out[bytes] = c;
            bytes++;
        }
        if (quote != '\0')
            return keel_status_with_uint(
                KEEL_ERR(KEEL_E_PARSE,
                         "unterminated %c quote at column %zu in "
                         "'%.*s%s'",
                         quote, quote_at + 1, subject_len(text), text,
                         (size_t)subject_len(text) < strlen(text) ? "..." : ""),
                "column", (unsigned long long)quote_at + 1);
        if (text_out != NULL)
            text_out[bytes] = '\0';
        bytes++;
        words++;
    }
    *nwords = words;
    *nbytes = bytes;
    return KEEL_OK;
}

keel_status gate_words_split(const char *text, gate_words *out)
{
    KEEL_ASSERT(text != NULL && out != NULL);
    out->words = NULL;
    out->n = 0;
    size_t n = 0, bytes = 0;
    keel_status s = split_pass(text, &n, &bytes, NULL, NULL, NULL);
    if (!keel_ok(s))
        return s;
    size_t table = (n + 1) * sizeof(char *);
    void *mem = NULL;
    s = keel_heap_alloc(CONFIG_HEAP, table + bytes + 1, &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "splitting '%s'", text);
    char **block = (char **)mem;
    char *chars = (char *)block + table;
    s = split_pass(text, &n, &bytes, chars, block, NULL);
    if (!keel_ok(s)) {
        keel_heap_free(CONFIG_HEAP, block);
        return s;
    }
    block[n] = NULL;
    out->words = block;
    out->n = n;
    return KEEL_OK;
}

bool gate_words_shell(const char *text, gate_shell *sh)
{
    KEEL_ASSERT(text != NULL && sh != NULL);
    sh->found[0] = '\0';
    sh->what = NULL;
    sh->column = 0;
    size_t n = 0, bytes = 0;
    keel_status s = split_pass(text, &n, &bytes, NULL, NULL, sh);
    keel_status_free(s); /* an unterminated quote: gate_words_split reports it */
    return sh->column > 0;
}
