/*
 * notify.c - the notifier: the events of one target from the store to the
 * `notify` hook, on a thread of its own (notify.h).
 *
 * Only the notifier's thread uses its store connection and runs the hook;
 * the gate's thread sets the hook, wakes it and stops it, under `lock`.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "gate.h"
#include "heaps.h"
#include "ranks.h"
#include "store.h"
#include "text.h"

#define NOTIFY_HEAP KEEL_MODULE_REF(gate)

enum { POLL_MS = 1000, STORE_RETRY_MS = 1000, KILLED_WAIT_MS = 2000 };

/* A hook's argv in one block: the pointers, then the words. */
typedef struct hook_cmd {
    char **argv; /* NULL-terminated; argv[0] NULL: no hook */
    size_t n;
} hook_cmd;

struct gate_notifier {
    keel_mutex lock;
    keel_cond cond;
    /* under lock */
    hook_cmd *next_hook; /* set_hook's, for the thread to take */
    bool hook_set;       /* set_hook was called: events may be delivered */
    bool woken;
    bool stopping;
    /* atomic: when a stop's deadline passes (gate_now_ms), 0 before a stop */
    unsigned long long deadline;
    /* the thread's own */
    hook_cmd *hook;
    gate_store *store;
    gate_notice *batch;
    unsigned long long given_up;
    bool store_warned;
    keel_thread *thread;
    FILE *out;
    char target[GATE_NAME_MAX];
    char dir[4096];
    char log[4096];
};

static void hook_free(hook_cmd *h)
{
    keel_heap_free(NOTIFY_HEAP, h);
}

static keel_status hook_copy(const gate_words *cmd, hook_cmd **out)
{
    size_t n = cmd != NULL ? cmd->n : 0, bytes = sizeof(hook_cmd) + (n + 1) * sizeof(char *);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(cmd->words[i]) + 1;
    void *mem = NULL;
    keel_status s = keel_heap_alloc(NOTIFY_HEAP, bytes, &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "copying the notify hook's command");
    hook_cmd *h = (hook_cmd *)mem;
    h->argv = (char **)(h + 1);
    h->n = n;
    char *text = (char *)(h->argv + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(cmd->words[i]) + 1;
        memcpy(text, cmd->words[i], len);
        h->argv[i] = text;
        text += len;
    }
    h->argv[n] = NULL;
    *out = h;
    return KEEL_OK;
}

static bool hook_equal(const hook_cmd *h, const gate_words *cmd)
{
    size_t n = cmd != NULL ? cmd->n : 0;
    if (h == NULL || h->n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(h->argv[i], cmd->words[i]) != 0)
            return false;
    return true;
}

static unsigned long long deadline_of(const gate_notifier *n)
{
    return __atomic_load_n(&n->deadline, __ATOMIC_ACQUIRE);
}

static bool past_deadline(const gate_notifier *n)
{
    unsigned long long d = deadline_of(n);
    return d != 0 && gate_now_ms() >= d;
}

static void say(gate_notifier *n, const char *fmt, ...) KEEL_PRINTF(2, 3);

