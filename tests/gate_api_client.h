/*
 * gate_api_client.h - what the API's tests (test_gate_api*.c) share: a
 * repository with branches, three tokens (read, submit, admin), keel-gate
 * serve's server on a free localhost port in this process, and requests
 * written by hand on a socket, so that what is sent is exactly what the
 * test says.
 */
#ifndef KEEL_TEST_GATE_API_CLIENT_H
#define KEEL_TEST_GATE_API_CLIENT_H

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "gate_fixture.h"
#include "web.h"

static gate *srv_gate; /* the server's (its thread's alone) */
static gate_web *srv;
static unsigned short srv_port;
static char tok_read[GATE_TOKEN_MAX], tok_submit[GATE_TOKEN_MAX], tok_admin[GATE_TOKEN_MAX];
static bool api_over_url; /* the server's gate reaches the repository as file:// (a mirror) */

static inline void add_token(gate *g, const char *name, gate_role role, char *token)
{
    char hash[GATE_TOKEN_HASH_HEX];
    fx_ok(gate_token_new(token));
    gate_sha256_hex(token, strlen(token), hash);
    fx_ok(gate_store_token_add(gate_get_store(g), name, role, hash, 1000));
}

/*
 * A repository with branches (its configuration with `config_lines` more),
 * three tokens, and the server on a free port.
 */
static inline void start_with(const gate_web_options *given, const char *config_lines)
{
    fx_setup_repo("strategy = serial", config_lines);
    fx_branch("topic", "topic.txt", "topic\n");
    fx_branch("other", "other.txt", "other\n");
    fx_branch("third", "third.txt", "third\n");
    if (api_over_url)
        fx_where = fx_url;
    srv_gate = fx_open();
    add_token(srv_gate, "reader", GATE_ROLE_READ, tok_read);
    add_token(srv_gate, "dev", GATE_ROLE_SUBMIT, tok_submit);
    add_token(srv_gate, "ops", GATE_ROLE_ADMIN, tok_admin);
    gate_web_options o;
    gate_web_options_default(&o);
    if (given != NULL)
        o = *given;
    o.listen = "127.0.0.1:0";
    fx_ok(gate_web_start(srv_gate, &o, &srv));
    const char *colon = strrchr(gate_web_address(srv), ':');
    assert_non_null(colon);
    srv_port = (unsigned short)atoi(colon + 1);
    assert_true(srv_port > 0);
}

/* A repository with branches, three tokens, and the server on a free port. */
static inline void start(const gate_web_options *given)
{
    start_with(given, "");
}

static inline int stop(void **state)
{
    gate_web_stop(srv);
    srv = NULL;
    gate_close(srv_gate);
    srv_gate = NULL;
    return fx_teardown(state);
}

static inline int connect_srv(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(srv_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {10, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static inline void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the server may answer (413) and close before it all went */
        data += n;
        len -= (size_t)n;
    }
}

typedef struct reply {
    int status;
    char head[4096];
    char *body; /* NUL-ended */
    size_t len;
    json_t *json; /* the body parsed, when it is JSON */
} reply;

static inline void reply_free(reply *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* Read a whole response (the connection closes after it) from fd into *r. */
static inline void read_reply(int fd, reply *r)
{
    memset(r, 0, sizeof(*r));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            char *grown = realloc(buf, cap + 1);
            if (grown == NULL)
                free(buf);
            assert_non_null(grown);
            buf = grown;
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    (void)close(fd);
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    assert_non_null(end);
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &r->status), 1);
    size_t hl = (size_t)(end - buf);
    (void)snprintf(r->head, sizeof(r->head), "%.*s", (int)(hl < sizeof(r->head) ? hl : 4095), buf);
    r->len = len - hl - 4;
    r->body = malloc(r->len + 1);
    memcpy(r->body, end + 4, r->len);
    r->body[r->len] = '\0';
    free(buf);
    r->json = json_loads(r->body, 0, NULL);
}

