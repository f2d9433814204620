/*
 * test_gate_flows_run.c - branch flows running in real gates (issue 18):
 * real repositories, real gate runs (one gate per branch, one store): a
 * two-way sync of main and comp/net over many commits, a product branch fed
 * from main that never merges back, a conflict that blocks the flow and
 * reminds exactly the authors who touched the path (on a test clock), a
 * developer's resolution that unblocks it, a merge rejected by the
 * destination's tests, and kill -9 at the flow's stress points.
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
#include "flows_turn.h"
#include "store_culprit.h"

enum { DAY = 86400 };

/*
 * The fixture's repository, with main's configuration replaced by one
 * without `target` (each gate names its own) and with `flows`.
 */
static void setup_flows(const char *flows, const char *ci)
{
    fx_setup_repo("", "");
    char conf[2048];
    (void)snprintf(conf, sizeof(conf),
                   "[gate]\nslots = 2\nnotify = tee -a %s/events.jsonl\n"
                   "[config unit]\ntest = sh ci.sh\nenv = MARKER=%s/marker\ntimeout = 30\n"
                   "writable = %s\n%s",
                   fx_dir, fx_shared, fx_shared, flows);
    const fx_file f[] = {{".keel/gate.conf", conf}, {"ci.sh", ci != NULL ? ci : "test ! -e bad\n"}};
    git_oid base = fx_base;
    fx_commit(&base, f, 2, "main", &fx_base);
}

static void run_target(const char *target)
{
    gate *g = fx_open_target(target);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    gate_close(g);
}

/* A commit by `author` (Name, address Name@example.org) on `branch`'s tip setting `path`. */
static void commit_as(const char *branch, const char *author, const char *path, const char *text,
                      git_oid *out)
{
    git_oid tip;
    fx_head(branch, &tip);
    const fx_file f[] = {{path, text}};
    fx_commit_by(author, &tip, f, 1, branch, out);
}

/* Does `branch`'s history hold `commit`? */
static bool holds(const char *branch, const git_oid *commit)
{
    git_oid tip;
    fx_head(branch, &tip);
    return git_oid_equal(&tip, commit) || git_graph_descendant_of(fx_git, &tip, commit) == 1;
}

static void new_branch(const char *branch, const git_oid *at)
{
    char ref[160];
    (void)snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    git_reference *r = NULL;
    assert_int_equal(git_reference_create(&r, fx_git, ref, at, 1, "test"), 0);
    git_reference_free(r);
}

/* The lines of the hook's log (events.jsonl) holding `a` and `b` (NULL: any). */
static int hook_lines(const char *a, const char *b)
{
    char path[160];
    (void)snprintf(path, sizeof(path), "%s/events.jsonl", fx_dir);
    static char text[1 << 18];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t got = fread(text, 1, sizeof(text) - 1, f);
    (void)fclose(f);
    text[got] = '\0';
    int n = 0;
    for (char *line = text; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        n += strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL);
        line = nl != NULL ? nl + 1 : NULL;
    }
    return n;
}

/* The notifier delivers on a thread of its own: wait (bounded) for `n` lines. */
static int hook_lines_soon(const char *a, const char *b, int n)
{
    int got = hook_lines(a, b);
    for (int i = 0; got < n && i < 400; i++) {
        struct timespec ts = {0, 25 * 1000000L};
        (void)nanosleep(&ts, NULL);
        got = hook_lines(a, b);
    }
    return got;
}

static long long count_events(const char *kind)
{
    return fx_sql_int("SELECT count(*) FROM events WHERE kind = ?", kind);
}

/* `keel-gate status` (json: --json; flows: `keel-gate flows`) of main's gate, as text. */
static const char *status_of(bool json, bool flows)
{
    static char text[1 << 16];
    gate *g = fx_open_target("main");
    FILE *f = fmemopen(text, sizeof(text), "w");
    assert_non_null(f);
    if (flows)
        fx_ok(gate_flows_show(g, f, json));
    else
        fx_ok(gate_status(g, f, json ? GATE_STATUS_JSON : 0));
    (void)fclose(f);
    gate_close(g);
    return text;
}

/*
 * main <-> comp/net over 50 commits on each side (5 rounds of 10), a gate
 * per branch: each round's merges land once each, both branches end up
 * holding every commit of the other, and the syncs stop when there is
 * nothing new (no merge of a sync merge back and forth).
 */
