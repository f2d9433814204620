/*
 * status.c - rich errors: code spaces, messages, details, cause chains,
 * printing, and (devel) tracking of errors that are lost.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- keel's own code space ---------------------------------------------- */

#define CODE_NAME(name, msg) #name,
#define CODE_MSG(name, msg)  msg,
static const char *const keel_code_names[] = {"OK", KEEL_CODES(CODE_NAME)};
static const char *const keel_code_messages[] = {"success", KEEL_CODES(CODE_MSG)};
#undef CODE_NAME
#undef CODE_MSG
KEEL__STATIC_ASSERT(KEEL__ARRAY_LEN(keel_code_names) == KEEL_E_COUNT, "code table out of step");

const keel_codespace keel_codespace_keel = {"keel", (int)KEEL_E_COUNT, keel_code_names,
                                            keel_code_messages};

/* ---- code space registry -------------------------------------------------- */

enum { MAX_SPACES = 64 };
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static const keel_codespace *registry[MAX_SPACES] = {&keel_codespace_keel};
static size_t registry_len = 1;

keel_status keel_codespace_register(const keel_codespace *space)
{
    keel__lazy_init();
    if (space == NULL || space->name == NULL || space->name[0] == '\0' || space->count < 1 ||
        space->names == NULL || space->messages == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "code space is incomplete (needs a name and code tables)");
    keel_status s = KEEL_OK;
    KEEL_VERIFY(pthread_mutex_lock(&registry_lock) == 0);
    for (size_t i = 0; i < registry_len; i++) {
        if (registry[i] == space)
            goto out;
        if (strcmp(registry[i]->name, space->name) == 0) {
            s = KEEL_ERR(KEEL_E_EXISTS, "code space '%s' is already registered by another table",
                         space->name);
            goto out;
        }
    }
    if (registry_len == MAX_SPACES)
        s = KEEL_ERR(KEEL_E_FULL, "cannot register code space '%s': %d spaces already registered",
                     space->name, (int)MAX_SPACES);
    else
        registry[registry_len++] = space;
out:
    KEEL_VERIFY(pthread_mutex_unlock(&registry_lock) == 0);
    return s;
}

const keel_codespace *keel_codespace_find(const char *name)
{
    const keel_codespace *found = NULL;
    if (name == NULL)
        return NULL;
    KEEL_VERIFY(pthread_mutex_lock(&registry_lock) == 0);
    for (size_t i = 0; i < registry_len && found == NULL; i++)
        if (strcmp(registry[i]->name, name) == 0)
            found = registry[i];
    KEEL_VERIFY(pthread_mutex_unlock(&registry_lock) == 0);
    return found;
}

const char *keel_code_name(const keel_codespace *space, int code)
{
    if (space == NULL || code < 0 || code >= space->count || space->names[code] == NULL)
        return "?";
    return space->names[code];
}

const char *keel_code_message(const keel_codespace *space, int code)
{
    if (space == NULL || code < 0 || code >= space->count || space->messages[code] == NULL)
        return "?";
    return space->messages[code];
}

/* ---- the error object ----------------------------------------------------- */

typedef enum detail_type { DETAIL_INT, DETAIL_UINT, DETAIL_STR, DETAIL_PTR } detail_type;

typedef struct detail {
    struct detail *next;
    const char *key; /* points into the same allocation */
    detail_type type;
    long long i;
    unsigned long long u;
    const char *s; /* DETAIL_STR: points into the same allocation */
    void *p;
    void (*destroy)(void *);
} detail;

enum {
    FLAG_STATIC = 1u << 0,          /* preallocated: never freed */
    FLAG_SEEN = 1u << 1,            /* examined by keel_ok() or a query */
    FLAG_DETAILS_DROPPED = 1u << 2, /* a detail was lost to out-of-memory */
    FLAG_CONTEXT_DROPPED = 1u << 3, /* a wrap was lost to out-of-memory */
    FLAG_TRACKED = 1u << 4          /* on the live list (devel) */
};

enum { CREATION_FRAMES = 16 };

struct keel_error {
    const keel_codespace *space;
    int code;
    unsigned flags; /* FLAG_*, updated atomically */
    const char *file;
    const char *func;
    int line;
    const char *message; /* points into the same allocation */
    detail *details;
    detail **details_tail;
    keel_error *cause;
    /* devel: the live list and where the error was made */
    keel_error *live_prev;
    keel_error *live_next;
    int nframes;
    void *frames[CREATION_FRAMES];
    char *site; /* an error keel made for the program: its file and func (user_site) */
};

