/*
 * test_gate_backout.c - backing out a verified culprit (gate/levels/backout.h):
 * the guard rails table by table (backout_policy.h), then on real
 * repositories and real gate runs: a verified culprit reverted through the
 * gate at top priority and the target green again; every rail that refuses,
 * proposes or waits; the budget and the circuit breaker; kill -9 at each
 * step of a backout (no second revert, nothing lost); hold-when-red.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gate_fixture.h"

#include "backout.h"
#include "backout_policy.h"
#include "store_backout.h"
#include "store_post.h"

/* ---- the rails, without I/O ----------------------------------------------------------- */

/* Facts where every rail passes: a tier-1 culprit to revert. */
static gate_backout_facts good_facts(void)
{
    gate_backout_facts f;
    memset(&f, 0, sizeof(f));
    f.verified = true;
    f.tier = 1;
    f.backout = true;
    f.age_s = 3600;
    f.max_age_s = 7LL * 86400;
    f.applies = true;
    f.budget = 3;
    f.fix_s = 4LL * 3600;
    return f;
}

typedef struct rail_case {
    const char *what;
    void (*change)(gate_backout_facts *f);
    gate_backout_action action;
    gate_backout_rail rail;
    bool open_breaker;
} rail_case;

static void none(gate_backout_facts *f)
{
    (void)f;
}
static void unverified(gate_backout_facts *f)
{
    f->verified = false;
}
static void tier3(gate_backout_facts *f)
{
    f->tier = 3;
}
static void green(gate_backout_facts *f)
{
    f->target_green = true;
}
static void undone(gate_backout_facts *f)
{
    f->undone = true;
}
static void a_revert(gate_backout_facts *f)
{
    f->is_revert = true;
}
static void no_auto(gate_backout_facts *f)
{
    f->no_auto_revert = true;
}
static void off(gate_backout_facts *f)
{
    f->backout = false;
}
static void conflicts(gate_backout_facts *f)
{
    f->applies = false;
}
static void touched(gate_backout_facts *f)
{
    f->later_touched = true;
}
static void old(gate_backout_facts *f)
{
    f->age_s = 8LL * 86400;
}
static void tier2_early(gate_backout_facts *f)
{
    f->tier = 2;
    f->waited_s = 3600;
}
static void tier2_due(gate_backout_facts *f)
{
    f->tier = 2;
    f->waited_s = 4LL * 3600;
}
static void breaker(gate_backout_facts *f)
{
    f->breaker_open = true;
}
static void created_spent(gate_backout_facts *f)
{
    f->created_24h = 3;
}
static void landed_spent(gate_backout_facts *f)
{
    f->landed_24h = 3;
    f->created_24h = 2;
}
static void below_budget(gate_backout_facts *f)
{
    f->created_24h = 2;
    f->landed_24h = 2;
}
/* an unverified revert of a revert, old, with the breaker open: unverified decides first */
static void everything(gate_backout_facts *f)
{
    f->verified = false;
    f->is_revert = true;
    f->age_s = 30LL * 86400;
    f->breaker_open = true;
}
/* tier 2, due, but dependent: never reverted */
static void tier2_dependent(gate_backout_facts *f)
{
    tier2_due(f);
    touched(f);
}

