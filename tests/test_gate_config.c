/*
 * test_gate_config.c - keel-gate's .keel/gate.conf parser: good files, and bad
 * ones that must fail with an error naming the line and what was wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "config.h"
#include "git.h"

static const char good[] =
    "# the gate of a small C project\n"
    "[gate]\n"
    "target = main\n"
    "slots = 4            # executor slots\n"
    "strategy = speculative-batch\n"
    "max-batch = 6\n"
    "retries = 2\n"
    "flaky-alike = 3\n"
    "notify = tools/notify --channel \"#ci builds\"\n"
    "\n"
    "[config gcc-devel]\n"
    "build = make CC=gcc 'CFLAGS=-O1 -g'\n"
    "test = make check\n"
    "env = CC=gcc KEEL_OPTIONS=\"report.lock-order=abort;report.heap=abort\"\n"
    "timeout = 900\n"
    "\n"
    "[config clang-release]\n"
    "test = make check CC=clang\n"
    "required = no\n";

static void test_good_config(void **state)
{
    (void)state;
    gate_config *c = NULL;
    keel_status s = gate_config_parse(good, strlen(good), "gate.conf", &c);
    assert_true(keel_ok(s));
    assert_non_null(c);
    if (c == NULL)
        return;
    assert_string_equal(c->target, "main");
    assert_int_equal(c->slots, 4);
    assert_int_equal(c->strategy, GATE_STRATEGY_SPECULATIVE_BATCH);
    assert_int_equal(c->max_batch, 6);
    assert_int_equal(c->max_depth, 4); /* default */
    assert_int_equal(c->retries, 2);
    assert_int_equal(c->flaky_alike, 3);
    assert_int_equal(c->notify.n, 3);
    assert_string_equal(c->notify.words[2], "#ci builds");
    assert_int_equal(c->nconfigs, 2);
    assert_string_equal(c->configs[0].name, "gcc-devel");
    assert_int_equal(c->configs[0].build.n, 3);
    assert_string_equal(c->configs[0].build.words[2], "CFLAGS=-O1 -g");
    assert_null(c->configs[0].build.words[3]);
    assert_int_equal(c->configs[0].env.n, 2);
    assert_string_equal(c->configs[0].env.words[1],
                        "KEEL_OPTIONS=report.lock-order=abort;report.heap=abort");
    assert_int_equal(c->configs[0].timeout_s, 900);
    assert_true(c->configs[0].required);
    assert_int_equal(c->configs[1].build.n, 0);
    assert_false(c->configs[1].required);
    assert_int_equal(c->configs[1].timeout_s, 3600); /* default */
    assert_string_equal(gate_strategy_name(c->strategy), "speculative-batch");
    gate_config_free(c);
}

/* Parse `text`, expect failure with `code`, and a message containing each needle. */
static void expect_error(const char *text, keel_code code, const char *needle1, const char *needle2)
{
    static gate_config not_reset;
    gate_config *c = &not_reset; /* must be reset to NULL */
    keel_status s = gate_config_parse(text, strlen(text), "repo:.keel/gate.conf", &c);
    assert_false(keel_ok(s));
    assert_null(c);
    char msg[1024];
    (void)keel_status_format(s, msg, sizeof(msg));
    if (!KEEL_HAS(s, code))
        fail_msg("expected code %s, got: %s", keel_code_name(&keel_codespace_keel, (int)code), msg);
    if (strstr(msg, needle1) == NULL)
        fail_msg("'%s' not in: %s", needle1, msg);
    if (needle2 != NULL && strstr(msg, needle2) == NULL)
        fail_msg("'%s' not in: %s", needle2, msg);
    keel_status_free(s);
}

static void test_unknown_key_suggests(void **state)
{
    (void)state;
    expect_error("[gate]\nslot = 4\n[config a]\ntest = true\n", KEEL_E_NOTFOUND,
                 "repo:.keel/gate.conf:2: unknown key 'slot' in [gate]", "did you mean 'slots'?");
    expect_error("[config a]\ntset = true\n", KEEL_E_NOTFOUND, ":2: unknown key 'tset' in [config]",
                 "did you mean 'test'?");
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_error("[gate]\nslots = many\n", KEEL_E_PARSE, ":2: 'slots' must be a whole number",
                 "many");
    expect_error("[gate]\nslots = 0\n", KEEL_E_RANGE, ":2: 'slots' = 0 is out of range [1, 256]",
                 NULL);
    expect_error("[gate]\nslots = -3\n", KEEL_E_PARSE, "'slots' must be a whole number", NULL);
    expect_error("[gate]\nflaky-alike = 4\n", KEEL_E_RANGE,
                 ":2: 'flaky-alike' = 4 is out of range [2, 3]", NULL);
    expect_error("[gate]\nstrategy = adaptiv\n", KEEL_E_PARSE, "unknown strategy 'adaptiv'",
                 "did you mean 'adaptive'?");
    expect_error("[config a]\ntest = true\nrequired = maybe\n", KEEL_E_PARSE,
                 ":3: 'required' must be yes or no", NULL);
    expect_error("[config a]\ntest = make 'check\n", KEEL_E_PARSE, ":2: bad value for 'test'",
                 "unterminated ' quote");
    expect_error("[config a]\ntest = true\nenv = =x\n", KEEL_E_PARSE, "NAME=value", NULL);
    /* a name no shell could set, and one set twice (the last won, without a word) */
    expect_error("[config a]\ntest = true\nenv = 1A=b\n", KEEL_E_PARSE,
                 ":3: 'env': '1A' is not a variable name (letters, digits and '_', not a digit "
                 "first)",
                 NULL);
    expect_error("[config a]\ntest = true\nenv = A-B=1\n", KEEL_E_PARSE,
                 "'env': 'A-B' is not a variable name", NULL);
    expect_error("[config a]\ntest = true\nenv = A=1 B=2 A=3\n", KEEL_E_EXISTS,
                 ":3: 'env': 'A' is set twice", NULL);
}

