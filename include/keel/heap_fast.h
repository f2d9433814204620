/*
 * keel/heap_fast.h - the release fast paths of keel_heap_alloc and
 * keel_heap_free_sized, inlined into the caller.  NOT API: included by
 * keel/heap.h (the inline functions exist in release builds only); never
 * include it, never use what it declares.
 *
 * The common case - the module's heap made, no quota, this thread's cache for
 * it chosen, a size the library's size-class table answers - is a call to
 * jemalloc and a few adds on this thread's record, with no call into libkeel;
 * everything else (and every failure) calls the library.  The record's layout
 * belongs to the libkeel built from this very header: an object compiled
 * against it keeps a reference to keel__heap_layout_<N>_needs_matching_libkeel,
 * which only a library of the same layout defines.  Whoever changes anything
 * here bumps KEEL__HEAP_LAYOUT (src/heap.c checks the layout at compile time).
 */
#ifndef KEEL_HEAP_FAST_H
#define KEEL_HEAP_FAST_H

#include "keel/heap.h" /* (which includes this file after its declarations) */

KEEL_EXTERN_C_BEGIN

#define KEEL__HEAP_LAYOUT 1

#define KEEL__HEAP_LAYOUT_SYMBOL_(n) keel__heap_layout_##n##_needs_matching_libkeel
#define KEEL__HEAP_LAYOUT_SYMBOL(n)  KEEL__HEAP_LAYOUT_SYMBOL_(n)
KEEL_API extern const int KEEL__HEAP_LAYOUT_SYMBOL(KEEL__HEAP_LAYOUT);

/* A thread's record for one heap: its cache and its accounting deltas. */
typedef struct keel__heap_local {
    void *heap;          /* the library's record of the heap */
    long long bytes;     /* live bytes made minus freed on this thread, since the last fold */
    long long max_bytes; /* the most `bytes` reached since the last fold (for the peak) */
    long long allocs;    /* folded into the heap at allocs + frees = KEEL__HEAP_FOLD */
    long long frees;
    unsigned tcache; /* id + 1; 0: none yet; ~0u: none available */
    int flags;       /* backend flags on this thread (arena, cache); 0: not chosen yet */
} keel__heap_local;

#define KEEL__HEAP_FOLD 256

/* This thread's records, indexed by a module's heap_slot - 1 (NULL: none yet). */
KEEL_API extern __thread keel__heap_local *keel__heap_tls
    __attribute__((tls_model("initial-exec")));
/* Usable size of a request of n bytes: keel__heap_classes[(n + 7) / 8], n <= keel__heap_inline_max. */
KEEL_API extern unsigned short keel__heap_classes[];
/* 0: no inlined fast path (the table could not be made, or another backend). */
KEEL_API extern size_t keel__heap_inline_max;
/* The backend's allocation and free with a thread's flags (jemalloc's mallocx, dallocx). */
KEEL_API extern void *(*const keel__heap_backend_alloc)(size_t size, int flags);
KEEL_API extern void (*const keel__heap_backend_free)(void *p, int flags);
/* Fold a record's deltas into its heap. */
KEEL_API void keel__heap_fold(keel__heap_local *l);

/*
 * The record's accounting (the library's and the inlined paths'): a block of
 * `bytes` usable bytes made / freed; true when the deltas are due to be
 * folded in (keel__heap_fold).
 */
static inline bool keel__heap_count_alloc(keel__heap_local *l, size_t bytes)
{
    long long now = l->bytes + (long long)bytes;
    l->bytes = now;
    l->allocs++;
    /* unconditional: a conditional move, not a branch mispredicted half the time */
    l->max_bytes = now > l->max_bytes ? now : l->max_bytes;
    return l->allocs + l->frees >= KEEL__HEAP_FOLD;
}

static inline bool keel__heap_count_free(keel__heap_local *l, size_t bytes)
{
    l->bytes -= (long long)bytes;
    l->frees++;
    return l->allocs + l->frees >= KEEL__HEAP_FOLD;
}

/*
 * This thread's record for the heap whose slot (a module's heap_slot) is
 * `slot`, when the fast paths may serve it: heap made, no quota, this
 * thread's cache for it chosen.  Else NULL.
 */
static inline keel__heap_local *keel__heap_at(unsigned slot)
{
    keel__heap_local *v = keel__heap_tls;
    if (__builtin_expect(slot == 0 || v == NULL, 0))
        return NULL;
    keel__heap_local *l = &v[slot - 1];
    return __builtin_expect(l->flags != 0, 1) ? l : NULL;
}

#if !KEEL_DEVEL

__attribute__((used)) static const int *const keel__heap_layout_reference =
    &KEEL__HEAP_LAYOUT_SYMBOL(KEEL__HEAP_LAYOUT);

/* This thread's record for module m when the inlined paths may serve it, else NULL. */
static inline keel__heap_local *keel__heap_ready(const keel_module *m)
{
    if (m == NULL)
        return NULL; /* the program's heap: the library's path */
    return keel__heap_at(__atomic_load_n(&m->heap_slot, __ATOMIC_ACQUIRE));
}

static inline __attribute__((always_inline)) keel_status
keel__heap_alloc_inline(const keel_module *m, size_t size, void **out, const char *file, int line,
                        const char *func)
{
    keel__heap_local *l = NULL;
    if (__builtin_expect(out != NULL &&
                             size - 1 < __atomic_load_n(&keel__heap_inline_max, __ATOMIC_RELAXED),
                         1) &&
        (l = keel__heap_ready(m)) != NULL) {
        void *p = keel__heap_backend_alloc(size, l->flags);
        if (__builtin_expect(p != NULL, 1)) {
            *out = p;
            if (__builtin_expect(keel__heap_count_alloc(l, keel__heap_classes[(size + 7) / 8]), 0))
                keel__heap_fold(l);
            return KEEL_OK;
        }
    }
    return keel__heap_alloc_plain(m, size, out, file, line, func); /* also reports a failure */
}

static inline __attribute__((always_inline)) void
keel__heap_free_sized_inline(const keel_module *m, void *p, size_t size, const char *file, int line,
                             const char *func)
{
    keel__heap_local *l = NULL;
    if (__builtin_expect(
            p != NULL && size - 1 < __atomic_load_n(&keel__heap_inline_max, __ATOMIC_RELAXED), 1) &&
        (l = keel__heap_ready(m)) != NULL) {
        if (__builtin_expect(keel__heap_count_free(l, keel__heap_classes[(size + 7) / 8]), 0))
            keel__heap_fold(l);
        keel__heap_backend_free(p, l->flags);
        return;
    }
    keel__heap_free_sized(m, p, size, file, line, func);
}

#endif /* !KEEL_DEVEL */

KEEL_EXTERN_C_END

#endif /* KEEL_HEAP_FAST_H */
