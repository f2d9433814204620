/*
 * keel/status.h - rich status codes that cannot be ignored.
 *
 * A keel_status is one pointer wide.  Success is a NULL pointer: returning it
 * allocates nothing and testing it is one comparison.  An error carries
 *
 *   - a code from a code space (keel's own codes below; a program or module
 *     defines its own space with KEEL_CODESPACE_DEFINE, so codes never collide),
 *   - a formatted message and the source location where it was created,
 *   - key/value details: integers, strings, and opaque pointers with a destructor,
 *   - a cause chain: KEEL_WRAP() adds context at each layer and keeps the original.
 *
 * Every function returning keel_status is KEEL_MUST_USE: ignoring the result is
 * a compile error under -Werror in gcc and clang.  gcc also rejects a (void)
 * cast; clang accepts one, so devel builds report at exit every error that was
 * created and then lost (never examined, never freed) with its creation site.
 * To drop an error on purpose, call keel_status_ignore(s, "why").
 *
 * Ownership: an error status is owned by exactly one place.  Returning it hands
 * it to the caller; KEEL_WRAP() takes the cause; keel_status_free() and
 * keel_status_ignore() end it.  Out of memory while building an error still
 * yields a valid, printable status (a preallocated KEEL_E_NOMEM error).
 *
 * Typical use:
 *
 *   static keel_status load(const char *path) {
 *       int fd = open(path, O_RDONLY);
 *       if (fd < 0)
 *           return KEEL_ERR_SYS(errno, "cannot open '%s'", path);
 *       ...
 *       return KEEL_OK;
 *   }
 *
 *   keel_status s = load(path);
 *   if (!keel_ok(s))
 *       return KEEL_WRAP(s, KEEL_E_IO, "loading configuration");
 */
#ifndef KEEL_STATUS_H
#define KEEL_STATUS_H

#include <stdio.h>

#include "keel/common.h"

KEEL_EXTERN_C_BEGIN

/* ---- codes ------------------------------------------------------------- */

/*
 * A code space: a name and a table of code names and messages.  Index 0 of
 * every space is reserved ("OK") so that a code is never 0 for an error.
 */
typedef struct keel_codespace {
    const char *name;            /* "keel", "mydb", ... (unique once registered) */
    int count;                   /* entries in names/messages, including index 0 */
    const char *const *names;    /* "INVAL" */
    const char *const *messages; /* "invalid argument" */
} keel_codespace;

/* keel's own codes: X(NAME, message).  The enum, names and messages all come from here. */
#define KEEL_CODES(X)                                    \
    X(NOMEM, "out of memory")                            \
    X(INVAL, "invalid argument")                         \
    X(PARSE, "malformed input")                          \
    X(NOTFOUND, "not found")                             \
    X(EXISTS, "already exists")                          \
    X(RANGE, "value out of range")                       \
    X(STATE, "operation not valid in the current state") \
    X(BUSY, "resource busy")                             \
    X(TIMEOUT, "timed out")                              \
    X(IO, "input/output error")                          \
    X(SYS, "system call failed")                         \
    X(UNSUPPORTED, "not supported")                      \
    X(CONFLICT, "conflict")                              \
    X(FULL, "table or quota full")                       \
    X(CANCELLED, "cancelled")                            \
    X(INJECTED, "fault injected by a stress option")     \
    X(POST, "power-on self test failed")                 \
    X(DEPENDENCY, "a dependency failed")                 \
    X(VERSION, "version mismatch")                       \
    X(INTERNAL, "internal error")

#define KEEL__CODE_ENUM(name, msg) KEEL_E_##name,
typedef enum keel_code { KEEL_E_OK = 0, KEEL_CODES(KEEL__CODE_ENUM) KEEL_E_COUNT } keel_code;
#undef KEEL__CODE_ENUM

/* The code space of keel's own codes (name "keel"). */
KEEL_API extern const keel_codespace keel_codespace_keel;

/*
 * Define a code space from an X-macro table X(NAME, message):
 *
 *   #define MYDB_CODES(X) X(CORRUPT, "database file is corrupt") X(LOCKED, "database is locked")
 *   #define MYDB_ENUM(name, msg) MYDB_E_##name,
 *   enum mydb_code { MYDB_E_OK = 0, MYDB_CODES(MYDB_ENUM) };
 *   KEEL_CODESPACE_DEFINE(mydb_codes, "mydb", MYDB_CODES)
 *   ... keel_codespace_register(&mydb_codes) once at start-up ...
 *   return KEEL_ERR_IN(&mydb_codes, MYDB_E_LOCKED, "table '%s'", name);
 */
