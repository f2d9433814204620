/*
 * test_gate_flows.c - branch flows (issue 18): the [flow SRC -> DST]
 * sections of .keel/gate.conf, and a flow's decisions (gate/flows/flow.h) on
 * a test clock: merges, blocking, reminders with back-off, escalation,
 * resolutions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <git2.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "testutil.h"

#include "config.h"
#include "flow.h"
#include "flowmerge.h"
#include "store_flow.h"

#define CONFIGS "[config t]\ntest = true\n"
enum { DAY = 86400, HOUR = 3600 };

static gate_config *parse_ok(const char *text)
{
    gate_config *c = NULL;
    keel_status s = gate_config_parse(text, strlen(text), "repo:.keel/gate.conf", &c);
    if (!keel_ok(s)) {
        char msg[1024];
        (void)keel_status_format(s, msg, sizeof(msg));
        fail_msg("refused: %s", msg);
    }
    assert_non_null(c);
    return c;
}

/* gate_config_check's report: the first error's code and message, and how many came. */
typedef struct first_error {
    size_t n;
    bool code_ok;
    keel_code code;
    char text[1024];
} first_error;

static void keep_first(keel_status err, void *ctx)
{
    first_error *e = (first_error *)ctx;
    if (e->n++ == 0) {
        e->code_ok = KEEL_HAS(err, e->code);
        (void)keel_status_format(err, e->text, sizeof(e->text));
    }
}

/*
 * `text` is refused: by gate_config_check (`keel-gate check`) with exactly
 * one error, of `code`, its message holding `needle1` (and `needle2`), and by
 * gate_config_parse (what run uses) with the same message.
 */
static void expect_refused(const char *text, keel_code code, const char *needle1,
                           const char *needle2)
{
    first_error e;
    memset(&e, 0, sizeof(e));
    e.code = code;
    size_t errors = 0;
    gate_config *c = NULL;
    keel_test_ok(
        gate_config_check(text, strlen(text), "repo:.keel/gate.conf", keep_first, &e, &errors, &c));
    assert_null(c);
    if (errors != 1 || e.n != 1 || !e.code_ok)
        fail_msg("%zu errors (want 1 of code %s), the first: %s", errors,
                 keel_code_name(&keel_codespace_keel, (int)code), e.text);
    if (strstr(e.text, needle1) == NULL || (needle2 != NULL && strstr(e.text, needle2) == NULL))
        fail_msg("'%s' / '%s' not in: %s", needle1, needle2 != NULL ? needle2 : "", e.text);
    keel_status s = gate_config_parse(text, strlen(text), "repo:.keel/gate.conf", &c);
    char msg[1024];
    (void)keel_status_format(s, msg, sizeof(msg));
    assert_false(keel_ok(s));
    assert_null(c);
    assert_string_equal(msg, e.text);
    keel_status_free(s);
}

/* ---- configuration ---------------------------------------------------------------- */

static void test_config_flows(void **state)
{
    (void)state;
    gate_config *c = parse_ok(CONFIGS "[flow comp/net -> main]\n"
                                      "owner = Ann Lee <ann@example.org>\n"
                                      "remind = 2h 1d\n"
                                      "escalate-after = 2\n"
                                      "remind-max = 3\n"
                                      "back-merge = yes\n"
                                      "\n"
                                      "[flow main -> release/2.1]\n"
                                      "trigger = every 6h\n"
                                      "levels = gate post\n");
    assert_int_equal(c->nflows, 3);
    const gate_flow_config *a = &c->flows[0], *p = &c->flows[1], *back = &c->flows[2];
    assert_string_equal(a->from, "comp/net");
    assert_string_equal(a->to, "main");
    assert_int_equal(a->trigger, GATE_FLOW_ON_COMMIT);
    assert_string_equal(a->owner, "Ann Lee <ann@example.org>");
    assert_int_equal(a->nremind, 2);
    assert_int_equal(a->remind_s[0], 2 * HOUR);
    assert_int_equal(a->remind_s[1], DAY);
    assert_int_equal(a->escalate_after, 2);
    assert_int_equal(a->remind_max, 3);
    assert_int_equal(a->levels, GATE_LEVEL_GATE);
    assert_int_equal(a->line, 3);
    /* back-merge = yes: the reverse flow, with the same settings */
    assert_string_equal(back->from, "main");
    assert_string_equal(back->to, "comp/net");
    assert_int_equal(back->remind_max, 3);
    /* the product branch: one way only, defaults */
    assert_string_equal(p->from, "main");
    assert_string_equal(p->to, "release/2.1");
    assert_int_equal(p->trigger, GATE_FLOW_ON_SCHEDULE);
    assert_int_equal(p->interval_s, 6 * HOUR);
    assert_int_equal(p->levels, GATE_LEVEL_GATE | GATE_LEVEL_POST);
    assert_int_equal(p->nremind, 3);
    assert_int_equal(p->remind_s[2], 4 * DAY);
    assert_int_equal(p->escalate_after, GATE_FLOW_ESCALATE_DEFAULT);
    assert_int_equal(p->remind_max, GATE_FLOW_REMIND_MAX_PEOPLE);
    assert_string_equal(p->owner, "");
    assert_false(p->back_merge);
    for (size_t i = 0; i < c->nflows; i++) /* never into main from the product branch */
        assert_false(strcmp(c->flows[i].from, "release/2.1") == 0);
    gate_config_free(c);

    /* the explicit two-way pair, and trigger = schedule with its interval */
    c = parse_ok(CONFIGS "[flow main -> comp/ui]\ntrigger = schedule\ninterval = 30m\n"
                         "[flow comp/ui -> main]\n");
    assert_int_equal(c->nflows, 2);
    assert_int_equal(c->flows[0].interval_s, 30 * 60);
    gate_config_free(c);
}

/*
 * The pre-merge level: a configuration at `pre-merge` is kept for a flow's
 * merge into the target (with the flow's own levels), never for an ordinary
 * change nor a flow into another branch.
 */
static void test_config_pre_merge(void **state)
{
    (void)state;
    gate_config *c = parse_ok("[config unit]\ntest = true\n"
                              "[config pm]\ntest = true\nlevels = pre-merge\n"
                              "[config late]\ntest = true\nlevels = post\n"
                              "[flow comp/net -> main]\nlevels = gate post\n"
                              "[flow main -> release/2.1]\n");
    assert_true(gate_config_at(&c->configs[1], GATE_LEVEL_PRE_MERGE));
    assert_false(gate_config_at(&c->configs[1], GATE_LEVEL_GATE));
    assert_int_equal(gate_flow_levels(c, "main", "topic"), GATE_LEVEL_GATE);
    assert_int_equal(gate_flow_levels(c, "main", "keel-gate/flow/comp+net-to-main"),
                     GATE_LEVEL_GATE | GATE_LEVEL_PRE_MERGE | GATE_LEVEL_POST);
    assert_int_equal(gate_flow_levels(c, "release/2.1", "keel-gate/flow/main-to-release+2.1"),
                     GATE_LEVEL_GATE | GATE_LEVEL_PRE_MERGE);
    /* a flow branch into another target, or of no configured flow: gate only */
    assert_int_equal(gate_flow_levels(c, "main", "keel-gate/flow/main-to-release+2.1"),
                     GATE_LEVEL_GATE);
    assert_int_equal(gate_flow_levels(c, "main", "keel-gate/flow/comp+ui-to-main"),
                     GATE_LEVEL_GATE);
    /* what the queue keeps of each: an ordinary change's gate alone, a flow's pre-merge too */
    gate_config_keep_level(c, (gate_level)gate_flow_levels(c, "main", "topic"));
    assert_int_equal(c->nconfigs, 1);
    assert_string_equal(c->configs[0].name, "unit");
    gate_config_free(c);
    c = parse_ok("[config unit]\ntest = true\n[config pm]\ntest = true\nlevels = pre-merge\n"
                 "[config late]\ntest = true\nlevels = post\n[flow comp/net -> main]\n");
    gate_config_keep_level(
        c, (gate_level)gate_flow_levels(c, "main", "keel-gate/flow/comp+net-to-main"));
    assert_int_equal(c->nconfigs, 2);
    assert_string_equal(c->configs[1].name, "pm");
    gate_config_free(c);
}

