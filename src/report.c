/*
 * report.c - the one report channel: every check in keel reports here.
 *
 * A report is built in thread-local storage (no malloc), rendered once for
 * stderr and once as a JSON line for the report file, each written with one
 * write(2) so that reports from several threads or processes never interleave.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- kinds and policies ------------------------------------------------------ */

#define KIND_NAME(e, name, policy, what)   name,
#define KIND_POLICY(e, name, policy, what) KEEL_POLICY_##policy,
static const char *const kind_names[] = {KEEL_REPORT_KINDS(KIND_NAME)};
static int policies[] = {KEEL_REPORT_KINDS(KIND_POLICY)};
#undef KIND_NAME
#undef KIND_POLICY
KEEL__STATIC_ASSERT(KEEL__ARRAY_LEN(kind_names) == KEEL_REPORT_KIND_COUNT,
                    "kind table out of step");

static unsigned long long counts[KEEL_REPORT_KIND_COUNT]
    __attribute__((aligned(64))); /* own lines */
static unsigned long long printed[KEEL_REPORT_KIND_COUNT] __attribute__((aligned(64)));
static unsigned long long seq_counter;

KEEL__TLS const char *keel__tls_module;
KEEL__TLS keel__report_capture *keel__tls_capture;

const char *keel_report_kind_name(keel_report_kind kind)
{
    if ((unsigned)kind >= (unsigned)KEEL_REPORT_KIND_COUNT)
        return "?";
    return kind_names[kind];
}

keel_policy keel_report_policy(keel_report_kind kind)
{
    keel__lazy_init(); /* report.<kind> in KEEL_OPTIONS */
    if ((unsigned)kind >= (unsigned)KEEL_REPORT_KIND_COUNT)
        return KEEL_POLICY_REPORT;
    return (keel_policy)__atomic_load_n(&policies[kind], __ATOMIC_RELAXED);
}

void keel_report_set_policy(keel_report_kind kind, keel_policy policy)
{
    keel__lazy_init(); /* KEEL_OPTIONS first: the program's setting is the later one */
    KEEL_ASSERT((unsigned)kind < (unsigned)KEEL_REPORT_KIND_COUNT);
    KEEL_ASSERT(policy == KEEL_POLICY_ABORT || policy == KEEL_POLICY_REPORT ||
                policy == KEEL_POLICY_COUNT);
    /* release: a kind or a policy out of range changes nothing (readers index by both) */
    if ((unsigned)kind < (unsigned)KEEL_REPORT_KIND_COUNT &&
        (unsigned)policy <= (unsigned)KEEL_POLICY_COUNT)
        __atomic_store_n(&policies[kind], (int)policy, __ATOMIC_RELAXED);
}

unsigned long long keel_report_count(keel_report_kind kind)
{
    keel__lazy_init(); /* (a malformed KEEL_OPTIONS is a report of kind options) */
    if ((unsigned)kind >= (unsigned)KEEL_REPORT_KIND_COUNT)
        return 0;
    return __atomic_load_n(&counts[kind], __ATOMIC_RELAXED);
}

static const char *policy_name(keel_policy p)
{
    switch (p) {
    case KEEL_POLICY_ABORT:
        return "abort";
    case KEEL_POLICY_REPORT:
        return "report";
    case KEEL_POLICY_COUNT:
        return "count";
    }
    return "?";
}

/* ---- handler ------------------------------------------------------------------------ */

static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;
static keel_report_handler handler_fn;
static void *handler_ctx;

keel_report_handler keel_report_set_handler(keel_report_handler handler, void *ctx)
{
    /* not a first use: a handler installed first gets a malformed KEEL_OPTIONS' report */
    KEEL_VERIFY(pthread_mutex_lock(&handler_lock) == 0);
    keel_report_handler old = handler_fn;
    __atomic_store_n(&handler_fn, handler, __ATOMIC_RELEASE);
    handler_ctx = ctx;
    KEEL_VERIFY(pthread_mutex_unlock(&handler_lock) == 0);
    return old;
}

void keel__report_status(keel_report_kind kind, keel_status s, const char *message)
{
    KEEL_ASSERT((unsigned)kind < (unsigned)KEEL_REPORT_KIND_COUNT && message != NULL);
    char text[1024];
    (void)keel_status_format(s, text, sizeof(text));
    keel_report *r = keel_report_begin(kind, NULL, 0, NULL, "%s", message);
    keel_report_add_text(r, "%s", text);
    (void)keel_report_emit(r);
    keel_status_free(s);
}

