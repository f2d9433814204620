/*
 * lockdep.c - lock classes, the lock-order graph and lock reports (devel).
 *
 * Nodes of the graph are (class, subclass) pairs.  An edge H -> N means "N
 * was acquired, blocking, while H was held"; it is added the first time a
 * thread shows that order, with the sites and a backtrace of that moment.
 * Before an acquisition would add H -> N, a breadth-first search looks for
 * N ->* H: finding one is a potential deadlock, reported once per pair and
 * never added (the graph stays the order that was consistent).  Rank
 * violations are reported without searching.  A chain table remembers every
 * sequence of held nodes already checked, so a known sequence costs one probe.
 */
/* keel's own stress points are named like a module's: keel.lock_classes_full, ... */
#define KEEL_MODULE_NAME "keel"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if KEEL_DEVEL

#include "lockdep.h"

/* Read by the inline fast path of the program's own code (keel/lock_fast.h): exported. */
__thread keel__lock_thread *keel__lock_tls __attribute__((tls_model("initial-exec"))) =
    &keel__lock_none;
const int KEEL__LOCK_LAYOUT_SYMBOL(KEEL__LOCK_LAYOUT) = KEEL__LOCK_LAYOUT;
/* What programs compiled against keel/lock_fast.h rely on.  Whoever changes it bumps
 * KEEL__LOCK_LAYOUT (the symbol's name), then these figures. */
KEEL__STATIC_ASSERT(KEEL__LOCK_LAYOUT == 5 && sizeof(keel__held) == 40 &&
                        offsetof(keel__held, node) == 8 && offsetof(keel__held, mode) == 12 &&
                        offsetof(keel__held, nm) == 8 && offsetof(keel__held, chain) == 16 &&
                        offsetof(keel__held, seq) == 24 && offsetof(keel__held, site) == 32 &&
                        offsetof(keel__lock_thread, nw) == 0 &&
                        offsetof(keel__lock_thread, n) ==
                            (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? 0 : 4) &&
                        offsetof(keel__lock_thread, guard) == 8 &&
                        offsetof(keel__lock_thread, h) == 48 && KEEL__CHAIN_SLOTS == 16384u &&
                        KEEL_LOCK_MAX_HELD == 32 && sizeof(keel_lockdep) == 40,
                    "the inline lock path's layout changed: bump KEEL__LOCK_LAYOUT");
/* The guard is where entry -1's lock would be (keel__held_top). */
KEEL__STATIC_ASSERT(offsetof(keel__lock_thread, guard) == offsetof(keel__lock_thread, h) -
                                                              sizeof(keel__held) +
                                                              offsetof(keel__held, lock),
                    "keel__lock_thread.guard is not entry -1's lock");
const char keel__lock_guard = 0;
/* The state of a thread that has none (keel__lock_self): slow, nothing held, its guard. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers" /* (C++: the rest is zero) */
keel__lock_thread keel__lock_none = {.nw = KEEL__NW_SLOW, .guard = &keel__lock_guard};
#pragma GCC diagnostic pop
char keel__lock_in_transit;
static keel__lock_thread no_memory_state; /* shared by threads whose state could not be allocated */
static pthread_once_t no_memory_once = PTHREAD_ONCE_INIT;
static bool no_memory_reported;

#define MAX_CLASSES  512u
#define MAX_NODES    (MAX_CLASSES * KEEL__NEST_LEVELS)
#define NODE_WORDS   (MAX_NODES / 64u)
#define CLASS_HASH   1024u
#define MAX_EDGES    8192u
#define EDGE_HASH    16384u
#define CHAIN_PROBES 16u
#define EDGE_FRAMES  12

typedef struct lock_class {
    char name[64];
    const char *file;             /* first initialisation site */
    unsigned long long budget_ns; /* atomic: hold budget (0: none), read by the watchdog */
    int rank;
    int line;
    unsigned char kind;
    bool recursion_reported;
    bool rank_conflict_reported;
} lock_class;

/* A hold budget named by keel_lock_class_budget or the lock.budget option. */
typedef struct budget_rule {
    char name[KEEL__LOCK_BUDGET_NAME];
    unsigned long long api_ms; /* set by keel_lock_class_budget (wins when api_set) */
    unsigned long long opt_ms; /* from lock.budget */
    bool api_set;
} budget_rule;

#define MAX_BUDGETS 64u

typedef struct edge_info {
    unsigned from, to;            /* nodes */
    const char *held_file, *file; /* where `from` was acquired, and `to` */
    int held_line, line;
    char thread[32];
    void *pcs[EDGE_FRAMES];
    int npcs;
    bool from_excl; /* `from` was ever held exclusively when the edge was seen */
    bool to_excl;   /* `to` was ever acquired exclusively */
} edge_info;

/* Everything below is guarded by graph_lock, except keel__chains[] (lock-free). */
static pthread_mutex_t graph_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * graph_lock, taken and released with the signals that come from outside blocked in the thread
 * while it is held (keel__signals_block): a program's signal handler never runs under it.
 */
static void graph_enter(sigset_t *old)
{
    keel__signals_block(old);
    KEEL_VERIFY(pthread_mutex_lock(&graph_lock) == 0);
}

static void graph_leave(const sigset_t *old)
{
    KEEL_VERIFY(pthread_mutex_unlock(&graph_lock) == 0);
    keel__signals_restore(old);
}
static lock_class classes[MAX_CLASSES];
/* The inline path's one compare (keel__mutex_fast_node): every node below its bound, cls 0 and
 * KEEL__CLS_NONE above. */
KEEL__STATIC_ASSERT(MAX_NODES - 1u <= KEEL__NODE_MAX &&
                        (0u - 1u) * KEEL__NEST_LEVELS > KEEL__NODE_MAX &&
                        (KEEL__CLS_NONE - 1u) * KEEL__NEST_LEVELS > KEEL__NODE_MAX,
                    "keel__mutex_fast_node's bound");
