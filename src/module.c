/*
 * module.c - the module registry: dependency order, init and POST, stop in
 * reverse order, and the module each thread executes in.
 *
 * Two locks: start_lock serialises starting and stopping (init, exit and POST
 * run under it, never under reg_lock), reg_lock guards the registry and is
 * only held for short updates and lookups.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_POSTS = 32, NAME = 64, MESSAGE = 256 };

typedef struct post_result {
    char name[NAME];
    char message[MESSAGE];
    unsigned long long ns;
    bool run;
    bool passed;
} post_result;

typedef struct mod_rec {
    keel_module *m;
    struct mod_rec *next;
    keel_module_state state;
    unsigned long long order;
    unsigned long long init_ns;
    unsigned posts_run;
    unsigned posts_failed;
    unsigned nposts;
    char failed_test[NAME];
    char blocked_by[NAME];
    post_result posts[MAX_POSTS];
    int mark; /* dependency walk: 0 new, 1 on the path, 2 done */
} mod_rec;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static mod_rec *mods;
static unsigned long long start_seq;
static bool exiting;
static bool exit_hooked;
static KEEL__TLS const keel_module *tls_current;

/* ---- registration ------------------------------------------------------------------- */

static void at_exit_mark(void)
{
    __atomic_store_n(&exiting, true, __ATOMIC_RELEASE);
}

void keel__module_register(keel_module *begin, keel_module *end)
{
    if (begin == NULL || end == NULL || begin >= end)
        return;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    if (!exit_hooked) {
        exit_hooked = true;
        (void)atexit(at_exit_mark);
    }
    char *at = (char *)begin;
    keel_module *m;
    while ((m = (keel_module *)keel__section_next(&at, (const char *)end, sizeof(*m),
                                                  KEEL__MODULE_MAGIC)) != NULL) {
        if (m->state != NULL || m->name == NULL)
            continue; /* registered already (the object's sections are handed over per file) */
        mod_rec *r = (mod_rec *)calloc(1, sizeof(*r));
        if (r == NULL)
            continue; /* out of memory: the module is unknown, and a dependency on it fails */
        r->m = m;
        r->state = KEEL_MODULE_REGISTERED;
        r->next = mods;
        mods = r;
        m->state = r;
    }
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
}

static void stop_one(mod_rec *r);

void keel__module_unregister(keel_module *begin, keel_module *end)
{
    if (begin == NULL || end == NULL || begin >= end)
        return;
    bool at_exit = __atomic_load_n(&exiting, __ATOMIC_ACQUIRE);
    KEEL_VERIFY(pthread_mutex_lock(&start_lock) == 0);
    for (;;) {
        KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
        mod_rec **link = &mods;
        while (*link != NULL &&
               ((char *)(*link)->m < (char *)begin || (char *)(*link)->m >= (char *)end))
            link = &(*link)->next;
        mod_rec *r = *link;
        if (r != NULL)
            *link = r->next;
        KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
        if (r == NULL)
            break;
        /* a plugin unloaded while running is stopped first (not at process exit) */
        if (r->state == KEEL_MODULE_RUNNING && !at_exit)
            stop_one(r);
        if (r->m != NULL)
            r->m->state = NULL;
        free(r);
    }
    KEEL_VERIFY(pthread_mutex_unlock(&start_lock) == 0);
}

/* ---- lookups ------------------------------------------------------------------------- */

static mod_rec *find_locked(const char *name)
{
    for (mod_rec *r = mods; r != NULL; r = r->next)
        if (strcmp(r->m->name, name) == 0)
            return r;
    return NULL;
}

keel_module *keel_module_find(const char *name)
{
    keel__lazy_init();
    if (name == NULL)
        return NULL;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    mod_rec *r = find_locked(name);
    keel_module *m = r != NULL ? r->m : NULL;
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    return m;
}

keel_module_state keel_module_get_state(const keel_module *m)
{
    keel__lazy_init();
    if (m == NULL || m->state == NULL)
        return KEEL_MODULE_REGISTERED;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    keel_module_state s = ((const mod_rec *)m->state)->state;
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    return s;
}

