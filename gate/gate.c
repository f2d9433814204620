/*
 * gate.c - the gatekeeper: queue -> scheduler -> merge -> jobs -> land.
 *
 * One thread (the caller of gate_run) owns the store, the repository and the
 * scheduler; the executor's threads only run jobs (pool.c).  Every step is a
 * store transaction followed by a stress point that can end the process
 * there, so a test can kill the gate between any two steps.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "gate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "gate_int.h"
#include "remote.h"
#include "git.h"
#include "notify.h"
#include "pool.h"
#include "scheduler.h"

static long long now_s(void)
{
    return (long long)time(NULL);
}

/* A stress point that simulates kill -9 of the gate at this step. */
static void crash_if(bool fire, const char *name)
{
    if (fire) {
        (void)fprintf(stderr, "keel-gate: stress point 'gate.%s' fired: exiting as if killed\n",
                      name);
        _exit(99);
    }
}
#define CRASH_POINT(name) crash_if(KEEL_STRESS(name), #name)

keel_status gate_make_dir(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return KEEL_ERR_SYS(errno, "cannot create directory '%s'", dir);
    return KEEL_OK;
}

void gate_options_default(gate_options *o)
{
    KEEL_ASSERT(o != NULL);
    memset(o, 0, sizeof(*o));
    o->repo = ".";
    o->out = stdout;
    o->poll_ms = 1000;
}

gate_store *gate_get_store(gate *g)
{
    return g->store;
}

const char *gate_target(const gate *g)
{
    return g->target;
}

void gate_say(gate *g, const char *fmt, ...)
{
    if (g->out == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    (void)vfprintf(g->out, fmt, ap);
    va_end(ap);
    (void)fflush(g->out);
}

keel_status gate_open(const gate_options *o, gate **out)
{
    KEEL_ASSERT(o != NULL && out != NULL);
    *out = NULL;
    void *mem = NULL;
    keel_status s = keel_heap_calloc(GATE_HEAP, 1, sizeof(gate), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "opening the gate");
    gate *g = (gate *)mem;
    g->out = o->out;
    g->poll_ms = o->poll_ms > 0 ? o->poll_ms : 1000;
    (void)snprintf(g->repo_path, sizeof(g->repo_path), "%s", o->repo != NULL ? o->repo : ".");
    s = gate_remote_is_url(g->repo_path) ? gate_repo_open_remote(g->repo_path, o->mirror, &g->repo)
                                         : gate_repo_open(g->repo_path, &g->repo);
    if (keel_ok(s)) {
        if (o->target != NULL)
            (void)snprintf(g->target, sizeof(g->target), "%s", o->target);
        else
            s = gate_repo_head_branch(g->repo, g->target, sizeof(g->target));
    }
    if (keel_ok(s))
        s = gate_branch_check(g->target);
    if (keel_ok(s)) {
        if (o->state != NULL)
            (void)snprintf(g->state, sizeof(g->state), "%s", o->state);
        else
            (void)snprintf(g->state, sizeof(g->state), "%skeel-gate.db",
                           gate_repo_git_dir(g->repo));
        (void)snprintf(g->work, sizeof(g->work), "%s.d", g->state);
        char sub[GATE_PATH_MAX + 16];
        s = gate_make_dir(g->work);
        (void)snprintf(sub, sizeof(sub), "%s/logs", g->work);
        if (keel_ok(s))
            s = gate_make_dir(sub);
        (void)snprintf(sub, sizeof(sub), "%s/jobs", g->work);
        if (keel_ok(s))
            s = gate_make_dir(sub);
        gate_fmt(g->records, sizeof(g->records), "%s/running", g->work);
        if (keel_ok(s))
            s = gate_make_dir(g->records);
    }
    if (keel_ok(s))
        s = gate_store_open(g->state, &g->store);
    if (keel_ok(s))
        s = gate_hidden_paths(g, &g->hidden);
    if (!keel_ok(s)) {
        gate_close(g);
        return s;
    }
    *out = g;
    return KEEL_OK;
}

void gate_close(gate *g)
{
    if (g == NULL)
        return;
    gate_store_close(g->store);
    gate_repo_close(g->repo);
    keel_heap_free(GATE_HEAP, g);
}

keel_status gate_submit(gate *g, const char *branch, int priority, long long *id)
{
    KEEL_ASSERT(g != NULL && id != NULL);
    keel_status s = gate_branch_check(branch);
    if (!keel_ok(s))
        return s;
    if (strcmp(branch, g->target) == 0)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_INVAL, "'%s' is the target: submit a branch with changes for it",
                     branch),
            "branch", branch);
    char head[GATE_HEX];
    s = gate_branch_head(g->repo, branch, head);
    if (keel_ok(s))
        s = gate_store_submit(g->store, branch, head, g->target, priority, now_s(), id);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "submitting '%s'", branch);
    gate_say(g, "queued change %lld: '%s' at %.12s for '%s' (priority %d)\n", *id, branch, head,
             g->target, priority);
    return KEEL_OK;
}

