/*
 * stress_summary.c - what the stress points did: counters, the coverage
 * summary (fired / evaluated but never fired / never reached) and its JSON.
 */
#include "stress.h"

#include <errno.h>
#include <string.h>

keel_status keel_stress_get(const char *name, keel_stress_stats *out)
{
    if (name == NULL || out == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_stress_get: no name or output");
    memset(out, 0, sizeof(*out));
    keel__stress_snapshot snap;
    keel_status s = keel__stress_snapshot_take(&snap);
    if (!keel_ok(s))
        return s;
    s = KEEL_ERR(KEEL_E_NOTFOUND, "no stress point '%s' is registered", name);
    for (size_t i = 0; i < snap.npoints; i++)
        if (strcmp(snap.points[i].name, name) == 0) {
            const keel__stress_point_info *p = &snap.points[i];
            out->name = p->name;
            out->evaluations = p->evaluations;
            out->fires = p->fires;
            out->sites = p->sites;
            out->armed = p->armed;
            keel_status_free(s);
            s = KEEL_OK;
            break;
        }
    keel__stress_snapshot_free(&snap);
    return s;
}

keel_status keel_stress_list(keel_stress_stats *out, size_t cap, size_t *count)
{
    if (count == NULL || (out == NULL && cap > 0))
        return KEEL_ERR(KEEL_E_INVAL, "keel_stress_list: no output");
    keel__stress_snapshot snap;
    keel_status s = keel__stress_snapshot_take(&snap);
    if (!keel_ok(s))
        return s;
    *count = snap.npoints;
    for (size_t i = 0; i < snap.npoints && i < cap; i++) {
        const keel__stress_point_info *p = &snap.points[i];
        out[i].name = p->name;
        out[i].evaluations = p->evaluations;
        out[i].fires = p->fires;
        out[i].sites = p->sites;
        out[i].armed = p->armed;
    }
    keel__stress_snapshot_free(&snap);
    return KEEL_OK;
}

#if KEEL_DEVEL
/* A blank KEEL_OPTIONS drops around an unquoted value. */
static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Text written into a caller's buffer: what does not fit is counted, not written. */
typedef struct text_out {
    char *p;
    size_t cap;
    size_t n;
} text_out;

static void put_char(text_out *o, char c)
{
    if (o->n < o->cap)
        o->p[o->n] = c;
    o->n++;
}

static void put(text_out *o, const char *s)
{
    while (*s != '\0')
        put_char(o, *s++);
}

/*
 * The spec as a KEEL_OPTIONS value: double-quoted, " and \ escaped, when read bare it would
 * not be itself (empty, a ';' or newline, a '"', a blank at an end).
 */
static void put_option_value(text_out *o, const char *v)
{
    size_t n = strlen(v);
    if (n > 0 && strpbrk(v, ";\n\"") == NULL && !blank(v[0]) && !blank(v[n - 1])) {
        put(o, v);
        return;
    }
    put_char(o, '"');
    for (const char *c = v; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\')
            put_char(o, '\\');
        put_char(o, *c);
    }
    put_char(o, '"');
}

/* w (n bytes) as one POSIX shell word: as it is when plain, else single-quoted, ' as '\''. */
static void put_shell_word(text_out *o, const char *w, size_t n)
{
    static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                "_./:=,+-@%";
    bool quote = n == 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = strchr(plain, w[i]) == NULL;
    if (!quote) {
        for (size_t i = 0; i < n; i++)
            put_char(o, w[i]);
        return;
    }
    put_char(o, '\'');
    for (size_t i = 0; i < n; i++) {
        if (w[i] == '\'')
            put(o, "'\\''");
        else
            put_char(o, w[i]);
    }
    put_char(o, '\'');
}

size_t keel__stress_replay(const char *spec, unsigned long long seed, char *buf, size_t size)
{
    KEEL_ASSERT(spec != NULL && (buf != NULL || size == 0));
    /* no malloc: a stress point may fire inside the allocator */
    char tail[48];
    (void)snprintf(tail, sizeof(tail), ";stress.seed=%llu", seed);
    char value[2048];
    text_out opts = {value, sizeof(value), 0};
    put(&opts, "stress=");
    put_option_value(&opts, spec);
    put(&opts, tail);
    text_out line = {buf, size, 0};
    put(&line, "KEEL_OPTIONS=");
    if (opts.n < sizeof(value))
        put_shell_word(&line, value, opts.n);
    else
        line.n += 4 * opts.n + 2; /* measured only (its bound): too long to quote from here */
    if (size > 0)
        buf[line.n < size ? line.n : size - 1] = '\0';
    return line.n;
}

static void print_sites(FILE *f, const keel__stress_snapshot *snap, const char *name)
{
    for (size_t i = 0; i < snap->nsites; i++) {
        const keel__stress_site_info *si = &snap->sites[i];
        if (strcmp(si->name, name) == 0)
            (void)fprintf(f, "      %s:%d %s(): %llu evaluations, %llu fires\n", si->file, si->line,
                          si->func, si->evaluations, si->fires);
    }
}

/* libkeel's own points (keel.*) are listed only once the program reaches them. */
static bool keel_own_point(const char *name)
{
    return strncmp(name, "keel.", 5) == 0;
}

static void print_group(FILE *f, const keel__stress_snapshot *snap, const char *title, int which)
{
    size_t n = 0;
    for (size_t i = 0; i < snap->npoints; i++) {
        const keel__stress_point_info *p = &snap->points[i];
        int kind = p->fires > 0 ? 0 : p->evaluations > 0 ? 1 : 2;
        if (kind != which || (kind == 2 && keel_own_point(p->name)))
            continue;
        if (n++ == 0)
            (void)fprintf(f, "  %s:\n", title);
        (void)fprintf(f, "    %-32s %12llu evaluations %10llu fires %3u site%s%s\n", p->name,
                      p->evaluations, p->fires, p->sites, p->sites == 1 ? "" : "s",
                      p->armed ? "  (armed)" : "");
        print_sites(f, snap, p->name);
    }
}

#endif

void keel_stress_summary(FILE *f)
{
    if (f == NULL)
        return;
#if KEEL_DEVEL
    keel__stress_snapshot snap;
    keel_status s = keel__stress_snapshot_take(&snap);
    if (!keel_ok(s)) {
        char text[256];
        (void)keel_status_format(s, text, sizeof(text));
        (void)fprintf(f, "keel: stress summary unavailable: %s\n", text);
        keel_status_free(s);
        return;
    }
    size_t fired = 0;
    size_t evaluated = 0;
    size_t own_unreached = 0;
    for (size_t i = 0; i < snap.npoints; i++) {
        fired += snap.points[i].fires > 0;
        evaluated += snap.points[i].evaluations > 0;
        own_unreached += snap.points[i].evaluations == 0 && keel_own_point(snap.points[i].name);
    }
    size_t shown = snap.npoints - own_unreached;
    (void)fprintf(f,
                  "keel: stress summary: %zu points, %zu fired, %zu evaluated but never fired, "
                  "%zu never reached",
                  shown, fired, evaluated - fired, shown - evaluated);
    if (own_unreached > 0)
        (void)fprintf(f, " (and %zu of libkeel's own, keel.*, not reached)", own_unreached);
    (void)fputc('\n', f);
    char line[4096];
    if (keel__stress_replay(snap.spec, snap.seed, line, sizeof(line)) < sizeof(line))
        (void)fprintf(f, "  replay: %s\n", line);
    else
        (void)fprintf(f,
                      "  replay: KEEL_OPTIONS with this spec and stress.seed=%llu (too long to "
                      "quote here)\n",
                      snap.seed);
    print_group(f, &snap, "fired", 0);
    print_group(f, &snap, "evaluated, never fired", 1);
    print_group(f, &snap, "never reached", 2);
    for (size_t i = 0; i < snap.nunmatched; i++)
        (void)fprintf(f, "  entry '%s' matched no stress point\n", snap.unmatched[i]);
    keel__stress_snapshot_free(&snap);
#else
    (void)fprintf(f, "keel: stress options are compiled out of release builds\n");
#endif
}

static void json_str(FILE *f, const char *s)
{
    char buf[1024];
    size_t pos = 0;
    keel__buf_json_str(buf, sizeof(buf), &pos, s);
    (void)fwrite(buf, 1, pos < sizeof(buf) ? pos : sizeof(buf) - 1, f);
}

void keel_stress_json(FILE *f)
{
    if (f == NULL)
        return;
    keel__stress_snapshot snap;
    keel_status s = keel__stress_snapshot_take(&snap);
    if (!keel_ok(s)) {
        keel_status_free(s);
        (void)fprintf(f, "{\"error\":\"out of memory\"}\n");
        return;
    }
    (void)fprintf(f, "{\"seed\":%llu,\"spec\":", snap.seed);
    json_str(f, snap.spec != NULL ? snap.spec : "");
    (void)fprintf(f, ",\"points\":[\n");
    for (size_t i = 0; i < snap.npoints; i++) {
        const keel__stress_point_info *p = &snap.points[i];
        (void)fprintf(f, "{\"name\":");
        json_str(f, p->name);
        (void)fprintf(f, ",\"evaluations\":%llu,\"fires\":%llu,\"armed\":%s,\"sites\":[",
                      p->evaluations, p->fires, p->armed ? "true" : "false");
        bool first = true;
        for (size_t k = 0; k < snap.nsites; k++) {
            const keel__stress_site_info *si = &snap.sites[k];
            if (strcmp(si->name, p->name) != 0)
                continue;
            (void)fprintf(f, "%s{\"file\":", first ? "" : ",");
            json_str(f, si->file);
            (void)fprintf(f, ",\"line\":%d,\"function\":", si->line);
            json_str(f, si->func);
            (void)fprintf(f, ",\"evaluations\":%llu,\"fires\":%llu}", si->evaluations, si->fires);
            first = false;
        }
        (void)fprintf(f, "]}%s\n", i + 1 < snap.npoints ? "," : "");
    }
    (void)fprintf(f, "],\"unmatched\":[");
    for (size_t i = 0; i < snap.nunmatched; i++) {
        if (i > 0)
            (void)fputc(',', f);
        json_str(f, snap.unmatched[i]);
    }
    (void)fprintf(f, "]}\n");
    keel__stress_snapshot_free(&snap);
}

#if KEEL_DEVEL
void keel__stress_at_exit(void)
{
    if (keel__opt_bool(KEEL__OPT_STRESS_SUMMARY))
        keel_stress_summary(stderr);
    const char *path = keel__opt_str(KEEL__OPT_STRESS_JSON);
    if (path[0] != '\0') {
        FILE *f = fopen(path, "we");
        if (f != NULL) {
            keel_stress_json(f);
            if (fclose(f) != 0)
                f = NULL;
        }
        if (f == NULL) {
            keel_report *r =
                keel_report_begin(KEEL_REPORT_OPTIONS, __FILE__, __LINE__, __func__,
                                  "cannot write stress.json file '%s': %s", path, strerror(errno));
            keel_report_no_backtrace(r);
            (void)keel_report_emit(r);
        }
    }
}
#else
void keel__stress_at_exit(void)
{
}
#endif