static void say(gate_notifier *n, const char *fmt, ...)
{
    if (n->out == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    gate_text_vprintf(n->out, fmt, ap);
    va_end(ap);
    (void)fflush(n->out);
}

/* ---- one run of the hook ------------------------------------------------------------- */

/*
 * Start the hook with posix_spawn (no copy of the gate's memory): its own
 * process group, `in` as its stdin, stdout and stderr appended to the log,
 * in the repository's directory, an empty signal mask and default signals.
 */
static int spawn_hook(const gate_notifier *n, int in, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0)
        return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc == 0) {
        sigset_t none, all;
        (void)sigemptyset(&none);
        (void)sigfillset(&all);
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                 POSIX_SPAWN_SETSIGDEF);
        rc = rc != 0 ? rc : posix_spawnattr_setpgroup(&attr, 0);
        rc = rc != 0 ? rc : posix_spawnattr_setsigmask(&attr, &none);
        rc = rc != 0 ? rc : posix_spawnattr_setsigdefault(&attr, &all);
        rc = rc != 0 ? rc : posix_spawn_file_actions_adddup2(&fa, in, 0);
        rc = rc != 0 ? rc
                     : posix_spawn_file_actions_addopen(&fa, 1, n->log,
                                                        O_WRONLY | O_CREAT | O_APPEND, 0644);
        rc = rc != 0 ? rc : posix_spawn_file_actions_adddup2(&fa, 1, 2);
        rc = rc != 0 ? rc : posix_spawn_file_actions_addchdir_np(&fa, n->dir);
        rc = rc != 0 ? rc : posix_spawnp(pid, n->hook->argv[0], &fa, &attr, n->hook->argv, environ);
        (void)posix_spawnattr_destroy(&attr);
    }
    (void)posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Write all of json to fd; a hook that does not read it is no error of ours. */
static void feed(int fd, const char *json)
{
    size_t len = strlen(json), off = 0;
    while (off < len) {
        ssize_t w = write(fd, json + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    /* SIGPIPE is blocked on this thread: take the one a hook that exited early raised */
    sigset_t pipe_only;
    (void)sigemptyset(&pipe_only);
    (void)sigaddset(&pipe_only, SIGPIPE);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_only, NULL, &zero) == SIGPIPE) {
    }
}

/*
 * Run the hook with `json` on its stdin; killed after GATE_NOTIFY_TIMEOUT_MS
 * or when a stop's deadline passes (*by_stop set: the event was not
 * refused, it ran out of time).
 */
