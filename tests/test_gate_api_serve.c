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
#include "web.h"

/* fd's receive timeout, ms */
static void recv_timeout(int fd, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
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
    memcpy(chunk + n + 8192, "\r\n", 2);
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
    reply_free(&r);
    assert_int_equal(count_changes(), before);
    http(&r, "GET", "/api/v1/queue", NULL, NULL); /* and the server goes on */
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_chunked_past_the_limit, stop),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