/* A request sent: `headers` ("Name: value\r\n" lines, NULL: none), `body` (NULL: none); its socket. */
static inline int http_send(const char *method, const char *path, const char *headers,
                            const char *body)
{
    int fd = connect_srv();
    char req[8192];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, headers != NULL ? headers : "", body != NULL ? strlen(body) : 0);
    assert_true(n > 0 && (size_t)n < sizeof(req));
    send_all(fd, req, (size_t)n);
    if (body != NULL)
        send_all(fd, body, strlen(body));
    return fd;
}

/* A request and its response, as http_send sends it. */
static inline void http(reply *r, const char *method, const char *path, const char *headers,
                        const char *body)
{
    read_reply(http_send(method, path, headers, body), r);
}

static inline const char *auth(const char *token)
{
    static char h[GATE_TOKEN_MAX + 64];
    (void)snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", token);
    return h;
}

/* The response's error message (it must be {"error": "..."}), for strstr. */
static inline const char *error_of(const reply *r)
{
    assert_non_null(r->json);
    assert_int_equal(json_object_size(r->json), 1);
    const char *e = json_string_value(json_object_get(r->json, "error"));
    assert_non_null(e);
    return e;
}

static inline void expect_error(const char *method, const char *path, const char *headers,
                                const char *body, int status, const char *says)
{
    reply r;
    http(&r, method, path, headers, body);
    if (r.status != status || strstr(error_of(&r), says) == NULL)
        print_error("%s %s: %d %s (wanted %d saying '%s')\n", method, path, r.status, r.body,
                    status, says);
    assert_int_equal(r.status, status);
    assert_non_null(strstr(error_of(&r), says));
    reply_free(&r);
}

static inline char *head_of(const char *branch)
{
    static char hex[GATE_OID_HEX];
    git_oid oid;
    fx_head(branch, &oid);
    git_oid_tostr(hex, sizeof(hex), &oid);
    return hex;
}

/* A submit's body: `branch` expected at the head of branch `at`. */
static inline const char *submit_body(const char *branch, const char *at)
{
    static char body[256];
    (void)snprintf(body, sizeof(body), "{\"branch\":\"%s\",\"expected_head\":\"%s\"}", branch,
                   head_of(at));
    return body;
}

/* POST /api/v1/changes for branch at its head; returns the change's id (201 wanted). */
static inline long long submit(const char *branch, const char *extra_headers)
{
    char headers[512];
    const char *body = submit_body(branch, branch);
    (void)snprintf(headers, sizeof(headers), "%s%s", auth(tok_submit),
                   extra_headers != NULL ? extra_headers : "");
    reply r;
    http(&r, "POST", "/api/v1/changes", headers, body);
    if (r.status != 201)
        print_error("submit %s: %d %s\n", branch, r.status, r.body);
    assert_int_equal(r.status, 201);
    long long id = json_integer_value(json_object_get(json_object_get(r.json, "change"), "id"));
    reply_free(&r);
    return id;
}

static inline long long count_changes(void)
{
    return fx_sql_int("SELECT count(*) FROM changes WHERE ?1 IS NOT NULL", "x");
}

/* Read from fd until `want` appears (or 10 s): the text so far into buf. */
static inline bool read_until(int fd, char *buf, size_t size, size_t *len, const char *want)
{
    long long end = fx_now_ms() + 10000;
    while (fx_now_ms() < end) {
        buf[*len] = '\0';
        if (strstr(buf, want) != NULL)
            return true;
        ssize_t n = recv(fd, buf + *len, size - 1 - *len, 0);
        if (n <= 0)
            return false;
        *len += (size_t)n;
    }
    return false;
}

/* GET /api/v1/events on a connection left open (`last`: its Last-Event-ID, NULL: none). */
static inline int open_events(const char *last)
{
    int fd = connect_srv();
    char req[160];
    int n = snprintf(req, sizeof(req), "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n%s%s%s\r\n",
                     last != NULL ? "Last-Event-ID: " : "", last != NULL ? last : "",
                     last != NULL ? "\r\n" : "");
    send_all(fd, req, (size_t)n);
    return fd;
}

#endif /* KEEL_TEST_GATE_API_CLIENT_H */