/*
 * levels and tier: defaults keep an old configuration's meaning (gate and
 * try, tier 2); the queue's and try's views keep their own; errors name the
 * key and the value.
 */
/* The nightly level's keys: schedule (cron.h) and jitter (a duration), defaults and refusals. */
static void test_schedule_and_jitter(void **state)
{
    (void)state;
    static const char text[] = "[config quick]\ntest = true\n"
                               "[config long]\ntest = true\nlevels = nightly\n"
                               "schedule = 30 2 * * mon-fri\njitter = 4h\n";
    gate_config *c = NULL;
    keel_status s = gate_config_parse(text, strlen(text), "gate.conf", &c);
    assert_true(keel_ok(s));
    assert_non_null(c);
    if (c == NULL)
        return;
    assert_string_equal(c->configs[0].schedule_text, "0 2 * * *"); /* the defaults */
    assert_int_equal(c->configs[0].jitter_s, 1800);
    assert_string_equal(c->configs[1].schedule_text, "30 2 * * mon-fri");
    assert_int_equal(c->configs[1].jitter_s, 4 * 3600);
    assert_int_equal(c->configs[1].schedule.hours, 1u << 2);
    assert_int_equal(c->configs[1].schedule.weekdays, 0x3e);
    gate_config_free(c);
    expect_error("[config a]\ntest = true\nschedule = 0 25 * * *\n", KEEL_E_PARSE,
                 "'schedule': field 2 (hour): '25' is out of range", "gate.conf:3:");
    expect_error("[config a]\ntest = true\nschedule = @reboot\n", KEEL_E_PARSE,
                 "@reboot has no meaning", NULL);
    expect_error("[config a]\ntest = true\nschedule = 0 0 30 2 *\n", KEEL_E_PARSE, "never fires",
                 NULL);
    expect_error("[config a]\ntest = true\njitter = 30x\n", KEEL_E_PARSE,
                 "'jitter': '30x' is not a duration", NULL);
    expect_error("[config a]\ntest = true\njitter = 2d\n", KEEL_E_PARSE,
                 "'jitter': more than a day", NULL);
    expect_error("[config a]\ntest = true\njitter = 30\n", KEEL_E_PARSE, "is not a duration", NULL);
    unsigned long long secs = 1;
    assert_true(keel_ok(gate_duration_parse("0", &secs)));
    assert_int_equal(secs, 0);
    assert_true(keel_ok(gate_duration_parse("2w", &secs)));
    assert_int_equal(secs, 14 * 86400);
    s = gate_duration_parse("99999999999d", &secs);
    assert_true(KEEL_IS(s, KEEL_E_RANGE));
    keel_status_free(s);
}

static void test_levels_and_tiers(void **state)
{
    (void)state;
    static const char text[] = "[config quick]\ntest = true\n"
                               "[config long]\ntest = true\nlevels = post nightly\ntier = 1\n"
                               "[config lint]\ntest = true\nlevels = try\nrequired = no\n"
                               "[config all]\ntest = true\nlevels = try gate post pre-merge\n"
                               "tier = 3\n";
    gate_config *c = NULL;
    keel_status s = gate_config_parse(text, strlen(text), "gate.conf", &c);
    assert_true(keel_ok(s));
    assert_non_null(c);
    if (c == NULL)
        return;
    assert_int_equal(c->configs[0].levels, GATE_LEVEL_GATE | GATE_LEVEL_TRY); /* the default */
    assert_int_equal(c->configs[0].tier, 2);
    assert_int_equal(c->configs[1].levels, GATE_LEVEL_POST | GATE_LEVEL_NIGHTLY);
    assert_int_equal(c->configs[1].tier, 1);
    assert_true(gate_config_at(&c->configs[2], GATE_LEVEL_TRY));
    assert_false(gate_config_at(&c->configs[2], GATE_LEVEL_GATE));
    assert_int_equal(c->configs[3].tier, 3);
    assert_string_equal(gate_level_name(GATE_LEVEL_PRE_MERGE), "pre-merge");
    assert_string_equal(gate_level_name((gate_level)3), "?");
    gate_config_keep_level(c, GATE_LEVEL_GATE);
    assert_int_equal(c->nconfigs, 2);
    assert_string_equal(c->configs[0].name, "quick");
    assert_string_equal(c->configs[1].name, "all");
    assert_string_equal(c->configs[1].test.words[0], "true"); /* its words moved with it */
    gate_config_free(c);
    s = gate_config_parse(text, strlen(text), "gate.conf", &c);
    assert_true(keel_ok(s));
    gate_config_keep_level(c, GATE_LEVEL_POST);
    assert_int_equal(c->nconfigs, 2);
    assert_string_equal(c->configs[0].name, "long");
    gate_config_keep_level(c, GATE_LEVEL_TRY);
    assert_int_equal(c->nconfigs, 1);
    assert_string_equal(c->configs[0].name, "all");
    gate_config_keep_level(c, GATE_LEVEL_NIGHTLY); /* none of them: an empty view */
    assert_int_equal(c->nconfigs, 0);
    gate_config_free(c);
    expect_error("[config a]\ntest = true\nlevels = gate pst\n", KEEL_E_PARSE,
                 ":3: 'levels': unknown level 'pst'", "did you mean 'post'?");
    expect_error("[config a]\ntest = true\nlevels = gate gate\n", KEEL_E_PARSE,
                 "'levels': level 'gate' is named twice in 'gate gate'", NULL);
    expect_error("[config a]\ntest = true\nlevels =\n", KEEL_E_PARSE,
                 ":3: 'levels' needs at least one level", NULL);
    expect_error("[config a]\ntest = true\ntier = 4\n", KEEL_E_RANGE,
                 ":3: 'tier' = 4 is out of range [1, 3]", NULL);
    expect_error("[config a]\ntest = true\ntier = one\n", KEEL_E_PARSE,
                 "'tier' must be a whole number, not 'one'", NULL);
    /* a required configuration that is not at the gate stops nothing */
    expect_error("[config a]\ntest = true\nlevels = post\n[config b]\ntest = true\n"
                 "required = no\n",
                 KEEL_E_PARSE, "no configuration at level 'gate' is required", NULL);
}