#define KEEL__CS_NAME(name, msg) #name,
#define KEEL__CS_MSG(name, msg)  msg,
#define KEEL_CODESPACE_DEFINE(var, space_name, TABLE)                                            \
    static const char *const var##_names[] = {"OK", TABLE(KEEL__CS_NAME)};                       \
    static const char *const var##_messages[] = {"success", TABLE(KEEL__CS_MSG)};                \
    const keel_codespace var = {space_name, (int)(sizeof(var##_names) / sizeof(var##_names[0])), \
                                var##_names, var##_messages};

/* ---- the status type --------------------------------------------------- */

typedef struct keel_error keel_error; /* opaque */

#if defined(__clang__)
#define KEEL__STATUS_ATTR __attribute__((warn_unused_result))
#else
#define KEEL__STATUS_ATTR
#endif

typedef struct KEEL__STATUS_ATTR keel_status {
    keel_error *err; /* NULL: success.  Never touch directly. */
} keel_status;

/* Success. */
static inline keel_status keel_status_ok(void)
{
    keel_status s;
    s.err = NULL;
    return s;
}
#define KEEL_OK keel_status_ok()

KEEL_API void keel__status_seen(keel_error *err);

/* True on success.  On an error it also marks the error as examined. */
KEEL_MUST_USE static inline bool keel_ok(keel_status s)
{
#if KEEL_DEVEL
    if (KEEL_UNLIKELY(s.err != NULL)) {
        keel__status_seen(s.err);
        return false;
    }
    return true;
#else
    return s.err == NULL;
#endif
}

/* ---- code spaces -------------------------------------------------------- */

/*
 * Register a code space so that its name is reserved: a second space with the
 * same name is refused (KEEL_E_EXISTS naming both).  Registration is optional
 * for printing (an error points at its space) but required for lookup by name.
 */
KEEL_API KEEL_MUST_USE keel_status keel_codespace_register(const keel_codespace *space);
/* The registered space called `name`, or NULL.  keel's own is always registered. */
KEEL_API const keel_codespace *keel_codespace_find(const char *name);
/* "INVAL" / "invalid argument" for a code of a space; "?" for a code out of range. */
KEEL_API const char *keel_code_name(const keel_codespace *space, int code);
KEEL_API const char *keel_code_message(const keel_codespace *space, int code);

/* ---- creating errors --------------------------------------------------- */

KEEL_API KEEL_MUST_USE keel_status keel__status_new(const keel_codespace *space, int code,
                                                    keel_status cause, const char *file, int line,
                                                    const char *func, const char *fmt, ...)
    KEEL_PRINTF(7, 8);
KEEL_API KEEL_MUST_USE keel_status keel__status_wrap(const keel_codespace *space, int code,
                                                     keel_status cause, const char *file, int line,
                                                     const char *func, const char *fmt, ...)
    KEEL_PRINTF(7, 8);
KEEL_API KEEL_MUST_USE keel_status keel__status_context(keel_status cause, const char *file,
                                                        int line, const char *func, const char *fmt,
                                                        ...) KEEL_PRINTF(5, 6);
KEEL_API KEEL_MUST_USE keel_status keel__status_sys(int errnum, const char *file, int line,
                                                    const char *func, const char *fmt, ...)
    KEEL_PRINTF(5, 6);

/* A new error with one of keel's codes: KEEL_ERR(KEEL_E_INVAL, "bad size %zu", n). */
#define KEEL_ERR(code, ...)                                                                    \
    keel__status_new(&keel_codespace_keel, (int)(code), KEEL_OK, __FILE__, __LINE__, __func__, \
                     __VA_ARGS__)
/* A new error with a code of another space. */
#define KEEL_ERR_IN(space, code, ...) \
    keel__status_new((space), (int)(code), KEEL_OK, __FILE__, __LINE__, __func__, __VA_ARGS__)
/*
 * KEEL_E_SYS with the errno value and its name as details ("errno", "errno_name")
 * and its text after the message.  errnum 0 (a call that failed without setting
 * errno) is still KEEL_E_SYS: errno 0, errno_name "none", text "no errno".  An
 * errnum the C library has no name for: errno_name "?".
 */
#define KEEL_ERR_SYS(errnum, ...) \
    keel__status_sys((errnum), __FILE__, __LINE__, __func__, __VA_ARGS__)
/*
 * Wrap `cause` (which it takes) in a new error with its own code and message.
 * Wrapping success returns success and creates nothing.
 */
#define KEEL_WRAP(cause, code, ...)                                                             \
    keel__status_wrap(&keel_codespace_keel, (int)(code), (cause), __FILE__, __LINE__, __func__, \
                      __VA_ARGS__)
#define KEEL_WRAP_IN(cause, space, code, ...) \
    keel__status_wrap((space), (int)(code), (cause), __FILE__, __LINE__, __func__, __VA_ARGS__)
/* Wrap with context only: the new link keeps the code of `cause`. */
#define KEEL_CONTEXT(cause, ...) \
    keel__status_context((cause), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* ---- details ------------------------------------------------------------ */

/*
 * Attach a key/value detail to the outermost link of an error and return the
 * same status (so calls chain).  On success they do nothing.  Keys are copied.
 * If memory runs out the detail is dropped and the error says so when printed.
 */
KEEL_API KEEL_MUST_USE keel_status keel_status_with_int(keel_status s, const char *key,
                                                        long long v);
KEEL_API KEEL_MUST_USE keel_status keel_status_with_uint(keel_status s, const char *key,
                                                         unsigned long long v);
KEEL_API KEEL_MUST_USE keel_status keel_status_with_str(keel_status s, const char *key,
                                                        const char *v);
/* An opaque pointer; `destroy` (may be NULL) runs when the error is freed. */
KEEL_API KEEL_MUST_USE keel_status keel_status_with_ptr(keel_status s, const char *key, void *v,
                                                        void (*destroy)(void *));

/* Look a detail up, outermost link first.  False when absent or of another type. */
KEEL_API bool keel_status_get_int(keel_status s, const char *key, long long *out);
KEEL_API bool keel_status_get_uint(keel_status s, const char *key, unsigned long long *out);
KEEL_API const char *keel_status_get_str(keel_status s, const char *key);
KEEL_API void *keel_status_get_ptr(keel_status s, const char *key);

/* ---- examining ---------------------------------------------------------- */

/* Space and code of the outermost link (KEEL_E_OK / NULL space on success). */
KEEL_API const keel_codespace *keel_status_space(keel_status s);
KEEL_API int keel_status_code(keel_status s);
/* Outermost link has this code. */
KEEL_API bool keel_status_is(keel_status s, const keel_codespace *space, int code);
/* Some link of the chain has this code. */
KEEL_API bool keel_status_has(keel_status s, const keel_codespace *space, int code);
#define KEEL_IS(s, code)  keel_status_is((s), &keel_codespace_keel, (int)(code))
#define KEEL_HAS(s, code) keel_status_has((s), &keel_codespace_keel, (int)(code))
/* Message of the outermost link ("" on success). */
KEEL_API const char *keel_status_message(keel_status s);
/* Number of links in the chain (0 on success). */
KEEL_API size_t keel_status_depth(keel_status s);
/* Where the outermost link was created. */
KEEL_API const char *keel_status_file(keel_status s);
KEEL_API int keel_status_line(keel_status s);

/*
 * Render the whole chain, one link a line:
 *   keel.IO: loading configuration [at conf.c:88 in conf_load]
 *     caused by: keel.SYS: cannot open 'x.conf': No such file or directory [at ...] {errno=2, errno_name="ENOENT"}
 * snprintf semantics: returns the length the full text needs; writes at most
 * size bytes, always NUL-terminated when size > 0.
 */
KEEL_API size_t keel_status_format(keel_status s, char *buf, size_t size);
/* The same as JSON: {"space":..,"code":..,"message":..,"file":..,"line":..,"details":{..},"cause":{..}} */
KEEL_API size_t keel_status_format_json(keel_status s, char *buf, size_t size);
/* Print the chain to `f` followed by a newline. */
KEEL_API void keel_status_print(FILE *f, keel_status s);

/* ---- ending ------------------------------------------------------------- */

/* Free an error and its whole chain.  Freeing success does nothing. */
KEEL_API void keel_status_free(keel_status s);
/* Drop an error on purpose; `why` states the reason (counted as report kind "ignored-error"). */
KEEL_API void keel_status_ignore(keel_status s, const char *why);

/*
 * Devel builds: report now every live error that was never examined ("lost-error")
 * and, with `all`, also the examined ones never freed ("leaked-error").  Runs at
 * exit by itself.  Returns how many were reported.  Release builds: returns 0.
 */
KEEL_API size_t keel_status_check_lost(bool all);

KEEL_EXTERN_C_END

#endif /* KEEL_STATUS_H */
