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
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ccache.h"
#include "config.h"
#include "gate_int.h"
#include "signature.h"
#include "remote.h"
#include "git.h"
#include "notify.h"
#include "pool.h"
#include "scheduler.h"
#include "text.h"

enum { TRY_TAIL_LINES = 10, TRY_TAIL_BYTES = 4096 }; /* try: a failed job's last lines */

static long long now_s(void)
{
    return (long long)time(NULL);
}

void gate_crash_if(bool fire, const char *name)
{
    if (fire) {
        (void)fprintf(stderr, "keel-gate: stress point 'gate.%s' fired: exiting as if killed\n",
                      name);
        _exit(99);
    }
}
keel_status gate_make_dir(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return KEEL_ERR_SYS(errno, "cannot create directory '%s'", dir);
    return KEEL_OK;
}

keel_status gate_make_dirs(const char *dir)
{
    char buf[GATE_DIR_MAX];
    if (strlen(dir) >= sizeof(buf))
        return KEEL_ERR(KEEL_E_RANGE, "directory '%s' is too long", dir);
    (void)snprintf(buf, sizeof(buf), "%s", dir);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        keel_status s = gate_make_dir(buf);
        *p = '/';
        if (!keel_ok(s))
            return s;
    }
    return gate_make_dir(buf);
}

/*
 * A branch name as one directory name: letters, digits, '.', '_' and '-' as
 * they are, every other byte as +XX (so "a/b" and "a+b" stay apart, and no
 * name is "." or "..").
 */
static void dir_name(const char *name, char *buf, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0' && n + 4 < size; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
                     (*p == '.' && p != (const unsigned char *)name);
        if (plain) {
            buf[n++] = (char)*p;
        } else {
            buf[n++] = '+';
            buf[n++] = hex[*p >> 4];
            buf[n++] = hex[*p & 15];
        }
    }
    buf[n] = '\0';
}

/* Is `path` the directory `dir` or under it (both resolved)? */
static bool inside(const char *path, const char *dir)
{
    if (dir == NULL)
        return false;
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(path, a) == NULL || realpath(dir, b) == NULL)
        return false;
    size_t n = strlen(b);
    return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/' || (n == 1 && b[0] == '/'));
}

/*
 * Where this target's jobs get their work trees: never inside the
 * repository (its git directory or its working directory), or `git` in a
 * job would find the gate's repository instead of the candidate it tests.
 * Given (--work): refused when inside.  By default <state>.d/work, or, when
 * that is inside (the default store is in the git directory), a directory
 * of the user's cache named after the store.
 */
static keel_status trees_dir(gate *g, const char *given, const char *target_dir)
{
    const char *git_dir = gate_repo_git_dir(g->repo), *work_dir = gate_repo_workdir(g->repo);
    char base[GATE_DIR_MAX];
    if (given != NULL) {
        keel_status s = gate_make_dirs(given);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "the work trees' directory");
        if (inside(given, git_dir) || inside(given, work_dir))
            return keel_status_with_str(
                KEEL_ERR(KEEL_E_INVAL,
                         "work trees' directory '%s' is inside the repository '%s': git in a job "
                         "would find the gate's repository there; give a directory outside it",
                         given, work_dir != NULL ? work_dir : git_dir),
                "work", given);
        gate_fmt(g->tree_root, sizeof(g->tree_root), "%s/%s", given, target_dir);
        return KEEL_OK;
    }
    gate_fmt(base, sizeof(base), "%s/work", g->work);
    if (!inside(g->work, git_dir) && !inside(g->work, work_dir)) {
        gate_fmt(g->tree_root, sizeof(g->tree_root), "%s/%s", base, target_dir);
        return KEEL_OK;
    }
    char real[PATH_MAX];
    if (realpath(g->work, real) == NULL)
        return KEEL_ERR_SYS(errno, "cannot resolve '%s'", g->work);
    unsigned long long h = 1469598103934665603ull; /* FNV-1a of the store's directory */
    for (const unsigned char *p = (const unsigned char *)real; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ull;
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (cache != NULL && cache[0] == '/')
        gate_fmt(g->tree_root, sizeof(g->tree_root), "%s/keel-gate/work-%016llx/%s", cache, h,
                 target_dir);
    else if (home != NULL && home[0] == '/')
        gate_fmt(g->tree_root, sizeof(g->tree_root), "%s/.cache/keel-gate/work-%016llx/%s", home, h,
                 target_dir);
    else
        return KEEL_ERR(KEEL_E_NOTFOUND,
                        "no place for the work trees outside the repository: set HOME or "
                        "XDG_CACHE_HOME, or give --work DIR");
    return KEEL_OK;
}