static void test_policy_rails(void **state)
{
    (void)state;
    static const rail_case cases[] = {
        {"every rail passes", none, GATE_BACKOUT_REVERT, GATE_RAIL_NONE, false},
        {"unverified", unverified, GATE_BACKOUT_REFUSE, GATE_RAIL_UNVERIFIED, false},
        {"tier 3", tier3, GATE_BACKOUT_REFUSE, GATE_RAIL_TIER3, false},
        {"green again", green, GATE_BACKOUT_REFUSE, GATE_RAIL_TARGET_GREEN, false},
        {"undone on the head", undone, GATE_BACKOUT_REFUSE, GATE_RAIL_UNDONE, false},
        {"a revert", a_revert, GATE_BACKOUT_REFUSE, GATE_RAIL_REVERT, false},
        {"No-Auto-Revert", no_auto, GATE_BACKOUT_REFUSE, GATE_RAIL_NO_AUTO_REVERT, false},
        {"backout = no", off, GATE_BACKOUT_PROPOSE, GATE_RAIL_BACKOUT_OFF, false},
        {"does not apply", conflicts, GATE_BACKOUT_REFUSE, GATE_RAIL_DEPENDENT, false},
        {"later commits touched", touched, GATE_BACKOUT_REFUSE, GATE_RAIL_DEPENDENT, false},
        {"too old", old, GATE_BACKOUT_PROPOSE, GATE_RAIL_AGE, false},
        {"tier 2 early", tier2_early, GATE_BACKOUT_WAIT, GATE_RAIL_TIER2_WAIT, false},
        {"tier 2 due", tier2_due, GATE_BACKOUT_REVERT, GATE_RAIL_NONE, false},
        {"breaker open", breaker, GATE_BACKOUT_REFUSE, GATE_RAIL_BREAKER, false},
        {"created budget spent", created_spent, GATE_BACKOUT_REFUSE, GATE_RAIL_BUDGET, true},
        {"landed budget spent", landed_spent, GATE_BACKOUT_REFUSE, GATE_RAIL_BUDGET, true},
        {"below the budget", below_budget, GATE_BACKOUT_REVERT, GATE_RAIL_NONE, false},
        {"unverified first", everything, GATE_BACKOUT_REFUSE, GATE_RAIL_UNVERIFIED, false},
        {"tier 2 dependent", tier2_dependent, GATE_BACKOUT_REFUSE, GATE_RAIL_DEPENDENT, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gate_backout_facts f = good_facts();
        cases[i].change(&f);
        gate_backout_decision d;
        gate_backout_policy_decide(&f, &d);
        if (d.action != cases[i].action || d.rail != cases[i].rail ||
            d.open_breaker != cases[i].open_breaker || d.reason[0] == '\0')
            fail_msg("%s: %s (%s, breaker %d): %s", cases[i].what,
                     gate_backout_policy_action_name(d.action),
                     gate_backout_policy_rail_name(d.rail), d.open_breaker, d.reason);
    }
    assert_string_equal(gate_backout_policy_rail_name(GATE_RAIL_NO_AUTO_REVERT), "no-auto-revert");
    assert_string_equal(gate_backout_policy_rail_name(GATE_RAILS), "?");
}

static void test_policy_message(void **state)
{
    (void)state;
    static const struct {
        const char *message;
        bool is_revert, no_auto;
    } cases[] = {
        {"add a feature\n\nbody\n", false, false},
        {"Revert \"add a feature\"\n\nThis reverts commit abc.\n", true, false},
        {"undo it\n\nThis reverts commit 0123.\n", true, false},
        {"fix: mention Revert \"x\" in the body\n", false, false},
        {"x\n\nNo-Auto-Revert: true\n", false, true},
        {"x\n\nno-auto-revert:  YES \n", false, true},
        {"x\n\nNo-Auto-Revert: false\n", false, false},
        {"x\n\nNo-Auto-Revert: truer\n", false, false},
        {"Revert \"y\"\n\nNo-Auto-Revert: true", true, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool rev = !cases[i].is_revert, no = !cases[i].no_auto;
        gate_backout_policy_message(cases[i].message, &rev, &no);
        if (rev != cases[i].is_revert || no != cases[i].no_auto)
            fail_msg("'%s': revert %d, no-auto-revert %d", cases[i].message, rev, no);
    }
}

static void test_config_keys(void **state)
{
    (void)state;
    static const char text[] = "[gate]\nbackout = no\nbackout-budget = 5\nbackout-max-age = 2d\n"
                               "tier2-fix-time = 90m\nhold-when-red = yes\nrevert-near = 7\n"
                               "[config a]\ntest = true\nbackout = yes\n[config b]\ntest = true\n";
    gate_config *c = NULL;
    fx_ok(gate_config_parse(text, strlen(text), "t", &c));
    assert_false(c->backout);
    assert_int_equal(c->backout_budget, 5);
    assert_int_equal(c->backout_max_age_s, 2 * 86400);
    assert_int_equal(c->tier2_fix_s, 90 * 60);
    assert_true(c->hold_when_red);
    assert_int_equal(c->revert_near, 7);
    assert_int_equal(c->configs[0].backout, 1);
    assert_int_equal(c->configs[1].backout, -1);
    gate_config_free(c);
    static const char defaults[] = "[config a]\ntest = true\n";
    fx_ok(gate_config_parse(defaults, strlen(defaults), "t", &c));
    assert_true(c->backout);
    assert_int_equal(c->backout_budget, 3);
    assert_int_equal(c->backout_max_age_s, 7 * 86400);
    assert_int_equal(c->tier2_fix_s, 4 * 3600);
    assert_false(c->hold_when_red);
    assert_int_equal(c->revert_near, 3);
    gate_config_free(c);
    static const char *const bad[] = {"[gate]\nbackout-max-age = 7 days\n[config a]\ntest = true\n",
                                      "[gate]\ntier2-fix-time = 4y\n[config a]\ntest = true\n",
                                      "[gate]\nhold-when-red = maybe\n[config a]\ntest = true\n",
                                      "[gate]\nbackout-budget = -1\n[config a]\ntest = true\n",
                                      "[gate]\nbackout-max-age = 99999w\n[config a]\ntest = true\n",
                                      "[gate]\nrevert-near = -1\n[config a]\ntest = true\n",
                                      "[gate]\nrevert-near = 1001\n[config a]\ntest = true\n",
                                      "[gate]\nrevert-near = three\n[config a]\ntest = true\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        keel_status s = gate_config_parse(bad[i], strlen(bad[i]), "t", &c);
        assert_false(keel_ok(s));
        const char *m = keel_status_message(s);
        if (strstr(m, "t:2:") == NULL)
            fail_msg("%s: %s", bad[i], m);
        char value[16] = "";
        if (strstr(bad[i], "revert-near") != NULL)
            (void)sscanf(strchr(bad[i], '=') + 2, "%15s", value);
        if (value[0] != '\0' && (strstr(m, "'revert-near'") == NULL || strstr(m, value) == NULL))
            fail_msg("%s: %s", bad[i], m);
        keel_status_free(s);
    }
}

/* ---- on real repositories ------------------------------------------------------------ */

static const char long_config[] = "[config long]\ntest = test ! -e postbad\nlevels = post\n"
                                  "timeout = 30\ntier = %u\n";

/* A repository whose post configuration `long` (tier `tier`) fails while postbad exists. */
static void setup(const char *gate_lines, unsigned tier)
{
    char cfg[256];
    (void)snprintf(cfg, sizeof(cfg), long_config, tier);
    fx_setup_repo(gate_lines, cfg);
    /*
     * No run yet: the first run records the tip alone, so the culprit the test pushes is the
     * first commit the post level sees, with no pass before it: no culprit search starts
     * (gate/levels/search.c needs a passing commit to search from), and the culprits are
     * handed over by the test.  test_gate_search.c's every-position tests run the search
     * into the backout end to end.
     */
}

/* A commit on main's tip pushed around the gate: `path` set to `content` (NULL: removed). */
static void push_around(const char *path, const char *content, git_oid *out)
{
    git_oid tip;
    fx_head("main", &tip);
    const fx_file f[] = {{path, content}};
    fx_commit(&tip, f, 1, "main", out);
}

/* main's tip given the message `message` instead (the commit replaced: *commit). */
static void retell(git_oid *commit, const char *message)
{
    git_commit *c = NULL;
    assert_int_equal(git_commit_lookup(&c, fx_git, commit), 0);
    assert_int_equal(
        git_commit_amend(commit, c, "refs/heads/main", NULL, NULL, NULL, message, NULL), 0);
    git_commit_free(c);
}

/* What the culprit search hands over for `commit`. */
static void culprit_of(const git_oid *commit, unsigned tier, bool verified, long long found_at,
                       gate_backout_culprit *c)
{
    memset(c, 0, sizeof(*c));
    (void)snprintf(c->target, sizeof(c->target), "main");
    (void)snprintf(c->config, sizeof(c->config), "long");
    c->tier = tier;
    git_oid_tostr(c->commit, sizeof(c->commit), commit);
    (void)snprintf(c->subject, sizeof(c->subject), "main");
    (void)snprintf(c->author_name, sizeof(c->author_name), "test");
    (void)snprintf(c->author_email, sizeof(c->author_email), "test@localhost");
    (void)snprintf(c->committer_name, sizeof(c->committer_name), "test");
    (void)snprintf(c->committer_email, sizeof(c->committer_email), "test@localhost");
    (void)snprintf(c->evidence, sizeof(c->evidence), "parent passed 3 of 3, culprit failed 3 of 3");
    (void)snprintf(c->log, sizeof(c->log), "/logs/post-long.log");
    c->verified = verified;
    c->found_at = found_at;
}

/* The backout row of `commit` (it must exist). */
static void row_of(gate *g, const git_oid *commit, gate_backout_row *r)
{
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), commit);
    bool found = false;
    fx_ok(gate_store_backout_get(gate_get_store(g), "main", hex, r, &found));
    assert_true(found);
}

