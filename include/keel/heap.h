/*
 * keel/heap.h - a separate, accounted and (in devel builds) poisoned heap
 * for every module.
 *
 * The talk: "make it more likely that one module can't affect another:
 * separate heap for each module, so memory bug with one module is less
 * likely to affect another", "heap memory poisoning", "verify DMA is to
 * appropriate memory".
 *
 *   void *buf;
 *   keel_status s = keel_heap_alloc(KEEL_MODULE_REF(storage), 4096, &buf);
 *   if (!keel_ok(s))
 *       return s;                        // KEEL_E_NOMEM, or KEEL_E_FULL over the module's quota
 *   ...
 *   keel_heap_free(KEEL_MODULE_REF(storage), buf);
 *
 * A NULL module is the program's own heap (code outside any module).
 *
 * Each module's blocks come from its own jemalloc arena (its own memory
 * region; threads cache per module), so a stray write from one module is far
 * less likely to land in another's objects.  jemalloc also becomes the
 * process's malloc when keel is linked (Debian builds it unprefixed):
 * measured faster than glibc's here, see docs/modules.md ("Module heaps") and
 * docs/benchmarks.md ("Module heaps").  Under a sanitizer
 * (KEEL_SANITIZE) blocks come from the sanitizer's malloc instead, so that it
 * sees every one.
 *
 * Every heap counts live bytes, peak, allocations, frees and failures, and
 * may have a quota: going over it fails that module's allocation with
 * KEEL_E_FULL and a report of kind "quota", and no other module notices.
 * The stress option "<module>.alloc" (KEEL_OPTIONS stress=storage.alloc:1/100)
 * fails allocations of one module, so out-of-memory paths can be swept.
 *
 * Devel builds add to every block: fresh memory filled with 0xA5 and freed
 * memory with 0xDD; a canary before and after the block (red zones), checked
 * on free and by keel_heap_check(); a quarantine of freed blocks (option
 * heap.quarantine, bytes) whose poison is checked before reuse, so a write
 * after free is found with the block's allocation and free sites; double
 * free, free through the wrong module, free or realloc of a pointer no
 * keel heap allocated, and a sized free whose size is not the block's; a
 * leak report when the module stops, per allocation site; and
 * heap.guard-sample=N, which places 1 in N blocks against a PROT_NONE page
 * so an overflow faults at the instruction that made it (KFENCE / GWP-ASan
 * style) and is reported with the block's site.
 * Heap problems are reports of kind "heap" (policy abort by default).
 *
 * Release builds keep the separate arenas, accounting and quotas, and drop
 * poisoning, red zones, quarantine, site tracking and the ownership check.
 */
#ifndef KEEL_HEAP_H
#define KEEL_HEAP_H

#include <stddef.h>

#include "keel/common.h"
#include "keel/module.h"
#include "keel/status.h"

KEEL_EXTERN_C_BEGIN

/* Where a block was allocated or freed (the macros below fill it in). */
#define KEEL__HEAP_SITE __FILE__, __LINE__, __func__

KEEL_API KEEL_MUST_USE keel_status keel__heap_alloc(const keel_module *m, size_t size, size_t align,
                                                    bool zero, void **out, const char *file,
                                                    int line, const char *func);
/* keel__heap_alloc with no alignment and no zeroing: six arguments, all in registers. */
KEEL_API KEEL_MUST_USE keel_status keel__heap_alloc_plain(const keel_module *m, size_t size,
                                                          void **out, const char *file, int line,
                                                          const char *func);
KEEL_API KEEL_MUST_USE keel_status keel__heap_realloc(const keel_module *m, void **p, size_t size,
                                                      const char *file, int line, const char *func);
KEEL_API void keel__heap_free(const keel_module *m, void *p, const char *file, int line,
                              const char *func);
KEEL_API void keel__heap_free_sized(const keel_module *m, void *p, size_t size, const char *file,
                                    int line, const char *func);

/* Allocate size bytes (uninitialised) from module m's heap into *out. */
#if KEEL_DEVEL
#define keel_heap_alloc(m, size, out) keel__heap_alloc_plain((m), (size), (out), KEEL__HEAP_SITE)
#else /* the common case inlined: keel/heap_fast.h */
#define keel_heap_alloc(m, size, out) keel__heap_alloc_inline((m), (size), (out), KEEL__HEAP_SITE)
#endif
/* n * size bytes, zeroed; the product is checked for overflow. */
#define keel_heap_calloc(m, n, size, out) \
    keel__heap_calloc((m), (n), (size), (out), KEEL__HEAP_SITE)