/*
 * The target: --target, else the branch HEAD names; and what the branch's
 * own configuration says ([gate] target): by default the gate guards that
 * branch, given one it must be the same (run checks it again on the tip).
 */
static keel_status resolve_target(gate *g, const char *given)
{
    /* a given one checked whole: a name cut to fit could be another branch */
    keel_status s = given != NULL ? gate_branch_check(given)
                                  : gate_repo_head_branch(g->repo, g->target, sizeof(g->target));
    if (keel_ok(s) && given != NULL)
        (void)snprintf(g->target, sizeof(g->target), "%s", given);
    if (keel_ok(s))
        s = gate_branch_check(g->target);
    g->target_of_head = keel_ok(s) && given == NULL;
    char tip[GATE_HEX];
    if (keel_ok(s)) {
        s = gate_branch_known(g->repo, g->target, tip); /* no network: a remote's as last seen */
        if (!keel_ok(s)) {
            keel_status_ignore(s, "a branch without commits names no other target");
            return KEEL_OK;
        }
    }
    gate_config *cfg = NULL;
    if (keel_ok(s)) {
        s = gate_load_config(g, tip, &cfg);
        if (!keel_ok(s)) {
            keel_status_ignore(s, "run reports a configuration that does not parse");
            return KEEL_OK;
        }
    }
    if (keel_ok(s) && cfg->target_set)
        g->target_of_head = false;
    if (keel_ok(s) && gate_config_names_other(cfg, g->target)) {
        if (given != NULL)
            s = gate_target_mismatch(g->target, tip, cfg->target);
        else
            (void)snprintf(g->target, sizeof(g->target), "%s", cfg->target);
    }
    gate_config_free(cfg);
    if (keel_ok(s) && given == NULL)
        s = gate_branch_check(g->target);
    return s;
}

/* A branch given as the change is the target itself: what to do instead. */
static keel_status branch_is_target(const gate *g, const char *branch, const char *verb)
{
    return keel_status_with_str(
        g->target_of_head
            ? KEEL_ERR(KEEL_E_INVAL,
                       "'%s' is the target: with no --target and no target in [gate], the gate "
                       "guards the branch HEAD names; give --target BRANCH (the branch '%s' is "
                       "for), or set target in [gate] of .keel/gate.conf",
                       branch, branch)
            : KEEL_ERR(KEEL_E_INVAL, "'%s' is the target: %s a branch with changes for it", branch,
                       verb),
        "branch", branch);
}