static void test_two_way_sync(void **state)
{
    (void)state;
    setup_flows("[flow comp/net -> main]\nback-merge = yes\n", NULL);
    new_branch("comp/net", &fx_base);
    enum { ROUNDS = 5, PER = 10 };
    git_oid made[2][ROUNDS * PER];
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < PER; k++) {
            char path[64];
            (void)snprintf(path, sizeof(path), "main-%d-%d.txt", r, k);
            commit_as("main", "Ann", path, "m\n", &made[0][r * PER + k]);
            (void)snprintf(path, sizeof(path), "net-%d-%d.txt", r, k);
            commit_as("comp/net", "Bob", path, "n\n", &made[1][r * PER + k]);
        }
        run_target("main");
        run_target("comp/net");
    }
    run_target("main"); /* the last round's comp/net sync back: nothing new, nothing made */
    run_target("comp/net");
    for (int i = 0; i < ROUNDS * PER; i++) {
        assert_true(holds("main", &made[1][i]));
        assert_true(holds("comp/net", &made[0][i]));
    }
    /* every flow merge landed once; nothing left queued or blocked */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM (SELECT head FROM changes WHERE state = ? "
                                "GROUP BY head HAVING count(*) > 1)",
                                "landed"),
                     0);
    long long to_main = fx_sql_int("SELECT count(*) FROM changes WHERE state = 'landed' AND "
                                   "branch = ?",
                                   "keel-gate/flow/comp+net-to-main");
    long long to_net = fx_sql_int("SELECT count(*) FROM changes WHERE state = 'landed' AND "
                                  "branch = ?",
                                  "keel-gate/flow/main-to-comp+net");
    assert_int_equal(to_main, ROUNDS);
    assert_int_equal(to_net, ROUNDS);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state <> ?", "landed"), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM flows WHERE state <> ?", "idle"), 0);
    assert_int_equal(count_events("flow-landed"), 2 * ROUNDS);
    assert_int_equal(hook_lines_soon("\"event\":\"flow-landed\"", "comp/net -> main", ROUNDS),
                     ROUNDS);
    /* nothing waits either way: comp/net's sync merges of main bring nothing of their own */
    assert_non_null(
        strstr(status_of(false, false), "  comp/net -> main: idle, 0 commit(s) waiting\n"));
    assert_non_null(
        strstr(status_of(false, false), "  main -> comp/net: idle, 0 commit(s) waiting\n"));
}

/* A product branch fed from main takes main's commits and never merges back into main. */
static void test_product_branch_never_merges_back(void **state)
{
    (void)state;
    setup_flows("[flow main -> release/2.1]\n", NULL);
    new_branch("release/2.1", &fx_base);
    git_oid m1, r1, m2;
    commit_as("main", "Ann", "feature.c", "f\n", &m1);
    commit_as("release/2.1", "Rel", "hotfix.c", "h\n", &r1);
    run_target("release/2.1");
    run_target("main");
    commit_as("main", "Ann", "feature2.c", "f2\n", &m2);
    run_target("release/2.1");
    run_target("main");
    assert_true(holds("release/2.1", &m1));
    assert_true(holds("release/2.1", &m2));
    assert_false(holds("main", &r1)); /* never merged back */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE target = ?", "main"), 0);
    assert_int_equal(
        fx_sql_int("SELECT count(*) FROM changes WHERE state = 'landed' AND target = ?",
                   "release/2.1"),
        2);
}

/* A developer's merge of both tips, pushed to the flow branch: `a.c` resolved. */
static void push_resolution_text(const char *flow_branch, const char *from, const char *to,
                                 const char *text);

static void push_resolution(const char *flow_branch, const char *from, const char *to)
{
    push_resolution_text(flow_branch, from, to, "both\n");
}

/* push_resolution with a.c's (and b.c's) text `text`. */
static void push_resolution_text(const char *flow_branch, const char *from, const char *to,
                                 const char *text)
{
    git_oid tips[2];
    fx_head(to, &tips[0]);
    fx_head(from, &tips[1]);
    git_commit *pc[2] = {NULL, NULL};
    git_tree *ptree = NULL;
    for (int i = 0; i < 2; i++)
        assert_int_equal(git_commit_lookup(&pc[i], fx_git, &tips[i]), 0);
    assert_int_equal(git_commit_tree(&ptree, pc[0]), 0);
    git_tree_update up[2];
    memset(up, 0, sizeof(up));
    const char *paths[2] = {"a.c", "b.c"}; /* b.c: the source's own file, brought along */
    for (int i = 0; i < 2; i++) {
        up[i].action = GIT_TREE_UPDATE_UPSERT;
        assert_int_equal(git_blob_create_from_buffer(&up[i].id, fx_git, text, strlen(text)), 0);
        up[i].filemode = GIT_FILEMODE_BLOB;
        up[i].path = paths[i];
    }
    git_oid tree_id, id;
    assert_int_equal(git_tree_create_updated(&tree_id, fx_git, ptree, 2, up), 0);
    git_tree *tree = NULL;
    assert_int_equal(git_tree_lookup(&tree, fx_git, &tree_id), 0);
    git_signature *sig = NULL;
    assert_int_equal(git_signature_now(&sig, "Bob", "Bob@example.org"), 0);
    const git_commit *parents[2] = {pc[0], pc[1]};
    assert_int_equal(
        git_commit_create(&id, fx_git, NULL, sig, sig, NULL, "resolved", tree, 2, parents), 0);
    new_branch(flow_branch, &id);
    git_signature_free(sig);
    git_tree_free(tree);
    git_tree_free(ptree);
    git_commit_free(pc[0]);
    git_commit_free(pc[1]);
}

