/*
 * bench_gate_run.c - keel-gate's own cost outside the jobs: the whole gate
 * (store, libgit2 merges and work trees, scheduler, job processes, notify
 * hook off) on a real repository, per landed change.
 *
 * A bare repository in a temp dir whose main holds .keel/gate.conf with a
 * matrix of two configurations whose test is `true`, and N branches (100 by
 * default) of one small commit each off main.  The changes are queued with
 * gate_submit, then gate_run(once) - what `keel-gate run --once` runs -
 * takes them to the end.  The gate process's own CPU time (getrusage
 * RUSAGE_SELF, user + system) is measured around the run and divided by the
 * changes landed; the jobs are child processes and are not in it
 * (RUSAGE_CHILDREN, printed beside it, holds them: `true` and its spawn and
 * exec).  Goal (issue 7): < 50 ms of CPU per landed change.  Each strategy
 * runs on a fresh repository: serial (a candidate, a merge, a work tree update per
 * job and a landing per change: the most work per change) and adaptive (the
 * default); then both again with the repository reached through a file://
 * URL and a mirror (fetches at submit and start, a push per landing;
 * libgit2's file:// transport runs both ends in this process, so its CPU
 * holds the remote's side too).
 *
 * Every job runs in its bubblewrap sandbox with the default limits (a cgroup
 * per job where the machine offers one), as keel-gate runs it; a third
 * argument `none` runs the same with `sandbox = none` (the trampoline and the
 * cgroup, no bwrap), to see what the sandbox costs the gate itself.
 *
 * Run: flock /tmp/keel-bench.lock build/release/bench_gate_run [N] [rounds] [none]
 */
#define _GNU_SOURCE 1
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "keel/keel.h"

#include "gate.h"

enum { MAXN = 2000 };

static void die(const char *what, int rc)
{
    const git_error *e = git_error_last();
    (void)fprintf(stderr, "bench_gate_run: %s: %d %s\n", what, rc,
                  e != NULL && e->message != NULL ? e->message : "");
    exit(1);
}

static void check(keel_status s, const char *what)
{
    if (keel_ok(s))
        return;
    (void)fprintf(stderr, "bench_gate_run: %s: %s\n", what, keel_status_message(s));
    keel_status_free(s);
    exit(1);
}

static void git_ok(int rc, const char *what)
{
    if (rc < 0)
        die(what, rc);
}

/* Commit one file on top of `parent` (NULL: a root commit holding `files`) as `branch`. */
static void commit(git_repository *r, const git_oid *parent, const char *const files[][2], size_t n,
                   const char *branch, git_oid *out)
{
    git_commit *pc = NULL;
    git_tree *base = NULL;
    if (parent != NULL) {
        git_ok(git_commit_lookup(&pc, r, parent), "commit lookup");
        git_ok(git_commit_tree(&base, pc), "commit tree");
    } else {
        git_treebuilder *tb = NULL;
        git_oid empty;
        git_ok(git_treebuilder_new(&tb, r, NULL), "treebuilder");
        git_ok(git_treebuilder_write(&empty, tb), "empty tree");
        git_treebuilder_free(tb);
        git_ok(git_tree_lookup(&base, r, &empty), "tree lookup");
    }
    git_tree_update up[4];
    for (size_t i = 0; i < n; i++) {
        memset(&up[i], 0, sizeof(up[i]));
        up[i].action = GIT_TREE_UPDATE_UPSERT;
        git_ok(git_blob_create_from_buffer(&up[i].id, r, files[i][1], strlen(files[i][1])), "blob");
        up[i].filemode = GIT_FILEMODE_BLOB;
        up[i].path = files[i][0];
    }
    git_oid tree_id;
    git_ok(git_tree_create_updated(&tree_id, r, base, n, up), "tree");
    git_tree *tree = NULL;
    git_ok(git_tree_lookup(&tree, r, &tree_id), "tree lookup");
    git_signature *sig = NULL;
    git_ok(git_signature_now(&sig, "bench", "bench@localhost"), "signature");
    const git_commit *parents[1] = {pc};
    char ref[160];
    (void)snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    git_ok(
        git_commit_create(out, r, ref, sig, sig, NULL, branch, tree, pc != NULL ? 1 : 0, parents),
        "commit");
    git_signature_free(sig);
    git_tree_free(tree);
    git_tree_free(base);
    git_commit_free(pc);
}

/* A fresh repository in `dir` with n branches c1..cn, each adding its own file. */
static bool no_sandbox; /* `none`: sandbox = none */

static void make_repo(const char *dir, const char *strategy, int n)
{
    char path[256], conf[1024];
    (void)snprintf(path, sizeof(path), "%s/repo.git", dir);
    git_repository *r = NULL;
    git_ok(git_repository_init(&r, path, 1), "init");
    (void)snprintf(conf, sizeof(conf),
                   "[gate]\ntarget = main\nslots = 4\nstrategy = %s\n%s"
                   "[config unit]\ntest = true\ntimeout = 30\n"
                   "[config lint]\ntest = true\ntimeout = 30\n",
                   strategy, no_sandbox ? "sandbox = none\n" : "");
    const char *const root[][2] = {
        {".keel/gate.conf", conf}, {"README", "bench\n"}, {"src/main.c", "int main(void);\n"}};
    git_oid base;
    commit(r, NULL, root, 3, "main", &base);
    git_ok(git_repository_set_head(r, "refs/heads/main"), "set head");
    for (int i = 1; i <= n; i++) {
        char name[32], file[64], text[64];
        (void)snprintf(name, sizeof(name), "c%d", i);
        (void)snprintf(file, sizeof(file), "src/f%d.c", i);
        (void)snprintf(text, sizeof(text), "int f%d(void) { return %d; }\n", i, i);
        const char *const f[][2] = {{file, text}};
        git_oid oid;
        commit(r, &base, f, 1, name, &oid);
    }
    git_repository_free(r);
}