static unsigned nclasses;
static unsigned class_hash[CLASS_HASH]; /* class index + 1 */
static unsigned long long adj[MAX_NODES][NODE_WORDS];
static edge_info edges[MAX_EDGES];
static unsigned nedges;
static unsigned edge_hash[EDGE_HASH]; /* edge index + 1 */
/* pairs already reported (rank or cycle), so each is reported once */
static unsigned long long reported_pairs[1024];
static unsigned nreported;
unsigned long long keel__chains[KEEL__CHAIN_SLOTS];
static bool classes_full_reported, edges_full_reported, chains_full_reported;
static budget_rule budgets[MAX_BUDGETS];
static unsigned nbudgets;
static unsigned budgets_generation; /* keel__options_generation last read; 0: never */
static bool budgets_active;         /* atomic: some class has a budget */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static const char *const kind_names[] = {"mutex", "rwlock", "spinlock"};

/* ---- classes ----------------------------------------------------------------------------- */

void keel__dep_init(keel_lockdep *d, const char *name, int rank, const keel__lock_site *site)
{
    KEEL_ASSERT(d != NULL && rank >= 0 && site != NULL);
    d->name = name;
    d->rank = rank;
    d->cls = 0;
    d->owner = NULL;
    d->file = site->file;
    d->line = site->line;
    d->magic = 0x6b6c636bu;
}