/*
 * Every error of a [flow] key's value names its flow first, as the flows' own
 * rules do: the keys read by the parser's shared readers (levels, remind,
 * remind-max, escalate-after, back-merge) as much as trigger or owner; the
 * next section's keys do not.
 */
static void test_config_flow_key_errors_name_the_flow(void **state)
{
    (void)state;
    static const struct {
        const char *keys;
        keel_code code;
        const char *says;
    } bad[] = {
        {"levels = gate bogus\n", KEEL_E_PARSE,
         ":4: [flow a -> b] 'levels': unknown level 'bogus'"},
        {"levels = 'gate\n", KEEL_E_PARSE, ":4: [flow a -> b] bad value for 'levels'"},
        {"remind = '1d\n", KEEL_E_PARSE, ":4: [flow a -> b] bad value for 'remind'"},
        {"remind-max = 0\n", KEEL_E_RANGE, ":4: [flow a -> b] 'remind-max' = 0 is out of range"},
        {"escalate-after = soon\n", KEEL_E_PARSE,
         ":4: [flow a -> b] 'escalate-after' must be a whole number, not 'soon'"},
        {"back-merge = maybe\n", KEEL_E_PARSE,
         ":4: [flow a -> b] 'back-merge' must be yes or no, not 'maybe'"},
        {"trigger = every 6\n", KEEL_E_PARSE, ":4: [flow a -> b] 'trigger': '6' is not a duration"},
        {"owner = ann\n", KEEL_E_PARSE, ":4: [flow a -> b] 'owner' must be one person"},
        {"owner = <ann@example.org>\n", KEEL_E_PARSE,
         ":4: [flow a -> b] 'owner' must be one person as 'Name <address>', not "
         "'<ann@example.org>'"},
        {"levels = gate\n[config u]\ntest = true\ncpus = many\n", KEEL_E_PARSE,
         ":7: 'cpus' must be a whole number, not 'many'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512];
        (void)snprintf(text, sizeof(text), CONFIGS "[flow a -> b]\n%s", bad[i].keys);
        expect_refused(text, bad[i].code, bad[i].says, NULL);
    }
}

static void test_config_flow_errors(void **state)
{
    (void)state;
    expect_refused(CONFIGS "[flow main]\n", KEEL_E_PARSE, ":3: [flow main] must be [flow SOURCE",
                   NULL);
    expect_refused(CONFIGS "[flow main -> main]\n", KEEL_E_INVAL, ":3:", "cannot flow into itself");
    expect_refused(CONFIGS "[flow ma..in -> x]\n", KEEL_E_PARSE, "'ma..in' is not a branch name",
                   NULL);
    expect_refused(CONFIGS "[flow a -> ]\n", KEEL_E_PARSE, "'' is not a branch name", NULL);
    expect_refused(CONFIGS "[flow a -> b]\n[flow a -> b]\n", KEEL_E_EXISTS,
                   ":4:", "flow 'a' -> 'b' is defined twice (line 3)");
    expect_refused(CONFIGS "[flow a -> b]\nback-merge = yes\n[flow b -> a]\n", KEEL_E_EXISTS,
                   ":3:", "'back-merge = yes' but flow 'b' -> 'a' is defined (line 5)");
    expect_refused(CONFIGS "[flow a -> b]\n[flow b -> c]\n[flow c -> a]\n", KEEL_E_INVAL,
                   "a cycle of flows through more than two branches", NULL);
    expect_refused(CONFIGS "[flow a -> b]\nback-merge = yes\n[flow b -> c]\nback-merge = yes\n"
                           "[flow c -> a]\n",
                   KEEL_E_INVAL, "a cycle of flows", NULL);
    expect_refused(CONFIGS "[flow a -> b]\ntrigger = schedule\n", KEEL_E_PARSE,
                   ":3:", "'trigger = schedule' needs an 'interval'");
    expect_refused(CONFIGS "[flow a -> b]\ninterval = 6h\n", KEEL_E_PARSE,
                   ":3:", "'interval' is for 'trigger = schedule' only");
    expect_refused(CONFIGS "[flow a -> b]\ntrigger = often\n", KEEL_E_PARSE,
                   ":4: [flow a -> b] 'trigger' must be commit, schedule", NULL);
    expect_refused(CONFIGS "[flow a -> b]\ntrigger = every 6\n", KEEL_E_PARSE,
                   "'trigger': '6' is not a duration", NULL);
    expect_refused(CONFIGS "[flow a -> b]\nremind = 1d 0s\n", KEEL_E_PARSE,
                   "'remind': '0s' is not a duration above 0", NULL);
    expect_refused(CONFIGS "[flow a -> b]\nremind = 1d 1d 1d 1d 1d 1d 1d 1d 1d\n", KEEL_E_RANGE,
                   "'remind' needs 1 to 8 durations", NULL);
    expect_refused(CONFIGS "[flow a -> b]\nowner = ann@example.org\n", KEEL_E_PARSE,
                   "'owner' must be one person as 'Name <address>'", NULL);
    expect_refused(CONFIGS "[flow a -> b]\nremind-max = 0\n", KEEL_E_RANGE, "'remind-max'", NULL);
    expect_refused(CONFIGS "[flow a -> b]\nremnd = 1d\n", KEEL_E_NOTFOUND,
                   "unknown key 'remnd' in [flow]", "did you mean 'remind'?");
    expect_refused(CONFIGS "[flwo a -> b]\n", KEEL_E_NOTFOUND, "did you mean [flow a -> b]", NULL);
    expect_refused(CONFIGS "[flow a-to-b -> c]\n[flow a -> b-to-c]\n", KEEL_E_EXISTS,
                   "would share the flow branch 'keel-gate/flow/a-to-b-to-c'", NULL);
}

static void test_duration_and_branch_names(void **state)
{
    (void)state;
    unsigned long long v = 1;
    keel_test_ok(gate_duration_parse("0", &v));
    assert_int_equal(v, 0);
    keel_test_ok(gate_duration_parse("90s", &v));
    assert_int_equal(v, 90);
    keel_test_ok(gate_duration_parse("2w", &v));
    assert_int_equal(v, 14 * DAY);
    const char *bad[] = {"", "6", "h", "-1h", "1.5h", "1hh", "1H", "99999999999999999999d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        keel_status s = gate_duration_parse(bad[i], &v);
        if (keel_ok(s))
            fail_msg("'%s' accepted", bad[i]);
        keel_status_free(s);
    }
    char b[64];
    keel_test_ok(gate_flow_branch("comp/net", "main", b, sizeof(b)));
    assert_string_equal(b, "keel-gate/flow/comp+net-to-main");
    keel_test_ok(gate_flow_branch("main", "release/2.1", b, sizeof(b)));
    assert_string_equal(b, "keel-gate/flow/main-to-release+2.1");
    keel_status s = gate_flow_branch("a-very-long-branch-name", "another-long-one", b, 32);
    assert_true(KEEL_IS(s, KEEL_E_RANGE));
    keel_status_free(s);
}

/* ---- decisions on a test clock ---------------------------------------------------- */

typedef struct clock_flow {
    gate_flow_config cfg;
    gate_flow f;
    gate_flow_decision d;
} clock_flow;

static void flow_setup(clock_flow *t, gate_flow_trigger trigger)
{
    memset(t, 0, sizeof(*t));
    (void)snprintf(t->cfg.from, sizeof(t->cfg.from), "comp/net");
    (void)snprintf(t->cfg.to, sizeof(t->cfg.to), "main");
    (void)snprintf(t->cfg.owner, sizeof(t->cfg.owner), "Olga Owner <olga@example.org>");
    t->cfg.trigger = trigger;
    t->cfg.interval_s = 6ULL * HOUR;
    t->cfg.levels = GATE_LEVEL_GATE;
    t->cfg.remind_s[0] = DAY;
    t->cfg.remind_s[1] = 2ULL * DAY;
    t->cfg.remind_s[2] = 4ULL * DAY;
    t->cfg.nremind = 3;
    t->cfg.escalate_after = 3;
    t->cfg.remind_max = 2;
    gate_flow_init(&t->f, &t->cfg);
}

static gate_flow_action feed(clock_flow *t, gate_flow_event_kind kind, long long now,
                             const char *sha)
{
    gate_flow_event ev = {kind, now, sha, NULL, NULL, 0, NULL};
    gate_flow_feed(&t->f, &ev, &t->d);
    assert_true(t->d.reason[0] != '\0'); /* every decision says why */
    return t->d.action;
}

static const gate_flow_person authors[] = {
    {"Ann <ann@example.org>"}, {"Bob <bob@example.org>"}, {"Cid <cid@example.org>"}};

static gate_flow_action failure(clock_flow *t, gate_flow_event_kind kind, long long now,
                                const char *sha, const char *why)
{
    gate_flow_event ev = {kind, now, sha, why, authors, 3, NULL};
    gate_flow_feed(&t->f, &ev, &t->d);
    return t->d.action;
}

static void test_flow_sync_once(void **state)
{
    (void)state;
    clock_flow t;
    flow_setup(&t, GATE_FLOW_ON_COMMIT);
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, 10, NULL), GATE_FLOW_DO_NOTHING);
    assert_int_equal(feed(&t, GATE_FLOW_EV_SOURCE_MOVED, 20, "s1"), GATE_FLOW_DO_MERGE);
    assert_string_equal(t.d.sha, "s1");
    assert_int_equal(t.f.state, GATE_FLOW_MERGING);
    /* the source moves on while merging: no second merge at once */
    assert_int_equal(feed(&t, GATE_FLOW_EV_SOURCE_MOVED, 25, "s2"), GATE_FLOW_DO_NOTHING);
    assert_int_equal(feed(&t, GATE_FLOW_EV_MERGE_MADE, 30, "m1"), GATE_FLOW_DO_QUEUE);
    assert_string_equal(t.d.sha, "m1");
    assert_int_equal(t.f.state, GATE_FLOW_QUEUED);
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, 40, NULL), GATE_FLOW_DO_NOTHING);
    /* a verdict of another change is not ours */
    assert_int_equal(feed(&t, GATE_FLOW_EV_LANDED, 45, "other"), GATE_FLOW_DO_NOTHING);
    assert_int_equal(t.f.state, GATE_FLOW_QUEUED);
    assert_int_equal(feed(&t, GATE_FLOW_EV_LANDED, 50, "m1"), GATE_FLOW_DO_NOTHING);
    assert_int_equal(t.f.state, GATE_FLOW_IDLE);
    assert_string_equal(t.f.synced, "s1");
    /* the same landing again (a replayed event): nothing */
    assert_int_equal(feed(&t, GATE_FLOW_EV_LANDED, 51, "m1"), GATE_FLOW_DO_NOTHING);
    /* s2 is still new: the next turn merges it */
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, 60, NULL), GATE_FLOW_DO_MERGE);
    assert_string_equal(t.d.sha, "s2");
    assert_int_equal(feed(&t, GATE_FLOW_EV_NOTHING_NEW, 70, NULL), GATE_FLOW_DO_NOTHING);
    assert_int_equal(t.f.state, GATE_FLOW_IDLE);
    assert_int_equal(t.f.last_sync, 70);
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, 80, NULL), GATE_FLOW_DO_NOTHING);
    assert_int_equal(gate_flow_due(&t.f), 0);
}