static double cpu_ms(int who)
{
    struct rusage ru;
    if (getrusage(who, &ru) != 0)
        return 0.0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double wall_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct result {
    double submit_ms, run_ms, child_ms, wall_ms; /* per landed change */
    unsigned long long landed, builds, jobs;
} result;

static result one_run(const char *strategy, bool remote, int n)
{
    char dir[] = "/tmp/keel-benchgate-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("bench_gate_run: mkdtemp");
        exit(1);
    }
    make_repo(dir, strategy, n);
    char repo[256], state[256], url[300], mirror[256];
    (void)snprintf(repo, sizeof(repo), "%s/repo.git", dir);
    (void)snprintf(state, sizeof(state), "%s/state.db", dir);
    (void)snprintf(url, sizeof(url), "file://%s", repo);
    (void)snprintf(mirror, sizeof(mirror), "%s/mirror.git", dir);
    gate_options o;
    gate_options_default(&o);
    o.repo = remote ? url : repo;
    o.mirror = mirror;
    o.state = state;
    o.out = NULL;
    gate *g = NULL;
    double c0 = cpu_ms(RUSAGE_SELF);
    check(gate_open(&o, &g), "open");
    for (int i = 1; i <= n; i++) {
        char name[32];
        long long id = 0;
        (void)snprintf(name, sizeof(name), "c%d", i);
        check(gate_submit(g, name, 0, &id), "submit");
    }
    gate_close(g);
    double c1 = cpu_ms(RUSAGE_SELF), k1 = cpu_ms(RUSAGE_CHILDREN), w1 = wall_ms();
    check(gate_open(&o, &g), "open");
    gate_run_stats st;
    check(gate_run(g, true, &st), "run");
    gate_close(g);
    double c2 = cpu_ms(RUSAGE_SELF), k2 = cpu_ms(RUSAGE_CHILDREN), w2 = wall_ms();
    char cmd[128];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir); /* our own mkdtemp dir */
    if (system(cmd) != 0)
        (void)fprintf(stderr, "bench_gate_run: could not remove %s\n", dir);
    if (st.landed != (unsigned long long)n) {
        (void)fprintf(stderr, "bench_gate_run: %s landed %llu of %d changes\n", strategy, st.landed,
                      n);
        exit(1);
    }
    result r;
    double l = (double)st.landed;
    r.submit_ms = (c1 - c0) / l;
    r.run_ms = (c2 - c1) / l;
    r.child_ms = (k2 - k1) / l;
    r.wall_ms = (w2 - w1) / l;
    r.landed = st.landed;
    r.builds = st.builds;
    r.jobs = st.jobs;
    return r;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    no_sandbox = argc > 3 && strcmp(argv[3], "none") == 0;
    if (n < 1 || n > MAXN || rounds < 1 || rounds > 100 || argc > 4 || (argc > 3 && !no_sandbox)) {
        (void)fprintf(stderr, "usage: bench_gate_run [changes 1..%d] [rounds 1..100] [none]\n",
                      MAXN);
        return 2;
    }
    check(keel_init(), "keel_init");
    gate_modules_link();
    check(keel_modules_start(), "modules"); /* as keel-gate does */
    git_libgit2_init();
    printf("keel-gate run --once: %d changes, 2 configurations (`true`), 4 slots, %d rounds, %s\n"
           "CPU of the gate process (RUSAGE_SELF), per landed change; the jobs are child\n"
           "processes, outside it (RUSAGE_CHILDREN, for reference).  Goal: < 50 ms.\n\n",
           n, rounds, no_sandbox ? "sandbox = none" : "jobs in their bubblewrap sandbox");
    printf("| strategy | builds | jobs | gate CPU per change, run (min .. max) | submit | jobs' "
           "CPU | wall per change |\n|---|---|---|---|---|---|---|\n");
    /* then the same through a file:// URL: fetches, a push per landing (both ends in-process) */
    static const char *const strategies[] = {"serial", "adaptive", "serial", "adaptive"};
    double worst = 0.0;
    for (size_t k = 0; k < sizeof(strategies) / sizeof(strategies[0]); k++) {
        bool remote = k >= 2;
        result lo, hi;
        memset(&lo, 0, sizeof(lo));
        memset(&hi, 0, sizeof(hi));
        for (int i = 0; i < rounds; i++) {
            result r = one_run(strategies[k], remote, n);
            if (i == 0 || r.run_ms < lo.run_ms)
                lo = r;
            if (i == 0 || r.run_ms > hi.run_ms)
                hi = r;
        }
        if (hi.run_ms > worst)
            worst = hi.run_ms;
        printf("| %s%s | %llu | %llu | %.2f .. %.2f ms | %.2f ms | %.2f ms | %.1f ms |\n",
               strategies[k], remote ? ", file:// remote" : "", lo.builds, lo.jobs, lo.run_ms,
               hi.run_ms, lo.submit_ms, lo.child_ms, lo.wall_ms);
    }
    printf("\nworst gate CPU per landed change: %.2f ms (goal < 50 ms: %s)\n", worst,
           worst < 50.0 ? "met" : "NOT met");
    git_libgit2_shutdown();
    keel_modules_stop();
    return 0;
}