keel_status gate_tip_config_broken(gate *g, keel_status why)
{
    char line[GATE_REASON_MAX];
    gate_status_line(why, line, sizeof(line));
    if (g->config_text == NULL)
        return KEEL_CONTEXT(
            why,
            "the configuration of '%s' at %.12s does not load, and run reads the target's "
            "configuration before anything else: a fix cannot go through the gate; push the fix "
            "to '%s' directly (git push origin <fix>:%s), or run keel-gate run --config FILE "
            "with a configuration that loads until the fix has landed (keel-gate check FILE "
            "checks one)",
            g->target, g->tip, g->target, g->target);
    keel_status_free(why);
    keel_status s = gate_config_parse(g->config_text, g->config_len, g->config_origin, &g->tip_cfg);
    if (keel_ok(s))
        s = gate_sandbox_check_config(&g->hidden, g->tip_cfg);
    if (!keel_ok(s)) {
        gate_config_free(g->tip_cfg);
        g->tip_cfg = NULL;
        return KEEL_CONTEXT(s, "the configuration given with --config '%s'", g->config_origin);
    }
    g->config_used = true;
    gate_say(g, "warning: the configuration of '%s' at %.12s does not load: %s\n", g->target,
             g->tip, line);
    gate_say(g,
             "warning: using '%s' instead (--config): for '%s' and for every change that leaves "
             "its .keel/gate.conf as it is, until a configuration that loads has landed\n",
             g->config_origin, g->target);
    size_t size = gate_json_str(NULL, 0, 0, g->config_origin) + gate_json_str(NULL, 0, 0, line) +
                  GATE_HEX + 64;
    void *mem = NULL;
    s = keel_heap_alloc(GATE_HEAP, size, &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "recording a 'config-override' event");
    char *detail = (char *)mem;
    size_t n = (size_t)snprintf(detail, size, "{\"file\":");
    n = gate_json_str(detail, size, n, g->config_origin);
    n += (size_t)snprintf(detail + n, size - n, ",\"tip\":\"%s\",\"error\":", g->tip);
    n = gate_json_str(detail, size, n, line);
    (void)snprintf(detail + n, size - n, "}");
    s = gate_store_event(g->store, now_s(), "config-override", 0, detail);
    keel_heap_free(GATE_HEAP, detail);
    return s;
}

bool gate_config_names_other(const gate_config *cfg, const char *target)
{
    if (!cfg->target_set || strcmp(cfg->target, target) == 0)
        return false;
    for (size_t i = 0; i < cfg->targets.n; i++)
        if (strcmp(cfg->targets.words[i], target) == 0)
            return false; /* one of the gate's targets */
    return true;
}

keel_status gate_target_mismatch(const char *target, const char *tip, const char *named)
{
    return keel_status_with_str(
        keel_status_with_str(
            KEEL_ERR(KEEL_E_INVAL,
                     "the configuration of '%s' (%.12s:.keel/gate.conf) says target = '%s': this "
                     "gate guards '%s'; run it with --target '%s', or change target in [gate]",
                     target, tip, named, target, named),
            "target", target),
        "configured", named);
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

const char *gate_state_dir(const gate *g)
{
    KEEL_ASSERT(g != NULL);
    return g->work;
}

void gate_status_line(keel_status s, char *buf, size_t size)
{
    KEEL_ASSERT(buf != NULL && size > 0);
    char text[4096];
    (void)keel_status_format(s, text, sizeof(text));
    size_t n = 0;
    buf[0] = '\0';
    for (char *line = text; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (strncmp(line, "  caused by: ", 13) == 0)
            line += 13;
        char *colon = strstr(line, ": "), *space = strchr(line, ' ');
        if (colon != NULL && strchr(line, '.') < colon && (space == NULL || space > colon))
            line = colon + 2; /* the code's name */
        char *at = strstr(line, " [at ");
        if (at != NULL)
            *at = '\0';
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '}' && strstr(line, " {") != NULL)
            *strstr(line, " {") = '\0'; /* the details */
        if (line[0] != '\0' && n + 1 < size) {
            int w = snprintf(buf + n, size - n, "%s%s", n > 0 ? ": " : "", line);
            n = w < 0 ? n : (size_t)w + n < size ? (size_t)w + n : size - 1;
        }
        line = next;
    }
}

void gate_say(gate *g, const char *fmt, ...)
{
    if (g->out == NULL)
        return;
    if (g->pool_core != NULL) /* one of several targets (gate_multi.c): which one says it */
        gate_text_printf(g->out, "[%s] ", g->target);
    va_list ap;
    va_start(ap, fmt);
    gate_text_vprintf(g->out, fmt, ap); /* names in it are anyone's: escaped (text.h) */
    va_end(ap);
    (void)fflush(g->out);
}

