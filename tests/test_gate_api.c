/*
 * test_gate_api.c - keel-gate serve's API (gate/web, docs/gate-api.md)
 * against a real server on a free localhost port, started in this process
 * on a gate of its own: every endpoint, every error, the tokens' roles,
 * idempotency keys and expected_head.  Requests are written by hand on a
 * socket, so that what is sent is exactly what the test says (a '..' path
 * segment, a body past the limit, a connection that never finishes).
 */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>
#include "gate_api_client.h"
#include "store_nightly.h"
#include "routes_int.h"
#include "web.h"

/* ---- tests ------------------------------------------------------------------------------- */

/*
 * A text cut to fit its field inside a character (a subject of 60 'é' in 96 bytes) is given
 * without that character's part, not as "(not UTF-8)"; text that is not UTF-8 still is.
 */
static void test_text_cut_in_a_character(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"ab\xc3\xa9\xc3", "ab\xc3\xa9"}, {"ab\xe2\x82", "ab"},    {"ab\xf0\x9f\x98", "ab"},
        {"a\xff b", "(not UTF-8)"},       {"\xa9", "(not UTF-8)"}, {"plain", "plain"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = gate__web_str(cases[i].in);
        assert_non_null(j);
        assert_string_equal(json_string_value(j), cases[i].out);
        json_decref(j);
    }
}

static void test_queue_and_history(void **state)
{
    (void)state;
    start(NULL);
    reply r;
    http(&r, "GET", "/api/v1/queue", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Content-Type: application/json"));
    assert_string_equal(json_string_value(json_object_get(r.json, "target")), "main");
    assert_int_equal(json_array_size(json_object_get(r.json, "changes")), 0);
    assert_true(json_is_null(json_object_get(r.json, "paused")));
    reply_free(&r);

    long long a = submit("topic", NULL);
    long long b = submit("other", NULL);
    http(&r, "GET", "/api/v1/queue", NULL, NULL);
    json_t *changes = json_object_get(r.json, "changes");
    assert_int_equal(json_array_size(changes), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(changes, 0), "id")), a);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(changes, 1), "position")),
                     2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(changes, 1), "state")),
                        "queued");
    assert_true(json_is_null(json_object_get(json_array_get(changes, 0), "eta_seconds")));
    reply_free(&r);

    /* the gate lands them: the history, the commits, the logs */
    gate_run_stats st = fx_run_once();
    assert_int_equal(st.landed, 2);
    char path[64];
    (void)snprintf(path, sizeof(path), "/api/v1/changes/%lld", b);
    http(&r, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *change = json_object_get(r.json, "change");
    assert_string_equal(json_string_value(json_object_get(change, "state")), "landed");
    json_t *builds = json_object_get(r.json, "builds");
    assert_true(json_array_size(builds) >= 1);
    json_t *job = json_array_get(json_object_get(json_array_get(builds, 0), "jobs"), 0);
    assert_string_equal(json_string_value(json_object_get(job, "config")), "unit");
    assert_string_equal(json_string_value(json_object_get(job, "state")), "passed");
    char log[128];
    (void)snprintf(log, sizeof(log), "%s", json_string_value(json_object_get(job, "log")));
    assert_true(json_array_size(json_object_get(r.json, "events")) >= 2); /* submit, landed */
    reply_free(&r);

    http(&r, "GET", log, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "text/plain"));
    size_t whole = r.len;
    char *text = strdup(r.body);
    reply_free(&r);
    assert_true(whole > 4);
    http(&r, "GET", log, "Range: bytes=1-3\r\n", NULL);
    assert_int_equal(r.status, 206);
    assert_int_equal(r.len, 3);
    assert_memory_equal(r.body, text + 1, 3);
    char range[96];
    (void)snprintf(range, sizeof(range), "Content-Range: bytes 1-3/%zu", whole);
    assert_non_null(strstr(r.head, range));
    reply_free(&r);
    http(&r, "GET", log, "Range: bytes=-2\r\n", NULL);
    assert_int_equal(r.status, 206);
    assert_memory_equal(r.body, text + whole - 2, 2);
    reply_free(&r);
    char q[160];
    (void)snprintf(q, sizeof(q), "%s?offset=2&limit=2", log);
    http(&r, "GET", q, NULL, NULL);
    assert_int_equal(r.status, 206);
    assert_memory_equal(r.body, text + 2, 2);
    reply_free(&r);
    /* a client following the log from the size it has: nothing there yet */
    (void)snprintf(q, sizeof(q), "%s?offset=%zu", log, whole);
    http(&r, "GET", q, NULL, NULL);
    assert_int_equal(r.status, 416);
    (void)snprintf(range, sizeof(range), "Content-Range: bytes */%zu", whole);
    assert_non_null(strstr(r.head, range));
    reply_free(&r);
    (void)snprintf(q, sizeof(q), "%s?limit=0", log);
    expect_error("GET", q, NULL, NULL, 400, "limit at least 1");
    (void)snprintf(q, sizeof(q), "%s?offset=2", log);
    expect_error("GET", q, "Range: bytes=0-1\r\n", NULL, 400, "not both");
    free(text);
    (void)snprintf(range, sizeof(range), "Range: bytes=%zu-\r\n", whole + 10);
    expect_error("GET", log, range, NULL, 416, "outside the log");
    expect_error("GET", log, "Range: bytes=0-1,4-5\r\n", NULL, 416, "not one");
    expect_error("GET", "/api/v1/jobs/999/log", NULL, NULL, 404, "no job 999");

    http(&r, "GET", "/api/v1/commits", NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *commits = json_object_get(r.json, "commits");
    assert_int_equal(json_array_size(commits), 2);
    json_t *unit = json_object_get(json_object_get(json_array_get(commits, 0), "configs"), "unit");
    assert_string_equal(json_string_value(json_object_get(unit, "state")), "passed");
    assert_string_equal(json_string_value(json_array_get(json_object_get(r.json, "configs"), 0)),
                        "unit");
    reply_free(&r);
    expect_error("GET", "/api/v1/commits?limit=x", NULL, NULL, 400, "limit");
    expect_error("GET", "/api/v1/commits?limit=101", NULL, NULL, 400, "from 1 to 100");

    http(&r, "GET", "/api/v1/changes", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "changes")), 2);
    reply_free(&r);
    expect_error("GET", "/api/v1/changes/12345", NULL, NULL, 404, "no change 12345");
}

