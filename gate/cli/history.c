/*
 * history.c - keel-gate history: the post level's results, each commit of
 * the target (newest first) by each configuration at level post; then the
 * nightly level's runs, a row each (newest first): its commit, its
 * configuration and its result.
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gate_int.h"
#include "query.h"
#include "store_nightly.h"
#include "store_post.h"
#include "text.h"

enum {
    HISTORY_ROWS = 1024,  /* (commit, configuration) rows read: the newest */
    HISTORY_CONFIGS = 16, /* columns of the table; more are in --json */
    HISTORY_NIGHTLY = 64  /* nightly runs shown: the newest */
};

/* The configurations of the rows, each once, in name order (the rows' order within a commit). */
static size_t columns(const gate_post_row *rows, size_t n, const char **names, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < k && strcmp(names[j], rows[i].config) != 0)
            j++;
        if (j == k && k < max)
            names[k++] = rows[i].config;
    }
    for (size_t i = 1; i < k; i++) /* insertion sort: a handful */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    return k;
}

static void cell(char *buf, size_t size, const gate_post_row *r)
{
    const char *o = gate_post_outcome(r);
    if (r->runs > 1 && strcmp(o, "running") != 0)
        (void)snprintf(buf, size, "%s %u/%u", o, r->fails, r->runs);
    else
        (void)snprintf(buf, size, "%s", o);
}

/* ,"nightly":[...]: the nightly runs, newest first. */
static void print_nightly_json(FILE *f, const gate_nightly_row *runs, size_t n)
{
    (void)fprintf(f, ",\"nightly\":[");
    for (size_t i = 0; i < n; i++) {
        (void)fprintf(f, "%s{\"commit\":\"%s\",\"config\":", i > 0 ? "," : "", runs[i].commit);
        gate_json_fput(f, runs[i].config);
        (void)fprintf(f, ",\"due_at\":%lld,\"result\":\"%s\",\"runs\":%u,\"fails\":%u,\"log\":",
                      runs[i].due_at, gate_nightly_outcome(&runs[i]), runs[i].runs, runs[i].fails);
        gate_json_fput(f, runs[i].log);
        (void)fprintf(f, "}");
    }
    (void)fprintf(f, "]");
}

/* The nightly runs' rows after the post table: commit, configuration, result, when due. */
static void print_nightly_text(FILE *f, gate *g, const gate_nightly_row *runs, size_t n,
                               bool after_table)
{
    if (n == 0)
        return;
    if (after_table) /* a blank line after the post table (gate_text_printf escapes inner ones) */
        (void)fputc('\n', f);
    gate_text_printf(f, "nightly runs (newest first):\n");
    gate_text_printf(f, "%-12s  %-13s  %-13s  %-20s  subject\n", "commit", "config", "result",
                     "due (UTC)");
    for (size_t i = 0; i < n; i++) {
        char subject[GATE_POST_SUBJECT_MAX] = "", due[32] = "", result[40];
        keel_status s = gate_commit_subject(g->repo, runs[i].commit, subject, sizeof(subject));
        keel_status_ignore(s, "a subject is only shown");
        time_t t = (time_t)runs[i].due_at;
        struct tm tm;
        if (gmtime_r(&t, &tm) != NULL)
            (void)strftime(due, sizeof(due), "%Y-%m-%d %H:%M:%S", &tm);
        const char *o = gate_nightly_outcome(&runs[i]);
        if (runs[i].runs > 1 && strcmp(o, "running") != 0)
            (void)snprintf(result, sizeof(result), "%s %u/%u", o, runs[i].fails, runs[i].runs);
        else
            (void)snprintf(result, sizeof(result), "%s", o);
        gate_text_printf(f, "%.12s  %-13s  %-13s  %-20s  %s\n", runs[i].commit, runs[i].config,
                         result, due, subject);
    }
}

static void print_json(FILE *f, const char *target, const gate_post_row *rows, size_t n,
                       const gate_nightly_row *runs, size_t nruns)
{
    (void)fprintf(f, "{\"target\":");
    gate_json_fput(f, target);
    (void)fprintf(f, ",\"commits\":[");
    for (size_t i = 0; i < n; i++) {
        bool first = i == 0 || strcmp(rows[i - 1].commit, rows[i].commit) != 0;
        bool last = i + 1 == n || strcmp(rows[i + 1].commit, rows[i].commit) != 0;
        if (first) {
            (void)fprintf(f, "%s{\"commit\":\"%s\",\"seq\":%lld,\"subject\":", i > 0 ? "," : "",
                          rows[i].commit, rows[i].seq);
            gate_json_fput(f, rows[i].subject);
            (void)fprintf(f, ",\"results\":[");
        }
        (void)fprintf(f, "%s{\"config\":", first ? "" : ",");
        gate_json_fput(f, rows[i].config);
        (void)fprintf(f, ",\"result\":\"%s\",\"runs\":%u,\"fails\":%u,\"log\":",
                      gate_post_outcome(&rows[i]), rows[i].runs, rows[i].fails);
        gate_json_fput(f, rows[i].log);
        (void)fprintf(f, "}%s", last ? "]}" : "");
    }
    (void)fprintf(f, "]");
    print_nightly_json(f, runs, nruns);
    (void)fprintf(f, "}\n");
}

