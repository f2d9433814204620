/*
 * watchdog.c - keel threads, budgeted sections, heartbeats, and the watchdog
 * thread that samples them.
 *
 * Each thread owns one record in a fixed table.  Entering a section writes the
 * section's descriptor and a new sequence number into the thread's stack of
 * open sections (release stores, no clock, no lock).  The watchdog thread wakes
 * every tick, and for each open section compares the sequence number with the
 * one it saw last time: unchanged means the same section instance is still
 * running, and its elapsed time is measured on the watchdog's clock.
 *
 * Lock hold budgets work the same way on the lock checker's held stack: every
 * held lock carries its thread's acquisition number, and the watchdog tracks
 * (lock, number) pairs of budgeted classes from tick to tick (sample_locks).
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    MAX_THREADS = 512,
    MAX_DEPTH = 16,
    BT_FRAMES = 32,
    MAX_MODULES = 64,
    NAME_SIZE = 32,
    LOCKS_SIZE = 512,
    MAX_WATCHED_HOLDS = 8 /* budgeted locks held at once by one thread that are watched */
};

enum { ENTRY_OVERRUN = 1u };
#define REP_ENDED (1ul << (sizeof(unsigned long) * 8 - 1))

/* How the backtrace of a stuck thread is taken (watchdog.stacks). */
typedef enum stack_mode { STACKS_PTRACE, STACKS_SIGNAL, STACKS_NONE } stack_mode;
static const char *const stack_mode_names[] = {"ptrace", "signal", "none"};

typedef struct entry {
    const keel_section_desc *desc; /* atomic */
    unsigned long seq;             /* atomic; written last on enter */
    unsigned flags;                /* atomic; ENTRY_OVERRUN set by the watchdog */
    unsigned long long start_ns;   /* atomic; the watchdog's estimate, once overrun */
} entry;

/* A budgeted lock hold the watchdog has seen (the watchdog's own view). */
typedef struct held_watch {
    unsigned long long seq; /* the holder's acquisition number: unique per thread */
    const void *lock;
    unsigned long long since;    /* the tick before it was first seen */
    unsigned long long last;     /* the tick it was last seen */
    unsigned long long budget;   /* scaled, once reported */
    const keel__lock_site *site; /* where it was acquired (told by the holder when reported) */
    unsigned cls;
    unsigned seen; /* consecutive samples it was in */
    bool reported;
    bool dismissed; /* the holder had released it when asked: never reported */
} held_watch;

typedef struct thread_rec {
    /*
     * `lock` is held while the record is filled or emptied, and by the
     * watchdog while it samples the record; never on the section fast path.
     */
    pthread_mutex_t lock;
    pthread_t pt;
    long tid;
    /* written by the owning thread only */
    unsigned long seq_counter;
    unsigned long long hb_period_ns; /* atomic */
    unsigned long hb_count;          /* atomic */
    void *hb_pc; /* atomic: the return address of its last heartbeat (or promise of one) */
    entry stack[MAX_DEPTH];
    /* the watchdog's own view (watchdog thread only, under lock) */
    unsigned long wd_seq[MAX_DEPTH];
    unsigned long long wd_since[MAX_DEPTH];
    unsigned long wd_hb_last;
    unsigned long long wd_hb_since;
    held_watch wd_holds[MAX_WATCHED_HOLDS];
    void *lock_state; /* the thread's lock-checker state (devel), under lock */
    /* statistics */
    unsigned long long overruns;  /* atomic */
    unsigned long long hb_misses; /* atomic */
    /* the stuck thread's backtrace: taken by keel-stack (ptrace) or the thread's signal handler */
    void *bt[BT_FRAMES];
    unsigned long long bt_stopped_us; /* ptrace: how long the thread was stopped */
    /*
     * The section instance whose "still running" report the watchdog is making (0: none); the
     * thread ORs REP_ENDED in when that instance ends meanwhile, and leaves the "ended" report,
     * with its end time in rep_end_ns, to the watchdog: reports come in order.
     */
    unsigned long rep_seq;         /* atomic */
    unsigned long long rep_end_ns; /* atomic */
    /* a lock hold the watchdog asks about with the backtrace (seq 0: none) */
    unsigned long long bt_check_seq;
    const void *bt_check_lock;
    const keel__lock_site *bt_check_site;
    int used;             /* atomic: 0 free, 1 registering, 2 live */
    unsigned incarnation; /* bumped (under lock) each time the slot is taken */
    unsigned wd_incarnation;
    unsigned depth; /* atomic */
    clockid_t cpu_clock;
    int bt_state; /* atomic: 0 idle, 1 requested, 2 ready */
    int bt_n;
    unsigned wd_nholds;
    bool bt_check_held;
    bool wd_hb_reported;
    bool bt_stale;    /* ptrace: the section reported had ended when the thread was stopped */
    char bt_why[192]; /* no backtrace: why (the watchdog's) */
    char name[NAME_SIZE];
    char module[NAME_SIZE];
    char locks[LOCKS_SIZE];
} thread_rec;

typedef struct module_total {
    char name[NAME_SIZE];
    unsigned long long cpu_ns;
    unsigned long long overruns;
} module_total;

static thread_rec threads[MAX_THREADS];
static unsigned threads_high; /* atomic: slots [0, high) may be used */
static KEEL__TLS thread_rec *tls_rec __attribute__((tls_model("initial-exec")));
static pthread_key_t exit_key;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static module_total modules[MAX_MODULES];
static size_t nmodules;

/* The watchdog thread. */
static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static bool wd_running;
static bool wd_stopping;
static pthread_t wd_thread;
static unsigned long long wd_asked_ns; /* when the watchdog was started: no section began before */
static unsigned long long total_overruns;
static int wd_signal; /* installed by the watchdog thread the first time watchdog.stacks=signal */

/* Lock ranking (issue 3) may describe the locks a thread holds; optional. */
extern void keel__lock_describe_held(const void *state, char *buf, size_t size)
    __attribute__((weak));

static unsigned long long now_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static unsigned long long thread_cpu_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return 0;
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* ---- per-module totals ------------------------------------------------------------- */

