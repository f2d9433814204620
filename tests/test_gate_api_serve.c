/*
 * test_gate_api_serve.c - keel-gate serve's server against clients that
 * would hold it (gate/web/server.c, docs/gate-api.md "The server"): a body
 * sent in chunks past the limit, a request trickled past the deadline, and
 * the slow git work of a submit to a remote's gate, done while the server
 * answers others.  A real server on a free localhost port, requests written
 * by hand on a socket.
 */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
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
#include "remote.h"
#include "web.h"

/* fd's receive timeout, ms */
static void recv_timeout(int fd, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
}

/* The value of header `name` in `head` (a response's head as read_reply keeps it) into out. */
static bool header_value(const char *head, const char *name, char *out, size_t size)
{
    char key[64];
    (void)snprintf(key, sizeof(key), "\r\n%s: ", name);
    const char *at = strstr(head, key);
    if (at == NULL)
        return false;
    at += strlen(key);
    const char *end = strstr(at, "\r\n");
    size_t n = end != NULL ? (size_t)(end - at) : strlen(at);
    (void)snprintf(out, size, "%.*s", (int)n, at);
    return true;
}

/*
 * The headers of every response (server.c's common_headers) are those of an
 * answer written on the socket too: `head`'s are the same as those of a
 * response libmicrohttpd sends, a 413 from Content-Length.
 */
static void common_headers_as_sent(const char *head)
{
    static const char *const names[] = {"Cache-Control", "X-Content-Type-Options",
                                        "Content-Security-Policy", "Referrer-Policy"};
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "POST /api/v1/changes HTTP/1.1\r\nHost: x\r\n%sContent-Length: 70000\r\n"
                     "Connection: close\r\n\r\n",
                     auth(tok_submit));
    int fd = connect_srv();
    send_all(fd, req, (size_t)n);
    reply r;
    read_reply(fd, &r);
    assert_int_equal(r.status, 413);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char want[512], got[512];
        assert_true(header_value(r.head, names[i], want, sizeof(want)));
        if (!header_value(head, names[i], got, sizeof(got)))
            print_error("no %s on the answer written on the socket:\n%s\n", names[i], head);
        assert_true(header_value(head, names[i], got, sizeof(got)));
        assert_string_equal(got, want);
    }
    reply_free(&r);
}

/*
 * A body in chunks past the limit is refused as soon as the limit is passed,
 * not read to its end first: here its end never comes, and the 413 does.
 */
static void test_chunked_past_the_limit(void **state)
{
    (void)state;
    start(NULL);
    long long before = count_changes();
    int fd = connect_srv();
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "POST /api/v1/changes HTTP/1.1\r\nHost: x\r\n%s"
                     "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
                     auth(tok_submit));
    send_all(fd, req, (size_t)n);
    char chunk[8192 + 16];
    n = snprintf(chunk, sizeof(chunk), "2000\r\n");
    memset(chunk + n, 'x', 8192);
    (void)snprintf(chunk + n + 8192, 3, "\r\n");
    for (int i = 0; i < 9; i++) /* 72 KiB, past the 64 KiB limit; no last chunk */
        send_all(fd, chunk, (size_t)n + 8192 + 2);
    recv_timeout(fd, 3000);
    long long t0 = fx_now_ms();
    reply r;
    read_reply(fd, &r);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(error_of(&r), "larger than 65536 bytes"));
    assert_non_null(strstr(r.head, "Connection: close"));
    assert_true(fx_now_ms() - t0 < 2000);
    common_headers_as_sent(r.head);
    reply_free(&r);
    assert_int_equal(count_changes(), before);
    http(&r, "GET", "/api/v1/queue", NULL, NULL); /* and the server goes on */
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

/*
 * A client that goes on sending after the server has answered on the socket
 * (as one does that writes its whole request before it reads): `first`, then
 * `unit` every `every_ms` until `for_ms` from the connection's opening, every
 * send checked; then what came back, read to its end.  The answer must come
 * whole, the client must never be reset while it sends, and the connection
 * must end with the server's FIN, not a reset: a close with the client's
 * bytes unread would reset it, and a reset can take the answer with it.
 */