bool gate_store_absent(const char *path)
{
    KEEL_ASSERT(path != NULL);
    struct stat st;
    return stat(path, &st) != 0 && (errno == ENOENT || errno == ENOTDIR);
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
    g->pause_ms = o->pause_ms > 0 ? o->pause_ms : 1000;
    (void)snprintf(g->repo_path, sizeof(g->repo_path), "%s", o->repo != NULL ? o->repo : ".");
    s = gate_remote_is_url(g->repo_path) ? gate_repo_open_remote(g->repo_path, o->mirror, &g->repo)
                                         : gate_repo_open(g->repo_path, &g->repo);
    if (keel_ok(s))
        s = resolve_target(g, o->target);
    char target_dir[3 * GATE_BRANCH_MAX + 1];
    dir_name(g->target, target_dir, sizeof(target_dir));
    if (keel_ok(s)) {
        if (o->state != NULL)
            (void)snprintf(g->state, sizeof(g->state), "%s", o->state);
        else
            (void)snprintf(g->state, sizeof(g->state), "%skeel-gate.db",
                           gate_repo_git_dir(g->repo));
        (void)snprintf(g->work, sizeof(g->work), "%s.d", g->state);
        gate_fmt(g->tdir, sizeof(g->tdir), "%s/targets/%s", g->work, target_dir);
        if (o->existing && gate_store_absent(g->state)) /* a reader makes no store */
            s = keel_status_with_str(
                KEEL_ERR(KEEL_E_NOTFOUND,
                         "no store at '%s': no gate has run on this repository yet ('keel-gate "
                         "submit BRANCH' queues a change, 'keel-gate run' runs the queue)",
                         g->state),
                "store", g->state);
        if (keel_ok(s))
            s = gate_store_open(g->state, &g->store);
        if (keel_ok(s))
            gate_store_set_target(g->store, g->target);
    }
    if (keel_ok(s) && !gate_store_readonly(g->store)) { /* a reader (status, log) makes nothing */
        char sub[GATE_PATH_MAX + 16];
        s = gate_make_dir(g->work);
        (void)snprintf(sub, sizeof(sub), "%s/logs", g->work);
        if (keel_ok(s))
            s = gate_make_dir(sub);
        if (keel_ok(s))
            s = gate_make_dirs(g->tdir);
        if (keel_ok(s))
            s = trees_dir(g, o->work, target_dir);
        gate_fmt(g->records, sizeof(g->records), "%s/running", g->work);
        if (keel_ok(s))
            s = gate_make_dir(g->records);
        if (keel_ok(s))
            s = gate_hidden_paths(g, &g->hidden);
    }
    if (keel_ok(s) && o->config != NULL) { /* checked now: it is what run falls back on */
        gate_fmt(g->config_origin, sizeof(g->config_origin), "%s", o->config);
        s = gate_read_path(o->config, &g->config_text, &g->config_len);
        gate_config *cfg = NULL;
        if (keel_ok(s))
            s = gate_config_parse(g->config_text, g->config_len, g->config_origin, &cfg);
        if (keel_ok(s))
            s = gate_sandbox_check_config(&g->hidden, cfg);
        gate_config_free(cfg);
        if (!keel_ok(s))
            s = KEEL_CONTEXT(s, "the configuration given with --config '%s' does not load",
                             o->config);
    }
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
    keel_heap_free(GATE_HEAP, g->config_text);
    keel_heap_free(GATE_HEAP, g);
}

/* Does `tip`'s history hold `head`?  One that cannot be read: no (the merge tells whose fault). */
static bool holds(gate_repo *r, const char *head, const char *tip)
{
    bool in = false;
    keel_status s = gate_is_ancestor(r, head, tip, &in);
    if (!keel_ok(s)) {
        keel_status_ignore(s, "the change is merged and judged as before");
        return false;
    }
    return in;
}

/* The refusal of a change whose `head` the target's `tip` holds */
static keel_status already_in(const gate *g, const char *branch, const char *head, const char *tip)
{
    return keel_status_with_str(
        keel_status_with_str(
            KEEL_ERR(KEEL_E_EXISTS,
                     "'%s' (%.12s) is already in '%s' at %.12s: its head is in the target's "
                     "history, there is nothing to test or land",
                     branch, head, g->target, tip),
            "branch", branch),
        "tip", tip);
}

keel_status gate_already_in(gate *g, const char *branch, const char *head, const char *tip)
{
    return holds(g->repo, head, tip) ? already_in(g, branch, head, tip) : KEEL_OK;
}

