/*
 * backtrace.c - capture with glibc's unwinder, symbolize with libdw.
 */
#include "internal.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <execinfo.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { CAPTURE_MAX = 128 };

__attribute__((noinline)) int keel_backtrace(void **pcs, int max, int skip)
{
    KEEL_ASSERT(pcs != NULL || max == 0);
    void *buf[CAPTURE_MAX];
    if (max <= 0)
        return 0;
    if (skip < 0)
        skip = 0;
    int want = max + skip + 1;
    if (want > CAPTURE_MAX)
        want = CAPTURE_MAX;
    int n = backtrace(buf, want);
    int first = skip + 1; /* this function's own frame */
    int out = 0;
    for (int i = first; i < n && out < max; i++)
        pcs[out++] = buf[i];
    return out;
}

static pthread_mutex_t dwfl_lock = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *dwfl;
static char *debuginfo_path;
static const Dwfl_Callbacks callbacks = {dwfl_linux_proc_find_elf, dwfl_standard_find_debuginfo,
                                         NULL, &debuginfo_path};

/* (Re)load the module list of this process; called under dwfl_lock. */
static bool report_modules(void)
{
    if (dwfl == NULL) {
        dwfl = dwfl_begin(&callbacks);
        if (dwfl == NULL)
            return false;
    }
    dwfl_report_begin(dwfl);
    int rc = dwfl_linux_proc_report(dwfl, getpid());
    if (dwfl_report_end(dwfl, NULL, NULL) != 0 || rc != 0)
        return false;
    return true;
}

static void base_name(char *dst, size_t size, const char *path)
{
    const char *slash = path != NULL ? strrchr(path, '/') : NULL;
    (void)snprintf(dst, size, "%s", slash != NULL ? slash + 1 : (path != NULL ? path : ""));
}

/*
 * The compilation unit of addr: by .debug_aranges, or, when there are none (clang emits none
 * unless -gdwarf-aranges, and libdw 0.188 then finds nothing), by each unit's address ranges.
 */
static Dwarf_Die *unit_of(Dwfl_Module *mod, Dwarf_Addr addr, Dwarf_Addr *bias)
{
    Dwarf_Die *cu = dwfl_module_addrdie(mod, addr, bias);
    if (cu != NULL)
        return cu;
    for (cu = dwfl_module_nextcu(mod, NULL, bias); cu != NULL;
         cu = dwfl_module_nextcu(mod, cu, bias))
        if (dwarf_haspc(cu, addr - *bias) > 0)
            return cu;
    return NULL;
}

/* The source line of addr (bias-adjusted) in unit cu. */
static bool unit_line(Dwarf_Die *cu, Dwarf_Addr addr, keel_frame *out)
{
    Dwarf_Line *line = dwarf_getsrc_die(cu, addr);
    const char *file = line != NULL ? dwarf_linesrc(line, NULL, NULL) : NULL;
    int lineno = 0;
    if (file == NULL || dwarf_lineno(line, &lineno) != 0)
        return false;
    (void)snprintf(out->file, sizeof(out->file), "%s", file);
    out->line = lineno;
    return true;
}

/*
 * When addr (bias-adjusted) is in code inlined into its function (a keel lock or heap fast
 * path, or any inline function), the line of the function named: where the outermost inlined
 * call is.  False when addr is not inlined (or nothing is known).
 */