keel_status gate_cancel(gate *g, long long id)
{
    KEEL_ASSERT(g != NULL);
    keel_status s = gate_store_cancel(g->store, id, now_s());
    if (keel_ok(s))
        gate_say(g, "cancelled change %lld\n", id);
    return s;
}

/*
 * What no job may see (sandbox.h): the store and its -wal, -shm and -journal,
 * <state>.d (logs, records, every job's tree), the repository's git dir or the
 * mirror (and a file:// remote), the default mirrors' directory, and the
 * gate's credentials: $HOME (~/.ssh, ~/.git-credentials, ...) and the
 * directory of SSH_AUTH_SOCK.
 */
keel_status gate_hidden_paths(gate *g, gate_hidden *h)
{
    static const char *const store_files[] = {"", "-wal", "-shm", "-journal"};
    memset(h, 0, sizeof(*h));
    char p[GATE_PATH_MAX + 16];
    keel_status s = KEEL_OK;
    for (size_t i = 0; keel_ok(s) && i < 4; i++) {
        gate_fmt(p, sizeof(p), "%s%s", g->state, store_files[i]);
        s = gate_hidden_add(h, p, true);
    }
    if (keel_ok(s))
        s = gate_hidden_add(h, g->work, true);
    if (keel_ok(s))
        s = gate_hidden_add(h, gate_repo_git_dir(g->repo), true);
    if (keel_ok(s) && strncmp(g->repo_path, "file://", 7) == 0)
        s = gate_hidden_add(h, g->repo_path + 7, true);
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    const char *sock = getenv("SSH_AUTH_SOCK");
    if (keel_ok(s) && xdg != NULL && xdg[0] == '/') {
        gate_fmt(p, sizeof(p), "%s/keel-gate", xdg);
        s = gate_hidden_add(h, p, true);
    }
    if (keel_ok(s) && home != NULL && home[0] == '/')
        s = gate_hidden_add(h, home, false);
    const char *slash = sock != NULL && sock[0] == '/' ? strrchr(sock, '/') : NULL;
    if (keel_ok(s) && slash != NULL && slash != sock) {
        gate_fmt(p, sizeof(p), "%.*s", (int)(slash - sock), sock);
        s = gate_hidden_add(h, p, false);
    }
    return KEEL_CONTEXT(s, "listing what jobs may not see");
}

/* The configuration of `commit` (.keel/gate.conf in its tree). */
keel_status gate_load_config(gate *g, const char *commit, gate_config **cfg)
{
    char *text = NULL;
    size_t len = 0;
    *cfg = NULL;
    keel_status s = gate_read_file(g->repo, commit, ".keel/gate.conf", &text, &len);
    if (keel_ok(s)) {
        char origin[64];
        (void)snprintf(origin, sizeof(origin), "%.12s:.keel/gate.conf", commit);
        s = gate_config_parse(text, len, origin, cfg);
    }
    gate_file_free(text);
    if (keel_ok(s)) { /* a `writable` path that would expose the gate never lands either */
        s = gate_sandbox_check_config(&g->hidden, *cfg);
        if (!keel_ok(s)) {
            gate_config_free(*cfg);
            *cfg = NULL;
        }
    }
    return s;
}

