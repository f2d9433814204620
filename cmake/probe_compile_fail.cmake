# Ignoring a keel_status is a compile error with -Werror, with gcc and clang.
include(${CMAKE_CURRENT_LIST_DIR}/probe_common.cmake)

file(WRITE ${BIN}/ignored.c [=[
#include "keel/keel.h"
void probe(void);
void probe(void)
{
#ifdef PROBE_CONTROL
    keel_status s = keel_options_set("report.backtrace=0");
    keel_status_free(s);
#else
    keel_options_set("report.backtrace=0"); /* the result is ignored */
#endif
}
]=])

foreach(devel 0 1)
    probe_run(rc out ${CC} ${PROBE_CFLAGS} -DKEEL_DEVEL=${devel} -DPROBE_CONTROL -c ${BIN}/ignored.c -o ${BIN}/ignored_ok.o)
    if(NOT rc EQUAL 0)
        probe_fail("control program (status used) does not compile (KEEL_DEVEL=${devel}):\n${out}")
    endif()
    probe_run(rc out ${CC} ${PROBE_CFLAGS} -DKEEL_DEVEL=${devel} -c ${BIN}/ignored.c -o ${BIN}/ignored.o)
    if(rc EQUAL 0)
        probe_fail("ignoring a keel_status compiled (KEEL_DEVEL=${devel}); it must not")
    endif()
    if(NOT out MATCHES "unused-result|warn_unused_result|unused result")
        probe_fail("ignoring a keel_status failed for another reason (KEEL_DEVEL=${devel}):\n${out}")
    endif()
    message(STATUS "KEEL_DEVEL=${devel}: ignored status rejected:\n${out}")
endforeach()

# clang: every function returning keel_status is must-use, even the program's
# own ones not marked KEEL_MUST_USE (the attribute sits on the type).
probe_run(rc ver ${CC} --version)
if(ver MATCHES "clang")
    file(WRITE ${BIN}/own.c [=[
#include "keel/keel.h"
keel_status mine(void);
keel_status mine(void) { return KEEL_OK; }
void probe(void);
void probe(void) { mine(); }
]=])
    probe_run(rc out ${CC} ${PROBE_CFLAGS} -DKEEL_DEVEL=1 -c ${BIN}/own.c -o ${BIN}/own.o)
    if(rc EQUAL 0 OR NOT out MATCHES "unused")
        probe_fail("clang accepted an ignored keel_status from an unmarked function:\n${out}")
    endif()
endif()
message(STATUS "ignored statuses do not compile")