static void flows_turn_at(long long now)
{
    gate *g = fx_open();
    bool queued = false;
    fx_ok(gate_flows_turn(g, now, &queued));
    assert_false(queued);
    gate_close(g);
}

/*
 * comp/net and main both change a.c: the flow is blocked, and exactly Ann
 * and Bob (who touched a.c), not Dan nor Eve, are told, with the path and the
 * command; reminders and the escalation come on the test clock; a
 * developer's resolution pushed to the flow branch lands and unblocks it.
 */
static void test_conflict_reminds_the_authors(void **state)
{
    (void)state;
    setup_flows("[flow comp/net -> main]\nowner = Olga Owner <olga@example.org>\n"
                "remind = 1d 2d\nescalate-after = 2\n",
                NULL);
    new_branch("comp/net", &fx_base);
    git_oid x;
    commit_as("main", "Ann", "a.c", "main's\n", &x);
    commit_as("main", "Dan", "d.c", "dan\n", &x);
    commit_as("comp/net", "Bob", "a.c", "comp's\n", &x);
    commit_as("comp/net", "Eve", "e.c", "eve\n", &x);
    commit_as("comp/net", "Bob", "b.c", "b\n", &x);
    run_target("main");
    assert_int_equal(count_events("flow-blocked"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM flows WHERE state = ?", "blocked"), 1);
    assert_int_equal(hook_lines_soon("\"event\":\"flow-blocked\"", "\"paths\":[\"a.c\"]", 1), 1);
    assert_int_equal(hook_lines("\"event\":\"flow-blocked\"", "\"address\":\"Ann@example.org\""),
                     1);
    assert_int_equal(hook_lines("\"event\":\"flow-blocked\"", "\"address\":\"Bob@example.org\""),
                     1);
    assert_int_equal(hook_lines("Dan@example.org", NULL), 0);
    assert_int_equal(hook_lines("Eve@example.org", NULL), 0);
    assert_int_equal(hook_lines("\"event\":\"flow-blocked\"", "git merge origin/comp/net"), 1);
    /* status: the flow's line, blocked since when and why */
    assert_non_null(
        strstr(status_of(false, false), "flows (1):\n  comp/net -> main: blocked for "));
    assert_non_null(strstr(status_of(false, false), ": merge conflict: a.c (0 reminder(s))\n"));
    assert_non_null(strstr(status_of(true, false),
                           ",\"flows\":[{\"from\":\"comp/net\",\"to\":\"main\","
                           "\"state\":\"blocked\","));
    assert_non_null(strstr(status_of(true, false), "\"why\":\"merge conflict: a.c\"}]"));
    /* keel-gate flows: one line each (a newline inside one call came out escaped) */
    assert_non_null(strstr(status_of(false, true), "comp/net -> main: blocked\n  comp/net "));
    assert_non_null(strstr(status_of(false, true), "\n  blocked since "));

    /* the test clock: reminder 1 a day after, 2 two days after that, then the escalation */
    long long t0 = fx_sql_int("SELECT blocked_since FROM flows WHERE dst = ?", "main");
    flows_turn_at(t0 + DAY - 1);
    assert_int_equal(count_events("flow-reminder"), 0);
    flows_turn_at(t0 + DAY);
    flows_turn_at(t0 + DAY); /* replayed: told once */
    assert_int_equal(count_events("flow-reminder"), 1);
    flows_turn_at(t0 + 3LL * DAY);
    assert_int_equal(count_events("flow-reminder"), 2);
    assert_int_equal(count_events("flow-escalated"), 0);
    flows_turn_at(t0 + 5LL * DAY);
    assert_int_equal(count_events("flow-escalated"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'flow-escalated' AND "
                                "json_extract(detail, '$.owner') = ?",
                                "Olga Owner <olga@example.org>"),
                     1);
    assert_int_equal(count_events("flow-unblocked"), 0);

    /* the developer's resolution: queued, tested, landed; the flow resumes */
    push_resolution("keel-gate/flow/comp+net-to-main", "comp/net", "main");
    run_target("main");
    assert_int_equal(count_events("flow-unblocked"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM flows WHERE state = ?", "idle"), 1);
    assert_int_equal(fx_times_landed("keel-gate/flow/comp+net-to-main"), 1);
    fx_head("comp/net", &x);
    assert_true(holds("main", &x));
    assert_int_equal(hook_lines_soon("\"event\":\"flow-unblocked\"", NULL, 1), 1);
    assert_non_null(
        strstr(status_of(false, false), "  comp/net -> main: idle, 0 commit(s) waiting\n"));
    /* the events' merge: none while a conflict blocked it, then the resolution that landed */
    char hex[GIT_OID_HEXSZ + 1];
    fx_head("keel-gate/flow/comp+net-to-main", &x);
    git_oid_tostr(hex, sizeof(hex), &x);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind IN ('flow-blocked', "
                                "'flow-reminder', 'flow-escalated') AND "
                                "json_extract(detail, '$.merge') = ?",
                                ""),
                     4);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'flow-unblocked' AND "
                                "json_extract(detail, '$.merge') = ?",
                                hex),
                     1);
    /* a new commit on comp/net flows again, as before */
    commit_as("comp/net", "Eve", "e2.c", "e2\n", &x);
    run_target("main");
    assert_true(holds("main", &x));
    /* a conflict after a sync: no merge either (not the last sync's) */
    commit_as("main", "Ann", "a.c", "main's again\n", &x);
    commit_as("comp/net", "Bob", "a.c", "comp's again\n", &x);
    run_target("main");
    assert_int_equal(count_events("flow-blocked"), 2);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'flow-blocked' AND "
                                "json_extract(detail, '$.merge') = ?",
                                ""),
                     2);
}