bool keel__report_count_only(keel_report_kind kind)
{
    KEEL_ASSERT((unsigned)kind < (unsigned)KEEL_REPORT_KIND_COUNT);
    if (keel_report_policy(kind) != KEEL_POLICY_COUNT ||
        __atomic_load_n(&handler_fn, __ATOMIC_ACQUIRE) != NULL)
        return false;
    __atomic_fetch_add(&counts[kind], 1, __ATOMIC_RELAXED);
    return true;
}

/* ---- threads -------------------------------------------------------------------------- */

long keel__thread_id(void)
{
    return (long)syscall(SYS_gettid);
}

void keel__thread_name(char *buf, size_t size)
{
    KEEL_ASSERT(buf != NULL && size > 0);
    char name[32] = "";
    if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0 || name[0] == '\0')
        (void)snprintf(name, sizeof(name), "tid %ld", keel__thread_id());
    (void)snprintf(buf, size, "%s", name);
}

/* ---- the report under construction ----------------------------------------------------- */

enum {
    MAX_DETAILS = 16,
    MAX_FRAMES = 64,
    MESSAGE_SIZE = 512,
    TEXT_SIZE = 2048,
    STORAGE_SIZE = 1024,
    LEVELS = 2
};

struct keel_report {
    /* in use: the frame of the keel_report_begin that took this slot (see there) */
    const void *busy_frame;
    const char *file;
    const char *func;
    size_t ndetails;
    size_t text_len;
    size_t storage_used;
    keel_report_detail details[MAX_DETAILS];
    void *frames[MAX_FRAMES];
    char message[MESSAGE_SIZE];
    char text[TEXT_SIZE];
    char storage[STORAGE_SIZE];
    keel_report_kind kind;
    int line;
    int nframes;
    bool plain; /* too deeply nested: print the message only */
    bool no_backtrace;
    bool frames_given;
};

/* Builders: one per nesting level per thread (level LEVELS prints plainly). */
static KEEL__TLS keel_report tls_reports[LEVELS + 1];

/*
 * Symbolizing, the handler, rendering and writing happen under one recursive
 * lock (reports are rare; this keeps big buffers out of every thread's TLS and
 * libdw is not thread-safe).  Only the thread holding it uses these buffers,
 * one set per nesting level.
 */
static pthread_mutex_t emit_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static keel_frame emit_frames[LEVELS][MAX_FRAMES];
static char emit_human[LEVELS][16384];
static char emit_json[LEVELS][16384];

keel_report *keel_report_begin(keel_report_kind kind, const char *file, int line, const char *func,
                               const char *fmt, ...)
{
    KEEL_ASSERT((unsigned)kind < (unsigned)KEEL_REPORT_KIND_COUNT);
    keel__lazy_init();
    /*
     * A slot is in use from begin to the end of emit, marked with the frame of the
     * begin that took it.  A begin from deeper in the stack (inside a handler, or
     * inside the reporting code) is nested and takes another slot; a begin from the
     * same depth or shallower finds it abandoned (a handler longjmp'ed out) and
     * reuses it.  Scanning from slot 0 means an abandoned slot never stays lost.
     */
    const char *here = (const char *)__builtin_frame_address(0);
    int level = 0;
    while (level < LEVELS && tls_reports[level].busy_frame != NULL &&
           here < (const char *)tls_reports[level].busy_frame)
        level++;
    keel_report *r = &tls_reports[level];
    r->busy_frame = level < LEVELS ? here : NULL;
    r->kind = (unsigned)kind < (unsigned)KEEL_REPORT_KIND_COUNT ? kind : KEEL_REPORT_USER;
    r->file = file; /* NULL: the first frame of the program's (emit) */
    r->line = line;
    r->func = func != NULL ? func : "?";
    r->plain = level == LEVELS;
    r->no_backtrace = false;
    r->frames_given = false;
    r->nframes = 0;
    r->ndetails = 0;
    r->text_len = 0;
    r->text[0] = '\0';
    r->storage_used = 0;
    r->message[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(r->message, sizeof(r->message), fmt, ap);
        va_end(ap);
    }
    return r;
}

static char *store(keel_report *r, const char *s)
{
    size_t len = strlen(s);
    if (r->storage_used + len + 1 > sizeof(r->storage))
        len =
            sizeof(r->storage) > r->storage_used + 4 ? sizeof(r->storage) - r->storage_used - 1 : 0;
    if (len == 0 && s[0] != '\0')
        return NULL;
    char *dst = r->storage + r->storage_used;
    memcpy(dst, s, len);
    dst[len] = '\0';
    r->storage_used += len + 1;
    return dst;
}