/* The error handed out when memory runs out while making another one. */
static keel_error oom_error = {&keel_codespace_keel,
                               (int)KEEL_E_NOMEM,
                               FLAG_STATIC,
                               __FILE__,
                               "keel__status_new",
                               __LINE__,
                               "out of memory while creating an error",
                               NULL,
                               NULL,
                               NULL,
                               NULL,
                               NULL,
                               0,
                               {NULL},
                               NULL};

KEEL__TLS unsigned keel__status_fail_allocs;

static void *error_alloc(size_t size)
{
    if (KEEL_UNLIKELY(keel__status_fail_allocs > 0)) {
        keel__status_fail_allocs--;
        return NULL;
    }
    return malloc(size);
}

static void set_flag(keel_error *e, unsigned flag)
{
    if ((__atomic_load_n(&e->flags, __ATOMIC_RELAXED) & flag) == 0)
        __atomic_fetch_or(&e->flags, flag, __ATOMIC_RELAXED);
}

static bool has_flag(const keel_error *e, unsigned flag)
{
    return (__atomic_load_n(&e->flags, __ATOMIC_RELAXED) & flag) != 0;
}

/* ---- devel: tracking live errors ----------------------------------------------- */

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static keel_error *live_head;

static void track(keel_error *e)
{
    if (!KEEL_DEVEL || !keel__opt_bool(KEEL__OPT_ERROR_TRACK))
        return;
    e->nframes = keel_backtrace(e->frames, CREATION_FRAMES, 2);
    KEEL_VERIFY(pthread_mutex_lock(&live_lock) == 0);
    e->live_prev = NULL;
    e->live_next = live_head;
    if (live_head != NULL)
        live_head->live_prev = e;
    live_head = e;
    e->flags |= FLAG_TRACKED;
    KEEL_VERIFY(pthread_mutex_unlock(&live_lock) == 0);
}

static void untrack(keel_error *e)
{
    if (!has_flag(e, FLAG_TRACKED))
        return;
    KEEL_VERIFY(pthread_mutex_lock(&live_lock) == 0);
    if (e->live_prev != NULL)
        e->live_prev->live_next = e->live_next;
    else
        live_head = e->live_next;
    if (e->live_next != NULL)
        e->live_next->live_prev = e->live_prev;
    e->live_prev = e->live_next = NULL;
    __atomic_fetch_and(&e->flags, ~(unsigned)FLAG_TRACKED, __ATOMIC_RELAXED);
    KEEL_VERIFY(pthread_mutex_unlock(&live_lock) == 0);
}

void keel__status_seen(keel_error *err)
{
    if (err != NULL)
        set_flag(err, FLAG_SEEN);
}

/* ---- creating ------------------------------------------------------------------- */

/* Is file one of libkeel's own sources (where KEEL_ERR inside keel puts its errors)? */
bool keel__source_is_keel(const char *file)
{
    static const char here[] = __FILE__; /* <keel>/src/status.c */
    const size_t dir = sizeof(here) - sizeof("status.c");
    return strncmp(file, here, dir) == 0 && strchr(file + dir, '/') == NULL;
}

/*
 * An error keel makes for the program names the program's call: the first frame outside keel
 * and libc, when there is one (a keel thread's errors keep keel's site), and memory for it.
 */
static void user_site(keel_error *e)
{
    void *pcs[32];
    int n = keel_backtrace(pcs, (int)KEEL__ARRAY_LEN(pcs), 1);
    for (int i = 0; i < n; i++) {
        if (keel__frame_in_keel(pcs[i]) || keel__frame_in_libc(pcs[i]))
            continue;
        keel_frame f;
        if (!keel_backtrace_symbolize(pcs[i], &f) || f.file[0] == '\0')
            return;
        size_t flen = strlen(f.file) + 1;
        size_t nlen = strlen(f.func) + 1;
        char *site = (char *)error_alloc(flen + nlen);
        if (site == NULL)
            return;
        memcpy(site, f.file, flen);
        memcpy(site + flen, f.func, nlen);
        e->site = site;
        e->file = site;
        e->func = site[flen] != '\0' ? site + flen : "?";
        e->line = f.line;
        return;
    }
}

static keel_status make_status(keel_error *e)
{
    keel_status s;
    s.err = e;
    return s;
}

