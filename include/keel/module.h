/*
 * keel/module.h - modules with power-on self tests (POST).
 *
 * The talk: "POST (power-on self test) - tests that run when module is
 * initialized".  A program is a set of modules; each declares, in code, its
 * name, version, init and exit functions, the modules it depends on and its
 * POST tests.  Declarations are placed in a linker section, so the module
 * system knows every module of the program - and of plugins loaded later with
 * dlopen() - without a registration call.
 *
 *   // storage.c
 *   #define KEEL_MODULE_NAME "storage"     // before any keel header: names its stress points
 *   #include <keel/keel.h>
 *
 *   static keel_status storage_init(void) { ... }
 *   static void storage_exit(void) { ... }
 *   static keel_status post_roundtrip(void) { ... write and read back a block ... }
 *
 *   static const char *const storage_deps[] = {"log", "net", NULL};
 *   static const keel_post storage_posts[] = {{"roundtrip", post_roundtrip}, {NULL, NULL}};
 *   KEEL_MODULE(storage, "1.2.0", storage_init, storage_exit, storage_deps, storage_posts);
 *
 *   // main.c
 *   keel_status s = keel_modules_start();   // dependency order; POST right after each init
 *   ...
 *   keel_modules_stop();                    // reverse order; leak report of each module heap
 *
 * Starting resolves the dependencies first: a cycle or a missing dependency
 * is an error naming the modules, and nothing starts.  Then each module is
 * initialised and its POST tests run; a failing init or POST stops that module
 * and every module that depends on it (state FAILED / BLOCKED), with a report
 * of kind "module" and a status naming module and test, while the others
 * start: the program decides whether to go on without them.  Which POSTs run
 * is the option module.post (all / none / a list of "module" or
 * "module.test"); each POST's result and duration are kept (keel_module_info,
 * keel_modules_json).
 *
 * Each thread knows the module it is executing in: init, exit and POST run
 * inside their module, and keel_module_enter/leave mark other code (a
 * callback, a worker).  Reports of every keel capability name that module.
 *
 * Each module also owns a heap (keel/heap.h).
 */
#ifndef KEEL_MODULE_H
#define KEEL_MODULE_H

#include <stddef.h>
#include <stdio.h>

#include "keel/common.h"
#include "keel/status.h"

KEEL_EXTERN_C_BEGIN

/* A POST test: KEEL_OK when the module works. */
typedef struct keel_post {
    const char *name;
    keel_status (*fn)(void);
} keel_post;

/* A module's declaration; KEEL_MODULE() defines one.  Fields are read-only for programs. */
typedef struct keel_module {
    unsigned long long magic;
    const char *name;
    const char *version;
    keel_status (*init)(void); /* NULL: nothing to do */
    void (*exit)(void);        /* NULL: nothing to do */
    const char *const *deps;   /* names, NULL-terminated; NULL: none */
    const keel_post *posts;    /* {NULL, NULL}-terminated; NULL: none */
    void *state;               /* the library's record */
    void *heap;                /* the module's heap, made on first use */
    unsigned heap_slot;        /* the library's: its heap's release fast path (0: none) */
} keel_module;

/*
 * Changes with the record's layout ("keelMOD2": heap_slot added), so that a
 * module compiled against another layout is not taken for one of this.
 */
#define KEEL__MODULE_MAGIC 0x6b65656c4d4f4432ull /* "keelMOD2" */

/*
 * Define module `ident` (a C identifier; its name is "ident").  Other files
 * refer to it with KEEL_MODULE_DECLARE(ident) and KEEL_MODULE_REF(ident).
 */
#define KEEL_MODULE(ident, version, init, exit, deps, posts)           \
    KEEL_API keel_module keel_module_##ident                           \
        __attribute__((section("keel_modules"), used, aligned(8))) = { \
            KEEL__MODULE_MAGIC, #ident, (version), (init), (exit), (deps), (posts), NULL, NULL, 0}
#define KEEL_MODULE_DECLARE(ident) extern keel_module keel_module_##ident
#define KEEL_MODULE_REF(ident)     (&keel_module_##ident)

typedef enum keel_module_state {
    KEEL_MODULE_REGISTERED, /* known, not started */
    KEEL_MODULE_RUNNING,    /* init and POST passed */
    KEEL_MODULE_FAILED,     /* its init or a POST failed */
    KEEL_MODULE_BLOCKED,    /* a module it depends on did not start */
    KEEL_MODULE_STOPPED
} keel_module_state;

/*
 * Start every registered module not yet started, in dependency order (a
 * dependency before its dependants; otherwise by name).  KEEL_OK when all
 * started.  A cycle or missing dependency: KEEL_E_DEPENDENCY naming the
 * modules, nothing started.  A failed init or POST: the others still start;
 * the status (KEEL_E_POST, KEEL_E_DEPENDENCY or the init's own) names each
 * module that did not start and why.  Call again after dlopen() of a plugin.
 */
KEEL_API KEEL_MUST_USE keel_status keel_modules_start(void);
/* Stop the running modules in the reverse order of their start. */
KEEL_API void keel_modules_stop(void);

/* The registered module called `name`, or NULL. */
KEEL_API keel_module *keel_module_find(const char *name);
KEEL_API keel_module_state keel_module_get_state(const keel_module *m);
KEEL_API const char *keel_module_state_name(keel_module_state s);

typedef struct keel_module_info {
    const char *name;
    const char *version;
    keel_module_state state;
    unsigned posts_run;
    unsigned posts_failed;
    unsigned long long init_ns;     /* init plus its POSTs */
    const char *failed_test;        /* "" when none */
    const char *blocked_by;         /* "" when none */
    unsigned long long start_order; /* 1, 2, ... in start order; 0: not started */
} keel_module_info;

KEEL_API KEEL_MUST_USE keel_status keel_module_info_get(const keel_module *m,
                                                        keel_module_info *out);
/* Every module, its state and each POST's result and duration, as JSON.  Returns the length. */
KEEL_API size_t keel_modules_json(char *buf, size_t size);

/*
 * The module the calling thread executes in (NULL: none).  enter returns the
 * previous one, to give back to leave:
 *   const keel_module *prev = keel_module_enter(KEEL_MODULE_REF(net));
 *   ... callback ...
 *   keel_module_leave(prev);
 */
KEEL_API const keel_module *keel_module_current(void);
KEEL_API const keel_module *keel_module_enter(const keel_module *m);
KEEL_API void keel_module_leave(const keel_module *prev);

/* ---- registration (each loaded object registers its own section) ---- */

KEEL_API void keel__module_register(keel_module *begin, keel_module *end);
KEEL_API void keel__module_unregister(keel_module *begin, keel_module *end);

KEEL__SECTION_HOOKS(keel_modules, keel_module, keel__module_register, keel__module_unregister)

KEEL_EXTERN_C_END

#endif /* KEEL_MODULE_H */
