/*
 * test_gate_api_after.c - keel-gate serve's views of what happens after a
 * change lands (gate/web/routes_after.c, docs/gate-api.md): the culprit
 * searches, the backouts with the circuit breaker and its budget, the
 * breaker's reset as an admin write, and the branch flows; against a real
 * server on a free localhost port, its store seeded as the gate writes it.
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>
#include <cmocka.h>
#include "gate_api_client.h"
#include "store_backout.h"
#include "store_culprit.h"
#include "store_flow.h"
#include "store_post.h"

static json_t *get_ok(reply *r, const char *path, const char *headers)
{
    http(r, "GET", path, headers, NULL);
    if (r->status != 200)
        print_error("GET %s: %d %s\n", path, r->status, r->body);
    assert_int_equal(r->status, 200);
    assert_non_null(r->json);
    return r->json;
}

static const char *str_of(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (v == NULL)
        print_error("no string '%s' in %s\n", key, json_dumps(o, JSON_COMPACT));
    assert_non_null(v);
    return v;
}

/* A search of "long" on main over commits base (passed), topic, other (failed). */
static long long seed_search(char base[GATE_OID_HEX], char topic[GATE_OID_HEX],
                             char other[GATE_OID_HEX])
{
    gate_store *st = gate_get_store(srv_gate);
    const char *names[] = {"long"};
    (void)snprintf(base, GATE_OID_HEX, "%s", head_of("main"));
    (void)snprintf(topic, GATE_OID_HEX, "%s", head_of("topic"));
    (void)snprintf(other, GATE_OID_HEX, "%s", head_of("other"));
    const char *commits[] = {base, topic, other};
    char was[GATE_POST_STATE_MAX];
    for (size_t i = 0; i < 3; i++) {
        fx_ok(gate_store_post_add(st, "main", commits[i], "c", names, 1, 100 + (long long)i));
        if (i == 1)
            continue; /* not built by the post level */
        fx_ok(gate_store_post_start(st, "main", commits[i], "long", 110));
        fx_ok(gate_store_post_finish(st, "main", commits[i], "long", i == 2, "", 111, was));
    }
    long long id = 0;
    fx_ok(gate_store_search_new(st, "main", "long", 1, other, 0.05, 120, &id));
    assert_true(id > 0);
    long long build = 0;
    fx_ok(gate_store_search_build_start(st, id, 1, "", 121, &build));
    fx_ok(gate_store_search_build_end(st, build, false, true, 122, NULL));
    return id;
}

/* GET /api/v1/culprits: each search with its range, builds, suspects, state and evidence. */
static void test_culprits(void **state)
{
    (void)state;
    start(NULL);
    reply r;
    json_t *o = get_ok(&r, "/api/v1/culprits", NULL);
    assert_string_equal(str_of(o, "target"), "main");
    assert_int_equal(json_array_size(json_object_get(o, "searches")), 0);
    reply_free(&r);
    char base[GATE_OID_HEX], topic[GATE_OID_HEX], other[GATE_OID_HEX];
    long long id = seed_search(base, topic, other);
    fx_ok(gate_store_search_set(gate_get_store(srv_gate), id, "suspected", topic,
                                "topic failed once", true, "culprit-suspected", "{}", 123));
    o = get_ok(&r, "/api/v1/culprits", NULL);
    json_t *list = json_object_get(o, "searches");
    assert_int_equal(json_array_size(list), 1);
    json_t *s = json_array_get(list, 0);
    assert_int_equal(json_integer_value(json_object_get(s, "id")), id);
    assert_string_equal(str_of(s, "config"), "long");
    assert_string_equal(str_of(s, "level"), "post");
    assert_int_equal(json_integer_value(json_object_get(s, "tier")), 1);
    assert_string_equal(str_of(s, "state"), "suspected");
    assert_string_equal(str_of(s, "culprit"), topic);
    json_t *range = json_object_get(s, "range");
    assert_string_equal(str_of(range, "passed"), base);
    assert_string_equal(str_of(range, "failed"), other);
    assert_int_equal(json_integer_value(json_object_get(range, "commits")), 2);
    json_t *builds = json_object_get(s, "builds");
    assert_int_equal(json_array_size(builds), 1);
    json_t *b = json_array_get(builds, 0);
    assert_string_equal(str_of(b, "commit"), topic);
    assert_string_equal(str_of(b, "result"), "failed");
    json_t *top = json_object_get(s, "top");
    assert_true(json_array_size(top) >= 1);
    /* topic failed, its parent passed: it is the likeliest */
    assert_string_equal(str_of(json_array_get(top, 0), "commit"), topic);
    double p = json_real_value(json_object_get(json_array_get(top, 0), "posterior"));
    assert_true(p > 0.5 && p <= 1.0);
    assert_non_null(json_object_get(json_object_get(s, "verdict"), "state"));
    assert_string_equal(str_of(s, "evidence"), "topic failed once");
    reply_free(&r);
    expect_error("POST", "/api/v1/culprits", auth(tok_admin), "{}", 405, "takes GET");
}