/*
 * A merge that passes on each side but fails main's tests (main's ci.sh
 * refuses x.txt, which comp/net adds): rejected, the flow blocked, Bob (who
 * brought x.txt) told; Bob's fix on the flow branch lands and unblocks it.
 */
static void test_rejected_merge_blocks(void **state)
{
    (void)state;
    setup_flows("[flow comp/net -> main]\n", "test ! -e bad\n");
    new_branch("comp/net", &fx_base);
    git_oid x;
    commit_as("comp/net", "Bob", "x.txt", "x\n", &x);
    commit_as("main", "Ann", "ci.sh", "test ! -e bad && test ! -e x.txt\n", &x);
    run_target("main");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = ?", "rejected"), 1);
    assert_int_equal(count_events("flow-blocked"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'flow-blocked' AND "
                                "json_extract(detail, '$.people[0].address') = ?",
                                "Bob@example.org"),
                     1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'flow-blocked' AND "
                                "detail LIKE ?",
                                "%Ann@%"),
                     0);
    /* no culprit search ran: the authors of the commits the merge brings, said so */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'flow-blocked' AND "
                                "json_extract(detail, '$.why') = 'test-failure' AND "
                                "json_extract(detail, '$.people_from') = ?",
                                "merge-authors"),
                     1);
    /* Bob fixes it on the flow branch (on top of the gate's merge) */
    git_oid fix;
    commit_as("keel-gate/flow/comp+net-to-main", "Bob", "x.txt", NULL, &fix); /* removed */
    run_target("main");
    assert_int_equal(count_events("flow-unblocked"), 1);
    assert_true(holds("main", &fix));
}

/*
 * A culprit search on comp/net (its post level, in the same store) verified
 * Carol's commit as what broke `unit` there.  The flow's merge brings
 * Alice's, Carol's and Dave's commits and fails main's `unit`: only Carol is
 * told (why test-failure, from the culprit search), and reminded so; Alice
 * and Dave, whose commits the merge also brings, are not.
 */