static bool call_site(Dwarf_Die *cu, Dwarf_Addr addr, keel_frame *out)
{
    Dwarf_Die *scopes = NULL;
    int n = dwarf_getscopes(cu, addr, &scopes);
    int outer = -1; /* scopes[0] is the innermost */
    for (int i = 0; i < n; i++)
        if (dwarf_tag(&scopes[i]) == DW_TAG_inlined_subroutine)
            outer = i;
    bool found = false;
    Dwarf_Attribute attr;
    Dwarf_Word file = 0;
    Dwarf_Word lineno = 0;
    Dwarf_Files *files = NULL;
    size_t nfiles = 0;
    if (outer >= 0 &&
        dwarf_formudata(dwarf_attr(&scopes[outer], DW_AT_call_file, &attr), &file) == 0 &&
        dwarf_formudata(dwarf_attr(&scopes[outer], DW_AT_call_line, &attr), &lineno) == 0 &&
        dwarf_getsrcfiles(cu, &files, &nfiles) == 0 && file < nfiles) {
        const char *name = dwarf_filesrc(files, file, NULL, NULL);
        if (name != NULL) {
            (void)snprintf(out->file, sizeof(out->file), "%s", name);
            out->line = (int)lineno;
            found = true;
        }
    }
    free(scopes);
    return found;
}

bool keel_backtrace_symbolize(void *pc, keel_frame *out)
{
    KEEL_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    out->pc = pc;
    if (pc == NULL)
        return false;
    /* A return address points after the call: look up the call itself. */
    Dwarf_Addr addr = (Dwarf_Addr)(uintptr_t)pc - 1;
    bool found = false;
    sigset_t sigs; /* (no signal handler of the program runs under it: keel__signals_block) */
    keel__signals_block(&sigs);
    KEEL_VERIFY(pthread_mutex_lock(&dwfl_lock) == 0);
    Dwfl_Module *mod = NULL;
    if (dwfl != NULL || report_modules())
        mod = dwfl_addrmodule(dwfl, addr);
    if (mod == NULL && report_modules()) /* a library loaded since: look again */
        mod = dwfl_addrmodule(dwfl, addr);
    if (mod != NULL) {
        GElf_Off offset = 0;
        GElf_Sym sym;
        const char *name = dwfl_module_addrinfo(mod, addr, &offset, &sym, NULL, NULL, NULL);
        if (name != NULL) {
            (void)snprintf(out->func, sizeof(out->func), "%s", name);
            out->offset = (unsigned long)offset + 1;
            found = true;
        }
        Dwarf_Addr bias = 0;
        Dwarf_Die *cu = unit_of(mod, addr, &bias);
        if (cu != NULL && (call_site(cu, addr - bias, out) || unit_line(cu, addr - bias, out)))
            found = true;
        const char *mainfile = NULL;
        const char *modname = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, &mainfile, NULL);
        base_name(out->object, sizeof(out->object), mainfile != NULL ? mainfile : modname);
    }
    KEEL_VERIFY(pthread_mutex_unlock(&dwfl_lock) == 0);
    keel__signals_restore(&sigs);
    return found;
}

void keel_backtrace_print(FILE *f, void *const *pcs, int n)
{
    KEEL_ASSERT(f != NULL && (pcs != NULL || n == 0));
    for (int i = 0; i < n; i++) {
        keel_frame fr;
        (void)keel_backtrace_symbolize(pcs[i], &fr);
        (void)fprintf(f, "#%-2d %p %s", i, fr.pc, fr.func[0] != '\0' ? fr.func : "??");
        if (fr.func[0] != '\0')
            (void)fprintf(f, "+0x%lx", fr.offset);
        if (fr.file[0] != '\0')
            (void)fprintf(f, " (%s:%d)", fr.file, fr.line);
        if (fr.object[0] != '\0')
            (void)fprintf(f, " [%s]", fr.object);
        (void)fprintf(f, "\n");
    }
}

/* Around fork (a preload's handlers): libdw's lock is never left held in the child. */
void keel__backtrace_fork(int phase)
{
    keel__fork_mutex(&dwfl_lock, phase);
}

/* ---- whose frame is it ------------------------------------------------------------------- */

/*
 * libkeel's code, all of it: every object of the library has its code sections merged into
 * one, keel_text (cmake/keel_text_cc.sh), so the final link - libkeel*.so, or a program that
 * links the static archive - gives these bounds.  Hidden: in a shared library they are its
 * own.  Weak: a libkeel built some other way has no such section (then nothing is keel's).
 */