const char *keel_module_state_name(keel_module_state s)
{
    switch (s) {
    case KEEL_MODULE_REGISTERED:
        return "registered";
    case KEEL_MODULE_RUNNING:
        return "running";
    case KEEL_MODULE_FAILED:
        return "failed";
    case KEEL_MODULE_BLOCKED:
        return "blocked";
    case KEEL_MODULE_STOPPED:
        return "stopped";
    }
    return "?";
}

keel_status keel_module_info_get(const keel_module *m, keel_module_info *out)
{
    keel__lazy_init();
    if (m == NULL || out == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_module_info_get: no module or output");
    if (m->state == NULL)
        return KEEL_ERR(KEEL_E_NOTFOUND, "module '%s' is not registered", m->name);
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    const mod_rec *r = (const mod_rec *)m->state;
    out->name = m->name;
    out->version = m->version != NULL ? m->version : "";
    out->state = r->state;
    out->posts_run = r->posts_run;
    out->posts_failed = r->posts_failed;
    out->init_ns = r->init_ns;
    out->failed_test = r->failed_test;
    out->blocked_by = r->blocked_by;
    out->start_order = r->order;
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    return KEEL_OK;
}

/* ---- the module a thread executes in ----------------------------------------------------- */

const keel_module *keel_module_current(void)
{
    keel__lazy_init();
    return tls_current;
}

const keel_module *keel_module_enter(const keel_module *m)
{
    keel__lazy_init();
    const keel_module *prev = tls_current;
    tls_current = m;
    keel__tls_module = m != NULL ? m->name : NULL;
    return prev;
}

void keel_module_leave(const keel_module *prev)
{
    tls_current = prev;
    keel__tls_module = prev != NULL ? prev->name : NULL;
}

/* ---- dependency order ------------------------------------------------------------------ */

typedef struct order {
    mod_rec **v;
    size_t n;
} order;

/* Depth-first: a dependency before its dependants.  A cycle or missing name is an error. */
static keel_status visit(mod_rec *r, order *o, char *path, size_t psize)
{
    if (r->mark == 2)
        return KEEL_OK;
    size_t mark = strlen(path);
    size_t plen = mark;
    keel__buf_printf(path, psize, &plen, "%s'%s'", plen > 0 ? " -> " : "", r->m->name);
    if (r->mark == 1)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_DEPENDENCY, "modules depend on each other in a cycle: %s", path),
            "module", r->m->name);
    r->mark = 1;
    for (const char *const *d = r->m->deps; d != NULL && *d != NULL; d++) {
        mod_rec *dep = find_locked(*d);
        if (dep == NULL) {
            const char *names[256];
            size_t n = 0;
            for (const mod_rec *x = mods; x != NULL && n < 256; x = x->next)
                names[n++] = x->m->name;
            const char *near = keel_suggest(*d, names, n);
            return keel_status_with_str(
                keel_status_with_str(KEEL_ERR(KEEL_E_DEPENDENCY,
                                              "module '%s' depends on '%s', which is not a "
                                              "registered module%s%s%s",
                                              r->m->name, *d,
                                              near != NULL ? " (did you mean '" : "",
                                              near != NULL ? near : "", near != NULL ? "'?)" : ""),
                                     "module", r->m->name),
                "dependency", *d);
        }
        keel_status s = visit(dep, o, path, psize);
        if (!keel_ok(s))
            return s;
    }
    path[mark < psize ? mark : psize - 1] = '\0'; /* back out of the path */
    r->mark = 2;
    o->v[o->n++] = r;
    return KEEL_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(mod_rec *const *)a)->m->name, (*(mod_rec *const *)b)->m->name);
}

