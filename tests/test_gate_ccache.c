/*
 * test_gate_ccache.c - the compiler cache each configuration gets (gate/exec/ccache.h):
 * `ccache-size` in the configuration, the cache a job is given and its environment, the
 * counters `ccache --print-stats` gives; then through gate_run on a real repository: two jobs
 * of one configuration share hits, another configuration does not see them, a job cannot
 * write outside its own cache, and the hit rate is in `status`.  The end-to-end test is
 * skipped (with the reason) where ccache or bubblewrap is missing.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    assert_true(st.hits == 5 && st.misses == 3 && st.files == 6 && st.bytes == 12 * 1024);
    keel_status s = gate_ccache_stats_parse("ccache: error: nothing\n", &st);
    assert_true(KEEL_IS(s, KEEL_E_PARSE));
    keel_status_free(s);
}

/* The cache of a job: its configuration's directory, writable, its settings; others none. */
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
    fx_ok(gate_ccache_attach(&p, work, c, "a"));
    if (!keel_ok(found)) { /* the job runs without one, its log says why */
        assert_string_equal(p.ccache_dir, "");
        assert_non_null(strstr(p.ccache_note, "'ccache' is not installed"));
    } else {
        char dir[GATE_PATH_MAX], conf[GATE_PATH_MAX + 16], text[64] = "";
        gate_ccache_dir(work, "a", dir, sizeof(dir));
        assert_string_equal(p.ccache_dir, dir);
        assert_string_equal(p.writable, "/var/tmp"); /* the configuration's first */
        assert_string_equal(p.writable + strlen("/var/tmp") + 1, dir);
        (void)snprintf(conf, sizeof(conf), "%s/ccache.conf", dir);
        FILE *f = fopen(conf, "r");
        assert_non_null(f);
        assert_non_null(fgets(text, sizeof(text), f));
        fclose(f);
        assert_string_equal(text, "max_size = 65536K\n");
    }
    fx_ok(gate_job_policy_from(&p, c, "b"));
    fx_ok(gate_ccache_attach(&p, work, c, "b"));
    assert_string_equal(p.ccache_dir, "");
    assert_string_equal(p.ccache_note, "");
    c->executor = GATE_EXECUTOR_SLURM; /* the cache is on the gate's machine only */
    fx_ok(gate_job_policy_from(&p, c, "a"));
    fx_ok(gate_ccache_attach(&p, work, c, "a"));
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
    char vars[GATE_CCACHE_VARS][1200];
    size_t n = gate_ccache_env("/s.d/ccache/a", "/s.d/work/0", "/usr/bin:/bin", vars);
    assert_true(n >= 3);
    assert_string_equal(vars[0], "CCACHE_DIR=/s.d/ccache/a");
    assert_string_equal(vars[1], "CCACHE_BASEDIR=/s.d/work/0");
    assert_string_equal(vars[2], "CCACHE_NOHASHDIR=1");
    struct stat sb;
    if (stat("/usr/lib/ccache", &sb) == 0) {
        assert_int_equal(n, 4);
        assert_string_equal(vars[3], "PATH=/usr/lib/ccache:/usr/bin:/bin");
    }
}

/* ---- through the gate ------------------------------------------------------------- */

/*
 * Configurations `unit` and `other` compile the same file through ccache (gcc, found on
 * /usr/lib/ccache), each with its cache; a change's script also tries to reach the other
 * configuration's cache and the caches' directory, and leaves what it could see in the
 * shared directory.
 */
static const char ci[] =
    "set -e\n"
    "gcc -c k.c -o k.o\n"
    "other=\"$(dirname \"$CCACHE_DIR\")/$PEER\"\n"
    "if test -e \"$other\"; then touch \"$(dirname \"$MARKER\")/saw-$CONFIG\"; fi\n"
    "mkdir -p \"$other\" 2>/dev/null && echo bogus > \"$other/planted\" "
    "2>/dev/null || true\n"
    "echo bogus > \"$(dirname \"$CCACHE_DIR\")/planted\" 2>/dev/null || true\n";

/* The counters of configuration `name`'s cache under the fixture's gate. */
static gate_ccache_stats cache_of(const char *name)
{
    char work[GATE_PATH_MAX], dir[GATE_PATH_MAX];
    (void)snprintf(work, sizeof(work), "%s.d", fx_state);
    gate_ccache_dir(work, name, dir, sizeof(dir));
    gate_ccache_stats st;
    fx_ok(gate_ccache_stats_read(dir, &st));
    return st;
}

static void status_text(char *buf, size_t size)
{
    gate *g = fx_open();
    FILE *f = fmemopen(buf, size, "w");
    assert_non_null(f);
    fx_ok(gate_status(g, f, 0));
    fclose(f);
    gate_close(g);
}

static void test_shared_by_a_configuration(void **state)
{
    (void)state;
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
    const fx_file f[] = {{".keel/gate.conf", conf},
                         {"ci.sh", ci},
                         {"k.c", "int keel_ccache_probe(int x);\n"
                                 "int keel_ccache_probe(int x) { return x * 3; }\n"}};
    fx_commit(NULL, f, 3, "main", &fx_base);
    fx_branch("first", "one.txt", "1\n");
    gate *g = fx_open();
    long long first = fx_submit(g, "first", 0);
    gate_close(g);
    (void)fx_run_once();
    g = fx_open();
    assert_int_equal(fx_state_of(g, first), GATE_CHANGE_LANDED);
    gate_close(g);
    char dir[GATE_PATH_MAX], work[GATE_PATH_MAX];
    (void)snprintf(work, sizeof(work), "%s.d", fx_state);
    gate_ccache_stats a, b;
    a = cache_of("unit");
    b = cache_of("other");
    /* the same file compiled by both: each missed in its own cache (neither saw the other's) */
    assert_true(a.misses == 1 && a.hits == 0);
    assert_true(b.misses == 1 && b.hits == 0);

    /* another change: each configuration's job hits the entry its configuration's job left */
    git_oid head;
    fx_head("main", &head);
    const fx_file s[] = {{"two.txt", "2\n"}};
    git_oid second_oid;
    fx_commit(&head, s, 1, "second", &second_oid);
    g = fx_open();
    long long second = fx_submit(g, "second", 0);
    gate_close(g);
    (void)fx_run_once();
    g = fx_open();
    assert_int_equal(fx_state_of(g, second), GATE_CHANGE_LANDED);
    gate_close(g);
    a = cache_of("unit");
    b = cache_of("other");
    assert_true(a.hits == 1 && a.misses == 1);
    assert_true(b.hits == 1 && b.misses == 1);

    /* the jobs saw their own cache only, and wrote nowhere else */
    char path[GATE_PATH_MAX + 32];
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
        strstr(text, "  other                     50.0% hits (1 of 2 compilations)") == NULL ||
        strstr(text, "  unit                      50.0% hits (1 of 2 compilations)") == NULL)
        fail_msg("no hit rates in the status:\n%s", text);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_stats_parse),
        cmocka_unit_test(test_attach),
        cmocka_unit_test(test_env),
        cmocka_unit_test_teardown(test_shared_by_a_configuration, fx_teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
