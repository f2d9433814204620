/*
 * test_gate_ccache.c - the compiler cache each configuration gets (gate/exec/ccache.h):
 * `ccache-size` in the configuration, the layers a job is given and its environment, the
 * counters `ccache --print-stats` gives; then through gate_run on a real repository (real
 * ccache, real compiles of tiny C files): two jobs of one configuration share hits through the
 * landed layer, another configuration does not see them; an unlanded change's job cannot write
 * the landed layer, a rejected change's entries are never seen, a kill -9 in the middle of the
 * merge leaves a usable cache; the hit rate is in `status`.  Those are skipped (with the
 * reason) where ccache or bubblewrap is missing.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate_fixture.h"

#include "ccache.h"
#include "config.h"
#include "gate_int.h"
#include "sandbox.h"

static gate_config *parse(const char *text)
{
    gate_config *c = NULL;
    fx_ok(gate_config_parse(text, strlen(text), "test", &c));
    return c;
}

static void parse_fails(const char *text, const char *what)
{
    gate_config *c = NULL;
    keel_status s = gate_config_parse(text, strlen(text), "test", &c);
    assert_false(keel_ok(s));
    if (strstr(keel_status_message(s), what) == NULL)
        fail_msg("'%s' not in: %s", what, keel_status_message(s));
    keel_status_free(s);
}

/* The ccache-size of configuration `name` of c (the test fails when there is none). */
static unsigned long long ccache_of(const gate_config *c, const char *name)
{
    for (size_t i = 0; i < c->nconfigs; i++)
        if (strcmp(c->configs[i].name, name) == 0)
            return c->configs[i].ccache_size;
    fail_msg("no configuration '%s'", name);
    return ~0ull;
}

/* ccache-size: [gate]'s for every configuration, a configuration's own, 0: none; errors. */
static void test_config(void **state)
{
    (void)state;
    gate_config *c = parse("[gate]\nccache-size = 2G\n"
                           "[config a]\ntest = true\n"
                           "[config b]\ntest = true\nccache-size = 512M\n"
                           "[config c]\ntest = true\nccache-size = 0\n");
    assert_true(ccache_of(c, "a") == 2ull << 30);
    assert_true(ccache_of(c, "b") == 512ull << 20);
    assert_true(ccache_of(c, "c") == 0);
    gate_config_free(c);
    c = parse("[config a]\ntest = true\n");
    assert_true(ccache_of(c, "a") == 0); /* no cache unless asked */
    gate_config_free(c);
    parse_fails("[config a]\ntest = true\nccache-size = lots\n",
                "'ccache-size' must be a size such as 512M or 2G (0: no compiler cache), not "
                "'lots'");
    parse_fails("[gate]\nccache-size = 10K\n[config a]\ntest = true\n",
                "'ccache-size' 10K is below ccache's smallest cache, 1M");
}

static void test_stats_parse(void **state)
{
    (void)state;
    gate_ccache_stats st;
    fx_ok(gate_ccache_stats_parse("autoconf_test\t0\ncache_miss\t3\ncache_size_kibibyte\t12\n"
                                  "direct_cache_hit\t4\nfiles_in_cache\t6\n"
                                  "preprocessed_cache_hit\t1\nstats_zeroed_timestamp\t0\n",
                                  &st));
    assert_true(st.hits == 5 && st.misses == 3 && st.files == 6 && st.bytes == 12ULL * 1024);
    keel_status s = gate_ccache_stats_parse("ccache: error: nothing\n", &st);
    assert_true(KEEL_IS(s, KEEL_E_PARSE));
    keel_status_free(s);
}