static void assert_row_state(gate *g, const git_oid *commit, const char *state, const char *rail)
{
    gate_backout_row r;
    row_of(g, commit, &r);
    if (strcmp(r.state, state) != 0 || strcmp(r.rail, rail) != 0)
        fail_msg("%.12s: %s (%s), not %s (%s): %s", r.culprit, r.state, r.rail, state, rail,
                 r.reason);
}

/* Hand `commit` over as the culprit at `now`, and say what became of it. */
static void hand_over(gate *g, const git_oid *commit, unsigned tier, bool verified, long long now,
                      const char *state, const char *rail)
{
    gate_backout_culprit c;
    culprit_of(commit, tier, verified, now, &c);
    fx_ok(gate_backout_culprit_found(g, &c, now));
    assert_row_state(g, commit, state, rail);
}

static long long count_reverts(void)
{
    return fx_sql_int("SELECT count(*) FROM changes WHERE branch LIKE ?", "keel-gate/backout/%");
}

static long long events(const char *kind)
{
    return fx_sql_int("SELECT count(*) FROM events WHERE kind = ?", kind);
}

/* The newest post result of `long` on main. */
static const char *newest_long(void)
{
    gate_store *st = NULL;
    fx_ok(gate_store_open(fx_state, &st));
    gate_post_row h[1];
    size_t n = 0;
    fx_ok(gate_store_post_history(st, "main", "long", h, 1, &n));
    gate_store_close(st);
    assert_int_equal(n, 1);
    return gate_post_outcome(&h[0]);
}

/* Does main's tree hold `path`? */
static bool main_has(const char *path)
{
    git_oid tip;
    fx_head("main", &tip);
    return fx_has_at(&tip, path);
}

