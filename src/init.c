/*
 * init.c - process-wide start-up and exit, versions and the link-time
 * variant symbol.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Exactly one of these exists in each variant of the library. */
#if KEEL_DEVEL
const int keel_link_check_devel_object_needs_libkeel_devel = 1;
#else
const int keel_link_check_release_object_needs_libkeel_release = 1;
#endif

unsigned keel_version(void)
{
    return KEEL_VERSION_NUM;
}

const char *keel_version_string(void)
{
    return KEEL_DEVEL ? KEEL_VERSION_STRING " devel" : KEEL_VERSION_STRING " release";
}

keel_status keel__version_check(unsigned header_version)
{
    unsigned lib = keel_version();
    if (header_version / 10000 != lib / 10000 || header_version > lib)
        return keel_status_with_uint(
            keel_status_with_uint(
                KEEL_ERR(KEEL_E_VERSION, "keel headers %u.%u.%u do not match library %u.%u.%u",
                         header_version / 10000, header_version / 100 % 100, header_version % 100,
                         lib / 10000, lib / 100 % 100, lib % 100),
                "header", header_version),
            "library", lib);
    return KEEL_OK;
}

/* ---- linker sections ------------------------------------------------------------------ */

__attribute__((no_sanitize_address)) void *keel__section_next(char **at, const char *end,
                                                              size_t size, unsigned long long magic)
{
    KEEL_ASSERT(at != NULL && *at != NULL && end != NULL && size >= sizeof(magic));
    for (; *at + size <= end; *at += sizeof(unsigned long long)) {
        unsigned long long word;
        memcpy(&word, *at, sizeof(word));
        if (word == magic) {
            void *found = *at;
            *at += size;
            return found;
        }
    }
    return NULL;
}

/* ---- lazy start-up ----------------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static KEEL__TLS bool in_init;
static bool init_failed;
static char *bad_env; /* copy of a malformed KEEL_OPTIONS, to rebuild its error */
static int init_reported;

static void do_init(void)
{
    in_init = true;
    void *warm[4];
    (void)keel_backtrace(warm, 4, 0); /* the unwinder allocates on first use only */
    const char *report = getenv("KEEL_REPORT");
    if (report != NULL && report[0] != '\0')
        keel__options_set_str(KEEL__OPT_REPORT_FILE, report);
    const char *env = getenv("KEEL_OPTIONS");
    if (env != NULL) {
        keel_status s = keel__options_apply(env, strlen(env), "KEEL_OPTIONS");
        if (!keel_ok(s)) {
            init_failed = true;
            bad_env = strdup(env);
        }
        keel_status_free(s);
    }
    in_init = false;
}

static keel_status env_error(void)
{
    if (bad_env == NULL)
        return KEEL_ERR(KEEL_E_NOMEM, "KEEL_OPTIONS is malformed (out of memory describing how)");
    return keel__options_parse_only(bad_env, strlen(bad_env), "KEEL_OPTIONS");
}

int keel__init_done;

void keel__lazy_init_slow(void)
{
    if (in_init)
        return; /* a use of keel by the start-up itself */
    (void)pthread_once(&init_once, do_init);
    if (KEEL_UNLIKELY(init_failed) &&
        __atomic_exchange_n(&init_reported, 1, __ATOMIC_ACQ_REL) == 0) {
        keel__report_status(KEEL_REPORT_OPTIONS, env_error(),
                            "KEEL_OPTIONS is malformed; none of it was applied");
    }
    __atomic_store_n(&keel__init_done, 1, __ATOMIC_RELEASE);
}

keel_status keel_init(void)
{
    /* The caller gets the error as a status: no report for it. */
    (void)__atomic_exchange_n(&init_reported, 1, __ATOMIC_ACQ_REL);
    (void)pthread_once(&init_once, do_init);
    __atomic_store_n(&keel__init_done, 1, __ATOMIC_RELEASE);
    if (init_failed)
        return env_error();
    return KEEL_OK;
}

__attribute__((destructor)) static void at_exit(void)
{
    keel__watchdog_at_exit();
    keel__status_at_exit();
}