/* Every registered module in a start order (dependencies first, then by name). */
static keel_status plan_locked(order *o)
{
    size_t n = 0;
    for (mod_rec *r = mods; r != NULL; r = r->next) {
        r->mark = 0;
        n++;
    }
    mod_rec **sorted = (mod_rec **)calloc(n + 1, sizeof(mod_rec *));
    o->v = (mod_rec **)calloc(n + 1, sizeof(mod_rec *));
    o->n = 0;
    if (sorted == NULL || o->v == NULL) {
        free(sorted);
        free(o->v);
        o->v = NULL;
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory ordering modules");
    }
    size_t k = 0;
    for (mod_rec *r = mods; r != NULL; r = r->next)
        sorted[k++] = r;
    qsort(sorted, n, sizeof(mod_rec *), by_name);
    keel_status s = KEEL_OK;
    for (size_t i = 0; i < n && keel_ok(s); i++) {
        char path[1024];
        path[0] = '\0';
        s = visit(sorted[i], o, path, sizeof(path));
    }
    free(sorted);
    if (!keel_ok(s)) {
        free(o->v);
        o->v = NULL;
        o->n = 0;
    }
    return s;
}

/* ---- POST selection ------------------------------------------------------------------------ */

static const char post_usage[] = "(all, none, or a list of module and module.test names)";

/*
 * The next item of a module.post list at *p (split at ',', the blanks around it dropped), its
 * length in *len; NULL after the last.
 */
static const char *next_post_item(const char **p, size_t *len)
{
    if (*p == NULL)
        return NULL;
    const char *item = *p;
    const char *end = strchr(item, ',');
    size_t n = end != NULL ? (size_t)(end - item) : strlen(item);
    while (n > 0 && item[0] == ' ') {
        item++;
        n--;
    }
    while (n > 0 && item[n - 1] == ' ')
        n--;
    *p = end != NULL ? end + 1 : NULL;
    *len = n;
    return item;
}

static bool post_selected(const char *sel, const char *module, const char *test)
{
    if (strcmp(sel, "all") == 0 || sel[0] == '\0')
        return true;
    if (strcmp(sel, "none") == 0)
        return false;
    size_t ml = strlen(module);
    const char *p = sel;
    size_t len = 0;
    for (const char *item = next_post_item(&p, &len); item != NULL;
         item = next_post_item(&p, &len)) {
        if (len == ml && strncmp(item, module, ml) == 0)
            return true;
        if (len > ml + 1 && strncmp(item, module, ml) == 0 && item[ml] == '.' &&
            strlen(test) == len - ml - 1 && strncmp(item + ml + 1, test, len - ml - 1) == 0)
            return true;
    }
    return false;
}

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/*
 * One item of a module.post list, blanks around it dropped: a module's name (a C identifier), or
 * that and '.test' (the test's name as its keel_post gives it, no blank in it).
 */
static keel_status check_post_item(const char *value, const char *item, size_t len)
{
    size_t dot = 0;
    while (dot < len && item[dot] != '.')
        dot++;
    bool ok = dot > 0 && !(item[0] >= '0' && item[0] <= '9') && dot != len - 1;
    for (size_t i = 0; ok && i < len; i++)
        ok = i < dot ? ident_char(item[i]) : item[i] != ' ';
    if (len == 0)
        return KEEL_ERR(KEEL_E_PARSE, "empty item in module.post '%s' %s", value, post_usage);
    if ((len == 3 && strncmp(item, "all", 3) == 0) || (len == 4 && strncmp(item, "none", 4) == 0))
        return KEEL_ERR(KEEL_E_PARSE, "'%.*s' stands alone in module.post, not in a list: '%s'",
                        (int)len, item, value);
    if (!ok)
        return KEEL_ERR(KEEL_E_PARSE,
                        "'%.*s' is no module or module.test name in module.post '%s' %s", (int)len,
                        item, value, post_usage);
    return KEEL_OK;
}

keel_status keel__module_check_post(const char *value)
{
    if (value == NULL)
        return KEEL_OK;
    for (const char *p = value; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == ',' || *p == ' ' || *p == '-'))
            return KEEL_ERR(KEEL_E_PARSE, "bad character '%c' in module.post '%s' %s", *p, value,
                            post_usage);
    if (value[0] == '\0' || strcmp(value, "all") == 0 || strcmp(value, "none") == 0)
        return KEEL_OK;
    const char *p = value;
    size_t len = 0;
    for (const char *item = next_post_item(&p, &len); item != NULL;
         item = next_post_item(&p, &len)) {
        keel_status s = check_post_item(value, item, len);
        if (!keel_ok(s))
            return s;
    }
    return KEEL_OK;
}

