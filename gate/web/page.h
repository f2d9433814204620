/*
 * gate/web/page.h - keel-gate serve's dashboard: the files of gate/web/page/
 * compiled into the binary (cmake/embed_page.cmake writes gate_page_files),
 * and the answer to a GET of one of them (page.c).
 */
#ifndef KEEL_GATE_WEB_PAGE_H
#define KEEL_GATE_WEB_PAGE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct gate_page_file {
    const char *name; /* "index.html", "dashboard.js", ... (NULL: the end of the table) */
    const unsigned char *data;
    size_t len;
} gate_page_file;

extern const gate_page_file gate_page_files[];

/* The file a path names ("/" is index.html), or NULL when it names none; *type: its MIME type. */
const gate_page_file *gate_page_find(const char *path, const char **type);

/* The Content-Security-Policy of every response: the page's own files only, nothing inline. */
#define GATE_PAGE_CSP                                                           \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

#endif /* KEEL_GATE_WEB_PAGE_H */