static void test_verified_culprit_reverted_through_the_gate(void **state)
{
    (void)state;
    setup("strategy = serial", 1);
    git_oid culprit, later;
    push_around("postbad", "x\n", &culprit);
    push_around("later.txt", "l\n", &later);
    (void)fx_run_once();
    assert_string_equal(newest_long(), "failed");

    gate *g = fx_open();
    long long now = (long long)time(NULL);
    hand_over(g, &culprit, 1, true, now, "queued", "");
    gate_backout_row r;
    row_of(g, &culprit, &r);
    gate_change ch;
    fx_ok(gate_store_get(gate_get_store(g), r.change, &ch));
    assert_int_equal(ch.priority, GATE_BACKOUT_PRIORITY); /* top priority, through the gate */
    assert_int_equal(ch.state, GATE_CHANGE_QUEUED);
    char want[80];
    (void)snprintf(want, sizeof(want), "keel-gate/backout/%.12s", r.culprit);
    assert_string_equal(ch.branch, want);
    /* the revert's message: what, why, the evidence, the log, the trailer */
    git_oid revert;
    assert_int_equal(git_oid_fromstr(&revert, r.revert), 0);
    git_commit *rc = NULL;
    assert_int_equal(git_commit_lookup(&rc, fx_git, &revert), 0);
    const char *m = git_commit_message(rc);
    char reverts[96], trailer[96];
    (void)snprintf(reverts, sizeof(reverts), "This reverts commit %s.", r.culprit);
    (void)snprintf(trailer, sizeof(trailer), "Keel-Backout: %s", r.culprit);
    if (strncmp(m, "Revert \"main\"\n\n", 15) != 0 || strstr(m, reverts) == NULL ||
        strstr(m, trailer) == NULL || strstr(m, "Configuration 'long'") == NULL ||
        strstr(m, "parent passed 3 of 3") == NULL || strstr(m, "/logs/post-long.log") == NULL)
        fail_msg("revert message:\n%s", m);
    git_commit_free(rc);

    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    fx_ok(gate_backout_turn(g, (long long)time(NULL)));
    assert_int_equal(fx_state_of(g, r.change), GATE_CHANGE_LANDED);
    assert_row_state(g, &culprit, "landed", "");
    /* the revert was tested like any change: the gate's configuration ran on it */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE config = ?", "unit"), 1);
    /* handed over again: nothing more */
    hand_over(g, &culprit, 1, true, now, "landed", "");
    gate_close(g);
    assert_false(main_has("postbad"));
    assert_true(main_has("later.txt"));
    assert_string_equal(newest_long(), "passed"); /* green again, at the post level */
    assert_int_equal(count_reverts(), 1);
    assert_int_equal(events("backout-queued"), 1);
    assert_int_equal(events("backout-landed"), 1);
    assert_int_equal(events("target-green"), 1);
    /* the notify hook heard it, with the culprit and its people */
    char path[160];
    (void)snprintf(path, sizeof(path), "%s/events.jsonl", fx_dir);
    static char heard[65536];
    keel_test_read_file(path, heard, sizeof(heard));
    char landed[160];
    (void)snprintf(landed, sizeof(landed), "\"event\":\"backout-landed\",\"change\":%lld",
                   r.change);
    if (strstr(heard, landed) == NULL || strstr(heard, r.culprit) == NULL ||
        strstr(heard, "\"author\":\"test <test@localhost>\",\"committer\":") == NULL)
        fail_msg("the hook heard:\n%s", heard);

    /* keel-gate backouts, text and JSON */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    g = fx_open();
    fx_ok(gate_backouts(g, f, false));
    fx_ok(gate_backouts(g, f, true));
    gate_close(g);
    assert_int_equal(fclose(f), 0);
    char line[64];
    (void)snprintf(line, sizeof(line), "%.12s  long", r.culprit);
    if (strstr(text, line) == NULL || strstr(text, "landed") == NULL ||
        strstr(text, "\"state\":\"landed\"") == NULL || strstr(text, "\"open\":false") == NULL)
        fail_msg("backouts:\n%s", text);
    free(text);
}

/*
 * A change the gate landed as a merge, found by the culprit search of the same run (the base
 * passed before it): the merge is reverted against its first parent, through the gate, and
 * main is green again; the search's hand-over made again does nothing.
 */
static void test_gate_merge_reverted_against_its_first_parent(void **state)
{
    (void)state;
    setup("strategy = serial", 1);
    fx_branch("breaks", "postbad", "x\n"); /* passes the gate's suite, breaks the post suite */
    gate *g = fx_open();
    long long id = fx_submit(g, "breaks", 0);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_LANDED);
    gate_backout_row r;
    size_t n = 0;
    fx_ok(gate_store_backout_list(gate_get_store(g), "main", NULL, NULL, &r, 1, &n));
    assert_int_equal(n, 1);
    assert_string_equal(r.state, "landed");
    assert_int_equal(r.culprit_change, id);
    git_oid merge;
    assert_int_equal(git_oid_fromstr(&merge, r.culprit), 0);
    git_commit *m = NULL;
    assert_int_equal(git_commit_lookup(&m, fx_git, &merge), 0);
    assert_int_equal(git_commit_parentcount(m), 2);
    char first[GIT_OID_HEXSZ + 1];
    git_oid_tostr(first, sizeof(first), git_commit_parent_id(m, 0));
    git_commit_free(m);
    assert_true(r.parent[0] == '\0' || strcmp(r.parent, first) == 0);
    gate_backout_culprit c;
    culprit_of(&merge, 1, true, (long long)time(NULL), &c);
    c.change = id;
    fx_ok(gate_backout_culprit_found(g, &c, (long long)time(NULL))); /* again: nothing new */
    gate_close(g);
    assert_int_equal(count_reverts(), 1);
    assert_false(main_has("postbad"));
    assert_string_equal(newest_long(), "passed");
}

/* A file of 20 numbered lines, line `a` and line `b` (1-based; 0: none) changed. */
static void lines_file(char *buf, size_t size, unsigned a, unsigned b)
{
    size_t len = 0;
    for (unsigned i = 1; i <= 20 && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%u%s\n", i,
                                i == a   ? "x"
                                : i == b ? "y"
                                         : "");
}

/*
 * Later commits that changed the culprit's file away from the lines it
 * changed (4 and more lines from them), and other files: the culprit is not
 * dependent, its revert is made and queued.  (Refused when a later commit
 * touched the same file at all, before the check was by lines.)
 */