static void test_rejected_merge_reminds_the_culprit(void **state)
{
    (void)state;
    setup_flows("[flow comp/net -> main]\nremind = 1d\n", "test ! -e bad\n");
    new_branch("comp/net", &fx_base);
    git_oid line[4], x;
    line[0] = fx_base;
    commit_as("comp/net", "Alice", "a.txt", "a\n", &line[1]);
    commit_as("comp/net", "Carol", "x.txt", "x\n", &line[2]);
    commit_as("comp/net", "Dave", "d.txt", "d\n", &line[3]);
    commit_as("main", "Ann", "ci.sh", "test ! -e bad && test ! -e x.txt\n", &x);
    /* the search's verdict, as comp/net's post level records it */
    char range[4][GATE_OID_HEX];
    for (int i = 0; i < 4; i++)
        git_oid_tostr(range[i], sizeof(range[i]), &line[i]);
    gate *g = fx_open_target("comp/net");
    gate_store *st = gate_get_store(g);
    long long id = 0;
    fx_ok(gate_store_search_new_range(st, "comp/net", "unit", 1, "post", range, 4, 0.01, 1, &id));
    fx_ok(gate_store_search_set(st, id, "verified", range[2], "2 failed, 1 passed", false, NULL,
                                NULL, 2));
    gate_close(g);

    run_target("main");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = ?", "rejected"), 1);
    assert_int_equal(count_events("flow-blocked"), 1);
    static const char told[] = "SELECT count(*) FROM events WHERE kind = ? AND "
                               "json_array_length(detail, '$.people') = 1 AND "
                               "json_extract(detail, '$.people[0].address') = 'Carol@example.org' "
                               "AND json_extract(detail, '$.why') = 'test-failure' AND "
                               "json_extract(detail, '$.people_from') = 'culprit-search'";
    assert_int_equal(fx_sql_int(told, "flow-blocked"), 1);
    assert_int_equal(hook_lines_soon("\"event\":\"flow-blocked\"", "Carol@example.org", 1), 1);
    assert_int_equal(hook_lines("Alice@example.org", NULL) + hook_lines("Dave@example.org", NULL),
                     0);
    long long t0 = fx_sql_int("SELECT blocked_since FROM flows WHERE dst = ?", "main");
    flows_turn_at(t0 + DAY);
    assert_int_equal(fx_sql_int(told, "flow-reminder"), 1);
    assert_int_equal(count_events("flow-reminder"), 1);
}

/* The fixture of the flow's own culprit search: comp/net brings Alice's, Carol's, Dave's. */
static char carol_hex[GIT_OID_HEXSZ + 1]; /* Carol's commit (setup_search) */

static void setup_search(void)
{
    setup_flows("[flow comp/net -> main]\nremind = 1d\n", "test ! -e bad\n");
    new_branch("comp/net", &fx_base);
    git_oid c;
    commit_as("comp/net", "Alice", "a.txt", "a\n", &c);
    commit_as("comp/net", "Carol", "x.txt", "x\n", &c); /* passes alone; main's ci.sh refuses it */
    git_oid_tostr(carol_hex, sizeof(carol_hex), &c);
    commit_as("comp/net", "Dave", "d.txt", "d\n", &c);
    commit_as("main", "Ann", "ci.sh", "test ! -e bad && test ! -e x.txt\n", &c);
}

/* Events of `kind` told to exactly one person, at `address`, whose people come `from`. */
static long long told_only(const char *kind, const char *address, const char *from)
{
    char sql[512];
    (void)snprintf(sql, sizeof(sql),
                   "SELECT count(*) FROM events WHERE kind = ? AND "
                   "json_array_length(detail, '$.people') = 1 AND "
                   "json_extract(detail, '$.people[0].address') = '%s' AND "
                   "json_extract(detail, '$.people_from') = '%s'",
                   address, from);
    return fx_sql_int(sql, kind);
}

/* What the flow's own search must leave: one search, Carol verified, told once after the block. */
static void assert_searched_once(void)
{
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = ?", "rejected"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM culprit_searches WHERE level = ?", "flow"),
                     1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM culprit_searches WHERE level = 'flow' AND "
                                "state = ? AND handed = 1",
                                "verified"),
                     1);
    assert_int_equal(count_events("culprit-verified"), 1);
    assert_int_equal(count_events("flow-blocked"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'flow-blocked' AND "
                                "json_array_length(detail, '$.people') = 3 AND "
                                "json_extract(detail, '$.people_from') = ?",
                                "merge-authors"),
                     1);
    assert_int_equal(count_events("flow-reminder"), 1);
    assert_int_equal(told_only("flow-reminder", "Carol@example.org", "culprit-search"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind LIKE ?", "backout-%"),
                     0); /* not on main: nothing backed out */
}

/*
 * A merge rejected by main's tests whose source (comp/net) has no culprit
 * search of its own: the gate searches what the merge brings (main's tip
 * merged with each of comp/net's commits), verifies Carol's, and the
 * flow-blocked told to the merge's three authors is followed by a reminder
 * to Carol alone; the reminders after it go to her.
 */
