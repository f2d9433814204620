/*
 * heap.h - what the module heap files share: the heap record (heap.c: the
 * arenas, accounting and API) and the devel block checks (heap_debug.c).
 */
#ifndef KEEL_SRC_HEAP_H
#define KEEL_SRC_HEAP_H

#include "internal.h"

KEEL_EXTERN_C_BEGIN

enum { KEEL__HEAP_SHARDS = 8, KEEL__HEAP_REGIONS = 16, KEEL__HEAP_ARENAS = 4 };

typedef struct keel__blk keel__blk;

/*
 * One shard of a heap's devel state: its live blocks and its quarantine.  The
 * live blocks are an array (each block's header holds its index), so that a
 * free touches no other block's header, as unlinking from a list would.
 */
typedef struct keel__heap_shard {
    int lock;         /* a spinlock that yields (heap_debug.c): held for a few dozen instructions */
    keel__blk **live; /* nlive of them, room for live_cap */
    size_t nlive;
    size_t live_cap;
    keel__blk *q_oldest; /* quarantine, oldest first, linked by `next` */
    keel__blk *q_newest;
    size_t q_bytes;
    /* blocks whose listing or free found the lock taken, waiting for its next holder (lock-free
     * stacks, linked by live_at and by next: heap_debug.c) */
    keel__blk *pend_add;
    keel__blk *pend_free;
    /* blocks of this shard other threads took out of its quarantine, for the shard's own thread
     * to give back to the C library's allocator (heap_debug.c, KEEL_HEAP_SYSTEM), and their bytes */
    keel__blk *pend_release;
    size_t pend_release_bytes;
} __attribute__((aligned(64))) keel__heap_shard; /* one per cache line pair: no false sharing */

/* The counters start a cache line of their own: each part is a cache-aligned anonymous struct,
 * so the padding between them is the parts' own (the static analyzer's padding check knows it is
 * on purpose; the fields are named as before). */
typedef struct keel__heap {
    /* read on every call, written rarely */
    __extension__ struct __attribute__((aligned(64))) {
        const keel_module *mod; /* NULL: the program's own heap */
        const char *name;       /* the module's name, or "program" */
        struct keel__heap *next;
        void *stress_site; /* keel__stress_site of "<module>.alloc" (devel) */
        unsigned long long quota;
        unsigned index;                     /* 0..: per-thread cache slots */
        unsigned arenas[KEEL__HEAP_ARENAS]; /* the module's own arenas; a thread uses one */
        unsigned narenas;
        unsigned nregions;
        const char *region_start[KEEL__HEAP_REGIONS];
        size_t region_len[KEEL__HEAP_REGIONS];
    };
    /* the shared counters, on their own cache line (threads fold their deltas in) */
    __extension__ struct __attribute__((aligned(64))) {
        unsigned long long live_bytes;
        unsigned long long peak_bytes;
        unsigned long long live_blocks;
        unsigned long long allocations;
        unsigned long long frees;
        unsigned long long failures;
    };
    keel__heap_shard shards[KEEL__HEAP_SHARDS];
} keel__heap;

/* Backend (heap.c): memory of a heap's arena, with this thread's cache for it; `zero`: all of
 * it zeroed by the allocator, which leaves the pages of a large block untouched. */
void *keel__heap_raw_alloc(keel__heap *h, size_t size, size_t align, bool zero);
void keel__heap_raw_free(keel__heap *h, void *raw);
/* Every heap, for the JSON and the checks (the list only grows). */
keel__heap *keel__heap_first(void);

/* Devel checks (heap_debug.c). */
KEEL_MUST_USE keel_status keel__blk_alloc(keel__heap *h, size_t size, size_t align, bool zero,
                                          void **out, const char *file, int line, const char *func);
/* Validates p for heap h (reports what is wrong); its user size in *size.  False: do not touch. */
bool keel__blk_validate(keel__heap *h, void *p, size_t *size, keel__heap **owner, const char *what,
                        const char *file, int line, const char *func);
/* Free p; `sized`: the size a sized free gave (checked against the block's), NULL for an unsized one. */
void keel__blk_free(keel__heap *h, void *p, const size_t *sized, const char *file, int line,
                    const char *func);
KEEL_MUST_USE keel_status keel__blk_check(keel__heap *h);
KEEL_MUST_USE keel_status keel__blk_owns(keel__heap *h, const void *ptr, size_t len);
void keel__blk_leaks(keel__heap *h);
/* The leak report of the live blocks `leaked` says are leaked (keel-run's exit: unreachable). */
void keel__blk_leaks_if(keel__heap *h, bool (*leaked)(const void *user, void *ctx), void *ctx);

/*
 * For a heap that serves the C library's malloc (keel-run, run/run_heap.c): is p a block of a
 * keel heap (live or in quarantine; never touches an unreadable header)?  Its requested size;
 * every live block (shard by shard, each locked during its visits); fork (phase 0 before, 1
 * after in the parent, 2 in the child: takes and gives back every lock of the devel checks).
 */
bool keel__blk_is(const void *p);
size_t keel__blk_size(const void *p);
void keel__blk_live(keel__heap *h,
                    void (*visit)(void *ctx, const void *user, size_t size, const char *file),
                    void *ctx);
void keel__blk_fork(keel__heap *h, int phase);
/* The program's heap (made now if it is not yet). */
keel__heap *keel__heap_program(void);
KEEL_MUST_USE keel_status keel__heap_protect(keel__heap *h, void *ptr, size_t len);
void keel__heap_unprotect(const keel__heap *h);

/* Accounting (heap.c): reserve `bytes` against the quota; false when over it. */
bool keel__heap_reserve(keel__heap *h, size_t bytes);
void keel__heap_release(keel__heap *h, size_t bytes);
/* Undo a successful keel__heap_reserve (the block could not be made after all). */
void keel__heap_unreserve(keel__heap *h, size_t bytes);

typedef enum keel__heap_failure {
    KEEL__HEAP_NOMEM,
    KEEL__HEAP_QUOTA,   /* also reported, kind "quota" */
    KEEL__HEAP_INJECTED /* by the stress option "<module>.alloc" */
} keel__heap_failure;

/* An allocation of `size` failed: counted (and reported if over the quota).  The status to return. */
KEEL_MUST_USE keel_status keel__heap_failed(keel__heap *h, size_t size, keel__heap_failure why,
                                            const char *file, int line, const char *func);

KEEL_EXTERN_C_END

#endif /* KEEL_SRC_HEAP_H */
