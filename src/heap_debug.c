/*
 * heap_debug.c - the devel checks on every module heap block: a header with
 * the block's sites and a canary before it, a canary after it, poison fills,
 * a quarantine of freed blocks, sampled guard pages, and read-only module
 * data - all reporting through the report channel (kind "heap", "leak").
 *
 *   raw ... | header (HDR bytes, ends with the front canary) | block | tail canary (16) |
 */
#include "heap.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if KEEL_DEVEL

enum {
    FRESH = 0xA5,
    FREED = 0xDD,
    TAIL = 16,
    HDR = 96,
    MAX_GUARDED = 256,
    MAX_PROTECTED = 32,
    LEAK_SITES = 32
};

static const unsigned long long MAGIC_LIVE = 0x6b65656c4c495645ull;  /* "keelLIVE" */
static const unsigned long long MAGIC_FREED = 0x6b65656c46524545ull; /* "keelFREE" */
static const unsigned long long CANARY = 0xfbfbfbfbfbfbfbfbull;
static const unsigned char tail_pattern[TAIL] = {0xfb, 0xfb, 0xfb, 0xfb, 0xfb, 0xfb, 0xfb, 0xfb,
                                                 0xfb, 0xfb, 0xfb, 0xfb, 0xfb, 0xfb, 0xfb, 0xfb};

struct keel__blk {
    unsigned long long magic; /* MAGIC_LIVE / MAGIC_FREED, xor the header's address */
    keel__heap *heap;
    size_t size;
    const char *file; /* allocation site */
    const char *func;
    const char *free_file; /* free site */
    size_t live_at;        /* live: its index in its shard's live array */
    keel__blk *next;       /* freed: the next newer block in its shard's quarantine */
    int line;
    int free_line;
    unsigned offset; /* from the raw allocation to the header */
    unsigned char shard;
    unsigned char guarded;   /* on a guard page: raw is the mapping */
    unsigned char align_log; /* keel_heap_aligned's alignment: 1 << (align_log - 1); 0: none */
    unsigned char unused;
    size_t poisoned;           /* freed: its first bytes filled with FREED, min(size, heap.fill) */
    unsigned long long canary; /* last: right before the block */
};
KEEL__STATIC_ASSERT(sizeof(struct keel__blk) == HDR, "the header is HDR bytes");
KEEL__STATIC_ASSERT(KEEL__HEAP_SHARDS <= 256, "a shard's number fits the header's byte");

static KEEL__TLS unsigned tls_shard = ~0u;
static unsigned shard_seq;
static KEEL__TLS unsigned long long tls_guard_count;

static unsigned my_shard(void)
{
    if (KEEL_UNLIKELY(tls_shard == ~0u))
        tls_shard = __atomic_fetch_add(&shard_seq, 1, __ATOMIC_RELAXED) % KEEL__HEAP_SHARDS;
    return tls_shard;
}

static unsigned long long magic_of(unsigned long long base, const keel__blk *b)
{
    return base ^ (unsigned long long)(uintptr_t)b;
}

static unsigned char *user_of(keel__blk *b)
{
    return (unsigned char *)b + HDR;
}

/*
 * How many of a block's first bytes a fill poisons: heap.fill at most.  A block
 * bigger than that (a large table the program touches sparsely, or not at all
 * yet) keeps the rest of its pages untouched, as a release build leaves them: a
 * fill of all of it would make every page resident, and a block larger than
 * the machine's memory would get the process killed where a release build runs.
 */
static size_t fill_len(size_t size)
{
    unsigned long long fill = (unsigned long long)keel__opt_int(KEEL__OPT_HEAP_FILL);
    return fill < size ? (size_t)fill : size;
}

/* b, being freed: its first fill_len bytes poisoned, and how many recorded for their checks
 * (heap.fill may change before they happen). */
static void poison_freed(keel__blk *b)
{
    b->poisoned = fill_len(b->size);
    memset(user_of(b), FREED, b->poisoned);
}

/* The alignment keel_heap_aligned asked for b (0: none). */
static size_t align_of(const keel__blk *b)
{
    return b->align_log != 0 ? (size_t)1 << (b->align_log - 1) : 0;
}

/* ---- guard pages and protected data: one SIGSEGV handler ---------------------------------- */

/* A guard-page sample: one page of a pool, the PROT_NONE page after it. */
typedef struct guard_slot {
    char *page;
    keel__blk *b; /* the block in it (NULL: never used) */
    bool freed;   /* its block was freed: poisoned, checked when the slot is reused */
} guard_slot;

typedef struct protected_region {
    char *start;
    size_t len;
    keel__heap *heap;
} protected_region;

static pthread_mutex_t special_lock = PTHREAD_MUTEX_INITIALIZER;
static guard_slot guards[MAX_GUARDED];
static protected_region protects[MAX_PROTECTED];
static size_t page_size; /* read through pagesz() */

static size_t pagesz(void)
{
    size_t p = __atomic_load_n(&page_size, __ATOMIC_RELAXED);
    if (KEEL_UNLIKELY(p == 0)) {
        p = (size_t)sysconf(_SC_PAGESIZE);
        __atomic_store_n(&page_size, p, __ATOMIC_RELAXED);
    }
    return p;
}
static struct sigaction old_segv;
static int handler_installed;

static void segv_handler(int sig, siginfo_t *info, void *uctx);

