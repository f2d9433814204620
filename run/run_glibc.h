/*
 * run/run_glibc.h - every read libkeel-run.so makes of the C library's private state, in one
 * place: glibc's layouts and encodings of its mutexes, rwlocks and spinlocks, and of its
 * allocator's chunk headers (docs/keel-run.md, "What keel-run reads of glibc").
 *
 * Checked against glibc 2.36's source, for x86_64 and for the generic code the other
 * architectures (aarch64, s390x) use: nptl/pthreadP.h (the mutex kinds, the ceiling of a
 * priority-protected mutex in its lock word), nptl/pthread_mutex_lock.c (the owner's tid
 * recorded after every acquisition but a lock elided in a hardware transaction),
 * nptl/pthread_rwlock_common.c (the bits of __readers, __cur_writer, what __flags changes),
 * sysdeps/x86_64/nptl/pthread_spin_*.S and nptl/pthread_spin_*.c (the spinlock word), and
 * malloc/malloc.c (the chunk header).  The fields are read by name, so the layouts follow the
 * headers of the architecture built for; the encodings are glibc's own on every architecture
 * but the spinlock's.
 *
 * Every answer is a hint for a check or a report, never what a wait waits for: a wrong one may
 * word a report wrongly or slow a spin (run_locks.c tries the lock whatever its word says),
 * never hang the program or keep a lock from being taken.
 */
#ifndef KEEL_RUN_GLIBC_H
#define KEEL_RUN_GLIBC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- mutexes (nptl/pthreadP.h) ------------------------------------------------------------ */

enum {
    RUN_GLIBC_MUTEX_KIND_MASK = 3, /* PTHREAD_MUTEX_KIND_MASK_NP: normal, recursive... */
    RUN_GLIBC_MUTEX_ROBUST = 16,   /* PTHREAD_MUTEX_ROBUST_NORMAL_NP */
    RUN_GLIBC_MUTEX_PI = 32,       /* PTHREAD_MUTEX_PRIO_INHERIT_NP */
    RUN_GLIBC_MUTEX_PP = 64,       /* PTHREAD_MUTEX_PRIO_PROTECT_NP */
};
/* The lock word of a robust or priority-inheritance mutex holds its owner's tid and the
 * kernel's FUTEX_WAITERS and FUTEX_OWNER_DIED bits (a dead owner's mutex is not locked). */
#define RUN_GLIBC_FUTEX_TID_MASK    0x3fffffffu
/* A priority-protected mutex keeps its ceiling in the lock word's high bits, locked or not. */
#define RUN_GLIBC_PRIO_CEILING_MASK 0xfff80000u

/* The mutex's type: PTHREAD_MUTEX_NORMAL, _RECURSIVE, _ERRORCHECK or PTHREAD_MUTEX_ADAPTIVE_NP. */
static inline int run_glibc_mutex_kind(const pthread_mutex_t *m)
{
    return __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) & RUN_GLIBC_MUTEX_KIND_MASK;
}

/* The tid of the thread that holds it (0: none; not recorded for a lock elided in a hardware
 * transaction, GLIBC_TUNABLES=glibc.elision.enable=1 on a processor with TSX). */
static inline int run_glibc_mutex_owner(const pthread_mutex_t *m)
{
    return __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED);
}

/* Is it locked by any thread? */
static inline bool run_glibc_mutex_locked(const pthread_mutex_t *m)
{
    unsigned word = (unsigned)__atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED);
    int kind = __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED);
    if ((kind & RUN_GLIBC_MUTEX_PP) != 0)
        return (word & ~RUN_GLIBC_PRIO_CEILING_MASK) != 0; /* 1, or 2 with waiters */
    if ((kind & (RUN_GLIBC_MUTEX_ROBUST | RUN_GLIBC_MUTEX_PI)) != 0)
        return (word & RUN_GLIBC_FUTEX_TID_MASK) != 0;
    return word != 0; /* 1, or 2 with waiters */
}

/* ---- rwlocks (nptl/pthread_rwlock_common.c) -------------------------------------------------- */

enum {
    RUN_GLIBC_RW_WRPHASE = 1,  /* PTHREAD_RWLOCK_WRPHASE: a write phase */
    RUN_GLIBC_RW_WRLOCKED = 2, /* PTHREAD_RWLOCK_WRLOCKED: a primary writer */
    RUN_GLIBC_RW_READER_SHIFT = 3,
};

/* The tid of the writer that holds it (0: none). */
static inline int run_glibc_rwlock_writer(const pthread_rwlock_t *rw)
{
    return __atomic_load_n(&rw->__data.__cur_writer, __ATOMIC_RELAXED);
}