/* executor = slurm and each configuration's Slurm request; errors name the key and value. */
static void test_slurm_request(void **state)
{
    (void)state;
    static const char text[] = "[gate]\nexecutor = slurm\n"
                               "[config a]\ntest = true\npartition = ci\n"
                               "constraint = clang&x86_64\ncpus = 2\nslurm-memory = 512M\n"
                               "time-limit = 20\ntimeout = 60\n"
                               "[config b]\ntest = true\n";
    gate_config *c = NULL;
    keel_status s = gate_config_parse(text, strlen(text), "gate.conf", &c);
    assert_true(keel_ok(s));
    assert_non_null(c);
    if (c == NULL)
        return;
    assert_int_equal(c->executor, GATE_EXECUTOR_SLURM);
    assert_string_equal(gate_executor_name(c->executor), "slurm");
    assert_false(c->slurm_srun); /* the runner by default */
    const gate_slurm_request *r = &c->configs[0].slurm;
    assert_string_equal(r->partition, "ci");
    assert_string_equal(r->constraint, "clang&x86_64");
    assert_int_equal(r->cpus, 2);
    assert_int_equal(r->memory, 512ull << 20);
    assert_int_equal(r->time_min, 20);
    r = &c->configs[1].slurm; /* nothing asked */
    assert_string_equal(r->partition, "");
    assert_string_equal(r->constraint, "");
    assert_int_equal(r->cpus, 0);
    assert_int_equal(r->memory, 0);
    assert_int_equal(r->time_min, 0);
    gate_config_free(c);
    static const char local[] = "[config a]\ntest = true\n";
    s = gate_config_parse(local, strlen(local), "gate.conf", &c);
    assert_true(keel_ok(s));
    assert_int_equal(c->executor, GATE_EXECUTOR_LOCAL); /* the default */
    gate_config_free(c);
    expect_error("[gate]\nexecutor = pbs\n[config a]\ntest = true\n", KEEL_E_PARSE,
                 ":2: 'executor' must be local or slurm, not 'pbs'", NULL);
    static const char srun[] = "[gate]\nexecutor = slurm\nslurm-launch = srun\n"
                               "[config a]\ntest = true\n";
    s = gate_config_parse(srun, strlen(srun), "gate.conf", &c);
    assert_true(keel_ok(s));
    assert_true(c->slurm_srun);
    gate_config_free(c);
    expect_error("[gate]\nslurm-launch = sbatch\n[config a]\ntest = true\n", KEEL_E_PARSE,
                 ":2: 'slurm-launch' must be runner or srun, not 'sbatch'", NULL);
    expect_error("[config a]\ntest = true\npartition = ci main\n", KEEL_E_PARSE,
                 ":3: 'partition': ' ' is not allowed in 'ci main'", NULL);
    expect_error("[config a]\ntest = true\npartition = --uid=0\n", KEEL_E_PARSE,
                 "'partition' cannot start with '-'", NULL);
    expect_error("[config a]\ntest = true\nconstraint = gcc;reboot\n", KEEL_E_PARSE,
                 "'constraint': ';' is not allowed in 'gcc;reboot'", NULL);
    expect_error("[config a]\ntest = true\ncpus = 0\n", KEEL_E_RANGE,
                 "'cpus' = 0 is out of range [1, 4096]", NULL);
    expect_error("[config a]\ntest = true\nslurm-memory = lots\n", KEEL_E_PARSE,
                 "'slurm-memory' must be a size", "not 'lots'");
    expect_error("[config a]\ntest = true\nslurm-memory = 512\n", KEEL_E_PARSE,
                 "'slurm-memory' must be a size of at least 1M", NULL);
    expect_error("[config a]\ntest = true\ntime-limit = 99999999\n", KEEL_E_RANGE,
                 "'time-limit' = 99999999 is out of range", NULL);
    expect_error("[config a]\ntest = true\nconstrain = gcc\n", KEEL_E_NOTFOUND,
                 "unknown key 'constrain'", "did you mean 'constraint'?");
    expect_error("[gate]\npartition = ci\n[config a]\ntest = true\n", KEEL_E_NOTFOUND,
                 "key 'partition' belongs in [config NAME], not in [gate]", NULL);
}

/*
 * A key, value or name of a line of thousands of bytes is quoted cut (its
 * first 64 bytes and '...') and the message still says what is wrong: it was
 * cut at 512 bytes, and the rule broken (too long), the nearest key or the
 * list of levels went with the rest.
 */