unsigned gate_slots(const gate_config *cfg)
{
    if (cfg->slots > 0)
        return cfg->slots;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 64 ? (unsigned)n : 4;
}

/* ---- try --------------------------------------------------------------------------- */

keel_status gate_try(gate *g, const char *branch, bool *passed)
{
    KEEL_ASSERT(g != NULL && passed != NULL);
    *passed = false;
    char head[GATE_HEX], tip[GATE_HEX], merge[GATE_HEX];
    keel_status s = gate_branch_check(branch);
    if (keel_ok(s))
        s = gate_branch_head(g->repo, branch, head);
    if (keel_ok(s))
        s = gate_branch_head(g->repo, g->target, tip);
    if (keel_ok(s)) {
        const char *heads[1] = {head};
        s = gate_merge(g->repo, tip, heads, 1, merge);
    }
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "trying '%s' on '%s'", branch, g->target);
    gate_config *cfg = NULL;
    s = gate_load_config(g, merge, &cfg);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "trying '%s' on '%s'", branch, g->target);
    if (cfg == NULL)
        return KEEL_ERR(KEEL_E_INTERNAL, "no configuration for '%s'", branch);
    gate_config *tip_cfg = NULL; /* the security settings are the target's (sandbox.h) */
    s = gate_load_config(g, tip, &tip_cfg);
    if (!keel_ok(s))
        keel_status_ignore(s, "a target without a configuration: the strictest defaults");
    s = gate_sandbox_ready(tip_cfg);
    if (!keel_ok(s)) {
        gate_config_free(tip_cfg);
        gate_config_free(cfg);
        return KEEL_CONTEXT(s, "trying '%s' on '%s'", branch, g->target);
    }
    gate_say(g, "trying '%s' (%.12s) merged on '%s' (%.12s) as %.12s: %zu configurations\n", branch,
             head, g->target, tip, merge, cfg->nconfigs);
    size_t njobs = cfg->nconfigs;
    void *mem = NULL;
    s = keel_heap_calloc(GATE_HEAP, njobs, sizeof(gate_job_run), &mem);
    if (!keel_ok(s)) {
        gate_config_free(cfg);
        return KEEL_CONTEXT(s, "trying '%s': %zu jobs", branch, njobs);
    }
    gate_job_run *jobs = (gate_job_run *)mem;
    gate_pool *pool = NULL;
    s = gate_pool_new(gate_slots(cfg), &pool);
    for (size_t i = 0; keel_ok(s) && i < njobs; i++) {
        const gate_matrix_config *m = &cfg->configs[i];
        gate_job_run *j = &jobs[i];
        j->job_id = (long long)i;
        gate_job_from_config(j, m);
        s = gate_job_policy_from(&j->policy, tip_cfg, m->name);
        j->hidden = &g->hidden;
        j->records = g->records;
        if (!keel_ok(s))
            break;
        gate_fmt(j->dir, sizeof(j->dir), "%s/jobs/try-%d-%zu", g->work, (int)getpid(), i);
        gate_fmt(j->log, sizeof(j->log), "%s/logs/try-%.12s-%s.log", g->work, merge, m->name);
        (void)unlink(j->log);
        gate_rm_tree(j->dir);
        s = gate_checkout(g->repo, merge, NULL, j->dir);
    }
    for (size_t i = 0; keel_ok(s) && i < njobs; i++)
        gate_pool_submit(pool, &jobs[i]);
    size_t done = 0;
    while (keel_ok(s) && done < njobs)
        if (gate_pool_wait(pool, 1000) != NULL)
            done++;
    if (keel_ok(s)) {
        bool all = true;
        gate_say(g, "%-24s %-9s %-10s %5s %9s  %s\n", "configuration", "required", "result", "exit",
                 "seconds", "log");
        for (size_t i = 0; i < njobs; i++) {
            gate_job_run *j = &jobs[i];
            bool ok = j->result == GATE_EXEC_PASSED && j->error[0] == '\0';
            if (!ok && j->required)
                all = false;
            gate_say(g, "%-24s %-9s %-10s %5d %9.1f  %s\n", j->config, j->required ? "yes" : "no",
                     j->error[0] != '\0' ? "error" : gate_exec_result_name(j->result), j->exit_code,
                     (double)j->elapsed_ms / 1000.0, j->log);
            if (j->error[0] != '\0' || j->reason[0] != '\0')
                gate_say(g, "  %s: %s\n", j->error[0] != '\0' ? "the gate could not run it" : "why",
                         j->error[0] != '\0' ? j->error : j->reason);
            gate_rm_tree(j->dir);
        }
        *passed = all;
        gate_say(g, "%s: '%s' %s on '%s'\n", all ? "passed" : "failed", branch,
                 all ? "passes every required configuration" : "fails a required configuration",
                 g->target);
    }
    gate_pool_delete(pool); /* every job came back: it frees none of them */
    keel_heap_free(GATE_HEAP, jobs);
    gate_config_free(tip_cfg);
    gate_config_free(cfg);
    return s;
}

