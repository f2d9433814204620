/*
 * stress.c - the stress point registry, arming, and the evaluation of a point.
 *
 * Sites are descriptors in each loaded object's keel_stress section; the
 * object's constructor hands the section to keel__stress_register.  Each
 * site gets a record (an id and its point); sites with one name share a
 * point, and a point's current arm (NULL: disarmed) holds a copy of the
 * trigger of the last entry matching its name, with the shared evaluation
 * and fire counts of count-based triggers.  Arms are immutable apart from
 * those counters and are never freed while the process runs, so an
 * evaluating thread needs no lock.  Per-site counters are per thread (no
 * shared cache line); they are summed when asked and folded into the site
 * when a thread exits.
 */
#include "stress.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if KEEL_DEVEL

/* Nonzero until the options were read, then: something armed or counted. */
int keel__stress_active = 1;

/* The counters start a cache line of their own: each part is a cache-aligned anonymous struct
 * (the padding between them is the parts' own, on purpose; the fields are named as before). */
typedef struct arm {
    /* read by every evaluation */
    __extension__ struct __attribute__((aligned(64))) {
        keel__stress_trigger t;
        const char *entry; /* the entry that armed it (owned) */
        keel_stress_action action;
        void *action_ctx;
        unsigned long long rule_id;
        struct arm *retired_next;
    };
    /* written by evaluations: a cache line of their own, so that a fire in one thread does
       not evict the trigger from the others' caches */
    __extension__ struct __attribute__((aligned(64))) {
        unsigned long long evals; /* count-based triggers */
        unsigned long long fires; /* with max= only */
    };
} arm;

typedef struct point {
    char *name;
    arm *armed; /* atomic */
    struct point *hash_next;
    struct site_rec *sites;
    unsigned nsites;
} point;

typedef struct site_rec {
    keel__stress_site *site; /* NULL once its object is unloaded */
    point *pt;
    struct site_rec *point_next;
    char *file;
    char *func;
    unsigned long long dead_evals; /* from exited threads and unloaded objects (atomic) */
    unsigned long long dead_fires;
    unsigned id;
    int line;
} site_rec;

typedef struct counter {
    unsigned long long evals;
    unsigned long long fires;
} counter;

enum { CHUNK = 256, MAX_CHUNKS = 64, HASH = 1024 };

/*
 * A thread's state.  The first chunk of counters lives inside it, and rng sits
 * at an offset of 8 modulo 16 while every counter's evaluation count sits at 0
 * modulo 16: the store to a counter never 4K-aliases the next load of rng
 * (measured: it otherwise doubled the cost of some threads' evaluations).
 */
typedef struct tstate {
    counter *chunks[MAX_CHUNKS]; /* atomic pointers; chunks[0] is first */
    struct tstate *next;
    struct tstate *prev;
    unsigned gen;
    unsigned ordinal;
    unsigned long long rng;
    bool busy;
    char name[32];
    counter first[CHUNK] __attribute__((aligned(64)));
} tstate;
KEEL__STATIC_ASSERT(offsetof(tstate, rng) % 16 == 8, "rng does not alias the counters");

typedef struct range {
    keel__stress_site *begin;
    keel__stress_site *end;
    struct range *next;
} range;

typedef struct action_rec {
    char *pattern;
    keel_stress_action fn;
    void *ctx;
} action_rec;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static point *buckets[HASH];
static site_rec **sites;
static unsigned nsites;
static unsigned sites_cap;
static range *ranges;
static tstate *threads;
static unsigned thread_ordinals;
static keel__stress_rules rules;
static action_rec *actions;
static size_t nactions;
static arm *retired_arms;
static const char empty_spec[] = "";
static const char *spec_text = empty_spec; /* atomic; old texts are kept (a fire may read one) */
static const char **old_texts;
static size_t nold_texts;
static const char *opt_spec; /* the option strings last applied */
static const char *opt_file;
static unsigned long long seed;
static unsigned long long opt_seed;
static unsigned gen = 1;
static bool ready;
static bool counting;
static bool exit_registered;
static size_t narmed;
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static KEEL__TLS tstate *tls __attribute__((tls_model("initial-exec")));
static tstate dead_thread; /* after a thread's exit destructor: busy, counts nothing */

