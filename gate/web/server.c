/*
 * server.c - keel-gate serve on libmicrohttpd: one epoll thread answers
 * every connection (so the gate's store is used by one thread), a request's
 * body is read whole up to a limit, idle connections are closed after a
 * timeout, a request that has not arrived whole by a deadline is answered
 * 408, and past a number of connections a new one is answered 503.
 * Server-sent events: a stream with nothing to send is suspended, and a
 * ticker thread resumes the suspended ones every EVENTS_TICK_MS to look
 * again; the same thread ends the requests past the deadline, and drains and
 * closes the sockets the server answered on itself (linger).  The slow git
 * work of a submit or a branch view (routes_work.c) runs on a worker thread
 * while its connection is suspended, and the request is routed again once it
 * is done (start_work).
 */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "page.h"
#include "routes_int.h"
#include "web.h"

enum {
    EVENTS_TICK_MS = 250,   /* how often a waiting event stream looks for new events */
    EVENTS_BATCH = 64,      /* events formatted at a time */
    KEEPALIVE_MS = 5000,    /* a comment on an idle event stream, under the timeout */
    CHANGED_MS = 1000,      /* at most one 'changed' notice a second on a stream */
    CONNECTIONS_SPARE = 64, /* MHD's own limit: ours plus these, to answer 503 */
    ADDRESS_MAX = 64,
    LINGER_MAX = 64,            /* sockets answered on by the server itself, lingering at once */
    LINGER_MS = 2000,           /* how long one lingers at most */
    LINGER_BYTES = 1024 * 1024, /* how much of what its client still sends is read at most */
    LINGER_READ = 16 * 1024     /* read (and thrown away) at a time */
};

typedef struct web_stream web_stream;
typedef struct web_conn web_conn;
typedef struct web_worker web_worker;

/*
 * A socket the server answered on itself (say_on_socket: a 408 or a 413
 * while the request still came in), closed gently: a close with the
 * client's bytes unread, or a byte that arrives after it, makes the kernel
 * reset the connection, and a reset can destroy the answer before the client
 * reads it (or fail the client's sends, so that it never reads).  So the
 * answer is followed by a FIN (shutdown SHUT_WR), and a duplicate of the
 * socket's descriptor keeps it open after libmicrohttpd closes its own, while
 * the ticker reads and throws away what the client still sends, until the
 * client ends its side, LINGER_BYTES are read or LINGER_MS pass; then it is
 * closed.  `held`: libmicrohttpd still has the connection (a 408, written
 * by the ticker): its reading is shut down at the end, which wakes
 * libmicrohttpd to close it too, if it has not closed it already (the client
 * ended its side, or sent more of the request, which is refused).
 */
typedef struct web_linger {
    bool used; /* taken under w->lock; freed by the ticker, whose it is while used */
    bool held;
    int fd; /* the duplicate */
    long long until_ms;
    size_t drained;
} web_linger;

typedef struct web_addr {
    uint32_t ip; /* IPv4, network order */
    unsigned count;
} web_addr;

struct gate_web {
    struct MHD_Daemon *daemon;
    gate_web_ctx ctx;
    gate_web_options o;
    char address[ADDRESS_MAX];
    unsigned connections; /* __atomic_ */
    bool quitting;        /* __atomic_ */
    pthread_t ticker;
    bool ticking;
    pthread_mutex_t lock; /* suspended */
    web_stream *suspended;
    web_conn *conns;     /* every connection open (the ticker times the requests they receive) */
    web_worker *workers; /* o.max_workers of them */
    web_addr *addrs;     /* the client addresses with connections, when max_per_address is set */
    size_t naddrs, addrs_cap;
    web_linger lingering[LINGER_MAX];
};

struct web_stream {
    gate_web *w;
    gate *g; /* the target's whose events it streams (?target=) */
    struct MHD_Connection *conn;
    long long cursor;
    char *pending;
    size_t plen, ppos;
    long long sent_ms;
    long long version, changed_ms; /* the store's data version, when 'changed' was last sent */
    web_stream *next;              /* in w->suspended */
};

/*
 * A connection (its socket context) and the deadline of the request it
 * receives: from the connection's opening, or from the end of the request
 * before it on the connection, to the whole request received.  Neither its
 * answer nor an event stream counts, nor the time a worker takes.
 */
struct web_conn {
    struct MHD_Connection *conn;
    int fd;
    long long since_ms;    /* when the request it receives began */
    bool receiving;        /* a request is coming in, the deadline counting (under w->lock) */
    bool expired;          /* past it: answered 408 on the socket, shut down (__atomic_) */
    bool over;             /* --per-address: opened while its address had the most it may */
    web_conn *prev, *next; /* in w->conns, under w->lock */
};

/*
 * A worker: a thread that does one request's git work (gate_web_work) while
 * its connection is suspended, then resumes it to be answered.
 */