static void add_detail(keel_report *r, const char *key, const char *value, bool quoted)
{
    KEEL_ASSERT(r != NULL && key != NULL && value != NULL);
    if (r->ndetails == MAX_DETAILS)
        return;
    char *k = store(r, key);
    char *v = store(r, value);
    if (k == NULL || v == NULL)
        return;
    keel_report_detail *d = &r->details[r->ndetails++];
    d->key = k;
    d->value = v;
    d->quoted = quoted;
}

void keel_report_add_int(keel_report *r, const char *key, long long v)
{
    char buf[32];
    (void)snprintf(buf, sizeof(buf), "%lld", v);
    add_detail(r, key, buf, false);
}

void keel_report_add_uint(keel_report *r, const char *key, unsigned long long v)
{
    char buf[32];
    (void)snprintf(buf, sizeof(buf), "%llu", v);
    add_detail(r, key, buf, false);
}

void keel_report_add_str(keel_report *r, const char *key, const char *v)
{
    add_detail(r, key, v != NULL ? v : "(null)", true);
}

void keel_report_add_ptr(keel_report *r, const char *key, const void *v)
{
    char buf[32];
    (void)snprintf(buf, sizeof(buf), "%p", v);
    add_detail(r, key, buf, true);
}

void keel_report_add_text(keel_report *r, const char *fmt, ...)
{
    KEEL_ASSERT(r != NULL && fmt != NULL);
    if (r->text_len > 0 && r->text_len + 1 < sizeof(r->text))
        r->text[r->text_len++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    keel__buf_vprintf(r->text, sizeof(r->text), &r->text_len, fmt, ap);
    va_end(ap);
    if (r->text_len >= sizeof(r->text))
        r->text_len = sizeof(r->text) - 1;
}

void keel_report_no_backtrace(keel_report *r)
{
    KEEL_ASSERT(r != NULL);
    r->no_backtrace = true;
}

void keel_report_set_backtrace(keel_report *r, void *const *pcs, int n)
{
    KEEL_ASSERT(r != NULL && (pcs != NULL || n == 0));
    if (n < 0)
        n = 0;
    if (n > MAX_FRAMES)
        n = MAX_FRAMES;
    for (int i = 0; i < n; i++)
        r->frames[i] = pcs[i];
    r->nframes = n;
    r->frames_given = true;
}

/* ---- rendering ------------------------------------------------------------------------------ */

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* Indent every line of `text` by `indent` spaces. */
static void put_indented(char *buf, size_t size, size_t *pos, const char *text, const char *indent)
{
    const char *p = text;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        keel__buf_printf(buf, size, pos, "%s%.*s\n", indent, (int)len, p);
        p += len;
        if (*p == '\n')
            p++;
    }
}

static void render_human(const keel_report_info *in, const keel_frame *frames, char *buf,
                         size_t size, size_t *pos)
{
    keel__buf_printf(buf, size, pos, "keel: %s: %s\n", in->kind_name, in->message);
    keel__buf_printf(buf, size, pos, "  at %s:%d in %s\n", in->file, in->line, in->func);
    keel__buf_printf(buf, size, pos, "  thread: %s (tid %ld)", in->thread, in->tid);
    if (in->module[0] != '\0')
        keel__buf_printf(buf, size, pos, "  module: %s", in->module);
    keel__buf_printf(buf, size, pos, "\n");
    if (in->ndetails > 0) {
        keel__buf_printf(buf, size, pos, "  details:");
        for (size_t i = 0; i < in->ndetails; i++)
            keel__buf_printf(buf, size, pos, "%s %s=%s%s%s", i > 0 ? "," : "", in->details[i].key,
                             in->details[i].quoted ? "\"" : "", in->details[i].value,
                             in->details[i].quoted ? "\"" : "");
        keel__buf_printf(buf, size, pos, "\n");
    }
    if (in->text[0] != '\0')
        put_indented(buf, size, pos, in->text, "  ");
    if (in->nframes > 0) {
        keel__buf_printf(buf, size, pos, "  backtrace:\n");
        for (int i = 0; i < in->nframes; i++) {
            const keel_frame *f = &frames[i];
            keel__buf_printf(buf, size, pos, "    #%-2d %p %s", i, f->pc,
                             f->func[0] != '\0' ? f->func : "??");
            if (f->func[0] != '\0')
                keel__buf_printf(buf, size, pos, "+0x%lx", f->offset);
            if (f->file[0] != '\0')
                keel__buf_printf(buf, size, pos, " (%s:%d)", f->file, f->line);
            if (f->object[0] != '\0')
                keel__buf_printf(buf, size, pos, " [%s]", f->object);
            keel__buf_printf(buf, size, pos, "\n");
        }
    }
    keel__buf_printf(buf, size, pos, "  policy: %s (report.%s=abort|report|count)\n",
                     policy_name(in->policy), in->kind_name);
}