static void keep_sending(const char *first, const char *unit, long every_ms, long for_ms,
                         int status, const char *error)
{
    long long t0 = fx_now_ms();
    int fd = connect_srv();
    struct timeval tv = {2, 0}; /* a send that blocks this long is a failure too */
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
    int send_err = 0;
    size_t sent = 0;
    const char *what = first;
    while (send_err == 0 && fx_now_ms() - t0 < for_ms) {
        size_t len = strlen(what);
        while (len > 0) {
            ssize_t n = send(fd, what, len, MSG_NOSIGNAL);
            if (n <= 0) {
                send_err = n < 0 ? errno : EPIPE;
                break;
            }
            what += n;
            len -= (size_t)n;
            sent += (size_t)n;
        }
        what = unit;
        fx_sleep_ms(every_ms);
    }
    char buf[4096];
    size_t got = 0;
    int end_err = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0) {
            end_err = n < 0 ? errno : 0;
            break;
        }
        got += (size_t)n;
        if (got == sizeof(buf) - 1)
            break;
    }
    buf[got] = '\0';
    (void)close(fd);
    char line[32];
    (void)snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
    const char *body = strstr(buf, "\r\n\r\n");
    const char *cl = strstr(buf, "Content-Length: ");
    bool whole = strncmp(buf, line, strlen(line)) == 0 && body != NULL && cl != NULL &&
                 strtoul(cl + 16, NULL, 10) == strlen(body + 4) && strstr(body, error) != NULL;
    if (!whole || send_err != 0 || end_err != 0)
        print_error("%zu bytes sent, %s; %zu bytes back, %s, ending in %s:\n%s\n", sent,
                    send_err != 0 ? strerror(send_err) : "every send went", got,
                    whole ? "the answer whole" : "not the answer whole",
                    end_err != 0 ? strerror(end_err) : "the server's FIN", buf);
    assert_true(whole);
    assert_int_equal(send_err, 0);
    assert_int_equal(end_err, 0);
}

/*
 * The 413 of a chunked body past the limit, to a client that goes on sending
 * chunks for 600 ms: it has every send go and reads the whole answer, then
 * the server's FIN.
 */