static void test_long_subjects_cut(void **state)
{
    (void)state;
    static char text[8192];
    char x[4001], xs[65];
    memset(x, 'x', sizeof(x) - 1);
    x[sizeof(x) - 1] = '\0';
    memset(xs, 'x', sizeof(xs) - 1);
    xs[sizeof(xs) - 1] = '\0';
    char want[128];
    (void)snprintf(want, sizeof(want), "'%s...'", xs);
    (void)snprintf(text, sizeof(text), "[config %s]\ntest = true\n", x);
    expect_error(text, KEEL_E_PARSE, want, "' is longer than 64 bytes");
    (void)snprintf(text, sizeof(text), "[gate]\ntarget = %s\n[config a]\ntest = true\n", x);
    expect_error(text, KEEL_E_PARSE, want,
                 "...': too long (4000 bytes; keel-gate takes at most 255)");
    (void)snprintf(text, sizeof(text), "[config a]\ntest = true\n%s = 1\n", x);
    expect_error(text, KEEL_E_NOTFOUND, want, "...' in [config] (did you mean");
    (void)snprintf(text, sizeof(text), "[config a]\ntest = true\nlevels = %s\n", x);
    expect_error(text, KEEL_E_PARSE, want, "...' (try, gate, post, nightly or pre-merge)");
    (void)snprintf(text, sizeof(text), "true \"%s", x);
    gate_words w;
    keel_status s = gate_words_split(text, &w);
    char msg[8192];
    (void)keel_status_format(s, msg, sizeof(msg));
    (void)snprintf(want, sizeof(want), "quote at column 6 in 'true \"%.58s...' ", x);
    if (strstr(msg, want) == NULL)
        fail_msg("'%s' not in: %s", want, msg);
    keel_status_free(s);
}

static void test_hostile_names(void **state)
{
    (void)state;
    expect_error("[gate]\ntarget = main; rm -rf /\n", KEEL_E_PARSE,
                 "'target' must be one branch name", NULL);
    expect_error("[gate]\ntarget = ../../etc\n", KEEL_E_PARSE, "'target' must be one branch name",
                 NULL);
    /* what gate_branch_check refuses: no branch keel-gate guards could ever have that name */
    static const char *const targets[] = {"=#main", "= ma\tin", "= -rf", "= x.lock", "= a\x1b[31m"};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        char text[128];
        (void)snprintf(text, sizeof(text), "[gate]\ntarget %s\n[config a]\ntest = x\n", targets[i]);
        expect_error(text, KEEL_E_PARSE, ":2: 'target' must be one branch name, not '", NULL);
    }
    expect_error("[config a/b]\ntest = true\n", KEEL_E_PARSE, "configuration name 'a/b'", NULL);
    expect_error("[config $(reboot)]\ntest = true\n", KEEL_E_PARSE, "configuration name", NULL);
    /* the reason, not the character set whatever it was (a name of 70 letters, '.a', '-b') */
    static char long_name[128];
    (void)snprintf(long_name, sizeof(long_name), "[config %070d]\ntest = true\n", 0);
    expect_error(long_name, KEEL_E_PARSE, "' is longer than 64 bytes", NULL);
    expect_error("[config .a]\ntest = true\n", KEEL_E_PARSE,
                 ":1: configuration name '.a' starts with '.' or '-'", NULL);
    expect_error("[config -b]\ntest = true\n", KEEL_E_PARSE,
                 ":1: configuration name '-b' starts with '.' or '-'", NULL);
    /* a header without its name: it said "unknown section [config] (did you mean [config]?)" */
    expect_error("[config ]\ntest = true\n", KEEL_E_PARSE,
                 ":1: section [config] needs a name: [config NAME]", NULL);
    expect_error("[config a]\ntest = true\n[flow]\n", KEEL_E_PARSE,
                 ":3: section [flow] needs two branches: [flow A -> B]", NULL);
}

/*
 * A name that differs from a known one only in case is a misspelling too: 'levels = GATE'
 * had no "did you mean" (four edits from 'gate', past the limit for four letters).
 */
static void test_suggest_any_case(void **state)
{
    (void)state;
    expect_error("[config a]\ntest = true\nlevels = GATE\n", KEEL_E_PARSE,
                 ":3: 'levels': unknown level 'GATE'", "did you mean 'gate'?");
    expect_error("[config a]\ntest = true\nlevels = Nightly\n", KEEL_E_PARSE,
                 "unknown level 'Nightly'", "did you mean 'nightly'?");
    expect_error("[gate]\nstrategy = SERIAL\n", KEEL_E_PARSE, "unknown strategy 'SERIAL'",
                 "did you mean 'serial'?");
    expect_error("[gate]\nSLOTS = 2\n", KEEL_E_NOTFOUND, "unknown key 'SLOTS' in [gate]",
                 "did you mean 'slots'?");
    expect_error("[GATE]\n", KEEL_E_NOTFOUND, "unknown section [GATE]", "did you mean [gate]?");
}