static void add_module_totals(const char *module, unsigned long long cpu,
                              unsigned long long overruns)
{
    KEEL_VERIFY(pthread_mutex_lock(&modules_lock) == 0);
    size_t i = 0;
    while (i < nmodules && strcmp(modules[i].name, module) != 0)
        i++;
    if (i == nmodules && nmodules < MAX_MODULES) {
        (void)snprintf(modules[i].name, sizeof(modules[i].name), "%s", module);
        nmodules++;
    }
    if (i < nmodules) {
        modules[i].cpu_ns += cpu;
        modules[i].overruns += overruns;
    }
    KEEL_VERIFY(pthread_mutex_unlock(&modules_lock) == 0);
}

/* ---- thread records ------------------------------------------------------------------ */

static void on_thread_exit(void *arg)
{
    (void)arg;
    keel_thread_unregister();
}

static void init_table(void)
{
    KEEL_VERIFY(pthread_key_create(&exit_key, on_thread_exit) == 0);
    for (unsigned i = 0; i < MAX_THREADS; i++)
        KEEL_VERIFY(pthread_mutex_init(&threads[i].lock, NULL) == 0);
}

static void start_watchdog_lazily(void);
static void report_hold_end(const thread_rec *t, const held_watch *w, unsigned long long now);

/* The OS keeps 15 characters of a thread name. */
static void set_os_name(const char *name)
{
    char os_name[16];
    size_t n = strnlen(name, sizeof(os_name) - 1);
    memcpy(os_name, name, n);
    os_name[n] = '\0';
    (void)pthread_setname_np(pthread_self(), os_name);
}