static void install_handler(void)
{
    if (__atomic_exchange_n(&handler_installed, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    (void)sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGSEGV, &sa, &old_segv);
}

static void segv_report(const char *msg, const keel__blk *b, long offset)
{
    /* at the faulting access: the first frame below the handler (the block's site follows) */
    keel_report *r = keel_report_begin(KEEL_REPORT_HEAP, NULL, 0, NULL, "%s", msg);
    if (b != NULL) {
        keel_report_add_str(r, "module", b->heap->name);
        keel_report_add_uint(r, "size", b->size);
        keel_report_add_int(r, "offset", offset);
        keel_report_add_text(r, "block allocated at %s:%d in %s()", b->file, b->line, b->func);
        if (b->free_file != NULL)
            keel_report_add_text(r, "freed at %s:%d", b->free_file, b->free_line);
    }
    (void)keel_report_emit(r);
}

/*
 * Does a protection fault's si_addr name the page only?  On s390 it does: the failing address
 * comes from the translation-exception identification (TEID), whose address field holds bits
 * 0 to 51, and Linux masks it with -4096 (qemu-s390x does the same): no handler can learn the
 * byte, so the reports there name the page (docs/platforms.md).
 */
#if defined(__s390__) || defined(__s390x__)
#define FAULT_NAMES_THE_PAGE 1
#else
#define FAULT_NAMES_THE_PAGE 0
#endif
#define PAGE_ONLY_NOTE "the platform's fault names the page, not the byte"

static void segv_handler(int sig, siginfo_t *info, void *uctx)
{
    (void)uctx;
    char *addr = (char *)info->si_addr;
    bool ours = false;
    char msg[200];
    for (int i = 0; i < MAX_GUARDED && !ours; i++) {
        guard_slot *g = &guards[i];
        keel__blk *b = __atomic_load_n(&g->b, __ATOMIC_ACQUIRE);
        if (b == NULL || addr < g->page + pagesz() || addr >= g->page + 2 * pagesz())
            continue;
        ours = true;
        long off = (long)(addr - (char *)user_of(b));
        if (FAULT_NAMES_THE_PAGE)
            (void)snprintf(msg, sizeof(msg),
                           "heap overflow: access %ld to %ld bytes past the end of a %zu-byte "
                           "block of module '%s' hit its guard page (" PAGE_ONLY_NOTE ")",
                           off - (long)b->size, off - (long)b->size + (long)pagesz() - 1, b->size,
                           b->heap->name);
        else
            (void)snprintf(msg, sizeof(msg),
                           "heap overflow: access %ld bytes past the end of a %zu-byte block of "
                           "module '%s' hit its guard page",
                           off - (long)b->size, b->size, b->heap->name);
        segv_report(msg, b, off);
    }
    for (int i = 0; i < MAX_PROTECTED && !ours; i++) {
        protected_region *p = &protects[i];
        if (p->start == NULL || addr < p->start || addr >= p->start + p->len)
            continue;
        ours = true;
        (void)snprintf(msg, sizeof(msg),
                       FAULT_NAMES_THE_PAGE
                           ? "write to data of module '%s' made read-only after its init (in its "
                             "page at offset %ld: " PAGE_ONLY_NOTE ")"
                           : "write to data of module '%s' made read-only after its init (offset "
                             "%ld)",
                       p->heap->name, (long)(addr - p->start));
        segv_report(msg, NULL, 0);
    }
    /* let the fault happen again with the previous disposition: a crash at the access */
    (void)sigaction(SIGSEGV, &old_segv, NULL);
    if (!ours && old_segv.sa_handler == SIG_IGN)
        (void)signal(sig, SIG_DFL);
}

static char *guard_pool;
static unsigned guard_cursor;

/* The pool: MAX_GUARDED pairs of pages, the second of each PROT_NONE, mapped once. */
static bool make_guard_pool(void)
{
    if (guard_pool != NULL)
        return true;
    char *pool = (char *)mmap(NULL, 2 * pagesz() * (size_t)MAX_GUARDED, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pool == MAP_FAILED)
        return false;
    for (unsigned i = 0; i < MAX_GUARDED; i++)
        if (mprotect(pool + (2 * i + 1) * pagesz(), pagesz(), PROT_NONE) != 0) {
            (void)munmap(pool, 2 * pagesz() * (size_t)MAX_GUARDED);
            return false;
        }
    for (unsigned i = 0; i < MAX_GUARDED; i++)
        guards[i].page = pool + (size_t)2 * i * pagesz();
    guard_pool = pool;
    return true;
}

static void release_blk(keel__blk *b, unsigned me);
static void release_own(keel__heap *h, unsigned me);

/*
 * A block placed so that it and its tail canary end at a guard page: an
 * overflow past the canary faults at the access.  No system call per sample:
 * the pool is mapped once, and a freed sample is poisoned and checked when
 * its slot is reused.
 */
static void *guard_alloc(keel__heap *h, size_t size, keel__blk **hdr)
{
    if (size + HDR + TAIL + 16 > pagesz())
        return NULL;
    KEEL_VERIFY(pthread_mutex_lock(&special_lock) == 0);
    if (!make_guard_pool()) {
        KEEL_VERIFY(pthread_mutex_unlock(&special_lock) == 0);
        return NULL;
    }
    guard_slot *g = NULL;
    for (unsigned n = 0; n < MAX_GUARDED && g == NULL; n++) {
        guard_slot *c = &guards[guard_cursor++ % MAX_GUARDED];
        if (c->b == NULL || c->freed)
            g = c;
    }
    if (g == NULL) {
        KEEL_VERIFY(pthread_mutex_unlock(&special_lock) == 0);
        return NULL; /* every sample is live: allocate normally */
    }
    keel__blk *old = g->freed ? g->b : NULL;
    size_t user = (pagesz() - size - TAIL) & ~(size_t)15;
    keel__blk *b = (keel__blk *)(void *)(g->page + user - HDR);
    __atomic_store_n(&g->b, (keel__blk *)NULL, __ATOMIC_RELEASE);
    g->freed = false;
    if (old != NULL)
        release_blk(old, my_shard()); /* its poison is checked before the page is reused */
    b->guarded = 1;
    b->offset = 0;
    b->heap = h;
    __atomic_store_n(&g->b, b, __ATOMIC_RELEASE);
    KEEL_VERIFY(pthread_mutex_unlock(&special_lock) == 0);
    install_handler();
    *hdr = b;
    return g->page;
}

/* The sample's block was freed (and poisoned): its slot may be reused. */
static void guard_free(const keel__blk *b)
{
    KEEL_VERIFY(pthread_mutex_lock(&special_lock) == 0);
    for (int i = 0; i < MAX_GUARDED; i++)
        if (guards[i].b == b)
            guards[i].freed = true;
    KEEL_VERIFY(pthread_mutex_unlock(&special_lock) == 0);
}

keel_status keel__heap_protect(keel__heap *h, void *ptr, size_t len)
{
    if (ptr == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_module_protect: no region");
    size_t ps = pagesz();
    size_t lead = (ps - (uintptr_t)ptr % ps) % ps; /* to the first whole page */
    size_t whole = len > lead ? (len - lead) / ps * ps : 0;
    if (whole == 0)
        return KEEL_ERR(KEEL_E_INVAL,
                        "keel_module_protect: [%p, +%zu) holds no whole page to protect", ptr, len);
    char *start = (char *)ptr + lead;
    keel_status s = KEEL_OK;
    KEEL_VERIFY(pthread_mutex_lock(&special_lock) == 0);
    int slot = -1;
    for (int i = 0; i < MAX_PROTECTED && slot < 0; i++)
        if (protects[i].start == NULL)
            slot = i;
    if (slot < 0)
        s = KEEL_ERR(KEEL_E_FULL, "more than %d protected regions", (int)MAX_PROTECTED);
    else if (mprotect(start, whole, PROT_READ) != 0)
        s = KEEL_ERR_SYS(errno, "cannot make data of module '%s' read-only", h->name);
    else {
        protects[slot].start = start;
        protects[slot].len = whole;
        protects[slot].heap = h;
    }
    KEEL_VERIFY(pthread_mutex_unlock(&special_lock) == 0);
    if (keel_ok(s))
        install_handler();
    return s;
}

void keel__heap_unprotect(const keel__heap *h)
{
    KEEL_VERIFY(pthread_mutex_lock(&special_lock) == 0);
    for (int i = 0; i < MAX_PROTECTED; i++)
        if (protects[i].heap == h && protects[i].start != NULL) {
            (void)mprotect(protects[i].start, protects[i].len, PROT_READ | PROT_WRITE);
            protects[i].start = NULL;
        }
    KEEL_VERIFY(pthread_mutex_unlock(&special_lock) == 0);
}

/* ---- reports ------------------------------------------------------------------------------- */

static void report_blk(const char *what, const keel__blk *b, const char *file, int line,
                       const char *func, long offset)
{
    keel_report *r = keel_report_begin(KEEL_REPORT_HEAP, file, line, func, "%s", what);
    if (b != NULL) {
        keel_report_add_str(r, "module", b->heap->name);
        keel_report_add_uint(r, "size", b->size);
        if (offset >= -HDR)
            keel_report_add_int(r, "offset", offset);
        keel_report_add_text(r, "block of %zu bytes allocated at %s:%d in %s()", b->size, b->file,
                             b->line, b->func);
        if (b->free_file != NULL)
            keel_report_add_text(r, "freed at %s:%d", b->free_file, b->free_line);
    }
    (void)keel_report_emit(r);
}

/* 4 KiB of each fill pattern, to compare against with memcmp (vectorised by libc). */
enum { PATTERN = 4096 };
static unsigned char freed_pattern[PATTERN];
static pthread_once_t pattern_once = PTHREAD_ONCE_INIT;

static void make_patterns(void)
{
    memset(freed_pattern, FREED, sizeof(freed_pattern));
}

/* First byte of [p, p+n) that differs from `byte` (FREED or the tail's 0xfb), or -1. */
static long first_not(const unsigned char *p, size_t n, unsigned char byte)
{
    if (byte == FREED) {
        (void)pthread_once(&pattern_once, make_patterns);
        size_t at = 0;
        while (at < n) {
            size_t len = n - at < (size_t)PATTERN ? n - at : (size_t)PATTERN;
            if (memcmp(p + at, freed_pattern, len) != 0)
                break; /* the byte loop below finds where */
            at += len;
        }
        if (at >= n)
            return -1;
        p += at;
        n -= at;
        for (size_t i = 0; i < n; i++)
            if (p[i] != byte)
                return (long)(at + i);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (p[i] != byte)
            return (long)i;
    return -1;
}

/* Check both canaries; report each damaged one.  True when both are intact. */
static bool canaries_ok(const keel__blk *b, const char *file, int line, const char *func)
{
    bool ok = true;
    char msg[200];
    if (b->canary != magic_of(CANARY, b)) {
        (void)snprintf(msg, sizeof(msg),
                       "heap underflow: the red zone before a %zu-byte block of module '%s' was "
                       "overwritten",
                       b->size, b->heap->name);
        report_blk(msg, b, file, line, func, -1);
        ok = false;
    }
    const unsigned char *tail = (const unsigned char *)b + HDR + b->size;
    if (memcmp(tail, tail_pattern, TAIL) != 0) {
        long at = first_not(tail, TAIL, 0xfb);
        (void)snprintf(msg, sizeof(msg),
                       "heap overflow: the red zone after a %zu-byte block of module '%s' was "
                       "overwritten at offset %zu",
                       b->size, b->heap->name, b->size + (size_t)at);
        report_blk(msg, b, file, line, func, (long)b->size + at);
        ok = false;
    }
    return ok;
}

/* ---- allocation and free -------------------------------------------------------------------- */

/*
 * A shard's lock: one atomic exchange to take, a store to give back (a mutex
 * costs two atomic operations and two calls).  Only the sweeps (check, owns,
 * leaks, the live blocks) and fork wait for it, yielding the CPU after a short
 * spin.  An allocation or a free that finds it taken never waits: it leaves its
 * block on one of the shard's two stacks, and the lock's next holder lists or
 * frees it (drain).  A holder interrupted by a signal whose handler waits for
 * another thread (a mutex held by a thread that then frees one of this shard's
 * blocks) would otherwise hold that thread up for ever: a deadlock the program
 * does not have without keel.
 */
static void shard_lock(keel__heap_shard *s)
{
    unsigned spins = 0;
    while (__atomic_exchange_n(&s->lock, 1, __ATOMIC_ACQUIRE) != 0)
        while (__atomic_load_n(&s->lock, __ATOMIC_RELAXED) != 0)
            if (++spins % 64 == 0)
                (void)sched_yield();
}

static bool shard_trylock(keel__heap_shard *s)
{
    return __atomic_exchange_n(&s->lock, 1, __ATOMIC_ACQUIRE) == 0;
}

static void shard_unlock(keel__heap_shard *s)
{
    KEEL_ASSERT(__atomic_load_n(&s->lock, __ATOMIC_RELAXED) == 1);
    __atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
}

KEEL__STATIC_ASSERT(sizeof(size_t) == sizeof(keel__blk *), "a listing's link is kept in live_at");

/* b onto a shard's stack of listings (add: linked by live_at) or of frees (linked by next): a
 * compare-and-swap, as a signal handler may push while its thread pushes or takes the stack. */
static void pend_push(keel__blk **top, keel__blk *b, bool add)
{
    keel__blk *old = __atomic_load_n(top, __ATOMIC_RELAXED);
    do {
        if (add)
            memcpy(&b->live_at, &old, sizeof(b->live_at));
        else
            b->next = old;
    } while (!__atomic_compare_exchange_n(top, &old, b, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* What a holder of a shard's lock leaves for after it: guard_free takes special_lock (which fork
 * takes before the shards'), and an evicted block's check may report. */
typedef struct shard_later {
    keel__blk *evict;   /* out of the quarantine: back to the arena */
    keel__blk *guarded; /* freed blocks on guard pages: their slots to reuse */
    unsigned me;        /* this thread's shard (my_shard) */
} shard_later;

/* Add b to shard s's live blocks (s locked).  False: no memory to grow the array. */
static bool live_add(keel__heap_shard *s, keel__blk *b)
{
    KEEL_ASSERT(s->nlive <= s->live_cap);
    if (s->nlive == s->live_cap) {
        size_t cap = s->live_cap != 0 ? 2 * s->live_cap : 256;
        keel__blk **grown = (keel__blk **)realloc((void *)s->live, cap * sizeof(keel__blk *));
        if (grown == NULL)
            return false;
        s->live = grown;
        s->live_cap = cap;
    }
    b->live_at = s->nlive;
    s->live[s->nlive++] = b;
    return true;
}

/* Take b out of shard s's live blocks (s locked): the last one takes its place.  False: not there. */
static bool live_remove(keel__heap_shard *s, keel__blk *b)
{
    KEEL_ASSERT(s->nlive <= s->live_cap);
    size_t at = b->live_at;
    if (KEEL_UNLIKELY(at >= s->nlive || s->live[at] != b)) {
        /* its header was overwritten (and reported), or it is no longer live: look */
        for (at = 0; at < s->nlive && s->live[at] != b; at++) {
        }
        if (at == s->nlive)
            return false;
    }
    keel__blk *last = s->live[--s->nlive];
    s->live[at] = last;
    last->live_at = at;
    return true;
}

/* b, freed (its magic says so, poisoned) and out of the live blocks, into shard s's quarantine
 * (newest last), or for later on a guard page; the oldest beyond the limit for later.  s locked. */
static void quarantine(keel__heap_shard *s, keel__blk *b, shard_later *later)
{
    if (b->guarded) { /* its slot in the guard pool is its quarantine: checked when reused */
        b->next = later->guarded;
        later->guarded = b;
        return;
    }
    long long qlimit = keel__opt_int(KEEL__OPT_HEAP_QUARANTINE) / KEEL__HEAP_SHARDS;
    b->next = NULL;
    if (s->q_newest != NULL)
        s->q_newest->next = b;
    else
        s->q_oldest = b;
    s->q_newest = b;
    s->q_bytes += b->size + HDR;
    while (s->q_oldest != NULL && s->q_bytes > (size_t)qlimit) {
        keel__blk *o = s->q_oldest;
        s->q_oldest = o->next;
        if (s->q_oldest == NULL)
            s->q_newest = NULL;
        s->q_bytes -= o->size + HDR;
        o->next = later->evict;
        later->evict = o;
    }
}

/*
 * The blocks left on shard s's stacks by the calls that found its lock taken (s locked now): the
 * frees taken first, then the listings, so that each block freed is listed before.  A listing
 * that finds no memory to grow the array, and a free of a block not listed yet then, wait for the
 * next holder again.
 */
static void drain(keel__heap_shard *s, shard_later *later)
{
    if (KEEL_LIKELY(((uintptr_t)__atomic_load_n(&s->pend_free, __ATOMIC_RELAXED) |
                     (uintptr_t)__atomic_load_n(&s->pend_add, __ATOMIC_RELAXED)) == 0))
        return;
    keel__blk *frees = __atomic_exchange_n(&s->pend_free, NULL, __ATOMIC_ACQUIRE);
    keel__blk *adds = __atomic_exchange_n(&s->pend_add, NULL, __ATOMIC_ACQUIRE);
    bool unlisted = false;
    while (adds != NULL) {
        keel__blk *next = NULL;
        memcpy(&next, &adds->live_at, sizeof(adds->live_at)); /* (the link: live_at) */
        if (!live_add(s, adds)) {
            pend_push(&s->pend_add, adds, true);
            unlisted = true;
        }
        adds = next;
    }
    while (frees != NULL) {
        keel__blk *next = frees->next;
        if (live_remove(s, frees))
            quarantine(s, frees, later);
        else if (unlisted)
            pend_push(&s->pend_free, frees, false);
        /* else not a live block of the shard (its header overwritten): left alone */
        frees = next;
    }
}

/* Shard s locked for a sweep, the blocks left on its stacks listed or freed. */
static void shard_take(keel__heap_shard *s, shard_later *later)
{
    shard_lock(s);
    drain(s, later);
}

/* What the holder of a shard's lock left for after it (the lock given back). */
static void after_lock(shard_later *later)
{
    while (later->guarded != NULL) {
        keel__blk *next = later->guarded->next;
        guard_free(later->guarded);
        later->guarded = next;
    }
    while (later->evict != NULL) {
        keel__blk *next = later->evict->next;
        release_blk(later->evict, later->me);
        later->evict = next;
    }
}

/* Shard s given back after a sweep (shard_take). */
static void shard_give(keel__heap_shard *s, shard_later *later)
{
    shard_unlock(s);
    after_lock(later);
}

keel_status keel__blk_alloc(keel__heap *h, size_t size, size_t align, bool zero, void **out,
                            const char *file, int line, const char *func)
{
    KEEL_ASSERT(h != NULL && out != NULL);
    unsigned me = my_shard();
    release_own(h, me);
    if (!keel__heap_reserve(h, size))
        return keel__heap_failed(h, size, KEEL__HEAP_QUOTA, file, line, func);
    keel__blk *b = NULL;
    long long every = keel__opt_int(KEEL__OPT_HEAP_GUARD_SAMPLE);
    if (every > 0 && align <= 16 && ++tls_guard_count % (unsigned long long)every == 0)
        (void)guard_alloc(h, size, &b);
    if (b == NULL) {
        size_t hdr = align > 16 ? ((size_t)HDR + align - 1) / align * align : (size_t)HDR;
        /* zeroed by the allocator, which leaves the pages of a large block untouched */
        unsigned char *raw =
            (unsigned char *)keel__heap_raw_alloc(h, hdr + size + TAIL, align, zero);
        if (raw == NULL) {
            keel__heap_unreserve(h, size);
            return keel__heap_failed(h, size, KEEL__HEAP_NOMEM, file, line, func);
        }
        b = (keel__blk *)(void *)(raw + hdr - HDR);
        b->guarded = 0;
        b->offset = (unsigned)(hdr - HDR);
    }
    b->magic = magic_of(MAGIC_LIVE, b);
    b->heap = h;
    b->size = size;
    KEEL_ASSERT(align == 0 || (align & (align - 1)) == 0);
    b->align_log = (unsigned char)(align != 0 ? __builtin_ctzll(align) + 1 : 0);
    b->poisoned = 0;
    b->file = file;
    b->func = func;
    b->line = line;
    b->free_file = NULL;
    b->free_line = 0;
    b->canary = magic_of(CANARY, b);
    b->next = NULL;
    memcpy(user_of(b) + size, tail_pattern, TAIL);
    unsigned sh = me;
    b->shard = (unsigned char)sh;
    keel__heap_shard *s = &h->shards[sh];
    bool listed = true;
    if (KEEL_LIKELY(shard_trylock(s))) {
        shard_later later = {NULL, NULL, me};
        drain(s, &later);
        listed = live_add(s, b);
        shard_give(s, &later);
    } else {
        pend_push(&s->pend_add, b, true); /* (listed by the lock's holder, or its next) */
    }
    if (KEEL_UNLIKELY(!listed)) {
        /* undone as a free would, without a quarantine */
        b->magic = magic_of(MAGIC_FREED, b);
        b->free_file = file;
        b->free_line = line;
        poison_freed(b);
        if (b->guarded)
            guard_free(b); /* poisoned: its slot may be reused */
        else
            keel__heap_raw_free(h, (unsigned char *)b - b->offset);
        keel__heap_unreserve(h, size);
        return keel__heap_failed(h, size, KEEL__HEAP_NOMEM, file, line, func);
    }
    /*
     * After the lock, not before: taking it is a full barrier, which would wait
     * for every store of the fill to reach the cache.  Listed but not yet
     * filled is fine: no other thread reads a live block's contents.  A fresh
     * block is poisoned on its first heap.fill bytes (fill_len); a zeroed one
     * came zeroed from the allocator, but for a sample in a guard page's slot.
     */
    if (!zero)
        memset(user_of(b), FRESH, fill_len(size));
    else if (b->guarded)
        memset(user_of(b), 0, size);
    *out = user_of(b);
    return KEEL_OK;
}

/*
 * Can the header before p be read?  Within p's own page it can (p is mapped if
 * it is a pointer at all); a header reaching into the page before is checked
 * with mincore(), which fails for an unmapped page - a foreign pointer at the
 * start of a mapping must not crash the check meant to catch it.
 */
static bool header_readable(const void *p)
{
    if ((uintptr_t)p < HDR)
        return false;
    size_t ps = pagesz();
    size_t in_page = (uintptr_t)p & (ps - 1); /* a power of two: no division */
    if (in_page >= HDR)
        return true;
    const char *prev_page = (const char *)p - in_page - ps;
    void *addr = NULL;
    memcpy(&addr, &prev_page, sizeof(void *)); /* mincore takes void *; nothing is written */
    unsigned char vec = 0;
    return mincore(addr, 1, &vec) == 0;
}

bool keel__blk_validate(keel__heap *h, void *p, size_t *size, keel__heap **owner, const char *what,
                        const char *file, int line, const char *func)
{
    KEEL_ASSERT(h != NULL && p != NULL);
    keel__blk *b = (keel__blk *)(void *)((unsigned char *)p - HDR);
    /* both lines of the header at once (a prefetch never faults, even for a foreign p) */
    __builtin_prefetch(b);
    __builtin_prefetch((unsigned char *)p - 1);
    char msg[200];
    if ((uintptr_t)p % 16 != 0 || !header_readable(p) ||
        (b->magic != magic_of(MAGIC_LIVE, b) && b->magic != magic_of(MAGIC_FREED, b))) {
        (void)snprintf(msg, sizeof(msg),
                       "%s of %p through module '%s': not a block of any keel heap (or its "
                       "header was overwritten)",
                       what, p, h->name);
        report_blk(msg, NULL, file, line, func, 0);
        return false;
    }
    if (b->magic == magic_of(MAGIC_FREED, b)) {
        (void)snprintf(msg, sizeof(msg),
                       "double free: %s of a %zu-byte block of module '%s' "
                       "that was already freed",
                       what, b->size, b->heap->name);
        report_blk(msg, b, file, line, func, 0);
        return false;
    }
    if (b->heap != h) {
        (void)snprintf(msg, sizeof(msg),
                       "%s through module '%s' of a block that module '%s' allocated", what,
                       h->name, b->heap->name);
        report_blk(msg, b, file, line, func, 0);
        /* under a report policy, go on with the heap that owns it */
    }
    (void)canaries_ok(b, file, line, func);
    *size = b->size;
    *owner = b->heap;
    return true;
}

/*
 * Check a freed block's poison; a change is a write after free, reported (with
 * the allocation and free sites) and the poison restored, so once.  True when intact.
 */
static bool poison_intact(keel__blk *b)
{
    KEEL_ASSERT(b->poisoned <= b->size);
    long at = first_not(user_of(b), b->poisoned, FREED);
    if (at < 0)
        return true;
    char msg[200];
    (void)snprintf(msg, sizeof(msg),
                   "write after free: a freed %zu-byte block of module '%s' was changed at "
                   "offset %ld",
                   b->size, b->heap->name, at);
    report_blk(msg, b, b->free_file, b->free_line, "(quarantine)", at);
    memset(user_of(b), FREED, b->poisoned);
    return false;
}

/* b's memory back to the arena: no longer a block, so a later free of it is an invalid one,
 * never taken for a freed block. */
static void give_back(keel__blk *b)
{
    b->magic = 0;
    b->canary = 0;
    keel__heap_raw_free(b->heap, (unsigned char *)b - b->offset);
}

/*
 * Over the C library's allocator (keel-run), a block is given back by a thread of its shard, the
 * thread that most likely allocated it, in whose arena it then is: another thread's free would
 * take that arena's lock, which the block's thread may hold, interrupted by a signal whose
 * handler waits for the other thread (a free the program never makes without keel, whose
 * quarantine moves frees between threads).  So a block of another shard leaving the quarantine
 * waits for a call of that shard's thread (release_own), up to RELEASE_CAP bytes a shard.
 */
#if defined(KEEL_HEAP_SYSTEM) && KEEL_HEAP_SYSTEM
enum { RELEASE_CAP = 4 << 20 };

static bool release_later(keel__blk *b, unsigned me)
{
    if (b->shard == me)
        return false;
    keel__heap_shard *s = &b->heap->shards[b->shard];
    size_t bytes = b->size + HDR;
    if (__atomic_add_fetch(&s->pend_release_bytes, bytes, __ATOMIC_RELAXED) > RELEASE_CAP) {
        (void)__atomic_sub_fetch(&s->pend_release_bytes, bytes, __ATOMIC_RELAXED);
        return false; /* given back by this thread: the C library's own window */
    }
    keel__blk *old = __atomic_load_n(&s->pend_release, __ATOMIC_RELAXED);
    do
        b->next = old;
    while (!__atomic_compare_exchange_n(&s->pend_release, &old, b, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
    return true;
}

/* The blocks of this thread's shard that other threads took out of its quarantine, given back. */
static void release_own(keel__heap *h, unsigned me)
{
    keel__heap_shard *s = &h->shards[me];
    if (KEEL_LIKELY(__atomic_load_n(&s->pend_release, __ATOMIC_RELAXED) == NULL))
        return;
    keel__blk *b = __atomic_exchange_n(&s->pend_release, NULL, __ATOMIC_ACQUIRE);
    while (b != NULL) {
        keel__blk *next = b->next;
        (void)__atomic_sub_fetch(&s->pend_release_bytes, b->size + HDR, __ATOMIC_RELAXED);
        give_back(b);
        b = next;
    }
}
#else
static bool release_later(keel__blk *b, unsigned me)
{
    (void)b;
    (void)me;
    return false;
}

static void release_own(keel__heap *h, unsigned me)
{
    (void)h;
    (void)me;
}
#endif

/* Give an evicted block back to the arena, after checking its poison. */
static void release_blk(keel__blk *b, unsigned me)
{
    (void)poison_intact(b);
    if (b->guarded)
        return; /* its slot in the guard pool is reused as it is */
    if (!release_later(b, me))
        give_back(b);
}

/*
 * A sized free of b said `sized` bytes: report it unless that is b's size and
 * b is not over-aligned (release would account such a block by the wrong size class).
 */
static void check_sized(const keel__blk *b, size_t sized, const char *file, int line,
                        const char *func)
{
    char msg[200];
    if (align_of(b) > 16)
        (void)snprintf(msg, sizeof(msg),
                       "sized free of a %zu-byte block of module '%s' aligned to %zu: free "
                       "blocks of keel_heap_aligned with keel_heap_free",
                       b->size, b->heap->name, align_of(b));
    else if (sized != b->size)
        (void)snprintf(msg, sizeof(msg),
                       "sized free of a %zu-byte block of module '%s' gave %zu bytes as its size",
                       b->size, b->heap->name, sized);
    else
        return;
    report_blk(msg, b, file, line, func, 0);
}

void keel__blk_free(keel__heap *h, void *p, const size_t *sized, const char *file, int line,
                    const char *func)
{
    size_t size = 0;
    keel__heap *owner = NULL;
    if (!keel__blk_validate(h, p, &size, &owner, sized != NULL ? "sized free" : "free", file, line,
                            func))
        return;
    keel__blk *b = (keel__blk *)(void *)((unsigned char *)p - HDR);
    if (sized != NULL)
        check_sized(b, *sized, file, line, func); /* then freed as it is */
    unsigned me = my_shard();
    release_own(owner, me);
    keel__heap_shard *s = &owner->shards[b->shard];
    /* the block is this call's to free: of two threads freeing it at once, one is told so */
    unsigned long long live = magic_of(MAGIC_LIVE, b);
    if (KEEL_UNLIKELY(!__atomic_compare_exchange_n(&b->magic, &live, magic_of(MAGIC_FREED, b),
                                                   false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))) {
        report_blk("double free: two threads freed one block at once", b, file, line, func, 0);
        return;
    }
    b->free_file = file;
    b->free_line = line;
    if (KEEL_UNLIKELY(!shard_trylock(s))) {
        poison_freed(b);
        pend_push(&s->pend_free, b, false); /* (freed by the lock's holder, or its next) */
        keel__heap_release(owner, size);
        return;
    }
    shard_later later = {NULL, NULL, me};
    drain(s, &later);
    if (KEEL_UNLIKELY(!live_remove(s, b))) {
        shard_give(s, &later);
        report_blk("free of a block its shard does not list: its header was overwritten", b, file,
                   line, func, 0);
        return;
    }
    /* under the lock, whose taking would otherwise wait for all of these stores; giving it back does not */
    poison_freed(b);
    quarantine(s, b, &later);
    if (s->q_oldest != NULL) /* the next to leave: its header is read then, and it is cold */
        __builtin_prefetch(s->q_oldest);
    shard_unlock(s);
    keel__heap_release(owner, size);
    after_lock(&later);
}

/* ---- sweeps --------------------------------------------------------------------------------- */

keel_status keel__blk_check(keel__heap *h)
{
    unsigned bad = 0;
    for (int i = 0; i < KEEL__HEAP_SHARDS; i++) {
        keel__heap_shard *s = &h->shards[i];
        shard_later later = {NULL, NULL, my_shard()};
        shard_take(s, &later);
        for (size_t k = 0; k < s->nlive; k++) {
            const keel__blk *b = s->live[k];
            bad += canaries_ok(b, b->file, b->line, b->func) ? 0u : 1u;
        }
        for (keel__blk *b = s->q_oldest; b != NULL; b = b->next)
            bad += poison_intact(b) ? 0u : 1u;
        shard_give(s, &later);
    }
    if (bad == 0)
        return KEEL_OK;
    return keel_status_with_uint(
        keel_status_with_str(
            KEEL_ERR(KEEL_E_INTERNAL, "heap of module '%s': %u corrupted blocks", h->name, bad),
            "module", h->name),
        "corrupted", bad);
}

keel_status keel__blk_owns(keel__heap *h, const void *ptr, size_t len)
{
    const unsigned char *p = (const unsigned char *)ptr;
    const keel__blk *partial = NULL;
    bool inside = false;
    for (int i = 0; i < KEEL__HEAP_SHARDS && !inside; i++) {
        keel__heap_shard *s = &h->shards[i];
        shard_later later = {NULL, NULL, my_shard()};
        shard_take(s, &later);
        for (size_t k = 0; k < s->nlive && !inside; k++) {
            keel__blk *b = s->live[k];
            const unsigned char *u = user_of(b);
            if (p >= u && p < u + b->size) {
                if (len <= b->size - (size_t)(p - u))
                    inside = true;
                else
                    partial = b;
            }
        }
        shard_give(s, &later);
    }
    unsigned nreg = __atomic_load_n(&h->nregions, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < nreg && !inside; i++) {
        const char *r = h->region_start[i];
        inside = (const char *)ptr >= r && len <= h->region_len[i] &&
                 (size_t)((const char *)ptr - r) <= h->region_len[i] - len;
    }
    if (inside)
        return KEEL_OK;
    if (partial != NULL)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_RANGE,
                     "buffer [%p, +%zu) runs %zu bytes past the end of a %zu-byte block of "
                     "module '%s' allocated at %s:%d",
                     ptr, len,
                     len - (partial->size - (size_t)(p - (const unsigned char *)partial - HDR)),
                     partial->size, h->name, partial->file, partial->line),
            "module", h->name);
    return keel_status_with_str(KEEL_ERR(KEEL_E_RANGE,
                                         "buffer [%p, +%zu) is not inside any live block or "
                                         "registered region of module '%s'",
                                         ptr, len, h->name),
                                "module", h->name);
}

typedef struct leak_site {
    const char *file;
    const char *func;
    int line;
    unsigned long long blocks;
    unsigned long long bytes;
} leak_site;

void keel__blk_leaks(keel__heap *h)
{
    keel__blk_leaks_if(h, NULL, NULL);
}

void keel__blk_leaks_if(keel__heap *h, bool (*leaked)(const void *user, void *ctx), void *ctx)
{
    leak_site sites[LEAK_SITES];
    size_t nsites = 0;
    unsigned long long blocks = 0;
    unsigned long long bytes = 0;
    for (int i = 0; i < KEEL__HEAP_SHARDS; i++) {
        keel__heap_shard *s = &h->shards[i];
        shard_later later = {NULL, NULL, my_shard()};
        shard_take(s, &later);
        for (size_t n = 0; n < s->nlive; n++) {
            const keel__blk *b = s->live[n];
            if (leaked != NULL && !leaked(user_of(s->live[n]), ctx))
                continue;
            blocks++;
            bytes += b->size;
            size_t k = 0;
            while (k < nsites && !(sites[k].line == b->line && strcmp(sites[k].file, b->file) == 0))
                k++;
            if (k == nsites && nsites < LEAK_SITES) {
                sites[k].file = b->file;
                sites[k].func = b->func;
                sites[k].line = b->line;
                sites[k].blocks = 0;
                sites[k].bytes = 0;
                nsites++;
            }
            if (k < nsites) {
                sites[k].blocks++;
                sites[k].bytes += b->size;
            }
        }
        shard_give(s, &later);
    }
    if (blocks == 0)
        return;
    keel_report *r =
        leaked != NULL
            ? keel_report_begin(KEEL_REPORT_LEAK, sites[0].file, sites[0].line, sites[0].func,
                                "%llu blocks (%llu bytes) of the %s heap leaked: unreachable at "
                                "exit",
                                blocks, bytes, h->name)
            : keel_report_begin(KEEL_REPORT_LEAK, sites[0].file, sites[0].line, sites[0].func,
                                "module '%s' stopped with %llu blocks (%llu bytes) still allocated",
                                h->name, blocks, bytes);
    keel_report_add_str(r, "module", h->name);
    keel_report_add_uint(r, "blocks", blocks);
    keel_report_add_uint(r, "bytes", bytes);
    for (size_t k = 0; k < nsites; k++)
        keel_report_add_text(r, "%llu blocks, %llu bytes allocated at %s:%d in %s()",
                             sites[k].blocks, sites[k].bytes, sites[k].file, sites[k].line,
                             sites[k].func);
    (void)keel_report_emit(r); /* its backtrace: the program's call that stopped the module */
}

/* ---- for a heap that serves the C library's malloc (keel-run: run/run_heap.c) ---------------- */

bool keel__blk_is(const void *p)
{
    if ((uintptr_t)p % 16 != 0 || !header_readable(p))
        return false;
    const keel__blk *b = (const keel__blk *)(const void *)((const unsigned char *)p - HDR);
    return b->magic == magic_of(MAGIC_LIVE, b) || b->magic == magic_of(MAGIC_FREED, b);
}

size_t keel__blk_size(const void *p)
{
    return ((const keel__blk *)(const void *)((const unsigned char *)p - HDR))->size;
}

void keel__blk_live(keel__heap *h,
                    void (*visit)(void *ctx, const void *user, size_t size, const char *file),
                    void *ctx)
{
    for (int i = 0; i < KEEL__HEAP_SHARDS; i++) {
        keel__heap_shard *s = &h->shards[i];
        shard_later later = {NULL, NULL, my_shard()};
        shard_take(s, &later);
        for (size_t n = 0; n < s->nlive; n++)
            visit(ctx, user_of(s->live[n]), s->live[n]->size, s->live[n]->file);
        shard_give(s, &later);
    }
}

void keel__blk_fork(keel__heap *h, int phase)
{
    if (phase == 0) {
        KEEL_VERIFY(pthread_mutex_lock(&special_lock) == 0);
        for (int i = 0; i < KEEL__HEAP_SHARDS; i++)
            shard_lock(&h->shards[i]);
        return;
    }
    /* parent and child alike: the forking thread holds them all */
    for (int i = KEEL__HEAP_SHARDS - 1; i >= 0; i--)
        shard_unlock(&h->shards[i]);
    KEEL_VERIFY(pthread_mutex_unlock(&special_lock) == 0);
}

#endif
