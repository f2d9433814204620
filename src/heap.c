/*
 * heap.c - module heaps: jemalloc arenas of each module's own, a per-thread cache
 * per module, accounting and quotas, and the allocation API.  The devel
 * checks on every block are in heap_debug.c.
 */
#include "heap.h"

#ifndef KEEL_HEAP_SYSTEM
#define KEEL_HEAP_SYSTEM 0 /* 1: the sanitizer's malloc (set by the build under KEEL_SANITIZE) */
#endif

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if KEEL_HEAP_SYSTEM
#include <malloc.h>
#else
#include <jemalloc/jemalloc.h>
#endif

enum { MAX_CACHED_HEAPS = 64 };

static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static keel__heap *heaps; /* atomic head; records are never freed */
static unsigned nheaps;
static keel__heap program_heap;
static pthread_once_t program_once = PTHREAD_ONCE_INIT;
static bool program_made;     /* atomic: program_heap is made (make_program_heap ran) */
static unsigned program_slot; /* program_heap's heap_slot, as a module's (keel/module.h) */

keel__heap *keel__heap_first(void)
{
    return __atomic_load_n(&heaps, __ATOMIC_ACQUIRE);
}

/*
 * Per thread and heap: the jemalloc cache, and accounting deltas folded into
 * the heap's shared counters every FLUSH_OPS operations (and at thread exit),
 * so that threads allocating from one heap do not share a cache line on
 * every call.  A heap with a quota is accounted exactly instead.
 */
enum { FLUSH_OPS = KEEL__HEAP_FOLD };

/* The record is keel/heap_fast.h's: release programs update it inline. */
typedef keel__heap_local heap_local;

const int KEEL__HEAP_LAYOUT_SYMBOL(KEEL__HEAP_LAYOUT) = KEEL__HEAP_LAYOUT;

static pthread_key_t local_key;
static pthread_once_t local_once = PTHREAD_ONCE_INIT;
__thread heap_local *keel__heap_tls __attribute__((tls_model("initial-exec")));

static void flush_local(heap_local *l);
static void destroy_tcache(unsigned id);

static void thread_done(void *arg)
{
    heap_local *v = (heap_local *)arg;
    for (unsigned i = 0; i < MAX_CACHED_HEAPS; i++) {
        if (v[i].heap != NULL)
            flush_local(&v[i]);
        if (v[i].tcache != 0 && v[i].tcache != ~0u)
            destroy_tcache(v[i].tcache - 1);
    }
    free(v);
    keel__heap_tls = NULL;
}

static void make_local_key(void)
{
    KEEL_VERIFY(pthread_key_create(&local_key, thread_done) == 0);
}

/* This thread's records, made on its first use of a heap (NULL: out of memory). */
static __attribute__((noinline)) heap_local *make_locals(void)
{
    (void)pthread_once(&local_once, make_local_key);
    heap_local *v = (heap_local *)calloc(MAX_CACHED_HEAPS, sizeof(heap_local));
    if (v == NULL)
        return NULL;
    (void)pthread_setspecific(local_key, v);
    keel__heap_tls = v;
    return v;
}

/* This thread's record for heap h, or NULL (too many heaps, or out of memory). */
static inline heap_local *local_of(keel__heap *h)
{
    if (KEEL_UNLIKELY(h->index >= MAX_CACHED_HEAPS))
        return NULL;
    heap_local *v = keel__heap_tls;
    if (KEEL_UNLIKELY(v == NULL) && (v = make_locals()) == NULL)
        return NULL;
    heap_local *l = &v[h->index];
    l->heap = h;
    return l;
}

/* ---- the backend ----------------------------------------------------------------------- */

/* Requests up to this size take the release fast paths (and class_size's table; see fast_max). */
enum { CLASS_TABLE_MAX = 16384 };

/*
 * What keel/heap_fast.h's inlined paths read: the size-class table, how far
 * it goes (0: no inlined path), the backend's calls.
 */
unsigned short keel__heap_classes[CLASS_TABLE_MAX / 8 + 1];
size_t keel__heap_inline_max;

/*
 * backend_alloc / backend_free take the flags this thread uses for a heap
 * (flags_of: chosen once per thread and heap, kept in its heap_local);
 * class_size is the usable size of a block asked for with (size, align),
 * usable_size that of a block.
 */

#if KEEL_HEAP_SYSTEM

static void destroy_tcache(unsigned id)
{
    (void)id;
}

static void make_arena(keel__heap *h)
{
    h->narenas = 0;
}

static int choose_flags(keel__heap *h, heap_local *l)
{
    (void)h;
    (void)l;
    return 1; /* not used: any value but 0 ("not chosen yet") */
}

static void *backend_alloc(size_t size, size_t align, int flags, bool zero)
{
    (void)flags;
    if (align <= 16) /* calloc: a fresh mapping is not written to (demand-zero pages) */
        return zero ? calloc(1, size) : malloc(size);
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0)
        return NULL;
    if (zero) /* the one case the C library has no zeroed allocation for */
        memset(p, 0, size);
    return p;
}