/* ---- likely misspellings in module.post (reg_lock held) ----------------------------------- */

/* One item: a line in warn when it is likely misspelled. */
static void warn_post_item(const char *item, size_t len, char *warn, size_t wsize, size_t *wpos)
{
    char mod[NAME];
    size_t dot = 0;
    while (dot < len && item[dot] != '.')
        dot++;
    (void)snprintf(mod, sizeof(mod), "%.*s", (int)dot, item);
    const mod_rec *r = find_locked(mod);
    if (r == NULL) { /* close to a registered module's name: a misspelling; far: a plugin's */
        size_t n = 0;
        for (const mod_rec *q = mods; q != NULL; q = q->next)
            n++;
        const char **names = (const char **)calloc(n + 1, sizeof(*names));
        if (names == NULL)
            return;
        n = 0;
        for (const mod_rec *q = mods; q != NULL; q = q->next)
            names[n++] = q->m->name;
        const char *near = keel_suggest(mod, names, n);
        if (near != NULL)
            keel__buf_printf(warn, wsize, wpos,
                             "module.post names '%.*s', which is no registered module (did you "
                             "mean '%s'?)\n",
                             (int)len, item, near);
        free(names);
        return;
    }
    if (dot == len)
        return;
    const char *names[MAX_POSTS];
    size_t n = 0;
    for (const keel_post *t = r->m->posts; t != NULL && t->name != NULL && n < MAX_POSTS; t++) {
        if (strlen(t->name) == len - dot - 1 &&
            strncmp(t->name, item + dot + 1, len - dot - 1) == 0)
            return;
        names[n++] = t->name;
    }
    char test[NAME];
    (void)snprintf(test, sizeof(test), "%.*s", (int)(len - dot - 1), item + dot + 1);
    const char *near = keel_suggest(test, names, n);
    keel__buf_printf(
        warn, wsize, wpos,
        "module.post names '%.*s', which is no power-on self test of module '%s'%s%s%s%s%s\n",
        (int)len, item, mod, near != NULL ? " (did you mean '" : "", near != NULL ? mod : "",
        near != NULL ? "." : "", near != NULL ? near : "", near != NULL ? "'?)" : "");
}

/*
 * The likely misspellings of module.post, reported (kind options) when the modules start, once
 * per value of the option: a module name close to a registered module's, a test the named
 * module does not have.  A name far from every module's is taken (its plugin may come later).
 */
static unsigned post_checked_gen; /* keel__options_generation + 1 when last looked at */

static void warn_post_names(void)
{
    char warn[2048];
    size_t wpos = 0;
    warn[0] = '\0';
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    unsigned gen = __atomic_load_n(&keel__options_generation, __ATOMIC_ACQUIRE) + 1u;
    const char *sel = keel__opt_str(KEEL__OPT_MODULE_POST);
    if (gen != post_checked_gen && strcmp(sel, "all") != 0 && strcmp(sel, "none") != 0) {
        const char *p = sel;
        size_t len = 0;
        for (const char *item = next_post_item(&p, &len); item != NULL;
             item = next_post_item(&p, &len))
            if (len > 0)
                warn_post_item(item, len, warn, sizeof(warn), &wpos);
    }
    post_checked_gen = gen;
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    for (const char *line = warn; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        int n = nl != NULL ? (int)(nl - line) : (int)strlen(line);
        (void)keel_report_emit(
            keel_report_begin(KEEL_REPORT_OPTIONS, NULL, 0, NULL, "%.*s", n, line));
        line = nl != NULL ? nl + 1 : line + n;
    }
}

/* ---- starting and stopping ------------------------------------------------------------------ */

static unsigned long long now_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static void report_module(const mod_rec *r, const char *what, keel_status cause)
{
    char text[1024];
    text[0] = '\0';
    if (!keel_ok(cause))
        (void)keel_status_format(cause, text, sizeof(text));
    /* at the program's call of keel_modules_start (the cause says where the module failed) */
    keel_report *rep = keel_report_begin(KEEL_REPORT_MODULE, NULL, 0, NULL,
                                         "module '%s' did not start: %s", r->m->name, what);
    keel_report_add_str(rep, "module", r->m->name);
    if (r->failed_test[0] != '\0')
        keel_report_add_str(rep, "test", r->failed_test);
    if (text[0] != '\0')
        keel_report_add_text(rep, "%s", text);
    (void)keel_report_emit(rep);
}