struct web_worker {
    gate_web *w;
    struct MHD_Connection *conn;
    gate_web_work *work;
    pthread_t thread;
    bool started; /* under w->lock: a thread to join */
    bool done;    /* __atomic_: its work done, the thread ending */
};

typedef struct web_request {
    gate_web_buf body;   /* on the server's heap */
    gate_web_work *work; /* its git work, on a worker or done (NULL: none) */
} web_request;

void gate_web_options_default(gate_web_options *o)
{
    memset(o, 0, sizeof(*o));
    o->listen = "127.0.0.1:8080";
    o->max_connections = 1536;
    o->timeout_s = 15;
    o->deadline_s = 60;
    o->max_workers = 4;
    o->max_body = (size_t)64 * 1024;
    o->nice = 10;
}

/*
 * The calling thread (one of the server's) at nice w->o.nice, unless it is
 * nicer already: on Linux a thread's nice value is its own, so the gate's
 * loop and its jobs keep theirs.  Raising one's nice value needs no
 * privilege; a failure leaves the priority as it was (said nowhere: the
 * server works the same, only less politely).
 */
static void lower_priority(const gate_web *w)
{
    static __thread bool lowered;
    if (lowered || w->o.nice <= 0)
        return;
    lowered = true;
    id_t tid = (id_t)gettid();
    errno = 0;
    int now = getpriority(PRIO_PROCESS, tid);
    if (errno == 0 && now < w->o.nice)
        (void)setpriority(PRIO_PROCESS, tid, w->o.nice);
}

/* n zeroed bytes on the server's heap (NULL: no memory) */
static void *web_zalloc(size_t n)
{
    void *p = NULL;
    keel_status s = keel_heap_calloc(GATE_WEB_HEAP, 1, n, &p);
    if (!keel_ok(s)) {
        keel_status_ignore(s, "said as 'no memory' by the caller");
        return NULL;
    }
    return p;
}

static void web_free(void *p)
{
    keel_heap_free(GATE_WEB_HEAP, p);
}

/* e's text to send next: a copy of `text` on the server's heap (none when there is no memory) */
static void stream_say(web_stream *e, const char *text)
{
    size_t n = strlen(text);
    e->pending = (char *)web_zalloc(n + 1);
    if (e->pending != NULL)
        memcpy(e->pending, text, n);
    e->plen = e->pending != NULL ? n : 0;
}

static long long mono_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- server-sent events ------------------------------------------------------------------ */

/*
 * A store written with no event of its own (a candidate built, a job started
 * or ended, by a gate in another process): a notice without an id,
 * "event: changed", at most every CHANGED_MS, for a client to read the
 * state again.  Events make one needless.
 */
