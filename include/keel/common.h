/*
 * keel/common.h - build variant, export and attribute macros shared by every
 * keel header.
 *
 * Every translation unit that includes a keel header must say which variant of
 * libkeel it is built for:
 *
 *   -DKEEL_DEVEL=1   devel build: every runtime check compiled in; link libkeel-devel
 *   -DKEEL_DEVEL=0   release build: checks compiled out; link libkeel
 *
 * `pkg-config --cflags keel-devel` and `pkg-config --cflags keel` set it, and
 * so do the CMake targets keel::keel-devel and keel::keel.  Mixing the two
 * (a devel object linked with the release library, or the reverse) fails at
 * link time with an undefined symbol whose name says what to link instead.
 */
#ifndef KEEL_COMMON_H
#define KEEL_COMMON_H

#if !defined(KEEL_DEVEL)
#error \
    "keel: define KEEL_DEVEL to 1 (devel build, link libkeel-devel) or 0 (release build, link libkeel); pkg-config keel-devel / keel sets it"
#endif
#if KEEL_DEVEL != 0 && KEEL_DEVEL != 1
#error "keel: KEEL_DEVEL must be 0 (release) or 1 (devel)"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define KEEL_EXTERN_C_BEGIN extern "C" {
#define KEEL_EXTERN_C_END   }
#else
#define KEEL_EXTERN_C_BEGIN
#define KEEL_EXTERN_C_END
#endif

/* Only what carries KEEL_API is exported from the shared library. */
#define KEEL_API __attribute__((visibility("default")))

#define KEEL_MUST_USE          __attribute__((warn_unused_result))
#define KEEL_NORETURN          __attribute__((noreturn))
#define KEEL_COLD              __attribute__((cold))
#define KEEL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define KEEL_LIKELY(x)         __builtin_expect(!!(x), 1)
#define KEEL_UNLIKELY(x)       __builtin_expect(!!(x), 0)

/*
 * Link-time variant check.  Each object compiled against the keel headers
 * keeps one reference to the symbol that only the matching library defines.
 */
/*
 * Registration of a linker section's descriptors (stress points, modules):
 * every object that includes the header hands its own section's bounds
 * (hidden) to reg() when it is loaded and to unreg() when it is unloaded
 * (dlclose).  reg() and unreg() take (type *begin, type *end), ignore ranges
 * they know, and find the descriptors by their magic word.
 *
 * Each object also puts one zero word (no descriptor) in the section, so that
 * the section and its bounds exist in every object that includes the header:
 * the linker never looks the bounds up in a shared library (GNU ld then
 * warns "type and size of dynamic symbol '__start_keel_stress' are not
 * defined", fatal under -Wl,--fatal-warnings, for every program built against
 * libkeel-devel.so with no stress point of its own).
 * (clang 14's analyzer crashes on the asm-labelled bounds: it does not see them.)
 */
#ifndef __clang_analyzer__
#define KEEL__SECTION_HOOKS(sect, type, reg, unreg)                                  \
    __attribute__((section(#sect), used,                                             \
                   aligned(8))) static unsigned long long keel__##sect##_anchor = 0; \
    extern type keel__##sect##_begin[] __asm__("__start_" #sect)                     \
        __attribute__((weak, visibility("hidden")));                                 \
    extern type keel__##sect##_end[] __asm__("__stop_" #sect)                        \
        __attribute__((weak, visibility("hidden")));                                 \
    __attribute__((constructor, unused)) static void keel__##sect##_load(void)       \
    {                                                                                \
        reg(keel__##sect##_begin, keel__##sect##_end);                               \
    }                                                                                \
    __attribute__((destructor, unused)) static void keel__##sect##_unload(void)      \
    {                                                                                \
        unreg(keel__##sect##_begin, keel__##sect##_end);                             \
    }
#else
#define KEEL__SECTION_HOOKS(sect, type, reg, unreg)
#endif

KEEL_EXTERN_C_BEGIN
#if KEEL_DEVEL
KEEL_API extern const int keel_link_check_devel_object_needs_libkeel_devel;
__attribute__((used)) static const int *const keel__variant_reference =
    &keel_link_check_devel_object_needs_libkeel_devel;
#else
KEEL_API extern const int keel_link_check_release_object_needs_libkeel_release;
__attribute__((used)) static const int *const keel__variant_reference =
    &keel_link_check_release_object_needs_libkeel_release;
#endif
KEEL_EXTERN_C_END

#endif /* KEEL_COMMON_H */