static void test_chunked_past_the_limit_lingers(void **state)
{
    (void)state;
    start(NULL);
    long long before = count_changes();
    enum { FIRST = 80 * 1024 };
    char *first = malloc(FIRST);
    char *unit = malloc(8300);
    assert_non_null(first);
    assert_non_null(unit);
    int n = snprintf(first, 1024,
                     "POST /api/v1/changes HTTP/1.1\r\nHost: x\r\n%s"
                     "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
                     auth(tok_submit));
    int u = snprintf(unit, 16, "2000\r\n");
    memset(unit + u, 'x', 8192);
    (void)snprintf(unit + u + 8192, 3, "\r\n");
    for (int i = 0; i < 9; i++) /* 72 KiB at once, past the 64 KiB limit */
        n += snprintf(first + n, FIRST - (size_t)n, "%s", unit);
    keep_sending(first, unit, 20, 600, 413, "larger than 65536 bytes");
    free(first);
    free(unit);
    assert_int_equal(count_changes(), before);
    reply r;
    http(&r, "GET", "/api/v1/queue", NULL, NULL); /* and the server goes on */
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

/*
 * The 408 of a request past the deadline, to a client that goes on sending
 * a header a byte every 20 ms for a second past it: every send goes, the
 * whole answer comes, then the server's FIN.
 */
static void test_deadline_lingers(void **state)
{
    (void)state;
    gate_web_options o;
    gate_web_options_default(&o);
    o.deadline_s = 1;
    start(&o);
    keep_sending("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nX-Slow: ", "a", 20, 2000, 408,
                 "did not arrive whole within 1 s");
    /*
     * A client that reads the 408 and its FIN but keeps its socket open: the
     * server closes its side all the same once the lingering ends (2 s), not
     * at libmicrohttpd's idle timeout (15 s): a byte sent then is answered
     * with a reset, and the send after it fails.
     */
    int fd = connect_srv();
    static const char part[] = "GET /api/v1/queue HTTP/1.1\r\nHost: x\r\n";
    send_all(fd, part, sizeof(part) - 1);
    char buf[2048];
    size_t len = 0;
    assert_true(read_until(fd, buf, sizeof(buf), &len, "(the server's deadline)"));
    assert_int_equal(recv(fd, buf, sizeof(buf), 0), 0); /* the FIN after it */
    long long t0 = fx_now_ms();
    int err = 0;
    while (err == 0 && fx_now_ms() - t0 < 6000) {
        fx_sleep_ms(200);
        if (send(fd, "x", 1, MSG_NOSIGNAL) < 0)
            err = errno;
    }
    long long took = fx_now_ms() - t0;
    if (err == 0 || took > 3500)
        print_error("the server's side closed after %lld ms (%s)\n", took,
                    err != 0 ? strerror(err) : "not at all");
    assert_true(err == EPIPE || err == ECONNRESET);
    assert_true(took <= 3500);
    (void)close(fd);
    reply r;
    http(&r, "GET", "/api/v1/queue", NULL, NULL);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

/*
 * Send `first`, then one byte of `rest` every 300 ms until the server
 * answers or closes (or 8 s): how long that took from the connection's
 * opening, ms.  *r: the answer (status 0: none).
 */
static long long trickle(const char *first, const char *rest, reply *r)
{
    long long t0 = fx_now_ms();
    int fd = connect_srv();
    send_all(fd, first, strlen(first));
    struct pollfd p = {fd, POLLIN, 0};
    for (size_t i = 0; fx_now_ms() - t0 < 8000; i++) {
        if (poll(&p, 1, 300) != 0)
            break;
        if (rest[i % strlen(rest)] != '\0')
            (void)send(fd, rest + i % strlen(rest), 1, MSG_NOSIGNAL);
    }
    long long took = fx_now_ms() - t0;
    memset(r, 0, sizeof(*r));
    if (p.revents != 0)
        read_reply(fd, r);
    else
        (void)close(fd);
    return took;
}

/*
 * A request that never arrives whole, a byte at a time within the idle
 * timeout, is answered 408 at the deadline and closed, in its headers or in
 * its body; an event stream goes on past it, and so does a keep-alive
 * connection's next request.
 */
static void test_request_deadline(void **state)
{
    (void)state;
    gate_web_options o;
    gate_web_options_default(&o);
    o.deadline_s = 2; /* the idle timeout stays 15 s */
    start(&o);
    reply r;
    long long took = trickle("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nX-Slow: ", "abc", &r);
    if (r.status != 408 || took > 3500)
        print_error("headers trickled: %d after %lld ms\n", r.status, took);
    assert_int_equal(r.status, 408);
    assert_true(took >= 1900 && took <= 3500);
    assert_non_null(strstr(error_of(&r), "did not arrive whole within 2 s"));
    assert_non_null(strstr(r.head, "Connection: close"));
    common_headers_as_sent(r.head);
    reply_free(&r);
    char head[512];
    (void)snprintf(head, sizeof(head),
                   "POST /api/v1/changes HTTP/1.1\r\nHost: x\r\n%sContent-Length: 200\r\n\r\n{",
                   auth(tok_submit));
    took = trickle(head, "    ", &r);
    if (r.status != 408 || took > 3500)
        print_error("body trickled: %d after %lld ms\n", r.status, took);
    assert_int_equal(r.status, 408);
    assert_true(took <= 3500);
    reply_free(&r);
    /* an event stream open past the deadline still streams */
    int fd = open_events("0");
    char buf[16384];
    size_t len = 0;
    assert_true(read_until(fd, buf, sizeof(buf), &len, "retry:"));
    fx_sleep_ms(3000);
    long long id = submit("topic", NULL);
    char want[64];
    (void)snprintf(want, sizeof(want), "\"change\":%lld", id);
    assert_true(read_until(fd, buf, sizeof(buf), &len, want));
    (void)close(fd);
    /* a keep-alive connection: each request's deadline from the end of the one before */
    fd = connect_srv();
    static const char get[] = "GET /api/v1/queue HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        fx_sleep_ms(1200); /* 3.6 s in all on the connection, 1.2 s a request */
        send_all(fd, get, sizeof(get) - 1);
        len = 0;
        memset(buf, 0, sizeof(buf));
        assert_true(read_until(fd, buf, sizeof(buf), &len, "\"paused\""));
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
    }
    (void)close(fd);
    http(&r, "GET", "/api/v1/queue", NULL, NULL);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

/* A request's response within timeout_ms (r->status 0: none came, the socket closed): ms taken. */
static long long timed(reply *r, const char *method, const char *path, const char *headers,
                       const char *body, int timeout_ms)
{
    long long t0 = fx_now_ms();
    int fd = http_send(method, path, headers, body);
    struct pollfd p = {fd, POLLIN, 0};
    memset(r, 0, sizeof(*r));
    if (poll(&p, 1, timeout_ms) == 1)
        read_reply(fd, r);
    else
        (void)close(fd);
    return fx_now_ms() - t0;
}

/*
 * A submit to a remote's gate fetches the branch into the mirror under the
 * mirror's lock, which a running gate holds up to 60 s: on a worker, while
 * the server answers others at once; past the workers, 503.  The branch view
 * is a worker's too.
 */
static void test_submit_on_a_worker(void **state)
{
    (void)state;
    api_over_url = true;
    gate_web_options o;
    gate_web_options_default(&o);
    o.max_workers = 1;
    start(&o);
    git_repository *mirror = NULL;
    assert_int_equal(git_repository_open(&mirror, fx_mirror), 0);
    int lock = -1;
    fx_ok(gate_remote_mirror_lock(mirror, &lock)); /* as run holds it */
    char headers[512];
    (void)snprintf(headers, sizeof(headers), "%s", auth(tok_submit));
    char body[256];
    (void)snprintf(body, sizeof(body), "%s", submit_body("topic", "topic"));
    int held = http_send("POST", "/api/v1/changes", headers, body);
    fx_sleep_ms(300);
    reply queue, busy;
    long long took = timed(&queue, "GET", "/api/v1/queue", NULL, NULL, 3000);
    long long took_busy =
        timed(&busy, "POST", "/api/v1/changes", headers, submit_body("other", "other"), 3000);
    gate_remote_mirror_unlock(lock);
    git_repository_free(mirror);
    reply r;
    read_reply(held, &r);
    if (queue.status != 200 || took > 1000 || busy.status != 503)
        print_error("while a submit waits for the mirror's lock: queue %d after %lld ms, another "
                    "submit %d after %lld ms\n",
                    queue.status, took, busy.status, took_busy);
    assert_int_equal(queue.status, 200);
    assert_true(took < 1000);
    assert_int_equal(busy.status, 503);
    assert_non_null(strstr(error_of(&busy), "every worker is busy"));
    assert_non_null(strstr(busy.head, "Retry-After: 1"));
    assert_int_equal(r.status, 201);
    long long id = json_integer_value(json_object_get(json_object_get(r.json, "change"), "id"));
    assert_true(id > 0);
    reply_free(&queue);
    reply_free(&busy);
    reply_free(&r);
    /* the branch view, on the worker: the branch as the submit fetched it */
    http(&r, "GET", "/api/v1/branch?name=topic", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "head")), head_of("topic"));
    assert_int_equal(json_integer_value(json_object_get(r.json, "active_change")), id);
    reply_free(&r);
    expect_error("GET", "/api/v1/branch?name=nothing", NULL, NULL, 404, "no branch 'nothing'");
    expect_error("POST", "/api/v1/changes", headers, submit_body("topic", "other"), 409,
                 "not at the expected head");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_chunked_past_the_limit, stop),
        cmocka_unit_test_teardown(test_chunked_past_the_limit_lingers, stop),
        cmocka_unit_test_teardown(test_request_deadline, stop),
        cmocka_unit_test_teardown(test_deadline_lingers, stop),
        cmocka_unit_test_teardown(test_submit_on_a_worker, stop),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