static void test_structure_errors(void **state)
{
    (void)state;
    expect_error("test = true\n", KEEL_E_PARSE, ":1: key 'test' before any section", NULL);
    expect_error("[gate\n", KEEL_E_PARSE, ":1: section header", "closing ']'");
    expect_error("[gates]\n", KEEL_E_NOTFOUND, "unknown section [gates]", "did you mean [gate]?");
    expect_error("[gate]\n[gate]\n", KEEL_E_EXISTS,
                 ":2: a second [gate] section (the first at line 1): give its keys in one", NULL);
    expect_error("[config a]\ntest=x\n[config a]\ntest=y\n", KEEL_E_EXISTS,
                 ":3: configuration 'a' is defined twice (first at line 1)", NULL);
    expect_error("[gate]\nslots = 2\n", KEEL_E_PARSE, "no [config NAME] section", NULL);
    expect_error("[config a]\ntest = x\n\n[config b]\ntimeout = 5\n", KEEL_E_PARSE,
                 ":4: configuration 'b' has neither 'build' nor 'test'", NULL);
    expect_error("[config a]\ntest = x\nrequired = no\n", KEEL_E_PARSE,
                 "no configuration at level 'gate' is required", NULL);
    expect_error("[config a]\njust words\n", KEEL_E_PARSE, ":2: expected 'key = value'", NULL);
    const char nul[] = "[gate]\n\0[config a]\n";
    gate_config *c = NULL;
    keel_status s = gate_config_parse(nul, sizeof(nul) - 1, "x", &c);
    assert_true(KEEL_IS(s, KEEL_E_PARSE));
    assert_null(c);
    assert_string_equal(keel_status_message(s), "x:2: contains a NUL byte");
    unsigned long long line = 0;
    assert_true(keel_status_get_uint(s, "line", &line));
    assert_int_equal(line, 2);
    keel_status_free(s);
}

static void test_word_splitting(void **state)
{
    (void)state;
    gate_words w;
    assert_true(keel_ok(gate_words_split("  a  'b c'  \"d \\\" e\" f\\ g '' ", &w)));
    assert_int_equal(w.n, 5);
    assert_string_equal(w.words[0], "a");
    assert_string_equal(w.words[1], "b c");
    assert_string_equal(w.words[2], "d \" e");
    assert_string_equal(w.words[3], "f g");
    assert_string_equal(w.words[4], "");
    assert_null(w.words[5]);
    gate_words_free(&w);
    assert_true(keel_ok(gate_words_split("   ", &w)));
    assert_int_equal(w.n, 0);
    gate_words_free(&w);
    keel_status s = gate_words_split("echo \"unterminated", &w);
    assert_true(KEEL_IS(s, KEEL_E_PARSE));
    unsigned long long col = 0;
    assert_true(keel_status_get_uint(s, "column", &col));
    assert_int_equal(col, 6);
    assert_int_equal(w.n, 0);
    keel_status_free(s);
}

/* The configuration `text` gives its first [config], which must have these test and build words. */
static void expect_words(const char *text, const char *const *test, const char *const *build)
{
    gate_config *c = NULL;
    keel_status s = gate_config_parse(text, strlen(text), "gate.conf", &c);
    assert_true(keel_ok(s));
    if (c == NULL)
        return;
    const gate_words *got[2] = {&c->configs[0].test, &c->configs[0].build};
    const char *const *want[2] = {test, build};
    for (size_t k = 0; k < 2; k++) {
        size_t n = 0;
        for (; want[k][n] != NULL; n++)
            if (n < got[k]->n)
                assert_string_equal(got[k]->words[n], want[k][n]);
        assert_int_equal(got[k]->n, n);
    }
    gate_config_free(c);
}

/* A comment starts at a word's start, outside quotes, as in a shell: escapes and quotes hide '#'. */
static void test_comments_and_escapes(void **state)
{
    (void)state;
    static const char *const test1[] = {"a\"b", NULL};
    static const char *const build1[] = {"x #y", "z # w", "# v", "u#t", NULL};
    expect_words("[config a]\n"
                 "test = a\\\"b # an escaped quote opens nothing\n"
                 "build = x\\ #y 'z # w' \"# v\" u#t # comment\n",
                 test1, build1);
    /* an escaped blank at the end of a value is the word's, a CR at the end of a line is not */
    static const char *const test2[] = {"a ", NULL};
    static const char *const build2[] = {"b\t", NULL};
    expect_words("[config a]\r\ntest = a\\ \r\nbuild = b\\\t  # c\n", test2, build2);
}

/* `writable`: what a path names, however it is spelled (slashes doubled, '.' components). */
static void test_writable_paths(void **state)
{
    (void)state;
    static const char *const system[] = {"//proc", "//dev/sda", "///sys/kernel", "//", "/proc//"};
    for (size_t i = 0; i < sizeof(system) / sizeof(system[0]); i++) {
        char text[128], want[64];
        (void)snprintf(text, sizeof(text), "[config a]\ntest = true\nwritable = %s\n", system[i]);
        (void)snprintf(want, sizeof(want), ":3: 'writable': '%s' cannot be made writable",
                       system[i]);
        expect_error(text, KEEL_E_INVAL, want, NULL);
    }
    expect_error("[config a]\ntest = true\nwritable = /.\n", KEEL_E_PARSE,
                 "'/.' must be an absolute path without '..' or '.'", NULL);
    expect_error("[config a]\ntest = true\nwritable = /var/cache/.\n", KEEL_E_PARSE,
                 "'/var/cache/.' must be an absolute path without '..' or '.'", NULL);
    gate_config *c = NULL;
    static const char ok[] = "[config a]\ntest = true\nwritable = //var//cache/ /procs /devices\n";
    keel_status s = gate_config_parse(ok, strlen(ok), "gate.conf", &c);
    assert_true(keel_ok(s));
    if (c != NULL)
        assert_int_equal(c->configs[0].writable.n, 3);
    gate_config_free(c);
}

/*
 * Shell syntax in a command is refused where the configuration is read, with
 * the file, the line, the key, the column, and what to write instead: no
 * shell runs the commands.
 */