static void render_json(const keel_report_info *in, const keel_frame *frames, char *buf,
                        size_t size, size_t *pos)
{
    struct timeval tv;
    (void)gettimeofday(&tv, NULL);
    keel__buf_printf(buf, size, pos, "{\"kind\":");
    keel__buf_json_str(buf, size, pos, in->kind_name);
    keel__buf_printf(buf, size, pos,
                     ",\"seq\":%llu,\"pid\":%ld,\"time\":%ld.%06ld,\"policy\":\"%s\"", in->seq,
                     (long)getpid(), (long)tv.tv_sec, (long)tv.tv_usec, policy_name(in->policy));
    keel__buf_printf(buf, size, pos, ",\"message\":");
    keel__buf_json_str(buf, size, pos, in->message);
    keel__buf_printf(buf, size, pos, ",\"site\":{\"file\":");
    keel__buf_json_str(buf, size, pos, in->file);
    keel__buf_printf(buf, size, pos, ",\"line\":%d,\"func\":", in->line);
    keel__buf_json_str(buf, size, pos, in->func);
    keel__buf_printf(buf, size, pos, "},\"thread\":{\"name\":");
    keel__buf_json_str(buf, size, pos, in->thread);
    keel__buf_printf(buf, size, pos, ",\"tid\":%ld},\"module\":", in->tid);
    keel__buf_json_str(buf, size, pos, in->module);
    keel__buf_printf(buf, size, pos, ",\"details\":{");
    for (size_t i = 0; i < in->ndetails; i++) {
        keel__buf_printf(buf, size, pos, "%s", i > 0 ? "," : "");
        keel__buf_json_str(buf, size, pos, in->details[i].key);
        keel__buf_printf(buf, size, pos, ":");
        if (in->details[i].quoted)
            keel__buf_json_str(buf, size, pos, in->details[i].value);
        else
            keel__buf_printf(buf, size, pos, "%s", in->details[i].value);
    }
    keel__buf_printf(buf, size, pos, "},\"text\":");
    keel__buf_json_str(buf, size, pos, in->text);
    keel__buf_printf(buf, size, pos, ",\"backtrace\":[");
    for (int i = 0; i < in->nframes; i++) {
        const keel_frame *f = &frames[i];
        keel__buf_printf(buf, size, pos, "%s{\"pc\":\"%p\",\"func\":", i > 0 ? "," : "", f->pc);
        keel__buf_json_str(buf, size, pos, f->func);
        keel__buf_printf(buf, size, pos, ",\"file\":");
        keel__buf_json_str(buf, size, pos, f->file);
        keel__buf_printf(buf, size, pos, ",\"line\":%d,\"object\":", f->line);
        keel__buf_json_str(buf, size, pos, f->object);
        keel__buf_printf(buf, size, pos, "}");
    }
    keel__buf_printf(buf, size, pos, "]}\n");
}

/* The report file: opened once per path, appended to with O_APPEND. */
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *file_path;
static int file_fd = -1;

static int report_fd(void)
{
    const char *path = keel__opt_str(KEEL__OPT_REPORT_FILE);
    if (path == NULL || path[0] == '\0')
        return -1;
    KEEL_VERIFY(pthread_mutex_lock(&file_lock) == 0);
    if (path != file_path) {
        if (file_fd >= 0)
            (void)close(file_fd);
        file_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        file_path = path;
        if (file_fd < 0) {
            char msg[512];
            int n = snprintf(msg, sizeof(msg), "keel: options: cannot open report file '%s': %s\n",
                             path, strerror(errno));
            if (n > 0)
                write_all(2, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
        }
    }
    int fd = file_fd;
    KEEL_VERIFY(pthread_mutex_unlock(&file_lock) == 0);
    return fd;
}

/* Around fork (a preload's handlers): no report lock is left held in the child.  The emission
 * lock first: it is held while the others are taken. */
void keel__report_fork(int phase)
{
    if (phase == 0)
        KEEL_VERIFY(pthread_mutex_lock(&emit_lock) == 0);
    keel__fork_mutex(&handler_lock, phase);
    keel__fork_mutex(&file_lock, phase);
    if (phase == 1)
        KEEL_VERIFY(pthread_mutex_unlock(&emit_lock) == 0);
    else if (phase == 2) { /* the child: its thread is not the owner the lock recorded */
        pthread_mutexattr_t attr;
        KEEL_VERIFY(pthread_mutexattr_init(&attr) == 0);
        KEEL_VERIFY(pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE) == 0);
        KEEL_VERIFY(pthread_mutex_init(&emit_lock, &attr) == 0);
        (void)pthread_mutexattr_destroy(&attr);
    }
}