static void test_bad_input(void **state)
{
    (void)state;
    start(NULL);
    long long before = count_changes();
    expect_error("GET", "/api/v1/nothing", NULL, NULL, 404, "no endpoint /api/v1/nothing");
    expect_error("GET", "/status", NULL, NULL, 404, "the API is under /api/v1/");
    expect_error("GET", "/api/v1/changes/abc", NULL, NULL, 404, "no endpoint");
    expect_error("DELETE", "/api/v1/queue", NULL, NULL, 405, "does not take DELETE");
    reply r;
    http(&r, "POST", "/api/v1/queue", auth(tok_admin), "{}");
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.head, "Allow: GET, HEAD"));
    reply_free(&r);
    expect_error("GET", "/api/v1/jobs/1/../../../etc/passwd", NULL, NULL, 400, "'..'");
    expect_error("GET", "/api/v1/%2e%2e/%2e%2e/etc/passwd", NULL, NULL, 400, "'..'");
    const char *sub = auth(tok_submit);
    expect_error("POST", "/api/v1/changes", sub, "{\"branch\": ", 400, "malformed JSON");
    expect_error("POST", "/api/v1/changes", sub, "[1,2]", 400, "must be a JSON object");
    expect_error("POST", "/api/v1/changes", sub,
                 "{\"branch\":\"topic\",\"expected_head\":\"00\",\"colour\":\"red\"}", 400,
                 "unknown field 'colour'");
    expect_error("POST", "/api/v1/changes", sub, "{\"branch\":\"topic\"}", 400,
                 "field 'expected_head' is missing");
    expect_error("POST", "/api/v1/changes", sub, "{\"branch\":7,\"expected_head\":\"0\"}", 400,
                 "field 'branch' must be a non-empty string");
    expect_error("POST", "/api/v1/changes", sub,
                 "{\"branch\":\"a\",\"branch\":\"b\",\"expected_head\":\"0\"}", 400,
                 "malformed JSON");
    /* a branch that is no branch's name, or the target: 400 naming it, before any git work */
    long long queued = count_changes();
    char body[1024];
    (void)snprintf(body, sizeof(body), "{\"branch\":\"a..b\",\"expected_head\":\"%s\"}",
                   head_of("topic"));
    expect_error("POST", "/api/v1/changes", sub, body, 400, "'a..b' is not a valid branch name");
    char longest[300];
    memset(longest, 'b', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    (void)snprintf(body, sizeof(body), "{\"branch\":\"%s\",\"expected_head\":\"%s\"}", longest,
                   head_of("topic"));
    expect_error("POST", "/api/v1/changes", sub, body, 400, "is not a valid branch name");
    (void)snprintf(body, sizeof(body), "{\"branch\":\"main\",\"expected_head\":\"%s\"}",
                   head_of("main"));
    expect_error("POST", "/api/v1/changes", sub, body, 400, "'main' is the target");
    assert_int_equal(count_changes(), queued);
    const size_t big_len = (size_t)200 * 1024;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, ' ', big_len - 1);
    big[big_len - 1] = '\0';
    expect_error("POST", "/api/v1/changes", sub, big, 413, "larger than 65536 bytes");
    free(big);
    /* the same without a Content-Length: chunks past the limit */
    int fd = connect_srv();
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "POST /api/v1/changes HTTP/1.1\r\nHost: x\r\n%s"
                     "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
                     sub);
    send_all(fd, req, (size_t)n);
    char chunk[8192 + 16];
    n = snprintf(chunk, sizeof(chunk), "2000\r\n");
    memset(chunk + n, 'x', 8192);
    chunk[n + 8192] = '\r';
    chunk[n + 8192 + 1] = '\n';
    for (int i = 0; i < 10; i++)
        send_all(fd, chunk, (size_t)n + 8192 + 2);
    send_all(fd, "0\r\n\r\n", 5);
    read_reply(fd, &r);
    assert_int_equal(r.status, 413);
    reply_free(&r);
    assert_int_equal(count_changes(), before); /* nothing changed */
}

/*
 * expected_head that is no commit id, and URLs with an encoded NUL: 400s that
 * say so.  Both were answered as something else: 409 "it moved" for any text
 * as expected_head, and "%00" ended the path libmicrohttpd decoded, so
 * /api/v1/queue%00x was /api/v1/queue (200) and ?target=main%00x main's.
 */