/* GET /api/v1/backouts: each backout, the breaker and the budget. */
static void test_backouts(void **state)
{
    (void)state;
    start(NULL);
    reply r;
    json_t *o = get_ok(&r, "/api/v1/backouts", NULL);
    assert_int_equal(json_array_size(json_object_get(o, "backouts")), 0);
    json_t *br = json_object_get(o, "breaker");
    assert_true(json_is_false(json_object_get(br, "open")));
    assert_true(json_is_null(json_object_get(br, "why")));
    json_t *budget = json_object_get(o, "budget");
    assert_int_equal(json_integer_value(json_object_get(budget, "limit")), 3); /* the default */
    assert_int_equal(json_integer_value(json_object_get(budget, "created")), 0);
    reply_free(&r);
    gate_store *st = gate_get_store(srv_gate);
    gate_backout_row row;
    memset(&row, 0, sizeof(row));
    (void)snprintf(row.target, sizeof(row.target), "main");
    (void)snprintf(row.culprit, sizeof(row.culprit), "%s", head_of("topic"));
    (void)snprintf(row.config, sizeof(row.config), "long");
    (void)snprintf(row.state, sizeof(row.state), "refused");
    (void)snprintf(row.rail, sizeof(row.rail), "budget");
    (void)snprintf(row.reason, sizeof(row.reason), "3 reverts in the last 24 h");
    (void)snprintf(row.subject, sizeof(row.subject), "topic");
    row.tier = 1;
    row.verified = true;
    long long now = (long long)time(NULL);
    fx_ok(gate_store_backout_put(st, &row, now, "backout-refused", "{}"));
    bool changed = false;
    fx_ok(gate_store_backout_set_breaker(st, "main", true, "the budget is spent", "{}", now,
                                         &changed));
    assert_true(changed);
    o = get_ok(&r, "/api/v1/backouts", NULL);
    json_t *list = json_object_get(o, "backouts");
    assert_int_equal(json_array_size(list), 1);
    json_t *b = json_array_get(list, 0);
    assert_string_equal(str_of(b, "culprit"), head_of("topic"));
    assert_string_equal(str_of(b, "state"), "refused");
    assert_string_equal(str_of(b, "rail"), "budget");
    assert_true(json_is_null(json_object_get(b, "revert")));
    assert_true(json_is_null(json_object_get(b, "change")));
    br = json_object_get(o, "breaker");
    assert_true(json_is_true(json_object_get(br, "open")));
    assert_string_equal(str_of(br, "why"), "the budget is spent");
    assert_int_equal(json_integer_value(json_object_get(br, "since")), now);
    reply_free(&r);
    expect_error("POST", "/api/v1/backouts", auth(tok_admin), "{}", 405, "takes GET");
}

/* POST /api/v1/backouts/breaker/reset: admin only, idempotent, as backouts --reset. */
static void test_breaker_reset(void **state)
{
    (void)state;
    start(NULL);
    gate_store *st = gate_get_store(srv_gate);
    bool changed = false;
    fx_ok(gate_store_backout_set_breaker(st, "main", true, "the budget is spent", "{}",
                                         (long long)time(NULL), &changed));
    const char *path = "/api/v1/backouts/breaker/reset";
    expect_error("POST", path, NULL, "{}", 401, "role 'admin'");
    expect_error("POST", path, auth(tok_submit), "{}", 403, "role 'admin'");
    expect_error("GET", path, auth(tok_admin), NULL, 405, "takes POST");
    expect_error("POST", path, auth(tok_admin), "{\"force\":true}", 400, "unknown field 'force'");
    reply r;
    http(&r, "GET", "/api/v1/backouts", NULL, NULL);
    assert_true(json_is_true(json_object_get(json_object_get(r.json, "breaker"), "open")));
    reply_free(&r);
    char headers[256];
    (void)snprintf(headers, sizeof(headers), "%sIdempotency-Key: reset-1\r\n", auth(tok_admin));
    http(&r, "POST", path, headers, "");
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "was_open")));
    json_t *br = json_object_get(r.json, "breaker");
    assert_true(json_is_false(json_object_get(br, "open")));
    assert_true(json_integer_value(json_object_get(br, "reset_at")) > 0);
    char *first = strdup(r.body);
    reply_free(&r);
    /* the same key again: the first response, nothing done twice */
    http(&r, "POST", path, headers, "");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, first);
    free(first);
    reply_free(&r);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = ?1", "breaker-closed"),
                     1);
    /* a new key on a closed breaker: nothing was open */
    http(&r, "POST", path, auth(tok_admin), "{}");
    assert_int_equal(r.status, 200);
    assert_true(json_is_false(json_object_get(r.json, "was_open")));
    reply_free(&r);
    bool open = true;
    fx_ok(gate_store_backout_breaker(st, "main", &open, NULL, NULL, NULL, 0));
    assert_false(open);
}