static void test_flow_schedule(void **state)
{
    (void)state;
    clock_flow t;
    flow_setup(&t, GATE_FLOW_ON_SCHEDULE);
    assert_int_equal(feed(&t, GATE_FLOW_EV_SOURCE_MOVED, 100, "s1"), GATE_FLOW_DO_MERGE);
    assert_int_equal(feed(&t, GATE_FLOW_EV_MERGE_MADE, 110, "m1"), GATE_FLOW_DO_QUEUE);
    assert_int_equal(feed(&t, GATE_FLOW_EV_LANDED, 200, "m1"), GATE_FLOW_DO_NOTHING);
    assert_int_equal(feed(&t, GATE_FLOW_EV_SOURCE_MOVED, 300, "s2"), GATE_FLOW_DO_NOTHING);
    assert_int_equal(gate_flow_due(&t.f), 200 + 6 * HOUR);
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, 200 + 6 * HOUR - 1, NULL), GATE_FLOW_DO_NOTHING);
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, 200 + 6 * HOUR, NULL), GATE_FLOW_DO_MERGE);
    assert_string_equal(t.d.sha, "s2");
}

/* A conflict: the people told at once, reminders after 1, 2, 4, 4 days, the owner after 3. */
static void test_flow_conflict_reminders(void **state)
{
    (void)state;
    clock_flow t;
    flow_setup(&t, GATE_FLOW_ON_COMMIT);
    long long t0 = 1000;
    assert_int_equal(feed(&t, GATE_FLOW_EV_SOURCE_MOVED, t0 - 10, "s1"), GATE_FLOW_DO_MERGE);
    assert_int_equal(failure(&t, GATE_FLOW_EV_CONFLICT, t0, NULL, "net/sock.c"),
                     GATE_FLOW_DO_BLOCK);
    assert_int_equal(t.f.state, GATE_FLOW_BLOCKED);
    assert_int_equal(t.d.npeople, 2); /* remind-max = 2 of the 3 */
    assert_string_equal(t.d.people[0].who, "Ann <ann@example.org>");
    assert_string_equal(t.d.people[1].who, "Bob <bob@example.org>");
    assert_non_null(strstr(t.d.reason, "merge conflict: net/sock.c"));
    assert_int_equal(t.f.blocked_since, t0);

    /* reminder k comes remind[k-1] after the one before; the last interval repeats */
    long long at = t0;
    const long long gaps[] = {DAY, 2LL * DAY, 4LL * DAY};
    for (unsigned k = 1; k <= 3; k++) {
        at += gaps[k - 1];
        assert_int_equal(gate_flow_due(&t.f), at);
        assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, at - 1, NULL), GATE_FLOW_DO_NOTHING);
        assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, at, NULL), GATE_FLOW_DO_REMIND);
        assert_int_equal(t.d.reminder, k);
        assert_int_equal(t.d.npeople, 2);
        /* the same tick again (a replayed turn): no second reminder */
        assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, at, NULL), GATE_FLOW_DO_NOTHING);
    }
    at += 4LL * DAY;
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, at, NULL), GATE_FLOW_DO_ESCALATE);
    assert_string_equal(t.d.owner, "Olga Owner <olga@example.org>");
    assert_int_equal(t.d.npeople, 2);
    at += 4LL * DAY;
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, at, NULL), GATE_FLOW_DO_REMIND); /* once */
    assert_int_equal(t.d.reminder, 5);
    assert_int_equal(t.f.blocked_since, t0);

    /* no merge while blocked: a landing or a tick never merges */
    assert_int_equal(feed(&t, GATE_FLOW_EV_LANDED, at + 1, "m?"), GATE_FLOW_DO_NOTHING);
    assert_int_equal(t.f.state, GATE_FLOW_BLOCKED);
}

static void test_flow_never_escalates(void **state)
{
    (void)state;
    clock_flow t;
    flow_setup(&t, GATE_FLOW_ON_COMMIT);
    t.cfg.escalate_after = 0;
    (void)feed(&t, GATE_FLOW_EV_SOURCE_MOVED, 1, "s1");
    assert_int_equal(failure(&t, GATE_FLOW_EV_CONFLICT, 2, NULL, "a.c"), GATE_FLOW_DO_BLOCK);
    for (long long at = 2 + 40 * DAY; at < 2 + 100 * DAY; at += 4LL * DAY)
        assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, at, NULL), GATE_FLOW_DO_REMIND);
}