static keel_status vnew(const keel_codespace *space, int code, keel_status cause, const char *file,
                        int line, const char *func, const char *fmt, va_list ap) KEEL_PRINTF(7, 0);

static keel_status vnew(const keel_codespace *space, int code, keel_status cause, const char *file,
                        int line, const char *func, const char *fmt, va_list ap)
{
    KEEL_ASSERTF(space != NULL && code > 0 && code < space->count,
                 "error code %d is not a code of space '%s'", code,
                 space != NULL ? space->name : "(null)");
    keel__lazy_init();
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    size_t len = n > 0 ? (size_t)n : 0;
    keel_error *e = (keel_error *)error_alloc(sizeof(keel_error) + len + 1);
    if (e == NULL) {
        if (cause.err != NULL) {
            set_flag(cause.err, FLAG_CONTEXT_DROPPED);
            return cause;
        }
        return make_status(&oom_error);
    }
    memset(e, 0, sizeof(*e));
    char *msg = (char *)(e + 1);
    if (n > 0)
        (void)vsnprintf(msg, len + 1, fmt, ap);
    msg[len] = '\0';
    e->space = space;
    e->code = code;
    e->file = file;
    e->line = line;
    e->func = func;
    e->message = msg;
    e->details_tail = &e->details;
    e->cause = cause.err;
    if (cause.err != NULL)
        untrack(cause.err); /* now owned by e */
    if (keel__source_is_keel(file))
        user_site(e);
    track(e);
    return make_status(e);
}

keel_status keel__status_new(const keel_codespace *space, int code, keel_status cause,
                             const char *file, int line, const char *func, const char *fmt, ...)
{
    KEEL_ASSERT(file != NULL && func != NULL && fmt != NULL);
    keel_status s;
    va_list ap;
    va_start(ap, fmt);
    s = vnew(space, code, cause, file, line, func, fmt, ap);
    va_end(ap);
    return s;
}

keel_status keel__status_wrap(const keel_codespace *space, int code, keel_status cause,
                              const char *file, int line, const char *func, const char *fmt, ...)
{
    KEEL_ASSERT(file != NULL && func != NULL && fmt != NULL);
    if (cause.err == NULL)
        return cause; /* wrapping success is success */
    keel_status s;
    va_list ap;
    va_start(ap, fmt);
    s = vnew(space, code, cause, file, line, func, fmt, ap);
    va_end(ap);
    return s;
}

keel_status keel__status_context(keel_status cause, const char *file, int line, const char *func,
                                 const char *fmt, ...)
{
    KEEL_ASSERT(file != NULL && func != NULL && fmt != NULL);
    if (cause.err == NULL)
        return cause;
    keel_status s;
    va_list ap;
    va_start(ap, fmt);
    s = vnew(cause.err->space, cause.err->code, cause, file, line, func, fmt, ap);
    va_end(ap);
    return s;
}

keel_status keel__status_sys(int errnum, const char *file, int line, const char *func,
                             const char *fmt, ...)
{
    KEEL_ASSERT(file != NULL && func != NULL && fmt != NULL);
    /* the caller's message whole, as KEEL_ERR keeps it (one on the heap when it is long; cut
     * at the buffer only when that allocation fails), then the errno's text */
    char small[512];
    char *what = small;
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    if (n >= (int)sizeof(small)) {
        char *big = (char *)malloc((size_t)n + 1);
        if (big != NULL) {
            (void)vsnprintf(big, (size_t)n + 1, fmt, ap2);
            what = big;
        }
    }
    va_end(ap2);
    va_end(ap);
    /* errno 0 (a call that failed without setting it): no "Success", no name "0" */
    char errbuf[128];
    const char *text = errnum != 0 ? strerror_r(errnum, errbuf, sizeof(errbuf)) : "no errno";
    const char *name = errnum != 0 ? strerrorname_np(errnum) : "none";
    keel_status s = keel__status_new(&keel_codespace_keel, KEEL_E_SYS, KEEL_OK, file, line, func,
                                     "%s: %s", what, text);
    if (what != small)
        free(what);
    s = keel_status_with_int(s, "errno", errnum);
    return keel_status_with_str(s, "errno_name", name != NULL ? name : "?");
}

/* ---- details ----------------------------------------------------------------------- */