/* GET /api/v1/flows: each flow of the target's configuration, its state and what it told. */
static void test_flows(void **state)
{
    (void)state;
    start_with(NULL, "[flow topic -> main]\nowner = Ann Lee <ann@example.org>\n");
    reply r;
    json_t *o = get_ok(&r, "/api/v1/flows", NULL);
    json_t *list = json_object_get(o, "flows");
    assert_int_equal(json_array_size(list), 1);
    json_t *f = json_array_get(list, 0);
    assert_string_equal(str_of(f, "from"), "topic");
    assert_string_equal(str_of(f, "to"), "main");
    assert_string_equal(str_of(f, "state"), "idle");
    assert_true(json_is_false(json_object_get(f, "recorded")));
    assert_string_equal(str_of(f, "source_tip"), head_of("topic"));
    assert_string_equal(str_of(f, "destination_tip"), head_of("main"));
    assert_string_equal(str_of(f, "owner"), "Ann Lee <ann@example.org>");
    assert_true(json_is_null(json_object_get(f, "blocked_since")));
    reply_free(&r);
    /* blocked, as the gate records a conflict: the state and what was told, together */
    gate_config *cfg = NULL;
    static const char text[] = "[config unit]\ntest = true\n[flow topic -> main]\n";
    fx_ok(gate_config_parse(text, sizeof(text) - 1, "t", &cfg));
    gate_flow fl;
    gate_flow_init(&fl, &cfg->flows[0]);
    fl.state = GATE_FLOW_BLOCKED;
    fl.blocked_since = 1000;
    fl.failed_at = 1000;
    fl.last_told = 1000;
    (void)snprintf(fl.why, sizeof(fl.why), "conflict in shared.txt");
    (void)snprintf(fl.people[0].who, sizeof(fl.people[0].who), "Bo <bo@example.org>");
    fl.npeople = 1;
    gate_flow_told told = {"flow-blocked", "{}", fl.people, 1, 0};
    fx_ok(gate_store_flow_save(gate_get_store(srv_gate), &fl, &told, 1000));
    gate_config_free(cfg);
    o = get_ok(&r, "/api/v1/flows", NULL);
    f = json_array_get(json_object_get(o, "flows"), 0);
    assert_string_equal(str_of(f, "state"), "blocked");
    assert_true(json_is_true(json_object_get(f, "recorded")));
    assert_int_equal(json_integer_value(json_object_get(f, "blocked_since")), 1000);
    assert_string_equal(str_of(f, "why"), "conflict in shared.txt");
    assert_string_equal(json_string_value(json_array_get(json_object_get(f, "people"), 0)),
                        "Bo <bo@example.org>");
    json_t *t = json_array_get(json_object_get(f, "told"), 0);
    assert_string_equal(str_of(t, "kind"), "flow-blocked");
    assert_string_equal(str_of(t, "who"), "Bo <bo@example.org>");
    assert_int_equal(json_integer_value(json_object_get(t, "at")), 1000);
    assert_true(json_integer_value(json_object_get(f, "next_due")) > 1000); /* a reminder */
    reply_free(&r);
}

/* Reads that are token-only: every view needs a token of role read. */
static void test_token_reads(void **state)
{
    (void)state;
    gate_web_options o;
    gate_web_options_default(&o);
    o.token_reads = true;
    start(&o);
    const char *paths[] = {"/api/v1/culprits", "/api/v1/backouts", "/api/v1/flows"};
    for (size_t i = 0; i < 3; i++) {
        expect_error("GET", paths[i], NULL, NULL, 401, "role 'read'");
        reply r;
        json_t *j = get_ok(&r, paths[i], auth(tok_read));
        assert_string_equal(str_of(j, "target"), "main");
        reply_free(&r);
    }
}

/* The server restarted with the gates of main (its default) and comp/net (?target=). */
static gate *restart_with_comp(void)
{
    gate_web_stop(srv);
    srv = NULL;
    git_oid at, made;
    fx_head("main", &at);
    const fx_file f[] = {
        {"net.txt", "net\n"},
        {".keel/gate.conf", "[gate]\nstrategy = serial\n[config unit]\ntest = true\n"}};
    fx_commit(&at, f, 2, "comp/net", &made); /* its own configuration: no `target = main` */
    gate *comp = fx_open_target("comp/net");
    static gate *both[2];
    both[0] = srv_gate;
    both[1] = comp;
    gate_web_options o;
    gate_web_options_default(&o);
    o.listen = "127.0.0.1:0";
    o.targets = both;
    o.ntargets = 2;
    fx_ok(gate_web_start(srv_gate, &o, &srv));
    srv_port = (unsigned short)strtol(strrchr(gate_web_address(srv), ':') + 1, NULL, 10);
    return comp;
}