static void test_shell_syntax_refused(void **state)
{
    (void)state;
    static const struct {
        const char *command;
        const char *found;
        size_t at; /* its column in the command */
    } bad[] = {
        {"cmake -B b && cmake --build b", "&&", 12},
        {"make || true", "||", 6},
        {"make; make check", ";", 5},
        {"make | tee log", "|", 6},
        {"make>log", ">", 5},
        {"make 2>&1", ">", 7},
        {"make >> log", ">>", 6},
        {"sort < in", "<", 6},
        {"sleep 9 &", "&", 9},
        {"echo $(date)", "$(", 6},
        {"echo `date`", "`", 6},
        {"echo ${X}", "${", 6},
        {"echo $HOME/bin", "$HOME", 6},
        {"echo $1", "$1", 6},
        {"echo \"$?\" \"a\"$?", "$?", 14},
    };
    static const char *const keys[] = {"build", "test"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        for (size_t k = 0; k < 2; k++) {
            char text[256], line[96];
            (void)snprintf(text, sizeof(text), "[config a]\nrequired = yes\n%s = %s\n", keys[k],
                           bad[i].command);
            (void)snprintf(line, sizeof(line), ":3: '%s': '%s' at column %zu is shell syntax",
                           keys[k], bad[i].found, strlen(keys[k]) + 3 + bad[i].at);
            expect_error(text, KEEL_E_PARSE, line, "commands are not run by a shell");
        }
    /* what to write instead: a script, or the same line given to sh -c */
    expect_error("[config a]\nbuild = cmake -B b && cmake --build b\n", KEEL_E_PARSE,
                 "a script in the repository and run that (build = sh ci/build.sh)",
                 "(build = sh -c 'cmake -B b && cmake --build b')");
    expect_error("[gate]\nnotify = tools/notify | logger\n[config a]\ntest = true\n", KEEL_E_PARSE,
                 ":2: 'notify': '|' at column 23 is shell syntax", NULL);
    /* an assignment before the program: a shell's; the variable goes to env */
    expect_error("[config a]\ntest = CC=gcc make check\n", KEEL_E_PARSE,
                 ":2: 'test': 'CC=gcc' sets a variable in a shell", "in 'env'");
    /* env: a shell would expand $x there, unquoted or in "...": values are taken as written */
    expect_error("[config a]\ntest = true\nenv = PATH=$PATH:/opt/bin\n", KEEL_E_PARSE,
                 ":3: 'env': '$PATH' at column 12 is shell syntax", "taken as written");
    expect_error("[config a]\ntest = true\nenv = A=\"x$(id)\"\n", KEEL_E_PARSE,
                 ":3: 'env': '$(' at column 11", NULL);
    /* quoted or escaped, an operator is a word's text: these are what they say */
    static const char *const test1[] = {"grep", "a|b", "x;y", "$HOME", "&&", "`", NULL};
    static const char *const build1[] = {"find", ".", "-exec", "rm", "{}", ";", "a$", "*.c", NULL};
    expect_words("[config a]\n"
                 "test = grep 'a|b' \"x;y\" '$HOME' \\&\\& \\`\n"
                 "build = find . -exec rm {} \\; a$ *.c\n",
                 test1, build1);
    static const char *const test2[] = {"sh", "-c", "cmake -B b && cmake --build b", NULL};
    static const char *const build2[] = {"sh", "-c", "echo $HOME > x", NULL};
    expect_words("[config a]\n"
                 "test = sh -c 'cmake -B b && cmake --build b'\n"
                 "build = sh -c \"echo $HOME > x\"\n",
                 test2, build2);
    gate_config *c = NULL; /* env: ';' and '|' are a value's text, '$x' in '...' too */
    static const char ok[] = "[config a]\ntest = true\nenv = A=x;y B=a|b C='$HOME'\n";
    keel_status s = gate_config_parse(ok, strlen(ok), "gate.conf", &c);
    assert_true(keel_ok(s));
    if (c != NULL) {
        assert_string_equal(c->configs[0].env.words[0], "A=x;y");
        assert_string_equal(c->configs[0].env.words[2], "C=$HOME");
    }
    gate_config_free(c);
}

typedef struct seen_errors {
    size_t n;
    unsigned long long lines[16];
    char text[16][600];
} seen_errors;

static void keep_error(keel_status err, void *ctx)
{
    seen_errors *e = (seen_errors *)ctx;
    assert_true(e->n < 16);
    e->lines[e->n] = 0;
    (void)keel_status_get_uint(err, "line", &e->lines[e->n]);
    (void)snprintf(e->text[e->n], sizeof(e->text[0]), "%s", keel_status_message(err));
    e->n++;
}

/*
 * gate_config_check: every error at once, each with its file, line and key,
 * in the order of the file; gate_config_parse (what run uses) still stops
 * at the first.
 */
static void test_check_every_error(void **state)
{
    (void)state;
    static const char text[] = "[gate]\n"                     /* 1 */
                               "slot = 4\n"                   /* 2: unknown key */
                               "[config a]\n"                 /* 3 */
                               "build = make && make check\n" /* 4: shell syntax */
                               "test = 'unterminated\n"       /* 5: a quote */
                               "timeout = soon\n"             /* 6: not a number */
                               "[confg b]\n"                  /* 7: unknown section */
                               "bogus = 1\n"                  /* 8: not read */
                               "[config c]\n"                 /* 9: neither */
                               "required = maybe\n"           /* 10: not yes or no */
                               "[config d]\n"                 /* 11 */
                               "test = true\n"                /* 12 */
                               "env = PATH=$PATH\n";          /* 13: an expansion */
    seen_errors e;
    memset(&e, 0, sizeof(e));
    size_t errors = 0;
    static gate_config not_reset;
    gate_config *c = &not_reset;
    keel_status s = gate_config_check(text, strlen(text), "x.conf", keep_error, &e, &errors, &c);
    assert_true(keel_ok(s));
    assert_null(c);
    static const unsigned long long lines[] = {2, 4, 5, 6, 7, 10, 13, 9};
    static const char *const what[] = {
        "x.conf:2: unknown key 'slot' in [gate]",
        "x.conf:4: 'build': '&&' at column 14",
        "x.conf:5: bad value for 'test'",
        "x.conf:6: 'timeout' must be a whole number of seconds (900: 15 minutes), not 'soon'",
        "x.conf:7: unknown section [confg b] (did you mean [config b]?)",
        "x.conf:10: 'required' must be yes or no",
        "x.conf:13: 'env': '$PATH'",
        "x.conf:9: configuration 'c' has neither 'build' nor 'test'"};
    assert_int_equal(errors, 8);
    assert_int_equal(e.n, 8);
    for (size_t i = 0; i < e.n && i < 8; i++) {
        assert_int_equal(e.lines[i], lines[i]);
        if (strstr(e.text[i], what[i]) == NULL)
            fail_msg("error %zu: '%s' not in '%s'", i, what[i], e.text[i]);
    }
    /* a command given empty is no command (the fuzzer found it let through once) */
    expect_error("[config a]\ntest =\n", KEEL_E_PARSE, ":1: configuration 'a' has neither", NULL);
    /* run's parser: the first error only */
    expect_error(text, KEEL_E_NOTFOUND, "repo:.keel/gate.conf:2: unknown key 'slot'", NULL);
    /* a good one: no error, the configuration */
    memset(&e, 0, sizeof(e));
    s = gate_config_check(good, strlen(good), "good.conf", keep_error, &e, &errors, &c);
    assert_true(keel_ok(s));
    assert_int_equal(errors, 0);
    assert_int_equal(e.n, 0);
    assert_non_null(c);
    if (c != NULL)
        assert_int_equal(c->nconfigs, 2);
    gate_config_free(c);
    /* a UTF-8 byte order mark first: skipped (it read as a line "\ufeff[gate]", not a section) */
    static const char bom[] = "\xef\xbb\xbf[gate]\nslots = 2\n[config a]\ntest = true\n";
    s = gate_config_check(bom, sizeof(bom) - 1, "b.conf", keep_error, &e, &errors, &c);
    assert_true(keel_ok(s));
    assert_int_equal(errors, 0);
    assert_non_null(c);
    if (c != NULL)
        assert_int_equal(c->slots, 2);
    gate_config_free(c);
    /* a NUL byte: its line, and nothing after it is read */
    static const char nul[] = "[gate]\nslot = 1\n\0[config a]\n";
    s = gate_config_check(nul, sizeof(nul) - 1, "n.conf", keep_error, &e, &errors, &c);
    assert_true(keel_ok(s));
    assert_int_equal(errors, 1);
    assert_string_equal(e.text[0], "n.conf:3: contains a NUL byte");
    assert_null(c);
}

/*
 * A key given twice in a section (the first was lost without a word), a key
 * of another section (it was "unknown"), and more configurations than the
 * gate takes: each named with its line, the key or section, and why.
 */
static void test_keys_twice_misplaced_too_many(void **state)
{
    (void)state;
    expect_error("[gate]\nslots = 2\nslots = 3\n[config a]\ntest = true\n", KEEL_E_EXISTS,
                 "repo:.keel/gate.conf:3: 'slots' is given twice in [gate] (first at line 2)",
                 NULL);
    expect_error("[config a]\ntest = true\nrequired = yes\ntest = false\n", KEEL_E_EXISTS,
                 ":4: 'test' is given twice in [config a] (first at line 2)", NULL);
    expect_error("[config a]\ntest = true\n[flow a -> main]\nremind = 1d\nremind = 2d\n",
                 KEEL_E_EXISTS, ":5: 'remind' is given twice in [flow a -> main] (first at line 4)",
                 NULL);
    expect_error("[config a]\ntest = true\nslots = 3\n", KEEL_E_NOTFOUND,
                 ":3: key 'slots' belongs in [gate], not in [config a]", NULL);
    expect_error("[gate]\ntimeout = 30\n[config a]\ntest = true\n", KEEL_E_NOTFOUND,
                 ":2: key 'timeout' belongs in [config NAME], not in [gate]", NULL);
    expect_error("[config a]\ntest = true\ntrigger = push\n", KEEL_E_NOTFOUND,
                 ":3: key 'trigger' belongs in [flow A -> B], not in [config a]", NULL);
    /* the same key in two sections is two keys; a section's keys start afresh */
    static const char two[] = "[gate]\nmemory = 1G\n[config a]\ntest = true\nmemory = 2G\n"
                              "[config b]\ntest = true\nmemory = 3G\n";
    gate_config *c = NULL;
    keel_status s = gate_config_parse(two, strlen(two), "two.conf", &c);
    keel_test_ok(s);
    assert_int_equal(c->nconfigs, 2);
    gate_config_free(c);
    /* every one of them at once, and configurations past the 64 named, never a crash */
    static char text[16384];
    size_t n = (size_t)snprintf(text, sizeof(text), "[gate]\nslots = 2\nslots = 3\n");
    for (int i = 1; i <= 66; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "[config c%d]\ntest = true\n", i);
    assert_true(n < sizeof(text));
    seen_errors e;
    memset(&e, 0, sizeof(e));
    size_t errors = 0;
    s = gate_config_check(text, n, "x.conf", keep_error, &e, &errors, &c);
    assert_true(keel_ok(s));
    assert_null(c);
    assert_int_equal(errors, 3);
    assert_string_equal(e.text[0], "x.conf:3: 'slots' is given twice in [gate] (first at line 2)");
    assert_string_equal(e.text[1], "x.conf:132: configuration 'c65' is one more than the 64 a "
                                   "gate.conf may have (its keys are not read)");
    assert_int_equal(e.lines[2], 134);
    assert_non_null(strstr(e.text[2], "configuration 'c66' is one more than the 64"));
}

/* A branch name refused with git check-ref-format's rule that refuses it, in every key. */
static void test_branch_name_reasons(void **state)
{
    (void)state;
    static const struct {
        const char *name, *why;
    } bad[] = {{"x..y", "it has '..' (git's notation for a range of commits)"},
               {"a.lock", "a component ends with '.lock'"},
               {"a/b.lock/c", "a component ends with '.lock'"},
               {"a/.b", "a component starts with '.'"},
               {".a", "a component starts with '.'"},
               {"a.", "it ends with '.'"},
               {"a//b", "it has '//' (an empty component)"},
               {"/a", "it starts with '/'"},
               {"a/", "it ends with '/'"},
               {"-x", "it starts with '-'"},
               {"HEAD", "'HEAD' is git's name for the commit checked out"},
               {"refs/heads/x", "it starts with 'refs/'"},
               {"a@{1}", "character '@' is not allowed"},
               {"a~1", "character '~' is not allowed"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256], want[256], why[160];
        assert_true(gate_branch_why(bad[i].name, why, sizeof(why)));
        if (strstr(why, bad[i].why) == NULL)
            fail_msg("'%s': '%s', not '%s'", bad[i].name, why, bad[i].why);
        (void)snprintf(text, sizeof(text), "[gate]\ntarget = %s\n[config a]\ntest = x\n",
                       bad[i].name);
        (void)snprintf(want, sizeof(want), ":2: 'target' must be one branch name, not '%s': %s",
                       bad[i].name, bad[i].why);
        expect_error(text, KEEL_E_PARSE, want, NULL);
        (void)snprintf(text, sizeof(text), "[gate]\ntargets = main %s\n[config a]\ntest = x\n",
                       bad[i].name);
        (void)snprintf(want, sizeof(want), "'targets': '%s' is not a branch name git accepts: %s",
                       bad[i].name, bad[i].why);
        expect_error(text, KEEL_E_PARSE, want, NULL);
        (void)snprintf(text, sizeof(text), "[config a]\ntest = x\n[flow %s -> main]\n",
                       bad[i].name);
        (void)snprintf(want, sizeof(want), "'%s' is not a branch name: %s", bad[i].name,
                       bad[i].why);
        expect_error(text, KEEL_E_PARSE, want, NULL);
    }
    static const char *const good_names[] = {"main", "feature/x-1", "rel/2.1", "a+b", "x.y/z_w"};
    for (size_t i = 0; i < sizeof(good_names) / sizeof(good_names[0]); i++) {
        char why[160];
        assert_false(gate_branch_why(good_names[i], why, sizeof(why)));
        assert_string_equal(why, "");
        keel_test_ok(gate_branch_check(good_names[i]));
    }
}

/*
 * Every ```ini sample of docs/gate.md is a configuration the parser takes (a
 * sample without [gate], a section shown alone, with a required
 * configuration at level gate beside it): a user pastes them.
 */
static void test_docs_samples(void **state)
{
    (void)state;
    static char doc[400000];
    keel_test_read_file(KEEL_SOURCE_DIR "/docs/gate.md", doc, sizeof(doc));
    static const char open[] = "\n```ini\n", beside[] = "[config unit]\ntest = true\n";
    size_t n = 0;
    for (const char *p = strstr(doc, open); p != NULL; p = strstr(p, open)) {
        p += sizeof(open) - 1;
        const char *end = strstr(p, "\n```\n");
        assert_non_null(end);
        static char text[16384];
        size_t len = (size_t)(end - p) + 1;
        assert_true(len + sizeof(beside) < sizeof(text));
        memcpy(text, p, len);
        text[len] = '\0';
        if (strstr(text, "[gate]") == NULL)
            strcat(text, beside);
        gate_config *c = NULL;
        keel_status s = gate_config_parse(text, strlen(text), "docs/gate.md", &c);
        if (!keel_ok(s))
            fail_msg("docs/gate.md's sample %zu is refused: %s\n%s", n + 1, keel_status_message(s),
                     text);
        gate_config_free(c);
        n++;
        p = end;
    }
    assert_true(n >= 3);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_config),
        cmocka_unit_test(test_unknown_key_suggests),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_long_subjects_cut),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_suggest_any_case),
        cmocka_unit_test(test_word_splitting),
        cmocka_unit_test(test_comments_and_escapes),
        cmocka_unit_test(test_writable_paths),
        cmocka_unit_test(test_slurm_request),
        cmocka_unit_test(test_shell_syntax_refused),
        cmocka_unit_test(test_check_every_error),
        cmocka_unit_test(test_levels_and_tiers),
        cmocka_unit_test(test_schedule_and_jitter),
        cmocka_unit_test(test_keys_twice_misplaced_too_many),
        cmocka_unit_test(test_branch_name_reasons),
        cmocka_unit_test(test_docs_samples),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