static void test_later_change_elsewhere_in_the_file(void **state)
{
    (void)state;
    setup("", 1);
    git_oid base, culprit, far, other;
    char big[128];
    lines_file(big, sizeof(big), 0, 0);
    push_around("big.txt", big, &base);
    lines_file(big, sizeof(big), 0, 16);
    push_around("big.txt", big, &culprit);
    push_around("postbad", "x\n", &other);
    lines_file(big, sizeof(big), 12, 16); /* 4 lines from the culprit's */
    push_around("big.txt", big, &far);
    (void)fx_run_once();
    gate *g = fx_open();
    hand_over(g, &culprit, 1, true, (long long)time(NULL), "queued", "");
    gate_close(g);
    assert_int_equal(count_reverts(), 1);
    (void)fx_run_once(); /* the revert through the gate: line 16 back, line 12 kept */
    char text[128];
    git_oid tip;
    fx_head("main", &tip);
    fx_read_at(&tip, "big.txt", text, sizeof(text));
    lines_file(big, sizeof(big), 12, 0);
    assert_string_equal(text, big);
}

/*
 * [gate] revert-near = 4: the later change 4 lines from the culprit's (not
 * near at the default 3, test_later_change_elsewhere_in_the_file) now is:
 * the culprit is refused as dependent, naming the line; a change 2 lines
 * from it is near at revert-near = 2, not at 1.
 */
static void test_revert_near_setting(void **state)
{
    (void)state;
    static const struct {
        const char *gate;
        unsigned later;
        const char *state, *rail;
    } cases[] = {{"revert-near = 4", 12, "refused", "dependent"},
                 {"revert-near = 1", 14, "queued", ""},
                 {"revert-near = 2", 14, "refused", "dependent"}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        setup(cases[k].gate, 1);
        git_oid base, culprit, later;
        char big[128];
        lines_file(big, sizeof(big), 0, 0);
        push_around("big.txt", big, &base);
        lines_file(big, sizeof(big), 0, 16);
        push_around("big.txt", big, &culprit);
        push_around("postbad", "x\n", &later);
        lines_file(big, sizeof(big), cases[k].later, 16);
        push_around("big.txt", big, &later);
        (void)fx_run_once();
        gate *g = fx_open();
        hand_over(g, &culprit, 1, true, (long long)time(NULL), cases[k].state, cases[k].rail);
        gate_backout_row r;
        row_of(g, &culprit, &r);
        gate_close(g);
        char line[32];
        (void)snprintf(line, sizeof(line), "big.txt line %u", cases[k].later);
        if (strcmp(cases[k].state, "refused") == 0 && strstr(r.reason, line) == NULL)
            fail_msg("%s: %s", cases[k].gate, r.reason);
        fx_teardown_repo();
    }
}

static void test_rails_refuse_on_real_commits(void **state)
{
    (void)state;
    setup("", 1);
    git_oid c, rev, marked, dep, after, lines, mid, later, tier3_commit;
    push_around("postbad", "x\n", &c); /* red from here on */
    push_around("r.txt", "r\n", &rev);
    retell(&rev, "Revert \"something\"\n\nThis reverts commit 0123456789abcdef.\n");
    push_around("m.txt", "m\n", &marked);
    retell(&marked, "careful\n\nNo-Auto-Revert: true\n");
    push_around("dep.txt", "one\n", &dep);
    push_around("dep.txt", "two\n", &after);
    char big[128];
    lines_file(big, sizeof(big), 0, 0);
    push_around("big.txt", big, &lines);
    lines_file(big, sizeof(big), 10, 0);
    push_around("big.txt", big, &mid);
    lines_file(big, sizeof(big), 10, 13); /* 3 lines from the culprit's: near */
    push_around("big.txt", big, &later);
    push_around("t3.txt", "t\n", &tier3_commit);
    (void)fx_run_once();
    assert_string_equal(newest_long(), "failed");
    gate *g = fx_open();
    long long now = (long long)time(NULL);
    /* unverified: reported, never reverted */
    hand_over(g, &c, 1, false, now, "refused", "unverified");
    /* a revert of a revert: never */
    hand_over(g, &rev, 1, true, now, "refused", "revert");
    /* No-Auto-Revert: true */
    hand_over(g, &marked, 1, true, now, "refused", "no-auto-revert");
    /* a later commit changed its file: the revert would conflict */
    hand_over(g, &dep, 1, true, now, "refused", "dependent");
    /* the same file, lines near the culprit's: the revert applies, but later work may rely on it */
    hand_over(g, &mid, 1, true, now, "refused", "dependent");
    gate_backout_row r;
    row_of(g, &mid, &r);
    if (strstr(r.reason, "big.txt line 13") == NULL)
        fail_msg("dependent: %s", r.reason);
    hand_over(g, &tier3_commit, 3, true, now, "refused", "tier-3");
    gate_close(g);
    assert_int_equal(count_reverts(), 0);
    assert_int_equal(events("backout-refused"), 6);
    /* the refusal names the rail, the culprit and the people, each once */
    char like[GIT_OID_HEXSZ + 8];
    git_oid_tostr(like + 1, sizeof(like) - 1, &marked);
    like[0] = '%';
    const size_t past = 1 + (size_t)GIT_OID_HEXSZ; /* the '%' and the id */
    (void)snprintf(like + past, sizeof(like) - past, "%%");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'backout-refused' AND "
                                "detail LIKE '%\"rail\":\"no-auto-revert\"%' AND detail LIKE "
                                "'%\"blame\":[\"test <test@localhost>\"]%' AND detail LIKE ?",
                                like),
                     1);
}

/*
 * The people an event names: author and committer, each once, never more
 * than [gate] blame-max: at 1 the author alone, at the default both.
 * (Before: at most GATE_BACKOUT_BLAME_MAX, 3, whatever blame-max said.)
 */
