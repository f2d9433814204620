/*
 * run/run_table.c - libkeel-run.so's side table of the program's pthread objects, and the cache
 * of the program's call sites.
 *
 * The table: open addressing over the object's address, read without a lock (one hash, one
 * probe for the usual object); slots are only ever added (under table_lock), and a slot's
 * shadow is swapped when the object is initialised again or dropped when it is destroyed, so
 * that memory reused for another object never inherits the old one's class or state.  Shadows
 * come from one preallocated array; a dropped one is reused.
 *
 * Call sites: the return address of an interposed call, symbolized once (file:line with debug
 * information, function+offset [object] without) into a keel__lock_site that lives as long as
 * the process, in a lock-free cache of return addresses.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "run.h"

#define SLOTS       (1u << 20) /* objects the table can know at once (probed: keep it sparse) */
#define MAX_LOCKS   (1u << 18)
#define PROBES      64u
#define SITE_SLOTS  (1u << 16)
#define ARENA_CHUNK (1u << 20)

/* One entry of an open-addressed table: a key (an address) and its value, both atomic. */
typedef struct slot {
    uintptr_t key; /* 0 empty; never changes once set */
    void *value;
} slot;

static slot *slots; /* object -> run_lock * (NULL while it has none) */
static run_lock *locks;
static unsigned nlocks;
static run_lock *free_locks;
static slot *sites; /* return address -> const keel__lock_site * */
static char *arena;
static size_t arena_left;
static bool full_reported;
/* Taken with atomics, not a pthread lock: nothing of it reaches the interposer, and a fork
 * child starts it free (keel__run_table_fork). */
static int table_lock;

void keel__run_table_fork(int phase)
{
    if (phase == 0)
        run_spin_acquire(&table_lock);
    else
        run_spin_release(&table_lock);
}

static void *map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* table_lock held. */
static bool table_ready(void)
{
    if (slots == NULL) {
        slots = (slot *)map(SLOTS * sizeof(slot));
        locks = (run_lock *)map(MAX_LOCKS * sizeof(run_lock));
        sites = (slot *)map(SITE_SLOTS * sizeof(slot));
    }
    return slots != NULL && locks != NULL && sites != NULL;
}

/* table_lock held: size bytes aligned to 8 that live as long as the process (NULL: no memory). */
static void *arena_alloc(size_t size)
{
    size_t pad = (8u - (size_t)(uintptr_t)arena % 8u) % 8u;
    if (arena == NULL || pad + size > arena_left) {
        arena = (char *)map(ARENA_CHUNK);
        arena_left = arena != NULL ? ARENA_CHUNK : 0;
        pad = 0;
        if (arena == NULL)
            return NULL;
    }
    void *p = arena + pad;
    arena += pad + size;
    arena_left -= pad + size;
    return p;
}

/* table_lock held: a copy of s that lives as long as the process. */
static const char *intern(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = (char *)arena_alloc(len);
    if (copy == NULL)
        return "?";
    memcpy(copy, s, len);
    return copy;
}

static unsigned hash_addr(uintptr_t a, unsigned mask)
{
    unsigned long long h = (unsigned long long)a * 0x9e3779b97f4a7c15ull;
    return (unsigned)(h >> 40) & mask;
}

/* ---- call sites --------------------------------------------------------------------------- */

static const keel__lock_site unknown_site = {"?", "?", 0};

/* Lock-free: the value of key in table t (mask + 1 slots), or NULL. */
static void *lookup(slot *const *table, unsigned mask, uintptr_t key)
{
    const slot *t = __atomic_load_n(table, __ATOMIC_ACQUIRE);
    if (KEEL_UNLIKELY(t == NULL))
        return NULL;
    unsigned i = hash_addr(key, mask);
    for (unsigned p = 0; p < PROBES; p++, i = (i + 1u) & mask) {
        uintptr_t k = __atomic_load_n(&t[i].key, __ATOMIC_ACQUIRE);
        if (k == key)
            return __atomic_load_n(&t[i].value, __ATOMIC_ACQUIRE);
        if (k == 0)
            return NULL;
    }
    return NULL;
}