static void changed(web_stream *e)
{
    long long v = 0;
    keel_status s = gate_store_data_version(gate_get_store(e->w->ctx.g), &v);
    if (!keel_ok(s)) {
        keel_status_ignore(s, "no notice: the events still come");
        return;
    }
    long long now = mono_ms();
    if (e->plen > 0 || v == e->version) {
        e->version = v;
        return;
    }
    if (now - e->changed_ms < CHANGED_MS)
        return; /* said later, as the ticker resumes the stream */
    stream_say(e, "event: changed\ndata: {}\n\n");
    e->version = v;
    e->changed_ms = now;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    web_stream *e = (web_stream *)cls;
    gate_web *w = e->w;
    if (__atomic_load_n(&w->quitting, __ATOMIC_ACQUIRE))
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (e->ppos == e->plen) {
        web_free(e->pending);
        e->pending = NULL;
        e->plen = e->ppos = 0;
        keel_status s =
            gate_web_events_text(e->g, e->cursor, EVENTS_BATCH, &e->pending, &e->plen, &e->cursor);
        if (!keel_ok(s)) {
            keel_status_ignore(s, "the stream ends: the client reconnects with Last-Event-ID");
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        changed(e);
        if (e->plen == 0 && mono_ms() - e->sent_ms >= KEEPALIVE_MS) {
            stream_say(e, ": keep-alive\n\n");
        }
        if (e->plen == 0) { /* nothing yet: the ticker resumes it */
            MHD_suspend_connection(e->conn);
            (void)pthread_mutex_lock(&w->lock);
            e->next = w->suspended;
            w->suspended = e;
            (void)pthread_mutex_unlock(&w->lock);
            return 0;
        }
    }
    size_t n = e->plen - e->ppos < max ? e->plen - e->ppos : max;
    memcpy(buf, e->pending + e->ppos, n);
    e->ppos += n;
    e->sent_ms = mono_ms();
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    web_stream *e = (web_stream *)cls;
    web_free(e->pending);
    web_free(e);
}

/* Resume every suspended stream (each looks for events again). */
static void resume_all(gate_web *w)
{
    (void)pthread_mutex_lock(&w->lock);
    web_stream *list = w->suspended;
    w->suspended = NULL;
    (void)pthread_mutex_unlock(&w->lock);
    for (web_stream *e = list; e != NULL;) {
        web_stream *next = e->next; /* e may be gone once resumed */
        MHD_resume_connection(e->conn);
        e = next;
    }
}

static void expire(gate_web *w);
static void drain_lingering(gate_web *w);

/* Every EVENTS_TICK_MS: the suspended streams resumed, the requests past the deadline ended. */
static void *ticker_main(void *arg)
{
    gate_web *w = (gate_web *)arg;
    lower_priority(w);
    while (!__atomic_load_n(&w->quitting, __ATOMIC_ACQUIRE)) {
        struct timespec ts = {0, EVENTS_TICK_MS * 1000000L};
        (void)nanosleep(&ts, NULL);
        resume_all(w);
        expire(w);
        drain_lingering(w);
    }
    resume_all(w);
    return NULL;
}

/* ---- requests ----------------------------------------------------------------------------- */

typedef struct web_header {
    const char *name, *value;
} web_header;

/*
 * The headers of every response: libmicrohttpd's (add_common_headers) and
 * those the server writes on the socket itself (say_on_socket) alike.
 */
static const web_header common_headers[] = {
    {"Cache-Control", "no-store"},
    {"X-Content-Type-Options", "nosniff"},
    /* the dashboard's own files only, nothing inline, never in a frame */
    {"Content-Security-Policy", GATE_PAGE_CSP},
    {"Referrer-Policy", "no-referrer"},
};
enum { COMMON_HEADERS = sizeof(common_headers) / sizeof(common_headers[0]) };

/*
 * An error response written on socket fd by the server itself, where
 * libmicrohttpd cannot queue one: 0.9.75 takes a response only before a
 * request's body is read or once it is read whole, and none while the
 * request is still coming in.  The status line, its type and length,
 * Connection: close, the common headers and {"error": msg}, as much as the
 * socket takes at once without waiting; the caller then has the socket
 * linger (linger()) and the connection closed.  Only while a request is
 * being received, when libmicrohttpd itself writes nothing on it (but see
 * docs/gate-api.md, "Where a socket answer and libmicrohttpd's could meet").
 */
static void say_on_socket(int fd, int status, const char *msg)
{
    gate_web_resp resp;
    memset(&resp, 0, sizeof(resp));
    gate_web_error(&resp, status, "%s", msg);
    const char *reason = MHD_get_reason_phrase_for((unsigned)status);
    char text[2048];
    int n = snprintf(text, sizeof(text),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n",
                     status, reason != NULL ? reason : "", resp.len);
    size_t len = n > 0 ? (size_t)n : sizeof(text); /* sizeof(text) and past: it does not fit */
    for (size_t i = 0; i < COMMON_HEADERS && len < sizeof(text); i++) {
        n = snprintf(text + len, sizeof(text) - len, "%s: %s\r\n", common_headers[i].name,
                     common_headers[i].value);
        len = n > 0 ? len + (size_t)n : sizeof(text);
    }
    if (len < sizeof(text)) {
        n = snprintf(text + len, sizeof(text) - len, "\r\n%s", resp.body != NULL ? resp.body : "");
        len = n > 0 ? len + (size_t)n : sizeof(text);
    }
    if (len < sizeof(text) && fd >= 0)
        (void)send(fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    gate_web_resp_free(&resp);
}

/*
 * fd, answered on by say_on_socket, lingers (web_linger); under w->lock.
 * With every slot taken (or no descriptor to spare), it is shut down at once
 * as before: a 408's for libmicrohttpd to close it, a 413's as
 * libmicrohttpd closes it.
 */
static void linger(gate_web *w, int fd, bool held)
{
    if (fd < 0)
        return;
    web_linger *l = NULL;
    for (size_t i = 0; i < LINGER_MAX && l == NULL; i++)
        if (!w->lingering[i].used)
            l = &w->lingering[i];
    int dup = l != NULL ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (dup < 0) {
        (void)shutdown(fd, held ? SHUT_RDWR : SHUT_WR);
        return;
    }
    (void)shutdown(dup, SHUT_WR); /* the FIN after the answer */
    l->fd = dup;
    l->held = held;
    l->until_ms = mono_ms() + LINGER_MS;
    l->drained = 0;
    l->used = true;
}

/* l's socket closed, its slot free (on the ticker, or once the server has stopped) */
static void linger_end(gate_web *w, web_linger *l)
{
    if (l->held) /* libmicrohttpd, woken, reads its end and closes its descriptor */
        (void)shutdown(l->fd, SHUT_RD);
    (void)close(l->fd);
    (void)pthread_mutex_lock(&w->lock);
    l->used = false;
    (void)pthread_mutex_unlock(&w->lock);
}

/*
 * On the ticker: what the clients of the lingering sockets sent since, read
 * and thrown away without waiting; each that is done (its client ended its
 * side or failed, LINGER_BYTES read, LINGER_MS past) closed.  A slot in use
 * is the ticker's alone, so the reading is done without w->lock.
 */
static void drain_lingering(gate_web *w)
{
    bool used[LINGER_MAX];
    (void)pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < LINGER_MAX; i++)
        used[i] = w->lingering[i].used;
    (void)pthread_mutex_unlock(&w->lock);
    long long now = mono_ms();
    char buf[LINGER_READ];
    for (size_t i = 0; i < LINGER_MAX; i++) {
        web_linger *l = &w->lingering[i];
        if (!used[i])
            continue;
        bool done = now >= l->until_ms;
        while (!done) {
            ssize_t n = recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n > 0) {
                l->drained += (size_t)n;
                done = l->drained >= LINGER_BYTES;
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
                done = true;
            } else if (errno != EINTR) {
                break; /* nothing more for now */
            }
        }
        if (done)
            linger_end(w, l);
    }
}