static void test_rejected_merge_searches_the_culprit(void **state)
{
    (void)state;
    setup_search();
    run_target("main");
    assert_searched_once();
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'culprit-verified' AND "
                                "json_extract(detail, '$.author') = ?",
                                "Carol <Carol@example.org>"),
                     1);
    /* named by Carol's commit, not by the merge of main and it that the search built */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'culprit-verified' AND "
                                "json_extract(detail, '$.commit') = ?",
                                carol_hex),
                     1);
    assert_int_equal(hook_lines_soon("\"event\":\"flow-reminder\"", "Carol@example.org", 1), 1);
    assert_int_equal(hook_lines("flow-reminder", "Alice@example.org") +
                         hook_lines("flow-reminder", "Dave@example.org"),
                     0);
    long long told = fx_sql_int("SELECT last_told FROM flows WHERE dst = ?", "main");
    flows_turn_at(told + DAY);
    assert_int_equal(told_only("flow-reminder", "Carol@example.org", "culprit-search"), 2);
    assert_int_equal(count_events("flow-reminder"), 2);
    run_target("main"); /* nothing new: no second search, nobody told again */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM culprit_searches WHERE level = ?", "flow"),
                     1);
    assert_int_equal(count_events("flow-reminder"), 2);
}

/*
 * The pre-merge level: main's configuration `premerge` (levels = pre-merge)
 * refuses a file named pm-bad.  comp/net adds it: the flow's merge passes
 * `unit` but fails `premerge`, is rejected and the flow blocked.  An
 * ordinary change adding pm-bad to main is not tested at pre-merge: it lands.
 */
static void test_pre_merge_level(void **state)
{
    (void)state;
    setup_flows("[flow comp/net -> main]\n"
                "[config premerge]\ntest = test ! -e pm-bad\nlevels = pre-merge\n",
                NULL);
    new_branch("comp/net", &fx_base);
    git_oid x;
    commit_as("comp/net", "Bob", "pm-bad", "x\n", &x);
    run_target("main");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = 'rejected' AND "
                                "branch = ?",
                                "keel-gate/flow/comp+net-to-main"),
                     1);
    assert_int_equal(count_events("flow-blocked"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM flows WHERE state = ?", "blocked"), 1);
    assert_false(holds("main", &x));
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'flow-blocked' AND "
                                "detail LIKE ?",
                                "%premerge%"),
                     1);
    /* an ordinary change that would fail `premerge`: not run at pre-merge, it lands */
    fx_branch("plain", "pm-bad", "y\n");
    gate *g = fx_open_target("main");
    (void)fx_submit(g, "plain", 0);
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    gate_close(g);
    assert_int_equal(fx_times_landed("plain"), 1);
}

/* The text of `path` at `branch`'s tip ("" when it has none). */
static const char *text_at(const char *branch, const char *path)
{
    static char text[256];
    git_oid tip;
    fx_head(branch, &tip);
    git_commit *c = NULL;
    git_tree *tree = NULL;
    git_tree_entry *e = NULL;
    git_blob *b = NULL;
    text[0] = '\0';
    assert_int_equal(git_commit_lookup(&c, fx_git, &tip), 0);
    assert_int_equal(git_commit_tree(&tree, c), 0);
    if (git_tree_entry_bypath(&e, tree, path) == 0 &&
        git_blob_lookup(&b, fx_git, git_tree_entry_id(e)) == 0)
        (void)snprintf(text, sizeof(text), "%.*s", (int)git_blob_rawsize(b),
                       (const char *)git_blob_rawcontent(b));
    git_blob_free(b);
    git_tree_entry_free(e);
    git_tree_free(tree);
    git_commit_free(c);
    return text;
}

/*
 * Recorded resolutions: comp/net flows into main and into next (a branch
 * at main's tip), and both conflict with it on a.c the same way.  Into
 * main: blocked, a developer's resolution lands and is recorded.  Into
 * next: the same conflict, resolved from the record without a person (no
 * flow-blocked), said (flow-reused), tested and landed.
 */
static void test_recorded_resolution_reused(void **state)
{
    (void)state;
    setup_flows("[flow comp/net -> main]\n[flow comp/net -> next]\n", NULL);
    new_branch("comp/net", &fx_base);
    git_oid x, comp;
    commit_as("main", "Ann", "a.c", "main's\n", &x);
    new_branch("next", &x);
    commit_as("comp/net", "Bob", "a.c", "comp's\n", &comp);
    run_target("main");
    assert_int_equal(count_events("flow-blocked"), 1);
    push_resolution("keel-gate/flow/comp+net-to-main", "comp/net", "main");
    run_target("main");
    assert_int_equal(count_events("flow-unblocked"), 1);
    assert_true(holds("main", &comp));
    assert_int_equal(fx_sql_int("SELECT count(*) FROM flow_resolutions WHERE path = ?", "a.c"), 1);

    run_target("next");
    assert_int_equal(count_events("flow-blocked"), 1); /* main's only: nobody told for next */
    assert_int_equal(count_events("flow-reused"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'flow-reused' AND "
                                "json_extract(detail, '$.why') = ?",
                                "recorded resolution reused for a.c"),
                     1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = 'landed' AND "
                                "branch = ?",
                                "keel-gate/flow/comp+net-to-next"),
                     1);
    assert_true(holds("next", &comp));
    assert_string_equal(text_at("next", "a.c"), "both\n");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM flows WHERE state = ?", "idle"), 2);
    assert_int_equal(hook_lines_soon("\"event\":\"flow-reused\"", "comp/net -> next", 1), 1);
}

