# A user's clean build stays warning-free: a small program with no stress point
# of its own (a module, a lock, a heap block), linked against each built
# library - devel and release, shared and static - with -Wl,--fatal-warnings,
# then run.  (libkeel-devel.so's own stress points once made GNU ld warn "type
# and size of dynamic symbol '__start_keel_stress' are not defined" for every
# such program: keel/common.h KEEL__SECTION_HOOKS.)  A second program with a
# stress point of its own is the control.
include(${CMAKE_CURRENT_LIST_DIR}/probe_common.cmake)

file(WRITE ${BIN}/clean.c [=[
#include "keel/keel.h"
KEEL_MODULE(probe_clean, "1", NULL, NULL, NULL, NULL);
int main(void)
{
    keel_mutex m;
    keel_mutex_init(&m, "probe_clean", 0);
    keel_mutex_lock(&m);
    keel_mutex_unlock(&m);
    keel_mutex_destroy(&m);
    void *p = NULL;
    keel_status s = keel_heap_alloc(KEEL_MODULE_REF(probe_clean), 16, &p);
    if (keel_ok(s))
        keel_heap_free(KEEL_MODULE_REF(probe_clean), p);
    int failed = !keel_ok(s);
    keel_status_free(s);
#ifdef PROBE_STRESS
    failed += KEEL_STRESS(probe_point) ? 1 : 0;
#endif
    return failed;
}
]=])

foreach(variant devel:1:${DEVEL_SO}:${DEVEL_LIB} release:0:${RELEASE_SO}:${RELEASE_LIB})
    string(REPLACE ":" ";" v "${variant}")
    list(GET v 0 name)
    list(GET v 1 devel)
    list(GET v 2 so)
    list(GET v 3 lib)
    get_filename_component(so_dir ${so} DIRECTORY)
    foreach(stress "" -DPROBE_STRESS)
        foreach(kind shared static)
            set(exe ${BIN}/clean_${name}_${kind}${stress})
            if(kind STREQUAL "shared")
                set(link ${so} -Wl,-rpath,${so_dir})
            else()
                set(link ${lib} ${PROBE_LIBS})
            endif()
            probe_run(rc out ${CC} ${PROBE_CFLAGS} -DKEEL_DEVEL=${devel} ${stress} ${BIN}/clean.c
                      -o ${exe} ${link} -Wl,--fatal-warnings)
            if(NOT rc EQUAL 0)
                probe_fail("a clean program (${name}, ${kind}${stress}) does not link warning-free "
                           "with -Wl,--fatal-warnings:\n${out}")
            endif()
            probe_run(rc out ${exe})
            if(NOT rc EQUAL 0)
                probe_fail("the clean program (${name}, ${kind}${stress}) failed (${rc}):\n${out}")
            endif()
        endforeach()
    endforeach()
endforeach()
message(STATUS "clean programs link warning-free against the four libraries")