static void test_bad_heads_and_nul(void **state)
{
    (void)state;
    start(NULL);
    const char *sub = auth(tok_submit);
    char body[512], hex[GATE_OID_HEX];
    (void)snprintf(hex, sizeof(hex), "%s", head_of("topic"));
    /* words, and the id with a digit short, one too many, a letter past 'f', a blank first */
    static const struct {
        const char *before;
        int digits;
        const char *after;
    } bad[] = {{"zzz", 0, ""}, {"HEAD", 0, ""}, {"main", 0, ""}, {"", 39, ""},
               {"", 40, "0"},  {"", 39, "g"},   {" ", 40, ""}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char head[64], says[160];
        (void)snprintf(head, sizeof(head), "%s%.*s%s", bad[i].before, bad[i].digits, hex,
                       bad[i].after);
        (void)snprintf(body, sizeof(body), "{\"branch\":\"topic\",\"expected_head\":\"%s\"}", head);
        (void)snprintf(says, sizeof(says),
                       "field 'expected_head' must be a commit id of 40 hex digits, not '%s'",
                       head);
        expect_error("POST", "/api/v1/changes", sub, body, 400, says);
    }
    assert_int_equal(count_changes(), 0);
    /* git writes ids lower-case; upper-case is the same commit */
    char upper[GATE_OID_HEX] = "";
    for (size_t i = 0; i < sizeof(upper); i++)
        upper[i] = (char)toupper((unsigned char)hex[i]);
    (void)snprintf(body, sizeof(body), "{\"branch\":\"topic\",\"expected_head\":\"%s\"}", upper);
    reply r;
    http(&r, "POST", "/api/v1/changes", sub, body);
    assert_int_equal(r.status, 201);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "change"), "head")), hex);
    reply_free(&r);
    assert_int_equal(count_changes(), 1);
    /* an encoded NUL anywhere in the URL */
    static const char *const nul[] = {"/api/v1/queue%00x", "/api/v1/queue%00",
                                      "/api/v1/changes/1%00/log", "/api/v1/queue?target=main%00x",
                                      "/%00"};
    for (size_t i = 0; i < sizeof(nul) / sizeof(nul[0]); i++)
        expect_error("GET", nul[i], NULL, NULL, 400, "the URL has an encoded NUL ('%00')");
    expect_error("POST", "/api/v1/changes%00", sub, submit_body("other", "other"), 400,
                 "encoded NUL");
    expect_error("POST", "/api/v1/changes/1/cancel%00x", sub, NULL, 400, "encoded NUL");
    assert_int_equal(count_changes(), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = ?", "queued"), 1);
    /* "%2500" is the text "%00": no endpoint, said so; and the server still serves */
    expect_error("GET", "/api/v1/queue%2500", NULL, NULL, 404, "no endpoint /api/v1/queue%00");
    http(&r, "GET", "/api/v1/queue", NULL, NULL);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

/*
 * Query arguments that were ignored: one the endpoint does not read (offset on
 * /changes, which lists its newest 100 whatever they say), one no endpoint
 * knows, one without a value, one given twice (the first was taken); and a
 * header the server reads given twice.
 */
static void test_bad_query(void **state)
{
    (void)state;
    start(NULL);
    static const struct {
        const char *path, *says;
    } bad[] = {
        {"/api/v1/changes?offset=10", "/api/v1/changes takes no query argument 'offset' (it "
                                      "takes target)"},
        {"/api/v1/commits?hours=2", "/api/v1/commits takes no query argument 'hours' (it takes "
                                    "limit and target)"},
        {"/api/v1/queue?colour=red", "/api/v1/queue: unknown query argument 'colour'"},
        {"/api/v1/commits?limit", "query argument 'limit' has no value ('limit=...')"},
        {"/api/v1/commits?limit=5&limit=6", "query argument 'limit' is given twice"},
        {"/api/v1/queue?target=main&target=comp", "query argument 'target' is given twice"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error("GET", bad[i].path, NULL, NULL, 400, bad[i].says);
    expect_error("POST", "/api/v1/changes?priority=3", auth(tok_submit),
                 submit_body("topic", "topic"), 400, "unknown query argument 'priority'");
    /* a header the server reads, given twice: the first was read, the second ignored */
    char two[512];
    (void)snprintf(two, sizeof(two), "%sAuthorization: Bearer kg_other\r\n", auth(tok_submit));
    expect_error("POST", "/api/v1/changes", two, submit_body("topic", "topic"), 400,
                 "header 'Authorization' is given twice");
    (void)snprintf(two, sizeof(two), "%sIdempotency-Key: a\r\nidempotency-key: b\r\n",
                   auth(tok_submit));
    expect_error("POST", "/api/v1/changes", two, submit_body("topic", "topic"), 400,
                 "header 'Idempotency-Key' is given twice");
    assert_int_equal(count_changes(), 0);
    static const char *const good[] = {"/api/v1/commits?limit=5&target=main",
                                       "/api/v1/series?hours=2"}; /* what each reads is read */
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        reply r;
        http(&r, "GET", good[i], NULL, NULL);
        assert_int_equal(r.status, 200);
        reply_free(&r);
    }
}

static void test_roles(void **state)
{
    (void)state;
    start(NULL);
    const char *body = submit_body("topic", "topic");
    expect_error("POST", "/api/v1/changes", NULL, body, 401, "needs a token of role 'submit'");
    expect_error("POST", "/api/v1/changes", "Authorization: Bearer kg_nothing\r\n", body, 401,
                 "the token sent is not known");
    expect_error("POST", "/api/v1/changes", auth(tok_read), body, 403,
                 "token 'reader' has role 'read'");
    /* HEAD is a read: its body never submits, whatever token comes with it */
    reply h;
    http(&h, "HEAD", "/api/v1/changes", auth(tok_submit), body);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.len, 0);
    reply_free(&h);
    http(&h, "HEAD", "/api/v1/queue/pause", auth(tok_admin), "{\"reason\":\"x\"}");
    assert_int_equal(h.status, 405);
    reply_free(&h);
    assert_int_equal(count_changes(), 0);
    long long id = submit("topic", NULL);
    char path[96];
    (void)snprintf(path, sizeof(path), "/api/v1/changes/%lld/priority", id);
    expect_error("POST", path, auth(tok_submit), "{\"priority\":5}", 403, "role 'admin'");
    reply r;
    http(&r, "POST", path, auth(tok_admin), "{\"priority\":5}");
    assert_int_equal(r.status, 200);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(r.json, "change"), "priority")), 5);
    reply_free(&r);
    expect_error("POST", path, auth(tok_admin), "{\"priority\":\"high\"}", 400,
                 "must be a whole number");
    /* above the gate's own flow merges (2^29): refused */
    expect_error("POST", path, auth(tok_admin), "{\"priority\":536870912}", 400,
                 "from -536870911 to 536870911");
    expect_error("POST", "/api/v1/queue/pause", auth(tok_submit), "{\"reason\":\"x\"}", 403,
                 "role 'admin'");
    (void)snprintf(path, sizeof(path), "/api/v1/changes/%lld/cancel", id);
    http(&r, "POST", path, auth(tok_submit), NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "change"), "state")),
        "cancelled");
    reply_free(&r);
    expect_error("POST", path, auth(tok_submit), NULL, 409, "");
    (void)snprintf(path, sizeof(path), "/api/v1/changes/%lld/priority", id);
    expect_error("POST", path, auth(tok_admin), "{\"priority\":1}", 409, "is not queued");

    /* revoked: no longer known; the store holds hashes only */
    gate *g = fx_open(); /* the server's gate is its thread's */
    fx_ok(gate_store_token_revoke(gate_get_store(g), "dev", 2000));
    gate_close(g);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'token-revoke' AND "
                                "json_extract(detail, '$.name') = 'dev' AND "
                                "json_extract(detail, '$.role') = ?1",
                                "submit"),
                     1);
    expect_error("POST", "/api/v1/changes", auth(tok_submit), body, 401, "not known");
    assert_int_equal(
        fx_sql_int("SELECT count(*) FROM tokens WHERE hash = ?1 OR name = ?1", tok_admin), 0);
    char hash[GATE_TOKEN_HASH_HEX];
    gate_sha256_hex(tok_admin, strlen(tok_admin), hash);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM tokens WHERE hash = ?1", hash), 1);
}