/*
 * Recorded resolutions matched on the conflict's hunks (as git's rerere):
 * comp/net and main change line 2 of a.c; a developer's resolution lands
 * into main.  Into next (main's line 2, and line 7 changed too: the three
 * blobs differ) the same hunks: the resolution is carried over (line 2
 * resolved, line 7 kept), said, tested and landed.  Into other (line 2
 * changed another way: a different conflict): blocked.
 */
static void test_resolution_reused_on_its_hunks(void **state)
{
    (void)state;
    setup_flows("[flow comp/net -> main]\n[flow comp/net -> next]\n[flow comp/net -> other]\n",
                NULL);
    git_oid base, x, comp;
    commit_as("main", "Root", "a.c", "1\n2\n3\n4\n5\n6\n7\n8\n", &base);
    new_branch("comp/net", &base);
    new_branch("other", &base);
    commit_as("main", "Ann", "a.c", "1\nmain\n3\n4\n5\n6\n7\n8\n", &x);
    new_branch("next", &x);
    commit_as("next", "Ann", "a.c", "1\nmain\n3\n4\n5\n6\nnext\n8\n", &x); /* elsewhere */
    commit_as("other", "Eve", "a.c", "1\nother\n3\n4\n5\n6\n7\n8\n", &x);  /* another conflict */
    commit_as("comp/net", "Bob", "a.c", "1\ncomp\n3\n4\n5\n6\n7\n8\n", &comp);
    run_target("main");
    assert_int_equal(count_events("flow-blocked"), 1);
    push_resolution_text("keel-gate/flow/comp+net-to-main", "comp/net", "main",
                         "1\nboth\n3\n4\n5\n6\n7\n8\n");
    run_target("main");
    assert_int_equal(count_events("flow-unblocked"), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM flow_resolution_hunks WHERE path = ?", "a.c"),
                     1);

    run_target("next");
    assert_int_equal(count_events("flow-blocked"), 1); /* main's only */
    assert_int_equal(count_events("flow-reused"), 1);
    assert_true(holds("next", &comp));
    assert_string_equal(text_at("next", "a.c"), "1\nboth\n3\n4\n5\n6\nnext\n8\n");

    run_target("other");
    assert_int_equal(count_events("flow-reused"), 1); /* not for a different conflict */
    assert_int_equal(count_events("flow-blocked"), 2);
    assert_false(holds("other", &comp));
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'flow-blocked' AND "
                                "json_extract(detail, '$.to') = ?",
                                "other"),
                     1);
}

#if KEEL_DEVEL
/* A gate run in a child, killed at stress `point` as kill -9 would (exit 99). */
static void crash_at(const char *point)
{
    fx_crash_spec = point;
    char out[4096];
    int status = keel_test_run_child(fx_crashing_run, out, sizeof(out));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
        fail_msg("%s: status %d: %s", point, status, out);
}

/*
 * kill -9 after the merge (not queued yet) and after the submission (the
 * flow's state not saved): the next run merges or takes what was queued,
 * and the merge lands once.
 */
static void test_kill_at_flow_points(void **state)
{
    (void)state;
    static const char *const points[] = {"gate.flow_after_merge", "gate.flow_after_submit"};
    for (size_t i = 0; i < 2; i++) {
        setup_flows("[flow comp/net -> main]\n", NULL);
        new_branch("comp/net", &fx_base);
        git_oid x;
        commit_as("comp/net", "Bob", "n.txt", "n\n", &x);
        crash_at(points[i]);
        run_target("main");
        assert_true(holds("main", &x));
        assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE branch = ?",
                                    "keel-gate/flow/comp+net-to-main"),
                         1); /* queued once */
        assert_int_equal(fx_times_landed("keel-gate/flow/comp+net-to-main"), 1);
        assert_int_equal(count_events("flow-landed"), 1);
        run_target("main");
        assert_int_equal(count_events("flow-landed"), 1);
        fx_teardown_repo();
    }
}