static void test_blame_max(void **state)
{
    (void)state;
    static const struct {
        const char *gate, *blame;
    } cases[] = {{"blame-max = 1", "\"blame\":[\"ann <ann@x>\"]}"},
                 {"", "\"blame\":[\"ann <ann@x>\",\"bob <bob@x>\"]}"}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        setup(cases[k].gate, 1);
        git_oid c;
        push_around("postbad", "x\n", &c);
        retell(&c, "careful\n\nNo-Auto-Revert: true\n"); /* refused: an event, no revert */
        (void)fx_run_once();
        gate *g = fx_open();
        gate_backout_culprit bc;
        culprit_of(&c, 1, true, (long long)time(NULL), &bc);
        (void)snprintf(bc.author_name, sizeof(bc.author_name), "ann");
        (void)snprintf(bc.author_email, sizeof(bc.author_email), "ann@x");
        (void)snprintf(bc.committer_name, sizeof(bc.committer_name), "bob");
        (void)snprintf(bc.committer_email, sizeof(bc.committer_email), "bob@x");
        fx_ok(gate_backout_culprit_found(g, &bc, (long long)time(NULL)));
        assert_row_state(g, &c, "refused", "no-auto-revert");
        gate_close(g);
        char like[160];
        (void)snprintf(like, sizeof(like), "%%%s", cases[k].blame);
        if (fx_sql_int(
                "SELECT count(*) FROM events WHERE kind = 'backout-refused' AND detail LIKE ?",
                like) != 1)
            fail_msg("%s: no backout-refused event ending %s", cases[k].gate, cases[k].blame);
        fx_teardown_repo();
    }
}

static void test_budget_and_breaker(void **state)
{
    (void)state;
    setup("backout-budget = 1", 1);
    git_oid a, b, c;
    push_around("postbad", "a\n", &a);
    push_around("b.txt", "b\n", &b);
    push_around("c.txt", "c\n", &c);
    (void)fx_run_once();
    gate *g = fx_open();
    long long now = (long long)time(NULL);
    hand_over(g, &a, 1, true, now, "queued", "");        /* the budget's one */
    hand_over(g, &b, 1, true, now, "refused", "budget"); /* spent: the breaker opens */
    assert_int_equal(events("breaker-open"), 1);
    hand_over(g, &c, 1, true, now, "refused", "breaker"); /* open: a person decides */
    hand_over(g, &c, 1, true, now, "refused", "breaker"); /* told once */
    assert_int_equal(events("backout-refused"), 2);
    assert_int_equal(count_reverts(), 1);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    fx_ok(gate_backouts(g, f, false));
    assert_int_equal(fclose(f), 0);
    if (strstr(text, "circuit breaker OPEN on 'main'") == NULL)
        fail_msg("backouts:\n%s", text);
    free(text);
    /* keel-gate backouts --reset: closed, and the budget counts from the reset */
    bool was_open = false;
    fx_ok(gate_backout_reset(g, &was_open));
    assert_true(was_open);
    fx_ok(gate_backout_reset(g, &was_open));
    assert_false(was_open);
    assert_int_equal(events("breaker-closed"), 1);
    hand_over(g, &c, 1, true, now + 1, "queued", "");
    gate_close(g);
    assert_int_equal(count_reverts(), 2);
}

static void test_age_limit_proposes(void **state)
{
    (void)state;
    setup("backout-max-age = 1h", 1);
    git_oid a;
    push_around("postbad", "a\n", &a);
    (void)fx_run_once();
    gate *g = fx_open();
    long long now = (long long)time(NULL);
    hand_over(g, &a, 1, true, now + 2LL * 3600, "proposed", "age");
    gate_close(g);
    assert_int_equal(count_reverts(), 0);
    assert_int_equal(events("backout-proposed"), 1);
}

static void test_tier2_waits_for_a_fix_then_reverts(void **state)
{
    (void)state;
    setup("tier2-fix-time = 4h", 2);
    git_oid a, fixed;
    push_around("postbad", "x\n", &a);
    push_around("other.txt", "o\n", &fixed);
    (void)fx_run_once();
    gate *g = fx_open();
    long long t0 = (long long)time(NULL);
    hand_over(g, &a, 2, true, t0, "waiting", "tier-2-wait");
    fx_ok(gate_backout_turn(g, t0 + 3600)); /* the test clock: an hour later, still waiting */
    assert_row_state(g, &a, "waiting", "tier-2-wait");
    assert_int_equal(count_reverts(), 0);
    fx_ok(gate_backout_turn(g, t0 + 4LL * 3600 + 1)); /* no fix in 4 h: reverted */
    assert_row_state(g, &a, "queued", "");
    assert_int_equal(count_reverts(), 1);
    assert_int_equal(events("backout-waiting"), 1);
    gate_close(g);
}

static void test_tier2_fix_lands_no_revert(void **state)
{
    (void)state;
    setup("tier2-fix-time = 4h", 2);
    git_oid a, fix;
    push_around("postbad", "x\n", &a);
    (void)fx_run_once();
    gate *g = fx_open();
    long long t0 = (long long)time(NULL);
    hand_over(g, &a, 2, true, t0, "waiting", "tier-2-wait");
    gate_close(g);
    push_around("postbad", NULL, &fix); /* a person fixed it: the culprit's change undone */
    (void)fx_run_once();                /* its turns: the revert would change nothing */
    assert_string_equal(newest_long(), "passed");
    g = fx_open();
    fx_ok(gate_backout_turn(g, t0 + 5LL * 3600));
    assert_row_state(g, &a, "refused", "undone");
    gate_close(g);
    assert_int_equal(count_reverts(), 0);
}