/* ---- names ------------------------------------------------------------------------ */

static unsigned hash_name(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % HASH;
}

static point *find_point_locked(const char *name)
{
    for (point *p = buckets[hash_name(name)]; p != NULL; p = p->hash_next)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

static point *get_point_locked(const char *name)
{
    point *p = find_point_locked(name);
    if (p != NULL)
        return p;
    p = (point *)calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->name = strdup(name);
    if (p->name == NULL) {
        free(p);
        return NULL;
    }
    unsigned h = hash_name(name);
    p->hash_next = buckets[h];
    buckets[h] = p;
    return p;
}

/* ---- arming ----------------------------------------------------------------------- */

static const keel__stress_rule *rule_for_locked(const char *name)
{
    for (size_t i = rules.n; i-- > 0;)
        if (keel__stress_glob(rules.v[i].pattern, name))
            return &rules.v[i];
    return NULL;
}

static const action_rec *action_for_locked(const char *name)
{
    for (size_t i = nactions; i-- > 0;)
        if (keel__stress_glob(actions[i].pattern, name))
            return &actions[i];
    return NULL;
}

/* Arm (or disarm) one point from the current entries; an unchanged arm is kept. */
static void arm_point_locked(point *p)
{
    const keel__stress_rule *r = rule_for_locked(p->name);
    const action_rec *act = r != NULL && !r->t.off ? action_for_locked(p->name) : NULL;
    arm *old = p->armed;
    if (r == NULL || r->t.off) {
        __atomic_store_n(&p->armed, (arm *)NULL, __ATOMIC_RELEASE);
        if (old != NULL) {
            narmed--;
            old->retired_next = retired_arms; /* an evaluating thread may still hold it */
            retired_arms = old;
        }
        return;
    }
    if (old != NULL && old->rule_id == r->id && old->action == (act != NULL ? act->fn : NULL) &&
        old->action_ctx == (act != NULL ? act->ctx : NULL))
        return;
    arm *a = (arm *)aligned_alloc(64, (sizeof(arm) + 63) / 64 * 64);
    char *entry = strdup(r->text);
    if (a == NULL || entry == NULL) {
        free(a);
        free(entry);
        return; /* out of memory: the point keeps its old setting */
    }
    memset(a, 0, sizeof(*a));
    keel_status s = keel__stress_trigger_copy(&a->t, &r->t);
    if (!keel_ok(s)) {
        keel_status_free(s);
        free(a);
        free(entry);
        return;
    }
    a->entry = entry;
    a->rule_id = r->id;
    a->action = act != NULL ? act->fn : NULL;
    a->action_ctx = act != NULL ? act->ctx : NULL;
    if (old == NULL)
        narmed++;
    __atomic_store_n(&p->armed, a, __ATOMIC_RELEASE);
    if (old != NULL) {
        old->retired_next = retired_arms;
        retired_arms = old;
    }
}

static void set_active_locked(void)
{
    /* before the options were read, every point calls the library (which reads them) */
    int on = !ready || narmed > 0 || counting ? 1 : 0;
    __atomic_store_n(&keel__stress_active, on, __ATOMIC_RELAXED);
}

/* Rebuild the spec text and re-arm every point; `out` collects misspelling warnings. */
static void rearm_all_locked(char *warn, size_t wsize)
{
    size_t pos = 0;
    for (size_t i = 0; i < rules.n; i++)
        pos += strlen(rules.v[i].text) + 1;
    char *text = (char *)malloc(pos + 1);
    if (text != NULL) {
        size_t at = 0;
        for (size_t i = 0; i < rules.n; i++) {
            size_t l = strlen(rules.v[i].text);
            if (i > 0)
                text[at++] = ',';
            memcpy(text + at, rules.v[i].text, l);
            at += l;
        }
        text[at] = '\0';
        /* the old text stays allocated (a firing thread may be reading it), and reachable */
        const char *old = spec_text;
        if (old != empty_spec) {
            const char **v = (const char **)realloc(old_texts, (nold_texts + 1) * sizeof(*v));
            if (v != NULL) {
                old_texts = v;
                old_texts[nold_texts++] = old;
            }
        }
        __atomic_store_n(&spec_text, (const char *)text, __ATOMIC_RELEASE);
    }
    for (unsigned h = 0; h < HASH; h++)
        for (point *p = buckets[h]; p != NULL; p = p->hash_next) {
            arm_point_locked(p);
            for (size_t i = 0; i < rules.n; i++)
                if (!rules.v[i].matched && keel__stress_glob(rules.v[i].pattern, p->name))
                    rules.v[i].matched = true;
        }
    /* an entry naming no registered point: a likely misspelling gets a warning now */
    size_t wpos = 0;
    for (size_t i = 0; i < rules.n; i++) {
        keel__stress_rule *r = &rules.v[i];
        if (r->matched || r->warned || strpbrk(r->pattern, "*?") != NULL)
            continue;
        const char *best[3] = {NULL, NULL, NULL};
        size_t bestd[3] = {0, 0, 0};
        size_t limit = strlen(r->pattern) / 3 + 1;
        for (unsigned h = 0; h < HASH; h++)
            for (const point *p = buckets[h]; p != NULL; p = p->hash_next) {
                size_t d = keel__edit_distance(r->pattern, p->name);
                if (d > limit)
                    continue;
                for (int k = 0; k < 3; k++)
                    if (best[k] == NULL || d < bestd[k]) {
                        for (int m = 2; m > k; m--) {
                            best[m] = best[m - 1];
                            bestd[m] = bestd[m - 1];
                        }
                        best[k] = p->name;
                        bestd[k] = d;
                        break;
                    }
            }
        r->warned = best[0] != NULL;
        if (best[0] != NULL)
            keel__buf_printf(warn, wsize, &wpos,
                             "stress entry '%s' matches no stress point; nearest: %s%s%s%s%s\n",
                             r->text, best[0], best[1] != NULL ? ", " : "",
                             best[1] != NULL ? best[1] : "", best[2] != NULL ? ", " : "",
                             best[2] != NULL ? best[2] : "");
    }
    __atomic_store_n(&gen, gen + 1, __ATOMIC_RELAXED);
    set_active_locked();
}

static void emit_warnings(const char *warn)
{
    const char *line = warn;
    while (line != NULL && *line != '\0') {
        const char *nl = strchr(line, '\n');
        int len = nl != NULL ? (int)(nl - line) : (int)strlen(line);
        keel_report *r =
            keel_report_begin(KEEL_REPORT_OPTIONS, __FILE__, __LINE__, __func__, "%.*s", len, line);
        keel_report_no_backtrace(r);
        (void)keel_report_emit(r);
        line = nl != NULL ? nl + 1 : NULL;
    }
}

static void at_exit_summary(void);

/* Apply the stress options if they changed; called after every options change. */
void keel__stress_options_changed(void)
{
    const char *spec = keel__opt_str(KEEL__OPT_STRESS);
    const char *file = keel__opt_str(KEEL__OPT_STRESS_FILE);
    char warn[2048];
    warn[0] = '\0';
    keel_status err = KEEL_OK;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    if (!exit_registered) {
        exit_registered = true;
        (void)atexit(at_exit_summary);
    }
    unsigned long long want_seed = (unsigned long long)keel__opt_int(KEEL__OPT_STRESS_SEED);
    bool changed = !ready;
    if (!ready || want_seed != opt_seed) {
        opt_seed = want_seed;
        seed = want_seed != 0
                   ? want_seed
                   : ((unsigned long long)time(NULL) * 6364136223846793005ull) ^
                         ((unsigned long long)getpid() << 16) ^ (unsigned long long)clock();
        changed = true;
    }
    if (spec != opt_spec || file != opt_file) {
        keel__stress_rules next = {NULL, 0, 0};
        if (file[0] != '\0') {
            char *text = NULL;
            err = keel__stress_read_file(file, &text);
            if (keel_ok(err)) {
                char origin[300];
                (void)snprintf(origin, sizeof(origin), "stress file '%s'", file);
                err = keel__stress_parse(text, true, origin, &next);
            }
            free(text);
        }
        if (keel_ok(err))
            err = keel__stress_parse(spec, false, "stress", &next);
        if (keel_ok(err)) {
            keel__stress_rules_free(&rules);
            rules = next;
        } else {
            keel__stress_rules_free(&next);
        }
        opt_spec = spec;
        opt_file = file;
        changed = true;
    }
    counting = keel__opt_bool(KEEL__OPT_STRESS_COUNT) || keel__opt_bool(KEEL__OPT_STRESS_SUMMARY) ||
               keel__opt_str(KEEL__OPT_STRESS_JSON)[0] != '\0';
    __atomic_store_n(&ready, true, __ATOMIC_RELEASE);
    if (changed)
        rearm_all_locked(warn, sizeof(warn));
    else
        set_active_locked();
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    if (!keel_ok(err))
        keel__report_status(KEEL_REPORT_OPTIONS, err, "stress options not applied");
    emit_warnings(warn);
}

/* ---- the control API ------------------------------------------------------------------ */

static void ensure_ready(void)
{
    keel__lazy_init();
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
        keel__stress_options_changed();
}

/* Append the entries of `spec`; `origin` (the caller's name) begins an error's message. */
static keel_status enable(const char *spec, const char *origin)
{
    ensure_ready();
    char warn[2048];
    warn[0] = '\0';
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    keel_status s = keel__stress_parse(spec, false, origin, &rules);
    if (keel_ok(s))
        rearm_all_locked(warn, sizeof(warn));
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    emit_warnings(warn);
    return s;
}

keel_status keel_stress_enable(const char *spec)
{
    if (spec == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_stress_enable: no spec");
    return enable(spec, "keel_stress_enable");
}

keel_status keel_stress_disable(const char *pattern)
{
    if (pattern == NULL || pattern[0] == '\0' || strpbrk(pattern, ",:") != NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_stress_disable: bad pattern '%s'",
                        pattern != NULL ? pattern : "(null)");
    char spec[512];
    if ((size_t)snprintf(spec, sizeof(spec), "%s:off", pattern) >= sizeof(spec))
        return KEEL_ERR(KEEL_E_RANGE, "keel_stress_disable: pattern '%.40s...' is too long",
                        pattern);
    return enable(spec, "keel_stress_disable");
}

void keel_stress_clear(void)
{
    ensure_ready();
    char warn[16];
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    keel__stress_rules_free(&rules);
    rearm_all_locked(warn, sizeof(warn));
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
}

size_t keel_stress_spec(char *buf, size_t size)
{
    ensure_ready();
    const char *t = __atomic_load_n(&spec_text, __ATOMIC_ACQUIRE);
    size_t len = strlen(t);
    if (size > 0) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(buf, t, n);
        buf[n] = '\0';
    }
    return len;
}

unsigned long long keel_stress_seed(void)
{
    ensure_ready();
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    unsigned long long v = seed;
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    return v;
}

keel_status keel_stress_set_action(const char *pattern, keel_stress_action action, void *ctx)
{
    if (pattern == NULL || pattern[0] == '\0')
        return KEEL_ERR(KEEL_E_INVAL, "keel_stress_set_action: no pattern");
    ensure_ready();
    char warn[16];
    keel_status s = KEEL_OK;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    size_t i = 0;
    while (i < nactions && strcmp(actions[i].pattern, pattern) != 0)
        i++;
    if (i < nactions) {
        /* replace: drop and re-append, so that it is the newest */
        free(actions[i].pattern);
        memmove(actions + i, actions + i + 1, (nactions - i - 1) * sizeof(*actions));
        nactions--;
    }
    if (action != NULL) {
        action_rec *v = (action_rec *)realloc(actions, (nactions + 1) * sizeof(*v));
        char *copy = strdup(pattern);
        if (v == NULL || copy == NULL) {
            free(copy);
            if (v != NULL)
                actions = v;
            s = KEEL_ERR(KEEL_E_NOMEM, "out of memory adding a stress action for '%s'", pattern);
        } else {
            actions = v;
            actions[nactions].pattern = copy;
            actions[nactions].fn = action;
            actions[nactions].ctx = ctx;
            nactions++;
        }
    }
    rearm_all_locked(warn, sizeof(warn));
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    return s;
}

/* ---- registration ------------------------------------------------------------------- */

static bool grow_sites_locked(void)
{
    if (nsites < sites_cap)
        return true;
    unsigned cap = sites_cap != 0 ? sites_cap * 2 : 256;
    site_rec **v = (site_rec **)realloc(sites, cap * sizeof(site_rec *));
    if (v == NULL)
        return false;
    sites = v;
    sites_cap = cap;
    return true;
}

static void add_site_locked(keel__stress_site *site)
{
    if (site->state != NULL || site->name == NULL || !grow_sites_locked())
        return;
    /* out of memory: the site stays unregistered and never fires */
    point *p = get_point_locked(site->name);
    if (p == NULL)
        return;
    site_rec *sr = (site_rec *)calloc(1, sizeof(*sr));
    if (sr == NULL)
        return;
    sr->file = strdup(site->file != NULL ? site->file : "?");
    sr->func = strdup(site->func != NULL ? site->func : "?");
    sr->line = site->line;
    sr->site = site;
    sr->pt = p;
    sr->id = nsites;
    sr->point_next = p->sites;
    p->sites = sr;
    p->nsites++;
    sites[nsites++] = sr;
    if (p->nsites == 1) {
        arm_point_locked(p);
        for (size_t i = 0; i < rules.n; i++)
            if (!rules.v[i].matched && keel__stress_glob(rules.v[i].pattern, p->name))
                rules.v[i].matched = true;
    }
    __atomic_store_n(&site->state, (void *)sr, __ATOMIC_RELEASE);
}

void *keel__stress_dynamic_site(const char *name, const char *file, const char *func)
{
    keel__stress_site *site = (keel__stress_site *)calloc(1, sizeof(*site));
    char *copy = strdup(name);
    if (site == NULL || copy == NULL) {
        free(site);
        free(copy);
        return NULL;
    }
    site->magic = KEEL__STRESS_MAGIC;
    site->name = copy;
    site->file = file;
    site->func = func;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    add_site_locked(site);
    set_active_locked();
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    return site;
}

void keel__stress_register(keel__stress_site *begin, keel__stress_site *end)
{
    if (begin == NULL || end == NULL || begin >= end)
        return;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    bool known = false;
    for (const range *r = ranges; r != NULL; r = r->next)
        known = known || r->begin == begin;
    range *r = known ? NULL : (range *)calloc(1, sizeof(*r));
    if (r != NULL) {
        r->begin = begin;
        r->end = end;
        r->next = ranges;
        ranges = r;
        char *at = (char *)begin;
        keel__stress_site *site;
        while ((site = (keel__stress_site *)keel__section_next(
                    &at, (const char *)end, sizeof(*site), KEEL__STRESS_MAGIC)) != NULL)
            add_site_locked(site);
        set_active_locked();
    }
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
}

static unsigned long long thread_count_locked(unsigned id, bool fires)
{
    unsigned long long sum = 0;
    if (id >= CHUNK * MAX_CHUNKS)
        return 0;
    for (const tstate *t = threads; t != NULL; t = t->next) {
        const counter *c = __atomic_load_n(&t->chunks[id / CHUNK], __ATOMIC_ACQUIRE);
        if (c != NULL)
            sum += fires ? __atomic_load_n(&c[id % CHUNK].fires, __ATOMIC_RELAXED)
                         : __atomic_load_n(&c[id % CHUNK].evals, __ATOMIC_RELAXED);
    }
    return sum;
}

void keel__stress_unregister(keel__stress_site *begin, keel__stress_site *end)
{
    if (begin == NULL || end == NULL || begin >= end)
        return;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    range **link = &ranges;
    while (*link != NULL && (*link)->begin != begin)
        link = &(*link)->next;
    range *r = *link;
    if (r != NULL) {
        *link = r->next;
        /* the object's code is no longer running: fold its sites' counts and forget them */
        for (unsigned i = 0; i < nsites; i++) {
            site_rec *sr = sites[i];
            if (sr->site == NULL || (char *)sr->site < (char *)begin ||
                (char *)sr->site >= (char *)end)
                continue;
            (void)__atomic_add_fetch(&sr->dead_evals, thread_count_locked(sr->id, false),
                                     __ATOMIC_RELAXED);
            (void)__atomic_add_fetch(&sr->dead_fires, thread_count_locked(sr->id, true),
                                     __ATOMIC_RELAXED);
            sr->site->state = NULL;
            sr->site = NULL;
        }
        free(r);
    }
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
}

/* ---- threads ------------------------------------------------------------------------ */

static void thread_exit(void *arg)
{
    tstate *t = (tstate *)arg;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    for (unsigned k = 0; k < MAX_CHUNKS; k++) {
        counter *c = t->chunks[k];
        if (c == NULL)
            continue;
        for (unsigned j = 0; j < CHUNK && k * CHUNK + j < nsites; j++) {
            site_rec *sr = sites[k * CHUNK + j];
            if (sr->site != NULL) {
                (void)__atomic_add_fetch(&sr->dead_evals, c[j].evals, __ATOMIC_RELAXED);
                (void)__atomic_add_fetch(&sr->dead_fires, c[j].fires, __ATOMIC_RELAXED);
            }
        }
    }
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        threads = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    for (unsigned k = 1; k < MAX_CHUNKS; k++)
        free(t->chunks[k]);
    free(t);
    tls = &dead_thread;
}

static void make_key(void)
{
    KEEL_VERIFY(pthread_key_create(&exit_key, thread_exit) == 0);
    dead_thread.busy = true;
}

static tstate *thread_state(void)
{
    (void)pthread_once(&key_once, make_key);
    /* whole cache lines: two threads' states never share one */
    size_t size = (sizeof(tstate) + 63) / 64 * 64;
    tstate *t = (tstate *)aligned_alloc(64, size);
    if (t == NULL)
        return &dead_thread; /* out of memory: this thread's points never fire */
    memset(t, 0, size);
    t->chunks[0] = t->first;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    t->ordinal = thread_ordinals++;
    t->next = threads;
    if (threads != NULL)
        threads->prev = t;
    threads = t;
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    (void)pthread_setspecific(exit_key, t);
    tls = t;
    return t;
}

/* ---- evaluation ----------------------------------------------------------------------- */

static unsigned long long splitmix(unsigned long long *x)
{
    unsigned long long z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void refresh_thread(tstate *t, unsigned g)
{
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    unsigned long long s = seed;
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    t->rng = s ^ ((unsigned long long)t->ordinal * 0xd1b54a32d192ed03ull);
    t->gen = g;
    if (pthread_getname_np(pthread_self(), t->name, sizeof(t->name)) != 0)
        t->name[0] = '\0';
}

static counter *counter_for(tstate *t, unsigned id)
{
    if (id >= CHUNK * MAX_CHUNKS)
        return NULL;
    counter *c = t->chunks[id / CHUNK];
    if (KEEL_UNLIKELY(c == NULL)) {
        c = (counter *)calloc(CHUNK, sizeof(*c));
        if (c == NULL)
            return NULL;
        __atomic_store_n(&t->chunks[id / CHUNK], c, __ATOMIC_RELEASE);
    }
    return &c[id % CHUNK];
}

static void bump(unsigned long long *v)
{
    __atomic_store_n(v, *v + 1, __ATOMIC_RELAXED); /* only this thread writes it */
}

static bool decide(arm *a, tstate *t, unsigned long long *nth_out)
{
    const keel__stress_trigger *tr = &a->t;
    if (tr->thread != NULL && !keel__stress_glob(tr->thread, t->name))
        return false;
    unsigned long long n = 0;
    if (tr->counted) {
        n = __atomic_add_fetch(&a->evals, 1, __ATOMIC_RELAXED);
        if (n <= tr->after)
            return false;
        n -= tr->after;
        if ((tr->nth != 0 && n != tr->nth) || (tr->every != 0 && n % tr->every != 0) ||
            (tr->first != 0 && n > tr->first))
            return false;
    }
    if (tr->random && splitmix(&t->rng) >= tr->thresh && tr->thresh != ~0ull)
        return false;
    if (tr->max != 0) {
        unsigned long long f = __atomic_load_n(&a->fires, __ATOMIC_RELAXED);
        do {
            if (f >= tr->max)
                return false;
        } while (!__atomic_compare_exchange_n(&a->fires, &f, f + 1, true, __ATOMIC_RELAXED,
                                              __ATOMIC_RELAXED));
    }
    *nth_out = n;
    return true;
}

static void report_fire(const site_rec *sr, const arm *a, unsigned long long n)
{
    if (keel__report_count_only(KEEL_REPORT_STRESS))
        return;
    keel_report *r = keel_report_begin(KEEL_REPORT_STRESS, sr->file, sr->line, sr->func,
                                       "stress option '%s' fired", sr->pt->name);
    if (keel_report_policy(KEEL_REPORT_STRESS) != KEEL_POLICY_COUNT) {
        const char *spec = __atomic_load_n(&spec_text, __ATOMIC_ACQUIRE);
        unsigned long long s = keel_stress_seed();
        keel_report_add_str(r, "option", sr->pt->name);
        keel_report_add_str(r, "entry", a->entry);
        if (n != 0)
            keel_report_add_uint(r, "evaluation", n);
        keel_report_add_uint(r, "seed", s);
        char line[1024];
        if (keel__stress_replay(spec, s, line, sizeof(line)) < sizeof(line))
            keel_report_add_text(r, "replay: %s", line);
        else
            keel_report_add_text(r,
                                 "replay: KEEL_OPTIONS with this spec and stress.seed=%llu "
                                 "(too long to quote here)",
                                 s);
    }
    (void)keel_report_emit(r);
}

bool keel__stress_eval(keel__stress_site *site)
{
    KEEL_ASSERT(site != NULL && site->magic == KEEL__STRESS_MAGIC);
    if (KEEL_UNLIKELY(!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))) {
        keel__lazy_init();
        if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
            keel__stress_options_changed();
    }
    site_rec *sr = (site_rec *)__atomic_load_n(&site->state, __ATOMIC_ACQUIRE);
    if (sr == NULL)
        return false; /* its object is not (or no longer) registered */
    tstate *t = tls;
    if (KEEL_UNLIKELY(t == NULL))
        t = thread_state();
    if (t->busy)
        return false; /* a point evaluated while reporting a fire */
    counter *c = counter_for(t, sr->id);
    if (c != NULL)
        bump(&c->evals);
    else
        (void)__atomic_add_fetch(&sr->dead_evals, 1, __ATOMIC_RELAXED);
    arm *a = __atomic_load_n(&sr->pt->armed, __ATOMIC_ACQUIRE);
    if (a == NULL)
        return false;
    unsigned g = __atomic_load_n(&gen, __ATOMIC_RELAXED);
    if (KEEL_UNLIKELY(t->gen != g))
        refresh_thread(t, g);
    unsigned long long n = 0;
    if (!decide(a, t, &n))
        return false;
    if (c != NULL)
        bump(&c->fires);
    else
        (void)__atomic_add_fetch(&sr->dead_fires, 1, __ATOMIC_RELAXED);
    t->busy = true;
    report_fire(sr, a, n);
    bool result = true;
    if (a->t.delay_ns > 0) {
        struct timespec ts = {(time_t)(a->t.delay_ns / 1000000000),
                              (long)(a->t.delay_ns % 1000000000)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        result = false;
    }
    if (a->action != NULL)
        result = a->action(sr->pt->name, a->action_ctx);
    t->busy = false;
    return result;
}

/* ---- snapshots (stress_summary.c prints them) -------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const keel__stress_point_info *)a)->name,
                  ((const keel__stress_point_info *)b)->name);
}

keel_status keel__stress_snapshot_take(keel__stress_snapshot *snap)
{
    KEEL_ASSERT(snap != NULL);
    ensure_ready();
    memset(snap, 0, sizeof(*snap));
    keel_status s = KEEL_OK;
    KEEL_VERIFY(pthread_mutex_lock(&reg_lock) == 0);
    size_t np = 0;
    for (unsigned h = 0; h < HASH; h++)
        for (const point *p = buckets[h]; p != NULL; p = p->hash_next)
            np++;
    snap->points = (keel__stress_point_info *)calloc(np + 1, sizeof(*snap->points));
    snap->sites = (keel__stress_site_info *)calloc((size_t)nsites + 1, sizeof(*snap->sites));
    snap->unmatched = (char **)calloc(rules.n + 1, sizeof(char *));
    snap->spec = strdup(__atomic_load_n(&spec_text, __ATOMIC_ACQUIRE));
    snap->seed = seed;
    if (snap->points == NULL || snap->sites == NULL || snap->unmatched == NULL ||
        snap->spec == NULL) {
        s = KEEL_ERR(KEEL_E_NOMEM, "out of memory for a stress summary");
    } else {
        for (unsigned h = 0; h < HASH; h++)
            for (const point *p = buckets[h]; p != NULL; p = p->hash_next) {
                keel__stress_point_info *pi = &snap->points[snap->npoints++];
                pi->name = p->name;
                pi->armed = __atomic_load_n(&p->armed, __ATOMIC_ACQUIRE) != NULL;
                for (const site_rec *sr = p->sites; sr != NULL; sr = sr->point_next) {
                    unsigned long long e = __atomic_load_n(&sr->dead_evals, __ATOMIC_RELAXED);
                    unsigned long long f = __atomic_load_n(&sr->dead_fires, __ATOMIC_RELAXED);
                    if (sr->site != NULL) {
                        e += thread_count_locked(sr->id, false);
                        f += thread_count_locked(sr->id, true);
                        pi->sites++;
                    }
                    pi->evaluations += e;
                    pi->fires += f;
                }
            }
        qsort(snap->points, snap->npoints, sizeof(*snap->points), by_name);
        for (size_t i = 0; i < snap->npoints; i++) {
            const point *p = find_point_locked(snap->points[i].name);
            if (p == NULL)
                continue;
            for (const site_rec *sr = p->sites; sr != NULL; sr = sr->point_next) {
                if (sr->site == NULL)
                    continue;
                keel__stress_site_info *si = &snap->sites[snap->nsites++];
                si->name = p->name;
                si->file = sr->file != NULL ? sr->file : "?";
                si->func = sr->func != NULL ? sr->func : "?";
                si->line = sr->line;
                si->evaluations = __atomic_load_n(&sr->dead_evals, __ATOMIC_RELAXED) +
                                  thread_count_locked(sr->id, false);
                si->fires = __atomic_load_n(&sr->dead_fires, __ATOMIC_RELAXED) +
                            thread_count_locked(sr->id, true);
            }
        }
        for (size_t i = 0; i < rules.n && keel_ok(s); i++)
            if (!rules.v[i].matched) {
                char *copy = strdup(rules.v[i].text);
                if (copy == NULL)
                    s = KEEL_ERR(KEEL_E_NOMEM, "out of memory for a stress summary");
                else
                    snap->unmatched[snap->nunmatched++] = copy;
            }
    }
    KEEL_VERIFY(pthread_mutex_unlock(&reg_lock) == 0);
    if (!keel_ok(s))
        keel__stress_snapshot_free(snap);
    return s;
}

void keel__stress_snapshot_free(keel__stress_snapshot *snap)
{
    KEEL_ASSERT(snap != NULL);
    for (size_t i = 0; i < snap->nunmatched; i++)
        free(snap->unmatched[i]);
    free(snap->unmatched);
    free(snap->points);
    free(snap->sites);
    free(snap->spec);
    memset(snap, 0, sizeof(*snap));
}

static void at_exit_summary(void)
{
    keel__stress_at_exit();
}

#else /* release: no points; the control calls do nothing */

keel_status keel_stress_enable(const char *spec)
{
    (void)spec;
    return KEEL_ERR(KEEL_E_UNSUPPORTED, "stress options are compiled out of release builds");
}

keel_status keel_stress_disable(const char *pattern)
{
    (void)pattern;
    return KEEL_OK;
}

void keel_stress_clear(void)
{
}

size_t keel_stress_spec(char *buf, size_t size)
{
    if (size > 0)
        buf[0] = '\0';
    return 0;
}

unsigned long long keel_stress_seed(void)
{
    return 0;
}

keel_status keel_stress_set_action(const char *pattern, keel_stress_action action, void *ctx)
{
    (void)pattern;
    (void)action;
    (void)ctx;
    return KEEL_ERR(KEEL_E_UNSUPPORTED, "stress options are compiled out of release builds");
}

void keel__stress_options_changed(void)
{
}

keel_status keel__stress_snapshot_take(keel__stress_snapshot *snap)
{
    memset(snap, 0, sizeof(*snap));
    return KEEL_OK;
}

void keel__stress_snapshot_free(keel__stress_snapshot *snap)
{
    memset(snap, 0, sizeof(*snap));
}

#endif