/* ---- notifications --------------------------------------------------------------------- */

void gate_notify(gate *g, const char *event, long long change, const char *merge,
                 const char *reason)
{
    if (g->tip_cfg == NULL || g->tip_cfg->notify.n == 0)
        return;
    gate_change c;
    memset(&c, 0, sizeof(c));
    keel_status s = gate_store_get(g->store, change, &c);
    if (!keel_ok(s))
        keel_status_ignore(s, "the event then has no branch");
    char json[2048];
    size_t n = (size_t)snprintf(json, sizeof(json), "{\"event\":");
    n = gate_json_str(json, sizeof(json), n, event);
    n += (size_t)snprintf(json + n, n < sizeof(json) ? sizeof(json) - n : 0,
                          ",\"change\":%lld,\"target\":", change);
    n = gate_json_str(json, sizeof(json), n, g->target);
    n += (size_t)snprintf(json + n, n < sizeof(json) ? sizeof(json) - n : 0, ",\"branch\":");
    n = gate_json_str(json, sizeof(json), n, c.branch);
    n += (size_t)snprintf(json + n, n < sizeof(json) ? sizeof(json) - n : 0,
                          ",\"head\":\"%s\",\"merge\":\"%s\",\"reason\":", c.head,
                          merge != NULL ? merge : "");
    n = gate_json_str(json, sizeof(json), n, reason != NULL ? reason : "");
    (void)snprintf(json + n, n < sizeof(json) ? sizeof(json) - n : 0, "}\n");
    char log[GATE_PATH_MAX + 32];
    gate_fmt(log, sizeof(log), "%s/logs/notify.log", g->work);
    s = gate_notify_run(&g->tip_cfg->notify, gate_repo_dir(g->repo), json, log,
                        GATE_NOTIFY_TIMEOUT_MS);
    if (keel_ok(s))
        return;
    g->stats.notify_failures++;
    char msg[512], detail[1024];
    (void)keel_status_format(s, msg, sizeof(msg));
    keel_status_free(s);
    gate_say(g, "warning: notify hook failed for %s of change %lld: %s\n", event, change, msg);
    n = (size_t)snprintf(detail, sizeof(detail), "{\"event\":");
    n = gate_json_str(detail, sizeof(detail), n, event);
    n += (size_t)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0, ",\"error\":");
    n = gate_json_str(detail, sizeof(detail), n, msg);
    (void)snprintf(detail + n, n < sizeof(detail) ? sizeof(detail) - n : 0, "}");
    s = gate_store_event(g->store, now_s(), "notify-failed", change, detail);
    if (!keel_ok(s))
        keel_status_ignore(s, "a hook's failure is only recorded, never fatal");
}

/* ---- the crash points the loop passes (gate_loop.c calls these) ---------------------------- */

void gate_point_after_merge(void)
{
    CRASH_POINT(crash_after_merge);
}
void gate_point_after_job(void)
{
    CRASH_POINT(crash_after_job);
}
void gate_point_before_cas(void)
{
    CRASH_POINT(crash_before_cas);
}
void gate_point_after_cas(void)
{
    CRASH_POINT(crash_after_cas);
}
void gate_point_after_take(void)
{
    CRASH_POINT(crash_after_take);
}