/*
 * Every target the gate guards: GET /targets lists main (the default) and
 * comp/net; ?target= answers each endpoint for that target (its queue, its
 * changes, a submission into its queue, its flows, culprits and backouts);
 * no ?target= is the default's; an unknown target is a 404 naming it and
 * the targets.
 */
static void test_targets(void **state)
{
    (void)state;
    start(NULL);
    gate *comp = restart_with_comp();
    long long queued = fx_submit(comp, "topic", 0);
    reply r;
    json_t *o = get_ok(&r, "/api/v1/targets", NULL);
    assert_string_equal(str_of(o, "default"), "main");
    json_t *list = json_object_get(o, "targets");
    assert_int_equal(json_array_size(list), 2);
    json_t *m = json_array_get(list, 0), *c = json_array_get(list, 1);
    assert_string_equal(str_of(m, "target"), "main");
    assert_true(json_is_true(json_object_get(m, "default")));
    assert_int_equal(json_integer_value(json_object_get(m, "queued")), 0);
    assert_string_equal(str_of(c, "target"), "comp/net");
    assert_true(json_is_false(json_object_get(c, "default")));
    assert_int_equal(json_integer_value(json_object_get(c, "queued")), 1);
    assert_string_equal(str_of(c, "tip"), head_of("comp/net"));
    reply_free(&r);
    /* the queue: comp/net's with ?target=, main's without */
    o = get_ok(&r, "/api/v1/queue?target=comp/net", NULL);
    assert_string_equal(str_of(o, "target"), "comp/net");
    json_t *ch = json_array_get(json_object_get(o, "changes"), 0);
    assert_int_equal(json_integer_value(json_object_get(ch, "id")), queued);
    reply_free(&r);
    o = get_ok(&r, "/api/v1/queue", NULL);
    assert_string_equal(str_of(o, "target"), "main");
    assert_int_equal(json_array_size(json_object_get(o, "changes")), 0);
    reply_free(&r);
    char path[96];
    (void)snprintf(path, sizeof(path), "/api/v1/changes/%lld?target=comp/net", queued);
    o = get_ok(&r, path, NULL);
    assert_string_equal(str_of(json_object_get(o, "change"), "target"), "comp/net");
    reply_free(&r);
    /* a change is its target's: comp/net's is no change of main's, to read or to write */
    (void)snprintf(path, sizeof(path), "/api/v1/changes/%lld", queued);
    expect_error("GET", path, NULL, NULL, 404, "no change");
    (void)snprintf(path, sizeof(path), "/api/v1/changes/%lld/cancel", queued);
    expect_error("POST", path, auth(tok_submit), "{}", 404, "for 'main'");
    (void)snprintf(path, sizeof(path), "/api/v1/changes/%lld/cancel?target=comp/net", queued);
    http(&r, "POST", path, auth(tok_submit), "{}");
    assert_int_equal(r.status, 200);
    reply_free(&r);
    /* a submission into comp/net's queue */
    char body[160];
    (void)snprintf(body, sizeof(body), "{\"branch\":\"other\",\"expected_head\":\"%s\"}",
                   head_of("other"));
    http(&r, "POST", "/api/v1/changes?target=comp/net", auth(tok_submit), body);
    if (r.status != 201)
        print_error("POST: %d %s\n", r.status, r.body);
    assert_int_equal(r.status, 201);
    assert_string_equal(str_of(json_object_get(r.json, "change"), "target"), "comp/net");
    reply_free(&r);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE target = ?", "comp/net"), 2);
    /* the views after landing, per target */
    static const char *const views[] = {"flows", "culprits", "backouts"};
    for (size_t i = 0; i < 3; i++) {
        (void)snprintf(path, sizeof(path), "/api/v1/%s?target=comp/net", views[i]);
        assert_string_equal(str_of(get_ok(&r, path, NULL), "target"), "comp/net");
        reply_free(&r);
    }
    expect_error("GET", "/api/v1/queue?target=nope", NULL, NULL, 404,
                 "no target 'nope': the gate guards 'main', 'comp/net'");
    gate_web_stop(srv); /* before its gate of comp/net closes */
    srv = NULL;
    gate_close(comp);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_culprits, stop),
        cmocka_unit_test_teardown(test_backouts, stop),
        cmocka_unit_test_teardown(test_breaker_reset, stop),
        cmocka_unit_test_teardown(test_flows, stop),
        cmocka_unit_test_teardown(test_token_reads, stop),
        cmocka_unit_test_teardown(test_targets, stop),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