/* Init and POST one module whose dependencies run.  Returns its failure, or KEEL_OK. */
static keel_status start_one(mod_rec *r)
{
    keel_module *m = r->m;
    const keel_module *prev = keel_module_enter(m);
    unsigned long long t0 = now_ns();
    keel_status s = m->init != NULL ? m->init() : KEEL_OK;
    if (!keel_ok(s)) {
        keel_module_leave(prev);
        s = keel_status_with_str(KEEL_CONTEXT(s, "module '%s': init failed", m->name), "module",
                                 m->name);
        KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
        r->state = KEEL_MODULE_FAILED;
        (void)snprintf(r->failed_test, sizeof(r->failed_test), "%s", "(init)");
        KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
        return s;
    }
    keel_status failed = KEEL_OK;
    unsigned n = 0;
    for (const keel_post *p = m->posts; p != NULL && p->name != NULL && n < MAX_POSTS; p++, n++) {
        post_result *pr = &r->posts[n];
        (void)snprintf(pr->name, sizeof(pr->name), "%s", p->name);
        /* not run: not selected, or an earlier POST of the module failed (skipped) */
        pr->run = post_selected(keel__opt_str(KEEL__OPT_MODULE_POST), m->name, p->name) &&
                  keel_ok(failed);
        pr->passed = true;
        pr->message[0] = '\0';
        if (!pr->run)
            continue;
        unsigned long long p0 = now_ns();
        keel_status ps = p->fn != NULL ? p->fn() : KEEL_OK;
        pr->ns = now_ns() - p0;
        r->posts_run++;
        if (!keel_ok(ps)) {
            pr->passed = false;
            (void)keel_status_format(ps, pr->message, sizeof(pr->message));
            r->posts_failed++;
            (void)snprintf(r->failed_test, sizeof(r->failed_test), "%s", p->name);
            failed = keel_status_with_str(
                keel_status_with_str(KEEL_WRAP(ps, KEEL_E_POST,
                                               "module '%s': power-on self test '%s' failed",
                                               m->name, p->name),
                                     "module", m->name),
                "test", p->name);
        }
    }
    r->nposts = n;
    r->init_ns = now_ns() - t0;
    if (!keel_ok(failed) && m->exit != NULL)
        m->exit(); /* it initialised: undo that */
    keel_module_leave(prev);
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    r->state = keel_ok(failed) ? KEEL_MODULE_RUNNING : KEEL_MODULE_FAILED;
    if (keel_ok(failed))
        r->order = ++start_seq;
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    return failed;
}