/* A developer's resolution pushed to the flow branch: queued, no reminder meanwhile, lands. */
static void test_flow_resolution(void **state)
{
    (void)state;
    clock_flow t;
    flow_setup(&t, GATE_FLOW_ON_COMMIT);
    (void)feed(&t, GATE_FLOW_EV_SOURCE_MOVED, 1, "s1");
    assert_int_equal(failure(&t, GATE_FLOW_EV_CONFLICT, 2, NULL, "a.c"), GATE_FLOW_DO_BLOCK);
    assert_int_equal(feed(&t, GATE_FLOW_EV_PUSHED, 3, "fix1"), GATE_FLOW_DO_QUEUE);
    assert_string_equal(t.d.sha, "fix1");
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, 2 + 10 * DAY, NULL), GATE_FLOW_DO_NOTHING);
    assert_non_null(strstr(t.d.reason, "under test"));
    /* the fix fails: a new failure, said at once, its reminders counted anew */
    assert_int_equal(failure(&t, GATE_FLOW_EV_REJECTED, 20LL * DAY, "fix1", "test t failed"),
                     GATE_FLOW_DO_BLOCK);
    assert_non_null(strstr(t.d.reason, "the resolution was rejected: test t failed"));
    assert_int_equal(t.f.blocked_since, 2);
    assert_int_equal(gate_flow_due(&t.f), 21 * DAY);
    assert_int_equal(feed(&t, GATE_FLOW_EV_PUSHED, 21 * DAY - 5, "fix2"), GATE_FLOW_DO_QUEUE);
    assert_int_equal(feed(&t, GATE_FLOW_EV_LANDED, 21LL * DAY, "fix2"), GATE_FLOW_DO_UNBLOCK);
    assert_int_equal(t.f.state, GATE_FLOW_IDLE);
    assert_int_equal(t.f.blocked_since, 0);
    assert_string_equal(t.f.synced, "s1");
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, 30LL * DAY, NULL), GATE_FLOW_DO_NOTHING);
    /* the flow resumes */
    assert_int_equal(feed(&t, GATE_FLOW_EV_SOURCE_MOVED, 31LL * DAY, "s2"), GATE_FLOW_DO_MERGE);
}

/* A merge that fails the destination's tests blocks the flow; a retry after a move unblocks it. */
static void test_flow_rejected_then_retry(void **state)
{
    (void)state;
    clock_flow t;
    flow_setup(&t, GATE_FLOW_ON_COMMIT);
    (void)feed(&t, GATE_FLOW_EV_SOURCE_MOVED, 1, "s1");
    assert_int_equal(feed(&t, GATE_FLOW_EV_MERGE_MADE, 2, "m1"), GATE_FLOW_DO_QUEUE);
    assert_int_equal(failure(&t, GATE_FLOW_EV_REJECTED, 3, "m1", "gcc: test failed"),
                     GATE_FLOW_DO_BLOCK);
    assert_non_null(strstr(t.d.reason, "merge rejected: gcc: test failed"));
    assert_int_equal(t.f.state, GATE_FLOW_BLOCKED);
    /* a fix reaches the source: the merge is tried again */
    assert_int_equal(feed(&t, GATE_FLOW_EV_SOURCE_MOVED, 4, "s2"), GATE_FLOW_DO_MERGE);
    assert_string_equal(t.d.sha, "s2");
    assert_int_equal(failure(&t, GATE_FLOW_EV_CONFLICT, 5, NULL, "x.c"), GATE_FLOW_DO_NOTHING);
    assert_int_equal(t.f.failed_at, 3); /* the same failure goes on */
    assert_int_equal(feed(&t, GATE_FLOW_EV_DEST_MOVED, 6, "d2"), GATE_FLOW_DO_MERGE);
    assert_int_equal(feed(&t, GATE_FLOW_EV_MERGE_MADE, 7, "m2"), GATE_FLOW_DO_QUEUE);
    assert_int_equal(feed(&t, GATE_FLOW_EV_LANDED, 8, "m2"), GATE_FLOW_DO_UNBLOCK);
    assert_string_equal(t.f.synced, "s2");
}

/*
 * A rejection whose people are the culprit search's says so in f->why, and
 * the events read it back (why, people_from); a conflict's and a plain
 * rejection's likewise; an idle flow says nothing.
 */
static void test_flow_told_why(void **state)
{
    (void)state;
    clock_flow t;
    flow_setup(&t, GATE_FLOW_ON_COMMIT);
    const char *why = "x", *from = "x";
    gate_flow_told_why(&t.f, &why, &from);
    assert_null(why);
    assert_null(from);
    (void)feed(&t, GATE_FLOW_EV_SOURCE_MOVED, 1, "s1");
    assert_int_equal(failure(&t, GATE_FLOW_EV_CONFLICT, 2, NULL, "a.c"), GATE_FLOW_DO_BLOCK);
    gate_flow_told_why(&t.f, &why, &from);
    assert_string_equal(why, "conflict");
    assert_string_equal(from, GATE_FLOW_FROM_CONFLICT);
    /* a developer's resolution, rejected: its people from the culprit search */
    assert_int_equal(feed(&t, GATE_FLOW_EV_PUSHED, 3, "r1"), GATE_FLOW_DO_QUEUE);
    gate_flow_event ev = {GATE_FLOW_EV_REJECTED, 4, "r1", "unit: test failed: x, y", authors + 2, 1,
                          GATE_FLOW_FROM_SEARCH};
    gate_flow_feed(&t.f, &ev, &t.d);
    assert_int_equal(t.d.action, GATE_FLOW_DO_BLOCK);
    assert_int_equal(t.d.npeople, 1);
    assert_string_equal(t.d.people[0].who, "Cid <cid@example.org>");
    gate_flow_told_why(&t.f, &why, &from);
    assert_string_equal(why, "test-failure");
    assert_string_equal(from, GATE_FLOW_FROM_SEARCH);
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, 4 + DAY, NULL), GATE_FLOW_DO_REMIND);
    assert_string_equal(t.d.people[0].who, "Cid <cid@example.org>"); /* reminded the same */
    /* no search: the merge's authors; a reason naming the search is not taken for it */
    clock_flow u;
    flow_setup(&u, GATE_FLOW_ON_COMMIT);
    (void)feed(&u, GATE_FLOW_EV_SOURCE_MOVED, 1, "s1");
    (void)feed(&u, GATE_FLOW_EV_MERGE_MADE, 2, "m1");
    assert_int_equal(
        failure(&u, GATE_FLOW_EV_REJECTED, 3, "m1", "x, suspects from the culprit search: y"),
        GATE_FLOW_DO_BLOCK);
    gate_flow_told_why(&u.f, &why, &from);
    assert_string_equal(why, "test-failure");
    assert_string_equal(from, GATE_FLOW_FROM_MERGE);
}

/*
 * A culprit verified after a rejection told to the merge's authors: a
 * reminder to the culprit's author at once (counted), the failure's people
 * from the search from then on; once only; never for a conflict, a fix under
 * test or a flow that is not blocked.
 */