static void test_token_reads(void **state)
{
    (void)state;
    gate_web_options o;
    gate_web_options_default(&o);
    o.token_reads = true;
    start(&o);
    expect_error("GET", "/api/v1/queue", NULL, NULL, 401, "role 'read'");
    reply r;
    http(&r, "GET", "/api/v1/queue", auth(tok_read), NULL);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    http(&r, "GET", "/api/v1/queue", auth(tok_admin), NULL);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.head, "Set-Cookie"));
    reply_free(&r);
}

static void test_idempotency_and_expected_head(void **state)
{
    (void)state;
    start(NULL);
    /* expected_head: the branch moved (or it never was there): refused, nothing queued */
    const char *body = submit_body("topic", "other");
    expect_error("POST", "/api/v1/changes", auth(tok_submit), body, 409, "it moved");
    assert_int_equal(count_changes(), 0);

    long long id = submit("topic", "Idempotency-Key: k-1\r\n");
    long long again = submit("topic", "Idempotency-Key: k-1\r\n"); /* the first response */
    assert_int_equal(id, again);
    assert_int_equal(count_changes(), 1);
    /* the same key and request from another token: another request, never given that response */
    char other[512];
    (void)snprintf(other, sizeof(other), "%sIdempotency-Key: k-1\r\n", auth(tok_admin));
    expect_error("POST", "/api/v1/changes", other, submit_body("topic", "topic"), 422,
                 "body or token");
    body = submit_body("other", "other");
    char headers[512];
    (void)snprintf(headers, sizeof(headers), "%sIdempotency-Key: k-1\r\n", auth(tok_submit));
    expect_error("POST", "/api/v1/changes", headers, body, 422,
                 "idempotency key 'k-1' was used for another request");
    assert_int_equal(count_changes(), 1);
    /* kept 7 days: older, the key is a new one (the old response is not replayed) */
    fx_sql_exec("UPDATE idempotency SET created_at = created_at - 8 * 86400");
    reply r;
    http(&r, "POST", "/api/v1/changes", headers, body);
    assert_int_equal(r.status, 201);
    reply_free(&r);
    assert_int_equal(count_changes(), 2);
    body = submit_body("other", "other");
    (void)snprintf(headers, sizeof(headers), "%sIdempotency-Key: bad key\r\n", auth(tok_submit));
    expect_error("POST", "/api/v1/changes", headers, body, 400, "header 'Idempotency-Key' must be");
    /* without a key, the same submit again is the store's refusal */
    body = submit_body("topic", "topic");
    expect_error("POST", "/api/v1/changes", auth(tok_submit), body, 409, "");
    assert_int_equal(count_changes(), 2);
}