/* Drop the innermost frames that are keel's own (keel__first_user_frame): the caller heads. */
static void drop_keel_frames(keel_report *r)
{
    int first = keel__first_user_frame(r->frames, r->nframes);
    if (first > 0) {
        memmove(r->frames, r->frames + first, (size_t)(r->nframes - first) * sizeof(r->frames[0]));
        r->nframes -= first;
    }
}

/*
 * Does a loaded suppression match r (its frames, keel's dropped, symbolized
 * into the emit slot of its level under the emit lock)?
 */
static bool suppressed(keel_report *r, int level)
{
    KEEL_VERIFY(pthread_mutex_lock(&emit_lock) == 0);
    keel_frame *fr = emit_frames[level];
    for (int i = 0; i < r->nframes; i++)
        if (!keel_backtrace_symbolize(r->frames[i], &fr[i])) {
            memset(&fr[i], 0, sizeof(fr[i]));
            fr[i].pc = r->frames[i];
        }
    const char *name = keel__supp_match(kind_names[r->kind], r->message, fr, r->nframes);
    KEEL_VERIFY(pthread_mutex_unlock(&emit_lock) == 0);
    return name != NULL;
}

static keel_policy report_emit(keel_report *r);

void (*keel__report_guard)(int delta);

keel_policy keel_report_emit(keel_report *r)
{
    void (*guard)(int) = __atomic_load_n(&keel__report_guard, __ATOMIC_ACQUIRE);
    if (guard != NULL)
        guard(1);
    keel_policy policy = report_emit(r);
    if (guard != NULL)
        guard(-1);
    return policy;
}