/* ---- kill -9 at each step of a backout ------------------------------------------------ */
#if KEEL_DEVEL

static gate_backout_culprit crash_culprit;
static long long crash_now;

/* The child: hands the culprit over with fx_crash_spec's stress point on: it dies there. */
static void crashing_hand_over(void)
{
    keel_status s = keel_stress_enable(fx_crash_spec);
    if (!keel_ok(s))
        _exit(3);
    gate *g = fx_open();
    s = gate_backout_culprit_found(g, &crash_culprit, crash_now);
    keel_status_ignore(s, "the child is to die before it returns");
    _exit(4); /* the stress point never fired */
}

static void test_kill_at_each_step(void **state)
{
    (void)state;
    setup("", 1);
    git_oid red;
    push_around("postbad", "x\n", &red); /* the target red, not by these culprits */
    static const char *const points[] = {"gate.backout_after_intent", "gate.backout_after_branch",
                                         "gate.backout_after_submit"};
    enum { NPOINTS = sizeof(points) / sizeof(points[0]) };
    git_oid culprits[NPOINTS];
    for (size_t i = 0; i < NPOINTS; i++) {
        char name[16];
        (void)snprintf(name, sizeof(name), "f%zu.txt", i);
        push_around(name, "x\n", &culprits[i]);
    }
    (void)fx_run_once();
    long long now = (long long)time(NULL);
    for (size_t i = 0; i < NPOINTS; i++) {
        culprit_of(&culprits[i], 1, true, now, &crash_culprit);
        crash_now = now;
        fx_crash_spec = points[i];
        char out[4096];
        int status = keel_test_run_child(crashing_hand_over, out, sizeof(out));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
            fail_msg("%s: status %d: %s", points[i], status, out);
        gate *g = fx_open();
        assert_row_state(g, &culprits[i], "intended", "");
        /* handed over again (the search's kill too), and the loop's turn: carried on once */
        hand_over(g, &culprits[i], 1, true, now, "queued", "");
        fx_ok(gate_backout_turn(g, now));
        assert_row_state(g, &culprits[i], "queued", "");
        gate_close(g);
        assert_int_equal(count_reverts(), (long long)i + 1);
    }
    gate *g = fx_open();
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    fx_ok(gate_backout_turn(g, (long long)time(NULL)));
    for (size_t i = 0; i < NPOINTS; i++) {
        assert_row_state(g, &culprits[i], "landed", "");
        char name[16];
        (void)snprintf(name, sizeof(name), "f%zu.txt", i);
        assert_false(main_has(name));
        gate_backout_row r;
        row_of(g, &culprits[i], &r);
        char branch[40]; /* keel-gate/backout/<12 hex> */
        (void)snprintf(branch, sizeof(branch), "%.39s", r.branch);
        assert_int_equal(fx_times_landed(branch), 1); /* one revert each, landed once */
    }
    gate_close(g);
    assert_int_equal(count_reverts(), NPOINTS);
    assert_int_equal(events("backout-landed"), NPOINTS);
}

#endif

static void test_existing_revert_on_the_target_is_found(void **state)
{
    (void)state;
    setup("", 1);
    git_oid a, by_hand;
    push_around("postbad", "x\n", &a);
    push_around("postbad", NULL, &by_hand);
    char message[128], hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &a);
    (void)snprintf(message, sizeof(message), "Revert \"main\"\n\nThis reverts commit %s.\n", hex);
    retell(&by_hand, message);
    gate *g = fx_open();
    /* the intent a store restored from a backup would hold: carried on, finds the revert */
    gate_backout_row r;
    memset(&r, 0, sizeof(r));
    (void)snprintf(r.target, sizeof(r.target), "main");
    (void)snprintf(r.culprit, sizeof(r.culprit), "%s", hex);
    (void)snprintf(r.config, sizeof(r.config), "long");
    (void)snprintf(r.state, sizeof(r.state), "intended");
    r.tier = 1;
    r.verified = true;
    fx_ok(gate_store_backout_put(gate_get_store(g), &r, (long long)time(NULL), NULL, NULL));
    fx_ok(gate_backout_turn(g, (long long)time(NULL)));
    assert_row_state(g, &a, "landed", "");
    gate_close(g);
    assert_int_equal(count_reverts(), 0);
}

/*
 * A revert the gate rejects (its suite fails on it: the culprit had deleted
 * `bad`, which the revert brings back) is never made again: handed over
 * again, and at the loop's turns, the culprit stays `rejected` with the
 * gate's reason, and no second revert change is queued.
 */
static void test_rejected_revert_not_made_again(void **state)
{
    (void)state;
    setup("strategy = serial\nretries = 0", 1);
    git_oid with_bad, red, culprit;
    push_around("bad", "b\n", &with_bad);
    push_around("postbad", "x\n", &red); /* the target red (not by this culprit: handed over) */
    push_around("bad", NULL, &culprit);
    (void)fx_run_once();
    gate *g = fx_open();
    long long now = (long long)time(NULL);
    hand_over(g, &culprit, 1, true, now, "queued", "");
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    fx_ok(gate_backout_turn(g, now));
    assert_row_state(g, &culprit, "rejected", "");
    gate_backout_row r;
    row_of(g, &culprit, &r);
    if (strstr(r.reason, "the gate did not land the revert (rejected)") == NULL)
        fail_msg("rejected: %s", r.reason);
    hand_over(g, &culprit, 1, true, now + 60, "rejected", ""); /* the search's hand-over again */
    fx_ok(gate_backout_turn(g, now + 60));
    fx_ok(gate_run(g, true, &st));
    assert_row_state(g, &culprit, "rejected", "");
    gate_close(g);
    assert_int_equal(count_reverts(), 1);
    assert_int_equal(events("backout-queued"), 1);
    assert_int_equal(events("backout-rejected"), 1);
    assert_true(!main_has("bad"));
}

