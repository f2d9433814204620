# Reports start at the program's frame with libkeel-devel.so and with the static
# archive alike: keel's own frames are told by the address range of its code (the
# keel_text section, cmake/keel_text_cc.sh), which each kind of link must give.  A
# small program misuses a lock and overruns a heap block (both reported from static
# helpers inside keel); the first frame of each report must be the program's.
include(${CMAKE_CURRENT_LIST_DIR}/probe_common.cmake)

file(WRITE ${BIN}/frames.c [=[
#include "keel/keel.h"
KEEL_MODULE(probe_frames, "1", NULL, NULL, NULL, NULL);
__attribute__((noinline)) static void probe_misuse(void)
{
    static keel_mutex m = KEEL_MUTEX_INITIALIZER("probe_frames", 0);
    keel_mutex_unlock(&m); /* not held: lock-misuse */
}
__attribute__((noinline)) static void probe_overrun(void)
{
    unsigned char *p = NULL;
    if (!keel_ok(keel_heap_alloc(KEEL_MODULE_REF(probe_frames), 24, (void **)&p)))
        return;
    ((volatile unsigned char *)p)[24] = 1; /* past the end: heap */
    keel_heap_free(KEEL_MODULE_REF(probe_frames), p);
}
int main(void)
{
    keel_report_set_policy(KEEL_REPORT_HEAP, KEEL_POLICY_REPORT);
    probe_misuse();
    probe_overrun();
    return 0;
}
]=])

get_filename_component(so_dir ${DEVEL_SO} DIRECTORY)
foreach(kind shared static)
    set(exe ${BIN}/frames_${kind})
    if(kind STREQUAL "shared")
        set(link ${DEVEL_SO} -Wl,-rpath,${so_dir})
    else()
        set(link ${DEVEL_LIB} ${PROBE_LIBS})
    endif()
    probe_run(rc out ${CC} ${PROBE_CFLAGS} -g -O1 -DKEEL_DEVEL=1 ${BIN}/frames.c -o ${exe} ${link})
    if(NOT rc EQUAL 0)
        probe_fail("the frames program (${kind}) does not build:\n${out}")
    endif()
    probe_run(rc out ${exe})
    if(NOT rc EQUAL 0)
        probe_fail("the frames program (${kind}) failed (${rc}):\n${out}")
    endif()
    foreach(report "lock-misuse:probe_misuse" "heap:probe_overrun")
        string(REPLACE ":" ";" r "${report}")
        list(GET r 0 what)
        list(GET r 1 func)
        if(NOT out MATCHES "keel: ${what}: [^\n]*\n(  [^\n]*\n)*  backtrace:\n    #0  0x[0-9a-f]+ ${func}\\+")
            probe_fail("with libkeel-devel (${kind}), the '${what}' report does not start at "
                       "${func}:\n${out}")
        endif()
    endforeach()
endforeach()
