/*
 * page.c - keel-gate serve's dashboard (docs/gate-api.md "Dashboard"): the
 * files of gate/web/page/, compiled in by cmake/embed_page.cmake, by path.
 */
#include "page.h"

#include <string.h>

const gate_page_file *gate_page_find(const char *path, const char **type)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".svg", "image/svg+xml"}};
    if (path == NULL || path[0] != '/')
        return NULL;
    const char *name = strcmp(path, "/") == 0 ? "index.html" : path + 1;
    for (const gate_page_file *f = gate_page_files; f->name != NULL; f++) {
        if (strcmp(f->name, name) != 0)
            continue;
        *type = "application/octet-stream";
        size_t nl = strlen(name);
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            size_t el = strlen(types[i].ext);
            if (nl > el && strcmp(name + nl - el, types[i].ext) == 0)
                *type = types[i].type;
        }
        return f;
    }
    return NULL;
}