/* ---- hold-when-red -------------------------------------------------------------------- */

static void test_hold_when_red_holds_and_resumes(void **state)
{
    (void)state;
    /* the culprit is the first commit the post level sees (no earlier pass): red, and no
       culprit search can start, so no culprit is known until one is handed over below */
    char cfg[256];
    (void)snprintf(cfg, sizeof(cfg), long_config, 1u);
    fx_setup_repo("strategy = serial\nhold-when-red = yes", cfg);
    git_oid culprit;
    push_around("postbad", "x\n", &culprit);
    (void)fx_run_once();
    assert_string_equal(newest_long(), "failed");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM culprit_searches WHERE config = ?", "long"),
                     0);
    fx_branch("feature", "feature.txt", "f\n");
    gate *g = fx_open();
    long long id = fx_submit(g, "feature", 0);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_QUEUED); /* held: not tested on red */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE config = ?", "unit"), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    fx_ok(gate_status(g, f, 0));
    assert_int_equal(fclose(f), 0);
    if (strstr(text, "queue: held: tier-1 configuration 'long' is red") == NULL)
        fail_msg("status:\n%s", text);
    free(text);
    /* the culprit is known and its revert queued: the queue runs it, then the rest */
    hand_over(g, &culprit, 1, true, (long long)time(NULL), "queued", "");
    fx_ok(gate_run(g, true, &st));
    fx_ok(gate_backout_turn(g, (long long)time(NULL)));
    assert_row_state(g, &culprit, "landed", "");
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_LANDED);
    bool held = true;
    char why[GATE_REASON_MAX];
    fx_ok(gate_backout_hold(g, &held, why, sizeof(why)));
    assert_false(held);
    gate_close(g);
    assert_string_equal(newest_long(), "passed");
}

/*
 * Held while red, no culprit known; a fix is pushed to the target (no
 * backout): the post level builds it, the configuration is green again and
 * the queue resumes by itself, in the same run.
 */
static void test_hold_when_red_resumes_on_a_fix(void **state)
{
    (void)state;
    char cfg[256];
    (void)snprintf(cfg, sizeof(cfg), long_config, 1u);
    fx_setup_repo("strategy = serial\nhold-when-red = yes", cfg);
    git_oid culprit, fix;
    push_around("postbad", "x\n", &culprit);
    (void)fx_run_once();
    assert_string_equal(newest_long(), "failed");
    fx_branch("feature", "feature.txt", "f\n");
    gate *g = fx_open();
    long long id = fx_submit(g, "feature", 0);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_QUEUED); /* held */
    bool held = false;
    char why[GATE_REASON_MAX];
    fx_ok(gate_backout_hold(g, &held, why, sizeof(why)));
    assert_true(held);
    push_around("postbad", NULL, &fix); /* a person's fix, pushed around the gate */
    fx_ok(gate_run(g, true, &st));
    assert_string_equal(newest_long(), "passed");
    fx_ok(gate_backout_hold(g, &held, why, sizeof(why)));
    assert_false(held);
    assert_int_equal(fx_state_of(g, id), GATE_CHANGE_LANDED);
    gate_close(g);
    assert_int_equal(count_reverts(), 0);
    assert_int_equal(events("target-green"), 1);
    assert_true(main_has("feature.txt"));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_rails),
        cmocka_unit_test(test_policy_message),
        cmocka_unit_test(test_config_keys),
        cmocka_unit_test_teardown(test_verified_culprit_reverted_through_the_gate, fx_teardown),
        cmocka_unit_test_teardown(test_gate_merge_reverted_against_its_first_parent, fx_teardown),
        cmocka_unit_test_teardown(test_rails_refuse_on_real_commits, fx_teardown),
        cmocka_unit_test_teardown(test_later_change_elsewhere_in_the_file, fx_teardown),
        cmocka_unit_test_teardown(test_revert_near_setting, fx_teardown),
        cmocka_unit_test_teardown(test_blame_max, fx_teardown),
        cmocka_unit_test_teardown(test_budget_and_breaker, fx_teardown),
        cmocka_unit_test_teardown(test_age_limit_proposes, fx_teardown),
        cmocka_unit_test_teardown(test_tier2_waits_for_a_fix_then_reverts, fx_teardown),
        cmocka_unit_test_teardown(test_tier2_fix_lands_no_revert, fx_teardown),
#if KEEL_DEVEL
        cmocka_unit_test_teardown(test_kill_at_each_step, fx_teardown),
#endif
        cmocka_unit_test_teardown(test_existing_revert_on_the_target_is_found, fx_teardown),
        cmocka_unit_test_teardown(test_rejected_revert_not_made_again, fx_teardown),
        cmocka_unit_test_teardown(test_hold_when_red_holds_and_resumes, fx_teardown),
        cmocka_unit_test_teardown(test_hold_when_red_resumes_on_a_fix, fx_teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