extern const char keel__text_begin[] __asm__("__start_keel_text")
    __attribute__((weak, visibility("hidden")));
extern const char keel__text_end[] __asm__("__stop_keel_text")
    __attribute__((weak, visibility("hidden")));

/* A return address: the call is the byte before it. */
bool keel__frame_in_keel(const void *pc)
{
    const char *call = (const char *)pc - 1;
    /* weak: NULL when the section is absent (cppcheck takes the array for never NULL) */
    // cppcheck-suppress knownConditionTrueFalse
    return keel__text_begin != NULL && call >= keel__text_begin && call < keel__text_end;
}

/* The signal trampoline the kernel returns through (glibc's __restore_rt): its code. */
static bool is_trampoline(const void *pc)
{
    Dl_info info;
    if (dladdr(pc, &info) == 0) /* only read code of a loaded object */
        return false;
#if defined(__x86_64__)
    static const unsigned char code[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
#elif defined(__aarch64__)
    static const unsigned char code[] = {0x68, 0x11, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4};
#else
    static const unsigned char code[] = {0};
    return false;
#endif
    return memcmp(pc, code, sizeof(code)) == 0; /* mov $15, %rax; syscall (rt_sigreturn) */
}

bool keel__frame_in_libc(const void *pc)
{
    Dl_info info;
    if (dladdr(pc, &info) == 0 || info.dli_fname == NULL)
        return false;
    const char *slash = strrchr(info.dli_fname, '/');
    const char *name = slash != NULL ? slash + 1 : info.dli_fname;
    return strncmp(name, "libc.so", 7) == 0 || strncmp(name, "libpthread.so", 13) == 0 ||
           strncmp(name, "linux-vdso.so", 13) == 0; /* clock_gettime's own frames */
}

/*
 * A sanitizer's runtime (ThreadSanitizer's __tsan_read4 that instrumented code calls, its
 * internals a thread the watchdog stopped may be in): not the program's code, though it is
 * linked into the program.  Only in a build under a sanitizer; its internals are not dynamic
 * symbols, so the name comes from the symbol table (libdw).
 */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define KEEL_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define KEEL_SANITIZED 1
#endif
#endif
static bool is_sanitizer(void *pc)
{
#ifdef KEEL_SANITIZED
    keel_frame f;
    if (!keel_backtrace_symbolize(pc, &f) || f.func[0] == '\0')
        return true; /* nameless: the runtime's (a program's code has its symbols here) */
    static const char *const prefixes[] = {
        "__tsan_",      "__asan_",        "__ubsan_",        "__msan_",    "__lsan_",
        "__sanitizer_", "__interceptor_", "_ZN6__tsan",      "_ZN6__asan", "_ZN7__ubsan",
        "_ZN6__msan",   "_ZN6__lsan",     "_ZN11__sanitizer"}; /* and their C++ namespaces */
    for (size_t k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); k++)
        if (strncmp(f.func, prefixes[k], strlen(prefixes[k])) == 0)
            return true;
#else
    (void)pc;
#endif
    return false;
}

int keel__first_user_frame(void *const *pcs, int n)
{
    KEEL_ASSERT(pcs != NULL || n == 0);
    int i = 0;
    while (i < n - 1 && keel__frame_in_keel(pcs[i]))
        i++;
    /* below a signal handler: the trampoline; below keel's own handler (a report made in it),
     * also libc's frames the signal came in through (a memcpy that ran into a guard page).  A
     * stack captured in a handler without it (the watchdog's) shows where the thread is. */
    bool in_handler = i > 0;
    if (i < n - 1 && is_trampoline(pcs[i])) {
        i++;
        while (in_handler && i < n - 1 && keel__frame_in_libc(pcs[i]))
            i++;
    }
    while (i < n - 1 && is_sanitizer(pcs[i])) /* a thread stopped inside the instrumentation */
        i++;
    return i;
}