/* GET /api/v1/levels: the post level's commits × configurations, and the nightly runs. */
static void test_levels(void **state)
{
    (void)state;
    start(NULL);
    reply r;
    http(&r, "GET", "/api/v1/levels", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "target")), "main");
    assert_int_equal(json_array_size(json_object_get(json_object_get(r.json, "post"), "commits")),
                     0);
    assert_int_equal(json_array_size(json_object_get(r.json, "nightly")), 0);
    reply_free(&r);
    /* the store's rows, as the post and nightly levels leave them */
    gate_store *st = gate_get_store(srv_gate);
    const char *names[] = {"long", "lint"};
    char base[GATE_OID_HEX], other[GATE_OID_HEX];
    (void)snprintf(base, sizeof(base), "%s", head_of("main"));
    (void)snprintf(other, sizeof(other), "%s", head_of("topic"));
    fx_ok(gate_store_post_add(st, "main", base, "base", names, 2, 100));
    fx_ok(gate_store_post_add(st, "main", other, "topic", names, 1, 101));
    char was[GATE_POST_STATE_MAX];
    fx_ok(gate_store_post_start(st, "main", other, "long", 102));
    fx_ok(gate_store_post_finish(st, "main", other, "long", true, "/x.log", 103, was));
    fx_ok(gate_store_nightly_run_now(st, "main", "long", base, 200));
    http(&r, "GET", "/api/v1/levels", NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *post = json_object_get(r.json, "post");
    assert_int_equal(json_array_size(json_object_get(post, "configs")), 2);
    json_t *commits = json_object_get(post, "commits");
    assert_int_equal(json_array_size(commits), 2);
    json_t *newest = json_array_get(commits, 0);
    assert_string_equal(json_string_value(json_object_get(newest, "commit")), other);
    assert_string_equal(json_string_value(json_object_get(newest, "subject")), "topic");
    json_t *cell = json_object_get(json_object_get(newest, "configs"), "long");
    assert_string_equal(json_string_value(json_object_get(cell, "outcome")), "failed");
    assert_int_equal(json_integer_value(json_object_get(cell, "fails")), 1);
    json_t *older = json_object_get(json_array_get(commits, 1), "configs");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(older, "lint"), "outcome")), "not run");
    json_t *run = json_array_get(json_object_get(r.json, "nightly"), 0);
    assert_string_equal(json_string_value(json_object_get(run, "config")), "long");
    assert_string_equal(json_string_value(json_object_get(run, "commit")), base);
    assert_string_equal(json_string_value(json_object_get(run, "outcome")), "not run");
    assert_int_equal(json_integer_value(json_object_get(run, "due_at")), 200);
    reply_free(&r);
    expect_error("POST", "/api/v1/levels", auth(tok_admin), "{}", 405, "");
}

/* GET /api/v1/branch: what the dashboard's form fills in before a submit. */
static void test_branch_view(void **state)
{
    (void)state;
    start(NULL);
    reply r;
    http(&r, "GET", "/api/v1/branch?name=topic", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "head")), head_of("topic"));
    assert_string_equal(json_string_value(json_object_get(r.json, "branch")), "topic");
    assert_non_null(json_string_value(json_object_get(r.json, "subject")));
    assert_true(json_is_false(json_object_get(r.json, "in_target")));
    assert_true(json_is_null(json_object_get(r.json, "active_change")));
    reply_free(&r);
    /* once queued: its change; what it names is what a submit at that head queues */
    long long id = submit("topic", NULL);
    http(&r, "GET", "/api/v1/branch?name=topic", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "active_change")), id);
    reply_free(&r);
    /* the target itself holds its own head */
    http(&r, "GET", "/api/v1/branch?name=main", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "in_target")));
    reply_free(&r);
    expect_error("GET", "/api/v1/branch?name=nosuch", NULL, NULL, 404, "no branch 'nosuch'");
    expect_error("GET", "/api/v1/branch", NULL, NULL, 400, "name (the branch) is required");
    expect_error("GET", "/api/v1/branch?name=a..b", NULL, NULL, 400, "a..b");
    expect_error("GET", "/api/v1/branch?name=%24%28reboot%29", NULL, NULL, 400, "$(reboot)");
}

/* The server's threads run at nice 10 (gate_web_options.nice), the caller's thread as it was. */
static int thread_nice(pid_t tid)
{
    char path[64], buf[1024];
    (void)snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -100;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    (void)fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* fields after the command's name: 3 is state, 19 nice */
    int field = 2, nice = -100;
    for (; p != NULL && *p != '\0'; p++)
        if (*p == ' ' && ++field == 19) {
            nice = (int)strtol(p + 1, NULL, 10);
            break;
        }
    return nice;
}

static void test_server_threads_nice(void **state)
{
    (void)state;
    int before = thread_nice((pid_t)gettid());
    start(NULL);
    reply r;
    http(&r, "GET", "/api/v1/queue", NULL, NULL); /* the epoll thread has met a connection */
    assert_int_equal(r.status, 200);
    reply_free(&r);
    assert_int_equal(thread_nice((pid_t)gettid()), before);
    unsigned niced = 0, need = before < 10 ? 2u : 1u; /* the epoll thread and the ticker */
    int want = before > 10 ? before : 10; /* a test run that is nicer already stays so */
    for (int tries = 0; tries < 100 && niced < need; tries++) { /* the ticker lowers itself */
        if (tries > 0)
            (void)usleep(20000);
        DIR *d = opendir("/proc/self/task");
        assert_non_null(d);
        niced = 0;
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            if (e->d_name[0] != '.' && thread_nice((pid_t)strtol(e->d_name, NULL, 10)) == want)
                niced++;
        (void)closedir(d);
    }
    assert_true(niced >= need);
}

static void test_pause_resume(void **state)
{
    (void)state;
    start(NULL);
    reply r;
    http(&r, "POST", "/api/v1/queue/pause", auth(tok_admin), "{\"reason\":\"release freeze\"}");
    assert_int_equal(r.status, 200);
    json_t *p = json_object_get(r.json, "paused");
    assert_string_equal(json_string_value(json_object_get(p, "reason")), "release freeze");
    reply_free(&r);
    expect_error("POST", "/api/v1/queue/pause", auth(tok_admin), "{}", 400,
                 "field 'reason' is missing");
    http(&r, "POST", "/api/v1/queue/resume", auth(tok_admin), NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(json_object_get(r.json, "paused")));
    reply_free(&r);
    expect_error("POST", "/api/v1/queue/resume", auth(tok_admin), NULL, 409, "is not paused");
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind IN ('pause', 'resume') "
                                "AND ?1 IS NOT NULL",
                                "x"),
                     2);
}