const run_site *keel__run_site_find(const void *ra)
{
    return (const run_site *)lookup(&sites, SITE_SLOTS - 1u, (uintptr_t)ra);
}

/* "file:line" with line information; "function+0xoff [object]" or "object+0xoff" without. */
static void describe(const void *ra, keel_frame *f, char *file, size_t fsize, char *func,
                     size_t nsize, int *line)
{
    bool known = keel_backtrace_symbolize(run_unqualified(ra), f);
    if (known && f->file[0] != '\0') {
        const char *base = strrchr(f->file, '/');
        (void)snprintf(file, fsize, "%.120s", base != NULL ? base + 1 : f->file);
        *line = f->line;
    } else {
        Dl_info info;
        uintptr_t off = 0;
        const char *obj = f->object[0] != '\0' ? f->object : "?";
        if (dladdr(ra, &info) != 0 && info.dli_fbase != NULL) {
            off = (uintptr_t)ra - (uintptr_t)info.dli_fbase;
            const char *slash = info.dli_fname != NULL ? strrchr(info.dli_fname, '/') : NULL;
            if (obj[0] == '?' && info.dli_fname != NULL)
                obj = slash != NULL ? slash + 1 : info.dli_fname;
        }
        (void)snprintf(file, fsize, "%s+0x%lx", obj, (unsigned long)off);
        *line = 0;
    }
    (void)snprintf(func, nsize, "%s", f->func[0] != '\0' ? f->func : "?");
}

const keel__lock_site *keel__run_site(const void *ra)
{
    const run_site *known = keel__run_site_find(ra);
    if (KEEL_LIKELY(known != NULL))
        return &known->site;
    keel_frame f;
    char file[160], func[128];
    int line = 0;
    describe(ra, &f, file, sizeof(file), func, sizeof(func), &line); /* outside table_lock */
    run_spin_acquire(&table_lock);
    const keel__lock_site *site = &unknown_site;
    if (table_ready()) {
        unsigned i = hash_addr((uintptr_t)ra, SITE_SLOTS - 1u);
        for (unsigned p = 0; p < PROBES; p++, i = (i + 1u) & (SITE_SLOTS - 1u)) {
            uintptr_t k = sites[i].key;
            if (k == (uintptr_t)ra) {
                site = &((const run_site *)sites[i].value)->site;
                break;
            }
            if (k != 0)
                continue;
            run_site *made = (run_site *)arena_alloc(sizeof(*made));
            if (made != NULL) {
                made->ra = ra;
                made->site.file = intern(file);
                made->site.func = intern(func);
                made->site.line = line;
                __atomic_store_n(&sites[i].value, (void *)made, __ATOMIC_RELEASE);
                __atomic_store_n(&sites[i].key, (uintptr_t)ra, __ATOMIC_RELEASE);
                site = &made->site;
            }
            break;
        }
    }
    run_spin_release(&table_lock);
    return site;
}

/* ---- the objects ------------------------------------------------------------------------------ */

run_lock *keel__run_find(const void *obj)
{
    return (run_lock *)lookup(&slots, SLOTS - 1u, (uintptr_t)obj);
}

run_lock *keel__run_of_dep(keel_lockdep *d)
{
    static const size_t offsets[] = {offsetof(run_lock, as.m.dep), offsetof(run_lock, as.rw.dep),
                                     offsetof(run_lock, as.s.dep)};
    for (size_t i = 0; i < KEEL__ARRAY_LEN(offsets); i++) {
        const char *at = (const char *)d - offsets[i];
        const char *first = (const char *)locks;
        if (locks == NULL || at < first || at >= (const char *)(locks + MAX_LOCKS) ||
            (size_t)(at - first) % sizeof(run_lock) != 0)
            continue;
        run_lock *l = &locks[(size_t)(at - first) / sizeof(run_lock)];
        if (run_dep(l) == d)
            return l;
    }
    return NULL;
}