static keel_status register_self(const char *name, const char *module)
{
    KEEL_ASSERT(tls_rec == NULL);
    (void)pthread_once(&table_once, init_table);
    for (unsigned i = 0; i < MAX_THREADS; i++) {
        int expected = 0;
        if (!__atomic_compare_exchange_n(&threads[i].used, &expected, 1, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_RELAXED))
            continue;
        thread_rec *t = &threads[i];
        KEEL_VERIFY(pthread_mutex_lock(&t->lock) == 0);
        t->incarnation++;
        t->pt = pthread_self();
        t->tid = keel__thread_id();
        if (pthread_getcpuclockid(t->pt, &t->cpu_clock) != 0)
            t->cpu_clock = CLOCK_THREAD_CPUTIME_ID;
        if (name != NULL && name[0] != '\0')
            (void)snprintf(t->name, sizeof(t->name), "%s", name);
        else
            keel__thread_name(t->name, sizeof(t->name));
        const char *mod = module != NULL ? module : keel__tls_module;
        (void)snprintf(t->module, sizeof(t->module), "%s", mod != NULL ? mod : "");
        __atomic_store_n(&t->depth, 0u, __ATOMIC_RELAXED);
        __atomic_store_n(&t->hb_period_ns, 0ull, __ATOMIC_RELAXED);
        __atomic_store_n(&t->overruns, 0ull, __ATOMIC_RELAXED);
        __atomic_store_n(&t->hb_misses, 0ull, __ATOMIC_RELAXED);
        __atomic_store_n(&t->bt_state, 0, __ATOMIC_RELAXED);
        t->lock_state = keel__lock_state_self();
        unsigned high = __atomic_load_n(&threads_high, __ATOMIC_RELAXED);
        while (high < i + 1 && !__atomic_compare_exchange_n(&threads_high, &high, i + 1, false,
                                                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        }
        __atomic_store_n(&t->used, 2, __ATOMIC_RELEASE);
        KEEL_VERIFY(pthread_mutex_unlock(&t->lock) == 0);
        tls_rec = t;
        (void)pthread_setspecific(exit_key, t);
        start_watchdog_lazily();
        return KEEL_OK;
    }
    return keel_status_with_int(
        KEEL_ERR(KEEL_E_FULL, "cannot register thread '%s': %d threads already registered",
                 name != NULL ? name : "?", (int)MAX_THREADS),
        "max_threads", MAX_THREADS);
}

keel_status keel_thread_register(const char *name, const char *module)
{
    keel__lazy_init();
    if (tls_rec != NULL)
        return KEEL_ERR(KEEL_E_STATE, "thread '%s' is already registered", tls_rec->name);
    if (name != NULL && name[0] != '\0')
        set_os_name(name);
    return register_self(name, module);
}

void keel_thread_unregister(void)
{
    thread_rec *t = tls_rec;
    if (t == NULL)
        return;
    unsigned long long cpu = thread_cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    KEEL_VERIFY(pthread_mutex_lock(&t->lock) == 0);
    add_module_totals(t->module[0] != '\0' ? t->module : "(none)", cpu,
                      __atomic_load_n(&t->overruns, __ATOMIC_RELAXED));
    __atomic_store_n(&t->depth, 0u, __ATOMIC_RELEASE);
    __atomic_store_n(&t->hb_period_ns, 0ull, __ATOMIC_RELEASE);
    /* budgeted holds already reported end with the thread: the watchdog stops looking */
    for (unsigned i = 0; i < t->wd_nholds; i++)
        if (t->wd_holds[i].reported)
            report_hold_end(t, &t->wd_holds[i], now_ns());
    t->wd_nholds = 0;
    t->lock_state = NULL;
    tls_rec = NULL;
    (void)pthread_setspecific(exit_key, NULL);
    __atomic_store_n(&t->used, 0, __ATOMIC_RELEASE);
    KEEL_VERIFY(pthread_mutex_unlock(&t->lock) == 0);
}

/* The first section or heartbeat of a thread keel did not create. */
__attribute__((noinline, cold)) static thread_rec *register_unnamed(void)
{
    keel__lazy_init(); /* before watchdog.enabled decides whether the watchdog starts */
    if (tls_rec != NULL)
        return tls_rec; /* a report handler of the options report opened a section */
    keel_status s = register_self(NULL, NULL);
    if (!keel_ok(s)) {
        keel_status_ignore(s,
                           "sections of unregistered threads go unwatched when the table is full");
        return NULL;
    }
    return tls_rec;
}

static thread_rec *self_rec(void)
{
    thread_rec *t = tls_rec;
    if (KEEL_LIKELY(t != NULL))
        return t;
    return register_unnamed();
}

void keel__watchdog_lock_state(void *state)
{
    thread_rec *t = tls_rec;
    if (t == NULL) {
        /* with budgets set, a thread's first keel lock gets it watched */
        if (state != NULL && KEEL_WATCHDOG_ON && keel__lock_budgets_any())
            (void)register_unnamed(); /* it picks the state up */
        return;
    }
    KEEL_VERIFY(pthread_mutex_lock(&t->lock) == 0);
    t->lock_state = state;
    KEEL_VERIFY(pthread_mutex_unlock(&t->lock) == 0);
}

/* ---- keel threads ------------------------------------------------------------------------- */

struct keel_thread {
    pthread_t pt;
    void *(*fn)(void *);
    void *arg;
    char name[NAME_SIZE];
    char module[NAME_SIZE];
    bool has_module;
};

static void *thread_main(void *p)
{
    keel_thread *t = (keel_thread *)p;
    set_os_name(t->name);
    keel__tls_module = t->has_module ? t->module : NULL;
    keel_status s = register_self(t->name, t->has_module ? t->module : "");
    if (!keel_ok(s))
        keel_status_ignore(s, "the thread runs unwatched when the table is full");
    return t->fn(t->arg);
}

keel_status keel_thread_create(keel_thread **out, const char *name, const char *module,
                               void *(*fn)(void *), void *arg)
{
    if (out == NULL || fn == NULL || name == NULL || name[0] == '\0')
        return KEEL_ERR(KEEL_E_INVAL,
                        "keel_thread_create needs an out pointer, a name and a function");
    keel__lazy_init();
    keel_thread *t = (keel_thread *)calloc(1, sizeof(*t));
    if (t == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory creating thread '%s'", name);
    t->fn = fn;
    t->arg = arg;
    (void)snprintf(t->name, sizeof(t->name), "%s", name);
    const char *mod = module != NULL ? module : keel__tls_module;
    if (mod != NULL) {
        (void)snprintf(t->module, sizeof(t->module), "%s", mod);
        t->has_module = true;
    }
    int rc = pthread_create(&t->pt, NULL, thread_main, t);
    if (rc != 0) {
        free(t);
        return keel_status_with_str(KEEL_ERR_SYS(rc, "cannot create thread '%s'", name), "thread",
                                    name);
    }
    *out = t;
    return KEEL_OK;
}

keel_status keel_thread_join(keel_thread *t, void **result)
{
    if (t == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_thread_join: no thread");
    void *ret = NULL;
    int rc = pthread_join(t->pt, &ret);
    if (rc != 0)
        return KEEL_ERR_SYS(rc, "cannot join thread '%s'", t->name);
    if (result != NULL)
        *result = ret;
    free(t);
    return KEEL_OK;
}

/* ---- sections ------------------------------------------------------------------------------- */

/* A budget times watchdog.scale (percent; 0: no budget holds), as every budget is judged. */
static unsigned long long scaled(unsigned long long budget)
{
    long long scale = keel__opt_int(KEEL__OPT_WATCHDOG_SCALE);
    if (scale <= 0)
        return 0;
    return budget / 100ull * (unsigned long long)scale +
           budget % 100ull * (unsigned long long)scale / 100ull;
}

/*
 * The section instance that overran has ended at `end`.  Its start is the watchdog's estimate
 * (the tick before the instance was first seen): the total is at least the real duration.
 */
static void report_end(const thread_rec *t, const keel_section_desc *d, unsigned long long start,
                       unsigned long long end)
{
    unsigned long long total = end - start, budget = scaled(d->budget_ns); /* as it was judged */
    keel_report *r = keel_report_begin(KEEL_REPORT_WATCHDOG, d->file, d->line, d->func,
                                       "section '%s' ended after %.1f ms (budget %.1f ms)", d->name,
                                       (double)total / 1e6, (double)budget / 1e6);
    keel_report_add_str(r, "section", d->name);
    keel_report_add_str(r, "thread", t->name);
    keel_report_add_uint(r, "total_ms", total / 1000000ull);
    keel_report_add_uint(r, "budget_ms", budget / 1000000ull);
    keel_report_no_backtrace(r);
    (void)keel_report_emit(r);
}

/* Leaving a section that overran: report its end, or leave that to the watchdog (rep_seq). */
__attribute__((noinline, cold)) static void section_overran(thread_rec *t, const entry *e,
                                                            const keel_section_desc *d)
{
    unsigned long long end = now_ns();
    unsigned long seq = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&t->rep_end_ns, end, __ATOMIC_RELAXED);
    unsigned long expected = seq;
    if (__atomic_compare_exchange_n(&t->rep_seq, &expected, seq | REP_ENDED, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return; /* the watchdog is still reporting it running: it reports the end after */
    report_end(t, d, __atomic_load_n(&e->start_ns, __ATOMIC_ACQUIRE), end);
}

void keel_section_enter(const keel_section_desc *d)
{
    KEEL_ASSERT(d != NULL);
    thread_rec *t = self_rec();
    if (KEEL_UNLIKELY(t == NULL))
        return;
    unsigned depth = __atomic_load_n(&t->depth, __ATOMIC_RELAXED);
    if (KEEL_LIKELY(depth < MAX_DEPTH)) {
        entry *e = &t->stack[depth];
        __atomic_store_n(&e->desc, d, __ATOMIC_RELAXED);
        __atomic_store_n(&e->flags, 0u, __ATOMIC_RELAXED);
        __atomic_store_n(&e->seq, ++t->seq_counter, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&t->depth, depth + 1, __ATOMIC_RELEASE);
}

void keel_section_leave(const keel_section_desc *d)
{
    thread_rec *t = tls_rec;
    unsigned depth = t != NULL ? __atomic_load_n(&t->depth, __ATOMIC_RELAXED) : 0;
    KEEL_ASSERTF(depth > 0, "leaving section '%s' that was never entered",
                 d != NULL ? d->name : "?");
    if (KEEL_UNLIKELY(depth == 0))
        return;
    if (KEEL_LIKELY(depth <= MAX_DEPTH)) {
        entry *e = &t->stack[depth - 1];
        KEEL_ASSERTF(__atomic_load_n(&e->desc, __ATOMIC_RELAXED) == d,
                     "leaving section '%s' but the innermost open section is '%s'",
                     d != NULL ? d->name : "?", e->desc != NULL ? e->desc->name : "?");
        if (KEEL_UNLIKELY(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & ENTRY_OVERRUN))
            section_overran(t, e, __atomic_load_n(&e->desc, __ATOMIC_RELAXED));
        /* nothing else: the entry is dead once depth drops below it */
    }
    __atomic_store_n(&t->depth, depth - 1, __ATOMIC_RELEASE);
}

keel_status keel_section_run(const keel_section_desc *d, keel_status (*fn)(void *), void *arg)
{
    if (d == NULL || fn == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_section_run needs a section and a function");
    keel_section_enter(d);
    keel_status s = fn(arg);
    keel_section_leave(d);
    return s;
}

void keel_heartbeat_expect(unsigned long long period_ms)
{
    thread_rec *t = self_rec();
    if (t == NULL)
        return;
    __atomic_store_n(&t->hb_pc, __builtin_return_address(0), __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->hb_count, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&t->hb_period_ns, period_ms * 1000000ull, __ATOMIC_RELEASE);
}

void keel_heartbeat(void)
{
    thread_rec *t = tls_rec;
    if (KEEL_LIKELY(t != NULL)) {
        /* where it was: the report's site when the thread's backtrace cannot be taken */
        __atomic_store_n(&t->hb_pc, __builtin_return_address(0), __ATOMIC_RELAXED);
        __atomic_store_n(&t->hb_count, __atomic_load_n(&t->hb_count, __ATOMIC_RELAXED) + 1,
                         __ATOMIC_RELEASE);
    }
}

/* ---- capturing another thread's backtrace -------------------------------------------------- */

static void backtrace_signal(int sig, siginfo_t *info, void *uctx)
{
    (void)sig;
    (void)info;
    (void)uctx;
    int saved = errno;
    thread_rec *t = tls_rec;
    if (t != NULL && __atomic_load_n(&t->bt_state, __ATOMIC_ACQUIRE) == 1) {
        /* skip this handler and the signal trampoline: the interrupted code comes first */
        t->bt_n = keel_backtrace(t->bt, BT_FRAMES, 2);
        t->locks[0] = '\0';
        if (keel__lock_describe_held != NULL)
            keel__lock_describe_held(t->lock_state, t->locks, sizeof(t->locks));
        t->bt_check_held =
            t->bt_check_seq != 0 &&
            keel__lock_holds(t->lock_state, t->bt_check_seq, t->bt_check_lock, &t->bt_check_site);
        __atomic_store_n(&t->bt_state, 2, __ATOMIC_RELEASE);
    }
    errno = saved;
}

/* Ask thread t for its backtrace with the signal; wait up to 200 ms.  True when it answered. */
static bool capture_by_signal(thread_rec *t)
{
    if (wd_signal == 0) { /* only now: without this mode the program's SIGRTMIN+7 is its own */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = backtrace_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        (void)sigemptyset(&sa.sa_mask);
        if (sigaction(SIGRTMIN + 7, &sa, NULL) != 0) {
            (void)snprintf(t->bt_why, sizeof(t->bt_why),
                           "cannot install the backtrace signal handler: %s", strerror(errno));
            return false;
        }
        wd_signal = SIGRTMIN + 7;
    }
    __atomic_store_n(&t->bt_state, 1, __ATOMIC_RELEASE);
    if (pthread_kill(t->pt, wd_signal) != 0) {
        __atomic_store_n(&t->bt_state, 0, __ATOMIC_RELEASE);
        (void)snprintf(t->bt_why, sizeof(t->bt_why), "the backtrace signal could not be sent");
        return false;
    }
    for (int i = 0; i < 200; i++) {
        if (__atomic_load_n(&t->bt_state, __ATOMIC_ACQUIRE) == 2)
            return true;
        struct timespec ms = {0, 1000000};
        (void)nanosleep(&ms, NULL);
    }
    /* no answer: a handler that comes late finds nothing requested */
    int expected = 1;
    if (__atomic_compare_exchange_n(&t->bt_state, &expected, 0, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        (void)snprintf(t->bt_why, sizeof(t->bt_why),
                       "the stuck thread did not answer the backtrace signal");
        return false;
    }
    return __atomic_load_n(&t->bt_state, __ATOMIC_ACQUIRE) == 2;
}

/* While keel-stack holds thread t stopped: what its signal handler would have read. */
static void read_stopped(void *arg)
{
    thread_rec *t = (thread_rec *)arg;
    t->locks[0] = '\0';
    if (keel__lock_describe_held != NULL)
        keel__lock_describe_held(t->lock_state, t->locks, sizeof(t->locks));
    t->bt_check_held =
        t->bt_check_seq != 0 &&
        keel__lock_holds(t->lock_state, t->bt_check_seq, t->bt_check_lock, &t->bt_check_site);
    /* the section being reported ended before the thread was stopped: its stack is elsewhere */
    t->bt_stale = (__atomic_load_n(&t->rep_seq, __ATOMIC_ACQUIRE) & REP_ENDED) != 0;
}

static bool capture_by_ptrace(thread_rec *t)
{
    t->bt_stopped_us = 0;
    keel_status s =
        keel__stack_ptrace(t->tid, t->bt, BT_FRAMES, &t->bt_n, read_stopped, t, &t->bt_stopped_us);
    if (keel_ok(s))
        return true;
    (void)snprintf(t->bt_why, sizeof(t->bt_why), "%s", keel_status_message(s));
    keel_status_free(s);
    return false;
}

static stack_mode current_stack_mode(void)
{
    const char *v = keel__opt_str(KEEL__OPT_WATCHDOG_STACKS);
    if (strcmp(v, "signal") == 0)
        return STACKS_SIGNAL;
    if (strcmp(v, "none") == 0)
        return STACKS_NONE;
    return STACKS_PTRACE;
}

/* Take thread t's backtrace (and its locks) the way watchdog.stacks says.  True when taken. */
static bool capture_backtrace(thread_rec *t, stack_mode mode)
{
    t->bt_why[0] = '\0';
    t->bt_n = 0;
    t->bt_stale = false;
    switch (mode) {
    case STACKS_PTRACE:
        return capture_by_ptrace(t);
    case STACKS_SIGNAL:
        return capture_by_signal(t);
    case STACKS_NONE:
        (void)snprintf(t->bt_why, sizeof(t->bt_why), "backtraces are off (watchdog.stacks=none)");
        return false;
    }
    return false;
}

/*
 * An overrun's figures as shown: the elapsed time rounded up and the budget rounded down (to 0.1
 * ms in the text, 1 ms in the JSON fields), so an elapsed time just past its budget never shows
 * as equal to it ("30.0 ms, over its budget of 30.0 ms").
 */
static double tenths_up(unsigned long long ns)
{
    unsigned long long tenths = (ns + 99999ull) / 100000ull; /* rounded up, on purpose */
    return (double)tenths / 10.0;
}

static double tenths_down(unsigned long long ns)
{
    unsigned long long tenths = ns / 100000ull; /* rounded down, on purpose */
    return (double)tenths / 10.0;
}

/* Thread, times, and the stuck thread's backtrace and locks (from capture_backtrace); emits r. */
static void add_stuck_context(keel_report *r, thread_rec *t, stack_mode mode, bool have_bt,
                              unsigned long long elapsed, unsigned long long budget)
{
    keel_report_add_str(r, "thread", t->name);
    keel_report_add_int(r, "tid", t->tid);
    if (t->module[0] != '\0')
        keel_report_add_str(r, "module", t->module);
    keel_report_add_uint(r, "elapsed_ms", (elapsed + 999999ull) / 1000000ull);
    keel_report_add_uint(r, "budget_ms", budget / 1000000ull);
    keel_report_add_str(r, "stack", have_bt ? stack_mode_names[mode] : "none");
    if (have_bt && mode == STACKS_PTRACE) {
        keel_report_add_uint(r, "stopped_us", t->bt_stopped_us);
        keel_report_add_text(r,
                             "backtrace of the stuck thread '%s' (tid %ld) below, taken by "
                             "keel-stack with ptrace (the thread was stopped for %llu us)",
                             t->name, t->tid, t->bt_stopped_us);
    } else if (have_bt) {
        keel_report_add_text(r,
                             "backtrace of the stuck thread '%s' (tid %ld) below, taken with the "
                             "signal SIGRTMIN+7 (watchdog.stacks=signal)",
                             t->name, t->tid);
    }
    if (have_bt) {
        if (t->locks[0] != '\0')
            keel_report_add_text(r, "locks held by '%s':\n%s", t->name, t->locks);
        keel_report_set_backtrace(r, t->bt, t->bt_n);
    } else {
        keel_report_add_text(r, "no backtrace of the stuck thread '%s' (tid %ld): %s", t->name,
                             t->tid, t->bt_why);
        keel_report_no_backtrace(r);
    }
    __atomic_store_n(&t->bt_state, 0, __ATOMIC_RELEASE);
    (void)keel_report_emit(r);
}

static void report_stuck(thread_rec *t, const keel_section_desc *d, unsigned long long elapsed,
                         unsigned long long budget)
{
    stack_mode mode = current_stack_mode();
    bool have_bt = capture_backtrace(t, mode);
    if (have_bt && t->bt_stale) {
        have_bt = false;
        (void)snprintf(t->bt_why, sizeof(t->bt_why),
                       "the section ended before keel-stack stopped the thread");
    }
    keel_report *r;
    keel_frame last; /* a heartbeat's site: lives until the report is emitted, below */
    if (d != NULL) {
        r = keel_report_begin(KEEL_REPORT_WATCHDOG, d->file, d->line, d->func,
                              "section '%s' has run %.1f ms, over its budget of %.1f ms, and is "
                              "still running",
                              d->name, tenths_up(elapsed), tenths_down(budget));
        keel_report_add_str(r, "section", d->name);
    } else {
        /*
         * The site: where the thread is (its backtrace's first frame of the
         * program); without a backtrace, where its last heartbeat was made.
         */
        void *pc = __atomic_load_n(&t->hb_pc, __ATOMIC_RELAXED);
        bool at_last =
            !have_bt && pc != NULL && keel_backtrace_symbolize(pc, &last) && last.file[0] != '\0';
        r = keel_report_begin(KEEL_REPORT_WATCHDOG, at_last ? last.file : NULL,
                              at_last ? last.line : 0,
                              at_last && last.func[0] != '\0' ? last.func : NULL,
                              "thread '%s' missed its heartbeat: none for %.1f ms (period %.1f ms)",
                              t->name, tenths_up(elapsed), tenths_down(budget));
        keel_report_add_str(r, "heartbeat", "missed");
        if (at_last)
            keel_report_add_text(r, "its last heartbeat was at %s:%d in %s", last.file, last.line,
                                 last.func[0] != '\0' ? last.func : "?");
    }
    add_stuck_context(r, t, mode, have_bt, elapsed, budget);
}

/* Lock a record if it belongs to a live thread; false (and unlocked) otherwise. */
static bool lock_live(thread_rec *t)
{
    if (__atomic_load_n(&t->used, __ATOMIC_ACQUIRE) != 2)
        return false;
    KEEL_VERIFY(pthread_mutex_lock(&t->lock) == 0);
    if (__atomic_load_n(&t->used, __ATOMIC_ACQUIRE) == 2)
        return true;
    KEEL_VERIFY(pthread_mutex_unlock(&t->lock) == 0);
    return false;
}

/* ---- the watchdog loop ------------------------------------------------------------------------- */

static void sample(thread_rec *t, unsigned long long now, unsigned long long prev)
{
    if (t->wd_incarnation != t->incarnation) { /* a new thread in this slot */
        t->wd_incarnation = t->incarnation;
        memset(t->wd_seq, 0, sizeof(t->wd_seq));
        t->wd_nholds = 0;
        t->wd_hb_since = 0;
        t->wd_hb_reported = false;
    }
    unsigned depth = __atomic_load_n(&t->depth, __ATOMIC_ACQUIRE);
    if (depth > MAX_DEPTH)
        depth = MAX_DEPTH;
    for (unsigned i = 0; i < depth; i++) {
        entry *e = &t->stack[i];
        unsigned long seq = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
        const keel_section_desc *d = __atomic_load_n(&e->desc, __ATOMIC_RELAXED);
        if (seq != t->wd_seq[i]) {
            /* a new instance since the last tick: it started after `prev` */
            t->wd_seq[i] = seq;
            t->wd_since[i] = prev;
            continue;
        }
        if (d == NULL || (__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & ENTRY_OVERRUN) != 0)
            continue;
        unsigned long long budget = scaled(d->budget_ns);
        unsigned long long elapsed = now - t->wd_since[i];
        if (budget == 0 || elapsed <= budget)
            continue;
        __atomic_store_n(&e->start_ns, t->wd_since[i], __ATOMIC_RELAXED);
        /* an end while this report is made is left to us (section_overran): before the flag */
        __atomic_store_n(&t->rep_seq, seq, __ATOMIC_RELEASE);
        /* only if the same instance is still open */
        if (__atomic_load_n(&e->seq, __ATOMIC_ACQUIRE) != seq) {
            __atomic_store_n(&t->rep_seq, 0ul, __ATOMIC_RELEASE);
            continue;
        }
        __atomic_fetch_or(&e->flags, ENTRY_OVERRUN, __ATOMIC_ACQ_REL);
        __atomic_add_fetch(&t->overruns, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&total_overruns, 1, __ATOMIC_RELAXED);
        report_stuck(t, d, elapsed, budget);
        if (__atomic_exchange_n(&t->rep_seq, 0ul, __ATOMIC_ACQ_REL) == (seq | REP_ENDED))
            report_end(t, d, t->wd_since[i], __atomic_load_n(&t->rep_end_ns, __ATOMIC_RELAXED));
    }
    unsigned long long period = scaled(__atomic_load_n(&t->hb_period_ns, __ATOMIC_ACQUIRE));
    if (period == 0)
        return;
    unsigned long count = __atomic_load_n(&t->hb_count, __ATOMIC_ACQUIRE);
    if (count != t->wd_hb_last || t->wd_hb_since == 0) {
        t->wd_hb_last = count;
        t->wd_hb_since = now;
        t->wd_hb_reported = false;
    } else if (!t->wd_hb_reported && now - t->wd_hb_since > period) {
        t->wd_hb_reported = true;
        __atomic_add_fetch(&t->hb_misses, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&total_overruns, 1, __ATOMIC_RELAXED);
        report_stuck(t, NULL, now - t->wd_hb_since, period);
    }
}

/* ---- lock hold budgets ---------------------------------------------------------------------------- */

/* A budgeted hold seen in two samples and now past its budget: ask the holder, then report. */
static void report_hold(thread_rec *t, held_watch *w, unsigned long long elapsed,
                        unsigned long long budget)
{
    t->bt_check_seq = w->seq;
    t->bt_check_lock = w->lock;
    t->bt_check_held = false;
    t->bt_check_site = NULL;
    stack_mode mode = current_stack_mode();
    bool have_bt = capture_backtrace(t, mode);
    t->bt_check_seq = 0;
    bool held = have_bt && t->bt_check_held;
    if (!have_bt) { /* no answer (or no capture): a fresh sample must still show it */
        keel__lock_sample cur[KEEL_LOCK_MAX_HELD];
        unsigned n = keel__lock_sample_held(t->lock_state, cur, KEEL_LOCK_MAX_HELD);
        for (unsigned i = 0; i < n && !held; i++)
            held = cur[i].seq == w->seq && cur[i].lock == w->lock;
    }
    if (!held) { /* released in the meantime: within its budget after all */
        w->dismissed = true;
        __atomic_store_n(&t->bt_state, 0, __ATOMIC_RELEASE);
        return;
    }
    w->reported = true;
    w->budget = budget;
    w->site = have_bt ? t->bt_check_site : NULL;
    __atomic_add_fetch(&t->overruns, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&total_overruns, 1, __ATOMIC_RELAXED);
    char name[KEEL__LOCK_BUDGET_NAME];
    const char *kind = "?";
    int rank = 0;
    keel__lock_class_info(w->cls, name, sizeof(name), &kind, &rank);
    keel_report *r = keel_report_begin(
        KEEL_REPORT_WATCHDOG, w->site != NULL ? w->site->file : __FILE__,
        w->site != NULL ? w->site->line : __LINE__, w->site != NULL ? w->site->func : __func__,
        "lock '%s' has been held by thread '%s' for %.1f ms, over its budget of %.1f ms, and is "
        "still held",
        name, t->name, tenths_up(elapsed), tenths_down(budget));
    keel_report_add_str(r, "lock", name);
    keel_report_add_str(r, "lock_kind", kind);
    keel_report_add_int(r, "rank", rank);
    keel_report_add_text(r, "%s '%s' at %p, acquired at %s:%d", kind, name, w->lock,
                         w->site != NULL ? w->site->file : "?",
                         w->site != NULL ? w->site->line : 0);
    add_stuck_context(r, t, mode, have_bt, elapsed, budget);
}

static void report_hold_end(const thread_rec *t, const held_watch *w, unsigned long long now)
{
    char name[KEEL__LOCK_BUDGET_NAME];
    const char *kind = "?";
    int rank = 0;
    keel__lock_class_info(w->cls, name, sizeof(name), &kind, &rank);
    unsigned long long total = now - w->since; /* at most this long: tick resolution */
    keel_report *r = keel_report_begin(
        KEEL_REPORT_WATCHDOG, w->site != NULL ? w->site->file : __FILE__,
        w->site != NULL ? w->site->line : __LINE__, w->site != NULL ? w->site->func : __func__,
        "lock '%s' released after %.1f ms (budget %.1f ms), held by thread '%s'", name,
        (double)total / 1e6, (double)w->budget / 1e6, t->name);
    keel_report_add_str(r, "lock", name);
    keel_report_add_str(r, "lock_kind", kind);
    keel_report_add_str(r, "thread", t->name);
    keel_report_add_uint(r, "total_ms", total / 1000000ull);
    keel_report_add_uint(r, "budget_ms", w->budget / 1000000ull);
    keel_report_no_backtrace(r);
    (void)keel_report_emit(r);
}

static held_watch *find_hold(thread_rec *t, const keel__lock_sample *c)
{
    for (unsigned i = 0; i < t->wd_nholds; i++)
        if (t->wd_holds[i].seq == c->seq && t->wd_holds[i].lock == c->lock &&
            t->wd_holds[i].cls == c->cls)
            return &t->wd_holds[i];
    return NULL;
}

/*
 * Track the budgeted locks thread t holds.  A hold is one (lock, acquisition
 * number) pair; it must be in two consecutive samples before it can be
 * reported, and the holder confirms it still holds it when asked for its
 * backtrace, so a stale sample never reports a lock that was released.
 */
static void sample_locks(thread_rec *t, unsigned long long now, unsigned long long prev)
{
    if (t->lock_state == NULL && t->wd_nholds == 0)
        return;
    keel__lock_sample cur[KEEL_LOCK_MAX_HELD];
    unsigned n =
        t->lock_state != NULL ? keel__lock_sample_held(t->lock_state, cur, KEEL_LOCK_MAX_HELD) : 0;
    for (unsigned i = 0; i < n; i++) {
        held_watch *w = find_hold(t, &cur[i]);
        if (w != NULL) {
            if (w->last != now) { /* (an entry being moved may show twice) */
                w->seen++;
                w->last = now;
            }
            continue;
        }
        if (cur[i].budget_ns == 0 || t->wd_nholds >= MAX_WATCHED_HOLDS)
            continue;
        w = &t->wd_holds[t->wd_nholds++];
        memset(w, 0, sizeof(*w));
        w->seq = cur[i].seq;
        w->lock = cur[i].lock;
        w->cls = cur[i].cls;
        w->since = prev; /* acquired after the previous tick */
        w->last = now;
        w->seen = 1;
    }
    /* holds not in this sample have ended */
    unsigned kept = 0;
    for (unsigned i = 0; i < t->wd_nholds; i++) {
        held_watch *w = &t->wd_holds[i];
        if (w->last != now) {
            if (w->reported)
                report_hold_end(t, w, now);
            continue;
        }
        if (kept != i)
            t->wd_holds[kept] = *w;
        kept++;
    }
    t->wd_nholds = kept;
    for (unsigned i = 0; i < n; i++) {
        held_watch *w = find_hold(t, &cur[i]);
        if (w == NULL || w->reported || w->dismissed || w->seen < 2)
            continue;
        unsigned long long budget = scaled(cur[i].budget_ns);
        unsigned long long elapsed = now - w->since;
        if (budget != 0 && elapsed > budget)
            report_hold(t, w, elapsed, budget);
    }
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    (void)pthread_setname_np(pthread_self(), "keel-watchdog");
    KEEL_VERIFY(pthread_mutex_lock(&wd_lock) == 0);
    /* not the thread's first moment: a section entered while it was being started began later */
    unsigned long long prev = wd_asked_ns;
    while (!wd_stopping) {
        long long tick_ms = keel__opt_int(KEEL__OPT_WATCHDOG_TICK_MS);
        struct timespec until;
        (void)clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)(tick_ms % 1000) * 1000000L;
        until.tv_sec += (time_t)(tick_ms / 1000) + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        int rc = pthread_cond_clockwait(&wd_cond, &wd_lock, CLOCK_MONOTONIC, &until);
        KEEL_VERIFY(rc == 0 || rc == ETIMEDOUT);
        if (wd_stopping)
            break;
        KEEL_VERIFY(pthread_mutex_unlock(&wd_lock) == 0);
        unsigned long long now = now_ns();
        keel__lock_budgets_refresh();
        /* watchdog.scale=0 switches lock budgets off too; holds already seen wait for it */
        bool watch_locks = keel__opt_int(KEEL__OPT_WATCHDOG_SCALE) > 0;
        unsigned high = __atomic_load_n(&threads_high, __ATOMIC_ACQUIRE);
        for (unsigned i = 0; i < high; i++) {
            thread_rec *t = &threads[i];
            if (!lock_live(t))
                continue;
            if (!pthread_equal(t->pt, pthread_self())) {
                sample(t, now, prev);
                if (watch_locks)
                    sample_locks(t, now, prev);
            }
            KEEL_VERIFY(pthread_mutex_unlock(&t->lock) == 0);
        }
        prev = now;
        KEEL_VERIFY(pthread_mutex_lock(&wd_lock) == 0);
    }
    KEEL_VERIFY(pthread_mutex_unlock(&wd_lock) == 0);
    return NULL;
}

static void after_fork_child(void)
{
    /* Only the forking thread lives on in the child; the watchdog thread did not. */
    wd_running = false;
    wd_stopping = false;
    thread_rec *self = tls_rec;
    for (unsigned i = 0; i < MAX_THREADS; i++) {
        /* a lock held at fork time by a thread that is gone would never be released */
        KEEL_VERIFY(pthread_mutex_init(&threads[i].lock, NULL) == 0);
        if (&threads[i] != self)
            __atomic_store_n(&threads[i].used, 0, __ATOMIC_RELAXED);
    }
    KEEL_VERIFY(pthread_mutex_init(&wd_lock, NULL) == 0);
    KEEL_VERIFY(pthread_cond_init(&wd_cond, NULL) == 0);
    keel__stack_close(); /* the parent's helper: this process starts its own */
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void install_fork_handler(void)
{
    KEEL_VERIFY(pthread_atfork(NULL, NULL, after_fork_child) == 0);
}

keel_status keel_watchdog_start(void)
{
    keel__lazy_init();
    if (!KEEL_WATCHDOG_ON)
        return KEEL_ERR(KEEL_E_UNSUPPORTED,
                        "the watchdog is compiled out of release builds (build with "
                        "KEEL_WATCHDOG_IN_RELEASE to keep it)");
    (void)pthread_once(&fork_once, install_fork_handler);
    keel_status s = KEEL_OK;
    KEEL_VERIFY(pthread_mutex_lock(&wd_lock) == 0);
    if (!wd_running) {
        wd_stopping = false;
        wd_asked_ns = now_ns();
        /* every signal blocked in it (it inherits the mask it is made with): a signal sent to
         * the process goes to a thread of the program, whichever thread started the watchdog */
        sigset_t all, old;
        (void)sigfillset(&all);
        KEEL_VERIFY(pthread_sigmask(SIG_SETMASK, &all, &old) == 0);
        int rc = pthread_create(&wd_thread, NULL, watchdog_main, NULL);
        KEEL_VERIFY(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
        if (rc != 0)
            s = KEEL_ERR_SYS(rc, "cannot start the watchdog thread");
        else
            __atomic_store_n(&wd_running, true, __ATOMIC_RELEASE);
    }
    KEEL_VERIFY(pthread_mutex_unlock(&wd_lock) == 0);
    return s;
}

static void start_watchdog_lazily(void)
{
    if (!KEEL_WATCHDOG_ON || !keel__opt_bool(KEEL__OPT_WATCHDOG_ENABLED) ||
        __atomic_load_n(&wd_running, __ATOMIC_ACQUIRE))
        return;
    keel_status s = keel_watchdog_start();
    if (!keel_ok(s)) {
        char text[512];
        (void)keel_status_format(s, text, sizeof(text));
        (void)KEEL__REPORT_AT_CALLER(KEEL_REPORT_WATCHDOG, "the watchdog could not start: %s",
                                     text);
        keel_status_free(s);
    }
}

void keel_watchdog_stop(void)
{
    KEEL_VERIFY(pthread_mutex_lock(&wd_lock) == 0);
    bool running = wd_running;
    if (running) {
        wd_stopping = true;
        KEEL_VERIFY(pthread_cond_broadcast(&wd_cond) == 0);
    }
    KEEL_VERIFY(pthread_mutex_unlock(&wd_lock) == 0);
    if (!running)
        return;
    KEEL_VERIFY(pthread_join(wd_thread, NULL) == 0);
    KEEL_VERIFY(pthread_mutex_lock(&wd_lock) == 0);
    __atomic_store_n(&wd_running, false, __ATOMIC_RELEASE);
    wd_stopping = false;
    KEEL_VERIFY(pthread_mutex_unlock(&wd_lock) == 0);
}

void keel__watchdog_at_exit(void)
{
    keel_watchdog_stop();
    keel__stack_close();
}

unsigned long long keel_watchdog_overruns(void)
{
    return __atomic_load_n(&total_overruns, __ATOMIC_RELAXED);
}

size_t keel_watchdog_stats_json(char *buf, size_t size)
{
    keel__lazy_init(); /* tick_ms */
    KEEL_ASSERT(buf != NULL || size == 0);
    size_t pos = 0;
    if (size > 0)
        buf[0] = '\0';
    unsigned long long wd_cpu = 0;
    KEEL_VERIFY(pthread_mutex_lock(&wd_lock) == 0);
    clockid_t wd_clock;
    if (wd_running && pthread_getcpuclockid(wd_thread, &wd_clock) == 0)
        wd_cpu = thread_cpu_ns(wd_clock);
    KEEL_VERIFY(pthread_mutex_unlock(&wd_lock) == 0);
    keel__buf_printf(buf, size, &pos, "{\"tick_ms\":%lld,\"watchdog_cpu_ns\":%llu,\"threads\":[",
                     keel__opt_int(KEEL__OPT_WATCHDOG_TICK_MS), wd_cpu);
    unsigned high = __atomic_load_n(&threads_high, __ATOMIC_ACQUIRE);
    const char *sep = "";
    for (unsigned i = 0; i < high; i++) {
        thread_rec *t = &threads[i];
        if (!lock_live(t))
            continue;
        unsigned long long cpu =
            t == tls_rec ? thread_cpu_ns(CLOCK_THREAD_CPUTIME_ID) : thread_cpu_ns(t->cpu_clock);
        keel__buf_printf(buf, size, &pos, "%s{\"name\":", sep);
        keel__buf_json_str(buf, size, &pos, t->name);
        keel__buf_printf(buf, size, &pos, ",\"tid\":%ld,\"module\":", t->tid);
        keel__buf_json_str(buf, size, &pos, t->module);
        keel__buf_printf(buf, size, &pos,
                         ",\"cpu_ns\":%llu,\"overruns\":%llu,\"missed_heartbeats\":%llu}", cpu,
                         __atomic_load_n(&t->overruns, __ATOMIC_RELAXED),
                         __atomic_load_n(&t->hb_misses, __ATOMIC_RELAXED));
        KEEL_VERIFY(pthread_mutex_unlock(&t->lock) == 0);
        sep = ",";
    }
    keel__buf_printf(buf, size, &pos, "],\"modules\":[");
    /* live threads plus the totals of threads that have exited */
    module_total live[MAX_MODULES];
    size_t nlive = 0;
    KEEL_VERIFY(pthread_mutex_lock(&modules_lock) == 0);
    memcpy(live, modules, nmodules * sizeof(modules[0]));
    nlive = nmodules;
    KEEL_VERIFY(pthread_mutex_unlock(&modules_lock) == 0);
    for (unsigned i = 0; i < high; i++) {
        thread_rec *t = &threads[i];
        if (!lock_live(t))
            continue;
        const char *m = t->module[0] != '\0' ? t->module : "(none)";
        size_t j = 0;
        while (j < nlive && strcmp(live[j].name, m) != 0)
            j++;
        if (j == nlive && nlive < MAX_MODULES) {
            memset(&live[j], 0, sizeof(live[j]));
            (void)snprintf(live[j].name, sizeof(live[j].name), "%s", m);
            nlive++;
        }
        if (j < nlive) {
            live[j].cpu_ns +=
                t == tls_rec ? thread_cpu_ns(CLOCK_THREAD_CPUTIME_ID) : thread_cpu_ns(t->cpu_clock);
            live[j].overruns += __atomic_load_n(&t->overruns, __ATOMIC_RELAXED);
        }
        KEEL_VERIFY(pthread_mutex_unlock(&t->lock) == 0);
    }
    for (size_t j = 0; j < nlive; j++) {
        keel__buf_printf(buf, size, &pos, "%s{\"name\":", j > 0 ? "," : "");
        keel__buf_json_str(buf, size, &pos, live[j].name);
        keel__buf_printf(buf, size, &pos, ",\"cpu_ns\":%llu,\"overruns\":%llu}", live[j].cpu_ns,
                         live[j].overruns);
    }
    keel__buf_printf(buf, size, &pos, "]}");
    return pos;
}