static keel_status run_hook(gate_notifier *n, const char *json, bool *by_stop)
{
    const char *name = n->hook->argv[0];
    *by_stop = false;
    int in[2];
    if (pipe2(in, O_CLOEXEC) != 0)
        return KEEL_ERR_SYS(errno, "cannot make a pipe for hook '%s'", name);
    pid_t pid = 0;
    int rc = spawn_hook(n, in[0], &pid);
    (void)close(in[0]);
    if (rc != 0) {
        (void)close(in[1]);
        return KEEL_ERR_SYS(rc, "cannot start hook '%s'", name);
    }
    feed(in[1], json); /* the payload (under 8 KiB) fits in the pipe: this never waits */
    (void)close(in[1]);
    unsigned long long start = gate_now_ms();
    int status = 0;
    bool killed = false;
    unsigned long long killed_at = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        unsigned long long now = gate_now_ms();
        if (!killed && (now - start > GATE_NOTIFY_TIMEOUT_MS || past_deadline(n))) {
            *by_stop = past_deadline(n);
            (void)kill(-pid, SIGKILL);
            killed = true;
            killed_at = now;
        }
        if (killed && now - killed_at > KILLED_WAIT_MS)
            break; /* stuck where SIGKILL does not reach (a dead NFS server): left behind */
        struct timespec ms = {0, 5000000};
        (void)nanosleep(&ms, NULL);
    }
    if (killed)
        return *by_stop ? KEEL_ERR(KEEL_E_TIMEOUT, "hook '%s' ran past the stop's deadline: killed",
                                   name)
                        : KEEL_ERR(KEEL_E_TIMEOUT, "hook '%s' ran past %u ms: killed", name,
                                   (unsigned)GATE_NOTIFY_TIMEOUT_MS);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return KEEL_OK;
    if (WIFEXITED(status))
        return keel_status_with_int(
            KEEL_ERR(KEEL_E_IO, "hook '%s' exited with %d", name, WEXITSTATUS(status)), "exit",
            WEXITSTATUS(status));
    return KEEL_ERR(KEEL_E_IO, "hook '%s' was killed by signal %d", name,
                    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* ---- the thread ------------------------------------------------------------------------ */

/* The hook's payload: the event as JSON, one line. */
static void payload(const gate_notifier *n, const gate_notice *e, char *json, size_t size)
{
    size_t len = (size_t)snprintf(json, size, "{\"id\":%lld,\"event\":", e->id);
    len = gate_json_str(json, size, len, e->event);
    len += (size_t)snprintf(json + len, len < size ? size - len : 0,
                            ",\"change\":%lld,\"target\":", e->change);
    const char *const keys[] = {",\"branch\":", ",\"head\":", ",\"merge\":", ",\"reason\":"};
    const char *const values[] = {e->branch, e->head, e->merge, e->reason};
    len = gate_json_str(json, size, len, n->target);
    for (size_t k = 0; k < 4; k++) {
        len += (size_t)snprintf(json + len, len < size ? size - len : 0, "%s", keys[k]);
        len = gate_json_str(json, size, len, values[k]);
    }
    if (e->author[0] != '\0' || e->committer[0] != '\0') { /* a backout's: who is told */
        len += (size_t)snprintf(json + len, len < size ? size - len : 0, ",\"author\":");
        len = gate_json_str(json, size, len, e->author);
        len += (size_t)snprintf(json + len, len < size ? size - len : 0, ",\"committer\":");
        len = gate_json_str(json, size, len, e->committer);
    }
    if (e->flow[0] != '\0') /* a flow's: its detail, JSON already (the store checked it) */
        len += (size_t)snprintf(json + len, len < size ? size - len : 0, ",\"flow\":%s", e->flow);
    len += (size_t)snprintf(json + len, len < size ? size - len : 0, "}\n");
    KEEL_ASSERT(len < size); /* sized for the longest fields, every byte escaped */
}

typedef enum pass { CAUGHT_UP, MORE, PAUSE, OUT_OF_TIME } pass;

/* The hook failed on e: counted; given up after GATE_NOTIFY_ATTEMPTS runs. */
static pass failed(gate_notifier *n, const gate_notice *e, keel_status why,
                   unsigned long long *resume_at)
{
    char msg[1024];
    (void)snprintf(msg, sizeof(msg), "%s", keel_status_message(why));
    keel_status_free(why);
    unsigned failures = 0;
    keel_status s = gate_store_notify_failed(n->store, n->target, &failures);
    if (!keel_ok(s)) {
        keel_status_ignore(s, "the failure is only not counted: the event is tried again");
        failures = 1;
    }
    bool give_up = failures >= GATE_NOTIFY_ATTEMPTS;
    say(n, "warning: notify hook failed for %s of change %lld (event %lld, run %u of %d)%s: %s\n",
        e->event, e->change, e->id, failures, (int)GATE_NOTIFY_ATTEMPTS,
        give_up ? ", passed over" : "", msg);
    if (!give_up) {
        unsigned long long pause = GATE_NOTIFY_BACKOFF_MS;
        for (unsigned i = 1; i < failures; i++)
            pause *= 3;
        *resume_at = gate_now_ms() + pause;
        return PAUSE;
    }
    char detail[GATE_JSON_ROOM(1024) + 128];
    size_t len = (size_t)snprintf(detail, sizeof(detail), "{\"id\":%lld,\"event\":", e->id);
    len = gate_json_str(detail, sizeof(detail), len, e->event);
    len += (size_t)snprintf(detail + len, len < sizeof(detail) ? sizeof(detail) - len : 0,
                            ",\"runs\":%u,\"error\":", failures);
    len = gate_json_str(detail, sizeof(detail), len, msg);
    (void)snprintf(detail + len, len < sizeof(detail) ? sizeof(detail) - len : 0, "}");
    s = gate_store_notify_skip(n->store, n->target, e->id, (long long)time(NULL), e->change,
                               detail);
    if (!keel_ok(s)) {
        keel_status_ignore(s, "not passed over yet: tried again after the pause");
        *resume_at = gate_now_ms() + STORE_RETRY_MS;
        return PAUSE;
    }
    n->given_up++;
    return MORE;
}

/* Deliver the next batch of events. */
static pass deliver(gate_notifier *n, unsigned long long *resume_at)
{
    size_t count = 0;
    keel_status s =
        gate_store_notify_next(n->store, n->target, n->batch, GATE_NOTIFY_BATCH, &count);
    if (!keel_ok(s)) {
        if (!n->store_warned) /* once until it works again */
            say(n, "warning: the notify hook's events cannot be read: %s\n",
                keel_status_message(s));
        n->store_warned = true;
        keel_status_free(s);
        *resume_at = gate_now_ms() + STORE_RETRY_MS;
        return PAUSE;
    }
    n->store_warned = false;
    bool none = n->hook->n == 0; /* no hook: the batch is passed over at once */
    for (size_t i = none && count > 0 ? count - 1 : 0; i < count; i++) {
        const gate_notice *e = &n->batch[i];
        if (past_deadline(n))
            return OUT_OF_TIME;
        if (!none) {
            char json[12288 + sizeof(e->flow)];
            payload(n, e, json, sizeof(json));
            bool by_stop = false;
            s = run_hook(n, json, &by_stop);
            if (by_stop) {
                keel_status_free(s);
                return OUT_OF_TIME; /* not the hook's failure: delivered again by the next run */
            }
            if (!keel_ok(s))
                return failed(n, e, s, resume_at);
        }
        s = gate_store_notify_done(n->store, n->target, e->id);
        if (!keel_ok(s)) { /* delivered, and delivered again later: at least once */
            keel_status_ignore(s, "the next read of the store says how it is");
            *resume_at = gate_now_ms() + STORE_RETRY_MS;
            return PAUSE;
        }
    }
    return count == GATE_NOTIFY_BATCH ? MORE : CAUGHT_UP;
}

static void *notifier_main(void *arg)
{
    gate_notifier *n = (gate_notifier *)arg;
    sigset_t pipe_only; /* a hook that exits before it read its event: EPIPE, not a signal */
    (void)sigemptyset(&pipe_only);
    (void)sigaddset(&pipe_only, SIGPIPE);
    (void)pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
    unsigned long long resume_at = 0, next_look = 0;
    bool more = false;
    for (;;) {
        keel_mutex_lock(&n->lock);
        bool go = false;
        while (!go) {
            unsigned long long now = gate_now_ms();
            if (n->stopping && (past_deadline(n) || !n->hook_set))
                break;
            if (now >= resume_at && n->hook_set &&
                (more || n->woken || n->stopping || now >= next_look)) {
                go = true;
                break;
            }
            unsigned long long until = now + POLL_MS;
            if (resume_at > now && resume_at < until)
                until = resume_at;
            unsigned long long d = deadline_of(n);
            if (d != 0 && d < until)
                until = d;
            (void)keel_cond_timedwait(&n->cond, &n->lock, until > now ? until - now : 1);
        }
        bool stopping = n->stopping;
        n->woken = false;
        if (n->next_hook != NULL) {
            hook_free(n->hook);
            n->hook = n->next_hook;
            n->next_hook = NULL;
        }
        keel_mutex_unlock(&n->lock);
        if (!go)
            break;
        next_look = gate_now_ms() + POLL_MS;
        pass p = deliver(n, &resume_at);
        more = p == MORE;
        if (stopping && (p == CAUGHT_UP || p == OUT_OF_TIME))
            break;
    }
    return NULL;
}

/* ---- the gate's side --------------------------------------------------------------------- */

static void notifier_free(gate_notifier *n)
{
    gate_store_close(n->store);
    hook_free(n->hook);
    hook_free(n->next_hook);
    keel_heap_free(NOTIFY_HEAP, n->batch);
    keel_cond_destroy(&n->cond);
    keel_mutex_destroy(&n->lock);
    keel_heap_free(NOTIFY_HEAP, n);
}

keel_status gate_notifier_start(const char *state, const char *target, const char *dir,
                                const char *log, FILE *out, gate_notifier **np)
{
    KEEL_ASSERT(state != NULL && target != NULL && dir != NULL && log != NULL && np != NULL);
    *np = NULL;
    void *mem = NULL, *batch = NULL;
    keel_status s = keel_heap_calloc(NOTIFY_HEAP, 1, sizeof(gate_notifier), &mem);
    if (keel_ok(s))
        s = keel_heap_calloc(NOTIFY_HEAP, GATE_NOTIFY_BATCH, sizeof(gate_notice), &batch);
    if (!keel_ok(s)) {
        keel_heap_free(NOTIFY_HEAP, mem);
        return KEEL_CONTEXT(s, "starting the notify hook's thread");
    }
    gate_notifier *n = (gate_notifier *)mem;
    n->batch = (gate_notice *)batch;
    n->out = out;
    (void)snprintf(n->target, sizeof(n->target), "%s", target);
    (void)snprintf(n->dir, sizeof(n->dir), "%s", dir);
    (void)snprintf(n->log, sizeof(n->log), "%s", log);
    keel_mutex_init(&n->lock, "gate.notify", GATE_RANK_NOTIFY);
    keel_cond_init(&n->cond);
    /* a connection of its own, used by the notifier's thread only from here on */
    s = gate_store_open(state, &n->store);
    if (keel_ok(s))
        gate_store_set_target(n->store, target);
    if (keel_ok(s))
        s = gate_store_notify_start(n->store, target);
    if (keel_ok(s))
        s = keel_thread_create(&n->thread, "gate-notify", NULL, notifier_main, n);
    if (!keel_ok(s)) {
        notifier_free(n);
        return KEEL_CONTEXT(s, "starting the notify hook's thread");
    }
    *np = n;
    return KEEL_OK;
}

keel_status gate_notifier_set_hook(gate_notifier *n, const gate_words *cmd)
{
    KEEL_ASSERT(n != NULL);
    keel_mutex_lock(&n->lock);
    bool same = n->next_hook != NULL ? hook_equal(n->next_hook, cmd)
                                     : n->hook_set && hook_equal(n->hook, cmd);
    keel_mutex_unlock(&n->lock);
    if (same)
        return KEEL_OK;
    hook_cmd *h = NULL;
    keel_status s = hook_copy(cmd, &h);
    if (!keel_ok(s))
        return s;
    keel_mutex_lock(&n->lock);
    hook_free(n->next_hook);
    n->next_hook = h;
    n->hook_set = true;
    n->woken = true;
    keel_cond_signal(&n->cond);
    keel_mutex_unlock(&n->lock);
    return KEEL_OK;
}

void gate_notifier_wake(gate_notifier *n)
{
    if (n == NULL)
        return;
    keel_mutex_lock(&n->lock);
    n->woken = true;
    keel_cond_signal(&n->cond);
    keel_mutex_unlock(&n->lock);
}

void gate_notifier_stop(gate_notifier *n, unsigned deadline_ms, unsigned long long *given_up)
{
    if (given_up != NULL)
        *given_up = 0;
    if (n == NULL)
        return;
    keel_mutex_lock(&n->lock);
    n->stopping = true;
    __atomic_store_n(&n->deadline, gate_now_ms() + (deadline_ms > 0 ? deadline_ms : 1),
                     __ATOMIC_RELEASE);
    keel_cond_signal(&n->cond);
    keel_mutex_unlock(&n->lock);
    keel_status s = keel_thread_join(n->thread, NULL);
    if (!keel_ok(s))
        keel_status_ignore(s, "stopping: nothing left to do about the notify thread");
    if (given_up != NULL)
        *given_up = n->given_up;
    notifier_free(n);
}