/* table_lock held: the object's slot, added when new (NULL: the table is full near it). */
static slot *slot_of(const void *obj)
{
    unsigned i = hash_addr((uintptr_t)obj, SLOTS - 1u);
    for (unsigned p = 0; p < PROBES; p++, i = (i + 1u) & (SLOTS - 1u)) {
        if (slots[i].key == (uintptr_t)obj)
            return &slots[i];
        if (slots[i].key == 0) {
            __atomic_store_n(&slots[i].key, (uintptr_t)obj, __ATOMIC_RELEASE);
            return &slots[i];
        }
    }
    return NULL;
}

/* table_lock held. */
static run_lock *lock_new(void)
{
    run_lock *l = free_locks;
    if (l != NULL)
        free_locks = l->next_free;
    else if (nlocks < MAX_LOCKS)
        l = &locks[nlocks++];
    if (l != NULL)
        memset(l, 0, sizeof(*l));
    return l;
}

/* Is the object locked by anyone (its real state)?  Then its shadow may be on a held stack. */
bool keel__run_obj_locked(const run_lock *l)
{
    switch ((run_type)l->type) {
    case RUN_RWLOCK:
        return run_glibc_rwlock_locked((const pthread_rwlock_t *)l->obj);
    case RUN_SPIN:
        return run_glibc_spin_locked((const pthread_spinlock_t *)l->obj);
    default:
        return run_glibc_mutex_locked((const pthread_mutex_t *)l->obj);
    }
}

/* The name of a lock without an init call: its static object, or its address and first lock. */
static void name_uninitialised(const void *obj, const keel__lock_site *site, char *name,
                               size_t size)
{
    Dl_info info;
    if (dladdr(obj, &info) != 0 && info.dli_fbase != NULL) {
        keel_frame f;
        /* (symbolize looks up the byte before: a return address) */
        if (keel_backtrace_symbolize((char *)run_unqualified(obj) + 1, &f) && f.func[0] != '\0') {
            if (f.offset - 1u == 0)
                (void)snprintf(name, size, "&%s", f.func);
            else
                (void)snprintf(name, size, "&%s+0x%lx", f.func, f.offset - 1u);
            return;
        }
        const char *slash = info.dli_fname != NULL ? strrchr(info.dli_fname, '/') : NULL;
        (void)snprintf(name, size, "&%s+0x%lx",
                       slash != NULL ? slash + 1 : (info.dli_fname ? info.dli_fname : "?"),
                       (unsigned long)((uintptr_t)obj - (uintptr_t)info.dli_fbase));
        return;
    }
    /* in the heap or on a stack, initialised before keel was ready (or by memset): a class of
     * its own (its address first: a class name is at most 63 characters), so that locks first
     * seen at one site are not taken for one class */
    (void)snprintf(name, size, "%p (no init; first lock %s:%d)", obj, site->file, site->line);
}

/* ---- ranks given by keel-run --rank CLASS=N (KEEL_RUN_RANKS: "CLASS=N,CLASS=N") ---------------- */

enum { RANKS = 64, RANK_NAMES = 4096 };

static struct {
    const char *name;
    int rank;
} ranks[RANKS];
static unsigned nranks;
static char rank_names[RANK_NAMES];

void keel__run_ranks_start(void)
{
    const char *v = getenv("KEEL_RUN_RANKS");
    size_t used = 0;
    while (v != NULL && *v != '\0' && nranks < RANKS) {
        const char *end = strchr(v, ',');
        size_t len = end != NULL ? (size_t)(end - v) : strlen(v);
        const char *eq = (const char *)memrchr(v, '=', len);
        if (eq != NULL && eq > v && used + (size_t)(eq - v) + 1 <= RANK_NAMES) {
            char *name = rank_names + used;
            memcpy(name, v, (size_t)(eq - v));
            name[eq - v] = '\0';
            used += (size_t)(eq - v) + 1;
            ranks[nranks].name = name;
            ranks[nranks++].rank = (int)strtol(eq + 1, NULL, 10); /* (keel-run: 1..1000000) */
        }
        v = end != NULL ? end + 1 : NULL;
    }
}