/* c's socket (-1: unknown) */
static int connection_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci != NULL ? ci->connect_fd : -1;
}

/* ---- the deadline of a request ------------------------------------------------------------- */

/* c as the server keeps it (NULL: no memory for it when it opened, so no deadline) */
static web_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? (web_conn *)ci->socket_context : NULL;
}

static bool expired(struct MHD_Connection *c)
{
    const web_conn *k = conn_of(c);
    return k != NULL && __atomic_load_n(&k->expired, __ATOMIC_ACQUIRE);
}

/*
 * The request on c is received whole (answered, streamed or worked on next),
 * or refused while it comes in (a 413 on the socket): the deadline no longer
 * counts, and the ticker answers it no 408.  False: it was past the deadline
 * already, answered 408 (its connection is to be closed, nothing more done).
 */
static bool received(gate_web *w, struct MHD_Connection *c)
{
    web_conn *k = conn_of(c);
    if (k == NULL)
        return true;
    (void)pthread_mutex_lock(&w->lock);
    k->receiving = false;
    bool late = __atomic_load_n(&k->expired, __ATOMIC_ACQUIRE);
    (void)pthread_mutex_unlock(&w->lock);
    return !late;
}

/* A request may come on k: its deadline counts from now. */
static void receiving(gate_web *w, web_conn *k)
{
    (void)pthread_mutex_lock(&w->lock);
    k->since_ms = mono_ms();
    k->receiving = true;
    (void)pthread_mutex_unlock(&w->lock);
}

/*
 * On the ticker: each request still coming in past the deadline is answered
 * 408 on its socket, which lingers (libmicrohttpd closes the connection when
 * the client ends its side or the lingering ends, or when it reads more of
 * the request); under w->lock, so that the server thread, which
 * takes it to say a request is received (received()), never answers one too.
 */
static void expire(gate_web *w)
{
    if (w->o.deadline_s == 0)
        return;
    long long now = mono_ms();
    char msg[128];
    (void)snprintf(msg, sizeof(msg),
                   "the request did not arrive whole within %u s (the server's deadline)",
                   w->o.deadline_s);
    (void)pthread_mutex_lock(&w->lock);
    for (web_conn *k = w->conns; k != NULL; k = k->next)
        if (k->receiving && !k->expired && now - k->since_ms >= (long long)w->o.deadline_s * 1000) {
            say_on_socket(k->fd, 408, msg);
            linger(w, k->fd, true);
            __atomic_store_n(&k->expired, true, __ATOMIC_RELEASE);
        }
    (void)pthread_mutex_unlock(&w->lock);
}

static void add_common_headers(struct MHD_Response *r)
{
    for (size_t i = 0; i < COMMON_HEADERS; i++)
        (void)MHD_add_response_header(r, common_headers[i].name, common_headers[i].value);
}

static enum MHD_Result send_resp(struct MHD_Connection *c, gate_web *w, gate_web_resp *resp)
{
    struct MHD_Response *r = NULL;
    if (!received(w, c)) { /* answered 408 already */
        gate_web_resp_free(resp);
        return MHD_NO;
    }
    if (resp->kind == GATE_WEB_EVENTS) {
        web_stream *e = (web_stream *)web_zalloc(sizeof(*e));
        if (e == NULL) {
            gate_web_error(resp, 500, "no memory for an event stream");
        } else {
            e->w = w;
            e->g = resp->events_of != NULL ? resp->events_of : w->ctx.g;
            e->conn = c;
            e->cursor = resp->after;
            stream_say(e, "retry: 2000\n\n");
            e->sent_ms = mono_ms();
            keel_status v = gate_store_data_version(gate_get_store(w->ctx.g), &e->version);
            if (!keel_ok(v))
                keel_status_ignore(v,
                                   "the first look finds the store changed: one needless notice");
            r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, (size_t)16 * 1024, stream_read,
                                                  e, stream_free);
            if (r == NULL)
                stream_free(e);
            else
                (void)MHD_add_response_header(r, "Content-Type", "text/event-stream");
        }
    }
    if (r == NULL) {
        r = MHD_create_response_from_buffer_with_free_callback(resp->len, resp->body, web_free);
        if (r == NULL) {
            gate_web_resp_free(resp);
            return MHD_NO;
        }
        resp->body = NULL; /* the response's now */
        (void)MHD_add_response_header(r, "Content-Type",
                                      resp->kind == GATE_WEB_PAGE    ? resp->content_type
                                      : resp->kind == GATE_WEB_BYTES ? "text/plain; charset=utf-8"
                                                                     : "application/json");
        if (resp->kind == GATE_WEB_BYTES)
            (void)MHD_add_response_header(r, "Accept-Ranges", "bytes");
        if (resp->content_range[0] != '\0')
            (void)MHD_add_response_header(r, "Content-Range", resp->content_range);
        if (resp->allow != NULL)
            (void)MHD_add_response_header(r, "Allow", resp->allow);
        if (resp->status == 413 || resp->status == 429 || resp->status == 503)
            (void)MHD_add_response_header(r, "Connection", "close");
        if (resp->status == 429 || resp->status == 503)
            (void)MHD_add_response_header(r, "Retry-After", "1");
    }
    add_common_headers(r);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    gate_web_resp_free(resp);
    return ret;
}

