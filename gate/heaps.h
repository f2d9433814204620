/*
 * gate/heaps.h - keel-gate's memory on the heaps of its keel modules
 * (keel/heap.h), the libraries' memory included.
 *
 *   module       what its heap holds
 *   gate         the gatekeeper (gate.c, gate_loop.c, query.c): the gate,
 *                candidates, jobs in flight, the queue and status buffers
 *   gate_config  parsed configurations and their argument vectors
 *   gate_store   the store and all of SQLite's memory
 *   gate_git     repositories, file contents, the records of the jobs'
 *                work trees (worktree.c) and all of libgit2's memory
 *   gate_exec    the executor and the jobs' environments
 *   gate_sched   the scheduler (used alone too: the benchmark, its tests)
 *   gate_web     keel-gate serve: requests, responses, event streams
 *                (declared and defined by gate/web: web.h, routes.c)
 *
 * A quota on a module (keel_heap_set_quota) bounds that part: an allocation
 * over it fails with KEEL_E_FULL naming the module, the libraries' too (they
 * see NULL: SQLite's SQLITE_NOMEM rolls the transaction back, libgit2's call
 * fails), and the gate's error then says which quota it was.
 *
 * The libraries' allocators are installed by the modules' init and taken
 * out by their exit: gate_store's init points SQLite at its heap
 * (sqlite3_config(SQLITE_CONFIG_MALLOC)) and initialises SQLite, its exit
 * shuts SQLite down and restores the allocator SQLite had; gate_git's does
 * the same for libgit2 (GIT_OPT_SET_ALLOCATOR, git_libgit2_init/shutdown).
 * So keel_modules_start() must come before anything in the process uses
 * SQLite or libgit2, and every store, repository and libgit2 object must be
 * closed before keel_modules_stop(): keel-gate's main does so.  A module
 * that finds its library already in use fails its init with KEEL_E_STATE
 * (its memory could not be moved any more).  Code that never starts the
 * modules (unit tests) gets the libraries on the system's malloc, and the
 * gate's own memory on the module heaps all the same.
 */
#ifndef KEEL_GATE_HEAPS_H
#define KEEL_GATE_HEAPS_H

#include "keel/keel.h"

KEEL_MODULE_DECLARE(gate);
KEEL_MODULE_DECLARE(gate_config);
KEEL_MODULE_DECLARE(gate_store);
KEEL_MODULE_DECLARE(gate_git);
KEEL_MODULE_DECLARE(gate_exec);
KEEL_MODULE_DECLARE(gate_sched);

/*
 * A zeroed object of `size` bytes on module m's heap with a copy of the
 * string `name` right after it (one block, one keel_heap_free): *copy
 * points at the copy.
 */
KEEL_MUST_USE keel_status gate_heaps_alloc_named(const keel_module *m, size_t size,
                                                 const char *name, void **out, char **copy);

/* gate_store's init and exit: SQLite on the module's heap. */
KEEL_MUST_USE keel_status gate_heaps_sqlite_install(void);
void gate_heaps_sqlite_remove(void);

/* gate_git's init and exit: libgit2 on the module's heap. */
KEEL_MUST_USE keel_status gate_heaps_libgit2_install(void);
void gate_heaps_libgit2_remove(void);

/*
 * The last allocation of a library's that failed on this thread (SQLite's or
 * libgit2's), as a status naming the module and why (KEEL_E_FULL: its quota),
 * and forgotten; KEEL_OK when there was none.  For the error of a library
 * call that ran out of memory.
 */
KEEL_MUST_USE keel_status gate_heaps_take_failure(void);

/*
 * Every heap's stats (keel_heap_stats_json) with this process's id and the
 * time, written to `path` whole (a temporary file renamed): the running gate
 * publishes them for `keel-gate status`.
 */
KEEL_MUST_USE keel_status gate_heaps_publish(const char *path);

#endif /* KEEL_GATE_HEAPS_H */