/* A change's state, read on a gate of its own (the server's is its thread's). */
static gate_change_state state_of(long long id)
{
    gate *g = fx_open();
    gate_change_state st = fx_state_of(g, id);
    gate_close(g);
    return st;
}

/* `keel-gate status` (text, or --json) into a malloc'd string. */
static char *status_text(bool json)
{
    gate *g = fx_open();
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    fx_ok(gate_status(g, f, json ? (unsigned)GATE_STATUS_JSON : 0u));
    assert_int_equal(fclose(f), 0);
    gate_close(g);
    return text;
}

static void test_pause_holds_the_queue(void **state)
{
    (void)state;
    start(NULL);
    reply r;
    http(&r, "POST", "/api/v1/queue/pause", auth(tok_admin), "{\"reason\":\"release freeze\"}");
    assert_int_equal(r.status, 200);
    reply_free(&r);
    long long id = submit("topic", NULL); /* submissions are still taken */
    gate_run_stats st = fx_run_once();    /* returns: nothing may start, nothing runs */
    assert_int_equal(st.landed, 0);
    assert_int_equal(st.builds, 0);
    assert_int_equal(state_of(id), GATE_CHANGE_QUEUED);
    char *text = status_text(false);
    assert_non_null(strstr(text, "queue: PAUSED since "));
    assert_non_null(strstr(text, ": release freeze"));
    free(text);
    text = status_text(true);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "paused"), "reason")),
                        "release freeze");
    json_decref(j);
    free(text);
    http(&r, "POST", "/api/v1/queue/resume", auth(tok_admin), NULL);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    st = fx_run_once();
    assert_int_equal(st.landed, 1);
    assert_int_equal(state_of(id), GATE_CHANGE_LANDED);
    text = status_text(false);
    assert_null(strstr(text, "PAUSED"));
    free(text);
}

/*
 * The server's buffers (request bodies, responses, event streams) on module
 * gate_web's heap: every kind of request uses it, and all of it is given
 * back once the server stops (devel's poisoned heap checks each block).
 */
static void test_server_heap(void **state)
{
    (void)state;
    keel_heap_stats before, after;
    fx_ok(keel_heap_stats_get(GATE_WEB_HEAP, &before));
    start(NULL);
    reply r;
    http(&r, "GET", "/", NULL, NULL);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    http(&r, "GET", "/api/v1/queue", NULL, NULL);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    (void)submit("topic", NULL);
    expect_error("POST", "/api/v1/changes", auth(tok_submit), "{\"branch\":", 400, "malformed");
    int fd = open_events("0");
    char buf[8192];
    size_t len = 0;
    assert_true(read_until(fd, buf, sizeof(buf), &len, "event: submit"));
    (void)close(fd);
    gate_web_stop(srv);
    srv = NULL;
    /* the server's threads have ended: their counts are in (keel_heap_stats_get) */
    fx_ok(keel_heap_stats_get(GATE_WEB_HEAP, &after));
    /* the server, and per request at least its state and its response */
    assert_true(after.allocations >= before.allocations + 10);
    assert_int_equal(after.live_bytes, before.live_bytes);
    assert_int_equal(after.live_blocks, before.live_blocks);
    assert_int_equal(after.allocations - before.allocations, after.frees - before.frees);
}

static void test_events_stream(void **state)
{
    (void)state;
    start(NULL);
    long long first = submit("topic", NULL);
    int fd = open_events("0");
    char buf[16384];
    size_t len = 0;
    assert_true(read_until(fd, buf, sizeof(buf), &len, "event: submit"));
    assert_non_null(strstr(buf, "text/event-stream"));
    char want[64];
    (void)snprintf(want, sizeof(want), "\"change\":%lld", first);
    assert_non_null(strstr(buf, want));
    /* live: a change submitted now comes down the open stream */
    long long second = submit("other", NULL);
    (void)snprintf(want, sizeof(want), "\"change\":%lld", second);
    assert_true(read_until(fd, buf, sizeof(buf), &len, want));
    (void)close(fd);
    /* resumed after the last id seen: only what came after */
    long long last = fx_sql_int("SELECT max(id) FROM events WHERE ?1 IS NOT NULL", "x");
    fd = connect_srv();
    char resume[160];
    (void)snprintf(resume, sizeof(resume),
                   "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %lld\r\n\r\n",
                   last - 1);
    send_all(fd, resume, strlen(resume));
    len = 0;
    char id_line[48];
    (void)snprintf(id_line, sizeof(id_line), "id: %lld\n", last);
    assert_true(read_until(fd, buf, sizeof(buf), &len, id_line));
    (void)snprintf(id_line, sizeof(id_line), "id: %lld\n", last - 1);
    assert_null(strstr(buf, id_line));
    (void)close(fd);
    expect_error("GET", "/api/v1/events?after=x", NULL, NULL, 400, "must be an event id, not 'x'");
}

static void test_slow_and_many_connections(void **state)
{
    (void)state;
    gate_web_options o;
    gate_web_options_default(&o);
    o.max_connections = 40;
    o.timeout_s = 1;
    start(&o);
    /* 30 clients that send half a request and nothing more: the server answers others */
    int slow[30];
    for (int i = 0; i < 30; i++) {
        slow[i] = connect_srv();
        send_all(slow[i], "GET /api/v1/qu", 14);
    }
    reply r;
    http(&r, "GET", "/api/v1/queue", NULL, NULL);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    /* past the limit: 503, a JSON error */
    int more[20];
    for (int i = 0; i < 20; i++)
        more[i] = connect_srv();
    fx_sleep_ms(100);
    http(&r, "GET", "/api/v1/queue", NULL, NULL);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(error_of(&r), "too many connections"));
    reply_free(&r);
    for (int i = 0; i < 20; i++)
        (void)close(more[i]);
    /* the slow ones are closed after the timeout */
    fx_sleep_ms(2500);
    char c;
    for (int i = 0; i < 30; i++) {
        assert_int_equal(recv(slow[i], &c, 1, 0), 0);
        (void)close(slow[i]);
    }
    http(&r, "GET", "/api/v1/queue", NULL, NULL);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