static enum MHD_Result error_now(struct MHD_Connection *c, gate_web *w, int status, const char *msg)
{
    gate_web_resp resp;
    memset(&resp, 0, sizeof(resp));
    gate_web_error(&resp, status, "%s", msg);
    return send_resp(c, w, &resp);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static const char *query(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* The client's IPv4 address (false: another family, or unknown). */
static bool client_ip(struct MHD_Connection *c, uint32_t *ip)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL || ci->client_addr->sa_family != AF_INET)
        return false;
    struct sockaddr_in sin;
    memcpy(&sin, ci->client_addr, sizeof(sin));
    *ip = sin.sin_addr.s_addr;
    return true;
}

/*
 * --per-address: a connection opened while its address already had the most
 * it may (web_conn.over) is refused at each request while that is still so;
 * the connections opened before it go on.
 */
static bool over_address(struct MHD_Connection *c)
{
    const web_conn *k = conn_of(c);
    return k != NULL && k->over;
}

/*
 * Count a connection from c's address in (delta 1), out (-1) or neither (0):
 * how many that address has afterwards (0: not counted, no limit).
 */
static unsigned count_address(gate_web *w, struct MHD_Connection *c, int delta)
{
    uint32_t ip = 0;
    if (w->addrs == NULL || !client_ip(c, &ip))
        return 0;
    unsigned n = 0;
    (void)pthread_mutex_lock(&w->lock);
    size_t i = 0;
    while (i < w->naddrs && w->addrs[i].ip != ip)
        i++;
    if (i == w->naddrs && delta > 0 && w->naddrs < w->addrs_cap) {
        w->addrs[i].ip = ip;
        w->addrs[i].count = 0;
        w->naddrs++;
    }
    if (i < w->naddrs) {
        if (delta > 0)
            w->addrs[i].count++;
        else if (delta < 0 && w->addrs[i].count > 0)
            w->addrs[i].count--;
        n = w->addrs[i].count;
        if (n == 0)
            w->addrs[i] = w->addrs[--w->naddrs];
    }
    (void)pthread_mutex_unlock(&w->lock);
    return n;
}

/*
 * libmicrohttpd decodes "%00" in the path and in query values to a NUL, which
 * ends the string the routes read: "/api/v1/queue%00x" would be answered as
 * "/api/v1/queue".  The request line as sent is seen here first: one with
 * "%00" gets this marker's address as its request state, and a 400.
 */
static char nul_in_uri;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    return uri != NULL && strstr(uri, "%00") != NULL ? &nul_in_uri : NULL;
}

/* The query's arguments as the routes read them: each known, with a value, once. */
typedef struct query_check {
    unsigned seen; /* bit i: known[i] given */
    char error[160];
} query_check;

static enum MHD_Result check_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    (void)kind;
    static const char *const known[] = {"offset", "limit", "after", "hours", "name", "target"};
    query_check *q = (query_check *)cls;
    size_t i = 0;
    while (i < sizeof(known) / sizeof(known[0]) && strcmp(known[i], key) != 0)
        i++;
    if (i == sizeof(known) / sizeof(known[0]))
        (void)snprintf(q->error, sizeof(q->error), "unknown query argument '%.64s'", key);
    else if (value == NULL)
        (void)snprintf(q->error, sizeof(q->error), "query argument '%s' has no value ('%s=...')",
                       key, key);
    else if ((q->seen & (1u << i)) != 0)
        (void)snprintf(q->error, sizeof(q->error), "query argument '%s' is given twice", key);
    q->seen |= 1u << i;
    return q->error[0] == '\0' ? MHD_YES : MHD_NO; /* the first one wrong is said */
}