/* Aligned to `align` (a power of two). */
#define keel_heap_aligned(m, align, size, out) \
    keel__heap_alloc((m), (size), (align), false, (out), KEEL__HEAP_SITE)
/* Resize *p (NULL: allocate); on failure *p is unchanged and still valid. */
#define keel_heap_realloc(m, p, size) keel__heap_realloc((m), (p), (size), KEEL__HEAP_SITE)
/* Free p (NULL is fine) back to module m's heap. */
#define keel_heap_free(m, p)          keel__heap_free((m), (p), KEEL__HEAP_SITE)

/*
 * Free p (NULL is fine), a block of `size` bytes: the size it was allocated
 * with (n * size for calloc, the last size given to realloc), as C23's
 * free_sized.  For blocks of keel_heap_alloc, _calloc and _realloc, not of
 * keel_heap_aligned (free those with keel_heap_free).
 *
 * Why: a free that knows the size skips the lookup of the block's size that
 * accounting needs at free (release counts usable bytes; the size class of
 * `size` is a table lookup instead).  Use it where the size is at hand.
 * Release trusts the size (a wrong one skews only the accounting: the block
 * itself is given back by its address, never by the size); devel checks it
 * against the block's and reports a mismatch (kind "heap", with the block's
 * allocation site), then frees the block as keel_heap_free would.
 */
#if KEEL_DEVEL
#define keel_heap_free_sized(m, p, size) keel__heap_free_sized((m), (p), (size), KEEL__HEAP_SITE)
#else
#define keel_heap_free_sized(m, p, size) \
    keel__heap_free_sized_inline((m), (p), (size), KEEL__HEAP_SITE)
#endif

KEEL_API KEEL_MUST_USE keel_status keel__heap_calloc(const keel_module *m, size_t n, size_t size,
                                                     void **out, const char *file, int line,
                                                     const char *func);

/* Limit module m's live bytes (0: no limit). */
KEEL_API KEEL_MUST_USE keel_status keel_heap_set_quota(const keel_module *m, size_t bytes);

typedef struct keel_heap_stats {
    unsigned long long live_bytes; /* requested sizes (devel), usable sizes (release) */
    unsigned long long peak_bytes;
    unsigned long long live_blocks;
    unsigned long long allocations;
    unsigned long long frees;
    unsigned long long failures; /* out of memory, quota, injected */
    unsigned long long quota;    /* 0: none */
} keel_heap_stats;

KEEL_API KEEL_MUST_USE keel_status keel_heap_stats_get(const keel_module *m, keel_heap_stats *out);
/* Every heap's stats as JSON ({"heaps":[{"module":...}]}); returns the length. */
KEEL_API size_t keel_heap_stats_json(char *buf, size_t size);

/*
 * Devel: check every live block's red zones and every quarantined block's
 * poison; each corruption is reported (kind "heap").  KEEL_E_INTERNAL naming
 * the first one, or KEEL_OK.  Release: KEEL_OK.
 */
KEEL_API KEEL_MUST_USE keel_status keel_heap_check(const keel_module *m);

/*
 * Buffer ownership, before handing (ptr, len) to I/O or to another module:
 * KEEL_OK when it lies wholly inside one live block of module m's heap, or
 * inside a region m registered with keel_heap_register_region; otherwise
 * KEEL_E_RANGE saying where it is.  Devel builds; release: KEEL_OK.
 */
KEEL_API KEEL_MUST_USE keel_status keel_heap_check_buffer(const keel_module *m, const void *ptr,
                                                          size_t len);
KEEL_API KEEL_MUST_USE keel_status keel_heap_register_region(const keel_module *m, const void *ptr,
                                                             size_t len);

/*
 * Devel: make [ptr, ptr+len) read-only (the pages wholly inside it) until the
 * module stops - a module's tables after its init.  A later write faults and
 * is reported naming the module.  Release: KEEL_OK, nothing done.
 */
KEEL_API KEEL_MUST_USE keel_status keel_module_protect(const keel_module *m, void *ptr, size_t len);

KEEL_EXTERN_C_END

#include "keel/heap_fast.h" /* release: the inlined fast paths (not API) */

#endif /* KEEL_HEAP_H */