static void test_flow_culprit_found(void **state)
{
    (void)state;
    clock_flow t;
    flow_setup(&t, GATE_FLOW_ON_COMMIT);
    const gate_flow_person carol[] = {{"Carol <carol@example.org>"}};
    gate_flow_event found = {GATE_FLOW_EV_CULPRIT, 5, "m1", NULL, carol, 1, NULL};
    gate_flow_feed(&t.f, &found, &t.d); /* idle: nothing to tell */
    assert_int_equal(t.d.action, GATE_FLOW_DO_NOTHING);
    (void)feed(&t, GATE_FLOW_EV_SOURCE_MOVED, 1, "s1");
    (void)feed(&t, GATE_FLOW_EV_MERGE_MADE, 2, "m1");
    assert_int_equal(failure(&t, GATE_FLOW_EV_REJECTED, 3, "m1", "change 1 rejected: unit"),
                     GATE_FLOW_DO_BLOCK);
    assert_int_equal(t.d.npeople, 2); /* remind-max of the merge's three authors */
    gate_flow_feed(&t.f, &found, &t.d);
    assert_int_equal(t.d.action, GATE_FLOW_DO_REMIND);
    assert_int_equal(t.d.reminder, 1);
    assert_int_equal(t.d.npeople, 1);
    assert_string_equal(t.d.people[0].who, "Carol <carol@example.org>");
    assert_string_equal(
        t.f.why, "merge rejected, suspects from the culprit search: change 1 rejected: unit");
    const char *why = NULL, *from = NULL;
    gate_flow_told_why(&t.f, &why, &from);
    assert_string_equal(why, "test-failure");
    assert_string_equal(from, GATE_FLOW_FROM_SEARCH);
    assert_int_equal(t.f.last_told, 5);
    found.now = 6;
    gate_flow_feed(&t.f, &found, &t.d); /* told already */
    assert_int_equal(t.d.action, GATE_FLOW_DO_NOTHING);
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, 5 + DAY - 1, NULL), GATE_FLOW_DO_NOTHING);
    assert_int_equal(feed(&t, GATE_FLOW_EV_TICK, 5 + 3 * DAY, NULL), GATE_FLOW_DO_REMIND);
    assert_int_equal(t.d.reminder, 2); /* the back-off goes on from it: remind[1] = 2 days */
    assert_string_equal(t.d.people[0].who, "Carol <carol@example.org>");
    /* a conflict's people are the authors who touched the paths: no search changes them */
    clock_flow u;
    flow_setup(&u, GATE_FLOW_ON_COMMIT);
    (void)feed(&u, GATE_FLOW_EV_SOURCE_MOVED, 1, "s1");
    assert_int_equal(failure(&u, GATE_FLOW_EV_CONFLICT, 2, NULL, "a.c"), GATE_FLOW_DO_BLOCK);
    gate_flow_feed(&u.f, &found, &u.d);
    assert_int_equal(u.d.action, GATE_FLOW_DO_NOTHING);
    /* a fix under test: its verdict decides, nobody is told meanwhile */
    clock_flow v;
    flow_setup(&v, GATE_FLOW_ON_COMMIT);
    (void)feed(&v, GATE_FLOW_EV_SOURCE_MOVED, 1, "s1");
    (void)feed(&v, GATE_FLOW_EV_MERGE_MADE, 2, "m1");
    (void)failure(&v, GATE_FLOW_EV_REJECTED, 3, "m1", "unit");
    assert_int_equal(feed(&v, GATE_FLOW_EV_PUSHED, 4, "r1"), GATE_FLOW_DO_QUEUE);
    gate_flow_feed(&v.f, &found, &v.d);
    assert_int_equal(v.d.action, GATE_FLOW_DO_NOTHING);
}

/*
 * The people of a rejected merge from the culprit searches: a suspected or
 * verified culprit the merge brings, of a configuration it failed, each
 * author once, newest search first, at most `max`; none: 0 (the caller
 * falls back to the merge's authors).
 */
static void test_flow_suspects(void **state)
{
    (void)state;
    const gate_flow_search s[] = {
        {"searching", "unit", true, "Ann <ann@example.org>"},  /* no verdict yet */
        {"verified", "unit", false, "Bob <bob@example.org>"},  /* not in the merge */
        {"verified", "lint", true, "Eve <eve@example.org>"},   /* not a failed configuration */
        {"no-culprit", "unit", true, "Dan <dan@example.org>"}, /* found none */
        {"suspected", "unit", true, "Cid <cid@example.org>"},  /* yes */
        {"verified", "asan", true, "Cid <cid@example.org>"},   /* the same person: once */
        {"verified", "asan", true, "Fay <fay@example.org>"},   /* yes */
        {"gave-up", "unit", true, "Gus <gus@example.org>"},    /* found none */
    };
    const char *const failed[] = {"unit", "asan"};
    gate_flow_person out[4];
    size_t n = gate_flow_suspects(s, 8, failed, 2, out, 4);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].who, "Cid <cid@example.org>");
    assert_string_equal(out[1].who, "Fay <fay@example.org>");
    assert_int_equal(gate_flow_suspects(s, 8, failed, 2, out, 1), 1); /* at most max */
    assert_int_equal(gate_flow_suspects(s, 8, NULL, 0, out, 4), 3);   /* any configuration */
    assert_string_equal(out[0].who, "Eve <eve@example.org>");
    assert_int_equal(gate_flow_suspects(s, 4, failed, 2, out, 4), 0); /* none: fall back */
}

/* ---- the merge, on a real repository ---------------------------------------------- */

static char repo_dir[64];
static git_repository *repo;

static int repo_setup(void **state)
{
    (void)state;
    git_libgit2_init();
    (void)snprintf(repo_dir, sizeof(repo_dir), "/tmp/keel-flows-XXXXXX");
    assert_non_null(mkdtemp(repo_dir));
    assert_int_equal(git_repository_init(&repo, repo_dir, 1), 0);
    return 0;
}

static int repo_teardown(void **state)
{
    (void)state;
    git_repository_free(repo);
    repo = NULL;
    char cmd[128];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", repo_dir); /* our own mkdtemp dir */
    assert_int_equal(system(cmd), 0);
    git_libgit2_shutdown();
    return 0;
}

/*
 * A commit by `author` ("Name", address name@example.org) setting `path` to
 * `content` on top of parents[0..np) (the tree of the first), `branch` moved to it.
 */
static git_oid commit_by(const char *author, const git_oid *parents, size_t np, const char *path,
                         const char *content, const char *branch)
{
    git_commit *pc[2] = {NULL, NULL};
    git_tree *base = NULL;
    git_treebuilder *tb = NULL;
    git_oid blob, tree_id, id;
    for (size_t i = 0; i < np; i++)
        assert_int_equal(git_commit_lookup(&pc[i], repo, &parents[i]), 0);
    if (np > 0)
        assert_int_equal(git_commit_tree(&base, pc[0]), 0);
    assert_int_equal(git_blob_create_from_buffer(&blob, repo, content, strlen(content)), 0);
    assert_int_equal(git_treebuilder_new(&tb, repo, base), 0);
    assert_int_equal(git_treebuilder_insert(NULL, tb, path, &blob, GIT_FILEMODE_BLOB), 0);
    assert_int_equal(git_treebuilder_write(&tree_id, tb), 0);
    git_tree *tree = NULL;
    assert_int_equal(git_tree_lookup(&tree, repo, &tree_id), 0);
    char email[64];
    (void)snprintf(email, sizeof(email), "%s@example.org", author);
    git_signature *sig = NULL;
    assert_int_equal(git_signature_new(&sig, author, email, 1700000000, 0), 0);
    const git_commit *ps[2] = {pc[0], pc[1]};
    assert_int_equal(git_commit_create(&id, repo, NULL, sig, sig, NULL, path, tree, np, ps), 0);
    char ref[160];
    (void)snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    git_reference *r = NULL;
    assert_int_equal(git_reference_create(&r, repo, ref, &id, 1, "test"), 0);
    git_reference_free(r);
    git_signature_free(sig);
    git_tree_free(tree);
    git_treebuilder_free(tb);
    git_tree_free(base);
    git_commit_free(pc[0]);
    git_commit_free(pc[1]);
    return id;
}

static gate_repo *open_repo(void)
{
    gate_repo *r = NULL;
    keel_test_ok(gate_repo_open(repo_dir, &r));
    return r;
}

/*
 * comp/net and main both change a.c since they parted: the flow conflicts,
 * and names Ann (main), Bob and Cid (comp/net), who touched a.c, not Dan nor Eve,
 * who touched other files on each side, nor the gate's own sync merge.
 */