/* The headers the server reads, each at most once: which one came twice ("": none). */
typedef struct header_check {
    unsigned seen;
    const char *twice;
} header_check;

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    (void)value;
    static const char *const read[] = {"Authorization", "Idempotency-Key", "Last-Event-ID", "Range",
                                       "Content-Length"};
    header_check *h = (header_check *)cls;
    for (size_t i = 0; i < sizeof(read) / sizeof(read[0]); i++)
        if (strcasecmp(read[i], key) == 0) {
            if ((h->seen & (1u << i)) != 0)
                h->twice = read[i];
            h->seen |= 1u << i;
        }
    return h->twice == NULL ? MHD_YES : MHD_NO;
}

/* ---- workers: a request's slow git work off the server thread ------------------------------ */

static void *worker_main(void *arg)
{
    web_worker *k = (web_worker *)arg;
    lower_priority(k->w);
    gate_web_work_do(k->work);
    struct MHD_Connection *c = k->conn; /* k is the server's again once done */
    __atomic_store_n(&k->work->done, true, __ATOMIC_RELEASE);
    __atomic_store_n(&k->done, true, __ATOMIC_RELEASE);
    MHD_resume_connection(c); /* the connection waits for it: it is there */
    return NULL;
}

/* A worker free to take work, its last thread joined (under w->lock); NULL: all are busy. */
static web_worker *free_worker(gate_web *w)
{
    for (size_t i = 0; i < w->o.max_workers; i++) {
        web_worker *x = &w->workers[i];
        if (x->started && __atomic_load_n(&x->done, __ATOMIC_ACQUIRE)) {
            (void)pthread_join(x->thread, NULL); /* ended, or about to */
            x->started = false;
        }
        if (!x->started)
            return x;
    }
    return NULL;
}

/*
 * resp's git work (GATE_WEB_WORK) on a worker thread, c suspended until it
 * is done, when libmicrohttpd calls on_request again and the request is
 * routed again with it.  Under w->lock, so that gate_web_stop, which takes it
 * to set `quitting`, joins every worker started.  Past max_workers, or while
 * the server stops: 503.
 */