/* The rank --rank gave the class `name`, else unranked. */
static int rank_of(const char *name)
{
    for (unsigned i = 0; i < nranks; i++)
        if (strcmp(ranks[i].name, name) == 0)
            return ranks[i].rank;
    return KEEL_RANK_NONE;
}

static void shadow_setup(run_lock *l, const void *obj, run_type type, const char *name,
                         const keel__lock_site *site)
{
    l->obj = obj;
    l->type = type;
    keel__dep_init(run_dep(l), name, rank_of(name), site);
}

static void report_full(void)
{
    if (!full_reported) {
        full_reported = true;
        (void)KEEL__REPORT_AT_CALLER(KEEL_REPORT_LIMIT,
                                     "keel-run: more than %u pthread objects known at once: "
                                     "further objects are not checked",
                                     MAX_LOCKS);
    }
}

/* Is obj in libkeel-run.so itself (keel's own locks, taken outside the guard at exit)? */
static bool own_object(const void *obj)
{
    Dl_info mine, its;
    return dladdr((const void *)&slots, &mine) != 0 && dladdr(obj, &its) != 0 &&
           mine.dli_fbase == its.dli_fbase;
}

run_lock *keel__run_get(const void *obj, run_type type, const keel__lock_site *site)
{
    char name[160];
    if (own_object(obj))
        type = RUN_IGNORED;
    else
        name_uninitialised(obj, site, name, sizeof(name)); /* outside table_lock (libdw) */
    bool full = false;
    run_spin_acquire(&table_lock);
    run_lock *l = NULL;
    if (table_ready()) {
        slot *s = slot_of(obj);
        l = s != NULL ? (run_lock *)s->value : NULL;
        if (s != NULL && l == NULL) {
            l = lock_new();
            if (l != NULL) {
                shadow_setup(l, obj, type, type == RUN_IGNORED ? "keel" : intern(name), site);
                __atomic_store_n(&s->value, (void *)l, __ATOMIC_RELEASE);
            }
        }
        full = l == NULL;
    }
    run_spin_release(&table_lock);
    if (full)
        report_full();
    return l;
}

run_lock *keel__run_init(const void *obj, run_type type, const keel__lock_site *site)
{
    char name[160];
    (void)snprintf(name, sizeof(name), "%s:%d", site->file, site->line);
    bool full = false;
    run_spin_acquire(&table_lock);
    run_lock *l = NULL;
    if (table_ready()) {
        slot *s = slot_of(obj);
        if (s != NULL) {
            l = lock_new();
            if (l != NULL) {
                shadow_setup(l, obj, type, intern(name), site);
                run_lock *old =
                    (run_lock *)__atomic_exchange_n(&s->value, (void *)l, __ATOMIC_ACQ_REL);
                /* an old shadow of a locked object may be on some thread's held stack: kept */
                if (old != NULL && !keel__run_obj_locked(old)) {
                    old->next_free = free_locks;
                    free_locks = old;
                }
            }
        }
        full = l == NULL;
    }
    run_spin_release(&table_lock);
    if (full)
        report_full();
    return l;
}

void keel__run_forget(const void *obj)
{
    run_spin_acquire(&table_lock);
    if (slots != NULL) {
        unsigned i = hash_addr((uintptr_t)obj, SLOTS - 1u);
        for (unsigned p = 0; p < PROBES; p++, i = (i + 1u) & (SLOTS - 1u)) {
            if (slots[i].key == 0)
                break;
            if (slots[i].key != (uintptr_t)obj)
                continue;
            run_lock *old =
                (run_lock *)__atomic_exchange_n(&slots[i].value, NULL, __ATOMIC_ACQ_REL);
            if (old != NULL) {
                old->next_free = free_locks;
                free_locks = old;
            }
            break;
        }
    }
    run_spin_release(&table_lock);
}