static void test_merge_conflict_people(void **state)
{
    (void)state;
    git_oid base = commit_by("Root", NULL, 0, "a.c", "base\n", "main");
    (void)commit_by("Root", &base, 1, "comp.c", "comp\n", "comp/net");
    git_oid m1 = commit_by("Ann", &base, 1, "a.c", "main's\n", "main");
    (void)commit_by("Dan", &m1, 1, "d.c", "dan\n", "main");
    git_oid c0 = commit_by("Root", &base, 1, "comp.c", "comp 2\n", "comp/net");
    git_oid c1 = commit_by("Bob", &c0, 1, "a.c", "comp's\n", "comp/net");
    git_oid c2 = commit_by("Eve", &c1, 1, "e.c", "eve\n", "comp/net");
    git_oid c3 = commit_by("Bob", &c2, 1, "a.c", "comp's again\n", "comp/net");
    git_oid c4 = commit_by("Cid", &c3, 1, "a.c", "cid's\n", "comp/net");
    (void)commit_by("Cid", &c4, 1, "a.c", "cid's again\n", "comp/net");
    gate_repo *r = open_repo();
    gate_flowmerge m;
    keel_test_ok(
        gate_flow_merge(r, "comp/net", "main", "keel-gate/flow/comp+net-to-main", 1000, NULL, &m));
    assert_int_equal(m.result, GATE_FLOWMERGE_CONFLICT);
    assert_int_equal(m.npaths, 1);
    assert_string_equal(m.paths[0], "a.c");
    /* the sides in turn: Ann, main's only one, before Cid though Cid made more commits */
    assert_int_equal(m.npeople, 3);
    assert_string_equal(m.people[0].who, "Bob <Bob@example.org>");
    assert_int_equal(m.people[0].commits, 2);
    assert_int_equal(m.people[0].sides, GATE_FLOWMERGE_SOURCE);
    assert_string_equal(m.people[1].who, "Ann <Ann@example.org>");
    assert_int_equal(m.people[1].sides, GATE_FLOWMERGE_DEST);
    assert_string_equal(m.people[2].who, "Cid <Cid@example.org>");
    assert_int_equal(m.people[2].commits, 2);
    assert_string_equal(m.merge, "");
    char hex[GATE_HEX];
    keel_status s = gate_branch_head(r, "keel-gate/flow/comp+net-to-main", hex);
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND)); /* the flow branch is left alone */
    keel_status_free(s);

    /* a developer resolves: a merge of both tips pushed to the flow branch */
    git_oid tips[2];
    assert_int_equal(git_oid_fromstr(&tips[0], m.dest), 0);
    assert_int_equal(git_oid_fromstr(&tips[1], m.source), 0);
    bool yes = true;
    char fix[GATE_HEX];
    keel_test_ok(gate_flow_resolved(r, "keel-gate/flow/comp+net-to-main", m.source, m.dest, NULL,
                                    &yes, fix));
    assert_false(yes);
    (void)commit_by("Bob", tips, 1, "a.c", "half done\n", "keel-gate/flow/comp+net-to-main");
    keel_test_ok(gate_flow_resolved(r, "keel-gate/flow/comp+net-to-main", m.source, m.dest, NULL,
                                    &yes, fix));
    assert_false(yes); /* main's history only: not a resolution */
    git_oid done = commit_by("Bob", tips, 2, "a.c", "both\n", "keel-gate/flow/comp+net-to-main");
    keel_test_ok(gate_flow_resolved(r, "keel-gate/flow/comp+net-to-main", m.source, m.dest, NULL,
                                    &yes, fix));
    assert_true(yes);
    assert_string_equal(fix, git_oid_tostr_s(&done));
    char made[GATE_HEX];
    memcpy(made, fix, sizeof(made));
    keel_test_ok(gate_flow_resolved(r, "keel-gate/flow/comp+net-to-main", m.source, m.dest, made,
                                    &yes, fix));
    assert_false(yes); /* the gate's own merge is no developer's resolution */
    gate_repo_close(r);
}

/* The recorded resolutions a test serves gate_flow_merge (a store's stand-in). */
typedef struct recorded {
    const gate_flow_resolution *rows;
    size_t n;
} recorded;

static keel_status recall_rows(void *ctx, gate_flow_resolution *r, bool *found)
{
    const recorded *rec = (const recorded *)ctx;
    *found = false;
    for (size_t i = 0; i < rec->n && !*found; i++) {
        const gate_flow_resolution *k = &rec->rows[i];
        if (strcmp(k->path, r->path) == 0 && strcmp(k->base, r->base) == 0 &&
            strcmp(k->ours, r->ours) == 0 && strcmp(k->theirs, r->theirs) == 0) {
            memcpy(r->blob, k->blob, sizeof(r->blob));
            r->mode = k->mode;
            *found = true;
        }
    }
    return KEEL_OK;
}

/*
 * Recorded resolutions: a developer's merge resolving a.c and b.c gives two
 * rows (gate_flow_resolutions); the same merge made again with both recalled
 * is made (reused 2, the resolved a.c, said in the message); with one
 * missing, or a recorded blob the repository does not have, it conflicts.
 */
static void test_merge_recalled(void **state)
{
    (void)state;
    git_oid base = commit_by("Root", NULL, 0, "a.c", "base\n", "main");
    git_oid base2 = commit_by("Root", &base, 1, "b.c", "b base\n", "main");
    git_oid c1 = commit_by("Bob", &base2, 1, "a.c", "comp's\n", "comp/net");
    git_oid c2 = commit_by("Bob", &c1, 1, "b.c", "comp b\n", "comp/net");
    git_oid m1 = commit_by("Ann", &base2, 1, "a.c", "main's\n", "main");
    git_oid m2 = commit_by("Ann", &m1, 1, "b.c", "main b\n", "main");
    const git_oid tips[2] = {m2, c2};
    git_oid done = commit_by("Bob", tips, 2, "a.c", "both\n", "fix"); /* b.c: main's kept */
    gate_repo *r = open_repo();
    gate_flow_resolution rows[GATE_FLOWMERGE_PATHS];
    size_t n = 99;
    keel_test_ok(gate_flow_resolutions(r, git_oid_tostr_s(&m2), rows, GATE_FLOWMERGE_PATHS, &n));
    assert_int_equal(n, 0); /* not a merge */
    keel_test_ok(gate_flow_resolutions(r, git_oid_tostr_s(&done), rows, GATE_FLOWMERGE_PATHS, &n));
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].path, "a.c");
    assert_string_equal(rows[1].path, "b.c");
    git_oid both, main_b;
    assert_int_equal(git_blob_create_from_buffer(&both, repo, "both\n", 5), 0);
    assert_int_equal(git_blob_create_from_buffer(&main_b, repo, "main b\n", 7), 0);
    assert_string_equal(rows[0].blob, git_oid_tostr_s(&both));
    assert_string_equal(rows[1].blob, git_oid_tostr_s(&main_b));
    assert_int_equal(rows[0].mode, GIT_FILEMODE_BLOB);
    assert_true(rows[0].base[0] != '\0' && rows[0].ours[0] != '\0' && rows[0].theirs[0] != '\0');

    const char *flow = "keel-gate/flow/comp+net-to-main";
    gate_flowmerge m;
    recorded one = {rows, 1};
    gate_flow_recall known = {recall_rows, &one};
    keel_test_ok(gate_flow_merge(r, "comp/net", "main", flow, 1000, &known, &m));
    assert_int_equal(m.result, GATE_FLOWMERGE_CONFLICT); /* b.c has no record */
    assert_int_equal(m.reused, 0);
    assert_int_equal(m.npaths, 2);

    recorded all = {rows, 2};
    known.ctx = &all;
    keel_test_ok(gate_flow_merge(r, "comp/net", "main", flow, 1000, &known, &m));
    assert_int_equal(m.result, GATE_FLOWMERGE_MADE);
    assert_int_equal(m.reused, 2);
    assert_string_equal(m.paths[0], "a.c");
    git_oid id;
    git_commit *c = NULL;
    git_tree *tree = NULL;
    assert_int_equal(git_oid_fromstr(&id, m.merge), 0);
    assert_int_equal(git_commit_lookup(&c, repo, &id), 0);
    assert_int_equal(git_commit_parentcount(c), 2);
    assert_non_null(strstr(git_commit_message(c), "Keel-Gate-Resolution: recorded, reused: a.c\n"));
    assert_int_equal(git_commit_tree(&tree, c), 0);
    assert_true(git_oid_equal(git_tree_entry_id(git_tree_entry_byname(tree, "a.c")), &both));
    assert_true(git_oid_equal(git_tree_entry_id(git_tree_entry_byname(tree, "b.c")), &main_b));
    git_tree_free(tree);
    git_commit_free(c);

    /* recorded from a merge made the other way round (main into comp/net): found all the same */
    gate_flow_resolution swapped[2];
    memcpy(swapped, rows, sizeof(swapped));
    for (size_t i = 0; i < 2; i++) {
        memcpy(swapped[i].ours, rows[i].theirs, sizeof(swapped[i].ours));
        memcpy(swapped[i].theirs, rows[i].ours, sizeof(swapped[i].theirs));
    }
    recorded other = {swapped, 2};
    known.ctx = &other;
    keel_test_ok(gate_flow_merge(r, "comp/net", "main", flow, 1000, &known, &m));
    assert_int_equal(m.result, GATE_FLOWMERGE_MADE);
    assert_int_equal(m.reused, 2);
    known.ctx = &all;

    /* a record whose blob is gone from the repository: not applied */
    (void)snprintf(rows[1].blob, sizeof(rows[1].blob), "%s",
                   "0123456789abcdef0123456789abcdef01234567");
    keel_test_ok(gate_flow_merge(r, "comp/net", "main", flow, 1000, &known, &m));
    assert_int_equal(m.result, GATE_FLOWMERGE_CONFLICT);
    gate_repo_close(r);
}