static detail *add_detail(keel_status s, const char *key, detail_type type, const char *str)
{
    if (s.err == NULL || has_flag(s.err, FLAG_STATIC))
        return NULL;
    KEEL_ASSERT(key != NULL);
    size_t klen = strlen(key);
    size_t slen = str != NULL ? strlen(str) : 0;
    detail *d = (detail *)error_alloc(sizeof(detail) + klen + 1 + slen + 1);
    if (d == NULL) {
        set_flag(s.err, FLAG_DETAILS_DROPPED);
        return NULL;
    }
    memset(d, 0, sizeof(*d));
    char *kcopy = (char *)(d + 1);
    memcpy(kcopy, key, klen + 1);
    d->key = kcopy;
    d->type = type;
    if (str != NULL) {
        char *scopy = kcopy + klen + 1;
        memcpy(scopy, str, slen + 1);
        d->s = scopy;
    }
    *s.err->details_tail = d;
    s.err->details_tail = &d->next;
    return d;
}

keel_status keel_status_with_int(keel_status s, const char *key, long long v)
{
    detail *d = add_detail(s, key, DETAIL_INT, NULL);
    if (d != NULL)
        d->i = v;
    return s;
}

keel_status keel_status_with_uint(keel_status s, const char *key, unsigned long long v)
{
    detail *d = add_detail(s, key, DETAIL_UINT, NULL);
    if (d != NULL)
        d->u = v;
    return s;
}

keel_status keel_status_with_str(keel_status s, const char *key, const char *v)
{
    (void)add_detail(s, key, DETAIL_STR, v != NULL ? v : "");
    return s;
}

keel_status keel_status_with_ptr(keel_status s, const char *key, void *v, void (*destroy)(void *))
{
    detail *d = add_detail(s, key, DETAIL_PTR, NULL);
    if (d != NULL) {
        d->p = v;
        d->destroy = destroy;
    } else if (s.err != NULL && destroy != NULL) {
        destroy(v); /* the error cannot own it: do not leak it */
    }
    return s;
}

static const detail *find_detail(keel_status s, const char *key, detail_type type)
{
    if (key == NULL)
        return NULL;
    keel__status_seen(s.err);
    for (const keel_error *e = s.err; e != NULL; e = e->cause)
        for (const detail *d = e->details; d != NULL; d = d->next)
            if (d->type == type && strcmp(d->key, key) == 0)
                return d;
    return NULL;
}

bool keel_status_get_int(keel_status s, const char *key, long long *out)
{
    const detail *d = find_detail(s, key, DETAIL_INT);
    if (d != NULL && out != NULL)
        *out = d->i;
    return d != NULL;
}

bool keel_status_get_uint(keel_status s, const char *key, unsigned long long *out)
{
    const detail *d = find_detail(s, key, DETAIL_UINT);
    if (d != NULL && out != NULL)
        *out = d->u;
    return d != NULL;
}

const char *keel_status_get_str(keel_status s, const char *key)
{
    const detail *d = find_detail(s, key, DETAIL_STR);
    return d != NULL ? d->s : NULL;
}

void *keel_status_get_ptr(keel_status s, const char *key)
{
    const detail *d = find_detail(s, key, DETAIL_PTR);
    return d != NULL ? d->p : NULL;
}

/* ---- examining -------------------------------------------------------------------------- */

const keel_codespace *keel_status_space(keel_status s)
{
    keel__status_seen(s.err);
    return s.err != NULL ? s.err->space : NULL;
}

int keel_status_code(keel_status s)
{
    keel__status_seen(s.err);
    return s.err != NULL ? s.err->code : (int)KEEL_E_OK;
}

bool keel_status_is(keel_status s, const keel_codespace *space, int code)
{
    keel__status_seen(s.err);
    return s.err != NULL && s.err->space == space && s.err->code == code;
}

bool keel_status_has(keel_status s, const keel_codespace *space, int code)
{
    keel__status_seen(s.err);
    for (const keel_error *e = s.err; e != NULL; e = e->cause)
        if (e->space == space && e->code == code)
            return true;
    return false;
}

const char *keel_status_message(keel_status s)
{
    keel__status_seen(s.err);
    return s.err != NULL ? s.err->message : "";
}

size_t keel_status_depth(keel_status s)
{
    size_t n = 0;
    for (const keel_error *e = s.err; e != NULL; e = e->cause)
        n++;
    return n;
}

const char *keel_status_file(keel_status s)
{
    return s.err != NULL ? s.err->file : "";
}

int keel_status_line(keel_status s)
{
    return s.err != NULL ? s.err->line : 0;
}

/* ---- printing ------------------------------------------------------------------------------ */