static enum MHD_Result start_work(struct MHD_Connection *c, gate_web *w, web_request *rq,
                                  gate_web_resp *resp)
{
    if (!received(w, c)) { /* answered 408 already */
        gate_web_resp_free(resp);
        return MHD_NO;
    }
    (void)pthread_mutex_lock(&w->lock);
    bool quitting = __atomic_load_n(&w->quitting, __ATOMIC_ACQUIRE);
    web_worker *k = quitting ? NULL : free_worker(w);
    if (k == NULL) {
        (void)pthread_mutex_unlock(&w->lock);
        gate_web_error(resp, 503, "%s: try again later",
                       quitting
                           ? "the server is stopping"
                           : "every worker is busy with a submit's or a branch view's git work");
        return send_resp(c, w, resp);
    }
    KEEL_ASSERT(rq->work == NULL);
    rq->work = resp->work;
    resp->work = NULL;
    k->w = w;
    k->conn = c;
    k->work = rq->work;
    __atomic_store_n(&k->done, false, __ATOMIC_RELAXED);
    MHD_suspend_connection(c);
    k->started = pthread_create(&k->thread, NULL, worker_main, k) == 0;
    if (!k->started) { /* answered as the work's error, resumed at once */
        rq->work->s = KEEL_ERR(KEEL_E_SYS, "cannot start a worker thread for the request");
        __atomic_store_n(&rq->work->done, true, __ATOMIC_RELEASE);
        MHD_resume_connection(c);
    }
    (void)pthread_mutex_unlock(&w->lock);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    gate_web *w = (gate_web *)cls;
    if (expired(c)) /* answered 408 on the socket: nothing more read or done */
        return MHD_NO;
    if (*con_cls == &nul_in_uri) /* kept: on_completed has nothing to free */
        return error_now(c, w, 400,
                         "the URL has an encoded NUL ('%00'), which no path or query value may "
                         "hold");
    web_request *rq = (web_request *)*con_cls;
    if (rq == NULL) { /* the headers: the body, if any, comes next */
        if (__atomic_load_n(&w->connections, __ATOMIC_ACQUIRE) > w->o.max_connections)
            return error_now(c, w, 503, "too many connections: try again later");
        if (w->o.max_per_address > 0 && over_address(c) &&
            count_address(w, c, 0) > w->o.max_per_address) {
            char msg[128];
            uint32_t ip = 0;
            char host[INET_ADDRSTRLEN] = "?";
            if (client_ip(c, &ip))
                (void)inet_ntop(AF_INET, &ip, host, sizeof(host));
            (void)snprintf(msg, sizeof(msg),
                           "too many connections from '%s' (at most %u at once): try again later",
                           host, w->o.max_per_address);
            return error_now(c, w, 429, msg);
        }
        header_check hc;
        memset(&hc, 0, sizeof(hc));
        (void)MHD_get_connection_values(c, MHD_HEADER_KIND, check_header, &hc);
        if (hc.twice != NULL) { /* which one would be read is not for the client to guess */
            char msg[96];
            (void)snprintf(msg, sizeof(msg), "header '%s' is given twice", hc.twice);
            return error_now(c, w, 400, msg);
        }
        const char *cl = header(c, "Content-Length");
        if (cl != NULL && strtoull(cl, NULL, 10) > w->o.max_body) {
            char msg[96];
            (void)snprintf(msg, sizeof(msg), "the body is larger than %zu bytes", w->o.max_body);
            return error_now(c, w, 413, msg);
        }
        rq = (web_request *)web_zalloc(sizeof(*rq));
        if (rq == NULL)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->body.len + n > w->o.max_body) { /* chunks past the limit: no more read */
            char msg[96];
            (void)snprintf(msg, sizeof(msg), "the body is larger than %zu bytes", w->o.max_body);
            /* the deadline stops first: the ticker answers it no 408 as well (false: it has) */
            if (received(w, c)) {
                int fd = connection_fd(c);
                say_on_socket(fd, 413, msg);
                (void)pthread_mutex_lock(&w->lock);
                linger(w, fd, false);
                (void)pthread_mutex_unlock(&w->lock);
            }
            return MHD_NO; /* libmicrohttpd closes its descriptor: the duplicate lingers */
        }
        gate__web_buf_add(&rq->body, upload_data, n);
        if (rq->body.failed)
            return MHD_NO; /* no memory: the connection is closed */
        return MHD_YES;
    }
    if (rq->work != NULL && !__atomic_load_n(&rq->work->done, __ATOMIC_ACQUIRE))
        return MHD_YES; /* on a worker: resumed once it is done */
    gate_web_req req;
    memset(&req, 0, sizeof(req));
    req.work = rq->work;
    req.method = method;
    req.path = url;
    req.authorization = header(c, "Authorization");
    req.idempotency_key = header(c, "Idempotency-Key");
    req.last_event_id = header(c, "Last-Event-ID");
    req.range = header(c, "Range");
    req.q_offset = query(c, "offset");
    req.q_limit = query(c, "limit");
    req.q_after = query(c, "after");
    req.q_hours = query(c, "hours");
    req.q_name = query(c, "name");
    req.q_target = query(c, "target");
    query_check qc;
    memset(&qc, 0, sizeof(qc));
    (void)MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_query_arg, &qc);
    req.q_error = qc.error[0] != '\0' ? qc.error : NULL;
    req.body = rq->body.p != NULL ? rq->body.p : "";
    req.body_len = rq->body.len;
    gate_web_resp resp;
    gate_web_route(&w->ctx, &req, &resp);
    if (resp.kind == GATE_WEB_WORK)
        return start_work(c, w, rq, &resp);
    return send_resp(c, w, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    web_conn *k = conn_of(c);
    if (k != NULL) /* the next request on the connection, if any */
        receiving((gate_web *)cls, k);
    web_request *rq = (web_request *)*con_cls;
    if (rq != NULL && *con_cls != &nul_in_uri) {
        gate_web_work_free(rq->work);
        web_free(rq->body.p);
        web_free(rq);
        *con_cls = NULL;
    }
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    gate_web *w = (gate_web *)cls;
    lower_priority(w); /* on the epoll thread, which answers every connection */
    bool started = toe == MHD_CONNECTION_NOTIFY_STARTED;
    if (started)
        __atomic_fetch_add(&w->connections, 1, __ATOMIC_ACQ_REL);
    else
        __atomic_fetch_sub(&w->connections, 1, __ATOMIC_ACQ_REL);
    unsigned n = count_address(w, c, started ? 1 : -1);
    web_conn *k = started ? (web_conn *)web_zalloc(sizeof(*k)) : (web_conn *)*socket_context;
    if (k == NULL) /* no memory: a connection without a deadline, never over --per-address */
        return;
    (void)pthread_mutex_lock(&w->lock);
    if (started) {
        k->conn = c;
        k->fd = connection_fd(c);
        k->since_ms = mono_ms();
        k->receiving = true;
        k->over = w->o.max_per_address > 0 && n > w->o.max_per_address;
        k->next = w->conns;
        if (w->conns != NULL)
            w->conns->prev = k;
        w->conns = k;
    } else { /* before libmicrohttpd closes the socket: the ticker never sees its number again */
        if (k->prev != NULL)
            k->prev->next = k->next;
        else
            w->conns = k->next;
        if (k->next != NULL)
            k->next->prev = k->prev;
    }
    (void)pthread_mutex_unlock(&w->lock);
    if (started)
        *socket_context = k;
    else
        web_free(k);
}

