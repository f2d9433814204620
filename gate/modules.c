/*
 * modules.c - keel-gate's parts as keel modules, each with a power-on self
 * test that exercises the real code on something small: the configuration
 * parser, the store (an in-memory database), the git layer's name checks, the
 * job runner (/bin/true in its own process group) and the scheduler; and the
 * gatekeeper, `gate`, on top of them all.  main() starts them with
 * keel_modules_start(); KEEL_OPTIONS='module.post=none' skips the tests.
 * Each part's memory is on its module's heap (heaps.h): gate_store's init
 * puts SQLite there, gate_git's libgit2, and their exits take them back.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include <string.h>

#include "config.h"
#include "exec.h"
#include "gate.h"
#include "git.h"
#include "heaps.h"
#include "scheduler.h"
#include "store.h"

static keel_status post_config_parse(void)
{
    static const char text[] = "[gate]\nstrategy = batch\n[config c]\ntest = prog 'a b' c\n";
    gate_config *c = NULL;
    keel_status s = gate_config_parse(text, sizeof(text) - 1, "post", &c);
    if (!keel_ok(s))
        return s;
    bool ok = c->nconfigs == 1 && c->strategy == GATE_STRATEGY_BATCH && c->configs[0].test.n == 3 &&
              strcmp(c->configs[0].test.words[1], "a b") == 0;
    gate_config_free(c);
    return ok ? KEEL_OK : KEEL_ERR(KEEL_E_POST, "a sample configuration parsed wrong");
}

static keel_status post_store_roundtrip(void)
{
    gate_store *st = NULL;
    keel_status s = gate_store_open(":memory:", &st);
    long long id = 0;
    static const char head[] = "0123456789abcdef0123456789abcdef01234567";
    if (keel_ok(s))
        s = gate_store_submit(st, "post", head, "main", 1, 1, &id);
    gate_change c;
    if (keel_ok(s))
        s = gate_store_get(st, id, &c);
    if (keel_ok(s) && (strcmp(c.head, head) != 0 || c.state != GATE_CHANGE_QUEUED))
        s = KEEL_ERR(KEEL_E_POST, "a change read back differs from the one written");
    gate_recovery rec;
    if (keel_ok(s))
        s = gate_store_recover(st, "main", NULL, NULL, true, 2, &rec);
    if (keel_ok(s) && (rec.requeued != 0 || rec.lost_jobs != 0))
        s = KEEL_ERR(KEEL_E_POST, "recovery of a queue with nothing in flight changed it");
    gate_store_close(st);
    return s;
}

static keel_status post_branch_names(void)
{
    keel_status s = gate_branch_check("feature/x-1");
    if (!keel_ok(s))
        return s;
    s = gate_branch_check("x;rm -rf /");
    if (keel_ok(s))
        return KEEL_ERR(KEEL_E_POST, "a hostile branch name was accepted");
    keel_status_free(s);
    return KEEL_OK;
}

static keel_status post_exec_true(void)
{
    static char prog[] = "true";
    char *argv[] = {prog, NULL};
    gate_exec_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.argv = argv;
    spec.dir = "/";
    spec.log = "/dev/null";
    spec.timeout_ms = 10000;
    gate_exec_outcome o;
    keel_status s = gate_exec_run(&spec, &o);
    if (keel_ok(s) && o.result != GATE_EXEC_PASSED)
        s = KEEL_ERR(KEEL_E_POST, "'true' did not pass: %s", gate_exec_result_name(o.result));
    return s;
}

static keel_status post_sched_lands(void)
{
    gate_sched_params p;
    gate_sched_params_default(&p);
    p.strategy = GATE_STRATEGY_SERIAL;
    gate_sched *sc = NULL;
    keel_status s = gate_sched_new(&p, &sc);
    if (keel_ok(s))
        s = gate_sched_enqueue(sc, 7);
    gate_sched_build b;
    memset(&b, 0, sizeof(b));
    bool have = false;
    if (keel_ok(s))
        s = gate_sched_next(sc, &b, &have);
    if (keel_ok(s) && have)
        s = gate_sched_result(sc, b.candidate, true);
    gate_sched_decision d;
    if (keel_ok(s) && !(have && gate_sched_poll(sc, &d) && d.kind == GATE_SCHED_LAND && d.n == 1 &&
                        d.changes[0] == 7))
        s = KEEL_ERR(KEEL_E_POST, "one passing change did not land");
    gate_sched_delete(sc);
    return s;
}

static const keel_post config_posts[] = {{"parse", post_config_parse}, {NULL, NULL}};
static const keel_post store_posts[] = {{"roundtrip", post_store_roundtrip}, {NULL, NULL}};
static const keel_post git_posts[] = {{"branch_names", post_branch_names}, {NULL, NULL}};
/* the executor's pool runs on ranked locks: the lock checker tests itself first */
static keel_status post_lock_checker(void)
{
    return keel_lock_self_test();
}

static const keel_post exec_posts[] = {
    {"true", post_exec_true}, {"lock_checker", post_lock_checker}, {NULL, NULL}};
static const keel_post sched_posts[] = {{"lands", post_sched_lands}, {NULL, NULL}};
static const char *const sched_deps[] = {"gate_config", NULL};
static const char *const gate_deps[] = {"gate_config", "gate_store", "gate_git",
                                        "gate_exec",   "gate_sched", NULL};

KEEL_MODULE(gate_config, "1.0", NULL, NULL, NULL, config_posts);
KEEL_MODULE(gate_store, "1.0", gate_heaps_sqlite_install, gate_heaps_sqlite_remove, NULL,
            store_posts);
KEEL_MODULE(gate_git, "1.0", gate_heaps_libgit2_install, gate_heaps_libgit2_remove, NULL,
            git_posts);
KEEL_MODULE(gate_exec, "1.0", NULL, NULL, NULL, exec_posts);
KEEL_MODULE(gate_sched, "1.0", NULL, NULL, sched_deps, sched_posts);
/* the gatekeeper: its POST is the others' (a whole run needs a repository) */
KEEL_MODULE(gate, "1.0", NULL, NULL, gate_deps, NULL);

void gate_modules_link(void)
{
    /* referenced from main() so that the linker keeps this object and its modules */
}