/* An "already-in" event: `why` (borrowed) about `branch` at `head`. */
keel_status gate_already_in_event(gate *g, const char *branch, const char *head, keel_status why)
{
    const char *reason = keel_status_message(why);
    size_t size = gate_json_str(NULL, 0, 0, branch) + gate_json_str(NULL, 0, 0, reason) + 96;
    void *mem = NULL;
    keel_status s = keel_heap_alloc(GATE_HEAP, size, &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "recording an 'already-in' event");
    char *detail = (char *)mem;
    size_t n = (size_t)snprintf(detail, size, "{\"branch\":");
    n = gate_json_str(detail, size, n, branch);
    n += (size_t)snprintf(detail + n, size - n, ",\"head\":\"%s\",\"reason\":", head);
    n = gate_json_str(detail, size, n, reason);
    (void)snprintf(detail + n, size - n, "}");
    s = gate_store_event(g->store, now_s(), "already-in", 0, detail);
    keel_heap_free(GATE_HEAP, detail);
    return s;
}

keel_status gate_submit(gate *g, const char *branch, int priority, long long *id)
{
    return gate_submit_at(g, branch, NULL, priority, id);
}

keel_status gate_submit_check(const gate *g, const char *branch)
{
    keel_status s = gate_branch_check(branch);
    if (keel_ok(s) && strcmp(branch, g->target) == 0)
        s = branch_is_target(g, branch, "submit");
    return s;
}

const char *gate_repo_place(const gate *g, const char **url)
{
    *url = gate_repo_is_remote(g->repo) ? g->repo_path : NULL;
    return gate_repo_dir(g->repo);
}

keel_status gate_submit_look(gate_repo *r, const char *target, const char *branch,
                             const char *expected_head, gate_submit_seen *out)
{
    KEEL_ASSERT(r != NULL && target != NULL && branch != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    /* a commit; an annotated tag is peeled to its commit, a blob or a tree refused */
    keel_status s = gate_branch_commit(r, branch, out->head, out->tag);
    if (keel_ok(s) && expected_head != NULL && strcmp(out->head, expected_head) != 0)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_CONFLICT,
                     "branch '%s' is at %s, not at the expected head '%s': it moved (or the "
                     "expected head is not its commit)",
                     branch, out->head, expected_head),
            "head", out->head);
    keel_status t = keel_ok(s) ? gate_branch_head(r, target, out->tip) : KEEL_OK;
    if (KEEL_IS(t, KEEL_E_NOTFOUND)) /* no run could build or land it: --target mistyped */
        s = KEEL_WRAP(t, KEEL_E_NOTFOUND,
                      "the target '%s' is not a branch: a change for it would wait in the queue "
                      "for ever (run refuses such a target); give --target a branch that is, "
                      "or create it first",
                      target);
    else if (!keel_ok(t))
        s = t;
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "submitting '%s'", branch);
    out->in_target = holds(r, out->head, out->tip); /* the target is a branch: tip is set */
    return KEEL_OK;
}

keel_status gate_submit_looked(gate *g, const char *branch, const gate_submit_seen *seen,
                               int priority, long long *id)
{
    KEEL_ASSERT(g != NULL && seen != NULL && id != NULL);
    const char *head = seen->head;
    if (seen->in_target) {
        keel_status s = already_in(g, branch, head, seen->tip);
        keel_status e = gate_already_in_event(g, branch, head, s);
        if (!keel_ok(e))
            keel_status_ignore(e, "the refusal is said all the same");
        return s;
    }
    char peeled[2 * GATE_HEX + 64] = "";
    keel_status s = gate_store_submit(g->store, branch, head, g->target, priority, now_s(), id);
    if (keel_ok(s) && seen->tag[0] != '\0') {
        gate_fmt(peeled, sizeof(peeled), "peeled annotated tag %s to commit %s", seen->tag, head);
        char detail[sizeof(peeled) + (size_t)GATE_BRANCH_LEN_MAX * 6 + 64];
        size_t n = (size_t)snprintf(detail, sizeof(detail), "{\"branch\":");
        n = gate_json_str(detail, sizeof(detail), n, branch);
        (void)snprintf(detail + n, sizeof(detail) - n, ",\"what\":\"%s\"}", peeled);
        s = gate_store_event(g->store, now_s(), "peeled", *id, detail);
    }
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "submitting '%s'", branch);
    if (peeled[0] != '\0')
        gate_say(g, "%s (branch '%s')\n", peeled, branch);
    gate_say(g, "queued change %lld: '%s' at %.12s for '%s' (priority %d)\n", *id, branch, head,
             g->target, priority);
    return KEEL_OK;
}