/* The cache of a job: its configuration's landed layer read-only, its own layer; others none. */
static void test_attach(void **state)
{
    (void)state;
    char prog[GATE_PATH_MAX];
    keel_status found = gate_ccache_find(prog, sizeof(prog));
    gate_config *c = parse("[config a]\ntest = true\nccache-size = 64M\nwritable = /var/tmp\n"
                           "[config b]\ntest = true\n");
    char work[] = "/tmp/keel-ccache-XXXXXX";
    assert_non_null(mkdtemp(work));
    gate_job_policy p;
    fx_ok(gate_job_policy_from(&p, c, "a"));
    fx_ok(gate_ccache_attach(&p, work, c, "a", "c7-j9", false));
    if (!keel_ok(found)) { /* the job runs without one, its log says why */
        assert_string_equal(p.ccache_dir, "");
        assert_non_null(strstr(p.ccache_note, "'ccache' is not installed"));
    } else {
        char dir[GATE_PATH_MAX], want[GATE_PATH_MAX + 64];
        gate_ccache_dir(work, "a", dir, sizeof(dir));
        (void)snprintf(want, sizeof(want), "%s/layers/c7-j9", dir);
        assert_string_equal(p.ccache_layer, want);
        (void)snprintf(want, sizeof(want), "%s/layers/c7-j9/stats", dir);
        assert_string_equal(p.ccache_dir, want);
        (void)snprintf(want, sizeof(want), "%s/landed", dir);
        assert_string_equal(p.ccache_landed, want);
        assert_string_equal(p.writable, "/var/tmp"); /* the configuration's first */
        assert_string_equal(p.writable + strlen("/var/tmp") + 1, p.ccache_layer);
        assert_string_equal(p.writable + strlen("/var/tmp") + 1 + strlen(p.ccache_layer) + 1, "");
        assert_string_equal(p.readonly, p.ccache_landed); /* read-only to the job */
        assert_false(p.ccache_writes_landed);
        assert_true(p.ccache_size == 64ull << 20);
        struct stat sb;
        assert_int_equal(stat(p.ccache_landed, &sb), 0);
        assert_int_equal(stat(p.ccache_layer, &sb), 0);
        /* a build of a landed commit writes the landed layer */
        fx_ok(gate_job_policy_from(&p, c, "a"));
        fx_ok(gate_ccache_attach(&p, work, c, "a", "l1-1", true));
        assert_true(p.ccache_writes_landed);
        assert_string_equal(p.readonly, "");
        assert_string_equal(p.writable + strlen("/var/tmp") + 1 + strlen(p.ccache_layer) + 1,
                            p.ccache_landed);
    }
    fx_ok(gate_job_policy_from(&p, c, "b"));
    fx_ok(gate_ccache_attach(&p, work, c, "b", "c7-j10", false));
    assert_string_equal(p.ccache_dir, "");
    assert_string_equal(p.ccache_note, "");
    c->executor = GATE_EXECUTOR_SLURM; /* the cache is on the gate's machine only */
    fx_ok(gate_job_policy_from(&p, c, "a"));
    fx_ok(gate_ccache_attach(&p, work, c, "a", "c7-j11", false));
    assert_string_equal(p.ccache_dir, "");
    assert_non_null(strstr(p.ccache_note, "executor = local only"));
    gate_config_free(c);
    keel_status_free(found);
    char cmd[96];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", work);
    assert_int_equal(system(cmd), 0);
}

static void test_env(void **state)
{
    (void)state;
    gate_job_policy p;
    gate_job_policy_default(&p);
    (void)snprintf(p.ccache_layer, sizeof(p.ccache_layer), "/s.d/ccache/a/layers/c1-j2");
    (void)snprintf(p.ccache_dir, sizeof(p.ccache_dir), "/s.d/ccache/a/layers/c1-j2/stats");
    (void)snprintf(p.ccache_landed, sizeof(p.ccache_landed), "/s d/ccache/a/landed");
    char vars[GATE_CCACHE_VARS][1200];
    size_t n = gate_ccache_env(&p, "/s.d/work/0", "/usr/bin:/bin", vars);
    assert_true(n >= 5);
    assert_string_equal(vars[0], "CCACHE_DIR=/s.d/ccache/a/layers/c1-j2/stats");
    assert_string_equal(vars[1], "CCACHE_REMOTE_STORAGE=file:/s%20d/ccache/a/landed"
                                 "|layout=subdirs|read-only "
                                 "file:/s.d/ccache/a/layers/c1-j2/new|layout=subdirs");
    assert_string_equal(vars[2], "CCACHE_REMOTE_ONLY=true");
    assert_string_equal(vars[3], "CCACHE_BASEDIR=/s.d/work/0");
    assert_string_equal(vars[4], "CCACHE_NOHASHDIR=1");
    struct stat sb;
    if (stat("/usr/lib/ccache", &sb) == 0) {
        assert_int_equal(n, 6);
        assert_string_equal(vars[5], "PATH=/usr/lib/ccache:/usr/bin:/bin");
    }
    p.ccache_writes_landed = true; /* a landed commit's build: the landed layer, written */
    (void)gate_ccache_env(&p, "/s.d/work/0", "/usr/bin:/bin", vars);
    assert_string_equal(vars[1], "CCACHE_REMOTE_STORAGE=file:/s%20d/ccache/a/landed"
                                 "|layout=subdirs");
}