/* "HOST:PORT" into addr */
static keel_status parse_listen(const char *listen, struct sockaddr_in *addr)
{
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    const char *colon = listen != NULL ? strrchr(listen, ':') : NULL;
    char host[64];
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host) || colon[1] == '\0')
        return KEEL_ERR(KEEL_E_INVAL, "listen address '%s' is not HOST:PORT (an IPv4 address)",
                        listen != NULL ? listen : "");
    unsigned long port = 0;
    size_t digits = strspn(colon + 1, "0123456789");
    if (colon[1 + digits] == '\0' && digits <= 5)
        port = strtoul(colon + 1, NULL, 10);
    if (colon[1 + digits] != '\0' || digits > 5 || port > 65535)
        return KEEL_ERR(KEEL_E_INVAL,
                        "listen address '%s': the port '%s' is not a number in [0, 65535]", listen,
                        colon + 1);
    (void)snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    if (inet_pton(AF_INET, host, &addr->sin_addr) != 1)
        return KEEL_ERR(KEEL_E_INVAL, "listen address '%s': '%s' is not an IPv4 address", listen,
                        host);
    addr->sin_port = htons((uint16_t)port);
    return KEEL_OK;
}

keel_status gate_web_listen_check(const char *listen)
{
    struct sockaddr_in addr;
    return parse_listen(listen, &addr);
}

static void server_free(gate_web *w)
{
    (void)pthread_mutex_destroy(&w->lock);
    web_free(w->addrs);
    web_free(w->workers);
    web_free(w);
}

keel_status gate_web_start(gate *g, const gate_web_options *o, gate_web **out)
{
    *out = NULL;
    struct sockaddr_in addr;
    keel_status s = parse_listen(o->listen, &addr);
    if (!keel_ok(s))
        return s;
    gate_web *w = (gate_web *)web_zalloc(sizeof(*w));
    if (w == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "no memory for the server");
    w->ctx.g = g;
    w->ctx.token_reads = o->token_reads;
    w->ctx.targets = o->targets;
    w->ctx.ntargets = o->ntargets;
    w->o = *o;
    if (w->o.max_workers > GATE_WEB_WORKERS_MAX)
        w->o.max_workers = GATE_WEB_WORKERS_MAX;
    w->ctx.workers = w->o.max_workers > 0;
    __atomic_store_n(&w->connections, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&w->quitting, false, __ATOMIC_RELAXED);
    (void)pthread_mutex_init(&w->lock, NULL);
    w->addrs_cap = o->max_per_address > 0 ? (size_t)o->max_connections + CONNECTIONS_SPARE : 0;
    w->addrs = w->addrs_cap > 0 ? (web_addr *)web_zalloc(w->addrs_cap * sizeof(*w->addrs)) : NULL;
    w->workers = (web_worker *)web_zalloc((w->o.max_workers + 1) * sizeof(*w->workers));
    if ((w->addrs_cap > 0 && w->addrs == NULL) || w->workers == NULL) {
        server_free(w);
        return KEEL_ERR(KEEL_E_NOMEM, "no memory for the server's client addresses and workers");
    }
    w->daemon = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, on_request, w,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)o->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(o->max_connections + CONNECTIONS_SPARE), MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, w, MHD_OPTION_NOTIFY_CONNECTION, on_connection, w,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, w, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_END);
    if (w->daemon == NULL) {
        int e = errno;
        server_free(w);
        return KEEL_ERR_SYS(e != 0 ? e : EADDRINUSE, "cannot listen on '%s'", o->listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_BIND_PORT);
    char host[INET_ADDRSTRLEN] = "?";
    (void)inet_ntop(AF_INET, &addr.sin_addr, host, sizeof(host));
    (void)snprintf(w->address, sizeof(w->address), "%s:%u", host,
                   info != NULL ? (unsigned)info->port : (unsigned)ntohs(addr.sin_port));
    if (pthread_create(&w->ticker, NULL, ticker_main, w) != 0) {
        gate_web_stop(w);
        return KEEL_ERR(KEEL_E_SYS, "cannot start the event streams' thread");
    }
    w->ticking = true;
    *out = w;
    return KEEL_OK;
}

const char *gate_web_address(const gate_web *w)
{
    return w->address;
}

void gate_web_stop(gate_web *w)
{
    if (w == NULL)
        return;
    (void)pthread_mutex_lock(&w->lock); /* no worker starts after this (start_work) */
    __atomic_store_n(&w->quitting, true, __ATOMIC_RELEASE);
    (void)pthread_mutex_unlock(&w->lock);
    if (w->ticking)
        (void)pthread_join(w->ticker, NULL);
    /* the workers' requests are answered (a fetch waits for the mirror's lock up to 60 s) */
    for (size_t i = 0; i < w->o.max_workers; i++) {
        (void)pthread_mutex_lock(&w->lock);
        bool started = w->workers[i].started;
        (void)pthread_mutex_unlock(&w->lock);
        if (started)
            (void)pthread_join(w->workers[i].thread, NULL);
    }
    /* a stream that suspended as the ticker stopped: resumed, it sees quitting and ends */
    for (int i = 0; i < 20; i++) {
        resume_all(w);
        struct timespec ts = {0, 5 * 1000000L};
        (void)nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(w->daemon);
    for (size_t i = 0; i < LINGER_MAX; i++) /* the ticker's no more */
        if (w->lingering[i].used)
            linger_end(w, &w->lingering[i]);
    server_free(w);
}