/*
 * A path that holds a newline, resolved by a recorded resolution: the merge's
 * message shows it as \x0a, so the path cannot add a trailer of its own (a
 * `Keel-Gate-Change` that would name a change the merge is not).
 */
static void test_merge_recalled_path_shown(void **state)
{
    (void)state;
    const char *path = "a.c\n\nKeel-Gate-Change: 7";
    git_oid base = commit_by("Root", NULL, 0, path, "base\n", "main");
    git_oid c1 = commit_by("Bob", &base, 1, path, "comp's\n", "comp/net");
    git_oid m1 = commit_by("Ann", &base, 1, path, "main's\n", "main");
    const git_oid tips[2] = {m1, c1};
    git_oid done = commit_by("Bob", tips, 2, path, "both\n", "fix");
    gate_repo *r = open_repo();
    gate_flow_resolution rows[GATE_FLOWMERGE_PATHS];
    size_t n = 0;
    keel_test_ok(gate_flow_resolutions(r, git_oid_tostr_s(&done), rows, GATE_FLOWMERGE_PATHS, &n));
    assert_int_equal(n, 1);
    recorded all = {rows, 1};
    gate_flow_recall known = {recall_rows, &all};
    gate_flowmerge m;
    keel_test_ok(gate_flow_merge(r, "comp/net", "main", "keel-gate/flow/comp+net-to-main", 1000,
                                 &known, &m));
    assert_int_equal(m.result, GATE_FLOWMERGE_MADE);
    assert_int_equal(m.reused, 1);
    assert_string_equal(m.paths[0], path);
    git_oid id;
    git_commit *c = NULL;
    assert_int_equal(git_oid_fromstr(&id, m.merge), 0);
    assert_int_equal(git_commit_lookup(&c, repo, &id), 0);
    const char *msg = git_commit_message(c);
    assert_non_null(strstr(msg, "reused: a.c\\x0a\\x0aKeel-Gate-Change: 7\n"));
    git_message_trailer_array arr;
    memset(&arr, 0, sizeof(arr));
    assert_int_equal(git_message_trailers(&arr, msg), 0);
    for (size_t i = 0; i < arr.count; i++)
        assert_string_not_equal(arr.trailers[i].key, "Keel-Gate-Change");
    git_message_trailer_array_free(&arr);
    git_commit_free(c);
    gate_repo_close(r);
}

/* A blob of `text` in the test repository, its id in hex (into out). */
static void blob_of(const char *text, char out[GATE_FLOW_SHA_MAX])
{
    git_oid id;
    assert_int_equal(git_blob_create_from_buffer(&id, repo, text, strlen(text)), 0);
    (void)git_oid_tostr(out, GATE_FLOW_SHA_MAX, &id);
}

/* The text of blob `hex` (static). */
static const char *blob_text(const char *hex)
{
    static char text[256];
    git_oid id;
    git_blob *b = NULL;
    assert_int_equal(git_oid_fromstr(&id, hex), 0);
    assert_int_equal(git_blob_lookup(&b, repo, &id), 0);
    (void)snprintf(text, sizeof(text), "%.*s", (int)git_blob_rawsize(b),
                   (const char *)git_blob_rawcontent(b));
    git_blob_free(b);
    return text;
}

/* A conflict of a.c from three texts ("" NULL: no such side), its hunks computed. */
static gate_flow_resolution hunks_of(gate_repo *r, const char *base, const char *ours,
                                     const char *theirs)
{
    gate_flow_resolution k;
    memset(&k, 0, sizeof(k));
    (void)snprintf(k.path, sizeof(k.path), "a.c");
    blob_of(base, k.base);
    if (ours != NULL)
        blob_of(ours, k.ours);
    if (theirs != NULL)
        blob_of(theirs, k.theirs);
    keel_test_ok(gate_flow_hunks(r, &k));
    return k;
}

/*
 * A conflict's hunks (as git's rerere keys them): the same hunks whichever
 * side is ours, and in a file changed elsewhere; other hunks another id; a
 * side without the file none; a line changed next to the hunk makes it
 * another.  A recorded resolution is carried to the file changed elsewhere
 * (its line kept); one that does not merge with the file now is not.
 */
static void test_conflict_hunks(void **state)
{
    (void)state;
    gate_repo *r = open_repo();
    static const char base[] = "1\n2\n3\n4\n5\n6\n7\n8\n";
    static const char comp[] = "1\ncomp\n3\n4\n5\n6\n7\n8\n";
    gate_flow_resolution k1 = hunks_of(r, base, "1\nmain\n3\n4\n5\n6\n7\n8\n", comp);
    assert_int_equal(strlen(k1.hunks), 40);
    assert_string_equal(blob_text(k1.preimage),
                        "1\n<<<<<<<\ncomp\n=======\nmain\n>>>>>>>\n3\n4\n5\n6\n7\n8\n");
    gate_flow_resolution k2 = hunks_of(r, base, comp, "1\nmain\n3\n4\n5\n6\n7\n8\n");
    assert_string_equal(k2.hunks, k1.hunks); /* the other way round */
    assert_string_equal(k2.preimage, k1.preimage);
    gate_flow_resolution k3 = hunks_of(r, base, "1\nmain\n3\n4\n5\n6\nnext\n8\n", comp);
    assert_string_equal(k3.hunks, k1.hunks); /* changed elsewhere: the same hunks */
    assert_string_not_equal(k3.preimage, k1.preimage);
    gate_flow_resolution k4 = hunks_of(r, base, "1\nother\n3\n4\n5\n6\n7\n8\n", comp);
    assert_string_not_equal(k4.hunks, k1.hunks); /* another conflict */
    gate_flow_resolution k5 = hunks_of(r, base, NULL, comp);
    assert_string_equal(k5.hunks, ""); /* deleted on one side: no hunks */
    assert_string_equal(k5.preimage, "");

    char result[GATE_FLOW_SHA_MAX], out[GATE_HEX];
    blob_of("1\nboth\n3\n4\n5\n6\n7\n8\n", result);
    bool clean = false;
    keel_test_ok(gate_flow_hunks_apply(r, "a.c", k1.preimage, k3.preimage, result, out, &clean));
    assert_true(clean);
    assert_string_equal(blob_text(out), "1\nboth\n3\n4\n5\n6\nnext\n8\n");
    gate_flow_resolution k6 = hunks_of(r, base, "1\nmain\nnext\n4\n5\n6\n7\n8\n", comp);
    assert_string_not_equal(k6.hunks, k1.hunks); /* changed next to it: the hunk is another */
    /* a resolution that does not merge with the file now: not carried over */
    keel_test_ok(gate_flow_hunks_apply(r, "a.c", k1.preimage, k4.preimage, result, out, &clean));
    assert_false(clean);
    assert_string_equal(out, "");
    gate_repo_close(r);
}