/* backend_alloc of a request the fast path takes (size >= 1, no alignment). */
KEEL__UNUSED static inline void *fast_backend_alloc(size_t size, int flags)
{
    (void)flags;
    return malloc(size);
}

static void backend_free(void *p, int flags)
{
    (void)flags;
    free(p);
}

/* Never called: keel__heap_inline_max stays 0 with this backend. */
void *(*const keel__heap_backend_alloc)(size_t size, int flags) = fast_backend_alloc;
void (*const keel__heap_backend_free)(void *p, int flags) = backend_free;

KEEL__UNUSED static size_t usable_size(void *p)
{
    return malloc_usable_size(p);
}

KEEL__UNUSED static void *raw_realloc(void *p, size_t size, int flags)
{
    (void)flags;
    return realloc(p, size);
}

KEEL__UNUSED static size_t class_size(void *p, size_t size, size_t align)
{
    (void)size;
    (void)align;
    return usable_size(p);
}

/* Requests up to this size take the release fast paths. */
KEEL__UNUSED static inline size_t fast_max(void)
{
    return CLASS_TABLE_MAX;
}

/* class_size of a request the fast paths take. */
KEEL__UNUSED static inline size_t fast_class(void *p, size_t size)
{
    (void)size;
    return usable_size(p);
}

#else

static void destroy_tcache(unsigned id)
{
    (void)mallctl("tcache.destroy", NULL, NULL, &id, sizeof(id));
}

/*
 * Usable sizes of small requests, from nallocx once: class_size is then one
 * load.  Index (size + 7) / 8: every size class is a multiple of 8, which
 * make_classes checks (the table stays unused if not).
 */
static size_t class_table_max; /* CLASS_TABLE_MAX once the table is made and checked, else 0 */
static pthread_once_t class_once = PTHREAD_ONCE_INIT;

static void make_classes(void)
{
    for (size_t i = 0; i <= CLASS_TABLE_MAX / 8; i++) {
        size_t usable = nallocx(i != 0 ? i * 8 : 1, 0);
        if (usable > 0xffff || (i != 0 && nallocx(i * 8 - 7, 0) != usable))
            return;
        keel__heap_classes[i] = (unsigned short)usable;
    }
    class_table_max = CLASS_TABLE_MAX;
    __atomic_store_n(&keel__heap_inline_max, (size_t)CLASS_TABLE_MAX, __ATOMIC_RELEASE);
}

/* A few arenas per module (threads spread over them, as jemalloc does for its own). */
static void make_arena(keel__heap *h)
{
    (void)pthread_once(&class_once, make_classes);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned want =
        cpus > 1 ? (unsigned)(cpus < (long)KEEL__HEAP_ARENAS ? cpus : (long)KEEL__HEAP_ARENAS) : 1;
    h->narenas = 0;
    while (h->narenas < want) {
        unsigned arena = 0;
        size_t len = sizeof(arena);
        if (mallctl("arenas.create", &arena, &len, NULL, 0) != 0)
            break;
        h->arenas[h->narenas++] = arena;
    }
}

static KEEL__TLS unsigned tls_arena_slot = ~0u;
static unsigned arena_slots;

/* mallocx flags for heap h on this thread: one of its arenas, and this thread's cache for it. */
static int choose_flags(keel__heap *h, heap_local *l)
{
    if (h->narenas == 0)
        return MALLOCX_TCACHE_NONE;
    if (KEEL_UNLIKELY(tls_arena_slot == ~0u))
        tls_arena_slot = __atomic_fetch_add(&arena_slots, 1, __ATOMIC_RELAXED);
    int flags = (int)MALLOCX_ARENA(h->arenas[tls_arena_slot % h->narenas]);
    if (l == NULL)
        return flags | MALLOCX_TCACHE_NONE;
    if (KEEL_UNLIKELY(l->tcache == 0)) {
        unsigned id = 0;
        size_t len = sizeof(id);
        l->tcache = mallctl("tcache.create", &id, &len, NULL, 0) == 0 ? id + 1 : ~0u;
    }
    if (l->tcache == ~0u)
        return flags | MALLOCX_TCACHE_NONE;
    return flags | (int)MALLOCX_TCACHE(l->tcache - 1);
}

static void *backend_alloc(size_t size, size_t align, int flags, bool zero)
{
    if (align > 16)
        flags |= (int)MALLOCX_ALIGN(align);
    if (zero) /* jemalloc zeroes a fresh extent by not touching it (demand-zero pages), a reused
                 one by purging it (MADV_DONTNEED): a huge zeroed block stays untouched */
        flags |= MALLOCX_ZERO;
    return mallocx(size != 0 ? size : 1, flags);
}

/* backend_alloc of a request the fast path takes (size >= 1: mallocx's 0 is undefined). */
KEEL__UNUSED static inline void *fast_backend_alloc(size_t size, int flags)
{
    return mallocx(size, flags);
}

