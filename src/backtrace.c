/*
 * backtrace.c - capture with glibc's unwinder, symbolize with libdw.
 */
#include "internal.h"

#include <elfutils/libdwfl.h>
#include <execinfo.h>
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
        Dwfl_Line *line = dwfl_module_getsrc(mod, addr);
        if (line != NULL) {
            int lineno = 0;
            const char *file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
            if (file != NULL) {
                (void)snprintf(out->file, sizeof(out->file), "%s", file);
                out->line = lineno;
                found = true;
            }
        }
        const char *mainfile = NULL;
        const char *modname = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, &mainfile, NULL);
        base_name(out->object, sizeof(out->object), mainfile != NULL ? mainfile : modname);
    }
    KEEL_VERIFY(pthread_mutex_unlock(&dwfl_lock) == 0);
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