/* A clean merge is a real merge commit on the flow branch; once in main, nothing new. */
static void test_merge_made_then_nothing_new(void **state)
{
    (void)state;
    git_oid base = commit_by("Root", NULL, 0, "a.c", "base\n", "main");
    git_oid c1 = commit_by("Bob", &base, 1, "b.c", "b\n", "release/2.1");
    git_oid m1 = commit_by("Ann", &base, 1, "a.c", "a2\n", "main");
    gate_repo *r = open_repo();
    char flow[128];
    keel_test_ok(gate_flow_branch("main", "release/2.1", flow, sizeof(flow)));
    gate_flowmerge m;
    keel_test_ok(gate_flow_merge(r, "main", "release/2.1", flow, 1000, NULL, &m));
    assert_int_equal(m.result, GATE_FLOWMERGE_MADE);
    assert_string_equal(m.base, git_oid_tostr_s(&base));
    char hex[GATE_HEX];
    keel_test_ok(gate_branch_head(r, flow, hex));
    assert_string_equal(hex, m.merge);
    git_oid id;
    git_commit *c = NULL;
    assert_int_equal(git_oid_fromstr(&id, m.merge), 0);
    assert_int_equal(git_commit_lookup(&c, repo, &id), 0);
    assert_int_equal(git_commit_parentcount(c), 2); /* never a squash nor a rebase */
    assert_true(git_oid_equal(git_commit_parent_id(c, 0), &c1));
    assert_true(git_oid_equal(git_commit_parent_id(c, 1), &m1));
    assert_non_null(strstr(git_commit_message(c), "Keel-Gate-Flow: main -> release/2.1"));
    assert_int_equal(git_commit_time(c), 1000);
    git_commit_free(c);
    /* it lands: release/2.1 moves to it; the same flow has nothing new */
    git_reference *ref = NULL;
    assert_int_equal(git_reference_create(&ref, repo, "refs/heads/release/2.1", &id, 1, "land"), 0);
    git_reference_free(ref);
    keel_test_ok(gate_flow_merge(r, "main", "release/2.1", flow, 2000, NULL, &m));
    assert_int_equal(m.result, GATE_FLOWMERGE_NOTHING_NEW);
    assert_string_equal(m.merge, "");
    /* the product branch never flows back by itself; its merge into main would be new */
    keel_test_ok(gate_flow_merge(r, "release/2.1", "main", "keel-gate/flow/release+2.1-to-main",
                                 3000, NULL, &m));
    assert_int_equal(m.result, GATE_FLOWMERGE_MADE);
    keel_status s = gate_flow_merge(r, "main", "no/such", flow, 1, NULL, &m);
    assert_true(KEEL_IS(s, KEEL_E_NOTFOUND));
    keel_status_free(s);
    gate_repo_close(r);
}

/* ---- the store: kill -9 between a decision and its record ------------------------- */

/* How many events of `kind` the store at `path` holds. */
static int events_of(const char *path, const char *kind)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE kind = ?1", -1, &stmt, NULL),
        SQLITE_OK);
    (void)sqlite3_bind_text(stmt, 1, kind, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    int n = sqlite3_column_int(stmt, 0);
    (void)sqlite3_finalize(stmt);
    (void)sqlite3_close(db);
    return n;
}

/*
 * One turn of a flow as gate_flows_turn takes it: load, feed, save with what
 * is told.  `die`: 1, _exit before the save (a kill -9 between the decision
 * and its record); 2, _exit right after it (before the hook ran).
 */
static gate_flow_action store_turn(const char *path, const gate_flow_config *cfg,
                                   const gate_flow_event *ev, int die)
{
    gate_store *st = NULL;
    keel_test_ok(gate_store_open(path, &st));
    gate_flow f;
    gate_flow_decision d;
    bool found = false;
    keel_test_ok(gate_store_flow_load(st, cfg, &f, &found));
    gate_flow_feed(&f, ev, &d);
    if (die == 1)
        _exit(0);
    gate_flow_told told = {gate_flow_told_kind(d.action), "{\"flow\":true}", d.people, d.npeople,
                           d.reminder};
    keel_test_ok(gate_store_flow_save(st, &f, told.kind != NULL ? &told : NULL, ev->now));
    if (die == 2)
        _exit(0);
    gate_store_close(st);
    return d.action;
}

/* store_turn in a child process that dies as `die` says. */
static void killed_turn(const char *path, const gate_flow_config *cfg, const gate_flow_event *ev,
                        int die)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        (void)store_turn(path, cfg, ev, die);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_store_reminders_once(void **state)
{
    (void)state;
    char path[128];
    (void)snprintf(path, sizeof(path), "%s/state.db", repo_dir);
    clock_flow t;
    flow_setup(&t, GATE_FLOW_ON_COMMIT);
    gate_flow_event moved = {GATE_FLOW_EV_SOURCE_MOVED, 10, "s1", NULL, NULL, 0, NULL};
    gate_flow_event conflict = {GATE_FLOW_EV_CONFLICT, 20, NULL, "a.c", authors, 3, NULL};
    assert_int_equal(store_turn(path, &t.cfg, &moved, 0), GATE_FLOW_DO_MERGE);
    killed_turn(path, &t.cfg, &conflict, 1); /* killed before the record: nothing told */
    assert_int_equal(events_of(path, "flow-blocked"), 0);
    assert_int_equal(store_turn(path, &t.cfg, &conflict, 0), GATE_FLOW_DO_BLOCK);
    assert_int_equal(events_of(path, "flow-blocked"), 1);

    /* the first reminder is due a day later: killed after its record, it is not told again */
    gate_flow_event tick = {GATE_FLOW_EV_TICK, 20 + DAY, NULL, NULL, NULL, 0, NULL};
    killed_turn(path, &t.cfg, &tick, 1);
    assert_int_equal(events_of(path, "flow-reminder"), 0);
    killed_turn(path, &t.cfg, &tick, 2);
    assert_int_equal(events_of(path, "flow-reminder"), 1);
    assert_int_equal(store_turn(path, &t.cfg, &tick, 0), GATE_FLOW_DO_NOTHING);
    tick.now += 2LL * DAY;
    assert_int_equal(store_turn(path, &t.cfg, &tick, 0), GATE_FLOW_DO_REMIND);
    assert_int_equal(events_of(path, "flow-reminder"), 2);

    /* what was told, newest first; the state as it was left */
    gate_store *st = NULL;
    keel_test_ok(gate_store_open(path, &st));
    gate_flow_told_row rows[8];
    size_t n = 0;
    keel_test_ok(gate_store_flow_told(st, "comp/net", "main", rows, 8, &n));
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].kind, "flow-reminder");
    assert_int_equal(rows[0].count, 2);
    assert_int_equal(rows[0].at, 20 + 3 * DAY);
    assert_string_equal(rows[2].kind, "flow-blocked");
    assert_string_equal(rows[2].who, "Ann <ann@example.org>, Bob <bob@example.org>");
    gate_flow f;
    bool found = false;
    keel_test_ok(gate_store_flow_load(st, &t.cfg, &f, &found));
    assert_true(found);
    assert_int_equal(f.state, GATE_FLOW_BLOCKED);
    assert_int_equal(f.blocked_since, 20);
    assert_int_equal(f.reminders, 2);
    assert_int_equal(f.npeople, 2);
    assert_string_equal(f.people[1].who, "Bob <bob@example.org>");
    assert_string_equal(f.why, "merge conflict: a.c");
    gate_store_close(st);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_flows),
        cmocka_unit_test(test_config_flow_errors),
        cmocka_unit_test(test_config_flow_key_errors_name_the_flow),
        cmocka_unit_test(test_config_pre_merge),
        cmocka_unit_test(test_duration_and_branch_names),
        cmocka_unit_test(test_flow_sync_once),
        cmocka_unit_test(test_flow_schedule),
        cmocka_unit_test(test_flow_conflict_reminders),
        cmocka_unit_test(test_flow_never_escalates),
        cmocka_unit_test(test_flow_resolution),
        cmocka_unit_test(test_flow_rejected_then_retry),
        cmocka_unit_test(test_flow_told_why),
        cmocka_unit_test(test_flow_culprit_found),
        cmocka_unit_test(test_flow_suspects),
        cmocka_unit_test_setup_teardown(test_merge_conflict_people, repo_setup, repo_teardown),
        cmocka_unit_test_setup_teardown(test_merge_recalled, repo_setup, repo_teardown),
        cmocka_unit_test_setup_teardown(test_merge_recalled_path_shown, repo_setup, repo_teardown),
        cmocka_unit_test_setup_teardown(test_conflict_hunks, repo_setup, repo_teardown),
        cmocka_unit_test_setup_teardown(test_merge_made_then_nothing_new, repo_setup,
                                        repo_teardown),
        cmocka_unit_test_setup_teardown(test_store_reminders_once, repo_setup, repo_teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