/* --per-address: one client's connections past the limit are answered 429, others go on */
static void test_per_address(void **state)
{
    (void)state;
    gate_web_options o;
    gate_web_options_default(&o);
    o.max_per_address = 3;
    start(&o);
    int held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = connect_srv();
        send_all(held[i], "GET /api/v1/qu", 14);
    }
    fx_sleep_ms(100);
    expect_error("GET", "/api/v1/queue", NULL, NULL, 429,
                 "too many connections from '127.0.0.1' (at most 3 at once)");
    /* a fourth, held open: the connections opened before it go on */
    int over = connect_srv();
    send_all(over, "GET /api/v1/qu", 14);
    fx_sleep_ms(100);
    static const char rest[] = "eue HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    reply r;
    send_all(held[0], rest, sizeof(rest) - 1);
    read_reply(held[0], &r); /* closes held[0] */
    assert_int_equal(r.status, 200);
    reply_free(&r);
    /* held[0] closed: the fourth's address is within the limit again, so it is answered */
    fx_sleep_ms(100);
    send_all(over, rest, sizeof(rest) - 1);
    read_reply(over, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    fx_sleep_ms(200);
    http(&r, "GET", "/api/v1/queue", NULL, NULL);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    for (int i = 1; i < 3; i++)
        (void)close(held[i]);
}

/* run --serve: the API from within run, on a gate of its own (here: run --once, then it stops) */
static void test_run_serves(void **state)
{
    (void)state;
    start(NULL);
    (void)submit("topic", NULL);
    char *out = NULL, *err = NULL;
    size_t olen = 0, elen = 0;
    FILE *fo = open_memstream(&out, &olen), *fe = open_memstream(&err, &elen);
    assert_true(fo != NULL && fe != NULL);
    char *argv[] = {"keel-gate", "--repo", fx_repo,   "--state",     fx_state,
                    "run",       "--once", "--serve", "127.0.0.1:0", NULL};
    int rc = gate_cli_main(9, argv, fo, fe);
    assert_int_equal(fclose(fo), 0);
    assert_int_equal(fclose(fe), 0);
    if (rc != 0)
        print_error("%s%s", out, err);
    assert_int_equal(rc, 0);
    assert_true(strncmp(out, "serving http://127.0.0.1:", 25) == 0);
    assert_non_null(strstr(out, "1 landed"));
    free(out);
    free(err);
}

/* Change the store behind the gate's back (sqlite directly), to place changes in the past. */
/* A write with no event of its own (a gate in another process building, say): "changed". */
static void test_events_changed(void **state)
{
    (void)state;
    start(NULL);
    (void)submit("topic", NULL);
    int fd = open_events(NULL);
    char buf[16384];
    size_t len = 0;
    assert_true(read_until(fd, buf, sizeof(buf), &len, "retry: 2000\n\n"));
    fx_sleep_ms(300); /* the stream has looked once: nothing changed */
    assert_null(strstr(buf, "event: changed"));
    fx_sql_exec("UPDATE changes SET updated_at = updated_at + 1");
    assert_true(read_until(fd, buf, sizeof(buf), &len, "event: changed\ndata: {}\n\n"));
    /* a notice, not an event: no id (Last-Event-ID stays the last event's) */
    assert_null(strstr(buf, "id: "));
    (void)close(fd);
}
static void test_series(void **state)
{
    (void)state;
    start(NULL);
    reply r;
    http(&r, "GET", "/api/v1/series", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "step")), 600);
    json_t *q = json_object_get(r.json, "queue_length");
    assert_int_equal(json_array_size(q), 145);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(q, 144), "length")), 0);
    assert_int_equal(json_array_size(json_object_get(r.json, "landed")), 0);
    assert_true(json_is_null(json_object_get(r.json, "land_seconds_median")));
    reply_free(&r);

    /* two land, submitted two hours ago and landed one hour ago; a third waits */
    (void)submit("topic", NULL);
    (void)submit("other", NULL);
    assert_int_equal(fx_run_once().landed, 2);
    long long third = submit("third", NULL);
    fx_sql_exec(
        "UPDATE changes SET submitted_at = submitted_at - 7200, updated_at = updated_at - 3600 "
        "WHERE state = 'landed'");
    http(&r, "GET", "/api/v1/series", NULL, NULL);
    assert_int_equal(r.status, 200);
    long long to = json_integer_value(json_object_get(r.json, "to"));
    assert_int_equal(json_integer_value(json_object_get(r.json, "from")), to - 144LL * 600);
    q = json_object_get(r.json, "queue_length");
    assert_int_equal(json_array_size(q), 145);
    json_t *last = json_array_get(q, 144);
    assert_int_equal(json_integer_value(json_object_get(last, "time")), to);
    assert_int_equal(json_integer_value(json_object_get(last, "length")), 1); /* third */
    /* an hour and a half ago: both were queued */
    json_t *then = json_array_get(q, 144 - 9);
    assert_int_equal(json_integer_value(json_object_get(then, "time")), to - 9LL * 600);
    assert_int_equal(json_integer_value(json_object_get(then, "length")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(q, 144 - 13), "length")), 0);
    json_t *landed = json_object_get(r.json, "landed");
    assert_int_equal(json_array_size(landed), 2);
    for (size_t i = 0; i < 2; i++) {
        long long took = json_integer_value(json_object_get(json_array_get(landed, i), "seconds"));
        assert_true(took >= 3600 && took < 3660);
        assert_true(json_integer_value(json_object_get(json_array_get(landed, i), "change")) !=
                    third);
    }
    assert_int_equal(json_integer_value(json_object_get(r.json, "landed_count")), 2);
    long long median = json_integer_value(json_object_get(r.json, "land_seconds_median"));
    assert_true(median >= 3600 && median < 3660);
    assert_false(json_is_true(json_object_get(r.json, "truncated")));
    reply_free(&r);
    /* of two, the median is their mean (not the longer) */
    fx_sql_exec("UPDATE changes SET submitted_at = submitted_at - 100 WHERE id = (SELECT min(id) "
                "FROM changes WHERE state = 'landed')");
    http(&r, "GET", "/api/v1/series", NULL, NULL);
    landed = json_object_get(r.json, "landed");
    long long t0 = json_integer_value(json_object_get(json_array_get(landed, 0), "seconds"));
    long long t1 = json_integer_value(json_object_get(json_array_get(landed, 1), "seconds"));
    assert_int_equal(json_integer_value(json_object_get(r.json, "land_seconds_median")),
                     (t0 + t1) / 2);
    assert_true(t0 != t1);
    reply_free(&r);

    /* ten seconds in the queue, between two of the plot's times: the step says so */
    fx_sql_exec("UPDATE changes SET submitted_at = strftime('%s','now') - 3300, updated_at = "
                "strftime('%s','now') - 3290 WHERE state = 'landed'");
    http(&r, "GET", "/api/v1/series", NULL, NULL);
    q = json_object_get(r.json, "queue_length");
    long long most = 0;
    for (size_t i = 136; i <= 142; i++) {
        long long len = json_integer_value(json_object_get(json_array_get(q, i), "length"));
        most = len > most ? len : most;
    }
    assert_int_equal(most, 2);
    reply_free(&r);
    /* the last two hours: steps of 50 s, the landings still in */
    http(&r, "GET", "/api/v1/series?hours=2", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "step")), 50);
    assert_int_equal(json_array_size(json_object_get(r.json, "landed")), 2);
    reply_free(&r);
    expect_error("GET", "/api/v1/series?hours=0", NULL, NULL, 400, "hours must be");
    expect_error("GET", "/api/v1/series?hours=169", NULL, NULL, 400, "hours must be");
    expect_error("GET", "/api/v1/series?hours=x", NULL, NULL, 400, "hours must be");
    expect_error("POST", "/api/v1/series", auth(tok_admin), NULL, 405, "takes GET");
}