/*
 * Is it locked by any thread?  Read-locked: readers registered (in a read phase they hold it; in
 * a write phase they wait for a writer that holds it, or for the hand-over to them); write-locked:
 * a primary writer in a write phase, or its tid recorded.
 */
static inline bool run_glibc_rwlock_locked(const pthread_rwlock_t *rw)
{
    unsigned r = __atomic_load_n(&rw->__data.__readers, __ATOMIC_RELAXED);
    return (r >> RUN_GLIBC_RW_READER_SHIFT) != 0 ||
           (r & (RUN_GLIBC_RW_WRPHASE | RUN_GLIBC_RW_WRLOCKED)) ==
               (RUN_GLIBC_RW_WRPHASE | RUN_GLIBC_RW_WRLOCKED) ||
           run_glibc_rwlock_writer(rw) != 0;
}

/*
 * Does a read lock taken again by a reader deadlock once a writer queues between the two?  Only
 * for PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP: glibc's reader waits for a queued writer
 * then, and for nothing else (PTHREAD_RWLOCK_PREFER_WRITER_NP lets a reader in during a read
 * phase as the default kind does).
 */
static inline bool run_glibc_rwlock_nonrecursive(const pthread_rwlock_t *rw)
{
    return __atomic_load_n(&rw->__data.__flags, __ATOMIC_RELAXED) ==
           PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP;
}

/* ---- spinlocks ------------------------------------------------------------------------------ */

/*
 * Does a spinlock's word say it is free?  x86 (sysdeps/x86_64/nptl/pthread_spin_*.S):
 * pthread_spin_init and pthread_spin_unlock store 1, a holder leaves 0 or less (its lock is a
 * decrement, and each waiter's try decrements again).  Elsewhere (the generic code): 0 is free, 1
 * held.
 */
static inline bool run_glibc_spin_free(int v)
{
#if defined(__x86_64__) || defined(__i386__)
    return v > 0;
#else
    return v == 0;
#endif
}

static inline bool run_glibc_spin_locked(const pthread_spinlock_t *s)
{
    return !run_glibc_spin_free(__atomic_load_n(s, __ATOMIC_RELAXED));
}

/* ---- the allocator's chunks (malloc/malloc.c) --------------------------------------------- */

enum {
    RUN_GLIBC_CHUNK_MMAPPED = 2, /* IS_MMAPPED */
    RUN_GLIBC_CHUNK_FLAGS = 7,   /* PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA */
};

/*
 * Does p look like a block of glibc's allocator?  Its header, the two words before it (the
 * previous chunk's size, its own size and flags): a size that is a multiple of 16 (the
 * alignment on every 64-bit target), at least 32; an mmapped chunk fills whole pages.  What
 * glibc's free checks first, asked before it would abort the program.  The page is the
 * system's (4 KB on x86_64; 16 or 64 KB on some aarch64 kernels): a header in the page before
 * p's is read only once mincore says that page is mapped.
 */
static inline bool run_glibc_chunk(const void *p)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    if ((uintptr_t)p % 16 != 0 || (uintptr_t)p < page)
        return false;
    const size_t *hdr = (const size_t *)p - 2;
    unsigned char vec = 0;
    union {
        uintptr_t in;
        void *out;
    } start = {(uintptr_t)hdr & ~(page - 1)};
    if (((uintptr_t)p & (page - 1)) < 2 * sizeof(size_t) && mincore(start.out, 1, &vec) != 0)
        return false;
    size_t size = hdr[1] & ~(size_t)RUN_GLIBC_CHUNK_FLAGS;
    if (size < 32 || size % 16 != 0 || size > ((size_t)1 << 46))
        return false;
    if ((hdr[1] & RUN_GLIBC_CHUNK_MMAPPED) != 0) /* the chunk and its offset fill whole pages */
        return (((uintptr_t)hdr - hdr[0]) & (page - 1)) == 0 && (hdr[0] + size) % page == 0;
    return true;
}

/* The usable size of a glibc block, by its header (what malloc_usable_size answers). */
static inline size_t run_glibc_chunk_usable(const void *p)
{
    const size_t *hdr = (const size_t *)p - 2;
    size_t size = hdr[1] & ~(size_t)RUN_GLIBC_CHUNK_FLAGS;
    return size - ((hdr[1] & RUN_GLIBC_CHUNK_MMAPPED) != 0 ? 2 : 1) * sizeof(size_t);
}

#endif /* KEEL_RUN_GLIBC_H */