static void backend_free(void *p, int flags)
{
    dallocx(p, flags); /* the arena bits are ignored; the cache's are used */
}

void *(*const keel__heap_backend_alloc)(size_t size, int flags) = mallocx;
void (*const keel__heap_backend_free)(void *p, int flags) = dallocx;

KEEL__UNUSED static size_t usable_size(void *p)
{
    return sallocx(p, 0);
}

KEEL__UNUSED static void *raw_realloc(void *p, size_t size, int flags)
{
    return rallocx(p, size != 0 ? size : 1, flags);
}

/* The usable size of a block just allocated for (size, align): size-class arithmetic only. */
KEEL__UNUSED static size_t class_size(void *p, size_t size, size_t align)
{
    (void)p;
    if (KEEL_LIKELY(align <= 16 && size <= class_table_max))
        return keel__heap_classes[(size + 7) / 8];
    return nallocx(size != 0 ? size : 1, align > 16 ? (int)MALLOCX_ALIGN(align) : 0);
}

/*
 * Requests up to this size take the release fast paths: those the table
 * answers (0 if it could not be made), so that a fast path makes no call
 * but jemalloc's.
 */
KEEL__UNUSED static inline size_t fast_max(void)
{
    return class_table_max;
}

/* class_size of a request the fast paths take (size <= fast_max()): one load, no call. */
KEEL__UNUSED static inline size_t fast_class(void *p, size_t size)
{
    (void)p;
    KEEL_ASSERT(size <= class_table_max);
    return keel__heap_classes[(size + 7) / 8];
}

#endif

/* This thread's flags for heap h (l: its record, or NULL). */
static inline int flags_of(keel__heap *h, heap_local *l)
{
    if (KEEL_LIKELY(l != NULL && l->flags != 0))
        return l->flags;
    int flags = choose_flags(h, l);
    if (l != NULL)
        l->flags = flags;
    return flags;
}

void *keel__heap_raw_alloc(keel__heap *h, size_t size, size_t align, bool zero)
{
    return backend_alloc(size, align, flags_of(h, local_of(h)), zero);
}

void keel__heap_raw_free(keel__heap *h, void *raw)
{
    backend_free(raw, flags_of(h, local_of(h)));
}

/* ---- heaps ------------------------------------------------------------------------------- */

static void heap_init(keel__heap *h, const keel_module *m)
{
    memset(h, 0, sizeof(*h));
    h->mod = m;
    h->name = m != NULL ? m->name : "program";
    make_arena(h);
#if KEEL_DEVEL
    char name[128];
    (void)snprintf(name, sizeof(name), "%s.alloc", m != NULL ? m->name : "program");
    h->stress_site = keel__stress_dynamic_site(name, __FILE__, "keel_heap_alloc");
#endif
}

/*
 * Whether the release fast paths may serve heap h (of module m, NULL: the
 * program's): its cache slot when it has no quota, kept in the module's
 * heap_slot (slot + 1; 0: no) so the fast paths find it with one load.
 */
static void set_fast(keel__heap *h, const keel_module *m, bool no_quota)
{
    unsigned i = no_quota && h->index < MAX_CACHED_HEAPS ? h->index : ~0u;
    unsigned *slot = &program_slot;
    if (m != NULL) {
        keel_module *owned = NULL; /* the field is the library's, as `heap` is */
        memcpy(&owned, &m, sizeof(keel_module *));
        slot = &owned->heap_slot;
    }
    __atomic_store_n(slot, i != ~0u ? i + 1 : 0, __ATOMIC_RELEASE);
}

static void publish_locked(keel__heap *h)
{
    h->index = nheaps++;
    h->next = heaps;
    __atomic_store_n(&heaps, h, __ATOMIC_RELEASE);
}

static void make_program_heap(void)
{
    heap_init(&program_heap, NULL);
    KEEL_VERIFY(pthread_mutex_lock(&heaps_lock) == 0);
    publish_locked(&program_heap);
    KEEL_VERIFY(pthread_mutex_unlock(&heaps_lock) == 0);
    set_fast(&program_heap, NULL, true);
    __atomic_store_n(&program_made, true, __ATOMIC_RELEASE);
}

/* The program's heap, on its first use: the options first (heap.*), outside the once. */
static __attribute__((noinline)) void first_program_heap(void)
{
    keel__lazy_init();
    (void)pthread_once(&program_once, make_program_heap);
}

/* The heap of module m, made (once) on its first use; NULL: out of memory. */
static __attribute__((noinline)) keel__heap *make_heap(const keel_module *m)
{
    keel__lazy_init(); /* a heap is made with the options in force (heap.*) */
    KEEL_VERIFY(pthread_mutex_lock(&heaps_lock) == 0);
    keel__heap *h = (keel__heap *)m->heap;
    if (h == NULL) {
        h = (keel__heap *)aligned_alloc(64, (sizeof(keel__heap) + 63) / 64 * 64);
        if (h != NULL) {
            heap_init(h, m);
            publish_locked(h);
            /* the record is the library's, as its `state` is */
            keel_module *owned = NULL;
            memcpy(&owned, &m, sizeof(keel_module *));
            __atomic_store_n(&owned->heap, (void *)h, __ATOMIC_RELEASE);
            set_fast(h, m, true);
        }
    }
    KEEL_VERIFY(pthread_mutex_unlock(&heaps_lock) == 0);
    return h;
}