static void format_details(const keel_error *e, char *buf, size_t size, size_t *pos, bool json)
{
    const char *sep = "";
    keel__buf_printf(buf, size, pos, json ? "{" : " {");
    for (const detail *d = e->details; d != NULL; d = d->next) {
        if (json) {
            keel__buf_printf(buf, size, pos, "%s", sep);
            keel__buf_json_str(buf, size, pos, d->key);
            keel__buf_printf(buf, size, pos, ":");
        } else {
            keel__buf_printf(buf, size, pos, "%s%s=", sep, d->key);
        }
        switch (d->type) {
        case DETAIL_INT:
            keel__buf_printf(buf, size, pos, "%lld", d->i);
            break;
        case DETAIL_UINT:
            keel__buf_printf(buf, size, pos, "%llu", d->u);
            break;
        case DETAIL_STR:
            keel__buf_json_str(buf, size, pos, d->s);
            break;
        case DETAIL_PTR:
            if (json)
                keel__buf_printf(buf, size, pos, "\"%p\"", d->p);
            else
                keel__buf_printf(buf, size, pos, "%p", d->p);
            break;
        }
        sep = json ? "," : ", ";
    }
    if (has_flag(e, FLAG_DETAILS_DROPPED)) {
        if (json)
            keel__buf_printf(buf, size, pos, "%s\"details_dropped\":true", sep);
        else
            keel__buf_printf(buf, size, pos, "%s(some details lost: out of memory)", sep);
    }
    keel__buf_printf(buf, size, pos, "}");
}

static void format_link(const keel_error *e, char *buf, size_t size, size_t *pos)
{
    keel__buf_printf(buf, size, pos, "%s.%s: %s [at %s:%d in %s]", e->space->name,
                     keel_code_name(e->space, e->code),
                     e->message[0] != '\0' ? e->message : keel_code_message(e->space, e->code),
                     e->file, e->line, e->func);
    if (e->details != NULL || has_flag(e, FLAG_DETAILS_DROPPED))
        format_details(e, buf, size, pos, false);
    if (has_flag(e, FLAG_CONTEXT_DROPPED))
        keel__buf_printf(buf, size, pos, " (outer context lost: out of memory)");
}

size_t keel_status_format(keel_status s, char *buf, size_t size)
{
    KEEL_ASSERT(buf != NULL || size == 0);
    size_t pos = 0;
    if (size > 0)
        buf[0] = '\0';
    keel__status_seen(s.err);
    if (s.err == NULL) {
        keel__buf_printf(buf, size, &pos, "ok");
        return pos;
    }
    for (const keel_error *e = s.err; e != NULL; e = e->cause) {
        if (e != s.err)
            keel__buf_printf(buf, size, &pos, "\n  caused by: ");
        format_link(e, buf, size, &pos);
    }
    return pos;
}

size_t keel_status_format_json(keel_status s, char *buf, size_t size)
{
    KEEL_ASSERT(buf != NULL || size == 0);
    size_t pos = 0;
    if (size > 0)
        buf[0] = '\0';
    keel__status_seen(s.err);
    if (s.err == NULL) {
        keel__buf_printf(buf, size, &pos, "null");
        return pos;
    }
    size_t depth = 0;
    for (const keel_error *e = s.err; e != NULL; e = e->cause, depth++) {
        if (e != s.err)
            keel__buf_printf(buf, size, &pos, ",\"cause\":");
        keel__buf_printf(buf, size, &pos, "{\"space\":");
        keel__buf_json_str(buf, size, &pos, e->space->name);
        keel__buf_printf(buf, size, &pos, ",\"code\":");
        keel__buf_json_str(buf, size, &pos, keel_code_name(e->space, e->code));
        keel__buf_printf(buf, size, &pos, ",\"message\":");
        keel__buf_json_str(buf, size, &pos, e->message);
        keel__buf_printf(buf, size, &pos, ",\"file\":");
        keel__buf_json_str(buf, size, &pos, e->file);
        keel__buf_printf(buf, size, &pos, ",\"line\":%d,\"func\":", e->line);
        keel__buf_json_str(buf, size, &pos, e->func);
        keel__buf_printf(buf, size, &pos, ",\"details\":");
        format_details(e, buf, size, &pos, true);
    }
    for (size_t i = 0; i < depth; i++)
        keel__buf_printf(buf, size, &pos, "}");
    return pos;
}