keel_status keel_modules_start(void)
{
    keel__lazy_init();
    KEEL_VERIFY(pthread_mutex_lock(&start_lock) == 0);
    warn_post_names();
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    order o = {NULL, 0};
    keel_status s = plan_locked(&o);
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    if (!keel_ok(s)) {
        KEEL_VERIFY(pthread_mutex_unlock(&start_lock) == 0);
        return s;
    }
    keel_status first = KEEL_OK;
    char summary[1024];
    size_t spos = 0;
    summary[0] = '\0';
    unsigned not_started = 0;
    for (size_t i = 0; i < o.n; i++) {
        mod_rec *r = o.v[i];
        if (r->state != KEEL_MODULE_REGISTERED && r->state != KEEL_MODULE_STOPPED)
            continue;
        const char *blocker = NULL;
        for (const char *const *d = r->m->deps; d != NULL && *d != NULL && blocker == NULL; d++) {
            KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
            const mod_rec *dep = find_locked(*d);
            if (dep == NULL || dep->state != KEEL_MODULE_RUNNING)
                blocker = *d;
            KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
        }
        keel_status one;
        if (blocker != NULL) {
            KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
            r->state = KEEL_MODULE_BLOCKED;
            (void)snprintf(r->blocked_by, sizeof(r->blocked_by), "%s", blocker);
            KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
            one = keel_status_with_str(
                keel_status_with_str(KEEL_ERR(KEEL_E_DEPENDENCY,
                                              "module '%s' not started: it depends on '%s', "
                                              "which did not start",
                                              r->m->name, blocker),
                                     "module", r->m->name),
                "dependency", blocker);
            report_module(r, "a module it depends on did not start", one);
        } else {
            one = start_one(r);
            if (!keel_ok(one))
                report_module(r, r->failed_test[0] == '(' ? "init failed" : "a POST failed", one);
        }
        if (!keel_ok(one)) {
            not_started++;
            keel__buf_printf(summary, sizeof(summary), &spos, "%s'%s' (%s)", spos > 0 ? ", " : "",
                             r->m->name, r->state == KEEL_MODULE_BLOCKED ? "blocked" : "failed");
            if (keel_ok(first))
                first = one;
            else
                keel_status_free(one);
        }
    }
    free(o.v);
    KEEL_VERIFY(pthread_mutex_unlock(&start_lock) == 0);
    if (keel_ok(first))
        return KEEL_OK;
    return keel_status_with_uint(KEEL_CONTEXT(first, "%u module%s did not start: %s", not_started,
                                              not_started == 1 ? "" : "s", summary),
                                 "not_started", not_started);
}

static void stop_one(mod_rec *r)
{
    if (r->m == NULL)
        return;
    const keel_module *prev = keel_module_enter(r->m);
    if (r->m->exit != NULL)
        r->m->exit();
    keel_module_leave(prev);
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    r->state = KEEL_MODULE_STOPPED;
    r->order = 0;
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    keel__heap_module_stopped(r->m);
}

void keel_modules_stop(void)
{
    keel__lazy_init();
    KEEL_VERIFY(pthread_mutex_lock(&start_lock) == 0);
    for (;;) {
        /* the running module started last */
        mod_rec *last = NULL;
        KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
        for (mod_rec *r = mods; r != NULL; r = r->next)
            if (r->state == KEEL_MODULE_RUNNING && (last == NULL || r->order > last->order))
                last = r;
        KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
        if (last == NULL)
            break;
        stop_one(last);
    }
    KEEL_VERIFY(pthread_mutex_unlock(&start_lock) == 0);
}

size_t keel_modules_json(char *buf, size_t size)
{
    keel__lazy_init();
    size_t pos = 0;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    keel__buf_printf(buf, size, &pos, "{\"modules\":[");
    for (const mod_rec *r = mods; r != NULL; r = r->next) {
        keel__buf_printf(buf, size, &pos, "%s{\"name\":", r == mods ? "" : ",");
        keel__buf_json_str(buf, size, &pos, r->m->name);
        keel__buf_printf(buf, size, &pos, ",\"version\":");
        keel__buf_json_str(buf, size, &pos, r->m->version != NULL ? r->m->version : "");
        keel__buf_printf(buf, size, &pos, ",\"state\":\"%s\",\"init_ns\":%llu,\"blocked_by\":",
                         keel_module_state_name(r->state), r->init_ns);
        keel__buf_json_str(buf, size, &pos, r->blocked_by);
        keel__buf_printf(buf, size, &pos, ",\"posts\":[");
        for (unsigned i = 0; i < r->nposts; i++) {
            const post_result *p = &r->posts[i];
            keel__buf_printf(buf, size, &pos, "%s{\"name\":", i == 0 ? "" : ",");
            keel__buf_json_str(buf, size, &pos, p->name);
            keel__buf_printf(buf, size, &pos, ",\"result\":\"%s\",\"ns\":%llu,\"message\":",
                             !p->run     ? "skipped"
                             : p->passed ? "passed"
                                         : "failed",
                             p->ns);
            keel__buf_json_str(buf, size, &pos, p->message);
            keel__buf_printf(buf, size, &pos, "}");
        }
        keel__buf_printf(buf, size, &pos, "]}");
    }
    keel__buf_printf(buf, size, &pos, "]}");
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    if (size > 0)
        buf[pos < size ? pos : size - 1] = '\0';
    return pos;
}