/* The heap of module m (NULL: the program's), made on first use. */
static inline keel__heap *heap_of(const keel_module *m)
{
    if (m == NULL) {
        if (KEEL_UNLIKELY(!__atomic_load_n(&program_made, __ATOMIC_ACQUIRE)))
            first_program_heap();
        return &program_heap;
    }
    keel__heap *h = (keel__heap *)__atomic_load_n(&m->heap, __ATOMIC_ACQUIRE);
    if (KEEL_LIKELY(h != NULL))
        return h;
    return make_heap(m);
}

keel__heap *keel__heap_program(void)
{
    return heap_of(NULL);
}

/* ---- accounting ---------------------------------------------------------------------------- */

static void note_peak(keel__heap *h, unsigned long long live)
{
    unsigned long long peak = __atomic_load_n(&h->peak_bytes, __ATOMIC_RELAXED);
    while (live > peak && !__atomic_compare_exchange_n(&h->peak_bytes, &peak, live, true,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static __attribute__((noinline)) void flush_local(heap_local *l)
{
    keel__heap *h = (keel__heap *)l->heap;
    unsigned long long before =
        __atomic_fetch_add(&h->live_bytes, (unsigned long long)l->bytes, __ATOMIC_RELAXED);
    /* the peak as this thread saw it (other threads' deltas are not in it) */
    unsigned long long live = before + (unsigned long long)l->max_bytes;
    (void)__atomic_add_fetch(&h->live_blocks, (unsigned long long)(l->allocs - l->frees),
                             __ATOMIC_RELAXED);
    (void)__atomic_add_fetch(&h->allocations, (unsigned long long)l->allocs, __ATOMIC_RELAXED);
    (void)__atomic_add_fetch(&h->frees, (unsigned long long)l->frees, __ATOMIC_RELAXED);
    if (l->max_bytes > 0)
        note_peak(h, live);
    l->bytes = 0;
    l->max_bytes = 0;
    l->allocs = 0;
    l->frees = 0;
}

void keel__heap_fold(keel__heap_local *l)
{
    KEEL_ASSERT(l != NULL && l->heap != NULL);
    flush_local(l);
}

static inline void batch_alloc(heap_local *l, size_t bytes)
{
    if (KEEL_UNLIKELY(keel__heap_count_alloc(l, bytes)))
        flush_local(l);
}

static inline void batch_free(heap_local *l, size_t bytes)
{
    if (KEEL_UNLIKELY(keel__heap_count_free(l, bytes)))
        flush_local(l);
}

/* This thread's record for batched accounting of heap h, or NULL: exact (a quota). */
static heap_local *batched(keel__heap *h, heap_local *l)
{
    return __atomic_load_n(&h->quota, __ATOMIC_RELAXED) == 0 ? l : NULL;
}

/* Exact accounting (a quota, or no per-thread record): the shared counters. */
static __attribute__((noinline)) bool reserve_exact(keel__heap *h, size_t bytes)
{
    unsigned long long live = __atomic_add_fetch(&h->live_bytes, bytes, __ATOMIC_RELAXED);
    unsigned long long quota = __atomic_load_n(&h->quota, __ATOMIC_RELAXED);
    if (quota != 0 && live > quota) {
        (void)__atomic_sub_fetch(&h->live_bytes, bytes, __ATOMIC_RELAXED);
        return false;
    }
    note_peak(h, live);
    (void)__atomic_add_fetch(&h->live_blocks, 1, __ATOMIC_RELAXED);
    (void)__atomic_add_fetch(&h->allocations, 1, __ATOMIC_RELAXED);
    return true;
}

static __attribute__((noinline)) void release_exact(keel__heap *h, size_t bytes)
{
    (void)__atomic_sub_fetch(&h->live_bytes, bytes, __ATOMIC_RELAXED);
    (void)__atomic_sub_fetch(&h->live_blocks, 1, __ATOMIC_RELAXED);
    (void)__atomic_add_fetch(&h->frees, 1, __ATOMIC_RELAXED);
}

/* keel__heap_reserve with this thread's record l for h (or NULL). */
static inline bool reserve(keel__heap *h, heap_local *l, size_t bytes)
{
    l = batched(h, l);
    if (KEEL_UNLIKELY(l == NULL))
        return reserve_exact(h, bytes);
    batch_alloc(l, bytes);
    return true;
}

/* keel__heap_release with this thread's record l for h (or NULL). */
static inline void release(keel__heap *h, heap_local *l, size_t bytes)
{
    l = batched(h, l);
    if (KEEL_UNLIKELY(l == NULL)) {
        release_exact(h, bytes);
        return;
    }
    batch_free(l, bytes);
}

bool keel__heap_reserve(keel__heap *h, size_t bytes)
{
    return reserve(h, local_of(h), bytes);
}

void keel__heap_release(keel__heap *h, size_t bytes)
{
    release(h, local_of(h), bytes);
}

void keel__heap_unreserve(keel__heap *h, size_t bytes)
{
    heap_local *l = batched(h, local_of(h));
    if (KEEL_LIKELY(l != NULL)) {
        l->bytes -= (long long)bytes;
        l->allocs--;
        return;
    }
    (void)__atomic_sub_fetch(&h->live_bytes, bytes, __ATOMIC_RELAXED);
    (void)__atomic_sub_fetch(&h->live_blocks, 1, __ATOMIC_RELAXED);
    (void)__atomic_sub_fetch(&h->allocations, 1, __ATOMIC_RELAXED);
}

/* A block of heap h went from `old` to `now` usable bytes (no quota: cannot fail). */
KEEL__UNUSED static void resized(keel__heap *h, size_t old, size_t now)
{
    heap_local *l = local_of(h);
    if (KEEL_LIKELY(l != NULL)) {
        l->bytes += (long long)now - (long long)old;
        if (l->bytes > l->max_bytes)
            l->max_bytes = l->bytes;
        return;
    }
    if (now >= old)
        note_peak(h, __atomic_add_fetch(&h->live_bytes, now - old, __ATOMIC_RELAXED));
    else
        (void)__atomic_sub_fetch(&h->live_bytes, old - now, __ATOMIC_RELAXED);
}

keel_status keel__heap_failed(keel__heap *h, size_t size, keel__heap_failure why, const char *file,
                              int line, const char *func)
{
    (void)__atomic_add_fetch(&h->failures, 1, __ATOMIC_RELAXED);
    keel_status s;
    switch (why) {
    case KEEL__HEAP_QUOTA: {
        unsigned long long quota = __atomic_load_n(&h->quota, __ATOMIC_RELAXED);
        keel_report *r = keel_report_begin(KEEL_REPORT_QUOTA, file, line, func,
                                           "module '%s' is over its memory quota", h->name);
        keel_report_add_str(r, "module", h->name);
        keel_report_add_uint(r, "request", size);
        keel_report_add_uint(r, "live_bytes", __atomic_load_n(&h->live_bytes, __ATOMIC_RELAXED));
        keel_report_add_uint(r, "quota", quota);
        (void)keel_report_emit(r);
        s = keel__status_new(
            &keel_codespace_keel, (int)KEEL_E_FULL, KEEL_OK, file, line, func,
            "module '%s' is over its memory quota (%llu bytes) allocating %zu bytes", h->name,
            quota, size);
        break;
    }
    case KEEL__HEAP_INJECTED:
        s = keel__status_new(
            &keel_codespace_keel, (int)KEEL_E_INJECTED, KEEL_OK, file, line, func,
            "module '%s': allocation of %zu bytes failed by stress option '%s.alloc'", h->name,
            size, h->name);
        break;
    case KEEL__HEAP_NOMEM:
    default:
        s = keel__status_new(&keel_codespace_keel, (int)KEEL_E_NOMEM, KEEL_OK, file, line, func,
                             "module '%s' cannot allocate %zu bytes", h->name, size);
        break;
    }
    return keel_status_with_uint(keel_status_with_str(s, "module", h->name), "size", size);
}

/* ---- the API ------------------------------------------------------------------------------------ */

#if !KEEL_DEVEL
/* Release: the block as the arena gives it, accounted by its usable size. */
static keel_status plain_alloc(keel__heap *h, size_t size, size_t align, bool zero, void **out,
                               const char *file, int line, const char *func)
{
    heap_local *l = local_of(h);
    int flags = flags_of(h, l);
    void *p = backend_alloc(size, align, flags, zero); /* zeroed by the allocator, untouched */
    if (p == NULL)
        return keel__heap_failed(h, size, KEEL__HEAP_NOMEM, file, line, func);
    if (!reserve(h, l, class_size(p, size, align))) {
        backend_free(p, flags);
        return keel__heap_failed(h, size, KEEL__HEAP_QUOTA, file, line, func);
    }
    *out = p;
    return KEEL_OK;
}

/*
 * Release fast paths, for what nearly every call is: a heap already made, no
 * quota, this thread's cache for it already chosen - this thread's record
 * for the heap then, else NULL (the general path, which also handles every
 * failure).  No call before the decision: the fast path saves no registers.
 */
static inline heap_local *ready_local(const keel_module *m)
{
    /* one load says: heap made, no quota, its cache slot (set_fast) */
    return keel__heap_at(
        __atomic_load_n(KEEL_LIKELY(m != NULL) ? &m->heap_slot : &program_slot, __ATOMIC_ACQUIRE));
}

static inline __attribute__((always_inline)) keel_status fast_alloc(heap_local *l, size_t size,
                                                                    void **out)
{
    KEEL_ASSERT(l != NULL && l->heap != NULL && out != NULL && size != 0);
    void *p = fast_backend_alloc(size, l->flags);
    if (KEEL_UNLIKELY(p == NULL)) {
        *out = NULL;
        /* no site: keel__heap_failed uses it for quota reports only, and there is no quota */
        return keel__heap_failed((keel__heap *)l->heap, size, KEEL__HEAP_NOMEM, "?", 0, "?");
    }
    *out = p; /* first: nothing is kept across the rare call to fold the deltas in */
    if (KEEL_UNLIKELY(keel__heap_count_alloc(l, fast_class(p, size))))
        flush_local(l);
    return KEEL_OK;
}

/* The deltas are due: fold them in, then give p back (out of line: the fast paths keep no frame). */
static __attribute__((noinline)) void flush_and_free(heap_local *l, void *p)
{
    flush_local(l);
    backend_free(p, l->flags);
}

static inline __attribute__((always_inline)) void fast_free(heap_local *l, void *p)
{
    KEEL_ASSERT(l != NULL && p != NULL);
    if (KEEL_UNLIKELY(keel__heap_count_free(l, usable_size(p))))
        flush_and_free(l, p);
    else
        backend_free(p, l->flags);
}

/*
 * A sized free: the usable size from the size-class table, as at allocation.
 * The block goes back with dallocx all the same: jemalloc 5.3's sdallocx takes
 * its inlined fast path only with flags 0 (the thread's own cache, not the
 * module's) and is otherwise an out-of-line call measured 2-3 ns slower than
 * dallocx, which finds the size class in its own per-thread cache.  It also
 * means a wrong size can skew the accounting but never the arena.
 */
static inline __attribute__((always_inline)) void fast_free_sized(heap_local *l, void *p,
                                                                  size_t size)
{
    KEEL_ASSERT(l != NULL && p != NULL);
    if (KEEL_UNLIKELY(keel__heap_count_free(l, fast_class(p, size))))
        flush_and_free(l, p);
    else
        backend_free(p, l->flags);
}
#endif

static __attribute__((noinline)) keel_status alloc_general(const keel_module *m, size_t size,
                                                           size_t align, bool zero, void **out,
                                                           const char *file, int line,
                                                           const char *func);

keel_status keel__heap_alloc(const keel_module *m, size_t size, size_t align, bool zero, void **out,
                             const char *file, int line, const char *func)
{
    if (align == 0 && !zero) /* its fast path */
        return keel__heap_alloc_plain(m, size, out, file, line, func);
    return alloc_general(m, size, align, zero, out, file, line, func);
}

keel_status keel__heap_alloc_plain(const keel_module *m, size_t size, void **out, const char *file,
                                   int line, const char *func)
{
#if !KEEL_DEVEL
    heap_local *l = NULL;
    /* size - 1: sizes 1..fast_max() in one test (0 wraps around: the general path) */
    if (KEEL_LIKELY(out != NULL && size - 1 < fast_max() && (l = ready_local(m)) != NULL))
        return fast_alloc(l, size, out);
#endif
    return alloc_general(m, size, 0, false, out, file, line, func);
}

/* Every case: checks the arguments, makes the heap, reports failures. */
static keel_status alloc_general(const keel_module *m, size_t size, size_t align, bool zero,
                                 void **out, const char *file, int line, const char *func)
{
    if (out == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_heap_alloc: no output pointer");
    *out = NULL;
    if (align != 0 && (align & (align - 1)) != 0)
        return KEEL_ERR(KEEL_E_INVAL, "keel_heap_aligned: alignment %zu is not a power of two",
                        align);
    if (size > ((size_t)1 << 48))
        return KEEL_ERR(KEEL_E_RANGE, "keel_heap_alloc: %zu bytes is more than any heap holds",
                        size);
    keel__heap *h = heap_of(m);
    if (h == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory making the heap of module '%s'",
                        m != NULL ? m->name : "program");
#if KEEL_DEVEL
    if (KEEL_UNLIKELY(__atomic_load_n(&keel__stress_active, __ATOMIC_RELAXED) != 0) &&
        h->stress_site != NULL && keel__stress_eval((keel__stress_site *)h->stress_site))
        return keel__heap_failed(h, size, KEEL__HEAP_INJECTED, file, line, func);
    return keel__blk_alloc(h, size, align, zero, out, file, line, func);
#else
    return plain_alloc(h, size, align, zero, out, file, line, func);
#endif
}

keel_status keel__heap_calloc(const keel_module *m, size_t n, size_t size, void **out,
                              const char *file, int line, const char *func)
{
    if (size != 0 && n > ((size_t)-1) / size)
        return KEEL_ERR(KEEL_E_RANGE, "keel_heap_calloc: %zu x %zu bytes overflows", n, size);
    return keel__heap_alloc(m, n * size, 0, true, out, file, line, func);
}

/* Every case of keel__heap_free (sized: the size given, or NULL) but the release fast paths. */
static __attribute__((noinline)) void free_general(const keel_module *m, void *p,
                                                   const size_t *sized, const char *file, int line,
                                                   const char *func)
{
    keel__heap *h = heap_of(m);
    if (h == NULL)
        return;
#if KEEL_DEVEL
    keel__blk_free(h, p, sized, file, line, func);
#else
    (void)file;
    (void)line;
    (void)func;
    heap_local *l = local_of(h);
    release(h, l, sized != NULL ? class_size(p, *sized, 0) : usable_size(p));
    backend_free(p, flags_of(h, l));
#endif
}

void keel__heap_free(const keel_module *m, void *p, const char *file, int line, const char *func)
{
    if (p == NULL)
        return;
#if !KEEL_DEVEL
    heap_local *l = ready_local(m);
    if (KEEL_LIKELY(l != NULL)) {
        fast_free(l, p);
        return;
    }
#endif
    free_general(m, p, NULL, file, line, func);
}

/* keel__heap_free_sized but its release fast path (out of line: the fast path keeps no frame). */
static __attribute__((noinline)) void free_sized_general(const keel_module *m, void *p, size_t size,
                                                         const char *file, int line,
                                                         const char *func)
{
    free_general(m, p, &size, file, line, func);
}

void keel__heap_free_sized(const keel_module *m, void *p, size_t size, const char *file, int line,
                           const char *func)
{
    if (p == NULL)
        return;
#if !KEEL_DEVEL
    heap_local *l = NULL;
    if (KEEL_LIKELY(size <= fast_max() && (l = ready_local(m)) != NULL)) {
        fast_free_sized(l, p, size);
        return;
    }
#endif
    free_sized_general(m, p, size, file, line, func);
}

/*
 * A realloc that moves: a new block of `size` from m's heap holding the first
 * bytes of `from` (`old` of them usable); the caller frees `from` its own way.
 */
static keel_status moved_copy(const keel_module *m, const void *from, size_t old, size_t size,
                              void **out, const char *file, int line, const char *func)
{
    KEEL_ASSERT(from != NULL && out != NULL);
    keel_status s = keel__heap_alloc(m, size, 0, false, out, file, line, func);
    if (!keel_ok(s))
        return s;
    if (*out == NULL)
        return KEEL_ERR(KEEL_E_INTERNAL, "keel_heap_realloc: allocation gave no block");
    memcpy(*out, from, old < size ? old : size);
    return KEEL_OK;
}

keel_status keel__heap_realloc(const keel_module *m, void **p, size_t size, const char *file,
                               int line, const char *func)
{
    if (p == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_heap_realloc: no pointer to the block");
    if (*p == NULL)
        return keel__heap_alloc(m, size, 0, false, p, file, line, func);
    keel__heap *h = heap_of(m);
    if (h == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory making a module heap");
#if KEEL_DEVEL
    size_t old = 0;
    keel__heap *owner = NULL;
    if (!keel__blk_validate(h, *p, &old, &owner, "realloc", file, line, func))
        return KEEL_ERR(KEEL_E_INVAL, "keel_heap_realloc: %p is not a live block of module '%s'",
                        *p, h->name);
    void *q = NULL;
    keel_status s = moved_copy(m, *p, old, size, &q, file, line, func);
    if (!keel_ok(s))
        return s;
    keel__blk_free(owner, *p, NULL, file, line, func);
    *p = q;
    return KEEL_OK;
#else
    if (__atomic_load_n(&h->quota, __ATOMIC_RELAXED) != 0) {
        /* under a quota: a new block first, so that going over it leaves *p as it was */
        void *q = NULL;
        keel_status s = moved_copy(m, *p, usable_size(*p), size, &q, file, line, func);
        if (!keel_ok(s))
            return s;
        keel__heap_free(m, *p, file, line, func);
        *p = q;
        return KEEL_OK;
    }
    size_t old = usable_size(*p);
    void *q = raw_realloc(*p, size, flags_of(h, local_of(h)));
    if (q == NULL)
        return keel__heap_failed(h, size, KEEL__HEAP_NOMEM, file, line, func);
    resized(h, old, usable_size(q)); /* a resize, not a new block: only the bytes change */
    *p = q;
    return KEEL_OK;
#endif
}

keel_status keel_heap_set_quota(const keel_module *m, size_t bytes)
{
    keel__heap *h = heap_of(m);
    if (h == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory making a module heap");
    heap_local *l = local_of(h);
    if (l != NULL)
        flush_local(l); /* from now on this heap is accounted exactly */
    __atomic_store_n(&h->quota, (unsigned long long)bytes, __ATOMIC_RELAXED);
    /* a quota is accounted exactly, off the fast paths */
    set_fast(h, m, bytes == 0);
    return KEEL_OK;
}

keel_status keel_heap_stats_get(const keel_module *m, keel_heap_stats *out)
{
    if (out == NULL)
        return KEEL_ERR(KEEL_E_INVAL, "keel_heap_stats_get: no output");
    keel__heap *h = heap_of(m);
    if (h == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory making a module heap");
    heap_local *l = local_of(h);
    if (l != NULL)
        flush_local(l); /* exact for this thread; others' deltas lag by < FLUSH_OPS */
    out->live_bytes = __atomic_load_n(&h->live_bytes, __ATOMIC_RELAXED);
    out->peak_bytes = __atomic_load_n(&h->peak_bytes, __ATOMIC_RELAXED);
    out->live_blocks = __atomic_load_n(&h->live_blocks, __ATOMIC_RELAXED);
    out->allocations = __atomic_load_n(&h->allocations, __ATOMIC_RELAXED);
    out->frees = __atomic_load_n(&h->frees, __ATOMIC_RELAXED);
    out->failures = __atomic_load_n(&h->failures, __ATOMIC_RELAXED);
    out->quota = __atomic_load_n(&h->quota, __ATOMIC_RELAXED);
    return KEEL_OK;
}

size_t keel_heap_stats_json(char *buf, size_t size)
{
    keel__lazy_init();
    size_t pos = 0;
    keel__buf_printf(buf, size, &pos, "{\"heaps\":[");
    for (keel__heap *h = keel__heap_first(); h != NULL; h = h->next) {
        keel__buf_printf(buf, size, &pos, "%s{\"module\":", pos > 10 ? "," : "");
        keel__buf_json_str(buf, size, &pos, h->name);
        keel__buf_printf(buf, size, &pos,
                         ",\"live_bytes\":%llu,\"peak_bytes\":%llu,\"live_blocks\":%llu,"
                         "\"allocations\":%llu,\"frees\":%llu,\"failures\":%llu,\"quota\":%llu}",
                         __atomic_load_n(&h->live_bytes, __ATOMIC_RELAXED),
                         __atomic_load_n(&h->peak_bytes, __ATOMIC_RELAXED),
                         __atomic_load_n(&h->live_blocks, __ATOMIC_RELAXED),
                         __atomic_load_n(&h->allocations, __ATOMIC_RELAXED),
                         __atomic_load_n(&h->frees, __ATOMIC_RELAXED),
                         __atomic_load_n(&h->failures, __ATOMIC_RELAXED),
                         __atomic_load_n(&h->quota, __ATOMIC_RELAXED));
    }
    keel__buf_printf(buf, size, &pos, "]}");
    if (size > 0)
        buf[pos < size ? pos : size - 1] = '\0';
    return pos;
}

keel_status keel_heap_check(const keel_module *m)
{
#if KEEL_DEVEL
    keel__heap *h = heap_of(m);
    return h != NULL ? keel__blk_check(h) : KEEL_OK;
#else
    (void)m;
    return KEEL_OK;
#endif
}

keel_status keel_heap_check_buffer(const keel_module *m, const void *ptr, size_t len)
{
#if KEEL_DEVEL
    keel__heap *h = heap_of(m);
    if (h == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory making a module heap");
    return keel__blk_owns(h, ptr, len);
#else
    (void)m;
    (void)ptr;
    (void)len;
    return KEEL_OK;
#endif
}

keel_status keel_heap_register_region(const keel_module *m, const void *ptr, size_t len)
{
    keel__heap *h = heap_of(m);
    if (h == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory making a module heap");
    if (ptr == NULL || len == 0)
        return KEEL_ERR(KEEL_E_INVAL, "keel_heap_register_region: empty region");
    keel_status s = KEEL_OK;
    KEEL_VERIFY(pthread_mutex_lock(&heaps_lock) == 0);
    if (h->nregions == KEEL__HEAP_REGIONS) {
        s = KEEL_ERR(KEEL_E_FULL, "module '%s' already has %d I/O regions", h->name,
                     (int)KEEL__HEAP_REGIONS);
    } else {
        h->region_start[h->nregions] = (const char *)ptr;
        h->region_len[h->nregions] = len;
        __atomic_store_n(&h->nregions, h->nregions + 1, __ATOMIC_RELEASE);
    }
    KEEL_VERIFY(pthread_mutex_unlock(&heaps_lock) == 0);
    return s;
}

keel_status keel_module_protect(const keel_module *m, void *ptr, size_t len)
{
#if KEEL_DEVEL
    keel__heap *h = heap_of(m);
    if (h == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "out of memory making a module heap");
    return keel__heap_protect(h, ptr, len);
#else
    (void)m;
    (void)ptr;
    (void)len;
    return KEEL_OK;
#endif
}

void keel__heap_module_stopped(const keel_module *m)
{
#if KEEL_DEVEL
    keel__heap *h = m != NULL ? (keel__heap *)__atomic_load_n(&m->heap, __ATOMIC_ACQUIRE) : NULL;
    if (h == NULL)
        return;
    keel__heap_unprotect(h);
    keel__blk_leaks(h);
    keel_status_free(keel__blk_check(h)); /* each corruption is reported */
#else
    (void)m;
#endif
}