static void print_text(FILE *f, const char *target, const gate_post_row *rows, size_t n,
                       bool nightly)
{
    if (n == 0 && nightly)
        return; /* the nightly runs follow */
    if (n == 0) {
        gate_text_printf(f,
                         "no post builds for '%s' (no configuration at level post, or no commit "
                         "reached it since)\n",
                         target);
        return;
    }
    const char *names[HISTORY_CONFIGS] = {NULL}; /* columns() sets the first k */
    size_t k = columns(rows, n, names, HISTORY_CONFIGS);
    int width[HISTORY_CONFIGS];
    char line[2048];
    size_t len = (size_t)snprintf(line, sizeof(line), "%-12s", "commit");
    for (size_t c = 0; c < k; c++) {
        width[c] = (int)strlen(names[c]) > 13 ? (int)strlen(names[c]) : 13;
        len += (size_t)snprintf(line + len, sizeof(line) - len, "  %-*.*s", width[c], 64, names[c]);
        if (len >= sizeof(line))
            len = sizeof(line) - 1;
    }
    gate_text_printf(f, "%s  subject\n", line);
    for (size_t i = 0; i < n;) {
        size_t end = i;
        while (end < n && strcmp(rows[end].commit, rows[i].commit) == 0)
            end++;
        len = (size_t)snprintf(line, sizeof(line), "%.12s", rows[i].commit);
        for (size_t c = 0; c < k; c++) {
            char text[40] = "-"; /* not at level post for this commit */
            for (size_t r = i; r < end; r++)
                if (strcmp(rows[r].config, names[c]) == 0)
                    cell(text, sizeof(text), &rows[r]);
            len += (size_t)snprintf(line + len, sizeof(line) - len, "  %-*s", width[c], text);
            if (len >= sizeof(line))
                len = sizeof(line) - 1;
        }
        gate_text_printf(f, "%s  %s\n", line, rows[i].subject);
        i = end;
    }
}

keel_status gate_history(gate *g, const char *config, FILE *f, unsigned flags)
{
    KEEL_ASSERT(g != NULL && f != NULL);
    void *mem = NULL;
    keel_status s = keel_heap_calloc(GATE_HEAP, HISTORY_ROWS, sizeof(gate_post_row), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "reading the history");
    gate_post_row *rows = (gate_post_row *)mem;
    size_t n = 0;
    s = gate_store_post_history(g->store, g->target, config, rows, HISTORY_ROWS, &n);
    if (keel_ok(s) && n == HISTORY_ROWS) /* the oldest commit may be cut: leave it out whole */
        while (n > 1 && strcmp(rows[n - 1].commit, rows[n - 2].commit) == 0)
            n--;
    if (keel_ok(s) && n == HISTORY_ROWS)
        n--;
    void *nmem = NULL;
    if (keel_ok(s))
        s = keel_heap_calloc(GATE_HEAP, HISTORY_NIGHTLY, sizeof(gate_nightly_row), &nmem);
    gate_nightly_row *runs = (gate_nightly_row *)nmem;
    size_t nruns = 0;
    if (keel_ok(s))
        s = gate_store_nightly_history(g->store, g->target, config, runs, HISTORY_NIGHTLY, &nruns);
    /* a configuration no longer on the target still has its history; a name never seen is a typo */
    if (keel_ok(s) && config != NULL && n == 0 && nruns == 0 && !gate_target_has_config(g, config))
        s = keel_status_with_str(KEEL_ERR(KEEL_E_NOTFOUND,
                                          "no configuration '%s' on '%s' (and no history of it)",
                                          config, g->target),
                                 "config", config);
    if (keel_ok(s) && (flags & GATE_HISTORY_JSON) != 0) {
        print_json(f, g->target, rows, n, runs, nruns);
    } else if (keel_ok(s)) {
        print_text(f, g->target, rows, n, nruns > 0);
        print_nightly_text(f, g, runs, nruns, n > 0);
    }
    keel_heap_free(GATE_HEAP, nmem);
    keel_heap_free(GATE_HEAP, rows);
    return s;
}