/* The dashboard's files, from the binary, each with its type and the strict policy. */
static void test_dashboard_files(void **state)
{
    (void)state;
    start(NULL);
    static const char *const files[][2] = {
        {"/", "text/html"}, {"/dashboard.js", "text/javascript"}, {"/dashboard.css", "text/css"}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        reply r;
        http(&r, "GET", files[i][0], NULL, NULL);
        if (r.status != 200)
            print_error("GET %s: %d %s\n", files[i][0], r.status, r.body);
        assert_int_equal(r.status, 200);
        char type[64];
        (void)snprintf(type, sizeof(type), "Content-Type: %s", files[i][1]);
        assert_non_null(strstr(r.head, type));
        assert_non_null(strstr(r.head, "Content-Security-Policy: default-src 'none'; "
                                       "script-src 'self'; style-src 'self'"));
        assert_true(r.len > 100);
        /* nothing from elsewhere: no address of another site (but SVG's namespace name) */
        for (const char *p = r.body; (p = strstr(p, "http")) != NULL; p++)
            if (strncmp(p, "https://", 8) == 0 || strncmp(p, "http://", 7) == 0)
                assert_int_equal(strncmp(p, "http://www.w3.org/2000/svg'", 27), 0);
        reply_free(&r);
    }
    reply r;
    http(&r, "GET", "/", NULL, NULL);
    assert_non_null(strstr(r.body, "<script src=\"dashboard.js\""));
    reply_free(&r);
    expect_error("POST", "/", auth(tok_admin), NULL, 405, "takes GET, HEAD");
    expect_error("GET", "/dashboard.jsx", NULL, NULL, 404, "no endpoint");
    expect_error("GET", "/../dashboard.js", NULL, NULL, 400, "'..' segment");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_cut_in_a_character),
        cmocka_unit_test_teardown(test_queue_and_history, stop),
        cmocka_unit_test_teardown(test_bad_input, stop),
        cmocka_unit_test_teardown(test_roles, stop),
        cmocka_unit_test_teardown(test_token_reads, stop),
        cmocka_unit_test_teardown(test_idempotency_and_expected_head, stop),
        cmocka_unit_test_teardown(test_bad_heads_and_nul, stop),
        cmocka_unit_test_teardown(test_bad_query, stop),
        cmocka_unit_test_teardown(test_pause_resume, stop),
        cmocka_unit_test_teardown(test_pause_holds_the_queue, stop),
        cmocka_unit_test_teardown(test_events_stream, stop),
        cmocka_unit_test_teardown(test_slow_and_many_connections, stop),
        cmocka_unit_test_teardown(test_run_serves, stop),
        cmocka_unit_test_teardown(test_series, stop),
        cmocka_unit_test_teardown(test_dashboard_files, stop),
        cmocka_unit_test_teardown(test_events_changed, stop),
        cmocka_unit_test_teardown(test_per_address, stop),
        cmocka_unit_test_teardown(test_branch_view, stop),
        cmocka_unit_test_teardown(test_levels, stop),
        cmocka_unit_test_teardown(test_server_threads_nice, stop),
        cmocka_unit_test_teardown(test_server_heap, stop),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
