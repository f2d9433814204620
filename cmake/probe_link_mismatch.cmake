# An object compiled for one variant links only with the library of that
# variant; a mismatch fails with an undefined symbol that says what to link.
include(${CMAKE_CURRENT_LIST_DIR}/probe_common.cmake)

file(WRITE ${BIN}/prog.c [=[
#include "keel/keel.h"
int main(void)
{
    keel_status s = keel_version_check();
    int rc = keel_ok(s) ? 0 : 1;
    keel_status_free(s);
    return rc;
}
]=])
foreach(devel 0 1)
    probe_run(rc out ${CC} ${PROBE_CFLAGS} -DKEEL_DEVEL=${devel} -c ${BIN}/prog.c -o ${BIN}/prog${devel}.o)
    if(NOT rc EQUAL 0)
        probe_fail("prog.c does not compile (KEEL_DEVEL=${devel}):\n${out}")
    endif()
endforeach()

# (object variant, library, must link?, expected text when not)
set(cases
    "1|${DEVEL_LIB}|YES|"
    "0|${RELEASE_LIB}|YES|"
    "1|${RELEASE_LIB}|NO|keel_link_check_devel_object_needs_libkeel_devel"
    "0|${DEVEL_LIB}|NO|keel_link_check_release_object_needs_libkeel_release"
    "1|${DEVEL_SO}|YES|"
    "1|${RELEASE_SO}|NO|keel_link_check_devel_object_needs_libkeel_devel"
    "0|${DEVEL_SO}|NO|keel_link_check_release_object_needs_libkeel_release")
foreach(c ${cases})
    string(REPLACE "|" ";" c "${c}")
    list(GET c 0 devel)
    list(GET c 1 lib)
    list(GET c 2 must)
    list(LENGTH c len)
    set(want "")
    if(len GREATER 3)
        list(GET c 3 want)
    endif()
    probe_run(rc out ${CC} ${PROBE_CFLAGS} ${BIN}/prog${devel}.o ${lib} ${PROBE_LIBS} -o ${BIN}/prog -Wl,-rpath,${BIN})
    if(must STREQUAL "YES" AND NOT rc EQUAL 0)
        probe_fail("KEEL_DEVEL=${devel} object does not link with ${lib}:\n${out}")
    endif()
    if(must STREQUAL "NO")
        if(rc EQUAL 0)
            probe_fail("KEEL_DEVEL=${devel} object linked with ${lib}; the mismatch must fail")
        endif()
        if(NOT out MATCHES "${want}")
            probe_fail("mismatch failed without naming '${want}':\n${out}")
        endif()
        message(STATUS "KEEL_DEVEL=${devel} + ${lib}: refused, the linker says:\n${out}")
    endif()
endforeach()
# A devel object compiled against another layout of the inline lock path
# (keel/lock_fast.h) does not link with this libkeel-devel either.
file(REMOVE_RECURSE ${BIN}/layout)
file(COPY ${SRC}/include/keel DESTINATION ${BIN}/layout)
file(READ ${BIN}/layout/keel/lock_fast.h fast)
string(REGEX REPLACE "#define KEEL__LOCK_LAYOUT [0-9]+" "#define KEEL__LOCK_LAYOUT 9999" fast "${fast}")
file(WRITE ${BIN}/layout/keel/lock_fast.h "${fast}")
string(REPLACE "-I${SRC}/include" "-I${BIN}/layout" layout_cflags "${PROBE_CFLAGS}")
probe_run(rc out ${CC} ${layout_cflags} -DKEEL_DEVEL=1 -c ${BIN}/prog.c -o ${BIN}/prog_layout.o)
if(NOT rc EQUAL 0)
    probe_fail("prog.c does not compile against layout 9999:\n${out}")
endif()
foreach(lib ${DEVEL_LIB} ${DEVEL_SO})
    probe_run(rc out ${CC} ${PROBE_CFLAGS} ${BIN}/prog_layout.o ${lib} ${PROBE_LIBS} -o ${BIN}/prog)
    if(rc EQUAL 0)
        probe_fail("a devel object of lock layout 9999 linked with ${lib}; it must fail")
    endif()
    if(NOT out MATCHES "keel__lock_layout_9999_needs_matching_libkeel_devel")
        probe_fail("the layout mismatch failed without naming the layout:\n${out}")
    endif()
    message(STATUS "lock layout 9999 + ${lib}: refused, the linker says:\n${out}")
endforeach()
message(STATUS "variant mismatches fail to link, matches link")