static unsigned hash_str(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* ---- hold budgets (graph_lock held) ------------------------------------------------------ */

static budget_rule *rule_find(const char *name, size_t len, bool create)
{
    for (unsigned i = 0; i < nbudgets; i++)
        if (strncmp(budgets[i].name, name, len) == 0 && budgets[i].name[len] == '\0')
            return &budgets[i];
    if (!create || nbudgets >= MAX_BUDGETS || len >= sizeof(budgets[0].name))
        return NULL;
    budget_rule *b = &budgets[nbudgets++];
    memset(b, 0, sizeof(*b));
    memcpy(b->name, name, len);
    b->name[len] = '\0';
    return b;
}

/* Forget a rule: its place goes to the next class named. */
static void rule_drop(budget_rule *b)
{
    KEEL_ASSERT(b >= budgets && b < budgets + nbudgets);
    *b = budgets[--nbudgets];
}

static unsigned long long rule_budget_ns(const char *name)
{
    const budget_rule *b = rule_find(name, strlen(name), false);
    if (b == NULL)
        return 0;
    return (b->api_set ? b->api_ms : b->opt_ms) * 1000000ull;
}

/* Give every class the budget its rules say now. */
static void budgets_apply(void)
{
    bool any = false;
    for (unsigned i = 0; i < nclasses; i++) {
        unsigned long long ns = rule_budget_ns(classes[i].name);
        __atomic_store_n(&classes[i].budget_ns, ns, __ATOMIC_RELAXED);
        any = any || ns != 0;
    }
    for (unsigned i = 0; i < nbudgets && !any; i++)
        any = (budgets[i].api_set ? budgets[i].api_ms : budgets[i].opt_ms) != 0;
    __atomic_store_n(&budgets_active, any, __ATOMIC_RELAXED);
}

static void option_rule(const char *name, size_t len, unsigned long long ms, void *ctx)
{
    bool *full = (bool *)ctx;
    budget_rule *b = rule_find(name, len, ms != 0);
    if (b != NULL)
        b->opt_ms = ms;
    else if (ms != 0)
        *full = true;
}

/* Re-read lock.budget when any option changed since the last look. */
static void budgets_refresh_locked(void)
{
    unsigned gen = __atomic_load_n(&keel__options_generation, __ATOMIC_ACQUIRE);
    if (gen == budgets_generation)
        return;
    __atomic_store_n(&budgets_generation, gen, __ATOMIC_RELAXED);
    /* the option's rules as it says now: those of keel_lock_class_budget stay */
    for (unsigned i = nbudgets; i-- > 0;) {
        budgets[i].opt_ms = 0;
        if (!budgets[i].api_set)
            rule_drop(&budgets[i]);
    }
    bool full = false;
    keel_status s =
        keel__lock_budget_parse(keel__opt_str(KEEL__OPT_LOCK_BUDGET), option_rule, &full);
    keel_status_ignore(s, "lock.budget was checked when it was set");
    for (unsigned i = nbudgets; i-- > 0;) /* a removal of what the option no longer names */
        if (budgets[i].api_ms == 0 && budgets[i].opt_ms == 0)
            rule_drop(&budgets[i]);
    budgets_apply();
    if (full)
        (void)KEEL__REPORT_AT_CALLER(
            KEEL_REPORT_LIMIT,
            "more than %u lock classes with budgets: lock.budget is partly ignored", MAX_BUDGETS);
}

void keel__lock_budgets_refresh(void)
{
    if (__atomic_load_n(&keel__options_generation, __ATOMIC_ACQUIRE) ==
        __atomic_load_n(&budgets_generation, __ATOMIC_RELAXED))
        return;
    sigset_t sigs;
    graph_enter(&sigs);
    budgets_refresh_locked();
    graph_leave(&sigs);
}

bool keel__lock_budgets_any(void)
{
    keel__lock_budgets_refresh();
    return __atomic_load_n(&budgets_active, __ATOMIC_RELAXED);
}

keel_status keel__dep_set_budget(const char *class_name, unsigned long long budget_ms)
{
    KEEL_ASSERT(class_name != NULL && budget_ms <= KEEL__LOCK_BUDGET_MAX_MS);
    keel__lazy_init();
    keel_status s = KEEL_OK;
    sigset_t sigs;
    graph_enter(&sigs);
    budgets_refresh_locked();
    /* 0 removes: a class lock.budget does not name is forgotten (its place freed), one it
     * names keeps the override */
    budget_rule *b = rule_find(class_name, strlen(class_name), budget_ms != 0);
    bool full = b == NULL && budget_ms != 0;
    if (b != NULL) {
        b->api_ms = budget_ms;
        b->api_set = true;
        if (budget_ms == 0 && b->opt_ms == 0)
            rule_drop(b);
        budgets_apply();
    }
    graph_leave(&sigs);
    if (full)
        s = keel_status_with_uint(
            KEEL_ERR(KEEL_E_FULL, "cannot budget lock class '%s': %u classes already have budgets",
                     class_name, MAX_BUDGETS),
            "max_budgets", MAX_BUDGETS);
    return s;
}

/* ---- class lookup ---------------------------------------------------------------------------- */

/* graph_lock held.  Reports are returned through *conflict for emission after unlocking. */
static unsigned class_lookup(const char *key, int rank, keel__lock_kind kind, const char *file,
                             int line, bool full, int *conflict_rank)
{
    unsigned h = hash_str(key) & (CLASS_HASH - 1u);
    for (unsigned i = 0; i < CLASS_HASH; i++) {
        unsigned slot = (h + i) & (CLASS_HASH - 1u);
        unsigned c = class_hash[slot];
        if (c == 0) {
            if (nclasses >= MAX_CLASSES || full)
                return KEEL__CLS_NONE;
            lock_class *lc = &classes[nclasses];
            (void)snprintf(lc->name, sizeof(lc->name), "%s", key);
            lc->rank = rank;
            lc->kind = (unsigned char)kind;
            lc->file = file;
            lc->line = line;
            __atomic_store_n(&lc->budget_ns, rule_budget_ns(key), __ATOMIC_RELAXED);
            class_hash[slot] = ++nclasses;
            return nclasses - 1;
        }
        lock_class *lc = &classes[c - 1];
        if (strcmp(lc->name, key) == 0) {
            if (lc->rank != rank && !lc->rank_conflict_reported) {
                lc->rank_conflict_reported = true;
                *conflict_rank = lc->rank;
            }
            return c - 1;
        }
    }
    return KEEL__CLS_NONE;
}

unsigned keel__dep_resolve(keel_lockdep *d, keel__lock_kind kind)
{
    KEEL_ASSERT(d != NULL);
    char key[64];
    if (d->name != NULL)
        (void)snprintf(key, sizeof(key), "%s", d->name);
    else
        (void)snprintf(key, sizeof(key), "%s:%d", d->file != NULL ? d->file : "?", d->line);
    int conflict_rank = -1;
    bool full_now = false;
    /* stress point (outside graph_lock: a fire is reported): a new class finds the table full */
    bool stress_full = KEEL_STRESS(lock_classes_full);
    sigset_t sigs;
    graph_enter(&sigs);
    unsigned c = __atomic_load_n(&d->cls, __ATOMIC_ACQUIRE);
    if (c == 0) {
        unsigned cls =
            class_lookup(key, d->rank, kind, d->file, d->line, stress_full, &conflict_rank);
        if (cls == KEEL__CLS_NONE && !classes_full_reported)
            full_now = classes_full_reported = true;
        c = cls == KEEL__CLS_NONE ? KEEL__CLS_NONE : cls + 1;
        __atomic_store_n(&d->cls, c, __ATOMIC_RELEASE);
    }
    /* d->cls: 0 unresolved, KEEL__CLS_NONE unchecked, else class + 1 */
    graph_leave(&sigs);
    if (full_now)
        (void)KEEL__REPORT_AT_CALLER(KEEL_REPORT_LIMIT,
                                     "more than %u lock classes: further classes are not checked",
                                     MAX_CLASSES);
    if (conflict_rank >= 0)
        (void)KEEL__REPORT_AT_CALLER(
            KEEL_REPORT_LOCK_MISUSE,
            "lock class '%s' has rank %d here (%s:%d) but rank %d elsewhere", key, d->rank,
            d->file != NULL ? d->file : "?", d->line, conflict_rank);
    return c == KEEL__CLS_NONE ? KEEL__CLS_NONE : c - 1;
}

static const lock_class *node_class(unsigned node)
{
    return &classes[node / KEEL__NEST_LEVELS];
}

/* ---- reports ---------------------------------------------------------------------------- */

static void add_held(keel_report *r, const keel__lock_thread *t)
{
    if (t->n == 0) {
        keel_report_add_text(r, "this thread holds no keel locks");
        return;
    }
    keel_report_add_text(r, "locks held by this thread (%u), oldest first:", t->n);
    for (unsigned i = 0; i < t->n; i++) {
        const keel__held *h = &t->h[i];
        keel_report_add_text(
            r, "  #%u '%s' (%s, rank %d%s%s%s) acquired at %s:%d", i,
            keel__dep_name(keel__held_dep(h)), kind_names[h->mode.kind], keel__held_dep(h)->rank,
            h->mode.shared ? ", shared" : "", h->mode.trylock ? ", trylock" : "",
            h->mode.waiting ? ", released in a condition wait" : "", h->site->file, h->site->line);
    }
}

static keel_report *begin(keel_report_kind kind, const keel_lockdep *d, const keel__lock_site *site,
                          const char *msg)
{
    keel_report *r = keel_report_begin(kind, site->file, site->line, site->func, "%s", msg);
    if (d != NULL) {
        keel_report_add_str(r, "lock", keel__dep_name(d));
        keel_report_add_int(r, "rank", d->rank);
    }
    return r;
}

void keel__dep_blocking(keel__lock_thread *t, const char *what, const keel__lock_site *site)
{
    char msg[256];
    if (t->spins > 0)
        (void)snprintf(msg, sizeof(msg), "%s while holding %u spinlock(s)", what, t->spins);
    else
        (void)snprintf(msg, sizeof(msg), "%s inside a non-blocking region", what);
    keel_report *r = begin(KEEL_REPORT_LOCK_BLOCKING, NULL, site, msg);
    keel_report_add_str(r, "call", what);
    keel_report_add_uint(r, "spinlocks_held", t->spins);
    keel_report_add_uint(r, "nonblocking_depth", t->nonblock);
    add_held(r, t);
    (void)keel_report_emit(r);
}

void keel__dep_self_deadlock(keel__lock_thread *t, keel_lockdep *d, const keel__lock_site *site)
{
    char msg[256];
    (void)snprintf(msg, sizeof(msg),
                   "self-deadlock: '%s' is already held by this thread (not recursive); "
                   "the lock call returns without locking",
                   keel__dep_name(d));
    keel_report *r = begin(KEEL_REPORT_LOCK_MISUSE, d, site, msg);
    add_held(r, t);
    (void)keel_report_emit(r);
}

void keel__dep_recursive_read(keel__lock_thread *t, keel_lockdep *d, const keel__lock_site *site)
{
    char msg[256];
    (void)snprintf(msg, sizeof(msg),
                   "recursive read lock of rwlock '%s': deadlocks when a writer queues between the "
                   "two read locks",
                   keel__dep_name(d));
    keel_report *r = begin(KEEL_REPORT_LOCK_ORDER, d, site, msg);
    add_held(r, t);
    (void)keel_report_emit(r);
}

void keel__dep_misuse(keel__lock_thread *t, keel_lockdep *d, const keel__lock_site *site,
                      const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    keel_report *r = begin(KEEL_REPORT_LOCK_MISUSE, d, site, msg);
    add_held(r, t);
    (void)keel_report_emit(r);
}

bool keel__dep_destroy_check(keel_lockdep *d, const void *lock, keel__dep_locked_fn *locked,
                             const keel__lock_site *site)
{
    keel__lock_thread *t = keel__lock_self();
    void *owner = __atomic_load_n(&d->owner, __ATOMIC_RELAXED);
    bool mine = owner == t || keel__dep_find(t, lock) != NULL;
    if (!mine && owner == NULL && (locked == NULL || !locked(d))) {
        d->magic = 0;
        return true;
    }
    keel__dep_misuse(t, d, site, "destroying lock '%s' while it is held%s", keel__dep_name(d),
                     mine ? " by this thread" : "");
    return false;
}

/* ---- the held stack --------------------------------------------------------------------------- */

static void thread_exit_check(void *arg)
{
    keel__lock_thread *t = (keel__lock_thread *)arg;
    keel__watchdog_lock_state(NULL); /* the watchdog stops sampling it before it is freed */
    if (t->n == 0) {
        keel__lock_tls = &keel__lock_none;
        free(t);
        return;
    }
    keel_report *r =
        keel_report_begin(KEEL_REPORT_LOCK_MISUSE, t->h[0].site->file, t->h[0].site->line,
                          t->h[0].site->func, "thread exiting with %u keel lock(s) held", t->n);
    keel_report_add_uint(r, "held", t->n);
    add_held(r, t);
    (void)keel_report_emit(r);
    keel__lock_tls = &keel__lock_none;
    free(t);
}

/* A new thread state (zeroed): its guard, and a count of acquisitions that starts at 1 (an
 * acquisition number is never 0: the watchdog's "none"). */
static void state_init(keel__lock_thread *t)
{
    t->guard = &keel__lock_guard;
    t->nw = KEEL__NW_GEN;
}

static void no_memory_init(void)
{
    state_init(&no_memory_state);
    no_memory_state.disabled = true;
}

static void make_exit_key(void)
{
    KEEL_VERIFY(pthread_key_create(&exit_key, thread_exit_check) == 0);
}

keel__lock_thread *keel__lock_thread_new(void)
{
    KEEL_ASSERT(keel__lock_tls == &keel__lock_none);
    keel__lazy_init(); /* a first lock of any kind sees the options (lock.budget) */
    if (KEEL_UNLIKELY(keel__lock_tls != &keel__lock_none))
        return keel__lock_tls; /* a report handler of the options report took a lock */
    KEEL_VERIFY(pthread_once(&exit_once, make_exit_key) == 0);
    /* stress point: this thread's state cannot be allocated */
    keel__lock_thread *t =
        KEEL_STRESS(lock_thread_nomem) ? NULL : (keel__lock_thread *)calloc(1, sizeof(*t));
    if (t == NULL || pthread_setspecific(exit_key, t) != 0) {
        free(t);
        KEEL_VERIFY(pthread_once(&no_memory_once, no_memory_init) == 0);
        if (!__atomic_exchange_n(&no_memory_reported, true, __ATOMIC_RELAXED))
            (void)KEEL__REPORT_AT_CALLER(
                KEEL_REPORT_LIMIT,
                "no memory for a thread's lock state: the locks of such threads are "
                "not checked");
        return &no_memory_state; /* not remembered: the next call tries again */
    }
    state_init(t);
    keel__lock_tls = t;
    keel__watchdog_lock_state(t); /* watched for hold budgets */
    return t;
}

static void recompute_from(keel__lock_thread *t, unsigned i)
{
    for (; i < t->n; i++)
        t->h[i].chain = keel__dep_chain(t, i, t->h[i].node, t->h[i].mode.shared);
}

/* The uncommon pushes: state disabled, stack full, class not resolved yet or not checked. */
void keel__dep_push_slow(keel__lock_thread *t, keel_lockdep *d, const void *lock,
                         keel__lock_kind kind, int nest, bool shared, bool trylock,
                         const keel__lock_site *site)
{
    KEEL_ASSERT(t != NULL && d != NULL);
    if (KEEL_UNLIKELY(t->disabled))
        return;
    /* stress point, on this slow push only (a lock's first acquisition, an unchecked class) */
    if (KEEL_UNLIKELY(t->n >= KEEL_LOCK_MAX_HELD) || KEEL_STRESS(lock_held_full)) {
        /* not tracked, so not counted as a held spinlock either: its unlock finds nothing */
        t->overflow++;
        keel__dep_slow_update(t);
        if (t->overflow == 1)
            (void)keel_report_emit(keel_report_begin(
                KEEL_REPORT_LIMIT, site->file, site->line, site->func,
                "more than %d keel locks held by one thread: '%s' and further locks are not "
                "checked",
                KEEL_LOCK_MAX_HELD, keel__dep_name(d)));
        return;
    }
    unsigned node = keel__dep_node(keel__dep_class(d, kind), nest);
    keel__dep_record(t, d, lock, kind, node, shared, trylock, site);
}

const keel__held *keel__dep_find(const keel__lock_thread *t, const void *lock)
{
    for (unsigned i = t->n; i > 0; i--)
        if (t->h[i - 1].lock == lock)
            return &t->h[i - 1];
    return NULL;
}

/* Copy a held entry down the stack; the fields the watchdog samples are stored atomically. */
static void move_entry(keel__held *dst, const keel__held *src)
{
    __atomic_store_n(&dst->lock, src->lock, __ATOMIC_RELAXED);
    keel__held_set_nm(dst, src->node, src->mode);
    dst->chain = src->chain; /* (recomputed by the caller) */
    dst->site = src->site;
    __atomic_store_n(&dst->seq, src->seq, __ATOMIC_RELEASE);
}

bool keel__dep_pop_slow(keel__lock_thread *t, keel_lockdep *d, const void *lock,
                        keel__dep_locked_fn *locked, const keel__lock_site *site)
{
    KEEL_ASSERT(t != NULL && d != NULL);
    if (KEEL_UNLIKELY(t->disabled))
        return true;
    unsigned i = t->n;
    while (i > 0 && t->h[i - 1].lock != lock)
        i--;
    if (KEEL_UNLIKELY(i == 0)) {
        if (t->overflow > 0) {
            t->overflow--;
            keel__dep_slow_update(t);
            return true;
        }
        bool held =
            __atomic_load_n(&d->owner, __ATOMIC_RELAXED) != NULL || (locked != NULL && locked(d));
        keel__dep_misuse(t, d, site,
                         held ? "unlock of '%s', which this thread does not hold"
                              : "unlock of '%s', which is not locked (double unlock?)",
                         keel__dep_name(d));
        return false;
    }
    i--;
    if (t->h[i].mode.kind == KEEL__LK_SPIN) {
        t->spins--;
        keel__dep_slow_update(t);
    }
    for (unsigned j = i; j + 1 < t->n; j++)
        move_entry(&t->h[j], &t->h[j + 1]);
    keel__held_drop(t);
    recompute_from(t, i);
    return true;
}

void keel__dep_mark_waiting(keel__lock_thread *t, const void *lock, bool waiting)
{
    for (unsigned i = t->n; i > 0; i--)
        if (t->h[i - 1].lock == lock) {
            keel__held_mode mode = t->h[i - 1].mode;
            mode.waiting = waiting;
            keel__held_set_nm(&t->h[i - 1], t->h[i - 1].node, mode);
            return;
        }
}

/* ---- chains ------------------------------------------------------------------------------------- */

/* The probe from a key's home slot (keel__chain_home looks at that one alone). */
bool keel__chain_probe(unsigned long long key)
{
    unsigned base = (unsigned)key & (KEEL__CHAIN_SLOTS - 1u);
    for (unsigned i = 0; i < CHAIN_PROBES; i++) {
        unsigned long long k =
            __atomic_load_n(&keel__chains[(base + i) & (KEEL__CHAIN_SLOTS - 1u)], __ATOMIC_ACQUIRE);
        if (k == key)
            return true;
        if (k == 0)
            return false;
    }
    return false;
}

/* graph_lock held (one writer).  False when the table has no room near key. */
static bool chain_add(unsigned long long key)
{
    unsigned base = (unsigned)key & (KEEL__CHAIN_SLOTS - 1u);
    for (unsigned i = 0; i < CHAIN_PROBES; i++) {
        unsigned long long *slot = &keel__chains[(base + i) & (KEEL__CHAIN_SLOTS - 1u)];
        unsigned long long k = __atomic_load_n(slot, __ATOMIC_RELAXED);
        if (k == key)
            return true;
        if (k == 0) {
            __atomic_store_n(slot, key, __ATOMIC_RELEASE);
            return true;
        }
    }
    return false;
}

/* ---- the graph ------------------------------------------------------------------------------------ */

static bool has_edge(unsigned from, unsigned to)
{
    return (adj[from][to / 64u] >> (to % 64u) & 1u) != 0;
}

/* Where the probe for edge from -> to starts in edge_hash[]. */
static unsigned edge_home(unsigned from, unsigned to)
{
    return (from * 2654435761u ^ to * 40503u) & (EDGE_HASH - 1u);
}

static edge_info *edge_find(unsigned from, unsigned to)
{
    unsigned h = edge_home(from, to);
    for (unsigned i = 0; i < EDGE_HASH; i++) {
        unsigned e = edge_hash[(h + i) & (EDGE_HASH - 1u)];
        if (e == 0)
            return NULL;
        if (edges[e - 1].from == from && edges[e - 1].to == to)
            return &edges[e - 1];
    }
    return NULL;
}

static bool pair_reported(unsigned from, unsigned to)
{
    unsigned long long key = (unsigned long long)from << 32 | to;
    for (unsigned i = 0; i < nreported; i++)
        if (reported_pairs[i] == key)
            return true;
    if (nreported < KEEL__ARRAY_LEN(reported_pairs))
        reported_pairs[nreported++] = key;
    return false;
}

/* The backtrace of the acquisition being checked, captured once per slow path. */
typedef struct slow_bt {
    void *pcs[EDGE_FRAMES];
    int n; /* -1: not captured yet */
} slow_bt;

static void edge_add(const keel__held *held, unsigned to, bool to_shared,
                     const keel__lock_site *site, bool full, slow_bt *bt, bool *full_now)
{
    adj[held->node][to / 64u] |= 1ull << (to % 64u);
    if (nedges >= MAX_EDGES || full) {
        if (!edges_full_reported)
            *full_now = edges_full_reported = true;
        return;
    }
    edge_info *e = &edges[nedges];
    e->from = held->node;
    e->to = to;
    e->held_file = held->site->file;
    e->held_line = held->site->line;
    e->file = site->file;
    e->line = site->line;
    e->from_excl = !held->mode.shared;
    e->to_excl = !to_shared;
    keel__thread_name(e->thread, sizeof(e->thread));
    if (bt->n < 0)
        bt->n = keel_backtrace(bt->pcs, EDGE_FRAMES, 0); /* keel's frames dropped when printed */
    memcpy(e->pcs, bt->pcs, sizeof(e->pcs));
    e->npcs = bt->n;
    nedges++;
    unsigned h = edge_home(held->node, to);
    for (unsigned i = 0; i < EDGE_HASH; i++) {
        unsigned *slot = &edge_hash[(h + i) & (EDGE_HASH - 1u)];
        if (*slot == 0) {
            *slot = nedges;
            return;
        }
    }
}

/* Breadth-first search for a path from -> ... -> to; fills path[] (from first).  Length or 0. */
static unsigned find_path(unsigned from, unsigned to, unsigned *path, unsigned max)
{
    static unsigned queue[MAX_NODES];
    static unsigned short parent[MAX_NODES];
    static unsigned long long seen[NODE_WORDS];
    memset(seen, 0, sizeof(seen));
    unsigned head = 0, tail = 0;
    queue[tail++] = from;
    seen[from / 64u] |= 1ull << (from % 64u);
    parent[from] = (unsigned short)from;
    while (head < tail) {
        unsigned u = queue[head++];
        if (u == to) {
            unsigned n = 0;
            for (unsigned v = to;; v = parent[v]) {
                if (n < max)
                    path[n++] = v;
                if (v == from)
                    break;
            }
            for (unsigned i = 0; i < n / 2; i++) {
                unsigned x = path[i];
                path[i] = path[n - 1 - i];
                path[n - 1 - i] = x;
            }
            return n;
        }
        for (unsigned w = 0; w < NODE_WORDS; w++) {
            unsigned long long bits = adj[u][w] & ~seen[w];
            while (bits != 0) {
                unsigned b = (unsigned)__builtin_ctzll(bits);
                bits &= bits - 1;
                unsigned v = w * 64u + b;
                seen[w] |= 1ull << b;
                parent[v] = (unsigned short)u;
                queue[tail++] = v;
            }
        }
    }
    return 0;
}

/* A cycle cannot deadlock when some lock on it is both held and waited for only shared. */
static bool cycle_harmless(const unsigned *path, unsigned n, bool new_from_excl, bool new_to_excl)
{
    /* path: N = path[0] -> ... -> path[n-1] = H, then the new edge H -> N */
    for (unsigned i = 0; i < n; i++) {
        const edge_info *in = i > 0 ? edge_find(path[i - 1], path[i]) : NULL;
        const edge_info *out = i + 1 < n ? edge_find(path[i], path[i + 1]) : NULL;
        bool in_excl = i == 0 ? new_to_excl : (in == NULL || in->to_excl);
        bool out_excl = i + 1 == n ? new_from_excl : (out == NULL || out->from_excl);
        if (!in_excl && !out_excl)
            return true;
    }
    return false;
}

void keel__dep_add_frames(keel_report *r, void *const *pcs, int n)
{
    int shown = 0;
    /* the checker's own frames first: dropped (by address, as for a report's backtrace) */
    for (int i = keel__first_user_frame(pcs, n); i < n; i++) {
        keel_frame f;
        bool named = keel_backtrace_symbolize(pcs[i], &f) && f.func[0] != '\0';
        if (!named)
            keel_report_add_text(r, "      #%d %p", shown, pcs[i]);
        else if (f.file[0] != '\0')
            keel_report_add_text(r, "      #%d %s (%s:%d)", shown, f.func, f.file, f.line);
        else
            keel_report_add_text(r, "      #%d %s [%s]", shown, f.func, f.object);
        shown++;
    }
}

static void add_edge_text(keel_report *r, const edge_info *e)
{
    keel_report_add_text(r,
                         "  '%s' -> '%s': '%s' acquired at %s:%d while holding '%s' (acquired at "
                         "%s:%d), thread '%s'",
                         node_class(e->from)->name, node_class(e->to)->name,
                         node_class(e->to)->name, e->file, e->line, node_class(e->from)->name,
                         e->held_file, e->held_line, e->thread);
    keel__dep_add_frames(r, e->pcs, e->npcs);
}

/* What the slow path found, reported after graph_lock is released. */
typedef struct finding {
    const keel__held *held;
    int what; /* 0 none, 1 rank, 2 cycle, 3 same class */
    unsigned npath;
    unsigned path[16];
} finding;

void keel__dep_before_slow(keel__lock_thread *t, keel_lockdep *d, const void *lock, unsigned node,
                           int nest, bool shared, unsigned long long key,
                           const keel__lock_site *site)
{
    KEEL_ASSERT(t != NULL && d != NULL && t->n > 0);
    finding found[4];
    unsigned nfound = 0;
    bool edges_full = false, chains_full = false;
    slow_bt bt;
    bt.n = -1;
    /* stress points (outside graph_lock: a fire is reported): the edge table is full for the
     * edges this check adds, the chain table for this sequence */
    bool stress_edges = KEEL_STRESS(lock_edges_full);
    bool stress_chains = KEEL_STRESS(lock_chains_full);
    sigset_t sigs;
    graph_enter(&sigs);
    for (unsigned i = 0; i < t->n; i++) {
        const keel__held *h = &t->h[i];
        if (h->node == KEEL__CLS_NONE || h->lock == lock)
            continue;
        finding f;
        f.what = 0;
        f.held = h;
        f.npath = 0;
        if (h->node == node) {
            if (nest == KEEL_NEST_BY_ADDRESS) {
                /* checked by keel__dep_address_order on every acquisition */
            } else if (!classes[node / KEEL__NEST_LEVELS].recursion_reported) {
                classes[node / KEEL__NEST_LEVELS].recursion_reported = true;
                f.what = 3;
            }
        } else if (keel__held_dep(h)->rank > 0 && d->rank > 0 &&
                   d->rank < keel__held_dep(h)->rank) {
            if (!pair_reported(h->node, node))
                f.what = 1;
        } else if (!has_edge(h->node, node)) {
            unsigned n = find_path(node, h->node, f.path, KEEL__ARRAY_LEN(f.path));
            if (n > 0 && !cycle_harmless(f.path, n, !h->mode.shared, !shared)) {
                f.npath = n;
                if (!pair_reported(h->node, node))
                    f.what = 2;
            } else {
                edge_add(h, node, shared, site, stress_edges, &bt, &edges_full);
            }
        } else {
            /* known order; a lock now held or taken exclusively where it was shared
             * before can turn a harmless reader cycle into a deadlock: search again */
            edge_info *e = edge_find(h->node, node);
            bool worse =
                e != NULL && ((!e->from_excl && !h->mode.shared) || (!e->to_excl && !shared));
            if (e != NULL) {
                e->from_excl = e->from_excl || !h->mode.shared;
                e->to_excl = e->to_excl || !shared;
            }
            if (worse) {
                unsigned n = find_path(node, h->node, f.path, KEEL__ARRAY_LEN(f.path));
                if (n > 0 && !cycle_harmless(f.path, n, !h->mode.shared, !shared) &&
                    !pair_reported(h->node, node)) {
                    f.npath = n;
                    f.what = 2;
                }
            }
        }
        if (f.what != 0 && nfound < KEEL__ARRAY_LEN(found))
            found[nfound++] = f;
    }
    bool cached = !stress_chains && chain_add(key);
    if (!cached && !chains_full_reported)
        chains_full = chains_full_reported = true;
    graph_leave(&sigs);

    if (edges_full)
        (void)KEEL__REPORT_AT_CALLER(
            KEEL_REPORT_LIMIT, "more than %u lock-order edges: sites of new edges are not recorded",
            MAX_EDGES);
    if (chains_full)
        (void)KEEL__REPORT_AT_CALLER(
            KEEL_REPORT_LIMIT,
            "lock chain cache full: some lock sequences are checked on every acquisition");
    for (unsigned k = 0; k < nfound; k++) {
        const finding *f = &found[k];
        const keel__held *h = f->held;
        const char *name = keel__dep_name(d);
        const char *hname = keel__dep_name(keel__held_dep(h));
        char msg[384];
        keel_report *r;
        switch (f->what) {
        case 1:
            (void)snprintf(msg, sizeof(msg),
                           "rank violation: '%s' (rank %d) acquired while holding '%s' (rank %d)",
                           name, d->rank, hname, keel__held_dep(h)->rank);
            r = begin(KEEL_REPORT_LOCK_ORDER, d, site, msg);
            keel_report_add_str(r, "held", hname);
            keel_report_add_int(r, "held_rank", keel__held_dep(h)->rank);
            keel_report_add_text(
                r, "locks must be taken in increasing rank: '%s' (%d) before '%s' (%d)", name,
                d->rank, hname, keel__held_dep(h)->rank);
            break;
        case 2:
            (void)snprintf(msg, sizeof(msg),
                           "lock order cycle: '%s' acquired while holding '%s', but the reverse "
                           "order was established earlier",
                           name, hname);
            r = begin(KEEL_REPORT_LOCK_ORDER, d, site, msg);
            keel_report_add_str(r, "held", hname);
            keel_report_add_uint(r, "cycle_length", f->npath + 1);
            keel_report_add_text(
                r, "the cycle (%u locks), each edge where it was first seen:", f->npath);
            graph_enter(&sigs); /* (the function's own, free again here) */
            for (unsigned i = 0; i + 1 < f->npath; i++) {
                const edge_info *e = edge_find(f->path[i], f->path[i + 1]);
                if (e != NULL)
                    add_edge_text(r, e);
            }
            graph_leave(&sigs);
            keel_report_add_text(r, "  '%s' -> '%s': now, at %s:%d (holding '%s' since %s:%d)",
                                 hname, name, site->file, site->line, hname, h->site->file,
                                 h->site->line);
            break;
        case 3:
            (void)snprintf(
                msg, sizeof(msg),
                "two locks of class '%s' held at once ('%s' held, taking another): annotate "
                "a documented nesting with keel_mutex_lock_nested()",
                name, hname);
            r = begin(KEEL_REPORT_LOCK_ORDER, d, site, msg);
            break;
        default:
            r = begin(KEEL_REPORT_LOCK_ORDER, d, site, "unknown lock finding");
            break;
        }
        add_held(r, t);
        (void)keel_report_emit(r);
    }
}

const void *(*keel__dep_order_key)(const void *lock);

/* The address KEEL_NEST_BY_ADDRESS orders a lock by. */
static const char *order_key(const void *lock)
{
    const void *(*key)(const void *) = keel__dep_order_key;
    return (const char *)(key != NULL ? key(lock) : lock);
}

void keel__dep_address_order(keel__lock_thread *t, keel_lockdep *d, const void *lock, unsigned node,
                             const keel__lock_site *site)
{
    for (unsigned i = 0; i < t->n; i++) {
        const keel__held *h = &t->h[i];
        if (h->node != node || order_key(lock) > order_key(h->lock))
            continue;
        char msg[256];
        (void)snprintf(msg, sizeof(msg),
                       "address order violated: '%s' at %p taken while holding one at %p "
                       "(locks of one class must be taken in increasing addresses)",
                       keel__dep_name(d), (const void *)order_key(lock),
                       (const void *)order_key(h->lock));
        keel_report *r = begin(KEEL_REPORT_LOCK_ORDER, d, site, msg);
        add_held(r, t);
        (void)keel_report_emit(r);
        return;
    }
}

/* ---- watchdog hook and the graph as JSON -------------------------------------------------------------- */

/*
 * A thread's held locks, described for the watchdog: called on the thread itself (the backtrace
 * signal) or while the thread is stopped (ptrace).  No locks, no malloc.
 */
void keel__lock_describe_held(const void *state, char *buf, size_t size);
void keel__lock_describe_held(const void *state, char *buf, size_t size)
{
    const keel__lock_thread *t = (const keel__lock_thread *)state;
    size_t pos = 0;
    unsigned n = t != NULL ? __atomic_load_n(&t->n, __ATOMIC_ACQUIRE) : 0;
    if (n == 0) {
        keel__buf_printf(buf, size, &pos, "no keel locks held");
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        const keel__held *h = &t->h[i];
        keel__buf_printf(buf, size, &pos, "%s'%s' (%s, rank %d) acquired at %s:%d%s",
                         i > 0 ? "; " : "", keel__dep_name(keel__held_dep(h)),
                         kind_names[h->mode.kind], keel__held_dep(h)->rank, h->site->file,
                         h->site->line,
                         h->mode.waiting ? " (released: waiting on a condition)" : "");
    }
}

void *keel__lock_state_self(void)
{
    keel__lock_thread *t = keel__lock_tls;
    return t != &keel__lock_none ? t : NULL;
}

unsigned keel__lock_sample_held(const void *state, keel__lock_sample *out, unsigned max)
{
    KEEL_ASSERT(state != NULL && out != NULL);
    const keel__lock_thread *t = (const keel__lock_thread *)state;
    unsigned n = __atomic_load_n(&t->n, __ATOMIC_ACQUIRE);
    if (n > KEEL_LOCK_MAX_HELD)
        n = KEEL_LOCK_MAX_HELD;
    unsigned k = 0;
    for (unsigned i = 0; i < n && k < max; i++) {
        const keel__held *h = &t->h[i];
        unsigned long long seq = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
        keel__held nm;
        nm.nm = __atomic_load_n(&h->nm, __ATOMIC_RELAXED);
        unsigned node = nm.node;
        const void *lock = __atomic_load_n(&h->lock, __ATOMIC_RELAXED);
        if (node == KEEL__CLS_NONE || node / KEEL__NEST_LEVELS >= MAX_CLASSES || seq == 0)
            continue;
        unsigned cls = node / KEEL__NEST_LEVELS;
        out[k].seq = seq;
        out[k].lock = lock;
        out[k].cls = cls;
        out[k].budget_ns = __atomic_load_n(&classes[cls].budget_ns, __ATOMIC_RELAXED);
        k++;
    }
    return k;
}

/* On the holder (the watchdog's signal) or while it is stopped (ptrace): no locks, no malloc. */
bool keel__lock_holds(const void *state, unsigned long long seq, const void *lock,
                      const keel__lock_site **site)
{
    const keel__lock_thread *t = (const keel__lock_thread *)state;
    if (t == NULL)
        return false;
    for (unsigned i = 0; i < t->n && i < KEEL_LOCK_MAX_HELD; i++)
        if (t->h[i].seq == seq && t->h[i].lock == lock) {
            *site = t->h[i].site;
            return true;
        }
    return false;
}

void keel__lock_class_info(unsigned cls, char *name, size_t size, const char **kind, int *rank)
{
    KEEL_ASSERT(name != NULL && kind != NULL && rank != NULL);
    sigset_t sigs;
    graph_enter(&sigs);
    if (cls < nclasses) {
        (void)snprintf(name, size, "%s", classes[cls].name);
        *kind = kind_names[classes[cls].kind];
        *rank = classes[cls].rank;
    } else {
        (void)snprintf(name, size, "?");
        *kind = "?";
        *rank = 0;
    }
    graph_leave(&sigs);
}

/* The graph as DOT (snprintf semantics): a node per class, an edge per learned order. */
size_t keel__lock_graph_dot(char *buf, size_t size)
{
    size_t pos = 0;
    sigset_t sigs;
    graph_enter(&sigs);
    keel__buf_printf(buf, size, &pos, "digraph keel_lock_order {\n    node [shape=box];\n");
    for (unsigned i = 0; i < nclasses; i++) {
        keel__buf_printf(buf, size, &pos, "    ");
        keel__buf_json_str(buf, size, &pos, classes[i].name);
        keel__buf_printf(buf, size, &pos, " [label=");
        char label[160];
        (void)snprintf(label, sizeof(label), "%.63s\n%s", classes[i].name,
                       kind_names[classes[i].kind]);
        keel__buf_json_str(buf, size, &pos, label);
        keel__buf_printf(buf, size, &pos, "];\n");
    }
    for (unsigned i = 0; i < nedges; i++) {
        const edge_info *e = &edges[i];
        char label[320];
        (void)snprintf(label, sizeof(label), "%s:%d", e->file, e->line);
        keel__buf_printf(buf, size, &pos, "    ");
        keel__buf_json_str(buf, size, &pos, node_class(e->from)->name);
        keel__buf_printf(buf, size, &pos, " -> ");
        keel__buf_json_str(buf, size, &pos, node_class(e->to)->name);
        keel__buf_printf(buf, size, &pos, " [label=");
        keel__buf_json_str(buf, size, &pos, label);
        keel__buf_printf(buf, size, &pos, "];\n");
    }
    keel__buf_printf(buf, size, &pos, "}\n");
    graph_leave(&sigs);
    return pos;
}

/* Around fork (a preload's handlers): the graph is never left locked in the child. */
void keel__lock_fork(int phase)
{
    keel__fork_mutex(&graph_lock, phase);
}

size_t keel_lock_graph_json(char *buf, size_t size)
{
    keel__lazy_init();
    size_t pos = 0;
    sigset_t sigs;
    graph_enter(&sigs);
    keel__buf_printf(buf, size, &pos, "{\"classes\":[");
    for (unsigned i = 0; i < nclasses; i++) {
        keel__buf_printf(buf, size, &pos, "%s{\"name\":", i > 0 ? "," : "");
        keel__buf_json_str(buf, size, &pos, classes[i].name);
        keel__buf_printf(buf, size, &pos, ",\"rank\":%d,\"kind\":\"%s\"}", classes[i].rank,
                         kind_names[classes[i].kind]);
    }
    keel__buf_printf(buf, size, &pos, "],\"edges\":[");
    for (unsigned i = 0; i < nedges; i++) {
        const edge_info *e = &edges[i];
        keel__buf_printf(buf, size, &pos, "%s{\"from\":", i > 0 ? "," : "");
        keel__buf_json_str(buf, size, &pos, node_class(e->from)->name);
        keel__buf_printf(buf, size, &pos, ",\"to\":");
        keel__buf_json_str(buf, size, &pos, node_class(e->to)->name);
        keel__buf_printf(buf, size, &pos, ",\"file\":");
        keel__buf_json_str(buf, size, &pos, e->file);
        keel__buf_printf(buf, size, &pos, ",\"line\":%d}", e->line);
    }
    keel__buf_printf(buf, size, &pos, "]}");
    graph_leave(&sigs);
    return pos;
}

#endif /* KEEL_DEVEL */