static keel_policy report_emit(keel_report *r)
{
    KEEL_ASSERT(r != NULL && r >= tls_reports && r <= tls_reports + LEVELS);
    keel_report_kind kind = r->kind;
    keel__report_capture *cap = keel__tls_capture;
    if (KEEL_UNLIKELY(cap != NULL)) {
        if (cap->count[kind]++ == 0) {
            size_t n = strnlen(r->message, sizeof(cap->first[kind]) - 1); /* cut to size */
            memcpy(cap->first[kind], r->message, n);
            cap->first[kind][n] = '\0';
        }
        r->busy_frame = NULL;
        return KEEL_POLICY_COUNT;
    }
    keel_policy policy = keel_report_policy(kind);
    int level = (int)(r - tls_reports);

    if (r->plain) {
        __atomic_fetch_add(&counts[kind], 1, __ATOMIC_RELAXED); /* not matched: no frames here */
        char line[MESSAGE_SIZE + 128];
        int n = snprintf(line, sizeof(line), "keel: %s: %s [at %s:%d; reported while reporting]\n",
                         kind_names[kind], r->message, r->file != NULL ? r->file : "?", r->line);
        if (n > 0)
            write_all(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
        if (policy == KEEL_POLICY_ABORT)
            abort();
        return policy;
    }

    keel_report_info info;
    memset(&info, 0, sizeof(info));
    char thread[64];
    keel__thread_name(thread, sizeof(thread));
    info.kind = kind;
    info.kind_name = kind_names[kind];
    info.policy = policy;
    info.message = r->message;
    info.text = r->text;
    info.thread = thread;
    info.tid = keel__thread_id();
    info.module = keel__tls_module != NULL ? keel__tls_module : "";
    info.ndetails = r->ndetails;
    info.details = r->details;
    info.seq = __atomic_add_fetch(&seq_counter, 1, __ATOMIC_RELAXED);

    bool show = policy != KEEL_POLICY_COUNT && !r->no_backtrace &&
                (r->frames_given || keel__opt_bool(KEEL__OPT_REPORT_BACKTRACE));
    bool site_from_frames = r->file == NULL && !r->no_backtrace;
    bool supp = keel__supp_active() && kind != KEEL_REPORT_OPTIONS;
    /* all of them: report.frames counts the program's, after keel's are dropped */
    if (!r->frames_given && (show || site_from_frames || (supp && !r->no_backtrace)))
        r->nframes = keel_backtrace(r->frames, MAX_FRAMES, 1);
    drop_keel_frames(r);
    if (supp && suppressed(r, level)) {
        r->busy_frame = NULL;
        return KEEL_POLICY_COUNT; /* a report the user lives with: not even counted */
    }
    __atomic_fetch_add(&counts[kind], 1, __ATOMIC_RELAXED);
    long long want = keel__opt_int(KEEL__OPT_REPORT_FRAMES);
    info.nframes = !show ? 0 : r->frames_given || r->nframes <= want ? r->nframes : (int)want;
    info.frames = r->frames;
    /* a report made by keel for the program without a site of its own: the program's frame */
    keel_frame site;
    for (int i = 0; r->file == NULL && i < r->nframes; i++)
        if (!keel__frame_in_libc(r->frames[i]) && keel_backtrace_symbolize(r->frames[i], &site) &&
            site.file[0] != '\0') {
            r->file = site.file;
            r->line = site.line;
            r->func = site.func[0] != '\0' ? site.func : "?";
        }
    info.file = r->file != NULL ? r->file : "?";
    info.line = r->line;
    info.func = r->func;

    /* The handler runs first, without keel's locks: it may longjmp away. */
    bool suppress = false;
    KEEL_VERIFY(pthread_mutex_lock(&handler_lock) == 0);
    keel_report_handler h = handler_fn;
    void *ctx = handler_ctx;
    KEEL_VERIFY(pthread_mutex_unlock(&handler_lock) == 0);
    if (h != NULL) {
        suppress = h(&info, ctx); /* may longjmp: the slot is then reused, see begin */
    }

    sigset_t sigs; /* (no signal handler of the program runs under it: keel__signals_block) */
    keel__signals_block(&sigs);
    KEEL_VERIFY(pthread_mutex_lock(&emit_lock) == 0);
    keel_frame *fr = emit_frames[level];
    char *human = emit_human[level];
    char *json = emit_json[level];
    if (policy != KEEL_POLICY_COUNT) {
        for (int i = 0; i < info.nframes; i++)
            if (!keel_backtrace_symbolize(r->frames[i], &fr[i])) {
                memset(&fr[i], 0, sizeof(fr[i]));
                fr[i].pc = r->frames[i];
            }

        long long limit = keel__opt_int(KEEL__OPT_REPORT_LIMIT);
        unsigned long long nth = __atomic_add_fetch(&printed[kind], 1, __ATOMIC_RELAXED);
        bool over = limit > 0 && nth > (unsigned long long)limit && policy != KEEL_POLICY_ABORT;
        const size_t hsize = sizeof(emit_human[0]);
        const size_t jsize = sizeof(emit_json[0]);
        if (!over) {
            size_t pos = 0;
            if (!suppress) {
                render_human(&info, fr, human, hsize, &pos);
                if (keel__opt_bool(KEEL__OPT_REPORT_GEN_SUPPRESSIONS))
                    keel__supp_render(info.kind_name, info.message, fr, info.nframes, human, hsize,
                                      &pos);
                write_all(2, human, pos < hsize ? pos : hsize - 1);
            }
            int fd = report_fd();
            if (fd >= 0) {
                pos = 0;
                render_json(&info, fr, json, jsize, &pos);
                if (pos >= jsize) {
                    /* keep the line valid JSON: drop the backtrace and text */
                    info.nframes = 0;
                    info.text = "(truncated)";
                    pos = 0;
                    render_json(&info, fr, json, jsize, &pos);
                }
                if (pos < jsize)
                    write_all(fd, json, pos);
            }
        } else if (nth == (unsigned long long)limit + 1 && !suppress) {
            char line[256];
            int n = snprintf(line, sizeof(line),
                             "keel: %s: more reports of this kind are only counted "
                             "(report.max-printed=%lld)\n",
                             kind_names[kind], limit);
            if (n > 0)
                write_all(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
        }
    }
    KEEL_VERIFY(pthread_mutex_unlock(&emit_lock) == 0);
    keel__signals_restore(&sigs);
    r->busy_frame = NULL;
    if (policy == KEEL_POLICY_ABORT)
        abort();
    return policy;
}