/*
 * kill -9 around the flow's own culprit search: after it is recorded (the
 * flow's block not yet saved), at its builds and its verdict, and around the
 * reminder naming the culprit (the second thing the flow tells): the next
 * run leaves one search, one verdict, one flow-blocked and one reminder to
 * Carol alone.
 */
static void test_kill_around_flow_search(void **state)
{
    (void)state;
    static const char *const points[] = {
        "gate.flow_after_search",  "gate.flow_before_told:nth=2",
        "gate.search_after_start", "gate.search_before_verdict:nth=2",
        "gate.search_before_hand", "gate.flow_after_told:nth=2"};
    size_t n = sizeof(points) / sizeof(points[0]);
#ifdef KEEL_TEST_UNDER_TSAN /* the flow's own two (the search's run the same code; 49 s for all) */
    n = 2;
    (void)fprintf(
        stderr, "under ThreadSanitizer: the kills at %s and %s only (devel and ASan run all six)\n",
        points[0], points[1]);
#endif
    for (size_t i = 0; i < n; i++) {
        setup_search();
        crash_at(points[i]);
        run_target("main");
        assert_searched_once();
        fx_teardown_repo();
    }
}

static long long told_at; /* the clock of told_child's turn */

/* A child's body: one turn of the flows at told_at, killed by fx_crash_spec (exit 99). */
static void told_child(void)
{
    if (!keel_ok(keel_stress_enable(fx_crash_spec)))
        _exit(3);
    gate *g = fx_open();
    bool queued = false;
    keel_status s = gate_flows_turn(g, told_at, &queued);
    keel_status_ignore(s, "the child is to die before it returns");
    _exit(4); /* the stress point never fired */
}

/*
 * kill -9 around what a flow tells (a conflict's notice, then its first
 * reminder on the test clock), before and after the transaction that saves
 * it with the flow's state: each is recorded exactly once, by the turn
 * after the kill when it died before, never again when it died after.
 */
static void test_kill_around_reminders(void **state)
{
    (void)state;
    static const char *const points[] = {"gate.flow_before_told", "gate.flow_after_told"};
    for (size_t i = 0; i < 2; i++) {
        setup_flows("[flow comp/net -> main]\nremind = 1d\n", NULL);
        new_branch("comp/net", &fx_base);
        git_oid x;
        commit_as("main", "Ann", "a.c", "main's\n", &x);
        commit_as("comp/net", "Bob", "a.c", "comp's\n", &x);
        told_at = 1000000;
        fx_crash_spec = points[i];
        char out[4096];
        int status = keel_test_run_child(told_child, out, sizeof(out)); /* the conflict's notice */
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
            fail_msg("%s: status %d: %s", points[i], status, out);
        assert_int_equal(count_events("flow-blocked"), i == 0 ? 0 : 1);
        flows_turn_at(told_at);
        assert_int_equal(count_events("flow-blocked"), 1);
        told_at += DAY; /* the first reminder is due */
        status = keel_test_run_child(told_child, out, sizeof(out));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
            fail_msg("%s, reminder: status %d: %s", points[i], status, out);
        assert_int_equal(count_events("flow-reminder"), i == 0 ? 0 : 1);
        flows_turn_at(told_at);
        flows_turn_at(told_at + 1);
        assert_int_equal(count_events("flow-reminder"), 1);
        assert_int_equal(count_events("flow-blocked"), 1);
        fx_teardown_repo();
    }
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_two_way_sync, fx_teardown),
        cmocka_unit_test_teardown(test_product_branch_never_merges_back, fx_teardown),
        cmocka_unit_test_teardown(test_conflict_reminds_the_authors, fx_teardown),
        cmocka_unit_test_teardown(test_rejected_merge_blocks, fx_teardown),
        cmocka_unit_test_teardown(test_rejected_merge_reminds_the_culprit, fx_teardown),
        cmocka_unit_test_teardown(test_rejected_merge_searches_the_culprit, fx_teardown),
        cmocka_unit_test_teardown(test_pre_merge_level, fx_teardown),
        cmocka_unit_test_teardown(test_recorded_resolution_reused, fx_teardown),
        cmocka_unit_test_teardown(test_resolution_reused_on_its_hunks, fx_teardown),
#if KEEL_DEVEL
        cmocka_unit_test_teardown(test_kill_at_flow_points, fx_teardown),
        cmocka_unit_test_teardown(test_kill_around_reminders, fx_teardown),
        cmocka_unit_test_teardown(test_kill_around_flow_search, fx_teardown),
#endif
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