keel_status gate_submit_at(gate *g, const char *branch, const char *expected_head, int priority,
                           long long *id)
{
    KEEL_ASSERT(g != NULL && id != NULL);
    gate_submit_seen seen;
    keel_status s = gate_submit_check(g, branch);
    if (keel_ok(s))
        s = gate_submit_look(g->repo, g->target, branch, expected_head, &seen);
    return keel_ok(s) ? gate_submit_looked(g, branch, &seen, priority, id) : s;
}

keel_status gate_branch_look(gate_repo *r, const char *target, const char *branch,
                             gate_branch_view *out)
{
    KEEL_ASSERT(r != NULL && target != NULL && branch != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    char hex[GATE_HEX], tip[GATE_HEX];
    keel_status s = gate_branch_known(r, branch, hex);
    if (keel_ok(s)) {
        char what[GATE_BRANCH_LEN_MAX + 16], tag[GATE_HEX];
        gate_fmt(what, sizeof(what), "branch '%s'", branch);
        s = gate_commit_of(r, what, hex, out->head, tag);
    }
    if (keel_ok(s))
        s = gate_commit_subject(r, out->head, out->subject, sizeof(out->subject));
    if (!keel_ok(s))
        return s;
    keel_status t = gate_branch_known(r, target, tip);
    if (keel_ok(t)) {
        t = gate_is_ancestor(r, out->head, tip, &out->in_target);
    } else if (KEEL_IS(t, KEEL_E_NOTFOUND)) { /* a target without commits holds nothing yet */
        keel_status_free(t);
        t = KEEL_OK;
    }
    return t;
}

keel_status gate_branch_view_active(gate *g, const char *branch, gate_branch_view *v)
{
    KEEL_ASSERT(g != NULL && branch != NULL && v != NULL);
    gate_change c[4];
    size_t n = 0;
    v->active = 0;
    keel_status s = gate_store_branch_changes(g->store, branch, g->target, c, 4, &n);
    for (size_t i = 0; keel_ok(s) && i < n && i < 4; i++)
        if (strcmp(c[i].target, g->target) == 0 &&
            (c[i].state == GATE_CHANGE_QUEUED || c[i].state == GATE_CHANGE_TESTING)) {
            v->active = c[i].id;
            break;
        }
    return s;
}

keel_status gate_branch_view_get(gate *g, const char *branch, gate_branch_view *out)
{
    KEEL_ASSERT(g != NULL && branch != NULL && out != NULL);
    keel_status s = gate_branch_look(g->repo, g->target, branch, out);
    return keel_ok(s) ? gate_branch_view_active(g, branch, out) : s;
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
    /* every target's work trees (a job's own is bound again over it) */
    const char *slash_t = strrchr(g->tree_root, '/');
    if (keel_ok(s) && slash_t != NULL && slash_t != g->tree_root) {
        gate_fmt(p, sizeof(p), "%.*s", (int)(slash_t - g->tree_root), g->tree_root);
        s = gate_hidden_add(h, p, true);
    }
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

/* The whole of `f` on module gate's heap (NUL-terminated). */
keel_status gate_read_stream(FILE *f, const char *name, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    size_t cap = 0;
    for (;;) {
        if (*len + 4096 + 1 > cap) {
            cap = cap > 0 ? cap * 2 : 8192;
            keel_status s = keel_heap_realloc(GATE_HEAP, (void **)text, cap);
            if (!keel_ok(s))
                return KEEL_CONTEXT(s, "reading '%s'", name);
        }
        size_t got = fread(*text + *len, 1, cap - *len - 1, f);
        *len += got;
        (*text)[*len] = '\0';
        if (*len > GATE_TEXT_FILE_MAX)
            return KEEL_ERR(KEEL_E_RANGE, "'%s' is larger than %d MiB: not a configuration", name,
                            GATE_TEXT_FILE_MAX >> 20);
        if (got == 0)
            break;
    }
    if (ferror(f))
        return KEEL_ERR_SYS(errno, "cannot read '%s'", name);
    return KEEL_OK;
}

keel_status gate_read_path(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return KEEL_ERR_SYS(errno, "cannot open '%s'", path);
    keel_status s = gate_read_stream(f, path, text, len);
    (void)fclose(f);
    return s;
}

unsigned long long gate_config_text_id(const char *text, size_t len)
{
    unsigned long long h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 1099511628211ull;
    return h | 1;
}

const gate_config *gate_tip_config(gate *g, gate_config **own)
{
    KEEL_ASSERT(g != NULL && own != NULL);
    *own = NULL;
    if (g->tip_cfg != NULL)
        return g->tip_cfg;
    char tip[GATE_HEX];
    keel_status s = gate_branch_known(g->repo, g->target, tip);
    if (keel_ok(s))
        s = gate_load_config(g, tip, own);
    if (!keel_ok(s)) {
        keel_status_ignore(s, "no configuration that loads: nothing, for the caller");
        *own = NULL;
        return NULL;
    }
    return *own;
}

keel_status gate_load_config(gate *g, const char *commit, gate_config **cfg)
{
    char *text = NULL;
    size_t len = 0;
    *cfg = NULL;
    keel_status s = gate_read_file(g->repo, commit, ".keel/gate.conf", &text, &len);
    bool as_tip =
        g->config_used && (keel_ok(s) ? gate_config_text_id(text, len) == g->tip_cfg_id
                                      : KEEL_IS(s, KEEL_E_NOTFOUND) && g->tip_cfg_id == 0);
    if (as_tip) {
        /* the tip's, which does not load: --config FILE's instead */
        keel_status_free(s);
        gate_file_free(text);
        text = NULL;
        s = gate_config_parse(g->config_text, g->config_len, g->config_origin, cfg);
    } else if (keel_ok(s)) {
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

/* The CPUs this process may run on (its affinity: a container's or taskset's share). */
static unsigned cpus(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

unsigned gate_slots(const gate_config *cfg)
{
    if (cfg->slots > 0)
        return cfg->slots;
    unsigned n = cpus();
    return n < 64 ? n : 4;
}

double gate_parallel(const gate_config *cfg)
{
    unsigned n = cpus(), slots = gate_slots(cfg);
    return (double)(n < slots ? n : slots);
}

unsigned gate_build_jobs(const gate_config *cfg)
{
    unsigned n = 0;
    for (size_t i = 0; i < cfg->nconfigs; i++)
        n += gate_config_at(&cfg->configs[i], GATE_LEVEL_GATE) ? 1u : 0u;
    return n;
}

/* ---- try --------------------------------------------------------------------------- */

keel_status gate_try(gate *g, const char *branch, bool *passed)
{
    KEEL_ASSERT(g != NULL && passed != NULL);
    *passed = false;
    char head[GATE_HEX], tip[GATE_HEX], merge[GATE_HEX];
    keel_status s = gate_branch_check(branch);
    if (keel_ok(s) && strcmp(branch, g->target) == 0)
        return branch_is_target(g, branch, "try");
    if (keel_ok(s)) {
        char tag[GATE_HEX]; /* an annotated tag is tried as its commit, as it would be queued */
        s = gate_branch_commit(g->repo, branch, head, tag);
    }
    if (keel_ok(s))
        s = gate_branch_head(g->repo, g->target, tip);
    if (keel_ok(s))
        s = gate_already_in(g, branch, head, tip);
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
    gate_config_keep_level(cfg, GATE_LEVEL_TRY);
    if (cfg->nconfigs == 0) {
        gate_config_free(cfg);
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_NOTFOUND,
                     "trying '%s' on '%s': no configuration of its .keel/gate.conf runs at level "
                     "'try' (levels = ... try)",
                     branch, g->target),
            "branch", branch);
    }
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
    gate_say(g, "trying '%s' (%.12s) merged on '%s' (%.12s) as %.12s: %zu configuration%s\n",
             branch, head, g->target, tip, merge, cfg->nconfigs, cfg->nconfigs == 1 ? "" : "s");
    size_t njobs = cfg->nconfigs;
    void *mem = NULL;
    s = keel_heap_calloc(GATE_HEAP, njobs, sizeof(gate_job_run), &mem);
    if (!keel_ok(s)) {
        gate_config_free(cfg);
        return KEEL_CONTEXT(s, "trying '%s': %zu jobs", branch, njobs);
    }
    gate_job_run *jobs = (gate_job_run *)mem;
    gate_pool *pool = NULL;
    s = gate_make_dirs(g->tree_root);
    if (keel_ok(s))
        s = gate_pool_new(gate_slots(cfg), &pool);
    for (size_t i = 0; keel_ok(s) && i < njobs; i++) {
        const gate_matrix_config *m = &cfg->configs[i];
        gate_job_run *j = &jobs[i];
        j->job_id = (long long)i;
        gate_job_from_config(j, m);
        s = gate_job_policy_from(&j->policy, tip_cfg, m->name);
        char key[64]; /* an untested change's: its layer is deleted after the try */
        (void)snprintf(key, sizeof(key), "p%d-try-%zu", (int)getpid(), i);
        if (keel_ok(s))
            s = gate_ccache_attach(&j->policy, g->work, tip_cfg, m->name, key, false);
        j->hidden = &g->hidden;
        j->records = g->records;
        if (!keel_ok(s))
            break;
        gate_fmt(j->dir, sizeof(j->dir), "%s/try-%d-%zu", g->tree_root, (int)getpid(), i);
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
            gate_ccache_layer_drop(&j->policy);
        }
        for (size_t i = 0; i < njobs; i++) { /* why each failed, before anyone opens a log */
            const gate_job_run *j = &jobs[i];
            char tail[TRY_TAIL_BYTES + 2];
            bool whole = true;
            if (j->result == GATE_EXEC_PASSED || j->error[0] != '\0' ||
                !gate_log_tail(j->log, TRY_TAIL_LINES, tail, sizeof(tail), &whole))
                continue;
            gate_say(g, "---- '%s': %s of %s ----\n", j->config,
                     whole ? "the whole log" : "the last lines", j->log);
            if (g->out != NULL)
                (void)gate_text_fput(g->out, tail, strlen(tail), GATE_TEXT_BLOCK);
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

/* ---- notifications (notify.h) -------------------------------------------------------- */

keel_status gate_notify_start(gate *g)
{
    KEEL_ASSERT(g->notifier == NULL);
    char log[GATE_PATH_MAX + 32];
    gate_fmt(log, sizeof(log), "%s/logs/notify.log", g->work);
    keel_status s =
        gate_notifier_start(g->state, g->target, gate_repo_dir(g->repo), log, g->out, &g->notifier);
    return keel_ok(s) ? KEEL_OK : KEEL_CONTEXT(s, "starting the notify hook of '%s'", g->target);
}

void gate_notify(gate *g)
{
    if (g->notifier == NULL)
        return;
    if (g->tip_cfg != NULL) {
        keel_status s = gate_notifier_set_hook(g->notifier, &g->tip_cfg->notify);
        if (!keel_ok(s)) {
            gate_say(g, "warning: the notify hook is not updated: %s\n", keel_status_message(s));
            keel_status_free(s); /* the one it had goes on */
        }
    }
    gate_notifier_wake(g->notifier);
}

void gate_notify_stop(gate *g)
{
    unsigned long long given_up = 0;
    gate_notifier_stop(g->notifier, GATE_NOTIFY_STOP_MS, &given_up);
    g->notifier = NULL;
    g->stats.notify_failures += given_up;
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