/* ---- the layers on disk ------------------------------------------------------------ */

/* Write `text` to <dir>/<name> (directories made). */
static void put(const char *dir, const char *name, const char *text)
{
    char path[GATE_PATH_MAX], cmd[2 * GATE_PATH_MAX];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    (void)snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

/* The text of <dir>/<name> into buf ("" when it is not there). */
static void get(const char *dir, const char *name, char *buf, size_t size)
{
    char path[GATE_PATH_MAX];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    keel_test_read_file(path, buf, size);
}

static bool exists(const char *dir, const char *name)
{
    char path[GATE_PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof(path));
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/*
 * A landing takes from a job's layer the regular files with ccache's names only: not a link
 * (to the gate's secrets, or a directory of them), not another name; an entry the landed layer
 * has stays as it is; the candidate's layers go, another candidate's stay.
 */
static void test_merge_takes_entries_only(void **state)
{
    (void)state;
    char work[] = "/tmp/keel-ccache-XXXXXX";
    assert_non_null(mkdtemp(work));
    char dir[GATE_PATH_MAX], layer[GATE_PATH_MAX + 32], other[GATE_PATH_MAX + 32],
        landed[GATE_PATH_MAX + 16];
    static char cmd[10 * GATE_PATH_MAX];
    gate_ccache_dir(work, "a", dir, sizeof(dir));
    (void)snprintf(layer, sizeof(layer), "%s/layers/p1-c5-j1/new", dir);
    (void)snprintf(other, sizeof(other), "%s/layers/p1-c55-j2/new", dir);
    (void)snprintf(landed, sizeof(landed), "%s/landed", dir);
    put(work, "secret", "the gate's secret\n");
    put(layer, "ab/goodentry1", "good\n");
    put(layer, "ab/bad.name", "not ccache's\n");
    put(layer, "ab/known", "the job's\n");
    put(landed, "ab/known", "landed\n");
    put(other, "ab/othercand", "another candidate's\n");
    put(layer, "cd/x", "placeholder\n");
    (void)snprintf(cmd, sizeof(cmd),
                   "ln -s '%s/secret' '%s/ab/linked' && rm -r '%s/cd' && ln -s '%s' '%s/cd' && "
                   "mkdir '%s/ef' && ln -s '%s/secret' '%s/ef/linked2'",
                   work, layer, layer, work, layer, layer, work, layer);
    assert_int_equal(system(cmd), 0);
    put(work, "cdentry", "reached through a linked directory\n"); /* <work>/cdentry */
    gate_ccache_merged m;
    fx_ok(gate_ccache_land(work, NULL, 5, &m));
    assert_true(m.layers == 1 && m.entries == 1 && m.had == 1);
    assert_true(m.skipped == 4); /* bad.name, linked, cd (a link), linked2 */
    char text[64];
    get(landed, "ab/goodentry1", text, sizeof(text));
    assert_string_equal(text, "good\n");
    get(landed, "ab/known", text, sizeof(text));
    assert_string_equal(text, "landed\n");
    assert_false(exists(landed, "ab/bad.name"));
    assert_false(exists(landed, "ab/linked"));
    assert_false(exists(landed, "cd"));
    assert_false(exists(landed, "ef/linked2"));
    assert_false(exists(dir, "layers/p1-c5-j1")); /* merged, then deleted */
    assert_true(exists(dir, "layers/p1-c55-j2")); /* not candidate 5's */
    gate_ccache_drop(work, 55);                   /* closed without landing */
    assert_false(exists(dir, "layers/p1-c55-j2"));
    assert_false(exists(landed, "ab/othercand"));
    (void)snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", work);
    assert_int_equal(system(cmd), 0);
}

/* The start of `run`: layers of gone processes and of this one, a killed merge's files, the old layout. */
static void test_sweep(void **state)
{
    (void)state;
    char work[] = "/tmp/keel-ccache-XXXXXX";
    assert_non_null(mkdtemp(work));
    pid_t gone = fork(); /* a process that was, and is no more */
    if (gone == 0)
        _exit(0);
    assert_true(gone > 0);
    int st = 0;
    assert_int_equal(waitpid(gone, &st, 0), gone);
    char dir[GATE_PATH_MAX], old[GATE_PATH_MAX], name[64];
    gate_ccache_dir(work, "a", dir, sizeof(dir));
    gate_ccache_dir(work, "old", old, sizeof(old));
    (void)snprintf(name, sizeof(name), "layers/p%d-c1-j1/new/ab/x", (int)gone);
    put(dir, name, "x\n");
    (void)snprintf(name, sizeof(name), "layers/p%d-c2-j2/new/ab/x", (int)getpid());
    put(dir, name, "x\n");
    put(dir, "layers/p1-try-0/stats/x", "x\n"); /* process 1 runs: kept */
    put(dir, "layers/junk/x", "x\n");
    put(dir, "landed/ab/entry", "whole\n");
    put(dir, "landed/ab/.keel-merge-99-entry2", "half");
    put(old, "ccache.conf", "max_size = 1G\n"); /* the single-directory cache of sessions 12-15 */
    put(old, "3/f/somethingR", "planted by anyone\n");
    gate_ccache_sweep(work);
    (void)snprintf(name, sizeof(name), "layers/p%d-c1-j1", (int)gone);
    assert_false(exists(dir, name));
    (void)snprintf(name, sizeof(name), "layers/p%d-c2-j2", (int)getpid());
    assert_false(exists(dir, name));
    assert_true(exists(dir, "layers/p1-try-0"));
    assert_false(exists(dir, "layers/junk"));
    assert_true(exists(dir, "landed/ab/entry"));
    assert_false(exists(dir, "landed/ab/.keel-merge-99-entry2"));
    assert_false(exists(old, "ccache.conf"));
    assert_false(exists(old, "3"));
    char cmd[GATE_PATH_MAX + 32];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", work);
    assert_int_equal(system(cmd), 0);
}

/* ---- through the gate ------------------------------------------------------------- */

/* Skip the test (saying why) without ccache and Debian's compiler links. */
static void need_ccache(void)
{
    char prog[GATE_PATH_MAX];
    keel_status found = gate_ccache_find(prog, sizeof(prog));
    if (!keel_ok(found)) {
        (void)fprintf(stderr, "skipped: %s\n", keel_status_message(found));
        keel_status_free(found);
        skip();
    }
    struct stat sb;
    if (stat("/usr/lib/ccache/gcc", &sb) != 0) {
        (void)fprintf(stderr, "skipped: no /usr/lib/ccache/gcc (Debian's ccache links)\n");
        skip();
    }
}

static const char k_c[] = "int keel_ccache_probe(int x);\n"
                          "int keel_ccache_probe(int x) { return x * 3; }\n";

/*
 * Configurations `unit` and `other` compile the same file through ccache (gcc, found on
 * /usr/lib/ccache), each with its cache; a change's script also tries to reach the other
 * configuration's cache and the caches' directory (<state>.d/ccache: four levels above the
 * job's CCACHE_DIR, <configuration>/layers/<key>/stats), and leaves what it could see in the
 * shared directory.
 */
static const char ci[] =
    "set -e\n"
    "gcc -c k.c -o k.o\n"
    "root=\"$(dirname \"$(dirname \"$(dirname \"$(dirname \"$CCACHE_DIR\")\")\")\")\"\n"
    "other=\"$root/$PEER\"\n"
    "if test -e \"$other\"; then touch \"$(dirname \"$MARKER\")/saw-$CONFIG\"; fi\n"
    "mkdir -p \"$other\" 2>/dev/null && echo bogus > \"$other/planted\" "
    "2>/dev/null || true\n"
    "echo bogus > \"$root/planted\" 2>/dev/null || true\n";

/* The gate's <state>.d. */
static void work_dir(char *buf, size_t size)
{
    (void)snprintf(buf, size, "%s.d", fx_state);
}

/* The counters of configuration `name`'s cache under the fixture's gate. */
static gate_ccache_stats cache_of(const char *name)
{
    char work[GATE_PATH_MAX];
    work_dir(work, sizeof(work));
    gate_ccache_stats st;
    fx_ok(gate_ccache_stats_read(work, name, &st));
    return st;
}

/* <state>.d/ccache/<name>/<sub> */
static void cache_path(const char *name, const char *sub, char *buf, size_t size)
{
    char work[GATE_PATH_MAX], dir[GATE_PATH_MAX];
    work_dir(work, sizeof(work));
    gate_ccache_dir(work, name, dir, sizeof(dir));
    (void)snprintf(buf, size, "%s/%s", dir, sub);
}

/* The names in directory `path` ("." and ".." left out). */
static size_t entries_in(const char *path)
{
    char cmd[GATE_PATH_MAX + 64];
    (void)snprintf(cmd, sizeof(cmd), "ls -A '%s' 2>/dev/null | wc -l", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[64] = "", *end = line;
    assert_non_null(fgets(line, sizeof(line), p));
    unsigned long n = strtoul(line, &end, 10);
    assert_true(end != line);
    pclose(p);
    return n;
}

/* Every file under configuration `name`'s landed layer, sorted, one a line, into buf. */
static void landed_files(const char *name, char *buf, size_t size)
{
    char landed[GATE_PATH_MAX + 16], cmd[GATE_PATH_MAX + 64];
    cache_path(name, "landed", landed, sizeof(landed));
    (void)snprintf(cmd, sizeof(cmd), "cd '%s' && find . -type f | sort", landed);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(buf, 1, size - 1, p);
    buf[n] = '\0';
    assert_int_equal(pclose(p), 0);
}

/*
 * Every entry of `name`'s landed layer is whole: `ccache --inspect` reads it (it checks the
 * entry's size and checksum).  How many; `tmp`: temporary files of the merge found.
 */
static size_t landed_whole(const char *name, size_t *tmp)
{
    char landed[GATE_PATH_MAX + 16], cmd[2 * GATE_PATH_MAX];
    cache_path(name, "landed", landed, sizeof(landed));
    (void)snprintf(cmd, sizeof(cmd),
                   "cd '%s' && n=0 && for f in $(find . -type f ! -name '.keel-merge-*' "
                   "! -name CACHEDIR.TAG); do ccache --inspect \"$f\" >/dev/null 2>&1 || "
                   "{ echo \"broken $f\" >&2; exit 1; }; n=$((n+1)); done && echo $n && "
                   "find . -name '.keel-merge-*' | wc -l",
                   landed);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char text[64] = "", *end = text, *end2 = text; /* two lines: the entries, the merges' files */
    size_t len = fread(text, 1, sizeof(text) - 1, p);
    text[len] = '\0';
    unsigned long n = strtoul(text, &end, 10);
    unsigned long t = strtoul(end, &end2, 10);
    int got = end != text && end2 != end ? 2 : 0;
    int st = pclose(p);
    if (got != 2 || st != 0)
        fail_msg("a broken entry in the landed layer '%s' (status %d)", landed, st);
    *tmp = t;
    return n;
}

static void status_text(char *buf, size_t size)
{
    gate *g = fx_open();
    FILE *f = fmemopen(buf, size, "w");
    assert_non_null(f);
    fx_ok(gate_status(g, f, 0));
    (void)fclose(f);
    gate_close(g);
}

/* A change on main's head adding `files`, submitted and run once: its state. */
static gate_change_state change(const char *branch, const fx_file *files, size_t n)
{
    git_oid head, oid;
    fx_head("main", &head);
    fx_commit(&head, files, n, branch, &oid);
    gate *g = fx_open();
    long long id = fx_submit(g, branch, 0);
    gate_close(g);
    (void)fx_run_once();
    g = fx_open();
    gate_change_state st = fx_state_of(g, id);
    gate_close(g);
    return st;
}

static void test_shared_by_a_configuration(void **state)
{
    (void)state;
    need_ccache();
    fx_setup_repo("", ""); /* its main replaced below: two configurations, one source file */
    char conf[2048];
    (void)snprintf(conf, sizeof(conf),
                   "[gate]\ntarget = main\nslots = 2\nstrategy = serial\nretries = 0\n"
                   "ccache-size = 64M\n"
                   "[config unit]\ntest = sh ci.sh\ntimeout = 60\nwritable = %s\n"
                   "env = CONFIG=unit PEER=other MARKER=%s/marker\n"
                   "[config other]\ntest = sh ci.sh\ntimeout = 60\nwritable = %s\n"
                   "env = CONFIG=other PEER=unit MARKER=%s/marker\n",
                   fx_shared, fx_shared, fx_shared, fx_shared);
    const fx_file f[] = {{".keel/gate.conf", conf}, {"ci.sh", ci}, {"k.c", k_c}};
    fx_commit(NULL, f, 3, "main", &fx_base);
    const fx_file one[] = {{"one.txt", "1\n"}};
    assert_int_equal(change("first", one, 1), GATE_CHANGE_LANDED);
    char dir[GATE_PATH_MAX], work[GATE_PATH_MAX], layers[GATE_PATH_MAX + 16];
    work_dir(work, sizeof(work));
    gate_ccache_stats a, b;
    a = cache_of("unit");
    b = cache_of("other");
    /* the same file compiled by both: each missed in its own cache (neither saw the other's) */
    assert_true(a.misses == 1 && a.hits == 0);
    assert_true(b.misses == 1 && b.hits == 0);
    /* its layers merged into the landed ones (a manifest and a result each), then deleted */
    assert_true(a.files == 2 && b.files == 2);
    size_t tmp = 0;
    assert_int_equal(landed_whole("unit", &tmp), 2); /* whole entries, no temporary file left */
    assert_int_equal(tmp, 0);
    cache_path("unit", "layers", layers, sizeof(layers));
    assert_int_equal(entries_in(layers), 0);

    /* another change: each configuration's job hits the entry its configuration's job left */
    const fx_file two[] = {{"two.txt", "2\n"}};
    assert_int_equal(change("second", two, 1), GATE_CHANGE_LANDED);
    a = cache_of("unit");
    b = cache_of("other");
    assert_true(a.hits == 1 && a.misses == 1);
    assert_true(b.hits == 1 && b.misses == 1);

    /* the jobs saw their own cache only, and wrote nowhere else */
    char path[GATE_PATH_MAX + 32];
    struct stat sb;
    for (int k = 0; k < 2; k++) {
        const char *me = k == 0 ? "unit" : "other", *peer = k == 0 ? "other" : "unit";
        (void)snprintf(path, sizeof(path), "%s/saw-%s", fx_shared, me);
        if (stat(path, &sb) == 0)
            fail_msg("configuration '%s' saw the cache of '%s'", me, peer);
        gate_ccache_dir(work, peer, dir, sizeof(dir));
        (void)snprintf(path, sizeof(path), "%s/planted", dir);
        assert_int_not_equal(stat(path, &sb), 0);
    }
    (void)snprintf(path, sizeof(path), "%s/ccache/planted", work);
    assert_int_not_equal(stat(path, &sb), 0);

    /* status: each configuration's hit rate */
    static char text[16384];
    status_text(text, sizeof(text));
    if (strstr(text, "compiler caches:\n") == NULL ||
        strstr(text, "  other                     50.0% hits (1 of 2 compilations), 2 files") ==
            NULL ||
        strstr(text, "  unit                      50.0% hits (1 of 2 compilations), 2 files") ==
            NULL)
        fail_msg("no hit rates in the status:\n%s", text);
}

/*
 * One configuration `unit` with a cache: ci.sh compiles every *.c file; a change with a file
 * `evil` then tries to put p.c's object into the landed layer (a file of its own, ccache told
 * the landed layer is writable, ccache told to use it as its own directory) and fails; a change
 * with a file `bad` fails after compiling.
 */
static const char p_c[] = "int keel_poison(int x);\nint keel_poison(int x) { return x - 1; }\n";
static const char layered_ci[] =
    "set -e\n"
    "for f in *.c; do gcc -c \"$f\" -o \"${f%.c}.o\"; done\n"
    "if test -e evil; then\n"
    "  landed=$(printf '%s' \"$CCACHE_REMOTE_STORAGE\" | sed -n 's/^file:\\([^|]*\\)|.*/\\1/p')\n"
    "  test -n \"$landed\" || landed=$CCACHE_DIR\n"
    "  echo bogus > \"$landed/planted\" 2>/dev/null || true\n"
    "  mkdir -p \"$landed/zz\" 2>/dev/null && echo bogus > \"$landed/zz/planted\" 2>/dev/null "
    "|| true\n"
    "  printf 'int keel_poison(int x);\\nint keel_poison(int x) { return x - 1; }\\n' > p.c\n"
    "  CCACHE_REMOTE_STORAGE=\"file:$landed\" gcc -c p.c -o p1.o 2>/dev/null || true\n"
    "  CCACHE_REMOTE_STORAGE= CCACHE_REMOTE_ONLY=false CCACHE_DIR=\"$landed\" "
    "gcc -c p.c -o p2.o 2>/dev/null || true\n"
    "  exit 1\n"
    "fi\n"
    "test ! -e bad\n";

/* The repository of the tests below, and a first change landed (k.c in the landed layer). */
static void setup_layered(void)
{
    need_ccache();
    fx_setup_repo("", "");
    const char conf[] = "[gate]\ntarget = main\nslots = 2\nstrategy = serial\nretries = 0\n"
                        "ccache-size = 64M\n"
                        "[config unit]\ntest = sh ci.sh\ntimeout = 60\n";
    const fx_file f[] = {{".keel/gate.conf", conf}, {"ci.sh", layered_ci}, {"k.c", k_c}};
    fx_commit(NULL, f, 3, "main", &fx_base);
}

static void test_unlanded_cannot_write_landed(void **state)
{
    (void)state;
    setup_layered();
    const fx_file one[] = {{"one.txt", "1\n"}};
    assert_int_equal(change("first", one, 1), GATE_CHANGE_LANDED);
    static char before[8192], after[8192];
    landed_files("unit", before, sizeof(before));
    assert_non_null(strchr(before, '\n')); /* k.c's entries */
    gate_ccache_stats s0 = cache_of("unit");

    const fx_file evil[] = {{"evil", "1\n"}};
    assert_int_equal(change("evil", evil, 1), GATE_CHANGE_REJECTED);
    landed_files("unit", after, sizeof(after));
    assert_string_equal(after, before); /* nothing planted, no entry of p.c */

    /* a later change compiling the very p.c: a miss (the evil job's attempts left nothing) */
    const fx_file later[] = {{"p.c", p_c}};
    gate_ccache_stats s1 = cache_of("unit");
    assert_int_equal(change("later", later, 1), GATE_CHANGE_LANDED);
    gate_ccache_stats s2 = cache_of("unit");
    assert_true(s1.hits == s0.hits + 1); /* the evil job's k.c, from the landed layer */
    assert_true(s2.hits == s1.hits + 1); /* k.c again */
    if (s2.misses != s1.misses + 1)
        fail_msg("p.c was served from the cache: a job of a rejected change planted it (misses "
                 "%llu -> %llu)",
                 s1.misses, s2.misses);
}

static void test_rejected_layer_never_seen(void **state)
{
    (void)state;
    setup_layered();
    const fx_file one[] = {{"one.txt", "1\n"}};
    assert_int_equal(change("first", one, 1), GATE_CHANGE_LANDED);
    /* a change that compiles r.c (a miss: into its own layer), then fails */
    static const char r_c[] =
        "int keel_rejected(int x);\nint keel_rejected(int x) { return -x; }\n";
    const fx_file bad[] = {{"bad", "1\n"}, {"r.c", r_c}};
    gate_ccache_stats s0 = cache_of("unit");
    assert_int_equal(change("bad", bad, 2), GATE_CHANGE_REJECTED);
    gate_ccache_stats s1 = cache_of("unit");
    assert_true(s1.hits == s0.hits + 1 && s1.misses == s0.misses + 1); /* k.c hit, r.c missed */
    assert_true(s1.files == s0.files);                                 /* nothing of it landed */
    char layers[GATE_PATH_MAX + 16];
    cache_path("unit", "layers", layers, sizeof(layers));
    assert_int_equal(entries_in(layers), 0); /* its layer deleted */

    /* a later change compiling the same r.c: a miss */
    const fx_file later[] = {{"r.c", r_c}};
    assert_int_equal(change("later", later, 1), GATE_CHANGE_LANDED);
    gate_ccache_stats s2 = cache_of("unit");
    assert_true(s2.hits == s1.hits + 1); /* k.c */
    if (s2.misses != s1.misses + 1)
        fail_msg("r.c was served from the cache: the rejected change's entry was seen (misses "
                 "%llu -> %llu)",
                 s1.misses, s2.misses);
    assert_true(s2.files == s1.files + 2); /* the later change's r.c landed */
}

/* A post build of a landed commit (the tip) writes the landed layer itself: no layer to merge. */
static void test_level_build_writes_landed(void **state)
{
    (void)state;
    need_ccache();
    fx_setup_repo("", "");
    const char conf[] = "[gate]\ntarget = main\nslots = 1\nstrategy = serial\nretries = 0\n"
                        "ccache-size = 64M\n"
                        "[config unit]\ntest = sh ci.sh\ntimeout = 60\n"
                        "[config long]\ntest = sh ci.sh\ntimeout = 60\nlevels = post\n";
    const fx_file f[] = {{".keel/gate.conf", conf}, {"ci.sh", layered_ci}, {"k.c", k_c}};
    fx_commit(NULL, f, 3, "main", &fx_base);
    (void)fx_run_once(); /* the first run: the tip alone is the post level's */
    assert_int_equal(
        fx_sql_int("SELECT count(*) FROM post_results WHERE config = ? AND state = 'done'", "long"),
        1);
    gate_ccache_stats st = cache_of("long");
    assert_true(st.misses == 1 && st.hits == 0);
    assert_true(st.files == 2); /* k.c's manifest and result, in the landed layer at once */
    char layers[GATE_PATH_MAX + 16];
    cache_path("long", "layers", layers, sizeof(layers));
    assert_int_equal(entries_in(layers), 0);
}

#if KEEL_DEVEL /* release builds have no stress points */
/* A kill -9 half-way through the merge's second entry: the cache stays usable, nothing partial. */
static void test_kill_during_merge(void **state)
{
    (void)state;
    fx_skip_sweep_under_tsan();
    setup_layered();
    git_oid head, oid;
    fx_head("main", &head);
    const fx_file one[] = {{"one.txt", "1\n"}};
    fx_commit(&head, one, 1, "first", &oid);
    gate *g = fx_open();
    long long first = fx_submit(g, "first", 0);
    gate_close(g);
    fx_crash_spec = "gate_exec.ccache_merge_kill:nth=2";
    char err[4096];
    int status = keel_test_run_child(fx_crashing_run, err, sizeof(err));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
        fail_msg("the gate should have died in the merge (status %d): %s", status, err);
    g = fx_open();
    assert_int_equal(fx_state_of(g, first), GATE_CHANGE_LANDED); /* the merge follows landing */
    gate_close(g);
    size_t tmp = 0;
    assert_int_equal(landed_whole("unit", &tmp), 1); /* the first entry whole, under its name */
    assert_int_equal(tmp, 1);                        /* the second half-written, aside */

    /* the next run: what the kill left is swept, the cache serves whole entries only */
    const fx_file two[] = {{"two.txt", "2\n"}};
    assert_int_equal(change("second", two, 1), GATE_CHANGE_LANDED);
    size_t n = landed_whole("unit", &tmp);
    assert_int_equal(tmp, 0);
    assert_true(n >= 1 && n <= 2);
    gate_ccache_stats st = cache_of("unit");
    assert_true(st.hits + st.misses == 2); /* both compilations counted */
    char layers[GATE_PATH_MAX + 16];
    cache_path("unit", "layers", layers, sizeof(layers));
    assert_int_equal(entries_in(layers), 0); /* the killed merge's layer: swept */
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_stats_parse),
        cmocka_unit_test(test_attach),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_merge_takes_entries_only),
        cmocka_unit_test(test_sweep),
        cmocka_unit_test_teardown(test_shared_by_a_configuration, fx_teardown),
        cmocka_unit_test_teardown(test_unlanded_cannot_write_landed, fx_teardown),
        cmocka_unit_test_teardown(test_rejected_layer_never_seen, fx_teardown),
        cmocka_unit_test_teardown(test_level_build_writes_landed, fx_teardown),
#if KEEL_DEVEL
        cmocka_unit_test_teardown(test_kill_during_merge, fx_teardown),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
