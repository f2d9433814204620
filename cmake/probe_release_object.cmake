# Release objects keep nothing of the devel checks: a KEEL_ASSERT leaves no
# call, no expression text, and does not reference what its expression calls.
include(${CMAKE_CURRENT_LIST_DIR}/probe_common.cmake)

file(WRITE ${BIN}/asserts.c [=[
#include "keel/keel.h"
int probe_expensive_check(int x);
int probe(int x);
int probe(int x)
{
    KEEL_ASSERT(probe_expensive_check(x) == 42);
    KEEL_ASSERTF(x != 7 && "probe_assert_text", "x is %d", x);
    KEEL_ASSERT_EXPENSIVE(probe_expensive_check(x + 1) > 0);
    return x + 1;
}
]=])
foreach(devel 0 1)
    probe_run(rc out ${CC} ${PROBE_CFLAGS} -O2 -DKEEL_DEVEL=${devel} -c ${BIN}/asserts.c -o ${BIN}/asserts${devel}.o)
    if(NOT rc EQUAL 0)
        probe_fail("asserts.c does not compile (KEEL_DEVEL=${devel}):\n${out}")
    endif()
    probe_run(rc syms nm ${BIN}/asserts${devel}.o)
    file(READ ${BIN}/asserts${devel}.o bytes HEX)
    string(HEX "probe_assert_text" text_hex)
    string(TOLOWER "${text_hex}" text_hex)
    if(devel)
        # control: the devel object has all three
        if(NOT syms MATCHES "probe_expensive_check" OR NOT syms MATCHES "keel__assert_fail"
           OR NOT bytes MATCHES "${text_hex}")
            probe_fail("devel object lacks the assertion code (the probe is broken):\n${syms}")
        endif()
    else()
        if(syms MATCHES "probe_expensive_check|keel__assert_fail")
            probe_fail("release object still references assertion code:\n${syms}")
        endif()
        if(bytes MATCHES "${text_hex}")
            probe_fail("release object still contains the assertion text")
        endif()
    endif()
endforeach()
message(STATUS "release objects carry no assertion code or text")

# A release KEEL_STRESS point is the constant 0: no call, no descriptor, no section, no name.
file(WRITE ${BIN}/stress.c [=[
#include "keel/keel.h"
int probe_write(int x);
int probe_write(int x)
{
    if (KEEL_STRESS(probe_stress_name))
        return -x;
    return x + 1;
}
]=])
foreach(devel 0 1)
    probe_run(rc out ${CC} ${PROBE_CFLAGS} -O2 -DKEEL_DEVEL=${devel} -c ${BIN}/stress.c -o ${BIN}/stress${devel}.o)
    if(NOT rc EQUAL 0)
        probe_fail("stress.c does not compile (KEEL_DEVEL=${devel}):\n${out}")
    endif()
    probe_run(rc syms nm ${BIN}/stress${devel}.o)
    probe_run(rc sections objdump -h ${BIN}/stress${devel}.o)
    file(READ ${BIN}/stress${devel}.o bytes HEX)
    string(HEX "probe_stress_name" name_hex)
    string(TOLOWER "${name_hex}" name_hex)
    if(devel)
        if(NOT syms MATCHES "keel__stress_eval" OR NOT sections MATCHES "keel_stress"
           OR NOT bytes MATCHES "${name_hex}")
            probe_fail("devel object lacks the stress point (the probe is broken):\n${syms}\n${sections}")
        endif()
    else()
        if(syms MATCHES "keel__stress" OR sections MATCHES "keel_stress")
            probe_fail("release object still has stress code or its section:\n${syms}\n${sections}")
        endif()
        if(bytes MATCHES "${name_hex}")
            probe_fail("release object still contains the stress point's name")
        endif()
    endif()
endforeach()
message(STATUS "release objects carry no stress point, descriptor or name")