void keel_status_print(FILE *f, keel_status s)
{
    char small[1024];
    size_t need = keel_status_format(s, small, sizeof(small));
    if (need < sizeof(small)) {
        (void)fprintf(f, "%s\n", small);
        return;
    }
    char *big = (char *)malloc(need + 1);
    if (big == NULL) {
        (void)fprintf(f, "%s...\n", small);
        return;
    }
    (void)keel_status_format(s, big, need + 1);
    (void)fprintf(f, "%s\n", big);
    free(big);
}

/* ---- ending ---------------------------------------------------------------------------------- */

void keel_status_free(keel_status s)
{
    keel_error *e = s.err;
    if (e != NULL)
        untrack(e);
    while (e != NULL) {
        keel_error *cause = e->cause;
        if (!has_flag(e, FLAG_STATIC)) {
            detail *d = e->details;
            while (d != NULL) {
                detail *next = d->next;
                if (d->type == DETAIL_PTR && d->destroy != NULL)
                    d->destroy(d->p);
                free(d);
                d = next;
            }
            free(e->site);
            free(e);
        }
        e = cause;
    }
}

void keel_status_ignore(keel_status s, const char *why)
{
    KEEL_ASSERTF(why != NULL && why[0] != '\0', "keel_status_ignore needs a reason");
    if (s.err == NULL)
        return;
    keel__status_seen(s.err);
    if (keel_report_policy(KEEL_REPORT_IGNORED_ERROR) != KEEL_POLICY_COUNT) {
        char text[1024];
        (void)keel_status_format(s, text, sizeof(text));
        keel_report *r =
            keel_report_begin(KEEL_REPORT_IGNORED_ERROR, s.err->file, s.err->line, s.err->func,
                              "error ignored on purpose (%s)", why != NULL ? why : "");
        keel_report_add_text(r, "%s", text);
        (void)keel_report_emit(r);
    } else {
        keel_report *r = keel_report_begin(KEEL_REPORT_IGNORED_ERROR, s.err->file, s.err->line,
                                           s.err->func, "error ignored on purpose");
        keel_report_no_backtrace(r);
        (void)keel_report_emit(r);
    }
    keel_status_free(s);
}

size_t keel_status_check_lost(bool all)
{
    if (!KEEL_DEVEL)
        return 0;
    size_t reported = 0;
    /* Collect under the lock, report outside it (reporting may take a while). */
    enum { BATCH = 64 };
    for (;;) {
        keel_error *batch[BATCH];
        size_t n = 0;
        KEEL_VERIFY(pthread_mutex_lock(&live_lock) == 0);
        for (keel_error *e = live_head; e != NULL && n < BATCH; e = e->live_next) {
            bool seen = has_flag(e, FLAG_SEEN);
            if (!seen || all)
                batch[n++] = e;
        }
        /* Take them off the list so each is reported once. */
        for (size_t i = 0; i < n; i++) {
            keel_error *e = batch[i];
            if (e->live_prev != NULL)
                e->live_prev->live_next = e->live_next;
            else
                live_head = e->live_next;
            if (e->live_next != NULL)
                e->live_next->live_prev = e->live_prev;
            e->live_prev = e->live_next = NULL;
            __atomic_fetch_and(&e->flags, ~(unsigned)FLAG_TRACKED, __ATOMIC_RELAXED);
        }
        KEEL_VERIFY(pthread_mutex_unlock(&live_lock) == 0);
        for (size_t i = 0; i < n; i++) {
            keel_error *e = batch[i];
            bool seen = has_flag(e, FLAG_SEEN);
            char text[1024];
            (void)keel_status_format(make_status(e), text, sizeof(text));
            keel_report *r = keel_report_begin(
                seen ? KEEL_REPORT_LEAKED_ERROR : KEEL_REPORT_LOST_ERROR, e->file, e->line, e->func,
                seen ? "error examined but never freed"
                     : "error created and never examined or freed");
            keel_report_add_text(r, "%s", text);
            keel_report_add_str(r, "error", e->message);
            keel_report_add_str(r, "code", keel_code_name(e->space, e->code));
            keel_report_set_backtrace(r, e->frames, e->nframes);
            (void)keel_report_emit(r);
            /* keep it reachable: it may still be referenced by the program */
            set_flag(e, FLAG_SEEN);
            reported++;
        }
        if (n < BATCH)
            break;
    }
    return reported;
}

void keel__status_at_exit(void)
{
    if (KEEL_DEVEL && keel__opt_bool(KEEL__OPT_ERROR_TRACK))
        (void)keel_status_check_lost(true);
}
