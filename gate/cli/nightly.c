/*
 * nightly.c - keel-gate nightly: the nightly level's configurations, when
 * each is next due and its last runs; with --now, every one due now.
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gate_int.h"
#include "nightly.h"
#include "store_nightly.h"
#include "text.h"

enum { NIGHTLY_RUNS_SHOWN = 5 };

static void utc_text(long long t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M UTC", &tm) == 0)
        (void)snprintf(buf, size, "?");
}

/* The target's head and its configuration, as the next `run` reads it. */
static keel_status target_config(gate *g, char tip[GATE_HEX], gate_config **cfg)
{
    keel_status s = gate_branch_known(g->repo, g->target, tip);
    if (keel_ok(s))
        s = gate_load_config(g, tip, cfg);
    return KEEL_CONTEXT(s, "reading the configuration of '%s'", g->target);
}

static keel_status show(gate *g, const gate_config *cfg, FILE *f)
{
    keel_status s = KEEL_OK;
    size_t shown = 0;
    for (size_t i = 0; keel_ok(s) && cfg != NULL && i < cfg->nconfigs; i++) {
        const gate_matrix_config *m = &cfg->configs[i];
        if (!gate_config_at(m, GATE_LEVEL_NIGHTLY))
            continue;
        shown++;
        long long due = 0;
        bool found = false;
        s = gate_store_nightly_due(g->store, g->target, m->name, &due, &found);
        char when[40];
        utc_text(due, when, sizeof(when));
        if (keel_ok(s))
            gate_text_printf(f, "%s: schedule '%s' (UTC), jitter %u s; next due %s\n", m->name,
                             m->schedule_text, m->jitter_s,
                             found ? when : "when a gate first runs with it");
        gate_nightly_row rows[NIGHTLY_RUNS_SHOWN];
        size_t n = 0;
        if (keel_ok(s))
            s = gate_store_nightly_history(g->store, g->target, m->name, rows, NIGHTLY_RUNS_SHOWN,
                                           &n);
        for (size_t k = 0; keel_ok(s) && k < n; k++) {
            utc_text(rows[k].due_at, when, sizeof(when));
            gate_text_printf(f, "  %s  %.12s  %s%s%s\n", when, rows[k].commit,
                             gate_nightly_outcome(&rows[k]), rows[k].log[0] != '\0' ? "  " : "",
                             rows[k].log);
        }
        if (keel_ok(s) && n == 0)
            (void)fprintf(f, "  no run yet\n");
    }
    if (keel_ok(s) && shown == 0)
        gate_text_printf(f, "'%s' has no configuration at level nightly\n", g->target);
    return s;
}

keel_status gate_nightly_cmd(gate *g, bool now, FILE *f)
{
    KEEL_ASSERT(g != NULL && f != NULL);
    gate_config *cfg = NULL;
    char tip[GATE_HEX];
    keel_status s = target_config(g, tip, &cfg);
    size_t n = 0;
    if (keel_ok(s) && now)
        s = gate_nightly_now(g, cfg, tip, gate_now_s(), &n);
    if (keel_ok(s) && now)
        gate_text_printf(f,
                         "%zu nightly configuration%s of '%s' due now, on %.12s: the running gate "
                         "(or the next 'keel-gate run') builds %s\n",
                         n, n == 1 ? "" : "s", g->target, tip, n == 1 ? "it" : "them");
    else if (keel_ok(s))
        s = show(g, cfg, f);
    gate_config_free(cfg);
    return s;
}
